/*
 * NAME
 *	test_tmplset - unit tests for the loaded template set (lib/tmplset.c)
 * DESCRIPTION
 *	Each test writes a template directory of its own under /tmp: a
 *	complete default locale (both variants of every event type, each
 *	naming its locale, type and variant in its text) and whatever the
 *	test adds or breaks. What users rely on: the shipped templates load;
 *	a locale without a template falls back to the default locale's, and
 *	partials are looked up in the locale of the template rendered, then
 *	the default one; a file without its "Subject: " line, without the
 *	empty line after it, or that does not parse fails the load naming
 *	the file, and so does a broken partial; the default locale must be
 *	complete; the limits (32 locales, 64 partials) hold; the subject is
 *	one line whatever the context holds; a failed render keeps the
 *	subject it appended.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "event.h"
#include "fsfix.h"
#include "tmplset.h"

static char dir[64];

/* write_locale - both variants of every type into dir/LOC (made here). */
static void
write_locale(const char *loc)
{
	const struct event_type *types;
	char path[256];
	size_t n, i;

	snprintf(path, sizeof(path), "%s/%s", dir, loc);
	assert_int_equal(mkdir(path, 0700), 0);
	types = event_types_all(&n);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s.full.mustache", dir, loc,
			 types[i].name);
		tu_write_file(path, "Subject: %s full %s {{x}}\n\n"
			      "%s full body {{x}}\nsecond line\n", loc,
			      types[i].name, loc);
		snprintf(path, sizeof(path), "%s/%s/%s.notice.mustache", dir, loc,
			 types[i].name);
		tu_write_file(path, "Subject: %s notice %s\n\n"
			      "%s notice body\n{{> foot}}{{> sig}}\n", loc,
			      types[i].name, loc);
	}
}

static void
write_in(const char *loc, const char *file, const char *text)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, loc);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, loc, file);
	tu_write_file(path, "%s", text);
}

static int
setup(void **state)
{
	if (tu_tmpdir("test_tmplset", dir, sizeof(dir)) < 0)
		return -1;
	write_locale("en");
	write_in("en", "foot.mustache", "en-foot\n");
	write_in("en", "sig.mustache", "en-sig\n");
	return 0;
}

static int
teardown(void **state)
{
	tu_rm_rf(dir);
	return 0;
}

static struct tmplset *
load_ok(const char *default_locale)
{
	struct tmplset *ts = NULL;
	struct cp_error err;

	cp_error_clear(&err);
	if (tmplset_load(dir, default_locale, &ts, &err) < 0)
		fail_msg("tmplset_load: %s", err.text);
	assert_non_null(ts);
	return ts;
}

/* load_fails - the load fails with code; err names what (a file). */
static void
load_fails(const char *default_locale, int code, const char *what)
{
	struct tmplset *ts = NULL;
	struct cp_error err;
	int r;

	cp_error_clear(&err);
	r = tmplset_load(dir, default_locale, &ts, &err);
	if (r != code)
		fail_msg("tmplset_load returned %d (want %d): %s", r, code, err.text);
	assert_null(ts);
	if (strstr(err.text, what) == NULL)
		fail_msg("error \"%s\" does not name \"%s\"", err.text, what);
}

/* render - subject and body of type/variant for locale, as strings. */
static int
render(struct tmplset *ts, const char *locale, const char *type,
       enum tmpl_variant v, const char *ctx_json, struct buf *subject,
       struct buf *body)
{
	struct cp_error err;
	json_t *ctx = json_loads(ctx_json ? ctx_json : "{}", 0, NULL);
	int r;

	assert_non_null(ctx);
	cp_error_clear(&err);
	r = tmplset_render(ts, locale, type, v, ctx, subject, body, &err);
	json_decref(ctx);
	buf_putc(subject, '\0');
	subject->len--;
	buf_putc(body, '\0');
	body->len--;
	return r;
}

/* --- loading --------------------------------------------------------- */

static void
shipped_templates_load_in_both_locales(void **state)
{
	char path[512];
	struct tmplset *ts = NULL;
	struct cp_error err;
	struct buf s = BUF_INIT, b = BUF_INIT, s2 = BUF_INIT, b2 = BUF_INIT;

	snprintf(path, sizeof(path), "%s/templates", tu_top());
	cp_error_clear(&err);
	if (tmplset_load(path, "en", &ts, &err) < 0)
		fail_msg("shipped templates: %s", err.text);
	assert_int_equal(tmplset_locales(ts), 2);
	assert_int_equal(render(ts, "en", "test_result", TMPL_NOTICE,
				"{\"clinic_name\":\"Lakeside\"}", &s, &b), 0);
	assert_int_equal(render(ts, "es", "test_result", TMPL_NOTICE,
				"{\"clinic_name\":\"Lakeside\"}", &s2, &b2), 0);
	assert_non_null(strstr(s.data, "Lakeside"));
	assert_non_null(strstr(s2.data, "Lakeside"));
	assert_string_not_equal(b.data, b2.data);	/* es is not en */
	buf_free(&s);
	buf_free(&b);
	buf_free(&s2);
	buf_free(&b2);
	tmplset_free(ts);
}

static void
renders_the_requested_variant_with_the_context(void **state)
{
	struct tmplset *ts = load_ok("en");
	struct buf s = BUF_INIT, b = BUF_INIT;

	assert_int_equal(render(ts, "en", "test_result", TMPL_FULL,
				"{\"x\":\"<v&1>\"}", &s, &b), 0);
	assert_string_equal(s.data, "en full test_result <v&1>");
	/* Plain text: no HTML escaping; bodies keep their LF lines. */
	assert_string_equal(b.data, "en full body <v&1>\nsecond line\n");
	buf_reset(&s);
	buf_reset(&b);
	assert_int_equal(render(ts, "en", "reply_ack", TMPL_NOTICE, NULL, &s, &b), 0);
	assert_string_equal(s.data, "en notice reply_ack");
	assert_string_equal(b.data, "en notice body\nen-foot\nen-sig\n\n");
	buf_free(&s);
	buf_free(&b);
	tmplset_free(ts);
}

static void
missing_template_falls_back_to_the_default_locale(void **state)
{
	struct tmplset *ts;
	struct buf s = BUF_INIT, b = BUF_INIT;

	write_in("fr", "test_result.full.mustache", "Subject: fr full\n\nfr body\n");
	ts = load_ok("en");
	assert_int_equal(tmplset_locales(ts), 2);
	assert_int_equal(render(ts, "fr", "test_result", TMPL_FULL, NULL, &s, &b), 0);
	assert_string_equal(s.data, "fr full");
	assert_string_equal(b.data, "fr body\n");
	buf_reset(&s);
	buf_reset(&b);
	/* fr has no notice of test_result, nor any template of payment_due. */
	assert_int_equal(render(ts, "fr", "test_result", TMPL_NOTICE, NULL, &s, &b), 0);
	assert_string_equal(s.data, "en notice test_result");
	buf_reset(&s);
	buf_reset(&b);
	assert_int_equal(render(ts, "fr", "payment_due", TMPL_FULL, NULL, &s, &b), 0);
	assert_string_equal(s.data, "en full payment_due ");
	buf_reset(&s);
	buf_reset(&b);
	/* An unknown locale, or none, is the default locale. */
	assert_int_equal(render(ts, "de", "test_result", TMPL_FULL, NULL, &s, &b), 0);
	assert_string_equal(s.data, "en full test_result ");
	buf_reset(&s);
	buf_reset(&b);
	assert_int_equal(render(ts, NULL, "test_result", TMPL_FULL, NULL, &s, &b), 0);
	assert_string_equal(s.data, "en full test_result ");
	buf_free(&s);
	buf_free(&b);
	tmplset_free(ts);
}

static void
partials_come_from_the_templates_locale_then_the_default(void **state)
{
	struct tmplset *ts;
	struct buf s = BUF_INIT, b = BUF_INIT;

	write_in("fr", "foot.mustache", "fr-foot\n");
	write_in("fr", "test_result.notice.mustache",
		 "Subject: fr notice\n\nfr body\n{{> foot}}{{> sig}}\n");
	ts = load_ok("en");
	/* fr's own template: fr's foot, and en's sig (fr has none). */
	assert_int_equal(render(ts, "fr", "test_result", TMPL_NOTICE, NULL, &s, &b), 0);
	assert_string_equal(b.data, "fr body\nfr-foot\nen-sig\n\n");
	buf_reset(&s);
	buf_reset(&b);
	/* A template that fell back to en uses en's partials, not fr's. */
	assert_int_equal(render(ts, "fr", "payment_due", TMPL_NOTICE, NULL, &s, &b), 0);
	assert_string_equal(b.data, "en notice body\nen-foot\nen-sig\n\n");
	buf_free(&s);
	buf_free(&b);
	tmplset_free(ts);
}

static void
missing_default_locale_fails_naming_it(void **state)
{
	load_fails("de", -ENOENT, "de");
}

static void
default_locale_missing_a_variant_fails_naming_the_file(void **state)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/en/refill_ready.notice.mustache", dir);
	assert_int_equal(unlink(path), 0);
	load_fails("en", -ENOENT, "refill_ready.notice.mustache");
}

static void
other_locales_may_be_partial_or_empty(void **state)
{
	struct tmplset *ts;
	char path[256];

	snprintf(path, sizeof(path), "%s/es", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	write_in("fr", "test_result.full.mustache", "Subject: fr\n\nfr\n");
	/* Not locales: a file, a hidden directory, a name with a dot. */
	write_in(".hidden", "x", "");
	write_in("a.b", "x", "");
	snprintf(path, sizeof(path), "%s/README", dir);
	tu_write_file(path, "not a locale\n");
	ts = load_ok("en");
	assert_int_equal(tmplset_locales(ts), 3);
	tmplset_free(ts);
}

static void
file_without_subject_line_fails_naming_it(void **state)
{
	write_in("en", "visit_summary.full.mustache", "Hello\n\nbody\n");
	load_fails("en", -EINVAL, "visit_summary.full.mustache:1:");
}

static void
file_without_empty_line_after_subject_fails_naming_it(void **state)
{
	write_in("en", "visit_summary.notice.mustache", "Subject: s\nbody\n");
	load_fails("en", -EINVAL, "visit_summary.notice.mustache:2:");
}

static void
broken_template_fails_naming_the_file(void **state)
{
	write_in("en", "payment_due.full.mustache",
		 "Subject: ok\n\nline one\n{{#open}}never closed\n");
	load_fails("en", -EINVAL, "payment_due.full.mustache");
}

static void
broken_subject_fails_naming_the_file(void **state)
{
	write_in("en", "payment_due.notice.mustache", "Subject: {{#x}}\n\nbody\n");
	load_fails("en", -EINVAL, "payment_due.notice.mustache: subject");
}

static void
broken_template_in_another_locale_fails_too(void **state)
{
	write_in("es", "payment_due.full.mustache", "Subject: ok\n\n{{/x}}\n");
	load_fails("en", -EINVAL, "es/payment_due.full.mustache");
}

static void
broken_partial_fails_the_load_naming_it(void **state)
{
	write_in("en", "sig.mustache", "-- {{#team}}\n");
	load_fails("en", -EINVAL, "en/sig.mustache");
}

static void
broken_partial_in_another_locale_fails_too(void **state)
{
	write_in("es", "foot.mustache", "{{> }}\n");
	load_fails("en", -EINVAL, "es/foot.mustache");
}

static void
over_32_locales_fail(void **state)
{
	char path[256];
	int i;

	for (i = 0; i < 31; i++) {
		snprintf(path, sizeof(path), "%s/l%02d", dir, i);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	/* en and 31 others: the limit itself loads. */
	tmplset_free(load_ok("en"));
	snprintf(path, sizeof(path), "%s/l99", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	load_fails("en", -E2BIG, "over 32 locales");
}

static void
over_64_partials_in_a_locale_fail(void **state)
{
	char name[32];
	int i;

	for (i = 0; i < 62; i++) {		/* with foot and sig: 64 */
		snprintf(name, sizeof(name), "p%02d.mustache", i);
		write_in("en", name, "x");
	}
	tmplset_free(load_ok("en"));
	write_in("en", "p99.mustache", "x");
	load_fails("en", -E2BIG, "over 64 partials");
}

/* --- rendering ------------------------------------------------------- */

static void
subject_is_one_line_whatever_the_context_holds(void **state)
{
	struct tmplset *ts = load_ok("en");
	struct buf s = BUF_INIT, b = BUF_INIT;
	size_t i;

	assert_int_equal(render(ts, "en", "test_result", TMPL_FULL,
				"{\"x\":\"a\\r\\nBcc: evil@example.org\\tz\\u0001\"}",
				&s, &b), 0);
	for (i = 0; i < s.len; i++)
		assert_false((unsigned char)s.data[i] < ' ');
	assert_string_equal(s.data, "en full test_result a  Bcc: evil@example.org z ");
	/* The body keeps what it was given. */
	assert_non_null(strstr(b.data, "a\r\nBcc: evil@example.org\tz"));
	buf_free(&s);
	buf_free(&b);
	tmplset_free(ts);
}

static void
rendering_appends_to_the_callers_buffers(void **state)
{
	struct tmplset *ts = load_ok("en");
	struct buf s = BUF_INIT, b = BUF_INIT;

	buf_printf(&s, "[pre] ");
	buf_printf(&b, "before\n");
	/* Only what this render appended is made one line. */
	assert_int_equal(render(ts, "en", "test_result", TMPL_FULL,
				"{\"x\":\"1\"}", &s, &b), 0);
	assert_string_equal(s.data, "[pre] en full test_result 1");
	assert_string_equal(b.data, "before\nen full body 1\nsecond line\n");
	buf_free(&s);
	buf_free(&b);
	tmplset_free(ts);
}

static void
unknown_event_type_is_enoent(void **state)
{
	struct tmplset *ts = load_ok("en");
	struct buf s = BUF_INIT, b = BUF_INIT;

	assert_int_equal(render(ts, "en", "no_such_type", TMPL_FULL, NULL, &s, &b),
			 -ENOENT);
	assert_int_equal(s.len, 0);
	assert_int_equal(b.len, 0);
	buf_free(&s);
	buf_free(&b);
	tmplset_free(ts);
}

static void
failed_body_keeps_the_subject_appended(void **state)
{
	struct tmplset *ts;
	struct buf s = BUF_INIT, b = BUF_INIT;

	/* A partial that parses but includes itself: the body fails. */
	write_in("en", "loop.mustache", "x{{> loop}}");
	write_in("en", "visit_summary.full.mustache", "Subject: sub\n\n{{> loop}}\n");
	ts = load_ok("en");
	assert_int_equal(render(ts, "en", "visit_summary", TMPL_FULL, NULL, &s, &b),
			 -ELOOP);
	assert_string_equal(s.data, "sub");
	buf_free(&s);
	buf_free(&b);
	tmplset_free(ts);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(shipped_templates_load_in_both_locales),
		T(renders_the_requested_variant_with_the_context),
		T(missing_template_falls_back_to_the_default_locale),
		T(partials_come_from_the_templates_locale_then_the_default),
		T(missing_default_locale_fails_naming_it),
		T(default_locale_missing_a_variant_fails_naming_the_file),
		T(other_locales_may_be_partial_or_empty),
		T(file_without_subject_line_fails_naming_it),
		T(file_without_empty_line_after_subject_fails_naming_it),
		T(broken_template_fails_naming_the_file),
		T(broken_subject_fails_naming_the_file),
		T(broken_template_in_another_locale_fails_too),
		T(broken_partial_fails_the_load_naming_it),
		T(broken_partial_in_another_locale_fails_too),
		T(over_32_locales_fail),
		T(over_64_partials_in_a_locale_fail),
		T(subject_is_one_line_whatever_the_context_holds),
		T(rendering_appends_to_the_callers_buffers),
		T(unknown_event_type_is_enoent),
		T(failed_body_keeps_the_subject_appended),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
