/*
 * NAME
 *	fuzz_inmsg - libFuzzer target: inmsg_parse, inmsg_classify,
 *	inmsg_to_json and inmsg_reparse_inner over arbitrary bytes
 * DESCRIPTION
 *	Limits are lowered so that the fuzzer reaches them; whatever the
 *	input, parsing must return 0 or a negative code with a reason, and
 *	every string it hands back must be valid UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>

#include "inmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct inmsg_addrs addrs = {
		"reply.example", "bounce.example", "unsubscribe@reply.example"
	};
	struct inmsg_limits lim;
	struct inmsg *m = NULL;
	struct inmsg_class_info ci;
	struct cp_error err;
	json_t *j = NULL;

	inmsg_limits_default(&lim);
	lim.max_size = 1u << 20;
	lim.max_decoded = 2u << 20;
	lim.max_parts = 100;
	lim.max_depth = 10;
	if (inmsg_parse((const char *)data, size, &lim, &m, &err) < 0) {
		if (m != NULL || err.text[0] == '\0')
			abort();
		return 0;
	}
	if (!cp_utf8_valid(m->body, m->body_len))
		abort();
	(void)inmsg_classify(m, &addrs, &ci);
	if (inmsg_to_json(m, &addrs, &j) == 0)
		json_decref(j);
	/* the same bytes as decrypted inner content */
	(void)inmsg_reparse_inner(m, (const char *)data, size, &err);
	if (!cp_utf8_valid(m->body, m->body_len))
		abort();
	inmsg_free(m);
	return 0;
}
