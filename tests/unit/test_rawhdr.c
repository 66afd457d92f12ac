/*
 * NAME
 *	test_rawhdr - unit tests for lib/rawhdr.c: what carepostd reads
 *	itself from a message's raw header block
 * DESCRIPTION
 *	Authentication-Results values top first and unfolded, only from the
 *	header block; From fields and addresses counted (quotes, comments
 *	and angle brackets respected) and the one address read; recipients'
 *	fields searchable for a reply token, others not; limits hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "authres.h"
#include "rawhdr.h"
#include "util.h"

static void
scan(const char *raw, struct rawhdr *h)
{
	struct cp_error err;

	cp_error_clear(&err);
	assert_int_equal(rawhdr_scan(raw, strlen(raw), h, &err), 0);
}

static void
authentication_results_are_read_top_first_unfolded_from_the_header_only(void **state)
{
	struct rawhdr h;

	scan("Received: x\r\n"
	     "Authentication-Results: mx.clinic.test;\r\n"
	     "\tdmarc=pass header.from=patients.test\r\n"
	     "authentication-results : mx.other.test; dkim=fail\n"
	     "Subject: Authentication-Results: no\r\n"
	     "\r\n"
	     "Authentication-Results: mx.clinic.test; dmarc=pass (in the body)\r\n", &h);
	assert_int_equal(h.authres.n, 2);
	assert_string_equal(h.authres.v[0],
			    "mx.clinic.test;\tdmarc=pass header.from=patients.test");
	assert_string_equal(h.authres.v[1], "mx.other.test; dkim=fail");
	rawhdr_free(&h);
	scan("Subject: none\r\n\r\n", &h);
	assert_int_equal(h.authres.n, 0);
	assert_int_equal(h.from_fields, 0);
	assert_false(rawhdr_from_is(&h, "a@b.test"));
	rawhdr_free(&h);
}

static void
from_fields_and_addresses_are_counted_and_the_one_address_read(void **state)
{
	static const struct {
		const char *from;
		unsigned fields, addresses;
		const char *addr;
	} cases[] = {
		{ "From: Pat <Pat@Patients.TEST>\r\n", 1, 1, "pat@patients.test" },
		{ "From: pat@patients.test (Pat, P.)\r\n", 1, 1, "pat@patients.test" },
		{ "From: \"Doe, Pat <x@evil.test>\" <pat@patients.test>\r\n", 1, 1,
		  "pat@patients.test" },
		{ "From: pat@patients.test, mallory@evil.test\r\n", 1, 2, "pat@patients.test" },
		{ "From: pat@patients.test\r\nFrom: mallory@evil.test\r\n", 2, 2,
		  "pat@patients.test" },
		{ "From: \"a b\"@patients.test\r\n", 1, 1, "" },
		{ "From: <pat@patients.test>\r\n <mallory@evil.test>\r\n", 1, 1,
		  "mallory@evil.test" },	/* the last angle-addr, as read */
		{ "From:\r\n", 1, 1, "" },
		{ "From: \"unterminated <pat@patients.test>\r\n", 1, 1, "" },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		struct buf raw = BUF_INIT;
		struct rawhdr h;

		buf_puts(&raw, cases[i].from);
		buf_puts(&raw, "Subject: s\r\n\r\nbody\r\n");
		buf_append(&raw, "", 1);
		scan(raw.data, &h);
		if (h.from_fields != cases[i].fields ||
		    h.from_addresses != cases[i].addresses ||
		    strcmp(h.from_addr, cases[i].addr) != 0)
			fail_msg("case %zu: %u fields, %u addresses, \"%s\"", i,
				 h.from_fields, h.from_addresses, h.from_addr);
		if (*cases[i].addr) {
			assert_true(rawhdr_from_is(&h, cases[i].addr));
			assert_false(rawhdr_from_is(&h, "x@evil.test"));
		}
		rawhdr_free(&h);
		buf_free(&raw);
	}
}

static void
a_reply_token_is_found_only_in_recipient_fields(void **state)
{
	struct rawhdr h;

	scan("To: Someone <someone@example.test>\r\n"
	     "Cc: a@b.test,\r\n REPLY+TOKA@reply.example\r\n"
	     "Subject: reply+tokb@reply.example\r\n"
	     "Delivered-To: reply+tokc@reply.example\r\n"
	     "X-Original-To: reply+tokd@reply.example\r\n"
	     "\r\n"
	     "To: reply+toke@reply.example\r\n", &h);
	assert_true(rawhdr_recipients_name(&h, "toka"));
	assert_false(rawhdr_recipients_name(&h, "tokb"));	/* Subject */
	assert_true(rawhdr_recipients_name(&h, "tokc"));
	assert_true(rawhdr_recipients_name(&h, "tokd"));
	assert_false(rawhdr_recipients_name(&h, "toke"));	/* body */
	assert_false(rawhdr_recipients_name(&h, ""));
	assert_false(rawhdr_recipients_name(&h, NULL));
	rawhdr_free(&h);
}

/* The token is an address's tag, not any text in a recipient field. */
static void
a_reply_token_must_be_an_addresss_tag(void **state)
{
	struct rawhdr h;

	scan("To: \"reply+toka@reply.example\" <someone@example.test>,\r\n"
	     " (reply+tokb@reply.example) other@example.test,\r\n"
	     " \"a \\\" (\" reply+tokc@reply.example,\r\n"
	     " xtokdx@reply.example, reply+toke, reply+tokfg@reply.example,\r\n"
	     " reply+TOKH@reply.example\r\n"
	     "Cc: \"unclosed reply+toki@reply.example\r\n"
	     "Delivered-To: reply+tokj@reply.example\r\n"
	     "\r\n", &h);
	assert_false(rawhdr_recipients_name(&h, "toka"));	/* a display name */
	assert_false(rawhdr_recipients_name(&h, "tokb"));	/* a comment */
	assert_true(rawhdr_recipients_name(&h, "tokc"));	/* after an escaped quote */
	assert_false(rawhdr_recipients_name(&h, "tokd"));	/* not a tag */
	assert_false(rawhdr_recipients_name(&h, "toke"));	/* no @ after it */
	assert_false(rawhdr_recipients_name(&h, "tokf"));	/* a prefix of the tag */
	assert_true(rawhdr_recipients_name(&h, "tokh"));	/* case ignored */
	assert_false(rawhdr_recipients_name(&h, "toki"));	/* in an open quote */
	/* a quote left open in one field does not hide the next field */
	assert_true(rawhdr_recipients_name(&h, "tokj"));
	rawhdr_free(&h);

	scan("To: 'reply+tokk@reply.example' <other@example.test>,\r\n"
	     " team reply+tokl@reply.example, grp+tokm@reply.example: a@b.test;,\r\n"
	     " Pat <reply+tokn@reply.example> (reply+toko@reply.example),\r\n"
	     " reply+tokp@reply.example (Pat)\r\n"
	     "\r\n", &h);
	assert_false(rawhdr_recipients_name(&h, "tokk"));	/* a display name */
	assert_false(rawhdr_recipients_name(&h, "tokl"));	/* a phrase */
	assert_false(rawhdr_recipients_name(&h, "tokm"));	/* a group's name */
	assert_true(rawhdr_recipients_name(&h, "tokn"));	/* the angle-addr */
	assert_false(rawhdr_recipients_name(&h, "toko"));	/* its comment */
	assert_true(rawhdr_recipients_name(&h, "tokp"));	/* bare, commented */
	rawhdr_free(&h);
}

/*
 * scan_top_counts_for_nothing - raw holds two Authentication-Results of
 * the trusted server, each saying dmarc=pass: the topmost (cut) keeps its
 * place and counts for nothing, and the one below never counts.
 */
static void
scan_top_counts_for_nothing(const struct buf *raw, struct rawhdr *h)
{
	struct authres_result ar;
	struct cp_error err;

	cp_error_clear(&err);
	assert_int_equal(rawhdr_scan(raw->data, raw->len, h, &err), 0);
	assert_int_equal(h->authres.n, 2);
	assert_int_equal(authres_check((const char *const *)h->authres.v, h->authres.n,
				       "mx.test", "patients.test", &ar), 0);
	assert_false(ar.dmarc_pass);
	assert_false(ar.dkim_aligned_pass);
	assert_int_equal(ar.below_top, 1);
}

/*
 * An Authentication-Results value too long to read keeps its place and
 * counts for nothing: the one below never becomes the topmost. A From cut
 * short is not believed.
 */
static void
cut_fields_fail_closed(void **state)
{
	struct buf raw = BUF_INIT;
	struct rawhdr h;
	struct cp_error err;

	/* the MTA's own (echoing a long value), then one from outside */
	buf_puts(&raw, "Authentication-Results: mx.test; dkim=pass header.d=patients.test "
		 "header.s=");
	for (int i = 0; i < 1700; i++)
		buf_puts(&raw, "0123456789");
	buf_puts(&raw, "; dmarc=fail header.from=patients.test\r\n"
		 "Authentication-Results: mx.test; dmarc=pass header.from=patients.test\r\n"
		 "From: pat@patients.test\r\n\r\n");
	scan_top_counts_for_nothing(&raw, &h);
	assert_int_equal(strlen(h.authres.v[0]), RAWHDR_MAX_VALUE);
	assert_true(rawhdr_from_is(&h, "pat@patients.test"));
	rawhdr_free(&h);

	/* the same MTA header, folded over more than RAWHDR_MAX_FIELD */
	buf_reset(&raw);
	buf_puts(&raw, "Authentication-Results: mx.test; dmarc=pass\r\n");
	for (int i = 0; i < 30000; i++)
		buf_puts(&raw, " (0123456789)\r\n");
	buf_puts(&raw, " header.from=patients.test\r\n"
		 "Authentication-Results: mx.test; dmarc=pass header.from=patients.test\r\n"
		 "From: pat@patients.test,\r\n");
	for (int i = 0; i < 30000; i++)
		buf_puts(&raw, " (0123456789)\r\n");
	buf_puts(&raw, " other@elsewhere.test\r\n\r\n");
	scan_top_counts_for_nothing(&raw, &h);
	/* its second address was cut off: the first alone is not believed */
	assert_false(rawhdr_from_is(&h, "pat@patients.test"));
	rawhdr_free(&h);

	/* one long line left out of the MTA's header: what is left (its
	 * first line, a verdict) counts for nothing, and the lines after
	 * the cut are not read as if they stood alone */
	buf_reset(&raw);
	buf_puts(&raw, "Authentication-Results: mx.test; dmarc=pass header.from=patients.test\r\n ");
	for (int i = 0; i < 30000; i++)
		buf_puts(&raw, "(0123456789)");
	buf_puts(&raw, "\r\n ; dmarc=fail\r\n"
		 "Authentication-Results: mx.test; dmarc=pass header.from=patients.test\r\n"
		 "To: (x\r\n ");
	for (int i = 0; i < 30000; i++)
		buf_puts(&raw, "0123456789");
	buf_puts(&raw, "\r\n ) reply+tokq@reply.example\r\n\r\n");
	scan_top_counts_for_nothing(&raw, &h);
	assert_false(rawhdr_recipients_name(&h, "tokq"));
	rawhdr_free(&h);

	/* a header block that runs past its limit: its last field is cut */
	buf_reset(&raw);
	buf_puts(&raw, "To: x@y.test\r\nFrom: pat@patients.test,");
	while (raw.len < INMSG_MAX_HEADER_BYTES + 10)
		buf_puts(&raw, "\r\n (0123456789)");
	assert_int_equal(rawhdr_scan(raw.data, raw.len, &h, &err), 0);
	assert_false(rawhdr_from_is(&h, "pat@patients.test"));
	rawhdr_free(&h);
	/* one that ends with the message (no body) is whole */
	assert_int_equal(rawhdr_scan("From: pat@patients.test", 23, &h, &err), 0);
	assert_true(rawhdr_from_is(&h, "pat@patients.test"));
	rawhdr_free(&h);
	buf_free(&raw);
}

static void
limits_hold_on_huge_and_endless_headers(void **state)
{
	struct buf raw = BUF_INIT;
	struct rawhdr h;
	struct cp_error err;

	for (int i = 0; i < 200; i++)
		buf_puts(&raw, "Authentication-Results: mx.test; dmarc=none\r\n");
	buf_puts(&raw, "To: ");
	for (int i = 0; i < 100000; i++)
		buf_puts(&raw, "xxxxxxxxxx");
	buf_puts(&raw, "\r\n");
	/* no empty line: the block goes on past the header cap */
	for (int i = 0; i < 200000; i++)
		buf_puts(&raw, " xxxxxxxxxx\r\n");
	cp_error_clear(&err);
	assert_int_equal(rawhdr_scan(raw.data, raw.len, &h, &err), 0);
	assert_int_equal(h.authres.n, RAWHDR_MAX_AUTHRES);
	assert_true(h.recipients_len < RAWHDR_MAX_RECIPIENTS);
	assert_int_equal(strlen(h.recipients), h.recipients_len);
	rawhdr_free(&h);
	buf_free(&raw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(authentication_results_are_read_top_first_unfolded_from_the_header_only),
		cmocka_unit_test(from_fields_and_addresses_are_counted_and_the_one_address_read),
		cmocka_unit_test(a_reply_token_is_found_only_in_recipient_fields),
		cmocka_unit_test(a_reply_token_must_be_an_addresss_tag),
		cmocka_unit_test(cut_fields_fail_closed),
		cmocka_unit_test(limits_hold_on_huge_and_endless_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
