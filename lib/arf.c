/*
 * NAME
 *	arf - the fields of an RFC 5965 feedback report
 * DESCRIPTION
 *	See arf.h.
 */
#include "arf.h"
#include "dsn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailtext.h"
#include "util.h"

static int
arf_field(void *ud, const char *name, size_t nlen, const char *v, size_t vlen)
{
#define IS(s) (nlen == sizeof(s) - 1 && strncasecmp(name, s, nlen) == 0)
	struct inmsg_arf *a = ud;
	char **slot = NULL;
	unsigned how = 0;

	if (IS("feedback-type")) {
		slot = &a->feedback_type;
		how = REPORT_LOWER | REPORT_WORD;
	} else if (IS("user-agent")) {
		slot = &a->user_agent;
	} else if (IS("version")) {
		slot = &a->version;
	} else if (IS("original-mail-from")) {
		slot = &a->original_mail_from;
		how = REPORT_LOWER | REPORT_ANGLE;
	} else if (IS("original-rcpt-to")) {
		slot = &a->original_rcpt_to;
		how = REPORT_LOWER | REPORT_ANGLE;
	} else if (IS("reported-domain")) {
		slot = &a->reported_domain;
		how = REPORT_LOWER;
	} else if (IS("redacted-address")) {
		a->redacted = 1;
	}
#undef IS
	if (slot == NULL || *slot != NULL)
		return 0;
	return (*slot = report_value(v, vlen, how)) == NULL ? -ENOMEM : 0;
}

int
arf_parse(struct inmsg_arf *a, const char *text, size_t len)
{
	if (a->present)			/* the first report part counts */
		return 0;
	a->present = 1;
	return report_fields(text, len, arf_field, a);
}

int
arf_take_reported_headers(struct inmsg_arf *a, const char *raw, size_t len)
{
	a->orig_headers_present = 1;
	if (raw == NULL)
		return 0;
	if (a->orig_message_id == NULL) {
		_cleanup_free_ char *mid = report_header(raw, len, "message-id");

		if (mid && (a->orig_message_id = mailtext_strip_angle_dup(mid)) == NULL)
			return -ENOMEM;
	}
	if (a->orig_return_path == NULL) {
		_cleanup_free_ char *rp = report_header(raw, len, "return-path");

		if (rp && (a->orig_return_path = mailtext_addr_dup(rp)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

void
arf_free(struct inmsg_arf *a)
{
	free(a->feedback_type);
	free(a->user_agent);
	free(a->version);
	free(a->original_mail_from);
	free(a->original_rcpt_to);
	free(a->reported_domain);
	free(a->orig_message_id);
	free(a->orig_return_path);
}

enum arf_kind
arf_kind(const char *t)
{
	if (t == NULL || *t == '\0')
		return ARF_NONE;
	if (strcmp(t, "virus") == 0)
		return ARF_VIRUS;
	if (strcmp(t, "not-spam") == 0)
		return ARF_NOT_SPAM;
	if (strcmp(t, "auth-failure") == 0)
		return ARF_AUTH_FAILURE;
	return ARF_COMPLAINT;		/* abuse, fraud, other, and what is new */
}

const char *
arf_kind_name(enum arf_kind k)
{
	switch (k) {
	case ARF_COMPLAINT: return "complaint";
	case ARF_VIRUS: return "virus";
	case ARF_NOT_SPAM: return "not-spam";
	case ARF_AUTH_FAILURE: return "auth-failure";
	case ARF_NONE: break;
	}
	return "none";
}
