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
 *	report_fields calls fn for each "Name: value" field of s, in order:
 *	continuation lines joined (the value as written, before cleaning,
 *	cut at DSN_MAX_VALUE bytes), lines without a colon skipped. Both
 *	machine-readable reports read their fields with it (and arf.h's
 *	message/feedback-report). report_header gives the first "name:"
 *	field of a header block (up to its blank line), cleaned, cut at
 *	DSN_MAX_VALUE bytes; NULL when absent or out of memory.
 *	report_value cleans a value as the fields above are: cut at
 *	DSN_MAX_VALUE bytes, then as how asks: REPORT_AFTER_SEMI drops what
 *	precedes its first ";" ("rfc822; a@b"), REPORT_LOWER lower-cases it,
 *	REPORT_WORD keeps its first word ("5.1.1 (x)" -> "5.1.1"),
 *	REPORT_ANGLE takes the <> off an address; NULL when out of memory.
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
 *	report_fields: 0, -ENOMEM, or what fn returned when < 0 (it stops).
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

typedef int (*report_field_fn)(void *ud, const char *name, size_t nlen,
			       const char *value, size_t vlen);

int report_fields(const char *s, size_t len, report_field_fn fn, void *ud);
#define REPORT_AFTER_SEMI	0x1u
#define REPORT_LOWER		0x2u
#define REPORT_WORD		0x4u
#define REPORT_ANGLE		0x8u

char *report_value(const char *v, size_t len, unsigned how);
char *report_header(const char *raw, size_t len, const char *name);

int dsn_parse(struct inmsg_dsn *dsn, const char *text, size_t len);
int dsn_take_returned_headers(struct inmsg_dsn *dsn, const char *raw,
			      size_t len);
void dsn_free(struct inmsg_dsn *dsn);

#endif
