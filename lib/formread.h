/*
 * NAME
 *	formread - the "Field: value" lines of a reply
 * SYNOPSIS
 *	#include "formread.h"
 *	struct formread_answers a = FORMREAD_ANSWERS_INIT;
 *	r = formread_answers(text, len, &a);
 *	... a.key[i], a.value[i] for i < a.n ...
 *	formread_free(&a);
 * DESCRIPTION
 *	The reading half of form.h's form_parse: what a patient's reply
 *	says, line by line, with no knowledge of the form it answers (no
 *	jansson). carepostd runs it on the reply the parse helper cut
 *	(inmsg's m->reply, the text it files), so the answers are only ever
 *	what the filed text says; form_match then compares them with the
 *	form's fields. One pass over the lines, capped: linear in the text.
 *
 *	A line (LF-ended; the first FORMREAD_MAX_LINES lines, each of at most
 *	FORMREAD_MAX_LINE bytes) is an answer when it holds ':' or '=': the
 *	first of them separates the name from the value, and white space
 *	around both is trimmed. The name is then normalised (formread_key:
 *	ASCII lower-case, '_', '-', tabs and runs of spaces as one space,
 *	trimmed); a line whose normalised name is empty or longer than
 *	FORMREAD_MAX_NAME bytes, or whose value is empty, or whose name or
 *	value (trimmed: a CR at the end of a line goes) holds a control
 *	character other than a tab, is no answer. Answers keep the
 *	order of the lines; a name may come more than once (the first
 *	non-empty answer is the one form_match takes).
 * LIMITS
 *	At most FORMREAD_MAX_LINES answers; a key at most FORMREAD_MAX_NAME
 *	bytes, a value at most FORMREAD_MAX_LINE. Keys hold no control
 *	character and no upper-case ASCII, values no control character but
 *	tabs; both are valid UTF-8 when the text is (the caller's promise;
 *	inmsg's reply is).
 * ERRORS
 *	formread_answers: 0, -EINVAL (NULL text with a length, NULL out), or
 *	-ENOMEM (then *out is empty). formread_key: 0, or -1 when the name
 *	does not fit in outsz (with its NUL).
 * OWNERSHIP
 *	*out owns its arrays and strings (formread_free, which leaves it
 *	empty). The text is only read.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_FORMREAD_H
#define CAREPOST_FORMREAD_H

#include <stddef.h>

#define FORMREAD_MAX_LINE	1000	/* bytes of a line read */
#define FORMREAD_MAX_LINES	10000	/* lines read */
#define FORMREAD_MAX_NAME	100	/* bytes of a normalised name */

/* The answers of one reply: n keys and n values. */
struct formread_answers {
	char **key;
	char **value;
	size_t n;
};

#define FORMREAD_ANSWERS_INIT	{ NULL, NULL, 0 }

int formread_answers(const char *text, size_t len, struct formread_answers *out);
void formread_free(struct formread_answers *a);
int formread_key(const char *s, size_t len, char *out, size_t outsz);

#endif
