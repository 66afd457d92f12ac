/*
 * NAME
 *	test_unsub - unit tests for one-click unsubscribe tokens
 *	(lib/unsub.c)
 * DESCRIPTION
 *	A real LMDB store with a minor's recall claimed for her two proxies
 *	(each with the address hash a sent message leaves). A token names a
 *	recipient of a thread and a category: applied, it adds the category
 *	to that recipient's own list, audited, once; again, nothing changes;
 *	a token with one character changed, one moved to another thread,
 *	one for a transactional or security category, one for a recipient
 *	now at another address, one for a thread gone: nothing changes. The
 *	portal's "unsubscribe" database is drained, every key deleted, each
 *	counted by outcome.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "event.h"
#include "intake.h"
#include "policy.h"
#include "queue.h"
#include "record.h"
#include "store.h"
#include "storefmt.h"
#include "token.h"
#include "unsub.h"

#include "fsfix.h"

#define NOW	((int64_t)1780000000)
static const char KEY[] = "0123456789abcdef0123456789abcdef";

struct fx {
	char dir[64];
	struct store *s;
	uint8_t thread[TOKEN_THREAD_BYTES];	/* the recall's */
	uint8_t other[TOKEN_THREAD_BYTES];	/* another patient's */
};

static void
put(struct store *s, enum store_db db, const char *key, const char *json)
{
	assert_int_equal(store_put_raw(s, db, key, strlen(key), json, strlen(json),
				       NULL), 0);
}

struct sent {
	const char *id;
	json_t *patient;
};

/* sent_txn - the recipients chosen and each given the address hash of
 * where its message went, as a send leaves them. */
static int
sent_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct sent *x = ud;
	struct delivery d;
	char reason[128];
	int r = queue_txn_get(s, txn, x->id, &d, err);

	if (r < 0)
		return r;
	assert_true(policy_recipients(x->patient, &d, NOW, reason, sizeof(reason)) > 0);
	for (size_t i = 0; i < d.nrcpts; i++) {
		struct policy_rcpt pr;
		char h[POLICY_ADDRESS_HASH_SIZE];

		assert_int_equal(policy_resolve(x->patient, d.rcpts[i].ref, &pr), 0);
		policy_address_hash(pr.address, h);
		d.rcpts[i].address_hash = strdup(h);
	}
	r = queue_txn_put(s, txn, &d, err);
	delivery_clear(&d);
	return r;
}

static void
claim_and_send(struct fx *f, const char *id, const char *pid, const char *patient)
{
	struct sent x = { id, json_loads(patient, 0, NULL) };
	size_t claimed = 0, failed = 0;

	assert_non_null(x.patient);
	assert_int_equal(intake_claim(f->s, NOW, 30 * 86400, 10, &claimed, &failed,
				      NULL), 0);
	assert_int_equal(claimed, 1);
	assert_int_equal(store_write(f->s, sent_txn, &x, NULL), 0);
	json_decref(x.patient);
}

static const char MINOR[] =
	"{\"id\":\"p-kid\",\"email\":\"kid@patients.test\",\"dob\":\"2018-01-01\","
	"\"proxies\":[{\"email\":\"mom@proxies.test\"},{\"email\":\"dad@proxies.test\"}]}";
static const char ADULT[] =
	"{\"id\":\"p-adult\",\"email\":\"adult@patients.test\"}";

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL || tu_tmpdir("carepost-unsub", f->dir, sizeof(f->dir)) < 0 ||
	    storefmt_open(f->dir, 0, 0, &f->s, NULL) < 0)
		return -1;
	put(f->s, DB_PATIENTS, "p-kid", MINOR);
	put(f->s, DB_PATIENTS, "p-adult", ADULT);
	put(f->s, DB_EVENTS, "rec-1", "{\"id\":\"rec-1\",\"type\":\"checkup_reminder\","
	    "\"patient\":\"p-kid\",\"data\":{\"checkup\":\"Annual\",\"due\":\"soon\"}}");
	claim_and_send(f, "rec-1", "p-kid", MINOR);
	put(f->s, DB_EVENTS, "rec-2", "{\"id\":\"rec-2\",\"type\":\"education_article\","
	    "\"patient\":\"p-adult\",\"data\":{\"title\":\"t\",\"summary\":\"s\"}}");
	claim_and_send(f, "rec-2", "p-adult", ADULT);
	token_thread_from_id("rec-1", f->thread);
	token_thread_from_id("rec-2", f->other);
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

static void
token(const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt, const char *cat,
      char out[UNSUB_TOKEN_SIZE])
{
	assert_int_equal(unsub_token(KEY, sizeof(KEY) - 1, thread, rcpt, cat, out), 0);
}

static enum unsub_outcome
apply(struct fx *f, const char *tok, struct unsub_result *res)
{
	struct unsub_result local;

	if (res == NULL)
		res = &local;
	assert_int_equal(unsub_apply(f->s, KEY, sizeof(KEY) - 1, tok, "ctl:tester",
				     res, NULL), 0);
	return res->outcome;
}

/* optouts - the optout list of the patient (proxy < 0) or proxy, joined. */
static char *
optouts(struct fx *f, const char *pid, int proxy)
{
	json_t *p = NULL, *who, *list, *v;
	static char out[256];
	size_t i;

	assert_int_equal(store_get_json(f->s, DB_PATIENTS, pid, &p, NULL), 0);
	who = proxy < 0 ? p : json_array_get(json_object_get(p, "proxies"), (size_t)proxy);
	list = json_object_get(who, "optout");
	out[0] = '\0';
	json_array_foreach(list, i, v) {
		strncat(out, i ? "," : "", sizeof(out) - strlen(out) - 1);
		strncat(out, json_string_value(v), sizeof(out) - strlen(out) - 1);
	}
	json_decref(p);
	return out;
}

static size_t
count(struct store *s, enum store_db db)
{
	size_t n = 0;

	assert_int_equal(store_count(s, db, &n, NULL), 0);
	return n;
}

static void
a_token_opts_its_recipient_out_once(void **state)
{
	struct fx *f = *state;
	struct unsub_result res;
	char tok[UNSUB_TOKEN_SIZE];
	size_t audits;

	token(f->thread, 1, "recalls", tok);
	assert_non_null(strstr(tok, ".r1.recalls."));
	assert_null(strstr(tok, "p-kid"));		/* no id in clear */
	audits = count(f->s, DB_AUDIT);
	assert_int_equal(apply(f, tok, &res), UNSUB_APPLIED);
	assert_string_equal(res.patient, "p-kid");
	assert_string_equal(res.ref, "proxy:1");
	assert_string_equal(res.category, "recalls");
	assert_string_equal(optouts(f, "p-kid", 1), "recalls");
	assert_string_equal(optouts(f, "p-kid", 0), "");	/* the other proxy */
	assert_string_equal(optouts(f, "p-kid", -1), "");
	assert_int_equal(count(f->s, DB_AUDIT), audits + 1);
	/* handed in again (a replay, a second click): nothing changes */
	assert_int_equal(apply(f, tok, NULL), UNSUB_ALREADY);
	assert_int_equal(count(f->s, DB_AUDIT), audits + 1);
	assert_string_equal(optouts(f, "p-kid", 1), "recalls");
	/* upper case is no token of ours */
	for (char *c = tok; *c && *c != '.'; c++)
		*c = (char)toupper((unsigned char)*c);
	assert_int_equal(apply(f, tok, NULL), UNSUB_FORGED);
}

static void
a_changed_or_moved_token_changes_nothing(void **state)
{
	struct fx *f = *state;
	char tok[UNSUB_TOKEN_SIZE], bad[UNSUB_TOKEN_SIZE], hex[21];
	size_t audits = count(f->s, DB_AUDIT);

	token(f->thread, 0, "recalls", tok);
	/* every character changed in turn */
	for (size_t i = 0; tok[i]; i++) {
		memcpy(bad, tok, sizeof(bad));
		bad[i] = bad[i] == 'a' ? 'b' : bad[i] == '0' ? '1' : 'a';
		if (strcmp(bad, tok) == 0)
			continue;
		assert_int_equal(apply(f, bad, NULL), UNSUB_FORGED);
	}
	/* moved to another patient's thread, another index, category */
	memcpy(bad, tok, sizeof(bad));
	cp_hex(f->other, TOKEN_THREAD_BYTES, hex);
	memcpy(bad, hex, 20);
	assert_int_equal(apply(f, bad, NULL), UNSUB_FORGED);
	memcpy(bad, tok, sizeof(bad));
	bad[22] = '1';			/* ".r0." -> ".r1." */
	assert_int_equal(apply(f, bad, NULL), UNSUB_FORGED);
	snprintf(bad, sizeof(bad), "%.24seducation%s", tok, strrchr(tok, '.'));
	assert_non_null(strstr(bad, ".r0.education."));
	assert_int_equal(apply(f, bad, NULL), UNSUB_FORGED);
	assert_int_equal(apply(f, "", NULL), UNSUB_FORGED);
	assert_int_equal(apply(f, "not a token at all", NULL), UNSUB_FORGED);
	assert_int_equal(count(f->s, DB_AUDIT), audits);
	assert_string_equal(optouts(f, "p-kid", 0), "");
}

static void
transactional_and_security_mail_have_no_token(void **state)
{
	struct fx *f = *state;
	char tok[UNSUB_TOKEN_SIZE], tag[TOKEN_TAG_SIZE], hex[21];
	uint8_t data[40];
	size_t len;

	assert_int_equal(unsub_token(KEY, sizeof(KEY) - 1, f->thread, 0, "security",
				     tok), -EINVAL);
	assert_int_equal(unsub_token(KEY, sizeof(KEY) - 1, f->thread, 0, "appointments",
				     tok), -EINVAL);
	assert_int_equal(unsub_token(KEY, sizeof(KEY) - 1, f->thread, 100, "recalls",
				     tok), -EINVAL);
	/* one made with carepost's key anyway, as a bug would: refused */
	memcpy(data, f->thread, TOKEN_THREAD_BYTES);
	memset(data + TOKEN_THREAD_BYTES, 0, 4);
	memcpy(data + TOKEN_THREAD_BYTES + 4, "security", 8);
	len = TOKEN_THREAD_BYTES + 4 + 8;
	assert_int_equal(token_tag(KEY, sizeof(KEY) - 1, TOKEN_LABEL_UNSUBSCRIBE, data,
				   len, tag), 0);
	cp_hex(f->thread, TOKEN_THREAD_BYTES, hex);
	snprintf(tok, sizeof(tok), "%s.r0.security.%s", hex, tag);
	assert_int_equal(apply(f, tok, NULL), UNSUB_FORGED);
	assert_string_equal(optouts(f, "p-kid", 0), "");
}

static void
a_recipient_elsewhere_or_a_thread_gone_changes_nothing(void **state)
{
	struct fx *f = *state;
	char tok[UNSUB_TOKEN_SIZE];
	uint8_t gone[TOKEN_THREAD_BYTES];

	/* dad's place taken by another address since the message went */
	put(f->s, DB_PATIENTS, "p-kid",
	    "{\"id\":\"p-kid\",\"email\":\"kid@patients.test\",\"dob\":\"2018-01-01\","
	    "\"proxies\":[{\"email\":\"mom@proxies.test\"},{\"email\":\"new@proxies.test\"}]}");
	token(f->thread, 1, "recalls", tok);
	assert_int_equal(apply(f, tok, NULL), UNSUB_STALE);
	assert_string_equal(optouts(f, "p-kid", 1), "");
	/* an index past the recipients, a thread never stored */
	token(f->thread, 5, "recalls", tok);
	assert_int_equal(apply(f, tok, NULL), UNSUB_GONE);
	token_thread_from_id("never-sent", gone);
	token(gone, 0, "recalls", tok);
	assert_int_equal(apply(f, tok, NULL), UNSUB_GONE);
	/* a category the thread's event is not of */
	token(f->thread, 0, "education", tok);
	assert_int_equal(apply(f, tok, NULL), UNSUB_GONE);
	assert_string_equal(optouts(f, "p-kid", 0), "");
}

/*
 * The proxies reordered or one removed after the message went: the
 * token still reaches the person it went to (by the address hash), and
 * nobody else.
 */
static void
a_token_follows_its_recipient_when_the_proxies_move(void **state)
{
	struct fx *f = *state;
	struct unsub_result res;
	char tok[UNSUB_TOKEN_SIZE];

	token(f->thread, 1, "recalls", tok);		/* dad's */
	put(f->s, DB_PATIENTS, "p-kid",
	    "{\"id\":\"p-kid\",\"email\":\"kid@patients.test\",\"dob\":\"2018-01-01\","
	    "\"proxies\":[{\"email\":\"dad@proxies.test\"},{\"email\":\"mom@proxies.test\"}]}");
	assert_int_equal(apply(f, tok, &res), UNSUB_APPLIED);
	assert_string_equal(res.ref, "proxy:0");
	assert_string_equal(optouts(f, "p-kid", 0), "recalls");	/* dad */
	assert_string_equal(optouts(f, "p-kid", 1), "");		/* mom */
	/* mom removed: her token still finds her nowhere else, dad's finds him */
	token(f->thread, 0, "recalls", tok);		/* mom's */
	put(f->s, DB_PATIENTS, "p-kid",
	    "{\"id\":\"p-kid\",\"email\":\"kid@patients.test\",\"dob\":\"2018-01-01\","
	    "\"proxies\":[{\"email\":\"dad@proxies.test\",\"optout\":[\"recalls\"]}]}");
	assert_int_equal(apply(f, tok, NULL), UNSUB_STALE);
	assert_string_equal(optouts(f, "p-kid", -1), "");
}

static void
the_portals_hand_ins_are_drained(void **state)
{
	struct fx *f = *state;
	char tok[UNSUB_TOKEN_SIZE], adult[UNSUB_TOKEN_SIZE], forged[UNSUB_TOKEN_SIZE];
	size_t by[UNSUB_OUTCOMES] = { 0 };
	char longkey[300];

	token(f->thread, 0, "recalls", tok);
	token(f->other, 0, "education", adult);
	memcpy(forged, adult, sizeof(forged));
	forged[strlen(forged) - 1] ^= 1;
	put(f->s, DB_UNSUBSCRIBE, tok, "{}");
	put(f->s, DB_UNSUBSCRIBE, adult, "");
	put(f->s, DB_UNSUBSCRIBE, forged, "{}");
	memset(longkey, 'x', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	put(f->s, DB_UNSUBSCRIBE, longkey, "{}");
	/* at most 2 a run: the rest waits */
	assert_int_equal(unsub_drain(f->s, KEY, sizeof(KEY) - 1, 2, 1, by, NULL), 0);
	assert_int_equal(count(f->s, DB_UNSUBSCRIBE), 2);
	assert_int_equal(unsub_drain(f->s, KEY, sizeof(KEY) - 1, 100, 1, by, NULL), 0);
	assert_int_equal(count(f->s, DB_UNSUBSCRIBE), 0);
	assert_int_equal(by[UNSUB_APPLIED], 2);
	assert_int_equal(by[UNSUB_FORGED], 2);
	assert_string_equal(optouts(f, "p-kid", 0), "recalls");
	assert_string_equal(optouts(f, "p-adult", -1), "education");
}

static void
a_flood_of_forgeries_does_not_hold_a_genuine_token_back(void **state)
{
	struct fx *f = *state;
	char tok[UNSUB_TOKEN_SIZE], fake[UNSUB_TOKEN_SIZE];
	size_t by[UNSUB_OUTCOMES] = { 0 };

	/* 600 keys of a token's form that sort before the genuine one */
	token(f->thread, 0, "recalls", tok);
	for (int i = 0; i < 600; i++) {
		snprintf(fake, sizeof(fake), "%020d.r0.recalls.aaaaaaaaaa", i);
		put(f->s, DB_UNSUBSCRIBE, fake, "{}");
	}
	put(f->s, DB_UNSUBSCRIBE, tok, "{}");
	assert_true(strcmp(tok, fake) > 0);
	/* one transaction of 256 a round would leave it waiting */
	assert_int_equal(unsub_drain(f->s, KEY, sizeof(KEY) - 1, 256, 1, by, NULL), 0);
	assert_int_equal(count(f->s, DB_UNSUBSCRIBE), 345);
	assert_string_equal(optouts(f, "p-kid", 0), "");
	/* the round carepostd runs takes up to 16 */
	assert_int_equal(unsub_drain(f->s, KEY, sizeof(KEY) - 1, 256, 16, by, NULL), 0);
	assert_int_equal(count(f->s, DB_UNSUBSCRIBE), 0);
	assert_int_equal(by[UNSUB_FORGED], 600);
	assert_int_equal(by[UNSUB_APPLIED], 1);
	assert_string_equal(optouts(f, "p-kid", 0), "recalls");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_token_opts_its_recipient_out_once, setup, teardown),
		cmocka_unit_test_setup_teardown(a_changed_or_moved_token_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(transactional_and_security_mail_have_no_token, setup, teardown),
		cmocka_unit_test_setup_teardown(a_recipient_elsewhere_or_a_thread_gone_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(a_token_follows_its_recipient_when_the_proxies_move, setup, teardown),
		cmocka_unit_test_setup_teardown(the_portals_hand_ins_are_drained, setup, teardown),
		cmocka_unit_test_setup_teardown(a_flood_of_forgeries_does_not_hold_a_genuine_token_back,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
