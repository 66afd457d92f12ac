/*
 * NAME
 *	patient - the edits carepost makes to patient records, each in one
 *	transaction
 * DESCRIPTION
 *	See patient.h.
 */
#include "patient.h"
#include "audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* who - the patient (ref "patient") or proxy N ("proxy:N") in p, or NULL. */
static json_t *
who(json_t *p, const char *ref)
{
	char *end;
	unsigned long n;

	if (strcmp(ref, "patient") == 0)
		return p;
	if (strncmp(ref, "proxy:", 6) != 0 || ref[6] < '0' || ref[6] > '9')
		return NULL;
	n = strtoul(ref + 6, &end, 10);
	if (*end != '\0')
		return NULL;
	return json_array_get(json_object_get(p, "proxies"), n);
}

struct link {
	const char *patient;
	long proxy;
	const char *fpr;
	const char *actor;
};

static int
link_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct link *l = ud;
	json_t *p, *w;
	int r;

	r = store_txn_get_json(s, txn, DB_PATIENTS, l->patient, strlen(l->patient),
			       &p, err);
	if (r < 0)
		return r;
	if (!json_is_object(p)) {
		json_decref(p);
		return cp_error_set(err, -EBADMSG, "patient %s: not a JSON object", l->patient);
	}
	w = l->proxy < 0 ? p : json_array_get(json_object_get(p, "proxies"), (size_t)l->proxy);
	if (w == NULL) {
		json_decref(p);
		return cp_error_set(err, -ENXIO, "patient %s: no proxy %ld", l->patient,
				    l->proxy);
	}
	if (json_object_set_new(w, "pgp_fpr", json_string(l->fpr)) < 0)
		r = cp_error_set(err, -ENOMEM, "patient %s: out of memory", l->patient);
	else
		r = store_txn_put_json(s, txn, DB_PATIENTS, l->patient,
				       strlen(l->patient), p, err);
	json_decref(p);
	if (r == 0) {
		char ref[32];
		struct audit_event ev = {
			.action = AUDIT_KEY_IMPORTED, .actor = l->actor,
			.patient = l->patient, .recipient = ref, .key = l->fpr,
		};

		if (l->proxy < 0)
			snprintf(ref, sizeof(ref), "patient");
		else
			snprintf(ref, sizeof(ref), "proxy:%ld", l->proxy);
		r = audit_append(s, txn, &ev, err);
	}
	return r;
}

int
patient_link_key(struct store *s, const char *patient, long proxy,
		 const char *fpr, const char *actor, struct cp_error *err)
{
	struct link l = { patient, proxy, fpr, actor };

	return store_write(s, link_txn, &l, err);
}

int
patient_txn_opt_out(struct store *s, MDB_txn *txn, const char *patient,
		    const char *ref, const char *category, const char *actor,
		    struct cp_error *err)
{
	json_t *p, *w, *list, *c;
	size_t i;
	int r;

	r = store_txn_get_json(s, txn, DB_PATIENTS, patient, strlen(patient), &p, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	w = json_is_object(p) ? who(p, ref) : NULL;
	if (!json_is_object(w)) {
		json_decref(p);
		return 0;
	}
	list = json_object_get(w, "optout");
	if (!json_is_array(list)) {
		list = json_array();
		json_object_set_new(w, "optout", list);
	}
	json_array_foreach(list, i, c) {
		if (strcmp(json_string_value(c) ?: "", category) == 0) {
			json_decref(p);
			return 0;
		}
	}
	if (json_array_append_new(list, json_string(category)) < 0)
		r = cp_error_set(err, -ENOMEM, "patient %s: out of memory", patient);
	else
		r = store_txn_put_json(s, txn, DB_PATIENTS, patient, strlen(patient), p, err);
	json_decref(p);
	if (r == 0) {
		struct audit_event ev = {
			.action = AUDIT_OPTED_OUT,
			.actor = actor ? actor : AUDIT_ACTOR_DAEMON,
			.patient = patient, .recipient = ref,
		};

		r = audit_append(s, txn, &ev, err);
	}
	return r < 0 ? r : 1;
}
