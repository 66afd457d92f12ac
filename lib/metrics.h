/*
 * NAME
 *	metrics - the daemon's counters as a Prometheus text file
 * SYNOPSIS
 *	#include "metrics.h"
 *
 *	struct metrics m = { .queue_depth = n, ... };
 *	metrics_format(&m, &buf);
 *	metrics_write("/run/carepost/metrics", &m, &err);
 * DESCRIPTION
 *	metrics_format renders m in the Prometheus text exposition format
 *	(version 0.0.4): one HELP and TYPE line per family, every name
 *	prefixed "carepost_". Counters count since the daemon started (a
 *	restart resets them, which Prometheus expects of counters); gauges
 *	are what the caller put in m (carepostd reads them from the store
 *	before each write). keys_expiring < 0 leaves its family out.
 *
 *	metrics_write writes the text to PATH.tmp (a fixed name beside path,
 *	opened O_NOFOLLOW and truncated) and renames it over path, so a
 *	reader (node_exporter's textfile collector, a script) never sees
 *	half a file; there is no fsync. The file has mode 0640 whatever the
 *	umask (carepost.service sets UMask=0077): readable by the carepost
 *	user and group (RuntimeDirectoryMode=0750), so an exporter in that
 *	group can read it. It holds counts only, no ids and nothing about any
 *	patient.
 * ERRORS
 *	metrics_format: 0, or -ENOMEM (out may then hold part of the text).
 *	metrics_write: -ENOMEM, -ENAMETOOLONG (PATH.tmp longer than 4095
 *	bytes), or the -errno of open, write, close or rename, with the
 *	path in err; the temporary file is removed on failure.
 * OWNERSHIP
 *	m is borrowed for the call. metrics_format appends to the caller's
 *	buffer. metrics_class_name returns a static string.
 * THREAD SAFETY
 *	Reentrant, but two writers of one path share PATH.tmp: one process
 *	(carepostd's main loop) writes a given metrics file.
 */
#ifndef CAREPOST_METRICS_H
#define CAREPOST_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "util.h"

/* Ingest classes counted, in this order (labels of carepost_ingested_total). */
enum metrics_class {
	METRICS_REPLY, METRICS_FORM, METRICS_UNSUBSCRIBE, METRICS_DSN,
	METRICS_AUTOREPLY, METRICS_COMPLAINT, METRICS_UNKNOWN, METRICS__CLASSES
};

/* What came of a feedback report (labels of carepost_complaints_total). */
enum metrics_feedback {
	METRICS_FB_NONE,		/* not a feedback report: not counted */
	METRICS_FB_OPTED_OUT,		/* the recipient opted out of the category */
	METRICS_FB_SHOWN,		/* transactional or security mail: shown
					   to staff, nothing stopped */
	METRICS_FB_REPEAT,		/* its message was complained of before */
	METRICS_FB_NO_CHANGE,		/* not-spam, virus, of staff mail: no change */
	METRICS_FB_AUTH_FAILURE,	/* RFC 6591: the sender's DKIM/SPF failed */
	METRICS_FB_FORGED,		/* names no message carepost sent */
	METRICS_FB_UNMAPPED,		/* malformed, or maps to nothing now */
	METRICS__FEEDBACK
};

struct metrics {
	/* gauges */
	uint64_t queue_depth;		/* records in the schedule */
	uint64_t unclaimed;		/* portal events not yet claimed */
	int64_t oldest_pending_age;	/* seconds; 0 when nothing pending */
	uint64_t bounced_invalid;	/* addresses marked invalid */
	uint64_t bounced_soft;		/* addresses with soft bounces */
	int64_t keys_expiring;		/* keys expiring within 30 days; -1 unknown */
	int64_t last_run;		/* epoch of the last queue run */
	/* counters since start */
	uint64_t sent_notices;
	uint64_t sent_encrypted;
	uint64_t deferred;
	uint64_t failed;
	uint64_t suppressed;
	uint64_t expired;
	uint64_t bounces;		/* delivery reports ingested */
	uint64_t bounces_forged;	/* of those: naming no message carepost
					   sent (inbound_result.forged) */
	uint64_t unsubscribed;		/* one-click unsubscribes applied */
	uint64_t unsub_forged;		/* tokens carepost did not make */
	uint64_t unsub_expired;		/* naming what is no longer stored */
	uint64_t auth_refused;		/* refused for DKIM/SPF/DMARC */
	uint64_t feedback[METRICS__FEEDBACK];	/* feedback reports by outcome */
	uint64_t ingested[METRICS__CLASSES];	/* decided now, not duplicates */
	uint64_t quarantined;
	uint64_t duplicates;		/* fetched again after their decision */
	uint64_t parser_lost;		/* of those: the parse helper lost twice
					   on the message (inbound_result.
					   parser_lost) */
	uint64_t errors;		/* store or server failures of a run */
};

/* metrics_class_name - "reply", "form", ... (the label value). */
const char *metrics_class_name(enum metrics_class c);
/* metrics_feedback_name - "opted_out", "shown_to_staff", ... */
const char *metrics_feedback_name(enum metrics_feedback f);

/* metrics_format - append the exposition text of m to out (0 or -ENOMEM). */
int metrics_format(const struct metrics *m, struct buf *out);

/* metrics_write - format m and replace path with it atomically. */
int metrics_write(const char *path, const struct metrics *m,
		  struct cp_error *err);

#endif
