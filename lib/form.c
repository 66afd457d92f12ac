/*
 * NAME
 *	form - read "Field: value" answers out of a form reply
 * DESCRIPTION
 *	See form.h. Spec names are normalised once into a fixed table (as
 *	formread normalises the names of the reply's lines) and each answer
 *	is looked up in it.
 */
#include "form.h"

struct field {
	const char *name;		/* as in the spec (borrowed) */
	char key[FORM_MAX_NAME + 1];	/* normalised */
	int required;
	int answered;
};

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
		if (formread_key(s, strlen(s), fields[i].key,
				 sizeof(fields[i].key)) < 0 || fields[i].key[0] == '\0')
			return cp_error_set(err, -EINVAL,
				"form spec entry %zu has an unusable name", i);
	}
	*nfields = json_array_size(spec);
	return 0;
}

int
form_match(const struct formread_answers *a, json_t *fields_spec,
	   json_t **values_out, json_t **missing_out, struct cp_error *err)
{
	struct field fields[FORM_MAX_FIELDS];
	size_t nfields = 0;
	json_t *values = NULL, *missing = NULL;
	int r;

	cp_error_clear(err);
	if (values_out == NULL || missing_out == NULL || a == NULL)
		return cp_error_set(err, -EINVAL, "form_match: no answers or output");
	*values_out = NULL;
	*missing_out = NULL;
	if ((r = load_spec(fields_spec, fields, &nfields, err)) < 0)
		return r;
	values = json_object();
	missing = json_array();
	if (values == NULL || missing == NULL)
		goto nomem;
	for (size_t i = 0; i < a->n; i++) {
		for (size_t f = 0; f < nfields; f++) {
			json_t *v;

			if (fields[f].answered || strcmp(fields[f].key, a->key[i]) != 0)
				continue;
			v = json_string(a->value[i]);
			if (v == NULL ||
			    json_object_set_new(values, fields[f].name, v) < 0)
				goto nomem;
			fields[f].answered = 1;
			/* spec names may repeat after normalising: the first
			 * takes it */
			break;
		}
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

int
form_parse(const char *text, size_t len, json_t *fields_spec,
	   json_t **values_out, json_t **missing_out, struct cp_error *err)
{
	struct formread_answers a = FORMREAD_ANSWERS_INIT;
	int r;

	cp_error_clear(err);
	if (values_out == NULL || missing_out == NULL)
		return cp_error_set(err, -EINVAL, "form_parse: no output");
	*values_out = NULL;
	*missing_out = NULL;
	if (text == NULL && len > 0)
		return cp_error_set(err, -EINVAL, "form_parse: no text");
	if (len > 0 && !cp_utf8_valid(text, len))
		return cp_error_set(err, -EILSEQ, "form text is not valid UTF-8");
	if (formread_answers(text, len, &a) < 0)
		return cp_error_set(err, -ENOMEM, "out of memory reading form");
	r = form_match(&a, fields_spec, values_out, missing_out, err);
	formread_free(&a);
	return r;
}
