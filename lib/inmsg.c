/*
 * NAME
 *	inmsg - parse one inbound RFC 5322 message: limits and the MIME walk
 * DESCRIPTION
 *	See inmsg.h. libetpan does the MIME parsing and decoding; this file
 *	bounds it (a byte pre-scan before, a tree walk after) and copies out
 *	what the inbound path needs. Text is made UTF-8 by mailtext.c, HTML
 *	text by html2text.c, file names by rfc2231.c, delivery reports read
 *	by dsn.c.
 *
 *	Nothing here logs: error reasons name limits and counts only.
 */
#include "inmsg.h"

#include <ctype.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "buf.h"
#include "dsn.h"
#include "html2text.h"
#include "mailtext.h"
#include "rfc2231.h"

/* The pre-scan refuses messages libetpan would recurse or allocate too
 * much for; these caps hold whatever limits the caller configured. */
#define PRESCAN_MAX_CONTENT_TYPES	1024u
#define PRESCAN_MIN_DASH_LINES		4096u

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
/* Small string helpers                                              */
/* ---------------------------------------------------------------- */

static void
strlist_free(struct inmsg_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* strlist_take - append s (taking ownership; freed on failure). */
static int
strlist_take(struct inmsg_strlist *l, char *s)
{
	char **nv;

	if (s == NULL)
		return -ENOMEM;
	nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (nv == NULL) {
		free(s);
		return -ENOMEM;
	}
	l->v = nv;
	l->v[l->n++] = s;
	return 0;
}

static int
strlist_has(const struct inmsg_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Header                                                            */
/* ---------------------------------------------------------------- */

static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int64_t
date_to_epoch(const struct mailimf_date_time *d)
{
	int64_t t;
	int zone, zh, zm;

	if (d == NULL || d->dt_year < 1900 || d->dt_year > 9999 ||
	    d->dt_month < 1 || d->dt_month > 12 || d->dt_day < 1 ||
	    d->dt_day > 31 || d->dt_hour < 0 || d->dt_hour > 23 ||
	    d->dt_min < 0 || d->dt_min > 59 || d->dt_sec < 0 ||
	    d->dt_sec > 60 || d->dt_zone < -9959 || d->dt_zone > 9959)
		return -1;
	t = days_from_civil(d->dt_year, (unsigned)d->dt_month,
			    (unsigned)d->dt_day) * 86400 +
	    d->dt_hour * 3600 + d->dt_min * 60 + d->dt_sec;
	zone = d->dt_zone < 0 ? -d->dt_zone : d->dt_zone;
	zh = zone / 100;
	zm = zone % 100;
	t -= (d->dt_zone < 0 ? -1 : 1) * (int64_t)(zh * 3600 + zm * 60);
	return t < 0 ? -1 : t;
}

/*
 * add_recipient - addr, lower-cased, into list l unless already there or
 * the list holds INMSG_MAX_RECIPIENTS (the check for duplicates walks the
 * list: a To of a million addresses must not cost a million squared).
 */
static int
add_recipient(struct inmsg_strlist *l, const char *addr)
{
	char *s;

	if (l->n >= INMSG_MAX_RECIPIENTS)
		return 0;
	if ((s = mailtext_addr_dup(addr)) == NULL)
		return -ENOMEM;
	if (*s == '\0' || strlist_has(l, s)) {
		free(s);
		return 0;
	}
	return strlist_take(l, s);
}

static int
add_mailbox_list(struct inmsg_strlist *to, const struct mailimf_mailbox_list *l)
{
	if (l == NULL || l->mb_list == NULL)
		return 0;
	for (clistiter *it = clist_begin(l->mb_list); it; it = clist_next(it)) {
		const struct mailimf_mailbox *mb = clist_content(it);
		int r;

		if (mb == NULL || mb->mb_addr_spec == NULL)
			continue;
		if ((r = add_recipient(to, mb->mb_addr_spec)) < 0)
			return r;
	}
	return 0;
}

static int
add_address_list(struct inmsg_strlist *to, const struct mailimf_address_list *l)
{
	if (l == NULL || l->ad_list == NULL)
		return 0;
	for (clistiter *it = clist_begin(l->ad_list); it; it = clist_next(it)) {
		const struct mailimf_address *a = clist_content(it);
		int r = 0;

		if (a == NULL)
			continue;
		if (a->ad_type == MAILIMF_ADDRESS_MAILBOX &&
		    a->ad_data.ad_mailbox != NULL &&
		    a->ad_data.ad_mailbox->mb_addr_spec != NULL)
			r = add_recipient(to, a->ad_data.ad_mailbox->mb_addr_spec);
		else if (a->ad_type == MAILIMF_ADDRESS_GROUP &&
			 a->ad_data.ad_group != NULL)
			r = add_mailbox_list(to, a->ad_data.ad_group->grp_mb_list);
		if (r < 0)
			return r;
	}
	return 0;
}

/* add_raw_addresses - Delivered-To / X-Original-To: one address each. */
static int
add_raw_addresses(struct inmsg *m, const char *value)
{
	struct mailimf_address_list *al = NULL;
	size_t idx = 0;
	int r;

	if (mailimf_address_list_parse(value, strlen(value), &idx, &al) ==
	    MAILIMF_NO_ERROR && al != NULL) {
		r = add_address_list(&m->recipients, al);
		mailimf_address_list_free(al);
		return r;
	}
	return add_recipient(&m->recipients, value);
}

static int
set_once(char **slot, char *value)
{
	if (value == NULL)
		return -ENOMEM;
	if (*slot != NULL) {
		free(value);
		return 0;
	}
	*slot = value;
	return 0;
}

/*
 * suppresses_autoreply - whether an X-Auto-Response-Suppress value (a
 * comma-separated list, Microsoft's) names All, AutoReply or OOF, in
 * any case: the values that ask for no automatic reply. "None", DR,
 * NDR, RN, NRN alone ask for nothing carepost sends.
 */
static int
suppresses_autoreply(const char *v)
{
	static const char *const names[] = { "all", "autoreply", "oof" };

	while (*v) {
		size_t n = strcspn(v, ","), a = 0, b = n;

		while (a < b && isspace((unsigned char)v[a]))
			a++;
		while (b > a && isspace((unsigned char)v[b - 1]))
			b--;
		for (size_t i = 0; i < CP_ARRAY_SIZE(names); i++)
			if (b - a == strlen(names[i]) &&
			    strncasecmp(v + a, names[i], b - a) == 0)
				return 1;
		v += n;
		if (*v == ',')
			v++;
	}
	return 0;
}

static int
take_optional_field(struct inmsg *m, const struct mailimf_optional_field *of)
{
	const char *n = of->fld_name, *v = of->fld_value;

	if (n == NULL || v == NULL)
		return 0;
	if (strcasecmp(n, "From") == 0) {	/* one libetpan could not read */
		m->from_count++;
		return 0;
	}
	if (strcasecmp(n, "Auto-Submitted") == 0)
		return set_once(&m->auto_submitted, mailtext_first_token_dup(v));
	if (strcasecmp(n, "Precedence") == 0)
		return set_once(&m->precedence, mailtext_first_token_dup(v));
	if (strcasecmp(n, "List-Id") == 0)
		return set_once(&m->list_id, mailtext_decode_header(v));
	if (strcasecmp(n, "X-Autoreply") == 0)
		m->flags |= INMSG_F_X_AUTOREPLY;
	else if (strcasecmp(n, "X-Autorespond") == 0)
		m->flags |= INMSG_F_X_AUTORESPOND;
	else if (strcasecmp(n, "X-Auto-Response-Suppress") == 0) {
		m->flags |= INMSG_F_X_AUTO_RESPONSE_SUPPRESS;
		if (suppresses_autoreply(v))
			m->flags |= INMSG_F_SUPPRESS_AUTOREPLY;
	} else if (strcasecmp(n, "List-Unsubscribe") == 0)
		m->flags |= INMSG_F_LIST_UNSUBSCRIBE;
	else if (strcasecmp(n, "List-Post") == 0)
		m->flags |= INMSG_F_LIST_POST;
	else if (strcasecmp(n, "Authentication-Results") == 0) {
		_cleanup_free_ char *u = mailtext_unfold_dup(v);

		if (u == NULL)
			return -ENOMEM;
		return strlist_take(&m->auth_results,
				    mailtext_header_dup(u, strlen(u)));
	} else if (strcasecmp(n, "Delivered-To") == 0 ||
		   strcasecmp(n, "X-Original-To") == 0)
		return add_raw_addresses(m, v);
	else if (strcasecmp(n, "Message-ID") == 0)	/* unparseable id */
		return set_once(&m->message_id, mailtext_strip_angle_dup(v));
	else if (strcasecmp(n, "In-Reply-To") == 0)
		return set_once(&m->in_reply_to, mailtext_strip_angle_dup(v));
	else if (strcasecmp(n, "Return-Path") == 0) {
		int r = set_once(&m->return_path, mailtext_addr_dup(v));

		if (r == 0 && m->return_path[0] == '\0')
			m->flags |= INMSG_F_NULL_RETURN_PATH;
		return r;
	}
	return 0;
}

/*
 * take_from - the first From address; every address of every From field
 * counts in from_count (RFC 5322 allows one field; a second field or
 * address is the way to show one sender and be checked against another).
 */
static int
take_from(struct inmsg *m, const struct mailimf_from *f)
{
	const struct mailimf_mailbox *mb;
	clistiter *it;

	if (f == NULL || f->frm_mb_list == NULL ||
	    f->frm_mb_list->mb_list == NULL) {
		m->from_count++;	/* a From field all the same */
		return 0;
	}
	m->from_count += (unsigned)clist_count(f->frm_mb_list->mb_list);
	if (m->from_addr != NULL)
		return 0;
	it = clist_begin(f->frm_mb_list->mb_list);
	if (it == NULL || (mb = clist_content(it)) == NULL ||
	    mb->mb_addr_spec == NULL)
		return 0;
	if ((m->from_addr = mailtext_addr_dup(mb->mb_addr_spec)) == NULL)
		return -ENOMEM;
	if (mb->mb_display_name != NULL &&
	    (m->from_name = mailtext_decode_header(mb->mb_display_name)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
take_fields(struct inmsg *m, const struct mailimf_fields *fields)
{
	if (fields == NULL || fields->fld_list == NULL)
		return 0;
	for (clistiter *it = clist_begin(fields->fld_list); it;
	     it = clist_next(it)) {
		const struct mailimf_field *f = clist_content(it);
		int r = 0;

		if (f == NULL)
			continue;
		switch (f->fld_type) {
		case MAILIMF_FIELD_RETURN_PATH:
			if (m->return_path == NULL && f->fld_data.fld_return_path) {
				const struct mailimf_path *p =
					f->fld_data.fld_return_path->ret_path;
				const char *a = p && p->pt_addr_spec ?
					p->pt_addr_spec : "";

				r = set_once(&m->return_path, mailtext_addr_dup(a));
				if (r == 0 && m->return_path[0] == '\0')
					m->flags |= INMSG_F_NULL_RETURN_PATH;
			}
			break;
		case MAILIMF_FIELD_ORIG_DATE:
			if (m->date < 0 && f->fld_data.fld_orig_date)
				m->date = date_to_epoch(
					f->fld_data.fld_orig_date->dt_date_time);
			break;
		case MAILIMF_FIELD_FROM:
			r = take_from(m, f->fld_data.fld_from);
			break;
		case MAILIMF_FIELD_TO:
			if (f->fld_data.fld_to)
				r = add_address_list(&m->recipients,
					f->fld_data.fld_to->to_addr_list);
			break;
		case MAILIMF_FIELD_CC:
			if (f->fld_data.fld_cc)
				r = add_address_list(&m->recipients,
					f->fld_data.fld_cc->cc_addr_list);
			break;
		case MAILIMF_FIELD_MESSAGE_ID:
			if (f->fld_data.fld_message_id &&
			    f->fld_data.fld_message_id->mid_value)
				r = set_once(&m->message_id, mailtext_strip_angle_dup(
					f->fld_data.fld_message_id->mid_value));
			break;
		case MAILIMF_FIELD_IN_REPLY_TO:
			if (f->fld_data.fld_in_reply_to &&
			    f->fld_data.fld_in_reply_to->mid_list) {
				clistiter *i2 = clist_begin(
					f->fld_data.fld_in_reply_to->mid_list);

				if (i2 && clist_content(i2))
					r = set_once(&m->in_reply_to,
						mailtext_strip_angle_dup(clist_content(i2)));
			}
			break;
		case MAILIMF_FIELD_REFERENCES:
			if (m->references.n == 0 && f->fld_data.fld_references &&
			    f->fld_data.fld_references->mid_list) {
				for (clistiter *i2 = clist_begin(
				     f->fld_data.fld_references->mid_list);
				     i2 && r == 0; i2 = clist_next(i2))
					if (clist_content(i2))
						r = strlist_take(&m->references,
							mailtext_strip_angle_dup(clist_content(i2)));
			}
			break;
		case MAILIMF_FIELD_SUBJECT:
			if (f->fld_data.fld_subject &&
			    f->fld_data.fld_subject->sbj_value)
				r = set_once(&m->subject, mailtext_decode_header(
					f->fld_data.fld_subject->sbj_value));
			break;
		case MAILIMF_FIELD_OPTIONAL_FIELD:
			if (f->fld_data.fld_optional_field)
				r = take_optional_field(m,
					f->fld_data.fld_optional_field);
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* Limits                                                            */
/* ---------------------------------------------------------------- */

/*
 * Nesting, estimated on the raw lines before libetpan sees them: its
 * parser scans what is left of the message once per level, so a deep
 * message costs depth x size (1,000 levels of 25 MB: half a minute of
 * CPU) before check_tree can count the levels. Each multipart Content-Type
 * opens a level named by its boundary and each message/ Content-Type an
 * unnamed one; a close delimiter of an open boundary ends it and every
 * level inside it, a delimiter ends the levels inside it. The estimate
 * errs high (a level whose end it cannot see stays open: a boundary over
 * 200 bytes, or one it cannot read), never low for well-formed nesting.
 */
#define PRESCAN_BOUNDARY_MAX	200u	/* RFC 2046 allows 70 */

struct level {
	char boundary[PRESCAN_BOUNDARY_MAX + 1];	/* "": message/, or a
							   boundary not read */
	size_t len;
};

#define PRESCAN_LEVELS_SLACK	2u	/* the root, and rounding */

/* line_value - the header value of the line at raw[i..), unfolded up to cap. */
static size_t
line_value(const char *raw, size_t len, size_t i, char *out, size_t cap)
{
	size_t o = 0;

	for (; i < len && o + 1 < cap; i++) {
		if (raw[i] == '\r')
			continue;
		if (raw[i] == '\n') {
			if (i + 1 < len && (raw[i + 1] == ' ' || raw[i + 1] == '\t'))
				continue;	/* folded */
			break;
		}
		out[o++] = raw[i];
	}
	out[o] = '\0';
	return o;
}

/*
 * level_of_header - for a "Content-Type" line at raw[i..): 1 when it opens
 * a level, else 0. The value is read by libetpan's own parser, so the
 * boundary is the one its MIME parse will use (not a look-alike in another
 * parameter); a multipart whose value it cannot read opens a level all
 * the same, with no boundary (it then never closes: the estimate errs
 * high).
 */
static int
level_of_header(const char *raw, size_t len, size_t i, struct level *lv)
{
	char v[4096];
	struct mailmime_content *ct = NULL;
	const char *p, *b;
	size_t idx = 0, n;
	int r;

	line_value(raw, len, i, v, sizeof(v));
	p = v + 12;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != ':')
		return 0;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	lv->boundary[0] = '\0';
	lv->len = 0;
	if (strncasecmp(p, "message/", 8) == 0)
		return 1;
	if (strncasecmp(p, "multipart/", 10) != 0)
		return 0;
	r = mailmime_content_parse(p, strlen(p), &idx, &ct);
	if (r != MAILIMF_NO_ERROR || ct == NULL)
		return r == MAILIMF_ERROR_MEMORY ? -ENOMEM : 1;
	b = mailmime_content_param_get(ct, "boundary");
	if (b != NULL && (n = strlen(b)) > 0 && n <= PRESCAN_BOUNDARY_MAX) {
		memcpy(lv->boundary, b, n + 1);
		lv->len = n;
	}
	mailmime_content_free(ct);
	return 1;
}

/* delimiter_of - the open level whose boundary raw[i..] delimits, or -1. */
static int
delimiter_of(const char *raw, size_t len, size_t i, const struct level *st,
	     unsigned n, int *close)
{
	for (unsigned k = n; k-- > 0;) {
		size_t bl = st[k].len, j = i + 2 + bl;

		if (bl == 0 || len - i < 2 + bl ||
		    memcmp(raw + i + 2, st[k].boundary, bl) != 0)
			continue;
		*close = len - j >= 2 && raw[j] == '-' && raw[j + 1] == '-';
		if (*close || j == len || strchr(" \t\r\n", raw[j]))
			return (int)k;
	}
	return -1;
}

/*
 * prescan - refuse what libetpan would recurse or allocate too deeply
 * for: nesting needs a Content-Type header per level, parts need a
 * boundary line each, and nesting deeper than max_depth (estimated, see
 * struct level) is refused before it is parsed.
 */
static int
prescan(const char *raw, size_t len, const struct inmsg_limits *lim,
	struct cp_error *err)
{
	unsigned ct = 0, dash = 0, depth = 0;
	unsigned max_ct = 2 * lim->max_parts + 16;
	unsigned max_dash = 8 * lim->max_parts;
	unsigned max_levels = lim->max_depth + PRESCAN_LEVELS_SLACK;
	struct level st[INMSG_MAX_DEPTH_DEFAULT * 4 + PRESCAN_LEVELS_SLACK];

	if (max_ct > PRESCAN_MAX_CONTENT_TYPES || max_ct < lim->max_parts)
		max_ct = PRESCAN_MAX_CONTENT_TYPES;
	if (max_dash < PRESCAN_MIN_DASH_LINES || max_dash < lim->max_parts)
		max_dash = PRESCAN_MIN_DASH_LINES;
	if (max_levels > CP_ARRAY_SIZE(st))
		max_levels = CP_ARRAY_SIZE(st);
	for (size_t i = 0; i < len;) {
		const char *nl;
		int k, close;

		if (len - i >= 12 && strncasecmp(raw + i, "content-type", 12) == 0) {
			int opens = level_of_header(raw, len, i, &st[depth]);

			ct++;
			if (opens < 0)
				return cp_error_set(err, opens, "out of memory");
			if (opens && ++depth >= max_levels)
				return cp_error_set(err, -ELOOP,
					"message nesting depth exceeds %u "
					"(seen before parsing)", lim->max_depth);
		} else if (len - i >= 2 && raw[i] == '-' && raw[i + 1] == '-') {
			dash++;
			k = delimiter_of(raw, len, i, st, depth, &close);
			if (k >= 0)
				depth = (unsigned)k + (close ? 0 : 1);
		}
		nl = memchr(raw + i, '\n', len - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - raw) + 1;
	}
	if (ct > max_ct)
		return cp_error_set(err, -E2BIG,
			"message has more than %u Content-Type headers "
			"(part limit %u)", max_ct, lim->max_parts);
	if (dash > max_dash)
		return cp_error_set(err, -E2BIG,
			"message has more than %u boundary-like lines "
			"(part limit %u)", max_dash, lim->max_parts);
	return 0;
}

/* header_lines - top-level header fields, counted on the raw bytes. */
static unsigned
header_lines(const char *raw, size_t len)
{
	unsigned n = 0;

	for (size_t i = 0; i < len;) {
		const char *nl;

		if (raw[i] == '\n' || (raw[i] == '\r' && i + 1 < len &&
					raw[i + 1] == '\n'))
			break;
		if (raw[i] != ' ' && raw[i] != '\t')
			n++;
		nl = memchr(raw + i, '\n', len - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - raw) + 1;
	}
	return n;
}

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

/* header_block_len - the bytes of an entity's header, blank line included. */
static size_t
header_block_len(const char *raw, size_t len)
{
	for (size_t i = 0; i < len;) {
		const char *nl;

		if (raw[i] == '\n')
			return i + 1;
		if (raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')
			return i + 2;
		nl = memchr(raw + i, '\n', len - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - raw) + 1;
	}
	return len;
}

/*
 * take_protected - the header fields of the entity a signature or the
 * encryption covers (raw[0..len), its first header line onwards), when
 * its Content-Type says protected-headers="v1": what the sender's client
 * put inside, out of an intermediary's reach. Unreadable fields are no
 * protected headers. The first covered entity that has them wins.
 */
static int
take_protected(struct inmsg *m, const struct mailmime_content *ct,
	       const char *raw, size_t len)
{
	const char *v = ct ? ct_param(ct, "protected-headers") : NULL;
	struct mailimf_fields *fields = NULL;
	size_t idx = 0;
	int r;

	if (m->prot.present || v == NULL || strcasecmp(v, "v1") != 0 || raw == NULL ||
	    header_block_len(raw, len) > INMSG_MAX_HEADER_BYTES)
		return 0;
	r = mailimf_fields_parse(raw, header_block_len(raw, len), &idx, &fields);
	if (r == MAILIMF_ERROR_MEMORY)
		return -ENOMEM;
	if (r != MAILIMF_NO_ERROR || fields == NULL)
		return 0;
	m->prot.present = 1;
	r = 0;
	for (clistiter *it = clist_begin(fields->fld_list); it && r == 0;
	     it = clist_next(it)) {
		const struct mailimf_field *f = clist_content(it);

		if (f == NULL)
			continue;
		if (f->fld_type == MAILIMF_FIELD_SUBJECT && f->fld_data.fld_subject &&
		    f->fld_data.fld_subject->sbj_value)
			r = set_once(&m->prot.subject,
				     mailtext_decode_header(f->fld_data.fld_subject->sbj_value));
		else if (f->fld_type == MAILIMF_FIELD_TO && f->fld_data.fld_to)
			r = add_address_list(&m->prot.recipients,
					     f->fld_data.fld_to->to_addr_list);
		else if (f->fld_type == MAILIMF_FIELD_CC && f->fld_data.fld_cc)
			r = add_address_list(&m->prot.recipients,
					     f->fld_data.fld_cc->cc_addr_list);
	}
	mailimf_fields_free(fields);
	return r;
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

static int
walk_delivery_status(struct walk *w, struct mailmime *mm)
{
	_cleanup_buf_ struct buf text = BUF_INIT;
	int r;

	if (w->m->dsn.n_rcpts > 0 || mm->mm_type != MAILMIME_SINGLE)
		return 0;
	if ((r = decode_text(w, mm, &text)) < 0)
		return r;
	return dsn_parse(&w->m->dsn, text.data ? text.data : "", text.len);
}

static int
walk_returned_headers(struct walk *w, struct mailmime *mm)
{
	_cleanup_free_ char *raw = NULL;
	size_t rawlen;
	int r;

	if (w->m->dsn.orig_message_id != NULL)	/* the first one stays */
		return dsn_take_returned_headers(&w->m->dsn, NULL, 0);
	if ((r = decode_data(w, mm->mm_body, &raw, &rawlen)) < 0)
		return r;
	return dsn_take_returned_headers(&w->m->dsn, raw, rawlen);
}

static int
walk_report(struct walk *w, struct mailmime *mm)
{
	const char *rt = ct_param(mm->mm_content_type, "report-type");
	int r;

	for (clistiter *it = mp_first(mm); it; it = clist_next(it)) {
		struct mailmime *c = clist_content(it);

		if (c == NULL)
			continue;
		if (ct_is(c->mm_content_type, "message", "delivery-status") ||
		    ct_is(c->mm_content_type, "message", "global-delivery-status"))
			r = walk_delivery_status(w, c);
		else if (rt && strcasecmp(rt, "delivery-status") == 0 &&
			 (ct_is(c->mm_content_type, "message", "rfc822") ||
			  ct_is(c->mm_content_type, "text", "rfc822-headers") ||
			  ct_is(c->mm_content_type, "message", "global")))
			r = walk_returned_headers(w, c);
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
		return walk_delivery_status(w, mm);
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
	if ((r = prescan(raw, len, &m->limits, err)) < 0)
		return r;
	if (top && len >= 5 && memcmp(raw, "From ", 5) == 0) {
		/* an mbox "From " separator line, as in saved files */
		const char *nl = memchr(raw, '\n', len);

		if (nl != NULL) {
			len -= (size_t)(nl + 1 - raw);
			raw = nl + 1;
		}
	}
	if (top && (m->header_count = header_lines(raw, len)) >
	    m->limits.max_headers)
		return cp_error_set(err, -E2BIG,
			"message has more than %u header fields",
			m->limits.max_headers);
	if (top && header_block_len(raw, len) > INMSG_MAX_HEADER_BYTES)
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
		if ((r = take_fields(m, root->mm_data.mm_message.mm_fields)) < 0)
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

void
inmsg_free(struct inmsg *m)
{
	if (m == NULL)
		return;
	free(m->message_id);
	free(m->in_reply_to);
	strlist_free(&m->references);
	free(m->from_addr);
	free(m->from_name);
	free(m->return_path);
	strlist_free(&m->recipients);
	free(m->subject);
	free(m->auto_submitted);
	free(m->precedence);
	free(m->list_id);
	free(m->prot.subject);
	strlist_free(&m->prot.recipients);
	strlist_free(&m->auth_results);
	free(m->content_type);
	free(m->body);
	for (size_t i = 0; i < m->n_attachments; i++) {
		free(m->attachments[i].filename);
		free(m->attachments[i].content_type);
		free(m->attachments[i].data);
	}
	free(m->attachments);
	free(m->pgp_encrypted);
	free(m->pgp_signed);
	free(m->pgp_signature);
	dsn_free(&m->dsn);
	free(m);
}
