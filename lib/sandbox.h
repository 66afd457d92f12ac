/*
 * NAME
 *	sandbox - confine the calling process before it reads hostile input
 * SYNOPSIS
 *	#include "sandbox.h"
 *
 *	struct sandbox_rules rules = SANDBOX_RULES_INIT;
 *	rules.fd = 3;
 *	rules.memory_max = 1024u << 20;
 *	rules.cpu_seconds = 120;
 *	if (sandbox_enter(&rules, &err) < 0) ... refuse to go on ...
 *
 *	A fork server (lib/helper's helper_fork_server), and in each child:
 *	struct sandbox_narrowing n;
 *	child.fd = 3;  child.cpu_seconds = 60;
 *	sandbox_narrowing_prepare(&child, &n, &err);	(before the wall)
 *	rules.fork_server = 1;
 *	sandbox_enter(&rules, &err);
 *	... fork; in the child, the received socket moved onto child.fd ...
 *	sandbox_narrow(&n, &err);
 * DESCRIPTION
 *	The wall around the parse helper (lib/parsehelper), in the manner of
 *	OpenSSH's and OpenSMTPD's privilege separation. sandbox_enter, in
 *	this order:
 *
 *	1. PR_SET_NO_NEW_PRIVS: nothing it could exec gains privileges (and
 *	   an unprivileged process may then install a seccomp filter);
 *	2. resource limits: RLIMIT_FSIZE 0 (no file may grow), RLIMIT_NOFILE
 *	   SANDBOX_NOFILE (no more descriptors than it holds), RLIMIT_CORE 0
 *	   (RLIMIT_NPROC is not set: it counts the user's other processes;
 *	   the filter forbids fork and clone);
 *	   RLIMIT_AS memory_max (not in sanitizer builds, whose shadow memory
 *	   reserves terabytes of address space), RLIMIT_CPU cpu_seconds
 *	   (soft: SIGXCPU; five seconds later SIGKILL);
 *	3. a seccomp filter (libseccomp) that allows only what computing on
 *	   memory needs:
 *	     read and write (and sendto, which MSG_NOSIGNAL writes use) on
 *	     rules.fd, write on rules.log_fd when it is not -1;
 *	     memory: brk, mmap, munmap, mremap, madvise, mprotect, the last
 *	     two and mmap only without PROT_EXEC (no new code);
 *	     close, lseek, poll, ppoll, futex, getrandom, sched_yield;
 *	     clocks: clock_gettime, clock_getres, gettimeofday, time;
 *	     its own signals: rt_sigreturn, rt_sigprocmask, rt_sigaction,
 *	     sigaltstack, getpid, gettid, and tgkill of its own process
 *	     (abort() and raise() must still end it with their signal);
 *	     prlimit64 to read its own limits (never to set them);
 *	     exit, exit_group.
 *	   open, openat, openat2, access, faccessat, faccessat2, stat, lstat,
 *	   statx, readlink, readlinkat, newfstatat and fstat fail with EPERM
 *	   (glibc's iconv tries to open a converter it has not loaded: that
 *	   must fail gracefully, not kill). fstat of a descriptor is denied
 *	   too: glibc makes it newfstatat(fd, "", AT_EMPTY_PATH), and a
 *	   filter cannot read a path to tell that from
 *	   newfstatat(AT_FDCWD, "/etc/passwd", AT_EMPTY_PATH). Everything else - socket, connect, execve, clone, fork,
 *	   kill, ptrace, and the rest - kills the process (SIGSYS).
 *
 *	With rules.fork_server set, the filter also lets the process serve
 *	children (lib/helper's helper_fork_server): recvmsg on rules.fd
 *	(descriptors passed with SCM_RIGHTS), clone with exactly the flags
 *	of glibc's fork (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID |
 *	SIGCHLD: no thread, no shared memory, no namespace; clone3 fails
 *	with ENOSYS, on which glibc falls back to clone), set_robust_list
 *	(glibc, in a new child), wait4, dup2 and dup3 onto rules.fd only,
 *	prctl PR_SET_NO_NEW_PRIVS and PR_SET_SECCOMP, seccomp(2) (which
 *	only adds filters or asks what the kernel supports), and tgkill of
 *	any thread (a child narrows that to its own process),
 *	and prlimit64 setting its own RLIMIT_CPU (a child's cap: the server
 *	itself is not capped; it never reads hostile bytes).
 *
 *	sandbox_narrowing_prepare compiles, before the wall goes up (it
 *	needs a pipe: libseccomp exports to a descriptor), the filter a
 *	child will add, built from rules as above (rules.fork_server must
 *	be 0), with a slot where the child's own pid goes; a child then
 *	pays no compilation (libseccomp's, about 0.1 ms and many page
 *	faults on a 2-core virtual machine, for each message).
 *	sandbox_narrow, in a child, writes its pid into the slot, sets
 *	RLIMIT_CPU to rules.cpu_seconds (when not 0) and loads that filter
 *	(prctl PR_SET_SECCOMP) over the one the process already runs
 *	under: a child of a fork server calls it first thing. Filters
 *	stack: a call must pass every one, so the child can no longer fork,
 *	wait, receive descriptors, load filters or signal any process but
 *	its own, and reads and writes only its rules.fd.
 *
 *	What has to be done with files (glibc loading iconv converters, the
 *	locale) must be done before sandbox_enter; nothing can be opened
 *	afterwards, and no descriptor can be made.
 * ERRORS
 *	sandbox_narrowing_prepare: -EINVAL when rules.fork_server is set
 *	or the compiled filter has no slot for the pid; -errno of pipe or
 *	read, -ENOMEM, or libseccomp's code. sandbox_narrow: -EINVAL when
 *	nothing was prepared; -errno of setrlimit or prctl. sandbox_enter: -errno of prctl or setrlimit, -ENOMEM, or the code of
 *	libseccomp (-EINVAL, -EFAULT, ...) with a text naming the step. A
 *	process for which it failed must not read hostile input.
 * OWNERSHIP
 *	rules is read during the call. A prepared narrowing owns its
 *	program (sandbox_narrowing_free); sandbox_narrow writes the pid into
 *	it (in a child: its own copy).
 * THREAD SAFETY
 *	The filter applies to the calling thread and the threads it starts
 *	afterwards: call it while single-threaded. It cannot be undone.
 */
#ifndef CAREPOST_SANDBOX_H
#define CAREPOST_SANDBOX_H

#include <stddef.h>

#include "util.h"

struct sock_filter;

#define SANDBOX_NOFILE	8	/* RLIMIT_NOFILE: descriptors 0..7 */

struct sandbox_rules {
	int fd;			/* read and written; -1: none */
	int log_fd;		/* also written (stderr); -1: none */
	size_t memory_max;	/* RLIMIT_AS in bytes; 0: not set */
	unsigned cpu_seconds;	/* RLIMIT_CPU soft limit; 0: not set */
	int fork_server;	/* 1: also what helper_fork_server needs */
};

#define SANDBOX_RULES_INIT { -1, -1, 0, 0, 0 }

/* A child's filter, compiled by its server before the wall. */
struct sandbox_narrowing {
	struct sock_filter *prog;	/* the compiled filter, pid slot included */
	size_t len;			/* its instructions */
	unsigned cpu_seconds;		/* RLIMIT_CPU; 0: not set */
};

int sandbox_enter(const struct sandbox_rules *rules, struct cp_error *err);
int sandbox_narrowing_prepare(const struct sandbox_rules *rules,
			      struct sandbox_narrowing *out, struct cp_error *err);
int sandbox_narrow(struct sandbox_narrowing *n, struct cp_error *err);
void sandbox_narrowing_free(struct sandbox_narrowing *n);

#endif
