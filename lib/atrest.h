/*
 * NAME
 *	atrest - envelope encryption of data at rest: AES-256-GCM under data
 *	keys that only the store key can unwrap
 * SYNOPSIS
 *	#include "atrest.h"
 *
 *	struct atrest *a;
 *	atrest_new(store, pgp, store_fpr, &a, &err);
 *	atrest_seal(a, now, aad, aadlen, plain, len, &blob, dek_id, &err);
 *	... write blob and dek_id in a record ...
 *	atrest_open(a, dek_id, aad, aadlen, blob, bloblen, &plain, &err);
 *	atrest_free(a);
 * DESCRIPTION
 *	A data key (DEK) is 32 random bytes (libgcrypt's strong random, in
 *	its secure memory). atrest_seal makes one at its first call, and a
 *	new one when the current one is older than ATREST_DEK_MAX_AGE: so a
 *	daemon run (or a reload) and each day of a long run have their own.
 *	A new DEK is wrapped once through GPGME to store_fpr (pgp_encrypt_to:
 *	an ASCII-armored OpenPGP message; the secret stays in gpg-agent) and
 *	written to the store's meta database as "dek:ID" in its own write
 *	transaction, committed before anything sealed with it can be written.
 *	ID is 16 random hex digits. The meta value is
 *	{"alg":"aes-256-gcm","store_key":FPR,"created":T,"wrapped":ARMOR}.
 *
 *	atrest_seal encrypts plain with AES-256-GCM under the current DEK,
 *	with a fresh random 96-bit nonce and aad as additional authenticated
 *	data (the caller binds the blob to where it is stored: the inbox
 *	binds it to the record's key, so a blob copied into another record
 *	does not open). It appends to blob the base64 (no line breaks) of
 *	nonce (12 bytes) | ciphertext | tag (16 bytes), and writes the DEK's
 *	ID to dek_id.
 *
 *	atrest_open reverses it: the DEK named dek_id is read from meta and
 *	unwrapped with pgp (one gpg run) the first time, then kept (at most
 *	ATREST_CACHE keys; the oldest is wiped to make room). A DEK made by
 *	this struct is known without gpg.
 *
 *	Key material lives only in gcry_malloc_secure memory (locked, never
 *	swapped) and is wiped when dropped; atrest_free wipes everything. A
 *	plaintext that atrest_open hands out is the caller's to wipe.
 * ERRORS
 *	-EINVAL	atrest_new: no store or no pgp. store_fpr is not checked
 *		there: one that is not a 40-digit fingerprint fails when
 *		atrest_seal wraps a new DEK (-EINVAL from pgp_encrypt_to)
 *	-ENOKEY	no meta record for dek_id, or atrest_seal without a store key
 *	-EBADMSG	the blob or dek_id is malformed, or the blob fails
 *		authentication (tampered, wrong key, wrong aad), or the
 *		wrapped DEK is not 32 bytes
 *	-ENOSYS	atrest_new: libgcrypt has no AES-256-GCM
 *	-EIO	a libgcrypt cipher call failed
 *	-EFBIG	atrest_open: plain cannot grow to hold the content (its max,
 *		or out of memory)
 *	-ENOMEM	out of memory (secure memory for keys included)
 *	others	from pgp (gpg cannot wrap or unwrap: key missing, agent
 *		down) and the store; err says which step, never data.
 * OWNERSHIP
 *	atrest_new borrows store and pgp (they must outlive it) and copies
 *	store_fpr (may be NULL: open only); atrest_free wipes and frees
 *	what it made. Output is appended to the caller's buffer (blob,
 *	plain); atrest_seal writes the DEK's ID into the caller's dek_id.
 * THREAD SAFETY
 *	One thread uses a struct atrest at a time (it uses pgp).
 */
#ifndef CAREPOST_ATREST_H
#define CAREPOST_ATREST_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "pgp.h"
#include "store.h"
#include "util.h"

#define ATREST_DEK_ID_SIZE	17		/* 16 hex digits + NUL */
#define ATREST_DEK_MAX_AGE	86400		/* seconds */
#define ATREST_CACHE		64
#define ATREST_OVERHEAD		(12 + 16)	/* nonce + tag, before base64 */

struct atrest;

int atrest_new(struct store *store, struct pgp *pgp, const char *store_fpr,
	       struct atrest **out, struct cp_error *err);
void atrest_free(struct atrest *a);

int atrest_seal(struct atrest *a, int64_t now, const void *aad, size_t aadlen,
		const void *plain, size_t len, struct buf *blob,
		char dek_id[ATREST_DEK_ID_SIZE], struct cp_error *err);

int atrest_open(struct atrest *a, const char *dek_id, const void *aad,
		size_t aadlen, const char *blob, size_t bloblen,
		struct buf *plain, struct cp_error *err);

#endif
