/*
 * NAME
 *	fuzz_unsub - libFuzzer target: unsub_token_read
 * DESCRIPTION
 *	The input is a key the portal wrote into the "unsubscribe" database
 *	(a one-click token, or anything). A token that reads must be one
 *	unsub_token makes again byte for byte from its parts under the same
 *	key (so nothing but carepost's own tokens is ever accepted).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unsub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char KEY[] = "fuzz-unsubscribe-key-0123456789";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[UNSUB_TOKEN_SIZE + 8], again[UNSUB_TOKEN_SIZE], cat[16];
	uint8_t thread[TOKEN_THREAD_BYTES];
	size_t rcpt = 0;

	if (size >= sizeof(text))
		size = sizeof(text) - 1;
	memcpy(text, data, size);
	text[size] = '\0';
	if (unsub_token_read(KEY, sizeof(KEY) - 1, text, thread, &rcpt, cat) != 0)
		return 0;
	if (unsub_token(KEY, sizeof(KEY) - 1, thread, rcpt, cat, again) != 0 ||
	    strcmp(again, text) != 0)
		abort();
	return 0;
}
