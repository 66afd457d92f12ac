/*
 * NAME
 *	template - a mustache template engine (spec v1.3 core modules)
 * DESCRIPTION
 *	See template.h for the contract. How it works:
 *
 *	tmpl_parse copies the source once and turns it into a flat array of
 *	nodes (text runs, variables, sections, inverted sections, partials)
 *	that point into that copy by offset. A section node records the
 *	index just past its last child, so rendering walks the array and
 *	recursion depth equals section nesting. Close tags, comments and
 *	set-delimiter tags leave no node. Standalone-line whitespace is
 *	removed while parsing, so rendering never looks at it again.
 *
 *	Rendering reads the template and never writes to it; its state (the
 *	context stack, a cache of loaded partials, the work counter) lives on
 *	the caller's stack and heap, so one template may render in many
 *	threads at once.
 *
 *	Partials: a standalone partial tag's indentation is inserted after
 *	every newline of the partial's source before it is parsed (as the
 *	spec's reference does), so interpolated values that contain newlines
 *	are not indented. Each (name, indentation) pair is loaded and parsed
 *	at most once per render and cached until the render ends.
 *
 *	Truthiness follows the spec's "!!data" wording: missing names, null,
 *	false, 0, 0.0, "" and [] are falsey; everything else, {} included, is
 *	truthy. Interpolated integers print as integers, reals in the shortest
 *	form that reads back as the same double (1.21 prints "1.21"), booleans
 *	as "true"/"false"; objects, arrays and null print nothing.
 *
 *	Besides the limits in template.h, a render has a work budget (node
 *	visits, context frames searched and bytes of partial source parsed)
 *	of 4M + 16 * max_output steps, so a template cannot loop for long
 *	without producing output (nested sections over a list, fan-out of
 *	partials). Tag names are limited to 255 bytes and may not contain
 *	whitespace or control characters; delimiters set with {{=a b=}} to
 *	16 bytes each, without whitespace or '='.
 * DIAGNOSTICS
 *	-EINVAL	malformed template (unclosed or mismatched tags, bad names,
 *		bad delimiters); -EFBIG source or output too large; -ELOOP
 *		section or partial nesting too deep; -E2BIG work budget spent;
 *		-ENOMEM; a partial loader's own negative code. Error texts name
 *		the line (and partial) and at most a tag name, never values.
 */
#include "template.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMPL_NAME_MAX		255
#define TMPL_DELIM_MAX		16	/* keeps delimiter search linear */
#define TMPL_DEFAULT_OUTPUT	(1024 * 1024)
#define TMPL_BASE_STEPS		(4u * 1024 * 1024)
#define TMPL_PARSE_COST		8	/* steps per byte of partial source */

enum node_type {
	NODE_TEXT,
	NODE_VAR,		/* {{x}}: escaped per options */
	NODE_RAW,		/* {{{x}}}, {{&x}} */
	NODE_SECTION,		/* {{#x}} */
	NODE_INVERTED,		/* {{^x}} */
	NODE_PARTIAL,		/* {{>x}} */
};

struct tmpl_node {
	uint8_t type;
	uint32_t off, len;	/* text, or name, in tmpl.src */
	uint32_t line;
	uint32_t skip;		/* sections: index just past the last child */
	uint32_t indent_off, indent_len;	/* standalone partials */
};

struct tmpl {
	char *src;
	size_t len;
	struct tmpl_node *nodes;
	uint32_t n;
};

/* Error texts: a tag name is shown only as printable ASCII, shortened. */
static const char *
safe_name(const char *s, size_t len, char out[72])
{
	size_t i, n = len > 64 ? 64 : len;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
	}
	if (n < len) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

static int
tmpl_fail(struct cp_error *err, int code, const char *partial, unsigned line,
	  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int
tmpl_fail(struct cp_error *err, int code, const char *partial, unsigned line,
	  const char *fmt, ...)
{
	char msg[192], pn[72];
	va_list ap;

	if (err == NULL)
		return code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (partial != NULL)
		return cp_error_set(err, code, "partial '%s': line %u: %s",
				    safe_name(partial, strlen(partial), pn),
				    line, msg);
	return cp_error_set(err, code, "line %u: %s", line, msg);
}

/* ---------------------------------------------------------------- parse */

struct parser {
	const char *src;
	size_t len;
	const char *partial;	/* for error texts; NULL at top level */
	struct cp_error *err;

	size_t line_pos;	/* newlines before line_pos are counted */
	unsigned line;

	const char *otag, *ctag;
	size_t olen, clen;

	struct tmpl_node *nodes;
	size_t n, cap;

	uint32_t open[TMPL_MAX_DEPTH];
	unsigned depth;
};

static unsigned
line_at(struct parser *p, size_t pos)
{
	while (p->line_pos < pos) {
		const char *nl = memchr(p->src + p->line_pos, '\n',
					pos - p->line_pos);

		if (nl == NULL) {
			p->line_pos = pos;
			break;
		}
		p->line++;
		p->line_pos = (size_t)(nl - p->src) + 1;
	}
	return p->line;
}

/*
 * memmem for short needles in text where the first byte is rare: glibc's
 * memchr is vectorised, its memmem for two-byte needles is not.
 */
static const char *
find_delim(const char *hay, size_t n, const char *needle, size_t nlen)
{
	const char *end = hay + n;

	while ((size_t)(end - hay) >= nlen) {
		const char *c = memchr(hay, needle[0], (size_t)(end - hay) -
				       nlen + 1);

		if (c == NULL)
			return NULL;
		if (memcmp(c + 1, needle + 1, nlen - 1) == 0)
			return c;
		hay = c + 1;
	}
	return NULL;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
	       c == '\f';
}

static bool
all_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

static struct tmpl_node *
add_node(struct parser *p, enum node_type type, size_t off, size_t len,
	 unsigned line)
{
	struct tmpl_node *nd;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 32;
		struct tmpl_node *nn = realloc(p->nodes, cap * sizeof(*nn));

		if (nn == NULL)
			return NULL;
		p->nodes = nn;
		p->cap = cap;
	}
	nd = &p->nodes[p->n++];
	memset(nd, 0, sizeof(*nd));
	nd->type = (uint8_t)type;
	nd->off = (uint32_t)off;
	nd->len = (uint32_t)len;
	nd->line = line;
	return nd;
}

static int
add_text(struct parser *p, size_t from, size_t to, unsigned line)
{
	if (to <= from)
		return 0;
	if (add_node(p, NODE_TEXT, from, to - from, line) == NULL)
		return cp_error_set(p->err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * Trim the tag content [*off, *off + *len) and check it is a usable name:
 * non-empty, bounded, no whitespace or control bytes, and (for data names)
 * either "." or dot-separated non-empty parts.
 */
static int
check_name(struct parser *p, unsigned line, size_t *off, size_t *len,
	   bool dotted)
{
	const char *s = p->src + *off;
	size_t n = *len;
	char sn[72];

	while (n > 0 && is_space(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_space(s[n - 1]))
		n--;
	*off = (size_t)(s - p->src);
	*len = n;
	if (n == 0)
		return tmpl_fail(p->err, -EINVAL, p->partial, line,
				 "empty tag name");
	if (n > TMPL_NAME_MAX)
		return tmpl_fail(p->err, -EINVAL, p->partial, line,
				 "tag name longer than %d bytes",
				 TMPL_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == ' ')
			return tmpl_fail(p->err, -EINVAL, p->partial, line,
					 "invalid tag name '%s'",
					 safe_name(s, n, sn));
	}
	if (!dotted || (n == 1 && s[0] == '.'))
		return 0;
	if (s[0] == '.' || s[n - 1] == '.' || memmem(s, n, "..", 2) != NULL)
		return tmpl_fail(p->err, -EINVAL, p->partial, line,
				 "invalid dotted name '%s'",
				 safe_name(s, n, sn));
	return 0;
}

/* {{=<% %>=}}: the content between the two '=' holds the new pair. */
static int
set_delimiters(struct parser *p, unsigned line, size_t off, size_t len)
{
	const char *s = p->src + off, *e = s + len, *a, *b;
	size_t alen, blen;

	while (s < e && is_space(*s))
		s++;
	while (e > s && is_space(e[-1]))
		e--;
	a = s;
	while (s < e && !is_space(*s))
		s++;
	alen = (size_t)(s - a);
	while (s < e && is_space(*s))
		s++;
	b = s;
	blen = (size_t)(e - b);
	if (alen == 0 || blen == 0 || alen > TMPL_DELIM_MAX ||
	    blen > TMPL_DELIM_MAX || memchr(a, '=', alen) != NULL ||
	    memchr(b, '=', blen) != NULL)
		return tmpl_fail(p->err, -EINVAL, p->partial, line,
				 "bad set-delimiter tag");
	for (size_t i = 0; i < blen; i++)
		if (is_space(b[i]))
			return tmpl_fail(p->err, -EINVAL, p->partial, line,
					 "bad set-delimiter tag");
	p->otag = a;
	p->olen = alen;
	p->ctag = b;
	p->clen = blen;
	return 0;
}

/*
 * Find the end of the tag whose content starts at cstart: the closing
 * delimiter, preceded by '}' for triple mustaches and '=' for delimiter
 * changes. Returns the content end, or (size_t)-1.
 */
static size_t
find_close(struct parser *p, size_t cstart, char need)
{
	size_t from = cstart;

	for (;;) {
		const char *q = find_delim(p->src + from, p->len - from,
					   p->ctag, p->clen);
		size_t at;

		if (q == NULL)
			return (size_t)-1;
		at = (size_t)(q - p->src);
		if (need == 0)
			return at;
		if (at > cstart && p->src[at - 1] == need)
			return at - 1;
		from = at + 1;
	}
}

static int
open_section(struct parser *p, enum node_type type, unsigned line, size_t off,
	     size_t len)
{
	if (p->depth >= TMPL_MAX_DEPTH)
		return tmpl_fail(p->err, -ELOOP, p->partial, line,
				 "sections nested deeper than %d",
				 TMPL_MAX_DEPTH);
	if (add_node(p, type, off, len, line) == NULL)
		return cp_error_set(p->err, -ENOMEM, "out of memory");
	p->open[p->depth++] = (uint32_t)(p->n - 1);
	return 0;
}

static int
close_section(struct parser *p, unsigned line, size_t off, size_t len)
{
	struct tmpl_node *o;
	char sn[72], sn2[72];

	if (p->depth == 0)
		return tmpl_fail(p->err, -EINVAL, p->partial, line,
				 "closing tag '%s' without an open section",
				 safe_name(p->src + off, len, sn));
	o = &p->nodes[p->open[p->depth - 1]];
	if (o->len != len || memcmp(p->src + o->off, p->src + off, len) != 0)
		return tmpl_fail(p->err, -EINVAL, p->partial, line,
				 "closing tag '%s' does not match section "
				 "'%s' opened on line %u",
				 safe_name(p->src + off, len, sn),
				 safe_name(p->src + o->off, o->len, sn2),
				 o->line);
	o->skip = (uint32_t)p->n;
	p->depth--;
	return 0;
}

static int
parse_nodes(struct parser *p)
{
	size_t pos = 0, line_start = 0, last_tag_end = 0;
	int r;

	for (;;) {
		const char *o, *nl;
		size_t tag, cstart, cend, tag_end, next, name_off, name_len;
		bool standalone = false;
		unsigned line, text_line = line_at(p, pos);
		char type;

		o = find_delim(p->src + pos, p->len - pos, p->otag, p->olen);
		if (o == NULL)
			return add_text(p, pos, p->len, text_line);
		tag = (size_t)(o - p->src);
		nl = memrchr(p->src + pos, '\n', tag - pos);
		if (nl != NULL)
			line_start = (size_t)(nl - p->src) + 1;
		line = line_at(p, tag);

		cstart = tag + p->olen;
		type = cstart < p->len ? p->src[cstart] : '\0';
		switch (type) {
		case '#': case '^': case '/': case '>': case '!': case '=':
		case '{': case '&':
			cstart++;
			break;
		default:
			type = 'v';
		}
		cend = find_close(p, cstart, type == '{' ? '}' :
				  type == '=' ? '=' : '\0');
		if (cend == (size_t)-1)
			return tmpl_fail(p->err, -EINVAL, p->partial, line,
					 "unclosed tag");
		tag_end = cend + (type == '{' || type == '=' ? 1 : 0) + p->clen;
		next = tag_end;

		/* Standalone: alone on its line but for blanks. */
		if (strchr("#^/>!=", type) != NULL &&
		    last_tag_end <= line_start &&
		    all_blank(p->src + line_start, tag - line_start)) {
			size_t q = tag_end;

			while (q < p->len && (p->src[q] == ' ' ||
					      p->src[q] == '\t'))
				q++;
			if (q == p->len) {
				standalone = true;
				next = q;
			} else if (p->src[q] == '\n') {
				standalone = true;
				next = q + 1;
			} else if (p->src[q] == '\r' && q + 1 < p->len &&
				   p->src[q + 1] == '\n') {
				standalone = true;
				next = q + 2;
			}
		}
		r = add_text(p, pos, standalone ? line_start : tag, text_line);
		if (r < 0)
			return r;

		name_off = cstart;
		name_len = cend - cstart;
		switch (type) {
		case '!':
			r = 0;
			break;
		case '=':
			r = set_delimiters(p, line, cstart, cend - cstart);
			break;
		case '>': {
			struct tmpl_node *nd;

			r = check_name(p, line, &name_off, &name_len, false);
			if (r < 0)
				break;
			nd = add_node(p, NODE_PARTIAL, name_off, name_len,
				      line);
			if (nd == NULL)
				return cp_error_set(p->err, -ENOMEM,
						    "out of memory");
			if (standalone) {
				nd->indent_off = (uint32_t)line_start;
				nd->indent_len = (uint32_t)(tag - line_start);
			}
			break;
		}
		case '#':
		case '^':
			r = check_name(p, line, &name_off, &name_len, true);
			if (r >= 0)
				r = open_section(p, type == '#' ? NODE_SECTION :
						 NODE_INVERTED, line, name_off,
						 name_len);
			break;
		case '/':
			r = check_name(p, line, &name_off, &name_len, true);
			if (r >= 0)
				r = close_section(p, line, name_off, name_len);
			break;
		default:
			r = check_name(p, line, &name_off, &name_len, true);
			if (r < 0)
				break;
			if (add_node(p, type == 'v' ? NODE_VAR : NODE_RAW,
				     name_off, name_len, line) == NULL)
				return cp_error_set(p->err, -ENOMEM,
						    "out of memory");
		}
		if (r < 0)
			return r;
		last_tag_end = tag_end;
		if (standalone)
			line_start = next;
		pos = next;
	}
}

static int
parse_source(const char *src, size_t len, const char *partial,
	     struct tmpl **out, struct cp_error *err)
{
	struct parser p;
	struct tmpl *t;
	char sn[72];
	int r;

	*out = NULL;
	if (len > TMPL_MAX_SOURCE)
		return tmpl_fail(err, -EFBIG, partial, 1,
				 "template larger than %d bytes",
				 TMPL_MAX_SOURCE);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return cp_error_set(err, -ENOMEM, "out of memory");
	t->src = malloc(len + 1);
	if (t->src == NULL) {
		free(t);
		return cp_error_set(err, -ENOMEM, "out of memory");
	}
	if (len)
		memcpy(t->src, src, len);
	t->src[len] = '\0';
	t->len = len;

	memset(&p, 0, sizeof(p));
	p.src = t->src;
	p.len = len;
	p.partial = partial;
	p.err = err;
	p.line = 1;
	p.otag = "{{";
	p.olen = 2;
	p.ctag = "}}";
	p.clen = 2;
	r = parse_nodes(&p);
	if (r >= 0 && p.depth > 0) {
		const struct tmpl_node *o = &p.nodes[p.open[p.depth - 1]];

		r = tmpl_fail(err, -EINVAL, partial, o->line,
			      "unclosed section '%s'",
			      safe_name(t->src + o->off, o->len, sn));
	}
	t->nodes = p.nodes;
	t->n = (uint32_t)p.n;
	if (r < 0) {
		tmpl_free(t);
		return r;
	}
	*out = t;
	return 0;
}

int
tmpl_parse(const char *src, size_t len, struct tmpl **out,
	   struct cp_error *err)
{
	return parse_source(src, len, NULL, out, err);
}

void
tmpl_free(struct tmpl *t)
{
	if (t == NULL)
		return;
	free(t->nodes);
	free(t->src);
	free(t);
}

/* ------------------------------------------------------- partial cache */

/* Key: name, NUL, indentation. t == NULL caches "not found". */
struct pentry {
	char *key;
	size_t klen;
	uint64_t hash;
	struct tmpl *t;
};

struct pcache {
	struct pentry *e;
	size_t n, cap;		/* cap is 0 or a power of two */
};

static uint64_t
fnv1a(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static struct pentry *
pcache_find(struct pcache *c, const char *key, size_t klen, uint64_t h)
{
	if (c->cap == 0)
		return NULL;
	for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
		struct pentry *e = &c->e[i];

		if (e->key == NULL)
			return NULL;
		if (e->hash == h && e->klen == klen &&
		    memcmp(e->key, key, klen) == 0)
			return e;
	}
}

static int
pcache_grow(struct pcache *c)
{
	size_t cap = c->cap ? c->cap * 2 : 16;
	struct pentry *ne = calloc(cap, sizeof(*ne));

	if (ne == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < c->cap; i++) {
		size_t j;

		if (c->e[i].key == NULL)
			continue;
		for (j = c->e[i].hash & (cap - 1); ne[j].key != NULL;
		     j = (j + 1) & (cap - 1))
			;
		ne[j] = c->e[i];
	}
	free(c->e);
	c->e = ne;
	c->cap = cap;
	return 0;
}

/* Takes key and t; on failure frees both. */
static struct pentry *
pcache_add(struct pcache *c, char *key, size_t klen, uint64_t h,
	   struct tmpl *t)
{
	size_t i;

	if ((c->n + 1) * 2 > c->cap && pcache_grow(c) < 0) {
		free(key);
		tmpl_free(t);
		return NULL;
	}
	for (i = h & (c->cap - 1); c->e[i].key != NULL;
	     i = (i + 1) & (c->cap - 1))
		;
	c->e[i].key = key;
	c->e[i].klen = klen;
	c->e[i].hash = h;
	c->e[i].t = t;
	c->n++;
	return &c->e[i];
}

static void
pcache_free(struct pcache *c)
{
	for (size_t i = 0; i < c->cap; i++) {
		free(c->e[i].key);
		tmpl_free(c->e[i].t);
	}
	free(c->e);
}

/* --------------------------------------------------------------- render */

struct render {
	const struct tmpl_options *opts;
	struct cp_error *err;
	struct buf *out;
	size_t start;		/* out->len when the render began */
	size_t max_output;
	uint64_t steps, max_steps;

	json_t **stack;		/* borrowed values */
	size_t depth, stack_cap;

	unsigned partial_depth;
	const char *partial;	/* name of the partial being rendered */
	struct pcache cache;
	struct buf key;		/* scratch: name, NUL, indentation */
};

static int render_nodes(struct render *r, const struct tmpl *t, uint32_t begin,
			uint32_t end);

static int
charge(struct render *r, uint64_t steps, unsigned line)
{
	r->steps += steps;
	if (r->steps > r->max_steps)
		return tmpl_fail(r->err, -E2BIG, r->partial, line,
				 "rendering exceeds the work limit");
	return 0;
}

static int
emit(struct render *r, const char *s, size_t len, unsigned line)
{
	int k;

	if (len == 0)
		return 0;
	if (len > r->max_output - (r->out->len - r->start))
		return tmpl_fail(r->err, -EFBIG, r->partial, line,
				 "output larger than %zu bytes",
				 r->max_output);
	k = buf_append(r->out, s, len);
	if (k == -EFBIG)
		return tmpl_fail(r->err, k, r->partial, line,
				 "output larger than the buffer's limit");
	if (k < 0)
		return cp_error_set(r->err, k, "out of memory");
	return 0;
}

static int
emit_escaped(struct render *r, const char *s, size_t len, unsigned line)
{
	size_t i = 0, run = 0;
	int k;

	for (i = 0; i < len; i++) {
		const char *ent;
		size_t elen;

		switch (s[i]) {
		case '&': ent = "&amp;"; elen = 5; break;
		case '<': ent = "&lt;"; elen = 4; break;
		case '>': ent = "&gt;"; elen = 4; break;
		case '"': ent = "&quot;"; elen = 6; break;
		default: continue;
		}
		k = emit(r, s + run, i - run, line);
		if (k < 0)
			return k;
		k = emit(r, ent, elen, line);
		if (k < 0)
			return k;
		run = i + 1;
	}
	return emit(r, s + run, len - run, line);
}

/* The shortest "%.Ng" that reads back as the same double. */
static void
format_real(double d, char *out, size_t size)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			return;
	}
}

static int
emit_value(struct render *r, json_t *v, bool escape, unsigned line)
{
	char num[64];

	switch (json_typeof(v)) {
	case JSON_STRING:
		if (escape)
			return emit_escaped(r, json_string_value(v),
					    json_string_length(v), line);
		return emit(r, json_string_value(v), json_string_length(v),
			    line);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return emit(r, num, strlen(num), line);
	case JSON_REAL:
		format_real(json_real_value(v), num, sizeof(num));
		return emit(r, num, strlen(num), line);
	case JSON_TRUE:
		return emit(r, "true", 4, line);
	case JSON_FALSE:
		return emit(r, "false", 5, line);
	default:
		return 0;	/* null, objects and arrays print nothing */
	}
}

static bool
truthy(json_t *v)
{
	if (v == NULL)
		return false;
	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_FALSE:
		return false;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0.0;
	default:
		return true;
	}
}

static int
push(struct render *r, json_t *v)
{
	if (r->depth == r->stack_cap) {
		size_t cap = r->stack_cap ? r->stack_cap * 2 : 16;
		json_t **ns = realloc(r->stack, cap * sizeof(*ns));

		if (ns == NULL)
			return cp_error_set(r->err, -ENOMEM, "out of memory");
		r->stack = ns;
		r->stack_cap = cap;
	}
	r->stack[r->depth++] = v;
	return 0;
}

/*
 * Resolve a name against the context stack: "." is the top; otherwise the
 * first part is looked up from the top down, the rest strictly inside the
 * value found. Returns a borrowed value, or NULL (missing) with *rc = 0,
 * or NULL with *rc < 0 when the work budget is spent.
 */
static json_t *
lookup(struct render *r, const struct tmpl *t, const struct tmpl_node *nd,
       int *rc)
{
	const char *name = t->src + nd->off, *dot;
	size_t len = nd->len, plen;
	json_t *v = NULL;
	size_t i;

	*rc = 0;
	if (len == 1 && name[0] == '.')
		return r->depth ? r->stack[r->depth - 1] : NULL;
	dot = memchr(name, '.', len);
	plen = dot ? (size_t)(dot - name) : len;
	for (i = r->depth; i-- > 0;) {
		json_t *c = r->stack[i];

		if (json_is_object(c)) {
			v = json_object_getn(c, name, plen);
			if (v != NULL)
				break;
		}
	}
	*rc = charge(r, r->depth - (i == (size_t)-1 ? 0 : i), nd->line);
	if (*rc < 0)
		return NULL;
	while (v != NULL && dot != NULL) {
		name = dot + 1;
		len -= plen + 1;
		dot = memchr(name, '.', len);
		plen = dot ? (size_t)(dot - name) : len;
		v = json_is_object(v) ? json_object_getn(v, name, plen) : NULL;
	}
	return v;
}

static int
render_section(struct render *r, const struct tmpl *t, uint32_t i)
{
	const struct tmpl_node *nd = &t->nodes[i];
	json_t *v;
	int k;

	v = lookup(r, t, nd, &k);
	if (k < 0)
		return k;
	if (nd->type == NODE_INVERTED)
		return truthy(v) ? 0 : render_nodes(r, t, i + 1, nd->skip);
	if (!truthy(v))
		return 0;
	if (json_is_array(v)) {
		size_t idx;
		json_t *item;

		json_array_foreach(v, idx, item) {
			k = charge(r, 1, nd->line);
			if (k >= 0)
				k = push(r, item);
			if (k < 0)
				return k;
			k = render_nodes(r, t, i + 1, nd->skip);
			r->depth--;
			if (k < 0)
				return k;
		}
		return 0;
	}
	k = push(r, v);
	if (k < 0)
		return k;
	k = render_nodes(r, t, i + 1, nd->skip);
	r->depth--;
	return k;
}

/* Insert indent at the start and after every newline but a final one. */
static int
indent_source(const char *src, size_t len, const char *indent, size_t ilen,
	      char **out, size_t *outlen)
{
	size_t lines = 1, n, o = 0;
	char *d;

	for (const char *q = src; (q = memchr(q, '\n', len - (size_t)(q - src)));
	     q++)
		if ((size_t)(q - src) + 1 < len)
			lines++;
	if (lines > (TMPL_MAX_SOURCE + 1) / ilen ||
	    len + lines * ilen > TMPL_MAX_SOURCE)
		return -EFBIG;
	n = len + lines * ilen;
	d = malloc(n + 1);
	if (d == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		if (i == 0 || (src[i - 1] == '\n')) {
			memcpy(d + o, indent, ilen);
			o += ilen;
		}
		d[o++] = src[i];
	}
	d[o] = '\0';
	*out = d;
	*outlen = o;
	return 0;
}

static int
load_partial(struct render *r, const struct tmpl_node *nd, const char *indent,
	     size_t ilen, const char *key, size_t klen, uint64_t h,
	     struct pentry **out)
{
	_cleanup_free_ char *src = NULL, *indented = NULL, *kcopy = NULL;
	struct tmpl *pt = NULL;
	size_t len = 0;
	char sn[72];
	int k;

	k = r->opts->partial(r->opts->partial_userdata, key, &src, &len);
	if (k == -ENOENT) {
		/* the spec renders a missing partial as empty text */
	} else if (k < 0) {
		return tmpl_fail(r->err, k, r->partial, nd->line,
				 "partial '%s' could not be loaded (error %d)",
				 safe_name(key, strlen(key), sn), k);
	} else {
		if (src == NULL && len > 0)
			return tmpl_fail(r->err, -EINVAL, r->partial, nd->line,
					 "partial loader returned no text");
		if (ilen > 0 && len > 0 && len <= TMPL_MAX_SOURCE) {
			k = indent_source(src ? src : "", len, indent, ilen,
					  &indented, &len);
			if (k == -ENOMEM)
				return cp_error_set(r->err, k, "out of memory");
			if (k < 0)
				return tmpl_fail(r->err, k, key, 1,
						 "indented partial larger "
						 "than %d bytes",
						 TMPL_MAX_SOURCE);
		}
		k = charge(r, (uint64_t)len * TMPL_PARSE_COST + 1, nd->line);
		if (k < 0)
			return k;
		k = parse_source(indented ? indented : src ? src : "", len,
				 key, &pt, r->err);
		if (k < 0)
			return k;
	}
	kcopy = malloc(klen);
	if (kcopy == NULL) {
		tmpl_free(pt);
		return cp_error_set(r->err, -ENOMEM, "out of memory");
	}
	memcpy(kcopy, key, klen);
	*out = pcache_add(&r->cache, CP_TAKE_PTR(kcopy), klen, h, pt);
	if (*out == NULL)
		return cp_error_set(r->err, -ENOMEM, "out of memory");
	return 0;
}

static int
render_partial(struct render *r, const struct tmpl *t,
	       const struct tmpl_node *nd)
{
	const char *indent = t->src + nd->indent_off, *saved, *key;
	size_t klen = nd->len + 1 + nd->indent_len;
	struct pentry *e;
	uint64_t h;
	int k;

	if (r->opts->partial == NULL)
		return 0;
	if (r->partial_depth >= TMPL_MAX_PARTIAL_DEPTH)
		return tmpl_fail(r->err, -ELOOP, r->partial, nd->line,
				 "partials nested deeper than %d",
				 TMPL_MAX_PARTIAL_DEPTH);
	buf_reset(&r->key);
	if (buf_append(&r->key, t->src + nd->off, nd->len) < 0 ||
	    buf_putc(&r->key, '\0') < 0 ||
	    buf_append(&r->key, indent, nd->indent_len) < 0)
		return cp_error_set(r->err, -ENOMEM, "out of memory");
	key = r->key.data;
	h = fnv1a(key, klen);
	e = pcache_find(&r->cache, key, klen, h);
	if (e == NULL) {
		k = load_partial(r, nd, indent, nd->indent_len, key, klen, h,
				 &e);
		if (k < 0)
			return k;
	}
	if (e->t == NULL)
		return 0;	/* missing partials render empty */
	saved = r->partial;
	r->partial = e->key;	/* stays put when the cache grows */
	r->partial_depth++;
	k = render_nodes(r, e->t, 0, e->t->n);
	r->partial_depth--;
	r->partial = saved;
	return k;
}

static int
render_nodes(struct render *r, const struct tmpl *t, uint32_t begin,
	     uint32_t end)
{
	for (uint32_t i = begin; i < end; i++) {
		const struct tmpl_node *nd = &t->nodes[i];
		json_t *v;
		int k;

		k = charge(r, 1, nd->line);
		if (k < 0)
			return k;
		switch (nd->type) {
		case NODE_TEXT:
			k = emit(r, t->src + nd->off, nd->len, nd->line);
			break;
		case NODE_VAR:
		case NODE_RAW:
			v = lookup(r, t, nd, &k);
			if (v != NULL)
				k = emit_value(r, v, nd->type == NODE_VAR &&
					       r->opts->escape ==
					       TMPL_ESCAPE_HTML, nd->line);
			break;
		case NODE_SECTION:
		case NODE_INVERTED:
			k = render_section(r, t, i);
			i = nd->skip - 1;
			break;
		case NODE_PARTIAL:
			k = render_partial(r, t, nd);
			break;
		}
		if (k < 0)
			return k;
	}
	return 0;
}

int
tmpl_render(const struct tmpl *t, json_t *context,
	    const struct tmpl_options *opts, struct buf *out,
	    struct cp_error *err)
{
	static const struct tmpl_options defaults;
	struct render r;
	int k = 0;

	if (t == NULL || out == NULL)
		return cp_error_set(err, -EINVAL, "no template or buffer");
	memset(&r, 0, sizeof(r));
	r.opts = opts ? opts : &defaults;
	r.err = err;
	r.out = out;
	r.start = out->len;
	r.max_output = r.opts->max_output ? r.opts->max_output :
		       TMPL_DEFAULT_OUTPUT;
	r.max_steps = TMPL_BASE_STEPS + 16 * (uint64_t)r.max_output;
	if (context != NULL)
		k = push(&r, context);
	if (k >= 0)
		k = render_nodes(&r, t, 0, t->n);
	free(r.stack);
	buf_free(&r.key);
	pcache_free(&r.cache);
	if (k < 0) {
		/* Leave no half-rendered mail behind. */
		out->len = r.start;
		if (out->data != NULL)
			out->data[out->len] = '\0';
		return k;
	}
	return 0;
}

int
tmpl_render_string(const char *src, size_t len, json_t *context,
		   const struct tmpl_options *opts, struct buf *out,
		   struct cp_error *err)
{
	struct tmpl *t;
	int k;

	k = tmpl_parse(src, len, &t, err);
	if (k < 0)
		return k;
	k = tmpl_render(t, context, opts, out, err);
	tmpl_free(t);
	return k;
}

int
tmpl_dir_partial(void *userdata, const char *name, char **src, size_t *len)
{
	const char *dir = userdata;
	char path[4096];
	int k;

	if (dir == NULL || name == NULL || name[0] == '\0' || name[0] == '.' ||
	    strchr(name, '/') != NULL)
		return -EINVAL;
	k = cp_snprintf_ok(path, sizeof(path), "%s/%s.mustache", dir, name);
	if (k < 0)
		return k;
	return cp_read_file(path, TMPL_MAX_SOURCE, src, len);
}
