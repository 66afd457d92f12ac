/*
 * NAME
 *	test_dsn - unit tests for lib/dsn.c
 * DESCRIPTION
 *	Delivery-status fields from real bounces (corpus) and from
 *	hand-written reports, malformed ones included: no colon, no blank
 *	line, NUL and invalid UTF-8, more recipients and longer values than
 *	kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "dsn.h"
#include "inmsg.h"
#include "msgfix.h"
#include "util.h"

static void
dsn_fields_are_extracted_from_postfix_bounce(void **state)
{
	const char *dir;
	struct inmsg *m;

	NEED_CORPUS(dir);
	/* zed.eml also starts with an mbox "From " line */
	m = tu_parse_file("flanker-messages/bounce/zed.eml");
	assert_true(m->dsn.present);
	assert_int_equal(m->dsn.n_rcpts, 1);
	assert_string_equal(m->dsn.rcpts[0].action, "failed");
	assert_string_equal(m->dsn.rcpts[0].status, "5.1.1");
	assert_string_equal(m->dsn.rcpts[0].final_recipient,
		"asdfasdfasdfasdfasdfasdfewrqertrtyrthsfgdfgadfqeadvxzvz@gmail.com");
	assert_non_null(m->dsn.rcpts[0].diagnostic_code);
	assert_non_null(strstr(m->dsn.rcpts[0].diagnostic_code, "550-5.1.1"));
	assert_true(m->dsn.orig_headers_present);
	assert_string_equal(m->dsn.orig_message_id, "20090708054735.GC7578@example.com");
	assert_string_equal(m->auto_submitted, "auto-replied");
	assert_true(m->flags & INMSG_F_NULL_RETURN_PATH);
	assert_string_equal(m->return_path, "");
	assert_int_equal(m->n_attachments, 0);
	inmsg_free(m);
}

static void
dsn_multiple_recipients_and_prose_status_part(void **state)
{
	const char *dir;
	struct inmsg *m;

	NEED_CORPUS(dir);
	/* the first message/delivery-status part is prose: the second counts */
	m = tu_parse_file("mail-fixtures/multipart_report_emails/multipart_report_multiple_status.eml");
	assert_int_equal(m->dsn.n_rcpts, 1);
	assert_string_equal(m->dsn.rcpts[0].status, "5.3.0");
	assert_string_equal(m->dsn.rcpts[0].final_recipient, "u@ci.com");
	assert_string_equal(m->dsn.rcpts[0].original_recipient, "u@ci.com");
	assert_string_equal(m->dsn.reporting_mta, "schemailmta04.ci.com");
	inmsg_free(m);
}

static void
parse(struct inmsg_dsn *d, const char *s)
{
	memset(d, 0, sizeof(*d));
	assert_int_equal(dsn_parse(d, s, strlen(s)), 0);
	assert_true(d->present);
}

static void
fields_are_read_per_message_and_per_recipient(void **state)
{
	struct inmsg_dsn d;

	parse(&d, "Original-Envelope-Id: evt-42\nReporting-MTA: dns; mx.example\n\n"
		  "final-recipient: RFC822; <P@Patient.Example>\n"
		  "ACTION: Failed\nStatus: 5.1.1 (no such user)\n"
		  "Original-Recipient: rfc822;p@patient.example\n"
		  "Diagnostic-Code: smtp; 550 5.1.1\n  user unknown\n"
		  "Action: delayed\n\n"
		  "Final-Recipient: rfc822; q@patient.example\nAction: delayed\n"
		  "Status: 4.4.1\n");
	assert_string_equal(d.original_envelope_id, "evt-42");
	assert_string_equal(d.reporting_mta, "mx.example");
	assert_int_equal(d.n_rcpts, 2);
	assert_string_equal(d.rcpts[0].final_recipient, "p@patient.example");
	assert_string_equal(d.rcpts[0].action, "failed");	/* the first wins */
	assert_string_equal(d.rcpts[0].status, "5.1.1");
	assert_string_equal(d.rcpts[0].original_recipient, "p@patient.example");
	assert_string_equal(d.rcpts[0].diagnostic_code, "smtp; 550 5.1.1  user unknown");
	assert_string_equal(d.rcpts[1].status, "4.4.1");
	assert_null(d.rcpts[1].diagnostic_code);
	dsn_free(&d);
}

static void
malformed_reports_give_what_can_be_read(void **state)
{
	static const char *const junk[] = {
		"", "\n\n\n", ":", ":\n:\n\n:", "no colon at all\n\nnone here",
		"Action\nStatus\n", "  Action: failed\n", "\t\n \n\t",
		"Status:\n", "Final-Recipient:;\n", "Final-Recipient: <>\n",
		"Reporting-MTA: dns\n\nAction: x\n\n\n\n\nAction: y",
	};
	struct inmsg_dsn d;

	for (size_t i = 0; i < CP_ARRAY_SIZE(junk); i++) {
		parse(&d, junk[i]);
		for (size_t k = 0; k < d.n_rcpts; k++) {
			const struct inmsg_dsn_rcpt *rc = &d.rcpts[k];

			assert_true(rc->action || rc->status || rc->final_recipient);
		}
		dsn_free(&d);
	}
	/* a prose block is no recipient */
	parse(&d, "This is the mail system.\n\nI'm sorry: it failed.\n");
	assert_int_equal(d.n_rcpts, 0);
	dsn_free(&d);
	/* NUL and invalid UTF-8 in a value */
	memset(&d, 0, sizeof(d));
	assert_int_equal(dsn_parse(&d, "Action: fa\0il\xff\n", 15), 0);
	assert_int_equal(d.n_rcpts, 1);
	assert_true(cp_utf8_valid(d.rcpts[0].action, strlen(d.rcpts[0].action)));
	assert_non_null(strstr(d.rcpts[0].action, "\xef\xbf\xbd"));
	dsn_free(&d);
}

static void
recipients_and_values_are_bounded(void **state)
{
	struct buf b = BUF_INIT;
	struct inmsg_dsn d;

	for (unsigned i = 0; i < INMSG_MAX_DSN_RCPTS + 50; i++)
		buf_printf(&b, "\nFinal-Recipient: rfc822; r%u@x.example\nAction: failed\n", i);
	memset(&d, 0, sizeof(d));
	assert_int_equal(dsn_parse(&d, b.data, b.len), 0);
	assert_int_equal(d.n_rcpts, INMSG_MAX_DSN_RCPTS);
	dsn_free(&d);
	buf_reset(&b);
	buf_puts(&b, "Action: failed\nDiagnostic-Code: ");
	for (unsigned i = 0; i < 5000; i++)
		buf_puts(&b, "x\n ");
	memset(&d, 0, sizeof(d));
	assert_int_equal(dsn_parse(&d, b.data, b.len), 0);
	assert_int_equal(d.n_rcpts, 1);
	assert_true(strlen(d.rcpts[0].diagnostic_code) <= DSN_MAX_VALUE);
	dsn_free(&d);
	buf_free(&b);
}

static void
returned_headers_give_the_first_message_id(void **state)
{
	static const char h1[] = "From: a@b.example\r\nMessage-ID:  <m1@clinic.example> \r\n\r\n"
				 "Message-ID: <body@x>\r\n";
	static const char h2[] = "Message-ID: <m2@clinic.example>\r\n";
	static const char h3[] = "Subject: x\r\n\r\nMessage-ID: <in-body@x>\r\n";
	struct inmsg_dsn d = { 0 };

	assert_int_equal(dsn_take_returned_headers(&d, h3, sizeof(h3) - 1), 0);
	assert_true(d.orig_headers_present);
	assert_null(d.orig_message_id);
	assert_int_equal(dsn_take_returned_headers(&d, h1, sizeof(h1) - 1), 0);
	assert_string_equal(d.orig_message_id, "m1@clinic.example");
	assert_int_equal(dsn_take_returned_headers(&d, h2, sizeof(h2) - 1), 0);
	assert_string_equal(d.orig_message_id, "m1@clinic.example");
	assert_int_equal(dsn_take_returned_headers(&d, NULL, 0), 0);
	assert_int_equal(dsn_take_returned_headers(&d, "", 0), 0);
	dsn_free(&d);
	memset(&d, 0, sizeof(d));
	assert_int_equal(dsn_take_returned_headers(&d, "Message-ID:", 11), 0);
	dsn_free(&d);
}

/* A returned Message-ID is cut as a report's field is, NULs and all
 * (each becomes the three bytes of U+FFFD): found by fuzz_dsn. */
static void
returned_message_id_is_bounded(void **state)
{
	struct buf h = BUF_INIT;
	struct inmsg_dsn d = { 0 };

	assert_int_equal(buf_append(&h, "Message-ID: <", 13), 0);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(buf_append(&h, i % 2 ? "\0" : "\xff", 1), 0);
	assert_int_equal(buf_append(&h, ">\r\n\r\n", 5), 0);
	assert_int_equal(dsn_take_returned_headers(&d, h.data, h.len), 0);
	assert_non_null(d.orig_message_id);
	assert_true(strlen(d.orig_message_id) <= 3 * DSN_MAX_VALUE);
	assert_true(strlen(d.orig_message_id) >= DSN_MAX_VALUE);
	dsn_free(&d);
	buf_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dsn_fields_are_extracted_from_postfix_bounce),
		cmocka_unit_test(dsn_multiple_recipients_and_prose_status_part),
		cmocka_unit_test(fields_are_read_per_message_and_per_recipient),
		cmocka_unit_test(malformed_reports_give_what_can_be_read),
		cmocka_unit_test(recipients_and_values_are_bounded),
		cmocka_unit_test(returned_headers_give_the_first_message_id),
		cmocka_unit_test(returned_message_id_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
