/*
 * NAME
 *	fuzz_event - libFuzzer target for event and patient validation
 * DESCRIPTION
 *	Parses the input as JSON (inputs that do not parse are tried as a
 *	time string instead) and hands the value to event_validate,
 *	patient_validate, event_time on every member, patient_age_years and
 *	patient_opted_out. Validation must return 0 or -EINVAL, and on
 *	-EINVAL leave a terminated, non-empty reason that fits its buffer;
 *	an event that passes has a valid id and type and good times;
 *	event_time must return -1 or more. Anything else is a bug, reported
 *	by abort().
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * BUG: event_time returns RFC 3339 times before 1970 as negative values
 * other than -1 (test_event's event_time_rejects_..._pre_epoch). Set to 1
 * once lib/event.c is fixed, so that the fuzzer holds event_time to its
 * contract (>= -1) again.
 */
#define STRICT_EVENT_TIME 1

static void
check_time(json_t *obj, const char *field)
{
	if (event_time(obj, field) < -1 && STRICT_EVENT_TIME)
		abort();
}

static void
check_reason(int r, const char *reason, size_t len)
{
	if (r != 0 && r != -EINVAL)
		abort();
	if (r == 0)
		return;
	if (memchr(reason, '\0', len) == NULL || (len > 1 && reason[0] == '\0'))
		abort();
}

static void
check_validators(json_t *v)
{
	char reason[160], tiny[6];
	int r;

	memset(reason, 'Z', sizeof(reason));
	r = event_validate(v, reason, sizeof(reason));
	check_reason(r, reason, sizeof(reason));
	memset(tiny, 'Z', sizeof(tiny));
	if (event_validate(v, tiny, sizeof(tiny)) != r)
		abort();
	if (r != 0)
		check_reason(r, tiny, sizeof(tiny));
	if (r == 0 && (!id_valid(json_string_value(json_object_get(v, "id"))) ||
		       !event_type_find(json_string_value(json_object_get(v, "type"))) ||
		       event_time(v, "send_at") < 0 || event_time(v, "expires_at") < 0))
		abort();

	memset(reason, 'Z', sizeof(reason));
	r = patient_validate(v, reason, sizeof(reason));
	check_reason(r, reason, sizeof(reason));
	memset(tiny, 'Z', sizeof(tiny));
	if (patient_validate(v, tiny, sizeof(tiny)) != r)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *v, *member;
	const char *key;
	int age;

	if (size > EVENT_JSON_MAX)
		return 0;
	v = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		/* Not JSON: try the bytes as a time string. */
		json_t *obj = json_object();

		if (json_object_set_new(obj, "t", json_stringn((const char *)data, size)) == 0)
			check_time(obj, "t");
		json_decref(obj);
		return 0;
	}
	check_validators(v);
	json_object_foreach(v, key, member) {
		check_time(v, key);
		(void)id_valid(json_string_value(member));
		(void)event_type_find(json_string_value(member));
		check_validators(member);
	}
	age = patient_age_years(v, 1780000000);
	if (age < -1 || age > 1780000000 / (365 * 86400) + 200)
		abort();
	(void)patient_opted_out(v, "billing");
	(void)patient_opted_out(v, "security");
	json_decref(v);
	return 0;
}
