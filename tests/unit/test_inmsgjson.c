/*
 * NAME
 *	test_inmsgjson - unit tests for lib/inmsgjson.c
 * DESCRIPTION
 *	The dry-run summary: class, facts and attachments, never the token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "inmsg.h"
#include "msgfix.h"
#include "util.h"

static void
json_summary_has_class_and_attachments_but_no_token(void **state)
{
	struct inmsg *m = tu_parse_str(
		"From: P <p@patient.example>\r\nTo: reply+secrettok@reply.clinic.example\r\n"
		"Message-ID: <m1@patient.example>\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"
		"--X\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
		"--X\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--X--\r\n");
	json_t *j = NULL, *atts;
	char *s;

	assert_int_equal(inmsg_to_json(m, &tu_addrs, &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "class")), "reply");
	assert_string_equal(json_string_value(json_object_get(j, "message_id")), "m1@patient.example");
	assert_string_equal(json_string_value(json_object_get(j, "from")), "p@patient.example");
	assert_true(json_is_true(json_object_get(j, "token_present")));
	assert_int_equal(json_integer_value(json_object_get(j, "part_count")), 3);
	atts = json_object_get(j, "attachments");
	assert_int_equal(json_array_size(atts), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(atts, 0), "filename")), "a.pdf");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(atts, 0), "size")), 4);
	s = json_dumps(j, JSON_COMPACT);
	assert_null(strstr(s, "secrettok"));
	free(s);
	json_decref(j);
	inmsg_free(m);
}

static void
json_summary_of_nothing_is_einval_and_of_a_bounce_has_its_dsn(void **state)
{
	struct inmsg *m = tu_parse_str(
		"From: MAILER-DAEMON@relay.example\r\nTo: bounce+e1@bounce.clinic.example\r\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
		"--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
		"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
		"Reporting-MTA: dns; relay.example\r\n\r\n"
		"Final-Recipient: rfc822; <P@Patient.Example>\r\nAction: failed\r\n"
		"Status: 5.1.1\r\n\r\n--B--\r\n");
	json_t *j = NULL, *dsn, *r0;

	assert_int_equal(inmsg_to_json(NULL, &tu_addrs, &j), -EINVAL);
	assert_null(j);
	assert_int_equal(inmsg_to_json(m, NULL, &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "class")), "dsn");
	json_decref(j);
	assert_int_equal(inmsg_to_json(m, &tu_addrs, &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "verp")), "e1");
	dsn = json_object_get(j, "dsn");
	assert_true(json_is_true(json_object_get(dsn, "present")));
	assert_int_equal(json_array_size(json_object_get(dsn, "recipients")), 1);
	r0 = json_array_get(json_object_get(dsn, "recipients"), 0);
	assert_string_equal(json_string_value(json_object_get(r0, "final_recipient")),
			    "p@patient.example");
	assert_string_equal(json_string_value(json_object_get(r0, "status")), "5.1.1");
	assert_true(json_is_null(json_object_get(r0, "diagnostic_code")));
	json_decref(j);
	inmsg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_summary_has_class_and_attachments_but_no_token),
		cmocka_unit_test(json_summary_of_nothing_is_einval_and_of_a_bounce_has_its_dsn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
