/*
 * NAME
 *	fuzz_inbound - libFuzzer target: inbound_ingest's decisions (dry run)
 * DESCRIPTION
 *	LLVMFuzzerInitialize makes a throwaway store holding one patient
 *	with a proxy and four threads (a reply thread, a form thread, a
 *	security thread, an expired one) and a delivery record, and an
 *	inbound path over it with a token key. Each input is a raw message in
 *	which every "TOKn" (n = 0..3) is replaced by the valid reply token
 *	of thread n and "VERP" by the valid VERP local part (token and
 *	recipient tag) of thread 0's first recipient, so that the fuzzer
 *	reaches authentication, forms, unsubscribes and bounce mapping
 *	rather than stopping at "forged token". The path runs as a dry run:
 *	the decision is made, nothing is written. Whatever the input: 0 is
 *	returned (no infrastructure can fail here), the summary is an
 *	object with a class, and the reason holds no '@' (no address ever
 *	reaches a reason). GNUPGHOME points at an empty directory: PGP
 *	parts fail to decrypt and quarantine. The message is parsed in the
 *	fuzzer's own process (inbound_parse_in_process), not in the parse
 *	helper.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "config.h"
#include "inbound.h"
#include "log.h"
#include "store.h"
#include "token.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1795626000LL

static const char key[] = "fuzz-key-0123456789abcdef";
static struct cp_config *cfg;
static struct store *store;
static struct inbound *ib;
static char tokens[4][TOKEN_SIZE];
static char verp[TOKEN_SIZE + TOKEN_TAG_SIZE + 8];

struct seed {
	const char *event, *type, *extra;
	int64_t expires;
};

static const struct seed seeds[4] = {
	{ "ev-reply", "provider_message", NULL, NOW + 86400 },
	{ "ev-form", "form_request",
	  "{\"form_fields\":[{\"name\":\"Pain level\",\"required\":true}]}", NOW + 86400 },
	{ "ev-sec", "contact_info_changed", "{\"confidential\":true}", NOW + 86400 },
	{ "ev-old", "appointment_reminder", NULL, NOW - 86400 },
};

static int
seed_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	json_t *p = json_pack("{s:s, s:s, s:[{s:s}]}", "id", "p1", "email",
			      "pat@patients.test", "proxies", "email", "prox@proxies.test");
	json_t *d = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}]}", "id", "ev-reply",
			      "type", "provider_message", "patient", "p1",
			      "recipients", "ref", "patient", "state", "sent");
	int r = store_txn_put_json(s, txn, DB_PATIENTS, "p1", 2, p, err);

	if (r == 0)
		r = store_txn_put_json(s, txn, DB_DELIVERY, "ev-reply", 8, d, err);
	json_decref(p);
	json_decref(d);
	for (size_t i = 0; r == 0 && i < 4; i++) {
		uint8_t th[TOKEN_THREAD_BYTES];
		json_t *t = json_pack("{s:s, s:s, s:s, s:I}", "event", seeds[i].event,
				      "patient", "p1", "type", seeds[i].type,
				      "expires", (json_int_t)seeds[i].expires);

		if (seeds[i].extra) {
			json_t *x = json_loads(seeds[i].extra, 0, NULL);

			json_object_update(t, x);
			json_decref(x);
		}
		token_thread_from_id(seeds[i].event, th);
		r = store_txn_put_json(s, txn, DB_THREADS, th, TOKEN_THREAD_BYTES, t, err);
		json_decref(t);
		token_make(key, sizeof(key) - 1, th, seeds[i].expires + 86400, tokens[i]);
	}
	return r;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char conf[] =
		"[portal]\nreply_domain = reply.example\nbounce_domain = bounce.example\n"
		"unsubscribe_address = unsubscribe@example\nfrom_address = care@example\n"
		"[routing]\nurgent_words = urgent, chest pain\nstaff.general = desk@example\n"
		"[security]\ntrusted_authserv_id = mx.example\n";
	char dir[] = "/tmp/cpfuzz.XXXXXX";
	char path[64], home[64];
	struct cp_error err;

	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(home, sizeof(home), "%s/gnupg", dir);
	mkdir(home, 0700);
	setenv("GNUPGHOME", home, 1);
	log_setup("fuzz_inbound", LOG_TARGET_STDERR, LOG_EMERG);
	if (config_parse("fuzz.conf", conf, sizeof(conf) - 1, NULL, &cfg, &err) < 0 ||
	    store_open(path, 256u << 20, &store, &err) < 0 ||
	    store_write(store, seed_txn, NULL, &err) < 0 ||
	    inbound_new(cfg, store, key, sizeof(key) - 1, &ib, &err) < 0)
		abort();
	/* The decisions are fuzzed here, the parser in fuzz_inmsg: no helper. */
	inbound_parse_in_process(ib);
	{
		uint8_t th[TOKEN_THREAD_BYTES];
		char tag[TOKEN_TAG_SIZE];

		token_thread_from_id(seeds[0].event, th);
		if (token_rcpt_tag(key, sizeof(key) - 1, TOKEN_LABEL_VERP, th, 0, tag) < 0)
			abort();
		snprintf(verp, sizeof(verp), "%s.r0.%s", tokens[0], tag);
	}
	return 0;
}

/* expand - the input with TOKn and VERP replaced. */
static int
expand(const uint8_t *data, size_t size, struct buf *out)
{
	size_t i = 0;
	int r = 0;

	while (i < size && r == 0) {
		if (i + 4 <= size && memcmp(data + i, "TOK", 3) == 0 &&
		    data[i + 3] >= '0' && data[i + 3] <= '3') {
			r = buf_puts(out, tokens[data[i + 3] - '0']);
			i += 4;
		} else if (i + 4 <= size && memcmp(data + i, "VERP", 4) == 0) {
			r = buf_puts(out, verp);
			i += 4;
		} else {
			r = buf_append(out, data + i, 1);
			i++;
		}
	}
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf raw = BUF_INIT;
	struct inbound_result res;
	struct cp_error err;
	int r;

	if (size > (1u << 20) || expand(data, size, &raw) < 0) {
		buf_free(&raw);
		return 0;
	}
	r = inbound_ingest(ib, raw.data ? raw.data : "", raw.len, NOW, 1, &res, &err);
	if (r < 0 && r != -ENOMEM)
		abort();
	if (r == 0) {
		if (!json_is_object(res.summary) ||
		    !json_is_string(json_object_get(res.summary, "class")))
			abort();
		if (strchr(res.reason, '@') != NULL)
			abort();
		if (res.disposition == INBOUND_FILED &&
		    strcmp(json_string_value(json_object_get(json_object_get(res.summary,
			"authentication"), "status")) ?: "", "pass") != 0)
			abort();
	}
	inbound_result_clear(&res);
	buf_free(&raw);
	return 0;
}
