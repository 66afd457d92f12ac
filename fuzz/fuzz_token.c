/*
 * NAME
 *	fuzz_token - libFuzzer target for the reply tokens (lib/token.c)
 * DESCRIPTION
 *	1. token_verify on the input as a token string (arbitrary bytes,
 *	   NUL-terminated copy), with a fixed key: it must return 0,
 *	   -EBADMSG or -ETIME and nothing else; a 0 must come with a thread
 *	   id that re-makes the same token (modulo case).
 *	2. The input as an event id: token_thread_from_id, token_make,
 *	   token_verify must round-trip the thread id and expiry.
 *	3. The input as a recipient tag: token_rcpt_tag_verify returns 0 or
 *	   -EBADMSG, and 0 only for the tag token_rcpt_tag makes (modulo
 *	   case); the made tag verifies, and not under the other label.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

static const char fuzz_key[] = "carepost-fuzz-key-0123456789abcd";
#define FUZZ_KEYLEN (sizeof(fuzz_key) - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_verify(const uint8_t *data, size_t size)
{
	char *tok = malloc(size + 1);
	uint8_t thread[TOKEN_THREAD_BYTES];
	char again[TOKEN_SIZE];
	int64_t expires = 0;
	struct cp_error err = { 0, "" };
	size_t i;
	int r;

	if (tok == NULL)
		return;
	memcpy(tok, data, size);
	tok[size] = '\0';
	r = token_verify(fuzz_key, FUZZ_KEYLEN, tok, 1700000000, thread,
			 &expires, &err);
	if (r != 0 && r != -EBADMSG && r != -ETIME)
		abort();
	if (r != 0 && err.code != r)
		abort();
	if (r == 0 || r == -ETIME) {
		/* Only possible with a forged MAC: report it loudly. */
		if (token_make(fuzz_key, FUZZ_KEYLEN, thread, expires,
			       again) != 0)
			abort();
		for (i = 0; i < TOKEN_SIZE - 1; i++)
			if ((tok[i] | 0x20) != again[i])
				abort();
	}
	free(tok);
}

static void
fuzz_round_trip(const uint8_t *data, size_t size)
{
	char *id = malloc(size + 1);
	uint8_t thread[TOKEN_THREAD_BYTES], out[TOKEN_THREAD_BYTES];
	char tok[TOKEN_SIZE];
	int64_t expires = 0, want;
	uint32_t days = 0;
	size_t i;

	if (id == NULL)
		return;
	memcpy(id, data, size);
	id[size] = '\0';
	for (i = 0; i < size && i < 4; i++)
		days = (days << 8) | data[i];
	want = (int64_t)days * 86400;

	token_thread_from_id(id, thread);
	if (token_make(fuzz_key, FUZZ_KEYLEN, thread, want, tok) != 0)
		abort();
	if (strlen(tok) != TOKEN_SIZE - 1)
		abort();
	if (token_verify(fuzz_key, FUZZ_KEYLEN, tok, want, out, &expires,
			 NULL) != 0)
		abort();
	if (memcmp(out, thread, TOKEN_THREAD_BYTES) != 0 || expires != want)
		abort();
	if (token_verify(fuzz_key, FUZZ_KEYLEN, tok, want + 1, out, &expires,
			 NULL) != -ETIME)
		abort();
	free(id);
}

static void
fuzz_tag(const uint8_t *data, size_t size)
{
	static const uint8_t thread[TOKEN_THREAD_BYTES] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	char *tag = malloc(size + 1);
	char made[TOKEN_TAG_SIZE];
	size_t rcpt = size % 17, i;
	int r;

	if (tag == NULL)
		return;
	memcpy(tag, data, size);
	tag[size] = '\0';
	if (token_rcpt_tag(fuzz_key, FUZZ_KEYLEN, TOKEN_LABEL_VERP, thread, rcpt, made) != 0)
		abort();
	r = token_rcpt_tag_verify(fuzz_key, FUZZ_KEYLEN, TOKEN_LABEL_VERP, thread, rcpt, tag);
	if (r != 0 && r != -EBADMSG)
		abort();
	if (r == 0)
		for (i = 0; i < TOKEN_TAG_SIZE; i++)
			if ((tag[i] | 0x20) != (made[i] | 0x20))
				abort();
	if (token_rcpt_tag_verify(fuzz_key, FUZZ_KEYLEN, TOKEN_LABEL_VERP, thread, rcpt,
				  made) != 0 ||
	    token_rcpt_tag_verify(fuzz_key, FUZZ_KEYLEN, TOKEN_LABEL_MESSAGE_ID, thread,
				  rcpt, made) != -EBADMSG)
		abort();
	free(tag);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	fuzz_verify(data, size);
	fuzz_round_trip(data, size);
	fuzz_tag(data, size);
	return 0;
}
