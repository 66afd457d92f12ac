/*
 * NAME
 *	carepostd - the carepost daemon
 * SYNOPSIS
 *	carepostd [-c FILE] [--once] [--check-config] [--help] [--version]
 * DESCRIPTION
 *	Opens the store, templates and keys named by the config, tells
 *	systemd it is ready, then loops: claim new portal events, send what
 *	is due (lib/outbound), sleep until the next due time or the poll
 *	interval. SIGHUP re-reads config and templates (a bad new config is
 *	rejected and the old one kept); SIGTERM and SIGINT finish the batch
 *	in flight and exit. --once does all due work and exits.
 * DIAGNOSTICS
 *	Exit codes from sysexits.h: 0, EX_USAGE, EX_CONFIG (config, key or
 *	template problems), EX_UNAVAILABLE, EX_SOFTWARE.
 */
#include <getopt.h>
#include <signal.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"
#include "outbound.h"
#include "pgp.h"
#include "runtime.h"

static volatile sig_atomic_t got_stop;
static volatile sig_atomic_t got_reload;
static volatile int stop_flag;

static void
on_signal(int sig)
{
	if (sig == SIGHUP) {
		got_reload = 1;
	} else {
		got_stop = 1;
		stop_flag = 1;
	}
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
};

static int
daemon_open(struct daemon *d, const char *config, struct cp_error *err)
{
	int r;

	memset(d, 0, sizeof(*d));
	r = runtime_open(&d->rt, config, RUNTIME_ALL, err);
	if (r < 0)
		return r;
	return outbound_new(d->rt.cfg, d->rt.store, d->rt.templates, d->rt.key,
			    d->rt.keylen, &d->ob, err);
}

static void
daemon_close(struct daemon *d)
{
	outbound_free(d->ob);
	runtime_close(&d->rt);
}

static int
check_config(const char *config)
{
	struct daemon d;
	struct cp_error err;
	struct pgp *p = NULL;
	int r, problems = 0;

	cp_error_clear(&err);
	r = daemon_open(&d, config, &err);
	if (r < 0) {
		fprintf(stderr, "carepostd: %s\n", err.text);
		problems++;
	} else if (d.rt.cfg->gpg_clinic_key == NULL) {
		fprintf(stderr, "carepostd: %s: [gpg] clinic_key: not set: "
			"recipients with keys will get notices only\n", config);
		problems++;
	} else if (pgp_new(d.rt.cfg->gpg_home, d.rt.cfg->gpg_clinic_key, &p, &err) < 0) {
		fprintf(stderr, "carepostd: %s\n", err.text);
		problems++;
	}
	pgp_free(p);
	daemon_close(&d);
	if (problems)
		return EX_CONFIG;
	printf("carepostd: %s: configuration, templates, keys and store OK\n", config);
	return 0;
}

static void
sleep_until_work(struct daemon *d, int64_t now)
{
	int64_t next = INT64_MAX, wait;
	uint64_t wd_usec = 0;
	struct timespec ts;

	store_next_due(d->rt.store, &next, NULL);
	wait = d->rt.cfg->poll_interval > 0 ? d->rt.cfg->poll_interval : 30;
	if (next != INT64_MAX && next - now < wait)
		wait = next - now;
	if (wait < 1)
		wait = 1;
	if (sd_watchdog_enabled(0, &wd_usec) > 0 &&
	    (int64_t)(wd_usec / 2000000) < wait)
		wait = (int64_t)(wd_usec / 2000000) > 0 ? (int64_t)(wd_usec / 2000000) : 1;
	ts.tv_sec = wait;
	ts.tv_nsec = 0;
	nanosleep(&ts, NULL);		/* a signal cuts it short */
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
			  fresh.rt.keylen, &fresh.ob, &err) < 0)) {
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
	sd_notify(0, "READY=1");
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
	const char *config_arg = NULL, *config;
	int once = 0, check = 0, c, r, rc = 0;
	struct daemon d;
	struct cp_error err;
	struct sigaction sa;

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
	config = runtime_config_path(config_arg);
	log_setup("carepostd", LOG_TARGET_AUTO, LOG_INFO);
	if (pgp_global_init() < 0) {
		fprintf(stderr, "carepostd: GPGME is too old or missing\n");
		return EX_UNAVAILABLE;
	}
	if (check)
		return check_config(config);

	cp_error_clear(&err);
	r = daemon_open(&d, config, &err);
	if (r < 0) {
		log_event(LOG_ERR, LOGID_CONFIG, NULL, NULL, "cannot start: %s", err.text);
		daemon_close(&d);
		return EX_CONFIG;
	}
	log_setup("carepostd", LOG_TARGET_AUTO, d.rt.cfg->log_level);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_event(LOG_INFO, LOGID_STARTED, NULL, NULL, "started (version %s)",
		  CAREPOST_VERSION);
	sd_notify(0, "READY=1\nSTATUS=running");
	while (!got_stop) {
		struct outbound_stats st = { 0 };
		int64_t now = cp_now();

		if (got_reload) {
			got_reload = 0;
			reload(&d, config);
		}
		cp_error_clear(&err);
		r = outbound_run(d.ob, now, &stop_flag, &st, &err);
		if (r < 0) {
			log_event(LOG_ERR, LOGID_GENERIC, NULL, NULL,
				  "outbound run failed, will retry: %s", err.text);
			sd_notifyf(0, "STATUS=store error: %s", err.text);
			rc = once ? EX_SOFTWARE : 0;
		} else {
			size_t queued = 0;

			store_count(d.rt.store, DB_SCHEDULE, &queued, NULL);
			sd_notifyf(0, "WATCHDOG=1\nSTATUS=queue %zu; last run sent %zu, "
				   "deferred %zu, failed %zu", queued, st.sent,
				   st.deferred, st.failed);
			if (st.claimed || st.sent || st.deferred || st.failed)
				log_info("run: claimed %zu, sent %zu (%zu encrypted, %zu notices), "
					 "deferred %zu, failed %zu, suppressed %zu, expired %zu, "
					 "quiet-hours %zu", st.claimed, st.sent, st.encrypted,
					 st.notices, st.deferred, st.failed, st.suppressed,
					 st.expired, st.rescheduled);
		}
		if (once)
			break;
		sleep_until_work(&d, cp_now());
	}
	sd_notify(0, "STOPPING=1");
	log_event(LOG_INFO, LOGID_STARTED, NULL, NULL, "stopped");
	daemon_close(&d);
	return rc;
}
