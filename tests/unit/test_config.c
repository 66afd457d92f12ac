/*
 * NAME
 *	test_config - unit tests for lib/config.c
 * DESCRIPTION
 *	A full config yields the right value for every type; unset keys get
 *	their defaults (computed ones included); relative paths resolve
 *	against the file's directory; every malformed input is an error
 *	that names the file, the line and the key; secrets are read from a
 *	file or a systemd credential without their content ever reaching an
 *	error text; the shipped config/carepost.conf parses cleanly.
 *	Runs from the repository top.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <syslog.h>

#include "buf.h"
#include "config.h"
#include "util.h"

#ifndef CAREPOST_DATADIR	/* the Makefile passes the same value to lib/ */
#define CAREPOST_DATADIR "/usr/local/share/carepost"
#endif

static const char full_config[] =
	"# every key, none at its default\n"
	"[store]\n"
	"path = /srv/carepost/store\n"
	"map_size = 512M\n"
	"\n"
	"[smtp]\n"
	"server = mail.clinic.example:587\n"
	"helo = gw.clinic.example\n"
	"starttls = required\n"
	"user = carepost\n"
	"password_file = credential:smtp-password\n"
	"ca_file = /etc/ssl/clinic-ca.pem\n"
	"timeout = 2m\n"
	"batch_size = 25\n"
	"sessions = 4\n"
	"\n"
	"[imap]\n"
	"host = imap.clinic.example\n"
	"port = 143\n"
	"tls = starttls\n"
	"user = replies\n"
	"password_file = /etc/carepost/imap-password\n"
	"mailbox = Replies\n"
	"processed_folder = Done\n"
	"quarantine_folder = Held\n"
	"poll_interval = 90\n"
	"batch_size = 10\n"
	"\n"
	"[gpg]\n"
	"home = /var/lib/carepost/gnupg\n"
	"clinic_key = 0123456789ABCDEF0123456789ABCDEF01234567\n"
	"store_key = FEDCBA9876543210FEDCBA9876543210FEDCBA98\n"
	"workers = 3\n"
	"time_limit = 12s\n"
	"\n"
	"[templates]\n"
	"dir = /opt/carepost/templates\n"
	"default_locale = fr\n"
	"\n"
	"[portal]\n"
	"clinic_name = \"  Clinique du Lac  \"\n"
	"portal_url = https://portal.clinic.example/#inbox\n"
	"from_address = noreply@clinic.example\n"
	"from_name = Clinique du Lac\n"
	"reply_domain = reply.clinic.example\n"
	"bounce_domain = bounce.clinic.example\n"
	"unsubscribe_address = unsubscribe@clinic.example\n"
	"message_id_domain = mid.clinic.example\n"
	"\n"
	"[delivery]\n"
	"poll_interval = 15s\n"
	"retry_base = 1m\n"
	"retry_max = 2h\n"
	"max_age = 2d\n"
	"quiet_start = 22:30\n"
	"quiet_end = 7:05\n"
	"token_ttl = 14d\n"
	"default_tz = Europe/Zurich\n"
	"\n"
	"[routing]\n"
	"default_department = front-desk\n"
	"urgent_words = urgent, pain,bleeding\n"
	"alert_window = 5m\n"
	"staff.front-desk = desk@clinic.example\n"
	"staff.cardio_2 = a@clinic.example, b@clinic.example\n"
	"\n"
	"[security]\n"
	"token_key_file = credential:token-key\n"
	"trusted_authserv_id = mx.clinic.example\n"
	"require_dmarc = yes\n"
	"\n"
	"[daemon]\n"
	"metrics_file = /run/carepost/metrics\n"
	"log_level = warning\n";

static struct cp_config *
parse_ok(const char *text, const char *base)
{
	struct cp_config *cfg = NULL;
	struct cp_error err = { 0 };
	int r = config_parse("t.conf", text, strlen(text), base, &cfg, &err);

	if (r != 0)
		print_error("unexpected error: %s\n", err.text);
	assert_int_equal(r, 0);
	assert_non_null(cfg);
	return cfg;
}

static void
test_full_config_sets_every_key_with_its_type(void **state)
{
	struct cp_config *cfg = parse_ok(full_config, "/etc/carepost");

	assert_string_equal(cfg->path, "t.conf");
	assert_string_equal(cfg->store_path, "/srv/carepost/store");
	assert_true(cfg->store_map_size == 512ull * 1024 * 1024);

	assert_string_equal(cfg->smtp_server, "mail.clinic.example:587");
	assert_string_equal(cfg->smtp_helo, "gw.clinic.example");
	assert_int_equal(cfg->smtp_starttls, TLS_REQUIRED);
	assert_string_equal(cfg->smtp_user, "carepost");
	assert_string_equal(cfg->smtp_password_file, "credential:smtp-password");
	assert_string_equal(cfg->smtp_ca_file, "/etc/ssl/clinic-ca.pem");
	assert_int_equal(cfg->smtp_timeout, 120);
	assert_int_equal(cfg->smtp_batch_size, 25);
	assert_int_equal(cfg->smtp_sessions, 4);

	assert_string_equal(cfg->imap_host, "imap.clinic.example");
	assert_int_equal(cfg->imap_port, 143);
	assert_int_equal(cfg->imap_tls, TLS_REQUIRED);
	assert_string_equal(cfg->imap_user, "replies");
	assert_string_equal(cfg->imap_password_file,
			    "/etc/carepost/imap-password");
	assert_string_equal(cfg->imap_mailbox, "Replies");
	assert_string_equal(cfg->imap_processed_folder, "Done");
	assert_string_equal(cfg->imap_quarantine_folder, "Held");
	assert_int_equal(cfg->imap_poll_interval, 90);
	assert_int_equal(cfg->imap_batch_size, 10);

	assert_string_equal(cfg->gpg_home, "/var/lib/carepost/gnupg");
	assert_string_equal(cfg->gpg_clinic_key,
			    "0123456789ABCDEF0123456789ABCDEF01234567");
	assert_string_equal(cfg->gpg_store_key,
			    "FEDCBA9876543210FEDCBA9876543210FEDCBA98");
	assert_int_equal(cfg->gpg_workers, 3);
	assert_int_equal(cfg->gpg_time_limit, 12);

	assert_string_equal(cfg->templates_dir, "/opt/carepost/templates");
	assert_string_equal(cfg->default_locale, "fr");

	assert_string_equal(cfg->clinic_name, "  Clinique du Lac  ");
	assert_string_equal(cfg->portal_url,
			    "https://portal.clinic.example/#inbox");
	assert_string_equal(cfg->from_address, "noreply@clinic.example");
	assert_string_equal(cfg->from_name, "Clinique du Lac");
	assert_string_equal(cfg->reply_domain, "reply.clinic.example");
	assert_string_equal(cfg->bounce_domain, "bounce.clinic.example");
	assert_string_equal(cfg->unsubscribe_address,
			    "unsubscribe@clinic.example");
	assert_string_equal(cfg->message_id_domain, "mid.clinic.example");

	assert_int_equal(cfg->poll_interval, 15);
	assert_int_equal(cfg->retry_base, 60);
	assert_int_equal(cfg->retry_max, 7200);
	assert_int_equal(cfg->max_age, 2 * 86400);
	assert_int_equal(cfg->quiet_start, 22 * 60 + 30);
	assert_int_equal(cfg->quiet_end, 7 * 60 + 5);
	assert_int_equal(cfg->token_ttl, 14 * 86400);
	assert_string_equal(cfg->default_tz, "Europe/Zurich");

	assert_string_equal(cfg->default_department, "front-desk");
	assert_string_equal(cfg->urgent_words, "urgent, pain,bleeding");
	assert_int_equal(cfg->alert_window, 300);
	assert_int_equal(cfg->n_departments, 2);
	assert_string_equal(cfg->departments[0].name, "front-desk");
	assert_string_equal(cfg->departments[0].staff, "desk@clinic.example");
	assert_string_equal(cfg->departments[1].name, "cardio_2");
	assert_string_equal(cfg->departments[1].staff,
			    "a@clinic.example, b@clinic.example");

	assert_string_equal(cfg->token_key_file, "credential:token-key");
	assert_string_equal(cfg->trusted_authserv_id, "mx.clinic.example");
	assert_int_equal(cfg->require_dmarc, 1);

	assert_string_equal(cfg->metrics_file, "/run/carepost/metrics");
	assert_int_equal(cfg->log_level, LOG_WARNING);
	config_free(cfg);
}

static void
test_empty_config_gets_documented_defaults(void **state)
{
	struct cp_config *cfg = parse_ok("", "/etc/carepost");
	char host[HOST_NAME_MAX + 1] = "";

	assert_string_equal(cfg->store_path, "/var/lib/carepost/store");
	assert_true(cfg->store_map_size == 1024ull * 1024 * 1024);
	assert_string_equal(cfg->smtp_server, "localhost:25");
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	assert_string_equal(cfg->smtp_helo, host[0] ? host : "localhost");
	assert_int_equal(cfg->smtp_starttls, TLS_OPPORTUNISTIC);
	assert_null(cfg->smtp_user);
	assert_null(cfg->smtp_password_file);
	assert_null(cfg->smtp_ca_file);
	assert_int_equal(cfg->smtp_timeout, 60);
	assert_int_equal(cfg->smtp_batch_size, 100);
	assert_int_equal(cfg->smtp_sessions, 1);

	assert_null(cfg->imap_host);
	assert_int_equal(cfg->imap_port, 993);
	assert_int_equal(cfg->imap_tls, TLS_IMPLICIT);
	assert_null(cfg->imap_user);
	assert_string_equal(cfg->imap_mailbox, "INBOX");
	assert_string_equal(cfg->imap_processed_folder, "carepost/processed");
	assert_string_equal(cfg->imap_quarantine_folder, "carepost/quarantine");
	assert_int_equal(cfg->imap_poll_interval, 60);
	assert_int_equal(cfg->imap_batch_size, 200);

	assert_null(cfg->gpg_home);
	assert_null(cfg->gpg_clinic_key);
	assert_null(cfg->gpg_store_key);
	assert_int_equal(cfg->gpg_workers, 1);
	assert_int_equal(cfg->gpg_time_limit, 10);

	assert_string_equal(cfg->templates_dir,
			    CAREPOST_DATADIR "/templates");
	assert_string_equal(cfg->default_locale, "en");

	assert_null(cfg->clinic_name);
	assert_null(cfg->from_address);
	assert_null(cfg->message_id_domain);

	assert_int_equal(cfg->poll_interval, 30);
	assert_int_equal(cfg->retry_base, 300);
	assert_int_equal(cfg->retry_max, 6 * 3600);
	assert_int_equal(cfg->max_age, 3 * 86400);
	assert_int_equal(cfg->quiet_start, 21 * 60);
	assert_int_equal(cfg->quiet_end, 8 * 60);
	assert_int_equal(cfg->token_ttl, 30 * 86400);
	assert_string_equal(cfg->default_tz, "UTC");

	assert_string_equal(cfg->default_department, "general");
	assert_null(cfg->urgent_words);
	assert_int_equal(cfg->alert_window, 600);
	assert_int_equal(cfg->n_departments, 0);
	assert_null(cfg->departments);

	assert_null(cfg->token_key_file);
	assert_null(cfg->trusted_authserv_id);
	assert_int_equal(cfg->require_dmarc, 0);
	assert_null(cfg->metrics_file);
	assert_int_equal(cfg->log_level, LOG_INFO);
	config_free(cfg);
}

static void
test_computed_defaults_follow_from_address_and_clinic_key(void **state)
{
	struct cp_config *cfg = parse_ok(
		"[portal]\nfrom_address = noreply@portal.clinic.example\n"
		"[gpg]\nclinic_key = AAAABBBBCCCCDDDDEEEEFFFF0000111122223333\n",
		NULL);

	assert_string_equal(cfg->message_id_domain, "portal.clinic.example");
	assert_string_equal(cfg->gpg_store_key,
			    "AAAABBBBCCCCDDDDEEEEFFFF0000111122223333");
	config_free(cfg);
}

static void
test_relative_paths_resolve_against_base_dir(void **state)
{
	struct cp_config *cfg = parse_ok(
		"[store]\npath = store\n"
		"[smtp]\npassword_file = ../secrets/smtp\n"
		"ca_file = /abs/ca.pem\n"
		"[imap]\npassword_file = credential:imap-password\n"
		"[gpg]\nhome = ./gnupg\n"
		"[templates]\ndir = ../templates\n"
		"[security]\ntoken_key_file = token.key\n"
		"[daemon]\nmetrics_file = run/metrics\n"
		"[smtp]\nuser = relative/not/a/path\n",
		"/etc/carepost");

	assert_string_equal(cfg->store_path, "/etc/carepost/store");
	assert_string_equal(cfg->smtp_password_file,
			    "/etc/carepost/../secrets/smtp");
	assert_string_equal(cfg->smtp_ca_file, "/abs/ca.pem");
	assert_string_equal(cfg->imap_password_file, "credential:imap-password");
	assert_string_equal(cfg->gpg_home, "/etc/carepost/./gnupg");
	assert_string_equal(cfg->templates_dir, "/etc/carepost/../templates");
	assert_string_equal(cfg->token_key_file, "/etc/carepost/token.key");
	assert_string_equal(cfg->metrics_file, "/etc/carepost/run/metrics");
	assert_string_equal(cfg->smtp_user, "relative/not/a/path");
	config_free(cfg);

	/* no base dir: relative paths are kept as written */
	cfg = parse_ok("[store]\npath = store\n", NULL);
	assert_string_equal(cfg->store_path, "store");
	config_free(cfg);
}

static char tmpdir[] = "/tmp/carepost-test-config-XXXXXX";

static int
setup_tmpdir(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_tmpdir(void **state)
{
	char cmd[sizeof(tmpdir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
tmp_path(char out[PATH_MAX], const char *name)
{
	assert_int_equal(cp_snprintf_ok(out, PATH_MAX, "%s/%s", tmpdir, name),
			 0);
}

static void
write_file(const char *path, const void *data, size_t len)
{
	assert_int_equal(cp_write_file_atomic(path, data, len, 0600), 0);
}

static void
test_load_resolves_paths_against_the_file_directory(void **state)
{
	static const char text[] = "[store]\npath = data/store\n";
	struct cp_config *cfg = NULL;
	struct cp_error err = { 0 };
	char path[PATH_MAX], want[PATH_MAX], sub[PATH_MAX];

	tmp_path(sub, "etc");
	assert_int_equal(mkdir(sub, 0700), 0);
	tmp_path(path, "etc/carepost.conf");
	write_file(path, text, strlen(text));
	assert_int_equal(config_load(path, &cfg, &err), 0);
	tmp_path(want, "etc/data/store");
	assert_string_equal(cfg->store_path, want);
	assert_string_equal(cfg->path, path);
	config_free(cfg);
}

static void
test_load_reports_missing_and_oversized_files(void **state)
{
	struct cp_config *cfg = (struct cp_config *)&cfg;
	struct cp_error err = { 0 };
	char path[PATH_MAX];
	char *big;
	size_t n = 1024 * 1024 + 1;

	tmp_path(path, "missing.conf");
	assert_int_equal(config_load(path, &cfg, &err), -ENOENT);
	assert_null(cfg);
	assert_non_null(strstr(err.text, "missing.conf"));

	big = malloc(n);
	assert_non_null(big);
	memset(big, '#', n);
	tmp_path(path, "big.conf");
	write_file(path, big, n);
	free(big);
	assert_int_equal(config_load(path, &cfg, &err), -EFBIG);
	assert_null(cfg);
	assert_non_null(strstr(err.text, "big.conf"));
	assert_non_null(strstr(err.text, "1 MiB"));
}

struct bad_case {
	const char *what;
	const char *text;
	const char *expect[3];	/* substrings of the error, NULL-padded */
	int code;
};

static const struct bad_case bad_cases[] = {
	{ "bad duration", "[smtp]\n\ntimeout = abc\n",
	  { "t.conf:3: [smtp] timeout: expected a duration like 30s, 5m, 2h, "
	    "got \"abc\"" }, -EINVAL },
	{ "duration with unknown unit", "[delivery]\nretry_base = 5w\n",
	  { "t.conf:2: [delivery] retry_base: expected a duration" },
	  -EINVAL },
	{ "duration out of range", "[smtp]\ntimeout = 2d\n",
	  { "t.conf:2: [smtp] timeout: expected a duration from 1s to 1d, "
	    "got \"2d\"" }, -EINVAL },
	{ "duration overflow", "[delivery]\nmax_age = 99999999999999999999d\n",
	  { "t.conf:2: [delivery] max_age: expected a duration from" },
	  -EINVAL },
	{ "alert window out of range", "[routing]\n# staff alerts\nalert_window = 2d\n",
	  { "t.conf:3: [routing] alert_window: expected a duration from 0 to 1d, "
	    "got \"2d\"" }, -EINVAL },
	{ "negative alert window", "[routing]\nalert_window = -1\n",
	  { "t.conf:2: [routing] alert_window: expected a duration" }, -EINVAL },
	{ "int not a number", "[imap]\nport = 99x\n",
	  { "t.conf:2: [imap] port: expected an integer from 1 to 65535, "
	    "got \"99x\"" }, -EINVAL },
	{ "int below minimum", "[smtp]\nsessions = 0\n",
	  { "t.conf:2: [smtp] sessions: expected an integer from 1 to 64" },
	  -EINVAL },
	{ "gpg time limit too long", "[gpg]\ntime_limit = 16\n",
	  { "t.conf:2: [gpg] time_limit: expected a duration from 1s to 15s, "
	    "got \"16\"" }, -EINVAL },
	{ "gpg time limit zero", "[gpg]\ntime_limit = 0\n",
	  { "t.conf:2: [gpg] time_limit: expected a duration from 1s to 15s" },
	  -EINVAL },
	{ "negative int", "[gpg]\nworkers = -3\n",
	  { "t.conf:2: [gpg] workers: expected an integer from 1 to 64" },
	  -EINVAL },
	{ "bad size", "[store]\nmap_size = 1Q\n",
	  { "t.conf:2: [store] map_size: expected a size like 512M or 1G, "
	    "got \"1Q\"" }, -EINVAL },
	{ "size too small", "[store]\nmap_size = 10K\n",
	  { "t.conf:2: [store] map_size: expected a size from 1M to 16T" },
	  -EINVAL },
	{ "bad bool", "[security]\nrequire_dmarc = maybe\n",
	  { "t.conf:2: [security] require_dmarc: expected yes or no" },
	  -EINVAL },
	{ "bad smtp starttls", "[smtp]\nstarttls = implicit\n",
	  { "t.conf:2: [smtp] starttls: expected opportunistic, required or "
	    "off, got \"implicit\"" }, -EINVAL },
	{ "bad imap tls", "[imap]\ntls = required\n",
	  { "t.conf:2: [imap] tls: expected implicit, starttls or off" },
	  -EINVAL },
	{ "bad time of day", "[delivery]\nquiet_start = 24:00\n",
	  { "t.conf:2: [delivery] quiet_start: expected a time of day HH:MM" },
	  -EINVAL },
	{ "time without minutes", "[delivery]\nquiet_end = 8\n",
	  { "t.conf:2: [delivery] quiet_end: expected a time of day" },
	  -EINVAL },
	{ "bad log level", "[daemon]\nlog_level = verbose\n",
	  { "t.conf:2: [daemon] log_level: expected debug, info, notice, "
	    "warning or error" }, -EINVAL },
	{ "bad address", "[portal]\nfrom_address = Clinic <x@y.example>\n",
	  { "t.conf:2: [portal] from_address: expected an address" },
	  -EINVAL },
	{ "server without port", "[smtp]\nserver = localhost\n",
	  { "t.conf:2: [smtp] server: expected host:port like localhost:25" },
	  -EINVAL },
	{ "server with bad port", "[smtp]\nserver = localhost:99999\n",
	  { "t.conf:2: [smtp] server: expected host:port" }, -EINVAL },
	{ "credential with slash",
	  "[security]\ntoken_key_file = credential:../etc/shadow\n",
	  { "t.conf:2: [security] token_key_file: expected a file or "
	    "credential:NAME" }, -EINVAL },
	{ "credential without name",
	  "[smtp]\npassword_file = credential:\n",
	  { "t.conf:2: [smtp] password_file: expected a file or "
	    "credential:NAME" }, -EINVAL },
	{ "unknown section", "[store]\npath = /x\n[smpt]\nserver = a:25\n",
	  { "t.conf:3: [smpt]: unknown section" }, -EINVAL },
	{ "bad section header", "[smtp\n",
	  { "t.conf:1: expected a section header like [smtp]" }, -EINVAL },
	{ "unknown key", "[smtp]\ntiemout = 30s\n",
	  { "t.conf:2: [smtp] tiemout: unknown key" }, -EINVAL },
	{ "key of another section", "[imap]\nstarttls = off\n",
	  { "t.conf:2: [imap] starttls: unknown key" }, -EINVAL },
	{ "key outside a section", "# comment\nserver = localhost:25\n",
	  { "t.conf:2: server: key outside any [section]" }, -EINVAL },
	{ "line without =", "[smtp]\nserver localhost:25\n",
	  { "t.conf:2: [smtp]: expected \"key = value\"",
	    "got \"server localhost:25\"" }, -EINVAL },
	{ "empty key", "[smtp]\n = 30s\n",
	  { "t.conf:2: [smtp]: expected a key before '='" }, -EINVAL },
	{ "empty value", "[smtp]\nuser =\n",
	  { "t.conf:2: [smtp] user: expected a value" }, -EINVAL },
	{ "unterminated quote", "[portal]\nfrom_name = \"Clinic\n",
	  { "t.conf:2: [portal] from_name: unterminated quoted value" },
	  -EINVAL },
	{ "duplicate key", "[smtp]\ntimeout = 30s\n[imap]\n[smtp]\n"
	  "timeout = 40s\n",
	  { "t.conf:5: [smtp] timeout: duplicate key, first set on line 2" },
	  -EINVAL },
	{ "duplicate department",
	  "[routing]\nstaff.lab = a@x.example\nstaff.lab = b@x.example\n",
	  { "t.conf:3: [routing] staff.lab: duplicate key, first set on "
	    "line 2" }, -EINVAL },
	{ "bad department name", "[routing]\nstaff.Lab = a@x.example\n",
	  { "t.conf:2: [routing] staff.Lab: expected staff.NAME" }, -EINVAL },
	{ "empty department name", "[routing]\nstaff. = a@x.example\n",
	  { "t.conf:2: [routing] staff.: expected staff.NAME" }, -EINVAL },
	{ "bad staff list", "[routing]\nstaff.lab = a@x.example,,b@x.example\n",
	  { "t.conf:2: [routing] staff.lab: expected a comma-separated list "
	    "of addresses" }, -EINVAL },
	{ "NUL byte", "[smtp]\nuser = a\0b\n",
	  { "t.conf:2: [smtp] user: NUL byte in line" }, -EINVAL },
	{ "invalid UTF-8", "[portal]\nfrom_name = Caf\xe9\n",
	  { "t.conf:2: [portal] from_name: invalid UTF-8" }, -EINVAL },
	{ "overlong UTF-8", "[portal]\nfrom_name = \xc0\xaf\n",
	  { "t.conf:2: [portal] from_name: invalid UTF-8" }, -EINVAL },
	{ "CR inside a value", "[portal]\nfrom_name = A\rBcc: x\n",
	  { "t.conf:2: [portal] from_name: control character 0x0d" },
	  -EINVAL },
	{ "unsubscribe_url not https", "[portal]\nunsubscribe_url = http://portal.test/u/\n",
	  { "t.conf:2: [portal] unsubscribe_url: expected an https:// URL with a host" },
	  -EINVAL },
	{ "unsubscribe_url with a fragment",
	  "[portal]\nunsubscribe_url = https://portal.test/#/u/\n",
	  { "t.conf:2: [portal] unsubscribe_url: expected an https:// URL" }, -EINVAL },
	{ "unsubscribe_url without a host", "[portal]\nunsubscribe_url = https:///u/\n",
	  { "t.conf:2: [portal] unsubscribe_url: expected an https:// URL" }, -EINVAL },
	{ "unsubscribe_url with a comma",
	  "[portal]\nunsubscribe_url = https://portal.test/u/,<mailto:x@evil.test>\n",
	  { "t.conf:2: [portal] unsubscribe_url: expected an https:// URL" }, -EINVAL },
	{ "unsubscribe_url with an encoded word",
	  "[portal]\nunsubscribe_url = https://portal.test/=?utf-8?q?x?=/\n",
	  { "t.conf:2: [portal] unsubscribe_url: expected an https:// URL" }, -EINVAL },
	{ "checkpoint_key not a fingerprint", "[audit]\ncheckpoint_key = ABCDEF\n",
	  { "t.conf:2: [audit] checkpoint_key: expected a 40-digit key fingerprint" },
	  -EINVAL },
	{ "retry_max below retry_base",
	  "[delivery]\nretry_base = 2h\nretry_max = 1h\n",
	  { "t.conf:3: [delivery] retry_max: expected at least retry_base "
	    "(2h), got \"1h\"" }, -EINVAL },
};

/* The texts hold NULs, so their length is sizeof - 1, not strlen. */
static size_t
bad_case_len(const struct bad_case *c)
{
	const char *p = c->text;

	/* walk to the final NUL: case texts end with "\n\0" */
	while (!(p[0] == '\n' && p[1] == '\0'))
		p++;
	return (size_t)(p - c->text) + 1;
}

static void
test_each_malformed_input_names_file_line_and_key(void **state)
{
	size_t i, k;

	for (i = 0; i < CP_ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct cp_config *cfg = (struct cp_config *)&cfg;
		struct cp_error err = { 0 };
		int r;

		r = config_parse("t.conf", c->text, bad_case_len(c), "/base",
				 &cfg, &err);
		if (r != c->code)
			print_error("case '%s': r=%d text=%s\n", c->what, r,
				    err.text);
		assert_int_equal(r, c->code);
		assert_int_equal(err.code, r);
		assert_null(cfg);
		for (k = 0; k < CP_ARRAY_SIZE(c->expect) && c->expect[k]; k++) {
			if (strstr(err.text, c->expect[k]) == NULL)
				print_error("case '%s': got: %s\nwant: %s\n",
					    c->what, err.text, c->expect[k]);
			assert_non_null(strstr(err.text, c->expect[k]));
		}
	}
}

static void
test_line_over_4096_bytes_is_an_error(void **state)
{
	struct buf b = BUF_INIT;
	struct cp_config *cfg = NULL;
	struct cp_error err = { 0 };
	int r;

	assert_int_equal(buf_puts(&b, "[portal]\nclinic_name = "), 0);
	while (b.len <= 9 + 4096)	/* line 2 is 4097 bytes long */
		assert_int_equal(buf_putc(&b, 'x'), 0);
	assert_int_equal(buf_putc(&b, '\n'), 0);
	r = config_parse("t.conf", b.data, b.len, NULL, &cfg, &err);
	assert_int_equal(r, -E2BIG);
	assert_null(cfg);
	assert_string_equal(err.text, "t.conf:2: [portal] clinic_name: line "
				      "longer than 4096 bytes");

	/* exactly 4096 bytes is accepted */
	b.len--;
	b.data[b.len - 1] = '\n';
	r = config_parse("t.conf", b.data, b.len, NULL, &cfg, &err);
	if (r != 0)
		print_error("%s\n", err.text);
	assert_int_equal(r, 0);
	assert_int_equal(strlen(cfg->clinic_name), 4096 - 14);
	config_free(cfg);
	buf_free(&b);
}

static void
test_text_over_1_mib_is_an_error(void **state)
{
	size_t n = 1024 * 1024 + 1;
	char *text = malloc(n);
	struct cp_config *cfg = (struct cp_config *)&cfg;
	struct cp_error err = { 0 };

	assert_non_null(text);
	memset(text, '\n', n);
	assert_int_equal(config_parse("t.conf", text, n, NULL, &cfg, &err),
			 -EFBIG);
	assert_null(cfg);
	assert_non_null(strstr(err.text, "t.conf: file larger than 1 MiB"));
	/* 1 MiB of blank lines is fine */
	assert_int_equal(config_parse("t.conf", text, n - 1, NULL, &cfg, &err),
			 0);
	config_free(cfg);
	free(text);
}

static void
test_echoed_value_is_cut_to_64_bytes(void **state)
{
	struct buf b = BUF_INIT;
	struct cp_config *cfg = NULL;
	struct cp_error err = { 0 };
	char want[128];
	int i;

	assert_int_equal(buf_puts(&b, "[smtp]\ntimeout = "), 0);
	for (i = 0; i < 300; i++)
		assert_int_equal(buf_putc(&b, (char)('a' + i % 26)), 0);
	assert_int_equal(config_parse("t.conf", b.data, b.len, NULL, &cfg,
				      &err), -EINVAL);
	snprintf(want, sizeof(want), "got \"%.64s...\"", b.data + 17);
	assert_non_null(strstr(err.text, want));
	assert_null(strstr(err.text, "lmnopqrstuvwxyzabcdefghijklm"
				     "nopqrstuvwxyzabcdefghijklmnop"));
	buf_free(&b);
}

static void
test_quotes_comments_crlf_bom_and_case(void **state)
{
	static const char text[] =
		"\xef\xbb\xbf; a semicolon comment\r\n"
		"  # an indented comment\r\n"
		"[ smtp ]  \r\n"
		"\tstarttls=OFF\r\n"
		"helo   =   \"\"quoted\" inside\"   \r\n"
		"[security]\n"
		"require_dmarc = On\n"
		"[daemon]\n"
		"log_level = Debug\n"
		"[store]\n"
		"map_size = 2g";	/* last line without newline */
	struct cp_config *cfg = parse_ok(text, NULL);

	assert_int_equal(cfg->smtp_starttls, TLS_OFF);
	assert_string_equal(cfg->smtp_helo, "\"quoted\" inside");
	assert_int_equal(cfg->require_dmarc, 1);
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	assert_true(cfg->store_map_size == 2ull * 1024 * 1024 * 1024);
	config_free(cfg);
}

static void
test_departments_are_looked_up_by_name(void **state)
{
	struct buf b = BUF_INIT;
	struct cp_config *cfg;
	struct cp_error err = { 0 };
	int i;

	cfg = parse_ok("[routing]\nstaff.lab = lab@x.example\n"
		       "staff.general = a@x.example , b@x.example\n", NULL);
	assert_non_null(config_department(cfg, "lab"));
	assert_string_equal(config_department(cfg, "general")->staff,
			    "a@x.example , b@x.example");
	assert_null(config_department(cfg, "radiology"));
	assert_null(config_department(cfg, NULL));
	config_free(cfg);

	/* 64 departments are allowed, the 65th is an error */
	assert_int_equal(buf_puts(&b, "[routing]\n"), 0);
	for (i = 0; i < 64; i++)
		assert_int_equal(buf_printf(&b, "staff.d%d = s@x.example\n",
					    i), 0);
	cfg = parse_ok(b.data, NULL);
	assert_int_equal(cfg->n_departments, 64);
	config_free(cfg);
	assert_int_equal(buf_puts(&b, "staff.d64 = s@x.example\n"), 0);
	assert_int_equal(config_parse("t.conf", b.data, b.len, NULL, &cfg,
				      &err), -E2BIG);
	assert_string_equal(err.text, "t.conf:66: [routing] staff.d64: more "
				      "than 64 departments");
	buf_free(&b);
}

static void
test_read_secret_from_file_strips_newlines(void **state)
{
	char path[PATH_MAX], *secret = NULL;
	size_t len = 0;
	struct cp_error err = { 0 };

	tmp_path(path, "secret");
	write_file(path, "hunter2 x\r\n\n", 12);
	assert_int_equal(config_read_secret(path, 64, &secret, &len, &err), 0);
	assert_int_equal(len, 9);
	assert_string_equal(secret, "hunter2 x");
	free(secret);

	/* binary content inside is kept, length is authoritative */
	write_file(path, "a\0b\n", 4);
	assert_int_equal(config_read_secret(path, 64, &secret, &len, &err), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(secret, "a\0b", 3);
	free(secret);
}

static void
test_read_secret_errors_never_show_content(void **state)
{
	char path[PATH_MAX], *secret = (char *)&secret;
	size_t len = 99;
	struct cp_error err = { 0 };

	tmp_path(path, "big-secret");
	write_file(path, "hunter2hunter2hunter2\n", 22);
	assert_int_equal(config_read_secret(path, 8, &secret, &len, &err),
			 -EFBIG);
	assert_null(secret);
	assert_int_equal(len, 0);
	assert_non_null(strstr(err.text, "secret file"));
	assert_non_null(strstr(err.text, "big-secret"));
	assert_null(strstr(err.text, "hunter2"));

	tmp_path(path, "empty-secret");
	write_file(path, "\r\n", 2);
	assert_int_equal(config_read_secret(path, 8, &secret, &len, &err),
			 -EINVAL);
	assert_null(secret);
	assert_non_null(strstr(err.text, "is empty"));

	tmp_path(path, "no-such-secret");
	assert_int_equal(config_read_secret(path, 8, &secret, &len, &err),
			 -ENOENT);
	assert_non_null(strstr(err.text, "no-such-secret"));

	assert_int_equal(config_read_secret(tmpdir, 8, &secret, &len, &err),
			 -EISDIR);
	assert_int_equal(config_read_secret("", 8, &secret, &len, &err),
			 -EINVAL);
	assert_int_equal(config_read_secret(NULL, 8, &secret, &len, &err),
			 -EINVAL);
}

static void
test_read_secret_from_systemd_credential(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX], *secret = NULL;
	size_t len = 0;
	struct cp_error err = { 0 };

	tmp_path(dir, "creds");
	assert_int_equal(mkdir(dir, 0700), 0);
	tmp_path(path, "creds/smtp-password");
	write_file(path, "s3cret\n", 7);

	unsetenv("CREDENTIALS_DIRECTORY");
	assert_int_equal(config_read_secret("credential:smtp-password", 64,
					    &secret, &len, &err), -ENOENT);
	assert_non_null(strstr(err.text, "CREDENTIALS_DIRECTORY"));
	assert_non_null(strstr(err.text, "smtp-password"));

	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
	assert_int_equal(config_read_secret("credential:smtp-password", 64,
					    &secret, &len, &err), 0);
	assert_string_equal(secret, "s3cret");
	assert_int_equal(len, 6);
	free(secret);

	assert_int_equal(config_read_secret("credential:missing", 64, &secret,
					    &len, &err), -ENOENT);
	assert_non_null(strstr(err.text, "credential missing"));
	assert_int_equal(config_read_secret("credential:../creds/smtp-password",
					    64, &secret, &len, &err), -EINVAL);
	assert_null(secret);
	assert_int_equal(config_read_secret("credential:", 64, &secret, &len,
					    &err), -EINVAL);
	assert_int_equal(config_read_secret("credential:..", 64, &secret, &len,
					    &err), -EINVAL);
	assert_int_equal(config_read_secret("credential:smtp-password", 3,
					    &secret, &len, &err), -EFBIG);
	assert_null(strstr(err.text, "s3cret"));
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void
test_example_config_parses_cleanly(void **state)
{
	const char *top = getenv("CAREPOST_TOP");
	struct cp_config *cfg = NULL;
	struct cp_error err = { 0 };
	char path[PATH_MAX];
	int r;

	/* tests/run exports CAREPOST_TOP; otherwise we run from the top */
	assert_int_equal(cp_snprintf_ok(path, sizeof(path), "%s%sconfig/"
					"carepost.conf", top ? top : "",
					top ? "/" : ""), 0);
	r = config_load(path, &cfg, &err);
	if (r != 0)
		print_error("%s\n", err.text);
	assert_int_equal(r, 0);
	assert_string_equal(cfg->smtp_server, "localhost:25");
	assert_int_equal(cfg->smtp_starttls, TLS_OPPORTUNISTIC);
	assert_string_equal(cfg->smtp_password_file, "credential:smtp-password");
	assert_string_equal(cfg->imap_host, "localhost");
	assert_int_equal(cfg->imap_port, 993);
	assert_int_equal(cfg->imap_tls, TLS_IMPLICIT);
	assert_string_equal(cfg->imap_password_file, "credential:imap-password");
	assert_string_equal(cfg->store_path, "/var/lib/carepost/store");
	assert_string_equal(cfg->templates_dir,
			    "/usr/local/share/carepost/templates");
	assert_string_equal(cfg->token_key_file, "credential:token-key");
	assert_non_null(config_department(cfg, cfg->default_department));
	config_free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_config_sets_every_key_with_its_type),
		cmocka_unit_test(test_empty_config_gets_documented_defaults),
		cmocka_unit_test(test_computed_defaults_follow_from_address_and_clinic_key),
		cmocka_unit_test(test_relative_paths_resolve_against_base_dir),
		cmocka_unit_test(test_load_resolves_paths_against_the_file_directory),
		cmocka_unit_test(test_load_reports_missing_and_oversized_files),
		cmocka_unit_test(test_each_malformed_input_names_file_line_and_key),
		cmocka_unit_test(test_line_over_4096_bytes_is_an_error),
		cmocka_unit_test(test_text_over_1_mib_is_an_error),
		cmocka_unit_test(test_echoed_value_is_cut_to_64_bytes),
		cmocka_unit_test(test_quotes_comments_crlf_bom_and_case),
		cmocka_unit_test(test_departments_are_looked_up_by_name),
		cmocka_unit_test(test_read_secret_from_file_strips_newlines),
		cmocka_unit_test(test_read_secret_errors_never_show_content),
		cmocka_unit_test(test_read_secret_from_systemd_credential),
		cmocka_unit_test(test_example_config_parses_cleanly),
	};

	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
