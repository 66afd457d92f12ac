/*
 * NAME
 *	test_classify - unit tests for lib/classify.c
 * DESCRIPTION
 *	Each class from hand-written and real messages (bounces from the
 *	corpus), replies that ask for no automatic answer, and addresses
 *	that only look like carepost's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "inmsg.h"
#include "msgfix.h"
#include "util.h"

static enum inmsg_class
classify_str(const char *s, struct inmsg_class_info *ci)
{
	struct inmsg *m = tu_parse_str(s);
	enum inmsg_class c = inmsg_classify(m, &tu_addrs, ci);

	inmsg_free(m);
	return c;
}

static void
multipart_report_bounces_are_dsn(void **state)
{
	static const char *const files[] = {
		"flanker-messages/bounce/delayed.eml",
		"flanker-messages/bounce/mailbox-full.eml",
		"flanker-messages/bounce/no-mx.eml",
		"flanker-messages/bounce/office365.eml",
		"flanker-messages/bounce/zed.eml",
		"mail-fixtures/multipart_report_emails/multi_address_bounce1.eml",
		"mail-fixtures/multipart_report_emails/multi_address_bounce2.eml",
		"mail-fixtures/multipart_report_emails/multipart_report_multiple_status.eml",
		"mail-fixtures/multipart_report_emails/report_422.eml",
		"mail-fixtures/multipart_report_emails/report_530.eml",
	};
	const char *dir;

	NEED_CORPUS(dir);
	for (size_t i = 0; i < CP_ARRAY_SIZE(files); i++) {
		struct inmsg *m = tu_parse_file(files[i]);
		struct inmsg_class_info ci;

		if (inmsg_classify(m, &tu_addrs, &ci) != INMSG_DSN)
			fail_msg("%s not classified as DSN", files[i]);
		assert_true(m->dsn.present);
		assert_true(m->dsn.n_rcpts >= 1);
		assert_string_equal(ci.reason, "delivery-status report");
		inmsg_free(m);
	}
}

static void
gmail_text_bounce_is_dsn_without_report(void **state)
{
	const char *dir;
	struct inmsg *m;
	struct inmsg_class_info ci;

	NEED_CORPUS(dir);
	m = tu_parse_file("flanker-messages/bounce/gmail-invalid-address.eml");
	assert_false(m->dsn.present);
	assert_int_equal(inmsg_classify(m, &tu_addrs, &ci), INMSG_DSN);
	assert_string_equal(ci.reason, "from a mailer daemon");
	assert_string_equal(m->from_addr, "mailer-daemon@googlemail.com");
	inmsg_free(m);
}

static void
reply_to_token_address_is_reply_with_token(void **state)
{
	struct inmsg_class_info ci;

	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: \"Clinic\" <REPLY+Abc234xyz@Reply.Clinic.Example>\r\n"
		"Subject: Re: appointment\r\n\r\nSee you then.\r\n", &ci), INMSG_REPLY);
	assert_string_equal(ci.token, "abc234xyz");	/* lower-cased address */
	assert_string_equal(ci.reason, "sent to a reply address");
	/* "Auto-Submitted: no" is a human */
	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: reply+t1@reply.clinic.example\r\n"
		"Auto-Submitted: no\r\n\r\nhi\r\n", &ci), INMSG_REPLY);
	/* wrong domain, empty token, bad characters: not ours */
	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: reply+t1@evil.example\r\n\r\nhi\r\n", &ci),
		INMSG_UNKNOWN);
	assert_string_equal(ci.token, "");
	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: reply+@reply.clinic.example\r\n\r\nhi\r\n", &ci),
		INMSG_UNKNOWN);
	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: \"reply+a/b\"@reply.clinic.example\r\n\r\nhi\r\n", &ci),
		INMSG_UNKNOWN);
}

static void
unsubscribe_by_address_or_subject(void **state)
{
	struct inmsg_class_info ci;

	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: Unsubscribe@reply.clinic.example\r\n"
		"Subject: please\r\n\r\n", &ci), INMSG_UNSUBSCRIBE);
	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: reply+tok@reply.clinic.example\r\n"
		"Subject:  UNSUBSCRIBE \r\n\r\n", &ci), INMSG_UNSUBSCRIBE);
	assert_string_equal(ci.token, "tok");
	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: reply+tok@reply.clinic.example\r\n"
		"Subject: how do I unsubscribe?\r\n\r\n", &ci), INMSG_REPLY);
}

static void
autoreplies_are_recognised(void **state)
{
	static const char *const heads[] = {
		"Auto-Submitted: auto-replied (vacation)\r\n",
		"Auto-Submitted: Auto-Generated\r\n",
		"X-Autoreply: yes\r\n",
		"X-Autorespond: yes\r\n",
		"Precedence: bulk\r\n",
		"Precedence: auto_reply\r\n",
		"Subject: Out of Office: Re: appointment\r\n",
		"Subject: Automatic reply: appointment\r\n",
		"Subject: Auto: appointment\r\n",
		"Subject: Abwesenheitsnotiz: Termin\r\n",
		"Subject: =?UTF-8?Q?Respuesta_autom=C3=A1tica:_cita?=\r\n",
		"Subject: =?ISO-8859-1?Q?R=E9ponse_automatique_:_rendez-vous?=\r\n",
		"Subject: Risposta automatica: appuntamento\r\n",
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(heads); i++) {
		struct buf b = BUF_INIT;
		struct inmsg_class_info ci;

		buf_printf(&b, "From: p@patient.example\r\nTo: reply+tok@reply.clinic.example\r\n"
			   "%s\r\nI am away.\r\n", heads[i]);
		if (classify_str(b.data, &ci) != INMSG_AUTOREPLY)
			fail_msg("case %zu not an autoreply", i);
		assert_string_equal(ci.token, "tok");	/* thread still found */
		buf_free(&b);
	}
}

static void
bounces_by_verp_address_or_daemon_are_dsn(void **state)
{
	struct inmsg_class_info ci;

	assert_int_equal(classify_str(
		"From: someone@relay.example\r\nTo: bounce+evt42-x@bounce.clinic.example\r\n"
		"Subject: failure\r\nAuto-Submitted: auto-replied\r\n\r\n", &ci), INMSG_DSN);
	assert_string_equal(ci.verp, "evt42-x");
	assert_string_equal(ci.reason, "sent to a bounce address");
	assert_int_equal(classify_str(
		"Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@relay.example>\r\n"
		"To: reply+tok@reply.clinic.example\r\n\r\nfailed\r\n", &ci), INMSG_DSN);
	assert_int_equal(classify_str(
		"From: p@patient.example\r\nTo: clinic@else.example\r\n\r\nhello\r\n", &ci),
		INMSG_UNKNOWN);
	assert_string_equal(inmsg_class_name(INMSG_DSN), "dsn");
	assert_string_equal(inmsg_class_name(INMSG_AUTOREPLY), "autoreply");
	assert_string_equal(inmsg_class_name(INMSG_REPLY), "reply");
	assert_string_equal(inmsg_class_name(INMSG_UNSUBSCRIBE), "unsubscribe");
	assert_string_equal(inmsg_class_name(INMSG_UNKNOWN), "unknown");
	assert_string_equal(inmsg_class_name((enum inmsg_class)99), "unknown");
}

static void
replies_that_ask_for_no_automatic_answer_are_recognised(void **state)
{
	static const struct {
		const char *head;
		const char *why;	/* NULL: an answer is fine */
	} cases[] = {
		{ "List-Id: Patients <patients.list.example>\r\n", "list mail" },
		{ "List-Post: <mailto:patients@list.example>\r\n", "list mail" },
		{ "List-Post: NO\r\n", "list mail" },
		{ "X-Auto-Response-Suppress: All\r\n", "x-auto-response-suppress header" },
		{ "X-Auto-Response-Suppress: oof\r\n", "x-auto-response-suppress header" },
		{ "X-Auto-Response-Suppress: DR, AutoReply\r\n", "x-auto-response-suppress header" },
		{ "X-Auto-Response-Suppress: RN,NRN,\r\n  OOF\r\n", "x-auto-response-suppress header" },
		{ "Return-Path: <>\r\n", "null return path" },
		{ "Auto-Submitted: auto-generated\r\n", "auto-submitted header" },
		{ "X-Auto-Response-Suppress: None\r\n", NULL },
		{ "X-Auto-Response-Suppress: DR, NDR, RN, NRN\r\n", NULL },
		{ "X-Auto-Response-Suppress: OOFish, Allx\r\n", NULL },
		{ "Return-Path: <p@patient.example>\r\n", NULL },
		{ "List-Unsubscribe: <mailto:u@list.example>\r\n", NULL },
		{ "Auto-Submitted: no\r\n", NULL },
		{ "", NULL },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		struct buf b = BUF_INIT;
		struct inmsg *m;
		const char *why = "unset";
		json_t *j = NULL;

		buf_printf(&b, "%sFrom: p@patient.example\r\nTo: reply+tok@reply.clinic.example\r\n"
			   "Subject: Re: appointment\r\n\r\nSee you then.\r\n", cases[i].head);
		m = tu_parse_str(b.data);
		if (inmsg_no_autoresponse(m, &why) != (cases[i].why != NULL))
			fail_msg("case %zu (%s): wrong answer", i, cases[i].head);
		if (cases[i].why)
			assert_string_equal(why, cases[i].why);
		else
			assert_null(why);
		assert_int_equal(inmsg_no_autoresponse(m, NULL), cases[i].why != NULL);
		/* the dry-run summary says so */
		assert_int_equal(inmsg_to_json(m, &tu_addrs, &j), 0);
		if (cases[i].why)
			assert_string_equal(json_string_value(json_object_get(j, "no_autoresponse")),
					    cases[i].why);
		else
			assert_true(json_is_null(json_object_get(j, "no_autoresponse")));
		json_decref(j);
		inmsg_free(m);
		buf_free(&b);
	}
	assert_int_equal(inmsg_no_autoresponse(NULL, NULL), 0);
}

/* A message built by hand: classification reads only these fields. */
static enum inmsg_class
classify_rcpts(char **rcpts, size_t n, struct inmsg_class_info *ci)
{
	struct inmsg m = { .date = -1 };

	m.recipients.v = rcpts;
	m.recipients.n = n;
	return inmsg_classify(&m, &tu_addrs, ci);
}

static void
malformed_recipient_addresses_are_not_ours(void **state)
{
	char tok127[128 + 64], tok128[129 + 64];
	char *bad[] = {
		"", "@", "reply+", "reply+@", "reply+tok@", "reply+tok",
		"reply@reply.clinic.example", "replyx+tok@reply.clinic.example",
		"reply+to k@reply.clinic.example", "reply+tok@reply.clinic.example.evil",
		"reply+t\xff@reply.clinic.example", "bounce+@bounce.clinic.example",
		"unsubscribe+@reply.clinic.example", "@reply.clinic.example",
		tok128,
	};
	struct inmsg_class_info ci;
	char *good[] = { tok127 };

	snprintf(tok127, sizeof(tok127), "reply+%0127d@reply.clinic.example", 0);
	snprintf(tok128, sizeof(tok128), "reply+%0128d@reply.clinic.example", 0);
	for (size_t i = 0; i < CP_ARRAY_SIZE(bad); i++) {
		if (classify_rcpts(&bad[i], 1, &ci) != INMSG_UNKNOWN)
			fail_msg("case %zu taken for one of ours", i);
		assert_string_equal(ci.token, "");
		assert_string_equal(ci.verp, "");
	}
	assert_int_equal(classify_rcpts(good, 1, &ci), INMSG_REPLY);
	assert_int_equal(strlen(ci.token), 127);
	assert_int_equal(classify_rcpts(NULL, 0, &ci), INMSG_UNKNOWN);
	assert_string_equal(ci.reason, "no known recipient address");
}

static void
missing_message_or_addresses_classify_as_unknown(void **state)
{
	struct inmsg_class_info ci;
	char *r[] = { "reply+tok@reply.clinic.example" };
	struct inmsg m = { .date = -1 };

	assert_int_equal(inmsg_classify(NULL, &tu_addrs, &ci), INMSG_UNKNOWN);
	assert_string_equal(ci.reason, "no message");
	m.recipients.v = r;
	m.recipients.n = 1;
	assert_int_equal(inmsg_classify(&m, NULL, &ci), INMSG_UNKNOWN);
	assert_int_equal(inmsg_classify(&m, &tu_addrs, NULL), INMSG_REPLY);
}

static void
reply_token_is_named_only_with_its_shape_and_domain(void **state)
{
	char *v[] = { "x@else.example", "REPLY+Tok1@REPLY.clinic.example" };
	struct inmsg_strlist l = { v, 2 };
	struct inmsg_strlist none = { NULL, 0 };

	assert_int_equal(inmsg_names_reply_token(&l, &tu_addrs, "tok1"), 1);
	assert_int_equal(inmsg_names_reply_token(&l, &tu_addrs, NULL), 1);
	assert_int_equal(inmsg_names_reply_token(&l, &tu_addrs, "tok2"), 0);
	assert_int_equal(inmsg_names_reply_token(&l, &tu_addrs, ""), 0);
	assert_int_equal(inmsg_names_reply_token(&none, &tu_addrs, NULL), 0);
	assert_int_equal(inmsg_names_reply_token(NULL, &tu_addrs, NULL), 0);
	assert_int_equal(inmsg_names_reply_token(&l, NULL, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(multipart_report_bounces_are_dsn),
		cmocka_unit_test(gmail_text_bounce_is_dsn_without_report),
		cmocka_unit_test(reply_to_token_address_is_reply_with_token),
		cmocka_unit_test(unsubscribe_by_address_or_subject),
		cmocka_unit_test(autoreplies_are_recognised),
		cmocka_unit_test(bounces_by_verp_address_or_daemon_are_dsn),
		cmocka_unit_test(replies_that_ask_for_no_automatic_answer_are_recognised),
		cmocka_unit_test(malformed_recipient_addresses_are_not_ours),
		cmocka_unit_test(missing_message_or_addresses_classify_as_unknown),
		cmocka_unit_test(reply_token_is_named_only_with_its_shape_and_domain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
