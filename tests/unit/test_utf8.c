/*
 * NAME
 *	test_utf8 - unit tests for lib/utf8.c
 * DESCRIPTION
 *	Malformed bytes (stray continuations, overlong forms, surrogates,
 *	past U+10FFFF, cut-short sequences, NUL) become U+FFFD one byte at
 *	a time; headers lose their controls, bodies get CRLF line ends;
 *	code points encode and decode at every length boundary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "utf8.h"
#include "util.h"

#define FFFD "\xEF\xBF\xBD"

static void
check_clean(const char *in, size_t len, enum utf8_clean_mode mode,
	    const char *want)
{
	struct buf b = BUF_INIT;

	assert_int_equal(utf8_clean(&b, in, len, mode), 0);
	assert_non_null(b.data);
	assert_int_equal(b.len, strlen(want));
	assert_string_equal(b.data, want);
	assert_true(cp_utf8_valid(b.data, b.len));
	buf_free(&b);
}

static void
malformed_bytes_become_one_replacement_each(void **state)
{
	static const struct { const char *in; size_t len; const char *want; } v[] = {
		{ "a\x80" "b", 3, "a" FFFD "b" },		/* stray continuation */
		{ "\xC0\xAF", 2, FFFD FFFD },			/* overlong "/" */
		{ "\xE0\x80\xAF", 3, FFFD FFFD FFFD },		/* overlong, 3 bytes */
		{ "\xED\xA0\x80", 3, FFFD FFFD FFFD },		/* surrogate D800 */
		{ "\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD },	/* past U+10FFFF */
		{ "x\xE2\x82", 3, "x" FFFD FFFD },		/* cut short */
		{ "\xFF\xFE", 2, FFFD FFFD },
		{ "a\0b", 3, "a" FFFD "b" },			/* NUL */
		{ "\xE2\x82\xAC\xF0\x9F\x98\x80", 7, "\xE2\x82\xAC\xF0\x9F\x98\x80" },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(v); i++) {
		check_clean(v[i].in, v[i].len, UTF8_CLEAN_HEADER, v[i].want);
		check_clean(v[i].in, v[i].len, UTF8_CLEAN_CRLF, v[i].want);
	}
}

static void
header_mode_makes_controls_spaces(void **state)
{
	check_clean("a\tb\r\nc\x01\x7F" "d", 9, UTF8_CLEAN_HEADER, "a b  c  d");
	check_clean("", 0, UTF8_CLEAN_HEADER, "");
}

static void
crlf_mode_makes_every_line_end_crlf(void **state)
{
	check_clean("a\nb\r\nc\rd\r", 9, UTF8_CLEAN_CRLF,
		    "a\r\nb\r\nc\r\nd\r\n");
	check_clean("\r\r\n\n", 4, UTF8_CLEAN_CRLF, "\r\n\r\n\r\n");
	check_clean("tab\there\x01", 9, UTF8_CLEAN_CRLF, "tab\there\x01");
	check_clean("", 0, UTF8_CLEAN_CRLF, "");
}

static void
clean_appends_after_what_is_there(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(buf_puts(&b, "x: "), 0);
	assert_int_equal(utf8_clean(&b, "\xFF", 1, UTF8_CLEAN_HEADER), 0);
	assert_string_equal(b.data, "x: " FFFD);
	buf_free(&b);
}

static void
clean_over_the_limit_fails(void **state)
{
	struct buf b = BUF_INIT;

	b.max = 4;
	assert_true(utf8_clean(&b, "abcdefgh", 8, UTF8_CLEAN_HEADER) < 0);
	buf_free(&b);
}

static void
code_points_round_trip_at_every_length(void **state)
{
	static const uint32_t cps[] = { 0x1, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF,
		0x10000, 0x10FFFF, 0x20AC, 0x1F600 };

	for (size_t i = 0; i < CP_ARRAY_SIZE(cps); i++) {
		struct buf b = BUF_INIT;
		size_t n;

		assert_int_equal(utf8_put(&b, cps[i]), 0);
		n = cp_utf8_seq_len(b.data, b.len);
		assert_int_equal(n, b.len);
		assert_int_equal(utf8_decode(b.data, n), cps[i]);
		buf_free(&b);
	}
	assert_int_equal(utf8_decode("a", 0), 0xFFFD);
	assert_int_equal(utf8_decode("abcde", 5), 0xFFFD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(malformed_bytes_become_one_replacement_each),
		cmocka_unit_test(header_mode_makes_controls_spaces),
		cmocka_unit_test(crlf_mode_makes_every_line_end_crlf),
		cmocka_unit_test(clean_appends_after_what_is_there),
		cmocka_unit_test(clean_over_the_limit_fails),
		cmocka_unit_test(code_points_round_trip_at_every_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
