/*
 * NAME
 *	pgphelper - GPGME's hot operations in a small helper process
 * DESCRIPTION
 *	See pgphelper.h. The caller's side only (start, call, free); the
 *	helper's is lib/pgpserve, and lib/helper starts the helper and
 *	carries the frames.
 */
#include "pgphelper.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>

#include "helper.h"

/* A decryption sent ahead (pgphelper_decrypt_ahead), its reply unread. */
struct ahead {
	struct buf data;	/* what was sent, to match the later call */
	uint64_t room;
};

#define AHEAD_MAX	2		/* requests in flight */
#define AHEAD_BYTES	(32u << 10)	/* each: far below a socket's buffer */

struct pgphelper {
	int fd;
	pid_t pid;		/* also its process group's id: gpg runs in it */
	int confined;		/* outside data: see pgphelper_confine */
	unsigned time_limit_ms;	/* each answer, when confined; 0: none */
	struct buf in;		/* the last reply */
	struct ahead ahead[AHEAD_MAX];
	size_t nahead;
	int opening;		/* OPEN sent, its reply not read yet */
};

static char helper_exe[PATH_MAX];

int
pgphelper_enable(const char *name)
{
	return helper_find(name, helper_exe, sizeof(helper_exe));
}

const char *
pgphelper_exe(void)
{
	return helper_exe;
}

int
pgphelper_enabled(void)
{
	return helper_exe[0] != '\0';
}

long
pgphelper_pid(const struct pgphelper *h)
{
	return h ? (long)h->pid : -1;
}

static void
ahead_drop_first(struct pgphelper *h)
{
	struct ahead first = h->ahead[0];

	for (size_t i = 1; i < h->nahead; i++)
		h->ahead[i - 1] = h->ahead[i];
	buf_reset(&first.data);
	h->ahead[--h->nahead] = first;		/* keeps its storage */
}

/*
 * reap - end the helper: its whole process group is killed first (gpg
 * runs in it, and may be decompressing still), then the helper itself is
 * waited for. Killing before the wait keeps the group's id from being
 * reused meanwhile: the unreaped leader holds it.
 */
static void
reap(struct pgphelper *h)
{
	h->nahead = 0;
	h->opening = 0;
	helper_reap(&h->pid, &h->fd);
}

void
pgphelper_free(struct pgphelper *h)
{
	if (h == NULL)
		return;
	reap(h);
	buf_free(&h->in);
	for (size_t i = 0; i < AHEAD_MAX; i++)
		buf_free(&h->ahead[i].data);
	free(h);
}

void
pgphelper_confine(struct pgphelper *h, unsigned time_limit_ms)
{
	h->confined = 1;
	h->time_limit_ms = time_limit_ms;
}

/* limit_text - a time limit as people write it: "30 s", or "250 ms". */
static const char *
limit_text(unsigned ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%u s", ms / 1000);
	else
		snprintf(buf, len, "%u ms", ms);
	return buf;
}

/* budget - how long to wait for an answer to op: 0 for no limit. */
static unsigned
budget(const struct pgphelper *h, int32_t op)
{
	if (!h->confined || op == PGPHELPER_OP_MIME_ENCRYPT)
		return 0;
	return h->time_limit_ms;
}

static int answer(struct pgphelper *h, int r, uint32_t want,
		  struct helper_frame *rep, struct cp_error *err);

/*
 * opened - read the reply to OPEN, which pgphelper_start did not wait
 * for. A helper that could not open GnuPG (or, confined, did not answer
 * within its time limit) is ended: PGPHELPER_LOST, with its reason.
 */
static int
opened(struct pgphelper *h, struct cp_error *err)
{
	struct helper_frame rep;
	char why[sizeof(err->text)];
	long pid = (long)h->pid;
	int r;

	if (!h->opening)
		return 0;
	h->opening = 0;
	r = answer(h, helper_frame_recv(h->fd, &h->in, &rep,
					helper_deadline(budget(h, PGPHELPER_OP_OPEN)), 0),
		   1, &rep, err);
	if (r < 0 && r != PGPHELPER_LOST) {
		reap(h);
		snprintf(why, sizeof(why), "%s", err->text);
		return cp_error_set(err, PGPHELPER_LOST, "gpg helper %ld: "
				    "cannot open: %s", pid, why);
	}
	return r;
}

/* over_limit - an answer over the output limit: gpg may be going on. */
static int
over_limit(int code)
{
	return code == -EFBIG || code == -EMSGSIZE;
}

/*
 * drop_ahead - read and drop the answers to requests sent ahead that no
 * call took. In a confined helper, one over the output limit (its gpg
 * may still be decompressing) ends the helper, as does one not given in
 * time: PGPHELPER_LOST, for this call is not to blame.
 */
static int
drop_ahead(struct pgphelper *h, struct helper_frame *rep,
	   struct cp_error *err)
{
	long pid = (long)h->pid;

	while (h->nahead > 0) {
		int r = helper_frame_recv(h->fd, &h->in, rep,
					  helper_deadline(budget(h, PGPHELPER_OP_DECRYPT_SIGNED_BY)),
					  0);

		ahead_drop_first(h);
		if (r < 0)
			return answer(h, r, 0, rep, err);
		if (h->confined && over_limit(rep->tag)) {
			reap(h);
			return cp_error_set(err, PGPHELPER_LOST, "gpg helper %ld: "
					    "stopped: a decryption sent ahead "
					    "went over its output limit", pid);
		}
	}
	return 0;
}

/*
 * await - read the answer to the request just sent, waiting at most ms
 * (0: as long as it takes). One not given in time ends the helper and
 * its gpg: -ETIMEDOUT. Otherwise what answer() makes of it.
 */
static int
await(struct pgphelper *h, unsigned ms, uint32_t want,
      struct helper_frame *rep, struct cp_error *err)
{
	char limit[32];
	int r = helper_frame_recv(h->fd, &h->in, rep, helper_deadline(ms), 0);

	if (r == -ETIMEDOUT) {
		reap(h);
		return cp_error_set(err, -ETIMEDOUT, "gpg ran over its %s time "
				    "limit: stopped",
				    limit_text(ms, limit, sizeof(limit)));
	}
	return answer(h, r, want, rep, err);
}

/*
 * call - one request, one reply. A reply's tag is 0 or a negative error
 * code with its text in field 0. Anything wrong with the exchange itself
 * ends the helper: PGPHELPER_LOST.
 */
static int
call(struct pgphelper *h, int32_t op, const struct helper_field *req, uint32_t n,
     uint32_t want, struct helper_frame *rep, struct cp_error *err)
{
	_cleanup_buf_ struct buf scratch = BUF_INIT;
	int r;

	if (h->fd < 0)
		return cp_error_set(err, PGPHELPER_LOST, "gpg helper: gone");
	r = opened(h, err);
	if (r == 0)
		r = drop_ahead(h, rep, err);
	if (r < 0)
		return r;
	r = helper_frame_send(h->fd, &scratch, op, req, n);
	if (r == -EFBIG)
		return cp_error_set(err, r, "gpg: data too large for the helper");
	if (r < 0)
		return answer(h, r, want, rep, err);
	return await(h, budget(h, op), want, rep, err);
}

/*
 * answer - check a reply that frame_recv (result r) read: 0, its error
 * code and text, or PGPHELPER_LOST (the helper is ended).
 */
static int
answer(struct pgphelper *h, int r, uint32_t want, struct helper_frame *rep,
       struct cp_error *err)
{
	char text[sizeof(err->text)];
	long pid = (long)h->pid;

	if (r == 0 && (rep->tag > 0 || rep->tag < -4095 || rep->n != want))
		r = -EBADMSG;
	if (r < 0) {
		reap(h);
		return cp_error_set(err, PGPHELPER_LOST, "gpg helper %ld: %s",
				    pid, r == -ENODATA || r == -EPIPE ? "exited" :
				    r == -ETIMEDOUT ? "no answer in time" :
				    strerror(-r));
	}
	if (rep->tag < 0)
		return cp_error_set(err, rep->tag, "%s",
				    helper_field_str(rep, 0, text, sizeof(text)));
	return 0;
}

/*
 * stopped_over_limit - after a confined decryption that failed with r:
 * over the output limit, gpg goes on decompressing (it stops only at the
 * end of its input), so the helper and its process group are ended.
 */
static int
stopped_over_limit(struct pgphelper *h, int r, struct cp_error *err)
{
	char text[sizeof(err->text)];

	if (!h->confined || !over_limit(r))
		return r;
	reap(h);
	snprintf(text, sizeof(text), "%s", err->text);
	return cp_error_set(err, r, "%s: stopped", text);
}

static int
spawn(struct pgphelper *h, struct cp_error *err)
{
	return helper_spawn(helper_exe, "carepost-pgp", PGPHELPER_FLAG, NULL,
			    &h->pid, &h->fd, err);
}

int
pgphelper_start(const char *gnupghome, const char *signer_fpr,
		struct pgphelper **out, struct cp_error *err)
{
	_cleanup_buf_ struct buf scratch = BUF_INIT;
	struct helper_field req[3] = {
		{ CAREPOST_VERSION, strlen(CAREPOST_VERSION) },
		{ gnupghome ? gnupghome : "", gnupghome ? strlen(gnupghome) : 0 },
		{ signer_fpr ? signer_fpr : "", signer_fpr ? strlen(signer_fpr) : 0 },
	};
	struct pgphelper *h;
	int r;

	*out = NULL;
	if (!pgphelper_enabled())
		return cp_error_set(err, -ENOSYS, "gpg helper: not enabled");
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return cp_error_set(err, -ENOMEM, "gpg helper: out of memory");
	h->fd = -1;
	r = spawn(h, err);
	/* The helper opens GnuPG while the caller goes on: opened() reads
	 * the answer before the first operation. */
	if (r == 0) {
		r = helper_frame_send(h->fd, &scratch, PGPHELPER_OP_OPEN, req, 3);
		if (r < 0)
			cp_error_set(err, r, "gpg helper: %s", strerror(-r));
	}
	if (r < 0) {
		pgphelper_free(h);
		return r;
	}
	h->opening = 1;
	*out = h;
	return 0;
}

/* room - what may still be appended to out, for the helper's buffer
 * (0: no limit; 1 when nothing may be: any output is then over). */
static uint64_t
room(const struct buf *out)
{
	if (out->max == 0)
		return 0;
	return out->max > out->len ? out->max - out->len : 1;
}

/*
 * take_sig - a reply's signature: a fingerprint field (empty: none) and
 * the 8-byte time it was made.
 */
static int
take_sig(const struct helper_frame *rep, uint32_t i, struct pgp_sig *sig,
	 struct cp_error *err)
{
	memset(sig, 0, sizeof(*sig));
	if (rep->len[i] == 0)
		return 0;
	if (rep->len[i] != PGP_FPR_SIZE - 1 || rep->len[i + 1] != sizeof(sig->created))
		return cp_error_set(err, -EBADMSG, "gpg helper: malformed signature");
	memcpy(sig->fpr, rep->field[i], PGP_FPR_SIZE - 1);
	memcpy(&sig->created, rep->field[i + 1], sizeof(sig->created));
	return 0;
}

int
pgphelper_mime_encrypt(struct pgphelper *h, const char *recipient_fpr,
		       const char *inner, size_t len, struct buf *out,
		       struct cp_error *err)
{
	struct helper_frame rep;
	uint64_t limit = room(out);
	struct helper_field req[3] = {
		{ &limit, sizeof(limit) },
		{ recipient_fpr, strlen(recipient_fpr) },
		{ inner, len },
	};
	int r;

	r = call(h, PGPHELPER_OP_MIME_ENCRYPT, req, 3, 2, &rep, err);
	if (r < 0)
		return r;
	r = buf_append(out, rep.field[1], rep.len[1]);
	if (r < 0)
		return cp_error_set(err, r, "gpg: message for key %s too large",
				    recipient_fpr);
	return 0;
}

int
pgphelper_decrypt_signed_by(struct pgphelper *h, const void *data, size_t len,
			    struct buf *out, struct pgp_sig *sig,
			    struct cp_error *err)
{
	struct helper_frame rep;
	uint64_t limit = room(out);
	struct helper_field req[2] = { { &limit, sizeof(limit) }, { data, len } };
	size_t start = out->len;
	int r;

	memset(sig, 0, sizeof(*sig));
	r = opened(h, err);
	if (r < 0)
		return r;
	if (h->nahead > 0 && h->fd >= 0 && h->ahead[0].room == limit &&
	    h->ahead[0].data.len == len &&
	    memcmp(h->ahead[0].data.data, data, len) == 0) {
		/* Sent ahead: its reply is the next to read. */
		ahead_drop_first(h);
		r = await(h, budget(h, PGPHELPER_OP_DECRYPT_SIGNED_BY), 4, &rep, err);
	} else {
		r = call(h, PGPHELPER_OP_DECRYPT_SIGNED_BY, req, 2, 4, &rep, err);
	}
	if (r < 0)
		return stopped_over_limit(h, r, err);
	r = buf_append(out, rep.field[1], rep.len[1]);
	if (r < 0)
		return cp_error_set(err, r, "gpg: decrypted data over limit");
	r = take_sig(&rep, 2, sig, err);
	if (r < 0) {
		buf_truncate(out, start);
	}
	return r;
}

int
pgphelper_decrypt_ahead(struct pgphelper *h, const void *data, size_t len,
			size_t max)
{
	_cleanup_buf_ struct buf scratch = BUF_INIT;
	struct buf out = BUF_INIT;
	uint64_t limit;
	struct ahead *a;
	ssize_t w;

	out.max = max;
	limit = room(&out);
	if (h == NULL || h->fd < 0 || h->nahead == AHEAD_MAX ||
	    len > AHEAD_BYTES)
		return 0;
	{
		struct helper_field req[2] = { { &limit, sizeof(limit) }, { data, len } };

		if (helper_frame_prepare(&scratch, PGPHELPER_OP_DECRYPT_SIGNED_BY, req, 2) < 0)
			return 0;
	}
	a = &h->ahead[h->nahead];
	buf_reset(&a->data);
	if (buf_append(&a->data, data, len) < 0)
		return 0;
	/* Never wait here: a full socket means no read-ahead, not a stall. */
	do
		w = send(h->fd, scratch.data, scratch.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (w != (ssize_t)scratch.len) {
		reap(h);	/* cut mid-frame: the next call finds it gone */
		return 0;
	}
	a->room = limit;
	h->nahead++;
	return 1;
}

int
pgphelper_verify_detached(struct pgphelper *h, const void *signed_data,
			  size_t len, const void *sig, size_t siglen,
			  struct pgp_sig *out, struct cp_error *err)
{
	struct helper_frame rep;
	struct helper_field req[2] = { { signed_data, len }, { sig, siglen } };
	int r;

	memset(out, 0, sizeof(*out));
	r = call(h, PGPHELPER_OP_VERIFY_DETACHED, req, 2, 3, &rep, err);
	if (r < 0)
		return r;
	return take_sig(&rep, 1, out, err);
}

int
pgphelper_secret_available(struct pgphelper *h, const char *fpr,
			   struct cp_error *err)
{
	struct helper_frame rep;
	struct helper_field req[1] = { { fpr, strlen(fpr) } };

	return call(h, PGPHELPER_OP_SECRET_AVAILABLE, req, 1, 1, &rep, err);
}
