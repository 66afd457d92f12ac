/*
 * NAME
 *	patient - the edits carepost makes to patient records, each in one
 *	transaction
 * SYNOPSIS
 *	#include "patient.h"
 *
 *	patient_link_key(store, "p-1001", -1, fpr, "ctl:alice", &err);
 *	patient_txn_opt_out(store, txn, "p-1001", "proxy:0", "billing", NULL, &err);
 * DESCRIPTION
 *	Patient records are the portal's (docs/store.md, "patients"); carepost
 *	changes two things in them, always as a read-modify-write inside one
 *	write transaction, so that a portal writing the same record at the
 *	same time is never overwritten with a stale copy:
 *
 *	patient_link_key sets "pgp_fpr" of the patient (proxy < 0) or of
 *	proxy number proxy to fpr (carepostctl key import --patient), and
 *	appends the audit record of it (audit.h: key_imported by actor,
 *	with the patient, "patient" or "proxy:N", the fingerprint).
 *
 *	patient_txn_opt_out adds category to the "optout" list of ref
 *	("patient" or "proxy:N") in the caller's transaction (an unsubscribe
 *	filed by the inbound path), unless it is there already; when it
 *	adds it, the audit record of it too (opted_out by actor, NULL for
 *	the daemon, with the patient and ref).
 *
 *	The record is stored again as it was read, but for that one member
 *	(other members, known or not, are kept).
 * ERRORS
 *	patient_link_key: -ENOENT (no such patient), -ENXIO (no such proxy),
 *	-EBADMSG (the record is not a JSON object), -ENOMEM, the store's,
 *	audit_append's (-EINVAL for an actor it refuses).
 *	patient_txn_opt_out returns 1 when it added the category, 0 when
 *	there was nothing to do (already opted out, no such patient or
 *	ref), or the store's error.
 * OWNERSHIP
 *	The arguments are borrowed for the call.
 * THREAD SAFETY
 *	As the store.
 */
#ifndef CAREPOST_PATIENT_H
#define CAREPOST_PATIENT_H

#include "store.h"

int patient_link_key(struct store *s, const char *patient, long proxy,
		     const char *fpr, const char *actor, struct cp_error *err);
int patient_txn_opt_out(struct store *s, MDB_txn *txn, const char *patient,
			const char *ref, const char *category, const char *actor,
			struct cp_error *err);

#endif
