/*
 * NAME
 *	arf - the fields of an RFC 5965 feedback report (a complaint)
 * SYNOPSIS
 *	#include "arf.h"
 *
 *	struct inmsg_arf a = { 0 };
 *
 *	r = arf_parse(&a, text, len);		(message/feedback-report body)
 *	r = arf_take_reported_headers(&a, raw, rawlen);
 *	... a.feedback_type, a.orig_message_id, a.original_mail_from ...
 *	arf_free(&a);
 *	switch (arf_kind(a.feedback_type)) { ... }
 * DESCRIPTION
 *	A feedback loop's machine-readable part (Yahoo's CFL, Microsoft's
 *	JMRP, AOL's and others: the Abuse Reporting Format), read from bytes
 *	a mailbox provider (or anyone) wrote. arf_parse reads a
 *	message/feedback-report body, decoded to UTF-8 with LF line ends:
 *	"Name: value" fields, blank lines and lines without a colon skipped
 *	(some providers put MIME headers and blank lines in it), through
 *	report_fields (dsn.h). Field names compare case-insensitively, the
 *	first of a repeated field wins. It keeps:
 *
 *	Feedback-Type		lower-cased, its first word ("abuse")
 *	User-Agent, Version	as given
 *	Original-Mail-From	the addr-spec, no <>, lower-cased
 *	Original-Rcpt-To	idem (the first)
 *	Reported-Domain		lower-cased
 *	Redacted-Address	present: redacted (RFC 6590: the provider hid
 *				the recipient's address)
 *
 *	and marks the report present even when it holds none of them. A
 *	second message/feedback-report part adds nothing.
 *
 *	arf_take_reported_headers reads the header block of the reported
 *	message (message/rfc822 or text/rfc822-headers, as bytes) for its
 *	Message-ID and Return-Path, without <> (the Return-Path
 *	lower-cased); it marks orig_headers_present. The first ones taken
 *	stay.
 *
 *	arf_kind says what a Feedback-Type asks of the sender: a complaint
 *	(abuse, fraud; and, by RFC 5965 section 3.1, any type it does not
 *	know counts as "other", which is a complaint too), a virus report,
 *	a not-spam vote, an authentication failure report (RFC 6591), or
 *	none (no Feedback-Type: a malformed report).
 * LIMITS
 *	A field value is cut at DSN_MAX_VALUE bytes before it is cleaned.
 *	Values are valid UTF-8 without controls.
 * ERRORS
 *	arf_parse and arf_take_reported_headers: 0 or -ENOMEM. Malformed
 *	text is no error: what cannot be read is left out.
 * OWNERSHIP
 *	The struct owns every string; arf_free frees them (not the struct,
 *	which struct inmsg embeds). Text is only read. arf_kind_name returns
 *	a static string.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_ARF_H
#define CAREPOST_ARF_H

#include <stddef.h>

struct inmsg_arf {
	int present;			/* a message/feedback-report part was parsed */
	char *feedback_type;		/* lower-case first word; NULL: none */
	char *user_agent;		/* may be NULL */
	char *version;			/* may be NULL */
	char *original_mail_from;	/* lower-case addr-spec; may be NULL */
	char *original_rcpt_to;		/* idem */
	char *reported_domain;		/* lower-case; may be NULL */
	int redacted;			/* Redacted-Address given */
	char *orig_message_id;		/* of the reported message; may be NULL */
	char *orig_return_path;		/* idem, lower-case */
	int orig_headers_present;	/* message/rfc822 or text/rfc822-headers seen */
};

enum arf_kind {
	ARF_NONE = 0,			/* no Feedback-Type: malformed */
	ARF_COMPLAINT,			/* abuse, fraud, other, unknown types */
	ARF_VIRUS,
	ARF_NOT_SPAM,
	ARF_AUTH_FAILURE,
};

int arf_parse(struct inmsg_arf *a, const char *text, size_t len);
int arf_take_reported_headers(struct inmsg_arf *a, const char *raw, size_t len);
void arf_free(struct inmsg_arf *a);
enum arf_kind arf_kind(const char *feedback_type);
const char *arf_kind_name(enum arf_kind k);

#endif
