/*
 * NAME
 *	test_retain - unit tests for the retention pass (lib/retain.c) and
 *	its [retention] config
 * DESCRIPTION
 *	A real LMDB file per test, time pinned through the pass's now: each
 *	record kind is kept while something still needs it and until its
 *	lifetime has run, pruned after, and kept for ever with lifetime 0; a
 *	pending delivery is never pruned; a data key is kept while a kept
 *	inbox record names it; a step looks at no more than the batch and
 *	the next one resumes where it stopped; a dry run deletes nothing;
 *	a bad [retention] value names the file, the line and the key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit.h"
#include "config.h"
#include "fsfix.h"
#include "record.h"
#include "digest.h"
#include "retain.h"
#include "storefix.h"
#include "token.h"

#define DAY	86400
#define T0	1800000000LL	/* when the records were written */

struct fx {
	char dir[64];
	char path[512];
	int n;
	struct store *s;
	struct retain_policy pol;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct cp_error err;

	if (f == NULL || tu_tmpdir("carepost-retain", f->dir, sizeof(f->dir)) < 0)
		return -1;
	cp_error_clear(&err);
	f->s = tu_store_fresh(f->dir, &f->n, f->path, sizeof(f->path), 0, &err);
	if (f->s == NULL)
		return -1;
	for (size_t i = 0; i < RETAIN__COUNT; i++)
		f->pol.lifetime[i] = 10 * DAY;
	f->pol.batch = 500;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	tu_rm_rf(f->dir);
	free(f);
	return 0;
}

/* prune - a whole pass at now; the counts. */
static struct retain_counts
prune(struct fx *f, int64_t now)
{
	struct retain_counts c;
	struct cp_error err;

	cp_error_clear(&err);
	if (retain_run(f->s, &f->pol, now, 0, &c, &err) < 0)
		fail_msg("retain_run: %s", err.text);
	return c;
}

static int
has(struct fx *f, enum store_db db, const char *key)
{
	json_t *v = NULL;
	int r = store_get_json(f->s, db, key, &v, NULL);

	json_decref(v);
	assert_true(r == 0 || r == -ENOENT);
	return r == 0;
}

static int
has_thread(struct fx *f, const char *event)
{
	uint8_t id[TOKEN_THREAD_BYTES];
	json_t *v = NULL;
	int r;

	token_thread_from_id(event, id);
	r = store_get_json_key(f->s, DB_THREADS, id, sizeof(id), &v, NULL);
	json_decref(v);
	return r == 0;
}

static void
put_delivery(struct fx *f, const char *id, const char *type, const char *state,
	     int64_t updated)
{
	uint8_t th[TOKEN_THREAD_BYTES];
	char hex[2 * TOKEN_THREAD_BYTES + 1];

	token_thread_from_id(id, th);
	cp_hex(th, sizeof(th), hex);
	tu_store_put(f->s, DB_DELIVERY, id,
		     json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:s, s:[]}",
			       "id", id, "type", type, "patient", "p-1",
			       "state", state, "created", (json_int_t)T0,
			       "updated", (json_int_t)updated, "due", (json_int_t)T0,
			       "attempts", 1, "thread", hex, "recipients"));
}

static void
put_thread(struct fx *f, const char *event, int64_t expires)
{
	uint8_t id[TOKEN_THREAD_BYTES];
	json_t *v = json_pack("{s:s, s:s, s:s, s:I, s:I}", "event", event,
			      "patient", "p-1", "type", "test_result",
			      "created", (json_int_t)T0, "expires",
			      (json_int_t)expires);

	token_thread_from_id(event, id);
	tu_thread_put(f->s, id, v);
	json_decref(v);
}

/* A final delivery goes after its lifetime once its token has expired. */
static void
test_final_delivery_pruned_after_lifetime_and_token(void **state)
{
	struct fx *f = *state;
	struct retain_counts c;

	put_delivery(f, "ev-1", "test_result", "sent", T0);
	put_thread(f, "ev-1", T0 + 20 * DAY);
	prune(f, T0 + 10 * DAY - 1);
	assert_true(has(f, DB_DELIVERY, "ev-1"));
	/* lifetime run, but the reply token is still good: kept */
	prune(f, T0 + 15 * DAY);
	assert_true(has(f, DB_DELIVERY, "ev-1"));
	assert_true(has_thread(f, "ev-1"));
	/* token expired at +20d; the thread's own lifetime runs to +30d */
	c = prune(f, T0 + 21 * DAY);
	assert_false(has(f, DB_DELIVERY, "ev-1"));
	assert_int_equal(c.pruned[RETAIN_DELIVERY], 1);
	assert_true(has_thread(f, "ev-1"));
	c = prune(f, T0 + 30 * DAY);
	assert_false(has_thread(f, "ev-1"));
	assert_int_equal(c.pruned[RETAIN_THREADS], 1);
}

/* queued, sending and deferred records stay, however old; their thread too. */
static void
test_pending_delivery_and_its_thread_never_pruned(void **state)
{
	struct fx *f = *state;
	static const char *const states[] = { "queued", "sending", "deferred" };
	char id[16];

	for (size_t i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "ev-%zu", i);
		put_delivery(f, id, "test_result", states[i], T0);
		put_thread(f, id, T0);
	}
	prune(f, T0 + 1000 * DAY);
	for (size_t i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "ev-%zu", i);
		assert_true(has(f, DB_DELIVERY, id));
		assert_true(has_thread(f, id));
	}
}

/* Internal records by their own lifetime; 0 keeps final records for ever. */
static void
test_internal_lifetime_and_zero_never(void **state)
{
	struct fx *f = *state;

	f->pol.lifetime[RETAIN_DELIVERY] = 0;
	f->pol.lifetime[RETAIN_INTERNAL] = 2 * DAY;
	put_delivery(f, "ack:m1", "reply_ack", "sent", T0);
	put_delivery(f, "ev-1", "test_result", "failed", T0);
	prune(f, T0 + 2 * DAY - 1);
	assert_true(has(f, DB_DELIVERY, "ack:m1"));
	prune(f, T0 + 2 * DAY);
	assert_false(has(f, DB_DELIVERY, "ack:m1"));
	prune(f, T0 + 5000 * DAY);
	assert_true(has(f, DB_DELIVERY, "ev-1"));
}

static int
recount_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	return record_txn_recount(s, txn, err);
}

/* assert_counts - stats' counts of the one seen record and bounce: n. */
static void
assert_counts(struct fx *f, int n)
{
	json_t *disp = json_object(), *cls = json_object();
	struct bounce_tally bt;

	assert_int_equal(seen_tally(f->s, disp, cls, NULL), 0);
	assert_int_equal(bounce_tally(f->s, &bt, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(disp, "filed")), n);
	assert_int_equal(json_integer_value(json_object_get(cls, "reply")), n);
	assert_int_equal(json_object_size(disp), (size_t)n);
	assert_int_equal(bt.by_state[BOUNCE_INVALID], n);
	json_decref(disp);
	json_decref(cls);
}

/* seen, bounces, clinic: kept before their lifetime, pruned at it, 0 never. */
static void
test_seen_bounces_clinic_lifetimes(void **state)
{
	struct fx *f = *state;
	struct retain_counts c;

	tu_store_put(f->s, DB_SEEN, "aa", json_pack("{s:s, s:s, s:s, s:s, s:I}",
		     "disposition", "filed", "folder", "processed", "class", "reply",
		     "reason", "ok", "at", (json_int_t)T0));
	tu_store_put(f->s, DB_BOUNCES, "a@x.test", json_pack("{s:s, s:i, s:I, s:s, s:s}",
		     "state", "invalid", "soft_count", 0, "last", (json_int_t)T0,
		     "event", "ev-1", "status", "5.1.1"));
	tu_store_put(f->s, DB_CLINIC, "general/m1800000000-00000001",
		     json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:s, s:s}",
			       "inbox_id", "m1800000000-00000001", "patient", "p-1",
			       "thread", "00", "event", "ev-1", "class", "reply",
			       "received", (json_int_t)T0, "urgent", 0,
			       "sender_role", "patient", "state", "new"));
	/* written raw: counted by a recount, as the format upgrade does */
	assert_int_equal(store_write(f->s, recount_txn, NULL, NULL), 0);
	assert_counts(f, 1);
	f->pol.lifetime[RETAIN_CLINIC] = 0;
	c = prune(f, T0 + 10 * DAY - 1);
	assert_int_equal(c.pruned[RETAIN_SEEN] + c.pruned[RETAIN_BOUNCES], 0);
	c = prune(f, T0 + 10 * DAY);
	assert_false(has(f, DB_SEEN, "aa"));
	assert_false(has(f, DB_BOUNCES, "a@x.test"));
	assert_int_equal(c.pruned[RETAIN_SEEN], 1);
	assert_int_equal(c.pruned[RETAIN_BOUNCES], 1);
	/* and the counts go with them */
	assert_counts(f, 0);
	assert_true(has(f, DB_CLINIC, "general/m1800000000-00000001"));
	f->pol.lifetime[RETAIN_CLINIC] = 10 * DAY;
	prune(f, T0 + 10 * DAY);
	assert_false(has(f, DB_CLINIC, "general/m1800000000-00000001"));
}

/* A digest window goes once it has ended, whatever the lifetimes say;
 * digest_until reads the one that is open, and no longer one pruned. */
static void
test_digest_windows_go_when_ended(void **state)
{
	struct fx *f = *state;
	struct digest_window w[2] = {
		{ "p-1", "results", T0 + 3600 }, { "p-2", "billing", T0 + 7200 },
	};
	struct retain_counts c;
	struct cp_error err;

	cp_error_clear(&err);
	assert_int_equal(digest_open(f->s, w, 2, &err), 0);
	assert_int_equal(digest_until(f->s, "p-1", "results"), T0 + 3600);
	assert_int_equal(digest_until(f->s, "p-1", "billing"), 0);
	for (int k = 0; k < RETAIN__COUNT; k++)
		f->pol.lifetime[k] = 0;		/* kept for ever: not these */
	c = prune(f, T0 + 3599);
	assert_int_equal(c.pruned[RETAIN_DIGESTS], 0);
	c = prune(f, T0 + 3600);
	assert_int_equal(c.pruned[RETAIN_DIGESTS], 1);
	assert_false(has(f, DB_DIGESTS, "p-1/results"));
	assert_true(has(f, DB_DIGESTS, "p-2/billing"));
	assert_int_equal(digest_until(f->s, "p-1", "results"), 0);
	/* one that does not read is no window: it goes, and reads as none */
	tu_store_put(f->s, DB_DIGESTS, "p-3/results", json_pack("{s:s}", "until", "soon"));
	assert_int_equal(digest_until(f->s, "p-3", "results"), 0);
	c = prune(f, T0 + 3600);
	assert_false(has(f, DB_DIGESTS, "p-3/results"));
}

/* A key candidate stands while its ref is at the address it came from. */
static void
test_key_candidates_go_when_they_no_longer_stand(void **state)
{
	struct fx *f = *state;
	struct retain_counts c;

	tu_store_put(f->s, DB_PATIENTS, "p-1", json_pack("{s:s, s:s, s:[{s:s}]}",
		     "id", "p-1", "email", "a@x.test", "proxies", "email", "g@x.test"));
	tu_store_put(f->s, DB_CANDIDATES, "p-1/patient",
		     json_pack("{s:s, s:s}", "key_fpr", "AB", "addr", "A@x.test"));
	tu_store_put(f->s, DB_CANDIDATES, "p-1/proxy:0",
		     json_pack("{s:s, s:s}", "key_fpr", "AB", "addr", "g@x.test"));
	tu_store_put(f->s, DB_CANDIDATES, "p-1/proxy:1",	/* no such proxy */
		     json_pack("{s:s, s:s}", "key_fpr", "AB", "addr", "g@x.test"));
	tu_store_put(f->s, DB_CANDIDATES, "p-9/patient",	/* no such patient */
		     json_pack("{s:s, s:s}", "key_fpr", "AB", "addr", "a@x.test"));
	c = prune(f, T0);
	assert_int_equal(c.pruned[RETAIN_CANDIDATES], 2);
	assert_true(has(f, DB_CANDIDATES, "p-1/patient"));
	assert_true(has(f, DB_CANDIDATES, "p-1/proxy:0"));
	/* the guardian replaced, the patient's address changed: both go */
	tu_store_put(f->s, DB_PATIENTS, "p-1", json_pack("{s:s, s:s, s:[{s:s}]}",
		     "id", "p-1", "email", "new@x.test", "proxies", "email", "h@x.test"));
	c = prune(f, T0);
	assert_int_equal(c.pruned[RETAIN_CANDIDATES], 2);
	assert_false(has(f, DB_CANDIDATES, "p-1/patient"));
	assert_false(has(f, DB_CANDIDATES, "p-1/proxy:0"));
}

/* Acks by at; an alert window by until, and never while its alert is held. */
static void
test_acks_and_alert_windows(void **state)
{
	struct fx *f = *state;

	tu_store_put(f->s, DB_ACKS, "ev-1/2027-01-15",
		     json_pack("{s:s, s:I}", "delivery", "ack:m1", "at", (json_int_t)T0));
	tu_store_put(f->s, DB_ACKS, "alert/general/normal",
		     json_pack("{s:I, s:s}", "until", (json_int_t)T0, "held", "alert:m2"));
	put_delivery(f, "alert:m2", "staff_alert", "queued", T0);
	f->pol.lifetime[RETAIN_INTERNAL] = 0;
	prune(f, T0 + 10 * DAY - 1);
	assert_true(has(f, DB_ACKS, "ev-1/2027-01-15"));
	prune(f, T0 + 10 * DAY);
	assert_false(has(f, DB_ACKS, "ev-1/2027-01-15"));
	assert_true(has(f, DB_ACKS, "alert/general/normal"));	/* held alert queued */
	put_delivery(f, "alert:m2", "staff_alert", "sent", T0 + DAY);
	prune(f, T0 + 10 * DAY);
	assert_false(has(f, DB_ACKS, "alert/general/normal"));
}

static void
put_inbox(struct fx *f, const char *key, int64_t received, const char *dek)
{
	tu_store_put(f->s, DB_INBOX, key,
		     json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:s, s:s}",
			       "id", strchr(key, '/') + 1, "patient", "p-1",
			       "thread", "00", "event", "ev-1", "event_type", "test_result",
			       "class", "reply", "received", (json_int_t)received,
			       "store_key", "FPR", "format", 2, "dek", dek, "blob", "AAAA"));
}

static void
put_dek(struct fx *f, const char *id, int64_t created)
{
	char key[32];

	snprintf(key, sizeof(key), "dek:%s", id);
	tu_store_put(f->s, DB_META, key, json_pack("{s:s, s:s, s:I, s:s}",
		     "alg", "aes-256-gcm", "store_key", "FPR",
		     "created", (json_int_t)created, "wrapped", "x"));
}

/* assert_pruned_audited - the trail holds one record, the deletion of
 * inbox message p-1/msgid by the pass's actor (a delete for FHIR), and
 * its chain holds. */
static void
assert_pruned_audited(struct fx *f, const char *msgid)
{
	struct audit_verify_result v;
	struct audit_filter all = { NULL, 0, 0 };
	struct cp_error err = { 0, "" };
	char *text = NULL, want[96];
	size_t len = 0, n = 0;
	uint64_t written = 0;
	FILE *out = open_memstream(&text, &len);

	assert_int_equal(store_count(f->s, DB_AUDIT, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(audit_verify(f->s, &v, &err), 0);
	assert_true(v.ok);
	assert_non_null(out);
	assert_int_equal(audit_export(f->s, &all, out, &written, &err), 0);
	fclose(out);
	assert_int_equal(written, 1);
	assert_non_null(strstr(text, "\"code\":\"pruned\""));
	assert_non_null(strstr(text, "\"action\":\"D\""));
	assert_non_null(strstr(text, "\"daemon\""));
	snprintf(want, sizeof(want), "%s", msgid);
	assert_non_null(strstr(text, want));
	free(text);
}

/* Inbox by received; a data key only when old and named by no kept record. */
static void
test_inbox_and_data_keys(void **state)
{
	struct fx *f = *state;
	struct retain_counts c;

	f->pol.lifetime[RETAIN_INBOX] = 100 * DAY;
	put_dek(f, "0000000000000001", T0);		/* old inbox record's */
	put_dek(f, "0000000000000002", T0);		/* kept record's */
	put_dek(f, "0000000000000003", T0);		/* nobody's */
	put_dek(f, "0000000000000004", T0 + 95 * DAY);	/* nobody's, young */
	put_inbox(f, "p-1/m1800000000-00000001", T0, "0000000000000001");
	put_inbox(f, "p-1/m1808000000-00000002", T0 + 90 * DAY, "0000000000000002");
	c = prune(f, T0 + 100 * DAY);
	assert_false(has(f, DB_INBOX, "p-1/m1800000000-00000001"));
	assert_true(has(f, DB_INBOX, "p-1/m1808000000-00000002"));
	assert_int_equal(c.pruned[RETAIN_INBOX], 1);
	assert_pruned_audited(f, "m1800000000-00000001");
	assert_false(has(f, DB_META, "dek:0000000000000001"));
	assert_true(has(f, DB_META, "dek:0000000000000002"));
	assert_false(has(f, DB_META, "dek:0000000000000003"));
	assert_true(has(f, DB_META, "dek:0000000000000004"));
	assert_int_equal(c.pruned[RETAIN_DATA_KEYS], 2);
	/* inbox 0: kept for ever, and so is the key it names */
	f->pol.lifetime[RETAIN_INBOX] = 0;
	prune(f, T0 + 5000 * DAY);
	assert_true(has(f, DB_INBOX, "p-1/m1808000000-00000002"));
	assert_true(has(f, DB_META, "dek:0000000000000002"));
	assert_false(has(f, DB_META, "dek:0000000000000004"));
}

/* An inbox record that does not load keeps every data key. */
static void
test_unreadable_inbox_keeps_data_keys(void **state)
{
	struct fx *f = *state;
	struct retain_counts c;

	put_dek(f, "0000000000000003", T0);
	assert_int_equal(store_put_raw(f->s, DB_INBOX, "p-1/m1", 6, "{", 1, NULL), 0);
	c = prune(f, T0 + 100 * DAY);
	assert_true(has(f, DB_META, "dek:0000000000000003"));
	assert_int_equal(c.unreadable, 1);
}

/* A step looks at batch records at most; the next resumes after them. */
static void
test_step_bounded_and_resumes(void **state)
{
	struct fx *f = *state;
	struct retain_pass *p = NULL;
	struct retain_counts c;
	struct cp_error err;
	char key[16];
	size_t left = 0;
	int r, steps = 0;

	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		tu_store_put(f->s, DB_SEEN, key, json_pack("{s:s, s:s, s:I}",
			     "disposition", "filed", "folder", "processed",
			     "at", (json_int_t)(i % 2 ? T0 : T0 + 50 * DAY)));
	}
	f->pol.batch = 10;
	for (size_t i = 0; i < RETAIN__COUNT; i++)
		if (i != RETAIN_SEEN)
			f->pol.lifetime[i] = 0;
	assert_int_equal(retain_pass_new(&f->pol, 0, &p), 0);
	cp_error_clear(&err);
	r = retain_step(f->s, p, T0 + 10 * DAY, &err);
	assert_int_equal(r, 1);
	retain_pass_counts(p, &c);
	assert_int_equal(c.transactions, 1);
	assert_int_equal(c.examined, 10);
	assert_int_equal(c.pruned[RETAIN_SEEN], 5);	/* k01, k03 .. k09 */
	assert_false(has(f, DB_SEEN, "k09"));
	assert_true(has(f, DB_SEEN, "k11"));		/* not looked at yet */
	assert_int_equal(store_count(f->s, DB_SEEN, &left, NULL), 0);
	assert_int_equal(left, 20);
	while ((r = retain_step(f->s, p, T0 + 10 * DAY, &err)) > 0)
		steps++;
	assert_int_equal(r, 0);
	/* k10..k19, k20..k24, then the digest windows and the key
	 * candidates (always looked at) */
	assert_int_equal(steps, 3);
	retain_pass_counts(p, &c);
	assert_int_equal(c.transactions, 5);
	assert_int_equal(c.examined, 25);
	assert_int_equal(c.pruned[RETAIN_SEEN], 12);
	assert_int_equal(store_count(f->s, DB_SEEN, &left, NULL), 0);
	assert_int_equal(left, 13);
	assert_int_equal(retain_step(f->s, p, T0 + 10 * DAY, &err), 0);
	retain_pass_free(p);
}

/* A dry run counts what would go and deletes nothing. */
static void
test_dry_run_deletes_nothing(void **state)
{
	struct fx *f = *state;
	struct retain_counts c;
	struct cp_error err;
	json_t *j;

	put_delivery(f, "ev-1", "test_result", "expired", T0);
	cp_error_clear(&err);
	assert_int_equal(retain_run(f->s, &f->pol, T0 + 10 * DAY, 1, &c, &err), 0);
	assert_int_equal(c.pruned[RETAIN_DELIVERY], 1);
	assert_true(has(f, DB_DELIVERY, "ev-1"));
	j = retain_counts_json(&c, 1);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(j, "pruned"), "delivery")), 1);
	assert_true(json_is_true(json_object_get(j, "dry_run")));
	json_decref(j);
}

/* [retention]: defaults, 0 = never, floors, and errors naming file:line key. */
static void
test_config_retention(void **state)
{
	static const char bad_seen[] = "[retention]\n\nseen = 5m\n";
	static const char bad_inbox[] = "[retention]\ninbox = soon\n";
	struct cp_config *cfg;
	struct retain_policy pol;
	struct cp_error err;

	cfg = tu_config(TU_CONF_PORTAL);
	assert_int_equal(cfg->retain_delivery, 90 * DAY);
	assert_int_equal(cfg->retain_inbox, 0);	/* never, unless set */
	assert_int_equal(cfg->retain_clinic, 0);
	assert_int_equal(cfg->retain_interval, 3600);
	config_free(cfg);
	cfg = tu_config(TU_CONF_PORTAL "[retention]\ninbox = 0\nclinic = 0\n"
			"seen = 2d\nbatch = 50\n");
	retain_policy_from_config(cfg, &pol);
	assert_int_equal(pol.lifetime[RETAIN_INBOX], 0);
	assert_int_equal(pol.lifetime[RETAIN_CLINIC], 0);
	assert_int_equal(pol.lifetime[RETAIN_SEEN], 2 * DAY);
	assert_int_equal(pol.batch, 50);
	config_free(cfg);
	cp_error_clear(&err);
	cfg = NULL;
	assert_int_equal(config_parse("t.conf", bad_seen, strlen(bad_seen),
				      "/tmp", &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.text, "t.conf:3"));
	assert_non_null(strstr(err.text, "[retention] seen"));
	assert_non_null(strstr(err.text, "0 (never)"));
	assert_int_equal(config_parse("t.conf", bad_inbox, strlen(bad_inbox),
				      "/tmp", &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.text, "t.conf:2"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_final_delivery_pruned_after_lifetime_and_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_delivery_and_its_thread_never_pruned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_internal_lifetime_and_zero_never, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seen_bounces_clinic_lifetimes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acks_and_alert_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digest_windows_go_when_ended, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_candidates_go_when_they_no_longer_stand, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbox_and_data_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_inbox_keeps_data_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_step_bounded_and_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_deletes_nothing, setup, teardown),
		cmocka_unit_test(test_config_retention),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
