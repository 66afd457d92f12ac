/*
 * NAME
 *	replyclean - a reply's text made ready for the trimmer's line rules
 * DESCRIPTION
 *	See replyclean.h. Each step is one of email_reply_trimmer's gsubs,
 *	its regular expression quoted above the function that stands for
 *	it.
 */
#include "replyclean.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "replymark.h"
#include "u8scan.h"
#include "util.h"

static void
strip_buf(struct buf *b)
{
	size_t i = 0, j = b->len;

	u8_strip_span(b->data, &i, &j);
	u8_keep(b, i, j);
}

/* PGP armour: the signed-message header and the signature block. */
static int
strip_pgp(struct buf *t)
{
	static const char head[] = "-----BEGIN PGP SIGNED MESSAGE-----\n";
	static const char sig_begin[] = "-----BEGIN PGP SIGNATURE-----";
	static const char sig_end[] = "-----END PGP SIGNATURE-----";
	const char *s = t->data;
	size_t len = t->len, p, q, b = (size_t)-1, e = (size_t)-1, ls;

	if (u8_lit_at(s, 0, len, head, 1)) {
		p = q = sizeof(head) - 1;
		if (u8_lit_at(s, p, len, "Hash: ", 0) &&
		    p + 6 < len && u8_is_ascii_word((unsigned char)s[p + 6]))
			q = u8_skip(s, p + 6, len, u8_is_ascii_word);
		if (q < len && u8_is_ascii_space((unsigned char)s[q]))
			p = q;
		if (p < len && u8_is_ascii_space((unsigned char)s[p])) {
			while (p < len && u8_is_ascii_space((unsigned char)s[p]))
				p++;
			u8_keep(t, p, len);
			s = t->data;
			len = t->len;
		}
	}
	for (ls = 0; ls < len; ls = u8_line_end(s, ls, len) + 1) {
		size_t le = u8_line_end(s, ls, len);

		if (b == (size_t)-1 && le - ls == sizeof(sig_begin) - 1 &&
		    memcmp(s + ls, sig_begin, le - ls) == 0)
			b = ls;
		else if (b != (size_t)-1 && ls > b + sizeof(sig_begin) &&
			 u8_lit_at(s, ls, len, sig_end, 0))
			e = ls + sizeof(sig_end) - 1;
		if (le == len)
			break;
	}
	if (b != (size_t)-1 && e != (size_t)-1) {
		memmove(t->data + b, t->data + e, len - e);
		t->len -= e - b;
		t->data[t->len] = '\0';
	}
	return 0;
}

/* ^Unsubscribe: .+@.+(\n.+http:.+)?\s*\z */
static int
is_unsubscribe_line(const char *s, size_t ls, size_t le)
{
	size_t n = u8_lit_at(s, ls, le, "Unsubscribe: ", 1);
	const char *at;

	if (n == 0 || ls + n + 1 >= le)
		return 0;
	at = memchr(s + ls + n + 1, '@', le - ls - n - 1);
	return at != NULL && (size_t)(at - s) + 1 < le;
}

static int
is_http_line(const char *s, size_t ls, size_t le)
{
	size_t k = u8_find_lit(s, ls + 1, le, "http:", 0);

	return ls < le && k < le && k + 5 < le;
}

static void
strip_unsubscribe(struct buf *t)
{
	const char *s = t->data;
	size_t len = t->len, last, prev;

	if (len == 0)
		return;
	last = len;
	while (last > 0 && s[last - 1] != '\n')
		last--;
	if (last > 0) {
		prev = last - 1;
		while (prev > 0 && s[prev - 1] != '\n')
			prev--;
		if (is_unsubscribe_line(s, prev, last - 1) &&
		    is_http_line(s, last, len)) {
			t->len = prev;
			t->data[t->len] = '\0';
			return;
		}
	}
	if (is_unsubscribe_line(s, last, len)) {
		t->len = last;
		t->data[t->len] = '\0';
	}
}

/* A line rewriter: line [ls, le) of s, rewritten, appended to out. */
typedef int (*line_rewrite_fn)(const char *s, size_t ls, size_t le,
			       struct buf *out);

/* rewrite_lines - every line of t through fn; out is scratch, swapped with t. */
static int
rewrite_lines(struct buf *t, struct buf *out, line_rewrite_fn fn)
{
	const char *s = t->data;
	size_t len = t->len, ls = 0;
	int r = 0;

	buf_reset(out);
	while (ls <= len && r == 0) {
		size_t le = u8_line_end(s, ls, len);

		r = fn(s, ls, le, out);
		if (r == 0 && le < len)
			r = buf_putc(out, '\n');
		ls = le + 1;
	}
	if (r == 0) {
		struct buf tmp = *t;

		*t = *out;
		*out = tmp;
	}
	return r;
}

/* ^.*>{5} "[^"\n]+" == .+ writes: is removed. */
static int
strip_alias_line(const char *s, size_t ls, size_t le, struct buf *out)
{
	size_t cut = ls;
	const char *g = le - ls > 7 ? memmem(s + ls, le - ls, ">>>>> \"", 7) :
				      NULL;

	if (g != NULL) {
		size_t q = (size_t)(g - s) + 7;
		const char *cq = memchr(s + q, '"', le - q);

		if (cq && (size_t)(cq - s) > q &&
		    u8_lit_at(s, (size_t)(cq - s), le, "\" == ", 0)) {
			size_t from = (size_t)(cq - s) + 6;

			for (size_t k = from; k + 7 <= le; k++)
				if (memcmp(s + k, "writes:", 7) == 0)
					cut = k + 7;
		}
	}
	return buf_append(out, s + cut, le - cut);
}

static int
strip_alias_quotes(struct buf *t, struct buf *out)
{
	if (memmem(t->data, t->len, ">>>>> \"", 7) == NULL)
		return 0;
	return rewrite_lines(t, out, strip_alias_line);
}

/*
 * Enclosed-style quotes:
 *	^>>> ?(.+) ?>>>$\n([\s\S]+?)\n^<<< ?\1 ?<<<$
 *	^>{4,}[[:blank:]]*$\n([\s\S]+?)\n^<{4,}[[:blank:]]*$
 * The body's lines are prefixed with "> ", the marker lines go.
 */
#define ENCLOSED_MAX_OPENERS	64
#define ENCLOSED_MAX_SEARCH	20000

static int
enclosed_named_close(const char *s, size_t ls, size_t le, const char *name,
		     size_t nl)
{
	for (int a = 0; a < 2; a++)
		for (int b = 0; b < 2; b++) {
			size_t need = 3 + (size_t)a + nl + (size_t)b + 3;

			if (le - ls != need || memcmp(s + ls, "<<<", 3) != 0 ||
			    (a && s[ls + 3] != ' ') ||
			    memcmp(s + ls + 3 + a, name, nl) != 0 ||
			    (b && s[ls + 3 + a + nl] != ' ') ||
			    memcmp(s + le - 3, "<<<", 3) != 0)
				continue;
			return 1;
		}
	return 0;
}

static int
enclosed_angle_line(const char *s, size_t ls, size_t le, char c)
{
	size_t i = ls;

	while (i < le && s[i] == c)
		i++;
	return i - ls >= 4 && u8_skip(s, i, le, u8_is_blank) == le;
}

static int
rewrite_enclosed(struct buf *t, struct buf *out, int named)
{
	const char *s = t->data;
	size_t len = t->len, ls = 0;
	unsigned openers = 0;
	int r = 0, changed = 0;

	buf_reset(out);
	while (ls <= len && r == 0) {
		size_t le = u8_line_end(s, ls, len), name = 0, nl = 0;
		size_t cs = (size_t)-1, ce = 0, k, searched = 0;
		int opener = 0;

		if (named && le - ls >= 7 && memcmp(s + ls, ">>>", 3) == 0 &&
		    memcmp(s + le - 3, ">>>", 3) == 0) {
			name = ls + 3 + (s[ls + 3] == ' ' && le - ls > 7);
			nl = le - 3 - name;
			opener = 1;
		} else if (!named) {
			opener = enclosed_angle_line(s, ls, le, '>');
		}
		if (opener && le < len && openers++ < ENCLOSED_MAX_OPENERS) {
			for (k = le + 1; k <= len &&
			     searched++ < ENCLOSED_MAX_SEARCH;) {
				size_t ke = u8_line_end(s, k, len);

				if (k > le + 1 &&
				    (named ? enclosed_named_close(s, k, ke,
								  s + name, nl) :
				     enclosed_angle_line(s, k, ke, '<'))) {
					cs = k;
					ce = ke;
					break;
				}
				if (ke == len)
					break;
				k = ke + 1;
			}
		}
		if (cs != (size_t)-1) {
			for (k = le + 1; k < cs && r == 0;) {
				size_t ke = u8_line_end(s, k, len);

				r = buf_append(out, "> ", 2);
				if (r == 0)
					r = buf_append(out, s + k, ke - k);
				if (r == 0 && ke + 1 < cs)
					r = buf_putc(out, '\n');
				k = ke + 1;
			}
			changed = 1;
			le = ce;
		} else {
			r = buf_append(out, s + ls, le - ls);
		}
		if (r == 0 && le < len)
			r = buf_putc(out, '\n');
		ls = le + 1;
	}
	if (r == 0 && changed) {
		struct buf tmp = *t;

		*t = *out;
		*out = tmp;
	}
	return r;
}

/*
 * fix all quote formats: ^((?:[[:blank:]]*[[:alpha:]]*[>|])+) with
 * "[[:alpha:]]+>" and "|" in it becoming ">".
 */
static int
is_bar_or_gt(const char *s, size_t i, size_t end)
{
	return i < end && (s[i] == '>' || s[i] == '|');
}

static int
fix_quote_line(const char *s, size_t ls, size_t le, struct buf *out)
{
	size_t p = ls;
	int r;

	for (;;) {
		size_t b = u8_skip(s, p, le, u8_is_blank);
		size_t a = u8_skip(s, b, le, u8_is_alpha);

		if (!is_bar_or_gt(s, a, le))
			break;
		r = buf_append(out, s + p, b - p);
		if (r == 0 && (s[a] == '|' || a == b))
			r = buf_append(out, s + b, a - b);
		if (r == 0)
			r = buf_putc(out, '>');
		if (r < 0)
			return r;
		p = a + 1;
	}
	return buf_append(out, s + p, le - p);
}

static int
fix_quote_prefixes(struct buf *t, struct buf *out)
{
	return rewrite_lines(t, out, fix_quote_line);
}

int
replyclean_run(struct buf *t)
{
	_cleanup_buf_ struct buf tmp = BUF_INIT;
	int r;

	strip_buf(t);
	if ((r = strip_pgp(t)) < 0)
		return r;
	strip_unsubscribe(t);
	if ((r = strip_alias_quotes(t, &tmp)) < 0 ||
	    (r = rewrite_enclosed(t, &tmp, 1)) < 0 ||
	    (r = rewrite_enclosed(t, &tmp, 0)) < 0 ||
	    (r = fix_quote_prefixes(t, &tmp)) < 0 ||
	    (r = replymark_join_wrapped(t, &tmp)) < 0)
		return r;
	strip_buf(t);
	return 0;
}

