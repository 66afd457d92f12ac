/*
 * NAME
 *	rawhdr - the facts carepostd reads itself from a message's raw
 *	header block, to check the parse helper's
 * DESCRIPTION
 *	See rawhdr.h. One pass over the header lines: each field unfolded
 *	into a bounded buffer, then handed to what keeps it.
 */
#include "rawhdr.h"

#include <ctype.h>
#include <strings.h>

#include "buf.h"

/*
 * name_is - the field in f (name, colon, value) is named name (white
 * space before the colon allowed, as RFC 5322's obsolete syntax and
 * libetpan do).
 */
static int
name_is(const char *f, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(f, name, n) != 0)
		return 0;
	while (n < len && (f[n] == ' ' || f[n] == '\t'))
		n++;
	return n < len && f[n] == ':';
}

/* value - the field's value after its colon, leading white space skipped. */
static const char *
value(const char *f, size_t len, size_t *vlen)
{
	const char *colon = memchr(f, ':', len), *v;

	if (colon == NULL) {
		*vlen = 0;
		return f + len;
	}
	v = colon + 1;
	while (v < f + len && (*v == ' ' || *v == '\t'))
		v++;
	*vlen = (size_t)(f + len - v);
	return v;
}

/*
 * add_authres - one Authentication-Results value, below those before. One
 * longer than RAWHDR_MAX_VALUE is cut to that, a byte more than authres
 * reads: it keeps its place (and its authserv-id: it may be the topmost
 * trusted one) and counts for nothing, as authres.h says of one so long.
 * Never dropped, which would make the one below it the topmost.
 */
static int
add_authres(struct rawhdr *h, const char *v, size_t len, int cut)
{
	char **nv, *copy;

	if (h->authres.n >= RAWHDR_MAX_AUTHRES)
		return 0;	/* only the topmost count, and they are kept */
	if (len > RAWHDR_MAX_VALUE)
		len = RAWHDR_MAX_VALUE;
	if (cut && len > RAWHDR_MAX_VALUE - 2)
		len = RAWHDR_MAX_VALUE - 2;
	nv = realloc(h->authres.v, (h->authres.n + 1) * sizeof(*nv));
	if (nv == NULL)
		return -ENOMEM;
	h->authres.v = nv;
	copy = malloc(len + 3);
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, v, len);
	/* Lines of it left out: an open comment makes what is left
	 * unreadable to authres, so it counts for nothing. */
	memcpy(copy + len, cut ? " (" : "", cut ? 3 : 1);
	nv[h->authres.n++] = copy;
	return 0;
}

/* keep_first - the first address of the first From field, once. */
static void
keep_first(struct rawhdr *h, int first, const char *bare, size_t nb,
	   const char *angle, size_t na, int had_angle, int bad)
{
	if (!first || bad)
		return;
	if (had_angle) {
		memcpy(h->from_addr, angle, na);
		h->from_addr[na] = '\0';
	} else {
		memcpy(h->from_addr, bare, nb);
		h->from_addr[nb] = '\0';
	}
}

/*
 * from_value - count the addresses of one From value, and remember the
 * addr-spec of the first one of the first field (its last angle-addr,
 * else its text outside comments).
 */
static void
from_value(struct rawhdr *h, const char *v, size_t len)
{
	char bare[RAWHDR_MAX_ADDR], angle[RAWHDR_MAX_ADDR];
	size_t nb = 0, na = 0, elements = 0;
	int quoted = 0, comment = 0, in_angle = 0, had_angle = 0, content = 0;
	int too_long = 0, qseen = 0, first = h->from_fields == 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (quoted) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '"')
				quoted = 0;
			continue;
		}
		if (comment) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				comment++;
			else if (c == ')')
				comment--;
			continue;
		}
		if (c == '(') {
			comment = 1;
			continue;
		}
		if (in_angle) {
			if (c == '>')
				in_angle = 0;
			else if (na < sizeof(angle) - 1)
				angle[na++] = (char)tolower(c);
			else
				too_long = 1;
			continue;
		}
		if (c == ',') {
			if (content) {
				keep_first(h, first && elements == 0, bare, nb, angle,
					   na, had_angle, too_long || (qseen && !had_angle));
				elements++;
			}
			content = had_angle = too_long = qseen = 0;
			nb = na = 0;
			continue;
		}
		if (c == '<') {
			in_angle = had_angle = 1;
			na = 0;
			content = 1;
			continue;
		}
		if (c == '"')	/* outside <>: a quoted local part is not read here */
			quoted = qseen = 1;
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			content = 1;
			if (nb < sizeof(bare) - 1)
				bare[nb++] = (char)tolower(c);
			else
				too_long = 1;
		}
	}
	if (content) {
		keep_first(h, first && elements == 0, bare, nb, angle, na, had_angle,
			   too_long || quoted || comment || in_angle ||
			   (qseen && !had_angle));
		elements++;
	}
	if (elements == 0)
		elements = 1;	/* an empty From still is one (as the parser counts) */
	h->from_fields++;
	h->from_addresses += (unsigned)elements;
}

/* add_recipients - one To, Cc, Delivered-To or X-Original-To value. */
static int
add_recipients(struct buf *b, const char *v, size_t len)
{
	/* room kept for the newline and the final NUL */
	if (b->len + 2 >= RAWHDR_MAX_RECIPIENTS)
		return 0;
	if (b->len + len + 2 > RAWHDR_MAX_RECIPIENTS)
		len = RAWHDR_MAX_RECIPIENTS - b->len - 2;
	if (buf_append(b, v, len) < 0 || buf_append(b, "\n", 1) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * field - one unfolded field; cut: lines of it were left out (over
 * RAWHDR_MAX_FIELD, or past the header block's limit). Such an
 * Authentication-Results value keeps its place and counts for nothing
 * (add_authres), such a From is not believed, and such a recipient
 * field names nobody.
 */
static int
field(struct rawhdr *h, struct buf *rcpt, const char *f, size_t len, int cut)
{
	size_t vlen;
	const char *v = value(f, len, &vlen);

	if (name_is(f, len, "Authentication-Results"))
		return add_authres(h, v, vlen, cut);
	if (name_is(f, len, "From")) {
		if (cut)
			h->from_cut = 1;
		from_value(h, v, vlen);
		return 0;
	}
	if (name_is(f, len, "DKIM-Signature")) {
		char *copy, **nv;

		if (cut || h->dkim.n >= RAWHDR_MAX_DKIM || vlen > RAWHDR_MAX_DKIM_VALUE)
			return 0;
		if ((copy = malloc(vlen + 1)) == NULL)
			return -ENOMEM;
		memcpy(copy, v, vlen);
		copy[vlen] = '\0';
		nv = realloc(h->dkim.v, (h->dkim.n + 1) * sizeof(*nv));
		if (nv == NULL) {
			free(copy);
			return -ENOMEM;
		}
		h->dkim.v = nv;
		nv[h->dkim.n++] = copy;
		return 0;
	}
	if (name_is(f, len, "Autocrypt")) {
		if (h->autocrypt_fields++ > 0 || cut || vlen > RAWHDR_MAX_AUTOCRYPT)
			return 0;
		if ((h->autocrypt = malloc(vlen + 1)) == NULL)
			return -ENOMEM;
		memcpy(h->autocrypt, v, vlen);
		h->autocrypt[vlen] = '\0';
		h->autocrypt_len = vlen;
		return 0;
	}
	/* A recipient field cut short names nobody (what is left could
	 * read as outside a comment or quote it is in). */
	if (!cut && (name_is(f, len, "To") || name_is(f, len, "Cc") ||
		     name_is(f, len, "Delivered-To") ||
		     name_is(f, len, "X-Original-To")))
		return add_recipients(rcpt, v, vlen);
	return 0;
}

int
rawhdr_scan(const char *raw, size_t len, struct rawhdr *h, struct cp_error *err)
{
	struct buf cur = BUF_INIT, rcpt = BUF_INIT;
	size_t i = 0, end = len < INMSG_MAX_HEADER_BYTES ? len : INMSG_MAX_HEADER_BYTES;
	int r = 0, cut = 0, ended = 0;

	memset(h, 0, sizeof(*h));
	while (i < end && r == 0) {
		const char *line = raw + i, *nl = memchr(line, '\n', end - i);
		size_t n = nl ? (size_t)(nl - line) : end - i;

		i += n + (nl != NULL);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0) {
			ended = 1;			/* the empty line */
			break;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			/* Unfolded; once a line is left out, so is the rest
			 * of the field (a later line alone could read as
			 * outside a comment or a quote it is in). */
			if (cur.len > 0 && !cut && cur.len + n <= RAWHDR_MAX_FIELD)
				r = buf_append(&cur, line, n);
			else if (cur.len > 0)
				cut = 1;
			continue;
		}
		if (cur.len > 0)
			r = field(h, &rcpt, cur.data, cur.len, cut);
		buf_reset(&cur);
		cut = 0;
		if (r == 0)
			r = buf_append(&cur, line, n);
	}
	/* A header block that did not end within the limit: its last field
	 * may go on past it. (One that ends with the message is whole.) */
	if (end == len)
		ended = 1;
	if (r == 0 && cur.len > 0)
		r = field(h, &rcpt, cur.data, cur.len, cut || !ended);
	if (r == 0)
		r = buf_append(&rcpt, "", 1);	/* NUL */
	buf_free(&cur);
	if (r < 0) {
		buf_free(&rcpt);
		rawhdr_free(h);
		return cp_error_set(err, -ENOMEM, "raw header scan: out of memory");
	}
	h->recipients = rcpt.data;	/* taken over */
	h->recipients_len = rcpt.len - 1;
	return 0;
}

void
rawhdr_free(struct rawhdr *h)
{
	for (size_t i = 0; i < h->authres.n; i++)
		free(h->authres.v[i]);
	free(h->authres.v);
	free(h->recipients);
	for (size_t i = 0; i < h->dkim.n; i++)
		free(h->dkim.v[i]);
	free(h->dkim.v);
	free(h->autocrypt);
	memset(h, 0, sizeof(*h));
}

int
rawhdr_from_is(const struct rawhdr *h, const char *addr)
{
	return !h->from_cut && addr != NULL && *addr != '\0' &&
	       strcasecmp(h->from_addr, addr) == 0;
}

/*
 * tagged - addr (an addr-spec, as element_addr makes it) is LOCAL+TOKEN@
 * something: the token is its local part's tag (ASCII case ignored).
 */
static int
tagged(const char *addr, size_t n, const char *token, size_t tl)
{
	const char *at = memchr(addr, '@', n);

	if (at == NULL || (size_t)(at - addr) < tl + 2)	/* "x+" at least */
		return 0;
	return at[-(ptrdiff_t)tl - 1] == '+' &&
	       strncasecmp(at - tl, token, tl) == 0;
}

int
rawhdr_recipients_name(const struct rawhdr *h, const char *token)
{
	char bare[RAWHDR_MAX_ADDR], angle[RAWHDR_MAX_ADDR];
	size_t tl = token ? strlen(token) : 0, nb = 0, na = 0;
	int quoted = 0, comment = 0, in_angle = 0, had_angle = 0, bad = 0;
	int gap = 0;

	if (tl == 0 || h->recipients == NULL)
		return 0;
	/* Each element of the address lists (fields are one a line; an
	 * element ends at a comma, a group's name at its colon): its
	 * angle-addr when it has one, else its text without comments, when
	 * that is one word. Display names, group names, comments and quoted
	 * strings never name a recipient. */
	for (const char *p = h->recipients;; p++) {
		int end = *p == '\0' || *p == '\n' ||
			  (!quoted && !comment && !in_angle && (*p == ',' || *p == ':' ||
								*p == ';'));

		if (end) {
			int group = *p == ':';	/* what came was its name */

			if (!group && !bad && !quoted && !comment && !in_angle &&
			    (had_angle ? tagged(angle, na, token, tl) :
			     tagged(bare, nb, token, tl)))
				return 1;
			if (*p == '\0')
				return 0;
			if (*p == '\n')
				quoted = comment = in_angle = 0;
			nb = na = 0;
			had_angle = bad = gap = 0;
			continue;
		}
		if ((quoted || comment) && *p == '\\' && p[1] != '\0' && p[1] != '\n') {
			p++;
			continue;
		}
		if (quoted) {
			quoted = *p != '"';
			continue;
		}
		if (comment) {
			comment += *p == '(' ? 1 : *p == ')' ? -1 : 0;
			continue;
		}
		if (in_angle) {
			if (*p == '>')
				in_angle = 0;
			else if (na < sizeof(angle) - 1)
				angle[na++] = *p;
			else
				bad = 1;
			continue;
		}
		if (*p == '"')
			quoted = 1;
		else if (*p == '(')
			comment = 1;
		else if (*p == '<') {
			in_angle = had_angle = 1;
			na = 0;
		} else if (*p == ' ' || *p == '\t' || *p == '\r') {
			gap = nb > 0;
		} else {
			/* a second word: a phrase, not an addr-spec */
			if (gap || nb >= sizeof(bare) - 1)
				bad = 1;
			else
				bare[nb++] = *p;
		}
	}
}
