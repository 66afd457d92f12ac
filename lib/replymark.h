/*
 * NAME
 *	replymark - the lines of a reply that mark quoted history
 * SYNOPSIS
 *	#include "replymark.h"
 *
 *	r = replymark_join_wrapped(&text, &scratch);
 *	c = replymark_classify(line, len);	('e', 'd', 's', 'b', 'h', 'q', ...)
 * DESCRIPTION
 *	The markers of email_reply_trimmer (discourse, Ruby, MIT), each of
 *	its regular expressions a small hand-written matcher named after the
 *	Ruby constant it stands for: "On <date>, <someone> wrote:" and its
 *	forms in a dozen languages, "<someone> wrote on <date>:", "<date>
 *	<someone> napisał(a):", forwarded-message and original-message
 *	lines, header lines ("From:", "Sent:", "To:" ...), delimiters,
 *	mobile signatures, quotes and code fences.
 *
 *	replymark_classify - the class of one line s[0..len) (no line
 *	break), as a letter: e empty, d delimiter, s mobile signature, b
 *	embedded-email marker, h email header, q quote, c/x/p code fence
 *	open/close/either, t text.
 *
 *	replymark_join_wrapped - the text t with every marker that a mail
 *	client wrapped over at most 4 line breaks put back on one line (each
 *	run of line breaks and white space in it one space), as the Ruby
 *	code's gsub does before it splits the text into lines; out is
 *	scratch space that may be swapped with t.
 * LIMITS
 *	A line longer than REPLYMARK_MAX_LINE bytes is never a marker, and a
 *	wrapped marker spans at most REPLYMARK_MAX_SPAN bytes: the cost is
 *	linear in the text.
 * ERRORS
 *	replymark_classify cannot fail. replymark_join_wrapped: 0, or
 *	-ENOMEM (-EFBIG over a buffer's limit), with t unchanged or joined
 *	as far as it got, valid either way.
 * OWNERSHIP
 *	Lines are only read. replymark_join_wrapped works in the caller's two
 *	buffers; after it, t holds the text (it may have changed places with
 *	out).
 * THREAD SAFETY
 *	Reentrant: the rule tables are constant.
 */
#ifndef CAREPOST_REPLYMARK_H
#define CAREPOST_REPLYMARK_H

#include <stddef.h>

#include "buf.h"

#define REPLYMARK_MAX_LINE	4096u		/* longer lines are no markers */
#define REPLYMARK_MAX_SPAN	2048u		/* a wrapped marker's bytes */

char replymark_classify(const char *s, size_t len);
int replymark_join_wrapped(struct buf *t, struct buf *out);

#endif
