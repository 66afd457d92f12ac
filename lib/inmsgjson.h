/*
 * NAME
 *	inmsgjson - a parsed message summarised as JSON, for the admin
 * SYNOPSIS
 *	#include "inmsgjson.h"
 *
 *	json_t *o;
 *	r = inmsg_to_json(m, &addrs, &o);
 * DESCRIPTION
 *	What "carepostctl ingest --dry-run" prints: the facts carepost
 *	decides on, its classification (classify.h), sizes and counts.
 *	Described above the prototype.
 * ERRORS
 *	-EINVAL (NULL m) or -ENOMEM.
 * OWNERSHIP
 *	m and a are only read; *out is a new reference (json_decref).
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_INMSGJSON_H
#define CAREPOST_INMSGJSON_H

#include <jansson.h>

#include "classify.h"
#include "inmsgtypes.h"

/*
 * inmsg_to_json - a summary of m for "carepostctl ingest --dry-run".
 *
 *	*out is a new jansson object (json_decref) with: class, reason,
 *	message_id, in_reply_to, from (address: this is printed for the
 *	admin on their own terminal; never log it), token_present, verp,
 *	has_pgp_encrypted, has_pgp_signature, nested_signed_or_encrypted,
 *	protected_headers, from_count, auto_submitted, part_count,
 *	depth, body_bytes, authentication_results (count), no_autoresponse
 *	(inmsg_no_autoresponse's reason, or null), attachments
 *	[{filename, content_type, size}], dsn {present, original_envelope_id,
 *	orig_message_id, recipients [{action, status, final_recipient,
 *	diagnostic_code}]}. The token value itself is not included.
 *	Returns 0 or -ENOMEM.
 */
int inmsg_to_json(const struct inmsg *m, const struct inmsg_addrs *a,
		  json_t **out);

#endif
