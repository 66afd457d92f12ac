/*
 * NAME
 *	utf8 - clean UTF-8 out of bytes nobody vouched for
 * DESCRIPTION
 *	See utf8.h. Well-formedness is cp_utf8_seq_len's (util.c) alone.
 */
#include "utf8.h"

#include "util.h"

static const char replacement[] = "\xEF\xBF\xBD";	/* U+FFFD */

int
utf8_clean(struct buf *b, const char *in, size_t len, enum utf8_clean_mode mode)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, n;
	int r = 0;

	if (mode == UTF8_CLEAN_CRLF)
		r = buf_reserve(b, len + len / 16);
	while (r == 0 && i < len) {
		if (mode == UTF8_CLEAN_CRLF && (s[i] == '\r' || s[i] == '\n')) {
			i += s[i] == '\r' && i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
			r = buf_append(b, "\r\n", 2);
		} else if (s[i] == 0 || (n = cp_utf8_seq_len(s + i, len - i)) == 0) {
			r = buf_append(b, replacement, 3);
			i++;
		} else if (mode == UTF8_CLEAN_HEADER &&
			   (s[i] < 0x20 || s[i] == 0x7F)) {
			r = buf_putc(b, ' ');
			i++;
		} else {
			r = buf_append(b, s + i, n);
			i += n;
		}
	}
	return r < 0 ? r : buf_append(b, "", 0);
}

int
utf8_put(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return buf_append(b, u, n);
}

uint32_t
utf8_decode(const void *s, size_t n)
{
	static const unsigned char lead_mask[] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
	const unsigned char *p = s;
	uint32_t c;

	if (n == 0 || n > 4)
		return 0xFFFD;
	c = p[0] & lead_mask[n];
	for (size_t i = 1; i < n; i++)
		c = (c << 6) | (p[i] & 0x3F);
	return c;
}
