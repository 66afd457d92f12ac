/*
 * metrics - see metrics.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

static const char *const class_names[METRICS__CLASSES] = {
	"reply", "form", "unsubscribe", "dsn", "autoreply", "unknown",
};

const char *
metrics_class_name(enum metrics_class c)
{
	return (unsigned)c < METRICS__CLASSES ? class_names[c] : "unknown";
}

static int
family(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP carepost_%s %s\n# TYPE carepost_%s %s\n",
			  name, help, name, type);
}

/* one - a family of a single unlabelled value. */
static int
one(struct buf *b, const char *name, const char *type, const char *help,
    int64_t v)
{
	return family(b, name, type, help) |
	       buf_printf(b, "carepost_%s %" PRId64 "\n", name, v);
}

int
metrics_format(const struct metrics *m, struct buf *b)
{
	int r = 0;
	unsigned i;

	r |= one(b, "queue_depth", "gauge",
		 "Delivery records waiting in the schedule.",
		 (int64_t)m->queue_depth);
	r |= one(b, "unclaimed_events", "gauge",
		 "Portal events not yet claimed by carepostd.",
		 (int64_t)m->unclaimed);
	r |= one(b, "oldest_pending_age_seconds", "gauge",
		 "Age of the oldest event not yet delivered, failed or expired.",
		 (int64_t)m->oldest_pending_age);
	r |= family(b, "messages_total", "counter",
		    "Outbound messages by result since the daemon started.");
	r |= buf_printf(b, "carepost_messages_total{result=\"sent\",kind=\"notice\"} %" PRIu64 "\n"
			"carepost_messages_total{result=\"sent\",kind=\"encrypted\"} %" PRIu64 "\n"
			"carepost_messages_total{result=\"deferred\",kind=\"any\"} %" PRIu64 "\n"
			"carepost_messages_total{result=\"failed\",kind=\"any\"} %" PRIu64 "\n"
			"carepost_messages_total{result=\"suppressed\",kind=\"any\"} %" PRIu64 "\n"
			"carepost_messages_total{result=\"expired\",kind=\"any\"} %" PRIu64 "\n",
			m->sent_notices, m->sent_encrypted, m->deferred, m->failed,
			m->suppressed, m->expired);
	r |= one(b, "bounces_total", "counter",
		 "Delivery reports ingested since the daemon started.",
		 (int64_t)m->bounces);
	r |= one(b, "bounces_forged_total", "counter",
		 "Delivery reports that named no message carepost sent "
		 "(forged, or of mail sent before tags), quarantined, since "
		 "the daemon started.",
		 (int64_t)m->bounces_forged);
	r |= family(b, "bounced_addresses", "gauge",
		    "Recipient addresses marked by bounces, by state.");
	r |= buf_printf(b, "carepost_bounced_addresses{state=\"invalid\"} %" PRIu64 "\n"
			"carepost_bounced_addresses{state=\"soft\"} %" PRIu64 "\n",
			m->bounced_invalid, m->bounced_soft);
	r |= family(b, "ingested_total", "counter",
		    "Inbound messages ingested by class since the daemon started.");
	for (i = 0; i < METRICS__CLASSES; i++)
		r |= buf_printf(b, "carepost_ingested_total{class=\"%s\"} %" PRIu64 "\n",
				class_names[i], m->ingested[i]);
	r |= one(b, "quarantined_total", "counter",
		 "Inbound messages quarantined since the daemon started.",
		 (int64_t)m->quarantined);
	r |= one(b, "errors_total", "counter",
		 "Runs that failed on the store or a server since the daemon started.",
		 (int64_t)m->errors);
	if (m->keys_expiring >= 0) {
		r |= one(b, "keys_expiring_30d", "gauge",
			 "OpenPGP keys in the keyring that expire within 30 days.",
			 m->keys_expiring);
	}
	r |= one(b, "last_run_timestamp_seconds", "gauge",
		 "When the queue was last run (Unix time).",
		 (int64_t)m->last_run);
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
