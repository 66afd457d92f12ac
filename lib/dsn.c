/*
 * NAME
 *	dsn - the fields of an RFC 3464 delivery-status report
 * DESCRIPTION
 *	See dsn.h.
 */
#include "dsn.h"

#include <ctype.h>
#include <strings.h>

#include "buf.h"
#include "mailtext.h"
#include "util.h"

char *
report_value(const char *v, size_t len, unsigned how)
{
	const char *semi;
	char *s;

	if (len > DSN_MAX_VALUE)
		len = DSN_MAX_VALUE;
	if ((how & REPORT_AFTER_SEMI) && (semi = memchr(v, ';', len)) != NULL) {
		len -= (size_t)(semi + 1 - v);
		v = semi + 1;
	}
	s = mailtext_header_dup(v, len);
	if (s && (how & REPORT_LOWER))
		mailtext_lower(s);
	if (s && (how & REPORT_WORD)) {	/* "5.1.1 (comment)" -> "5.1.1" */
		char *p = s;

		while (*p && !isspace((unsigned char)*p) && *p != '(')
			p++;
		*p = '\0';
	}
	if (s && (how & REPORT_ANGLE)) {	/* "<a@b>" -> "a@b" */
		char *t = mailtext_strip_angle_dup(s);

		free(s);
		s = t;
	}
	return s;
}

static int
dsn_field(struct inmsg_dsn *dsn, struct inmsg_dsn_rcpt *rc, const char *name,
	  size_t nlen, const char *v, size_t vlen)
{
#define IS(s) (nlen == sizeof(s) - 1 && strncasecmp(name, s, nlen) == 0)
	char **slot = NULL;
	unsigned how = 0;

	if (IS("original-envelope-id"))
		slot = &dsn->original_envelope_id;
	else if (IS("reporting-mta")) {
		slot = &dsn->reporting_mta;
		how = REPORT_AFTER_SEMI;
	} else if (rc == NULL)
		return 0;
	else if (IS("action")) {
		slot = &rc->action;
		how = REPORT_LOWER;
	} else if (IS("status")) {
		slot = &rc->status;
		how = REPORT_WORD;
	} else if (IS("final-recipient")) {
		slot = &rc->final_recipient;
		how = REPORT_AFTER_SEMI | REPORT_LOWER | REPORT_ANGLE;
	} else if (IS("original-recipient")) {
		slot = &rc->original_recipient;
		how = REPORT_AFTER_SEMI | REPORT_LOWER | REPORT_ANGLE;
	} else if (IS("diagnostic-code"))
		slot = &rc->diagnostic_code;
#undef IS
	if (slot == NULL || *slot != NULL)
		return 0;
	return (*slot = report_value(v, vlen, how)) == NULL ? -ENOMEM : 0;
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

int
report_fields(const char *s, size_t len, report_field_fn fn, void *ud)
{
	for (size_t j = 0; j < len;) {
		const char *nl = memchr(s + j, '\n', len - j);
		size_t e = nl ? (size_t)(nl - s) : len;
		const char *colon = memchr(s + j, ':', e - j);
		struct buf v = BUF_INIT;
		size_t k;
		int r;

		if (colon == NULL || s[j] == ' ' || s[j] == '\t') {
			j = e + 1;
			continue;
		}
		r = append_capped(&v, colon + 1, (size_t)(s + e - colon - 1));
		for (k = e + 1; r >= 0 && k < len && (s[k] == ' ' || s[k] == '\t');) {
			const char *nl2 = memchr(s + k, '\n', len - k);
			size_t e2 = nl2 ? (size_t)(nl2 - s) : len;

			r = append_capped(&v, s + k, e2 - k);
			k = e2 + 1;
		}
		if (r >= 0)
			r = fn(ud, s + j, (size_t)(colon - (s + j)),
			       v.data ? v.data : "", v.len);
		buf_free(&v);
		if (r < 0)
			return r;
		j = k;
	}
	return 0;
}

/* One block of a DSN: the report, and its recipient (NULL: per message). */
struct block {
	struct inmsg_dsn *dsn;
	struct inmsg_dsn_rcpt *rc;
};

static int
block_field(void *ud, const char *name, size_t nlen, const char *v, size_t vlen)
{
	struct block *b = ud;

	return dsn_field(b->dsn, b->rc, name, nlen, v, vlen);
}

/*
 * dsn_parse - RFC 3464 body: blocks of header-style fields separated
 * by blank lines; the first is per-message, the rest per-recipient.
 * text has LF line ends (from mailtext_to_utf8).
 */
int
dsn_parse(struct inmsg_dsn *dsn, const char *s, size_t len)
{
	size_t i = 0;
	int block = 0;

	dsn->present = 1;
	while (i < len) {
		struct inmsg_dsn_rcpt *rc = NULL;
		size_t bstart, bend;
		const char *blank;
		int r;

		while (i < len && (s[i] == '\n' || s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i >= len)
			break;
		bstart = i;
		blank = memmem(s + i, len - i, "\n\n", 2);
		bend = blank ? (size_t)(blank - s) + 1 : len;
		if (block > 0 || block_has_recipient(s + bstart, bend - bstart)) {
			struct inmsg_dsn_rcpt *nr;

			if (dsn->n_rcpts >= INMSG_MAX_DSN_RCPTS)
				break;
			nr = realloc(dsn->rcpts, (dsn->n_rcpts + 1) * sizeof(*nr));
			if (nr == NULL)
				return -ENOMEM;
			dsn->rcpts = nr;
			rc = &nr[dsn->n_rcpts++];
			memset(rc, 0, sizeof(*rc));
		}
		r = report_fields(s + bstart, bend - bstart, block_field,
				  &(struct block){ dsn, rc });
		if (r < 0)
			return r;
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

/* The first field of a name, as report_header looks for it. */
struct header_find {
	const char *name;
	char *value;
	int failed;
};

static int
header_field(void *ud, const char *name, size_t nlen, const char *v, size_t vlen)
{
	struct header_find *h = ud;

	if (h->value != NULL || nlen != strlen(h->name) ||
	    strncasecmp(name, h->name, nlen) != 0)
		return 0;
	if ((h->value = report_value(v, vlen, 0)) == NULL)
		h->failed = 1;
	return 0;
}

char *
report_header(const char *s, size_t len, const char *name)
{
	struct header_find h = { name, NULL, 0 };
	size_t end = 0;

	/* the header block: up to the first empty line */
	while (end < len) {
		const char *nl = memchr(s + end, '\n', len - end);
		size_t e = nl ? (size_t)(nl - s) : len;

		if (e == end || (e == end + 1 && s[end] == '\r'))
			break;
		end = nl ? e + 1 : len;
	}
	if (report_fields(s, end, header_field, &h) < 0 || h.failed) {
		free(h.value);
		return NULL;
	}
	return h.value;
}

int
dsn_take_returned_headers(struct inmsg_dsn *dsn, const char *raw, size_t len)
{
	_cleanup_free_ char *mid = NULL;

	dsn->orig_headers_present = 1;
	if (dsn->orig_message_id != NULL || raw == NULL)
		return 0;
	if ((mid = report_header(raw, len, "message-id")) == NULL)
		return 0;
	dsn->orig_message_id = mailtext_strip_angle_dup(mid);
	return dsn->orig_message_id ? 0 : -ENOMEM;
}

void
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
