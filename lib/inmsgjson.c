/*
 * NAME
 *	inmsgjson - a parsed message summarised as JSON, for the admin
 * DESCRIPTION
 *	See inmsgjson.h.
 */
#include "inmsgjson.h"

#include <errno.h>

static int
jset(json_t *o, const char *k, json_t *v)
{
	if (v == NULL)
		return -ENOMEM;
	return json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

static json_t *
jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int
dsn_to_json(const struct inmsg_dsn *d, json_t **out)
{
	json_t *o = json_object(), *rc = json_array();
	int r = 0;

	if (o == NULL || rc == NULL) {
		json_decref(o);
		json_decref(rc);
		return -ENOMEM;
	}
	r |= jset(o, "present", json_boolean(d->present));
	r |= jset(o, "original_envelope_id", jstr_or_null(d->original_envelope_id));
	r |= jset(o, "orig_message_id", jstr_or_null(d->orig_message_id));
	for (size_t i = 0; i < d->n_rcpts && r == 0; i++) {
		json_t *x = json_object();

		if (x == NULL || json_array_append_new(rc, x) != 0) {
			r = -ENOMEM;
			break;
		}
		r |= jset(x, "action", jstr_or_null(d->rcpts[i].action));
		r |= jset(x, "status", jstr_or_null(d->rcpts[i].status));
		r |= jset(x, "final_recipient", jstr_or_null(d->rcpts[i].final_recipient));
		r |= jset(x, "diagnostic_code", jstr_or_null(d->rcpts[i].diagnostic_code));
	}
	r |= jset(o, "recipients", rc);
	if (r != 0) {
		json_decref(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}

/* arf_to_json - what a feedback report says of itself, or null; the
 * addresses it names are left out. */
static json_t *
arf_to_json(const struct inmsg_arf *a)
{
	if (!a->present)
		return json_null();
	return json_pack("{s:o, s:o, s:o, s:b, s:o, s:b}",
			 "feedback_type", jstr_or_null(a->feedback_type),
			 "user_agent", jstr_or_null(a->user_agent),
			 "version", jstr_or_null(a->version),
			 "redacted", a->redacted,
			 "orig_message_id", jstr_or_null(a->orig_message_id),
			 "reported_headers", a->orig_headers_present);
}

int
inmsg_to_json(const struct inmsg *m, const struct inmsg_addrs *a, json_t **out)
{
	struct inmsg_class_info ci;
	enum inmsg_class c = inmsg_classify(m, a, &ci);
	json_t *o, *atts, *dsn = NULL;
	int r = 0;

	*out = NULL;
	if (m == NULL)
		return -EINVAL;
	if ((o = json_object()) == NULL)
		return -ENOMEM;
	r |= jset(o, "class", json_string(inmsg_class_name(c)));
	r |= jset(o, "reason", json_string(ci.reason));
	r |= jset(o, "message_id", jstr_or_null(m->message_id));
	r |= jset(o, "in_reply_to", jstr_or_null(m->in_reply_to));
	r |= jset(o, "from", jstr_or_null(m->from_addr));
	r |= jset(o, "token_present", json_boolean(ci.token[0] != '\0'));
	r |= jset(o, "verp", ci.verp[0] ? json_string(ci.verp) : json_null());
	r |= jset(o, "has_pgp_encrypted", json_boolean(m->pgp & INMSG_PGP_ENCRYPTED));
	r |= jset(o, "has_pgp_signature", json_boolean(m->pgp & INMSG_PGP_SIGNED));
	r |= jset(o, "nested_signed_or_encrypted", json_integer(m->nested_crypto));
	r |= jset(o, "protected_headers", json_boolean(m->prot.present));
	r |= jset(o, "from_count", json_integer(m->from_count));
	r |= jset(o, "auto_submitted", jstr_or_null(m->auto_submitted));
	r |= jset(o, "content_type", jstr_or_null(m->content_type));
	r |= jset(o, "part_count", json_integer(m->part_count));
	r |= jset(o, "depth", json_integer(m->depth));
	r |= jset(o, "body_bytes", json_integer((json_int_t)m->body_len));
	r |= jset(o, "authentication_results",
		  json_integer((json_int_t)m->auth_results.n));
	{
		const char *why = NULL;

		inmsg_no_autoresponse(m, &why);
		r |= jset(o, "no_autoresponse", jstr_or_null(why));
	}
	if (r == 0 && (atts = json_array()) != NULL) {
		for (size_t i = 0; i < m->n_attachments && r == 0; i++) {
			const struct inmsg_attachment *at = &m->attachments[i];
			json_t *x = json_object();

			if (x == NULL || json_array_append_new(atts, x) != 0) {
				r = -ENOMEM;
				break;
			}
			r |= jset(x, "filename", jstr_or_null(at->filename));
			r |= jset(x, "content_type", jstr_or_null(at->content_type));
			r |= jset(x, "size", json_integer((json_int_t)at->len));
		}
		r |= jset(o, "attachments", atts);
	} else
		r = -ENOMEM;
	if (r == 0 && dsn_to_json(&m->dsn, &dsn) == 0)
		r |= jset(o, "dsn", dsn);
	else
		r = -ENOMEM;
	if (r == 0)
		r |= jset(o, "feedback_report", arf_to_json(&m->arf));
	if (r != 0) {
		json_decref(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}
