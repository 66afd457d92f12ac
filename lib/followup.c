/*
 * followup - see followup.h.
 */
#include "followup.h"
#include "mime.h"
#include "queue.h"
#include "token.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_STAFF	16

static void
utc_day(int64_t now, char out[16])
{
	time_t t = (time_t)now;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 16, "%Y-%m-%d", &tm);
}

/*
 * add_staff - the department's staff as recipients of d, else the
 * default department's; *desk names the department whose staff they are
 * (dept itself when neither has staff). -ENOMEM.
 */
static int
add_staff(struct delivery *d, const struct cp_config *cfg, const char *dept,
	  const char **desk)
{
	const struct cp_department *dp = config_department(cfg, dept);
	const char *p;

	*desk = dept;
	if ((dp == NULL || dp->staff == NULL) && cfg->default_department) {
		dp = config_department(cfg, cfg->default_department);
		*desk = cfg->default_department;
	}
	if (dp == NULL || dp->staff == NULL)
		return 0;
	for (p = dp->staff; *p && d->nrcpts < MAX_STAFF;) {
		size_t n = strcspn(p, ","), a = 0, b = n;
		char addr[256];

		while (a < b && isspace((unsigned char)p[a]))
			a++;
		while (b > a && isspace((unsigned char)p[b - 1]))
			b--;
		if (b > a && b - a < sizeof(addr)) {
			char ref[24];

			memcpy(addr, p + a, b - a);
			addr[b - a] = '\0';
			snprintf(ref, sizeof(ref), "staff:%zu", d->nrcpts);
			if (mime_addr_valid(addr) &&
			    delivery_add_rcpt(d, ref, RCPT_NOTICE, addr) == NULL)
				return -ENOMEM;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/*
 * internal_new - a delivery record of an internal type, due at due, for
 * the reply f describes ("PREFIX:MSGID"); its recipients are added after
 * and internal_enqueue puts it in txn.
 */
static int
internal_new(const struct followup *f, struct delivery *d, const char *prefix,
	     const char *type, int64_t due, struct cp_error *err)
{
	char id[STORE_ID_MAX + 1], hex[2 * TOKEN_THREAD_BYTES + 1];
	uint8_t thread[TOKEN_THREAD_BYTES];
	json_t *data;

	snprintf(id, sizeof(id), "%s:%s", prefix, f->inbox_id);
	token_thread_from_id(id, thread);
	cp_hex(thread, sizeof(thread), hex);
	/* a staff alert answers no one: no In-Reply-To */
	data = delivery_internal_data(strcmp(type, "staff_alert") != 0 ?
				      f->message_id : NULL);
	if (data == NULL ||
	    delivery_internal(d, id, type, f->patient, f->department, hex,
			      f->urgent, f->inbox_id, f->now, due, data) < 0)
		return cp_error_set(err, -ENOMEM, "followup: out of memory");
	return 0;
}

/*
 * internal_enqueue - d, its schedule entry and its thread (so replies
 * to an acknowledgement stay in the conversation, and a bounce of it
 * maps to this record), in txn. Clears d.
 */
static int
internal_enqueue(struct store *s, MDB_txn *txn, const struct followup *f,
		 struct delivery *d, struct cp_error *err)
{
	struct thread_record th;
	uint8_t thread[TOKEN_THREAD_BYTES];
	int r;

	r = queue_txn_enqueue(s, txn, d, err);
	if (r == 0 && thread_for_internal(&th, f->thread, d->id, f->now,
					  f->cfg->token_ttl) < 0)
		r = cp_error_set(err, -ENOMEM, "followup: out of memory");
	if (r == 0) {
		token_thread_from_id(d->id, thread);
		r = thread_txn_put(s, txn, thread, &th, err);
		thread_clear(&th);
	}
	delivery_clear(d);
	return r;
}

/*
 * alert_new - a staff alert to the department's staff (see add_staff),
 * held or not. *desk as add_staff; d has no recipient when nobody is on
 * staff.
 */
static int
alert_new(const struct followup *f, struct delivery *d, int64_t due, int held,
	  const char **desk, struct cp_error *err)
{
	int r = internal_new(f, d, "alert", "staff_alert", due, err);

	if (r < 0)
		return r;
	d->held = held;
	d->count = 1;
	d->has_count = 1;
	if (add_staff(d, f->cfg, f->department, desk) < 0) {
		delivery_clear(d);
		return cp_error_set(err, -ENOMEM, "followup: out of memory");
	}
	return 0;
}

/*
 * alert_staff - the staff alert for a filed reply, in the filing
 * transaction. With routing.alert_window 0: an alert per reply. Else
 * alerts are coalesced per department and class (urgent or not, so that
 * an urgent reply never waits behind a normal one) through the acks
 * entry "alert/DEPT/urgent|normal" = {"until", "held"?}:
 *
 *   - its held alert, while still "queued" (outbound has not taken it),
 *     takes the reply: "count" + 1;
 *   - else, from "until" on (or without an entry): an alert now, and a
 *     window until now + alert_window;
 *   - else: a new held alert, due at "until", and the next window runs
 *     from its sending: until + alert_window.
 *
 * Every reply is in an alert that is sent after it was filed; after the
 * first, alerts of a class go out at least a window apart. Being in the
 * filing transaction, a crash never loses or doubles one, and replies
 * filed in one batch (inbound_batch_commit) see each other's state.
 */
static int
alert_staff(struct store *s, MDB_txn *txn, const struct followup *f,
	    struct followup_result *res, struct cp_error *err)
{
	int64_t window = f->cfg->alert_window, until;
	struct alert_window aw;
	struct delivery d, held;
	char key[STORE_ID_MAX + 32];
	const char *desk;
	int r;

	res->alerted = res->alert_held = 0;	/* store_write may run this twice */
	/* Who gets it, and so whose window it is: departments without
	 * staff of their own share the default one's. */
	r = alert_new(f, &d, f->now, 0, &desk, err);
	if (r < 0)
		return r;
	if (d.nrcpts == 0) {
		delivery_clear(&d);
		return 0;
	}
	res->alerted = 1;
	if (window <= 0)
		return internal_enqueue(s, txn, f, &d, err);
	snprintf(key, sizeof(key), "alert/%s/%s", desk,
		 f->urgent ? "urgent" : "normal");
	r = alert_window_txn_get(s, txn, key, &aw, err);
	if (r < 0)
		goto out;
	if (aw.held[0] != '\0') {
		r = queue_txn_get(s, txn, aw.held, &held, err);
		if (r < 0 && r != -ENOENT)
			goto out;
		if (r == 0 && held.state == DELIVERY_QUEUED) {
			held.count = (held.has_count ? held.count : 0) + 1;
			held.has_count = 1;
			r = queue_txn_put(s, txn, &held, err);
			delivery_clear(&held);
			res->alert_held = 1;
			goto out;
		}
		if (r == 0)
			delivery_clear(&held);
	}
	until = aw.until;
	if (f->now >= until) {
		r = internal_enqueue(s, txn, f, &d, err);
		aw.until = f->now + window;
		aw.held[0] = '\0';
	} else {
		d.due = (time_t)until;
		d.held = 1;
		cp_strlcpy(aw.held, d.id, sizeof(aw.held));
		r = internal_enqueue(s, txn, f, &d, err);
		aw.until = until + window;
		res->alert_held = 1;
	}
	if (r == 0)
		r = alert_window_txn_put(s, txn, key, &aw, err);
out:
	delivery_clear(&d);
	return r;
}

/* sender_new - an internal record to the reply's sender, as a notice. */
static int
sender_new(const struct followup *f, struct delivery *d, const char *prefix,
	   const char *type, struct cp_error *err)
{
	int r = internal_new(f, d, prefix, type, f->now, err);

	if (r == 0 && delivery_add_rcpt(d, f->sender_ref, RCPT_NOTICE, NULL) == NULL) {
		delivery_clear(d);
		r = cp_error_set(err, -ENOMEM, "followup: out of memory");
	}
	return r;
}

/* acks_has - whether the acks database has key (in txn): *has. */
static int
acks_has(struct store *s, MDB_txn *txn, const char *key, int *has,
	 struct cp_error *err)
{
	json_t *v = NULL;
	int r = store_txn_get_json(s, txn, DB_ACKS, key, strlen(key), &v, err);

	json_decref(v);
	if (r < 0 && r != -ENOENT)
		return r;
	*has = r == 0;
	return 0;
}


int
followup_txn(struct store *s, MDB_txn *txn, const struct followup *f,
	     struct followup_result *out, struct cp_error *err)
{
	char key[2 * STORE_ID_MAX + 64], form_key[2 * STORE_ID_MAX + 64], day[16];
	int r, ack_today = 0, asked_today = 0;

	memset(out, 0, sizeof(*out));
	r = alert_staff(s, txn, f, out, err);
	if (r < 0 || f->no_autoresponse)
		return r;
	utc_day(f->now, day);
	snprintf(key, sizeof(key), "%s/%s", f->event, day);
	if ((r = acks_has(s, txn, key, &ack_today, err)) < 0)
		return r;
	/* A form request at most once per conversation per day too: each
	 * reply to a request that still misses answers must not draw another
	 * (a loop with a careless auto-responder, a flood with a stolen
	 * token). It counts as the day's acknowledgement. */
	snprintf(form_key, sizeof(form_key), "%s/%s/form", f->event, day);
	if (f->form && f->form_missing &&
	    (r = acks_has(s, txn, form_key, &asked_today, err)) < 0)
		return r;
	out->form_incomplete = f->form && f->form_missing && !asked_today;
	out->acked = !ack_today && !out->form_incomplete;
	if (out->form_incomplete || out->acked) {
		struct delivery d;

		r = out->form_incomplete ?
		    sender_new(f, &d, "formreq", "form_incomplete", err) :
		    sender_new(f, &d, "ack", "reply_ack", err);
		if (r == 0)
			r = internal_enqueue(s, txn, f, &d, err);
	}
	if (r == 0 && (out->acked || out->form_incomplete)) {
		struct ack_mark mark = { .at = (time_t)f->now };

		snprintf(mark.delivery, sizeof(mark.delivery), "%s:%s",
			 out->acked ? "ack" : "formreq", f->inbox_id);
		r = ack_mark_txn_put(s, txn, key, &mark, err);
		if (r == 0 && out->form_incomplete)
			r = ack_mark_txn_put(s, txn, form_key, &mark, err);
	}
	return r;
}
