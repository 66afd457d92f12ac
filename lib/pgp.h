/*
 * NAME
 *	pgp - OpenPGP through GPGME: sign, encrypt, RFC 3156 PGP/MIME, keys
 * SYNOPSIS
 *	#include "pgp.h"
 *
 *	pgp_global_init();			(once, before threads)
 *	struct pgp *p;
 *	pgp_new(gnupghome, clinic_fpr, &p, &err);
 *	pgp_dup(p, &p2, &err);			(one more, for another thread)
 *	pgp_key_check(p, patient_fpr, &err);	(0: usable for encryption)
 *	pgp_mime_encrypt(p, patient_fpr, inner, inner_len, &out, &err);
 *	pgp_free(p);
 * DESCRIPTION
 *	A struct pgp wraps one gpgme_ctx_t set to OpenPGP. Private keys stay
 *	in gpg-agent; the clinic key must have no passphrase or be preset in
 *	the agent.
 *
 *	pgp_key_check verifies that a fingerprint names a key that can
 *	encrypt now: not expired, revoked, disabled or invalid, with an
 *	encryption-capable subkey (keymeta_check). It reads the key's own
 *	file (keyfile.h: FPR.meta in KEYFILE_DIR of the GnuPG home) when
 *	there is one that reads, with no gpg run; else it lists the key in
 *	the keyring. It returns -ENOKEY (not found), -EKEYEXPIRED,
 *	-EKEYREVOKED or -EKEYREJECTED (other reasons) with a PHI-free reason
 *	naming the fingerprint.
 *
 *	pgp_mime_encrypt signs inner (a complete MIME entity with CRLF line
 *	endings: its headers, a blank line, its body) with the clinic key and
 *	encrypts it to the recipient's fingerprint alone: not to the clinic
 *	key, which is the key patients encrypt their replies to, so that the
 *	clinic's own mail re-sent to carepost by someone else cannot be
 *	decrypted on their behalf (the portal keeps its own record of what
 *	it asked carepost to send). Then it appends to out the RFC 3156
 *	multipart/encrypted entity: the Content-Type header line (with
 *	protocol="application/pgp-encrypted" and a random boundary), a blank
 *	line, the "Version: 1" control part and the ASCII-armored
 *	application/octet-stream part, all CRLF. The recipient's key is
 *	trusted as given (the portal vouches for the fingerprint), and read
 *	from its own file (FPR.key, gpg --recipient-file) when it has one
 *	and the keybox holds KEYFILE_KEYBOX_BYTES or more, else from the
 *	keyring.
 *
 *	pgp_decrypt_verify decrypts data and reports the signature: sets
 *	*signer_fpr (malloc'd, or NULL) to the fingerprint of a fully valid
 *	signature (summary has GPGME_SIGSUM_VALID or GREEN and no RED), and
 *	the plaintext in out.
 *
 *	pgp_decrypt_good_signer is pgp_decrypt_verify for callers that hold
 *	their own trusted fingerprint (the inbound path: a patient's pgp_fpr
 *	on file, trusted as given just as for encryption): *signer_fpr is the
 *	primary fingerprint of a cryptographically good signature by a key
 *	that is not revoked or expired, whatever its validity in the keyring.
 *	The caller must compare it to the fingerprint it trusts.
 *
 *	pgp_verify_detached checks an RFC 3156 multipart/signed: signed_data
 *	is the first part exactly as signed (CRLF line ends), sig the
 *	application/pgp-signature part. *out is the first good signature
 *	(struct pgp_sig, as for pgp_decrypt_signed_by), or empty when no
 *	signature is good: a bad or unknown signature is not an error.
 *	Errors: -EBADMSG for data gpg cannot read, -EIO and others for gpg
 *	itself failing.
 *
 *	pgp_import imports armored or binary keys into the keyring, writes
 *	their own files from it (pgp_keyfiles_sync; a failure there fails
 *	the import, the keys staying in the keyring), and writes the
 *	fingerprint of the first imported (or unchanged) key to fpr_out (41
 *	bytes). Data
 *	that holds only revocation certificates, which gpg applies to keys
 *	it has, yields their number (> 0) and an empty fpr_out (gpg does not
 *	report which keys they revoked). *keys (when not NULL) gets the
 *	number of keys gpg found in the data ("considered"), so that a
 *	caller linking one key to someone can refuse data that held several
 *	(gpg skips a key without a user id and reports the next).
 *
 *	pgp_encrypt_to appends the armored encryption of data to fpr (no
 *	signature): used for data at rest.
 *
 *	pgp_offload moves p's per-message operations (pgp_mime_encrypt,
 *	pgp_decrypt_signed_by, pgp_verify_detached) into a helper process of
 *	their own (see pgphelper.h): GPGME forks the calling process for
 *	each, and a small helper forks far more cheaply than a large daemon.
 *	Results are the same either way. It does nothing when the program
 *	did not call pgphelper_enable; when it fails, p stays in-process
 *	and the error says why. A helper that dies later is noticed by the
 *	next operation, which then runs in-process (with a warning in the
 *	log) as does every later one on p. For our own data (outbound).
 *
 *	pgp_confine is for outside data (inbound mail): p's
 *	pgp_decrypt_signed_by and pgp_verify_detached then run only in a
 *	helper, under hard limits, never in-process. The helper is started
 *	at the first of them (or pgp_decrypt_ahead), so none runs while no
 *	PGP mail comes in. Its gpg processes are in its process group, and:
 *	    - a decryption over the caller's output limit (out->max) fails
 *	      with -EFBIG (or -EMSGSIZE), "gpg output over the 50 MiB limit:
 *	      stopped";
 *	    - an operation whose answer takes longer than time_limit_ms
 *	      (0: no limit) fails with -ETIMEDOUT, "gpg ran over its 10 s
 *	      time limit: stopped";
 *	and in both cases the helper's whole process group is killed
 *	(SIGKILL) before the call returns: no gpg outlives its message. The
 *	next operation starts another helper. A helper found lost (it
 *	died, or could not open GnuPG) is replaced once for the same
 *	operation; if it cannot be started or is lost again, the operation
 *	fails with -EHOSTDOWN and a PHI-free reason (an infrastructure
 *	error: the caller keeps the message and tries later), as it does
 *	in a program that did not call pgphelper_enable. pgp_secret_available
 *	runs there too, under the time limit (see below). The other
 *	operations on p stay in-process (our own data: keys, data at rest).
 * ERRORS
 *	Negative codes with a PHI-free reason (it names a fingerprint at
 *	most). GPGME's errors map to: -ENOKEY (no such key, no secret key),
 *	-EKEYEXPIRED, -EKEYREVOKED, -EKEYREJECTED (unusable key, wrong usage,
 *	ambiguous name, a passphrase needed), -EBADMSG (data gpg cannot read
 *	or decrypt), -ENOMEM, and -EIO for anything else. Besides:
 *	-EINVAL	a fingerprint that is not 40 hex digits; pgp_mime_encrypt
 *		without a signer
 *	-EFBIG	output over the caller's out->max (-ENOMEM when memory ran
 *		out first); in a confined helper the helper is then ended
 *	-ETIMEDOUT	confined: the helper ran over time_limit_ms (ended)
 *	-EHOSTDOWN	confined: no helper could be started, or it was lost
 *		twice; pgp_secret_available: the secret key is out of reach
 *	-ENOPKG	pgp_global_init: GPGME or its OpenPGP engine is missing or
 *		too old
 *	-EPROTONOSUPPORT	pgp_import: the imported key is not a v4 key
 *	pgp_import returns the number (> 0) of revocations it applied when
 *	it imported no key. On failure the output buffer is left as it was.
 * OWNERSHIP
 *	pgp_new hands a struct freed with pgp_free, which also ends its gpg
 *	helper (the helper's process group is killed); gnupghome and the
 *	signer are copied. pgp_dup shares the signer key (a reference) but
 *	nothing else. Output is appended to the caller's buffer; struct
 *	pgp_sig and fpr_out are the caller's. *signer_fpr
 *	(pgp_decrypt_verify, pgp_decrypt_good_signer) and *primary
 *	(pgp_primary_fpr) are malloc'd: the caller free()s them. A
 *	plaintext that a decryption appends is the caller's to wipe.
 * THREAD SAFETY
 *	One struct pgp per thread; distinct ones may be used at once.
 */
#ifndef CAREPOST_PGP_H
#define CAREPOST_PGP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "pgpsig.h"
#include "util.h"

struct pgp;

/* struct pgp_sig, a good signature: see pgpsig.h. */

int pgp_global_init(void);
int pgp_new(const char *gnupghome, const char *signer_fpr, struct pgp **out,
	    struct cp_error *err);
void pgp_free(struct pgp *p);
/*
 * pgp_dup - one more context like p (same GNUPGHOME, same signer), for
 * another thread, without looking the signer up again (pgp_new did).
 */
int pgp_dup(const struct pgp *p, struct pgp **out, struct cp_error *err);

int pgp_offload(struct pgp *p, struct cp_error *err);
/* pgp_confine - outside data only in a helper, under limits (above). */
void pgp_confine(struct pgp *p, unsigned time_limit_ms);
/* pgp_helper_pid - the helper's process id; 0 when p is in-process. */
long pgp_helper_pid(const struct pgp *p);
/*
 * pgp_decrypt_ahead - with a helper, start the decryption a later
 * pgp_decrypt_signed_by(p, data, len, out) (out empty, out->max == max)
 * will ask for, so that it runs while the caller does other work (see
 * pgphelper_decrypt_ahead). 1 when started, 0 otherwise (always without
 * a helper; a confined p starts its helper here); the later call gives
 * the same result either way, limits included.
 */
int pgp_decrypt_ahead(struct pgp *p, const void *data, size_t len, size_t max);

int pgp_key_check(struct pgp *p, const char *fpr, struct cp_error *err);
int pgp_mime_encrypt(struct pgp *p, const char *recipient_fpr,
		     const char *inner, size_t len, struct buf *out,
		     struct cp_error *err);
int pgp_encrypt_to(struct pgp *p, const char *fpr, const void *data,
		   size_t len, struct buf *out, struct cp_error *err);
int pgp_decrypt_verify(struct pgp *p, const void *data, size_t len,
		       struct buf *out, char **signer_fpr,
		       struct cp_error *err);
int pgp_decrypt_good_signer(struct pgp *p, const void *data, size_t len,
			    struct buf *out, char **signer_fpr,
			    struct cp_error *err);
int pgp_verify_detached(struct pgp *p, const void *signed_data, size_t len,
			const void *sig, size_t siglen, struct pgp_sig *out,
			struct cp_error *err);
/*
 * pgp_sign_detached - an armored detached signature of data by p's
 * signer (pgp_new's signer_fpr), appended to out; in this process (not
 * for a pgp offloaded or confined: -EINVAL). gpg's errors as elsewhere.
 */
int pgp_sign_detached(struct pgp *p, const void *data, size_t len,
		      struct buf *out, struct cp_error *err);
/*
 * pgp_decrypt_signed_by - decrypt data into out and report in *sig the
 * first good signature (struct pgp_sig), looked up nowhere: the
 * fingerprint as gpg names it. pgp_primary_fpr maps a subkey's
 * fingerprint to its primary's (one key listing; the fingerprint itself
 * when the key is not in the keyring), as a malloc'd string.
 */
int pgp_decrypt_signed_by(struct pgp *p, const void *data, size_t len,
			  struct buf *out, struct pgp_sig *sig,
			  struct cp_error *err);
int pgp_primary_fpr(struct pgp *p, const char *fpr, char **primary,
		    struct cp_error *err);
int pgp_import(struct pgp *p, const void *data, size_t len,
	       char fpr_out[PGP_FPR_SIZE], int *keys, struct cp_error *err);
/* pgp_own_key_check - pgp_key_check from the keyring alone: for the
 * clinic's own keys, which an admin renews with gpg itself. */
int pgp_own_key_check(struct pgp *p, const char *fpr, struct cp_error *err);

/*
 * pgp_keyfiles_sync - write the key files (keyfile.h) of the keys fprs
 * names (n of them), or of every key in the keyring when fprs is NULL,
 * from the keyring as it is now: one key listing and one export per 256
 * keys, and only files whose content changes are written (*written says
 * how many keys). pgp_import calls it for what it imported (for every
 * key when the data held revocations); `carepostctl key sync` calls it
 * for keys put in the keyring by other means (gpg itself, an older
 * carepost). Nothing to do when p has no key directory.
 */
int pgp_keyfiles_sync(struct pgp *p, const char *const *fprs, size_t n,
		      size_t *written, struct cp_error *err);

/* pgp_key_expires - expiry (epoch) of fpr's primary key; 0 if never. */
int pgp_key_expires(struct pgp *p, const char *fpr, long long *expires,
		    struct cp_error *err);

/*
 * pgp_key_table - every public key in the keyring, in one gpg run: its
 * primary fingerprint, when it stops (or stopped) being usable to encrypt
 * to (the latest expiry among its encryption subkeys that are not
 * revoked, no later than the primary key's; 0: never), and its state at
 * now: PGP_KEY_OK, _REVOKED
 * (or disabled, or invalid), _EXPIRED (that date is past at now,
 * or gpg says the key has expired), _NO_ENCRYPTION (no encryption subkey at all). Sorted by
 * fingerprint for pgp_key_table_find (bsearch). *out is the caller's to
 * free().
 */
enum pgp_key_state {
	PGP_KEY_OK, PGP_KEY_EXPIRED, PGP_KEY_REVOKED, PGP_KEY_NO_ENCRYPTION,
};

struct pgp_key_info {
	char fpr[PGP_FPR_SIZE];
	long long expires;
	enum pgp_key_state state;
};

int pgp_key_table(struct pgp *p, long long now, struct pgp_key_info **out,
		  size_t *n, struct cp_error *err);
const struct pgp_key_info *pgp_key_table_find(const struct pgp_key_info *t,
					      size_t n, const char *fpr);

/*
 * pgp_keys_expiring - count the public keys in the keyring that serve for
 * encryption now and stop after now and at most horizon seconds later
 * (pgp_key_table's expiry and state): the admin's early warning.
 */
int pgp_keys_expiring(struct pgp *p, long long now, long long horizon,
		      size_t *n, struct cp_error *err);

/*
 * pgp_secret_available - 0 when the secret key of fpr can be used now,
 * else -EHOSTDOWN with a PHI-free reason naming fpr. gpg asks gpg-agent
 * for every secret key, so this fails both when the agent cannot be
 * reached (killed, unstartable) and when it does not hold the key: gpg
 * reports either as "No secret key". The inbound path asks this after a
 * decryption failure, to tell a message not meant for us (quarantine)
 * from our own key being out of reach (leave the message, retry). On a
 * confined p it runs in the helper under the time limit, so that an
 * agent that does not answer (stopped, stuck) is -EHOSTDOWN in time
 * rather than a hang.
 */
int pgp_secret_available(struct pgp *p, const char *fpr, struct cp_error *err);

#endif
