/*
 * NAME
 *	dsn - the fields of an RFC 3464 delivery-status report
 * SYNOPSIS
 *	#include "dsn.h"
 *
 *	struct inmsg_dsn d = { 0 };
 *
 *	r = dsn_parse(&d, text, len);		(message/delivery-status body)
 *	r = dsn_take_returned_headers(&d, raw, rawlen);
 *	... d.rcpts[i].action, .status, .final_recipient ...
 *	dsn_free(&d);
 * DESCRIPTION
 *	A bounce's machine-readable part, read from bytes a remote MTA (or
 *	anyone) wrote. dsn_parse reads a message/delivery-status body,
 *	decoded to UTF-8 with LF line ends: blocks of header-style fields
 *	separated by blank lines, the first per-message (Original-Envelope-Id,
 *	Reporting-MTA), the others per-recipient (Action, Status,
 *	Final-Recipient, Original-Recipient, Diagnostic-Code). A first block
 *	that already names a recipient (Final-Recipient or Action) counts
 *	as one; a block that holds none of Action, Status and Final-Recipient
 *	is prose and dropped. Field names compare case-insensitively,
 *	continuation lines are joined, the first of a repeated field wins.
 *	Action is lower-cased; Status keeps its first word ("5.1.1
 *	(comment)" -> "5.1.1"); the recipients lose their "rfc822;" type and
 *	any <>, and are lower-cased; Reporting-MTA loses its "dns;" type.
 *	dsn_parse marks the report present even when it holds nothing.
 *
 *	dsn_take_returned_headers reads the header block of the returned
 *	message (message/rfc822 or text/rfc822-headers, as bytes) for its
 *	Message-ID, without <>; it marks orig_headers_present. The first
 *	Message-ID taken stays.
 * LIMITS
 *	At most INMSG_MAX_DSN_RCPTS recipient blocks are kept (the rest are
 *	not read); a field value is cut at DSN_MAX_VALUE bytes, continuation
 *	lines included, before it is cleaned (an invalid byte becomes the
 *	three of U+FFFD). Values are valid UTF-8 without controls.
 * ERRORS
 *	dsn_parse and dsn_take_returned_headers: 0 or -ENOMEM.
 *	Malformed text is no error: what cannot be read is left out.
 * OWNERSHIP
 *	The struct owns every string and the rcpts array; dsn_free frees
 *	them (not the struct itself, which struct inmsg embeds). Text is
 *	only read.
 * THREAD SAFETY
 *	Reentrant; a struct inmsg_dsn belongs to one thread at a time.
 */
#ifndef CAREPOST_DSN_H
#define CAREPOST_DSN_H

#include <stddef.h>

#define INMSG_MAX_DSN_RCPTS	256u	/* recipient blocks of a DSN */
#define DSN_MAX_VALUE		1000u	/* bytes of a field, before cleaning */

/* One per-recipient block of an RFC 3464 delivery-status report. */
struct inmsg_dsn_rcpt {
	char *action;			/* lower-case: failed, delayed, ... */
	char *status;			/* "5.1.1" */
	char *final_recipient;		/* the value after "rfc822;", lower-case */
	char *original_recipient;	/* idem; may be NULL */
	char *diagnostic_code;		/* as given, unfolded; may be NULL */
};

struct inmsg_dsn {
	int present;			/* a message/delivery-status part was parsed */
	char *original_envelope_id;	/* may be NULL */
	char *reporting_mta;		/* may be NULL */
	struct inmsg_dsn_rcpt *rcpts;
	size_t n_rcpts;
	char *orig_message_id;		/* Message-ID of the returned message */
	int orig_headers_present;	/* message/rfc822 or text/rfc822-headers seen */
};

int dsn_parse(struct inmsg_dsn *dsn, const char *text, size_t len);
int dsn_take_returned_headers(struct inmsg_dsn *dsn, const char *raw,
			      size_t len);
void dsn_free(struct inmsg_dsn *dsn);

#endif
