/*
 * NAME
 *	form - read "Field: value" answers out of a form reply
 * SYNOPSIS
 *	#include "form.h"
 *
 *	json_t *spec = json_loads("[{\"name\":\"Date of birth\",\"required\":true}]", 0, NULL);
 *	json_t *values, *missing;
 *	r = form_parse(text, len, spec, &values, &missing, &err);
 *	or, on answers already read (formread.h):
 *	r = form_match(&answers, spec, &values, &missing, &err);
 * DESCRIPTION
 *	A form_request event mails the patient a list of fields; they reply
 *	with one answer per line:
 *
 *	    Date of birth: 1980-02-03
 *	    Insurance = ACME 1234
 *
 *	form_parse reads every line of the form "name: value" or
 *	"name = value" (formread.h: the first ':' or '=' in the line
 *	separates, whitespace around name and value is trimmed, a line
 *	holding a control character other than a tab is no answer), then
 *	matches them as form_match does. form_match takes answers already
 *	read and only compares: a name matches a field of the spec when both are equal
 *	after ASCII lower-casing, treating '_' and '-' as spaces and
 *	collapsing runs of white space ("date_of_birth" matches "Date of
 *	birth"). Lines naming no known field are ignored, as is everything
 *	else in the reply. The first non-empty answer for a field wins; an
 *	empty answer ("Name:") is no answer.
 *
 *	The spec is a JSON array of objects {"name": string, "required":
 *	bool (optional, default false)}; names are 1..FORM_MAX_NAME bytes and
 *	at most FORM_MAX_FIELDS of them.
 * LIMITS
 *	Lines longer than FORM_MAX_LINE bytes are ignored (never a field);
 *	only the first FORM_MAX_LINES lines are read. Values are at most
 *	FORM_MAX_LINE bytes by construction. The text must be valid UTF-8
 *	(inmsg bodies are).
 * OWNERSHIP
 *	On success *values_out is a new object {"<spec name>": "value", ...}
 *	and *missing_out a new array of the required spec names without an
 *	answer, in spec order; the caller json_decref()s both. On failure
 *	both are NULL. fields_spec is borrowed, not modified.
 * ERRORS
 *	-EINVAL  bad spec (not an array, an entry without a usable name, too
 *	         many fields) or NULL arguments; the reason names the entry
 *	         index, never a value (form_match: the same)
 *	-EILSEQ  the text is not valid UTF-8 (or holds NUL bytes)
 *	-ENOMEM  out of memory
 * THREAD SAFETY
 *	Reentrant (jansson objects belong to the calling thread).
 */
#ifndef CAREPOST_FORM_H
#define CAREPOST_FORM_H

#include <stddef.h>

#include <jansson.h>

#include "formread.h"
#include "util.h"

#define FORM_MAX_LINE	FORMREAD_MAX_LINE
#define FORM_MAX_LINES	FORMREAD_MAX_LINES
#define FORM_MAX_FIELDS	200
#define FORM_MAX_NAME	FORMREAD_MAX_NAME

int form_parse(const char *text, size_t len, json_t *fields_spec,
	       json_t **values_out, json_t **missing_out,
	       struct cp_error *err);
int form_match(const struct formread_answers *answers, json_t *fields_spec,
	       json_t **values_out, json_t **missing_out, struct cp_error *err);

#endif
