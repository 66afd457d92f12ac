/*
 * NAME
 *	classify - what kind of message a parsed reply is, by carepost's own
 *	addresses and the sender's headers
 * DESCRIPTION
 *	See classify.h.
 */
#include "classify.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static int
has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * tagged_local - if addr is PREFIX+TAG@domain (prefix and domain compared
 * case-insensitively) copy TAG to out and return 1.
 */
static int
tagged_local(const char *addr, const char *prefix, const char *domain,
	     char *out, size_t outsz)
{
	const char *at = strrchr(addr, '@');
	size_t pl = strlen(prefix), tl;

	if (at == NULL || domain == NULL || *domain == '\0' ||
	    strcasecmp(at + 1, domain) != 0)
		return 0;
	if (strncasecmp(addr, prefix, pl) != 0 || addr[pl] != '+')
		return 0;
	tl = (size_t)(at - (addr + pl + 1));
	if (tl == 0 || tl >= outsz)
		return 0;
	for (const char *p = addr + pl + 1; p < at; p++)
		if (!isalnum((unsigned char)*p) && !strchr("=_.-", *p))
			return 0;
	memcpy(out, addr + pl + 1, tl);
	out[tl] = '\0';
	return 1;
}

/*
 * unsubscribe_tagged - addr is LOCAL+TOKEN@DOMAIN for the unsubscribe
 * address LOCAL@DOMAIN (what List-Unsubscribe offers): copy TOKEN.
 */
static int
unsubscribe_tagged(const char *addr, const char *unsub, char *out, size_t outsz)
{
	const char *at = unsub ? strrchr(unsub, '@') : NULL;
	char local[128];

	if (at == NULL || at == unsub || (size_t)(at - unsub) >= sizeof(local))
		return 0;
	memcpy(local, unsub, (size_t)(at - unsub));
	local[at - unsub] = '\0';
	return tagged_local(addr, local, at + 1, out, outsz);
}

static int
from_is_daemon(const struct inmsg *m)
{
	static const char *const daemons[] = { "mailer-daemon@",
		"postmaster@", "mail-daemon@", "mailerdaemon@" };

	if (m->from_addr == NULL)
		return 0;
	for (size_t i = 0; i < CP_ARRAY_SIZE(daemons); i++)
		if (has_prefix_ci(m->from_addr, daemons[i]))
			return 1;
	return 0;
}

/* Out-of-office subject prefixes; compared ASCII-case-insensitively. */
static const char *const ooo_prefixes[] = {
	"out of office", "out of the office", "automatic reply",
	"auto:", "autoreply", "auto-reply", "auto reply", "auto response",
	"autoresponse", "auto-response", "vacation reply",
	"abwesenheitsnotiz", "automatische antwort", "abwesend",
	"respuesta automática", "respuesta automatica", "fuera de la oficina",
	"réponse automatique", "reponse automatique", "absence du bureau",
	"risposta automatica", "fuori ufficio",
	"automatisch antwoord", "afwezig",
	"resposta automática", "resposta automatica", "ausente",
	"autosvar", "automatisk svar", "automatiskt svar",
	"automaattinen vastaus", "odpowiedź automatyczna",
	"automatická odpověď", "автоматический ответ", "自动回复",
	"自動返信", "자동 회신",
};

static int
subject_is_ooo(const char *subject)
{
	if (subject == NULL)
		return 0;
	while (*subject == ' ' || *subject == '\t')
		subject++;
	for (size_t i = 0; i < CP_ARRAY_SIZE(ooo_prefixes); i++)
		if (has_prefix_ci(subject, ooo_prefixes[i]))
			return 1;
	return 0;
}

static int
subject_is_unsubscribe(const char *subject)
{
	size_t a = 0, e;

	if (subject == NULL)
		return 0;
	e = strlen(subject);
	while (a < e && isspace((unsigned char)subject[a]))
		a++;
	while (e > a && isspace((unsigned char)subject[e - 1]))
		e--;
	return e - a == 11 && strncasecmp(subject + a, "unsubscribe", 11) == 0;
}

static int
is_autoreply(const struct inmsg *m, const char **why)
{
	if (m->auto_submitted && m->auto_submitted[0] &&
	    strcmp(m->auto_submitted, "no") != 0) {
		*why = "auto-submitted header";
		return 1;
	}
	if (m->flags & (INMSG_F_X_AUTOREPLY | INMSG_F_X_AUTORESPOND)) {
		*why = "x-autoreply header";
		return 1;
	}
	if (m->precedence && (strcmp(m->precedence, "bulk") == 0 ||
			      strcmp(m->precedence, "junk") == 0 ||
			      strcmp(m->precedence, "list") == 0 ||
			      strcmp(m->precedence, "auto_reply") == 0)) {
		*why = "precedence header";
		return 1;
	}
	if (subject_is_ooo(m->subject)) {
		*why = "out-of-office subject";
		return 1;
	}
	return 0;
}

int
inmsg_no_autoresponse(const struct inmsg *m, const char **why)
{
	const char *local = NULL;

	if (why == NULL)
		why = &local;
	*why = NULL;
	if (m == NULL)
		return 0;
	if (m->list_id != NULL || (m->flags & INMSG_F_LIST_POST))
		*why = "list mail";
	else if (m->flags & INMSG_F_SUPPRESS_AUTOREPLY)
		*why = "x-auto-response-suppress header";
	else if (m->flags & INMSG_F_NULL_RETURN_PATH)
		*why = "null return path";
	else
		is_autoreply(m, why);
	return *why != NULL;
}

enum inmsg_class
inmsg_classify(const struct inmsg *m, const struct inmsg_addrs *a,
	       struct inmsg_class_info *info)
{
	struct inmsg_class_info local;
	const struct inmsg_addrs none = { NULL, NULL, NULL };
	int to_unsub = 0, to_reply = 0, to_bounce = 0;
	const char *why = NULL;

	if (info == NULL)
		info = &local;
	memset(info, 0, sizeof(*info));
	if (a == NULL)
		a = &none;
	if (m == NULL) {
		info->reason = "no message";
		return INMSG_UNKNOWN;
	}
	for (size_t i = 0; i < m->recipients.n; i++) {
		const char *r = m->recipients.v[i];

		if (a->unsubscribe && strcasecmp(r, a->unsubscribe) == 0)
			to_unsub = 1;
		if (!to_unsub && unsubscribe_tagged(r, a->unsubscribe,
						    info->token, sizeof(info->token)))
			to_unsub = 1;
		if (!to_reply && tagged_local(r, "reply", a->reply_domain,
					      info->token, sizeof(info->token)))
			to_reply = 1;
		if (!to_bounce && tagged_local(r, "bounce", a->bounce_domain,
					       info->verp, sizeof(info->verp)))
			to_bounce = 1;
	}
	if (m->arf.present) {
		info->reason = "feedback report (RFC 5965)";
		return INMSG_COMPLAINT;
	}
	if (m->dsn.present) {
		info->reason = "delivery-status report";
		return INMSG_DSN;
	}
	if (to_bounce) {
		info->reason = "sent to a bounce address";
		return INMSG_DSN;
	}
	if (from_is_daemon(m)) {
		info->reason = "from a mailer daemon";
		return INMSG_DSN;
	}
	if (is_autoreply(m, &why)) {
		info->reason = why;
		return INMSG_AUTOREPLY;
	}
	if (to_unsub) {
		info->reason = "sent to the unsubscribe address";
		return INMSG_UNSUBSCRIBE;
	}
	if (to_reply && subject_is_unsubscribe(m->subject)) {
		info->reason = "unsubscribe subject to a reply address";
		return INMSG_UNSUBSCRIBE;
	}
	if (to_reply) {
		info->reason = "sent to a reply address";
		return INMSG_REPLY;
	}
	info->reason = "no known recipient address";
	return INMSG_UNKNOWN;
}

int
inmsg_names_reply_token(const struct inmsg_strlist *addrs,
			const struct inmsg_addrs *a, const char *token)
{
	char tok[INMSG_TOKEN_MAX];

	if (addrs == NULL || a == NULL || (token != NULL && *token == '\0'))
		return 0;
	for (size_t i = 0; i < addrs->n; i++)
		if (tagged_local(addrs->v[i], "reply", a->reply_domain, tok,
				 sizeof(tok)) && (token == NULL || strcasecmp(tok, token) == 0))
			return 1;
	return 0;
}

int
inmsg_bounce_verp(const char *addr, const struct inmsg_addrs *a, char *verp,
		  size_t len)
{
	if (addr == NULL || a == NULL)
		return 0;
	return tagged_local(addr, "bounce", a->bounce_domain, verp, len);
}

const char *
inmsg_class_name(enum inmsg_class c)
{
	switch (c) {
	case INMSG_COMPLAINT: return "complaint";
	case INMSG_REPLY: return "reply";
	case INMSG_UNSUBSCRIBE: return "unsubscribe";
	case INMSG_DSN: return "dsn";
	case INMSG_AUTOREPLY: return "autoreply";
	case INMSG_UNKNOWN: break;
	}
	return "unknown";
}
