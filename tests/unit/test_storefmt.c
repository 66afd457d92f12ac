/*
 * NAME
 *	test_storefmt - unit tests for the store format version and its
 *	upgrade steps (lib/storefmt.c, the "format" record of lib/record.c)
 * DESCRIPTION
 *	Real LMDB files in mkdtemp directories: a store as the code of
 *	version 1 wrote it (no format record, no audit database) is refused
 *	by carepostctl's open and upgraded to version 2 (the audit database)
 *	at carepostd's start; one of version 2 gets the delivery records'
 *	counts by state and the indexes of open work and leases, made from
 *	its records; a new store is made at this version; a store of a newer version, or with a
 *	malformed record, is refused before anything is written to it (its
 *	data.mdb unchanged, no database created); an older one is refused
 *	without STOREFMT_OLDER_OK; steps run in order, each in its own
 *	transaction with the version it reaches, and a step that fails
 *	leaves the store at the version before it, its writes undone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>


#include "audit.h"
#include "queue.h"
#include "record.h"
#include "store.h"
#include "storefmt.h"

#include "fsfix.h"

struct fx {
	char dir[64];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (tu_tmpdir("carepost-fmt", f->dir, sizeof(f->dir)) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	tu_rm_rf(f->dir);
	free(f);
	return 0;
}

/* today_store - a store as the code before the format record wrote it. */
static void
today_store(const char *dir)
{
	struct cp_error err;
	struct store *s = NULL;
	json_t *p = json_pack("{s:s, s:s}", "id", "p-1", "email", "a@patients.test");

	cp_error_clear(&err);
	assert_int_equal(store_open(dir, 0, &s, &err), 0);
	assert_int_equal(store_put_json(s, DB_PATIENTS, "p-1", p, &err), 0);
	json_decref(p);
	store_close(s);
}

/* raw_meta - a store with only a meta database holding format = value. */
static void
raw_meta(const char *dir, const char *value)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 6, (void *)"format" }, v = { strlen(value), (void *)value };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* raw_has_db - whether the store at dir has the named database. */
static int
raw_has_db(const char *dir, const char *name)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	rc = mdb_dbi_open(txn, name, 0, &dbi);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc == 0;
}

static char *
data_file(const char *dir, size_t *len)
{
	char path[128];
	char *data = NULL;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(cp_read_file(path, 64u << 20, &data, len), 0);
	return data;
}

static void
assert_version(struct store *s, unsigned want, int want_recorded)
{
	unsigned v = 0;
	int recorded = -1;

	assert_int_equal(storefmt_version(s, &v, &recorded, NULL), 0);
	assert_int_equal(v, want);
	assert_int_equal(recorded, want_recorded);
}

/*
 * v1_store - a store as the code of format version 1 left it: its twelve
 * databases (no "audit"), a patient, no format record.
 */
static void
v1_store(const char *dir)
{
	static const char *const names[] = {
		"patients", "events", "delivery", "schedule", "threads", "bounces",
		"meta", "inbox", "clinic", "seen", "imap", "acks",
	};
	static const char patient[] = "{\"id\":\"p-1\",\"email\":\"a@patients.test\"}";
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 3, (void *)"p-1" }, v = { sizeof(patient) - 1, (void *)patient };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	for (size_t i = 0; i < CP_ARRAY_SIZE(names); i++)
		assert_int_equal(mdb_dbi_open(txn, names[i], MDB_CREATE, &dbi), 0);
	assert_int_equal(mdb_dbi_open(txn, "patients", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void
version_1_store_is_upgraded_with_the_audit_database(void **state)
{
	struct fx *f = *state;
	struct cp_error err;
	struct store *s = NULL;
	struct audit_event ev = { .action = AUDIT_RELOADED,
				  .actor = AUDIT_ACTOR_DAEMON };
	struct audit_verify_result vr;
	json_t *p = NULL, *rec = NULL;
	size_t ran = 9;

	v1_store(f->dir);
	cp_error_clear(&err);
	/* carepostctl's open: an older store is refused, and not written */
	assert_int_equal(storefmt_open(f->dir, 0, 0, &s, &err), -EPROTO);
	assert_null(s);
	assert_non_null(strstr(err.text, "format version 1 is older"));
	assert_false(raw_has_db(f->dir, "audit"));
	/* carepostd's open and start: the step runs, the record written */
	assert_int_equal(storefmt_open(f->dir, 0, STOREFMT_OLDER_OK, &s, &err), 0);
	assert_version(s, 1, 0);
	assert_int_equal(storefmt_upgrade(s, &ran, &err), 0);
	assert_int_equal(ran, STOREFMT_VERSION - 1);
	assert_version(s, STOREFMT_VERSION, 1);
	assert_int_equal(store_get_json(s, DB_META, STORE_FORMAT_KEY, &rec, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(rec, "version")),
			 STOREFMT_VERSION);
	json_decref(rec);
	/* what was there is there, and the audit trail works */
	assert_int_equal(store_get_json(s, DB_PATIENTS, "p-1", &p, &err), 0);
	json_decref(p);
	assert_int_equal(audit_record_one(s, &ev, &err), 0);
	assert_int_equal(audit_verify(s, &vr, &err), 0);
	assert_true(vr.ok);
	assert_int_equal(vr.records, 1);
	/* a second start changes nothing */
	assert_int_equal(storefmt_upgrade(s, &ran, &err), 0);
	assert_int_equal(ran, 0);
	store_close(s);
	s = NULL;
	assert_true(raw_has_db(f->dir, "audit"));
	assert_true(raw_has_db(f->dir, "digests"));	/* version 6's step */
	assert_true(raw_has_db(f->dir, "candidates"));	/* version 7's */
	assert_int_equal(storefmt_open(f->dir, 0, 0, &s, &err), 0);
	assert_version(s, STOREFMT_VERSION, 1);
	store_close(s);
}

static int
schedule_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	const struct delivery *d = ud;

	return store_txn_schedule_put(s, txn, d->due, d->id, err);
}

static int
list_one(void *ud, const struct delivery *d)
{
	(*(size_t *)ud)++;
	return 0;
}

/*
 * A store of version 2 (delivery records as that code wrote them, no
 * counts, no indexes) gets its counts by state and its indexes of open
 * work and leases made from its records at carepostd's start: stats, the
 * oldest pending, the listing and a crash's release then work as on a
 * store this build wrote.
 */
static void
version_2_store_gets_counts_and_indexes_of_its_records(void **state)
{
	static const struct {
		const char *id;
		enum delivery_state state;
		int64_t created, due;
	} recs[] = {
		{ "e-1", DELIVERY_SENT, 100, 0 },
		{ "e-2", DELIVERY_QUEUED, 300, 5000 },
		{ "e-3", DELIVERY_SENDING, 200, 9000 },
		{ "e-4", DELIVERY_DEFERRED, 400, 7000 },
		{ "e-5", DELIVERY_SENT, 50, 0 },
	};
	struct fx *f = *state;
	struct cp_error err;
	struct store *s = NULL;
	struct queue_tally qt;
	int64_t oldest = 0;
	size_t ran = 0, released = 0, listed = 0;

	cp_error_clear(&err);
	raw_meta(f->dir, "{\"version\":2}");
	assert_int_equal(storefmt_open(f->dir, 0, STOREFMT_OLDER_OK, &s, &err), 0);
	for (size_t i = 0; i < CP_ARRAY_SIZE(recs); i++) {
		struct delivery d = { 0 };
		json_t *v;

		d.id = (char *)recs[i].id;
		d.type = (char *)"test_result";
		d.patient = (char *)"p-1";
		d.state = recs[i].state;
		d.created = (time_t)recs[i].created;
		d.updated = (time_t)recs[i].created;
		d.due = (time_t)recs[i].due;
		v = delivery_dump(&d);
		assert_int_equal(store_put_json(s, DB_DELIVERY, d.id, v, &err), 0);
		json_decref(v);
		if (!delivery_state_final(d.state))
			assert_int_equal(store_write(s, schedule_txn, &d, &err), 0);
	}
	assert_int_equal(store_put_raw(s, DB_DELIVERY, "e-bad", 5, "not json", 8,
				       &err), 0);
	assert_int_equal(queue_tally(s, &qt, &err), 0);
	assert_int_equal(qt.by_state[DELIVERY_SENT], 0);	/* none yet */
	assert_version(s, 2, 1);
	assert_int_equal(storefmt_upgrade(s, &ran, &err), 0);
	assert_int_equal(ran, STOREFMT_VERSION - 2);
	assert_version(s, STOREFMT_VERSION, 1);
	assert_int_equal(queue_tally(s, &qt, &err), 0);
	assert_int_equal(qt.by_state[DELIVERY_SENT], 2);
	assert_int_equal(qt.by_state[DELIVERY_QUEUED], 1);
	assert_int_equal(qt.by_state[DELIVERY_SENDING], 1);
	assert_int_equal(qt.by_state[DELIVERY_DEFERRED], 1);
	assert_int_equal(queue_oldest_pending(s, &oldest, &err), 0);
	assert_int_equal(oldest, 200);
	assert_int_equal(queue_list(s, 0, list_one, &listed, &err), 0);
	assert_int_equal(listed, 3);
	assert_int_equal(queue_release_leases(s, 8000, &released, &err), 0);
	assert_int_equal(released, 1);
	assert_int_equal(queue_tally(s, &qt, &err), 0);
	assert_int_equal(qt.by_state[DELIVERY_QUEUED], 2);
	assert_int_equal(qt.by_state[DELIVERY_SENDING], 0);
	store_close(s);
}

static void
new_store_is_made_at_this_version_with_its_record(void **state)
{
	struct fx *f = *state;
	struct cp_error err;
	struct store *s = NULL;
	size_t ran = 9;

	cp_error_clear(&err);
	/* carepostctl may be the first to open it: no upgrade is needed */
	assert_int_equal(storefmt_open(f->dir, 0, 0, &s, &err), 0);
	assert_version(s, STOREFMT_VERSION, 1);
	assert_int_equal(storefmt_upgrade(s, &ran, &err), 0);
	assert_int_equal(ran, 0);
	store_close(s);
	assert_true(raw_has_db(f->dir, "audit"));
}

static void
newer_store_is_refused_naming_both_versions_and_not_written(void **state)
{
	struct fx *f = *state;
	struct cp_error err;
	struct store *s = NULL;
	_cleanup_free_ char *before = NULL, *after = NULL;
	size_t blen = 0, alen = 0;
	char want[64];

	snprintf(want, sizeof(want), "{\"version\":%u}", STOREFMT_VERSION + 1);
	raw_meta(f->dir, want);
	before = data_file(f->dir, &blen);
	for (int flags = 0; flags <= STOREFMT_OLDER_OK; flags++) {
		cp_error_clear(&err);
		assert_int_equal(storefmt_open(f->dir, 0, flags, &s, &err), -EPROTO);
		assert_null(s);
		snprintf(want, sizeof(want), "format version %u is newer",
			 STOREFMT_VERSION + 1);
		assert_non_null(strstr(err.text, want));
		snprintf(want, sizeof(want), "(version %u)", STOREFMT_VERSION);
		assert_non_null(strstr(err.text, want));
		assert_non_null(strstr(err.text, f->dir));
	}
	/* not opened for writing: no database made, not a byte changed */
	assert_false(raw_has_db(f->dir, "patients"));
	after = data_file(f->dir, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
}

static void
malformed_format_record_is_refused(void **state)
{
	static const char *const bad[] = {
		"{\"version\":\"two\"}", "{\"version\":0}", "{}", "[2]", "not json",
		"{\"version\":1.5}", "{\"version\":99999999999}",
	};
	struct fx *f = *state;
	char dir[128];

	for (size_t i = 0; i < CP_ARRAY_SIZE(bad); i++) {
		struct cp_error err;
		struct store *s = NULL;

		snprintf(dir, sizeof(dir), "%s/s%zu", f->dir, i);
		assert_int_equal(mkdir(dir, 0700), 0);
		raw_meta(dir, bad[i]);
		cp_error_clear(&err);
		assert_int_equal(storefmt_open(dir, 0, STOREFMT_OLDER_OK, &s, &err),
				 -EBADMSG);
		assert_null(s);
		assert_non_null(strstr(err.text, "meta format"));
		assert_false(raw_has_db(dir, "patients"));
	}
}

static void
older_version_is_refused_unless_the_caller_upgrades(void **state)
{
	struct cp_error err;

	cp_error_clear(&err);
	assert_int_equal(storefmt_check(1, 2, 0, "/s", &err), -EPROTO);
	assert_non_null(strstr(err.text, "format version 1 is older"));
	assert_non_null(strstr(err.text, "(version 2)"));
	assert_non_null(strstr(err.text, "start carepostd"));
	assert_int_equal(storefmt_check(1, 2, STOREFMT_OLDER_OK, "/s", &err), 0);
	assert_int_equal(storefmt_check(2, 2, 0, "/s", &err), 0);
	assert_int_equal(storefmt_check(3, 2, STOREFMT_OLDER_OK, "/s", &err), -EPROTO);
}

/* ---- upgrade steps ---- */

static int
mark(struct store *s, MDB_txn *txn, const char *key, struct cp_error *err)
{
	return store_txn_put_raw(s, txn, DB_META, key, strlen(key), "{}", 2, err);
}

static int
step_one(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return mark(s, txn, "test:step1", err);
}

static int
step_two(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return mark(s, txn, "test:step2", err);
}

static int
step_two_fails(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	int r = mark(s, txn, "test:step2", err);

	return r < 0 ? r : cp_error_set(err, -EIO, "the disk said no");
}

/* open_today - today_store, opened as carepostd opens it. */
static struct store *
open_today(const char *dir)
{
	struct store *s = NULL;

	today_store(dir);
	assert_int_equal(storefmt_open(dir, 0, STOREFMT_OLDER_OK, &s, NULL), 0);
	return s;
}

static int
has_mark(struct store *s, const char *key)
{
	json_t *v = NULL;
	int r = store_get_json(s, DB_META, key, &v, NULL);

	json_decref(v);
	return r == 0;
}

static int
step_three(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return mark(s, txn, "test:step3", err);
}

static int
step_four(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return mark(s, txn, "test:step4", err);
}

static int
step_five(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return mark(s, txn, "test:step5", err);
}

static int
step_six(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return mark(s, txn, "test:step6", err);
}

static int
step_seven(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return mark(s, txn, "test:step7", err);
}

/* Steps that work: version 1 to 2 ... 7 to 8 (past this build's 7: a
 * newer build's steps grow this table by one). */
static const struct storefmt_step good_steps[] = {
	{ 1, "one", step_one }, { 2, "two", step_two }, { 3, "three", step_three },
	{ 4, "four", step_four }, { 5, "five", step_five }, { 6, "six", step_six },
	{ 7, "seven", step_seven },
};

static void
steps_run_in_order_each_reaching_its_version(void **state)
{
	const struct storefmt_step *steps = good_steps;
	struct fx *f = *state;
	struct cp_error err;
	struct store *s = open_today(f->dir);
	size_t ran = 0;

	cp_error_clear(&err);
	assert_int_equal(STOREFMT_VERSION + 1, 8);	/* see good_steps */
	assert_int_equal(storefmt_upgrade_steps(s, steps, 7, 8, &ran, &err), 0);
	assert_int_equal(ran, 7);
	assert_version(s, 8, 1);
	assert_true(has_mark(s, "test:step1"));
	assert_true(has_mark(s, "test:step2"));
	assert_true(has_mark(s, "test:step3"));
	assert_true(has_mark(s, "test:step4"));
	assert_true(has_mark(s, "test:step5"));
	assert_true(has_mark(s, "test:step6"));
	assert_true(has_mark(s, "test:step7"));
	/* at its version: nothing runs again */
	assert_int_equal(storefmt_upgrade_steps(s, steps, 7, 8, &ran, &err), 0);
	assert_int_equal(ran, 0);
	/* a table that stops short of the target says where */
	assert_int_equal(storefmt_upgrade_steps(s, steps, 7, 9, &ran, &err), -EPROTO);
	assert_non_null(strstr(err.text, "no upgrade step to version 9"));
	assert_version(s, 8, 1);
	store_close(s);
	/* and this build (version 7) refuses what the steps made */
	s = NULL;
	assert_int_equal(storefmt_open(f->dir, 0, STOREFMT_OLDER_OK, &s, &err), -EPROTO);
}

static void
failing_step_leaves_the_version_where_it_was(void **state)
{
	static const struct storefmt_step bad[] = {
		{ 1, "one", step_one }, { 2, "two", step_two_fails },
	};
	struct fx *f = *state;
	struct cp_error err;
	struct store *s = open_today(f->dir);
	size_t ran = 0;

	cp_error_clear(&err);
	assert_int_equal(storefmt_upgrade_steps(s, bad, 2, 3, &ran, &err), -EIO);
	assert_non_null(strstr(err.text, "upgrading the store from version 2 to 3 (two)"));
	assert_non_null(strstr(err.text, "the disk said no"));
	assert_int_equal(ran, 1);
	/* step one holds; step two's write is undone with its version */
	assert_version(s, 2, 1);
	assert_true(has_mark(s, "test:step1"));
	assert_false(has_mark(s, "test:step2"));
	/* the next start runs the step again, from where it stopped */
	assert_int_equal(storefmt_upgrade_steps(s, good_steps, 2, 3, &ran, &err), 0);
	assert_int_equal(ran, 1);
	assert_version(s, 3, 1);
	assert_true(has_mark(s, "test:step2"));
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(version_1_store_is_upgraded_with_the_audit_database, setup, teardown),
		cmocka_unit_test_setup_teardown(version_2_store_gets_counts_and_indexes_of_its_records, setup, teardown),
		cmocka_unit_test_setup_teardown(new_store_is_made_at_this_version_with_its_record, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_store_is_refused_naming_both_versions_and_not_written, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_format_record_is_refused, setup, teardown),
		cmocka_unit_test(older_version_is_refused_unless_the_caller_upgrades),
		cmocka_unit_test_setup_teardown(steps_run_in_order_each_reaching_its_version, setup, teardown),
		cmocka_unit_test_setup_teardown(failing_step_leaves_the_version_where_it_was, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
