/*
 * NAME
 *	test_mimescan - unit tests for lib/mimescan.c
 * DESCRIPTION
 *	Nesting refused before libetpan parses it, from real and built
 *	messages; Content-Type and boundary lines that cannot be read,
 *	look-alike boundaries, the caps on both kinds of lines, and header
 *	blocks measured on raw lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "inmsg.h"
#include "mimescan.h"
#include "msgfix.h"
#include "util.h"

static void
endless_enclosure_is_refused_before_parsing(void **state)
{
	const char *dir;
	char p[4096];
	_cleanup_free_ char *raw = NULL;
	size_t len;
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	NEED_CORPUS(dir);
	snprintf(p, sizeof(p), "%s/flanker-messages/enclosed-endless.eml", dir);
	assert_int_equal(cp_read_file(p, 64u << 20, &raw, &len), 0);
	assert_int_equal(inmsg_parse(raw, len, NULL, &m, &err), -E2BIG);
	assert_null(m);
	assert_non_null(strstr(err.text, "Content-Type headers"));
}

/*
 * Depth x size: 1,000 levels around megabytes of filler cost libetpan a
 * rescan of the rest per level (half a minute for 25 MB); the pre-scan
 * refuses them on the raw lines. Siblings, closed or not, are no depth;
 * a boundary that is a prefix of another is not confused with it.
 */
static void
deep_nesting_is_refused_before_parsing_and_siblings_are_not_depth(void **state)
{
	struct buf b = BUF_INIT;
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	buf_puts(&b, "From: a@b.example\r\nMIME-Version: 1.0\r\n");
	for (unsigned i = 0; i < 1000; i++)
		buf_printf(&b, "Content-Type: multipart/mixed;\r\n boundary=\"b%u\"\r\n\r\n--b%u\r\n", i, i);
	for (unsigned i = 0; i < 100000; i++)
		buf_puts(&b, "filler filler filler filler filler filler filler\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), -ELOOP);
	assert_string_equal(err.text, "message nesting depth exceeds 20 (seen before parsing)");
	buf_free(&b);

	/* a look-alike boundary in another parameter, or inside a quoted
	 * value, closed at once by a preamble line: the boundary is the one
	 * libetpan reads, so nothing closes and the nesting is refused */
	for (int trick = 0; trick < 2; trick++) {
		buf_puts(&b, "From: a@b.example\r\nMIME-Version: 1.0\r\n");
		for (unsigned i = 0; i < 100; i++)
			buf_printf(&b, trick == 0 ?
				   "Content-Type: multipart/mixed; xboundary=\"Z\"; boundary=\"b%u\"\r\n\r\n--Z--\r\n--b%u\r\n" :
				   "Content-Type: multipart/mixed; name=\"x; boundary=Z\"; boundary=\"b%u\"\r\n\r\n--Z--\r\n--b%u\r\n",
				   i, i);
		buf_puts(&b, "Content-Type: text/plain\r\n\r\nx\r\n");
		assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), -ELOOP);
		assert_string_equal(err.text, "message nesting depth exceeds 20 (seen before parsing)");
		buf_free(&b);
	}

	/* 60 sibling multiparts (30 closed, 30 not), each one level down */
	buf_puts(&b, "From: a@b.example\r\nMIME-Version: 1.0\r\n"
		 "Content-Type: multipart/mixed; boundary=top\r\n\r\n");
	for (unsigned i = 0; i < 60; i++) {
		buf_printf(&b, "--top\r\nContent-Type: multipart/alternative;\r\n\tboundary=\"top%u\"\r\n\r\n"
			   "--top%u\r\nContent-Type: text/plain\r\n\r\npart %u\r\n", i, i, i);
		if (i % 2 == 0)
			buf_printf(&b, "--top%u--\r\n", i);
	}
	buf_puts(&b, "--top--\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), 0);
	assert_int_equal(m->depth, 3);
	inmsg_free(m);
	buf_free(&b);
}

static void
check(const char *raw, const struct inmsg_limits *lim, int want)
{
	struct cp_error err = { 0 };
	int r = mimescan_check(raw, strlen(raw), lim, &err);

	if (r != want)
		fail_msg("mimescan_check %d, want %d (%s)", r, want, err.text);
	if (r < 0)
		assert_int_equal(err.code, r);
}

static void
malformed_content_types_and_boundaries_are_counted_not_trusted(void **state)
{
	struct inmsg_limits lim;
	struct buf b = BUF_INIT;

	inmsg_limits_default(&lim);
	check("", &lim, 0);
	check("Content-Type", &lim, 0);
	check("Content-Type:", &lim, 0);
	check("Content-Typo: multipart/mixed\r\n", &lim, 0);
	check("Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n----\r\n", &lim, 0);
	check("Content-Type: multipart/mixed; boundary=\"unclosed\r\n", &lim, 0);
	check("content-type:\tMULTIPART/mixed;\r\n\tboundary=x\r\n--x--", &lim, 0);
	/* multiparts whose boundary cannot be read never close */
	for (unsigned i = 0; i < 30; i++)
		buf_puts(&b, "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n");
	check(b.data, &lim, -ELOOP);
	buf_reset(&b);
	/* message/ levels are unnamed: nothing closes them */
	for (unsigned i = 0; i < 30; i++)
		buf_puts(&b, "Content-Type: message/rfc822\r\n\r\n");
	check(b.data, &lim, -ELOOP);
	buf_reset(&b);
	/* a boundary over 200 bytes is not tracked: its level stays open */
	buf_puts(&b, "Content-Type: multipart/mixed; boundary=");
	for (unsigned i = 0; i < 300; i++)
		buf_putc(&b, 'b');
	buf_puts(&b, "\r\n\r\n");
	check(b.data, &lim, 0);
	buf_free(&b);
}

static void
content_type_and_dash_lines_are_capped(void **state)
{
	struct inmsg_limits lim;
	struct buf b = BUF_INIT;

	inmsg_limits_default(&lim);
	lim.max_parts = 10;
	for (unsigned i = 0; i < 37; i++)
		buf_puts(&b, "Content-Type: text/plain\r\n");
	check(b.data, &lim, -E2BIG);
	buf_reset(&b);
	for (unsigned i = 0; i < 36; i++)
		buf_puts(&b, "Content-Type: text/plain\r\n");
	check(b.data, &lim, 0);
	buf_reset(&b);
	for (unsigned i = 0; i < 4097; i++)
		buf_puts(&b, "--\n");
	check(b.data, &lim, -E2BIG);
	buf_free(&b);
}

static void
header_blocks_are_measured_on_raw_lines(void **state)
{
	static const char h[] = "A: 1\r\nB: 2\r\n folded\r\n\tagain\r\nC: 3\r\n\r\nbody: not a field\r\n";
	static const char lf[] = "A: 1\nB: 2\n\nbody";

	assert_int_equal(mimescan_header_fields(h, sizeof(h) - 1), 3);
	assert_int_equal(mimescan_header_len(h, sizeof(h) - 1), 37);
	assert_int_equal(mimescan_header_fields(lf, sizeof(lf) - 1), 2);
	assert_int_equal(mimescan_header_len(lf, sizeof(lf) - 1), 11);
	assert_int_equal(mimescan_header_len("no blank line", 13), 13);
	assert_int_equal(mimescan_header_fields("", 0), 0);
	assert_int_equal(mimescan_header_len("", 0), 0);
	assert_int_equal(mimescan_header_fields("\r\nA: 1\r\n", 8), 0);
	assert_int_equal(mimescan_header_fields(" lone continuation\nA: 1", 23), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(endless_enclosure_is_refused_before_parsing),
		cmocka_unit_test(deep_nesting_is_refused_before_parsing_and_siblings_are_not_depth),
		cmocka_unit_test(malformed_content_types_and_boundaries_are_counted_not_trusted),
		cmocka_unit_test(content_type_and_dash_lines_are_capped),
		cmocka_unit_test(header_blocks_are_measured_on_raw_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
