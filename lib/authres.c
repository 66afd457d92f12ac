/*
 * NAME
 *	authres - read RFC 8601 Authentication-Results from the trusted MTA
 * DESCRIPTION
 *	See authres.h. A small tokenizer (CFWS skipped, quoted strings
 *	unescaped, words cut at ";", "=", "/") and a parser of the header's
 *	grammar on top; values longer than a token buffer are truncated,
 *	which can only make a domain comparison fail.
 */
#include "authres.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MAX 256
#define MAX_PROPS 16

enum tok_type { T_END, T_WORD, T_QUOTED, T_SEMI, T_EQ, T_SLASH, T_BAD };

struct lexer {
	const char *s;
	size_t len;
	size_t pos;
};

struct token {
	enum tok_type type;
	char v[TOKEN_MAX];
};

/* skip_cfws - whitespace and (possibly nested) comments; 0 or -1 if unclosed. */
static int
skip_cfws(struct lexer *lx)
{
	while (lx->pos < lx->len) {
		char c = lx->s[lx->pos];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->pos++;
		} else if (c == '(') {
			unsigned depth = 0;

			do {
				c = lx->s[lx->pos];
				if (c == '\\' && lx->pos + 1 < lx->len)
					lx->pos++;
				else if (c == '(')
					depth++;
				else if (c == ')')
					depth--;
				lx->pos++;
			} while (depth > 0 && lx->pos < lx->len);
			if (depth > 0)
				return -1;
		} else {
			break;
		}
	}
	return 0;
}

static int
word_char(char c)
{
	return (unsigned char)c > ' ' && c != 0x7F && !strchr("()\";=/", c);
}

static void
next_token(struct lexer *lx, struct token *t)
{
	size_t n = 0;
	char c;

	t->v[0] = '\0';
	if (skip_cfws(lx) < 0) {
		t->type = T_BAD;
		return;
	}
	if (lx->pos >= lx->len) {
		t->type = T_END;
		return;
	}
	c = lx->s[lx->pos];
	if (c == ';' || c == '=' || c == '/') {
		t->type = c == ';' ? T_SEMI : c == '=' ? T_EQ : T_SLASH;
		lx->pos++;
		return;
	}
	if (c == '"') {
		lx->pos++;
		while (lx->pos < lx->len && lx->s[lx->pos] != '"') {
			c = lx->s[lx->pos];
			if (c == '\\' && lx->pos + 1 < lx->len)
				c = lx->s[++lx->pos];
			if (n + 1 < TOKEN_MAX)
				t->v[n++] = c;
			lx->pos++;
		}
		if (lx->pos >= lx->len) {
			t->type = T_BAD;	/* unterminated */
			return;
		}
		lx->pos++;
		t->v[n] = '\0';
		t->type = T_QUOTED;
		return;
	}
	if (!word_char(c)) {
		t->type = T_BAD;
		return;
	}
	while (lx->pos < lx->len && word_char(lx->s[lx->pos])) {
		if (n + 1 < TOKEN_MAX)
			t->v[n++] = lx->s[lx->pos];
		lx->pos++;
	}
	t->v[n] = '\0';
	t->type = T_WORD;
}

static int
all_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

int
authres_domain_aligned(const char *d, const char *from)
{
	size_t dl, fl;

	if (d == NULL || from == NULL || *d == '\0' || *from == '\0')
		return 0;
	if (strchr(d, '.') == NULL || d[0] == '.' || from[0] == '.')
		return 0;
	dl = strlen(d);
	fl = strlen(from);
	if (dl == fl)
		return strcasecmp(d, from) == 0;
	if (fl > dl)	/* from "mail.example.org", d "example.org" */
		return from[fl - dl - 1] == '.' && strcasecmp(from + fl - dl, d) == 0;
	/* d "mail.example.org", from "example.org" */
	return strchr(from, '.') != NULL && d[dl - fl - 1] == '.' &&
	       strcasecmp(d + dl - fl, from) == 0;
}

struct prop {
	char name[TOKEN_MAX];
	char value[TOKEN_MAX];
};

static const char *
prop_get(const struct prop *p, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(p[i].name, name) == 0)
			return p[i].value;
	return NULL;
}

struct state {
	const char *from_domain;
	struct authres_result *out;
	int dmarc_pass_seen;
	int dmarc_other_seen;		/* none, fail, temperror, ... */
};

/* prop_count - how many times name is given in a clause. */
static size_t
prop_count(const struct prop *p, size_t n, const char *name)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += strcasecmp(p[i].name, name) == 0;
	return c;
}

static void
apply(struct state *st, const char *method, const char *result,
      const struct prop *p, size_t np)
{
	struct authres_result *out = st->out;

	if (strcasecmp(method, "dmarc") == 0) {
		const char *hf = prop_get(p, np, "header.from");

		/* A pass says which From domain passed, once, and it is
		 * this message's: else it proves nothing about this From. */
		if (strcasecmp(result, "pass") == 0 && hf != NULL &&
		    prop_count(p, np, "header.from") == 1 &&
		    st->from_domain != NULL && strcasecmp(hf, st->from_domain) == 0)
			st->dmarc_pass_seen = 1;
		else
			st->dmarc_other_seen = 1;
		if (strcasecmp(result, "fail") == 0)
			out->dmarc_fail = 1;
	} else if (strcasecmp(method, "dkim") == 0) {
		const char *d = prop_get(p, np, "header.d");

		if (strcasecmp(result, "pass") != 0)
			return;
		out->dkim_pass = 1;
		if (d == NULL && (d = prop_get(p, np, "header.i")) != NULL) {
			const char *at = strrchr(d, '@');

			d = at ? at + 1 : d;
		}
		if (d && !out->dkim_aligned_pass &&
		    authres_domain_aligned(d, st->from_domain)) {
			out->dkim_aligned_pass = 1;
			snprintf(out->dkim_domain, sizeof(out->dkim_domain), "%s", d);
		}
	} else if (strcasecmp(method, "spf") == 0) {
		if (strcasecmp(result, "pass") == 0)
			out->spf_pass = 1;
	}
}

/* One "method=result props" clause. */
struct clause {
	char method[TOKEN_MAX];
	char result[TOKEN_MAX];
	struct prop props[MAX_PROPS];
	size_t np;
};

/*
 * read_clause - one clause after its ";" into c (the token after it in
 * *t). 0 when read; -1 for anything else: the end, "none", garbage.
 */
static int
read_clause(struct lexer *lx, struct token *t, struct clause *c)
{
	c->np = 0;
	next_token(lx, t);
	if (t->type != T_WORD)
		return -1;
	snprintf(c->method, sizeof(c->method), "%s", t->v);
	next_token(lx, t);
	if (t->type == T_SLASH) {	/* method-version */
		next_token(lx, t);
		if (t->type != T_WORD)
			return -1;
		next_token(lx, t);
	}
	if (t->type != T_EQ)
		return -1;
	next_token(lx, t);
	if (t->type != T_WORD)
		return -1;
	snprintf(c->result, sizeof(c->result), "%s", t->v);
	next_token(lx, t);
	while (t->type == T_WORD) {	/* reason=..., ptype.prop=... */
		struct prop *p = c->np < MAX_PROPS ? &c->props[c->np] : NULL;

		if (p)
			snprintf(p->name, sizeof(p->name), "%s", t->v);
		next_token(lx, t);
		if (t->type != T_EQ)
			return -1;
		next_token(lx, t);
		if (t->type != T_WORD && t->type != T_QUOTED)
			return -1;
		if (p) {
			snprintf(p->value, sizeof(p->value), "%s", t->v);
			c->np++;
		}
		next_token(lx, t);
	}
	return t->type == T_SEMI || t->type == T_END ? 0 : -1;
}

/*
 * read_header - the clauses after the authserv-id; each to st when
 * st is not NULL. 0 when the header is read cleanly to its end ("; none"
 * and a trailing ";" included), -1 otherwise.
 */
static int
read_header(const char *h, struct state *st)
{
	struct lexer lx = { h, strnlen(h, AUTHRES_MAX_HEADER), 0 };
	struct token t;
	struct clause c;

	next_token(&lx, &t);		/* the authserv-id */
	next_token(&lx, &t);
	if (t.type == T_WORD && all_digits(t.v))	/* authres-version */
		next_token(&lx, &t);
	while (t.type == T_SEMI) {
		size_t save = lx.pos;

		if (read_clause(&lx, &t, &c) == 0) {
			if (st)
				apply(st, c.method, c.result, c.props, c.np);
			continue;
		}
		lx.pos = save;
		next_token(&lx, &t);
		if (t.type == T_WORD && strcasecmp(t.v, "none") == 0)
			next_token(&lx, &t);
		break;
	}
	return t.type == T_END ? 0 : -1;
}

/*
 * check_one - one header value; results into st. Only a header read to
 * its end counts, and then whole: a verdict read before something
 * unreadable (a server may have copied that from the message itself), or
 * in a header longer than AUTHRES_MAX_HEADER, is not believed.
 */
static void
check_one(struct state *st, const char *h, const char *trusted)
{
	struct lexer lx = { h, strnlen(h, AUTHRES_MAX_HEADER), 0 };
	struct token t;

	next_token(&lx, &t);
	if ((t.type != T_WORD && t.type != T_QUOTED) ||
	    strcasecmp(t.v, trusted) != 0) {
		st->out->ignored_headers++;
		return;
	}
	/* Only the topmost trusted header is the receiving MTA's own: one
	 * further down came with the message (RFC 8601 section 5). */
	if (st->out->trusted_headers++ > 0) {
		st->out->below_top++;
		return;
	}
	if (strnlen(h, AUTHRES_MAX_HEADER + 1) > AUTHRES_MAX_HEADER ||
	    read_header(h, NULL) < 0)
		return;
	read_header(h, st);
}

int
authres_check(const char *const *headers, size_t n,
	      const char *trusted_authserv_id, const char *from_domain,
	      struct authres_result *out)
{
	struct state st = { from_domain, out, 0, 0 };

	if (out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if ((headers == NULL && n > 0) || trusted_authserv_id == NULL ||
	    *trusted_authserv_id == '\0')
		return -EINVAL;
	if (from_domain != NULL && *from_domain == '\0')
		st.from_domain = NULL;
	for (size_t i = 0; i < n; i++)
		if (headers[i] != NULL)
			check_one(&st, headers[i], trusted_authserv_id);
	out->dmarc_pass = st.dmarc_pass_seen && !st.dmarc_other_seen;
	return 0;
}
