/*
 * NAME
 *	buf - growable, length-carrying byte buffer
 * DESCRIPTION
 *	See buf.h.
 */
#include "buf.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	char *nd;

	if (extra > (size_t)-1 / 2 - b->len)
		return -EFBIG;
	need = b->len + extra + 1;
	if (b->max && need - 1 > b->max)
		return -EFBIG;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	nd = realloc(b->data, cap);
	if (nd == NULL)
		return -ENOMEM;
	b->data = nd;
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
	int r = buf_reserve(b, len);

	if (r < 0)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_append_text(struct buf *b, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t start = b->len, i = 0, j, n = 0;
	int r = buf_reserve(b, len);

	while (r == 0 && i < len) {
		/* the longest run that is copied as it is */
		for (j = i; j < len; j += n) {
			if (s[j] == '\r' || s[j] == '\0')
				break;
			n = s[j] < 0x80 ? 1 : cp_utf8_seq_len(s + j, len - j);
			if (n == 0)
				break;
		}
		if (j > i)
			r = buf_append(b, s + i, j - i);
		if (r < 0 || j == len)
			break;
		if (s[j] == '\r') {
			r = buf_putc(b, '\n');
			j += j + 1 < len && s[j + 1] == '\n' ? 2 : 1;
		} else {
			r = buf_append(b, "\xEF\xBF\xBD", 3);
			j++;
		}
		i = j;
	}
	if (r < 0)
		buf_truncate(b, start);
	return r;
}

int
buf_append_base64(struct buf *b, const void *data, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	size_t i;
	char *w;
	int r;

	if (len > (size_t)-1 / 8)
		return -EFBIG;
	r = buf_reserve(b, (len + 2) / 3 * 4);
	if (r < 0)
		return r;
	w = b->data + b->len;
	for (i = 0; i + 2 < len; i += 3) {
		*w++ = tab[p[i] >> 2];
		*w++ = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
		*w++ = tab[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
		*w++ = tab[p[i + 2] & 63];
	}
	if (i < len) {
		*w++ = tab[p[i] >> 2];
		if (i + 1 < len) {
			*w++ = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
			*w++ = tab[(p[i + 1] & 15) << 2];
		} else {
			*w++ = tab[(p[i] & 3) << 4];
			*w++ = '=';
		}
		*w++ = '=';
	}
	b->len = (size_t)(w - b->data);
	b->data[b->len] = '\0';
	return 0;
}

void
buf_truncate(struct buf *b, size_t len)
{
	if (len >= b->len)
		return;
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *
buf_steal(struct buf *b, size_t *len)
{
	char *d;

	if (b->data == NULL && buf_reserve(b, 0) < 0)
		return NULL;
	if (b->len == 0)
		b->data[0] = '\0';
	d = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}
