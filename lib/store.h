/*
 * NAME
 *	store - the LMDB store shared with the portal: layout and persistence
 * SYNOPSIS
 *	#include "store.h"
 *
 *	struct store *s;
 *	store_open("/var/lib/carepost/store", 1 << 30, &s, &err);
 *	store_write(s, fn, userdata, &err);	(fn runs in one transaction)
 *	store_close(s);
 * DESCRIPTION
 *	Persistence only, as Postfix's mail_queue.c: transactions, named
 *	databases, iteration, the schedule index, the sender's lock file,
 *	the sending journal and backups (store_backup). What the records mean is
 *	the record layer's (record.h: one codec per record), the delivery
 *	queue's (queue.h: delivery records and their schedule entries) and
 *	intake's (intake.h: portal events claimed). No other module calls
 *	LMDB.
 *
 *	One LMDB environment (a directory holding data.mdb and lock.mdb).
 *	Named databases; keys are UTF-8 ids without a terminating NUL,
 *	values are JSON unless stated. This is the one place that documents
 *	the layout (docs/store.md repeats it for portal developers); each
 *	record kind of carepostd's has its codec in record.h. Records are
 *	layout 1 and carry no "version" member; a later layout adds
 *	"version": 2, and a record without it is layout 1:
 *
 *	patients   written by the portal. key: patient id.
 *	           value: the patient JSON of the design.
 *	events     written by the portal. key: event id (its idempotency key).
 *	           value: the event JSON. carepostd removes each entry when it
 *	           claims it.
 *	delivery   carepostd's, readable by the portal. key: event id.
 *	           value: {"id","type","patient","state","reason","created",
 *	           "updated","due","attempts","send_at","expires_at",
 *	           "priority","confidential","department","thread",
 *	           "message_id","recipients":[{"ref","mode","state","code",
 *	           "reason","message_id","address_hash"?,"dsn_status"?,
 *	           "bounced_at"?}], "data"} — "data" (the PHI payload)
 *	           is removed once the event reaches a final state
 *	           ("scrubbed": true).
 *	           state: queued, sending, deferred, sent, failed, expired,
 *	           suppressed. A recipient's state is pending, deferred, sent,
 *	           failed, or after a delivery report bounced / delayed.
 *	schedule   carepostd's. key: 8-byte big-endian due time, then the
 *	           event id. value: empty. The work list, in due order. An
 *	           event being sent stays here with due = now + lease, so a
 *	           crash mid-send retries it after the lease.
 *	threads    carepostd's. key: the 10-byte thread id (token.h).
 *	           value: {"event","patient","type","department","created",
 *	           "expires","confidential"?,"form_fields"?,"delivery"?}: what
 *	           a reply token names. form_fields (form_request only) is the
 *	           spec [{"name","required"}] form_parse reads replies with.
 *	           Threads of internal mail (an acknowledgement) name the
 *	           conversation's event, and in "delivery" their own
 *	           delivery record (where a bounce of that mail is recorded).
 *	bounces    carepostd's, readable by the portal. key: email address
 *	           (lower case). value: {"state":"ok|soft|invalid",
 *	           "soft_count","last","event","status"}: written on ingest of
 *	           a delivery report (5.x.x: invalid; 4.x.x: soft, +1).
 *	meta       carepostd's. key: name. value: JSON. Two kinds of key:
 *	           "format": {"version": N}, the store format version
 *	           (storefmt.h): written by carepostd at its first start on
 *	           a store without it; a store without it is version 1.
 *	           "dek:ID" (ID: 16 hex digits) is a data
 *	           key of the inbox at rest (atrest.h): {"alg":"aes-256-gcm",
 *	           "store_key","created","wrapped"}, wrapped = the 32-byte key
 *	           as an ASCII-armored OpenPGP message to the store key. Never
 *	           delete one while an inbox record names it: a copy of the
 *	           store without meta opens no inbox record.
 *
 *	The inbound path (inbound.h) adds:
 *
 *	inbox      carepostd's, readable by the portal. key: "PATIENT/MSGID",
 *	           MSGID = "m" + 10-digit receive time + "-" + 8 hex digits,
 *	           so a patient's messages sort by arrival. value (cleartext
 *	           holds no PHI): {"id","patient","thread","event",
 *	           "event_type","class":"reply|form","received","department",
 *	           "urgent","sender_role":"patient|proxy","auth":"pgp|dmarc|
 *	           dkim|from","pgp":"signed|encrypted|encrypted+signed"?,
 *	           "form_complete"?,"sizes":{"raw","text","attachments"},
 *	           "n_attachments","store_key","format":2,"dek","blob"}. blob is
 *	           the base64 of AES-256-GCM (nonce | ciphertext | tag) under
 *	           the data key meta "dek:DEK", bound to this key (inbound.h,
 *	           AT REST); records without "format" (1, older) hold an
 *	           ASCII-armored OpenPGP message to gpg.store_key. Either holds
 *	           the JSON
 *	           {"subject","from","from_name","date","message_id","text"
 *	           (trimmed reply),"body" (whole decoded body),"form":{"values",
 *	           "missing"}?,"attachments":[{"filename","content_type",
 *	           "size","data" (base64)}],"raw" (base64 of the message)}.
 *	clinic     carepostd's, readable by the portal. key: "DEPT/MSGID".
 *	           value: {"inbox_id","patient","thread","event","class",
 *	           "received","urgent","sender_role","state":"new"}: the
 *	           department's work queue (the portal marks entries done).
 *	seen       carepostd's. key: 64 hex digits, SHA-256 of "mid:" and the
 *	           Message-ID (or of "raw:" and the raw bytes when there is
 *	           none). value: {"disposition","folder":"processed|
 *	           quarantine","class","reason","inbox_id"?,"patient"?,
 *	           "event"?,"at"}.
 *	           A message fetched again (crash before the IMAP move, a
 *	           UIDVALIDITY change) is not filed again, only moved.
 *	acks       carepostd's. key: "EVENT/YYYY-MM-DD" (UTC day) for the
 *	           conversation's event. value: {"delivery","at"}: at most one
 *	           acknowledgement per conversation per day; key
 *	           "EVENT/YYYY-MM-DD/form": at most one form_incomplete
 *	           request per conversation per day.
 *	           key: "alert/DEPT/urgent" or "alert/DEPT/normal" (two
 *	           slashes, so never an EVENT/DAY key: ids hold no '/').
 *	           value: {"until","held"?}: the staff alert window of the
 *	           department and class (routing.alert_window): a reply filed
 *	           while the delivery record "held" is still queued is folded
 *	           into it ("count" + 1); else one filed before "until" gets a
 *	           new held alert due at "until" (then until + window, held =
 *	           it); else an alert at once (until = now + window, no held).
 *	audit      carepostd's and carepostctl's, append-only (audit.h;
 *	           store format version 2). key: the sequence number as 20
 *	           decimal digits, zero-padded, so the records sort in order.
 *	           value: {"seq","time","actor","action","reason"?,"event"?,
 *	           "patient"?,"inbox"?,"recipient_ref"?,"key"?,"relay"?,
 *	           "prev","hash"} (compact JSON, sorted keys): references
 *	           only, never PHI. prev is the hash of the record before
 *	           (64 zeros for the first), hash the hex SHA-256 of the
 *	           record's bytes without "hash". The portal must not write it.
 *	           meta "audit:head" {"seq","hash"} names the last record.
 *	counts, pending, leases
 *	           carepostd's (store format version 3): counters by name (8
 *	           bytes, big endian: delivery.STATE, bounce.STATE,
 *	           seen.disposition.NAME, seen.class.NAME), the records not
 *	           final by created time, the records "sending" by id;
 *	           changed only with the records they count (queue.h,
 *	           record.h), so that stats, the listing and start-up never
 *	           walk the history.
 *	imap       carepostd's. key: mailbox name. value: {"uidvalidity",
 *	           "last_uid"}: the last UID moved out of the mailbox after
 *	           filing; the next session fetches from last_uid + 1 while
 *	           UIDVALIDITY holds, else from 1 (seen keeps it exact).
 *
 *	Internal delivery records ("ack:MSGID", "alert:MSGID", "formreq:
 *	MSGID"; types reply_ack, staff_alert, form_incomplete) live in
 *	delivery/schedule like portal events and are sent by outbound; a
 *	staff recipient is {"ref":"staff:N","address"}. They also hold
 *	"urgent", "origin" (the inbox MSGID) and, for staff_alert, "held"
 *	(waits for the end of its window) and "count" (filed messages it
 *	tells of).
 *
 *	Nothing here is kept for ever: retain.h deletes the records of
 *	carepostd's databases past their [retention] lifetime (a final
 *	delivery record and its thread, seen, acks, bounces, clinic, inbox,
 *	unused data keys), as docs/store.md ("Retention") promises.
 *
 *	The portal writes patients and events in its own write transactions;
 *	LMDB serialises writers across processes. carepostd keeps each write
 *	transaction short and batches many updates in one.
 *
 *	Every write goes through store_write(), which on MDB_MAP_FULL aborts,
 *	doubles the map size (up to 64 GiB) and runs the transaction again,
 *	at most four attempts in all (an MDB_MAP_RESIZED at the start,
 *	another process having grown the map, uses one too): a full map
 *	never loses a committed record, and a failed write leaves the store
 *	as it was.
 * ERRORS
 *	Negative errno-style codes with a reason in err: MDB_NOTFOUND maps to
 *	-ENOENT, MDB_MAP_FULL (when growing fails or the attempts are used up)
 *	to -ENOSPC, a system error LMDB passes on (errno values below 200)
 *	to its -errno, LMDB's own other codes to -EIO with the mdb_strerror
 *	text. A commit that fails with the file system nearly full (under
 *	1 MiB free) is -ENOSPC. A stored value that is not JSON is -EBADMSG
 *	(store_txn_get_json and what uses it). store_open: -ENOMEM, or the
 *	-errno of mkdir. A store_txn_fn's own negative return aborts the transaction
 *	and is returned as is, with its err.
 * OWNERSHIP
 *	store_open hands a store the caller closes with store_close. json_t
 *	results (store_txn_get_json, store_get_json, store_get_json_key) are
 *	new references the caller json_decref()s; json_t arguments are
 *	borrowed for the call, not kept and not changed.
 *	store_json_dump_b64 hands a malloc'd string (free()). Raw results
 *	(store_txn_get_raw, store_txn_first) point into LMDB's map: valid
 *	until the next write in that transaction or its end.
 *
 *	store_foreach and store_foreach_prefix: the key points into LMDB's
 *	map, is not NUL-terminated (use keylen) and is valid only until the
 *	callback returns. The value is a new JSON value parsed from the
 *	stored bytes for this one call (NULL when they are not JSON: every
 *	"schedule" value is empty); the walk owns it and json_decref()s it
 *	as soon as the callback returns, so a callback that keeps it must
 *	json_incref() it (and then json_decref() it when done); a kept key
 *	must be copied.
 * THREAD SAFETY
 *	A struct store may be used from one thread at a time (the daemon's
 *	main loop). Other processes may use the same environment at once.
 */
#ifndef CAREPOST_STORE_H
#define CAREPOST_STORE_H

#include <jansson.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define STORE_ID_MAX 128

struct store;

/* Named databases, in the order store_open creates them. */
enum store_db {
	DB_PATIENTS, DB_EVENTS, DB_DELIVERY, DB_SCHEDULE, DB_THREADS,
	DB_BOUNCES, DB_META, DB_INBOX, DB_CLINIC, DB_SEEN, DB_IMAP,
	DB_ACKS, DB_AUDIT, DB_SCRUB, DB_COUNTS, DB_PENDING, DB_LEASES,
	DB_UNSUBSCRIBE, DB_DIGESTS, DB_CANDIDATES, DB__COUNT
};

int store_open(const char *path, uint64_t map_size, struct store **out,
	       struct cp_error *err);
void store_close(struct store *s);

/*
 * store_open_checked - store_open, with a check before anything is
 * written: check gets the raw value of key in db (value NULL, len 0 when
 * there is none: a new store, or one written before that key; exists 0
 * when the store has no database db at all: a new store), read in a
 * read-only transaction before the write that creates the databases. A
 * negative return closes the environment untouched and is returned as
 * it is, with check's err: the store is not opened for writing. (The
 * store format version is checked so: storefmt.h.)
 */
typedef int (*store_check_fn)(const void *value, size_t len, int exists,
	      void *userdata, struct cp_error *err);
int store_open_checked(const char *path, uint64_t map_size, enum store_db db,
		       const char *key, store_check_fn check, void *userdata,
		       struct store **out, struct cp_error *err);

/*
 * store_backup - a consistent, compacting copy of the open store into
 * dir, while other processes (carepostd, the portal) go on using it:
 * dir is made (0700) or must be an empty directory (-ENOTEMPTY, naming
 * dir, otherwise; -ENOTDIR, mkdir's and opendir's codes). It then holds
 * data.mdb (0600: LMDB's compacting copy, mdb_env_copyfd2 with
 * MDB_CP_COMPACT, of one read transaction's snapshot: free pages left
 * out) and sending.journal (0600: the lines of STORE/sending.journal read
 * just before the copy began and just after it ended, so that a restore
 * records as sent what the relay had accepted of the batches leased in
 * the snapshot; possibly empty), both fsynced, as is dir. It holds no
 * key: the token key, the GnuPG home and the store key are backed up
 * apart. A failure leaves no data.mdb in dir (and removes dir when it
 * made it). res: the size of data.mdb, the journal's lines.
 */
struct store_backup_result {
	uint64_t data_bytes;
	size_t journal_lines;
};
int store_backup(struct store *s, const char *dir, struct store_backup_result *res,
		 struct cp_error *err);

/*
 * store_set_nosync - commit without fsync (on) or with it (off, as
 * opened): for tests and bulk loads that can redo their work after a
 * power cut. carepostd never turns it on.
 *
 * store_map_size - the size of the map now (grown by this process or
 * another), in bytes.
 */
int store_set_nosync(struct store *s, int on, struct cp_error *err);
uint64_t store_map_size(struct store *s);

/*
 * store_write - run fn inside a write transaction and commit it; abort
 * when fn returns < 0 (and return that). Runs fn again, in a fresh
 * transaction, after growing the map on MDB_MAP_FULL (or -ENOSPC from
 * fn), up to four attempts in all (an MDB_MAP_RESIZED at the start uses
 * one): fn must be safe to run more than once.
 */
typedef int (*store_txn_fn)(struct store *s, MDB_txn *txn, void *userdata,
			    struct cp_error *err);
int store_write(struct store *s, store_txn_fn fn, void *userdata,
		struct cp_error *err);

/* Helpers inside a transaction. */
int store_txn_get_json(struct store *s, MDB_txn *txn, enum store_db db,
		       const void *key, size_t keylen, json_t **out,
		       struct cp_error *err);
int store_txn_put_json(struct store *s, MDB_txn *txn, enum store_db db,
		       const void *key, size_t keylen, json_t *value,
		       struct cp_error *err);
int store_txn_del(struct store *s, MDB_txn *txn, enum store_db db,
		  const void *key, size_t keylen, struct cp_error *err);

/*
 * store_json_dump_b64 - what store_txn_put_json stores for value, with
 * one more member, name: b64, written as it is. jansson encodes a string
 * a character at a time; for the large base64 members of inbox records
 * (the sealed blob; inside it, the raw message) this is a copy. b64 must
 * be base64 (-EINVAL otherwise: it then needs no escaping), name a plain
 * lower-case name; value must not have a member name. Hands out a
 * malloc'd NUL-terminated string of *len bytes (-ENOMEM).
 * store_txn_put_json_b64 stores that.
 */
int store_json_dump_b64(json_t *value, const char *name, const char *b64,
			size_t b64len, char **out, size_t *len);
int store_txn_put_json_b64(struct store *s, MDB_txn *txn, enum store_db db,
			   const void *key, size_t keylen, json_t *value,
			   const char *name, const char *b64, size_t b64len,
			   struct cp_error *err);

/*
 * store_get_json - one value in its own read transaction (-ENOENT);
 * store_get_json_key for a key that is not a string (a thread id).
 */
int store_get_json(struct store *s, enum store_db db, const char *key,
		   json_t **out, struct cp_error *err);
int store_get_json_key(struct store *s, enum store_db db, const void *key,
		       size_t keylen, json_t **out, struct cp_error *err);
/* store_put_json - one value in its own write transaction. */
int store_put_json(struct store *s, enum store_db db, const char *key,
		   json_t *value, struct cp_error *err);

/*
 * store_put_raw / store_txn_put_raw - store value as it is (bytes, not
 * necessarily JSON: what the portal writes into "events").
 * store_txn_get_raw - the stored bytes of key, in LMDB's map: valid
 * until the next write in txn or its end (-ENOENT).
 */
int store_put_raw(struct store *s, enum store_db db, const void *key,
		  size_t keylen, const void *value, size_t len,
		  struct cp_error *err);
int store_txn_put_raw(struct store *s, MDB_txn *txn, enum store_db db,
		      const void *key, size_t keylen, const void *value,
		      size_t len, struct cp_error *err);
int store_txn_get_raw(struct store *s, MDB_txn *txn, enum store_db db,
		      const void *key, size_t keylen, const void **value,
		      size_t *len, struct cp_error *err);

/* store_txn_has - 1 when db holds key, 0 when not, or an error. */
int store_txn_has(struct store *s, MDB_txn *txn, enum store_db db,
		  const void *key, size_t keylen, struct cp_error *err);

/*
 * store_txn_first - the first entry of db in key order (-ENOENT when db
 * is empty): key and value point into LMDB's map, valid until the next
 * write in txn or its end. An in-tray is worked by taking the first
 * entry and deleting it (store_txn_del) until none is left.
 */
int store_txn_first(struct store *s, MDB_txn *txn, enum store_db db,
		    const void **key, size_t *keylen, const void **value,
		    size_t *len, struct cp_error *err);

/*
 * store_txn_last - the last entry of db in key order, as store_txn_first.
 *
 * store_txn_walk_raw - call fn for each entry of db in key order with
 * the stored bytes (in LMDB's map: valid for the call); stops when fn
 * returns non-zero (returned as it is); fn must not write in txn.
 *
 * store_txn_create_db - create db in txn when the store has none (an
 * upgrade step, storefmt.h: store_open opens every database of this
 * build already, so that the step only records what it adds).
 */
int store_txn_last(struct store *s, MDB_txn *txn, enum store_db db,
		   const void **key, size_t *keylen, const void **value,
		   size_t *len, struct cp_error *err);
typedef int (*store_raw_fn)(void *userdata, const void *key, size_t keylen,
			    const void *value, size_t len);
int store_txn_walk_raw(struct store *s, MDB_txn *txn, enum store_db db,
		       store_raw_fn fn, void *userdata, struct cp_error *err);
int store_txn_create_db(struct store *s, MDB_txn *txn, enum store_db db,
			struct cp_error *err);

/*
 * store_read - run fn inside a read-only transaction (a snapshot) and
 * end it; fn must not write. Returns what fn returns.
 */
int store_read(struct store *s, store_txn_fn fn, void *userdata,
	       struct cp_error *err);

/*
 * The schedule: a key per due record, the due time (8 bytes, big
 * endian) then the id; empty values. store_txn_schedule_put/_del add
 * and remove one entry (deleting one that is not there is no error; an
 * id over STORE_ID_MAX is -EINVAL to put, and never there).
 * store_txn_schedule_walk calls fn for each entry in due order and stops
 * when fn returns non-zero (returned as it is); fn must not write in
 * txn (collect, then write). Keys that are no schedule key are skipped.
 */
int store_txn_schedule_put(struct store *s, MDB_txn *txn, int64_t due,
			   const char *id, struct cp_error *err);
int store_txn_schedule_del(struct store *s, MDB_txn *txn, int64_t due,
			   const char *id, struct cp_error *err);
typedef int (*store_schedule_fn)(void *userdata, int64_t due, const char *id);
int store_txn_schedule_walk(struct store *s, MDB_txn *txn,
			    store_schedule_fn fn, void *userdata,
			    struct cp_error *err);

/*
 * store_txn_timed_put, _del, _walk - the same for any database keyed so
 * (a time, then an id; the schedule is one): "pending" is keyed by when
 * a record was made (queue.h).
 */
int store_txn_timed_put(struct store *s, MDB_txn *txn, enum store_db db,
			int64_t t, const char *id, struct cp_error *err);
int store_txn_timed_del(struct store *s, MDB_txn *txn, enum store_db db,
			int64_t t, const char *id, struct cp_error *err);
int store_txn_timed_walk(struct store *s, MDB_txn *txn, enum store_db db,
			 store_schedule_fn fn, void *userdata,
			 struct cp_error *err);

/*
 * store_txn_counter_add - add delta to the counter named name in db (8
 * bytes, big endian; a missing counter is 0, and none goes below 0).
 * store_txn_counter_get - its value (0 when missing).
 * store_txn_counter_set - set it to value.
 * store_txn_counter_walk - fn for each counter whose name begins with
 * prefix, in name order, with the rest of its name (NUL-terminated, valid
 * for the call) and its value; stops when fn returns non-zero (returned
 * as it is). fn must not write in txn.
 * store_txn_clear - empty db (every key gone, the database kept).
 * store_txn_del_prefix - delete every key of db that begins with prefix.
 */
int store_txn_counter_add(struct store *s, MDB_txn *txn, enum store_db db,
			  const char *name, int64_t delta, struct cp_error *err);
int store_txn_counter_get(struct store *s, MDB_txn *txn, enum store_db db,
			  const char *name, uint64_t *value, struct cp_error *err);
int store_txn_counter_set(struct store *s, MDB_txn *txn, enum store_db db,
			  const char *name, uint64_t value, struct cp_error *err);
typedef int (*store_counter_fn)(void *ud, const char *name, uint64_t value);
int store_txn_counter_walk(struct store *s, MDB_txn *txn, enum store_db db,
			   const char *prefix, store_counter_fn fn, void *ud,
			   struct cp_error *err);
int store_txn_clear(struct store *s, MDB_txn *txn, enum store_db db,
		    struct cp_error *err);
int store_txn_del_prefix(struct store *s, MDB_txn *txn, enum store_db db,
			 const char *prefix, struct cp_error *err);

/*
 * store_lock_sender - one sender per store: an exclusive flock on
 * STORE/carepostd.lock (made 0600 when missing), held for the life of the
 * process through the returned descriptor (close-on-exec; the kernel drops
 * the lock when the process dies, however it dies). Holding it is what
 * makes queue_release_leases safe. Returns the descriptor, -EBUSY when
 * another process holds the lock ("another carepostd is running on this
 * store"), -ENAMETOOLONG, or open(2)'s and flock(2)'s codes.
 */
int store_lock_sender(const char *store_path, struct cp_error *err);

/*
 * The sending journal, STORE/sending.journal: the sender appends a line
 * for each message the relay accepted, at once, with one write(2), before
 * the batch's outcome is committed; a process killed mid-session leaves
 * its lines in the page cache, and the next start reads them back
 * (outbound_recover). Not fsynced: after a power cut the leases resend.
 *
 * store_journal_open opens it for appending (made 0600 when missing): a
 * descriptor (close-on-exec), or a negative code with the reason.
 * store_journal_append writes one line with one write(2): safe from any
 * thread; a failure is not reported (the lease still resends).
 * store_journal_clear empties it (0 or -errno). store_journal_read hands
 * its whole text (malloc'd, NUL-terminated, at most 64 MiB) in *text:
 * -ENOENT when there is none, -ENAMETOOLONG, cp_read_file's codes.
 */
int store_journal_open(const char *store_path, struct cp_error *err);
void store_journal_append(int fd, const char *line);
int store_journal_clear(int fd);
int store_journal_read(const char *store_path, char **text, size_t *len,
		       struct cp_error *err);

/* store_next_due - the earliest due time, or INT64_MAX if none. */
int store_next_due(struct store *s, int64_t *due, struct cp_error *err);

/*
 * store_foreach - call fn for every record of db in key order, in one
 * read transaction; stop early when fn returns non-zero, and return
 * that value as it is (err is not set then). key and value live only
 * for the call: see OWNERSHIP.
 */
typedef int (*store_each_fn)(void *userdata, const char *key, size_t keylen,
			     json_t *value);
int store_foreach(struct store *s, enum store_db db, store_each_fn fn,
		  void *userdata, struct cp_error *err);
/*
 * store_foreach_prefix - store_foreach of the records whose key begins
 * with prefix (every record when prefix is NULL or ""), in key order, in
 * one read transaction; "PATIENT/" walks one patient's inbox, "DEPT/"
 * one department's clinic queue. Same returns, same lives of key and
 * value (OWNERSHIP).
 */
int store_foreach_prefix(struct store *s, enum store_db db, const char *prefix,
			 store_each_fn fn, void *userdata, struct cp_error *err);

/*
 * store_txn_walk_from - call fn for each entry of db in key order from
 * the first key at or after start (from the first key when startlen is
 * 0), inside txn, with the stored bytes of key and value (in LMDB's map:
 * valid only for the call); stops when fn returns non-zero and returns
 * that as it is. fn must not write in txn (collect, then write): a
 * bounded walk that resumes where it stopped keeps the key it stopped
 * at (copied) and starts there the next time.
 */
typedef int (*store_raw_fn)(void *userdata, const void *key, size_t keylen,
			    const void *value, size_t len);
int store_txn_walk_from(struct store *s, MDB_txn *txn, enum store_db db,
			const void *start, size_t startlen, store_raw_fn fn,
			void *userdata, struct cp_error *err);

/*
 * store_usage - what data.mdb holds, from LMDB's statistics (no walk):
 * page_size in bytes; used_pages, the pages the databases' trees take
 * now (branch, leaf and overflow pages of every database, the main one
 * included); file_pages, the pages the file has ever used (its last
 * page + 1: data.mdb's extent, which free pages are reused within);
 * audit_pages, those of them the audit trail takes (kept by its own
 * policy, not by [retention]).
 */
struct store_usage {
	uint64_t page_size;
	uint64_t used_pages;
	uint64_t file_pages;
	uint64_t audit_pages;
};
int store_usage(struct store *s, struct store_usage *u, struct cp_error *err);

/*
 * store_scrub - overwrite the store file's free pages with zeros: LMDB
 * never clears a page it frees, so what a deleted or rewritten record held
 * (an event's data, the PHI) stays in data.mdb until the page is reused.
 * First every live record is written again as it is (key and value
 * copied first), batch records a transaction (0: 1024), with the
 * environment closed and opened again after each: LMDB reuses the page
 * buffers of a process's earlier transactions without clearing their
 * unused middle, and a fresh environment's are zeroed, so each page a
 * record lives on is copied clean (copy on write) and its old page freed.
 * Then a round counts the free pages LMDB may reuse now (freed before
 * every reader's snapshot, mdb_reader_list), writes that many filler
 * records into the "scrub" database, each a value of exactly one
 * overflow page of zeros (so each takes one free page and rewrites all
 * of it), in transactions of batch, stops when the file grows (nothing
 * reusable is left), and empties "scrub" again; a second round
 * overwrites the pages the last transactions before it freed. What
 * "scrub" held (a scrub cut short) is emptied first. Sending and the
 * portal wait for one transaction at most. Pages a reader still holds,
 * and pages freed while it runs, wait for the next scrub; and a process
 * that keeps its environment open (carepostd, the portal) may write
 * bytes its old buffers held into pages it writes afterwards, which the
 * next scrub clears. Nothing may be open on s during the call (it
 * reopens the environment). res: records rewritten, free pages
 * overwritten, those a reader held at the last count.
 */
struct store_scrub_result {
	uint64_t rewritten;	/* records written again, on clean pages */
	uint64_t overwritten;	/* free pages written over with zeros */
	uint64_t held;		/* free pages a reader held at the last count */
	unsigned transactions;
};
int store_scrub(struct store *s, size_t batch, struct store_scrub_result *res,
		struct cp_error *err);

/*
 * store_refresh - the environment closed and opened again, with its
 * databases: LMDB keeps the page buffers of a process's past write
 * transactions and writes them again, without clearing their unused
 * middle, into pages it writes later, so a process that keeps the store
 * open carries bytes of records long gone (an event's data) into new
 * pages; a fresh environment has no such buffers. Nothing may be open on
 * s (no transaction, no cursor, no other thread in the store). -EIO when
 * it could not be opened again: s is then closed for good (every call
 * but store_close fails or must not be made; the caller ends).
 */
int store_refresh(struct store *s, struct cp_error *err);

/*
 * store_release_pages - drop this process's view of the map's pages
 * (madvise MADV_DONTNEED on LMDB's read-only shared mapping): nothing is
 * lost, the pages stay in the page cache and a later read maps them
 * again. A long run that reads records through the map (a --once of
 * twenty thousand messages) would otherwise keep every page it touched
 * in its resident set. Not with an environment opened MDB_WRITEMAP
 * (carepost never does).
 */
void store_release_pages(struct store *s);

/* store_count - entries in db. */
int store_count(struct store *s, enum store_db db, size_t *n,
		struct cp_error *err);

#endif
