/*
 * NAME
 *	inmsgwire - a struct inmsg as bytes, and back, checked
 * SYNOPSIS
 *	#include "inmsgwire.h"
 *
 *	In the parse helper:
 *	    inmsgwire_encode(m, &out);
 *	In carepostd, on what the helper sent:
 *	    r = inmsgwire_decode(data, len, &lim, &m, &err);
 *	    if (r < 0) ... the helper is not to be believed: ended ...
 * DESCRIPTION
 *	The parse helper (lib/parsehelper) parses hostile mail in a confined
 *	process and hands back what inmsg_parse made of it in this form.
 *	Whatever the helper was made to do, what it sends is only bytes:
 *	inmsgwire_decode believes none of them. It checks every length
 *	against what is left, every count against the limits the message
 *	was parsed under, and every promise inmsg.h makes of a struct inmsg:
 *	strings are valid UTF-8 without NUL, addresses, content types and
 *	the other lower-cased values hold no upper-case ASCII, flags are
 *	known bits, the body is there. Anything else is refused whole.
 *
 *	The format, in this order, no padding, integers little-endian:
 *
 *	    "CPIM" and a version byte (INMSGWIRE_VERSION)
 *	    str message_id, str in_reply_to, list references,
 *	    str from_addr, str from_name, u32 from_count, str return_path,
 *	    list recipients, str subject, i64 date, str auto_submitted,
 *	    str precedence, str list_id, u32 flags, list auth_results,
 *	    str content_type, u32 header_count,
 *	    str body (not absent), str reply (not longer than the body;
 *	        absent when it is the body itself, and never the body's
 *	        bytes again: one encoding per message),
 *	    u32 n_attachments, each: str filename, str content_type,
 *	        bytes data,
 *	    u32 part_count, u32 depth, u64 decoded_total,
 *	    u32 pgp, bytes pgp_encrypted, bytes pgp_signed,
 *	    bytes pgp_signature, u32 nested_crypto,
 *	    u8 prot.present, str prot.subject, list prot.recipients,
 *	    u8 dsn.present, str original_envelope_id, str reporting_mta,
 *	    u32 n_rcpts, each: str action, str status, str final_recipient,
 *	        str original_recipient, str diagnostic_code;
 *	    str orig_message_id, u8 orig_headers_present,
 *	    u8 arf.present, str feedback_type, str user_agent, str version,
 *	        str original_mail_from, str original_rcpt_to,
 *	        str reported_domain, u8 redacted, str orig_message_id,
 *	        str orig_return_path, u8 orig_headers_present
 *
 *	where str and bytes are a u32 length and that many bytes (length
 *	0xffffffff: absent, a NULL pointer, no bytes follow), list is a u32
 *	count and that many str (none absent), and a u8 is 0 or 1. Nothing
 *	may follow the last field. The limits are not sent back: the struct
 *	gets those the caller passes to inmsgwire_decode.
 *
 *	inmsgwire_limits_encode and _decode carry a struct inmsg_limits to
 *	the helper: six u64, 48 bytes.
 * ERRORS
 *	inmsgwire_encode: -ENOMEM, -EFBIG (a field over 4 GiB), -EINVAL
 *	(NULL m, or a struct that breaks inmsg.h's promises: a NULL body
 *	or reply, a reply longer than the body).
 *	inmsgwire_decode: -EBADMSG with a PHI-free reason naming the field
 *	("parser's answer: subject is not valid UTF-8"), or -ENOMEM. Each
 *	string and list is bounded by what the parser can make of the
 *	limits: a string of the header block by INMSGWIRE_MAX_HEADER_STR,
 *	references by INMSGWIRE_MAX_REFERENCES, the body, an attachment, a
 *	PGP payload or a delivery report's field by max_decoded, a
 *	feedback report's field by 3 * DSN_MAX_VALUE (and none at all
 *	without the report), and the
 *	body, attachments and PGP payloads together by max_decoded (plus a
 *	line break between text parts); the reply by the body's length.
 *	inmsgwire_limits_decode: -EBADMSG (not 48 bytes, or a count over
 *	UINT_MAX). inmsgwire_limits_encode: -ENOMEM.
 * OWNERSHIP
 *	inmsgwire_encode appends to the caller's buffer. inmsgwire_decode
 *	hands a new struct inmsg (inmsg_free); on failure *out is NULL.
 *	Nothing points into data afterwards.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_INMSGWIRE_H
#define CAREPOST_INMSGWIRE_H

#include <stddef.h>

#include "buf.h"
#include "inmsg.h"
#include "util.h"

#define INMSGWIRE_VERSION	3
#define INMSGWIRE_LIMITS_SIZE	48
/* A string from the header block: decoding (U+FFFD for a raw byte) may
 * triple it. */
#define INMSGWIRE_MAX_HEADER_STR	(4u * INMSG_MAX_HEADER_BYTES)
/* References: an id takes two bytes of the header at least ("<>"). */
#define INMSGWIRE_MAX_REFERENCES	(INMSG_MAX_HEADER_BYTES / 2)

/*
 * inmsgwire_max - the longest answer a parse under lim can make: its
 * decoded content, the reply cut from the body (no longer than the body,
 * which is content), its header block's strings, and their lengths.
 */
static inline size_t
inmsgwire_max(const struct inmsg_limits *lim)
{
	return 2u * lim->max_decoded + 2u * lim->max_parts + (16u << 20);
}

int inmsgwire_encode(const struct inmsg *m, struct buf *out);
int inmsgwire_decode(const void *data, size_t len,
		     const struct inmsg_limits *lim, struct inmsg **out,
		     struct cp_error *err);

int inmsgwire_limits_encode(const struct inmsg_limits *lim, struct buf *out);
int inmsgwire_limits_decode(const void *data, size_t len,
			    struct inmsg_limits *lim);

#endif
