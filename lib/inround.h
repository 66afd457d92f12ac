/*
 * NAME
 *	inround - the inbound round: a batch from the IMAP mailbox, decided,
 *	committed and moved
 * SYNOPSIS
 *	#include "inround.h"
 *
 *	struct inround *in;
 *	struct inround_stats st = { 0 };
 *
 *	inround_new(cfg, store, ib, &in, &err);
 *	r = inbound_step(in, &stop, progress, userdata, &st, &err);
 *	if (r < 0)
 *		... log err.text; step again after inround_backoff(in) s ...
 *	else if (r > 0)
 *		... more may be waiting: step again soon ...
 *	else if ((r = inround_idle_begin(in, &err)) == 0)
 *		... watch inround_fd(in), at most INROUND_IDLE_RENEW s; then
 *		    inround_idle_end(in, &err) and step again ...
 *	else if (r == -ENOTSUP)
 *		... no IDLE: step again after [imap] poll_interval ...
 *	inround_free(in);
 * DESCRIPTION
 *	inbound_step is to the inbound flow what outbound_step is to the
 *	outbound one: one round of bounded work, which carepostd's event
 *	loop schedules and carepostd --once repeats until the mailbox is
 *	drained. One round:
 *
 *	1. Connects when there is no session (imapc_connect with [imap]
 *	   host, port, tls, user, password_file, mailbox, processed_folder
 *	   and quarantine_folder; 30 s per network step), then reads the
 *	   mailbox's "imap" record (store.h): fetching goes on from its
 *	   last_uid + 1 while UIDVALIDITY is the one recorded, else from
 *	   UID 1 with a new record (and a notice: what was filed before is
 *	   recognised by its seen record and only moved).
 *	2. Fetches a batch of up to [imap] batch_size messages (200 when
 *	   not set) from there.
 *	3. Decides each message in turn with inbound_ingest, between
 *	   inbound_batch_begin and inbound_batch_commit, the parse (and,
 *	   when encrypted, the decryption) of the next one started ahead
 *	   (inbound_ahead) while this one is filed. A message too large to fetch is quarantined unread (the
 *	   log says so, with its UID and size). After each message
 *	   progress(userdata) is called (carepostd tells the watchdog: one
 *	   reply may cost gpg three [gpg] time_limits; inbound_progress
 *	   gives the parse helper's tries a callback of their own). No
 *	   further message is taken once *stop is set (stop may be NULL) or once the round
 *	   has run INROUND_BUDGET_MS: the rest waits for the next round, so
 *	   that the loop turns and sending gets its turn.
 *	4. Commits the decisions in one store transaction.
 *	5. Moves the decided messages, one UID MOVE to the processed
 *	   folder and one to the quarantine folder (a folder not set: its
 *	   messages stay in the mailbox), then remembers the last UID.
 *	6. Writes that UID to the "imap" record when the round ends the
 *	   drain (returns 0) or fails, not after every batch: a stale UID
 *	   costs only a search that starts lower, since what was moved is
 *	   gone from the mailbox and what was filed is recognised.
 *
 *	A failure never loses a message: it stays in the mailbox. What was
 *	decided before an ingest failure is committed and moved first; when
 *	the commit fails nothing of the batch is written, and all of it
 *	stays.
 *
 *	New mail is waited for in the caller's event loop (IDLE, RFC 2177):
 *	inround_idle_begin, then inround_fd is watched for input, then
 *	inround_idle_end. Servers end an IDLE after 30 minutes: the caller
 *	ends and begins it again after at most INROUND_IDLE_RENEW seconds.
 *	A server without IDLE is polled: inbound_step every [imap]
 *	poll_interval.
 *
 *	Nothing here logs message content: the lines name UIDs, sizes,
 *	the host and the mailbox.
 * ERRORS
 *	inround_new: -ENOMEM.
 *	inbound_step: 1 when more may be waiting (the batch was full, cut
 *	short by *stop or the budget, or the server's search answer is not
 *	used up), 0 when the mailbox is drained, else a negative code with
 *	err->text "IMAP STEP: reason", STEP one of password, connect,
 *	fetch, batch, move, ingest, IDLE: config_read_secret's codes,
 *	imapc's (imapc.h), -ENOMEM, or inbound_ingest's and
 *	inbound_batch_commit's (the store, gpg). The session is closed
 *	then; the next step connects again. stats is added to, not reset,
 *	and counts what was committed also when the step fails.
 *	inround_idle_begin: 0 (waiting: watch inround_fd), 1 (news came in
 *	already: end it at once), -ENOTSUP (the server does not offer IDLE:
 *	nothing was sent, the session stays), -ENOTCONN (no session), or a
 *	failure as inbound_step's (the session is closed).
 *	inround_idle_end: 1 when new mail arrived, 0 when not or when no
 *	IDLE was running, or a failure as inbound_step's.
 *	inround_backoff: the seconds to wait before the next step after a
 *	failure, imapc_backoff of the failures in a row (each call counts
 *	one; a connect that succeeds starts over).
 * OWNERSHIP
 *	inround_new borrows cfg, store and ib for the life of the struct
 *	(on a reload carepostd makes a new one with the new cfg and ib). The session,
 *	the fetched messages and the password (read from [imap]
 *	password_file at each connect, wiped once used) are its own;
 *	inround_free and inround_disconnect close the session (LOGOUT).
 *	stats belongs to the caller.
 * THREAD SAFETY
 *	One thread uses a struct inround at a time (carepostd's main loop).
 *	The process must ignore SIGPIPE (imapc.h).
 */
#ifndef CAREPOST_INROUND_H
#define CAREPOST_INROUND_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "inbound.h"
#include "store.h"
#include "util.h"

/* A round takes no further message after this long. */
#define INROUND_BUDGET_MS	(15 * 1000)
/* Seconds an IDLE may last before it is renewed (servers end it at 30 min). */
#define INROUND_IDLE_RENEW	(25 * 60)

/* What the rounds committed, by class (carepostd's metrics); a message
 * fetched again after its decision counts as a duplicate only. */
struct inround_stats {
	size_t decided;		/* messages decided and committed */
	size_t replies;		/* replies, forms not included */
	size_t forms;		/* replies on a form_request thread */
	size_t unsubscribes;
	size_t reports;		/* delivery reports (DSN) */
	size_t autoreplies;
	size_t complaints;	/* feedback reports (ARF) */
	size_t feedback[METRICS__FEEDBACK];	/* of those: by outcome */
	size_t unknown;
	size_t forged;		/* of delivery reports: naming no message
				   carepost sent (forged feedback reports
				   are feedback[METRICS_FB_FORGED]) */
	size_t auth_refused;	/* delivery reports refusing carepost's mail
				   for its authentication (inbound_result) */
	size_t parser_lost;	/* quarantined: the parse helper was lost
				   twice on them (inbound_result.parser_lost) */
	size_t quarantined;	/* quarantined now (not duplicates), also
				   those too large to fetch */
	size_t duplicates;	/* seen before: not counted by class */
	size_t queued;		/* messages that queued outbound mail (an
				   acknowledgement, a staff alert, a form
				   request): worth a send round now */
};

struct inround;

/* inround_progress_fn - called after each message a round decides. */
typedef void (*inround_progress_fn)(void *userdata);

int inround_new(const struct cp_config *cfg, struct store *store,
	       struct inbound *ib, struct inround **out, struct cp_error *err);
void inround_free(struct inround *in);

/*
 * inbound_step - one round (see DESCRIPTION): connect when needed, fetch
 * a batch, decide, commit and move it. An IDLE still running is ended
 * first (as inround_idle_end). Returns 1, 0 or an error (see ERRORS).
 */
int inbound_step(struct inround *in, volatile int *stop,
		inround_progress_fn progress, void *userdata,
		struct inround_stats *stats, struct cp_error *err);

/* inround_backoff - seconds before the next step after a failure. */
int inround_backoff(struct inround *in);

/*
 * inround_idle_begin / inround_fd / inround_idle_end - wait for new mail in
 * the caller's event loop: begin sends IDLE; while it runs, inround_fd is
 * the socket to watch (-1 when no IDLE runs); end sends DONE. No step
 * between begin and end (inbound_step ends the IDLE itself).
 */
int inround_idle_begin(struct inround *in, struct cp_error *err);
int inround_fd(const struct inround *in);
int inround_idle_end(struct inround *in, struct cp_error *err);

/*
 * inround_disconnect - LOGOUT and close the session (ending an IDLE), if
 * there is one; the next step connects again. For a reload, a stop, the
 * end of carepostd --once.
 */
void inround_disconnect(struct inround *in);

#endif
