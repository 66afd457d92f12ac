/*
 * NAME
 *	keyfile - recipients' keys held apart, one file per key, with what
 *	their owner may use them for
 * SYNOPSIS
 *	#include "keyfile.h"
 *
 *	struct keymeta m;
 *	if (keyfile_read(dir, fpr, &m) == 0)
 *		r = keymeta_check(&m, now, &err);
 *	keyfile_path(dir, fpr, path, sizeof(path));	(for gpg -f)
 *
 *	struct keyfile_batch *b = keyfile_batch_new(dir, &err);
 *	keyfile_batch_add(b, &m, key, keylen, &err);	(for each key)
 *	keyfile_batch_commit(b, &err);
 *	keyfile_batch_free(b);
 * DESCRIPTION
 *	GnuPG's keybox (pubring.kbx) has no index: every gpg run that looks a
 *	key up reads it from the start, so a clinic with many keyed patients
 *	paid for every one of them on every message. carepost therefore
 *	keeps each recipient's key a second time, in a directory of its own
 *	(KEYFILE_DIR in the GnuPG home): FPR.key, the key as "gpg --export
 *	--export-options export-minimal" writes it, which gpg reads with
 *	--recipient-file (GPGME's "--file" recipient), and FPR.meta, what
 *	gpg said of the key when it was imported: revoked, disabled or
 *	invalid, when the key expires, and the same of each encryption
 *	subkey. Checking a key before a message then reads one small file
 *	instead of running gpg over the whole keyring, and encrypting to it
 *	reads one key (once the keybox holds KEYFILE_KEYBOX_BYTES, about 400
 *	keys: below that, finding the key in the keybox costs gpg less than
 *	reading its file). The keyring stays where keys are imported, where
 *	replies' signatures are checked, and what `carepostctl keys` lists;
 *	the files are written from it (pgp_import, pgp_keyfiles_sync) and a
 *	key without them is looked up in the keyring as before.
 *
 *	keymeta_check says whether m's key can be encrypted to at now: not
 *	revoked, expired, disabled or invalid, with an encryption subkey that
 *	is none of those. It returns 0, -EKEYREVOKED, -EKEYEXPIRED or
 *	-EKEYREJECTED with a reason naming the fingerprint only.
 *
 *	keymeta_parse reads FPR.meta's JSON (keymeta_format writes it):
 *	    {"fpr": "40 HEX", "revoked": false, "unusable": false,
 *	     "expiry": 0, "enc": [{"expiry": 0, "revoked": false,
 *	     "unusable": false}, ...]}
 *	"expiry" is a Unix time, 0 for never; "unusable" is disabled or
 *	invalid. Anything else (a missing or mistyped member, more than
 *	KEYMETA_MAX_ENC subkeys, a fingerprint that is not 40 hex digits)
 *	is refused.
 *
 *	keyfile_read reads dir/FPR.meta: -ENOENT when there is none, and
 *	-EBADMSG when it does not parse, names another key, or has no
 *	FPR.key beside it, and -EPERM when dir is not a directory of this
 *	user's that nobody else may write (a symbolic link, or writable by
 *	group or others; files that are links or others' count as damaged).
 *	In every such case the caller asks gpg, as for a key without files,
 *	and encrypts from the keyring: a key file is used only where its
 *	.meta was read.
 *
 *	A batch writes keys' files: keyfile_batch_add writes FPR.key and
 *	FPR.meta as temporary files (unless both already hold exactly that),
 *	keyfile_batch_commit makes them durable with one syncfs(2), renames
 *	them into place (the key first, so a .meta always has its .key) and
 *	fsyncs the directory. A batch freed without a commit removes its
 *	temporary files. The directory is created (mode 0700) when missing.
 * ERRORS
 *	-errno of the system calls, -ENOMEM, -EBADMSG, -ENAMETOOLONG; every
 *	reason names a fingerprint at most.
 * OWNERSHIP
 *	The batch copies nothing it is given after keyfile_batch_add returns.
 * THREAD SAFETY
 *	Reentrant; one batch per thread.
 */
#ifndef CAREPOST_KEYFILE_H
#define CAREPOST_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define KEYFILE_DIR		"carepost-keys"
#define KEYMETA_MAX_ENC		16
#define KEYMETA_MAX_JSON	4096
#define KEYFILE_FPR_SIZE	41
/* a keybox (pubring.kbx) this large or larger: encrypt from key files */
#define KEYFILE_KEYBOX_BYTES	(256 * 1024)

struct keymeta_sub {
	long long expires;		/* 0: never */
	int revoked;
	int unusable;			/* disabled or invalid */
};

struct keymeta {
	char fpr[KEYFILE_FPR_SIZE];	/* the primary key's, upper case */
	int revoked;
	int unusable;
	long long expires;		/* the primary key's; 0: never */
	unsigned n_enc;
	struct keymeta_sub enc[KEYMETA_MAX_ENC];	/* can encrypt */
};

int keymeta_check(const struct keymeta *m, long long now, struct cp_error *err);
int keymeta_parse(const char *json, size_t len, struct keymeta *m);
/* keymeta_format - m as JSON (malloc'd, NUL-terminated), or NULL. */
char *keymeta_format(const struct keymeta *m);

int keyfile_path(const char *dir, const char *fpr, const char *ext, char *buf,
		 size_t len);
int keyfile_read(const char *dir, const char *fpr, struct keymeta *m);

/* keyfile_lock - dir's lock (flock of dir/.lock, made with dir when
 * missing), held from before a keyring change until its files are
 * committed: a file descriptor for keyfile_unlock, or -errno. */
int keyfile_lock(const char *dir, struct cp_error *err);
void keyfile_unlock(int fd);
/* keyfile_prune - remove the files of every key keep() says no to, and
 * every temporary file (call it with the lock held); *removed counts
 * files. A missing dir is nothing to do. */
int keyfile_prune(const char *dir, int (*keep)(const char *fpr, void *arg),
		  void *arg, size_t *removed, struct cp_error *err);

struct keyfile_batch;
int keyfile_batch_new(const char *dir, struct keyfile_batch **out,
		      struct cp_error *err);
int keyfile_batch_add(struct keyfile_batch *b, const struct keymeta *m,
		      const uint8_t *key, size_t keylen, struct cp_error *err);
/* keyfile_batch_count - how many keys the batch changes. */
size_t keyfile_batch_count(const struct keyfile_batch *b);
int keyfile_batch_commit(struct keyfile_batch *b, struct cp_error *err);
void keyfile_batch_free(struct keyfile_batch *b);

#endif
