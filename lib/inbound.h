/*
 * NAME
 *	inbound - one fetched message in: authenticated, filed once, or
 *	quarantined with a reason
 * SYNOPSIS
 *	#include "inbound.h"
 *
 *	struct inbound *ib;
 *	struct inbound_result res;
 *
 *	inbound_new(cfg, store, token_key, keylen, &ib, &err);
 *	r = inbound_ingest(ib, raw, len, cp_now(), 0, &res, &err);
 *	if (r < 0)
 *		... infrastructure failure: leave the message, retry later ...
 *	else
 *		... move it to res.folder (processed or quarantine) ...
 *	inbound_result_clear(&res);
 *	inbound_free(ib);
 * DESCRIPTION
 *	The inbound path, for one raw RFC 5322 message:
 *
 *	1. inmsg_parse (limits; a limit or unparseable bytes quarantine),
 *	   run in the confined parse helper (parsehelper.h), as is the parse
 *	   of decrypted content: a helper lost on the message twice
 *	   quarantines it ("parser lost twice on this message: ...",
 *	   res->parser_lost); no helper at all is an infrastructure failure
 *	   (-EHOSTDOWN).
 *	2. Dedupe: the seen record of its Message-ID (or of the SHA-256 of
 *	   the raw bytes when it has none). A message seen before is not
 *	   processed again: DUPLICATE, with the folder and reason of the
 *	   first time, so the caller just moves it again.
 *	3. PGP/MIME, only where it covers the whole message (inmsg.h): the
 *	   root multipart/encrypted is decrypted with the keys in gpg.home
 *	   (the clinic key); a signature (inside the encryption, or the root
 *	   multipart/signed of the message or of the decrypted content) is
 *	   verified, and its time kept. Signed or encrypted parts below the
 *	   root are attachments, never decrypted or believed. Undecryptable
 *	   mail quarantines, unless the clinic's own secret key is out of
 *	   reach (gpg-agent killed or unstartable: gpg says "No secret key"
 *	   either way), which is an infrastructure failure
 *	   (pgp_secret_available). A signature by carepost's own clinic or
 *	   store key quarantines: its own mail is never filed. gpg runs on
 *	   replies only in a helper, under hard limits (pgp_confine): more
 *	   than 50 MiB of plaintext or gpg.time_limit for one decryption or
 *	   verification kills its gpg processes; the reply then quarantines
 *	   ("gpg output over the 50 MiB limit: stopped", "gpg ran over its
 *	   10 s time limit: stopped"; a timeout only while the clinic's key
 *	   is usable) and is never decrypted twice. No helper: an
 *	   infrastructure failure (-EHOSTDOWN).
 *	4. inmsg_classify: DSN, auto-reply, unsubscribe, reply, unknown.
 *	5. Authentication of replies and unsubscribes (replyauth.h): the
 *	   reply token's HMAC (token.h), a thread that exists and has not
 *	   expired, and a sender that is the thread's patient or one of
 *	   their proxies: a
 *	   good PGP signature by the patient's or a proxy's key (pgp_fpr)
 *	   made after the thread began (less 15 minutes of clock skew),
 *	   which is the strongest proof, else the From address. An older
 *	   signature of theirs (a message signed elsewhere, replayed with a
 *	   stolen token) proves nothing. A proxy may not reply on a
 *	   confidential thread. With security.require_dmarc, a From match
 *	   counts only with dmarc=pass (or an aligned dkim=pass) in the
 *	   topmost Authentication-Results header from
 *	   security.trusted_authserv_id (authres.h), and only for a message
 *	   with one From address; a good patient/proxy signature always
 *	   counts. Decrypted content is filed only where that signature
 *	   made it or its protected headers name this thread's reply token
 *	   (inmsg_names_reply_token): anything else that decrypts quarantines,
 *	   so that no one can have the clinic key decrypt another patient's
 *	   mail into their own inbox. Where the signature alone authenticates,
 *	   the filed subject is the protected one or none (the outer Subject
 *	   is not signed); the record says "signed" only for a matched
 *	   signer.
 *	6. A reply is filed in one write transaction (filing.h): the inbox
 *	   record (cleartext metadata without PHI, the content encrypted at rest:
 *	   see AT REST), the clinic queue entry of the thread's department
 *	   (event.department, else routing.default_department), the seen
 *	   record, and as delivery records that outbound sends: a PHI-free
 *	   staff alert to the department's staff (routing staff.NAME, else
 *	   the default department's; "urgent" when the trimmed text holds
 *	   one of routing.urgent_words, case-insensitively), coalesced per
 *	   department and class (urgent or not) within routing.alert_window:
 *	   the first reply alerts at once and opens the window, the replies
 *	   within it are folded into one held alert due at its end whose
 *	   "count" says how many (res->alert_held; state in acks "alert/
 *	   DEPT/CLASS", written in this transaction; 0: an alert each), an
 *	   acknowledgement to the sender at most once per conversation per
 *	   UTC day (reply_ack, Auto-Submitted: auto-replied, In-Reply-To the
 *	   sender's message), and for a form reply missing required answers
 *	   a form_incomplete request, at most one per conversation per UTC
 *	   day (it counts as that day's acknowledgement). A reply on a form_request thread is a form:
 *	   form_parse reads the trimmed text against the thread's field spec.
 *	   A reply that asks for no automatic answer (inmsg_no_autoresponse:
 *	   List-Id or List-Post, X-Auto-Response-Suppress naming All,
 *	   AutoReply or OOF, Return-Path <>; RFC 3834) is filed and alerted
 *	   like any other, but gets neither an acknowledgement nor a
 *	   form_incomplete request (res->no_autoresponse), and does not use
 *	   up the day's acknowledgement.
 *	7. A delivery report maps back through the VERP address
 *	   (bounce+TOKEN.rN.TAG@bounce_domain: the token's HMAC names the
 *	   thread, expired tokens accepted; TAG, token_rcpt_tag with
 *	   TOKEN_LABEL_VERP, the recipient N) or, failing that, the report's
 *	   original Message-ID <THREAD.rN.TAG@...> (TAG with
 *	   TOKEN_LABEL_MESSAGE_ID, outbound_message_id) when the report's
 *	   final recipient is also that recipient's address. The address's
 *	   bounces record becomes "invalid" (5.x.x) or "soft" with
 *	   soft_count + 1 (4.x.x, or no status), and the event's recipient
 *	   entry "bounced" (action failed) or "delayed", with "dsn_status".
 *	   A mapped report whose status and diagnostic say the message was
 *	   refused for the sender's authentication (relay_auth_refusal:
 *	   5.7.26, 5.7.515, ...) also sets res->auth_refusal and logs at
 *	   error level: the admin's DKIM, SPF or DMARC is broken.
 *	   A report whose VERP or Message-ID has carepost's form without a
 *	   tag carepost made (another recipient's, a forged one, none: the
 *	   untagged ids of mail sent before tags included) is forged:
 *	   quarantined, "delivery report names no message carepost sent:
 *	   ignored", with res->forged set (carepostd counts it in
 *	   carepost_bounces_forged_total) and nothing recorded. Other
 *	   unmapped reports quarantine too, with their own reason.
 *	8. An unsubscribe (List-Unsubscribe mailto) adds the thread's event
 *	   category to the optout list of whoever sent it: the patient's
 *	   own, or that proxy's (policy.h: a proxy that opted out gets no
 *	   more mail of the category; the patient and other proxies still
 *	   do). Security notices and internal mail cannot be unsubscribed
 *	   from: the request is recorded as processed and changes nothing.
 *	9. Auto-replies are discarded (processed folder): never filed,
 *	   never acknowledged.
 *
 *	Quarantine reasons, log lines and errors hold ids, codes and fixed
 *	words only: never an address, a subject or a body.
 * AT REST
 *	An inbox record's "blob" holds its content (the JSON described in
 *	store.h, "inbox"), in one of two formats, told by "format":
 *
 *	2 (written now): envelope encryption (atrest.h). The content is
 *	  sealed with AES-256-GCM under a data key (DEK) named by the
 *	  record's "dek": blob = base64(nonce[12] | ciphertext | tag[16]),
 *	  with the additional authenticated data "carepost inbox 2\n" +
 *	  PATIENT + "/" + MSGID (the record's key), so a blob opens only in
 *	  the record it was written for. The DEK (32 random bytes, one per
 *	  daemon run and per day of a long run) is stored in meta as
 *	  "dek:ID", an OpenPGP message to gpg.store_key that gpg-agent
 *	  unwraps: one gpg run per DEK, not per message, on either side.
 *	1 (no "format": written before): blob is an ASCII-armored OpenPGP
 *	  message to gpg.store_key. Still read; never written.
 *
 *	Neither the DEK nor the content is ever in the store in clear.
 * ERRORS
 *	inbound_ingest returns 0 when the message was decided (whatever
 *	the disposition) and the decision is committed; a negative code
 *	for an infrastructure failure (store, gpg-agent, out of memory, a
 *	missing store key), after which nothing was written and the
 *	message must stay where it is to be retried. Message-caused
 *	problems never return an error: they quarantine.
 *
 *	inbound_new returns -EINVAL (require_dmarc without
 *	trusted_authserv_id, a token key outside 16..64 bytes) or -ENOMEM.
 *	gpg (or encryption at rest) that cannot be set up is no error
 *	there: the struct is made without it, and inbound_ingest then fails
 *	with -ENOKEY for an encrypted message and for every message it would
 *	file (no encryption at rest), or, in a dry run, says why.
 *	inbound_batch_commit returns the store's error.
 * DRY RUN
 *	With dry_run the same decisions are made and nothing is written
 *	(no store write, no encryption at rest); res->summary gets a JSON
 *	object (inmsg_to_json plus the decision: disposition, folder,
 *	disposition_reason, authentication, decryption, form, urgent). A
 *	missing store, token key or gpg setup makes authentication
 *	"unavailable" with the reason instead of an error. Of decrypted
 *	content that would not be filed, the attachments, body size and
 *	signer are withheld ("decrypted_content_withheld": true).
 * OWNERSHIP
 *	inbound_new borrows cfg and store for the life of the struct (store
 *	may be NULL: dry runs only) and copies the key (may be NULL). It
 *	makes its own struct pgp, confined (its gpg helper, started at the
 *	first PGP message, is killed with its process group by
 *	inbound_free), and its own struct atrest. inbound_ingest overwrites
 *	res without freeing it: inbound_result_clear (which frees
 *	res->summary) a used one first. inbound_result_to_json hands a new reference the caller
 *	json_decref()s. Reading back what was filed is inbox.h's.
 *	inbound_disposition_name and inbound_folder_name return static
 *	strings.
 * THREAD SAFETY
 *	One thread uses a struct inbound at a time.
 */
#ifndef CAREPOST_INBOUND_H
#define CAREPOST_INBOUND_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "inmsg.h"
#include "metrics.h"
#include "parsehelper.h"
#include "pgp.h"
#include "store.h"
#include "util.h"

enum inbound_disposition {
	INBOUND_FILED = 1,		/* in the patient's inbox */
	INBOUND_DUPLICATE,		/* seen before: move it again */
	INBOUND_QUARANTINED,
	INBOUND_BOUNCE_RECORDED,
	INBOUND_UNSUBSCRIBED,		/* also when refused (security) */
	INBOUND_AUTOREPLY_DISCARDED,
	INBOUND_COMPLAINT_RECORDED,	/* a feedback report mapped */
};

enum inbound_folder {
	INBOUND_FOLDER_PROCESSED = 1,
	INBOUND_FOLDER_QUARANTINE,
};

#define INBOUND_ID_MAX	32

struct atrest;

struct inbound_result {
	enum inbound_disposition disposition;
	enum inbound_disposition first;	/* DUPLICATE: the first outcome */
	enum inbound_folder folder;
	enum inmsg_class class;
	int form;			/* a reply on a form_request thread */
	int urgent;
	int acked;			/* reply_ack queued */
	int alerted;			/* staff hear of it: staff_alert queued */
	int alert_held;			/* ... in a held alert (alert_window) */
	int form_incomplete;		/* form_incomplete queued */
	int no_autoresponse;		/* filed, but asked for no automatic
					   answer: no ack, no form_incomplete */
	int forged;			/* a delivery or feedback report naming
					   no message carepost sent
					   (quarantined) */
	enum metrics_feedback feedback;	/* a feedback report's outcome */
	int auth_refusal;		/* a mapped delivery report refusing the
					   message for the sender's DKIM, SPF
					   or DMARC (relay_auth_refusal) */
	int parser_lost;		/* the parse helper was lost twice on it
					   (quarantined) */
	char reason[256];		/* PHI-free */
	char inbox_id[INBOUND_ID_MAX];
	char patient[STORE_ID_MAX + 1];
	char event[STORE_ID_MAX + 1];
	char department[STORE_ID_MAX + 1];
	char thread[2 * 10 + 1];	/* hex */
	char sender_role[8];		/* "patient", "proxy" or "" */
	char auth[16];			/* "pgp", "dmarc", "dkim", "from", "" */
	char key_candidate[41];		/* the fingerprint of the key its
					   Autocrypt header offered, recorded
					   as a candidate; "": none */
	char seen_key[65];
	json_t *summary;		/* dry runs: see DRY RUN */
};

struct inbound;

int inbound_new(const struct cp_config *cfg, struct store *store,
		const void *token_key, size_t token_keylen,
		struct inbound **out, struct cp_error *err);
void inbound_free(struct inbound *ib);
/*
 * inbound_progress - fn(userdata) before each try of the parse helper
 * (parsehelper_progress): carepostd's watchdog hears from it while one
 * message is parsed, retried and its decrypted content parsed.
 */
void inbound_progress(struct inbound *ib, parsehelper_progress_fn fn,
		      void *userdata);

/*
 * inbound_parse_in_process - parse in this process, not in the parse
 * helper: for fuzz targets only (carepostd and carepostctl never call
 * it; without it, a program that did not parsehelper_enable gets
 * -EHOSTDOWN for every message).
 */
void inbound_parse_in_process(struct inbound *ib);
/*
 * inbound_set_actor - who files what this inbound files, for its audit
 * records (audit.h: "ctl:USER" for carepostctl ingest; borrowed, alive
 * as long as ib; NULL, the default: the daemon).
 */
void inbound_set_actor(struct inbound *ib, const char *actor);

/*
 * inbound_ahead - start work on raw, a message to be ingested soon, now,
 * so that it runs while the caller files the message before it: its
 * parse in a child of the parse helper (parsehelper_parse_ahead) and,
 * when it is an encrypted reply, its decryption in the gpg helper
 * (pgp_confine) once that parse is in. inbound_ingest of the same bytes
 * then takes the results. Call it between inbound_batch_begin and
 * inbound_batch_commit, which forget what was started for messages the
 * batch did not come to. Returns 1 when the parse was sent, else 0 (no
 * harm either way: the result is the same).
 */
int inbound_ahead(struct inbound *ib, const char *raw, size_t len);
/*
 * inbound_ingest - decide raw[0..len) and, unless dry_run, commit the
 * decision (see DESCRIPTION and ERRORS). res is always reset first.
 */
int inbound_ingest(struct inbound *ib, const char *raw, size_t len,
		   int64_t now, int dry_run, struct inbound_result *res,
		   struct cp_error *err);
/*
 * inbound_ingest_imap - inbound_ingest (never a dry run) of a message
 * fetched over IMAP at origin: its seen record keeps where it was
 * fetched (mailbox, UIDVALIDITY, UID), for carepostctl quarantine.
 * origin->mailbox is borrowed until the decision is committed
 * (inbound_batch_commit when batching).
 */
struct inbound_origin {
	const char *mailbox;
	uint32_t uidvalidity;
	uint32_t uid;
};
int inbound_ingest_imap(struct inbound *ib, const char *raw, size_t len,
			int64_t now, const struct inbound_origin *origin,
			struct inbound_result *res, struct cp_error *err);

void inbound_result_clear(struct inbound_result *res);

/*
 * Group commit: between inbound_batch_begin and inbound_batch_commit,
 * inbound_ingest decides (and encrypts) each message but writes nothing;
 * inbound_batch_commit then writes every decision in one store
 * transaction (one fsync for the batch instead of one per message), and
 * only then are the results final: a message seen twice in the batch (or
 * filed by another process meanwhile) becomes a DUPLICATE there, and
 * res->acked and the like are set. Every res handed to inbound_ingest
 * must stay in place until inbound_batch_commit returns. When it fails
 * (< 0) nothing of the batch was written: leave all of it to retry. A
 * dry run is never batched.
 */
void inbound_batch_begin(struct inbound *ib);
int inbound_batch_commit(struct inbound *ib, struct cp_error *err);

/* inbound_result_to_json - a new object (ids, disposition, folder...). */
json_t *inbound_result_to_json(const struct inbound_result *res);

const char *inbound_disposition_name(enum inbound_disposition d);
const char *inbound_folder_name(enum inbound_folder f);

#endif
