/*
 * NAME
 *	unsub - one-click unsubscribe tokens and their application
 * DESCRIPTION
 *	See unsub.h. The tag's data is the thread id, the recipient index
 *	as a big-endian u32 and the category's bytes: none of the three can
 *	be changed without carepost's key.
 */
#include "unsub.h"
#include "event.h"
#include "patient.h"
#include "policy.h"
#include "queue.h"
#include "record.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RCPT	99
#define CATEGORY_MAX	15

const char *
unsub_outcome_name(enum unsub_outcome o)
{
	switch (o) {
	case UNSUB_APPLIED:	return "applied";
	case UNSUB_ALREADY:	return "already";
	case UNSUB_FORGED:	return "forged";
	case UNSUB_GONE:	return "gone";
	case UNSUB_STALE:	return "stale";
	}
	return "unknown";
}

int
unsub_category_ok(const char *category)
{
	const struct event_type *t;
	size_t n, i;

	if (category == NULL)
		return 0;
	t = event_types(&n);
	for (i = 0; i < n; i++)
		if (t[i].unsubscribe && !t[i].security &&
		    strcmp(t[i].category, category) == 0)
			return 1;
	return 0;
}

/* tag_data - what the tag covers: thread, index, category. */
static size_t
tag_data(const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt,
	 const char *category, uint8_t out[TOKEN_THREAD_BYTES + 4 + CATEGORY_MAX])
{
	size_t clen = strlen(category);

	memcpy(out, thread, TOKEN_THREAD_BYTES);
	out[TOKEN_THREAD_BYTES] = (uint8_t)(rcpt >> 24);
	out[TOKEN_THREAD_BYTES + 1] = (uint8_t)(rcpt >> 16);
	out[TOKEN_THREAD_BYTES + 2] = (uint8_t)(rcpt >> 8);
	out[TOKEN_THREAD_BYTES + 3] = (uint8_t)rcpt;
	memcpy(out + TOKEN_THREAD_BYTES + 4, category, clen);
	return TOKEN_THREAD_BYTES + 4 + clen;
}

int
unsub_token(const void *key, size_t keylen,
	    const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt,
	    const char *category, char out[UNSUB_TOKEN_SIZE])
{
	uint8_t data[TOKEN_THREAD_BYTES + 4 + CATEGORY_MAX];
	char tag[TOKEN_TAG_SIZE], hex[2 * TOKEN_THREAD_BYTES + 1];
	size_t len;
	int r;

	out[0] = '\0';
	if (!unsub_category_ok(category) || strlen(category) > CATEGORY_MAX ||
	    rcpt > MAX_RCPT)
		return -EINVAL;
	len = tag_data(thread, rcpt, category, data);
	if ((r = token_tag(key, keylen, TOKEN_LABEL_UNSUBSCRIBE, data, len, tag)) < 0)
		return r;
	cp_hex(thread, TOKEN_THREAD_BYTES, hex);
	snprintf(out, UNSUB_TOKEN_SIZE, "%s.r%zu.%s.%s", hex, rcpt, category, tag);
	return 0;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
unsub_token_read(const void *key, size_t keylen, const char *token,
		 uint8_t thread[TOKEN_THREAD_BYTES], size_t *rcpt,
		 char category[16])
{
	uint8_t data[TOKEN_THREAD_BYTES + 4 + CATEGORY_MAX];
	const char *p = token, *dot;
	size_t i, n = 0, clen;

	if (token == NULL || strnlen(token, UNSUB_TOKEN_SIZE) >= UNSUB_TOKEN_SIZE)
		return -EBADMSG;
	for (i = 0; i < TOKEN_THREAD_BYTES; i++) {
		int hi = hex_value(p[2 * i]), lo = hi < 0 ? -1 : hex_value(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		thread[i] = (uint8_t)(hi << 4 | lo);
	}
	p += 2 * TOKEN_THREAD_BYTES;
	if (p[0] != '.' || p[1] != 'r' || !isdigit((unsigned char)p[2]) ||
	    (p[2] == '0' && isdigit((unsigned char)p[3])))
		return -EBADMSG;
	for (p += 2; isdigit((unsigned char)*p) && n <= MAX_RCPT; p++)
		n = n * 10 + (size_t)(*p - '0');
	if (n > MAX_RCPT || *p != '.')
		return -EBADMSG;
	p++;
	if ((dot = strchr(p, '.')) == NULL || (clen = (size_t)(dot - p)) == 0 ||
	    clen > CATEGORY_MAX)
		return -EBADMSG;
	memcpy(category, p, clen);
	category[clen] = '\0';
	if (!unsub_category_ok(category) ||
	    strlen(dot + 1) != TOKEN_TAG_CHARS ||
	    token_tag_verify(key, keylen, TOKEN_LABEL_UNSUBSCRIBE, data,
			     tag_data(thread, n, category, data), dot + 1) != 0)
		return -EBADMSG;
	*rcpt = n;
	return 0;
}

struct apply {
	const uint8_t *thread;
	size_t rcpt;
	const char *category;
	const char *actor;
	struct unsub_result *res;
};

/* still_there - 0 when ref of patient is at the address the message
 * went to (sent_to, its hash: none on records before hashes), -ESTALE
 * when not, -ENOENT when ref names no one now. */
static int
still_there(json_t *patient, const char *ref, const char *sent_to)
{
	char now_hash[POLICY_ADDRESS_HASH_SIZE];
	struct policy_rcpt pr;

	if (policy_resolve(patient, ref, &pr) < 0 || pr.address == NULL)
		return -ENOENT;
	if (sent_to == NULL)
		return 0;
	policy_address_hash(pr.address, now_hash);
	return strcmp(now_hash, sent_to) == 0 ? 0 : -ESTALE;
}

/*
 * opt_out_at - the category added for every recipient of patient whose
 * address has the hash sent_to now (one mailbox: a shared address opts
 * out all who share it); res names the first. STALE when none does.
 */
static int
opt_out_at(struct store *s, MDB_txn *txn, json_t *patient, const char *sent_to,
	   struct apply *a, struct cp_error *err)
{
	struct unsub_result *res = a->res;
	size_t n = json_array_size(json_object_get(patient, "proxies")), i;
	int found = 0, added = 0, r;

	res->outcome = UNSUB_STALE;
	for (i = 0; i <= n; i++) {
		char ref[32];

		if (i == 0)
			cp_strlcpy(ref, "patient", sizeof(ref));
		else
			snprintf(ref, sizeof(ref), "proxy:%zu", i - 1);
		if (still_there(patient, ref, sent_to) != 0)
			continue;
		r = patient_txn_opt_out(s, txn, res->patient, ref, a->category,
					a->actor, err);
		if (r < 0)
			return r;
		if (!found)
			cp_strlcpy(res->ref, ref, sizeof(res->ref));
		found = 1;
		added |= r == 1;
	}
	if (found)
		res->outcome = added ? UNSUB_APPLIED : UNSUB_ALREADY;
	return 0;
}

static int
apply_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct apply *a = ud;
	struct unsub_result *res = a->res;
	struct thread_record th;
	struct delivery d;
	const struct event_type *et;
	json_t *v = NULL, *patient = NULL;
	const char *id;
	int r;

	res->outcome = UNSUB_GONE;
	r = store_txn_get_json(s, txn, DB_THREADS, a->thread, TOKEN_THREAD_BYTES, &v, err);
	if (r == -ENOENT || r == -EBADMSG)
		return 0;	/* none, or unreadable: names nothing */
	if (r < 0)
		return r;
	r = thread_load(v, &th, NULL);
	json_decref(v);
	if (r < 0)
		return 0;	/* unreadable: names nothing */
	id = th.delivery ? th.delivery : th.event;
	et = th.type ? event_type_find(th.type) : NULL;
	r = id && et && strcmp(et->category, a->category) == 0 ?
	    queue_txn_get(s, txn, id, &d, NULL) : -ENOENT;
	thread_clear(&th);
	if (r < 0)
		return 0;
	if (a->rcpt >= d.nrcpts || d.patient == NULL ||
	    strncmp(d.rcpts[a->rcpt].ref, "staff:", 6) == 0) {
		delivery_clear(&d);
		return 0;
	}
	cp_strlcpy(res->patient, d.patient, sizeof(res->patient));
	cp_strlcpy(res->ref, d.rcpts[a->rcpt].ref, sizeof(res->ref));
	r = store_txn_get_json(s, txn, DB_PATIENTS, d.patient, strlen(d.patient),
			       &patient, NULL);
	if (r < 0) {
		delivery_clear(&d);
		return 0;	/* the patient is gone */
	}
	r = still_there(patient, res->ref, d.rcpts[a->rcpt].address_hash);
	if (r == 0) {
		r = patient_txn_opt_out(s, txn, res->patient, res->ref, a->category,
					a->actor, err);
		if (r >= 0)
			res->outcome = r == 1 ? UNSUB_APPLIED : UNSUB_ALREADY;
	} else if (d.rcpts[a->rcpt].address_hash != NULL) {
		/* the proxies moved since (reordered, one removed): whoever
		 * is at the address the message went to now */
		r = opt_out_at(s, txn, patient, d.rcpts[a->rcpt].address_hash, a, err);
	} else {
		r = 0;		/* that recipient is gone */
	}
	json_decref(patient);
	delivery_clear(&d);
	return r < 0 ? r : 0;
}

int
unsub_apply(struct store *s, const void *key, size_t keylen, const char *token,
	    const char *actor, struct unsub_result *res, struct cp_error *err)
{
	uint8_t thread[TOKEN_THREAD_BYTES];
	struct apply a;

	memset(res, 0, sizeof(*res));
	if (unsub_token_read(key, keylen, token, thread, &a.rcpt, res->category) < 0) {
		res->outcome = UNSUB_FORGED;
		res->category[0] = '\0';
		return 0;
	}
	a.thread = thread;
	a.category = res->category;
	a.actor = actor;
	a.res = res;
	return store_write(s, apply_txn, &a, err);
}

/* ---- the portal's hand-in ---- */

#define KEY_MAX	512	/* LMDB's largest key, and a NUL */

struct drain {
	const void *key;	/* the token key */
	size_t keylen;
	size_t max;
	char (*keys)[KEY_MAX];
	size_t *lens;
	size_t n;
	size_t *by;		/* by outcome */
};

static int
collect_key(void *ud, const void *key, size_t keylen, const void *value,
	    size_t len)
{
	struct drain *w = ud;

	if (w->n == w->max)
		return 1;
	if (keylen >= KEY_MAX)
		return 0;	/* LMDB holds none */
	w->lens[w->n] = keylen;
	memcpy(w->keys[w->n], key, keylen);
	w->keys[w->n][keylen] = '\0';
	w->n++;
	return 0;
}

/*
 * drain_txn - the hand-ins, collected then each applied and deleted, in
 * one write transaction: a flood of forged ones costs one commit a round,
 * not one each.
 */
static int
drain_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct drain *w = ud;
	size_t i, by[UNSUB_OUTCOMES] = { 0 };
	int r;

	w->n = 0;
	r = store_txn_walk_raw(s, txn, DB_UNSUBSCRIBE, collect_key, w, err);
	if (r < 0)
		return r;
	for (i = 0; i < w->n; i++) {
		struct unsub_result res;
		struct apply a;
		uint8_t thread[TOKEN_THREAD_BYTES];

		memset(&res, 0, sizeof(res));
		res.outcome = UNSUB_FORGED;	/* no token at all, or not ours */
		if (w->lens[i] < UNSUB_TOKEN_SIZE &&
		    memchr(w->keys[i], '\0', w->lens[i]) == NULL &&
		    unsub_token_read(w->key, w->keylen, w->keys[i], thread, &a.rcpt,
				     res.category) == 0) {
			a.thread = thread;
			a.category = res.category;
			a.actor = NULL;
			a.res = &res;
			if ((r = apply_txn(s, txn, &a, err)) < 0)
				return r;
		}
		r = store_txn_del(s, txn, DB_UNSUBSCRIBE, w->keys[i], w->lens[i], err);
		if (r < 0)
			return r;
		by[res.outcome]++;
	}
	/* counted once the transaction is the one that commits */
	memcpy(w->by, by, sizeof(by));
	return 0;
}

static int drain_one(struct store *s, const void *key, size_t keylen, size_t max,
		     size_t by_outcome[UNSUB_OUTCOMES], struct cp_error *err);

int
unsub_drain(struct store *s, const void *key, size_t keylen, size_t max,
	    size_t txns, size_t by_outcome[UNSUB_OUTCOMES], struct cp_error *err)
{
	int r = 0;

	for (size_t t = 0; t < txns && r == 0; t++) {
		size_t before = 0, after = 0, i;

		for (i = 0; i < UNSUB_OUTCOMES; i++)
			before += by_outcome[i];
		r = drain_one(s, key, keylen, max, by_outcome, err);
		for (i = 0; i < UNSUB_OUTCOMES; i++)
			after += by_outcome[i];
		if (r == 0 && after - before < max)
			break;			/* the database is empty */
	}
	return r;
}

/* drain_one - one transaction of unsub_drain. */
static int
drain_one(struct store *s, const void *key, size_t keylen, size_t max,
	  size_t by_outcome[UNSUB_OUTCOMES], struct cp_error *err)
{
	size_t by[UNSUB_OUTCOMES] = { 0 };
	struct drain w = { key, keylen, max, NULL, NULL, 0, by };
	size_t i;
	int r;

	if (max == 0)
		return 0;
	w.keys = calloc(max, sizeof(*w.keys));
	w.lens = calloc(max, sizeof(*w.lens));
	if (w.keys == NULL || w.lens == NULL) {
		free(w.keys);
		free(w.lens);
		return cp_error_set(err, -ENOMEM, "unsubscribe: out of memory");
	}
	r = store_write(s, drain_txn, &w, err);
	if (r == 0)
		for (i = 0; i < UNSUB_OUTCOMES; i++)
			by_outcome[i] += by[i];
	free(w.keys);
	free(w.lens);
	return r;
}
