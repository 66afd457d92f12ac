/*
 * NAME
 *	msgfix.h - received-message fixtures shared by the unit tests
 * DESCRIPTION
 *	tu_addrs is the clinic's configured addresses (reply, bounce and
 *	unsubscribe); tu_corpus_dir finds the corpus of real messages
 *	($CAREPOST_SHARED/corpus, else ../shared/corpus; NULL when absent)
 *	and NEED_CORPUS skips a test without it; tu_parse_file and
 *	tu_parse_str parse a corpus file or a string with the default
 *	limits, failing the test when the parse fails. For test binaries
 *	only: each includes this once, after cmocka.h.
 */
#ifndef CAREPOST_TEST_MSGFIX_H
#define CAREPOST_TEST_MSGFIX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "inmsg.h"
#include "util.h"

static const struct inmsg_addrs tu_addrs = {
	.reply_domain = "reply.clinic.example",
	.bounce_domain = "bounce.clinic.example",
	.unsubscribe = "unsubscribe@reply.clinic.example",
};

static inline const char *
tu_corpus_dir(void)
{
	static char path[2048];
	const char *shared = getenv("CAREPOST_SHARED");
	struct stat st;

	if (shared && *shared)
		snprintf(path, sizeof(path), "%s/corpus", shared);
	else
		snprintf(path, sizeof(path), "../shared/corpus");
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return path;
}

#define NEED_CORPUS(dir)						\
	do {								\
		(dir) = tu_corpus_dir();				\
		if ((dir) == NULL) {					\
			print_message("corpus not found (set CAREPOST_SHARED): skipped\n"); \
			skip();						\
		}							\
	} while (0)

static inline struct inmsg *
tu_parse_file(const char *rel)
{
	const char *dir = tu_corpus_dir();
	char path[4096];
	_cleanup_free_ char *raw = NULL;
	size_t len;
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(cp_read_file(path, 64u << 20, &raw, &len), 0);
	if (inmsg_parse(raw, len, NULL, &m, &err) < 0)
		fail_msg("%s: %s", rel, err.text);
	return m;
}

static inline struct inmsg *
tu_parse_str(const char *s)
{
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	if (inmsg_parse(s, strlen(s), NULL, &m, &err) < 0)
		fail_msg("parse failed: %s", err.text);
	return m;
}

#endif
