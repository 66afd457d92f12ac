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
 *			message (recipient outcome).
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
 *	kind and the field ("delivery record: field state: unknown state"):
 *	not an object, a member of the wrong JSON type, an unknown state,
 *	mode or priority name; -EPROTO for a newer layout; -ENOMEM. Dumps
 *	return NULL only when jansson cannot allocate. Constructors return 0
 *	or -ENOMEM. The struct is cleared (delivery_clear) by a failed load.
 * OWNERSHIP
 *	A loaded or constructed struct owns its strings, recipients, data
 *	and extra: delivery_clear frees them (and may be called on a zeroed
 *	struct). Loads borrow their JSON and take references (data, extra
 *	members) where they keep parts of it; dumps return a new reference.
 *	delivery_list_free frees each record and the array.
 * THREAD SAFETY
 *	Reentrant; a struct is used by one thread at a time.
 */
#ifndef CAREPOST_RECORD_H
#define CAREPOST_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

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

/*
 * delivery_new_claimed - the record of a claimed event (queued, created
 * and updated and due at now, no attempts, no recipients): the common
 * part of delivery_from_event and delivery_failed_event.
 */
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

/* delivery_list_add - append a zeroed record; NULL on -ENOMEM. */
struct delivery *delivery_list_add(struct delivery_list *l);
void delivery_list_free(struct delivery_list *l);

#endif
