/*
 * NAME
 *	template - a mustache template engine (spec v1.3 core modules)
 * SYNOPSIS
 *	#include "template.h"
 *
 *	struct tmpl *t;
 *	if (tmpl_parse(src, len, &t, &err) < 0) ...
 *	struct buf out = BUF_INIT;
 *	tmpl_render(t, context, &opts, &out, &err);
 *	tmpl_free(t);
 * DESCRIPTION
 *	Implements the mustache spec's interpolation ({{x}}, {{{x}}}, {{&x}},
 *	dotted names, implicit iterator {{.}}), sections ({{#x}}...{{/x}} over
 *	false/empty lists, lists, objects, truthy values), inverted sections
 *	({{^x}}), comments ({{! }}), set delimiters ({{=<% %>=}}), partials
 *	({{> name}}, with standalone-line indentation) and the spec's
 *	whitespace rules for standalone tags. Lambdas and the optional
 *	dynamic-names/inheritance modules are not supported.
 *
 *	The context is a jansson value. Names resolve up the context stack
 *	as the spec says. Interpolated numbers print as JSON would (integers
 *	without a decimal point); null and missing names print nothing.
 *
 *	Escaping of {{x}} follows opts->escape: TMPL_ESCAPE_HTML is the
 *	spec's (& < > " escaped), TMPL_ESCAPE_NONE is for text/plain mail
 *	bodies. Triple mustaches and {{&x}} never escape.
 *
 *	Limits (outside input): templates over 256 KiB, section nesting over
 *	64, partial nesting over 16, output over opts->max_output (default
 *	1 MiB), and unclosed or mismatched tags are errors naming the line.
 *
 *	A render also has a work budget (node visits, context frames
 *	searched, bytes of partial source parsed) of 4M + 16 * max_output
 *	steps, so that a small template cannot loop for long. Tag names are
 *	at most 255 bytes, delimiters at most 16.
 * ERRORS
 *	-EINVAL	a malformed template (unclosed or mismatched tags, bad names,
 *		bad delimiters), or no template or buffer
 *	-EFBIG	source over TMPL_MAX_SOURCE, or output over max_output or
 *		the buffer's own max
 *	-ELOOP	section or partial nesting too deep
 *	-E2BIG	the work budget is spent
 *	-ENOMEM	out of memory
 *	others	a partial loader's own negative code (-ENOENT is no error)
 *	Error texts name the line (and the partial) and at most a tag name,
 *	never a value.
 * OWNERSHIP
 *	tmpl_parse copies the source and hands a template the caller frees
 *	with tmpl_free. The context is borrowed. Output is appended to the
 *	caller's buffer; a failed render takes back what it appended. A
 *	partial loader's *src is freed by the renderer (free()).
 * THREAD SAFETY
 *	A parsed template is read-only while rendering: many threads may
 *	render one template at once.
 */
#ifndef CAREPOST_TEMPLATE_H
#define CAREPOST_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "util.h"

#define TMPL_MAX_SOURCE		(256 * 1024)
#define TMPL_MAX_DEPTH		64
#define TMPL_MAX_PARTIAL_DEPTH	16

enum tmpl_escape { TMPL_ESCAPE_HTML = 0, TMPL_ESCAPE_NONE };

/*
 * A partial loader: set *src (malloc'd, caller of the loader frees) and
 * *len for name, or return -ENOENT (the spec renders a missing partial as
 * empty text) or another negative code (an error).
 */
typedef int (*tmpl_partial_fn)(void *userdata, const char *name, char **src,
			       size_t *len);

struct tmpl_options {
	enum tmpl_escape escape;
	tmpl_partial_fn partial;	/* NULL: partials render empty */
	void *partial_userdata;
	size_t max_output;		/* 0: 1 MiB */
};

struct tmpl;

int tmpl_parse(const char *src, size_t len, struct tmpl **out,
	       struct cp_error *err);
int tmpl_render(const struct tmpl *t, json_t *context,
		const struct tmpl_options *opts, struct buf *out,
		struct cp_error *err);
void tmpl_free(struct tmpl *t);

/* tmpl_render_string - parse and render in one call. */
int tmpl_render_string(const char *src, size_t len, json_t *context,
		       const struct tmpl_options *opts, struct buf *out,
		       struct cp_error *err);

/*
 * tmpl_dir_partial - a tmpl_partial_fn that loads NAME.mustache from the
 * directory given as userdata (a const char *). Names with '/' or a
 * leading '.' are refused (-EINVAL).
 */
int tmpl_dir_partial(void *userdata, const char *name, char **src,
		     size_t *len);

#endif
