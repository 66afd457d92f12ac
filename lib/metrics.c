/*
 * metrics - see metrics.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

static const char *const class_names[METRICS__CLASSES] = {
	"reply", "form", "unsubscribe", "dsn", "autoreply", "complaint", "unknown",
};

static const char *const feedback_names[METRICS__FEEDBACK] = {
	"none", "opted_out", "shown_to_staff", "repeat", "no_change",
	"auth_failure", "forged", "unmapped",
};

const char *
metrics_class_name(enum metrics_class c)
{
	return (unsigned)c < METRICS__CLASSES ? class_names[c] : "unknown";
}

const char *
metrics_feedback_name(enum metrics_feedback f)
{
	return (unsigned)f < METRICS__FEEDBACK ? feedback_names[f] : "none";
}

static int
family(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP carepost_%s %s\n# TYPE carepost_%s %s\n",
			  name, help, name, type);
}

/*
 * The samples, in the order written. A row with a help text begins a
 * family (HELP and TYPE lines); a row without one adds a sample to the
 * family above it. A value is a uint64_t of struct metrics at off, or an
 * int64_t where signed is set (never written when negative: unknown).
 */
struct sample {
	const char *family;
	const char *type;
	const char *help;
	const char *labels;
	size_t off;
	int is_signed;
};

#define U(f)	offsetof(struct metrics, f), 0
#define I(f)	offsetof(struct metrics, f), 1

static const struct sample samples[] = {
	{ "queue_depth", "gauge", "Delivery records waiting in the schedule.",
	  "", U(queue_depth) },
	{ "unclaimed_events", "gauge", "Portal events not yet claimed by carepostd.",
	  "", U(unclaimed) },
	{ "oldest_pending_age_seconds", "gauge",
	  "Age of the oldest event not yet delivered, failed or expired.",
	  "", I(oldest_pending_age) },
	{ "messages_total", "counter",
	  "Outbound messages by result since the daemon started.",
	  "{result=\"sent\",kind=\"notice\"}", U(sent_notices) },
	{ "messages_total", NULL, NULL, "{result=\"sent\",kind=\"encrypted\"}",
	  U(sent_encrypted) },
	{ "messages_total", NULL, NULL, "{result=\"deferred\",kind=\"any\"}",
	  U(deferred) },
	{ "messages_total", NULL, NULL, "{result=\"failed\",kind=\"any\"}",
	  U(failed) },
	{ "messages_total", NULL, NULL, "{result=\"suppressed\",kind=\"any\"}",
	  U(suppressed) },
	{ "messages_total", NULL, NULL, "{result=\"expired\",kind=\"any\"}",
	  U(expired) },
	{ "bounces_total", "counter",
	  "Delivery reports ingested since the daemon started.", "", U(bounces) },
	{ "bounces_forged_total", "counter",
	  "Delivery reports that named no message carepost sent (forged, or of "
	  "mail sent before tags), quarantined, since the daemon started.",
	  "", U(bounces_forged) },
	{ "unsubscribes_total", "counter",
	  "One-click unsubscribes the portal handed in, by outcome, since the "
	  "daemon started.", "{outcome=\"applied\"}", U(unsubscribed) },
	{ "unsubscribes_total", NULL, NULL, "{outcome=\"forged\"}", U(unsub_forged) },
	{ "unsubscribes_total", NULL, NULL, "{outcome=\"expired\"}", U(unsub_expired) },
	{ "relay_auth_refusals_total", "counter",
	  "Messages the relay refused or deferred, or a delivery report said "
	  "were refused, for the sender's authentication (DKIM, SPF, DMARC: "
	  "the setup is broken), since the daemon started.", "", U(auth_refused) },
	{ "parser_lost_total", "counter",
	  "Inbound messages quarantined because the parse helper died, was "
	  "killed or ran out of time on them twice, since the daemon started.",
	  "", U(parser_lost) },
	{ "bounced_addresses", "gauge",
	  "Recipient addresses marked by bounces, by state.",
	  "{state=\"invalid\"}", U(bounced_invalid) },
	{ "bounced_addresses", NULL, NULL, "{state=\"soft\"}", U(bounced_soft) },
};

static const struct sample tail[] = {
	{ "quarantined_total", "counter",
	  "Inbound messages quarantined since the daemon started.", "",
	  U(quarantined) },
	{ "duplicates_total", "counter",
	  "Inbound messages fetched again after they were decided (moved "
	  "again, not filed again; not counted by class) since the daemon "
	  "started.", "", U(duplicates) },
	{ "errors_total", "counter",
	  "Runs that failed on the store or a server since the daemon started.",
	  "", U(errors) },
	{ "keys_expiring_30d", "gauge",
	  "OpenPGP keys in the keyring that expire within 30 days.", "",
	  I(keys_expiring) },
	{ "last_run_timestamp_seconds", "gauge",
	  "When the queue was last run (Unix time).", "", I(last_run) },
};

#undef U
#undef I

static int
write_samples(const struct metrics *m, const struct sample *t, size_t n,
	      struct buf *b)
{
	const char *base = (const char *)m;
	int r = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (t[i].is_signed) {
			int64_t v;

			memcpy(&v, base + t[i].off, sizeof(v));
			if (v < 0)
				continue;	/* unknown */
			if (t[i].help != NULL)
				r |= family(b, t[i].family, t[i].type, t[i].help);
			r |= buf_printf(b, "carepost_%s%s %" PRId64 "\n", t[i].family,
					t[i].labels, v);
		} else {
			uint64_t v;

			memcpy(&v, base + t[i].off, sizeof(v));
			if (t[i].help != NULL)
				r |= family(b, t[i].family, t[i].type, t[i].help);
			r |= buf_printf(b, "carepost_%s%s %" PRIu64 "\n", t[i].family,
					t[i].labels, v);
		}
	}
	return r;
}

int
metrics_format(const struct metrics *m, struct buf *b)
{
	int r;
	unsigned i;

	r = write_samples(m, samples, sizeof(samples) / sizeof(samples[0]), b);
	r |= family(b, "ingested_total", "counter",
		    "Inbound messages ingested by class since the daemon started.");
	for (i = 0; i < METRICS__CLASSES; i++)
		r |= buf_printf(b, "carepost_ingested_total{class=\"%s\"} %" PRIu64 "\n",
				class_names[i], m->ingested[i]);
	r |= family(b, "complaints_total", "counter",
		    "Feedback reports (RFC 5965: a recipient marked carepost's mail "
		    "as spam) by outcome since the daemon started.");
	for (i = METRICS_FB_NONE + 1; i < METRICS__FEEDBACK; i++)
		r |= buf_printf(b, "carepost_complaints_total{outcome=\"%s\"} %" PRIu64 "\n",
				feedback_names[i], m->feedback[i]);
	r |= write_samples(m, tail, sizeof(tail) / sizeof(tail[0]), b);
	return r < 0 ? -ENOMEM : 0;
}

int
metrics_write(const char *path, const struct metrics *m, struct cp_error *err)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	char tmp[4096];
	int fd, r;
	size_t off = 0;

	if (metrics_format(m, &b) < 0)
		return cp_error_set(err, -ENOMEM, "metrics: out of memory");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return cp_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return cp_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
	/* Group-readable whatever the umask (the unit's is 0077): an
	 * exporter in the carepost group reads it, as RuntimeDirectoryMode=
	 * 0750 means it to. Counts only: nothing about any patient. */
	if (fchmod(fd, 0640) < 0) {
		r = -errno;
		close(fd);
		unlink(tmp);
		return cp_error_set(err, r, "%s: %s", tmp, strerror(-r));
	}
	while (off < b.len) {
		ssize_t w = write(fd, b.data + off, b.len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = -errno;
			close(fd);
			unlink(tmp);
			return cp_error_set(err, r, "%s: %s", tmp, strerror(-r));
		}
		off += (size_t)w;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return cp_error_set(err, r, "%s: %s", path, strerror(-r));
	}
	return 0;
}
