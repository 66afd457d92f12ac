/*
 * NAME
 *	inmsg - parse one inbound RFC 5322 message: limits and the MIME walk
 * DESCRIPTION
 *	See inmsg.h. libetpan does the MIME parsing and decoding; this file
 *	bounds it (a byte pre-scan before, a tree walk after) and copies out
 *	what the inbound path needs. The raw bytes are pre-scanned by
 *	mimescan.c, header facts taken by msghdr.c, text made UTF-8 by
 *	mailtext.c, HTML made text by html2text.c, file names read by
 *	rfc2231.c, delivery reports by dsn.c.
 *
 *	Nothing here logs: error reasons name limits and counts only.
 */
#include "inmsg.h"

#include <ctype.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "buf.h"
#include "arf.h"
#include "dsn.h"
#include "html2text.h"
#include "mailtext.h"
#include "mimescan.h"
#include "msghdr.h"
#include "rfc2231.h"
#include "trim.h"

struct walk {
	struct inmsg *m;
	struct cp_error *err;
	struct buf body;
	int have_plain;
	char *html;
	size_t html_len;
	struct mailmime *root;	/* the entity a signature or encryption must
				   cover to count: the message's body, or
				   the decrypted content's root */
	int top;		/* parsing the message, not decrypted content */
};

/* ---------------------------------------------------------------- */
/* Limits                                                            */
/* ---------------------------------------------------------------- */

static struct mailmime *
message_child(struct mailmime *mm)
{
	return mm->mm_type == MAILMIME_MESSAGE ?
		mm->mm_data.mm_message.mm_msg_mime : NULL;
}

/* check_tree - count entities and depth; depth of the body entity is 1. */
static int
check_tree(struct inmsg *m, struct mailmime *mm, unsigned depth,
	   struct cp_error *err)
{
	const struct inmsg_limits *lim = &m->limits;
	int r;

	if (mm == NULL)
		return 0;
	if (depth > lim->max_depth)
		return cp_error_set(err, -ELOOP,
			"message nesting depth exceeds %u", lim->max_depth);
	if (depth > m->depth)
		m->depth = depth;
	if (++m->part_count > lim->max_parts)
		return cp_error_set(err, -E2BIG,
			"message has more than %u MIME parts", lim->max_parts);
	if (mm->mm_type == MAILMIME_MULTIPLE &&
	    mm->mm_data.mm_multipart.mm_mp_list != NULL) {
		for (clistiter *it = clist_begin(mm->mm_data.mm_multipart.mm_mp_list);
		     it; it = clist_next(it))
			if ((r = check_tree(m, clist_content(it), depth + 1,
					    err)) < 0)
				return r;
	} else if (mm->mm_type == MAILMIME_MESSAGE) {
		return check_tree(m, message_child(mm), depth + 1, err);
	}
	return 0;
}

static int
account_decoded(struct walk *w, size_t n)
{
	struct inmsg *m = w->m;

	if (n > m->limits.max_decoded ||
	    m->decoded_total > m->limits.max_decoded - n)
		return cp_error_set(w->err, -EMSGSIZE,
			"decoded content exceeds %zu bytes",
			m->limits.max_decoded);
	m->decoded_total += n;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Content types and parameters                                      */
/* ---------------------------------------------------------------- */

static const char *
ct_type_name(const struct mailmime_content *ct)
{
	const struct mailmime_type *t;

	if (ct == NULL || (t = ct->ct_type) == NULL)
		return "text";
	if (t->tp_type == MAILMIME_TYPE_DISCRETE_TYPE && t->tp_data.tp_discrete_type) {
		switch (t->tp_data.tp_discrete_type->dt_type) {
		case MAILMIME_DISCRETE_TYPE_TEXT: return "text";
		case MAILMIME_DISCRETE_TYPE_IMAGE: return "image";
		case MAILMIME_DISCRETE_TYPE_AUDIO: return "audio";
		case MAILMIME_DISCRETE_TYPE_VIDEO: return "video";
		case MAILMIME_DISCRETE_TYPE_APPLICATION: return "application";
		case MAILMIME_DISCRETE_TYPE_EXTENSION:
			return t->tp_data.tp_discrete_type->dt_extension ?
				t->tp_data.tp_discrete_type->dt_extension : "x-unknown";
		default: return "x-unknown";
		}
	}
	if (t->tp_type == MAILMIME_TYPE_COMPOSITE_TYPE && t->tp_data.tp_composite_type) {
		switch (t->tp_data.tp_composite_type->ct_type) {
		case MAILMIME_COMPOSITE_TYPE_MESSAGE: return "message";
		case MAILMIME_COMPOSITE_TYPE_MULTIPART: return "multipart";
		case MAILMIME_COMPOSITE_TYPE_EXTENSION:
			return t->tp_data.tp_composite_type->ct_token ?
				t->tp_data.tp_composite_type->ct_token : "x-unknown";
		default: return "x-unknown";
		}
	}
	return "x-unknown";
}

static const char *
ct_subtype(const struct mailmime_content *ct)
{
	return ct && ct->ct_subtype ? ct->ct_subtype : "plain";
}

static int
ct_is(const struct mailmime_content *ct, const char *type, const char *sub)
{
	return strcasecmp(ct_type_name(ct), type) == 0 &&
	       (sub == NULL || strcasecmp(ct_subtype(ct), sub) == 0);
}

static char *
ct_string(const struct mailmime_content *ct)
{
	struct buf b = BUF_INIT;
	char *s;

	if (buf_printf(&b, "%s/%s", ct_type_name(ct), ct_subtype(ct)) < 0) {
		buf_free(&b);
		return NULL;
	}
	s = mailtext_header_dup(b.data, b.len);
	buf_free(&b);
	if (s != NULL)
		mailtext_lower(s);
	return s;
}

static const char *
ct_param(const struct mailmime_content *ct, const char *name)
{
	if (ct == NULL || ct->ct_parameters == NULL)
		return NULL;
	for (clistiter *it = clist_begin(ct->ct_parameters); it; it = clist_next(it)) {
		const struct mailmime_parameter *p = clist_content(it);

		if (p && p->pa_name && p->pa_value &&
		    strcasecmp(p->pa_name, name) == 0)
			return p->pa_value;
	}
	return NULL;
}

static const struct mailmime_disposition *
part_disposition(const struct mailmime *mm)
{
	if (mm->mm_mime_fields == NULL || mm->mm_mime_fields->fld_list == NULL)
		return NULL;
	for (clistiter *it = clist_begin(mm->mm_mime_fields->fld_list); it;
	     it = clist_next(it)) {
		const struct mailmime_field *f = clist_content(it);

		if (f && f->fld_type == MAILMIME_FIELD_DISPOSITION)
			return f->fld_data.fld_disposition;
	}
	return NULL;
}

static int
is_attachment_disposition(const struct mailmime *mm)
{
	const struct mailmime_disposition *d = part_disposition(mm);

	return d && d->dsp_type &&
	       d->dsp_type->dsp_type == MAILMIME_DISPOSITION_TYPE_ATTACHMENT;
}

/* collect_params - Content-Disposition and Content-Type parameters. */
static size_t
collect_params(const struct mailmime *mm, struct rfc2231_param *out,
	       size_t max)
{
	const struct mailmime_disposition *d = part_disposition(mm);
	size_t n = 0;

	if (d && d->dsp_parms) {
		for (clistiter *it = clist_begin(d->dsp_parms); it && n < max;
		     it = clist_next(it)) {
			const struct mailmime_disposition_parm *p = clist_content(it);

			if (p == NULL)
				continue;
			if (p->pa_type == MAILMIME_DISPOSITION_PARM_FILENAME &&
			    p->pa_data.pa_filename)
				out[n++] = (struct rfc2231_param){ "filename",
					p->pa_data.pa_filename };
			else if (p->pa_type == MAILMIME_DISPOSITION_PARM_PARAMETER &&
				 p->pa_data.pa_parameter &&
				 p->pa_data.pa_parameter->pa_name &&
				 p->pa_data.pa_parameter->pa_value)
				out[n++] = (struct rfc2231_param){
					p->pa_data.pa_parameter->pa_name,
					p->pa_data.pa_parameter->pa_value };
		}
	}
	if (mm->mm_content_type && mm->mm_content_type->ct_parameters) {
		for (clistiter *it = clist_begin(mm->mm_content_type->ct_parameters);
		     it && n < max; it = clist_next(it)) {
			const struct mailmime_parameter *p = clist_content(it);

			if (p && p->pa_name && p->pa_value)
				out[n++] = (struct rfc2231_param){ p->pa_name, p->pa_value };
		}
	}
	return n;
}

/* ---------------------------------------------------------------- */
/* Decoding                                                          */
/* ---------------------------------------------------------------- */

/* part_filename - *out = UTF-8 file name or NULL; -ENOMEM only. */
static int
part_filename(const struct mailmime *mm, char **out)
{
	struct rfc2231_param p[64];

	return rfc2231_filename(p, collect_params(mm, p, CP_ARRAY_SIZE(p)), out);
}

/* decode_data - transfer-decode one body (malloc'd, NUL-terminated). */
static int
decode_data(struct walk *w, const struct mailmime_data *d, char **out,
	    size_t *outlen)
{
	const char *src;
	size_t srclen;
	char *res = NULL;
	size_t reslen = 0, idx = 0;
	char *copy;
	int r;

	*out = NULL;
	*outlen = 0;
	if (d == NULL || d->dt_type != MAILMIME_DATA_TEXT) {
		src = "";
		srclen = 0;
	} else {
		src = d->dt_data.dt_text.dt_data ? d->dt_data.dt_text.dt_data : "";
		srclen = d->dt_data.dt_text.dt_data ? d->dt_data.dt_text.dt_length : 0;
	}
	/* Decoding never grows base64 or quoted-printable. */
	if ((r = account_decoded(w, srclen)) < 0)
		return r;
	if (d && d->dt_encoded && srclen > 0 &&
	    (d->dt_encoding == MAILMIME_MECHANISM_BASE64 ||
	     d->dt_encoding == MAILMIME_MECHANISM_QUOTED_PRINTABLE)) {
		if (mailmime_part_parse(src, srclen, &idx, d->dt_encoding, &res,
					&reslen) != MAILIMF_NO_ERROR || res == NULL) {
			/* undecodable: keep the bytes as they are */
			res = NULL;
		}
	}
	if (res != NULL) {
		copy = malloc(reslen + 1);
		if (copy != NULL) {
			memcpy(copy, res, reslen);
			copy[reslen] = '\0';
		}
		mmap_string_unref(res);
		srclen = reslen;
	} else {
		copy = malloc(srclen + 1);
		if (copy != NULL) {
			memcpy(copy, src, srclen);
			copy[srclen] = '\0';
		}
	}
	if (copy == NULL)
		return -ENOMEM;
	*out = copy;
	*outlen = srclen;
	return 0;
}

static const char *
part_charset(const struct mailmime *mm)
{
	return ct_param(mm->mm_content_type, "charset");
}

/* decode_text - transfer-decode and convert to UTF-8 into out. */
static int
decode_text(struct walk *w, const struct mailmime *mm, struct buf *out)
{
	_cleanup_free_ char *raw = NULL;
	size_t rawlen, before = out->len;
	int r;

	if ((r = decode_data(w, mm->mm_data.mm_single, &raw, &rawlen)) < 0)
		return r;
	if ((r = mailtext_to_utf8(part_charset(mm), raw, rawlen, out)) < 0)
		return r;
	/* charset conversion may grow the text: count the growth */
	if (out->len - before > rawlen)
		return account_decoded(w, out->len - before - rawlen);
	return 0;
}

/* ---------------------------------------------------------------- */
/* Tree walk                                                         */
/* ---------------------------------------------------------------- */

static int walk_part(struct walk *w, struct mailmime *mm);

/*
 * attachment_new - one more attachment for mm, with its file name and
 * content type, its data still to be filled: *out, or an error (the
 * attachment limit, -ENOMEM).
 */
static int
attachment_new(struct walk *w, const struct mailmime *mm,
	       struct inmsg_attachment **out)
{
	struct inmsg *m = w->m;
	struct inmsg_attachment *na, *a;
	int r;

	if (m->n_attachments >= m->limits.max_attachments)
		return cp_error_set(w->err, -E2BIG,
			"message has more than %u attachments",
			m->limits.max_attachments);
	na = realloc(m->attachments, (m->n_attachments + 1) * sizeof(*na));
	if (na == NULL)
		return -ENOMEM;
	m->attachments = na;
	a = &na[m->n_attachments];
	memset(a, 0, sizeof(*a));
	m->n_attachments++;
	if ((r = part_filename(mm, &a->filename)) < 0)
		return r;
	if ((a->content_type = ct_string(mm->mm_content_type)) == NULL)
		return -ENOMEM;
	*out = a;
	return 0;
}

static int
add_attachment(struct walk *w, const struct mailmime *mm,
	       const struct mailmime_data *d)
{
	struct inmsg_attachment *a;
	int r = attachment_new(w, mm, &a);

	return r < 0 ? r : decode_data(w, d, &a->data, &a->len);
}

/* crlf_dup - bytes with every line end made CRLF (RFC 3156 canonical form). */
static int
crlf_dup(struct walk *w, const char *s, size_t len, char **out, size_t *outlen)
{
	struct buf b = BUF_INIT;
	int r;

	if ((r = account_decoded(w, len)) < 0)
		return r;
	if ((r = buf_reserve(&b, len + len / 16 + 1)) < 0)
		return r;
	for (size_t i = 0; i < len && r >= 0; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			r = buf_append(&b, "\r\n", 2);
		else if (s[i] == '\r' && (i + 1 == len || s[i + 1] != '\n'))
			r = buf_append(&b, "\r\n", 2);
		else
			r = buf_putc(&b, s[i]);
	}
	if (r >= 0)
		r = buf_append(&b, "", 0);
	if (r < 0) {
		buf_free(&b);
		return r;
	}
	*out = buf_steal(&b, outlen);
	return 0;
}

/*
 * add_nested - a signed or encrypted entity below the root: kept whole as
 * an attachment (its headers and body as they came), never merged into
 * the body, decrypted or verified. A signature counts only over the
 * whole message (RFC 3156; what mail clients do since "Johnny, You Are
 * Fired"), so text beside it must not borrow its trust.
 */
static int
add_nested(struct walk *w, const struct mailmime *mm)
{
	struct inmsg_attachment *a;
	int r;

	w->m->nested_crypto++;
	if ((r = attachment_new(w, mm, &a)) < 0)
		return r;
	if ((r = account_decoded(w, mm->mm_length)) < 0)
		return r;
	a->data = malloc(mm->mm_length + 1);
	if (a->data == NULL)
		return -ENOMEM;
	if (mm->mm_mime_start != NULL)
		memcpy(a->data, mm->mm_mime_start, mm->mm_length);
	a->len = mm->mm_mime_start != NULL ? mm->mm_length : 0;
	a->data[a->len] = '\0';
	return 0;
}

/*
 * take_protected - the protected headers of the entity a signature or the
 * encryption covers (raw[0..len), its first header line onwards), when
 * its Content-Type says protected-headers="v1" (msghdr_take_protected).
 */
static int
take_protected(struct inmsg *m, const struct mailmime_content *ct,
	       const char *raw, size_t len)
{
	const char *v = ct ? ct_param(ct, "protected-headers") : NULL;

	if (v == NULL || strcasecmp(v, "v1") != 0 || raw == NULL)
		return 0;
	return msghdr_take_protected(m, raw, len);
}

static clistiter *
mp_first(struct mailmime *mm)
{
	return mm->mm_data.mm_multipart.mm_mp_list ?
		clist_begin(mm->mm_data.mm_multipart.mm_mp_list) : NULL;
}

static int
walk_encrypted(struct walk *w, struct mailmime *mm)
{
	struct inmsg *m = w->m;
	int r;

	m->pgp |= INMSG_PGP_ENCRYPTED;
	for (clistiter *it = mp_first(mm); it; it = clist_next(it)) {
		struct mailmime *c = clist_content(it);

		if (c && c->mm_type == MAILMIME_SINGLE &&
		    ct_is(c->mm_content_type, "application", "octet-stream") &&
		    m->pgp_encrypted == NULL) {
			r = decode_data(w, c->mm_data.mm_single,
					&m->pgp_encrypted, &m->pgp_encrypted_len);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * walk_signed - the root multipart/signed: its first part is the message
 * (pgp_signed holds its exact bytes), its second the signature. Anything
 * after those two is outside the signature and not taken.
 */
static int
walk_signed(struct walk *w, struct mailmime *mm)
{
	struct inmsg *m = w->m;
	clistiter *it = mp_first(mm);
	struct mailmime *content, *sig;
	int r;

	content = it ? clist_content(it) : NULL;
	it = it ? clist_next(it) : NULL;
	sig = it ? clist_content(it) : NULL;
	if (content == NULL || sig == NULL || sig->mm_type != MAILMIME_SINGLE ||
	    !ct_is(sig->mm_content_type, "application", "pgp-signature") ||
	    m->pgp_signed != NULL) {
		/* not a usable signature: treat as multipart/mixed */
		for (it = mp_first(mm); it; it = clist_next(it))
			if ((r = walk_part(w, clist_content(it))) < 0)
				return r;
		return 0;
	}
	m->pgp |= INMSG_PGP_SIGNED;
	if (content->mm_mime_start != NULL &&
	    (r = crlf_dup(w, content->mm_mime_start, content->mm_length,
			  &m->pgp_signed, &m->pgp_signed_len)) < 0)
		return r;
	if ((r = decode_data(w, sig->mm_data.mm_single, &m->pgp_signature,
			     &m->pgp_signature_len)) < 0)
		return r;
	if ((r = take_protected(m, content->mm_content_type, content->mm_mime_start,
				content->mm_length)) < 0)
		return r;
	/* Nothing inside the signed part is a second signature or an
	 * encryption to believe: below the root, both are attachments. */
	w->root = NULL;
	return walk_part(w, content);
}

/* The parts of a report: its fields (a text part), or the header block
 * of the message it is about (bytes); of a delivery or feedback report. */
enum report_part { RP_DSN_FIELDS, RP_DSN_RETURNED, RP_ARF_FIELDS, RP_ARF_REPORTED };

static int
walk_report_part(struct walk *w, struct mailmime *mm, enum report_part p)
{
	_cleanup_buf_ struct buf text = BUF_INIT;
	_cleanup_free_ char *raw = NULL;
	struct inmsg *m = w->m;
	size_t rawlen;
	int r;

	if (p == RP_DSN_FIELDS || p == RP_ARF_FIELDS) {
		/* the first report part that says something counts */
		if ((p == RP_DSN_FIELDS ? m->dsn.n_rcpts > 0 : m->arf.present) ||
		    mm->mm_type != MAILMIME_SINGLE)
			return 0;
		if ((r = decode_text(w, mm, &text)) < 0)
			return r;
		return p == RP_DSN_FIELDS ?
		       dsn_parse(&m->dsn, text.data ? text.data : "", text.len) :
		       arf_parse(&m->arf, text.data ? text.data : "", text.len);
	}
	/* the first returned or reported message stays */
	if (p == RP_DSN_RETURNED && m->dsn.orig_message_id != NULL)
		return dsn_take_returned_headers(&m->dsn, NULL, 0);
	if (p == RP_ARF_REPORTED && m->arf.orig_headers_present)
		return 0;
	if ((r = decode_data(w, mm->mm_body, &raw, &rawlen)) < 0)
		return r;
	return p == RP_DSN_RETURNED ? dsn_take_returned_headers(&m->dsn, raw, rawlen) :
	       arf_take_reported_headers(&m->arf, raw, rawlen);
}

static int
is_reported_message(const struct mailmime_content *ct)
{
	return ct_is(ct, "message", "rfc822") || ct_is(ct, "text", "rfc822-headers") ||
	       ct_is(ct, "message", "global") || ct_is(ct, "message", "global-headers");
}

static int
walk_report(struct walk *w, struct mailmime *mm)
{
	const char *rt = ct_param(mm->mm_content_type, "report-type");
	/* A feedback report counts only as the message itself: not one
	 * attached to, or encrypted in, something else. */
	int arf = w->top && mm == w->root && rt &&
		  strcasecmp(rt, "feedback-report") == 0;
	int r;

	for (clistiter *it = mp_first(mm); it; it = clist_next(it)) {
		struct mailmime *c = clist_content(it);

		if (c == NULL)
			continue;
		if (arf && ct_is(c->mm_content_type, "message", "feedback-report"))
			r = walk_report_part(w, c, RP_ARF_FIELDS);
		else if (arf && is_reported_message(c->mm_content_type))
			r = walk_report_part(w, c, RP_ARF_REPORTED);
		else if (ct_is(c->mm_content_type, "message", "delivery-status") ||
		    ct_is(c->mm_content_type, "message", "global-delivery-status"))
			r = walk_report_part(w, c, RP_DSN_FIELDS);
		else if (rt && strcasecmp(rt, "delivery-status") == 0 &&
			 is_reported_message(c->mm_content_type))
			r = walk_report_part(w, c, RP_DSN_RETURNED);
		else
			r = walk_part(w, c);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
walk_alternative(struct walk *w, struct mailmime *mm)
{
	struct mailmime *pick = NULL;

	/* Prefer text/plain, then a nested multipart, then anything. */
	for (clistiter *it = mp_first(mm); it && !pick; it = clist_next(it)) {
		struct mailmime *c = clist_content(it);

		if (c && c->mm_type == MAILMIME_SINGLE &&
		    ct_is(c->mm_content_type, "text", "plain"))
			pick = c;
	}
	for (clistiter *it = mp_first(mm); it && !pick; it = clist_next(it)) {
		struct mailmime *c = clist_content(it);

		if (c && c->mm_type == MAILMIME_MULTIPLE)
			pick = c;
	}
	if (pick == NULL) {
		clistiter *it = mp_first(mm);

		pick = it ? clist_content(it) : NULL;
	}
	return pick ? walk_part(w, pick) : 0;
}

static int
walk_single(struct walk *w, struct mailmime *mm)
{
	const struct mailmime_content *ct = mm->mm_content_type;
	int r;

	if (!is_attachment_disposition(mm) && ct_is(ct, "text", "plain")) {
		_cleanup_free_ char *fn = NULL;

		if ((r = part_filename(mm, &fn)) < 0)
			return r;
		if (fn == NULL) {
			if (w->have_plain && w->body.len > 0 &&
			    (r = buf_putc(&w->body, '\n')) < 0)
				return r;
			w->have_plain = 1;
			return decode_text(w, mm, &w->body);
		}
	}
	if (!is_attachment_disposition(mm) && ct_is(ct, "text", "html") &&
	    w->html == NULL) {
		struct buf h = BUF_INIT;

		if ((r = decode_text(w, mm, &h)) < 0) {
			buf_free(&h);
			return r;
		}
		w->html = buf_steal(&h, &w->html_len);
		return 0;
	}
	if (ct_is(ct, "message", "delivery-status") ||
	    ct_is(ct, "message", "global-delivery-status"))
		return walk_report_part(w, mm, RP_DSN_FIELDS);
	return add_attachment(w, mm, mm->mm_data.mm_single);
}

static int
walk_part(struct walk *w, struct mailmime *mm)
{
	const struct mailmime_content *ct;
	int r;

	if (mm == NULL)
		return 0;
	ct = mm->mm_content_type;
	switch (mm->mm_type) {
	case MAILMIME_SINGLE:
		return walk_single(w, mm);
	case MAILMIME_MESSAGE:
		/* an attached message is kept whole, not merged */
		return add_attachment(w, mm, mm->mm_body);
	case MAILMIME_MULTIPLE:
		break;
	default:
		return 0;
	}
	if (ct_is(ct, "multipart", "encrypted")) {
		const char *proto = ct_param(ct, "protocol");

		/* Only the message itself is decrypted: not a part of it,
		 * nor something encrypted again inside what was. */
		if (mm != w->root || !w->top)
			return add_nested(w, mm);
		if (proto && strcasecmp(proto, "application/pgp-encrypted") == 0)
			return walk_encrypted(w, mm);
	} else if (ct_is(ct, "multipart", "signed")) {
		const char *proto = ct_param(ct, "protocol");

		if (mm != w->root)
			return add_nested(w, mm);
		if (proto && strcasecmp(proto, "application/pgp-signature") == 0)
			return walk_signed(w, mm);
	} else if (ct_is(ct, "multipart", "alternative")) {
		return walk_alternative(w, mm);
	} else if (ct_is(ct, "multipart", "report")) {
		return walk_report(w, mm);
	}
	for (clistiter *it = mp_first(mm); it; it = clist_next(it))
		if ((r = walk_part(w, clist_content(it))) < 0)
			return r;
	return 0;
}

/* finish_body - the chosen text, or the HTML turned into text, into m. */
static int
finish_body(struct walk *w)
{
	struct inmsg *m = w->m;
	struct buf out = BUF_INIT;
	int r;

	if (m->body != NULL && m->body_len > 0)
		goto done;		/* reparse keeps the first body */
	if (w->have_plain) {
		r = buf_append(&out, w->body.data ? w->body.data : "", w->body.len);
	} else if (w->html != NULL) {
		r = html2text(w->html, w->html_len, &out);
		m->flags |= INMSG_F_BODY_FROM_HTML;
	} else {
		r = buf_append(&out, "", 0);
	}
	if (r < 0) {
		buf_free(&out);
		return r;
	}
	free(m->body);
	m->body = buf_steal(&out, &m->body_len);
done:
	return 0;
}

/*
 * set_reply - m->reply from m->body (trim_reply, in the parser's process:
 * the hostile text is cut behind the wall). A body trim_reply refuses
 * (too large, too many lines) is its own reply; -ENOMEM only.
 */
static int
set_reply(struct inmsg *m)
{
	char *reply = NULL;
	int r;

	free(m->reply);
	m->reply = NULL;
	m->reply_len = 0;
	r = trim_reply(m->body ? m->body : "", m->body_len, &reply, NULL, NULL);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || reply == NULL || strlen(reply) > m->body_len) {
		free(reply);
		reply = strdup(m->body ? m->body : "");
		if (reply == NULL)
			return -ENOMEM;
	}
	m->reply = reply;
	m->reply_len = strlen(reply);
	return 0;
}

static void
walk_release(struct walk *w)
{
	buf_free(&w->body);
	free(w->html);
	w->html = NULL;
}

/* parse_entity - libetpan parse + limits + walk; the root of one parse. */
static int
parse_entity(struct inmsg *m, const char *raw, size_t len, int top,
	     struct cp_error *err)
{
	struct mailmime *root = NULL;
	struct walk w = { .m = m, .err = err, .body = BUF_INIT };
	size_t idx = 0;
	int r;

	if (len > m->limits.max_size)
		return cp_error_set(err, -EMSGSIZE,
			"message size %zu exceeds %zu bytes", len,
			m->limits.max_size);
	if ((r = mimescan_check(raw, len, &m->limits, err)) < 0)
		return r;
	if (top && len >= 5 && memcmp(raw, "From ", 5) == 0) {
		/* an mbox "From " separator line, as in saved files */
		const char *nl = memchr(raw, '\n', len);

		if (nl != NULL) {
			len -= (size_t)(nl + 1 - raw);
			raw = nl + 1;
		}
	}
	if (top && (m->header_count = mimescan_header_fields(raw, len)) >
	    m->limits.max_headers)
		return cp_error_set(err, -E2BIG,
			"message has more than %u header fields",
			m->limits.max_headers);
	if (top && mimescan_header_len(raw, len) > INMSG_MAX_HEADER_BYTES)
		return cp_error_set(err, -E2BIG,
			"message header exceeds %u bytes", INMSG_MAX_HEADER_BYTES);
	r = mailmime_parse(raw, len, &idx, &root);
	if (r == MAILIMF_ERROR_MEMORY)
		return cp_error_set(err, -ENOMEM, "out of memory parsing MIME");
	if (r != MAILIMF_NO_ERROR || root == NULL)
		return cp_error_set(err, -EBADMSG,
			"MIME structure could not be parsed (libetpan %d)", r);
	if ((r = check_tree(m, message_child(root), 1, err)) < 0)
		goto out;
	if (top) {
		if ((r = msghdr_take(m, root->mm_data.mm_message.mm_fields)) < 0)
			goto out;
		if (message_child(root) != NULL) {
			m->content_type = ct_string(message_child(root)->mm_content_type);
		} else {
			m->content_type = strdup("text/plain");
		}
		if (m->content_type == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	w.root = message_child(root);
	w.top = top;
	if ((r = walk_part(&w, w.root)) < 0)
		goto out;
	/* Decrypted content's own protected headers, when it is not signed
	 * (walk_signed took the signed part's first). */
	if (!top && w.root != NULL &&
	    (r = take_protected(m, w.root->mm_content_type, raw, len)) < 0)
		goto out;
	r = finish_body(&w);
	if (r == 0)
		r = set_reply(m);
out:
	walk_release(&w);
	mailmime_free(root);
	if (r == -ENOMEM)
		cp_error_set(err, -ENOMEM, "out of memory parsing message");
	return r;
}

/* ---------------------------------------------------------------- */
/* Public                                                            */
/* ---------------------------------------------------------------- */

void
inmsg_limits_default(struct inmsg_limits *lim)
{
	lim->max_size = INMSG_MAX_SIZE_DEFAULT;
	lim->max_depth = INMSG_MAX_DEPTH_DEFAULT;
	lim->max_parts = INMSG_MAX_PARTS_DEFAULT;
	lim->max_headers = INMSG_MAX_HEADERS_DEFAULT;
	lim->max_decoded = INMSG_MAX_DECODED_DEFAULT;
	lim->max_attachments = INMSG_MAX_ATTACHMENTS_DEFAULT;
}

int
inmsg_parse(const char *raw, size_t len, const struct inmsg_limits *lim,
	    struct inmsg **out, struct cp_error *err)
{
	struct inmsg *m;
	int r;

	*out = NULL;
	cp_error_clear(err);
	if (raw == NULL && len > 0)
		return cp_error_set(err, -EINVAL, "no message bytes");
	if (raw == NULL)
		raw = "";
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return cp_error_set(err, -ENOMEM, "out of memory");
	if (lim)
		m->limits = *lim;
	else
		inmsg_limits_default(&m->limits);
	m->date = -1;
	r = parse_entity(m, raw, len, 1, err);
	if (r < 0) {
		inmsg_free(m);
		return r;
	}
	*out = m;
	return 0;
}

int
inmsg_reparse_inner(struct inmsg *m, const char *raw, size_t len,
		    struct cp_error *err)
{
	cp_error_clear(err);
	if (m == NULL || (raw == NULL && len > 0))
		return cp_error_set(err, -EINVAL, "no message or bytes");
	return parse_entity(m, raw ? raw : "", len, 0, err);
}

/* content_free - what inmsg_forget_content drops, freed and zeroed. */
static void
content_free(struct inmsg *m)
{
	free(m->body);
	free(m->reply);
	for (size_t i = 0; i < m->n_attachments; i++) {
		free(m->attachments[i].filename);
		free(m->attachments[i].content_type);
		free(m->attachments[i].data);
	}
	free(m->attachments);
	free(m->prot.subject);
	msghdr_strlist_free(&m->prot.recipients);
	free(m->pgp_signed);
	free(m->pgp_signature);
	m->body = m->reply = NULL;
	m->body_len = m->reply_len = 0;
	m->attachments = NULL;
	m->n_attachments = 0;
	memset(&m->prot, 0, sizeof(m->prot));
	m->pgp_signed = m->pgp_signature = NULL;
	m->pgp_signed_len = m->pgp_signature_len = 0;
}

int
inmsg_forget_content(struct inmsg *m)
{
	content_free(m);
	m->decoded_total = 0;
	m->part_count = 0;
	m->nested_crypto = 0;
	m->flags &= ~(unsigned)INMSG_F_BODY_FROM_HTML;
	m->pgp &= ~(unsigned)INMSG_PGP_SIGNED;
	m->body = strdup("");
	m->reply = strdup("");
	return m->body != NULL && m->reply != NULL ? 0 : -ENOMEM;
}

void
inmsg_free(struct inmsg *m)
{
	if (m == NULL)
		return;
	free(m->message_id);
	free(m->in_reply_to);
	msghdr_strlist_free(&m->references);
	free(m->from_addr);
	free(m->from_name);
	free(m->return_path);
	msghdr_strlist_free(&m->recipients);
	free(m->subject);
	free(m->auto_submitted);
	free(m->precedence);
	free(m->list_id);
	msghdr_strlist_free(&m->auth_results);
	free(m->content_type);
	content_free(m);
	free(m->pgp_encrypted);
	dsn_free(&m->dsn);
	arf_free(&m->arf);
	free(m);
}
