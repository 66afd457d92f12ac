/*
 * test_sandbox - the wall the parse helper puts up before its first byte
 *
 *	Each test starts a child (this program again, run afresh so that
 *	valgrind, which cannot confine a process, does not run it) that
 *	calls sandbox_enter with the rules the parse helper uses (its one
 *	descriptor a pipe to the test), says
 *	"ready" over the pipe, then tries one thing the wall must stop. The
 *	child reports what the call returned; the parent accepts only
 *	"EPERM" or the child killed by SIGSYS after "ready". What parsing
 *	needs (memory, the clock, the pipe) still works.
 *
 *	Each test runs twice: confined alone, and as the parse helper's
 *	children are (a fork server confined with fork_server, which forks;
 *	the child narrows the filter with sandbox_narrow and tries; the
 *	server says how it ended). A child of the server must be held as
 *	tightly as a helper alone, fork and signals to its server included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "parsehelper.h"
#include "sandbox.h"

/* What a child tried, and how it ended. */
struct outcome {
	char said[256];		/* what it wrote before it ended */
	int status;		/* its wait status */
};

typedef void (*attempt_fn)(int fd);

static void
say(int fd, const char *what)
{
	(void)!write(fd, what, strlen(what));
}

/* report - "ret=R errno=E" of the call the child just made. */
static void
report(int fd, long ret)
{
	char line[48];
	int e = errno;

	snprintf(line, sizeof(line), " ret=%ld errno=%d", ret, ret < 0 ? e : 0);
	say(fd, line);
}

static char self[4096];

/* child - in the child: confined as the parse helper, then try(fd). */
static int
child(attempt_fn try, int fd)
{
	struct sandbox_rules rules = SANDBOX_RULES_INIT;
	struct cp_error err;

	rules.fd = fd;
	rules.memory_max = PARSEHELPER_MEMORY_MAX;
	rules.cpu_seconds = PARSEHELPER_CPU_CAP;
	if (sandbox_enter(&rules, &err) < 0)
		_exit(3);
	say(fd, "ready");
	try(fd);
	_exit(0);	/* no atexit work (a sanitizer's leak check) inside */
}

/*
 * forked_child - in the child: confined as the parse helper's fork
 * server, forks a child that narrows the wall as the server's children
 * do and then try(fd); says how that child ended ("\nstatus=N").
 */
static int
forked_child(attempt_fn try, int fd)
{
	struct sandbox_rules rules = SANDBOX_RULES_INIT, narrow = SANDBOX_RULES_INIT;
	struct sandbox_narrowing n;
	struct cp_error err;
	char line[32];
	int status;
	pid_t pid;

	rules.fd = fd;
	rules.memory_max = PARSEHELPER_MEMORY_MAX;
	rules.fork_server = 1;
	narrow.fd = fd;
	narrow.cpu_seconds = PARSEHELPER_CPU_CAP;
	/* as the parse helper's server: the child's filter compiled first */
	if (sandbox_narrowing_prepare(&narrow, &n, &err) < 0)
		_exit(3);
	if (sandbox_enter(&rules, &err) < 0)
		_exit(3);
	pid = fork();
	if (pid == 0) {
		if (sandbox_narrow(&n, &err) < 0)
			_exit(3);
		say(fd, "ready");
		try(fd);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		_exit(4);
	snprintf(line, sizeof(line), "\nstatus=%d", status);
	say(fd, line);
	_exit(0);
}

/* run - a child that tries attempt name (see main), alone or as a child
 * of a fork server (*state), and how it ended. */
static struct outcome
run(void **state, const char *name)
{
	int forked = *state != NULL;
	char *tail;
	struct outcome o;
	char fdarg[16];
	int p[2];
	pid_t pid;
	ssize_t n;
	size_t got = 0;

	memset(&o, 0, sizeof(o));
	assert_int_equal(pipe(p), 0);
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		execl(self, self, forked ? "--sandbox-forked" : "--sandbox-child",
		      name, fdarg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (got < sizeof(o.said) - 1 &&
	       (n = read(p[0], o.said + got, sizeof(o.said) - 1 - got)) > 0)
		got += (size_t)n;
	close(p[0]);
	assert_int_equal(waitpid(pid, &o.status, 0), pid);
	if (forked) {
		/* the server ended well and said how its child ended */
		assert_true(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
		tail = strstr(o.said, "\nstatus=");
		assert_non_null(tail);
		o.status = atoi(tail + 8);
		*tail = '\0';
	}
	return o;
}

/* stopped - the wall held: EPERM, or killed by SIGSYS, after "ready". */
static void
assert_stopped(const struct outcome *o)
{
	char eperm[32];

	snprintf(eperm, sizeof(eperm), "errno=%d", EPERM);
	assert_int_equal(strncmp(o->said, "ready", 5), 0);
	if (WIFSIGNALED(o->status)) {
		assert_int_equal(WTERMSIG(o->status), SIGSYS);
		assert_string_equal(o->said, "ready");
		return;
	}
	assert_non_null(strstr(o->said, "ret=-1"));
	assert_non_null(strstr(o->said, eperm));
}

/* both_stopped - the wall holds against attempts a and b. */
static void
assert_both_stopped(void **state, const char *a, const char *b)
{
	struct outcome o = run(state, a);

	assert_stopped(&o);
	o = run(state, b);
	assert_stopped(&o);
}

static void
try_open(int fd)
{
	report(fd, open("/etc/passwd", O_RDONLY));
}

static void
try_openat_create(int fd)
{
	report(fd, openat(AT_FDCWD, "/tmp/carepost-sandbox-test", O_WRONLY | O_CREAT, 0600));
}

/* a path's metadata, by the one stat call the filter cannot read the
 * path of: AT_EMPTY_PATH with a path that is not empty */
static void
try_stat_a_path(int fd)
{
	struct stat st;

	report(fd, syscall(SYS_newfstatat, AT_FDCWD, "/etc/passwd", &st,
			   AT_EMPTY_PATH));
}

static void
try_stat_family(int fd)
{
	struct stat st;
	char link[64];

	report(fd, stat("/etc/passwd", &st));
	report(fd, lstat("/etc/passwd", &st));
	report(fd, access("/etc/passwd", R_OK));
	report(fd, readlink("/proc/self/exe", link, sizeof(link)));
	report(fd, fstatat(AT_FDCWD, "/etc/passwd", &st, 0));
}

static void
try_socket(int fd)
{
	report(fd, socket(AF_INET, SOCK_STREAM, 0));
}

static void
try_unix_socket(int fd)
{
	report(fd, socket(AF_UNIX, SOCK_STREAM, 0));
}

static void
try_execve(int fd)
{
	char *argv[] = { "/bin/true", NULL };
	char *envp[] = { NULL };

	report(fd, execve("/bin/true", argv, envp));
}

static void
try_fork(int fd)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	report(fd, pid);
}

/* its parent (the fork server, or the test) by kill and by tgkill */
static void
try_kill_parent(int fd)
{
	report(fd, kill(getppid(), SIGTERM));
}

static void
try_tgkill_parent(int fd)
{
	report(fd, syscall(SYS_tgkill, getppid(), getppid(), SIGTERM));
}

/* what only a fork server may do */
static void
try_recvmsg(int fd)
{
	char c;
	struct iovec iov = { &c, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	report(fd, recvmsg(fd, &msg, MSG_DONTWAIT));
}

static void
try_dup_onto(int fd)
{
	report(fd, dup2(fd, fd + 1));
}

static void
try_exec_mapping(int fd)
{
	report(fd, (long)(intptr_t)mmap(NULL, 4096, PROT_READ | PROT_EXEC,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
}

static void
try_write_elsewhere(int fd)
{
	report(fd, write(STDERR_FILENO, "x", 1));	/* not its descriptor */
}

static void
opening_a_file_fails(void **state)
{
	struct outcome o = run(state, "try_open");

	assert_stopped(&o);
	o = run(state, "try_openat_create");
	assert_stopped(&o);
	assert_int_equal(access("/tmp/carepost-sandbox-test", F_OK), -1);
}

static void
no_file_is_stat_ed_by_path(void **state)
{
	struct outcome o = run(state, "try_stat_a_path");
	char *p;
	int n = 0;

	assert_stopped(&o);
	o = run(state, "try_stat_family");
	assert_stopped(&o);
	for (p = o.said; (p = strstr(p, "ret=-1")) != NULL; p++)
		n++;
	if (n != 5)
		fail_msg("%s", o.said);	/* each of them */
}

static void
making_a_socket_fails(void **state)
{
	assert_both_stopped(state, "try_socket", "try_unix_socket");
}

static void
exec_and_fork_fail(void **state)
{
	assert_both_stopped(state, "try_execve", "try_fork");
}

static void
no_signal_to_another_process(void **state)
{
	assert_both_stopped(state, "try_kill_parent", "try_tgkill_parent");
}

static void
no_descriptor_received_or_moved(void **state)
{
	assert_both_stopped(state, "try_recvmsg", "try_dup_onto");
}

static void
no_new_code_and_no_other_descriptor(void **state)
{
	assert_both_stopped(state, "try_exec_mapping", "try_write_elsewhere");
}

/* What parsing needs: memory (small and large), the clock, its pipe. */
static void
try_work(int fd)
{
	struct timespec ts;
	char *small = malloc(100), *big = malloc(64u << 20);
	int ok = small != NULL && big != NULL;

	if (ok) {
		memset(big, 'x', 64u << 20);
		big = realloc(big, 128u << 20);
		ok = big != NULL;
	}
	ok = ok && clock_gettime(CLOCK_MONOTONIC, &ts) == 0 &&
	     clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0;
	free(small);
	free(big);
	say(fd, ok ? " worked" : " failed");
}

static void
parsing_still_has_what_it_needs(void **state)
{
	struct outcome o = run(state, "try_work");

	assert_true(WIFEXITED(o.status));
	assert_int_equal(WEXITSTATUS(o.status), 0);
	assert_string_equal(o.said, "ready worked");
}

/* More than the memory cap: malloc says no, nothing is killed. */
static void
try_too_much_memory(int fd)
{
	char *p = malloc(PARSEHELPER_MEMORY_MAX + (64u << 20));

	say(fd, p == NULL ? " refused" : " granted");
	free(p);
}

static void
memory_over_the_cap_is_refused_gracefully(void **state)
{
	struct outcome o;

#if defined(__SANITIZE_ADDRESS__)
	skip();		/* no RLIMIT_AS beside ASan's shadow memory */
#endif
	o = run(state, "try_too_much_memory");
	assert_true(WIFEXITED(o.status));
	assert_string_equal(o.said, "ready refused");
}

/* abort() still ends it with SIGABRT: a crash reads as a crash. */
static void
try_abort(int fd)
{
	abort();
}

static void
a_crash_is_still_a_crash(void **state)
{
	struct outcome o = run(state, "try_abort");

	assert_true(WIFSIGNALED(o.status));
	assert_int_equal(WTERMSIG(o.status), SIGABRT);
}

/* The limits: no file may grow, no descriptor beyond SANDBOX_NOFILE. */
static void
try_limits(int fd)
{
	struct rlimit fsize, nofile;

	getrlimit(RLIMIT_FSIZE, &fsize);
	getrlimit(RLIMIT_NOFILE, &nofile);
	say(fd, fsize.rlim_cur == 0 && fsize.rlim_max == 0 &&
		nofile.rlim_max == SANDBOX_NOFILE ? " limited" : " unlimited");
}

static void
resource_limits_are_set(void **state)
{
	struct outcome o = run(state, "try_limits");

	assert_true(WIFEXITED(o.status));
	assert_string_equal(o.said, "ready limited");
}

static const struct {
	const char *name;
	attempt_fn fn;
} attempts[] = {
	{ "try_open", try_open }, { "try_openat_create", try_openat_create },
	{ "try_stat_a_path", try_stat_a_path }, { "try_stat_family", try_stat_family },
	{ "try_socket", try_socket }, { "try_unix_socket", try_unix_socket },
	{ "try_execve", try_execve }, { "try_fork", try_fork },
	{ "try_exec_mapping", try_exec_mapping },
	{ "try_write_elsewhere", try_write_elsewhere }, { "try_work", try_work },
	{ "try_abort", try_abort }, { "try_limits", try_limits },
	{ "try_too_much_memory", try_too_much_memory },
	{ "try_kill_parent", try_kill_parent },
	{ "try_tgkill_parent", try_tgkill_parent },
	{ "try_recvmsg", try_recvmsg }, { "try_dup_onto", try_dup_onto },
};

static int forked_mode = 1;
#define BOTH(fn) \
	{ #fn, fn, NULL, NULL, NULL }, \
	{ #fn " (a fork server's child)", fn, NULL, NULL, &forked_mode }

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		BOTH(opening_a_file_fails),
		BOTH(no_file_is_stat_ed_by_path),
		BOTH(making_a_socket_fails),
		BOTH(no_signal_to_another_process),
		BOTH(no_descriptor_received_or_moved),
		BOTH(exec_and_fork_fail),
		BOTH(no_new_code_and_no_other_descriptor),
		BOTH(parsing_still_has_what_it_needs),
		BOTH(a_crash_is_still_a_crash),
		BOTH(resource_limits_are_set),
		BOTH(memory_over_the_cap_is_refused_gracefully),
	};

	ssize_t n;

	if (argc == 4 && strcmp(argv[1], "--sandbox-child") == 0) {
		for (size_t i = 0; i < CP_ARRAY_SIZE(attempts); i++)
			if (strcmp(argv[2], attempts[i].name) == 0)
				return child(attempts[i].fn, atoi(argv[3]));
		return 2;
	}
	if (argc == 4 && strcmp(argv[1], "--sandbox-forked") == 0) {
		for (size_t i = 0; i < CP_ARRAY_SIZE(attempts); i++)
			if (strcmp(argv[2], attempts[i].name) == 0)
				return forked_child(attempts[i].fn, atoi(argv[3]));
		return 2;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	return cmocka_run_group_tests(tests, NULL, NULL);
}
