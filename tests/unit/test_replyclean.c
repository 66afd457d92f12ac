/*
 * NAME
 *	test_replyclean - unit tests for lib/replyclean.c
 * DESCRIPTION
 *	Each cleaning step on its own (PGP armour, the unsubscribe footer,
 *	alias quotes, both enclosed-quote forms, quote prefixes) and its
 *	malformed forms: armour without its end, enclosures never closed or
 *	closed by another name, prefixes that are not quotes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "replyclean.h"
#include "util.h"

static void
clean(const char *in, const char *want)
{
	struct buf t = BUF_INIT;

	assert_int_equal(buf_puts(&t, in), 0);
	assert_int_equal(replyclean_run(&t), 0);
	if (strcmp(t.data ? t.data : "", want) != 0)
		fail_msg("cleaned to [%s], want [%s]", t.data ? t.data : "", want);
	buf_free(&t);
}

static void
white_space_and_pgp_armour_go(void **state)
{
	clean("  \n\nhello\n\n  ", "hello");
	clean("", "");
	clean("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nsigned words\n"
	      "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n",
	      "signed words");
	/* armour cut short: what cannot be recognised stays */
	clean("words\n-----BEGIN PGP SIGNATURE-----\nabc\n",
	      "words\n-----BEGIN PGP SIGNATURE-----\nabc");
}

static void
unsubscribe_footer_goes(void **state)
{
	clean("Thanks!\n\nUnsubscribe: <mailto:u@list.example>\n", "Thanks!");
	clean("Thanks!\nUnsubscribe: u@list.example\n<http://list.example/u/1>",
	      "Thanks!");
	/* no address in it, or not at the end: kept */
	clean("Thanks!\n\nUnsubscribe: https://list.example/u/123",
	      "Thanks!\n\nUnsubscribe: https://list.example/u/123");
	clean("Unsubscribe: u@list.example\nbut keep me", "Unsubscribe: u@list.example\nbut keep me");
	clean("Unsubscribe: @", "Unsubscribe: @");
}

static void
alias_and_enclosed_quotes_become_quote_lines(void **state)
{
	clean("ok\n>>>>> \"Pat\" == Pat Doe <p@x.example> writes:\n> q",
	      "ok\n\n> q");
	clean("ok\n>>> Pat >>>\nold text\nmore\n<<< Pat <<<\nbye",
	      "ok\n> old text\n> more\nbye");
	clean("ok\n>>>>\nold text\n<<<<\nbye", "ok\n> old text\nbye");
	/* never closed, or closed by another name: left as it is */
	clean("ok\n>>> Pat >>>\nold text", "ok\n>>> Pat >>>\nold text");
	clean("ok\n>>> Pat >>>\nold\n<<< Max <<<", "ok\n>>> Pat >>>\nold\n<<< Max <<<");
}

static void
quote_prefixes_become_gt(void **state)
{
	clean("Pat> hello\n| world\n  > > x", "> hello\n> world\n  > > x");
	clean("a|b: a name and a bar, as Ruby reads it", "a>b: a name and a bar, as Ruby reads it");
	clean("12> not a name", "12> not a name");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(white_space_and_pgp_armour_go),
		cmocka_unit_test(unsubscribe_footer_goes),
		cmocka_unit_test(alias_and_enclosed_quotes_become_quote_lines),
		cmocka_unit_test(quote_prefixes_become_gt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
