/*
 * NAME
 *	filing - a decided message's records: inbox, clinic queue,
 *	followups, bounce, opt-out, seen
 * DESCRIPTION
 *	See filing.h. Sealing runs before the transaction (it may run gpg,
 *	which must not hold the store's one writer); the transaction only
 *	writes what was sealed and decided.
 */
#include "filing.h"
#include "audit.h"
#include "inbox.h"
#include "patient.h"
#include "queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * header_vouched - the header fields go with the filed text: the From
 * proved the sender, or the signer is the one whose From DMARC (or
 * aligned DKIM) vouches for. A signature does not cover the header,
 * which anyone replaying a signed message may have rewritten: an
 * attacker's own domain passing DMARC proves nothing about it.
 */
static int
header_vouched(const struct filing_reply *r)
{
	if (!r->signer_matched)
		return 1;
	return r->headers_authenticated && r->from_ref && r->sender_ref &&
	       strcmp(r->from_ref, r->sender_ref) == 0;
}

/*
 * filed_subject - the Subject that goes with the filed text: the
 * protected one when the covered entity has it; else the header's where
 * header_vouched, else none.
 */
static const char *
filed_subject(const struct filing_reply *r)
{
	if (r->m->prot.present && r->m->prot.subject)
		return r->m->prot.subject;
	return header_vouched(r) ? r->m->subject : NULL;
}

/* content_encode - what the blob seals (record.h, struct inbox_content). */
static int
content_encode(const struct filing_reply *r, const char *raw_b64, size_t raw_len,
	       char **text, size_t *len)
{
	const struct inmsg *m = r->m;
	struct inbox_content c = {
		.subject = filed_subject(r), .from = m->from_addr,
		.from_name = header_vouched(r) ? m->from_name : NULL, .date = m->date,
		.message_id = m->message_id, .text = r->text ? r->text : "",
		.body = m->body ? m->body : "", .has_form = r->form,
		.form_values = r->form_values, .form_missing = r->form_missing,
	};
	int rc;

	c.atts = calloc(m->n_attachments ? m->n_attachments : 1, sizeof(*c.atts));
	if (c.atts == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_attachments; i++) {
		const struct inmsg_attachment *a = &m->attachments[i];

		c.atts[i].filename = a->filename;
		c.atts[i].content_type = a->content_type;
		c.atts[i].size = (long long)a->len;
		c.atts[i].bytes = a->data;
	}
	c.natts = m->n_attachments;
	rc = inbox_content_encode(&c, raw_b64, raw_len, text, len);
	free(c.atts);
	return rc;
}

int
filing_seal(struct atrest *a, const struct filing_reply *r, int64_t now,
	    struct buf *blob, char dek[ATREST_DEK_ID_SIZE], struct cp_error *err)
{
	_cleanup_buf_ struct buf raw = BUF_INIT;
	char aad[INBOX_AAD_MAX];
	char *text = NULL;
	size_t len;
	int rc;

	rc = buf_append_base64(&raw, r->raw, r->len);
	if (rc == 0)
		rc = content_encode(r, raw.data ? raw.data : "", raw.len, &text, &len);
	if (raw.data)
		explicit_bzero(raw.data, raw.len);
	if (rc < 0)
		return cp_error_set(err, rc, "inbound: cannot encode the content");
	inbox_aad(r->patient, r->inbox_id, aad);
	rc = atrest_seal(a, now, aad, strlen(aad), text, len, blob, dek, err);
	explicit_bzero(text, len);
	free(text);
	return rc;
}

static size_t
total_attachments(const struct inmsg *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_attachments; i++)
		n += m->attachments[i].len;
	return n;
}

/* inbox_entry_of - the cleartext of what r files (borrowed strings). */
static void
inbox_entry_of(const struct filing_reply *r, int64_t now, struct inbox_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->id = (char *)r->inbox_id;
	e->patient = (char *)r->patient;
	e->thread = (char *)r->thread_hex;
	e->event = (char *)r->event;
	e->event_type = r->thread->type;
	e->class = r->form ? INBOX_FORM : INBOX_REPLY;
	e->received = (time_t)now;
	e->department = (char *)r->department;
	e->urgent = r->urgent != 0;
	e->sender_role = (char *)r->sender_role;
	e->auth = (char *)r->auth;
	/* "signed" only for the thread's patient or proxy (replyauth.h) */
	e->pgp = r->decrypted && r->signer_matched ? "encrypted+signed" :
		 r->decrypted ? "encrypted" : r->signer_matched ? "signed" : NULL;
	e->form_complete = r->form ? json_array_size(r->form_missing) == 0 : REC_UNSET;
	e->has_sizes = 1;
	e->size_raw = (long long)r->len;
	e->size_text = (long long)(r->text ? strlen(r->text) : 0);
	e->size_attachments = (long long)total_attachments(r->m);
	e->n_attachments = (long long)r->m->n_attachments;
	e->store_key = (char *)r->store_fpr;
	e->format = INBOX_FORMAT;
	e->has_format = 1;
	e->dek = (char *)r->dek;
}

static int
reply_txn(struct store *s, MDB_txn *txn, const struct filing_reply *r, int64_t now,
	  struct filing_result *out, struct cp_error *err)
{
	char key[2 * STORE_ID_MAX + 64];
	struct inbox_entry entry;
	struct clinic_entry clinic;
	struct followup fu;
	int rc;

	inbox_entry_of(r, now, &entry);
	snprintf(key, sizeof(key), "%s/%s", r->patient, r->inbox_id);
	rc = inbox_txn_put(s, txn, key, &entry, r->blob ? r->blob : "", r->blob_len,
			   err);
	if (rc < 0)
		return rc;
	clinic = (struct clinic_entry) {
		.inbox_id = (char *)r->inbox_id, .patient = (char *)r->patient,
		.thread = (char *)r->thread_hex, .event = (char *)r->event,
		.class = r->form ? INBOX_FORM : INBOX_REPLY, .received = (time_t)now,
		.urgent = r->urgent != 0, .sender_role = (char *)r->sender_role,
		.state = "new",
	};
	snprintf(key, sizeof(key), "%s/%s", r->department, r->inbox_id);
	rc = clinic_txn_put(s, txn, key, &clinic, err);
	if (rc < 0)
		return rc;
	if (r->candidate != NULL) {
		snprintf(key, sizeof(key), "%s/%s", r->patient, r->sender_ref);
		rc = key_candidate_txn_put(s, txn, key, r->candidate, err);
		if (rc < 0)
			return rc;
	}

	/* RFC 3834: list mail and mail that asks for none gets no automatic
	 * answer, neither an acknowledgement nor a form_incomplete request. */
	out->no_autoresponse = inmsg_no_autoresponse(r->m, NULL);
	fu = (struct followup) {
		.cfg = r->cfg, .now = now, .inbox_id = r->inbox_id,
		.patient = r->patient, .department = r->department,
		.event = r->event, .message_id = r->m->message_id,
		.sender_ref = r->sender_ref, .urgent = r->urgent, .form = r->form,
		.form_missing = json_array_size(r->form_missing) > 0,
		.no_autoresponse = out->no_autoresponse, .thread = r->thread,
	};
	return followup_txn(s, txn, &fu, &out->followup, err);
}

/* complaint_txn - a feedback report's records (FILING_COMPLAINT). */
static int
complaint_txn(struct store *s, MDB_txn *txn, const struct filing *f,
	      struct cp_error *err)
{
	const struct filing_complaint *c = f->complaint;
	const struct bouncemap *bm = c->bm;
	char key[2 * STORE_ID_MAX + 64];
	struct clinic_entry line;
	struct delivery d;
	int r;

	r = queue_txn_get(s, txn, bm->delivery_id, &d, err);
	if (r < 0)
		return r;
	if (bm->rcpt_index >= d.nrcpts || d.rcpts[bm->rcpt_index].complained_at != 0) {
		delivery_clear(&d);	/* gone, or marked meanwhile: nothing new */
		return 0;
	}
	d.rcpts[bm->rcpt_index].complained_at = (time_t)f->now;
	d.updated = (time_t)f->now;
	r = record_set_str(&d.rcpts[bm->rcpt_index].feedback_type, c->feedback_type);
	r = r < 0 ? cp_error_set(err, r, "complaint: out of memory") :
	    queue_txn_put(s, txn, &d, err);
	delivery_clear(&d);
	if (r < 0)
		return r;
	if (c->category != NULL &&
	    (r = patient_txn_opt_out(s, txn, bm->patient, bm->ref, c->category,
				     f->actor, err)) < 0)
		return r;
	if (!c->staff_line)
		return 0;
	line = (struct clinic_entry) {
		.inbox_id = (char *)c->line_id, .patient = (char *)bm->patient, .thread = (char *)bm->thread,
		.event = (char *)bm->event, .class = INBOX_COMPLAINT,
		.received = (time_t)f->now, .urgent = 0,
		.sender_role = (char *)c->sender_role, .state = "new",
		.event_type = (char *)bm->type, .feedback_type = (char *)c->feedback_type,
		.opted_out = (char *)c->category,
	};
	snprintf(key, sizeof(key), "%s/%s", c->department, c->line_id);
	return clinic_txn_put(s, txn, key, &line, err);
}

/* what_txn - the records of f's kind, before its seen record. */
static int
what_txn(struct store *s, MDB_txn *txn, const struct filing *f,
	 struct filing_result *out, struct cp_error *err)
{
	int rc;

	switch (f->kind) {
	case FILING_REPLY:
		if (f->reply == NULL || f->reply->m == NULL || f->reply->thread == NULL)
			break;
		return reply_txn(s, txn, f->reply, f->now, out, err);
	case FILING_BOUNCE:
		if (f->bounce == NULL)
			break;
		return bouncemap_txn(s, txn, f->bounce, f->now, err);
	case FILING_OPT_OUT:
		if (f->patient == NULL || f->sender_ref == NULL || f->category == NULL)
			break;
		rc = patient_txn_opt_out(s, txn, f->patient, f->sender_ref, f->category,
					 f->actor, err);
		return rc < 0 ? rc : 0;
	case FILING_COMPLAINT:
		if (f->complaint == NULL || f->complaint->bm == NULL ||
		    f->complaint->department == NULL || f->complaint->line_id == NULL)
			break;
		return complaint_txn(s, txn, f, err);
	case FILING_SEEN_ONLY:
		return 0;
	}
	return cp_error_set(err, -EINVAL, "filing: nothing to file for its kind");
}

/*
 * audit_txn - the audit record of a reply filed (its patient, event and
 * inbox id) or a message quarantined (what its seen record knows). An
 * opt-out's is patient_txn_opt_out's.
 */
static int
audit_txn(struct store *s, MDB_txn *txn, const struct filing *f,
	  struct cp_error *err)
{
	struct audit_event ev = { .actor = f->actor ? f->actor : AUDIT_ACTOR_DAEMON };

	if (f->kind == FILING_REPLY) {
		ev.action = AUDIT_FILED;
		ev.patient = f->reply->patient;
		ev.event = f->reply->event;
		ev.inbox = f->reply->inbox_id;
	} else if (f->seen->folder == SEEN_QUARANTINE) {
		ev.action = AUDIT_QUARANTINED;
		ev.patient = f->seen->patient;
		ev.event = f->seen->event;
	} else {
		return 0;
	}
	return audit_append(s, txn, &ev, err);
}

int
filing_txn(struct store *s, MDB_txn *txn, const struct filing *f,
	   struct filing_result *out, struct cp_error *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (f->seen_key == NULL || f->seen == NULL)
		return cp_error_set(err, -EINVAL, "filing: no seen record");
	/* Another ingest of the same message may have won the race. */
	rc = store_txn_has(s, txn, DB_SEEN, f->seen_key, strlen(f->seen_key), err);
	if (rc > 0)
		return -EALREADY;
	if (rc == 0)
		rc = -ENOENT;
	if (rc != -ENOENT)
		return rc;
	rc = what_txn(s, txn, f, out, err);
	if (rc < 0)
		return rc;
	rc = seen_txn_put(s, txn, f->seen_key, f->seen, err);
	if (rc < 0)
		return rc;
	return audit_txn(s, txn, f, err);
}
