/*
 * NAME
 *	test_mailtext - unit tests for lib/mailtext.c
 * DESCRIPTION
 *	Header values unfolded, RFC 2047 decoded and cleaned, malformed
 *	encoded-words and raw 8-bit bytes included; text converted from its
 *	charset, with the fallbacks for unknown, lying or unsafe charset
 *	names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "inmsg.h"
#include "mailtext.h"
#include "msgfix.h"
#include "util.h"

static void
raw_8bit_header_bytes_become_replacement_characters(void **state)
{
	static const char raw[] =
		"From: P\xc3\xa4t \xff <p@x.test>\r\n"
		"Subject: r\xe9sultat caf\xc3\xa9 =?utf-8?q?caf=C3=A9?= \xed\xa0\x80\r\n"
		"\r\nbody\r\n";
	struct inmsg *m = NULL;
	struct cp_error err;

	assert_int_equal(inmsg_parse(raw, sizeof(raw) - 1, NULL, &m, &err), 0);
	/* "r\ufffdsultat café café \ufffd\ufffd\ufffd": never a '?' */
	assert_string_equal(m->subject, "r\xef\xbf\xbdsultat caf\xc3\xa9 caf\xc3\xa9 "
			    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	assert_non_null(m->from_name);
	assert_null(strchr(m->from_name, '?'));
	assert_non_null(strstr(m->from_name, "\xef\xbf\xbd"));
	inmsg_free(m);
}

static void
check_dup(char *s, const char *want)
{
	assert_non_null(s);
	assert_string_equal(s, want);
	assert_true(cp_utf8_valid(s, strlen(s)));
	free(s);
}

static void
header_values_are_unfolded_decoded_and_cleaned(void **state)
{
	check_dup(mailtext_decode_header("=?UTF-8?Q?caf=C3=A9?=\r\n =?ISO-8859-1?B?6Q==?="),
		  "caf\xc3\xa9\xc3\xa9");
	check_dup(mailtext_decode_header("  plain\tvalue \x01 "), "plain value");
	check_dup(mailtext_decode_header(""), "");
	check_dup(mailtext_unfold_dup("a\r\n b\n\tc"), "a b\tc");
	check_dup(mailtext_strip_angle_dup(" \r\n <id@x.example> "), "id@x.example");
	check_dup(mailtext_strip_angle_dup("<>"), "");
	check_dup(mailtext_addr_dup("<Pat@Example.ORG>"), "pat@example.org");
	check_dup(mailtext_first_token_dup(" Auto-Replied (vacation)"), "auto-replied");
	check_dup(mailtext_first_token_dup("Bulk;x"), "bulk");
	check_dup(mailtext_header_dup("  a  ", 5), "a");
}

static void
malformed_encoded_words_never_fail(void **state)
{
	static const char *const junk[] = {
		"=?", "=?utf-8?", "=?utf-8?q?", "=?utf-8?x?abc?=", "=?utf-8?b?####?=",
		"=?no-such-charset?q?abc?=", "=?utf-8?q?=ZZ=?=", "?=?=?=",
		"=?utf-8?b?/w==?=",		/* decodes to a lone 0xFF */
		"=?utf-8?q?a=00b?=",		/* decodes to a NUL */
		"\xff\xfe =?utf-8?q?x?= \xed\xa0\x80",
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(junk); i++) {
		char *s = mailtext_decode_header(junk[i]);

		assert_non_null(s);
		if (!cp_utf8_valid(s, strlen(s)))
			fail_msg("case %zu: not UTF-8", i);
		for (const char *p = s; *p; p++)
			assert_false((unsigned char)*p < 0x20);
		free(s);
	}
}

static void
text(const char *cs, const char *in, size_t len, const char *want)
{
	struct buf b = BUF_INIT;

	assert_int_equal(mailtext_to_utf8(cs, in, len, &b), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, want);
	assert_true(cp_utf8_valid(b.data, b.len));
	buf_free(&b);
}

static void
text_converts_from_its_charset_or_falls_back(void **state)
{
	text("iso-8859-1", "caf\xe9\r\n", 6, "caf\xc3\xa9\n");
	text("windows-1252", "\x80", 1, "\xe2\x82\xac");
	text(NULL, "caf\xc3\xa9\r", 6, "caf\xc3\xa9\n");	/* UTF-8 as it is */
	text(NULL, "caf\xe9", 4, "caf\xc3\xa9");		/* else Latin-1 */
	text("utf-8", "a\xff\x00z", 4, "a\xef\xbf\xbd\xef\xbf\xbdz");
	text("no-such-charset", "\xe9", 1, "\xc3\xa9");
	text("bad name; rm -rf", "x\xe9", 2, "x\xc3\xa9");	/* never to charconv */
	text("", "", 0, "");
	text(NULL, "a\0b", 3, "a\xef\xbf\xbd" "b");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(raw_8bit_header_bytes_become_replacement_characters),
		cmocka_unit_test(header_values_are_unfolded_decoded_and_cleaned),
		cmocka_unit_test(malformed_encoded_words_never_fail),
		cmocka_unit_test(text_converts_from_its_charset_or_falls_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
