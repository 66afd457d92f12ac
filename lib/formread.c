/*
 * NAME
 *	formread - the "Field: value" lines of a reply
 * DESCRIPTION
 *	See formread.h. One pass over the lines; each answer's name is
 *	normalised here, so that matching it is a string comparison.
 */
#include "formread.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
formread_key(const char *s, size_t len, char *out, size_t outsz)
{
	size_t n = 0;
	int space = 0;

	if (outsz == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '_' || c == '-' || c == ' ' || c == '\t') {
			space = n > 0;
			continue;
		}
		if (space) {
			if (n + 1 >= outsz)
				return -1;
			out[n++] = ' ';
			space = 0;
		}
		if (n + 1 >= outsz)
			return -1;
		out[n++] = (char)tolower(c);
	}
	out[n] = '\0';
	return 0;
}

void
formread_free(struct formread_answers *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->key[i]);
		free(a->value[i]);
	}
	free(a->key);
	free(a->value);
	a->key = a->value = NULL;
	a->n = 0;
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* control - line[0..len) holds a control character other than a tab. */
static int
control(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7F)
			return 1;
	}
	return 0;
}

/* add - one answer; 0, or -ENOMEM. */
static int
add(struct formread_answers *a, size_t *cap, const char *key,
    const char *val, size_t vlen)
{
	char *k, *v;

	if (a->n == *cap) {
		size_t ncap = *cap ? 2 * *cap : 8;
		char **nk = realloc(a->key, ncap * sizeof(*nk));

		if (nk == NULL)
			return -ENOMEM;
		a->key = nk;
		nk = realloc(a->value, ncap * sizeof(*nk));
		if (nk == NULL)
			return -ENOMEM;
		a->value = nk;
		*cap = ncap;
	}
	k = strdup(key);
	v = strndup(val, vlen);
	if (k == NULL || v == NULL) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	a->key[a->n] = k;
	a->value[a->n] = v;
	a->n++;
	return 0;
}

/* take_line - line[0..len) as an answer, when it is one; 0 or -ENOMEM. */
static int
take_line(const char *line, size_t len, struct formread_answers *a, size_t *cap)
{
	const char *sep = NULL, *name, *val;
	size_t nlen, vlen;
	char key[FORMREAD_MAX_NAME + 1];

	for (size_t i = 0; i < len; i++)
		if (line[i] == ':' || line[i] == '=') {
			sep = line + i;
			break;
		}
	if (sep == NULL)
		return 0;
	name = line;
	nlen = (size_t)(sep - line);
	val = sep + 1;
	vlen = len - nlen - 1;
	trim(&name, &nlen);
	trim(&val, &vlen);
	if (nlen == 0 || vlen == 0 || control(name, nlen) || control(val, vlen) ||
	    formread_key(name, nlen, key, sizeof(key)) < 0 || key[0] == '\0')
		return 0;
	return add(a, cap, key, val, vlen) < 0 ? -ENOMEM : 0;
}

int
formread_answers(const char *text, size_t len, struct formread_answers *out)
{
	size_t cap = 0, lines = 0;

	if (out == NULL || (text == NULL && len > 0))
		return -EINVAL;
	*out = (struct formread_answers)FORMREAD_ANSWERS_INIT;
	for (size_t i = 0; i < len && lines < FORMREAD_MAX_LINES; lines++) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - text) : len;

		if (e - i <= FORMREAD_MAX_LINE &&
		    take_line(text + i, e - i, out, &cap) < 0) {
			formread_free(out);
			return -ENOMEM;
		}
		i = e + 1;
	}
	return 0;
}
