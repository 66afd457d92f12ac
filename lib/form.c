/*
 * NAME
 *	form - read "Field: value" answers out of a form reply
 * DESCRIPTION
 *	See form.h. Spec names are normalised once into a fixed table; each
 *	reply line is split, its name normalised the same way and looked up.
 */
#include "form.h"

#include <ctype.h>

struct field {
	const char *name;		/* as in the spec (borrowed) */
	char key[FORM_MAX_NAME + 1];	/* normalised */
	int required;
	int answered;
};

/*
 * normalise - ASCII lower-case, '_' and '-' as spaces, white space runs
 * collapsed, trimmed. Returns -1 when the result would not fit.
 */
static int
normalise(const char *s, size_t len, char *out, size_t outsz)
{
	size_t n = 0;
	int space = 0;

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

static int
load_spec(json_t *spec, struct field *fields, size_t *nfields,
	  struct cp_error *err)
{
	size_t i;
	json_t *e;

	if (!json_is_array(spec))
		return cp_error_set(err, -EINVAL, "form spec is not an array");
	if (json_array_size(spec) > FORM_MAX_FIELDS)
		return cp_error_set(err, -EINVAL,
			"form spec has more than %d fields", FORM_MAX_FIELDS);
	json_array_foreach(spec, i, e) {
		json_t *name = json_object_get(e, "name");
		json_t *req = json_object_get(e, "required");
		const char *s;

		if (!json_is_string(name))
			return cp_error_set(err, -EINVAL,
				"form spec entry %zu has no name", i);
		s = json_string_value(name);
		if (*s == '\0' || json_string_length(name) > FORM_MAX_NAME ||
		    strlen(s) != json_string_length(name))
			return cp_error_set(err, -EINVAL,
				"form spec entry %zu has an unusable name", i);
		if (req != NULL && !json_is_boolean(req))
			return cp_error_set(err, -EINVAL,
				"form spec entry %zu: required is not a boolean", i);
		fields[i].name = s;
		fields[i].required = json_is_true(req);
		fields[i].answered = 0;
		if (normalise(s, strlen(s), fields[i].key,
			      sizeof(fields[i].key)) < 0 || fields[i].key[0] == '\0')
			return cp_error_set(err, -EINVAL,
				"form spec entry %zu has an unusable name", i);
	}
	*nfields = json_array_size(spec);
	return 0;
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

/* take_line - one line; 0, or -ENOMEM. */
static int
take_line(const char *line, size_t len, struct field *fields, size_t nfields,
	  json_t *values)
{
	const char *sep = NULL, *name, *val;
	size_t nlen, vlen;
	char key[FORM_MAX_NAME + 1];

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
	if (nlen == 0 || vlen == 0)
		return 0;
	if (normalise(name, nlen, key, sizeof(key)) < 0)
		return 0;
	for (size_t f = 0; f < nfields; f++) {
		json_t *v;

		if (fields[f].answered || strcmp(fields[f].key, key) != 0)
			continue;
		v = json_stringn(val, vlen);
		if (v == NULL || json_object_set_new(values, fields[f].name, v) < 0)
			return -ENOMEM;
		fields[f].answered = 1;
		/* spec names may repeat after normalising: first one takes it */
		return 0;
	}
	return 0;
}

int
form_parse(const char *text, size_t len, json_t *fields_spec,
	   json_t **values_out, json_t **missing_out, struct cp_error *err)
{
	struct field fields[FORM_MAX_FIELDS];
	size_t nfields = 0, lines = 0;
	json_t *values = NULL, *missing = NULL;
	int r;

	cp_error_clear(err);
	if (values_out == NULL || missing_out == NULL)
		return cp_error_set(err, -EINVAL, "form_parse: no output");
	*values_out = NULL;
	*missing_out = NULL;
	if (text == NULL && len > 0)
		return cp_error_set(err, -EINVAL, "form_parse: no text");
	if ((r = load_spec(fields_spec, fields, &nfields, err)) < 0)
		return r;
	if (len > 0 && !cp_utf8_valid(text, len))
		return cp_error_set(err, -EILSEQ, "form text is not valid UTF-8");
	values = json_object();
	missing = json_array();
	if (values == NULL || missing == NULL)
		goto nomem;
	for (size_t i = 0; i < len && lines < FORM_MAX_LINES; lines++) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - text) : len;

		if (e - i <= FORM_MAX_LINE &&
		    take_line(text + i, e - i, fields, nfields, values) < 0)
			goto nomem;
		i = e + 1;
	}
	for (size_t f = 0; f < nfields; f++)
		if (fields[f].required && !fields[f].answered &&
		    json_array_append_new(missing, json_string(fields[f].name)) < 0)
			goto nomem;
	*values_out = values;
	*missing_out = missing;
	return 0;
nomem:
	json_decref(values);
	json_decref(missing);
	return cp_error_set(err, -ENOMEM, "out of memory reading form");
}
