/*
 * NAME
 *	pgphelper - GPGME's hot operations in a small helper process
 * SYNOPSIS
 *	#include "pgphelper.h"
 *
 *	In the program's main, first thing (pgpserve.h):
 *	    int rc = pgpserve_main(argc, argv);
 *	    if (rc >= 0) return rc;		(it was started as a helper)
 *	    pgphelper_enable("carepost-pgp");	(helpers may now be started)
 *
 *	struct pgphelper *h;
 *	pgphelper_start(gnupghome, signer_fpr, &h, &err);
 *	pgphelper_confine(h, time_limit_ms);	(outside data: hard limits)
 *	pgphelper_mime_encrypt(h, fpr, inner, len, &out, &err);
 *	pgphelper_decrypt_signed_by(h, data, len, &out, &sig, &err);
 *	pgphelper_verify_detached(h, text, len, sig, siglen, &sig, &err);
 *	pgphelper_free(h);
 * DESCRIPTION
 *	GPGME runs gpg for every operation by forking the calling process
 *	twice. The cost of a fork grows with the caller's memory and threads
 *	(page tables copied, then copy-on-write faults in every thread): in
 *	carepostd it was a fifth of the CPU time of an encrypted message. A
 *	helper is a small program started with posix_spawn (which copies no
 *	memory): one thread, a small heap and few libraries, whose only job
 *	is to run these operations on its own struct pgp, one at a time, for
 *	the one process that started it.
 *
 *	pgphelper_enable(name) picks the program: name (carepost-pgp, which
 *	links only what it needs) beside the running binary (the build
 *	tree), else in CAREPOST_LIBEXECDIR (installed), else the running
 *	binary itself, which must then call pgpserve_main first thing (so
 *	does carepostd, and carepostctl); name NULL picks the running
 *	binary, and an absolute path is taken as it is (-ENOENT when it is
 *	not an executable file). It is run as "carepost-pgp --pgp-helper"
 *	either way. pgphelper_exe says which. The caller keeps using lib/pgp:
 *	pgp_offload hands a struct pgp's hot operations to a helper, and
 *	pgp_confine its operations on outside data (see pgp.h).
 *
 *	A helper is the leader of a process group of its own, and the gpg
 *	processes GPGME starts for it are in that group (GPGME does not
 *	make them a session; gpg-agent, which makes one of its own, is not
 *	in it). Whenever a helper is ended (pgphelper_free, a lost helper,
 *	a stop below) its whole group is killed with SIGKILL before the
 *	helper is reaped, so that no gpg outlives its helper and the group's
 *	id cannot be reused meanwhile. gpg must be killed: it goes on
 *	decompressing after GPGME stops reading its output (until the end
 *	of its input), and ignores SIGTERM while it does.
 *
 *	pgphelper_confine marks a helper as one for outside data (inbound
 *	mail), with hard limits on its decryptions and verifications (and
 *	its checks of a secret key, which wait on gpg-agent):
 *	    - an answer (and the helper's opening of GnuPG) not given within
 *	      time_limit_ms (0: no limit) stops the helper: -ETIMEDOUT,
 *	      "gpg ran over its 10 s time limit: stopped", for the
 *	      operation's own answer; PGPHELPER_LOST for the opening;
 *	    - a decryption that fails over the caller's output limit (-EFBIG
 *	      or -EMSGSIZE) stops the helper, the text ending in ": stopped";
 *	    - an answer to a decryption sent ahead that no call takes, over
 *	      the limit or late, stops it too: PGPHELPER_LOST for the call
 *	      that read it, which is not to blame.
 *	A stopped helper is ended as above (pgphelper_pid then says 0);
 *	later calls find it gone (PGPHELPER_LOST), and the caller starts
 *	another (pgp_confine does). pgphelper_mime_encrypt has no limit.
 *
 *	The functions have the contract of their lib/pgp namesakes, results
 *	and error codes and texts included; the limit of the caller's output
 *	buffer (out->max) travels with the request, so GPGME stops reading
 *	gpg's output at the limit in the helper just as in-process (gpg
 *	itself is stopped only by a confined helper's kill).
 *
 *	The helper talks over a socket pair on its descriptor 3, in the
 *	frames of lib/helper (helper.h), which also starts it and ends it.
 *	The helper exits on a malformed request or when the socket is closed
 *	(so it never outlives its caller by more than one operation;
 *	pgphelper_free does not wait for that, it kills). It ignores
 *	SIGTERM, SIGINT and SIGHUP: its caller decides when it ends.
 *
 *	pgphelper_start does not wait for the helper to open GnuPG (which
 *	runs gpg and gpgconf a few times): the helper starts up while the
 *	caller goes on, and the first operation reads its answer first.
 * ERRORS
 *	PGPHELPER_LOST (-EPIPE): the helper could not be reached, died,
 *	answered with a malformed frame, or could not open GnuPG (the text
 *	says why); the helper has been ended and nothing is known of the
 *	operation, which the caller may run in-process (every one here can
 *	be redone harmlessly), or, for outside data, on a new helper (as
 *	pgp_confine does).
 *	-ETIMEDOUT: a confined helper did not answer within its time limit
 *	(it has been ended).
 *	-EFBIG: a request larger than HELPER_MAX_FRAME ("data too large
 *	for the helper"; the helper is kept), or, from the helper, output
 *	over the caller's out->max (after a decryption, a confined helper
 *	is then ended: ": stopped").
 *	-EBADMSG: a reply's signature fields are malformed (the helper is
 *	kept).
 *	Otherwise the operation's own code and text, as its lib/pgp
 *	namesake gives them (-ENOKEY, -EKEYEXPIRED, -EBADMSG, -EIO, ...).
 *	pgphelper_start fails with -ENOSYS when pgphelper_enable was not
 *	called or failed, -ENOMEM, or the -errno of socketpair or
 *	posix_spawn when the helper cannot be started; whether GnuPG opens
 *	is learnt only at the first operation (PGPHELPER_LOST).
 *	pgphelper_enable returns -ENOENT when an absolute name is not an
 *	executable file, or when the running binary has been replaced on
 *	disk (its /proc/self/exe ends in " (deleted)": a new binary may speak
 *	another version, so gpg stays in-process); -errno or -ENAMETOOLONG
 *	when /proc/self/exe cannot be read. pgphelper_decrypt_ahead does
 *	not fail: 0 means not sent.
 * OWNERSHIP
 *	pgphelper_start hands a helper the caller ends with pgphelper_free,
 *	which kills its process group and reaps it; gnupghome and
 *	signer_fpr are sent to the helper, not kept. The operations append
 *	their output to the caller's out (only on success) and fill the
 *	caller's struct pgp_sig; their inputs are borrowed for the call,
 *	except that pgphelper_decrypt_ahead keeps a copy of data until the
 *	matching call (or any other) takes its answer. pgphelper_exe
 *	returns static storage, set by pgphelper_enable.
 * THREAD SAFETY
 *	One struct pgphelper per thread at a time, like struct pgp.
 *	pgphelper_enable before threads start (it writes the static
 *	program path that pgphelper_start reads).
 */
#ifndef CAREPOST_PGPHELPER_H
#define CAREPOST_PGPHELPER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "pgpsig.h"
#include "util.h"

#define PGPHELPER_LOST		(-EPIPE)

/* The protocol, for lib/pgpserve: the flag the helper is run with, and
 * the requests (a frame's tag). */
#define PGPHELPER_FLAG		"--pgp-helper"
enum pgphelper_op {
	PGPHELPER_OP_OPEN = 1,		/* version, GNUPGHOME, signer -> () */
	PGPHELPER_OP_MIME_ENCRYPT,	/* room, fpr, inner -> (entity) */
	PGPHELPER_OP_DECRYPT_SIGNED_BY,	/* room, data -> (plaintext, sig fpr, time) */
	PGPHELPER_OP_VERIFY_DETACHED,	/* text, signature -> (sig fpr, time) */
	PGPHELPER_OP_SECRET_AVAILABLE,	/* fpr -> () */
};

struct pgphelper;

int pgphelper_enable(const char *name);
const char *pgphelper_exe(void);
int pgphelper_enabled(void);

int pgphelper_start(const char *gnupghome, const char *signer_fpr,
		    struct pgphelper **out, struct cp_error *err);
/* pgphelper_free - end the helper (its process group killed) and free h. */
void pgphelper_free(struct pgphelper *h);
/*
 * pgphelper_pid - the helper's process id, which is also its process
 * group's (for tests and log lines); 0 once it has been ended, -1 for
 * a NULL h.
 */
long pgphelper_pid(const struct pgphelper *h);
/* pgphelper_confine - hard limits for outside data (see DESCRIPTION). */
void pgphelper_confine(struct pgphelper *h, unsigned time_limit_ms);

int pgphelper_mime_encrypt(struct pgphelper *h, const char *recipient_fpr,
			   const char *inner, size_t len, struct buf *out,
			   struct cp_error *err);
int pgphelper_decrypt_signed_by(struct pgphelper *h, const void *data,
				size_t len, struct buf *out, struct pgp_sig *sig,
				struct cp_error *err);
/*
 * pgphelper_decrypt_ahead - send the request of a later
 * pgphelper_decrypt_signed_by(h, data, len, out) whose out->max is max
 * (out empty), without waiting: the helper decrypts while the caller
 * works on something else, and that call then only reads the answer.
 * 1 when sent; 0 when not (too large, two already in flight, or the
 * socket full), which costs nothing. Any other call first reads (and
 * drops) the answers to what was sent ahead, so a guess that is not
 * followed is harmless.
 */
int pgphelper_decrypt_ahead(struct pgphelper *h, const void *data, size_t len,
			    size_t max);
int pgphelper_verify_detached(struct pgphelper *h, const void *signed_data,
			      size_t len, const void *sig, size_t siglen,
			      struct pgp_sig *out, struct cp_error *err);
/* pgphelper_secret_available - pgp_secret_available, limited as above. */
int pgphelper_secret_available(struct pgphelper *h, const char *fpr,
			       struct cp_error *err);

#endif
