/*
 * NAME
 *	replymark - the lines of a reply that mark quoted history
 * DESCRIPTION
 *	See replymark.h. Hand-written matchers because the Ruby expressions
 *	rely on lazy quantifiers, look-ahead, word boundaries and Unicode
 *	classes that POSIX regex.h lacks, and because a matcher that only
 *	walks forward cannot backtrack catastrophically.
 */
#include "replymark.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "u8scan.h"
#include "util.h"

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
	return u8_is_blank(c) || c == '<' || c == '>' || c == '-';
}

static int
is_odsw_tail(uint32_t c)
{
	return u8_is_blank(c) || c == '.' || c == ':' || c == '>' || c == '-';
}

/* at_eol - after [[:blank:].:>-]* from i, is this the end of a line? */
static size_t
tail_to_eol(const char *s, size_t i, size_t end)
{
	i = u8_skip(s, i, end, is_odsw_tail);
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

	b0 = u8_skip(s, ls, wend, is_odsw_lead);
	n = u8_first_lit(s, b0, wend, rule->start, 1);
	if (n == 0)
		return (size_t)-1;
	b0 += n;
	for (k = b0; k < wend; k = u8_next_cp(s, k, wend)) {
		if (k > b0) {
			for (size_t e = 0; rule->end[e] != NULL; e++) {
				size_t m = u8_lit_at(s, k, wend, rule->end[e], 1);
				size_t r;

				if (m == 0)
					continue;
				r = tail_to_eol(s, k + m, wend);
				if (r != (size_t)-1 && (r < wend || wend_is_end ||
							s[wend] == '\n'))
					return r;
			}
			if (rule->extra_kind == ODSW_UNTIL_COLON) {
				size_t m = u8_lit_at(s, k, wend, rule->extra, 1);

				if (m) {
					size_t r = odsw_until_colon(s, k + m,
								    wend,
								    wend_is_end);
					if (r != (size_t)-1)
						return r;
				}
			}
		}
		if (u8_word_boundary(s, k, wend)) {
			n = u8_first_lit(s, k, wend, rule->forbidden, 1);
			if (n && u8_word_boundary(s, k + n, wend))
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
	size_t le = u8_line_end(s, ls, wend);
	size_t wl = strlen(rule[0]), ol = strlen(rule[1]);

	/* ^.+ is greedy: the last WROTE on the first line wins. */
	for (size_t w = le; w-- > ls + 1;) {
		size_t p, oe, ole, c, last = (size_t)-1;
		const char *colon;

		if (!u8_lit_at(s, w, le, rule[0], 0) ||
		    !u8_word_boundary(s, w, wend) ||
		    !u8_word_boundary(s, w + wl, wend))
			continue;
		p = u8_skip(s, w + wl, wend, u8_is_space);
		if (p == w + wl || !u8_lit_at(s, p, wend, rule[1], 0) ||
		    !u8_word_boundary(s, p + ol, wend))
			continue;
		oe = p + ol;
		ole = u8_line_end(s, oe, wend);
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
	return i + 4 <= end && u8_is_digit((unsigned char)s[i]) &&
	       u8_is_digit((unsigned char)s[i + 1]) &&
	       u8_is_digit((unsigned char)s[i + 2]) &&
	       u8_is_digit((unsigned char)s[i + 3]);
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
		return u8_count_cps(s, a + 4, limit) >= 1 &&
		       u8_count_cps(s, a + 4, limit) <= maxgap + 80 ? a + 4 :
		       (size_t)-1;
	for (size_t u = u8_next_cp(s, a + 4, le); u < le; u = u8_next_cp(s, u, le)) {
		size_t gap = u8_count_cps(s, a + 4, u);

		if (gap > 80)
			break;
		if (u8_lit_at(s, u, le, user, 0) &&
		    u8_count_cps(s, u + ul, limit) <= maxgap)
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
		lo = u8_cps_back(s, ls, k, 80 + 80 + 80 + 4 + 12);
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

/* EmptyLineMatcher: ^[[:blank:]]*$ */
static int
match_empty(const char *s, size_t len)
{
	return u8_skip(s, 0, len, u8_is_blank) == len;
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
	size_t i = u8_skip(s, 0, len, u8_is_blank), j;

	j = u8_skip(s, i, len, is_delim_char);
	if (j == i)
		return 0;
	return u8_skip(s, j, len, u8_is_blank) == len;
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
	size_t i = u8_skip(s, 0, len, u8_is_blank), j, n;

	if (u8_first_lit(s, i, len, sig_prefixes, 1))
		return 1;
	/* [[:word:]]+ from mobile */
	j = u8_skip(s, i, len, u8_is_word);
	if (j > i && u8_lit_at(s, j, len, " from mobile", 1))
		return 1;
	/* [\(<]*Sent (from|via|with|by) .+ */
	j = i;
	while (j < len && (s[j] == '(' || s[j] == '<'))
		j++;
	if ((n = u8_lit_at(s, j, len, "Sent ", 1)) != 0) {
		size_t m = u8_first_lit(s, j + n, len, sig_sent_words, 1);

		if (m && j + n + m < len)
			return 1;
	}
	/* From my .{1,20} */
	if ((n = u8_lit_at(s, i, len, "From my ", 1)) != 0 && i + n < len)
		return 1;
	/* Von meinem .+ gesendet, Diese Nachricht wurde von .+ gesendet */
	if ((n = u8_lit_at(s, i, len, "Von meinem ", 1)) != 0 ||
	    (n = u8_lit_at(s, i, len, "Diese Nachricht wurde von ", 1)) != 0) {
		if (i + n < len &&
		    u8_find_lit(s, u8_next_cp(s, i + n, len), len, " gesendet", 1) <
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
	char tmp[REPLYMARK_MAX_LINE];
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
	return u8_is_blank(c) || c == '>';
}

static int
match_odws(const char *const rule[2], const char *s, size_t len)
{
	size_t i = u8_skip(s, 0, len, is_blank_or_gt);
	size_t n = u8_lit_at(s, i, len, rule[0], 0), wl = strlen(rule[1]);

	if (n == 0 || i + n >= len || !u8_is_ascii_space((unsigned char)s[i + n]))
		return 0;
	for (size_t w = i + n + 2; w + wl + 2 < len; w++) {
		const char *colon;

		if (!u8_is_ascii_space((unsigned char)s[w]) ||
		    !u8_lit_at(s, w + 1, len, rule[1], 0) ||
		    !u8_is_ascii_space((unsigned char)s[w + 1 + wl]))
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
	lo = u8_cps_back(s, 0, lt, 81 + 4);
	for (size_t a = lo; a + 4 < lt; a++) {
		size_t gap;

		if (!four_digits(s, a, lt))
			continue;
		gap = u8_count_cps(s, a + 4, lt);
		if (memchr(s + a + 4, '\n', lt - a - 4) != NULL)
			continue;
		if ((gap >= 1 && gap <= 80) ||
		    (gap == 81 && u8_is_ascii_space((unsigned char)s[lt - 1])))
			return 1;
	}
	return 0;
}

/* ISO_DATE_SOMEONE_REGEX:
 * ^[[:blank:]>]*20\d\d-\d\d-\d\d \d\d:\d\d GMT\+\d\d:\d\d [\w[:blank:]]+$ */
static int
is_word_or_blank(uint32_t c)
{
	return u8_is_ascii_word(c) || u8_is_blank(c);
}

static int
match_iso_date_someone(const char *s, size_t len)
{
	static const char shape[] = "20dd-dd-dd dd:dd GMT+dd:dd ";
	size_t i = u8_skip(s, 0, len, is_blank_or_gt);

	if (len - i < sizeof(shape))
		return 0;
	for (size_t k = 0; k < sizeof(shape) - 1; k++) {
		if (shape[k] == 'd' ? !u8_is_digit((unsigned char)s[i + k]) :
		    s[i + k] != shape[k])
			return 0;
	}
	i += sizeof(shape) - 1;
	return i < len && u8_skip(s, i, len, is_word_or_blank) == len;
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
		if (!u8_is_blank(u8_cp_at(s, k, len)))
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
	return u8_is_ascii_word(c) || c == '.' || c == '+' || c == '-';
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
			if (st > 0 && u8_word_boundary(s, st, len))
				local_ok = 1;
		if (!local_ok)
			continue;
		for (d = at + 2; d < wpos && is_local_char((unsigned char)s[d]) &&
		     s[d] != '+'; d++) {
			size_t we;

			if (s[d] != '.')
				continue;
			we = u8_skip(s, d + 1, len, u8_is_ascii_word);
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
	size_t i = u8_skip(s, 0, len, is_blank_or_gt), n, t;

	n = u8_lit_at(s, i, len, "Posted by ", 1);
	if (n == 0 || len < i + n + 1 + sizeof(shape) - 1)
		return 0;
	t = len - (sizeof(shape) - 1);
	for (size_t k = 0; k < sizeof(shape) - 1; k++) {
		if (shape[k] == 'd' ? !u8_is_digit((unsigned char)s[t + k]) :
		    u8_fold((unsigned char)s[t + k]) != (unsigned char)shape[k])
			return 0;
	}
	return 1;
}

/* FORWARDED_EMAIL_REGEXES */
static int
is_blank_gt_star(uint32_t c)
{
	return u8_is_blank(c) || c == '>' || c == '*';
}

static const char *const fwd_dashed[] = {
	"Forwarded Message", "Original Message", "Reply Message",
	"Message transféré", "Ursprüngliche Nachricht", "Mensaje original",
	"原始邮件", NULL
};

static int
match_forwarded(const char *s, size_t len)
{
	size_t i = u8_skip(s, 0, len, is_blank_or_gt), j, n;

	if (u8_lit_at(s, i, len, "Begin forwarded message:", 1) ||
	    u8_lit_at(s, i, len, "Début du message transféré :", 1))
		return 1;
	i = u8_skip(s, 0, len, is_blank_gt_star);
	j = i;
	while (j < len && s[j] == '-')
		j++;
	if (j - i < 2)
		return 0;
	j = u8_skip(s, j, len, u8_is_blank);
	n = u8_first_lit(s, j, len, fwd_dashed, 1);
	if (n == 0)
		return 0;
	j = u8_skip(s, j + n, len, u8_is_blank);
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
	return u8_is_blank(c) || c == '*';
}

/* ^[[:blank:]*]*(?:MARKERS)[[:blank:]*]*: then the rest from there. */
static size_t
header_colon(const char *s, size_t len, const char *const *markers, int ci)
{
	size_t i = u8_skip(s, 0, len, is_blank_or_star);

	for (; *markers != NULL; markers++) {
		size_t n = u8_lit_at(s, i, len, *markers, ci), j;

		if (n == 0)
			continue;
		j = u8_skip(s, i + n, len, is_blank_or_star);
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
			if (u8_is_digit((unsigned char)s[p]))
				return 1;
	p = header_colon(s, len, header_text_markers, 1);
	if (p != (size_t)-1)
		while (p < len) {
			size_t n;

			if (u8_is_word(u8_get(s, len, p, &n)))
				return 1;
			p += n;
		}
	return 0;
}

/* QuoteMatcher: ^[[:blank:]]*> */
static int
match_quote(const char *s, size_t len)
{
	size_t i = u8_skip(s, 0, len, u8_is_blank);

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
		if (!u8_is_ascii_space((unsigned char)s[i]))
			return 0;
	return 1;
}

char
replymark_classify(const char *s, size_t len)
{
	int open, close;

	if (len > REPLYMARK_MAX_LINE)
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

				if (!u8_is_space(u8_get(s, j, i, &n)))
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
		w = u8_line_end(s, w, len);
		if (w < len) {
			lines++;
			if (lines <= JOIN_MAX_NEWLINES)
				w++;
		}
	}
	if (w - ls > REPLYMARK_MAX_SPAN)
		w = ls + REPLYMARK_MAX_SPAN;
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
		size_t b0 = u8_skip(s, ls, le, is_odsw_lead);

		return u8_first_lit(s, b0, le, o->start, 1) != 0;
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
		size_t le = u8_line_end(s, ls, len), from = ls, m = (size_t)-1;

		if (le - ls <= REPLYMARK_MAX_LINE)
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
		ls = u8_line_end(s, m, len) + 1;
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
	if (u8_count_cps(s, a + 4, le) > 80)
		return (size_t)-1;
	ne = u8_line_end(s, le + 1, len);
	for (k = le + 1; k + kl <= ne; k = u8_next_cp(s, k, ne)) {
		if (u8_count_cps(s, le + 1, k) > 80)
			break;
		if (u8_lit_at(s, k, ne, rule[1], 0))
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
	for (size_t a = u8_cps_back(s, ls, le, 81 + 4); a + 4 < le && m == (size_t)-1; a++)
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
	for (k = lt + 1; k < len && k < lt + REPLYMARK_MAX_SPAN; k++) {
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
	lo = u8_cps_back(s, ls, lt, 81 + 4);
	for (size_t a = lo; a + 4 < lt; a++) {
		size_t gap;

		if (!four_digits(s, a, lt))
			continue;
		gap = u8_count_cps(s, a + 4, lt);
		if ((gap >= 1 && gap <= 80) ||
		    (gap == 81 && u8_is_ascii_space((unsigned char)s[lt - 1])))
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

int
replymark_join_wrapped(struct buf *t, struct buf *out)
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

