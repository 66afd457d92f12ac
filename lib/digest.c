/*
 * digest.c - the digest windows (digest.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "digest.h"
#include "record.h"

/* window_key - "PATIENT/CATEGORY" into key; -1 when it does not fit. */
static int
window_key(const char *patient, const char *category, char key[DIGEST_KEY_MAX])
{
	if (patient == NULL || category == NULL || strchr(patient, '/') != NULL)
		return -1;
	return cp_snprintf_ok(key, DIGEST_KEY_MAX, "%s/%s", patient, category);
}

int64_t
digest_until(struct store *s, const char *patient, const char *category)
{
	char key[DIGEST_KEY_MAX];
	struct alert_window w;
	json_t *v = NULL;
	int r;

	if (window_key(patient, category, key) < 0 ||
	    store_get_json(s, DB_DIGESTS, key, &v, NULL) < 0)
		return 0;
	r = alert_window_load(v, &w, NULL);
	json_decref(v);
	return r < 0 || w.until < 0 ? 0 : (int64_t)w.until;
}

struct opening {
	const struct digest_window *w;
	size_t n;
};

static int
open_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	const struct opening *o = userdata;

	for (size_t i = 0; i < o->n; i++) {
		char key[DIGEST_KEY_MAX];
		struct alert_window aw = { .until = (time_t)o->w[i].until };
		json_t *v;
		int r;

		if (window_key(o->w[i].patient, o->w[i].category, key) < 0)
			continue;
		v = alert_window_dump(&aw);
		if (v == NULL)
			return cp_error_set(err, -ENOMEM, "digests: out of memory");
		r = store_txn_put_json(s, txn, DB_DIGESTS, key, strlen(key), v, err);
		json_decref(v);
		if (r < 0)
			return r;
	}
	return 0;
}

int
digest_open(struct store *s, const struct digest_window *w, size_t n,
	    struct cp_error *err)
{
	struct opening o = { w, n };

	if (n == 0)
		return 0;
	return store_write(s, open_txn, &o, err);
}

int
digest_window_ended(json_t *value, int64_t now)
{
	struct alert_window w;

	return alert_window_load(value, &w, NULL) < 0 || (int64_t)w.until <= now;
}
