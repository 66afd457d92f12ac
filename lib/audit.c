/*
 * NAME
 *	audit - the audit trail: append in the action's transaction, verify
 *	the chain, export as FHIR AuditEvent
 * DESCRIPTION
 *	See audit.h. The record's bytes are record.c's (audit_record_encode);
 *	this file chains them: the sequence number and prev come from meta
 *	"audit:head", not from the last record, so that a damaged record
 *	stops no send (verify names it) and a chain cut short at its end is
 *	seen against the head.
 */
#include "audit.h"
#include "record.h"

#include <gcrypt.h>
#include <pwd.h>
#include <unistd.h>

static const char *const action_names[AUDIT__COUNT] = {
	"sent", "filed", "quarantined", "read", "inbox_listed", "exported",
	"key_imported", "opted_out", "reloaded", "pruned",
};

static const char zero_hash[AUDIT_HASH_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

const char *
audit_action_name(enum audit_action a)
{
	return (unsigned)a < AUDIT__COUNT ? action_names[a] : NULL;
}

int
audit_reason_check(const char *reason, struct cp_error *err)
{
	size_t n;

	if (reason == NULL)
		return 0;
	n = strlen(reason);
	if (n == 0 || n > AUDIT_REASON_MAX)
		return cp_error_set(err, -EINVAL, "reason: expected 1 to %d bytes",
				    AUDIT_REASON_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)reason[i];

		if (c < 0x20 || c == 0x7f)
			return cp_error_set(err, -EINVAL, "reason: a control "
					    "character at byte %zu", i + 1);
	}
	if (!cp_utf8_valid(reason, n))
		return cp_error_set(err, -EINVAL, "reason: not UTF-8");
	return 0;
}

int
audit_actor_ctl(char *buf, size_t size, struct cp_error *err)
{
	struct passwd pw, *res = NULL;
	char space[1024];
	int n;

	if (getpwuid_r(getuid(), &pw, space, sizeof(space), &res) != 0 ||
	    res == NULL)
		n = snprintf(buf, size, "ctl:uid%u", (unsigned)getuid());
	else
		n = snprintf(buf, size, "ctl:%s", pw.pw_name);
	if (n < 0 || (size_t)n >= size)
		return cp_error_set(err, -EINVAL, "actor: user name too long");
	return 0;
}

/* actor_check - "daemon", or "ctl:" and a user name of safe bytes. */
static int
actor_check(const char *actor, struct cp_error *err)
{
	size_t n;

	if (actor == NULL)
		return cp_error_set(err, -EINVAL, "audit: no actor");
	if (strcmp(actor, AUDIT_ACTOR_DAEMON) == 0)
		return 0;
	n = strlen(actor);
	if (strncmp(actor, "ctl:", 4) != 0 || n == 4 || n > AUDIT_ACTOR_MAX ||
	    strspn(actor + 4, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789._-$") != n - 4)
		return cp_error_set(err, -EINVAL, "audit: actor: expected daemon "
				    "or ctl:USER");
	return 0;
}

/* id_check - a reference: 1 to STORE_ID_MAX bytes of UTF-8, no control. */
static int
id_check(const char *what, const char *id, struct cp_error *err)
{
	size_t n;

	if (id == NULL)
		return 0;
	n = strlen(id);
	if (n == 0 || n > STORE_ID_MAX || !cp_utf8_valid(id, n))
		return cp_error_set(err, -EINVAL, "audit: %s: expected 1 to %d "
				    "bytes of UTF-8", what, STORE_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
			return cp_error_set(err, -EINVAL, "audit: %s: a control "
					    "character", what);
	return 0;
}

static int
event_check(const struct audit_event *ev, struct cp_error *err)
{
	int r;

	if (audit_action_name(ev->action) == NULL)
		return cp_error_set(err, -EINVAL, "audit: unknown action");
	if ((r = actor_check(ev->actor, err)) < 0 ||
	    (r = audit_reason_check(ev->reason, err)) < 0 ||
	    (r = id_check("event", ev->event, err)) < 0 ||
	    (r = id_check("patient", ev->patient, err)) < 0 ||
	    (r = id_check("inbox", ev->inbox, err)) < 0 ||
	    (r = id_check("recipient", ev->recipient, err)) < 0 ||
	    (r = id_check("key", ev->key, err)) < 0)
		return r;
	return 0;
}

/* hash_hex - the hex SHA-256 of bytes. */
static void
hash_hex(const void *bytes, size_t len, char out[AUDIT_HASH_HEX + 1])
{
	unsigned char digest[32];

	gcry_md_hash_buffer(GCRY_MD_SHA256, digest, bytes, len);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* seal - r->hash from r's canonical bytes; the stored bytes in *out. */
static int
seal(struct audit_record *r, char **out, size_t *len)
{
	char *canon;
	size_t n;
	int rc;

	if ((rc = audit_record_encode(r, 0, &canon, &n)) < 0)
		return rc;
	hash_hex(canon, n, r->hash);
	free(canon);
	return audit_record_encode(r, 1, out, len);
}

int
audit_append_n(struct store *s, MDB_txn *txn, const struct audit_event *evs,
	       size_t n, struct cp_error *err)
{
	struct audit_record rec;
	char key[24];
	uint64_t last = 0;
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		if ((r = event_check(&evs[i], err)) < 0)
			return r;
	if (n == 0)
		return 0;
	memset(&rec, 0, sizeof(rec));
	r = audit_head_txn_get(s, txn, &last, rec.prev, err);
	if (r == -ENOENT) {
		last = 0;
		memcpy(rec.prev, zero_hash, sizeof(zero_hash));
	} else if (r < 0) {
		return r;
	}
	rec.time = cp_now();
	for (i = 0; i < n; i++) {
		const struct audit_event *ev = &evs[i];
		char *bytes = NULL;
		size_t len;

		rec.seq = last + 1 + i;
		rec.actor = ev->actor;
		rec.action = audit_action_name(ev->action);
		rec.reason = ev->reason;
		rec.event = ev->event;
		rec.patient = ev->patient;
		rec.inbox = ev->inbox;
		rec.recipient = ev->recipient;
		rec.key = ev->key;
		rec.relay = ev->relay;
		if ((r = seal(&rec, &bytes, &len)) < 0)
			return cp_error_set(err, r, "audit: out of memory");
		snprintf(key, sizeof(key), "%020llu", (unsigned long long)rec.seq);
		r = store_txn_put_raw(s, txn, DB_AUDIT, key, 20, bytes, len, err);
		free(bytes);
		if (r < 0)
			return r;
		memcpy(rec.prev, rec.hash, sizeof(rec.prev));
	}
	return audit_head_txn_put(s, txn, rec.seq, rec.hash, err);
}

int
audit_append(struct store *s, MDB_txn *txn, const struct audit_event *ev,
	     struct cp_error *err)
{
	return audit_append_n(s, txn, ev, 1, err);
}

static int
one_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	return audit_append(s, txn, userdata, err);
}

int
audit_record_one(struct store *s, const struct audit_event *ev,
		 struct cp_error *err)
{
	return store_write(s, one_txn, (void *)ev, err);
}

int
audit_daemon_action(struct store *s, enum audit_action action,
		    struct cp_error *err)
{
	struct audit_event ev = { .action = action, .actor = AUDIT_ACTOR_DAEMON };

	return audit_record_one(s, &ev, err);
}

/* ---- verify ---- */

struct verify {
	struct audit_verify_result *res;
	char prev[AUDIT_HASH_HEX + 1];
	uint64_t seq;		/* the last good record's, 0 before the first */
};

static int
bad(struct verify *v, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
bad(struct verify *v, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	v->res->ok = 0;
	v->res->bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(v->res->why, sizeof(v->res->why), fmt, ap);
	va_end(ap);
	return 1;		/* stops the walk */
}

/* key_seq - the seq a key names, 0 when it is no 20-digit key. */
static uint64_t
key_seq(const char *key, size_t keylen)
{
	uint64_t n = 0;

	if (keylen != 20)
		return 0;
	for (size_t i = 0; i < 20; i++) {
		if (key[i] < '0' || key[i] > '9')
			return 0;
		n = n * 10 + (uint64_t)(key[i] - '0');
	}
	return n;
}

static int
verify_one(void *userdata, const void *key, size_t keylen, const void *value,
	   size_t len)
{
	struct verify *v = userdata;
	uint64_t kseq = key_seq(key, keylen), want = v->seq + 1;
	struct audit_record rec;
	struct cp_error local;
	char want_hash[AUDIT_HASH_HEX + 1], *bytes = NULL;
	json_t *holder = NULL;
	size_t n;
	int same;

	if (kseq == 0)
		return bad(v, want, "a key that is no sequence number");
	/* The trail is never pruned: it starts at record 1. */
	if (v->seq == 0 && kseq != 1)
		return bad(v, 1, "records 1 to %llu are missing (the first is %llu)",
			   (unsigned long long)(kseq - 1), (unsigned long long)kseq);
	if (v->seq != 0 && kseq != want)
		return bad(v, want, "record %llu is missing (the next is %llu)",
			   (unsigned long long)want, (unsigned long long)kseq);
	cp_error_clear(&local);
	if (audit_record_decode(value, len, &holder, &rec, &local) < 0)
		return bad(v, kseq, "unreadable: %s", local.text);
	if (rec.seq != kseq) {
		json_decref(holder);
		return bad(v, kseq, "holds seq %llu (moved from its place)",
			   (unsigned long long)rec.seq);
	}
	if (v->seq != 0 && strcmp(rec.prev, v->prev) != 0) {
		json_decref(holder);
		return bad(v, kseq, "prev is not the hash of record %llu",
			   (unsigned long long)v->seq);
	}
	if (kseq == 1 && strcmp(rec.prev, zero_hash) != 0) {
		json_decref(holder);
		return bad(v, kseq, "the first record's prev is not zero");
	}
	memcpy(want_hash, rec.hash, sizeof(want_hash));
	if (seal(&rec, &bytes, &n) < 0) {
		json_decref(holder);
		return -ENOMEM;
	}
	same = n == len && memcmp(bytes, value, len) == 0;
	free(bytes);
	json_decref(holder);
	if (strcmp(rec.hash, want_hash) != 0)
		return bad(v, kseq, "its hash does not match its bytes");
	if (!same)
		return bad(v, kseq, "its bytes are not in canonical form");
	if (v->seq == 0)
		v->res->first = kseq;
	v->seq = kseq;
	v->res->last = kseq;
	v->res->records++;
	memcpy(v->prev, rec.hash, sizeof(v->prev));
	return 0;
}

static int
verify_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	struct verify *v = userdata;
	char head_hash[AUDIT_HASH_HEX + 1];
	uint64_t head = 0;
	int r;

	r = store_txn_walk_raw(s, txn, DB_AUDIT, verify_one, v, err);
	if (r < 0)
		return r;
	if (r > 0)
		return 0;
	r = audit_head_txn_get(s, txn, &head, head_hash, err);
	if (r == -ENOENT) {
		if (v->seq != 0)
			bad(v, v->seq, "records without a head record");
		return 0;
	}
	if (r < 0) {
		bad(v, v->seq + 1, "the head record is unreadable");
		return 0;
	}
	if (head > v->seq)
		bad(v, v->seq + 1, "record %llu is missing: the chain ends at "
		    "%llu, its head names %llu (truncated)",
		    (unsigned long long)(v->seq + 1), (unsigned long long)v->seq,
		    (unsigned long long)head);
	else if (head < v->seq)
		bad(v, head + 1, "record %llu is past the head (%llu)",
		    (unsigned long long)(head + 1), (unsigned long long)head);
	else if (head != 0 && strcmp(head_hash, v->prev) != 0)
		bad(v, head, "its hash is not the one its head names");
	return 0;
}

int
audit_verify(struct store *s, struct audit_verify_result *res,
	     struct cp_error *err)
{
	struct verify v;

	memset(res, 0, sizeof(*res));
	memset(&v, 0, sizeof(v));
	res->ok = 1;
	v.res = res;
	return store_read(s, verify_txn, &v, err);
}

/* ---- export ---- */

struct export {
	const struct audit_filter *f;
	FILE *out;
	uint64_t written;
	int failed;
};

static int
export_one(void *userdata, const void *key, size_t keylen, const void *value,
	   size_t len)
{
	struct export *x = userdata;
	struct audit_record rec;
	json_t *holder = NULL, *fhir;
	char *line;
	int r = 0;

	if (audit_record_decode(value, len, &holder, &rec, NULL) < 0)
		return 0;		/* audit verify names it */
	if ((x->f->patient != NULL &&
	     (rec.patient == NULL || strcmp(rec.patient, x->f->patient) != 0)) ||
	    (x->f->since != 0 && rec.time < x->f->since) ||
	    (x->f->until != 0 && rec.time >= x->f->until)) {
		json_decref(holder);
		return 0;
	}
	fhir = audit_record_fhir(&rec);
	json_decref(holder);
	if (fhir == NULL)
		return -ENOMEM;
	line = json_dumps(fhir, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(fhir);
	if (line == NULL)
		return -ENOMEM;
	if (fprintf(x->out, "%s\n", line) < 0) {
		x->failed = errno ? errno : EIO;
		r = -x->failed;
	} else {
		x->written++;
	}
	free(line);
	return r;
}

static int
export_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	return store_txn_walk_raw(s, txn, DB_AUDIT, export_one, userdata, err);
}

int
audit_export(struct store *s, const struct audit_filter *f, FILE *out,
	     uint64_t *written, struct cp_error *err)
{
	struct export x = { f, out, 0, 0 };
	int r = store_read(s, export_txn, &x, err);

	if (written)
		*written = x.written;
	if (r == -ENOMEM)
		return cp_error_set(err, r, "audit export: out of memory");
	if (r < 0 && x.failed)
		return cp_error_set(err, r, "audit export: write: %s",
				    strerror(x.failed));
	return r;
}
