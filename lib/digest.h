/*
 * NAME
 *	digest - the windows in which a recipient's items of a category are
 *	folded into one message
 * SYNOPSIS
 *	#include "digest.h"
 *
 *	int64_t until = digest_until(store, patient, category);
 *	digest_open(store, windows, n, &err);
 * DESCRIPTION
 *	With [delivery] digest_window set, the first item of a foldable
 *	category (event.h, event_type_foldable) for a patient goes at once
 *	and opens a window of that length for the patient and the category;
 *	items due while it is open are held (queued, "held for a digest")
 *	until it ends, and then go together, one message per recipient
 *	(outbound.c, fold). Every message sent opens the window again.
 *
 *	A window is one record in the "digests" database: key
 *	"PATIENT/CATEGORY", value {"until": EPOCH} (the shape of a staff
 *	alert window: record.h, alert_window). The held items are
 *	ordinary queued delivery records with their due time at the window's
 *	end, so that a restart (or a SIGKILL) loses and repeats nothing: they
 *	go when due, as any record. A window that has ended is pruned by the
 *	retention pass (retain.c).
 *
 *	digest_until gives the end of the open window, or 0 (none, ended, or
 *	unreadable: the item then goes at once). digest_open writes the
 *	windows, in one transaction; a patient id or category too long for
 *	a key is skipped.
 * ERRORS
 *	digest_open: the store's.
 */
#ifndef CAREPOST_DIGEST_H
#define CAREPOST_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"
#include "util.h"

#define DIGEST_KEY_MAX	(STORE_ID_MAX + 32)
#define DIGEST_HELD	"held for a digest"	/* a held record's reason */

struct digest_window {
	const char *patient;
	const char *category;
	int64_t until;
};

int64_t digest_until(struct store *s, const char *patient, const char *category);
int digest_open(struct store *s, const struct digest_window *w, size_t n,
		struct cp_error *err);

/* digest_window_ended - for the retention pass: 1 when the value names
 * a window that ended before now (or cannot be read), else 0. */
int digest_window_ended(json_t *value, int64_t now);

#endif
