/*
 * NAME
 *	checkpoint - signed checkpoints of the audit trail's head, kept in a
 *	file meant to be shipped off the host
 * SYNOPSIS
 *	#include "checkpoint.h"
 *
 *	pgp_new(gnupghome, checkpoint_key, &p, &err);
 *	checkpoint_write(store, p, path, now, &made, &err);
 *	checkpoint_verify(store, p, checkpoint_key, path, &res, &err);
 * DESCRIPTION
 *	The audit trail is a hash chain (audit.h): a record flipped, deleted
 *	or moved in the middle breaks it. What the chain alone cannot show
 *	is records cut off its end together with the head record, or a
 *	trail rewritten whole with its hashes made again by someone who can
 *	write the store. A checkpoint closes that: the head's sequence
 *	number and hash, signed with a key meant only for that ([audit]
 *	checkpoint_key), and kept where the store's writer cannot reach
 *	(the file is appended to on this host, and is meant to be copied off
 *	it as it grows, e.g. by the log shipper).
 *
 *	A checkpoint in the file is the text
 *
 *		carepost audit checkpoint 1
 *		seq: N
 *		hash: H
 *		time: T
 *
 *	(N the head's sequence number, H its hash, 64 lower-case hex
 *	digits, T epoch seconds; each line ending in a newline), then an
 *	ASCII-armored detached OpenPGP signature of exactly those four
 *	lines, then an empty line.
 *
 *	checkpoint_write appends one for the trail's head now to path (made
 *	0600 when missing; one write, then fsync) with p (pgp_new with the
 *	checkpoint key as signer), unless the trail is empty or its head is
 *	the one the last checkpoint named (meta "audit:checkpoint",
 *	record.h); then records the head there. *made: 1 when one was
 *	written, with its seq in *seq when seq is not NULL.
 *
 *	checkpoint_verify reads every checkpoint of path (at most
 *	CHECKPOINT_FILE_MAX bytes). Each must be well formed and carry a
 *	good signature by key_fpr (the primary key's fingerprint, or a
 *	subkey's of it); each names a record that must be in the trail with
 *	that hash, or be before the trail's first record (pruned by an
 *	explicit policy). A record past the trail's end means the trail was
 *	cut; another hash, that it was rewritten at or before that record.
 *	The last checkpoint the store recorded must be in the file (a file
 *	cut short is seen). The result names the first checkpoint that
 *	fails, by its line in the file. A missing file is no checkpoint at
 *	all: ok when the store recorded none.
 * ERRORS
 *	-ENOENT (verify) the file is missing while the store recorded a
 *	checkpoint: reported in the result, not returned. Otherwise
 *	cp_read_file's, open(2)'s, write(2)'s and fsync(2)'s codes naming
 *	path, gpg's (pgp.h) and the store's.
 * OWNERSHIP
 *	Strings are borrowed for the call; the result holds its text.
 * THREAD SAFETY
 *	As store.h and pgp.h.
 */
#ifndef CAREPOST_CHECKPOINT_H
#define CAREPOST_CHECKPOINT_H

#include <stdint.h>

#include "pgp.h"
#include "record.h"
#include "store.h"
#include "util.h"

#define CHECKPOINT_FILE_MAX	(64u * 1024 * 1024)

int checkpoint_write(struct store *s, struct pgp *p, const char *path,
		     int64_t now, int *made, uint64_t *seq, struct cp_error *err);

struct checkpoint_result {
	int ok;			/* 1: every checkpoint holds */
	unsigned checked;	/* checkpoints read */
	uint64_t last_seq;	/* the last one's seq (0: none) */
	int64_t last_time;	/* and when it was made */
	char why[256];		/* what fails, and where */
};
int checkpoint_verify(struct store *s, struct pgp *p, const char *key_fpr,
		      const char *path, struct checkpoint_result *res,
		      struct cp_error *err);

/*
 * checkpoint_parse - the checkpoints of a file's text, for fn one by one
 * in order (spans into text: valid for the call), signatures not
 * checked; stops when fn returns non-zero and returns that. -EBADMSG at
 * the first thing that is not a checkpoint, with why naming its line.
 */
struct checkpoint_block {
	unsigned line;		/* of its first line, from 1 */
	uint64_t seq;
	char hash[AUDIT_HASH_HEX + 1];
	int64_t time;
	const char *text;	/* the four signed lines */
	size_t text_len;
	const char *sig;	/* the armored signature */
	size_t sig_len;
};
typedef int (*checkpoint_block_fn)(void *ud, const struct checkpoint_block *b);
int checkpoint_parse(const char *text, size_t len, checkpoint_block_fn fn,
		     void *ud, char *why, size_t whylen);

#endif
