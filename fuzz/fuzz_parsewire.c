/*
 * NAME
 *	fuzz_parsewire - libFuzzer target for what the parse helper sends
 *	back (lib/inmsgwire.c)
 * DESCRIPTION
 *	inmsgwire_decode on the input, as carepostd decodes a parse helper's
 *	answer (a helper that hostile mail has taken over sends anything).
 *	It must return 0 or -EBADMSG with a reason, leak nothing, and a
 *	struct it accepts must keep inmsg.h's promises (every string valid
 *	UTF-8 without NUL, counts within the limits) and encode back to
 *	exactly the input: the format has one spelling per struct.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inmsgwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_str(const char *s)
{
	if (s != NULL && !cp_utf8_valid(s, strlen(s)))
		abort();
}

static void
check_list(const struct inmsg_strlist *l, size_t max)
{
	if (l->n > max || (l->n > 0 && l->v == NULL))
		abort();
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i] == NULL)
			abort();
		check_str(l->v[i]);
	}
}

/* check - the promises of inmsg.h, checked apart from the decoder. */
static void
check(const struct inmsg *m, const struct inmsg_limits *lim)
{
	const char *strs[] = {
		m->message_id, m->in_reply_to, m->from_addr, m->from_name,
		m->return_path, m->subject, m->auto_submitted, m->precedence,
		m->list_id, m->content_type, m->prot.subject,
		m->dsn.original_envelope_id, m->dsn.reporting_mta,
		m->dsn.orig_message_id,
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(strs); i++)
		check_str(strs[i]);
	if (m->body == NULL || strlen(m->body) != m->body_len ||
	    !cp_utf8_valid(m->body, m->body_len) || m->content_type == NULL)
		abort();
	check_list(&m->references, SIZE_MAX);
	check_list(&m->recipients, INMSG_MAX_RECIPIENTS);
	check_list(&m->auth_results, lim->max_headers);
	check_list(&m->prot.recipients, INMSG_MAX_RECIPIENTS);
	if (m->n_attachments > lim->max_attachments ||
	    m->part_count > lim->max_parts || m->depth > lim->max_depth ||
	    m->header_count > lim->max_headers ||
	    m->decoded_total > lim->max_decoded ||
	    m->dsn.n_rcpts > INMSG_MAX_DSN_RCPTS)
		abort();
	for (size_t i = 0; i < m->n_attachments; i++) {
		const struct inmsg_attachment *a = &m->attachments[i];

		check_str(a->filename);
		check_str(a->content_type);
		if (a->data != NULL && a->data[a->len] != '\0')
			abort();
	}
	for (size_t i = 0; i < m->dsn.n_rcpts; i++) {
		check_str(m->dsn.rcpts[i].action);
		check_str(m->dsn.rcpts[i].status);
		check_str(m->dsn.rcpts[i].final_recipient);
		check_str(m->dsn.rcpts[i].original_recipient);
		check_str(m->dsn.rcpts[i].diagnostic_code);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inmsg_limits lim;
	struct inmsg *m = NULL;
	struct buf again = BUF_INIT;
	struct cp_error err;
	int r;

	inmsg_limits_default(&lim);
	lim.max_attachments = 8;
	lim.max_parts = 20;
	r = inmsgwire_decode(data, size, &lim, &m, &err);
	if (r < 0) {
		if (r != -EBADMSG || m != NULL || err.text[0] == '\0')
			abort();
		return 0;
	}
	check(m, &lim);
	if (inmsgwire_encode(m, &again) < 0 || again.len != size ||
	    memcmp(again.data, data, size) != 0)
		abort();
	buf_free(&again);
	inmsg_free(m);
	return 0;
}
