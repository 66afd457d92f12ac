/*
 * NAME
 *	token - HMAC reply tokens and tags: what carepost's addresses and
 *	Message-IDs carry so that only carepost could have made them
 * SYNOPSIS
 *	#include "token.h"
 *
 *	char tok[TOKEN_SIZE], tag[TOKEN_TAG_SIZE];
 *	token_make(key, keylen, thread_id, expires, tok);
 *	r = token_verify(key, keylen, tok, now, thread_out, &expires, &err);
 *	token_rcpt_tag(key, keylen, TOKEN_LABEL_VERP, thread_id, n, tag);
 *	r = token_rcpt_tag_verify(key, keylen, TOKEN_LABEL_VERP, thread_id,
 *				  n, tag);
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
 *	upper case. token_make rounds the expiry up to a whole day (UTC), so
 *	a token never expires before the time asked for; token_verify
 *	reports the rounded time, and a token is expired when now is past
 *	it. Keys are at least 16 bytes.
 *
 *	A tag binds bytes to the key for one use, named by a label:
 *
 *	    base32(HMAC-SHA256(key, label NUL data))[0..10)
 *
 *	10 lower-case base32 characters (50 bits: an online forgery that
 *	costs an email per guess). A recipient tag covers a thread id and a
 *	recipient index: carepost's Message-IDs "<THREAD.rN.TAG@domain>"
 *	carry one made with TOKEN_LABEL_MESSAGE_ID, its VERP envelope
 *	senders "bounce+TOKEN.rN.TAG@bounce_domain" one made with
 *	TOKEN_LABEL_VERP (with the 40-character token that is a local part
 *	of 62 octets for N < 100, within RFC 5321's 64), so that a delivery
 *	report must name something only carepost could have sent, for that
 *	very recipient. token_tag_verify accepts upper case and compares in
 *	constant time.
 * ERRORS
 *	token_make: -EINVAL (a key shorter than 16 bytes, a NULL argument),
 *	-ERANGE (expires negative, or past what a u32 count of days holds),
 *	-EIO (libgcrypt).
 *	token_verify: -EBADMSG for anything malformed or forged (missing,
 *	not 40 characters, a character outside base32, a MAC mismatch, an
 *	unknown version), -ETIME when the MAC is good but the expiry has
 *	passed (thread and expires are still filled: they are authentic),
 *	-EINVAL for a short key, -EIO (libgcrypt); err says which, never
 *	the token.
 *	token_tag and token_rcpt_tag: -EINVAL (a short key, a label that
 *	does not start with a letter, NULL data with a length, a recipient
 *	index past UINT32_MAX), -EIO (libgcrypt).
 *	token_tag_verify and token_rcpt_tag_verify: 0, -EBADMSG for a tag
 *	that is malformed (checked first, whatever the key) or forged, else
 *	token_tag's errors.
 *	token_thread_from_id does not fail.
 * OWNERSHIP
 *	Keys and data are borrowed for the call and not kept; results go
 *	into the caller's fixed-size arrays (TOKEN_SIZE, TOKEN_TAG_SIZE,
 *	TOKEN_THREAD_BYTES). Nothing is allocated.
 * THREAD SAFETY
 *	Reentrant (libgcrypt is initialised once, under pthread_once).
 */
#ifndef CAREPOST_TOKEN_H
#define CAREPOST_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define TOKEN_THREAD_BYTES	10
#define TOKEN_SIZE		41	/* 40 characters + NUL */
#define TOKEN_TAG_CHARS		10
#define TOKEN_TAG_SIZE		11	/* 10 characters + NUL */

/* The labels of carepost's recipient tags. */
#define TOKEN_LABEL_MESSAGE_ID	"carepost message-id"
#define TOKEN_LABEL_VERP	"carepost verp"
#define TOKEN_LABEL_CALENDAR	"carepost calendar uid"

int token_make(const void *key, size_t keylen,
	       const uint8_t thread[TOKEN_THREAD_BYTES], int64_t expires,
	       char out[TOKEN_SIZE]);
int token_verify(const void *key, size_t keylen, const char *token,
		 int64_t now, uint8_t thread[TOKEN_THREAD_BYTES],
		 int64_t *expires, struct cp_error *err);

/* token_thread_from_id - the thread id for an event id (SHA-256 prefix). */
void token_thread_from_id(const char *event_id,
			  uint8_t thread[TOKEN_THREAD_BYTES]);

/* token_tag - the tag of data[0..len) for label (see DESCRIPTION). */
int token_tag(const void *key, size_t keylen, const char *label,
	      const void *data, size_t len, char out[TOKEN_TAG_SIZE]);
int token_tag_verify(const void *key, size_t keylen, const char *label,
		     const void *data, size_t len, const char *tag);

/* token_rcpt_tag - the tag of recipient index rcpt of a thread. */
int token_rcpt_tag(const void *key, size_t keylen, const char *label,
		   const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt,
		   char out[TOKEN_TAG_SIZE]);
int token_rcpt_tag_verify(const void *key, size_t keylen, const char *label,
			  const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt,
			  const char *tag);

#endif
