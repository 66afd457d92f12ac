/*
 * NAME
 *	record - carepost's stored records as C structs: one codec each
 * SYNOPSIS
 *	#include "record.h"
 *
 *	struct delivery d;
 *	delivery_load(json, &d, &err);		stored JSON to struct
 *	d.state = DELIVERY_SENT;
 *	json = delivery_dump(&d);		struct to stored JSON
 *	delivery_clear(&d);
 * DESCRIPTION
 *	The record layer, in the manner of OpenSMTPD's envelope.c: each kind
 *	of record carepost stores has one load (JSON to struct) and one dump
 *	(struct to JSON) here, and one constructor for each way such a
 *	record is born. The rest of carepost sees structs, enums for states
 *	and time_t for times, and never spells a stored field's name: the
 *	layout is store.h's (and docs/store.md's, for the portal).
 *
 *	delivery	the "delivery" database: one per claimed event or
 *			internal message, with a struct delivery_rcpt per
 *			message (recipient outcome). Constructors:
 *			delivery_from_event, delivery_failed_event,
 *			delivery_internal.
 *	thread		"threads": what a reply token names
 *			(thread_from_event, thread_for_internal).
 *	bounce_status	"bounces": what delivery reports said of an address.
 *	ack_mark, alert_window
 *			"acks": the day's acknowledgement of a conversation,
 *			a desk's staff alert window.
 *	seen_record	"seen": what became of a fetched message.
 *	inbox_entry	"inbox": a filed reply's cleartext and sealed blob;
 *	inbox_content	what the blob seals.
 *	clinic_entry	"clinic": a department's work queue entry.
 *	imap_mark	"imap": the last UID moved out of a mailbox.
 *	dek		meta "dek:ID": a data key of the inbox at rest.
 *	store_format	meta "format": the store format version.
 *	audit_record	"audit": one entry of the audit trail (audit.h),
 *			and meta "audit:head", the last one.
 *
 *	Portal-written records are read elsewhere: events by event_load
 *	(event.h), patients by policy.h and event.h, and edited only by
 *	patient.h's one-transaction verbs.
 *
 *	Versions: a record names its layout version in "version" only from
 *	layout 2 on; every record this version writes is layout 1 and
 *	carries no such member, so records stay byte for byte what earlier
 *	versions wrote. A record whose "version" is above what this build
 *	knows is refused (-EPROTO), so that an older carepostd never
 *	rewrites a newer record without its new fields. Members that load
 *	does not know are kept (extra) and dumped again as they were.
 *
 *	Dumps write what the struct holds: an optional member is written
 *	when set (a string not NULL, a time not 0, a tri-state not
 *	REC_UNSET), so that load then dump gives the same JSON.
 * ERRORS
 *	Loads return 0, or -EBADMSG with a PHI-free reason naming the record
 *	kind and the field (never its value) ("delivery record: field state: unknown state"):
 *	not an object, a member of the wrong JSON type, an unknown state,
 *	mode or priority name; -EPROTO for a newer layout; -ENOMEM. Dumps
 *	return NULL only when jansson cannot allocate. Constructors return 0
 *	or -ENOMEM. The struct is cleared (delivery_clear) by a failed load.
 * OWNERSHIP
 *	A loaded or constructed struct owns its strings, recipients, data,
 *	blob and extra: its _clear frees them (and may be called on a zeroed
 *	struct or after a failed load). Loads borrow their JSON and take
 *	references (data, form_fields, blob, extra members) where they keep
 *	parts of it; dumps return a new reference. inbox_content is a view:
 *	its strings point into the JSON it was loaded from (or the caller's,
 *	to encode), and inbox_content_clear frees only its attachment array.
 *	ack_mark, alert_window and imap_mark hold no pointers. The _get and
 *	_txn_get verbs fill a struct the caller clears; _put verbs borrow.
 *	delivery_list_free frees each record and the array. dek_get_wrapped
 *	hands out a malloc'd string.
 * THREAD SAFETY
 *	Reentrant; a struct is used by one thread at a time.
 */
#ifndef CAREPOST_RECORD_H
#define CAREPOST_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store.h"
#include "util.h"

#define REC_UNSET	(-1)	/* a tri-state member that is absent */
#define RECORD_LAYOUT	1	/* the layout version this build writes */

enum delivery_state {
	DELIVERY_QUEUED,
	DELIVERY_SENDING,
	DELIVERY_DEFERRED,
	DELIVERY_SENT,		/* final from here on */
	DELIVERY_FAILED,
	DELIVERY_EXPIRED,
	DELIVERY_SUPPRESSED,
};

enum rcpt_state {
	RCPT_PENDING,
	RCPT_DEFERRED,
	RCPT_SENT,
	RCPT_FAILED,
	RCPT_BOUNCED,		/* a delivery report: Action failed */
	RCPT_DELAYED,		/* a delivery report: Action delayed */
};

enum rcpt_mode {
	RCPT_MODE_UNSET,
	RCPT_NOTICE,
	RCPT_ENCRYPTED,
};

enum priority {
	PRIORITY_UNSET,
	PRIORITY_NORMAL,
	PRIORITY_HIGH,
};

/* One message of a delivery: its recipient and what became of it. */
struct delivery_rcpt {
	char *ref;		/* "patient", "proxy:N", "staff:N" */
	char *address;		/* staff recipients only */
	enum rcpt_mode mode;
	enum rcpt_state state;
	int code;		/* the relay's reply code, when has_code */
	int has_code;
	char *reason;
	char *note;
	char *message_id;
	time_t sent_at;
	char *address_hash;	/* where it went (policy_address_hash) */
	char *dsn_status;	/* the last delivery report's status */
	time_t bounced_at;
	time_t complained_at;	/* the first feedback report about it */
	char *feedback_type;	/* its Feedback-Type ("abuse") */
	char *folded;		/* a digest's first item: the ids of the
				   other items it carried, space-separated
				   ("folded": a list of ids in JSON); NULL:
				   none */
	json_t *extra;		/* members this build does not know */
};

struct delivery {
	char *id;
	char *type;
	char *patient;
	enum delivery_state state;
	char *reason;
	time_t created;
	time_t updated;
	time_t due;
	long long attempts;
	time_t send_at;		/* 0: none */
	time_t expires_at;	/* 0: none */
	enum priority priority;
	int confidential;	/* 0, 1 or REC_UNSET */
	char *department;
	char *thread;		/* 20 hex digits */
	struct delivery_rcpt *rcpts;
	size_t nrcpts;
	json_t *data;		/* the event's data while not final, or NULL */
	int scrubbed;		/* 1: final and data removed */
	/* internal records (reply_ack, staff_alert, form_incomplete) */
	int urgent;		/* 0, 1 or REC_UNSET */
	char *origin;		/* the inbox MSGID it answers */
	int held;		/* staff_alert: 0, 1 or REC_UNSET */
	long long count;	/* staff_alert: messages it tells of, when has_count */
	int has_count;
	json_t *extra;		/* members this build does not know */
};

struct delivery_list {
	struct delivery *items;
	size_t n;
	size_t cap;
};

/* Names of states, modes and priorities as stored. */
const char *delivery_state_name(enum delivery_state s);
const char *rcpt_state_name(enum rcpt_state s);
const char *rcpt_mode_name(enum rcpt_mode m);
const char *priority_name(enum priority p);
/* delivery_state_parse - 0 and *out, or -EINVAL for an unknown name. */
int delivery_state_parse(const char *name, enum delivery_state *out);
/* delivery_state_final - sent, failed, expired, suppressed. */
int delivery_state_final(enum delivery_state s);

/* delivery_load / delivery_dump - the codec (see DESCRIPTION). */
int delivery_load(json_t *v, struct delivery *d, struct cp_error *err);
json_t *delivery_dump(const struct delivery *d);
void delivery_clear(struct delivery *d);
/* delivery_peek_due - a stored record's due alone (0 when it has none). */
time_t delivery_peek_due(json_t *v);
/*
 * delivery_peek - what the queue's counts and indexes know of a stored
 * record (queue.h): its state, created and due (0 when absent); -EBADMSG
 * when it does not load (delivery_load: such a record is counted
 * nowhere).
 */
struct delivery_peek {
	enum delivery_state state;
	int64_t created;
	int64_t due;
};
int delivery_peek(json_t *v, struct delivery_peek *p);

/*
 * delivery_dump_public - delivery_dump for people and scripts
 * (carepostctl status): "data", the PHI payload, reads "(held until
 * delivered)". delivery_summary - the row carepostctl queue shows:
 * {"id","type","state","due","attempts","reason"?}.
 */
json_t *delivery_dump_public(const struct delivery *d);
json_t *delivery_summary(const struct delivery *d);

/*
 * delivery_set_state - state, and reason when not NULL (kept otherwise),
 * and updated when now is not 0. rcpt_set_state likewise.
 */
int delivery_set_state(struct delivery *d, enum delivery_state state,
		       const char *reason, int64_t now);
int rcpt_set_state(struct delivery_rcpt *rc, enum rcpt_state state,
		   const char *reason);

/* record_set_str - replace *field with a copy of value (NULL: none). */
int record_set_str(char **field, const char *value);

/*
 * delivery_add_rcpt - a new pending recipient entry at the end: ref,
 * mode, and address (staff recipients; NULL otherwise). Returns it, or
 * NULL (-ENOMEM). Pointers to earlier entries may move.
 */
struct delivery_rcpt *delivery_add_rcpt(struct delivery *d, const char *ref,
					enum rcpt_mode mode, const char *address);
/* delivery_drop_rcpts - no recipient entries any more (all freed). */
void delivery_drop_rcpts(struct delivery *d);

/*
 * delivery_from_event - the record of a claimed, valid portal event
 * (struct event, event.h): queued, created and updated at now, due at
 * send_at or now, no attempts, no recipients yet (chosen at the first
 * send), thread thread_hex, its data (a reference: an empty object when
 * it has none).
 *
 * delivery_failed_event - the record of an event that could not be
 * claimed: failed with reason, scrubbed (no data kept); type and patient
 * as far as they could be read (NULL: not written).
 */
struct event;
int delivery_from_event(struct delivery *d, const struct event *ev,
			const char *thread_hex, int64_t now);
int delivery_failed_event(struct delivery *d, const char *id, const char *type,
			  const char *patient, const char *reason, int64_t now);

/*
 * delivery_internal - an internal delivery record (reply_ack,
 * staff_alert, form_incomplete): queued at due, high priority, not
 * confidential, for patient's conversation in department, thread
 * thread_hex, answering inbox message origin. data is taken (may be
 * NULL: an empty object). Recipients are added after.
 */
int delivery_internal(struct delivery *d, const char *id, const char *type,
		      const char *patient, const char *department,
		      const char *thread_hex, int urgent, const char *origin,
		      int64_t now, int64_t due, json_t *data);

/*
 * struct thread_record - the "threads" database: what a reply token
 * names. Key: the 10-byte thread id (token.h).
 */
struct thread_record {
	char *event;		/* the conversation's event */
	char *patient;
	char *type;		/* the event's type */
	char *department;	/* NULL: none */
	time_t created;		/* when the conversation began */
	time_t expires;		/* replies after this are refused */
	int confidential;	/* 0, 1 or REC_UNSET */
	json_t *form_fields;	/* form_request: [{"name","required"}], or NULL */
	char *delivery;		/* internal mail: its own delivery record */
	json_t *extra;
};

#define THREAD_FORM_FIELDS_MAX	200	/* fields of a form kept in a thread */


int thread_load(json_t *v, struct thread_record *th, struct cp_error *err);
json_t *thread_dump(const struct thread_record *th);
void thread_clear(struct thread_record *th);

/*
 * thread_from_event - the thread of a claimed portal event (struct
 * event, event.h): expires at expires_at (or now) plus token_ttl; a
 * form_request keeps its field spec ({"name","required"} only, at most
 * THREAD_FORM_FIELDS_MAX), for form_parse on ingest: the event's data is
 * scrubbed once delivered, the thread outlives it.
 */
int thread_from_event(struct thread_record *th, const struct event *ev,
		      int64_t now, int token_ttl);

/*
 * thread_for_internal - the thread of internal mail (an acknowledgement)
 * in conversation conv: conv's facts, its own delivery record delivery,
 * created at now, expiring at now + token_ttl (replies to it stay in the
 * conversation; a bounce of it maps to its record).
 */
int thread_for_internal(struct thread_record *th,
			const struct thread_record *conv, const char *delivery,
			int64_t now, int token_ttl);

/*
 * thread_get / thread_txn_put - a thread record in the store (a read
 * transaction of its own; the caller's write transaction). thread_get:
 * -ENOENT, the store's errors, the load's.
 */
int thread_get(struct store *s, const uint8_t id[10], struct thread_record *th,
	       struct cp_error *err);
int thread_txn_put(struct store *s, MDB_txn *txn, const uint8_t id[10],
		   const struct thread_record *th, struct cp_error *err);

/*
 * struct bounce_status - the "bounces" database (readable by the
 * portal): what delivery reports said of an address (key: the address,
 * lower case). soft_count counts 4.x.x reports; a 5.x.x one makes it
 * invalid for good.
 */
enum bounce_state {
	BOUNCE_OK,
	BOUNCE_SOFT,
	BOUNCE_INVALID,
};

struct bounce_status {
	enum bounce_state state;
	long long soft_count;
	time_t last;		/* when the last report came */
	char *event;		/* the event it was about */
	char *status;		/* its status code, "5.1.1" */
	json_t *extra;
};

const char *bounce_state_name(enum bounce_state s);
int bounce_load(json_t *v, struct bounce_status *b, struct cp_error *err);
json_t *bounce_dump(const struct bounce_status *b);
void bounce_clear(struct bounce_status *b);
/*
 * bounce_note - a report about the address: hard (5.x.x) makes it
 * invalid, else soft (soft_count + 1; invalid stays invalid); last, event
 * and status from the report.
 */
int bounce_note(struct bounce_status *b, int hard, int64_t now,
		const char *event, const char *status);

/*
 * The "acks" database (carepostd's own; see store.h). struct ack_mark:
 * key "EVENT/DAY" or "EVENT/DAY/form", {"delivery","at"}: the day's
 * acknowledgement (or form request) of a conversation. struct
 * alert_window: key "alert/DEPT/urgent|normal", {"until","held"?}: a
 * desk's staff alert window and its held alert. These two are carepostd's
 * alone: unknown members are not kept.
 */
struct ack_mark {
	char delivery[STORE_ID_MAX + 1];
	time_t at;
};

struct alert_window {
	time_t until;			/* 0: none */
	char held[STORE_ID_MAX + 1];	/* "": none */
};

json_t *ack_mark_dump(const struct ack_mark *a);
int ack_mark_load(json_t *v, struct ack_mark *a, struct cp_error *err);
int alert_window_load(json_t *v, struct alert_window *w, struct cp_error *err);
json_t *alert_window_dump(const struct alert_window *w);

/*
 * In the caller's transaction: alert_window_txn_get fills *w, zeroed
 * when key has none (0); the _put verbs store one record.
 */
int alert_window_txn_get(struct store *s, MDB_txn *txn, const char *key,
			 struct alert_window *w, struct cp_error *err);
int alert_window_txn_put(struct store *s, MDB_txn *txn, const char *key,
			 const struct alert_window *w, struct cp_error *err);
int ack_mark_txn_put(struct store *s, MDB_txn *txn, const char *key,
		     const struct ack_mark *a, struct cp_error *err);
int bounce_txn_get(struct store *s, MDB_txn *txn, const char *address,
		   struct bounce_status *b, struct cp_error *err);
int bounce_txn_put(struct store *s, MDB_txn *txn, const char *address,
		   const struct bounce_status *b, struct cp_error *err);

/*
 * bounce_tally - the "bounces" records by state (metrics, carepostctl
 * stats): by_state[BOUNCE_OK..BOUNCE_INVALID], from the store's "counts"
 * (bounce.STATE), which bounce_txn_put and bounce_txn_remove change in
 * their transaction; a record that does not load is counted nowhere.
 * The store's errors.
 */
struct bounce_tally {
	size_t by_state[BOUNCE_INVALID + 1];
};

int bounce_tally(struct store *s, struct bounce_tally *t, struct cp_error *err);
/* bounce_txn_remove - the record and its part of the counts (retention). */
int bounce_txn_remove(struct store *s, MDB_txn *txn, const char *address,
		      struct cp_error *err);

/*
 * struct imap_mark - the "imap" database (carepostd's own): key the
 * mailbox name, {"uidvalidity","last_uid"}: the last UID moved out of
 * the mailbox after filing. A UID outside 1..2^32-1 loads as 0 (start
 * from the first message). imap_mark_get: -ENOENT when the mailbox has
 * none, -EBADMSG for a record written wrongly (not an object, a UID that
 * is not an integer), the store's errors; either way the caller starts
 * from UID 1. imap_mark_put stores one in a write of its own.
 */
struct imap_mark {
	uint32_t uidvalidity;
	uint32_t last_uid;
};

int imap_mark_load(json_t *v, struct imap_mark *m, struct cp_error *err);
json_t *imap_mark_dump(const struct imap_mark *m);
int imap_mark_get(struct store *s, const char *mailbox, struct imap_mark *m,
		  struct cp_error *err);
int imap_mark_put(struct store *s, const char *mailbox,
		  const struct imap_mark *m, struct cp_error *err);

/*
 * struct seen_record - the "seen" database (carepostd's own): key the
 * SHA-256 of the Message-ID (or of the raw message), what became of the
 * message: {"disposition","folder","class","reason","inbox_id"?,
 * "patient"?,"event"?,"at","message_id"?,"mailbox"?,"uidvalidity"?,
 * "uid"?,"again"?}. disposition and class are inbound's names
 * (inbound.h, inmsg.h), kept as the strings they are. message_id is the
 * message's Message-ID without <> (when it had a printable one of at
 * most SEEN_MESSAGE_ID_MAX bytes); mailbox, uidvalidity and uid say
 * where it was fetched over IMAP (absent for carepostctl ingest; uid 0:
 * none); again counts the times it was fetched again after its decision
 * (duplicates; absent: none).
 *
 * seen_note_again / seen_txn_note_again - again + 1 in the record of
 * key (-ENOENT when there is none).
 * seen_quarantine_row - what "carepostctl quarantine" shows of a record
 * quarantined: when, the reason, the class, where it was fetched
 * (mailbox, uidvalidity, uid) or its Message-ID, the event and patient
 * ids when known; never a subject, an address or a body (none is kept).
 * NULL when sr is not a quarantine, or out of memory.
 */
#define SEEN_MESSAGE_ID_MAX	250
enum seen_folder {
	SEEN_PROCESSED,
	SEEN_QUARANTINE,
};

struct seen_record {
	char *disposition;
	enum seen_folder folder;
	char *class;
	char *reason;
	char *inbox_id;
	char *patient;
	char *event;
	time_t at;
	char *message_id;
	char *mailbox;
	long long uidvalidity;
	long long uid;		/* 0: not fetched over IMAP */
	long long again;
	json_t *extra;
};

int seen_load(json_t *v, struct seen_record *sr, struct cp_error *err);
json_t *seen_dump(const struct seen_record *sr);
void seen_clear(struct seen_record *sr);
/* seen_txn_get: -ENOENT when the message was never seen. */
int seen_txn_get(struct store *s, MDB_txn *txn, const char *key,
		 struct seen_record *sr, struct cp_error *err);
int seen_get(struct store *s, const char *key, struct seen_record *sr,
	     struct cp_error *err);
int seen_txn_put(struct store *s, MDB_txn *txn, const char *key,
		 const struct seen_record *sr, struct cp_error *err);
/* seen_txn_remove - the record and its part of the counts (retention). */
int seen_txn_remove(struct store *s, MDB_txn *txn, const char *key,
		    struct cp_error *err);
int seen_txn_note_again(struct store *s, MDB_txn *txn, const char *key,
			struct cp_error *err);
int seen_note_again(struct store *s, const char *key, struct cp_error *err);
json_t *seen_quarantine_row(const struct seen_record *sr);

/*
 * struct inbox_entry - the "inbox" database (readable by the portal):
 * key "PATIENT/MSGID"; the cleartext of one filed reply (store.h has
 * every field) and its sealed content, blob, kept as the stored JSON
 * string (a reference: it can be megabytes). A dump never holds blob:
 * inbox_txn_put appends it as it is (store_txn_put_json_b64).
 */
enum inbox_class {
	INBOX_REPLY,
	INBOX_FORM,
	INBOX_COMPLAINT,	/* clinic entries only: a feedback report */
};

struct inbox_entry {
	char *id;
	char *patient;
	char *thread;
	char *event;
	char *event_type;
	enum inbox_class class;
	time_t received;
	char *department;
	int urgent;		/* 0, 1 or REC_UNSET */
	char *sender_role;	/* "patient" or "proxy" */
	char *auth;		/* "pgp", "dmarc", "dkim", "from" */
	char *pgp;		/* "signed", "encrypted", "encrypted+signed", or NULL */
	int form_complete;	/* 0, 1 or REC_UNSET */
	int has_sizes;
	long long size_raw, size_text, size_attachments;
	long long n_attachments;	/* -1: absent */
	char *store_key;
	long long format;	/* 1 (OpenPGP to the store key) when absent */
	int has_format;
	char *dek;
	json_t *blob;		/* the stored string, or NULL */
	json_t *extra;
};

const char *inbox_class_name(enum inbox_class c);
int inbox_load(json_t *v, struct inbox_entry *e, struct cp_error *err);
json_t *inbox_dump(const struct inbox_entry *e);	/* without blob */
void inbox_clear(struct inbox_entry *e);
int inbox_txn_put(struct store *s, MDB_txn *txn, const char *key,
		  const struct inbox_entry *e, const char *blob, size_t bloblen,
		  struct cp_error *err);

/*
 * struct key_candidate - the "candidates" database (the portal reads it):
 * key "PATIENT/REF" (REF "patient" or "proxy:N"), {"key_fpr", "addr"
 * (the address it came from, the ref's then), "keydata" (base64 of the
 * key as its Autocrypt header gave it), "prefer_encrypt" ("mutual" or
 * "nopreference"), "seen", "inbox_id", "auth"}: a key a patient's or
 * proxy's authenticated reply offered (autocrypt.h), for the portal to
 * put to them. Never used to encrypt. key_candidate_current says whether
 * a stored one still stands for patient (the retention pass prunes the
 * others): its ref names someone at the address it came from.
 */
struct key_candidate {
	const char *fingerprint;
	const char *addr;
	const uint8_t *key;
	size_t keylen;
	int mutual;
	time_t seen;
	const char *inbox_id;
	const char *auth;
};

int key_candidate_txn_put(struct store *s, MDB_txn *txn, const char *key,
			  const struct key_candidate *c, struct cp_error *err);
int key_candidate_current(json_t *candidate, const char *ref, json_t *patient);

/*
 * struct clinic_entry - the "clinic" database (the departments' work
 * queues, the portal marks entries done): key "DEPT/MSGID",
 * {"inbox_id","patient","thread","event","class","received","urgent",
 * "sender_role","state"}. state is "new" when filed; the portal writes
 * others, kept as they are. department is the key's part: listed, never
 * stored. An entry of class "complaint" (a feedback report about a
 * message carepost sent, not a message filed: its inbox_id, the key's
 * MSGID "cTIME-HEX8", names no inbox record) has
 * "event_type", "feedback_type" and, when the recipient was opted out of
 * a category by it, "opted_out".
 */
struct clinic_entry {
	char *inbox_id;
	char *patient;
	char *thread;
	char *event;
	enum inbox_class class;
	time_t received;
	int urgent;
	char *sender_role;
	char *state;
	char *department;	/* from the key, for listings */
	char *event_type;	/* complaint: the event's type */
	char *feedback_type;	/* complaint: as the report gave it */
	char *opted_out;	/* complaint: the category it stopped, or NULL */
	json_t *extra;
};

int clinic_load(json_t *v, struct clinic_entry *c, struct cp_error *err);
json_t *clinic_dump(const struct clinic_entry *c);
void clinic_clear(struct clinic_entry *c);
int clinic_txn_put(struct store *s, MDB_txn *txn, const char *key,
		   const struct clinic_entry *c, struct cp_error *err);

/*
 * struct inbox_content - what an inbox record's blob seals: {"subject",
 * "from","from_name","date","message_id","text","body","form"?:
 * {"values","missing"},"attachments":[{"filename","content_type","size",
 * "data"}],"raw"}. Strings are borrowed: from the caller when dumping,
 * from the loaded JSON when loading. An attachment's bytes are given as
 * bytes to dump (base64 then) and read back as base64 (data_b64).
 */
struct inbox_attachment {
	const char *filename;
	const char *content_type;
	long long size;
	const void *bytes;	/* dump */
	const char *data_b64;	/* load */
};

struct inbox_content {
	const char *subject;
	const char *from;
	const char *from_name;
	long long date;
	const char *message_id;
	const char *text;
	const char *body;
	json_t *form_values;	/* borrowed; with form_missing: a form reply */
	json_t *form_missing;
	int has_form;
	struct inbox_attachment *atts;
	size_t natts;
};

/*
 * inbox_content_encode - the sealed text: the content, and raw (the
 * message, base64) as the last member, copied as it is (a malloc'd
 * string of *len bytes). inbox_content_load - a loaded content's view
 * (atts malloc'd: inbox_content_clear). inbox_content_public - content
 * without raw and the attachments' data, for listings (a new value).
 */
int inbox_content_encode(const struct inbox_content *c, const char *raw_b64,
			 size_t raw_len, char **out, size_t *len);
int inbox_content_load(json_t *v, struct inbox_content *c, struct cp_error *err);
void inbox_content_clear(struct inbox_content *c);
json_t *inbox_content_public(json_t *content);

/*
 * seen_tally, clinic_tally - counts for carepostctl stats, added into
 * the caller's objects as {"NAME": n}: seen records by disposition and
 * by class (the "counts" seen.disposition.NAME and seen.class.NAME,
 * which seen_txn_put and seen_txn_remove change in their transaction,
 * the times a message was fetched again after its decision counted as
 * the disposition "duplicate"), clinic entries by state (a walk of
 * "clinic": the portal changes their states). Records that do not load
 * are not counted. The store's errors.
 *
 * record_txn_recount makes the bounce and seen counts again from every
 * record (the store format upgrade that adds them, storefmt.h).
 * COUNT_NAME_MAX bounds a counter's name: a disposition or class longer
 * than fits is counted nowhere.
 */
#define COUNT_NAME_MAX	96
int record_txn_recount(struct store *s, MDB_txn *txn, struct cp_error *err);
int seen_tally(struct store *s, json_t *by_disposition, json_t *by_class,
	       struct cp_error *err);
int clinic_tally(struct store *s, json_t *by_state, struct cp_error *err);

/*
 * inbox_row - carepostctl inbox's row for a listed record (JSON, as
 * inbox_list gives it): the record, with "subject" and
 * "preview" from its opened content, or "error" when it could not be
 * opened (content NULL). A new value.
 */
json_t *inbox_row(json_t *rec, const struct inbox_content *content,
		  const char *preview, const char *error);
/* inbox_row_view - the strings inbox_row added (borrowed from row, or NULL). */
struct inbox_row_view {
	const char *subject, *preview, *error;
};
void inbox_row_view(json_t *row, struct inbox_row_view *v);

/*
 * The data keys of the inbox at rest (atrest.h): meta "dek:ID",
 * {"alg":"aes-256-gcm","store_key","created","wrapped"}. dek_put stores
 * one in a write of its own (wrapped: the armored OpenPGP message of
 * wrapped_len bytes); dek_get_wrapped hands out a malloc'd copy of its
 * wrapped key (free()): -ENOENT when there is none, -EBADMSG when the
 * record holds no wrapped key, the store's errors.
 */
int dek_put(struct store *s, const char *id, const char *store_key,
	    int64_t created, const char *wrapped, size_t wrapped_len,
	    struct cp_error *err);
int dek_get_wrapped(struct store *s, const char *id, char **wrapped,
		    struct cp_error *err);
/*
 * dek_load_created - when the data key record v was made (-EBADMSG when
 * it names no time). DEK_KEY_PREFIX begins every data key's meta key.
 */
#define DEK_KEY_PREFIX	"dek:"
int dek_load_created(json_t *v, time_t *created, struct cp_error *err);

/*
 * The store format version (storefmt.h): meta "format", {"version": N}
 * (N from 1 to STORE_FORMAT_MAX). store_format_decode reads the stored
 * bytes (-EBADMSG naming the field when they are not such a record);
 * store_format_txn_get reads it inside txn (-ENOENT when the store has
 * none, the store's errors); store_format_txn_put writes it (-EINVAL out
 * of range, -ENOMEM, the store's errors). STORE_FORMAT_KEY is its key.
 */
#define STORE_FORMAT_KEY	"format"
#define STORE_FORMAT_MAX	1000000u
int store_format_decode(const void *value, size_t len, unsigned *version,
			struct cp_error *err);
int store_format_txn_get(struct store *s, MDB_txn *txn, unsigned *version,
			 struct cp_error *err);
int store_format_txn_put(struct store *s, MDB_txn *txn, unsigned version,
			 struct cp_error *err);

/*
 * The audit trail (audit.h): "audit" records, key the 20-digit seq.
 * Strings are borrowed (from the caller for encode; from holder, which
 * the caller json_decref()s, for decode); NULL leaves a member out, as
 * does relay 0. audit_record_encode writes the canonical bytes (compact
 * JSON, sorted keys) of r, with "hash" when with_hash, into a malloc'd
 * NUL-terminated *out of *len bytes (-ENOMEM). audit_record_decode reads
 * stored bytes (-EBADMSG naming the field). audit_record_fhir is r as a
 * FHIR AuditEvent (a new object, NULL on -ENOMEM). audit_head_txn_get /
 * _put: meta "audit:head", {"seq","hash"} (-ENOENT when none; -EBADMSG).
 */
#define AUDIT_HASH_HEX	64
struct audit_record {
	uint64_t seq;
	int64_t time;
	const char *actor, *action, *reason;
	const char *event, *patient, *inbox, *recipient, *key;
	int relay;
	char prev[AUDIT_HASH_HEX + 1];
	char hash[AUDIT_HASH_HEX + 1];
};
int audit_record_encode(const struct audit_record *r, int with_hash,
			char **out, size_t *len);
int audit_record_decode(const void *value, size_t len, json_t **holder,
			struct audit_record *r, struct cp_error *err);
json_t *audit_record_fhir(const struct audit_record *r);
int audit_head_txn_get(struct store *s, MDB_txn *txn, uint64_t *seq,
		       char hash[AUDIT_HASH_HEX + 1], struct cp_error *err);
int audit_head_txn_put(struct store *s, MDB_txn *txn, uint64_t seq,
		       const char *hash, struct cp_error *err);
/*
 * audit_checkpoint_txn_get / _put: meta "audit:checkpoint",
 * {"seq","hash","time"}: the head the last signed checkpoint named
 * (checkpoint.h), and when it was made (-ENOENT when none; -EBADMSG).
 */
int audit_checkpoint_txn_get(struct store *s, MDB_txn *txn, uint64_t *seq,
			     char hash[AUDIT_HASH_HEX + 1], int64_t *time,
			     struct cp_error *err);
int audit_checkpoint_txn_put(struct store *s, MDB_txn *txn, uint64_t seq,
			     const char *hash, int64_t time, struct cp_error *err);

/*
 * The "in_reply_to" of an internal record's data: the Message-ID of the
 * reply it answers (for In-Reply-To), or NULL. delivery_internal_data
 * makes such data (a new object; in_reply_to may be NULL).
 */
const char *delivery_in_reply_to(const struct delivery *d);
json_t *delivery_internal_data(const char *in_reply_to);

/* delivery_list_add - append a zeroed record; NULL on -ENOMEM. */
struct delivery *delivery_list_add(struct delivery_list *l);
void delivery_list_free(struct delivery_list *l);

#endif
