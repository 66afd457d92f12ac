/*
 * NAME
 *	filing - one decided message written into the store: a reply into
 *	the patient's inbox (sealed) and the clinic's queue, a delivery
 *	report or an opt-out recorded, and its seen record
 * SYNOPSIS
 *	#include "filing.h"
 *
 *	struct filing_reply reply = { .cfg = cfg, .raw = raw, .len = len,
 *		.m = m, .thread = &thread, .inbox_id = id, .patient = pid, ... };
 *	struct filing f = { .seen_key = key, .seen = &seen, .now = now,
 *		.kind = FILING_REPLY, .reply = &reply };
 *	struct filing_result out;
 *
 *	... before the transaction (gpg may run, to wrap a data key):
 *	filing_seal(atrest, &reply, now, &blob, dek, &err);
 *	reply.blob = blob.data; reply.blob_len = blob.len; reply.dek = dek;
 *	... in the transaction:
 *	r = filing_txn(s, txn, &f, &out, &err);
 *	if (r == -EALREADY)
 *		... filed meanwhile: what its seen record says ...
 * DESCRIPTION
 *	The filing step of inbound (inbound.h, step 6), on explicit inputs:
 *	what was decided about the message (the caller's; this module
 *	decides nothing) and what it is made of.
 *
 *	filing_seal makes the inbox record's content (record.h, struct
 *	inbox_content: the subject and sender that go with the text, the
 *	text, body, form answers, attachments, and the raw message in
 *	base64) and seals it with atrest_seal under the additional data
 *	inbox_aad(patient, inbox_id), so that it opens only in that record.
 *	The header fields go with the text only where they are vouched
 *	for: the Subject is the protected one when the covered entity has
 *	one; else the header's, unless a signature alone proved the sender
 *	(signer_matched), which the header is not covered by: then only
 *	when DMARC or aligned DKIM vouch for a From that is the signer's
 *	(headers_authenticated, from_ref equal to sender_ref). The display
 *	name likewise. An attacker replaying someone's signed message
 *	under a Subject of their own gets it filed without one.
 *
 *	filing_txn, in the caller's write transaction: -EALREADY when
 *	seen_key has a seen record (another ingest won the race); else by
 *	kind: FILING_REPLY writes the inbox record "PATIENT/INBOX_ID"
 *	(cleartext metadata, PHI-free: ids, class, sizes, the auth method,
 *	"pgp" as "signed", "encrypted" or "encrypted+signed", "signed" only
 *	for a matched signer; the sealed blob and its data key's id), the
 *	clinic queue entry "DEPARTMENT/INBOX_ID" (state "new"), and what
 *	followup_txn queues (followup.h; nothing to the sender of list mail
 *	or of mail asking for no automatic answer, RFC 3834:
 *	out->no_autoresponse); FILING_BOUNCE records a mapped report
 *	(bouncemap_txn); FILING_OPT_OUT adds category to the optout list of
 *	sender_ref in the patient's record (patient_txn_opt_out);
 *	FILING_COMPLAINT marks the recipient's entry of the delivery record
 *	(complained_at, feedback_type; a recipient marked before gets
 *	nothing more), opts that recipient out of category when given, and
 *	when staff_line writes the clinic queue entry "DEPARTMENT/LINE_ID"
 *	of class "complaint" (no inbox message: record.h, clinic_entry);
 *	FILING_SEEN_ONLY writes nothing more. Then, for every kind, the
 *	seen record, and the audit record (audit.h) of a reply filed or a
 *	message quarantined, by actor (an opt-out's is patient.h's). Redoing it (store_write runs a transaction again after
 *	a map resize) writes the same.
 * ERRORS
 *	filing_seal: -ENOMEM ("inbound: cannot encode the content" when the
 *	content cannot be made), atrest_seal's (-ENOKEY without a store
 *	key, gpg's when a data key cannot be wrapped). filing_txn: -EALREADY
 *	(seen before: nothing written), -EINVAL for a kind without what it
 *	needs, the store's codes, -ENOMEM. After an error nothing of it may
 *	stay: the caller aborts the transaction.
 * OWNERSHIP
 *	Everything a struct filing or filing_reply points to is borrowed
 *	for the call. filing_seal appends the sealed blob to blob (the
 *	caller's) and writes the data key's id to dek; the plaintext it
 *	made is wiped and freed. out is the caller's, set afresh by each
 *	call.
 * THREAD SAFETY
 *	As the store and atrest: one thread per struct atrest at a time.
 */
#ifndef CAREPOST_FILING_H
#define CAREPOST_FILING_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "atrest.h"
#include "bouncemap.h"
#include "buf.h"
#include "config.h"
#include "followup.h"
#include "inmsg.h"
#include "record.h"
#include "store.h"
#include "util.h"

/* A reply decided to be filed, and what it is made of. */
struct filing_reply {
	const struct cp_config *cfg;	/* routing: what followup queues */
	const char *raw;		/* the message as fetched */
	size_t len;
	const struct inmsg *m;		/* as parsed: decrypted, or made again
					   from its signed part */
	const struct thread_record *thread;	/* the thread it is on */

	/* whose and where: ids, PHI-free */
	const char *inbox_id;
	const char *patient;
	const char *thread_hex;
	const char *event;
	const char *department;
	const char *sender_role;	/* "patient" or "proxy" */
	const char *sender_ref;		/* "patient" or "proxy:N": who answered */
	const char *from_ref;		/* whose address the From is, or "" */
	const char *auth;		/* "pgp", "dmarc", "dkim", "from" */
	int decrypted;			/* the content is what gpg decrypted */
	int signer_matched;		/* signed by the patient or a proxy */
	int headers_authenticated;	/* DMARC or aligned DKIM vouch for the header */

	/* what they wrote */
	const char *text;		/* trimmed; NULL: "" */
	int urgent;
	int form;			/* a reply on a form_request thread */
	json_t *form_values;		/* form: the answers; NULL: none */
	json_t *form_missing;		/* form: required fields unanswered */

	/* a key its authenticated sender offered (Autocrypt); NULL: none */
	const struct key_candidate *candidate;

	/* sealed (filing_seal), for filing_txn */
	const char *store_fpr;		/* the key the data keys are wrapped to */
	const char *blob;		/* NULL: "" */
	size_t blob_len;
	const char *dek;		/* the data key's id */
};

enum filing_kind {
	FILING_SEEN_ONLY,		/* quarantined, discarded, refused */
	FILING_REPLY,
	FILING_BOUNCE,
	FILING_OPT_OUT,
	FILING_COMPLAINT,
};

/* A feedback report mapped (bouncemap_find_complaint) and decided. */
struct filing_complaint {
	const struct bouncemap *bm;	/* whose message, which recipient */
	const char *feedback_type;	/* as reported, a token ("abuse") */
	const char *category;		/* to opt the recipient out of, or NULL */
	int staff_line;			/* a line in the clinic's queue */
	const char *department;		/* whose queue */
	const char *line_id;		/* the line's MSGID ("cTIME-HEX8") */
	const char *sender_role;	/* "patient" or "proxy" */
};

struct filing {
	const char *actor;		/* audit.h: NULL is "daemon" */
	const char *seen_key;		/* the message's (inbound_result) */
	const struct seen_record *seen;	/* what came of it */
	int64_t now;
	enum filing_kind kind;
	const struct filing_reply *reply;	/* FILING_REPLY */
	const struct bouncemap *bounce;		/* FILING_BOUNCE: a mapped report */
	const char *patient;		/* FILING_OPT_OUT: whose record, */
	const char *sender_ref;		/* whose list in it ("patient", "proxy:N") */
	const char *category;		/* and what they opted out of */
	const struct filing_complaint *complaint;	/* FILING_COMPLAINT */
};

struct filing_result {
	int no_autoresponse;		/* asked for no automatic answer */
	struct followup_result followup;	/* what the reply queued */
};

int filing_seal(struct atrest *a, const struct filing_reply *r, int64_t now,
		struct buf *blob, char dek[ATREST_DEK_ID_SIZE],
		struct cp_error *err);
int filing_txn(struct store *s, MDB_txn *txn, const struct filing *f,
	       struct filing_result *out, struct cp_error *err);

#endif
