/*
 * NAME
 *	queue - the delivery queue: delivery records and their schedule
 * SYNOPSIS
 *	#include "queue.h"
 *
 *	struct delivery_list batch = { 0 };
 *	queue_take_due(store, now, lease, 100, &batch, &err);
 *	... send, set each record's state ...
 *	queue_update(store, batch.items, batch.n, &err);
 *	delivery_list_free(&batch);
 * DESCRIPTION
 *	A delivery record (record.h) that is not final has one entry in the
 *	schedule at its due time; the two change in the same transaction,
 *	here and nowhere else.
 *
 *	queue_take_due leases the due records (due <= now), at most max, in
 *	due order: each becomes "sending", due again at now + lease (so that
 *	a crash mid-send retries it), in one transaction. It does not count
 *	an attempt: the sender does, when it sends (a wait for quiet hours
 *	is no attempt). A record that does not load (written wrongly) is
 *	taken off the schedule, with a warning naming its id, and the rest
 *	go on.
 *
 *	queue_update writes back records after a send, in one transaction: a
 *	record in a final state (sent, failed, expired, suppressed) loses its
 *	schedule entry and its data (scrubbed); any other is rescheduled at
 *	its due. queue_update_audited also appends the audit records given
 *	(audit.h: one per message the relay accepted) in that transaction.
 *
 *	queue_release_leases requeues, due at now, every record left
 *	"sending" by a sender that is gone (a crash mid-batch). Only the one
 *	process that sends (carepostd, holding its lock) may call this, at
 *	start: a live sender's lease must not be broken.
 *
 *	queue_retry puts a queued, sending or deferred record back in the
 *	queue at now (its failed recipients pending again, attempts 0).
 *
 *	Counts and indexes, changed in the transaction of each change of a
 *	record (so that what follows costs the same at any size of the
 *	store): "counts" holds the number of records in each state
 *	(delivery.STATE); "pending" a key per record not final, by when it
 *	was made (created, 8 bytes big endian, then the id; a record
 *	without created is left out); "leases" a key per record "sending"
 *	(the id). A record without a state this build knows is counted
 *	nowhere (record.h, delivery_peek).
 *
 *	queue_oldest_pending is the earliest "created" among the records not
 *	final, or INT64_MAX when none: for metrics and carepostctl stats
 *	(the first key of "pending").
 *
 *	queue_tally counts the delivery records by state (carepostctl stats:
 *	"counts").
 *
 *	queue_list calls fn for each record in the schedule, in due order,
 *	at most max (0: all) records not final, in one read transaction
 *	(streamed: one record loaded at a time); it stops when fn returns
 *	non-zero and returns that. Records that do not load are skipped.
 *
 *	queue_txn_remove deletes a record with its schedule entry, counts
 *	and indexes (retention); a record already gone is no error.
 *	queue_txn_rebuild makes the delivery counts, "pending" and "leases" again from
 *	every delivery record (the store format upgrade that adds them,
 *	storefmt.h), a chunk of records at a time, in the caller's
 *	transaction.
 *
 *	In a caller's transaction: queue_txn_get and queue_txn_put read and
 *	write one record as it is (no schedule change: a changed due is the
 *	caller's to reschedule, through queue_txn_enqueue); queue_txn_enqueue
 *	puts a new record and its schedule entry (how the inbound path
 *	queues acknowledgements and staff alerts in the transaction that
 *	files a message). queue_get reads one record in a read transaction.
 * ERRORS
 *	The store's (store.h); the record's load errors (record.h: -EBADMSG,
 *	-EPROTO) for a record written wrongly; -ENOENT for an unknown id
 *	(queue_update of an id without a record changes nothing at all);
 *	queue_retry -EPERM for a record whose data is scrubbed (final);
 *	queue_txn_enqueue -EINVAL for a record without a valid id; -ENOMEM.
 * OWNERSHIP
 *	queue_take_due appends to the caller's list (delivery_list_free).
 *	queue_update scrubs the caller's final records in place (data
 *	dropped, scrubbed set), also when the write then fails.
 *	queue_get and queue_txn_get fill a struct the caller clears
 *	(delivery_clear).
 * THREAD SAFETY
 *	As the store: one thread at a time per struct store.
 */
#ifndef CAREPOST_QUEUE_H
#define CAREPOST_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "record.h"
#include "store.h"

struct queue_tally {
	size_t by_state[DELIVERY_SUPPRESSED + 1];	/* enum delivery_state */
};

int queue_take_due(struct store *s, int64_t now, int lease, size_t max,
		   struct delivery_list *batch, struct cp_error *err);
int queue_update(struct store *s, struct delivery *records, size_t n,
		 struct cp_error *err);
int queue_update_audited(struct store *s, struct delivery *records, size_t n,
			 const struct audit_event *events, size_t nevents,
			 struct cp_error *err);
int queue_release_leases(struct store *s, int64_t now, size_t *released,
			 struct cp_error *err);
int queue_retry(struct store *s, const char *id, int64_t now,
		struct cp_error *err);
int queue_oldest_pending(struct store *s, int64_t *created,
			 struct cp_error *err);
int queue_tally(struct store *s, struct queue_tally *t, struct cp_error *err);

typedef int (*queue_list_fn)(void *ud, const struct delivery *d);
int queue_list(struct store *s, size_t max, queue_list_fn fn, void *ud,
	       struct cp_error *err);

int queue_get(struct store *s, const char *id, struct delivery *d,
	      struct cp_error *err);
int queue_txn_get(struct store *s, MDB_txn *txn, const char *id,
		  struct delivery *d, struct cp_error *err);
int queue_txn_put(struct store *s, MDB_txn *txn, const struct delivery *d,
		  struct cp_error *err);
int queue_txn_enqueue(struct store *s, MDB_txn *txn, const struct delivery *d,
		      struct cp_error *err);
int queue_txn_remove(struct store *s, MDB_txn *txn, const char *id,
		     struct cp_error *err);
int queue_txn_rebuild(struct store *s, MDB_txn *txn, struct cp_error *err);

#endif
