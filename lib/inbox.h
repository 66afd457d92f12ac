/*
 * NAME
 *	inbox - reading back what inbound filed: a patient's inbox, one
 *	message opened, the clinic queue, the quarantine
 * SYNOPSIS
 *	#include "inbox.h"
 *
 *	inbox_list(store, "p-1", &list, &err);
 *	inbox_get(store, "p-1", msg_id, &rec, &err);
 *	inbox_open(pgp, atrest, rec, &content, &err);
 *	inbox_clinic_queue(store, "cardiology", &list, &err);
 *	inbox_quarantine(store, &list, &err);
 * DESCRIPTION
 *	What carepostctl inbox, read, clinic-queue and quarantine show; the portal
 *	does the same in its own language from docs/store.md.
 *
 *	inbox_list - the patient's inbox records, oldest first, as a new
 *	array of the cleartext records without "blob".
 *	inbox_get - one record (with its blob).
 *	inbox_open - decrypt a record's blob into a new object (store.md,
 *	"inbox"): format 2 (INBOX_FORMAT, sealed with the store's data keys)
 *	with a (atrest_new on the same store and a pgp whose keyring holds
 *	the store key's secret, which unwraps each data key once), format 1
 *	(a gpg message to the store key) with p.
 *	inbox_clinic_queue - the entries of department dept (all when
 *	NULL), as a new array, each with "department" added from its key.
 *	inbox_clinic_page - the same a page at a time, streamed: fn gets
 *	each row (borrowed: valid for the call) in key order (department,
 *	then inbox id), at most max rows (0: all), after the entry named
 *	after ("DEPT/INBOX_ID", the last row of the page before; NULL: from
 *	the first), in one read transaction that reads only the page's
 *	entries; it stops when fn returns non-zero and returns that.
 *	-EINVAL for a bad department or after.
 *	inbox_quarantine - what inbound quarantined, oldest first, as a new
 *	array of seen_quarantine_row (record.h): when, the reason, the
 *	class, where it was fetched or its Message-ID, the event and
 *	patient ids when known; no subject, address or body (the seen
 *	records keep none). A message quarantined unread (over the size
 *	limit) has no seen record and is not listed.
 *	inbox_aad - what a sealed blob is bound to: its format and its
 *	record's key, so that a blob moved into another patient's record,
 *	or another record of the same patient, fails to open. inbound seals
 *	with it, inbox_open opens with it.
 *
 *	A record that is not one of carepost's (it does not load) is left
 *	out of a listing.
 * ERRORS
 *	-EINVAL for a malformed patient, message or department id;
 *	-ENOMEM; the store's codes (-ENOENT for an absent record).
 *	inbox_open: -EBADMSG for a blob that is missing, malformed or fails
 *	authentication (tampered, or moved from another record), or content
 *	that is not JSON; -EINVAL when the record's format needs the a or p
 *	that was NULL; -ENOKEY for a data key missing from the store;
 *	-EPROTONOSUPPORT for an unknown format; gpg's codes otherwise.
 *	Texts name ids and formats, never content.
 * OWNERSHIP
 *	Every array, record and content handed out is a new reference the
 *	caller json_decref()s. The content inbox_open hands out is PHI in
 *	clear; its decryption buffer is wiped before it is freed.
 * THREAD SAFETY
 *	As the store (store.h) and atrest (atrest.h): one thread per struct
 *	atrest and struct pgp at a time.
 */
#ifndef CAREPOST_INBOX_H
#define CAREPOST_INBOX_H

#include <jansson.h>

#include "store.h"
#include "util.h"

#define INBOX_FORMAT	2		/* of the inbox records written */
#define INBOX_AAD_MAX	(sizeof("carepost inbox 2\n") + 2 * STORE_ID_MAX + 2)

struct atrest;
struct pgp;

int inbox_list(struct store *s, const char *patient, json_t **out,
	       struct cp_error *err);
int inbox_get(struct store *s, const char *patient, const char *msg_id,
	      json_t **out, struct cp_error *err);
int inbox_open(struct pgp *p, struct atrest *a, json_t *record,
	       json_t **content, struct cp_error *err);
typedef int (*inbox_row_fn)(void *ud, json_t *row);
int inbox_clinic_page(struct store *s, const char *dept, const char *after,
		      size_t max, inbox_row_fn fn, void *ud, struct cp_error *err);
int inbox_clinic_queue(struct store *s, const char *dept, json_t **out,
		       struct cp_error *err);
int inbox_quarantine(struct store *s, json_t **out, struct cp_error *err);
void inbox_aad(const char *patient, const char *msg_id, char out[INBOX_AAD_MAX]);

#endif
