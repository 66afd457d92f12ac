/*
 * NAME
 *	trim - cut a patient's reply email down to the reply itself
 * SYNOPSIS
 *	#include "trim.h"
 *
 *	char *reply = NULL, *elided = NULL;
 *	struct cp_error err;
 *
 *	r = trim_reply(body, body_len, &reply, &elided, &err);
 *	if (r < 0) quarantine(err.text);
 *	... reply: what the patient wrote; elided: quoted history ...
 *	free(reply); free(elided);
 * DESCRIPTION
 *	A re-implementation in C of the rules of discourse's
 *	email_reply_trimmer (Ruby, MIT). The text is first cleaned up
 *	(line endings, PGP armour, "Unsubscribe:" footers, enclosed-style
 *	and "name>"/"|" quote prefixes, "On <date>, <someone> wrote:"
 *	markers that a mail client wrapped over several lines). Each line
 *	is then classified as one of
 *
 *		e  empty		d  delimiter ("--", "____", ...)
 *		s  mobile signature	b  embedded-email marker ("On ...
 *		h  email header		   wrote:", "-----Original Message-----")
 *		q  quote (">")		t  text
 *		c/x/p  code fence open/close/either ("```")
 *
 *	and the string of those letters decides where the reply ends:
 *	everything after the first delimiter goes (except inside code
 *	fences), mobile signatures go, an embedded marker followed by
 *	quotes or headers ends the reply, three consecutive header lines
 *	("From:", "Sent:", "To:" in a dozen languages) end the reply,
 *	trailing quotes go. When the reply is at the end (a marker at the
 *	top, quoted history, then text) the text at the end is kept.
 *
 *	Markers are known in English, French, German, Dutch, Spanish,
 *	Portuguese, Italian, Polish, Russian, Ukrainian, Norwegian,
 *	Swedish and Chinese. Matching is hand-written (no regex library),
 *	locale-independent and works on UTF-8.
 *
 *	The reply and the elided part have LF line endings, no leading or
 *	trailing white space, are NUL-terminated and valid UTF-8: NUL bytes
 *	and invalid UTF-8 in the input become U+FFFD, a lone CR counts as a
 *	line break.
 * LIMITS
 *	Input over TRIM_MAX_SIZE bytes is refused (-EFBIG), over
 *	TRIM_MAX_LINES lines too (-E2BIG). Lines longer than
 *	TRIM_MAX_LINE_MATCH bytes are never markers (they count as text or
 *	empty) and the search for a marker wrapped over several lines looks
 *	at most a few lines and TRIM_MAX_MARKER_SPAN bytes ahead, so the cost
 *	is linear in the input.
 * OWNERSHIP
 *	*reply_out (and *elided_out when elided_out is not NULL) are
 *	allocated by trim_reply and freed by the caller with free(). On
 *	failure they are left NULL.
 * ERRORS
 *	0 on success (an empty reply is a success: *reply_out is ""),
 *	-EINVAL for a NULL argument, -EFBIG, -E2BIG, -ENOMEM. err (may be
 *	NULL) gets a reason without any of the text.
 * THREAD SAFETY
 *	Reentrant: no global mutable state.
 */
#ifndef CAREPOST_TRIM_H
#define CAREPOST_TRIM_H

#include <stddef.h>

#include "replymark.h"
#include "util.h"

#define TRIM_MAX_SIZE		(16u * 1024 * 1024)	/* bytes of input */
#define TRIM_MAX_LINES		500000u			/* lines of input */
#define TRIM_MAX_LINE_MATCH	REPLYMARK_MAX_LINE	/* longer lines are no markers */
#define TRIM_MAX_MARKER_SPAN	REPLYMARK_MAX_SPAN	/* a wrapped marker's bytes */

/*
 * trim_reply - split text[0..len) into the reply and what was elided.
 * text need not be NUL-terminated and may hold NULs. elided_out may be
 * NULL when the caller does not want the elided part.
 */
int trim_reply(const char *text, size_t len, char **reply_out,
	       char **elided_out, struct cp_error *err);

#endif
