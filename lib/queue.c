/*
 * NAME
 *	queue - the delivery queue: delivery records and their schedule
 * DESCRIPTION
 *	See queue.h. Walks of the schedule collect the entries first and
 *	then change records: rescheduling moves keys under a cursor.
 */
#include "queue.h"
#include "event.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
queue_txn_get(struct store *s, MDB_txn *txn, const char *id,
	      struct delivery *d, struct cp_error *err)
{
	json_t *v;
	int r;

	r = store_txn_get_json(s, txn, DB_DELIVERY, id, strlen(id), &v, err);
	if (r < 0) {
		memset(d, 0, sizeof(*d));
		return r;
	}
	r = delivery_load(v, d, err);
	json_decref(v);
	return r;
}

int
queue_txn_put(struct store *s, MDB_txn *txn, const struct delivery *d,
	      struct cp_error *err)
{
	json_t *v;
	int r;

	if (d->id == NULL || d->id[0] == '\0' || strlen(d->id) > STORE_ID_MAX)
		return cp_error_set(err, -EINVAL, "delivery record: bad id");
	v = delivery_dump(d);
	if (v == NULL)
		return cp_error_set(err, -ENOMEM, "delivery record: out of memory");
	r = store_txn_put_json(s, txn, DB_DELIVERY, d->id, strlen(d->id), v, err);
	json_decref(v);
	return r;
}

int
queue_txn_enqueue(struct store *s, MDB_txn *txn, const struct delivery *d,
		  struct cp_error *err)
{
	int r;

	if (!id_valid(d->id))
		return cp_error_set(err, -EINVAL, "delivery record: bad id");
	r = queue_txn_put(s, txn, d, err);
	return r < 0 ? r : store_txn_schedule_put(s, txn, d->due, d->id, err);
}

struct get_one {
	const char *id;
	struct delivery *d;
};

static int
get_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct get_one *g = ud;

	return queue_txn_get(s, txn, g->id, g->d, err);
}

int
queue_get(struct store *s, const char *id, struct delivery *d,
	  struct cp_error *err)
{
	struct get_one g = { id, d };

	return store_read(s, get_txn, &g, err);
}

/* ---- schedule walks ---- */

struct due_entry {
	int64_t due;
	char id[STORE_ID_MAX + 1];
};

struct collect {
	struct due_entry *v;
	size_t n, cap;
	size_t max;
	int64_t until;		/* take: stop past it */
	int64_t after;		/* release: skip up to it */
	int nomem;
};

static int
collect_entry(void *ud, int64_t due, const char *id)
{
	struct collect *c = ud;

	if (due > c->until)
		return 1;
	if (due <= c->after)
		return 0;
	if (c->n >= c->max)
		return 1;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct due_entry *v = reallocarray(c->v, cap, sizeof(*v));

		if (v == NULL) {
			c->nomem = 1;
			return -ENOMEM;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n].due = due;
	cp_strlcpy(c->v[c->n].id, id, sizeof(c->v[c->n].id));
	c->n++;
	return 0;
}

static int
collect(struct store *s, MDB_txn *txn, struct collect *c, struct cp_error *err)
{
	int r;

	c->n = 0;
	r = store_txn_schedule_walk(s, txn, collect_entry, c, err);
	if (r == 1)
		r = 0;
	if (c->nomem)
		return cp_error_set(err, -ENOMEM, "schedule: out of memory");
	return r;
}

/* ---- take ---- */

struct take {
	int64_t now;
	int lease;
	size_t max;
	struct delivery_list *batch;
	size_t first;		/* batch->n before: a rerun starts again here */
};

static int
take_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct take *t = ud;
	struct collect c = { .max = t->max, .until = t->now, .after = INT64_MIN };
	size_t i;
	int r;

	while (t->batch->n > t->first)
		delivery_clear(&t->batch->items[--t->batch->n]);
	r = collect(s, txn, &c, err);
	for (i = 0; i < c.n && r == 0; i++) {
		struct delivery *d;
		struct cp_error lerr;

		/* The entry found goes, whatever the record says. */
		r = store_txn_schedule_del(s, txn, c.v[i].due, c.v[i].id, err);
		if (r < 0)
			break;
		d = delivery_list_add(t->batch);
		if (d == NULL) {
			r = cp_error_set(err, -ENOMEM, "schedule: out of memory");
			break;
		}
		cp_error_clear(&lerr);
		r = queue_txn_get(s, txn, c.v[i].id, d, &lerr);
		if (r == -ENOENT || r == -EBADMSG || r == -EPROTO) {
			/* No record, or one that cannot be read: off the
			 * schedule (it would stall every batch), and said. */
			if (r != -ENOENT)
				log_warning("delivery %s: %s: taken off the schedule",
					    c.v[i].id, lerr.text);
			t->batch->n--;
			r = 0;
			continue;
		}
		if (r < 0) {
			*err = lerr;
			t->batch->n--;
			break;
		}
		if (d->due != c.v[i].due)
			r = store_txn_schedule_del(s, txn, d->due, d->id, err);
		if (r == 0 && delivery_state_final(d->state)) {
			delivery_clear(d);
			t->batch->n--;
			continue;
		}
		delivery_set_state(d, DELIVERY_SENDING, NULL, t->now);
		d->due = (time_t)(t->now + t->lease);
		if (r == 0)
			r = store_txn_schedule_put(s, txn, d->due, d->id, err);
		if (r == 0)
			r = queue_txn_put(s, txn, d, err);
	}
	free(c.v);
	return r;
}

int
queue_take_due(struct store *s, int64_t now, int lease, size_t max,
	       struct delivery_list *batch, struct cp_error *err)
{
	struct take t = { now, lease, max, batch, batch->n };
	int r = store_write(s, take_txn, &t, err);

	if (r < 0)
		while (batch->n > t.first)
			delivery_clear(&batch->items[--batch->n]);
	return r < 0 ? r : 0;
}

/* ---- update ---- */

struct update {
	struct delivery *records;
	size_t n;
	const struct audit_event *events;
	size_t nevents;
};

static int
update_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct update *u = ud;
	size_t i;
	int r;

	for (i = 0; i < u->n; i++) {
		struct delivery *d = &u->records[i];
		json_t *old;

		if (d->id == NULL)
			continue;
		/* only its due: where its schedule entry is now */
		r = store_txn_get_json(s, txn, DB_DELIVERY, d->id, strlen(d->id), &old, err);
		if (r < 0)
			return r;
		r = store_txn_schedule_del(s, txn, delivery_peek_due(old), d->id, err);
		json_decref(old);
		if (r < 0)
			return r;
		if (delivery_state_final(d->state)) {
			json_decref(d->data);
			d->data = NULL;
			d->scrubbed = 1;
		} else {
			r = store_txn_schedule_put(s, txn, d->due, d->id, err);
			if (r < 0)
				return r;
		}
		r = queue_txn_put(s, txn, d, err);
		if (r < 0)
			return r;
	}
	return audit_append_n(s, txn, u->events, u->nevents, err);
}

int
queue_update(struct store *s, struct delivery *records, size_t n,
	     struct cp_error *err)
{
	return queue_update_audited(s, records, n, NULL, 0, err);
}

int
queue_update_audited(struct store *s, struct delivery *records, size_t n,
		     const struct audit_event *events, size_t nevents,
		     struct cp_error *err)
{
	struct update u = { records, n, events, nevents };
	struct cp_error aerr;
	int r;

	cp_error_clear(&aerr);
	r = store_write(s, update_txn, &u, &aerr);
	if (r == 0 || nevents == 0) {
		if (r < 0)
			*err = aerr;
		return r;
	}
	/* What was sent must be recorded whatever became of its audit
	 * records (else it would be sent again): the update alone, and
	 * the audit failure said (ids only: the audit layer's text). */
	u.nevents = 0;
	r = store_write(s, update_txn, &u, err);
	if (r == 0)
		log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL, "audit: %zu records of "
			  "a batch not written: %s", nevents, aerr.text);
	return r;
}

/* ---- retry ---- */

struct retry {
	const char *id;
	int64_t now;
};

static int
retry_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct retry *rt = ud;
	struct delivery d;
	size_t i;
	int r;

	r = queue_txn_get(s, txn, rt->id, &d, err);
	if (r < 0)
		return r;
	if (d.scrubbed) {
		r = cp_error_set(err, -EPERM,
			"event %s: %s and its data scrubbed: the portal must write a new event",
			rt->id, delivery_state_name(d.state));
		delivery_clear(&d);
		return r;
	}
	r = store_txn_schedule_del(s, txn, d.due, rt->id, err);
	for (i = 0; i < d.nrcpts; i++)
		if (d.rcpts[i].state == RCPT_FAILED)
			d.rcpts[i].state = RCPT_PENDING;
	if (r == 0)
		r = delivery_set_state(&d, DELIVERY_QUEUED, "retry requested", rt->now);
	d.due = (time_t)rt->now;
	d.attempts = 0;
	if (r == 0)
		r = queue_txn_enqueue(s, txn, &d, err);
	delivery_clear(&d);
	return r;
}

int
queue_retry(struct store *s, const char *id, int64_t now, struct cp_error *err)
{
	struct retry rt = { id, now };

	return store_write(s, retry_txn, &rt, err);
}

/* ---- release ---- */

struct release {
	int64_t now;
	size_t n;
};

static int
release_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct release *rl = ud;
	/* Leases run into the future: only entries due after now. */
	struct collect c = { .max = SIZE_MAX, .until = INT64_MAX, .after = rl->now };
	size_t i;
	int r;

	rl->n = 0;
	r = collect(s, txn, &c, err);
	for (i = 0; i < c.n && r == 0; i++) {
		struct delivery d;

		if (queue_txn_get(s, txn, c.v[i].id, &d, NULL) < 0)
			continue;	/* no record, or unreadable: take skips it */
		if (d.state != DELIVERY_SENDING) {
			delivery_clear(&d);
			continue;
		}
		r = store_txn_schedule_del(s, txn, c.v[i].due, d.id, err);
		if (r == 0)
			r = delivery_set_state(&d, DELIVERY_QUEUED, NULL, rl->now);
		d.due = (time_t)rl->now;
		if (r == 0)
			r = queue_txn_enqueue(s, txn, &d, err);
		delivery_clear(&d);
		if (r == 0)
			rl->n++;
	}
	free(c.v);
	return r;
}

int
queue_release_leases(struct store *s, int64_t now, size_t *released,
		     struct cp_error *err)
{
	struct release rl = { now, 0 };
	int r = store_write(s, release_txn, &rl, err);

	*released = r < 0 ? 0 : rl.n;
	return r;
}

/* ---- metrics ---- */

struct oldest {
	int64_t created;
};

static int
oldest_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct oldest *o = ud;
	struct collect c = { .max = SIZE_MAX, .until = INT64_MAX, .after = INT64_MIN };
	size_t i;
	int r;

	r = collect(s, txn, &c, err);
	for (i = 0; i < c.n && r == 0; i++) {
		struct delivery d;

		if (queue_txn_get(s, txn, c.v[i].id, &d, NULL) < 0)
			continue;
		if (d.created > 0 && d.created < o->created)
			o->created = d.created;
		delivery_clear(&d);
	}
	free(c.v);
	return r;
}

int
queue_oldest_pending(struct store *s, int64_t *created, struct cp_error *err)
{
	struct oldest o = { INT64_MAX };
	int r = store_read(s, oldest_txn, &o, err);

	*created = o.created;
	return r;
}

static int
tally_each(void *ud, const char *key, size_t keylen, json_t *v)
{
	struct queue_tally *t = ud;
	struct delivery d;

	if (delivery_load(v, &d, NULL) < 0)
		return 0;	/* not counted: it has no state to count */
	t->by_state[d.state]++;
	delivery_clear(&d);
	return 0;
}

int
queue_tally(struct store *s, struct queue_tally *t, struct cp_error *err)
{
	memset(t, 0, sizeof(*t));
	return store_foreach(s, DB_DELIVERY, tally_each, t, err);
}
