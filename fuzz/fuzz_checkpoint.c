/*
 * NAME
 *	fuzz_checkpoint - libFuzzer target: checkpoint_parse
 * DESCRIPTION
 *	The input is a checkpoint file's text (checkpoint.h). Every block it
 *	gives must lie inside the input, its signed text start with the
 *	first line and end before its signature, its hash be 64 lower-case
 *	hex digits; a refusal must say which line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct span {
	const char *start, *end;
	unsigned blocks, last_line;
};

static int
check(void *ud, const struct checkpoint_block *b)
{
	struct span *sp = ud;

	if (b->text < sp->start || b->text + b->text_len > sp->end ||
	    b->sig != b->text + b->text_len || b->sig + b->sig_len > sp->end ||
	    memcmp(b->text, "carepost audit checkpoint 1\n", 28) != 0 ||
	    strlen(b->hash) != 64 || strspn(b->hash, "0123456789abcdef") != 64 ||
	    b->time < 0 || b->line <= sp->last_line)
		abort();
	sp->last_line = b->line;
	sp->blocks++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span sp = { (const char *)data, (const char *)data + size, 0, 0 };
	char why[128] = "";
	int r;

	r = checkpoint_parse((const char *)data, size, check, &sp, why, sizeof(why));
	if (r < 0 && (r != -EBADMSG || strncmp(why, "line ", 5) != 0))
		abort();
	return 0;
}
