/*
 * NAME
 *	event - portal event and patient records: types, categories, checks
 * DESCRIPTION
 *	See event.h. The table below is the one list of event types; the
 *	templates directory must hold a full and a notice variant of each.
 */
#include "event.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const struct event_type types[] = {
	{ "appointment_scheduled", "appointments", 0, 0, 0, NULL },
	{ "appointment_reminder", "appointments", 0, 0, 0, "reminders" },
	{ "appointment_cancelled", "appointments", 0, 0, 0, NULL },
	{ "referral_update", "referrals", 0, 0, 0, NULL },
	{ "refill_ready", "pharmacy", 0, 0, 0, NULL },
	{ "refill_status", "pharmacy", 0, 0, 0, NULL },
	{ "benefits_update", "billing", 0, 0, 0, NULL },
	{ "contact_info_changed", "security", 1, 0, 0, NULL },
	{ "statement_ready", "billing", 0, 0, 0, NULL },
	{ "payment_due", "billing", 0, 0, 0, NULL },
	{ "payment_received", "billing", 0, 0, 0, NULL },
	{ "form_request", "forms", 0, 0, 0, NULL },
	{ "provider_message", "messages", 0, 0, 0, NULL },
	{ "test_result", "results", 0, 0, 0, NULL },
	{ "visit_summary", "results", 0, 0, 0, NULL },
	{ "health_record_updated", "results", 0, 0, 0, NULL },
	{ "education_article", "education", 0, 1, 0, NULL },
	{ "evisit_update", "messages", 0, 0, 0, NULL },
	{ "checkup_reminder", "recalls", 0, 1, 0, "reminders" },
	{ "immunization_reminder", "recalls", 0, 1, 0, "reminders" },
	{ "proxy_access_granted", "security", 1, 0, 0, NULL },
	{ "account_invite", "security", 1, 0, 0, NULL },
	/* Internal: made by carepostd on ingest, never accepted from the portal. */
	{ "reply_ack", "service", 0, 0, 1, NULL },
	{ "staff_alert", "service", 0, 0, 1, NULL },
	{ "form_incomplete", "service", 0, 0, 1, NULL },
	/* Internal: made by carepostd's key check (keycheck.h). */
	{ "key_expiring", "service", 0, 0, 1, NULL },
	/* Internal: the one message that folds a recipient's items of a
	 * category (outbound.h, digests); its templates only, no record. */
	{ "digest", "service", 0, 0, 1, NULL },
};

#define PORTAL_TYPES (CP_ARRAY_SIZE(types) - 5)

const struct event_type *
event_type_find(const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < CP_ARRAY_SIZE(types); i++)
		if (strcmp(types[i].name, name) == 0)
			return &types[i];
	return NULL;
}

const struct event_type *
event_types(size_t *n)
{
	*n = PORTAL_TYPES;
	return types;
}

const struct event_type *
event_types_all(size_t *n)
{
	*n = CP_ARRAY_SIZE(types);
	return types;
}

/*
 * The categories whose items a digest may fold: not appointments (a visit
 * is near), forms and messages (a reply belongs to its own thread), nor
 * security notices (never held).
 */
static const char *const foldable[] = {
	"results", "billing", "pharmacy", "referrals", "recalls", "education",
};

int
event_type_foldable(const struct event_type *t)
{
	if (t == NULL || t->internal || t->security)
		return 0;
	for (size_t i = 0; i < CP_ARRAY_SIZE(foldable); i++)
		if (strcmp(t->category, foldable[i]) == 0)
			return 1;
	return 0;
}

int
event_category_known(const char *category)
{
	size_t i;

	for (i = 0; i < PORTAL_TYPES; i++)
		if (strcmp(types[i].category, category) == 0 ||
		    (types[i].legacy && strcmp(types[i].legacy, category) == 0))
			return 1;
	return 0;
}

int
id_valid(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];

		if (!(isalnum(c) || c == '.' || c == '_' || c == ':' ||
		      c == '@' || c == '-'))
			return 0;
		if (n >= 128)
			return 0;
	}
	return n > 0;
}

/* shape_ok - 1 if s starts with shape ('d' a digit, else itself). */
static int
shape_ok(const char *s, const char *shape)
{
	size_t i;

	for (i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
			return 0;
	return 1;
}

/* date_valid - 1 for a real (proleptic Gregorian) calendar date. */
static int
date_valid(int Y, int M, int D)
{
	static const int days[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (M < 1 || M > 12 || D < 1 || D > days[M - 1])
		return 0;
	return !(M == 2 && D == 29 && (Y % 4 != 0 || (Y % 100 == 0 && Y % 400 != 0)));
}

/* parse_rfc3339 - "YYYY-MM-DDTHH:MM:SS(Z|±HH:MM)" to epoch; -1 if bad. */
static int64_t
parse_rfc3339(const char *s)
{
	int Y, M, D, h, m, sec, n = 0, oh = 0, om = 0;
	struct tm tm;
	const char *p;
	int64_t t;

	/* sscanf's %d takes blanks and signs: check the digits first. */
	if (!shape_ok(s, "dddd-dd-dd") || s[10] == '\0' || !strchr("Tt ", s[10]) ||
	    !shape_ok(s + 11, "dd:dd:dd"))
		return -1;
	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m,
		   &sec, &n) != 6)
		return -1;
	p = s + n;
	if (*p == '.') {		/* fractional seconds: ignored */
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;

		if (strlen(p) != 6 || !shape_ok(p + 1, "dd:dd") ||
		    sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || oh > 23 || om > 59)
			return -1;
		oh *= sign;
		om *= sign;
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0' || !date_valid(Y, M, D) || h > 23 || m > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm) - (int64_t)oh * 3600 - (int64_t)om * 60;
	return t > 0 ? t : -1;	/* as the integer form: <= 0 is bad */
}

int64_t
event_time(json_t *obj, const char *field)
{
	json_t *v = json_object_get(obj, field);

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? json_integer_value(v) : -1;
	if (json_is_string(v))
		return parse_rfc3339(json_string_value(v));
	return -1;
}

static int
fail(char *reason, size_t len, const char *text)
{
	cp_strlcpy(reason, text, len);
	return -EINVAL;
}

static int
optional_string(json_t *obj, const char *field)
{
	json_t *v = json_object_get(obj, field);

	return v == NULL || json_is_null(v) || json_is_string(v);
}

int
event_validate(json_t *ev, char *reason, size_t len)
{
	json_t *v;
	const char *prio;

	if (!json_is_object(ev))
		return fail(reason, len, "event: expected a JSON object");
	if (!id_valid(json_string_value(json_object_get(ev, "id"))))
		return fail(reason, len, "field id: expected 1-128 of [A-Za-z0-9._:@-]");
	v = json_object_get(ev, "type");
	if (!json_is_string(v))
		return fail(reason, len, "field type: expected a string");
	if (event_type_find(json_string_value(v)) == NULL ||
	    event_type_find(json_string_value(v))->internal)
		return fail(reason, len, "field type: unknown event type");
	if (!id_valid(json_string_value(json_object_get(ev, "patient"))))
		return fail(reason, len, "field patient: expected a patient id");
	if (event_time(ev, "send_at") < 0)
		return fail(reason, len, "field send_at: expected epoch seconds or an RFC 3339 time");
	if (event_time(ev, "expires_at") < 0)
		return fail(reason, len, "field expires_at: expected epoch seconds or an RFC 3339 time");
	if (!optional_string(ev, "department"))
		return fail(reason, len, "field department: expected a string");
	v = json_object_get(ev, "department");
	if (json_is_string(v) && !id_valid(json_string_value(v)))
		return fail(reason, len, "field department: expected a department name");
	if (!optional_string(ev, "priority"))
		return fail(reason, len, "field priority: expected \"normal\" or \"high\"");
	prio = json_string_value(json_object_get(ev, "priority"));
	if (prio && strcmp(prio, "normal") != 0 && strcmp(prio, "high") != 0)
		return fail(reason, len, "field priority: expected \"normal\" or \"high\"");
	v = json_object_get(ev, "confidential");
	if (v && !json_is_boolean(v) && !json_is_null(v))
		return fail(reason, len, "field confidential: expected true or false");
	v = json_object_get(ev, "data");
	if (v && !json_is_object(v) && !json_is_null(v))
		return fail(reason, len, "field data: expected an object");
	return 0;
}

void
event_peek(json_t *ev, const char **type, int *has_type, const char **patient)
{
	json_t *t = json_object_get(ev, "type");

	*has_type = t != NULL;
	*type = json_string_value(t);
	*patient = json_string_value(json_object_get(ev, "patient"));
}

int
event_load(json_t *ev, struct event *out, char *reason, size_t len)
{
	json_t *fields;
	int r;

	memset(out, 0, sizeof(*out));
	r = event_validate(ev, reason, len);
	if (r < 0)
		return r;
	out->id = json_string_value(json_object_get(ev, "id"));
	out->type = json_string_value(json_object_get(ev, "type"));
	out->patient = json_string_value(json_object_get(ev, "patient"));
	out->department = json_string_value(json_object_get(ev, "department"));
	out->send_at = event_time(ev, "send_at");
	out->expires_at = event_time(ev, "expires_at");
	out->high_priority = strcmp(json_string_value(json_object_get(ev, "priority")) ?: "",
				    "high") == 0;
	out->confidential = json_is_true(json_object_get(ev, "confidential"));
	if (json_is_object(json_object_get(ev, "data")))
		out->data = json_object_get(ev, "data");
	fields = json_object_get(out->data, "fields");
	if (strcmp(out->type, "form_request") == 0 && json_is_array(fields))
		out->form_fields = fields;
	return 0;
}

static int
address_ok(json_t *v)
{
	const char *s = json_string_value(v);
	const char *at;
	size_t i;

	if (s == NULL || strlen(s) > 254)
		return 0;
	at = strchr(s, '@');
	if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@'))
		return 0;
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f || strchr("<>,;\"()[]\\", c))
			return 0;
	}
	return 1;
}

int
patient_validate(json_t *p, char *reason, size_t len)
{
	json_t *v, *proxy;
	size_t i;

	if (!json_is_object(p))
		return fail(reason, len, "patient: expected a JSON object");
	if (!id_valid(json_string_value(json_object_get(p, "id"))))
		return fail(reason, len, "field id: expected 1-128 of [A-Za-z0-9._:@-]");
	v = json_object_get(p, "email");
	if (v && !json_is_null(v) && !address_ok(v))
		return fail(reason, len, "field email: expected an ASCII address");
	if (!optional_string(p, "name") || !optional_string(p, "locale") ||
	    !optional_string(p, "tz") || !optional_string(p, "dob") ||
	    !optional_string(p, "pgp_fpr"))
		return fail(reason, len, "fields name, locale, tz, dob, pgp_fpr: expected strings");
	v = json_object_get(p, "dob");
	if (json_is_string(v) && patient_age_years(p, cp_now()) < 0)
		return fail(reason, len, "field dob: expected YYYY-MM-DD");
	v = json_object_get(p, "proxies");
	if (v && !json_is_null(v)) {
		if (!json_is_array(v) || json_array_size(v) > PATIENT_MAX_PROXIES)
			return fail(reason, len, "field proxies: expected an array of at most 8");
		json_array_foreach(v, i, proxy) {
			if (!json_is_object(proxy) ||
			    !address_ok(json_object_get(proxy, "email")))
				return fail(reason, len, "field proxies: each needs an email address");
			if (!optional_string(proxy, "name") ||
			    !optional_string(proxy, "pgp_fpr") ||
			    !optional_string(proxy, "relation"))
				return fail(reason, len, "field proxies: name, relation, pgp_fpr must be strings");
		}
	}
	v = json_object_get(p, "optout");
	if (v && !json_is_null(v)) {
		json_t *c;

		if (!json_is_array(v))
			return fail(reason, len, "field optout: expected an array of categories");
		json_array_foreach(v, i, c)
			if (!json_is_string(c))
				return fail(reason, len, "field optout: expected category names");
	}
	return 0;
}

int
patient_age_years(json_t *p, int64_t now)
{
	const char *dob = json_string_value(json_object_get(p, "dob"));
	int Y, M, D, n = 0, age;
	struct tm tm;
	time_t t = (time_t)now;

	if (dob == NULL || !shape_ok(dob, "dddd-dd-dd") ||
	    sscanf(dob, "%4d-%2d-%2d%n", &Y, &M, &D, &n) != 3 ||
	    dob[n] != '\0' || n != 10 || !date_valid(Y, M, D) || Y < 1850)
		return -1;
	gmtime_r(&t, &tm);
	age = tm.tm_year + 1900 - Y;
	if (tm.tm_mon + 1 < M || (tm.tm_mon + 1 == M && tm.tm_mday < D))
		age--;
	return age < 0 ? -1 : age;
}

int
patient_opted_out(json_t *p, const char *category)
{
	json_t *list = json_object_get(p, "optout"), *c;
	size_t i;

	json_array_foreach(list, i, c)
		if (json_is_string(c) && strcmp(json_string_value(c), category) == 0)
			return 1;
	return 0;
}

int
event_category_sensitive(const char *category)
{
	static const char *const sensitive[] = {
		"results", "messages", "referrals", "pharmacy",
	};
	size_t i;

	for (i = 0; category != NULL && i < CP_ARRAY_SIZE(sensitive); i++)
		if (strcmp(category, sensitive[i]) == 0)
			return 1;
	return 0;
}

const char *
event_successor_category(const struct event_type *t)
{
	size_t n, i;
	const struct event_type *all;

	if (t == NULL || t->unsubscribe || t->legacy == NULL)
		return NULL;
	/* the subscription category that took over the legacy one's
	 * subscription types (reminders: recalls) */
	all = event_types(&n);
	for (i = 0; i < n; i++)
		if (all[i].unsubscribe && all[i].legacy != NULL &&
		    strcmp(all[i].legacy, t->legacy) == 0)
			return all[i].category;
	return NULL;
}

const char *
event_opted_out(json_t *p, const struct event_type *t)
{
	if (t == NULL || t->security || t->internal)
		return NULL;
	if (patient_opted_out(p, t->category))
		return t->category;
	if (t->legacy != NULL && patient_opted_out(p, t->legacy))
		return t->legacy;
	return NULL;
}
