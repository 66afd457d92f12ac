/*
 * NAME
 *	test_imapc - the IMAP client against a real Dovecot on loopback
 * DESCRIPTION
 *	Each test starts its own Dovecot (dovecot -F -c FILE) on free
 *	loopback ports with a config of its own in a short temp dir, as
 *	Dovecot needs on loopback: passwd-file user "carepost", static userdb
 *	with uid/gid vmail (the system user is created when missing), maildir
 *	under the temp dir. Messages are delivered with APPEND over a second
 *	libetpan session (exact bytes, CRLF), or from a thread during IDLE.
 *	Capability-dependent paths (COPY + UID EXPUNGE, plain EXPUNGE, polling
 *	without IDLE) use Dovecot's imap_capability to hide MOVE, UIDPLUS and
 *	IDLE. Moves and waits go through what carepostd uses: imapc_move_uids,
 *	and imapc_idle_begin / imapc_fd / imapc_idle_end (wait_news).
 *	TLS tests use a CA and certificates made by openssl at run time: one
 *	for "localhost" and 127.0.0.1, one for another name, another CA.
 *	Two tests use a scripted Python server for what Dovecot never does:
 *	a PREAUTH greeting, and a body larger than its RFC822.SIZE.
 *
 *	The whole file exits 77 (skipped) when Dovecot or openssl is not
 *	installed or when not run as root (Dovecot must switch to vmail).
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
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <libetpan/libetpan.h>

#include "certfix.h"
#include "dovefix.h"
#include "fsfix.h"
#include "imapc.h"
#include "netfix.h"

#define USER TU_DOVE_USER
#define PASSWORD TU_DOVE_PASSWORD

/* --- helpers -------------------------------------------------------- */

static char certs[64];

/* --- Dovecot -------------------------------------------------------- */

static struct dove current;

/* dove_start - the test's Dovecot, with the group's certificates. */
static struct dove *
dove_start(const struct dove_opts *o)
{
	struct dove_opts with = { 0 };

	if (o)
		with = *o;
	with.certs = certs;
	tu_dove_start(&current, &with);
	return &current;
}

static int
stop_servers(void **state)
{
	(void)state;
	tu_dove_stop(&current);
	return 0;
}

/* --- delivery ------------------------------------------------------- */

/* Message number i: CRLF lines, a size that varies with i. */
static char *
make_message(int i, size_t filler)
{
	size_t cap = 512 + filler * 2, len;
	char *m = malloc(cap);
	size_t k;

	assert_non_null(m);
	len = (size_t)snprintf(m, cap,
			       "From: Test Sender <sender@example.org>\r\n"
			       "To: inbox@clinic.example\r\n"
			       "Subject: test message %d\r\n"
			       "Message-ID: <%d.test@example.org>\r\n"
			       "\r\n"
			       "Body of message %d.\r\n", i, i, i);
	for (k = 0; k < filler; k += 64) {
		len += (size_t)snprintf(m + len, cap - len,
					"%03d line of filler text, sixty-four bytes long, for size..\r\n",
					(int)(k / 64) % 1000);
	}
	return m;
}

static mailimap *
deliverer_open(int port)
{
	return tu_dove_login(port);
}

static void
deliverer_close(mailimap *imap)
{
	tu_dove_logout(imap);
}

static void
append(mailimap *imap, const char *folder, const char *msg)
{
	assert_int_equal(mailimap_append(imap, folder, NULL, NULL, msg,
					 strlen(msg)), MAILIMAP_NO_ERROR);
}

/* Deliver n messages (numbered from 1) into INBOX; keep copies if asked. */
static void
deliver(int port, int n, size_t filler, char **copies)
{
	mailimap *imap = deliverer_open(port);
	int i;

	for (i = 1; i <= n; i++) {
		char *m = make_message(i, filler ? filler : (size_t)(i * 97) % 3000);

		append(imap, "INBOX", m);
		if (copies)
			copies[i - 1] = m;
		else
			free(m);
	}
	deliverer_close(imap);
}

static void
opts_plain(struct imapc_opts *o, const struct dove *d)
{
	tu_dove_imapc_opts(o, d);
	o->processed_folder = "carepost/processed";
	o->quarantine_folder = "carepost/quarantine";
}

static struct imapc *
connect_ok(const struct imapc_opts *o)
{
	struct cp_error err = { 0 };
	struct imapc *c = NULL;
	int r = imapc_connect(o, &c, &err);

	if (r != 0)
		fail_msg("imapc_connect: %d %s", r, err.text);
	assert_non_null(c);
	return c;
}

/* All UIDs currently in folder, through imapc itself. */
static size_t
count_in(const struct dove *d, const char *folder)
{
	return tu_dove_count(d, folder);
}

/* Messages in INBOX's maildir cur/ carrying the \Seen flag (",S"). */
static int
count_seen(const struct dove *d)
{
	char path[256];
	struct dirent *e;
	DIR *dir;
	int n = 0, all = 0;

	snprintf(path, sizeof(path), "%s/mail/%s/Maildir/cur", d->dir, USER);
	dir = opendir(path);
	assert_non_null(dir);
	while ((e = readdir(dir)) != NULL) {
		const char *info = strstr(e->d_name, ":2,");

		if (info == NULL)
			continue;
		all++;
		if (strchr(info, 'S') != NULL)
			n++;
	}
	closedir(dir);
	assert_true(all > 0);
	return n;
}

/* --- tests: connect ------------------------------------------------- */

static void
login_succeeds_and_uidvalidity_is_stable(void **state)
{
	struct dove *d = dove_start(NULL);
	struct imapc_opts o;
	struct imapc *c;
	uint32_t v;

	opts_plain(&o, d);
	c = connect_ok(&o);
	v = imapc_uidvalidity(c);
	assert_true(v != 0);
	assert_true(imapc_fd(c) >= 0);
	assert_int_equal(imapc_has(c, "IDLE"), 1);
	assert_int_equal(imapc_has(c, "MOVE"), 1);	/* post-login caps */
	imapc_close(c);

	c = connect_ok(&o);
	assert_int_equal(imapc_uidvalidity(c), v);
	imapc_close(c);
}

static void
bad_password_fails_with_eacces_and_names_login(void **state)
{
	struct dove *d = dove_start(NULL);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = (struct imapc *)&o;

	opts_plain(&o, d);
	o.password = "wrong-password";
	assert_int_equal(imapc_connect(&o, &c, &err), -EACCES);
	assert_null(c);
	assert_non_null(strstr(err.text, "LOGIN"));
	assert_null(strstr(err.text, "wrong-password"));
}

static void
clear_text_is_refused_off_loopback(void **state)
{
	static const char *const remote[] = { "192.0.2.10", "imap.example.org",
		"2001:db8::1", "128.0.0.1", "localhost.example.org" };
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = NULL;
	size_t i;

	memset(&o, 0, sizeof(o));
	o.port = 1;
	o.tls = TLS_OFF;
	o.user = USER;
	o.password = PASSWORD;
	for (i = 0; i < CP_ARRAY_SIZE(remote); i++) {
		o.host = remote[i];
		assert_int_equal(imapc_connect(&o, &c, &err), -EPERM);
		assert_non_null(strstr(err.text, "refused"));
		assert_null(c);
	}
	/* Loopback in any spelling passes the policy (then nobody listens). */
	o.port = tu_free_port();
	o.host = "localhost";
	assert_int_equal(imapc_connect(&o, &c, &err), -ECONNREFUSED);
	o.host = "127.0.0.9";
	assert_int_equal(imapc_connect(&o, &c, &err), -ECONNREFUSED);
	/* Opportunistic TLS is not a mode for IMAP. */
	o.tls = TLS_OPPORTUNISTIC;
	assert_int_equal(imapc_connect(&o, &c, &err), -EINVAL);
}

static void
bad_folder_names_are_rejected_before_connecting(void **state)
{
	static const char *const bad[] = { "", "a\"b", "x*", "50%", "/lead",
		"trail/", "a//b", "caf\xc3\xa9" };
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = NULL;
	size_t i;

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = 1;
	o.tls = TLS_OFF;
	o.user = USER;
	o.password = PASSWORD;
	for (i = 0; i < CP_ARRAY_SIZE(bad); i++) {
		o.processed_folder = bad[i];
		assert_int_equal(imapc_connect(&o, &c, &err), -EINVAL);
	}
}

static void
folders_are_created_once_with_the_server_delimiter(void **state)
{
	struct dove *d = dove_start(NULL);
	struct imapc_opts o;
	struct imapc *c;
	struct stat st;
	char path[256];

	opts_plain(&o, d);
	c = connect_ok(&o);
	imapc_close(c);
	/* Dovecot's maildir uses '.': carepost/processed is .carepost.processed */
	snprintf(path, sizeof(path), "%s/mail/%s/Maildir/.carepost.processed",
		 d->dir, USER);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/mail/%s/Maildir/.carepost.quarantine",
		 d->dir, USER);
	assert_int_equal(stat(path, &st), 0);
	/* They exist now: connecting again is no error. */
	c = connect_ok(&o);
	imapc_close(c);
}

static void
missing_mailbox_fails_at_select(void **state)
{
	struct dove *d = dove_start(NULL);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = NULL;

	opts_plain(&o, d);
	o.mailbox = "no/such/box";
	assert_int_equal(imapc_connect(&o, &c, &err), -EPROTO);
	assert_non_null(strstr(err.text, "SELECT"));
}

static void
nobody_listening_is_econnrefused(void **state)
{
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = NULL;

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = tu_free_port();
	o.tls = TLS_OFF;
	o.user = USER;
	o.password = PASSWORD;
	assert_int_equal(imapc_connect(&o, &c, &err), -ECONNREFUSED);
	o.tls = TLS_IMPLICIT;
	assert_int_equal(imapc_connect(&o, &c, &err), -ECONNREFUSED);
}

/* --- tests: fetch --------------------------------------------------- */

static void
fetch_in_batches_returns_exact_bytes(void **state)
{
	struct dove *d = dove_start(NULL);
	char *sent[120] = { 0 };
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m;
	struct imapc *c;
	uint32_t next = 1;
	size_t n, total = 0, i;
	int calls = 0;

	deliver(d->port, 120, 0, sent);
	opts_plain(&o, d);
	c = connect_ok(&o);
	for (;;) {
		assert_int_equal(imapc_fetch(c, next, 50, &m, &n, &err), 0);
		if (n == 0) {
			assert_null(m);
			break;
		}
		calls++;
		assert_true(n <= 50);
		for (i = 0; i < n; i++) {
			const char *want = sent[total + i];

			assert_int_equal(m[i].uid, total + i + 1);
			assert_non_null(m[i].raw);
			assert_int_equal(m[i].len, strlen(want));
			assert_int_equal(m[i].size, strlen(want));
			assert_memory_equal(m[i].raw, want, m[i].len);
			assert_int_equal(m[i].raw[m[i].len], '\0');
		}
		total += n;
		next = m[n - 1].uid + 1;
		imapc_msgs_free(m, n);
	}
	assert_int_equal(calls, 3);
	assert_int_equal(total, 120);
	imapc_close(c);
	/* BODY.PEEK: fetching did not mark anything \Seen. */
	assert_int_equal(count_seen(d), 0);
	for (i = 0; i < 120; i++)
		free(sent[i]);
}

static void
first_uid_above_the_last_returns_nothing(void **state)
{
	struct dove *d = dove_start(NULL);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m = (struct imapc_msg *)&o;
	struct imapc *c;
	size_t n = 99;

	deliver(d->port, 3, 100, NULL);
	opts_plain(&o, d);
	c = connect_ok(&o);
	/* "UID 4:*" matches UID 3 on the server: must be filtered out. */
	assert_int_equal(imapc_fetch(c, 4, 50, &m, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(m);
	assert_int_equal(imapc_fetch(c, 1000, 50, &m, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(imapc_fetch(c, 2, 50, &m, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].uid, 2);
	assert_int_equal(m[1].uid, 3);
	imapc_msgs_free(m, n);
	/* UID 0 means "from the start". */
	assert_int_equal(imapc_fetch(c, 0, 50, &m, &n, &err), 0);
	assert_int_equal(n, 3);
	imapc_msgs_free(m, n);
	assert_int_equal(imapc_fetch(c, 1, 0, &m, &n, &err), -EINVAL);
	imapc_close(c);
}

static void
oversized_message_is_reported_without_body(void **state)
{
	struct dove *d = dove_start(NULL);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m;
	mailimap *imap;
	struct imapc *c;
	char *small = make_message(1, 0), *big = make_message(2, 5000);
	size_t n;

	imap = deliverer_open(d->port);
	append(imap, "INBOX", small);
	append(imap, "INBOX", big);
	append(imap, "INBOX", small);
	deliverer_close(imap);

	opts_plain(&o, d);
	o.max_size = 2000;
	c = connect_ok(&o);
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_non_null(m[0].raw);
	assert_null(m[1].raw);
	assert_int_equal(m[1].uid, 2);
	assert_int_equal(m[1].size, strlen(big));
	assert_int_equal(m[1].len, 0);
	assert_non_null(m[2].raw);
	assert_memory_equal(m[2].raw, small, strlen(small));
	imapc_msgs_free(m, n);
	imapc_close(c);
	free(small);
	free(big);
}

static void
batch_stops_at_max_size_bytes(void **state)
{
	struct dove *d = dove_start(NULL);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m;
	struct imapc *c;
	char *one = make_message(1, 1000);
	size_t n, len = strlen(one);

	free(one);
	deliver(d->port, 5, 1000, NULL);	/* the same size each */
	opts_plain(&o, d);
	o.max_size = 2 * len + len / 2;
	c = connect_ok(&o);
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 2);			/* a third would pass max_size */
	assert_int_equal(m[1].uid, 2);
	assert_non_null(m[1].raw);
	imapc_msgs_free(m, n);
	/* A short batch is not the end: the rest is pending. */
	assert_true(imapc_pending(c));
	assert_int_equal(imapc_fetch(c, 3, 50, &m, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].uid, 3);
	imapc_msgs_free(m, n);
	assert_true(imapc_pending(c));
	/* mail arriving meanwhile comes once the first answer is used up */
	deliver(d->port, 1, 1000, NULL);
	assert_int_equal(imapc_fetch(c, 5, 50, &m, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].uid, 5);
	imapc_msgs_free(m, n);
	assert_false(imapc_pending(c));
	assert_int_equal(imapc_fetch(c, 6, 50, &m, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].uid, 6);
	imapc_msgs_free(m, n);
	assert_int_equal(imapc_fetch(c, 7, 50, &m, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_false(imapc_pending(c));
	imapc_close(c);
}

/* --- tests: move ---------------------------------------------------- */

static void
check_moves(const struct dove *d, const struct imapc_opts *o0)
{
	const uint32_t uid1 = 1, uid3 = 3;
	struct cp_error err = { 0 };
	struct imapc_opts o = *o0;
	struct imapc_msg *m;
	char *sent[4] = { 0 };
	struct imapc *c;
	size_t n, i;

	deliver(d->port, 4, 0, sent);
	c = connect_ok(&o);
	assert_int_equal(imapc_move_uids(c, &uid1, 1, o.processed_folder, &err), 0);
	assert_int_equal(imapc_move_uids(c, &uid3, 1, o.quarantine_folder, &err), 0);
	/* Gone from INBOX, the others are left. */
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].uid, 2);
	assert_int_equal(m[1].uid, 4);
	imapc_msgs_free(m, n);
	/* Moving it again: no error, and nothing else moves (a UID set
	 * matches what exists). */
	assert_int_equal(imapc_move_uids(c, &uid1, 1, o.processed_folder, &err), 0);
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 2);
	imapc_msgs_free(m, n);
	imapc_close(c);

	/* Present, unaltered, in the folders. */
	o.mailbox = o0->processed_folder;
	c = connect_ok(&o);
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].len, strlen(sent[0]));
	assert_memory_equal(m[0].raw, sent[0], m[0].len);
	imapc_msgs_free(m, n);
	imapc_close(c);
	o.mailbox = o0->quarantine_folder;
	c = connect_ok(&o);
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(m[0].raw, sent[2], m[0].len);
	imapc_msgs_free(m, n);
	imapc_close(c);
	assert_int_equal(count_in(d, "INBOX"), 2);
	for (i = 0; i < 4; i++)
		free(sent[i]);
}

static void
move_uses_move_when_offered(void **state)
{
	struct dove *d = dove_start(NULL);
	struct imapc_opts o;

	opts_plain(&o, d);
	check_moves(d, &o);
}

static void
move_without_move_uses_copy_and_uid_expunge(void **state)
{
	const struct dove_opts dopts = {
		.caps = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE UIDPLUS",
	};
	struct dove *d = dove_start(&dopts);
	struct imapc_opts o;
	struct imapc *c;

	opts_plain(&o, d);
	c = connect_ok(&o);
	assert_int_equal(imapc_has(c, "MOVE"), 0);
	assert_int_equal(imapc_has(c, "UIDPLUS"), 1);
	imapc_close(c);
	check_moves(d, &o);
}

static void
move_without_uidplus_uses_plain_expunge(void **state)
{
	const struct dove_opts dopts = {
		.caps = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE",
	};
	struct dove *d = dove_start(&dopts);
	struct imapc_opts o;
	struct imapc *c;

	opts_plain(&o, d);
	c = connect_ok(&o);
	assert_int_equal(imapc_has(c, "MOVE"), 0);
	assert_int_equal(imapc_has(c, "UIDPLUS"), 0);
	imapc_close(c);
	check_moves(d, &o);
}

static void
move_to_a_missing_folder_fails_with_the_step(void **state)
{
	const uint32_t uid1 = 1;
	struct dove *d = dove_start(NULL);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c;

	deliver(d->port, 1, 10, NULL);
	opts_plain(&o, d);
	c = connect_ok(&o);
	assert_int_equal(imapc_move_uids(c, &uid1, 1, "no/such/folder", &err), -EPROTO);
	assert_non_null(strstr(err.text, "MOVE"));
	assert_non_null(strstr(err.text, "from 1 to no/such/folder"));
	assert_int_equal(imapc_move_uids(c, &uid1, 1, "bad*name", &err), -EINVAL);
	imapc_close(c);
	assert_int_equal(count_in(d, "INBOX"), 1);
}

/* --- tests: wait ---------------------------------------------------- */

/*
 * wait_news - how carepostd waits for mail, in one call: IDLE
 * (imapc_idle_begin), watch imapc_fd, DONE (imapc_idle_end) once the
 * socket stirs; a keep-alive is no news, so IDLE again until timeout_sec
 * has passed. 1: EXISTS, RECENT or EXPUNGE arrived; 0: none in time;
 * < 0: the error of begin or end.
 */
static int
wait_news(struct imapc *c, int timeout_sec, struct cp_error *err)
{
	double deadline = tu_now_seconds() + timeout_sec;

	for (;;) {
		struct pollfd pfd = { .fd = imapc_fd(c), .events = POLLIN };
		double left = deadline - tu_now_seconds();
		int r = imapc_idle_begin(c, err);

		if (r < 0)
			return r;
		if (r == 0 && left > 0)
			poll(&pfd, 1, (int)(left * 1000) + 1);
		r = imapc_idle_end(c, err);
		if (r != 0 || tu_now_seconds() >= deadline)
			return r;
	}
}

struct later {
	int port;
	long delay_ms;
};

static void *
deliver_later(void *arg)
{
	const struct later *l = arg;
	mailimap *imap;
	char *m;

	tu_sleep_ms(l->delay_ms);
	imap = mailimap_new(0, NULL);
	mailimap_set_timeout(imap, 10);
	if (mailimap_socket_connect(imap, "127.0.0.1", (uint16_t)l->port) ==
	    MAILIMAP_NO_ERROR_NON_AUTHENTICATED &&
	    mailimap_login(imap, USER, PASSWORD) == MAILIMAP_NO_ERROR) {
		m = make_message(42, 100);
		mailimap_append(imap, "INBOX", NULL, NULL, m, strlen(m));
		free(m);
		mailimap_logout(imap);
	}
	mailimap_free(imap);
	return NULL;
}

static void
idle_wakes_up_when_mail_arrives(void **state)
{
	struct dove *d = dove_start(NULL);
	struct later l = { d->port, 1000 };
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m;
	struct imapc *c;
	pthread_t t;
	double t0, took;
	size_t n;

	opts_plain(&o, d);
	c = connect_ok(&o);
	assert_int_equal(imapc_has(c, "IDLE"), 1);
	assert_int_equal(pthread_create(&t, NULL, deliver_later, &l), 0);
	t0 = tu_now_seconds();
	assert_int_equal(wait_news(c, 30, &err), 1);
	took = tu_now_seconds() - t0;
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(took >= 0.5 && took < 15);
	/* The session is usable after DONE. */
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 1);
	imapc_msgs_free(m, n);
	imapc_close(c);
}

/* The event-loop form: IDLE, poll the socket ourselves, DONE. */
static void
idle_begin_and_end_around_a_poll(void **state)
{
	struct dove *d = dove_start(NULL);
	struct later l = { d->port, 500 };
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m;
	struct imapc *c;
	struct pollfd pfd;
	pthread_t t;
	size_t n;
	int r;

	opts_plain(&o, d);
	c = connect_ok(&o);
	r = imapc_idle_begin(c, &err);
	assert_true(r == 0 || r == 1);
	assert_int_equal(imapc_idle_begin(c, &err), -EINVAL);	/* once */
	assert_int_equal(pthread_create(&t, NULL, deliver_later, &l), 0);
	pfd.fd = imapc_fd(c);
	pfd.events = POLLIN;
	if (r == 0)
		assert_int_equal(poll(&pfd, 1, 15000), 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	tu_sleep_ms(200);		/* let EXISTS arrive whole */
	assert_int_equal(imapc_idle_end(c, &err), 1);
	assert_int_equal(imapc_idle_end(c, &err), -EINVAL);	/* not idling */
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 1);
	imapc_msgs_free(m, n);
	/* closing while idling ends the IDLE first, without complaint */
	assert_int_equal(imapc_idle_begin(c, &err) >= 0, 1);
	imapc_close(c);
}

static void
idle_times_out_without_mail_despite_keepalives(void **state)
{
	/* "* OK Still here" every second instead of every two minutes. */
	const struct dove_opts dopts = {
		.extra = "imap_idle_notify_interval = 1 secs\n",
	};
	const uint32_t uid1 = 1, uid2 = 2;
	struct dove *d = dove_start(&dopts);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c;
	double t0, took;

	deliver(d->port, 2, 10, NULL);
	opts_plain(&o, d);
	c = connect_ok(&o);
	/* Our own moves (EXPUNGE answers) before idling are no news. */
	assert_int_equal(imapc_move_uids(c, &uid1, 1, o.processed_folder, &err), 0);
	t0 = tu_now_seconds();
	assert_int_equal(wait_news(c, 3, &err), 0);
	took = tu_now_seconds() - t0;
	assert_true(took >= 2.9 && took < 7);
	assert_int_equal(wait_news(c, 0, &err), 0);
	/* Still in step with the server afterwards. */
	assert_int_equal(imapc_move_uids(c, &uid2, 1, o.processed_folder, &err), 0);
	imapc_close(c);
}

/* Without IDLE carepostd polls: a fetch every poll_interval. */
static void
without_idle_new_mail_is_found_by_polling(void **state)
{
	const struct dove_opts dopts = {
		.caps = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE UIDPLUS MOVE",
	};
	struct dove *d = dove_start(&dopts);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m;
	struct imapc *c;
	size_t n, found, i;

	opts_plain(&o, d);
	c = connect_ok(&o);
	assert_int_equal(imapc_has(c, "IDLE"), 0);
	assert_int_equal(imapc_idle_begin(c, &err), -ENOTSUP);
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 0);
	imapc_msgs_free(m, n);
	/* The very next poll sees what was delivered meanwhile (a NOOP
	 * before the SEARCH: Dovecot syncs after a command, not before),
	 * every time. */
	for (i = 0, found = 0; i < 3; i++) {
		deliver(d->port, 1, 10, NULL);
		assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
		found += n == i + 1;
		imapc_msgs_free(m, n);
	}
	assert_int_equal(found, 3);
	imapc_close(c);
}

/* The pid of the imap process serving our session, from Dovecot's log. */
static pid_t
session_pid(const struct dove *d)
{
	char path[128], *log = NULL, *p;
	size_t len;
	pid_t pid = 0;
	int i;

	snprintf(path, sizeof(path), "%s/log", d->dir);
	for (i = 0; i < 100 && pid == 0; i++) {
		assert_int_equal(cp_read_file(path, 1 << 20, &log, &len), 0);
		p = strstr(log, "mpid=");
		if (p != NULL)
			pid = (pid_t)atoi(p + 5);
		free(log);
		if (pid == 0)
			tu_sleep_ms(20);
	}
	assert_true(pid > 0);
	return pid;
}

static void
server_gone_during_wait_is_eio(void **state)
{
	struct dove *d = dove_start(NULL);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c;
	double t0;

	opts_plain(&o, d);
	c = connect_ok(&o);
	assert_int_equal(kill(session_pid(d), SIGKILL), 0);
	t0 = tu_now_seconds();
	assert_int_equal(wait_news(c, 10, &err), -EIO);
	assert_true(tu_now_seconds() - t0 < 5);
	assert_non_null(strstr(err.text, "IDLE"));
	imapc_close(c);		/* no LOGOUT on a dead stream */
}

/* --- tests: TLS ----------------------------------------------------- */

static void
opts_tls(struct imapc_opts *o, const struct dove *d, enum tls_mode mode,
	 const char *host, const char *ca)
{
	static char ca_path[128];

	opts_plain(o, d);
	o->host = host;
	o->tls = mode;
	o->port = mode == TLS_IMPLICIT ? d->tls_port : d->port;
	snprintf(ca_path, sizeof(ca_path), "%s/%s", certs, ca);
	o->ca_file = ca_path;
}

static void
starttls_with_trusted_ca_logs_in(void **state)
{
	const uint32_t uid2 = 2;
	const struct dove_opts dopts = { .ssl = 1 };
	struct dove *d = dove_start(&dopts);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m;
	struct imapc *c;
	size_t n;

	deliver(d->port, 2, 0, NULL);
	opts_tls(&o, d, TLS_REQUIRED, "localhost", "ca.pem");
	c = connect_ok(&o);
	assert_int_equal(imapc_has(c, "STARTTLS"), 0);	/* post-TLS caps */
	assert_int_equal(imapc_fetch(c, 1, 50, &m, &n, &err), 0);
	assert_int_equal(n, 2);
	imapc_msgs_free(m, n);
	assert_int_equal(imapc_move_uids(c, &uid2, 1, o.processed_folder, &err), 0);
	imapc_close(c);
	/* An IP address is checked against the IP SAN. */
	opts_tls(&o, d, TLS_REQUIRED, "127.0.0.1", "ca.pem");
	c = connect_ok(&o);
	imapc_close(c);
}

static void
implicit_tls_with_trusted_ca_logs_in(void **state)
{
	const struct dove_opts dopts = { .ssl = 1 };
	struct dove *d = dove_start(&dopts);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m;
	struct imapc *c;
	size_t n;

	deliver(d->port, 3, 0, NULL);
	opts_tls(&o, d, TLS_IMPLICIT, "localhost", "ca.pem");
	c = connect_ok(&o);
	assert_int_equal(imapc_fetch(c, 1, 2, &m, &n, &err), 0);
	assert_int_equal(n, 2);
	imapc_msgs_free(m, n);
	assert_int_equal(wait_news(c, 1, &err), 0);
	imapc_close(c);
}

static void
untrusted_certificate_is_refused_before_login(void **state)
{
	const struct dove_opts dopts = { .ssl = 1 };
	struct dove *d = dove_start(&dopts);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = NULL;
	char *log = NULL;
	char path[128];
	size_t len;

	opts_tls(&o, d, TLS_IMPLICIT, "localhost", "other.pem");
	assert_int_equal(imapc_connect(&o, &c, &err), -EPERM);
	assert_null(c);
	assert_non_null(strstr(err.text, "not trusted"));
	opts_tls(&o, d, TLS_REQUIRED, "localhost", "other.pem");
	assert_int_equal(imapc_connect(&o, &c, &err), -EPERM);
	/* No CA file: the system store does not know our test CA either. */
	opts_tls(&o, d, TLS_REQUIRED, "localhost", "ca.pem");
	o.ca_file = NULL;
	assert_int_equal(imapc_connect(&o, &c, &err), -EPERM);
	/* The password never went out: Dovecot logged no login. */
	tu_sleep_ms(200);
	snprintf(path, sizeof(path), "%s/log", d->dir);
	assert_int_equal(cp_read_file(path, 1 << 20, &log, &len), 0);
	assert_null(strstr(log, "Login: user=<" USER ">"));
	free(log);
}

static void
certificate_for_another_host_is_refused(void **state)
{
	const struct dove_opts dopts = { .ssl = 1, .cert = "wrong" };
	struct dove *d = dove_start(&dopts);
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = NULL;

	opts_tls(&o, d, TLS_IMPLICIT, "localhost", "ca.pem");
	assert_int_equal(imapc_connect(&o, &c, &err), -EPERM);
	assert_non_null(strstr(err.text, "not trusted"));
	opts_tls(&o, d, TLS_REQUIRED, "127.0.0.1", "ca.pem");
	assert_int_equal(imapc_connect(&o, &c, &err), -EPERM);
}

static void
starttls_required_but_not_offered_fails(void **state)
{
	struct dove *d = dove_start(NULL);	/* ssl = no */
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = NULL;

	opts_tls(&o, d, TLS_REQUIRED, "localhost", "ca.pem");
	assert_int_equal(imapc_connect(&o, &c, &err), -EPROTO);
	assert_non_null(strstr(err.text, "STARTTLS"));
	assert_null(c);
}

/* --- tests: a scripted server for what Dovecot will not do ---------- */

/*
 * One connection, then exit. argv: mode, port file, transcript file.
 * "preauth": greet with PREAUTH. "liar": claim RFC822.SIZE 100 for UID 1
 * but send a 5000-byte body, whatever part was asked for.
 */
static const char liar_py[] =
	"import os, socket, sys\n"
	"mode, portfile, out = sys.argv[1:4]\n"
	"s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
	"open(portfile + '.t', 'w').write(str(s.getsockname()[1]))\n"
	"os.rename(portfile + '.t', portfile)\n"
	"c, _ = s.accept(); f = c.makefile('rb'); log = open(out, 'wb')\n"
	"def send(x): c.sendall(x.encode() if isinstance(x, str) else x)\n"
	"if mode == 'preauth':\n"
	"    send('* PREAUTH [CAPABILITY IMAP4rev1] hello\\r\\n')\n"
	"else:\n"
	"    send('* OK [CAPABILITY IMAP4rev1] hello\\r\\n')\n"
	"while True:\n"
	"    l = f.readline()\n"
	"    if not l: break\n"
	"    log.write(l); log.flush()\n"
	"    w = l.decode().split()\n"
	"    if len(w) < 2: continue\n"
	"    t, cmd = w[0], ' '.join(w[1:]).upper()\n"
	"    if cmd.startswith('CAPABILITY'):\n"
	"        send('* CAPABILITY IMAP4rev1\\r\\n')\n"
	"    elif cmd.startswith('LIST'):\n"
	"        send('* LIST (\\\\Noselect) \"/\" \"\"\\r\\n')\n"
	"    elif cmd.startswith('SELECT'):\n"
	"        send('* 1 EXISTS\\r\\n* OK [UIDVALIDITY 7] v\\r\\n')\n"
	"        t = t + ' OK [READ-WRITE]'\n"
	"    elif cmd.startswith('UID SEARCH'):\n"
	"        send('* SEARCH 1\\r\\n')\n"
	"    elif cmd.startswith('UID FETCH') and 'RFC822.SIZE' in cmd:\n"
	"        send('* 1 FETCH (UID 1 RFC822.SIZE 100)\\r\\n')\n"
	"    elif cmd.startswith('UID FETCH'):\n"
	"        send('* 1 FETCH (UID 1 BODY[]<0> {5000}\\r\\n' + 'x' * 5000 + ')\\r\\n')\n"
	"    elif cmd.startswith('LOGOUT'):\n"
	"        send('* BYE bye\\r\\n' + t + ' OK bye\\r\\n'); break\n"
	"    send(t + (' done\\r\\n' if ' OK' in t else ' OK done\\r\\n'))\n";

struct liar {
	pid_t pid;
	int port;
	char dir[64];
	char out[128];
};

static struct liar current_liar;

static void
liar_stop(struct liar *l)
{
	int status;

	if (l->pid > 0) {
		kill(l->pid, SIGKILL);
		waitpid(l->pid, &status, 0);
		l->pid = 0;
	}
	tu_rm_rf(l->dir);
	l->dir[0] = '\0';
}

static int
stop_liar(void **state)
{
	(void)state;
	liar_stop(&current_liar);
	return 0;
}

static struct liar *
liar_start(const char *mode)
{
	struct liar *l = &current_liar;
	char portfile[128], *text = NULL;
	size_t len;
	int i;

	memset(l, 0, sizeof(*l));
	strcpy(l->dir, "/tmp/cpimapc-liar-XXXXXX");
	assert_non_null(mkdtemp(l->dir));
	snprintf(portfile, sizeof(portfile), "%s/port", l->dir);
	snprintf(l->out, sizeof(l->out), "%s/out", l->dir);
	l->pid = fork();
	assert_true(l->pid >= 0);
	if (l->pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("python3", "python3", "-c", liar_py, mode, portfile,
		       l->out, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 400; i++) {
		if (cp_read_file(portfile, 64, &text, &len) == 0) {
			l->port = atoi(text);
			free(text);
			return l;
		}
		tu_sleep_ms(10);
	}
	liar_stop(l);
	print_message("skipped: python3 did not start the scripted server\n");
	skip();
	return l;
}

static char *
liar_transcript(struct liar *l)
{
	char *text = NULL;
	size_t len;
	int status;

	waitpid(l->pid, &status, 0);	/* it exits after one session */
	l->pid = 0;
	assert_int_equal(cp_read_file(l->out, 1 << 20, &text, &len), 0);
	return text;
}

static void
preauth_greeting_is_refused_without_sending_the_password(void **state)
{
	struct liar *l = liar_start("preauth");
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc *c = NULL;
	char *log;

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = l->port;
	o.tls = TLS_OFF;
	o.user = USER;
	o.password = PASSWORD;
	o.timeout = 5;
	assert_int_equal(imapc_connect(&o, &c, &err), -EPROTO);
	assert_non_null(strstr(err.text, "PREAUTH"));
	log = liar_transcript(l);
	assert_null(strstr(log, PASSWORD));
	assert_null(strstr(log, "LOGIN"));
	free(log);
}

static void
body_larger_than_announced_is_reported_without_body(void **state)
{
	struct liar *l = liar_start("liar");
	struct cp_error err = { 0 };
	struct imapc_opts o;
	struct imapc_msg *m = NULL;
	struct imapc *c;
	char *log;
	size_t n = 0;

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = l->port;
	o.tls = TLS_OFF;
	o.user = USER;
	o.password = PASSWORD;
	o.timeout = 5;
	o.max_size = 1000;
	c = connect_ok(&o);
	assert_int_equal(imapc_uidvalidity(c), 7);
	assert_int_equal(imapc_fetch(c, 1, 10, &m, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].uid, 1);
	assert_null(m[0].raw);
	assert_int_equal(m[0].size, 5000);
	imapc_msgs_free(m, n);
	imapc_close(c);
	log = liar_transcript(l);
	/* We asked for no more than max_size + 1 bytes. */
	assert_non_null(strstr(log, "BODY.PEEK[]<0.1001>"));
	free(log);
}

/* --- tests: backoff ------------------------------------------------- */

static void
backoff_grows_exponentially_with_jitter_and_a_cap(void **state)
{
	int a, i, lo, hi, distinct = 0, prev = -1;

	for (a = -1; a <= 40; a++) {
		int base = a <= 0 ? 1 : (a >= 9 ? 300 : (1 << a));

		if (base > 300)
			base = 300;
		lo = base * 75 / 100;
		hi = (base * 125 + 99) / 100;
		if (lo < 1)
			lo = 1;
		if (hi > 300)
			hi = 300;
		for (i = 0; i < 200; i++) {
			int s = imapc_backoff(a);

			assert_true(s >= 1 && s <= IMAPC_BACKOFF_MAX);
			assert_true(s >= lo && s <= hi);
		}
	}
	for (i = 0; i < 200; i++) {
		int s = imapc_backoff(6);	/* 64s +- 16 */

		if (s != prev)
			distinct++;
		prev = s;
	}
	assert_true(distinct > 5);
	assert_true(imapc_backoff(INT32_MAX) <= IMAPC_BACKOFF_MAX);
	assert_true(imapc_backoff(3) < imapc_backoff(9));
}

/* --- main ----------------------------------------------------------- */

static int
make_certs(void)
{
	strcpy(certs, "/tmp/cpimapc-ca-XXXXXX");
	if (mkdtemp(certs) == NULL)
		return -1;
	chmod(certs, 0755);
	/* The server's certificate names both: clients connect to either. */
	return tu_make_certs(certs, "DNS:localhost,IP:127.0.0.1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff_grows_exponentially_with_jitter_and_a_cap),
		cmocka_unit_test(clear_text_is_refused_off_loopback),
		cmocka_unit_test(bad_folder_names_are_rejected_before_connecting),
		cmocka_unit_test(nobody_listening_is_econnrefused),
		cmocka_unit_test_teardown(login_succeeds_and_uidvalidity_is_stable, stop_servers),
		cmocka_unit_test_teardown(bad_password_fails_with_eacces_and_names_login, stop_servers),
		cmocka_unit_test_teardown(folders_are_created_once_with_the_server_delimiter, stop_servers),
		cmocka_unit_test_teardown(missing_mailbox_fails_at_select, stop_servers),
		cmocka_unit_test_teardown(fetch_in_batches_returns_exact_bytes, stop_servers),
		cmocka_unit_test_teardown(first_uid_above_the_last_returns_nothing, stop_servers),
		cmocka_unit_test_teardown(oversized_message_is_reported_without_body, stop_servers),
		cmocka_unit_test_teardown(batch_stops_at_max_size_bytes, stop_servers),
		cmocka_unit_test_teardown(move_uses_move_when_offered, stop_servers),
		cmocka_unit_test_teardown(move_without_move_uses_copy_and_uid_expunge, stop_servers),
		cmocka_unit_test_teardown(move_without_uidplus_uses_plain_expunge, stop_servers),
		cmocka_unit_test_teardown(move_to_a_missing_folder_fails_with_the_step, stop_servers),
		cmocka_unit_test_teardown(idle_wakes_up_when_mail_arrives, stop_servers),
		cmocka_unit_test_teardown(idle_begin_and_end_around_a_poll, stop_servers),
		cmocka_unit_test_teardown(idle_times_out_without_mail_despite_keepalives, stop_servers),
		cmocka_unit_test_teardown(without_idle_new_mail_is_found_by_polling, stop_servers),
		cmocka_unit_test_teardown(server_gone_during_wait_is_eio, stop_servers),
		cmocka_unit_test_teardown(starttls_with_trusted_ca_logs_in, stop_servers),
		cmocka_unit_test_teardown(implicit_tls_with_trusted_ca_logs_in, stop_servers),
		cmocka_unit_test_teardown(untrusted_certificate_is_refused_before_login, stop_servers),
		cmocka_unit_test_teardown(certificate_for_another_host_is_refused, stop_servers),
		cmocka_unit_test_teardown(starttls_required_but_not_offered_fails, stop_servers),
		cmocka_unit_test_teardown(preauth_greeting_is_refused_without_sending_the_password, stop_liar),
		cmocka_unit_test_teardown(body_larger_than_announced_is_reported_without_body, stop_liar),
	};
	const char *why = tu_dove_unusable();
	int r;

	if (why != NULL) {
		printf("skipped: %s\n", why);
		return 77;
	}
	if (make_certs() < 0) {
		tu_rm_rf(certs);
		printf("skipped: openssl cannot make the test certificates\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);	/* as carepostd does; see imapc.h */
	r = cmocka_run_group_tests(tests, NULL, NULL);
	tu_rm_rf(certs);
	return r;
}
