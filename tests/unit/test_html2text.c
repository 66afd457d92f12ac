/*
 * NAME
 *	test_html2text - unit tests for lib/html2text.c
 * DESCRIPTION
 *	Tags, block tags, white space and entities as promised, and
 *	malformed HTML: unclosed tags and comments, script without its end,
 *	entities out of range or cut short, a text that is all "<".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "html2text.h"
#include "util.h"

static void
check(const char *html, const char *want)
{
	struct buf b = BUF_INIT;

	assert_int_equal(html2text(html, strlen(html), &b), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void
tags_go_and_blocks_become_line_breaks(void **state)
{
	check("<p>Hello <b>Dr</b>  Smith,</p><p>see you<br>then</p>",
	      "\nHello Dr Smith,\n\nsee you\nthen\n");
	check("<div>a</div>\n\n<div>b</div>", "\na\n\nb\n");
	check("<ul><li>one<li>two</ul>", "\none\ntwo");
	check("<brand>x</brand>", "x");			/* not <br> */
	check("", "");
}

static void
script_and_style_content_is_skipped(void **state)
{
	check("a<script>alert('<p>')</script>b<style>p{}</style>c", "abc");
	check("a<SCRIPT>x</SCRIPT>b", "a");	/* end tag matched as written */
	check("a<script>never closed", "a");
}

static void
entities_are_decoded_within_bounds(void **state)
{
	check("&lt;&amp;&gt;&quot;&apos;&#39;", "<&>\"''");
	check("caf&#233; &#xE9;&#XE9;", "caf\xc3\xa9 \xc3\xa9\xc3\xa9");
	check("x&nbsp;y", "x y");
	check("&#0;&#xD800;&#x110000;&#xFFFFFFFFFF;", "&#0;&#xD800;&#x110000;&#xFFFFFFFFFF;");
	check("&unknown; &amp &#; &#x;", "&unknown; &amp &#; &#x;");
	check("&averyveryverylongname;", "&averyveryverylongname;");
}

static void
malformed_html_never_fails(void **state)
{
	static const char *const junk[] = {
		"<", "<<<<", "<p", "a<!-- never closed", ">>>", "&", "&#", "&#x",
		"<p>&#1114111;", "</>", "<\xff>\xff", "<script", "<style>",
		"a\0b",
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(junk); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(html2text(junk[i], strlen(junk[i]), &b), 0);
		assert_non_null(b.data);
		buf_free(&b);
	}
	check("text<p", "text\n");	/* a tag without ">" ends the text */
	check("text<b and more", "text");
	check("a>b", "a>b");
}

static void
input_need_not_be_nul_terminated(void **state)
{
	struct buf b = BUF_INIT;
	static const char h[] = { 'a', '<', 'b', 'r', '>', 'b', '&', 'a', 'm' };

	assert_int_equal(html2text(h, sizeof(h), &b), 0);
	assert_string_equal(b.data, "a\nb&am");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tags_go_and_blocks_become_line_breaks),
		cmocka_unit_test(script_and_style_content_is_skipped),
		cmocka_unit_test(entities_are_decoded_within_bounds),
		cmocka_unit_test(malformed_html_never_fails),
		cmocka_unit_test(input_need_not_be_nul_terminated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
