/*
 * NAME
 *	buf - growable, length-carrying byte buffer
 * SYNOPSIS
 *	#include "buf.h"
 *
 *	struct buf b = BUF_INIT;
 *	buf_append(&b, data, len); buf_printf(&b, "%d", n);
 *	... b.data is NUL-terminated, b.len bytes long ...
 *	buf_free(&b);
 * DESCRIPTION
 *	A buffer owns its storage. It is always NUL-terminated after a
 *	successful append so that it can be handed to C string APIs, but
 *	the length is authoritative (data may contain NULs).
 *	A buffer may carry a limit (b.max, 0 = unlimited): an append that
 *	would grow past it fails with -EFBIG and leaves the buffer unchanged.
 * ERRORS
 *	The appending functions and buf_reserve return 0, -EFBIG (over
 *	b.max, or a size that would overflow) or -ENOMEM; buf_printf also
 *	-EINVAL when the format cannot be rendered. A failed append leaves
 *	the buffer as it was (buf_append_text included).
 * OWNERSHIP
 *	The buffer owns data: buf_free releases it, and buf_steal hands it
 *	to the caller (free()) and leaves the buffer empty; both keep b.max.
 *	buf_steal returns NULL only when an empty buffer cannot get its one
 *	byte. Appended bytes are copied. data may move on every append:
 *	pointers into it last until the next append, buf_reserve, buf_free
 *	or buf_steal.
 * THREAD SAFETY
 *	A buffer belongs to one thread at a time.
 */
#ifndef CAREPOST_BUF_H
#define CAREPOST_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;		/* 0: no limit */
};

#define BUF_INIT { NULL, 0, 0, 0 }

int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
/* buf_append_base64 - the base64 of data (RFC 4648, padded, no breaks). */
int buf_append_base64(struct buf *b, const void *data, size_t len);
/*
 * buf_append_text - in[0..len) as well-formed UTF-8 text with LF line
 * ends: CRLF and lone CR become LF, NUL and every byte of an ill-formed
 * sequence become U+FFFD. On error nothing is appended.
 */
int buf_append_text(struct buf *b, const char *in, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);		/* len = 0, keeps storage */
/* buf_truncate - back to len bytes (len <= b->len): undo appends. */
void buf_truncate(struct buf *b, size_t len);
void buf_free(struct buf *b);		/* releases storage */
/* buf_steal - hand the NUL-terminated data to the caller (free()). */
char *buf_steal(struct buf *b, size_t *len);

static inline void buf_freep(struct buf *b) { buf_free(b); }
#define _cleanup_buf_ __attribute__((cleanup(buf_freep)))

#endif
