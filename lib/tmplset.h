/*
 * NAME
 *	tmplset - the loaded set of mail templates, per locale and event type
 * SYNOPSIS
 *	#include "tmplset.h"
 *
 *	tmplset_load("/usr/local/share/carepost/templates", "en", &ts, &err);
 *	tmplset_render(ts, "es", "test_result", TMPL_NOTICE, ctx,
 *		       &subject, &body, &err);
 *	tmplset_free(ts);
 * DESCRIPTION
 *	The directory holds one subdirectory per locale ("en", "es", …); each
 *	holds TYPE.full.mustache and TYPE.notice.mustache for event types,
 *	and partials NAME.mustache. A template file's first line is
 *	"Subject: " followed by the subject template, then one empty line,
 *	then the body template (plain text, rendered without HTML escaping).
 *
 *	tmplset_load parses every TYPE template once, and fails, naming the
 *	file, when the default locale lacks either variant of a known event
 *	type (but "digest", TMPLSET_OPTIONAL, which only digests need:
 *	tmplset_has says whether both its variants are there) or any of
 *	them does not parse. Other locales may be partial: a
 *	missing template falls back to the default locale's. Partials are
 *	read into memory and parsed once at load (a partial that does not
 *	parse fails the load, and so a reload keeps the old set); a render
 *	parses those it uses again (once per render, see template.h). They
 *	are resolved
 *	within the locale of the template rendered (the default locale's
 *	when the template fell back to it), then the default locale.
 *
 *	The rendered subject is reduced to one line (every control character
 *	below 0x20, CR, LF and tab included, becomes a space; mime_header
 *	encodes it later). Bodies keep LF line endings.
 * ERRORS
 *	tmplset_load: -ENOENT (no directory for the default locale, or a
 *	variant missing there), -EINVAL (a file without its "Subject: " line
 *	and the empty line after it), tmpl_parse's codes, -E2BIG (over 32
 *	locales, over 64 partials in one), -ENOMEM, or the -errno of reading
 *	a directory or file; err names the file.
 *	tmplset_render: -ENOENT for an event type without templates, else
 *	tmpl_render's codes (see template.h).
 * OWNERSHIP
 *	tmplset_load hands a set freed with tmplset_free; dir and
 *	default_locale are not kept. Rendering appends to the caller's
 *	buffers: a failed render leaves out what tmpl_render leaves (the
 *	subject, rendered first, stays appended when the body fails).
 * THREAD SAFETY
 *	A loaded set is read-only: many threads may render at once.
 */
#ifndef CAREPOST_TMPLSET_H
#define CAREPOST_TMPLSET_H

#include <jansson.h>

#include "buf.h"
#include "util.h"

enum tmpl_variant { TMPL_FULL = 0, TMPL_NOTICE = 1 };

struct tmplset;

#define TMPLSET_OPTIONAL	"digest"

int tmplset_has(const struct tmplset *ts, const char *type);
int tmplset_load(const char *dir, const char *default_locale,
		 struct tmplset **out, struct cp_error *err);
int tmplset_render(const struct tmplset *ts, const char *locale,
		   const char *type, enum tmpl_variant variant, json_t *ctx,
		   struct buf *subject, struct buf *body, struct cp_error *err);
void tmplset_free(struct tmplset *ts);

/* tmplset_locales - number of locales loaded. */
size_t tmplset_locales(const struct tmplset *ts);

#endif
