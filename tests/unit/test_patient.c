/*
 * NAME
 *	test_patient - unit tests for the patient record edits (lib/patient.c)
 * DESCRIPTION
 *	patient_link_key on the patient and on a proxy, refusals (no
 *	patient, no proxy, not an object), members it does not touch kept;
 *	patient_txn_opt_out adds a category once, to the right person, and
 *	does nothing for a patient or ref that is not there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <string.h>

#include "audit.h"
#include "patient.h"
#include "store.h"

static char dir[64];
static struct store *st;

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	struct cp_error err = { 0, "" };
	json_t *p;

	strcpy(dir, "/tmp/carepost-patient-XXXXXX");
	if (mkdtemp(dir) == NULL || store_open(dir, 0, &st, &err) < 0)
		return -1;
	p = json_loads("{\"id\":\"p1\",\"email\":\"a@x.test\",\"future\":[1],"
		       "\"proxies\":[{\"email\":\"b@x.test\"},{\"email\":\"c@x.test\","
		       "\"optout\":[\"billing\"]}]}", 0, NULL);
	if (p == NULL || store_put_json(st, DB_PATIENTS, "p1", p, &err) < 0)
		return -1;
	json_decref(p);
	p = json_loads("[1,2]", 0, NULL);
	if (store_put_json(st, DB_PATIENTS, "p-array", p, &err) < 0)
		return -1;
	json_decref(p);
	return 0;
}

static int
teardown(void **state)
{
	store_close(st);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

struct audit_seen {
	char text[1024];
	size_t n;
};

static int
audit_row(void *userdata, const char *k, size_t klen, json_t *value)
{
	struct audit_seen *a = userdata;
	char *t = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);

	snprintf(a->text, sizeof(a->text), "%s", t ? t : "");
	free(t);
	a->n++;
	return 0;
}

/* audit_count - audit records in the store; last: the last one's JSON. */
static size_t
audit_count(char last[1024])
{
	struct audit_seen a = { "", 0 };

	assert_int_equal(store_foreach(st, DB_AUDIT, audit_row, &a, NULL), 0);
	if (last)
		memcpy(last, a.text, sizeof(a.text));
	return a.n;
}

static char *
stored(const char *id)
{
	json_t *v = NULL;
	char *t;

	assert_int_equal(store_get_json(st, DB_PATIENTS, id, &v, NULL), 0);
	t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(v);
	return t;
}

static void
link_key_sets_the_patient_or_proxy_fingerprint_in_one_write(void **state)
{
	struct cp_error err = { 0, "" };
	char *t;

	assert_int_equal(patient_link_key(st, "p1", -1, "AAAA", "ctl:test", &err), 0);
	assert_int_equal(patient_link_key(st, "p1", 1, "BBBB", "ctl:test", &err), 0);
	t = stored("p1");
	assert_string_equal(t, "{\"email\":\"a@x.test\",\"future\":[1],\"id\":\"p1\","
		"\"pgp_fpr\":\"AAAA\",\"proxies\":[{\"email\":\"b@x.test\"},"
		"{\"email\":\"c@x.test\",\"optout\":[\"billing\"],\"pgp_fpr\":\"BBBB\"}]}");
	free(t);
	assert_int_equal(patient_link_key(st, "p1", 2, "CCCC", "ctl:test", &err), -ENXIO);
	assert_string_equal(err.text, "patient p1: no proxy 2");
	assert_int_equal(patient_link_key(st, "p-none", -1, "CCCC", "ctl:test", &err), -ENOENT);
	assert_int_equal(patient_link_key(st, "p-array", -1, "CCCC", "ctl:test", &err), -EBADMSG);
}

static int opt_out(const char *patient, const char *ref, const char *category);
static const char *stored_text_p1(void);

static void
each_key_linked_and_opt_out_applied_is_audited_once(void **state)
{
	struct cp_error err = { 0, "" };
	char last[1024];

	assert_int_equal(patient_link_key(st, "p1", 1, "BBBB", "ctl:alice", &err), 0);
	assert_int_equal(audit_count(last), 1);
	assert_non_null(strstr(last, "\"action\":\"key_imported\""));
	assert_non_null(strstr(last, "\"actor\":\"ctl:alice\""));
	assert_non_null(strstr(last, "\"key\":\"BBBB\""));
	assert_non_null(strstr(last, "\"recipient_ref\":\"proxy:1\""));
	/* refused: nothing linked, nothing audited */
	assert_int_equal(patient_link_key(st, "p1", 2, "CCCC", "ctl:alice", &err), -ENXIO);
	assert_int_equal(patient_link_key(st, "p1", -1, "CCCC", "alice", &err), -EINVAL);
	assert_int_equal(audit_count(NULL), 1);
	assert_null(strstr(stored_text_p1(), "CCCC"));
	/* an opt-out applied: one record; one already there: none */
	assert_int_equal(opt_out("p1", "proxy:0", "reminder"), 1);
	assert_int_equal(audit_count(last), 2);
	assert_non_null(strstr(last, "\"action\":\"opted_out\""));
	assert_non_null(strstr(last, "\"actor\":\"daemon\""));
	assert_non_null(strstr(last, "\"patient\":\"p1\""));
	assert_null(strstr(last, "@"));
	assert_int_equal(opt_out("p1", "proxy:0", "reminder"), 0);
	assert_int_equal(audit_count(NULL), 2);
}

/* stored_text_p1 - p1's record as stored (a static copy). */
static const char *
stored_text_p1(void)
{
	static char copy[1024];
	char *t = stored("p1");

	snprintf(copy, sizeof(copy), "%s", t);
	free(t);
	return copy;
}

struct opt {
	const char *patient, *ref, *category;
	int result;
};

static int
opt_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct opt *o = ud;

	o->result = patient_txn_opt_out(s, txn, o->patient, o->ref, o->category, NULL,
					 err);
	return o->result < 0 ? o->result : 0;
}

static int
opt_out(const char *patient, const char *ref, const char *category)
{
	struct opt o = { patient, ref, category, -1 };

	assert_int_equal(store_write(st, opt_txn, &o, NULL), 0);
	return o.result;
}

static void
opt_out_adds_a_category_once_to_the_right_person(void **state)
{
	char *t;

	assert_int_equal(opt_out("p1", "proxy:0", "reminder"), 1);
	assert_int_equal(opt_out("p1", "proxy:0", "reminder"), 0);
	assert_int_equal(opt_out("p1", "proxy:1", "billing"), 0);
	assert_int_equal(opt_out("p1", "patient", "education"), 1);
	assert_int_equal(opt_out("p1", "proxy:7", "billing"), 0);
	assert_int_equal(opt_out("p1", "proxy:x", "billing"), 0);
	assert_int_equal(opt_out("p-none", "patient", "billing"), 0);
	assert_int_equal(opt_out("p-array", "patient", "billing"), 0);
	t = stored("p1");
	assert_string_equal(t, "{\"email\":\"a@x.test\",\"future\":[1],\"id\":\"p1\","
		"\"optout\":[\"education\"],\"proxies\":[{\"email\":\"b@x.test\","
		"\"optout\":[\"reminder\"]},{\"email\":\"c@x.test\",\"optout\":[\"billing\"]}]}");
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(link_key_sets_the_patient_or_proxy_fingerprint_in_one_write,
						setup, teardown),
		cmocka_unit_test_setup_teardown(each_key_linked_and_opt_out_applied_is_audited_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(opt_out_adds_a_category_once_to_the_right_person,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
