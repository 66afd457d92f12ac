/*
 * NAME
 *	inbound - one fetched message in: authenticated, filed once, or
 *	quarantined with a reason
 * DESCRIPTION
 *	See inbound.h for the path. A struct work carries one message
 *	through it: decide() makes every decision with reads only (so a dry
 *	run is decide() without commit()), commit() writes the outcome in
 *	one store transaction, which redoes nothing harmful when LMDB makes
 *	store_write run it twice.
 */
#include "inbound.h"
#include "atrest.h"
#include "authres.h"
#include "autocrypt.h"
#include "bouncemap.h"
#include "buf.h"
#include "event.h"
#include "filing.h"
#include "form.h"
#include "log.h"
#include "parsehelper.h"
#include "policy.h"
#include "rawhdr.h"
#include "record.h"
#include "queue.h"
#include "relay.h"
#include "replyauth.h"

#include <ctype.h>
#include <gcrypt.h>
#include <time.h>

#define DECRYPT_MAX	(50u * 1024 * 1024)

struct inbound {
	const char *actor;		/* audit.h: NULL is the daemon */
	const struct cp_config *cfg;
	struct store *store;
	unsigned char key[64];
	size_t keylen;
	struct pgp *pgp;
	struct atrest *atrest;		/* inbox contents at rest */
	char pgp_reason[300];
	const char *store_fpr;
	struct inmsg_limits limits;
	struct inmsg_addrs addrs;
	struct parsehelper *parser;	/* started at the first message */
	parsehelper_progress_fn progress;	/* before each parse try */
	void *progress_userdata;
	int parse_in_process;		/* fuzz targets only */

	/* group commit (inbound_batch_begin): decided, waiting for the txn */
	int batching;
	struct work **pending;
	size_t n_pending, cap_pending;
};

struct work {
	struct inbound *ib;
	const char *raw;
	size_t len;
	struct rawhdr hdr;		/* the raw header block, read here */
	int64_t now;
	int dry_run;
	struct inbound_result *res;
	struct inmsg *m;
	struct inmsg_class_info ci;

	/* PGP */
	const char *decryption;		/* "none", "decrypted", "failed", "unavailable" */
	char decryption_reason[200];
	struct pgp_sig sig;		/* the good signature over the whole */
	char *signer;			/* its fingerprint, or NULL */

	int signer_resolved;		/* signer is a primary key's fingerprint */
	int decrypted;			/* the content is what gpg decrypted */

	/* authentication */
	const char *auth_status;	/* "pass", "fail", "unavailable", "not applicable" */
	struct replyauth_out auth;	/* the thread, the sender, the binding */

	/* reply */
	char *text;			/* trimmed reply */
	json_t *form_values;
	json_t *form_missing;
	struct buf blob;
	struct autocrypt ac;		/* the key its Autocrypt header offers,
					   a candidate when ac.key is set (the
					   struct is copied when it waits for
					   its batch: nothing may point into it) */

	/* bounce */
	struct bouncemap bounce;	/* what a report mapped to */

	/* unsubscribe, and a complaint's opt-out */
	const char *category;
	int unsub_refused;

	/* complaint: its clinic queue line's id */
	char line_id[INBOUND_ID_MAX];
	char feedback_type[33];		/* as reported, when a plain token */

	char dek[ATREST_DEK_ID_SIZE];	/* the data key blob is sealed with */
	struct inbound_result decided;	/* batch: the outcome before the txn */

	/* where it came from, for its seen record */
	struct inbound_origin origin;	/* uid 0: not fetched over IMAP */
	char message_id[SEEN_MESSAGE_ID_MAX + 1];	/* "": none kept */
};

/* ---- names and results ---- */

const char *
inbound_disposition_name(enum inbound_disposition d)
{
	switch (d) {
	case INBOUND_FILED: return "filed";
	case INBOUND_DUPLICATE: return "duplicate";
	case INBOUND_QUARANTINED: return "quarantined";
	case INBOUND_BOUNCE_RECORDED: return "bounce_recorded";
	case INBOUND_UNSUBSCRIBED: return "unsubscribed";
	case INBOUND_AUTOREPLY_DISCARDED: return "autoreply_discarded";
	case INBOUND_COMPLAINT_RECORDED: return "complaint_recorded";
	}
	return "unknown";
}

static enum inbound_disposition
disposition_from_name(const char *s)
{
	enum inbound_disposition d;

	for (d = INBOUND_FILED; d <= INBOUND_COMPLAINT_RECORDED; d++)
		if (s && strcmp(s, inbound_disposition_name(d)) == 0)
			return d;
	return INBOUND_QUARANTINED;
}

const char *
inbound_folder_name(enum inbound_folder f)
{
	return f == INBOUND_FOLDER_QUARANTINE ? "quarantine" : "processed";
}

void
inbound_result_clear(struct inbound_result *res)
{
	if (res == NULL)
		return;
	json_decref(res->summary);
	res->summary = NULL;
}

static void
jset_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, v && *v ? json_string(v) : json_null());
}

/* jset_who - whose message it was found to be: in a result and a summary. */
static void
jset_who(json_t *o, const struct inbound_result *res)
{
	jset_str(o, "patient", res->patient);
	jset_str(o, "event", res->event);
	jset_str(o, "thread", res->thread);
	jset_str(o, "department", res->department);
	jset_str(o, "sender_role", res->sender_role);
}

json_t *
inbound_result_to_json(const struct inbound_result *res)
{
	json_t *o = json_object();

	json_object_set_new(o, "disposition",
			    json_string(inbound_disposition_name(res->disposition)));
	if (res->disposition == INBOUND_DUPLICATE)
		json_object_set_new(o, "first_disposition",
				    json_string(inbound_disposition_name(res->first)));
	json_object_set_new(o, "folder", json_string(inbound_folder_name(res->folder)));
	json_object_set_new(o, "class", json_string(res->form ? "form" :
			    inmsg_class_name(res->class)));
	jset_str(o, "reason", res->reason);
	jset_str(o, "inbox_id", res->inbox_id);
	jset_who(o, res);
	jset_str(o, "auth", res->auth);
	json_object_set_new(o, "urgent", json_boolean(res->urgent));
	json_object_set_new(o, "acknowledged", json_boolean(res->acked));
	json_object_set_new(o, "staff_alerted", json_boolean(res->alerted));
	json_object_set_new(o, "staff_alert_held", json_boolean(res->alert_held));
	json_object_set_new(o, "form_incomplete", json_boolean(res->form_incomplete));
	if (res->forged)
		json_object_set_new(o, "forged_bounce", json_true());
	if (res->feedback != METRICS_FB_NONE)
		json_object_set_new(o, "feedback",
				    json_string(metrics_feedback_name(res->feedback)));
	if (res->no_autoresponse)
		json_object_set_new(o, "no_autoresponse", json_true());
	if (res->key_candidate[0])
		json_object_set_new(o, "key_candidate", json_string(res->key_candidate));
	return o;
}

/* ---- setup ---- */

int
inbound_new(const struct cp_config *cfg, struct store *store,
	    const void *token_key, size_t token_keylen, struct inbound **out,
	    struct cp_error *err)
{
	struct inbound *ib;
	struct cp_error perr;

	*out = NULL;
	if (cfg->require_dmarc && (cfg->trusted_authserv_id == NULL ||
				   *cfg->trusted_authserv_id == '\0'))
		return cp_error_set(err, -EINVAL, "[security] require_dmarc needs "
				    "trusted_authserv_id");
	if (cfg->feedback_reporters && *cfg->feedback_reporters &&
	    (cfg->trusted_authserv_id == NULL || *cfg->trusted_authserv_id == '\0'))
		return cp_error_set(err, -EINVAL, "[security] feedback_reporters needs "
				    "trusted_authserv_id");
	if (token_key && (token_keylen < 16 || token_keylen > sizeof(ib->key)))
		return cp_error_set(err, -EINVAL, "token key: expected 16 to 64 bytes");
	ib = calloc(1, sizeof(*ib));
	if (ib == NULL)
		return cp_error_set(err, -ENOMEM, "inbound: out of memory");
	ib->cfg = cfg;
	ib->store = store;
	if (token_key) {
		memcpy(ib->key, token_key, token_keylen);
		ib->keylen = token_keylen;
	}
	ib->store_fpr = cfg->gpg_store_key ? cfg->gpg_store_key : cfg->gpg_clinic_key;
	inmsg_limits_default(&ib->limits);
	ib->addrs.reply_domain = cfg->reply_domain;
	ib->addrs.bounce_domain = cfg->bounce_domain;
	ib->addrs.unsubscribe = cfg->unsubscribe_address;
	cp_error_clear(&perr);
	if (pgp_global_init() < 0 ||
	    pgp_new(cfg->gpg_home, NULL, &ib->pgp, &perr) < 0) {
		ib->pgp = NULL;
		snprintf(ib->pgp_reason, sizeof(ib->pgp_reason), "gpg unavailable: %s",
			 perr.text[0] ? perr.text : "cannot initialise GPGME");
	}
	if (ib->pgp && store &&
	    atrest_new(store, ib->pgp, ib->store_fpr, &ib->atrest, &perr) < 0) {
		pgp_free(ib->pgp);
		ib->pgp = NULL;
		snprintf(ib->pgp_reason, sizeof(ib->pgp_reason), "encryption at rest "
			 "unavailable: %s", perr.text);
	}
	/* Replies are outside data: gpg runs on them only in a helper, under
	 * hard limits, started at the first PGP message (pgp_confine). */
	if (ib->pgp)
		pgp_confine(ib->pgp, (unsigned)cfg->gpg_time_limit * 1000u);
	*out = ib;
	return 0;
}

static void batch_drop(struct inbound *ib);

void
inbound_free(struct inbound *ib)
{
	if (ib == NULL)
		return;
	batch_drop(ib);
	free(ib->pending);
	parsehelper_free(ib->parser);
	atrest_free(ib->atrest);
	pgp_free(ib->pgp);
	explicit_bzero(ib->key, sizeof(ib->key));
	free(ib);
}

static void
work_free(struct work *w)
{
	rawhdr_free(&w->hdr);
	inmsg_free(w->m);
	free(w->signer);
	replyauth_clear(&w->auth);
	free(w->text);
	json_decref(w->form_values);
	json_decref(w->form_missing);
	buf_free(&w->blob);
	autocrypt_free(&w->ac);
}

/* ---- small helpers ---- */

static void
sha256_hex(const char *prefix, const void *data, size_t len, char out[65])
{
	gcry_md_hd_t h;
	uint8_t digest[32];

	if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
		gcry_check_version(NULL);
	if (gcry_md_open(&h, GCRY_MD_SHA256, 0) != 0) {
		memset(digest, 0, sizeof(digest));
	} else {
		gcry_md_write(h, prefix, strlen(prefix));
		gcry_md_write(h, data, len);
		memcpy(digest, gcry_md_read(h, GCRY_MD_SHA256), sizeof(digest));
		gcry_md_close(h);
	}
	cp_hex(digest, sizeof(digest), out);
}

static void
quarantine(struct work *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void vquarantine(struct work *w, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
vquarantine(struct work *w, const char *fmt, va_list ap)
{
	w->res->disposition = INBOUND_QUARANTINED;
	w->res->folder = INBOUND_FOLDER_QUARANTINE;
	vsnprintf(w->res->reason, sizeof(w->res->reason), fmt, ap);
}

static void
quarantine(struct work *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vquarantine(w, fmt, ap);
	va_end(ap);
}

static void
decided(struct work *w, enum inbound_disposition d, const char *reason)
{
	w->res->disposition = d;
	w->res->folder = INBOUND_FOLDER_PROCESSED;
	cp_strlcpy(w->res->reason, reason ? reason : "", sizeof(w->res->reason));
}

/* ---- parsing, behind the wall ---- */

void
inbound_progress(struct inbound *ib, parsehelper_progress_fn fn, void *userdata)
{
	ib->progress = fn;
	ib->progress_userdata = userdata;
	if (ib->parser != NULL)
		parsehelper_progress(ib->parser, fn, userdata);
}

void
inbound_parse_in_process(struct inbound *ib)
{
	ib->parse_in_process = 1;
}

void
inbound_set_actor(struct inbound *ib, const char *actor)
{
	ib->actor = actor;
}

/* parser - the parse helper, made at the first message: 0 or -EHOSTDOWN. */
static int
parser(struct inbound *ib, struct cp_error *err)
{
	int r;

	if (ib->parser != NULL)
		return 0;
	r = parsehelper_new(0, &ib->parser, err);
	if (r == 0)
		parsehelper_progress(ib->parser, ib->progress, ib->progress_userdata);
	if (r == -ENOSYS)
		return cp_error_set(err, -EHOSTDOWN, "mail is parsed only in the "
				    "parse helper, which this program did not enable");
	return r;
}

/*
 * parse - raw as a struct inmsg, made by the parse helper (parsehelper.h:
 * a lost helper costs one more try, then PARSEHELPER_LOST, which the
 * caller quarantines). flags: PARSEHELPER_ONCE for a guess.
 */
static int
parse(struct inbound *ib, const char *raw, size_t len, int flags,
      struct inmsg **m, struct cp_error *err)
{
	int r;

	if (ib->parse_in_process)
		return inmsg_parse(raw, len, &ib->limits, m, err);
	*m = NULL;
	r = parser(ib, err);
	if (r < 0)
		return r;
	/* A new message: its parse, retries and decrypted content within
	 * one budget, under the watchdog's. */
	parsehelper_budget(ib->parser, PARSEHELPER_MESSAGE_BUDGET_MS);
	return parsehelper_parse(ib->parser, raw, len, &ib->limits, flags, m, err);
}

/* reparse_inner - decrypted content into m, by the parse helper too. */
static int
reparse_inner(struct inbound *ib, struct inmsg *m, const char *raw, size_t len,
	      struct cp_error *err)
{
	int r;

	if (ib->parse_in_process)
		return inmsg_reparse_inner(m, raw, len, err);
	r = parser(ib, err);
	if (r < 0)
		return r;
	return parsehelper_reparse_inner(ib->parser, m, raw, len, err);
}

/* parse_infrastructure - a parse failure that is not the message's. */
static int
parse_infrastructure(int code)
{
	return code == -ENOMEM || code == -EHOSTDOWN;
}

/* ---- what the parse helper says, against the raw bytes ---- */

/*
 * believe_raw - the facts authentication rests on, as carepostd reads
 * them in the raw header block (rawhdr.h), over what the parse helper
 * said (it may be the message's by now): the Authentication-Results
 * values are carepostd's own; the From count is the larger of the two;
 * a From address that is not the raw field's first address is no
 * address (nobody's: the message cannot authenticate by it). Run after each
 * answer of the helper (the decrypted content's replaces the message).
 */
static int
believe_raw(struct work *w, struct cp_error *err)
{
	struct inmsg *m = w->m;
	struct inmsg_strlist own = { NULL, 0 };

	if (m == NULL)
		return 0;
	if (w->hdr.recipients == NULL) {	/* scanned once */
		int r = rawhdr_scan(w->raw, w->len, &w->hdr, err);

		if (r < 0)
			return r;
	}
	if (w->hdr.authres.n > 0) {
		own.v = calloc(w->hdr.authres.n, sizeof(*own.v));
		if (own.v == NULL)
			return cp_error_set(err, -ENOMEM, "inbound: out of memory");
		for (; own.n < w->hdr.authres.n; own.n++)
			if ((own.v[own.n] = strdup(w->hdr.authres.v[own.n])) == NULL)
				break;
	}
	for (size_t i = 0; i < m->auth_results.n; i++)
		free(m->auth_results.v[i]);
	free(m->auth_results.v);
	m->auth_results = own;
	if (own.n < w->hdr.authres.n)
		return cp_error_set(err, -ENOMEM, "inbound: out of memory");
	if (w->hdr.from_addresses > m->from_count)
		m->from_count = w->hdr.from_addresses;
	if (m->from_addr != NULL && !rawhdr_from_is(&w->hdr, m->from_addr)) {
		free(m->from_addr);
		m->from_addr = NULL;
	}
	return 0;
}

/* ---- dedupe ---- */

static void seen_fill(struct work *w, const struct seen_record *sr);

static int
seen_lookup(struct work *w, int *found, struct cp_error *err)
{
	struct seen_record sr;
	int r;

	*found = 0;
	if (w->ib->store == NULL)
		return 0;
	r = seen_get(w->ib->store, w->res->seen_key, &sr, err);
	if (r == -ENOENT)
		return 0;
	if (r == -EBADMSG || r == -EPROTO)
		r = 0;		/* seen, but what came of it cannot be read */
	if (r < 0)
		return r;
	*found = 1;
	seen_fill(w, &sr);
	seen_clear(&sr);
	return 0;
}

/* seen_fill - res as a DUPLICATE of what seen record sr says. */
static void
seen_fill(struct work *w, const struct seen_record *sr)
{
	w->res->disposition = INBOUND_DUPLICATE;
	w->res->key_candidate[0] = '\0';	/* nothing of this one is written */
	w->res->first = disposition_from_name(sr->disposition);
	w->res->folder = sr->folder == SEEN_QUARANTINE ? INBOUND_FOLDER_QUARANTINE
						       : INBOUND_FOLDER_PROCESSED;
	cp_strlcpy(w->res->reason, sr->reason ? sr->reason : "", sizeof(w->res->reason));
	cp_strlcpy(w->res->inbox_id, sr->inbox_id ? sr->inbox_id : "",
		   sizeof(w->res->inbox_id));
	cp_strlcpy(w->res->patient, sr->patient ? sr->patient : "", sizeof(w->res->patient));
	cp_strlcpy(w->res->event, sr->event ? sr->event : "", sizeof(w->res->event));
}

/* ---- PGP ---- */

/* A gpg failure caused by the message (quarantine) or by gpg (retry)? */
static int
gpg_message_fault(int code)
{
	return code == -EBADMSG || code == -ENOKEY || code == -EFBIG ||
	       code == -EMSGSIZE || code == -EKEYEXPIRED || code == -EKEYREVOKED ||
	       code == -ETIMEDOUT;
}

/* gpg stopped over the output limit: the message's, whatever our key. */
static int
gpg_over_limit(int code)
{
	return code == -EFBIG || code == -EMSGSIZE;
}

/*
 * our_secret_unavailable - 1 (err set) when the key replies are encrypted
 * to (the clinic key, else the store key) cannot be used right now.
 */
static int
our_secret_unavailable(struct inbound *ib, struct cp_error *err)
{
	const char *fpr = ib->cfg->gpg_clinic_key ? ib->cfg->gpg_clinic_key :
			  ib->store_fpr;

	cp_error_clear(err);
	return fpr != NULL && pgp_secret_available(ib->pgp, fpr, err) < 0;
}

/*
 * crlf_contains - needle (line ends CRLF) is in hay[0..len) with its
 * bare LFs read as CRLF (inmsg.h: pgp_signed is the signed bytes with
 * line ends made CRLF).
 */
static int
crlf_contains(const char *hay, size_t len, const char *needle, size_t nlen,
	      int *found)
{
	struct buf crlf = BUF_INIT;
	int r = 0;

	*found = 0;
	if (memchr(hay, '\n', len) == NULL || nlen == 0) {
		*found = nlen > 0 && memmem(hay, len, needle, nlen) != NULL;
		return 0;
	}
	for (size_t i = 0; i < len && r == 0; i++) {
		if (hay[i] == '\n' && (i == 0 || hay[i - 1] != '\r'))
			r = buf_append(&crlf, "\r", 1);
		if (r == 0)
			r = buf_append(&crlf, hay + i, 1);
	}
	if (r == 0)
		*found = memmem(crlf.data, crlf.len, needle, nlen) != NULL;
	buf_free(&crlf);
	return r;
}

/*
 * remake - what the parse helper said of m's content (inmsg_forget_content:
 * body, reply, form answers, attachments, protected headers, signed part)
 * dropped and made again from bytes alone by a fresh helper: nothing of
 * the first answer, which a helper taken over by the message wrote, may
 * survive into what is filed or into what binds it to a thread. what
 * names the bytes in a quarantine's reason. <0 for infrastructure, 1
 * when quarantined, 0 to go on.
 */
static int
remake(struct work *w, const char *bytes, size_t len, const char *what,
       struct cp_error *err)
{
	struct cp_error perr;
	int r;

	if (inmsg_forget_content(w->m) < 0)
		return cp_error_set(err, -ENOMEM, "inbound: out of memory");
	cp_error_clear(&perr);
	r = reparse_inner(w->ib, w->m, bytes, len, &perr);
	if (parse_infrastructure(r))
		return cp_error_set(err, r, "inbound: %s", perr.text);
	if (r == PARSEHELPER_LOST)
		w->res->parser_lost = 1;
	if (r < 0) {
		quarantine(w, "%s: %s", what, perr.text);
		return 1;
	}
	return 0;
}

/*
 * from_signed_bytes - a signature verified on the bytes the parse helper
 * called signed: those bytes must be the message's own, and what is
 * filed (body, attachments, protected headers) is made from them alone,
 * by a fresh helper (as decrypted content is), not taken from the
 * helper that parsed the unsigned whole. <0 for infrastructure, 1 when
 * quarantined, 0 to go on.
 */
static int
from_signed_bytes(struct work *w, const char *hay, size_t haylen,
		  struct cp_error *err)
{
	struct inmsg *m = w->m;
	char *signed_copy;
	size_t signed_len = m->pgp_signed_len;
	int found, r;

	r = crlf_contains(hay, haylen, m->pgp_signed, m->pgp_signed_len, &found);
	if (r < 0)
		return cp_error_set(err, -ENOMEM, "inbound: out of memory");
	if (!found) {
		memset(&w->sig, 0, sizeof(w->sig));
		w->auth_status = "fail";
		quarantine(w, "signed part not in the message");
		return 1;
	}
	signed_copy = malloc(signed_len ? signed_len : 1);
	if (signed_copy == NULL)
		return cp_error_set(err, -ENOMEM, "inbound: out of memory");
	memcpy(signed_copy, m->pgp_signed, signed_len);
	/* The content as it will be made again from the signed part (the
	 * copy: remake frees the helper's). */
	r = remake(w, signed_copy, signed_len, "signed content", err);
	free(signed_copy);
	return r;
}

/* Returns <0 for infrastructure, 1 when quarantined, 0 to go on. */
static void
wipe_free(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->len);
	buf_free(b);
}

static int
keep_signer(struct work *w, struct cp_error *err)
{
	if (w->sig.fpr[0] != '\0' && (w->signer = strdup(w->sig.fpr)) == NULL)
		return cp_error_set(err, -ENOMEM, "inbound: out of memory");
	return 0;
}

/*
 * verify_signed - a signed part (m's, as the helper found it) that gpg
 * has not already vouched for (a signature inside the encryption): the
 * signature checked, and when it holds, the part must be in hay (the
 * raw message, or the decrypted content) and what is filed is made
 * again from it alone (from_signed_bytes). A bad signature is no
 * signature: other proof may still do. <0, 1 or 0 as remake.
 */
static int
verify_signed(struct work *w, const char *hay, size_t haylen, struct cp_error *err)
{
	struct inmsg *m = w->m;
	struct cp_error perr;
	int r;

	if (w->sig.fpr[0] == '\0' && (m->pgp & INMSG_PGP_SIGNED) && m->pgp_signed &&
	    m->pgp_signature) {
		cp_error_clear(&perr);
		r = pgp_verify_detached(w->ib->pgp, m->pgp_signed, m->pgp_signed_len,
					m->pgp_signature, m->pgp_signature_len,
					&w->sig, &perr);
		if (r < 0 && !gpg_message_fault(r) && !w->dry_run)
			return cp_error_set(err, r, "%s", perr.text);
		if (w->sig.fpr[0] != '\0' &&
		    (r = from_signed_bytes(w, hay, haylen, err)) != 0)
			return r;
	}
	return keep_signer(w, err);
}

static int
do_pgp(struct work *w, struct cp_error *err)
{
	struct inmsg *m = w->m;
	struct cp_error perr;
	int r;

	w->decryption = "none";
	if (!(m->pgp & (INMSG_PGP_ENCRYPTED | INMSG_PGP_SIGNED)))
		return 0;
	if (w->ib->pgp == NULL) {
		w->decryption = "unavailable";
		cp_strlcpy(w->decryption_reason, w->ib->pgp_reason, sizeof(w->decryption_reason));
		if (w->dry_run || !(m->pgp & INMSG_PGP_ENCRYPTED))
			return 0;
		return cp_error_set(err, -ENOKEY, "%s", w->ib->pgp_reason);
	}
	if (m->pgp & INMSG_PGP_ENCRYPTED) {
		struct buf plain = BUF_INIT;
		struct cp_error kerr;

		plain.max = DECRYPT_MAX;
		cp_error_clear(&perr);
		/* The signer as signed: resolved to its primary key only when
		 * it matches nobody as it is (replyauth.h). */
		r = pgp_decrypt_signed_by(w->ib->pgp, m->pgp_encrypted,
					  m->pgp_encrypted_len, &plain, &w->sig, &perr);
		/*
		 * gpg says "No secret key" when gpg-agent is gone, just as for
		 * mail encrypted to someone else. So a failure is the
		 * message's only if our key is usable both before and after
		 * one more try: an outage that ends (or starts) between the
		 * calls leaves the reply in the mailbox for the next round,
		 * never in quarantine.
		 */
		if (r < 0 && gpg_message_fault(r) && !gpg_over_limit(r) && !w->dry_run) {
			if (our_secret_unavailable(w->ib, &kerr)) {
				buf_free(&plain);
				return cp_error_set(err, -EHOSTDOWN,
						    "cannot decrypt: %s", kerr.text);
			}
		}
		/* gpg stopped at a limit (size, time) never runs on it again;
		 * a timeout with our key usable is the message's. */
		if (r < 0 && gpg_message_fault(r) && !gpg_over_limit(r) &&
		    r != -ETIMEDOUT && !w->dry_run) {
			cp_error_clear(&perr);
			plain.len = 0;
			r = pgp_decrypt_signed_by(w->ib->pgp, m->pgp_encrypted,
						  m->pgp_encrypted_len, &plain,
						  &w->sig, &perr);
			if (r < 0 && gpg_message_fault(r) &&
			    our_secret_unavailable(w->ib, &kerr)) {
				buf_free(&plain);
				return cp_error_set(err, -EHOSTDOWN,
						    "cannot decrypt: %s", kerr.text);
			}
		}
		if (r < 0) {
			buf_free(&plain);
			w->decryption = "failed";
			cp_strlcpy(w->decryption_reason, perr.text, sizeof(w->decryption_reason));
			if (!gpg_message_fault(r) && !w->dry_run)
				return cp_error_set(err, r, "%s", perr.text);
			quarantine(w, "cannot decrypt: %s", perr.text);
			return 1;
		}
		w->decryption = "decrypted";
		w->decrypted = 1;
		/* The decrypted content is all that is filed: nothing the
		 * first answer said of content, protected headers or a
		 * signed part survives (a helper the outer message took over
		 * could name another thread or another's signature). */
		r = remake(w, plain.data ? plain.data : "", plain.len,
			   "decrypted content", err);
		if (r == 0)
			r = verify_signed(w, plain.data ? plain.data : "", plain.len, err);
		wipe_free(&plain);
		return r;
	}
	return verify_signed(w, w->raw, w->len, err);
}

/* ---- authentication ---- */

/*
 * authenticate - replyauth_check on what w holds (replyauth.h); its
 * verdict into w->auth and w->res, a failure quarantined with its
 * reason. Returns <0 for infrastructure; otherwise w->auth_status says.
 */
static int
authenticate(struct work *w, struct cp_error *err)
{
	struct inbound *ib = w->ib;
	struct inbound_result *res = w->res;
	struct replyauth_out *out = &w->auth;
	const struct replyauth_in in = {
		.key = ib->key, .keylen = ib->keylen, .store = ib->store,
		.pgp = ib->pgp, .clinic_fpr = ib->cfg->gpg_clinic_key,
		.store_fpr = ib->store_fpr,
		.trusted_authserv_id = ib->cfg->trusted_authserv_id,
		.require_dmarc = ib->cfg->require_dmarc,
		.default_department = ib->cfg->default_department,
		.addrs = &ib->addrs, .dry_run = w->dry_run, .now = w->now,
		.token = w->ci.token, .from_addr = w->m->from_addr,
		.from_count = w->m->from_count,
		.auth_results = (const char *const *)w->m->auth_results.v,
		.n_auth_results = w->m->auth_results.n,
		.signer = w->signer, .sig_created = w->sig.created,
		.decrypted = w->decrypted, .prot_recipients = &w->m->prot.recipients,
	};
	int r;

	replyauth_clear(out);
	r = replyauth_check(&in, out, err);
	if (r < 0)
		return r;
	free(w->signer);		/* as judged: resolved or not */
	w->signer = out->signer;
	out->signer = NULL;
	w->signer_resolved = out->signer_resolved;
	w->auth_status = out->status;
	cp_strlcpy(res->thread, out->thread_hex, sizeof(res->thread));
	cp_strlcpy(res->event, out->event, sizeof(res->event));
	cp_strlcpy(res->patient, out->patient_id, sizeof(res->patient));
	cp_strlcpy(res->department, out->department, sizeof(res->department));
	cp_strlcpy(res->sender_role, out->sender_role, sizeof(res->sender_role));
	cp_strlcpy(res->auth, out->auth, sizeof(res->auth));
	if (strcmp(out->status, "pass") != 0)
		quarantine(w, "%s", out->reason);
	return 0;
}

/* ---- bounces ---- */

/* from_mail_system - mailer-daemon@, postmaster@ and the like. */
static int
from_mail_system(const char *from)
{
	static const char *const locals[] = { "mailer-daemon@", "mailerdaemon@",
		"mail-daemon@", "postmaster@" };

	for (size_t i = 0; from && i < CP_ARRAY_SIZE(locals); i++)
		if (strncasecmp(from, locals[i], strlen(locals[i])) == 0)
			return 1;
	return 0;
}

/*
 * mapping_ready - a report of kind ("bounce", "feedback report") can be
 * mapped: 1. Without a store or token key: an error, or in a dry run a
 * quarantine that says so (0).
 */
static int
mapping_ready(struct work *w, const char *kind, struct cp_error *err)
{
	const char *missing = w->ib->store == NULL ? "store" : "token key";

	if (w->ib->store != NULL && w->ib->keylen > 0)
		return 1;
	if (!w->dry_run)
		return cp_error_set(err, -EINVAL, "inbound: no %s to map %ss with",
				    missing, kind);
	w->auth_status = "unavailable";
	quarantine(w, "%s mapping unavailable: no %s", kind, missing);
	return 0;
}

/* take_whose - whose a report was, as far as bouncemap found (w->bounce). */
static void
take_whose(struct work *w)
{
	if (w->bounce.thread[0] == '\0')
		return;
	cp_strlcpy(w->res->event, w->bounce.event, sizeof(w->res->event));
	cp_strlcpy(w->res->patient, w->bounce.patient, sizeof(w->res->patient));
	cp_strlcpy(w->res->thread, w->bounce.thread, sizeof(w->res->thread));
}

static int
do_bounce(struct work *w, struct cp_error *err)
{
	const struct inmsg_dsn *dsn = &w->m->dsn;
	const struct inmsg_dsn_rcpt *dr = NULL;
	struct cp_error lerr;
	int r;

	for (size_t i = 0; i < dsn->n_rcpts; i++) {
		const char *a = dsn->rcpts[i].action;

		if (a && (strcmp(a, "failed") == 0 || strcmp(a, "delayed") == 0)) {
			dr = &dsn->rcpts[i];
			break;
		}
	}
	if (dsn->present && dr == NULL) {
		/* relayed, delivered, expanded: nothing went wrong */
		decided(w, INBOUND_BOUNCE_RECORDED, "delivery report without a failure");
		return 0;
	}
	if (!dsn->present && !from_mail_system(w->m->from_addr) &&
	    ((w->m->flags & (INMSG_F_X_AUTOREPLY | INMSG_F_X_AUTORESPOND)) ||
	     (w->m->auto_submitted && strcmp(w->m->auto_submitted, "no") != 0))) {
		/* a vacation responder answering the envelope sender */
		w->auth_status = "not applicable";
		decided(w, INBOUND_AUTOREPLY_DISCARDED, "auto-reply to a bounce address");
		return 0;
	}
	if ((r = mapping_ready(w, "bounce", err)) <= 0)
		return r;
	cp_error_clear(&lerr);
	r = bouncemap_find(w->ib->store, w->ib->key, w->ib->keylen, w->now,
			   w->ci.verp, dsn, dr, &w->bounce, &lerr);
	if (r < 0)
		return cp_error_set(err, r, "%s", lerr.text);
	take_whose(w);
	if (r > 0) {
		w->res->forged = w->bounce.forged;
		quarantine(w, "%s", w->bounce.reason);
		return 0;
	}
	w->auth_status = "pass";
	/* a refusal for the sender's authentication, reported after the
	 * relay took the message: the admin's DKIM/SPF/DMARC is broken */
	if (dr != NULL) {
		char text[2 * DSN_MAX_VALUE + 8];

		snprintf(text, sizeof(text), "%s %s", dr->status ? dr->status : "",
			 dr->diagnostic_code ? dr->diagnostic_code : "");
		w->res->auth_refusal = relay_auth_refusal(text);
	}
	decided(w, INBOUND_BOUNCE_RECORDED, w->bounce.hard ? "hard bounce" : "soft bounce");
	return 0;
}

/* ---- feedback reports (complaints) ---- */

/* complaint_verps - the VERPs a feedback report may map through: the
 * address it came to, its Original-Mail-From, the reported message's
 * Return-Path (each only in carepost's bounce+VERP@ form). */
static size_t
complaint_verps(const struct work *w, char v[3][INMSG_TOKEN_MAX],
		const char *out[3])
{
	const struct inmsg_arf *a = &w->m->arf;
	size_t n = 0;

	if (w->ci.verp[0] != '\0')
		out[n++] = w->ci.verp;
	if (inmsg_bounce_verp(a->original_mail_from, &w->ib->addrs, v[1], INMSG_TOKEN_MAX))
		out[n++] = v[1];
	if (inmsg_bounce_verp(a->orig_return_path, &w->ib->addrs, v[2], INMSG_TOKEN_MAX))
		out[n++] = v[2];
	return n;
}

/* feedback_token - the Feedback-Type kept: letters, digits and "-", at
 * most 32 of them; anything else is kept as "other" (RFC 5965, 3.1). */
static void
feedback_token(const char *t, char *out, size_t outlen)
{
	size_t n = t ? strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789-") : 0;

	if (t == NULL || *t == '\0')
		cp_strlcpy(out, "", outlen);
	else if (t[n] != '\0' || n >= outlen)
		cp_strlcpy(out, "other", outlen);
	else
		cp_strlcpy(out, t, outlen);
}

#define COMPLAINT_REPEAT_REASON \
	"feedback report about a message complained of before: nothing new"

/* complaint_unmapped - quarantined with why, and counted. */
static void
complaint_unmapped(struct work *w, const char *why)
{
	w->res->feedback = w->res->forged ? METRICS_FB_FORGED : METRICS_FB_UNMAPPED;
	quarantine(w, "%s", why);
}

/*
 * complaint_decide - what a mapped report does: for a complaint (abuse,
 * fraud, other), an opt-out of the event's subscription category for the
 * recipient who complained (never of security, internal or transactional
 * mail) and a line in the clinic's queue either way, once per message
 * and recipient; for an authentication failure report, a warning to the
 * admin; for the rest, nothing.
 */
static void
complaint_decide(struct work *w, enum arf_kind k)
{
	const struct bouncemap *bm = &w->bounce;
	const struct event_type *et = event_type_find(bm->type);
	const char *why;

	if (k == ARF_AUTH_FAILURE) {
		/* RFC 6591: about the sender's DKIM or SPF, not a recipient */
		w->res->feedback = METRICS_FB_AUTH_FAILURE;
		why = "authentication failure report: check the relay's DKIM "
		      "signing and the SPF record";
	} else if (k != ARF_COMPLAINT) {
		w->res->feedback = METRICS_FB_NO_CHANGE;
		why = k == ARF_VIRUS ? "virus report: nothing changed" :
		      "not-spam report: nothing changed";
	} else if (strncmp(bm->ref, "staff:", 6) == 0) {
		w->res->feedback = METRICS_FB_NO_CHANGE;
		why = "complaint about staff mail: nothing changed";
	} else if (bm->complained) {
		w->res->feedback = METRICS_FB_REPEAT;
		why = COMPLAINT_REPEAT_REASON;
	} else if (et == NULL) {
		w->res->feedback = METRICS_FB_SHOWN;
		why = "complaint about mail of an unknown type: shown to staff, "
		      "nothing stopped";
	} else if (et->security || et->internal) {
		w->res->feedback = METRICS_FB_SHOWN;
		why = "complaint about a security notice: shown to staff, nothing stopped";
	} else if (!et->unsubscribe) {
		/* transactional, appointment reminders included: the
		 * successor category of an old mailto does not apply here */
		w->res->feedback = METRICS_FB_SHOWN;
		why = "complaint about transactional mail: shown to staff, nothing stopped";
	} else {
		w->res->feedback = METRICS_FB_OPTED_OUT;
		w->category = et->category;
		why = strcmp(bm->ref, "patient") == 0 ?
		      "complaint: patient opted out of the category" :
		      "complaint: proxy opted out of the category";
	}
	decided(w, INBOUND_COMPLAINT_RECORDED, why);
}

/* domain_listed - d is one of list's comma-separated domains, or below one. */
static int
domain_listed(const char *list, const char *d)
{
	size_t dl = strlen(d);

	while (list && *list) {
		size_t n = strcspn(list, ","), a = 0, b = n;

		while (a < b && isspace((unsigned char)list[a]))
			a++;
		while (b > a && isspace((unsigned char)list[b - 1]))
			b--;
		if (b > a && (b - a == dl || (dl > b - a && d[dl - (b - a) - 1] == '.')) &&
		    strncasecmp(d + dl - (b - a), list + a, b - a) == 0)
			return 1;
		list += n;
		if (*list == ',')
			list++;
	}
	return 0;
}

/*
 * reporter_authenticated - with [security] feedback_reporters, a feedback
 * report counts only from one of those domains (or below one), vouched
 * for by the trusted server's topmost Authentication-Results (DMARC, or
 * aligned DKIM) for its one From: a mailbox provider's loop sent it, not
 * whoever holds a copy of the message. With require_dmarc alone, the
 * DMARC pass proves its sender's domain, whichever. With neither, the
 * tags it names are the proof, as a one-click unsubscribe link is.
 */
static int
reporter_authenticated(const struct work *w)
{
	const struct cp_config *cfg = w->ib->cfg;
	const char *from = w->m->from_addr, *at = from ? strrchr(from, '@') : NULL;
	struct authres_result ar;

	if (cfg->feedback_reporters && *cfg->feedback_reporters &&
	    (at == NULL || !domain_listed(cfg->feedback_reporters, at + 1)))
		return 0;
	if (!cfg->require_dmarc && !(cfg->feedback_reporters && *cfg->feedback_reporters))
		return 1;
	if (w->m->from_count != 1 || at == NULL || cfg->trusted_authserv_id == NULL ||
	    authres_check((const char *const *)w->m->auth_results.v, w->m->auth_results.n,
			  cfg->trusted_authserv_id, at + 1, &ar) < 0)
		return 0;
	return ar.dmarc_pass || (ar.dkim_aligned_pass && !ar.dmarc_fail);
}

static int
do_complaint(struct work *w, struct cp_error *err)
{
	const struct inmsg_arf *a = &w->m->arf;
	enum arf_kind k = arf_kind(a->feedback_type);
	char v[3][INMSG_TOKEN_MAX];
	const char *verps[3];
	size_t nv;
	struct cp_error lerr;
	int r;

	w->auth_status = "not applicable";
	feedback_token(a->feedback_type, w->feedback_type, sizeof(w->feedback_type));
	if (k == ARF_NONE) {
		complaint_unmapped(w, "feedback report without a Feedback-Type: malformed");
		return 0;
	}
	if (!reporter_authenticated(w)) {
		w->auth_status = "fail";
		complaint_unmapped(w, "feedback report not from a listed reporter with a "
				   "DMARC pass from the trusted server: ignored");
		return 0;
	}
	if ((r = mapping_ready(w, "feedback report", err)) <= 0) {
		w->res->feedback = METRICS_FB_UNMAPPED;
		return r;
	}
	nv = complaint_verps(w, v, verps);
	if (nv == 0 && a->orig_message_id == NULL) {
		complaint_unmapped(w, "feedback report without the reported message's "
				   "Message-ID or return path: malformed");
		return 0;
	}
	cp_error_clear(&lerr);
	r = bouncemap_find_complaint(w->ib->store, w->ib->key, w->ib->keylen, w->now,
				     verps, nv, a->orig_message_id, a->original_rcpt_to,
				     &w->bounce, &lerr);
	if (r < 0)
		return cp_error_set(err, r, "%s", lerr.text);
	take_whose(w);
	if (r > 0) {
		w->res->forged = w->bounce.forged;
		complaint_unmapped(w, w->bounce.reason);
		return 0;
	}
	w->auth_status = "pass";
	cp_strlcpy(w->res->department, w->bounce.department[0] ? w->bounce.department :
		   w->ib->cfg->default_department ? w->ib->cfg->default_department : "",
		   sizeof(w->res->department));
	if (strncmp(w->bounce.ref, "proxy:", 6) == 0)
		cp_strlcpy(w->res->sender_role, "proxy", sizeof(w->res->sender_role));
	else if (strcmp(w->bounce.ref, "patient") == 0)
		cp_strlcpy(w->res->sender_role, "patient", sizeof(w->res->sender_role));
	complaint_decide(w, k);
	return 0;
}

/*
 * complaint_recheck - in the transaction, before w's complaint is filed:
 * a report about the same message filed since w was decided (earlier in
 * the same batch) makes w a repeat, which files nothing but its seen
 * record and says so.
 */
static int
complaint_recheck(struct store *s, MDB_txn *txn, struct work *w,
		  struct cp_error *err)
{
	struct delivery d;
	int r, again;

	if (w->res->feedback != METRICS_FB_OPTED_OUT && w->res->feedback != METRICS_FB_SHOWN)
		return 0;
	r = queue_txn_get(s, txn, w->bounce.delivery_id, &d, err);
	if (r < 0)
		return r;
	again = w->bounce.rcpt_index < d.nrcpts &&
		d.rcpts[w->bounce.rcpt_index].complained_at != 0;
	delivery_clear(&d);
	if (again) {		/* (the batch restores w->res before a rerun) */
		w->res->feedback = METRICS_FB_REPEAT;
		cp_strlcpy(w->res->reason, COMPLAINT_REPEAT_REASON, sizeof(w->res->reason));
	}
	return 0;
}

/* ---- replies ---- */

static int
text_has_urgent_word(const char *cfgwords, const char *text)
{
	const char *p = cfgwords;

	if (p == NULL || text == NULL)
		return 0;
	while (*p) {
		char word[128];
		size_t n = strcspn(p, ","), a = 0, b = n;

		while (a < b && isspace((unsigned char)p[a]))
			a++;
		while (b > a && isspace((unsigned char)p[b - 1]))
			b--;
		if (b > a && b - a < sizeof(word)) {
			memcpy(word, p + a, b - a);
			word[b - a] = '\0';
			if (strcasestr(text, word))
				return 1;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/*
 * key_candidate_of - the key a filed reply's Autocrypt header offers, as a
 * candidate (record.h) for the portal to put to its sender, when all
 * holds: the trusted server's DMARC or aligned DKIM pass vouches for the
 * header (a signature covers the body only: a signed reply resent with
 * another header proves nothing of it), with one From, in one field,
 * that is the address on file of the one who is authenticated; the
 * header is the message's one Autocrypt field and reads (autocrypt.h),
 * its addr is that From, and its key is not the one on file already. A
 * forged, merely From-matched or only signed reply offers nothing.
 */
static void
key_candidate_of(struct work *w)
{
	struct inbound_result *res = w->res;
	const char *from = w->m->from_addr, *at = from ? strrchr(from, '@') : NULL;
	struct authres_result ar;
	struct policy_rcpt pr;

	if (w->hdr.autocrypt_fields != 1 || w->hdr.autocrypt == NULL ||
	    from == NULL || at == NULL || !rawhdr_from_is(&w->hdr, from) ||
	    w->hdr.from_fields != 1 || w->hdr.from_addresses != 1 ||
	    w->m->from_count != 1 || !w->auth.headers_authenticated ||
	    w->ib->cfg->trusted_authserv_id == NULL ||
	    authres_check((const char *const *)w->hdr.authres.v, w->hdr.authres.n,
			  w->ib->cfg->trusted_authserv_id, at + 1, &ar) < 0 ||
	    !ar.dkim_aligned_pass || ar.dmarc_fail ||
	    !autocrypt_dkim_covers((const char *const *)w->hdr.dkim.v, w->hdr.dkim.n,
				   ar.dkim_domain) ||
	    w->auth.sender_ref[0] == '\0' ||
	    strcmp(w->auth.from_ref, w->auth.sender_ref) != 0 ||
	    policy_resolve(w->auth.patient, w->auth.sender_ref, &pr) < 0 ||
	    pr.address == NULL || strcasecmp(pr.address, from) != 0)
		return;
	if (autocrypt_parse(w->hdr.autocrypt, w->hdr.autocrypt_len, &w->ac) < 0)
		return;
	if (strcmp(w->ac.addr, from) != 0 ||
	    (pr.fpr != NULL && strcasecmp(pr.fpr, w->ac.fpr) == 0)) {
		autocrypt_free(&w->ac);
		return;
	}
	cp_strlcpy(res->key_candidate, w->ac.fpr, sizeof(res->key_candidate));
}

static int
do_reply(struct work *w, struct cp_error *err)
{
	const struct inmsg *m = w->m;
	json_t *spec;
	struct cp_error lerr;
	int r;

	cp_error_clear(&lerr);
	/* The reply was cut from its quoted history where it was parsed. */
	w->text = strdup(m->reply ? m->reply : m->body);
	if (w->text == NULL)
		return cp_error_set(err, -ENOMEM, "inbound: out of memory");
	w->res->urgent = text_has_urgent_word(w->ib->cfg->urgent_words, w->text);
	spec = w->auth.thread.form_fields;
	if (strcmp(w->auth.thread.type ? w->auth.thread.type : "", "form_request") == 0 &&
	    spec != NULL) {
		w->res->form = 1;
		/* Read from the text that is filed (the reply the parse
		 * helper cut): a line split of valid UTF-8, linear and capped,
		 * so the answers can only be what the filed text says. */
		r = form_parse(w->text, strlen(w->text), spec, &w->form_values,
			       &w->form_missing, &lerr);
		if (r == -ENOMEM)
			return cp_error_set(err, r, "%s", lerr.text);
		if (r < 0)		/* a damaged spec: file it as a plain reply */
			w->res->form = 0;
	}
	key_candidate_of(w);
	decided(w, INBOUND_FILED, w->res->urgent ? "filed (urgent)" : "filed");
	return 0;
}

/* ---- unsubscribe ---- */

static void
do_unsubscribe(struct work *w)
{
	const struct event_type *et = event_type_find(w->auth.thread.type);

	if (et == NULL || et->security || et->internal) {
		w->unsub_refused = 1;
		decided(w, INBOUND_UNSUBSCRIBED,
			"security notices cannot be unsubscribed from: nothing changed");
		return;
	}
	if (!et->unsubscribe && event_successor_category(et) == NULL) {
		w->unsub_refused = 1;
		decided(w, INBOUND_UNSUBSCRIBED, "transactional mail cannot be "
			"unsubscribed from by email: nothing changed");
		return;
	}
	/* An appointment reminder sent when reminders were subscription
	 * mail promised an unsubscribe: it stops what is still subscription
	 * mail of the old category (recalls), not the appointments. */
	w->category = et->unsubscribe ? et->category : event_successor_category(et);
	decided(w, INBOUND_UNSUBSCRIBED, strcmp(w->auth.sender_ref, "patient") == 0 ?
		"patient opted out of the category" : "proxy opted out of the category");
}

/* ---- deciding ---- */

static int
decide(struct work *w, struct cp_error *err)
{
	int r;

	/* Classified from the outer headers first, so a quarantine still says what it was. */
	w->res->class = inmsg_classify(w->m, &w->ib->addrs, &w->ci);
	r = do_pgp(w, err);
	if (r != 0)
		return r < 0 ? r : 0;
	r = believe_raw(w, err);	/* the decrypted content's answer too */
	if (r < 0)
		return r;
	/* (a subkey of ours is caught in signer_match, which resolves it) */
	if (w->signer && replyauth_own_key(w->signer, w->ib->cfg->gpg_clinic_key,
					   w->ib->store_fpr)) {
		w->auth_status = "fail";
		quarantine(w, REPLYAUTH_OWN_KEY_REASON);
		return 0;
	}
	w->res->class = inmsg_classify(w->m, &w->ib->addrs, &w->ci);
	switch (w->res->class) {
	case INMSG_COMPLAINT:
		return do_complaint(w, err);
	case INMSG_DSN:
		return do_bounce(w, err);
	case INMSG_AUTOREPLY:
		w->auth_status = "not applicable";
		decided(w, INBOUND_AUTOREPLY_DISCARDED, w->ci.reason);
		return 0;
	case INMSG_UNKNOWN:
		w->auth_status = "not applicable";
		quarantine(w, "no reply token: %s", w->ci.reason ? w->ci.reason : "unknown");
		return 0;
	case INMSG_UNSUBSCRIBE:
	case INMSG_REPLY:
		break;
	}
	if (w->ci.token[0] == '\0') {
		w->auth_status = "fail";
		quarantine(w, "unsubscribe without a token");
		return 0;
	}
	/* The token the parse helper found must be in the message's own
	 * recipient fields, not anywhere else it may have taken it from. */
	if (!rawhdr_recipients_name(&w->hdr, w->ci.token)) {
		w->auth_status = "fail";
		quarantine(w, "reply token not in the message's recipient fields");
		return 0;
	}
	r = authenticate(w, err);
	if (r < 0)
		return r;
	if (strcmp(w->auth_status, "pass") != 0)
		return 0;
	if (w->res->class == INMSG_UNSUBSCRIBE) {
		do_unsubscribe(w);
		return 0;
	}
	return do_reply(w, err);
}

/* ---- filing (filing.h) ---- */

/* reply_of - what filing needs of w, a reply decided FILED (borrowed). */
static void
reply_of(struct work *w, struct filing_reply *r)
{
	const struct inbound_result *res = w->res;

	*r = (struct filing_reply) {
		.cfg = w->ib->cfg, .raw = w->raw, .len = w->len, .m = w->m,
		.thread = &w->auth.thread, .inbox_id = res->inbox_id,
		.patient = res->patient, .thread_hex = res->thread,
		.event = res->event, .department = res->department,
		.sender_role = res->sender_role, .sender_ref = w->auth.sender_ref,
		.from_ref = w->auth.from_ref, .auth = res->auth,
		.decrypted = w->decrypted, .signer_matched = w->auth.signer_matched,
		.headers_authenticated = w->auth.headers_authenticated,
		.text = w->text, .urgent = res->urgent, .form = res->form,
		.form_values = w->form_values, .form_missing = w->form_missing,
		.store_fpr = w->ib->store_fpr, .blob = w->blob.data,
		.blob_len = w->blob.len, .dek = w->dek,
	};
}

/* encrypt_content - the reply's content sealed at rest (filing_seal). */
static int
encrypt_content(struct work *w, struct cp_error *err)
{
	struct inbound *ib = w->ib;
	struct filing_reply reply;

	if (ib->pgp == NULL || ib->atrest == NULL)
		return cp_error_set(err, -ENOKEY, "cannot file: %s", ib->pgp_reason);
	if (ib->store_fpr == NULL)
		return cp_error_set(err, -ENOKEY, "cannot file: no [gpg] store_key or "
				    "clinic_key to encrypt inboxes to");
	reply_of(w, &reply);
	return filing_seal(ib->atrest, &reply, w->now, &w->blob, w->dek, err);
}

/* seen_of - what came of w, as its seen record (borrowed strings). */
static void
seen_of(const struct work *w, struct seen_record *sr)
{
	const struct inbound_result *res = w->res;

	*sr = (struct seen_record) {
		.disposition = (char *)inbound_disposition_name(res->disposition),
		.folder = res->folder == INBOUND_FOLDER_QUARANTINE ? SEEN_QUARANTINE
								   : SEEN_PROCESSED,
		.class = (char *)(res->form ? "form" : inmsg_class_name(res->class)),
		.reason = (char *)res->reason,
		.inbox_id = res->inbox_id[0] ? (char *)res->inbox_id : NULL,
		.patient = res->patient[0] ? (char *)res->patient : NULL,
		.event = res->event[0] ? (char *)res->event : NULL,
		.at = (time_t)w->now,
		.message_id = w->message_id[0] ? (char *)w->message_id : NULL,
		.mailbox = (char *)w->origin.mailbox,
		.uidvalidity = w->origin.uidvalidity,
		.uid = w->origin.uid,
	};
}

/* keep_message_id - the Message-ID for the seen record: printable ASCII
 * without spaces and at most SEEN_MESSAGE_ID_MAX bytes, else none. */
static void
keep_message_id(struct work *w)
{
	const char *mid = w->m ? w->m->message_id : NULL;
	size_t i, n = mid ? strlen(mid) : 0;

	w->message_id[0] = '\0';
	if (n == 0 || n > SEEN_MESSAGE_ID_MAX)
		return;
	for (i = 0; i < n; i++)
		if (mid[i] <= 0x20 || mid[i] >= 0x7f)
			return;
	memcpy(w->message_id, mid, n + 1);
}

/* note_again - a message seen before, fetched again: counted in its seen
 * record (a record that cannot be read stays as it is). */
static int
note_again(struct store *s, MDB_txn *txn, const char *key, struct cp_error *err)
{
	int r = txn ? seen_txn_note_again(s, txn, key, err) : seen_note_again(s, key, err);

	if (r == -ENOENT || r == -EBADMSG || r == -EPROTO) {
		cp_error_clear(err);
		return 0;
	}
	return r;
}

/* complaint_files - w's complaint is recorded, and staff see it: not a
 * repeat, not a report that changes nothing. */
static int
complaint_files(const struct work *w)
{
	return w->res->feedback == METRICS_FB_OPTED_OUT || w->res->feedback == METRICS_FB_SHOWN;
}

/* complaint_category - what w's complaint opts its recipient out of. */
static const char *
complaint_category(const struct work *w)
{
	return w->res->feedback == METRICS_FB_OPTED_OUT ? w->category : NULL;
}

/* kind_of - what filing writes for w's disposition. */
static enum filing_kind
kind_of(const struct work *w)
{
	switch (w->res->disposition) {
	case INBOUND_FILED:
		return FILING_REPLY;
	case INBOUND_BOUNCE_RECORDED:
		return FILING_BOUNCE;
	case INBOUND_UNSUBSCRIBED:
		return w->unsub_refused || w->category == NULL ? FILING_SEEN_ONLY :
		       FILING_OPT_OUT;
	case INBOUND_COMPLAINT_RECORDED:
		return w->bounce.delivery_id[0] && complaint_files(w) ?
		       FILING_COMPLAINT : FILING_SEEN_ONLY;
	default:
		return FILING_SEEN_ONLY;
	}
}

/* file_txn - w's decision written (filing_txn); -EALREADY: seen meanwhile. */
static int
file_txn(struct store *s, MDB_txn *txn, struct work *w, struct cp_error *err)
{
	struct inbound_result *res = w->res;
	struct seen_record seen;
	struct filing_reply reply;
	const struct filing_complaint complaint = {
		.bm = &w->bounce, .feedback_type = w->feedback_type,
		.category = complaint_category(w), .staff_line = complaint_files(w),
		.department = res->department, .line_id = w->line_id,
		.sender_role = res->sender_role,
	};
	const struct filing f = {
		.actor = w->ib->actor, .seen_key = res->seen_key, .seen = &seen, .now = w->now,
		.kind = kind_of(w), .reply = &reply, .bounce = &w->bounce,
		.patient = res->patient, .sender_ref = w->auth.sender_ref,
		.category = w->category, .complaint = &complaint,
	};
	struct filing_result out;
	struct key_candidate cand = {
		.fingerprint = w->ac.fpr, .addr = w->ac.addr, .key = w->ac.key,
		.keylen = w->ac.keylen, .mutual = w->ac.mutual,
		.seen = (time_t)w->now, .inbox_id = res->inbox_id, .auth = "dkim",
	};
	int r;

	seen_of(w, &seen);
	reply_of(w, &reply);
	if (w->ac.key != NULL)
		reply.candidate = &cand;
	r = filing_txn(s, txn, &f, &out, err);
	if (f.kind == FILING_REPLY && r != -EALREADY) {
		res->no_autoresponse = out.no_autoresponse;
		res->alerted = out.followup.alerted;
		res->alert_held = out.followup.alert_held;
		res->acked = out.followup.acked;
		res->form_incomplete = out.followup.form_incomplete;
	}
	return r;
}

/* commit_txn - a complaint checked again in the transaction, then filed. */
static int
commit_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct work *w = ud;
	int r;

	if (w->res->disposition == INBOUND_COMPLAINT_RECORDED &&
	    (r = complaint_recheck(s, txn, w, err)) < 0)
		return r;
	return file_txn(s, txn, w, err);
}

/* commit_prepare - what is done before the transaction: encryption. */
static int
commit_prepare(struct work *w, struct cp_error *err)
{
	if (w->ib->store == NULL)
		return cp_error_set(err, -EINVAL, "inbound: no store to file into");
	if (w->res->disposition == INBOUND_FILED) {
		snprintf(w->res->inbox_id, sizeof(w->res->inbox_id), "m%010lld-%.8s",
			 (long long)w->now, w->res->seen_key);
		return encrypt_content(w, err);
	}
	if (w->res->disposition == INBOUND_COMPLAINT_RECORDED)
		snprintf(w->line_id, sizeof(w->line_id), "c%010lld-%.8s",
			 (long long)w->now, w->res->seen_key);
	return 0;
}

static int
commit(struct work *w, struct cp_error *err)
{
	int r, found;

	r = commit_prepare(w, err);
	if (r < 0)
		return r;
	r = store_write(w->ib->store, commit_txn, w, err);
	if (r == -EALREADY) {
		cp_error_clear(err);
		r = seen_lookup(w, &found, err);
		if (r == 0 && found)
			r = note_again(w->ib->store, NULL, w->res->seen_key, err);
	}
	return r;
}

static void
log_outcome(struct work *w)
{
	const struct inbound_result *res = w->res;
	const char *ev = res->event[0] ? res->event : NULL;
	const char *pid = res->patient[0] ? res->patient : NULL;

	switch (res->disposition) {
	case INBOUND_FILED:
		log_event(LOG_INFO, LOGID_INGESTED, ev, pid, "filed %s (%s, %s, auth %s%s%s%s%s%s)",
			  res->inbox_id, res->form ? "form" : "reply", res->sender_role,
			  res->auth, res->urgent ? ", urgent" : "",
			  res->alert_held ? ", staff alert held" : "",
			  res->acked ? ", acknowledged" : "",
			  res->form_incomplete ? ", form incomplete" : "",
			  res->no_autoresponse ? ", no automatic answer (RFC 3834)" : "");
		break;
	case INBOUND_QUARANTINED:
		log_event(LOG_WARNING, LOGID_QUARANTINE, ev, pid, "quarantined: %s",
			  res->reason);
		break;
	case INBOUND_DUPLICATE:
		log_event(LOG_INFO, LOGID_DUPLICATE, ev, pid, "seen before (%s): %s folder",
			  inbound_disposition_name(res->first),
			  inbound_folder_name(res->folder));
		break;
	case INBOUND_BOUNCE_RECORDED:
		log_event(LOG_NOTICE, LOGID_BOUNCE, ev, pid, "bounce recorded: %s%s%s",
			  res->reason, w->bounce.dsn_status[0] ? " " : "", w->bounce.dsn_status);
		if (res->auth_refusal)
			log_event(LOG_ERR, LOGID_BOUNCE, ev, pid, "a delivery report says "
				  "a message was refused for the sender's authentication "
				  "(%s): check DKIM, SPF and DMARC of the From domain "
				  "(README, \"Reaching the inbox\")", w->bounce.dsn_status);
		break;
	case INBOUND_UNSUBSCRIBED:
		log_event(LOG_INFO, LOGID_UNSUBSCRIBED, ev, pid, "unsubscribe: %s%s%s",
			  res->reason, w->category ? ": " : "",
			  w->category ? w->category : "");
		break;
	case INBOUND_AUTOREPLY_DISCARDED:
		log_event(LOG_INFO, LOGID_AUTOREPLY, ev, pid, "auto-reply discarded: %s",
			  res->reason);
		break;
	case INBOUND_COMPLAINT_RECORDED:
		log_event(res->feedback == METRICS_FB_AUTH_FAILURE ? LOG_WARNING : LOG_NOTICE,
			  LOGID_COMPLAINT, ev, pid, "feedback report (%s): %s%s%s",
			  w->feedback_type[0] ? w->feedback_type : "none", res->reason,
			  complaint_category(w) ? ": " : "",
			  complaint_category(w) ? complaint_category(w) : "");
		break;
	}
}

/* ---- dry-run summary ---- */

static json_t *
summary(struct work *w)
{
	struct inbound_result *res = w->res;
	json_t *o = NULL, *auth, *dec;

	if (w->m == NULL || inmsg_to_json(w->m, &w->ib->addrs, &o) < 0 || o == NULL) {
		o = json_object();
		json_object_set_new(o, "class", json_string("unknown"));
	}
	json_object_set_new(o, "dry_run", json_boolean(w->dry_run));
	json_object_set_new(o, "parsed", json_boolean(w->m != NULL));
	if (res->form)
		json_object_set_new(o, "class", json_string("form"));
	json_object_set_new(o, "disposition",
			    json_string(inbound_disposition_name(res->disposition)));
	json_object_set_new(o, "folder", json_string(inbound_folder_name(res->folder)));
	jset_str(o, "disposition_reason", res->reason);
	json_object_set_new(o, "urgent", json_boolean(res->urgent));
	if (res->form)
		json_object_set_new(o, "form", json_pack("{s:i, s:i}",
			"answered", (int)json_object_size(w->form_values),
			"missing_required", (int)json_array_size(w->form_missing)));
	dec = json_object();
	jset_str(dec, "status", w->decryption ? w->decryption : "none");
	jset_str(dec, "reason", w->decryption_reason);
	/* What was decrypted and not filed is not described (an admin's dry
	 * run on another patient's re-sent mail) beyond its decision. */
	if (w->decrypted && res->disposition != INBOUND_FILED) {
		json_object_del(o, "attachments");
		json_object_del(o, "body_bytes");
		json_object_set_new(o, "decrypted_content_withheld", json_true());
	} else {
		replyauth_resolve_signer(w->ib->pgp, &w->signer, &w->signer_resolved);
		jset_str(dec, "signer", w->signer);
	}
	json_object_set_new(dec, "signer_matched", json_boolean(w->auth.signer_matched));
	json_object_set_new(dec, "signature_predates_thread", json_boolean(w->auth.sig_stale));
	if (w->decrypted)
		json_object_set_new(dec, "bound_to_thread", json_boolean(w->auth.bound));
	json_object_set_new(o, "decryption", dec);
	auth = json_object();
	jset_str(auth, "status", w->auth_status ? w->auth_status : "not applicable");
	if (w->auth_status && strcmp(w->auth_status, "pass") != 0)
		jset_str(auth, "reason", res->reason);
	jset_str(auth, "method", res->auth);
	jset_who(auth, res);
	json_object_set_new(o, "authentication", auth);
	if (res->disposition == INBOUND_DUPLICATE)
		json_object_set_new(o, "first_disposition",
				    json_string(inbound_disposition_name(res->first)));
	if (res->key_candidate[0])	/* would be recorded */
		json_object_set_new(o, "key_candidate", json_string(res->key_candidate));
	return o;
}

/* ---- group commit ---- */

/* pend - prepare w and keep a copy of it for inbound_batch_commit. */
static int
pend(struct work *w, struct cp_error *err)
{
	struct inbound *ib = w->ib;
	struct work *copy;
	int r;

	r = commit_prepare(w, err);
	if (r < 0)
		return r;
	if (ib->n_pending == ib->cap_pending) {
		size_t cap = ib->cap_pending ? 2 * ib->cap_pending : 64;
		struct work **p = realloc(ib->pending, cap * sizeof(*p));

		if (p == NULL)
			return cp_error_set(err, -ENOMEM, "inbound: out of memory");
		ib->pending = p;
		ib->cap_pending = cap;
	}
	copy = malloc(sizeof(*copy));
	if (copy == NULL)
		return cp_error_set(err, -ENOMEM, "inbound: out of memory");
	*copy = *w;
	copy->decided = *w->res;
	ib->pending[ib->n_pending++] = copy;
	return 0;
}

/*
 * batch_txn - every pending decision in one transaction. A message seen
 * in the meantime (or twice in the batch) becomes a DUPLICATE of what
 * its seen record says. Runs again from the start after a map resize.
 */
static int
batch_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct inbound *ib = ud;
	int r;

	for (size_t i = 0; i < ib->n_pending; i++) {
		struct work *w = ib->pending[i];
		struct seen_record seen;

		*w->res = w->decided;
		r = seen_txn_get(s, txn, w->res->seen_key, &seen, err);
		if (r == -EBADMSG || r == -EPROTO)
			r = 0;	/* seen, but what came of it cannot be read */
		if (r == 0) {
			seen_fill(w, &seen);
			seen_clear(&seen);
			r = note_again(s, txn, w->res->seen_key, err);
			if (r < 0)
				return r;
			continue;
		}
		if (r != -ENOENT)
			return r;
		r = commit_txn(s, txn, w, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static void
batch_drop(struct inbound *ib)
{
	for (size_t i = 0; i < ib->n_pending; i++) {
		work_free(ib->pending[i]);
		free(ib->pending[i]);
	}
	ib->n_pending = 0;
}

void
inbound_batch_begin(struct inbound *ib)
{
	batch_drop(ib);
	parsehelper_ahead_drop(ib->parser);
	ib->batching = 1;
}

int
inbound_batch_commit(struct inbound *ib, struct cp_error *err)
{
	int r = 0;

	ib->batching = 0;
	/* Parses sent ahead for messages this batch did not come to. */
	parsehelper_ahead_drop(ib->parser);
	if (ib->n_pending > 0)
		r = store_write(ib->store, batch_txn, ib, err);
	if (r == 0)
		for (size_t i = 0; i < ib->n_pending; i++)
			log_outcome(ib->pending[i]);
	batch_drop(ib);
	return r;
}

/* ---- the entry point ---- */

/* mentions - whether s[0..len) holds word, in any case (ASCII). */
static int
mentions(const char *s, size_t len, const char *word)
{
	size_t wl = strlen(word);

	for (size_t i = 0; i + wl <= len; i++)
		if ((s[i] | 0x20) == word[0] && strncasecmp(s + i, word, wl) == 0)
			return 1;
	return 0;
}

int
inbound_ahead(struct inbound *ib, const char *raw, size_t len)
{
	const struct inmsg *m = NULL;
	struct cp_error ignored;

	if (ib == NULL || raw == NULL || ib->parse_in_process)
		return 0;
	cp_error_clear(&ignored);
	/* A guess: a helper lost on it costs the message nothing (its
	 * ingest tries as it would have). */
	if (parser(ib, &ignored) < 0 ||
	    !parsehelper_parse_ahead(ib->parser, raw, len, &ib->limits))
		return 0;
	/* A PGP/MIME message names its protocol: only for those is the
	 * parse waited for, to start the decryption. */
	if (ib->pgp == NULL || !mentions(raw, len, "application/pgp-encrypted"))
		return 1;
	if (parsehelper_peek(ib->parser, raw, len, &ib->limits, &m) == 0 &&
	    (m->pgp & INMSG_PGP_ENCRYPTED) && m->pgp_encrypted != NULL)
		pgp_decrypt_ahead(ib->pgp, m->pgp_encrypted, m->pgp_encrypted_len,
				  DECRYPT_MAX);
	return 1;
}

static int
ingest(struct inbound *ib, const char *raw, size_t len, int64_t now,
       int dry_run, const struct inbound_origin *origin,
       struct inbound_result *res, struct cp_error *err)
{
	struct work w;
	struct cp_error perr;
	int r, parse_rc, found = 0;

	memset(res, 0, sizeof(*res));
	memset(&w, 0, sizeof(w));
	w.ib = ib;
	w.raw = raw;
	w.len = len;
	w.now = now;
	w.dry_run = dry_run;
	w.res = res;
	if (origin != NULL)
		w.origin = *origin;
	res->class = INMSG_UNKNOWN;

	cp_error_clear(&perr);
	parse_rc = parse(ib, raw, len, 0, &w.m, &perr);
	if (parse_infrastructure(parse_rc))
		return cp_error_set(err, parse_rc, "inbound: %s", perr.text);
	if (parse_rc == PARSEHELPER_LOST)
		res->parser_lost = 1;
	r = believe_raw(&w, err);
	if (r < 0)
		goto out;
	if (w.m && w.m->message_id && *w.m->message_id)
		sha256_hex("mid:", w.m->message_id, strlen(w.m->message_id), res->seen_key);
	else
		sha256_hex("raw:", raw, len, res->seen_key);
	keep_message_id(&w);

	r = seen_lookup(&w, &found, err);
	if (r < 0)
		goto out;
	if (found) {
		if (!dry_run) {
			r = note_again(ib->store, NULL, res->seen_key, err);
			if (r < 0)
				goto out;
			log_outcome(&w);
		}
		goto done;
	}
	if (parse_rc < 0) {
		quarantine(&w, "%s", perr.text[0] ? perr.text : "unparseable message");
	} else {
		r = decide(&w, err);
		if (r < 0)
			goto out;
	}
	if (!dry_run && ib->batching) {
		r = pend(&w, err);
		if (r < 0)
			goto out;
		return 0;	/* w now belongs to the batch */
	}
	if (!dry_run) {
		r = commit(&w, err);
		if (r < 0)
			goto out;
		log_outcome(&w);
	}
done:
	if (dry_run)
		res->summary = summary(&w);
	r = 0;
out:
	work_free(&w);
	return r;
}

int
inbound_ingest(struct inbound *ib, const char *raw, size_t len, int64_t now,
	       int dry_run, struct inbound_result *res, struct cp_error *err)
{
	return ingest(ib, raw, len, now, dry_run, NULL, res, err);
}

int
inbound_ingest_imap(struct inbound *ib, const char *raw, size_t len, int64_t now,
		    const struct inbound_origin *origin, struct inbound_result *res,
		    struct cp_error *err)
{
	return ingest(ib, raw, len, now, 0, origin, res, err);
}
