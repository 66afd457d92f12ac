/*
 * NAME
 *	mailtext - a received message's header values and text as clean UTF-8
 * SYNOPSIS
 *	#include "mailtext.h"
 *
 *	char *subject = mailtext_decode_header(raw_value);	(RFC 2047)
 *	char *addr = mailtext_addr_dup("<Pat@Example.ORG>");	("pat@example.org")
 *	r = mailtext_to_utf8("iso-8859-1", bytes, len, &buf);
 * DESCRIPTION
 *	The small conversions every part of the inbound parse needs, over
 *	bytes from outside: header values unfolded, RFC 2047 encoded-words
 *	decoded, controls made spaces and invalid UTF-8 made U+FFFD
 *	(utf8_clean); text in a declared charset converted to UTF-8 with LF
 *	line ends (libetpan's charconv), falling back to the bytes themselves
 *	when they are UTF-8 and to ISO-8859-1 when not, so that an unknown or
 *	lying charset never loses the text. A charset name is only handed to
 *	charconv when it is 1 to 40 characters of [A-Za-z0-9._:-].
 *
 *	mailtext_header_dup	cleaned, surrounding spaces trimmed
 *	mailtext_unfold_dup	CR and LF removed (folding undone), not cleaned
 *	mailtext_decode_header	unfolded, cleaned, RFC 2047 decoded, cleaned
 *	mailtext_strip_angle_dup  unfolded, trimmed, one pair of <> removed,
 *				cleaned (message ids, addresses)
 *	mailtext_addr_dup	strip_angle, lower-cased (ASCII only)
 *	mailtext_first_token_dup  the first word before blank, "(" or ";",
 *				lower-cased ("Auto-Replied (x)" -> "auto-replied")
 *	mailtext_lower		ASCII letters lower-cased in place
 * ERRORS
 *	The _dup functions return NULL only when out of memory.
 *	mailtext_to_utf8: 0, or -ENOMEM (-EFBIG over out's limit); a
 *	conversion that fails is no error (the fallbacks above).
 * OWNERSHIP
 *	The _dup functions return a new string (free()). mailtext_to_utf8
 *	appends to the caller's buffer and leaves it NUL-terminated.
 *	Arguments are only read.
 * THREAD SAFETY
 *	Reentrant (libetpan's charconv is).
 */
#ifndef CAREPOST_MAILTEXT_H
#define CAREPOST_MAILTEXT_H

#include <stddef.h>

#include "buf.h"

char *mailtext_header_dup(const char *in, size_t len);
char *mailtext_unfold_dup(const char *v);
char *mailtext_decode_header(const char *raw);
char *mailtext_strip_angle_dup(const char *raw);
char *mailtext_addr_dup(const char *addr);
char *mailtext_first_token_dup(const char *raw);
void mailtext_lower(char *s);

/* mailtext_to_utf8 - in[0..len) in charset cs (NULL: none declared). */
int mailtext_to_utf8(const char *cs, const char *in, size_t len,
		     struct buf *out);

#endif
