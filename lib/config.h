/*
 * NAME
 *	config - read carepost.conf (INI) into a struct cp_config
 * SYNOPSIS
 *	#include "config.h"
 *
 *	struct cp_config *cfg;
 *	if (config_load("/etc/carepost/carepost.conf", &cfg, &err) < 0)
 *		... err.text is "FILE:LINE: [section] key: what was expected" ...
 *	config_free(cfg);
 * DESCRIPTION
 *	The file is "[section]" headers and "key = value" lines; '#' and ';'
 *	start comment lines; blank lines are ignored; values are trimmed and
 *	may be wrapped in double quotes. Every key is known: an unknown
 *	section or key, a malformed line, a bad value (number, duration,
 *	size, boolean, enum, time of day) is an error that names the file,
 *	the line and the key. Lines are limited to 4096 bytes and the file
 *	to 1 MiB.
 *
 *	Durations accept a number with an optional unit: s, m, h, d (no unit:
 *	seconds). Sizes accept K, M, G suffixes (powers of 1024). Booleans:
 *	yes/no/true/false/on/off/1/0.
 *
 *	Secrets never live in the file: *_file keys name a file to read, or
 *	"credential:NAME" for $CREDENTIALS_DIRECTORY/NAME (systemd's
 *	LoadCredential=). config_read_secret resolves both.
 *
 *	Relative paths in the file are resolved against the directory that
 *	holds the file, so that an example config works from a checkout.
 *
 *	Keys and defaults (see carepost.conf(5)):
 *	[store]     path (/var/lib/carepost/store), map_size (1G)
 *	[smtp]      server (localhost:25), helo (the host name),
 *	            starttls (opportunistic|required|off: opportunistic),
 *	            user, password_file, ca_file, timeout (60s),
 *	            batch_size (100), sessions (1)
 *	[imap]      host, port (993), tls (implicit|starttls|off: implicit),
 *	            user, password_file, mailbox (INBOX),
 *	            processed_folder (carepost/processed),
 *	            quarantine_folder (carepost/quarantine), poll_interval (60s),
 *	            batch_size (50)
 *	[gpg]       home (unset: GnuPG's default), clinic_key (fingerprint of the
 *	            signing key), store_key (fingerprint for inbox at-rest
 *	            encryption; defaults to clinic_key), workers (1),
 *	            time_limit (10s: each inbound decryption or verification)
 *	[templates] dir (/usr/local/share/carepost/templates), default_locale (en)
 *	[portal]    clinic_name, portal_url, from_address, from_name,
 *	            reply_domain, bounce_domain, unsubscribe_address,
 *	            message_id_domain (defaults to the from_address domain)
 *	[delivery]  poll_interval (30s), retry_base (5m), retry_max (6h),
 *	            max_age (3d), quiet_start (21:00), quiet_end (08:00),
 *	            token_ttl (30d), default_tz (UTC), digest_window (0: off;
 *	            0 to 1d)
 *	[routing]   default_department (general), urgent_words (comma list),
 *	            alert_window (600s; 0 to 1d),
 *	            staff.NAME = addresses of the staff of department NAME
 *	[security]  token_key_file, trusted_authserv_id, require_dmarc (no),
 *	            feedback_reporters (comma list of domains; unset: any)
 *	[retention] delivery (90d), internal (30d), threads (30d),
 *	            seen (30d, at least 1d), acks (7d, at least 2d),
 *	            bounces (365d), inbox (0: never), clinic (0: never),
 *	            data_keys (7d, at least 2d): lifetimes, 0 = never
 *	            (retain.h); interval (1h), batch (500)
 *	[audit]     checkpoint_key (fingerprint of a key that signs audit
 *	            checkpoints only; unset: none made), checkpoint_file
 *	            (STORE/audit.checkpoints), checkpoint_interval (1h,
 *	            1m..7d): checkpoint.h
 *	[daemon]    metrics_file, wake_socket (wake.h; unset: none),
 *	            log_level (info)
 *
 *	At most 64 staff.NAME departments.
 * ERRORS
 *	config_load and config_parse: -EINVAL (a malformed line, an unknown
 *	section or key, a bad value, a NUL byte, invalid UTF-8, a control
 *	character, retry_max below retry_base, ...), -E2BIG (a line over
 *	4096 bytes, more than 64 departments), -EFBIG (a file over 1 MiB),
 *	-ENOMEM, or the -errno of reading the file. err names FILE:LINE,
 *	the section and key, and echoes at most 64 printable bytes of what
 *	the file held.
 *
 *	config_read_secret: -EINVAL (no spec, a credential NAME with '/',
 *	an empty secret), -ENOENT ($CREDENTIALS_DIRECTORY unset), -EFBIG
 *	(over max, itself capped at 1 MiB), -EISDIR, -ENOMEM, or the -errno
 *	of open or read. err names the file or the credential (never the
 *	config key, which the caller knows) and never holds the secret.
 * OWNERSHIP
 *	config_load hands a struct the caller frees with config_free. All
 *	strings inside belong to it. Unset optional strings are NULL.
 *	config_read_secret hands *out (NUL-terminated, malloc'd) to the
 *	caller, who wipes it (explicit_bzero) and free()s it; on a failed
 *	read the buffer is wiped before it is freed. config_department
 *	returns a pointer into cfg.
 * THREAD SAFETY
 *	A loaded config is read-only and may be shared between threads.
 */
#ifndef CAREPOST_CONFIG_H
#define CAREPOST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum tls_mode { TLS_OFF = 0, TLS_OPPORTUNISTIC, TLS_REQUIRED, TLS_IMPLICIT };

struct cp_department {
	char *name;
	char *staff;		/* comma-separated addresses, as written */
};

struct cp_config {
	char *path;		/* the file read */

	/* [store] */
	char *store_path;
	uint64_t store_map_size;

	/* [smtp] */
	char *smtp_server;	/* "host:port" */
	char *smtp_helo;
	enum tls_mode smtp_starttls;	/* OFF, OPPORTUNISTIC, REQUIRED */
	char *smtp_user;
	char *smtp_password_file;
	char *smtp_ca_file;
	int smtp_timeout;	/* seconds */
	int smtp_batch_size;
	int smtp_sessions;

	/* [imap] */
	char *imap_host;
	int imap_port;
	enum tls_mode imap_tls;	/* IMPLICIT, REQUIRED (= STARTTLS), OFF */
	char *imap_user;
	char *imap_password_file;
	char *imap_mailbox;
	char *imap_processed_folder;
	char *imap_quarantine_folder;
	int imap_poll_interval;
	int imap_batch_size;

	/* [gpg] */
	char *gpg_home;
	char *gpg_clinic_key;
	char *gpg_store_key;
	int gpg_workers;
	int gpg_time_limit;	/* seconds, for gpg on inbound mail */

	/* [templates] */
	char *templates_dir;
	char *default_locale;

	/* [portal] */
	char *clinic_name;
	char *portal_url;
	char *from_address;
	char *from_name;
	char *reply_domain;
	char *bounce_domain;
	char *unsubscribe_address;
	char *unsubscribe_url;		/* one-click: https base, token appended */
	char *message_id_domain;

	/* [delivery] */
	int poll_interval;
	int digest_window;	/* seconds; 0: every item its own message */
	int retry_base;
	int retry_max;
	int max_age;
	int quiet_start;	/* minutes after midnight */
	int quiet_end;		/* minutes after midnight */
	int token_ttl;
	char *default_tz;

	/* [routing] */
	char *default_department;
	char *urgent_words;	/* comma-separated, as written */
	int alert_window;	/* seconds staff alerts are held for; 0: none */
	struct cp_department *departments;
	size_t n_departments;

	/* [security] */
	char *token_key_file;
	char *trusted_authserv_id;
	int require_dmarc;
	char *feedback_reporters;	/* domains feedback reports may come from */

	/* [retention]: lifetimes in seconds, 0 = kept for ever (retain.h) */
	int retain_delivery;	/* final portal delivery records */
	int retain_internal;	/* final internal ones (reply_ack, staff_alert, form_incomplete) */
	int retain_threads;	/* after the reply token expired */
	int retain_seen;
	int retain_acks;
	int retain_bounces;
	int retain_inbox;
	int retain_clinic;
	int retain_data_keys;	/* data keys no inbox record names */
	int retain_interval;	/* seconds between passes */
	int retain_batch;	/* records looked at per transaction */

	/* [audit] */
	char *audit_checkpoint_key;	/* fingerprint: signs checkpoints only */
	char *audit_checkpoint_file;	/* default STORE/audit.checkpoints */
	int audit_checkpoint_interval;	/* seconds between checkpoints */

	/* [daemon] */
	char *metrics_file;
	char *wake_socket;	/* the portal's "new events" socket, or NULL */
	int log_level;		/* syslog priority */
};

/* config_load - parse path; on error, err names FILE:LINE and the key. */
int config_load(const char *path, struct cp_config **out, struct cp_error *err);

/* config_parse - the same from memory; name is used in error messages. */
int config_parse(const char *name, const char *text, size_t len,
		 const char *base_dir, struct cp_config **out,
		 struct cp_error *err);

void config_free(struct cp_config *cfg);

/*
 * config_read_secret - read a secret named by a *_file value: a path, or
 * "credential:NAME" from $CREDENTIALS_DIRECTORY. Trailing newlines (LF
 * and CR) are removed. At most max bytes. The caller owns *out (free(),
 * and should wipe it). Errors name the file or credential, never the
 * secret (see ERRORS).
 */
int config_read_secret(const char *spec, size_t max, char **out, size_t *len,
		       struct cp_error *err);

/* config_department - the department entry by name, or NULL. */
const struct cp_department *config_department(const struct cp_config *cfg,
					      const char *name);

#endif
