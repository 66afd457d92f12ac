/*
 * NAME
 *	followup - the mail a filed reply queues: the staff alert, the
 *	acknowledgement or form request to its sender
 * SYNOPSIS
 *	#include "followup.h"
 *
 *	struct followup f = { .cfg = cfg, .now = now, .inbox_id = id, ... };
 *	struct followup_result out = { 0 };
 *
 *	... in the transaction that files the reply:
 *	followup_txn(s, txn, &f, &out, &err);
 * DESCRIPTION
 *	Run in the transaction that files the reply, so that a crash never
 *	loses or doubles what it queues. Each piece is a delivery record of
 *	an internal type ("PREFIX:INBOX_ID"), with its schedule entry and a
 *	thread of its own (made from the reply's: replies to an
 *	acknowledgement stay in the conversation, and a bounce of it maps to
 *	that record); outbound sends it as a PHI-free notice.
 *
 *	- The staff alert ("alert:", type staff_alert, no In-Reply-To) goes
 *	  to the department's staff ([department NAME] staff), else the
 *	  default department's; nobody on staff: none. With [routing]
 *	  alert_window 0 there is one per reply. Else alerts are coalesced
 *	  per desk (the department whose staff they are) and class (urgent or
 *	  not, so an urgent reply never waits behind a normal one), through
 *	  the acks entry "alert/DESK/urgent|normal" (record.h, alert_window):
 *	  its held alert, while still queued, takes the reply (its count + 1);
 *	  else, from the window's end on, an alert now and a window until now
 *	  + alert_window; else a new held alert due at the window's end, and
 *	  the next window runs from its sending. Every reply is in an alert
 *	  sent after it was filed; after the first, alerts of a class go out
 *	  at least a window apart.
 *	- To the sender (sender_ref), unless no_autoresponse (RFC 3834): a
 *	  form request ("formreq:", form_incomplete) when a form reply still
 *	  misses answers and none was sent in the conversation (event) this
 *	  UTC day, else an acknowledgement ("ack:", reply_ack) when none was
 *	  sent this day. Each is marked in the acks database
 *	  ("EVENT/DAY", and "EVENT/DAY/form" for a request), a request
 *	  counting as the day's acknowledgement.
 * ERRORS
 *	The store's codes; -ENOMEM. Nothing of a failed call stays: the
 *	caller's transaction is aborted.
 * OWNERSHIP
 *	f and its strings are borrowed for the call; out is the caller's and
 *	is set afresh at each call (store_write may run the transaction more
 *	than once).
 * THREAD SAFETY
 *	As the store.
 */
#ifndef CAREPOST_FOLLOWUP_H
#define CAREPOST_FOLLOWUP_H

#include <stdint.h>

#include "config.h"
#include "record.h"
#include "store.h"
#include "util.h"

struct followup {
	const struct cp_config *cfg;
	int64_t now;
	const char *inbox_id;		/* the filed reply's */
	const char *patient;
	const char *department;
	const char *event;		/* the conversation's */
	const char *message_id;		/* the reply's, for In-Reply-To; may be NULL */
	const char *sender_ref;		/* "patient" or "proxy:N" */
	int urgent;
	int form;			/* a reply on a form_request thread */
	int form_missing;		/* answers it still misses */
	int no_autoresponse;		/* RFC 3834: answer nothing */
	const struct thread_record *thread;	/* the reply's */
};

struct followup_result {
	int alerted;			/* a staff alert queued or extended */
	int alert_held;			/* held for the desk's window */
	int acked;			/* an acknowledgement queued */
	int form_incomplete;		/* a form request queued */
};

int followup_txn(struct store *s, MDB_txn *txn, const struct followup *f,
		 struct followup_result *out, struct cp_error *err);

#endif
