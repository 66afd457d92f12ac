/*
 * NAME
 *	test_filing - unit tests for lib/filing.c: a decided message written
 *	into the store, its reply content sealed at rest
 * DESCRIPTION
 *	The group setup makes a throwaway GnuPG home with a store key
 *	(atrestfix.h); each test gets a fresh store holding patient "p1",
 *	a config with one staffed department, and a thread record of event
 *	"ev1" in memory. Messages are parsed in this process (msgfix.h);
 *	what decided them (ids, the sender, how they were authenticated) is
 *	given as struct filing_reply fields, as inbound hands them over.
 *	What was filed is read back through the store and opened with a
 *	reader's struct atrest, as carepostctl read does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "atrestfix.h"
#include "filing.h"
#include "inbox.h"
#include "msgfix.h"
#include "queue.h"
#include "record.h"
#include "store.h"
#include "storefix.h"
#include "util.h"

#define NOW 1795626000LL	/* 2026-11-25 17:00 UTC */
#define DAY 86400LL
#define CANARY "PHI-CANARY-filing"
#define SEEN_KEY "5eed000000000000000000000000000000000000000000000000000000000001"
#define INBOX_ID "m1795626000-5eed0000"
#define THREAD_HEX "00112233445566778899"

static struct tu_atrest at;

struct fixture {
	struct cp_config *cfg;
	struct thread_record thread;
	struct inmsg *m;
	char *raw;
	struct filing_reply reply;	/* a patient's reply to ev1, by From */
	struct seen_record seen;	/* "filed" */
	struct buf blob;
	char dek[ATREST_DEK_ID_SIZE];
	struct filing_result out;
};

static struct fixture fx;

static int
group_setup(void **state)
{
	return tu_atrest_group_setup(&at, "cpfi");
}

static int
group_teardown(void **state)
{
	tu_atrest_group_teardown(&at, "cpfi");
	return 0;
}

/*
 * use_message - raw (a message with extra header lines, then body) as
 * the reply's message, parsed; fx.reply's other fields as before.
 */
static void
use_message(const char *extra, const char *body)
{
	inmsg_free(fx.m);
	free(fx.raw);
	assert_true(asprintf(&fx.raw, "From: Pat " CANARY " <pat@patients.test>\r\n"
			     "To: reply+x@reply.clinic.example\r\n"
			     "Subject: Re: results " CANARY "\r\n"
			     "Message-ID: <r1@patients.test>\r\n"
			     "Date: Wed, 25 Nov 2026 17:00:00 +0000\r\n%s"
			     "Content-Type: text/plain; charset=utf-8\r\n\r\n%s",
			     extra, body) > 0);
	fx.m = tu_parse_str(fx.raw);
	fx.reply.raw = fx.raw;
	fx.reply.len = strlen(fx.raw);
	fx.reply.m = fx.m;
}

static int
setup(void **state)
{
	if (tu_atrest_setup(&at) < 0)
		return -1;
	fx.cfg = tu_config(TU_CONF_PORTAL "[store]\npath = %s\n[routing]\n"
			   "default_department = general\nalert_window = 0\n"
			   "staff.general = desk@clinic.test\n", at.store_path);
	tu_store_put(at.store, DB_PATIENTS, "p1", json_pack("{s:s, s:s, s:[{s:s, s:s}]}",
		"id", "p1", "email", "pat@patients.test", "proxies",
		"email", "prox@proxies.test", "relation", "parent"));
	fx.thread = (struct thread_record) {
		.event = "ev1", .patient = "p1", .type = "test_result",
		.created = (time_t)NOW, .expires = (time_t)(NOW + 30 * DAY),
		.confidential = REC_UNSET,
	};
	fx.reply = (struct filing_reply) {
		.cfg = fx.cfg, .thread = &fx.thread, .inbox_id = INBOX_ID,
		.patient = "p1", .thread_hex = THREAD_HEX, .event = "ev1",
		.department = "general", .sender_role = "patient",
		.sender_ref = "patient", .from_ref = "patient", .auth = "from",
		.text = "the reply " CANARY, .store_fpr = at.fpr,
	};
	fx.seen = (struct seen_record) {
		.disposition = "filed", .folder = SEEN_PROCESSED, .class = "reply",
		.reason = "filed", .inbox_id = INBOX_ID, .patient = "p1",
		.event = "ev1", .at = (time_t)NOW,
	};
	fx.blob = (struct buf)BUF_INIT;
	use_message("", "the reply " CANARY "\r\n\r\n> quoted\r\n");
	return 0;
}

static int
teardown(void **state)
{
	inmsg_free(fx.m);
	fx.m = NULL;
	free(fx.raw);
	fx.raw = NULL;
	buf_free(&fx.blob);
	config_free(fx.cfg);
	fx.cfg = NULL;
	tu_atrest_teardown(&at);
	return 0;
}

static int
call_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	return filing_txn(s, txn, ud, &fx.out, err);
}

/* commit_filing - filing_txn of f in a transaction of its own; its code. */
static int
commit_filing(const struct filing *f)
{
	struct cp_error err;
	int r;

	cp_error_clear(&err);
	memset(&fx.out, 0xff, sizeof(fx.out));	/* set afresh by the call */
	r = store_write(at.store, call_txn, (void *)f, &err);
	if (r < 0 && r != -EALREADY && r != -EINVAL)
		print_message("filing_txn: %s\n", err.text);
	return r;
}

/* seal - fx.reply sealed (filing_seal) into fx.blob, and handed to it. */
static void
seal(void)
{
	struct cp_error err;

	cp_error_clear(&err);
	buf_reset(&fx.blob);
	if (filing_seal(at.writer, &fx.reply, NOW, &fx.blob, fx.dek, &err) < 0)
		fail_msg("filing_seal: %s", err.text);
	fx.reply.blob = fx.blob.data;
	fx.reply.blob_len = fx.blob.len;
	fx.reply.dek = fx.dek;
}

/* file_reply - fx.reply sealed and filed under seen_key; filing_txn's code. */
static int
file_reply(const char *seen_key)
{
	struct filing f = {
		.seen_key = seen_key, .seen = &fx.seen, .now = NOW,
		.kind = FILING_REPLY, .reply = &fx.reply,
	};

	seal();
	return commit_filing(&f);
}

/* record_of - the inbox record of fx.reply (a new reference). */
static json_t *
record_of(void)
{
	json_t *rec = NULL;

	assert_int_equal(inbox_get(at.store, "p1", fx.reply.inbox_id, &rec, NULL), 0);
	return rec;
}

/* opened - the sealed content of fx.reply's record (a new reference). */
static json_t *
opened(void)
{
	json_t *rec = record_of(), *content = NULL;
	struct cp_error err;

	cp_error_clear(&err);
	if (inbox_open(at.pgp, at.reader, rec, &content, &err) < 0)
		fail_msg("inbox_open: %s", err.text);
	json_decref(rec);
	return content;
}

static size_t
count(enum store_db db)
{
	size_t n = 0;

	assert_int_equal(store_count(at.store, db, &n, NULL), 0);
	return n;
}

static const char *
str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* audit_nth - audit record seq (a new reference). */
static json_t *
audit_nth(unsigned seq)
{
	char key[24];
	json_t *v = NULL;

	snprintf(key, sizeof(key), "%020u", seq);
	assert_int_equal(store_get_json(at.store, DB_AUDIT, key, &v, NULL), 0);
	return v;
}

/* ---- replies ---- */

static void
a_reply_is_sealed_into_the_inbox_and_queued_for_its_department(void **state)
{
	struct seen_record sr;
	struct delivery d;
	json_t *rec, *content, *queue;

	assert_int_equal(file_reply(SEEN_KEY), 0);
	assert_int_equal(fx.out.no_autoresponse, 0);
	assert_int_equal(fx.out.followup.alerted, 1);
	assert_int_equal(fx.out.followup.acked, 1);
	assert_int_equal(fx.out.followup.form_incomplete, 0);

	rec = record_of();
	assert_string_equal(str(rec, "thread"), THREAD_HEX);
	assert_string_equal(str(rec, "event_type"), "test_result");
	assert_string_equal(str(rec, "auth"), "from");
	assert_null(json_object_get(rec, "pgp"));
	assert_int_equal(json_integer_value(json_object_get(rec, "format")), INBOX_FORMAT);
	json_decref(rec);
	content = opened();
	assert_string_equal(str(content, "text"), "the reply " CANARY);
	assert_string_equal(str(content, "subject"), "Re: results " CANARY);
	assert_string_equal(str(content, "message_id"), "r1@patients.test");
	json_decref(content);

	assert_int_equal(inbox_clinic_queue(at.store, "general", &queue, NULL), 0);
	assert_int_equal(json_array_size(queue), 1);
	assert_string_equal(str(json_array_get(queue, 0), "inbox_id"), INBOX_ID);
	assert_string_equal(str(json_array_get(queue, 0), "state"), "new");
	json_decref(queue);
	assert_int_equal(seen_get(at.store, SEEN_KEY, &sr, NULL), 0);
	assert_string_equal(sr.disposition, "filed");
	assert_string_equal(sr.inbox_id, INBOX_ID);
	seen_clear(&sr);
	assert_int_equal(queue_get(at.store, "ack:" INBOX_ID, &d, NULL), 0);
	delivery_clear(&d);
	/* one audit record, in the filing's transaction */
	assert_int_equal(count(DB_AUDIT), 1);
	rec = audit_nth(1);
	assert_string_equal(str(rec, "action"), "filed");
	assert_string_equal(str(rec, "actor"), "daemon");
	assert_string_equal(str(rec, "patient"), "p1");
	assert_string_equal(str(rec, "inbox"), INBOX_ID);
	json_decref(rec);
	/* the content at rest, never in clear */
	assert_false(tu_store_holds(at.store_path, CANARY));
}

static void
a_message_seen_meanwhile_is_not_filed_twice(void **state)
{
	assert_int_equal(file_reply(SEEN_KEY), 0);
	fx.reply.inbox_id = "m1795626060-5eed0000";
	assert_int_equal(file_reply(SEEN_KEY), -EALREADY);
	assert_int_equal(fx.out.followup.acked, 0);
	assert_int_equal(count(DB_INBOX), 1);
	assert_int_equal(count(DB_CLINIC), 1);
	assert_int_equal(count(DB_SEEN), 1);
	assert_int_equal(count(DB_AUDIT), 1);
}

static void
a_sealed_blob_opens_only_in_the_record_it_was_sealed_for(void **state)
{
	struct filing f = {
		.seen_key = SEEN_KEY, .seen = &fx.seen, .now = NOW,
		.kind = FILING_REPLY, .reply = &fx.reply,
	};
	json_t *rec, *content = NULL;

	seal();
	fx.reply.inbox_id = "m1795626000-0ther000";	/* filed elsewhere */
	assert_int_equal(commit_filing(&f), 0);
	rec = record_of();
	assert_int_equal(inbox_open(at.pgp, at.reader, rec, &content, NULL), -EBADMSG);
	assert_null(content);
	json_decref(rec);
}

/*
 * The header goes with the text where the From proved the sender, or
 * where DMARC vouches for the From of the one who signed; a protected
 * Subject always does. A signature alone does not cover the header.
 */
static void
the_header_goes_with_the_text_only_where_it_is_vouched_for(void **state)
{
	static const struct {
		int matched, headers_authenticated;
		const char *from_ref;
		int protected_subject;
		const char *subject;		/* NULL: none filed */
		int from_name;
	} cases[] = {
		{ 0, 0, "patient", 0, "Re: results " CANARY, 1 },
		{ 1, 0, "patient", 0, NULL, 0 },
		{ 1, 1, "patient", 0, "Re: results " CANARY, 1 },
		{ 1, 1, "proxy:0", 0, NULL, 0 },	/* DMARC for someone else's From */
		{ 1, 1, "", 0, NULL, 0 },
		{ 1, 0, "patient", 1, "Protected " CANARY, 0 },
		{ 0, 0, "patient", 1, "Protected " CANARY, 1 },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		json_t *content;
		char id[32], seen_key[65];

		snprintf(id, sizeof(id), "m1795626000-5eed%04zu", i);
		snprintf(seen_key, sizeof(seen_key), "%.60s%04zu", SEEN_KEY, i);
		fx.reply.inbox_id = id;
		fx.reply.signer_matched = cases[i].matched;
		fx.reply.auth = cases[i].matched ? "pgp" : "from";
		fx.reply.headers_authenticated = cases[i].headers_authenticated;
		fx.reply.from_ref = cases[i].from_ref;
		free(fx.m->prot.subject);
		fx.m->prot.subject = NULL;
		fx.m->prot.present = cases[i].protected_subject;
		if (cases[i].protected_subject)
			fx.m->prot.subject = strdup("Protected " CANARY);
		assert_int_equal(file_reply(seen_key), 0);
		content = opened();
		if (cases[i].subject)
			assert_string_equal(str(content, "subject"), cases[i].subject);
		else if (str(content, "subject") != NULL)
			fail_msg("case %zu: a subject filed", i);
		if ((str(content, "from_name") != NULL) != cases[i].from_name)
			fail_msg("case %zu: from_name %s", i, str(content, "from_name"));
		assert_string_equal(str(content, "from"), "pat@patients.test");
		json_decref(content);
	}
}

static void
the_record_says_signed_only_for_a_matched_signer(void **state)
{
	static const struct {
		int decrypted, matched;
		const char *pgp;
	} cases[] = {
		{ 0, 0, NULL }, { 0, 1, "signed" }, { 1, 0, "encrypted" },
		{ 1, 1, "encrypted+signed" },
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		char id[32], seen_key[65];
		json_t *rec;

		snprintf(id, sizeof(id), "m1795626000-5eed%04zu", i);
		snprintf(seen_key, sizeof(seen_key), "%.60s%04zu", SEEN_KEY, i);
		fx.reply.inbox_id = id;
		fx.reply.decrypted = cases[i].decrypted;
		fx.reply.signer_matched = cases[i].matched;
		assert_int_equal(file_reply(seen_key), 0);
		rec = record_of();
		if (cases[i].pgp)
			assert_string_equal(str(rec, "pgp"), cases[i].pgp);
		else
			assert_null(json_object_get(rec, "pgp"));
		json_decref(rec);
	}
}

static void
a_form_reply_says_what_it_misses_and_asks_for_it(void **state)
{
	json_t *values = json_pack("{s:s}", "weight", "70");
	json_t *missing = json_pack("[s]", "height");
	json_t *rec, *content;

	fx.reply.form = 1;
	fx.reply.form_values = values;
	fx.reply.form_missing = missing;
	assert_int_equal(file_reply(SEEN_KEY), 0);
	assert_int_equal(fx.out.followup.form_incomplete, 1);
	assert_int_equal(fx.out.followup.acked, 0);
	rec = record_of();
	assert_string_equal(str(rec, "class"), "form");
	assert_true(json_is_false(json_object_get(rec, "form_complete")));
	json_decref(rec);
	content = opened();
	assert_true(json_equal(json_object_get(json_object_get(content, "form"), "missing"),
			       missing));
	assert_true(json_equal(json_object_get(json_object_get(content, "form"), "values"),
			       values));
	json_decref(content);
	json_decref(values);
	json_decref(missing);
}

static void
list_mail_is_filed_and_alerted_but_never_answered(void **state)
{
	use_message("List-Id: <patients.lists.test>\r\n", "hello\r\n");
	assert_int_equal(file_reply(SEEN_KEY), 0);
	assert_int_equal(fx.out.no_autoresponse, 1);
	assert_int_equal(fx.out.followup.alerted, 1);
	assert_int_equal(fx.out.followup.acked, 0);
	assert_int_equal(count(DB_INBOX), 1);
}

static void
hostile_content_is_sealed_whole_and_nothing_of_it_is_in_clear(void **state)
{
	json_t *content, *atts;

	/* an attachment with NUL bytes and a name hiding its extension */
	inmsg_free(fx.m);
	free(fx.raw);
	assert_true(asprintf(&fx.raw, "From: \"=?utf-8?q?" CANARY "?=\" "
			     "<pat@patients.test>\r\n"
			     "Subject: " CANARY "\r\nMIME-Version: 1.0\r\n"
			     "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			     "--b\r\nContent-Type: text/plain\r\n\r\n" CANARY " body\r\n"
			     "--b\r\nContent-Type: application/octet-stream; "
			     "name=\"" CANARY "\xe2\x80\xae" "fdp.exe\"\r\n"
			     "Content-Transfer-Encoding: base64\r\n\r\n"
			     "UEhJLUNBTkFSWS1maWxpbmcAAAD/\r\n--b--\r\n") > 0);
	fx.m = tu_parse_str(fx.raw);
	fx.reply.raw = fx.raw;
	fx.reply.len = strlen(fx.raw);
	fx.reply.m = fx.m;
	assert_int_equal(fx.m->n_attachments, 1);
	assert_int_equal(file_reply(SEEN_KEY), 0);
	assert_false(tu_store_holds(at.store_path, CANARY));
	content = opened();
	atts = json_object_get(content, "attachments");
	assert_int_equal(json_array_size(atts), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(atts, 0),
							     "size")), 21);
	assert_non_null(strstr(str(content, "body"), CANARY " body"));
	json_decref(content);
}

/* ---- other kinds ---- */

static void
a_report_and_an_opt_out_are_recorded_others_leave_a_seen_record(void **state)
{
	struct bouncemap bm = {
		.delivery_id = "ev1", .rcpt_index = 0, .event = "ev1", .patient = "p1",
		.address = "pat@patients.test", .dsn_status = "5.1.1", .failed = 1,
		.hard = 1,
	};
	struct filing f = { .seen = &fx.seen, .now = NOW };
	struct delivery d;
	json_t *p, *optout;

	tu_store_put(at.store, DB_DELIVERY, "ev1",
		json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}]}", "id", "ev1",
			  "type", "test_result", "patient", "p1", "state", "sent",
			  "recipients", "ref", "patient", "mode", "notice",
			  "state", "sent"));
	fx.seen.disposition = "bounce_recorded";
	f.seen_key = "bounce";
	f.kind = FILING_BOUNCE;
	f.bounce = &bm;
	assert_int_equal(commit_filing(&f), 0);
	assert_int_equal(queue_get(at.store, "ev1", &d, NULL), 0);
	assert_int_equal(d.rcpts[0].state, RCPT_BOUNCED);
	assert_string_equal(d.rcpts[0].dsn_status, "5.1.1");
	delivery_clear(&d);
	assert_int_equal(count(DB_AUDIT), 0);	/* no disclosure, no access */

	fx.seen.disposition = "unsubscribed";
	f.seen_key = "optout";
	f.kind = FILING_OPT_OUT;
	f.patient = "p1";
	f.sender_ref = "proxy:0";
	f.category = "reminder";
	assert_int_equal(commit_filing(&f), 0);
	assert_int_equal(store_get_json(at.store, DB_PATIENTS, "p1", &p, NULL), 0);
	optout = json_object_get(json_array_get(json_object_get(p, "proxies"), 0),
				 "optout");
	assert_string_equal(json_string_value(json_array_get(optout, 0)), "reminder");
	assert_null(json_object_get(p, "optout"));
	json_decref(p);
	assert_int_equal(count(DB_AUDIT), 1);
	p = audit_nth(1);
	assert_string_equal(str(p, "action"), "opted_out");
	assert_string_equal(str(p, "recipient_ref"), "proxy:0");
	json_decref(p);

	fx.seen.disposition = "quarantined";
	fx.seen.folder = SEEN_QUARANTINE;
	f.seen_key = "quarantined";
	f.kind = FILING_SEEN_ONLY;
	f.actor = "ctl:alice";			/* carepostctl ingest's */
	assert_int_equal(commit_filing(&f), 0);
	assert_int_equal(count(DB_AUDIT), 2);
	p = audit_nth(2);
	assert_string_equal(str(p, "action"), "quarantined");
	assert_string_equal(str(p, "actor"), "ctl:alice");
	assert_null(json_object_get(p, "inbox"));
	json_decref(p);
	fx.seen.disposition = "autoreply_discarded";
	fx.seen.folder = SEEN_PROCESSED;
	f.seen_key = "discarded";
	assert_int_equal(commit_filing(&f), 0);
	assert_int_equal(count(DB_AUDIT), 2);
	assert_int_equal(count(DB_SEEN), 4);
	assert_int_equal(count(DB_INBOX), 0);
	assert_int_equal(count(DB_CLINIC), 0);
}

static void
a_filing_without_what_its_kind_needs_writes_nothing(void **state)
{
	struct filing f = { .seen_key = SEEN_KEY, .seen = &fx.seen, .now = NOW };

	f.kind = FILING_REPLY;
	assert_int_equal(commit_filing(&f), -EINVAL);
	f.kind = FILING_BOUNCE;
	assert_int_equal(commit_filing(&f), -EINVAL);
	f.kind = FILING_OPT_OUT;
	f.patient = "p1";
	assert_int_equal(commit_filing(&f), -EINVAL);
	f.kind = FILING_SEEN_ONLY;
	f.seen = NULL;
	assert_int_equal(commit_filing(&f), -EINVAL);
	f.seen = &fx.seen;
	f.seen_key = NULL;
	assert_int_equal(commit_filing(&f), -EINVAL);
	assert_int_equal(count(DB_SEEN), 0);
	assert_int_equal(count(DB_AUDIT), 0);
}

static void
without_a_store_key_nothing_is_sealed(void **state)
{
	struct cp_error err;

	cp_error_clear(&err);
	assert_true(filing_seal(at.reader, &fx.reply, NOW, &fx.blob, fx.dek, &err) < 0);
	assert_true(err.text[0] != '\0');
	assert_null(strstr(err.text, CANARY));
	assert_int_equal(fx.blob.len, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_reply_is_sealed_into_the_inbox_and_queued_for_its_department, setup, teardown),
		cmocka_unit_test_setup_teardown(a_message_seen_meanwhile_is_not_filed_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(a_sealed_blob_opens_only_in_the_record_it_was_sealed_for, setup, teardown),
		cmocka_unit_test_setup_teardown(the_header_goes_with_the_text_only_where_it_is_vouched_for, setup, teardown),
		cmocka_unit_test_setup_teardown(the_record_says_signed_only_for_a_matched_signer, setup, teardown),
		cmocka_unit_test_setup_teardown(a_form_reply_says_what_it_misses_and_asks_for_it, setup, teardown),
		cmocka_unit_test_setup_teardown(list_mail_is_filed_and_alerted_but_never_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_content_is_sealed_whole_and_nothing_of_it_is_in_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(a_report_and_an_opt_out_are_recorded_others_leave_a_seen_record, setup, teardown),
		cmocka_unit_test_setup_teardown(a_filing_without_what_its_kind_needs_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(without_a_store_key_nothing_is_sealed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
