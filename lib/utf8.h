/*
 * NAME
 *	utf8 - clean UTF-8 out of bytes nobody vouched for
 * SYNOPSIS
 *	#include "utf8.h"
 *
 *	r = utf8_clean(&b, in, len, UTF8_CLEAN_HEADER);
 *	r = utf8_put(&b, 0x20AC);
 *	cp = utf8_decode(s, n);
 * DESCRIPTION
 *	The one loop that turns bytes from outside (a received header, a
 *	template's output, a portal's text) into valid UTF-8: a byte that
 *	does not start a well-formed sequence (cp_utf8_seq_len), and NUL,
 *	becomes U+FFFD. UTF8_CLEAN_HEADER also makes every other C0
 *	control and DEL a space (a header value is one line);
 *	UTF8_CLEAN_CRLF makes every line end (LF, CRLF, a lone CR) CRLF
 *	and keeps the other controls (a body for the wire). For LF line
 *	ends use buf_append_text.
 *
 *	utf8_put appends the encoding of one code point; utf8_decode reads
 *	the code point of a sequence cp_utf8_seq_len accepted.
 * ERRORS
 *	utf8_clean and utf8_put: 0, or what buf_append returns (-ENOMEM,
 *	-EFBIG over the buffer's limit); on failure the buffer may hold part
 *	of the text. utf8_decode cannot fail.
 * OWNERSHIP
 *	The caller owns the buffer; the functions copy and keep nothing.
 *	utf8_clean leaves b NUL-terminated, even when len is 0.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_UTF8_H
#define CAREPOST_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum utf8_clean_mode {
	UTF8_CLEAN_HEADER,	/* controls and DEL become spaces */
	UTF8_CLEAN_CRLF,	/* line ends become CRLF */
};

/* utf8_clean - append in[0..len) to b as valid UTF-8, as mode says. */
int utf8_clean(struct buf *b, const char *in, size_t len,
	       enum utf8_clean_mode mode);

/* utf8_put - append code point cp (at most U+10FFFF) as UTF-8. */
int utf8_put(struct buf *b, uint32_t cp);

/*
 * utf8_decode - the code point of the well-formed sequence s[0..n), n as
 * cp_utf8_seq_len returned it (1 to 4).
 */
uint32_t utf8_decode(const void *s, size_t n);

#endif
