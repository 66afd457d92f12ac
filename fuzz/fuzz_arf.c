/*
 * NAME
 *	fuzz_arf - libFuzzer target: arf_parse and arf_take_reported_headers
 *	over arbitrary bytes
 * DESCRIPTION
 *	The bytes are read as a message/feedback-report body (converted as
 *	the MIME walk converts it) and as a reported message's header
 *	block. Whatever they hold: success, the report marked present, every
 *	value valid UTF-8 without controls and at most DSN_MAX_VALUE bytes
 *	plus its U+FFFD growth, the Feedback-Type one lower-case word, and
 *	arf_kind total over it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arf.h"
#include "buf.h"
#include "fuzzfix.h"
#include "dsn.h"
#include "mailtext.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf text = BUF_INIT;
	struct inmsg_arf a;
	enum arf_kind k;

	memset(&a, 0, sizeof(a));
	if (mailtext_to_utf8(NULL, (const char *)data, size, &text) < 0)
		abort();
	if (arf_parse(&a, text.data, text.len) < 0 || !a.present)
		abort();
	fz_check_value(a.feedback_type, 3 * DSN_MAX_VALUE);
	fz_check_value(a.user_agent, 3 * DSN_MAX_VALUE);
	fz_check_value(a.version, 3 * DSN_MAX_VALUE);
	fz_check_value(a.original_mail_from, 3 * DSN_MAX_VALUE);
	fz_check_value(a.original_rcpt_to, 3 * DSN_MAX_VALUE);
	fz_check_value(a.reported_domain, 3 * DSN_MAX_VALUE);
	if (a.feedback_type != NULL)
		for (const char *p = a.feedback_type; *p; p++)
			if (*p == ' ' || *p == '\t' || *p == '(' ||
			    (*p >= 'A' && *p <= 'Z'))
				abort();
	k = arf_kind(a.feedback_type);
	if ((k == ARF_NONE) != (a.feedback_type == NULL || *a.feedback_type == '\0') ||
	    strcmp(arf_kind_name(k), "") == 0)
		abort();
	if (arf_take_reported_headers(&a, (const char *)data, size) < 0 ||
	    !a.orig_headers_present)
		abort();
	fz_check_value(a.orig_message_id, 3 * DSN_MAX_VALUE);
	fz_check_value(a.orig_return_path, 3 * DSN_MAX_VALUE);
	arf_free(&a);
	buf_free(&text);
	return 0;
}
