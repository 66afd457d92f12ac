/*
 * NAME
 *	tmplset - the loaded set of mail templates, per locale and event type
 * DESCRIPTION
 *	See tmplset.h. Parsed once at start (and on reload); rendering does
 *	no file I/O, which matters at thousands of notices a second.
 */
#include "tmplset.h"
#include "event.h"
#include "template.h"

#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>

#define TMPLSET_MAX_LOCALES 32
#define TMPLSET_MAX_PARTIALS 64

struct entry {
	struct tmpl *subject;
	struct tmpl *body;
};

struct partial {
	char name[64];
	char *src;
	size_t len;
};

struct locale {
	char name[16];
	struct entry *entries;		/* n_types * 2, by type index */
	struct partial partials[TMPLSET_MAX_PARTIALS];
	size_t n_partials;
};

struct tmplset {
	struct locale locales[TMPLSET_MAX_LOCALES];
	size_t n_locales;
	size_t n_types;
	size_t default_locale;
};

static int
locale_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
			return 0;
	return i > 0 && i < 16;
}

static int
parse_file(const char *path, const char *src, size_t len, struct entry *e,
	   struct cp_error *err)
{
	const char *nl, *body;
	struct cp_error perr;
	int r;

	if (len < 9 || strncmp(src, "Subject: ", 9) != 0)
		return cp_error_set(err, -EINVAL,
			"%s:1: expected \"Subject: \" on the first line", path);
	nl = memchr(src, '\n', len);
	if (nl == NULL || (size_t)(nl + 1 - src) >= len || nl[1] != '\n')
		return cp_error_set(err, -EINVAL,
			"%s:2: expected an empty line after the subject", path);
	body = nl + 2;
	r = tmpl_parse(src + 9, (size_t)(nl - src - 9), &e->subject, &perr);
	if (r < 0)
		return cp_error_set(err, r, "%s: subject: %s", path, perr.text);
	r = tmpl_parse(body, len - (size_t)(body - src), &e->body, &perr);
	if (r < 0)
		return cp_error_set(err, r, "%s: body (line numbers from line 3): %s",
				    path, perr.text);
	return 0;
}

/*
 * partial_check - a partial must parse on its own, at load: otherwise a
 * broken one passes load and reload and fails every message that uses it.
 */
static int
partial_check(const char *file, const struct partial *p, struct cp_error *err)
{
	struct tmpl *t = NULL;
	struct cp_error perr;
	int r;

	cp_error_clear(&perr);
	r = tmpl_parse(p->src, p->len, &t, &perr);
	tmpl_free(t);
	return r < 0 ? cp_error_set(err, r, "%s: %s", file, perr.text) : 0;
}

static int
load_locale(struct tmplset *ts, const char *dir, const char *name,
	    struct cp_error *err)
{
	struct locale *loc = &ts->locales[ts->n_locales];
	const struct event_type *types;
	char path[4096];
	DIR *d;
	struct dirent *de;
	size_t n, i;
	int r = 0;

	types = event_types_all(&n);
	cp_strlcpy(loc->name, name, sizeof(loc->name));
	loc->entries = calloc(2 * n, sizeof(*loc->entries));
	if (loc->entries == NULL)
		return cp_error_set(err, -ENOMEM, "templates: out of memory");
	ts->n_locales++;
	for (i = 0; i < 2 * n && r == 0; i++) {
		_cleanup_free_ char *src = NULL;
		size_t len;

		r = cp_snprintf_ok(path, sizeof(path), "%s/%s/%s.%s.mustache", dir,
				   name, types[i / 2].name,
				   i % 2 == TMPL_FULL ? "full" : "notice");
		if (r < 0)
			return cp_error_set(err, r, "templates: path too long");
		r = cp_read_file(path, TMPL_MAX_SOURCE, &src, &len);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r < 0)
			return cp_error_set(err, r, "%s: %s", path, strerror(-r));
		r = parse_file(path, src, len, &loc->entries[i], err);
	}
	if (r < 0)
		return r;

	if (cp_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) < 0 ||
	    (d = opendir(path)) == NULL)
		return cp_error_set(err, -errno, "%s: cannot list", path);
	while ((de = readdir(d)) != NULL && r == 0) {
		size_t len = strlen(de->d_name);
		struct partial *p;
		char file[4096];

		if (len <= 9 || strcmp(de->d_name + len - 9, ".mustache") != 0 ||
		    strchr(de->d_name, '.') != de->d_name + len - 9 ||
		    len - 9 >= sizeof(p->name))
			continue;	/* TYPE.variant.mustache, or not ours */
		if (loc->n_partials >= TMPLSET_MAX_PARTIALS) {
			r = cp_error_set(err, -E2BIG, "%s: over %d partials", path,
					 TMPLSET_MAX_PARTIALS);
			break;
		}
		p = &loc->partials[loc->n_partials];
		memcpy(p->name, de->d_name, len - 9);
		p->name[len - 9] = '\0';
		if (cp_snprintf_ok(file, sizeof(file), "%s/%s", path, de->d_name) < 0)
			continue;
		r = cp_read_file(file, TMPL_MAX_SOURCE, &p->src, &p->len);
		if (r < 0)
			r = cp_error_set(err, r, "%s: %s", file, strerror(-r));
		else
			r = partial_check(file, p, err);
		if (r == 0)
			loc->n_partials++;
		else {
			free(p->src);
			p->src = NULL;
		}
	}
	closedir(d);
	return r;
}

int
tmplset_load(const char *dir, const char *default_locale,
	     struct tmplset **out, struct cp_error *err)
{
	struct tmplset *ts;
	const struct event_type *types;
	size_t n, i;
	DIR *d;
	struct dirent *de;
	int r = 0, found = 0;

	ts = calloc(1, sizeof(*ts));
	if (ts == NULL)
		return cp_error_set(err, -ENOMEM, "templates: out of memory");
	types = event_types_all(&n);
	ts->n_types = n;
	d = opendir(dir);
	if (d == NULL) {
		r = cp_error_set(err, -errno, "templates %s: %s", dir, strerror(errno));
		free(ts);
		return r;
	}
	while ((de = readdir(d)) != NULL && r == 0) {
		char path[4096];
		struct stat st;

		if (de->d_name[0] == '.' || !locale_name_ok(de->d_name))
			continue;
		if (cp_snprintf_ok(path, sizeof(path), "%s/%s", dir, de->d_name) < 0 ||
		    stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (ts->n_locales >= TMPLSET_MAX_LOCALES) {
			r = cp_error_set(err, -E2BIG, "templates %s: over %d locales",
					 dir, TMPLSET_MAX_LOCALES);
			break;
		}
		if (strcmp(de->d_name, default_locale) == 0) {
			ts->default_locale = ts->n_locales;
			found = 1;
		}
		r = load_locale(ts, dir, de->d_name, err);
	}
	closedir(d);
	if (r == 0 && !found)
		r = cp_error_set(err, -ENOENT, "templates %s: no directory for the default locale %s",
				 dir, default_locale);
	for (i = 0; r == 0 && i < 2 * n; i++) {
		/* a digest's only when digests are on (tmplset_has): a
		 * templates directory made before them still loads */
		if (strcmp(types[i / 2].name, TMPLSET_OPTIONAL) == 0)
			continue;
		if (ts->locales[ts->default_locale].entries[i].body == NULL)
			r = cp_error_set(err, -ENOENT, "templates %s/%s: missing %s.%s.mustache",
					 dir, default_locale, types[i / 2].name,
					 i % 2 == TMPL_FULL ? "full" : "notice");
	}
	if (r < 0) {
		tmplset_free(ts);
		return r;
	}
	*out = ts;
	return 0;
}

int
tmplset_has(const struct tmplset *ts, const char *type)
{
	const struct event_type *types;
	size_t n, ti;

	types = event_types_all(&n);
	for (ti = 0; ti < n; ti++)
		if (strcmp(types[ti].name, type) == 0)
			break;
	return ti < n &&
	       ts->locales[ts->default_locale].entries[2 * ti + TMPL_FULL].body != NULL &&
	       ts->locales[ts->default_locale].entries[2 * ti + TMPL_NOTICE].body != NULL;
}

void
tmplset_free(struct tmplset *ts)
{
	size_t l, i;

	if (ts == NULL)
		return;
	for (l = 0; l < ts->n_locales; l++) {
		struct locale *loc = &ts->locales[l];

		for (i = 0; loc->entries && i < 2 * ts->n_types; i++) {
			tmpl_free(loc->entries[i].subject);
			tmpl_free(loc->entries[i].body);
		}
		free(loc->entries);
		for (i = 0; i < loc->n_partials; i++)
			free(loc->partials[i].src);
	}
	free(ts);
}

size_t
tmplset_locales(const struct tmplset *ts)
{
	return ts->n_locales;
}

struct partial_ctx {
	const struct locale *first;
	const struct locale *fallback;
};

static int
serve_partial(void *userdata, const char *name, char **src, size_t *len)
{
	const struct partial_ctx *pc = userdata;
	const struct locale *locs[2] = { pc->first, pc->fallback };
	size_t l, i;

	for (l = 0; l < 2; l++) {
		for (i = 0; i < locs[l]->n_partials; i++) {
			const struct partial *p = &locs[l]->partials[i];

			if (strcmp(p->name, name) != 0)
				continue;
			*src = malloc(p->len + 1);
			if (*src == NULL)
				return -ENOMEM;
			memcpy(*src, p->src, p->len + 1);
			*len = p->len;
			return 0;
		}
	}
	return -ENOENT;
}

int
tmplset_render(const struct tmplset *ts, const char *locale,
	       const char *type, enum tmpl_variant variant, json_t *ctx,
	       struct buf *subject, struct buf *body, struct cp_error *err)
{
	const struct event_type *types;
	const struct locale *loc = &ts->locales[ts->default_locale];
	const struct entry *e;
	struct partial_ctx pc;
	struct tmpl_options opts = { .escape = TMPL_ESCAPE_NONE };
	size_t n, ti, l, start;
	int r;

	types = event_types_all(&n);
	for (ti = 0; ti < n; ti++)
		if (strcmp(types[ti].name, type) == 0)
			break;
	if (ti == n)
		return cp_error_set(err, -ENOENT, "no template for event type");
	for (l = 0; locale && l < ts->n_locales; l++)
		if (strcmp(ts->locales[l].name, locale) == 0)
			loc = &ts->locales[l];
	e = &loc->entries[2 * ti + variant];
	if (e->body == NULL) {
		loc = &ts->locales[ts->default_locale];
		e = &loc->entries[2 * ti + variant];
	}
	if (e->body == NULL)
		return cp_error_set(err, -ENOENT, "no %s.%s template", type,
				    variant == TMPL_FULL ? "full" : "notice");
	pc.first = loc;
	pc.fallback = &ts->locales[ts->default_locale];
	opts.partial = serve_partial;
	opts.partial_userdata = &pc;

	start = subject->len;
	r = tmpl_render(e->subject, ctx, &opts, subject, err);
	if (r < 0)
		return r;
	for (size_t i = start; i < subject->len; i++)
		if ((unsigned char)subject->data[i] < ' ')
			subject->data[i] = ' ';
	return tmpl_render(e->body, ctx, &opts, body, err);
}
