/*
 * NAME
 *	storefix.h - a parsed config and fresh stores for the unit tests of
 *	the pipelines
 * DESCRIPTION
 *	TU_CONF_PORTAL is the [portal] section the tests share (clinic.test
 *	addresses and domains). tu_config parses a config from printf-style
 *	text (relative paths against /tmp), failing the test with the
 *	parser's message when it does not parse. tu_store_fresh opens a new
 *	store DIR/sN (N counting up in *n; its path into path), so that each
 *	test of a group has its own. tu_thread_put writes a reply thread
 *	record (what a claimed event leaves behind) in a transaction of its
 *	own. tu_store_put writes one JSON record (and drops the reference
 *	it is given); tu_store_holds says whether the store's data file
 *	holds a string anywhere, in clear (a canary that must not be
 *	there). For test binaries only: each includes this once, after
 *	cmocka.h.
 */
#ifndef CAREPOST_TEST_STOREFIX_H
#define CAREPOST_TEST_STOREFIX_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "store.h"
#include "token.h"

#define TU_CONF_PORTAL \
	"[portal]\nclinic_name = Clinic\nportal_url = https://portal.test/\n" \
	"from_address = care@clinic.test\nreply_domain = reply.clinic.test\n" \
	"bounce_domain = bounce.clinic.test\n" \
	"unsubscribe_address = unsubscribe@clinic.test\n" \
	"unsubscribe_url = https://portal.test/unsubscribe/\n"

static inline struct cp_config *tu_config(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static inline struct cp_config *
tu_config(const char *fmt, ...)
{
	struct cp_config *cfg = NULL;
	struct cp_error err;
	va_list ap;
	char *text;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	cp_error_clear(&err);
	if (config_parse("t.conf", text, (size_t)n, "/tmp", &cfg, &err) < 0) {
		free(text);
		fail_msg("config: %s", err.text);
	}
	free(text);
	return cfg;
}

/* tu_store_fresh - a new store DIR/sN; NULL (err set) when it fails. */
static inline struct store *
tu_store_fresh(const char *dir, int *n, char *path, size_t pathlen,
	       uint64_t map_size, struct cp_error *err)
{
	struct store *s = NULL;

	if ((size_t)snprintf(path, pathlen, "%s/s%d", dir, (*n)++) >= pathlen ||
	    store_open(path, map_size, &s, err) < 0)
		return NULL;
	return s;
}

struct tu_thread_put {
	const uint8_t *id;
	json_t *rec;
};

static inline int
tu_thread_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct tu_thread_put *t = ud;

	return store_txn_put_json(s, txn, DB_THREADS, t->id, TOKEN_THREAD_BYTES, t->rec,
				  err);
}

/* tu_thread_put - thread id's record rec into the store (rec borrowed). */
static inline void
tu_thread_put(struct store *s, const uint8_t *id, json_t *rec)
{
	struct tu_thread_put t = { id, rec };
	struct cp_error err;

	cp_error_clear(&err);
	if (store_write(s, tu_thread_txn, &t, &err) < 0)
		fail_msg("thread: %s", err.text);
}

/* tu_store_put - v (taken) under key in db, failing the test otherwise. */
static inline void
tu_store_put(struct store *s, enum store_db db, const char *key, json_t *v)
{
	assert_non_null(v);
	assert_int_equal(store_put_json(s, db, key, v, NULL), 0);
	json_decref(v);
}

/* tu_store_holds - whether STORE_PATH/data.mdb holds needle. */
static inline int
tu_store_holds(const char *store_path, const char *needle)
{
	char path[512];
	char *data = NULL;
	size_t len = 0;
	int found;

	snprintf(path, sizeof(path), "%s/data.mdb", store_path);
	assert_int_equal(cp_read_file(path, 1u << 30, &data, &len), 0);
	found = memmem(data, len, needle, strlen(needle)) != NULL;
	free(data);
	return found;
}

#endif
