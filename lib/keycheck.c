/*
 * NAME
 *	keycheck - the OpenPGP keys on file, checked for their expiry
 * DESCRIPTION
 *	See keycheck.h.
 */
#include "keycheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "policy.h"
#include "queue.h"
#include "record.h"
#include "token.h"

const char *
keycheck_state_name(enum keycheck_state st)
{
	switch (st) {
	case KEYCHECK_OK: return "ok";
	case KEYCHECK_EXPIRING: return "expiring";
	case KEYCHECK_EXPIRED: return "expired";
	case KEYCHECK_REVOKED: return "revoked";
	case KEYCHECK_NO_ENCRYPTION: return "no_encryption";
	case KEYCHECK_MISSING: return "missing";
	}
	return "unknown";
}

/* One walk of the patients: the keyring's table, and what to call. */
struct walk {
	const struct pgp_key_info *table;
	size_t n;
	int64_t now;
	keycheck_fn fn;
	void *userdata;
};

/* judge - k's state and expiry from the keyring's table. */
static void
judge(const struct walk *w, struct keycheck_key *k)
{
	const struct pgp_key_info *ki = pgp_key_table_find(w->table, w->n, k->fpr);

	k->expires = 0;
	if (ki == NULL) {
		k->state = KEYCHECK_MISSING;
		return;
	}
	k->expires = ki->expires;
	switch (ki->state) {
	case PGP_KEY_REVOKED: k->state = KEYCHECK_REVOKED; return;
	case PGP_KEY_EXPIRED: k->state = KEYCHECK_EXPIRED; return;
	case PGP_KEY_NO_ENCRYPTION: k->state = KEYCHECK_NO_ENCRYPTION; return;
	case PGP_KEY_OK: break;
	}
	k->state = ki->expires > 0 && ki->expires <= w->now + KEYCHECK_HORIZON ?
		   KEYCHECK_EXPIRING : KEYCHECK_OK;
}

static int
each_patient(void *userdata, const char *key, size_t keylen, json_t *patient)
{
	const struct walk *w = userdata;
	char id[STORE_ID_MAX + 1], ref[32];
	size_t proxies = policy_proxies(patient);
	int r;

	if (keylen == 0 || keylen > STORE_ID_MAX)
		return 0;
	memcpy(id, key, keylen);
	id[keylen] = '\0';
	if (!id_valid(id))
		return 0;		/* no event could name it: not one of ours */
	for (size_t i = 0; i <= proxies; i++) {
		struct keycheck_key k = { .patient = id, .ref = ref };
		struct policy_rcpt pr;

		if (i == 0)
			snprintf(ref, sizeof(ref), "patient");
		else
			snprintf(ref, sizeof(ref), "proxy:%zu", i - 1);
		if (policy_resolve(patient, ref, &pr) < 0 || pr.fpr == NULL ||
		    strlen(pr.fpr) != PGP_FPR_SIZE - 1)
			continue;
		for (size_t j = 0; j < PGP_FPR_SIZE; j++)
			k.fpr[j] = (char)(pr.fpr[j] >= 'a' && pr.fpr[j] <= 'f' ?
					  pr.fpr[j] - 'a' + 'A' : pr.fpr[j]);
		judge(w, &k);
		k.mailed = policy_mails(patient, ref, w->now);
		if ((r = w->fn(w->userdata, &k)) != 0)
			return r;
	}
	return 0;
}

int
keycheck_each(struct store *s, struct pgp *p, int64_t now, keycheck_fn fn,
	      void *userdata, struct cp_error *err)
{
	struct pgp_key_info *table = NULL;
	struct walk w = { NULL, 0, now, fn, userdata };
	int r;

	if ((r = pgp_key_table(p, (long long)now, &table, &w.n, err)) < 0)
		return r;
	w.table = table;
	r = store_foreach(s, DB_PATIENTS, each_patient, &w, err);
	free(table);
	return r;
}

/* ---- notices ---- */

/* A notice to queue: a key within a mark of its expiry. */
struct due_notice {
	char patient[STORE_ID_MAX + 1];
	char ref[32];
	char fpr[PGP_FPR_SIZE];
	long long expires;
	int mark;			/* 30 or 7 (days) */
};

struct gather {
	struct keycheck_stats *st;
	int64_t now;
	struct due_notice *v;
	size_t n, cap;
	int failed;
};

static int
gather_one(void *userdata, const struct keycheck_key *k)
{
	struct gather *g = userdata;
	struct due_notice *dn;

	g->st->keys++;
	if (k->state != KEYCHECK_OK && k->state != KEYCHECK_EXPIRING)
		g->st->unusable++;
	if (k->state != KEYCHECK_EXPIRING)
		return 0;
	g->st->expiring++;
	if (!k->mailed)
		return 0;		/* carepost writes to them about nothing */
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 16;
		struct due_notice *nv = reallocarray(g->v, cap, sizeof(*nv));

		if (nv == NULL) {
			g->failed = 1;
			return 1;
		}
		g->v = nv;
		g->cap = cap;
	}
	dn = &g->v[g->n++];
	cp_strlcpy(dn->patient, k->patient, sizeof(dn->patient));
	cp_strlcpy(dn->ref, k->ref, sizeof(dn->ref));
	memcpy(dn->fpr, k->fpr, sizeof(dn->fpr));
	dn->expires = k->expires;
	/* a day's margin: a key met a little over 7 days ahead gets the
	 * 7-day notice, not the 30-day one and the 7-day one an hour apart */
	dn->mark = k->expires <= g->now + KEYCHECK_SOON + 86400 ? 7 : 30;
	return 0;
}

struct queue_ctx {
	const struct cp_config *cfg;
	int64_t now;
	const struct due_notice *v;
	size_t n;
	size_t queued;
};

/* notice_id - "keyexp:" and 20 hex digits naming the key, its owner,
 * expiry and mark (no id of anyone in clear beyond the patient's own
 * record, which names it anyway). */
static void
notice_id(const struct due_notice *dn, char *out, size_t len)
{
	char seed[STORE_ID_MAX + 128];
	uint8_t h[TOKEN_THREAD_BYTES];
	char hex[2 * TOKEN_THREAD_BYTES + 1];

	snprintf(seed, sizeof(seed), "keyexp/%s/%s/%s/%lld/%d", dn->patient, dn->ref,
		 dn->fpr, dn->expires, dn->mark);
	token_thread_from_id(seed, h);
	cp_hex(h, sizeof(h), hex);
	snprintf(out, len, "keyexp:%s", hex);
}

/* queue_one - dn's notice, unless told already: 1 queued, 0 not, or < 0. */
static int
queue_one(struct store *s, MDB_txn *txn, const struct queue_ctx *q,
	  const struct due_notice *dn, struct cp_error *err)
{
	char mark[STORE_ID_MAX + 128], id[STORE_ID_MAX + 1];
	char hex[2 * TOKEN_THREAD_BYTES + 1];
	uint8_t thread[TOKEN_THREAD_BYTES];
	struct thread_record conv, th;
	struct ack_mark a;
	struct delivery d;
	json_t *data;
	int r;

	snprintf(mark, sizeof(mark), "keyexp/%s/%s/%lld/%d", dn->patient, dn->fpr,
		 dn->expires, dn->mark);
	r = store_txn_has(s, txn, DB_ACKS, mark, strlen(mark), err);
	if (r != 0)
		return r < 0 ? r : 0;	/* told already */
	/* the 30-day notice, once the 7-day one has gone, is not sent late */
	if (dn->mark == 30) {
		char soon[sizeof(mark)];

		snprintf(soon, sizeof(soon), "keyexp/%s/%s/%lld/7", dn->patient,
			 dn->fpr, dn->expires);
		if ((r = store_txn_has(s, txn, DB_ACKS, soon, strlen(soon), err)) != 0)
			return r < 0 ? r : 0;
	}
	notice_id(dn, id, sizeof(id));
	token_thread_from_id(id, thread);
	cp_hex(thread, sizeof(thread), hex);
	memset(&d, 0, sizeof(d));
	data = delivery_internal_data(NULL);
	if (data == NULL ||
	    delivery_internal(&d, id, "key_expiring", dn->patient, NULL, hex,
			      dn->mark == 7, NULL, q->now, q->now, data) < 0 ||
	    delivery_add_rcpt(&d, dn->ref, RCPT_NOTICE, NULL) == NULL) {
		delivery_clear(&d);
		return cp_error_set(err, -ENOMEM, "keycheck: out of memory");
	}
	r = queue_txn_enqueue(s, txn, &d, err);
	delivery_clear(&d);
	if (r < 0)
		return r;
	conv = (struct thread_record) { .event = id, .patient = (char *)dn->patient,
					.type = "key_expiring", .confidential = 0 };
	if (thread_for_internal(&th, &conv, id, q->now, q->cfg->token_ttl) < 0)
		return cp_error_set(err, -ENOMEM, "keycheck: out of memory");
	r = thread_txn_put(s, txn, thread, &th, err);
	thread_clear(&th);
	if (r < 0)
		return r;
	/* kept until the key expires (retention counts from "at") */
	memset(&a, 0, sizeof(a));
	cp_strlcpy(a.delivery, id, sizeof(a.delivery));
	a.at = (time_t)dn->expires;
	r = ack_mark_txn_put(s, txn, mark, &a, err);
	return r < 0 ? r : 1;
}

static int
queue_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	struct queue_ctx *q = userdata;
	int r;

	q->queued = 0;			/* the transaction may run again */
	for (size_t i = 0; i < q->n; i++) {
		if ((r = queue_one(s, txn, q, &q->v[i], err)) < 0)
			return r;
		q->queued += (size_t)r;
	}
	return 0;
}

int
keycheck_notify(struct store *s, struct pgp *p, const struct cp_config *cfg,
		int64_t now, struct keycheck_stats *st, struct cp_error *err)
{
	struct gather g = { st, now, NULL, 0, 0, 0 };
	struct pgp_key_info *table = NULL;
	struct walk w = { NULL, 0, now, gather_one, &g };
	struct queue_ctx q;
	int r;

	memset(st, 0, sizeof(*st));
	if ((r = pgp_key_table(p, (long long)now, &table, &w.n, err)) < 0)
		return r;
	w.table = table;
	for (size_t i = 0; i < w.n; i++)
		if (table[i].state == PGP_KEY_OK && table[i].expires > 0 &&
		    table[i].expires <= now + KEYCHECK_HORIZON)
			st->keyring_expiring++;
	r = store_foreach(s, DB_PATIENTS, each_patient, &w, err);
	free(table);
	if (g.failed) {
		free(g.v);
		return cp_error_set(err, -ENOMEM, "keycheck: out of memory");
	}
	if (r < 0 || g.n == 0) {
		free(g.v);
		return r < 0 ? r : 0;
	}
	q = (struct queue_ctx) { cfg, now, g.v, g.n, 0 };
	r = store_write(s, queue_txn, &q, err);
	if (r == 0)
		st->queued = q.queued;
	free(g.v);
	return r;
}
