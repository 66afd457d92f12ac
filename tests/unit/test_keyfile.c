/*
 * NAME
 *	test_keyfile - unit tests for recipients' key files (lib/keyfile.c)
 *	and the splitting of a key export (lib/pgppacket.c)
 * DESCRIPTION
 *	FPR.meta's JSON: what keymeta_format writes keymeta_parse reads back
 *	equal (no subkey, sixteen, the largest expiry); anything else is
 *	refused and leaves the struct zeroed: not JSON, not an object, a
 *	member missing or of another type, a negative expiry, a fingerprint
 *	that is not 40 upper-case hex digits, seventeen encryption subkeys,
 *	more than KEYMETA_MAX_JSON bytes, a member given twice, bytes after
 *	the object. keymeta_check's every outcome (the primary key revoked,
 *	expired at now, invalid; no encryption subkey; every one revoked,
 *	expired or invalid; one good among bad ones), each reason naming the
 *	fingerprint and nothing else. keyfile_read: no file, a file of
 *	another key, a file that does not parse, one too big. A batch: the
 *	directory made 0700, both files written with exactly the key and
 *	its JSON, the same again changes nothing (not even the inode), a
 *	change rewrites, a batch freed without a commit leaves no file
 *	behind. pgppacket_next_key over synthetic packets: two keys cut
 *	apart, and what is not a key refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfile.h"
#include "pgppacket.h"
#include "util.h"

#include "fsfix.h"

#define NOW	1780000000LL

static const char FPR[] = "0123456789ABCDEF0123456789ABCDEF01234567";
static const char FPR2[] = "FEDCBA9876543210FEDCBA9876543210FEDCBA98";

/* good - a key FPR with one encryption subkey, neither expiring. */
static struct keymeta
good(const char *fpr)
{
	struct keymeta m;

	memset(&m, 0, sizeof(m));
	memcpy(m.fpr, fpr, KEYFILE_FPR_SIZE);
	m.n_enc = 1;
	return m;
}

static int
parse(const char *json, struct keymeta *m)
{
	return keymeta_parse(json, strlen(json), m);
}

static void
assert_zeroed(const struct keymeta *m)
{
	static const struct keymeta zero;

	assert_memory_equal(m, &zero, sizeof(zero));
}

/* round_trip - m formatted parses back to m. */
static void
round_trip(const struct keymeta *m)
{
	char *json = keymeta_format(m);
	struct keymeta back;

	assert_non_null(json);
	assert_true(strlen(json) <= KEYMETA_MAX_JSON);
	assert_int_equal(keymeta_parse(json, strlen(json), &back), 0);
	assert_memory_equal(&back, m, sizeof(*m));
	free(json);
}

static void
format_parses_back(void **state)
{
	struct keymeta m = good(FPR);
	char *json;

	(void)state;
	/* the text itself: compact, members sorted */
	m.enc[0].expires = 1790000000;
	json = keymeta_format(&m);
	assert_non_null(json);
	assert_string_equal(json, "{\"enc\":[{\"expiry\":1790000000,\"revoked\":false,"
			    "\"unusable\":false}],\"expiry\":0,\"fpr\":\"0123456789ABCDEF"
			    "0123456789ABCDEF01234567\",\"revoked\":false,\"unusable\":false}");
	free(json);
	round_trip(&m);

	/* no encryption subkey; every flag set */
	m = good(FPR2);
	m.n_enc = 0;
	m.revoked = 1;
	m.unusable = 1;
	m.expires = 1;
	round_trip(&m);

	/* sixteen subkeys of every kind; the largest expiry there is */
	m = good(FPR);
	m.expires = 9223372036854775807LL;
	m.n_enc = KEYMETA_MAX_ENC;
	for (unsigned i = 0; i < KEYMETA_MAX_ENC; i++) {
		m.enc[i].expires = i % 3 ? NOW + i : 0;
		m.enc[i].revoked = i % 2;
		m.enc[i].unusable = (i / 2) % 2;
	}
	m.enc[15].expires = 9223372036854775807LL;
	round_trip(&m);

	/* what it cannot describe it does not write */
	m = good(FPR);
	m.n_enc = KEYMETA_MAX_ENC + 1;
	assert_null(keymeta_format(&m));
	m = good(FPR);
	m.fpr[39] = 'a';
	assert_null(keymeta_format(&m));
	m.fpr[0] = '\0';
	assert_null(keymeta_format(&m));
}

/* enc_n - JSON of a key with n good encryption subkeys (malloc'd). */
static char *
enc_n(unsigned n)
{
	char *s = malloc(128 + 64 * (size_t)n), *p = s;

	assert_non_null(s);
	p += sprintf(p, "{\"fpr\":\"%s\",\"revoked\":false,\"unusable\":false,"
		     "\"expiry\":0,\"enc\":[", FPR);
	for (unsigned i = 0; i < n; i++)
		p += sprintf(p, "%s{\"expiry\":0,\"revoked\":false,\"unusable\":false}",
			     i ? "," : "");
	strcpy(p, "]}");
	return s;
}

static void
malformed_meta_is_refused(void **state)
{
#define F	"\"fpr\":\"0123456789ABCDEF0123456789ABCDEF01234567\""
#define S	"{\"expiry\":0,\"revoked\":false,\"unusable\":false}"
	static const char *const bad[] = {
		"",
		"not json",
		"{",
		"[]",
		"\"" F "\"",
		"null",
		"42",
		"[{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[]}]",
		/* a member missing */
		"{\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[" S "]}",
		"{" F ",\"unusable\":false,\"expiry\":0,\"enc\":[" S "]}",
		"{" F ",\"revoked\":false,\"expiry\":0,\"enc\":[" S "]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"enc\":[" S "]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":"
		    "[{\"revoked\":false,\"unusable\":false}]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":"
		    "[{\"expiry\":0,\"unusable\":false}]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":"
		    "[{\"expiry\":0,\"revoked\":false}]}",
		/* a member of another type */
		"{\"fpr\":42,\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{\"fpr\":null,\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{" F ",\"revoked\":0,\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{" F ",\"revoked\":\"false\",\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{" F ",\"revoked\":false,\"unusable\":null,\"expiry\":0,\"enc\":[]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":\"0\",\"enc\":[]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":1.5,\"enc\":[]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0.0,\"enc\":[]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":{}}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":" S "}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[1]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[[]]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[" S ",{}]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":"
		    "[{\"expiry\":0,\"revoked\":1,\"unusable\":false}]}",
		/* a negative expiry, or one past a long long */
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":-1,\"enc\":[]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":"
		    "[{\"expiry\":-1,\"revoked\":false,\"unusable\":false}]}",
		"{" F ",\"revoked\":false,\"unusable\":false,"
		    "\"expiry\":9223372036854775808,\"enc\":[]}",
		/* fingerprints that are not 40 upper-case hex digits */
		"{\"fpr\":\"0123456789ABCDEF0123456789ABCDEF0123456\",\"revoked\":false,"
		    "\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{\"fpr\":\"0123456789ABCDEF0123456789ABCDEF012345678\",\"revoked\":false,"
		    "\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{\"fpr\":\"0123456789abcdef0123456789abcdef01234567\",\"revoked\":false,"
		    "\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{\"fpr\":\"0123456789ABCDEF0123456789ABCDEF0123456a\",\"revoked\":false,"
		    "\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{\"fpr\":\"G123456789ABCDEF0123456789ABCDEF01234567\",\"revoked\":false,"
		    "\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{\"fpr\":\" 123456789ABCDEF0123456789ABCDEF01234567\",\"revoked\":false,"
		    "\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{\"fpr\":\"0123456789ABCDEF0123456789ABCDEF0123456\\u0000\",\"revoked\":false,"
		    "\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{\"fpr\":\"\",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		/* a member twice, at the top or in a subkey */
		"{" F "," F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[]}",
		"{" F ",\"revoked\":false,\"revoked\":true,\"unusable\":false,\"expiry\":0,"
		    "\"enc\":[]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[],"
		    "\"enc\":[" S "]}",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":"
		    "[{\"expiry\":0,\"expiry\":5,\"revoked\":false,\"unusable\":false}]}",
		/* something after the object */
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[]} x",
		"{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,\"enc\":[]}{}",
	};
	const char *ok = "{" F ",\"revoked\":false,\"unusable\":false,\"expiry\":0,"
			 "\"enc\":[" S "]}";
#undef F
#undef S
	struct keymeta m;
	char *s, *big;
	size_t n;

	(void)state;
	for (size_t i = 0; i < CP_ARRAY_SIZE(bad); i++) {
		memset(&m, 0x5a, sizeof(m));
		if (parse(bad[i], &m) != -EBADMSG)
			fail_msg("accepted: %s", bad[i]);
		assert_zeroed(&m);
	}
	/* the good one, whole; cut short (len says where it ends) */
	assert_int_equal(parse(ok, &m), 0);
	assert_string_equal(m.fpr, FPR);
	assert_int_equal(m.n_enc, 1);
	memset(&m, 0x5a, sizeof(m));
	assert_int_equal(keymeta_parse(ok, strlen(ok) - 1, &m), -EBADMSG);
	assert_zeroed(&m);
	/* an embedded NUL byte, not an escape */
	{
		char nul[256];

		n = strlen(ok);
		memcpy(nul, ok, n + 1);
		nul[10] = '\0';
		assert_int_equal(keymeta_parse(nul, n, &m), -EBADMSG);
	}

	/* sixteen encryption subkeys, not seventeen */
	s = enc_n(KEYMETA_MAX_ENC);
	assert_int_equal(parse(s, &m), 0);
	assert_int_equal(m.n_enc, KEYMETA_MAX_ENC);
	free(s);
	s = enc_n(KEYMETA_MAX_ENC + 1);
	memset(&m, 0x5a, sizeof(m));
	assert_int_equal(parse(s, &m), -EBADMSG);
	assert_zeroed(&m);
	free(s);

	/* KEYMETA_MAX_JSON bytes (spaces after the object), not one more */
	n = strlen(ok);
	big = malloc(KEYMETA_MAX_JSON + 2);
	assert_non_null(big);
	memcpy(big, ok, n);
	memset(big + n, ' ', KEYMETA_MAX_JSON + 1 - n);
	big[KEYMETA_MAX_JSON + 1] = '\0';
	assert_int_equal(keymeta_parse(big, KEYMETA_MAX_JSON, &m), 0);
	memset(&m, 0x5a, sizeof(m));
	assert_int_equal(keymeta_parse(big, KEYMETA_MAX_JSON + 1, &m), -EBADMSG);
	assert_zeroed(&m);
	free(big);
}

/* reason_names_fpr_only - err is "gpg: key FPR..." and says nothing more
 * than a fixed phrase: no number, no address, no other key. */
static void
reason_names_fpr_only(const struct cp_error *err, int code, const char *fpr)
{
	const char *rest;
	size_t n = strlen("gpg: key ");

	assert_int_equal(err->code, code);
	if (strncmp(err->text, "gpg: key ", n) != 0 ||
	    strncmp(err->text + n, fpr, 40) != 0)
		fail_msg("reason \"%s\" does not begin with the key", err->text);
	for (rest = err->text + n + 40; *rest; rest++)
		if (!(islower((unsigned char)*rest) || *rest == ' ' || *rest == ':'))
			fail_msg("reason \"%s\" says more than the key", err->text);
}

/* check - keymeta_check at NOW: want, and a reason that names fpr only */
static void
check(const struct keymeta *m, int want)
{
	struct cp_error err;
	int r;

	cp_error_clear(&err);
	r = keymeta_check(m, NOW, &err);
	if (r != want)
		fail_msg("keymeta_check gave %d (want %d): %s", r, want, err.text);
	if (want == 0)
		assert_int_equal(err.code, 0);
	else
		reason_names_fpr_only(&err, want, m->fpr);
	assert_int_equal(keymeta_check(m, NOW, NULL), want);
}

static void
check_gives_each_outcome(void **state)
{
	struct keymeta m;

	(void)state;
	m = good(FPR);
	check(&m, 0);

	/* the primary key */
	m = good(FPR);
	m.revoked = 1;
	check(&m, -EKEYREVOKED);
	m = good(FPR);
	m.expires = NOW;			/* expired at now */
	check(&m, -EKEYEXPIRED);
	m.expires = NOW - 86400;
	check(&m, -EKEYEXPIRED);
	m.expires = NOW + 1;			/* not yet */
	check(&m, 0);
	m.expires = 1;				/* gpg's "expired", undated */
	check(&m, -EKEYEXPIRED);
	m = good(FPR);
	m.unusable = 1;
	check(&m, -EKEYREJECTED);
	/* revoked before expired before unusable */
	m = good(FPR);
	m.revoked = m.unusable = 1;
	m.expires = 1;
	check(&m, -EKEYREVOKED);
	m.revoked = 0;
	check(&m, -EKEYEXPIRED);

	/* no encryption subkey */
	m = good(FPR2);
	m.n_enc = 0;
	check(&m, -EKEYREJECTED);

	/* every encryption subkey revoked, expired, unusable */
	m = good(FPR);
	m.n_enc = 3;
	for (unsigned i = 0; i < 3; i++)
		m.enc[i].revoked = 1;
	check(&m, -EKEYREVOKED);
	m = good(FPR);
	m.n_enc = 3;
	m.enc[0].expires = NOW;
	m.enc[1].expires = 1;
	m.enc[2].expires = NOW - 1;
	check(&m, -EKEYEXPIRED);
	m.enc[0].expires = NOW + 1;		/* one not yet expired */
	check(&m, 0);
	m = good(FPR);
	m.n_enc = 2;
	m.enc[0].unusable = m.enc[1].unusable = 1;
	check(&m, -EKEYREJECTED);
	/* none good: a revoked one said before an expired one */
	m = good(FPR);
	m.n_enc = 3;
	m.enc[0].unusable = 1;
	m.enc[1].expires = NOW;
	m.enc[2].revoked = 1;
	check(&m, -EKEYREVOKED);
	m.enc[2].revoked = 0;
	m.enc[2].unusable = 1;
	check(&m, -EKEYEXPIRED);

	/* one good among bad ones, wherever it is */
	for (unsigned good_one = 0; good_one < KEYMETA_MAX_ENC; good_one++) {
		m = good(FPR);
		m.n_enc = KEYMETA_MAX_ENC;
		for (unsigned i = 0; i < KEYMETA_MAX_ENC; i++) {
			if (i == good_one)
				continue;
			switch (i % 3) {
			case 0: m.enc[i].revoked = 1; break;
			case 1: m.enc[i].expires = NOW; break;
			default: m.enc[i].unusable = 1; break;
			}
		}
		m.enc[good_one].expires = good_one % 2 ? NOW + 1 : 0;
		check(&m, 0);
	}
	/* but a key-level state wins over a good subkey */
	m.unusable = 1;
	check(&m, -EKEYREJECTED);
}

static void
path_needs_a_fingerprint(void **state)
{
	char path[128];
	const char *bad[] = {
		"",
		"0123456789abcdef0123456789abcdef01234567",
		"0123456789ABCDEF0123456789ABCDEF0123456",
		"0123456789ABCDEF0123456789ABCDEF012345678",
		"0123456789ABCDEF0123456789ABCDEF0123456G",
		"../../../../../../../../../../../etc/pas",
		"0123456789ABCDEF0123456789ABCDEF0123/567",
	};

	(void)state;
	assert_int_equal(keyfile_path("/k", FPR, "key", path, sizeof(path)), 0);
	assert_string_equal(path, "/k/0123456789ABCDEF0123456789ABCDEF01234567.key");
	assert_int_equal(keyfile_path("/k", FPR, "meta", path, sizeof(path)), 0);
	assert_string_equal(path, "/k/0123456789ABCDEF0123456789ABCDEF01234567.meta");
	for (size_t i = 0; i < CP_ARRAY_SIZE(bad); i++)
		if (keyfile_path("/k", bad[i], "key", path, sizeof(path)) != -EINVAL)
			fail_msg("path for \"%s\"", bad[i]);
	assert_int_equal(keyfile_path("/k", FPR, "key", path, 20), -ENAMETOOLONG);
}

/* ls - how many entries of dir (not . and ..) begin with prefix; any
 * temporary one (".tmp.") is counted in *tmp. */
static int
ls(const char *dir, const char *prefix, int *tmp)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	*tmp = 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (strstr(e->d_name, ".tmp.") != NULL)
			(*tmp)++;
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* assert_file - dir/name holds exactly data[0..len). */
static void
assert_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[256];
	char *text = NULL;
	size_t n = 0;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (cp_read_file(path, 1 << 20, &text, &n) != 0)
		fail_msg("cannot read %s", path);
	assert_int_equal(n, len);
	assert_memory_equal(text, data, len);
	free(text);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static ino_t
inode(const char *dir, const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

static void
read_refuses_what_is_not_the_key(void **state)
{
	char top[64], dir[96], path[160], *json;
	struct keymeta m = good(FPR), got;
	FILE *f;

	(void)state;
	assert_int_equal(tu_tmpdir("test_keyfile", top, sizeof(top)), 0);
	snprintf(dir, sizeof(dir), "%s/keys", top);
	assert_int_equal(mkdir(dir, 0700), 0);

	/* no directory, no file */
	assert_int_equal(keyfile_read("/nonexistent/carepost-keys", FPR, &got), -ENOENT);
	memset(&got, 0x5a, sizeof(got));
	assert_int_equal(keyfile_read(dir, FPR, &got), -ENOENT);
	assert_zeroed(&got);
	assert_int_equal(keyfile_read(dir, "0123", &got), -EINVAL);

	/* a good one: but not without its .key beside it */
	m.enc[0].expires = NOW + 5;
	json = keymeta_format(&m);
	snprintf(path, sizeof(path), "%s/%s.meta", dir, FPR);
	tu_write_file(path, "%s", json);
	assert_int_equal(keyfile_read(dir, FPR, &got), -EBADMSG);
	snprintf(path, sizeof(path), "%s/%s.key", dir, FPR);
	tu_write_file(path, "%s", "key");
	assert_int_equal(keyfile_read(dir, FPR, &got), 0);
	assert_memory_equal(&got, &m, sizeof(m));

	/* nor in a directory others may write, nor through a link */
	assert_int_equal(chmod(dir, 0770), 0);
	assert_int_equal(keyfile_read(dir, FPR, &got), -EPERM);
	assert_int_equal(chmod(dir, 0700), 0);
	{
		char link[128];

		snprintf(link, sizeof(link), "%s/link", top);
		assert_int_equal(symlink(dir, link), 0);
		assert_true(keyfile_read(link, FPR, &got) < 0);
		assert_int_equal(unlink(link), 0);
	}
	free(json);

	/* FPR2.meta that says it is FPR's */
	json = keymeta_format(&m);
	snprintf(path, sizeof(path), "%s/%s.key", dir, FPR2);
	tu_write_file(path, "%s", "key");
	snprintf(path, sizeof(path), "%s/%s.meta", dir, FPR2);
	tu_write_file(path, "%s", json);
	free(json);
	memset(&got, 0x5a, sizeof(got));
	assert_int_equal(keyfile_read(dir, FPR2, &got), -EBADMSG);
	assert_zeroed(&got);

	/* damaged: cut short, empty, not JSON at all */
	snprintf(path, sizeof(path), "%s/%s.meta", dir, FPR);
	tu_write_file(path, "{\"fpr\":\"%s\",\"revoked\":false", FPR);
	memset(&got, 0x5a, sizeof(got));
	assert_int_equal(keyfile_read(dir, FPR, &got), -EBADMSG);
	assert_zeroed(&got);
	tu_write_file(path, "%s", "");
	assert_int_equal(keyfile_read(dir, FPR, &got), -EBADMSG);
	tu_write_file(path, "%s", "\x99\x01\x0d\x04 binary");
	assert_int_equal(keyfile_read(dir, FPR, &got), -EBADMSG);

	/* over KEYMETA_MAX_JSON, however good its start */
	json = keymeta_format(&m);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(json, f);
	for (size_t i = strlen(json); i <= KEYMETA_MAX_JSON; i++)
		fputc(' ', f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(keyfile_read(dir, FPR, &got), -EBADMSG);
	free(json);

	tu_rm_rf(top);
}

static void
batch_writes_both_files_once(void **state)
{
	static const uint8_t key[] = { 0xC6, 0x06, 4, 0x69, 0x00, 0x00, 0x00, 22,
				       0xCD, 0x03, 'P', ' ', 'x' };
	static const uint8_t key2[] = { 0xC6, 0x06, 4, 0x6a, 0x00, 0x00, 0x00, 22 };
	char top[64], dir[96], kname[64], mname[64];
	struct keyfile_batch *b = NULL;
	struct keymeta m = good(FPR), got;
	struct cp_error err;
	struct stat st;
	ino_t ki, mi;
	char *json;
	int tmp;
	mode_t old = umask(022);

	(void)state;
	assert_int_equal(tu_tmpdir("test_keyfile", top, sizeof(top)), 0);
	snprintf(dir, sizeof(dir), "%s/" KEYFILE_DIR, top);
	snprintf(kname, sizeof(kname), "%s.key", FPR);
	snprintf(mname, sizeof(mname), "%s.meta", FPR);
	cp_error_clear(&err);

	/* the directory is made, 0700 */
	assert_int_equal(keyfile_batch_new(dir, &b, &err), 0);
	assert_non_null(b);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(keyfile_batch_count(b), 0);
	assert_int_equal(keyfile_batch_commit(b, &err), 0);	/* nothing */

	/* written as temporary files, in place at the commit */
	m.enc[0].expires = NOW + 100;
	assert_int_equal(keyfile_batch_add(b, &m, key, sizeof(key), &err), 0);
	assert_int_equal(keyfile_batch_count(b), 1);
	assert_int_equal(access(dir, F_OK), 0);
	assert_int_equal(ls(dir, FPR, &tmp), 2);
	assert_int_equal(tmp, 2);
	assert_int_equal(access(top, F_OK), 0);
	assert_int_equal(keyfile_batch_commit(b, &err), 0);
	assert_int_equal(keyfile_batch_count(b), 0);
	keyfile_batch_free(b);
	assert_int_equal(ls(dir, "", &tmp), 2);
	assert_int_equal(tmp, 0);
	json = keymeta_format(&m);
	assert_file(dir, kname, key, sizeof(key));
	assert_file(dir, mname, json, strlen(json));
	free(json);
	assert_int_equal(keyfile_read(dir, FPR, &got), 0);
	assert_memory_equal(&got, &m, sizeof(m));
	ki = inode(dir, kname);
	mi = inode(dir, mname);

	/* the same again: nothing to do, nothing touched; the directory
	 * already there */
	assert_int_equal(keyfile_batch_new(dir, &b, &err), 0);
	assert_int_equal(keyfile_batch_add(b, &m, key, sizeof(key), &err), 0);
	assert_int_equal(keyfile_batch_count(b), 0);
	assert_int_equal(ls(dir, "", &tmp), 2);
	assert_int_equal(tmp, 0);
	assert_int_equal(keyfile_batch_commit(b, &err), 0);
	keyfile_batch_free(b);
	assert_true(inode(dir, kname) == ki);
	assert_true(inode(dir, mname) == mi);

	/* the meta changed (revoked since), or the key alone: rewritten */
	m.enc[0].revoked = 1;
	assert_int_equal(keyfile_batch_new(dir, &b, &err), 0);
	assert_int_equal(keyfile_batch_add(b, &m, key, sizeof(key), &err), 0);
	assert_int_equal(keyfile_batch_count(b), 1);
	assert_int_equal(keyfile_batch_commit(b, &err), 0);
	keyfile_batch_free(b);
	assert_int_equal(keyfile_read(dir, FPR, &got), 0);
	assert_true(got.enc[0].revoked);
	assert_file(dir, kname, key, sizeof(key));
	assert_int_equal(keyfile_batch_new(dir, &b, &err), 0);
	assert_int_equal(keyfile_batch_add(b, &m, key, sizeof(key) - 5, &err), 0);
	assert_int_equal(keyfile_batch_count(b), 1);
	assert_int_equal(keyfile_batch_commit(b, &err), 0);
	keyfile_batch_free(b);
	assert_file(dir, kname, key, sizeof(key) - 5);
	assert_int_equal(ls(dir, "", &tmp), 2);
	assert_int_equal(tmp, 0);

	/* a batch freed without a commit: no file of a new key, no
	 * temporary file, the old files of a known key as they were */
	{
		struct keymeta m2 = good(FPR2), m1 = m;

		m1.revoked = 1;
		assert_int_equal(keyfile_batch_new(dir, &b, &err), 0);
		assert_int_equal(keyfile_batch_add(b, &m2, key2, sizeof(key2), &err), 0);
		assert_int_equal(keyfile_batch_add(b, &m1, key, sizeof(key), &err), 0);
		assert_int_equal(keyfile_batch_count(b), 2);
		assert_int_equal(ls(dir, "", &tmp), 6);
		assert_int_equal(tmp, 4);
		keyfile_batch_free(b);
		assert_int_equal(ls(dir, FPR2, &tmp), 0);
		assert_int_equal(tmp, 0);
		assert_int_equal(ls(dir, "", &tmp), 2);
		assert_file(dir, kname, key, sizeof(key) - 5);
		assert_int_equal(keyfile_read(dir, FPR, &got), 0);
		assert_memory_equal(&got, &m, sizeof(m));
		keyfile_batch_free(NULL);
	}

	/* one key twice in a batch (gpg reports a key once per copy in
	 * the imported data): written once, committed whole */
	{
		struct keymeta m2 = good(FPR2);

		assert_int_equal(keyfile_batch_new(dir, &b, &err), 0);
		assert_int_equal(keyfile_batch_add(b, &m2, key2, sizeof(key2), &err), 0);
		assert_int_equal(keyfile_batch_add(b, &m2, key2, sizeof(key2), &err), 0);
		assert_int_equal(keyfile_batch_count(b), 1);
		assert_int_equal(keyfile_batch_commit(b, &err), 0);
		keyfile_batch_free(b);
		char k2[64], p2[256];

		snprintf(k2, sizeof(k2), "%s.key", FPR2);
		assert_file(dir, k2, key2, sizeof(key2));
		assert_int_equal(ls(dir, "", &tmp), 4);
		assert_int_equal(tmp, 0);
		snprintf(p2, sizeof(p2), "%s/%s.key", dir, FPR2);
		assert_int_equal(unlink(p2), 0);
		snprintf(p2, sizeof(p2), "%s/%s.meta", dir, FPR2);
		assert_int_equal(unlink(p2), 0);
	}

	/* a key it cannot describe is refused, naming nothing else */
	{
		struct keymeta bad = good(FPR);

		bad.n_enc = KEYMETA_MAX_ENC + 1;
		assert_int_equal(keyfile_batch_new(dir, &b, &err), 0);
		assert_true(keyfile_batch_add(b, &bad, key, sizeof(key), &err) < 0);
		assert_int_equal(keyfile_batch_count(b), 0);
		keyfile_batch_free(b);
		assert_int_equal(ls(dir, "", &tmp), 2);
		assert_int_equal(tmp, 0);
	}

	/* a directory that cannot be made */
	{
		char deep[160];

		snprintf(deep, sizeof(deep), "%s/no/such", top);
		b = (struct keyfile_batch *)&err;
		assert_int_equal(keyfile_batch_new(deep, &b, &err), -ENOENT);
		assert_null(b);
		assert_int_equal(err.code, -ENOENT);
	}

	tu_rm_rf(top);
	umask(old);
}

/* Synthetic keys: a new-format public-key packet (tag 6, one-byte
 * length, version 4, a time, algorithm 22), then a user id (tag 13). */
static const uint8_t K1[] = { 0xC6, 0x06, 4, 0x5f, 0x00, 0x00, 0x01, 22,
			      0xCD, 0x03, 'a', 'b', 'c' };
static const uint8_t K2[] = { 0xC6, 0x06, 4, 0x5f, 0x00, 0x00, 0x02, 22,
			      0xCD, 0x01, 'd', 0xCE, 0x02, 0, 0 };
/* K3: old-format packets (0x98: tag 6, one-byte length; 0xB4: tag 13) */
static const uint8_t K3[] = { 0x98, 0x06, 4, 0x5f, 0x00, 0x00, 0x03, 22,
			      0xB4, 0x01, 'e' };

static void
next_key_splits_an_export(void **state)
{
	uint8_t all[sizeof(K1) + sizeof(K2) + sizeof(K3)];
	char f1[PGPPACKET_FPR_SIZE], f2[PGPPACKET_FPR_SIZE], f[PGPPACKET_FPR_SIZE];
	size_t end = 12345, n = 0;

	(void)state;
	memcpy(all, K1, sizeof(K1));
	memcpy(all + sizeof(K1), K2, sizeof(K2));
	memcpy(all + sizeof(K1) + sizeof(K2), K3, sizeof(K3));

	/* one key alone: to its end */
	assert_int_equal(pgppacket_next_key(K1, sizeof(K1), 0, &end), 0);
	assert_int_equal(end, sizeof(K1));
	/* a public-key packet alone is a key too */
	assert_int_equal(pgppacket_next_key(K1, 8, 0, &end), 0);
	assert_int_equal(end, 8);

	/* three keys, each to the start of the next */
	assert_int_equal(pgppacket_next_key(all, sizeof(all), 0, &end), 0);
	assert_int_equal(end, sizeof(K1));
	assert_int_equal(pgppacket_next_key(all, sizeof(all), end, &end), 0);
	assert_int_equal(end, sizeof(K1) + sizeof(K2));
	assert_int_equal(pgppacket_next_key(all, sizeof(all), end, &end), 0);
	assert_int_equal(end, sizeof(all));
	/* the loop of pgppacket.h's synopsis, and each piece's fingerprint */
	for (size_t off = 0; off < sizeof(all); off = end, n++) {
		assert_int_equal(pgppacket_next_key(all, sizeof(all), off, &end), 0);
		assert_true(end > off);
		assert_int_equal(pgppacket_v4_fpr(all + off, end - off, f), 0);
		assert_int_equal(strlen(f), 40);
		assert_int_equal(strspn(f, "0123456789ABCDEF"), 40);
		if (n == 0)
			memcpy(f1, f, sizeof(f));
		if (n == 1)
			memcpy(f2, f, sizeof(f));
	}
	assert_int_equal(n, 3);
	assert_string_not_equal(f1, f2);
	assert_int_equal(pgppacket_v4_fpr(K1, sizeof(K1), f), 0);
	assert_string_equal(f, f1);
}

static void
next_key_refuses_what_is_no_key(void **state)
{
	uint8_t buf[64];
	size_t end = 777;

	(void)state;
	/* nothing left */
	assert_int_equal(pgppacket_next_key(K1, sizeof(K1), sizeof(K1), &end), -EINVAL);
	assert_int_equal(pgppacket_next_key(K1, sizeof(K1), sizeof(K1) + 2, &end), -EINVAL);
	assert_int_equal(pgppacket_next_key(K1, 0, 0, &end), -EINVAL);
	assert_int_equal(pgppacket_next_key(K1, 1, 0, &end), -EINVAL);
	/* not a public-key packet first: a user id, a public subkey (14),
	 * a secret key (5), not a packet at all; the middle of a key */
	assert_int_equal(pgppacket_next_key(K1 + 8, sizeof(K1) - 8, 0, &end), -EINVAL);
	assert_int_equal(pgppacket_next_key(K1, sizeof(K1), 8, &end), -EINVAL);
	memcpy(buf, K1, sizeof(K1));
	buf[0] = 0xCE;
	assert_int_equal(pgppacket_next_key(buf, sizeof(K1), 0, &end), -EINVAL);
	buf[0] = 0xC5;
	assert_int_equal(pgppacket_next_key(buf, sizeof(K1), 0, &end), -EINVAL);
	buf[0] = 0x06;
	assert_int_equal(pgppacket_next_key(buf, sizeof(K1), 0, &end), -EINVAL);
	/* the key packet past the end */
	memcpy(buf, K1, sizeof(K1));
	buf[1] = 0x20;
	assert_int_equal(pgppacket_next_key(buf, sizeof(K1), 0, &end), -EINVAL);
	assert_int_equal(pgppacket_next_key(K1, 7, 0, &end), -EINVAL);
	/* a later packet past the end, or its header cut */
	memcpy(buf, K1, sizeof(K1));
	buf[9] = 0x10;				/* the user id: 16 bytes, 3 there */
	assert_int_equal(pgppacket_next_key(buf, sizeof(K1), 0, &end), -EINVAL);
	assert_int_equal(pgppacket_next_key(K1, sizeof(K1) - 1, 0, &end), -EINVAL);
	assert_int_equal(pgppacket_next_key(K1, 9, 0, &end), -EINVAL);
	memcpy(buf, K1, 8);
	buf[8] = 0xCD;
	buf[9] = 0xE1;				/* a partial length */
	memcpy(buf + 10, "abcdef", 6);
	assert_int_equal(pgppacket_next_key(buf, 16, 0, &end), -EINVAL);
	memcpy(buf, K1, 8);
	buf[8] = 0x40;				/* not a packet header */
	buf[9] = 0x00;
	assert_int_equal(pgppacket_next_key(buf, 10, 0, &end), -EINVAL);
	/* a second key whose own packet runs past the end: the first key
	 * is refused too (its end is not known) */
	memcpy(buf, K1, sizeof(K1));
	memcpy(buf + sizeof(K1), K2, 8);
	buf[sizeof(K1) + 1] = 0x30;
	assert_int_equal(pgppacket_next_key(buf, sizeof(K1) + 8, 0, &end), -EINVAL);
	assert_int_equal(end, 777);		/* untouched on a refusal */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(format_parses_back),
		cmocka_unit_test(malformed_meta_is_refused),
		cmocka_unit_test(check_gives_each_outcome),
		cmocka_unit_test(path_needs_a_fingerprint),
		cmocka_unit_test(read_refuses_what_is_not_the_key),
		cmocka_unit_test(batch_writes_both_files_once),
		cmocka_unit_test(next_key_splits_an_export),
		cmocka_unit_test(next_key_refuses_what_is_no_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
