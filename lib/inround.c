/*
 * NAME
 *	inround - the inbound round: a batch from the IMAP mailbox, decided,
 *	committed and moved
 * DESCRIPTION
 *	See inround.h. The session, the UID to fetch from and the "imap"
 *	record's codec live here; inbound decides each message and imapc
 *	speaks IMAP.
 */
#include "inround.h"
#include "imapc.h"
#include "record.h"
#include "log.h"

#define STEP_TIMEOUT	30	/* seconds per IMAP step, below the watchdog */
#define BATCH_DEFAULT	200	/* messages per fetch when [imap] batch_size is 0 */

struct inround {
	const struct cp_config *cfg;
	struct store *store;
	struct inbound *ib;
	struct imapc *imap;		/* the session, or NULL */
	int idling;			/* an IDLE runs on it */
	int attempt;			/* failures in a row */
	uint32_t next_uid;		/* fetch from here; 0: never connected */
	uint32_t uidvalidity;		/* of the session that set next_uid */
	uint32_t saved_uid;		/* the last UID in the store */
};

static const char *
mailbox(const struct cp_config *cfg)
{
	return cfg->imap_mailbox ? cfg->imap_mailbox : "INBOX";
}

/* ---- the session ---- */

int
inround_new(const struct cp_config *cfg, struct store *store, struct inbound *ib,
	   struct inround **out, struct cp_error *err)
{
	struct inround *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return cp_error_set(err, -ENOMEM, "inround: out of memory");
	in->cfg = cfg;
	in->store = store;
	in->ib = ib;
	*out = in;
	return 0;
}

void
inround_disconnect(struct inround *in)
{
	in->idling = 0;
	imapc_close(in->imap);
	in->imap = NULL;
}

void
inround_free(struct inround *in)
{
	if (in == NULL)
		return;
	inround_disconnect(in);
	free(in);
}

/* fail - close the session and say which step failed (code < 0). */
static int
fail(struct inround *in, int code, const char *step, const char *text,
     struct cp_error *err)
{
	inround_disconnect(in);
	return cp_error_set(err, code < 0 ? code : -EIO, "IMAP %s: %s", step, text);
}

int
inround_backoff(struct inround *in)
{
	return imapc_backoff(in->attempt++);
}

/*
 * connect_session - log in and find where to start: after the last UID
 * moved out of the mailbox when UIDVALIDITY is unchanged, else from UID 1
 * (what was filed already is recognised by the seen records and only
 * moved).
 */
static int
connect_session(struct inround *in, struct cp_error *err)
{
	const struct cp_config *cfg = in->cfg;
	const char *box = mailbox(cfg);
	struct imapc_opts o;
	struct cp_error e;
	struct imap_mark m = { 0, 0 };
	char *password = NULL;
	size_t plen = 0;
	uint32_t uidvalidity;
	int r;

	cp_error_clear(&e);
	if (cfg->imap_user && cfg->imap_password_file &&
	    (r = config_read_secret(cfg->imap_password_file, 4096, &password,
				    &plen, &e)) < 0)
		return fail(in, r, "password", e.text, err);
	memset(&o, 0, sizeof(o));
	o.host = cfg->imap_host;
	o.port = cfg->imap_tls == TLS_REQUIRED && cfg->imap_port == 993 ? 0 : cfg->imap_port;
	o.tls = cfg->imap_tls;
	o.user = cfg->imap_user;
	o.password = password ? password : "";
	o.mailbox = box;
	o.processed_folder = cfg->imap_processed_folder;
	o.quarantine_folder = cfg->imap_quarantine_folder;
	o.timeout = STEP_TIMEOUT;
	r = imapc_connect(&o, &in->imap, &e);
	if (password) {
		explicit_bzero(password, plen);
		free(password);
	}
	if (r < 0) {
		in->imap = NULL;
		return fail(in, r, "connect", e.text, err);
	}
	uidvalidity = imapc_uidvalidity(in->imap);
	in->next_uid = 1;
	r = imap_mark_get(in->store, box, &m, NULL);
	if (r == 0 && m.uidvalidity == uidvalidity) {
		in->next_uid = m.last_uid + 1;
	} else {
		if (r == 0)
			log_event(LOG_NOTICE, LOGID_GENERIC, NULL, NULL,
				  "IMAP UIDVALIDITY of %s changed: reading it from the "
				  "start (filed messages are recognised)", box);
		m = (struct imap_mark){ uidvalidity, 0 };
		imap_mark_put(in->store, box, &m, NULL);	/* a failure costs a longer search */
	}
	in->uidvalidity = uidvalidity;
	in->saved_uid = in->next_uid - 1;
	in->attempt = 0;
	log_info("IMAP connected to %s, %s from UID %u", cfg->imap_host, box,
		 in->next_uid);
	return 0;
}

/*
 * save_mark - write the last UID moved to the store: when a drain ends
 * (or fails), not after every batch (see inround.h).
 */
static void
save_mark(struct inround *in)
{
	struct imap_mark m = { in->uidvalidity, in->next_uid - 1 };

	if (in->next_uid == 0 || m.last_uid == in->saved_uid)
		return;
	if (imap_mark_put(in->store, mailbox(in->cfg), &m, NULL) == 0)
		in->saved_uid = m.last_uid;
}

/* ---- one batch ---- */

static void
count(struct inround_stats *st, const struct inbound_result *res)
{
	if (res->disposition == INBOUND_DUPLICATE) {
		st->duplicates++;
		return;
	}
	switch (res->class) {
	case INMSG_REPLY:
		if (res->form)
			st->forms++;
		else
			st->replies++;
		break;
	case INMSG_UNSUBSCRIBE: st->unsubscribes++; break;
	case INMSG_DSN: st->reports++; break;
	case INMSG_AUTOREPLY: st->autoreplies++; break;
	case INMSG_COMPLAINT: st->complaints++; break;
	default: st->unknown++; break;
	}
	if ((unsigned)res->feedback < METRICS__FEEDBACK)
		st->feedback[res->feedback]++;
	if (res->forged && res->class == INMSG_DSN)
		st->forged++;
	if (res->auth_refusal)
		st->auth_refused++;
	if (res->parser_lost)
		st->parser_lost++;
	if (res->disposition == INBOUND_QUARANTINED)
		st->quarantined++;
}

/*
 * move_decided - move what the batch decided (and committed) to the
 * processed and quarantine folders, one UID MOVE each, then remember the
 * last UID (save_mark writes it to the store).
 */
static int
move_decided(struct inround *in, const uint32_t *processed, size_t np,
	     const uint32_t *quarantine, size_t nq, uint32_t last_uid,
	     struct cp_error *err)
{
	const struct cp_config *cfg = in->cfg;
	struct cp_error e;
	int r;

	cp_error_clear(&e);
	if (cfg->imap_processed_folder != NULL &&
	    (r = imapc_move_uids(in->imap, processed, np,
				 cfg->imap_processed_folder, &e)) < 0)
		return fail(in, r, "move", e.text, err);
	if (cfg->imap_quarantine_folder != NULL &&
	    (r = imapc_move_uids(in->imap, quarantine, nq,
				 cfg->imap_quarantine_folder, &e)) < 0)
		return fail(in, r, "move", e.text, err);
	if (last_uid != 0)
		in->next_uid = last_uid + 1;
	return 0;
}

/*
 * batch - steps 2 to 5 of inround.h: 1 when more may be waiting, 0 when
 * the mailbox is drained, < 0 after a failure (the session is closed).
 */
static int
batch(struct inround *in, volatile int *stop, inround_progress_fn progress,
      void *userdata, struct inround_stats *st, struct cp_error *err)
{
	const struct cp_config *cfg = in->cfg;
	size_t max = cfg->imap_batch_size > 0 ? (size_t)cfg->imap_batch_size :
		     BATCH_DEFAULT;
	struct imapc_msg *msgs = NULL;
	_cleanup_free_ uint32_t *processed = NULL, *quarantine = NULL;
	_cleanup_free_ struct inbound_result *results = NULL;
	size_t n = 0, np = 0, nq = 0, i, n_decided;
	int64_t until = cp_mono_ms() + INROUND_BUDGET_MS;
	uint32_t last_uid = 0;
	struct cp_error e, e2;
	int r = 0, rc;

	cp_error_clear(&e);
	cp_error_clear(&e2);
	rc = imapc_fetch(in->imap, in->next_uid, max, &msgs, &n, &e);
	if (rc < 0)
		return fail(in, rc, "fetch", e.text, err);
	processed = calloc(n ? n : 1, sizeof(*processed));
	quarantine = calloc(n ? n : 1, sizeof(*quarantine));
	results = calloc(n ? n : 1, sizeof(*results));
	if (processed == NULL || quarantine == NULL || results == NULL) {
		imapc_msgs_free(msgs, n);
		return fail(in, -ENOMEM, "batch", "out of memory", err);
	}
	/* Decide each message, then commit them all in one transaction.
	 * The next message is parsed (in a child of the parse helper), and
	 * decrypted when encrypted (by the gpg helper), while this one is
	 * filed. */
	inbound_batch_begin(in->ib);
	if (n > 0 && msgs[0].raw != NULL)
		inbound_ahead(in->ib, msgs[0].raw, msgs[0].len);
	for (i = 0; i < n && !(stop && *stop); i++) {
		if (i > 0 && cp_mono_ms() > until)
			break;		/* the rest next round */
		if (i + 1 < n && msgs[i + 1].raw != NULL)
			inbound_ahead(in->ib, msgs[i + 1].raw, msgs[i + 1].len);
		if (msgs[i].raw == NULL) {
			/* Too big to fetch: the reason goes to the log. */
			log_event(LOG_WARNING, LOGID_QUARANTINE, NULL, NULL,
				  "IMAP UID %u: %u bytes, over the size limit: "
				  "quarantined unread", msgs[i].uid, msgs[i].size);
			results[i].folder = INBOUND_FOLDER_QUARANTINE;
			results[i].disposition = INBOUND_QUARANTINED;
		} else {
			const struct inbound_origin from = {
				mailbox(cfg), in->uidvalidity, msgs[i].uid,
			};

			r = inbound_ingest_imap(in->ib, msgs[i].raw, msgs[i].len,
						cp_now(), &from, &results[i], &e);
			if (r < 0)
				break;	/* the store or gpg failed: it stays */
		}
		if (progress != NULL)
			progress(userdata);
	}
	n_decided = i;
	rc = inbound_batch_commit(in->ib, r < 0 ? &e2 : &e);
	if (rc < 0) {
		/* Nothing of the batch was written: it all stays. */
		n_decided = 0;
		if (r == 0)
			r = rc;
	}
	for (i = 0; i < n_decided; i++) {
		const struct inbound_result *res = &results[i];

		st->decided++;
		if (msgs[i].raw == NULL)
			st->quarantined++;
		else
			count(st, res);
		if (res->acked || res->alerted || res->form_incomplete)
			st->queued++;
		if (res->folder == INBOUND_FOLDER_QUARANTINE)
			quarantine[nq++] = msgs[i].uid;
		else
			processed[np++] = msgs[i].uid;
		last_uid = msgs[i].uid;
	}
	for (i = 0; i < n; i++)
		inbound_result_clear(&results[i]);
	if (r < 0) {
		/* Move what was filed before the failure, then report it. */
		rc = move_decided(in, processed, np, quarantine, nq, last_uid, err);
		if (rc == 0)
			rc = fail(in, r, "ingest", e.text, err);
		imapc_msgs_free(msgs, n);
		return rc;
	}
	r = move_decided(in, processed, np, quarantine, nq, last_uid, err);
	if (r == 0 && n_decided < n)	/* stopped, or out of time */
		r = 1;
	else if (r == 0)	/* a batch cut short by its bytes is not the end */
		r = n == max || imapc_pending(in->imap);
	imapc_msgs_free(msgs, n);
	return r;
}

int
inbound_step(struct inround *in, volatile int *stop, inround_progress_fn progress,
	    void *userdata, struct inround_stats *stats, struct cp_error *err)
{
	int r;

	if (in->idling && (r = inround_idle_end(in, err)) < 0)
		return r;
	if (in->imap == NULL && (r = connect_session(in, err)) < 0)
		return r;
	r = batch(in, stop, progress, userdata, stats, err);
	if (r != 1)
		save_mark(in);
	return r;
}

/* ---- waiting for new mail ---- */

int
inround_idle_begin(struct inround *in, struct cp_error *err)
{
	struct cp_error e;
	int r;

	if (in->imap == NULL)
		return cp_error_set(err, -ENOTCONN, "IMAP IDLE: not connected");
	if (in->idling)
		return 0;
	if (!imapc_has(in->imap, "IDLE"))
		return cp_error_set(err, -ENOTSUP, "IMAP IDLE: not offered by the server");
	cp_error_clear(&e);
	r = imapc_idle_begin(in->imap, &e);
	if (r < 0)
		return fail(in, r, "IDLE", e.text, err);
	in->idling = 1;
	return r;
}

int
inround_fd(const struct inround *in)
{
	return in->imap != NULL && in->idling ? imapc_fd(in->imap) : -1;
}

int
inround_idle_end(struct inround *in, struct cp_error *err)
{
	struct cp_error e;
	int r;

	if (!in->idling)
		return 0;
	in->idling = 0;
	cp_error_clear(&e);
	r = imapc_idle_end(in->imap, &e);
	if (r < 0)
		return fail(in, r, "IDLE", e.text, err);
	return r;
}
