/*
 * NAME
 *	classify - what kind of message a parsed reply is, by carepost's own
 *	addresses and the sender's headers
 * SYNOPSIS
 *	#include "classify.h"
 *
 *	struct inmsg_addrs addrs = { reply_domain, bounce_domain, unsubscribe };
 *	struct inmsg_class_info ci;
 *
 *	switch (inmsg_classify(m, &addrs, &ci)) { ... ci.token ... }
 *	if (inmsg_no_autoresponse(m, &why)) ... no acknowledgement ...
 * DESCRIPTION
 *	Pure decisions over a struct inmsg (inmsgtypes.h) and the configured
 *	addresses: no parsing, no I/O. The reply token and VERP are taken
 *	from the recipient addresses only as far as they have the shape
 *	carepost gives them; whether a token is genuine is token.c's
 *	business. The functions are described above their prototypes.
 * ERRORS
 *	None of them can fail: a NULL message classifies as INMSG_UNKNOWN
 *	("no message") and asks for nothing.
 * OWNERSHIP
 *	Arguments are only read. The reason in struct inmsg_class_info and
 *	the strings of inmsg_class_name and inmsg_no_autoresponse are
 *	static; info's token and verp are copies.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_CLASSIFY_H
#define CAREPOST_CLASSIFY_H

#include "inmsgtypes.h"

enum inmsg_class {
	INMSG_UNKNOWN = 0,
	INMSG_REPLY,
	INMSG_UNSUBSCRIBE,
	INMSG_DSN,
	INMSG_AUTOREPLY,
	INMSG_COMPLAINT,
};

/* The configured addresses classification works from (all may be NULL). */
struct inmsg_addrs {
	const char *reply_domain;	/* reply+TOKEN@reply_domain */
	const char *bounce_domain;	/* bounce+VERP@bounce_domain */
	const char *unsubscribe;	/* the List-Unsubscribe mailto address */
};

#define INMSG_TOKEN_MAX 128

struct inmsg_class_info {
	char token[INMSG_TOKEN_MAX];	/* the TOKEN of reply+TOKEN@, or "" */
	char verp[INMSG_TOKEN_MAX];	/* the VERP of bounce+VERP@, or "" */
	const char *reason;		/* static, PHI-free: why this class */
};

/*
 * inmsg_classify - decide what kind of message m is.
 *
 *	Pure: looks only at m and a. info may be NULL; when given it is
 *	filled whatever the class (a reply token is reported even for an
 *	auto-reply sent to a reply address, so that the caller can find the
 *	thread and still not acknowledge). Rules, first match wins:
 *
 *	INMSG_COMPLAINT  the message is a multipart/report;
 *	                 report-type=feedback-report with a
 *	                 message/feedback-report part (arf.present).
 *	INMSG_DSN        a multipart/report; report-type=delivery-status
 *	                 (dsn.present), or any recipient is
 *	                 bounce+VERP@bounce_domain, or the From local part is
 *	                 mailer-daemon / postmaster / mail-daemon (with or
 *	                 without a DSN part: Gmail's text-only bounces).
 *	INMSG_AUTOREPLY  Auto-Submitted other than "no" (RFC 3834),
 *	                 X-Autoreply, X-Autorespond, Precedence bulk, junk,
 *	                 list or auto_reply, or a subject starting with an
 *	                 out-of-office marker in one of several languages
 *	                 ("Out of Office", "Automatic reply", "Auto:",
 *	                 "Abwesenheitsnotiz", "Respuesta automática",
 *	                 "Réponse automatique", ...).
 *	INMSG_UNSUBSCRIBE sent to the unsubscribe address (or to its tagged
 *	                 form LOCAL+TOKEN@DOMAIN, TOKEN then in info->token),
 *	                 or to a reply
 *	                 address with a subject that is just "unsubscribe"
 *	                 (any case, surrounding blanks ignored) - both are
 *	                 what a List-Unsubscribe mailto produces.
 *	INMSG_REPLY      sent to reply+TOKEN@reply_domain (domain compared
 *	                 case-insensitively; TOKEN is 1..127 characters from
 *	                 [A-Za-z0-9=_.-]).
 *	INMSG_UNKNOWN    anything else.
 *	Form submissions are replies; which thread is a form is the
 *	caller's business.
 */
enum inmsg_class inmsg_classify(const struct inmsg *m,
				const struct inmsg_addrs *a,
				struct inmsg_class_info *info);

/*
 * inmsg_names_reply_token - 1 when one of addrs is reply+TOKEN@reply_domain
 * with this token (compared case-insensitively: MTAs may fold the local
 * part), or with any token when token is NULL; else 0. For
 * m->prot.recipients: protected headers that bind what was signed or
 * encrypted to the conversation it was written for.
 */
int inmsg_names_reply_token(const struct inmsg_strlist *addrs,
			    const struct inmsg_addrs *a, const char *token);

/*
 * inmsg_no_autoresponse - whether m asks not to be answered automatically
 * (RFC 3834 section 2, and what mail systems do in practice): 1 when it
 * is list mail (List-Id, List-Post), carries X-Auto-Response-Suppress
 * naming All, AutoReply or OOF (case-insensitive, comma-separated; "None"
 * or other values alone suppress nothing), has a null Return-Path (<>),
 * or is what inmsg_classify calls an auto-reply; else 0. Pure. why (may
 * be NULL) gets a static PHI-free reason ("list mail", ...) or NULL.
 * Such a reply is still a reply (filed when authenticated); carepost
 * sends it no acknowledgement or other automatic answer.
 */
int inmsg_no_autoresponse(const struct inmsg *m, const char **why);

/*
 * inmsg_bounce_verp - the VERP of addr when it is bounce+VERP@ the
 * bounce domain of a (into verp, of len bytes): 1, else 0.
 */
int inmsg_bounce_verp(const char *addr, const struct inmsg_addrs *a, char *verp,
		      size_t len);

/* inmsg_class_name - "reply", "unsubscribe", "dsn", "autoreply",
 * "complaint", "unknown". */
const char *inmsg_class_name(enum inmsg_class c);

#endif
