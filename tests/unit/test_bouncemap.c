/*
 * NAME
 *	test_bouncemap - unit tests for lib/bouncemap.c: delivery reports
 *	mapped through the tags carepost put on what it sent
 * DESCRIPTION
 *	Each test gets a fresh LMDB store with a patient (and a proxy), the
 *	thread and the sent delivery record of event "ev1", and the VERP
 *	address and Message-ID carepost sent each recipient (made with the
 *	same functions outbound uses). The reports are struct inmsg_dsn
 *	values as the DSN parser gives them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "bouncemap.h"
#include "fsfix.h"
#include "outbound.h"
#include "policy.h"
#include "record.h"
#include "store.h"
#include "storefix.h"
#include "token.h"
#include "util.h"

#define NOW 1795626000LL	/* 2026-11-25 17:00 UTC */
#define DAY 86400LL

static const char key[] = "0123456789abcdef0123456789abcdef";

struct fixture {
	char dir[64];
	int n;
	char path[96];
	struct store *store;
	char tok[TOKEN_SIZE];
	char verp[2][128];	/* the local part after "bounce+" */
	char msgid[2][96];	/* without <> */
};

static struct fixture fx;

static int
group_setup(void **state)
{
	strcpy(fx.dir, "/tmp/cpbm-XXXXXX");
	return mkdtemp(fx.dir) ? 0 : -1;
}

static int
group_teardown(void **state)
{
	tu_rm_rf(fx.dir);
	return 0;
}

static void
put(enum store_db db, const char *k, json_t *v)
{
	tu_store_put(fx.store, db, k, v);
}

static int
setup(void **state)
{
	uint8_t th[TOKEN_THREAD_BYTES];
	char hex[2 * TOKEN_THREAD_BYTES + 1], tag[TOKEN_TAG_SIZE], mid[96];
	char pat_hash[POLICY_ADDRESS_HASH_SIZE], prox_hash[POLICY_ADDRESS_HASH_SIZE];
	struct cp_error err;
	json_t *rec;

	cp_error_clear(&err);
	fx.store = tu_store_fresh(fx.dir, &fx.n, fx.path, sizeof(fx.path), 16 << 20, &err);
	if (fx.store == NULL)
		return -1;
	put(DB_PATIENTS, "p1", json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "id", "p1",
		"email", "pat@patients.test", "proxies", "email", "prox@proxies.test",
		"relation", "parent"));
	policy_address_hash("pat@patients.test", pat_hash);
	policy_address_hash("prox@proxies.test", prox_hash);
	put(DB_DELIVERY, "ev1", json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s, s:s}, "
		"{s:s, s:s, s:s, s:s}]}", "id", "ev1", "type", "test_result", "patient", "p1",
		"state", "sent", "recipients",
		"ref", "patient", "mode", "notice", "state", "sent", "address_hash", pat_hash,
		"ref", "proxy:0", "mode", "notice", "state", "sent", "address_hash", prox_hash));
	token_thread_from_id("ev1", th);
	rec = json_pack("{s:s, s:s, s:s, s:I, s:I}", "event", "ev1", "patient", "p1",
			"type", "test_result", "created", (json_int_t)NOW,
			"expires", (json_int_t)(NOW + 30 * DAY));
	tu_thread_put(fx.store, th, rec);
	json_decref(rec);
	assert_int_equal(token_make(key, sizeof(key) - 1, th, NOW + 30 * DAY, fx.tok), 0);
	cp_hex(th, sizeof(th), hex);
	for (size_t n = 0; n < 2; n++) {
		assert_int_equal(outbound_message_id(key, sizeof(key) - 1, hex, n,
						     "clinic.test", mid, sizeof(mid)), 0);
		snprintf(fx.msgid[n], sizeof(fx.msgid[n]), "%.*s", (int)strlen(mid) - 2,
			 mid + 1);
		assert_int_equal(token_rcpt_tag(key, sizeof(key) - 1, TOKEN_LABEL_VERP, th,
						n, tag), 0);
		snprintf(fx.verp[n], sizeof(fx.verp[n]), "%s.r%zu.%s", fx.tok, n, tag);
	}
	return 0;
}

static int
teardown(void **state)
{
	store_close(fx.store);
	fx.store = NULL;
	return 0;
}

/* find - bouncemap_find at now with a report of orig_id and rcpt block dr. */
static int
find(int64_t now, const char *verp, const char *orig_id,
     const struct inmsg_dsn_rcpt *dr, struct bouncemap *bm)
{
	struct inmsg_dsn dsn;
	struct cp_error err;

	memset(&dsn, 0, sizeof(dsn));
	dsn.present = 1;
	dsn.orig_message_id = (char *)orig_id;
	cp_error_clear(&err);
	return bouncemap_find(fx.store, key, sizeof(key) - 1, now, verp, &dsn, dr, bm,
			      &err);
}

struct apply {
	const struct bouncemap *bm;
	int64_t now;
};

static int
apply_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	const struct apply *a = ud;

	return bouncemap_txn(s, txn, a->bm, a->now, err);
}

static void
apply(const struct bouncemap *bm, int64_t now)
{
	struct apply a = { bm, now };
	struct cp_error err;

	cp_error_clear(&err);
	if (store_write(fx.store, apply_txn, &a, &err) < 0)
		fail_msg("apply: %s", err.text);
}

static const char *
rcpt_field(size_t n, const char *field)
{
	static char out[64];
	json_t *d = NULL;

	assert_int_equal(store_get_json(fx.store, DB_DELIVERY, "ev1", &d, NULL), 0);
	snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(
		json_array_get(json_object_get(d, "recipients"), n), field)) ?: "");
	json_decref(d);
	return out;
}

static const char *
bounce_field(const char *addr, const char *field)
{
	static char out[64];
	json_t *b = NULL;

	if (store_get_json(fx.store, DB_BOUNCES, addr, &b, NULL) < 0)
		return NULL;
	snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(b, field)) ?: "");
	json_decref(b);
	return out;
}

/*
 * A hard bounce through the VERP maps to the thread's delivery and its
 * recipient, even after the token expired (bounces come late); recorded,
 * the recipient is bounced and the address invalid.
 */
static void
a_verp_bounce_maps_to_its_recipient_and_is_recorded(void **state)
{
	struct inmsg_dsn_rcpt dr = { "failed", "5.1.1", "whoever@else.test", NULL, NULL };
	struct bouncemap bm;

	assert_int_equal(find(NOW + 40 * DAY, fx.verp[1], "unrelated@x", &dr, &bm), 0);
	assert_string_equal(bm.delivery_id, "ev1");
	assert_int_equal(bm.rcpt_index, 1);
	assert_string_equal(bm.address, "prox@proxies.test");
	assert_string_equal(bm.event, "ev1");
	assert_string_equal(bm.patient, "p1");
	assert_string_equal(bm.dsn_status, "5.1.1");
	assert_true(bm.failed && bm.hard && !bm.forged);
	apply(&bm, NOW + 40 * DAY);
	assert_string_equal(rcpt_field(1, "state"), "bounced");
	assert_string_equal(rcpt_field(1, "dsn_status"), "5.1.1");
	assert_string_equal(rcpt_field(0, "state"), "sent");
	assert_string_equal(bounce_field("prox@proxies.test", "state"), "invalid");
	assert_null(bounce_field("pat@patients.test", "state"));

	/* a delay reported after the failure does not undo it */
	dr.action = "delayed";
	dr.status = "4.2.2";
	assert_int_equal(find(NOW + 41 * DAY, fx.verp[1], NULL, &dr, &bm), 0);
	assert_false(bm.failed || bm.hard);
	apply(&bm, NOW + 41 * DAY);
	assert_string_equal(rcpt_field(1, "state"), "bounced");
}

/*
 * By Message-ID alone, the report must also name the address that
 * recipient's message went to: a Message-ID is seen by whoever holds the
 * message.
 */
static void
a_message_id_bounce_must_name_the_recipients_address(void **state)
{
	struct inmsg_dsn_rcpt dr = { "delayed", "4.2.2", "pat@patients.test", NULL, NULL };
	struct bouncemap bm;

	assert_int_equal(find(NOW, NULL, fx.msgid[0], &dr, &bm), 0);
	assert_int_equal(bm.rcpt_index, 0);
	assert_string_equal(bm.address, "pat@patients.test");
	assert_false(bm.failed || bm.hard);
	apply(&bm, NOW);
	assert_string_equal(rcpt_field(0, "state"), "delayed");
	assert_string_equal(bounce_field("pat@patients.test", "state"), "soft");

	dr.final_recipient = "someone@else.test";
	assert_int_equal(find(NOW, NULL, fx.msgid[0], &dr, &bm), 1);
	assert_non_null(strstr(bm.reason, "another address"));
	assert_false(bm.forged);
	assert_int_equal(find(NOW, NULL, fx.msgid[0], NULL, &bm), 1);
	assert_non_null(strstr(bm.reason, "another address"));
}

/* What carries no tag carepost made maps to nothing, and says forged. */
static void
forged_and_untagged_reports_map_to_nothing(void **state)
{
	struct inmsg_dsn_rcpt dr = { "failed", "5.1.1", "pat@patients.test", NULL, NULL };
	char flipped[128], old[128], mid[96];
	struct bouncemap bm;

	snprintf(flipped, sizeof(flipped), "%s", fx.verp[0]);
	flipped[strlen(flipped) - 1] ^= 1;
	snprintf(old, sizeof(old), "%s.r0", fx.tok);		/* before tags */
	snprintf(mid, sizeof(mid), "%s", fx.msgid[0]);
	mid[strchr(mid, '@') - mid - 1] ^= 1;

	const char *verps[] = { flipped, old, "anything", "x.r0.y.z", "" };
	for (size_t i = 0; i < CP_ARRAY_SIZE(verps); i++) {
		assert_int_equal(find(NOW, verps[i], mid, &dr, &bm), 1);
		assert_true(bm.forged);
		assert_non_null(strstr(bm.reason, "no message carepost sent"));
	}
	/* the other recipient's tag on this recipient's index */
	snprintf(flipped, sizeof(flipped), "%s", fx.verp[1]);
	flipped[strlen(fx.tok) + 2] = '0';
	assert_int_equal(find(NOW, flipped, NULL, &dr, &bm), 1);
	assert_true(bm.forged);
	/* neither a VERP nor a Message-ID in carepost's form */
	assert_int_equal(find(NOW, NULL, "abc@mx.test", &dr, &bm), 1);
	assert_false(bm.forged);
	assert_non_null(strstr(bm.reason, "maps to no event"));
	assert_null(bounce_field("pat@patients.test", "state"));
}

/*
 * Genuine tags of a thread no longer stored, or of a recipient whose
 * address changed since: nothing is recorded against anyone.
 */
static void
gone_threads_and_changed_addresses_change_nothing(void **state)
{
	struct inmsg_dsn_rcpt dr = { "failed", "5.1.1", "prox@proxies.test", NULL, NULL };
	uint8_t th[TOKEN_THREAD_BYTES];
	char tok[TOKEN_SIZE], tag[TOKEN_TAG_SIZE], verp[128];
	struct bouncemap bm;

	token_thread_from_id("ev-gone", th);
	assert_int_equal(token_make(key, sizeof(key) - 1, th, NOW + DAY, tok), 0);
	assert_int_equal(token_rcpt_tag(key, sizeof(key) - 1, TOKEN_LABEL_VERP, th, 0, tag), 0);
	snprintf(verp, sizeof(verp), "%s.r0.%s", tok, tag);
	assert_int_equal(find(NOW, verp, NULL, &dr, &bm), 1);
	assert_non_null(strstr(bm.reason, "no longer stored"));
	assert_false(bm.forged);

	/* the proxy was replaced by another person */
	put(DB_PATIENTS, "p1", json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "id", "p1",
		"email", "pat@patients.test", "proxies", "email", "new@proxies.test",
		"relation", "parent"));
	assert_int_equal(find(NOW, fx.verp[1], NULL, &dr, &bm), 1);
	assert_non_null(strstr(bm.reason, "no longer on file"));
	assert_null(bounce_field("new@proxies.test", "state"));
	assert_null(bounce_field("prox@proxies.test", "state"));
}

/* A status is kept only when well formed: else 4.0.0 (soft). */
static void
a_status_is_kept_only_when_well_formed(void **state)
{
	struct inmsg_dsn_rcpt dr = { "failed", "5.7.1<b>", "pat@patients.test", NULL, NULL };
	struct bouncemap bm;

	assert_int_equal(find(NOW, fx.verp[0], NULL, &dr, &bm), 0);
	assert_string_equal(bm.dsn_status, "5.7.1");
	dr.status = "9.9.9";
	assert_int_equal(find(NOW, fx.verp[0], NULL, &dr, &bm), 0);
	assert_string_equal(bm.dsn_status, "4.0.0");
	assert_false(bm.hard);
	assert_true(bm.failed);
	dr.status = NULL;
	assert_int_equal(find(NOW, fx.verp[0], NULL, &dr, &bm), 0);
	assert_string_equal(bm.dsn_status, "4.0.0");
	/* no rcpt block at all (a bounce that is no RFC 3464 report) */
	assert_int_equal(find(NOW, fx.verp[0], NULL, NULL, &bm), 0);
	assert_true(bm.failed);
	assert_string_equal(bm.dsn_status, "4.0.0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_verp_bounce_maps_to_its_recipient_and_is_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(a_message_id_bounce_must_name_the_recipients_address, setup, teardown),
		cmocka_unit_test_setup_teardown(forged_and_untagged_reports_map_to_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(gone_threads_and_changed_addresses_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(a_status_is_kept_only_when_well_formed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
