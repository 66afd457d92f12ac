/*
 * NAME
 *	record - carepost's stored records as C structs: one codec each
 * DESCRIPTION
 *	See record.h. Each load walks the object's members once and sorts
 *	each into its field by name; a member it does not know goes into
 *	extra. Each dump sets the members the struct holds; the store writes
 *	them with sorted keys, so the bytes do not depend on the order here.
 */
#include "record.h"
#include "buf.h"
#include "event.h"
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const delivery_states[] = {
	[DELIVERY_QUEUED] = "queued", [DELIVERY_SENDING] = "sending",
	[DELIVERY_DEFERRED] = "deferred", [DELIVERY_SENT] = "sent",
	[DELIVERY_FAILED] = "failed", [DELIVERY_EXPIRED] = "expired",
	[DELIVERY_SUPPRESSED] = "suppressed",
};

static const char *const rcpt_states[] = {
	[RCPT_PENDING] = "pending", [RCPT_DEFERRED] = "deferred",
	[RCPT_SENT] = "sent", [RCPT_FAILED] = "failed",
	[RCPT_BOUNCED] = "bounced", [RCPT_DELAYED] = "delayed",
};

static const char *const rcpt_modes[] = {
	[RCPT_MODE_UNSET] = NULL, [RCPT_NOTICE] = "notice",
	[RCPT_ENCRYPTED] = "encrypted",
};

static const char *const priorities[] = {
	[PRIORITY_UNSET] = NULL, [PRIORITY_NORMAL] = "normal",
	[PRIORITY_HIGH] = "high",
};

static int
name_index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *
delivery_state_name(enum delivery_state s)
{
	return (size_t)s < CP_ARRAY_SIZE(delivery_states) ? delivery_states[s] : "?";
}

const char *
rcpt_state_name(enum rcpt_state s)
{
	return (size_t)s < CP_ARRAY_SIZE(rcpt_states) ? rcpt_states[s] : "?";
}

const char *
rcpt_mode_name(enum rcpt_mode m)
{
	return (size_t)m < CP_ARRAY_SIZE(rcpt_modes) ? rcpt_modes[m] : NULL;
}

const char *
priority_name(enum priority p)
{
	return (size_t)p < CP_ARRAY_SIZE(priorities) ? priorities[p] : NULL;
}

int
delivery_state_parse(const char *name, enum delivery_state *out)
{
	int i = name ? name_index(delivery_states, CP_ARRAY_SIZE(delivery_states),
				  name) : -1;

	if (i < 0)
		return -EINVAL;
	*out = (enum delivery_state)i;
	return 0;
}

int
delivery_state_final(enum delivery_state s)
{
	return s == DELIVERY_SENT || s == DELIVERY_FAILED ||
	       s == DELIVERY_EXPIRED || s == DELIVERY_SUPPRESSED;
}

int
record_set_str(char **field, const char *value)
{
	char *copy = NULL;

	if (value != NULL && (copy = strdup(value)) == NULL)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

/* ---- loading helpers: each returns 0 or -EBADMSG / -ENOMEM ---- */

struct loader {
	const char *kind;	/* "delivery record" */
	struct cp_error *err;
};

static int
bad(struct loader *l, const char *field, const char *what)
{
	return cp_error_set(l->err, -EBADMSG, "%s: field %s: %s", l->kind,
			    field, what);
}

static int
load_str(struct loader *l, const char *field, json_t *v, char **out)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(l, field, "expected a string");
	if ((*out = strdup(json_string_value(v))) == NULL)
		return cp_error_set(l->err, -ENOMEM, "%s: out of memory", l->kind);
	return 0;
}

static int
load_int(struct loader *l, const char *field, json_t *v, long long *out)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return bad(l, field, "expected an integer");
	*out = json_integer_value(v);
	return 0;
}

static int
load_time(struct loader *l, const char *field, json_t *v, time_t *out)
{
	long long t = 0;
	int r = load_int(l, field, v, &t);

	*out = (time_t)t;
	return r;
}

static int
load_bool(struct loader *l, const char *field, json_t *v, int *out)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad(l, field, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

static int
load_name(struct loader *l, const char *field, json_t *v,
	  const char *const *names, size_t n, int *out)
{
	int i;

	if (!json_is_string(v))
		return bad(l, field, "expected a string");
	i = name_index(names, n, json_string_value(v));
	if (i < 0)
		return bad(l, field, "unknown name");
	*out = i;
	return 0;
}

static int
keep_extra(struct loader *l, json_t **extra, const char *key, json_t *v)
{
	if (*extra == NULL && (*extra = json_object()) == NULL)
		return cp_error_set(l->err, -ENOMEM, "%s: out of memory", l->kind);
	if (json_object_set(*extra, key, v) < 0)
		return cp_error_set(l->err, -ENOMEM, "%s: out of memory", l->kind);
	return 0;
}

static int
load_version(struct loader *l, json_t *v)
{
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return bad(l, "version", "expected a positive integer");
	if (json_integer_value(v) > RECORD_LAYOUT)
		return cp_error_set(l->err, -EPROTO, "%s: layout version %lld is "
				    "newer than this carepost reads (%d)", l->kind,
				    (long long)json_integer_value(v), RECORD_LAYOUT);
	return 0;
}

/* ---- dumping helpers: each returns 0 or -1 ---- */

static int
dump_str(json_t *o, const char *field, const char *s)
{
	return s == NULL ? 0 : json_object_set_new(o, field, json_string(s));
}

static int
dump_int(json_t *o, const char *field, long long v)
{
	return json_object_set_new(o, field, json_integer((json_int_t)v));
}

static int
dump_time(json_t *o, const char *field, time_t t)
{
	return t == 0 ? 0 : dump_int(o, field, (long long)t);
}

static int
dump_bool(json_t *o, const char *field, int b)
{
	return b == REC_UNSET ? 0 : json_object_set_new(o, field, json_boolean(b));
}

static int
dump_extra(json_t *o, json_t *extra)
{
	return extra == NULL ? 0 : json_object_update_missing(o, extra);
}

/* ---- recipient outcome ---- */

static void
rcpt_clear(struct delivery_rcpt *rc)
{
	free(rc->ref);
	free(rc->address);
	free(rc->reason);
	free(rc->note);
	free(rc->message_id);
	free(rc->address_hash);
	free(rc->dsn_status);
	free(rc->feedback_type);
	free(rc->folded);
	json_decref(rc->extra);
	memset(rc, 0, sizeof(*rc));
}

/* load_ids - a list of event ids, kept joined by spaces (none has one). */
static int
load_ids(struct loader *l, const char *field, json_t *v, char **out)
{
	struct buf b = BUF_INIT;
	size_t i;
	json_t *e;

	if (json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return bad(l, field, "expected a list of ids");
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || !id_valid(json_string_value(e))) {
			buf_free(&b);
			return bad(l, field, "expected a list of ids");
		}
		if ((i > 0 && buf_append(&b, " ", 1) < 0) ||
		    buf_append(&b, json_string_value(e), json_string_length(e)) < 0) {
			buf_free(&b);
			return cp_error_set(l->err, -ENOMEM, "%s: out of memory", l->kind);
		}
	}
	if (b.len == 0)
		return 0;
	if (buf_append(&b, "", 1) < 0) {
		buf_free(&b);
		return cp_error_set(l->err, -ENOMEM, "%s: out of memory", l->kind);
	}
	*out = (char *)b.data;
	return 0;
}

static int
dump_ids(json_t *o, const char *field, const char *ids)
{
	json_t *a;

	if (ids == NULL)
		return 0;
	if ((a = json_array()) == NULL)
		return -1;
	while (*ids) {
		size_t n = strcspn(ids, " ");

		if (n > 0 && json_array_append_new(a, json_stringn(ids, n)) < 0) {
			json_decref(a);
			return -1;
		}
		ids += n;
		ids += *ids == ' ';
	}
	return json_object_set_new(o, field, a);
}

static int
rcpt_load(struct loader *l, json_t *v, struct delivery_rcpt *rc)
{
	const char *key;
	json_t *m;
	long long code;
	int r = 0, i;

	memset(rc, 0, sizeof(*rc));
	rc->state = RCPT_PENDING;
	if (!json_is_object(v))
		return bad(l, "recipients", "expected objects");
	json_object_foreach(v, key, m) {
		if (strcmp(key, "ref") == 0)
			r = load_str(l, "recipients.ref", m, &rc->ref);
		else if (strcmp(key, "state") == 0) {
			r = load_name(l, "recipients.state", m, rcpt_states,
				      CP_ARRAY_SIZE(rcpt_states), &i);
			rc->state = (enum rcpt_state)i;
		} else if (strcmp(key, "mode") == 0) {
			r = load_name(l, "recipients.mode", m, rcpt_modes,
				      CP_ARRAY_SIZE(rcpt_modes), &i);
			rc->mode = (enum rcpt_mode)i;
		} else if (strcmp(key, "code") == 0) {
			code = 0;
			r = load_int(l, "recipients.code", m, &code);
			rc->code = (int)code;
			rc->has_code = r == 0 && !json_is_null(m);
		} else if (strcmp(key, "reason") == 0)
			r = load_str(l, "recipients.reason", m, &rc->reason);
		else if (strcmp(key, "note") == 0)
			r = load_str(l, "recipients.note", m, &rc->note);
		else if (strcmp(key, "message_id") == 0)
			r = load_str(l, "recipients.message_id", m, &rc->message_id);
		else if (strcmp(key, "sent_at") == 0)
			r = load_time(l, "recipients.sent_at", m, &rc->sent_at);
		else if (strcmp(key, "address") == 0)
			r = load_str(l, "recipients.address", m, &rc->address);
		else if (strcmp(key, "address_hash") == 0)
			r = load_str(l, "recipients.address_hash", m, &rc->address_hash);
		else if (strcmp(key, "dsn_status") == 0)
			r = load_str(l, "recipients.dsn_status", m, &rc->dsn_status);
		else if (strcmp(key, "bounced_at") == 0)
			r = load_time(l, "recipients.bounced_at", m, &rc->bounced_at);
		else if (strcmp(key, "complained_at") == 0)
			r = load_time(l, "recipients.complained_at", m, &rc->complained_at);
		else if (strcmp(key, "feedback_type") == 0)
			r = load_str(l, "recipients.feedback_type", m, &rc->feedback_type);
		else if (strcmp(key, "folded") == 0)
			r = load_ids(l, "recipients.folded", m, &rc->folded);
		else
			r = keep_extra(l, &rc->extra, key, m);
		if (r < 0) {
			rcpt_clear(rc);
			return r;
		}
	}
	return 0;
}

static json_t *
rcpt_dump(const struct delivery_rcpt *rc)
{
	json_t *o = json_object();
	int r;

	if (o == NULL)
		return NULL;
	r = dump_str(o, "ref", rc->ref);
	r |= dump_str(o, "address", rc->address);
	r |= dump_str(o, "mode", rcpt_mode_name(rc->mode));
	r |= dump_str(o, "state", rcpt_state_name(rc->state));
	if (rc->has_code)
		r |= dump_int(o, "code", rc->code);
	r |= dump_str(o, "reason", rc->reason);
	r |= dump_str(o, "note", rc->note);
	r |= dump_str(o, "message_id", rc->message_id);
	r |= dump_time(o, "sent_at", rc->sent_at);
	r |= dump_str(o, "address_hash", rc->address_hash);
	r |= dump_str(o, "dsn_status", rc->dsn_status);
	r |= dump_time(o, "bounced_at", rc->bounced_at);
	r |= dump_time(o, "complained_at", rc->complained_at);
	r |= dump_str(o, "feedback_type", rc->feedback_type);
	r |= dump_ids(o, "folded", rc->folded);
	r |= dump_extra(o, rc->extra);
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
rcpt_set_state(struct delivery_rcpt *rc, enum rcpt_state state,
	       const char *reason)
{
	rc->state = state;
	return reason ? record_set_str(&rc->reason, reason) : 0;
}

/* ---- delivery ---- */

void
delivery_clear(struct delivery *d)
{
	free(d->id);
	free(d->type);
	free(d->patient);
	free(d->reason);
	free(d->department);
	free(d->thread);
	free(d->origin);
	delivery_drop_rcpts(d);
	json_decref(d->data);
	json_decref(d->extra);
	memset(d, 0, sizeof(*d));
	d->confidential = d->urgent = d->held = REC_UNSET;
}

static void
delivery_init(struct delivery *d)
{
	memset(d, 0, sizeof(*d));
	d->confidential = d->urgent = d->held = REC_UNSET;
}

static int
load_rcpts(struct loader *l, json_t *v, struct delivery *d)
{
	size_t i, n;

	if (json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return bad(l, "recipients", "expected an array");
	n = json_array_size(v);
	if (n == 0)
		return 0;
	d->rcpts = calloc(n, sizeof(*d->rcpts));
	if (d->rcpts == NULL)
		return cp_error_set(l->err, -ENOMEM, "%s: out of memory", l->kind);
	for (i = 0; i < n; i++) {
		int r = rcpt_load(l, json_array_get(v, i), &d->rcpts[i]);

		if (r < 0)
			return r;
		d->nrcpts++;
	}
	return 0;
}

static int
delivery_member(struct loader *l, struct delivery *d, const char *key,
		json_t *m)
{
	int i, r;

	switch (key[0]) {
	case 'a':
		if (strcmp(key, "attempts") == 0)
			return load_int(l, key, m, &d->attempts);
		break;
	case 'c':
		if (strcmp(key, "created") == 0)
			return load_time(l, key, m, &d->created);
		if (strcmp(key, "confidential") == 0)
			return load_bool(l, key, m, &d->confidential);
		if (strcmp(key, "count") == 0) {
			d->has_count = !json_is_null(m);
			return load_int(l, key, m, &d->count);
		}
		break;
	case 'd':
		if (strcmp(key, "due") == 0)
			return load_time(l, key, m, &d->due);
		if (strcmp(key, "department") == 0)
			return load_str(l, key, m, &d->department);
		if (strcmp(key, "data") == 0) {
			d->data = json_incref(m);
			return 0;
		}
		break;
	case 'e':
		if (strcmp(key, "expires_at") == 0)
			return load_time(l, key, m, &d->expires_at);
		break;
	case 'h':
		if (strcmp(key, "held") == 0)
			return load_bool(l, key, m, &d->held);
		break;
	case 'i':
		if (strcmp(key, "id") == 0)
			return load_str(l, key, m, &d->id);
		break;
	case 'o':
		if (strcmp(key, "origin") == 0)
			return load_str(l, key, m, &d->origin);
		break;
	case 'p':
		if (strcmp(key, "patient") == 0)
			return load_str(l, key, m, &d->patient);
		if (strcmp(key, "priority") == 0) {
			if (json_is_null(m))
				return 0;
			r = load_name(l, key, m, priorities, CP_ARRAY_SIZE(priorities), &i);
			d->priority = (enum priority)i;
			return r;
		}
		break;
	case 'r':
		if (strcmp(key, "reason") == 0)
			return load_str(l, key, m, &d->reason);
		if (strcmp(key, "recipients") == 0)
			return load_rcpts(l, m, d);
		break;
	case 's':
		if (strcmp(key, "state") == 0) {
			r = load_name(l, key, m, delivery_states,
				      CP_ARRAY_SIZE(delivery_states), &i);
			d->state = (enum delivery_state)i;
			return r;
		}
		if (strcmp(key, "send_at") == 0)
			return load_time(l, key, m, &d->send_at);
		if (strcmp(key, "scrubbed") == 0) {
			d->scrubbed = json_is_true(m);
			return json_is_boolean(m) || json_is_null(m) ? 0 :
			       bad(l, key, "expected true or false");
		}
		break;
	case 't':
		if (strcmp(key, "type") == 0)
			return load_str(l, key, m, &d->type);
		if (strcmp(key, "thread") == 0)
			return load_str(l, key, m, &d->thread);
		break;
	case 'u':
		if (strcmp(key, "updated") == 0)
			return load_time(l, key, m, &d->updated);
		if (strcmp(key, "urgent") == 0)
			return load_bool(l, key, m, &d->urgent);
		break;
	case 'v':
		if (strcmp(key, "version") == 0)
			return load_version(l, m);
		break;
	}
	return keep_extra(l, &d->extra, key, m);
}

int
delivery_load(json_t *v, struct delivery *d, struct cp_error *err)
{
	struct loader l = { "delivery record", err };
	const char *key;
	json_t *m;
	int r;

	delivery_init(d);
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "delivery record: expected a JSON object");
	json_object_foreach(v, key, m) {
		r = delivery_member(&l, d, key, m);
		if (r < 0) {
			delivery_clear(d);
			return r;
		}
	}
	if (d->id == NULL) {
		delivery_clear(d);
		return cp_error_set(err, -EBADMSG, "delivery record: field id: missing");
	}
	return 0;
}

time_t
delivery_peek_due(json_t *v)
{
	return (time_t)json_integer_value(json_object_get(v, "due"));
}

int
delivery_peek(json_t *v, struct delivery_peek *p)
{
	struct delivery d;

	memset(p, 0, sizeof(*p));
	/* counted exactly when it loads: the one rule, the codec's */
	if (delivery_load(v, &d, NULL) < 0)
		return -EBADMSG;
	p->state = d.state;
	p->created = (int64_t)d.created;
	p->due = (int64_t)d.due;
	delivery_clear(&d);
	return 0;
}

json_t *
delivery_dump(const struct delivery *d)
{
	json_t *o = json_object(), *list;
	size_t i;
	int r;

	if (o == NULL)
		return NULL;
	r = dump_str(o, "id", d->id);
	r |= dump_str(o, "type", d->type);
	r |= dump_str(o, "patient", d->patient);
	r |= dump_str(o, "state", delivery_state_name(d->state));
	r |= dump_str(o, "reason", d->reason);
	r |= dump_int(o, "created", (long long)d->created);
	r |= dump_int(o, "updated", (long long)d->updated);
	r |= dump_int(o, "due", (long long)d->due);
	r |= dump_int(o, "attempts", d->attempts);
	r |= dump_time(o, "send_at", d->send_at);
	r |= dump_time(o, "expires_at", d->expires_at);
	r |= dump_str(o, "priority", priority_name(d->priority));
	r |= dump_bool(o, "confidential", d->confidential);
	r |= dump_str(o, "department", d->department);
	r |= dump_str(o, "thread", d->thread);
	list = json_array();
	for (i = 0; list != NULL && i < d->nrcpts; i++)
		if (json_array_append_new(list, rcpt_dump(&d->rcpts[i])) < 0)
			r = -1;
	r |= json_object_set_new(o, "recipients", list);
	if (d->data != NULL)
		r |= json_object_set(o, "data", d->data);
	if (d->scrubbed)
		r |= json_object_set_new(o, "scrubbed", json_true());
	r |= dump_bool(o, "urgent", d->urgent);
	r |= dump_str(o, "origin", d->origin);
	r |= dump_bool(o, "held", d->held);
	if (d->has_count)
		r |= dump_int(o, "count", d->count);
	r |= dump_extra(o, d->extra);
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
delivery_dump_public(const struct delivery *d)
{
	json_t *o = delivery_dump(d);

	if (o != NULL && d->data != NULL &&
	    json_object_set_new(o, "data", json_string("(held until delivered)")) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
delivery_summary(const struct delivery *d)
{
	json_t *o = json_pack("{s:s, s:o, s:s, s:I, s:I}", "id", d->id,
			      "type", d->type ? json_string(d->type) : json_null(),
			      "state", delivery_state_name(d->state),
			      "due", (json_int_t)d->due, "attempts", (json_int_t)d->attempts);

	if (o != NULL && d->reason != NULL &&
	    json_object_set_new(o, "reason", json_string(d->reason)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
delivery_set_state(struct delivery *d, enum delivery_state state,
		   const char *reason, int64_t now)
{
	d->state = state;
	if (now)
		d->updated = (time_t)now;
	return reason ? record_set_str(&d->reason, reason) : 0;
}

struct delivery_rcpt *
delivery_add_rcpt(struct delivery *d, const char *ref, enum rcpt_mode mode,
		  const char *address)
{
	struct delivery_rcpt *list, *rc;

	list = reallocarray(d->rcpts, d->nrcpts + 1, sizeof(*list));
	if (list == NULL)
		return NULL;
	d->rcpts = list;
	rc = &list[d->nrcpts];
	memset(rc, 0, sizeof(*rc));
	rc->mode = mode;
	rc->state = RCPT_PENDING;
	if (record_set_str(&rc->ref, ref) < 0 ||
	    record_set_str(&rc->address, address) < 0) {
		rcpt_clear(rc);
		return NULL;
	}
	d->nrcpts++;
	return rc;
}

void
delivery_drop_rcpts(struct delivery *d)
{
	size_t i;

	for (i = 0; i < d->nrcpts; i++)
		rcpt_clear(&d->rcpts[i]);
	free(d->rcpts);
	d->rcpts = NULL;
	d->nrcpts = 0;
}

/* claimed - what every claimed record starts with. */
static int
claimed(struct delivery *d, const char *id, int64_t now)
{
	delivery_init(d);
	d->state = DELIVERY_QUEUED;
	d->created = d->updated = d->due = (time_t)now;
	return record_set_str(&d->id, id);
}

int
delivery_failed_event(struct delivery *d, const char *id, const char *type,
		      const char *patient, const char *reason, int64_t now)
{
	/* An invalid event keeps no data: nothing to scrub later. */
	if (claimed(d, id, now) < 0 || record_set_str(&d->type, type) < 0 ||
	    record_set_str(&d->patient, patient) < 0 ||
	    delivery_set_state(d, DELIVERY_FAILED, reason, 0) < 0) {
		delivery_clear(d);
		return -ENOMEM;
	}
	d->scrubbed = 1;
	return 0;
}

int
delivery_from_event(struct delivery *d, const struct event *ev,
		    const char *thread_hex, int64_t now)
{
	if (claimed(d, ev->id, now) < 0 || record_set_str(&d->type, ev->type) < 0 ||
	    record_set_str(&d->patient, ev->patient) < 0 ||
	    record_set_str(&d->department, ev->department) < 0 ||
	    record_set_str(&d->thread, thread_hex) < 0 ||
	    (d->data = ev->data ? json_incref(ev->data) : json_object()) == NULL) {
		delivery_clear(d);
		return -ENOMEM;
	}
	d->due = (time_t)(ev->send_at > now ? ev->send_at : now);
	d->send_at = (time_t)ev->send_at;
	d->expires_at = (time_t)ev->expires_at;
	d->priority = ev->high_priority ? PRIORITY_HIGH : PRIORITY_NORMAL;
	d->confidential = ev->confidential;
	return 0;
}

int
delivery_internal(struct delivery *d, const char *id, const char *type,
		  const char *patient, const char *department,
		  const char *thread_hex, int urgent, const char *origin,
		  int64_t now, int64_t due, json_t *data)
{
	if (claimed(d, id, now) < 0 || record_set_str(&d->type, type) < 0 ||
	    record_set_str(&d->patient, patient) < 0 ||
	    record_set_str(&d->department, department) < 0 ||
	    record_set_str(&d->thread, thread_hex) < 0 ||
	    record_set_str(&d->origin, origin) < 0 ||
	    (data == NULL && (data = json_object()) == NULL)) {
		json_decref(data);
		delivery_clear(d);
		return -ENOMEM;
	}
	d->due = (time_t)due;
	d->priority = PRIORITY_HIGH;
	d->confidential = 0;
	d->urgent = urgent != 0;
	d->data = data;
	return 0;
}

struct delivery *
delivery_list_add(struct delivery_list *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct delivery *items = reallocarray(l->items, cap, sizeof(*items));

		if (items == NULL)
			return NULL;
		l->items = items;
		l->cap = cap;
	}
	delivery_init(&l->items[l->n]);
	return &l->items[l->n++];
}

void
delivery_list_free(struct delivery_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		delivery_clear(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* ---- thread ---- */

void
thread_clear(struct thread_record *th)
{
	free(th->event);
	free(th->patient);
	free(th->type);
	free(th->department);
	free(th->delivery);
	json_decref(th->form_fields);
	json_decref(th->extra);
	memset(th, 0, sizeof(*th));
	th->confidential = REC_UNSET;
}

static void
thread_init(struct thread_record *th)
{
	memset(th, 0, sizeof(*th));
	th->confidential = REC_UNSET;
}

static int
thread_member(struct loader *l, struct thread_record *th, const char *key,
	      json_t *m)
{
	if (strcmp(key, "event") == 0)
		return load_str(l, key, m, &th->event);
	if (strcmp(key, "patient") == 0)
		return load_str(l, key, m, &th->patient);
	if (strcmp(key, "type") == 0)
		return load_str(l, key, m, &th->type);
	if (strcmp(key, "department") == 0)
		return load_str(l, key, m, &th->department);
	if (strcmp(key, "created") == 0)
		return load_time(l, key, m, &th->created);
	if (strcmp(key, "expires") == 0)
		return load_time(l, key, m, &th->expires);
	if (strcmp(key, "confidential") == 0)
		return load_bool(l, key, m, &th->confidential);
	if (strcmp(key, "delivery") == 0)
		return load_str(l, key, m, &th->delivery);
	if (strcmp(key, "form_fields") == 0) {
		if (json_is_null(m))
			return 0;
		if (!json_is_array(m))
			return bad(l, key, "expected an array");
		th->form_fields = json_incref(m);
		return 0;
	}
	if (strcmp(key, "version") == 0)
		return load_version(l, m);
	return keep_extra(l, &th->extra, key, m);
}

int
thread_load(json_t *v, struct thread_record *th, struct cp_error *err)
{
	struct loader l = { "thread record", err };
	const char *key;
	json_t *m;
	int r;

	thread_init(th);
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "thread record: expected a JSON object");
	json_object_foreach(v, key, m) {
		r = thread_member(&l, th, key, m);
		if (r < 0) {
			thread_clear(th);
			return r;
		}
	}
	return 0;
}

json_t *
thread_dump(const struct thread_record *th)
{
	json_t *o = json_object();
	int r;

	if (o == NULL)
		return NULL;
	r = dump_str(o, "event", th->event);
	r |= dump_str(o, "patient", th->patient);
	r |= dump_str(o, "type", th->type);
	r |= dump_str(o, "department", th->department);
	r |= dump_int(o, "created", (long long)th->created);
	r |= dump_int(o, "expires", (long long)th->expires);
	r |= dump_bool(o, "confidential", th->confidential);
	if (th->form_fields)
		r |= json_object_set(o, "form_fields", th->form_fields);
	r |= dump_str(o, "delivery", th->delivery);
	r |= dump_extra(o, th->extra);
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
form_spec(json_t *fields)
{
	json_t *spec = json_array(), *f;
	size_t i;

	if (spec == NULL)
		return NULL;
	json_array_foreach(fields, i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));

		if (name == NULL || i >= THREAD_FORM_FIELDS_MAX)
			continue;
		if (json_array_append_new(spec, json_pack("{s:s, s:b}", "name", name,
			"required", json_is_true(json_object_get(f, "required")))) < 0) {
			json_decref(spec);
			return NULL;
		}
	}
	return spec;
}

int
thread_from_event(struct thread_record *th, const struct event *ev,
		  int64_t now, int token_ttl)
{
	thread_init(th);
	th->created = (time_t)now;
	th->expires = (time_t)((ev->expires_at ? ev->expires_at : now) + token_ttl);
	if (ev->confidential)
		th->confidential = 1;
	if (record_set_str(&th->event, ev->id) < 0 ||
	    record_set_str(&th->patient, ev->patient) < 0 ||
	    record_set_str(&th->type, ev->type) < 0 ||
	    record_set_str(&th->department, ev->department) < 0 ||
	    (ev->form_fields && (th->form_fields = form_spec(ev->form_fields)) == NULL)) {
		thread_clear(th);
		return -ENOMEM;
	}
	return 0;
}

int
thread_for_internal(struct thread_record *th, const struct thread_record *conv,
		    const char *delivery, int64_t now, int token_ttl)
{
	thread_init(th);
	th->created = (time_t)now;
	th->expires = (time_t)(now + token_ttl);
	th->confidential = conv->confidential;
	th->form_fields = json_incref(conv->form_fields);
	if (record_set_str(&th->event, conv->event) < 0 ||
	    record_set_str(&th->patient, conv->patient) < 0 ||
	    record_set_str(&th->type, conv->type) < 0 ||
	    record_set_str(&th->department, conv->department) < 0 ||
	    record_set_str(&th->delivery, delivery) < 0 ||
	    (conv->extra && (th->extra = json_deep_copy(conv->extra)) == NULL)) {
		thread_clear(th);
		return -ENOMEM;
	}
	return 0;
}

int
thread_get(struct store *s, const uint8_t id[10], struct thread_record *th,
	   struct cp_error *err)
{
	json_t *v;
	int r;

	thread_init(th);
	r = store_get_json_key(s, DB_THREADS, id, 10, &v, err);
	if (r < 0)
		return r;
	r = thread_load(v, th, err);
	json_decref(v);
	return r;
}

int
thread_txn_put(struct store *s, MDB_txn *txn, const uint8_t id[10],
	       const struct thread_record *th, struct cp_error *err)
{
	json_t *v = thread_dump(th);
	int r;

	if (v == NULL)
		return cp_error_set(err, -ENOMEM, "thread record: out of memory");
	r = store_txn_put_json(s, txn, DB_THREADS, id, 10, v, err);
	json_decref(v);
	return r;
}

/* ---- bounce status ---- */

static const char *const bounce_states[] = {
	[BOUNCE_OK] = "ok", [BOUNCE_SOFT] = "soft", [BOUNCE_INVALID] = "invalid",
};

const char *
bounce_state_name(enum bounce_state st)
{
	return (size_t)st < CP_ARRAY_SIZE(bounce_states) ? bounce_states[st] : "?";
}

void
bounce_clear(struct bounce_status *b)
{
	free(b->event);
	free(b->status);
	json_decref(b->extra);
	memset(b, 0, sizeof(*b));
}

int
bounce_load(json_t *v, struct bounce_status *b, struct cp_error *err)
{
	struct loader l = { "bounce record", err };
	const char *key;
	json_t *m;
	int r, i;

	memset(b, 0, sizeof(*b));
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "bounce record: expected a JSON object");
	json_object_foreach(v, key, m) {
		if (strcmp(key, "state") == 0) {
			r = load_name(&l, key, m, bounce_states,
				      CP_ARRAY_SIZE(bounce_states), &i);
			b->state = (enum bounce_state)i;
		} else if (strcmp(key, "soft_count") == 0)
			r = load_int(&l, key, m, &b->soft_count);
		else if (strcmp(key, "last") == 0)
			r = load_time(&l, key, m, &b->last);
		else if (strcmp(key, "event") == 0)
			r = load_str(&l, key, m, &b->event);
		else if (strcmp(key, "status") == 0)
			r = load_str(&l, key, m, &b->status);
		else if (strcmp(key, "version") == 0)
			r = load_version(&l, m);
		else
			r = keep_extra(&l, &b->extra, key, m);
		if (r < 0) {
			bounce_clear(b);
			return r;
		}
	}
	return 0;
}

json_t *
bounce_dump(const struct bounce_status *b)
{
	json_t *o = json_object();
	int r;

	if (o == NULL)
		return NULL;
	r = dump_str(o, "state", bounce_state_name(b->state));
	r |= dump_int(o, "soft_count", b->soft_count);
	r |= dump_time(o, "last", b->last);
	r |= dump_str(o, "event", b->event);
	r |= dump_str(o, "status", b->status);
	r |= dump_extra(o, b->extra);
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
bounce_note(struct bounce_status *b, int hard, int64_t now, const char *event,
	    const char *status)
{
	if (hard) {
		b->state = BOUNCE_INVALID;
	} else {
		b->soft_count++;
		if (b->state != BOUNCE_INVALID)
			b->state = BOUNCE_SOFT;
	}
	b->last = (time_t)now;
	if (record_set_str(&b->event, event) < 0 ||
	    record_set_str(&b->status, status) < 0)
		return -ENOMEM;
	return 0;
}

/* ---- acks ---- */

json_t *
ack_mark_dump(const struct ack_mark *a)
{
	return json_pack("{s:s, s:I}", "delivery", a->delivery, "at", (json_int_t)a->at);
}

/*
 * load_time_and_id - the two members of an acks record: a time and a
 * delivery id of at most STORE_ID_MAX bytes (id "" when absent).
 */
static int
load_time_and_id(struct loader *l, json_t *v, const char *tfield,
		 const char *idfield, time_t *t, char id[STORE_ID_MAX + 1])
{
	long long n = 0;
	char *s = NULL;
	int r;

	if (!json_is_object(v))
		return cp_error_set(l->err, -EBADMSG, "%s: expected a JSON object",
				    l->kind);
	r = load_int(l, tfield, json_object_get(v, tfield) ?: json_null(), &n);
	if (r == 0)
		r = load_str(l, idfield, json_object_get(v, idfield) ?: json_null(), &s);
	if (r == 0 && s && strlen(s) > STORE_ID_MAX)
		r = bad(l, idfield, "expected a delivery id");
	if (r == 0) {
		*t = (time_t)n;
		cp_strlcpy(id, s ? s : "", STORE_ID_MAX + 1);
	}
	free(s);
	return r;
}

int
ack_mark_load(json_t *v, struct ack_mark *a, struct cp_error *err)
{
	struct loader l = { "ack record", err };

	memset(a, 0, sizeof(*a));
	return load_time_and_id(&l, v, "at", "delivery", &a->at, a->delivery);
}

int
alert_window_load(json_t *v, struct alert_window *w, struct cp_error *err)
{
	struct loader l = { "alert window record", err };

	memset(w, 0, sizeof(*w));
	return load_time_and_id(&l, v, "until", "held", &w->until, w->held);
}

json_t *
alert_window_dump(const struct alert_window *w)
{
	if (w->held[0])
		return json_pack("{s:I, s:s}", "until", (json_int_t)w->until, "held", w->held);
	return json_pack("{s:I}", "until", (json_int_t)w->until);
}

/* put_json_take - store v (taken) under key in db. */
static int
put_json_take(struct store *s, MDB_txn *txn, enum store_db db, const char *kind,
	      const char *key, json_t *v, struct cp_error *err)
{
	int r;

	if (v == NULL)
		return cp_error_set(err, -ENOMEM, "%s: out of memory", kind);
	r = store_txn_put_json(s, txn, db, key, strlen(key), v, err);
	json_decref(v);
	return r;
}

int
alert_window_txn_get(struct store *s, MDB_txn *txn, const char *key,
		     struct alert_window *w, struct cp_error *err)
{
	json_t *v;
	int r;

	memset(w, 0, sizeof(*w));
	r = store_txn_get_json(s, txn, DB_ACKS, key, strlen(key), &v, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = alert_window_load(v, w, err);
	json_decref(v);
	return r;
}

int
alert_window_txn_put(struct store *s, MDB_txn *txn, const char *key,
		     const struct alert_window *w, struct cp_error *err)
{
	return put_json_take(s, txn, DB_ACKS, "alert window record", key,
			     alert_window_dump(w), err);
}

int
ack_mark_txn_put(struct store *s, MDB_txn *txn, const char *key,
		 const struct ack_mark *a, struct cp_error *err)
{
	return put_json_take(s, txn, DB_ACKS, "ack record", key, ack_mark_dump(a), err);
}

int
bounce_txn_get(struct store *s, MDB_txn *txn, const char *address,
	       struct bounce_status *b, struct cp_error *err)
{
	json_t *v;
	int r;

	memset(b, 0, sizeof(*b));
	r = store_txn_get_json(s, txn, DB_BOUNCES, address, strlen(address), &v, err);
	if (r < 0)
		return r;
	r = bounce_load(v, b, err);
	json_decref(v);
	return r;
}

/* ---- counts kept with the records (store "counts") ---- */

/*
 * A kind of record counted as it changes: fn adds its part of the counts
 * (times sign) to the sink: the store's "counts" (txn set), or an object
 * of name: count (a recount).
 */
struct count_sink {
	struct store *s;
	MDB_txn *txn;
	json_t *counts;
};

typedef int (*count_fn)(struct count_sink *k, json_t *v, int64_t sign,
			struct cp_error *err);

static void count_n(json_t *counts, const char *name, long long n);

static int
sink_add(struct count_sink *k, const char *prefix, const char *name,
	 int64_t delta, struct cp_error *err)
{
	char key[COUNT_NAME_MAX];
	int n;

	if (name == NULL || delta == 0)
		return 0;
	n = snprintf(key, sizeof(key), "%s%s", prefix, name);
	if (n < 0 || (size_t)n >= sizeof(key))
		return 0;	/* too long for a counter: counted nowhere */
	if (k->counts != NULL) {
		count_n(k->counts, key, (long long)delta);
		return 0;
	}
	return store_txn_counter_add(k->s, k->txn, DB_COUNTS, key, delta, err);
}

static int
bounce_counts(struct count_sink *k, json_t *v, int64_t sign, struct cp_error *err)
{
	struct bounce_status b;
	int r;

	if (bounce_load(v, &b, NULL) < 0)
		return 0;
	r = sink_add(k, "bounce.", bounce_state_name(b.state), sign, err);
	bounce_clear(&b);
	return r;
}

/* seen_counts - a seen record's part: its disposition, its class, and
 * each time it was fetched again after its decision ("duplicate"). */
static int
seen_counts(struct count_sink *k, json_t *v, int64_t sign, struct cp_error *err)
{
	struct seen_record sr;
	int r;

	if (seen_load(v, &sr, NULL) < 0)
		return 0;
	r = sink_add(k, "seen.disposition.", sr.disposition, sign, err);
	if (r == 0 && sr.again > 0)
		r = sink_add(k, "seen.disposition.", "duplicate",
			     sign * (int64_t)sr.again, err);
	if (r == 0)
		r = sink_add(k, "seen.class.", sr.class, sign, err);
	seen_clear(&sr);
	return r;
}

/* uncount - the record stored at key out of the counts (none: nothing). */
static int
uncount(struct store *s, MDB_txn *txn, enum store_db db, count_fn fn,
	const char *key, struct cp_error *err)
{
	struct count_sink k = { s, txn, NULL };
	json_t *v;
	int r;

	if (store_txn_get_json(s, txn, db, key, strlen(key), &v, NULL) < 0)
		return 0;	/* none, or unreadable: counted nowhere */
	r = fn(&k, v, -1, err);
	json_decref(v);
	return r;
}

/* counted_put - v (taken) at key, the record it replaces uncounted. */
static int
counted_put(struct store *s, MDB_txn *txn, enum store_db db, count_fn fn,
	    const char *kind, const char *key, json_t *v, struct cp_error *err)
{
	struct count_sink k = { s, txn, NULL };
	int r = v == NULL ? 0 : uncount(s, txn, db, fn, key, err);

	if (r == 0 && v != NULL)
		r = fn(&k, v, 1, err);
	if (r < 0) {
		json_decref(v);
		return r;
	}
	return put_json_take(s, txn, db, kind, key, v, err);
}

static int
counted_remove(struct store *s, MDB_txn *txn, enum store_db db, count_fn fn,
	       const char *key, struct cp_error *err)
{
	int r = uncount(s, txn, db, fn, key, err);

	return r < 0 ? r : store_txn_del(s, txn, db, key, strlen(key), err);
}

int
bounce_txn_put(struct store *s, MDB_txn *txn, const char *address,
	       const struct bounce_status *b, struct cp_error *err)
{
	return counted_put(s, txn, DB_BOUNCES, bounce_counts, "bounce record",
			   address, bounce_dump(b), err);
}

int
bounce_txn_remove(struct store *s, MDB_txn *txn, const char *address,
		  struct cp_error *err)
{
	return counted_remove(s, txn, DB_BOUNCES, bounce_counts, address, err);
}

static int
read_bounce_count(void *ud, const char *name, uint64_t value)
{
	struct bounce_tally *t = ud;
	size_t i;

	for (i = 0; i < CP_ARRAY_SIZE(t->by_state); i++)
		if (strcmp(name, bounce_state_name((enum bounce_state)i)) == 0)
			t->by_state[i] = (size_t)value;
	return 0;
}

static int
bounce_tally_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	return store_txn_counter_walk(s, txn, DB_COUNTS, "bounce.", read_bounce_count,
				      ud, err);
}

int
bounce_tally(struct store *s, struct bounce_tally *t, struct cp_error *err)
{
	memset(t, 0, sizeof(*t));
	return store_read(s, bounce_tally_txn, t, err);
}

/* ---- imap ---- */

static int
load_uid(struct loader *l, const char *field, json_t *v, uint32_t *out)
{
	long long n = 0;
	int r;

	if (v == NULL)
		return 0;
	r = load_int(l, field, v, &n);
	*out = r == 0 && n > 0 && n <= (long long)UINT32_MAX ? (uint32_t)n : 0;
	return r;
}

int
imap_mark_load(json_t *v, struct imap_mark *m, struct cp_error *err)
{
	struct loader l = { "imap record", err };
	int r;

	memset(m, 0, sizeof(*m));
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "imap record: expected a JSON object");
	r = load_uid(&l, "uidvalidity", json_object_get(v, "uidvalidity"), &m->uidvalidity);
	if (r == 0)
		r = load_uid(&l, "last_uid", json_object_get(v, "last_uid"), &m->last_uid);
	if (r < 0)
		memset(m, 0, sizeof(*m));
	return r;
}

json_t *
imap_mark_dump(const struct imap_mark *m)
{
	return json_pack("{s:I, s:I}", "uidvalidity", (json_int_t)m->uidvalidity,
			 "last_uid", (json_int_t)m->last_uid);
}

int
imap_mark_get(struct store *s, const char *mailbox, struct imap_mark *m,
	      struct cp_error *err)
{
	json_t *v = NULL;
	int r;

	memset(m, 0, sizeof(*m));
	r = store_get_json(s, DB_IMAP, mailbox, &v, err);
	if (r < 0)
		return r;
	r = imap_mark_load(v, m, err);
	json_decref(v);
	return r;
}

int
imap_mark_put(struct store *s, const char *mailbox, const struct imap_mark *m,
	      struct cp_error *err)
{
	json_t *v = imap_mark_dump(m);
	int r;

	if (v == NULL)
		return cp_error_set(err, -ENOMEM, "imap record: out of memory");
	r = store_put_json(s, DB_IMAP, mailbox, v, err);
	json_decref(v);
	return r;
}

/* ---- seen ---- */

static const char *const seen_folders[] = {
	[SEEN_PROCESSED] = "processed", [SEEN_QUARANTINE] = "quarantine",
};

void
seen_clear(struct seen_record *sr)
{
	free(sr->disposition);
	free(sr->class);
	free(sr->reason);
	free(sr->inbox_id);
	free(sr->patient);
	free(sr->event);
	free(sr->message_id);
	free(sr->mailbox);
	json_decref(sr->extra);
	memset(sr, 0, sizeof(*sr));
}

int
seen_load(json_t *v, struct seen_record *sr, struct cp_error *err)
{
	struct loader l = { "seen record", err };
	const char *key;
	json_t *m;
	int r, i;

	memset(sr, 0, sizeof(*sr));
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "seen record: expected a JSON object");
	json_object_foreach(v, key, m) {
		if (strcmp(key, "disposition") == 0)
			r = load_str(&l, key, m, &sr->disposition);
		else if (strcmp(key, "folder") == 0) {
			r = load_name(&l, key, m, seen_folders, CP_ARRAY_SIZE(seen_folders), &i);
			sr->folder = (enum seen_folder)i;
		} else if (strcmp(key, "class") == 0)
			r = load_str(&l, key, m, &sr->class);
		else if (strcmp(key, "reason") == 0)
			r = load_str(&l, key, m, &sr->reason);
		else if (strcmp(key, "inbox_id") == 0)
			r = load_str(&l, key, m, &sr->inbox_id);
		else if (strcmp(key, "patient") == 0)
			r = load_str(&l, key, m, &sr->patient);
		else if (strcmp(key, "event") == 0)
			r = load_str(&l, key, m, &sr->event);
		else if (strcmp(key, "at") == 0)
			r = load_time(&l, key, m, &sr->at);
		else if (strcmp(key, "message_id") == 0)
			r = load_str(&l, key, m, &sr->message_id);
		else if (strcmp(key, "mailbox") == 0)
			r = load_str(&l, key, m, &sr->mailbox);
		else if (strcmp(key, "uidvalidity") == 0)
			r = load_int(&l, key, m, &sr->uidvalidity);
		else if (strcmp(key, "uid") == 0)
			r = load_int(&l, key, m, &sr->uid);
		else if (strcmp(key, "again") == 0)
			r = load_int(&l, key, m, &sr->again);
		else if (strcmp(key, "version") == 0)
			r = load_version(&l, m);
		else
			r = keep_extra(&l, &sr->extra, key, m);
		if (r < 0) {
			seen_clear(sr);
			return r;
		}
	}
	return 0;
}

/* dump_str_or_null - the member always, null when s is NULL or empty. */
static int
dump_str_or_null(json_t *o, const char *field, const char *s)
{
	return json_object_set_new(o, field, s && *s ? json_string(s) : json_null());
}

/* dump_where - where a seen message came from: its Message-ID, and the
 * IMAP mailbox, UIDVALIDITY and UID it was fetched at (when it was). */
static int
dump_where(json_t *o, const struct seen_record *sr)
{
	int r = dump_str(o, "message_id", sr->message_id);

	if (sr->uid > 0) {
		r |= dump_str(o, "mailbox", sr->mailbox);
		r |= dump_int(o, "uidvalidity", sr->uidvalidity);
		r |= dump_int(o, "uid", sr->uid);
	}
	return r;
}

json_t *
seen_dump(const struct seen_record *sr)
{
	json_t *o = json_object();
	int r;

	if (o == NULL)
		return NULL;
	r = dump_str(o, "disposition", sr->disposition);
	r |= dump_str(o, "folder", seen_folders[sr->folder == SEEN_QUARANTINE]);
	r |= dump_str(o, "class", sr->class);
	r |= dump_str_or_null(o, "reason", sr->reason);
	r |= dump_str(o, "inbox_id", sr->inbox_id);
	r |= dump_str(o, "patient", sr->patient);
	r |= dump_str(o, "event", sr->event);
	r |= dump_int(o, "at", (long long)sr->at);
	r |= dump_where(o, sr);
	if (sr->again > 0)
		r |= dump_int(o, "again", sr->again);
	r |= dump_extra(o, sr->extra);
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
seen_quarantine_row(const struct seen_record *sr)
{
	json_t *o;
	int r;

	if (sr->folder != SEEN_QUARANTINE || (o = json_object()) == NULL)
		return NULL;
	r = dump_int(o, "at", (long long)sr->at);
	r |= dump_str_or_null(o, "reason", sr->reason);
	r |= dump_str(o, "class", sr->class);
	r |= dump_where(o, sr);
	r |= dump_str(o, "event", sr->event);
	r |= dump_str(o, "patient", sr->patient);
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
seen_txn_get(struct store *s, MDB_txn *txn, const char *key,
	     struct seen_record *sr, struct cp_error *err)
{
	json_t *v;
	int r;

	memset(sr, 0, sizeof(*sr));
	r = store_txn_get_json(s, txn, DB_SEEN, key, strlen(key), &v, err);
	if (r < 0)
		return r;
	r = seen_load(v, sr, err);
	json_decref(v);
	return r;
}

struct seen_one {
	const char *key;
	struct seen_record *sr;
};

static int
seen_get_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct seen_one *o = ud;

	return seen_txn_get(s, txn, o->key, o->sr, err);
}

int
seen_get(struct store *s, const char *key, struct seen_record *sr,
	 struct cp_error *err)
{
	struct seen_one o = { key, sr };

	memset(sr, 0, sizeof(*sr));
	return store_read(s, seen_get_txn, &o, err);
}

int
seen_txn_put(struct store *s, MDB_txn *txn, const char *key,
	     const struct seen_record *sr, struct cp_error *err)
{
	return counted_put(s, txn, DB_SEEN, seen_counts, "seen record", key,
			   seen_dump(sr), err);
}

int
seen_txn_remove(struct store *s, MDB_txn *txn, const char *key,
		struct cp_error *err)
{
	return counted_remove(s, txn, DB_SEEN, seen_counts, key, err);
}

int
seen_txn_note_again(struct store *s, MDB_txn *txn, const char *key,
		    struct cp_error *err)
{
	struct seen_record sr;
	int r = seen_txn_get(s, txn, key, &sr, err);

	if (r < 0)
		return r;
	sr.again++;
	r = seen_txn_put(s, txn, key, &sr, err);
	seen_clear(&sr);
	return r;
}

static int
note_again_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	return seen_txn_note_again(s, txn, ud, err);
}

int
seen_note_again(struct store *s, const char *key, struct cp_error *err)
{
	return store_write(s, note_again_txn, (void *)key, err);
}

/* ---- inbox ---- */

/* An inbox record is a reply or a form; a clinic entry may also be a
 * complaint. */
static const char *const inbox_classes[] = {
	[INBOX_REPLY] = "reply", [INBOX_FORM] = "form",
};
static const char *const clinic_classes[] = {
	[INBOX_REPLY] = "reply", [INBOX_FORM] = "form",
	[INBOX_COMPLAINT] = "complaint",
};

const char *
inbox_class_name(enum inbox_class c)
{
	return (unsigned)c < CP_ARRAY_SIZE(clinic_classes) ? clinic_classes[c] :
	       "reply";
}

void
inbox_clear(struct inbox_entry *e)
{
	free(e->id);
	free(e->patient);
	free(e->thread);
	free(e->event);
	free(e->event_type);
	free(e->department);
	free(e->sender_role);
	free(e->auth);
	free(e->pgp);
	free(e->store_key);
	free(e->dek);
	json_decref(e->blob);
	json_decref(e->extra);
	memset(e, 0, sizeof(*e));
	e->urgent = e->form_complete = REC_UNSET;
	e->n_attachments = -1;
}

static int
load_sizes(struct loader *l, json_t *m, struct inbox_entry *e)
{
	int r;

	if (!json_is_object(m))
		return bad(l, "sizes", "expected an object");
	r = load_int(l, "sizes.raw", json_object_get(m, "raw") ?: json_null(), &e->size_raw);
	if (r == 0)
		r = load_int(l, "sizes.text", json_object_get(m, "text") ?: json_null(),
			     &e->size_text);
	if (r == 0)
		r = load_int(l, "sizes.attachments",
			     json_object_get(m, "attachments") ?: json_null(),
			     &e->size_attachments);
	e->has_sizes = 1;
	return r;
}

static int
inbox_member(struct loader *l, struct inbox_entry *e, const char *key, json_t *m)
{
	int i, r;

	if (strcmp(key, "id") == 0)
		return load_str(l, key, m, &e->id);
	if (strcmp(key, "patient") == 0)
		return load_str(l, key, m, &e->patient);
	if (strcmp(key, "thread") == 0)
		return load_str(l, key, m, &e->thread);
	if (strcmp(key, "event") == 0)
		return load_str(l, key, m, &e->event);
	if (strcmp(key, "event_type") == 0)
		return load_str(l, key, m, &e->event_type);
	if (strcmp(key, "class") == 0) {
		r = load_name(l, key, m, inbox_classes, CP_ARRAY_SIZE(inbox_classes), &i);
		e->class = (enum inbox_class)i;
		return r;
	}
	if (strcmp(key, "received") == 0)
		return load_time(l, key, m, &e->received);
	if (strcmp(key, "department") == 0)
		return load_str(l, key, m, &e->department);
	if (strcmp(key, "urgent") == 0)
		return load_bool(l, key, m, &e->urgent);
	if (strcmp(key, "sender_role") == 0)
		return load_str(l, key, m, &e->sender_role);
	if (strcmp(key, "auth") == 0)
		return load_str(l, key, m, &e->auth);
	if (strcmp(key, "pgp") == 0)
		return load_str(l, key, m, &e->pgp);
	if (strcmp(key, "form_complete") == 0)
		return load_bool(l, key, m, &e->form_complete);
	if (strcmp(key, "sizes") == 0)
		return load_sizes(l, m, e);
	if (strcmp(key, "n_attachments") == 0)
		return load_int(l, key, m, &e->n_attachments);
	if (strcmp(key, "store_key") == 0)
		return load_str(l, key, m, &e->store_key);
	if (strcmp(key, "format") == 0) {
		e->has_format = 1;
		return load_int(l, key, m, &e->format);
	}
	if (strcmp(key, "dek") == 0)
		return load_str(l, key, m, &e->dek);
	if (strcmp(key, "blob") == 0) {
		if (!json_is_string(m))
			return bad(l, key, "expected a string");
		e->blob = json_incref(m);
		return 0;
	}
	if (strcmp(key, "version") == 0)
		return load_version(l, m);
	return keep_extra(l, &e->extra, key, m);
}

int
inbox_load(json_t *v, struct inbox_entry *e, struct cp_error *err)
{
	struct loader l = { "inbox record", err };
	const char *key;
	json_t *m;
	int r;

	memset(e, 0, sizeof(*e));
	e->urgent = e->form_complete = REC_UNSET;
	e->n_attachments = -1;
	e->format = 1;
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "inbox record: expected a JSON object");
	json_object_foreach(v, key, m) {
		r = inbox_member(&l, e, key, m);
		if (r < 0) {
			inbox_clear(e);
			return r;
		}
	}
	return 0;
}

json_t *
inbox_dump(const struct inbox_entry *e)
{
	json_t *o = json_object();
	int r;

	if (o == NULL)
		return NULL;
	r = dump_str(o, "id", e->id);
	r |= dump_str(o, "patient", e->patient);
	r |= dump_str(o, "thread", e->thread);
	r |= dump_str(o, "event", e->event);
	r |= dump_str(o, "event_type", e->event_type);
	r |= dump_str(o, "class", inbox_class_name(e->class));
	r |= dump_int(o, "received", (long long)e->received);
	r |= dump_str(o, "department", e->department);
	r |= dump_bool(o, "urgent", e->urgent);
	r |= dump_str(o, "sender_role", e->sender_role);
	r |= dump_str(o, "auth", e->auth);
	r |= dump_str(o, "pgp", e->pgp);
	r |= dump_bool(o, "form_complete", e->form_complete);
	if (e->has_sizes)
		r |= json_object_set_new(o, "sizes", json_pack("{s:I, s:I, s:I}",
			"raw", (json_int_t)e->size_raw, "text", (json_int_t)e->size_text,
			"attachments", (json_int_t)e->size_attachments));
	if (e->n_attachments >= 0)
		r |= dump_int(o, "n_attachments", e->n_attachments);
	r |= dump_str(o, "store_key", e->store_key);
	if (e->has_format)
		r |= dump_int(o, "format", e->format);
	r |= dump_str(o, "dek", e->dek);
	r |= dump_extra(o, e->extra);
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
inbox_txn_put(struct store *s, MDB_txn *txn, const char *key,
	      const struct inbox_entry *e, const char *blob, size_t bloblen,
	      struct cp_error *err)
{
	json_t *v = inbox_dump(e);
	int r;

	if (v == NULL)
		return cp_error_set(err, -ENOMEM, "inbox record: out of memory");
	r = store_txn_put_json_b64(s, txn, DB_INBOX, key, strlen(key), v, "blob",
				   blob, bloblen, err);
	json_decref(v);
	return r;
}

/* ---- clinic ---- */

void
clinic_clear(struct clinic_entry *c)
{
	free(c->inbox_id);
	free(c->patient);
	free(c->thread);
	free(c->event);
	free(c->sender_role);
	free(c->state);
	free(c->department);
	free(c->event_type);
	free(c->feedback_type);
	free(c->opted_out);
	json_decref(c->extra);
	memset(c, 0, sizeof(*c));
}

int
clinic_load(json_t *v, struct clinic_entry *c, struct cp_error *err)
{
	struct loader l = { "clinic record", err };
	const char *key;
	json_t *m;
	int r, i;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "clinic record: expected a JSON object");
	json_object_foreach(v, key, m) {
		if (strcmp(key, "inbox_id") == 0)
			r = load_str(&l, key, m, &c->inbox_id);
		else if (strcmp(key, "patient") == 0)
			r = load_str(&l, key, m, &c->patient);
		else if (strcmp(key, "thread") == 0)
			r = load_str(&l, key, m, &c->thread);
		else if (strcmp(key, "event") == 0)
			r = load_str(&l, key, m, &c->event);
		else if (strcmp(key, "class") == 0) {
			r = load_name(&l, key, m, clinic_classes, CP_ARRAY_SIZE(clinic_classes), &i);
			c->class = (enum inbox_class)i;
		} else if (strcmp(key, "received") == 0)
			r = load_time(&l, key, m, &c->received);
		else if (strcmp(key, "urgent") == 0)
			r = load_bool(&l, key, m, &c->urgent);
		else if (strcmp(key, "event_type") == 0)
			r = load_str(&l, key, m, &c->event_type);
		else if (strcmp(key, "feedback_type") == 0)
			r = load_str(&l, key, m, &c->feedback_type);
		else if (strcmp(key, "opted_out") == 0)
			r = load_str(&l, key, m, &c->opted_out);
		else if (strcmp(key, "sender_role") == 0)
			r = load_str(&l, key, m, &c->sender_role);
		else if (strcmp(key, "state") == 0)
			r = load_str(&l, key, m, &c->state);
		else if (strcmp(key, "department") == 0)
			r = load_str(&l, key, m, &c->department);
		else if (strcmp(key, "version") == 0)
			r = load_version(&l, m);
		else
			r = keep_extra(&l, &c->extra, key, m);
		if (r < 0) {
			clinic_clear(c);
			return r;
		}
	}
	return 0;
}

json_t *
clinic_dump(const struct clinic_entry *c)
{
	json_t *o = json_object();
	int r;

	if (o == NULL)
		return NULL;
	r = dump_str(o, "inbox_id", c->inbox_id);
	r |= dump_str(o, "patient", c->patient);
	r |= dump_str(o, "thread", c->thread);
	r |= dump_str(o, "event", c->event);
	r |= dump_str(o, "class", inbox_class_name(c->class));
	r |= dump_int(o, "received", (long long)c->received);
	r |= json_object_set_new(o, "urgent", json_boolean(c->urgent == 1));
	r |= dump_str(o, "sender_role", c->sender_role);
	r |= dump_str(o, "state", c->state);
	r |= dump_str(o, "department", c->department);
	r |= dump_str(o, "event_type", c->event_type);
	r |= dump_str(o, "feedback_type", c->feedback_type);
	r |= dump_str(o, "opted_out", c->opted_out);
	r |= dump_extra(o, c->extra);
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
clinic_txn_put(struct store *s, MDB_txn *txn, const char *key,
	       const struct clinic_entry *c, struct cp_error *err)
{
	return put_json_take(s, txn, DB_CLINIC, "clinic record", key, clinic_dump(c), err);
}

/* ---- key candidates ---- */

int
key_candidate_txn_put(struct store *s, MDB_txn *txn, const char *key,
		      const struct key_candidate *c, struct cp_error *err)
{
	struct buf b = BUF_INIT;
	json_t *v = NULL;

	if (buf_append_base64(&b, c->key, c->keylen) == 0 && buf_append(&b, "", 1) == 0)
		v = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}",
			      "key_fpr", c->fingerprint, "addr", c->addr,
			      "keydata", b.data,
			      "prefer_encrypt", c->mutual ? "mutual" : "nopreference",
			      "seen", (json_int_t)c->seen, "inbox_id", c->inbox_id,
			      "auth", c->auth);
	buf_free(&b);
	return put_json_take(s, txn, DB_CANDIDATES, "key candidate", key, v, err);
}

int
key_candidate_current(json_t *candidate, const char *ref, json_t *patient)
{
	const char *addr = json_string_value(json_object_get(candidate, "addr"));
	json_t *who = NULL;

	if (addr == NULL || ref == NULL || !json_is_object(patient))
		return 0;
	if (strcmp(ref, "patient") == 0)
		who = patient;
	else if (strncmp(ref, "proxy:", 6) == 0 && ref[6] >= '0' && ref[6] <= '9' &&
		 strspn(ref + 6, "0123456789") == strlen(ref + 6) && strlen(ref + 6) < 4)
		who = json_array_get(json_object_get(patient, "proxies"),
				     (size_t)strtoul(ref + 6, NULL, 10));
	return json_is_string(json_object_get(who, "email")) &&
	       strcasecmp(json_string_value(json_object_get(who, "email")), addr) == 0;
}

/* ---- inbox content ---- */

static json_t *
base64_string(const void *data, size_t len)
{
	struct buf b = BUF_INIT;
	json_t *v;

	if (buf_append_base64(&b, data, len) < 0) {
		buf_free(&b);
		return NULL;
	}
	/* base64 is ASCII: no need for jansson to check it is UTF-8 */
	v = json_stringn_nocheck(b.data ? b.data : "", b.len);
	buf_free(&b);
	return v;
}

int
inbox_content_encode(const struct inbox_content *c, const char *raw_b64,
		     size_t raw_len, char **out, size_t *len)
{
	json_t *o = json_object(), *atts = json_array();
	int r = 0;

	*out = NULL;
	if (o == NULL || atts == NULL) {
		json_decref(o);
		json_decref(atts);
		return -ENOMEM;
	}
	r |= dump_str_or_null(o, "subject", c->subject);
	r |= dump_str_or_null(o, "from", c->from);
	r |= dump_str_or_null(o, "from_name", c->from_name);
	r |= dump_int(o, "date", c->date);
	r |= dump_str_or_null(o, "message_id", c->message_id);
	r |= json_object_set_new(o, "text", json_string(c->text ? c->text : ""));
	r |= json_object_set_new(o, "body", json_string(c->body ? c->body : ""));
	if (c->has_form)
		r |= json_object_set_new(o, "form", json_pack("{s:O, s:O}",
			"values", c->form_values ? c->form_values : json_object(),
			"missing", c->form_missing ? c->form_missing : json_array()));
	for (size_t i = 0; i < c->natts; i++) {
		const struct inbox_attachment *a = &c->atts[i];
		json_t *att = json_object();

		r |= dump_str_or_null(att, "filename", a->filename);
		r |= dump_str_or_null(att, "content_type", a->content_type);
		r |= dump_int(att, "size", a->size);
		r |= json_object_set_new(att, "data", base64_string(a->bytes, (size_t)a->size));
		r |= json_array_append_new(atts, att);
	}
	r |= json_object_set_new(o, "attachments", atts);
	r = r != 0 ? -ENOMEM : store_json_dump_b64(o, "raw", raw_b64, raw_len, out, len);
	json_decref(o);
	return r;
}

static const char *
str_or_null(json_t *o, const char *field)
{
	return json_string_value(json_object_get(o, field));
}

int
inbox_content_load(json_t *v, struct inbox_content *c, struct cp_error *err)
{
	json_t *form, *atts, *a;
	size_t i;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "inbox content: expected a JSON object");
	c->subject = str_or_null(v, "subject");
	c->from = str_or_null(v, "from");
	c->from_name = str_or_null(v, "from_name");
	c->date = json_integer_value(json_object_get(v, "date"));
	c->message_id = str_or_null(v, "message_id");
	c->text = str_or_null(v, "text");
	c->body = str_or_null(v, "body");
	form = json_object_get(v, "form");
	if (json_is_object(form)) {
		c->has_form = 1;
		c->form_values = json_object_get(form, "values");
		c->form_missing = json_object_get(form, "missing");
	}
	atts = json_object_get(v, "attachments");
	if (json_array_size(atts) == 0)
		return 0;
	c->atts = calloc(json_array_size(atts), sizeof(*c->atts));
	if (c->atts == NULL)
		return cp_error_set(err, -ENOMEM, "inbox content: out of memory");
	json_array_foreach(atts, i, a) {
		struct inbox_attachment *x = &c->atts[c->natts++];

		x->filename = str_or_null(a, "filename");
		x->content_type = str_or_null(a, "content_type");
		x->size = json_integer_value(json_object_get(a, "size"));
		x->data_b64 = str_or_null(a, "data");
	}
	return 0;
}

void
inbox_content_clear(struct inbox_content *c)
{
	free(c->atts);
	memset(c, 0, sizeof(*c));
}

json_t *
inbox_content_public(json_t *content)
{
	json_t *o = json_deep_copy(content), *a;
	size_t i;

	if (o == NULL)
		return NULL;
	json_object_del(o, "raw");
	json_array_foreach(json_object_get(o, "attachments"), i, a)
		json_object_del(a, "data");
	return o;
}

/* ---- tallies ---- */

static void
count_n(json_t *counts, const char *name, long long n)
{
	if (counts != NULL && name != NULL && n > 0)
		json_object_set_new(counts, name, json_integer(
			json_integer_value(json_object_get(counts, name)) + n));
}

static void
count_in(json_t *counts, const char *name)
{
	count_n(counts, name, 1);
}

static int
read_count(void *ud, const char *name, uint64_t value)
{
	count_n(ud, name, (long long)value);
	return 0;
}

struct seen_counts {
	json_t *by_disposition, *by_class;
};

static int
seen_tally_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct seen_counts *t = ud;
	int r = store_txn_counter_walk(s, txn, DB_COUNTS, "seen.disposition.",
				       read_count, t->by_disposition, err);

	return r < 0 ? r : store_txn_counter_walk(s, txn, DB_COUNTS, "seen.class.",
						  read_count, t->by_class, err);
}

int
seen_tally(struct store *s, json_t *by_disposition, json_t *by_class,
	   struct cp_error *err)
{
	struct seen_counts t = { by_disposition, by_class };

	return store_read(s, seen_tally_txn, &t, err);
}

/* The recount: every bounce and seen record's part, made again. */
struct recount {
	struct count_sink k;
	count_fn fn;
};

static int
recount_one(void *ud, const void *key, size_t keylen, const void *value,
	    size_t len)
{
	struct recount *rc = ud;
	/* read as every other reader of the store reads it */
	json_t *v = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);

	if (v != NULL)
		rc->fn(&rc->k, v, 1, NULL);	/* into an object: no error */
	json_decref(v);
	return 0;
}

int
record_txn_recount(struct store *s, MDB_txn *txn, struct cp_error *err)
{
	struct recount rc = { { s, txn, json_object() }, bounce_counts };
	const char *name;
	json_t *n;
	int r;

	if (rc.k.counts == NULL)
		return cp_error_set(err, -ENOMEM, "recount: out of memory");
	r = store_txn_walk_raw(s, txn, DB_BOUNCES, recount_one, &rc, err);
	rc.fn = seen_counts;
	if (r == 0)
		r = store_txn_walk_raw(s, txn, DB_SEEN, recount_one, &rc, err);
	if (r == 0)
		r = store_txn_del_prefix(s, txn, DB_COUNTS, "bounce.", err);
	if (r == 0)
		r = store_txn_del_prefix(s, txn, DB_COUNTS, "seen.", err);
	json_object_foreach(rc.k.counts, name, n) {
		if (r < 0)
			break;
		r = store_txn_counter_set(s, txn, DB_COUNTS, name,
					  (uint64_t)json_integer_value(n), err);
	}
	json_decref(rc.k.counts);
	return r;
}

static int
tally_clinic(void *ud, const char *key, size_t keylen, json_t *v)
{
	struct clinic_entry c;

	if (clinic_load(v, &c, NULL) < 0)
		return 0;
	count_in(ud, c.state);
	clinic_clear(&c);
	return 0;
}

int
clinic_tally(struct store *s, json_t *by_state, struct cp_error *err)
{
	return store_foreach(s, DB_CLINIC, tally_clinic, by_state, err);
}

json_t *
inbox_row(json_t *rec, const struct inbox_content *content, const char *preview,
	  const char *error)
{
	json_t *row = json_deep_copy(rec);

	if (row == NULL)
		return NULL;
	if (content != NULL) {
		json_object_set_new(row, "subject", content->subject ?
				    json_string(content->subject) : json_null());
		json_object_set_new(row, "preview", json_string(preview ? preview : ""));
	} else {
		json_object_set_new(row, "error", json_string(error ? error : ""));
	}
	return row;
}

void
inbox_row_view(json_t *row, struct inbox_row_view *v)
{
	v->subject = json_string_value(json_object_get(row, "subject"));
	v->preview = json_string_value(json_object_get(row, "preview"));
	v->error = json_string_value(json_object_get(row, "error"));
}

/* ---- data keys ---- */

int
dek_put(struct store *s, const char *id, const char *store_key, int64_t created,
	const char *wrapped, size_t wrapped_len, struct cp_error *err)
{
	char key[64];
	json_t *v;
	int r;

	if (cp_snprintf_ok(key, sizeof(key), "dek:%s", id) < 0)
		return cp_error_set(err, -EINVAL, "data key record: bad id");
	v = json_pack("{s:s, s:s, s:I, s:s%}", "alg", "aes-256-gcm",
		      "store_key", store_key, "created", (json_int_t)created,
		      "wrapped", wrapped, wrapped_len);
	if (v == NULL)
		return cp_error_set(err, -ENOMEM, "data key record: out of memory");
	r = store_put_json(s, DB_META, key, v, err);
	json_decref(v);
	return r;
}

int
dek_load_created(json_t *v, time_t *created, struct cp_error *err)
{
	struct loader l = { "data key record", err };
	long long c = 0;
	int r;

	*created = 0;
	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "data key record: expected a JSON object");
	r = load_int(&l, "created", json_object_get(v, "created") ?: json_null(), &c);
	if (r == 0 && c <= 0)
		r = bad(&l, "created", "expected a time");
	if (r == 0)
		*created = (time_t)c;
	return r;
}

int
dek_get_wrapped(struct store *s, const char *id, char **wrapped,
		struct cp_error *err)
{
	char key[64];
	const char *armor;
	json_t *v = NULL;
	int r;

	*wrapped = NULL;
	if (cp_snprintf_ok(key, sizeof(key), "dek:%s", id) < 0)
		return cp_error_set(err, -EINVAL, "data key record: bad id");
	r = store_get_json(s, DB_META, key, &v, err);
	if (r < 0)
		return r;
	armor = json_string_value(json_object_get(v, "wrapped"));
	if (armor == NULL)
		r = cp_error_set(err, -EBADMSG, "data key record: field wrapped: "
				 "expected a string");
	else if ((*wrapped = strdup(armor)) == NULL)
		r = cp_error_set(err, -ENOMEM, "data key record: out of memory");
	json_decref(v);
	return r;
}

/* ---- the store format version ---- */

static int
store_format_load(json_t *v, unsigned *version, struct cp_error *err)
{
	json_t *n = json_object_get(v, "version");
	json_int_t i;

	if (!json_is_object(v))
		return cp_error_set(err, -EBADMSG, "store format record: not an object");
	if (!json_is_integer(n) || (i = json_integer_value(n)) < 1 ||
	    i > (json_int_t)STORE_FORMAT_MAX)
		return cp_error_set(err, -EBADMSG, "store format record: field version: "
				    "expected an integer from 1 to %u", STORE_FORMAT_MAX);
	*version = (unsigned)i;
	return 0;
}

int
store_format_decode(const void *value, size_t len, unsigned *version,
		    struct cp_error *err)
{
	json_t *v = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
	int r;

	if (v == NULL)
		return cp_error_set(err, -EBADMSG, "store format record: not JSON");
	r = store_format_load(v, version, err);
	json_decref(v);
	return r;
}

int
store_format_txn_get(struct store *s, MDB_txn *txn, unsigned *version,
		     struct cp_error *err)
{
	json_t *v = NULL;
	int r;

	r = store_txn_get_json(s, txn, DB_META, STORE_FORMAT_KEY,
			       strlen(STORE_FORMAT_KEY), &v, err);
	if (r < 0)
		return r;
	r = store_format_load(v, version, err);
	json_decref(v);
	return r;
}

int
store_format_txn_put(struct store *s, MDB_txn *txn, unsigned version,
		     struct cp_error *err)
{
	json_t *v;
	int r;

	if (version < 1 || version > STORE_FORMAT_MAX)
		return cp_error_set(err, -EINVAL, "store format record: version "
				    "out of range");
	v = json_pack("{s:I}", "version", (json_int_t)version);
	if (v == NULL)
		return cp_error_set(err, -ENOMEM, "store format record: out of memory");
	r = store_txn_put_json(s, txn, DB_META, STORE_FORMAT_KEY,
			       strlen(STORE_FORMAT_KEY), v, err);
	json_decref(v);
	return r;
}

/* ---- the audit trail ---- */

#define AUDIT_HEAD_KEY	"audit:head"
#define AUDIT_CHECKPOINT_KEY	"audit:checkpoint"

/*
 * audit_put_str - ,"name":"value" (the comma but for the first member)
 * when value is not NULL: '"' and '\\' escaped, other control
 * characters as \\u00XX (audit.c refuses them; jansson writes them so).
 */
static int
audit_put_str(struct buf *b, const char *name, const char *value)
{
	int r;

	if (value == NULL)
		return 0;
	if ((r = buf_printf(b, "%s\"%s\":\"", b->len > 1 ? "," : "", name)) < 0)
		return r;
	for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
		if (*c == '"' || *c == '\\')
			r = buf_putc(b, '\\') < 0 ? -ENOMEM : buf_putc(b, (char)*c);
		else if (*c < 0x20)
			r = buf_printf(b, "\\u%04X", *c);
		else
			r = buf_putc(b, (char)*c);
		if (r < 0)
			return r;
	}
	return buf_putc(b, '"');
}

/*
 * audit_record_encode - by hand, not through jansson (a record per
 * message sent: this is on the sending path), the bytes jansson's
 * JSON_COMPACT | JSON_SORT_KEYS dump gives: the members in the order of
 * their names.
 */
int
audit_record_encode(const struct audit_record *r, int with_hash, char **out,
		    size_t *len)
{
	struct buf b = BUF_INIT;
	int bad;

	if (r->actor == NULL || r->action == NULL ||
	    !cp_utf8_valid(r->actor, strlen(r->actor)))
		return -EINVAL;
	bad = buf_putc(&b, '{') < 0;
	bad = bad || audit_put_str(&b, "action", r->action) < 0;
	bad = bad || audit_put_str(&b, "actor", r->actor) < 0;
	bad = bad || audit_put_str(&b, "event", r->event) < 0;
	bad = bad || (with_hash && audit_put_str(&b, "hash", r->hash) < 0);
	bad = bad || audit_put_str(&b, "inbox", r->inbox) < 0;
	bad = bad || audit_put_str(&b, "key", r->key) < 0;
	bad = bad || audit_put_str(&b, "patient", r->patient) < 0;
	bad = bad || audit_put_str(&b, "prev", r->prev) < 0;
	bad = bad || audit_put_str(&b, "reason", r->reason) < 0;
	bad = bad || audit_put_str(&b, "recipient_ref", r->recipient) < 0;
	bad = bad || (r->relay != 0 && buf_printf(&b, ",\"relay\":%d", r->relay) < 0);
	bad = bad || buf_printf(&b, ",\"seq\":%llu,\"time\":%lld}",
				(unsigned long long)r->seq, (long long)r->time) < 0;
	if (bad) {
		buf_free(&b);
		return -ENOMEM;
	}
	*out = buf_steal(&b, len);
	return *out ? 0 : -ENOMEM;
}

/* audit_get_str - an optional string member (absent: NULL). */
static int
audit_get_str(json_t *o, const char *name, int required, const char **out,
	      struct cp_error *err)
{
	json_t *m = json_object_get(o, name);

	*out = NULL;
	if (m == NULL && !required)
		return 0;
	if (!json_is_string(m))
		return cp_error_set(err, -EBADMSG, "audit record: field %s: "
				    "expected a string", name);
	*out = json_string_value(m);
	return 0;
}

/* audit_get_hash - a member of 64 lower-case hex digits. */
static int
audit_get_hash(json_t *o, const char *name, char out[AUDIT_HASH_HEX + 1],
	       struct cp_error *err)
{
	const char *h = json_string_value(json_object_get(o, name));

	if (h == NULL || strlen(h) != AUDIT_HASH_HEX ||
	    strspn(h, "0123456789abcdef") != AUDIT_HASH_HEX)
		return cp_error_set(err, -EBADMSG, "audit record: field %s: "
				    "expected 64 hex digits", name);
	memcpy(out, h, AUDIT_HASH_HEX + 1);
	return 0;
}

int
audit_record_decode(const void *value, size_t len, json_t **holder,
		    struct audit_record *r, struct cp_error *err)
{
	json_t *o = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *seq, *t, *relay;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	*holder = NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		return cp_error_set(err, -EBADMSG, "audit record: not a JSON object");
	}
	seq = json_object_get(o, "seq");
	t = json_object_get(o, "time");
	relay = json_object_get(o, "relay");
	if (!json_is_integer(seq) || json_integer_value(seq) < 1)
		rc = cp_error_set(err, -EBADMSG, "audit record: field seq: "
				  "expected a positive integer");
	else if (!json_is_integer(t))
		rc = cp_error_set(err, -EBADMSG, "audit record: field time: "
				  "expected an integer");
	else if (relay != NULL && !json_is_integer(relay))
		rc = cp_error_set(err, -EBADMSG, "audit record: field relay: "
				  "expected an integer");
	if (rc == 0) {
		r->seq = (uint64_t)json_integer_value(seq);
		r->time = json_integer_value(t);
		r->relay = relay ? (int)json_integer_value(relay) : 0;
	}
	if (rc == 0)
		rc = audit_get_str(o, "actor", 1, &r->actor, err);
	if (rc == 0)
		rc = audit_get_str(o, "action", 1, &r->action, err);
	if (rc == 0)
		rc = audit_get_str(o, "reason", 0, &r->reason, err);
	if (rc == 0)
		rc = audit_get_str(o, "event", 0, &r->event, err);
	if (rc == 0)
		rc = audit_get_str(o, "patient", 0, &r->patient, err);
	if (rc == 0)
		rc = audit_get_str(o, "inbox", 0, &r->inbox, err);
	if (rc == 0)
		rc = audit_get_str(o, "recipient_ref", 0, &r->recipient, err);
	if (rc == 0)
		rc = audit_get_str(o, "key", 0, &r->key, err);
	if (rc == 0)
		rc = audit_get_hash(o, "prev", r->prev, err);
	if (rc == 0)
		rc = audit_get_hash(o, "hash", r->hash, err);
	if (rc < 0) {
		json_decref(o);
		memset(r, 0, sizeof(*r));
		return rc;
	}
	*holder = o;
	return 0;
}

/* fhir_action - FHIR AuditEvent.action of a carepost action: R read,
 * D delete, E execute (the rest). */
static const char *
fhir_action(const char *action)
{
	if (strcmp(action, "read") == 0 || strcmp(action, "inbox_listed") == 0)
		return "R";
	if (strcmp(action, "pruned") == 0)
		return "D";
	return "E";
}

/* fhir_reference - {"reference": "KIND/ID"} added to list. */
static int
fhir_entity(json_t *list, const char *kind, const char *id, const char *role)
{
	char ref[STORE_ID_MAX * 2 + 32];
	json_t *e;

	if (id == NULL)
		return 0;
	snprintf(ref, sizeof(ref), "%s/%s", kind, id);
	e = json_pack("{s:{s:s}, s:{s:s}}", "what", "reference", ref,
		      "role", "code", role);
	if (e == NULL || json_array_append_new(list, e) < 0)
		return -ENOMEM;
	return 0;
}

json_t *
audit_record_fhir(const struct audit_record *r)
{
	char recorded[32], seq[24];
	json_t *o, *entity;
	struct tm tm;
	time_t t = (time_t)r->time;
	int bad = 0;

	gmtime_r(&t, &tm);
	strftime(recorded, sizeof(recorded), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(seq, sizeof(seq), "%020llu", (unsigned long long)r->seq);
	o = json_pack("{s:s, s:s, s:{s:s, s:s}, s:[{s:s}], s:s, s:s, "
		      "s:[{s:{s:s}, s:b}], s:{s:s}}",
		      "resourceType", "AuditEvent", "id", seq,
		      "type", "system", "https://carepost.invalid/audit",
		      "code", "carepost",
		      "subtype", "code", r->action ? r->action : "",
		      "action", fhir_action(r->action ? r->action : ""),
		      "recorded", recorded,
		      "agent", "who", "display", r->actor ? r->actor : "",
		      "requestor", r->actor && strncmp(r->actor, "ctl:", 4) == 0,
		      "source", "observer", "carepost");
	if (o == NULL)
		return NULL;
	if (r->reason != NULL) {
		json_t *agent = json_array_get(json_object_get(o, "agent"), 0);

		bad = json_object_set_new(agent, "purposeOfUse",
			json_pack("[{s:s}]", "text", r->reason)) < 0;
	}
	if ((entity = json_array()) == NULL ||
	    json_object_set_new(o, "entity", entity) < 0)
		bad = 1;
	bad = bad || fhir_entity(entity, "Patient", r->patient, "patient") < 0;
	bad = bad || fhir_entity(entity, "Event", r->event, "event") < 0;
	bad = bad || fhir_entity(entity, "Inbox", r->inbox, "message") < 0;
	bad = bad || fhir_entity(entity, "Recipient", r->recipient, "addressee") < 0;
	bad = bad || fhir_entity(entity, "Key", r->key, "key") < 0;
	if (!bad && r->relay != 0) {
		char code[16];

		snprintf(code, sizeof(code), "%d", r->relay);
		bad = fhir_entity(entity, "RelayReply", code, "outcome") < 0;
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* mark_get / mark_put - a meta record {"seq","hash"[,"time"]}. */
static int
mark_get(struct store *s, MDB_txn *txn, const char *key, const char *what,
	 uint64_t *seq, char hash[AUDIT_HASH_HEX + 1], int64_t *time,
	 struct cp_error *err)
{
	json_t *v = NULL, *n, *t;
	int r;

	r = store_txn_get_json(s, txn, DB_META, key, strlen(key), &v, err);
	if (r < 0)
		return r;
	n = json_object_get(v, "seq");
	t = json_object_get(v, "time");
	if (!json_is_integer(n) || json_integer_value(n) < 0)
		r = cp_error_set(err, -EBADMSG, "%s: field seq: expected an "
				 "integer", what);
	else if (time != NULL && !json_is_integer(t))
		r = cp_error_set(err, -EBADMSG, "%s: field time: expected an "
				 "integer", what);
	else
		r = audit_get_hash(v, "hash", hash, err);
	if (r == 0) {
		*seq = (uint64_t)json_integer_value(n);
		if (time != NULL)
			*time = (int64_t)json_integer_value(t);
	}
	json_decref(v);
	return r;
}

static int
mark_put(struct store *s, MDB_txn *txn, const char *key, const char *what,
	 uint64_t seq, const char *hash, const int64_t *time,
	 struct cp_error *err)
{
	json_t *v = json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "hash", hash);
	int r;

	if (v != NULL && time != NULL &&
	    json_object_set_new(v, "time", json_integer((json_int_t)*time)) < 0) {
		json_decref(v);
		v = NULL;
	}
	if (v == NULL)
		return cp_error_set(err, -ENOMEM, "%s: out of memory", what);
	r = store_txn_put_json(s, txn, DB_META, key, strlen(key), v, err);
	json_decref(v);
	return r;
}

int
audit_head_txn_get(struct store *s, MDB_txn *txn, uint64_t *seq,
		   char hash[AUDIT_HASH_HEX + 1], struct cp_error *err)
{
	return mark_get(s, txn, AUDIT_HEAD_KEY, "audit head", seq, hash, NULL, err);
}

int
audit_head_txn_put(struct store *s, MDB_txn *txn, uint64_t seq,
		   const char *hash, struct cp_error *err)
{
	return mark_put(s, txn, AUDIT_HEAD_KEY, "audit head", seq, hash, NULL, err);
}

int
audit_checkpoint_txn_get(struct store *s, MDB_txn *txn, uint64_t *seq,
			 char hash[AUDIT_HASH_HEX + 1], int64_t *time,
			 struct cp_error *err)
{
	return mark_get(s, txn, AUDIT_CHECKPOINT_KEY, "audit checkpoint", seq,
			hash, time, err);
}

int
audit_checkpoint_txn_put(struct store *s, MDB_txn *txn, uint64_t seq,
			 const char *hash, int64_t time, struct cp_error *err)
{
	return mark_put(s, txn, AUDIT_CHECKPOINT_KEY, "audit checkpoint", seq,
			hash, &time, err);
}

/* ---- internal data ---- */

const char *
delivery_in_reply_to(const struct delivery *d)
{
	return json_string_value(json_object_get(d->data, "in_reply_to"));
}

json_t *
delivery_internal_data(const char *in_reply_to)
{
	json_t *data = json_object();

	if (data != NULL && in_reply_to != NULL &&
	    json_object_set_new(data, "in_reply_to", json_string(in_reply_to)) < 0) {
		json_decref(data);
		return NULL;
	}
	return data;
}
