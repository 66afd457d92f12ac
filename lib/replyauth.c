/*
 * NAME
 *	replyauth - a reply's sender and conversation, proved or not
 * DESCRIPTION
 *	See replyauth.h. Reads only: the verdict goes into struct
 *	replyauth_out, and inbound turns a failure into a quarantine.
 */
#include "replyauth.h"
#include "authres.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void
auth_fail(struct replyauth_out *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
auth_fail(struct replyauth_out *out, const char *fmt, ...)
{
	va_list ap;

	out->status = "fail";
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

static void
auth_unavailable(struct replyauth_out *out, const char *why)
{
	out->status = "unavailable";
	snprintf(out->reason, sizeof(out->reason), "authentication unavailable: %s",
		 why);
}

static const char *
domain_of(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;

	return at ? at + 1 : NULL;
}

static int
fpr_equal(const char *a, const char *b)
{
	return a && b && *a && strcasecmp(a, b) == 0;
}

int
replyauth_own_key(const char *signer, const char *clinic_fpr, const char *store_fpr)
{
	return fpr_equal(clinic_fpr, signer) || fpr_equal(store_fpr, signer);
}

void
replyauth_resolve_signer(struct pgp *pgp, char **signer, int *resolved)
{
	char *primary = NULL;

	if (*signer == NULL || *resolved || pgp == NULL)
		return;
	*resolved = 1;
	if (pgp_primary_fpr(pgp, *signer, &primary, NULL) == 0 && primary) {
		free(*signer);
		*signer = primary;
	}
}

/* signer_ref - "patient" or "proxy:N" whose key on file out->signer is, or 0. */
static int
signer_ref(const struct replyauth_out *out, char *ref, size_t reflen)
{
	json_t *proxies = json_object_get(out->patient, "proxies"), *p;
	size_t i;

	if (fpr_equal(json_string_value(json_object_get(out->patient, "pgp_fpr")),
		      out->signer)) {
		cp_strlcpy(ref, "patient", reflen);
		return 1;
	}
	json_array_foreach(proxies, i, p) {
		if (fpr_equal(json_string_value(json_object_get(p, "pgp_fpr")),
			      out->signer)) {
			snprintf(ref, reflen, "proxy:%zu", i);
			return 1;
		}
	}
	return 0;
}

/*
 * signer_match - whether the good signature over the whole message is the
 * thread's patient's or a proxy's, made after the thread began (less
 * REPLYAUTH_SIG_CLOCK_SKEW): only then does it prove who wrote what is
 * filed, for this conversation. A signature of theirs from before (a
 * message they signed elsewhere, replayed with a stolen token) proves
 * nothing here: sig_stale. A signing clock that is ahead does no harm
 * (nothing older than the thread can be replayed with it). A signing
 * subkey is resolved to its primary key only when the fingerprint as
 * given matches nobody.
 */
static void
signer_match(const struct replyauth_in *in, struct replyauth_out *out)
{
	int64_t began = out->thread.created;
	char ref[sizeof(out->sender_ref)];

	if (out->signer == NULL)
		return;
	if (!signer_ref(out, ref, sizeof(ref))) {
		/* one gpg run: only here */
		replyauth_resolve_signer(in->pgp, &out->signer, &out->signer_resolved);
		if (replyauth_own_key(out->signer, in->clinic_fpr, in->store_fpr))
			out->sig_ours = 1;
		if (out->sig_ours || !signer_ref(out, ref, sizeof(ref)))
			return;
	}
	/* Made before the thread began, or dated ahead of now (a message
	 * signed with a clock set forward could be replayed into every
	 * thread begun before that date): it proves nothing here. Now is
	 * the later of the caller's time and the system clock, which gpg's
	 * signing clocks are read against (a time pinned in the past for a
	 * test or a replay must not make today's signatures future). */
	int64_t wall = (int64_t)time(NULL);
	int64_t latest = in->now > wall ? in->now : wall;

	if (in->sig_created < began - REPLYAUTH_SIG_CLOCK_SKEW ||
	    in->sig_created > latest + REPLYAUTH_SIG_CLOCK_SKEW) {
		out->sig_stale = 1;
		return;
	}
	cp_strlcpy(out->sender_ref, ref, sizeof(out->sender_ref));
	out->signer_matched = 1;
}

/* from_ref - "patient" or "proxy:N" whose address on file the From is, or "". */
static void
from_ref(const struct replyauth_in *in, struct replyauth_out *out)
{
	json_t *proxies = json_object_get(out->patient, "proxies"), *p;
	const char *from = in->from_addr;
	const char *email;
	size_t i;

	out->from_ref[0] = '\0';
	if (from == NULL)
		return;
	email = json_string_value(json_object_get(out->patient, "email"));
	if (email && strcasecmp(email, from) == 0) {
		cp_strlcpy(out->from_ref, "patient", sizeof(out->from_ref));
		return;
	}
	json_array_foreach(proxies, i, p) {
		email = json_string_value(json_object_get(p, "email"));
		if (email && strcasecmp(email, from) == 0) {
			snprintf(out->from_ref, sizeof(out->from_ref), "proxy:%zu", i);
			return;
		}
	}
}

/* sender_of - who the message is from: by signature (signer_match), else by From. */
static void
sender_of(const struct replyauth_in *in, struct replyauth_out *out)
{
	out->sender_ref[0] = '\0';
	from_ref(in, out);
	signer_match(in, out);
	if (!out->signer_matched)
		cp_strlcpy(out->sender_ref, out->from_ref, sizeof(out->sender_ref));
}

/*
 * header_auth - what the trusted MTA's topmost Authentication-Results
 * says of the From domain (authres.h). headers_authenticated: DMARC or
 * aligned DKIM vouch for the header fields (Subject among them) of a
 * message whose one From address is the patient's or a proxy's on file.
 */
static void
header_auth(const struct replyauth_in *in, struct replyauth_out *out,
	    struct authres_result *ar)
{
	memset(ar, 0, sizeof(*ar));
	if (in->trusted_authserv_id && *in->trusted_authserv_id)
		authres_check(in->auth_results, in->n_auth_results,
			      in->trusted_authserv_id, domain_of(in->from_addr), ar);
	out->headers_authenticated = in->from_count == 1 && out->from_ref[0] &&
		(ar->dmarc_pass || (ar->dkim_aligned_pass && !ar->dmarc_fail));
}

/* thread_of - the token's thread and patient into out; <0 for infrastructure. */
static int
thread_of(const struct replyauth_in *in, struct replyauth_out *out,
	  struct cp_error *err)
{
	struct cp_error terr;
	const char *pid, *dept;
	int64_t expires = 0;
	int r;

	cp_error_clear(&terr);
	r = token_verify(in->key, in->keylen, in->token, in->now, out->thread_id,
			 &expires, &terr);
	if (r == -EBADMSG)
		return auth_fail(out, "reply token forged or malformed"), 0;
	if (r == -ETIME)
		return auth_fail(out, "reply token expired"), 0;
	if (r < 0)
		return cp_error_set(err, r, "%s", terr.text);
	cp_hex(out->thread_id, sizeof(out->thread_id), out->thread_hex);
	r = thread_get(in->store, out->thread_id, &out->thread, &terr);
	if (r == -ENOENT)
		return auth_fail(out, "reply token names no known thread"), 0;
	if (r < 0)
		return cp_error_set(err, r, "%s", terr.text);
	cp_strlcpy(out->event, out->thread.event ? out->thread.event : "",
		   sizeof(out->event));
	if (out->thread.expires < in->now)
		return auth_fail(out, "thread expired"), 0;
	pid = out->thread.patient;
	if (pid == NULL)
		return auth_fail(out, "thread names no patient"), 0;
	cp_strlcpy(out->patient_id, pid, sizeof(out->patient_id));
	dept = out->thread.department;
	cp_strlcpy(out->department, dept ? dept : in->default_department ?
		   in->default_department : "general", sizeof(out->department));
	r = store_get_json(in->store, DB_PATIENTS, pid, &out->patient, &terr);
	if (r == -ENOENT)
		return auth_fail(out, "thread's patient no longer exists"), 0;
	if (r < 0)
		return cp_error_set(err, r, "%s", terr.text);
	return 0;
}

/* authenticate - the sender and the method; <0 for infrastructure. */
static int
authenticate(const struct replyauth_in *in, struct replyauth_out *out,
	     struct cp_error *err)
{
	struct authres_result ar;
	int r;

	if ((in->keylen == 0 || in->store == NULL) && !in->dry_run)
		return cp_error_set(err, -EINVAL, "inbound: no %s to authenticate with",
				    in->keylen == 0 ? "token key" : "store");
	if (in->keylen == 0)
		return auth_unavailable(out, "no token key"), 0;
	if (in->store == NULL)
		return auth_unavailable(out, "no store"), 0;
	r = thread_of(in, out, err);
	if (r < 0 || out->status != NULL)
		return r;

	sender_of(in, out);
	if (out->sig_ours)
		return auth_fail(out, REPLYAUTH_OWN_KEY_REASON), 0;
	if (out->sender_ref[0] == '\0')
		return auth_fail(out, "sender is not the thread's patient or a proxy"), 0;
	cp_strlcpy(out->sender_role, strcmp(out->sender_ref, "patient") == 0 ?
		   "patient" : "proxy", sizeof(out->sender_role));
	if (strcmp(out->sender_role, "proxy") == 0 && out->thread.confidential == 1)
		return auth_fail(out, "a proxy may not reply on a confidential thread"), 0;
	header_auth(in, out, &ar);
	if (out->signer_matched)
		cp_strlcpy(out->auth, "pgp", sizeof(out->auth));
	else if (out->headers_authenticated)
		cp_strlcpy(out->auth, ar.dmarc_pass ? "dmarc" : "dkim", sizeof(out->auth));
	else if (in->require_dmarc && in->from_count > 1)
		return auth_fail(out, "more than one From address, and no patient "
				 "signature"), 0;
	else if (in->require_dmarc)
		return auth_fail(out, "no DMARC or aligned DKIM pass from the trusted "
				 "server, and no %s", out->sig_stale ?
				 "patient signature made since the thread began" :
				 "patient signature"), 0;
	else
		cp_strlcpy(out->auth, "from", sizeof(out->auth));
	out->status = "pass";
	return 0;
}

/*
 * bind_to_thread - what is filed must have been written for this
 * conversation, as far as anything covered says so. Protected headers
 * that name a reply address must name this thread's: a signed or
 * encrypted reply written for another conversation (a guardian's about
 * one child, whose key is on file for two) is not filed into this one.
 * Decrypted content is filed only when signed by the thread's patient or
 * a proxy since the thread began (signer_match), or when its protected
 * headers name this thread's reply token: anything else that decrypts
 * (another patient's reply re-sent by someone with a thread of their
 * own) fails, so the clinic key never decrypts on anyone's behalf.
 */
static void
bind_to_thread(const struct replyauth_in *in, struct replyauth_out *out)
{
	const struct inmsg_strlist *prot = in->prot_recipients;
	int names_this = inmsg_names_reply_token(prot, in->addrs, in->token);

	if (!names_this && inmsg_names_reply_token(prot, in->addrs, NULL)) {
		auth_fail(out, "protected headers name another conversation");
		return;
	}
	if (!in->decrypted)
		return;
	out->bound = out->signer_matched || names_this;
	if (out->bound)
		return;
	auth_fail(out, "decrypted content is not bound to this thread: %s",
		  out->sig_stale ? "the patient's signature predates the thread" :
		  out->signer ? "signed by a key not on file for this thread" :
		  "not signed, and no protected headers naming the thread");
}

int
replyauth_check(const struct replyauth_in *in, struct replyauth_out *out,
		struct cp_error *err)
{
	int r;

	memset(out, 0, sizeof(*out));
	if (in->signer != NULL && (out->signer = strdup(in->signer)) == NULL)
		return cp_error_set(err, -ENOMEM, "replyauth: out of memory");
	r = authenticate(in, out, err);
	if (r < 0)
		return r;
	if (strcmp(out->status, "pass") == 0)
		bind_to_thread(in, out);
	return 0;
}

void
replyauth_clear(struct replyauth_out *out)
{
	if (out == NULL)
		return;
	thread_clear(&out->thread);
	json_decref(out->patient);
	free(out->signer);
	memset(out, 0, sizeof(*out));
}
