/*
 * NAME
 *	event - portal event and patient records: types, categories, checks
 * SYNOPSIS
 *	#include "event.h"
 * DESCRIPTION
 *	The portal writes events and patients as JSON (see docs/store.md and
 *	docs/events.md). These functions validate them before carepostd acts
 *	on them, and hold the fixed facts about each event type: its category
 *	(for opt-out), whether it is a security notice (never opted out of),
 *	and whether it carries List-Unsubscribe.
 *
 *	Validation reasons are PHI-free: they name the field, never its value.
 *
 *	Limits: ids are 1..128 bytes of [A-Za-z0-9._:@-] (id_valid); a
 *	patient has at most PATIENT_MAX_PROXIES proxies (patient_validate).
 *	An event's JSON is at most EVENT_JSON_MAX bytes: event_validate sees
 *	parsed JSON and does not check that; intake.c refuses larger events
 *	when they are written (intake_put_event) or claimed, and
 *	carepostctl when it reads an event file.
 * ERRORS
 *	event_validate and patient_validate return 0, or -EINVAL with the
 *	reason in reason (cut to reasonlen). patient_validate refuses a dob
 *	that is not a real YYYY-MM-DD date from 1850 on, or that lies after
 *	the current time (cp_now). event_time returns -1 for a time that is
 *	not a positive integer or a valid RFC 3339 string, 0 when the field
 *	is absent or null. patient_age_years returns -1 for no usable dob
 *	(callers treat that patient as an adult). The other functions cannot
 *	fail.
 * OWNERSHIP
 *	The JSON arguments are borrowed for the call and never changed. The
 *	struct event_type pointers point into a static table: they live as
 *	long as the program and are never freed.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_EVENT_H
#define CAREPOST_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_JSON_MAX	(256 * 1024)
#define PATIENT_MAX_PROXIES 8

struct event_type {
	const char *name;
	const char *category;
	int security;		/* never suppressed by opt-out */
	int unsubscribe;	/* carries List-Unsubscribe */
	int internal;		/* made by carepostd (reply_ack, staff_alert,
				   form_incomplete): never from the portal,
				   never opted out of, always a notice */
	const char *legacy;	/* the category it had before, whose opt-outs
				   still count ("reminders"), or NULL */
};

/* event_type_find - the type's facts, or NULL when unknown. */
const struct event_type *event_type_find(const char *name);

/* event_types - the portal's types (n set to the count). */
const struct event_type *event_types(size_t *n);

/*
 * event_types_all - the portal's types followed by the internal ones
 * (those the inbound path enqueues: reply_ack, staff_alert,
 * form_incomplete), for the template set. event_type_find finds both;
 * event_validate refuses internal types from the portal.
 */
const struct event_type *event_types_all(size_t *n);

/* event_category_known - 1 for a category name that types use. */
int event_category_known(const char *category);

/* id_valid - 1 if s is an acceptable event or patient id. */
int id_valid(const char *s);

/*
 * event_validate - check an event object; 0, or -EINVAL with a reason
 * ("field send_at: expected an integer or RFC 3339 time") in reason.
 * Times (send_at, expires_at) may be epoch seconds or RFC 3339 strings;
 * event_time reads them.
 */
int event_validate(json_t *ev, char *reason, size_t reasonlen);

/* event_time - a time field as epoch seconds; 0 if absent, -1 if bad. */
int64_t event_time(json_t *obj, const char *field);

/*
 * struct event - a portal event as carepostd reads it (docs/store.md,
 * "events"). Strings and data point into the JSON it was loaded from.
 */
struct event {
	const char *id;
	const char *type;
	const char *patient;
	const char *department;		/* NULL: none */
	int64_t send_at;		/* 0: none */
	int64_t expires_at;		/* 0: none */
	int high_priority;		/* "priority": "high" */
	int confidential;
	json_t *data;			/* an object, or NULL */
	json_t *form_fields;		/* data.fields of a form_request, or NULL */
};

/*
 * event_load - event_validate, then the event's fields into *out,
 * borrowed from ev (live as long as the caller holds ev unchanged).
 * 0, or -EINVAL with the reason as event_validate gives it.
 */
int event_load(json_t *ev, struct event *out, char *reason, size_t reasonlen);

/*
 * event_peek - what an event that did not load still says, for its
 * failed record: its type (NULL when not a string; *has_type whether
 * there is one at all) and patient (NULL when not a string), borrowed.
 */
void event_peek(json_t *ev, const char **type, int *has_type,
		const char **patient);

/* patient_validate - check a patient object, as event_validate. */
int patient_validate(json_t *p, char *reason, size_t reasonlen);

/*
 * patient_age_years - age at now from "dob" (YYYY-MM-DD); -1 when the
 * patient has no valid dob (treated as an adult).
 */
int patient_age_years(json_t *p, int64_t now);

/* patient_opted_out - 1 if the patient opted out of the category. */
int patient_opted_out(json_t *p, const char *category);
/*
 * event_opted_out - the category name p (a patient or a proxy) opted out
 * of that stops events of type t: its category, or the category it had
 * before (an opt-out of "reminders", the category of appointment,
 * checkup and immunization reminders before they were split, still stops
 * all three); NULL when none does, and always for security or internal
 * types.
 */
const char *event_opted_out(json_t *p, const struct event_type *t);
/*
 * event_category_sensitive - 1 for the categories whose notices must not
 * say what kind of item they are about (docs/events.md: results,
 * messages, referrals, pharmacy).
 * event_successor_category - for a transactional type that was
 * subscription mail under its legacy category (appointment_reminder,
 * once "reminders"), the subscription category that took over the rest
 * of that legacy category ("recalls"); NULL otherwise. An unsubscribe by
 * email from such a message, sent before the split, opts out of it.
 */
int event_category_sensitive(const char *category);

/*
 * event_type_foldable - 1 when items of type t may be held and folded
 * into a digest ([delivery] digest_window): results, billing, pharmacy,
 * referrals, recalls and education; never appointments, forms, messages,
 * security notices or internal mail.
 */
int event_type_foldable(const struct event_type *t);
const char *event_successor_category(const struct event_type *t);

#endif
