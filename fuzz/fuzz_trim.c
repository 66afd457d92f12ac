/*
 * NAME
 *	fuzz_trim - libFuzzer target: trim_reply
 * DESCRIPTION
 *	The input is the reply text. Checks that both outputs are valid
 *	UTF-8, hold no NUL and no CR, and that the reply is no longer than
 *	the input allows (each input byte yields at most 3 output bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *reply = NULL, *elided = NULL;
	struct cp_error err;
	size_t rl, el;

	if (trim_reply((const char *)data, size, &reply, &elided, &err) < 0) {
		if (reply != NULL || elided != NULL)
			abort();
		return 0;
	}
	if (reply == NULL || elided == NULL)
		abort();
	rl = strlen(reply);
	el = strlen(elided);
	if ((rl && !cp_utf8_valid(reply, rl)) ||
	    (el && !cp_utf8_valid(elided, el)) ||
	    memchr(reply, '\r', rl) || memchr(elided, '\r', el) ||
	    rl > 3 * size + 3 || el > 3 * size + 3)
		abort();
	free(reply);
	free(elided);
	return 0;
}
