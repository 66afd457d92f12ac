/*
 * NAME
 *	mailtext - a received message's header values and text as clean UTF-8
 * DESCRIPTION
 *	See mailtext.h. The cleaning itself is utf8_clean's (header values)
 *	and buf_append_text's (text); RFC 2047 and charsets are libetpan's.
 */
#include "mailtext.h"

#include <ctype.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "utf8.h"
#include "util.h"

void
mailtext_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

char *
mailtext_header_dup(const char *in, size_t len)
{
	struct buf b = BUF_INIT;
	size_t a = 0, e;
	char *s;

	if (utf8_clean(&b, in, len, UTF8_CLEAN_HEADER) < 0) {
		buf_free(&b);
		return NULL;
	}
	if ((s = buf_steal(&b, NULL)) == NULL)
		return NULL;
	e = strlen(s);
	while (s[a] == ' ')
		a++;
	while (e > a && s[e - 1] == ' ')
		e--;
	memmove(s, s + a, e - a);
	s[e - a] = '\0';
	return s;
}

/* text_append - UTF-8 with LF line ends, NUL-terminated even when empty. */
static int
text_append(struct buf *out, const char *in, size_t len)
{
	int r = buf_append_text(out, in, len);

	return r < 0 ? r : buf_append(out, "", 0);
}

/* latin1_to_utf8 - bytes as ISO-8859-1 into UTF-8 (the unknown-charset fallback). */
static int
latin1_to_utf8(const char *in, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int r;

		if (c == 0)
			r = utf8_put(out, 0xFFFD);
		else if (c == '\r') {
			r = buf_putc(out, '\n');
			if (i + 1 < len && in[i + 1] == '\n')
				i++;
		} else
			r = utf8_put(out, c);
		if (r < 0)
			return r;
	}
	return buf_append(out, "", 0);
}

static int
charset_name_ok(const char *cs)
{
	size_t n = strlen(cs);

	if (n == 0 || n > 40)
		return 0;
	for (; *cs; cs++)
		if (!isalnum((unsigned char)*cs) && !strchr("._:-", *cs))
			return 0;
	return 1;
}

static int
charset_is_utf8ish(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

/*
 * to_utf8_text - decoded bytes in charset cs (may be NULL) as UTF-8 text
 * with LF line ends. Unknown or failing charsets fall back to the bytes
 * themselves when they are UTF-8, else to ISO-8859-1.
 */
int
mailtext_to_utf8(const char *cs, const char *in, size_t len, struct buf *out)
{
	if (cs != NULL && !charset_is_utf8ish(cs) && charset_name_ok(cs)) {
		char *conv = NULL;
		size_t convlen = 0;

		if (charconv_buffer("utf-8", cs, in, len, &conv, &convlen) ==
		    MAIL_CHARCONV_NO_ERROR && conv != NULL) {
			int r = text_append(out, conv, convlen);

			charconv_buffer_free(conv);
			return r;
		}
		if (conv != NULL)
			charconv_buffer_free(conv);
	}
	if (cp_utf8_valid(in, len) || (cs != NULL && charset_is_utf8ish(cs)))
		return text_append(out, in, len);
	return latin1_to_utf8(in, len, out);
}

/* unfold - a copy of a header value with CR/LF removed (folding undone). */
char *
mailtext_unfold_dup(const char *v)
{
	size_t n = strlen(v), j = 0;
	char *s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '\r' || v[i] == '\n')
			continue;
		s[j++] = v[i];
	}
	s[j] = '\0';
	return s;
}

/* decode_header - RFC 2047 words to UTF-8, unfolded, sanitized. */
char *
mailtext_decode_header(const char *raw)
{
	_cleanup_free_ char *f = mailtext_unfold_dup(raw);
	_cleanup_free_ char *u = NULL;
	char *dec = NULL;
	size_t idx = 0;
	char *s;

	if (f == NULL)
		return NULL;
	/* Raw 8-bit bytes that are not UTF-8 would come out of libetpan's
	 * conversion as '?': make them U+FFFD first, as everywhere else. */
	u = mailtext_header_dup(f, strlen(f));
	if (u == NULL)
		return NULL;
	if (mailmime_encoded_phrase_parse("utf-8", u, strlen(u), &idx,
					  "utf-8", &dec) == MAILIMF_NO_ERROR &&
	    dec != NULL) {
		s = mailtext_header_dup(dec, strlen(dec));
		free(dec);
		return s;
	}
	free(dec);
	return mailtext_header_dup(u, strlen(u));
}

/* unfold_trimmed - v unfolded; [*a, *e) is it without surrounding blanks. */
static char *
unfold_trimmed(const char *v, size_t *a, size_t *e)
{
	char *u = mailtext_unfold_dup(v);

	if (u == NULL)
		return NULL;
	*a = 0;
	*e = strlen(u);
	while (*a < *e && isspace((unsigned char)u[*a]))
		(*a)++;
	while (*e > *a && isspace((unsigned char)u[*e - 1]))
		(*e)--;
	return u;
}

char *
mailtext_strip_angle_dup(const char *raw)
{
	size_t a, e;
	_cleanup_free_ char *u = unfold_trimmed(raw, &a, &e);

	if (u == NULL)
		return NULL;
	if (e > a && u[a] == '<')
		a++;
	if (e > a && u[e - 1] == '>')
		e--;
	return mailtext_header_dup(u + a, e - a);
}

char *
mailtext_addr_dup(const char *addr)
{
	char *s = mailtext_strip_angle_dup(addr);

	if (s != NULL)
		mailtext_lower(s);
	return s;
}

char *
mailtext_first_token_dup(const char *raw)
{
	size_t a, e, end;
	_cleanup_free_ char *u = unfold_trimmed(raw, &a, &end);
	char *s;

	if (u == NULL)
		return NULL;
	for (e = a; e < end && !isspace((unsigned char)u[e]) && u[e] != '(' &&
	     u[e] != ';'; e++)
		;
	if ((s = mailtext_header_dup(u + a, e - a)) != NULL)
		mailtext_lower(s);
	return s;
}
