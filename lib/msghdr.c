/*
 * NAME
 *	msghdr - the header facts of a received message
 * DESCRIPTION
 *	See msghdr.h. libetpan reads the fields (mailimf); this file picks
 *	out what carepost decides on and makes it clean UTF-8 (mailtext.c).
 */
#include "msghdr.h"

#include <ctype.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "mailtext.h"
#include "mimescan.h"
#include "util.h"

void
msghdr_strlist_free(struct inmsg_strlist *l)
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

int
msghdr_take(struct inmsg *m, const struct mailimf_fields *fields)
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

/*
 * msghdr_take_protected - see msghdr.h: what the sender's client put
 * inside, out of an intermediary's reach.
 */
int
msghdr_take_protected(struct inmsg *m, const char *raw, size_t len)
{
	size_t hlen = mimescan_header_len(raw, len), idx = 0;
	struct mailimf_fields *fields = NULL;
	int r;

	if (m->prot.present || hlen > INMSG_MAX_HEADER_BYTES)
		return 0;
	r = mailimf_fields_parse(raw, hlen, &idx, &fields);
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
