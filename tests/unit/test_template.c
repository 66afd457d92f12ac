/*
 * NAME
 *	test_template - unit tests for the mustache template engine
 * DESCRIPTION
 *	Runs every test of the mustache spec's core modules (interpolation,
 *	sections, inverted, comments, delimiters, partials) from the shared
 *	corpus, byte for byte, and reports each failing spec test by name;
 *	skips when the corpus is absent. Then the engine's own contract:
 *	malformed templates and every limit fail with a negative code and a
 *	line number in a PHI-free text, escaping modes, the directory partial
 *	loader's refusals, and concurrent renders of one parsed template.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "template.h"

/* ------------------------------------------------------------ helpers */

static json_t *
load_json(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);

	if (v == NULL)
		fail_msg("bad test JSON: %s", je.text);
	return v;
}

/* Render tpl against JSON text; returns the code, output in *out. */
static int
render(const char *tpl, const char *json, const struct tmpl_options *opts,
       struct buf *out, struct cp_error *err)
{
	json_t *ctx = json ? load_json(json) : NULL;
	int r;

	cp_error_clear(err);
	r = tmpl_render_string(tpl, strlen(tpl), ctx, opts, out, err);
	json_decref(ctx);
	return r;
}

static void
expect_output(const char *tpl, const char *json,
	      const struct tmpl_options *opts, const char *expected)
{
	struct buf out = BUF_INIT;
	struct cp_error err;
	int r = render(tpl, json, opts, &out, &err);

	if (r < 0)
		fail_msg("render of %s failed: %d %s", tpl, r, err.text);
	assert_int_equal(out.len, strlen(expected));
	if (out.len > 0)
		assert_memory_equal(out.data, expected, out.len);
	buf_free(&out);
}

/* Expect failure with code, and an error text containing each needle. */
static void
expect_error(const char *tpl, const char *json,
	     const struct tmpl_options *opts, int code, const char *needle1,
	     const char *needle2)
{
	struct buf out = BUF_INIT;
	struct cp_error err;
	int r = render(tpl, json, opts, &out, &err);

	assert_int_equal(r, code);
	assert_int_equal(err.code, code);
	if (strstr(err.text, needle1) == NULL)
		fail_msg("error text \"%s\" lacks \"%s\"", err.text, needle1);
	if (needle2 && strstr(err.text, needle2) == NULL)
		fail_msg("error text \"%s\" lacks \"%s\"", err.text, needle2);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

/* A loader serving partials from a JSON object of strings. */
static int
json_partial(void *userdata, const char *name, char **src, size_t *len)
{
	json_t *p = json_object_get(userdata, name);

	if (!json_is_string(p))
		return -ENOENT;
	*len = json_string_length(p);
	*src = malloc(*len + 1);
	if (*src == NULL)
		return -ENOMEM;
	memcpy(*src, json_string_value(p), *len + 1);
	return 0;
}

/* --------------------------------------------------------- spec corpus */

static int
spec_path(const char *file, char *path, size_t size)
{
	const char *shared = getenv("CAREPOST_SHARED");

	if (shared != NULL && *shared != '\0')
		snprintf(path, size, "%s/corpus/mustache-spec/%s", shared,
			 file);
	else
		snprintf(path, size, "../shared/corpus/mustache-spec/%s",
			 file);
	return access(path, R_OK);
}

static void
run_spec_file(const char *file)
{
	char path[4096];
	json_error_t je;
	json_t *root, *tests, *t;
	size_t i, failures = 0;

	if (spec_path(file, path, sizeof(path)) < 0) {
		print_message("mustache spec corpus absent (%s): skipping\n",
			      path);
		skip();
	}
	root = json_load_file(path, 0, &je);
	if (root == NULL)
		fail_msg("%s: %s line %d", path, je.text, je.line);
	tests = json_object_get(root, "tests");
	assert_true(json_is_array(tests));
	assert_true(json_array_size(tests) > 0);
	json_array_foreach(tests, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *tpl = json_object_get(t, "template");
		json_t *expected = json_object_get(t, "expected");
		json_t *partials = json_object_get(t, "partials");
		struct tmpl_options opts = {
			.escape = TMPL_ESCAPE_HTML,
			.partial = json_partial,
			.partial_userdata = partials,
		};
		struct buf out = BUF_INIT;
		struct cp_error err;
		int r;

		assert_non_null(name);
		assert_true(json_is_string(tpl) && json_is_string(expected));
		cp_error_clear(&err);
		r = tmpl_render_string(json_string_value(tpl),
				       json_string_length(tpl),
				       json_object_get(t, "data"), &opts, &out,
				       &err);
		if (r < 0) {
			print_error("spec %s: \"%s\" failed: %d %s\n", file,
				    name, r, err.text);
			failures++;
		} else if (out.len != json_string_length(expected) ||
			   (out.len > 0 &&
			    memcmp(out.data, json_string_value(expected),
				   out.len) != 0)) {
			print_error("spec %s: \"%s\" failed\n  expected: "
				    "[%s]\n  got:      [%s]\n", file, name,
				    json_string_value(expected),
				    out.data ? out.data : "");
			failures++;
		}
		buf_free(&out);
	}
	print_message("spec %s: %zu of %zu passed\n", file,
		      json_array_size(tests) - failures,
		      json_array_size(tests));
	json_decref(root);
	assert_int_equal(failures, 0);
}

static void
test_spec_interpolation_passes_every_case(void **state)
{
	run_spec_file("interpolation.json");
}

static void
test_spec_sections_passes_every_case(void **state)
{
	run_spec_file("sections.json");
}

static void
test_spec_inverted_passes_every_case(void **state)
{
	run_spec_file("inverted.json");
}

static void
test_spec_comments_passes_every_case(void **state)
{
	run_spec_file("comments.json");
}

static void
test_spec_delimiters_passes_every_case(void **state)
{
	run_spec_file("delimiters.json");
}

static void
test_spec_partials_passes_every_case(void **state)
{
	run_spec_file("partials.json");
}

/* ---------------------------------------------------- malformed input */

static void
test_unclosed_section_fails_naming_its_line(void **state)
{
	expect_error("Dear Jane Roe,\nline two\n{{#items}}\nbody\n", "{}",
		     NULL, -EINVAL, "line 3", "unclosed section 'items'");
	expect_error("{{#a}}{{#b}}{{/b}}", NULL, NULL, -EINVAL, "line 1",
		     "'a'");
}

static void
test_mismatched_close_fails_naming_both_lines(void **state)
{
	expect_error("{{#a}}\nx\n{{/b}}", NULL, NULL, -EINVAL, "line 3",
		     "opened on line 1");
	expect_error("x\n{{/a}}", NULL, NULL, -EINVAL, "line 2",
		     "without an open section");
}

static void
test_unclosed_tag_fails_naming_its_line(void **state)
{
	expect_error("one\ntwo\nthree {{name", NULL, NULL, -EINVAL, "line 3",
		     "unclosed tag");
	expect_error("{{{name}}", NULL, NULL, -EINVAL, "line 1",
		     "unclosed tag");
	expect_error("a\n{{", NULL, NULL, -EINVAL, "line 2", "unclosed tag");
	/* After a delimiter change the old closer no longer closes. */
	expect_error("{{=<% %>=}}\n<% name }}", NULL, NULL, -EINVAL,
		     "line 2", "unclosed tag");
}

static void
test_bad_delimiter_change_fails_naming_its_line(void **state)
{
	expect_error("x\n{{=<% =}}", NULL, NULL, -EINVAL, "line 2",
		     "set-delimiter");
	expect_error("{{= a b c =}}", NULL, NULL, -EINVAL, "line 1",
		     "set-delimiter");
	expect_error("\n\n{{==}}", NULL, NULL, -EINVAL, "line 3",
		     "set-delimiter");
	expect_error("{{=a= b=}}", NULL, NULL, -EINVAL, "line 1",
		     "set-delimiter");
	expect_error("{{=<% %>}}", NULL, NULL, -EINVAL, "line 1",
		     "unclosed tag");
	/* delimiters over 16 bytes would make the tag search slow */
	expect_error("{{=<<<<<<<<<<<<<<<<< >=}}", NULL, NULL, -EINVAL,
		     "line 1", "set-delimiter");
	expect_output("{{=<<<<<<<<<<<<<<<< >=}}<<<<<<<<<<<<<<<<x>", "{\"x\":1}",
		      NULL, "1");
}

static void
test_invalid_tag_names_fail(void **state)
{
	expect_error("{{}}", NULL, NULL, -EINVAL, "line 1", "empty tag name");
	expect_error("\n{{first name}}", NULL, NULL, -EINVAL, "line 2",
		     "invalid tag name");
	expect_error("{{a..b}}", NULL, NULL, -EINVAL, "line 1",
		     "invalid dotted name");
	expect_error("{{#.a}}{{/.a}}", NULL, NULL, -EINVAL, "line 1",
		     "invalid dotted name");
	expect_error("{{> }}", NULL, NULL, -EINVAL, "line 1",
		     "empty tag name");
}

static char *
nested_sections(unsigned depth)
{
	struct buf b = BUF_INIT;

	for (unsigned i = 0; i < depth; i++)
		assert_int_equal(buf_puts(&b, "{{#s}}\n"), 0);
	assert_int_equal(buf_puts(&b, "{{v}}"), 0);
	for (unsigned i = 0; i < depth; i++)
		assert_int_equal(buf_puts(&b, "{{/s}}"), 0);
	return buf_steal(&b, NULL);
}

static void
test_section_nesting_over_limit_fails(void **state)
{
	char *ok = nested_sections(TMPL_MAX_DEPTH);
	char *deep = nested_sections(TMPL_MAX_DEPTH + 1);

	expect_output(ok, "{\"s\":true,\"v\":\"deep\"}", NULL, "deep");
	expect_error(deep, NULL, NULL, -ELOOP, "line 65",
		     "nested deeper than 64");
	free(ok);
	free(deep);
}

static int
self_partial(void *userdata, const char *name, char **src, size_t *len)
{
	*src = strdup(userdata);
	if (*src == NULL)
		return -ENOMEM;
	*len = strlen(*src);
	return 0;
}

static void
test_partial_recursion_over_depth_limit_fails(void **state)
{
	struct tmpl_options opts = {
		.partial = self_partial,
		.partial_userdata = (void *)"x\n  {{>me}}",
	};

	expect_error("{{>me}}", NULL, &opts, -ELOOP, "line 2",
		     "partials nested deeper than 16");
	expect_error("{{>me}}", NULL, &opts, -ELOOP, "partial 'me'", NULL);
}

static void
test_partial_recursion_within_limit_renders(void **state)
{
	/*
	 * Data-driven recursion: the top-level call plus fifteen nested
	 * ones is sixteen partial levels, allowed; one more is not.
	 */
	struct tmpl_options opts = {
		.partial = self_partial,
		.partial_userdata = (void *)"{{#n}}<{{>me}}>{{/n}}",
	};
	struct buf ctx = BUF_INIT, want = BUF_INIT;

	for (int i = 0; i < 15; i++)
		assert_int_equal(buf_puts(&ctx, "{\"n\":"), 0);
	assert_int_equal(buf_puts(&ctx, "{\"n\":false}"), 0);
	for (int i = 0; i < 15; i++)
		assert_int_equal(buf_puts(&ctx, "}"), 0);
	for (int i = 0; i < 15; i++)
		assert_int_equal(buf_puts(&want, "<"), 0);
	for (int i = 0; i < 15; i++)
		assert_int_equal(buf_puts(&want, ">"), 0);
	expect_output("{{>me}}", ctx.data, &opts, want.data);
	buf_free(&ctx);

	for (int i = 0; i < 16; i++)
		assert_int_equal(buf_puts(&ctx, "{\"n\":"), 0);
	assert_int_equal(buf_puts(&ctx, "{\"n\":false}"), 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(buf_puts(&ctx, "}"), 0);
	expect_error("{{>me}}", ctx.data, &opts, -ELOOP, "partial 'me'",
		     "line 1: partials nested deeper than 16");
	buf_free(&ctx);
	buf_free(&want);
}

static void
test_output_over_max_output_fails_and_keeps_buffer(void **state)
{
	struct tmpl_options opts = { .max_output = 100 };
	struct buf out = BUF_INIT;
	struct cp_error err;
	json_t *ctx = load_json("{\"v\":\"SECRET-VALUE-0123456789\"}");
	const char *tpl = "a\n{{#l}}{{v}}{{/l}}";
	char big[1024];
	int r;

	/* a list of 10 values of 26 bytes: over 100 */
	json_t *list = json_array();
	for (int i = 0; i < 10; i++)
		json_array_append_new(list, json_object());
	json_object_set_new(ctx, "l", list);

	assert_int_equal(buf_puts(&out, "prefix"), 0);
	r = tmpl_render_string(tpl, strlen(tpl), ctx, &opts, &out, &err);
	assert_int_equal(r, -EFBIG);
	assert_non_null(strstr(err.text, "line 2"));
	assert_non_null(strstr(err.text, "output larger than 100 bytes"));
	assert_null(strstr(err.text, "SECRET"));
	assert_int_equal(out.len, 6);
	assert_string_equal(out.data, "prefix");

	/* exactly at the limit is fine */
	memset(big, 'x', 100);
	big[100] = '\0';
	buf_reset(&out);
	r = tmpl_render_string(big, 100, NULL, &opts, &out, &err);
	assert_int_equal(r, 0);
	assert_int_equal(out.len, 100);
	r = tmpl_render_string(big, 100, NULL, &opts, &out, &err);
	assert_int_equal(r, 0);	/* the limit counts this render only */
	assert_int_equal(out.len, 200);
	buf_free(&out);
	json_decref(ctx);
}

static void
test_template_over_max_source_fails(void **state)
{
	size_t n = TMPL_MAX_SOURCE + 1;
	char *src = malloc(n);
	struct tmpl *t = NULL;
	struct cp_error err;

	assert_non_null(src);
	memset(src, 'a', n);
	assert_int_equal(tmpl_parse(src, n, &t, &err), -EFBIG);
	assert_null(t);
	assert_non_null(strstr(err.text, "line 1"));
	assert_non_null(strstr(err.text, "larger than 262144"));
	assert_int_equal(tmpl_parse(src, n - 1, &t, &err), 0);
	assert_non_null(t);
	tmpl_free(t);
	free(src);
}

static void
test_work_limit_stops_runaway_loops(void **state)
{
	/* 10^12 empty iterations: must stop early, not hang. */
	expect_error("{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}"
		     "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}"
		     "{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}"
		     "{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}",
		     "{\"l\":[1,2,3,4,5,6,7,8,9,10]}", NULL, -E2BIG,
		     "line 1", "work limit");
}

static void
test_error_texts_hold_no_template_or_value_text(void **state)
{
	struct cp_error err;
	struct buf out = BUF_INIT;
	int r;

	r = render("Dear Jane Roe, your results {{#lab}} are ready", NULL,
		   NULL, &out, &err);
	assert_int_equal(r, -EINVAL);
	assert_null(strstr(err.text, "Jane"));
	assert_null(strstr(err.text, "results"));
	r = render("Dear Jane Roe {{=<% Roe Doe=}}", NULL, NULL, &out, &err);
	assert_int_equal(r, -EINVAL);
	assert_null(strstr(err.text, "Roe"));
	buf_free(&out);
}

/* --------------------------------------------------------- behaviour */

static void
test_escape_none_leaves_html_specials_intact(void **state)
{
	struct tmpl_options none = { .escape = TMPL_ESCAPE_NONE };
	struct tmpl_options html = { .escape = TMPL_ESCAPE_HTML };
	const char *ctx = "{\"x\":\"a & b < c > d \\\" e ' f\"}";

	expect_output("{{x}}|{{{x}}}|{{&x}}", ctx, &none,
		      "a & b < c > d \" e ' f|a & b < c > d \" e ' f|"
		      "a & b < c > d \" e ' f");
	expect_output("{{x}}|{{{x}}}", ctx, &html,
		      "a &amp; b &lt; c &gt; d &quot; e ' f|"
		      "a & b < c > d \" e ' f");
	expect_output("{{x}}", ctx, NULL,
		      "a &amp; b &lt; c &gt; d &quot; e ' f");
}

static void
test_numbers_and_scalars_print_like_json(void **state)
{
	expect_output("{{a}} {{b}} {{c}} {{d}} {{e}} {{f}} {{g}} {{h}}",
		      "{\"a\":42,\"b\":-7,\"c\":9007199254740993,"
		      "\"d\":1.21,\"e\":0.1,\"f\":1e20,\"g\":-2.5,\"h\":3.0}",
		      NULL, "42 -7 9007199254740993 1.21 0.1 1e+20 -2.5 3");
	expect_output("[{{t}}][{{f}}][{{n}}][{{o}}][{{l}}][{{missing}}]",
		      "{\"t\":true,\"f\":false,\"n\":null,\"o\":{\"k\":1},"
		      "\"l\":[1]}", NULL, "[true][false][][][][]");
	expect_output("{{.}}", "0.30000000000000004", NULL,
		      "0.30000000000000004");
}

static void
test_falsey_values_skip_sections(void **state)
{
	const char *tpl = "{{#v}}T{{/v}}{{^v}}F{{/v}}";
	static const char *const falsey[] = {
		"{\"v\":\"\"}", "{\"v\":0}", "{\"v\":0.0}", "{\"v\":null}",
		"{\"v\":false}", "{\"v\":[]}", "{}",
	};
	static const char *const truthy[] = {
		"{\"v\":\"x\"}", "{\"v\":1}", "{\"v\":0.5}", "{\"v\":true}",
		"{\"v\":{}}", "{\"v\":[0]}",
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(falsey); i++)
		expect_output(tpl, falsey[i], NULL, "F");
	for (size_t i = 0; i < CP_ARRAY_SIZE(truthy); i++)
		expect_output(tpl, truthy[i], NULL, "T");
}

static void
test_context_stack_lookup_and_null_context(void **state)
{
	expect_output("{{#a}}{{x}}{{b.x}}{{/a}}{{a.b.x}}",
		      "{\"x\":1,\"a\":{\"b\":{\"x\":2}}}", NULL, "122");
	/* a key with a null value stops the walk up the stack */
	expect_output("{{#a}}[{{x}}]{{/a}}", "{\"x\":1,\"a\":{\"x\":null}}",
		      NULL, "[]");
	expect_output("hello {{x}}{{#y}}no{{/y}}{{.}}", NULL, NULL, "hello ");
}

struct counting_loader {
	json_t *partials;
	int calls;
};

static int
counting_partial(void *userdata, const char *name, char **src, size_t *len)
{
	struct counting_loader *c = userdata;

	c->calls++;
	return json_partial(c->partials, name, src, len);
}

static void
test_partial_is_loaded_once_per_render(void **state)
{
	struct counting_loader c = {
		.partials = load_json("{\"item\":\"<{{.}}>\"}"),
	};
	struct tmpl_options opts = {
		.partial = counting_partial,
		.partial_userdata = &c,
	};

	expect_output("{{#l}}{{>item}}{{>none}}{{/l}}", "{\"l\":[1,2,3,4]}",
		      &opts, "<1><2><3><4>");
	assert_int_equal(c.calls, 2);	/* "item" once, "none" once */
	json_decref(c.partials);
}

static int
failing_partial(void *userdata, const char *name, char **src, size_t *len)
{
	return -EIO;
}

static void
test_partial_errors_propagate_with_line(void **state)
{
	struct tmpl_options io = { .partial = failing_partial };
	json_t *p = load_json("{\"bad\":\"ok\\n{{#x}}\"}");
	struct tmpl_options bad = {
		.partial = json_partial,
		.partial_userdata = p,
	};

	expect_error("a\n\nb {{>p}}", NULL, &io, -EIO, "line 3",
		     "could not be loaded");
	expect_error("{{>bad}}", NULL, &bad, -EINVAL, "partial 'bad'",
		     "line 2: unclosed section 'x'");
	json_decref(p);
}

static void
test_standalone_partial_indents_every_line(void **state)
{
	json_t *p = load_json("{\"p\":\"a\\n{{#l}}\\n- {{.}}\\n{{/l}}\\n\"}");
	struct tmpl_options opts = {
		.partial = json_partial,
		.partial_userdata = p,
	};

	expect_output("<ul>\n\t  {{>p}}\n</ul>\n", "{\"l\":[1,2]}", &opts,
		      "<ul>\n\t  a\n\t  - 1\n\t  - 2\n</ul>\n");
	json_decref(p);
}

static void
test_dir_partial_refuses_paths(void **state)
{
	char dir[] = "/tmp/test_template.XXXXXX", path[256];
	char *src = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(tmpl_dir_partial((void *)"/tmp", "../x", &src, &len),
			 -EINVAL);
	assert_int_equal(tmpl_dir_partial((void *)"/tmp", "a/b", &src, &len),
			 -EINVAL);
	assert_int_equal(tmpl_dir_partial((void *)"/tmp", ".hidden", &src,
					  &len), -EINVAL);
	assert_int_equal(tmpl_dir_partial((void *)"/tmp", "", &src, &len),
			 -EINVAL);
	assert_null(src);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/footer.mustache", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("-- {{org}}", f);
	fclose(f);
	assert_int_equal(tmpl_dir_partial(dir, "missing", &src, &len),
			 -ENOENT);
	assert_int_equal(tmpl_dir_partial(dir, "footer", &src, &len), 0);
	assert_int_equal(len, 10);
	assert_string_equal(src, "-- {{org}}");
	free(src);
	{
		struct tmpl_options opts = {
			.partial = tmpl_dir_partial,
			.partial_userdata = dir,
		};

		expect_output("Hi\n{{>footer}}{{>missing}}",
			      "{\"org\":\"Clinic\"}", &opts, "Hi\n-- Clinic");
		expect_error("{{>../footer}}", NULL, &opts, -EINVAL,
			     "line 1", "could not be loaded");
	}
	unlink(path);
	rmdir(dir);
}

struct thread_job {
	const struct tmpl *t;
	json_t *ctx;
	const struct tmpl_options *opts;
	const char *expected;
	size_t expected_len;
	int mismatches;
};

static void *
render_thread(void *arg)
{
	struct thread_job *job = arg;

	for (int i = 0; i < 200; i++) {
		struct buf out = BUF_INIT;
		struct cp_error err;

		if (tmpl_render(job->t, job->ctx, job->opts, &out, &err) < 0 ||
		    out.len != job->expected_len ||
		    (out.len > 0 &&
		     memcmp(out.data, job->expected, out.len) != 0))
			job->mismatches++;
		buf_free(&out);
	}
	return NULL;
}

static void
test_concurrent_renders_of_one_template_are_identical(void **state)
{
	const char *src =
		"Dear {{name}},\n"
		"{{#items}}\n"
		"  {{>row}}\n"
		"{{/items}}\n"
		"{{^items}}none{{/items}}\n"
		"{{=<% %>=}}<%& footer %>\n";
	json_t *partials = load_json("{\"row\":\"{{n}}: {{v}} &\\n\"}");
	struct tmpl_options opts = {
		.partial = json_partial,
		.partial_userdata = partials,
	};
	json_t *ctx = load_json("{\"name\":\"<P>\",\"footer\":\"<b>\"}");
	json_t *items = json_array();
	struct thread_job jobs[4];
	pthread_t th[4];
	struct buf ref = BUF_INIT;
	struct cp_error err;
	struct tmpl *t;

	for (int i = 0; i < 300; i++)
		json_array_append_new(items, json_pack("{s:i,s:f}", "n", i,
						       "v", i / 4.0));
	json_object_set_new(ctx, "items", items);
	assert_int_equal(tmpl_parse(src, strlen(src), &t, &err), 0);
	assert_int_equal(tmpl_render(t, ctx, &opts, &ref, &err), 0);
	assert_non_null(strstr(ref.data, "Dear &lt;P&gt;,\n  0: 0 &\n"
				"  1: 0.25 &\n"));
	assert_non_null(strstr(ref.data, "  299: 74.75 &\n\n<b>\n"));
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct thread_job){ t, ctx, &opts, ref.data,
					       ref.len, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, render_thread,
						&jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(jobs[i].mismatches, 0);
	}
	tmpl_free(t);
	buf_free(&ref);
	json_decref(ctx);
	json_decref(partials);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_interpolation_passes_every_case),
		cmocka_unit_test(test_spec_sections_passes_every_case),
		cmocka_unit_test(test_spec_inverted_passes_every_case),
		cmocka_unit_test(test_spec_comments_passes_every_case),
		cmocka_unit_test(test_spec_delimiters_passes_every_case),
		cmocka_unit_test(test_spec_partials_passes_every_case),
		cmocka_unit_test(test_unclosed_section_fails_naming_its_line),
		cmocka_unit_test(test_mismatched_close_fails_naming_both_lines),
		cmocka_unit_test(test_unclosed_tag_fails_naming_its_line),
		cmocka_unit_test(test_bad_delimiter_change_fails_naming_its_line),
		cmocka_unit_test(test_invalid_tag_names_fail),
		cmocka_unit_test(test_section_nesting_over_limit_fails),
		cmocka_unit_test(test_partial_recursion_over_depth_limit_fails),
		cmocka_unit_test(test_partial_recursion_within_limit_renders),
		cmocka_unit_test(test_output_over_max_output_fails_and_keeps_buffer),
		cmocka_unit_test(test_template_over_max_source_fails),
		cmocka_unit_test(test_work_limit_stops_runaway_loops),
		cmocka_unit_test(test_error_texts_hold_no_template_or_value_text),
		cmocka_unit_test(test_escape_none_leaves_html_specials_intact),
		cmocka_unit_test(test_numbers_and_scalars_print_like_json),
		cmocka_unit_test(test_falsey_values_skip_sections),
		cmocka_unit_test(test_context_stack_lookup_and_null_context),
		cmocka_unit_test(test_partial_is_loaded_once_per_render),
		cmocka_unit_test(test_partial_errors_propagate_with_line),
		cmocka_unit_test(test_standalone_partial_indents_every_line),
		cmocka_unit_test(test_dir_partial_refuses_paths),
		cmocka_unit_test(test_concurrent_renders_of_one_template_are_identical),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
