/*
 * NAME
 *	keycheck - the OpenPGP keys on file, checked for their expiry: the
 *	admin's report and the recipients' notices
 * SYNOPSIS
 *	#include "keycheck.h"
 *
 *	r = keycheck_each(store, pgp, now, fn, userdata, &err);
 *	r = keycheck_notify(store, pgp, cfg, now, &stats, &err);
 * DESCRIPTION
 *	A key on file is the pgp_fpr of a patient or of one of their
 *	proxies. keycheck_each lists them all, in the order of the patients
 *	database, the patient's own first: patient id, ref ("patient",
 *	"proxy:N"), fingerprint, when the key stops serving for encryption
 *	(pgp_key_table: 0 never) and its state, from one key listing of the
 *	keyring (one gpg run however many keys): KEYCHECK_OK,
 *	KEYCHECK_EXPIRING (within KEYCHECK_HORIZON, 30 days), KEYCHECK_EXPIRED,
 *	KEYCHECK_REVOKED, KEYCHECK_NO_ENCRYPTION, KEYCHECK_MISSING (not in
 *	the keyring). Until a key is renewed, mail to its owner goes as a
 *	PHI-free notice.
 *
 *	Patient ids that no event could name (event.h, id_valid) are not
 *	ours and are skipped.
 *
 *	keycheck_notify queues, for each key that expires within 30 days
 *	(and again within 7, counted with a day's margin), one PHI-free
 *	notice of the internal type key_expiring to its owner (that
 *	recipient only: the patient, or that proxy), and only to a recipient
 *	carepost mails (policy_mails: an adult patient, a minor's proxies);
 *	at most one per patient, key, expiry date and mark, whatever the
 *	proxy's place in the list: the mark is the "acks" record
 *	"keyexp/PATIENT/FPR/EXPIRES/30" (or "/7"), kept
 *	until the key's expiry (its "at"), in the same transaction as the
 *	notice's delivery record. A renewed key (same fingerprint, a later
 *	expiry) starts afresh: no notice until it too comes within 30 days.
 *	A key that expires within 7 days at its first check gets the 7-day
 *	notice only. st also counts the keyring's keys (on file or not)
 *	that expire within 30 days (carepost_keys_expiring_30d). The notice's "urgent" says the 7-day one (templates).
 * ERRORS
 *	Both: 0, the store's codes, gpg's (-EIO for a listing that fails),
 *	-ENOMEM; fn's return when not 0 stops keycheck_each and is returned.
 * OWNERSHIP
 *	struct keycheck_key's strings live for the call of fn.
 * THREAD SAFETY
 *	As the store and the struct pgp.
 */
#ifndef CAREPOST_KEYCHECK_H
#define CAREPOST_KEYCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pgp.h"
#include "store.h"
#include "util.h"

#define KEYCHECK_HORIZON	(30LL * 86400)
#define KEYCHECK_SOON		(7LL * 86400)

enum keycheck_state {
	KEYCHECK_OK, KEYCHECK_EXPIRING, KEYCHECK_EXPIRED, KEYCHECK_REVOKED,
	KEYCHECK_NO_ENCRYPTION, KEYCHECK_MISSING,
};

struct keycheck_key {
	const char *patient;
	const char *ref;
	char fpr[PGP_FPR_SIZE];
	long long expires;		/* 0: never (or unknown: missing) */
	enum keycheck_state state;
	int mailed;			/* carepost mails this recipient (an
					   adult patient, a minor's proxy) */
};

struct keycheck_stats {
	size_t keys;			/* keys on file */
	size_t expiring;		/* of those, within 30 days */
	size_t unusable;		/* expired, revoked, missing, no encryption */
	size_t queued;			/* notices queued now */
	size_t keyring_expiring;	/* keys in the keyring (on file or not)
					   usable now and expiring within 30 days */
};

typedef int (*keycheck_fn)(void *userdata, const struct keycheck_key *k);

int keycheck_each(struct store *s, struct pgp *p, int64_t now, keycheck_fn fn,
		  void *userdata, struct cp_error *err);
int keycheck_notify(struct store *s, struct pgp *p, const struct cp_config *cfg,
		    int64_t now, struct keycheck_stats *st, struct cp_error *err);
const char *keycheck_state_name(enum keycheck_state st);

#endif
