/*
 * NAME
 *	fuzz_rawhdr - libFuzzer target: rawhdr_scan over arbitrary messages
 * DESCRIPTION
 *	Whatever the bytes, the scan keeps its limits (Authentication-Results
 *	values, the recipients' text), the From address it reads is on one
 *	line, and each From field counts one address at least.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rawhdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rawhdr h;
	struct cp_error err;

	if (rawhdr_scan((const char *)data, size, &h, &err) < 0)
		return 0;
	if (h.authres.n > RAWHDR_MAX_AUTHRES || h.recipients == NULL ||
	    h.recipients_len >= RAWHDR_MAX_RECIPIENTS)
		abort();
	for (size_t i = 0; i < h.authres.n; i++)
		if (strlen(h.authres.v[i]) > RAWHDR_MAX_VALUE)
			abort();
	if (strchr(h.from_addr, '\n') != NULL)
		abort();
	if (h.from_fields > 0 && h.from_addresses < h.from_fields)
		abort();
	(void)rawhdr_recipients_name(&h, "tok");
	(void)rawhdr_from_is(&h, "a@b.test");
	rawhdr_free(&h);
	return 0;
}
