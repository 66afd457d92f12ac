/*
 * inbox - see inbox.h.
 */
#include "inbox.h"
#include "atrest.h"
#include "buf.h"
#include "event.h"
#include "pgp.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most a filed message's content can be, opened (its JSON: the
 * decoded parts, base64, at most twice what a reply may decrypt to). */
#define CONTENT_MAX	(100u * 1024 * 1024)

void
inbox_aad(const char *patient, const char *msg_id, char out[INBOX_AAD_MAX])
{
	snprintf(out, INBOX_AAD_MAX, "carepost inbox 2\n%s/%s", patient, msg_id);
}

/* A listing: the records of one patient's inbox without their blobs. */
struct listing {
	json_t *out;
	int failed;		/* out of memory */
};

/* clinic_row - a clinic entry as listed: its department from its key. */
static json_t *
clinic_row(const char *key, size_t keylen, json_t *rec)
{
	struct clinic_entry c;
	const char *slash;
	json_t *row;

	if (clinic_load(rec, &c, NULL) < 0)
		return NULL;	/* not one of ours */
	if ((slash = memchr(key, '/', keylen)) != NULL) {
		free(c.department);
		c.department = strndup(key, (size_t)(slash - key));
	}
	row = clinic_dump(&c);
	clinic_clear(&c);
	return row;
}

static int
list_each(void *userdata, const char *key, size_t keylen, json_t *rec)
{
	struct listing *l = userdata;
	struct inbox_entry e;
	json_t *row;

	if (inbox_load(rec, &e, NULL) < 0)
		return 0;	/* not one of ours */
	row = inbox_dump(&e);	/* without its blob */
	inbox_clear(&e);
	if (json_array_append_new(l->out, row) < 0) {
		l->failed = 1;
		return 1;
	}
	return 0;
}

/* list_records - the records of db whose key begins with "OWNER/" (all: NULL). */
static int
list_records(struct store *s, enum store_db db, const char *owner, json_t **out,
	     struct cp_error *err)
{
	char prefix[STORE_ID_MAX + 2] = "";
	struct listing l = { json_array(), 0 };
	int r;

	if (l.out == NULL)
		return cp_error_set(err, -ENOMEM, "out of memory");
	if (owner != NULL)
		snprintf(prefix, sizeof(prefix), "%s/", owner);
	r = store_foreach_prefix(s, db, prefix, list_each, &l, err);
	if (r > 0 && l.failed)
		r = cp_error_set(err, -ENOMEM, "out of memory");
	if (r < 0) {
		json_decref(l.out);
		return r;
	}
	*out = l.out;
	return 0;
}

int
inbox_list(struct store *s, const char *patient, json_t **out,
		   struct cp_error *err)
{
	if (!id_valid(patient))
		return cp_error_set(err, -EINVAL, "patient id: expected 1-128 of [A-Za-z0-9._:@-]");
	return list_records(s, DB_INBOX, patient, out, err);
}

int
inbox_get(struct store *s, const char *patient, const char *msg_id,
		  json_t **out, struct cp_error *err)
{
	char key[2 * STORE_ID_MAX + 4];

	if (!id_valid(patient) || !id_valid(msg_id))
		return cp_error_set(err, -EINVAL, "expected a patient id and a message id");
	snprintf(key, sizeof(key), "%s/%s", patient, msg_id);
	return store_get_json(s, DB_INBOX, key, out, err);
}

int
inbox_open(struct pgp *p, struct atrest *a, json_t *record, json_t **content,
	     struct cp_error *err)
{
	struct inbox_entry e;
	const char *blob;
	struct buf plain = BUF_INIT;
	char *signer = NULL;
	json_error_t jerr;
	int r;

	*content = NULL;
	r = inbox_load(record, &e, err);
	if (r < 0)
		return r;
	blob = json_string_value(e.blob);
	plain.max = CONTENT_MAX;
	if (blob == NULL) {
		r = cp_error_set(err, -EBADMSG, "inbox record has no content");
	} else if (e.format == INBOX_FORMAT) {
		char aad[INBOX_AAD_MAX];

		if (a == NULL) {
			r = cp_error_set(err, -EINVAL, "inbox record: format %d needs "
					 "the store's data keys", INBOX_FORMAT);
		} else if (!id_valid(e.patient) || !id_valid(e.id)) {
			r = cp_error_set(err, -EBADMSG, "inbox record: no patient or id");
		} else {
			inbox_aad(e.patient, e.id, aad);
			r = atrest_open(a, e.dek, aad, strlen(aad), blob,
					json_string_length(e.blob), &plain, err);
		}
	} else if (e.format == 1) {
		if (p == NULL)
			r = cp_error_set(err, -EINVAL, "inbox record: format 1 needs gpg");
		else
			r = pgp_decrypt_verify(p, blob, strlen(blob), &plain, &signer, err);
		free(signer);
	} else {
		r = cp_error_set(err, -EPROTONOSUPPORT, "inbox record: unknown "
				 "format %lld", e.format);
	}
	inbox_clear(&e);
	if (r < 0) {
		buf_free(&plain);
		return r;
	}
	*content = json_loadb(plain.data ? plain.data : "", plain.len, 0, &jerr);
	if (plain.data)
		explicit_bzero(plain.data, plain.len);
	buf_free(&plain);
	if (*content == NULL)
		return cp_error_set(err, -EBADMSG, "inbox content: invalid JSON");
	return 0;
}

/* A page of the clinic queue, walked in key order. */
struct clinic_page {
	char prefix[STORE_ID_MAX + 2];
	size_t plen;
	const char *after;
	size_t alen;
	size_t max, n;
	inbox_row_fn fn;
	void *ud;
	int r;
};

static int
page_each(void *userdata, const void *key, size_t keylen, const void *value,
	  size_t len)
{
	struct clinic_page *pg = userdata;
	json_t *rec, *row;

	if (keylen < pg->plen || memcmp(key, pg->prefix, pg->plen) != 0)
		return 1;		/* past the department */
	if (pg->alen > 0 && keylen == pg->alen && memcmp(key, pg->after, keylen) == 0)
		return 0;		/* the last of the page before */
	if (pg->max > 0 && pg->n >= pg->max)
		return 1;
	rec = json_loadb(value, len, 0, NULL);
	row = rec ? clinic_row(key, keylen, rec) : NULL;
	json_decref(rec);
	if (row == NULL)
		return 0;
	pg->n++;
	pg->r = pg->fn(pg->ud, row);
	json_decref(row);
	return pg->r != 0;
}

static int
page_txn(struct store *s, MDB_txn *txn, void *userdata, struct cp_error *err)
{
	struct clinic_page *pg = userdata;
	const char *start = pg->alen > 0 ? pg->after : pg->prefix;
	size_t startlen = pg->alen > 0 ? pg->alen : pg->plen;
	int r = store_txn_walk_from(s, txn, DB_CLINIC, start, startlen, page_each,
				    pg, err);

	return r < 0 ? r : pg->r;
}

int
inbox_clinic_page(struct store *s, const char *dept, const char *after,
		  size_t max, inbox_row_fn fn, void *ud, struct cp_error *err)
{
	struct clinic_page pg = { .max = max, .fn = fn, .ud = ud };

	if (dept != NULL && !id_valid(dept))
		return cp_error_set(err, -EINVAL, "department: expected a name");
	if (dept != NULL)
		pg.plen = (size_t)snprintf(pg.prefix, sizeof(pg.prefix), "%s/", dept);
	if (after != NULL) {
		const char *slash = strchr(after, '/');

		if (slash == NULL || slash == after || !id_valid(slash + 1) ||
		    strlen(after) > 2 * STORE_ID_MAX + 1)
			return cp_error_set(err, -EINVAL, "--after: expected "
					    "DEPARTMENT/INBOX_ID, the last entry listed");
		if (pg.plen > 0 && strncmp(after, pg.prefix, pg.plen) != 0)
			return cp_error_set(err, -EINVAL, "--after: not an entry "
					    "of department %s", dept);
		pg.after = after;
		pg.alen = strlen(after);
	}
	return store_read(s, page_txn, &pg, err);
}

static int
collect_row(void *ud, json_t *row)
{
	return json_array_append(ud, row) < 0 ? -ENOMEM : 0;
}

int
inbox_clinic_queue(struct store *s, const char *dept, json_t **out,
		     struct cp_error *err)
{
	json_t *rows = json_array();
	int r;

	if (rows == NULL)
		return cp_error_set(err, -ENOMEM, "out of memory");
	r = inbox_clinic_page(s, dept, NULL, 0, collect_row, rows, err);
	if (r == -ENOMEM && err && err->code != -ENOMEM)
		cp_error_set(err, -ENOMEM, "out of memory");
	if (r < 0) {
		json_decref(rows);
		return r;
	}
	*out = rows;
	return 0;
}

/* The quarantine: the rows of the seen records quarantined, oldest first. */
struct quarantined {
	time_t at;
	json_t *row;
};

struct quarantine_listing {
	struct quarantined *v;
	size_t n, cap;
	int failed;		/* out of memory */
};

static int
quarantine_each(void *userdata, const char *key, size_t keylen, json_t *rec)
{
	struct quarantine_listing *l = userdata;
	struct seen_record sr;
	json_t *row;

	if (seen_load(rec, &sr, NULL) < 0)
		return 0;	/* not one of ours */
	row = seen_quarantine_row(&sr);
	if (sr.folder == SEEN_QUARANTINE && row == NULL)
		l->failed = 1;
	if (row != NULL && l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct quarantined *v = reallocarray(l->v, cap, sizeof(*v));

		if (v == NULL) {
			json_decref(row);
			row = NULL;
			l->failed = 1;
		} else {
			l->v = v;
			l->cap = cap;
		}
	}
	if (row != NULL)
		l->v[l->n++] = (struct quarantined){ sr.at, row };
	seen_clear(&sr);
	return l->failed;
}

static int
by_time(const void *a, const void *b)
{
	const struct quarantined *x = a, *y = b;

	return (x->at > y->at) - (x->at < y->at);
}

int
inbox_quarantine(struct store *s, json_t **out, struct cp_error *err)
{
	struct quarantine_listing l = { 0 };
	json_t *list = NULL;
	size_t i;
	int r;

	r = store_foreach(s, DB_SEEN, quarantine_each, &l, err);
	if (r > 0 && l.failed)
		r = cp_error_set(err, -ENOMEM, "out of memory");
	if (r >= 0 && (list = json_array()) == NULL)
		r = cp_error_set(err, -ENOMEM, "out of memory");
	if (r >= 0) {
		r = 0;
		qsort(l.v, l.n, sizeof(*l.v), by_time);
	}
	for (i = 0; i < l.n; i++) {
		if (r == 0 && json_array_append(list, l.v[i].row) < 0)
			r = cp_error_set(err, -ENOMEM, "out of memory");
		json_decref(l.v[i].row);
	}
	free(l.v);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*out = list;
	return 0;
}
