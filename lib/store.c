/*
 * NAME
 *	store - the LMDB store shared with the portal: layout and operations
 * DESCRIPTION
 *	See store.h for the layout. Records are JSON so that the portal can
 *	read delivery state back in any language; the schedule index is the
 *	one binary-keyed database, so that due work is a cursor walk.
 */
#include "store.h"

#include <dirent.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "buf.h"

#define STORE_MAP_LIMIT (64ULL << 30)

static const char *const db_names[DB__COUNT] = {
	"patients", "events", "delivery", "schedule", "threads", "bounces",
	"meta", "inbox", "clinic", "seen", "imap", "acks", "audit", "scrub",
	"counts", "pending", "leases", "unsubscribe", "digests", "candidates",
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

/*
 * check_format - before store_open writes anything: the raw value of
 * key in db (NULL when the store has none, or not that database) to
 * check, in a read transaction of its own.
 */
static int
check_format(struct store *s, enum store_db db, const char *key,
	     store_check_fn check, void *userdata, struct cp_error *err)
{
	MDB_val k = { strlen(key), (void *)key }, v = { 0, NULL };
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc, r, exists;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return lmdb_error(err, rc, "store open");
	rc = mdb_dbi_open(txn, db_names[db], 0, &dbi);
	exists = rc == 0;
	if (rc == 0)
		rc = mdb_get(txn, dbi, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return lmdb_error(err, rc, "store open");
	}
	r = check(rc == 0 ? v.mv_data : NULL, rc == 0 ? v.mv_size : 0, exists,
		  userdata, err);
	mdb_txn_abort(txn);	/* closes the handle: the write below opens it */
	return r;
}

int
store_open(const char *path, uint64_t map_size, struct store **out,
	   struct cp_error *err)
{
	return store_open_checked(path, map_size, DB_META, NULL, NULL, NULL,
				  out, err);
}

int
store_open_checked(const char *path, uint64_t map_size, enum store_db db,
		   const char *key, store_check_fn check, void *userdata,
		   struct store **out, struct cp_error *err)
{
	struct store *s;
	MDB_txn *txn;
	int rc, dead, i, r;

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
	/* The check comes before the first write (the databases created). */
	if (check != NULL && key != NULL &&
	    (r = check_format(s, db, key, check, userdata, err)) < 0) {
		mdb_env_close(s->env);
		free(s);
		return r;
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

int
store_set_nosync(struct store *s, int on, struct cp_error *err)
{
	int rc = mdb_env_set_flags(s->env, MDB_NOSYNC, on ? 1 : 0);

	return rc ? lmdb_error(err, rc, "store flags") : 0;
}

uint64_t
store_map_size(struct store *s)
{
	MDB_envinfo info;

	if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size)
		return info.me_mapsize;
	return s->map_size;
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

	if (s->env == NULL)
		return cp_error_set(err, -EIO, "store: closed (it could not be "
				    "opened again)");
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
store_get_json_key(struct store *s, enum store_db db, const void *key,
		   size_t keylen, json_t **out, struct cp_error *err)
{
	MDB_txn *txn;
	int rc, r;

	if (s->env == NULL)
		return cp_error_set(err, -EIO, "store: closed (it could not be "
				    "opened again)");
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	r = store_txn_get_json(s, txn, db, key, keylen, out, err);
	mdb_txn_abort(txn);
	return r;
}

int
store_get_json(struct store *s, enum store_db db, const char *key,
	       json_t **out, struct cp_error *err)
{
	return store_get_json_key(s, db, key, strlen(key), out, err);
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
	enum store_db db;
	const void *key;
	size_t keylen;
	const void *value;
	size_t len;
};

static int
put_raw_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct put_raw *p = ud;

	return store_txn_put_raw(s, txn, p->db, p->key, p->keylen, p->value,
				 p->len, err);
}

int
store_txn_put_raw(struct store *s, MDB_txn *txn, enum store_db db,
		  const void *key, size_t keylen, const void *value, size_t len,
		  struct cp_error *err)
{
	MDB_val k = { keylen, (void *)key }, v = { len, (void *)value };
	int rc = mdb_put(txn, s->dbi[db], &k, &v, 0);

	return rc ? lmdb_error(err, rc, db_names[db]) : 0;
}

int
store_put_raw(struct store *s, enum store_db db, const void *key,
	      size_t keylen, const void *value, size_t len,
	      struct cp_error *err)
{
	struct put_raw p = { db, key, keylen, value, len };

	return store_write(s, put_raw_txn, &p, err);
}

int
store_txn_get_raw(struct store *s, MDB_txn *txn, enum store_db db,
		  const void *key, size_t keylen, const void **value,
		  size_t *len, struct cp_error *err)
{
	MDB_val k = { keylen, (void *)key }, v;
	int rc = mdb_get(txn, s->dbi[db], &k, &v);

	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	*value = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int
store_txn_has(struct store *s, MDB_txn *txn, enum store_db db,
	      const void *key, size_t keylen, struct cp_error *err)
{
	MDB_val k = { keylen, (void *)key }, v;
	int rc = mdb_get(txn, s->dbi[db], &k, &v);

	if (rc == MDB_NOTFOUND)
		return 0;
	return rc ? lmdb_error(err, rc, db_names[db]) : 1;
}

/* cursor_end - the first (op MDB_FIRST) or last (MDB_LAST) entry of db. */
static int
cursor_end(struct store *s, MDB_txn *txn, enum store_db db, MDB_cursor_op op,
	   const void **key, size_t *keylen, const void **value, size_t *len,
	   struct cp_error *err)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, s->dbi[db], &cur);
	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	rc = mdb_cursor_get(cur, &k, &v, op);
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	*key = k.mv_data;
	*keylen = k.mv_size;
	*value = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int
store_txn_first(struct store *s, MDB_txn *txn, enum store_db db,
		const void **key, size_t *keylen, const void **value,
		size_t *len, struct cp_error *err)
{
	return cursor_end(s, txn, db, MDB_FIRST, key, keylen, value, len, err);
}

int
store_txn_last(struct store *s, MDB_txn *txn, enum store_db db,
	       const void **key, size_t *keylen, const void **value,
	       size_t *len, struct cp_error *err)
{
	return cursor_end(s, txn, db, MDB_LAST, key, keylen, value, len, err);
}

int
store_txn_walk_raw(struct store *s, MDB_txn *txn, enum store_db db,
		   store_raw_fn fn, void *userdata, struct cp_error *err)
{
	return store_txn_walk_from(s, txn, db, NULL, 0, fn, userdata, err);
}

int
store_txn_create_db(struct store *s, MDB_txn *txn, enum store_db db,
		    struct cp_error *err)
{
	MDB_dbi dbi;
	int rc = mdb_dbi_open(txn, db_names[db], MDB_CREATE, &dbi);

	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	if (dbi != s->dbi[db])
		return cp_error_set(err, -EIO, "%s: opened as another handle",
				    db_names[db]);
	return 0;
}

int
store_read(struct store *s, store_txn_fn fn, void *userdata,
	   struct cp_error *err)
{
	MDB_txn *txn;
	int rc, r;

	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size. */
		mdb_env_set_mapsize(s->env, 0);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	}
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	r = fn(s, txn, userdata, err);
	mdb_txn_abort(txn);
	return r;
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

int
store_txn_timed_put(struct store *s, MDB_txn *txn, enum store_db db,
		    int64_t t, const char *id, struct cp_error *err)
{
	char key[8 + STORE_ID_MAX + 1];
	MDB_val k, v = { 0, (void *)"" };
	int rc;

	if (strlen(id) > STORE_ID_MAX)
		return cp_error_set(err, -EINVAL, "%s: id too long", db_names[db]);
	k.mv_size = schedule_key(key, t, id);
	k.mv_data = key;
	rc = mdb_put(txn, s->dbi[db], &k, &v, 0);
	return rc ? lmdb_error(err, rc, db_names[db]) : 0;
}

int
store_txn_timed_del(struct store *s, MDB_txn *txn, enum store_db db,
		    int64_t t, const char *id, struct cp_error *err)
{
	char key[8 + STORE_ID_MAX + 1];

	if (strlen(id) > STORE_ID_MAX)
		return 0;	/* never put */
	return store_txn_del(s, txn, db, key, schedule_key(key, t, id), err);
}

int
store_txn_schedule_put(struct store *s, MDB_txn *txn, int64_t due,
		       const char *id, struct cp_error *err)
{
	return store_txn_timed_put(s, txn, DB_SCHEDULE, due, id, err);
}

int
store_txn_schedule_del(struct store *s, MDB_txn *txn, int64_t due,
		       const char *id, struct cp_error *err)
{
	return store_txn_timed_del(s, txn, DB_SCHEDULE, due, id, err);
}

static uint64_t
counter_decode(const MDB_val *v)
{
	const unsigned char *p = v->mv_data;
	uint64_t u = 0;
	int i;

	if (v->mv_size != 8)
		return 0;	/* not a counter this version writes: 0 */
	for (i = 0; i < 8; i++)
		u = (u << 8) | p[i];
	return u;
}

int
store_txn_counter_get(struct store *s, MDB_txn *txn, enum store_db db,
		      const char *name, uint64_t *value, struct cp_error *err)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc;

	*value = 0;
	rc = mdb_get(txn, s->dbi[db], &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	*value = counter_decode(&v);
	return 0;
}

int
store_txn_counter_set(struct store *s, MDB_txn *txn, enum store_db db,
		      const char *name, uint64_t value, struct cp_error *err)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	unsigned char b[8];
	int rc, i;

	for (i = 7; i >= 0; i--) {
		b[i] = (unsigned char)(value & 0xff);
		value >>= 8;
	}
	v.mv_size = sizeof(b);
	v.mv_data = b;
	rc = mdb_put(txn, s->dbi[db], &k, &v, 0);
	return rc ? lmdb_error(err, rc, db_names[db]) : 0;
}

int
store_txn_counter_add(struct store *s, MDB_txn *txn, enum store_db db,
		      const char *name, int64_t delta, struct cp_error *err)
{
	uint64_t u;
	int r;

	if ((r = store_txn_counter_get(s, txn, db, name, &u, err)) < 0)
		return r;
	if (delta < 0)
		u = (uint64_t)-delta > u ? 0 : u - (uint64_t)-delta;
	else
		u += (uint64_t)delta;
	return store_txn_counter_set(s, txn, db, name, u, err);
}

int
store_txn_counter_walk(struct store *s, MDB_txn *txn, enum store_db db,
		       const char *prefix, store_counter_fn fn, void *ud,
		       struct cp_error *err)
{
	size_t plen = strlen(prefix);
	MDB_val k = { plen, (void *)prefix }, v;
	MDB_cursor *cur;
	char name[256];
	int rc, r = 0;

	if ((rc = mdb_cursor_open(txn, s->dbi[db], &cur)) != 0)
		return lmdb_error(err, rc, db_names[db]);
	rc = mdb_cursor_get(cur, &k, &v, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
	while (rc == 0 && r == 0 && k.mv_size >= plen &&
	       memcmp(k.mv_data, prefix, plen) == 0) {
		size_t n = k.mv_size - plen;

		if (n < sizeof(name) && memchr((const char *)k.mv_data + plen, '\0', n) == NULL) {
			memcpy(name, (const char *)k.mv_data + plen, n);
			name[n] = '\0';
			r = fn(ud, name, counter_decode(&v));
		}
		if (r == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (r != 0)
		return r;
	return rc != 0 && rc != MDB_NOTFOUND ? lmdb_error(err, rc, db_names[db]) : 0;
}

int
store_txn_del_prefix(struct store *s, MDB_txn *txn, enum store_db db,
		     const char *prefix, struct cp_error *err)
{
	size_t plen = strlen(prefix);
	MDB_val k = { plen, (void *)prefix }, v;
	MDB_cursor *cur;
	int rc;

	if ((rc = mdb_cursor_open(txn, s->dbi[db], &cur)) != 0)
		return lmdb_error(err, rc, db_names[db]);
	/* each time from the prefix again: the first key left is the next */
	for (;;) {
		k.mv_size = plen;
		k.mv_data = (void *)prefix;
		rc = mdb_cursor_get(cur, &k, &v, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
		if (rc != 0 || k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc != 0 && rc != MDB_NOTFOUND ? lmdb_error(err, rc, db_names[db]) : 0;
}

int
store_txn_clear(struct store *s, MDB_txn *txn, enum store_db db,
		struct cp_error *err)
{
	int rc = mdb_drop(txn, s->dbi[db], 0);

	return rc ? lmdb_error(err, rc, db_names[db]) : 0;
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
store_txn_walk_from(struct store *s, MDB_txn *txn, enum store_db db,
		    const void *start, size_t startlen, store_raw_fn fn,
		    void *userdata, struct cp_error *err)
{
	MDB_cursor *cur;
	MDB_val k = { startlen, (void *)start }, v;
	MDB_cursor_op op = startlen > 0 ? MDB_SET_RANGE : MDB_FIRST;
	int rc, r = 0;

	rc = mdb_cursor_open(txn, s->dbi[db], &cur);
	if (rc != 0)
		return lmdb_error(err, rc, db_names[db]);
	for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		r = fn(userdata, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		if (r != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (r != 0)
		return r;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_error(err, rc, db_names[db]);
	return 0;
}

/* add_pages - the pages one database's tree takes. */
static int
add_pages(MDB_txn *txn, MDB_dbi dbi, uint64_t *pages)
{
	MDB_stat st;
	int rc = mdb_stat(txn, dbi, &st);

	if (rc == 0)
		*pages += (uint64_t)st.ms_branch_pages + st.ms_leaf_pages +
			  st.ms_overflow_pages;
	return rc;
}

int
store_usage(struct store *s, struct store_usage *u, struct cp_error *err)
{
	MDB_txn *txn;
	MDB_envinfo info;
	MDB_stat st;
	MDB_dbi main_dbi;
	size_t i;
	int rc;

	memset(u, 0, sizeof(*u));
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store read");
	rc = mdb_env_stat(s->env, &st);
	if (rc == 0)
		rc = mdb_env_info(s->env, &info);
	if (rc == 0)
		rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc == 0)
		rc = add_pages(txn, main_dbi, &u->used_pages);
	for (i = 0; rc == 0 && i < DB__COUNT; i++)
		rc = add_pages(txn, s->dbi[i], &u->used_pages);
	if (rc == 0)
		rc = add_pages(txn, s->dbi[DB_AUDIT], &u->audit_pages);
	mdb_txn_abort(txn);
	if (rc != 0)
		return lmdb_error(err, rc, "store statistics");
	u->page_size = st.ms_psize;
	u->file_pages = (uint64_t)info.me_last_pgno + 1;
	return 0;
}

/*
 * free_pages - the free pages of the last committed snapshot: all of
 * them, and those LMDB may reuse in the next write (freed by a
 * transaction older than every reader's snapshot). The freelist is LMDB's database 0, readable in a
 * read-only transaction: key a transaction id, value a list of page
 * numbers whose first word is their count.
 */
/* oldest_reader - mdb_reader_list's lines ("pid thread txnid", txnid
 * "-" for a slot without a snapshot): the least txnid into *ud. */
static int
oldest_reader(const char *msg, void *ud)
{
	size_t *oldest = ud;
	unsigned long long id;
	char tid[32], txn[32];
	int pid;

	if (sscanf(msg, "%d %31s %31s", &pid, tid, txn) == 3 &&
	    sscanf(txn, "%llu", &id) == 1 && id < *oldest)
		*oldest = (size_t)id;
	return 0;
}

static int
free_pages(struct store *s, uint64_t *all, uint64_t *reusable)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	size_t snap;
	int rc;

	*all = *reusable = 0;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	/* LMDB reuses a page freed by a transaction older than every
	 * reader's snapshot (this one's included) */
	snap = mdb_txn_id(txn);
	mdb_reader_list(s->env, oldest_reader, &snap);
	if ((rc = mdb_cursor_open(txn, 0, &c)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		size_t id, n;

		if (k.mv_size != sizeof(id) || v.mv_size < sizeof(n))
			continue;
		memcpy(&id, k.mv_data, sizeof(id));
		memcpy(&n, v.mv_data, sizeof(n));
		if (n > v.mv_size / sizeof(n) - 1)
			continue;
		*all += n;
		if (id < snap)
			*reusable += n;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

void
store_release_pages(struct store *s)
{
	char want[4096], line[4608];
	const char *path = NULL;
	FILE *maps;

	/* LMDB names no address for its map (me_mapaddr is MDB_FIXEDMAP's):
	 * the kernel's list of this process's mappings does */
	if (s->env == NULL || mdb_env_get_path(s->env, &path) != 0 || path == NULL ||
	    cp_snprintf_ok(want, sizeof(want), "%s/data.mdb", path) < 0 ||
	    (maps = fopen("/proc/self/maps", "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi;
		char *name = strchr(line, '/'), *nl;

		if (name == NULL || sscanf(line, "%lx-%lx", &lo, &hi) != 2 || hi <= lo)
			continue;
		if ((nl = strchr(name, '\n')) != NULL)
			*nl = '\0';
		if (strcmp(name, want) == 0)
			(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
	}
	fclose(maps);
}

int
store_refresh(struct store *s, struct cp_error *err)
{
	_cleanup_free_ char *path = NULL;
	const char *p;
	unsigned flags = 0;
	MDB_txn *txn;
	int rc;

	if (s->env == NULL)
		return cp_error_set(err, -EIO, "store: closed (it could not be "
				    "opened again)");
	if ((rc = mdb_env_get_path(s->env, &p)) != 0)
		return lmdb_error(err, rc, "store reopen");
	if ((path = strdup(p)) == NULL)
		return cp_error_set(err, -ENOMEM, "store reopen: out of memory");
	mdb_env_get_flags(s->env, &flags);
	/* Closed first: closing any descriptor of the lock file ends this
	 * process's locks on it, a new environment's too. */
	mdb_env_close(s->env);
	s->env = NULL;
	if ((rc = mdb_env_create(&s->env)) != 0)
		goto fail;
	if ((rc = mdb_env_set_maxdbs(s->env, DB__COUNT + 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, s->map_size)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env, 126)) != 0 ||
	    (rc = mdb_env_open(s->env, path, MDB_NOTLS | (flags & MDB_NOSYNC),
			       0600)) != 0 ||
	    (rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		goto fail;
	for (int i = 0; rc == 0 && i < DB__COUNT; i++)
		rc = mdb_dbi_open(txn, db_names[i], 0, &s->dbi[i]);
	if (rc == 0)
		rc = mdb_txn_commit(txn);	/* keeps the handles */
	else
		mdb_txn_abort(txn);
	if (rc == 0)
		return 0;
fail:
	if (s->env != NULL)
		mdb_env_close(s->env);
	s->env = NULL;
	return cp_error_set(err, -EIO, "store reopen: %s: the store is closed",
			    mdb_strerror(rc));
}

static int
last_page(struct store *s, size_t *pgno)
{
	MDB_envinfo info;
	int rc = mdb_env_info(s->env, &info);

	*pgno = rc == 0 ? info.me_last_pgno : 0;
	return rc;
}

/* drop_filler_txn - the scrub database emptied. */
static int
drop_filler_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	int rc = mdb_drop(txn, s->dbi[DB_SCRUB], 0);

	(void)ud;
	return rc == 0 ? 0 : lmdb_error(err, rc, "store scrub");
}

/* A batch of filler: n one-page records of zeros from key on. */
struct filler {
	const void *zeros;
	size_t vlen;
	uint64_t key, n;
};

static int
fill_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	const struct filler *f = ud;
	int rc = 0;

	for (uint64_t i = 0; rc == 0 && i < f->n; i++) {
		uint64_t key = f->key + i;
		unsigned char kb[8];
		MDB_val k = { sizeof(kb), kb }, v = { f->vlen, (void *)f->zeros };

		for (int j = 0; j < 8; j++)	/* big-endian: appended */
			kb[j] = (unsigned char)(key >> (56 - 8 * j));
		rc = mdb_put(txn, s->dbi[DB_SCRUB], &k, &v, MDB_APPEND);
	}
	return rc == 0 ? 0 : lmdb_error(err, rc, "store scrub");
}

/*
 * scrub_round - one round of store_scrub: count the free pages LMDB may
 * reuse, write that many one-page filler records in transactions of
 * batch, and empty the filler again. A round stops early when the file
 * grows (the free pages it counted are taken, or a reader still holds
 * some): the pages it took from the file's end are not counted as
 * overwritten. Each transaction through store_write (a full map grows).
 */
static int
scrub_round(struct store *s, const void *zeros, size_t vlen, size_t batch,
	    struct store_scrub_result *res, struct cp_error *err)
{
	struct filler f = { zeros, vlen, 0, 0 };
	uint64_t all, target, done = 0;
	int rc, r = 0, drop;

	if ((rc = free_pages(s, &all, &target)) != 0)
		return lmdb_error(err, rc, "store scrub");
	res->held = all - target;
	while (r == 0 && done < target) {
		size_t before, after;

		f.n = target - done < batch ? target - done : batch;
		if ((rc = last_page(s, &before)) != 0)
			return lmdb_error(err, rc, "store scrub");
		if ((r = store_write(s, fill_txn, &f, err)) < 0)
			break;
		if ((rc = last_page(s, &after)) != 0) {
			r = lmdb_error(err, rc, "store scrub");
			break;
		}
		res->transactions++;
		f.key += f.n;
		if (after > before) {	/* pages from the file's end: done */
			done += f.n > after - before ? f.n - (after - before) : 0;
			break;
		}
		done += f.n;
	}
	res->overwritten += done;
	/* Emptied whatever happened: the filler pages go back to the free
	 * list (holding zeros). */
	drop = store_write(s, drop_filler_txn, NULL, r < 0 ? NULL : err);
	if (drop == 0)
		res->transactions++;
	return r < 0 ? r : drop;
}

/*
 * A batch of the rewrite: up to batch records of database db from the
 * first key after start (the first of db when start is empty); last
 * becomes the last key written and more whether db holds more. A
 * transaction store_write begins again (a full map) starts again from
 * start. Key and value are copied before the write: LMDB's point into
 * the page the write changes.
 */
struct rewrite {
	int db;
	size_t batch;
	struct buf start, last, val;
	int more;
	uint64_t n;
};

static int
rewrite_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct rewrite *w = ud;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	w->more = 0;
	w->n = 0;
	buf_reset(&w->last);
	if ((rc = mdb_cursor_open(txn, s->dbi[w->db], &c)) != 0)
		return lmdb_error(err, rc, "store scrub");
	if (w->start.len == 0) {
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	} else {
		k.mv_size = w->start.len;
		k.mv_data = w->start.data;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == w->start.len &&
		    memcmp(k.mv_data, w->start.data, w->start.len) == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	while (rc == 0 && w->n < w->batch) {
		MDB_val kc, vc;

		buf_reset(&w->last);
		buf_reset(&w->val);
		if (buf_append(&w->last, k.mv_data, k.mv_size) < 0 ||
		    buf_append(&w->val, v.mv_data, v.mv_size) < 0) {
			mdb_cursor_close(c);
			return cp_error_set(err, -ENOMEM, "store scrub: out of memory");
		}
		kc.mv_size = w->last.len;
		kc.mv_data = w->last.data;
		vc.mv_size = w->val.len;
		vc.mv_data = w->val.data;
		if ((rc = mdb_cursor_put(c, &kc, &vc, MDB_CURRENT)) != 0)
			break;
		w->n++;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc == 0)
		w->more = 1;
	else if (rc != MDB_NOTFOUND)
		return lmdb_error(err, rc, "store scrub");
	return 0;
}

/*
 * rewrite_all - every record of every database written again as it is,
 * batch records a transaction, with a fresh environment after each: each
 * page a record lives on is copied (LMDB's copy on write) into a buffer
 * LMDB zeroes or that held only such clean copies, so no page keeps the
 * bytes a recycled buffer left in its unused middle; the old pages go to
 * the free list (the rounds after overwrite them).
 */
static int
rewrite_all(struct store *s, size_t batch, struct store_scrub_result *res,
	    struct cp_error *err)
{
	struct rewrite w = { 0, batch, BUF_INIT, BUF_INIT, BUF_INIT, 1, 0 };
	int r = 0;

	for (w.db = 0; r == 0 && w.db < DB__COUNT; w.db++) {
		if (w.db == DB_SCRUB)
			continue;
		buf_reset(&w.start);
		do {
			if ((r = store_write(s, rewrite_txn, &w, err)) < 0)
				break;
			res->rewritten += w.n;
			res->transactions++;
			if (w.n > 0) {		/* on from the last key written */
				struct buf t = w.start;

				w.start = w.last;
				w.last = t;
			}
			r = store_refresh(s, err);
		} while (r == 0 && w.more);
	}
	buf_free(&w.start);
	buf_free(&w.last);
	buf_free(&w.val);
	return r;
}

int
store_scrub(struct store *s, size_t batch, struct store_scrub_result *res,
	    struct cp_error *err)
{
	_cleanup_free_ void *zeros = NULL;
	MDB_stat st;
	size_t vlen;
	int rc, r;

	memset(res, 0, sizeof(*res));
	if (batch == 0)
		batch = 1024;
	if ((rc = mdb_env_stat(s->env, &st)) != 0)
		return lmdb_error(err, rc, "store scrub");
	/* A value of one overflow page exactly: the page less its header
	 * (two words, as LMDB lays a page out). */
	vlen = st.ms_psize - 2 * sizeof(size_t);
	if ((zeros = calloc(1, vlen)) == NULL)
		return cp_error_set(err, -ENOMEM, "store scrub: out of memory");
	/* what a scrub cut short left, then the live records, then the
	 * free pages twice */
	if ((r = store_write(s, drop_filler_txn, NULL, err)) < 0 ||
	    (r = store_refresh(s, err)) < 0 ||
	    (r = rewrite_all(s, batch, res, err)) < 0)
		return r;
	res->transactions++;
	for (int round = 0; round < 2; round++)
		if ((r = scrub_round(s, zeros, vlen, batch, res, err)) < 0)
			return r;
	return 0;
}

/* A timed walk's fn, and the adapter that gives it the time and id. */
struct timed_walk {
	store_schedule_fn fn;
	void *userdata;
};

static int
on_timed_key(void *userdata, const void *key, size_t keylen,
	     const void *value, size_t len)
{
	struct timed_walk *w = userdata;
	MDB_val k = { keylen, (void *)key };
	char id[STORE_ID_MAX + 1];

	if (keylen <= 8 || keylen > 8 + STORE_ID_MAX ||
	    memchr((const char *)key + 8, '\0', keylen - 8) != NULL)
		return 0;	/* not a key this version writes */
	memcpy(id, (const char *)key + 8, keylen - 8);
	id[keylen - 8] = '\0';
	return w->fn(w->userdata, schedule_key_due(&k), id);
}

int
store_txn_timed_walk(struct store *s, MDB_txn *txn, enum store_db db,
		     store_schedule_fn fn, void *userdata, struct cp_error *err)
{
	struct timed_walk w = { fn, userdata };

	return store_txn_walk_from(s, txn, db, NULL, 0, on_timed_key, &w, err);
}

int
store_txn_schedule_walk(struct store *s, MDB_txn *txn,
			store_schedule_fn fn, void *userdata,
			struct cp_error *err)
{
	return store_txn_timed_walk(s, txn, DB_SCHEDULE, fn, userdata, err);
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

static int
journal_path(const char *store_path, char *path, size_t size, struct cp_error *err)
{
	if (store_path == NULL ||
	    (size_t)snprintf(path, size, "%s/sending.journal", store_path) >= size)
		return cp_error_set(err, -ENAMETOOLONG, "sending journal: path too long");
	return 0;
}

int
store_journal_open(const char *store_path, struct cp_error *err)
{
	char path[4096];
	int fd, r;

	r = journal_path(store_path, path, sizeof(path), err);
	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return cp_error_set(err, -errno, "%s: %s", path, strerror(errno));
	return fd;
}

void
store_journal_append(int fd, const char *line)
{
	if (fd >= 0 && line != NULL && *line != '\0')
		(void)!write(fd, line, strlen(line));
}

int
store_journal_clear(int fd)
{
	return ftruncate(fd, 0) < 0 ? -errno : 0;
}

int
store_journal_read(const char *store_path, char **text, size_t *len,
		   struct cp_error *err)
{
	char path[4096];
	int r;

	*text = NULL;
	*len = 0;
	r = journal_path(store_path, path, sizeof(path), err);
	if (r < 0)
		return r;
	r = cp_read_file(path, 64u << 20, text, len);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return cp_error_set(err, r, "%s: %s", path, strerror(-r));
	return 0;
}

/*
 * backup_dir - dir made (0700; *made set) or found empty: a backup never
 * mixes with what a directory held.
 */
static int
backup_dir(const char *dir, int *made, struct cp_error *err)
{
	struct dirent *de;
	DIR *d;
	int e;

	*made = 0;
	if (mkdir(dir, 0700) == 0) {
		*made = 1;
		return 0;
	}
	if (errno != EEXIST)
		return cp_error_set(err, -errno, "backup directory %s: cannot "
				    "create: %s", dir, strerror(errno));
	if ((d = opendir(dir)) == NULL)
		return cp_error_set(err, -errno, "backup directory %s: %s", dir,
				    strerror(errno));
	while ((errno = 0, de = readdir(d)) != NULL) {
		char name[65];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cp_strlcpy(name, de->d_name, sizeof(name));	/* closedir frees it */
		closedir(d);
		return cp_error_set(err, -ENOTEMPTY, "backup directory %s: not "
				    "empty (it holds %s): a backup goes into a "
				    "new or empty directory", dir, name);
	}
	e = errno;
	closedir(d);
	if (e != 0)
		return cp_error_set(err, -e, "backup directory %s: %s", dir,
				    strerror(e));
	return 0;
}

/* fsync_path - fsync a directory (or file) by name: 0 or -errno. */
static int
fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* copy_data - the compacting copy of the environment into fd, fsynced. */
static int
copy_data(struct store *s, int fd, const char *path, uint64_t *bytes,
	  struct cp_error *err)
{
	struct stat st;
	int rc;

	rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size, copy again. */
		mdb_env_set_mapsize(s->env, 0);
		if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
			return cp_error_set(err, -errno, "%s: %s", path, strerror(errno));
		rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
	}
	if (rc != 0)
		return lmdb_error(err, rc, "store backup");
	if (fsync(fd) < 0 || fstat(fd, &st) < 0)
		return cp_error_set(err, -errno, "%s: %s", path, strerror(errno));
	*bytes = (uint64_t)st.st_size;
	return 0;
}

/*
 * backup_journal - DIR/sending.journal: the lines of the store's journal
 * read before the copy began (before) and after it ended (after). Every
 * line names a message the relay accepted, so a line of a batch recorded
 * meanwhile is harmless (recovery skips what is recorded sent).
 */
static int
backup_journal(const char *path, const char *before, size_t blen,
	       const char *after, size_t alen, size_t *lines,
	       struct cp_error *err)
{
	_cleanup_free_ char *text = malloc(blen + alen + 2);
	size_t n = 0;
	int r;

	if (text == NULL)
		return cp_error_set(err, -ENOMEM, "store backup: out of memory");
	/* a line being written as it was read: the second read has it */
	while (blen > 0 && before[blen - 1] != '\n')
		blen--;
	memcpy(text, before, blen);
	n = blen;
	memcpy(text + n, after, alen);
	n += alen;
	*lines = 0;
	for (size_t i = 0; i < n; i++)
		*lines += text[i] == '\n';
	r = cp_write_file_atomic(path, text, n, 0600);
	if (r < 0)
		return cp_error_set(err, r, "%s: %s", path, strerror(-r));
	return 0;
}

/* journal_text - the store's sending journal now ("" when there is none). */
static int
journal_text(const char *store_path, char **text, size_t *len,
	     struct cp_error *err)
{
	int r = store_journal_read(store_path, text, len, err);

	if (r == -ENOENT) {
		*len = 0;
		return 0;
	}
	return r;
}

int
store_backup(struct store *s, const char *dir, struct store_backup_result *res,
	     struct cp_error *err)
{
	_cleanup_free_ char *before = NULL, *after = NULL;
	char data[4096], part[4096], journal[4096];
	const char *store_path = NULL;
	size_t blen = 0, alen = 0;
	int fd, made, r;

	memset(res, 0, sizeof(*res));
	if (mdb_env_get_path(s->env, &store_path) != 0 || store_path == NULL)
		return cp_error_set(err, -EINVAL, "store backup: no store path");
	if (cp_snprintf_ok(data, sizeof(data), "%s/data.mdb", dir) < 0 ||
	    cp_snprintf_ok(part, sizeof(part), "%s/data.mdb.part", dir) < 0 ||
	    cp_snprintf_ok(journal, sizeof(journal), "%s/sending.journal", dir) < 0)
		return cp_error_set(err, -ENAMETOOLONG, "backup directory %s: "
				    "path too long", dir);
	if ((r = backup_dir(dir, &made, err)) < 0)
		return r;
	if ((r = journal_text(store_path, &before, &blen, err)) < 0)
		goto fail;
	fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = cp_error_set(err, -errno, "backup directory %s: cannot write: %s",
				 dir, strerror(errno));
		goto fail;
	}
	r = copy_data(s, fd, part, &res->data_bytes, err);
	close(fd);
	if (r < 0)
		goto fail;
	if ((r = journal_text(store_path, &after, &alen, err)) < 0 ||
	    (r = backup_journal(journal, before ? before : "", blen,
				after ? after : "", alen, &res->journal_lines, err)) < 0)
		goto fail;
	if (rename(part, data) < 0 || (r = fsync_path(dir)) < 0) {
		r = cp_error_set(err, r < 0 ? r : -errno, "backup directory %s: %s",
				 dir, strerror(r < 0 ? -r : errno));
		goto fail;
	}
	if (made) {
		/* the new directory's own entry, in its parent */
		_cleanup_free_ char *parent = strdup(dir);
		char *slash = parent ? strrchr(parent, '/') : NULL;

		if (slash == parent)
			slash[1] = '\0';
		else if (slash != NULL)
			*slash = '\0';
		if (parent != NULL)
			(void)fsync_path(slash != NULL ? parent : ".");
	}
	return 0;
fail:
	unlink(part);
	unlink(data);		/* the directory was empty: nothing else's */
	unlink(journal);
	if (made)
		rmdir(dir);
	return r;
}
