/*
 * NAME
 *	store - the LMDB store shared with the portal: layout and operations
 * DESCRIPTION
 *	See store.h for the layout. Records are JSON so that the portal can
 *	read delivery state back in any language; the schedule index is the
 *	one binary-keyed database, so that due work is a cursor walk.
 */
#include "store.h"
#include "event.h"
#include "token.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define STORE_MAP_LIMIT (64ULL << 30)

static const char *const db_names[DB__COUNT] = {
	"patients", "events", "delivery", "schedule", "threads", "bounces",
	"meta", "inbox", "clinic", "seen", "imap", "acks",
};

struct store {
	MDB_env *env;
	MDB_dbi dbi[DB__COUNT];
	uint64_t map_size;
};

static int
lmdb_error(struct cp_error *err, int rc, const char *what)
{
	if (rc == MDB_NOTFOUND)
		return cp_error_set(err, -ENOENT, "%s: not found", what);
	if (rc == MDB_MAP_FULL)
		return cp_error_set(err, -ENOSPC, "%s: store map full", what);
	if (rc > 0 && rc < 200)		/* a system errno */
		return cp_error_set(err, -rc, "%s: %s", what, mdb_strerror(rc));
	return cp_error_set(err, -EIO, "%s: %s", what, mdb_strerror(rc));
}

int
store_open(const char *path, uint64_t map_size, struct store **out,
	   struct cp_error *err)
{
	struct store *s;
	MDB_txn *txn;
	int rc, dead, i;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return cp_error_set(err, -errno, "store %s: cannot create: %s",
				    path, strerror(errno));
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return cp_error_set(err, -ENOMEM, "store: out of memory");
	s->map_size = map_size ? map_size : (1ULL << 30);
	if ((rc = mdb_env_create(&s->env)) != 0)
		goto fail;
	if ((rc = mdb_env_set_maxdbs(s->env, DB__COUNT + 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, s->map_size)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env, 126)) != 0)
		goto fail;
	if ((rc = mdb_env_open(s->env, path, MDB_NOTLS, 0600)) != 0)
		goto fail;
	mdb_reader_check(s->env, &dead);
	/* A larger map set by another process wins. */
	{
		MDB_envinfo info;

		if (mdb_env_info(s->env, &info) == 0 &&
		    info.me_mapsize > s->map_size)
			s->map_size = info.me_mapsize;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		goto fail;
	for (i = 0; i < DB__COUNT; i++) {
		unsigned flags = MDB_CREATE;

		if ((rc = mdb_dbi_open(txn, db_names[i], flags, &s->dbi[i])) != 0) {
			mdb_txn_abort(txn);
			goto fail;
		}
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	lmdb_error(err, rc, "store open");
	if (s->env)
		mdb_env_close(s->env);
	free(s);
	return err ? err->code : -EIO;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	mdb_env_close(s->env);
	free(s);
}

MDB_env *
store_env(struct store *s)
{
	return s->env;
}

MDB_dbi
store_dbi(struct store *s, enum store_db db)
{
	return s->dbi[db];
}

static int
grow_map(struct store *s)
{
	uint64_t want = s->map_size * 2;
	MDB_envinfo info;
	int rc;

	/* Another process may have grown the map past our s->map_size. */
	if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size)
		want = (uint64_t)info.me_mapsize * 2;
	if (want > STORE_MAP_LIMIT)
		return -ENOSPC;
	rc = mdb_env_set_mapsize(s->env, want);
	if (rc != 0)
		return -EIO;
	s->map_size = want;
	return 0;
}

/*
 * commit_error - LMDB reports a short write (a full file system) as EIO:
 * say what the admin has to fix when the store's file system is full.
 */
static int
commit_error(struct store *s, int rc, struct cp_error *err)
{
	const char *path = NULL;
	struct statvfs vfs;

	if ((rc == EIO || rc == ENOSPC || rc == EDQUOT) &&
	    mdb_env_get_path(s->env, &path) == 0 && path != NULL &&
	    statvfs(path, &vfs) == 0 &&
	    (unsigned long long)vfs.f_bavail * vfs.f_frsize < 1024 * 1024)
		return cp_error_set(err, -ENOSPC, "store commit: no space left on "
				    "the store's file system (%llu KiB free); "
				    "nothing was written",
				    (unsigned long long)vfs.f_bavail * vfs.f_frsize / 1024);
	return lmdb_error(err, rc, "store commit");
}

int
store_write(struct store *s, store_txn_fn fn, void *userdata,
	    struct cp_error *err)
{
	struct cp_error local;
	int attempt, rc, r;

	for (attempt = 0; attempt < 4; attempt++) {
		MDB_txn *txn;

		cp_error_clear(&local);
		rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			/* Another process grew the map: adopt its size. */
			mdb_env_set_mapsize(s->env, 0);
			continue;
		}
		if (rc != 0)
			return lmdb_error(err, rc, "store write begin");
		r = fn(s, txn, userdata, &local);
		if (r == -ENOSPC) {
			mdb_txn_abort(txn);
			if (grow_map(s) < 0)
				return cp_error_set(err, -ENOSPC,
					"store map full at %llu bytes and cannot grow",
					(unsigned long long)s->map_size);
			continue;
		}
		if (r < 0) {
			mdb_txn_abort(txn);
			if (err)
				*err = local;
			return r;
		}
		rc = mdb_txn_commit(txn);
		if (rc == MDB_MAP_FULL) {
			if (grow_map(s) < 0)
				return cp_error_set(err, -ENOSPC,
					"store map full and cannot grow");
			continue;
		}
		if (rc != 0)
			return commit_error(s, rc, err);
		return r;
	}
	return cp_error_set(err, -ENOSPC, "store write: map still full after growing");
}

int
store_txn_get_json(struct store *s, MDB_txn *txn, enum store_db db,
		   const void *key, size_t keylen, json_t **out,
		   struct cp_error *err)
{
	MDB_val k = { keylen, (void *)key }, v;
	json_error_t jerr;
	int rc;

	rc = mdb_get(txn, s->dbi[db], &k, &v);
	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	*out = json_loadb(v.mv_data, v.mv_size, JSON_REJECT_DUPLICATES, &jerr);
	if (*out == NULL)
		return cp_error_set(err, -EBADMSG, "%s: invalid JSON at line %d",
				    db_names[db], jerr.line);
	return 0;
}

int
store_txn_put_json(struct store *s, MDB_txn *txn, enum store_db db,
		   const void *key, size_t keylen, json_t *value,
		   struct cp_error *err)
{
	MDB_val k = { keylen, (void *)key }, v;
	char *text;
	int rc;

	text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return cp_error_set(err, -ENOMEM, "%s: cannot encode", db_names[db]);
	v.mv_size = strlen(text);
	v.mv_data = text;
	rc = mdb_put(txn, s->dbi[db], &k, &v, 0);
	free(text);
	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	return 0;
}

/* is_base64 - only the base64 alphabet and padding: no JSON escapes. */
static int
is_base64(const char *s, size_t len)
{
	unsigned int all = 1;

	/* without branches: this runs over every sealed blob */
	for (size_t i = 0; i < len; i++) {
		unsigned int c = (unsigned char)s[i];

		all &= (c - 'A' < 26u) | (c - 'a' < 26u) | (c - '0' < 10u) |
		       (c == '+') | (c == '/') | (c == '=');
	}
	return (int)all;
}

static int
plain_name(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
			return 0;
	return 1;
}

int
store_json_dump_b64(json_t *value, const char *name, const char *b64,
		    size_t b64len, char **out, size_t *len)
{
	_cleanup_free_ char *text = NULL;
	size_t tl, nl = strlen(name), total;
	char *p;

	*out = NULL;
	*len = 0;
	if (!json_is_object(value) || !plain_name(name) ||
	    json_object_get(value, name) != NULL || !is_base64(b64, b64len))
		return -EINVAL;
	text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return -ENOMEM;
	tl = strlen(text);		/* "{...}": at least "{}" */
	if (tl < 2 || text[tl - 1] != '}' || b64len > (size_t)-1 / 2)
		return -EINVAL;
	/* text without its '}', a comma unless empty, "name":"b64"} */
	total = tl - 1 + (tl > 2) + 1 + nl + 3 + b64len + 2;
	p = malloc(total + 1);
	if (p == NULL)
		return -ENOMEM;
	*out = p;
	memcpy(p, text, tl - 1);
	p += tl - 1;
	if (tl > 2)
		*p++ = ',';
	*p++ = '"';
	memcpy(p, name, nl);
	p += nl;
	memcpy(p, "\":\"", 3);
	p += 3;
	memcpy(p, b64, b64len);
	p += b64len;
	memcpy(p, "\"}", 3);
	*len = total;
	return 0;
}

int
store_txn_put_json_b64(struct store *s, MDB_txn *txn, enum store_db db,
		       const void *key, size_t keylen, json_t *value,
		       const char *name, const char *b64, size_t b64len,
		       struct cp_error *err)
{
	MDB_val k = { keylen, (void *)key }, v;
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r, rc;

	r = store_json_dump_b64(value, name, b64, b64len, &text, &len);
	if (r < 0)
		return cp_error_set(err, r, "%s: cannot encode", db_names[db]);
	v.mv_size = len;
	v.mv_data = text;
	rc = mdb_put(txn, s->dbi[db], &k, &v, 0);
	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	return 0;
}

int
store_txn_del(struct store *s, MDB_txn *txn, enum store_db db,
	      const void *key, size_t keylen, struct cp_error *err)
{
	MDB_val k = { keylen, (void *)key };
	int rc = mdb_del(txn, s->dbi[db], &k, NULL);

	if (rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_error(err, rc, db_names[db]);
	return 0;
}

int
store_get_json(struct store *s, enum store_db db, const char *key,
	       json_t **out, struct cp_error *err)
{
	MDB_txn *txn;
	int rc, r;

	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	r = store_txn_get_json(s, txn, db, key, strlen(key), out, err);
	mdb_txn_abort(txn);
	return r;
}

struct put_one {
	enum store_db db;
	const char *key;
	json_t *value;
};

static int
put_one_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct put_one *p = ud;

	return store_txn_put_json(s, txn, p->db, p->key, strlen(p->key),
				  p->value, err);
}

int
store_put_json(struct store *s, enum store_db db, const char *key,
	       json_t *value, struct cp_error *err)
{
	struct put_one p = { db, key, value };

	return store_write(s, put_one_txn, &p, err);
}

struct put_raw {
	const char *id;
	const char *json;
	size_t len;
};

static int
put_raw_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct put_raw *p = ud;
	MDB_val k = { strlen(p->id), (void *)p->id };
	MDB_val v = { p->len, (void *)p->json };
	int rc = mdb_put(txn, s->dbi[DB_EVENTS], &k, &v, 0);

	return rc ? lmdb_error(err, rc, "events") : 0;
}

int
store_put_event_raw(struct store *s, const char *id, const char *json,
		    size_t len, struct cp_error *err)
{
	struct put_raw p = { id, json, len };

	if (!id_valid(id))
		return cp_error_set(err, -EINVAL, "event id: expected 1-128 of [A-Za-z0-9._:@-]");
	if (len > EVENT_JSON_MAX)
		return cp_error_set(err, -EFBIG, "event %s: JSON over %d bytes", id, EVENT_JSON_MAX);
	return store_write(s, put_raw_txn, &p, err);
}

/* The schedule key: 8-byte big-endian due time, then the event id. */
static size_t
schedule_key(char *key, int64_t due, const char *id)
{
	uint64_t u = due < 0 ? 0 : (uint64_t)due;
	size_t n = strlen(id);
	int i;

	for (i = 7; i >= 0; i--) {
		key[i] = (char)(u & 0xff);
		u >>= 8;
	}
	memcpy(key + 8, id, n);
	return 8 + n;
}

static int64_t
schedule_key_due(const MDB_val *k)
{
	const unsigned char *p = k->mv_data;
	uint64_t u = 0;
	int i;

	for (i = 0; i < 8; i++)
		u = (u << 8) | p[i];
	return (int64_t)u;
}

static int
schedule_put(struct store *s, MDB_txn *txn, int64_t due, const char *id,
	     struct cp_error *err)
{
	char key[8 + STORE_ID_MAX + 1];
	MDB_val k, v = { 0, (void *)"" };
	int rc;

	k.mv_size = schedule_key(key, due, id);
	k.mv_data = key;
	rc = mdb_put(txn, s->dbi[DB_SCHEDULE], &k, &v, 0);
	return rc ? lmdb_error(err, rc, "schedule") : 0;
}

static int
schedule_del(struct store *s, MDB_txn *txn, int64_t due, const char *id,
	     struct cp_error *err)
{
	char key[8 + STORE_ID_MAX + 1];

	return store_txn_del(s, txn, DB_SCHEDULE, key,
			     schedule_key(key, due, id), err);
}

int
store_state_final(const char *state)
{
	return state && (strcmp(state, "sent") == 0 ||
			 strcmp(state, "failed") == 0 ||
			 strcmp(state, "expired") == 0 ||
			 strcmp(state, "suppressed") == 0);
}

/* A delivery record for a claimed event (valid or not). */
static json_t *
delivery_new(const char *id, json_t *ev, int64_t now)
{
	json_t *d = json_object();

	json_object_set_new(d, "id", json_string(id));
	json_object_set_new(d, "state", json_string("queued"));
	json_object_set_new(d, "created", json_integer(now));
	json_object_set_new(d, "updated", json_integer(now));
	json_object_set_new(d, "due", json_integer(now));
	json_object_set_new(d, "attempts", json_integer(0));
	json_object_set_new(d, "recipients", json_array());
	if (ev == NULL)
		return d;
	json_object_set(d, "type", json_object_get(ev, "type"));
	json_object_set(d, "patient", json_object_get(ev, "patient"));
	return d;
}

static int
delivery_fail_new(struct store *s, MDB_txn *txn, const char *id,
		  json_t *ev, const char *reason, int64_t now,
		  struct cp_error *err)
{
	json_t *d = delivery_new(id, ev, now);
	int r;

	/* An invalid event keeps no data: nothing to scrub later. */
	if (ev && json_is_string(json_object_get(ev, "type")) &&
	    !event_type_find(json_string_value(json_object_get(ev, "type"))))
		json_object_set_new(d, "type", json_string("unknown"));
	json_object_set_new(d, "state", json_string("failed"));
	json_object_set_new(d, "reason", json_string(reason));
	json_object_set_new(d, "scrubbed", json_true());
	r = store_txn_put_json(s, txn, DB_DELIVERY, id, strlen(id), d, err);
	json_decref(d);
	return r;
}

/*
 * thread_form_fields - a form_request thread keeps its field spec
 * ({"name","required"} only), for form_parse on ingest: the event's data
 * is scrubbed once delivered, the thread outlives it.
 */
static void
thread_form_fields(json_t *th, json_t *ev)
{
	json_t *fields = json_object_get(json_object_get(ev, "data"), "fields");
	json_t *spec, *f;
	size_t i;

	if (strcmp(json_string_value(json_object_get(ev, "type")) ?: "", "form_request") != 0 ||
	    !json_is_array(fields))
		return;
	spec = json_array();
	json_array_foreach(fields, i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));

		if (name == NULL || i >= 200)
			continue;
		json_array_append_new(spec, json_pack("{s:s, s:b}", "name", name,
			"required", json_is_true(json_object_get(f, "required"))));
	}
	json_object_set_new(th, "form_fields", spec);
}

struct claim {
	int64_t now;
	int token_ttl;
	size_t max;
	size_t claimed;
};

static int
claim_one(struct store *s, MDB_txn *txn, const char *id, MDB_val *val,
	  struct claim *c, struct cp_error *err)
{
	MDB_val dk = { strlen(id), (void *)id }, dv;
	json_t *ev, *patient = NULL, *d, *t;
	json_error_t jerr;
	char reason[160];
	uint8_t thread[TOKEN_THREAD_BYTES];
	char thread_hex[2 * TOKEN_THREAD_BYTES + 1];
	int64_t send_at, expires_at;
	int rc, r;

	rc = mdb_get(txn, s->dbi[DB_DELIVERY], &dk, &dv);
	if (rc == 0)
		return 0;		/* the same id again: sent once */
	if (rc != MDB_NOTFOUND)
		return lmdb_error(err, rc, "delivery");

	if (val->mv_size > EVENT_JSON_MAX)
		return delivery_fail_new(s, txn, id, NULL,
			"invalid event: JSON over 256 KiB", c->now, err);
	ev = json_loadb(val->mv_data, val->mv_size, JSON_REJECT_DUPLICATES, &jerr);
	if (ev == NULL) {
		snprintf(reason, sizeof(reason),
			 "invalid event: not JSON (line %d, column %d)",
			 jerr.line, jerr.column);
		return delivery_fail_new(s, txn, id, NULL, reason, c->now, err);
	}
	if (event_validate(ev, reason + 15, sizeof(reason) - 15) < 0) {
		memcpy(reason, "invalid event: ", 15);
		r = delivery_fail_new(s, txn, id, ev, reason, c->now, err);
		json_decref(ev);
		return r;
	}
	if (strcmp(json_string_value(json_object_get(ev, "id")), id) != 0) {
		r = delivery_fail_new(s, txn, id, ev,
			"invalid event: field id differs from its key", c->now, err);
		json_decref(ev);
		return r;
	}
	t = json_object_get(ev, "patient");
	r = store_txn_get_json(s, txn, DB_PATIENTS, json_string_value(t),
			       strlen(json_string_value(t)), &patient, NULL);
	if (r < 0) {
		r = delivery_fail_new(s, txn, id, ev,
			r == -ENOENT ? "unknown patient" : "patient record unreadable",
			c->now, err);
		json_decref(ev);
		return r;
	}
	json_decref(patient);

	send_at = event_time(ev, "send_at");
	expires_at = event_time(ev, "expires_at");
	token_thread_from_id(id, thread);
	cp_hex(thread, sizeof(thread), thread_hex);

	d = delivery_new(id, ev, c->now);
	json_object_set_new(d, "due", json_integer(send_at > c->now ? send_at : c->now));
	if (send_at)
		json_object_set_new(d, "send_at", json_integer(send_at));
	if (expires_at)
		json_object_set_new(d, "expires_at", json_integer(expires_at));
	json_object_set_new(d, "priority", json_string(
		json_string_value(json_object_get(ev, "priority")) ?: "normal"));
	json_object_set_new(d, "confidential",
		json_boolean(json_is_true(json_object_get(ev, "confidential"))));
	if (json_is_string(json_object_get(ev, "department")))
		json_object_set(d, "department", json_object_get(ev, "department"));
	json_object_set_new(d, "thread", json_string(thread_hex));
	if (json_is_object(json_object_get(ev, "data")))
		json_object_set(d, "data", json_object_get(ev, "data"));
	else
		json_object_set_new(d, "data", json_object());

	r = store_txn_put_json(s, txn, DB_DELIVERY, id, strlen(id), d, err);
	if (r == 0)
		r = schedule_put(s, txn, json_integer_value(json_object_get(d, "due")),
				 id, err);
	if (r == 0) {
		json_t *th = json_object();
		int64_t exp = (expires_at ? expires_at : c->now) + c->token_ttl;

		json_object_set_new(th, "event", json_string(id));
		json_object_set(th, "patient", json_object_get(ev, "patient"));
		json_object_set(th, "type", json_object_get(ev, "type"));
		if (json_is_string(json_object_get(ev, "department")))
			json_object_set(th, "department", json_object_get(ev, "department"));
		json_object_set_new(th, "created", json_integer(c->now));
		json_object_set_new(th, "expires", json_integer(exp));
		if (json_is_true(json_object_get(ev, "confidential")))
			json_object_set_new(th, "confidential", json_true());
		thread_form_fields(th, ev);
		r = store_thread_put_txn(s, txn, thread, th, err);
		json_decref(th);
	}
	json_decref(d);
	json_decref(ev);
	return r;
}

static int
claim_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct claim *c = ud;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, r = 0;

	c->claimed = 0;
	rc = mdb_cursor_open(txn, s->dbi[DB_EVENTS], &cur);
	if (rc != 0)
		return lmdb_error(err, rc, "events");
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0 && c->claimed < c->max) {
		char id[STORE_ID_MAX + 2];

		if (k.mv_size == 0 || k.mv_size > STORE_ID_MAX ||
		    memchr(k.mv_data, '\0', k.mv_size)) {
			/* Not an id we could ever report on: drop it. */
			r = 0;
		} else {
			memcpy(id, k.mv_data, k.mv_size);
			id[k.mv_size] = '\0';
			if (!id_valid(id))
				r = delivery_fail_new(s, txn, id, NULL,
					"invalid event: bad id", c->now, err);
			else
				r = claim_one(s, txn, id, &v, c, err);
		}
		if (r < 0)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0) {
			r = lmdb_error(err, rc, "events");
			break;
		}
		c->claimed++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
		if (rc == MDB_NOTFOUND || rc == EINVAL)
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	mdb_cursor_close(cur);
	if (r < 0)
		return r;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_error(err, rc, "events");
	return 0;
}

int
store_claim_events(struct store *s, int64_t now, int token_ttl, size_t max,
		   size_t *claimed, struct cp_error *err)
{
	struct claim c = { now, token_ttl, max, 0 };
	int r = store_write(s, claim_txn, &c, err);

	if (claimed)
		*claimed = r < 0 ? 0 : c.claimed;
	return r;
}

struct take {
	int64_t now;
	int lease;
	size_t max;
	json_t *batch;
};

static int
take_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct take *t = ud;
	MDB_cursor *cur;
	MDB_val k, v;
	json_t *ids = json_array();
	size_t i;
	int rc, r = 0;

	json_array_clear(t->batch);
	rc = mdb_cursor_open(txn, s->dbi[DB_SCHEDULE], &cur);
	if (rc != 0) {
		json_decref(ids);
		return lmdb_error(err, rc, "schedule");
	}
	/* Collect first: rescheduling moves keys under the cursor. */
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     rc == 0 && json_array_size(ids) < t->max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= 8 || k.mv_size > 8 + STORE_ID_MAX)
			continue;
		if (schedule_key_due(&k) > t->now)
			break;
		json_array_append_new(ids, json_pack("[I,s%]", (json_int_t)schedule_key_due(&k),
						     (char *)k.mv_data + 8, k.mv_size - 8));
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		json_decref(ids);
		return lmdb_error(err, rc, "schedule");
	}
	for (i = 0; i < json_array_size(ids) && r == 0; i++) {
		json_t *entry = json_array_get(ids, i), *d;
		const char *id = json_string_value(json_array_get(entry, 1));
		int64_t key_due = json_integer_value(json_array_get(entry, 0));
		int64_t old;

		/* The entry found goes, whatever the record says. */
		r = schedule_del(s, txn, key_due, id, err);
		if (r < 0)
			break;
		r = store_txn_get_json(s, txn, DB_DELIVERY, id, strlen(id), &d, err);
		if (r == -ENOENT) {
			/* A schedule entry without a record: dropped above. */
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		old = json_integer_value(json_object_get(d, "due"));
		if (old != key_due)
			r = schedule_del(s, txn, old, id, err);
		if (r == 0 && store_state_final(json_string_value(json_object_get(d, "state")))) {
			json_decref(d);
			continue;
		}
		json_object_set_new(d, "state", json_string("sending"));
		json_object_set_new(d, "attempts", json_integer(
			json_integer_value(json_object_get(d, "attempts")) + 1));
		json_object_set_new(d, "updated", json_integer(t->now));
		json_object_set_new(d, "due", json_integer(t->now + t->lease));
		if (r == 0)
			r = schedule_put(s, txn, t->now + t->lease, id, err);
		if (r == 0)
			r = store_txn_put_json(s, txn, DB_DELIVERY, id, strlen(id), d, err);
		if (r == 0)
			json_array_append(t->batch, d);
		json_decref(d);
	}
	json_decref(ids);
	return r;
}

int
store_take_due(struct store *s, int64_t now, int lease, size_t max,
	       json_t **batch, struct cp_error *err)
{
	struct take t = { now, lease, max, json_array() };
	int r = store_write(s, take_txn, &t, err);

	if (r < 0) {
		json_decref(t.batch);
		*batch = NULL;
		return r;
	}
	*batch = t.batch;
	return 0;
}

static int
update_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	json_t *records = ud, *d;
	size_t i;
	int r = 0;

	json_array_foreach(records, i, d) {
		const char *id = json_string_value(json_object_get(d, "id"));
		json_t *old;
		int64_t old_due, due;

		if (id == NULL)
			continue;
		r = store_txn_get_json(s, txn, DB_DELIVERY, id, strlen(id), &old, err);
		if (r < 0)
			return r;
		old_due = json_integer_value(json_object_get(old, "due"));
		json_decref(old);
		r = schedule_del(s, txn, old_due, id, err);
		if (r < 0)
			return r;
		if (store_state_final(json_string_value(json_object_get(d, "state")))) {
			json_object_del(d, "data");
			json_object_set_new(d, "scrubbed", json_true());
		} else {
			due = json_integer_value(json_object_get(d, "due"));
			r = schedule_put(s, txn, due, id, err);
			if (r < 0)
				return r;
		}
		r = store_txn_put_json(s, txn, DB_DELIVERY, id, strlen(id), d, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int
store_update_deliveries(struct store *s, json_t *records, struct cp_error *err)
{
	return store_write(s, update_txn, records, err);
}

struct retry {
	const char *id;
	int64_t now;
};

static int
retry_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct retry *rt = ud;
	json_t *d, *rcpt;
	const char *state;
	size_t i;
	int r;

	r = store_txn_get_json(s, txn, DB_DELIVERY, rt->id, strlen(rt->id), &d, err);
	if (r < 0)
		return r;
	state = json_string_value(json_object_get(d, "state"));
	if (json_is_true(json_object_get(d, "scrubbed"))) {
		r = cp_error_set(err, -EPERM,
			"event %s: %s and its data scrubbed: the portal must write a new event",
			rt->id, state ? state : "final");
		json_decref(d);
		return r;
	}
	r = schedule_del(s, txn, json_integer_value(json_object_get(d, "due")),
			 rt->id, err);
	json_array_foreach(json_object_get(d, "recipients"), i, rcpt)
		if (strcmp(json_string_value(json_object_get(rcpt, "state")) ?: "", "failed") == 0)
			json_object_set_new(rcpt, "state", json_string("pending"));
	json_object_set_new(d, "state", json_string("queued"));
	json_object_set_new(d, "due", json_integer(rt->now));
	json_object_set_new(d, "updated", json_integer(rt->now));
	json_object_set_new(d, "attempts", json_integer(0));
	json_object_set_new(d, "reason", json_string("retry requested"));
	if (r == 0)
		r = schedule_put(s, txn, rt->now, rt->id, err);
	if (r == 0)
		r = store_txn_put_json(s, txn, DB_DELIVERY, rt->id, strlen(rt->id), d, err);
	json_decref(d);
	return r;
}

int
store_retry(struct store *s, const char *event_id, int64_t now,
	    struct cp_error *err)
{
	struct retry rt = { event_id, now };

	return store_write(s, retry_txn, &rt, err);
}

int
store_next_due(struct store *s, int64_t *due, struct cp_error *err)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*due = INT64_MAX;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	rc = mdb_cursor_open(txn, s->dbi[DB_SCHEDULE], &cur);
	if (rc == 0) {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		if (rc == 0 && k.mv_size > 8)
			*due = schedule_key_due(&k);
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_error(err, rc, "schedule");
	return 0;
}

/*
 * walk - store_foreach and store_foreach_prefix: from the first key at or
 * after prefix (the first key when plen is 0), while keys begin with it.
 */
static int
walk(struct store *s, enum store_db db, const char *prefix, size_t plen,
     store_each_fn fn, void *userdata, struct cp_error *err)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { plen, (void *)prefix }, v;
	MDB_cursor_op op = plen > 0 ? MDB_SET_RANGE : MDB_FIRST;
	int rc, r = 0;

	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	rc = mdb_cursor_open(txn, s->dbi[db], &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return lmdb_error(err, rc, db_names[db]);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *value;

		if (plen > 0 && (k.mv_size < plen ||
				 memcmp(k.mv_data, prefix, plen) != 0))
			break;		/* past the keys that begin with prefix */
		value = json_loadb(v.mv_data, v.mv_size, 0, NULL);
		r = fn(userdata, k.mv_data, k.mv_size, value);
		json_decref(value);
		if (r != 0)
			break;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (r != 0)
		return r;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_error(err, rc, db_names[db]);
	return 0;
}

int
store_foreach(struct store *s, enum store_db db, store_each_fn fn,
	      void *userdata, struct cp_error *err)
{
	return walk(s, db, NULL, 0, fn, userdata, err);
}

int
store_foreach_prefix(struct store *s, enum store_db db, const char *prefix,
		     store_each_fn fn, void *userdata, struct cp_error *err)
{
	return walk(s, db, prefix, prefix ? strlen(prefix) : 0, fn, userdata, err);
}

int
store_count(struct store *s, enum store_db db, size_t *n, struct cp_error *err)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	rc = mdb_stat(txn, s->dbi[db], &st);
	mdb_txn_abort(txn);
	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	*n = st.ms_entries;
	return 0;
}

int
store_txn_enqueue_delivery(struct store *s, MDB_txn *txn, json_t *record,
			   struct cp_error *err)
{
	const char *id = json_string_value(json_object_get(record, "id"));
	int r;

	if (!id_valid(id))
		return cp_error_set(err, -EINVAL, "delivery record: bad id");
	r = store_txn_put_json(s, txn, DB_DELIVERY, id, strlen(id), record, err);
	if (r == 0)
		r = schedule_put(s, txn, json_integer_value(json_object_get(record, "due")),
				 id, err);
	return r;
}

int
store_thread_put_txn(struct store *s, MDB_txn *txn, const uint8_t thread[10],
		     json_t *value, struct cp_error *err)
{
	return store_txn_put_json(s, txn, DB_THREADS, thread, 10, value, err);
}

int
store_thread_get(struct store *s, const uint8_t thread[10], json_t **out,
		 struct cp_error *err)
{
	MDB_txn *txn;
	int rc, r;

	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	r = store_txn_get_json(s, txn, DB_THREADS, thread, 10, out, err);
	mdb_txn_abort(txn);
	return r;
}

int
store_oldest_pending(struct store *s, int64_t *created, struct cp_error *err)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v, dk, dv;
	int rc;

	*created = INT64_MAX;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	rc = mdb_cursor_open(txn, s->dbi[DB_SCHEDULE], &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return lmdb_error(err, rc, "schedule");
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *rec;
		int64_t c;

		if (k.mv_size <= 8)
			continue;
		dk.mv_data = (char *)k.mv_data + 8;
		dk.mv_size = k.mv_size - 8;
		if (mdb_get(txn, s->dbi[DB_DELIVERY], &dk, &dv) != 0)
			continue;
		rec = json_loadb(dv.mv_data, dv.mv_size, 0, NULL);
		c = json_integer_value(json_object_get(rec, "created"));
		json_decref(rec);
		if (c > 0 && c < *created)
			*created = c;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		return lmdb_error(err, rc, "schedule");
	return 0;
}

struct release {
	int64_t now;
	size_t n;
};

static int
release_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct release *rl = ud;
	MDB_cursor *cur;
	MDB_val k, v;
	json_t *leased = json_array(), *entry;
	size_t i;
	int rc, r = 0;

	rl->n = 0;
	rc = mdb_cursor_open(txn, s->dbi[DB_SCHEDULE], &cur);
	if (rc != 0) {
		json_decref(leased);
		return lmdb_error(err, rc, "schedule");
	}
	/* Leases run into the future: only entries due after now. */
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		MDB_val dk, dv;
		json_t *d;

		if (k.mv_size <= 8 || k.mv_size > 8 + STORE_ID_MAX ||
		    schedule_key_due(&k) <= rl->now)
			continue;
		dk.mv_data = (char *)k.mv_data + 8;
		dk.mv_size = k.mv_size - 8;
		if (mdb_get(txn, s->dbi[DB_DELIVERY], &dk, &dv) != 0)
			continue;
		d = json_loadb(dv.mv_data, dv.mv_size, 0, NULL);
		if (d && strcmp(json_string_value(json_object_get(d, "state")) ?: "",
				"sending") == 0)
			json_array_append_new(leased, json_pack("[I,s%]",
				(json_int_t)schedule_key_due(&k), (char *)dk.mv_data, dk.mv_size));
		json_decref(d);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		json_decref(leased);
		return lmdb_error(err, rc, "schedule");
	}
	json_array_foreach(leased, i, entry) {
		const char *id = json_string_value(json_array_get(entry, 1));
		json_t *d = NULL;

		r = schedule_del(s, txn, json_integer_value(json_array_get(entry, 0)),
				 id, err);
		if (r == 0)
			r = store_txn_get_json(s, txn, DB_DELIVERY, id, strlen(id), &d, err);
		if (r < 0)
			break;
		json_object_set_new(d, "state", json_string("queued"));
		json_object_set_new(d, "due", json_integer(rl->now));
		json_object_set_new(d, "updated", json_integer(rl->now));
		r = schedule_put(s, txn, rl->now, id, err);
		if (r == 0)
			r = store_txn_put_json(s, txn, DB_DELIVERY, id, strlen(id), d, err);
		json_decref(d);
		if (r < 0)
			break;
		rl->n++;
	}
	json_decref(leased);
	return r;
}

int
store_release_leases(struct store *s, int64_t now, size_t *released,
		     struct cp_error *err)
{
	struct release rl = { now, 0 };
	int r = store_write(s, release_txn, &rl, err);

	*released = r < 0 ? 0 : rl.n;
	return r;
}

int
store_lock_sender(const char *store_path, struct cp_error *err)
{
	char path[4096];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/carepostd.lock", store_path) >=
	    sizeof(path))
		return cp_error_set(err, -ENAMETOOLONG, "%s: path too long", store_path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return cp_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		close(fd);
		if (e == EWOULDBLOCK)
			return cp_error_set(err, -EBUSY, "%s: another carepostd is "
					    "running on this store", path);
		return cp_error_set(err, -e, "%s: %s", path, strerror(e));
	}
	return fd;
}
