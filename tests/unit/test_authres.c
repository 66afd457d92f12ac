/*
 * NAME
 *	test_authres - unit tests for Authentication-Results evaluation
 * DESCRIPTION
 *	Trusted versus forged authserv-ids, DMARC pass and fail, DKIM
 *	alignment, RFC 8601 syntax (comments, quoted strings, versions,
 *	"none") and garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "util.h"
#include "inmsg.h"

#define TRUSTED "mx.clinic.example"

static struct authres_result
check1(const char *h, const char *from)
{
	struct authres_result r;
	const char *hs[1] = { h };

	assert_int_equal(authres_check(hs, 1, TRUSTED, from, &r), 0);
	return r;
}

static void
trusted_dmarc_pass_counts(void **state)
{
	struct authres_result r = check1(
		"mx.clinic.example; spf=pass smtp.mailfrom=patient.example;"
		" dkim=pass header.d=patient.example header.s=s1;"
		" dmarc=pass (p=reject dis=none) header.from=patient.example",
		"patient.example");

	assert_int_equal(r.trusted_headers, 1);
	assert_int_equal(r.ignored_headers, 0);
	assert_true(r.dmarc_pass);
	assert_false(r.dmarc_fail);
	assert_true(r.dkim_pass);
	assert_true(r.dkim_aligned_pass);
	assert_string_equal(r.dkim_domain, "patient.example");
	assert_true(r.spf_pass);
}

static void
untrusted_authserv_id_is_ignored(void **state)
{
	struct authres_result r = check1(
		"evil.example; dmarc=pass header.from=patient.example; dkim=pass header.d=patient.example",
		"patient.example");

	assert_int_equal(r.trusted_headers, 0);
	assert_int_equal(r.ignored_headers, 1);
	assert_false(r.dmarc_pass);
	assert_false(r.dkim_pass);
	assert_false(r.dkim_aligned_pass);
	/* a prefix or suffix of the trusted id is not the trusted id */
	r = check1("mx.clinic.example.evil.example; dmarc=pass", "patient.example");
	assert_false(r.dmarc_pass);
	r = check1("clinic.example; dmarc=pass", "patient.example");
	assert_false(r.dmarc_pass);
	/* case-insensitive match, and a quoted authserv-id */
	r = check1("MX.Clinic.Example; dmarc=pass header.from=patient.example",
		   "patient.example");
	assert_true(r.dmarc_pass);
	r = check1("\"mx.clinic.example\"; dmarc=pass header.from=patient.example",
		   "patient.example");
	assert_true(r.dmarc_pass);
}

static void
dmarc_fail_is_not_pass_and_fail_wins(void **state)
{
	const char *hs[2] = {
		"mx.clinic.example; dmarc=fail (p=reject) header.from=patient.example",
		"mx.clinic.example; dmarc=pass header.from=patient.example",
	};
	struct authres_result r = check1(hs[0], "patient.example");

	assert_false(r.dmarc_pass);
	assert_true(r.dmarc_fail);
	assert_int_equal(authres_check(hs, 2, TRUSTED, "patient.example", &r), 0);
	assert_int_equal(r.trusted_headers, 2);
	assert_int_equal(r.below_top, 1);
	assert_false(r.dmarc_pass);
	assert_true(r.dmarc_fail);
	/* a pass for another From domain does not count */
	r = check1("mx.clinic.example; dmarc=pass header.from=other.example",
		   "patient.example");
	assert_false(r.dmarc_pass);
}

/*
 * Only the topmost trusted header is the receiving MTA's: a forged pass
 * with the trusted id further down (the MTA did not strip it) changes
 * nothing, and the MTA's own verdict stands either way.
 */
static void
only_the_topmost_trusted_header_counts(void **state)
{
	const char *none_over_pass[3] = {
		"mx.clinic.example; spf=none smtp.mailfrom=patient.example; dmarc=none header.from=patient.example",
		"some.relay.example; dmarc=pass header.from=patient.example",
		"mx.clinic.example; dkim=pass header.d=patient.example; dmarc=pass header.from=patient.example",
	};
	const char *pass_over_fail[2] = {
		"mx.clinic.example; dmarc=pass header.from=patient.example",
		"mx.clinic.example; dmarc=fail header.from=patient.example",
	};
	const char *nothing_over_pass[2] = {
		"mx.clinic.example; spf=pass smtp.mailfrom=patient.example",
		"mx.clinic.example; dkim=pass header.d=patient.example; dmarc=pass header.from=patient.example",
	};
	struct authres_result r;

	assert_int_equal(authres_check(none_over_pass, 3, TRUSTED, "patient.example", &r), 0);
	assert_false(r.dmarc_pass);
	assert_false(r.dkim_pass);
	assert_false(r.dkim_aligned_pass);
	assert_int_equal(r.trusted_headers, 2);
	assert_int_equal(r.below_top, 1);
	assert_int_equal(r.ignored_headers, 1);
	assert_int_equal(authres_check(pass_over_fail, 2, TRUSTED, "patient.example", &r), 0);
	assert_true(r.dmarc_pass);
	assert_false(r.dmarc_fail);
	assert_int_equal(authres_check(nothing_over_pass, 2, TRUSTED, "patient.example", &r), 0);
	assert_false(r.dmarc_pass);
	assert_false(r.dkim_aligned_pass);
	assert_true(r.spf_pass);
}

/* A DMARC pass must name this message's From domain, once. */
static void
dmarc_pass_needs_one_header_from_equal_to_from(void **state)
{
	static const struct {
		const char *h, *from;
		int pass;
	} cases[] = {
		{ "mx.clinic.example; dmarc=pass", "patient.example", 0 },
		{ "mx.clinic.example; dmarc=pass header.from=patient.example", NULL, 0 },
		{ "mx.clinic.example; dmarc=pass header.from=patient.example "
		  "header.from=evil.example", "patient.example", 0 },
		{ "mx.clinic.example; dmarc=pass header.from=evil.example "
		  "header.from=patient.example", "patient.example", 0 },
		/* two dmarc verdicts in the one header: anything but pass decides */
		{ "mx.clinic.example; dmarc=pass header.from=patient.example; "
		  "dmarc=none header.from=patient.example", "patient.example", 0 },
		{ "mx.clinic.example; dmarc=pass header.from=patient.example; "
		  "dmarc=pass header.from=patient.example", "patient.example", 1 },
		{ "mx.clinic.example; dmarc=pass header.from=Patient.Example",
		  "patient.example", 1 },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		struct authres_result r = check1(cases[i].h, cases[i].from);

		if (r.dmarc_pass != cases[i].pass)
			fail_msg("case %zu: %s: dmarc_pass %d", i, cases[i].h, r.dmarc_pass);
	}
}

static void
forged_second_header_from_other_id_changes_nothing(void **state)
{
	const char *hs[2] = {
		"mx.clinic.example; dkim=fail header.d=patient.example; dmarc=fail header.from=patient.example",
		"patient-forged.example; dkim=pass header.d=patient.example; dmarc=pass header.from=patient.example",
	};
	struct authres_result r;

	assert_int_equal(authres_check(hs, 2, TRUSTED, "patient.example", &r), 0);
	assert_int_equal(r.trusted_headers, 1);
	assert_int_equal(r.ignored_headers, 1);
	assert_false(r.dmarc_pass);
	assert_false(r.dkim_pass);
	assert_false(r.dkim_aligned_pass);
}

static void
dkim_alignment_is_relaxed_suffix(void **state)
{
	struct authres_result r;

	r = check1("mx.clinic.example; dkim=pass header.d=example.org", "mail.example.org");
	assert_true(r.dkim_aligned_pass);
	assert_string_equal(r.dkim_domain, "example.org");
	r = check1("mx.clinic.example; dkim=pass header.d=mail.example.org", "example.org");
	assert_true(r.dkim_aligned_pass);
	r = check1("mx.clinic.example; dkim=pass header.i=@Example.ORG", "example.org");
	assert_true(r.dkim_aligned_pass);
	/* misaligned: another domain, a lookalike suffix, a bare TLD */
	r = check1("mx.clinic.example; dkim=pass header.d=mailer.example.net", "example.org");
	assert_true(r.dkim_pass);
	assert_false(r.dkim_aligned_pass);
	assert_string_equal(r.dkim_domain, "");
	r = check1("mx.clinic.example; dkim=pass header.d=badexample.org", "example.org");
	assert_false(r.dkim_aligned_pass);
	r = check1("mx.clinic.example; dkim=pass header.d=org", "example.org");
	assert_false(r.dkim_aligned_pass);
	/* aligned but not a pass */
	r = check1("mx.clinic.example; dkim=fail header.d=example.org", "example.org");
	assert_false(r.dkim_pass);
	assert_false(r.dkim_aligned_pass);
	/* two signatures: the aligned one passes */
	r = check1("mx.clinic.example; dkim=pass header.d=esp.example; dkim=pass header.d=example.org",
		   "example.org");
	assert_true(r.dkim_aligned_pass);
	assert_string_equal(r.dkim_domain, "example.org");
	assert_int_equal(authres_domain_aligned("a.b", NULL), 0);
	assert_int_equal(authres_domain_aligned("example.org", "EXAMPLE.org"), 1);
	assert_int_equal(authres_domain_aligned("example.org", "org"), 0);
}

static void
rfc8601_syntax_versions_comments_quotes_none(void **state)
{
	struct authres_result r;

	/* RFC 8601 appendix B examples, adapted */
	r = check1("mx.clinic.example 1; none", "example.org");
	assert_int_equal(r.trusted_headers, 1);
	assert_false(r.dmarc_pass);
	r = check1("mx.clinic.example (the (nested) comment) 1 ;\r\n"
		   "   dkim/1 (signature ok) = pass (good)\r\n"
		   "     reason=\"signature; verified\" header.d = \"example.org\" ;\r\n"
		   "   dmarc=pass header.from=example.org", "example.org");
	assert_true(r.dkim_aligned_pass);
	assert_true(r.dmarc_pass);
	r = check1("mx.clinic.example; dmarc=PASS header.from=EXAMPLE.ORG;", "example.org");
	assert_true(r.dmarc_pass);
	r = check1("mx.clinic.example; auth=pass (cram-md5) smtp.auth=sender@example.net;"
		   " spf=pass smtp.mailfrom=example.net; sender-id=pass header.from=example.net",
		   "example.net");
	assert_true(r.spf_pass);
	assert_false(r.dmarc_pass);
	/* a header that cannot be read to its end counts for nothing, not
	 * even the verdicts before the garbage (a server may have copied the
	 * rest from the message: an unclosed comment or quote swallows the
	 * verdict it wrote after it) */
	r = check1("mx.clinic.example; dkim=pass header.d=example.org; dmarc=pass = = ;; dmarc=pass",
		   "example.org");
	assert_false(r.dkim_aligned_pass);
	assert_false(r.dmarc_pass);
	r = check1("mx.clinic.example; dmarc=pass header.from=example.org; ( dmarc=fail",
		   "example.org");
	assert_false(r.dmarc_pass);
	r = check1("mx.clinic.example; dmarc=pass header.from=example.org;"
		   " spf=pass smtp.mailfrom=\"x; dmarc=fail", "example.org");
	assert_false(r.dmarc_pass);
	assert_false(r.spf_pass);
	/* a trailing ";" and "; none" end a header cleanly */
	r = check1("mx.clinic.example; dmarc=pass header.from=example.org;", "example.org");
	assert_true(r.dmarc_pass);
	r = check1("mx.clinic.example; none", "example.org");
	assert_int_equal(r.trusted_headers, 1);
	assert_false(r.dmarc_pass);
}

static void
garbage_and_bad_arguments(void **state)
{
	static const char *const junk[] = {
		"", ";;;", "(", "(((((unclosed", "\"unterminated", "mx.clinic.example",
		"mx.clinic.example;", "mx.clinic.example; dmarc", "mx.clinic.example; dmarc=",
		"mx.clinic.example; dmarc=(x", "mx.clinic.example; =pass",
		"mx.clinic.example; dmarc=\"pass\"", "\x01\x02\xff\xfe",
		"mx.clinic.example; dmarc=pass header.from=\"unterminated",
	};
	struct authres_result r;
	char big[40000];
	const char *hs[2] = { NULL, big };

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		r = check1(junk[i], "example.org");
		assert_false(r.dmarc_pass);
		assert_false(r.dkim_aligned_pass);
	}
	/* a very long header is read up to the limit, without harm */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "mx.clinic.example; dmarc=pass header.from=", 42);
	assert_int_equal(authres_check(hs, 2, TRUSTED, "example.org", &r), 0);
	assert_false(r.dmarc_pass);
	assert_int_equal(authres_check(NULL, 1, TRUSTED, "example.org", &r), -EINVAL);
	assert_int_equal(authres_check(hs, 0, "", "example.org", &r), -EINVAL);
	assert_int_equal(authres_check(hs, 0, TRUSTED, "example.org", NULL), -EINVAL);
	assert_int_equal(authres_check(NULL, 0, TRUSTED, NULL, &r), 0);
	assert_false(r.dmarc_pass);
}

static void
works_on_headers_from_inmsg(void **state)
{
	static const char raw[] =
		"Authentication-Results: mx.clinic.example;\r\n"
		"\tdkim=pass header.d=patient.example;\r\n"
		"\tdmarc=pass header.from=patient.example\r\n"
		"Authentication-Results: attacker.example; dmarc=pass\r\n"
		"From: p@patient.example\r\n\r\nhi\r\n";
	struct inmsg *m = NULL;
	struct cp_error err;
	struct authres_result r;

	assert_int_equal(inmsg_parse(raw, sizeof(raw) - 1, NULL, &m, &err), 0);
	assert_int_equal(authres_check((const char *const *)m->auth_results.v,
				       m->auth_results.n, TRUSTED,
				       strchr(m->from_addr, '@') + 1, &r), 0);
	assert_int_equal(r.trusted_headers, 1);
	assert_int_equal(r.ignored_headers, 1);
	assert_true(r.dmarc_pass);
	assert_true(r.dkim_aligned_pass);
	inmsg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(trusted_dmarc_pass_counts),
		cmocka_unit_test(untrusted_authserv_id_is_ignored),
		cmocka_unit_test(dmarc_fail_is_not_pass_and_fail_wins),
		cmocka_unit_test(forged_second_header_from_other_id_changes_nothing),
		cmocka_unit_test(only_the_topmost_trusted_header_counts),
		cmocka_unit_test(dmarc_pass_needs_one_header_from_equal_to_from),
		cmocka_unit_test(dkim_alignment_is_relaxed_suffix),
		cmocka_unit_test(rfc8601_syntax_versions_comments_quotes_none),
		cmocka_unit_test(garbage_and_bad_arguments),
		cmocka_unit_test(works_on_headers_from_inmsg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
