/*
 * NAME
 *	storefmt - the store format version and its upgrade steps
 * DESCRIPTION
 *	See storefmt.h. The version is read before the store is opened for
 *	writing (store_open_checked), so that this build never creates a
 *	database in, nor writes a record to, a store laid out by a newer one.
 */
#include "storefmt.h"
#include "log.h"
#include "queue.h"
#include "record.h"

/* step_audit - version 2: the audit database (audit.h). */
static int
step_audit(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return store_txn_create_db(s, txn, DB_AUDIT, err);
}

/*
 * step_counts - version 3: the counts of delivery records by state, of
 * bounce and seen records (record.h), and the indexes of open work and
 * of leases (queue.h), made from every record.
 */
static int
step_counts(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	int r = queue_txn_rebuild(s, txn, err);

	return r < 0 ? r : record_txn_recount(s, txn, err);
}

/* step_unsubscribe - version 4: the portal's one-click hand-ins (unsub.h). */
static int
step_unsubscribe(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return store_txn_create_db(s, txn, DB_UNSUBSCRIBE, err);
}

/* step_digests - version 6: the digest windows (digest.h). */
static int
step_digests(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return store_txn_create_db(s, txn, DB_DIGESTS, err);
}

/* step_candidates - version 7: the key candidates (record.h). */
static int
step_candidates(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	return store_txn_create_db(s, txn, DB_CANDIDATES, err);
}

/*
 * The upgrade steps, in order: steps[i] takes a store from version i + 1
 * to i + 2, so that STOREFMT_VERSION is the count of steps + 1. Each
 * change of the layout adds its step here, with a unit test that upgrades
 * a store written by the code before it (test_storefmt).
 */
static const struct storefmt_step steps[] = {
	{ 1, "the audit database", step_audit },
	{ 2, "counts by state, indexes of open work and leases", step_counts },
	{ 3, "the unsubscribe database", step_unsubscribe },
	/* Nothing to rebuild: the version says that clinic entries may be
	 * of class "complaint" and recipients carry complained_at, which an
	 * older carepost must not meet. */
	{ 4, "feedback reports in delivery records and the clinic queue", NULL },
	{ 5, "the digests database", step_digests },
	{ 6, "the key candidates database", step_candidates },
	{ 0, NULL, NULL },	/* the end of the table */
};

int
storefmt_check(unsigned found, unsigned known, int flags, const char *path,
	       struct cp_error *err)
{
	if (found > known)
		return cp_error_set(err, -EPROTO, "store %s: format version %u is "
				    "newer than this carepost's (version %u): not "
				    "opened; run the carepost that wrote it, or "
				    "restore a backup this version made", path,
				    found, known);
	if (found < known && !(flags & STOREFMT_OLDER_OK))
		return cp_error_set(err, -EPROTO, "store %s: format version %u is "
				    "older than this carepost's (version %u): "
				    "start carepostd, which upgrades it, first",
				    path, found, known);
	return 0;
}

static int record_txn(struct store *s, MDB_txn *txn, void *userdata,
		      struct cp_error *err);

struct open_check {
	const char *path;
	int flags;
	int fresh;
};

/* check_open - store_open_checked's check of the raw format record. */
static int
check_open(const void *value, size_t len, int exists, void *userdata,
	   struct cp_error *err)
{
	struct open_check *c = userdata;
	struct cp_error local;
	unsigned found = 1;		/* no record: the layout before it */

	cp_error_clear(&local);
	if (!exists) {			/* a new store: made in this layout */
		c->fresh = 1;
		return 0;
	}
	if (value != NULL && store_format_decode(value, len, &found, &local) < 0)
		return cp_error_set(err, local.code, "store %s: meta %s: %s: not "
				    "opened", c->path, STORE_FORMAT_KEY, local.text);
	return storefmt_check(found, STOREFMT_VERSION, c->flags, c->path, err);
}

int
storefmt_open(const char *path, uint64_t map_size, int flags,
	      struct store **out, struct cp_error *err)
{
	struct open_check c = { path, flags, 0 };
	unsigned version = STOREFMT_VERSION;
	int r;

	r = store_open_checked(path, map_size, DB_META, STORE_FORMAT_KEY,
			       check_open, &c, out, err);
	if (r < 0 || !c.fresh)
		return r;
	/* A store this build made says so at once. */
	if ((r = store_write(*out, record_txn, &version, err)) < 0) {
		store_close(*out);
		*out = NULL;
	}
	return r;
}

struct version_read {
	unsigned version;
	int recorded;
};

static int
version_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	struct version_read *v = userdata;
	int r = store_format_txn_get(s, txn, &v->version, err);

	v->recorded = r == 0;
	if (r == -ENOENT) {
		v->version = 1;
		return 0;
	}
	return r;
}

int
storefmt_version(struct store *s, unsigned *version, int *recorded,
		 struct cp_error *err)
{
	struct version_read v = { 0, 0 };
	int r = store_read(s, version_txn, &v, err);

	*version = v.version;
	if (recorded)
		*recorded = v.recorded;
	return r;
}

struct step_run {
	const struct storefmt_step *step;
	unsigned to;
};

/* step_txn - one step and the version it reaches, in one transaction. */
static int
step_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	struct step_run *sr = userdata;
	struct version_read v = { 0, 0 };
	int r;

	if ((r = version_txn(s, txn, &v, err)) < 0)
		return r;
	if (v.version != sr->step->from)
		return cp_error_set(err, -EPROTO, "the store is at version %u "
				    "now", v.version);
	if (sr->step->run != NULL && (r = sr->step->run(s, txn, err)) < 0)
		return r;
	return store_format_txn_put(s, txn, sr->to, err);
}

static int
record_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	const unsigned *version = userdata;

	return store_format_txn_put(s, txn, *version, err);
}

int
storefmt_upgrade_steps(struct store *s, const struct storefmt_step *table,
		       size_t n, unsigned target, size_t *ran,
		       struct cp_error *err)
{
	unsigned version;
	int recorded, r;

	*ran = 0;
	if ((r = storefmt_version(s, &version, &recorded, err)) < 0)
		return r;
	if (version > target)
		return cp_error_set(err, -EPROTO, "store format version %u is newer "
				    "than version %u: not upgraded", version, target);
	for (size_t i = 0; i < n && version < target; i++) {
		struct step_run sr = { &table[i], version + 1 };
		struct cp_error local;

		if (table[i].from != version)
			continue;
		cp_error_clear(&local);
		r = store_write(s, step_txn, &sr, &local);
		if (r < 0)
			return cp_error_set(err, r, "upgrading the store from version "
					    "%u to %u (%s): %s", version, version + 1,
					    table[i].what ? table[i].what : "",
					    local.text);
		log_info("store upgraded from format version %u to %u (%s)",
			 version, version + 1, table[i].what ? table[i].what : "");
		version++;
		recorded = 1;
		(*ran)++;
	}
	if (version != target)
		return cp_error_set(err, -EPROTO, "store format version %u: no "
				    "upgrade step to version %u", version, version + 1);
	if (!recorded)
		return store_write(s, record_txn, &version, err);
	return 0;
}

int
storefmt_upgrade(struct store *s, size_t *ran, struct cp_error *err)
{
	return storefmt_upgrade_steps(s, steps, CP_ARRAY_SIZE(steps) - 1,
				      STOREFMT_VERSION, ran, err);
}
