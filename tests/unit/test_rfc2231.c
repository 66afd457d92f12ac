/*
 * NAME
 *	test_rfc2231 - unit tests for lib/rfc2231.c
 * DESCRIPTION
 *	RFC 2231 continuations and charsets, malformed ones (bad escapes,
 *	missing quotes, unknown charsets, gaps), and file names that must
 *	show what they are: no directory, no controls, no invisible
 *	characters, cut between characters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "inmsg.h"
#include "msgfix.h"
#include "rfc2231.h"
#include "util.h"

/* Attachment names show what they are: no bidi or invisible characters. */
static void
attachment_names_lose_bidi_and_invisible_characters(void **state)
{
	struct inmsg *m = tu_parse_str(
		"From: a@b.example\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=X\r\n\r\n"
		"--X\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
		/* U+202E RIGHT-TO-LEFT OVERRIDE: shows as "lab-resultsexe.pdf" */
		"--X\r\nContent-Type: application/octet-stream\r\n"
		"Content-Disposition: attachment; filename*=utf-8''lab-results%E2%80%AEfdp.exe\r\n\r\nMZ\r\n"
		/* zero-width space, U+2066 isolate, soft hyphen, BOM, a C1 control */
		"--X\r\nContent-Type: application/octet-stream\r\n"
		"Content-Disposition: attachment; filename*=utf-8''a%E2%80%8Bb%E2%81%A6c%C2%ADd%EF%BB%BFe%C2%85f.txt\r\n\r\nx\r\n"
		/* blank-looking fillers and a line separator */
		"--X\r\nContent-Type: application/octet-stream\r\n"
		"Content-Disposition: attachment; filename*=utf-8''invoice%E3%85%A4%E3%85%A4.pdf%E2%80%A8.exe\r\n\r\nz\r\n"
		/* nothing left but invisible characters: no name */
		"--X\r\nContent-Type: application/octet-stream\r\n"
		"Content-Disposition: attachment; filename*=utf-8''%E2%80%AE%E2%80%AC\r\n\r\ny\r\n"
		"--X--\r\n");

	assert_int_equal(m->n_attachments, 4);
	assert_string_equal(m->attachments[0].filename, "lab-resultsfdp.exe");
	assert_string_equal(m->attachments[1].filename, "abcde_f.txt");
	assert_string_equal(m->attachments[2].filename, "invoice.pdf_.exe");
	assert_null(m->attachments[3].filename);
	inmsg_free(m);
}

#define P(n, v) { (n), (v) }

static char *
value_of(const struct rfc2231_param *p, size_t n, const char *base)
{
	char *s = rfc2231_value(p, n, base);

	if (s != NULL)
		assert_true(cp_utf8_valid(s, strlen(s)));
	return s;
}

static void
continuations_join_in_order_and_decode(void **state)
{
	static const struct rfc2231_param p[] = {
		P("filename*1", "%41-plain.pdf"), P("Name", "other"),
		P("FILENAME*0*", "iso-8859-1'fr'r%E9sum%E9"),
	};
	static const struct rfc2231_param q[] = { P("title*", "utf-8''a%20b%zz%4") };
	char *s;

	s = value_of(p, CP_ARRAY_SIZE(p), "filename");
	assert_string_equal(s, "r\xc3\xa9sum\xc3\xa9%41-plain.pdf");	/* *1 not encoded */
	free(s);
	s = value_of(q, 1, "title");
	assert_string_equal(s, "a b%zz%4");	/* bad escapes stay */
	free(s);
	assert_null(rfc2231_value(p, CP_ARRAY_SIZE(p), "name"));	/* not RFC 2231 */
	assert_null(rfc2231_value(NULL, 0, "filename"));
}

static void
malformed_parameters_never_fail(void **state)
{
	static const struct rfc2231_param p[][2] = {
		{ P("filename*", "'"), P("x", "y") },
		{ P("filename*", "''"), P("x", "y") },
		{ P("filename*", "no-quotes%FF%00"), P("x", "y") },
		{ P("filename*0*", "x-unknown-charset''%E9t%E9"), P("x", "y") },
		{ P("filename*0*", "a-very-long-charset-name-that-is-not-real-at-all-xx''v"), P("x", "y") },
		{ P("filename*1", "gap"), P("filename*2", "no zero") },
		{ P("filename*0", ""), P("filename*01", "leading zero") },
		{ P("filename**", "two stars"), P("filename*0**", "x") },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(p); i++) {
		char *s = value_of(p[i], 2, "filename"), *f = NULL;

		assert_int_equal(rfc2231_filename(p[i], 2, &f), 0);
		if (f != NULL)
			assert_true(cp_utf8_valid(f, strlen(f)));
		free(s);
		free(f);
	}
}

static void
sections_past_the_limit_are_not_read(void **state)
{
	struct rfc2231_param p[80];
	char names[80][16];
	char *s;

	for (unsigned i = 0; i < 80; i++) {
		snprintf(names[i], sizeof(names[i]), "f*%u", i);
		p[i] = (struct rfc2231_param){ names[i], "x" };
	}
	s = value_of(p, 80, "f");
	assert_int_equal(strlen(s), 64);
	free(s);
}

static void
file_names_lose_directories_and_controls(void **state)
{
	static const struct { const char *v; const char *want; } c[] = {
		{ "../../etc/passwd", "passwd" },
		{ "C:\\Users\\x\\evil.exe", "evil.exe" },
		{ "a\tb\x01" "c.txt", "a b c.txt" },	/* header cleaning: spaces */
		{ "..", NULL }, { ".", NULL }, { "dir/", NULL }, { "", NULL },
		{ "=?utf-8?q?caf=C3=A9.pdf?=", "caf\xc3\xa9.pdf" },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(c); i++) {
		struct rfc2231_param p = { "filename", c[i].v };
		char *f = NULL;

		assert_int_equal(rfc2231_filename(&p, 1, &f), 0);
		if (c[i].want == NULL)
			assert_null(f);
		else
			assert_string_equal(f, c[i].want);
		free(f);
	}
}

static void
file_names_are_cut_between_characters(void **state)
{
	struct buf v = BUF_INIT;
	struct rfc2231_param p = { "name", NULL };
	char *f = NULL;

	buf_puts(&v, "a");
	for (int i = 0; i < 200; i++)
		buf_puts(&v, "\xc3\xa9");	/* 401 bytes */
	p.value = v.data;
	assert_int_equal(rfc2231_filename(&p, 1, &f), 0);
	assert_true(strlen(f) <= RFC2231_FILENAME_MAX);
	assert_true(strlen(f) >= RFC2231_FILENAME_MAX - 1);
	assert_true(cp_utf8_valid(f, strlen(f)));
	free(f);
	buf_free(&v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(attachment_names_lose_bidi_and_invisible_characters),
		cmocka_unit_test(continuations_join_in_order_and_decode),
		cmocka_unit_test(malformed_parameters_never_fail),
		cmocka_unit_test(sections_past_the_limit_are_not_read),
		cmocka_unit_test(file_names_lose_directories_and_controls),
		cmocka_unit_test(file_names_are_cut_between_characters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
