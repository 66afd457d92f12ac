/*
 * NAME
 *	checkpoint - signed checkpoints of the audit trail's head
 * DESCRIPTION
 *	See checkpoint.h. The file is parsed strictly: anything that is not
 *	a checkpoint, an armored signature or an empty line fails the
 *	verification (a checkpoint file holds nothing else).
 */
#include "checkpoint.h"
#include "buf.h"
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAGIC		"carepost audit checkpoint 1\n"
#define SIG_BEGIN	"-----BEGIN PGP SIGNATURE-----\n"
#define SIG_END		"-----END PGP SIGNATURE-----\n"
#define SIG_MAX		16384	/* an armored signature is far smaller */

/* What the store says of the trail: its head, the last checkpoint. */
struct head {
	int have;
	uint64_t seq;
	char hash[AUDIT_HASH_HEX + 1];
	int have_mark;
	uint64_t mark_seq;
	char mark_hash[AUDIT_HASH_HEX + 1];
	int64_t mark_time;
};

static int
head_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct head *h = ud;
	int r;

	r = audit_head_txn_get(s, txn, &h->seq, h->hash, err);
	if (r < 0 && r != -ENOENT)
		return r;
	h->have = r == 0;
	r = audit_checkpoint_txn_get(s, txn, &h->mark_seq, h->mark_hash,
				     &h->mark_time, err);
	if (r < 0 && r != -ENOENT)
		return r;
	h->have_mark = r == 0;
	return 0;
}

struct mark {
	uint64_t seq;
	const char *hash;
	int64_t time;
};

static int
mark_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct mark *m = ud;

	return audit_checkpoint_txn_put(s, txn, m->seq, m->hash, m->time, err);
}

/* append - data at the end of path, durably. */
static int
append(const char *path, const char *data, size_t len, struct cp_error *err)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	size_t done = 0;

	if (fd < 0)
		return cp_error_set(err, -errno, "%s: cannot open: %s", path,
				    strerror(errno));
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			close(fd);
			return cp_error_set(err, -e, "%s: cannot write: %s", path,
					    strerror(e));
		}
		done += (size_t)n;
	}
	if (fsync(fd) < 0) {
		int e = errno;

		close(fd);
		return cp_error_set(err, -e, "%s: cannot sync: %s", path, strerror(e));
	}
	return close(fd) < 0 ? cp_error_set(err, -errno, "%s: %s", path,
					    strerror(errno)) : 0;
}

int
checkpoint_write(struct store *s, struct pgp *p, const char *path, int64_t now,
		 int *made, uint64_t *seq, struct cp_error *err)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	struct head h;
	struct mark m;
	int r;

	*made = 0;
	memset(&h, 0, sizeof(h));
	if ((r = store_read(s, head_txn, &h, err)) < 0)
		return r;
	if (!h.have || h.seq == 0)
		return 0;		/* an empty trail: nothing to vouch for */
	if (h.have_mark && h.mark_seq == h.seq && strcmp(h.mark_hash, h.hash) == 0)
		return 0;		/* nothing new since the last one */
	b.max = SIG_MAX + 256;
	r = buf_printf(&b, MAGIC "seq: %" PRIu64 "\nhash: %s\ntime: %" PRId64 "\n",
		       h.seq, h.hash, now);
	if (r < 0)
		return cp_error_set(err, -ENOMEM, "checkpoint: out of memory");
	r = pgp_sign_detached(p, b.data, b.len, &b, err);
	if (r == 0 && buf_putc(&b, '\n') < 0)
		r = cp_error_set(err, -ENOMEM, "checkpoint: out of memory");
	if (r == 0)
		r = append(path, b.data, b.len, err);
	if (r < 0)
		return r;
	m.seq = h.seq;
	m.hash = h.hash;
	m.time = now;
	if ((r = store_write(s, mark_txn, &m, err)) < 0)
		return r;
	*made = 1;
	if (seq != NULL)
		*seq = h.seq;
	return 0;
}

/* ---- verify ---- */

struct reader {
	const char *at, *end;
	unsigned line;			/* of at */
};

/* take - the literal lit at the reader, and past it. */
static int
take(struct reader *rd, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(rd->end - rd->at) < n || memcmp(rd->at, lit, n) != 0)
		return 0;
	rd->at += n;
	rd->line += lit[n - 1] == '\n';
	return 1;
}

/* number - 1 to 19 digits, no leading zero, then a newline. */
static int
number(struct reader *rd, uint64_t *out)
{
	const char *start = rd->at;
	uint64_t v = 0;

	while (rd->at < rd->end && *rd->at >= '0' && *rd->at <= '9' &&
	       rd->at - start < 19) {
		v = v * 10 + (uint64_t)(*rd->at - '0');
		rd->at++;
	}
	if (rd->at == start || (rd->at - start > 1 && *start == '0') ||
	    !take(rd, "\n"))
		return 0;
	*out = v;
	return 1;
}

static int
hex_hash(struct reader *rd, char out[AUDIT_HASH_HEX + 1])
{
	int i;

	if (rd->end - rd->at < AUDIT_HASH_HEX + 1)
		return 0;
	for (i = 0; i < AUDIT_HASH_HEX; i++) {
		char c = rd->at[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	memcpy(out, rd->at, AUDIT_HASH_HEX);
	out[AUDIT_HASH_HEX] = '\0';
	rd->at += AUDIT_HASH_HEX;
	return take(rd, "\n");
}

/* parse_one - the block at the reader: 1, 0 at the end, -EBADMSG. */
static int
parse_one(struct reader *rd, struct checkpoint_block *b, char *why, size_t whylen)
{
	const char *sig_end;
	uint64_t t;

	while (take(rd, "\n"))
		;			/* the empty lines between them */
	if (rd->at == rd->end)
		return 0;
	memset(b, 0, sizeof(*b));
	b->text = rd->at;
	b->line = rd->line;
	if (!take(rd, MAGIC) || !take(rd, "seq: ") || !number(rd, &b->seq) ||
	    !take(rd, "hash: ") || !hex_hash(rd, b->hash) ||
	    !take(rd, "time: ") || !number(rd, &t) || t > INT64_MAX) {
		snprintf(why, whylen, "line %u: not a checkpoint (its four "
			 "lines, then its signature)", b->line);
		return -EBADMSG;
	}
	b->time = (int64_t)t;
	b->text_len = (size_t)(rd->at - b->text);
	b->sig = rd->at;
	if (!take(rd, SIG_BEGIN)) {
		snprintf(why, whylen, "line %u: the checkpoint of line %u has no "
			 "signature", rd->line, b->line);
		return -EBADMSG;
	}
	sig_end = memmem(rd->at, (size_t)(rd->end - rd->at), SIG_END, strlen(SIG_END));
	if (sig_end == NULL || (size_t)(sig_end - b->sig) > SIG_MAX) {
		snprintf(why, whylen, "line %u: the checkpoint of line %u: its "
			 "signature does not end", rd->line, b->line);
		return -EBADMSG;
	}
	for (const char *c = rd->at; c < sig_end; c++)
		rd->line += *c == '\n';
	rd->at = sig_end;
	take(rd, SIG_END);
	b->sig_len = (size_t)(rd->at - b->sig);
	return 1;
}

int
checkpoint_parse(const char *text, size_t len, checkpoint_block_fn fn, void *ud,
		 char *why, size_t whylen)
{
	struct reader rd = { text, text + len, 1 };
	struct checkpoint_block b;
	int r;

	while ((r = parse_one(&rd, &b, why, whylen)) > 0)
		if ((r = fn(ud, &b)) != 0)
			return r;
	return r;
}

/* signed_by - whether sig is a good signature of text by key_fpr. */
static int
signed_by(struct pgp *p, const char *key_fpr, const struct checkpoint_block *b)
{
	struct pgp_sig found;
	char *primary = NULL;
	int ok;

	if (pgp_verify_detached(p, b->text, b->text_len, b->sig, b->sig_len,
				&found, NULL) < 0 || found.fpr[0] == '\0')
		return 0;
	if (strcasecmp(found.fpr, key_fpr) == 0)
		return 1;
	ok = pgp_primary_fpr(p, found.fpr, &primary, NULL) == 0 &&
	     strcasecmp(primary, key_fpr) == 0;
	free(primary);
	return ok;
}

static void fail(struct checkpoint_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
fail(struct checkpoint_result *res, const char *fmt, ...)
{
	va_list ap;

	if (!res->ok)
		return;			/* the first failure is the one named */
	res->ok = 0;
	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
}

/* A checkpoint read from the file, its signature good. */
struct entry {
	unsigned line;
	uint64_t seq;
	char hash[AUDIT_HASH_HEX + 1];
	int64_t time;
};

struct gather {
	struct pgp *p;
	const char *key_fpr;
	struct entry *v;
	size_t n, cap;
	struct checkpoint_result *res;
};

static int
gather_one(void *ud, const struct checkpoint_block *b)
{
	struct gather *g = ud;

	if (!signed_by(g->p, g->key_fpr, b)) {
		fail(g->res, "line %u: the checkpoint of record %" PRIu64 " is not "
		     "signed by the checkpoint key %s", b->line, b->seq, g->key_fpr);
		return 1;
	}
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 64;
		struct entry *v = reallocarray(g->v, cap, sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		g->v = v;
		g->cap = cap;
	}
	g->v[g->n].line = b->line;
	g->v[g->n].seq = b->seq;
	memcpy(g->v[g->n].hash, b->hash, sizeof(b->hash));
	g->v[g->n].time = b->time;
	g->n++;
	g->res->checked++;
	g->res->last_seq = b->seq;
	g->res->last_time = b->time;
	return 0;
}

/* The trail as the store holds it, to check the checkpoints against. */
struct check {
	const struct entry *v;
	size_t n;
	struct checkpoint_result *res;
};

static int
seq_of(const void *key, size_t keylen, uint64_t *seq)
{
	char k[21];

	if (keylen != 20)
		return -EBADMSG;
	memcpy(k, key, 20);
	k[20] = '\0';
	*seq = strtoull(k, NULL, 10);
	return 0;
}

static int
check_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct check *c = ud;
	const void *key, *value;
	size_t keylen, len;
	uint64_t first = 0, last = 0;
	struct head h;
	size_t i;
	int r;

	memset(&h, 0, sizeof(h));
	if ((r = head_txn(s, txn, &h, err)) < 0)
		return r;
	r = store_txn_first(s, txn, DB_AUDIT, &key, &keylen, &value, &len, err);
	if (r == 0)
		r = seq_of(key, keylen, &first);
	if (r == 0)
		r = store_txn_last(s, txn, DB_AUDIT, &key, &keylen, &value, &len, err);
	if (r == 0)
		r = seq_of(key, keylen, &last);
	if (r == -ENOENT)
		r = 0;			/* an empty trail */
	if (r == -EBADMSG) {
		fail(c->res, "the audit trail holds a key that is no sequence "
		     "number: run audit verify");
		return 0;
	}
	if (r < 0)
		return r;
	for (i = 0; i < c->n && c->res->ok; i++) {
		const struct entry *e = &c->v[i];
		struct audit_record rec;
		json_t *holder = NULL;
		char k[21];

		if (first != 0 && e->seq < first)
			continue;	/* pruned by an explicit policy */
		if (e->seq > last) {
			fail(c->res, "line %u: the checkpoint signed at %" PRId64
			     " names record %" PRIu64 ", and the trail ends at %"
			     PRIu64 ": records were cut off its end", e->line,
			     e->time, e->seq, last);
			break;
		}
		snprintf(k, sizeof(k), "%020" PRIu64, e->seq);
		r = store_txn_get_raw(s, txn, DB_AUDIT, k, 20, &value, &len, err);
		if (r == 0)
			r = audit_record_decode(value, len, &holder, &rec, NULL);
		if (r == -ENOENT || r == -EBADMSG || (r == 0 && strcmp(rec.hash, e->hash) != 0))
			fail(c->res, "line %u: record %" PRIu64 " is not the one the "
			     "checkpoint signed at %" PRId64 " names: the trail was "
			     "changed at or before it", e->line, e->seq, e->time);
		json_decref(holder);
		if (r < 0 && r != -ENOENT && r != -EBADMSG)
			return r;
	}
	if (c->res->ok && h.have_mark) {
		for (i = 0; i < c->n; i++)
			if (c->v[i].seq == h.mark_seq &&
			    strcmp(c->v[i].hash, h.mark_hash) == 0)
				break;
		if (i == c->n)
			fail(c->res, "the store's last checkpoint (record %" PRIu64
			     ", made at %" PRId64 ") is not in the file: the file "
			     "was cut short or replaced", h.mark_seq, h.mark_time);
	}
	return 0;
}

int
checkpoint_verify(struct store *s, struct pgp *p, const char *key_fpr,
		  const char *path, struct checkpoint_result *res,
		  struct cp_error *err)
{
	_cleanup_free_ char *text = NULL;
	struct gather g = { p, key_fpr, NULL, 0, 0, res };
	struct check c;
	size_t len = 0;
	int r;

	memset(res, 0, sizeof(*res));
	res->ok = 1;
	r = cp_read_file(path, CHECKPOINT_FILE_MAX, &text, &len);
	if (r < 0 && r != -ENOENT)
		return cp_error_set(err, r, "%s: %s", path, strerror(-r));
	if (text != NULL) {
		r = checkpoint_parse(text, len, gather_one, &g, res->why,
				     sizeof(res->why));
		if (r == -EBADMSG)
			res->ok = 0;
		else if (r < 0) {
			free(g.v);
			return cp_error_set(err, r, "checkpoint: out of memory");
		}
	}
	if (res->ok) {
		c.v = g.v;
		c.n = g.n;
		c.res = res;
		r = store_read(s, check_txn, &c, err);
	} else {
		r = 0;
	}
	free(g.v);
	return r;
}
