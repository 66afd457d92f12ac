/*
 * NAME
 *	sandbox - confine the calling process before it reads hostile input
 * DESCRIPTION
 *	See sandbox.h: no new privileges, resource limits, then the seccomp
 *	filter, which is built whole before it is loaded.
 */
#include "sandbox.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

/* cap - set a resource limit (soft, hard): 0 or -errno. */
static int
cap(int resource, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = { soft, hard };

	return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int
limits(const struct sandbox_rules *rules, struct cp_error *err)
{
	int r;

	if ((r = cap(RLIMIT_FSIZE, 0, 0)) < 0 ||
	    (r = cap(RLIMIT_NOFILE, SANDBOX_NOFILE, SANDBOX_NOFILE)) < 0 ||
	    (r = cap(RLIMIT_CORE, 0, 0)) < 0)
		return cp_error_set(err, r, "sandbox: setrlimit: %s", strerror(-r));
#ifndef CP_SANITIZER
	if (rules->memory_max > 0 &&
	    (r = cap(RLIMIT_AS, rules->memory_max, rules->memory_max)) < 0)
		return cp_error_set(err, r, "sandbox: memory limit: %s", strerror(-r));
#endif
	if (rules->cpu_seconds > 0 &&
	    (r = cap(RLIMIT_CPU, rules->cpu_seconds, rules->cpu_seconds + 5)) < 0)
		return cp_error_set(err, r, "sandbox: CPU limit: %s", strerror(-r));
	return 0;
}

/* Calls that fail gracefully: glibc probes files (iconv's converters). */
static const int denied_eperm[] = {
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(access),
	SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(stat),
	SCMP_SYS(lstat), SCMP_SYS(statx), SCMP_SYS(readlink),
	SCMP_SYS(readlinkat),
	/* fstat too: glibc's is newfstatat(fd, "", AT_EMPTY_PATH), and a
	 * filter cannot read the path to tell that from a file's name
	 * (newfstatat(AT_FDCWD, "/etc/passwd", AT_EMPTY_PATH) succeeds).
	 * Nothing behind the wall needs it: stdio is closed, the
	 * converters are loaded before. */
	SCMP_SYS(newfstatat), SCMP_SYS(fstat),
};

/* Calls allowed whatever their arguments. */
static const int allowed[] = {
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(close), SCMP_SYS(lseek), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(futex), SCMP_SYS(getrandom), SCMP_SYS(sched_yield),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
	SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction),
	SCMP_SYS(sigaltstack), SCMP_SYS(getpid), SCMP_SYS(gettid),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/*
 * A rule with conditions: the call, the action's errno (0: allowed) and
 * up to two conditions on its arguments (libseccomp's struct
 * scmp_arg_cmp: argument, comparison, value, and for SCMP_CMP_MASKED_EQ
 * mask then value). A value of THE_FD stands for rules->fd, of THE_PID
 * for the process's own pid.
 */
struct rule {
	int sys;
	int err;
	unsigned n;
	struct scmp_arg_cmp c[2];
};

#define THE_FD	((scmp_datum_t)-1)
#define THE_PID	((scmp_datum_t)-2)
/* What THE_PID compiles to in a narrowing prepared before the fork:
 * above any pid (PID_MAX_LIMIT is 2^22) and no other constant of the
 * filter; each child writes its own pid over it. */
#define PID_SLOT	0x7fabcdefu
#define A(i_, op_, a_, b_) \
	{ .arg = (i_), .op = (op_), .datum_a = (a_), .datum_b = (b_) }
#define NONE	A(0, SCMP_CMP_EQ, 0, 0)	/* no condition (n 0) */

/* For every confined process: no new code (nothing executable mapped or
 * made so), its own limits read (getrlimit) never set, its descriptor
 * read and written (sendto: what MSG_NOSIGNAL writes use). */
static const struct rule conditional[] = {
	{ SCMP_SYS(mmap), 0, 1, { A(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) } },
	{ SCMP_SYS(mprotect), 0, 1, { A(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) } },
	{ SCMP_SYS(prlimit64), 0, 2, { A(0, SCMP_CMP_EQ, 0, 0), A(2, SCMP_CMP_EQ, 0, 0) } },
	{ SCMP_SYS(read), 0, 1, { A(0, SCMP_CMP_EQ, THE_FD, 0) } },
	{ SCMP_SYS(write), 0, 1, { A(0, SCMP_CMP_EQ, THE_FD, 0) } },
	{ SCMP_SYS(sendto), 0, 2, { A(0, SCMP_CMP_EQ, THE_FD, 0), A(4, SCMP_CMP_EQ, 0, 0) } },
};

/* Its own signals only (abort() and raise() must still end it with
 * their signal); a fork server's children narrow server_only's to this. */
static const struct rule own_signals[] = {
	{ SCMP_SYS(tgkill), 0, 1, { A(0, SCMP_CMP_EQ, THE_PID, 0) } },
};

/*
 * What a fork server needs beyond those (see sandbox.h): descriptors
 * received on its socket, fork (glibc's clone flags exactly: no thread,
 * no shared memory, no namespace; clone3 carries its flags in memory a
 * filter cannot read, so ENOSYS, on which glibc falls back to clone),
 * glibc's set_robust_list in a new child, waiting for its children, a
 * received descriptor moved onto the socket's number in a child, the
 * child's own narrower filter (seccomp(2) only ever adds a filter or
 * asks what the kernel has), signals to its children, and a child's CPU
 * cap, set in the child (sandbox_narrow).
 */
static const struct rule server_only[] = {
	{ SCMP_SYS(recvmsg), 0, 1, { A(0, SCMP_CMP_EQ, THE_FD, 0) } },
	{ SCMP_SYS(clone), 0, 1, { A(0, SCMP_CMP_EQ, CLONE_CHILD_SETTID |
				     CLONE_CHILD_CLEARTID | SIGCHLD, 0) } },
	{ SCMP_SYS(clone3), ENOSYS, 0, { NONE } },
	{ SCMP_SYS(set_robust_list), 0, 0, { NONE } },
	{ SCMP_SYS(wait4), 0, 0, { NONE } },
	{ SCMP_SYS(dup2), 0, 1, { A(1, SCMP_CMP_EQ, THE_FD, 0) } },
	{ SCMP_SYS(dup3), 0, 1, { A(1, SCMP_CMP_EQ, THE_FD, 0) } },
	{ SCMP_SYS(prctl), 0, 1, { A(0, SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS, 0) } },
	{ SCMP_SYS(prctl), 0, 1, { A(0, SCMP_CMP_EQ, PR_SET_SECCOMP, 0) } },
	{ SCMP_SYS(seccomp), 0, 0, { NONE } },
	{ SCMP_SYS(tgkill), 0, 0, { NONE } },
	{ SCMP_SYS(prlimit64), 0, 2, { A(0, SCMP_CMP_EQ, 0, 0),
				       A(1, SCMP_CMP_EQ, RLIMIT_CPU, 0) } },
};

/* table_add - rules t[0..n) into ctx, THE_FD and THE_PID filled in
 * (THE_PID with PID_SLOT when pid_slot is set). */
static int
table_add(scmp_filter_ctx ctx, const struct rule *t, size_t n, int fd,
	  int pid_slot)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		struct scmp_arg_cmp c[2];

		for (unsigned j = 0; j < t[i].n; j++) {
			c[j] = t[i].c[j];
			if (c[j].datum_a == THE_FD)
				c[j].datum_a = (scmp_datum_t)fd;
			else if (c[j].datum_a == THE_PID)
				c[j].datum_a = pid_slot ? PID_SLOT :
					       (scmp_datum_t)getpid();
		}
		r = seccomp_rule_add_array(ctx, t[i].err ? SCMP_ACT_ERRNO(t[i].err) :
					   SCMP_ACT_ALLOW, t[i].sys, t[i].n, c);
	}
	return r;
}

/* rules_add - the filter's rules (see sandbox.h). */
static int
rules_add(scmp_filter_ctx ctx, const struct sandbox_rules *rules, int pid_slot)
{
	size_t nconditional = CP_ARRAY_SIZE(conditional);
	int r = 0;

	for (size_t i = 0; r == 0 && i < CP_ARRAY_SIZE(allowed); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	for (size_t i = 0; r == 0 && i < CP_ARRAY_SIZE(denied_eperm); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied_eperm[i], 0);
	if (rules->fd < 0)	/* the last three: its descriptor's */
		nconditional -= 3;
	if (r == 0)
		r = table_add(ctx, conditional, nconditional, rules->fd, 0);
	if (r == 0 && !rules->fork_server)
		r = table_add(ctx, own_signals, CP_ARRAY_SIZE(own_signals),
			      rules->fd, pid_slot);
	if (r == 0 && rules->fork_server)
		r = rules->fd < 0 ? -EINVAL :
		    table_add(ctx, server_only, CP_ARRAY_SIZE(server_only),
			      rules->fd, 0);
	if (r == 0 && rules->log_fd >= 0) {
		const struct rule log = { SCMP_SYS(write), 0, 1,
					  { A(0, SCMP_CMP_EQ, THE_FD, 0) } };

		r = table_add(ctx, &log, 1, rules->log_fd, 0);
	}
	return r;
}

static int
filter(const struct sandbox_rules *rules, struct cp_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r;

	if (ctx == NULL)
		return cp_error_set(err, -ENOMEM, "sandbox: seccomp_init failed");
	r = rules_add(ctx, rules, 0);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0)
		return cp_error_set(err, r, "sandbox: seccomp filter: %s",
				    strerror(-r));
	return 0;
}

int
sandbox_enter(const struct sandbox_rules *rules, struct cp_error *err)
{
	int r;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return cp_error_set(err, -errno, "sandbox: no_new_privs: %s",
				    strerror(errno));
	r = limits(rules, err);
	if (r < 0)
		return r;
	return filter(rules, err);
}

/*
 * export - the filter of rules compiled (libseccomp's BPF, THE_PID as
 * PID_SLOT) into *prog, through a pipe: libseccomp 2.5 exports to a
 * descriptor only. 0, or -errno.
 */
static int
export(const struct sandbox_rules *rules, struct sock_filter **prog,
       size_t *len, struct cp_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	_cleanup_close_ int rd = -1, wr = -1;
	/* Room for the longest program the kernel takes (BPF_MAXINSNS). */
	size_t n = 0, cap = BPF_MAXINSNS * sizeof(struct sock_filter);
	unsigned char *bytes;
	int p[2], r;

	if (ctx == NULL)
		return cp_error_set(err, -ENOMEM, "sandbox: seccomp_init failed");
	if ((bytes = malloc(cap)) == NULL) {
		seccomp_release(ctx);
		return cp_error_set(err, -ENOMEM, "sandbox: out of memory");
	}
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		seccomp_release(ctx);
		free(bytes);
		return cp_error_set(err, -errno, "sandbox: pipe: %s", strerror(errno));
	}
	rd = p[0];
	wr = p[1];
	r = rules_add(ctx, rules, 1);
	if (r == 0)
		r = seccomp_export_bpf(ctx, wr);
	seccomp_release(ctx);
	if (r < 0) {
		free(bytes);
		return cp_error_set(err, r, "sandbox: seccomp filter: %s", strerror(-r));
	}
	close(wr);
	wr = -1;
	for (;;) {		/* a filter is far smaller than a pipe's buffer */
		ssize_t got = cap > n ? read(rd, bytes + n, cap - n) : 0;

		if (got > 0) {
			n += (size_t)got;
			continue;
		}
		if (got == 0)
			break;
		free(bytes);
		return cp_error_set(err, -errno, "sandbox: reading the filter: %s",
				    strerror(errno));
	}
	if (n == 0 || n % sizeof(struct sock_filter) != 0 || n == cap) {
		free(bytes);
		return cp_error_set(err, -EINVAL, "sandbox: filter of %zu bytes", n);
	}
	*prog = (struct sock_filter *)bytes;
	*len = n / sizeof(struct sock_filter);
	return 0;
}

int
sandbox_narrowing_prepare(const struct sandbox_rules *rules,
			  struct sandbox_narrowing *out, struct cp_error *err)
{
	size_t slots = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (rules->fork_server)
		return cp_error_set(err, -EINVAL, "sandbox: a child cannot widen "
				    "its filter");
	r = export(rules, &out->prog, &out->len, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < out->len; i++)
		if (out->prog[i].code == (BPF_JMP | BPF_JEQ | BPF_K) &&
		    out->prog[i].k == PID_SLOT)
			slots++;
	if (slots == 0) {	/* the rule of its own signals was lost */
		sandbox_narrowing_free(out);
		return cp_error_set(err, -EINVAL, "sandbox: no pid in the "
				    "compiled filter");
	}
	out->cpu_seconds = rules->cpu_seconds;
	return 0;
}

int
sandbox_narrow(struct sandbox_narrowing *n, struct cp_error *err)
{
	struct sock_fprog fprog;
	int r;

	if (n->prog == NULL || n->len == 0 || n->len > USHRT_MAX)
		return cp_error_set(err, -EINVAL, "sandbox: no narrowing prepared");
	for (size_t i = 0; i < n->len; i++)
		if (n->prog[i].code == (BPF_JMP | BPF_JEQ | BPF_K) &&
		    n->prog[i].k == PID_SLOT)
			n->prog[i].k = (uint32_t)getpid();
	if (n->cpu_seconds > 0 &&
	    (r = cap(RLIMIT_CPU, n->cpu_seconds, n->cpu_seconds + 5)) < 0)
		return cp_error_set(err, r, "sandbox: CPU limit: %s", strerror(-r));
	fprog.len = (unsigned short)n->len;
	fprog.filter = n->prog;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) < 0)
		return cp_error_set(err, -errno, "sandbox: seccomp filter: %s",
				    strerror(errno));
	return 0;
}

void
sandbox_narrowing_free(struct sandbox_narrowing *n)
{
	free(n->prog);
	n->prog = NULL;
	n->len = 0;
}
