/*
 * NAME
 *	test_form - unit tests for form reply parsing
 * DESCRIPTION
 *	Field matching (case, separators, '_' and spaces), first answer
 *	wins, missing required fields, spec validation, limits, hostile text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "form.h"

static json_t *
spec(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);

	if (j == NULL)
		fail_msg("bad test spec: %s", je.text);
	return j;
}

static const char *
val(json_t *values, const char *k)
{
	return json_string_value(json_object_get(values, k));
}

static void
fields_are_read_case_insensitively_with_colon_or_equals(void **state)
{
	json_t *sp = spec("[{\"name\":\"Date of birth\",\"required\":true},"
			  "{\"name\":\"insurance_id\",\"required\":true},"
			  "{\"name\":\"Allergies\"},{\"name\":\"Pharmacy\"}]");
	static const char text[] =
		"Hello, here are my answers.\n"
		"  DATE OF BIRTH :   1980-02-03  \n"
		"Insurance ID = ACME-1234\r\n"
		"allergies: penicillin: severe\n"
		"Allergies: second answer ignored\n"
		"Unknown field: whatever\n"
		"Pharmacy:\n"
		"Thanks\n";
	json_t *values = NULL, *missing = NULL;
	struct cp_error err;

	assert_int_equal(form_parse(text, sizeof(text) - 1, sp, &values, &missing, &err), 0);
	assert_int_equal(json_object_size(values), 3);
	assert_string_equal(val(values, "Date of birth"), "1980-02-03");
	assert_string_equal(val(values, "insurance_id"), "ACME-1234");
	/* the first ':' separates; the rest belongs to the value */
	assert_string_equal(val(values, "Allergies"), "penicillin: severe");
	assert_null(json_object_get(values, "Pharmacy"));	/* empty = no answer */
	assert_null(json_object_get(values, "Unknown field"));
	assert_int_equal(json_array_size(missing), 0);
	json_decref(values);
	json_decref(missing);
	json_decref(sp);
}

static void
missing_required_fields_are_listed_in_spec_order(void **state)
{
	json_t *sp = spec("[{\"name\":\"B\",\"required\":true},{\"name\":\"A\",\"required\":true},"
			  "{\"name\":\"C\",\"required\":false},{\"name\":\"D\",\"required\":true}]");
	static const char text[] = "A: yes\nB:\nB =   \n";
	json_t *values = NULL, *missing = NULL;
	struct cp_error err;

	assert_int_equal(form_parse(text, sizeof(text) - 1, sp, &values, &missing, &err), 0);
	assert_string_equal(val(values, "A"), "yes");
	assert_int_equal(json_array_size(missing), 2);
	assert_string_equal(json_string_value(json_array_get(missing, 0)), "B");
	assert_string_equal(json_string_value(json_array_get(missing, 1)), "D");
	json_decref(values);
	json_decref(missing);
	/* empty text: every required field is missing */
	assert_int_equal(form_parse(NULL, 0, sp, &values, &missing, &err), 0);
	assert_int_equal(json_object_size(values), 0);
	assert_int_equal(json_array_size(missing), 3);
	json_decref(values);
	json_decref(missing);
	json_decref(sp);
}

static void
bad_specs_are_refused_with_einval(void **state)
{
	static const char *const bad[] = {
		"{}", "[1]", "[{\"required\":true}]", "[{\"name\":\"\"}]",
		"[{\"name\":\"x\",\"required\":\"yes\"}]", "[{\"name\":\"   \"}]",
		"[{\"name\":\"a\\u0000b\"}]",
	};
	json_t *values = (json_t *)1, *missing = (json_t *)1;
	struct cp_error err;
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *sp = json_loads(bad[i], JSON_ALLOW_NUL, NULL);

		assert_non_null(sp);
		assert_int_equal(form_parse("a: b", 4, sp, &values, &missing, &err), -EINVAL);
		assert_null(values);
		assert_null(missing);
		assert_true(err.text[0] != '\0');
		json_decref(sp);
	}
	assert_int_equal(form_parse("a: b", 4, NULL, &values, &missing, &err), -EINVAL);
	assert_string_equal(err.text, "form spec is not an array");
	/* too many fields */
	buf_puts(&b, "[");
	for (int i = 0; i <= FORM_MAX_FIELDS; i++)
		buf_printf(&b, "%s{\"name\":\"f%d\"}", i ? "," : "", i);
	buf_puts(&b, "]");
	{
		json_t *sp = spec(b.data);

		assert_int_equal(form_parse("a: b", 4, sp, &values, &missing, &err), -EINVAL);
		json_decref(sp);
	}
	buf_free(&b);
}

static void
limits_and_hostile_text(void **state)
{
	json_t *sp = spec("[{\"name\":\"Name\",\"required\":true},{\"name\":\"Late\"}]");
	json_t *values = NULL, *missing = NULL;
	struct cp_error err;
	struct buf b = BUF_INIT;

	/* an over-long line is not a field */
	buf_puts(&b, "Name: ");
	for (int i = 0; i < FORM_MAX_LINE; i++)
		buf_putc(&b, 'x');
	buf_puts(&b, "\nName: short\n");
	assert_int_equal(form_parse(b.data, b.len, sp, &values, &missing, &err), 0);
	assert_string_equal(val(values, "Name"), "short");
	json_decref(values);
	json_decref(missing);
	/* lines past the line limit are not read */
	buf_reset(&b);
	buf_puts(&b, "Name: n\n");
	for (int i = 0; i < FORM_MAX_LINES; i++)
		buf_puts(&b, "filler\n");
	buf_puts(&b, "Late: too late\n");
	assert_int_equal(form_parse(b.data, b.len, sp, &values, &missing, &err), 0);
	assert_string_equal(val(values, "Name"), "n");
	assert_null(json_object_get(values, "Late"));
	json_decref(values);
	json_decref(missing);
	/* invalid UTF-8 and NUL are refused */
	assert_int_equal(form_parse("Name: \xff\n", 8, sp, &values, &missing, &err), -EILSEQ);
	assert_null(values);
	assert_int_equal(form_parse("Name: a\0b", 9, sp, &values, &missing, &err), -EILSEQ);
	/* separators only, no name, no value */
	assert_int_equal(form_parse(":\n=\n: x\nName\n==\n", 16, sp, &values, &missing, &err), 0);
	assert_int_equal(json_object_size(values), 0);
	assert_int_equal(json_array_size(missing), 1);
	json_decref(values);
	json_decref(missing);
	/* UTF-8 values pass through */
	assert_int_equal(form_parse("name: Jos\xc3\xa9", 11, sp, &values, &missing, &err), 0);
	assert_string_equal(val(values, "Name"), "Jos\xc3\xa9");
	json_decref(values);
	json_decref(missing);
	buf_free(&b);
	json_decref(sp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fields_are_read_case_insensitively_with_colon_or_equals),
		cmocka_unit_test(missing_required_fields_are_listed_in_spec_order),
		cmocka_unit_test(bad_specs_are_refused_with_einval),
		cmocka_unit_test(limits_and_hostile_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
