/*
 * NAME
 *	test_record - unit tests for the record codecs (lib/record.c)
 * DESCRIPTION
 *	Each codec loads what earlier versions stored and dumps it again
 *	byte for byte (the portal reads these records from docs/store.md);
 *	unknown members survive; records written wrongly (the wrong JSON
 *	type, an unknown state, not an object, a newer layout) give a
 *	clear error naming the field and never its value; the constructors
 *	make what the store documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "record.h"
#include "util.h"

#define CANARY	"PHI-CANARY-5d1e"

/* round_trip - load text, dump it, compare with the store's encoding. */
static void
assert_round_trip_delivery(const char *text)
{
	struct cp_error err = { 0, "" };
	struct delivery d;
	json_t *v = json_loads(text, 0, NULL), *back;
	char *a, *b;

	assert_non_null(v);
	assert_int_equal(delivery_load(v, &d, &err), 0);
	back = delivery_dump(&d);
	assert_non_null(back);
	a = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	b = json_dumps(back, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(b, a);
	free(a);
	free(b);
	json_decref(back);
	json_decref(v);
	delivery_clear(&d);
}

static void
delivery_records_of_every_shape_round_trip(void **state)
{
	/* docs/store.md's example */
	assert_round_trip_delivery("{\"id\": \"appt-1234\", \"type\": \"appointment_reminder\", "
		"\"patient\": \"p-1001\", \"state\": \"sent\", \"created\": 1796223600, "
		"\"updated\": 1796223605, \"due\": 1796223600, \"attempts\": 1, "
		"\"send_at\": 1796223600, \"expires_at\": 1796313600, \"priority\": \"normal\", "
		"\"confidential\": false, \"department\": \"cardiology\", "
		"\"thread\": \"6f1c0e9a3b27d4c85e10\", \"recipients\": [{\"ref\": \"patient\", "
		"\"mode\": \"notice\", \"state\": \"sent\", \"code\": 250, \"sent_at\": 1796223605, "
		"\"address_hash\": \"0123456789abcdef\", "
		"\"message_id\": \"<6f1c0e9a3b27d4c85e10.r0.k3q7wzb2xa@clinic.example>\"}], "
		"\"scrubbed\": true}");
	/* a queued one with data, a failed claim, a bounced recipient */
	assert_round_trip_delivery("{\"id\":\"e1\",\"type\":\"test_result\",\"patient\":\"p\","
		"\"state\":\"queued\",\"created\":1,\"updated\":2,\"due\":3,\"attempts\":0,"
		"\"priority\":\"high\",\"confidential\":true,\"thread\":\"00\","
		"\"recipients\":[],\"data\":{\"x\":[1,{\"y\":null}]}}");
	assert_round_trip_delivery("{\"id\":\"bad\",\"state\":\"failed\",\"reason\":"
		"\"invalid event: not JSON (line 1, column 1)\",\"created\":5,\"updated\":5,"
		"\"due\":5,\"attempts\":0,\"recipients\":[],\"scrubbed\":true}");
	assert_round_trip_delivery("{\"id\":\"e2\",\"state\":\"sent\",\"created\":1,"
		"\"updated\":1,\"due\":1,\"attempts\":2,\"recipients\":[{\"ref\":\"proxy:1\","
		"\"mode\":\"encrypted\",\"state\":\"bounced\",\"code\":0,\"dsn_status\":\"5.1.1\","
		"\"bounced_at\":9,\"note\":\"n\",\"reason\":\"r\"}]}");
	/* an internal staff alert */
	assert_round_trip_delivery("{\"id\":\"alert:m1-a\",\"type\":\"staff_alert\","
		"\"patient\":\"p\",\"state\":\"queued\",\"created\":1,\"updated\":1,\"due\":7,"
		"\"attempts\":0,\"priority\":\"high\",\"confidential\":false,\"department\":\"d\","
		"\"thread\":\"aa\",\"recipients\":[{\"ref\":\"staff:0\",\"address\":\"s@x.test\","
		"\"mode\":\"notice\",\"state\":\"pending\"}],\"data\":{},\"urgent\":true,"
		"\"origin\":\"m1-a\",\"held\":true,\"count\":3}");
	/* members this build does not know stay, at both levels */
	assert_round_trip_delivery("{\"id\":\"e3\",\"state\":\"deferred\",\"created\":1,"
		"\"updated\":1,\"due\":1,\"attempts\":1,\"future\":{\"a\":1},"
		"\"recipients\":[{\"ref\":\"patient\",\"state\":\"deferred\",\"later\":true}]}");
}

static void
assert_load_fails(const char *text, int code, const char *expect)
{
	struct cp_error err = { 0, "" };
	struct delivery d;
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);

	assert_non_null(v);
	assert_int_equal(delivery_load(v, &d, &err), code);
	assert_int_equal(err.code, code);
	assert_string_equal(err.text, expect);
	assert_null(strstr(err.text, "CANARY"));
	assert_null(d.id);
	assert_int_equal(d.nrcpts, 0);
	json_decref(v);
	delivery_clear(&d);	/* harmless after a failed load */
}

static void
delivery_load_names_the_bad_field_never_its_value(void **state)
{
	assert_load_fails("[]", -EBADMSG, "delivery record: expected a JSON object");
	assert_load_fails("\"" CANARY "\"", -EBADMSG,
			  "delivery record: expected a JSON object");
	assert_load_fails("{\"state\":\"queued\"}", -EBADMSG,
			  "delivery record: field id: missing");
	assert_load_fails("{\"id\":\"e\",\"state\":\"" CANARY "\"}", -EBADMSG,
			  "delivery record: field state: unknown name");
	assert_load_fails("{\"id\":\"e\",\"state\":7}", -EBADMSG,
			  "delivery record: field state: expected a string");
	assert_load_fails("{\"id\":\"e\",\"due\":\"" CANARY "\"}", -EBADMSG,
			  "delivery record: field due: expected an integer");
	assert_load_fails("{\"id\":\"e\",\"patient\":[\"" CANARY "\"]}", -EBADMSG,
			  "delivery record: field patient: expected a string");
	assert_load_fails("{\"id\":\"e\",\"priority\":\"urgent\"}", -EBADMSG,
			  "delivery record: field priority: unknown name");
	assert_load_fails("{\"id\":\"e\",\"confidential\":\"yes\"}", -EBADMSG,
			  "delivery record: field confidential: expected true or false");
	assert_load_fails("{\"id\":\"e\",\"recipients\":{}}", -EBADMSG,
			  "delivery record: field recipients: expected an array");
	assert_load_fails("{\"id\":\"e\",\"recipients\":[{\"ref\":\"patient\"},3]}", -EBADMSG,
			  "delivery record: field recipients: expected objects");
	assert_load_fails("{\"id\":\"e\",\"recipients\":[{\"mode\":\"" CANARY "\"}]}",
			  -EBADMSG, "delivery record: field recipients.mode: unknown name");
	assert_load_fails("{\"id\":\"e\",\"recipients\":[{\"code\":\"250\"}]}", -EBADMSG,
			  "delivery record: field recipients.code: expected an integer");
	assert_load_fails("{\"id\":\"e\",\"version\":0}", -EBADMSG,
			  "delivery record: field version: expected a positive integer");
	assert_load_fails("{\"id\":\"e\",\"version\":2}", -EPROTO,
			  "delivery record: layout version 2 is newer than this "
			  "carepost reads (1)");
}

static void
delivery_load_reads_layout_one_with_or_without_version(void **state)
{
	struct cp_error err = { 0, "" };
	struct delivery d;
	json_t *v = json_pack("{s:s, s:i}", "id", "e", "version", 1);

	assert_int_equal(delivery_load(v, &d, &err), 0);
	assert_string_equal(d.id, "e");
	assert_int_equal(d.state, DELIVERY_QUEUED);
	assert_int_equal(d.confidential, REC_UNSET);
	assert_int_equal(d.priority, PRIORITY_UNSET);
	delivery_clear(&d);
	json_decref(v);
}

static void
constructors_make_the_documented_records(void **state)
{
	struct delivery d;
	json_t *v;
	char *text;

	assert_int_equal(delivery_failed_event(&d, "ev", "unknown", NULL,
					       "invalid event: bad id", 100), 0);
	v = delivery_dump(&d);
	text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"attempts\":0,\"created\":100,\"due\":100,\"id\":\"ev\","
		"\"reason\":\"invalid event: bad id\",\"recipients\":[],\"scrubbed\":true,"
		"\"state\":\"failed\",\"type\":\"unknown\",\"updated\":100}");
	free(text);
	json_decref(v);
	delivery_clear(&d);

	assert_int_equal(delivery_internal(&d, "ack:m1", "reply_ack", "p1", "cardiology",
					   "0123456789abcdef0123", 0, "m1", 100, 160,
					   NULL), 0);
	assert_non_null(delivery_add_rcpt(&d, "patient", RCPT_NOTICE, NULL));
	v = delivery_dump(&d);
	text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"attempts\":0,\"confidential\":false,\"created\":100,"
		"\"data\":{},\"department\":\"cardiology\",\"due\":160,\"id\":\"ack:m1\","
		"\"origin\":\"m1\",\"patient\":\"p1\",\"priority\":\"high\",\"recipients\":"
		"[{\"mode\":\"notice\",\"ref\":\"patient\",\"state\":\"pending\"}],"
		"\"state\":\"queued\",\"thread\":\"0123456789abcdef0123\",\"type\":\"reply_ack\","
		"\"updated\":100,\"urgent\":false}");
	free(text);
	json_decref(v);
	delivery_clear(&d);
}

static void
state_names_parse_and_finality(void **state)
{
	enum delivery_state s;

	assert_int_equal(delivery_state_parse("sent", &s), 0);
	assert_int_equal(s, DELIVERY_SENT);
	assert_int_equal(delivery_state_parse("Sent", &s), -EINVAL);
	assert_int_equal(delivery_state_parse(NULL, &s), -EINVAL);
	assert_true(delivery_state_final(DELIVERY_SENT));
	assert_true(delivery_state_final(DELIVERY_FAILED));
	assert_true(delivery_state_final(DELIVERY_EXPIRED));
	assert_true(delivery_state_final(DELIVERY_SUPPRESSED));
	assert_false(delivery_state_final(DELIVERY_QUEUED));
	assert_false(delivery_state_final(DELIVERY_SENDING));
	assert_false(delivery_state_final(DELIVERY_DEFERRED));
	assert_string_equal(delivery_state_name(DELIVERY_DEFERRED), "deferred");
	assert_string_equal(rcpt_state_name(RCPT_DELAYED), "delayed");
}

/* dump_text - v's stored encoding (sorted keys, compact); takes v. */
static char *
dump_text(json_t *v)
{
	char *t;

	assert_non_null(v);
	t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(v);
	return t;
}

static void
thread_records_round_trip_and_refuse_bad_fields(void **state)
{
	static const char *good[] = {
		"{\"created\":1,\"department\":\"d\",\"event\":\"e\",\"expires\":2,"
		"\"patient\":\"p\",\"type\":\"test_result\"}",
		"{\"confidential\":true,\"created\":1,\"event\":\"e\",\"expires\":2,"
		"\"form_fields\":[{\"name\":\"a\",\"required\":true}],\"patient\":\"p\","
		"\"type\":\"form_request\"}",
		"{\"created\":1,\"delivery\":\"ack:m1\",\"event\":\"e\",\"expires\":2,"
		"\"later\":[1],\"patient\":\"p\",\"type\":\"reply_ack\"}",
	};
	struct cp_error err = { 0, "" };
	struct thread_record th;
	json_t *v;
	char *t;

	for (size_t i = 0; i < CP_ARRAY_SIZE(good); i++) {
		v = json_loads(good[i], 0, NULL);
		assert_int_equal(thread_load(v, &th, &err), 0);
		json_decref(v);
		t = dump_text(thread_dump(&th));
		assert_string_equal(t, good[i]);
		free(t);
		thread_clear(&th);
	}
	v = json_loads("{\"event\":\"e\",\"expires\":\"" CANARY "\"}", 0, NULL);
	assert_int_equal(thread_load(v, &th, &err), -EBADMSG);
	assert_string_equal(err.text, "thread record: field expires: expected an integer");
	json_decref(v);
	v = json_loads("{\"form_fields\":{}}", 0, NULL);
	assert_int_equal(thread_load(v, &th, &err), -EBADMSG);
	assert_string_equal(err.text, "thread record: field form_fields: expected an array");
	json_decref(v);
	v = json_loads("[1]", 0, NULL);
	assert_int_equal(thread_load(v, &th, &err), -EBADMSG);
	json_decref(v);
	thread_clear(&th);
}

static void
bounce_records_count_reports_and_refuse_bad_states(void **state)
{
	struct cp_error err = { 0, "" };
	struct bounce_status b;
	json_t *v;
	char *t;

	/* a new address: one soft report, then a hard one, then soft again */
	memset(&b, 0, sizeof(b));
	assert_int_equal(bounce_note(&b, 0, 10, "e1", "4.2.2"), 0);
	t = dump_text(bounce_dump(&b));
	assert_string_equal(t, "{\"event\":\"e1\",\"last\":10,\"soft_count\":1,"
			    "\"state\":\"soft\",\"status\":\"4.2.2\"}");
	free(t);
	assert_int_equal(bounce_note(&b, 1, 20, "e2", "5.1.1"), 0);
	assert_int_equal(bounce_note(&b, 0, 30, "e3", "4.0.0"), 0);
	t = dump_text(bounce_dump(&b));
	assert_string_equal(t, "{\"event\":\"e3\",\"last\":30,\"soft_count\":2,"
			    "\"state\":\"invalid\",\"status\":\"4.0.0\"}");
	v = json_loads(t, 0, NULL);
	free(t);
	bounce_clear(&b);
	/* what is stored loads back the same */
	assert_int_equal(bounce_load(v, &b, &err), 0);
	assert_int_equal(b.state, BOUNCE_INVALID);
	assert_int_equal(b.soft_count, 2);
	json_decref(v);
	bounce_clear(&b);

	v = json_loads("{\"state\":\"" CANARY "\"}", 0, NULL);
	assert_int_equal(bounce_load(v, &b, &err), -EBADMSG);
	assert_string_equal(err.text, "bounce record: field state: unknown name");
	json_decref(v);
	v = json_loads("{\"soft_count\":\"1\"}", 0, NULL);
	assert_int_equal(bounce_load(v, &b, &err), -EBADMSG);
	assert_string_equal(err.text, "bounce record: field soft_count: expected an integer");
	json_decref(v);
}

static void
acks_and_imap_records_load_and_dump(void **state)
{
	struct cp_error err = { 0, "" };
	struct alert_window w = { 0 };
	struct ack_mark a = { "ack:m1", 5 };
	struct imap_mark m;
	json_t *v;
	char *t;

	t = dump_text(ack_mark_dump(&a));
	assert_string_equal(t, "{\"at\":5,\"delivery\":\"ack:m1\"}");
	free(t);
	w.until = 9;
	t = dump_text(alert_window_dump(&w));
	assert_string_equal(t, "{\"until\":9}");
	free(t);
	strcpy(w.held, "alert:m2");
	t = dump_text(alert_window_dump(&w));
	assert_string_equal(t, "{\"held\":\"alert:m2\",\"until\":9}");
	v = json_loads(t, 0, NULL);
	free(t);
	memset(&w, 0, sizeof(w));
	assert_int_equal(alert_window_load(v, &w, &err), 0);
	assert_int_equal(w.until, 9);
	assert_string_equal(w.held, "alert:m2");
	json_decref(v);
	v = json_loads("{\"until\":\"soon\"}", 0, NULL);
	assert_int_equal(alert_window_load(v, &w, &err), -EBADMSG);
	assert_string_equal(err.text, "alert window record: field until: expected an integer");
	json_decref(v);

	v = json_loads("{\"uidvalidity\":7,\"last_uid\":42}", 0, NULL);
	assert_int_equal(imap_mark_load(v, &m, &err), 0);
	assert_int_equal(m.uidvalidity, 7);
	assert_int_equal(m.last_uid, 42);
	json_decref(v);
	t = dump_text(imap_mark_dump(&m));
	assert_string_equal(t, "{\"last_uid\":42,\"uidvalidity\":7}");
	free(t);
	/* out of range: from the first message */
	v = json_loads("{\"uidvalidity\":-1,\"last_uid\":4294967296}", 0, NULL);
	assert_int_equal(imap_mark_load(v, &m, &err), 0);
	assert_int_equal(m.uidvalidity, 0);
	assert_int_equal(m.last_uid, 0);
	json_decref(v);
	v = json_loads("{\"uidvalidity\":\"7\"}", 0, NULL);
	assert_int_equal(imap_mark_load(v, &m, &err), -EBADMSG);
	assert_string_equal(err.text, "imap record: field uidvalidity: expected an integer");
	json_decref(v);
	v = json_loads("7", JSON_DECODE_ANY, NULL);
	assert_int_equal(imap_mark_load(v, &m, &err), -EBADMSG);
	json_decref(v);
}

/* assert_round_trip - load text with load, dump, compare (stored encoding). */
#define assert_round_trip(text, type, load, dump, clear) do {		\
	struct cp_error err_ = { 0, "" };				\
	type x_;							\
	json_t *v_ = json_loads(text, 0, NULL);				\
	char *t_;							\
									\
	assert_non_null(v_);						\
	assert_int_equal(load(v_, &x_, &err_), 0);			\
	t_ = dump_text(dump(&x_));					\
	assert_string_equal(t_, text);					\
	free(t_);							\
	json_decref(v_);						\
	clear(&x_);							\
} while (0)

/* What carepostctl quarantine shows of a seen record: quarantines only,
 * and nothing but when, why, where and ids. */
static void
seen_quarantine_row_is_for_quarantines_only(void **state)
{
	struct seen_record sr = {
		.disposition = "quarantined", .folder = SEEN_QUARANTINE,
		.class = "reply", .reason = "sender not on file", .inbox_id = NULL,
		.event = "e1", .at = 9, .message_id = "m@x.test", .mailbox = "INBOX",
		.uidvalidity = 3, .uid = 4, .again = 1,
	};
	json_t *row = seen_quarantine_row(&sr);
	char *text;

	assert_non_null(row);
	text = json_dumps(row, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(text, "{\"at\":9,\"class\":\"reply\",\"event\":\"e1\","
			    "\"mailbox\":\"INBOX\",\"message_id\":\"m@x.test\","
			    "\"reason\":\"sender not on file\",\"uid\":4,\"uidvalidity\":3}");
	free(text);
	json_decref(row);
	sr.folder = SEEN_PROCESSED;
	assert_null(seen_quarantine_row(&sr));
}

static void
seen_inbox_and_clinic_records_round_trip(void **state)
{
	assert_round_trip("{\"at\":5,\"class\":\"reply\",\"disposition\":\"filed\","
		"\"event\":\"e\",\"folder\":\"processed\",\"inbox_id\":\"m1-a\","
		"\"patient\":\"p\",\"reason\":null}",
		struct seen_record, seen_load, seen_dump, seen_clear);
	assert_round_trip("{\"at\":5,\"class\":\"unknown\",\"disposition\":\"quarantined\","
		"\"folder\":\"quarantine\",\"reason\":\"no token\"}",
		struct seen_record, seen_load, seen_dump, seen_clear);
	/* where it was fetched, its Message-ID, fetched twice since */
	assert_round_trip("{\"again\":2,\"at\":5,\"class\":\"reply\","
		"\"disposition\":\"quarantined\",\"folder\":\"quarantine\","
		"\"mailbox\":\"INBOX\",\"message_id\":\"m3@x.test\",\"reason\":\"no token\","
		"\"uid\":12,\"uidvalidity\":1700000000}",
		struct seen_record, seen_load, seen_dump, seen_clear);
	/* format 2, and an old format 1 record; a dump never holds the blob */
	assert_round_trip("{\"auth\":\"pgp\",\"class\":\"form\",\"dek\":\"0123456789abcdef\","
		"\"department\":\"d\",\"event\":\"e\",\"event_type\":\"form_request\","
		"\"form_complete\":false,\"format\":2,\"id\":\"m1-a\",\"n_attachments\":1,"
		"\"patient\":\"p\",\"pgp\":\"encrypted+signed\",\"received\":7,"
		"\"sender_role\":\"proxy\",\"sizes\":{\"attachments\":3,\"raw\":100,\"text\":9},"
		"\"store_key\":\"ABCD\",\"thread\":\"00\",\"urgent\":true}",
		struct inbox_entry, inbox_load, inbox_dump, inbox_clear);
	assert_round_trip("{\"auth\":\"dmarc\",\"class\":\"reply\",\"department\":\"d\","
		"\"event\":\"e\",\"id\":\"m1-a\",\"patient\":\"p\",\"received\":7,"
		"\"sender_role\":\"patient\",\"thread\":\"00\",\"urgent\":false}",
		struct inbox_entry, inbox_load, inbox_dump, inbox_clear);
	assert_round_trip("{\"class\":\"reply\",\"event\":\"e\",\"inbox_id\":\"m1-a\","
		"\"patient\":\"p\",\"received\":7,\"sender_role\":\"patient\","
		"\"state\":\"done-by-portal\",\"thread\":\"00\",\"urgent\":false,"
		"\"worked_by\":\"nurse-1\"}",
		struct clinic_entry, clinic_load, clinic_dump, clinic_clear);
}

static void
inbound_records_written_wrongly_are_refused_by_field(void **state)
{
	static const struct {
		const char *text, *why;
		int which;	/* 0 seen, 1 inbox, 2 clinic */
	} bad[] = {
		{ "{\"folder\":\"" CANARY "\"}", "seen record: field folder: unknown name", 0 },
		{ "{\"at\":\"now\"}", "seen record: field at: expected an integer", 0 },
		{ "[]", "seen record: expected a JSON object", 0 },
		{ "{\"class\":\"" CANARY "\"}", "inbox record: field class: unknown name", 1 },
		{ "{\"blob\":7}", "inbox record: field blob: expected a string", 1 },
		{ "{\"sizes\":[1]}", "inbox record: field sizes: expected an object", 1 },
		{ "{\"sizes\":{\"raw\":\"1\"}}", "inbox record: field sizes.raw: expected an integer", 1 },
		{ "{\"format\":\"2\"}", "inbox record: field format: expected an integer", 1 },
		{ "{\"urgent\":\"yes\"}", "clinic record: field urgent: expected true or false", 2 },
		{ "{\"patient\":{\"n\":\"" CANARY "\"}}", "clinic record: field patient: expected a string", 2 },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(bad); i++) {
		struct cp_error err = { 0, "" };
		json_t *v = json_loads(bad[i].text, JSON_DECODE_ANY, NULL);
		int r;

		assert_non_null(v);
		if (bad[i].which == 0) {
			struct seen_record x;

			r = seen_load(v, &x, &err);
		} else if (bad[i].which == 1) {
			struct inbox_entry x;

			r = inbox_load(v, &x, &err);
		} else {
			struct clinic_entry x;

			r = clinic_load(v, &x, &err);
		}
		assert_int_equal(r, -EBADMSG);
		assert_string_equal(err.text, bad[i].why);
		assert_null(strstr(err.text, "CANARY"));
		json_decref(v);
	}
}

static void
inbox_content_encodes_as_before_and_loads_back(void **state)
{
	struct cp_error err = { 0, "" };
	struct inbox_attachment att = { "a.txt", "text/plain", 3, "abc", NULL };
	json_t *values = json_pack("{s:s}", "dose", "5 mg"), *missing = json_array();
	struct inbox_content c = {
		.subject = "Re: hello", .from = "p@x.test", .from_name = "",
		.date = 9, .message_id = NULL, .text = "fine", .body = "fine\n> quoted",
		.form_values = values, .form_missing = missing, .has_form = 1,
		.atts = &att, .natts = 1,
	}, back;
	json_t *v, *pub;
	char *text, *t;
	size_t len;

	assert_int_equal(inbox_content_encode(&c, "UkFX", 4, &text, &len), 0);
	assert_string_equal(text, "{\"attachments\":[{\"content_type\":\"text/plain\","
		"\"data\":\"YWJj\",\"filename\":\"a.txt\",\"size\":3}],\"body\":"
		"\"fine\\n> quoted\",\"date\":9,\"form\":{\"missing\":[],\"values\":"
		"{\"dose\":\"5 mg\"}},\"from\":\"p@x.test\",\"from_name\":null,"
		"\"message_id\":null,\"subject\":\"Re: hello\",\"text\":\"fine\","
		"\"raw\":\"UkFX\"}");
	assert_int_equal(len, strlen(text));
	v = json_loadb(text, len, 0, NULL);
	free(text);
	assert_int_equal(inbox_content_load(v, &back, &err), 0);
	assert_string_equal(back.subject, "Re: hello");
	assert_null(back.from_name);
	assert_int_equal(back.natts, 1);
	assert_string_equal(back.atts[0].data_b64, "YWJj");
	assert_true(back.has_form);
	inbox_content_clear(&back);
	pub = inbox_content_public(v);
	t = dump_text(pub);
	assert_null(strstr(t, "raw"));
	assert_null(strstr(t, "YWJj"));
	free(t);
	json_decref(v);
	v = json_loads("[\"" CANARY "\"]", 0, NULL);
	assert_int_equal(inbox_content_load(v, &back, &err), -EBADMSG);
	assert_string_equal(err.text, "inbox content: expected a JSON object");
	json_decref(v);
	json_decref(values);
	json_decref(missing);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(delivery_records_of_every_shape_round_trip),
		cmocka_unit_test(delivery_load_names_the_bad_field_never_its_value),
		cmocka_unit_test(delivery_load_reads_layout_one_with_or_without_version),
		cmocka_unit_test(constructors_make_the_documented_records),
		cmocka_unit_test(state_names_parse_and_finality),
		cmocka_unit_test(thread_records_round_trip_and_refuse_bad_fields),
		cmocka_unit_test(bounce_records_count_reports_and_refuse_bad_states),
		cmocka_unit_test(acks_and_imap_records_load_and_dump),
		cmocka_unit_test(seen_inbox_and_clinic_records_round_trip),
		cmocka_unit_test(seen_quarantine_row_is_for_quarantines_only),
		cmocka_unit_test(inbound_records_written_wrongly_are_refused_by_field),
		cmocka_unit_test(inbox_content_encodes_as_before_and_loads_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
