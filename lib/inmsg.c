/*
 * NAME
 *	inmsg - parse and classify one inbound RFC 5322 message
 * DESCRIPTION
 *	See inmsg.h. libetpan does the MIME parsing and decoding; this file
 *	bounds it (a byte pre-scan before, a tree walk after), copies out
 *	what the inbound path needs as UTF-8, and classifies.
 *
 *	Nothing here logs: error reasons name limits and counts only.
 */
#include "inmsg.h"

#include <ctype.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "buf.h"

/* The pre-scan refuses messages libetpan would recurse or allocate too
 * much for; these caps hold whatever limits the caller configured. */
#define PRESCAN_MAX_CONTENT_TYPES	1024u
#define PRESCAN_MIN_DASH_LINES		4096u
#define DSN_MAX_RCPTS			256u
#define DSN_MAX_VALUE			1000u
#define FILENAME_MAX_BYTES		255u

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

static void
ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static int
has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static int
put_utf8(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return buf_append(b, u, n);
}

enum { SAN_TEXT, SAN_HEADER };

/*
 * sanitize - copy in[0..len) as valid UTF-8 into out: invalid bytes and
 * NUL become U+FFFD. SAN_TEXT turns CRLF and lone CR into LF
 * (buf_append_text); SAN_HEADER turns every control character into a
 * space.
 */
static int
sanitize(const char *in, size_t len, int mode, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0;
	int r = 0;

	if (mode == SAN_TEXT)
		r = buf_append_text(out, in, len);
	else
		while (r == 0 && i < len) {
			size_t n = cp_utf8_seq_len(s + i, len - i);

			if (n == 0 || s[i] == 0) {
				r = put_utf8(out, 0xFFFD);
				i += n ? n : 1;
			} else if (s[i] < 0x20 || s[i] == 0x7F) {
				r = buf_putc(out, ' ');
				i++;
			} else {
				r = buf_append(out, s + i, n);
				i += n;
			}
		}
	if (r == 0 && out->data == NULL)
		r = buf_append(out, "", 0);
	return r;
}

/* sanitize_dup - a new sanitized string (NULL on ENOMEM). */
static char *
sanitize_dup(const char *in, size_t len, int mode)
{
	struct buf b = BUF_INIT;
	char *s;

	if (sanitize(in, len, mode, &b) < 0) {
		buf_free(&b);
		return NULL;
	}
	s = buf_steal(&b, NULL);
	if (s != NULL && mode == SAN_HEADER) {
		size_t a = 0, e = strlen(s);

		while (s[a] == ' ')
			a++;
		while (e > a && s[e - 1] == ' ')
			e--;
		memmove(s, s + a, e - a);
		s[e - a] = '\0';
	}
	return s;
}

/* latin1_dup - bytes as ISO-8859-1 into UTF-8 (the unknown-charset fallback). */
static int
latin1_to_utf8(const char *in, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int r;

		if (c == 0)
			r = put_utf8(out, 0xFFFD);
		else if (c == '\r') {
			r = buf_putc(out, '\n');
			if (i + 1 < len && in[i + 1] == '\n')
				i++;
		} else
			r = put_utf8(out, c);
		if (r < 0)
			return r;
	}
	return buf_append(out, "", 0);
}

static int
charset_name_ok(const char *cs)
{
	size_t n = strlen(cs);

	if (n == 0 || n > 40)
		return 0;
	for (; *cs; cs++)
		if (!isalnum((unsigned char)*cs) && !strchr("._:-", *cs))
			return 0;
	return 1;
}

static int
charset_is_utf8ish(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

/*
 * to_utf8_text - decoded bytes in charset cs (may be NULL) as UTF-8 text
 * with LF line ends. Unknown or failing charsets fall back to the bytes
 * themselves when they are UTF-8, else to ISO-8859-1.
 */
static int
to_utf8_text(const char *cs, const char *in, size_t len, struct buf *out)
{
	if (cs != NULL && !charset_is_utf8ish(cs) && charset_name_ok(cs)) {
		char *conv = NULL;
		size_t convlen = 0;

		if (charconv_buffer("utf-8", cs, in, len, &conv, &convlen) ==
		    MAIL_CHARCONV_NO_ERROR && conv != NULL) {
			int r = sanitize(conv, convlen, SAN_TEXT, out);

			charconv_buffer_free(conv);
			return r;
		}
		if (conv != NULL)
			charconv_buffer_free(conv);
	}
	if (cp_utf8_valid(in, len) || (cs != NULL && charset_is_utf8ish(cs)))
		return sanitize(in, len, SAN_TEXT, out);
	return latin1_to_utf8(in, len, out);
}

/* unfold - a copy of a header value with CR/LF removed (folding undone). */
static char *
unfold_dup(const char *v)
{
	size_t n = strlen(v), j = 0;
	char *s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '\r' || v[i] == '\n')
			continue;
		s[j++] = v[i];
	}
	s[j] = '\0';
	return s;
}

/* decode_header - RFC 2047 words to UTF-8, unfolded, sanitized. */
static char *
decode_header(const char *raw)
{
	_cleanup_free_ char *f = unfold_dup(raw);
	_cleanup_free_ char *u = NULL;
	char *dec = NULL;
	size_t idx = 0;
	char *s;

	if (f == NULL)
		return NULL;
	/* Raw 8-bit bytes that are not UTF-8 would come out of libetpan's
	 * conversion as '?': make them U+FFFD first, as everywhere else. */
	u = sanitize_dup(f, strlen(f), SAN_HEADER);
	if (u == NULL)
		return NULL;
	if (mailmime_encoded_phrase_parse("utf-8", u, strlen(u), &idx,
					  "utf-8", &dec) == MAILIMF_NO_ERROR &&
	    dec != NULL) {
		s = sanitize_dup(dec, strlen(dec), SAN_HEADER);
		free(dec);
		return s;
	}
	free(dec);
	return sanitize_dup(u, strlen(u), SAN_HEADER);
}

/* strip_angle_dup - trimmed, without one pair of <>, sanitized. */
static char *
strip_angle_dup(const char *raw)
{
	_cleanup_free_ char *u = unfold_dup(raw);
	size_t a = 0, e;

	if (u == NULL)
		return NULL;
	e = strlen(u);
	while (a < e && isspace((unsigned char)u[a]))
		a++;
	while (e > a && isspace((unsigned char)u[e - 1]))
		e--;
	if (e > a && u[a] == '<')
		a++;
	if (e > a && u[e - 1] == '>')
		e--;
	return sanitize_dup(u + a, e - a, SAN_HEADER);
}

static char *
addr_dup(const char *addr)
{
	char *s = strip_angle_dup(addr);

	if (s != NULL)
		ascii_lower(s);
	return s;
}

/* first_token_dup - lower-cased first token ("auto-replied (x)" -> "auto-replied"). */
static char *
first_token_dup(const char *raw)
{
	_cleanup_free_ char *u = unfold_dup(raw);
	size_t a = 0, e;

	if (u == NULL)
		return NULL;
	while (u[a] && isspace((unsigned char)u[a]))
		a++;
	e = a;
	while (u[e] && !isspace((unsigned char)u[e]) && u[e] != '(' &&
	       u[e] != ';')
		e++;
	{
		char *s = sanitize_dup(u + a, e - a, SAN_HEADER);

		if (s != NULL)
			ascii_lower(s);
		return s;
	}
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
	if ((s = addr_dup(addr)) == NULL)
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
		return set_once(&m->auto_submitted, first_token_dup(v));
	if (strcasecmp(n, "Precedence") == 0)
		return set_once(&m->precedence, first_token_dup(v));
	if (strcasecmp(n, "List-Id") == 0)
		return set_once(&m->list_id, decode_header(v));
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
		_cleanup_free_ char *u = unfold_dup(v);

		if (u == NULL)
			return -ENOMEM;
		return strlist_take(&m->auth_results,
				    sanitize_dup(u, strlen(u), SAN_HEADER));
	} else if (strcasecmp(n, "Delivered-To") == 0 ||
		   strcasecmp(n, "X-Original-To") == 0)
		return add_raw_addresses(m, v);
	else if (strcasecmp(n, "Message-ID") == 0)	/* unparseable id */
		return set_once(&m->message_id, strip_angle_dup(v));
	else if (strcasecmp(n, "In-Reply-To") == 0)
		return set_once(&m->in_reply_to, strip_angle_dup(v));
	else if (strcasecmp(n, "Return-Path") == 0) {
		int r = set_once(&m->return_path, addr_dup(v));

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
	if ((m->from_addr = addr_dup(mb->mb_addr_spec)) == NULL)
		return -ENOMEM;
	if (mb->mb_display_name != NULL &&
	    (m->from_name = decode_header(mb->mb_display_name)) == NULL)
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

				r = set_once(&m->return_path, addr_dup(a));
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
				r = set_once(&m->message_id, strip_angle_dup(
					f->fld_data.fld_message_id->mid_value));
			break;
		case MAILIMF_FIELD_IN_REPLY_TO:
			if (f->fld_data.fld_in_reply_to &&
			    f->fld_data.fld_in_reply_to->mid_list) {
				clistiter *i2 = clist_begin(
					f->fld_data.fld_in_reply_to->mid_list);

				if (i2 && clist_content(i2))
					r = set_once(&m->in_reply_to,
						strip_angle_dup(clist_content(i2)));
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
							strip_angle_dup(clist_content(i2)));
			}
			break;
		case MAILIMF_FIELD_SUBJECT:
			if (f->fld_data.fld_subject &&
			    f->fld_data.fld_subject->sbj_value)
				r = set_once(&m->subject, decode_header(
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
	s = sanitize_dup(b.data, b.len, SAN_HEADER);
	buf_free(&b);
	if (s != NULL)
		ascii_lower(s);
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

struct nv {
	const char *name;
	const char *value;
};

/* collect_params - Content-Disposition and Content-Type parameters. */
static size_t
collect_params(const struct mailmime *mm, struct nv *out, size_t max)
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
				out[n++] = (struct nv){ "filename", p->pa_data.pa_filename };
			else if (p->pa_type == MAILMIME_DISPOSITION_PARM_PARAMETER &&
				 p->pa_data.pa_parameter &&
				 p->pa_data.pa_parameter->pa_name &&
				 p->pa_data.pa_parameter->pa_value)
				out[n++] = (struct nv){ p->pa_data.pa_parameter->pa_name,
							p->pa_data.pa_parameter->pa_value };
		}
	}
	if (mm->mm_content_type && mm->mm_content_type->ct_parameters) {
		for (clistiter *it = clist_begin(mm->mm_content_type->ct_parameters);
		     it && n < max; it = clist_next(it)) {
			const struct mailmime_parameter *p = clist_content(it);

			if (p && p->pa_name && p->pa_value)
				out[n++] = (struct nv){ p->pa_name, p->pa_value };
		}
	}
	return n;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * rfc2231_value - base ("filename") as an RFC 2231 value: "base*" or the
 * continuations "base*0*", "base*1", ... joined and percent-decoded,
 * converted from the declared charset. NULL when absent.
 */
static char *
rfc2231_value(const struct nv *p, size_t n, const char *base)
{
	size_t bl = strlen(base);
	struct buf raw = BUF_INIT, out = BUF_INIT;
	char charset[48] = "";
	int found = 0;

	for (unsigned seq = 0; seq < 64; seq++) {
		int hit = 0;

		for (size_t i = 0; i < n && !hit; i++) {
			const char *nm = p[i].name, *v = p[i].value;
			int encoded;
			char want[16];

			if (strncasecmp(nm, base, bl) != 0 || nm[bl] != '*')
				continue;
			nm += bl + 1;
			if (*nm == '\0') {		/* "base*" */
				if (seq != 0)
					continue;
				encoded = 1;
			} else {
				snprintf(want, sizeof(want), "%u", seq);
				if (strncmp(nm, want, strlen(want)) != 0)
					continue;
				nm += strlen(want);
				if (*nm != '\0' && strcmp(nm, "*") != 0)
					continue;
				encoded = *nm == '*';
			}
			hit = 1;
			if (encoded && seq == 0) {
				const char *q1 = strchr(v, '\''), *q2;

				if (q1 && (q2 = strchr(q1 + 1, '\'')) != NULL) {
					size_t cl = (size_t)(q1 - v);

					if (cl < sizeof(charset)) {
						memcpy(charset, v, cl);
						charset[cl] = '\0';
					}
					v = q2 + 1;
				}
			}
			for (; *v; v++) {
				int h, l;

				if (encoded && v[0] == '%' && (h = hexval(v[1])) >= 0 &&
				    (l = hexval(v[2])) >= 0) {
					if (buf_putc(&raw, (char)(h * 16 + l)) < 0)
						goto fail;
					v += 2;
				} else if (buf_putc(&raw, *v) < 0)
					goto fail;
			}
		}
		if (!hit)
			break;
		found = 1;
	}
	if (!found) {
		buf_free(&raw);
		return NULL;
	}
	if (to_utf8_text(charset[0] ? charset : NULL, raw.data ? raw.data : "",
			 raw.len, &out) < 0)
		goto fail;
	buf_free(&raw);
	return buf_steal(&out, NULL);
fail:
	buf_free(&raw);
	buf_free(&out);
	return NULL;
}

/*
 * invisible_cp - a character that changes how a name is shown without
 * being seen: format characters (Unicode category Cf: bidirectional
 * controls, U+202E turning "gpj.exe" into what reads as "exe.jpg";
 * zero-width characters; the soft hyphen; tag characters), the combining
 * grapheme joiner, and the fillers that render as blanks (Hangul, Khmer).
 */
static int
invisible_cp(uint32_t c)
{
	return c == 0xAD || c == 0x34F || c == 0x61C || c == 0x115F ||
	       c == 0x1160 || c == 0x17B4 || c == 0x17B5 || c == 0x180E ||
	       c == 0x3164 || c == 0xFEFF || c == 0xFFA0 ||
	       (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
	       (c >= 0x2060 && c <= 0x206F) || (c >= 0xFFF9 && c <= 0xFFFB) ||
	       (c >= 0x1D173 && c <= 0x1D17A) || (c >= 0xE0000 && c <= 0xE007F);
}

/* utf8_cp - the code point of the well-formed sequence s[0..n). */
static uint32_t
utf8_cp(const unsigned char *s, size_t n)
{
	static const unsigned char lead_mask[] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
	uint32_t c = s[0] & lead_mask[n];

	for (size_t i = 1; i < n; i++)
		c = (c << 6) | (s[i] & 0x3F);
	return c;
}

/*
 * clean_filename - basename only, at most 255 bytes; C0 and C1 controls
 * and the line and paragraph separators become "_", invisible characters
 * (invisible_cp) are dropped.
 * s is valid UTF-8 (sanitize_dup).
 */
static char *
clean_filename(char *s)
{
	char *base;
	size_t n, i, o;

	if (s == NULL)
		return NULL;
	for (i = 0, o = 0; s[i]; i += n) {
		uint32_t c;

		n = cp_utf8_seq_len(s + i, strlen(s + i));
		if (n == 0)
			n = 1;		/* cannot happen after sanitize_dup */
		c = utf8_cp((const unsigned char *)s + i, n);
		if (invisible_cp(c))
			continue;
		if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029) {
			s[o++] = '_';		/* controls, line and paragraph separators */
			continue;
		}
		memmove(s + o, s + i, n);
		o += n;
	}
	s[o] = '\0';
	base = s;
	for (char *p = s; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	memmove(s, base, strlen(base) + 1);
	n = strlen(s);
	if (n > FILENAME_MAX_BYTES) {
		n = FILENAME_MAX_BYTES;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
		s[n] = '\0';
	}
	if (s[0] == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* part_filename - *out = UTF-8 file name or NULL; -ENOMEM only. */
static int
part_filename(const struct mailmime *mm, char **out)
{
	struct nv p[64];
	size_t n = collect_params(mm, p, CP_ARRAY_SIZE(p));
	static const char *const bases[] = { "filename", "name" };

	*out = NULL;
	for (size_t b = 0; b < CP_ARRAY_SIZE(bases); b++) {
		char *s = rfc2231_value(p, n, bases[b]);

		if (s == NULL) {
			for (size_t i = 0; i < n; i++)
				if (strcasecmp(p[i].name, bases[b]) == 0) {
					if ((s = decode_header(p[i].value)) == NULL)
						return -ENOMEM;
					break;
				}
		}
		if (s != NULL) {
			char *t = sanitize_dup(s, strlen(s), SAN_HEADER);

			free(s);
			if (t == NULL)
				return -ENOMEM;
			*out = clean_filename(t);
			return 0;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* Decoding                                                          */
/* ---------------------------------------------------------------- */

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
	if ((r = to_utf8_text(part_charset(mm), raw, rawlen, out)) < 0)
		return r;
	/* charset conversion may grow the text: count the growth */
	if (out->len - before > rawlen)
		return account_decoded(w, out->len - before - rawlen);
	return 0;
}

/* html_to_text - crude: tags dropped, block tags as newlines, entities. */
static int
html_to_text(const char *h, size_t len, struct buf *out)
{
	static const char *const blocks[] = { "br", "p", "/p", "div", "/div",
		"tr", "/tr", "li", "/h1", "/h2", "/h3", "/h4", "/h5", "/h6",
		"/table", "blockquote", "/blockquote" };
	static const struct { const char *n; uint32_t cp; } ents[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
		{ "apos", '\'' }, { "nbsp", ' ' }, { "#39", '\'' } };
	int space = 0, nls = 0, r = 0;

	for (size_t i = 0; i < len && r >= 0;) {
		char c = h[i];

		if (c == '<') {
			const char *gt = memchr(h + i, '>', len - i);
			size_t tl = gt ? (size_t)(gt - (h + i)) - 1 : len - i - 1;
			const char *t = h + i + 1;

			const char *close = NULL;

			if (tl >= 6 && strncasecmp(t, "script", 6) == 0)
				close = "</script";
			else if (tl >= 5 && strncasecmp(t, "style", 5) == 0)
				close = "</style";
			if (close != NULL) {
				/* skip the element's content (case-sensitive
				 * end tag match: crude, as promised) */
				const char *end = memmem(h + i, len - i, close,
							 strlen(close));

				if (end == NULL)
					break;
				gt = memchr(end, '>', len - (size_t)(end - h));
			} else {
				for (size_t b = 0; b < CP_ARRAY_SIZE(blocks); b++) {
					size_t bl = strlen(blocks[b]);

					if (tl >= bl && strncasecmp(t, blocks[b], bl) == 0 &&
					    (tl == bl || !isalnum((unsigned char)t[bl]))) {
						if (nls < 2)
							r = buf_putc(out, '\n');
						nls++;
						space = 0;
						break;
					}
				}
			}
			if (gt == NULL)
				break;
			i = (size_t)(gt - h) + 1;
			continue;
		}
		if (c == '&') {
			const char *semi = memchr(h + i, ';',
				len - i < 12 ? len - i : 12);
			uint32_t cp = 0;

			if (semi) {
				size_t el = (size_t)(semi - (h + i)) - 1;
				const char *e = h + i + 1;

				for (size_t k = 0; k < CP_ARRAY_SIZE(ents); k++)
					if (strlen(ents[k].n) == el &&
					    strncmp(e, ents[k].n, el) == 0)
						cp = ents[k].cp;
				if (cp == 0 && el >= 2 && e[0] == '#') {
					char tmp[12];
					unsigned long v;

					memcpy(tmp, e + 1, el - 1);
					tmp[el - 1] = '\0';
					v = (tmp[0] == 'x' || tmp[0] == 'X') ?
						strtoul(tmp + 1, NULL, 16) :
						strtoul(tmp, NULL, 10);
					if (v > 0 && v < 0x110000 &&
					    !(v >= 0xD800 && v < 0xE000))
						cp = (uint32_t)v;
				}
			}
			if (cp != 0) {
				if (space && nls == 0)
					r = buf_putc(out, ' ');
				if (r >= 0)
					r = put_utf8(out, cp);
				space = 0;
				nls = 0;
				i = (size_t)(semi - h) + 1;
				continue;
			}
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = 1;
			i++;
			continue;
		}
		if (space && nls == 0 && out->len > 0)
			r = buf_putc(out, ' ');
		if (r >= 0)
			r = buf_putc(out, c);
		space = 0;
		nls = 0;
		i++;
	}
	if (r < 0)
		return r;
	return buf_append(out, "", 0);
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
				     decode_header(f->fld_data.fld_subject->sbj_value));
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

/* A field of a delivery-status block. */
static char *
dsn_value(const char *v, size_t len, int after_semicolon, int lower)
{
	const char *semi;
	char *s;

	if (len > DSN_MAX_VALUE)
		len = DSN_MAX_VALUE;
	if (after_semicolon && (semi = memchr(v, ';', len)) != NULL) {
		len -= (size_t)(semi + 1 - v);
		v = semi + 1;
	}
	s = sanitize_dup(v, len, SAN_HEADER);
	if (s && lower)
		ascii_lower(s);
	return s;
}

static int
dsn_field(struct inmsg_dsn *dsn, struct inmsg_dsn_rcpt *rc, const char *name,
	  size_t nlen, const char *v, size_t vlen)
{
#define IS(s) (nlen == sizeof(s) - 1 && strncasecmp(name, s, nlen) == 0)
	char **slot = NULL;
	int semi = 0, lower = 0, token = 0, angle = 0;

	if (IS("original-envelope-id"))
		slot = &dsn->original_envelope_id;
	else if (IS("reporting-mta")) {
		slot = &dsn->reporting_mta;
		semi = 1;
	} else if (rc == NULL)
		return 0;
	else if (IS("action")) {
		slot = &rc->action;
		lower = 1;
	} else if (IS("status")) {
		slot = &rc->status;
		token = 1;
	} else if (IS("final-recipient")) {
		slot = &rc->final_recipient;
		semi = lower = angle = 1;
	} else if (IS("original-recipient")) {
		slot = &rc->original_recipient;
		semi = lower = angle = 1;
	} else if (IS("diagnostic-code"))
		slot = &rc->diagnostic_code;
#undef IS
	if (slot == NULL || *slot != NULL)
		return 0;
	if ((*slot = dsn_value(v, vlen, semi, lower)) == NULL)
		return -ENOMEM;
	if (token) {		/* "5.1.1 (comment)" -> "5.1.1" */
		char *p = *slot;

		while (*p && !isspace((unsigned char)*p) && *p != '(')
			p++;
		*p = '\0';
	}
	if (angle) {		/* "<user@example.com>" -> "user@example.com" */
		char *t = strip_angle_dup(*slot);

		if (t == NULL)
			return -ENOMEM;
		free(*slot);
		*slot = t;
	}
	return 0;
}

static int
block_has_recipient(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - s) : len;

		if (e - i >= 16 && strncasecmp(s + i, "final-recipient:", 16) == 0)
			return 1;
		if (e - i >= 7 && strncasecmp(s + i, "action:", 7) == 0)
			return 1;
		i = e + 1;
	}
	return 0;
}

/* append_capped - append at most what keeps b under DSN_MAX_VALUE bytes. */
static int
append_capped(struct buf *b, const char *s, size_t n)
{
	if (b->len >= DSN_MAX_VALUE)
		return 0;
	if (n > DSN_MAX_VALUE - b->len)
		n = DSN_MAX_VALUE - b->len;
	return buf_append(b, s, n);
}

/*
 * parse_dsn_text - RFC 3464 body: blocks of header-style fields separated
 * by blank lines; the first is per-message, the rest per-recipient.
 * text has LF line ends (from to_utf8_text).
 */
static int
parse_dsn_text(struct inmsg_dsn *dsn, const char *s, size_t len)
{
	size_t i = 0;
	int block = 0;

	dsn->present = 1;
	while (i < len) {
		struct inmsg_dsn_rcpt *rc = NULL;
		size_t bstart, bend;
		const char *blank;

		while (i < len && (s[i] == '\n' || s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i >= len)
			break;
		bstart = i;
		blank = memmem(s + i, len - i, "\n\n", 2);
		bend = blank ? (size_t)(blank - s) + 1 : len;
		if (block > 0 || block_has_recipient(s + bstart, bend - bstart)) {
			struct inmsg_dsn_rcpt *nr;

			if (dsn->n_rcpts >= DSN_MAX_RCPTS)
				break;
			nr = realloc(dsn->rcpts, (dsn->n_rcpts + 1) * sizeof(*nr));
			if (nr == NULL)
				return -ENOMEM;
			dsn->rcpts = nr;
			rc = &nr[dsn->n_rcpts++];
			memset(rc, 0, sizeof(*rc));
		}
		/* fields: a line with "name:" then continuation lines */
		for (size_t j = bstart; j < bend;) {
			const char *nl = memchr(s + j, '\n', bend - j);
			size_t e = nl ? (size_t)(nl - s) : bend;
			const char *colon = memchr(s + j, ':', e - j);
			struct buf v = BUF_INIT;
			size_t k;
			int r;

			if (colon == NULL || s[j] == ' ' || s[j] == '\t') {
				j = e + 1;
				continue;
			}
			r = append_capped(&v, colon + 1, (size_t)(s + e - colon - 1));
			for (k = e + 1; r >= 0 && k < bend &&
			     (s[k] == ' ' || s[k] == '\t');) {
				const char *nl2 = memchr(s + k, '\n', bend - k);
				size_t e2 = nl2 ? (size_t)(nl2 - s) : bend;

				r = append_capped(&v, s + k, e2 - k);
				k = e2 + 1;
			}
			if (r >= 0)
				r = dsn_field(dsn, rc, s + j, (size_t)(colon - (s + j)),
					      v.data ? v.data : "", v.len);
			buf_free(&v);
			if (r < 0)
				return r;
			j = k;
		}
		if (rc != NULL && rc->action == NULL && rc->status == NULL &&
		    rc->final_recipient == NULL) {
			free(rc->original_recipient);
			free(rc->diagnostic_code);
			dsn->n_rcpts--;		/* prose, not a recipient block */
		}
		i = bend;
		block++;
	}
	return 0;
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
	return parse_dsn_text(&w->m->dsn, text.data ? text.data : "", text.len);
}

/* header_value_in - the first "name:" field of a header block, raw. */
static char *
header_value_in(const char *s, size_t len, const char *name)
{
	size_t nl_ = strlen(name);

	for (size_t i = 0; i < len;) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - s) : len;

		if (e == i || (e == i + 1 && s[i] == '\r'))
			break;		/* end of header */
		if (e - i > nl_ && strncasecmp(s + i, name, nl_) == 0 &&
		    s[i + nl_] == ':')
			return sanitize_dup(s + i + nl_ + 1, e - i - nl_ - 1,
					    SAN_HEADER);
		i = e + 1;
	}
	return NULL;
}

static int
walk_returned_headers(struct walk *w, struct mailmime *mm)
{
	_cleanup_free_ char *raw = NULL, *mid = NULL;
	size_t rawlen;
	int r;

	w->m->dsn.orig_headers_present = 1;
	if (w->m->dsn.orig_message_id != NULL)
		return 0;
	if ((r = decode_data(w, mm->mm_body, &raw, &rawlen)) < 0)
		return r;
	mid = header_value_in(raw, rawlen, "message-id");
	if (mid == NULL)
		return 0;
	w->m->dsn.orig_message_id = strip_angle_dup(mid);
	return w->m->dsn.orig_message_id ? 0 : -ENOMEM;
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
		r = html_to_text(w->html, w->html_len, &out);
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

static void
dsn_free(struct inmsg_dsn *d)
{
	for (size_t i = 0; i < d->n_rcpts; i++) {
		free(d->rcpts[i].action);
		free(d->rcpts[i].status);
		free(d->rcpts[i].final_recipient);
		free(d->rcpts[i].original_recipient);
		free(d->rcpts[i].diagnostic_code);
	}
	free(d->rcpts);
	free(d->original_envelope_id);
	free(d->reporting_mta);
	free(d->orig_message_id);
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

/* ---------------------------------------------------------------- */
/* Classification                                                    */
/* ---------------------------------------------------------------- */

/*
 * tagged_local - if addr is PREFIX+TAG@domain (prefix and domain compared
 * case-insensitively) copy TAG to out and return 1.
 */
static int
tagged_local(const char *addr, const char *prefix, const char *domain,
	     char *out, size_t outsz)
{
	const char *at = strrchr(addr, '@');
	size_t pl = strlen(prefix), tl;

	if (at == NULL || domain == NULL || *domain == '\0' ||
	    strcasecmp(at + 1, domain) != 0)
		return 0;
	if (strncasecmp(addr, prefix, pl) != 0 || addr[pl] != '+')
		return 0;
	tl = (size_t)(at - (addr + pl + 1));
	if (tl == 0 || tl >= outsz)
		return 0;
	for (const char *p = addr + pl + 1; p < at; p++)
		if (!isalnum((unsigned char)*p) && !strchr("=_.-", *p))
			return 0;
	memcpy(out, addr + pl + 1, tl);
	out[tl] = '\0';
	return 1;
}

/*
 * unsubscribe_tagged - addr is LOCAL+TOKEN@DOMAIN for the unsubscribe
 * address LOCAL@DOMAIN (what List-Unsubscribe offers): copy TOKEN.
 */
static int
unsubscribe_tagged(const char *addr, const char *unsub, char *out, size_t outsz)
{
	const char *at = unsub ? strrchr(unsub, '@') : NULL;
	char local[128];

	if (at == NULL || at == unsub || (size_t)(at - unsub) >= sizeof(local))
		return 0;
	memcpy(local, unsub, (size_t)(at - unsub));
	local[at - unsub] = '\0';
	return tagged_local(addr, local, at + 1, out, outsz);
}

static int
from_is_daemon(const struct inmsg *m)
{
	static const char *const daemons[] = { "mailer-daemon@",
		"postmaster@", "mail-daemon@", "mailerdaemon@" };

	if (m->from_addr == NULL)
		return 0;
	for (size_t i = 0; i < CP_ARRAY_SIZE(daemons); i++)
		if (has_prefix_ci(m->from_addr, daemons[i]))
			return 1;
	return 0;
}

/* Out-of-office subject prefixes; compared ASCII-case-insensitively. */
static const char *const ooo_prefixes[] = {
	"out of office", "out of the office", "automatic reply",
	"auto:", "autoreply", "auto-reply", "auto reply", "auto response",
	"autoresponse", "auto-response", "vacation reply",
	"abwesenheitsnotiz", "automatische antwort", "abwesend",
	"respuesta automática", "respuesta automatica", "fuera de la oficina",
	"réponse automatique", "reponse automatique", "absence du bureau",
	"risposta automatica", "fuori ufficio",
	"automatisch antwoord", "afwezig",
	"resposta automática", "resposta automatica", "ausente",
	"autosvar", "automatisk svar", "automatiskt svar",
	"automaattinen vastaus", "odpowiedź automatyczna",
	"automatická odpověď", "автоматический ответ", "自动回复",
	"自動返信", "자동 회신",
};

static int
subject_is_ooo(const char *subject)
{
	if (subject == NULL)
		return 0;
	while (*subject == ' ' || *subject == '\t')
		subject++;
	for (size_t i = 0; i < CP_ARRAY_SIZE(ooo_prefixes); i++)
		if (has_prefix_ci(subject, ooo_prefixes[i]))
			return 1;
	return 0;
}

static int
subject_is_unsubscribe(const char *subject)
{
	size_t a = 0, e;

	if (subject == NULL)
		return 0;
	e = strlen(subject);
	while (a < e && isspace((unsigned char)subject[a]))
		a++;
	while (e > a && isspace((unsigned char)subject[e - 1]))
		e--;
	return e - a == 11 && strncasecmp(subject + a, "unsubscribe", 11) == 0;
}

static int
is_autoreply(const struct inmsg *m, const char **why)
{
	if (m->auto_submitted && m->auto_submitted[0] &&
	    strcmp(m->auto_submitted, "no") != 0) {
		*why = "auto-submitted header";
		return 1;
	}
	if (m->flags & (INMSG_F_X_AUTOREPLY | INMSG_F_X_AUTORESPOND)) {
		*why = "x-autoreply header";
		return 1;
	}
	if (m->precedence && (strcmp(m->precedence, "bulk") == 0 ||
			      strcmp(m->precedence, "junk") == 0 ||
			      strcmp(m->precedence, "list") == 0 ||
			      strcmp(m->precedence, "auto_reply") == 0)) {
		*why = "precedence header";
		return 1;
	}
	if (subject_is_ooo(m->subject)) {
		*why = "out-of-office subject";
		return 1;
	}
	return 0;
}

int
inmsg_no_autoresponse(const struct inmsg *m, const char **why)
{
	const char *local = NULL;

	if (why == NULL)
		why = &local;
	*why = NULL;
	if (m == NULL)
		return 0;
	if (m->list_id != NULL || (m->flags & INMSG_F_LIST_POST))
		*why = "list mail";
	else if (m->flags & INMSG_F_SUPPRESS_AUTOREPLY)
		*why = "x-auto-response-suppress header";
	else if (m->flags & INMSG_F_NULL_RETURN_PATH)
		*why = "null return path";
	else
		is_autoreply(m, why);
	return *why != NULL;
}

enum inmsg_class
inmsg_classify(const struct inmsg *m, const struct inmsg_addrs *a,
	       struct inmsg_class_info *info)
{
	struct inmsg_class_info local;
	const struct inmsg_addrs none = { NULL, NULL, NULL };
	int to_unsub = 0, to_reply = 0, to_bounce = 0;
	const char *why = NULL;

	if (info == NULL)
		info = &local;
	memset(info, 0, sizeof(*info));
	if (a == NULL)
		a = &none;
	if (m == NULL) {
		info->reason = "no message";
		return INMSG_UNKNOWN;
	}
	for (size_t i = 0; i < m->recipients.n; i++) {
		const char *r = m->recipients.v[i];

		if (a->unsubscribe && strcasecmp(r, a->unsubscribe) == 0)
			to_unsub = 1;
		if (!to_unsub && unsubscribe_tagged(r, a->unsubscribe,
						    info->token, sizeof(info->token)))
			to_unsub = 1;
		if (!to_reply && tagged_local(r, "reply", a->reply_domain,
					      info->token, sizeof(info->token)))
			to_reply = 1;
		if (!to_bounce && tagged_local(r, "bounce", a->bounce_domain,
					       info->verp, sizeof(info->verp)))
			to_bounce = 1;
	}
	if (m->dsn.present) {
		info->reason = "delivery-status report";
		return INMSG_DSN;
	}
	if (to_bounce) {
		info->reason = "sent to a bounce address";
		return INMSG_DSN;
	}
	if (from_is_daemon(m)) {
		info->reason = "from a mailer daemon";
		return INMSG_DSN;
	}
	if (is_autoreply(m, &why)) {
		info->reason = why;
		return INMSG_AUTOREPLY;
	}
	if (to_unsub) {
		info->reason = "sent to the unsubscribe address";
		return INMSG_UNSUBSCRIBE;
	}
	if (to_reply && subject_is_unsubscribe(m->subject)) {
		info->reason = "unsubscribe subject to a reply address";
		return INMSG_UNSUBSCRIBE;
	}
	if (to_reply) {
		info->reason = "sent to a reply address";
		return INMSG_REPLY;
	}
	info->reason = "no known recipient address";
	return INMSG_UNKNOWN;
}

int
inmsg_names_reply_token(const struct inmsg_strlist *addrs,
			const struct inmsg_addrs *a, const char *token)
{
	char tok[INMSG_TOKEN_MAX];

	if (addrs == NULL || a == NULL || (token != NULL && *token == '\0'))
		return 0;
	for (size_t i = 0; i < addrs->n; i++)
		if (tagged_local(addrs->v[i], "reply", a->reply_domain, tok,
				 sizeof(tok)) && (token == NULL || strcasecmp(tok, token) == 0))
			return 1;
	return 0;
}

const char *
inmsg_class_name(enum inmsg_class c)
{
	switch (c) {
	case INMSG_REPLY: return "reply";
	case INMSG_UNSUBSCRIBE: return "unsubscribe";
	case INMSG_DSN: return "dsn";
	case INMSG_AUTOREPLY: return "autoreply";
	case INMSG_UNKNOWN: break;
	}
	return "unknown";
}

/* ---------------------------------------------------------------- */
/* JSON                                                              */
/* ---------------------------------------------------------------- */

static int
jset(json_t *o, const char *k, json_t *v)
{
	if (v == NULL)
		return -ENOMEM;
	return json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

static json_t *
jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int
dsn_to_json(const struct inmsg_dsn *d, json_t **out)
{
	json_t *o = json_object(), *rc = json_array();
	int r = 0;

	if (o == NULL || rc == NULL) {
		json_decref(o);
		json_decref(rc);
		return -ENOMEM;
	}
	r |= jset(o, "present", json_boolean(d->present));
	r |= jset(o, "original_envelope_id", jstr_or_null(d->original_envelope_id));
	r |= jset(o, "orig_message_id", jstr_or_null(d->orig_message_id));
	for (size_t i = 0; i < d->n_rcpts && r == 0; i++) {
		json_t *x = json_object();

		if (x == NULL || json_array_append_new(rc, x) != 0) {
			r = -ENOMEM;
			break;
		}
		r |= jset(x, "action", jstr_or_null(d->rcpts[i].action));
		r |= jset(x, "status", jstr_or_null(d->rcpts[i].status));
		r |= jset(x, "final_recipient", jstr_or_null(d->rcpts[i].final_recipient));
		r |= jset(x, "diagnostic_code", jstr_or_null(d->rcpts[i].diagnostic_code));
	}
	r |= jset(o, "recipients", rc);
	if (r != 0) {
		json_decref(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}

int
inmsg_to_json(const struct inmsg *m, const struct inmsg_addrs *a, json_t **out)
{
	struct inmsg_class_info ci;
	enum inmsg_class c = inmsg_classify(m, a, &ci);
	json_t *o, *atts, *dsn = NULL;
	int r = 0;

	*out = NULL;
	if (m == NULL)
		return -EINVAL;
	if ((o = json_object()) == NULL)
		return -ENOMEM;
	r |= jset(o, "class", json_string(inmsg_class_name(c)));
	r |= jset(o, "reason", json_string(ci.reason));
	r |= jset(o, "message_id", jstr_or_null(m->message_id));
	r |= jset(o, "in_reply_to", jstr_or_null(m->in_reply_to));
	r |= jset(o, "from", jstr_or_null(m->from_addr));
	r |= jset(o, "token_present", json_boolean(ci.token[0] != '\0'));
	r |= jset(o, "verp", ci.verp[0] ? json_string(ci.verp) : json_null());
	r |= jset(o, "has_pgp_encrypted", json_boolean(m->pgp & INMSG_PGP_ENCRYPTED));
	r |= jset(o, "has_pgp_signature", json_boolean(m->pgp & INMSG_PGP_SIGNED));
	r |= jset(o, "nested_signed_or_encrypted", json_integer(m->nested_crypto));
	r |= jset(o, "protected_headers", json_boolean(m->prot.present));
	r |= jset(o, "from_count", json_integer(m->from_count));
	r |= jset(o, "auto_submitted", jstr_or_null(m->auto_submitted));
	r |= jset(o, "content_type", jstr_or_null(m->content_type));
	r |= jset(o, "part_count", json_integer(m->part_count));
	r |= jset(o, "depth", json_integer(m->depth));
	r |= jset(o, "body_bytes", json_integer((json_int_t)m->body_len));
	r |= jset(o, "authentication_results",
		  json_integer((json_int_t)m->auth_results.n));
	{
		const char *why = NULL;

		inmsg_no_autoresponse(m, &why);
		r |= jset(o, "no_autoresponse", jstr_or_null(why));
	}
	if (r == 0 && (atts = json_array()) != NULL) {
		for (size_t i = 0; i < m->n_attachments && r == 0; i++) {
			const struct inmsg_attachment *at = &m->attachments[i];
			json_t *x = json_object();

			if (x == NULL || json_array_append_new(atts, x) != 0) {
				r = -ENOMEM;
				break;
			}
			r |= jset(x, "filename", jstr_or_null(at->filename));
			r |= jset(x, "content_type", jstr_or_null(at->content_type));
			r |= jset(x, "size", json_integer((json_int_t)at->len));
		}
		r |= jset(o, "attachments", atts);
	} else
		r = -ENOMEM;
	if (r == 0 && dsn_to_json(&m->dsn, &dsn) == 0)
		r |= jset(o, "dsn", dsn);
	else
		r = -ENOMEM;
	if (r != 0) {
		json_decref(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}
