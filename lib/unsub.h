/*
 * NAME
 *	unsub - one-click unsubscribe tokens (RFC 8058) and their
 *	application
 * SYNOPSIS
 *	#include "unsub.h"
 *
 *	char tok[UNSUB_TOKEN_SIZE];
 *	unsub_token(key, keylen, thread, rcpt, "recalls", tok);
 *	unsub_apply(store, key, keylen, tok, actor, &outcome, &err);
 * DESCRIPTION
 *	Subscription mail (docs/events.md: recalls, education) carries a
 *	List-Unsubscribe HTTPS URI that ends in a token:
 *
 *	    THREAD.rN.CATEGORY.TAG
 *
 *	THREAD the thread id as 20 lower-case hex digits (a hash of the
 *	event id: no patient id, no address), N the recipient index of the
 *	delivery record (decimal, no leading zero, below 100), CATEGORY the
 *	subscription category, TAG a tag (token.h) under carepost's token
 *	key of the thread, the index and the category (label
 *	TOKEN_LABEL_UNSUBSCRIBE), so that no one but carepost can make one,
 *	nor turn one into another recipient's or another category's. A token
 *	does not expire of itself; it names nothing once retention has taken
 *	the thread or its delivery record.
 *
 *	unsub_apply checks a token handed in (by carepostctl unsubscribe or
 *	the portal's "unsubscribe" database) and, when it is carepost's,
 *	adds its category to the optout list of the recipient it names (the
 *	patient or proxy N: patient.h, audited as opted_out by actor), in
 *	one write transaction. It goes to whoever is at the address the
 *	message went to now (its address hash): proxy N when still there,
 *	else the patient or proxies at that address after the list was
 *	reordered or shortened (all of them when several share it: one
 *	mailbox); a proxy replaced by another address takes nothing
 *	(UNSUB_STALE). *outcome says what happened; nothing changes but for
 *	UNSUB_APPLIED.
 * ERRORS
 *	unsub_token: -EINVAL (a category that is no subscription category, an
 *	index past 99), token_tag's. unsub_apply: the store's and
 *	patient_txn_opt_out's; a token refused is an outcome, not an error.
 * OWNERSHIP
 *	Arguments are borrowed for the call.
 * THREAD SAFETY
 *	As the store.
 */
#ifndef CAREPOST_UNSUB_H
#define CAREPOST_UNSUB_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "token.h"
#include "util.h"

#define TOKEN_LABEL_UNSUBSCRIBE	"carepost unsubscribe"
#define UNSUB_TOKEN_SIZE	64	/* 20 + ".r99." + 9 + "." + 10 + NUL */

enum unsub_outcome {
	UNSUB_APPLIED,		/* the category added to the recipient's list */
	UNSUB_ALREADY,		/* it was there: nothing to do */
	UNSUB_FORGED,		/* not a token carepost made */
	UNSUB_GONE,		/* its thread or delivery is no longer stored */
	UNSUB_STALE,		/* the recipient is at another address now */
};

const char *unsub_outcome_name(enum unsub_outcome o);

/* unsub_category_ok - 1 for a category subscription mail belongs to. */
int unsub_category_ok(const char *category);

int unsub_token(const void *key, size_t keylen,
		const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt,
		const char *category, char out[UNSUB_TOKEN_SIZE]);

/*
 * unsub_token_read - the parts of a token that has carepost's tag:
 * 0, or -EBADMSG for anything else (checked before the tag).
 */
int unsub_token_read(const void *key, size_t keylen, const char *token,
		     uint8_t thread[TOKEN_THREAD_BYTES], size_t *rcpt,
		     char category[16]);

struct unsub_result {
	enum unsub_outcome outcome;
	char patient[STORE_ID_MAX + 1];	/* named when the token was good */
	char ref[32];			/* "patient" or "proxy:N" */
	char category[16];
};

int unsub_apply(struct store *s, const void *key, size_t keylen,
		const char *token, const char *actor, struct unsub_result *res,
		struct cp_error *err);

/*
 * unsub_drain - the tokens the portal handed in through the
 * "unsubscribe" database (key: the token; value: anything), max of them
 * to a write transaction, up to txns transactions while a transaction
 * finds max keys (more wait): each applied as unsub_apply does (by the
 * daemon), then its key deleted; counts by outcome added into
 * by_outcome (indexed by enum unsub_outcome) as each commits. A key that
 * is no token at all is a forged one. On an error nothing of that
 * transaction is applied nor deleted: its keys wait for the next round.
 */
#define UNSUB_OUTCOMES	(UNSUB_STALE + 1)
int unsub_drain(struct store *s, const void *key, size_t keylen, size_t max,
		size_t txns, size_t by_outcome[UNSUB_OUTCOMES], struct cp_error *err);

#endif
