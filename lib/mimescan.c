/*
 * NAME
 *	mimescan - a cheap look at a message's raw bytes before it is parsed
 * DESCRIPTION
 *	See mimescan.h.
 */
#include "mimescan.h"

#include <strings.h>

#include <libetpan/libetpan.h>

/* The pre-scan refuses messages libetpan would recurse or allocate too
 * much for; these caps hold whatever limits the caller configured. */
#define PRESCAN_MAX_CONTENT_TYPES	1024u
#define PRESCAN_MIN_DASH_LINES		4096u

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
 * mimescan_check - refuse what libetpan would recurse or allocate too deeply
 * for: nesting needs a Content-Type header per level, parts need a
 * boundary line each, and nesting deeper than max_depth (estimated, see
 * struct level) is refused before it is parsed.
 */
int
mimescan_check(const char *raw, size_t len, const struct inmsg_limits *lim,
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
unsigned
mimescan_header_fields(const char *raw, size_t len)
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

/* header_block_len - the bytes of an entity's header, blank line included. */
size_t
mimescan_header_len(const char *raw, size_t len)
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
