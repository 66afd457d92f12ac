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
	int complaint;		/* a feedback report, not a delivery report */
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
map_message_id(struct look *l, const char *id, const char *must_name,
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
	if (r != MAP_OK || l->complaint)
		return r;
	if (must_name == NULL)
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
	return strcasecmp(addr, must_name) == 0 ? MAP_OK : MAP_OTHER_RCPT;
}

/* The reasons a report is not recorded, PHI-free: [0] of a delivery
 * report, [1] of a feedback report. */
enum why { WHY_GONE, WHY_OTHER, WHY_FORGED, WHY_NONE, WHY_UNKNOWN, WHY_STALE };

static const char *const whys[][2] = {
	[WHY_GONE] = { "delivery report for an event no longer stored",
		       "feedback report for an event no longer stored" },
	[WHY_OTHER] = { "delivery report names another address than its "
			"message's, or none: ignored",
			"feedback report from another mailbox than its message "
			"went to: ignored" },
	[WHY_FORGED] = { "delivery report names no message carepost sent: ignored",
			 "feedback report names no message carepost sent: ignored" },
	[WHY_NONE] = { "delivery report maps to no event",
		       "feedback report maps to no event" },
	[WHY_UNKNOWN] = { "delivery report for an unknown recipient",
			  "feedback report for an unknown recipient" },
	[WHY_STALE] = { "delivery report for an address no longer on file "
			"for that recipient: nothing changed",
			"feedback report for an address no longer on file "
			"for that recipient: nothing changed" },
};

/* not_mapped - bm's reason for why (returns 1). */
static int
not_mapped(const struct look *l, enum why why)
{
	l->bm->reason = whys[why][l->complaint != 0];
	if (why == WHY_FORGED)
		l->bm->forged = 1;
	return 1;
}

/* unmapped - why a report maps to no message (returns 1). */
static int
unmapped(const struct look *l, int verp, int mid)
{
	if (verp == MAP_GONE || mid == MAP_GONE)
		return not_mapped(l, WHY_GONE);
	if (mid == MAP_OTHER_RCPT)
		return not_mapped(l, WHY_OTHER);
	if (verp == MAP_FORGED || mid == MAP_FORGED)
		return not_mapped(l, WHY_FORGED);
	return not_mapped(l, WHY_NONE);
}

/*
 * recipient - the mapped message's delivery record read for what bm
 * says of its recipient: its address (still the one it went to), ref,
 * the event's type and department, and whether it was complained of.
 * 0, 1 (not recorded: bm->reason), or the store's error.
 */
static int
recipient(const struct look *l, struct cp_error *err)
{
	struct bouncemap *bm = l->bm;
	struct delivery d;
	int r;

	r = queue_get(l->s, bm->delivery_id, &d, err);
	if (r == -ENOENT)
		return not_mapped(l, WHY_GONE);
	if (r < 0)
		return r;
	r = rcpt_address(l->s, &d, bm->rcpt_index, bm->address, sizeof(bm->address), err);
	if (r == 0) {
		const struct delivery_rcpt *rc = &d.rcpts[bm->rcpt_index];

		cp_strlcpy(bm->ref, rc->ref, sizeof(bm->ref));
		cp_strlcpy(bm->type, d.type ? d.type : "", sizeof(bm->type));
		cp_strlcpy(bm->department, d.department ? d.department : "",
			   sizeof(bm->department));
		bm->complained = rc->complained_at != 0;
	}
	delivery_clear(&d);
	if (r == -ENOENT)
		return not_mapped(l, WHY_UNKNOWN);
	if (r == -ESTALE)
		return not_mapped(l, WHY_STALE);
	return r;
}

/*
 * map_any - the first of verps that maps, else message_id (with the
 * address a delivery report's recipient block names: must_name), then
 * the recipient read (recipient): 0, 1 (not mapped: bm->reason), or the
 * error of the store or libgcrypt.
 */
static int
map_any(struct look *l, const char *const *verps, size_t nverps,
	const char *message_id, const char *must_name, struct cp_error *err)
{
	int r, vr = MAP_NONE, mr = MAP_NONE;

	memset(l->bm, 0, sizeof(*l->bm));
	for (size_t i = 0; i < nverps && vr != MAP_OK; i++) {
		if (verps[i] == NULL || verps[i][0] == '\0')
			continue;
		r = map_verp(l, verps[i], err);
		if (r < 0)
			return r;
		if (r == MAP_OK || vr == MAP_NONE)
			vr = r;		/* else the first forged or gone stays */
	}
	if (vr != MAP_OK) {
		mr = map_message_id(l, message_id, must_name, err);
		if (mr < 0)
			return mr;
	}
	if (vr != MAP_OK && mr != MAP_OK)
		return unmapped(l, vr, mr);
	return recipient(l, err);
}

int
bouncemap_find(struct store *s, const void *key, size_t keylen, int64_t now,
	       const char *verp, const struct inmsg_dsn *dsn,
	       const struct inmsg_dsn_rcpt *dr, struct bouncemap *bm,
	       struct cp_error *err)
{
	struct look l = { s, key, keylen, now, bm, 0 };
	int r;

	r = map_any(&l, &verp, 1, dsn->orig_message_id, dr ? dr->final_recipient : NULL,
		    err);
	if (r != 0)
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

/* domain_of - what follows the last "@" of an address, or NULL. */
static const char *
domain_of(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;

	return at && at[1] ? at + 1 : NULL;
}

int
bouncemap_find_complaint(struct store *s, const void *key, size_t keylen,
			 int64_t now, const char *const *verps, size_t nverps,
			 const char *message_id, const char *rcpt_to,
			 struct bouncemap *bm, struct cp_error *err)
{
	struct look l = { s, key, keylen, now, bm, 1 };
	const char *d1, *d2;
	int r;

	if ((r = map_any(&l, verps, nverps, message_id, NULL, err)) != 0)
		return r;
	/* A provider that names the mailbox that complained without
	 * redacting it (RFC 6590) must name the recipient's domain: a copy
	 * forwarded elsewhere is not the recipient's complaint. Within one
	 * domain a hashed local part cannot be told from another. */
	d1 = domain_of(rcpt_to);
	d2 = domain_of(bm->address);
	if (d1 && d2 && strcasecmp(d1, d2) != 0)
		return not_mapped(&l, WHY_OTHER);
	return 0;
}

/* note_report - a delivery report on a recipient entry. */
static int
note_report(struct delivery_rcpt *rc, const struct bouncemap *bm, int64_t now)
{
	/* a delay reported after a failure does not undo it */
	if (bm->failed || rc->state != RCPT_BOUNCED)
		rc->state = bm->failed ? RCPT_BOUNCED : RCPT_DELAYED;
	rc->bounced_at = (time_t)now;
	return record_set_str(&rc->dsn_status, bm->dsn_status);
}

/*
 * folded_txn - the report noted on each item a digest carried (ids, as
 * its first item's entry names them): the entry of the same recipient
 * that names the same Message-ID. An item gone (retention) is skipped.
 */
static int
folded_txn(struct store *s, MDB_txn *txn, const char *ids, const char *ref,
	   const char *message_id, const struct bouncemap *bm, int64_t now,
	   struct cp_error *err)
{
	while (*ids) {
		size_t n = strcspn(ids, " ");
		char id[STORE_ID_MAX + 1];
		struct delivery d;
		int r, changed = 0;

		if (n == 0 || n > STORE_ID_MAX)
			return 0;
		memcpy(id, ids, n);
		id[n] = '\0';
		ids += n;
		ids += *ids == ' ';
		r = queue_txn_get(s, txn, id, &d, err);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		for (size_t i = 0; i < d.nrcpts && r == 0; i++) {
			struct delivery_rcpt *rc = &d.rcpts[i];

			if (rc->ref && ref && strcmp(rc->ref, ref) == 0 && rc->message_id &&
			    message_id && strcmp(rc->message_id, message_id) == 0) {
				r = note_report(rc, bm, now);
				changed = 1;
			}
		}
		if (r == 0 && changed) {
			d.updated = (time_t)now;
			r = queue_txn_put(s, txn, &d, err);
		} else if (r < 0) {
			r = cp_error_set(err, r, "bounce: out of memory");
		}
		delivery_clear(&d);
		if (r < 0)
			return r;
	}
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

		r = note_report(rc, bm, now);
		d.updated = (time_t)now;
		r = r < 0 ? cp_error_set(err, r, "bounce: out of memory") :
		    queue_txn_put(s, txn, &d, err);
		/* a digest: the same report for every item it carried */
		if (r == 0 && rc->folded != NULL)
			r = folded_txn(s, txn, rc->folded, rc->ref, rc->message_id, bm,
				       now, err);
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
