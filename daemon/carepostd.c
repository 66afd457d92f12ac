/*
 * NAME
 *	carepostd - the carepost daemon
 * SYNOPSIS
 *	carepostd [-c FILE] [--once] [--check-config] [--help] [--version]
 * DESCRIPTION
 *	Opens the store, templates and keys named by the config, tells
 *	systemd it is ready, then runs an sd_event loop:
 *
 *	- the send timer claims new portal events and sends one batch of
 *	  due records (lib/outbound), then fires again at once while work
 *	  remains, else at the next due time or after the poll interval;
 *	- the retention timer runs the retention pass (lib/retain) a
 *	  minute after start and then every [retention] interval, one
 *	  bounded transaction per turn of the loop, so that a send round
 *	  waits for one batch of it at most;
 *	- signals arrive through a self-pipe: SIGHUP re-reads config and
 *	  templates (a bad new config is rejected and the old one kept);
 *	  SIGTERM and SIGINT let the SMTP transaction in flight finish
 *	  (outbound checks the stop flag between batches) and exit;
 *	- sd_event sends WATCHDOG=1 at half of WatchdogSec while the loop
 *	  turns; every batch is short, so a hung relay or store shows up
 *	  as a missed watchdog;
 *	- STATUS= carries the queue depth and the last error; the metrics
 *	  file ([daemon] metrics_file) is rewritten after runs.
 *
 *	--once does all due work and exits.
 * DIAGNOSTICS
 *	Exit codes from sysexits.h (carepostd(8) says when): 0, EX_USAGE,
 *	EX_CONFIG (config, key or template problems), EX_UNAVAILABLE,
 *	EX_SOFTWARE and EX_OSERR (the event loop), EX_CANTCREAT (the lock),
 *	EX_TEMPFAIL (the lock is held; with --once, a store, mailbox or
 *	filing failure: nothing lost, run again).
 */
#include <getopt.h>
#include <signal.h>
#include <sysexits.h>
#include <errno.h>
#include <fcntl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>
#include <time.h>

#include "audit.h"
#include "inbound.h"
#include "inround.h"
#include "keycheck.h"
#include "queue.h"
#include "retain.h"
#include "checkpoint.h"
#include "log.h"
#include "metrics.h"
#include "outbound.h"
#include "pgp.h"
#include "parsehelper.h"
#include "pgphelper.h"
#include "pgpserve.h"
#include "runtime.h"
#include "storefmt.h"
#include "wake.h"

static volatile sig_atomic_t got_stop;
static volatile sig_atomic_t got_reload;
static volatile int stop_flag;
static int sig_pipe[2] = { -1, -1 };

/* Async-signal-safe: set a flag, wake the loop. */
static void
on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP) {
		got_reload = 1;
	} else {
		got_stop = 1;
		stop_flag = 1;
	}
	if (sig_pipe[1] >= 0)
		(void)!write(sig_pipe[1], "", 1);
	errno = saved;
}

static void
usage(FILE *f)
{
	fputs("usage: carepostd [-c FILE] [--once] [--check-config]\n"
	      "  -c, --config FILE   configuration (default /etc/carepost/carepost.conf)\n"
	      "      --once          do all due work (send, ingest) and exit\n"
	      "      --check-config  validate config, templates, keys and store; exit\n"
	      "  -h, --help          this help\n"
	      "  -V, --version       print the version\n", f);
}

/* The daemon's state that a reload replaces. */
struct daemon {
	struct runtime rt;
	struct outbound *ob;
	struct inbound *ib;
};

static int
daemon_open(struct daemon *d, const char *config, struct cp_error *err)
{
	int r;

	memset(d, 0, sizeof(*d));
	/* a store of an older format is upgraded once the lock is held */
	r = runtime_open(&d->rt, config, RUNTIME_ALL | RUNTIME_STORE_OLDER, err);
	if (r < 0)
		return r;
	r = outbound_new(d->rt.cfg, d->rt.store, d->rt.templates, d->rt.key,
			 d->rt.keylen, &d->ob, err);
	if (r < 0)
		return r;
	return inbound_new(d->rt.cfg, d->rt.store, d->rt.key, d->rt.keylen,
			   &d->ib, err);
}

static void
daemon_close(struct daemon *d)
{
	inbound_free(d->ib);
	outbound_free(d->ob);
	runtime_close(&d->rt);
}

/* problem - report one finding of --check-config. */
static void
problem(unsigned *n, const char *text)
{
	fprintf(stderr, "carepostd: %s\n", text);
	(*n)++;
}

static void
check_secret(unsigned *n, const char *config, const char *what, const char *spec)
{
	struct cp_error err;
	char *secret = NULL, text[sizeof(err.text) + 64];
	size_t len = 0;

	cp_error_clear(&err);
	if (config_read_secret(spec, 4096, &secret, &len, &err) < 0) {
		snprintf(text, sizeof(text), "%s: %s: %s", config, what, err.text);
		problem(n, text);
	}
	if (secret != NULL) {
		explicit_bzero(secret, len);
		free(secret);
	}
}

/*
 * store_key_apart - warn where the key that opens the inbox sits with the
 * data: the clinic's signing key (which must work unattended on this
 * host), or any key whose secret works here without a person. carepostd
 * only wraps data keys to the store key; opening an inbox message is
 * carepostctl's, run by a person (carepost.conf(5), store_key).
 */
static void
store_key_apart(const char *config, struct pgp *p, const char *clinic,
		const char *store_key)
{
	struct cp_error err;

	cp_error_clear(&err);
	if (strcasecmp(clinic, store_key) == 0)
		fprintf(stderr, "carepostd: %s: [gpg] store_key: warning: the "
			"clinic's signing key (also its default): inbox messages "
			"at rest are then only as safe as a key that must work "
			"unattended on this host; give them a key of their own, "
			"its secret off this host (see carepost.conf(5))\n", config);
	else if (pgp_secret_available(p, store_key, &err) == 0)
		fprintf(stderr, "carepostd: %s: [gpg] store_key: warning: its "
			"secret key works here without a person: a copy of this "
			"host opens the inbox; keep it on a smartcard or behind a "
			"passphrase (see carepost.conf(5))\n", config);
}

/*
 * check_checkpoints - [audit]: a checkpoint key of its own whose secret
 * works here (carepostd signs unattended), and a file it can append to.
 */
static void
check_checkpoints(unsigned *n, const char *config, const struct cp_config *cfg)
{
	const char *key = cfg->audit_checkpoint_key;
	struct pgp *p = NULL;
	struct cp_error err;
	char text[sizeof(err.text) + 4096 + 256], dir[4096], *slash;

	if (key == NULL) {
		fprintf(stderr, "carepostd: %s: [audit] checkpoint_key: warning: "
			"not set: no signed checkpoints of the audit trail (a "
			"trail cut at its end or rewritten whole would not be "
			"seen; see carepost.conf(5))\n", config);
		return;
	}
	if ((cfg->gpg_clinic_key && strcasecmp(key, cfg->gpg_clinic_key) == 0) ||
	    (cfg->gpg_store_key && strcasecmp(key, cfg->gpg_store_key) == 0))
		fprintf(stderr, "carepostd: %s: [audit] checkpoint_key: warning: "
			"the same key as [gpg] %s: give checkpoints a key meant "
			"only for them\n", config,
			cfg->gpg_clinic_key && strcasecmp(key, cfg->gpg_clinic_key) == 0
			? "clinic_key" : "store_key");
	cp_error_clear(&err);
	if (pgp_new(cfg->gpg_home, key, &p, &err) < 0) {
		snprintf(text, sizeof(text), "%s: [audit] checkpoint_key: %s",
			 config, err.text);
		problem(n, text);
	}
	pgp_free(p);
	snprintf(dir, sizeof(dir), "%s", cfg->audit_checkpoint_file);
	if ((slash = strrchr(dir, '/')) != NULL)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	if (access(dir, W_OK) < 0) {
		snprintf(text, sizeof(text), "%s: [audit] checkpoint_file: cannot "
			 "write in %s: %s", config, dir, strerror(errno));
		problem(n, text);
	}
}

/*
 * check_config - --check-config: every check runs on its own, so that
 * one pass names every problem (config syntax stops the rest: without a
 * config there is nothing to check).
 */
static int
check_config(const char *config)
{
	struct runtime rt;
	struct cp_error err;
	struct cp_config *cfg;
	struct store *store = NULL;
	struct tmplset *ts = NULL;
	struct pgp *p = NULL;
	unsigned n = 0;
	char text[sizeof(err.text) + 128];

	cp_error_clear(&err);
	if (config_load(config, &cfg, &err) < 0) {
		problem(&n, err.text);
		return EX_CONFIG;
	}
	if (runtime_open(&rt, config, RUNTIME_KEY, &err) < 0)
		problem(&n, err.text);		/* the token key */
	runtime_close(&rt);

	cp_error_clear(&err);
	if (storefmt_open(cfg->store_path, cfg->store_map_size, STOREFMT_OLDER_OK,
			  &store, &err) < 0)
		problem(&n, err.text);
	store_close(store);

	cp_error_clear(&err);
	if (tmplset_load(cfg->templates_dir, cfg->default_locale, &ts, &err) < 0)
		problem(&n, err.text);
	else if (cfg->digest_window > 0 && !tmplset_has(ts, TMPLSET_OPTIONAL)) {
		snprintf(text, sizeof(text), "%s: [delivery] digest_window: the "
			 "templates of %s/%s lack digest.full.mustache or "
			 "digest.notice.mustache", config, cfg->templates_dir,
			 cfg->default_locale);
		problem(&n, text);
	}
	tmplset_free(ts);

	cp_error_clear(&err);
	if (cfg->gpg_clinic_key == NULL) {
		snprintf(text, sizeof(text), "%s: [gpg] clinic_key: not set: "
			 "nothing can be signed, recipients with keys would get "
			 "notices only", config);
		problem(&n, text);
	} else if (pgp_new(cfg->gpg_home, cfg->gpg_clinic_key, &p, &err) < 0) {
		snprintf(text, sizeof(text), "%s: [gpg] clinic_key: %s", config, err.text);
		problem(&n, text);
	} else {
		const char *store_key = cfg->gpg_store_key ? cfg->gpg_store_key :
					cfg->gpg_clinic_key;
		long long exp = 0;

		if (pgp_own_key_check(p, cfg->gpg_clinic_key, &err) < 0) {
			snprintf(text, sizeof(text), "%s: [gpg] clinic_key: %s", config,
				 err.text);
			problem(&n, text);
		} else if (pgp_key_expires(p, cfg->gpg_clinic_key, &exp, &err) == 0 &&
			   exp > 0 && exp - cp_now() < 30LL * 86400) {
			fprintf(stderr, "carepostd: %s: [gpg] clinic_key: warning: "
				"expires in %lld days\n", config,
				(long long)((exp - cp_now()) / 86400));
		}
		cp_error_clear(&err);
		if (cfg->gpg_store_key && pgp_own_key_check(p, store_key, &err) < 0) {
			snprintf(text, sizeof(text), "%s: [gpg] store_key: %s", config,
				 err.text);
			problem(&n, text);
		} else {
			store_key_apart(config, p, cfg->gpg_clinic_key, store_key);
		}
	}
	pgp_free(p);
	p = NULL;
	check_checkpoints(&n, config, cfg);
	if (cfg->unsubscribe_url == NULL)
		fprintf(stderr, "carepostd: %s: [portal] unsubscribe_url: warning: not "
			"set: subscription mail (recalls, education) offers no "
			"one-click unsubscribe, which Gmail, Yahoo and Outlook require "
			"of bulk senders (see carepost.conf(5))\n", config);

	if (cfg->smtp_user != NULL)
		check_secret(&n, config, "[smtp] password_file",
			     cfg->smtp_password_file);
	if (cfg->imap_host != NULL)
		check_secret(&n, config, "[imap] password_file",
			     cfg->imap_password_file);
	if (cfg->metrics_file != NULL) {
		char dir[4096], *slash;

		snprintf(dir, sizeof(dir), "%s", cfg->metrics_file);
		slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = '\0';
		else if (slash != NULL)
			*slash = '\0';
		else
			snprintf(dir, sizeof(dir), ".");
		if (access(dir, W_OK) < 0) {
			fprintf(stderr, "carepostd: %s: [daemon] metrics_file: "
				"cannot write in %s: %s\n", config, dir, strerror(errno));
			n++;
		}
	}
	config_free(cfg);
	if (n > 0) {
		fprintf(stderr, "carepostd: %s: %u problem%s found\n", config, n,
			n == 1 ? "" : "s");
		return EX_CONFIG;
	}
	printf("carepostd: %s: configuration, templates, keys and store OK\n", config);
	return 0;
}

static void
reload(struct daemon *d, const char *config)
{
	struct daemon fresh;
	struct cp_error err;
	struct store *keep = d->rt.store;

	sd_notify(0, "RELOADING=1");
	cp_error_clear(&err);
	memset(&fresh, 0, sizeof(fresh));
	/* The store stays open: a new path takes a restart. */
	if (runtime_open(&fresh.rt, config, RUNTIME_KEY | RUNTIME_TEMPLATES, &err) < 0 ||
	    (fresh.rt.store = keep,
	     outbound_new(fresh.rt.cfg, keep, fresh.rt.templates, fresh.rt.key,
			  fresh.rt.keylen, &fresh.ob, &err) < 0) ||
	    inbound_new(fresh.rt.cfg, keep, fresh.rt.key, fresh.rt.keylen,
			&fresh.ib, &err) < 0) {
		log_event(LOG_ERR, LOGID_CONFIG, NULL, NULL,
			  "reload rejected, keeping the running configuration: %s", err.text);
		fresh.rt.store = NULL;
		daemon_close(&fresh);
		log_set_ref_key(d->rt.key, d->rt.keylen);
		sd_notify(0, "READY=1\nSTATUS=reload rejected: see the journal");
		return;
	}
	if (strcmp(fresh.rt.cfg->store_path, d->rt.cfg->store_path) != 0)
		log_event(LOG_WARNING, LOGID_CONFIG, NULL, NULL,
			  "[store] path changed: takes effect at the next restart");
	d->rt.store = NULL;
	daemon_close(d);
	*d = fresh;
	log_event(LOG_INFO, LOGID_CONFIG, NULL, NULL, "configuration reloaded");
	cp_error_clear(&err);
	if (audit_daemon_action(d->rt.store, AUDIT_RELOADED, &err) < 0)
		log_event(LOG_ERR, LOGID_CONFIG, NULL, NULL,
			  "reload applied, but not audited: %s", err.text);
	sd_notify(0, "READY=1");
}


#define METRICS_EVERY	10		/* seconds between metrics rewrites */
#define GAUGES_EVERY	30		/* seconds between store gauge walks */
#define KEYS_EVERY	3600		/* seconds between keyring checks */

/*
 * release_leases - a crash left batches "sending": what the relay had
 * accepted is recorded from the sending journal, the rest goes again now.
 */
static void
release_leases(struct daemon *d)
{
	struct cp_error err;
	size_t n = 0;

	cp_error_clear(&err);
	if (outbound_recover(d->ob, cp_now(), &n, &err) < 0)
		log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL,
			  "cannot read the sending journal (those messages may "
			  "go twice): %s", err.text);
	else if (n > 0)
		log_event(LOG_NOTICE, LOGID_GENERIC, NULL, NULL,
			  "%zu messages accepted before a crash recorded as sent", n);
	cp_error_clear(&err);
	if (queue_release_leases(d->rt.store, cp_now(), &n, &err) < 0)
		log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL,
			  "cannot requeue interrupted sends (they go after "
			  "their lease): %s", err.text);
	else if (n > 0)
		log_event(LOG_WARNING, LOGID_GENERIC, NULL, NULL,
			  "requeued %zu events interrupted by a crash; their "
			  "messages may go twice, with the same Message-ID", n);
}

/*
 * upgrade_store - the store format's upgrade steps (storefmt.h), under
 * the sender's lock, before anything else writes; a store without the
 * format record gets it.
 */
static int
upgrade_store(struct daemon *d)
{
	struct cp_error err;
	unsigned version = STOREFMT_VERSION;
	size_t ran = 0;
	int r;

	cp_error_clear(&err);
	/* A step reads every record of what it indexes (seconds a million):
	 * systemd waits for it rather than kill a start that works. */
	if (storefmt_version(d->rt.store, &version, NULL, NULL) == 0 &&
	    version < STOREFMT_VERSION)
		sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=upgrading the store "
			   "from format version %u to %u", 3600ULL * 1000000, version,
			   STOREFMT_VERSION);
	r = storefmt_upgrade(d->rt.store, &ran, &err);
	if (r < 0)
		log_event(LOG_ERR, LOGID_CONFIG, NULL, NULL, "cannot start: %s "
			  "(the store stays at the version it reached)", err.text);
	return r;
}

/* What the loop keeps across reloads. */
struct carepostd {
	const char *config;
	struct daemon d;
	sd_event *ev;
	sd_event_source *send_timer;
	struct metrics m;		/* counters since start, last gauges */
	int64_t gauges_at;		/* when the store gauges were read */
	int64_t keys_at;		/* when the keyring was checked */
	int64_t metrics_at;		/* when the metrics file was written */
	/* The IMAP side ([imap] host set): lib/inround, on two sources. */
	struct inround *in;
	sd_event_source *imap_timer;	/* the next round: backoff, poll, IDLE renewal */
	sd_event_source *imap_io;	/* the socket while idling */
	/* The retention pass (lib/retain): one step per turn of the loop. */
	sd_event_source *retain_timer;
	sd_event_source *checkpoint_timer;	/* signed audit checkpoints */
	struct retain_pass *retain;	/* the pass under way, or NULL */
	/* [daemon] wake_socket, as it was at start: the portal's "new events" */
	char *wake_path;
	int wake_fd;
	ino_t wake_ino;
	sd_event_source *wake_src;
	int64_t send_began_ms;		/* monotonic: the last send round's start */
	int send_soon;			/* notices queued outside a round: send */
	char last_error[sizeof(((struct cp_error *)0)->text)];
};

static void arm(struct carepostd *cd, int64_t wait);
static void check_keys_on_file(struct carepostd *cd, struct pgp *p, int64_t now);

static void
add_stats(struct metrics *m, const struct outbound_stats *st)
{
	m->sent_notices += st->notices;
	m->sent_encrypted += st->encrypted;
	m->deferred += st->deferred;
	m->failed += st->failed;
	m->suppressed += st->suppressed;
	m->expired += st->expired;
	m->unsubscribed += st->unsubscribed;
	m->unsub_forged += st->unsub_forged;
	m->unsub_expired += st->unsub_expired;
	m->auth_refused += st->auth_refused;
}

/* read_gauges - what the store and keyring say now (throttled). */
static void
read_gauges(struct carepostd *cd, int64_t now, int force)
{
	struct store *s = cd->d.rt.store;
	struct metrics *m = &cd->m;
	struct bounce_tally bt;
	size_t n;
	int64_t oldest;

	if (store_count(s, DB_SCHEDULE, &n, NULL) == 0)
		m->queue_depth = n;
	if (store_count(s, DB_EVENTS, &n, NULL) == 0)
		m->unclaimed = n;
	if (!force && now - cd->gauges_at < GAUGES_EVERY)
		return;
	cd->gauges_at = now;
	if (queue_oldest_pending(s, &oldest, NULL) == 0)
		m->oldest_pending_age = oldest == INT64_MAX || oldest > now ?
					0 : now - oldest;
	if (bounce_tally(s, &bt, NULL) == 0) {
		m->bounced_invalid = bt.by_state[BOUNCE_INVALID];
		m->bounced_soft = bt.by_state[BOUNCE_SOFT];
	}
	if (cd->keys_at == 0 || now - cd->keys_at >= KEYS_EVERY) {
		struct pgp *p = NULL;
		struct cp_error err;

		cd->keys_at = now;
		m->keys_expiring = -1;
		cp_error_clear(&err);
		if (pgp_new(cd->d.rt.cfg->gpg_home, NULL, &p, &err) == 0)
			check_keys_on_file(cd, p, now);
		else
			log_warning("cannot check the keys: %s", err.text);
		pgp_free(p);
	}
}

/*
 * check_keys_on_file - the keys of patients and proxies, checked for
 * their expiry (keycheck.h): notices queued to those whose key expires
 * within 30 and 7 days, once each, sent by the next round.
 */
static void
check_keys_on_file(struct carepostd *cd, struct pgp *p, int64_t now)
{
	struct keycheck_stats st;
	struct cp_error err;

	cp_error_clear(&err);
	if (keycheck_notify(cd->d.rt.store, p, cd->d.rt.cfg, now, &st, &err) < 0) {
		log_warning("cannot check the keys on file: %s", err.text);
		return;
	}
	cd->m.keys_expiring = (int64_t)st.keyring_expiring;
	if (st.queued > 0 || st.unusable > 0)
		log_event(LOG_NOTICE, LOGID_GENERIC, NULL, NULL, "keys on file: %zu, "
			  "expiring within 30 days %zu, unusable %zu (carepostctl keys); "
			  "expiry notices queued: %zu", st.keys, st.expiring, st.unusable,
			  st.queued);
	if (st.queued > 0 && cd->send_timer != NULL) {
		cd->send_soon = 1;	/* on_send, which may have called us, */
		arm(cd, 0);		/* re-arms after: it looks at this */
	}
}

static void
write_metrics(struct carepostd *cd, int64_t now, int force)
{
	const char *path = cd->d.rt.cfg->metrics_file;
	struct cp_error err;

	if (path == NULL || (!force && now - cd->metrics_at < METRICS_EVERY))
		return;
	cd->metrics_at = now;
	read_gauges(cd, now, force);
	cp_error_clear(&err);
	if (metrics_write(path, &cd->m, &err) < 0)
		log_warning("metrics file not written: %s", err.text);
}

static void
notify_status(struct carepostd *cd)
{
	sd_notifyf(0, "STATUS=queue %llu; sent %llu, deferred %llu, failed %llu "
		   "since start; last error: %s",
		   (unsigned long long)cd->m.queue_depth,
		   (unsigned long long)(cd->m.sent_notices + cd->m.sent_encrypted),
		   (unsigned long long)cd->m.deferred,
		   (unsigned long long)cd->m.failed,
		   cd->last_error[0] ? cd->last_error : "none");
}

/*
 * arm_timer - fire timer s once, wait seconds from now (0: at once). Now is
 * the clock's, not sd_event_now's (when this turn of the loop began): a
 * round that took long and arms itself "at once" must not come before a
 * timer that fell due while it ran (an IMAP round cut at INROUND_BUDGET_MS
 * lets the send round go first).
 */
static void
arm_timer(sd_event *ev, sd_event_source *s, int64_t wait)
{
	uint64_t t = (uint64_t)cp_mono_ms() * 1000u;

	(void)ev;
	sd_event_source_set_time(s, t + (uint64_t)wait * 1000000u);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* arm - run the send timer again after wait seconds (0: at once). */
static void
arm(struct carepostd *cd, int64_t wait)
{
	arm_timer(cd->ev, cd->send_timer, wait);
}

/* log_run - one line for a queue run that did something. */
static void
log_run(const struct outbound_stats *st)
{
	if (st->claimed || st->sent || st->deferred || st->failed ||
	    st->suppressed || st->expired || st->held)
		log_info("run: claimed %zu, sent %zu (%zu encrypted, %zu notices), "
			 "deferred %zu, failed %zu, suppressed %zu, expired %zu, "
			 "quiet-hours %zu, held for a digest %zu, digests %zu",
			 st->claimed, st->sent, st->encrypted, st->notices,
			 st->deferred, st->failed, st->suppressed, st->expired,
			 st->rescheduled, st->held, st->digests);
}

/* log_retained - one line for a retention pass that removed something. */
static void
log_retained(const struct retain_counts *c)
{
	size_t i, total = 0;

	for (i = 0; i < RETAIN__COUNT; i++)
		total += c->pruned[i];
	if (total == 0)
		return;
	log_info("retention: pruned %zu of %zu records in %zu transactions "
		 "(delivery %zu, internal %zu, threads %zu, seen %zu, acks %zu, "
		 "bounces %zu, clinic %zu, inbox %zu, data keys %zu, digest "
		 "windows %zu, key candidates %zu)", total,
		 c->examined, c->transactions, c->pruned[RETAIN_DELIVERY],
		 c->pruned[RETAIN_INTERNAL], c->pruned[RETAIN_THREADS],
		 c->pruned[RETAIN_SEEN], c->pruned[RETAIN_ACKS],
		 c->pruned[RETAIN_BOUNCES], c->pruned[RETAIN_CLINIC],
		 c->pruned[RETAIN_INBOX], c->pruned[RETAIN_DATA_KEYS],
		 c->pruned[RETAIN_DIGESTS], c->pruned[RETAIN_CANDIDATES]);
}

static int
on_send(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct carepostd *cd = userdata;
	const struct cp_config *cfg = cd->d.rt.cfg;
	struct outbound_stats st = { 0 };
	struct cp_error err;
	int64_t now = cp_now(), wait, next = INT64_MAX;
	int r;

	if (got_stop)
		return 0;
	cd->send_began_ms = cp_mono_ms();
	cp_error_clear(&err);
	r = outbound_step(cd->d.ob, now, &stop_flag, &st, &err);
	add_stats(&cd->m, &st);
	cd->m.last_run = now;
	wait = cfg->poll_interval > 0 ? cfg->poll_interval : 30;
	if (r < 0) {
		cd->m.errors++;
		snprintf(cd->last_error, sizeof(cd->last_error), "%s", err.text);
		log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL,
			  "queue run failed, will retry: %s", err.text);
	} else if (r > 0) {
		wait = 0;		/* more waiting: again, after the loop turns */
	} else if (store_next_due(cd->d.rt.store, &next, NULL) == 0 &&
		   next != INT64_MAX && next - now < wait) {
		wait = next - now > 0 ? next - now : 1;
	}
	log_run(&st);
	read_gauges(cd, now, 0);
	write_metrics(cd, now, wait > 0);
	notify_status(cd);
	if (cd->send_soon) {
		cd->send_soon = 0;
		wait = 0;
	}
	arm(cd, wait);
	return 0;
}

/*
 * on_retain - one step of the retention pass (one bounded transaction):
 * the next step after the loop has turned (a send round due goes
 * first), the next pass [retention] interval after this one ended.
 */
static int
on_retain(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct carepostd *cd = userdata;
	const struct cp_config *cfg = cd->d.rt.cfg;
	struct retain_policy pol;
	struct retain_counts c;
	struct cp_error err;
	int r;

	if (got_stop)
		return 0;
	cp_error_clear(&err);
	if (cd->retain == NULL) {
		retain_policy_from_config(cfg, &pol);
		if (retain_pass_new(&pol, 0, &cd->retain) < 0) {
			arm_timer(cd->ev, cd->retain_timer, cfg->retain_interval);
			return 0;
		}
	}
	r = retain_step(cd->d.rt.store, cd->retain, cp_now(), &err);
	if (r > 0) {
		arm_timer(cd->ev, cd->retain_timer, 0);
		return 0;
	}
	retain_pass_counts(cd->retain, &c);
	retain_pass_free(cd->retain);
	cd->retain = NULL;
	if (r < 0)
		log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL,
			  "retention pass failed, will retry: %s", err.text);
	else
		log_retained(&c);
	/* LMDB would go on writing the page buffers of this process's past
	 * transactions (bytes of events long final) into the pages it
	 * writes: a fresh environment has none (store.h). Nothing is open
	 * on the store between two turns of the loop. */
	cp_error_clear(&err);
	if (store_refresh(cd->d.rt.store, &err) < 0) {
		log_event(LOG_CRIT, LOGID_GENERIC, NULL, NULL, "%s", err.text);
		return sd_event_exit(cd->ev, -EIO);
	}
	arm_timer(cd->ev, cd->retain_timer, cfg->retain_interval);
	return 0;
}

/*
 * make_checkpoint - a signed checkpoint of the audit trail's head
 * (lib/checkpoint), when checkpoint_key is set and the trail grew since
 * the last one: every [audit] checkpoint_interval, and at stop; its
 * record's sequence number goes to the journal too.
 */
static void
make_checkpoint(struct carepostd *cd)
{
	const struct cp_config *cfg = cd->d.rt.cfg;
	struct pgp *p = NULL;
	struct cp_error err;
	uint64_t seq = 0;
	int made = 0;

	if (cfg->audit_checkpoint_key == NULL)
		return;
	cp_error_clear(&err);
	if (pgp_new(cfg->gpg_home, cfg->audit_checkpoint_key, &p, &err) < 0 ||
	    checkpoint_write(cd->d.rt.store, p, cfg->audit_checkpoint_file, cp_now(),
			     &made, &seq, &err) < 0)
		log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL, "audit checkpoint "
			  "not made (the next in %ds): %s",
			  cfg->audit_checkpoint_interval, err.text);
	else if (made)
		log_event(LOG_NOTICE, LOGID_GENERIC, NULL, NULL, "audit checkpoint: "
			  "record %llu signed into %s", (unsigned long long)seq,
			  cfg->audit_checkpoint_file);
	pgp_free(p);
}

static int
on_checkpoint(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct carepostd *cd = userdata;

	if (got_stop)
		return 0;
	arm_timer(cd->ev, cd->checkpoint_timer,
		  cd->d.rt.cfg->audit_checkpoint_interval);
	make_checkpoint(cd);
	return 0;
}

/* At most one send round a wake-up asks for per WAKE_MIN_MS. */
#define WAKE_MIN_MS	100

/*
 * on_wake - the portal says "new events" (wake.h): a send round at once,
 * or WAKE_MIN_MS after the last one began, unless one is due sooner. A
 * flood of datagrams costs at most ten rounds a second.
 */
static int
on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct carepostd *cd = userdata;
	int64_t now = cp_mono_ms(), at = cd->send_began_ms + WAKE_MIN_MS;
	uint64_t armed = 0;
	int enabled = SD_EVENT_OFF;

	wake_drain(fd);
	if (at < now)
		at = now;
	sd_event_source_get_enabled(cd->send_timer, &enabled);
	sd_event_source_get_time(cd->send_timer, &armed);
	if (enabled != SD_EVENT_OFF && armed <= (uint64_t)at * 1000u)
		return 0;		/* a round is due sooner */
	sd_event_source_set_time(cd->send_timer, (uint64_t)at * 1000u);
	sd_event_source_set_enabled(cd->send_timer, SD_EVENT_ONESHOT);
	return 0;
}

/* wake_open - the wake socket of [daemon] wake_socket, watched: 0 (also
 * when none is configured), or -1 after logging why. */
static int
wake_open(struct carepostd *cd)
{
	const char *path = cd->d.rt.cfg->wake_socket;
	struct cp_error err;
	int r;

	cd->wake_fd = -1;
	if (path == NULL || *path == '\0')
		return 0;
	cp_error_clear(&err);
	if ((cd->wake_fd = wake_listen(path, &cd->wake_ino, &err)) < 0) {
		cd->wake_fd = -1;
		/* taken, or not a socket: two configs meet, the admin's to
		 * mend; else (no such directory...) the poll alone serves */
		if (err.code == -EADDRINUSE || err.code == -EEXIST) {
			log_error("%s", err.text);
			return -1;
		}
		log_warning("%s: without it, new events wait for the poll", err.text);
		return 0;
	}
	if ((cd->wake_path = strdup(path)) == NULL ||
	    (r = sd_event_add_io(cd->ev, &cd->wake_src, cd->wake_fd, EPOLLIN, on_wake,
				 cd)) < 0) {
		log_error("%s: [daemon] wake_socket: cannot watch it", path);
		wake_close(cd->wake_fd, path, cd->wake_ino);
		cd->wake_fd = -1;
		return -1;
	}
	return 0;
}

static void imap_arm(struct carepostd *cd, int64_t wait);
static int imap_renew(struct carepostd *cd);

static int
on_signal_pipe(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct carepostd *cd = userdata;
	char drain[64];

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	if (got_stop) {
		sd_notify(0, "STOPPING=1");
		return sd_event_exit(cd->ev, 0);
	}
	if (got_reload) {
		got_reload = 0;
		reload(&cd->d, cd->config);
		arm(cd, 0);
		if (cd->imap_timer != NULL && imap_renew(cd) == 0 &&
		    cd->in != NULL)	/* reconnect with what is now set */
			imap_arm(cd, 0);
	}
	return 0;
}

/* ---- inbound: the IMAP round (lib/inround) on the loop's timers ------ */

static void
imap_fail(struct carepostd *cd, const struct cp_error *err)
{
	snprintf(cd->last_error, sizeof(cd->last_error), "%s", err->text);
	log_event(LOG_WARNING, LOGID_GENERIC, NULL, NULL, "%s", err->text);
	cd->m.errors++;
}

/* count_round - what a round committed, into the metrics. */
static void
count_round(struct metrics *m, const struct inround_stats *st)
{
	m->ingested[METRICS_REPLY] += st->replies;
	m->ingested[METRICS_FORM] += st->forms;
	m->ingested[METRICS_UNSUBSCRIBE] += st->unsubscribes;
	m->ingested[METRICS_DSN] += st->reports;
	m->ingested[METRICS_AUTOREPLY] += st->autoreplies;
	m->ingested[METRICS_COMPLAINT] += st->complaints;
	for (size_t i = 0; i < METRICS__FEEDBACK; i++)
		m->feedback[i] += st->feedback[i];
	m->ingested[METRICS_UNKNOWN] += st->unknown;
	m->bounces += st->reports;
	m->bounces_forged += st->forged;
	m->auth_refused += st->auth_refused;
	m->parser_lost += st->parser_lost;
	m->quarantined += st->quarantined;
	m->duplicates += st->duplicates;
}

/* alive - after each message of a round, and before each try of the
 * parse helper (inbound_progress): one reply may cost gpg three
 * [gpg] time_limits, and the watchdog must not take that for a hang. */
static void
alive(void *userdata)
{
	sd_notify(0, "WATCHDOG=1");
}

/* imap_step - one inbound_step, counted; the acks it queued go now. */
static int
imap_step(struct carepostd *cd)
{
	struct inround_stats st = { 0 };
	struct cp_error err;
	int r;

	cp_error_clear(&err);
	r = inbound_step(cd->in, &stop_flag, alive, NULL, &st, &err);
	count_round(&cd->m, &st);
	if (st.queued && cd->ev != NULL)
		arm(cd, 0);		/* acknowledgements and alerts go now */
	if (r < 0)
		imap_fail(cd, &err);
	return r;
}

static void
imap_arm(struct carepostd *cd, int64_t wait)
{
	arm_timer(cd->ev, cd->imap_timer, wait);
}

static void
imap_unwatch(struct carepostd *cd)
{
	cd->imap_io = sd_event_source_disable_unref(cd->imap_io);
}

static int on_imap_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/* imap_round - one turn of the IMAP side, from its timer or socket. */
static void
imap_round(struct carepostd *cd)
{
	const struct cp_config *cfg = cd->d.rt.cfg;
	struct cp_error err;
	int r;
	int poll_every = cfg->imap_poll_interval > 0 ? cfg->imap_poll_interval : 60;

	if (got_stop || cd->in == NULL)	/* stopping, or [imap] off now */
		return;
	imap_unwatch(cd);
	r = imap_step(cd);	/* ends an IDLE that runs */
	if (r < 0) {
		imap_arm(cd, inround_backoff(cd->in));
		return;
	}
	if (r > 0) {
		imap_arm(cd, 0);
		return;
	}
	cp_error_clear(&err);
	r = inround_idle_begin(cd->in, &err);
	if (r == -ENOTSUP) {
		imap_arm(cd, poll_every);
		return;
	}
	if (r < 0) {
		imap_fail(cd, &err);
		imap_arm(cd, inround_backoff(cd->in));
		return;
	}
	if (r > 0 ||
	    sd_event_add_io(cd->ev, &cd->imap_io, inround_fd(cd->in), EPOLLIN,
			    on_imap_io, cd) < 0) {
		imap_arm(cd, 0);	/* news already, or no watch: step now */
		return;
	}
	imap_arm(cd, INROUND_IDLE_RENEW);
}

static int
on_imap_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	imap_round(userdata);
	return 0;
}

static int
on_imap_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct carepostd *cd = userdata;

	sd_event_source_set_enabled(s, SD_EVENT_OFF);
	imap_round(cd);
	return 0;
}

/* imap_drain - --once: everything waiting in the mailbox, then return. */
static int
imap_drain(struct carepostd *cd)
{
	int r;

	while ((r = imap_step(cd)) > 0 && !got_stop)
		;
	inround_disconnect(cd->in);
	return r < 0 ? -1 : 0;
}

/* imap_renew - the round for the daemon's configuration now (at start and
 * after a reload, which made a new inbound); NULL when [imap] is off. */
static int
imap_renew(struct carepostd *cd)
{
	struct cp_error err;

	imap_unwatch(cd);
	inround_free(cd->in);
	cd->in = NULL;
	if (cd->d.rt.cfg->imap_host == NULL)
		return 0;
	cp_error_clear(&err);
	if (inround_new(cd->d.rt.cfg, cd->d.rt.store, cd->d.ib, &cd->in, &err) < 0) {
		log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL, "%s", err.text);
		return -1;
	}
	/* and before each try of the parse helper, within one message */
	inbound_progress(cd->d.ib, alive, NULL);
	return 0;
}


static int
setup_signals(void)
{
	struct sigaction sa;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
run_loop(struct carepostd *cd)
{
	sd_event_source *sig_src = NULL;
	int r;

	r = sd_event_new(&cd->ev);
	if (r >= 0)
		r = sd_event_add_io(cd->ev, &sig_src, sig_pipe[0], EPOLLIN,
				    on_signal_pipe, cd);
	if (r >= 0)
		/* 10 ms: a woken round (wake.h) is not held for coalescing */
		r = sd_event_add_time(cd->ev, &cd->send_timer, CLOCK_MONOTONIC, 0,
				      10000, on_send, cd);
	if (r >= 0)
		r = sd_event_add_time(cd->ev, &cd->retain_timer, CLOCK_MONOTONIC, 0,
				      100000, on_retain, cd);
	if (r >= 0)
		r = sd_event_add_time(cd->ev, &cd->checkpoint_timer, CLOCK_MONOTONIC, 0,
				      100000, on_checkpoint, cd);
	if (r >= 0 && cd->d.rt.cfg->imap_host != NULL)
		r = imap_renew(cd) < 0 ? -ENOMEM :
		    sd_event_add_time(cd->ev, &cd->imap_timer, CLOCK_MONOTONIC, 0,
				      100000, on_imap_timer, cd);
	if (r >= 0 && sd_event_set_watchdog(cd->ev, 1) < 0)
		log_warning("WATCHDOG_USEC is invalid: no watchdog pings");
	if (r < 0) {
		log_error("event loop setup failed: %s", strerror(-r));
		sd_event_source_unref(sig_src);
		sd_event_unref(cd->ev);
		return EX_OSERR;
	}
	if (wake_open(cd) < 0) {
		cd->send_timer = sd_event_source_unref(cd->send_timer);
		cd->retain_timer = sd_event_source_unref(cd->retain_timer);
		cd->checkpoint_timer = sd_event_source_unref(cd->checkpoint_timer);
		cd->imap_timer = sd_event_source_unref(cd->imap_timer);
		sd_event_source_unref(sig_src);
		cd->ev = sd_event_unref(cd->ev);
		return EX_CONFIG;
	}
	arm(cd, 0);
	/* The first pass a minute after start: the first sends go first. */
	arm_timer(cd->ev, cd->retain_timer, 60);
	arm_timer(cd->ev, cd->checkpoint_timer, 60);
	if (cd->imap_timer != NULL)
		imap_arm(cd, 0);
	log_event(LOG_INFO, LOGID_STARTED, NULL, NULL, "started (version %s)",
		  CAREPOST_VERSION);
	read_gauges(cd, cp_now(), 1);
	sd_notify(0, "READY=1");
	notify_status(cd);
	if (got_stop)			/* a signal before the pipe was watched */
		sd_event_exit(cd->ev, 0);
	r = sd_event_loop(cd->ev);
	write_metrics(cd, cp_now(), 1);
	make_checkpoint(cd);		/* the last records before the stop */
	imap_unwatch(cd);
	inround_free(cd->in);
	cd->in = NULL;
	cd->imap_timer = sd_event_source_unref(cd->imap_timer);
	cd->send_timer = sd_event_source_unref(cd->send_timer);
	cd->retain_timer = sd_event_source_unref(cd->retain_timer);
	cd->checkpoint_timer = sd_event_source_unref(cd->checkpoint_timer);
	cd->wake_src = sd_event_source_unref(cd->wake_src);
	wake_close(cd->wake_fd, cd->wake_path, cd->wake_ino);
	cd->wake_fd = -1;
	free(cd->wake_path);
	cd->wake_path = NULL;
	retain_pass_free(cd->retain);
	cd->retain = NULL;
	sd_event_source_unref(sig_src);
	cd->ev = sd_event_unref(cd->ev);
	if (r < 0) {
		log_error("event loop failed: %s", strerror(-r));
		return EX_SOFTWARE;
	}
	return 0;
}

/* send_all - --once: claim and send everything due now. */
static int
send_all(struct carepostd *cd)
{
	struct outbound_stats st = { 0 };
	struct cp_error err;
	int r;

	cp_error_clear(&err);
	r = outbound_run(cd->d.ob, cp_now(), &stop_flag, &st, &err);
	add_stats(&cd->m, &st);
	log_run(&st);
	if (r < 0) {
		log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL, "queue run failed: %s",
			  err.text);
		cd->m.errors++;
	}
	return r;
}

/*
 * run_once - all due work, then exit (--once): send, ingest what waits in
 * the mailbox, and send again (the acknowledgements and alerts that
 * ingesting queued).
 */
static int
run_once(struct carepostd *cd)
{
	int r, imap_r = 0;

	read_gauges(cd, cp_now(), 1);	/* keys first: their notices go now */
	r = send_all(cd);
	if (cd->d.rt.cfg->imap_host != NULL && !got_stop) {
		imap_r = imap_renew(cd) < 0 ? -1 : imap_drain(cd);
		inround_free(cd->in);
		cd->in = NULL;
		if (r == 0 && !got_stop)
			r = send_all(cd);
	}
	cd->m.last_run = cp_now();
	write_metrics(cd, cp_now(), 1);
	/* A store that cannot be written (a full file system) loses nothing
	 * and wants the same run again later, as a mailbox that cannot be
	 * read does. */
	return r < 0 || imap_r < 0 ? EX_TEMPFAIL : 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, 'o' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_arg = NULL;
	int once = 0, check = 0, c, rc, lock_fd;
	struct carepostd cd;
	struct cp_error err;

	/* Started as its own gpg or parse helper (lib/pgphelper,
	 * lib/parsehelper): nothing else. */
	rc = pgpserve_main(argc, argv);
	if (rc >= 0)
		return rc;
	rc = parsehelper_main(argc, argv);
	if (rc >= 0)
		return rc;
	/* No core file of a process that holds PHI (the helper sees to its
	 * own). */
	if (cp_no_core_dumps() < 0) {
		fprintf(stderr, "carepostd: cannot disable core dumps: %s\n",
			strerror(errno));
		return EX_OSERR;
	}
	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_arg = optarg; break;
		case 'o': once = 1; break;
		case 'k': check = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': puts("carepostd " CAREPOST_VERSION); return 0;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EX_USAGE;
	}
	memset(&cd, 0, sizeof(cd));
	cd.config = runtime_config_path(config_arg);
	cd.m.keys_expiring = -1;
	log_setup("carepostd", LOG_TARGET_AUTO, LOG_INFO);
	if (pgp_global_init() < 0) {
		fprintf(stderr, "carepostd: GPGME is too old or missing\n");
		return EX_UNAVAILABLE;
	}
	if (check)
		return check_config(cd.config);
	rc = pgphelper_enable("carepost-pgp");
	if (rc < 0)
		log_warning("gpg helper unavailable (%s): gpg runs in-process",
			    strerror(-rc));
	/* Fetched mail is parsed only in the parse helper (lib/parsehelper). */
	rc = parsehelper_enable("carepost-parse");
	if (rc < 0)
		log_warning("parse helper unavailable (%s): inbound mail stays in "
			    "the mailbox", strerror(-rc));
	if (setup_signals() < 0) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		return EX_OSERR;
	}

	cp_error_clear(&err);
	if (daemon_open(&cd.d, cd.config, &err) < 0) {
		log_event(LOG_ERR, LOGID_CONFIG, NULL, NULL, "cannot start: %s", err.text);
		daemon_close(&cd.d);
		return EX_CONFIG;
	}
	log_setup("carepostd", LOG_TARGET_AUTO, cd.d.rt.cfg->log_level);
	lock_fd = store_lock_sender(cd.d.rt.cfg->store_path, &err);
	if (lock_fd < 0) {
		log_event(LOG_ERR, LOGID_CONFIG, NULL, NULL, "cannot start: %s", err.text);
		daemon_close(&cd.d);
		return lock_fd == -EBUSY ? EX_TEMPFAIL : EX_CANTCREAT;
	}
	if (upgrade_store(&cd.d) < 0) {
		daemon_close(&cd.d);
		close(lock_fd);
		return EX_DATAERR;
	}
	release_leases(&cd.d);

	rc = once ? run_once(&cd) : run_loop(&cd);
	if (!once)
		log_event(LOG_INFO, LOGID_STARTED, NULL, NULL, "stopped");
	daemon_close(&cd.d);
	close(lock_fd);
	return rc;
}
