/*
 * NAME
 *	test_buf - unit tests for lib/buf.c
 * DESCRIPTION
 *	Appends and limits, and base64 against RFC 4648's test vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "buf.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base64_matches_rfc4648_vectors),
		cmocka_unit_test(base64_over_the_limit_fails_and_leaves_the_buffer),
		cmocka_unit_test(append_and_printf_keep_length_and_terminator),
		cmocka_unit_test(truncate_undoes_appends_and_never_grows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
