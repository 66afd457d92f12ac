/*
 * NAME
 *	fuzz_template - libFuzzer target for the mustache template engine
 * DESCRIPTION
 *	The input is a template, then optionally a NUL byte and a JSON
 *	context (anything json_loadb rejects becomes an empty object). The
 *	template is parsed and rendered with a 64 KiB output limit and a
 *	partial loader that serves the template itself for every name, so
 *	partial recursion, indentation and the depth and work limits are
 *	exercised. The last input byte's low bit picks the escaping mode.
 *	A successful render must stay within the output limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct self {
	const char *src;
	size_t len;
};

static int
self_partial(void *userdata, const char *name, char **src, size_t *len)
{
	const struct self *s = userdata;

	/* One name is "missing", to exercise that path too. */
	if (strcmp(name, "missing") == 0)
		return -ENOENT;
	*src = malloc(s->len + 1);
	if (*src == NULL)
		return -ENOMEM;
	memcpy(*src, s->src, s->len);
	(*src)[s->len] = '\0';
	*len = s->len;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *)data;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	struct self self = { src, tlen };
	struct tmpl_options opts = {
		.escape = (size && (data[size - 1] & 1)) ? TMPL_ESCAPE_NONE :
			  TMPL_ESCAPE_HTML,
		.partial = self_partial,
		.partial_userdata = &self,
		.max_output = 64 * 1024,
	};
	struct buf out = BUF_INIT;
	struct cp_error err;
	struct tmpl *t = NULL;
	json_t *ctx = NULL;

	if (nul != NULL)
		ctx = json_loadb((const char *)nul + 1, size - tlen - 1,
				 JSON_DECODE_ANY, NULL);
	if (ctx == NULL)
		ctx = json_object();
	if (tmpl_parse(src, tlen, &t, &err) == 0) {
		int r = tmpl_render(t, ctx, &opts, &out, &err);

		if (r == 0 && out.len > opts.max_output)
			abort();
		if (r < 0 && (r != err.code || out.len != 0))
			abort();
		tmpl_free(t);
	}
	buf_free(&out);
	json_decref(ctx);
	return 0;
}
