/*
 * NAME
 *	storefmt - the store format version: checked at every open, upgraded
 *	at carepostd's start
 * SYNOPSIS
 *	#include "storefmt.h"
 *
 *	storefmt_open(path, map_size, STOREFMT_OLDER_OK, &store, &err);
 *	fd = store_lock_sender(path, &err);	(one sender per store)
 *	storefmt_upgrade(store, &err);		(carepostd, under that lock)
 * DESCRIPTION
 *	A store names its layout in the meta record "format",
 *	{"version": N} (record.h, store_format_*); a store without the
 *	record is version 1, the layout of every carepost before the record
 *	(so a store written by them opens as it is). STOREFMT_VERSION is the
 *	version this build reads and writes.
 *
 *	storefmt_open is store_open_checked with the version checked before
 *	anything is written: a new store (no meta database yet) is made in
 *	this build's layout and gets its record at once; a store of a newer version (or whose record is
 *	malformed) is refused and not opened for writing; one of an older
 *	version is refused too unless flags hold STOREFMT_OLDER_OK (carepostd,
 *	which upgrades it once it holds the sender's lock; carepostctl's
 *	backup, which only reads).
 *
 *	storefmt_upgrade runs the upgrade steps, an ordered table in
 *	storefmt.c: the step of version V takes a store from V to V + 1 in
 *	one write transaction that also writes the record with V + 1, so a
 *	step that fails (or a crash in it) leaves the store, and its version,
 *	as they were, and the next start runs it again. A store without the
 *	record gets it (the version it is at). The steps: 1 to 2 adds the
 *	audit database (audit.h); 2 to 3 the delivery records' counts by
 *	state and the indexes of open work and of leases (queue.h: made
 *	from every delivery record, in one transaction: a store of a million
 *	records takes seconds); 3 to 4 the "unsubscribe" database the portal
 *	hands one-click unsubscribes in through (unsub.h); 4 to 5 changes
 *	no record: from 5 on, clinic entries may be of class "complaint"
 *	and recipients of delivery records carry complained_at and
 *	feedback_type (record.h), which an older carepost must not read or
 *	rewrite. A layout change adds its step, and
 *	STOREFMT_VERSION grows by one;
 *	storefmt_upgrade_steps runs a table given, for the tests of the
 *	mechanism. The caller must hold the sender's lock (store.h,
 *	store_lock_sender): no other carepostd writes meanwhile.
 *
 *	storefmt_version reads the version (and whether the record is there).
 *	storefmt_check is the rule storefmt_open applies.
 * ERRORS
 *	-EPROTO for a version this build cannot open (newer; older without
 *	STOREFMT_OLDER_OK; a table that has no step from the store's version),
 *	its text naming the store's version and this build's, and what to do;
 *	-EBADMSG for a malformed record; store_open's and store_write's codes;
 *	a step's own code, with "upgrading the store from version V" before
 *	its reason.
 * OWNERSHIP
 *	storefmt_open hands a store the caller closes with store_close. The
 *	step table is borrowed.
 * THREAD SAFETY
 *	As store.h: a store is used by one thread at a time.
 */
#ifndef CAREPOST_STOREFMT_H
#define CAREPOST_STOREFMT_H

#include "store.h"
#include "util.h"

/* The store format version this build reads and writes. */
#define STOREFMT_VERSION	7

#define STOREFMT_OLDER_OK	0x1

int storefmt_check(unsigned found, unsigned known, int flags,
		   const char *path, struct cp_error *err);
int storefmt_open(const char *path, uint64_t map_size, int flags,
		  struct store **out, struct cp_error *err);
int storefmt_version(struct store *s, unsigned *version, int *recorded,
		     struct cp_error *err);

/*
 * An upgrade step: run takes the store from version from to from + 1
 * inside txn (storefmt writes the new version in the same transaction);
 * it may run more than once (store_write's retries), what names it in
 * errors and the log.
 */
struct storefmt_step {
	unsigned from;
	const char *what;
	int (*run)(struct store *s, MDB_txn *txn, struct cp_error *err);
};

/*
 * storefmt_upgrade_steps - run steps (n of them, in order of from) from
 * the store's version up to target; *ran counts the steps run. 0, or an
 * error (ERRORS) with the version left at the last step that succeeded.
 * storefmt_upgrade - the same with storefmt.c's table, up to
 * STOREFMT_VERSION.
 */
int storefmt_upgrade_steps(struct store *s, const struct storefmt_step *steps,
			   size_t n, unsigned target, size_t *ran,
			   struct cp_error *err);
int storefmt_upgrade(struct store *s, size_t *ran, struct cp_error *err);

#endif
