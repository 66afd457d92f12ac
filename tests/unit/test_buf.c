/*
 * NAME
 *	test_buf - unit tests for lib/buf.c
 * DESCRIPTION
 *	Appends and limits, base64 against RFC 4648's test vectors, and
 *	text made well-formed UTF-8 (with util's cp_utf8_seq_len, which it
 *	rests on) against the cases of RFC 3629 and Unicode's table 3-7.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "buf.h"
#include "util.h"

static void
base64_matches_rfc4648_vectors(void **state)
{
	static const char *const vec[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		buf_reset(&b);
		assert_int_equal(buf_append_base64(&b, vec[i][0], strlen(vec[i][0])), 0);
		assert_int_equal(b.len, strlen(vec[i][1]));
		if (b.len)
			assert_string_equal(b.data, vec[i][1]);
	}
	/* every byte value, after what is there */
	buf_reset(&b);
	buf_puts(&b, "x:");
	{
		unsigned char all[256];

		for (int i = 0; i < 256; i++)
			all[i] = (unsigned char)i;
		assert_int_equal(buf_append_base64(&b, all, sizeof(all)), 0);
	}
	assert_int_equal(b.len, 2 + 344);
	assert_int_equal(strncmp(b.data, "x:AAECAwQFBgcICQoLDA0ODxAREhMU", 30), 0);
	assert_string_equal(b.data + b.len - 8, "/P3+/w==");
	assert_int_equal(b.data[b.len], '\0');
	buf_free(&b);
}

static void
base64_over_the_limit_fails_and_leaves_the_buffer(void **state)
{
	struct buf b = BUF_INIT;

	b.max = 10;
	buf_puts(&b, "ab");
	assert_int_equal(buf_append_base64(&b, "foobar", 6), 0);	/* 2 + 8 */
	assert_string_equal(b.data, "abZm9vYmFy");
	assert_int_equal(buf_append_base64(&b, "f", 1), -EFBIG);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "abZm9vYmFy");
	buf_free(&b);
}

static void
append_and_printf_keep_length_and_terminator(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.data, "a\0b42-x", 8);
	b.max = 8;
	assert_int_equal(buf_puts(&b, "yz"), -EFBIG);
	assert_int_equal(b.len, 7);
	buf_free(&b);
}

static void
truncate_undoes_appends_and_never_grows(void **state)
{
	struct buf b = BUF_INIT;

	buf_truncate(&b, 0);			/* nothing yet: a no-op */
	assert_null(b.data);
	buf_puts(&b, "keep");
	buf_puts(&b, " and drop");
	buf_truncate(&b, 4);
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "keep");
	buf_truncate(&b, 10);			/* longer: unchanged */
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "keep");
	buf_free(&b);
}

#define FFFD "\xEF\xBF\xBD"

static void
utf8_seq_len_follows_rfc3629(void **state)
{
	static const struct { const char *s; size_t len, want; } v[] = {
		{ "a", 1, 1 }, { "\0", 1, 1 }, { "\x7F", 1, 1 },
		{ "\xC3\xA9", 2, 2 },			/* e acute */
		{ "\xE2\x82\xAC", 3, 3 },		/* euro sign */
		{ "\xF0\x9F\x98\x80", 4, 4 },		/* U+1F600 */
		{ "\xF4\x8F\xBF\xBF", 4, 4 },		/* U+10FFFF */
		{ "\x80", 1, 0 },			/* stray continuation */
		{ "\xC0\x80", 2, 0 }, { "\xC1\xBF", 2, 0 },	/* overlong */
		{ "\xE0\x9F\xBF", 3, 0 }, { "\xF0\x8F\xBF\xBF", 4, 0 },
		{ "\xED\xA0\x80", 3, 0 },		/* surrogate U+D800 */
		{ "\xF4\x90\x80\x80", 4, 0 },		/* past U+10FFFF */
		{ "\xF5\x80\x80\x80", 4, 0 }, { "\xFF", 1, 0 },
		{ "\xE2\x82", 2, 0 }, { "\xF0\x9F\x98", 3, 0 },	/* cut short */
		{ "\xC3" "A", 2, 0 },			/* not a continuation */
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_int_equal(cp_utf8_seq_len(v[i].s, v[i].len), v[i].want);
	assert_true(cp_utf8_valid("caf\xC3\xA9 \xE2\x82\xAC", 9));
	assert_false(cp_utf8_valid("a\0b", 3));
	assert_false(cp_utf8_valid("caf\xC3", 4));
}

static void
append_text_is_utf8_with_lf_line_ends(void **state)
{
	static const struct { const char *in; size_t len; const char *out; } v[] = {
		{ "", 0, "" },
		{ "plain text\n", 11, "plain text\n" },
		{ "a\r\nb\rc\n\r", 8, "a\nb\nc\n\n" },
		{ "\r\r\n", 3, "\n\n" },
		{ "a\0b", 3, "a" FFFD "b" },
		{ "caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80", 13,
		  "caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80" },
		/* every byte of an ill-formed sequence becomes one U+FFFD */
		{ "x\xC0\x80y", 4, "x" FFFD FFFD "y" },
		{ "\xED\xA0\x80", 3, FFFD FFFD FFFD },
		{ "\xFF\xFE", 2, FFFD FFFD },
		{ "end\xE2\x82", 5, "end" FFFD FFFD },
		{ "\xC3\r\n", 3, FFFD "\n" },
	};
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		buf_reset(&b);
		buf_puts(&b, ">");
		assert_int_equal(buf_append_text(&b, v[i].in, v[i].len), 0);
		assert_int_equal(b.len, 1 + strlen(v[i].out));
		assert_memory_equal(b.data + 1, v[i].out, b.len - 1);
		assert_int_equal(b.data[b.len], '\0');
		assert_true(cp_utf8_valid(b.data, b.len));
	}
	/* over the limit: an error, and the buffer as it was */
	buf_reset(&b);
	b.max = 8;
	buf_puts(&b, "ab");
	assert_true(buf_append_text(&b, "cdef\xFF\xFFgh", 8) < 0);
	assert_int_equal(b.len, 2);
	assert_string_equal(b.data, "ab");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base64_matches_rfc4648_vectors),
		cmocka_unit_test(base64_over_the_limit_fails_and_leaves_the_buffer),
		cmocka_unit_test(append_and_printf_keep_length_and_terminator),
		cmocka_unit_test(truncate_undoes_appends_and_never_grows),
		cmocka_unit_test(utf8_seq_len_follows_rfc3629),
		cmocka_unit_test(append_text_is_utf8_with_lf_line_ends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
