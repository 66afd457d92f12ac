/*
 * NAME
 *	test_replyauth - unit tests for lib/replyauth.c: a reply's sender
 *	and conversation, proved from explicit inputs
 * DESCRIPTION
 *	Each test gets a fresh LMDB store holding patient "p1" (an address
 *	and a key on file, and a proxy with both) and the threads it needs,
 *	written directly, with reply tokens made by token_make. The message's
 *	facts (From, Authentication-Results, signer, protected headers) are
 *	given as replyauth_in fields, as inbound hands them over: no message
 *	is parsed. The fingerprints are made up, but for the one test that
 *	resolves a signing subkey in a throwaway GnuPG home.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "authres.h"
#include "fsfix.h"
#include "gpgfix.h"
#include "msgfix.h"
#include "pgp.h"
#include "replyauth.h"
#include "store.h"
#include "storefix.h"
#include "token.h"
#include "util.h"

#define NOW 1795626000LL	/* 2026-11-25 17:00 UTC */
#define DAY 86400LL

#define PAT_FPR		"ABCDEF0123456789ABCDEF0123456789ABCDEF01"
#define PROXY_FPR	"2222222222222222222222222222222222222222"
#define CLINIC_FPR	"CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
#define STORE_FPR	"5555555555555555555555555555555555555555"
#define STRANGER_FPR	"9999999999999999999999999999999999999999"
#define TRUSTED		"mx.clinic.test"

static const char key[] = "0123456789abcdef0123456789abcdef";

struct fixture {
	char dir[64];
	int n;
	char path[96];
	struct store *store;
	char tok[TOKEN_SIZE];		/* thread "ev1": live, department cardio */
	struct replyauth_in in;		/* a patient's reply to ev1 */
	struct replyauth_out out;
};

static struct fixture fx;

static int
group_setup(void **state)
{
	return tu_tmpdir("cpra", fx.dir, sizeof(fx.dir));
}

static int
group_teardown(void **state)
{
	tu_rm_rf(fx.dir);
	return 0;
}

static void
put_patient(const char *id, const char *pgp_fpr)
{
	json_t *p = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s}]}", "id", id,
			      "email", "Pat@Patients.test", "pgp_fpr", pgp_fpr,
			      "proxies", "email", "prox@proxies.test", "relation", "parent",
			      "pgp_fpr", PROXY_FPR);

	assert_int_equal(store_put_json(fx.store, DB_PATIENTS, id, p, NULL), 0);
	json_decref(p);
}

/*
 * add_thread - the thread of event_id for patient (NULL: none named),
 * created at NOW and expiring at expires, with extra fields; its token
 * (valid until token_expires) into tok.
 */
static void
add_thread(const char *event_id, const char *patient, int64_t expires,
	   int64_t token_expires, const char *extra_json, char tok[TOKEN_SIZE])
{
	uint8_t id[TOKEN_THREAD_BYTES];
	json_t *rec;

	token_thread_from_id(event_id, id);
	rec = json_pack("{s:s, s:s, s:I, s:I}", "event", event_id, "type",
			"test_result", "created", (json_int_t)NOW,
			"expires", (json_int_t)expires);
	if (patient)
		json_object_set_new(rec, "patient", json_string(patient));
	if (extra_json) {
		json_t *extra = json_loads(extra_json, 0, NULL);

		assert_non_null(extra);
		json_object_update(rec, extra);
		json_decref(extra);
	}
	tu_thread_put(fx.store, id, rec);
	json_decref(rec);
	assert_int_equal(token_make(key, sizeof(key) - 1, id, token_expires, tok), 0);
}

static int
setup(void **state)
{
	struct cp_error err;

	cp_error_clear(&err);
	fx.store = tu_store_fresh(fx.dir, &fx.n, fx.path, sizeof(fx.path), 16 << 20, &err);
	if (fx.store == NULL)
		return -1;
	put_patient("p1", PAT_FPR);
	add_thread("ev1", "p1", NOW + 30 * DAY, NOW + 30 * DAY,
		   "{\"department\": \"cardio\"}", fx.tok);
	memset(&fx.out, 0, sizeof(fx.out));
	fx.in = (struct replyauth_in) {
		.key = key, .keylen = sizeof(key) - 1, .store = fx.store,
		.clinic_fpr = CLINIC_FPR, .store_fpr = STORE_FPR,
		.trusted_authserv_id = TRUSTED, .default_department = "general",
		.addrs = &tu_addrs, .now = NOW, .token = fx.tok,
		.from_addr = "pat@patients.test", .from_count = 1,
	};
	return 0;
}

static int
teardown(void **state)
{
	replyauth_clear(&fx.out);
	store_close(fx.store);
	fx.store = NULL;
	return 0;
}

/* check - replyauth_check on fx.in into fx.out (cleared first); its status. */
static const char *
check(void)
{
	struct cp_error err;

	replyauth_clear(&fx.out);
	cp_error_clear(&err);
	if (replyauth_check(&fx.in, &fx.out, &err) < 0)
		fail_msg("replyauth_check: %s", err.text);
	assert_non_null(fx.out.status);
	if (strcmp(fx.out.status, "pass") == 0)
		assert_string_equal(fx.out.reason, "");
	else
		assert_null(strchr(fx.out.reason, '@'));	/* PHI-free */
	return fx.out.status;
}

/* fails_with - check() fails (status) with exactly reason. */
static void
fails_with(const char *status, const char *reason)
{
	assert_string_equal(check(), status);
	assert_string_equal(fx.out.reason, reason);
	assert_int_equal(fx.out.bound, 0);
}

/* passes_as - check() passes, by method auth. */
static void
passes_as(const char *auth)
{
	assert_string_equal(check(), "pass");
	assert_string_equal(fx.out.auth, auth);
}

/* ---- the sender, by From ---- */

static void
the_patients_or_a_proxys_from_on_file_passes_with_the_role(void **state)
{
	char hex[2 * TOKEN_THREAD_BYTES + 1];
	uint8_t th[TOKEN_THREAD_BYTES];

	passes_as("from");
	assert_string_equal(fx.out.sender_role, "patient");
	assert_string_equal(fx.out.sender_ref, "patient");
	assert_string_equal(fx.out.from_ref, "patient");
	assert_string_equal(fx.out.event, "ev1");
	assert_string_equal(fx.out.patient_id, "p1");
	assert_string_equal(fx.out.department, "cardio");
	assert_string_equal(fx.out.thread.type, "test_result");
	assert_string_equal(json_string_value(json_object_get(fx.out.patient, "id")), "p1");
	token_thread_from_id("ev1", th);
	cp_hex(th, sizeof(th), hex);
	assert_string_equal(fx.out.thread_hex, hex);
	assert_memory_equal(fx.out.thread_id, th, sizeof(th));
	assert_int_equal(fx.out.signer_matched, 0);
	assert_int_equal(fx.out.headers_authenticated, 0);
	assert_null(fx.out.signer);

	fx.in.from_addr = "prox@proxies.test";
	assert_string_equal(check(), "pass");
	assert_string_equal(fx.out.sender_role, "proxy");
	assert_string_equal(fx.out.sender_ref, "proxy:0");
	assert_string_equal(fx.out.from_ref, "proxy:0");
}

static void
a_from_of_nobody_on_file_or_no_from_at_all_fails(void **state)
{
	static const char *const froms[] = { "evil@else.test", "pat@patients.test.evil",
		"", "pat", NULL };

	for (size_t i = 0; i < CP_ARRAY_SIZE(froms); i++) {
		fx.in.from_addr = froms[i];
		fails_with("fail", "sender is not the thread's patient or a proxy");
		/* what was found before it stays */
		assert_string_equal(fx.out.patient_id, "p1");
		assert_string_equal(fx.out.event, "ev1");
		assert_string_equal(fx.out.sender_role, "");
		assert_string_equal(fx.out.auth, "");
	}
}

static void
a_thread_without_department_goes_to_the_default_one(void **state)
{
	char tok[TOKEN_SIZE];

	static const char *const dflt[][2] = {	/* configured, filed to */
		{ "general", "general" }, { NULL, "general" },
		{ "front-desk", "front-desk" },
	};

	add_thread("ev2", "p1", NOW + DAY, NOW + DAY, NULL, tok);
	fx.in.token = tok;
	for (size_t i = 0; i < CP_ARRAY_SIZE(dflt); i++) {
		fx.in.default_department = dflt[i][0];
		assert_string_equal(check(), "pass");
		assert_string_equal(fx.out.department, dflt[i][1]);
	}
}

/* ---- the token and the thread ---- */

static void
forged_malformed_or_expired_tokens_fail_before_any_thread_is_read(void **state)
{
	char forged[TOKEN_SIZE], old[TOKEN_SIZE], long_tok[300];

	memcpy(forged, fx.tok, sizeof(forged));
	forged[5] = forged[5] == 'a' ? 'b' : 'a';
	fx.in.token = forged;
	fails_with("fail", "reply token forged or malformed");
	assert_string_equal(fx.out.thread_hex, "");
	fx.in.token = "";
	fails_with("fail", "reply token forged or malformed");
	fx.in.token = NULL;
	fails_with("fail", "reply token forged or malformed");
	fx.in.token = "not a token\r\nBcc: x";
	fails_with("fail", "reply token forged or malformed");
	memset(long_tok, 'a', sizeof(long_tok) - 1);
	long_tok[sizeof(long_tok) - 1] = '\0';
	fx.in.token = long_tok;
	fails_with("fail", "reply token forged or malformed");
	/* the right thread's token, expired: whatever else would pass */
	add_thread("ev-old", "p1", NOW + DAY, NOW - DAY, NULL, old);
	fx.in.token = old;
	fails_with("fail", "reply token expired");
	assert_string_equal(fx.out.event, "");
	/* and under another key: forged */
	fx.in.token = fx.tok;
	fx.in.key = "another key of 32 bytes, or so..";
	fails_with("fail", "reply token forged or malformed");
}

static void
a_thread_unknown_expired_or_without_patient_fails_with_what_was_found(void **state)
{
	uint8_t ghost[TOKEN_THREAD_BYTES];
	char ghost_tok[TOKEN_SIZE], old[TOKEN_SIZE], nobody[TOKEN_SIZE], gone[TOKEN_SIZE];

	token_thread_from_id("never-stored", ghost);
	assert_int_equal(token_make(key, sizeof(key) - 1, ghost, NOW + DAY, ghost_tok), 0);
	fx.in.token = ghost_tok;
	fails_with("fail", "reply token names no known thread");
	assert_string_not_equal(fx.out.thread_hex, "");
	assert_string_equal(fx.out.event, "");

	/* the token lives longer than its thread */
	add_thread("ev-exp", "p1", NOW - 1, NOW + DAY, NULL, old);
	fx.in.token = old;
	fails_with("fail", "thread expired");
	assert_string_equal(fx.out.event, "ev-exp");
	assert_string_equal(fx.out.patient_id, "");

	add_thread("ev-nobody", NULL, NOW + DAY, NOW + DAY, NULL, nobody);
	fx.in.token = nobody;
	fails_with("fail", "thread names no patient");
	assert_string_equal(fx.out.event, "ev-nobody");
	assert_string_equal(fx.out.patient_id, "");

	add_thread("ev-gone", "p-gone", NOW + DAY, NOW + DAY, NULL, gone);
	fx.in.token = gone;
	fails_with("fail", "thread's patient no longer exists");
	assert_string_equal(fx.out.patient_id, "p-gone");
	assert_string_equal(fx.out.department, "general");
	assert_null(fx.out.patient);
}

static void
a_proxy_may_not_reply_on_a_confidential_thread_the_patient_may(void **state)
{
	char conf[TOKEN_SIZE];

	add_thread("ev-conf", "p1", NOW + DAY, NOW + DAY, "{\"confidential\": true}", conf);
	fx.in.token = conf;
	fx.in.from_addr = "prox@proxies.test";
	fails_with("fail", "a proxy may not reply on a confidential thread");
	assert_string_equal(fx.out.sender_role, "proxy");
	/* signed by the proxy's key: the same */
	fx.in.from_addr = "evil@else.test";
	fx.in.signer = PROXY_FPR;
	fx.in.sig_created = NOW;
	fails_with("fail", "a proxy may not reply on a confidential thread");
	fx.in.signer = NULL;
	fx.in.from_addr = "pat@patients.test";
	assert_string_equal(check(), "pass");
	assert_string_equal(fx.out.sender_role, "patient");
}

/* ---- Authentication-Results ---- */

static void
require_dmarc_counts_only_the_topmost_trusted_pass_for_one_from(void **state)
{
	static const struct {
		const char *ar[2];
		unsigned from_count;
		const char *auth;	/* NULL: fails */
	} cases[] = {
		{ { NULL, NULL }, 1, NULL },
		{ { "mx.evil.test; dmarc=pass header.from=patients.test", NULL }, 1, NULL },
		{ { TRUSTED "; dmarc=fail header.from=patients.test", NULL }, 1, NULL },
		{ { TRUSTED "; dmarc=pass header.from=else.test", NULL }, 1, NULL },
		{ { TRUSTED "; dmarc=pass header.from=patients.test", NULL }, 1, "dmarc" },
		{ { TRUSTED "; dkim=pass header.d=patients.test", NULL }, 1, "dkim" },
		{ { TRUSTED "; dkim=pass header.d=patients.test; dmarc=fail "
		    "header.from=patients.test", NULL }, 1, NULL },
		{ { TRUSTED "; dkim=pass header.d=other.test", NULL }, 1, NULL },
		/* a pass below the MTA's own topmost verdict came from outside */
		{ { TRUSTED "; dmarc=none header.from=patients.test",
		    TRUSTED "; dmarc=pass header.from=patients.test" }, 1, NULL },
		/* an unclosed comment swallows nothing: the header counts for nothing */
		{ { TRUSTED "; dmarc=pass (header.from=patients.test", NULL }, 1, NULL },
		{ { TRUSTED "; dmarc=pass header.from=patients.test", NULL }, 2, NULL },
	};

	fx.in.require_dmarc = 1;
	for (size_t i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		size_t n = cases[i].ar[1] ? 2 : cases[i].ar[0] ? 1 : 0;

		fx.in.auth_results = cases[i].ar;
		fx.in.n_auth_results = n;
		fx.in.from_count = cases[i].from_count;
		check();
		if (cases[i].auth) {
			if (strcmp(fx.out.status, "pass") != 0)
				fail_msg("case %zu: %s", i, fx.out.reason);
			assert_string_equal(fx.out.auth, cases[i].auth);
			assert_int_equal(fx.out.headers_authenticated, 1);
			continue;
		}
		if (strcmp(fx.out.status, "fail") != 0)
			fail_msg("case %zu: %s, wanted a failure", i, fx.out.status);
		assert_string_equal(fx.out.reason, cases[i].from_count > 1 ?
			"more than one From address, and no patient signature" :
			"no DMARC or aligned DKIM pass from the trusted server, and no "
			"patient signature");
		assert_int_equal(fx.out.headers_authenticated, 0);
	}
}

static void
a_pass_vouches_only_for_a_from_on_file_and_needs_a_trusted_id(void **state)
{
	const char *pass[] = { TRUSTED "; dmarc=pass header.from=else.test" };
	const char *ours[] = { TRUSTED "; dmarc=pass header.from=patients.test" };

	/* a stranger's domain passing DMARC proves nothing about the patient */
	fx.in.require_dmarc = 1;
	fx.in.from_addr = "evil@else.test";
	fx.in.auth_results = pass;
	fx.in.n_auth_results = 1;
	fails_with("fail", "sender is not the thread's patient or a proxy");
	/* without require_dmarc, a pass still says so... */
	fx.in.require_dmarc = 0;
	fx.in.from_addr = "pat@patients.test";
	fx.in.auth_results = ours;
	passes_as("dmarc");
	/* ...but only from the trusted server */
	fx.in.trusted_authserv_id = NULL;
	passes_as("from");
	fx.in.trusted_authserv_id = "";
	passes_as("from");
	/* more than one From: the header proves nothing */
	fx.in.trusted_authserv_id = TRUSTED;
	fx.in.from_count = 3;
	passes_as("from");
	assert_int_equal(fx.out.headers_authenticated, 0);
}

static void
hostile_authentication_results_pass_nothing(void **state)
{
	static char huge[AUTHRES_MAX_HEADER + 64];
	const char *ar[3];

	snprintf(huge, sizeof(huge), "%s; dmarc=pass header.from=patients.test (", TRUSTED);
	memset(huge + strlen(huge), 'x', sizeof(huge) - strlen(huge) - 2);
	huge[sizeof(huge) - 2] = ')';
	huge[sizeof(huge) - 1] = '\0';
	fx.in.require_dmarc = 1;
	ar[0] = huge;
	fx.in.auth_results = ar;
	fx.in.n_auth_results = 1;
	fails_with("fail", "no DMARC or aligned DKIM pass from the trusted server, "
		   "and no patient signature");
	/* NULL values are skipped; nothing passes without a trusted header */
	ar[0] = NULL;
	ar[1] = "\"" TRUSTED "\"; dmarc=pass header.from=\"patients.test";
	ar[2] = NULL;
	fx.in.n_auth_results = 3;
	fails_with("fail", "no DMARC or aligned DKIM pass from the trusted server, "
		   "and no patient signature");
}

/* ---- signatures ---- */

static void
a_signature_on_file_made_since_the_thread_began_passes_as_pgp(void **state)
{
	/* the key decides who sent it, whatever the From says */
	fx.in.from_addr = "evil@else.test";
	fx.in.signer = PROXY_FPR;
	fx.in.sig_created = NOW;
	fx.in.require_dmarc = 1;
	passes_as("pgp");
	assert_string_equal(fx.out.sender_ref, "proxy:0");
	assert_string_equal(fx.out.from_ref, "");
	assert_int_equal(fx.out.signer_matched, 1);
	assert_string_equal(fx.out.signer, PROXY_FPR);
	assert_int_equal(fx.out.signer_resolved, 0);	/* matched as given */
	/* the case of a fingerprint does not matter */
	fx.in.signer = "abcdef0123456789abcdef0123456789abcdef01";
	assert_string_equal(check(), "pass");
	assert_string_equal(fx.out.sender_ref, "patient");
	/* a signer's clock up to REPLYAUTH_SIG_CLOCK_SKEW behind still counts */
	fx.in.sig_created = NOW - REPLYAUTH_SIG_CLOCK_SKEW;
	passes_as("pgp");
	assert_int_equal(fx.out.sig_stale, 0);
}

static void
a_stale_signature_proves_nothing(void **state)
{
	fx.in.signer = PAT_FPR;
	fx.in.sig_created = NOW - REPLYAUTH_SIG_CLOCK_SKEW - 1;
	fx.in.require_dmarc = 1;
	fails_with("fail", "no DMARC or aligned DKIM pass from the trusted server, "
		   "and no patient signature made since the thread began");
	assert_int_equal(fx.out.sig_stale, 1);
	assert_int_equal(fx.out.signer_matched, 0);
	/* one dated ahead of now (a clock set forward) proves nothing either */
	fx.in.sig_created = (fx.in.now > (int64_t)time(NULL) ? fx.in.now :
			     (int64_t)time(NULL)) + REPLYAUTH_SIG_CLOCK_SKEW + 60;
	fails_with("fail", "no DMARC or aligned DKIM pass from the trusted server, "
		   "and no patient signature made since the thread began");
	assert_int_equal(fx.out.sig_stale, 1);
	fx.in.sig_created = NOW - REPLYAUTH_SIG_CLOCK_SKEW - 1;
	/* a replayed signed message with a stranger's From: nobody */
	fx.in.require_dmarc = 0;
	fx.in.from_addr = "evil@else.test";
	fails_with("fail", "sender is not the thread's patient or a proxy");
	/* without require_dmarc the From on file is the only proof */
	fx.in.from_addr = "pat@patients.test";
	passes_as("from");
	assert_int_equal(fx.out.signer_matched, 0);
	assert_int_equal(fx.out.sig_stale, 1);
}

static void
a_signature_by_carepost_own_key_fails(void **state)
{
	fx.in.signer = CLINIC_FPR;
	fx.in.sig_created = NOW;
	fails_with("fail", REPLYAUTH_OWN_KEY_REASON);
	assert_int_equal(fx.out.sig_ours, 1);
	assert_string_equal(fx.out.auth, "");
	fx.in.signer = "5555555555555555555555555555555555555555";
	fails_with("fail", REPLYAUTH_OWN_KEY_REASON);
	/* a key nobody has on file is no sender, and no signature of ours */
	fx.in.signer = STRANGER_FPR;
	fx.in.from_addr = "evil@else.test";
	fails_with("fail", "sender is not the thread's patient or a proxy");
	assert_int_equal(fx.out.sig_ours, 0);

	assert_true(replyauth_own_key("cccccccccccccccccccccccccccccccccccccccc",
				      CLINIC_FPR, NULL));
	assert_true(replyauth_own_key(STORE_FPR, NULL, STORE_FPR));
	assert_false(replyauth_own_key(STRANGER_FPR, CLINIC_FPR, STORE_FPR));
	assert_false(replyauth_own_key(NULL, CLINIC_FPR, STORE_FPR));
	assert_false(replyauth_own_key("", "", NULL));
	assert_false(replyauth_own_key(CLINIC_FPR, NULL, NULL));
}

/* sign_subkey - a signing subkey added to fpr's key in home; its fingerprint. */
static void
sign_subkey(const char *home, const char *fpr, char sub[PGP_FPR_SIZE])
{
	struct buf list = BUF_INIT;
	char cmd[512];
	const char *last = NULL;

	assert_int_equal(tu_run("gpg --homedir %s --batch --passphrase '' --quick-add-key "
				"%s ed25519 sign never", home, fpr), 0);
	snprintf(cmd, sizeof(cmd), "gpg --homedir %s --batch --with-colons "
		 "--list-keys %s 2>/dev/null", home, fpr);
	assert_int_equal(tu_capture(&list, cmd), 0);
	for (const char *p = list.data; (p = strstr(p, "\nfpr:::::::::")) != NULL; p++)
		last = p + 13;
	assert_non_null(last);
	memcpy(sub, last, PGP_FPR_SIZE - 1);
	sub[PGP_FPR_SIZE - 1] = '\0';
	assert_string_not_equal(sub, fpr);
	buf_free(&list);
}

static void
a_signing_subkey_counts_as_its_primary_key_ours_or_the_patients(void **state)
{
	char dir[64], home[80], primary[PGP_FPR_SIZE], sub[PGP_FPR_SIZE];
	struct pgp *pgp = NULL;
	struct cp_error err;
	char *signer;
	int resolved = 0;

	assert_int_equal(tu_gpg_dir("cpras", dir, sizeof(dir), home, sizeof(home),
				    "Pat <pat@patients.test>", primary), 0);
	sign_subkey(home, primary, sub);
	assert_int_equal(pgp_global_init(), 0);
	cp_error_clear(&err);
	if (pgp_new(home, NULL, &pgp, &err) < 0)
		fail_msg("pgp: %s", err.text);
	store_close(fx.store);
	fx.store = tu_store_fresh(fx.dir, &fx.n, fx.path, sizeof(fx.path), 16 << 20, &err);
	if (fx.store == NULL)
		fail_msg("store: %s", err.text);
	fx.in.store = fx.store;
	put_patient("p1", primary);
	add_thread("ev1", "p1", NOW + 30 * DAY, NOW + 30 * DAY, NULL, fx.tok);

	/* the patient's subkey: resolved, matched, with a stranger's From */
	fx.in.pgp = pgp;
	fx.in.signer = sub;
	fx.in.sig_created = NOW;
	fx.in.from_addr = "evil@else.test";
	passes_as("pgp");
	assert_int_equal(fx.out.signer_resolved, 1);
	assert_string_equal(fx.out.signer, primary);
	/* without a pgp handle it is not resolved: nobody's */
	fx.in.pgp = NULL;
	fails_with("fail", "sender is not the thread's patient or a proxy");
	assert_int_equal(fx.out.signer_resolved, 0);
	assert_string_equal(fx.out.signer, sub);
	/* the same key as carepost's own: caught once resolved */
	fx.in.pgp = pgp;
	fx.in.clinic_fpr = primary;
	put_patient("p1", PAT_FPR);
	fails_with("fail", REPLYAUTH_OWN_KEY_REASON);
	assert_int_equal(fx.out.sig_ours, 1);
	/* replyauth_resolve_signer: once, and never without pgp */
	signer = strdup(sub);
	replyauth_resolve_signer(NULL, &signer, &resolved);
	assert_int_equal(resolved, 0);
	replyauth_resolve_signer(pgp, &signer, &resolved);
	assert_int_equal(resolved, 1);
	assert_string_equal(signer, primary);
	free(signer);
	signer = NULL;
	replyauth_resolve_signer(pgp, &signer, &resolved);
	assert_null(signer);
	pgp_free(pgp);
	tu_gpg_dir_remove("cpras", dir, home);
}

/* ---- the binding ---- */

static void
protected_headers_naming_another_conversation_fail(void **state)
{
	char other[TOKEN_SIZE], mine[128], theirs[128];
	char *v[2];
	struct inmsg_strlist prot = { v, 0 };

	add_thread("ev-other", "p1", NOW + DAY, NOW + DAY, NULL, other);
	snprintf(mine, sizeof(mine), "reply+%s@%s", fx.tok, tu_addrs.reply_domain);
	snprintf(theirs, sizeof(theirs), "reply+%s@%s", other, tu_addrs.reply_domain);
	fx.in.prot_recipients = &prot;
	fx.in.signer = PAT_FPR;
	fx.in.sig_created = NOW;
	v[0] = theirs;
	prot.n = 1;
	fails_with("fail", "protected headers name another conversation");
	assert_string_equal(fx.out.auth, "pgp");	/* authenticated, not bound */
	/* naming this one too, or only this one, or none: bound enough */
	v[1] = mine;
	prot.n = 2;
	assert_string_equal(check(), "pass");
	v[0] = mine;
	prot.n = 1;
	assert_string_equal(check(), "pass");
	v[0] = "someone@elsewhere.test";
	assert_string_equal(check(), "pass");
	prot.n = 0;
	assert_string_equal(check(), "pass");
}

static void
decrypted_content_is_filed_only_when_bound_to_this_thread(void **state)
{
	char mine[128];
	char *v[1] = { mine };
	struct inmsg_strlist prot = { v, 1 };

	snprintf(mine, sizeof(mine), "reply+%s@%s", fx.tok, tu_addrs.reply_domain);
	fx.in.decrypted = 1;
	/* another patient's reply, decrypted and re-sent with a thread of one's own */
	fails_with("fail", "decrypted content is not bound to this thread: not signed, "
		   "and no protected headers naming the thread");
	assert_string_equal(fx.out.auth, "from");
	fx.in.signer = STRANGER_FPR;
	fx.in.sig_created = NOW;
	fails_with("fail", "decrypted content is not bound to this thread: signed by "
		   "a key not on file for this thread");
	fx.in.signer = PAT_FPR;
	fx.in.sig_created = NOW - DAY;
	fails_with("fail", "decrypted content is not bound to this thread: the "
		   "patient's signature predates the thread");
	/* bound: signed by them since the thread began... */
	fx.in.sig_created = NOW;
	assert_string_equal(check(), "pass");
	assert_int_equal(fx.out.bound, 1);
	/* ...or unsigned with protected headers naming this thread's token */
	fx.in.signer = NULL;
	fx.in.prot_recipients = &prot;
	assert_string_equal(check(), "pass");
	assert_int_equal(fx.out.bound, 1);
	/* not decrypted: nothing to bind */
	fx.in.decrypted = 0;
	fx.in.prot_recipients = NULL;
	assert_string_equal(check(), "pass");
	assert_int_equal(fx.out.bound, 0);
}

/* ---- what it checks with ---- */

static void
no_token_key_or_store_is_an_error_unless_a_dry_run(void **state)
{
	struct cp_error err;

	cp_error_clear(&err);
	fx.in.keylen = 0;
	assert_int_equal(replyauth_check(&fx.in, &fx.out, &err), -EINVAL);
	assert_string_equal(err.text, "inbound: no token key to authenticate with");
	replyauth_clear(&fx.out);
	fx.in.dry_run = 1;
	fails_with("unavailable", "authentication unavailable: no token key");
	fx.in.keylen = sizeof(key) - 1;
	fx.in.store = NULL;
	fails_with("unavailable", "authentication unavailable: no store");
	fx.in.dry_run = 0;
	cp_error_clear(&err);
	replyauth_clear(&fx.out);
	assert_int_equal(replyauth_check(&fx.in, &fx.out, &err), -EINVAL);
	assert_string_equal(err.text, "inbound: no store to authenticate with");
}

static void
clear_releases_everything_and_may_run_twice(void **state)
{
	fx.in.signer = PAT_FPR;
	fx.in.sig_created = NOW;
	assert_string_equal(check(), "pass");
	assert_non_null(fx.out.patient);
	assert_non_null(fx.out.signer);
	replyauth_clear(&fx.out);
	assert_null(fx.out.patient);
	assert_null(fx.out.signer);
	assert_null(fx.out.status);
	replyauth_clear(&fx.out);
	replyauth_clear(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(the_patients_or_a_proxys_from_on_file_passes_with_the_role, setup, teardown),
		cmocka_unit_test_setup_teardown(a_from_of_nobody_on_file_or_no_from_at_all_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(a_thread_without_department_goes_to_the_default_one, setup, teardown),
		cmocka_unit_test_setup_teardown(forged_malformed_or_expired_tokens_fail_before_any_thread_is_read, setup, teardown),
		cmocka_unit_test_setup_teardown(a_thread_unknown_expired_or_without_patient_fails_with_what_was_found, setup, teardown),
		cmocka_unit_test_setup_teardown(a_proxy_may_not_reply_on_a_confidential_thread_the_patient_may, setup, teardown),
		cmocka_unit_test_setup_teardown(require_dmarc_counts_only_the_topmost_trusted_pass_for_one_from, setup, teardown),
		cmocka_unit_test_setup_teardown(a_pass_vouches_only_for_a_from_on_file_and_needs_a_trusted_id, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_authentication_results_pass_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(a_signature_on_file_made_since_the_thread_began_passes_as_pgp, setup, teardown),
		cmocka_unit_test_setup_teardown(a_stale_signature_proves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(a_signature_by_carepost_own_key_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(a_signing_subkey_counts_as_its_primary_key_ours_or_the_patients, setup, teardown),
		cmocka_unit_test_setup_teardown(protected_headers_naming_another_conversation_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(decrypted_content_is_filed_only_when_bound_to_this_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(no_token_key_or_store_is_an_error_unless_a_dry_run, setup, teardown),
		cmocka_unit_test_setup_teardown(clear_releases_everything_and_may_run_twice, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
