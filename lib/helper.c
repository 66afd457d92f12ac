/*
 * NAME
 *	helper - a helper process over a socket pair, and the frames it speaks
 * DESCRIPTION
 *	See helper.h. Finding and starting a helper come first, then the
 *	helper's own setup, then the frames both ends speak.
 */
#include "helper.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sysexits.h>

extern char **environ;

#ifndef CAREPOST_LIBEXECDIR
#define CAREPOST_LIBEXECDIR "/usr/local/libexec/carepost"
#endif

/* ---- finding, starting and ending a helper ---- */

/* executable - path names a regular file we may run. */
static int
executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(path, X_OK) == 0;
}

/* put - path into out: 0, or -ENAMETOOLONG. */
static int
put(char *out, size_t outlen, const char *path)
{
	return cp_snprintf_ok(out, outlen, "%s", path) < 0 ? -ENAMETOOLONG : 0;
}

int
helper_find(const char *name, char *out, size_t outlen)
{
	char self[PATH_MAX], path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (outlen > 0)
		out[0] = '\0';
	if (n <= 0 || (size_t)n >= sizeof(self) - 1)
		return n < 0 ? -errno : -ENAMETOOLONG;
	self[n] = '\0';
	/* Replaced on disk (an upgrade): the new binaries may speak another
	 * version. */
	if (n > 10 && strcmp(self + n - 10, " (deleted)") == 0)
		return -ENOENT;
	if (name != NULL && name[0] == '/')	/* a path: as it is, or not at all */
		return executable(name) ? put(out, outlen, name) : -ENOENT;
	slash = strrchr(self, '/');
	if (name != NULL && slash != NULL &&
	    cp_snprintf_ok(path, sizeof(path), "%.*s/%s", (int)(slash - self),
			   self, name) == 0 && executable(path))
		return put(out, outlen, path);		/* the build tree */
	if (name != NULL &&
	    cp_snprintf_ok(path, sizeof(path), "%s/%s", CAREPOST_LIBEXECDIR,
			   name) == 0 && executable(path))
		return put(out, outlen, path);		/* installed */
	return put(out, outlen, self);			/* this program itself */
}

/* stop_signals - what a helper ignores: its caller ends it. */
static void
stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

int
helper_spawn(const char *exe, const char *argv0, const char *flag,
	     char *const envp[], pid_t *pid, int *fd, struct cp_error *err)
{
	char *argv[] = { (char *)argv0, (char *)flag, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t stop;
	int sv[2], r;

	*pid = 0;
	*fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return cp_error_set(err, -errno, "%s: socketpair: %s", argv0,
				    strerror(errno));
	/* dup2 onto itself would leave close-on-exec set. */
	if (sv[1] == HELPER_FD) {
		int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, HELPER_FD + 1);

		close(sv[1]);
		sv[1] = moved;
		if (moved < 0) {
			r = -errno;
			close(sv[0]);
			return cp_error_set(err, r, "%s: %s", argv0, strerror(-r));
		}
	}
	/* Born with the stop signals blocked: a SIGTERM meant for carepostd
	 * (systemd signals the whole unit) that comes before the helper
	 * ignores it must not end it (helper_serve_begin unblocks them). */
	stop_signals(&stop);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	r = posix_spawn_file_actions_adddup2(&fa, sv[1], HELPER_FD);
	if (r == 0)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, HELPER_FD + 1);
	if (r == 0)
		r = posix_spawnattr_setsigmask(&at, &stop);
	/* A process group of its own, which the processes it starts (gpg)
	 * join: helper_reap kills the group, so that none outlives it. */
	if (r == 0)
		r = posix_spawnattr_setpgroup(&at, 0);
	if (r == 0)
		r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
					     POSIX_SPAWN_SETPGROUP);
	if (r == 0)
		r = posix_spawn(pid, exe, &fa, &at, argv,
				envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(sv[1]);
	if (r != 0) {
		close(sv[0]);
		*pid = 0;
		return cp_error_set(err, -r, "%s: cannot start %s: %s", argv0,
				    exe, strerror(r));
	}
	*fd = sv[0];
	return 0;
}

int
helper_reap(pid_t *pid, int *fd)
{
	int status = -1;

	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	if (*pid > 0) {
		kill(-*pid, SIGKILL);
		while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
			;
		*pid = 0;
	}
	return status;
}

int
helper_serve_begin(const char *flag)
{
	struct stat st;
	sigset_t stop;

	/* It holds what it works on: no core file of it. */
	if (cp_no_core_dumps() < 0)
		return EX_OSERR;
	if (fstat(HELPER_FD, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "%s: internal: started by carepostd and "
			"carepostctl only\n", flag);
		return EX_USAGE;
	}
	/* The caller decides when this ends: by closing the socket. The stop
	 * signals came blocked (helper_spawn): ignored now, one already
	 * pending is dropped, and its children inherit a clean mask. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	stop_signals(&stop);
	sigprocmask(SIG_UNBLOCK, &stop, NULL);
	return 0;
}

/* ---- frames ---- */

int
helper_frame_parse(const void *data, size_t len, struct helper_frame *f)
{
	const unsigned char *p = data;
	size_t off = 8;
	uint32_t n, flen;

	memset(f, 0, sizeof(*f));
	if (len < 8 || len > HELPER_MAX_FRAME)
		return -EBADMSG;
	memcpy(&f->tag, p, 4);
	memcpy(&n, p + 4, 4);
	if (n > HELPER_MAX_FIELDS)
		return -EBADMSG;
	for (uint32_t i = 0; i < n; i++) {
		if (len - off < 4)
			return -EBADMSG;
		memcpy(&flen, p + off, 4);
		off += 4;
		if (flen > len - off)
			return -EBADMSG;
		f->field[i] = (const char *)p + off;
		f->len[i] = flen;
		off += flen;
	}
	if (off != len)
		return -EBADMSG;
	f->n = n;
	return 0;
}

/*
 * wait_for - poll fd until events (POLLIN: it can be read; POLLOUT: it
 * can take more), or it has hung up, at most until deadline (cp_mono_ms;
 * 0: no limit): 0, or -ETIMEDOUT.
 */
static int
wait_for(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline == 0 ? -1 : deadline - cp_mono_ms();
		int r;

		if (deadline != 0 && left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int
helper_send_by(int fd, const void *data, size_t len, int64_t deadline)
{
	const char *p = data;
	int flags = MSG_NOSIGNAL | (deadline != 0 ? MSG_DONTWAIT : 0);

	while (len > 0) {
		ssize_t w = send(fd, p, len, flags);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && deadline != 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* A helper that stops reading is waited for only
			 * until the deadline. */
			int r = wait_for(fd, POLLOUT, deadline);

			if (r < 0)
				return r;
			continue;
		}
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
helper_send_all(int fd, const void *data, size_t len)
{
	return helper_send_by(fd, data, len, 0);
}

int64_t
helper_deadline(unsigned ms)
{
	return ms == 0 ? 0 : cp_mono_ms() + ms;
}

/*
 * read_all - len bytes; -ENODATA at a clean end before the first byte,
 * -ETIMEDOUT when deadline (cp_mono_ms; 0: none) passes before the last.
 */
static int
read_all(int fd, void *data, size_t len, int64_t deadline)
{
	char *p = data;
	size_t got = 0;

	while (got < len) {
		ssize_t r;

		if (deadline != 0) {
			int w = wait_for(fd, POLLIN, deadline);

			if (w < 0)
				return w;
		}
		r = read(fd, p + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return got == 0 ? -ENODATA : -EPIPE;
		got += (size_t)r;
	}
	return 0;
}

int
helper_frame_prepare(struct buf *scratch, int32_t tag,
		     const struct helper_field *f, uint32_t n)
{
	size_t body = 8;
	uint32_t u;
	int r;

	if (n > HELPER_MAX_FIELDS)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		if (f[i].len > HELPER_MAX_FRAME - body - 4)
			return -EFBIG;
		body += 4 + f[i].len;
	}
	buf_reset(scratch);
	r = buf_reserve(scratch, 4 + body);
	if (r < 0)
		return r;
	u = (uint32_t)body;
	buf_append(scratch, &u, 4);
	buf_append(scratch, &tag, 4);
	buf_append(scratch, &n, 4);
	for (uint32_t i = 0; i < n; i++) {
		u = (uint32_t)f[i].len;
		buf_append(scratch, &u, 4);
		buf_append(scratch, f[i].data, f[i].len);
	}
	return 0;
}

int
helper_frame_send(int fd, struct buf *scratch, int32_t tag,
		  const struct helper_field *f, uint32_t n)
{
	int r = helper_frame_prepare(scratch, tag, f, n);

	return r < 0 ? r : helper_send_all(fd, scratch->data, scratch->len);
}

int
helper_frame_recv(int fd, struct buf *b, struct helper_frame *f,
		  int64_t deadline, size_t max)
{
	uint32_t len;
	int r;

	if (max == 0 || max > HELPER_MAX_FRAME)
		max = HELPER_MAX_FRAME;
	r = read_all(fd, &len, 4, deadline);
	if (r < 0)
		return r;
	if (len < 8 || len > max)
		return -EBADMSG;
	buf_reset(b);
	r = buf_reserve(b, len);
	if (r < 0)
		return r;
	r = read_all(fd, b->data, len, deadline);
	if (r < 0)
		return r == -ENODATA ? -EPIPE : r;
	b->len = len;
	return helper_frame_parse(b->data, len, f);
}

const char *
helper_field_str(const struct helper_frame *f, uint32_t i, char *dst,
		 size_t dstlen)
{
	size_t n = i < f->n ? f->len[i] : 0;

	if (n >= dstlen)
		n = dstlen - 1;
	if (n > 0)
		memcpy(dst, f->field[i], n);
	dst[n] = '\0';
	return dst;
}

/* ---- a fork server: a child per connection ---- */

/* send_by - len bytes (with a descriptor, when pass >= 0) within
 * deadline (cp_mono_ms): 0, -ETIMEDOUT or -errno. */
static int
send_by(int fd, const void *data, size_t len, int pass, int64_t deadline)
{
	struct iovec iov = { (void *)data, len };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} c;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (pass >= 0) {
		struct cmsghdr *h;

		memset(&c, 0, sizeof(c));
		msg.msg_control = c.space;
		msg.msg_controllen = sizeof(c.space);
		h = CMSG_FIRSTHDR(&msg);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &pass, sizeof(int));
	}
	for (;;) {
		r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r == (ssize_t)len)
			return 0;
		if (r >= 0)
			return -EPIPE;	/* a message this small goes whole or not */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || deadline == 0)
			return -errno;
		r = wait_for(fd, POLLOUT, deadline);
		if (r < 0)
			return (int)r;
	}
}

int
helper_fd_send(int fd, int pass, int64_t deadline)
{
	return send_by(fd, "f", 1, pass, deadline);
}

int
helper_child_done(int fd, uint32_t seq)
{
	char m[5] = { 'e' };

	memcpy(m + 1, &seq, sizeof(seq));
	return send_by(fd, m, sizeof(m), -1, 0);
}

/*
 * request_recv - the next word of the caller on HELPER_FD: 'f' with the
 * descriptor of a new connection in *got, or 'e' with a sequence number
 * in *seq. The op, -ENODATA when the caller closed its end, -EPROTO for
 * anything else (any descriptors that came are closed).
 */
static int
request_recv(int *got, uint32_t *seq)
{
	char op;
	struct iovec iov = { &op, 1 };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(4 * sizeof(int))];
	} c;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = c.space, .msg_controllen = sizeof(c.space),
	};
	int bad = 0;
	ssize_t r;

	*got = -1;
	do
		r = recvmsg(HELPER_FD, &msg, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ENODATA;
	if (r < 0)
		return -errno;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h != NULL;
	     h = CMSG_NXTHDR(&msg, h)) {
		size_t n;

		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
			if (*got < 0)
				*got = fd;
			else {
				close(fd);
				bad = 1;
			}
		}
	}
	if (op == 'f' && *got >= 0 && !bad && !(msg.msg_flags & MSG_CTRUNC))
		return 'f';
	if (*got >= 0)
		close(*got);
	*got = -1;
	if (op == 'e' && !bad &&
	    read_all(HELPER_FD, seq, sizeof(*seq), cp_mono_ms() + 1000) == 0)
		return 'e';
	return -EPROTO;
}

/* The server's children: connection number, pid, and when it must have
 * ended (0: no deadline yet: it has not been given up). */
struct kid {
	uint32_t seq;
	pid_t pid;
	int64_t deadline;
};

/*
 * report_ends - reap the children that ended and tell the caller of
 * each: a frame of tag 0, its connection number and its wait status (32
 * bits each). Sent without waiting: a caller that does not read loses
 * reports, never stops the server.
 */
static void
report_ends(struct kid *kids, size_t *n, struct buf *scratch)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int32_t how = (int32_t)status;
		uint32_t seq = 0;

		for (size_t i = 0; i < *n; i++) {
			if (kids[i].pid != pid)
				continue;
			seq = kids[i].seq;
			kids[i] = kids[--*n];
			break;
		}
		{
			struct helper_field f[2] = { { &seq, 4 }, { &how, 4 } };

			if (helper_frame_prepare(scratch, 0, f, 2) == 0)
				(void)!send(HELPER_FD, scratch->data, scratch->len,
					    MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}
}

/* overdue - kill the children past their deadline; the ms until the next
 * deadline, or -1 when none. */
static int
overdue(struct kid *kids, size_t n)
{
	int64_t now = cp_mono_ms(), next = -1;

	for (size_t i = 0; i < n; i++) {
		if (kids[i].deadline == 0)
			continue;
		if (kids[i].deadline <= now) {
			/* Unreaped: the pid is still this child's. */
			syscall(SYS_tgkill, kids[i].pid, kids[i].pid, SIGKILL);
			kids[i].deadline = 0;
		} else if (next < 0 || kids[i].deadline - now < next) {
			next = kids[i].deadline - now;
		}
	}
	return (int)next;
}

static void
on_child(int sig)
{
	(void)sig;		/* it only ends ppoll */
}

int
helper_fork_server(helper_child_fn child, void *arg, unsigned linger_ms)
{
	struct sigaction sa;
	sigset_t chld, waiting;
	struct buf scratch = BUF_INIT;
	struct kid kids[HELPER_MAX_CHILDREN];
	size_t nkids = 0;
	uint32_t seq = 0;

	/* SIGCHLD blocked but while waiting in ppoll: no end is missed. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_child;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &waiting);
	sigdelset(&waiting, SIGCHLD);
	sigaction(SIGCHLD, &sa, NULL);
	for (;;) {
		struct pollfd p = { .fd = HELPER_FD, .events = POLLIN };
		int next = overdue(kids, nkids), n, fd, op;
		struct timespec ts = { next / 1000, (next % 1000) * 1000000L };
		uint32_t which;
		pid_t pid;

		n = ppoll(&p, 1, next < 0 ? NULL : &ts, &waiting);
		if (n < 0 && errno != EINTR)
			return EX_OSERR;
		report_ends(kids, &nkids, &scratch);
		if (n <= 0)
			continue;	/* a signal, or a deadline */
		op = request_recv(&fd, &which);
		if (op == -ENODATA)
			return 0;
		if (op < 0)
			return EX_PROTOCOL;
		if (op == 'e') {
			/* The caller is done with it: it ends, or is ended. */
			for (size_t i = 0; i < nkids; i++)
				if (kids[i].seq == which && kids[i].deadline == 0)
					kids[i].deadline = cp_mono_ms() + linger_ms;
			continue;
		}
		seq++;
		/* No more at once than the caller can use: a new connection
		 * over the cap closes unanswered. */
		pid = nkids < HELPER_MAX_CHILDREN ? fork() : -1;
		if (pid == 0) {
			/* Its connection as HELPER_FD (the server's socket
			 * closes with that), nothing else. */
			buf_free(&scratch);
			signal(SIGCHLD, SIG_DFL);
			sigprocmask(SIG_SETMASK, &waiting, NULL);
			if (dup2(fd, HELPER_FD) < 0)
				_exit(EX_OSERR);
			close(fd);
			_exit(child(arg));
		}
		if (pid > 0)
			kids[nkids++] = (struct kid){ seq, pid, 0 };
		close(fd);
	}
}
