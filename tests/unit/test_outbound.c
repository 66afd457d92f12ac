/*
 * NAME
 *	test_outbound - unit tests for the outbound pipeline (lib/outbound.c)
 * DESCRIPTION
 *	Each test runs send rounds (outbound_run) against real parts: an
 *	LMDB store of its own, written as the portal writes it (patients,
 *	then events; docs/store.md), the shipped templates, a clinic key and
 *	a patient key in real GnuPG homes, and a Postfix smtp-sink on
 *	loopback (or a port nobody listens on). What it checks is what users
 *	rely on: every due event is sent once, to its recipient, with the
 *	headers outbound.h promises (Message-ID as outbound_message_id
 *	makes it and as the delivery record keeps it, a reply token naming
 *	the event's thread, a VERP envelope sender); a recipient with a key
 *	gets a message only the patient's key opens, signed by the clinic;
 *	anyone else gets a notice without any of the event's data (each
 *	value carries a PHI canary); a dead relay defers without losing the
 *	event, which goes out with the same Message-ID once the relay is
 *	back, and fails at max_age; a 5xx fails the recipient with its code;
 *	expired and opted-out events (not security notices) are not sent;
 *	quiet hours wait unless the event is high priority; a stop asked for
 *	takes no batch; after a crash mid-batch, what the sending journal
 *	says the relay accepted is recorded as sent (with its Message-ID)
 *	and only the rest goes out again.
 *
 *	Tests skip (with the reason) when smtp-sink is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <strings.h>

#include "audit.h"
#include "fsfix.h"
#include "gpgfix.h"
#include "log.h"
#include "intake.h"
#include "outbound.h"
#include "unsub.h"
#include "pgp.h"
#include "queue.h"
#include "sinkfix.h"
#include "storefix.h"
#include "token.h"

#define NOW	((int64_t)1796644800)	/* 2026-12-07 12:00 UTC: not quiet */
#define CANARY	"PHI-CANARY"

static const char key[] = "outbound-test-token-key-0123456789";

struct fixture {
	struct tu_gpg_pair g;
	char templates[512];
	struct tmplset *ts;
	int n;				/* stores made so far */
	/* per test */
	char store_path[96];
	struct store *store;
	struct cp_config *cfg;
	struct outbound *ob;
};

static struct fixture fx;

/* --- fixture ---------------------------------------------------------- */

static int
group_setup(void **state)
{
	struct cp_error err;

	if (tu_gpg_pair("cpo", "Clinic <care@clinic.test>",
			"Patient <keyed@patients.test>", &fx.g) < 0 ||
	    pgp_global_init() < 0)
		return -1;
	log_setup("test_outbound", LOG_TARGET_STDERR, LOG_EMERG);
	snprintf(fx.templates, sizeof(fx.templates), "%s/templates", tu_top());
	cp_error_clear(&err);
	if (tmplset_load(fx.templates, "en", &fx.ts, &err) < 0) {
		fprintf(stderr, "templates: %s\n", err.text);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	tmplset_free(fx.ts);
	tu_gpg_pair_remove("cpo", &fx.g);
	return 0;
}

static void
close_outbound(void)
{
	outbound_free(fx.ob);
	fx.ob = NULL;
	config_free(fx.cfg);
	fx.cfg = NULL;
}

/* open_outbound - an outbound that sends to server ("host:port"). */
static void
open_outbound(const char *server)
{
	struct cp_error err;

	close_outbound();
	fx.cfg = tu_config("[store]\npath = %s\n"
			   "[smtp]\nserver = %s\nhelo = carepost.test\n"
			   "starttls = off\ntimeout = 10s\n"
			   "[gpg]\nhome = %s\nclinic_key = %s\n"
			   "[templates]\ndir = %s\n"
			   TU_CONF_PORTAL
			   "[delivery]\nretry_base = 5m\nretry_max = 1h\n"
			   "max_age = 3d\ndefault_tz = UTC\n",
			   fx.store_path, server, fx.g.clinic_home, fx.g.clinic,
			   fx.templates);
	cp_error_clear(&err);
	if (outbound_new(fx.cfg, fx.store, fx.ts, key, sizeof(key) - 1, &fx.ob,
			 &err) < 0)
		fail_msg("outbound_new: %s", err.text);
}

/* open_to_sink - an outbound that sends to s. */
static void
open_to_sink(const struct sink *s)
{
	open_outbound(s->server);
}

/* open_to_nobody - an outbound whose relay is a port nobody listens on. */
static void
open_to_nobody(void)
{
	char server[32];

	snprintf(server, sizeof(server), "127.0.0.1:%d", tu_free_port());
	open_outbound(server);
}

static int
setup(void **state)
{
	struct cp_error err;

	cp_error_clear(&err);
	fx.store = tu_store_fresh(fx.g.dir, &fx.n, fx.store_path,
				  sizeof(fx.store_path), 64 << 20, &err);
	return fx.store ? 0 : -1;
}

static int
teardown(void **state)
{
	close_outbound();
	store_close(fx.store);
	fx.store = NULL;
	sink_cleanup(&current_sink);
	return 0;
}

/* --- the portal's side ------------------------------------------------- */

/* put_patient - patient id with email and optional more fields (JSON). */
static void
put_patient(const char *id, const char *email, const char *more)
{
	struct cp_error err;
	json_t *p, *extra;

	p = json_pack("{s:s, s:s, s:s}", "id", id, "email", email,
		      "name", "Ana Ruiz " CANARY "-name");
	if (more) {
		extra = json_loads(more, 0, NULL);
		assert_non_null(extra);
		assert_int_equal(json_object_update(p, extra), 0);
		json_decref(extra);
	}
	cp_error_clear(&err);
	assert_int_equal(store_put_json(fx.store, DB_PATIENTS, id, p, &err), 0);
	json_decref(p);
}

/* put_event - an event as the portal writes it; more is extra JSON. */
static void
put_event(const char *id, const char *type, const char *patient,
	  const char *more)
{
	struct cp_error err;
	json_t *e, *extra;
	char *text;

	e = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "id", id, "type", type,
		      "patient", patient, "data",
		      "test_name", "A1c " CANARY "-test_name",
		      "result_summary", "6.1% " CANARY "-result_summary",
		      "ordered_by", "Dr. Rivera " CANARY "-ordered_by");
	if (more) {
		extra = json_loads(more, 0, NULL);
		assert_non_null(extra);
		assert_int_equal(json_object_update(e, extra), 0);
		json_decref(extra);
	}
	text = json_dumps(e, JSON_COMPACT);
	cp_error_clear(&err);
	assert_int_equal(intake_put_event(fx.store, id, text, strlen(text), &err), 0);
	free(text);
	json_decref(e);
}

/* delivery - the delivery record of event id (the caller decrefs). */
static json_t *
delivery(const char *id)
{
	struct cp_error err;
	json_t *d = NULL;

	cp_error_clear(&err);
	if (store_get_json(fx.store, DB_DELIVERY, id, &d, &err) < 0)
		fail_msg("no delivery record for %s: %s", id, err.text);
	return d;
}

static const char *
str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t
num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static json_t *
rcpt(json_t *d, size_t i)
{
	return json_array_get(json_object_get(d, "recipients"), i);
}

/* assert_state - the delivery record of event id is in state. */
static void
assert_state(const char *id, const char *state)
{
	json_t *d = delivery(id);

	assert_string_equal(str(d, "state"), state);
	json_decref(d);
}

/* run - one outbound_run at now; stats zeroed first. */
static void
run(int64_t now, struct outbound_stats *st)
{
	struct cp_error err;

	memset(st, 0, sizeof(*st));
	cp_error_clear(&err);
	if (outbound_run(fx.ob, now, NULL, st, &err) < 0)
		fail_msg("outbound_run: %s", err.text);
}

/* --- what the relay received -------------------------------------------- */

/* header - the value of the first header name in the message (unfolded
 * only as far as its first line), into out. */
static void
header(const char *msg, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = msg, *eol;

	out[0] = '\0';
	while (p && *p && *p != '\n') {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			size_t o = 0;

			/* unfolded: continuation lines joined by their space */
			p += nl + 1;
			p += strspn(p, " ");
			for (;;) {
				eol = strchr(p, '\n');
				o += (size_t)snprintf(out + o, len - o, "%.*s",
					(int)(eol ? eol - p : (long)strlen(p)), p);
				if (eol == NULL || (eol[1] != ' ' && eol[1] != '\t') ||
				    o >= len - 1)
					break;
				p = eol + 2;
				if (o > 0 && o < len - 1)
					out[o++] = ' ', out[o] = '\0';
			}
			if (o > 0 && out[o - 1] == ' ')
				out[o - 1] = '\0';
			if (o > 0 && out[o - 1] == '\r')
				out[o - 1] = '\0';
			return;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

/* sink_count - how many messages the sink holds. */
static size_t
sink_count(struct sink *s)
{
	struct dump d[16];
	size_t n = sink_dumps(s, d, 16);

	dumps_free(d, n);
	return n;
}

static const struct dump *
dump_to(const struct dump *d, size_t n, const char *rcpt_to)
{
	char want[160];
	size_t i;

	snprintf(want, sizeof(want), "%s", rcpt_to);
	for (i = 0; i < n; i++)
		if (strstr(d[i].rcpt, want) != NULL)
			return &d[i];
	fail_msg("no message to %s", rcpt_to);
	return NULL;
}

/* thread_hex - the thread of event id, as the delivery record names it. */
static void
thread_hex(const char *id, char out[2 * TOKEN_THREAD_BYTES + 1])
{
	uint8_t t[TOKEN_THREAD_BYTES];

	token_thread_from_id(id, t);
	cp_hex(t, sizeof(t), out);
}

/*
 * assert_headers - what outbound.h promises of every message of event id
 * to recipient index 0 at address to.
 */
static void
assert_headers(const struct dump *m, const char *id, const char *to)
{
	char v[512], want[256], thread[2 * TOKEN_THREAD_BYTES + 1];
	char tok[TOKEN_SIZE];
	uint8_t t[TOKEN_THREAD_BYTES], want_t[TOKEN_THREAD_BYTES];
	int64_t expires;
	struct cp_error err;
	json_t *d = delivery(id);

	assert_non_null(m->content);
	thread_hex(id, thread);
	assert_string_equal(str(d, "thread"), thread);
	assert_int_equal(outbound_message_id(key, sizeof(key) - 1, thread, 0,
					     "clinic.test", want, sizeof(want)), 0);
	header(m->content, "Message-ID", v, sizeof(v));
	assert_string_equal(v, want);
	assert_string_equal(str(rcpt(d, 0), "message_id"), want);

	header(m->content, "To", v, sizeof(v));
	assert_non_null(strstr(v, to));
	assert_null(strstr(v, "Ana"));		/* no name: it would be PHI */
	header(m->content, "From", v, sizeof(v));
	assert_non_null(strstr(v, "care@clinic.test"));
	header(m->content, "Auto-Submitted", v, sizeof(v));
	assert_string_equal(v, "auto-generated");

	/* The reply token names this event's thread, under our key. */
	header(m->content, "Reply-To", v, sizeof(v));
	assert_int_equal(strncmp(v, "<reply+", 7), 0);
	assert_true(strlen(v) > 7 + TOKEN_SIZE - 1);
	memcpy(tok, v + 7, TOKEN_SIZE - 1);
	tok[TOKEN_SIZE - 1] = '\0';
	assert_string_equal(v + 7 + TOKEN_SIZE - 1, "@reply.clinic.test>");
	cp_error_clear(&err);
	assert_int_equal(token_verify(key, sizeof(key) - 1, tok, NOW, t, &expires, &err), 0);
	token_thread_from_id(id, want_t);
	assert_memory_equal(t, want_t, sizeof(t));

	/* VERP: bounce+TOKEN.r0.TAG@bounce_domain. */
	snprintf(want, sizeof(want), "bounce+%s.r0.", tok);
	assert_non_null(strstr(m->mail, want));
	assert_non_null(strstr(m->mail, "@bounce.clinic.test"));
	json_decref(d);
}

/* decrypt - the plaintext of an encrypted message, with the patient's key,
 * and gpg's status lines (caller frees out). */
static void
decrypt(const struct dump *m, struct buf *out)
{
	const char *armor = strstr(m->content, "-----BEGIN PGP MESSAGE-----");
	struct buf cmd = BUF_INIT;
	char path[128];

	assert_non_null(armor);
	snprintf(path, sizeof(path), "%s/m.asc", fx.g.dir);
	assert_int_equal(cp_write_file_atomic(path, armor, strlen(armor), 0600), 0);
	buf_printf(&cmd, "gpg --homedir %s --batch --status-fd 1 --decrypt %s "
		   "2>/dev/null", fx.g.patient_home, path);
	assert_int_equal(tu_capture(out, cmd.data), 0);
	buf_free(&cmd);
	unlink(path);
}

/* --- tests -------------------------------------------------------------- */

static void
due_events_are_sent_once_notice_or_encrypted_by_key(void **state)
{
	struct outbound_stats st;
	struct sink *s = sink_start(NULL);
	struct dump d[8];
	struct buf plain = BUF_INIT;
	const struct dump *m;
	json_t *rec;
	size_t n, recovered = 99;
	struct cp_error err;
	char later[96];

	put_patient("p1", "pat@patients.test", NULL);
	snprintf(later, sizeof(later), "{\"pgp_fpr\": \"%s\"}", fx.g.patient);
	put_patient("p2", "keyed@patients.test", later);
	put_event("ev-notice", "test_result", "p1", NULL);
	put_event("ev-full", "test_result", "p2", NULL);
	snprintf(later, sizeof(later), "{\"send_at\": %lld}", (long long)NOW + 3600);
	put_event("ev-later", "test_result", "p1", later);
	open_to_sink(s);

	run(NOW, &st);
	assert_int_equal(st.claimed, 3);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.notices, 1);
	assert_int_equal(st.encrypted, 1);
	assert_int_equal(st.deferred + st.failed + st.suppressed + st.expired, 0);
	n = sink_dumps(s, d, 8);
	assert_int_equal(n, 2);

	/* The notice: the headers promised, and none of the event's data. */
	m = dump_to(d, n, "pat@patients.test");
	assert_headers(m, "ev-notice", "pat@patients.test");
	assert_null(strstr(m->raw, CANARY));
	header(m->content, "Subject", later, sizeof(later));
	assert_non_null(strstr(later, "notification"));
	rec = delivery("ev-notice");
	assert_string_equal(str(rec, "state"), "sent");
	assert_string_equal(str(rcpt(rec, 0), "mode"), "notice");
	assert_string_equal(str(rcpt(rec, 0), "state"), "sent");
	assert_int_equal(num(rcpt(rec, 0), "code"), 250);
	assert_int_equal(num(rcpt(rec, 0), "sent_at"), NOW);
	/* Final: the data is gone from the store. */
	assert_null(json_object_get(rec, "data"));
	assert_true(json_is_true(json_object_get(rec, "scrubbed")));
	json_decref(rec);

	/* The full message: encrypted, nothing readable in the clear, and
	 * the patient's key opens it to the event's data, signed by us. */
	m = dump_to(d, n, "keyed@patients.test");
	assert_headers(m, "ev-full", "keyed@patients.test");
	assert_null(strstr(m->raw, CANARY));
	assert_non_null(strstr(m->content, "Content-Type: multipart/encrypted"));
	decrypt(m, &plain);
	assert_non_null(strstr(plain.data, CANARY "-result_summary"));
	assert_non_null(strstr(plain.data, "[GNUPG:] GOODSIG"));
	assert_non_null(strstr(plain.data, fx.g.clinic));
	rec = delivery("ev-full");
	assert_string_equal(str(rec, "state"), "sent");
	assert_string_equal(str(rcpt(rec, 0), "mode"), "encrypted");
	json_decref(rec);
	dumps_free(d, n);

	/* Not due yet: queued, untouched. */
	rec = delivery("ev-later");
	assert_string_equal(str(rec, "state"), "queued");
	assert_int_equal(json_array_size(json_object_get(rec, "recipients")), 0);
	assert_non_null(json_object_get(rec, "data"));
	json_decref(rec);

	/* A round later, only what came due is sent; nothing twice. */
	run(NOW + 3600, &st);
	assert_int_equal(st.sent, 1);
	assert_int_equal(sink_count(s), 3);
	assert_state("ev-later", "sent");
	run(NOW + 7200, &st);
	assert_int_equal(st.sent + st.claimed, 0);

	/* A clean run leaves nothing for recovery to record. */
	cp_error_clear(&err);
	assert_int_equal(outbound_recover(fx.ob, NOW + 7200, &recovered, &err), 0);
	assert_int_equal(recovered, 0);
	buf_free(&plain);
}

static void
key_on_file_that_is_missing_sends_a_notice_with_a_note(void **state)
{
	struct outbound_stats st;
	struct sink *s = sink_start(NULL);
	struct dump d[4];
	json_t *rec;
	size_t n;

	put_patient("p1", "pat@patients.test",
		    "{\"pgp_fpr\": \"0123456789ABCDEF0123456789ABCDEF01234567\"}");
	put_event("ev-1", "test_result", "p1", NULL);
	open_to_sink(s);
	run(NOW, &st);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.notices, 1);
	assert_int_equal(st.encrypted, 0);
	n = sink_dumps(s, d, 4);
	assert_int_equal(n, 1);
	assert_null(strstr(d[0].raw, CANARY));
	assert_null(strstr(d[0].raw, "BEGIN PGP"));
	dumps_free(d, n);
	rec = delivery("ev-1");
	assert_string_equal(str(rcpt(rec, 0), "mode"), "notice");
	assert_non_null(str(rcpt(rec, 0), "note"));
	assert_null(strstr(str(rcpt(rec, 0), "note"), CANARY));
	json_decref(rec);
}

static void
dead_relay_defers_without_loss_and_sends_when_back(void **state)
{
	struct outbound_stats st;
	struct sink *s;
	struct dump d[4];
	json_t *rec;
	json_int_t due;
	char msgid[256], v[256];
	size_t n;

	put_patient("p1", "pat@patients.test", NULL);
	put_event("ev-1", "test_result", "p1", NULL);
	open_to_nobody();
	run(NOW, &st);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.deferred, 1);
	rec = delivery("ev-1");
	assert_string_equal(str(rec, "state"), "deferred");
	assert_string_equal(str(rcpt(rec, 0), "state"), "deferred");
	assert_int_equal(num(rec, "attempts"), 1);
	/* retry_base 5 minutes, with at most 20% jitter either way. */
	due = num(rec, "due");
	assert_true(due >= NOW + 240 && due <= NOW + 360);
	/* Nothing lost: the data waits for the next attempt. */
	assert_non_null(strstr(json_string_value(json_object_get(
		json_object_get(rec, "data"), "result_summary")), CANARY));
	snprintf(msgid, sizeof(msgid), "%s", str(rcpt(rec, 0), "message_id"));
	json_decref(rec);

	/* The relay is back; before the retry is due nothing is sent. */
	s = sink_start(NULL);
	open_to_sink(s);
	run(NOW + 60, &st);
	assert_int_equal(st.sent + st.deferred, 0);
	assert_int_equal(sink_count(s), 0);
	run(due, &st);
	assert_int_equal(st.sent, 1);
	n = sink_dumps(s, d, 4);
	assert_int_equal(n, 1);
	/* The same message: the Message-ID of the first attempt. */
	header(d[0].content, "Message-ID", v, sizeof(v));
	assert_string_equal(v, msgid);
	dumps_free(d, n);
	rec = delivery("ev-1");
	assert_string_equal(str(rec, "state"), "sent");
	assert_int_equal(num(rec, "attempts"), 2);
	json_decref(rec);
}

static void
relay_dead_until_max_age_fails_the_event(void **state)
{
	struct outbound_stats st;
	json_t *rec;

	put_patient("p1", "pat@patients.test", NULL);
	put_event("ev-1", "test_result", "p1", NULL);
	open_to_nobody();
	run(NOW, &st);
	assert_int_equal(st.deferred, 1);
	run(NOW + 3 * 86400, &st);
	rec = delivery("ev-1");
	assert_string_equal(str(rec, "state"), "failed");
	assert_non_null(strstr(str(rec, "reason"), "gave up after 2 attempts"));
	assert_string_equal(str(rcpt(rec, 0), "state"), "failed");
	assert_null(json_object_get(rec, "data"));
	json_decref(rec);
}

static void
hard_rejection_fails_the_recipient_with_its_code(void **state)
{
	static const char *const opts[] = { "-f", "rcpt", NULL };
	struct outbound_stats st;
	struct sink *s = sink_start(opts);
	json_t *rec;

	put_patient("p1", "pat@patients.test", NULL);
	put_event("ev-1", "test_result", "p1", NULL);
	open_to_sink(s);
	run(NOW, &st);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.failed, 1);
	rec = delivery("ev-1");
	assert_string_equal(str(rec, "state"), "failed");
	assert_string_equal(str(rcpt(rec, 0), "state"), "failed");
	assert_int_equal(num(rcpt(rec, 0), "code") / 100, 5);
	assert_null(json_object_get(rec, "data"));
	json_decref(rec);
}

static void
expired_and_opted_out_events_are_not_sent_security_ones_are(void **state)
{
	struct outbound_stats st;
	struct sink *s = sink_start(NULL);
	struct dump d[4];
	json_t *rec;
	char exp[64];
	size_t n;

	put_patient("p1", "pat@patients.test", "{\"optout\": [\"results\", \"security\"]}");
	put_patient("p2", "other@patients.test", NULL);
	snprintf(exp, sizeof(exp), "{\"expires_at\": %lld}", (long long)NOW - 60);
	put_event("ev-expired", "test_result", "p2", exp);
	put_event("ev-optout", "test_result", "p1", NULL);
	put_event("ev-security", "contact_info_changed", "p1", NULL);
	open_to_sink(s);
	run(NOW, &st);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.suppressed, 1);
	assert_int_equal(st.sent, 1);
	n = sink_dumps(s, d, 4);
	assert_int_equal(n, 1);
	assert_non_null(strstr(d[0].rcpt, "pat@patients.test"));
	assert_headers(&d[0], "ev-security", "pat@patients.test");
	dumps_free(d, n);

	/* Never sent: no attempt, no recipient (docs/store.md). */
	rec = delivery("ev-expired");
	assert_string_equal(str(rec, "state"), "expired");
	assert_null(json_object_get(rec, "data"));
	assert_int_equal(num(rec, "attempts"), 0);
	assert_int_equal(json_array_size(json_object_get(rec, "recipients")), 0);
	json_decref(rec);
	rec = delivery("ev-optout");
	assert_string_equal(str(rec, "state"), "suppressed");
	assert_string_equal(str(rec, "reason"), "patient opted out of results");
	assert_null(json_object_get(rec, "data"));
	assert_int_equal(num(rec, "attempts"), 0);
	assert_int_equal(json_array_size(json_object_get(rec, "recipients")), 0);
	json_decref(rec);
	assert_state("ev-security", "sent");
}

static void
quiet_hours_wait_unless_high_priority(void **state)
{
	struct outbound_stats st;
	struct sink *s = sink_start(NULL);
	struct dump d[4];
	json_t *rec;
	size_t n;

	/* 12:00 UTC is 21:00 in Tokyo: quiet hours (21:00-08:00) begin. */
	put_patient("p1", "pat@patients.test", "{\"tz\": \"Asia/Tokyo\"}");
	put_event("ev-normal", "test_result", "p1", NULL);
	put_event("ev-high", "test_result", "p1", "{\"priority\": \"high\"}");
	open_to_sink(s);
	run(NOW, &st);
	assert_int_equal(st.rescheduled, 1);
	assert_int_equal(st.sent, 1);
	n = sink_dumps(s, d, 4);
	assert_int_equal(n, 1);
	assert_headers(&d[0], "ev-high", "pat@patients.test");
	dumps_free(d, n);
	rec = delivery("ev-normal");
	assert_string_equal(str(rec, "state"), "queued");
	/* Due at 08:00 in Tokyo, 23:00 UTC; a wait is not an attempt, and
	 * who receives it is chosen at the first one: no recipient yet. */
	assert_int_equal(num(rec, "due"), NOW + 11 * 3600);
	assert_int_equal(num(rec, "attempts"), 0);
	assert_int_equal(json_array_size(json_object_get(rec, "recipients")), 0);
	json_decref(rec);

	run(NOW + 11 * 3600, &st);
	assert_int_equal(st.sent, 1);
	assert_state("ev-normal", "sent");
}

static void
subscription_mail_carries_one_click_unsubscribe_transactional_does_not(void **state)
{
	struct outbound_stats st;
	struct sink *s = sink_start(NULL);
	struct dump d[4];
	const struct dump *m;
	char v[256];
	size_t n;

	put_patient("p1", "pat@patients.test", NULL);
	put_patient("p2", "other@patients.test", NULL);
	put_event("ev-reminder", "checkup_reminder", "p1", NULL);
	put_event("ev-result", "test_result", "p2", NULL);
	open_to_sink(s);
	run(NOW, &st);
	assert_int_equal(st.sent, 2);
	n = sink_dumps(s, d, 4);
	assert_int_equal(n, 2);
	m = dump_to(d, n, "pat@patients.test");
	/* subscription mail: one click (RFC 8058), then the mailto */
	header(m->content, "List-Unsubscribe", v, sizeof(v));
	assert_int_equal(strncmp(v, "<https://portal.test/unsubscribe/", 33), 0);
	{
		char tok[UNSUB_TOKEN_SIZE], cat[16];
		uint8_t thread[TOKEN_THREAD_BYTES], want[TOKEN_THREAD_BYTES];
		const char *end = strchr(v, '>');
		size_t rcpt = 9;

		assert_non_null(end);
		snprintf(tok, sizeof(tok), "%.*s", (int)(end - v - 33), v + 33);
		assert_int_equal(unsub_token_read(key, sizeof(key) - 1, tok, thread,
						  &rcpt, cat), 0);
		token_thread_from_id("ev-reminder", want);
		assert_memory_equal(thread, want, sizeof(want));
		assert_int_equal(rcpt, 0);
		assert_string_equal(cat, "recalls");
	}
	assert_non_null(strstr(v, ">, <mailto:unsubscribe+"));
	assert_non_null(strstr(v, "@clinic.test?subject=unsubscribe>"));
	header(m->content, "List-Unsubscribe-Post", v, sizeof(v));
	assert_string_equal(v, "List-Unsubscribe=One-Click");
	header(m->content, "List-Id", v, sizeof(v));
	assert_string_equal(v, "<recalls.clinic.test>");
	header(m->content, "Feedback-ID", v, sizeof(v));
	assert_string_equal(v, "recalls:checkup_reminder:carepost:clinic.test");
	/* transactional mail: none of them, but its Feedback-ID */
	m = dump_to(d, n, "other@patients.test");
	header(m->content, "List-Unsubscribe", v, sizeof(v));
	assert_string_equal(v, "");
	header(m->content, "List-Unsubscribe-Post", v, sizeof(v));
	assert_string_equal(v, "");
	header(m->content, "List-Id", v, sizeof(v));
	assert_string_equal(v, "");
	/* a result's kind of item stays unsaid, here too */
	header(m->content, "Feedback-ID", v, sizeof(v));
	assert_string_equal(v, "sensitive:carepost:clinic.test");
	dumps_free(d, n);
}

static void
step_sends_what_is_due_and_stop_takes_no_batch(void **state)
{
	struct outbound_stats st;
	struct sink *s = sink_start(NULL);
	struct cp_error err;
	volatile int stop = 1;
	json_t *d = NULL;

	put_patient("p1", "pat@patients.test", NULL);
	put_event("ev-1", "test_result", "p1", NULL);
	open_to_sink(s);
	/* Asked to stop: not even a claim. */
	memset(&st, 0, sizeof(st));
	cp_error_clear(&err);
	assert_int_equal(outbound_run(fx.ob, NOW, &stop, &st, &err), 0);
	assert_int_equal(st.claimed + st.sent, 0);
	assert_int_equal(store_get_json(fx.store, DB_DELIVERY, "ev-1", &d, NULL), -ENOENT);
	/* One step does it all, and says nothing more is waiting. */
	stop = 0;
	assert_int_equal(outbound_step(fx.ob, NOW, &stop, &st, &err), 0);
	assert_int_equal(st.claimed, 1);
	assert_int_equal(st.sent, 1);
	assert_int_equal(sink_count(s), 1);
	/* stats are added to, not reset. */
	assert_int_equal(outbound_step(fx.ob, NOW + 1, NULL, &st, &err), 0);
	assert_int_equal(st.sent, 1);
}

/* crash_mid_batch - events claimed and leased ("sending"), as a process
 * killed mid-batch leaves them; journal is what it had written. */
static void
crash_mid_batch(const char *journal)
{
	struct cp_error err;
	char path[256];
	size_t claimed;
	struct delivery_list batch = { 0 };

	cp_error_clear(&err);
	assert_int_equal(intake_claim(fx.store, NOW, 86400, 100, &claimed, NULL, &err), 0);
	assert_int_equal(queue_take_due(fx.store, NOW, 600, 100, &batch, &err), 0);
	assert_true(batch.n > 0);
	delivery_list_free(&batch);
	snprintf(path, sizeof(path), "%s/sending.journal", fx.store_path);
	tu_write_file(path, "%s", journal);
}

static json_t *audit_rows(void);
static json_t *audit_of(json_t *rows, const char *action, const char *event);

static void
recovery_records_what_the_relay_accepted_and_sends_the_rest(void **state)
{
	struct outbound_stats st;
	struct sink *s = sink_start(NULL);
	struct cp_error err;
	struct dump d[4];
	char want[256], thread[2 * TOKEN_THREAD_BYTES + 1];
	size_t recovered = 0, released = 0, n;
	json_t *rec;

	put_patient("p1", "pat@patients.test", NULL);
	put_patient("p2", "other@patients.test", NULL);
	put_patient("p3", "third@patients.test", NULL);
	put_event("ev-1", "test_result", "p1", NULL);
	put_event("ev-2", "test_result", "p2", NULL);
	put_event("ev-3", "test_result", "p3", NULL);
	open_to_sink(s);
	/* ev-1 accepted; ev-3's line names another recipient; ev-2's line was
	 * torn by the kill. */
	crash_mid_batch("ev-1\t0\tn\tpatient\nev-3\t0\tn\tproxy:0\nev-2\t0\tn\tpat");

	cp_error_clear(&err);
	assert_int_equal(outbound_recover(fx.ob, NOW + 5, &recovered, &err), 0);
	assert_int_equal(recovered, 1);
	rec = delivery("ev-1");
	assert_string_equal(str(rec, "state"), "sent");
	assert_string_equal(str(rcpt(rec, 0), "state"), "sent");
	assert_string_equal(str(rcpt(rec, 0), "mode"), "notice");
	thread_hex("ev-1", thread);
	assert_int_equal(outbound_message_id(key, sizeof(key) - 1, thread, 0,
					     "clinic.test", want, sizeof(want)), 0);
	assert_string_equal(str(rcpt(rec, 0), "message_id"), want);
	json_decref(rec);
	assert_state("ev-2", "sending");

	/* The rest is released and sent; ev-1 is not sent again. */
	assert_int_equal(queue_release_leases(fx.store, NOW + 5, &released, &err), 0);
	assert_int_equal(released, 2);
	run(NOW + 5, &st);
	assert_int_equal(st.sent, 2);
	n = sink_dumps(s, d, 4);
	assert_int_equal(n, 2);
	dump_to(d, n, "other@patients.test");
	dump_to(d, n, "third@patients.test");
	dumps_free(d, n);
	/* The journal was emptied: a second recovery finds nothing. */
	assert_int_equal(outbound_recover(fx.ob, NOW + 6, &recovered, &err), 0);
	assert_int_equal(recovered, 0);
	/* One audit record per message: the recovered one included. */
	rec = audit_rows();
	assert_int_equal(json_array_size(rec), 3);
	assert_int_equal(num(audit_of(rec, "sent", "ev-1"), "relay"), 250);
	audit_of(rec, "sent", "ev-2");
	audit_of(rec, "sent", "ev-3");
	json_decref(rec);
}

/* --- the audit trail ---------------------------------------------------- */

struct audit_rows {
	json_t *rows;		/* every audit record, in order */
};

static int
audit_row(void *userdata, const char *k, size_t klen, json_t *value)
{
	struct audit_rows *a = userdata;

	json_array_append(a->rows, value);
	return 0;
}

/* audit_rows - the audit records of the store (a new array). */
static json_t *
audit_rows(void)
{
	struct audit_rows a = { json_array() };

	assert_int_equal(store_foreach(fx.store, DB_AUDIT, audit_row, &a, NULL), 0);
	return a.rows;
}

/* audit_of - the one record of action for event (fails unless one). */
static json_t *
audit_of(json_t *rows, const char *action, const char *event)
{
	json_t *found = NULL, *r;
	size_t i, n = 0;

	json_array_foreach(rows, i, r) {
		if (strcmp(str(r, "action"), action) == 0 &&
		    json_string_value(json_object_get(r, "event")) != NULL &&
		    strcmp(str(r, "event"), event) == 0) {
			found = r;
			n++;
		}
	}
	if (n != 1)
		fail_msg("%zu %s audit records for %s, want 1", n, action, event);
	return found;
}

static void
each_accepted_message_makes_one_audit_record(void **state)
{
	static const char *const opts[] = { "-f", "rcpt", NULL };
	struct outbound_stats st;
	struct sink *s = sink_start(NULL);
	struct audit_verify_result vr;
	json_t *rows, *r;
	char more[96], *text;
	size_t i;

	put_patient("p1", "pat@patients.test", NULL);
	snprintf(more, sizeof(more), "{\"pgp_fpr\": \"%s\"}", fx.g.patient);
	put_patient("p2", "keyed@patients.test", more);
	put_event("ev-notice", "test_result", "p1", NULL);
	put_event("ev-full", "test_result", "p2", NULL);
	open_to_sink(s);
	run(NOW, &st);
	assert_int_equal(st.sent, 2);
	run(NOW + 60, &st);		/* nothing more sent, nothing more audited */

	rows = audit_rows();
	assert_int_equal(json_array_size(rows), 2);
	r = audit_of(rows, "sent", "ev-notice");
	assert_string_equal(str(r, "actor"), "daemon");
	assert_string_equal(str(r, "patient"), "p1");
	assert_int_equal(num(r, "relay"), 250);
	assert_null(json_object_get(r, "key"));
	assert_int_equal(strlen(str(r, "recipient_ref")), 16);	/* a hash */
	r = audit_of(rows, "sent", "ev-full");
	assert_string_equal(str(r, "patient"), "p2");
	assert_string_equal(str(r, "key"), fx.g.patient);
	/* references only: no address, no event data */
	json_array_foreach(rows, i, r) {
		text = json_dumps(r, 0);
		assert_null(strstr(text, "@"));
		assert_null(strstr(text, CANARY));
		free(text);
	}
	json_decref(rows);
	assert_int_equal(audit_verify(fx.store, &vr, NULL), 0);
	assert_true(vr.ok);
	assert_int_equal(vr.records, 2);
	sink_cleanup(&current_sink);

	/* a message the relay refused was not disclosed: no record */
	s = sink_start(opts);
	put_event("ev-refused", "test_result", "p1", NULL);
	open_to_sink(s);
	run(NOW + 120, &st);
	assert_int_equal(st.failed, 1);
	rows = audit_rows();
	assert_int_equal(json_array_size(rows), 2);
	json_decref(rows);
}

static void
outbound_new_refuses_what_it_cannot_send_with(void **state)
{
	struct outbound *ob = NULL;
	struct cp_config *cfg;
	struct cp_error err;

	open_to_nobody();
	/* A token key under 16 bytes. */
	cp_error_clear(&err);
	assert_int_equal(outbound_new(fx.cfg, fx.store, fx.ts, key, 15, &ob, &err),
			 -EINVAL);
	assert_null(ob);
	/* No reply or bounce domain. */
	cfg = tu_config("[store]\npath = %s\n"
			"[portal]\nfrom_address = care@clinic.test\n", fx.store_path);
	assert_int_equal(outbound_new(cfg, fx.store, fx.ts, key, sizeof(key) - 1,
				      &ob, &err), -EINVAL);
	assert_null(ob);
	config_free(cfg);
	/* A clinic key that is not in the keyring. */
	cfg = tu_config("[store]\npath = %s\n[gpg]\nhome = %s\n"
			"clinic_key = 0123456789ABCDEF0123456789ABCDEF01234567\n"
			TU_CONF_PORTAL, fx.store_path, fx.g.clinic_home);
	assert_true(outbound_new(cfg, fx.store, fx.ts, key, sizeof(key) - 1,
				 &ob, &err) < 0);
	assert_null(ob);
	config_free(cfg);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(due_events_are_sent_once_notice_or_encrypted_by_key),
		T(key_on_file_that_is_missing_sends_a_notice_with_a_note),
		T(dead_relay_defers_without_loss_and_sends_when_back),
		T(relay_dead_until_max_age_fails_the_event),
		T(hard_rejection_fails_the_recipient_with_its_code),
		T(expired_and_opted_out_events_are_not_sent_security_ones_are),
		T(quiet_hours_wait_unless_high_priority),
		T(subscription_mail_carries_one_click_unsubscribe_transactional_does_not),
		T(step_sends_what_is_due_and_stop_takes_no_batch),
		T(recovery_records_what_the_relay_accepted_and_sends_the_rest),
		T(each_accepted_message_makes_one_audit_record),
		T(outbound_new_refuses_what_it_cannot_send_with),
	};
#undef T

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
