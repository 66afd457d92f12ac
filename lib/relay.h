/*
 * NAME
 *	relay - send a batch of messages over one SMTP session (libesmtp)
 * SYNOPSIS
 *	#include "relay.h"
 *
 *	struct relay_msg msgs[n] = { { .reverse_path, .recipient, .data, .len } };
 *	r = relay_send_batch(&settings, msgs, n, &err);
 * DESCRIPTION
 *	(The prefix is relay_, not smtp_, because libesmtp owns smtp_*.)
 *
 *	relay_send_batch opens one session to settings->server ("host:port"),
 *	with STARTTLS off, opportunistic or required, and AUTH (PLAIN/LOGIN
 *	through libesmtp's auth client) when a user is set, then sends every
 *	message in order: MAIL FROM reverse_path (the VERP sender), RCPT TO
 *	recipient, DATA with the message exactly as given (CRLF line
 *	endings; libesmtp dot-stuffs). libesmtp is told not to add or alter
 *	Message-ID, Date, From or other headers.
 *
 *	Each message's outcome is set from the reply codes:
 *	  RELAY_SENT    2xx after DATA
 *	  RELAY_DEFER   any 4xx (MAIL, RCPT or DATA), or the session broke
 *	                before this message's DATA was acknowledged; also
 *	                every message not accepted when a configured AUTH
 *	                failed or was not done ("AUTH failed")
 *	  RELAY_FAIL    any 5xx (MAIL, RCPT or DATA); or, with code 0,
 *	                "rejected locally: ...": a reverse path or recipient
 *	                that is not printable ASCII without '<' and '>', or a
 *	                message libesmtp would alter (no CRLF at the end, no
 *	                empty line after the headers, Date, From or
 *	                Message-Id missing or repeated, another header it
 *	                keeps once repeated, a Return-Path or
 *	                Original-Recipient header): such a message is never
 *	                sent
 *	with code and a one-line PHI-free text (the server's reply text is
 *	not copied; it can echo addresses) such as "550 at RCPT".
 *
 *	Returns 0 when the session ran (outcomes tell the rest; also when
 *	every message was rejected locally, and no session was opened), or
 *	a negative code with err set when no message could be attempted
 *	(connect refused, TLS required but not offered, AUTH failed): then
 *	every outcome is RELAY_DEFER, those rejected locally included.
 * ERRORS
 *	-EINVAL	no settings or server, NULL msgs with n > 0, or libesmtp
 *		refused a setting
 *	-EPROTO	STARTTLS required but not offered, a server certificate not
 *		trusted or not for the host, an unacceptable TLS peer, the
 *		session refused (a 4xx or 5xx reply before any message) or
 *		ended before any message
 *	-EACCES	AUTH failed, or AUTH configured and not offered
 *	-EHOSTUNREACH	the server's name did not resolve
 *	-ENOENT	ca_file cannot be loaded; -EIO the system CA paths cannot
 *	-ENOMEM	out of memory
 *	others	when no server could be reached, the negative system error
 *		libesmtp reports (a refused connection, ...)
 * OWNERSHIP
 *	Messages and settings are borrowed for the duration of the call;
 *	the results are written into each struct relay_msg. Nothing is kept
 *	after it returns.
 * THREAD SAFETY
 *	Reentrant: concurrent calls use separate sessions.
 */
#ifndef CAREPOST_RELAY_H
#define CAREPOST_RELAY_H

#include <stddef.h>

#include "config.h"
#include "util.h"

enum relay_outcome { RELAY_PENDING = 0, RELAY_SENT, RELAY_DEFER, RELAY_FAIL };

struct relay_msg;

/*
 * relay_auth_refusal - 1 when an SMTP reply's text refuses a message for
 * its sender's authentication (DKIM, SPF, DMARC): the enhanced status
 * codes Gmail, Yahoo and Outlook give for it (x.7.23 to x.7.27, x.7.30,
 * x.7.32, x.7.40, 5.7.509, x.7.515; Yahoo's 5.7.9), or any x.7.x whose
 * text names DKIM, SPF, DMARC or authentication (where the text is the
 * server's: relay_msg keeps the code alone, "550 5.7.26 at RCPT"). The
 * admin's setup is broken then, not the recipient's address. A refusal
 * that comes back later in a delivery report is read by inbound (the
 * report's status and diagnostic, inbound.h step 7).
 */
int relay_auth_refusal(const char *text);

struct relay_settings {
	const char *server;		/* "host:port" */
	const char *helo;		/* NULL: libesmtp's default */
	enum tls_mode starttls;		/* TLS_OFF, TLS_OPPORTUNISTIC, TLS_REQUIRED */
	const char *ca_file;		/* NULL: system default */
	const char *user;		/* NULL: no AUTH */
	const char *password;
	int timeout;			/* seconds, 0: 60 */
	/*
	 * accepted - called from the sending thread as soon as the server
	 * answers 2xx to a message's DATA, before the session ends (NULL:
	 * not called). For a progress journal that a crash mid-session
	 * leaves behind: see outbound.h.
	 */
	void (*accepted)(void *arg, const struct relay_msg *m);
	void *accepted_arg;
};

struct relay_msg {
	const void *user;		/* the caller's, handed to accepted */
	const char *reverse_path;
	const char *recipient;
	const char *data;
	size_t len;
	/* results */
	enum relay_outcome outcome;
	int code;			/* SMTP reply code, 0 if none */
	char text[96];
};

int relay_send_batch(const struct relay_settings *settings,
		     struct relay_msg *msgs, size_t n, struct cp_error *err);

#endif
