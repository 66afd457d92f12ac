/*
 * NAME
 *	fuzz_authres - libFuzzer target: authres_check over arbitrary headers
 * DESCRIPTION
 *	The input is split at NUL bytes into up to eight header values; the
 *	trusted id and From domain are fixed so that the fuzzer can reach
 *	the trusted paths. A pass must never come from an untrusted header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	const char *hs[8];
	size_t n = 0;
	struct authres_result r;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (char *p = copy; n < 8 && p <= copy + size; p += strlen(p) + 1)
		hs[n++] = p;
	if (authres_check(hs, n, "mx.example", "example.org", &r) != 0)
		abort();
	if ((r.dmarc_pass || r.dkim_pass || r.spf_pass) && r.trusted_headers == 0)
		abort();
	if (r.dmarc_pass && r.dmarc_fail)
		abort();
	free(copy);
	return 0;
}
