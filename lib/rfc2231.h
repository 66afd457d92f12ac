/*
 * NAME
 *	rfc2231 - MIME parameter values (RFC 2231, RFC 2047) and file names
 *	safe to show
 * SYNOPSIS
 *	#include "rfc2231.h"
 *
 *	struct rfc2231_param p[] = { { "filename*0*", "utf-8''%C3%A9t" },
 *				     { "filename*1", "e.pdf" } };
 *	char *v = rfc2231_value(p, 2, "filename");	("été.pdf")
 *	r = rfc2231_filename(p, 2, &name);
 * DESCRIPTION
 *	The parameters of a Content-Type or Content-Disposition, as name and
 *	value pairs (the caller gathers them from its MIME parser), read the
 *	way mail clients write them:
 *
 *	rfc2231_value - base as an RFC 2231 value: "base*" (charset'lang'
 *	percent-encoded) or the continuations "base*0" or "base*0*",
 *	"base*1", ... (at most 64) joined in order, percent-decoded where
 *	marked "*", converted from the declared charset to UTF-8
 *	(mailtext_to_utf8: an unknown charset falls back, never fails).
 *	Names compare case-insensitively; a "%" not followed by two hex
 *	digits stays as it is. NULL when there is no such parameter.
 *
 *	rfc2231_filename - the attachment file name: "filename", then
 *	"name", each as an RFC 2231 value or else a plain value with RFC 2047
 *	encoded-words decoded. The result loses any directory part (after
 *	the last "/" or "\"); C0 and C1 controls and the line and paragraph
 *	separators become "_"; invisible characters are removed (format
 *	characters such as the bidirectional controls U+202A-U+202E, which
 *	make "gpj.exe" read "exe.jpg", zero-width characters, the soft
 *	hyphen, tag characters, and fillers that render as blanks); it is cut
 *	to at most 255 bytes between characters. A name that is then empty,
 *	"." or ".." is no name.
 * ERRORS
 *	rfc2231_value returns NULL when absent or out of memory.
 *	rfc2231_filename: 0 (with *out NULL when there is no usable name),
 *	or -ENOMEM.
 * OWNERSHIP
 *	The parameters are only read. rfc2231_value's result and *out are
 *	new strings (free()): valid UTF-8 without NUL.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_RFC2231_H
#define CAREPOST_RFC2231_H

#include <stddef.h>

struct rfc2231_param {
	const char *name;
	const char *value;
};

#define RFC2231_FILENAME_MAX	255u	/* bytes of a cleaned file name */

char *rfc2231_value(const struct rfc2231_param *p, size_t n, const char *base);
int rfc2231_filename(const struct rfc2231_param *p, size_t n, char **out);
/*
 * rfc2231_filename_ok - s[0..len) is a name as rfc2231_filename makes
 * them (not empty, "." or "..", at most RFC2231_FILENAME_MAX bytes of
 * valid UTF-8, no directory part, no control, separator or invisible
 * character): for checking a name another process says it made. Pure.
 */
int rfc2231_filename_ok(const char *s, size_t len);

#endif
