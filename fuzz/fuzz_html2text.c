/*
 * NAME
 *	fuzz_html2text - libFuzzer target: html2text over arbitrary HTML
 * DESCRIPTION
 *	The bytes are made valid UTF-8 first (as the MIME walk does), then
 *	turned into text: it must succeed and give valid UTF-8, and never
 *	more text than a bound linear in the input.
 */
#include <stdint.h>
#include <stdlib.h>

#include "buf.h"
#include "html2text.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf in = BUF_INIT, out = BUF_INIT;

	if (buf_append_text(&in, (const char *)data, size) < 0 ||
	    buf_append(&in, "", 0) < 0)
		abort();
	if (html2text(in.data, in.len, &out) < 0)
		abort();
	if (out.data == NULL || !cp_utf8_valid(out.data, out.len))
		abort();
	if (out.len > 4 * in.len + 1)	/* "\n" per tag at most, entities shrink */
		abort();
	buf_free(&in);
	buf_free(&out);
	return 0;
}
