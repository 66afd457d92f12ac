/*
 * NAME
 *	fuzz_mimescan - libFuzzer target: the pre-scan of raw message bytes
 * DESCRIPTION
 *	mimescan_check with lowered limits, and the header block measures,
 *	over arbitrary bytes: a result of 0 or -E2BIG, -ELOOP, -ENOMEM with
 *	a reason; a header block never longer than the bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "inmsg.h"
#include "mimescan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *raw = (const char *)data;
	struct inmsg_limits lim;
	struct cp_error err;
	int r;

	inmsg_limits_default(&lim);
	lim.max_parts = 20;
	lim.max_depth = 5;
	cp_error_clear(&err);
	r = mimescan_check(raw, size, &lim, &err);
	if (r != 0 && ((r != -E2BIG && r != -ELOOP && r != -ENOMEM) ||
		       err.text[0] == '\0' || err.code != r))
		abort();
	if (mimescan_header_len(raw, size) > size ||
	    mimescan_header_fields(raw, size) > size)
		abort();
	return 0;
}
