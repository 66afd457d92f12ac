/*
 * NAME
 *	intake - portal events into the delivery queue: validate, claim,
 *	make the thread
 * SYNOPSIS
 *	#include "intake.h"
 *
 *	intake_put_event(store, id, json, len, &err);	(what the portal does)
 *	intake_claim(store, now, token_ttl, 500, &claimed, &failed, &err);
 * DESCRIPTION
 *	"events" is the portal's in-tray (docs/store.md). intake_claim takes
 *	up to max entries from it, in key order, in one write transaction:
 *	each is deleted, and
 *
 *	- an id that already has a delivery record is dropped (sent once,
 *	  ever);
 *	- a valid event (event_load) whose patient exists gets its delivery
 *	  record (delivery_from_event: queued, due at send_at or now), its
 *	  schedule entry (queue.h) and its thread (thread_from_event, under
 *	  token_thread_from_id of its id);
 *	- anything else (over EVENT_JSON_MAX, not JSON, invalid, an id that
 *	  differs from its key, an unknown patient, an unreadable patient
 *	  record) gets a delivery record in state failed with the reason and
 *	  no data (delivery_failed_event), its type "unknown" when the event
 *	  named one the portal may not write (unknown or internal); a key
 *	  that is no id at all (empty, over STORE_ID_MAX, holding a NUL) is
 *	  dropped.
 *
 *	*claimed counts every entry taken, *failed (may be NULL) those that
 *	became failed records. Once the transaction has committed, each of
 *	these is logged (LOGID_FAILED, "failed at claim: REASON", with the
 *	event id and the patient reference when the event named a patient
 *	id): the reasons are carepost's own words, never the event's values.
 *
 *	intake_put_event writes an event into "events" as the portal would:
 *	the JSON is stored as given (it is validated when claimed).
 * ERRORS
 *	The store's (store.h); intake_claim: -ENOMEM. intake_put_event: -EINVAL for a bad id,
 *	-EFBIG over EVENT_JSON_MAX.
 * OWNERSHIP
 *	Nothing is handed out; the arguments are borrowed for the call.
 * THREAD SAFETY
 *	As the store: one thread at a time per struct store.
 */
#ifndef CAREPOST_INTAKE_H
#define CAREPOST_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

int intake_claim(struct store *s, int64_t now, int token_ttl, size_t max,
		 size_t *claimed, size_t *failed, struct cp_error *err);
int intake_put_event(struct store *s, const char *id, const char *json,
		     size_t len, struct cp_error *err);

#endif
