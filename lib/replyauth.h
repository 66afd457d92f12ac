/*
 * NAME
 *	replyauth - whether a reply is from its thread's patient or a proxy,
 *	and was written for that conversation
 * SYNOPSIS
 *	#include "replyauth.h"
 *
 *	struct replyauth_in in = {
 *		.key = key, .keylen = keylen, .store = store, .pgp = pgp,
 *		.clinic_fpr = clinic, .store_fpr = store_key, .addrs = &addrs,
 *		.token = token, .from_addr = from, .from_count = n_from,
 *		.signer = sig.fpr[0] ? sig.fpr : NULL, .sig_created = sig.created,
 *		.now = now, ...
 *	};
 *	struct replyauth_out out;
 *
 *	r = replyauth_check(&in, &out, &err);
 *	if (r < 0)
 *		... infrastructure: leave the message, retry later ...
 *	else if (strcmp(out.status, "pass") != 0)
 *		... quarantine with out.reason ...
 *	replyauth_clear(&out);
 * DESCRIPTION
 *	The authentication step of inbound (inbound.h, step 5), on explicit
 *	inputs: the message's facts as carepostd believes them (the From
 *	address and count and the Authentication-Results values read from
 *	the raw header, the reply token found in its recipient fields, the
 *	good signature over the whole and whether the content was
 *	decrypted), the store and token key it checks them against, and the
 *	config values it needs. It reads the store (the thread, the patient
 *	record) and may run gpg once (a signing subkey to its primary);
 *	it writes nothing.
 *
 *	In order, the first that fails decides (out->reason, PHI-free):
 *
 *	- no token key or no store: "unavailable" in a dry run
 *	  ("authentication unavailable: no token key", "... no store"), an
 *	  error otherwise;
 *	- the token's HMAC ("reply token forged or malformed", "reply token
 *	  expired"), its thread ("reply token names no known thread",
 *	  "thread expired", "thread names no patient") and the thread's
 *	  patient ("thread's patient no longer exists");
 *	- who sent it: a good signature by the key on file (pgp_fpr) of the
 *	  thread's patient or a proxy, made after the thread began less
 *	  REPLYAUTH_SIG_CLOCK_SKEW (signer_matched), else the From address
 *	  on file (from_ref). A signature of theirs from before, or dated
 *	  more than REPLYAUTH_SIG_CLOCK_SKEW ahead of now, proves nothing
 *	  here (sig_stale); a signing subkey is resolved to its
 *	  primary key only when the fingerprint as given matches nobody, and
 *	  one of carepost's own keys fails (REPLYAUTH_OWN_KEY_REASON,
 *	  sig_ours). Nobody on file: "sender is not the thread's patient or
 *	  a proxy"; a proxy on a confidential thread: "a proxy may not reply
 *	  on a confidential thread";
 *	- how: "pgp" (signer_matched); "dmarc" or "dkim" when the topmost
 *	  Authentication-Results of trusted_authserv_id (authres.h) passes
 *	  DMARC, or aligned DKIM without a DMARC fail, for the From's domain
 *	  of a message with one From address on file
 *	  (headers_authenticated); else, with require_dmarc, "more than one
 *	  From address, and no patient signature" or "no DMARC or aligned
 *	  DKIM pass from the trusted server, and no patient signature [made
 *	  since the thread began]"; without it, "from";
 *	- the binding (after a pass): protected headers that name a reply
 *	  address must name this thread's ("protected headers name another
 *	  conversation"); decrypted content must be signed by the thread's
 *	  patient or a proxy since the thread began, or carry protected
 *	  headers naming this thread's token (bound), else "decrypted
 *	  content is not bound to this thread: " and why. So nobody can have
 *	  the clinic key decrypt another patient's reply into their own
 *	  inbox.
 *
 *	What was found before a failure stays in out: the thread's id once
 *	the token verified, its event once the thread was read, the patient
 *	and department once the thread named them, the sender's role once
 *	known, and the method (auth) when only the binding failed.
 *
 *	replyauth_own_key says whether signer is one of carepost's own
 *	keys as given (no subkey resolved): the caller refuses such mail
 *	before it authenticates anything. replyauth_resolve_signer turns
 *	a signing subkey's fingerprint into its primary key's, once.
 * ERRORS
 *	replyauth_check returns 0 when it decided (out->status says what),
 *	or < 0 with err set for an infrastructure failure: -EINVAL (no
 *	token key or no store outside a dry run: "inbound: no token key to
 *	authenticate with", "inbound: no store to authenticate with"),
 *	the store's codes, libgcrypt's, -ENOMEM. out then holds nothing to
 *	go by (but replyauth_clear it).
 * OWNERSHIP
 *	in and everything it points to are borrowed for the call. out is
 *	overwritten without being freed; replyauth_clear releases what it
 *	holds (the thread record, the patient record, signer) and zeroes
 *	it. out->signer is a malloc'd copy of in->signer (its primary's
 *	fingerprint once signer_resolved) that the caller may take (set it
 *	to NULL). out->status and the reasons are static strings.
 *	replyauth_resolve_signer replaces the malloc'd *signer.
 * THREAD SAFETY
 *	As the store and the pgp handle: one thread at a time per pgp.
 */
#ifndef CAREPOST_REPLYAUTH_H
#define CAREPOST_REPLYAUTH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "inmsg.h"
#include "pgp.h"
#include "record.h"
#include "store.h"
#include "token.h"
#include "util.h"

/*
 * How far a signer's clock may be behind: a signature made up to this
 * long before the thread began still counts.
 */
#define REPLYAUTH_SIG_CLOCK_SKEW	900

#define REPLYAUTH_OWN_KEY_REASON \
	"signed by carepost's own key: its own mail is never filed"

#define REPLYAUTH_REASON_MAX	256
#define REPLYAUTH_REF_MAX	32

struct replyauth_in {
	/* what it checks against */
	const void *key;		/* the token key */
	size_t keylen;			/* 0: none */
	struct store *store;		/* NULL: none */
	struct pgp *pgp;		/* resolves a signing subkey; NULL: never */
	const char *clinic_fpr;		/* carepost's own keys; NULL: none */
	const char *store_fpr;
	const char *trusted_authserv_id;	/* NULL or "": no A-R counts */
	int require_dmarc;
	const char *default_department;	/* NULL: "general" */
	const struct inmsg_addrs *addrs;	/* carepost's own addresses */
	int dry_run;			/* no key or store: "unavailable" */
	int64_t now;

	/* the message, as carepostd believes it */
	const char *token;		/* the reply token in its recipients */
	const char *from_addr;		/* lower-cased; NULL: none believed */
	unsigned from_count;		/* addresses in all From fields */
	const char *const *auth_results;	/* A-R values, topmost first */
	size_t n_auth_results;
	const char *signer;		/* the good signature's fingerprint, or NULL */
	int64_t sig_created;		/* when it was made */
	int decrypted;			/* the content is what gpg decrypted */
	const struct inmsg_strlist *prot_recipients;	/* protected headers' */
};

struct replyauth_out {
	const char *status;		/* "pass", "fail" or "unavailable" */
	char reason[REPLYAUTH_REASON_MAX];	/* unless "pass": PHI-free */
	char auth[16];			/* "pgp", "dmarc", "dkim", "from" or "" */

	/* whose it is, as far as found (see DESCRIPTION) */
	uint8_t thread_id[TOKEN_THREAD_BYTES];
	char thread_hex[2 * TOKEN_THREAD_BYTES + 1];
	char event[STORE_ID_MAX + 1];
	char patient_id[STORE_ID_MAX + 1];
	char department[STORE_ID_MAX + 1];
	struct thread_record thread;	/* the thread record */
	json_t *patient;		/* the patient record */
	char sender_role[8];		/* "patient", "proxy" or "" */
	char sender_ref[REPLYAUTH_REF_MAX];	/* "patient", "proxy:N" or "" */
	char from_ref[REPLYAUTH_REF_MAX];	/* whose address the From is, or "" */

	/* the signature and the binding */
	char *signer;			/* see OWNERSHIP; NULL: none */
	int signer_resolved;		/* signer is a primary key's fingerprint */
	int signer_matched;		/* the patient's or a proxy's, in time */
	int sig_stale;			/* theirs, but from before the thread */
	int sig_ours;			/* made by a (sub)key of carepost's own */
	int headers_authenticated;	/* DMARC or aligned DKIM vouch for the header */
	int bound;			/* decrypted content bound to this thread */
};

int replyauth_check(const struct replyauth_in *in, struct replyauth_out *out,
		    struct cp_error *err);
void replyauth_clear(struct replyauth_out *out);

int replyauth_own_key(const char *signer, const char *clinic_fpr,
		      const char *store_fpr);
/*
 * replyauth_resolve_signer - *signer (malloc'd, may be NULL) replaced by
 * its primary key's fingerprint when pgp names one; *resolved set, and
 * nothing done when it was set already or pgp is NULL.
 */
void replyauth_resolve_signer(struct pgp *pgp, char **signer, int *resolved);

#endif
