/*
 * NAME
 *	atrestfix.h - a store key in a throwaway GnuPG home, and a fresh
 *	store with encryption at rest for each test
 * DESCRIPTION
 *	tu_atrest_group_setup makes the GnuPG home /tmp/PREFIX.XXXXXX with a
 *	store key (fx->fpr); tu_atrest_setup opens a fresh store in it, a
 *	pgp on the home, and two struct atrest on them: writer (with the
 *	store key: it seals) and reader (without: it only opens, as
 *	carepostctl read does). tu_atrest_teardown closes the test's,
 *	tu_atrest_group_teardown stops the agent and removes the home. For
 *	test binaries only: each includes this once, after cmocka.h.
 */
#ifndef CAREPOST_TEST_ATRESTFIX_H
#define CAREPOST_TEST_ATRESTFIX_H

#include "atrest.h"
#include "gpgfix.h"
#include "pgp.h"
#include "store.h"
#include "storefix.h"

struct tu_atrest {
	char dir[64];
	char home[80];
	char fpr[PGP_FPR_SIZE];
	int n;
	char store_path[96];
	struct store *store;
	struct pgp *pgp;
	struct atrest *writer;
	struct atrest *reader;
};

static inline int
tu_atrest_group_setup(struct tu_atrest *fx, const char *prefix)
{
	if (tu_gpg_dir(prefix, fx->dir, sizeof(fx->dir), fx->home, sizeof(fx->home),
		       "Store <store@clinic.test>", fx->fpr) < 0)
		return -1;
	return pgp_global_init();
}

static inline void
tu_atrest_group_teardown(struct tu_atrest *fx, const char *prefix)
{
	tu_gpg_dir_remove(prefix, fx->dir, fx->home);
}

static inline int
tu_atrest_setup(struct tu_atrest *fx)
{
	struct cp_error err;

	cp_error_clear(&err);
	fx->store = tu_store_fresh(fx->dir, &fx->n, fx->store_path,
				   sizeof(fx->store_path), 16 << 20, &err);
	if (fx->store == NULL ||
	    pgp_new(fx->home, NULL, &fx->pgp, &err) < 0 ||
	    atrest_new(fx->store, fx->pgp, fx->fpr, &fx->writer, &err) < 0 ||
	    atrest_new(fx->store, fx->pgp, NULL, &fx->reader, &err) < 0)
		return -1;
	return 0;
}

static inline void
tu_atrest_teardown(struct tu_atrest *fx)
{
	atrest_free(fx->writer);
	atrest_free(fx->reader);
	fx->writer = fx->reader = NULL;
	pgp_free(fx->pgp);
	fx->pgp = NULL;
	store_close(fx->store);
	fx->store = NULL;
}

/*
 * TU_ATREST_FIXTURE(fx, PREFIX) - the group and per-test callbacks of a
 * test binary that uses one struct tu_atrest fx: group_setup,
 * group_teardown, setup, teardown.
 */
#define TU_ATREST_FIXTURE(fx, prefix)					\
	static struct tu_atrest fx;					\
	static int group_setup(void **state)				\
	{ return tu_atrest_group_setup(&fx, prefix); }			\
	static int group_teardown(void **state)				\
	{ tu_atrest_group_teardown(&fx, prefix); return 0; }		\
	static int setup(void **state) { return tu_atrest_setup(&fx); }	\
	static int teardown(void **state)				\
	{ tu_atrest_teardown(&fx); return 0; }

#endif
