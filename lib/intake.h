/*
 * NAME
 *	intake - the inbound round: a batch from the IMAP mailbox, decided,
 *	committed and moved
 * SYNOPSIS
 *	#include "intake.h"
 *
 *	struct intake *in;
 *	struct intake_stats st = { 0 };
 *
 *	intake_new(cfg, store, ib, &in, &err);
 *	r = intake_step(in, &stop, progress, userdata, &st, &err);
 *	if (r < 0)
 *		... log err.text; step again after intake_backoff(in) s ...
 *	else if (r > 0)
 *		... more may be waiting: step again soon ...
 *	else if ((r = intake_idle_begin(in, &err)) == 0)
 *		... watch intake_fd(in), at most INTAKE_IDLE_RENEW s; then
 *		    intake_idle_end(in, &err) and step again ...
 *	else if (r == -ENOTSUP)
 *		... no IDLE: step again after [imap] poll_interval ...
 *	intake_free(in);
 * DESCRIPTION
 *	intake_step is to the inbound flow what outbound_step is to the
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
 *	   inbound_batch_begin and inbound_batch_commit, the decryption of
 *	   the next one started ahead (inbound_decrypt_ahead) while this one
 *	   is filed. A message too large to fetch is quarantined unread (the
 *	   log says so, with its UID and size). After each message
 *	   progress(userdata) is called (carepostd tells the watchdog: one
 *	   reply may cost gpg three [gpg] time_limits). No further message
 *	   is taken once *stop is set (stop may be NULL) or once the round
 *	   has run INTAKE_BUDGET_MS: the rest waits for the next round, so
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
 *	intake_idle_begin, then intake_fd is watched for input, then
 *	intake_idle_end. Servers end an IDLE after 30 minutes: the caller
 *	ends and begins it again after at most INTAKE_IDLE_RENEW seconds.
 *	A server without IDLE is polled: intake_step every [imap]
 *	poll_interval.
 *
 *	Nothing here logs message content: the lines name UIDs, sizes,
 *	the host and the mailbox.
 * ERRORS
 *	intake_new: -ENOMEM.
 *	intake_step: 1 when more may be waiting (the batch was full, cut
 *	short by *stop or the budget, or the server's search answer is not
 *	used up), 0 when the mailbox is drained, else a negative code with
 *	err->text "IMAP STEP: reason", STEP one of password, connect,
 *	fetch, batch, move, ingest, IDLE: config_read_secret's codes,
 *	imapc's (imapc.h), -ENOMEM, or inbound_ingest's and
 *	inbound_batch_commit's (the store, gpg). The session is closed
 *	then; the next step connects again. stats is added to, not reset,
 *	and counts what was committed also when the step fails.
 *	intake_idle_begin: 0 (waiting: watch intake_fd), 1 (news came in
 *	already: end it at once), -ENOTSUP (the server does not offer IDLE:
 *	nothing was sent, the session stays), -ENOTCONN (no session), or a
 *	failure as intake_step's (the session is closed).
 *	intake_idle_end: 1 when new mail arrived, 0 when not or when no
 *	IDLE was running, or a failure as intake_step's.
 *	intake_backoff: the seconds to wait before the next step after a
 *	failure, imapc_backoff of the failures in a row (each call counts
 *	one; a connect that succeeds starts over).
 * OWNERSHIP
 *	intake_new borrows cfg, store and ib for the life of the struct
 *	(on a reload carepostd makes a new one with the new cfg and ib). The session,
 *	the fetched messages and the password (read from [imap]
 *	password_file at each connect, wiped once used) are its own;
 *	intake_free and intake_disconnect close the session (LOGOUT).
 *	stats belongs to the caller.
 * THREAD SAFETY
 *	One thread uses a struct intake at a time (carepostd's main loop).
 *	The process must ignore SIGPIPE (imapc.h).
 */
#ifndef CAREPOST_INTAKE_H
#define CAREPOST_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "inbound.h"
#include "store.h"
#include "util.h"

/* A round takes no further message after this long. */
#define INTAKE_BUDGET_MS	(15 * 1000)
/* Seconds an IDLE may last before it is renewed (servers end it at 30 min). */
#define INTAKE_IDLE_RENEW	(25 * 60)

/* What the rounds committed, by class (carepostd's metrics). */
struct intake_stats {
	size_t decided;		/* messages decided and committed */
	size_t replies;		/* replies, forms not included */
	size_t forms;		/* replies on a form_request thread */
	size_t unsubscribes;
	size_t reports;		/* delivery reports (DSN) */
	size_t autoreplies;
	size_t unknown;
	size_t forged;		/* of reports: naming no message carepost sent */
	size_t quarantined;	/* quarantined now (not duplicates), also
				   those too large to fetch */
	size_t queued;		/* messages that queued outbound mail (an
				   acknowledgement, a staff alert, a form
				   request): worth a send round now */
};

struct intake;

/* intake_progress_fn - called after each message a round decides. */
typedef void (*intake_progress_fn)(void *userdata);

int intake_new(const struct cp_config *cfg, struct store *store,
	       struct inbound *ib, struct intake **out, struct cp_error *err);
void intake_free(struct intake *in);

/*
 * intake_step - one round (see DESCRIPTION): connect when needed, fetch
 * a batch, decide, commit and move it. An IDLE still running is ended
 * first (as intake_idle_end). Returns 1, 0 or an error (see ERRORS).
 */
int intake_step(struct intake *in, volatile int *stop,
		intake_progress_fn progress, void *userdata,
		struct intake_stats *stats, struct cp_error *err);

/* intake_backoff - seconds before the next step after a failure. */
int intake_backoff(struct intake *in);

/*
 * intake_idle_begin / intake_fd / intake_idle_end - wait for new mail in
 * the caller's event loop: begin sends IDLE; while it runs, intake_fd is
 * the socket to watch (-1 when no IDLE runs); end sends DONE. No step
 * between begin and end (intake_step ends the IDLE itself).
 */
int intake_idle_begin(struct intake *in, struct cp_error *err);
int intake_fd(const struct intake *in);
int intake_idle_end(struct intake *in, struct cp_error *err);

/*
 * intake_disconnect - LOGOUT and close the session (ending an IDLE), if
 * there is one; the next step connects again. For a reload, a stop, the
 * end of carepostd --once.
 */
void intake_disconnect(struct intake *in);

#endif
