/*
 * NAME
 *	sinkfix.h - a real Postfix smtp-sink on loopback for the unit tests
 * DESCRIPTION
 *	sink_start starts /usr/sbin/smtp-sink on a free loopback port with
 *	its own dump directory and protocol log (-v), with extra options
 *	(NULL-terminated: -r for 4xx, -f for 5xx, -q, -Q, -a, -w...), and
 *	waits until it accepts connections; the test is skipped (with the
 *	reason) when smtp-sink is not installed. sink_stop ends it;
 *	sink_cleanup ends it and removes its files. sink_log is the protocol
 *	log (after sink_stop; caller frees). sink_dumps reads every message
 *	the sink stored: smtp-sink writes each as received (dot-stuffing
 *	undone, CRLF turned into LF) after its own X-* and Received lines,
 *	so content points at the message as sent; dumps_free frees them.
 *
 *	The running sink lives in static storage (current_sink), so that a
 *	teardown can stop it when an assertion has jumped out of a test.
 *	For test binaries only: each includes this once, after cmocka.h.
 */
#ifndef CAREPOST_TEST_SINKFIX_H
#define CAREPOST_TEST_SINKFIX_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netfix.h"
#include "util.h"

#define SMTP_SINK "/usr/sbin/smtp-sink"

struct sink {
	pid_t pid;
	int port;
	char dir[64];
	char log[512];
	char server[32];
};

static inline void
skip_without_sink(void)
{
	if (access(SMTP_SINK, X_OK) != 0) {
		print_message("skipped: %s not installed (apt-get install "
			      "postfix)\n", SMTP_SINK);
		skip();
	}
}

/* The running test's sink: a teardown stops it after a failed assertion. */
static struct sink current_sink __attribute__((unused));

/* Start smtp-sink with extra options (NULL-terminated); waits until it
 * accepts connections. */
static inline struct sink *
sink_start(const char *const *opts)
{
	struct sink *s = &current_sink;
	int attempt;

	skip_without_sink();
	memset(s, 0, sizeof(*s));
	strcpy(s->dir, "/tmp/carepost-relay-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->log, sizeof(s->log), "%.63s.log", s->dir);

	for (attempt = 0; attempt < 5; attempt++) {
		char tmpl[512], addr[32];
		const char *argv[32];
		int argc = 0, i, status;

		s->port = tu_free_port();
		snprintf(s->server, sizeof(s->server), "127.0.0.1:%d", s->port);
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
		snprintf(tmpl, sizeof(tmpl), "%.63s/m.", s->dir);
		argv[argc++] = "smtp-sink";
		if (geteuid() == 0) {
			argv[argc++] = "-u";
			argv[argc++] = "root";
		}
		argv[argc++] = "-v";
		argv[argc++] = "-d";
		argv[argc++] = tmpl;
		for (i = 0; opts && opts[i]; i++)
			argv[argc++] = opts[i];
		argv[argc++] = addr;
		argv[argc++] = "100";
		argv[argc] = NULL;

		s->pid = fork();
		assert_true(s->pid >= 0);
		if (s->pid == 0) {
			int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC,
				      0600);

			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execv(SMTP_SINK, (char *const *)argv);
			_exit(127);
		}
		for (i = 0; i < 200; i++) {
			if (tu_try_connect(s->port) == 0)
				return s;
			if (waitpid(s->pid, &status, WNOHANG) == s->pid)
				break;		/* died: port taken? retry */
			tu_sleep_ms(25);
		}
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &status, 0);
	}
	s->pid = 0;
	fail_msg("smtp-sink did not start (see %s)", s->log);
	return s;
}

static inline void
sink_stop(struct sink *s)
{
	int status;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, &status, 0);
		s->pid = 0;
	}
}

static inline void
sink_cleanup(struct sink *s)
{
	DIR *d;
	struct dirent *e;
	char path[384];

	sink_stop(s);
	if (s->dir[0] == '\0')
		return;
	d = opendir(s->dir);
	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(s->dir);
	unlink(s->log);
	s->dir[0] = '\0';
}

/* The protocol log; call after sink_stop. Caller frees. */
static inline char *
sink_log(struct sink *s)
{
	char *data = NULL;
	size_t len;

	assert_int_equal(cp_read_file(s->log, 1 << 20, &data, &len), 0);
	return data;
}

struct dump {
	char *raw;
	char mail[128];
	char rcpt[128];
	const char *content;		/* inside raw */
};

static inline void
dump_field(const char *raw, const char *name, char *out, size_t size)
{
	const char *p = strstr(raw, name), *eol;

	out[0] = '\0';
	if (p == NULL)
		return;
	p += strlen(name);
	eol = strchr(p, '\n');
	if (eol == NULL)
		return;
	snprintf(out, size, "%.*s", (int)(eol - p), p);
}

/* Read every dump file of the sink. */
static inline size_t
sink_dumps(struct sink *s, struct dump *out, size_t max)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[384];
		const char *p;
		size_t len;
		int r;

		if (e->d_name[0] == '.')
			continue;
		assert_true(n < max);
		snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
		r = cp_read_file(path, 16 << 20, &out[n].raw, &len);
		if (r == -ENOENT)
			continue;	/* a refused message's file, just removed */
		assert_int_equal(r, 0);
		dump_field(out[n].raw, "X-Mail-Args: ", out[n].mail,
			   sizeof(out[n].mail));
		dump_field(out[n].raw, "X-Rcpt-Args: ", out[n].rcpt,
			   sizeof(out[n].rcpt));
		/* smtp-sink's Received header is three lines; ours follow. */
		out[n].content = NULL;
		p = strstr(out[n].raw, "Received: from ");
		if (p) {
			p = strchr(p, '\n');
			while (p && p[1] == '\t')
				p = strchr(p + 1, '\n');
			if (p)
				out[n].content = p + 1;
		}
		n++;
	}
	closedir(d);
	return n;
}

static inline void
dumps_free(struct dump *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(d[i].raw);
}

#endif
