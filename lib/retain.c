/*
 * retain.c - the retention pass (retain.h): one bounded write transaction
 * per step, resuming from the key where the last one stopped. What a
 * record's times are is the record layer's (record.h); what is kept and
 * for how long is here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "digest.h"
#include "event.h"
#include "record.h"
#include "retain.h"
#include "queue.h"

#define RETAIN_STEP_BYTES	(8u << 20)	/* values looked at per step */
#define RETAIN_KEY_MAX		511		/* LMDB's largest key */
#define DEK_ID_LEN		16

/* The databases a pass walks, in order, and the lifetimes each applies. */
static const enum store_db steps[] = {
	DB_DELIVERY, DB_THREADS, DB_SEEN, DB_ACKS, DB_BOUNCES, DB_CLINIC,
	DB_INBOX, DB_META, DB_DIGESTS, DB_CANDIDATES,
};
#define N_STEPS	(sizeof(steps) / sizeof(steps[0]))

static const char *const kind_names[RETAIN__COUNT] = {
	[RETAIN_DELIVERY] = "delivery", [RETAIN_INTERNAL] = "internal",
	[RETAIN_THREADS] = "threads", [RETAIN_SEEN] = "seen",
	[RETAIN_ACKS] = "acks", [RETAIN_BOUNCES] = "bounces",
	[RETAIN_CLINIC] = "clinic", [RETAIN_INBOX] = "inbox",
	[RETAIN_DATA_KEYS] = "data_keys", [RETAIN_DIGESTS] = "digests",
	[RETAIN_CANDIDATES] = "candidates",
};

/* A key to delete. */
struct doomed {
	char key[RETAIN_KEY_MAX];
	size_t keylen;
	enum retain_kind kind;
};

/* Ids of data keys named by kept inbox records. */
struct dek_set {
	char (*ids)[DEK_ID_LEN + 1];
	size_t n, cap;
};

struct retain_pass {
	struct retain_policy pol;
	int dry_run;
	size_t step;			/* index into steps[] */
	char next[RETAIN_KEY_MAX];	/* where the step resumes */
	size_t nextlen;			/* 0: from its first key */
	struct dek_set used;		/* by kept inbox records */
	int keep_data_keys;		/* an inbox record did not load */
	struct retain_counts counts;
};

/* One step's work, made anew each time its transaction runs. */
struct step {
	struct retain_pass *p;
	struct store *s;
	MDB_txn *txn;
	int64_t now;
	size_t looked, bytes;
	int stopped;			/* the budget ran out at next */
	char next[RETAIN_KEY_MAX];
	size_t nextlen;
	struct doomed *doomed;
	size_t ndoomed;
	struct dek_set used;		/* added in this step */
	size_t unreadable;
	int error;
};

const char *
retain_kind_name(enum retain_kind k)
{
	return (unsigned)k < RETAIN__COUNT ? kind_names[k] : "unknown";
}

static int64_t
at_least(int64_t lifetime, int64_t floor)
{
	return lifetime != 0 && lifetime < floor ? floor : lifetime;
}

void
retain_policy_from_config(const struct cp_config *cfg, struct retain_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->lifetime[RETAIN_DELIVERY] = cfg->retain_delivery;
	pol->lifetime[RETAIN_INTERNAL] = cfg->retain_internal;
	pol->lifetime[RETAIN_THREADS] = cfg->retain_threads;
	pol->lifetime[RETAIN_SEEN] = at_least(cfg->retain_seen, RETAIN_SEEN_MIN);
	pol->lifetime[RETAIN_ACKS] = cfg->retain_acks;
	pol->lifetime[RETAIN_BOUNCES] = cfg->retain_bounces;
	pol->lifetime[RETAIN_CLINIC] = cfg->retain_clinic;
	pol->lifetime[RETAIN_INBOX] = cfg->retain_inbox;
	pol->lifetime[RETAIN_DATA_KEYS] = at_least(cfg->retain_data_keys,
						   RETAIN_DATA_KEYS_MIN);
	pol->batch = cfg->retain_batch > 0 ? (size_t)cfg->retain_batch : 500;
	cp_strlcpy(pol->actor, AUDIT_ACTOR_DAEMON, sizeof(pol->actor));
}

int
retain_pass_new(const struct retain_policy *pol, int dry_run,
		struct retain_pass **out)
{
	struct retain_pass *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (p == NULL)
		return -ENOMEM;
	p->pol = *pol;
	if (p->pol.batch == 0)
		p->pol.batch = 1;
	p->dry_run = dry_run;
	*out = p;
	return 0;
}

void
retain_pass_free(struct retain_pass *p)
{
	if (p == NULL)
		return;
	free(p->used.ids);
	free(p);
}

void
retain_pass_counts(const struct retain_pass *p, struct retain_counts *c)
{
	*c = p->counts;
}

/* ---- sets of data key ids ---- */

static int
dek_set_has(const struct dek_set *set, const char *id)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (strcmp(set->ids[i], id) == 0)
			return 1;
	return 0;
}

static int
dek_set_add(struct dek_set *set, const char *id)
{
	if (strlen(id) != DEK_ID_LEN || dek_set_has(set, id))
		return 0;
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		void *ids = realloc(set->ids, cap * sizeof(*set->ids));

		if (ids == NULL)
			return -ENOMEM;
		set->ids = ids;
		set->cap = cap;
	}
	memcpy(set->ids[set->n++], id, DEK_ID_LEN + 1);
	return 0;
}

/* ---- what is due ---- */

/* expired - a lifetime that is set and has run from since by now. */
static int
expired(int64_t since, int64_t lifetime, int64_t now)
{
	return lifetime > 0 && since <= now - lifetime;
}

static int
unhex_thread(const char *hex, uint8_t id[10])
{
	size_t i;

	if (hex == NULL || strlen(hex) != 20)
		return -1;
	for (i = 0; i < 20; i++) {
		char c = hex[i];
		int v = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (v < 0)
			return -1;
		id[i / 2] = (uint8_t)(i % 2 ? (id[i / 2] | v) : v << 4);
	}
	return 0;
}

/* txn_json - key's value in db: 1 and *v (a new reference), 0 when none. */
static int
txn_json(struct step *st, enum store_db db, const void *key, size_t keylen,
	 json_t **v)
{
	int r = store_txn_get_json(st->s, st->txn, db, key, keylen, v, NULL);

	return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

/*
 * delivery_open - whether the delivery record id is still wanted by what
 * follows it: 1 when it exists and is not final, 0 when it is final or
 * gone, < 0 when it cannot be read (kept then).
 */
static int
delivery_open(struct step *st, const char *id)
{
	struct delivery d = { 0 };
	json_t *v = NULL;
	int r;

	r = id && id[0] ? txn_json(st, DB_DELIVERY, id, strlen(id), &v) : 0;
	if (r <= 0)
		return r;
	r = delivery_load(v, &d, NULL);
	json_decref(v);
	if (r == 0)
		r = !delivery_state_final(d.state);
	delivery_clear(&d);
	return r;
}

/* token_valid - 1 while the thread named by hex still takes replies. */
static int
token_valid(struct step *st, const char *hex)
{
	struct thread_record th = { 0 };
	uint8_t id[10];
	json_t *v = NULL;
	int r;

	r = unhex_thread(hex, id) < 0 ? 0 : txn_json(st, DB_THREADS, id, sizeof(id), &v);
	if (r <= 0)
		return r;
	r = thread_load(v, &th, NULL);
	json_decref(v);
	if (r == 0)
		r = th.expires > st->now;
	thread_clear(&th);
	return r;
}

/*
 * Each judge_ returns the kind pruned (>= 0), -1 to keep, or -2 when the
 * record does not load (kept, counted).
 */
#define KEEP		(-1)
#define UNREADABLE	(-2)

static int
judge_delivery(struct step *st, json_t *v)
{
	const struct retain_policy *pol = &st->p->pol;
	const struct event_type *t;
	struct delivery d = { 0 };
	enum retain_kind kind = RETAIN_DELIVERY;
	int r = KEEP;

	if (delivery_load(v, &d, NULL) < 0)
		return UNREADABLE;
	t = d.type ? event_type_find(d.type) : NULL;
	if (t != NULL && t->internal)
		kind = RETAIN_INTERNAL;
	if (delivery_state_final(d.state) &&
	    expired(d.updated, pol->lifetime[kind], st->now) &&
	    token_valid(st, d.thread) == 0)
		r = (int)kind;
	delivery_clear(&d);
	return r;
}

static int
judge_thread(struct step *st, json_t *v)
{
	struct thread_record th = { 0 };
	int r = KEEP;

	if (thread_load(v, &th, NULL) < 0)
		return UNREADABLE;
	if (expired(th.expires, st->p->pol.lifetime[RETAIN_THREADS], st->now) &&
	    delivery_open(st, th.delivery ? th.delivery : th.event) == 0)
		r = RETAIN_THREADS;
	thread_clear(&th);
	return r;
}

/*
 * record_time - when the lifetime of a seen (at), bounces (last) or
 * clinic (received) record began; < 0 when it does not load.
 */
static int
record_time(enum store_db db, json_t *v, time_t *t)
{
	struct seen_record sr = { 0 };
	struct bounce_status b = { 0 };
	struct clinic_entry c = { 0 };
	int r = -EINVAL;

	switch (db) {
	case DB_SEEN:
		if ((r = seen_load(v, &sr, NULL)) == 0)
			*t = sr.at;
		seen_clear(&sr);
		break;
	case DB_BOUNCES:
		if ((r = bounce_load(v, &b, NULL)) == 0)
			*t = b.last;
		bounce_clear(&b);
		break;
	case DB_CLINIC:
		if ((r = clinic_load(v, &c, NULL)) == 0)
			*t = c.received;
		clinic_clear(&c);
		break;
	default:
		break;
	}
	return r;
}

/* judge_by_time - a record that nothing else needs: its time alone. */
static int
judge_by_time(struct step *st, enum retain_kind kind, json_t *v)
{
	time_t t = 0;

	if (record_time(steps[st->p->step], v, &t) < 0)
		return UNREADABLE;
	return expired(t, st->p->pol.lifetime[kind], st->now) ? (int)kind : KEEP;
}

static int
judge_ack(struct step *st, const char *key, size_t keylen, json_t *v)
{
	int64_t life = st->p->pol.lifetime[RETAIN_ACKS];
	struct alert_window w;
	struct ack_mark a;

	if (keylen > 6 && memcmp(key, "alert/", 6) == 0) {
		if (alert_window_load(v, &w, NULL) < 0)
			return UNREADABLE;
		return expired(w.until, life, st->now) &&
		       delivery_open(st, w.held) == 0 ? RETAIN_ACKS : KEEP;
	}
	if (ack_mark_load(v, &a, NULL) < 0)
		return UNREADABLE;
	return expired(a.at, life, st->now) ? RETAIN_ACKS : KEEP;
}

/* judge_inbox - a kept record's data key is in use (st->used). */
static int
judge_inbox(struct step *st, json_t *v)
{
	struct inbox_entry e = { 0 };
	int r = KEEP;

	if (inbox_load(v, &e, NULL) < 0)
		return UNREADABLE;
	if (expired(e.received, st->p->pol.lifetime[RETAIN_INBOX], st->now))
		r = RETAIN_INBOX;
	else if (e.dek != NULL && !dek_set_has(&st->p->used, e.dek) &&
		 dek_set_add(&st->used, e.dek) < 0)
		st->error = -ENOMEM;
	inbox_clear(&e);
	return r;
}

static int
judge_data_key(struct step *st, const char *key, size_t keylen, json_t *v)
{
	size_t plen = strlen(DEK_KEY_PREFIX);
	char id[DEK_ID_LEN + 1];
	time_t created;

	if (keylen != plen + DEK_ID_LEN)
		return KEEP;
	memcpy(id, key + plen, DEK_ID_LEN);
	id[DEK_ID_LEN] = '\0';
	if (dek_load_created(v, &created, NULL) < 0)
		return UNREADABLE;
	if (st->p->keep_data_keys || dek_set_has(&st->p->used, id))
		return KEEP;
	return expired(created, st->p->pol.lifetime[RETAIN_DATA_KEYS], st->now)
	       ? RETAIN_DATA_KEYS : KEEP;
}

/*
 * judge_candidate - a key candidate (key "PATIENT/REF") goes once it no
 * longer stands: its patient gone, or its ref at another address than
 * the one it came from (a proxy replaced, an address changed), so that
 * no one is offered a key someone else sent.
 */
static int
judge_candidate(struct step *st, const char *key, size_t keylen, json_t *v)
{
	const char *slash = memchr(key, '/', keylen);
	char ref[32];
	json_t *patient = NULL;
	int r, current;

	if (slash == NULL || (size_t)(key + keylen - slash - 1) >= sizeof(ref))
		return RETAIN_CANDIDATES;
	memcpy(ref, slash + 1, (size_t)(key + keylen - slash - 1));
	ref[key + keylen - slash - 1] = '\0';
	r = txn_json(st, DB_PATIENTS, key, (size_t)(slash - key), &patient);
	if (r < 0)
		return KEEP;		/* cannot tell: kept */
	current = r == 1 && key_candidate_current(v, ref, patient);
	json_decref(patient);
	return current ? KEEP : RETAIN_CANDIDATES;
}

static int
judge(struct step *st, const char *key, size_t keylen, json_t *v)
{
	if (v == NULL)
		return UNREADABLE;
	switch (steps[st->p->step]) {
	case DB_DELIVERY:	return judge_delivery(st, v);
	case DB_THREADS:	return judge_thread(st, v);
	case DB_SEEN:		return judge_by_time(st, RETAIN_SEEN, v);
	case DB_ACKS:		return judge_ack(st, key, keylen, v);
	case DB_BOUNCES:	return judge_by_time(st, RETAIN_BOUNCES, v);
	case DB_CLINIC:		return judge_by_time(st, RETAIN_CLINIC, v);
	case DB_INBOX:		return judge_inbox(st, v);
	case DB_META:		return judge_data_key(st, key, keylen, v);
	case DB_DIGESTS:	return digest_window_ended(v, st->now) ?
				       RETAIN_DIGESTS : KEEP;
	case DB_CANDIDATES:	return judge_candidate(st, key, keylen, v);
	default:		return KEEP;
	}
}

/* on_record - the walk's callback: judge one record within the budget. */
static int
on_record(void *userdata, const void *key, size_t keylen, const void *value,
	  size_t len)
{
	struct step *st = userdata;
	size_t plen = strlen(DEK_KEY_PREFIX);
	struct doomed *d;
	json_t *v;
	int kind;

	if (steps[st->p->step] == DB_META &&
	    (keylen < plen || memcmp(key, DEK_KEY_PREFIX, plen) != 0))
		return 1;		/* past the data keys: the step is done */
	if (keylen > RETAIN_KEY_MAX)
		return 0;		/* no key carepost writes */
	if (st->looked >= st->p->pol.batch || st->bytes >= RETAIN_STEP_BYTES) {
		memcpy(st->next, key, keylen);
		st->nextlen = keylen;
		st->stopped = 1;
		return 1;
	}
	st->looked++;
	st->bytes += len;
	/* read as the store's other readers read it (store_txn_get_json) */
	v = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
	kind = judge(st, key, keylen, v);
	json_decref(v);
	if (st->error < 0)
		return st->error;
	if (kind == UNREADABLE)
		st->unreadable++;
	if (kind < 0)
		return 0;
	d = &st->doomed[st->ndoomed++];
	memcpy(d->key, key, keylen);
	d->keylen = keylen;
	d->kind = (enum retain_kind)kind;
	return 0;
}

/* step_active - whether the step has anything to do under the policy. */
static int
step_active(const struct retain_pass *p, enum store_db db)
{
	const int64_t *l = p->pol.lifetime;

	switch (db) {
	case DB_DELIVERY:	return l[RETAIN_DELIVERY] || l[RETAIN_INTERNAL];
	case DB_THREADS:	return l[RETAIN_THREADS] != 0;
	case DB_SEEN:		return l[RETAIN_SEEN] != 0;
	case DB_ACKS:		return l[RETAIN_ACKS] != 0;
	case DB_BOUNCES:	return l[RETAIN_BOUNCES] != 0;
	case DB_CLINIC:		return l[RETAIN_CLINIC] != 0;
	case DB_INBOX:		return l[RETAIN_INBOX] || l[RETAIN_DATA_KEYS];
	case DB_META:		return l[RETAIN_DATA_KEYS] != 0;
	case DB_DIGESTS:	return 1;
	case DB_CANDIDATES:	return 1;
	default:		return 0;
	}
}

/*
 * audit_pruned - an inbox message deleted (key PATIENT/MSGID): its audit
 * record, in the transaction that deletes it (ids only).
 */
static int
audit_pruned(struct step *st, const char *key, size_t keylen,
	     struct cp_error *err)
{
	char k[2 * STORE_ID_MAX + 2], *slash;
	struct audit_event ev = { .action = AUDIT_PRUNED };

	if (keylen >= sizeof(k))
		return 0;
	memcpy(k, key, keylen);
	k[keylen] = '\0';
	if ((slash = strchr(k, '/')) == NULL)
		return 0;
	*slash = '\0';
	ev.actor = st->p->pol.actor[0] ? st->p->pol.actor : AUDIT_ACTOR_DAEMON;
	ev.patient = k;
	ev.inbox = slash + 1;
	return audit_append(st->s, st->txn, &ev, err);
}

static int
step_delete(struct step *st, struct cp_error *err)
{
	size_t i;
	int r;

	for (i = 0; i < st->ndoomed; i++) {
		struct doomed *d = &st->doomed[i];

		enum store_db db = steps[st->p->step];

		if (db == DB_DELIVERY || db == DB_SEEN || db == DB_BOUNCES) {
			char key[RETAIN_KEY_MAX + 1];

			memcpy(key, d->key, d->keylen);
			key[d->keylen] = '\0';
			/* with its part of the counts (and a delivery's
			 * schedule entry and indexes); a key that is no
			 * id or address (a NUL in it, too long) was never
			 * counted: it just goes */
			if (memchr(d->key, '\0', d->keylen) != NULL ||
			    (db == DB_DELIVERY && d->keylen > STORE_ID_MAX))
				r = store_txn_del(st->s, st->txn, db, d->key,
						  d->keylen, err);
			else if (db == DB_DELIVERY)
				r = queue_txn_remove(st->s, st->txn, key, err);
			else if (db == DB_SEEN)
				r = seen_txn_remove(st->s, st->txn, key, err);
			else
				r = bounce_txn_remove(st->s, st->txn, key, err);
		} else {
			r = store_txn_del(st->s, st->txn, steps[st->p->step], d->key,
					  d->keylen, err);	/* a key gone already: 0 */
		}
		if (r < 0)
			return r;
		if (steps[st->p->step] == DB_INBOX &&
		    (r = audit_pruned(st, d->key, d->keylen, err)) < 0)
			return r;
	}
	return 0;
}

/* step_txn - one step's transaction: walk, then delete (not in a dry run). */
static int
step_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	struct step *st = userdata;
	struct retain_pass *p = st->p;
	const char *start = p->next;
	size_t startlen = p->nextlen;
	int r;

	st->s = s;
	st->txn = txn;
	st->looked = st->bytes = st->ndoomed = st->unreadable = 0;
	st->stopped = st->error = 0;
	st->used.n = 0;
	if (steps[p->step] == DB_META && startlen == 0) {
		start = DEK_KEY_PREFIX;
		startlen = strlen(DEK_KEY_PREFIX);
	}
	r = store_txn_walk_from(s, txn, steps[p->step], start, startlen,
				on_record, st, err);
	if (r < 0) {
		if (st->error == -ENOMEM)
			return cp_error_set(err, -ENOMEM, "retention: out of memory");
		return r;
	}
	return p->dry_run ? 0 : step_delete(st, err);
}

/* step_done - what a committed step did, into the pass. */
static int
step_done(struct retain_pass *p, struct step *st)
{
	size_t i;

	p->counts.transactions++;
	p->counts.examined += st->looked;
	p->counts.unreadable += st->unreadable;
	if (steps[p->step] == DB_INBOX && st->unreadable > 0)
		p->keep_data_keys = 1;	/* it may name one */
	for (i = 0; i < st->ndoomed; i++)
		p->counts.pruned[st->doomed[i].kind]++;
	for (i = 0; i < st->used.n; i++)
		if (dek_set_add(&p->used, st->used.ids[i]) < 0)
			return -ENOMEM;
	if (st->stopped) {
		memcpy(p->next, st->next, st->nextlen);
		p->nextlen = st->nextlen;
		return 1;
	}
	p->nextlen = 0;
	p->step++;
	while (p->step < N_STEPS && !step_active(p, steps[p->step]))
		p->step++;
	return p->step < N_STEPS;
}

int
retain_step(struct store *s, struct retain_pass *p, int64_t now,
	    struct cp_error *err)
{
	struct step st;
	int r;

	while (p->step < N_STEPS && !step_active(p, steps[p->step]))
		p->step++;	/* the first: step_done skips the others */
	if (p->step >= N_STEPS)
		return 0;
	memset(&st, 0, sizeof(st));
	st.p = p;
	st.now = now;
	st.doomed = calloc(p->pol.batch, sizeof(*st.doomed));
	if (st.doomed == NULL)
		return cp_error_set(err, -ENOMEM, "retention: out of memory");
	r = p->dry_run ? store_read(s, step_txn, &st, err)
		       : store_write(s, step_txn, &st, err);
	if (r >= 0)
		r = step_done(p, &st);
	if (r == -ENOMEM)
		cp_error_set(err, r, "retention: out of memory");
	free(st.doomed);
	free(st.used.ids);
	return r;
}

int
retain_run(struct store *s, const struct retain_policy *pol, int64_t now,
	   int dry_run, struct retain_counts *c, struct cp_error *err)
{
	struct retain_pass *p;
	int r;

	memset(c, 0, sizeof(*c));
	if (retain_pass_new(pol, dry_run, &p) < 0)
		return cp_error_set(err, -ENOMEM, "retention: out of memory");
	while ((r = retain_step(s, p, now, err)) > 0)
		;
	retain_pass_counts(p, c);
	retain_pass_free(p);
	return r;
}

json_t *
retain_counts_json(const struct retain_counts *c, int dry_run)
{
	json_t *o = json_object(), *pruned = json_object();
	size_t i;
	int bad = o == NULL || pruned == NULL;

	for (i = 0; !bad && i < RETAIN__COUNT; i++)
		bad = json_object_set_new(pruned, kind_names[i],
					  json_integer((json_int_t)c->pruned[i])) < 0;
	if (!bad)
		bad = json_object_set_new(o, "dry_run", json_boolean(dry_run)) < 0 ||
		      json_object_set_new(o, "transactions",
					  json_integer((json_int_t)c->transactions)) < 0 ||
		      json_object_set_new(o, "examined",
					  json_integer((json_int_t)c->examined)) < 0 ||
		      json_object_set_new(o, "unreadable",
					  json_integer((json_int_t)c->unreadable)) < 0 ||
		      json_object_set(o, "pruned", pruned) < 0;
	json_decref(pruned);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}
