/*
 * NAME
 *	rfc2231 - MIME parameter values (RFC 2231, RFC 2047) and file names
 *	safe to show
 * DESCRIPTION
 *	See rfc2231.h.
 */
#include "rfc2231.h"

#include <strings.h>

#include "buf.h"
#include "mailtext.h"
#include "utf8.h"
#include "util.h"

#define RFC2231_MAX_SECTIONS	64u

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * rfc2231_value - base ("filename") as an RFC 2231 value: "base*" or the
 * continuations "base*0*", "base*1", ... joined and percent-decoded,
 * converted from the declared charset. NULL when absent.
 */
char *
rfc2231_value(const struct rfc2231_param *p, size_t n, const char *base)
{
	size_t bl = strlen(base);
	struct buf raw = BUF_INIT, out = BUF_INIT;
	char charset[48] = "";
	int found = 0;

	for (unsigned seq = 0; seq < RFC2231_MAX_SECTIONS; seq++) {
		int hit = 0;

		for (size_t i = 0; i < n && !hit; i++) {
			const char *nm = p[i].name, *v = p[i].value;
			int encoded;
			char want[16];

			if (strncasecmp(nm, base, bl) != 0 || nm[bl] != '*')
				continue;
			nm += bl + 1;
			if (*nm == '\0') {		/* "base*" */
				if (seq != 0)
					continue;
				encoded = 1;
			} else {
				snprintf(want, sizeof(want), "%u", seq);
				if (strncmp(nm, want, strlen(want)) != 0)
					continue;
				nm += strlen(want);
				if (*nm != '\0' && strcmp(nm, "*") != 0)
					continue;
				encoded = *nm == '*';
			}
			hit = 1;
			if (encoded && seq == 0) {
				const char *q1 = strchr(v, '\''), *q2;

				if (q1 && (q2 = strchr(q1 + 1, '\'')) != NULL) {
					size_t cl = (size_t)(q1 - v);

					if (cl < sizeof(charset)) {
						memcpy(charset, v, cl);
						charset[cl] = '\0';
					}
					v = q2 + 1;
				}
			}
			for (; *v; v++) {
				int h, l;

				if (encoded && v[0] == '%' && (h = hexval(v[1])) >= 0 &&
				    (l = hexval(v[2])) >= 0) {
					if (buf_putc(&raw, (char)(h * 16 + l)) < 0)
						goto fail;
					v += 2;
				} else if (buf_putc(&raw, *v) < 0)
					goto fail;
			}
		}
		if (!hit)
			break;
		found = 1;
	}
	if (!found) {
		buf_free(&raw);
		return NULL;
	}
	if (mailtext_to_utf8(charset[0] ? charset : NULL, raw.data ? raw.data : "",
			 raw.len, &out) < 0)
		goto fail;
	buf_free(&raw);
	return buf_steal(&out, NULL);
fail:
	buf_free(&raw);
	buf_free(&out);
	return NULL;
}

/*
 * invisible_cp - a character that changes how a name is shown without
 * being seen: format characters (Unicode category Cf: bidirectional
 * controls, U+202E turning "gpj.exe" into what reads as "exe.jpg";
 * zero-width characters; the soft hyphen; tag characters), the combining
 * grapheme joiner, and the fillers that render as blanks (Hangul, Khmer).
 */
static int
invisible_cp(uint32_t c)
{
	return c == 0xAD || c == 0x34F || c == 0x61C || c == 0x115F ||
	       c == 0x1160 || c == 0x17B4 || c == 0x17B5 || c == 0x180E ||
	       c == 0x3164 || c == 0xFEFF || c == 0xFFA0 ||
	       (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
	       (c >= 0x2060 && c <= 0x206F) || (c >= 0xFFF9 && c <= 0xFFFB) ||
	       (c >= 0x1D173 && c <= 0x1D17A) || (c >= 0xE0000 && c <= 0xE007F);
}

/*
 * clean_filename - basename only, at most 255 bytes; C0 and C1 controls
 * and the line and paragraph separators become "_", invisible characters
 * (invisible_cp) are dropped.
 * s is valid UTF-8 (mailtext_header_dup).
 */
static char *
clean_filename(char *s)
{
	char *base;
	size_t n, i, o;

	if (s == NULL)
		return NULL;
	for (i = 0, o = 0; s[i]; i += n) {
		uint32_t c;

		n = cp_utf8_seq_len(s + i, strlen(s + i));
		if (n == 0)
			n = 1;		/* cannot happen after mailtext_header_dup */
		c = utf8_decode(s + i, n);
		if (invisible_cp(c))
			continue;
		if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029) {
			s[o++] = '_';		/* controls, line and paragraph separators */
			continue;
		}
		memmove(s + o, s + i, n);
		o += n;
	}
	s[o] = '\0';
	base = s;
	for (char *p = s; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	memmove(s, base, strlen(base) + 1);
	n = strlen(s);
	if (n > RFC2231_FILENAME_MAX) {
		n = RFC2231_FILENAME_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
		s[n] = '\0';
	}
	if (s[0] == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
		free(s);
		return NULL;
	}
	return s;
}

int
rfc2231_filename_ok(const char *s, size_t len)
{
	if (len == 0 || len > RFC2231_FILENAME_MAX || !cp_utf8_valid(s, len) ||
	    (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0, n; i < len; i += n) {
		uint32_t c;

		n = cp_utf8_seq_len(s + i, len - i);
		c = utf8_decode(s + i, n);
		if (invisible_cp(c) || c < 0x20 || (c >= 0x7F && c <= 0x9F) ||
		    c == 0x2028 || c == 0x2029 || c == '/' || c == '\\')
			return 0;
	}
	return 1;
}

int
rfc2231_filename(const struct rfc2231_param *p, size_t n, char **out)
{
	static const char *const bases[] = { "filename", "name" };

	*out = NULL;
	for (size_t b = 0; b < CP_ARRAY_SIZE(bases); b++) {
		char *s = rfc2231_value(p, n, bases[b]);

		if (s == NULL) {
			for (size_t i = 0; i < n; i++)
				if (strcasecmp(p[i].name, bases[b]) == 0) {
					if ((s = mailtext_decode_header(p[i].value)) == NULL)
						return -ENOMEM;
					break;
				}
		}
		if (s != NULL) {
			char *t = mailtext_header_dup(s, strlen(s));

			free(s);
			if (t == NULL)
				return -ENOMEM;
			*out = clean_filename(t);
			return 0;
		}
	}
	return 0;
}
