/*
 * NAME
 *	audit - the audit trail: one record per disclosure or access, in a
 *	hash chain
 * SYNOPSIS
 *	#include "audit.h"
 *
 *	struct audit_event ev = { .action = AUDIT_SENT, .actor = "daemon",
 *				  .event = id, .recipient = ref, ... };
 *	audit_append(store, txn, &ev, &err);	(inside the action's txn)
 *	audit_verify(store, &result, &err);
 *	audit_export(store, &filter, out, &err);
 * DESCRIPTION
 *	HIPAA's audit controls (45 CFR 164.312(b)): what carepost disclosed
 *	(a message sent), took in (a reply filed or quarantined), and who
 *	looked at what (carepostctl read, inbox), with the changes that
 *	decide disclosure (a key imported, an opt-out, a reload), and the
 *	deletion of a patient's filed message by retention (pruned).
 *
 *	audit_append adds one record to the "audit" database (store.h) in
 *	the caller's write transaction, the one that records the action
 *	itself: the action and its record commit together or not at all
 *	(and a transaction that store_write runs again appends again, in
 *	place of the first attempt's record). A record holds its sequence
 *	number (one more than the last; the key is it in 20 digits), the
 *	time (cp_now), the actor ("daemon", or "ctl:" and the Unix user of
 *	carepostctl), the action, a reason the caller gave (reads), and
 *	references only: event id, patient id, inbox message id, a
 *	recipient reference (the delivery record's "ref", or an address
 *	hash; never an address), a key fingerprint, the relay's reply code.
 *	Never a name, an address, a subject or a body. prev is the hash of
 *	the record before it (64 zeros for the first), hash the hex SHA-256
 *	of the record's canonical bytes without hash (compact JSON, sorted
 *	keys: record.h, audit_record_encode): the records form a chain, and
 *	meta "audit:head" names the last one.
 *
 *	audit_verify walks the chain from the first record: each key is
 *	its record's seq, each seq one more than the one before, each
 *	prev the hash before, each hash its bytes' hash, each record's
 *	bytes exactly the canonical form, and the last record the head.
 *	The first record that fails is named in the result (its seq, or the
 *	one missing) with why. The chain may begin after 1 (records pruned
 *	by an explicit policy); the first record's prev is then taken as
 *	given.
 *
 *	audit_export writes the records (all, or those of one patient and
 *	a time range) as JSON lines, each a FHIR AuditEvent (record.h,
 *	audit_record_fhir), to out.
 *
 *	audit_reason_check: a reason given by a user (carepostctl --reason)
 *	is at most AUDIT_REASON_MAX bytes of UTF-8 without control
 *	characters.
 * ERRORS
 *	-EINVAL	an event without action or actor, an actor that is
 *		neither "daemon" nor "ctl:" and a user name, a reason
 *		too long or holding a control character, an id over
 *		STORE_ID_MAX bytes
 *	-EBADMSG	audit_append: the head record is malformed
 *	-ENOMEM, the store's codes (store.h)
 *	audit_verify returns 0 when it could read the chain, whether or not
 *	the chain holds: see result->ok.
 * OWNERSHIP
 *	The event's strings are borrowed for the call. The result holds
 *	its text in itself.
 * THREAD SAFETY
 *	As store.h. Appends from several processes (carepostd,
 *	carepostctl) are serialised by LMDB's one writer.
 */
#ifndef CAREPOST_AUDIT_H
#define CAREPOST_AUDIT_H

#include <stdint.h>
#include <stdio.h>

#include "store.h"
#include "util.h"

#define AUDIT_REASON_MAX	200

enum audit_action {
	AUDIT_SENT,		/* a message accepted by the relay */
	AUDIT_FILED,		/* a reply filed into the inbox */
	AUDIT_QUARANTINED,	/* an inbound message quarantined */
	AUDIT_READ,		/* carepostctl read: an inbox message opened */
	AUDIT_INBOX_LISTED,	/* carepostctl inbox: a patient's inbox listed */
	AUDIT_EXPORTED,		/* carepostctl audit export */
	AUDIT_KEY_IMPORTED,	/* a patient's key imported */
	AUDIT_OPTED_OUT,	/* an opt-out applied */
	AUDIT_RELOADED,		/* carepostd's configuration reloaded */
	AUDIT_PRUNED,		/* an inbox message deleted by retention */
	AUDIT__COUNT
};

struct audit_event {
	enum audit_action action;
	const char *actor;	/* "daemon" or "ctl:USER" */
	const char *reason;	/* a user's reason, or NULL */
	const char *event;	/* event id, or NULL */
	const char *patient;	/* patient id, or NULL */
	const char *inbox;	/* inbox message id, or NULL */
	const char *recipient;	/* recipient reference (never an address) */
	const char *key;	/* key fingerprint */
	int relay;		/* the relay's reply code, 0: none */
};

#define AUDIT_ACTOR_DAEMON	"daemon"
#define AUDIT_ACTOR_MAX		64

const char *audit_action_name(enum audit_action a);
int audit_reason_check(const char *reason, struct cp_error *err);
/* audit_actor_ctl - "ctl:" and the name of the calling Unix user. */
int audit_actor_ctl(char *buf, size_t size, struct cp_error *err);

int audit_append(struct store *s, MDB_txn *txn, const struct audit_event *ev,
		 struct cp_error *err);
/*
 * audit_append_n - n records in order, as n audit_appends would (the head
 * read and written once: a batch of sends); all are checked before any
 * is written.
 */
int audit_append_n(struct store *s, MDB_txn *txn, const struct audit_event *evs,
		   size_t n, struct cp_error *err);
/* audit_record_one - audit_append in a write transaction of its own. */
int audit_record_one(struct store *s, const struct audit_event *ev,
		     struct cp_error *err);
/*
 * audit_daemon_action - the daemon's record of an action of its own
 * that names nothing (AUDIT_RELOADED: a configuration reload applied),
 * in a transaction of its own.
 */
int audit_daemon_action(struct store *s, enum audit_action action,
			struct cp_error *err);

struct audit_verify_result {
	int ok;			/* 1: the chain holds */
	uint64_t records;	/* records read */
	uint64_t first, last;	/* their seq (0 when none) */
	uint64_t bad_seq;	/* the first bad record's seq (or the missing one) */
	char why[160];		/* what is wrong with it */
};
int audit_verify(struct store *s, struct audit_verify_result *res,
		 struct cp_error *err);

struct audit_filter {
	const char *patient;	/* NULL: every patient */
	int64_t since, until;	/* 0: no bound; since <= time < until */
};
int audit_export(struct store *s, const struct audit_filter *f, FILE *out,
		 uint64_t *written, struct cp_error *err);

#endif
