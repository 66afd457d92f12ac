/*
 * NAME
 *	fuzz_form - libFuzzer target: form_parse
 * DESCRIPTION
 *	The input is "SPEC-JSON \0 TEXT": the part before the first NUL is
 *	loaded as the fields spec (a fixed spec is used when it is not
 *	JSON), the rest is the reply text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t speclen = nul ? (size_t)(nul - data) : 0;
	const char *text = (const char *)data + (nul ? speclen + 1 : 0);
	size_t textlen = size - (nul ? speclen + 1 : 0);
	json_t *spec = NULL, *values = NULL, *missing = NULL;
	struct cp_error err;

	if (nul)
		spec = json_loadb((const char *)data, speclen, 0, NULL);
	if (spec == NULL)
		spec = json_loads("[{\"name\":\"Name\",\"required\":true},"
				  "{\"name\":\"date_of_birth\"}]", 0, NULL);
	if (form_parse(text, textlen, spec, &values, &missing, &err) == 0) {
		if (!json_is_object(values) || !json_is_array(missing))
			abort();
		json_decref(values);
		json_decref(missing);
	} else if (values != NULL || missing != NULL) {
		abort();
	}
	json_decref(spec);
	return 0;
}
