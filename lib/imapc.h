/*
 * NAME
 *	imapc - the IMAP client of the inbound side (libetpan)
 * SYNOPSIS
 *	#include "imapc.h"
 *
 *	struct imapc *c;
 *	if (imapc_connect(&opts, &c, &err) < 0)
 *		... sleep(imapc_backoff(attempt++)), retry ...
 *	if (imapc_uidvalidity(c) != saved_uidvalidity)
 *		... start over from UID 1 ...
 *	for (;;) {
 *		imapc_fetch(c, next_uid, batch_size, &msgs, &n, &err);
 *		for each msgs[i]: file it, commit; then, for the batch,
 *		imapc_move_uids(c, filed_uids, n_filed, opts.processed_folder, &err);
 *		imapc_msgs_free(msgs, n);
 *		if (n == 0 && imapc_has(c, "IDLE")) {
 *			r = imapc_idle_begin(c, &err);	(1: lines came in)
 *			if (r == 0)
 *				... poll(imapc_fd(c)), at most 25 minutes ...
 *			if (r >= 0)
 *				imapc_idle_end(c, &err);
 *		} else if (n == 0)
 *			... wait poll_interval ...
 *	}
 *	imapc_close(c);
 * DESCRIPTION
 *	(The prefix is imapc_, not imap_ or mail*, because libetpan owns
 *	mailimap_* and imap_* clashes with its driver layer.)
 *
 *	imapc_connect opens one session: TCP, then TLS as opts->tls says
 *	(TLS_IMPLICIT: TLS from the first byte, port 993 by default;
 *	TLS_REQUIRED: STARTTLS, which the server must accept, port 143 by
 *	default; TLS_OFF: clear text, allowed only when the host is a
 *	loopback address (127.0.0.0/8, ::1) or "localhost", refused with
 *	-EPERM otherwise). The server's certificate chain is checked against
 *	opts->ca_file (or the system trust store) and the host name (or IP
 *	address) before the password is sent; libetpan's GnuTLS build checks
 *	nothing itself, so this module does it with OpenSSL on the chain the
 *	handshake presented. Then LOGIN, CAPABILITY (again, after login and
 *	after STARTTLS), the processed and quarantine folders are created
 *	when missing (a LIST first, so an existing folder is no error, and a
 *	folder created by someone else between LIST and CREATE neither), and
 *	the mailbox is SELECTed (read-write).
 *
 *	Folder names in opts and for imapc_move_uids use '/' between levels
 *	("carepost/processed"); they are translated to the server's
 *	hierarchy delimiter (LIST "" "" tells it; Dovecot's default is '.').
 *	Names must be printable ASCII without '"', '\\', '%', '*' (no
 *	modified UTF-7 here).
 *
 *	imapc_fetch returns up to max messages whose UID is >= first_uid, in
 *	UID order: UID SEARCH UID first_uid:* (the answer is filtered, since
 *	"N:*" always matches the highest UID even when it is below N; it is
 *	kept, and the next calls take their UIDs from it until it is used
 *	up: one search per drain, not per batch), then
 *	UID FETCH (UID RFC822.SIZE), then UID FETCH (BODY.PEEK[]<0.max+1>)
 *	for those not larger than opts->max_size. A message that is larger
 *	(by RFC822.SIZE, or by what the partial fetch brought back when the
 *	server understated it) is reported with raw == NULL and its size, so
 *	that the caller can quarantine it.
 *	A batch also stops growing once its bodies reach max_size bytes in
 *	total (it always holds at least one message), which bounds memory to
 *	about twice max_size. BODY.PEEK leaves \Seen alone. The next batch
 *	starts at the last UID returned + 1. imapc_pending says whether the
 *	kept answer still holds UIDs (more to fetch, though this batch was
 *	short).
 *
 *	imapc_move_uids moves messages by UID, in one command for the set:
 *	UID MOVE when the server offers MOVE (RFC 6851); otherwise UID COPY,
 *	UID STORE +FLAGS.SILENT (\Deleted), then UID EXPUNGE of the set when
 *	UIDPLUS is offered, or a plain EXPUNGE (which also removes anything
 *	else flagged \Deleted). A crash between COPY and EXPUNGE leaves the
 *	message in both folders, and it is fetched again: the caller must
 *	recognise a message it already filed (inbound.h does, by its seen
 *	records: the Message-ID, or the raw bytes) and only move it again,
 *	which leaves a second copy in the folder.
 *
 *	imapc_idle_begin and imapc_idle_end wait for new mail in an event
 *	loop (RFC 2177): begin sends IDLE, the caller watches imapc_fd, and
 *	end sends DONE and says whether an EXISTS, RECENT or EXPUNGE arrived
 *	meanwhile; a keep-alive line ("* OK Still here") wakes the socket
 *	but is no news. A server without IDLE is polled with imapc_fetch,
 *	which sends a NOOP before each fresh UID SEARCH: Dovecot brings a
 *	session's view of the mailbox up to date after a command, not before,
 *	so without it mail that came since the last command would show a
 *	poll late.
 *
 *	imapc_backoff gives the delay before reconnect attempt number
 *	attempt (0, 1, 2, ...): 2^attempt seconds capped at 300, with
 *	+-25% jitter, never below 1. Reconnecting is the caller's job.
 *
 *	Nothing here logs message content: log lines and error texts name
 *	the step, UIDs, folder names, libetpan's error and the server's
 *	response text (a status line, which carries no message data).
 * ERRORS
 *	0 on success, or a negative code with err set:
 *	-EINVAL	bad options or arguments (nothing was sent)
 *	-EPERM	refused by policy: clear text to a non-loopback host, a
 *		server certificate not trusted or not for the host
 *	-ECONNREFUSED  the TCP connection could not be made
 *	-EPROTO	TLS handshake failed, STARTTLS refused, or the server
 *		answered NO/BAD to a command (its text is in err)
 *	-EACCES	LOGIN rejected
 *	-ENOTSUP imapc_idle_begin: the server does not offer IDLE
 *	-EIO	the connection broke or the server's answer could not be
 *		parsed; the session is unusable
 *	-ENOMEM	out of memory
 *	After any error but -ENOTSUP and -EINVAL the caller should
 *	imapc_close and reconnect (with imapc_backoff) rather than go on.
 * OWNERSHIP
 *	imapc_connect hands a session the caller ends with imapc_close.
 *	opts and its strings are borrowed for the call; the password is
 *	not kept after imapc_connect returns.
 *	imapc_fetch hands an array the caller frees with imapc_msgs_free
 *	(each raw is NUL-terminated for convenience; len excludes it).
 * THREAD SAFETY
 *	A session may be used by one thread at a time; separate sessions are
 *	independent. libetpan writes with send(2)/GnuTLS without
 *	MSG_NOSIGNAL: the process must ignore SIGPIPE (carepostd does).
 */
#ifndef CAREPOST_IMAPC_H
#define CAREPOST_IMAPC_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util.h"

#define IMAPC_DEFAULT_MAX_SIZE	(25u * 1024 * 1024)
#define IMAPC_BACKOFF_MAX	300

struct imapc;

struct imapc_opts {
	const char *host;
	int port;			/* 0: 993 (implicit TLS) or 143 */
	enum tls_mode tls;		/* TLS_IMPLICIT, TLS_REQUIRED, TLS_OFF */
	const char *ca_file;		/* NULL: the system trust store */
	const char *user;
	const char *password;
	const char *mailbox;		/* NULL: "INBOX" */
	const char *processed_folder;	/* created if missing; NULL: none */
	const char *quarantine_folder;	/* created if missing; NULL: none */
	int timeout;			/* seconds per network step, 0: 60 */
	size_t max_size;		/* larger bodies are not fetched; 0: 25 MiB */
};

struct imapc_msg {
	uint32_t uid;
	uint32_t size;			/* RFC822.SIZE as the server reported */
	char *raw;			/* the message; NULL when size > max_size */
	size_t len;
};

int imapc_connect(const struct imapc_opts *opts, struct imapc **out,
		  struct cp_error *err);

/* imapc_uidvalidity - UIDVALIDITY of the selected mailbox (never 0). */
uint32_t imapc_uidvalidity(const struct imapc *c);

/* imapc_has - 1 if the server offers capability name (e.g. "MOVE"). */
int imapc_has(const struct imapc *c, const char *name);
/* imapc_pending - 1 while the last UID SEARCH's answer is not used up. */
int imapc_pending(const struct imapc *c);

int imapc_fetch(struct imapc *c, uint32_t first_uid, size_t max,
		struct imapc_msg **msgs, size_t *n, struct cp_error *err);

void imapc_msgs_free(struct imapc_msg *msgs, size_t n);

/*
 * imapc_move_uids - move n messages (UIDs ascending) to folder in one
 * command: UID MOVE of the UID set (consecutive UIDs as ranges), or the
 * COPY/STORE/EXPUNGE fallback on the set (see DESCRIPTION). UIDs that
 * are no longer in the mailbox (moved already) are no error: a UID set
 * matches what exists. n == 0 sends nothing. -EINVAL for a UID 0 or a
 * bad folder name.
 */
int imapc_move_uids(struct imapc *c, const uint32_t *uids, size_t n,
		    const char *folder, struct cp_error *err);

/* imapc_fd - the connection's socket, for poll(2) in an event loop. */
int imapc_fd(const struct imapc *c);

/*
 * imapc_idle_begin / imapc_idle_end - wait for new mail in an event
 * loop: begin sends IDLE (-ENOTSUP when the server does not offer it)
 * and returns 1 when lines are already buffered (end it at once), else
 * 0: watch imapc_fd for input, then call end, which sends DONE and
 * returns 1 when EXISTS, RECENT or EXPUNGE arrived, 0 for a keep-alive.
 * Servers end an IDLE after 30 minutes: end and begin again well before.
 * No other command may be sent in between; imapc_close ends the IDLE.
 */
int imapc_idle_begin(struct imapc *c, struct cp_error *err);
int imapc_idle_end(struct imapc *c, struct cp_error *err);

/* imapc_close - LOGOUT (best effort), free everything; c may be NULL. */
void imapc_close(struct imapc *c);

/* imapc_backoff - seconds to wait before reconnect attempt attempt. */
int imapc_backoff(int attempt);

#endif
