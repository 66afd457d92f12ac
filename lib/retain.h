/*
 * NAME
 *	retain - the retention pass: records past their lifetime leave the store
 * SYNOPSIS
 *	#include "retain.h"
 *
 *	struct retain_policy pol;
 *	struct retain_pass *p;
 *	retain_policy_from_config(cfg, &pol);
 *	retain_pass_new(&pol, 0, &p);
 *	while ((r = retain_step(store, p, cp_now(), &err)) > 0)
 *		... let the send round go ...
 *	retain_pass_counts(p, &counts);
 *	retain_pass_free(p);
 * DESCRIPTION
 *	Without it nothing carepost writes is ever removed, and a store under
 *	steady load grows until the map is full. A pass walks, in this order,
 *	delivery, threads, seen, acks, bounces, clinic, inbox, the data
 *	keys in meta, the digest windows and the key candidates, and deletes what has outlived its lifetime (struct
 *	retain_policy, [retention] in carepost.conf; 0 = kept for ever):
 *
 *	delivery	a final record (sent, failed, expired, suppressed)
 *			whose updated + lifetime has passed and whose reply
 *			token has expired (its thread is gone or past
 *			expires); internal records (reply_ack, staff_alert,
 *			form_incomplete) by the internal lifetime. A record
 *			that is not final is never removed.
 *	threads		expires + lifetime passed, and the delivery record it
 *			belongs to (its own, for internal mail, else the
 *			conversation's event) is final or gone.
 *	seen		at + lifetime (at least a day: a message fetched again
 *			within the IMAP refetch window is recognised).
 *	acks		an acknowledgement mark: at + lifetime; a staff alert
 *			window: until + lifetime, and its held alert final
 *			or gone.
 *	bounces		last + lifetime.
 *	clinic, inbox	received + lifetime (default 0: never). Each inbox
 *			message deleted is an audit record (AUDIT_PRUNED:
 *			patient and message id, the policy's actor) in the
 *			transaction that deletes it.
 *	data keys	meta "dek:ID" made created + lifetime ago (at least
 *			two days: a key is sealed with for one day at most)
 *			that no inbox record kept by this pass names.
 *	digests		a digest window (digest.h) that has ended: no
 *			lifetime, always.
 *	candidates	a key candidate (record.h) whose patient is gone or
 *			whose ref is at another address than the one it
 *			came from: no lifetime, always.
 *
 *	A record that does not load is kept (and counted unreadable).
 *
 *	retain_step runs one write transaction: it looks at no more than
 *	policy.batch records (and 8 MiB of values) of one database, from
 *	where the last step stopped, deletes those due, commits, and
 *	returns 1 while the pass has more to do, 0 when it is done. A
 *	caller on an event loop runs one step per turn, so that sending
 *	waits for one batch at most, and a reader's snapshot is one batch
 *	old at most. Records written behind the pass's position wait for
 *	the next pass. A dry run (retain_pass_new with dry_run) decides the
 *	same in read-only transactions and deletes nothing.
 * ERRORS
 *	retain_step: the store's errors (a failed step changes nothing;
 *	the pass may be stepped again or freed); -ENOMEM. retain_pass_new:
 *	-ENOMEM. retain_run: either.
 * OWNERSHIP
 *	retain_pass_new hands a pass the caller frees with retain_pass_free;
 *	it keeps a copy of the policy. retain_counts_json returns a new
 *	reference.
 * THREAD SAFETY
 *	A pass is used by one thread at a time, with its store.
 */
#ifndef CAREPOST_RETAIN_H
#define CAREPOST_RETAIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "store.h"
#include "util.h"

enum retain_kind {
	RETAIN_DELIVERY,	/* final portal delivery records */
	RETAIN_INTERNAL,	/* final internal ones */
	RETAIN_THREADS,
	RETAIN_SEEN,
	RETAIN_ACKS,
	RETAIN_BOUNCES,
	RETAIN_CLINIC,
	RETAIN_INBOX,
	RETAIN_DATA_KEYS,
	RETAIN_DIGESTS,		/* digest windows that ended (no lifetime) */
	RETAIN_CANDIDATES,	/* key candidates that no longer stand */
	RETAIN__COUNT
};

#define RETAIN_SEEN_MIN		86400		/* the IMAP refetch window */
#define RETAIN_DATA_KEYS_MIN	(2 * 86400)	/* 2 x ATREST_DEK_MAX_AGE */

struct retain_policy {
	int64_t lifetime[RETAIN__COUNT];	/* seconds; 0: never */
	size_t batch;				/* records per transaction */
	char actor[AUDIT_ACTOR_MAX + 1];	/* who deletes, for the audit
						 * trail: "daemon" or "ctl:USER" */
};

struct retain_counts {
	size_t pruned[RETAIN__COUNT];
	size_t examined;
	size_t unreadable;
	size_t transactions;
};

struct retain_pass;

/* retain_kind_name - "delivery", "internal", "threads", ... (--json). */
const char *retain_kind_name(enum retain_kind k);

/*
 * retain_policy_from_config - the [retention] lifetimes and batch; the
 * floors above apply to seen and data keys whatever the config says.
 */
void retain_policy_from_config(const struct cp_config *cfg,
			       struct retain_policy *pol);

int retain_pass_new(const struct retain_policy *pol, int dry_run,
		    struct retain_pass **out);
void retain_pass_free(struct retain_pass *p);
int retain_step(struct store *s, struct retain_pass *p, int64_t now,
		struct cp_error *err);
void retain_pass_counts(const struct retain_pass *p, struct retain_counts *c);

/* retain_run - a whole pass at once (carepostctl prune). */
int retain_run(struct store *s, const struct retain_policy *pol, int64_t now,
	       int dry_run, struct retain_counts *c, struct cp_error *err);

/*
 * retain_counts_json - {"dry_run","transactions","examined",
 * "unreadable","pruned":{KIND: n}} (a new value, NULL without memory).
 */
json_t *retain_counts_json(const struct retain_counts *c, int dry_run);

#endif
