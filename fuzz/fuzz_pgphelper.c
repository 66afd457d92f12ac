/*
 * NAME
 *	fuzz_pgphelper - libFuzzer target for the frames between carepost
 *	and its helpers, gpg's and the parser's (lib/helper.c)
 * DESCRIPTION
 *	helper_frame_parse on the input as a frame body. It must return 0
 *	or -EBADMSG; a 0 must come with at most HELPER_MAX_FIELDS fields
 *	lying inside the input, in order, that re-encode to exactly the
 *	input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helper.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct helper_frame f;
	uint8_t *again;
	size_t off = 8;
	int r = helper_frame_parse(data, size, &f);

	if (r == -EBADMSG)
		return 0;
	if (r != 0 || f.n > HELPER_MAX_FIELDS)
		abort();
	again = malloc(size);
	if (again == NULL)
		return 0;
	memcpy(again, &f.tag, 4);
	memcpy(again + 4, &f.n, 4);
	for (uint32_t i = 0; i < f.n; i++) {
		const uint8_t *p = (const uint8_t *)f.field[i];

		if (p != data + off + 4 || off + 4 + f.len[i] > size)
			abort();
		memcpy(again + off, &f.len[i], 4);
		memcpy(again + off + 4, p, f.len[i]);
		off += 4 + f.len[i];
	}
	if (off != size || memcmp(again, data, size) != 0)
		abort();
	free(again);
	return 0;
}
