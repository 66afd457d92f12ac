/*
 * NAME
 *	token - HMAC reply tokens carried in Reply-To addresses
 * SYNOPSIS
 *	#include "token.h"
 *
 *	char tok[TOKEN_SIZE];
 *	token_make(key, keylen, thread_id, expires, tok);
 *	r = token_verify(key, keylen, tok, now, thread_out, &expires, &err);
 * DESCRIPTION
 *	A thread id is TOKEN_THREAD_BYTES random-looking bytes (carepost
 *	derives it from the event id); a token binds it to an expiry time:
 *
 *	    base32(version=1 | thread id (10) | expiry, u32 days since epoch
 *	           | HMAC-SHA256(key, the preceding 15 bytes)[0..10))
 *
 *	lower-case RFC 4648 base32 without padding, 40 characters, so that it
 *	survives case-folding MTAs inside a local part "reply+TOKEN@domain".
 *	Verification is constant-time in the MAC comparison and accepts
 *	upper case. token_verify returns -EBADMSG for anything malformed or
 *	forged, -ETIME when the MAC is good but the expiry has passed.
 *	Keys are at least 16 bytes (-EINVAL otherwise).
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_TOKEN_H
#define CAREPOST_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define TOKEN_THREAD_BYTES	10
#define TOKEN_SIZE		41	/* 40 characters + NUL */

int token_make(const void *key, size_t keylen,
	       const uint8_t thread[TOKEN_THREAD_BYTES], int64_t expires,
	       char out[TOKEN_SIZE]);
int token_verify(const void *key, size_t keylen, const char *token,
		 int64_t now, uint8_t thread[TOKEN_THREAD_BYTES],
		 int64_t *expires, struct cp_error *err);

/* token_thread_from_id - the thread id for an event id (SHA-256 prefix). */
void token_thread_from_id(const char *event_id,
			  uint8_t thread[TOKEN_THREAD_BYTES]);

#endif
