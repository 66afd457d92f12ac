/*
 * NAME
 *	test_audit - unit tests for the audit trail (lib/audit.c, the audit
 *	record of lib/record.c)
 * DESCRIPTION
 *	A real store in a mkdtemp directory. Appends chain records 1, 2, ...
 *	in the caller's transaction (an aborted one leaves none); a bad
 *	actor or reason writes nothing; audit_verify passes an intact chain
 *	and names the first bad record when a byte is flipped, a record
 *	deleted, two swapped, the chain cut short or a record cut; a record
 *	holds only its references (no other member); export filters by
 *	patient and time and writes FHIR AuditEvent lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gcrypt.h>

#include "audit.h"
#include "record.h"
#include "store.h"
#include "storefmt.h"

#include "fsfix.h"

struct fx {
	char dir[64];
	struct store *s;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (tu_tmpdir("carepost-audit", f->dir, sizeof(f->dir)) < 0 ||
	    storefmt_open(f->dir, 0, 0, &f->s, NULL) < 0) {
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

	store_close(f->s);
	tu_rm_rf(f->dir);
	free(f);
	return 0;
}

static const struct audit_event sent = {
	.action = AUDIT_SENT, .actor = AUDIT_ACTOR_DAEMON, .event = "appt-1",
	.patient = "p-1", .recipient = "patient",
	.key = "0123456789ABCDEF0123456789ABCDEF01234567", .relay = 250,
};

/* append_n - n records, each in a transaction of its own. */
static void
append_n(struct store *s, int n)
{
	struct cp_error err;

	for (int i = 0; i < n; i++) {
		cp_error_clear(&err);
		if (audit_record_one(s, &sent, &err) < 0)
			fail_msg("audit_record_one: %s", err.text);
	}
}

static void
verify(struct store *s, struct audit_verify_result *vr)
{
	struct cp_error err;

	cp_error_clear(&err);
	if (audit_verify(s, vr, &err) < 0)
		fail_msg("audit_verify: %s", err.text);
}

static void
key_of(char key[24], uint64_t seq)
{
	snprintf(key, 24, "%020llu", (unsigned long long)seq);
}

struct raw {
	const char *key;
	char *value;
	size_t len;
};

static int
get_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	struct raw *r = userdata;
	const void *v;
	size_t len;
	int rc = store_txn_get_raw(s, txn, DB_AUDIT, r->key, 20, &v, &len, err);

	if (rc < 0)
		return rc;
	r->value = malloc(len + 1);
	if (r->value == NULL)
		return -ENOMEM;
	memcpy(r->value, v, len);
	r->value[len] = '\0';
	r->len = len;
	return 0;
}

/* get_raw - the stored bytes of record seq (malloc'd). */
static char *
get_raw(struct store *s, uint64_t seq, size_t *len)
{
	char key[24];
	struct raw r = { key, NULL, 0 };

	key_of(key, seq);
	assert_int_equal(store_read(s, get_txn, &r, NULL), 0);
	*len = r.len;
	return r.value;
}

static void
put_raw(struct store *s, uint64_t seq, const char *value, size_t len)
{
	char key[24];

	key_of(key, seq);
	assert_int_equal(store_put_raw(s, DB_AUDIT, key, 20, value, len, NULL), 0);
}

static int
del_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	return store_txn_del(s, txn, DB_AUDIT, userdata, 20, err);
}

static void
del_raw(struct store *s, uint64_t seq)
{
	char key[24];

	key_of(key, seq);
	assert_int_equal(store_write(s, del_txn, key, NULL), 0);
}

static void
assert_bad_at(struct store *s, uint64_t seq, const char *why)
{
	struct audit_verify_result vr;

	verify(s, &vr);
	if (vr.ok)
		fail_msg("verify passed; want a failure at record %llu",
			 (unsigned long long)seq);
	if (vr.bad_seq != seq)
		fail_msg("verify failed at %llu (%s); want %llu",
			 (unsigned long long)vr.bad_seq, vr.why,
			 (unsigned long long)seq);
	if (why != NULL && strstr(vr.why, why) == NULL)
		fail_msg("verify said \"%s\"; want \"%s\"", vr.why, why);
}

static void
records_chain_in_order_and_verify(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result vr;
	struct audit_record rec;
	json_t *holder = NULL;
	char *v1, *v2;
	size_t l1, l2;

	verify(f->s, &vr);		/* an empty trail holds */
	assert_true(vr.ok);
	assert_int_equal(vr.records, 0);
	append_n(f->s, 5);
	verify(f->s, &vr);
	assert_true(vr.ok);
	assert_int_equal(vr.records, 5);
	assert_int_equal(vr.first, 1);
	assert_int_equal(vr.last, 5);
	/* record 2's prev is record 1's hash */
	v1 = get_raw(f->s, 1, &l1);
	v2 = get_raw(f->s, 2, &l2);
	assert_int_equal(audit_record_decode(v1, l1, &holder, &rec, NULL), 0);
	assert_int_equal(rec.seq, 1);
	assert_string_equal(rec.prev, "0000000000000000000000000000000000000000"
			    "000000000000000000000000");
	assert_non_null(strstr(v2, rec.hash));
	assert_string_equal(rec.action, "sent");
	assert_string_equal(rec.actor, "daemon");
	assert_int_equal(rec.relay, 250);
	json_decref(holder);
	free(v1);
	free(v2);
}

static void
flipped_byte_fails_at_its_record(void **state)
{
	struct fx *f = *state;
	size_t len;
	char *v;

	append_n(f->s, 5);
	v = get_raw(f->s, 3, &len);
	/* "appt-1" becomes "appt-0": still a record, not its hash */
	*strstr(v, "appt-1") ^= 0x01;
	put_raw(f->s, 3, v, len);
	assert_bad_at(f->s, 3, "hash does not match");
	/* a flip that breaks the JSON is named too */
	v[0] ^= 0x01;
	put_raw(f->s, 3, v, len);
	assert_bad_at(f->s, 3, "unreadable");
	free(v);
}

static void
deleted_record_is_named(void **state)
{
	struct fx *f = *state;

	append_n(f->s, 5);
	del_raw(f->s, 3);
	assert_bad_at(f->s, 3, "record 3 is missing");
}

static void
reordered_records_fail_at_the_first_moved(void **state)
{
	struct fx *f = *state;
	size_t l2, l4;
	char *v2, *v4;

	append_n(f->s, 5);
	v2 = get_raw(f->s, 2, &l2);
	v4 = get_raw(f->s, 4, &l4);
	put_raw(f->s, 2, v4, l4);
	put_raw(f->s, 4, v2, l2);
	assert_bad_at(f->s, 2, "moved");
	free(v2);
	free(v4);
}

static void
truncated_chain_and_truncated_record_are_named(void **state)
{
	struct fx *f = *state;
	size_t len;
	char *v;

	append_n(f->s, 5);
	v = get_raw(f->s, 5, &len);
	put_raw(f->s, 5, v, len / 2);		/* a record cut short */
	assert_bad_at(f->s, 5, "unreadable");
	del_raw(f->s, 5);			/* the chain cut short */
	del_raw(f->s, 4);
	assert_bad_at(f->s, 4, "truncated");
	/* its start taken away: the trail is never pruned, it starts at 1 */
	del_raw(f->s, 1);
	assert_bad_at(f->s, 1, "records 1 to 1 are missing");
	free(v);
}

static void
rewritten_record_with_a_new_hash_breaks_the_next(void **state)
{
	struct fx *f = *state;
	struct audit_record rec;
	json_t *holder = NULL;
	size_t len, n;
	char *v, *text;

	append_n(f->s, 4);
	/* someone rewrites record 2 and its own hash, as it should be */
	v = get_raw(f->s, 2, &len);
	assert_int_equal(audit_record_decode(v, len, &holder, &rec, NULL), 0);
	rec.event = "appt-9";
	assert_int_equal(audit_record_encode(&rec, 0, &text, &n), 0);
	{
		unsigned char digest[32];

		gcry_md_hash_buffer(GCRY_MD_SHA256, digest, text, n);
		for (size_t i = 0; i < 32; i++)
			snprintf(rec.hash + 2 * i, 3, "%02x", digest[i]);
	}
	free(text);
	assert_int_equal(audit_record_encode(&rec, 1, &text, &n), 0);
	put_raw(f->s, 2, text, n);
	/* record 2 holds; record 3's prev does not name it */
	assert_bad_at(f->s, 3, "prev is not the hash of record 2");
	free(text);
	json_decref(holder);
	free(v);
}


static int
append_then_fail(struct store *s, MDB_txn *txn, void *userdata,
		 struct cp_error *err)
{
	int r = audit_append(s, txn, userdata, err);

	return r < 0 ? r : cp_error_set(err, -EIO, "the action failed");
}

static void
aborted_action_leaves_no_record(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result vr;

	append_n(f->s, 1);
	assert_int_equal(store_write(f->s, append_then_fail, (void *)&sent, NULL),
			 -EIO);
	append_n(f->s, 1);
	verify(f->s, &vr);
	assert_true(vr.ok);
	assert_int_equal(vr.records, 2);
}

static void
bad_actor_or_reason_writes_nothing(void **state)
{
	struct fx *f = *state;
	char longer[AUDIT_REASON_MAX + 2];
	struct audit_event ev = { .action = AUDIT_READ, .actor = "ctl:alice",
				  .patient = "p-1", .inbox = "m1" };
	struct cp_error err;
	size_t n = 9;

	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	cp_error_clear(&err);
	ev.reason = "chart review\nforged line";
	assert_int_equal(audit_record_one(f->s, &ev, &err), -EINVAL);
	assert_non_null(strstr(err.text, "control character"));
	ev.reason = longer;
	assert_int_equal(audit_record_one(f->s, &ev, &err), -EINVAL);
	ev.reason = "";
	assert_int_equal(audit_record_one(f->s, &ev, &err), -EINVAL);
	ev.reason = "chart review";
	ev.actor = "ctl:alice bob";
	assert_int_equal(audit_record_one(f->s, &ev, &err), -EINVAL);
	ev.actor = "root";
	assert_int_equal(audit_record_one(f->s, &ev, &err), -EINVAL);
	ev.actor = NULL;
	assert_int_equal(audit_record_one(f->s, &ev, &err), -EINVAL);
	ev.actor = "ctl:alice";
	ev.action = AUDIT__COUNT;
	assert_int_equal(audit_record_one(f->s, &ev, &err), -EINVAL);
	assert_int_equal(store_count(f->s, DB_AUDIT, &n, NULL), 0);
	assert_int_equal(n, 0);
	/* the reason is kept as given, at the longest allowed */
	longer[AUDIT_REASON_MAX] = '\0';
	ev.action = AUDIT_READ;
	ev.reason = longer;
	assert_int_equal(audit_record_one(f->s, &ev, &err), 0);
}

static void
record_holds_only_references(void **state)
{
	static const char *const allowed[] = {
		"seq", "time", "actor", "action", "reason", "event", "patient",
		"inbox", "recipient_ref", "key", "relay", "prev", "hash",
	};
	struct fx *f = *state;
	struct audit_event ev = { .action = AUDIT_READ, .actor = "ctl:alice",
				  .reason = "chart review", .patient = "p-1",
				  .inbox = "m1700000000-0a0b0c0d" };
	const char *name;
	json_t *o, *value;
	size_t len;
	char *v;

	assert_int_equal(audit_record_one(f->s, &ev, NULL), 0);
	v = get_raw(f->s, 1, &len);
	o = json_loadb(v, len, 0, NULL);
	assert_non_null(o);
	json_object_foreach(o, name, value) {
		size_t i;

		for (i = 0; i < CP_ARRAY_SIZE(allowed); i++)
			if (strcmp(name, allowed[i]) == 0)
				break;
		if (i == CP_ARRAY_SIZE(allowed))
			fail_msg("an audit record holds member %s", name);
	}
	assert_string_equal(json_string_value(json_object_get(o, "reason")),
			    "chart review");
	assert_null(json_object_get(o, "event"));
	json_decref(o);
	free(v);
}

static void
export_filters_and_writes_fhir_audit_events(void **state)
{
	struct fx *f = *state;
	struct audit_event other = sent;
	struct audit_filter all = { NULL, 0, 0 }, one = { "p-2", 0, 0 },
			    none = { NULL, 0, 1 };
	char *text = NULL;
	size_t size = 0;
	uint64_t n = 0;
	FILE *out;
	json_t *line;

	other.patient = "p-2";
	append_n(f->s, 2);
	assert_int_equal(audit_record_one(f->s, &other, NULL), 0);
	out = open_memstream(&text, &size);
	assert_int_equal(audit_export(f->s, &all, out, &n, NULL), 0);
	assert_int_equal(n, 3);
	assert_int_equal(audit_export(f->s, &none, out, &n, NULL), 0);
	assert_int_equal(n, 0);
	fclose(out);
	free(text);
	text = NULL;
	out = open_memstream(&text, &size);
	assert_int_equal(audit_export(f->s, &one, out, &n, NULL), 0);
	fclose(out);
	assert_int_equal(n, 1);
	line = json_loads(text, 0, NULL);
	assert_non_null(line);
	assert_string_equal(json_string_value(json_object_get(line, "resourceType")),
			    "AuditEvent");
	assert_non_null(strstr(text, "\"Patient/p-2\""));
	assert_non_null(strstr(text, "\"Event/appt-1\""));
	assert_non_null(strstr(text, "\"recorded\""));
	assert_non_null(strstr(text, "\"subtype\""));
	json_decref(line);
	free(text);
}

static void
a_reload_is_one_record_by_the_daemon(void **state)
{
	struct fx *f = *state;
	size_t len;
	char *v;

	assert_int_equal(audit_daemon_action(f->s, AUDIT_RELOADED, NULL), 0);
	v = get_raw(f->s, 1, &len);
	assert_non_null(strstr(v, "\"action\":\"reloaded\""));
	assert_non_null(strstr(v, "\"actor\":\"daemon\""));
	assert_null(strstr(v, "\"patient\""));
	free(v);
	assert_int_equal(store_count(f->s, DB_AUDIT, &len, NULL), 0);
	assert_int_equal(len, 1);
}

static void
record_bytes_are_jansson_compact_sorted(void **state)
{
	struct fx *f = *state;
	struct audit_event ev = { .action = AUDIT_READ, .actor = "ctl:alice",
				  .reason = "\"quoted\" back\\slash caf\xc3\xa9 /",
				  .patient = "p-\xc3\xa9", .inbox = "m1" };
	json_t *o;
	char *v, *again;
	size_t len;

	assert_int_equal(audit_record_one(f->s, &ev, NULL), 0);
	v = get_raw(f->s, 1, &len);
	o = json_loadb(v, len, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "reason")), ev.reason);
	again = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(again, v);
	free(again);
	json_decref(o);
	free(v);
	/* a control character in a reference is refused */
	ev.reason = NULL;
	ev.inbox = "m1\tx";
	assert_int_equal(audit_record_one(f->s, &ev, NULL), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(records_chain_in_order_and_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(flipped_byte_fails_at_its_record, setup, teardown),
		cmocka_unit_test_setup_teardown(deleted_record_is_named, setup, teardown),
		cmocka_unit_test_setup_teardown(reordered_records_fail_at_the_first_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(truncated_chain_and_truncated_record_are_named, setup, teardown),
		cmocka_unit_test_setup_teardown(rewritten_record_with_a_new_hash_breaks_the_next, setup, teardown),
		cmocka_unit_test_setup_teardown(aborted_action_leaves_no_record, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_actor_or_reason_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(record_holds_only_references, setup, teardown),
		cmocka_unit_test_setup_teardown(export_filters_and_writes_fhir_audit_events, setup, teardown),
		cmocka_unit_test_setup_teardown(a_reload_is_one_record_by_the_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(record_bytes_are_jansson_compact_sorted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
