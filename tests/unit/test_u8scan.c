/*
 * NAME
 *	test_u8scan - unit tests for lib/u8scan.h
 * DESCRIPTION
 *	Character classes at their edges, case folding across scripts,
 *	literals with their white-space classes, moves by code point and
 *	by line, and text cut short in the middle of a sequence (u8_get
 *	never reads past the end).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "u8scan.h"

static void
code_points_decode_and_cut_sequences_stay_in_bounds(void **state)
{
	static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	size_t n;

	assert_int_equal(u8_get(s, 10, 0, &n), 'a');
	assert_int_equal(n, 1);
	assert_int_equal(u8_get(s, 10, 1, &n), 0xe9);
	assert_int_equal(n, 2);
	assert_int_equal(u8_get(s, 10, 3, &n), 0x20ac);
	assert_int_equal(n, 3);
	assert_int_equal(u8_get(s, 10, 6, &n), 0x1f600);
	assert_int_equal(n, 4);
	/* cut short: one byte at a time, nothing read past len */
	assert_int_equal(u8_get(s, 2, 1, &n), 0xc3);
	assert_int_equal(n, 1);
	assert_int_equal(u8_get(s, 5, 3, &n), 0xe2);
	assert_int_equal(n, 1);
	assert_int_equal(u8_count_cps(s, 0, 10), 4);
	assert_int_equal(u8_next_cp(s, 1, 10), 3);
	assert_int_equal(u8_prev_cp(s, 6), 0x20ac);
	assert_int_equal(u8_prev_cp(s, 0), 0);
	assert_int_equal(u8_cps_back(s, 0, 10, 2), 3);
	assert_int_equal(u8_cps_back(s, 3, 10, 9), 3);
	assert_int_equal(u8_cp_at(s, 10, 10), 0);
}

static void
classes_follow_onigmo(void **state)
{
	assert_true(u8_is_blank('\t') && u8_is_blank(0xa0) && u8_is_blank(0x3000));
	assert_false(u8_is_blank('\n'));
	assert_true(u8_is_space('\n') && u8_is_space(0x2028) && u8_is_space(0x85));
	assert_false(u8_is_ascii_space(0xa0));
	assert_true(u8_is_ascii_word('_') && !u8_is_ascii_word(0xe9));
	assert_true(u8_is_word(0xe9) && u8_is_word(0x439) && u8_is_word(0x4e2d));
	assert_false(u8_is_word(0x2014) || u8_is_word(0xd7) || u8_is_word(0x1f600));
	assert_true(u8_is_alpha(0xe9) && !u8_is_alpha('7') && !u8_is_alpha('_'));
	assert_int_equal(u8_fold('Q'), 'q');
	assert_int_equal(u8_fold(0xc9), 0xe9);		/* É */
	assert_int_equal(u8_fold(0x141), 0x142);	/* Ł */
	assert_int_equal(u8_fold(0x41f), 0x43f);	/* П */
	assert_int_equal(u8_fold(0x401), 0x451);	/* Ё */
	assert_int_equal(u8_fold(0xd7), 0xd7);
}

static void
literals_match_with_case_and_white_space_classes(void **state)
{
	static const char s[] = "On  MONDAY,\tWROTE:";
	static const char *const lits[] = { "tue", "mon", NULL };
	size_t end = sizeof(s) - 1;

	assert_int_equal(u8_lit_at(s, 0, end, "on" LIT_SP "monday", 1), 10);
	assert_int_equal(u8_lit_at(s, 0, end, "on" LIT_S "monday", 1), 0);
	assert_int_equal(u8_lit_at(s, 0, end, "on" LIT_SP "monday", 0), 0);
	assert_int_equal(u8_lit_at(s, 0, 5, "on" LIT_SP "monday", 1), 0);	/* cut */
	assert_int_equal(u8_first_lit(s, 4, end, lits, 1), 3);
	assert_int_equal(u8_find_lit(s, 0, end, "wrote", 1), 12);
	assert_int_equal(u8_find_lit(s, 0, end, "absent", 1), end);
	assert_int_equal(u8_lit_at("\xc3\x89t\xc3\xa9", 0, 5, "\xc3\xa9t\xc3\xa9", 1), 5);
	assert_int_equal(u8_lit_at("", 0, 0, "x", 1), 0);
}

static void
skips_boundaries_and_lines(void **state)
{
	static const char s[] = " \t\xc2\xa0x y\nz";
	size_t end = sizeof(s) - 1;

	assert_int_equal(u8_skip(s, 0, end, u8_is_blank), 4);
	assert_int_equal(u8_skip(s, end, end, u8_is_blank), end);
	assert_true(u8_word_boundary(s, 4, end));
	assert_false(u8_word_boundary(s, 0, end));
	assert_true(u8_word_boundary(s, 5, end));
	assert_int_equal(u8_line_end(s, 0, end), 7);
	assert_int_equal(u8_line_end(s, 8, end), end);
}

static void
strip_and_keep_are_rubys(void **state)
{
	struct buf b = BUF_INIT;
	size_t i = 0, j;

	assert_int_equal(buf_puts(&b, " \t\r\n kept \v\f\0"), 0);
	j = b.len;
	u8_strip_span(b.data, &i, &j);
	assert_int_equal(j - i, 4);
	u8_keep(&b, i, j);
	assert_string_equal(b.data, "kept");
	assert_int_equal(b.len, 4);
	i = 0;
	j = 0;
	u8_strip_span("", &i, &j);
	assert_int_equal(j, 0);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(code_points_decode_and_cut_sequences_stay_in_bounds),
		cmocka_unit_test(classes_follow_onigmo),
		cmocka_unit_test(literals_match_with_case_and_white_space_classes),
		cmocka_unit_test(skips_boundaries_and_lines),
		cmocka_unit_test(strip_and_keep_are_rubys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
