/*
 * NAME
 *	fuzz_autocrypt - libFuzzer target: autocrypt_parse over arbitrary
 *	bytes
 * DESCRIPTION
 *	The bytes are one Autocrypt header value. Whatever they hold: a
 *	refusal leaves nothing behind; an acceptance gives a lower-case
 *	addr-spec of printable ASCII with one '@', a fingerprint of 40
 *	upper-case hex digits that autocrypt_v4_fpr gives again from the
 *	key, and one transferable public key no longer than AUTOCRYPT_MAX_KEY.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autocrypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct autocrypt ac;
	char fpr[AUTOCRYPT_FPR_SIZE];
	size_t n;

	/* the same bytes as a DKIM-Signature value: total, never past them */
	{
		char *sig = malloc(size + 1);
		const char *one[1] = { sig };

		if (sig == NULL)
			return 0;
		memcpy(sig, data, size);
		sig[size] = '\0';
		if (autocrypt_dkim_covers(one, 1, "patients.test") > 1)
			abort();
		free(sig);
	}
	if (autocrypt_parse((const char *)data, size, &ac) < 0) {
		if (ac.key != NULL || ac.keylen != 0)
			abort();
		return 0;
	}
	n = strlen(ac.addr);
	if (n == 0 || strchr(ac.addr, '@') == NULL ||
	    strchr(ac.addr, '@') != strrchr(ac.addr, '@'))
		abort();
	for (size_t i = 0; i < n; i++)
		if (ac.addr[i] <= ' ' || ac.addr[i] >= 127 || isupper((unsigned char)ac.addr[i]))
			abort();
	if (strlen(ac.fpr) != 40 || strspn(ac.fpr, "0123456789ABCDEF") != 40)
		abort();
	if (ac.key == NULL || ac.keylen == 0 || ac.keylen > AUTOCRYPT_MAX_KEY ||
	    autocrypt_one_key(ac.key, ac.keylen) != 0 ||
	    autocrypt_v4_fpr(ac.key, ac.keylen, fpr) != 0 || strcmp(fpr, ac.fpr) != 0)
		abort();
	autocrypt_free(&ac);
	return 0;
}
