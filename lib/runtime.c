/*
 * NAME
 *	runtime - what both programs open: config, token key, store, templates
 * DESCRIPTION
 *	See runtime.h.
 */
#include "runtime.h"
#include "log.h"
#include "storefmt.h"

const char *
runtime_config_path(const char *arg)
{
	const char *env = getenv("CAREPOST_CONFIG");

	if (arg)
		return arg;
	if (env && *env)
		return env;
	return RUNTIME_DEFAULT_CONFIG;
}

int
runtime_load_key(struct runtime *rt, const char *config_path,
		 struct cp_error *err)
{
	char *key = NULL;
	size_t len = 0;
	int r;

	if (rt->cfg->token_key_file == NULL)
		return cp_error_set(err, -EINVAL,
			"%s: [security] token_key_file: not set", config_path);
	r = config_read_secret(rt->cfg->token_key_file, 4096, &key, &len, err);
	if (r < 0)
		return r;
	if (len < 16) {
		explicit_bzero(key, len);
		free(key);
		return cp_error_set(err, -EINVAL,
			"%s: [security] token_key_file: the key must be at least 16 bytes",
			config_path);
	}
	rt->keylen = len > sizeof(rt->key) ? sizeof(rt->key) : len;
	memcpy(rt->key, key, rt->keylen);
	explicit_bzero(key, len);
	free(key);
	log_set_ref_key(rt->key, rt->keylen);
	return 0;
}

int
runtime_open(struct runtime *rt, const char *config_path, int flags,
	     struct cp_error *err)
{
	int r;

	memset(rt, 0, sizeof(*rt));
	r = config_load(config_path, &rt->cfg, err);
	if (r < 0)
		return r;
	if (flags & RUNTIME_KEY) {
		r = runtime_load_key(rt, config_path, err);
		if (r < 0)
			return r;
	}
	if (flags & RUNTIME_STORE) {
		r = storefmt_open(rt->cfg->store_path, rt->cfg->store_map_size,
				  flags & RUNTIME_STORE_OLDER ? STOREFMT_OLDER_OK : 0,
				  &rt->store, err);
		if (r < 0)
			return r;
	}
	if (flags & RUNTIME_TEMPLATES) {
		r = tmplset_load(rt->cfg->templates_dir, rt->cfg->default_locale,
				 &rt->templates, err);
		if (r < 0)
			return r;
	}
	return 0;
}

void
runtime_close(struct runtime *rt)
{
	tmplset_free(rt->templates);
	store_close(rt->store);
	config_free(rt->cfg);
	explicit_bzero(rt->key, sizeof(rt->key));
	memset(rt, 0, sizeof(*rt));
}
