/*
 * NAME
 *	fuzz_inmsg - libFuzzer target: inmsg_parse, inmsg_classify,
 *	inmsg_to_json, inmsg_reparse_inner and inmsgwire over arbitrary
 *	bytes
 * DESCRIPTION
 *	Limits are lowered so that the fuzzer reaches them; whatever the
 *	input, parsing must return 0 or a negative code with a reason, and
 *	every string it hands back must be valid UTF-8. PGP/MIME counts only
 *	at the root: an encrypted payload only when the message itself is
 *	multipart/encrypted, a signature only with its signed bytes, and
 *	every nested signed or encrypted entity kept as an attachment.
 *	Whatever the parser makes, the parse helper's encoding of it must
 *	pass carepostd's decoder and come back the same (inmsgwire): an
 *	honest helper's answer is never refused.
 */
#include <stdint.h>
#include <stdlib.h>

#include <string.h>

#include "inmsg.h"
#include "inmsgwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_pgp_at_root - the invariants of inmsg.h's PGP/MIME rule. */
static void
check_pgp_at_root(const struct inmsg *m)
{
	if (m->pgp_encrypted != NULL &&
	    (m->content_type == NULL ||
	     strcmp(m->content_type, "multipart/encrypted") != 0))
		abort();
	if ((m->pgp & INMSG_PGP_SIGNED) &&
	    (m->pgp_signed == NULL || m->pgp_signature == NULL))
		abort();
	if (m->nested_crypto > m->n_attachments + 1)	/* +1: over the limit */
		abort();
	if (m->prot.subject != NULL && !m->prot.present)
		abort();
}

/* check_wire - m through the parse helper's encoding and back, unchanged. */
static void
check_wire(const struct inmsg *m)
{
	struct buf once = BUF_INIT, twice = BUF_INIT;
	struct inmsg *back = NULL;
	struct cp_error err;

	if (inmsgwire_encode(m, &once) < 0)
		abort();
	if (inmsgwire_decode(once.data, once.len, &m->limits, &back, &err) < 0)
		abort();
	if (inmsgwire_encode(back, &twice) < 0 || once.len != twice.len ||
	    memcmp(once.data, twice.data, once.len) != 0)
		abort();
	inmsg_free(back);
	buf_free(&once);
	buf_free(&twice);
}

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
	check_pgp_at_root(m);
	check_wire(m);
	(void)inmsg_classify(m, &addrs, &ci);
	if (inmsg_to_json(m, &addrs, &j) == 0)
		json_decref(j);
	/* the same bytes as decrypted inner content */
	if (inmsg_reparse_inner(m, (const char *)data, size, &err) == 0) {
		check_pgp_at_root(m);
		check_wire(m);
	}
	if (!cp_utf8_valid(m->body, m->body_len))
		abort();
	inmsg_free(m);
	return 0;
}
