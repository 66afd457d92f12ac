/*
 * NAME
 *	relay - send a batch of messages over one SMTP session (libesmtp)
 * DESCRIPTION
 *	See relay.h. What libesmtp 1.1.0 does, and what this file does about
 *	it, read from its source:
 *
 *	Headers. libesmtp reads the header block of every message and
 *	(i) adds Date, From and Message-Id when they are missing, (ii) drops
 *	Return-Path and Original-Recipient, (iii) drops a second Date, From,
 *	Message-Id, Sender, To, Cc, Bcc, Reply-To or
 *	Disposition-Notification-To. Every other header, and every header it
 *	keeps, goes out byte for byte (folded lines included). Its header
 *	options cannot switch (i) off: Hdr_PROHIBIT is refused for Date and
 *	From and, set on Message-Id, deletes ours. So relay_send_batch
 *	checks each message before the session instead (relay_check_message):
 *	a message that libesmtp would alter is not sent but failed locally
 *	(RELAY_FAIL, code 0, "rejected locally: ..."); one that passes goes
 *	out exactly as given. The same check wants CRLF at the end (else
 *	libesmtp appends one) and an empty line after the headers.
 *
 *	Envelope. libesmtp writes "MAIL FROM:<%s>" and "RCPT TO:<%s>" as
 *	given, so an address with CR, LF, space or angle brackets would
 *	inject SMTP commands: such addresses are refused locally, as are
 *	non-ASCII ones (SMTPUTF8 is not negotiated).
 *
 *	Message data is fed through our own callback with the length
 *	given: smtp_set_message_str would strlen() it.
 *
 *	Outcomes. After smtp_start_session the reverse-path, recipient and
 *	message (DATA) statuses of each message are read in protocol order;
 *	a zero code means the step never got a reply (the session ended
 *	first). When the server drops the connection libesmtp still returns
 *	success from smtp_start_session, so a message whose DATA got no
 *	final reply is RELAY_DEFER with code 0.
 *
 *	Session failures. smtp_start_session returns 0 only when no server
 *	could be reached or the greeting was refused. "STARTTLS required
 *	but not offered", a rejected server certificate and a failed AUTH
 *	do not make it fail: the first two are learnt from the event
 *	callback, AUTH from the protocol monitor (a 235 reply after our AUTH
 *	command). libesmtp goes on to MAIL after a failed AUTH; any message
 *	not accepted then is deferred, not failed, since the server's
 *	refusal was about us, not the message.
 *
 *	SIGPIPE. libesmtp writes with write(2); a server that drops the
 *	connection would kill the process. SIGPIPE is blocked in the calling
 *	thread for the session and a SIGPIPE raised meanwhile is consumed.
 *
 *	TLS. With starttls on, an SSL_CTX of our own (TLS 1.2, see
 *	relay_tls_ctx for why not 1.3; ca_file or the system default paths)
 *	is handed to libesmtp, which checks the verify result and the host
 *	name after the handshake; the event callback leaves every "accept
 *	anyway?" question answered no.
 *
 *	TCP_NODELAY. libesmtp writes DATA through a 2 KiB buffer and never
 *	sets TCP_NODELAY, so the last write of any larger message (its tail
 *	and the final dot) is held by Nagle's algorithm until the server
 *	acknowledges the previous segment, and a server waiting for the dot
 *	delays that ACK: 40 ms per message on Linux, whatever the link.
 *	libesmtp does not hand out its socket, so on SMTP_EV_CONNECT (sent
 *	right after connect()) relay_nodelay finds it in /proc/self/fd (a
 *	TCP socket connected to the server's port without TCP_NODELAY) and
 *	sets the option. Only speed depends on it: without /proc the
 *	session runs as before.
 *
 *	Limits of libesmtp: connect() has no timeout of its own (the kernel's
 *	applies); "host:port" cannot be an IPv6 literal.
 */
#include "relay.h"

#include <ctype.h>

#include <auth-client.h>
#include <openssl/ssl.h>
#include <libesmtp.h>

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define RELAY_DEFAULT_TIMEOUT	60
#define RELAY_MAX_ADDRESS	256	/* RFC 5321 path limit */
#define RELAY_CHUNK		(1 << 20)

enum relay_auth_state { AUTH_NONE, AUTH_PENDING, AUTH_OK, AUTH_FAILED };

/* What one message needs during the session. */
struct relay_item {
	struct relay_msg *msg;
	smtp_message_t message;
	smtp_recipient_t recipient;
	size_t offset;			/* read position for the callback */
};

/* Per-call state shared with libesmtp's callbacks. */
struct relay_run {
	const struct relay_settings *settings;
	int port;			/* the server's, for relay_nodelay */
	/* from the event callback */
	int starttls_missing;
	int starttls_ok;
	int cert_invalid;
	long cert_verify_result;
	int cert_wrong_host;
	int cert_missing;
	int cipher_weak;
	/* from the protocol monitor */
	enum relay_auth_state auth;
	int auth_code;
	int last_code;
	int rd_bol, rd_active, rd_digits, rd_code;
};

static pthread_once_t relay_auth_once = PTHREAD_ONCE_INIT;

static void
relay_auth_init(void)
{
	auth_client_init();
}

/* --- checks before the session -------------------------------------- */

static int
relay_address_ok(const char *addr, int allow_empty)
{
	size_t i, len;

	if (addr == NULL)
		return allow_empty;
	len = strnlen(addr, RELAY_MAX_ADDRESS + 1);
	if (len > RELAY_MAX_ADDRESS)
		return 0;
	if (len == 0)
		return allow_empty;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];

		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
			return 0;
	}
	return 1;
}

/*
 * The headers libesmtp tracks: it adds the first three when missing,
 * strips the "never" ones and keeps only the first of the others.
 */
enum { HDR_DATE, HDR_FROM, HDR_MESSAGE_ID, HDR_SENDER, HDR_TO, HDR_CC,
       HDR_BCC, HDR_REPLY_TO, HDR_DNT, HDR_RETURN_PATH, HDR_ORIG_RCPT,
       HDR_COUNT };

static const struct {
	const char *name;
	int min, max;
} relay_headers[HDR_COUNT] = {
	[HDR_DATE] = { "Date", 1, 1 },
	[HDR_FROM] = { "From", 1, 1 },
	[HDR_MESSAGE_ID] = { "Message-Id", 1, 1 },
	[HDR_SENDER] = { "Sender", 0, 1 },
	[HDR_TO] = { "To", 0, 1 },
	[HDR_CC] = { "Cc", 0, 1 },
	[HDR_BCC] = { "Bcc", 0, 1 },
	[HDR_REPLY_TO] = { "Reply-To", 0, 1 },
	[HDR_DNT] = { "Disposition-Notification-To", 0, 1 },
	[HDR_RETURN_PATH] = { "Return-Path", 0, 0 },
	[HDR_ORIG_RCPT] = { "Original-Recipient", 0, 0 },
};

/*
 * relay_check_message - NULL when libesmtp will send data unchanged,
 * else a PHI-free reason (written into why).
 */
static const char *
relay_check_message(const char *data, size_t len, char *why, size_t whylen)
{
	int count[HDR_COUNT] = { 0 };
	size_t pos = 0;
	int h, line = 0;

	if (data == NULL || len == 0)
		return "empty message";
	if (len > (size_t)INT32_MAX)
		return "message too large";
	if (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n')
		return "message does not end with CRLF";

	for (;;) {
		const char *start = data + pos, *eol, *colon;
		size_t linelen;

		eol = memmem(start, len - pos, "\r\n", 2);
		if (eol == NULL) {
			snprintf(why, whylen, "no empty line after the "
				 "headers (line %d)", line + 1);
			return why;
		}
		line++;
		linelen = (size_t)(eol - start);
		pos += linelen + 2;
		if (linelen == 0)
			break;			/* end of the header block */
		if (start[0] == ' ' || start[0] == '\t')
			continue;		/* folded continuation */
		/* libesmtp matches the bytes before ':' exactly (no trim). */
		colon = memchr(start, ':', linelen);
		if (colon == NULL)
			continue;
		for (h = 0; h < HDR_COUNT; h++) {
			size_t n = strlen(relay_headers[h].name);

			if ((size_t)(colon - start) == n &&
			    strncasecmp(start, relay_headers[h].name, n) == 0)
				count[h]++;
		}
		if (pos >= len) {
			snprintf(why, whylen, "no empty line after the "
				 "headers (line %d)", line);
			return why;
		}
	}
	for (h = 0; h < HDR_COUNT; h++) {
		if (count[h] < relay_headers[h].min) {
			snprintf(why, whylen, "missing %s header",
				 relay_headers[h].name);
			return why;
		}
		if (count[h] > relay_headers[h].max) {
			snprintf(why, whylen, relay_headers[h].max == 0 ?
				 "%s header not allowed" : "repeated %s header",
				 relay_headers[h].name);
			return why;
		}
	}
	return NULL;
}

/* --- libesmtp callbacks ----------------------------------------------- */

/* relay_server_port - the port of "host:port" (config checked it). */
static int
relay_server_port(const char *server)
{
	const char *colon = strrchr(server, ':');
	long port;
	char *end;

	if (colon == NULL)
		return 0;
	port = strtol(colon + 1, &end, 10);
	return *end == '\0' && port > 0 && port <= 65535 ? (int)port : 0;
}

/*
 * relay_nodelay - set TCP_NODELAY on libesmtp's new socket (see the top
 * of this file): every TCP socket of ours connected to the server's port
 * that does not have it yet. Best effort.
 */
static void
relay_nodelay(int port)
{
	DIR *dir;
	struct dirent *de;

	if (port == 0 || (dir = opendir("/proc/self/fd")) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd, proto = 0, on = 0, peer_port;
		socklen_t optlen = sizeof(proto);
		char *end;

		fd = (int)strtol(de->d_name, &end, 10);
		if (*end != '\0' || end == de->d_name || fd == dirfd(dir))
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &optlen) < 0 ||
		    proto != IPPROTO_TCP ||
		    getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
			continue;
		if (peer.ss_family == AF_INET)
			peer_port = ntohs(((struct sockaddr_in *)&peer)->sin_port);
		else if (peer.ss_family == AF_INET6)
			peer_port = ntohs(((struct sockaddr_in6 *)&peer)->sin6_port);
		else
			continue;
		optlen = sizeof(on);
		if (peer_port != port ||
		    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &optlen) < 0 || on)
			continue;
		on = 1;
		/* A failure only costs speed (see above). */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	}
	closedir(dir);
}

/* Hands libesmtp the message, with its length; len == NULL rewinds. */
static const char *
relay_message_cb(void **ctx, int *len, void *arg)
{
	struct relay_item *item = arg;
	size_t left;

	if (len == NULL) {
		item->offset = 0;
		return NULL;
	}
	left = item->msg->len - item->offset;
	if (left > RELAY_CHUNK)
		left = RELAY_CHUNK;
	*len = (int)left;
	if (left == 0)
		return NULL;
	item->offset += left;
	return item->msg->data + item->offset - left;
}

static void
relay_event_cb(smtp_session_t session, int event_no, void *arg, ...)
{
	struct relay_run *run = arg;
	va_list ap;

	/* Every "ok" or "quit_now" out-parameter is left as libesmtp set
	 * it (refuse); we only note what happened. */
	va_start(ap, arg);
	switch (event_no) {
	case SMTP_EV_CONNECT:
		relay_nodelay(run->port);
		break;
	case SMTP_EV_EXTNA_STARTTLS:
		run->starttls_missing = 1;
		break;
	case SMTP_EV_STARTTLS_OK:
		run->starttls_ok = 1;
		break;
	case SMTP_EV_INVALID_PEER_CERTIFICATE:
		run->cert_invalid = 1;
		run->cert_verify_result = va_arg(ap, long);
		break;
	case SMTP_EV_WRONG_PEER_CERTIFICATE:
		run->cert_wrong_host = 1;
		break;
	case SMTP_EV_NO_PEER_CERTIFICATE:
		run->cert_missing = 1;
		break;
	case SMTP_EV_WEAK_CIPHER:
		run->cipher_weak = 1;
		break;
	case SMTP_EV_MESSAGESENT: {
		smtp_message_t message = va_arg(ap, smtp_message_t);
		const smtp_status_t *st = smtp_message_transfer_status(message);
		struct relay_item *item = smtp_message_get_application_data(message);

		if (run->settings->accepted != NULL && item != NULL && st != NULL &&
		    st->code >= 200 && st->code < 300)
			run->settings->accepted(run->settings->accepted_arg, item->msg);
		break;
	}
	default:
		break;
	}
	va_end(ap);
}

static void
relay_reply_code(struct relay_run *run, int code)
{
	run->last_code = code;
	if (run->auth != AUTH_PENDING)
		return;
	if (code == 235) {
		run->auth = AUTH_OK;
	} else if (code >= 400) {
		run->auth = AUTH_FAILED;
		run->auth_code = code;
	}
}

/*
 * The protocol monitor sees what libesmtp writes (not the message
 * data) and reads. Only reply codes and the fact that an AUTH command
 * went out are kept: reply texts can echo addresses.
 */
static void
relay_monitor_cb(const char *buf, int buflen, int writing, void *arg)
{
	struct relay_run *run = arg;
	int i;

	if (writing == SMTP_CB_WRITING) {
		for (i = 0; i < buflen; i++) {
			if ((i == 0 || buf[i - 1] == '\n') && buflen - i >= 5 &&
			    strncasecmp(buf + i, "AUTH ", 5) == 0)
				run->auth = AUTH_PENDING;
		}
		return;
	}
	if (writing != SMTP_CB_READING)
		return;
	for (i = 0; i < buflen; i++) {
		char c = buf[i];

		if (run->rd_bol) {
			run->rd_bol = 0;
			run->rd_active = 1;
			run->rd_digits = 0;
			run->rd_code = 0;
		}
		if (c == '\n') {
			run->rd_bol = 1;
			continue;
		}
		if (!run->rd_active)
			continue;
		if (c >= '0' && c <= '9' && run->rd_digits < 3) {
			run->rd_code = run->rd_code * 10 + (c - '0');
			if (++run->rd_digits == 3)
				relay_reply_code(run, run->rd_code);
			continue;
		}
		run->rd_active = 0;
	}
}

static int
relay_auth_interact(auth_client_request_t request, char **result, int fields,
		    void *arg)
{
	const struct relay_settings *s = arg;
	static char empty[] = "";
	int i;

	for (i = 0; i < fields; i++) {
		const char *v;

		if (request[i].flags & AUTH_USER)
			v = s->user;
		else if (request[i].flags & AUTH_PASS)
			v = s->password;
		else if (request[i].flags & AUTH_REALM)
			v = empty;
		else
			return 0;
		if (v == NULL)
			v = empty;
		if (request[i].size != 0 && strlen(v) > request[i].size)
			return 0;
		result[i] = (char *)v;
	}
	return 1;
}

/* --- outcomes ----------------------------------------------------------- */

static void
relay_set(struct relay_msg *m, enum relay_outcome outcome, int code,
	  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
relay_set(struct relay_msg *m, enum relay_outcome outcome, int code,
	  const char *fmt, ...)
{
	va_list ap;

	m->outcome = outcome;
	m->code = code;
	va_start(ap, fmt);
	vsnprintf(m->text, sizeof(m->text), fmt, ap);
	va_end(ap);
}

/*
 * Sets the outcome from one step's status; returns 1 when the step
 * succeeded (2xx) and the next one should be looked at.
 */
static int
relay_step(struct relay_msg *m, const smtp_status_t *st, const char *step)
{
	char enh[24] = "";
	int code = st ? st->code : 0;

	if (code == 0) {
		relay_set(m, RELAY_DEFER, 0, "no reply at %s: session ended",
			  step);
		return 0;
	}
	if (st->enh_class >= 2 && st->enh_class <= 5)
		snprintf(enh, sizeof(enh), " %d.%d.%d", st->enh_class,
			 st->enh_subject, st->enh_detail);
	if (code >= 200 && code <= 299)
		return 1;
	if (code >= 500 && code <= 599)
		relay_set(m, RELAY_FAIL, code, "%d%s at %s", code, enh, step);
	else if (code >= 400 && code <= 499)
		relay_set(m, RELAY_DEFER, code, "%d%s at %s", code, enh, step);
	else
		relay_set(m, RELAY_DEFER, 0, "no final reply at %s (last %d)",
			  step, code);
	return 0;
}

static void
relay_outcome_of(struct relay_item *item)
{
	struct relay_msg *m = item->msg;
	const smtp_status_t *st;

	if (!relay_step(m, smtp_reverse_path_status(item->message), "MAIL"))
		return;
	if (!relay_step(m, smtp_recipient_status(item->recipient), "RCPT"))
		return;
	st = smtp_message_transfer_status(item->message);
	if (!relay_step(m, st, "DATA"))
		return;
	relay_set(m, RELAY_SENT, st->code, "%d accepted", st->code);
}

/* The reason no message could be attempted. */
static int
relay_session_error(const struct relay_run *run, int started,
		    struct cp_error *err)
{
	const char *server = run->settings->server;
	char buf[128];
	const char *text;
	int e;

	if (run->starttls_missing)
		return cp_error_set(err, -EPROTO, "SMTP %s: STARTTLS required "
				    "but not offered", server);
	if (run->cert_invalid)
		return cp_error_set(err, -EPROTO, "SMTP %s: TLS certificate "
				    "not trusted (X.509 verify error %ld)",
				    server, run->cert_verify_result);
	if (run->cert_wrong_host)
		return cp_error_set(err, -EPROTO, "SMTP %s: TLS certificate "
				    "does not match the host name", server);
	if (run->cert_missing || run->cipher_weak)
		return cp_error_set(err, -EPROTO, "SMTP %s: TLS peer not "
				    "acceptable", server);
	if (run->auth == AUTH_FAILED)
		return cp_error_set(err, -EACCES, "SMTP %s: AUTH failed (%d)",
				    server, run->auth_code);

	e = smtp_errno();
	text = smtp_strerror(e, buf, sizeof(buf));
	if (text == NULL)
		text = "unknown error";
	/* A reply code is from this session; smtp_errno may be stale. */
	if (run->last_code >= 400)
		return cp_error_set(err, -EPROTO, "SMTP %s: session refused "
				    "(%d)", server, run->last_code);
	if (!started && e < 0)
		return cp_error_set(err, e, "SMTP %s: %s", server, text);
	if (!started && e >= SMTP_ERR_EAI_ADDRFAMILY &&
	    e <= SMTP_ERR_EAI_SOCKTYPE)
		return cp_error_set(err, -EHOSTUNREACH, "SMTP %s: %s", server,
				    text);
	return cp_error_set(err, -EPROTO, "SMTP %s: session ended before "
			    "any message (%s)", server, text);
}

/* --- the session ---------------------------------------------------------- */

/* Our own context, so that ca_file is honoured (libesmtp's default
 * looks in ~/.authenticate). libesmtp verifies after the handshake. */
static int
relay_tls_ctx(const struct relay_settings *s, SSL_CTX **out,
	      struct cp_error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return cp_error_set(err, -ENOMEM,
				    "SMTP: cannot create TLS context");
	/*
	 * TLS 1.2 only. After a TLS 1.3 handshake the server sends its
	 * session tickets as separate records; when they arrive before
	 * libesmtp 1.1.0 has flushed EHLO, its protocol loop reads first,
	 * blocks in SSL_read for the whole timeout and gives up ("dropped
	 * connection"). A race, but a common one against a relay on the
	 * same host (1 run in 8 to 2 in 2 in our loopback test). In TLS 1.2
	 * the tickets are part of the handshake.
	 */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	if (s->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, s->ca_file, NULL) != 1) {
			SSL_CTX_free(ctx);
			return cp_error_set(err, -ENOENT, "SMTP: cannot load "
					    "ca_file %s", s->ca_file);
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		SSL_CTX_free(ctx);
		return cp_error_set(err, -EIO, "SMTP: cannot load the system "
				    "CA certificates");
	}
	*out = ctx;
	return 0;
}

static int
relay_setup(smtp_session_t session, const struct relay_settings *s,
	    struct relay_run *run, auth_context_t *authp, struct cp_error *err)
{
	static const int which[] = { Timeout_GREETING, Timeout_ENVELOPE,
				     Timeout_DATA, Timeout_TRANSFER,
				     Timeout_DATA2 };
	long ms = (s->timeout > 0 ? s->timeout : RELAY_DEFAULT_TIMEOUT) * 1000L;
	enum starttls_option how;
	size_t i;

	if (!smtp_set_server(session, s->server))
		return cp_error_set(err, -ENOMEM, "SMTP: cannot set server");
	if (s->helo && !smtp_set_hostname(session, s->helo))
		return cp_error_set(err, -ENOMEM, "SMTP: cannot set helo");
	for (i = 0; i < CP_ARRAY_SIZE(which); i++)
		if (smtp_set_timeout(session, which[i] |
				     Timeout_OVERRIDE_RFC2822_MINIMUM, ms) == 0)
			return cp_error_set(err, -EINVAL,
					    "SMTP: cannot set timeout");
	if (!smtp_set_eventcb(session, relay_event_cb, run) ||
	    !smtp_set_monitorcb(session, relay_monitor_cb, run, 0))
		return cp_error_set(err, -EINVAL, "SMTP: cannot set callbacks");

	switch (s->starttls) {
	case TLS_OFF:
		how = Starttls_DISABLED;
		break;
	case TLS_OPPORTUNISTIC:
		how = Starttls_ENABLED;
		break;
	case TLS_REQUIRED:
		how = Starttls_REQUIRED;
		break;
	default:
		return cp_error_set(err, -EINVAL, "SMTP: unsupported TLS mode "
				    "%d (implicit TLS is not offered)",
				    (int)s->starttls);
	}
	if (!smtp_starttls_enable(session, how))
		return cp_error_set(err, -EINVAL, "SMTP: cannot set STARTTLS");
	if (how != Starttls_DISABLED) {
		SSL_CTX *ctx = NULL;
		int ok, r;

		r = relay_tls_ctx(s, &ctx, err);
		if (r < 0)
			return r;
		/* libesmtp takes its own reference. */
		ok = smtp_starttls_set_ctx(session, ctx);
		SSL_CTX_free(ctx);
		if (!ok)
			return cp_error_set(err, -EINVAL,
					    "SMTP: cannot set TLS context");
	}

	if (s->user != NULL) {
		auth_context_t auth;

		pthread_once(&relay_auth_once, relay_auth_init);
		auth = auth_create_context();
		if (auth == NULL)
			return cp_error_set(err, -ENOMEM, "SMTP: no memory");
		*authp = auth;
		if (!auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0) ||
		    !auth_set_interact_cb(auth, relay_auth_interact,
					  (void *)s) ||
		    !smtp_auth_set_context(session, auth))
			return cp_error_set(err, -EINVAL,
					    "SMTP: cannot set up AUTH");
	}
	return 0;
}

static int
relay_add(smtp_session_t session, struct relay_item *item)
{
	struct relay_msg *m = item->msg;

	item->message = smtp_add_message(session);
	if (item->message == NULL)
		return -ENOMEM;
	if (!smtp_set_reverse_path(item->message, m->reverse_path &&
				   *m->reverse_path ? m->reverse_path : NULL))
		return -ENOMEM;
	item->recipient = smtp_add_recipient(item->message, m->recipient);
	if (item->recipient == NULL)
		return -ENOMEM;
	if (!smtp_set_messagecb(item->message, relay_message_cb, item))
		return -EINVAL;
	smtp_message_set_application_data_release(item->message, item, NULL);
	return 0;
}

static void
relay_defer_all(struct relay_msg *msgs, size_t n, const char *why)
{
	size_t i;

	for (i = 0; i < n; i++)
		relay_set(&msgs[i], RELAY_DEFER, 0, "%s", why);
}

/* Run the session with SIGPIPE held off this thread. */
static int
relay_start(smtp_session_t session)
{
	sigset_t pipe_set, old, pending;
	struct timespec zero = { 0, 0 };
	int was_pending, r;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	r = smtp_start_session(session);
	if (!was_pending)
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int
relay_send_batch(const struct relay_settings *settings,
		 struct relay_msg *msgs, size_t n, struct cp_error *err)
{
	struct relay_run run;
	struct relay_item *items = NULL;
	smtp_session_t session = NULL;
	auth_context_t auth = NULL;
	size_t i, queued = 0;
	int started, attempted = 0, sent = 0, r;

	if (settings == NULL || settings->server == NULL ||
	    (msgs == NULL && n > 0))
		return cp_error_set(err, -EINVAL, "SMTP: no server or messages");
	if (n == 0)
		return 0;

	memset(&run, 0, sizeof(run));
	run.settings = settings;
	run.port = relay_server_port(settings->server);
	run.rd_bol = 1;

	items = calloc(n, sizeof(*items));
	if (items == NULL) {
		relay_defer_all(msgs, n, "out of memory");
		return cp_error_set(err, -ENOMEM, "SMTP: out of memory");
	}
	for (i = 0; i < n; i++) {
		char why[80];
		const char *bad;

		items[i].msg = &msgs[i];
		relay_set(&msgs[i], RELAY_PENDING, 0, "%s", "");
		if (!relay_address_ok(msgs[i].reverse_path, 1))
			bad = "invalid reverse path";
		else if (!relay_address_ok(msgs[i].recipient, 0))
			bad = "invalid recipient address";
		else
			bad = relay_check_message(msgs[i].data, msgs[i].len,
						  why, sizeof(why));
		if (bad)
			relay_set(&msgs[i], RELAY_FAIL, 0,
				  "rejected locally: %s", bad);
		else
			queued++;
	}
	if (queued == 0) {
		free(items);
		return 0;
	}

	session = smtp_create_session();
	if (session == NULL) {
		r = cp_error_set(err, -ENOMEM, "SMTP: cannot create session");
		goto fail;
	}
	r = relay_setup(session, settings, &run, &auth, err);
	if (r < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		if (msgs[i].outcome != RELAY_PENDING)
			continue;
		r = relay_add(session, &items[i]);
		if (r < 0) {
			cp_error_set(err, r, "SMTP: cannot queue message %zu",
				     i);
			goto fail;
		}
	}

	started = relay_start(session);
	for (i = 0; i < n; i++) {
		if (items[i].message == NULL)
			continue;
		relay_outcome_of(&items[i]);
		if (smtp_reverse_path_status(items[i].message)->code != 0)
			attempted = 1;
		if (msgs[i].outcome == RELAY_SENT)
			sent++;
	}

	/* Credentials were configured but not accepted: whatever the
	 * server said to the messages, it said it to an anonymous client. */
	if (settings->user != NULL && run.auth != AUTH_OK) {
		for (i = 0; i < n; i++)
			if (items[i].message && msgs[i].outcome != RELAY_SENT)
				relay_set(&msgs[i], RELAY_DEFER, 0, "%s",
					  run.auth == AUTH_FAILED ?
					  "AUTH failed" : "AUTH not done");
		if (sent == 0 && run.auth == AUTH_NONE && attempted) {
			r = cp_error_set(err, -EACCES, "SMTP %s: AUTH not "
					 "offered by the server",
					 settings->server);
			goto fail;
		}
	}
	if (!started || !attempted || (sent == 0 && run.auth == AUTH_FAILED)) {
		r = relay_session_error(&run, started, err);
		goto fail;
	}
	r = 0;
	goto out;

fail:
	relay_defer_all(msgs, n, "not sent: session failed");
out:
	if (session)
		smtp_destroy_session(session);
	if (auth)
		auth_destroy_context(auth);
	free(items);
	return r;
}

int
relay_auth_refusal(const char *text)
{
	static const char *const codes[] = {
		"5.7.23", "5.7.24", "5.7.25", "5.7.26", "5.7.27", "5.7.30",
		"5.7.32", "5.7.40", "5.7.509", "5.7.515", "5.7.9",
		"4.7.23", "4.7.24", "4.7.25", "4.7.26", "4.7.27", "4.7.30",
		"4.7.32", "4.7.40", "4.7.515",
	};
	static const char *const words[] = {
		"DMARC", "DKIM", "SPF", "authenticat",
	};
	const char *p;
	size_t i;

	if (text == NULL)
		return 0;
	for (i = 0; i < CP_ARRAY_SIZE(codes); i++)
		for (p = strstr(text, codes[i]); p != NULL; p = strstr(p + 1, codes[i]))
			if ((p == text || !isdigit((unsigned char)p[-1]) ) &&
			    !isdigit((unsigned char)p[strlen(codes[i])]))
				return 1;
	if (strstr(text, "5.7.") == NULL && strstr(text, "4.7.") == NULL)
		return 0;
	for (i = 0; i < CP_ARRAY_SIZE(words); i++)
		if (strcasestr(text, words[i]) != NULL)
			return 1;
	return 0;
}
