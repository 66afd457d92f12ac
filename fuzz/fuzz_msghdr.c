/*
 * NAME
 *	fuzz_msghdr - libFuzzer target: header facts over arbitrary header
 *	fields
 * DESCRIPTION
 *	The bytes are read by libetpan as a header block and handed to
 *	msghdr_take, and to msghdr_take_protected as a covered entity.
 *	Every string taken must be valid UTF-8, the recipients at most
 *	INMSG_MAX_RECIPIENTS and without duplicates.
 *
 *	libetpan's mailimf_fields_parse (Debian's 1.9.4) loses a few bytes
 *	of its own on some malformed fields (a Return-Path cut short); those
 *	leaks are suppressed by name, with the slow unwinder so that the
 *	name is seen through libetpan's frames. Only allocations made inside
 *	that function are suppressed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libetpan/libetpan.h>

#include "inmsg.h"
#include "msghdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

const char *
__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

const char *
__lsan_default_suppressions(void)
{
	return "leak:mailimf_fields_parse\n";
}

static void
check_str(const char *s)
{
	if (s != NULL && !cp_utf8_valid(s, strlen(s)))
		abort();
}

static void
check_list(const struct inmsg_strlist *l, int distinct)
{
	if (distinct && l->n > INMSG_MAX_RECIPIENTS)
		abort();
	for (size_t i = 0; i < l->n; i++) {
		check_str(l->v[i]);
		for (size_t k = 0; distinct && k < i; k++)
			if (strcmp(l->v[i], l->v[k]) == 0)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailimf_fields *fields = NULL;
	struct inmsg *m = calloc(1, sizeof(*m));
	size_t idx = 0;

	if (m == NULL)
		return 0;
	m->date = -1;
	if (mailimf_fields_parse((const char *)data, size, &idx, &fields) ==
	    MAILIMF_NO_ERROR && fields != NULL) {
		if (msghdr_take(m, fields) == 0) {
			check_str(m->message_id);
			check_str(m->in_reply_to);
			check_str(m->from_addr);
			check_str(m->from_name);
			check_str(m->subject);
			check_str(m->list_id);
			check_list(&m->recipients, 1);
			check_list(&m->references, 0);
			check_list(&m->auth_results, 0);
		}
		mailimf_fields_free(fields);
	}
	if (msghdr_take_protected(m, (const char *)data, size) == 0) {
		check_str(m->prot.subject);
		check_list(&m->prot.recipients, 1);
	}
	inmsg_free(m);
	return 0;
}
