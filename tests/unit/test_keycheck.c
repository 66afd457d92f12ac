/*
 * NAME
 *	test_keycheck - unit tests for lib/keycheck.c (and pgp_key_table)
 * DESCRIPTION
 *	Real keys in a throwaway GnuPG home: one that expires in 20 days
 *	(the patient's), one in 5 (a proxy's), one that never does, one on
 *	file but not in the keyring. The report says each one's state; the
 *	notices go once per key, mark and expiry, to that recipient only,
 *	the 7-day one too, none for a key already expired; a key renewed
 *	(the same fingerprint, a later expiry) is fine again and gets a
 *	notice of its own only when its new date comes near.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "gpgfix.h"
#include "keycheck.h"
#include "log.h"
#include "pgp.h"
#include "record.h"
#include "storefix.h"

#define DAY 86400LL

static struct {
	char dir[64], home[80];
	char clinic[41], a[41], b[41], c[41];
	char store_path[96];
	int n;
	struct store *store;
	struct pgp *pgp;
	struct cp_config *cfg;
	long long now;			/* the real clock: gpg's */
} fx;

/* key_expiring_in - a key (signs, and a subkey that encrypts) of uid
 * that expires in days days ("never": 0). */
static int
key_expiring_in(const char *uid, int days, char fpr[41])
{
	char exp[16];
	struct buf out = BUF_INIT;
	char cmd[512];
	char *p;

	snprintf(exp, sizeof(exp), days ? "%dd" : "never", days);
	if (tu_run("gpg --homedir %s --batch --passphrase '' --quick-gen-key '%s' "
		   "ed25519 sign,cert %s", fx.home, uid, exp) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "gpg --homedir %s --with-colons --list-keys '%s'",
		 fx.home, uid);
	if (tu_capture(&out, cmd) != 0 || (p = strstr(out.data, "\nfpr:::::::::")) == NULL) {
		buf_free(&out);
		return -1;
	}
	memcpy(fpr, p + 13, 40);
	fpr[40] = '\0';
	buf_free(&out);
	return tu_run("gpg --homedir %s --batch --passphrase '' --quick-add-key %s "
		      "cv25519 encr %s", fx.home, fpr, exp);
}

static int
group_setup(void **state)
{
	struct cp_error err;

	if (tu_gpg_dir("ckc", fx.dir, sizeof(fx.dir), fx.home, sizeof(fx.home),
		       "Clinic <clinic@clinic.test>", fx.clinic) < 0 ||
	    key_expiring_in("Pat <pat@patients.test>", 20, fx.a) < 0 ||
	    key_expiring_in("Prox <prox@proxies.test>", 5, fx.b) < 0 ||
	    key_expiring_in("Never <never@patients.test>", 0, fx.c) < 0)
		return -1;
	pgp_global_init();
	log_setup("test_keycheck", LOG_TARGET_STDERR, LOG_EMERG);
	cp_error_clear(&err);
	return pgp_new(fx.home, NULL, &fx.pgp, &err);
}

static int
group_teardown(void **state)
{
	pgp_free(fx.pgp);
	tu_gpg_dir_remove("ckc", fx.dir, fx.home);
	return 0;
}

static int
setup(void **state)
{
	struct cp_error err;
	json_t *p;

	cp_error_clear(&err);
	fx.store = tu_store_fresh(fx.dir, &fx.n, fx.store_path, sizeof(fx.store_path),
				  16 << 20, &err);
	if (fx.store == NULL)
		return -1;
	fx.cfg = tu_config("[store]\npath = %s\n" TU_CONF_PORTAL, fx.store_path);
	fx.now = (long long)time(NULL);
	p = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}, {s:s}]}", "id", "p1",
		      "email", "pat@patients.test", "pgp_fpr", fx.a, "proxies",
		      "email", "prox@proxies.test", "pgp_fpr", fx.b,
		      "email", "other@proxies.test");
	tu_store_put(fx.store, DB_PATIENTS, "p1", p);
	p = json_pack("{s:s, s:s, s:s}", "id", "p2", "email", "n@patients.test",
		      "pgp_fpr", fx.c);
	tu_store_put(fx.store, DB_PATIENTS, "p2", p);
	p = json_pack("{s:s, s:s, s:s}", "id", "p3", "email", "m@patients.test",
		      "pgp_fpr", "0123456789ABCDEF0123456789ABCDEF01234567");
	tu_store_put(fx.store, DB_PATIENTS, "p3", p);
	/* a minor, with a key of their own (never written to) and a parent
	 * whose key is the proxy's of p1 too */
	p = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s}]}", "id", "p4",
		      "email", "kid@patients.test", "dob", "2015-05-05", "pgp_fpr", fx.a,
		      "proxies", "email", "prox@proxies.test", "pgp_fpr", fx.b);
	tu_store_put(fx.store, DB_PATIENTS, "p4", p);
	/* an id no event could name: not one of ours */
	p = json_pack("{s:s, s:s, s:s}", "id", "x", "email", "x@patients.test",
		      "pgp_fpr", fx.a);
	tu_store_put(fx.store, DB_PATIENTS, "bad id\x01", p);
	return 0;
}

static int
teardown(void **state)
{
	store_close(fx.store);
	fx.store = NULL;
	config_free(fx.cfg);
	fx.cfg = NULL;
	return 0;
}

struct seen {
	char line[8][160];
	size_t n;
};

static int
record_key(void *ud, const struct keycheck_key *k)
{
	struct seen *s = ud;

	if (s->n < 8)
		snprintf(s->line[s->n++], sizeof(s->line[0]), "%s %s %.8s %s %s", k->patient,
			 k->ref, k->fpr, keycheck_state_name(k->state),
			 k->expires > 0 ? "dated" : "undated");
	return 0;
}

static void
each_ok(long long at, struct seen *s)
{
	struct cp_error err;

	cp_error_clear(&err);
	if (keycheck_each(fx.store, fx.pgp, at, record_key, s, &err) != 0)
		fail_msg("keycheck_each: %s", err.text);
}

static void
the_report_says_each_keys_state(void **state)
{
	struct seen s = { .n = 0 };
	char want[160];

	each_ok(fx.now, &s);
	assert_int_equal(s.n, 6);	/* the proxy without a key is no key */
	snprintf(want, sizeof(want), "p1 patient %.8s expiring dated", fx.a);
	assert_string_equal(s.line[0], want);
	snprintf(want, sizeof(want), "p1 proxy:0 %.8s expiring dated", fx.b);
	assert_string_equal(s.line[1], want);
	snprintf(want, sizeof(want), "p2 patient %.8s ok undated", fx.c);
	assert_string_equal(s.line[2], want);
	assert_string_equal(s.line[3], "p3 patient 01234567 missing undated");
	snprintf(want, sizeof(want), "p4 patient %.8s expiring dated", fx.a);
	assert_string_equal(s.line[4], want);
	snprintf(want, sizeof(want), "p4 proxy:0 %.8s expiring dated", fx.b);
	assert_string_equal(s.line[5], want);
	/* ten days on, the proxy's key has expired */
	s.n = 0;
	each_ok(fx.now + 10 * DAY, &s);
	snprintf(want, sizeof(want), "p1 proxy:0 %.8s expired dated", fx.b);
	assert_string_equal(s.line[1], want);
}

/* notices - the key_expiring delivery records: how many, and of them to
 * ref how many urgent (the 7-day one). */
struct notices {
	const char *ref;
	size_t n, to_ref, urgent;
};

static int
each_delivery(void *ud, const char *k, size_t klen, json_t *v)
{
	struct notices *nt = ud;
	struct delivery d;

	if (delivery_load(v, &d, NULL) < 0)
		return 0;
	if (d.type && strcmp(d.type, "key_expiring") == 0) {
		nt->n++;
		assert_int_equal(d.nrcpts, 1);
		assert_int_equal(d.rcpts[0].mode, RCPT_NOTICE);
		if (strcmp(d.rcpts[0].ref, nt->ref) == 0) {
			nt->to_ref++;
			nt->urgent += d.urgent == 1;
		}
		/* the notice carries nothing of the key or its owner */
		assert_int_equal(json_object_size(d.data), 0);
	}
	delivery_clear(&d);
	return 0;
}

static struct notices
count_notices(const char *ref)
{
	struct notices nt = { ref, 0, 0, 0 };

	assert_int_equal(store_foreach(fx.store, DB_DELIVERY, each_delivery, &nt, NULL), 0);
	return nt;
}

static void
notify(long long at, size_t want_queued)
{
	struct keycheck_stats st;
	struct cp_error err;

	cp_error_clear(&err);
	if (keycheck_notify(fx.store, fx.pgp, fx.cfg, at, &st, &err) != 0)
		fail_msg("keycheck_notify: %s", err.text);
	if (st.queued != want_queued)
		fail_msg("queued %zu, wanted %zu", st.queued, want_queued);
}

static void
notices_go_once_per_key_mark_and_expiry(void **state)
{
	struct notices nt;

	/* now: the adult patient's (20 days) gets the 30-day notice, the
	 * minor's parent (5 days) the 7-day one only; not the adult's proxy,
	 * nor the minor (carepost writes to neither), nor the others */
	notify(fx.now, 2);
	nt = count_notices("patient");
	assert_int_equal(nt.n, 2);
	assert_int_equal(nt.to_ref, 1);
	assert_int_equal(nt.urgent, 0);
	nt = count_notices("proxy:0");
	assert_int_equal(nt.to_ref, 1);
	assert_int_equal(nt.urgent, 1);
	assert_int_equal(count_notices("patient").to_ref, 1);	/* p1's alone */
	/* again, and again a day later: nothing new */
	notify(fx.now, 0);
	notify(fx.now + DAY, 0);
	/* 14 days on the patient's is within 7 days: its second notice; the
	 * proxy's has expired meanwhile: none */
	notify(fx.now + 14 * DAY, 1);
	nt = count_notices("patient");
	assert_int_equal(nt.to_ref, 2);
	assert_int_equal(nt.urgent, 1);
	notify(fx.now + 15 * DAY, 0);
	assert_int_equal(count_notices("patient").n, 3);
}

static void
a_renewed_key_is_fine_again_and_told_of_its_new_date(void **state)
{
	struct seen s = { .n = 0 };
	char want[160];

	notify(fx.now, 2);
	/* the patient renews: the same fingerprint, 90 days from now */
	assert_int_equal(tu_run("gpg --homedir %s --batch --quick-set-expire %s 90d && "
				"gpg --homedir %s --batch --quick-set-expire %s 90d '*'",
				fx.home, fx.a, fx.home, fx.a), 0);
	each_ok(fx.now, &s);
	snprintf(want, sizeof(want), "p1 patient %.8s ok dated", fx.a);
	assert_string_equal(s.line[0], want);
	notify(fx.now + 14 * DAY, 0);	/* the old date's 7-day notice: not sent */
	notify(fx.now + 70 * DAY, 1);	/* the new date comes near */
	assert_int_equal(count_notices("patient").to_ref, 2);
	/* put back the 20 days the other tests start from */
	assert_int_equal(tu_run("gpg --homedir %s --batch --quick-set-expire %s 20d && "
				"gpg --homedir %s --batch --quick-set-expire %s 20d '*'",
				fx.home, fx.a, fx.home, fx.a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(the_report_says_each_keys_state, setup, teardown),
		cmocka_unit_test_setup_teardown(notices_go_once_per_key_mark_and_expiry, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_renewed_key_is_fine_again_and_told_of_its_new_date,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
