/*
 * NAME
 *	test_inbox - unit tests for lib/inbox.c: reading back what inbound
 *	filed, from records written as docs/store.md lays them out
 * DESCRIPTION
 *	The group setup makes one throwaway GnuPG home with a store key;
 *	each test gets a fresh LMDB store. The records are written here as
 *	JSON, not through inbound, so that what a listing leaves out, what
 *	a blob is bound to and what a malformed record gives are each tested
 *	on their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "atrest.h"
#include "atrestfix.h"
#include "buf.h"
#include "gpgfix.h"
#include "inbox.h"
#include "pgp.h"
#include "store.h"
#include "storefix.h"
#include "util.h"

#define NOW 1795626000LL	/* 2026-11-25 17:00 UTC */
#define CONTENT "{\"body\":\"PHI-CANARY-inbox\",\"attachments\":[]}"

TU_ATREST_FIXTURE(fx, "cpi")

/* put - a record under key, in the "inbox" or "clinic" database. */
static void
put(enum store_db db, const char *key, json_t *rec)
{
	struct cp_error err;

	assert_non_null(rec);
	cp_error_clear(&err);
	if (store_put_json(fx.store, db, key, rec, &err) < 0)
		fail_msg("put %s: %s", key, err.text);
	json_decref(rec);
}

/* record - an inbox record of patient/id, as inbound writes one. */
static json_t *
record(const char *patient, const char *id)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:s, s:s}",
			 "id", id, "patient", patient, "thread", "00112233445566778899aabb",
			 "event", "e-1", "event_type", "test_result", "class", "reply",
			 "received", (json_int_t)NOW, "department", "general",
			 "urgent", 0, "sender_role", "patient", "auth", "dmarc");
}

/* sealed - record(patient, id) with CONTENT sealed for aad_patient/aad_id. */
static json_t *
sealed(const char *patient, const char *id, const char *aad_patient,
       const char *aad_id)
{
	char aad[INBOX_AAD_MAX], dek[ATREST_DEK_ID_SIZE];
	struct buf blob = BUF_INIT;
	struct cp_error err;
	json_t *rec = record(patient, id);

	inbox_aad(aad_patient, aad_id, aad);
	cp_error_clear(&err);
	if (atrest_seal(fx.writer, NOW, aad, strlen(aad), CONTENT, strlen(CONTENT),
			&blob, dek, &err) < 0)
		fail_msg("seal: %s", err.text);
	json_object_set_new(rec, "format", json_integer(INBOX_FORMAT));
	json_object_set_new(rec, "dek", json_string(dek));
	json_object_set_new(rec, "blob", json_stringn(blob.data, blob.len));
	buf_free(&blob);
	return rec;
}

static int
open_key(const char *patient, const char *id, struct atrest *a, json_t **content,
	 struct cp_error *err)
{
	json_t *rec = NULL;
	int r;

	*content = NULL;
	cp_error_clear(err);
	r = inbox_get(fx.store, patient, id, &rec, err);
	if (r == 0)
		r = inbox_open(fx.pgp, a, rec, content, err);
	json_decref(rec);
	return r;
}

/*
 * A patient's listing: their records alone (not those of a patient whose
 * id begins with theirs), in key order (message ids begin with the time),
 * without the blob; a value that is not a record is left out.
 */
static void
a_listing_is_the_patients_records_without_their_blobs(void **state)
{
	json_t *list = NULL, *row;
	struct cp_error err;
	size_t i;

	put(DB_INBOX, "p1/m1795626000-00000002", sealed("p1", "m1795626000-00000002",
							 "p1", "m1795626000-00000002"));
	put(DB_INBOX, "p1/m1795625000-00000001", sealed("p1", "m1795625000-00000001",
							 "p1", "m1795625000-00000001"));
	put(DB_INBOX, "p10/m1795626000-00000003", record("p10", "m1795626000-00000003"));
	put(DB_INBOX, "p1/zz-not-a-record", json_pack("[s]", "portal note"));
	put(DB_INBOX, "p0/m1795626000-00000004", record("p0", "m1795626000-00000004"));

	cp_error_clear(&err);
	assert_int_equal(inbox_list(fx.store, "p1", &list, &err), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")),
			    "m1795625000-00000001");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "id")),
			    "m1795626000-00000002");
	json_array_foreach(list, i, row) {
		assert_string_equal(json_string_value(json_object_get(row, "patient")), "p1");
		assert_null(json_object_get(row, "blob"));
		assert_string_equal(json_string_value(json_object_get(row, "event_type")),
				    "test_result");
	}
	json_decref(list);

	assert_int_equal(inbox_list(fx.store, "p2", &list, &err), 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
}

/* Ids that could walk out of one patient's records are refused. */
static void
malformed_ids_are_refused(void **state)
{
	json_t *out = NULL;
	struct cp_error err;

	cp_error_clear(&err);
	assert_int_equal(inbox_list(fx.store, "p1/m", &out, &err), -EINVAL);
	assert_int_equal(inbox_list(fx.store, "", &out, &err), -EINVAL);
	assert_int_equal(inbox_list(fx.store, NULL, &out, &err), -EINVAL);
	assert_int_equal(inbox_get(fx.store, "p1", "../p2/m1", &out, &err), -EINVAL);
	assert_int_equal(inbox_get(fx.store, "p1/x", "m1", &out, &err), -EINVAL);
	assert_int_equal(inbox_clinic_queue(fx.store, "", &out, &err), -EINVAL);
	assert_int_equal(inbox_clinic_queue(fx.store, "a/b", &out, &err), -EINVAL);
	assert_null(out);
	assert_int_equal(inbox_get(fx.store, "p1", "m-absent", &out, &err), -ENOENT);
}

/*
 * A sealed blob opens in its own record, with a reader that has only the
 * store's key (not the writer's data key in memory): and in no other
 * record, whether of another patient or of the same patient.
 */
static void
a_blob_opens_only_in_the_record_it_was_sealed_for(void **state)
{
	json_t *content = NULL;
	struct cp_error err;

	put(DB_INBOX, "p1/m1", sealed("p1", "m1", "p1", "m1"));
	assert_int_equal(open_key("p1", "m1", fx.reader, &content, &err), 0);
	assert_string_equal(json_string_value(json_object_get(content, "body")),
			    "PHI-CANARY-inbox");
	json_decref(content);

	/* moved into another patient's record, or another of the same one */
	put(DB_INBOX, "p2/m1", sealed("p2", "m1", "p1", "m1"));
	assert_int_equal(open_key("p2", "m1", fx.reader, &content, &err), -EBADMSG);
	assert_null(strstr(err.text, "PHI-CANARY"));
	put(DB_INBOX, "p1/m2", sealed("p1", "m2", "p1", "m1"));
	assert_int_equal(open_key("p1", "m2", fx.reader, &content, &err), -EBADMSG);
	assert_null(content);
}

/* What cannot be opened says why, and never opens something else. */
static void
a_record_that_cannot_be_opened_says_why(void **state)
{
	json_t *rec, *content = NULL;
	struct cp_error err;
	char *blob;

	/* no blob */
	put(DB_INBOX, "p1/m1", record("p1", "m1"));
	assert_int_equal(open_key("p1", "m1", fx.reader, &content, &err), -EBADMSG);
	assert_non_null(strstr(err.text, "no content"));

	/* format 2 without the store's data keys */
	put(DB_INBOX, "p1/m2", sealed("p1", "m2", "p1", "m2"));
	assert_int_equal(open_key("p1", "m2", NULL, &content, &err), -EINVAL);

	/* a blob changed by one character */
	rec = sealed("p1", "m3", "p1", "m3");
	blob = strdup(json_string_value(json_object_get(rec, "blob")));
	blob[strlen(blob) / 2] = blob[strlen(blob) / 2] == 'A' ? 'B' : 'A';
	json_object_set_new(rec, "blob", json_string(blob));
	free(blob);
	put(DB_INBOX, "p1/m3", rec);
	assert_int_equal(open_key("p1", "m3", fx.reader, &content, &err), -EBADMSG);

	/* a format nobody wrote */
	rec = sealed("p1", "m4", "p1", "m4");
	json_object_set_new(rec, "format", json_integer(9));
	put(DB_INBOX, "p1/m4", rec);
	assert_int_equal(open_key("p1", "m4", fx.reader, &content, &err),
			 -EPROTONOSUPPORT);

	/* a data key the store does not hold */
	rec = sealed("p1", "m5", "p1", "m5");
	json_object_set_new(rec, "dek", json_string("20261125-ffffffffffffffff"));
	put(DB_INBOX, "p1/m5", rec);
	assert_true(open_key("p1", "m5", fx.reader, &content, &err) < 0);

	/* not a record at all */
	put(DB_INBOX, "p1/m6", json_pack("[i]", 6));
	assert_int_equal(open_key("p1", "m6", fx.reader, &content, &err), -EBADMSG);
	assert_null(content);
}

/* Format 1 (before encryption at rest): a gpg message to the store key. */
static void
format_1_opens_with_gpg(void **state)
{
	struct buf ct = BUF_INIT;
	struct cp_error err;
	json_t *rec, *content = NULL;

	cp_error_clear(&err);
	assert_int_equal(pgp_encrypt_to(fx.pgp, fx.fpr, CONTENT, strlen(CONTENT), &ct,
					&err), 0);
	rec = record("p1", "m1");
	json_object_set_new(rec, "store_key", json_string(fx.fpr));
	json_object_set_new(rec, "blob", json_stringn(ct.data, ct.len));
	put(DB_INBOX, "p1/m1", rec);
	buf_free(&ct);
	assert_int_equal(open_key("p1", "m1", NULL, &content, &err), 0);
	assert_string_equal(json_string_value(json_object_get(content, "body")),
			    "PHI-CANARY-inbox");
	json_decref(content);

	/* without gpg it cannot */
	assert_int_equal(inbox_get(fx.store, "p1", "m1", &rec, &err), 0);
	assert_int_equal(inbox_open(NULL, fx.reader, rec, &content, &err), -EINVAL);
	json_decref(rec);
}

/* The clinic queue: one department's entries, or all, each named. */
static void
the_clinic_queue_lists_a_department_or_all_with_its_name(void **state)
{
	json_t *list = NULL;
	struct cp_error err;
	size_t i;

	put(DB_CLINIC, "cardiology/m1", json_pack("{s:s, s:s, s:s, s:I, s:s}",
		"inbox_id", "m1", "patient", "p1", "class", "reply",
		"received", (json_int_t)NOW, "state", "new"));
	put(DB_CLINIC, "general/m2", json_pack("{s:s, s:s, s:s, s:I, s:s}",
		"inbox_id", "m2", "patient", "p2", "class", "form",
		"received", (json_int_t)NOW, "state", "done"));
	put(DB_CLINIC, "generalsurgery/m3", json_pack("{s:s, s:s, s:s, s:I, s:s}",
		"inbox_id", "m3", "patient", "p3", "class", "reply",
		"received", (json_int_t)NOW, "state", "new"));
	put(DB_CLINIC, "general/zz", json_pack("[s]", "not an entry"));

	cp_error_clear(&err);
	assert_int_equal(inbox_clinic_queue(fx.store, "general", &list, &err), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0),
							      "department")), "general");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0),
							      "state")), "done");
	json_decref(list);

	assert_int_equal(inbox_clinic_queue(fx.store, NULL, &list, &err), 0);
	assert_int_equal(json_array_size(list), 3);
	for (i = 0; i < 3; i++)
		assert_non_null(json_string_value(json_object_get(json_array_get(list, i),
								  "department")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0),
							      "department")), "cardiology");
	json_decref(list);
}

static int
page_id(void *ud, json_t *row)
{
	json_array_append_new(ud, json_sprintf("%s/%s",
		json_string_value(json_object_get(row, "department")),
		json_string_value(json_object_get(row, "inbox_id"))));
	return 0;
}

/* page - the keys of one page, as one string "a/1 b/2". */
static char *
page(const char *dept, const char *after, size_t max, int expect)
{
	json_t *ids = json_array(), *v;
	struct cp_error err;
	struct buf b = BUF_INIT;
	size_t i;

	cp_error_clear(&err);
	assert_int_equal(inbox_clinic_page(fx.store, dept, after, max, page_id, ids,
					   &err), expect);
	json_array_foreach(ids, i, v) {
		if (i > 0)
			buf_append(&b, " ", 1);
		buf_append(&b, json_string_value(v), json_string_length(v));
	}
	buf_append(&b, "", 1);
	json_decref(ids);
	return b.data;
}

/*
 * The clinic queue a page at a time: at most max entries, each page
 * starting after the last entry of the one before, within a department
 * or across all; a page never strays into another department, and an
 * --after that names no entry of the department is refused.
 */
static void
the_clinic_queue_is_read_a_page_at_a_time(void **state)
{
	static const char *const keys[] = {
		"cardiology/m1", "cardiology/m2", "cardiology/m3",
		"general/m4", "general/m5", "generalsurgery/m6",
	};
	char *p;

	for (size_t i = 0; i < CP_ARRAY_SIZE(keys); i++)
		put(DB_CLINIC, keys[i], json_pack("{s:s, s:s, s:s, s:I, s:s}",
			"inbox_id", strchr(keys[i], '/') + 1, "patient", "p1",
			"class", "reply", "received", (json_int_t)NOW, "state", "new"));
	p = page(NULL, NULL, 2, 0);
	assert_string_equal(p, "cardiology/m1 cardiology/m2");
	free(p);
	p = page(NULL, "cardiology/m2", 2, 0);
	assert_string_equal(p, "cardiology/m3 general/m4");
	free(p);
	p = page(NULL, "general/m4", 0, 0);
	assert_string_equal(p, "general/m5 generalsurgery/m6");
	free(p);
	p = page("general", NULL, 1, 0);
	assert_string_equal(p, "general/m4");
	free(p);
	p = page("general", "general/m4", 5, 0);
	assert_string_equal(p, "general/m5");
	free(p);
	p = page("cardiology", "cardiology/m3", 5, 0);
	assert_string_equal(p, "");
	free(p);
	/* an entry gone since the page before: the next page goes on */
	p = page("cardiology", "cardiology/m10", 5, 0);
	assert_string_equal(p, "cardiology/m2 cardiology/m3");
	free(p);
	free(page("general", "cardiology/m1", 5, -EINVAL));
	free(page(NULL, "no-slash", 5, -EINVAL));
	free(page(NULL, "/m1", 5, -EINVAL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_listing_is_the_patients_records_without_their_blobs, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_ids_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(a_blob_opens_only_in_the_record_it_was_sealed_for, setup, teardown),
		cmocka_unit_test_setup_teardown(a_record_that_cannot_be_opened_says_why, setup, teardown),
		cmocka_unit_test_setup_teardown(format_1_opens_with_gpg, setup, teardown),
		cmocka_unit_test_setup_teardown(the_clinic_queue_lists_a_department_or_all_with_its_name, setup, teardown),
		cmocka_unit_test_setup_teardown(the_clinic_queue_is_read_a_page_at_a_time, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
