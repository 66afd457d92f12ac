/*
 * NAME
 *	test_mime - unit tests for lib/mime.c
 * DESCRIPTION
 *	Exact output for the simple cases; for encodings, the output is
 *	decoded here (RFC 2047, quoted-printable, base64) and compared with
 *	the input, and checked line by line for CRLF and length limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gcrypt.h>

#include "buf.h"
#include "mime.h"
#include "util.h"

/* ---- checking helpers ---- */

/* Every line ends in CRLF, no bare CR or LF, no NUL; longest line. */
static size_t
assert_crlf_lines(const char *s, size_t len)
{
	size_t col = 0, longest = 0;

	assert_true(len >= 2);
	assert_memory_equal(s + len - 2, "\r\n", 2);
	for (size_t i = 0; i < len; i++) {
		assert_int_not_equal(s[i], '\0');
		if (s[i] == '\r') {
			assert_true(i + 1 < len);
			assert_int_equal(s[i + 1], '\n');
			if (col > longest)
				longest = col;
			col = 0;
			i++;
			continue;
		}
		assert_int_not_equal(s[i], '\n');
		col++;
	}
	return longest;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
b64val(char c)
{
	const char *a =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(a, c) : NULL;

	return p ? (int)(p - a) : -1;
}

/* Decode base64, skipping CRLF; fails the test on any other junk. */
static void
b64_decode(struct buf *out, const char *s, size_t len)
{
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		int v;

		if (s[i] == '\r' || s[i] == '\n' || s[i] == '=')
			continue;
		v = b64val(s[i]);
		assert_true(v >= 0);
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			assert_int_equal(buf_putc(out, (char)(acc >> bits)), 0);
		}
	}
}

static void
qp_decode(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=' && i + 2 < len && s[i + 1] == '\r' &&
		    s[i + 2] == '\n') {
			i += 2;
			continue;
		}
		if (s[i] == '=') {
			assert_true(i + 2 < len);
			assert_true(hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0);
			assert_int_equal(buf_putc(out, (char)(hexval(s[i + 1]) * 16 +
						   hexval(s[i + 2]))), 0);
			i += 2;
			continue;
		}
		assert_int_equal(buf_putc(out, s[i]), 0);
	}
}

/*
 * Decode one encoded-word at s (which starts "=?"); returns its length
 * and appends the text. Each word must be at most 75 characters and
 * decode to complete UTF-8 on its own.
 */
static size_t
ew_decode(struct buf *out, const char *s)
{
	const char *end = strstr(s + 10, "?=");
	struct buf tmp = BUF_INIT;
	size_t n;

	assert_non_null(end);
	n = (size_t)(end - s) + 2;
	assert_true(n <= 75);
	assert_true(strncmp(s, "=?UTF-8?Q?", 10) == 0 ||
		    strncmp(s, "=?UTF-8?B?", 10) == 0);
	if (s[8] == 'B') {
		b64_decode(&tmp, s + 10, (size_t)(end - s) - 10);
	} else {
		for (const char *p = s + 10; p < end; p++) {
			if (*p == '_') {
				buf_putc(&tmp, ' ');
			} else if (*p == '=') {
				assert_true(hexval(p[1]) >= 0 && hexval(p[2]) >= 0);
				buf_putc(&tmp, (char)(hexval(p[1]) * 16 + hexval(p[2])));
				p += 2;
			} else {
				assert_true(*p > 0x20 && *p < 0x7f && *p != '?');
				buf_putc(&tmp, *p);
			}
		}
	}
	assert_true(cp_utf8_valid(tmp.data ? tmp.data : "", tmp.len));
	buf_append(out, tmp.data, tmp.len);
	buf_free(&tmp);
	return n;
}

/*
 * Unfold one header line and decode its value (RFC 2047 6.2: whitespace
 * between adjacent encoded-words is dropped). Returns the value after
 * "Name: ", NUL-terminated, in out.
 */
static void
header_decode(struct buf *out, const char *hdr, size_t len,
	      const char *name)
{
	struct buf unf = BUF_INIT;
	const char *p;
	size_t ws_start = 0;
	int last_ew = 0, have_ws = 0;

	/* Exactly one logical line: only the final CRLF is not a fold. */
	for (size_t i = 0; i < len; i++) {
		if (hdr[i] == '\r') {
			if (i + 2 == len)
				break;
			assert_true(hdr[i + 2] == ' ' || hdr[i + 2] == '\t');
			i++;
			continue;
		}
		buf_putc(&unf, hdr[i]);
	}
	assert_int_equal(strncmp(unf.data, name, strlen(name)), 0);
	assert_int_equal(unf.data[strlen(name)], ':');
	p = unf.data + strlen(name) + 1;
	assert_int_equal(*p, ' ');
	p++;
	buf_reset(out);
	buf_reserve(out, 0);
	while (*p) {
		if (*p == ' ' || *p == '\t') {
			if (!have_ws) {
				have_ws = 1;
				ws_start = out->len;
			}
			buf_putc(out, *p++);
			continue;
		}
		if (p[0] == '=' && p[1] == '?') {
			if (last_ew && have_ws) {
				out->len = ws_start;	/* drop it */
				out->data[out->len] = '\0';
			}
			p += ew_decode(out, p);
			last_ew = 1;
			have_ws = 0;
			assert_true(*p == '\0' || *p == ' ' || *p == '\t');
			continue;
		}
		while (*p && *p != ' ' && *p != '\t') {
			assert_false(p[0] == '=' && p[1] == '?');
			buf_putc(out, *p++);
		}
		last_ew = 0;
		have_ws = 0;
	}
	buf_free(&unf);
}

/* ---- headers ---- */

static void
header_ascii_is_written_exactly(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(mime_header(&b, "Subject", "Your appointment"), 0);
	assert_int_equal(mime_header(&b, "Auto-Submitted", "auto-generated"), 0);
	assert_string_equal(b.data, "Subject: Your appointment\r\n"
			    "Auto-Submitted: auto-generated\r\n");
	buf_free(&b);
}

static void
header_trims_outer_whitespace_and_keeps_inner(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(mime_header(&b, "Subject", "  a  b  "), 0);
	assert_string_equal(b.data, "Subject: a  b\r\n");
	buf_reset(&b);
	assert_int_equal(mime_header(&b, "Subject", ""), 0);
	assert_string_equal(b.data, "Subject: \r\n");
	buf_free(&b);
}

static void
header_non_ascii_becomes_encoded_words(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	const char *v = "Caf\xc3\xa9 ok";

	assert_int_equal(mime_header(&b, "Subject", v), 0);
	/* B is shorter than Q here (8 against 9 characters). */
	assert_string_equal(b.data, "Subject: =?UTF-8?B?Q2Fmw6k=?= ok\r\n");
	header_decode(&d, b.data, b.len, "Subject");
	assert_string_equal(d.data, v);

	buf_reset(&b);
	v = "R\xc3\xa9sultats du labo et r\xc3\xa9sum\xc3\xa9 de visite";
	assert_int_equal(mime_header(&b, "Subject", v), 0);
	assert_non_null(strstr(b.data, "=?UTF-8?Q?"));	/* mostly ASCII */
	assert_non_null(strstr(b.data, " du labo et "));	/* kept literal */
	header_decode(&d, b.data, b.len, "Subject");
	assert_string_equal(d.data, v);
	buf_free(&b);
	buf_free(&d);
}

static void
header_long_non_ascii_splits_on_character_boundaries(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT, v = BUF_INIT;

	/* 2-, 3- and 4-byte characters, with and without spaces. */
	for (int i = 0; i < 40; i++)
		buf_puts(&v, i % 5 == 4 ? "\xf0\x9f\x92\x8a " :
			 i % 2 ? "\xe6\x97\xa5\xe6\x9c\xac" : "\xc3\xa9t\xc3\xa9 ");
	buf_puts(&v, "fin");
	assert_int_equal(mime_header(&b, "Subject", v.data), 0);
	assert_true(assert_crlf_lines(b.data, b.len) <= 78);
	header_decode(&d, b.data, b.len, "Subject");	/* checks each word */
	assert_string_equal(d.data, v.data);
	buf_free(&b);
	buf_free(&d);
	buf_free(&v);
}

static void
header_crlf_injection_yields_one_line(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(mime_header(&b, "Subject", "x\r\nBcc: evil@x"), 0);
	assert_string_equal(b.data, "Subject: x  Bcc: evil@x\r\n");
	buf_reset(&b);
	assert_int_equal(mime_header(&b, "Subject",
				     "a\nb\rc\x01" "d\x1b" "e\x7f" "f\tg"), 0);
	assert_string_equal(b.data, "Subject: a b c d e f g\r\n");
	buf_reset(&b);
	/* Injection attempt followed by a fold-looking line. */
	assert_int_equal(mime_header(&b, "Subject", "x\r\n\r\nbody"), 0);
	assert_string_equal(b.data, "Subject: x    body\r\n");
	assert_crlf_lines(b.data, b.len);
	buf_free(&b);
}

static void
header_long_ascii_folds_under_78_and_unfolds_back(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT, v = BUF_INIT;
	size_t lines = 0;

	for (int i = 0; i < 60; i++)
		buf_printf(&v, "%sword%d", i ? " " : "", i);
	assert_int_equal(mime_header(&b, "Subject", v.data), 0);
	assert_true(assert_crlf_lines(b.data, b.len) <= 78);
	for (size_t i = 0; i < b.len; i++)
		lines += b.data[i] == '\n';
	assert_true(lines >= 5);
	header_decode(&d, b.data, b.len, "Subject");
	assert_string_equal(d.data, v.data);
	buf_free(&b);
	buf_free(&d);
	buf_free(&v);
}

static void
header_unbreakable_word_never_exceeds_998(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT, v = BUF_INIT;

	for (int i = 0; i < 3000; i++)
		buf_putc(&v, (char)('a' + i % 26));
	buf_puts(&v, " tail");
	assert_int_equal(mime_header(&b, "X-Long", v.data), 0);
	assert_true(assert_crlf_lines(b.data, b.len) <= 998);
	header_decode(&d, b.data, b.len, "X-Long");
	assert_string_equal(d.data, v.data);

	/* A 500-byte word may stay literal, but still within 998. */
	buf_reset(&b);
	buf_reset(&v);
	for (int i = 0; i < 500; i++)
		buf_putc(&v, 'x');
	assert_int_equal(mime_header(&b, "Message-ID", v.data), 0);
	assert_true(assert_crlf_lines(b.data, b.len) <= 998);
	assert_non_null(strstr(b.data, v.data));
	buf_free(&b);
	buf_free(&d);
	buf_free(&v);
}

static void
header_invalid_utf8_is_replaced(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT;

	/* stray continuation, truncated sequence, overlong, surrogate */
	assert_int_equal(mime_header(&b, "Subject",
				     "a\x80" "b\xc3" "c\xc0\xaf" "d\xed\xa0\x80"), 0);
	header_decode(&d, b.data, b.len, "Subject");
	assert_string_equal(d.data, "a\xef\xbf\xbd" "b\xef\xbf\xbd"
			    "c\xef\xbf\xbd\xef\xbf\xbd"
			    "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	buf_free(&b);
	buf_free(&d);
}

static void
header_text_looking_like_encoded_word_is_encoded(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	const char *v = "see =?UTF-8?B?ZXZpbA==?= here";

	assert_int_equal(mime_header(&b, "Subject", v), 0);
	assert_null(strstr(b.data, "ZXZpbA=="));
	header_decode(&d, b.data, b.len, "Subject");
	assert_string_equal(d.data, v);
	buf_free(&b);
	buf_free(&d);
}

static void
header_bad_name_is_rejected_and_leaves_buffer(void **state)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, "X: y\r\n");
	assert_int_equal(mime_header(&b, "Bad Name", "v"), -EINVAL);
	assert_int_equal(mime_header(&b, "Bcc:", "v"), -EINVAL);
	assert_int_equal(mime_header(&b, "A\r\nB", "v"), -EINVAL);
	assert_int_equal(mime_header(&b, "", "v"), -EINVAL);
	assert_int_equal(mime_header(&b, "Subject", NULL), -EINVAL);
	assert_string_equal(b.data, "X: y\r\n");
	buf_free(&b);
}

static void
header_over_buffer_limit_fails_and_leaves_buffer(void **state)
{
	struct buf b = BUF_INIT;

	b.max = 20;
	buf_puts(&b, "X: y\r\n");
	assert_int_equal(mime_header(&b, "Subject", "a rather long subject"),
			 -EFBIG);
	assert_int_equal(b.len, 6);
	assert_string_equal(b.data, "X: y\r\n");
	buf_free(&b);
}

static void
header_random_bytes_keep_one_valid_line(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	static const char pool[] = " \t\r\n=?_\"<>,:;\\aZ\xc3\xa9\xe6\x97\xa5"
				   "\xf0\x9f\x92\x8a\x80\xff\x01\x7f";
	uint32_t seed = 12345;
	char v[1200];

	for (int iter = 0; iter < 3000; iter++) {
		size_t n;

		seed = seed * 1103515245 + 12345;
		n = (seed >> 8) % (iter % 10 == 0 ? sizeof(v) - 1 : 120);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245 + 12345;
			v[i] = pool[(seed >> 16) % (sizeof(pool) - 1)];
		}
		v[n] = '\0';
		buf_reset(&b);
		assert_int_equal(mime_header(&b, "Subject", v), 0);
		assert_true(assert_crlf_lines(b.data, b.len) <= 998);
		header_decode(&d, b.data, b.len, "Subject");
		assert_true(cp_utf8_valid(d.data, d.len));
		buf_reset(&b);
		assert_int_equal(mime_address(&b, "To", v, "a@b.org"), 0);
		assert_true(assert_crlf_lines(b.data, b.len) <= 998);
		buf_reset(&b);
		assert_int_equal(mime_text_part(&b, v, n), 0);
		if (n > 0)
			assert_true(assert_crlf_lines(b.data, b.len) <= 76);
	}
	buf_free(&b);
	buf_free(&d);
}

/* ---- addresses ---- */

static void
address_plain_display_name_is_unquoted(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(mime_address(&b, "From", "Riverside Clinic",
				      "noreply@clinic.example"), 0);
	assert_int_equal(mime_address(&b, "To", NULL, "pat@example.org"), 0);
	assert_int_equal(mime_address(&b, "Cc", "  ", "pat@example.org"), 0);
	assert_string_equal(b.data,
			    "From: Riverside Clinic <noreply@clinic.example>\r\n"
			    "To: pat@example.org\r\n"
			    "Cc: pat@example.org\r\n");
	buf_free(&b);
}

static void
address_display_name_with_specials_is_quoted(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(mime_address(&b, "To", "Smith, John", "j@x.org"), 0);
	assert_int_equal(mime_address(&b, "To", "Dr. \"Bo\" O\\Neil", "j@x.org"), 0);
	assert_int_equal(mime_address(&b, "To", "A\r\nBcc: x@y", "j@x.org"), 0);
	assert_string_equal(b.data,
			    "To: \"Smith, John\" <j@x.org>\r\n"
			    "To: \"Dr. \\\"Bo\\\" O\\\\Neil\" <j@x.org>\r\n"
			    "To: \"A  Bcc: x@y\" <j@x.org>\r\n");
	assert_crlf_lines(b.data, b.len);
	buf_free(&b);
}

static void
address_non_ascii_display_name_is_encoded(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	const char *tail;

	assert_int_equal(mime_address(&b, "To", "Jos\xc3\xa9 Mu\xc3\xb1oz, Jr.",
				      "jose@example.org"), 0);
	tail = " <jose@example.org>\r\n";
	assert_int_equal(strcmp(b.data + b.len - strlen(tail), tail), 0);
	/* Decode the phrase: drop the address and decode the rest. */
	b.len -= strlen(tail);
	buf_puts(&b, "\r\n");
	header_decode(&d, b.data, b.len, "To");
	assert_string_equal(d.data, "Jos\xc3\xa9 Mu\xc3\xb1oz, Jr.");
	buf_free(&b);
	buf_free(&d);
}

static void
address_invalid_is_rejected(void **state)
{
	static const char *bad[] = {
		"", "noat", "@example.org", "user@", "a b@x.org", "a@b>",
		"<a@b.org>", "a@b.org,c@d.org", "a\r\n@b.org", "a@b.org\r\nBcc: e@x",
		"a\"@b.org", "a@@b.org", "a@b@c.org", "\xc3\xa9@x.org",
		"a@b.org\n", "a(c)@b.org", "a@b..org", ".a@b.org", "a.@b.org",
	};
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < CP_ARRAY_SIZE(bad); i++) {
		assert_int_equal(mime_addr_valid(bad[i]), 0);
		assert_int_equal(mime_address(&b, "To", "X", bad[i]), -EINVAL);
	}
	assert_int_equal(mime_addr_valid(NULL), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(mime_addr_valid("pat+tag@mail.example.org"), 1);
	assert_int_equal(mime_addr_valid("bounce-ev.12=x@clinic.example"), 1);
	buf_free(&b);
}

/* ---- bodies ---- */

/* Split a part into headers and body; check the CTE header. */
static const char *
part_body(const struct buf *b, const char *cte)
{
	char want[128];
	const char *body = strstr(b->data, "\r\n\r\n");

	snprintf(want, sizeof(want),
		 "Content-Type: text/plain; charset=utf-8\r\n"
		 "Content-Transfer-Encoding: %s\r\n\r\n", cte);
	assert_non_null(body);
	assert_int_equal(strncmp(b->data, want, strlen(want)), 0);
	return body + 4;
}

static void
text_part_short_ascii_is_7bit_with_crlf(void **state)
{
	struct buf b = BUF_INIT;
	const char *t = "Hello\nWorld\r\nbare\rcr";

	assert_int_equal(mime_text_part(&b, t, strlen(t)), 0);
	assert_string_equal(b.data,
			    "Content-Type: text/plain; charset=utf-8\r\n"
			    "Content-Transfer-Encoding: 7bit\r\n\r\n"
			    "Hello\r\nWorld\r\nbare\r\ncr\r\n");
	assert_crlf_lines(b.data, b.len);
	buf_free(&b);
}

static void
text_part_with_long_line_or_8bit_is_quoted_printable(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT, in = BUF_INIT, want = BUF_INIT;
	const char *body, *line;

	buf_puts(&in, "Dear patient,\n1+1=2 and a=b\n");
	buf_puts(&in, "trailing spaces   \ntrailing tab\t\n");
	buf_puts(&in, "From the clinic\nFrom\n.\n..leading dots\n");
	buf_puts(&in, "caf\xc3\xa9 r\xc3\xa9sum\xc3\xa9\n");
	for (int i = 0; i < 30; i++)
		buf_puts(&in, "long line ");
	buf_puts(&in, "\n");
	for (int i = 0; i < 200; i++)
		buf_putc(&in, i % 77 == 75 ? '=' : 'x');
	buf_puts(&in, "\nno newline at end ");
	assert_int_equal(mime_text_part(&b, in.data, in.len), 0);
	assert_true(assert_crlf_lines(b.data, b.len) <= 76);
	body = part_body(&b, "quoted-printable");

	/* No output line starts with "From " or '.', none ends in space. */
	for (line = body; *line; line = strstr(line, "\r\n") + 2) {
		const char *eol = strstr(line, "\r\n");

		assert_int_not_equal(strncmp(line, "From ", 5), 0);
		assert_int_not_equal(line[0], '.');
		if (eol > line)
			assert_true(eol[-1] != ' ' && eol[-1] != '\t');
	}
	qp_decode(&d, body, strlen(body));
	for (size_t i = 0; i < in.len; i++) {
		if (in.data[i] == '\n')
			buf_putc(&want, '\r');
		buf_putc(&want, in.data[i]);
	}
	assert_int_equal(d.len, want.len);
	assert_memory_equal(d.data, want.data, want.len);
	buf_free(&b);
	buf_free(&d);
	buf_free(&in);
	buf_free(&want);
}

static void
qp_encode_exact_small_cases(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(mime_qp_encode(&b, "a=b \n", 5), 0);
	assert_string_equal(b.data, "a=3Db=20\r\n");
	buf_reset(&b);
	assert_int_equal(mime_qp_encode(&b, "From x\r\n.y\nz", 12), 0);
	assert_string_equal(b.data, "=46rom x\r\n=2Ey\r\nz=\r\n");
	buf_reset(&b);
	assert_int_equal(mime_qp_encode(&b, "\xc3\xa9\x00", 3), 0);
	assert_string_equal(b.data, "=C3=A9=00=\r\n");
	buf_free(&b);
}

static void
qp_soft_break_keeps_lines_at_76_and_escapes_new_line_start(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT, in = BUF_INIT;
	char line76[82];

	/* Put a '.' and "From " exactly where a soft break lands. */
	for (int i = 0; i < 75; i++)
		buf_putc(&in, 'a');
	buf_puts(&in, ".b");
	for (int i = 0; i < 71; i++)
		buf_putc(&in, 'c');
	buf_puts(&in, "From me\n");
	/* A line of exactly 76 is not broken. */
	for (int i = 0; i < 76; i++)
		buf_putc(&in, 'd');
	buf_puts(&in, "\n");
	assert_int_equal(mime_qp_encode(&b, in.data, in.len), 0);
	assert_true(assert_crlf_lines(b.data, b.len) <= 76);
	assert_non_null(strstr(b.data, "=\r\n=2Eb"));
	assert_non_null(strstr(b.data, "=\r\n=46rom me\r\n"));
	memset(line76 + 2, 'd', 76);
	memcpy(line76, "\r\n", 2);
	memcpy(line76 + 78, "\r\n", 3);
	assert_non_null(strstr(b.data, line76));
	qp_decode(&d, b.data, b.len);
	assert_int_equal(d.len, in.len + 2);	/* LF became CRLF twice */
	buf_free(&b);
	buf_free(&d);
	buf_free(&in);
}

static void
text_part_mostly_non_ascii_is_base64_and_round_trips(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT, in = BUF_INIT;
	const char *body;

	for (int i = 0; i < 40; i++)
		buf_puts(&in, "\xe6\x82\xa3\xe8\x80\x85\xe6\xa7\x98 ");
	buf_puts(&in, "\n\xce\xb1\xce\xb2\xce\xb3\n");
	assert_int_equal(mime_text_part(&b, in.data, in.len), 0);
	assert_true(assert_crlf_lines(b.data, b.len) <= 76);
	body = part_body(&b, "base64");
	b64_decode(&d, body, strlen(body));
	assert_int_equal(d.len, in.len + 2);
	assert_memory_equal(d.data, in.data, 40 * 10);
	assert_memory_equal(d.data + d.len - 10, "\r\n\xce\xb1\xce\xb2\xce\xb3\r\n",
			    10);
	buf_free(&b);
	buf_free(&d);
	buf_free(&in);
}

static void
text_part_invalid_utf8_and_nul_become_replacement(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	const char t[] = "Your results are ready\xff\x00 on the portal\n";

	assert_int_equal(mime_text_part(&b, t, sizeof(t) - 1), 0);
	qp_decode(&d, part_body(&b, "quoted-printable"),
		  strlen(part_body(&b, "quoted-printable")));
	assert_string_equal(d.data, "Your results are ready\xef\xbf\xbd"
			    "\xef\xbf\xbd on the portal\r\n");
	buf_free(&b);
	buf_free(&d);
}

static void
base64_encode_exact_and_76_columns(void **state)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	unsigned char raw[300];

	assert_int_equal(mime_base64_encode(&b, "", 0), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(mime_base64_encode(&b, "f", 1), 0);
	assert_int_equal(mime_base64_encode(&b, "fo", 2), 0);
	assert_int_equal(mime_base64_encode(&b, "foobar", 6), 0);
	assert_string_equal(b.data, "Zg==\r\nZm8=\r\nZm9vYmFy\r\n");
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 7 + 3);
	buf_reset(&b);
	assert_int_equal(mime_base64_encode(&b, raw, 57), 0);
	assert_int_equal(b.len, 78);		/* one full line */
	buf_reset(&b);
	assert_int_equal(mime_base64_encode(&b, raw, sizeof(raw)), 0);
	assert_true(assert_crlf_lines(b.data, b.len) == 76);
	b64_decode(&d, b.data, b.len);
	assert_int_equal(d.len, sizeof(raw));
	assert_memory_equal(d.data, raw, sizeof(raw));
	buf_free(&b);
	buf_free(&d);
}

/* ---- boundary and date ---- */

static void
boundary_is_prefixed_random_base32(void **state)
{
	char a[MIME_BOUNDARY_SIZE], c[MIME_BOUNDARY_SIZE];

	mime_boundary(a);
	mime_boundary(c);
	assert_int_equal(strlen(a), 35);
	assert_int_equal(strncmp(a, "=_carepost_", 11), 0);
	for (size_t i = 11; i < 35; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", a[i]));
	assert_string_not_equal(a, c);
}

static void
date_is_rfc5322_utc(void **state)
{
	char d[64];

	mime_date(0, d);
	assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
	mime_date(1700000000, d);
	assert_string_equal(d, "Tue, 14 Nov 2023 22:13:20 +0000");
	mime_date(951782400, d);	/* leap day */
	assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 +0000");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(header_ascii_is_written_exactly),
		cmocka_unit_test(header_trims_outer_whitespace_and_keeps_inner),
		cmocka_unit_test(header_non_ascii_becomes_encoded_words),
		cmocka_unit_test(header_long_non_ascii_splits_on_character_boundaries),
		cmocka_unit_test(header_crlf_injection_yields_one_line),
		cmocka_unit_test(header_long_ascii_folds_under_78_and_unfolds_back),
		cmocka_unit_test(header_unbreakable_word_never_exceeds_998),
		cmocka_unit_test(header_invalid_utf8_is_replaced),
		cmocka_unit_test(header_text_looking_like_encoded_word_is_encoded),
		cmocka_unit_test(header_bad_name_is_rejected_and_leaves_buffer),
		cmocka_unit_test(header_over_buffer_limit_fails_and_leaves_buffer),
		cmocka_unit_test(header_random_bytes_keep_one_valid_line),
		cmocka_unit_test(address_plain_display_name_is_unquoted),
		cmocka_unit_test(address_display_name_with_specials_is_quoted),
		cmocka_unit_test(address_non_ascii_display_name_is_encoded),
		cmocka_unit_test(address_invalid_is_rejected),
		cmocka_unit_test(text_part_short_ascii_is_7bit_with_crlf),
		cmocka_unit_test(text_part_with_long_line_or_8bit_is_quoted_printable),
		cmocka_unit_test(qp_encode_exact_small_cases),
		cmocka_unit_test(qp_soft_break_keeps_lines_at_76_and_escapes_new_line_start),
		cmocka_unit_test(text_part_mostly_non_ascii_is_base64_and_round_trips),
		cmocka_unit_test(text_part_invalid_utf8_and_nul_become_replacement),
		cmocka_unit_test(base64_encode_exact_and_76_columns),
		cmocka_unit_test(boundary_is_prefixed_random_base32),
		cmocka_unit_test(date_is_rfc5322_utc),
	};

	gcry_check_version(NULL);
	gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
