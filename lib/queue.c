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

/* ---- the counts and indexes (queue.h): changed with each record ---- */

/* A stored record as the counts and indexes know it; exists 0: none. */
struct was {
	int exists;
	struct delivery_peek p;
};

static void
was_from(struct was *w, const struct delivery *d)
{
	w->exists = 1;
	w->p.state = d->state;
	w->p.created = d->created;
	w->p.due = d->due;
}

/* was_read - id's stored record; one counted nowhere reads as none. */
static int
was_read(struct store *s, MDB_txn *txn, const char *id, struct was *w,
	 struct cp_error *err)
{
	json_t *v;
	int r;

	memset(w, 0, sizeof(*w));
	r = store_txn_get_json(s, txn, DB_DELIVERY, id, strlen(id), &v, err);
	if (r == -ENOENT || r == -EBADMSG)
		return 0;
	if (r < 0)
		return r;
	w->exists = delivery_peek(v, &w->p) == 0;
	json_decref(v);
	return 0;
}

/* count - add delta to the count of records in state st. */
static int
count(struct store *s, MDB_txn *txn, enum delivery_state st, int64_t delta,
      struct cp_error *err)
{
	char name[32];

	snprintf(name, sizeof(name), "delivery.%s", delivery_state_name(st));
	return store_txn_counter_add(s, txn, DB_COUNTS, name, delta, err);
}

/*
 * reindex_indexes - "pending" and "leases" for record id going from w to
 * d (NULL: removed), in the transaction of the change.
 */
static int
reindex_indexes(struct store *s, MDB_txn *txn, const char *id,
		const struct was *w, const struct delivery *d,
		struct cp_error *err)
{
	int was_open = w->exists && !delivery_state_final(w->p.state) &&
		       w->p.created > 0;
	int is_open = d != NULL && !delivery_state_final(d->state) && d->created > 0;
	int was_leased = w->exists && w->p.state == DELIVERY_SENDING;
	int is_leased = d != NULL && d->state == DELIVERY_SENDING;
	int r = 0;

	if (was_open && (!is_open || d->created != w->p.created))
		r = store_txn_timed_del(s, txn, DB_PENDING, w->p.created, id, err);
	if (r == 0 && is_open && (!was_open || d->created != w->p.created))
		r = store_txn_timed_put(s, txn, DB_PENDING, d->created, id, err);
	if (r == 0 && was_leased && !is_leased)
		r = store_txn_del(s, txn, DB_LEASES, id, strlen(id), err);
	if (r == 0 && is_leased && !was_leased)
		r = store_txn_put_raw(s, txn, DB_LEASES, id, strlen(id), "", 0, err);
	return r;
}

/* reindex - the counts and the indexes, for record id from w to d. */
static int
reindex(struct store *s, MDB_txn *txn, const char *id, const struct was *w,
	const struct delivery *d, struct cp_error *err)
{
	int r = 0;

	if (w->exists && (d == NULL || d->state != w->p.state))
		r = count(s, txn, w->p.state, -1, err);
	if (r == 0 && d != NULL && (!w->exists || d->state != w->p.state))
		r = count(s, txn, d->state, 1, err);
	return r < 0 ? r : reindex_indexes(s, txn, id, w, d, err);
}

/*
 * unindex - record id (kept: it is counted as it is) out of the indexes
 * of open work: one that cannot be loaded is nobody's work.
 */
static int
unindex(struct store *s, MDB_txn *txn, const char *id, struct cp_error *err)
{
	struct was w;
	int r = was_read(s, txn, id, &w, err);

	if (r < 0)
		return r;
	if (!w.exists)
		return store_txn_del(s, txn, DB_LEASES, id, strlen(id), err);
	return reindex_indexes(s, txn, id, &w, NULL, err);
}

/* put_was - write d over the record w says is stored, counts and all. */
static int
put_was(struct store *s, MDB_txn *txn, const struct delivery *d,
	const struct was *w, struct cp_error *err)
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
	return r < 0 ? r : reindex(s, txn, d->id, w, d, err);
}

int
queue_txn_put(struct store *s, MDB_txn *txn, const struct delivery *d,
	      struct cp_error *err)
{
	struct was w;
	int r;

	if (d->id == NULL || d->id[0] == '\0' || strlen(d->id) > STORE_ID_MAX)
		return cp_error_set(err, -EINVAL, "delivery record: bad id");
	if ((r = was_read(s, txn, d->id, &w, err)) < 0)
		return r;
	return put_was(s, txn, d, &w, err);
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

int
queue_txn_remove(struct store *s, MDB_txn *txn, const char *id,
		 struct cp_error *err)
{
	struct was w;
	json_t *v;
	int r;

	r = store_txn_get_json(s, txn, DB_DELIVERY, id, strlen(id), &v, err);
	if (r == -ENOENT)
		return 0;
	memset(&w, 0, sizeof(w));
	if (r == 0) {
		w.exists = delivery_peek(v, &w.p) == 0;
		w.p.due = delivery_peek_due(v);
		json_decref(v);
	} else if (r != -EBADMSG) {
		return r;
	}
	r = store_txn_del(s, txn, DB_DELIVERY, id, strlen(id), err);
	if (r == 0 && w.p.due != 0)
		r = store_txn_schedule_del(s, txn, w.p.due, id, err);
	return r < 0 ? r : reindex(s, txn, id, &w, NULL, err);
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
	struct was w;
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
			 * schedule (it would stall every batch) and the
			 * indexes of open work, and said. */
			if (r != -ENOENT)
				log_warning("delivery %s: %s: taken off the schedule",
					    c.v[i].id, lerr.text);
			t->batch->n--;
			r = unindex(s, txn, c.v[i].id, err);
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
		was_from(&w, d);
		delivery_set_state(d, DELIVERY_SENDING, NULL, t->now);
		d->due = (time_t)(t->now + t->lease);
		if (r == 0)
			r = store_txn_schedule_put(s, txn, d->due, d->id, err);
		if (r == 0)
			r = put_was(s, txn, d, &w, err);
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
		struct was w;
		json_t *old;

		if (d->id == NULL)
			continue;
		/* its due (where its schedule entry is now), and what the
		 * counts know of it */
		r = store_txn_get_json(s, txn, DB_DELIVERY, d->id, strlen(d->id), &old, err);
		if (r < 0)
			return r;
		memset(&w, 0, sizeof(w));
		w.exists = delivery_peek(old, &w.p) == 0;
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
		r = put_was(s, txn, d, &w, err);
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
	struct was w;
	size_t i;
	int r;

	r = queue_txn_get(s, txn, rt->id, &d, err);
	if (r < 0)
		return r;
	was_from(&w, &d);
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
		r = put_was(s, txn, &d, &w, err);
	if (r == 0)
		r = store_txn_schedule_put(s, txn, d.due, d.id, err);
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

struct ids {
	char (*v)[STORE_ID_MAX + 1];
	size_t n, cap;
};

/* collect_id - a key of "leases" (an id), into a list. */
static int
collect_id(void *ud, const void *key, size_t keylen, const void *value,
	   size_t len)
{
	struct ids *l = ud;

	(void)value;
	(void)len;
	if (keylen == 0 || keylen > STORE_ID_MAX)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		void *v = reallocarray(l->v, cap, sizeof(*l->v));

		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	memcpy(l->v[l->n], key, keylen);
	l->v[l->n][keylen] = '\0';
	l->n++;
	return 0;
}

struct release {
	int64_t now;
	size_t n;
};

static int
release_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct release *rl = ud;
	struct ids l = { NULL, 0, 0 };
	size_t i;
	int r;

	rl->n = 0;
	/* The leases index names every record "sending": no other is read. */
	r = store_txn_walk_from(s, txn, DB_LEASES, NULL, 0, collect_id, &l, err);
	if (r == -ENOMEM)
		r = cp_error_set(err, -ENOMEM, "leases: out of memory");
	for (i = 0; i < l.n && r == 0; i++) {
		struct delivery d;
		struct was w;

		if (queue_txn_get(s, txn, l.v[i], &d, NULL) < 0) {
			r = unindex(s, txn, l.v[i], err);
			continue;	/* no record, or unreadable: take skips it */
		}
		if (d.state != DELIVERY_SENDING) {	/* not this build's index */
			delivery_clear(&d);
			r = store_txn_del(s, txn, DB_LEASES, l.v[i], strlen(l.v[i]), err);
			continue;
		}
		was_from(&w, &d);
		r = store_txn_schedule_del(s, txn, d.due, d.id, err);
		if (r == 0)
			r = delivery_set_state(&d, DELIVERY_QUEUED, NULL, rl->now);
		d.due = (time_t)rl->now;
		if (r == 0)
			r = put_was(s, txn, &d, &w, err);
		if (r == 0)
			r = store_txn_schedule_put(s, txn, d.due, d.id, err);
		delivery_clear(&d);
		if (r == 0)
			rl->n++;
	}
	free(l.v);
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

/* ---- counts ---- */

static int
first_time(void *ud, int64_t t, const char *id)
{
	(void)id;
	*(int64_t *)ud = t;
	return 1;
}

static int
oldest_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	int r = store_txn_timed_walk(s, txn, DB_PENDING, first_time, ud, err);

	return r == 1 ? 0 : r;
}

int
queue_oldest_pending(struct store *s, int64_t *created, struct cp_error *err)
{
	*created = INT64_MAX;
	return store_read(s, oldest_txn, created, err);
}

static int
tally_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct queue_tally *t = ud;
	size_t i;
	int r = 0;

	for (i = 0; i < CP_ARRAY_SIZE(t->by_state) && r == 0; i++) {
		char name[32];
		uint64_t n;

		snprintf(name, sizeof(name), "delivery.%s",
			 delivery_state_name((enum delivery_state)i));
		r = store_txn_counter_get(s, txn, DB_COUNTS, name, &n, err);
		t->by_state[i] = (size_t)n;
	}
	return r;
}

int
queue_tally(struct store *s, struct queue_tally *t, struct cp_error *err)
{
	memset(t, 0, sizeof(*t));
	return store_read(s, tally_txn, t, err);
}

/* ---- the listing ---- */

struct list {
	struct store *s;
	MDB_txn *txn;
	size_t max, n;
	queue_list_fn fn;
	void *ud;
};

static int
list_entry(void *ud, int64_t due, const char *id)
{
	struct list *l = ud;
	struct delivery d;
	int r;

	(void)due;
	if (l->max > 0 && l->n >= l->max)
		return 1;
	if (queue_txn_get(l->s, l->txn, id, &d, NULL) < 0)
		return 0;		/* take skips it too */
	r = delivery_state_final(d.state) ? 0 : l->fn(l->ud, &d);
	if (!delivery_state_final(d.state))
		l->n++;
	delivery_clear(&d);
	return r;
}

static int
list_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct list *l = ud;
	int r;

	l->s = s;
	l->txn = txn;
	r = store_txn_schedule_walk(s, txn, list_entry, l, err);
	return r == 1 && l->max > 0 && l->n >= l->max ? 0 : r;
}

int
queue_list(struct store *s, size_t max, queue_list_fn fn, void *ud,
	   struct cp_error *err)
{
	struct list l = { NULL, NULL, max, 0, fn, ud };

	return store_read(s, list_txn, &l, err);
}

/* ---- the rebuild ---- */

struct rebuild {
	char last[STORE_ID_MAX + 1];
	size_t lastlen;
	int started;
	struct {
		char id[STORE_ID_MAX + 1];
		struct delivery_peek p;
	} *v;
	size_t n;
	uint64_t by_state[DELIVERY_SUPPRESSED + 1];
};

#define REBUILD_CHUNK 4096

static int
rebuild_entry(void *ud, const void *key, size_t keylen, const void *value,
	      size_t len)
{
	struct rebuild *rb = ud;
	json_t *v;

	if (rb->started && keylen == rb->lastlen && memcmp(key, rb->last, keylen) == 0)
		return 0;			/* where the last chunk ended */
	if (rb->n == REBUILD_CHUNK)
		return 1;
	if (keylen == 0 || keylen > STORE_ID_MAX || memchr(key, '\0', keylen) != NULL)
		return 0;			/* no id this build writes */
	memcpy(rb->last, key, keylen);
	rb->lastlen = keylen;
	rb->last[keylen] = '\0';
	/* read as store_txn_get_json reads it (was_read, the others) */
	v = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
	if (v != NULL && delivery_peek(v, &rb->v[rb->n].p) == 0) {
		memcpy(rb->v[rb->n].id, rb->last, keylen + 1);
		rb->by_state[rb->v[rb->n].p.state]++;
		rb->n++;
	}
	json_decref(v);
	return 0;
}

int
queue_txn_rebuild(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	struct rebuild *rb = calloc(1, sizeof(*rb));
	size_t i;
	int r;

	if (rb == NULL || (rb->v = calloc(REBUILD_CHUNK, sizeof(*rb->v))) == NULL) {
		free(rb);
		return cp_error_set(err, -ENOMEM, "queue rebuild: out of memory");
	}
	r = store_txn_del_prefix(s, txn, DB_COUNTS, "delivery.", err);
	if (r == 0)
		r = store_txn_clear(s, txn, DB_PENDING, err);
	if (r == 0)
		r = store_txn_clear(s, txn, DB_LEASES, err);
	while (r == 0) {
		struct was none = { 0 };

		rb->n = 0;
		r = store_txn_walk_from(s, txn, DB_DELIVERY, rb->last, rb->lastlen,
					rebuild_entry, rb, err);
		rb->started = 1;
		if (r < 0)
			break;
		for (i = 0; i < rb->n && r == 0; i++) {
			struct delivery d = { 0 };

			d.id = rb->v[i].id;
			d.state = rb->v[i].p.state;
			d.created = (time_t)rb->v[i].p.created;
			/* the counts are added once, below */
			r = reindex_indexes(s, txn, d.id, &none, &d, err);
		}
		if (r < 0 || rb->n < REBUILD_CHUNK)
			break;
		r = 0;
	}
	for (i = 0; i < CP_ARRAY_SIZE(rb->by_state) && r >= 0; i++)
		if (rb->by_state[i] > 0)
			r = count(s, txn, (enum delivery_state)i,
				  (int64_t)rb->by_state[i], err);
	free(rb->v);
	free(rb);
	return r < 0 ? r : 0;
}
