/*
 * NAME
 *	outbound - portal events to mail: claim, compose, encrypt, send, record
 * SYNOPSIS
 *	#include "outbound.h"
 *
 *	outbound_new(cfg, store, templates, key, keylen, &ob, &err);
 *	outbound_run(ob, cp_now(), &stats, &err);	(all due work, then return)
 *	outbound_free(ob);
 * DESCRIPTION
 *	The outbound path, one batch at a time:
 *
 *	1. intake_claim moves new portal events into delivery state
 *	   (one transaction per up to 500 events, one such chunk before
 *	   each batch is taken, until no new events are left).
 *	2. queue_take_due leases up to smtp.batch_size due records: they are
 *	   "sending", and due again after a lease, so a crash from here on
 *	   retries them (at most one duplicate, with the same Message-ID).
 *	3. For each record: expired (expires_at) → "expired"; patient gone →
 *	   "failed"; opted out of the category (never for security notices)
 *	   → "suppressed"; no recipient (a confidential event for a minor) →
 *	   "suppressed"; inside quiet hours in the patient's time zone and not
 *	   high priority → back to "queued" at the end of quiet hours.
 *	   Any other record counts an attempt (attempts + 1) here, once.
 *	4. Each remaining recipient gets one message, composed by gpg.workers
 *	   threads: a recipient with a usable key gets the full template,
 *	   signed and encrypted (RFC 3156, with the real subject only as a
 *	   protected header inside); anyone else, or a key that is expired,
 *	   revoked or missing, gets the PHI-free notice, rendered from a
 *	   context that holds no event data.
 *	5. One SMTP session sends the batch (relay_send_batch), in a thread
 *	   of its own: meanwhile the main thread records the batches before
 *	   and takes and composes the one after (steps 2-4 and 6 of the
 *	   neighbours overlap this step). Up to smtp.sessions sessions are
 *	   open at a time, each with its own batch.
 *	6. One transaction records every outcome: sent; 4xx or a dead server
 *	   → "deferred" with exponential backoff (retry_base doubling up to
 *	   retry_max, ±20% jitter) until max_age, then "failed"; 5xx →
 *	   failed for that recipient with the code. Final records lose their
 *	   data. The same transaction appends an audit record (audit.h) for
 *	   each message the relay accepted: event, patient, the recipient's
 *	   address hash, the key it was encrypted to, the reply code
 *	   (outbound_recover too, for what the journal says was accepted).
 *
 *	Headers of every message: From, To (address only: a name would be
 *	PHI), Subject (the notice subject: PHI-free), Date, Message-ID
 *	"<THREAD.rN.TAG@message_id_domain>" (stable per event and recipient;
 *	TAG an HMAC of the thread and N, see outbound_message_id),
 *	Auto-Submitted: auto-generated, Reply-To "reply+TOKEN@reply_domain",
 *	MIME-Version, and for reminder and education categories
 *	List-Unsubscribe "<mailto:LOCAL+TOKEN@DOMAIN?subject=unsubscribe>"
 *	built on portal.unsubscribe_address. The envelope sender is
 *	"bounce+TOKEN.rN.TAG@bounce_domain" (VERP; TAG an HMAC of the
 *	thread and N under another label than the Message-ID's), so bounces
 *	map back to the event and recipient and cannot be forged without
 *	the token key, not even for another recipient of the same event.
 * ERRORS
 *	outbound_new: -EINVAL (a token key outside 16..64 bytes, no valid
 *	portal.from_address, no reply_domain or bounce_domain), -ENOMEM,
 *	pgp_new's codes for gpg.clinic_key when it is set (missing, expired,
 *	revoked, not able to sign, gpg-agent unreachable),
 *	config_read_secret's for the SMTP password. A gpg helper that
 *	cannot be started is no error (gpg runs in-process, with a
 *	warning), nor is a sending journal that cannot be opened (a crash
 *	then resends the whole batch).
 *	outbound_run and outbound_step: only the store's errors (claim, take,
 *	record); a relay or gpg failure defers or fails the messages
 *	concerned and is not returned. The batches already in flight are
 *	still recorded after an error.
 *	outbound_recover: the -errno of reading the journal (none is no
 *	error), -ENAMETOOLONG, or the store's error when recording.
 * OWNERSHIP
 *	outbound_new borrows cfg, store and templates for its lifetime; it
 *	copies the token key, reads and keeps the SMTP password, makes one
 *	struct pgp per worker (each with its gpg helper process), and opens
 *	STORE/sending.journal. outbound_free wipes the key and password,
 *	frees the pgp contexts (their helpers are killed with their process
 *	groups) and closes the journal. Delivery records and stats belong to
 *	the caller or the store; nothing outbound hands out needs freeing.
 * THREAD SAFETY
 *	One thread calls outbound_run; it runs its own worker threads and
 *	one sender thread.
 */
#ifndef CAREPOST_OUTBOUND_H
#define CAREPOST_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"
#include "tmplset.h"
#include "util.h"

struct outbound_stats {
	size_t claimed;
	size_t sent;		/* messages accepted by the relay */
	size_t deferred;	/* messages deferred */
	size_t failed;		/* messages or events failed */
	size_t suppressed;
	size_t expired;
	size_t rescheduled;	/* quiet hours */
	size_t held;		/* held for a digest (digest.h) */
	size_t digests;		/* of sent: digests, each carrying several
				   items to one recipient */
	size_t notices;		/* of sent: PHI-free notices */
	size_t encrypted;	/* of sent: signed and encrypted */
	/* one-click unsubscribes the portal handed in (unsub.h) */
	size_t unsubscribed;	/* applied (or already so) */
	size_t unsub_forged;	/* no token carepost made: nothing changed */
	size_t unsub_expired;	/* naming a message no longer stored, or a
				   recipient at another address now */
	size_t auth_refused;	/* messages the relay refused or deferred for
				   the sender's authentication (DKIM, SPF,
				   DMARC: relay_auth_refusal) */
};

struct outbound;

int outbound_new(const struct cp_config *cfg, struct store *store,
		 const struct tmplset *templates, const void *token_key,
		 size_t token_keylen, struct outbound **out,
		 struct cp_error *err);
void outbound_free(struct outbound *ob);

/*
 * outbound_run - claim new events and send everything due at now, batch
 * after batch, then return. Stops early when *stop becomes non-zero
 * (checked between batches; may be NULL). A send failure is not an error
 * (it defers); a store failure is. stats is added to, not reset.
 */
int outbound_run(struct outbound *ob, int64_t now, volatile int *stop,
		 struct outbound_stats *stats, struct cp_error *err);

/*
 * outbound_step - outbound_run with a time budget of about a second: no
 * new batch is started after it (the batches in flight are finished and
 * recorded). Returns 1 when the budget cut the run short (more may be
 * waiting: call again soon), 0 when nothing more is due at now (or *stop
 * was set), or a negative error (as outbound_run). The daemon's event
 * loop calls this so that signals, the watchdog and IMAP are served
 * between rounds.
 */
int outbound_step(struct outbound *ob, int64_t now, volatile int *stop,
		  struct outbound_stats *stats, struct cp_error *err);

/*
 * outbound_recover - at start, before queue_release_leases: read the
 * sending journal (STORE/sending.journal, see outbound.c) that a crash
 * left, and record as sent every message the relay had accepted while its
 * batch was still leased, so that it is not sent again. *recovered counts
 * them. Only the one sending process may call this (carepostd, holding
 * its lock).
 */
int outbound_recover(struct outbound *ob, int64_t now, size_t *recovered,
		     struct cp_error *err);

/*
 * outbound_message_id - the Message-ID of recipient rcpt_index of the
 * delivery record whose "thread" is thread_hex (20 hex digits), sent
 * with the token key key: "<THREAD.rN.TAG@domain>", TAG the recipient
 * tag of TOKEN_LABEL_MESSAGE_ID (token.h). The one function that makes
 * it: for sending, for recording a send after a crash, and for tests.
 * Returns 0, -EINVAL (not a thread, a short key), -ENAMETOOLONG (out is
 * too small) or -EIO (libgcrypt).
 */
int outbound_message_id(const void *key, size_t keylen, const char *thread_hex,
			size_t rcpt_index, const char *domain, char *out,
			size_t outlen);

#endif
