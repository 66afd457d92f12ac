/*
 * NAME
 *	bouncemap - a delivery report mapped to the message carepost sent,
 *	and recorded against that recipient
 * SYNOPSIS
 *	#include "bouncemap.h"
 *
 *	struct bouncemap bm;
 *
 *	r = bouncemap_find(store, key, keylen, now, verp, &m->dsn, dr, &bm, &err);
 *	if (r == 0)
 *		... in the batch's transaction: bouncemap_txn(s, txn, &bm, now, &err);
 *	else if (r > 0)
 *		... quarantine with bm.reason (bm.forged: it named no message
 *		    carepost sent) ...
 * DESCRIPTION
 *	A report maps through what carepost put on the message it sent,
 *	never through what the report says of itself alone:
 *
 *	- the VERP address it came back to, "TOKEN.rN.TAG" (the local part
 *	  after "bounce+"): the token's HMAC names the thread (an expired
 *	  token still counts: bounces come late), TAG (TOKEN_LABEL_VERP) the
 *	  recipient N;
 *	- else the original Message-ID "<THREADHEX.rN.TAG@domain>", TAG of
 *	  TOKEN_LABEL_MESSAGE_ID; since a Message-ID is seen by whoever holds
 *	  the message, the report's failed recipient block (dr) must also
 *	  name the address that recipient's message went to.
 *
 *	The thread gives the delivery record; its recipient N gives the
 *	address, which must still be the one the message went to (its
 *	address_hash: a proxy removed and another added in its place does
 *	not take the old one's bounces). dr is the report's first failed or
 *	delayed recipient block (NULL: none, as for a bounce that is no
 *	RFC 3464 report); its status, when well formed, is kept, else
 *	"4.0.0".
 *
 *	bouncemap_find_complaint maps a feedback report (arf.h) the same
 *	way: through the VERP local parts in verps (the address the report
 *	came to, its Original-Mail-From, the reported message's
 *	Return-Path: the first that maps counts), else the reported
 *	message's Message-ID. A Message-ID's tag names the recipient, and
 *	feedback loops redact the address (RFC 6590), so no address is
 *	asked for; but a report that names the mailbox that complained
 *	(rcpt_to, its Original-Rcpt-To) in another domain than the
 *	recipient's address is not mapped (a copy forwarded elsewhere).
 *
 *	Either way, bm then also says the recipient's ref ("patient",
 *	"proxy:N", "staff:N"), the event's type and department as the
 *	delivery record has them, and whether a feedback report about that
 *	recipient's message was recorded before (complained).
 *
 *	bouncemap_txn records a mapped report: the recipient's state on the
 *	delivery record ("bounced", or "delayed" unless it bounced already),
 *	its dsn_status and bounced_at, and the address's bounce status
 *	record (record.h, bounce_note).
 * ERRORS
 *	bouncemap_find and bouncemap_find_complaint: 0 mapped, 1 not mapped (bm->reason says why, PHI-free;
 *	bm->forged when it is in carepost's form but carries no tag carepost
 *	made), or < 0 for a failure of the store or libgcrypt (err set): the
 *	message must then stay where it is. bouncemap_txn: the store's codes,
 *	-ENOMEM.
 * OWNERSHIP
 *	bm is the caller's; it holds no pointer but reason (a static string).
 *	store and key are borrowed for the call.
 * THREAD SAFETY
 *	As the store.
 */
#ifndef CAREPOST_BOUNCEMAP_H
#define CAREPOST_BOUNCEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "dsn.h"
#include "store.h"
#include "token.h"
#include "util.h"

struct bouncemap {
	char delivery_id[STORE_ID_MAX + 1];
	size_t rcpt_index;
	char event[STORE_ID_MAX + 1];	/* of the thread, once found */
	char patient[STORE_ID_MAX + 1];
	char thread[2 * TOKEN_THREAD_BYTES + 1];	/* hex */
	char address[256];		/* the recipient's, lower case */
	char ref[64];			/* the recipient's ref */
	char type[64];			/* the event's type */
	char department[STORE_ID_MAX + 1];	/* the event's, or "" */
	int complained;			/* a feedback report recorded before */
	char dsn_status[16];		/* "5.1.1"; "4.0.0" when none given */
	int failed;			/* action failed (else delayed) */
	int hard;			/* 5.x.x */
	int forged;
	const char *reason;		/* when not mapped */
};

int bouncemap_find(struct store *s, const void *key, size_t keylen, int64_t now,
		   const char *verp, const struct inmsg_dsn *dsn,
		   const struct inmsg_dsn_rcpt *dr, struct bouncemap *bm,
		   struct cp_error *err);
int bouncemap_find_complaint(struct store *s, const void *key, size_t keylen,
			     int64_t now, const char *const *verps, size_t nverps,
			     const char *message_id, const char *rcpt_to,
			     struct bouncemap *bm, struct cp_error *err);
int bouncemap_txn(struct store *s, MDB_txn *txn, const struct bouncemap *bm,
		  int64_t now, struct cp_error *err);

#endif
