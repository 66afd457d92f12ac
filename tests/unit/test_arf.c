/*
 * NAME
 *	test_arf - unit tests for lib/arf.c and the feedback reports the MIME
 *	walk finds
 * DESCRIPTION
 *	Feedback fields from real feedback loops (the corpus: Yahoo's CFL,
 *	AOL's, with MIME headers inside its report part) and from
 *	hand-written reports, malformed ones included: no colon, no
 *	Feedback-Type, repeated fields, NUL and invalid UTF-8, values longer
 *	than kept; and where a report counts: only as the message itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "arf.h"
#include "buf.h"
#include "classify.h"
#include "dsn.h"
#include "inmsg.h"
#include "msgfix.h"
#include "util.h"

static void
yahoo_cfl_report_is_read_from_the_corpus(void **state)
{
	const char *dir;
	struct inmsg *m;

	NEED_CORPUS(dir);
	m = tu_parse_file("flanker-messages/complaints/yahoo.eml");
	assert_true(m->arf.present);
	assert_string_equal(m->arf.feedback_type, "abuse");
	assert_string_equal(m->arf.user_agent, "Yahoo!-Mail-Feedback/1.0");
	assert_string_equal(m->arf.version, "0.1");
	assert_string_equal(m->arf.original_mail_from,
			    "bounce+705f77.d4a-user=yahoo.com@example.com");
	assert_string_equal(m->arf.original_rcpt_to, "user@yahoo.com");
	assert_string_equal(m->arf.reported_domain, "example.com");
	assert_false(m->arf.redacted);
	assert_true(m->arf.orig_headers_present);
	/* the reported message begins with an mbox "From " line */
	assert_string_equal(m->arf.orig_message_id, "20120711015015.4A8BE2E088E@www.example.com");
	assert_false(m->dsn.present);
	assert_int_equal(inmsg_classify(m, &tu_addrs, NULL), INMSG_COMPLAINT);
	assert_int_equal(arf_kind(m->arf.feedback_type), ARF_COMPLAINT);
	inmsg_free(m);
}

static void
aol_report_with_mime_headers_inside_is_read(void **state)
{
	const char *dir;
	struct inmsg *m;

	NEED_CORPUS(dir);
	/* AOL's report part holds MIME headers and blank lines among its
	 * fields, and a redacted recipient */
	m = tu_parse_file("flanker-messages/complaints/aol.eml");
	assert_true(m->arf.present);
	assert_string_equal(m->arf.feedback_type, "abuse");
	assert_string_equal(m->arf.user_agent, "AOL SComp");
	assert_true(m->arf.redacted);
	assert_null(m->arf.original_rcpt_to);
	assert_string_equal(m->arf.reported_domain, "mars-34.example.com");
	assert_true(m->arf.orig_headers_present);
	/* Precedence: list on the report does not make it an auto-reply */
	assert_int_equal(inmsg_classify(m, &tu_addrs, NULL), INMSG_COMPLAINT);
	inmsg_free(m);
}

static void
parse(struct inmsg_arf *a, const char *s, size_t len)
{
	memset(a, 0, sizeof(*a));
	assert_int_equal(arf_parse(a, s, len), 0);
	assert_true(a->present);
}

static void
fields_are_read_first_wins_case_folded(void **state)
{
	static const char text[] =
		"feedback-TYPE:   Fraud (phishing)\n"
		"Garbage line without colon\n"
		"Feedback-Type: abuse\n"			/* a repeat: ignored */
		"Original-Mail-From: <Bounce+T.r0.X@Bounce.Clinic.Example>\n"
		"Original-Rcpt-To: <P@Patients.Example>\n"
		"Original-Rcpt-To: second@x.example\n"
		"User-Agent: SomeFBL/2.0\n  (continued)\n"
		"\n\n"						/* blank lines inside */
		"Reported-Domain: CLINIC.example\n"
		"Redacted-Address: redacted\n";
	struct inmsg_arf a;

	parse(&a, text, sizeof(text) - 1);
	assert_string_equal(a.feedback_type, "fraud");
	assert_string_equal(a.original_mail_from, "bounce+t.r0.x@bounce.clinic.example");
	assert_string_equal(a.original_rcpt_to, "p@patients.example");
	assert_string_equal(a.user_agent, "SomeFBL/2.0  (continued)");	/* unfolded */
	assert_string_equal(a.reported_domain, "clinic.example");
	assert_true(a.redacted);
	assert_null(a.version);
	/* a second report part adds nothing */
	assert_int_equal(arf_parse(&a, "Version: 9\n", 11), 0);
	assert_null(a.version);
	arf_free(&a);
}

static void
malformed_reports_keep_what_reads_and_nothing_else(void **state)
{
	static const char dirty[] = "Feedback-Type: ab\0use\nUser-Agent: \xff\x01x\n";
	struct inmsg_arf a;
	char big[3 * DSN_MAX_VALUE];
	struct buf b = BUF_INIT;

	/* nothing at all: present, no type (a malformed report) */
	parse(&a, "", 0);
	assert_null(a.feedback_type);
	assert_int_equal(arf_kind(a.feedback_type), ARF_NONE);
	arf_free(&a);
	parse(&a, "no fields here\njust prose\n", 26);
	assert_null(a.feedback_type);
	arf_free(&a);
	/* an empty type is none */
	parse(&a, "Feedback-Type:   \n", 18);
	assert_int_equal(arf_kind(a.feedback_type), ARF_NONE);
	arf_free(&a);
	/* NUL, invalid UTF-8 and controls: cleaned, never kept raw */
	parse(&a, dirty, sizeof(dirty) - 1);
	assert_non_null(a.user_agent);
	for (const char *p = a.user_agent; *p; p++)
		assert_true((unsigned char)*p >= 0x20);
	assert_true(cp_utf8_valid(a.user_agent, strlen(a.user_agent)));
	arf_free(&a);
	/* a value longer than kept is cut */
	memset(big, 'a', sizeof(big));
	assert_int_equal(buf_append(&b, "User-Agent: ", 12), 0);
	assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
	parse(&a, b.data, b.len);
	assert_true(strlen(a.user_agent) <= DSN_MAX_VALUE);
	arf_free(&a);
	buf_free(&b);
}

static void
kinds_follow_rfc5965_unknown_types_are_complaints(void **state)
{
	assert_int_equal(arf_kind("abuse"), ARF_COMPLAINT);
	assert_int_equal(arf_kind("fraud"), ARF_COMPLAINT);
	assert_int_equal(arf_kind("other"), ARF_COMPLAINT);
	assert_int_equal(arf_kind("opt-out"), ARF_COMPLAINT);	/* not known: "other" */
	assert_int_equal(arf_kind("virus"), ARF_VIRUS);
	assert_int_equal(arf_kind("not-spam"), ARF_NOT_SPAM);
	assert_int_equal(arf_kind("auth-failure"), ARF_AUTH_FAILURE);
	assert_int_equal(arf_kind(NULL), ARF_NONE);
	assert_string_equal(arf_kind_name(ARF_COMPLAINT), "complaint");
	assert_string_equal(arf_kind_name(ARF_NONE), "none");
}

static void
reported_headers_give_message_id_and_return_path(void **state)
{
	static const char hdr[] = "Return-Path: <Bounce+A.r1.B@Bounce.Example>\r\n"
				  "Message-ID:\r\n <abc.r0.def@clinic.example>\r\n"
				  "\r\nMessage-ID: <body@not.header>\r\n";
	struct inmsg_arf a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(arf_take_reported_headers(&a, hdr, sizeof(hdr) - 1), 0);
	assert_true(a.orig_headers_present);
	assert_string_equal(a.orig_return_path, "bounce+a.r1.b@bounce.example");
	assert_string_equal(a.orig_message_id, "abc.r0.def@clinic.example");	/* folded */
	arf_free(&a);
	memset(&a, 0, sizeof(a));
	assert_int_equal(arf_take_reported_headers(&a, "Subject: x\r\n\r\nMessage-ID: <b@x>\r\n",
						   33), 0);
	assert_null(a.orig_message_id);		/* the body is not the header */
	arf_free(&a);
}

static const char report_fmt[] =
	"From: fbl@isp.example\r\nTo: fbl@clinic.example\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/report; report-type=%s; boundary=\"b\"\r\n\r\n"
	"--b\r\nContent-Type: text/plain\r\n\r\nA complaint\r\n"
	"--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
	"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <m@clinic.example>\r\n"
	"--b--\r\n";

static void
a_report_counts_only_as_the_message_itself(void **state)
{
	char msg[1024], outer[2048];
	struct inmsg *m;

	snprintf(msg, sizeof(msg), report_fmt, "feedback-report");
	m = tu_parse_str(msg);
	assert_true(m->arf.present);
	assert_string_equal(m->arf.orig_message_id, "m@clinic.example");
	inmsg_free(m);
	/* another report-type: its parts are not read as a feedback report */
	snprintf(msg, sizeof(msg), report_fmt, "disposition-notification");
	m = tu_parse_str(msg);
	assert_false(m->arf.present);
	assert_int_not_equal(inmsg_classify(m, &tu_addrs, NULL), INMSG_COMPLAINT);
	inmsg_free(m);
	/* attached inside another message's multipart: not the message */
	snprintf(msg, sizeof(msg), report_fmt, "feedback-report");
	snprintf(outer, sizeof(outer), "From: p@patients.example\r\nTo: x@clinic.example\r\n"
		 "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n"
		 "--o\r\nContent-Type: text/plain\r\n\r\nhi\r\n--o\r\n%s\r\n--o--\r\n",
		 strstr(msg, "Content-Type: multipart/report"));
	m = tu_parse_str(outer);
	assert_false(m->arf.present);
	assert_int_not_equal(inmsg_classify(m, &tu_addrs, NULL), INMSG_COMPLAINT);
	inmsg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(yahoo_cfl_report_is_read_from_the_corpus),
		cmocka_unit_test(aol_report_with_mime_headers_inside_is_read),
		cmocka_unit_test(fields_are_read_first_wins_case_folded),
		cmocka_unit_test(malformed_reports_keep_what_reads_and_nothing_else),
		cmocka_unit_test(kinds_follow_rfc5965_unknown_types_are_complaints),
		cmocka_unit_test(reported_headers_give_message_id_and_return_path),
		cmocka_unit_test(a_report_counts_only_as_the_message_itself),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
