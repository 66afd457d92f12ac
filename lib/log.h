/*
 * NAME
 *	log - structured, PHI-free logging to the journal or stderr
 * SYNOPSIS
 *	#include "log.h"
 *
 *	log_setup("carepostd", LOG_TARGET_AUTO, LOG_INFO);
 *	log_set_ref_key(key, keylen);
 *	log_info("started");
 *	log_event(LOG_WARNING, LOGID_DEFERRED, event_id, patient_id,
 *		  "deferred: %s", reason);
 * DESCRIPTION
 *	Under systemd (JOURNAL_STREAM set, or LOG_TARGET_JOURNAL) lines go to
 *	the journal through sd_journal_send with the fields MESSAGE,
 *	PRIORITY, SYSLOG_IDENTIFIER, MESSAGE_ID (a fixed 128-bit id per kind
 *	of line), CAREPOST_EVENT and CAREPOST_PATIENT_REF. Otherwise they go
 *	to stderr as "ident[pid]: level: [event=… patient=…] text".
 *
 *	The patient id is never logged: log_event turns it into an opaque
 *	reference, HMAC-SHA256(ref key, patient id) truncated to 12 hex
 *	digits, which the admin can recompute from an id but which does not
 *	reveal one. The ref key is the first 32 bytes of what
 *	log_set_ref_key was given (the token key, see runtime.h); without
 *	one, a fixed one-byte key of 0. Callers must never pass names,
 *	addresses, subjects or bodies in the text.
 *
 *	Lines above max_priority are dropped. The text is cut at 1023 bytes
 *	(a stderr line at 1399). Control characters (below 0x20, and DEL) of
 *	the text, and on stderr of the whole line, become spaces: a newline
 *	in a reason from outside cannot forge a line of its own.
 * ERRORS
 *	None reported: log_event always returns 0, and a journal or stderr
 *	that cannot be written loses the line silently.
 * OWNERSHIP
 *	log_setup keeps the ident pointer (it must outlive logging: a string
 *	literal). log_set_ref_key copies the key into static storage, which
 *	is never wiped. Nothing else is kept.
 * THREAD SAFETY
 *	log_setup and log_set_ref_key before threads start; the rest is
 *	thread-safe (each line is written with one write()).
 */
#ifndef CAREPOST_LOG_H
#define CAREPOST_LOG_H

#include <stddef.h>
#include <syslog.h>

enum log_target { LOG_TARGET_AUTO, LOG_TARGET_STDERR, LOG_TARGET_JOURNAL };

/* MESSAGE_ID values, one per kind of line (journalctl MESSAGE_ID=...). */
#define LOGID_GENERIC	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a00"
#define LOGID_STARTED	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a01"
#define LOGID_SENT	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a02"
#define LOGID_DEFERRED	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a03"
#define LOGID_FAILED	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a04"
#define LOGID_SUPPRESSED "6b1c2a0e9f4d4c53a1e7c0d2b9f31a05"
#define LOGID_CLAIMED	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a06"
#define LOGID_INGESTED	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a07"
#define LOGID_QUARANTINE "6b1c2a0e9f4d4c53a1e7c0d2b9f31a08"
#define LOGID_CONFIG	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a09"
/* Inbound kinds besides LOGID_INGESTED (filed) and LOGID_QUARANTINE. */
#define LOGID_DUPLICATE	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a0a"
#define LOGID_BOUNCE	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a0b"
#define LOGID_UNSUBSCRIBED "6b1c2a0e9f4d4c53a1e7c0d2b9f31a0c"
#define LOGID_AUTOREPLY	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a0d"
/* A security event: the parse helper killed by its seccomp filter. */
#define LOGID_SECURITY	"6b1c2a0e9f4d4c53a1e7c0d2b9f31a0e"
/* A feedback report (complaint) recorded. */
#define LOGID_COMPLAINT "6b1c2a0e9f4d4c53a1e7c0d2b9f31a0f"

void log_setup(const char *ident, enum log_target target, int max_priority);
void log_set_ref_key(const void *key, size_t len);

/* log_patient_ref - the opaque reference for a patient id (13 bytes). */
void log_patient_ref(const char *patient_id, char out[13]);

/* log_event - returns 0; event_id and patient_id may be NULL. */
int log_event(int priority, const char *msgid, const char *event_id,
	      const char *patient_id, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#define log_error(...) log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_event(LOG_WARNING, LOGID_GENERIC, NULL, NULL, __VA_ARGS__)
#define log_info(...) log_event(LOG_INFO, LOGID_GENERIC, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_event(LOG_DEBUG, LOGID_GENERIC, NULL, NULL, __VA_ARGS__)

#endif
