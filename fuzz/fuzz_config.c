/*
 * NAME
 *	fuzz_config - libFuzzer target for the carepost.conf parser
 * DESCRIPTION
 *	Feeds the input bytes to config_parse as a whole file (with a base
 *	directory, so relative paths are resolved too) and frees the result
 *	on success. On failure the error text must be set and name the file;
 *	anything else is a bug, reported by abort().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cp_config *cfg = NULL;
	struct cp_error err = { 0 };
	int r;

	r = config_parse("fuzz.conf", (const char *)data, size, "/etc/carepost",
			 &cfg, &err);
	if (r < 0) {
		if (cfg != NULL || err.code != r ||
		    strncmp(err.text, "fuzz.conf", 9) != 0)
			abort();
		return 0;
	}
	if (cfg == NULL || cfg->smtp_server == NULL || cfg->store_path == NULL)
		abort();
	(void)config_department(cfg, cfg->default_department);
	config_free(cfg);
	return 0;
}
