/*
 * NAME
 *	test_replymark - unit tests for lib/replymark.c
 * DESCRIPTION
 *	One line of each class, markers in several languages, lines that
 *	only start like a marker or are too long to be one, and markers
 *	wrapped over lines: joined when the break is within the rule, left
 *	alone past four line breaks or with nothing to join.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "replymark.h"
#include "util.h"

static char
cls(const char *s)
{
	return replymark_classify(s, strlen(s));
}

static void
each_class_has_its_letter(void **state)
{
	static const struct { const char *line; char want; } c[] = {
		{ "", 'e' }, { " \t", 'e' },
		{ "--", 'd' }, { "-- ", 'd' }, { "________________________________", 'd' },
		{ "Sent from my iPhone", 's' },
		{ "On Tue, Mar 3, 2020 at 10:00 AM Clinic <c@x.example> wrote:", 'b' },
		{ "-----Original Message-----", 'b' },
		{ "Le mar. 3 mars 2020 à 10:00, Clinic <c@x.example> a écrit :", 'b' },
		{ "Am 03.03.2020 um 10:00 schrieb Clinic <c@x.example>:", 'b' },
		{ "From: Clinic", 'h' }, { "Sent: Tuesday, March 3, 2020 10:00", 'h' },
		{ "> quoted", 'q' }, { ">", 'q' },
		{ "```", 'p' }, { "```c", 'c' },
		{ "Thanks, see you Monday.", 't' },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(c); i++)
		if (cls(c[i].line) != c[i].want)
			fail_msg("case %zu: '%c', want '%c'", i, cls(c[i].line),
				 c[i].want);
}

static void
lines_that_only_look_like_markers_are_text(void **state)
{
	static const char *const text[] = {
		"On", "On Tuesday I wrote a letter", "wrote:", "From", "From:x:y and more words",
		"Sent from", "Sent: Tuesday", "-- and more", "-----", "\xe2\x80\x94 Pat",
		"1234 napisał", ">>> not closed", "On \xc3\xa9\xc3\xa9\xc3\xa9",
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(text); i++) {
		char c = cls(text[i]);

		if (c == 'b' || c == 'e')
			fail_msg("case %zu (%s) is '%c'", i, text[i], c);
	}
}

static void
overlong_lines_are_never_markers(void **state)
{
	size_t n = REPLYMARK_MAX_LINE + 100;
	char *s = malloc(n + 1);
	static const char m[] = "On Tue, Mar 3, 2020 at 10:00 AM Clinic <c@x.example> ";

	assert_non_null(s);
	memset(s, 'x', n);
	memcpy(s, m, sizeof(m) - 1);
	memcpy(s + n - 6, "wrote:", 6);
	s[n] = '\0';
	assert_int_equal(replymark_classify(s, n), 't');
	memcpy(s, "From: ", 6);
	assert_int_equal(replymark_classify(s, n), 't');
	free(s);
}

static void
join(const char *in, const char *want)
{
	struct buf t = BUF_INIT, out = BUF_INIT;

	assert_int_equal(buf_puts(&t, in), 0);
	assert_int_equal(replymark_join_wrapped(&t, &out), 0);
	assert_string_equal(t.data ? t.data : "", want);
	buf_free(&t);
	buf_free(&out);
}

static void
wrapped_markers_are_joined_onto_one_line(void **state)
{
	join("ok\n\nOn Tue, Mar 3, 2020 at 10:00 AM Dr Who <who@x.example>\nwrote:\n\n> hi",
	     "ok\n\nOn Tue, Mar 3, 2020 at 10:00 AM Dr Who <who@x.example> wrote:\n\n> hi");
	join("ok\nOn Tue, Mar 3, 2020\n   at 10:00, Dr Who\n  <who@x.example> wrote:\n> hi",
	     "ok\nOn Tue, Mar 3, 2020 at 10:00, Dr Who <who@x.example> wrote:\n> hi");
	join("x\n2017-01-02 Pat Doe <\npat@x.example>:\n> q",
	     "x\n2017-01-02 Pat Doe < pat@x.example>:\n> q");
	/* nothing to join */
	join("", "");
	join("no marker\nat all\n", "no marker\nat all\n");
	join("On Tue, Mar 3, 2020 at 10:00 AM Dr Who wrote:\n", "On Tue, Mar 3, 2020 at 10:00 AM Dr Who wrote:\n");
	/* more than four line breaks: not one marker */
	join("On Tue,\n\n\n\n\n\nMar 3 wrote:\n", "On Tue,\n\n\n\n\n\nMar 3 wrote:\n");
	/* a marker start with no end */
	join("On Tue, Mar 3, 2020\nat 10:00 nobody did anything\n",
	     "On Tue, Mar 3, 2020\nat 10:00 nobody did anything\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(each_class_has_its_letter),
		cmocka_unit_test(lines_that_only_look_like_markers_are_text),
		cmocka_unit_test(overlong_lines_are_never_markers),
		cmocka_unit_test(wrapped_markers_are_joined_onto_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
