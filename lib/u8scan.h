/*
 * NAME
 *	u8scan - matching over valid UTF-8 text, the way Ruby's regexps do
 * SYNOPSIS
 *	#include "u8scan.h"
 *
 *	i = u8_skip(s, i, end, u8_is_blank);
 *	n = u8_lit_at(s, i, end, "wrote" LIT_S, 1);
 * DESCRIPTION
 *	The primitives the reply trimmer's hand-written matchers (replymark.c,
 *	replyclean.c, trim.c) are built from: code points of text already
 *	made valid UTF-8 (u8_get decodes without re-checking), character
 *	classes as Onigmo has them ([[:blank:]], [[:space:]], \s, \w, \b,
 *	[[:alpha:]]), simple case folding for the scripts the markers are
 *	written in, literals matched at a position (in a literal LIT_S is one
 *	ASCII white space, LIT_SP one or more), moves by code point and by
 *	line, and Ruby's String#strip. Locale-independent, no allocation.
 *
 *	Every function is static inline: the matchers call these in their
 *	innermost loops, once per byte of a reply.
 * ERRORS
 *	None can fail. Positions past end are never read; a position that
 *	matches nothing is returned as it came (u8_skip) or as 0 (u8_lit_at).
 * OWNERSHIP
 *	Text is only read, except by u8_keep, which moves the caller's
 *	buffer contents in place.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_U8SCAN_H
#define CAREPOST_U8SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

/* u8_get - the code point at s[i] (valid UTF-8, i < len); *n its bytes. */
static inline uint32_t
u8_get(const char *s, size_t len, size_t i, size_t *n)
{
	const unsigned char *p = (const unsigned char *)s + i;
	size_t avail = len - i;

	if (p[0] < 0x80 || avail < 2) {
		*n = 1;
		return p[0];
	}
	if (p[0] < 0xe0) {
		*n = 2;
		return ((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
	}
	if (p[0] < 0xf0 || avail < 4) {
		if (avail < 3) {
			*n = 1;
			return p[0];
		}
		*n = 3;
		return ((uint32_t)(p[0] & 0x0f) << 12) |
		       ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
	}
	*n = 4;
	return ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3f) << 12) |
	       ((uint32_t)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
}

/* [[:blank:]] as Onigmo has it for UTF-8: tab and the space separators. */
static inline int
u8_is_blank(uint32_t c)
{
	return c == ' ' || c == '\t' || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x202f || c == 0x205f ||
	       c == 0x3000;
}

/* [[:space:]] (Unicode White_Space). */
static inline int
u8_is_space(uint32_t c)
{
	return u8_is_blank(c) || (c >= '\n' && c <= '\r') || c == 0x85 ||
	       c == 0x2028 || c == 0x2029;
}

/* \s in a Ruby regexp: ASCII white space only. */
static inline int
u8_is_ascii_space(uint32_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static inline int
u8_is_digit(uint32_t c)
{
	return c >= '0' && c <= '9';
}

/* \w in a Ruby regexp: ASCII only. Also what \b looks at. */
static inline int
u8_is_ascii_word(uint32_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       u8_is_digit(c) || c == '_';
}

/*
 * [[:word:]]: letters, marks, digits, connector punctuation of any
 * script. Approximated: any code point outside the ASCII and Latin-1
 * punctuation, the general punctuation and symbol blocks, CJK
 * punctuation, full-width punctuation and the emoji planes.
 */
static inline int
u8_is_word(uint32_t c)
{
	if (c < 0x80)
		return u8_is_ascii_word(c);
	if (c < 0xc0)
		return c == 0xaa || c == 0xb5 || c == 0xba || c == 0xb2 ||
		       c == 0xb3 || c == 0xb9 || (c >= 0xbc && c <= 0xbe);
	if (c == 0xd7 || c == 0xf7 || u8_is_space(c))
		return 0;
	if ((c >= 0x2000 && c <= 0x2bff) || (c >= 0x3000 && c <= 0x303f) ||
	    (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff0f) ||
	    (c >= 0xff1a && c <= 0xff20) || (c >= 0xfff0 && c <= 0xffff) ||
	    c >= 0x1f000)
		return 0;
	return 1;
}

/* [[:alpha:]] approximated as [[:word:]] without digits and '_'. */
static inline int
u8_is_alpha(uint32_t c)
{
	return u8_is_word(c) && !u8_is_digit(c) && c != '_' &&
	       !(c >= 0xb2 && c <= 0xbe);
}

/* Simple case folding for the scripts the markers are written in. */
static inline uint32_t
u8_fold(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c < 0xc0)
		return c;
	if (c <= 0xde && c != 0xd7)
		return c + 32;
	if ((c >= 0x100 && c <= 0x137 && c % 2 == 0) ||
	    (c >= 0x139 && c <= 0x148 && c % 2 == 1) ||
	    (c >= 0x14a && c <= 0x177 && c % 2 == 0) ||
	    (c >= 0x179 && c <= 0x17e && c % 2 == 1))
		return c + 1;
	if ((c >= 0x391 && c <= 0x3a9) || (c >= 0x410 && c <= 0x42f))
		return c + 32;
	if (c >= 0x400 && c <= 0x40f)
		return c + 80;
	return c;
}

/* ---------------------------------------------------- literal matching */

/*
 * In a literal, '\t' stands for \s (one ASCII white space
 * character) and '\001' for \s+; every other byte is itself.
 */
#define LIT_S	"\t"
#define LIT_SP	"\001"

/*
 * u8_lit_space - a literal's '\t' (one ASCII white space) or '\001' (one or
 * more) at s[*p..end): 1 and *p past it, or 0.
 */
static inline int
u8_lit_space(const char *s, size_t *p, size_t end, char kind)
{
	if (*p >= end || !u8_is_ascii_space((unsigned char)s[*p]))
		return 0;
	(*p)++;
	if (kind == '\001')
		while (*p < end && u8_is_ascii_space((unsigned char)s[*p]))
			(*p)++;
	return 1;
}

/* u8_lit_match - u8_lit_at past its test of the first byte. */
static inline size_t
u8_lit_match(const char *s, size_t i, size_t end, const char *lit, int ci)
{
	size_t p = i, llen, q = 0;

	if (!ci) {
		/* Both are valid UTF-8: equal code points are equal bytes. */
		for (; lit[q] != '\0'; q++) {
			if (lit[q] == '\t' || lit[q] == '\001') {
				if (!u8_lit_space(s, &p, end, lit[q]))
					return 0;
				continue;
			}
			if (p >= end || s[p] != lit[q])
				return 0;
			p++;
		}
		return p - i;
	}
	llen = strlen(lit);
	while (q < llen) {
		size_t n, m;
		uint32_t a, b;

		if (lit[q] == '\t' || lit[q] == '\001') {
			if (!u8_lit_space(s, &p, end, lit[q]))
				return 0;
			q++;
			continue;
		}
		if (p >= end)
			return 0;
		a = u8_get(s, end, p, &n);
		b = u8_get(lit, llen, q, &m);
		if (u8_fold(a) != u8_fold(b))
			return 0;
		p += n;
		q += m;
	}
	return p - i;
}

/*
 * u8_lit_at - match the literal lit at s[i..end); ci: ignore case.
 * Returns the number of bytes matched, 0 when it does not match. Most
 * calls fail on the first byte, which is tested here, inline: a byte
 * that is itself in lit (not a '\t' or '\001' class) must be equal, or
 * with ci, for ASCII on both sides, equal once folded (a non-ASCII
 * character may fold to an ASCII one: that is u8_lit_match's to decide).
 */
static inline size_t
u8_lit_at(const char *s, size_t i, size_t end, const char *lit, int ci)
{
	unsigned char c0 = (unsigned char)lit[0], b0;

	if (c0 > '\001' && c0 != '\t' && i < end) {
		b0 = (unsigned char)s[i];
		if (!ci ? b0 != c0 :
		    b0 < 0x80 && c0 < 0x80 && u8_fold(b0) != u8_fold(c0))
			return 0;
	}
	return u8_lit_match(s, i, end, lit, ci);
}

/* u8_first_lit - the first of a NULL-terminated list that matches at i. */
static inline size_t
u8_first_lit(const char *s, size_t i, size_t end, const char *const *lits,
	  int ci)
{
	for (; *lits != NULL; lits++) {
		size_t n = u8_lit_at(s, i, end, *lits, ci);

		if (n)
			return n;
	}
	return 0;
}

/* u8_find_lit - the first position >= i where lit matches, or end. */
static inline size_t
u8_find_lit(const char *s, size_t i, size_t end, const char *lit, int ci)
{
	for (; i < end; i++)
		if (u8_lit_at(s, i, end, lit, ci))
			return i;
	return end;
}

/* u8_skip - past the code points for which pred holds. */
static inline size_t
u8_skip(const char *s, size_t i, size_t end, int (*pred)(uint32_t))
{
	while (i < end) {
		size_t n;

		if (!pred(u8_get(s, end, i, &n)))
			break;
		i += n;
	}
	return i;
}

static inline uint32_t
u8_cp_at(const char *s, size_t i, size_t end)
{
	size_t n;

	return i < end ? u8_get(s, end, i, &n) : 0;
}

/* u8_next_cp - the position after the code point at i. */
static inline size_t
u8_next_cp(const char *s, size_t i, size_t end)
{
	size_t n;

	u8_get(s, end, i, &n);
	return i + n;
}

/* u8_prev_cp - the code point before position i (0 at the start). */
static inline uint32_t
u8_prev_cp(const char *s, size_t i)
{
	size_t j = i, n;

	if (i == 0)
		return 0;
	j--;
	while (j > 0 && ((unsigned char)s[j] & 0xc0) == 0x80 && i - j < 4)
		j--;
	return u8_get(s, i, j, &n);
}

/* \b at position i, with Ruby's ASCII notion of a word character. */
static inline int
u8_word_boundary(const char *s, size_t i, size_t end)
{
	uint32_t a = u8_prev_cp(s, i);
	int wa = i > 0 && u8_is_ascii_word(a);
	int wb = i < end && u8_is_ascii_word(u8_cp_at(s, i, end));

	return wa != wb;
}

static inline size_t
u8_line_end(const char *s, size_t i, size_t end)
{
	const char *nl = memchr(s + i, '\n', end - i);

	return nl ? (size_t)(nl - s) : end;
}

/* u8_count_cps - code points in s[i..j). */
static inline size_t
u8_count_cps(const char *s, size_t i, size_t j)
{
	size_t c = 0;

	for (; i < j; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			c++;
	return c;
}

/* u8_cps_back - the position k code points before j, not before lo. */
static inline size_t
u8_cps_back(const char *s, size_t lo, size_t j, size_t k)
{
	while (j > lo && k > 0) {
		j--;
		while (j > lo && ((unsigned char)s[j] & 0xc0) == 0x80)
			j--;
		k--;
	}
	return j;
}

/* u8_strip_span - Ruby's String#strip on s[*i..*j). */
static inline void
u8_strip_span(const char *s, size_t *i, size_t *j)
{
	while (*i < *j && (s[*i] == ' ' || (s[*i] >= '\t' && s[*i] <= '\r')))
		(*i)++;
	while (*j > *i && (s[*j - 1] == ' ' ||
			   (s[*j - 1] >= '\t' && s[*j - 1] <= '\r') ||
			   s[*j - 1] == '\0'))
		(*j)--;
}

/* u8_keep - replace b's contents by its own bytes [i, j). */
static inline void
u8_keep(struct buf *b, size_t i, size_t j)
{
	memmove(b->data, b->data + i, j - i);
	b->len = j - i;
	b->data[b->len] = '\0';
}

#endif
