/*
 * NAME
 *	fuzz_keymeta - libFuzzer target: keymeta_parse over arbitrary bytes
 * DESCRIPTION
 *	The bytes are one FPR.meta file (lib/keyfile.h). A refusal leaves
 *	the struct zeroed. What parses has a fingerprint of 40 upper-case
 *	hex digits, at most KEYMETA_MAX_ENC subkeys, no negative expiry and
 *	flags of 0 or 1; keymeta_format writes it as JSON of at most
 *	KEYMETA_MAX_JSON bytes that parses back to an equal struct (and
 *	formats again to the same text); keymeta_check, at any time, says 0,
 *	-EKEYREVOKED, -EKEYEXPIRED or -EKEYREJECTED, with a reason that
 *	begins "gpg: key FPR" and holds no other digit.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
flag(int v)
{
	return v == 0 || v == 1;
}

static void
check_at(const struct keymeta *m, long long now)
{
	struct cp_error err;
	const char *p;
	int r;

	cp_error_clear(&err);
	r = keymeta_check(m, now, &err);
	if (r != 0 && r != -EKEYREVOKED && r != -EKEYEXPIRED && r != -EKEYREJECTED)
		abort();
	if (r != keymeta_check(m, now, NULL))
		abort();
	if (r == 0) {
		if (err.code != 0 || err.text[0] != '\0')
			abort();
		return;
	}
	/* the reason: the key's fingerprint, then words, nothing else */
	if (err.code != r || strncmp(err.text, "gpg: key ", 9) != 0 ||
	    strncmp(err.text + 9, m->fpr, 40) != 0)
		abort();
	for (p = err.text + 49; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == ' ' || *p == ':'))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct keymeta zero;
	struct keymeta m, back;
	char *json, *again;

	if (keymeta_parse((const char *)data, size, &m) < 0) {
		if (memcmp(&m, &zero, sizeof(m)) != 0)
			abort();
		return 0;
	}
	if (size > KEYMETA_MAX_JSON || strlen(m.fpr) != 40 ||
	    strspn(m.fpr, "0123456789ABCDEF") != 40 || m.n_enc > KEYMETA_MAX_ENC ||
	    m.expires < 0 || !flag(m.revoked) || !flag(m.unusable))
		abort();
	for (unsigned i = 0; i < m.n_enc; i++)
		if (m.enc[i].expires < 0 || !flag(m.enc[i].revoked) ||
		    !flag(m.enc[i].unusable))
			abort();
	for (unsigned i = m.n_enc; i < KEYMETA_MAX_ENC; i++)
		if (m.enc[i].expires != 0 || m.enc[i].revoked || m.enc[i].unusable)
			abort();

	/* written back: the same struct, the same text again */
	json = keymeta_format(&m);
	if (json == NULL || strlen(json) > KEYMETA_MAX_JSON ||
	    keymeta_parse(json, strlen(json), &back) != 0 ||
	    memcmp(&m, &back, sizeof(m)) != 0)
		abort();
	again = keymeta_format(&back);
	if (again == NULL || strcmp(json, again) != 0)
		abort();
	free(again);
	free(json);

	/* the check at times around what the key says */
	check_at(&m, 0);
	check_at(&m, 1780000000LL);
	check_at(&m, LLONG_MAX);
	if (m.expires > 0) {
		check_at(&m, m.expires - 1);
		check_at(&m, m.expires);
	}
	for (unsigned i = 0; i < m.n_enc; i++)
		if (m.enc[i].expires > 0)
			check_at(&m, m.enc[i].expires);
	return 0;
}
