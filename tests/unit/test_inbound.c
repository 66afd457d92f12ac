/*
 * NAME
 *	test_inbound - unit tests for lib/inbound.c: a real store, real gpg
 * DESCRIPTION
 *	The group setup makes one throwaway GnuPG home with a clinic key
 *	(the store key). Each test gets a fresh LMDB store holding a patient
 *	with a proxy and the threads it needs, written directly (no
 *	outbound run): the reply tokens are made with token_make. Messages
 *	are built as text. What is filed is read back through the store
 *	and decrypted with inbox_open; the LMDB data file is searched for
 *	the canaries the messages carry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>

#include "atrest.h"
#include "buf.h"
#include "config.h"
#include "gpgfix.h"
#include "helper.h"
#include "inmsgwire.h"
#include "inbound.h"
#include "inbox.h"
#include "log.h"
#include "outbound.h"
#include "parsefix.h"
#include "parsehelper.h"
#include "pgphelper.h"
#include "pgp.h"
#include "store.h"
#include "storefix.h"
#include "token.h"
#include "util.h"

#define CANARY "PHI-CANARY-inb"
#define NOW 1795626000LL	/* 2026-11-25 17:00 UTC */
#define DAY 86400

static const char key[] = "0123456789abcdef0123456789abcdef";

struct fixture {
	char dir[64];
	char home[80];
	char clinic[PGP_FPR_SIZE];
	int n;				/* stores made so far */
	/* per test */
	char store_path[96];
	struct cp_config *cfg;
	struct store *store;
	struct inbound *ib;
	struct pgp *pgp;
	struct atrest *atrest;		/* a reader's, as carepostctl has */
};

static struct fixture fx;

/* ---- helpers ---- */



static int
group_setup(void **state)
{
	if (tu_gpg_dir("cpi", fx.dir, sizeof(fx.dir), fx.home, sizeof(fx.home),
		       "Clinic <clinic@clinic.test>", fx.clinic) < 0)
		return -1;
	pgp_global_init();
	log_setup("test_inbound", LOG_TARGET_STDERR, LOG_EMERG);
	return 0;
}

static int
group_teardown(void **state)
{
	tu_gpg_dir_remove("cpi", fx.dir, fx.home);
	return 0;
}

static void
open_config(const char *extra_security, const char *store_key)
{
	fx.cfg = tu_config("[store]\npath = %s\n"
			   "[gpg]\nhome = %s\nclinic_key = %s\n%s%s%s"
			   TU_CONF_PORTAL
			   "[routing]\ndefault_department = general\n"
			   "urgent_words = urgent, Chest Pain\n"
			   "staff.general = desk@clinic.test\n"
			   "staff.cardio = c1@clinic.test, c2@clinic.test\n"
			   "[security]\n%s",
			   fx.store_path, fx.home, fx.clinic,
			   store_key ? "store_key = " : "", store_key ? store_key : "",
			   store_key ? "\n" : "", extra_security ? extra_security : "");
}

static void
open_inbound(void)
{
	struct cp_error err;

	cp_error_clear(&err);
	inbound_free(fx.ib);
	fx.ib = NULL;
	assert_int_equal(inbound_new(fx.cfg, fx.store, key, sizeof(key) - 1, &fx.ib, &err), 0);
}

static int
setup_with(const char *security, const char *store_key)
{
	struct cp_error err;
	json_t *p;
	int r;

	cp_error_clear(&err);
	fx.store = tu_store_fresh(fx.dir, &fx.n, fx.store_path,
				  sizeof(fx.store_path), 64 << 20, &err);
	if (fx.store == NULL)
		return -1;
	open_config(security, store_key);
	if (pgp_new(fx.home, NULL, &fx.pgp, &err) < 0 ||
	    atrest_new(fx.store, fx.pgp, NULL, &fx.atrest, &err) < 0)
		return -1;
	open_inbound();
	p = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "id", "p1", "email", "pat@patients.test",
		      "proxies", "email", "prox@proxies.test", "relation", "parent");
	r = store_put_json(fx.store, DB_PATIENTS, "p1", p, &err);
	json_decref(p);
	return r;
}

static int
setup(void **state)
{
	return setup_with(NULL, NULL);
}

static int
setup_no_alert_window(void **state)
{
	return setup_with("[routing]\nalert_window = 0\n", NULL);
}

static int
setup_dmarc(void **state)
{
	return setup_with("require_dmarc = yes\ntrusted_authserv_id = mx.clinic.test\n", NULL);
}

static int
teardown(void **state)
{
	inbound_free(fx.ib);
	fx.ib = NULL;
	/* back to this binary as the parse helper, and no gpg helper, after
	 * a test that chose others (even one that failed half-way) */
	parsehelper_enable(NULL);
	pgphelper_enable("/nonexistent-cpi/carepost-pgp");
	atrest_free(fx.atrest);
	fx.atrest = NULL;
	pgp_free(fx.pgp);
	fx.pgp = NULL;
	store_close(fx.store);
	fx.store = NULL;
	config_free(fx.cfg);
	fx.cfg = NULL;
	parsehelper_enable(NULL);	/* a test may have put in a substitute */
	return 0;
}

/* add_thread - the thread of event_id (expiring at expires); its token. */
static void
add_thread(const char *event_id, const char *type, const char *dept,
	   int64_t expires, const char *extra_json, char tok[TOKEN_SIZE])
{
	uint8_t id[TOKEN_THREAD_BYTES];
	json_t *rec;

	token_thread_from_id(event_id, id);
	rec = json_pack("{s:s, s:s, s:s, s:I, s:I}", "event", event_id,
			  "patient", "p1", "type", type, "created", (json_int_t)NOW,
			  "expires", (json_int_t)expires);
	if (dept)
		json_object_set_new(rec, "department", json_string(dept));
	if (extra_json) {
		json_t *extra = json_loads(extra_json, 0, NULL);

		json_object_update(rec, extra);
		json_decref(extra);
	}
	tu_thread_put(fx.store, id, rec);
	json_decref(rec);
	assert_int_equal(token_make(key, sizeof(key) - 1, id, expires, tok), 0);
}

static char *
message(const char *from, const char *to, const char *subject,
	const char *msgid, const char *extra, const char *body)
{
	char *s;

	if (asprintf(&s, "From: %s\r\nTo: %s\r\nSubject: %s\r\n%s%s%s"
		     "Date: Wed, 25 Nov 2026 17:00:00 +0000\r\n%s"
		     "Content-Type: text/plain; charset=utf-8\r\n\r\n%s",
		     from, to, subject, msgid ? "Message-ID: <" : "",
		     msgid ? msgid : "", msgid ? ">\r\n" : "", extra ? extra : "",
		     body) < 0)
		return NULL;
	return s;
}

static int
ingest_at(const char *raw, int64_t now, struct inbound_result *res)
{
	struct cp_error err;
	int r;

	cp_error_clear(&err);
	r = inbound_ingest(fx.ib, raw, strlen(raw), now, 0, res, &err);
	if (r < 0)
		print_message("inbound_ingest: %s\n", err.text);
	inbound_result_clear(res);
	return r;
}

static void
reply_to(char *out, size_t n, const char *tok)
{
	snprintf(out, n, "reply+%s@reply.clinic.test", tok);
}

static size_t
count(enum store_db db)
{
	size_t n = 0;

	assert_int_equal(store_count(fx.store, db, &n, NULL), 0);
	return n;
}

struct prefix_count {
	const char *prefix;
	size_t n;
};

static int
each_prefixed(void *ud, const char *k, size_t klen, json_t *v)
{
	struct prefix_count *pc = ud;

	if (klen >= strlen(pc->prefix) && memcmp(k, pc->prefix, strlen(pc->prefix)) == 0)
		pc->n++;
	return 0;
}

static size_t
prefixed(enum store_db db, const char *prefix)
{
	struct prefix_count pc = { prefix, 0 };

	assert_int_equal(store_foreach(fx.store, db, each_prefixed, &pc, NULL), 0);
	return pc.n;
}

static size_t
deliveries(const char *prefix)
{
	return prefixed(DB_DELIVERY, prefix);
}

static int
file_has(const char *needle)
{
	return tu_store_holds(fx.store_path, needle);
}

/* ---- authentication ---- */

static void
patient_and_proxy_replies_are_filed_with_their_role(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128];
	char *a, *b;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	a = message("Pat <PAT@patients.test>", to, "Re: hi", "a1@x.test", NULL, "hello\r\n");
	b = message("prox@proxies.test", to, "Re: hi", "a2@x.test", NULL, "hello\r\n");
	assert_int_equal(ingest_at(a, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_int_equal(res.folder, INBOUND_FOLDER_PROCESSED);
	assert_string_equal(res.sender_role, "patient");
	assert_string_equal(res.auth, "from");
	assert_string_equal(res.event, "ev1");
	assert_string_equal(res.department, "general");
	assert_int_equal(ingest_at(b, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_string_equal(res.sender_role, "proxy");
	assert_int_equal(count(DB_INBOX), 2);
	assert_int_equal(count(DB_CLINIC), 2);
	free(a);
	free(b);
}

static void
strangers_forgeries_and_expired_tokens_are_quarantined_never_filed(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], old[TOKEN_SIZE], conf[TOKEN_SIZE], to[128];
	uint8_t ghost[TOKEN_THREAD_BYTES];
	struct {
		const char *from;
		const char *tok;
		int64_t now;
		const char *reason;
	} cases[6];
	char ghost_tok[TOKEN_SIZE], forged[TOKEN_SIZE];
	size_t i;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	add_thread("ev-old", "provider_message", NULL, NOW - DAY, NULL, old);
	add_thread("ev-conf", "test_result", NULL, NOW + 30 * DAY,
		   "{\"confidential\": true}", conf);
	token_thread_from_id("never-stored", ghost);
	assert_int_equal(token_make(key, sizeof(key) - 1, ghost, NOW + DAY, ghost_tok), 0);
	memcpy(forged, tok, sizeof(forged));
	forged[5] = forged[5] == 'a' ? 'b' : 'a';

	cases[0] = (typeof(cases[0])){ "evil@else.test", tok, NOW, "not the thread's patient" };
	cases[1] = (typeof(cases[0])){ "pat@patients.test", forged, NOW, "forged" };
	cases[2] = (typeof(cases[0])){ "pat@patients.test", old, NOW, "expired" };
	cases[3] = (typeof(cases[0])){ "pat@patients.test", ghost_tok, NOW, "no known thread" };
	cases[4] = (typeof(cases[0])){ "prox@proxies.test", conf, NOW, "confidential" };
	cases[5] = (typeof(cases[0])){ "pat@patients.test", tok, NOW + 31 * DAY, "expired" };
	for (i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		char id[32], *m;

		snprintf(id, sizeof(id), "q%zu@x.test", i);
		reply_to(to, sizeof(to), cases[i].tok);
		m = message(cases[i].from, to, "Re: " CANARY, id, NULL, CANARY "\r\n");
		assert_int_equal(ingest_at(m, cases[i].now, &res), 0);
		assert_int_equal(res.disposition, INBOUND_QUARANTINED);
		assert_int_equal(res.folder, INBOUND_FOLDER_QUARANTINE);
		if (strstr(res.reason, cases[i].reason) == NULL)
			fail_msg("case %zu: reason \"%s\", wanted \"%s\"", i, res.reason,
				 cases[i].reason);
		assert_null(strstr(res.reason, "@"));	/* no address in a reason */
		free(m);
	}
	assert_int_equal(count(DB_INBOX), 0);
	assert_int_equal(count(DB_CLINIC), 0);
	assert_int_equal(count(DB_SEEN), CP_ARRAY_SIZE(cases));
	assert_int_equal(deliveries("ack:"), 0);
	assert_false(file_has(CANARY));
}

static void
require_dmarc_counts_only_the_trusted_authserv_id(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128];
	static const struct {
		const char *ar;
		enum inbound_disposition want;
		const char *auth;
	} cases[] = {
		{ NULL, INBOUND_QUARANTINED, "" },
		{ "Authentication-Results: mx.evil.test; dmarc=pass header.from=patients.test\r\n",
		  INBOUND_QUARANTINED, "" },
		{ "Authentication-Results: mx.clinic.test; dmarc=fail header.from=patients.test\r\n",
		  INBOUND_QUARANTINED, "" },
		{ "Authentication-Results: mx.clinic.test; dmarc=pass header.from=patients.test\r\n",
		  INBOUND_FILED, "dmarc" },
		{ "Authentication-Results: mx.clinic.test; dkim=pass header.d=patients.test\r\n",
		  INBOUND_FILED, "dkim" },
		{ "Authentication-Results: mx.clinic.test; dkim=pass header.d=other.test\r\n",
		  INBOUND_QUARANTINED, "" },
	};

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	for (size_t i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		char id[32], *m;

		snprintf(id, sizeof(id), "d%zu@x.test", i);
		m = message("pat@patients.test", to, "Re", id, cases[i].ar, "hi\r\n");
		assert_int_equal(ingest_at(m, NOW, &res), 0);
		if (res.disposition != cases[i].want)
			fail_msg("case %zu: %s (%s)", i, inbound_disposition_name(res.disposition),
				 res.reason);
		assert_string_equal(res.auth, cases[i].auth);
		free(m);
	}
}

static void
require_dmarc_without_trusted_id_is_a_config_error(void **state)
{
	struct cp_config *cfg;
	struct inbound *ib = NULL;
	struct cp_error err;
	static const char text[] = "[security]\nrequire_dmarc = yes\n";

	assert_int_equal(config_parse("t.conf", text, strlen(text), NULL, &cfg, &err), 0);
	assert_int_equal(inbound_new(cfg, NULL, NULL, 0, &ib, &err), -EINVAL);
	assert_null(ib);
	config_free(cfg);
}

/* ---- dedupe and seen outcomes ---- */

static void
a_message_is_filed_once_however_often_it_is_fetched(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128], first[INBOUND_ID_MAX];
	char *m, *nomid;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	m = message("pat@patients.test", to, "Re", "once@x.test", NULL, "hi\r\n");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	cp_strlcpy(first, res.inbox_id, sizeof(first));
	/* again later (crash before the move, UIDVALIDITY change), and with
	 * a different Received trace: the Message-ID decides */
	assert_int_equal(ingest_at(m, NOW + 3600, &res), 0);
	assert_int_equal(res.disposition, INBOUND_DUPLICATE);
	assert_int_equal(res.first, INBOUND_FILED);
	assert_int_equal(res.folder, INBOUND_FOLDER_PROCESSED);
	assert_string_equal(res.inbox_id, first);
	{
		char *traced;

		assert_true(asprintf(&traced, "Received: from relay2\r\n%s", m) > 0);
		assert_int_equal(ingest_at(traced, NOW + 7200, &res), 0);
		assert_int_equal(res.disposition, INBOUND_DUPLICATE);
		free(traced);
	}
	assert_int_equal(count(DB_INBOX), 1);
	assert_int_equal(count(DB_CLINIC), 1);
	assert_int_equal(deliveries("alert:"), 1);

	/* no Message-ID: the SHA-256 of the bytes */
	nomid = message("pat@patients.test", to, "Re", NULL, NULL, "no id\r\n");
	assert_int_equal(ingest_at(nomid, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_int_equal(ingest_at(nomid, NOW + 1, &res), 0);
	assert_int_equal(res.disposition, INBOUND_DUPLICATE);
	assert_int_equal(count(DB_INBOX), 2);
	free(m);
	free(nomid);
}

static void
a_quarantined_message_is_quarantined_again_with_its_reason(void **state)
{
	struct inbound_result res;
	char reason[256];
	char *m = message("x@y.test", "someone@clinic.test", "hello", "qq@x.test",
			  NULL, "hi\r\n");

	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	cp_strlcpy(reason, res.reason, sizeof(reason));
	assert_int_equal(ingest_at(m, NOW + 10, &res), 0);
	assert_int_equal(res.disposition, INBOUND_DUPLICATE);
	assert_int_equal(res.first, INBOUND_QUARANTINED);
	assert_int_equal(res.folder, INBOUND_FOLDER_QUARANTINE);
	assert_string_equal(res.reason, reason);
	free(m);
}

static void
unparseable_and_oversized_messages_quarantine_with_a_reason(void **state)
{
	struct inbound_result res;
	struct buf big = BUF_INIT;
	struct cp_error err;

	buf_puts(&big, "From: a@b.test\r\nSubject: x\r\n\r\n");
	while (big.len <= INMSG_MAX_SIZE_DEFAULT)
		buf_puts(&big, "0123456789012345678901234567890123456789012345678901234567890123\r\n");
	cp_error_clear(&err);
	assert_int_equal(inbound_ingest(fx.ib, big.data, big.len, NOW, 0, &res, &err), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_non_null(strstr(res.reason, "size"));
	buf_free(&big);
}

/* crashing_child - a parse helper's child that dies of SIGSEGV at the
 * first byte of its request (parsefix.h: this binary as crashing-parse). */
static int
crashing_child(void *arg)
{
	struct buf scratch = BUF_INIT;
	char c;

	(void)arg;
	if (tu_parse_first_words(&scratch) < 0 || read(HELPER_FD, &c, 1) != 1)
		return 1;
	signal(SIGSEGV, SIG_DFL);	/* not a sanitizer's report */
	raise(SIGSEGV);
	return 2;
}

/*
 * substitute - the parse helper: this binary as one that crashes on every
 * message; or, dead, a shell script in fx.dir that exits at once.
 */
static void
substitute(const char *name, int dead)
{
	static const char script[] = "#!/bin/sh\nexit 0\n";
	char path[PATH_MAX];

	if (!dead) {
		assert_int_equal(tu_parse_use(fx.dir, name, path, sizeof(path)), 0);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
	assert_int_equal(cp_write_file_atomic(path, script, strlen(script), 0755), 0);
	assert_int_equal(parsehelper_enable(path), 0);
}

/* A parser that dies on a message: one retry, then a quarantine. */
static void
a_message_the_parser_dies_on_twice_is_quarantined_with_the_reason(void **state)
{
	static const char raw[] = "From: pat@patients.test\r\nSubject: SECRET\r\n"
				  "Message-ID: <crash@x.test>\r\n\r\nbody\r\n";
	struct inbound_result res;
	struct cp_error err;

	substitute("crashing-parse", 0);
	cp_error_clear(&err);
	assert_int_equal(inbound_ingest(fx.ib, raw, sizeof(raw) - 1, NOW, 0, &res, &err), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_int_equal(res.folder, INBOUND_FOLDER_QUARANTINE);
	assert_true(res.parser_lost);
	assert_non_null(strstr(res.reason, "parser lost twice on this message: "
			       "killed by signal 11"));
	assert_int_equal(count(DB_SEEN), 1);
	assert_int_equal(count(DB_INBOX), 0);
	/* fetched again: recognised (by its bytes), moved again */
	assert_int_equal(inbound_ingest(fx.ib, raw, sizeof(raw) - 1, NOW, 0, &res, &err), 0);
	assert_int_equal(res.disposition, INBOUND_DUPLICATE);
	assert_int_equal(res.first, INBOUND_QUARANTINED);
	assert_int_equal(res.folder, INBOUND_FOLDER_QUARANTINE);
	assert_int_equal(count(DB_SEEN), 1);
}

/* No parse helper at all: not the message's fault; nothing written. */
static void
without_a_parse_helper_the_message_waits(void **state)
{
	static const char raw[] = "From: pat@patients.test\r\nSubject: s\r\n\r\nbody\r\n";
	struct inbound_result res;
	struct cp_error err;

	substitute("dead-parse", 1);
	cp_error_clear(&err);
	assert_int_equal(inbound_ingest(fx.ib, raw, sizeof(raw) - 1, NOW, 0, &res, &err),
			 -EHOSTDOWN);
	assert_non_null(strstr(err.text, "parse helper"));
	assert_int_equal(count(DB_SEEN), 0);
	/* never parsed in this process instead: a dry run says the same */
	assert_int_equal(inbound_ingest(fx.ib, raw, sizeof(raw) - 1, NOW, 1, &res, &err),
			 -EHOSTDOWN);
	inbound_result_clear(&res);
}

static void
dry_run_decides_and_writes_nothing(void **state)
{
	struct inbound_result res;
	struct cp_error err;
	char tok[TOKEN_SIZE], to[128];
	json_t *auth;
	char *m;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	m = message("pat@patients.test", to, "Re", "dry@x.test", NULL, "urgent!\r\n");
	cp_error_clear(&err);
	assert_int_equal(inbound_ingest(fx.ib, m, strlen(m), NOW, 1, &res, &err), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_non_null(res.summary);
	assert_string_equal(json_string_value(json_object_get(res.summary, "class")), "reply");
	auth = json_object_get(res.summary, "authentication");
	assert_string_equal(json_string_value(json_object_get(auth, "status")), "pass");
	assert_true(json_is_true(json_object_get(res.summary, "urgent")));
	inbound_result_clear(&res);
	assert_int_equal(count(DB_SEEN), 0);
	assert_int_equal(count(DB_INBOX), 0);

	/* without store and key: authentication unavailable, not an error */
	inbound_free(fx.ib);
	assert_int_equal(inbound_new(fx.cfg, NULL, NULL, 0, &fx.ib, &err), 0);
	assert_int_equal(inbound_ingest(fx.ib, m, strlen(m), NOW, 1, &res, &err), 0);
	auth = json_object_get(res.summary, "authentication");
	assert_string_equal(json_string_value(json_object_get(auth, "status")), "unavailable");
	inbound_result_clear(&res);
	free(m);
}

/* ---- acknowledgements, alerts, urgency ---- */

static void
acknowledged_once_per_conversation_per_day_never_autoreplies(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128];
	char *a, *b, *c, *ooo;
	json_t *ack;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	ooo = message("pat@patients.test", to, "Out of Office", "ooo@x.test",
		      "Auto-Submitted: auto-replied\r\n", "away\r\n");
	assert_int_equal(ingest_at(ooo, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_AUTOREPLY_DISCARDED);
	assert_int_equal(res.folder, INBOUND_FOLDER_PROCESSED);
	assert_int_equal(deliveries(""), 0);

	a = message("pat@patients.test", to, "Re", "k1@x.test", NULL, "one\r\n");
	b = message("prox@proxies.test", to, "Re", "k2@x.test", NULL, "two\r\n");
	c = message("pat@patients.test", to, "Re", "k3@x.test", NULL, "three\r\n");
	assert_int_equal(ingest_at(a, NOW, &res), 0);
	assert_true(res.acked);
	assert_true(res.alerted);
	assert_int_equal(ingest_at(b, NOW + 3600, &res), 0);
	assert_false(res.acked);
	assert_int_equal(deliveries("ack:"), 1);
	assert_int_equal(deliveries("alert:"), 2);
	/* the next UTC day */
	assert_int_equal(ingest_at(c, NOW + DAY, &res), 0);
	assert_true(res.acked);
	assert_int_equal(deliveries("ack:"), 2);
	assert_int_equal(prefixed(DB_ACKS, "ev1/"), 2);

	/* the ack is a queued delivery record of an internal type */
	{
		char id[64];

		snprintf(id, sizeof(id), "ack:%s", res.inbox_id);
		assert_int_equal(store_get_json(fx.store, DB_DELIVERY, id, &ack, NULL), 0);
	}
	assert_string_equal(json_string_value(json_object_get(ack, "type")), "reply_ack");
	assert_string_equal(json_string_value(json_object_get(ack, "state")), "queued");
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(ack, "recipients"), 0), "ref")), "patient");
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(ack, "data"), "in_reply_to")), "k3@x.test");
	json_decref(ack);
	free(a);
	free(b);
	free(c);
	free(ooo);
}

static void
replies_asking_for_no_automatic_answer_are_filed_never_acknowledged(void **state)
{
	static const char *const heads[] = {
		"List-Id: Family <family.list.example>\r\n",
		"List-Post: <mailto:family@list.example>\r\n",
		"X-Auto-Response-Suppress: DR, OOF\r\n",
		"X-Auto-Response-Suppress: All\r\n",
		"X-Auto-Response-Suppress: autoreply\r\n",
		"Return-Path: <>\r\n",
	};
	struct inbound_result res;
	char tok[TOKEN_SIZE], ftok[TOKEN_SIZE], to[128], id[32];
	char *m;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	add_thread("evf", "form_request", NULL, NOW + 30 * DAY,
		   "{\"form_fields\": [{\"name\": \"Allergies\", \"required\": true}]}", ftok);
	reply_to(to, sizeof(to), tok);
	for (size_t i = 0; i < CP_ARRAY_SIZE(heads); i++) {
		snprintf(id, sizeof(id), "na%zu@x.test", i);
		m = message("pat@patients.test", to, "Re", id, heads[i], "thanks\r\n");
		assert_int_equal(ingest_at(m, NOW + (int64_t)i, &res), 0);
		if (res.disposition != INBOUND_FILED)
			fail_msg("case %zu: %s (%s)", i, inbound_disposition_name(res.disposition),
				 res.reason);
		assert_true(res.no_autoresponse);
		assert_false(res.acked);
		assert_true(res.alerted);	/* staff still hear of it */
		free(m);
	}
	/* a form reply missing an answer: no form_incomplete request either */
	reply_to(to, sizeof(to), ftok);
	m = message("pat@patients.test", to, "Re", "naf@x.test", heads[0], "Pain: 3\r\n");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_true(res.form);
	assert_false(res.form_incomplete);
	assert_false(res.acked);
	free(m);
	assert_int_equal(count(DB_INBOX), CP_ARRAY_SIZE(heads) + 1);
	assert_int_equal(deliveries("ack:"), 0);
	assert_int_equal(deliveries("formreq:"), 0);

	/* "None" asks for nothing: acknowledged, the day's first */
	reply_to(to, sizeof(to), tok);
	m = message("pat@patients.test", to, "Re", "nanone@x.test",
		    "X-Auto-Response-Suppress: None\r\n", "thanks\r\n");
	assert_int_equal(ingest_at(m, NOW + 60, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_false(res.no_autoresponse);
	assert_true(res.acked);
	assert_int_equal(deliveries("ack:"), 1);
	free(m);
}

static void
urgent_words_count_in_the_reply_not_in_quoted_history(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128];
	char *a, *b;
	json_t *alert;
	char id[64];

	add_thread("ev1", "provider_message", "cardio", NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	a = message("pat@patients.test", to, "Re", "u1@x.test", NULL,
		    "I have CHEST pain today\r\n");
	b = message("pat@patients.test", to, "Re", "u2@x.test", NULL,
		    "Thanks, all fine.\r\n\r\nOn Monday, Clinic wrote:\r\n> is it urgent?\r\n");
	assert_int_equal(ingest_at(a, NOW, &res), 0);
	assert_true(res.urgent);
	assert_string_equal(res.department, "cardio");
	snprintf(id, sizeof(id), "alert:%s", res.inbox_id);
	assert_int_equal(store_get_json(fx.store, DB_DELIVERY, id, &alert, NULL), 0);
	assert_true(json_is_true(json_object_get(alert, "urgent")));
	/* the department's two staff addresses */
	assert_int_equal(json_array_size(json_object_get(alert, "recipients")), 2);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(alert, "recipients"), 1), "address")),
		"c2@clinic.test");
	json_decref(alert);
	assert_int_equal(ingest_at(b, NOW, &res), 0);
	assert_false(res.urgent);
	free(a);
	free(b);
}

/* alert_of - the staff alert record that reply inbox_id opened (NULL: none). */
static json_t *
alert_of(const char *inbox_id)
{
	char id[64];
	json_t *d = NULL;

	snprintf(id, sizeof(id), "alert:%s", inbox_id);
	if (store_get_json(fx.store, DB_DELIVERY, id, &d, NULL) < 0)
		return NULL;
	return d;
}

static json_int_t
ival(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* mark_sent - what outbound does to an alert once it has gone out. */
static void
mark_sent(json_t *d)
{
	json_object_set_new(d, "state", json_string("sent"));
	assert_int_equal(store_put_json(fx.store, DB_DELIVERY,
					json_string_value(json_object_get(d, "id")), d, NULL), 0);
}

/* reply_at - file one reply on the thread whose reply address is to. */
static void
reply_at(const char *to, const char *msgid, const char *body, int64_t now,
	 struct inbound_result *res)
{
	char *m = message("pat@patients.test", to, "Re", msgid, NULL, body);

	assert_int_equal(ingest_at(m, now, res), 0);
	assert_int_equal(res->disposition, INBOUND_FILED);
	assert_true(res->alerted);
	free(m);
}

static void
staff_alerts_are_coalesced_per_department_and_class_within_the_window(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], gtok[TOKEN_SIZE], to[128], gto[128];
	char first[INBOUND_ID_MAX], held1[INBOUND_ID_MAX], held2[INBOUND_ID_MAX];
	json_t *a, *st;
	const int64_t W = 600;	/* the default alert_window */

	assert_int_equal(fx.cfg->alert_window, W);
	add_thread("ev1", "provider_message", "cardio", NOW + 30 * DAY, NULL, tok);
	add_thread("ev2", "provider_message", NULL, NOW + 30 * DAY, NULL, gtok);
	reply_to(to, sizeof(to), tok);
	reply_to(gto, sizeof(gto), gtok);

	/* the first reply alerts at once and opens the window */
	reply_at(to, "c1@x.test", "one\r\n", NOW, &res);
	assert_false(res.alert_held);
	cp_strlcpy(first, res.inbox_id, sizeof(first));
	assert_non_null(a = alert_of(first));
	assert_int_equal(ival(a, "due"), NOW);
	assert_false(json_is_true(json_object_get(a, "held")));
	assert_int_equal(ival(a, "count"), 1);
	json_decref(a);
	/* the next one within it: one alert held for the window's end */
	reply_at(to, "c2@x.test", "two\r\n", NOW + 10, &res);
	assert_true(res.alert_held);
	cp_strlcpy(held1, res.inbox_id, sizeof(held1));
	/* the ones after that are folded into it */
	reply_at(to, "c3@x.test", "three\r\n", NOW + 20, &res);
	assert_true(res.alert_held);
	assert_null(alert_of(res.inbox_id));
	reply_at(to, "c4@x.test", "four\r\n", NOW + 30, &res);
	assert_int_equal(deliveries("alert:"), 2);
	assert_non_null(a = alert_of(held1));
	assert_true(json_is_true(json_object_get(a, "held")));
	assert_int_equal(ival(a, "due"), NOW + W);
	assert_int_equal(ival(a, "count"), 3);
	assert_string_equal(json_string_value(json_object_get(a, "state")), "queued");
	assert_int_equal(json_array_size(json_object_get(a, "recipients")), 2);
	assert_false(json_is_true(json_object_get(a, "urgent")));

	/* urgent replies are counted apart: never held behind normal ones */
	reply_at(to, "u1@x.test", "urgent, please\r\n", NOW + 40, &res);
	assert_true(res.urgent);
	assert_false(res.alert_held);
	reply_at(to, "u2@x.test", "urgent again\r\n", NOW + 50, &res);
	assert_true(res.alert_held);
	/* another department has a window of its own */
	reply_at(gto, "g1@x.test", "hello\r\n", NOW + 60, &res);
	assert_false(res.alert_held);
	assert_int_equal(deliveries("alert:"), 5);
	assert_int_equal(store_get_json(fx.store, DB_ACKS, "alert/cardio/normal", &st, NULL), 0);
	assert_int_equal(ival(st, "until"), NOW + 2 * W);
	json_decref(st);
	assert_int_equal(store_get_json(fx.store, DB_ACKS, "alert/general/normal", &st, NULL), 0);
	assert_int_equal(ival(st, "until"), NOW + 60 + W);
	json_decref(st);

	/* once the held alert has gone out (at NOW + W), a reply in the
	 * window after it is held for that window's end */
	mark_sent(a);
	json_decref(a);
	reply_at(to, "c5@x.test", "five\r\n", NOW + W + 100, &res);
	assert_true(res.alert_held);
	cp_strlcpy(held2, res.inbox_id, sizeof(held2));
	assert_non_null(a = alert_of(held2));
	assert_int_equal(ival(a, "due"), NOW + 2 * W);
	assert_int_equal(ival(a, "count"), 1);
	/* not yet sent (carepostd down), though due: it still takes replies */
	reply_at(to, "c6@x.test", "six\r\n", NOW + 3 * W, &res);
	assert_true(res.alert_held);
	json_decref(a);
	assert_non_null(a = alert_of(held2));
	assert_int_equal(ival(a, "count"), 2);
	mark_sent(a);
	json_decref(a);
	/* a window after that one: at once again */
	reply_at(to, "c7@x.test", "seven\r\n", NOW + 3 * W, &res);
	assert_false(res.alert_held);
	assert_non_null(a = alert_of(res.inbox_id));
	assert_int_equal(ival(a, "due"), NOW + 3 * W);
	json_decref(a);
	assert_int_equal(deliveries("alert:"), 7);

	/* departments without staff of their own share the window of the
	 * desk they fall back to (general's is open since NOW + 60) */
	{
		char xtok[TOKEN_SIZE], xto[128];

		add_thread("evx", "provider_message", "no-such-desk", NOW + 30 * DAY,
			   NULL, xtok);
		reply_to(xto, sizeof(xto), xtok);
		reply_at(xto, "x1@x.test", "elsewhere\r\n", NOW + 61, &res);
		assert_true(res.alerted);
		assert_true(res.alert_held);
		assert_int_equal(store_get_json(fx.store, DB_ACKS, "alert/no-such-desk/normal",
						&st, NULL), -ENOENT);
	}
}

static void
staff_alerts_of_a_batch_are_coalesced_in_its_transaction(void **state)
{
	struct inbound_result res[4];
	struct cp_error err;
	char tok[TOKEN_SIZE], to[128], id[32];
	char *m[4];
	json_t *a;

	add_thread("ev1", "provider_message", "cardio", NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	inbound_batch_begin(fx.ib);
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "b%d@x.test", i);
		m[i] = message("pat@patients.test", to, "Re", id, NULL, "hi\r\n");
		cp_error_clear(&err);
		assert_int_equal(inbound_ingest(fx.ib, m[i], strlen(m[i]), NOW + i, 0, &res[i],
						&err), 0);
	}
	assert_int_equal(inbound_batch_commit(fx.ib, &err), 0);
	assert_false(res[0].alert_held);
	for (int i = 1; i < 4; i++)
		assert_true(res[i].alerted && res[i].alert_held);
	assert_int_equal(deliveries("alert:"), 2);
	assert_int_equal(deliveries("ack:"), 1);
	assert_non_null(a = alert_of(res[1].inbox_id));
	assert_int_equal(ival(a, "count"), 3);
	json_decref(a);
	for (int i = 0; i < 4; i++) {
		inbound_result_clear(&res[i]);
		free(m[i]);
	}
}

/* Messages whose parse was started ahead (inbound_ahead, as an IMAP batch
 * does) are decided as any; one the batch never came to is forgotten. */
static void
messages_started_ahead_are_decided_as_any(void **state)
{
	struct inbound_result res[3], again;
	struct cp_error err;
	char tok[TOKEN_SIZE], to[128], id[32];
	char *m[3], *left;

	add_thread("ev1", "provider_message", "cardio", NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "h%d@x.test", i);
		m[i] = message("pat@patients.test", to, "Re", id, NULL, "hi ahead\r\n");
	}
	left = message("pat@patients.test", to, "Re", "h9@x.test", NULL, "later\r\n");
	inbound_batch_begin(fx.ib);
	assert_int_equal(inbound_ahead(fx.ib, m[0], strlen(m[0])), 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(inbound_ahead(fx.ib, i < 2 ? m[i + 1] : left,
					       strlen(i < 2 ? m[i + 1] : left)), 1);
		cp_error_clear(&err);
		assert_int_equal(inbound_ingest(fx.ib, m[i], strlen(m[i]), NOW + i, 0,
						&res[i], &err), 0);
	}
	assert_int_equal(inbound_batch_commit(fx.ib, &err), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(res[i].disposition, INBOUND_FILED);
		assert_string_equal(res[i].sender_role, "patient");
		inbound_result_clear(&res[i]);
		free(m[i]);
	}
	assert_int_equal(count(DB_INBOX), 3);
	/* the one started ahead and never ingested: parsed afresh later */
	assert_int_equal(ingest_at(left, NOW + 5, &again), 0);
	assert_int_equal(again.disposition, INBOUND_FILED);
	assert_int_equal(count(DB_INBOX), 4);
	inbound_result_clear(&again);
	free(left);
}

static void
alert_window_0_alerts_every_reply(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128], id[32];

	assert_int_equal(fx.cfg->alert_window, 0);
	add_thread("ev1", "provider_message", "cardio", NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "z%d@x.test", i);
		reply_at(to, id, "hi\r\n", NOW + i, &res);
		assert_false(res.alert_held);
	}
	assert_int_equal(deliveries("alert:"), 3);
	assert_int_equal(count(DB_ACKS), 1);	/* the day's acknowledgement: no alert state */
	assert_int_equal(prefixed(DB_ACKS, "ev1/"), 1);
}

/* ---- forms ---- */

static void
form_replies_parse_fields_and_ask_for_missing_ones(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128];
	char *full, *part;
	json_t *rec, *content;
	char key_[160];

	add_thread("evf", "form_request", NULL, NOW + 30 * DAY,
		   "{\"form_fields\": [{\"name\": \"Pain level\", \"required\": true},"
		   " {\"name\": \"Allergies\", \"required\": true}]}", tok);
	reply_to(to, sizeof(to), tok);
	full = message("pat@patients.test", to, "Re", "f1@x.test", NULL,
		       "pain_level: 4\r\nAllergies: " CANARY "\r\n");
	part = message("pat@patients.test", to, "Re", "f2@x.test", NULL, "Pain level: 2\r\n");
	assert_int_equal(ingest_at(full, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_true(res.form);
	assert_false(res.form_incomplete);
	assert_true(res.acked);
	assert_int_equal(inbox_get(fx.store, "p1", res.inbox_id, &rec, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(rec, "class")), "form");
	assert_true(json_is_true(json_object_get(rec, "form_complete")));
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, rec, &content, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		json_object_get(content, "form"), "values"), "Allergies")), CANARY);
	json_decref(content);
	json_decref(rec);

	/* the same day: missing answers still get their request */
	assert_int_equal(ingest_at(part, NOW + 60, &res), 0);
	assert_true(res.form_incomplete);
	assert_false(res.acked);
	snprintf(key_, sizeof(key_), "formreq:%s", res.inbox_id);
	assert_int_equal(store_get_json(fx.store, DB_DELIVERY, key_, &rec, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(rec, "type")), "form_incomplete");
	json_decref(rec);
	free(part);

	/* ... once a day: another reply still missing answers draws none
	 * (a careless auto-responder would loop, a stolen token flood) */
	part = message("pat@patients.test", to, "Re", "f3@x.test", NULL, "Pain level: 3\r\n");
	assert_int_equal(ingest_at(part, NOW + 120, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_false(res.form_incomplete);
	assert_false(res.acked);
	free(part);
	part = message("pat@patients.test", to, "Re", "f4@x.test", NULL, "Pain level: 1\r\n");
	assert_int_equal(ingest_at(part, NOW + DAY, &res), 0);
	assert_true(res.form_incomplete);
	free(full);
	free(part);
}

/* ---- encryption at rest ---- */

static void
inbox_content_is_encrypted_at_rest_and_metadata_is_phi_free(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128];
	json_t *list, *content, *rec;
	char *m;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	m = message("\"" CANARY "-name\" <pat@patients.test>", to, "Re: " CANARY "-subject",
		    "enc@x.test", NULL, "My " CANARY "-body text\r\n");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_false(file_has(CANARY));
	assert_int_equal(inbox_list(fx.store, "p1", &list, NULL), 0);
	assert_int_equal(json_array_size(list), 1);
	rec = json_array_get(list, 0);
	assert_null(json_object_get(rec, "blob"));
	{
		char *dump = json_dumps(rec, 0);

		assert_null(strstr(dump, CANARY));
		assert_null(strstr(dump, "patients.test"));
		free(dump);
	}
	json_decref(list);
	assert_int_equal(inbox_get(fx.store, "p1", res.inbox_id, &rec, NULL), 0);
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, rec, &content, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(content, "subject")),
			    "Re: " CANARY "-subject");
	assert_string_equal(json_string_value(json_object_get(content, "text")),
			    "My " CANARY "-body text");
	json_decref(content);
	json_decref(rec);
	free(m);
}

static void
inbox_records_are_format_2_bound_to_their_key_and_old_ones_still_open(void **state)
{
	static const char old_content[] = "{\"subject\":\"old " CANARY "\",\"text\":\"t\"}";
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128];
	struct buf armor = BUF_INIT;
	struct cp_error err;
	json_t *rec, *moved, *content, *old;
	char *m;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	m = message("pat@patients.test", to, "Re: " CANARY "-s", "fmt@x.test", NULL,
		    "Body " CANARY "-b\r\n");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_false(file_has(CANARY));
	assert_int_equal(inbox_get(fx.store, "p1", res.inbox_id, &rec, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(rec, "format")), INBOX_FORMAT);
	assert_int_equal(strlen(json_string_value(json_object_get(rec, "dek"))), 16);
	/* AES-GCM in base64, not format 1's armored gpg message */
	{
		const char *blob = json_string_value(json_object_get(rec, "blob"));

		assert_non_null(blob);
		assert_true(strlen(blob) > 0 && strlen(blob) % 4 == 0);
		assert_int_equal(strspn(blob, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					"abcdefghijklmnopqrstuvwxyz0123456789+/="),
				 strlen(blob));
	}
	/* format 2 needs the data keys */
	cp_error_clear(&err);
	assert_int_equal(inbox_open(fx.pgp, NULL, rec, &content, &err), -EINVAL);
	/* the blob copied into another patient's record does not open there */
	moved = json_deep_copy(rec);
	json_object_set_new(moved, "patient", json_string("p2"));
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, moved, &content, &err), -EBADMSG);
	json_object_set_new(moved, "patient", json_string("p1"));
	json_object_set_new(moved, "id", json_string("m0000000000-00000000"));
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, moved, &content, &err), -EBADMSG);
	json_object_set_new(moved, "format", json_integer(3));
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, moved, &content, &err),
			 -EPROTONOSUPPORT);
	json_decref(moved);
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, rec, &content, &err), 0);
	assert_string_equal(json_string_value(json_object_get(content, "subject")),
			    "Re: " CANARY "-s");
	json_decref(content);

	/* a record written before format 2: blob armored to the store key */
	cp_error_clear(&err);
	assert_int_equal(pgp_encrypt_to(fx.pgp, fx.clinic, old_content, strlen(old_content),
					&armor, &err), 0);
	old = json_deep_copy(rec);
	json_object_del(old, "format");
	json_object_del(old, "dek");
	json_object_set_new(old, "id", json_string("m0000000001-0000000a"));
	json_object_set_new(old, "blob", json_stringn(armor.data, armor.len));
	assert_int_equal(store_put_json(fx.store, DB_INBOX, "p1/m0000000001-0000000a", old,
					NULL), 0);
	json_decref(old);
	json_decref(rec);
	assert_int_equal(inbox_get(fx.store, "p1", "m0000000001-0000000a", &rec,
					   NULL), 0);
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, rec, &content, &err), 0);
	assert_string_equal(json_string_value(json_object_get(content, "subject")),
			    "old " CANARY);
	json_decref(content);
	assert_int_equal(inbox_open(fx.pgp, NULL, rec, &content, &err), 0);
	json_decref(content);
	json_decref(rec);
	/* both listed, oldest first */
	assert_int_equal(inbox_list(fx.store, "p1", &rec, NULL), 0);
	assert_int_equal(json_array_size(rec), 2);
	json_decref(rec);
	buf_free(&armor);
	free(m);
}

/* ---- reading back ---- */

static void
put_record(enum store_db db, const char *id, const char *blob)
{
	json_t *v = json_pack("{s:s, s:s}", "id", id, "blob", blob);

	assert_int_equal(store_put_json(fx.store, db, id, v, NULL), 0);
	json_decref(v);
}

static const char *
member(json_t *list, size_t i, const char *name)
{
	return json_string_value(json_object_get(json_array_get(list, i), name));
}

static void
inbox_list_and_clinic_queue_read_one_owner_by_key_prefix(void **state)
{
	struct cp_error err;
	json_t *list;

	put_record(DB_INBOX, "p1/m2", "b");
	put_record(DB_INBOX, "p10/m1", "b");
	put_record(DB_INBOX, "p1/m1", "b");
	put_record(DB_INBOX, "p2/m1", "b");
	put_record(DB_CLINIC, "general/m1", "b");
	put_record(DB_CLINIC, "gen/m2", "b");
	put_record(DB_CLINIC, "cardio/m3", "b");

	/* One patient's records, in key order, without their blobs. */
	assert_int_equal(inbox_list(fx.store, "p1", &list, NULL), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(member(list, 0, "id"), "p1/m1");
	assert_string_equal(member(list, 1, "id"), "p1/m2");
	assert_null(json_object_get(json_array_get(list, 0), "blob"));
	assert_null(json_object_get(json_array_get(list, 0), "department"));
	json_decref(list);
	assert_int_equal(inbox_list(fx.store, "p3", &list, NULL), 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	/* One department's queue, or all of it, each with its department. */
	assert_int_equal(inbox_clinic_queue(fx.store, "general", &list, NULL), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(member(list, 0, "id"), "general/m1");
	assert_string_equal(member(list, 0, "department"), "general");
	json_decref(list);
	assert_int_equal(inbox_clinic_queue(fx.store, NULL, &list, NULL), 0);
	assert_int_equal(json_array_size(list), 3);
	assert_string_equal(member(list, 0, "department"), "cardio");
	assert_string_equal(member(list, 1, "department"), "gen");
	assert_string_equal(member(list, 2, "department"), "general");
	assert_string_equal(member(list, 2, "blob"), "b");
	json_decref(list);

	/* Not an id: refused before the store is read. */
	cp_error_clear(&err);
	list = NULL;
	assert_int_equal(inbox_list(fx.store, "p1/m", &list, &err), -EINVAL);
	assert_int_equal(inbox_list(fx.store, NULL, &list, &err), -EINVAL);
	assert_int_equal(inbox_clinic_queue(fx.store, "", &list, &err), -EINVAL);
	assert_null(list);
}

/* ---- infrastructure failures ---- */

static void
infrastructure_failures_return_errors_and_do_not_quarantine(void **state)
{
	struct inbound_result res;
	struct cp_error err;
	char tok[TOKEN_SIZE], to[128];
	char *m;

	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	m = message("pat@patients.test", to, "Re", "infra@x.test", NULL, "hi\r\n");
	/* the store key is not in the keyring: gpg cannot encrypt */
	config_free(fx.cfg);
	open_config(NULL, "0000111122223333444455556666777788889999");
	open_inbound();
	cp_error_clear(&err);
	assert_true(inbound_ingest(fx.ib, m, strlen(m), NOW, 0, &res, &err) < 0);
	assert_true(err.text[0] != '\0');
	assert_int_equal(count(DB_SEEN), 0);
	assert_int_equal(count(DB_INBOX), 0);
	assert_int_equal(deliveries(""), 0);
	/* no token key (a real run, not a dry run): an error, not a quarantine */
	inbound_free(fx.ib);
	assert_int_equal(inbound_new(fx.cfg, fx.store, NULL, 0, &fx.ib, &err), 0);
	assert_true(inbound_ingest(fx.ib, m, strlen(m), NOW, 0, &res, &err) < 0);
	assert_int_equal(count(DB_SEEN), 0);
	/* fixed: the retry files it (it was never "seen") */
	config_free(fx.cfg);
	open_config(NULL, NULL);
	open_inbound();
	assert_int_equal(ingest_at(m, NOW + 60, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	free(m);
}

/* ---- bounces ---- */

/* put_delivery - a sent delivery record: to the patient (r0) and proxy (r1). */
static void
put_delivery(const char *id)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}",
			      "id", id, "type", "test_result", "patient", "p1", "state", "sent",
			      "recipients", "ref", "patient", "mode", "notice", "state", "sent",
			      "ref", "proxy:0", "mode", "notice", "state", "sent");

	assert_int_equal(store_put_json(fx.store, DB_DELIVERY, id, d, NULL), 0);
	json_decref(d);
}

/* genuine_ids - the Message-ID (without <>) and VERP carepost sent recipient n of event_id with. */
static void
genuine_ids(const char *event_id, const char *tok, size_t n, char msgid[96], char verp[128])
{
	uint8_t th[TOKEN_THREAD_BYTES];
	char hex[2 * TOKEN_THREAD_BYTES + 1], tag[TOKEN_TAG_SIZE], bracketed[96];

	token_thread_from_id(event_id, th);
	cp_hex(th, sizeof(th), hex);
	assert_int_equal(outbound_message_id(key, sizeof(key) - 1, hex, n, "clinic.test",
					     bracketed, sizeof(bracketed)), 0);
	assert_int_equal(bracketed[0], '<');
	snprintf(msgid, 96, "%.*s", (int)strlen(bracketed) - 2, bracketed + 1);
	assert_int_equal(token_rcpt_tag(key, sizeof(key) - 1, TOKEN_LABEL_VERP, th, n, tag), 0);
	snprintf(verp, 128, "bounce+%s.r%zu.%s@bounce.clinic.test", tok, n, tag);
	/* RFC 5321: a local part is at most 64 octets */
	assert_true(strchr(verp, '@') - verp <= 64);
}

static char *
dsn(const char *to, const char *action, const char *status, const char *final,
    const char *orig_id, const char *msgid)
{
	char *s;

	if (asprintf(&s, "From: MAILER-DAEMON@mx.test\r\nTo: %s\r\nSubject: bounce\r\n"
		     "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n"
		     "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
		     "\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
		     "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
		     "Reporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; %s\r\n"
		     "Action: %s\r\nStatus: %s\r\n\r\n"
		     "--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <%s>\r\n\r\n"
		     "--b--\r\n", to, msgid, final, action, status, orig_id) < 0)
		return NULL;
	return s;
}

static void
bounces_map_through_verp_or_message_id_to_address_and_recipient(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], verp[128], orig[96];
	json_t *b, *d;
	char *hard, *soft1, *soft2, *wrong;

	put_delivery("ev1");
	add_thread("ev1", "test_result", NULL, NOW + 30 * DAY, NULL, tok);
	genuine_ids("ev1", tok, 0, orig, verp);

	/* soft, by Message-ID alone, twice */
	soft1 = dsn("postmaster@clinic.test", "delayed", "4.2.2", "pat@patients.test", orig, "s1@mx");
	soft2 = dsn("postmaster@clinic.test", "delayed", "4.2.2", "pat@patients.test", orig, "s2@mx");
	assert_int_equal(ingest_at(soft1, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_BOUNCE_RECORDED);
	assert_int_equal(ingest_at(soft2, NOW, &res), 0);
	assert_int_equal(store_get_json(fx.store, DB_BOUNCES, "pat@patients.test", &b, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(b, "state")), "soft");
	assert_int_equal(json_integer_value(json_object_get(b, "soft_count")), 2);
	json_decref(b);

	/* hard, through the VERP (expired tokens still count for bounces) */
	hard = dsn(verp, "failed", "5.1.1", "whatever@else.test", "unrelated@x", "h1@mx");
	assert_int_equal(ingest_at(hard, NOW + 40 * DAY, &res), 0);
	assert_int_equal(res.disposition, INBOUND_BOUNCE_RECORDED);
	assert_string_equal(res.event, "ev1");
	assert_int_equal(store_get_json(fx.store, DB_BOUNCES, "pat@patients.test", &b, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(b, "state")), "invalid");
	assert_string_equal(json_string_value(json_object_get(b, "status")), "5.1.1");
	json_decref(b);
	assert_int_equal(store_get_json(fx.store, DB_DELIVERY, "ev1", &d, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(d, "recipients"), 0), "state")), "bounced");
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(d, "recipients"), 0), "dsn_status")), "5.1.1");
	json_decref(d);

	assert_false(res.auth_refusal);

	/* refused later for the sender's authentication (Gmail's 5.7.26):
	 * recorded, and said to be the admin's to mend */
	{
		char *auth = dsn(verp, "failed", "5.7.26", "pat@patients.test", "unrelated@x",
				 "h2@mx");

		assert_int_equal(ingest_at(auth, NOW, &res), 0);
		assert_int_equal(res.disposition, INBOUND_BOUNCE_RECORDED);
		assert_true(res.auth_refusal);
		free(auth);
	}

	/* a vacation responder answering the envelope sender is no bounce */
	{
		char *vac = message("pat@patients.test", verp, "Out of office", "v1@x.test",
				    "Auto-Submitted: auto-replied\r\n", "away\r\n");

		assert_int_equal(ingest_at(vac, NOW, &res), 0);
		assert_int_equal(res.disposition, INBOUND_AUTOREPLY_DISCARDED);
		free(vac);
	}

	/* a Message-ID with someone else's address maps to nothing */
	wrong = dsn("postmaster@clinic.test", "failed", "5.1.1", "victim@else.test", orig, "w1@mx");
	assert_int_equal(ingest_at(wrong, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_false(res.forged);
	assert_non_null(strstr(res.reason, "another address"));
	free(hard);
	free(soft1);
	free(soft2);
	free(wrong);
}

static void
forged_bounces_are_quarantined_counted_and_change_nothing(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], verp0[128], verp1[128], orig0[96], orig1[96];
	char hex[2 * TOKEN_THREAD_BYTES + 1], old_mid[96], old_verp[128];
	char flipped_mid[96], flipped_verp[128], other_index[128], msgid_tag_as_verp[128];
	uint8_t th[TOKEN_THREAD_BYTES];
	json_t *b, *d;
	char *m;
	struct {
		const char *to, *orig;
	} forged[7];

	put_delivery("ev1");
	add_thread("ev1", "test_result", NULL, NOW + 30 * DAY, NULL, tok);
	genuine_ids("ev1", tok, 0, orig0, verp0);
	genuine_ids("ev1", tok, 1, orig1, verp1);
	token_thread_from_id("ev1", th);
	cp_hex(th, sizeof(th), hex);

	/* what anyone who can guess the event id computes (the old form) */
	snprintf(old_mid, sizeof(old_mid), "%s.r0@clinic.test", hex);
	/* the old VERP: a valid token, no tag */
	snprintf(old_verp, sizeof(old_verp), "bounce+%s.r0@bounce.clinic.test", tok);
	/* the proxy (r1) knows its own VERP: a valid token and tag, index 0 */
	snprintf(other_index, sizeof(other_index), "%s", verp1);
	other_index[strlen("bounce+") + TOKEN_SIZE - 1 + 2] = '0';
	assert_non_null(strstr(other_index, ".r0."));
	/* one character of a genuine tag changed */
	snprintf(flipped_mid, sizeof(flipped_mid), "%s", orig0);
	flipped_mid[strchr(flipped_mid, '@') - flipped_mid - 1] ^= 1;
	snprintf(flipped_verp, sizeof(flipped_verp), "%s", verp0);
	flipped_verp[strchr(flipped_verp, '@') - flipped_verp - 1] ^= 1;
	/* the Message-ID's tag is no VERP tag */
	snprintf(msgid_tag_as_verp, sizeof(msgid_tag_as_verp), "bounce+%s.r0.%.10s@bounce.clinic.test",
		 tok, strchr(orig0, '@') - TOKEN_TAG_CHARS);

	forged[0] = (typeof(forged[0])){ "postmaster@clinic.test", old_mid };
	forged[1] = (typeof(forged[0])){ old_verp, "unrelated@x" };
	forged[2] = (typeof(forged[0])){ other_index, "unrelated@x" };
	forged[3] = (typeof(forged[0])){ "postmaster@clinic.test", flipped_mid };
	forged[4] = (typeof(forged[0])){ flipped_verp, "unrelated@x" };
	forged[5] = (typeof(forged[0])){ msgid_tag_as_verp, "unrelated@x" };
	forged[6] = (typeof(forged[0])){ "bounce+anything@bounce.clinic.test", old_mid };
	for (size_t i = 0; i < CP_ARRAY_SIZE(forged); i++) {
		char id[32];

		snprintf(id, sizeof(id), "f%zu@mx", i);
		m = dsn(forged[i].to, "failed", "5.1.1", "pat@patients.test", forged[i].orig, id);
		assert_int_equal(ingest_at(m, NOW, &res), 0);
		if (res.disposition != INBOUND_QUARANTINED || !res.forged)
			fail_msg("case %zu: %s (%s)", i, inbound_disposition_name(res.disposition),
				 res.reason);
		assert_int_equal(res.folder, INBOUND_FOLDER_QUARANTINE);
		assert_string_equal(res.reason,
				    "delivery report names no message carepost sent: ignored");
		assert_string_equal(res.event, "");
		free(m);
	}
	/* the patient's address and the delivery record are untouched */
	assert_int_equal(store_get_json(fx.store, DB_BOUNCES, "pat@patients.test", &b, NULL),
			 -ENOENT);
	assert_int_equal(count(DB_BOUNCES), 0);
	assert_int_equal(store_get_json(fx.store, DB_DELIVERY, "ev1", &d, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(d, "recipients"), 0), "state")), "sent");
	json_decref(d);

	/* the genuine ones still count: the proxy's through its VERP, the
	 * patient's through its Message-ID, in upper case */
	m = dsn(verp1, "failed", "5.1.1", "prox@proxies.test", "unrelated@x", "g1@mx");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_BOUNCE_RECORDED);
	assert_false(res.forged);
	free(m);
	for (char *p = orig0; *p != '@'; p++)
		*p = (char)toupper((unsigned char)*p);
	m = dsn("postmaster@clinic.test", "failed", "5.1.1", "pat@patients.test", orig0, "g2@mx");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_BOUNCE_RECORDED);
	free(m);
	assert_int_equal(store_get_json(fx.store, DB_BOUNCES, "pat@patients.test", &b, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(b, "state")), "invalid");
	json_decref(b);
	assert_int_equal(store_get_json(fx.store, DB_BOUNCES, "prox@proxies.test", &b, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(b, "state")), "invalid");
	json_decref(b);
	(void)orig1;
}

/* ---- feedback reports (complaints) ---- */

/* put_typed - a sent delivery record of type: to the patient (r0) and proxy (r1). */
static void
put_typed(const char *id, const char *type)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}",
			      "id", id, "type", type, "patient", "p1", "state", "sent",
			      "recipients", "ref", "patient", "mode", "notice", "state", "sent",
			      "ref", "proxy:0", "mode", "notice", "state", "sent");

	assert_int_equal(store_put_json(fx.store, DB_DELIVERY, id, d, NULL), 0);
	json_decref(d);
}

/* sent_event - a delivery record and thread of type, as carepost left them
 * after sending event_id (to the patient, r0, and proxy, r1), and what
 * recipient 0's message went out with: its reply token, Message-ID, VERP. */
static void
sent_event(const char *event_id, const char *type, const char *dept,
	   char tok[TOKEN_SIZE], char msgid[96], char verp[128])
{
	put_typed(event_id, type);
	add_thread(event_id, type, dept, NOW + 30 * DAY, NULL, tok);
	genuine_ids(event_id, tok, 0, msgid, verp);
}

/*
 * arf_report - an RFC 5965 report as a feedback loop sends it: fields
 * (each NULL is left out), and the reported message's header with its
 * Return-Path and Message-ID when given.
 */
struct arf_in {
	const char *to;			/* where the report came to */
	const char *type;		/* Feedback-Type */
	const char *mail_from;		/* Original-Mail-From */
	const char *rcpt_to;		/* Original-Rcpt-To */
	int redacted;			/* Redacted-Address */
	const char *orig_id;		/* the reported Message-ID */
	const char *return_path;	/* the reported Return-Path */
	const char *id;			/* the report's own Message-ID */
};

static char *
arf_report(const struct arf_in *a)
{
	char *s;

	if (asprintf(&s, "From: Mail AntiSpam Feedback <feedback@arf.mail.example>\r\n"
		     "To: %s\r\nSubject: FW: reminder\r\nMessage-ID: <%s>\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n"
		     "\r\n--b\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report\r\n"
		     "--b\r\nContent-Type: message/feedback-report\r\n\r\n"
		     "%s%s%sUser-Agent: Example-FBL/1.0\r\nVersion: 1\r\n%s%s%s%s%s%s%s"
		     "--b\r\nContent-Type: message/rfc822\r\n\r\n%s%s%s%s%s%s"
		     "From: clinic@clinic.test\r\nTo: redacted@patients.test\r\n"
		     "Subject: reminder\r\n\r\nbody\r\n--b--\r\n",
		     a->to, a->id,
		     a->type ? "Feedback-Type: " : "", a->type ? a->type : "", a->type ? "\r\n" : "",
		     a->mail_from ? "Original-Mail-From: <" : "", a->mail_from ? a->mail_from : "",
		     a->mail_from ? ">\r\n" : "",
		     a->rcpt_to ? "Original-Rcpt-To: " : "", a->rcpt_to ? a->rcpt_to : "",
		     a->rcpt_to ? "\r\n" : "", a->redacted ? "Redacted-Address: redacted\r\n" : "",
		     a->return_path ? "Return-Path: <" : "", a->return_path ? a->return_path : "",
		     a->return_path ? ">\r\n" : "",
		     a->orig_id ? "Message-ID: <" : "", a->orig_id ? a->orig_id : "",
		     a->orig_id ? ">\r\n" : "") < 0)
		return NULL;
	return s;
}

/* report_in - ingest a report; its result (reason kept in res). */
static void
report_in(const struct arf_in *a, struct inbound_result *res)
{
	char *m = arf_report(a);

	assert_non_null(m);
	assert_int_equal(ingest_at(m, NOW, res), 0);
	free(m);
}

/* optouts - the opt-out list of the patient (proxy < 0) or a proxy, as "a,b". */
static void
optouts(int proxy, char *out, size_t n)
{
	json_t *p, *list;
	size_t i;
	json_t *v;

	out[0] = '\0';
	assert_int_equal(store_get_json(fx.store, DB_PATIENTS, "p1", &p, NULL), 0);
	list = proxy < 0 ? json_object_get(p, "optout") :
	       json_object_get(json_array_get(json_object_get(p, "proxies"), (size_t)proxy),
			       "optout");
	json_array_foreach(list, i, v)
		snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "," : "",
			 json_string_value(v));
	json_decref(p);
}

struct line_find {
	const char *event;
	size_t n;
	json_t *found;			/* the last one */
};

static int
each_line(void *ud, const char *k, size_t klen, json_t *v)
{
	struct line_find *l = ud;
	const char *ev = json_string_value(json_object_get(v, "event"));
	const char *cl = json_string_value(json_object_get(v, "class"));

	if (ev && strcmp(ev, l->event) == 0 && cl && strcmp(cl, "complaint") == 0) {
		l->n++;
		json_decref(l->found);
		l->found = json_incref(v);
		/* its key is DEPARTMENT/ID, and ID is what the entry lists */
		assert_true(klen > 8 && memcmp(k, "general/c", 9) == 0);
		assert_memory_equal(k + 8, json_string_value(json_object_get(v, "inbox_id")),
				    klen - 8);
	}
	return 0;
}

/* clinic_lines - how many complaint entries the clinic queue has for
 * event; *last the last one (a reference), or NULL. */
static size_t
clinic_lines(const char *event, json_t **last)
{
	struct line_find l = { event, 0, NULL };

	assert_int_equal(store_foreach(fx.store, DB_CLINIC, each_line, &l, NULL), 0);
	if (last)
		*last = l.found;
	else
		json_decref(l.found);
	return l.n;
}

/* rcpt_field - recipient n's field of delivery id, as a string ("" when absent). */
static void
rcpt_field(const char *id, size_t n, const char *field, char *out, size_t outlen)
{
	json_t *d, *v;

	assert_int_equal(store_get_json(fx.store, DB_DELIVERY, id, &d, NULL), 0);
	v = json_object_get(json_array_get(json_object_get(d, "recipients"), n), field);
	if (json_is_string(v))
		snprintf(out, outlen, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
	else
		snprintf(out, outlen, "%s", "");
	json_decref(d);
}

static void
complaints_stop_subscription_mail_and_show_the_rest_to_staff(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], verp0[128], verp1[128], orig0[96], orig1[96], buf[128];
	struct arf_in a;
	json_t *line;

	sent_event("evr", "checkup_reminder", NULL, tok, orig0, verp0);
	genuine_ids("evr", tok, 1, orig1, verp1);

	/* Yahoo-like: the recipient redacted, the reported message's
	 * Message-ID the only way back */
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .redacted = 1,
			     .rcpt_to = "5f3a9c@patients.test", .orig_id = orig0, .id = "r1@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res.folder, INBOUND_FOLDER_PROCESSED);
	assert_int_equal(res.class, INMSG_COMPLAINT);
	assert_int_equal(res.feedback, METRICS_FB_OPTED_OUT);
	assert_string_equal(res.reason, "complaint: patient opted out of the category");
	assert_string_equal(res.event, "evr");
	assert_string_equal(res.patient, "p1");
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "recalls");
	optouts(0, buf, sizeof(buf));
	assert_string_equal(buf, "");		/* the proxy did not complain */
	rcpt_field("evr", 0, "feedback_type", buf, sizeof(buf));
	assert_string_equal(buf, "abuse");
	rcpt_field("evr", 0, "complained_at", buf, sizeof(buf));
	assert_int_equal(atoll(buf), NOW);
	assert_int_equal(clinic_lines("evr", &line), 1);
	assert_string_equal(json_string_value(json_object_get(line, "opted_out")), "recalls");
	assert_string_equal(json_string_value(json_object_get(line, "event_type")),
			    "checkup_reminder");
	assert_string_equal(json_string_value(json_object_get(line, "feedback_type")), "abuse");
	assert_string_equal(json_string_value(json_object_get(line, "sender_role")), "patient");
	assert_string_equal(json_string_value(json_object_get(line, "state")), "new");
	json_decref(line);
	/* nothing of the report's addresses is kept */
	assert_false(file_has("5f3a9c"));
	assert_false(file_has("arf.mail.example"));

	/* the same message reported again (feedback loops resend): nothing new */
	a.id = "r2@fbl";
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res.feedback, METRICS_FB_REPEAT);
	assert_int_equal(clinic_lines("evr", NULL), 1);

	/* the proxy's copy, through the VERP it was sent from (Microsoft
	 * JMRP-like: Original-Mail-From, the recipient unredacted) */
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse",
			     .mail_from = verp1 + 0, .rcpt_to = "prox@proxies.test",
			     .id = "r3@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res.feedback, METRICS_FB_OPTED_OUT);
	assert_string_equal(res.reason, "complaint: proxy opted out of the category");
	assert_string_equal(res.sender_role, "proxy");
	optouts(0, buf, sizeof(buf));
	assert_string_equal(buf, "recalls");
	assert_int_equal(clinic_lines("evr", NULL), 2);

	/* transactional mail: shown to staff, never stopped */
	sent_event("evt", "test_result", "cardio", tok, orig0, verp0);
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .redacted = 1,
			     .orig_id = orig0, .id = "r4@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res.feedback, METRICS_FB_SHOWN);
	assert_string_equal(res.reason, "complaint about transactional mail: shown to staff, "
			    "nothing stopped");
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "recalls");
	assert_int_equal(clinic_lines("evt", &line), 1);
	assert_null(json_object_get(line, "opted_out"));
	assert_string_equal(json_string_value(json_object_get(line, "event_type")), "test_result");
	json_decref(line);

	/* a security notice, sent back to the bounce address it came from */
	sent_event("evs", "contact_info_changed", NULL, tok, orig0, verp0);
	a = (struct arf_in){ .to = verp0, .type = "fraud", .id = "r5@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.feedback, METRICS_FB_SHOWN);
	assert_non_null(strstr(res.reason, "security notice"));
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "recalls");

	/* not-spam: nothing changes; auth-failure: the admin's to mend */
	sent_event("evr2", "immunization_reminder", NULL, tok, orig0, verp0);
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "not-spam", .orig_id = orig0,
			     .id = "r6@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res.feedback, METRICS_FB_NO_CHANGE);
	assert_int_equal(clinic_lines("evr2", NULL), 0);
	rcpt_field("evr2", 0, "complained_at", buf, sizeof(buf));
	assert_string_equal(buf, "");
	a.type = "auth-failure";
	a.id = "r7@fbl";
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res.feedback, METRICS_FB_AUTH_FAILURE);
	assert_non_null(strstr(res.reason, "DKIM"));

	/* a copy forwarded to another mailbox is not the recipient's
	 * complaint: the report names it unredacted, in another domain */
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .orig_id = orig0,
			     .rcpt_to = "someone@elsewhere.test", .id = "r8@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_int_equal(res.feedback, METRICS_FB_UNMAPPED);
	assert_non_null(strstr(res.reason, "another mailbox"));
	rcpt_field("evr2", 0, "complained_at", buf, sizeof(buf));
	assert_string_equal(buf, "");
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "recalls");
	(void)orig1;
}

static void
forged_and_malformed_feedback_reports_are_quarantined(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], verp0[128], orig0[96], hex[2 * TOKEN_THREAD_BYTES + 1];
	char old_mid[96], flipped[96], buf[128];
	uint8_t th[TOKEN_THREAD_BYTES];
	struct arf_in a;
	char *m;

	sent_event("evr", "checkup_reminder", NULL, tok, orig0, verp0);
	token_thread_from_id("evr", th);
	cp_hex(th, sizeof(th), hex);
	snprintf(old_mid, sizeof(old_mid), "%s.r0@clinic.test", hex);
	snprintf(flipped, sizeof(flipped), "%s", orig0);
	flipped[strchr(flipped, '@') - flipped - 1] ^= 1;

	/* forged: what anyone who guesses an event id makes, a tag changed */
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .orig_id = old_mid,
			     .id = "f1@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_true(res.forged);
	assert_int_equal(res.feedback, METRICS_FB_FORGED);
	assert_string_equal(res.reason, "feedback report names no message carepost sent: ignored");
	a.orig_id = flipped;
	a.id = "f2@fbl";
	report_in(&a, &res);
	assert_int_equal(res.feedback, METRICS_FB_FORGED);
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse",
			     .return_path = "bounce+xyz.r0.abc@bounce.clinic.test", .id = "f3@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_int_equal(res.feedback, METRICS_FB_FORGED);

	/* malformed: no Feedback-Type; nothing that names a message */
	a = (struct arf_in){ .to = "fbl@clinic.test", .orig_id = orig0, .id = "f4@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_int_equal(res.class, INMSG_COMPLAINT);
	assert_string_equal(res.reason, "feedback report without a Feedback-Type: malformed");
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .id = "f5@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_non_null(strstr(res.reason, "without the reported message's Message-ID"));

	/* a report for mail of an event no longer stored */
	genuine_ids("gone", tok, 0, buf, verp0);
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .orig_id = buf,
			     .id = "f6@fbl" };
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_false(res.forged);

	/* a report that is not the message itself (attached to another)
	 * is no report: no opt-out through a patient's forwarded mail */
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .orig_id = orig0,
			     .id = "f7@fbl" };
	m = arf_report(&a);
	{
		char *outer;

		assert_true(asprintf(&outer, "From: x@patients.test\r\nTo: fbl@clinic.test\r\n"
				     "Message-ID: <f8@x>\r\nMIME-Version: 1.0\r\n"
				     "Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n"
				     "--o\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
				     "--o\r\n%s\r\n--o--\r\n", strstr(m, "Content-Type: multipart/report")) > 0);
		assert_int_equal(ingest_at(outer, NOW, &res), 0);
		assert_int_equal(res.disposition, INBOUND_QUARANTINED);
		assert_int_equal(res.class, INMSG_UNKNOWN);
		free(outer);
	}
	free(m);

	/* nothing of it changed the patient, the record or the clinic queue */
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "");
	rcpt_field("evr", 0, "complained_at", buf, sizeof(buf));
	assert_string_equal(buf, "");
	assert_int_equal(clinic_lines("evr", NULL), 0);
}

static void
complaints_stop_no_transactional_mail_and_no_one_else(void **state)
{
	struct inbound_result res[2];
	struct cp_error err;
	char tok[TOKEN_SIZE], verp0[128], orig0[96], buf[128];
	struct arf_in a;
	char *m[2];

	/* an appointment reminder is transactional: its old mailto stopped
	 * recalls, a complaint about it stops nothing */
	sent_event("eva", "appointment_reminder", NULL, tok, orig0, verp0);
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .orig_id = orig0,
			     .id = "t1@fbl" };
	report_in(&a, &res[0]);
	assert_int_equal(res[0].feedback, METRICS_FB_SHOWN);
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "");

	/* a virus report first does not keep a later complaint from counting */
	sent_event("evr", "checkup_reminder", NULL, tok, orig0, verp0);
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "virus", .orig_id = orig0,
			     .id = "t2@fbl" };
	report_in(&a, &res[0]);
	assert_int_equal(res[0].disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res[0].feedback, METRICS_FB_NO_CHANGE);
	assert_int_equal(clinic_lines("evr", NULL), 0);

	/* redacted (a hashed local part), but in another domain: a copy
	 * forwarded elsewhere, not the recipient's complaint */
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .orig_id = orig0,
			     .redacted = 1, .rcpt_to = "8c1e0a@elsewhere.test", .id = "t3@fbl" };
	report_in(&a, &res[0]);
	assert_int_equal(res[0].disposition, INBOUND_QUARANTINED);
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "");

	/* an authentication failure report must name a message carepost
	 * sent too: one naming nothing is no alarm */
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "auth-failure",
			     .id = "t4@fbl" };
	report_in(&a, &res[0]);
	assert_int_equal(res[0].disposition, INBOUND_QUARANTINED);
	assert_int_equal(res[0].feedback, METRICS_FB_UNMAPPED);

	/* two reports about one message in one batch: one complaint, one
	 * repeat, whatever each was decided before the transaction */
	inbound_batch_begin(fx.ib);
	for (int i = 0; i < 2; i++) {
		char id[32];

		snprintf(id, sizeof(id), "t5-%d@fbl", i);
		a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse",
				     .orig_id = orig0, .id = id };
		m[i] = arf_report(&a);
		cp_error_clear(&err);
		assert_int_equal(inbound_ingest(fx.ib, m[i], strlen(m[i]), NOW, 0, &res[i],
						&err), 0);
	}
	assert_int_equal(inbound_batch_commit(fx.ib, &err), 0);
	assert_int_equal(res[0].feedback, METRICS_FB_OPTED_OUT);
	assert_int_equal(res[1].feedback, METRICS_FB_REPEAT);
	assert_non_null(strstr(res[1].reason, "complained of before"));
	assert_int_equal(clinic_lines("evr", NULL), 1);
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "recalls");
	for (int i = 0; i < 2; i++) {
		inbound_result_clear(&res[i]);
		free(m[i]);
	}
}

static void
require_dmarc_asks_the_report_to_come_from_its_provider(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], verp0[128], orig0[96], buf[128], *m, *signed_m;
	struct arf_in a;

	sent_event("evr", "checkup_reminder", NULL, tok, orig0, verp0);
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .orig_id = orig0,
			     .id = "d1@fbl" };
	/* whoever holds a copy of the message: no DMARC pass */
	report_in(&a, &res);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_non_null(strstr(res.reason, "DMARC pass from the trusted server"));
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "");
	/* the provider's loop, vouched for by the trusted server */
	a.id = "d2@fbl";
	m = arf_report(&a);
	assert_true(asprintf(&signed_m, "Authentication-Results: mx.clinic.test; "
			     "dmarc=pass header.from=arf.mail.example\r\n%s", m) > 0);
	assert_int_equal(ingest_at(signed_m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res.feedback, METRICS_FB_OPTED_OUT);
	free(m);
	free(signed_m);
}

static int
setup_reporters(void **state)
{
	return setup_with("trusted_authserv_id = mx.clinic.test\n"
			  "feedback_reporters = mail.example, fbl.other.example\n", NULL);
}

/* vouched - m from reporter, with the trusted server's DMARC pass for its domain. */
static char *
vouched(const char *m, const char *from_domain)
{
	const char *rest = strstr(m, "\r\n") + 2;	/* the From line replaced */
	char *out;

	assert_true(asprintf(&out, "Authentication-Results: mx.clinic.test; dmarc=pass "
			     "header.from=%s\r\nFrom: fbl@%s\r\n%s", from_domain,
			     from_domain, rest) > 0);
	return out;
}

static void
feedback_reporters_are_the_only_domains_a_report_counts_from(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], verp0[128], orig0[96], buf[128], *m, *v;
	struct arf_in a;

	sent_event("evr", "checkup_reminder", NULL, tok, orig0, verp0);
	a = (struct arf_in){ .to = "fbl@clinic.test", .type = "abuse", .orig_id = orig0,
			     .id = "e1@fbl" };
	m = arf_report(&a);
	/* an attacker's own domain, DMARC and all: not a listed reporter */
	v = vouched(m, "evil.example");
	assert_int_equal(ingest_at(v, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_non_null(strstr(res.reason, "not from a listed reporter"));
	free(v);
	free(m);
	/* a name that only ends like a listed one */
	a.id = "e3@fbl";
	m = arf_report(&a);
	v = vouched(m, "evilmail.example");
	assert_int_equal(ingest_at(v, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	free(v);
	free(m);
	/* a listed domain without the trusted server's word */
	a.id = "e4@fbl";
	m = arf_report(&a);
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "");
	free(m);
	/* below a listed domain, vouched for: it counts */
	a.id = "e2@fbl";
	m = arf_report(&a);
	v = vouched(m, "arf.mail.example");
	assert_int_equal(ingest_at(v, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_COMPLAINT_RECORDED);
	assert_int_equal(res.feedback, METRICS_FB_OPTED_OUT);
	optouts(-1, buf, sizeof(buf));
	assert_string_equal(buf, "recalls");
	free(v);
	free(m);
}

/* ---- unsubscribe ---- */

static void
unsubscribe_adds_the_category_except_for_security_notices(void **state)
{
	struct inbound_result res;
	char rem[TOKEN_SIZE], sec[TOKEN_SIZE], to[128];
	json_t *p;
	char *a, *b, *c;

	add_thread("evr", "checkup_reminder", NULL, NOW + 30 * DAY, NULL, rem);
	add_thread("evs", "contact_info_changed", NULL, NOW + 30 * DAY, NULL, sec);
	snprintf(to, sizeof(to), "unsubscribe+%s@clinic.test", rem);
	a = message("pat@patients.test", to, "unsubscribe", "un1@x.test", NULL, "\r\n");
	b = message("prox@proxies.test", to, "unsubscribe", "un2@x.test", NULL, "\r\n");
	reply_to(to, sizeof(to), sec);
	c = message("pat@patients.test", to, "Unsubscribe", "un3@x.test", NULL, "\r\n");
	assert_int_equal(ingest_at(a, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_UNSUBSCRIBED);
	assert_int_equal(ingest_at(b, NOW, &res), 0);
	assert_int_equal(ingest_at(c, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_UNSUBSCRIBED);
	assert_non_null(strstr(res.reason, "cannot"));
	assert_int_equal(store_get_json(fx.store, DB_PATIENTS, "p1", &p, NULL), 0);
	assert_int_equal(json_array_size(json_object_get(p, "optout")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(p, "optout"), 0)),
			    "recalls");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
		json_array_get(json_object_get(p, "proxies"), 0), "optout"), 0)), "recalls");
	json_decref(p);
	assert_int_equal(count(DB_INBOX), 0);
	assert_int_equal(deliveries(""), 0);
	free(a);
	free(b);
	free(c);
	/* transactional mail: nothing changes */
	add_thread("evt", "test_result", NULL, NOW + 30 * DAY, NULL, rem);
	snprintf(to, sizeof(to), "unsubscribe+%s@clinic.test", rem);
	a = message("pat@patients.test", to, "unsubscribe", "un4@x.test", NULL, "\r\n");
	assert_int_equal(ingest_at(a, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_UNSUBSCRIBED);
	assert_non_null(strstr(res.reason, "transactional mail cannot be unsubscribed"));
	free(a);
	/* the mailto of an appointment reminder sent when reminders were
	 * subscription mail: it stops recalls, not the appointments */
	add_thread("eva", "appointment_reminder", NULL, NOW + 30 * DAY, NULL, rem);
	snprintf(to, sizeof(to), "unsubscribe+%s@clinic.test", rem);
	a = message("pat@patients.test", to, "unsubscribe", "un5@x.test", NULL, "\r\n");
	assert_int_equal(ingest_at(a, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_UNSUBSCRIBED);
	assert_non_null(strstr(res.reason, "patient opted out of the category"));
	assert_int_equal(store_get_json(fx.store, DB_PATIENTS, "p1", &p, NULL), 0);
	assert_int_equal(json_array_size(json_object_get(p, "optout")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(p, "optout"), 0)),
			    "recalls");
	json_decref(p);
	free(a);
}

/* ---- a parse helper that lies (taken over by the message it parsed) ---- */

/*
 * lying_child - parses as the real one does, then says what would get
 * the message filed: a DMARC pass from the trusted server, the patient's
 * From, and (when the message carries one in X-Steal) a reply address
 * among the recipients.
 */
static int
lying_child(void *arg)
{
	struct buf in = BUF_INIT, scratch = BUF_INIT, wire = BUF_INIT;
	struct inmsg_limits lim;
	struct helper_frame f;
	struct inmsg *m = NULL;
	struct cp_error e;
	uint32_t flags = 0;
	const char *steal;
	char addr[128];

	(void)arg;
	if (tu_parse_first_words(&scratch) < 0 ||
	    helper_frame_recv(HELPER_FD, &in, &f, 0, 0) < 0 ||
	    inmsgwire_limits_decode(f.field[0], f.len[0], &lim) < 0)
		return 1;
	cp_error_clear(&e);
	if (f.n == 2 && inmsg_parse(f.field[1], f.len[1], &lim, &m, &e) < 0)
		return 2;
	if (f.n == 3 && (inmsgwire_decode(f.field[1], f.len[1], &lim, &m, &e) < 0 ||
			 inmsg_reparse_inner(m, f.field[2], f.len[2], &e) < 0))
		return 2;
	for (size_t i = 0; i < m->auth_results.n; i++)
		free(m->auth_results.v[i]);
	free(m->auth_results.v);
	m->auth_results.v = calloc(1, sizeof(char *));
	m->auth_results.v[0] = strdup("mx.clinic.test; dmarc=pass header.from=patients.test");
	m->auth_results.n = 1;
	free(m->from_addr);
	m->from_addr = strdup("pat@patients.test");
	m->from_count = 1;
	if (f.n == 2 && memmem(f.field[1], f.len[1], "X-Forge-Body: yes", 17)) {
		free(m->body);
		free(m->reply);
		m->body = strdup("FORGED BODY");
		m->body_len = strlen(m->body);
		m->reply = strdup(m->body);
		m->reply_len = m->body_len;
	}
	if (f.n == 2 && memmem(f.field[1], f.len[1], "X-Forge-Form: yes", 17)) {
		/* an answer in the body beside the reply it cut: only the
		 * reply is filed, and only it is read for answers */
		char *body = NULL;

		if (asprintf(&body, "%s\nAllergies: none at all\n", m->body) < 0)
			return 5;
		free(m->body);
		m->body = body;
		m->body_len = strlen(body);
	}
	if (f.n == 2 && memmem(f.field[1], f.len[1], "X-Forge-Signed: yes", 19) &&
	    m->n_attachments > 0) {
		struct inmsg *s = NULL;

		/* an attached signed message claimed as this one's own */
		if (inmsg_parse(m->attachments[0].data, m->attachments[0].len, &lim,
				&s, &e) < 0 || s->pgp_signed == NULL)
			return 4;
		free(m->pgp_signed);
		free(m->pgp_signature);
		m->pgp |= INMSG_PGP_SIGNED;
		m->pgp_signed = s->pgp_signed;
		m->pgp_signed_len = s->pgp_signed_len;
		m->pgp_signature = s->pgp_signature;
		m->pgp_signature_len = s->pgp_signature_len;
		s->pgp_signed = s->pgp_signature = NULL;
		inmsg_free(s);
	}
	steal = memmem(f.field[f.n - 1], f.len[f.n - 1], "X-Steal: ", 9);
	if (steal != NULL && sscanf(steal + 9, "%127[^\r\n]", addr) == 1) {
		char **v = realloc(m->recipients.v, (m->recipients.n + 1) * sizeof(*v));

		m->recipients.v = v;
		v[m->recipients.n++] = strdup(addr);
	}
	/* protected headers of its own naming a thread, for encrypted
	 * content it has not seen */
	if (f.n == 2 && memmem(f.field[1], f.len[1], "X-Forge-Prot: ", 14) &&
	    sscanf((char *)memmem(f.field[1], f.len[1], "X-Forge-Prot: ", 14) + 14,
		   "%127[^\r\n]", addr) == 1) {
		m->prot.present = 1;
		m->prot.recipients.v = calloc(1, sizeof(char *));
		m->prot.recipients.v[0] = strdup(addr);
		m->prot.recipients.n = 1;
	}
	if (inmsgwire_encode(m, &wire) < 0)
		return 3;
	{
		struct helper_field a[2] = { { &flags, 4 }, { wire.data, wire.len } };

		helper_frame_send(HELPER_FD, &scratch, 0, a, 2);
	}
	inmsg_free(m);
	return 0;
}

/* use_liar - this binary, copied as "lying-parse", as the parse helper. */
static void
use_liar(char *path, size_t len)
{
	assert_int_equal(tu_parse_use(fx.dir, "lying-parse", path, len), 0);
}

static void
what_a_lying_parse_helper_says_authenticates_nothing(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128], path[PATH_MAX], extra[256], *m;

	use_liar(path, sizeof(path));
	open_inbound();		/* its parse helpers are the liar */
	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	/* A stranger with a stolen token: the liar says DMARC passed for
	 * the patient's From. carepostd reads From and the
	 * Authentication-Results (none) itself. */
	m = message("mallory@evil.test", to, "Re", "l1@x.test", NULL, "hi\r\n");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_string_equal(res.auth, "");
	free(m);
	/* The patient's genuine mail to someone else, which quotes a reply
	 * address: the liar puts it among the recipients. */
	snprintf(extra, sizeof(extra), "Authentication-Results: mx.clinic.test; "
		 "dmarc=pass header.from=patients.test\r\nX-Steal: %s\r\n", to);
	m = message("pat@patients.test", "someone@elsewhere.test", "Re", "l2@x.test",
		    extra, "hi\r\n");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	free(m);
	/* Where the raw bytes say what the liar says, it is filed. */
	snprintf(extra, sizeof(extra), "Authentication-Results: mx.clinic.test; "
		 "dmarc=pass header.from=patients.test\r\n");
	m = message("Pat <pat@patients.test>", to, "Re", "l3@x.test", extra, "hi\r\n");
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_string_equal(res.auth, "dmarc");
	free(m);
	assert_int_equal(count(DB_INBOX), 1);
	assert_int_equal(parsehelper_enable(NULL), 0);
}

/* signed_entity - multipart/signed around text, signed by fpr in home. */
static char *
signed_entity(const char *home, const char *fpr, const char *text)
{
	char part[512], path[PATH_MAX], cmd[3 * PATH_MAX], *out = NULL;
	struct buf sig = BUF_INIT, crlf = BUF_INIT;

	snprintf(part, sizeof(part), "Content-Type: text/plain; charset=utf-8\r\n"
		 "\r\n%s\r\n", text);
	snprintf(path, sizeof(path), "%s/part", fx.dir);
	assert_int_equal(cp_write_file_atomic(path, part, strlen(part), 0600), 0);
	snprintf(cmd, sizeof(cmd), "gpg --homedir %s --batch --armor --detach-sign "
		 "-u %s -o - %s", home, fpr, path);
	assert_int_equal(tu_capture(&sig, cmd), 0);
	for (size_t i = 0; i < sig.len; i++)
		buf_puts(&crlf, sig.data[i] == '\n' ? "\r\n" : (char[]){ sig.data[i], 0 });
	buf_append(&crlf, "", 1);
	assert_true(asprintf(&out, "Content-Type: multipart/signed; micalg=pgp-sha256; "
			     "protocol=\"application/pgp-signature\"; boundary=\"s1\"\r\n\r\n"
			     "--s1\r\n%s\r\n--s1\r\nContent-Type: application/pgp-signature\r\n"
			     "\r\n%s\r\n--s1--\r\n", part, crlf.data) > 0);
	buf_free(&sig);
	buf_free(&crlf);
	return out;
}

/* Form answers count only where the filed reply holds them. */
static void
form_answers_the_reply_does_not_hold_count_for_nothing(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128], path[PATH_MAX], *m;
	json_t *rec, *content, *values;

	use_liar(path, sizeof(path));
	open_inbound();
	add_thread("evf", "form_request", NULL, NOW + 30 * DAY,
		   "{\"form_fields\": [{\"name\": \"Pain level\", \"required\": true},"
		   " {\"name\": \"Allergies\", \"required\": true}]}", tok);
	reply_to(to, sizeof(to), tok);
	assert_true(asprintf(&m, "From: pat@patients.test\r\nTo: %s\r\nSubject: Re\r\n"
			     "Message-ID: <ff1@x.test>\r\nX-Forge-Form: yes\r\n\r\n"
			     "Pain level: 4\r\n", to) > 0);
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_true(res.form);
	assert_true(res.form_incomplete);	/* Allergies: not in the reply */
	assert_int_equal(inbox_get(fx.store, "p1", res.inbox_id, &rec, NULL), 0);
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, rec, &content, NULL), 0);
	values = json_object_get(json_object_get(content, "form"), "values");
	assert_string_equal(json_string_value(json_object_get(values, "Pain level")), "4");
	assert_null(json_object_get(values, "Allergies"));
	json_decref(content);
	json_decref(rec);
	free(m);
}

/* use_built_pgp_helper - replies verified and decrypted in the gpg
 * helper this build made (build/carepost-pgp beside build/tests). */
static void
use_built_pgp_helper(void)
{
	char gpgh[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", gpgh, sizeof(gpgh) - 1);

	assert_true(n > 0);
	gpgh[n] = '\0';
	slash = strrchr(gpgh, '/');
	*slash = '\0';
	slash = strrchr(gpgh, '/');
	snprintf(slash, sizeof(gpgh) - (size_t)(slash - gpgh), "/carepost-pgp");
	assert_int_equal(pgphelper_enable(gpgh), 0);
}

static void
signed_content_is_made_from_the_signed_bytes_not_the_helpers_word(void **state)
{
	struct inbound_result res;
	char tok[TOKEN_SIZE], to[128], path[PATH_MAX], dir[64], home[80], fpr[41];
	char *ent, *m, *b64;
	json_t *rec, *content;
	struct buf enc = BUF_INIT;

	assert_int_equal(tu_gpg_dir("cpis", dir, sizeof(dir), home, sizeof(home),
				    "Pat <pat@patients.test>", fpr), 0);
	assert_int_equal(tu_move_public(home, fx.home, fpr), 0);
	use_liar(path, sizeof(path));
	use_built_pgp_helper();
	open_inbound();
	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	/* The liar puts its own text in place of the signed text: what is
	 * filed is made again from the signed bytes, in a fresh helper. */
	ent = signed_entity(home, fpr, "the patient's signed text");
	assert_true(asprintf(&m, "From: pat@patients.test\r\nTo: %s\r\nSubject: Re\r\n"
			     "Message-ID: <s1@x.test>\r\nX-Forge-Body: yes\r\n"
			     "MIME-Version: 1.0\r\n%s", to, ent) > 0);
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_FILED);
	assert_int_equal(inbox_get(fx.store, "p1", res.inbox_id, &rec, NULL), 0);
	assert_int_equal(inbox_open(fx.pgp, fx.atrest, rec, &content, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(content, "text")),
			    "the patient's signed text");
	json_decref(content);
	json_decref(rec);
	free(m);
	/* A signed message of the patient's, attached (base64: its bytes
	 * are not in the message), claimed by the liar as this unsigned
	 * message's own signed part: not believed. */
	buf_append_base64(&enc, ent, strlen(ent));
	buf_append(&enc, "", 1);
	b64 = enc.data;
	assert_true(asprintf(&m, "From: pat@patients.test\r\nTo: %s\r\nSubject: Re\r\n"
			     "Message-ID: <s2@x.test>\r\nX-Forge-Signed: yes\r\n"
			     "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n"
			     "--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
			     "--m\r\nContent-Type: application/octet-stream; name=old.eml\r\n"
			     "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--m--\r\n",
			     to, b64) > 0);
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	free(m);
	free(ent);
	buf_free(&enc);
	tu_gpg_dir_remove("cpis", dir, home);
	assert_int_equal(parsehelper_enable(NULL), 0);
}

/* Content the clinic key decrypts is bound to a thread by its own
 * protected headers (or a signature), never by what the helper that
 * parsed the outer message says of them: else anyone could have another
 * patient's encrypted reply, wrapped anew, filed into their own thread. */
static void
decrypted_content_is_bound_by_its_own_headers_not_the_helpers_word(void **state)
{
	static const char inner[] = "Content-Type: text/plain; charset=utf-8\r\n\r\n"
				    "another patient's words\r\n";
	struct inbound_result res;
	struct buf armor = BUF_INIT;
	struct cp_error err;
	char tok[TOKEN_SIZE], to[128], path[PATH_MAX], *m;

	use_liar(path, sizeof(path));
	use_built_pgp_helper();
	open_inbound();
	add_thread("ev1", "provider_message", NULL, NOW + 30 * DAY, NULL, tok);
	reply_to(to, sizeof(to), tok);
	cp_error_clear(&err);
	assert_int_equal(pgp_encrypt_to(fx.pgp, fx.clinic, inner, sizeof(inner) - 1,
					&armor, &err), 0);
	buf_append(&armor, "", 1);
	assert_true(asprintf(&m, "From: pat@patients.test\r\nTo: %s\r\nSubject: Re\r\n"
			     "Message-ID: <p1@x.test>\r\nX-Forge-Prot: %s\r\n"
			     "MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; "
			     "protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n"
			     "--E\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
			     "Version: 1\r\n--E\r\nContent-Type: application/octet-stream\r\n\r\n"
			     "%s\r\n--E--\r\n", to, to, armor.data) > 0);
	assert_int_equal(ingest_at(m, NOW, &res), 0);
	assert_int_equal(res.disposition, INBOUND_QUARANTINED);
	assert_non_null(strstr(res.reason, "decrypted content is not bound to this thread"));
	assert_int_equal(count(DB_INBOX), 0);
	free(m);
	buf_free(&armor);
	assert_int_equal(parsehelper_enable(NULL), 0);
}

int
main(int argc, char **argv)
{
	int rc;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(patient_and_proxy_replies_are_filed_with_their_role, setup, teardown),
		cmocka_unit_test_setup_teardown(strangers_forgeries_and_expired_tokens_are_quarantined_never_filed, setup, teardown),
		cmocka_unit_test_setup_teardown(require_dmarc_counts_only_the_trusted_authserv_id, setup_dmarc, teardown),
		cmocka_unit_test(require_dmarc_without_trusted_id_is_a_config_error),
		cmocka_unit_test_setup_teardown(what_a_lying_parse_helper_says_authenticates_nothing, setup_dmarc, teardown),
		cmocka_unit_test_setup_teardown(form_answers_the_reply_does_not_hold_count_for_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(signed_content_is_made_from_the_signed_bytes_not_the_helpers_word, setup, teardown),
		cmocka_unit_test_setup_teardown(decrypted_content_is_bound_by_its_own_headers_not_the_helpers_word, setup, teardown),
		cmocka_unit_test_setup_teardown(a_message_is_filed_once_however_often_it_is_fetched, setup, teardown),
		cmocka_unit_test_setup_teardown(a_quarantined_message_is_quarantined_again_with_its_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(unparseable_and_oversized_messages_quarantine_with_a_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(a_message_the_parser_dies_on_twice_is_quarantined_with_the_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(without_a_parse_helper_the_message_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(dry_run_decides_and_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(acknowledged_once_per_conversation_per_day_never_autoreplies, setup, teardown),
		cmocka_unit_test_setup_teardown(replies_asking_for_no_automatic_answer_are_filed_never_acknowledged, setup, teardown),
		cmocka_unit_test_setup_teardown(urgent_words_count_in_the_reply_not_in_quoted_history, setup, teardown),
		cmocka_unit_test_setup_teardown(staff_alerts_are_coalesced_per_department_and_class_within_the_window, setup, teardown),
		cmocka_unit_test_setup_teardown(staff_alerts_of_a_batch_are_coalesced_in_its_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(alert_window_0_alerts_every_reply, setup_no_alert_window, teardown),
		cmocka_unit_test_setup_teardown(messages_started_ahead_are_decided_as_any, setup, teardown),
		cmocka_unit_test_setup_teardown(form_replies_parse_fields_and_ask_for_missing_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(inbox_content_is_encrypted_at_rest_and_metadata_is_phi_free, setup, teardown),
		cmocka_unit_test_setup_teardown(inbox_records_are_format_2_bound_to_their_key_and_old_ones_still_open, setup, teardown),
		cmocka_unit_test_setup_teardown(inbox_list_and_clinic_queue_read_one_owner_by_key_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(infrastructure_failures_return_errors_and_do_not_quarantine, setup, teardown),
		cmocka_unit_test_setup_teardown(bounces_map_through_verp_or_message_id_to_address_and_recipient, setup, teardown),
		cmocka_unit_test_setup_teardown(forged_bounces_are_quarantined_counted_and_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(complaints_stop_subscription_mail_and_show_the_rest_to_staff, setup, teardown),
		cmocka_unit_test_setup_teardown(forged_and_malformed_feedback_reports_are_quarantined, setup, teardown),
		cmocka_unit_test_setup_teardown(complaints_stop_no_transactional_mail_and_no_one_else, setup, teardown),
		cmocka_unit_test_setup_teardown(require_dmarc_asks_the_report_to_come_from_its_provider, setup_dmarc, teardown),
		cmocka_unit_test_setup_teardown(feedback_reporters_are_the_only_domains_a_report_counts_from, setup_reporters, teardown),
		cmocka_unit_test_setup_teardown(unsubscribe_adds_the_category_except_for_security_notices, setup, teardown),
	};

	static const struct tu_parse_sub subs[] = {
		{ "lying-parse", lying_child }, { "crashing-parse", crashing_child },
	};

	rc = tu_parse_dispatch(argc, argv, subs, CP_ARRAY_SIZE(subs));
	if (rc >= 0)	/* a substitute parse helper (a copy of this binary) */
		return rc;
	rc = parsehelper_main(argc, argv);	/* this binary parses too */
	if (rc >= 0)
		return rc;
	if (parsehelper_enable(NULL) < 0)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
