/*
 * NAME
 *	mime - build outbound RFC 5322 / MIME text: headers, parts, encodings
 * DESCRIPTION
 *	See mime.h. Header values are cleaned first (controls become spaces,
 *	invalid UTF-8 becomes U+FFFD), then cut into words at whitespace.
 *	Words that cannot go out as they are (non-ASCII, looking like an
 *	encoded-word, or too long for a line) are grouped with their
 *	neighbours into runs and written as RFC 2047 encoded-words of at
 *	most 75 characters, cut only between UTF-8 characters. Everything is
 *	then folded before whitespace so that lines stay within 78 columns
 *	where the words allow and never exceed 998.
 */
#include "mime.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <gcrypt.h>

#include "utf8.h"
#include "util.h"

#define LINE_SOFT	78	/* RFC 5322 2.1.1 "SHOULD" */
#define LINE_HARD	998	/* RFC 5322 2.1.1 "MUST" */
#define EW_MAX		75	/* RFC 2047 2: longest encoded-word */
#define EW_MIN		24	/* fold first when less room remains */
#define EW_OVERHEAD	12	/* "=?UTF-8?Q?" + "?=" */
#define WORD_MAX	900	/* longer ASCII words are encoded */
#define WS_MAX		32	/* longer whitespace runs become one space */
#define BODY_COLS	76	/* RFC 2045 6.7 / 6.8 */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex_upper[] = "0123456789ABCDEF";

/* A header line being written: where we are, for folding. */
struct hdr {
	struct buf *out;
	size_t col;		/* bytes on the current line */
};

/*
 * hdr_put - append ws then text, folding before ws when the line would
 * grow too long. A fold needs whitespace to fold at and a word to
 * follow it, so that no line is whitespace only.
 */
static int
hdr_put(struct hdr *h, const char *ws, size_t wslen, const char *text,
	size_t textlen)
{
	size_t need = wslen + textlen;
	int r;

	if (wslen > 0 && textlen > 0 &&
	    ((h->col + need > LINE_SOFT && need <= LINE_SOFT) ||
	     h->col + need > LINE_HARD)) {
		r = buf_puts(h->out, "\r\n");
		if (r < 0)
			return r;
		h->col = 0;
	}
	r = buf_append(h->out, ws, wslen);
	if (r < 0)
		return r;
	r = buf_append(h->out, text, textlen);
	if (r < 0)
		return r;
	h->col += need;
	return 0;
}

/* Q encoding (RFC 2047 4.2, the strict "phrase" set). */
static int
q_literal(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '!' || c == '*' || c == '+' ||
	       c == '-' || c == '/';
}

static size_t
q_len(const unsigned char *s, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += (q_literal(s[i]) || s[i] == ' ') ? 1 : 3;
	return len;
}

static size_t
b_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

static void
q_encode(char *dst, const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			*dst++ = '_';
		} else if (q_literal(s[i])) {
			*dst++ = (char)s[i];
		} else {
			*dst++ = '=';
			*dst++ = hex_upper[s[i] >> 4];
			*dst++ = hex_upper[s[i] & 15];
		}
	}
	*dst = '\0';
}

static void
b_encode(char *dst, const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 |
			     s[i + 2];
		*dst++ = b64_alphabet[v >> 18];
		*dst++ = b64_alphabet[(v >> 12) & 63];
		*dst++ = b64_alphabet[(v >> 6) & 63];
		*dst++ = b64_alphabet[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)s[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		*dst++ = b64_alphabet[v >> 18];
		*dst++ = b64_alphabet[(v >> 12) & 63];
		*dst++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		*dst++ = '=';
	}
	*dst = '\0';
}

/*
 * hdr_encoded - write s[0..n) (clean UTF-8) as encoded-words, the first
 * preceded by ws, the rest by one space (ignored between encoded-words
 * by RFC 2047 6.2). Each word is sized to the room left on its line.
 */
static int
hdr_encoded(struct hdr *h, const char *ws, size_t wslen, const char *text,
	    size_t n)
{
	const unsigned char *s = (const unsigned char *)text;
	int use_b = b_len(n) < q_len(s, n);
	size_t i = 0;

	while (i < n) {
		char word[EW_MAX + 1];
		size_t room, payload, take = 0, enc = 0;
		int r;

		if (h->col + wslen + EW_MIN > LINE_SOFT) {
			r = buf_puts(h->out, "\r\n");
			if (r < 0)
				return r;
			h->col = 0;
		}
		room = LINE_SOFT > h->col + wslen ?
		       LINE_SOFT - h->col - wslen : 0;
		if (room > EW_MAX)
			room = EW_MAX;
		if (room < EW_MIN)
			room = EW_MIN;	/* long header name: overlong once */
		payload = room - EW_OVERHEAD;
		/* Take whole characters while they fit. */
		while (i + take < n) {
			size_t k = cp_utf8_seq_len(s + i + take, n - i - take);
			size_t e;

			if (k == 0)
				k = 1;	/* cannot happen on clean text */
			e = use_b ? b_len(take + k) : enc + q_len(s + i + take, k);
			if (e > payload)
				break;
			take += k;
			enc = e;
		}
		if (take == 0)
			return -EINVAL;	/* cannot happen: payload >= 12 */
		memcpy(word, use_b ? "=?UTF-8?B?" : "=?UTF-8?Q?", 10);
		if (use_b)
			b_encode(word + 10, s + i, take);
		else
			q_encode(word + 10, s + i, take);
		memcpy(word + 10 + enc, "?=", 3);
		r = hdr_put(h, ws, wslen, word, 10 + enc + 2);
		if (r < 0)
			return r;
		i += take;
		ws = " ";
		wslen = 1;
	}
	return 0;
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* word_needs_encoding - cannot be written literally in a header. */
static int
word_needs_encoding(const char *w, size_t n)
{
	if (n > WORD_MAX)
		return 1;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)w[i] >= 0x80)
			return 1;
		if (w[i] == '=' && i + 1 < n && w[i + 1] == '?')
			return 1;
	}
	return 0;
}

/*
 * hdr_text - write clean text (starting with whitespace, not ending with
 * it) as words: literal where possible, encoded runs elsewhere.
 */
static int
hdr_text(struct hdr *h, const char *text)
{
	const char *p = text;
	const char *run = NULL, *run_ws = NULL;	/* pending encoded run */
	size_t run_len = 0, run_wslen = 0;
	int r;

	for (;;) {
		const char *ws = p, *w;
		size_t wslen, wlen;

		while (is_wsp(*p))
			p++;
		wslen = (size_t)(p - ws);
		w = p;
		while (*p != '\0' && !is_wsp(*p))
			p++;
		wlen = (size_t)(p - w);
		if (wlen > 0 && word_needs_encoding(w, wlen)) {
			if (run == NULL) {
				run = w;
				run_ws = ws;
				run_wslen = wslen;
			}
			run_len = (size_t)(p - run);
			continue;
		}
		if (run != NULL) {
			/* Whitespace inside a run is encoded with it. */
			if (run_wslen > WS_MAX)
				run_wslen = 1;
			r = hdr_encoded(h, run_ws, run_wslen, run, run_len);
			if (r < 0)
				return r;
			run = NULL;
		}
		if (wslen > WS_MAX)
			wslen = 1;
		if (wlen == 0)
			return 0;
		r = hdr_put(h, ws, wslen, w, wlen);
		if (r < 0)
			return r;
	}
}

static int
header_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 76)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= 0x20 || name[i] >= 0x7f || name[i] == ':')
			return 0;
	return 1;
}

/*
 * header_start - "Name:" plus the first word, which always follows a
 * single space; the rest comes from the caller.
 */
static int
header_start(struct hdr *h, struct buf *out, const char *name)
{
	int r;

	h->out = out;
	h->col = strlen(name) + 1;
	r = buf_puts(out, name);
	if (r < 0)
		return r;
	return buf_putc(out, ':');
}

/* Leading whitespace would be lost on the first word; put one space. */
static int
header_value(struct hdr *h, const char *clean)
{
	int r;

	while (is_wsp(*clean))
		clean++;
	if (*clean == '\0')
		return buf_putc(h->out, ' ');
	/* The first word is glued to " " so that it may fold after ':'. */
	r = 0;
	{
		struct buf tmp = BUF_INIT;

		r = buf_putc(&tmp, ' ');
		if (r == 0)
			r = buf_puts(&tmp, clean);
		if (r == 0)
			r = hdr_text(h, tmp.data);
		buf_free(&tmp);
	}
	return r;
}

int
mime_header(struct buf *out, const char *name, const char *value)
{
	_cleanup_buf_ struct buf clean = BUF_INIT;
	size_t start = out->len;
	struct hdr h;
	int r;

	if (!header_name_valid(name) || value == NULL)
		return -EINVAL;
	r = utf8_clean(&clean, value, strlen(value), UTF8_CLEAN_HEADER);
	if (r < 0)
		return r;
	r = header_start(&h, out, name);
	if (r == 0)
		r = header_value(&h, clean.data);
	if (r == 0)
		r = buf_puts(out, "\r\n");
	if (r < 0) {
		buf_truncate(out, start);
	}
	return r;
}

/* RFC 5322 atext, for display names that need no quoting. */
static int
atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

int
mime_addr_valid(const char *addr)
{
	size_t n, at = 0, ats = 0;

	if (addr == NULL)
		return 0;
	n = strlen(addr);
	if (n < 3 || n > 254)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];

		if (c <= 0x20 || c >= 0x7f || strchr("<>,\"()\\;:", c) != NULL)
			return 0;
		if (c == '@') {
			at = i;
			ats++;
		}
	}
	if (ats != 1 || at == 0 || at == n - 1 || at > 64)
		return 0;
	if (addr[0] == '.' || addr[at - 1] == '.' || addr[at + 1] == '.' ||
	    addr[n - 1] == '.' || strstr(addr, "..") != NULL)
		return 0;
	return 1;
}

/*
 * display_phrase - the display name as it will appear: atoms as they
 * are, other ASCII as a quoted-string; *encode set when it must be
 * encoded-words instead.
 */
static int
display_phrase(struct buf *phrase, const char *clean, int *encode)
{
	const char *s = clean;
	size_t n;
	int plain = 1, r;

	while (is_wsp(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_wsp(s[n - 1]))
		n--;
	*encode = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80 || (c == '=' && i + 1 < n && s[i + 1] == '?'))
			*encode = 1;
		else if (!atext(c) && !is_wsp((char)c))
			plain = 0;
	}
	if (*encode || plain || n > WORD_MAX)
		return buf_append(phrase, s, n);
	r = buf_putc(phrase, '"');
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			r = buf_putc(phrase, '\\');
		if (r == 0)
			r = buf_putc(phrase, s[i]);
	}
	if (r == 0)
		r = buf_putc(phrase, '"');
	return r;
}

int
mime_address(struct buf *out, const char *name, const char *display,
	     const char *addr)
{
	_cleanup_buf_ struct buf clean = BUF_INIT;
	_cleanup_buf_ struct buf phrase = BUF_INIT;
	_cleanup_buf_ struct buf angle = BUF_INIT;
	size_t start = out->len;
	struct hdr h;
	int encode = 0, r;

	if (!header_name_valid(name) || !mime_addr_valid(addr))
		return -EINVAL;
	if (display != NULL) {
		r = utf8_clean(&clean, display, strlen(display),
			       UTF8_CLEAN_HEADER);
		if (r < 0)
			return r;
		r = display_phrase(&phrase, clean.data, &encode);
		if (r < 0)
			return r;
	}
	r = header_start(&h, out, name);
	if (r < 0)
		goto fail;
	if (phrase.len == 0) {
		r = hdr_put(&h, " ", 1, addr, strlen(addr));
	} else {
		if (encode || phrase.len > WORD_MAX) {
			r = hdr_encoded(&h, " ", 1, phrase.data, phrase.len);
		} else {
			r = buf_putc(&angle, ' ');
			if (r == 0)
				r = buf_append(&angle, phrase.data, phrase.len);
			if (r == 0)
				r = hdr_text(&h, angle.data);
		}
		buf_reset(&angle);
		if (r == 0)
			r = buf_printf(&angle, "<%s>", addr);
		if (r == 0)
			r = hdr_put(&h, " ", 1, angle.data, angle.len);
	}
	if (r == 0)
		r = buf_puts(out, "\r\n");
fail:
	if (r < 0) {
		buf_truncate(out, start);
	}
	return r;
}

/* body_is_7bit - ASCII with every line at most 76 bytes (CRLF text). */
static int
body_is_7bit(const char *s, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] >= 0x80)
			return 0;
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
			col = 0;
			i++;
			continue;
		}
		if (++col > BODY_COLS)
			return 0;
	}
	return 1;
}

int
mime_text_part(struct buf *out, const char *text, size_t len)
{
	return mime_text_part_as(out, "text/plain; charset=utf-8", NULL, text, len);
}

int
mime_text_part_as(struct buf *out, const char *content_type,
		  const char *disposition, const char *text, size_t len)
{
	_cleanup_buf_ struct buf body = BUF_INIT;
	_cleanup_buf_ struct buf enc = BUF_INIT;
	const char *cte;
	int r;

	r = utf8_clean(&body, text, len, UTF8_CLEAN_CRLF);
	if (r < 0)
		return r;
	if (body_is_7bit(body.data, body.len)) {
		cte = "7bit";
		r = buf_append(&enc, body.data, body.len);
		if (r == 0 && body.len > 0 &&
		    (body.len < 2 || memcmp(body.data + body.len - 2, "\r\n", 2)))
			r = buf_puts(&enc, "\r\n");
	} else {
		cte = "quoted-printable";
		r = mime_qp_encode(&enc, body.data, body.len);
		if (r == 0 && enc.len > body.len + body.len / 2) {
			cte = "base64";
			buf_reset(&enc);
			r = mime_base64_encode(&enc, body.data, body.len);
		}
	}
	if (r < 0)
		return r;
	r = buf_printf(out, "Content-Type: %s\r\n%s%s%s"
		       "Content-Transfer-Encoding: %s\r\n\r\n", content_type,
		       disposition ? "Content-Disposition: " : "",
		       disposition ? disposition : "", disposition ? "\r\n" : "", cte);
	if (r < 0)
		return r;
	return buf_append(out, enc.data, enc.len);
}

/*
 * qp_token - the encoding of s[i] at output column col: literal, or =XX
 * for '=', non-printables, whitespace before a line end, and a '.' or
 * the 'F' of "From " that would start a line (mbox and SMTP habits).
 */
static size_t
qp_token(const unsigned char *s, size_t len, size_t i, size_t col,
	 char tok[4])
{
	unsigned char c = s[i];
	int literal;

	if (c == ' ' || c == '\t') {
		literal = i + 1 < len && s[i + 1] != '\r' && s[i + 1] != '\n';
	} else {
		literal = c >= 33 && c <= 126 && c != '=';
		if (col == 0 && c == '.')
			literal = 0;
		if (col == 0 && c == 'F' && len - i >= 5 &&
		    memcmp(s + i, "From ", 5) == 0)
			literal = 0;
	}
	if (literal) {
		tok[0] = (char)c;
		tok[1] = '\0';
		return 1;
	}
	tok[0] = '=';
	tok[1] = hex_upper[c >> 4];
	tok[2] = hex_upper[c & 15];
	tok[3] = '\0';
	return 3;
}

int
mime_qp_encode(struct buf *out, const char *data, size_t len)
{
	const unsigned char *s = (const unsigned char *)data;
	size_t col = 0, i = 0;
	int r;

	while (i < len) {
		char tok[4];
		size_t toklen, next;
		int last;

		if (s[i] == '\n' || (s[i] == '\r' && i + 1 < len &&
				     s[i + 1] == '\n')) {
			r = buf_puts(out, "\r\n");
			if (r < 0)
				return r;
			i += s[i] == '\r' ? 2 : 1;
			col = 0;
			continue;
		}
		toklen = qp_token(s, len, i, col, tok);
		next = i + 1;
		/* The last token before a hard break may use column 76;
		 * others leave room for a soft break '='. */
		last = next < len && (s[next] == '\n' ||
		       (s[next] == '\r' && next + 1 < len && s[next + 1] == '\n'));
		if (col + toklen > (last ? BODY_COLS : BODY_COLS - 1)) {
			r = buf_puts(out, "=\r\n");
			if (r < 0)
				return r;
			col = 0;
			toklen = qp_token(s, len, i, col, tok);
		}
		r = buf_append(out, tok, toklen);
		if (r < 0)
			return r;
		col += toklen;
		i = next;
	}
	/* End every line with CRLF; a soft break keeps the data exact. */
	if (col > 0)
		return buf_puts(out, "=\r\n");
	return 0;
}

int
mime_base64_encode(struct buf *out, const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t per_line = BODY_COLS / 4 * 3;	/* 57 bytes, 76 chars */
	int r;

	r = buf_reserve(out, b_len(len) + (len / per_line + 1) * 2);
	if (r < 0)
		return r;
	for (size_t i = 0; i < len; i += per_line) {
		size_t n = len - i < per_line ? len - i : per_line;
		char line[BODY_COLS + 3];

		b_encode(line, s + i, n);
		r = buf_puts(out, line);
		if (r == 0)
			r = buf_puts(out, "\r\n");
		if (r < 0)
			return r;
	}
	return 0;
}

void
mime_boundary(char out[MIME_BOUNDARY_SIZE])
{
	static const char base32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	unsigned char rnd[15];		/* 120 bits: 24 base32 characters */
	char *p;

	if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
		gcry_check_version(NULL);
	gcry_create_nonce(rnd, sizeof(rnd));
	memcpy(out, "=_carepost_", 11);
	p = out + 11;
	for (size_t i = 0; i < sizeof(rnd); i += 5) {
		uint64_t v = 0;

		for (size_t k = 0; k < 5; k++)
			v = v << 8 | rnd[i + k];
		for (int k = 7; k >= 0; k--)
			*p++ = base32[(v >> (5 * k)) & 31];
	}
	*p = '\0';
}

void
mime_date(long long t, char out[64])
{
	static const char days[7][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	snprintf(out, 64, "%s, %02d %s %04d %02d:%02d:%02d +0000",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
