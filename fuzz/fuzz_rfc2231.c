/*
 * NAME
 *	fuzz_rfc2231 - libFuzzer target: rfc2231_value and rfc2231_filename
 *	over arbitrary parameters
 * DESCRIPTION
 *	The bytes are lines "name=value" (at most 64, as a MIME parser would
 *	hand them over). Every value and file name must be valid UTF-8; a
 *	file name has no "/" or "\", no control, at most
 *	RFC2231_FILENAME_MAX bytes, and is not "", "." or "..".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rfc2231.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rfc2231_param p[64];
	char *copy = malloc(size + 1), *line, *save = NULL, *v, *f = NULL;
	size_t n = 0;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (line = strtok_r(copy, "\n", &save); line && n < 64;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (eq == NULL)
			continue;
		*eq = '\0';
		p[n++] = (struct rfc2231_param){ line, eq + 1 };
	}
	if ((v = rfc2231_value(p, n, "filename")) != NULL &&
	    !cp_utf8_valid(v, strlen(v)))
		abort();
	free(v);
	if (rfc2231_filename(p, n, &f) < 0)
		abort();
	if (f != NULL) {
		size_t fl = strlen(f);

		if (!cp_utf8_valid(f, fl) || fl == 0 || fl > RFC2231_FILENAME_MAX ||
		    strcmp(f, ".") == 0 || strcmp(f, "..") == 0 ||
		    strpbrk(f, "/\\") != NULL)
			abort();
		for (size_t i = 0; i < fl; i++)
			if ((unsigned char)f[i] < 0x20 || f[i] == 0x7F)
				abort();
	}
	free(f);
	free(copy);
	return 0;
}
