/*
 * NAME
 *	trim - placeholder reply trimmer until the trim branch lands
 * DESCRIPTION
 *	See trim.h. Deliberately crude: a line-oriented cut.
 */
#include "trim.h"

static int
cut_here(const char *line, size_t n)
{
	if (n > 0 && line[0] == '>')
		return 1;
	if (n == 3 && memcmp(line, "-- ", 3) == 0)
		return 1;
	if (n >= 27 && memcmp(line, "-----Original Message-----", 26) == 0)
		return 1;
	if (n > 8 && strncmp(line, "On ", 3) == 0 &&
	    n >= 6 && memcmp(line + n - 6, "wrote:", 6) == 0)
		return 1;
	return 0;
}

int
trim_reply(const char *text, size_t len, char **reply_out, char **elided_out,
	   struct cp_error *err)
{
	char *reply, *elided = NULL;
	size_t i = 0, o = 0, cut = len;

	*reply_out = NULL;
	if (elided_out)
		*elided_out = NULL;
	reply = malloc(len + 1);
	if (reply == NULL)
		return cp_error_set(err, -ENOMEM, "trim: out of memory");
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
		size_t m = n;

		if (m > 0 && text[i + m - 1] == '\r')
			m--;
		if (cut_here(text + i, m)) {
			cut = i;
			break;
		}
		memcpy(reply + o, text + i, m);
		o += m;
		reply[o++] = '\n';
		i += n + (nl ? 1 : 0);
	}
	while (o > 0 && (reply[o - 1] == '\n' || reply[o - 1] == ' '))
		o--;
	reply[o] = '\0';
	if (elided_out) {
		elided = strndup(text + cut, len - cut);
		if (elided == NULL) {
			free(reply);
			return cp_error_set(err, -ENOMEM, "trim: out of memory");
		}
		*elided_out = elided;
	}
	*reply_out = reply;
	return 0;
}
