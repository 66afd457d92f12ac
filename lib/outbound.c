/*
 * NAME
 *	outbound - portal events to mail: claim, compose, encrypt, send, record
 * DESCRIPTION
 *	See outbound.h for the flow. The main thread owns the store and the
 *	delivery records; worker threads only compose messages from inputs
 *	the main thread prepared (deep copies), and the sender thread only
 *	reads the composed messages, so no record or JSON value is shared.
 */
#include "outbound.h"
#include "unsub.h"
#include "buf.h"
#include "digest.h"
#include "event.h"
#include "ical.h"
#include "intake.h"
#include "log.h"
#include "mime.h"
#include "pgp.h"
#include "policy.h"
#include "queue.h"
#include "record.h"
#include "relay.h"
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <gcrypt.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define CLAIM_BATCH	500
#define STEP_BUDGET_MS	1000	/* outbound_step: no new batch after this */
#define SEND_LEASE	600	/* seconds a taken batch stays leased */
#define MAX_WORKERS	16
#define MAX_SESSIONS	64	/* as config.c allows */

/*
 * Recipient key checks, kept for one outbound_run: a key that goes bad
 * meanwhile is refused by gpg itself, and compose sends a notice.
 */
struct key_cache {
	json_t *results;		/* fpr -> {"rc", "why"} (rc 0: usable) */
};

struct flight;

struct outbound {
	const struct cp_config *cfg;
	struct store *store;
	unsigned long batches;		/* taken so far (store_release_pages) */
	const struct tmplset *templates;
	unsigned char token_key[64];
	size_t token_keylen;
	struct pgp *pgp[MAX_WORKERS];
	int workers;
	int sessions;			/* SMTP sessions at once */
	struct flight *flights;		/* sessions + 1: see outbound_run */
	struct key_cache kc;
	char *smtp_password;
	struct relay_settings relay;
	int journal_fd;			/* STORE/sending.journal, or -1 */
};

/* One message to one recipient, prepared by the main thread. */
struct job {
	struct delivery *record;	/* borrowed: main thread only */
	size_t rcpt;			/* its recipient entry: record->rcpts[rcpt] */
	json_t *notice_ctx;		/* owned: no event data, ever */
	json_t *full_ctx;		/* owned, NULL for notices */
	const char *locale;		/* borrowed from the patient */
	const char *tz;			/* idem: the patient's zone, or NULL */
	const char *type;
	char to[256];
	char fpr[PGP_FPR_SIZE + 8];
	int encrypt;
	int64_t now;
	char message_id[160];
	char reply_to[160];
	char verp[160];
	char list_unsubscribe[640];
	int one_click;			/* List-Unsubscribe-Post too */
	char list_id[160];
	char feedback_id[200];
	char in_reply_to[256];		/* "<id>" or "": internal replies only */
	int auto_replied;		/* Auto-Submitted: auto-replied */
	/* digests (fold): a job folded into another's message has leader
	 * = 1 + that job's index and is neither composed nor sent; the
	 * leader's message carries its items (nfolded of the others) */
	size_t leader;
	size_t nfolded;
	json_t *items;			/* owned: the items' full contexts, the
					   leader's first (encrypted digests) */
	struct job **members;		/* owned: the jobs of items[1..], in
					   order */
	int item_failed;		/* its item could not be rendered: it
					   fails, the digest goes without it */
	int unfoldable;			/* its full template fails: alone */
	char item_reason[300];
	char *journal_all;		/* owned: the journal lines of the leader
					   and every job folded into it */
	/* results */
	struct buf msg;
	int rc;
	char reason[384];
	int fell_back;			/* wanted encryption, sent a notice */
	int defer;			/* the clinic's key failed: not sent */
	struct relay_msg rm;
	char journal[STORE_ID_MAX + 64];	/* "EVENT\tN\tMODE\tREF\n" */
};

struct pool {
	struct outbound *ob;
	struct job *jobs;
	size_t n;
	size_t next;
	pthread_mutex_t lock;
};

/*
 * One taken batch on its way: its records, jobs and patient cache, and
 * the messages handed to the relay. The sender thread reads only msgs
 * (and the job buffers they point into); every JSON value stays with
 * the main thread.
 */
struct flight {
	struct delivery_list batch;	/* owned: the taken records */
	json_t *patients;		/* owned: the batch's patient cache */
	struct job *jobs;
	size_t njobs;
	struct relay_msg *msgs;
	size_t nmsgs;
	const struct relay_settings *relay;
	pthread_t tid;
	int threaded;			/* tid runs flight_send */
	int send_rc;
	struct cp_error serr;
	struct audit_event *audit;	/* owned: the sends to record */
	size_t naudit;
};

/* thread_unhex - a delivery record's "thread" (20 hex digits) as bytes. */
static int
thread_unhex(const char *hex, uint8_t thread[TOKEN_THREAD_BYTES])
{
	if (hex == NULL || strlen(hex) != 2 * TOKEN_THREAD_BYTES ||
	    strspn(hex, "0123456789abcdefABCDEF") != 2 * TOKEN_THREAD_BYTES)
		return -EINVAL;
	for (size_t i = 0; i < TOKEN_THREAD_BYTES; i++)
		sscanf(hex + 2 * i, "%2hhx", &thread[i]);
	return 0;
}

int
outbound_message_id(const void *key, size_t keylen, const char *thread_hex,
		    size_t rcpt_index, const char *domain, char *out,
		    size_t outlen)
{
	uint8_t thread[TOKEN_THREAD_BYTES];
	char hex[2 * TOKEN_THREAD_BYTES + 1], tag[TOKEN_TAG_SIZE];
	int r;

	r = thread_unhex(thread_hex, thread);
	if (r < 0)
		return r;
	r = token_rcpt_tag(key, keylen, TOKEN_LABEL_MESSAGE_ID, thread, rcpt_index,
			   tag);
	if (r < 0)
		return r;
	cp_hex(thread, sizeof(thread), hex);
	return cp_snprintf_ok(out, outlen, "<%s.r%zu.%s@%s>", hex, rcpt_index, tag,
			      domain ? domain : "carepost.invalid");
}

static const char *
domain_of(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;

	return at ? at + 1 : NULL;
}

/* message_id_domain - [portal] message_id_domain, else the From's. */
static const char *
message_id_domain(const struct cp_config *cfg)
{
	return cfg->message_id_domain ? cfg->message_id_domain :
	       domain_of(cfg->from_address);
}

/*
 * The sending journal (store.h): each message the relay accepts is a line
 * "EVENT\tN\tMODE\tREF" (journal_line) in STORE/sending.journal at
 * once, so that a kill mid-session duplicates at most the one message per
 * session whose 2xx had arrived but whose line had not been written. The
 * file is emptied after every run whose batches were all recorded.
 */
static int
journal_open(const struct cp_config *cfg)
{
	struct cp_error err;
	int fd;

	cp_error_clear(&err);
	fd = store_journal_open(cfg->store_path, &err);
	if (fd < 0)
		log_warning("%s: a crash mid-batch will resend the whole batch", err.text);
	return fd;
}

/* relay's accepted callback, on a sender thread: one line, one write. */
static void
journal_accepted(void *arg, const struct relay_msg *m)
{
	const struct outbound *ob = arg;
	const char *line = m->user;

	store_journal_append(ob->journal_fd, line);
}

/*
 * journal_line - "EVENT\tN\tMODE\tREF\n" for job j: N its index among the
 * recipients (which names its Message-ID), MODE "e" (encrypted) or "n",
 * REF the recipient's reference ("patient", "proxy:1", "staff:0"), which
 * recovery checks so that a changed recipient list is never taken for
 * proof of delivery. Nothing is written for an id or ref that could not
 * be read back unambiguously (that message would simply go again).
 */
static struct delivery_rcpt *
job_rcpt(struct job *j)
{
	return &j->record->rcpts[j->rcpt];
}

static void
journal_line(struct job *j)
{
	const char *id = j->record->id, *ref = job_rcpt(j)->ref;

	j->journal[0] = '\0';
	if (!id_valid(id) || !id_valid(ref))
		return;
	if ((size_t)snprintf(j->journal, sizeof(j->journal), "%s\t%zu\t%c\t%s\n",
			     id, j->rcpt, j->encrypt ? 'e' : 'n', ref) >= sizeof(j->journal))
		j->journal[0] = '\0';
}

int
outbound_new(const struct cp_config *cfg, struct store *store,
	     const struct tmplset *templates, const void *token_key,
	     size_t token_keylen, struct outbound **out, struct cp_error *err)
{
	struct outbound *ob;
	int i, r;

	if (token_keylen < 16 || token_keylen > sizeof(ob->token_key))
		return cp_error_set(err, -EINVAL,
			"token key: expected 16 to 64 bytes");
	if (cfg->from_address == NULL || !mime_addr_valid(cfg->from_address))
		return cp_error_set(err, -EINVAL, "[portal] from_address: expected an address");
	if (cfg->reply_domain == NULL || cfg->bounce_domain == NULL)
		return cp_error_set(err, -EINVAL,
			"[portal] reply_domain and bounce_domain must be set");
	if (cfg->digest_window > 0 && templates != NULL &&
	    !tmplset_has(templates, TMPLSET_OPTIONAL))
		return cp_error_set(err, -ENOENT, "[delivery] digest_window: the "
				    "templates of %s/%s lack digest.full.mustache "
				    "or digest.notice.mustache", cfg->templates_dir,
				    cfg->default_locale);
	ob = calloc(1, sizeof(*ob));
	if (ob == NULL)
		return cp_error_set(err, -ENOMEM, "outbound: out of memory");
	ob->journal_fd = -1;
	ob->cfg = cfg;
	ob->store = store;
	ob->templates = templates;
	memcpy(ob->token_key, token_key, token_keylen);
	ob->token_keylen = token_keylen;
	ob->sessions = cfg->smtp_sessions < 1 ? 1 :
		       cfg->smtp_sessions > MAX_SESSIONS ? MAX_SESSIONS :
		       cfg->smtp_sessions;
	ob->kc.results = json_object();
	ob->flights = calloc((size_t)ob->sessions + 1, sizeof(*ob->flights));
	if (ob->kc.results == NULL || ob->flights == NULL) {
		outbound_free(ob);
		return cp_error_set(err, -ENOMEM, "outbound: out of memory");
	}
	ob->workers = cfg->gpg_workers < 1 ? 1 :
		      cfg->gpg_workers > MAX_WORKERS ? MAX_WORKERS : cfg->gpg_workers;
	if (cfg->gpg_clinic_key) {
		/* The first context checks the clinic key; the others copy it. */
		for (i = 0; i < ob->workers; i++) {
			r = i == 0 ? pgp_new(cfg->gpg_home, cfg->gpg_clinic_key,
					     &ob->pgp[0], err)
				   : pgp_dup(ob->pgp[0], &ob->pgp[i], err);
			if (r < 0) {
				outbound_free(ob);
				return r;
			}
		}
		/* Each worker's gpg in a helper process of its own. */
		for (i = 0; i < ob->workers; i++) {
			struct cp_error herr;

			cp_error_clear(&herr);
			if (pgp_offload(ob->pgp[i], &herr) < 0)
				log_warning("outbound: %s: gpg runs in-process",
					    herr.text);
		}
	}
	if (cfg->smtp_user && cfg->smtp_password_file) {
		r = config_read_secret(cfg->smtp_password_file, 4096,
				       &ob->smtp_password, NULL, err);
		if (r < 0) {
			outbound_free(ob);
			return r;
		}
	}
	ob->relay.server = cfg->smtp_server;
	ob->relay.helo = cfg->smtp_helo;
	ob->relay.starttls = cfg->smtp_starttls;
	ob->relay.ca_file = cfg->smtp_ca_file;
	ob->relay.user = cfg->smtp_user;
	ob->relay.password = ob->smtp_password;
	ob->relay.timeout = cfg->smtp_timeout;
	ob->relay.accepted = journal_accepted;
	ob->relay.accepted_arg = ob;
	ob->journal_fd = journal_open(cfg);
	*out = ob;
	return 0;
}

void
outbound_free(struct outbound *ob)
{
	int i;

	if (ob == NULL)
		return;
	for (i = 0; i < MAX_WORKERS; i++)
		pgp_free(ob->pgp[i]);
	json_decref(ob->kc.results);
	free(ob->flights);
	if (ob->journal_fd >= 0)
		close(ob->journal_fd);
	if (ob->smtp_password) {
		explicit_bzero(ob->smtp_password, strlen(ob->smtp_password));
		free(ob->smtp_password);
	}
	explicit_bzero(ob->token_key, sizeof(ob->token_key));
	free(ob);
}

/* ---- composing (worker threads) ---- */

static int
common_headers(struct buf *b, const struct cp_config *cfg, struct job *j,
	       const char *subject)
{
	char date[64];
	int r = 0;

	mime_date(j->now, date);
	r = r < 0 ? r : mime_address(b, "From", cfg->from_name, cfg->from_address);
	r = r < 0 ? r : mime_address(b, "To", NULL, j->to);
	r = r < 0 ? r : mime_header(b, "Subject", subject);
	r = r < 0 ? r : mime_header(b, "Date", date);
	r = r < 0 ? r : mime_header(b, "Message-ID", j->message_id);
	return r;
}

/*
 * clinic_key_down - after an encryption failed: 1 when it is the clinic's
 * own secret key that cannot be used (gpg-agent gone, the key missing),
 * which the patient's next message should not pay for with a notice in
 * place of the full text: the job waits, with j->reason, and is retried.
 */
static int
clinic_key_down(struct pgp *pgp, const struct cp_config *cfg, struct job *j)
{
	struct cp_error kerr;

	cp_error_clear(&kerr);
	if (pgp_secret_available(pgp, cfg->gpg_clinic_key, &kerr) == 0)
		return 0;
	snprintf(j->reason, sizeof(j->reason), "clinic key unusable, deferred: %s",
		 kerr.text);
	return 1;
}

/* trim_partial_utf8 - s cut before its first byte that starts no
 * well-formed sequence (what a length cap left of a character). */
static void
trim_partial_utf8(char *s)
{
	size_t i = 0, n = strlen(s), k;

	while (i < n && (k = cp_utf8_seq_len(s + i, n - i)) > 0)
		i += k;
	s[i] = '\0';
}

/* The appointment types that carry a calendar entry, and how. */
static int
appointment_method(const char *type, enum ical_method *m)
{
	if (type == NULL)
		return 0;
	if (strcmp(type, "appointment_scheduled") == 0 ||
	    strcmp(type, "appointment_reminder") == 0) {
		*m = ICAL_PUBLISH;
		return 1;
	}
	if (strcmp(type, "appointment_cancelled") == 0) {
		*m = ICAL_CANCEL;
		return 1;
	}
	return 0;
}

/*
 * calendar_part - the RFC 5545 entry of an encrypted appointment message
 * into ics: 1 made, 0 none (not an appointment; no "start" that reads,
 * or one past any calendar; no "appointment_id"; a time ical_write
 * refuses), < 0 -ENOMEM. Its UID is a tag of appointment_id under the
 * token key (TOKEN_LABEL_CALENDAR) at the From domain, so that the
 * scheduled, reminded and cancelled mail of one appointment name one
 * entry; a cancellation's SEQUENCE is one above the data's "sequence".
 */
static int
calendar_part(const struct outbound *ob, const struct job *j, struct buf *ics,
	      enum ical_method *method)
{
	const struct cp_config *cfg = ob->cfg;
	json_t *data = json_object_get(j->full_ctx, "data");
	const char *appt = json_string_value(json_object_get(data, "appointment_id"));
	const char *provider = json_string_value(json_object_get(data, "provider"));
	const char *at = cfg->from_address ? strrchr(cfg->from_address, '@') : NULL;
	json_t *dur = json_object_get(data, "duration_minutes");
	json_t *seq = json_object_get(data, "sequence");
	long long minutes = json_is_integer(dur) ? json_integer_value(dur) : 30;
	char uid[128], tag[TOKEN_TAG_SIZE], summary[512];
	struct policy_zone zs, ze;
	struct ical_event e;
	int r;
	int64_t start;

	if (!appointment_method(j->type, method) || !json_is_object(data) ||
	    (start = event_time(data, "start")) <= 0 || at == NULL ||
	    start > ICAL_TIME_MAX - 2 * 86400)
		return 0;		/* none, unreadable, or past any calendar */
	if (appt == NULL)
		return 0;		/* nothing names the entry: one per
					   message would be duplicates */
	if (minutes < 1 || minutes > 24 * 60)
		minutes = 30;
	/* keyed: a synced calendar shows the UID, never the portal's id */
	if (token_tag(ob->token_key, ob->token_keylen, TOKEN_LABEL_CALENDAR, appt,
		      strlen(appt), tag) < 0)
		return 0;
	snprintf(uid, sizeof(uid), "appt-%s%s", tag, at);
	if (provider != NULL)
		snprintf(summary, sizeof(summary), j->locale && strcmp(j->locale, "es") == 0 ?
			 "Cita con %.400s" : "Appointment with %.400s", provider);
	else
		snprintf(summary, sizeof(summary), j->locale && strcmp(j->locale, "es") == 0 ?
			 "Cita en %.400s" : "Appointment at %.400s",
			 cfg->clinic_name ? cfg->clinic_name : "the clinic");
	trim_partial_utf8(summary);	/* a cut never splits a character */
	policy_zone_at(start, j->tz, cfg->default_tz, &zs);
	policy_zone_at(start + minutes * 60, j->tz, cfg->default_tz, &ze);
	e = (struct ical_event) {
		/* the patient's zone, unless it changes during the visit
		 * (then UTC: one rule per entry) */
		.tzid = zs.offset == ze.offset && !(zs.offset == 0 &&
			(strcmp(zs.abbr, "UTC") == 0 || strcmp(zs.abbr, "GMT") == 0)) ?
			zs.zone : NULL,
		.tz_offset = zs.offset, .tz_abbr = zs.abbr,
		.method = *method, .uid = uid,
		.sequence = (json_is_integer(seq) && json_integer_value(seq) > 0 &&
			     json_integer_value(seq) < 2147483647 ?
			     json_integer_value(seq) : 0) + (*method == ICAL_CANCEL),
		.stamp = j->now, .start = start, .end = start + minutes * 60,
		.summary = summary,
		.location = json_string_value(json_object_get(data, "location")),
		.organizer = cfg->from_address, .organizer_name = cfg->clinic_name,
		.attendee = j->to,
	};
	r = ical_write(ics, &e);
	return r == -ENOMEM ? -ENOMEM : r < 0 ? 0 : 1;	/* a time out of range: none */
}

/*
 * digest_context - the full context of a digest: the leader's (greeting,
 * recipient, patient), "count" and "items", each item's full template
 * rendered (subject and body, without its greeting and footer: the
 * items' contexts say "in_digest") in the order they came. An item whose
 * template fails is left out and its job marked (item_failed: it fails
 * alone); NULL when none is left, or on a failure, said in j->reason.
 */
static json_t *
digest_context(struct outbound *ob, struct job *j)
{
	json_t *ctx = json_copy(j->full_ctx), *rendered = json_array(), *item;
	size_t i;

	if (ctx == NULL || rendered == NULL)
		goto nomem;
	json_array_foreach(j->items, i, item) {
		_cleanup_buf_ struct buf subj = BUF_INIT, body = BUF_INIT;
		const char *type = json_string_value(json_object_get(
					json_object_get(item, "event"), "type"));
		struct cp_error err;

		if (type == NULL || tmplset_render(ob->templates, j->locale, type,
						   TMPL_FULL, item, &subj, &body,
						   &err) < 0) {
			struct job *who = i == 0 ? j : j->members[i - 1];

			who->item_failed = 1;
			snprintf(who->item_reason, sizeof(who->item_reason),
				 "full template: %s", type ? err.text : "no type");
			continue;
		}
		/* the body without the blank lines its greeting's and its
		 * footer's absence left */
		size_t start = 0;

		while (body.len > 0 && body.data[body.len - 1] == '\n')
			body.data[--body.len] = '\0';
		while (start < body.len && body.data[start] == '\n')
			start++;
		if (json_array_append_new(rendered, json_pack("{s:s, s:s}",
				"subject", subj.data ? subj.data : "",
				"body", body.data ? body.data + start : "")) < 0)
			goto nomem;
	}
	if (json_array_size(rendered) == 0) {
		snprintf(j->reason, sizeof(j->reason), "%s", j->item_reason);
		json_decref(ctx);
		json_decref(rendered);
		return NULL;
	}
	json_object_set_new(ctx, "count", json_integer((json_int_t)json_array_size(rendered)));
	json_object_set_new(ctx, "several", json_boolean(json_array_size(rendered) > 1));
	json_object_set_new(ctx, "items", rendered);
	return ctx;
nomem:
	json_decref(ctx);
	json_decref(rendered);
	snprintf(j->reason, sizeof(j->reason), "digest: out of memory");
	return NULL;
}

static int
compose(struct outbound *ob, struct pgp *pgp, struct job *j)
{
	const struct cp_config *cfg = ob->cfg;
	_cleanup_buf_ struct buf nsubj = BUF_INIT, nbody = BUF_INIT;
	_cleanup_buf_ struct buf fsubj = BUF_INIT, fbody = BUF_INIT;
	_cleanup_buf_ struct buf inner = BUF_INIT, entity = BUF_INIT, ics = BUF_INIT;
	enum ical_method method = ICAL_PUBLISH;
	struct cp_error err;
	struct buf *b = &j->msg;
	char boundary[MIME_BOUNDARY_SIZE];
	int r;

	const char *type = j->nfolded > 0 ? "digest" : j->type;

	r = tmplset_render(ob->templates, j->locale, type, TMPL_NOTICE,
			   j->notice_ctx, &nsubj, &nbody, &err);
	if (r < 0) {
		snprintf(j->reason, sizeof(j->reason), "notice template: %s", err.text);
		return r;
	}
	if (j->encrypt) {
		json_t *dctx = NULL;

		if (j->nfolded > 0 && (dctx = digest_context(ob, j)) == NULL)
			return -EINVAL;
		r = tmplset_render(ob->templates, j->locale, type, TMPL_FULL,
				   dctx ? dctx : j->full_ctx, &fsubj, &fbody, &err);
		json_decref(dctx);
		if (r < 0) {
			snprintf(j->reason, sizeof(j->reason), "full template: %s", err.text);
			return r;
		}
		mime_boundary(boundary);
		r = buf_printf(&inner, "Content-Type: multipart/mixed; boundary=\"%s\";\r\n"
			       " protected-headers=\"v1\"\r\n", boundary);
		r = r < 0 ? r : common_headers(&inner, cfg, j, fsubj.data ? fsubj.data : "");
		r = r < 0 ? r : buf_printf(&inner, "\r\n--%s\r\n", boundary);
		r = r < 0 ? r : mime_text_part(&inner, fbody.data ? fbody.data : "", fbody.len);
		if (r >= 0 && j->nfolded == 0 &&
		    (r = calendar_part(ob, j, &ics, &method)) > 0) {
			char ctype[96];

			snprintf(ctype, sizeof(ctype), "text/calendar; charset=utf-8; "
				 "method=%s", method == ICAL_CANCEL ? "CANCEL" : "PUBLISH");
			r = buf_printf(&inner, "\r\n--%s\r\n", boundary);
			r = r < 0 ? r : mime_text_part_as(&inner, ctype, "attachment; "
							   "filename=\"appointment.ics\"",
							   ics.data, ics.len);
		}
		r = r < 0 ? r : buf_printf(&inner, "\r\n--%s--\r\n", boundary);
		if (r < 0) {
			snprintf(j->reason, sizeof(j->reason), "building MIME: %s", strerror(-r));
			return r;
		}
		r = pgp_mime_encrypt(pgp, j->fpr, inner.data, inner.len, &entity, &err);
		/* The clinic's key failing defers. When it answers now, it may
		 * have just come back (gpg-agent restarted): once more, and
		 * defer if it fails again with the clinic's key down. A notice
		 * only when both tries failed with the clinic's key usable
		 * after each: then it is the patient's key. */
		if (r < 0 && clinic_key_down(pgp, cfg, j)) {
			j->defer = 1;
			return 0;
		}
		if (r < 0)
			r = pgp_mime_encrypt(pgp, j->fpr, inner.data, inner.len,
					     &entity, &err);
		if (r < 0 && clinic_key_down(pgp, cfg, j)) {
			j->defer = 1;
			return 0;
		}
		if (r < 0) {
			/* The key went bad between check and use: a notice instead. */
			snprintf(j->reason, sizeof(j->reason),
				 "encryption failed (%s): sent a notice", err.text);
			j->encrypt = 0;
			j->fell_back = 1;
		}
	}
	r = common_headers(b, cfg, j, nsubj.data ? nsubj.data : "");
	r = r < 0 ? r : mime_header(b, "Auto-Submitted",
				    j->auto_replied ? "auto-replied" : "auto-generated");
	if (r == 0 && j->in_reply_to[0]) {
		r = mime_header(b, "In-Reply-To", j->in_reply_to);
		r = r < 0 ? r : mime_header(b, "References", j->in_reply_to);
	}
	r = r < 0 ? r : mime_header(b, "Reply-To", j->reply_to);
	if (r == 0 && j->list_unsubscribe[0])
		r = mime_header(b, "List-Unsubscribe", j->list_unsubscribe);
	if (r == 0 && j->one_click)
		r = mime_header(b, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
	if (r == 0 && j->list_id[0])
		r = mime_header(b, "List-Id", j->list_id);
	if (r == 0 && j->feedback_id[0])
		r = mime_header(b, "Feedback-ID", j->feedback_id);
	r = r < 0 ? r : mime_header(b, "MIME-Version", "1.0");
	if (r == 0 && j->encrypt)
		r = buf_append(b, entity.data, entity.len);
	else if (r == 0)
		r = mime_text_part(b, nbody.data ? nbody.data : "", nbody.len);
	if (r < 0)
		snprintf(j->reason, sizeof(j->reason), "building message: %s", strerror(-r));
	return r;
}

static void *
worker(void *arg)
{
	struct pool *p = ((struct pool **)arg)[0];
	struct pgp *pgp = ((struct pgp **)arg)[1];

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&p->lock);
		j = p->next < p->n ? &p->jobs[p->next++] : NULL;
		pthread_mutex_unlock(&p->lock);
		if (j == NULL)
			return NULL;
		if (j->leader == 0)	/* a folded job goes in its leader's */
			j->rc = compose(p->ob, pgp, j);
	}
}

static void
compose_all(struct outbound *ob, struct job *jobs, size_t n)
{
	struct pool p = { ob, jobs, n, 0, PTHREAD_MUTEX_INITIALIZER };
	pthread_t tid[MAX_WORKERS];
	void *args[MAX_WORKERS][2];
	int i, started = 0, want = ob->workers;
	size_t k, encrypted = 0;

	for (k = 0; k < n; k++)
		encrypted += jobs[k].encrypt;
	if (encrypted < 2 || ob->pgp[1] == NULL)
		want = 1;
	for (i = 1; i < want; i++) {
		args[i][0] = &p;
		args[i][1] = ob->pgp[i];
		if (pthread_create(&tid[i], NULL, worker, args[i]) != 0)
			break;
		started++;
	}
	args[0][0] = &p;
	args[0][1] = ob->pgp[0];
	worker(args[0]);
	for (i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&p.lock);
}

/* ---- preparing (main thread) ---- */

static json_t *
notice_context(const struct cp_config *cfg, int is_proxy, int unsubscribe)
{
	/* Only these four keys: no template edit can reach event data. */
	return json_pack("{s:s, s:s, s:b, s:b}",
			 "clinic_name", cfg->clinic_name ? cfg->clinic_name : "",
			 "portal_url", cfg->portal_url ? cfg->portal_url : "",
			 "is_proxy", is_proxy, "unsubscribe", unsubscribe);
}

/*
 * internal_context - an internal record's notice context: the four keys
 * plus its routing facts, "urgent" (a boolean) and "department" (a
 * configured name), and for a staff alert held for the end of its
 * window (routing.alert_window) "held" (a boolean), "count" (how many
 * filed messages it tells of, at least 1) and "several" (count > 1, for
 * the plural). None is event data or PHI; the record's "data" (the
 * patient's Message-ID, for In-Reply-To) never reaches a template.
 */
static json_t *
internal_context(const struct cp_config *cfg, const struct delivery *d, int is_proxy)
{
	json_t *ctx = notice_context(cfg, is_proxy, 0);
	long long count = d->has_count && d->count > 1 ? d->count : 1;

	json_object_set_new(ctx, "urgent", json_boolean(d->urgent == 1));
	json_object_set_new(ctx, "department", json_string(d->department ? d->department :
			    cfg->default_department ? cfg->default_department : "general"));
	json_object_set_new(ctx, "held", json_boolean(d->held == 1));
	json_object_set_new(ctx, "count", json_integer((json_int_t)count));
	json_object_set_new(ctx, "several", json_boolean(count > 1));
	return ctx;
}

/* msgid_header_safe - 1 if id can go between <> in a header as it is. */
static int
msgid_header_safe(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > 240 || strchr(id, '@') == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (id[i] <= ' ' || id[i] >= 127 || strchr("<>()\\\",;[]", id[i]))
			return 0;
	return 1;
}

/*
 * resolve_rcpt - a recipient entry's address: staff recipients of an
 * internal record carry their address ("ref":"staff:N","address"); the
 * others are resolved in the patient record.
 */
static int
resolve_rcpt(json_t *patient, const struct delivery_rcpt *rc, struct policy_rcpt *pr)
{
	if (rc->ref && strncmp(rc->ref, "staff:", 6) == 0) {
		memset(pr, 0, sizeof(*pr));
		pr->address = rc->address;
		return rc->address ? 0 : -ENOENT;
	}
	return rc->ref ? policy_resolve(patient, rc->ref, pr) : -EINVAL;
}

static json_t *
full_context(const struct cp_config *cfg, const struct delivery *d, json_t *patient,
	     const struct policy_rcpt *pr, int unsubscribe)
{
	const char *pname = json_string_value(json_object_get(patient, "name"));
	char first[128] = "";
	json_t *ctx;

	if (pname) {
		size_t n = strcspn(pname, " ");

		if (n >= sizeof(first))
			n = sizeof(first) - 1;
		memcpy(first, pname, n);
		first[n] = '\0';
	}
	ctx = notice_context(cfg, pr->is_proxy, unsubscribe);
	json_object_set_new(ctx, "recipient", json_pack("{s:s}", "name",
			    pr->name ? pr->name : (pname ? pname : "")));
	json_object_set_new(ctx, "patient", json_pack("{s:s, s:s}",
			    "name", pname ? pname : "", "first_name", first));
	json_object_set_new(ctx, "event", json_pack("{s:s, s:s, s:s, s:b}",
			    "id", d->id, "type", d->type ? d->type : "",
			    "priority", priority_name(d->priority) ?: "normal",
			    "high", d->priority == PRIORITY_HIGH));
	json_object_set_new(ctx, "data", d->data ? json_deep_copy(d->data) : json_object());
	return ctx;
}

/*
 * list_headers - what subscription mail carries (RFC 2369, 2919, 8058):
 * List-Unsubscribe "<HTTPS-BASE/UNSUB-TOKEN>, <mailto:LOCAL+TOKEN@DOMAIN
 * ?subject=unsubscribe>" (the HTTPS URI, and List-Unsubscribe-Post, when
 * [portal] unsubscribe_url is set; the mailto when unsubscribe_address
 * is), and List-Id "<CATEGORY.DOMAIN>".
 */
static void
list_headers(const struct outbound *ob, const struct cp_config *cfg,
	     const char *token, const uint8_t thread[TOKEN_THREAD_BYTES],
	     size_t rcpt, const char *category, struct job *j)
{
	const char *addr = cfg->unsubscribe_address;
	const char *at = addr ? strrchr(addr, '@') : NULL;
	char ut[UNSUB_TOKEN_SIZE], mailto[320] = "";

	if (at != NULL)
		snprintf(mailto, sizeof(mailto), "<mailto:%.*s+%s%s?subject=unsubscribe>",
			 (int)(at - addr), addr, token, at);
	if (cfg->unsubscribe_url != NULL &&
	    unsub_token(ob->token_key, ob->token_keylen, thread, rcpt, category, ut) == 0 &&
	    cp_snprintf_ok(j->list_unsubscribe, sizeof(j->list_unsubscribe),
			   "<%s%s>%s%s", cfg->unsubscribe_url, ut,
			   mailto[0] ? ", " : "", mailto) == 0)
		j->one_click = 1;
	else
		cp_strlcpy(j->list_unsubscribe, mailto, sizeof(j->list_unsubscribe));
	snprintf(j->list_id, sizeof(j->list_id), "<%s.%s>", category,
		 message_id_domain(cfg));
}

/* proxy_opted_out - whether proxy ref of patient opted out of t. */
static int
proxy_opted_out(json_t *patient, const char *ref, const struct event_type *t)
{
	char *end;
	unsigned long n;

	if (strncmp(ref, "proxy:", 6) != 0)
		return 0;
	n = strtoul(ref + 6, &end, 10);
	if (*end != '\0')
		return 0;
	return event_opted_out(json_array_get(json_object_get(patient, "proxies"), n),
			       t) != NULL;
}

static int64_t
backoff(const struct cp_config *cfg, int64_t attempts)
{
	int64_t d = cfg->retry_base > 0 ? cfg->retry_base : 300;
	uint32_t rnd;

	while (attempts-- > 1 && d < cfg->retry_max)
		d *= 2;
	if (d > cfg->retry_max && cfg->retry_max > 0)
		d = cfg->retry_max;
	gcry_create_nonce(&rnd, sizeof(rnd));
	/* ±20% jitter so that a relay's recovery is not met by a stampede */
	return d + (int64_t)((double)d * 0.4 * ((double)rnd / 4294967295.0 - 0.5));
}

static int
key_usable(struct outbound *ob, struct key_cache *kc, const char *fpr,
	   char *why, size_t whylen)
{
	json_t *v = json_object_get(kc->results, fpr);
	struct cp_error err;
	int r;

	if (ob->pgp[0] == NULL) {
		cp_strlcpy(why, "no clinic key configured: sent a notice", whylen);
		return -ENOKEY;
	}
	if (v) {
		r = (int)json_integer_value(json_object_get(v, "rc"));
		cp_strlcpy(why, json_string_value(json_object_get(v, "why")) ?: "", whylen);
		return r;
	}
	cp_error_clear(&err);
	r = pgp_key_check(ob->pgp[0], fpr, &err);
	if (r < 0)
		snprintf(why, whylen, "recipient key unusable (%s): sent a notice", err.text);
	else
		why[0] = '\0';
	json_object_set_new(kc->results, fpr, json_pack("{s:i, s:s}", "rc", r, "why", why));
	return r;
}

/*
 * prepare - decide a record's fate, or add its jobs. Returns the number
 * of jobs added (0 when the record was decided here). A record that goes
 * to the relay counts an attempt here, and only then: a wait for quiet
 * hours or a decision without sending is no attempt.
 */
static size_t
prepare(struct outbound *ob, struct delivery *d, int64_t now, struct key_cache *kc,
	struct job *jobs, size_t room, json_t *patients,
	struct outbound_stats *st)
{
	const struct cp_config *cfg = ob->cfg;
	const char *id = d->id, *pid = d->patient, *type = d->type;
	const struct event_type *et = event_type_find(type);
	const char *cat;
	int64_t expires = d->expires_at;
	json_t *patient = NULL;
	char reason[384];
	uint8_t thread_bin[TOKEN_THREAD_BYTES];
	char token[TOKEN_SIZE];
	size_t i, added = 0;
	int chosen;

	if (expires && now >= expires) {
		delivery_set_state(d, DELIVERY_EXPIRED, "expired before it could be delivered", now);
		log_event(LOG_NOTICE, LOGID_SUPPRESSED, id, pid, "expired undelivered");
		st->expired++;
		return 0;
	}
	if (et == NULL || thread_unhex(d->thread, thread_bin) < 0) {
		delivery_set_state(d, DELIVERY_FAILED, "delivery record damaged: no type or thread", now);
		st->failed++;
		return 0;
	}
	/* The batch's patients are read once; jobs borrow from the cache. */
	patient = pid ? json_object_get(patients, pid) : NULL;
	if (patient == NULL && pid &&
	    store_get_json(ob->store, DB_PATIENTS, pid, &patient, NULL) == 0)
		json_object_set_new(patients, pid, patient);
	if (patient == NULL) {
		delivery_set_state(d, DELIVERY_FAILED, "unknown patient", now);
		log_event(LOG_WARNING, LOGID_FAILED, id, NULL, "failed: unknown patient");
		st->failed++;
		return 0;
	}
	if ((cat = event_opted_out(patient, et)) != NULL) {
		snprintf(reason, sizeof(reason), "patient opted out of %s", cat);
		delivery_set_state(d, DELIVERY_SUPPRESSED, reason, now);
		log_event(LOG_INFO, LOGID_SUPPRESSED, id, pid, "suppressed: opted out of %s",
			  cat);
		st->suppressed++;
		return 0;
	}
	chosen = d->nrcpts == 0;
	if (chosen &&
	    policy_recipients(patient, d, now, reason, sizeof(reason)) <= 0) {
		if (reason[0] == '\0')
			cp_strlcpy(reason, "out of memory choosing recipients", sizeof(reason));
		delivery_set_state(d, DELIVERY_SUPPRESSED, reason, now);
		log_event(LOG_INFO, LOGID_SUPPRESSED, id, pid, "suppressed: %s", reason);
		st->suppressed++;
		return 0;
	}
	if (d->priority != PRIORITY_HIGH) {
		/* The patient's zone, for proxies too (docs/store.md). */
		int64_t until = policy_quiet_until(now,
			json_string_value(json_object_get(patient, "tz")),
			cfg->default_tz, cfg->quiet_start, cfg->quiet_end);

		if (until > now) {
			/* an item held for a digest keeps saying so: it is
			 * not held again after the quiet hours */
			int held = d->reason && strstr(d->reason, DIGEST_HELD) != NULL;

			delivery_set_state(d, DELIVERY_QUEUED, held ?
					   "quiet hours in the recipient's time zone, "
					   "after being " DIGEST_HELD :
					   "quiet hours in the recipient's time zone", now);
			d->due = (time_t)until;
			/* Who receives it is decided at its first attempt: the
			 * patient may change before the quiet hours end. */
			if (chosen)
				delivery_drop_rcpts(d);
			st->rescheduled++;
			return 0;
		}
	}
	if (cfg->digest_window > 0 && d->priority != PRIORITY_HIGH &&
	    event_type_foldable(et) && d->attempts == 0 && chosen &&
	    !(d->reason && strstr(d->reason, DIGEST_HELD) != NULL)) {
		/* A window open for the patient and the category: held to
		 * its end, when the items go together (digest.h). Once
		 * only (an item held before goes at its window's end,
		 * whatever window is open then), never on a retry, never
		 * past the item's own expiry. */
		int64_t until = digest_until(ob->store, pid, et->category);

		if (until > now && (!expires || until < expires)) {
			delivery_set_state(d, DELIVERY_QUEUED, DIGEST_HELD, now);
			d->due = (time_t)until;
			if (chosen)
				delivery_drop_rcpts(d);
			st->held++;
			return 0;
		}
	}
	d->attempts++;

	if (token_make(ob->token_key, ob->token_keylen, thread_bin,
		       (expires ? expires : now) + cfg->token_ttl, token) < 0) {
		delivery_set_state(d, DELIVERY_DEFERRED, "cannot make a reply token", now);
		return 0;
	}

	for (i = 0; i < d->nrcpts; i++) {
		struct delivery_rcpt *rc = &d->rcpts[i];
		struct policy_rcpt pr;
		struct job *j;
		char why[384], verp_tag[TOKEN_TAG_SIZE];

		if (rc->state != RCPT_PENDING && rc->state != RCPT_DEFERRED)
			continue;
		if (resolve_rcpt(patient, rc, &pr) < 0 || !mime_addr_valid(pr.address)) {
			rcpt_set_state(rc, RCPT_FAILED, "recipient address gone or invalid");
			continue;
		}
		if (pr.is_proxy && proxy_opted_out(patient, rc->ref, et)) {
			/* unsubscribed since the recipients were chosen */
			rcpt_set_state(rc, RCPT_FAILED, "proxy opted out of the category");
			continue;
		}
		if (added >= room)
			break;		/* the rest waits for the next batch */
		j = &jobs[added];
		memset(j, 0, sizeof(*j));
		/* Both carry a tag only carepost can make, so that a delivery
		 * report must name a message carepost sent, to this recipient. */
		if (outbound_message_id(ob->token_key, ob->token_keylen, d->thread, i,
					message_id_domain(cfg), j->message_id,
					sizeof(j->message_id)) < 0 ||
		    token_rcpt_tag(ob->token_key, ob->token_keylen, TOKEN_LABEL_VERP,
				   thread_bin, i, verp_tag) < 0 ||
		    cp_snprintf_ok(j->verp, sizeof(j->verp), "bounce+%s.r%zu.%s@%s",
				   token, i, verp_tag, cfg->bounce_domain) < 0) {
			rcpt_set_state(rc, RCPT_DEFERRED, "cannot make a Message-ID or a VERP "
				       "address");
			continue;
		}
		added++;
		j->record = d;
		j->rcpt = i;
		j->now = now;
		j->type = type;
		j->locale = json_string_value(json_object_get(patient, "locale"));
		j->tz = json_string_value(json_object_get(patient, "tz"));
		cp_strlcpy(j->to, pr.address, sizeof(j->to));
		snprintf(j->reply_to, sizeof(j->reply_to), "<reply+%s@%s>", token,
			 cfg->reply_domain);
		if (et->unsubscribe)
			list_headers(ob, cfg, token, thread_bin, i, et->category, j);
		/* complaints aggregated per category and type (Gmail's
		 * feedback loop): no id of anyone */
		if (!et->internal && event_category_sensitive(et->category))
			snprintf(j->feedback_id, sizeof(j->feedback_id),
				 "sensitive:carepost:%s", message_id_domain(cfg));
		else if (!et->internal)
			snprintf(j->feedback_id, sizeof(j->feedback_id), "%s:%s:carepost:%s",
				 et->category, et->name, message_id_domain(cfg));
		if (et->internal) {
			/* Internal mail is always a notice, never encrypted. */
			const char *irt = delivery_in_reply_to(d);

			j->notice_ctx = internal_context(cfg, d, pr.is_proxy);
			/* answers to a reply (RFC 3834); the others are
			 * carepost's own: auto-generated */
			j->auto_replied = strcmp(type, "reply_ack") == 0 ||
					  strcmp(type, "form_incomplete") == 0;
			if (msgid_header_safe(irt))
				snprintf(j->in_reply_to, sizeof(j->in_reply_to), "<%s>", irt);
			continue;
		}
		j->notice_ctx = notice_context(cfg, pr.is_proxy, et->unsubscribe);
		if (pr.fpr && key_usable(ob, kc, pr.fpr, why, sizeof(why)) == 0) {
			j->encrypt = 1;
			cp_strlcpy(j->fpr, pr.fpr, sizeof(j->fpr));
			j->full_ctx = full_context(cfg, d, patient, &pr, et->unsubscribe);
		} else if (pr.fpr) {
			j->fell_back = 1;
			cp_strlcpy(j->reason, why, sizeof(j->reason));
		}
	}
	return added;
}

/* rcpt_sent - a recipient entry whose message the relay accepted. */
static void
rcpt_sent(struct delivery_rcpt *rc, int code, int64_t now, const char *message_id,
	  enum rcpt_mode mode)
{
	rcpt_set_state(rc, RCPT_SENT, NULL);
	record_set_str(&rc->reason, NULL);
	rc->code = code;
	rc->has_code = 1;
	rc->sent_at = (time_t)now;
	record_set_str(&rc->message_id, message_id);
	rc->mode = mode;
}

/* Record the outcome of one message in its recipient entry. */
static void
record_job(struct job *j, struct outbound_stats *st)
{
	struct delivery_rcpt *rc = job_rcpt(j);
	const char *id = j->record->id, *pid = j->record->patient;
	struct outbound_stats folded;

	if (j->item_failed) {
		/* its item could not be rendered: the digest went without it */
		rcpt_set_state(rc, RCPT_FAILED, j->item_reason);
		log_event(LOG_ERR, LOGID_FAILED, id, pid, "cannot compose: %s",
			  j->item_reason);
		st->failed++;
		return;
	}
	if (j->leader) {	/* its message was counted with its leader */
		memset(&folded, 0, sizeof(folded));
		st = &folded;
	}
	record_set_str(&rc->message_id, j->message_id);
	rc->mode = j->encrypt ? RCPT_ENCRYPTED : RCPT_NOTICE;
	if (j->to[0]) {			/* where it went: for its bounces */
		char h[POLICY_ADDRESS_HASH_SIZE];

		policy_address_hash(j->to, h);
		record_set_str(&rc->address_hash, h);
	}
	if (j->fell_back)
		record_set_str(&rc->note, j->reason);
	if (j->defer) {
		rcpt_set_state(rc, RCPT_DEFERRED, j->reason);
		st->deferred++;
		log_event(LOG_WARNING, LOGID_DEFERRED, id, pid, "%s", j->reason);
		return;
	}
	if (j->rc < 0) {
		/* Composition failed: a template or configuration fault. */
		rcpt_set_state(rc, RCPT_FAILED, j->reason);
		log_event(LOG_ERR, LOGID_FAILED, id, pid, "cannot compose: %s", j->reason);
		st->failed++;
		return;
	}
	rc->code = j->rm.code;
	rc->has_code = 1;
	switch (j->rm.outcome) {
	case RELAY_SENT:
		rcpt_sent(rc, j->rm.code, j->now, j->message_id, rc->mode);
		st->sent++;
		if (j->encrypt)
			st->encrypted++;
		else
			st->notices++;
		log_event(LOG_INFO, LOGID_SENT, id, pid, "sent %s to %s (%d)%s",
			  j->encrypt ? "encrypted message" : "notice", rc->ref, j->rm.code,
			  j->leader || j->nfolded ? " in a digest" : "");
		break;
	case RELAY_FAIL:
		rcpt_set_state(rc, RCPT_FAILED, j->rm.text);
		st->failed++;
		log_event(LOG_WARNING, LOGID_FAILED, id, pid, "rejected: %s", j->rm.text);
		break;
	default:
		rcpt_set_state(rc, RCPT_DEFERRED, j->rm.text[0] ? j->rm.text : "not attempted");
		st->deferred++;
		log_event(LOG_NOTICE, LOGID_DEFERRED, id, pid, "deferred: %s",
			  j->rm.text[0] ? j->rm.text : "not attempted");
		break;
	}
	if (j->rm.outcome != RELAY_SENT && relay_auth_refusal(j->rm.text)) {
		st->auth_refused++;
		log_event(LOG_ERR, LOGID_GENERIC, id, pid, "the relay refused a message "
			  "for the sender's authentication: check DKIM, SPF and DMARC "
			  "of the From domain (README, \"Reaching the inbox\"): %s",
			  j->rm.text);
	}
}

/* Settle a record's state from its recipients after a send. */
static void
settle(const struct cp_config *cfg, struct delivery *d, int64_t now,
       const char *session_error)
{
	size_t i, sent = 0, failed = 0, waiting = 0;
	const char *last = NULL;
	char reason[300];

	for (i = 0; i < d->nrcpts; i++) {
		const struct delivery_rcpt *rc = &d->rcpts[i];

		if (rc->state == RCPT_SENT) {
			sent++;
		} else if (rc->state == RCPT_FAILED) {
			failed++;
			last = rc->reason;
		} else {
			waiting++;
			last = rc->reason;
		}
	}
	d->updated = (time_t)now;
	if (waiting == 0) {
		if (sent > 0) {
			delivery_set_state(d, DELIVERY_SENT,
					   failed ? "some recipients failed" : NULL, now);
			if (!failed)
				record_set_str(&d->reason, NULL);
		} else {
			delivery_set_state(d, DELIVERY_FAILED,
					   last ? last : "no recipient accepted", now);
		}
		return;
	}
	snprintf(reason, sizeof(reason), "%s", session_error ? session_error :
		 last ? last : "deferred");
	if (now - d->created >= cfg->max_age) {
		char why[400];

		snprintf(why, sizeof(why), "gave up after %lld attempts: %s",
			 d->attempts, reason);
		delivery_set_state(d, sent ? DELIVERY_SENT : DELIVERY_FAILED, why, now);
		for (i = 0; i < d->nrcpts; i++)
			if (d->rcpts[i].state != RCPT_SENT)
				rcpt_set_state(&d->rcpts[i], RCPT_FAILED, why);
		log_event(LOG_WARNING, LOGID_FAILED, d->id, d->patient, "%s", why);
		return;
	}
	delivery_set_state(d, DELIVERY_DEFERRED, reason, now);
	d->due = (time_t)(now + backoff(cfg, d->attempts));
}

static void
flight_free(struct flight *f)
{
	size_t k;

	for (k = 0; k < f->njobs; k++) {
		buf_free(&f->jobs[k].msg);
		json_decref(f->jobs[k].notice_ctx);
		json_decref(f->jobs[k].full_ctx);
		json_decref(f->jobs[k].items);
		free(f->jobs[k].members);
		free(f->jobs[k].journal_all);
	}
	free(f->jobs);
	free(f->msgs);
	free(f->audit);
	json_decref(f->patients);
	delivery_list_free(&f->batch);
	memset(f, 0, sizeof(*f));
}

/*
 * flight_room - make room for n more jobs. The array grows as records
 * need it: reserving the most every record could need up front (a
 * patient and all proxies) would be nine times the usual size.
 */
static int
flight_room(struct flight *f, size_t *cap, size_t n)
{
	size_t want = f->njobs + n, newcap;
	struct job *jobs;

	if (want <= *cap)
		return 0;
	newcap = *cap ? *cap * 2 : 64;
	if (newcap < want)
		newcap = want;
	jobs = reallocarray(f->jobs, newcap, sizeof(*jobs));
	if (jobs == NULL)
		return -ENOMEM;
	f->jobs = jobs;
	*cap = newcap;
	return 0;
}

/*
 * same_digest - whether jobs a and b go to one recipient about one
 * patient's items of one foldable category, in the same form.
 */
static int
same_digest(const struct job *a, const struct job *b)
{
	const struct delivery *da = a->record, *db = b->record;

	return a->encrypt == b->encrypt && a->fell_back == b->fell_back &&
	       strcmp(a->to, b->to) == 0 && strcmp(a->fpr, b->fpr) == 0 &&
	       da->patient && db->patient && strcmp(da->patient, db->patient) == 0 &&
	       strcmp(job_rcpt((struct job *)a)->ref, job_rcpt((struct job *)b)->ref) == 0 &&
	       strcmp(event_type_find(a->type)->category,
		      event_type_find(b->type)->category) == 0;
}

/* foldable_job - a job a digest may carry (digest.h). */
static int
foldable_job(const struct outbound *ob, const struct job *j)
{
	return ob->cfg->digest_window > 0 && j->record->priority != PRIORITY_HIGH &&
	       event_type_foldable(event_type_find(j->type)) &&
	       job_rcpt((struct job *)j)->ref != NULL && j->rc == 0 && !j->unfoldable;
}

/*
 * check_items - an encrypted job whose full template does not render is
 * never folded: it goes (and fails) alone, and never leads a digest
 * (whose Message-ID, reply token and VERP are its leader's).
 */
static void
check_items(struct outbound *ob, struct job *jobs, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		_cleanup_buf_ struct buf subj = BUF_INIT, body = BUF_INIT;
		struct cp_error err;

		if (!jobs[k].encrypt || !foldable_job(ob, &jobs[k]))
			continue;
		if (tmplset_render(ob->templates, jobs[k].locale, jobs[k].type, TMPL_FULL,
				   jobs[k].full_ctx, &subj, &body, &err) < 0)
			jobs[k].unfoldable = 1;
	}
}

/*
 * fold - the batch's jobs that one digest carries: for each recipient,
 * patient and foldable category, the first job leads and the others are
 * folded into its message (one message, "digest" templates, the
 * leader's Message-ID in every item's record). The leader's contexts
 * get "count" and "several"; an encrypted one its items' full contexts,
 * each saying "in_digest". Nothing changes for a job alone.
 */
static int
fold(struct outbound *ob, struct job *jobs, size_t n)
{
	size_t k, m, i;

	check_items(ob, jobs, n);
	for (k = 0; k < n; k++) {
		struct job *l = &jobs[k];

		if (l->leader || !foldable_job(ob, l))
			continue;
		for (m = k + 1; m < n; m++)
			if (!jobs[m].leader && foldable_job(ob, &jobs[m]) &&
			    same_digest(l, &jobs[m])) {
				jobs[m].leader = k + 1;
				l->nfolded++;
			}
		if (l->nfolded == 0)
			continue;
		json_object_set_new(l->notice_ctx, "count",
				    json_integer((json_int_t)(l->nfolded + 1)));
		json_object_set_new(l->notice_ctx, "several", json_true());
		if ((l->members = calloc(l->nfolded, sizeof(*l->members))) == NULL)
			return -ENOMEM;
		for (m = k + 1, i = 0; m < n; m++)
			if (jobs[m].leader == k + 1)
				l->members[i++] = &jobs[m];
		if (!l->encrypt)
			continue;
		if ((l->items = json_array()) == NULL ||
		    json_array_append_new(l->items, json_copy(l->full_ctx)) < 0)
			return -ENOMEM;
		json_object_set_new(json_array_get(l->items, 0), "in_digest", json_true());
		for (i = 0; i < l->nfolded; i++) {
			json_object_set_new(l->members[i]->full_ctx, "in_digest", json_true());
			if (json_array_append(l->items, l->members[i]->full_ctx) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/*
 * journal_fold - the journal lines of a digest's leader: its own, then
 * one per job folded into it, each naming the leader's thread, index and
 * event ("EVENT\tN\tMODE\tREF\tTHREAD\tM\tLEADER"), from which recovery
 * makes the Message-ID the item went out in and the leader's "folded".
 */
static int
journal_fold(struct job *jobs, size_t n, size_t k)
{
	struct job *l = &jobs[k];
	struct buf b = BUF_INIT;
	int r = 0;

	if (l->journal[0] == '\0')
		return 0;
	if (!l->item_failed)
		r = buf_append(&b, l->journal, strlen(l->journal));
	for (size_t m = k + 1; r == 0 && m < n; m++) {
		struct job *f = &jobs[m];
		const char *id = f->record->id, *ref = job_rcpt(f)->ref;

		if (f->leader != k + 1 || f->item_failed || !id_valid(id) ||
		    !id_valid(ref) || !id_valid(l->record->id))
			continue;
		r = buf_printf(&b, "%s\t%zu\t%c\t%s\t%s\t%zu\t%s\n", id, f->rcpt,
			       l->encrypt ? 'e' : 'n', ref, l->record->thread, l->rcpt,
			       l->record->id);
	}
	if (r == 0 && (r = buf_append(&b, "", 1)) == 0) {
		l->journal_all = (char *)b.data;	/* taken over */
		return 0;
	}
	buf_free(&b);
	return r;
}

/* flight_compose - decide, prepare and compose a batch (takes it). */
static int
flight_compose(struct outbound *ob, struct delivery_list *batch, int64_t now,
	       struct outbound_stats *st, struct flight *f,
	       struct cp_error *err)
{
	size_t cap = 0, i, k;

	memset(f, 0, sizeof(*f));
	f->batch = *batch;
	memset(batch, 0, sizeof(*batch));
	f->relay = &ob->relay;
	f->patients = json_object();
	if (f->patients == NULL)
		goto nomem;
	for (i = 0; i < f->batch.n; i++) {
		struct delivery *d = &f->batch.items[i];
		size_t nr = d->nrcpts;
		size_t room = nr ? nr : PATIENT_MAX_PROXIES + 1;

		if (flight_room(f, &cap, room) < 0)
			goto nomem;
		f->njobs += prepare(ob, d, now, &ob->kc, f->jobs + f->njobs,
				    room, f->patients, st);
	}
	f->msgs = calloc(f->njobs ? f->njobs : 1, sizeof(*f->msgs));
	if (f->msgs == NULL || fold(ob, f->jobs, f->njobs) < 0)
		goto nomem;
	compose_all(ob, f->jobs, f->njobs);

	for (k = 0; k < f->njobs; k++) {
		struct job *j = &f->jobs[k];

		if (j->rc < 0 || j->defer || j->leader)
			continue;
		journal_line(j);
		if (j->nfolded > 0 && journal_fold(f->jobs, f->njobs, k) < 0)
			goto nomem;
		j->rm.user = j->journal_all ? j->journal_all : j->journal;
		j->rm.reverse_path = j->verp;
		j->rm.recipient = j->to;
		j->rm.data = j->msg.data;
		j->rm.len = j->msg.len;
		f->msgs[f->nmsgs++] = j->rm;
	}
	return 0;
nomem:
	/* The records stay leased: they are retried after SEND_LEASE. */
	flight_free(f);
	return cp_error_set(err, -ENOMEM, "outbound: out of memory");
}

static void *
flight_send(void *arg)
{
	struct flight *f = arg;

	cp_error_clear(&f->serr);
	f->send_rc = relay_send_batch(f->relay, f->msgs, f->nmsgs, &f->serr);
	return NULL;
}

/*
 * flight_send_start - open the batch's SMTP session in a thread of its
 * own, so that the main thread records earlier batches and takes and
 * composes the next one meanwhile. Without a thread it sends here.
 */
static void
flight_send_start(struct flight *f)
{
	if (f->nmsgs == 0)
		return;
	if (pthread_create(&f->tid, NULL, flight_send, f) == 0)
		f->threaded = 1;
	else
		flight_send(f);
}

static void
flight_send_wait(struct flight *f)
{
	if (f->threaded) {
		pthread_join(f->tid, NULL);
		f->threaded = 0;
	}
}

/*
 * audit_sent - an audit event (audit.h) for each message of the flight
 * the relay accepted, its strings borrowed from the jobs and records
 * (alive until flight_free): the event, the patient, the recipient as
 * the hash of its address, the key it was encrypted to, the reply code.
 */
static int
audit_sent(struct flight *f)
{
	size_t k;

	f->naudit = 0;
	if (f->njobs == 0)
		return 0;
	f->audit = calloc(f->njobs, sizeof(*f->audit));
	if (f->audit == NULL)
		return -ENOMEM;
	for (k = 0; k < f->njobs; k++) {
		struct job *j = &f->jobs[k];
		struct delivery_rcpt *rc = job_rcpt(j);
		struct audit_event *ev;

		if (j->rc < 0 || j->defer || j->item_failed || j->rm.outcome != RELAY_SENT)
			continue;
		ev = &f->audit[f->naudit++];
		ev->action = AUDIT_SENT;
		ev->actor = AUDIT_ACTOR_DAEMON;
		ev->event = j->record->id;
		ev->patient = j->record->patient;
		ev->recipient = rc->address_hash ? rc->address_hash : rc->ref;
		ev->key = j->encrypt && j->fpr[0] ? j->fpr : NULL;
		ev->relay = j->rm.code;
	}
	return 0;
}

/*
 * open_windows - after a flight's records are written: a digest window
 * (digest.h) for each patient and foldable category a message went out
 * about, digest_window from now. Its own transaction: a crash between the
 * two leaves a window unopened, and the next item goes at once.
 */
static void
open_windows(struct outbound *ob, struct flight *f, int64_t now,
	     struct outbound_stats *st)
{
	struct digest_window *w;
	struct cp_error err;
	size_t k, n = 0;

	if (ob->cfg->digest_window <= 0 || f->njobs == 0)
		return;
	w = calloc(f->njobs, sizeof(*w));
	if (w == NULL)
		return;
	for (k = 0; k < f->njobs; k++) {
		const struct job *j = &f->jobs[k];

		if (j->leader || j->rc < 0 || j->defer || j->rm.outcome != RELAY_SENT ||
		    !foldable_job(ob, j))
			continue;
		if (j->nfolded > 0)
			st->digests++;
		w[n].patient = j->record->patient;
		w[n].category = event_type_find(j->type)->category;
		w[n].until = now + ob->cfg->digest_window;
		n++;
	}
	cp_error_clear(&err);
	if (digest_open(ob->store, w, n, &err) < 0)
		log_event(LOG_WARNING, LOGID_GENERIC, NULL, NULL, "digest windows not "
			  "opened (the next items go at once): %s", err.text);
	free(w);
}

/*
 * flight_record - after its session: every outcome into the records,
 * then one transaction writes them back. Frees the flight.
 */
static int
flight_record(struct outbound *ob, struct flight *f, int64_t now,
	      struct outbound_stats *st, struct cp_error *err)
{
	const char *session_error = NULL;
	size_t i, k;
	int r;

	flight_send_wait(f);
	if (f->nmsgs > 0 && f->send_rc < 0) {
		session_error = f->serr.text;
		log_event(LOG_WARNING, LOGID_DEFERRED, NULL, NULL,
			  "relay session failed, %zu messages deferred: %s",
			  f->nmsgs, f->serr.text);
	}
	for (k = 0, i = 0; k < f->njobs; k++) {
		struct job *j = &f->jobs[k];

		if (j->leader) {
			/* folded: what became of its leader's message */
			const struct job *l = &f->jobs[j->leader - 1];

			j->rc = l->rc;
			j->defer = l->defer;
			j->encrypt = l->encrypt;
			j->fell_back = l->fell_back;
			cp_strlcpy(j->reason, l->reason, sizeof(j->reason));
			cp_strlcpy(j->message_id, l->message_id, sizeof(j->message_id));
			j->rm.outcome = l->rm.outcome;
			j->rm.code = l->rm.code;
			memcpy(j->rm.text, l->rm.text, sizeof(j->rm.text));
		} else if (j->rc >= 0 && !j->defer) {
			j->rm.outcome = f->msgs[i].outcome;
			j->rm.code = f->msgs[i].code;
			memcpy(j->rm.text, f->msgs[i].text, sizeof(j->rm.text));
			if (session_error && !j->rm.text[0])
				cp_strlcpy(j->rm.text, session_error, sizeof(j->rm.text));
			i++;
		}
		record_job(j, st);
	}
	for (i = 0; i < f->batch.n; i++)
		if (f->batch.items[i].state == DELIVERY_SENDING)
			settle(ob->cfg, &f->batch.items[i], now, session_error);
	/* A digest sent: its first item's entry names the others, so that
	 * a delivery report about it reaches every item (bouncemap.h). */
	for (k = 0; k < f->njobs; k++) {
		struct job *j = &f->jobs[k];
		struct buf ids = BUF_INIT;

		if (j->nfolded == 0 || j->rm.outcome != RELAY_SENT || j->rc < 0)
			continue;
		for (i = 0; i < j->nfolded; i++)
			if (!j->members[i]->item_failed &&
			    (buf_printf(&ids, "%s%s", ids.len ? " " : "",
					j->members[i]->record->id) < 0))
				break;
		if (ids.len > 0 && buf_append(&ids, "", 1) == 0)
			record_set_str(&job_rcpt(j)->folded, (char *)ids.data);
		buf_free(&ids);
	}
	/* A digest deferred is retried as one: its items at its leader's
	 * time (each settled with a backoff of its own). */
	for (k = 0; k < f->njobs; k++) {
		const struct job *j = &f->jobs[k];
		const struct delivery *l = j->leader ? f->jobs[j->leader - 1].record : NULL;

		if (l != NULL && l->state == DELIVERY_DEFERRED &&
		    j->record->state == DELIVERY_DEFERRED)
			j->record->due = l->due;
	}
	if ((r = audit_sent(f)) < 0) {
		flight_free(f);
		return cp_error_set(err, r, "audit: out of memory");
	}
	r = queue_update_audited(ob->store, f->batch.items, f->batch.n,
				 f->audit, f->naudit, err);
	if (r == 0)
		open_windows(ob, f, now, st);
	flight_free(f);
	return r;
}

/*
 * outbound_run - batches in a pipeline: while up to smtp.sessions batches
 * are on the wire (one SMTP session each, each in its own thread), the
 * main thread claims the next new events and takes and composes the
 * next batch; when a session slot is free it starts that batch's session
 * and records the outcomes of the batch whose session ended. Each batch
 * is leased durably before its session starts and its outcomes are
 * committed after it ends, in the order the batches were taken.
 */
/*
 * run - outbound_run with a time budget: no new batch is taken once
 * until_ms (monotonic; 0: none) has passed, and *cut says so (more may be
 * waiting). The batches in flight are always finished and recorded.
 */
#define UNSUB_PER_TXN	256	/* hand-ins applied per transaction */
#define UNSUB_TXNS	16	/* transactions per run, while the database is
				   not empty: a flood of forged keys (an HMAC
				   and a delete each) costs 4096 a run before
				   the mail, not the genuine tokens' turn */
#define RELEASE_EVERY	8	/* batches between store_release_pages */

static int
run(struct outbound *ob, int64_t now, volatile int *stop, int64_t until_ms,
    int *cut, struct outbound_stats *st, struct cp_error *err)
{
	struct flight *ring = ob->flights;
	size_t slots = (size_t)ob->sessions + 1, first = 0, used = 0;
	size_t claimed, failed;
	int claiming = 1, r = 0, r2;
	int batch_size = ob->cfg->smtp_batch_size > 0 ? ob->cfg->smtp_batch_size : 100;

	*cut = 0;
	json_object_clear(ob->kc.results);
	/* one-click unsubscribes first: none goes out after its hand-in */
	{
		size_t by[UNSUB_OUTCOMES] = { 0 };

		struct cp_error uerr;

		cp_error_clear(&uerr);
		r = unsub_drain(ob->store, ob->token_key, ob->token_keylen,
				UNSUB_PER_TXN, UNSUB_TXNS, by, &uerr);
		st->unsubscribed += by[UNSUB_APPLIED] + by[UNSUB_ALREADY];
		st->unsub_forged += by[UNSUB_FORGED];
		st->unsub_expired += by[UNSUB_GONE] + by[UNSUB_STALE];
		if (by[UNSUB_FORGED] > 0)
			log_event(LOG_WARNING, LOGID_GENERIC, NULL, NULL,
				  "%zu unsubscribe tokens refused: not carepost's",
				  by[UNSUB_FORGED]);
		/* what could not be applied waits for the next round; the
		 * mail goes on (the recipients' lists are checked again as
		 * each message is made) */
		if (r < 0)
			log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL,
				  "unsubscribe hand-ins not read: %s", uerr.text);
		r = 0;
	}
	while (!(stop && *stop)) {
		struct flight *cur = &ring[(first + used) % slots];
		struct delivery_list batch = { 0 };

		if (until_ms > 0 && cp_mono_ms() >= until_ms) {
			*cut = 1;
			break;
		}
		if (claiming) {
			r = intake_claim(ob->store, now, ob->cfg->token_ttl,
					 CLAIM_BATCH, &claimed, &failed, err);
			if (r < 0)
				break;
			st->claimed += claimed;
			st->failed += failed;
			claiming = claimed == CLAIM_BATCH;
		}
		/* the map's pages this run read: let go now and then, so
		 * that a long run's resident set stays flat */
		if (++ob->batches % RELEASE_EVERY == 0)
			store_release_pages(ob->store);
		r = queue_take_due(ob->store, now, SEND_LEASE, (size_t)batch_size,
				   &batch, err);
		if (r < 0)
			break;
		if (batch.n == 0) {
			delivery_list_free(&batch);
			if (claiming)
				continue;
			break;
		}
		r = flight_compose(ob, &batch, now, st, cur, err);
		if (r < 0)
			break;
		if (used == (size_t)ob->sessions)
			flight_send_wait(&ring[first]);
		flight_send_start(cur);
		used++;
		if (used == slots) {
			r = flight_record(ob, &ring[first], now, st, err);
			first = (first + 1) % slots;
			used--;
			if (r < 0)
				break;
		}
	}
	/* The batches in flight are recorded even after an error (which
	 * stays the one returned); their lease covers a failure to record. */
	for (; used > 0; used--, first = (first + 1) % slots) {
		struct cp_error last;
		r2 = flight_record(ob, &ring[first], now, st,
				       r < 0 ? &last : err);

		if (r == 0)
			r = r2;
	}
	/* Everything accepted is now in the store: the journal can go. */
	if (r == 0 && ob->journal_fd >= 0 && (r2 = store_journal_clear(ob->journal_fd)) < 0)
		log_warning("sending journal: %s", strerror(-r2));
	return r;
}

int
outbound_run(struct outbound *ob, int64_t now, volatile int *stop,
	     struct outbound_stats *st, struct cp_error *err)
{
	int cut;

	return run(ob, now, stop, 0, &cut, st, err);
}

int
outbound_step(struct outbound *ob, int64_t now, volatile int *stop,
	      struct outbound_stats *st, struct cp_error *err)
{
	int cut, r;

	r = run(ob, now, stop, cp_mono_ms() + STEP_BUDGET_MS, &cut, st, err);
	return r < 0 ? r : cut;
}

/*
 * recover_mark - one journal line "EVENT\tN\tMODE\tREF", or an item of a
 * digest "EVENT\tN\tMODE\tREF\tTHREAD\tM" (its leader's thread and index):
 * note [N, ENCRYPTED, REF(, THREAD, M)] under EVENT in marks. A torn last line (a kill mid-write) or
 * anything else malformed is ignored: that message goes again, as
 * without a journal.
 */
static void
recover_mark(json_t *marks, const char *line, size_t len)
{
	char buf[2 * STORE_ID_MAX + 128], *f[7], *save = NULL;
	unsigned long idx, lidx = 0;
	json_t *list;
	int k, nf;

	if (len >= sizeof(buf) || memchr(line, '\0', len) != NULL)
		return;
	memcpy(buf, line, len);
	buf[len] = '\0';
	for (nf = 0; nf < 7; nf++)
		if ((f[nf] = strtok_r(nf ? NULL : buf, "\t", &save)) == NULL)
			break;
	if ((nf != 4 && nf != 7) || strtok_r(NULL, "\t", &save) != NULL ||
	    !id_valid(f[0]) || !id_valid(f[3]) ||
	    (strcmp(f[2], "e") != 0 && strcmp(f[2], "n") != 0))
		return;
	for (k = 1; k < nf; k += 4)	/* the indexes: fields 1 and 5 */
		if (strspn(f[k], "0123456789") != strlen(f[k]) || strlen(f[k]) > 3 ||
		    f[k][0] == '\0')
			return;
	/* folded into a digest: the leader's thread (20 hex digits), index
	 * and event */
	if (nf == 7 && (strlen(f[4]) != 2 * TOKEN_THREAD_BYTES ||
			strspn(f[4], "0123456789abcdef") != strlen(f[4]) ||
			!id_valid(f[6])))
		return;
	idx = strtoul(f[1], NULL, 10);
	if (nf == 7)
		lidx = strtoul(f[5], NULL, 10);
	list = json_object_get(marks, f[0]);
	if (list == NULL) {
		list = json_array();
		json_object_set_new(marks, f[0], list);
	}
	if (nf == 7)
		json_array_append_new(list, json_pack("[I,b,s,s,I,s]", (json_int_t)idx,
						      f[2][0] == 'e', f[3], f[4],
						      (json_int_t)lidx, f[6]));
	else
		json_array_append_new(list, json_pack("[I,b,s]", (json_int_t)idx,
						      f[2][0] == 'e', f[3]));
}

/*
 * recover_audit - the audit event of a message the journal says the
 * relay accepted (reply code 250, as rcpt_sent records it; the key it
 * was encrypted to is not in the journal). Its strings are the record's.
 */
static int
recover_audit(struct audit_event **list, size_t *n, size_t *cap,
	      const struct delivery *d, const struct delivery_rcpt *rc)
{
	struct audit_event *ev;

	if (*n == *cap) {
		size_t want = *cap ? *cap * 2 : 16;
		struct audit_event *grown = realloc(*list, want * sizeof(**list));

		if (grown == NULL)
			return -ENOMEM;
		*list = grown;
		*cap = want;
	}
	ev = &(*list)[(*n)++];
	memset(ev, 0, sizeof(*ev));
	ev->action = AUDIT_SENT;
	ev->actor = AUDIT_ACTOR_DAEMON;
	ev->event = d->id;
	ev->patient = d->patient;
	ev->recipient = rc->address_hash ? rc->address_hash : rc->ref;
	ev->relay = 250;
	return 0;
}

int
outbound_recover(struct outbound *ob, int64_t now, size_t *recovered,
		 struct cp_error *err)
{
	char *text = NULL;
	size_t len = 0, start, i;
	struct delivery_list records = { 0 };
	struct audit_event *audit = NULL;
	size_t naudit = 0, audit_cap = 0;
	json_t *marks, *list, *v, *folds;
	const char *id;
	int r, r2;

	*recovered = 0;
	r = store_journal_read(ob->cfg->store_path, &text, &len, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	marks = json_object();
	folds = json_array();
	for (start = 0, i = 0; i < len; i++) {
		if (text[i] == '\n') {
			recover_mark(marks, text + start, i - start);
			start = i + 1;
		}
	}
	free(text);
	json_object_foreach(marks, id, list) {
		struct delivery *d = delivery_list_add(&records);
		size_t k, n = 0;

		if (d == NULL) {
			r = cp_error_set(err, -ENOMEM, "outbound: out of memory");
			break;
		}
		if (queue_get(ob->store, id, d, NULL) < 0 || d->state != DELIVERY_SENDING) {
			delivery_clear(d);	/* recorded after all */
			records.n--;
			continue;
		}
		if (d->nrcpts == 0) {
			/* A first attempt: its recipients were chosen in memory
			 * only. Choose again, as then (the same patient record
			 * gives the same list, in the same order). */
			json_t *patient = NULL;
			char why[384];

			if (store_get_json(ob->store, DB_PATIENTS, d->patient ? d->patient : "",
					   &patient, NULL) == 0)
				policy_recipients(patient, d, now, why, sizeof(why));
			json_decref(patient);
		}
		json_array_foreach(list, k, v) {
			size_t ri = (size_t)json_integer_value(json_array_get(v, 0));
			struct delivery_rcpt *rc = ri < d->nrcpts ? &d->rcpts[ri] : NULL;
			const char *ref = json_string_value(json_array_get(v, 2));
			char mid[160];

			if (rc == NULL || rc->state == RCPT_SENT || rc->state == RCPT_FAILED)
				continue;
			/* The list chosen again must name the same recipient
			 * at that index; if not, resend rather than guess. */
			if (rc->ref == NULL || ref == NULL || strcmp(rc->ref, ref) != 0)
				continue;
			/* The Message-ID it was sent with, made the same way
			 * (a digest's: its leader's thread and index). */
			const char *lthread = json_string_value(json_array_get(v, 3));
			size_t li = lthread ? (size_t)json_integer_value(json_array_get(v, 4)) : ri;

			if (outbound_message_id(ob->token_key, ob->token_keylen,
						lthread ? lthread : d->thread, li,
						message_id_domain(ob->cfg), mid,
						sizeof(mid)) < 0)
				continue;
			rcpt_sent(rc, 250, now, mid, json_is_true(json_array_get(v, 1)) ?
				  RCPT_ENCRYPTED : RCPT_NOTICE);
			record_set_str(&rc->note, "accepted by the relay before an interruption");
			n++;
			if (lthread != NULL)	/* for its leader's "folded" */
				json_array_append_new(folds, json_pack("[s,I,s,s]",
					json_string_value(json_array_get(v, 5)), (json_int_t)li,
					mid, id));
			if (recover_audit(&audit, &naudit, &audit_cap, d, rc) < 0)
				r = cp_error_set(err, -ENOMEM, "outbound: out of memory");
		}
		if (n == 0) {			/* nothing to record: requeued as it is */
			delivery_clear(d);
			records.n--;
			continue;
		}
		d->attempts++;			/* the interrupted one */
		settle(ob->cfg, d, now, NULL);
		if (!delivery_state_final(d->state))
			d->due = (time_t)now;
		log_event(LOG_NOTICE, LOGID_SENT, id, d->patient,
			  "%zu message%s accepted before an interruption: recorded, "
			  "not sent again", n, n == 1 ? "" : "s");
		*recovered += n;
	}
	json_decref(marks);
	/* The digests recovered: each leader's entry names its items again,
	 * as flight_record would have (bouncemap.h). */
	json_array_foreach(folds, i, v) {
		const char *leader = json_string_value(json_array_get(v, 0));
		size_t li = (size_t)json_integer_value(json_array_get(v, 1));
		const char *mid = json_string_value(json_array_get(v, 2));
		const char *item = json_string_value(json_array_get(v, 3));

		for (size_t k = 0; leader && item && k < records.n; k++) {
			struct delivery_rcpt *lr;
			char *joined = NULL;

			if (records.items[k].id == NULL || strcmp(records.items[k].id, leader) != 0 ||
			    li >= records.items[k].nrcpts)
				continue;
			lr = &records.items[k].rcpts[li];
			if (lr->message_id == NULL || mid == NULL || strcmp(lr->message_id, mid) != 0)
				break;
			if (asprintf(&joined, "%s%s%s", lr->folded ? lr->folded : "",
				     lr->folded ? " " : "", item) < 0)
				break;
			record_set_str(&lr->folded, joined);
			free(joined);
			break;
		}
	}
	json_decref(folds);
	if (r == 0 && records.n)
		r = queue_update_audited(ob->store, records.items, records.n,
					 audit, naudit, err);
	free(audit);
	delivery_list_free(&records);
	if (r == 0 && ob->journal_fd >= 0 && (r2 = store_journal_clear(ob->journal_fd)) < 0)
		log_warning("sending journal: %s", strerror(-r2));
	return r;
}
