/*
 * NAME
 *	helper - a helper process over a socket pair, and the frames it speaks
 * SYNOPSIS
 *	#include "helper.h"
 *
 *	char exe[PATH_MAX];
 *	helper_find("carepost-pgp", exe, sizeof(exe));
 *	helper_spawn(exe, "carepost-pgp", "--pgp-helper", NULL, &pid, &fd, &err);
 *	helper_frame_send(fd, &scratch, tag, fields, n);
 *	helper_frame_recv(fd, &in, &frame, helper_deadline(ms), 0);
 *	helper_reap(&pid, &fd);
 *
 *	In the helper, first thing:
 *	    rc = helper_serve_begin("--pgp-helper");
 * DESCRIPTION
 *	What lib/pgphelper (gpg) and lib/parsehelper (the MIME parser) share:
 *	finding the helper program, starting it, the frames both ends
 *	write, and ending it.
 *
 *	helper_find(name) picks the program: name beside the running binary
 *	(the build tree), else in CAREPOST_LIBEXECDIR (installed), else the
 *	running binary itself, which must then serve when started with the
 *	helper's flag; name NULL picks the running binary, and an absolute
 *	path is taken as it is (-ENOENT when it is not an executable file).
 *	When the running binary has been replaced on disk (/proc/self/exe
 *	ends in " (deleted)": an upgrade, after which the new programs may
 *	speak another version) nothing is picked: -ENOENT.
 *
 *	helper_spawn starts exe with posix_spawn (no copy of the caller's
 *	memory) as "argv0 flag", its descriptor 3 one end of a new socket
 *	pair (every other descriptor above 2 closed), the leader of a
 *	process group of its own, born with SIGTERM, SIGINT and SIGHUP
 *	blocked (helper_serve_begin ignores them, then unblocks them: a
 *	SIGTERM systemd sends the whole unit must not end a helper before it
 *	ignores it). envp NULL passes the caller's environment; otherwise
 *	envp is the helper's whole environment.
 *
 *	helper_reap ends a helper: its whole process group is killed with
 *	SIGKILL first, then the helper is waited for (the unreaped leader
 *	keeps the group's id from being reused meanwhile), and its wait
 *	status returned, for the caller to tell a crash from a kill.
 *
 *	helper_fork_server makes the helper a fork server. The caller
 *	speaks to it on HELPER_FD in words of its own: "f" with a descriptor
 *	(helper_fd_send: one end of a new socket pair, a connection), and
 *	"e" with a connection's number (helper_child_done: the caller is
 *	done with it). Connections are numbered from 1 in the order the
 *	server receives them. For each, it forks a child whose HELPER_FD is
 *	that connection (the server's own socket closed in it, nothing else
 *	open that the server did not hold), which runs child(arg) and
 *	_exits with what it returns; a connection over HELPER_MAX_CHILDREN
 *	alive closes unanswered. A child costs a fork, not an exec: what
 *	the server loaded and confined before its loop (sandbox.h:
 *	fork_server) comes with it, and nothing a child did reaches the
 *	server or another child. The server itself ends its children: one
 *	still there linger_ms after the caller said it is done with it is
 *	killed (SIGKILL; its pid is exact, for it is not yet reaped), so
 *	that no child outlives its use whatever it does. The server reaps
 *	every child and writes the caller a frame on HELPER_FD for each: tag
 *	0, the connection's number and the child's wait status (32 bits
 *	each), without waiting: a caller that does not read loses reports,
 *	never stops the server. It returns 0 when the caller closes its
 *	end, EX_PROTOCOL for any other word, EX_OSERR when its socket
 *	fails.
 *
 *	A frame is a 32-bit length, then a 32-bit tag (request: the
 *	operation; reply: 0 or a negative error code), a 32-bit field count
 *	(at most HELPER_MAX_FIELDS) and each field as a 32-bit length and
 *	its bytes; integers in the machine's order (both ends are one
 *	build). helper_frame_parse checks a frame against those limits.
 * ERRORS
 *	helper_find: -ENOENT (see above), -errno or -ENAMETOOLONG when
 *	/proc/self/exe cannot be read. helper_spawn: the -errno of
 *	socketpair or posix_spawn, with a text naming the program.
 *	helper_fd_send: -ETIMEDOUT, or the -errno of sendmsg (-EPIPE when
 *	the server is gone); helper_child_done: the same, -EAGAIN when it
 *	would wait.
 *	helper_frame_send: -EFBIG (over HELPER_MAX_FRAME), -ENOMEM, or the
 *	-errno of send (-EPIPE when the helper is gone).
 *	helper_frame_recv: -ENODATA (a clean end before the first byte),
 *	-EPIPE (cut short), -ETIMEDOUT (deadline passed), -EBADMSG (a
 *	malformed frame, or one over max), -ENOMEM, or the -errno of read.
 *	helper_frame_parse: -EBADMSG. helper_serve_begin returns 0, or
 *	EX_USAGE (descriptor 3 is not a socket: run by hand) or EX_OSERR.
 * OWNERSHIP
 *	helper_frame_recv fills the caller's buffer; the fields of a struct
 *	helper_frame point into the data given to helper_frame_parse and
 *	live as long as it does. helper_reap closes *fd and sets it to -1,
 *	and *pid to 0.
 * THREAD SAFETY
 *	Reentrant; a helper (its pid and descriptor) belongs to one thread
 *	at a time.
 */
#ifndef CAREPOST_HELPER_H
#define CAREPOST_HELPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "util.h"

#define HELPER_FD		3
#define HELPER_MAX_FIELDS	4
#define HELPER_MAX_CHILDREN	16	/* a fork server's, alive at once */
#define HELPER_MAX_FRAME	(256u << 20)	/* bytes after the length */

/* A field to send: bytes and their length. */
struct helper_field {
	const void *data;
	size_t len;
};

/* A frame received: its fields point into the received bytes. */
struct helper_frame {
	int32_t tag;
	uint32_t n;
	const char *field[HELPER_MAX_FIELDS];
	uint32_t len[HELPER_MAX_FIELDS];
};

int helper_find(const char *name, char *out, size_t outlen);

int helper_spawn(const char *exe, const char *argv0, const char *flag,
		 char *const envp[], pid_t *pid, int *fd, struct cp_error *err);

/* helper_reap - kill the helper's group, wait: its wait status, or -1. */
int helper_reap(pid_t *pid, int *fd);

/* helper_serve_begin - the helper's own setup (see ERRORS). */
int helper_serve_begin(const char *flag);

/* helper_fd_send - a new connection to a fork server on fd: descriptor
 * pass, sent within deadline (cp_mono_ms; 0: only if it goes at once). */
int helper_fd_send(int fd, int pass, int64_t deadline);
/* helper_child_done - tell the fork server on fd that connection seq is
 * done with (sent only if it goes at once). */
int helper_child_done(int fd, uint32_t seq);
/* A fork server's child: its connection is HELPER_FD; its exit code. */
typedef int (*helper_child_fn)(void *arg);
int helper_fork_server(helper_child_fn child, void *arg, unsigned linger_ms);

int helper_frame_parse(const void *data, size_t len, struct helper_frame *f);
/* helper_frame_prepare - a whole frame, length first, into scratch. */
int helper_frame_prepare(struct buf *scratch, int32_t tag,
			 const struct helper_field *f, uint32_t n);
int helper_frame_send(int fd, struct buf *scratch, int32_t tag,
		      const struct helper_field *f, uint32_t n);
/*
 * helper_frame_recv - the next frame into b, whole by deadline (a
 * cp_mono_ms time; 0: none), its body at most max bytes (0:
 * HELPER_MAX_FRAME); f points into b.
 */
int helper_frame_recv(int fd, struct buf *b, struct helper_frame *f,
		      int64_t deadline, size_t max);
/* helper_field_str - field i as a C string in dst (cut at dstlen - 1). */
const char *helper_field_str(const struct helper_frame *f, uint32_t i,
			     char *dst, size_t dstlen);
/* helper_deadline - now plus ms; 0 (none) when ms is 0. */
int64_t helper_deadline(unsigned ms);
/* helper_send_all - len bytes to a socket, no SIGPIPE: 0 or -errno. */
int helper_send_all(int fd, const void *data, size_t len);
/*
 * helper_send_by - as helper_send_all, but whole by deadline (a
 * cp_mono_ms time; 0: none), or -ETIMEDOUT: a helper that stops reading
 * holds its caller no longer than that.
 */
int helper_send_by(int fd, const void *data, size_t len, int64_t deadline);

#endif
