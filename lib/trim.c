/*
 * NAME
 *	trim - cut a patient's reply email down to the reply itself
 * DESCRIPTION
 *	See trim.h. The rules are those of discourse's email_reply_trimmer;
 *	each of its regular expressions is a small hand-written matcher
 *	here, named after the Ruby constant it stands for, so that the
 *	two can be compared rule by rule. Hand-written because the Ruby
 *	expressions rely on lazy quantifiers, look-ahead, word boundaries
 *	and Unicode classes that POSIX regex.h lacks, and because a matcher
 *	that only walks forward cannot backtrack catastrophically.
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

/* ------------------------------------------------------------ UTF-8 */

/* u8_get - the code point at s[i] (valid UTF-8, i < len); *n its bytes. */
static uint32_t
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
static int
is_blank(uint32_t c)
{
	return c == ' ' || c == '\t' || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x202f || c == 0x205f ||
	       c == 0x3000;
}

/* [[:space:]] (Unicode White_Space). */
static int
is_space(uint32_t c)
{
	return is_blank(c) || (c >= '\n' && c <= '\r') || c == 0x85 ||
	       c == 0x2028 || c == 0x2029;
}

/* \s in a Ruby regexp: ASCII white space only. */
static int
is_ascii_space(uint32_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static int
is_digit(uint32_t c)
{
	return c >= '0' && c <= '9';
}

/* \w in a Ruby regexp: ASCII only. Also what \b looks at. */
static int
is_ascii_word(uint32_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       is_digit(c) || c == '_';
}

/*
 * [[:word:]]: letters, marks, digits, connector punctuation of any
 * script. Approximated: any code point outside the ASCII and Latin-1
 * punctuation, the general punctuation and symbol blocks, CJK
 * punctuation, full-width punctuation and the emoji planes.
 */
static int
is_word(uint32_t c)
{
	if (c < 0x80)
		return is_ascii_word(c);
	if (c < 0xc0)
		return c == 0xaa || c == 0xb5 || c == 0xba || c == 0xb2 ||
		       c == 0xb3 || c == 0xb9 || (c >= 0xbc && c <= 0xbe);
	if (c == 0xd7 || c == 0xf7 || is_space(c))
		return 0;
	if ((c >= 0x2000 && c <= 0x2bff) || (c >= 0x3000 && c <= 0x303f) ||
	    (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff0f) ||
	    (c >= 0xff1a && c <= 0xff20) || (c >= 0xfff0 && c <= 0xffff) ||
	    c >= 0x1f000)
		return 0;
	return 1;
}

/* [[:alpha:]] approximated as [[:word:]] without digits and '_'. */
static int
is_alpha(uint32_t c)
{
	return is_word(c) && !is_digit(c) && c != '_' &&
	       !(c >= 0xb2 && c <= 0xbe);
}

/* Simple case folding for the scripts the markers are written in. */
static uint32_t
fold(uint32_t c)
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
 * In the literals below, '\t' stands for \s (one ASCII white space
 * character) and '\001' for \s+; every other byte is itself.
 */
#define LIT_S	"\t"
#define LIT_SP	"\001"

/*
 * lit_space - a literal's '\t' (one ASCII white space) or '\001' (one or
 * more) at s[*p..end): 1 and *p past it, or 0.
 */
static int
lit_space(const char *s, size_t *p, size_t end, char kind)
{
	if (*p >= end || !is_ascii_space((unsigned char)s[*p]))
		return 0;
	(*p)++;
	if (kind == '\001')
		while (*p < end && is_ascii_space((unsigned char)s[*p]))
			(*p)++;
	return 1;
}

/* lit_match - lit_at past its test of the first byte. */
static size_t
lit_match(const char *s, size_t i, size_t end, const char *lit, int ci)
{
	size_t p = i, llen, q = 0;

	if (!ci) {
		/* Both are valid UTF-8: equal code points are equal bytes. */
		for (; lit[q] != '\0'; q++) {
			if (lit[q] == '\t' || lit[q] == '\001') {
				if (!lit_space(s, &p, end, lit[q]))
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
			if (!lit_space(s, &p, end, lit[q]))
				return 0;
			q++;
			continue;
		}
		if (p >= end)
			return 0;
		a = u8_get(s, end, p, &n);
		b = u8_get(lit, llen, q, &m);
		if (fold(a) != fold(b))
			return 0;
		p += n;
		q += m;
	}
	return p - i;
}

/*
 * lit_at - match the literal lit at s[i..end); ci: ignore case.
 * Returns the number of bytes matched, 0 when it does not match. Most
 * calls fail on the first byte, which is tested here, inline: a byte
 * that is itself in lit (not a '\t' or '\001' class) must be equal, or
 * with ci, for ASCII on both sides, equal once folded (a non-ASCII
 * character may fold to an ASCII one: that is lit_match's to decide).
 */
static inline size_t
lit_at(const char *s, size_t i, size_t end, const char *lit, int ci)
{
	unsigned char c0 = (unsigned char)lit[0], b0;

	if (c0 > '\001' && c0 != '\t' && i < end) {
		b0 = (unsigned char)s[i];
		if (!ci ? b0 != c0 :
		    b0 < 0x80 && c0 < 0x80 && fold(b0) != fold(c0))
			return 0;
	}
	return lit_match(s, i, end, lit, ci);
}

/* first_lit - the first of a NULL-terminated list that matches at i. */
static size_t
first_lit(const char *s, size_t i, size_t end, const char *const *lits,
	  int ci)
{
	for (; *lits != NULL; lits++) {
		size_t n = lit_at(s, i, end, *lits, ci);

		if (n)
			return n;
	}
	return 0;
}

/* find_lit - the first position >= i where lit matches, or end. */
static size_t
find_lit(const char *s, size_t i, size_t end, const char *lit, int ci)
{
	for (; i < end; i++)
		if (lit_at(s, i, end, lit, ci))
			return i;
	return end;
}

/* skip - past the code points for which pred holds. */
static size_t
skip(const char *s, size_t i, size_t end, int (*pred)(uint32_t))
{
	while (i < end) {
		size_t n;

		if (!pred(u8_get(s, end, i, &n)))
			break;
		i += n;
	}
	return i;
}

static uint32_t
cp_at(const char *s, size_t i, size_t end)
{
	size_t n;

	return i < end ? u8_get(s, end, i, &n) : 0;
}

/* next_cp - the position after the code point at i. */
static size_t
next_cp(const char *s, size_t i, size_t end)
{
	size_t n;

	u8_get(s, end, i, &n);
	return i + n;
}

/* prev_cp - the code point before position i (0 at the start). */
static uint32_t
prev_cp(const char *s, size_t i)
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
static int
word_boundary(const char *s, size_t i, size_t end)
{
	uint32_t a = prev_cp(s, i);
	int wa = i > 0 && is_ascii_word(a);
	int wb = i < end && is_ascii_word(cp_at(s, i, end));

	return wa != wb;
}

static size_t
line_end(const char *s, size_t i, size_t end)
{
	const char *nl = memchr(s + i, '\n', end - i);

	return nl ? (size_t)(nl - s) : end;
}

/* count_cps - code points in s[i..j). */
static size_t
count_cps(const char *s, size_t i, size_t j)
{
	size_t c = 0;

	for (; i < j; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			c++;
	return c;
}

/* cps_back - the position k code points before j, not before lo. */
static size_t
cps_back(const char *s, size_t lo, size_t j, size_t k)
{
	while (j > lo && k > 0) {
		j--;
		while (j > lo && ((unsigned char)s[j] & 0xc0) == 0x80)
			j--;
		k--;
	}
	return j;
}

/* ------------------------------------------ "On <date> <someone> wrote:" */

/*
 * ON_DATE_SOMEONE_WROTE_REGEXES, all of the form
 *	^[[:blank:]<>-]*START (?:(?!\b(?>FORBIDDEN)\b).)+?END[[:blank:].:>-]*$
 * with /im: the dot crosses line breaks, which is how a marker wrapped
 * over lines is found before the text is split into lines.
 */
enum odsw_extra {
	ODSW_PLAIN,
	ODSW_UNTIL_COLON,	/* END may also be EXTRA[^:]+ */
};

struct odsw_rule {
	const char *start[3];
	const char *forbidden[6];
	const char *end[5];
	enum odsw_extra extra_kind;
	const char *extra;
};

static const struct odsw_rule odsw_rules[] = {
	/* Chinese */
	{ { "在 ", NULL }, { "在", "写道", NULL }, { "写道", NULL },
	  ODSW_PLAIN, NULL },
	/* Dutch */
	{ { "Op ", NULL }, { "Op", "het" LIT_S "volgende" LIT_S "geschreven",
	  "schreef", NULL }, { "het" LIT_S "volgende" LIT_S "geschreven",
	  NULL }, ODSW_UNTIL_COLON, "schreef" },
	/* English */
	{ { "In message ", NULL }, { "In message", "writes", NULL },
	  { "writes", NULL }, ODSW_PLAIN, NULL },
	{ { "On ", "At ", NULL }, { "On", "wrote", "writes", "says", "said",
	  NULL }, { "wrote", "writes", "says", "said", NULL }, ODSW_PLAIN, NULL },
	/* French */
	{ { "Le ", NULL }, { "Le", "nous" LIT_S "a" LIT_S "dit",
	  "a" LIT_SP "écrit", NULL }, { "nous" LIT_S "a" LIT_S "dit",
	  "a" LIT_SP "écrit", NULL }, ODSW_PLAIN, NULL },
	/* German */
	{ { "Am ", NULL }, { "Am", "schrieben" LIT_S "Sie", NULL },
	  { "schrieben" LIT_S "Sie", NULL }, ODSW_PLAIN, NULL },
	{ { "Am ", NULL }, { "Am", "geschrieben", NULL },
	  { "geschrieben", NULL }, ODSW_UNTIL_COLON, "schrieb" },
	/* Italian */
	{ { "Il ", NULL }, { "Il", "ha" LIT_S "scritto", NULL },
	  { "ha" LIT_S "scritto", NULL }, ODSW_PLAIN, NULL },
	/* Polish */
	{ { "Dnia ", "Dňa ", NULL }, { "Dnia", "Dňa", "napisał", NULL },
	  { "napisał(a)", "napisał", NULL }, ODSW_PLAIN, NULL },
	/* Portuguese */
	{ { "Em ", NULL }, { "Em", "escreveu", NULL }, { "escreveu", NULL },
	  ODSW_PLAIN, NULL },
	/* Spanish */
	{ { "El ", NULL }, { "El", "escribió", NULL }, { "escribió", NULL },
	  ODSW_PLAIN, NULL },
};

static int
is_odsw_lead(uint32_t c)
{
	return is_blank(c) || c == '<' || c == '>' || c == '-';
}

static int
is_odsw_tail(uint32_t c)
{
	return is_blank(c) || c == '.' || c == ':' || c == '>' || c == '-';
}

/* at_eol - after [[:blank:].:>-]* from i, is this the end of a line? */
static size_t
tail_to_eol(const char *s, size_t i, size_t end)
{
	i = skip(s, i, end, is_odsw_tail);
	if (i == end || s[i] == '\n')
		return i;
	return (size_t)-1;
}

/*
 * odsw_until_colon - END as EXTRA[^:]+[[:blank:].:>-]*$ from q0 (just
 * after EXTRA): greedy [^:]+ runs to the first colon; failing that the
 * match ends at the last line end before it. wend_is_end: s[wend] is
 * the real end of the text (else the window was cut short).
 */
static size_t
odsw_until_colon(const char *s, size_t q0, size_t wend, int wend_is_end)
{
	const char *colon = memchr(s + q0, ':', wend - q0);
	size_t c, e = (size_t)-1, r;

	if (colon == NULL)
		return wend_is_end && wend > q0 ? wend : (size_t)-1;
	c = (size_t)(colon - s);
	if (c > q0) {
		r = tail_to_eol(s, c, wend);
		if (r != (size_t)-1 && (r < wend || wend_is_end ||
					s[wend] == '\n'))
			return r;
	}
	for (size_t k = q0 + 1; k < c; k++)
		if (s[k] == '\n')
			e = k;
	return e;
}

/*
 * odsw_match - try rule at the line starting at ls; s[..wend) is the
 * window (one line, or a few lines when looking for wrapped markers).
 * Returns the end of the match (a line end), or (size_t)-1.
 */
static size_t
odsw_match(const struct odsw_rule *rule, const char *s, size_t ls,
	   size_t wend, int wend_is_end)
{
	size_t b0, n, k;

	b0 = skip(s, ls, wend, is_odsw_lead);
	n = first_lit(s, b0, wend, rule->start, 1);
	if (n == 0)
		return (size_t)-1;
	b0 += n;
	for (k = b0; k < wend; k = next_cp(s, k, wend)) {
		if (k > b0) {
			for (size_t e = 0; rule->end[e] != NULL; e++) {
				size_t m = lit_at(s, k, wend, rule->end[e], 1);
				size_t r;

				if (m == 0)
					continue;
				r = tail_to_eol(s, k + m, wend);
				if (r != (size_t)-1 && (r < wend || wend_is_end ||
							s[wend] == '\n'))
					return r;
			}
			if (rule->extra_kind == ODSW_UNTIL_COLON) {
				size_t m = lit_at(s, k, wend, rule->extra, 1);

				if (m) {
					size_t r = odsw_until_colon(s, k + m,
								    wend,
								    wend_is_end);
					if (r != (size_t)-1)
						return r;
				}
			}
		}
		if (word_boundary(s, k, wend)) {
			n = first_lit(s, k, wend, rule->forbidden, 1);
			if (n && word_boundary(s, k + n, wend))
				return (size_t)-1;
		}
	}
	return (size_t)-1;
}

/* ---------------------------------------- "X wrote on <date>:" (German) */

/*
 * SOMEONE_WROTE_ON_DATE_REGEXES: ^.+\bWROTE\b[[:space:]]+\bON\b.+[^:]+:
 * (case-sensitive; [[:space:]] and [^:] cross line breaks).
 */
static const char *const swod_rules[][2] = {
	{ "wrote", "on" },
	{ "schrieb", "am" },
};

static size_t
swod_match(const char *const rule[2], const char *s, size_t ls, size_t wend,
	   int wend_is_end)
{
	size_t le = line_end(s, ls, wend);
	size_t wl = strlen(rule[0]), ol = strlen(rule[1]);

	/* ^.+ is greedy: the last WROTE on the first line wins. */
	for (size_t w = le; w-- > ls + 1;) {
		size_t p, oe, ole, c, last = (size_t)-1;
		const char *colon;

		if (!lit_at(s, w, le, rule[0], 0) ||
		    !word_boundary(s, w, wend) ||
		    !word_boundary(s, w + wl, wend))
			continue;
		p = skip(s, w + wl, wend, is_space);
		if (p == w + wl || !lit_at(s, p, wend, rule[1], 0) ||
		    !word_boundary(s, p + ol, wend))
			continue;
		oe = p + ol;
		ole = line_end(s, oe, wend);
		if (ole <= oe)
			continue;	/* .+ needs a character */
		colon = ole < wend ? memchr(s + ole, ':', wend - ole) : NULL;
		if (colon != NULL)
			return (size_t)(colon - s) + 1;
		if (!wend_is_end && ole < wend)
			return (size_t)-1;	/* the colon may be further */
		for (c = oe + 2; c < ole; c++)
			if (s[c] == ':' && s[c - 1] != ':')
				last = c;
		if (last != (size_t)-1)
			return last + 1;
	}
	return (size_t)-1;
}

/* ------------------------------------ "<date> <someone> napisał(a):" */

/*
 * DATE_SOMEONE_WROTE_REGEXES:
 *	\d{4}.{1,80}USER.{0,80}\n?.{0,80}?WROTE:	(USER may be absent)
 * Case-sensitive, the dot does not cross line breaks but \n? does once.
 * WROTE is plain bytes (dsw_line finds it with memmem).
 */
static const char *const dsw_rules[][2] = {
	{ "пользователь", "написал:" },
	{ "", "napisał(a):" },
	{ "", "пише:" },
};

static int
four_digits(const char *s, size_t i, size_t end)
{
	return i + 4 <= end && is_digit((unsigned char)s[i]) &&
	       is_digit((unsigned char)s[i + 1]) &&
	       is_digit((unsigned char)s[i + 2]) &&
	       is_digit((unsigned char)s[i + 3]);
}

/*
 * dsw_user_ok - with \d{4} at a on the line [.., le): a USER within
 * 1..80 code points after the digits and its end no more than 80 before
 * limit. Returns the end of USER (a + 4 when there is no USER).
 */
static size_t
dsw_user(const char *user, const char *s, size_t a, size_t le, size_t limit,
	 size_t maxgap)
{
	size_t ul = strlen(user), best = (size_t)-1;

	if (ul == 0)
		return count_cps(s, a + 4, limit) >= 1 &&
		       count_cps(s, a + 4, limit) <= maxgap + 80 ? a + 4 :
		       (size_t)-1;
	for (size_t u = next_cp(s, a + 4, le); u < le; u = next_cp(s, u, le)) {
		size_t gap = count_cps(s, a + 4, u);

		if (gap > 80)
			break;
		if (lit_at(s, u, le, user, 0) &&
		    count_cps(s, u + ul, limit) <= maxgap)
			best = u + ul;
	}
	return best;
}

/* dsw_line - does the single line s[ls..le) match rule (classification)? */
static int
dsw_line(const char *const rule[2], const char *s, size_t ls, size_t le)
{
	size_t wl = strlen(rule[1]);
	const char *at;

	/* WROTE is plain text (no white-space class): memmem finds it */
	for (size_t k = ls; k + wl <= le; k++) {
		size_t lo;

		at = memmem(s + k, le - k, rule[1], wl);
		if (at == NULL)
			break;
		k = (size_t)(at - s);
		lo = cps_back(s, ls, k, 80 + 80 + 80 + 4 + 12);
		for (size_t a = lo; a + 4 < k; a++) {
			if (!four_digits(s, a, k))
				continue;
			if (dsw_user(rule[0], s, a, k, k, 160) != (size_t)-1)
				return 1;
		}
	}
	return 0;
}

/* --------------------------------------------------- line classifiers */

struct line {
	size_t off, len;
};

/* EmptyLineMatcher: ^[[:blank:]]*$ */
static int
match_empty(const char *s, size_t len)
{
	return skip(s, 0, len, is_blank) == len;
}

/* DelimiterMatcher: ^[[:blank:]]*[-_,=+~#*ᐧ—]+[[:blank:]]*$ */
static int
is_delim_char(uint32_t c)
{
	return c == '-' || c == '_' || c == ',' || c == '=' || c == '+' ||
	       c == '~' || c == '#' || c == '*' || c == 0x1427 || c == 0x2014;
}

static int
match_delimiter(const char *s, size_t len)
{
	size_t i = skip(s, 0, len, is_blank), j;

	j = skip(s, i, len, is_delim_char);
	if (j == i)
		return 0;
	return skip(s, j, len, is_blank) == len;
}

/* SignatureMatcher.SIGNATURE_REGEXES after removing markdown links. */
static const char *const sig_prefixes[] = {
	"從我的 iPhone 傳送", "Get Outlook for ", "Envoyé depuis mon",
	"Envoyé depuis Yahoo Mail", "Inviato da ", "Sendt fra min ",
	"Enviado do meu ", "Enviado desde mi ", "Verzonden met ",
	"Verstuurd vanaf mijn ", "från min ", NULL
};

static const char *const sig_sent_words[] = {
	"from ", "via ", "with ", "by ", NULL
};

static int
match_signature_text(const char *s, size_t len)
{
	size_t i = skip(s, 0, len, is_blank), j, n;

	if (first_lit(s, i, len, sig_prefixes, 1))
		return 1;
	/* [[:word:]]+ from mobile */
	j = skip(s, i, len, is_word);
	if (j > i && lit_at(s, j, len, " from mobile", 1))
		return 1;
	/* [\(<]*Sent (from|via|with|by) .+ */
	j = i;
	while (j < len && (s[j] == '(' || s[j] == '<'))
		j++;
	if ((n = lit_at(s, j, len, "Sent ", 1)) != 0) {
		size_t m = first_lit(s, j + n, len, sig_sent_words, 1);

		if (m && j + n + m < len)
			return 1;
	}
	/* From my .{1,20} */
	if ((n = lit_at(s, i, len, "From my ", 1)) != 0 && i + n < len)
		return 1;
	/* Von meinem .+ gesendet, Diese Nachricht wurde von .+ gesendet */
	if ((n = lit_at(s, i, len, "Von meinem ", 1)) != 0 ||
	    (n = lit_at(s, i, len, "Diese Nachricht wurde von ", 1)) != 0) {
		if (i + n < len &&
		    find_lit(s, next_cp(s, i + n, len), len, " gesendet", 1) <
		    len)
			return 1;
	}
	return 0;
}

/* \[([^\]]+)\]\([^\)]+\) -> \1, into out (which has room for len). */
static size_t
strip_markdown_links(const char *s, size_t len, char *out)
{
	size_t i = 0, o = 0;

	while (i < len) {
		if (s[i] == '[') {
			const char *rb = memchr(s + i + 1, ']', len - i - 1);
			size_t r = rb ? (size_t)(rb - s) : len;

			if (rb && r > i + 1 && r + 2 < len && s[r + 1] == '(') {
				const char *rp = memchr(s + r + 2, ')',
							len - r - 2);

				if (rp && (size_t)(rp - s) > r + 2) {
					memcpy(out + o, s + i + 1, r - i - 1);
					o += r - i - 1;
					i = (size_t)(rp - s) + 1;
					continue;
				}
			}
		}
		out[o++] = s[i++];
	}
	return o;
}

static int
match_signature(const char *s, size_t len)
{
	char tmp[TRIM_MAX_LINE_MATCH];
	size_t n;

	if (memchr(s, '[', len) == NULL)
		return match_signature_text(s, len);
	n = strip_markdown_links(s, len, tmp);
	return match_signature_text(tmp, n);
}

/* ON_DATE_WROTE_SOMEONE_REGEXES: ^[[:blank:]>]*ON\s.+\sWROTE\s[^:]+: */
static const char *const odws_rules[][2] = {
	{ "Op", "schreef" }, { "Am", "schrieb" }, { "Den", "skrev" },
	{ "søn.", "skrev" },
};

static int
is_blank_or_gt(uint32_t c)
{
	return is_blank(c) || c == '>';
}

static int
match_odws(const char *const rule[2], const char *s, size_t len)
{
	size_t i = skip(s, 0, len, is_blank_or_gt);
	size_t n = lit_at(s, i, len, rule[0], 0), wl = strlen(rule[1]);

	if (n == 0 || i + n >= len || !is_ascii_space((unsigned char)s[i + n]))
		return 0;
	for (size_t w = i + n + 2; w + wl + 2 < len; w++) {
		const char *colon;

		if (!is_ascii_space((unsigned char)s[w]) ||
		    !lit_at(s, w + 1, len, rule[1], 0) ||
		    !is_ascii_space((unsigned char)s[w + 1 + wl]))
			continue;
		colon = memchr(s + w + 2 + wl, ':', len - w - 2 - wl);
		if (colon && colon > s + w + 2 + wl)
			return 1;
	}
	return 0;
}

/* DATE_SOMEONE_EMAIL_REGEX: \d{4}.{1,80}\s?<[^@<>]+@[^@<>.]+\.[^@<>]+>:?$ */
static int
match_date_someone_email(const char *s, size_t len)
{
	size_t e = len, lt, at, dot, lo;
	const char *p;

	if (e > 0 && s[e - 1] == ':')
		e--;
	if (e == 0 || s[e - 1] != '>')
		return 0;
	e--;
	p = memrchr(s, '<', e);
	if (p == NULL)
		return 0;
	lt = (size_t)(p - s);
	if (memchr(s + lt + 1, '>', e - lt - 1) != NULL)
		return 0;
	p = memchr(s + lt + 1, '@', e - lt - 1);
	if (p == NULL)
		return 0;
	at = (size_t)(p - s);
	if (at == lt + 1 || memchr(s + at + 1, '@', e - at - 1) != NULL)
		return 0;
	p = memchr(s + at + 1, '.', e - at - 1);
	if (p == NULL)
		return 0;
	dot = (size_t)(p - s);
	if (dot == at + 1 || dot + 1 >= e)
		return 0;
	/* \d{4} ending 1..80 code points before '<' (81 through \s?) */
	lo = cps_back(s, 0, lt, 81 + 4);
	for (size_t a = lo; a + 4 < lt; a++) {
		size_t gap;

		if (!four_digits(s, a, lt))
			continue;
		gap = count_cps(s, a + 4, lt);
		if (memchr(s + a + 4, '\n', lt - a - 4) != NULL)
			continue;
		if ((gap >= 1 && gap <= 80) ||
		    (gap == 81 && is_ascii_space((unsigned char)s[lt - 1])))
			return 1;
	}
	return 0;
}

/* ISO_DATE_SOMEONE_REGEX:
 * ^[[:blank:]>]*20\d\d-\d\d-\d\d \d\d:\d\d GMT\+\d\d:\d\d [\w[:blank:]]+$ */
static int
is_word_or_blank(uint32_t c)
{
	return is_ascii_word(c) || is_blank(c);
}

static int
match_iso_date_someone(const char *s, size_t len)
{
	static const char shape[] = "20dd-dd-dd dd:dd GMT+dd:dd ";
	size_t i = skip(s, 0, len, is_blank_or_gt);

	if (len - i < sizeof(shape))
		return 0;
	for (size_t k = 0; k < sizeof(shape) - 1; k++) {
		if (shape[k] == 'd' ? !is_digit((unsigned char)s[i + k]) :
		    s[i + k] != shape[k])
			return 0;
	}
	i += sizeof(shape) - 1;
	return i < len && skip(s, i, len, is_word_or_blank) == len;
}

/* SOMEONE_VIA_SOMETHING_WROTE_REGEXES: ^.+ via .+ WROTE:?[[:blank:]]*$ */
static int
match_someone_via_wrote(const char *s, size_t len)
{
	static const char *const wrote[] = { " wrote", " schrieb", NULL };
	size_t e = len;

	/* strip [[:blank:]]* then ':?' from the end */
	while (e > 0) {
		size_t k = e - 1;

		while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--;
		if (!is_blank(cp_at(s, k, len)))
			break;
		e = k;
	}
	if (e > 0 && s[e - 1] == ':')
		e--;
	for (size_t w = 0; wrote[w] != NULL; w++) {
		size_t wl = strlen(wrote[w]), v;

		if (e < wl + 6 || memcmp(s + e - wl, wrote[w], wl) != 0)
			continue;
		for (v = 1; v + 5 < e - wl; v++)
			if (memcmp(s + v, " via ", 5) == 0)
				return 1;
	}
	return 0;
}

/* SOMEONE_EMAIL_WROTE_REGEX: ^.+\b[\w.+-]+@[\w.-]+\.\w{2,}\b.+wrote:?$ */
static int
is_local_char(uint32_t c)
{
	return is_ascii_word(c) || c == '.' || c == '+' || c == '-';
}

static int
match_someone_email_wrote(const char *s, size_t len)
{
	size_t e = len, wpos;

	if (e > 0 && s[e - 1] == ':')
		e--;
	if (e < 5 || memcmp(s + e - 5, "wrote", 5) != 0)
		return 0;
	wpos = e - 5;
	for (size_t at = 2; at + 4 < wpos; at++) {
		size_t st, d;
		int local_ok = 0;

		if (s[at] != '@')
			continue;
		/* a start of the local part at a \b, not at column 0 */
		for (st = at; st > 0 && is_local_char((unsigned char)s[st - 1]);)
			st--;
		for (; st < at; st++)
			if (st > 0 && word_boundary(s, st, len))
				local_ok = 1;
		if (!local_ok)
			continue;
		for (d = at + 2; d < wpos && is_local_char((unsigned char)s[d]) &&
		     s[d] != '+'; d++) {
			size_t we;

			if (s[d] != '.')
				continue;
			we = skip(s, d + 1, len, is_ascii_word);
			if (we >= d + 3 && we < wpos)
				return 1;
		}
	}
	return 0;
}

/* POSTED_BY_SOMEONE_ON_DATE_REGEX: ^[[:blank:]>]*Posted by .+ on \d\d/\d\d/\d{4}$ */
static int
match_posted_by(const char *s, size_t len)
{
	static const char shape[] = " on dd/dd/dddd";
	size_t i = skip(s, 0, len, is_blank_or_gt), n, t;

	n = lit_at(s, i, len, "Posted by ", 1);
	if (n == 0 || len < i + n + 1 + sizeof(shape) - 1)
		return 0;
	t = len - (sizeof(shape) - 1);
	for (size_t k = 0; k < sizeof(shape) - 1; k++) {
		if (shape[k] == 'd' ? !is_digit((unsigned char)s[t + k]) :
		    fold((unsigned char)s[t + k]) != (unsigned char)shape[k])
			return 0;
	}
	return 1;
}

/* FORWARDED_EMAIL_REGEXES */
static int
is_blank_gt_star(uint32_t c)
{
	return is_blank(c) || c == '>' || c == '*';
}

static const char *const fwd_dashed[] = {
	"Forwarded Message", "Original Message", "Reply Message",
	"Message transféré", "Ursprüngliche Nachricht", "Mensaje original",
	"原始邮件", NULL
};

static int
match_forwarded(const char *s, size_t len)
{
	size_t i = skip(s, 0, len, is_blank_or_gt), j, n;

	if (lit_at(s, i, len, "Begin forwarded message:", 1) ||
	    lit_at(s, i, len, "Début du message transféré :", 1))
		return 1;
	i = skip(s, 0, len, is_blank_gt_star);
	j = i;
	while (j < len && s[j] == '-')
		j++;
	if (j - i < 2)
		return 0;
	j = skip(s, j, len, is_blank);
	n = first_lit(s, j, len, fwd_dashed, 1);
	if (n == 0)
		return 0;
	j = skip(s, j + n, len, is_blank);
	return j + 1 < len && s[j] == '-' && s[j + 1] == '-';
}

static int
match_embedded(const char *s, size_t len)
{
	for (size_t r = 0; r < CP_ARRAY_SIZE(odsw_rules); r++)
		if (odsw_match(&odsw_rules[r], s, 0, len, 1) != (size_t)-1)
			return 1;
	for (size_t r = 0; r < CP_ARRAY_SIZE(odws_rules); r++)
		if (match_odws(odws_rules[r], s, len))
			return 1;
	for (size_t r = 0; r < CP_ARRAY_SIZE(dsw_rules); r++)
		if (dsw_line(dsw_rules[r], s, 0, len))
			return 1;
	if (match_date_someone_email(s, len))
		return 1;
	for (size_t r = 0; r < CP_ARRAY_SIZE(swod_rules); r++)
		if (swod_match(swod_rules[r], s, 0, len, 1) != (size_t)-1)
			return 1;
	return match_iso_date_someone(s, len) ||
	       match_someone_via_wrote(s, len) ||
	       match_someone_email_wrote(s, len) || match_posted_by(s, len) ||
	       match_forwarded(s, len);
}

/* EmailHeaderMatcher */
static const char *const header_date_markers[] = {
	"Sendt", "Sent", "Date", "Le", "Gesendet", "Enviada em", "Enviado",
	"Fecha", "Data", "Datum", "Skickat", "发送时间", NULL
};

static const char *const header_text_markers[] = {
	"Fra", "Til", "Emne", "From", "To", "Cc", "Reply-To", "Subject", "De",
	"Expéditeur", "À", "Destinataire", "Répondre à", "Objet", "Von", "An",
	"Betreff", "Para", "Assunto", "Asunto", "Da", "Risposta", "A",
	"Oggetto", "Van", "Beantwoorden - Aan", "Aan", "Onderwerp", "Från",
	"Till", "Ämne", "发件人", "收件人", "主题", NULL
};

static int
is_blank_or_star(uint32_t c)
{
	return is_blank(c) || c == '*';
}

/* ^[[:blank:]*]*(?:MARKERS)[[:blank:]*]*: then the rest from there. */
static size_t
header_colon(const char *s, size_t len, const char *const *markers, int ci)
{
	size_t i = skip(s, 0, len, is_blank_or_star);

	for (; *markers != NULL; markers++) {
		size_t n = lit_at(s, i, len, *markers, ci), j;

		if (n == 0)
			continue;
		j = skip(s, i + n, len, is_blank_or_star);
		if (j < len && s[j] == ':')
			return j + 1;
	}
	return (size_t)-1;
}

static int
match_email_header(const char *s, size_t len)
{
	size_t p = header_colon(s, len, header_date_markers, 0);

	if (p != (size_t)-1)
		for (; p < len; p++)
			if (is_digit((unsigned char)s[p]))
				return 1;
	p = header_colon(s, len, header_text_markers, 1);
	if (p != (size_t)-1)
		while (p < len) {
			size_t n;

			if (is_word(u8_get(s, len, p, &n)))
				return 1;
			p += n;
		}
	return 0;
}

/* QuoteMatcher: ^[[:blank:]]*> */
static int
match_quote(const char *s, size_t len)
{
	size_t i = skip(s, 0, len, is_blank);

	return i < len && s[i] == '>';
}

/* CodeOpenMatcher ^``` and CodeCloseMatcher ^ {0,3}```\s*$ */
static int
match_code_open(const char *s, size_t len)
{
	return len >= 3 && memcmp(s, "```", 3) == 0;
}

static int
match_code_close(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && i < 3 && s[i] == ' ')
		i++;
	if (len - i < 3 || memcmp(s + i, "```", 3) != 0)
		return 0;
	for (i += 3; i < len; i++)
		if (!is_ascii_space((unsigned char)s[i]))
			return 0;
	return 1;
}

static char
classify_line(const char *s, size_t len)
{
	int open, close;

	if (len > TRIM_MAX_LINE_MATCH)
		return 't';
	if (match_empty(s, len))
		return 'e';
	if (match_delimiter(s, len))
		return 'd';
	if (match_signature(s, len))
		return 's';
	if (match_embedded(s, len))
		return 'b';
	if (match_email_header(s, len))
		return 'h';
	if (match_quote(s, len))
		return 'q';
	open = match_code_open(s, len);
	close = match_code_close(s, len);
	if (open && close)
		return 'p';
	if (open)
		return 'c';
	if (close)
		return 'x';
	return 't';
}

/* ---------------------------------------------------------- cleanup */

/* strip_span - Ruby's String#strip on s[*i..*j). */
static void
strip_span(const char *s, size_t *i, size_t *j)
{
	while (*i < *j && (s[*i] == ' ' || (s[*i] >= '\t' && s[*i] <= '\r')))
		(*i)++;
	while (*j > *i && (s[*j - 1] == ' ' ||
			   (s[*j - 1] >= '\t' && s[*j - 1] <= '\r') ||
			   s[*j - 1] == '\0'))
		(*j)--;
}

/* replace b's contents by s[i..j) (which may point into b). */
static void
buf_keep(struct buf *b, size_t i, size_t j)
{
	memmove(b->data, b->data + i, j - i);
	b->len = j - i;
	b->data[b->len] = '\0';
}

static void
strip_buf(struct buf *b)
{
	size_t i = 0, j = b->len;

	strip_span(b->data, &i, &j);
	buf_keep(b, i, j);
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

	if (lit_at(s, 0, len, head, 1)) {
		p = q = sizeof(head) - 1;
		if (lit_at(s, p, len, "Hash: ", 0) &&
		    p + 6 < len && is_ascii_word((unsigned char)s[p + 6]))
			q = skip(s, p + 6, len, is_ascii_word);
		if (q < len && is_ascii_space((unsigned char)s[q]))
			p = q;
		if (p < len && is_ascii_space((unsigned char)s[p])) {
			while (p < len && is_ascii_space((unsigned char)s[p]))
				p++;
			buf_keep(t, p, len);
			s = t->data;
			len = t->len;
		}
	}
	for (ls = 0; ls < len; ls = line_end(s, ls, len) + 1) {
		size_t le = line_end(s, ls, len);

		if (b == (size_t)-1 && le - ls == sizeof(sig_begin) - 1 &&
		    memcmp(s + ls, sig_begin, le - ls) == 0)
			b = ls;
		else if (b != (size_t)-1 && ls > b + sizeof(sig_begin) &&
			 lit_at(s, ls, len, sig_end, 0))
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
	size_t n = lit_at(s, ls, le, "Unsubscribe: ", 1);
	const char *at;

	if (n == 0 || ls + n + 1 >= le)
		return 0;
	at = memchr(s + ls + n + 1, '@', le - ls - n - 1);
	return at != NULL && (size_t)(at - s) + 1 < le;
}

static int
is_http_line(const char *s, size_t ls, size_t le)
{
	size_t k = find_lit(s, ls + 1, le, "http:", 0);

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
		size_t le = line_end(s, ls, len);

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
		    lit_at(s, (size_t)(cq - s), le, "\" == ", 0)) {
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
	return i - ls >= 4 && skip(s, i, le, is_blank) == le;
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
		size_t le = line_end(s, ls, len), name = 0, nl = 0;
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
				size_t ke = line_end(s, k, len);

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
				size_t ke = line_end(s, k, len);

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
		size_t b = skip(s, p, le, is_blank);
		size_t a = skip(s, b, le, is_alpha);

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

/*
 * Markers wrapped over lines. A match is a span of the text; gsub puts
 * it back with every "\n+[[:space:]]*" in it turned into one space,
 * unless it holds more than 4 line breaks.
 */
#define JOIN_MAX_NEWLINES	4

static int
append_joined(struct buf *out, const char *s, size_t i, size_t j)
{
	size_t nls = 0;
	int r = 0;

	for (size_t k = i; k < j; k++)
		nls += s[k] == '\n';
	if (nls == 0 || nls > JOIN_MAX_NEWLINES)
		return buf_append(out, s + i, j - i);
	while (i < j && r == 0) {
		if (s[i] == '\n') {
			while (i < j) {
				size_t n;

				if (!is_space(u8_get(s, j, i, &n)))
					break;
				i += n;
			}
			r = buf_putc(out, ' ');
			continue;
		}
		r = buf_putc(out, s[i++]);
	}
	return r;
}

/* window - the end of the span a wrapped marker from ls may cover. */
static size_t
window_end(const char *s, size_t ls, size_t len, int *is_end)
{
	size_t w = ls, lines = 0;

	while (w < len && lines <= JOIN_MAX_NEWLINES) {
		w = line_end(s, w, len);
		if (w < len) {
			lines++;
			if (lines <= JOIN_MAX_NEWLINES)
				w++;
		}
	}
	if (w - ls > TRIM_MAX_MARKER_SPAN)
		w = ls + TRIM_MAX_MARKER_SPAN;
	while (w > ls && w < len && ((unsigned char)s[w] & 0xc0) == 0x80)
		w--;
	*is_end = w == len;
	return w;
}

enum join_kind { JOIN_ODSW, JOIN_SWOD };

/*
 * could_start - what odsw_match or swod_match needs on the first line of
 * its window, [ls, le): the rule's opening words after the leading
 * marks, or the WROTE word somewhere on it. Cheap, so that the window is
 * measured and matched only on lines that may begin a marker.
 */
static int
could_start(enum join_kind kind, const void *rule, const char *s, size_t ls,
	    size_t le)
{
	if (kind == JOIN_ODSW) {
		const struct odsw_rule *o = rule;
		size_t b0 = skip(s, ls, le, is_odsw_lead);

		return first_lit(s, b0, le, o->start, 1) != 0;
	} else {
		const char *const *w = rule;

		return memmem(s + ls, le - ls, w[0], strlen(w[0])) != NULL;
	}
}

/*
 * A finder: where a marker wrapped over line breaks, found from the line
 * [ls, le) of s[0..len), ends; *from is where the joining starts (ls,
 * or le when only the line break goes). (size_t)-1 when there is none.
 */
typedef size_t (*join_find_fn)(const void *rule, const char *s, size_t ls,
			       size_t le, size_t len, size_t *from);

/*
 * join_found - t with every marker find finds joined onto one line
 * (append_joined); out is scratch space, swapped with t when anything
 * changed.
 */
static int
join_found(struct buf *t, struct buf *out, join_find_fn find, const void *rule)
{
	const char *s = t->data;
	size_t len = t->len, ls = 0, copied = 0;
	int r = 0, changed = 0;

	buf_reset(out);
	while (ls < len && r == 0) {
		size_t le = line_end(s, ls, len), from = ls, m = (size_t)-1;

		if (le - ls <= TRIM_MAX_LINE_MATCH)
			m = find(rule, s, ls, le, len, &from);
		if (m == (size_t)-1) {
			ls = le + 1;
			continue;
		}
		r = buf_append(out, s + copied, from - copied);
		if (r == 0)
			r = append_joined(out, s, from, m);
		copied = m;
		changed = 1;
		ls = line_end(s, m, len) + 1;
	}
	if (r == 0 && changed) {
		struct buf tmp;

		r = buf_append(out, s + copied, len - copied);
		tmp = *t;
		*t = *out;
		*out = tmp;
	}
	return r;
}

struct join_rule {
	enum join_kind kind;
	const void *rule;	/* struct odsw_rule, or a swod_rules entry */
};

/* find_anchored - an odsw or swod marker from ls that crosses a line break. */
static size_t
find_anchored(const void *jr, const char *s, size_t ls, size_t le, size_t len,
	      size_t *from)
{
	const struct join_rule *j = jr;
	size_t wend, m;
	int is_end;

	if (!could_start(j->kind, j->rule, s, ls, le))
		return (size_t)-1;
	wend = window_end(s, ls, len, &is_end);
	m = j->kind == JOIN_ODSW ? odsw_match(j->rule, s, ls, wend, is_end) :
				   swod_match(j->rule, s, ls, wend, is_end);
	if (m == (size_t)-1 || memchr(s + ls, '\n', m - ls) == NULL)
		return (size_t)-1;
	*from = ls;
	return m;
}

/*
 * DATE_SOMEONE_WROTE_REGEXES across a line break: \d{4} on a line with
 * 1..80 code points after it (USER among them), WROTE: within the first
 * 80 code points of the next line. Greedy .{1,80} tries the line break
 * first, so a start that can take it does.
 */
static size_t
dsw_join_at(const char *const rule[2], const char *s, size_t a, size_t le,
	    size_t len)
{
	size_t ne, k, kl = strlen(rule[1]);

	if (le >= len || dsw_user(rule[0], s, a, le, le, 80) == (size_t)-1)
		return (size_t)-1;
	if (count_cps(s, a + 4, le) > 80)
		return (size_t)-1;
	ne = line_end(s, le + 1, len);
	for (k = le + 1; k + kl <= ne; k = next_cp(s, k, ne)) {
		if (count_cps(s, le + 1, k) > 80)
			break;
		if (lit_at(s, k, ne, rule[1], 0))
			return k + kl;
	}
	return (size_t)-1;
}

/* find_dsw - a date-someone-wrote marker broken after the line [ls, le). */
static size_t
find_dsw(const void *rule, const char *s, size_t ls, size_t le, size_t len,
	 size_t *from)
{
	size_t m = (size_t)-1;

	if (le >= len)
		return (size_t)-1;
	/* only \d{4} within 80 code points of the line end */
	for (size_t a = cps_back(s, ls, le, 81 + 4); a + 4 < le && m == (size_t)-1; a++)
		if (four_digits(s, a, le))
			m = dsw_join_at(rule, s, a, le, len);
	*from = le;
	return m;
}

/*
 * DATE_SOMEONE_EMAIL_REGEX across line breaks: [^@<>]+ crosses them, so
 * "<date> Some One <" at the end of a line and "some@one.example>:" on
 * the next is one marker.
 */
static size_t
dse_join_at(const char *s, size_t ls, size_t le, size_t len)
{
	const char *p = memrchr(s + ls, '<', le - ls);
	size_t lt, k, at = (size_t)-1, gt = (size_t)-1, lo, nls = 0;

	if (p == NULL)
		return (size_t)-1;
	lt = (size_t)(p - s);
	for (k = lt + 1; k < len && k < lt + TRIM_MAX_MARKER_SPAN; k++) {
		if (s[k] == '\n' && ++nls > JOIN_MAX_NEWLINES)
			return (size_t)-1;
		if (s[k] == '@') {
			if (at != (size_t)-1 || k == lt + 1)
				return (size_t)-1;
			at = k;
		} else if (s[k] == '>') {
			gt = k;
			break;
		} else if (s[k] == '<') {
			return (size_t)-1;
		}
	}
	if (gt == (size_t)-1 || at == (size_t)-1 || nls == 0)
		return (size_t)-1;
	/* [^@<>.]+\.[^@<>]+ between @ and > */
	for (k = at + 1; k < gt && s[k] != '.'; k++)
		;
	if (k == at + 1 || k + 1 >= gt)
		return (size_t)-1;
	k = gt + 1 + (gt + 1 < len && s[gt + 1] == ':');
	if (k < len && s[k] != '\n')
		return (size_t)-1;
	lo = cps_back(s, ls, lt, 81 + 4);
	for (size_t a = lo; a + 4 < lt; a++) {
		size_t gap;

		if (!four_digits(s, a, lt))
			continue;
		gap = count_cps(s, a + 4, lt);
		if ((gap >= 1 && gap <= 80) ||
		    (gap == 81 && is_ascii_space((unsigned char)s[lt - 1])))
			return k;
	}
	return (size_t)-1;
}

/* find_dse - a date-someone-email marker whose address crosses a line break. */
static size_t
find_dse(const void *rule, const char *s, size_t ls, size_t le, size_t len,
	 size_t *from)
{
	*from = ls;
	return le < len ? dse_join_at(s, ls, le, len) : (size_t)-1;
}

static int
join_wrapped_markers(struct buf *t, struct buf *out)
{
	int r = 0;

	for (size_t i = 0; i < CP_ARRAY_SIZE(odsw_rules) && r == 0; i++) {
		struct join_rule j = { JOIN_ODSW, &odsw_rules[i] };

		r = join_found(t, out, find_anchored, &j);
	}
	for (size_t i = 0; i < CP_ARRAY_SIZE(swod_rules) && r == 0; i++) {
		struct join_rule j = { JOIN_SWOD, swod_rules[i] };

		r = join_found(t, out, find_anchored, &j);
	}
	for (size_t i = 0; i < CP_ARRAY_SIZE(dsw_rules) && r == 0; i++)
		if (memmem(t->data, t->len, dsw_rules[i][1],
			   strlen(dsw_rules[i][1])) != NULL)
			r = join_found(t, out, find_dsw, dsw_rules[i]);
	if (r == 0)
		r = join_found(t, out, find_dse, NULL);
	return r;
}

static int
preprocess(struct buf *t)
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
	    (r = join_wrapped_markers(t, &tmp)) < 0)
		return r;
	strip_buf(t);
	return 0;
}

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
		strip_span(b.data, &i, &j);
		buf_keep(&b, i, j);
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
	if ((r = buf_append_text(&t, text, len)) < 0 || (r = preprocess(&t)) < 0)
		return cp_error_set(err, r, "trim: out of memory");
	if (t.len == 0 || skip(t.data, 0, t.len, is_space) == t.len) {
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
		size_t le = line_end(t.data, ls, t.len);

		orig[n].off = ls;
		orig[n].len = le - ls;
		kept[n] = orig[n];
		pat[n] = classify_line(t.data + ls, le - ls);
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
