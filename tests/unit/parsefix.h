/*
 * NAME
 *	parsefix.h - substitute parse helpers for the unit tests
 * DESCRIPTION
 *	A test that needs a parse helper which misbehaves (crashes, stalls,
 *	lies) copies its own binary under another name (tu_parse_use) and
 *	lets carepostd's side start it as carepost-parse. Started so, the
 *	binary serves (tu_parse_dispatch, first thing in main) as the real
 *	helper does: a fork server (lib/helper's helper_fork_server) that
 *	says its first word, then forks a child per connection; but with no
 *	wall, and each child runs the test's own function, which begins
 *	with tu_parse_first_words (the version and its pid) as the real
 *	child does. For test binaries only: each includes this once.
 */
#ifndef CAREPOST_TEST_PARSEFIX_H
#define CAREPOST_TEST_PARSEFIX_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "helper.h"
#include "parsehelper.h"

/* A substitute: the name it is copied as, what each of its children does. */
struct tu_parse_sub {
	const char *name;
	helper_child_fn child;
};

/* tu_parse_first_words - a child's first word: the version, its pid. */
static inline int
tu_parse_first_words(struct buf *scratch)
{
	int32_t pid = (int32_t)getpid();
	struct helper_field ready[2] = {
		{ CAREPOST_VERSION, strlen(CAREPOST_VERSION) },
		{ &pid, sizeof(pid) },
	};

	return helper_frame_send(HELPER_FD, scratch, 0, ready, 2);
}

/* tu_parse_serve - the server's side, as the real one's, without a wall. */
static inline int
tu_parse_serve(helper_child_fn child)
{
	struct buf scratch = BUF_INIT;
	struct helper_field ready = { CAREPOST_VERSION, strlen(CAREPOST_VERSION) };

	if (helper_serve_begin("--parse-helper") != 0)
		return 1;
	if (helper_frame_send(HELPER_FD, &scratch, 0, &ready, 1) < 0)
		return 1;
	buf_free(&scratch);
	return helper_fork_server(child, NULL, 1000);
}

/*
 * tu_parse_dispatch - when this binary was started as the parse helper
 * under the name of one of subs, serve as that substitute and return its
 * exit code; otherwise -1.
 */
static inline int
tu_parse_dispatch(int argc, char **argv, const struct tu_parse_sub *subs,
		  size_t n)
{
	char exe[PATH_MAX];
	const char *base;
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (len <= 0 || argc != 2 || (strcmp(argv[1], PARSEHELPER_FLAG) != 0 &&
			  strcmp(argv[1], PARSEHELPER_FLAG_ALL_CHARSETS) != 0))
		return -1;
	exe[len] = '\0';
	base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
	for (size_t i = 0; i < n; i++)
		if (strcmp(base, subs[i].name) == 0)
			return tu_parse_serve(subs[i].child);
	return -1;
}

/*
 * tu_parse_use - this binary, copied as dir/name (once), made the parse
 * helper; its path into path.
 */
static inline int
tu_parse_use(const char *dir, const char *name, char *path, size_t len)
{
	char self[PATH_MAX], cmd[2 * PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(path, len, "%s/%s", dir, name);
	if (access(path, X_OK) != 0) {
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", self, path);
		if (system(cmd) != 0)
			return -1;
	}
	return parsehelper_enable(path);
}

#endif
