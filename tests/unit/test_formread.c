/*
 * NAME
 *	test_formread - unit tests for reading a reply's "name: value" lines
 * DESCRIPTION
 *	What makes a line an answer (a separator, a name and a value, no
 *	control character), how names are normalised, what the limits cut,
 *	and malformed calls; and that form_match on what formread read is
 *	form_parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "form.h"
#include "formread.h"

static void
answers_are_lines_with_a_name_and_a_value(void **state)
{
	static const char text[] =
		"Hello, here are my answers.\n"
		"  DATE_OF--birth :   1980-02-03  \n"
		"Insurance ID = ACME-1234\r\n"
		"allergies: penicillin: severe\n"
		"Pharmacy:\n"
		": no name\n"
		"Tabbed:\ta\tb\t\n"
		"Thanks\n";
	struct formread_answers a = FORMREAD_ANSWERS_INIT;

	assert_int_equal(formread_answers(text, sizeof(text) - 1, &a), 0);
	assert_int_equal(a.n, 4);
	assert_string_equal(a.key[0], "date of birth");
	assert_string_equal(a.value[0], "1980-02-03");
	assert_string_equal(a.key[1], "insurance id");
	assert_string_equal(a.value[1], "ACME-1234");	/* the CR is trimmed */
	assert_string_equal(a.key[2], "allergies");
	assert_string_equal(a.value[2], "penicillin: severe");
	assert_string_equal(a.key[3], "tabbed");
	assert_string_equal(a.value[3], "a\tb");	/* a tab inside stays */
	formread_free(&a);
	assert_int_equal(a.n, 0);
	assert_null(a.key);
}

/* A control character inside a name or a value: no answer (it could not
 * cross the wall as a line). */
static void
control_characters_make_a_line_no_answer(void **state)
{
	static const char text[] =
		"Name: Pat\x01Smith\n"
		"Na\x1bme: Pat\n"
		"Ok: fine\x7f\n"
		"Good: yes\n";
	struct formread_answers a = FORMREAD_ANSWERS_INIT;

	assert_int_equal(formread_answers(text, sizeof(text) - 1, &a), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.key[0], "good");
	formread_free(&a);
}

static void
limits_cut_names_lines_and_line_counts(void **state)
{
	struct formread_answers a = FORMREAD_ANSWERS_INIT;
	struct buf t = BUF_INIT;
	char name[FORMREAD_MAX_NAME + 2];

	/* a name one byte over the limit, a line one byte over */
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(buf_printf(&t, "%s: x\n", name), 0);
	assert_int_equal(buf_append(&t, "v: ", 3), 0);
	for (int i = 0; i < FORMREAD_MAX_LINE - 2; i++)
		assert_int_equal(buf_append(&t, "y", 1), 0);
	assert_int_equal(buf_append(&t, "\nlast: z\n", 9), 0);
	assert_int_equal(formread_answers(t.data, t.len, &a), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.key[0], "last");
	formread_free(&a);
	/* no more lines than FORMREAD_MAX_LINES are read */
	buf_reset(&t);
	for (int i = 0; i < FORMREAD_MAX_LINES + 5; i++)
		assert_int_equal(buf_append(&t, "k: v\n", 5), 0);
	assert_int_equal(formread_answers(t.data, t.len, &a), 0);
	assert_int_equal(a.n, FORMREAD_MAX_LINES);
	formread_free(&a);
	buf_free(&t);
}

static void
malformed_calls_and_empty_text(void **state)
{
	struct formread_answers a = FORMREAD_ANSWERS_INIT;
	char key[4];

	assert_int_equal(formread_answers(NULL, 3, &a), -EINVAL);
	assert_int_equal(formread_answers("a: b", 4, NULL), -EINVAL);
	assert_int_equal(formread_answers(NULL, 0, &a), 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(formread_answers("", 0, &a), 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(formread_answers("\n\n::\n==\n", 9, &a), 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(formread_key("abcd", 4, key, sizeof(key)), -1);
	assert_int_equal(formread_key("A_b", 3, key, sizeof(key)), 0);
	assert_string_equal(key, "a b");
}

/* form_match on formread's answers is form_parse on the text. */
static void
matching_what_was_read_is_form_parse(void **state)
{
	static const char text[] = "Date of birth: 1980\nAllergies = none\n"
				   "date_of_birth: second\n";
	json_t *spec = json_loads("[{\"name\":\"Date of Birth\",\"required\":true},"
				  "{\"name\":\"Allergies\"},{\"name\":\"Pharmacy\","
				  "\"required\":true}]", 0, NULL);
	struct formread_answers a = FORMREAD_ANSWERS_INIT;
	json_t *v1, *m1, *v2, *m2;
	struct cp_error err;

	assert_non_null(spec);
	assert_int_equal(formread_answers(text, sizeof(text) - 1, &a), 0);
	assert_int_equal(form_match(&a, spec, &v1, &m1, &err), 0);
	assert_int_equal(form_parse(text, sizeof(text) - 1, spec, &v2, &m2, &err), 0);
	assert_true(json_equal(v1, v2));
	assert_true(json_equal(m1, m2));
	assert_string_equal(json_string_value(json_object_get(v1, "Date of Birth")), "1980");
	assert_int_equal(json_array_size(m1), 1);
	assert_int_equal(form_match(NULL, spec, &v1, &m1, &err) < 0, 1);
	json_decref(v1);
	json_decref(m1);
	json_decref(v2);
	json_decref(m2);
	json_decref(spec);
	formread_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(answers_are_lines_with_a_name_and_a_value),
		cmocka_unit_test(control_characters_make_a_line_no_answer),
		cmocka_unit_test(limits_cut_names_lines_and_line_counts),
		cmocka_unit_test(malformed_calls_and_empty_text),
		cmocka_unit_test(matching_what_was_read_is_form_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
