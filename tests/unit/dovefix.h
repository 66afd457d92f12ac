/*
 * NAME
 *	dovefix.h - a real Dovecot on loopback for the unit tests
 * DESCRIPTION
 *	tu_dove_start starts "dovecot -F -c FILE" in a process group of its
 *	own, on free loopback ports, with a short temporary directory
 *	(/tmp/cpdove-XXXXXX) holding its config, state, log and maildirs: a
 *	passwd-file user TU_DOVE_USER with TU_DOVE_PASSWORD, a static userdb
 *	with uid/gid vmail. dove_opts may hide capabilities (caps, as
 *	imap_capability), offer TLS (ssl: STARTTLS on port and implicit TLS
 *	on tls_port, with the certificate NAME.pem, NAME.key of the
 *	directory certs, see certfix.h) and add config lines (extra). It
 *	waits until Dovecot accepts connections, or fails the test.
 *	tu_dove_stop kills the whole process group at once (an orderly stop
 *	takes a second) and removes the directory. Dovecot must switch to
 *	vmail: tu_dove_unusable, called first, says why a test binary must
 *	skip (no Dovecot, not root, no user vmail and none can be made), or
 *	NULL.
 *
 *	tu_dove_login opens a libetpan session of the test's own, logged in;
 *	tu_dove_append delivers exact bytes into a folder with APPEND.
 *	tu_dove_imapc_opts fills imapc's options for the test's user, in the
 *	clear; tu_dove_count is how many messages a folder holds, through
 *	imapc. For test binaries only: each includes this once, after
 *	cmocka.h.
 */
#ifndef CAREPOST_TEST_DOVEFIX_H
#define CAREPOST_TEST_DOVEFIX_H

#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libetpan/libetpan.h>

#include "fsfix.h"
#include "imapc.h"
#include "netfix.h"

#define TU_DOVECOT "/usr/sbin/dovecot"
#define TU_DOVE_USER "carepost"
#define TU_DOVE_PASSWORD "s3cret-pw"

struct dove_opts {
	const char *caps;	/* imap_capability, NULL: Dovecot's own */
	int ssl;		/* 1: STARTTLS on port, implicit TLS on tls_port */
	const char *certs;	/* with ssl: the directory of the certificates */
	const char *cert;	/* "srv" (default) or "wrong" */
	const char *extra;	/* more config lines */
};

struct dove {
	pid_t pid;
	int port;
	int tls_port;
	char dir[64];
};

static inline void
tu_dove_stop(struct dove *d)
{
	int status;

	/*
	 * Dovecot's orderly shutdown (SIGTERM) takes about a second; its
	 * process group (master, auth, log, imap...) is ours to end at once.
	 */
	if (d->pid > 0) {
		kill(-d->pid, SIGKILL);
		kill(d->pid, SIGKILL);	/* in case setpgid has not run yet */
		waitpid(d->pid, &status, 0);
		d->pid = 0;
	}
	tu_rm_rf(d->dir);
	d->dir[0] = '\0';
}

static inline void
tu_dove_start(struct dove *d, const struct dove_opts *o)
{
	static const struct dove_opts none;
	struct passwd *pw = getpwnam("vmail");
	char conf[4096], path[256], tls[1024] = "";
	int attempt;

	if (o == NULL)
		o = &none;
	assert_non_null(pw);
	memset(d, 0, sizeof(*d));
	strcpy(d->dir, "/tmp/cpdove-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	assert_int_equal(chmod(d->dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/mail", d->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(chown(path, pw->pw_uid, pw->pw_gid), 0);
	snprintf(path, sizeof(path), "%s/passwd", d->dir);
	tu_write_file(path, "%s", TU_DOVE_USER ":{PLAIN}" TU_DOVE_PASSWORD "\n");

	for (attempt = 0; attempt < 5; attempt++) {
		int i, status;

		d->port = tu_free_port();
		d->tls_port = tu_free_port();
		if (o->ssl)
			snprintf(tls, sizeof(tls),
				 "ssl = yes\n"
				 "ssl_cert = <%s/%s.pem\n"
				 "ssl_key = <%s/%s.key\n",
				 o->certs, o->cert ? o->cert : "srv",
				 o->certs, o->cert ? o->cert : "srv");
		else
			snprintf(tls, sizeof(tls), "ssl = no\n");
		snprintf(conf, sizeof(conf),
			 "base_dir = %1$s/run\n"
			 "state_dir = %1$s/state\n"
			 "log_path = %1$s/log\n"
			 "info_log_path = %1$s/log\n"
			 "protocols = imap\n"
			 "listen = 127.0.0.1\n"
			 "disable_plaintext_auth = no\n"
			 "auth_mechanisms = plain login\n"
			 "auth_failure_delay = 0\n"
			 "%2$s"
			 "%3$s%4$s%5$s"
			 "%8$s"
			 "passdb {\n  driver = passwd-file\n"
			 "  args = scheme=PLAIN %1$s/passwd\n}\n"
			 "userdb {\n  driver = static\n"
			 "  args = uid=vmail gid=vmail home=%1$s/mail/%%u\n}\n"
			 "mail_location = maildir:%1$s/mail/%%u/Maildir\n"
			 "service imap-login {\n"
			 "  inet_listener imap {\n    port = %6$d\n  }\n"
			 "  inet_listener imaps {\n    port = %7$d\n    ssl = yes\n  }\n"
			 "}\n",
			 d->dir, tls,
			 o->caps ? "imap_capability = " : "",
			 o->caps ? o->caps : "", o->caps ? "\n" : "",
			 d->port, o->ssl ? d->tls_port : 0,
			 o->extra ? o->extra : "");
		snprintf(path, sizeof(path), "%s/dovecot.conf", d->dir);
		tu_write_file(path, "%s", conf);

		d->pid = fork();
		assert_true(d->pid >= 0);
		if (d->pid == 0) {
			int fd = open("/dev/null", O_WRONLY);

			setpgid(0, 0);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execl(TU_DOVECOT, "dovecot", "-F", "-c", path, (char *)NULL);
			_exit(127);
		}
		for (i = 0; i < 400; i++) {
			if (tu_try_connect(d->port) == 0 &&
			    (!o->ssl || tu_try_connect(d->tls_port) == 0))
				return;
			if (waitpid(d->pid, &status, WNOHANG) == d->pid)
				break;		/* died: port taken? retry */
			tu_sleep_ms(25);
		}
		if (d->pid > 0) {
			kill(-d->pid, SIGKILL);
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
		}
	}
	d->pid = 0;
	fail_msg("dovecot did not start (see %s/log)", d->dir);
}

/* tu_dove_unusable - why Dovecot cannot run here (skip), or NULL. */
static inline const char *
tu_dove_unusable(void)
{
	const char *const useradd[] = { "useradd", "--system", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
		"vmail", NULL };

	if (access(TU_DOVECOT, X_OK) != 0)
		return TU_DOVECOT " not installed (apt-get install dovecot-imapd)";
	if (geteuid() != 0)
		return "needs root (Dovecot switches to user vmail)";
	if (getpwnam("vmail") == NULL)
		tu_run_quiet(useradd);
	if (getpwnam("vmail") == NULL)
		return "cannot create the system user vmail";
	return NULL;
}

/* tu_dove_login - a libetpan session on port, logged in as the user. */
static inline mailimap *
tu_dove_login(int port)
{
	mailimap *imap = mailimap_new(0, NULL);
	int r;

	assert_non_null(imap);
	mailimap_set_timeout(imap, 10);
	r = mailimap_socket_connect(imap, "127.0.0.1", (uint16_t)port);
	assert_true(r == MAILIMAP_NO_ERROR_NON_AUTHENTICATED);
	assert_int_equal(mailimap_login(imap, TU_DOVE_USER, TU_DOVE_PASSWORD),
			 MAILIMAP_NO_ERROR);
	return imap;
}

static inline void
tu_dove_logout(mailimap *imap)
{
	mailimap_logout(imap);
	mailimap_free(imap);
}

/* tu_dove_append - deliver exact bytes into folder with APPEND. */
static inline void
tu_dove_append(const struct dove *d, const char *folder, const char *msg)
{
	mailimap *imap = tu_dove_login(d->port);

	assert_int_equal(mailimap_append(imap, folder, NULL, NULL, msg,
					 strlen(msg)), MAILIMAP_NO_ERROR);
	tu_dove_logout(imap);
}

/* tu_dove_imapc_opts - imapc's options for d's user, in the clear. */
static inline void
tu_dove_imapc_opts(struct imapc_opts *o, const struct dove *d)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->port = d->port;
	o->tls = TLS_OFF;
	o->user = TU_DOVE_USER;
	o->password = TU_DOVE_PASSWORD;
	o->timeout = 10;
}

/* tu_dove_session - an imapc session on folder; fails the test if none. */
static inline struct imapc *
tu_dove_session(const struct dove *d, const char *folder)
{
	struct imapc_opts o;
	struct cp_error err = { 0 };
	struct imapc *c = NULL;
	int r;

	tu_dove_imapc_opts(&o, d);
	o.mailbox = folder;
	r = imapc_connect(&o, &c, &err);
	if (r < 0)
		fail_msg("imapc_connect %s: %d %s", folder, r, err.text);
	assert_non_null(c);
	return c;
}

/* tu_dove_count - the messages now in folder ("INBOX", "carepost/processed"). */
static inline size_t
tu_dove_count(const struct dove *d, const char *folder)
{
	struct imapc *c = tu_dove_session(d, folder);
	struct imapc_msg *m = NULL;
	struct cp_error err = { 0 };
	size_t n = 0;

	assert_int_equal(imapc_fetch(c, 1, 100000, &m, &n, &err), 0);
	imapc_msgs_free(m, n);
	imapc_close(c);
	return n;
}

#endif
