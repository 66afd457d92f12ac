/*
 * NAME
 *	test_runtime - unit tests for what both programs open first
 *	(lib/runtime.c)
 * DESCRIPTION
 *	Each test writes a config, a token key file and (when it asks for
 *	them) the shipped templates' path into a directory of its own, and
 *	opens it with runtime_open: the flags choose what is opened, the key
 *	is the file's first 64 bytes and keys the log's patient references,
 *	the store is usable, the templates are loaded; every error names the
 *	file or key at fault and runtime_close after a failure releases what
 *	was opened (valgrind checks that nothing leaks). runtime_config_path
 *	takes -c, then $CAREPOST_CONFIG, then the default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "fsfix.h"
#include "log.h"
#include "runtime.h"

static char dir[64];
static char conf[128];
static char keyfile[128];
static struct runtime rt;

static void
write_config(const char *security, const char *templates)
{
	tu_write_file(conf,
		      "[store]\npath = store\nmap_size = 16M\n"
		      "[templates]\ndir = %s\ndefault_locale = en\n"
		      "[security]\n%s",
		      templates, security);
}

static void
write_key(size_t len)
{
	FILE *f = fopen(keyfile, "w");
	size_t i;

	assert_non_null(f);
	for (i = 0; i < len; i++)
		fputc('A' + (int)(i % 26), f);
	fputc('\n', f);		/* trailing newlines are not key bytes */
	assert_int_equal(fclose(f), 0);
}

static void
shipped_templates(char *out, size_t len)
{
	if (tu_top()[0] == '/')
		snprintf(out, len, "%s/templates", tu_top());
	else if (getcwd(out, len) != NULL)
		strncat(out, "/templates", len - strlen(out) - 1);
}

static int
setup(void **state)
{
	char templates[512];

	if (tu_tmpdir("test_runtime", dir, sizeof(dir)) < 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/carepost.conf", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/token.key", dir);
	shipped_templates(templates, sizeof(templates));
	write_config("token_key_file = token.key\n", templates);
	write_key(100);
	memset(&rt, 0, sizeof(rt));
	return 0;
}

static int
teardown(void **state)
{
	runtime_close(&rt);
	tu_rm_rf(dir);
	return 0;
}

/* open_fails - runtime_open fails with code, naming what; closed after. */
static void
open_fails(int flags, int code, const char *what)
{
	struct cp_error err;
	int r;

	cp_error_clear(&err);
	r = runtime_open(&rt, conf, flags, &err);
	if (r != code)
		fail_msg("runtime_open returned %d (want %d): %s", r, code, err.text);
	if (strstr(err.text, what) == NULL)
		fail_msg("error \"%s\" does not name \"%s\"", err.text, what);
	runtime_close(&rt);
	assert_null(rt.cfg);
	assert_null(rt.store);
	assert_null(rt.templates);
}

/* --- tests ----------------------------------------------------------- */

static void
all_opens_config_key_store_and_templates(void **state)
{
	struct cp_error err;
	char path[256];
	struct stat st;
	json_t *v = NULL;
	size_t i;

	cp_error_clear(&err);
	if (runtime_open(&rt, conf, RUNTIME_ALL, &err) < 0)
		fail_msg("runtime_open: %s", err.text);
	assert_non_null(rt.cfg);
	assert_string_equal(rt.cfg->default_locale, "en");
	/* The key: the file's first 64 bytes. */
	assert_int_equal(rt.keylen, 64);
	for (i = 0; i < rt.keylen; i++)
		assert_int_equal(rt.key[i], 'A' + (int)(i % 26));
	/* The store, at the path relative to the config's directory. */
	assert_non_null(rt.store);
	snprintf(path, sizeof(path), "%s/store/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	v = json_pack("{s:s}", "id", "p1");
	assert_int_equal(store_put_json(rt.store, DB_PATIENTS, "p1", v, &err), 0);
	json_decref(v);
	v = NULL;
	assert_int_equal(store_get_json(rt.store, DB_PATIENTS, "p1", &v, &err), 0);
	assert_string_equal(json_string_value(json_object_get(v, "id")), "p1");
	json_decref(v);
	/* The templates: both shipped locales. */
	assert_non_null(rt.templates);
	assert_int_equal(tmplset_locales(rt.templates), 2);
}

static void
key_keys_the_logs_patient_references(void **state)
{
	struct cp_error err;
	char before[13], after[13], again[13];

	log_set_ref_key("x", 1);
	log_patient_ref("p-1001", before);
	cp_error_clear(&err);
	assert_int_equal(runtime_open(&rt, conf, RUNTIME_KEY, &err), 0);
	log_patient_ref("p-1001", after);
	assert_string_not_equal(before, after);
	/* It is the token key's: the same as setting it by hand. */
	log_set_ref_key(rt.key, rt.keylen);
	log_patient_ref("p-1001", again);
	assert_string_equal(after, again);
}

static void
short_key_file_is_kept_whole(void **state)
{
	struct cp_error err;
	size_t i;

	write_key(20);
	cp_error_clear(&err);
	assert_int_equal(runtime_open(&rt, conf, RUNTIME_KEY, &err), 0);
	assert_int_equal(rt.keylen, 20);
	for (i = 0; i < 20; i++)
		assert_int_equal(rt.key[i], 'A' + (int)i);
	assert_int_equal(rt.key[20], 0);
}

static void
flags_open_only_what_they_ask_for(void **state)
{
	struct cp_error err;
	char path[256];
	struct stat st;

	/* No key file, no templates: neither is read without its flag. */
	unlink(keyfile);
	write_config("token_key_file = token.key\n", "/nonexistent/templates");
	cp_error_clear(&err);
	assert_int_equal(runtime_open(&rt, conf, 0, &err), 0);
	assert_non_null(rt.cfg);
	assert_null(rt.store);
	assert_null(rt.templates);
	assert_int_equal(rt.keylen, 0);
	snprintf(path, sizeof(path), "%s/store", dir);
	assert_int_equal(stat(path, &st), -1);
	runtime_close(&rt);

	assert_int_equal(runtime_open(&rt, conf, RUNTIME_STORE, &err), 0);
	assert_non_null(rt.store);
	assert_null(rt.templates);
	assert_int_equal(rt.keylen, 0);
}

static void
close_wipes_the_key_and_forgets_everything(void **state)
{
	struct cp_error err;
	static const unsigned char zero[64];

	cp_error_clear(&err);
	assert_int_equal(runtime_open(&rt, conf, RUNTIME_ALL, &err), 0);
	runtime_close(&rt);
	assert_null(rt.cfg);
	assert_null(rt.store);
	assert_null(rt.templates);
	assert_int_equal(rt.keylen, 0);
	assert_memory_equal(rt.key, zero, sizeof(zero));
	/* Closing twice is harmless (the teardown closes again). */
	runtime_close(&rt);
}

static void
missing_config_fails_naming_it(void **state)
{
	unlink(conf);
	open_fails(RUNTIME_ALL, -ENOENT, "carepost.conf");
}

static void
bad_config_fails_naming_file_and_line(void **state)
{
	tu_write_file(conf, "[store]\npath = store\nno_such_key = 1\n");
	open_fails(RUNTIME_ALL, -EINVAL, "carepost.conf:3");
}

static void
key_not_set_fails_naming_the_key(void **state)
{
	write_config("", "templates");
	open_fails(RUNTIME_KEY, -EINVAL, "token_key_file: not set");
}

static void
key_under_16_bytes_fails(void **state)
{
	write_key(15);
	open_fails(RUNTIME_ALL, -EINVAL, "at least 16 bytes");
	/* 16 is enough. */
	write_key(16);
	open_fails(RUNTIME_KEY, 0, "");
}

static void
unreadable_key_file_fails_naming_it(void **state)
{
	unlink(keyfile);
	open_fails(RUNTIME_ALL, -ENOENT, "token.key");
}

static void
missing_templates_fail_naming_the_directory(void **state)
{
	write_config("token_key_file = token.key\n", "/nonexistent/templates");
	open_fails(RUNTIME_ALL, -ENOENT, "/nonexistent/templates");
}

static void
store_that_cannot_be_opened_fails_naming_it(void **state)
{
	char path[256];

	/* A file where the store's directory should be. */
	snprintf(path, sizeof(path), "%s/store", dir);
	tu_write_file(path, "not a directory\n");
	open_fails(RUNTIME_STORE, -ENOTDIR, "store");
}

static void
config_path_is_argument_then_environment_then_default(void **state)
{
	unsetenv("CAREPOST_CONFIG");
	assert_string_equal(runtime_config_path(NULL), RUNTIME_DEFAULT_CONFIG);
	assert_string_equal(runtime_config_path("/etc/other.conf"), "/etc/other.conf");
	setenv("CAREPOST_CONFIG", "/srv/env.conf", 1);
	assert_string_equal(runtime_config_path(NULL), "/srv/env.conf");
	assert_string_equal(runtime_config_path("/etc/other.conf"), "/etc/other.conf");
	setenv("CAREPOST_CONFIG", "", 1);
	assert_string_equal(runtime_config_path(NULL), RUNTIME_DEFAULT_CONFIG);
	unsetenv("CAREPOST_CONFIG");
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(all_opens_config_key_store_and_templates),
		T(key_keys_the_logs_patient_references),
		T(short_key_file_is_kept_whole),
		T(flags_open_only_what_they_ask_for),
		T(close_wipes_the_key_and_forgets_everything),
		T(missing_config_fails_naming_it),
		T(bad_config_fails_naming_file_and_line),
		T(key_not_set_fails_naming_the_key),
		T(key_under_16_bytes_fails),
		T(unreadable_key_file_fails_naming_it),
		T(missing_templates_fail_naming_the_directory),
		T(store_that_cannot_be_opened_fails_naming_it),
		T(config_path_is_argument_then_environment_then_default),
	};
#undef T

	log_setup("test_runtime", LOG_TARGET_STDERR, LOG_EMERG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
