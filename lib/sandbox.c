/*
 * NAME
 *	sandbox - confine the calling process before it reads hostile input
 * DESCRIPTION
 *	See sandbox.h: no new privileges, resource limits, then the seccomp
 *	filter, which is built whole before it is loaded.
 */
#include "sandbox.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif

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
#ifndef SANDBOX_SANITIZER
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

/* cmp - a condition on argument i (libseccomp's SCMP_A* with every field
 * set: mask and value for SCMP_CMP_MASKED_EQ, a value otherwise). */
static struct scmp_arg_cmp
cmp(unsigned i, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
	return (struct scmp_arg_cmp){ .arg = i, .op = op, .datum_a = a,
				      .datum_b = b };
}

/* rules_add - the filter's allow rules (see sandbox.h). */
static int
rules_add(scmp_filter_ctx ctx, const struct sandbox_rules *rules)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < CP_ARRAY_SIZE(allowed); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	for (size_t i = 0; r == 0 && i < CP_ARRAY_SIZE(denied_eperm); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied_eperm[i], 0);
	/* No new code: nothing executable mapped or made so. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				     cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				     cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* Reading its own limits (getrlimit), never setting any. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2,
				     cmp(0, SCMP_CMP_EQ, 0, 0), cmp(2, SCMP_CMP_EQ, 0, 0));
	/* Its own signals only (a fork server's children narrow this to
	 * theirs: see server_rules_add). */
	if (r == 0 && !rules->fork_server)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				     cmp(0, SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0));
	if (r == 0 && rules->fd >= 0) {
		scmp_datum_t fd = (scmp_datum_t)rules->fd;

		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(read), 1,
				     cmp(0, SCMP_CMP_EQ, fd, 0));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
					     cmp(0, SCMP_CMP_EQ, fd, 0));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendto), 2,
					     cmp(0, SCMP_CMP_EQ, fd, 0),
					     cmp(4, SCMP_CMP_EQ, 0, 0));
	}
	if (r == 0 && rules->log_fd >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
				     cmp(0, SCMP_CMP_EQ,
					 (scmp_datum_t)rules->log_fd, 0));
	return r;
}

/*
 * server_rules_add - what a fork server needs beyond rules_add (see
 * sandbox.h): descriptors received on rules->fd, fork (glibc's clone
 * flags exactly: no thread, no shared memory, no namespace), waiting
 * for its children, moving a received descriptor onto rules->fd in a
 * child, and the child's own narrower filter.
 */
static int
server_rules_add(scmp_filter_ctx ctx, const struct sandbox_rules *rules)
{
	scmp_datum_t fd = (scmp_datum_t)rules->fd;
	int r;

	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(recvmsg), 1,
			     cmp(0, SCMP_CMP_EQ, fd, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				     cmp(0, SCMP_CMP_EQ, CLONE_CHILD_SETTID |
					 CLONE_CHILD_CLEARTID | SIGCHLD, 0));
	/* clone3 carries its flags in memory a filter cannot read: ENOSYS,
	 * on which glibc falls back to clone. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(wait4), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(set_robust_list), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(dup2), 1,
				     cmp(1, SCMP_CMP_EQ, fd, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(dup3), 1,
				     cmp(1, SCMP_CMP_EQ, fd, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				     cmp(0, SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				     cmp(0, SCMP_CMP_EQ, PR_SET_SECCOMP, 0));
	/* seccomp(2) only ever adds a filter or asks what the kernel has. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 0);
	/* A child's CPU cap (sandbox_narrow), set in the child. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2,
				     cmp(0, SCMP_CMP_EQ, 0, 0),
				     cmp(1, SCMP_CMP_EQ, RLIMIT_CPU, 0));
	return r;
}

static int
filter(const struct sandbox_rules *rules, struct cp_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r;

	if (ctx == NULL)
		return cp_error_set(err, -ENOMEM, "sandbox: seccomp_init failed");
	r = rules_add(ctx, rules);
	if (r == 0 && rules->fork_server) {
		if (rules->fd < 0)
			r = -EINVAL;
		else
			r = server_rules_add(ctx, rules);
	}
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

int
sandbox_narrow(const struct sandbox_rules *rules, struct cp_error *err)
{
	int r;

	if (rules->fork_server)
		return cp_error_set(err, -EINVAL, "sandbox: a child cannot widen "
				    "its filter");
	if (rules->cpu_seconds > 0 &&
	    (r = cap(RLIMIT_CPU, rules->cpu_seconds, rules->cpu_seconds + 5)) < 0)
		return cp_error_set(err, r, "sandbox: CPU limit: %s", strerror(-r));
	return filter(rules, err);
}
