/*
 * bouncemap - see bouncemap.h.
 */
#include "bouncemap.h"
#include "policy.h"
#include "queue.h"
#include "record.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest VERP local part looked at (a token is 40 characters). */
#define VERP_MAX	128

/* One look-up: what it reads with, and where it writes. */
struct look {
	struct store *s;
	const void *key;
	size_t keylen;
	int64_t now;
	struct bouncemap *bm;
};

/*
 * What a report's VERP address or original Message-ID says (map_verp,
 * map_message_id return one of these, or < 0 for a failure of the store
 * or libgcrypt).
 */
enum map {
	MAP_OK = 0,		/* a message carepost sent: delivery_id, rcpt_index */
	MAP_NONE,		/* not in carepost's form at all */
	MAP_FORGED,		/* in carepost's form, but no tag carepost made */
	MAP_GONE,		/* carepost's, but nothing is stored for it now */
	MAP_OTHER_RCPT,		/* carepost's, but the report names another address */
};

/*
 * rcpt_address - the address a delivery record's recipient N was sent to:
 * -ENOENT when there is none, -ESTALE when the ref now names another
 * address than the one the message went to (address_hash: a proxy removed
 * and another added in its place must not take the old one's bounces).
 */
static int
rcpt_address(struct store *s, const struct delivery *d, size_t n, char *out,
	     size_t outlen, struct cp_error *err)
{
	const struct delivery_rcpt *rc = n < d->nrcpts ? &d->rcpts[n] : NULL;
	const char *ref = rc ? rc->ref : NULL;
	const char *pid = d->patient;
	const char *sent_to = rc ? rc->address_hash : NULL;
	char now_hash[POLICY_ADDRESS_HASH_SIZE];
	struct policy_rcpt pr;
	json_t *patient;
	int r;

	if (ref == NULL)
		return -ENOENT;
	if (strncmp(ref, "staff:", 6) == 0) {
		if (rc->address == NULL)
			return -ENOENT;
		cp_strlcpy(out, rc->address, outlen);
		return 0;
	}
	if (pid == NULL)
		return -ENOENT;
	r = store_get_json(s, DB_PATIENTS, pid, &patient, err);
	if (r < 0)
		return r;
	r = policy_resolve(patient, ref, &pr);
	if (r == 0) {
		cp_strlcpy(out, pr.address, outlen);
		for (char *p = out; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	json_decref(patient);
	if (r < 0)
		return -ENOENT;
	if (sent_to != NULL) {
		policy_address_hash(out, now_hash);
		if (strcmp(now_hash, sent_to) != 0)
			return -ESTALE;
	}
	return 0;
}

/* thread_delivery - the delivery record a thread's mail belongs to. */
static int
thread_delivery(struct look *l, const uint8_t thread[TOKEN_THREAD_BYTES],
		struct cp_error *err)
{
	struct bouncemap *bm = l->bm;
	struct thread_record th;
	const char *id;
	int r;

	r = thread_get(l->s, thread, &th, err);
	if (r < 0)
		return r;
	id = th.delivery ? th.delivery : th.event;
	cp_strlcpy(bm->delivery_id, id ? id : "", sizeof(bm->delivery_id));
	cp_strlcpy(bm->event, th.event ? th.event : "", sizeof(bm->event));
	cp_strlcpy(bm->patient, th.patient ? th.patient : "", sizeof(bm->patient));
	cp_hex(thread, TOKEN_THREAD_BYTES, bm->thread);
	r = id ? 0 : -ENOENT;
	thread_clear(&th);
	return r;
}

/*
 * tagged_delivery - recipient n's tag (of label) checked against the
 * thread, then the thread's delivery: MAP_OK, MAP_FORGED for a tag
 * carepost did not make, MAP_GONE for a thread no longer stored, or the
 * store's error.
 */
static int
tagged_delivery(struct look *l, const char *label,
		const uint8_t thread[TOKEN_THREAD_BYTES], unsigned long n,
		const char *tag, struct cp_error *err)
{
	int r = token_rcpt_tag_verify(l->key, l->keylen, label, thread, n, tag);

	if (r == -EBADMSG)
		return MAP_FORGED;
	if (r < 0)
		return cp_error_set(err, r, "bounce mapping: HMAC unavailable");
	l->bm->rcpt_index = n;
	r = thread_delivery(l, thread, err);
	return r == -ENOENT ? MAP_GONE : r < 0 ? r : MAP_OK;
}

/*
 * map_verp - "TOKEN.rN.TAG" to a thread and recipient index. Anything
 * else sent to the bounce domain, the untagged "TOKEN.rN" of mail sent
 * before tags included, is MAP_FORGED.
 */
static int
map_verp(struct look *l, const char *local, struct cp_error *err)
{
	char verp[VERP_MAX];
	uint8_t thread[TOKEN_THREAD_BYTES];
	char *rn, *tag, *end;
	unsigned long n;
	int r;

	if (strlen(local) >= sizeof(verp))
		return MAP_FORGED;
	cp_strlcpy(verp, local, sizeof(verp));
	rn = strchr(verp, '.');
	tag = rn ? strchr(rn + 1, '.') : NULL;
	if (tag == NULL || strchr(tag + 1, '.') != NULL ||
	    (rn[1] != 'r' && rn[1] != 'R') || !isdigit((unsigned char)rn[2]))
		return MAP_FORGED;
	*rn = '\0';
	*tag++ = '\0';
	n = strtoul(rn + 2, &end, 10);
	if (*end != '\0' || n > 64)
		return MAP_FORGED;
	r = token_verify(l->key, l->keylen, verp, l->now, thread, NULL, NULL);
	if (r == -EBADMSG)
		return MAP_FORGED;
	if (r < 0 && r != -ETIME)
		return cp_error_set(err, r, "bounce mapping: HMAC unavailable");
	return tagged_delivery(l, TOKEN_LABEL_VERP, thread, n, tag, err);
}

/*
 * map_message_id - "<THREADHEX.rN.TAG@domain>" of the returned message: a
 * Message-ID that starts like carepost's but carries no tag carepost made
 * (the untagged ones of mail sent before tags included) is MAP_FORGED;
 * one whose report names no address, or another than the one that
 * recipient's message went to, MAP_OTHER_RCPT.
 */
static int
map_message_id(struct look *l, const char *id, const struct inmsg_dsn_rcpt *dr,
	       struct cp_error *err)
{
	uint8_t thread[TOKEN_THREAD_BYTES];
	char tag[TOKEN_TAG_SIZE], addr[256], *end;
	const char *p, *at;
	unsigned long n;
	struct delivery d;
	int r;

	if (id == NULL || strspn(id, "0123456789abcdefABCDEF") != 2 * TOKEN_THREAD_BYTES ||
	    (id[20] != '.' || (id[21] != 'r' && id[21] != 'R')) ||
	    !isdigit((unsigned char)id[22]))
		return MAP_NONE;
	for (size_t i = 0; i < TOKEN_THREAD_BYTES; i++)
		sscanf(id + 2 * i, "%2hhx", &thread[i]);
	n = strtoul(id + 22, &end, 10);
	if (*end != '.' || n > 64)
		return MAP_FORGED;
	p = end + 1;
	at = strchr(p, '@');
	if (at == NULL || at - p != TOKEN_TAG_CHARS)
		return MAP_FORGED;
	memcpy(tag, p, TOKEN_TAG_CHARS);
	tag[TOKEN_TAG_CHARS] = '\0';
	r = tagged_delivery(l, TOKEN_LABEL_MESSAGE_ID, thread, n, tag, err);
	if (r != MAP_OK)
		return r;
	if (dr == NULL || dr->final_recipient == NULL)
		return MAP_OTHER_RCPT;
	r = queue_get(l->s, l->bm->delivery_id, &d, err);
	if (r == -ENOENT)
		return MAP_GONE;
	if (r < 0)
		return r;
	r = rcpt_address(l->s, &d, n, addr, sizeof(addr), err);
	delivery_clear(&d);
	if (r == -ENOENT)
		return MAP_GONE;
	if (r == -ESTALE)
		return MAP_OTHER_RCPT;
	if (r < 0)
		return r;
	return strcasecmp(addr, dr->final_recipient) == 0 ? MAP_OK : MAP_OTHER_RCPT;
}

/* unmapped - why a report maps to no message (returns 1). */
static int
unmapped(struct bouncemap *bm, int verp, int mid)
{
	if (verp == MAP_GONE || mid == MAP_GONE) {
		bm->reason = "delivery report for an event no longer stored";
	} else if (mid == MAP_OTHER_RCPT) {
		bm->reason = "delivery report names another address than its "
			     "message's, or none: ignored";
	} else if (verp == MAP_FORGED || mid == MAP_FORGED) {
		bm->forged = 1;
		bm->reason = "delivery report names no message carepost sent: ignored";
	} else {
		bm->reason = "delivery report maps to no event";
	}
	return 1;
}

int
bouncemap_find(struct store *s, const void *key, size_t keylen, int64_t now,
	       const char *verp, const struct inmsg_dsn *dsn,
	       const struct inmsg_dsn_rcpt *dr, struct bouncemap *bm,
	       struct cp_error *err)
{
	struct look l = { s, key, keylen, now, bm };
	int r, vr = MAP_NONE, mr = MAP_NONE;
	struct delivery d;

	memset(bm, 0, sizeof(*bm));
	if (verp != NULL && verp[0] != '\0') {
		vr = map_verp(&l, verp, err);
		if (vr < 0)
			return vr;
	}
	if (vr != MAP_OK) {
		mr = map_message_id(&l, dsn->orig_message_id, dr, err);
		if (mr < 0)
			return mr;
	}
	if (vr != MAP_OK && mr != MAP_OK)
		return unmapped(bm, vr, mr);
	r = queue_get(s, bm->delivery_id, &d, err);
	if (r == -ENOENT) {
		bm->reason = "delivery report for an event no longer stored";
		return 1;
	}
	if (r < 0)
		return r;
	r = rcpt_address(s, &d, bm->rcpt_index, bm->address, sizeof(bm->address), err);
	delivery_clear(&d);
	if (r == -ENOENT) {
		bm->reason = "delivery report for an unknown recipient";
		return 1;
	}
	if (r == -ESTALE) {
		bm->reason = "delivery report for an address no longer on file "
			     "for that recipient: nothing changed";
		return 1;
	}
	if (r < 0)
		return r;
	bm->failed = dr == NULL || strcmp(dr->action, "failed") == 0;
	if (dr && dr->status && dr->status[0] && strchr("245", dr->status[0]) &&
	    dr->status[1] == '.')
		cp_strlcpy(bm->dsn_status, dr->status, sizeof(bm->dsn_status));
	else
		cp_strlcpy(bm->dsn_status, "4.0.0", sizeof(bm->dsn_status));
	for (char *p = bm->dsn_status; *p; p++)
		if (!isdigit((unsigned char)*p) && *p != '.')
			*p = '\0';
	bm->hard = bm->dsn_status[0] == '5';
	return 0;
}

int
bouncemap_txn(struct store *s, MDB_txn *txn, const struct bouncemap *bm,
	      int64_t now, struct cp_error *err)
{
	struct delivery d;
	struct bounce_status b;
	int r;

	if (bm->delivery_id[0] == '\0')
		return 0;
	r = queue_txn_get(s, txn, bm->delivery_id, &d, err);
	if (r < 0)
		return r;
	if (bm->rcpt_index < d.nrcpts) {
		struct delivery_rcpt *rc = &d.rcpts[bm->rcpt_index];

		/* a delay reported after a failure does not undo it */
		if (bm->failed || rc->state != RCPT_BOUNCED)
			rc->state = bm->failed ? RCPT_BOUNCED : RCPT_DELAYED;
		rc->bounced_at = (time_t)now;
		d.updated = (time_t)now;
		r = record_set_str(&rc->dsn_status, bm->dsn_status);
		r = r < 0 ? cp_error_set(err, r, "bounce: out of memory") :
		    queue_txn_put(s, txn, &d, err);
	}
	delivery_clear(&d);
	if (r < 0)
		return r;
	r = bounce_txn_get(s, txn, bm->address, &b, err);
	if (r < 0 && r != -ENOENT)
		return r;
	if (bounce_note(&b, bm->hard, now, bm->event, bm->dsn_status) < 0)
		r = cp_error_set(err, -ENOMEM, "bounce: out of memory");
	else
		r = bounce_txn_put(s, txn, bm->address, &b, err);
	bounce_clear(&b);
	return r;
}
