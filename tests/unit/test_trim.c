/*
 * NAME
 *	test_trim - unit tests for reply trimming
 * DESCRIPTION
 *	Every email of discourse/email_reply_trimmer's test corpus
 *	(../shared/corpus/reply-trimmer, or $CAREPOST_SHARED/corpus) is
 *	trimmed and compared with its golden trimmed/ and elided/ files,
 *	stripped as the Ruby tests strip them. Cases listed in
 *	known_differences are reported but do not fail; any other mismatch
 *	does, and so does a listed case that starts passing (so the list
 *	stays honest). Then hand-written cases: hostile and malformed
 *	input returns quickly and sanely.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <time.h>

#include "buf.h"
#include "msgfix.h"
#include "trim.h"

/* Golden cases we knowingly differ on, each with the reason. */
static const struct {
	const char *name;
	const char *why;
} known_differences[] = {
	{ NULL, NULL },
};

static const char *
known_difference(const char *name)
{
	for (size_t i = 0; known_differences[i].name != NULL; i++)
		if (strcmp(known_differences[i].name, name) == 0)
			return known_differences[i].why;
	return NULL;
}

/* corpus_dir - the reply-trimmer corpus (tu_corpus_dir, msgfix.h). */
static int
corpus_dir(char *path, size_t size)
{
	const char *corpus = tu_corpus_dir();

	snprintf(path, size, "%s/reply-trimmer", corpus ? corpus : "(no corpus)");
	return corpus ? access(path, R_OK | X_OK) : -1;
}

/* read a file and strip it as Ruby's String#strip does */
static char *
read_stripped(const char *dir, const char *sub, const char *name, size_t *len)
{
	char path[4096];
	char *data = NULL;
	size_t n = 0, i = 0;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	if (cp_read_file(path, 1 << 20, &data, &n) < 0)
		return NULL;
	while (i < n && strchr(" \t\r\n\f\v", data[i]) != NULL && data[i])
		i++;
	while (n > i && (strchr(" \t\r\n\f\v", data[n - 1]) != NULL))
		n--;
	memmove(data, data + i, n - i);
	data[n - i] = '\0';
	*len = n - i;
	return data;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
corpus_emails_trim_to_their_golden_reply_and_elided(void **state)
{
	char dir[4096], sub[4200];
	DIR *d;
	struct dirent *de;
	char *names[1024];
	size_t n = 0, passed = 0, known = 0, failed = 0;

	if (corpus_dir(dir, sizeof(dir)) < 0) {
		print_message("reply-trimmer corpus absent (%s): skipping\n", dir);
		skip();
	}
	snprintf(sub, sizeof(sub), "%s/emails", dir);
	d = opendir(sub);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL && n < CP_ARRAY_SIZE(names)) {
		size_t l = strlen(de->d_name);

		if (l > 4 && strcmp(de->d_name + l - 4, ".txt") == 0)
			names[n++] = strdup(de->d_name);
	}
	closedir(d);
	assert_true(n > 0);
	qsort(names, n, sizeof(names[0]), cmp_names);

	for (size_t i = 0; i < n; i++) {
		size_t elen = 0, tlen = 0, dlen = 0;
		char *email = read_stripped(dir, "emails", names[i], &elen);
		char *want = read_stripped(dir, "trimmed", names[i], &tlen);
		char *want_el = read_stripped(dir, "elided", names[i], &dlen);
		char *reply = NULL, *elided = NULL;
		struct cp_error err;
		const char *why = known_difference(names[i]);
		int ok;

		assert_non_null(email);
		assert_non_null(want);
		assert_int_equal(trim_reply(email, elen, &reply, &elided, &err), 0);
		ok = strcmp(reply, want) == 0 &&
		     (want_el == NULL || strcmp(elided, want_el) == 0);
		if (ok && why == NULL) {
			passed++;
		} else if (!ok && why != NULL) {
			known++;
			print_message("known difference %s: %s\n", names[i], why);
		} else if (ok) {
			failed++;
			print_error("%s now passes: take it off known_differences\n",
				    names[i]);
		} else {
			failed++;
			print_error("%s differs\n--- want reply:\n%s\n--- got:\n%s\n"
				    "--- want elided:\n%s\n--- got:\n%s\n---\n",
				    names[i], want, reply,
				    want_el ? want_el : "(none)", elided);
		}
		free(email);
		free(want);
		free(want_el);
		free(reply);
		free(elided);
		free(names[i]);
	}
	print_message("reply-trimmer corpus: %zu of %zu pass, %zu known "
		      "differences, %zu failures\n", passed, n, known, failed);
	assert_int_equal(failed, 0);
}

/* ---------------------------------------------------- hand-written cases */

static void
trim_ok(const char *text, size_t len, const char *want, const char *want_el)
{
	char *reply = NULL, *elided = NULL;
	struct cp_error err;

	assert_int_equal(trim_reply(text, len, &reply, &elided, &err), 0);
	assert_non_null(reply);
	assert_non_null(elided);
	if (want != NULL)
		assert_string_equal(reply, want);
	if (want_el != NULL)
		assert_string_equal(elided, want_el);
	assert_true(cp_utf8_valid(reply, strlen(reply)) || reply[0] == '\0');
	assert_true(cp_utf8_valid(elided, strlen(elided)) || elided[0] == '\0');
	free(reply);
	free(elided);
}

#define TRIM_STR(s, want, el) trim_ok(s, sizeof(s) - 1, want, el)

static void
outlook_header_block_and_on_wrote_markers_are_cut(void **state)
{
	TRIM_STR("Thanks, see you Monday.\r\n\r\nOn Tue, Mar 3, 2020 at 10:00 AM "
		 "Clinic <noreply@clinic.example> wrote:\r\n> Your appointment\r\n",
		 "Thanks, see you Monday.",
		 "On Tue, Mar 3, 2020 at 10:00 AM Clinic <noreply@clinic.example> "
		 "wrote:\n> Your appointment");
	TRIM_STR("Yes please.\n\n________________________________\nFrom: Clinic\n"
		 "Sent: Tuesday, March 3, 2020 10:00\nTo: Pat\nSubject: Re: x\n\n"
		 "Old text\n", "Yes please.", NULL);
	TRIM_STR("Fine.\n\n-----Original Message-----\nFrom: a@b.example\n"
		 "old\n", "Fine.", NULL);
	/* a marker wrapped over two lines is rejoined */
	TRIM_STR("ok\n\nOn Tue, Mar 3, 2020 at 10:00 AM Dr Who <who@x.example>\n"
		 "wrote:\n\n> hi\n", "ok",
		 "On Tue, Mar 3, 2020 at 10:00 AM Dr Who <who@x.example> "
		 "wrote:\n\n> hi");
}

static void
signatures_and_delimiters_are_cut(void **state)
{
	TRIM_STR("Will do.\n\nSent from my iPhone\n", "Will do.",
		 "Sent from my iPhone");
	TRIM_STR("Will do.\n-- \nPat Doe\n555-1234\n", "Will do.",
		 "-- \nPat Doe\n555-1234");
	/* a delimiter inside a code fence is kept */
	TRIM_STR("see:\n```\n---\n```\nbye", "see:\n```\n---\n```\nbye", "");
}

static void
empty_and_blank_input_give_an_empty_reply(void **state)
{
	trim_ok("", 0, "", "");
	trim_ok(NULL, 0, "", "");
	TRIM_STR(" \t\r\n\r\n  \n", "", "");
	TRIM_STR("\xc2\xa0\n\xe3\x80\x80", "", "");	/* [[:space:]] is Unicode */
}

/*
 * With no text line at all, the Ruby rule /t?e*[qbe]+$/ keeps the first
 * line of the trailing quote (pattern[0..index] is inclusive).
 */
static void
quotes_only_keep_their_first_line(void **state)
{
	TRIM_STR("> a\n> b\n", "> a", "> b");
	TRIM_STR(">", ">", "");
}

static void
text_without_newline_is_returned_as_is(void **state)
{
	TRIM_STR("just one line", "just one line", "");
}

static void
cr_only_line_endings_are_line_breaks(void **state)
{
	TRIM_STR("Reply\r\rOn Mon, Jan 1, 2024, Bob <b@x.example> wrote:\r> q\r",
		 "Reply", NULL);
	TRIM_STR("a\r\r\r", "a", "");
}

static void
nul_bytes_and_invalid_utf8_become_replacement_characters(void **state)
{
	static const char in[] = "a\0b\n\xff\xfe c\xc3\n\xed\xa0\x80";
	char *reply = NULL;
	struct cp_error err;

	assert_int_equal(trim_reply(in, sizeof(in) - 1, &reply, NULL, &err), 0);
	assert_string_equal(reply, "a\xef\xbf\xbd" "b\n\xef\xbf\xbd\xef\xbf\xbd c"
			    "\xef\xbf\xbd\n\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	assert_true(cp_utf8_valid(reply, strlen(reply)));
	free(reply);
}

static double
seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* "quick": seconds natively, more under valgrind (tests/run sets VALGRIND) */
static double
quick(void)
{
	return getenv("VALGRIND") != NULL ? 300.0 : 5.0;
}

static void
one_megabyte_single_line_is_quick(void **state)
{
	size_t n = 1 << 20;
	char *big = malloc(n);
	char *reply = NULL;
	struct cp_error err;
	struct timespec t0;

	assert_non_null(big);
	/* the worst for the matchers: "On " then digits and keywords */
	memcpy(big, "On ", 3);
	for (size_t i = 3; i < n; i++)
		big[i] = "2017 napisał(a) wrote a "[i % 24];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(trim_reply(big, n, &reply, NULL, &err), 0);
	assert_true(seconds_since(&t0) < quick());
	assert_true(strlen(reply) > n / 2);
	free(reply);
	memset(big, '-', n);	/* one huge "delimiter" line */
	assert_int_equal(trim_reply(big, n, &reply, NULL, &err), 0);
	free(reply);
	free(big);
}

static void
hundred_thousand_quote_lines_are_quick(void **state)
{
	size_t lines = 100000;
	char *big = malloc(lines * 2 + 16);
	char *reply = NULL, *elided = NULL;
	struct cp_error err;
	struct timespec t0;

	assert_non_null(big);
	for (size_t i = 0; i < lines; i++) {
		big[2 * i] = '>';
		big[2 * i + 1] = '\n';
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(trim_reply(big, lines * 2, &reply, &elided, &err), 0);
	assert_true(seconds_since(&t0) < quick());
	assert_string_equal(reply, ">");	/* only quotes: the first */
	assert_int_equal(strlen(elided), lines * 2 - 3);
	free(reply);
	free(elided);
	/* text first: all the quotes are elided */
	memcpy(big, "Hi\n", 3);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(trim_reply(big, lines * 2, &reply, &elided, &err), 0);
	assert_true(seconds_since(&t0) < quick());
	assert_string_equal(reply, "Hi");
	free(reply);
	free(elided);
	free(big);
}

static void
many_wrapped_marker_starts_are_quick(void **state)
{
	/* every line could start a wrapped "On ... wrote:" or enclosed quote */
	static const char *const unit[] = {
		"On a b c d e f g h i j k l m n o p q r s t u v w x y z\n",
		">>> x >>>\n", ">>>>\n", "Max schrieb\nam 2017 Fr\n",
		"1234 ab\nxx napisał(a) yy\n",
	};
	for (size_t u = 0; u < CP_ARRAY_SIZE(unit); u++) {
		size_t ul = strlen(unit[u]), reps = (512u << 10) / ul;
		char *big = malloc(reps * ul);
		char *reply = NULL, *elided = NULL;
		struct cp_error err;
		struct timespec t0;

		assert_non_null(big);
		for (size_t i = 0; i < reps; i++)
			memcpy(big + i * ul, unit[u], ul);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(trim_reply(big, reps * ul, &reply, &elided,
					    &err), 0);
		assert_true(seconds_since(&t0) < 2 * quick());
		free(reply);
		free(elided);
		free(big);
	}
}

static void
limits_are_refused_with_a_reason(void **state)
{
	size_t n = TRIM_MAX_SIZE + 1;
	char *big = calloc(1, n);
	char *reply = (char *)1;
	struct cp_error err;

	assert_non_null(big);
	assert_int_equal(trim_reply(big, n, &reply, NULL, &err), -EFBIG);
	assert_null(reply);
	assert_non_null(strstr(err.text, "exceeds"));
	memset(big, '\n', TRIM_MAX_LINES + 1);
	assert_int_equal(trim_reply(big, TRIM_MAX_LINES + 1, &reply, NULL, &err),
			 -E2BIG);
	assert_int_equal(trim_reply("x", 1, NULL, NULL, &err), -EINVAL);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(corpus_emails_trim_to_their_golden_reply_and_elided),
		cmocka_unit_test(outlook_header_block_and_on_wrote_markers_are_cut),
		cmocka_unit_test(signatures_and_delimiters_are_cut),
		cmocka_unit_test(empty_and_blank_input_give_an_empty_reply),
		cmocka_unit_test(quotes_only_keep_their_first_line),
		cmocka_unit_test(text_without_newline_is_returned_as_is),
		cmocka_unit_test(cr_only_line_endings_are_line_breaks),
		cmocka_unit_test(nul_bytes_and_invalid_utf8_become_replacement_characters),
		cmocka_unit_test(one_megabyte_single_line_is_quick),
		cmocka_unit_test(hundred_thousand_quote_lines_are_quick),
		cmocka_unit_test(many_wrapped_marker_starts_are_quick),
		cmocka_unit_test(limits_are_refused_with_a_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
