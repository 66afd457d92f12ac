/*
 * NAME
 *	test_msghdr - unit tests for lib/msghdr.c
 * DESCRIPTION
 *	The header facts of hand-written messages, From counted field by
 *	field, address lists bounded, protected headers (malformed, over
 *	the limit, the first one winning), and dates and ids that cannot be
 *	read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <stdlib.h>

#include "buf.h"
#include "inmsg.h"
#include "msgfix.h"
#include "msghdr.h"
#include "util.h"

static void
header_facts_are_extracted(void **state)
{
	struct inmsg *m = tu_parse_str(
		"Return-Path: <P@Patient.Example>\r\n"
		"Delivered-To: reply+tok123@reply.clinic.example\r\n"
		"X-Original-To: <Reply+tok123@Reply.Clinic.Example>\r\n"
		"Authentication-Results: mx.clinic.example;\r\n dmarc=pass header.from=patient.example\r\n"
		"Authentication-Results: evil.example; dmarc=pass\r\n"
		"From: =?UTF-8?Q?Jos=C3=A9_P=C3=A9rez?= <Jose@Patient.EXAMPLE>\r\n"
		"To: Clinic <reply+tok123@reply.clinic.example>, other@x.example\r\n"
		"Cc: group: a@b.example, c@d.example;\r\n"
		"Subject: Re: your appointment\r\n"
		"Date: Thu, 01 Feb 2024 10:00:00 +0100\r\n"
		"Message-ID: <abc@patient.example>\r\n"
		"In-Reply-To: <evt-1@clinic.example>\r\n"
		"References: <evt-0@clinic.example> <evt-1@clinic.example>\r\n"
		"List-Id: Some list <list.example>\r\n"
		"X-Auto-Response-Suppress: All\r\n"
		"\r\nThanks!\r\n");

	assert_string_equal(m->message_id, "abc@patient.example");
	assert_string_equal(m->in_reply_to, "evt-1@clinic.example");
	assert_int_equal(m->references.n, 2);
	assert_string_equal(m->references.v[0], "evt-0@clinic.example");
	assert_string_equal(m->references.v[1], "evt-1@clinic.example");
	assert_string_equal(m->from_addr, "jose@patient.example");
	assert_string_equal(m->from_name, "Jos\xc3\xa9 P\xc3\xa9rez");
	assert_string_equal(m->return_path, "p@patient.example");
	assert_false(m->flags & INMSG_F_NULL_RETURN_PATH);
	assert_true(m->flags & INMSG_F_X_AUTO_RESPONSE_SUPPRESS);
	/* duplicates folded: Delivered-To, X-Original-To and To name one */
	assert_int_equal(m->recipients.n, 4);
	assert_string_equal(m->recipients.v[0], "reply+tok123@reply.clinic.example");
	assert_string_equal(m->recipients.v[1], "other@x.example");
	assert_string_equal(m->recipients.v[2], "a@b.example");
	assert_string_equal(m->recipients.v[3], "c@d.example");
	assert_string_equal(m->subject, "Re: your appointment");
	assert_int_equal(m->date, 1706778000);
	assert_int_equal(m->auth_results.n, 2);
	assert_string_equal(m->auth_results.v[0],
			    "mx.clinic.example; dmarc=pass header.from=patient.example");
	assert_string_equal(m->list_id, "Some list <list.example>");
	assert_string_equal(m->body, "Thanks!\n");
	assert_string_equal(m->content_type, "text/plain");
	assert_int_equal(m->header_count, 15);
	inmsg_free(m);
}

/* Every From address counts: two fields, or two addresses in one. */
static void
from_addresses_are_counted(void **state)
{
	struct inmsg *m = tu_parse_str("From: p@patient.example\r\nSubject: x\r\n\r\nbody\r\n");

	assert_int_equal(m->from_count, 1);
	inmsg_free(m);
	m = tu_parse_str("From: p@patient.example, attacker@evil.example\r\nSubject: x\r\n\r\nbody\r\n");
	assert_int_equal(m->from_count, 2);
	assert_string_equal(m->from_addr, "p@patient.example");
	inmsg_free(m);
	m = tu_parse_str("From: p@patient.example\r\nFrom: attacker@evil.example\r\n\r\nbody\r\n");
	assert_int_equal(m->from_count, 2);
	inmsg_free(m);
	m = tu_parse_str("Subject: no from\r\n\r\nbody\r\n");
	assert_int_equal(m->from_count, 0);
	inmsg_free(m);
}

/*
 * A To of tens of thousands of addresses: the duplicate check walked the
 * list for each (quadratic: 730 KB took 21 s of CPU); now at most
 * INMSG_MAX_RECIPIENTS are kept. A header block over 1 MiB is refused.
 */
static void
huge_address_lists_are_bounded(void **state)
{
	struct buf b = BUF_INIT;
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	buf_puts(&b, "From: a@b.example\r\nTo: ");
	for (unsigned i = 0; i < 50000; i++)
		buf_printf(&b, "%s%u@b.example", i ? "," : "", i);
	buf_puts(&b, "\r\nCc: reply+tok@reply.example\r\n\r\nbody\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), 0);
	assert_int_equal(m->recipients.n, INMSG_MAX_RECIPIENTS);
	assert_string_equal(m->recipients.v[0], "0@b.example");
	inmsg_free(m);
	buf_free(&b);

	buf_puts(&b, "From: a@b.example\r\nTo: ");
	while (b.len < INMSG_MAX_HEADER_BYTES)
		buf_puts(&b, "x@b.example,");
	buf_puts(&b, "y@b.example\r\n\r\nbody\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), -E2BIG);
	assert_string_equal(err.text, "message header exceeds 1048576 bytes");
	assert_null(m);
	buf_free(&b);
}

static void
protected(struct inmsg *m, const char *raw)
{
	assert_int_equal(msghdr_take_protected(m, raw, strlen(raw)), 0);
}

static void
protected_headers_take_subject_and_recipients_once(void **state)
{
	struct inmsg m = { .date = -1 };

	protected(&m, "Content-Type: text/plain; protected-headers=v1\r\n"
		  "Subject: =?utf-8?q?caf=C3=A9?=\r\nTo: <Reply+T@Reply.Clinic.Example>\r\n"
		  "Cc: a@b.example\r\nFrom: ignored@x.example\r\n\r\nbody");
	assert_true(m.prot.present);
	assert_string_equal(m.prot.subject, "caf\xc3\xa9");
	assert_int_equal(m.prot.recipients.n, 2);
	assert_string_equal(m.prot.recipients.v[0], "reply+t@reply.clinic.example");
	/* the first covered entity wins */
	protected(&m, "Subject: second\r\n\r\n");
	assert_string_equal(m.prot.subject, "caf\xc3\xa9");
	free(m.prot.subject);
	msghdr_strlist_free(&m.prot.recipients);
	assert_int_equal(m.prot.recipients.n, 0);
	assert_null(m.prot.recipients.v);
}

static void
malformed_protected_headers_are_none_or_partial(void **state)
{
	static const char *const junk[] = {
		"", "\r\n", "no colon here\r\n\r\n", ": empty name\r\n\r\n",
		"Subject\r\n\r\n", "To: <<<@@@>>>\r\n\r\n", "Subject: \xff\xfe\r\n\r\n",
		"To: a@b.example,,,,\r\n\r\n", " folded-first: x\r\n\r\n",
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(junk); i++) {
		struct inmsg m = { .date = -1 };

		protected(&m, junk[i]);
		if (m.prot.subject != NULL)
			assert_true(cp_utf8_valid(m.prot.subject, strlen(m.prot.subject)));
		if (m.prot.subject != NULL || m.prot.recipients.n > 0)
			assert_true(m.prot.present);
		free(m.prot.subject);
		msghdr_strlist_free(&m.prot.recipients);
	}
}

static void
protected_header_block_over_the_limit_is_none(void **state)
{
	struct buf b = BUF_INIT;
	struct inmsg m = { .date = -1 };

	buf_puts(&b, "Subject: x\r\nX-Pad: ");
	for (unsigned i = 0; i < INMSG_MAX_HEADER_BYTES / 64 + 1; i++)
		buf_puts(&b, "0123456789012345678901234567890123456789012345678901234567890\r\n ");
	buf_puts(&b, "\r\n\r\nbody");
	assert_int_equal(msghdr_take_protected(&m, b.data, b.len), 0);
	assert_false(m.prot.present);
	assert_null(m.prot.subject);
	buf_free(&b);
}

static void
bad_dates_and_unreadable_ids_are_kept_safely(void **state)
{
	static const char *const dates[] = {
		"Date: Thu, 31 Feb 1899 10:00:00 +0000\r\n",
		"Date: yesterday\r\n", "Date: Thu, 01 Feb 2024 25:00:00 +0000\r\n",
		"Date: Thu, 01 Jan 1970 00:00:00 +0100\r\n",
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(dates); i++) {
		struct buf b = BUF_INIT;
		struct inmsg *m;

		buf_printf(&b, "%sMessage-ID: not an id\r\nIn-Reply-To: \xff<x>\r\n\r\nx", dates[i]);
		m = tu_parse_str(b.data);
		assert_int_equal(m->date, -1);
		assert_non_null(m->message_id);
		assert_true(cp_utf8_valid(m->message_id, strlen(m->message_id)));
		if (m->in_reply_to != NULL)
			assert_true(cp_utf8_valid(m->in_reply_to, strlen(m->in_reply_to)));
		inmsg_free(m);
		buf_free(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(header_facts_are_extracted),
		cmocka_unit_test(from_addresses_are_counted),
		cmocka_unit_test(huge_address_lists_are_bounded),
		cmocka_unit_test(protected_headers_take_subject_and_recipients_once),
		cmocka_unit_test(malformed_protected_headers_are_none_or_partial),
		cmocka_unit_test(protected_header_block_over_the_limit_is_none),
		cmocka_unit_test(bad_dates_and_unreadable_ids_are_kept_safely),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
