/*
 * NAME
 *	fsfix.h - temporary directories and files shared by the unit tests
 * DESCRIPTION
 *	tu_tmpdir makes a fresh directory /tmp/PREFIX.XXXXXX; tu_rm_rf
 *	removes a tree below /tmp (anything else is left alone).
 *	tu_write_file writes a file (printf-style), failing the test when it
 *	cannot. tu_top is the checkout the tests run in ($CAREPOST_TOP, as
 *	tests/run sets it, else the current directory), for the shipped
 *	templates and test data. For test binaries only: each includes this
 *	once, after cmocka.h.
 */
#ifndef CAREPOST_TEST_FSFIX_H
#define CAREPOST_TEST_FSFIX_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* tu_tmpdir - a fresh /tmp/PREFIX.XXXXXX into dir; -1 when it fails. */
static inline int
tu_tmpdir(const char *prefix, char *dir, size_t dirlen)
{
	if ((size_t)snprintf(dir, dirlen, "/tmp/%s.XXXXXX", prefix) >= dirlen ||
	    mkdtemp(dir) == NULL) {
		dir[0] = '\0';
		return -1;
	}
	return 0;
}

/* tu_rm_rf - remove a tree below /tmp ("rm -rf"); others are left alone. */
static inline void
tu_rm_rf(const char *dir)
{
	pid_t pid;
	int status;

	if (strncmp(dir, "/tmp/", 5) != 0 || dir[5] == '\0' ||
	    strstr(dir, "..") != NULL)
		return;
	pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
}

static inline void tu_write_file(const char *path, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* tu_write_file - write path (umask's mode); fails the test on error. */
static inline void
tu_write_file(const char *path, const char *fmt, ...)
{
	va_list ap;
	FILE *f;
	int n;

	f = fopen(path, "w");
	if (f == NULL)
		fail_msg("cannot create %s", path);
	va_start(ap, fmt);
	n = vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f) != 0 || n < 0)
		fail_msg("cannot write %s", path);
}

/* tu_top - the checkout the tests run in. */
static inline const char *
tu_top(void)
{
	const char *top = getenv("CAREPOST_TOP");

	return top && *top ? top : ".";
}

#endif
