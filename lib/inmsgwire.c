/*
 * NAME
 *	inmsgwire - a struct inmsg as bytes, and back, checked
 * DESCRIPTION
 *	See inmsgwire.h. The writer and the reader walk the struct in the
 *	same order (put_message, get_message); both keep the first error
 *	and do nothing after it, so that each reads as the format does.
 */
#include "inmsgwire.h"

#include <limits.h>

#include "rfc2231.h"

#define MAGIC		"CPIM"
#define ABSENT		0xffffffffu

/* Per-entry minimum sizes on the wire: a count says no more than that. */
#define MIN_STR		4u
#define MIN_ATTACHMENT	(3u * MIN_STR)
#define MIN_DSN_RCPT	(5u * MIN_STR)

/* ---- writing ---- */

struct wr {
	struct buf *b;
	int r;
};

static void
put_raw(struct wr *w, const void *data, size_t len)
{
	if (w->r == 0)
		w->r = buf_append(w->b, data, len);
}

static void
put_u32(struct wr *w, uint32_t v)
{
	unsigned char x[4] = { (unsigned char)v, (unsigned char)(v >> 8),
			       (unsigned char)(v >> 16), (unsigned char)(v >> 24) };

	put_raw(w, x, sizeof(x));
}

static void
put_u64(struct wr *w, uint64_t v)
{
	put_u32(w, (uint32_t)v);
	put_u32(w, (uint32_t)(v >> 32));
}

static void
put_u8(struct wr *w, int v)
{
	unsigned char c = v ? 1 : 0;

	put_raw(w, &c, 1);
}

static void
put_bytes(struct wr *w, const void *data, size_t len)
{
	if (data == NULL) {
		put_u32(w, ABSENT);
		return;
	}
	if (len >= ABSENT) {
		if (w->r == 0)
			w->r = -EFBIG;
		return;
	}
	put_u32(w, (uint32_t)len);
	put_raw(w, data, len);
}

static void
put_str(struct wr *w, const char *s)
{
	put_bytes(w, s, s ? strlen(s) : 0);
}

static void
put_list(struct wr *w, const struct inmsg_strlist *l)
{
	put_u32(w, (uint32_t)l->n);
	for (size_t i = 0; i < l->n; i++)
		put_str(w, l->v[i] ? l->v[i] : "");
}

/* estimate - the bulk of an encoding, to reserve at once. */
static size_t
estimate(const struct inmsg *m)
{
	size_t n = 4096 + m->body_len + m->pgp_encrypted_len +
		   m->pgp_signed_len + m->pgp_signature_len;

	for (size_t i = 0; i < m->n_attachments; i++)
		n += 64 + m->attachments[i].len;
	return n;
}

int
inmsgwire_encode(const struct inmsg *m, struct buf *out)
{
	struct wr w = { .b = out, .r = 0 };
	size_t start = out->len;

	if (m == NULL || m->body == NULL || m->reply == NULL ||
	    m->reply_len > m->body_len ||
	    m->n_attachments > UINT32_MAX || m->dsn.n_rcpts > UINT32_MAX ||
	    m->references.n > UINT32_MAX || m->recipients.n > UINT32_MAX ||
	    m->auth_results.n > UINT32_MAX || m->prot.recipients.n > UINT32_MAX)
		return -EINVAL;
	w.r = buf_reserve(out, estimate(m));
	put_raw(&w, MAGIC, 4);
	{
		unsigned char version = INMSGWIRE_VERSION;

		put_raw(&w, &version, 1);
	}
	put_str(&w, m->message_id);
	put_str(&w, m->in_reply_to);
	put_list(&w, &m->references);
	put_str(&w, m->from_addr);
	put_str(&w, m->from_name);
	put_u32(&w, m->from_count);
	put_str(&w, m->return_path);
	put_list(&w, &m->recipients);
	put_str(&w, m->subject);
	put_u64(&w, (uint64_t)m->date);
	put_str(&w, m->auto_submitted);
	put_str(&w, m->precedence);
	put_str(&w, m->list_id);
	put_u32(&w, m->flags);
	put_list(&w, &m->auth_results);
	put_str(&w, m->content_type);
	put_u32(&w, m->header_count);
	put_bytes(&w, m->body, m->body_len);
	/* absent: the body itself (nothing was cut), not sent twice */
	if (m->reply_len == m->body_len &&
	    memcmp(m->reply, m->body, m->body_len) == 0)
		put_bytes(&w, NULL, 0);
	else
		put_bytes(&w, m->reply, m->reply_len);
	put_u32(&w, (uint32_t)m->n_attachments);
	for (size_t i = 0; i < m->n_attachments; i++) {
		const struct inmsg_attachment *a = &m->attachments[i];

		put_str(&w, a->filename);
		put_str(&w, a->content_type);
		put_bytes(&w, a->data, a->len);
	}
	put_u32(&w, m->part_count);
	put_u32(&w, m->depth);
	put_u64(&w, m->decoded_total);
	put_u32(&w, m->pgp);
	put_bytes(&w, m->pgp_encrypted, m->pgp_encrypted_len);
	put_bytes(&w, m->pgp_signed, m->pgp_signed_len);
	put_bytes(&w, m->pgp_signature, m->pgp_signature_len);
	put_u32(&w, m->nested_crypto);
	put_u8(&w, m->prot.present);
	put_str(&w, m->prot.subject);
	put_list(&w, &m->prot.recipients);
	put_u8(&w, m->dsn.present);
	put_str(&w, m->dsn.original_envelope_id);
	put_str(&w, m->dsn.reporting_mta);
	put_u32(&w, (uint32_t)m->dsn.n_rcpts);
	for (size_t i = 0; i < m->dsn.n_rcpts; i++) {
		const struct inmsg_dsn_rcpt *rc = &m->dsn.rcpts[i];

		put_str(&w, rc->action);
		put_str(&w, rc->status);
		put_str(&w, rc->final_recipient);
		put_str(&w, rc->original_recipient);
		put_str(&w, rc->diagnostic_code);
	}
	put_str(&w, m->dsn.orig_message_id);
	put_u8(&w, m->dsn.orig_headers_present);
	put_u8(&w, m->arf.present);
	put_str(&w, m->arf.feedback_type);
	put_str(&w, m->arf.user_agent);
	put_str(&w, m->arf.version);
	put_str(&w, m->arf.original_mail_from);
	put_str(&w, m->arf.original_rcpt_to);
	put_str(&w, m->arf.reported_domain);
	put_u8(&w, m->arf.redacted);
	put_str(&w, m->arf.orig_message_id);
	put_str(&w, m->arf.orig_return_path);
	put_u8(&w, m->arf.orig_headers_present);
	if (w.r < 0)
		buf_truncate(out, start);
	return w.r;
}

/* ---- reading ---- */

struct rd {
	const unsigned char *p;
	size_t left;
	int r;
	struct cp_error *err;
	size_t cap;		/* the longest str or bytes field taken now */
};

/* What a string may hold. */
#define S_TEXT		0x1u	/* valid UTF-8 without NUL */
#define S_LOWER		0x2u	/* and no upper-case ASCII */
#define S_NEEDED	0x4u	/* and not absent */
#define S_LINE		0x8u	/* and no control character (C0, DEL) */

static void
bad(struct rd *d, const char *what, const char *why)
{
	if (d->r == 0)
		d->r = cp_error_set(d->err, -EBADMSG, "parser's answer: %s: %s",
				    what, why);
}

static void
no_memory(struct rd *d)
{
	if (d->r == 0)
		d->r = cp_error_set(d->err, -ENOMEM, "parser's answer: out of memory");
}

static const unsigned char *
take(struct rd *d, size_t n, const char *what)
{
	const unsigned char *p = d->p;

	if (d->r < 0)
		return NULL;
	if (n > d->left) {
		bad(d, what, "cut short");
		return NULL;
	}
	d->p += n;
	d->left -= n;
	return p;
}

static uint32_t
get_u32(struct rd *d, const char *what)
{
	const unsigned char *x = take(d, 4, what);

	if (x == NULL)
		return 0;
	return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 |
	       (uint32_t)x[3] << 24;
}

static uint64_t
get_u64(struct rd *d, const char *what)
{
	uint64_t lo = get_u32(d, what);

	return lo | (uint64_t)get_u32(d, what) << 32;
}

static int
get_u8(struct rd *d, const char *what)
{
	const unsigned char *x = take(d, 1, what);

	if (x == NULL)
		return 0;
	if (*x > 1)
		bad(d, what, "not 0 or 1");
	return *x;
}

/*
 * text_check - 0 when s[0..n) is valid UTF-8 without NUL (and, with
 * S_LOWER, without upper-case ASCII), else why not.
 */
static const char *
text_check(const unsigned char *s, size_t n, unsigned how)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k;

		if (c >= 0x80) {
			if ((k = cp_utf8_seq_len(s + i, n - i)) == 0)
				return "not valid UTF-8";
			i += k;
			continue;
		}
		if (c == 0)
			return "holds a NUL byte";
		if ((how & S_LINE) && (c < 0x20 || c == 0x7F))
			return "holds a control character";
		if ((how & S_LOWER) && c >= 'A' && c <= 'Z')
			return "holds upper-case letters";
		i++;
	}
	return NULL;
}

/*
 * get_blob - a str or bytes field into a new NUL-terminated copy (*out
 * NULL when absent), checked as how says.
 */
static void
get_blob(struct rd *d, const char *what, unsigned how, char **out,
	 size_t *outlen)
{
	uint32_t n = get_u32(d, what);
	const unsigned char *p;
	const char *why;

	*out = NULL;
	if (outlen)
		*outlen = 0;
	if (d->r < 0)
		return;
	if (n == ABSENT) {
		if (how & S_NEEDED)
			bad(d, what, "absent");
		return;
	}
	if (n > d->cap) {
		bad(d, what, "longer than the parser makes it");
		return;
	}
	if ((p = take(d, n, what)) == NULL)
		return;
	if ((how & S_TEXT) && (why = text_check(p, n, how)) != NULL) {
		bad(d, what, why);
		return;
	}
	if ((*out = malloc((size_t)n + 1)) == NULL) {
		no_memory(d);
		return;
	}
	memcpy(*out, p, n);
	(*out)[n] = '\0';
	if (outlen)
		*outlen = n;
}

static char *
get_str(struct rd *d, const char *what, unsigned how)
{
	char *s;

	get_blob(d, what, how | S_TEXT, &s, NULL);
	return s;
}

/* get_count - a count of entries of at least min bytes each, at most max. */
static size_t
get_count(struct rd *d, const char *what, size_t max, size_t min)
{
	uint32_t n = get_u32(d, what);

	if (d->r < 0)
		return 0;
	if (n > max) {
		bad(d, what, "more than the limit");
		return 0;
	}
	if (n > d->left / min) {
		bad(d, what, "cut short");
		return 0;
	}
	return n;
}

static void
get_list(struct rd *d, const char *what, size_t max, unsigned how,
	 struct inmsg_strlist *l)
{
	size_t n = get_count(d, what, max, MIN_STR);

	if (d->r < 0 || n == 0)
		return;
	if ((l->v = calloc(n, sizeof(*l->v))) == NULL) {
		no_memory(d);
		return;
	}
	l->n = n;
	for (size_t i = 0; i < n && d->r == 0; i++)
		l->v[i] = get_str(d, what, how | S_NEEDED);
}

/* get_limited - a u32 count that the message's limit bounds. */
static unsigned
get_limited(struct rd *d, const char *what, uint64_t max)
{
	uint32_t v = get_u32(d, what);

	if (d->r == 0 && v > max)
		bad(d, what, "over the limit");
	return v;
}

static void
get_attachments(struct rd *d, struct inmsg *m)
{
	size_t n = get_count(d, "attachments", m->limits.max_attachments,
			     MIN_ATTACHMENT);

	if (d->r < 0 || n == 0)
		return;
	if ((m->attachments = calloc(n, sizeof(*m->attachments))) == NULL) {
		no_memory(d);
		return;
	}
	m->n_attachments = n;
	for (size_t i = 0; i < n && d->r == 0; i++) {
		struct inmsg_attachment *a = &m->attachments[i];

		a->filename = get_str(d, "attachment filename", 0);
		if (d->r == 0 && a->filename != NULL &&
		    !rfc2231_filename_ok(a->filename, strlen(a->filename)))
			bad(d, "attachment filename", "not a plain file name");
		a->content_type = get_str(d, "attachment content type", S_LOWER | S_LINE);
		get_blob(d, "attachment data", 0, &a->data, &a->len);
	}
}

static void
get_dsn(struct rd *d, struct inmsg_dsn *dsn)
{
	size_t n;

	dsn->present = get_u8(d, "dsn present");
	dsn->original_envelope_id = get_str(d, "dsn envelope id", 0);
	dsn->reporting_mta = get_str(d, "dsn reporting mta", 0);
	n = get_count(d, "dsn recipients", INMSG_MAX_DSN_RCPTS, MIN_DSN_RCPT);
	if (d->r == 0 && n > 0) {
		if ((dsn->rcpts = calloc(n, sizeof(*dsn->rcpts))) == NULL) {
			no_memory(d);
			return;
		}
		dsn->n_rcpts = n;
	}
	for (size_t i = 0; i < n && d->r == 0; i++) {
		struct inmsg_dsn_rcpt *rc = &dsn->rcpts[i];

		rc->action = get_str(d, "dsn action", S_LOWER);
		rc->status = get_str(d, "dsn status", 0);
		rc->final_recipient = get_str(d, "dsn final recipient", S_LOWER);
		rc->original_recipient = get_str(d, "dsn original recipient", S_LOWER);
		rc->diagnostic_code = get_str(d, "dsn diagnostic code", 0);
	}
	dsn->orig_message_id = get_str(d, "dsn original message id", 0);
	dsn->orig_headers_present = get_u8(d, "dsn returned headers");
}

static void
get_arf(struct rd *d, struct inmsg_arf *a)
{
	/* each a report field, cleaned: at most DSN_MAX_VALUE bytes grown by
	 * U+FFFD (3 bytes for 1) */
	d->cap = 3 * DSN_MAX_VALUE;
	a->present = get_u8(d, "feedback report present");
	a->feedback_type = get_str(d, "feedback type", S_LOWER | S_LINE);
	a->user_agent = get_str(d, "feedback user agent", S_LINE);
	a->version = get_str(d, "feedback version", S_LINE);
	a->original_mail_from = get_str(d, "feedback original mail from", S_LOWER | S_LINE);
	a->original_rcpt_to = get_str(d, "feedback original rcpt to", S_LOWER | S_LINE);
	a->reported_domain = get_str(d, "feedback reported domain", S_LOWER | S_LINE);
	a->redacted = get_u8(d, "feedback redacted");
	a->orig_message_id = get_str(d, "feedback original message id", S_LINE);
	a->orig_return_path = get_str(d, "feedback original return path", S_LOWER | S_LINE);
	a->orig_headers_present = get_u8(d, "feedback reported headers");
	if (d->r == 0 && !a->present &&
	    (a->feedback_type || a->user_agent || a->version || a->original_mail_from ||
	     a->original_rcpt_to || a->reported_domain || a->redacted))
		bad(d, "feedback report", "fields without a report");
}

/*
 * content_within_limit - what was decoded (body, attachments, the PGP
 * payloads) adds up to no more than the decoded limit allows: the parser
 * counts every such byte, and adds at most a line break between the text
 * parts it joins.
 */
static void
content_within_limit(struct rd *d, const struct inmsg *m)
{
	uint64_t sum = (uint64_t)m->body_len + m->pgp_encrypted_len +
		       m->pgp_signed_len + m->pgp_signature_len;
	uint64_t max = (uint64_t)m->limits.max_decoded + 2u * m->limits.max_parts;

	for (size_t i = 0; i < m->n_attachments; i++)
		sum += m->attachments[i].len;
	if (d->r == 0 && sum > max)
		bad(d, "content", "more than the decoded limit");
}

static void
get_message(struct rd *d, struct inmsg *m)
{
	const struct inmsg_limits *lim = &m->limits;
	const unsigned char *magic = take(d, 4, "magic");
	const unsigned char *version = take(d, 1, "version");

	if (d->r == 0 && (memcmp(magic, MAGIC, 4) != 0 ||
			  *version != INMSGWIRE_VERSION))
		bad(d, "header", "not this version's format");
	/* What comes of the header block: no longer than it, decoded. */
	d->cap = INMSGWIRE_MAX_HEADER_STR;
	m->message_id = get_str(d, "message id", S_LINE);
	m->in_reply_to = get_str(d, "in-reply-to", S_LINE);
	get_list(d, "references", INMSGWIRE_MAX_REFERENCES, S_LINE, &m->references);
	m->from_addr = get_str(d, "from address", S_LOWER | S_LINE);
	m->from_name = get_str(d, "from name", S_LINE);
	m->from_count = get_u32(d, "from count");
	m->return_path = get_str(d, "return path", S_LOWER | S_LINE);
	get_list(d, "recipients", INMSG_MAX_RECIPIENTS, S_LOWER | S_LINE,
		 &m->recipients);
	m->subject = get_str(d, "subject", S_LINE);
	m->date = (int64_t)get_u64(d, "date");
	if (d->r == 0 && m->date < -1)
		bad(d, "date", "before the epoch");
	m->auto_submitted = get_str(d, "auto-submitted", S_LOWER | S_LINE);
	m->precedence = get_str(d, "precedence", S_LOWER | S_LINE);
	m->list_id = get_str(d, "list-id", S_LINE);
	m->flags = get_u32(d, "flags");
	if (d->r == 0 && (m->flags & ~INMSG_F_KNOWN) != 0)
		bad(d, "flags", "unknown bits");
	get_list(d, "authentication results", lim->max_headers, 0,
		 &m->auth_results);
	m->content_type = get_str(d, "content type", S_LOWER | S_NEEDED | S_LINE);
	m->header_count = get_limited(d, "header count", lim->max_headers);
	/* What comes of decoding: within the decoded total's limit. */
	d->cap = lim->max_decoded < UINT32_MAX ? lim->max_decoded : UINT32_MAX;
	get_blob(d, "body", S_TEXT | S_NEEDED, &m->body, &m->body_len);
	get_blob(d, "reply", S_TEXT, &m->reply, &m->reply_len);
	if (d->r == 0 && m->reply == NULL) {	/* the body itself */
		if ((m->reply = malloc(m->body_len + 1)) == NULL)
			no_memory(d);
		else {
			memcpy(m->reply, m->body, m->body_len + 1);
			m->reply_len = m->body_len;
		}
	} else if (d->r == 0 && m->reply_len > m->body_len) {
		bad(d, "reply", "longer than the body");
	} else if (d->r == 0 && m->reply_len == m->body_len &&
		   memcmp(m->reply, m->body, m->body_len) == 0) {
		/* one encoding per message: the body itself is sent absent */
		bad(d, "reply", "the body sent twice");
	}
	get_attachments(d, m);
	m->part_count = get_limited(d, "part count", lim->max_parts);
	m->depth = get_limited(d, "depth", lim->max_depth);
	m->decoded_total = get_u64(d, "decoded total");
	if (d->r == 0 && m->decoded_total > lim->max_decoded)
		bad(d, "decoded total", "over the limit");
	m->pgp = get_u32(d, "pgp");
	if (d->r == 0 && (m->pgp & ~(INMSG_PGP_ENCRYPTED | INMSG_PGP_SIGNED)) != 0)
		bad(d, "pgp", "unknown bits");
	get_blob(d, "pgp encrypted", 0, &m->pgp_encrypted, &m->pgp_encrypted_len);
	get_blob(d, "pgp signed", 0, &m->pgp_signed, &m->pgp_signed_len);
	get_blob(d, "pgp signature", 0, &m->pgp_signature, &m->pgp_signature_len);
	m->nested_crypto = get_limited(d, "nested crypto", lim->max_parts);
	content_within_limit(d, m);
	d->cap = INMSGWIRE_MAX_HEADER_STR;
	m->prot.present = get_u8(d, "protected headers present");
	m->prot.subject = get_str(d, "protected subject", S_LINE);
	get_list(d, "protected recipients", INMSG_MAX_RECIPIENTS, S_LOWER | S_LINE,
		 &m->prot.recipients);
	/* a delivery report is decoded content */
	d->cap = lim->max_decoded < UINT32_MAX ? lim->max_decoded : UINT32_MAX;
	get_dsn(d, &m->dsn);
	get_arf(d, &m->arf);
	if (d->r == 0 && d->left != 0)
		bad(d, "end", "bytes after the last field");
}

int
inmsgwire_decode(const void *data, size_t len, const struct inmsg_limits *lim,
		 struct inmsg **out, struct cp_error *err)
{
	struct rd d = { .p = data, .left = len, .r = 0, .err = err, .cap = 0 };
	struct inmsg *m;

	*out = NULL;
	if (data == NULL && len > 0)
		return cp_error_set(err, -EBADMSG, "parser's answer: no bytes");
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return cp_error_set(err, -ENOMEM, "parser's answer: out of memory");
	if (lim)
		m->limits = *lim;
	else
		inmsg_limits_default(&m->limits);
	get_message(&d, m);
	if (d.r < 0) {
		inmsg_free(m);
		return d.r;
	}
	*out = m;
	return 0;
}

/* ---- limits ---- */

int
inmsgwire_limits_encode(const struct inmsg_limits *lim, struct buf *out)
{
	struct wr w = { .b = out, .r = 0 };
	size_t start = out->len;

	put_u64(&w, lim->max_size);
	put_u64(&w, lim->max_depth);
	put_u64(&w, lim->max_parts);
	put_u64(&w, lim->max_headers);
	put_u64(&w, lim->max_decoded);
	put_u64(&w, lim->max_attachments);
	if (w.r < 0)
		buf_truncate(out, start);
	return w.r;
}

int
inmsgwire_limits_decode(const void *data, size_t len, struct inmsg_limits *lim)
{
	struct rd d = { .p = data, .left = len, .r = 0, .err = NULL };
	uint64_t v[6];

	if (data == NULL || len != INMSGWIRE_LIMITS_SIZE)
		return -EBADMSG;
	for (size_t i = 0; i < CP_ARRAY_SIZE(v); i++)
		v[i] = get_u64(&d, "limits");
	if (v[0] > SIZE_MAX || v[4] > SIZE_MAX || v[1] > UINT_MAX ||
	    v[2] > UINT_MAX || v[3] > UINT_MAX || v[5] > UINT_MAX)
		return -EBADMSG;
	lim->max_size = (size_t)v[0];
	lim->max_depth = (unsigned)v[1];
	lim->max_parts = (unsigned)v[2];
	lim->max_headers = (unsigned)v[3];
	lim->max_decoded = (size_t)v[4];
	lim->max_attachments = (unsigned)v[5];
	return 0;
}
