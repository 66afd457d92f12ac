/*
 * NAME
 *	test_pgp - unit tests for lib/pgp.c against a real gpg
 * DESCRIPTION
 *	The group setup makes three throwaway GnuPG homes under one short
 *	temp dir (socket paths are limited): c/ the clinic (its secret key,
 *	the patient's public key, an expired and a revoked key), p/ the
 *	patient (its secret key, the clinic's public key) and o/ where the
 *	odd keys are made. What pgp.c produces is checked with the gpg
 *	command line as the patient would run it. The teardown stops every
 *	gpg-agent it started and removes the dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <sys/stat.h>

#include "buf.h"
#include "gpgfix.h"
#include "pgp.h"
#include "util.h"

struct fixture {
	char dir[64];
	char clinic_home[80], patient_home[80], other_home[80];
	char clinic[PGP_FPR_SIZE], patient[PGP_FPR_SIZE];
	char expired[PGP_FPR_SIZE], revoked[PGP_FPR_SIZE];
	char signonly[PGP_FPR_SIZE];
	struct pgp *pgp;		/* the clinic's */
};

static struct fixture fx;

static const char inner[] =
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 7bit\r\n"
	"\r\n"
	"Your lab results are ready.\r\n"
	"From the clinic, with = signs and -----BEGIN lines\r\n";

/* ---- helpers ---- */



/* first_fpr - the first "fpr:" record of a --with-colons listing. */
static int
first_fpr(const char *home, const char *who, char fpr[PGP_FPR_SIZE])
{
	struct buf out = BUF_INIT, cmd = BUF_INIT;
	const char *p;
	int r = -1;

	buf_printf(&cmd, "gpg --homedir %s --batch --with-colons "
		   "--list-keys '%s' 2>/dev/null", home, who);
	if (tu_capture(&out, cmd.data) == 0 &&
	    (p = strstr(out.data, "\nfpr:::::::::")) != NULL &&
	    strlen(p) > 13 + 40) {
		memcpy(fpr, p + 13, 40);
		fpr[40] = '\0';
		r = 0;
	}
	buf_free(&out);
	buf_free(&cmd);
	return r;
}

/*
 * make_key - a primary ed25519 key for uid in home, with a cv25519
 * encryption subkey unless sign_only; expire is gpg's expiry argument
 * and faked an optional --faked-system-time value.
 */
static int
make_key(const char *home, const char *uid, const char *email,
	 const char *expire, const char *faked, int sign_only,
	 char fpr[PGP_FPR_SIZE])
{
	char opt[64] = "";

	if (faked != NULL)
		snprintf(opt, sizeof(opt), "--faked-system-time '%s'", faked);
	if (tu_run("gpg --homedir %s --batch --passphrase '' %s --quick-gen-key "
		"'%s <%s>' ed25519 sign,cert %s", home, opt, uid, email,
		expire) != 0)
		return -1;
	if (first_fpr(home, email, fpr) < 0)
		return -1;
	if (sign_only)
		return 0;
	return tu_run("gpg --homedir %s --batch --passphrase '' %s --quick-add-key "
		   "%s cv25519 encr %s", home, opt, fpr, expire) == 0 ? 0 : -1;
}

/*
 * revocation - gpg's own revocation certificate for fpr, made with the
 * key in from, armed (gpg disarms it with a leading ':' on the armor
 * header). A malloc'd string, or NULL.
 */
static char *
revocation(const char *from, const char *fpr)
{
	char path[256], *data = NULL, *line, *out;
	size_t len;

	snprintf(path, sizeof(path), "%s/openpgp-revocs.d/%s.rev", from, fpr);
	if (cp_read_file(path, 1 << 20, &data, &len) < 0)
		return NULL;
	line = strstr(data, ":-----BEGIN PGP PUBLIC KEY BLOCK-----");
	out = line ? strdup(line + 1) : NULL;
	free(data);
	return out;
}

/* import_revocation - apply it to the keyring in to, with gpg. */
static int
import_revocation(const char *from, const char *to, const char *fpr)
{
	char path[256], *rev = revocation(from, fpr);
	int r;

	if (rev == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/rev.asc", fx.dir);
	r = cp_write_file_atomic(path, rev, strlen(rev), 0600);
	free(rev);
	if (r < 0)
		return -1;
	return tu_run("gpg --homedir %s --batch --import %s", to, path);
}

static int
group_setup(void **state)
{
	struct cp_error err;

	if (pgp_global_init() < 0)
		return -1;
	strcpy(fx.dir, "/tmp/cpg.XXXXXX");
	if (mkdtemp(fx.dir) == NULL || chmod(fx.dir, 0700) < 0)
		return -1;
	snprintf(fx.clinic_home, sizeof(fx.clinic_home), "%s/c", fx.dir);
	snprintf(fx.patient_home, sizeof(fx.patient_home), "%s/p", fx.dir);
	snprintf(fx.other_home, sizeof(fx.other_home), "%s/o", fx.dir);
	if (mkdir(fx.clinic_home, 0700) < 0 || mkdir(fx.patient_home, 0700) < 0 ||
	    mkdir(fx.other_home, 0700) < 0)
		return -1;
	if (make_key(fx.clinic_home, "Clinic", "clinic@example.org", "never",
		     NULL, 0, fx.clinic) < 0 ||
	    make_key(fx.patient_home, "Patient", "patient@example.org", "never",
		     NULL, 0, fx.patient) < 0 ||
	    make_key(fx.other_home, "Old", "old@example.org", "1d",
		     "20200101T000000!", 0, fx.expired) < 0 ||
	    make_key(fx.other_home, "Gone", "gone@example.org", "never",
		     NULL, 0, fx.revoked) < 0 ||
	    make_key(fx.other_home, "Signer", "signer@example.org", "never",
		     NULL, 1, fx.signonly) < 0)
		return -1;
	if (tu_move_public(fx.patient_home, fx.clinic_home, fx.patient) != 0 ||
	    tu_move_public(fx.clinic_home, fx.patient_home, fx.clinic) != 0 ||
	    tu_move_public(fx.other_home, fx.clinic_home, fx.expired) != 0 ||
	    tu_move_public(fx.other_home, fx.clinic_home, fx.revoked) != 0 ||
	    import_revocation(fx.other_home, fx.clinic_home, fx.revoked) != 0)
		return -1;
	if (pgp_new(fx.clinic_home, fx.clinic, &fx.pgp, &err) < 0) {
		fprintf(stderr, "pgp_new: %s\n", err.text);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	const char *homes[] = { fx.clinic_home, fx.patient_home, fx.other_home };

	pgp_free(fx.pgp);
	fx.pgp = NULL;
	for (size_t i = 0; i < CP_ARRAY_SIZE(homes); i++)
		if (homes[i][0] != '\0')
			tu_run("gpgconf --homedir %s --kill gpg-agent", homes[i]);
	if (strncmp(fx.dir, "/tmp/cpg.", 9) == 0)
		tu_run("rm -rf '%s'", fx.dir);
	return 0;
}

/* Every line ends in CRLF; no bare CR or LF anywhere. */
static void
assert_crlf_only(const char *s, size_t len)
{
	assert_true(len >= 2);
	assert_memory_equal(s + len - 2, "\r\n", 2);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r')
			assert_true(i + 1 < len && s[i + 1] == '\n');
		if (s[i] == '\n')
			assert_true(i > 0 && s[i - 1] == '\r');
	}
}

static size_t
count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* ---- pgp_new ---- */

static void
new_with_missing_signer_fails_naming_fingerprint(void **state)
{
	const char *fpr = "0123456789ABCDEF0123456789ABCDEF01234567";
	struct cp_error err;
	struct pgp *p = (struct pgp *)1;

	cp_error_clear(&err);
	assert_int_equal(pgp_new(fx.clinic_home, fpr, &p, &err), -ENOKEY);
	assert_null(p);
	assert_int_equal(err.code, -ENOKEY);
	assert_non_null(strstr(err.text, fpr));

	/* Only the patient's public key is here: no secret, no signer. */
	assert_int_equal(pgp_new(fx.clinic_home, fx.patient, &p, &err), -ENOKEY);
	assert_non_null(strstr(err.text, fx.patient));
	assert_null(p);
}

static void
new_rejects_malformed_fingerprint_without_echoing_it(void **state)
{
	struct cp_error err;
	struct pgp *p;

	assert_int_equal(pgp_new(fx.clinic_home, "clinic@example.org", &p, &err),
			 -EINVAL);
	assert_null(strstr(err.text, "clinic@"));
	assert_int_equal(pgp_new(fx.clinic_home, "0123", &p, &err), -EINVAL);
	assert_null(p);
}

static void
new_without_signer_manages_keys_but_cannot_sign(void **state)
{
	struct buf m = BUF_INIT;
	struct cp_error err;
	struct pgp *p = NULL;

	assert_int_equal(pgp_new(fx.clinic_home, NULL, &p, &err), 0);
	assert_non_null(p);
	assert_int_equal(pgp_key_check(p, fx.patient, &err), 0);
	assert_int_equal(pgp_mime_encrypt(p, fx.patient, "x\r\n\r\ny\r\n", 8,
					  &m, &err), -EINVAL);
	assert_int_equal(m.len, 0);
	assert_int_equal(pgp_encrypt_to(p, fx.patient, "x", 1, &m, &err), 0);
	assert_true(m.len > 0);
	pgp_free(p);
	buf_free(&m);
}

/* ---- keys ---- */

static void
key_check_good_key_is_usable(void **state)
{
	struct cp_error err;
	char lower[PGP_FPR_SIZE];

	cp_error_clear(&err);
	assert_int_equal(pgp_key_check(fx.pgp, fx.patient, &err), 0);
	assert_int_equal(pgp_key_check(fx.pgp, fx.clinic, &err), 0);
	for (size_t i = 0; i < PGP_FPR_SIZE; i++)
		lower[i] = (char)tolower((unsigned char)fx.patient[i]);
	assert_int_equal(pgp_key_check(fx.pgp, lower, &err), 0);
}

static void
key_check_unknown_is_enokey(void **state)
{
	const char *fpr = "89ABCDEF0123456789ABCDEF0123456789ABCDEF";
	struct cp_error err;

	assert_int_equal(pgp_key_check(fx.pgp, fpr, &err), -ENOKEY);
	assert_non_null(strstr(err.text, fpr));
}

static void
key_check_expired_is_ekeyexpired(void **state)
{
	struct cp_error err;

	assert_int_equal(pgp_key_check(fx.pgp, fx.expired, &err), -EKEYEXPIRED);
	assert_non_null(strstr(err.text, fx.expired));
}

static void
key_check_revoked_is_ekeyrevoked(void **state)
{
	struct cp_error err;

	assert_int_equal(pgp_key_check(fx.pgp, fx.revoked, &err), -EKEYREVOKED);
	assert_non_null(strstr(err.text, fx.revoked));
}

static void
key_check_malformed_fingerprint_is_einval(void **state)
{
	struct buf two = BUF_INIT;
	struct cp_error err;

	buf_printf(&two, "%.39s\n", fx.patient);
	assert_int_equal(pgp_key_check(fx.pgp, two.data, &err), -EINVAL);
	assert_int_equal(pgp_key_check(fx.pgp, "patient@example.org", &err),
			 -EINVAL);
	assert_null(strstr(err.text, "patient@"));
	assert_int_equal(pgp_key_check(fx.pgp, "", &err), -EINVAL);
	buf_free(&two);
}

static void
import_returns_fingerprint_and_sign_only_key_is_rejected(void **state)
{
	struct buf key = BUF_INIT, cmd = BUF_INIT;
	char fpr[PGP_FPR_SIZE];
	struct cp_error err;

	/* Not in the clinic keyring yet. */
	assert_int_equal(pgp_key_check(fx.pgp, fx.signonly, &err), -ENOKEY);
	buf_printf(&cmd, "gpg --homedir %s --batch --armor --export %s",
		   fx.other_home, fx.signonly);
	assert_int_equal(tu_capture(&key, cmd.data), 0);
	assert_non_null(strstr(key.data, "BEGIN PGP PUBLIC KEY BLOCK"));
	assert_int_equal(pgp_import(fx.pgp, key.data, key.len, fpr, NULL, &err), 0);
	assert_string_equal(fpr, fx.signonly);
	/* Present now, but it cannot encrypt. */
	assert_int_equal(pgp_key_check(fx.pgp, fx.signonly, &err), -EKEYREJECTED);
	assert_non_null(strstr(err.text, fx.signonly));

	/* Importing again reports the unchanged key. */
	assert_int_equal(pgp_import(fx.pgp, key.data, key.len, fpr, NULL, &err), 0);
	assert_string_equal(fpr, fx.signonly);
	buf_free(&key);
	buf_free(&cmd);
}

static void
import_of_garbage_fails(void **state)
{
	const char junk[] = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n"
			    "-----END PGP PUBLIC KEY BLOCK-----\n";
	char fpr[PGP_FPR_SIZE] = "x";
	struct cp_error err;

	assert_true(pgp_import(fx.pgp, junk, sizeof(junk) - 1, fpr, NULL, &err) < 0);
	assert_string_equal(fpr, "");
	assert_true(pgp_import(fx.pgp, "", 0, fpr, NULL, &err) < 0);
}

/*
 * A file of revocation certificates, as a patient who lost a key sends:
 * applied, counted, no fingerprint; the key is revoked from then on.
 */
static void
import_of_a_bare_revocation_applies_it(void **state)
{
	char lost[PGP_FPR_SIZE], fpr[PGP_FPR_SIZE] = "x", *rev;
	struct cp_error err;

	assert_int_equal(make_key(fx.other_home, "Lost", "lost@example.org",
				  "never", NULL, 0, lost), 0);
	assert_int_equal(tu_move_public(fx.other_home, fx.clinic_home, lost), 0);
	assert_int_equal(pgp_key_check(fx.pgp, lost, &err), 0);
	rev = revocation(fx.other_home, lost);
	assert_non_null(rev);
	assert_int_equal(pgp_import(fx.pgp, rev, strlen(rev), fpr, NULL, &err), 1);
	assert_string_equal(fpr, "");
	assert_int_equal(pgp_key_check(fx.pgp, lost, &err), -EKEYREVOKED);
	/* the same again: nothing new, which is not a success */
	assert_true(pgp_import(fx.pgp, rev, strlen(rev), fpr, NULL, &err) < 0);
	free(rev);
}

static void
key_expires_reports_primary_expiry(void **state)
{
	struct cp_error err;
	long long when = -1;

	assert_int_equal(pgp_key_expires(fx.pgp, fx.patient, &when, &err), 0);
	assert_int_equal(when, 0);
	/* Made at 2020-01-01T00:00:00Z for one day. */
	assert_int_equal(pgp_key_expires(fx.pgp, fx.expired, &when, &err), 0);
	assert_int_equal(when, 1577836800LL + 86400);
	assert_int_equal(pgp_key_expires(fx.pgp,
			 "89ABCDEF0123456789ABCDEF0123456789ABCDEF", &when, &err),
			 -ENOKEY);
}

/* ---- PGP/MIME ---- */

/*
 * check_structure - RFC 3156 layout; returns the armored part (a
 * pointer into m) and its length.
 */
static const char *
check_structure(const struct buf *m, size_t *armor_len)
{
	const char *ct = "Content-Type: multipart/encrypted;\r\n"
			 " protocol=\"application/pgp-encrypted\";\r\n"
			 " boundary=\"";
	char boundary[64], delim[80], close_delim[80];
	const char *p, *q, *part1, *part2, *end;

	assert_crlf_only(m->data, m->len);
	assert_int_equal(strncmp(m->data, ct, strlen(ct)), 0);
	p = m->data + strlen(ct);
	q = strchr(p, '"');
	assert_non_null(q);
	assert_true(q - p == 35);
	memcpy(boundary, p, (size_t)(q - p));
	boundary[q - p] = '\0';
	assert_int_equal(strncmp(boundary, "=_carepost_", 11), 0);
	assert_int_equal(strncmp(q, "\"\r\n\r\n", 5), 0);

	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
	snprintf(close_delim, sizeof(close_delim), "\r\n--%s--\r\n", boundary);
	/* The boundary appears in the header, twice as a delimiter, once
	 * closing, and nowhere else. */
	assert_int_equal(count_of(m->data, boundary), 4);
	assert_int_equal(count_of(m->data, delim), 2);
	assert_int_equal(count_of(m->data, close_delim), 1);
	end = m->data + m->len - strlen(close_delim);
	assert_string_equal(end, close_delim);

	part1 = strstr(m->data, delim) + strlen(delim);
	p = "Content-Type: application/pgp-encrypted\r\n"
	    "Content-Description: PGP/MIME version identification\r\n"
	    "\r\n"
	    "Version: 1\r\n";
	assert_int_equal(strncmp(part1, p, strlen(p)), 0);
	part2 = strstr(part1, delim);
	assert_non_null(part2);
	part2 += strlen(delim);
	p = "Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n";
	assert_int_equal(strncmp(part2, p, strlen(p)), 0);
	p = strstr(part2, "\r\n\r\n");
	assert_non_null(p);
	assert_non_null(strstr(part2, "Content-Disposition: inline; "
			       "filename=\"encrypted.asc\"\r\n"));
	assert_true(strstr(part2, "Content-Disposition") < p);
	p += 4;
	assert_int_equal(strncmp(p, "-----BEGIN PGP MESSAGE-----\r\n", 29), 0);
	q = strstr(p, "-----END PGP MESSAGE-----\r\n");
	assert_non_null(q);
	/* The body keeps the last CRLF; the next is the delimiter's. */
	assert_true(q + 27 == end);
	*armor_len = (size_t)(q + 27 - p);
	return p;
}

static void
mime_encrypt_builds_rfc3156_and_patient_gpg_verifies_clinic(void **state)
{
	struct buf m = BUF_INIT, st = BUF_INIT, cmd = BUF_INIT;
	char in[128], out[128], *plain = NULL, validsig[128];
	const char *armor;
	struct cp_error err;
	size_t alen, plen;

	buf_puts(&m, "Subject: kept\r\n");
	assert_int_equal(pgp_mime_encrypt(fx.pgp, fx.patient, inner,
					  sizeof(inner) - 1, &m, &err), 0);
	assert_int_equal(strncmp(m.data, "Subject: kept\r\n", 15), 0);
	{
		struct buf part = { m.data + 15, m.len - 15, 0, 0 };

		armor = check_structure(&part, &alen);
	}

	snprintf(in, sizeof(in), "%s/msg.asc", fx.dir);
	snprintf(out, sizeof(out), "%s/msg.out", fx.dir);
	unlink(out);
	assert_int_equal(cp_write_file_atomic(in, armor, alen, 0600), 0);
	buf_printf(&cmd, "gpg --homedir %s --batch --status-fd 1 --output %s "
		   "--decrypt %s 2>/dev/null", fx.patient_home, out, in);
	assert_int_equal(tu_capture(&st, cmd.data), 0);
	assert_non_null(strstr(st.data, "[GNUPG:] GOODSIG "));
	assert_null(strstr(st.data, "BADSIG"));
	/* VALIDSIG <signing key fpr> ... <primary key fpr> */
	snprintf(validsig, sizeof(validsig), "[GNUPG:] VALIDSIG %s ", fx.clinic);
	assert_non_null(strstr(st.data, validsig));
	assert_int_equal(cp_read_file(out, 1 << 20, &plain, &plen), 0);
	assert_int_equal(plen, sizeof(inner) - 1);
	assert_memory_equal(plain, inner, plen);
	free(plain);
	buf_free(&m);
	buf_free(&st);
	buf_free(&cmd);
}

static void
mime_encrypt_twice_uses_fresh_boundaries(void **state)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct cp_error err;

	assert_int_equal(pgp_mime_encrypt(fx.pgp, fx.patient, "x\r\n\r\ny\r\n",
					  8, &a, &err), 0);
	assert_int_equal(pgp_mime_encrypt(fx.pgp, fx.patient, "x\r\n\r\ny\r\n",
					  8, &b, &err), 0);
	/* Right after ' boundary="' (offset 87). */
	assert_memory_equal(a.data + 76, " boundary=\"=_carepost_", 22);
	assert_memory_not_equal(a.data + 87, b.data + 87, 35);
	buf_free(&a);
	buf_free(&b);
}

/*
 * assert_patient_reads_it_signed - what signer (a clinic context) makes of
 * inner is read back by the patient with a good signature by the clinic
 * key, and is not encrypted to the clinic key: the key that decrypts
 * replies must not open carepost's own mail (re-sent by someone else, it
 * would be decrypted on their behalf).
 */
static void
assert_patient_reads_it_signed(struct pgp *signer_ctx)
{
	struct buf m = BUF_INIT, plain = BUF_INIT;
	struct pgp *patient = NULL;
	struct cp_error err;
	const char *armor;
	char *signer = NULL;
	size_t alen;

	assert_int_equal(pgp_new(fx.patient_home, NULL, &patient, &err), 0);
	assert_int_equal(pgp_mime_encrypt(signer_ctx, fx.patient, inner,
					  sizeof(inner) - 1, &m, &err), 0);
	armor = check_structure(&m, &alen);
	assert_int_equal(pgp_decrypt_good_signer(patient, armor, alen, &plain,
						 &signer, &err), 0);
	assert_non_null(signer);
	assert_string_equal(signer, fx.clinic);
	assert_int_equal(plain.len, sizeof(inner) - 1);
	assert_memory_equal(plain.data, inner, plain.len);
	free(signer);
	signer = NULL;
	buf_reset(&plain);
	assert_true(pgp_decrypt_verify(fx.pgp, armor, alen, &plain, &signer, &err) < 0);
	assert_null(signer);
	assert_int_equal(plain.len, 0);
	pgp_free(patient);
	buf_free(&m);
	buf_free(&plain);
}

static void
outbound_is_readable_by_the_patient_alone(void **state)
{
	assert_patient_reads_it_signed(fx.pgp);
}

/* A context made by pgp_dup signs with the clinic key, like its original,
 * and outlives it. */
static void
dup_signs_with_the_same_clinic_key(void **state)
{
	struct pgp *orig = NULL, *copy = NULL;
	struct buf m = BUF_INIT;
	struct cp_error err;

	assert_int_equal(pgp_new(fx.clinic_home, fx.clinic, &orig, &err), 0);
	assert_int_equal(pgp_dup(orig, &copy, &err), 0);
	pgp_free(orig);
	assert_patient_reads_it_signed(copy);
	/* A key-management context copies as one: it cannot sign. */
	pgp_free(copy);
	assert_int_equal(pgp_new(fx.clinic_home, NULL, &orig, &err), 0);
	assert_int_equal(pgp_dup(orig, &copy, &err), 0);
	assert_int_equal(pgp_key_check(copy, fx.patient, &err), 0);
	assert_int_equal(pgp_mime_encrypt(copy, fx.patient, "x\r\n\r\ny\r\n",
					  8, &m, &err), -EINVAL);
	assert_int_equal(m.len, 0);
	pgp_free(orig);
	pgp_free(copy);
	buf_free(&m);
}

static void
decrypt_verify_unvalidated_signer_is_not_reported(void **state)
{
	struct buf ct = BUF_INIT, plain = BUF_INIT, cmd = BUF_INIT;
	char in[128];
	struct cp_error err;
	char *signer = (char *)1;

	snprintf(in, sizeof(in), "%s/reply.txt", fx.dir);
	assert_int_equal(cp_write_file_atomic(in, "reply text\n", 11, 0600), 0);
	/* The patient signs and encrypts to the clinic; the clinic has the
	 * patient's key but has not validated it. */
	buf_printf(&cmd, "gpg --homedir %s --batch --trust-model always "
		   "--armor --sign --encrypt --recipient %s --output - %s "
		   "2>/dev/null", fx.patient_home, fx.clinic, in);
	assert_int_equal(tu_capture(&ct, cmd.data), 0);
	assert_non_null(strstr(ct.data, "BEGIN PGP MESSAGE"));
	assert_int_equal(pgp_decrypt_verify(fx.pgp, ct.data, ct.len, &plain,
					    &signer, &err), 0);
	assert_null(signer);
	assert_string_equal(plain.data, "reply text\n");
	buf_free(&ct);
	buf_free(&plain);
	buf_free(&cmd);
}

static void
decrypt_verify_garbage_is_ebadmsg_and_leaves_buffer(void **state)
{
	const char junk[] = "-----BEGIN PGP MESSAGE-----\n\nAAAA\n"
			    "-----END PGP MESSAGE-----\n";
	struct buf plain = BUF_INIT;
	struct cp_error err;
	char *signer = (char *)1;

	buf_puts(&plain, "keep");
	assert_int_equal(pgp_decrypt_verify(fx.pgp, junk, sizeof(junk) - 1,
					    &plain, &signer, &err), -EBADMSG);
	assert_null(signer);
	assert_string_equal(plain.data, "keep");
	assert_int_equal(pgp_decrypt_verify(fx.pgp, "plain text", 10, &plain,
					    &signer, &err), -EBADMSG);
	assert_string_equal(plain.data, "keep");
	buf_free(&plain);
}

static void
decrypt_verify_over_limit_is_efbig(void **state)
{
	struct buf ct = BUF_INIT, plain = BUF_INIT, big = BUF_INIT;
	struct cp_error err;
	char *signer = NULL;

	for (int i = 0; i < 20000; i++)
		buf_puts(&big, "0123456789");
	assert_int_equal(pgp_encrypt_to(fx.pgp, fx.clinic, big.data, big.len,
					&ct, &err), 0);
	plain.max = 4096;
	assert_int_equal(pgp_decrypt_verify(fx.pgp, ct.data, ct.len, &plain,
					    &signer, &err), -EFBIG);
	assert_int_equal(plain.len, 0);
	assert_null(signer);
	buf_free(&ct);
	buf_free(&plain);
	buf_free(&big);
}

static void
encrypt_to_round_trips_without_signature(void **state)
{
	const char data[] = "at rest\0with a NUL";
	struct buf ct = BUF_INIT, plain = BUF_INIT;
	struct cp_error err;
	char *signer = (char *)1;

	assert_int_equal(pgp_encrypt_to(fx.pgp, fx.clinic, data, sizeof(data),
					&ct, &err), 0);
	assert_int_equal(strncmp(ct.data, "-----BEGIN PGP MESSAGE-----", 27), 0);
	assert_null(memmem(ct.data, ct.len, "at rest", 7));
	assert_int_equal(pgp_decrypt_verify(fx.pgp, ct.data, ct.len, &plain,
					    &signer, &err), 0);
	assert_null(signer);
	assert_int_equal(plain.len, sizeof(data));
	assert_memory_equal(plain.data, data, sizeof(data));
	buf_free(&ct);
	buf_free(&plain);
}

static void
encrypt_to_unusable_keys_fails_with_key_code(void **state)
{
	struct buf m = BUF_INIT;
	struct cp_error err;

	buf_puts(&m, "keep");
	assert_int_equal(pgp_mime_encrypt(fx.pgp, fx.expired, inner,
					  sizeof(inner) - 1, &m, &err),
			 -EKEYEXPIRED);
	assert_non_null(strstr(err.text, fx.expired));
	assert_int_equal(pgp_mime_encrypt(fx.pgp, fx.revoked, inner,
					  sizeof(inner) - 1, &m, &err),
			 -EKEYREVOKED);
	assert_int_equal(pgp_mime_encrypt(fx.pgp,
			 "89ABCDEF0123456789ABCDEF0123456789ABCDEF", inner,
			 sizeof(inner) - 1, &m, &err), -ENOKEY);
	assert_int_equal(pgp_encrypt_to(fx.pgp, fx.expired, "x", 1, &m, &err),
			 -EKEYEXPIRED);
	assert_string_equal(m.data, "keep");
	assert_int_equal(m.len, 4);
	buf_free(&m);
}

static void
mime_encrypt_rejects_recipient_injection(void **state)
{
	struct buf m = BUF_INIT, two = BUF_INIT;
	struct cp_error err;

	/* A newline would add a recipient to GPGME's recipient string. */
	buf_printf(&two, "%s\n%s", fx.patient, fx.clinic);
	assert_int_equal(pgp_mime_encrypt(fx.pgp, two.data, inner,
					  sizeof(inner) - 1, &m, &err), -EINVAL);
	assert_int_equal(pgp_mime_encrypt(fx.pgp, "patient@example.org", inner,
					  sizeof(inner) - 1, &m, &err), -EINVAL);
	assert_null(strstr(err.text, "patient@"));
	assert_int_equal(m.len, 0);
	buf_free(&m);
	buf_free(&two);
}

/*
 * With gpg-agent gone (killed, and gpg may not start another) a decryption
 * fails as "No secret key", exactly like mail for someone else's key:
 * pgp_secret_available tells the two apart for the inbound path.
 */
static void
secret_available_tells_agent_outage_from_foreign_mail(void **state)
{
	struct buf enc = BUF_INIT, plain = BUF_INIT;
	struct cp_error err;
	char *signer = NULL;

	assert_int_equal(pgp_secret_available(fx.pgp, fx.clinic, &err), 0);
	/* only the patient's public key is in the clinic keyring */
	assert_int_equal(pgp_secret_available(fx.pgp, fx.patient, &err), -EHOSTDOWN);
	assert_non_null(strstr(err.text, fx.patient));
	assert_int_equal(pgp_secret_available(fx.pgp, "nonsense", &err), -EINVAL);

	assert_int_equal(pgp_encrypt_to(fx.pgp, fx.clinic, "hello", 5, &enc, &err), 0);
	assert_int_equal(tu_run("echo no-autostart >>%s/gpg.conf && "
			     "gpgconf --homedir %s --kill gpg-agent",
			     fx.clinic_home, fx.clinic_home), 0);
	assert_int_equal(pgp_secret_available(fx.pgp, fx.clinic, &err), -EHOSTDOWN);
	assert_non_null(strstr(err.text, "gpg-agent"));
	assert_true(pgp_decrypt_verify(fx.pgp, enc.data, enc.len, &plain, &signer,
				       &err) < 0);
	/* the agent may start again: all is well */
	assert_int_equal(tu_run("sed -i '/^no-autostart$/d' %s/gpg.conf", fx.clinic_home), 0);
	assert_int_equal(pgp_secret_available(fx.pgp, fx.clinic, &err), 0);
	buf_reset(&plain);
	assert_int_equal(pgp_decrypt_verify(fx.pgp, enc.data, enc.len, &plain, &signer,
					    &err), 0);
	assert_int_equal(plain.len, 5);
	free(signer);
	buf_free(&enc);
	buf_free(&plain);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(new_with_missing_signer_fails_naming_fingerprint),
		cmocka_unit_test(new_rejects_malformed_fingerprint_without_echoing_it),
		cmocka_unit_test(new_without_signer_manages_keys_but_cannot_sign),
		cmocka_unit_test(key_check_good_key_is_usable),
		cmocka_unit_test(key_check_unknown_is_enokey),
		cmocka_unit_test(key_check_expired_is_ekeyexpired),
		cmocka_unit_test(key_check_revoked_is_ekeyrevoked),
		cmocka_unit_test(key_check_malformed_fingerprint_is_einval),
		cmocka_unit_test(import_returns_fingerprint_and_sign_only_key_is_rejected),
		cmocka_unit_test(import_of_garbage_fails),
		cmocka_unit_test(import_of_a_bare_revocation_applies_it),
		cmocka_unit_test(key_expires_reports_primary_expiry),
		cmocka_unit_test(mime_encrypt_builds_rfc3156_and_patient_gpg_verifies_clinic),
		cmocka_unit_test(mime_encrypt_twice_uses_fresh_boundaries),
		cmocka_unit_test(outbound_is_readable_by_the_patient_alone),
		cmocka_unit_test(dup_signs_with_the_same_clinic_key),
		cmocka_unit_test(decrypt_verify_unvalidated_signer_is_not_reported),
		cmocka_unit_test(decrypt_verify_garbage_is_ebadmsg_and_leaves_buffer),
		cmocka_unit_test(decrypt_verify_over_limit_is_efbig),
		cmocka_unit_test(encrypt_to_round_trips_without_signature),
		cmocka_unit_test(encrypt_to_unusable_keys_fails_with_key_code),
		cmocka_unit_test(mime_encrypt_rejects_recipient_injection),
		cmocka_unit_test(secret_available_tells_agent_outage_from_foreign_mail),
	};

	if (system("gpg --version >/dev/null 2>&1") != 0) {
		printf("SKIP: gpg not found\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
