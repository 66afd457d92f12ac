/*
 * NAME
 *	fuzz_mailtext - libFuzzer target: header values and charset text
 * DESCRIPTION
 *	The bytes up to the first NUL are a header value (RFC 2047 decoding,
 *	unfolding, angle brackets, first token); the first line names a
 *	charset for the rest as text. Every result is valid UTF-8; header
 *	results hold no control characters, text no NUL or CR.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mailtext.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_header(char *s)
{
	if (s == NULL)
		abort();
	if (!cp_utf8_valid(s, strlen(s)))
		abort();
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7F)
			abort();
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *nl;
	struct buf out = BUF_INIT;
	size_t cl;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_header(mailtext_decode_header(s));
	check_header(mailtext_strip_angle_dup(s));
	check_header(mailtext_addr_dup(s));
	check_header(mailtext_first_token_dup(s));
	nl = memchr(s, '\n', size);
	cl = nl ? (size_t)(nl - s) : 0;
	if (nl)
		*nl = '\0';
	if (mailtext_to_utf8(nl ? s : NULL, s + cl, size - cl, &out) < 0)
		abort();
	if (!cp_utf8_valid(out.data, out.len) || memchr(out.data, '\r', out.len))
		abort();
	buf_free(&out);
	free(s);
	return 0;
}
