/*
 * NAME
 *	test_relay - relay_send_batch against a real Postfix smtp-sink
 * DESCRIPTION
 *	Each test starts /usr/sbin/smtp-sink on a free loopback port with
 *	its own dump directory and protocol log (-v), runs one batch, and
 *	checks outcomes, codes and what the sink stored: smtp-sink writes
 *	each message as received (dot-stuffing undone, CRLF turned into LF)
 *	after its own X-* and Received lines, so the stored message must be
 *	exactly ours. Fault injection uses smtp-sink's -r (4xx), -f (5xx),
 *	-q (drop without reply), -Q (421 and drop), -a (no AUTH) and -w
 *	(slow DATA reply) options. One test uses a tiny fake server of its
 *	own that hangs up in the middle of DATA, to prove that SIGPIPE does
 *	not kill the caller. The STARTTLS tests run a small Python (ssl
 *	module) server with certificates made by openssl at run time: a
 *	trusted certificate, an untrusted one and one for another host name.
 *
 *	Tests skip (with the reason) when smtp-sink, python3 or openssl is
 *	not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "buf.h"
#include "certfix.h"
#include "fsfix.h"
#include "relay.h"
#include "sinkfix.h"

/* --- helpers -------------------------------------------------------- */

static int
count(const char *hay, const char *needle)
{
	int n = 0;
	const char *p = hay;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

/* What smtp-sink stores for a message: CRLF -> LF, plus an empty line. */
static char *
as_stored(const char *msg)
{
	size_t len = strlen(msg), i, o = 0;
	char *out = malloc(len + 2);

	assert_non_null(out);
	for (i = 0; i < len; i++) {
		if (msg[i] == '\r' && msg[i + 1] == '\n')
			continue;
		out[o++] = msg[i];
	}
	out[o++] = '\n';
	out[o] = '\0';
	return out;
}

static const struct dump *
find_dump(const struct dump *d, size_t n, const char *mail)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(d[i].mail, mail) == 0)
			return &d[i];
	return NULL;
}

static struct relay_settings
settings_for(const struct sink *s)
{
	struct relay_settings st = {
		.server = s->server,
		.helo = "carepost.test",
		.starttls = TLS_OFF,
		.timeout = 10,
	};
	return st;
}

static void
msg_init(struct relay_msg *m, const char *rp, const char *rcpt,
	 const char *data)
{
	memset(m, 0, sizeof(*m));
	m->reverse_path = rp;
	m->recipient = rcpt;
	m->data = data;
	m->len = strlen(data);
	m->outcome = RELAY_PENDING;
	m->code = -1;
}

/* --- a STARTTLS server (Python's ssl module) --------------------------- */

/*
 * Speaks just enough ESMTP: offers STARTTLS before TLS, logs each
 * command as "CLEAR cmd" or "TLS cmd", stores the DATA it receives
 * (dot-stuffing undone, CRLF kept) in OUT, and serves one connection.
 */
static const char tls_server_py[] =
	"import socket, ssl, sys\n"
	"portfile, cert, key, out = sys.argv[1:5]\n"
	"ls = socket.socket()\n"
	"ls.bind(('127.0.0.1', 0))\n"
	"ls.listen(1)\n"
	"ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
	"ctx.load_cert_chain(cert, key)\n"
	"open(portfile + '.tmp', 'w').write(str(ls.getsockname()[1]))\n"
	"import os; os.rename(portfile + '.tmp', portfile)\n"
	"c, _ = ls.accept()\n"
	"f = c.makefile('rb')\n"
	"log = open(out + '.log', 'w')\n"
	"tls = False\n"
	"def send(t): c.sendall(t.encode())\n"
	"send('220 fake\\r\\n')\n"
	"while True:\n"
	"    line = f.readline()\n"
	"    if not line: break\n"
	"    cmd = line.decode('ascii', 'replace').strip()\n"
	"    log.write(('TLS ' if tls else 'CLEAR ') + cmd + '\\n'); log.flush()\n"
	"    u = cmd.upper()\n"
	"    if u.startswith('EHLO'):\n"
	"        send('250 fake\\r\\n' if tls else '250-fake\\r\\n250 STARTTLS\\r\\n')\n"
	"    elif u == 'STARTTLS':\n"
	"        send('220 go\\r\\n')\n"
	"        try:\n"
	"            c = ctx.wrap_socket(c, server_side=True)\n"
	"        except Exception:\n"
	"            log.write('HANDSHAKE FAILED\\n'); break\n"
	"        f = c.makefile('rb'); tls = True\n"
	"    elif u == 'DATA':\n"
	"        send('354 go\\r\\n'); data = b''\n"
	"        while True:\n"
	"            l = f.readline()\n"
	"            if not l or l == b'.\\r\\n': break\n"
	"            data += l[1:] if l.startswith(b'.') else l\n"
	"        open(out, 'wb').write(data); send('250 ok\\r\\n')\n"
	"    elif u == 'QUIT':\n"
	"        send('221 bye\\r\\n'); break\n"
	"    else:\n"
	"        send('250 ok\\r\\n')\n";

struct tls_server {
	pid_t pid;
	int port;
	char dir[64];
	char path[512];
};

static void
tls_server_stop(struct tls_server *t)
{
	int status;

	if (t->pid > 0) {
		kill(t->pid, SIGTERM);
		waitpid(t->pid, &status, 0);
		t->pid = 0;
	}
	tu_rm_rf(t->dir);
	t->dir[0] = '\0';
}

static struct tls_server current_tls;

static struct tls_server *
tls_server_start(void)
{
	struct tls_server *t = &current_tls;
	char portfile[512], cert[512], key[512], out[512];
	int i, status;

	memset(t, 0, sizeof(*t));
	strcpy(t->dir, "/tmp/carepost-relay-tls-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	/* The certificate names "localhost" only, not 127.0.0.1. */
	if (tu_make_certs(t->dir, "DNS:localhost") < 0) {
		tls_server_stop(t);
		print_message("skipped: openssl cannot make the test "
			      "certificates\n");
		skip();
	}
	snprintf(portfile, sizeof(portfile), "%.63s/port", t->dir);
	snprintf(cert, sizeof(cert), "%.63s/srv.pem", t->dir);
	snprintf(key, sizeof(key), "%.63s/srv.key", t->dir);
	snprintf(out, sizeof(out), "%.63s/out", t->dir);
	t->pid = fork();
	assert_true(t->pid >= 0);
	if (t->pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			dup2(fd, 2);
		execlp("python3", "python3", "-c", tls_server_py, portfile,
		       cert, key, out, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 400; i++) {
		char *data = NULL;

		if (cp_read_file(portfile, 64, &data, NULL) == 0) {
			t->port = atoi(data);
			free(data);
			if (t->port > 0)
				return t;
		}
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			t->pid = 0;
			tls_server_stop(t);
			print_message("skipped: python3 with the ssl module is "
				      "needed for the STARTTLS server\n");
			skip();
		}
		tu_sleep_ms(25);
	}
	fail_msg("STARTTLS test server did not start");
	return t;
}

/* A file of the server's directory; caller frees; NULL when absent. */
static char *
tls_server_file(struct tls_server *t, const char *name)
{
	char *data = NULL;

	snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
	if (cp_read_file(t->path, 1 << 20, &data, NULL) < 0)
		return NULL;
	return data;
}


/* --- messages -------------------------------------------------------- */

#define HDRS(n) \
	"Date: Tue, 02 Jan 2024 09:30:00 -0600\r\n" \
	"From: \"Lakeside Clinic\" <portal@clinic.example>\r\n" \
	"To: <patient" n "@example.net>\r\n" \
	"Message-ID: <evt-" n ".a1b2c3@clinic.example>\r\n" \
	"Reply-To: <reply+aeaqeayeaudaocajbiaaatracbcfpp3au4ngly45@" \
	"clinic.example>\r\n" \
	"Subject: You have a new message\r\n" \
	"  waiting in the portal\r\n" \
	"Auto-Submitted: auto-generated\r\n" \
	"MIME-Version: 1.0\r\n" \
	"Content-Type: text/plain; charset=utf-8\r\n" \
	"Content-Transfer-Encoding: 8bit\r\n"

static const char msg1[] =
	HDRS("1")
	"\r\n"
	"Hello,\r\n"
	".a line that starts with a dot\r\n"
	".\r\n"
	"..\r\n"
	"From the clinic (not an mbox From_ line)\r\n"
	"body-marker-one\r\n";

static const char msg2[] =
	HDRS("2")
	"Bcc: <audit@clinic.example>\r\n"
	"\r\n"
	"body-marker-two \xc3\xa9t\xc3\xa9\r\n";

static const char msg3[] =
	HDRS("3")
	"List-Unsubscribe: <mailto:unsub@clinic.example>\r\n"
	"\r\n"
	"body-marker-three\r\n"
	"\r\n"
	"last line\r\n";

/* --- tests ------------------------------------------------------------- */

static void
batch_of_three_is_sent_in_one_session_unaltered(void **state)
{
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[3];
	struct cp_error err = { 0, "" };
	struct dump d[8];
	const char *data[3] = { msg1, msg2, msg3 };
	const char *rp[3] = { "bounce+evt-1@clinic.example",
			      "bounce+evt-2@clinic.example",
			      "bounce+evt-3@clinic.example" };
	const char *rcpt[3] = { "patient1@example.net",
				"patient2@example.net",
				"patient3@example.net" };
	char *log;
	size_t n, i;

	s = sink_start(NULL);
	st = settings_for(s);
	for (i = 0; i < 3; i++)
		msg_init(&m[i], rp[i], rcpt[i], data[i]);
	assert_int_equal(relay_send_batch(&st, m, 3, &err), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(m[i].outcome, RELAY_SENT);
		assert_int_equal(m[i].code, 250);
		assert_string_equal(m[i].text, "250 accepted");
	}

	n = sink_dumps(s, d, 8);
	assert_int_equal(n, 3);
	for (i = 0; i < 3; i++) {
		char want_mail[128], want_rcpt[128];
		const struct dump *x;
		char *stored = as_stored(data[i]);

		snprintf(want_mail, sizeof(want_mail), "<%s>", rp[i]);
		snprintf(want_rcpt, sizeof(want_rcpt), "<%s>", rcpt[i]);
		x = find_dump(d, n, want_mail);
		assert_non_null(x);
		assert_string_equal(x->rcpt, want_rcpt);
		assert_non_null(x->content);
		assert_string_equal(x->content, stored);
		free(stored);
	}
	dumps_free(d, n);

	sink_stop(s);
	log = sink_log(s);
	assert_int_equal(count(log, "EHLO carepost.test"), 1);
	assert_int_equal(count(log, ": MAIL FROM:"), 3);
	assert_int_equal(count(log, ": QUIT"), 1);
	assert_int_equal(count(log, ": AUTH"), 0);
	free(log);
	sink_cleanup(s);
}

/*
 * A message larger than libesmtp's 2 KiB write buffer goes out in more
 * than one write. Without TCP_NODELAY the last one waits for the
 * server's delayed ACK (40 ms on Linux): 30 such messages would take
 * 1.2 s or more. Sent with TCP_NODELAY they take a few milliseconds
 * each; 0.6 s leaves room for a loaded machine.
 */
static void
large_messages_are_not_held_back_by_nagle(void **state)
{
	enum { N = 30 };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[N];
	struct cp_error err = { 0, "" };
	struct buf big = BUF_INIT;
	double t0, elapsed;
	size_t i;

	s = sink_start(NULL);
	st = settings_for(s);
	assert_int_equal(buf_puts(&big, HDRS("1") "\r\n"), 0);
	for (i = 0; i < 100; i++)
		assert_int_equal(buf_puts(&big, "abcdefghijklmnopqrstuvwxyz"
			"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv\r\n"), 0);
	for (i = 0; i < N; i++)
		msg_init(&m[i], "bounce+evt-1@clinic.example",
			 "patient1@example.net", big.data);
	t0 = tu_now_seconds();
	assert_int_equal(relay_send_batch(&st, m, N, &err), 0);
	elapsed = tu_now_seconds() - t0;
	for (i = 0; i < N; i++)
		assert_int_equal(m[i].outcome, RELAY_SENT);
	buf_free(&big);
	sink_cleanup(s);
	if (elapsed >= 0.6)
		fail_msg("%d messages of 7.5 KiB took %.3f s", N, elapsed);
}

static void
rcpt_soft_reject_defers_with_4xx(void **state)
{
	static const char *const opts[] = { "-r", "rcpt", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[2];
	struct cp_error err = { 0, "" };
	struct dump d[8];
	size_t n, i;

	s = sink_start(opts);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	assert_int_equal(relay_send_batch(&st, m, 2, &err), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(m[i].outcome, RELAY_DEFER);
		assert_int_equal(m[i].code, 450);
		assert_string_equal(m[i].text, "450 4.3.0 at RCPT");
	}
	/* No message content reached the sink. */
	n = sink_dumps(s, d, 8);
	for (i = 0; i < n; i++)
		assert_null(strstr(d[i].raw, "body-marker"));
	dumps_free(d, n);
	sink_cleanup(s);
}

static void
rcpt_hard_reject_fails_with_5xx(void **state)
{
	static const char *const opts[] = { "-f", "rcpt", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[2];
	struct cp_error err = { 0, "" };
	struct dump d[8];
	size_t n, i;

	s = sink_start(opts);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	assert_int_equal(relay_send_batch(&st, m, 2, &err), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(m[i].outcome, RELAY_FAIL);
		assert_int_equal(m[i].code, 500);
		assert_string_equal(m[i].text, "500 5.3.0 at RCPT");
		/* The reply text is not copied (it may echo an address). */
		assert_null(strstr(m[i].text, "example"));
	}
	n = sink_dumps(s, d, 8);
	for (i = 0; i < n; i++)
		assert_null(strstr(d[i].raw, "body-marker"));
	dumps_free(d, n);
	sink_cleanup(s);
}

static void
mail_hard_reject_fails_at_mail(void **state)
{
	static const char *const opts[] = { "-f", "mail", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };

	s = sink_start(opts);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), 0);
	assert_int_equal(m[0].outcome, RELAY_FAIL);
	assert_int_equal(m[0].code, 500);
	assert_string_equal(m[0].text, "500 5.3.0 at MAIL");
	sink_cleanup(s);
}

static void
data_end_hard_reject_fails_with_5xx(void **state)
{
	static const char *const opts[] = { "-f", ".", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[2];
	struct cp_error err = { 0, "" };

	s = sink_start(opts);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	assert_int_equal(relay_send_batch(&st, m, 2, &err), 0);
	assert_int_equal(m[0].outcome, RELAY_FAIL);
	assert_int_equal(m[0].code, 500);
	assert_string_equal(m[0].text, "500 5.3.0 at DATA");
	/* The session goes on (RSET) to the next message. */
	assert_int_equal(m[1].outcome, RELAY_FAIL);
	assert_int_equal(m[1].code, 500);
	sink_cleanup(s);
}

static void
connection_dropped_at_data_defers_every_message(void **state)
{
	static const char *const opts[] = { "-q", "data", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[3];
	struct cp_error err = { 0, "" };
	size_t i;

	s = sink_start(opts);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	msg_init(&m[2], "bounce+evt-3@clinic.example", "p3@example.net", msg3);
	/* The session ran (the first message got as far as DATA). */
	assert_int_equal(relay_send_batch(&st, m, 3, &err), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(m[i].outcome, RELAY_DEFER);
		assert_int_equal(m[i].code, 0);
	}
	assert_string_equal(m[0].text, "no reply at DATA: session ended");
	assert_string_equal(m[1].text, "no reply at MAIL: session ended");
	sink_cleanup(s);
}

static void
connection_dropped_after_final_dot_defers(void **state)
{
	static const char *const opts[] = { "-q", ".", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[2];
	struct cp_error err = { 0, "" };

	s = sink_start(opts);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	assert_int_equal(relay_send_batch(&st, m, 2, &err), 0);
	/* Not acknowledged: may or may not have been delivered, so retry. */
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	assert_int_equal(m[0].code, 0);
	assert_string_equal(m[0].text, "no reply at DATA: session ended");
	assert_int_equal(m[1].outcome, RELAY_DEFER);
	assert_int_equal(m[1].code, 0);
	sink_cleanup(s);
}

static void
service_closing_421_at_data_defers_with_421(void **state)
{
	static const char *const opts[] = { "-Q", "data", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[2];
	struct cp_error err = { 0, "" };

	s = sink_start(opts);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	assert_int_equal(relay_send_batch(&st, m, 2, &err), 0);
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	assert_int_equal(m[0].code, 421);
	assert_string_equal(m[0].text, "421 4.0.0 at DATA");
	assert_int_equal(m[1].outcome, RELAY_DEFER);
	assert_int_equal(m[1].code, 0);
	sink_cleanup(s);
}

static void
no_server_listening_returns_negative_and_defers_all(void **state)
{
	struct relay_settings st = { .timeout = 5 };
	struct relay_msg m[2];
	struct cp_error err = { 0, "" };
	char server[32];
	int r;

	snprintf(server, sizeof(server), "127.0.0.1:%d", tu_free_port());
	st.server = server;
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	r = relay_send_batch(&st, m, 2, &err);
	assert_int_equal(r, -ECONNREFUSED);
	assert_int_equal(err.code, r);
	assert_non_null(strstr(err.text, server));
	assert_non_null(strstr(err.text, "refused"));
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	assert_int_equal(m[1].outcome, RELAY_DEFER);
	assert_int_equal(m[0].code, 0);
	assert_int_equal(m[1].code, 0);
}

static void
greeting_421_returns_negative_and_defers_all(void **state)
{
	static const char *const opts[] = { "-Q", "connect", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };
	int r;

	s = sink_start(opts);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	r = relay_send_batch(&st, m, 1, &err);
	assert_true(r < 0);
	assert_int_equal(err.code, r);
	assert_non_null(strstr(err.text, "421"));
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	sink_cleanup(s);
}

static void
starttls_required_but_not_offered_sends_nothing(void **state)
{
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[2];
	struct cp_error err = { 0, "" };
	char *log;
	int r;

	s = sink_start(NULL);
	st = settings_for(s);
	st.starttls = TLS_REQUIRED;
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	r = relay_send_batch(&st, m, 2, &err);
	assert_int_equal(r, -EPROTO);
	assert_int_equal(err.code, -EPROTO);
	assert_non_null(strstr(err.text, "STARTTLS required but not offered"));
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	assert_int_equal(m[1].outcome, RELAY_DEFER);
	sink_stop(s);
	log = sink_log(s);
	assert_int_equal(count(log, "EHLO"), 1);
	assert_int_equal(count(log, "MAIL FROM"), 0);
	assert_int_equal(count(log, "RCPT TO"), 0);
	free(log);
	sink_cleanup(s);
}

static void
opportunistic_starttls_without_offer_sends_in_clear(void **state)
{
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };

	s = sink_start(NULL);
	st = settings_for(s);
	st.starttls = TLS_OPPORTUNISTIC;
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), 0);
	assert_int_equal(m[0].outcome, RELAY_SENT);
	sink_cleanup(s);
}

static void
missing_ca_file_fails_before_connecting(void **state)
{
	struct relay_settings st = {
		.server = "127.0.0.1:1",
		.starttls = TLS_REQUIRED,
		.ca_file = "/nonexistent/carepost-ca.pem",
	};
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };

	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), -ENOENT);
	assert_non_null(strstr(err.text, "ca_file"));
	assert_int_equal(m[0].outcome, RELAY_DEFER);
}

static void
auth_plain_sends_configured_credentials(void **state)
{
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };
	char *log;

	s = sink_start(NULL);
	st = settings_for(s);
	st.user = "carepost";
	st.password = "s3cret";
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), 0);
	assert_int_equal(m[0].outcome, RELAY_SENT);
	sink_stop(s);
	log = sink_log(s);
	/* base64("\0carepost\0s3cret"), before MAIL */
	assert_non_null(strstr(log, "AUTH PLAIN AGNhcmVwb3N0AHMzY3JldA=="));
	assert_true(strstr(log, "AUTH PLAIN") < strstr(log, "MAIL FROM"));
	free(log);
	sink_cleanup(s);
}

static void
auth_rejected_defers_all_and_returns_eacces(void **state)
{
	/* AUTH refused; the server then refuses the anonymous MAIL with a
	 * 5xx that must not fail the messages. */
	static const char *const opts[] = { "-f", "auth,mail", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[2];
	struct cp_error err = { 0, "" };
	int r;

	s = sink_start(opts);
	st = settings_for(s);
	st.user = "carepost";
	st.password = "wrong";
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	msg_init(&m[1], "bounce+evt-2@clinic.example", "p2@example.net", msg2);
	r = relay_send_batch(&st, m, 2, &err);
	assert_int_equal(r, -EACCES);
	assert_non_null(strstr(err.text, "AUTH failed (500)"));
	assert_null(strstr(err.text, "wrong"));
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	assert_int_equal(m[1].outcome, RELAY_DEFER);
	sink_cleanup(s);
}

static void
auth_not_offered_with_credentials_returns_eacces(void **state)
{
	static const char *const opts[] = { "-a", "-f", "mail", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };

	s = sink_start(opts);
	st = settings_for(s);
	st.user = "carepost";
	st.password = "s3cret";
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), -EACCES);
	assert_non_null(strstr(err.text, "AUTH not offered"));
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	sink_cleanup(s);
}

static void
slow_server_times_out_and_defers(void **state)
{
	static const char *const opts[] = { "-w", "4", NULL };
	struct sink *s;
	struct relay_settings st;
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };
	double t0, elapsed;

	s = sink_start(opts);
	st = settings_for(s);
	st.timeout = 1;		/* below RFC 5321's minimums on purpose */
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	t0 = tu_now_seconds();
	assert_int_equal(relay_send_batch(&st, m, 1, &err), 0);
	elapsed = tu_now_seconds() - t0;
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	assert_int_equal(m[0].code, 0);
	assert_true(elapsed < 3.5);
	sink_cleanup(s);
}

static void
malformed_messages_fail_locally_and_the_rest_is_sent(void **state)
{
	static const char no_date[] =
		"From: <portal@clinic.example>\r\n"
		"Message-ID: <x@clinic.example>\r\n\r\nbody-marker-bad\r\n";
	static const char date_space_colon[] =
		"Date : Tue, 02 Jan 2024 09:30:00 -0600\r\n"
		"From: <portal@clinic.example>\r\n"
		"Message-ID: <x@clinic.example>\r\n\r\nbody-marker-bad\r\n";
	static const char no_message_id[] =
		"Date: Tue, 02 Jan 2024 09:30:00 -0600\r\n"
		"From: <portal@clinic.example>\r\n\r\nbody-marker-bad\r\n";
	static const char two_to[] =
		HDRS("9") "TO: <other@example.net>\r\n\r\nbody-marker-bad\r\n";
	static const char return_path[] =
		"Return-Path: <x@clinic.example>\r\n"
		HDRS("9") "\r\nbody-marker-bad\r\n";
	static const char no_final_crlf[] =
		HDRS("9") "\r\nbody-marker-bad";
	static const char no_body_separator[] =
		HDRS("9");
	struct {
		const char *rp, *rcpt, *data, *why;
	} cases[] = {
		{ "b@c.example", "p@example.net", no_date,
		  "rejected locally: missing Date header" },
		{ "b@c.example", "p@example.net", date_space_colon,
		  "rejected locally: missing Date header" },
		{ "b@c.example", "p@example.net", no_message_id,
		  "rejected locally: missing Message-Id header" },
		{ "b@c.example", "p@example.net", two_to,
		  "rejected locally: repeated To header" },
		{ "b@c.example", "p@example.net", return_path,
		  "rejected locally: Return-Path header not allowed" },
		{ "b@c.example", "p@example.net", no_final_crlf,
		  "rejected locally: message does not end with CRLF" },
		{ "b@c.example", "p@example.net", no_body_separator,
		  NULL /* "no empty line after the headers (line N)" */ },
		{ "b@c.example", "p@example.net>\r\nRSET", msg1,
		  "rejected locally: invalid recipient address" },
		{ "b@c.example", "p @example.net", msg1,
		  "rejected locally: invalid recipient address" },
		{ "b@c.example", "", msg1,
		  "rejected locally: invalid recipient address" },
		{ "b@c.example", NULL, msg1,
		  "rejected locally: invalid recipient address" },
		{ "b@c.example", "p\xc3\xa9@example.net", msg1,
		  "rejected locally: invalid recipient address" },
		{ "b@c.example>\r\nRSET", "p@example.net", msg1,
		  "rejected locally: invalid reverse path" },
		{ "b@c.example", "p@example.net", "",
		  "rejected locally: empty message" },
	};
	enum { NBAD = sizeof(cases) / sizeof(cases[0]) };
	struct relay_msg m[NBAD + 2];
	struct sink *s;
	struct relay_settings st;
	struct cp_error err = { 0, "" };
	struct dump d[8];
	char *log;
	size_t i, n;

	s = sink_start(NULL);
	st = settings_for(s);
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	for (i = 0; i < NBAD; i++)
		msg_init(&m[i + 1], cases[i].rp, cases[i].rcpt, cases[i].data);
	msg_init(&m[NBAD + 1], "", "p3@example.net", msg3);	/* null sender */
	assert_int_equal(relay_send_batch(&st, m, NBAD + 2, &err), 0);

	assert_int_equal(m[0].outcome, RELAY_SENT);
	assert_int_equal(m[NBAD + 1].outcome, RELAY_SENT);
	for (i = 0; i < NBAD; i++) {
		assert_int_equal(m[i + 1].outcome, RELAY_FAIL);
		assert_int_equal(m[i + 1].code, 0);
		if (cases[i].why)
			assert_string_equal(m[i + 1].text, cases[i].why);
		else
			assert_non_null(strstr(m[i + 1].text,
					       "no empty line after"));
	}

	n = sink_dumps(s, d, 8);
	assert_int_equal(n, 2);
	assert_non_null(find_dump(d, n, "<bounce+evt-1@clinic.example>"));
	assert_non_null(find_dump(d, n, "<>"));
	for (i = 0; i < n; i++)
		assert_null(strstr(d[i].raw, "body-marker-bad"));
	dumps_free(d, n);
	sink_stop(s);
	log = sink_log(s);
	assert_int_equal(count(log, ": MAIL FROM"), 2);
	assert_int_equal(count(log, ": RSET"), 0);
	free(log);
	sink_cleanup(s);
}

static void
batch_rejected_locally_opens_no_session(void **state)
{
	/* Nothing listens there: a connection attempt would fail. */
	struct relay_settings st = { .timeout = 5 };
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };
	char server[32];

	snprintf(server, sizeof(server), "127.0.0.1:%d", tu_free_port());
	st.server = server;
	msg_init(&m[0], "b@c.example", "p@example.net", "no headers\r\n");
	assert_int_equal(relay_send_batch(&st, m, 1, &err), 0);
	assert_int_equal(m[0].outcome, RELAY_FAIL);
	assert_int_equal(err.code, 0);
}

static void
invalid_arguments_are_rejected(void **state)
{
	struct relay_settings st = { .server = NULL };
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };

	msg_init(&m[0], "b@c.example", "p@example.net", msg1);
	assert_int_equal(relay_send_batch(NULL, m, 1, &err), -EINVAL);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), -EINVAL);
	st.server = "127.0.0.1:1";
	assert_int_equal(relay_send_batch(&st, NULL, 1, &err), -EINVAL);
	assert_int_equal(relay_send_batch(&st, m, 0, &err), 0);
	st.starttls = TLS_IMPLICIT;
	assert_int_equal(relay_send_batch(&st, m, 1, &err), -EINVAL);
	assert_int_equal(m[0].outcome, RELAY_DEFER);
}

static void
starttls_with_trusted_certificate_sends_over_tls(void **state)
{
	struct tls_server *t;
	struct relay_settings st = { .starttls = TLS_REQUIRED, .timeout = 10 };
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };
	char server[32], ca[128];
	char *log, *out;
	int r;

	t = tls_server_start();
	snprintf(server, sizeof(server), "localhost:%d", t->port);
	snprintf(ca, sizeof(ca), "%s/ca.pem", t->dir);
	st.server = server;
	st.ca_file = ca;
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	r = relay_send_batch(&st, m, 1, &err);
	assert_string_equal(err.text, "");
	assert_int_equal(r, 0);
	assert_int_equal(m[0].outcome, RELAY_SENT);
	assert_int_equal(m[0].code, 250);
	log = tls_server_file(t, "out.log");
	assert_non_null(log);
	assert_non_null(strstr(log, "CLEAR STARTTLS"));
	assert_non_null(strstr(log, "TLS MAIL FROM:<bounce+evt-1@clinic.example>"));
	assert_null(strstr(log, "CLEAR MAIL"));
	out = tls_server_file(t, "out");
	assert_non_null(out);
	assert_string_equal(out, msg1);		/* byte for byte, CRLF kept */
	free(out);
	free(log);
	tls_server_stop(t);
}

static void
starttls_with_untrusted_certificate_sends_nothing(void **state)
{
	struct tls_server *t;
	struct relay_settings st = { .starttls = TLS_REQUIRED, .timeout = 10 };
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };
	char server[32], ca[128];
	char *log;

	t = tls_server_start();
	snprintf(server, sizeof(server), "localhost:%d", t->port);
	snprintf(ca, sizeof(ca), "%s/other.pem", t->dir);	/* wrong CA */
	st.server = server;
	st.ca_file = ca;
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), -EPROTO);
	assert_non_null(strstr(err.text, "TLS certificate not trusted"));
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	log = tls_server_file(t, "out.log");
	assert_non_null(log);
	assert_null(strstr(log, "MAIL"));
	free(log);
	tls_server_stop(t);
}

static void
starttls_with_certificate_for_another_host_sends_nothing(void **state)
{
	struct tls_server *t;
	struct relay_settings st = { .starttls = TLS_OPPORTUNISTIC,
				     .timeout = 10 };
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };
	char server[32], ca[128];
	char *log;

	t = tls_server_start();
	/* The certificate names "localhost", not "127.0.0.1". */
	snprintf(server, sizeof(server), "127.0.0.1:%d", t->port);
	snprintf(ca, sizeof(ca), "%s/ca.pem", t->dir);
	st.server = server;
	st.ca_file = ca;
	msg_init(&m[0], "bounce+evt-1@clinic.example", "p1@example.net", msg1);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), -EPROTO);
	assert_non_null(strstr(err.text, "does not match the host name"));
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	log = tls_server_file(t, "out.log");
	assert_non_null(log);
	assert_null(strstr(log, "MAIL"));
	free(log);
	tls_server_stop(t);
}

/*
 * A fake server that accepts DATA, reads a little and hangs up with
 * the rest unread (a reset). Writing the rest of a large message then
 * raises SIGPIPE, which must not reach the caller.
 */
static void
fake_server_hangup_in_data(int lfd)
{
	static const char *replies[] = { "250 fake\r\n", "250 ok\r\n",
					 "250 ok\r\n", "354 go\r\n" };
	char buf[4096];
	size_t step = 0;
	int fd;

	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(1);
	if (write(fd, "220 fake\r\n", 10) != 10)
		_exit(1);
	while (step < 4) {
		ssize_t r = read(fd, buf, sizeof(buf));
		ssize_t i;

		if (r <= 0)
			_exit(1);
		for (i = 0; i < r && step < 4; i++)
			if (buf[i] == '\n') {
				size_t len = strlen(replies[step]);

				if (write(fd, replies[step], len) !=
				    (ssize_t)len)
					_exit(1);
				step++;
			}
	}
	if (read(fd, buf, sizeof(buf)) < 0)
		_exit(1);
	close(fd);		/* unread data: the kernel sends RST */
	_exit(0);
}

static pid_t current_child;

static void
server_hangup_mid_data_defers_without_sigpipe(void **state)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct relay_settings st = { .timeout = 5 };
	struct relay_msg m[1];
	struct cp_error err = { 0, "" };
	struct buf big = BUF_INIT;
	char server[32];
	sigset_t pending, mask;
	pid_t pid;
	int lfd, status, i;

	signal(SIGPIPE, SIG_DFL);	/* a SIGPIPE would kill this test */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	snprintf(server, sizeof(server), "127.0.0.1:%d", ntohs(sa.sin_port));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		fake_server_hangup_in_data(lfd);
	current_child = pid;
	close(lfd);

	assert_int_equal(buf_puts(&big, HDRS("1") "\r\n"), 0);
	for (i = 0; i < 60000; i++)	/* about 4.6 MB */
		assert_int_equal(buf_puts(&big, "0123456789012345678901234567"
					  "890123456789012345678901234567890"
					  "1234567890123\r\n"), 0);
	st.server = server;
	msg_init(&m[0], "b@c.example", "p@example.net", big.data);
	assert_int_equal(relay_send_batch(&st, m, 1, &err), 0);
	assert_int_equal(m[0].outcome, RELAY_DEFER);
	assert_int_equal(m[0].code, 0);
	waitpid(pid, &status, 0);
	current_child = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* Nothing left pending, the mask as it was. */
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGPIPE));
	sigprocmask(SIG_BLOCK, NULL, &mask);
	assert_false(sigismember(&mask, SIGPIPE));
	buf_free(&big);
}

/* Runs after every test, passed or failed: nothing is left running. */
static int
stop_servers(void **state)
{
	int status;

	sink_cleanup(&current_sink);
	tls_server_stop(&current_tls);
	if (current_child > 0) {
		kill(current_child, SIGKILL);
		waitpid(current_child, &status, 0);
		current_child = 0;
	}
	return 0;
}

/*
 * The replies of the big providers that refuse a sender's authentication
 * (as they document them) are told apart from a bad address, a full
 * mailbox or a policy refusal of another kind.
 */
static void
auth_refusals_are_told_apart(void **state)
{
	static const char *const yes[] = {
		"550 5.7.26 Unauthenticated email from lakeside.test is not accepted "
		"due to domain's DMARC policy",
		"550 5.7.515 Access denied, sending domain lakeside.test does not meet "
		"the required authentication level",
		"421 4.7.26 This mail has been rate limited because it is unauthenticated",
		"550 5.7.23 The message was rejected because of Sender Policy Framework "
		"violation",
		"554 5.7.9 Message not accepted for policy reasons: DKIM signature "
		"missing",
		"550-5.7.26 This mail is unauthenticated",
	};
	static const char *const no[] = {
		"550 5.1.1 The email account that you tried to reach does not exist",
		"552 5.2.2 Mailbox full",
		"554 5.7.1 Message rejected as spam",
		"550 5.7.260 something else",
		"421 4.7.0 Try again later",
		"451 4.3.0 Temporary failure: DKIM-ish words in a 4.3.0 reply",
		"",
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!relay_auth_refusal(yes[i]))
			fail_msg("not seen as an authentication refusal: %s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (relay_auth_refusal(no[i]))
			fail_msg("seen as an authentication refusal: %s", no[i]);
	assert_false(relay_auth_refusal(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(auth_refusals_are_told_apart),
		cmocka_unit_test_teardown(batch_of_three_is_sent_in_one_session_unaltered, stop_servers),
		cmocka_unit_test_teardown(large_messages_are_not_held_back_by_nagle, stop_servers),
		cmocka_unit_test_teardown(rcpt_soft_reject_defers_with_4xx, stop_servers),
		cmocka_unit_test_teardown(rcpt_hard_reject_fails_with_5xx, stop_servers),
		cmocka_unit_test_teardown(mail_hard_reject_fails_at_mail, stop_servers),
		cmocka_unit_test_teardown(data_end_hard_reject_fails_with_5xx, stop_servers),
		cmocka_unit_test_teardown(connection_dropped_at_data_defers_every_message, stop_servers),
		cmocka_unit_test_teardown(connection_dropped_after_final_dot_defers, stop_servers),
		cmocka_unit_test_teardown(service_closing_421_at_data_defers_with_421, stop_servers),
		cmocka_unit_test_teardown(no_server_listening_returns_negative_and_defers_all, stop_servers),
		cmocka_unit_test_teardown(greeting_421_returns_negative_and_defers_all, stop_servers),
		cmocka_unit_test_teardown(starttls_required_but_not_offered_sends_nothing, stop_servers),
		cmocka_unit_test_teardown(opportunistic_starttls_without_offer_sends_in_clear, stop_servers),
		cmocka_unit_test_teardown(missing_ca_file_fails_before_connecting, stop_servers),
		cmocka_unit_test_teardown(starttls_with_trusted_certificate_sends_over_tls, stop_servers),
		cmocka_unit_test_teardown(starttls_with_untrusted_certificate_sends_nothing, stop_servers),
		cmocka_unit_test_teardown(starttls_with_certificate_for_another_host_sends_nothing, stop_servers),
		cmocka_unit_test_teardown(auth_plain_sends_configured_credentials, stop_servers),
		cmocka_unit_test_teardown(auth_rejected_defers_all_and_returns_eacces, stop_servers),
		cmocka_unit_test_teardown(auth_not_offered_with_credentials_returns_eacces, stop_servers),
		cmocka_unit_test_teardown(slow_server_times_out_and_defers, stop_servers),
		cmocka_unit_test_teardown(malformed_messages_fail_locally_and_the_rest_is_sent, stop_servers),
		cmocka_unit_test_teardown(batch_rejected_locally_opens_no_session, stop_servers),
		cmocka_unit_test_teardown(invalid_arguments_are_rejected, stop_servers),
		cmocka_unit_test_teardown(server_hangup_mid_data_defers_without_sigpipe, stop_servers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
