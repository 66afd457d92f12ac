/*
 * NAME
 *	pgp - OpenPGP through GPGME: sign, encrypt, RFC 3156 PGP/MIME, keys
 * DESCRIPTION
 *	See pgp.h. pgp_new also accepts a NULL (or empty) signer for a
 *	context that only manages keys (import, checks, decryption,
 *	pgp_encrypt_to); pgp_mime_encrypt then fails with -EINVAL.
 *
 *	Each GPGME operation runs gpg once, so the outbound path
 *	does exactly one (encrypt+sign) per message and checks its results
 *	from what that one run reported.
 *
 *	Fingerprints are checked to be 40 hex digits before use: they go into
 *	GPGME's newline-separated recipient string, where anything else could
 *	add recipients. Error texts name fingerprints and GPGME's reason,
 *	never data, and never echo a malformed fingerprint (it may be an
 *	address).
 */
#include "pgp.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>

#include <gpgme.h>

#include "keyfile.h"
#include "log.h"
#include "mime.h"
#include "pgphelper.h"
#include "pgppacket.h"

struct pgp {
	gpgme_ctx_t ctx;
	char signer[PGP_FPR_SIZE];
	gpgme_key_t signer_key;		/* a reference, for pgp_dup */
	char *home;			/* NULL: GnuPG's default */
	char *keydir;			/* recipients' key files (keyfile.h) */
	char *kbx;			/* the keybox, whose size decides */
	struct pgphelper *helper;	/* NULL: every operation in-process */
	int confined;			/* outside data only in a helper */
	unsigned time_limit_ms;		/* confined: each gpg run's budget */
};

static inline void
data_releasep(gpgme_data_t *d)
{
	if (*d)
		gpgme_data_release(*d);
}

static inline void
key_unrefp(gpgme_key_t *k)
{
	if (*k)
		gpgme_key_unref(*k);
}

#define _cleanup_data_ _cleanup_(data_releasep)
#define _cleanup_key_ _cleanup_(key_unrefp)

int
pgp_global_init(void)
{
	gpgme_error_t e;

	if (gpgme_check_version(NULL) == NULL)
		return -ENOPKG;
	gpgme_set_locale(NULL, LC_CTYPE, setlocale(LC_CTYPE, NULL));
#ifdef LC_MESSAGES
	gpgme_set_locale(NULL, LC_MESSAGES, setlocale(LC_MESSAGES, NULL));
#endif
	e = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP);
	if (e != GPG_ERR_NO_ERROR)
		return -ENOPKG;
	return 0;
}

/* fpr_valid - exactly 40 hex digits (a v4 fingerprint). */
static int
fpr_valid(const char *fpr)
{
	if (fpr == NULL || strlen(fpr) != PGP_FPR_SIZE - 1)
		return 0;
	for (size_t i = 0; i < PGP_FPR_SIZE - 1; i++)
		if (!isxdigit((unsigned char)fpr[i]))
			return 0;
	return 1;
}

static void
fpr_copy(char dst[PGP_FPR_SIZE], const char *src)
{
	for (size_t i = 0; i < PGP_FPR_SIZE - 1; i++)
		dst[i] = (char)toupper((unsigned char)src[i]);
	dst[PGP_FPR_SIZE - 1] = '\0';
}

/*
 * Output sink: a gpgme_data_t that writes into a struct buf, so that a
 * caller's limit (buf.max) stops gpg as soon as it is exceeded instead
 * of after the whole plaintext is in memory.
 */
struct sink {
	struct buf *b;
	int err;
};

static ssize_t
sink_write(void *handle, const void *data, size_t size)
{
	struct sink *s = handle;
	int r = buf_append(s->b, data, size);

	if (r < 0) {
		s->err = r;
		errno = -r;
		return -1;
	}
	return (ssize_t)size;
}

static struct gpgme_data_cbs sink_cbs = {
	.read = NULL,
	.write = sink_write,
	.seek = NULL,
	.release = NULL,
};

static int
gpg_fail(struct cp_error *err, gpgme_error_t e, const char *what,
	 const char *fpr)
{
	int code;

	switch (gpgme_err_code(e)) {
	case GPG_ERR_EOF:
	case GPG_ERR_NO_PUBKEY:
	case GPG_ERR_NO_SECKEY:
		code = -ENOKEY;
		break;
	case GPG_ERR_KEY_EXPIRED:
	case GPG_ERR_SIG_EXPIRED:
	case GPG_ERR_CERT_EXPIRED:
		code = -EKEYEXPIRED;
		break;
	case GPG_ERR_CERT_REVOKED:
		code = -EKEYREVOKED;
		break;
	case GPG_ERR_UNUSABLE_PUBKEY:
	case GPG_ERR_UNUSABLE_SECKEY:
	case GPG_ERR_SUBKEYS_EXP_OR_REV:
	case GPG_ERR_WRONG_KEY_USAGE:
	case GPG_ERR_AMBIGUOUS_NAME:
	case GPG_ERR_BAD_PASSPHRASE:
	case GPG_ERR_NO_PASSPHRASE:
		code = -EKEYREJECTED;
		break;
	case GPG_ERR_ENOMEM:
		code = -ENOMEM;
		break;
	case GPG_ERR_NO_DATA:
	case GPG_ERR_DECRYPT_FAILED:
	case GPG_ERR_BAD_DATA:
	case GPG_ERR_INV_PACKET:
	case GPG_ERR_INV_ARMOR:
		code = -EBADMSG;
		break;
	default:
		code = -EIO;
		break;
	}
	if (fpr != NULL)
		return cp_error_set(err, code, "gpg: %s for key %s: %s", what,
				    fpr, gpgme_strerror(e));
	return cp_error_set(err, code, "gpg: %s: %s", what, gpgme_strerror(e));
}

/*
 * ctx_get_key - what gpgme_get_key does, on p's own context: gpgme_get_key
 * makes a fresh context for each lookup, and setting that one up runs
 * "gpg --version" before the listing itself. The listing replaces the
 * results of p's last operation.
 */
static gpgme_error_t
ctx_get_key(struct pgp *p, const char *fpr, int secret, gpgme_key_t *key)
{
	gpgme_key_t more = NULL;
	gpgme_error_t e;

	*key = NULL;
	e = gpgme_op_keylist_start(p->ctx, fpr, secret);
	if (e == GPG_ERR_NO_ERROR)
		e = gpgme_op_keylist_next(p->ctx, key);
	if (e == GPG_ERR_NO_ERROR &&
	    gpgme_op_keylist_next(p->ctx, &more) == GPG_ERR_NO_ERROR) {
		gpgme_key_unref(more);
		gpgme_key_unref(*key);
		*key = NULL;
		e = gpg_error(GPG_ERR_AMBIGUOUS_NAME);
	}
	gpgme_op_keylist_end(p->ctx);
	return e;
}

/* ctx_open - p->ctx for OpenPGP in p->home, armored, offline, no pinentry. */
static int
ctx_open(struct pgp *p, struct cp_error *err)
{
	gpgme_error_t e;

	e = gpgme_new(&p->ctx);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot create context", NULL);
	e = gpgme_set_protocol(p->ctx, GPGME_PROTOCOL_OpenPGP);
	if (e == GPG_ERR_NO_ERROR && p->home != NULL)
		e = gpgme_ctx_set_engine_info(p->ctx, GPGME_PROTOCOL_OpenPGP,
					      NULL, p->home);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot set up engine", NULL);
	gpgme_set_armor(p->ctx, 1);
	gpgme_set_offline(p->ctx, 1);
	/* A daemon has nobody to type a passphrase: fail instead of
	 * waiting for pinentry. A passphrase preset in the agent works. */
	e = gpgme_set_pinentry_mode(p->ctx, GPGME_PINENTRY_MODE_ERROR);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot set pinentry mode", NULL);
	return 0;
}

/*
 * keydir_open - p->keydir: KEYFILE_DIR in p's GnuPG home (GnuPG's own
 * default when p has none). NULL, and keys are looked up in the keyring
 * alone, when the path could not go into GPGME's recipient string (a
 * newline) or is not known.
 */
static int
keydir_open(struct pgp *p, struct cp_error *err)
{
	const char *home = p->home ? p->home : gpgme_get_dirinfo("homedir");

	if (home == NULL || strchr(home, '\n') != NULL)
		return 0;
	if (asprintf(&p->keydir, "%s/%s", home, KEYFILE_DIR) < 0) {
		p->keydir = NULL;
		return cp_error_set(err, -ENOMEM, "gpg: out of memory");
	}
	if (asprintf(&p->kbx, "%s/pubring.kbx", home) < 0) {
		p->kbx = NULL;
		return cp_error_set(err, -ENOMEM, "gpg: out of memory");
	}
	return 0;
}

int
pgp_new(const char *gnupghome, const char *signer_fpr, struct pgp **out,
	struct cp_error *err)
{
	_cleanup_key_ gpgme_key_t key = NULL;
	struct pgp *p;
	gpgme_error_t e;
	int r;

	*out = NULL;
	if (signer_fpr != NULL && *signer_fpr == '\0')
		signer_fpr = NULL;
	if (signer_fpr != NULL && !fpr_valid(signer_fpr))
		return cp_error_set(err, -EINVAL,
				    "gpg: signer is not a 40-digit fingerprint");
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return cp_error_set(err, -ENOMEM, "gpg: out of memory");
	if (signer_fpr != NULL)
		fpr_copy(p->signer, signer_fpr);
	if (gnupghome != NULL && *gnupghome != '\0' &&
	    (p->home = strdup(gnupghome)) == NULL) {
		r = cp_error_set(err, -ENOMEM, "gpg: out of memory");
		goto fail;
	}
	r = ctx_open(p, err);
	if (r == 0)
		r = keydir_open(p, err);
	if (r < 0)
		goto fail;
	if (signer_fpr == NULL) {
		/* Key management only (import, checks): nothing to sign. */
		*out = p;
		return 0;
	}
	e = ctx_get_key(p, p->signer, 1, &key);
	if (e != GPG_ERR_NO_ERROR) {
		r = gpg_fail(err, e, "signer secret key not found (or gpg-agent "
			     "unreachable)", p->signer);
		goto fail;
	}
	if (key->revoked || key->expired || key->disabled || key->invalid ||
	    !key->can_sign) {
		r = cp_error_set(err, key->revoked ? -EKEYREVOKED :
				 key->expired ? -EKEYEXPIRED : -EKEYREJECTED,
				 "gpg: signer key %s cannot sign (%s)",
				 p->signer, key->revoked ? "revoked" :
				 key->expired ? "expired" :
				 key->disabled ? "disabled" : "unusable");
		goto fail;
	}
	e = gpgme_signers_add(p->ctx, key);
	if (e != GPG_ERR_NO_ERROR) {
		r = gpg_fail(err, e, "cannot add signer", p->signer);
		goto fail;
	}
	p->signer_key = CP_TAKE_PTR(key);
	*out = p;
	return 0;
fail:
	pgp_free(p);
	return r;
}

int
pgp_dup(const struct pgp *orig, struct pgp **out, struct cp_error *err)
{
	struct pgp *p;
	gpgme_error_t e;
	int r;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return cp_error_set(err, -ENOMEM, "gpg: out of memory");
	memcpy(p->signer, orig->signer, sizeof(p->signer));
	p->confined = orig->confined;
	p->time_limit_ms = orig->time_limit_ms;
	if (orig->home != NULL && (p->home = strdup(orig->home)) == NULL) {
		r = cp_error_set(err, -ENOMEM, "gpg: out of memory");
		goto fail;
	}
	r = ctx_open(p, err);
	if (r == 0)
		r = keydir_open(p, err);
	if (r < 0)
		goto fail;
	if (orig->signer_key != NULL) {
		e = gpgme_signers_add(p->ctx, orig->signer_key);
		if (e != GPG_ERR_NO_ERROR) {
			r = gpg_fail(err, e, "cannot add signer", p->signer);
			goto fail;
		}
		gpgme_key_ref(orig->signer_key);
		p->signer_key = orig->signer_key;
	}
	*out = p;
	return 0;
fail:
	pgp_free(p);
	return r;
}

int
pgp_offload(struct pgp *p, struct cp_error *err)
{
	if (p->helper != NULL || !pgphelper_enabled())
		return 0;
	return pgphelper_start(p->home, p->signer[0] ? p->signer : NULL,
			       &p->helper, err);
}

void
pgp_confine(struct pgp *p, unsigned time_limit_ms)
{
	p->confined = 1;
	p->time_limit_ms = time_limit_ms;
	if (p->helper != NULL)
		pgphelper_confine(p->helper, time_limit_ms);
}

long
pgp_helper_pid(const struct pgp *p)
{
	return p->helper ? pgphelper_pid(p->helper) : 0;
}

/*
 * confined_helper - a running helper for p's operations on outside data:
 * the one p has, or a new one (the first operation, or the last helper
 * was stopped or lost). -EHOSTDOWN when none can be started: such data
 * is never handled in-process.
 */
static int
confined_helper(struct pgp *p, struct cp_error *err)
{
	struct cp_error why;

	if (p->helper != NULL && pgphelper_pid(p->helper) > 0)
		return 0;
	pgphelper_free(p->helper);
	p->helper = NULL;
	cp_error_clear(&why);
	if (pgphelper_start(p->home, p->signer[0] ? p->signer : NULL,
			    &p->helper, &why) < 0)
		return cp_error_set(err, -EHOSTDOWN, "gpg helper unavailable "
				    "(outside data is not decrypted "
				    "in-process): %s", why.text);
	pgphelper_confine(p->helper, p->time_limit_ms);
	return 0;
}

/*
 * helper_lost_again - a confined operation that found its helper lost
 * twice (the first time, a new helper got it): -EHOSTDOWN, with why.
 */
static int
helper_lost_again(struct cp_error *err)
{
	char why[sizeof(err->text)];

	snprintf(why, sizeof(why), "%s", err ? err->text : "");
	return cp_error_set(err, -EHOSTDOWN, "gpg helper unavailable (outside "
			    "data is not decrypted in-process): %s", why);
}

/* The arguments of one confined operation, for confined_run. */
struct confined_args {
	const void *data, *sig;
	size_t len, siglen;
	struct buf *out;
	struct pgp_sig *found;
	const char *fpr;
};

typedef int (*helper_op)(struct pgphelper *h, const struct confined_args *a,
			 struct cp_error *err);

static int
op_decrypt(struct pgphelper *h, const struct confined_args *a,
	   struct cp_error *err)
{
	return pgphelper_decrypt_signed_by(h, a->data, a->len, a->out, a->found,
					   err);
}

static int
op_verify(struct pgphelper *h, const struct confined_args *a,
	  struct cp_error *err)
{
	return pgphelper_verify_detached(h, a->data, a->len, a->sig, a->siglen,
					 a->found, err);
}

static int
op_secret(struct pgphelper *h, const struct confined_args *a,
	  struct cp_error *err)
{
	return pgphelper_secret_available(h, a->fpr, err);
}

/*
 * confined_run - one operation on a confined p: only in a helper. One
 * found lost is replaced once (each operation can be redone harmlessly).
 */
static int
confined_run(struct pgp *p, helper_op op, const struct confined_args *a,
	     struct cp_error *err)
{
	int r = confined_helper(p, err);

	if (r == 0)
		r = op(p->helper, a, err);
	if (r == PGPHELPER_LOST) {
		log_warning("%s: starting another gpg helper",
			    err ? err->text : "gpg helper lost");
		r = confined_helper(p, err);
		if (r == 0)
			r = op(p->helper, a, err);
	}
	return r == PGPHELPER_LOST ? helper_lost_again(err) : r;
}

int
pgp_decrypt_ahead(struct pgp *p, const void *data, size_t len, size_t max)
{
	/* Confined: a PGP message has come, the helper may start now. */
	if (p->confined && confined_helper(p, NULL) < 0)
		return 0;
	return p->helper ? pgphelper_decrypt_ahead(p->helper, data, len, max) : 0;
}

/*
 * helper_lost - after a helper call: 1 when the helper is gone and the
 * operation is to run in-process instead (for the rest of p's life).
 */
static int
helper_lost(struct pgp *p, int r, const struct cp_error *err)
{
	if (r != PGPHELPER_LOST)
		return 0;
	log_warning("%s: gpg runs in-process from now", err ? err->text : "gpg helper lost");
	pgphelper_free(p->helper);
	p->helper = NULL;
	return 1;
}

void
pgp_free(struct pgp *p)
{
	if (p == NULL)
		return;
	pgphelper_free(p->helper);
	if (p->ctx)
		gpgme_release(p->ctx);
	if (p->signer_key)
		gpgme_key_unref(p->signer_key);
	free(p->keydir);
	free(p->kbx);
	free(p->home);
	free(p);
}

/*
 * lookup_key - the public key for fpr. -EINVAL for a malformed
 * fingerprint, -ENOKEY when the keyring has none.
 */
static int
lookup_key(struct pgp *p, const char *fpr, gpgme_key_t *key,
	   char norm[PGP_FPR_SIZE], struct cp_error *err)
{
	gpgme_error_t e;

	*key = NULL;
	if (!fpr_valid(fpr))
		return cp_error_set(err, -EINVAL,
				    "gpg: key is not a 40-digit fingerprint");
	fpr_copy(norm, fpr);
	e = ctx_get_key(p, norm, 0, key);
	if (gpgme_err_code(e) == GPG_ERR_EOF)
		return cp_error_set(err, -ENOKEY, "gpg: no key %s in keyring",
				    norm);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "key lookup failed", norm);
	return 0;
}

/*
 * key_meta - what keymeta_check needs of key: gpg's flags, and its
 * expiry dates (an "expired" flag without a date is dated 1, long past).
 */
static void
key_meta(gpgme_key_t key, struct keymeta *m)
{
	memset(m, 0, sizeof(*m));
	fpr_copy(m->fpr, key->subkeys->fpr);
	m->revoked = !!key->revoked;
	m->unusable = key->disabled || key->invalid;
	m->expires = key->subkeys->expires > 0 ? key->subkeys->expires :
		     key->expired ? 1 : 0;
	for (gpgme_subkey_t sk = key->subkeys; sk; sk = sk->next) {
		struct keymeta_sub e = {
			.expires = sk->expires > 0 ? sk->expires : sk->expired ? 1 : 0,
			.revoked = !!sk->revoked,
			.unusable = sk->disabled || sk->invalid,
		};
		int bad = e.revoked || e.unusable || sk->expired;

		if (!sk->can_encrypt)
			continue;
		if (m->n_enc < KEYMETA_MAX_ENC) {
			m->enc[m->n_enc++] = e;
			continue;
		}
		/* more than there is room for: a usable one takes the
		 * place of one that is not (none is left out that could
		 * serve) */
		for (unsigned i = 0; !bad && i < m->n_enc; i++) {
			if (m->enc[i].revoked || m->enc[i].unusable ||
			    (m->enc[i].expires > 0 && m->enc[i].expires <= cp_now())) {
				m->enc[i] = e;
				break;
			}
		}
	}
}

static int
key_check(struct pgp *p, const char *fpr, int files, struct cp_error *err)
{
	_cleanup_key_ gpgme_key_t key = NULL;
	char norm[PGP_FPR_SIZE];
	struct keymeta m;
	int r;

	if (!fpr_valid(fpr))
		return cp_error_set(err, -EINVAL,
				    "gpg: key is not a 40-digit fingerprint");
	fpr_copy(norm, fpr);
	/* the key's own file says it without a gpg run over the keyring */
	if (files && p->keydir != NULL && keyfile_read(p->keydir, norm, &m) == 0)
		return keymeta_check(&m, (long long)cp_now(), err);
	r = lookup_key(p, fpr, &key, norm, err);
	if (r < 0)
		return r;
	if (key->subkeys == NULL || key->subkeys->fpr == NULL ||
	    !fpr_valid(key->subkeys->fpr))
		return cp_error_set(err, -EKEYREJECTED, "gpg: key %s is invalid",
				    norm);
	key_meta(key, &m);
	fpr_copy(m.fpr, norm);
	return keymeta_check(&m, (long long)cp_now(), err);
}

int
pgp_key_check(struct pgp *p, const char *fpr, struct cp_error *err)
{
	return key_check(p, fpr, 1, err);
}

int
pgp_own_key_check(struct pgp *p, const char *fpr, struct cp_error *err)
{
	return key_check(p, fpr, 0, err);
}

int
pgp_key_expires(struct pgp *p, const char *fpr, long long *expires,
		struct cp_error *err)
{
	_cleanup_key_ gpgme_key_t key = NULL;
	char norm[PGP_FPR_SIZE];
	int r;

	*expires = 0;
	r = lookup_key(p, fpr, &key, norm, err);
	if (r < 0)
		return r;
	if (key->subkeys == NULL)
		return cp_error_set(err, -EKEYREJECTED, "gpg: key %s is empty",
				    norm);
	*expires = key->subkeys->expires;
	return 0;
}

/*
 * check_encrypt_result - after an encrypt operation: no invalid
 * recipients. gpg's reason is often vague ("all subkeys are expired or
 * revoked"), so on this rare path the key is looked at once more to
 * tell expired, revoked and missing apart.
 */
static int
check_encrypt_result(struct pgp *p, gpgme_error_t op, const char *fpr,
		     struct cp_error *err)
{
	gpgme_encrypt_result_t res = gpgme_op_encrypt_result(p->ctx);

	if (res != NULL && res->invalid_recipients != NULL) {
		gpgme_invalid_key_t inv = res->invalid_recipients;
		gpgme_error_t why = inv->reason ? inv->reason : op;
		char bad[PGP_FPR_SIZE];
		int r;

		/* Copied: a further operation may free the result. */
		fpr_copy(bad, inv->fpr && fpr_valid(inv->fpr) ? inv->fpr : fpr);
		r = gpg_fail(err, why, "unusable recipient", bad);

		if (r == -EKEYREJECTED || r == -EIO) {
			struct cp_error why_err;

			cp_error_clear(&why_err);
			if (pgp_key_check(p, bad, &why_err) < 0) {
				if (err != NULL)
					*err = why_err;
				return why_err.code;
			}
		}
		return r;
	}
	if (op != GPG_ERR_NO_ERROR)
		return gpg_fail(err, op, "encryption failed", fpr);
	if (res == NULL)
		return cp_error_set(err, -EIO, "gpg: no encryption result for "
				    "key %s", fpr);
	return 0;
}

/* check_sign_result - exactly one signature, by the signer, no failures. */
static int
check_sign_result(struct pgp *p, struct cp_error *err)
{
	gpgme_sign_result_t res = gpgme_op_sign_result(p->ctx);
	int n = 0;

	if (res == NULL)
		return cp_error_set(err, -EIO, "gpg: no signing result for key %s",
				    p->signer);
	if (res->invalid_signers != NULL) {
		gpgme_invalid_key_t inv = res->invalid_signers;

		return gpg_fail(err, inv->reason ? inv->reason :
				gpg_error(GPG_ERR_UNUSABLE_SECKEY),
				"unusable signer", p->signer);
	}
	for (gpgme_new_signature_t s = res->signatures; s; s = s->next)
		n++;
	if (n != 1)
		return cp_error_set(err, -EIO, "gpg: %d signatures made with key "
				    "%s, expected 1", n, p->signer);
	return 0;
}

/* append_crlf - armor (LF lines) as CRLF lines, ending with CRLF. */
static int
append_crlf(struct buf *out, const char *s, size_t len)
{
	size_t start = 0;
	int r;

	r = buf_reserve(out, len + len / 32 + 2);
	if (r < 0)
		return r;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\n' && s[i] != '\r')
			continue;
		r = buf_append(out, s + start, i - start);
		if (r == 0)
			r = buf_puts(out, "\r\n");
		if (r < 0)
			return r;
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	if (start < len) {
		r = buf_append(out, s + start, len - start);
		if (r == 0)
			r = buf_puts(out, "\r\n");
	}
	return r;
}

/*
 * recipient - GPGME's recipient string for fpr: "--file", then the path
 * of fpr's key file, when there is one and the keybox has grown past
 * KEYFILE_KEYBOX_BYTES; else the fingerprint. gpg reads a key file for
 * about 1 ms of CPU more than it takes to find a key near the start of a
 * keybox, and it scans a keybox at about 0.5 ms a MiB: below that size
 * the keybox costs less (measured on the 2-core machines of make bench).
 */
static int
recipient(struct pgp *p, const char *fpr, char *buf, size_t len)
{
	char path[PATH_MAX];
	struct keymeta m;
	struct stat st;

	/* a key file only where its .meta reads (keyfile_read: in a
	 * directory of carepost's alone, the .key beside it): that is what
	 * pgp_key_check went by */
	if (p->keydir != NULL && p->kbx != NULL &&
	    stat(p->kbx, &st) == 0 && st.st_size >= KEYFILE_KEYBOX_BYTES &&
	    keyfile_read(p->keydir, fpr, &m) == 0 &&
	    keyfile_path(p->keydir, fpr, "key", path, sizeof(path)) == 0)
		return cp_snprintf_ok(buf, len, "--file\n%s\n", path);
	return cp_snprintf_ok(buf, len, "%s\n", fpr);
}

int
pgp_mime_encrypt(struct pgp *p, const char *recipient_fpr, const char *inner,
		 size_t len, struct buf *out, struct cp_error *err)
{
	_cleanup_data_ gpgme_data_t plain = NULL, cipher = NULL;
	_cleanup_buf_ struct buf armor = BUF_INIT;
	struct sink sink = { &armor, 0 };
	char recp[PGP_FPR_SIZE], recpstring[PATH_MAX + 16];
	char boundary[MIME_BOUNDARY_SIZE];
	size_t start = out->len;
	gpgme_error_t e;
	int r;

	if (p->signer[0] == '\0')
		return cp_error_set(err, -EINVAL, "gpg: no signer key configured");
	if (!fpr_valid(recipient_fpr))
		return cp_error_set(err, -EINVAL, "gpg: recipient is not a "
				    "40-digit fingerprint");
	if (p->helper != NULL) {
		r = pgphelper_mime_encrypt(p->helper, recipient_fpr, inner, len,
					   out, err);
		if (!helper_lost(p, r, err))
			return r;
	}
	fpr_copy(recp, recipient_fpr);
	/* To the recipient alone: never to the clinic key, which decrypts
	 * replies (see pgp.h). Its own file when it has one (gpg -f reads
	 * that key alone), else the keyring (gpg -r reads the keybox). */
	r = recipient(p, recp, recpstring, sizeof(recpstring));
	if (r < 0)
		return cp_error_set(err, r, "gpg: recipient string too long");
	e = gpgme_data_new_from_mem(&plain, inner, len, 0);
	if (e == GPG_ERR_NO_ERROR)
		e = gpgme_data_new_from_cbs(&cipher, &sink_cbs, &sink);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot create data buffers", NULL);
	e = gpgme_op_encrypt_sign_ext(p->ctx, NULL, recpstring,
				      GPGME_ENCRYPT_ALWAYS_TRUST, plain, cipher);
	if (sink.err < 0)
		return cp_error_set(err, sink.err, "gpg: encrypted output for "
				    "key %s over limit", recp);
	r = check_encrypt_result(p, e, recp, err);
	if (r < 0)
		return r;
	r = check_sign_result(p, err);
	if (r < 0)
		return r;
	if (armor.len == 0)
		return cp_error_set(err, -EIO, "gpg: empty output for key %s",
				    recp);

	mime_boundary(boundary);
	r = buf_printf(out,
		"Content-Type: multipart/encrypted;\r\n"
		" protocol=\"application/pgp-encrypted\";\r\n"
		" boundary=\"%s\"\r\n"
		"\r\n"
		"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
		"--%s\r\n"
		"Content-Type: application/pgp-encrypted\r\n"
		"Content-Description: PGP/MIME version identification\r\n"
		"\r\n"
		"Version: 1\r\n"
		"\r\n"
		"--%s\r\n"
		"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
		"Content-Description: OpenPGP encrypted message\r\n"
		"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n"
		"\r\n", boundary, boundary, boundary);
	if (r == 0)
		r = append_crlf(out, armor.data, armor.len);
	if (r == 0)
		r = buf_printf(out, "\r\n--%s--\r\n", boundary);
	if (r < 0) {
		buf_truncate(out, start);
		return cp_error_set(err, r, "gpg: message for key %s too large",
				    recp);
	}
	return 0;
}

int
pgp_encrypt_to(struct pgp *p, const char *fpr, const void *data, size_t len,
	       struct buf *out, struct cp_error *err)
{
	_cleanup_data_ gpgme_data_t plain = NULL, cipher = NULL;
	struct sink sink = { out, 0 };
	char recp[PGP_FPR_SIZE];
	size_t start = out->len;
	gpgme_error_t e;
	int r;

	if (!fpr_valid(fpr))
		return cp_error_set(err, -EINVAL, "gpg: recipient is not a "
				    "40-digit fingerprint");
	fpr_copy(recp, fpr);
	e = gpgme_data_new_from_mem(&plain, data, len, 0);
	if (e == GPG_ERR_NO_ERROR)
		e = gpgme_data_new_from_cbs(&cipher, &sink_cbs, &sink);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot create data buffers", NULL);
	e = gpgme_op_encrypt_ext(p->ctx, NULL, recp, GPGME_ENCRYPT_ALWAYS_TRUST,
				 plain, cipher);
	if (sink.err < 0)
		r = cp_error_set(err, sink.err, "gpg: encrypted output for key "
				 "%s over limit", recp);
	else
		r = check_encrypt_result(p, e, recp, err);
	if (r < 0) {
		buf_truncate(out, start);
	}
	return r;
}

int
pgp_sign_detached(struct pgp *p, const void *data, size_t len, struct buf *out,
		  struct cp_error *err)
{
	_cleanup_data_ gpgme_data_t plain = NULL, sig = NULL;
	struct sink sink = { out, 0 };
	size_t start = out->len;
	gpgme_sign_result_t res;
	gpgme_error_t e;

	if (p->signer[0] == '\0' || p->helper != NULL || p->confined)
		return cp_error_set(err, -EINVAL, "gpg: no signer of its own to "
				    "sign with");
	e = gpgme_data_new_from_mem(&plain, data, len, 0);
	if (e == GPG_ERR_NO_ERROR)
		e = gpgme_data_new_from_cbs(&sig, &sink_cbs, &sink);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot create data buffers", NULL);
	e = gpgme_op_sign(p->ctx, plain, sig, GPGME_SIG_MODE_DETACH);
	res = e == GPG_ERR_NO_ERROR ? gpgme_op_sign_result(p->ctx) : NULL;
	if (e == GPG_ERR_NO_ERROR && sink.err == 0 && res != NULL &&
	    res->signatures != NULL && res->invalid_signers == NULL)
		return 0;
	buf_truncate(out, start);
	if (sink.err < 0)
		return cp_error_set(err, sink.err, "gpg: signature over limit");
	return gpg_fail(err, e != GPG_ERR_NO_ERROR ? e : gpg_error(GPG_ERR_UNUSABLE_SECKEY),
			"cannot sign", p->signer);
}

/*
 * primary_fpr - the fingerprint of the primary key of a valid signature
 * (gpg reports the signing subkey's).
 */
static int
primary_fpr(struct pgp *p, const char *sig_fpr, char **out)
{
	_cleanup_key_ gpgme_key_t key = NULL;
	_cleanup_free_ char *copy = strdup(sig_fpr);	/* outlives the result */

	if (copy == NULL)
		return -ENOMEM;
	if (gpgme_get_key(p->ctx, copy, &key, 0) == GPG_ERR_NO_ERROR &&
	    key->subkeys != NULL && key->subkeys->fpr != NULL) {
		*out = strdup(key->subkeys->fpr);
		return *out ? 0 : -ENOMEM;
	}
	*out = CP_TAKE_PTR(copy);
	return 0;
}

/*
 * good_signer - the primary fingerprint of the first signature that is
 * cryptographically good and not RED (revoked, expired key, ...); with
 * need_valid also fully valid in the keyring (VALID or GREEN).
 */
static int
good_signer(struct pgp *p, int need_valid, char **signer_fpr, struct cp_error *err)
{
	gpgme_verify_result_t vr = gpgme_op_verify_result(p->ctx);
	int r;

	for (gpgme_signature_t s = vr ? vr->signatures : NULL; s; s = s->next) {
		if (gpgme_err_code(s->status) != GPG_ERR_NO_ERROR ||
		    (need_valid && !(s->summary & (GPGME_SIGSUM_VALID | GPGME_SIGSUM_GREEN))) ||
		    (s->summary & GPGME_SIGSUM_RED) || s->fpr == NULL)
			continue;
		r = primary_fpr(p, s->fpr, signer_fpr);
		if (r < 0)
			return cp_error_set(err, r, "gpg: out of memory");
		break;
	}
	return 0;
}

/* size_text - a byte count as people write limits: "50 MiB", "8 bytes". */
static const char *
size_text(size_t n, char *buf, size_t len)
{
	if (n >= (1u << 20) && n % (1u << 20) == 0)
		snprintf(buf, len, "%zu MiB", n >> 20);
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, len, "%zu KiB", n >> 10);
	else
		snprintf(buf, len, "%zu bytes", n);
	return buf;
}

/*
 * decrypt - run gpg's decryption (and verification) of data into out;
 * the signatures are then in p's verify result. On failure out is left
 * as it was.
 */
static int
decrypt(struct pgp *p, const void *data, size_t len, struct buf *out,
	struct cp_error *err)
{
	_cleanup_data_ gpgme_data_t cipher = NULL, plain = NULL;
	struct sink sink = { out, 0 };
	size_t start = out->len;
	char limit[32];
	gpgme_error_t e;
	int r = 0;

	e = gpgme_data_new_from_mem(&cipher, data, len, 0);
	if (e == GPG_ERR_NO_ERROR)
		e = gpgme_data_new_from_cbs(&plain, &sink_cbs, &sink);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot create data buffers", NULL);
	e = gpgme_op_decrypt_verify(p->ctx, cipher, plain);
	if (sink.err == -ENOMEM)
		r = cp_error_set(err, sink.err, "gpg: out of memory for the "
				 "decrypted data");
	else if (sink.err < 0)
		r = cp_error_set(err, sink.err, "gpg output over the %s limit",
				 size_text(out->max, limit, sizeof(limit)));
	else if (e != GPG_ERR_NO_ERROR)
		r = gpg_fail(err, e, "decryption failed", NULL);
	if (r < 0) {
		buf_truncate(out, start);
	}
	return r;
}

static int
decrypt_verify(struct pgp *p, const void *data, size_t len, struct buf *out,
	       char **signer_fpr, int need_valid, struct cp_error *err)
{
	size_t start = out->len;
	int r;

	*signer_fpr = NULL;
	r = decrypt(p, data, len, out, err);
	if (r == 0)
		r = good_signer(p, need_valid, signer_fpr, err);
	if (r < 0) {
		buf_truncate(out, start);
	}
	return r;
}

int
pgp_decrypt_verify(struct pgp *p, const void *data, size_t len,
		   struct buf *out, char **signer_fpr, struct cp_error *err)
{
	return decrypt_verify(p, data, len, out, signer_fpr, 1, err);
}

int
pgp_decrypt_good_signer(struct pgp *p, const void *data, size_t len,
			struct buf *out, char **signer_fpr, struct cp_error *err)
{
	return decrypt_verify(p, data, len, out, signer_fpr, 0, err);
}

/*
 * first_good_sig - the first signature of p's last operation that is
 * cryptographically good and not RED (revoked or expired key, ...), as
 * gpg names it: see struct pgp_sig. A fingerprint that is not 40 hex
 * digits (nothing carepost could have on file) does not count.
 */
static void
first_good_sig(struct pgp *p, struct pgp_sig *out)
{
	gpgme_verify_result_t vr = gpgme_op_verify_result(p->ctx);

	memset(out, 0, sizeof(*out));
	for (gpgme_signature_t s = vr ? vr->signatures : NULL; s; s = s->next) {
		if (gpgme_err_code(s->status) != GPG_ERR_NO_ERROR ||
		    (s->summary & GPGME_SIGSUM_RED) || !fpr_valid(s->fpr))
			continue;
		fpr_copy(out->fpr, s->fpr);
		out->created = (int64_t)s->timestamp;
		return;
	}
}

int
pgp_verify_detached(struct pgp *p, const void *signed_data, size_t len,
		    const void *sig, size_t siglen, struct pgp_sig *out,
		    struct cp_error *err)
{
	_cleanup_data_ gpgme_data_t text = NULL, signature = NULL;
	gpgme_error_t e;
	int r;

	memset(out, 0, sizeof(*out));
	if (p->confined) {
		struct confined_args a = { .data = signed_data, .len = len,
					   .sig = sig, .siglen = siglen,
					   .found = out };

		return confined_run(p, op_verify, &a, err);
	}
	if (p->helper != NULL) {
		r = pgphelper_verify_detached(p->helper, signed_data, len, sig,
					      siglen, out, err);
		if (!helper_lost(p, r, err))
			return r;
	}
	e = gpgme_data_new_from_mem(&text, signed_data, len, 0);
	if (e == GPG_ERR_NO_ERROR)
		e = gpgme_data_new_from_mem(&signature, sig, siglen, 0);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot create data buffers", NULL);
	e = gpgme_op_verify(p->ctx, signature, text, NULL);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "verification failed", NULL);
	first_good_sig(p, out);
	return 0;
}

static int
keymeta_cmp(const void *a, const void *b)
{
	return strcmp(((const struct keymeta *)a)->fpr,
		      ((const struct keymeta *)b)->fpr);
}

/*
 * sync_some - the key files of the keys pat names (NULL: every key in the
 * keyring) into b: one key listing for what gpg says of them, one export
 * of them all, cut into keys.
 */
static int
sync_some(struct pgp *p, const char **pat, struct keyfile_batch *b,
	  struct keymeta **listed, size_t *n_listed, struct cp_error *err)
{
	_cleanup_free_ struct keymeta *m = NULL;
	gpgme_data_t out = NULL;
	size_t n = 0, cap = 0, len = 0, off, end;
	_cleanup_free_ uint8_t *data = NULL;
	gpgme_error_t e;
	gpgme_key_t key;
	int r = 0;

	e = pat ? gpgme_op_keylist_ext_start(p->ctx, pat, 0, 0) :
		  gpgme_op_keylist_start(p->ctx, NULL, 0);
	while (e == 0 && (e = gpgme_op_keylist_next(p->ctx, &key)) == 0) {
		if (key->subkeys != NULL && key->subkeys->fpr != NULL &&
		    fpr_valid(key->subkeys->fpr)) {
			if (n == cap) {
				struct keymeta *nm;

				cap = cap ? 2 * cap : 64;
				if ((nm = realloc(m, cap * sizeof(*m))) == NULL) {
					gpgme_key_unref(key);
					gpgme_op_keylist_end(p->ctx);
					return cp_error_set(err, -ENOMEM, "gpg: out of memory");
				}
				m = nm;
			}
			key_meta(key, &m[n++]);
		}
		gpgme_key_unref(key);
	}
	gpgme_op_keylist_end(p->ctx);
	if (gpgme_err_code(e) != GPG_ERR_EOF)
		return gpg_fail(err, e, "key listing failed", NULL);
	if (n == 0)
		return 0;
	qsort(m, n, sizeof(*m), keymeta_cmp);

	e = gpgme_data_new(&out);
	if (e == 0) {
		gpgme_set_armor(p->ctx, 0);
		e = pat ? gpgme_op_export_ext(p->ctx, pat, GPGME_EXPORT_MODE_MINIMAL, out) :
			  gpgme_op_export(p->ctx, NULL, GPGME_EXPORT_MODE_MINIMAL, out);
		gpgme_set_armor(p->ctx, 1);
	}
	if (e != 0) {
		gpgme_data_release(out);
		return gpg_fail(err, e, "key export failed", NULL);
	}
	data = (uint8_t *)gpgme_data_release_and_get_mem(out, &len);
	for (off = 0; r == 0 && off < len; off = end) {
		struct keymeta k, *found;

		if (pgppacket_next_key(data, len, off, &end) < 0) {
			r = cp_error_set(err, -EBADMSG, "gpg: key export "
					 "does not read as keys");
			break;
		}
		if (pgppacket_v4_fpr(data + off, end - off, k.fpr) < 0)
			continue;	/* not v4: it stays in the keyring alone */
		found = bsearch(&k, m, n, sizeof(*m), keymeta_cmp);
		if (found != NULL)
			r = keyfile_batch_add(b, found, data + off, end - off, err);
	}
	if (data != NULL)
		gpgme_free(CP_TAKE_PTR(data));
	if (r == 0 && listed != NULL) {
		*listed = CP_TAKE_PTR(m);
		*n_listed = n;
	}
	return r;
}

struct listed {
	const struct keymeta *m;
	size_t n;
};

static int
in_keyring(const char *fpr, void *arg)
{
	const struct listed *l = arg;
	struct keymeta k;

	fpr_copy(k.fpr, fpr);
	return l->n > 0 && bsearch(&k, l->m, l->n, sizeof(*l->m), keymeta_cmp) != NULL;
}

#define SYNC_CHUNK	256	/* fingerprints per gpg command line */

/* sync_locked - pgp_keyfiles_sync with dir's lock held. */
static int
sync_locked(struct pgp *p, const char *const *fprs, size_t n, size_t *written,
	    struct cp_error *err)
{
	_cleanup_free_ struct keymeta *all = NULL;
	struct keyfile_batch *b = NULL;
	const char *pat[SYNC_CHUNK + 1];
	size_t n_all = 0, removed = 0;
	int r;

	if ((r = keyfile_batch_new(p->keydir, &b, err)) < 0)
		return r;
	if (fprs == NULL)
		r = sync_some(p, NULL, b, &all, &n_all, err);
	for (size_t i = 0; fprs != NULL && r == 0 && i < n; i += SYNC_CHUNK) {
		size_t k = n - i < SYNC_CHUNK ? n - i : SYNC_CHUNK;

		memcpy(pat, fprs + i, k * sizeof(*pat));
		pat[k] = NULL;
		r = sync_some(p, pat, b, NULL, NULL, err);
	}
	if (written != NULL)
		*written = keyfile_batch_count(b);
	if (r == 0)
		r = keyfile_batch_commit(b, err);
	keyfile_batch_free(b);
	/* every key: the files of keys gone from the keyring go too (they
	 * would still be encrypted to), and what a crash left half-written */
	if (r == 0 && fprs == NULL) {
		struct listed l = { all, n_all };

		r = keyfile_prune(p->keydir, in_keyring, &l, &removed, err);
	}
	return r;
}

int
pgp_keyfiles_sync(struct pgp *p, const char *const *fprs, size_t n,
		  size_t *written, struct cp_error *err)
{
	int lock, r;

	if (written != NULL)
		*written = 0;
	if (p->keydir == NULL)
		return 0;
	if ((lock = keyfile_lock(p->keydir, err)) < 0)
		return lock;
	r = sync_locked(p, fprs, n, written, err);
	keyfile_unlock(lock);
	return r;
}

/*
 * import_locked - pgp_import with the key files' lock held (when p has a
 * key directory), so that no other import's files overwrite these with
 * an older state of the same key.
 */
static int
import_locked(struct pgp *p, const void *data, size_t len,
	      char fpr_out[PGP_FPR_SIZE], int *keys, struct cp_error *err)
{
	_cleanup_data_ gpgme_data_t keydata = NULL;
	_cleanup_free_ const char **fprs = NULL;
	_cleanup_free_ char (*copy)[PGP_FPR_SIZE] = NULL;
	gpgme_import_result_t res;
	gpgme_error_t e;
	size_t n = 0, cap = 0;
	int revs, considered, not_imported, not_v4 = 0, r;
	char why[sizeof(err->text)];

	e = gpgme_data_new_from_mem(&keydata, data, len, 0);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "cannot create data buffer", NULL);
	e = gpgme_op_import(p->ctx, keydata);
	if (e != GPG_ERR_NO_ERROR)
		return gpg_fail(err, e, "import failed", NULL);
	res = gpgme_op_import_result(p->ctx);
	if (res == NULL)
		return cp_error_set(err, -EIO, "gpg: no import result");
	if (keys != NULL)
		*keys = res->considered;
	revs = res->new_revocations;
	considered = res->considered;
	not_imported = res->not_imported;
	for (gpgme_import_status_t s = res->imports; s; s = s->next) {
		if (s->result != GPG_ERR_NO_ERROR || s->fpr == NULL)
			continue;
		if (!fpr_valid(s->fpr)) {
			not_v4 = 1;	/* it stays in the keyring alone */
			continue;
		}
		if (fpr_out[0] == '\0')
			fpr_copy(fpr_out, s->fpr);
		if (n == cap) {
			char (*nc)[PGP_FPR_SIZE];

			cap = cap ? 2 * cap : 8;
			if ((nc = realloc(copy, cap * sizeof(*copy))) == NULL)
				return cp_error_set(err, -ENOMEM, "gpg: out of memory");
			copy = nc;
		}
		/* copied: the next operation frees res */
		fpr_copy(copy[n++], s->fpr);
	}
	if (n > 0 && (fprs = calloc(n, sizeof(*fprs))) == NULL)
		return cp_error_set(err, -ENOMEM, "gpg: out of memory");
	for (size_t i = 0; i < n; i++)
		fprs[i] = copy[i];
	res = NULL;
	/* The keys' own files, from the keyring as it is now. Revocations
	 * name no key, and data that changed nothing may be a revocation
	 * applied before while the files could not be written: then every
	 * key's files are looked at again. */
	r = 0;
	if (p->keydir != NULL && n > 0)
		r = sync_locked(p, fprs, n, NULL, err);
	if (p->keydir != NULL && r == 0 && (revs > 0 || (n == 0 && considered > 0)))
		r = sync_locked(p, NULL, 0, NULL, err);
	if (r < 0) {
		snprintf(why, sizeof(why), "%s", err ? err->text : "");
		return cp_error_set(err, r, "gpg: the keyring has the keys, but "
				    "their files could not be written (%s): run "
				    "carepostctl key sync", why);
	}
	if (n > 0)
		return 0;
	if (revs > 0)
		return revs;
	if (not_v4)
		return cp_error_set(err, -EPROTONOSUPPORT,
				    "gpg: imported key is not a v4 key");
	return cp_error_set(err, -ENOKEY, "gpg: no key imported "
			    "(%d considered, %d not imported)", considered,
			    not_imported);
}

int
pgp_import(struct pgp *p, const void *data, size_t len,
	   char fpr_out[PGP_FPR_SIZE], int *keys, struct cp_error *err)
{
	int lock = -1, r;

	fpr_out[0] = '\0';
	if (keys != NULL)
		*keys = 0;
	if (p->keydir != NULL && (lock = keyfile_lock(p->keydir, err)) < 0)
		return lock;
	r = import_locked(p, data, len, fpr_out, keys, err);
	keyfile_unlock(lock);
	return r;
}

/* key_info - what pgp_key_table says of key, at now. */
static void
key_info(gpgme_key_t key, long long now, struct pgp_key_info *ki)
{
	long long life = -1, primary = (long long)key->subkeys->expires;
	int any_enc = 0, live_enc = 0;

	fpr_copy(ki->fpr, key->subkeys->fpr);
	for (gpgme_subkey_t sk = key->subkeys; sk != NULL; sk = sk->next) {
		long long e = (long long)sk->expires;

		if (!sk->can_encrypt)
			continue;
		any_enc = 1;
		if (sk->revoked || sk->disabled || sk->invalid)
			continue;	/* (an expired one still dates the key) */
		live_enc = 1;
		if (e == 0 || life == 0)
			life = 0;
		else if (e > life)
			life = e;
	}
	if (primary > 0 && (life == 0 || life > primary))
		life = primary;
	ki->expires = life > 0 ? life : primary > 0 && life < 0 ? primary : 0;
	if (key->revoked || key->disabled || key->invalid || (any_enc && !live_enc))
		ki->state = PGP_KEY_REVOKED;
	else if (!any_enc)
		ki->state = PGP_KEY_NO_ENCRYPTION;
	else if (life < 0 || key->expired || (life > 0 && life <= now))
		ki->state = PGP_KEY_EXPIRED;
	else
		ki->state = PGP_KEY_OK;
}

static int
key_info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pgp_key_info *)a)->fpr,
		      ((const struct pgp_key_info *)b)->fpr);
}

static int key_table_once(struct pgp *p, long long now, struct pgp_key_info **out,
			  size_t *n, struct cp_error *err);

int
pgp_key_table(struct pgp *p, long long now, struct pgp_key_info **out,
	      size_t *n, struct cp_error *err)
{
	/* a listing that meets gpg busy with its trust database (just
	 * after an import) fails once: try again */
	int r = key_table_once(p, now, out, n, err);

	if (r == -EIO) {
		cp_error_clear(err);
		r = key_table_once(p, now, out, n, err);
	}
	return r;
}

static int
key_table_once(struct pgp *p, long long now, struct pgp_key_info **out,
	       size_t *n, struct cp_error *err)
{
	struct pgp_key_info *t = NULL, *nt;
	size_t len = 0, cap = 0;
	gpgme_error_t ge;
	gpgme_key_t key;

	*out = NULL;
	*n = 0;
	ge = gpgme_op_keylist_start(p->ctx, NULL, 0);
	while (ge == 0 && (ge = gpgme_op_keylist_next(p->ctx, &key)) == 0) {
		if (key->subkeys != NULL && key->subkeys->fpr != NULL &&
		    fpr_valid(key->subkeys->fpr)) {
			if (len == cap) {
				cap = cap ? 2 * cap : 64;
				if ((nt = realloc(t, cap * sizeof(*t))) == NULL) {
					gpgme_key_unref(key);
					gpgme_op_keylist_end(p->ctx);
					free(t);
					return cp_error_set(err, -ENOMEM, "gpg: out of memory");
				}
				t = nt;
			}
			key_info(key, now, &t[len++]);
		}
		gpgme_key_unref(key);
	}
	gpgme_op_keylist_end(p->ctx);
	if (gpgme_err_code(ge) != GPG_ERR_EOF) {
		free(t);
		return cp_error_set(err, -EIO, "gpg: key listing: %s", gpgme_strerror(ge));
	}
	if (len > 1)
		qsort(t, len, sizeof(*t), key_info_cmp);
	*out = t;
	*n = len;
	return 0;
}

const struct pgp_key_info *
pgp_key_table_find(const struct pgp_key_info *t, size_t n, const char *fpr)
{
	struct pgp_key_info k;

	if (t == NULL || !fpr_valid(fpr))
		return NULL;
	fpr_copy(k.fpr, fpr);
	return bsearch(&k, t, n, sizeof(*t), key_info_cmp);
}

int
pgp_keys_expiring(struct pgp *p, long long now, long long horizon,
		  size_t *n, struct cp_error *err)
{
	struct pgp_key_info *t = NULL;
	size_t len = 0;
	int r;

	*n = 0;
	if ((r = pgp_key_table(p, now, &t, &len, err)) < 0)
		return r;
	for (size_t i = 0; i < len; i++)
		if (t[i].state == PGP_KEY_OK && t[i].expires > now &&
		    t[i].expires <= now + horizon)
			(*n)++;
	free(t);
	return 0;
}

/*
 * pgp_decrypt_signed_by - a decryption without pgp_decrypt_good_signer's
 * key lookup (gpgme_get_key runs gpg twice more: --version for a fresh
 * context, and a key listing): the inbound path's common case is a
 * signature by the primary key it holds on file, which needs no lookup.
 */
int
pgp_decrypt_signed_by(struct pgp *p, const void *data, size_t len,
		      struct buf *out, struct pgp_sig *sig, struct cp_error *err)
{
	int r;

	memset(sig, 0, sizeof(*sig));
	if (p->confined) {
		struct confined_args a = { .data = data, .len = len, .out = out,
					   .found = sig };

		return confined_run(p, op_decrypt, &a, err);
	}
	if (p->helper != NULL) {
		r = pgphelper_decrypt_signed_by(p->helper, data, len, out, sig,
						err);
		if (!helper_lost(p, r, err))
			return r;
	}
	r = decrypt(p, data, len, out, err);
	if (r < 0)
		return r;
	first_good_sig(p, sig);
	return 0;
}

/* pgp_primary_fpr - the primary key's fingerprint of a (sub)key's. */
int
pgp_primary_fpr(struct pgp *p, const char *fpr, char **primary,
		struct cp_error *err)
{
	int r = primary_fpr(p, fpr, primary);

	return r < 0 ? cp_error_set(err, r, "gpg: out of memory") : 0;
}

/*
 * confined_secret - pgp_secret_available in p's helper, under its time
 * limit: gpg asks gpg-agent, and an agent that hangs (stopped, stuck)
 * would hang gpg, and the caller, for good. Any failure is -EHOSTDOWN.
 */
static int
confined_secret(struct pgp *p, const char *fpr, struct cp_error *err)
{
	struct confined_args a = { .fpr = fpr };
	char why[sizeof(err->text)];
	int r = confined_run(p, op_secret, &a, err);

	if (r == 0 || r == -EHOSTDOWN || r == -EINVAL)
		return r;
	snprintf(why, sizeof(why), "%s", err ? err->text : "");
	return cp_error_set(err, -EHOSTDOWN, "gpg: secret key %s not available "
			    "(gpg-agent not answering): %s", fpr, why);
}

int
pgp_secret_available(struct pgp *p, const char *fpr, struct cp_error *err)
{
	_cleanup_key_ gpgme_key_t key = NULL;
	char norm[PGP_FPR_SIZE];
	gpgme_error_t e;

	if (fpr == NULL || !fpr_valid(fpr))
		return cp_error_set(err, -EINVAL,
				    "gpg: not a 40-digit fingerprint");
	fpr_copy(norm, fpr);
	if (p->confined)
		return confined_secret(p, norm, err);
	e = gpgme_get_key(p->ctx, norm, &key, 1);
	if (e != GPG_ERR_NO_ERROR)
		return cp_error_set(err, -EHOSTDOWN, "gpg: secret key %s not "
				    "available (gpg-agent unreachable or key "
				    "missing): %s", norm, gpgme_strerror(e));
	return 0;
}
