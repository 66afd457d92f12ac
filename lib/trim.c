/*
 * NAME
 *	trim - cut a patient's reply email down to the reply itself
 * DESCRIPTION
 *	See trim.h. The rules are those of discourse's email_reply_trimmer:
 *	the text is cleaned (replyclean.c), each line classified
 *	(replymark.c), and the string of line classes edited by the rules
 *	below, each named after the Ruby code it stands for, so that the two
 *	can be compared rule by rule.
 *
 *	The text is kept valid UTF-8 from the first step on (see
 *	buf_append_text), so the matchers decode without re-checking.
 */
#include "trim.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "replyclean.h"
#include "replymark.h"
#include "u8scan.h"

struct line {
	size_t off, len;
};

/* ------------------------------------------------------- the pattern */

/*
 * The Ruby code edits a pattern string and a lines array in step.
 * Here both are arrays edited with the same helpers.
 */
struct lines {
	struct line *v;
	char *pat;
	size_t n;
};

static void
lines_truncate(struct lines *l, size_t n)
{
	if (n < l->n)
		l->n = n;
}

/* remove every line whose pattern letter is c */
static void
lines_drop(struct lines *l, char c)
{
	size_t o = 0;

	for (size_t i = 0; i < l->n; i++) {
		if (l->pat[i] == c)
			continue;
		l->v[o] = l->v[i];
		l->pat[o++] = l->pat[i];
	}
	l->n = o;
}

static void
lines_keep_from(struct lines *l, size_t from)
{
	memmove(l->v, l->v + from, (l->n - from) * sizeof(*l->v));
	memmove(l->pat, l->pat + from, l->n - from);
	l->n -= from;
}

static size_t
pat_find(const struct lines *l, char c)
{
	const char *p = memchr(l->pat, c, l->n);

	return p ? (size_t)(p - l->pat) : (size_t)-1;
}

static int
in_set(char c, const char *set)
{
	return c != '\0' && strchr(set, c) != NULL;
}

/* code fences: gsub(/[cp][etd]*[xp]/) { upcase } */
static void
pat_upcase_code(struct lines *l)
{
	size_t i = 0;

	while (i < l->n) {
		size_t j;

		if (!in_set(l->pat[i], "cp")) {
			i++;
			continue;
		}
		for (j = i + 1; j < l->n && in_set(l->pat[j], "etd"); j++)
			;
		if (j < l->n && in_set(l->pat[j], "xp")) {
			for (size_t k = i; k <= j; k++)
				l->pat[k] = (char)(l->pat[k] - 'a' + 'A');
			i = j + 1;
		} else {
			i++;
		}
	}
}

/* /^b[^t]+t[et]*$/ -> the index of /t[et]*$/, or -1 */
static size_t
pat_reply_at_end(const struct lines *l)
{
	size_t n = l->n, k = n;

	if (n < 3 || l->pat[0] != 'b')
		return (size_t)-1;
	while (k > 0 && in_set(l->pat[k - 1], "et"))
		k--;
	/* the [et]* run must start with t after at least one non-t */
	while (k < n && l->pat[k] != 't')
		k++;
	if (k == n || k < 2)
		return (size_t)-1;
	for (size_t i = 1; i < k; i++)
		if (l->pat[i] == 't')
			return (size_t)-1;
	return k;
}

/* /te*b[^q]*$/ -> index of the t */
static size_t
pat_marker_no_quote(const struct lines *l)
{
	size_t n = l->n, k = n;

	while (k > 0 && l->pat[k - 1] != 'q')
		k--;
	/* b must be at >= k; the leftmost t e* b with b >= k */
	for (size_t t = 0; t < n; t++) {
		size_t j;

		if (l->pat[t] != 't')
			continue;
		for (j = t + 1; j < n && l->pat[j] == 'e'; j++)
			;
		if (j < n && l->pat[j] == 'b' && j >= k)
			return t;
	}
	return (size_t)-1;
}

/*
 * /te*b[eqbh]*([te]*)$/ && $1.count("t") < 7 -> index of the t.
 * ok[i]: pat[i..] matches [eqbh]*[te]*$.
 */
static size_t
pat_marker_big_quote(const struct lines *l, unsigned char *ok)
{
	size_t n = l->n;

	ok[n] = 1;
	{
		int te = 1;

		for (size_t i = n; i-- > 0;) {
			te = te && in_set(l->pat[i], "te");
			ok[i] = te || (in_set(l->pat[i], "eqbh") && ok[i + 1]);
		}
	}
	for (size_t t = 0; t < n; t++) {
		size_t j, m, ts = 0;

		if (l->pat[t] != 't')
			continue;
		for (j = t + 1; j < n && l->pat[j] == 'e'; j++)
			;
		if (j >= n || l->pat[j] != 'b' || !ok[j + 1])
			continue;
		for (m = j + 1; m < n && in_set(l->pat[m], "eqbh"); m++)
			;
		for (; m < n; m++)
			ts += l->pat[m] == 't';
		return ts < 7 ? t : (size_t)-1;
	}
	return (size_t)-1;
}

/* /t?e*[qbe]+$/ -> index of the match */
static size_t
pat_text_then_quote(const struct lines *l)
{
	size_t k = l->n;

	while (k > 0 && in_set(l->pat[k - 1], "qbe"))
		k--;
	if (k == l->n)
		return (size_t)-1;
	if (k > 0 && l->pat[k - 1] == 't')
		k--;
	return k;
}

/* /h+[hte]+h+e/ -> make the whole match h */
static void
pat_merge_headers(struct lines *l)
{
	size_t n = l->n, i = 0;

	while (i < n) {
		size_t s, run, jmax = (size_t)-1;

		if (l->pat[i] != 'h') {
			i++;
			continue;
		}
		s = i;
		for (run = s; run < n && in_set(l->pat[run], "hte"); run++)
			if (run > s && l->pat[run] == 'e' &&
			    l->pat[run - 1] == 'h')
				jmax = run;
		if (jmax != (size_t)-1 && jmax >= s + 3) {
			memset(l->pat + s, 'h', jmax - s + 1);
			return;
		}
		/* later h's in the same run fare no better */
		i = run;
	}
}

/* /t[eq]*h{3,}/ -> index of the t */
static size_t
pat_text_then_headers(const struct lines *l)
{
	size_t n = l->n;

	for (size_t t = 0; t < n; t++) {
		size_t j, h;

		if (l->pat[t] != 't')
			continue;
		for (j = t + 1; j < n && in_set(l->pat[j], "eq"); j++)
			;
		for (h = j; h < n && l->pat[h] == 'h'; h++)
			;
		if (h - j >= 3)
			return t;
	}
	return (size_t)-1;
}

static void
apply_rules(struct lines *l, unsigned char *ok)
{
	size_t i;

	pat_upcase_code(l);
	if ((i = pat_find(l, 'd')) != (size_t)-1)
		lines_truncate(l, i);
	lines_drop(l, 's');
	if ((i = pat_reply_at_end(l)) != (size_t)-1) {
		lines_keep_from(l, i);
		/* the Ruby code empties the pattern: no rule applies now */
		return;
	}
	if ((i = pat_marker_no_quote(l)) != (size_t)-1)
		lines_truncate(l, i + 1);
	if ((i = pat_marker_big_quote(l, ok)) != (size_t)-1)
		lines_truncate(l, i + 1);
	if ((i = pat_text_then_quote(l)) != (size_t)-1)
		lines_truncate(l, i + 1);
	lines_drop(l, 'b');
	pat_merge_headers(l);
	if ((i = pat_text_then_headers(l)) != (size_t)-1)
		lines_truncate(l, i + 1);
	lines_drop(l, 'h');
	if (pat_find(l, 't') != (size_t)-1 && l->n > 0 &&
	    in_set(l->pat[l->n - 1], "eq")) {
		i = l->n;
		while (i > 0 && in_set(l->pat[i - 1], "eq"))
			i--;
		lines_truncate(l, i);
	}
}

/* ------------------------------------------------------------ output */

static int
line_eq(const char *s, struct line a, struct line b)
{
	return a.len == b.len && memcmp(s + a.off, s + b.off, a.len) == 0;
}

/* join lines with "\n", then strip, into a new string */
static int
join_lines(const char *s, const struct line *v, size_t n, char **out)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	size_t i, j;
	int r = 0;

	for (size_t k = 0; k < n && r == 0; k++) {
		if (k > 0)
			r = buf_putc(&b, '\n');
		if (r == 0)
			r = buf_append(&b, s + v[k].off, v[k].len);
	}
	if (r < 0)
		return r;
	i = 0;
	j = b.len;
	if (b.data != NULL) {
		u8_strip_span(b.data, &i, &j);
		u8_keep(&b, i, j);
	}
	*out = buf_steal(&b, NULL);
	return *out ? 0 : -ENOMEM;
}

/* compute_elided: walk the original lines, skipping the kept ones. */
static int
compute_elided(const char *s, const struct line *orig, size_t n_orig,
	       const struct line *kept, size_t n_kept, char **out)
{
	_cleanup_free_ struct line *el = NULL;
	size_t t = 0, k = 0, n = 0;

	el = malloc((n_orig + 1) * sizeof(*el));
	if (el == NULL)
		return -ENOMEM;
	while (t < n_orig) {
		while (k < n_kept && t < n_orig && line_eq(s, orig[t], kept[k])) {
			t++;
			k++;
		}
		if (t < n_orig)
			el[n++] = orig[t];
		t++;
	}
	return join_lines(s, el, n, out);
}

static int
empty_result(char **reply_out, char **elided_out)
{
	*reply_out = strdup("");
	if (*reply_out == NULL)
		return -ENOMEM;
	if (elided_out != NULL) {
		*elided_out = strdup("");
		if (*elided_out == NULL) {
			free(*reply_out);
			*reply_out = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

int
trim_reply(const char *text, size_t len, char **reply_out, char **elided_out,
	   struct cp_error *err)
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	_cleanup_free_ struct line *orig = NULL;
	_cleanup_free_ struct line *kept = NULL;
	_cleanup_free_ char *pat = NULL;
	_cleanup_free_ unsigned char *ok = NULL;
	_cleanup_free_ char *reply = NULL;
	struct lines l;
	size_t n, ls, i;
	int r;

	if (reply_out == NULL || (text == NULL && len > 0))
		return cp_error_set(err, -EINVAL, "trim: bad arguments");
	*reply_out = NULL;
	if (elided_out != NULL)
		*elided_out = NULL;
	if (len > TRIM_MAX_SIZE)
		return cp_error_set(err, -EFBIG,
				    "trim: reply of %zu bytes exceeds %u",
				    len, TRIM_MAX_SIZE);
	n = 1;
	for (i = 0; i < len; i++)
		n += text[i] == '\n' || (text[i] == '\r' &&
					 (i + 1 == len || text[i + 1] != '\n'));
	if (n > TRIM_MAX_LINES)
		return cp_error_set(err, -E2BIG,
				    "trim: reply of %zu lines exceeds %u",
				    n, TRIM_MAX_LINES);
	if ((r = buf_append_text(&t, text, len)) < 0 || (r = replyclean_run(&t)) < 0)
		return cp_error_set(err, r, "trim: out of memory");
	if (t.len == 0 || u8_skip(t.data, 0, t.len, u8_is_space) == t.len) {
		r = empty_result(reply_out, elided_out);
		return r < 0 ? cp_error_set(err, r, "trim: out of memory") : 0;
	}

	for (n = 1, i = 0; i < t.len; i++)
		n += t.data[i] == '\n';
	orig = malloc(n * sizeof(*orig));
	kept = malloc(n * sizeof(*kept));
	pat = malloc(n + 1);
	ok = malloc(n + 1);
	if (orig == NULL || kept == NULL || pat == NULL || ok == NULL)
		return cp_error_set(err, -ENOMEM, "trim: out of memory");
	for (n = 0, ls = 0; ls <= t.len; n++) {
		size_t le = u8_line_end(t.data, ls, t.len);

		orig[n].off = ls;
		orig[n].len = le - ls;
		kept[n] = orig[n];
		pat[n] = replymark_classify(t.data + ls, le - ls);
		ls = le + 1;
	}
	l.v = kept;
	l.pat = pat;
	l.n = n;
	apply_rules(&l, ok);

	r = join_lines(t.data, l.v, l.n, &reply);
	if (r == 0 && elided_out != NULL)
		r = compute_elided(t.data, orig, n, l.v, l.n, elided_out);
	if (r < 0)
		return cp_error_set(err, r, "trim: out of memory");
	*reply_out = CP_TAKE_PTR(reply);
	return 0;
}

