/*
 * NAME
 *	pgpserve - the gpg helper's side: GPGME's operations for its caller
 * DESCRIPTION
 *	See pgpserve.h. The protocol is lib/pgphelper's (pgphelper.h), the
 *	frames lib/helper's; the operations are lib/pgp's, run on the
 *	helper's own struct pgp.
 */
#include "pgpserve.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "helper.h"
#include "pgp.h"
#include "pgphelper.h"

/* reply - rc, its text (or ""), then the operation's fields. */
static int
reply(int fd, struct buf *scratch, int rc, const struct cp_error *e,
      const struct helper_field *more, uint32_t nmore)
{
	struct helper_field f[HELPER_MAX_FIELDS];

	f[0].data = rc < 0 ? e->text : "";
	f[0].len = rc < 0 ? strlen(e->text) : 0;
	for (uint32_t i = 0; i < nmore; i++)
		f[i + 1] = more[i];
	return helper_frame_send(fd, scratch, rc < 0 ? rc : 0, f, nmore + 1);
}

/* sig_fields - a signature as two fields (see take_sig). */
static void
sig_fields(const struct pgp_sig *sig, struct helper_field f[2])
{
	f[0].data = sig->fpr;
	f[0].len = strlen(sig->fpr);
	f[1].data = &sig->created;
	f[1].len = sizeof(sig->created);
}

/* limit_of - the room a request's first field carries. */
static int
limit_of(const struct helper_frame *f, size_t *max)
{
	uint64_t v;

	if (f->len[0] != sizeof(v))
		return -EBADMSG;
	memcpy(&v, f->field[0], sizeof(v));
	if (v > SIZE_MAX)
		v = 0;
	*max = (size_t)v;
	return 0;
}

/*
 * serve_one - run one request on p and answer it; < 0 (a malformed
 * request, or the caller gone) ends the helper.
 */
static int
serve_one(int fd, struct pgp *p, const struct helper_frame *f,
	  struct buf *scratch)
{
	_cleanup_buf_ struct buf out = BUF_INIT;
	struct pgp_sig sig;
	struct helper_field more[3];
	char key[64];
	struct cp_error e;
	int r;

	cp_error_clear(&e);
	switch (f->tag) {
	case PGPHELPER_OP_MIME_ENCRYPT:
		if (f->n != 3 || limit_of(f, &out.max) < 0)
			return -EBADMSG;
		r = pgp_mime_encrypt(p, helper_field_str(f, 1, key, sizeof(key)),
				     f->field[2], f->len[2], &out, &e);
		more[0].data = out.data ? out.data : "";
		more[0].len = out.len;
		return reply(fd, scratch, r, &e, more, 1);
	case PGPHELPER_OP_DECRYPT_SIGNED_BY:
		if (f->n != 2 || limit_of(f, &out.max) < 0)
			return -EBADMSG;
		r = pgp_decrypt_signed_by(p, f->field[1], f->len[1], &out,
					  &sig, &e);
		more[0].data = out.data ? out.data : "";
		more[0].len = out.len;
		sig_fields(&sig, more + 1);
		return reply(fd, scratch, r, &e, more, 3);
	case PGPHELPER_OP_VERIFY_DETACHED:
		if (f->n != 2)
			return -EBADMSG;
		r = pgp_verify_detached(p, f->field[0], f->len[0], f->field[1],
					f->len[1], &sig, &e);
		sig_fields(&sig, more);
		return reply(fd, scratch, r, &e, more, 2);
	case PGPHELPER_OP_SECRET_AVAILABLE:
		if (f->n != 1)
			return -EBADMSG;
		r = pgp_secret_available(p, helper_field_str(f, 0, key, sizeof(key)), &e);
		return reply(fd, scratch, r, &e, NULL, 0);
	default:
		return -EBADMSG;
	}
}

/* open_pgp - the first request: same version, then pgp_new. */
static int
open_pgp(int fd, struct buf *in, struct buf *scratch, struct pgp **p)
{
	struct helper_frame f;
	char version[32], home[PATH_MAX], signer[64];
	struct cp_error e;
	int r;

	cp_error_clear(&e);
	r = helper_frame_recv(fd, in, &f, 0, 0);
	if (r < 0 || f.tag != PGPHELPER_OP_OPEN || f.n != 3 || f.len[1] >= sizeof(home))
		return -EBADMSG;
	helper_field_str(&f, 0, version, sizeof(version));
	helper_field_str(&f, 1, home, sizeof(home));
	helper_field_str(&f, 2, signer, sizeof(signer));
	if (strcmp(version, CAREPOST_VERSION) != 0)
		r = cp_error_set(&e, -EPROTO, "gpg helper: version %s, caller %s",
				 CAREPOST_VERSION, version);
	else
		r = pgp_new(home[0] ? home : NULL, signer[0] ? signer : NULL, p, &e);
	if (reply(fd, scratch, r, &e, NULL, 0) < 0 && r == 0)
		r = -EPIPE;
	return r;
}

int
pgpserve_main(int argc, char **argv)
{
	_cleanup_buf_ struct buf in = BUF_INIT, scratch = BUF_INIT;
	struct helper_frame f;
	struct pgp *p = NULL;
	int r;

	if (argc != 2 || strcmp(argv[1], PGPHELPER_FLAG) != 0)
		return -1;
	r = helper_serve_begin(PGPHELPER_FLAG);
	if (r != 0)
		return r;
	if (pgp_global_init() < 0)
		return EX_UNAVAILABLE;
	r = open_pgp(HELPER_FD, &in, &scratch, &p);
	while (r == 0) {
		r = helper_frame_recv(HELPER_FD, &in, &f, 0, 0);
		if (r == 0)
			r = serve_one(HELPER_FD, p, &f, &scratch);
	}
	pgp_free(p);
	close(HELPER_FD);
	return r == -ENODATA ? 0 : EX_PROTOCOL;
}
