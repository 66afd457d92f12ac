/*
 * NAME
 *	test_checkpoint - unit tests for signed audit checkpoints
 *	(lib/checkpoint.c)
 * DESCRIPTION
 *	A real LMDB store and a real GnuPG home with two keys: the
 *	checkpoint key and another. A checkpoint signs the trail's head and
 *	is made only when the head moved; verify holds for an untouched
 *	trail; it names a trail cut at its end (which the chain alone, its
 *	head rewritten to match, does not see), a trail rewritten whole with
 *	its hashes made again, a checkpoint signed by another key, a
 *	checkpoint whose text was changed, a checkpoint file cut short or
 *	gone; a checkpoint before the trail's first record counts for
 *	nothing either way; malformed files are refused with their line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "checkpoint.h"
#include "pgp.h"
#include "record.h"
#include "store.h"
#include "storefmt.h"

#include "fsfix.h"
#include "gpgfix.h"

/* One GnuPG home for every test: making keys takes seconds. */
static char gdir[64], ghome[96], key_fpr[41], other_fpr[41];

struct fx {
	char dir[64];
	char file[128];
	struct store *s;
	struct pgp *signer;	/* the checkpoint key */
	struct pgp *reader;	/* no signer: verifies */
};

static int
group_setup(void **state)
{
	if (pgp_global_init() < 0 ||
	    tu_gpg_dir("carepost-ckpt", gdir, sizeof(gdir), ghome, sizeof(ghome),
		       "Audit Checkpoints <audit@clinic.test>", key_fpr) < 0)
		return -1;
	/* a second key in the same home: the clinic's, say */
	if (tu_run("gpg --homedir %s --batch --passphrase '' --quick-gen-key "
		   "'Other <other@clinic.test>' ed25519 sign never", ghome) != 0)
		return -1;
	{
		struct buf out = BUF_INIT;
		char cmd[256];
		const char *p;

		snprintf(cmd, sizeof(cmd), "gpg --homedir %s --batch --with-colons "
			 "--list-secret-keys 'other@clinic.test'", ghome);
		if (tu_capture(&out, cmd) < 0 || out.data == NULL ||
		    (p = strstr(out.data, "\nfpr:::::::::")) == NULL) {
			buf_free(&out);
			return -1;
		}
		memcpy(other_fpr, p + 13, 40);
		other_fpr[40] = '\0';
		buf_free(&out);
	}
	return 0;
}

static int
group_teardown(void **state)
{
	tu_gpg_dir_remove("carepost-ckpt", gdir, ghome);
	return 0;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (tu_tmpdir("carepost-ckst", f->dir, sizeof(f->dir)) < 0 ||
	    storefmt_open(f->dir, 0, 0, &f->s, NULL) < 0 ||
	    pgp_new(ghome, key_fpr, &f->signer, NULL) < 0 ||
	    pgp_new(ghome, NULL, &f->reader, NULL) < 0) {
		free(f);
		return -1;
	}
	snprintf(f->file, sizeof(f->file), "%s/audit.checkpoints", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	pgp_free(f->signer);
	pgp_free(f->reader);
	store_close(f->s);
	tu_rm_rf(f->dir);
	free(f);
	return 0;
}

/* append_n - n records of patient p, each in a transaction of its own. */
static void
append_n(struct store *s, int n, const char *p)
{
	struct audit_event ev = {
		.action = AUDIT_READ, .actor = AUDIT_ACTOR_DAEMON, .patient = p,
		.inbox = "m1", .reason = "care",
	};

	for (int i = 0; i < n; i++)
		assert_int_equal(audit_record_one(s, &ev, NULL), 0);
}

/* checkpoint - one with pgp p; returns whether one was made. */
static int
checkpoint(struct fx *f, struct pgp *p, int64_t now, uint64_t *seq)
{
	struct cp_error err;
	int made = -1;

	cp_error_clear(&err);
	if (checkpoint_write(f->s, p, f->file, now, &made, seq, &err) < 0)
		fail_msg("checkpoint_write: %s", err.text);
	return made;
}

/* verify - checkpoint_verify's result; the trail's own chain must hold. */
static struct checkpoint_result
verify(struct fx *f)
{
	struct checkpoint_result res;
	struct audit_verify_result vr;
	struct cp_error err;

	cp_error_clear(&err);
	assert_int_equal(audit_verify(f->s, &vr, &err), 0);
	assert_true(vr.ok);
	if (checkpoint_verify(f->s, f->reader, key_fpr, f->file, &res, &err) < 0)
		fail_msg("checkpoint_verify: %s", err.text);
	return res;
}

static void
assert_fails(struct fx *f, const char *why)
{
	struct checkpoint_result res = verify(f);

	assert_false(res.ok);
	if (strstr(res.why, why) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", why, res.why);
}

struct cut {
	uint64_t keep;		/* the records after it go */
};

/* cut_txn - records past keep deleted and the head put back on keep,
 * hash and all: the chain holds, as a careful intruder would leave it. */
static int
cut_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct cut *c = ud;
	char hash[AUDIT_HASH_HEX + 1], key[24];
	struct audit_record rec;
	json_t *holder = NULL;
	const void *v;
	uint64_t head;
	size_t len;
	int r;

	r = audit_head_txn_get(s, txn, &head, hash, err);
	for (uint64_t seq = c->keep + 1; r == 0 && seq <= head; seq++) {
		snprintf(key, sizeof(key), "%020llu", (unsigned long long)seq);
		r = store_txn_del(s, txn, DB_AUDIT, key, 20, err);
	}
	snprintf(key, sizeof(key), "%020llu", (unsigned long long)c->keep);
	if (r == 0)
		r = store_txn_get_raw(s, txn, DB_AUDIT, key, 20, &v, &len, err);
	if (r == 0)
		r = audit_record_decode(v, len, &holder, &rec, err);
	if (r == 0)
		r = audit_head_txn_put(s, txn, c->keep, rec.hash, err);
	json_decref(holder);
	return r;
}

static void
cut_trail(struct store *s, uint64_t keep)
{
	struct cut c = { keep };

	assert_int_equal(store_write(s, cut_txn, &c, NULL), 0);
}

/* read_file - the whole file into buf (NUL-terminated); its length. */
static size_t
read_file(const char *path, char *buf, size_t size)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, size - 1, fp);
	assert_int_equal(fclose(fp), 0);
	buf[n] = '\0';
	return n;
}

static int
del_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	return store_txn_del(s, txn, DB_AUDIT, ud, 20, err);
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
a_checkpoint_signs_the_head_only_when_it_moved(void **state)
{
	struct fx *f = *state;
	struct checkpoint_result res;
	static char text[65536];
	uint64_t seq = 0;

	/* an empty trail: nothing to sign, and nothing to verify */
	assert_int_equal(checkpoint(f, f->signer, 1000, &seq), 0);
	assert_int_equal(access(f->file, F_OK), -1);
	res = verify(f);
	assert_true(res.ok);
	assert_int_equal(res.checked, 0);

	append_n(f->s, 5, "p-1");
	assert_int_equal(checkpoint(f, f->signer, 1000, &seq), 1);
	assert_int_equal(seq, 5);
	assert_int_equal(checkpoint(f, f->signer, 2000, &seq), 0);	/* unchanged */
	append_n(f->s, 2, "p-2");
	assert_int_equal(checkpoint(f, f->signer, 3000, &seq), 1);
	assert_int_equal(seq, 7);
	res = verify(f);
	assert_true(res.ok);
	assert_int_equal(res.checked, 2);
	assert_int_equal(res.last_seq, 7);
	assert_int_equal(res.last_time, 3000);
	read_file(f->file, text, sizeof(text));
	assert_non_null(strstr(text, "carepost audit checkpoint 1\nseq: 5\nhash: "));
	assert_non_null(strstr(text, "\ntime: 3000\n-----BEGIN PGP SIGNATURE-----\n"));
	/* references only: nothing of a patient in the file */
	assert_null(strstr(text, "p-1"));
}

static void
a_trail_cut_at_its_end_is_seen(void **state)
{
	struct fx *f = *state;

	append_n(f->s, 5, "p-1");
	checkpoint(f, f->signer, 1000, NULL);
	cut_trail(f->s, 3);		/* records 4 and 5 gone, the head on 3 */
	assert_fails(f, "names record 5, and the trail ends at 3");
}

static void
a_trail_rewritten_whole_is_seen(void **state)
{
	struct fx *f = *state;

	append_n(f->s, 3, "p-1");
	checkpoint(f, f->signer, 1000, NULL);
	append_n(f->s, 2, "p-1");
	checkpoint(f, f->signer, 2000, NULL);
	/* record 3 on: replaced by other records, chained as carepost would */
	cut_trail(f->s, 2);
	append_n(f->s, 3, "p-9");
	assert_fails(f, "record 3 is not the one the checkpoint signed at 1000 names");
}

static void
a_checkpoint_by_another_key_or_changed_fails(void **state)
{
	struct fx *f = *state;
	static char text[65536];
	struct pgp *other = NULL;
	size_t len;
	char *at;

	append_n(f->s, 3, "p-1");
	checkpoint(f, f->signer, 1000, NULL);
	/* its text changed after signing: seq 3 made to say 2 */
	len = read_file(f->file, text, sizeof(text));
	at = strstr(text, "seq: 3\n");
	assert_non_null(at);
	at[5] = '2';
	write_file(f->file, text, len);
	assert_fails(f, "line 1: the checkpoint of record 2 is not signed by the checkpoint key");
	at[5] = '3';
	write_file(f->file, text, len);
	assert_true(verify(f).ok);
	/* one signed by another key of the same home */
	assert_int_equal(pgp_new(ghome, other_fpr, &other, NULL), 0);
	append_n(f->s, 1, "p-1");
	assert_int_equal(checkpoint(f, other, 2000, NULL), 1);
	pgp_free(other);
	assert_fails(f, "is not signed by the checkpoint key");
}

static void
a_checkpoint_file_cut_short_or_gone_is_seen(void **state)
{
	static char text[65536];
	struct fx *f = *state;
	char *second;

	append_n(f->s, 2, "p-1");
	checkpoint(f, f->signer, 1000, NULL);
	append_n(f->s, 2, "p-1");
	checkpoint(f, f->signer, 2000, NULL);
	read_file(f->file, text, sizeof(text));
	second = strstr(text + 1, "carepost audit checkpoint 1\n");
	assert_non_null(second);
	write_file(f->file, text, (size_t)(second - text));
	assert_fails(f, "the store's last checkpoint (record 4, made at 2000) is not in the file");
	assert_int_equal(unlink(f->file), 0);
	assert_fails(f, "is not in the file");
}

static void
a_checkpoint_before_the_trail_counts_for_nothing(void **state)
{
	struct fx *f = *state;
	char key[24];

	append_n(f->s, 2, "p-1");
	checkpoint(f, f->signer, 1000, NULL);
	append_n(f->s, 2, "p-1");
	checkpoint(f, f->signer, 2000, NULL);
	/* records 1 and 2 gone from the start (a policy's pruning) */
	for (int seq = 1; seq <= 2; seq++) {
		snprintf(key, sizeof(key), "%020d", seq);
		assert_int_equal(store_write(f->s, del_txn, key, NULL), 0);
	}
	{
		struct checkpoint_result res;
		struct cp_error err;

		cp_error_clear(&err);
		assert_int_equal(checkpoint_verify(f->s, f->reader, key_fpr, f->file,
						   &res, &err), 0);
		assert_true(res.ok);
		assert_int_equal(res.checked, 2);
	}
}

static int
count_block(void *ud, const struct checkpoint_block *b)
{
	(*(int *)ud)++;
	return 0;
}

static void
malformed_files_are_refused_naming_the_line(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "garbage\n", "line 1: not a checkpoint" },
		{ "\n\ncarepost audit checkpoint 1\nseq: 1\n", "line 3: not a checkpoint" },
		{ "carepost audit checkpoint 1\nseq: 01\nhash: x\n", "line 1: not a checkpoint" },
		{ "carepost audit checkpoint 1\nseq: 1\nhash: "
		  "00000000000000000000000000000000000000000000000000000000000000AA\n"
		  "time: 5\n", "line 1: not a checkpoint" },
		{ "carepost audit checkpoint 1\nseq: 1\nhash: "
		  "000000000000000000000000000000000000000000000000000000000000000a\n"
		  "time: 99999999999999999999\n", "line 1: not a checkpoint" },
		{ "carepost audit checkpoint 1\nseq: 1\nhash: "
		  "000000000000000000000000000000000000000000000000000000000000000a\n"
		  "time: 5\n", "line 5: the checkpoint of line 1 has no signature" },
		{ "carepost audit checkpoint 1\nseq: 1\nhash: "
		  "000000000000000000000000000000000000000000000000000000000000000a\n"
		  "time: 5\n-----BEGIN PGP SIGNATURE-----\nabc\n",
		  "its signature does not end" },
	};
	char why[128];
	int n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 0;
		why[0] = '\0';
		assert_int_equal(checkpoint_parse(bad[i].text, strlen(bad[i].text),
						  count_block, &n, why, sizeof(why)),
				 -EBADMSG);
		if (strstr(why, bad[i].why) == NULL)
			fail_msg("case %zu: expected \"%s\" in \"%s\"", i, bad[i].why, why);
	}
	n = 0;
	assert_int_equal(checkpoint_parse("\n\n", 2, count_block, &n, why,
					  sizeof(why)), 0);
	assert_int_equal(n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_checkpoint_signs_the_head_only_when_it_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(a_trail_cut_at_its_end_is_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(a_trail_rewritten_whole_is_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(a_checkpoint_by_another_key_or_changed_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(a_checkpoint_file_cut_short_or_gone_is_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(a_checkpoint_before_the_trail_counts_for_nothing, setup, teardown),
		cmocka_unit_test(malformed_files_are_refused_naming_the_line),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
