/*
 * NAME
 *	intake - portal events into the delivery queue: validate, claim,
 *	make the thread
 * DESCRIPTION
 *	See intake.h.
 */
#include "intake.h"
#include "event.h"
#include "log.h"
#include "queue.h"
#include "record.h"
#include "token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failure at claim, logged once its transaction has committed. */
struct claim_failure {
	char id[STORE_ID_MAX + 1];
	char patient[STORE_ID_MAX + 1];	/* "" when the event named none */
	char reason[160];
};

struct claim {
	int64_t now;
	int token_ttl;
	size_t max;
	size_t claimed;
	struct claim_failure *failures;	/* room for max */
	size_t nfailed;
};

/* portal_type - the type of a failed event as its record keeps it: as
 * the event named it when it is one the portal may write, else "unknown"
 * (an internal type is as unknown to the portal as a made-up one). */
static const char *
portal_type(const char *name)
{
	const struct event_type *et = event_type_find(name);

	return et != NULL && !et->internal ? name : "unknown";
}

static void
note_failure(struct claim *c, const char *id, const char *patient,
	     const char *reason)
{
	struct claim_failure *f;

	if (c->nfailed >= c->max)
		return;
	f = &c->failures[c->nfailed++];
	/* An id that is no id may be anything the portal wrote (an address,
	 * a name): never logged. */
	cp_strlcpy(f->id, id && id_valid(id) ? id : "(invalid id)", sizeof(f->id));
	cp_strlcpy(f->patient, patient && id_valid(patient) ? patient : "",
		   sizeof(f->patient));
	cp_strlcpy(f->reason, reason, sizeof(f->reason));
}

static int
fail_event(struct store *s, MDB_txn *txn, const char *id, json_t *ev,
	   const char *reason, struct claim *c, struct cp_error *err)
{
	struct delivery d;
	const char *type = NULL, *patient = NULL;
	int r;

	if (ev != NULL) {
		const char *t;
		int has_type;

		event_peek(ev, &t, &has_type, &patient);
		if (has_type)
			type = portal_type(t);
	}
	if (delivery_failed_event(&d, id, type, patient, reason, c->now) < 0)
		return cp_error_set(err, -ENOMEM, "intake: out of memory");
	r = queue_txn_put(s, txn, &d, err);
	delivery_clear(&d);
	if (r == 0)
		note_failure(c, id, patient, reason);
	return r;
}

/* claim_valid - the records of a valid event whose patient exists. */
static int
claim_valid(struct store *s, MDB_txn *txn, const struct event *ev,
	    struct claim *c, struct cp_error *err)
{
	uint8_t thread[TOKEN_THREAD_BYTES];
	char thread_hex[2 * TOKEN_THREAD_BYTES + 1];
	struct delivery d;
	struct thread_record th;
	int r;

	token_thread_from_id(ev->id, thread);
	cp_hex(thread, sizeof(thread), thread_hex);
	if (delivery_from_event(&d, ev, thread_hex, c->now) < 0)
		return cp_error_set(err, -ENOMEM, "intake: out of memory");
	r = queue_txn_enqueue(s, txn, &d, err);
	delivery_clear(&d);
	if (r < 0)
		return r;
	if (thread_from_event(&th, ev, c->now, c->token_ttl) < 0)
		return cp_error_set(err, -ENOMEM, "intake: out of memory");
	r = thread_txn_put(s, txn, thread, &th, err);
	thread_clear(&th);
	return r;
}

/* patient_readable - 0 when the patient's record is there and JSON. */
static int
patient_readable(struct store *s, MDB_txn *txn, const char *pid)
{
	json_t *p = NULL;
	int r = store_txn_get_json(s, txn, DB_PATIENTS, pid, strlen(pid), &p, NULL);

	json_decref(p);
	return r;
}

static int
claim_one(struct store *s, MDB_txn *txn, const char *id, const void *val,
	  size_t len, struct claim *c, struct cp_error *err)
{
	json_t *ev;
	json_error_t jerr;
	struct event e;
	char reason[160];
	int r;

	r = store_txn_has(s, txn, DB_DELIVERY, id, strlen(id), err);
	if (r != 0)
		return r < 0 ? r : 0;	/* the same id again: sent once */
	if (len > EVENT_JSON_MAX)
		return fail_event(s, txn, id, NULL, "invalid event: JSON over 256 KiB",
				  c, err);
	ev = json_loadb(val, len, JSON_REJECT_DUPLICATES, &jerr);
	if (ev == NULL) {
		snprintf(reason, sizeof(reason),
			 "invalid event: not JSON (line %d, column %d)",
			 jerr.line, jerr.column);
		return fail_event(s, txn, id, NULL, reason, c, err);
	}
	memcpy(reason, "invalid event: ", 15);
	if (event_load(ev, &e, reason + 15, sizeof(reason) - 15) < 0)
		r = fail_event(s, txn, id, ev, reason, c, err);
	else if (strcmp(e.id, id) != 0)
		r = fail_event(s, txn, id, ev, "invalid event: field id differs from its key",
			       c, err);
	else if ((r = patient_readable(s, txn, e.patient)) < 0)
		r = fail_event(s, txn, id, ev, r == -ENOENT ? "unknown patient" :
			       "patient record unreadable", c, err);
	else
		r = claim_valid(s, txn, &e, c, err);
	json_decref(ev);
	return r;
}

static int
claim_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct claim *c = ud;
	int r = 0;

	c->nfailed = 0;		/* a transaction begun again starts afresh */
	for (c->claimed = 0; c->claimed < c->max; c->claimed++) {
		const void *key, *val;
		size_t keylen, len;
		char id[STORE_ID_MAX + 1];
		int usable;

		r = store_txn_first(s, txn, DB_EVENTS, &key, &keylen, &val, &len, err);
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
		/* Not an id we could ever report on: dropped. */
		usable = keylen > 0 && keylen <= STORE_ID_MAX &&
			 memchr(key, '\0', keylen) == NULL;
		if (usable) {
			memcpy(id, key, keylen);
			id[keylen] = '\0';
			r = id_valid(id) ? claim_one(s, txn, id, val, len, c, err) :
			    fail_event(s, txn, id, NULL, "invalid event: bad id", c, err);
			if (r < 0)
				return r;
			r = store_txn_del(s, txn, DB_EVENTS, id, keylen, err);
		} else {
			char raw[512];	/* LMDB's largest key: 511 bytes */

			memcpy(raw, key, keylen < sizeof(raw) ? keylen : sizeof(raw));
			r = store_txn_del(s, txn, DB_EVENTS, raw, keylen, err);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int
intake_claim(struct store *s, int64_t now, int token_ttl, size_t max,
	     size_t *claimed, size_t *failed, struct cp_error *err)
{
	struct claim c = { now, token_ttl, max, 0, NULL, 0 };
	size_t i;
	int r;

	if (claimed)
		*claimed = 0;
	if (failed)
		*failed = 0;
	if (max > 0 && (c.failures = calloc(max, sizeof(*c.failures))) == NULL)
		return cp_error_set(err, -ENOMEM, "intake: out of memory");
	r = store_write(s, claim_txn, &c, err);
	if (r == 0) {
		/* Committed: now the failures are so, and are told. */
		for (i = 0; i < c.nfailed; i++)
			log_event(LOG_WARNING, LOGID_FAILED, c.failures[i].id,
				  c.failures[i].patient[0] ? c.failures[i].patient : NULL,
				  "failed at claim: %s", c.failures[i].reason);
		if (claimed)
			*claimed = c.claimed;
		if (failed)
			*failed = c.nfailed;
	}
	free(c.failures);
	return r;
}

int
intake_put_event(struct store *s, const char *id, const char *json, size_t len,
		 struct cp_error *err)
{
	if (!id_valid(id))
		return cp_error_set(err, -EINVAL, "event id: expected 1-128 of [A-Za-z0-9._:@-]");
	if (len > EVENT_JSON_MAX)
		return cp_error_set(err, -EFBIG, "event %s: JSON over %d bytes", id, EVENT_JSON_MAX);
	return store_put_raw(s, DB_EVENTS, id, strlen(id), json, len, err);
}
