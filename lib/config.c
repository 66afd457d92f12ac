/*
 * NAME
 *	config - read carepost.conf (INI) into a struct cp_config
 * DESCRIPTION
 *	See config.h for the contract and carepost.conf(5) for the keys.
 *
 *	One table, config_keys[], lists every key: its section, its name,
 *	the type of its value, the field of struct cp_config it fills, its
 *	default (as text, converted by the same code as a value from the
 *	file) and, for numbers, durations and sizes, the allowed range.
 *	Adding a key is one line in that table plus the field in config.h.
 *
 *	The text is checked line by line before it is interpreted: at most
 *	4096 bytes, no NUL, well-formed UTF-8, no control characters other
 *	than TAB (a CR inside a value would let a From: name inject header
 *	lines). After the last line every unset key gets its default, then
 *	the computed defaults are filled in (smtp helo from gethostname,
 *	message_id_domain from from_address, gpg store_key from clinic_key,
 *	audit checkpoint_file in the store's directory)
 *	and the few rules that tie keys together are checked.
 * DIAGNOSTICS
 *	Every error is "FILE:LINE: [section] key: what was expected, got
 *	"value"". Config is not PHI, so the value is echoed, cut to 64 bytes
 *	with control characters and quotes replaced. config_read_secret
 *	names the file or credential, never what it holds.
 */
#include "config.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>

#ifndef CAREPOST_DATADIR
#define CAREPOST_DATADIR "/usr/local/share/carepost"
#endif

#define CONFIG_MAX_FILE		(1024 * 1024)
#define CONFIG_MAX_LINE		4096
#define CONFIG_MAX_ECHO		64
#define CONFIG_MAX_DEPARTMENTS	64
#define CONFIG_MAX_DEPT_NAME	64
#define CONFIG_STAFF_PREFIX	"staff."
#define CONFIG_MAX_SECRET	(1024 * 1024)

#define MINUTE	60
#define HOUR	(60 * MINUTE)
#define DAY	(24 * HOUR)
#define KIB	((int64_t)1024)
#define MIB	(KIB * 1024)
#define GIB	(MIB * 1024)
#define TIB	(GIB * 1024)

enum key_type {
	KEY_STRING,		/* char *, as written */
	KEY_PATH,		/* char *, relative: against base_dir */
	KEY_SECRET,		/* char *, a path or credential:NAME */
	KEY_ADDRESS,		/* char *, local@domain */
	KEY_HOSTPORT,		/* char *, host:port or [v6]:port */
	KEY_INT,		/* int, in [min, max] */
	KEY_DURATION,		/* int seconds, in [min, max] */
	KEY_LIFETIME,		/* int seconds: 0 (never), or in [min, max] */
	KEY_SIZE,		/* uint64_t bytes, in [min, max] */
	KEY_BOOL,		/* int 0/1 */
	KEY_SMTP_TLS,		/* enum tls_mode: opportunistic|required|off */
	KEY_IMAP_TLS,		/* enum tls_mode: implicit|starttls|off */
	KEY_TIME_OF_DAY,	/* int minutes after midnight */
	KEY_LOG_LEVEL,		/* int syslog priority */
};

struct config_key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;		/* of the field in struct cp_config */
	const char *def;	/* NULL: unset, or computed after parsing */
	int64_t min, max;	/* KEY_INT, KEY_DURATION, KEY_SIZE */
};

#define FIELD(f) offsetof(struct cp_config, f)

static const struct config_key config_keys[] = {
	{ "store", "path", KEY_PATH, FIELD(store_path), "/var/lib/carepost/store", 0, 0 },
	{ "store", "map_size", KEY_SIZE, FIELD(store_map_size), "1G", MIB, 16 * TIB },

	{ "smtp", "server", KEY_HOSTPORT, FIELD(smtp_server), "localhost:25", 0, 0 },
	{ "smtp", "helo", KEY_STRING, FIELD(smtp_helo), NULL, 0, 0 },
	{ "smtp", "starttls", KEY_SMTP_TLS, FIELD(smtp_starttls), "opportunistic", 0, 0 },
	{ "smtp", "user", KEY_STRING, FIELD(smtp_user), NULL, 0, 0 },
	{ "smtp", "password_file", KEY_SECRET, FIELD(smtp_password_file), NULL, 0, 0 },
	{ "smtp", "ca_file", KEY_PATH, FIELD(smtp_ca_file), NULL, 0, 0 },
	{ "smtp", "timeout", KEY_DURATION, FIELD(smtp_timeout), "60s", 1, DAY },
	{ "smtp", "batch_size", KEY_INT, FIELD(smtp_batch_size), "100", 1, 10000 },
	{ "smtp", "sessions", KEY_INT, FIELD(smtp_sessions), "1", 1, 64 },

	{ "imap", "host", KEY_STRING, FIELD(imap_host), NULL, 0, 0 },
	{ "imap", "port", KEY_INT, FIELD(imap_port), "993", 1, 65535 },
	{ "imap", "tls", KEY_IMAP_TLS, FIELD(imap_tls), "implicit", 0, 0 },
	{ "imap", "user", KEY_STRING, FIELD(imap_user), NULL, 0, 0 },
	{ "imap", "password_file", KEY_SECRET, FIELD(imap_password_file), NULL, 0, 0 },
	{ "imap", "mailbox", KEY_STRING, FIELD(imap_mailbox), "INBOX", 0, 0 },
	{ "imap", "processed_folder", KEY_STRING, FIELD(imap_processed_folder), "carepost/processed", 0, 0 },
	{ "imap", "quarantine_folder", KEY_STRING, FIELD(imap_quarantine_folder), "carepost/quarantine", 0, 0 },
	{ "imap", "poll_interval", KEY_DURATION, FIELD(imap_poll_interval), "60s", 1, DAY },
	{ "imap", "batch_size", KEY_INT, FIELD(imap_batch_size), "200", 1, 10000 },

	{ "gpg", "home", KEY_PATH, FIELD(gpg_home), NULL, 0, 0 },
	{ "gpg", "clinic_key", KEY_STRING, FIELD(gpg_clinic_key), NULL, 0, 0 },
	{ "gpg", "store_key", KEY_STRING, FIELD(gpg_store_key), NULL, 0, 0 },
	{ "gpg", "workers", KEY_INT, FIELD(gpg_workers), "1", 1, 64 },
	{ "gpg", "time_limit", KEY_DURATION, FIELD(gpg_time_limit), "10s", 1, 15 },

	{ "templates", "dir", KEY_PATH, FIELD(templates_dir), CAREPOST_DATADIR "/templates", 0, 0 },
	{ "templates", "default_locale", KEY_STRING, FIELD(default_locale), "en", 0, 0 },

	{ "portal", "clinic_name", KEY_STRING, FIELD(clinic_name), NULL, 0, 0 },
	{ "portal", "portal_url", KEY_STRING, FIELD(portal_url), NULL, 0, 0 },
	{ "portal", "from_address", KEY_ADDRESS, FIELD(from_address), NULL, 0, 0 },
	{ "portal", "from_name", KEY_STRING, FIELD(from_name), NULL, 0, 0 },
	{ "portal", "reply_domain", KEY_STRING, FIELD(reply_domain), NULL, 0, 0 },
	{ "portal", "bounce_domain", KEY_STRING, FIELD(bounce_domain), NULL, 0, 0 },
	{ "portal", "unsubscribe_address", KEY_ADDRESS, FIELD(unsubscribe_address), NULL, 0, 0 },
	{ "portal", "unsubscribe_url", KEY_STRING, FIELD(unsubscribe_url), NULL, 0, 0 },
	{ "portal", "message_id_domain", KEY_STRING, FIELD(message_id_domain), NULL, 0, 0 },

	{ "delivery", "poll_interval", KEY_DURATION, FIELD(poll_interval), "30s", 1, DAY },
	{ "delivery", "retry_base", KEY_DURATION, FIELD(retry_base), "5m", 1, DAY },
	{ "delivery", "retry_max", KEY_DURATION, FIELD(retry_max), "6h", 1, 30 * DAY },
	{ "delivery", "max_age", KEY_DURATION, FIELD(max_age), "3d", MINUTE, 365 * DAY },
	{ "delivery", "quiet_start", KEY_TIME_OF_DAY, FIELD(quiet_start), "21:00", 0, 0 },
	{ "delivery", "quiet_end", KEY_TIME_OF_DAY, FIELD(quiet_end), "08:00", 0, 0 },
	{ "delivery", "token_ttl", KEY_DURATION, FIELD(token_ttl), "30d", HOUR, 3650 * DAY },
	{ "delivery", "default_tz", KEY_STRING, FIELD(default_tz), "UTC", 0, 0 },
	{ "delivery", "digest_window", KEY_DURATION, FIELD(digest_window), "0", 0, DAY },

	{ "routing", "default_department", KEY_STRING, FIELD(default_department), "general", 0, 0 },
	{ "routing", "urgent_words", KEY_STRING, FIELD(urgent_words), NULL, 0, 0 },
	{ "routing", "alert_window", KEY_DURATION, FIELD(alert_window), "600", 0, DAY },

	{ "security", "token_key_file", KEY_SECRET, FIELD(token_key_file), NULL, 0, 0 },
	{ "security", "trusted_authserv_id", KEY_STRING, FIELD(trusted_authserv_id), NULL, 0, 0 },
	{ "security", "require_dmarc", KEY_BOOL, FIELD(require_dmarc), "no", 0, 0 },
	{ "security", "feedback_reporters", KEY_STRING, FIELD(feedback_reporters), NULL, 0, 0 },

	{ "retention", "delivery", KEY_LIFETIME, FIELD(retain_delivery), "90d", HOUR, 20 * 366 * DAY },
	{ "retention", "internal", KEY_LIFETIME, FIELD(retain_internal), "30d", HOUR, 20 * 366 * DAY },
	{ "retention", "threads", KEY_LIFETIME, FIELD(retain_threads), "30d", HOUR, 20 * 366 * DAY },
	{ "retention", "seen", KEY_LIFETIME, FIELD(retain_seen), "30d", DAY, 20 * 366 * DAY },
	{ "retention", "acks", KEY_LIFETIME, FIELD(retain_acks), "7d", 2 * DAY, 20 * 366 * DAY },
	{ "retention", "bounces", KEY_LIFETIME, FIELD(retain_bounces), "365d", DAY, 20 * 366 * DAY },
	{ "retention", "inbox", KEY_LIFETIME, FIELD(retain_inbox), "0", DAY, 20 * 366 * DAY },
	{ "retention", "clinic", KEY_LIFETIME, FIELD(retain_clinic), "0", DAY, 20 * 366 * DAY },
	{ "retention", "data_keys", KEY_LIFETIME, FIELD(retain_data_keys), "7d", 2 * DAY, 20 * 366 * DAY },
	{ "retention", "interval", KEY_DURATION, FIELD(retain_interval), "1h", MINUTE, DAY },
	{ "retention", "batch", KEY_INT, FIELD(retain_batch), "500", 1, 10000 },

	{ "audit", "checkpoint_key", KEY_STRING, FIELD(audit_checkpoint_key), NULL, 0, 0 },
	{ "audit", "checkpoint_file", KEY_PATH, FIELD(audit_checkpoint_file), NULL, 0, 0 },
	{ "audit", "checkpoint_interval", KEY_DURATION, FIELD(audit_checkpoint_interval), "1h", MINUTE, 7 * DAY },

	{ "daemon", "metrics_file", KEY_PATH, FIELD(metrics_file), NULL, 0, 0 },
	{ "daemon", "wake_socket", KEY_PATH, FIELD(wake_socket), NULL, 0, 0 },
	{ "daemon", "log_level", KEY_LOG_LEVEL, FIELD(log_level), "info", 0, 0 },
};

#define CONFIG_N_KEYS CP_ARRAY_SIZE(config_keys)

static const char *const config_sections[] = {
	"store", "smtp", "imap", "gpg", "templates", "portal", "delivery",
	"routing", "security", "retention", "audit", "daemon",
};

struct parser {
	const char *name;		/* for messages */
	const char *base_dir;		/* NULL: leave relative paths alone */
	struct cp_config *cfg;
	struct cp_error *err;
	unsigned line;			/* 0: not tied to a line */
	const char *section;		/* static, from config_sections */
	unsigned key_line[CONFIG_N_KEYS];	/* 0: not set in the file */
	unsigned dept_line[CONFIG_MAX_DEPARTMENTS];
};

static bool
key_is_string(const struct config_key *k)
{
	switch (k->type) {
	case KEY_STRING:
	case KEY_PATH:
	case KEY_SECRET:
	case KEY_ADDRESS:
	case KEY_HOSTPORT:
		return true;
	default:
		return false;
	}
}

static char **
field_string(struct cp_config *cfg, const struct config_key *k)
{
	return (char **)(void *)((char *)cfg + k->offset);
}

static int *
field_int(struct cp_config *cfg, const struct config_key *k)
{
	return (int *)(void *)((char *)cfg + k->offset);
}

static uint64_t *
field_size(struct cp_config *cfg, const struct config_key *k)
{
	return (uint64_t *)(void *)((char *)cfg + k->offset);
}

static enum tls_mode *
field_tls(struct cp_config *cfg, const struct config_key *k)
{
	return (enum tls_mode *)(void *)((char *)cfg + k->offset);
}

/*
 * echo - a printable copy of s for an error text: at most CONFIG_MAX_ECHO
 * bytes, cut at a character boundary, '"', '\\' and control characters
 * replaced by '?', "..." appended when cut. out holds CONFIG_MAX_ECHO + 4.
 */
static void
echo(const char *s, char out[CONFIG_MAX_ECHO + 4])
{
	size_t len = strlen(s), n = len, i;

	if (n > CONFIG_MAX_ECHO) {
		n = CONFIG_MAX_ECHO;
		/* do not leave half a UTF-8 sequence */
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			 ? '?' : (char)c;
	}
	if (n < len) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/*
 * fail - set err to "NAME:LINE: [section] key: what" and return code.
 * section and key may be NULL; both are echoed (cut) since they may be
 * whatever the file held.
 */
static int fail(const struct parser *p, const char *section, const char *key,
		int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int
fail(const struct parser *p, const char *section, const char *key, int code,
     const char *fmt, ...)
{
	char what[256], where[32] = "", sec[CONFIG_MAX_ECHO + 4],
	     k[CONFIG_MAX_ECHO + 4], ctx[2 * CONFIG_MAX_ECHO + 16] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (p->line > 0)
		snprintf(where, sizeof(where), ":%u", p->line);
	if (section != NULL)
		echo(section, sec);
	if (key != NULL)
		echo(key, k);
	if (section != NULL && key != NULL)
		snprintf(ctx, sizeof(ctx), "[%s] %s: ", sec, k);
	else if (section != NULL)
		snprintf(ctx, sizeof(ctx), "[%s]: ", sec);
	else if (key != NULL)
		snprintf(ctx, sizeof(ctx), "%s: ", k);
	return cp_error_set(p->err, code, "%s%s: %s%s", p->name, where, ctx,
			    what);
}

static int
fail_value(const struct parser *p, const struct config_key *k,
	   const char *expected, const char *value)
{
	char v[CONFIG_MAX_ECHO + 4];

	echo(value, v);
	return fail(p, k->section, k->name, -EINVAL, "expected %s, got \"%s\"",
		    expected, v);
}

static int
fail_oom(const struct parser *p)
{
	return fail(p, NULL, NULL, -ENOMEM, "out of memory");
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = '\0';
	return s;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* parse_number - an optional '-' and decimal digits, whole string. */
static int
parse_number(const char *s, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0;

	if (*s == '-') {
		neg = true;
		s++;
	}
	if (!is_digit(*s))
		return -EINVAL;
	for (; is_digit(*s); s++) {
		if (v > ((uint64_t)INT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (*s != '\0')
		return -EINVAL;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/*
 * parse_scaled - digits followed by at most one unit character looked up
 * in units/scales (case-insensitively). No unit: scale 1.
 */
static int
parse_scaled(const char *s, const char *units, const int64_t *scales,
	     int64_t *out)
{
	char digits[24];
	size_t n = 0;
	int64_t v, scale = 1;
	int r;

	while (is_digit(s[n]))
		n++;
	if (n == 0 || n >= sizeof(digits))
		return n == 0 ? -EINVAL : -ERANGE;
	memcpy(digits, s, n);
	digits[n] = '\0';
	if (s[n] != '\0') {
		const char *u;

		if (s[n + 1] != '\0')
			return -EINVAL;
		u = strchr(units, s[n] | 0x20);
		if (u == NULL)
			return -EINVAL;
		scale = scales[u - units];
	}
	r = parse_number(digits, &v);
	if (r < 0)
		return r;
	if (v > INT64_MAX / scale)
		return -ERANGE;
	*out = v * scale;
	return 0;
}

/* format_scaled - v in the largest unit that divides it, e.g. "6h". */
static void
format_scaled(int64_t v, const char *units, const int64_t *scales,
	      char *out, size_t size)
{
	size_t i = strlen(units);

	while (i-- > 0) {
		if (v != 0 && v % scales[i] == 0) {
			snprintf(out, size, "%lld%c", (long long)(v / scales[i]),
				 units[i]);
			return;
		}
	}
	snprintf(out, size, "%lld", (long long)v);
}

static const char duration_units[] = "smhd";
static const int64_t duration_scales[] = { 1, MINUTE, HOUR, DAY };
static const char size_units[] = "kmgt";
static const int64_t size_scales[] = { KIB, MIB, GIB, TIB };

static void
format_duration(int64_t v, char *out, size_t size)
{
	format_scaled(v, duration_units, duration_scales, out, size);
}

static void
format_size(int64_t v, char *out, size_t size)
{
	char tmp[32];
	size_t i;

	format_scaled(v, size_units, size_scales, tmp, sizeof(tmp));
	for (i = 0; tmp[i]; i++)	/* sizes are written K, M, G, T */
		if (tmp[i] >= 'a' && tmp[i] <= 'z')
			tmp[i] = (char)(tmp[i] - 'a' + 'A');
	cp_strlcpy(out, tmp, size);
}

static bool
is_domain(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      is_digit(c) || c == '-' || c == '.' ||
		      (unsigned char)c >= 0x80))
			return false;
		if (c == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

/* is_address - local@domain, no spaces or list/bracket characters. */
static bool
is_address(const char *s, size_t n)
{
	const char *at = NULL;
	size_t i;

	for (i = 0; i < n; i++) {
		if (strchr(" \t<>,;()[]\"\\", s[i]) != NULL)
			return false;
		if (s[i] == '@')
			at = s + i;
	}
	if (at == NULL || at == s)
		return false;
	return is_domain(at + 1, (size_t)(s + n - at - 1));
}

static bool
is_port(const char *s)
{
	int64_t v;

	return parse_number(s, &v) == 0 && *s != '-' && v >= 1 && v <= 65535;
}

/* is_hostport - host:port or [IPv6]:port. */
static bool
is_hostport(const char *s)
{
	const char *colon;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close == s + 1 || close[1] != ':')
			return false;
		return is_port(close + 2);
	}
	colon = strchr(s, ':');
	if (colon == NULL || colon == s || strchr(colon + 1, ':') != NULL)
		return false;
	return is_domain(s, (size_t)(colon - s)) && is_port(colon + 1);
}

/* is_staff_list - comma-separated addresses, spaces around commas ok. */
static bool
is_staff_list(const char *s)
{
	for (;;) {
		const char *end = strchr(s, ',');
		size_t n = end ? (size_t)(end - s) : strlen(s);

		while (n > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			n--;
		}
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (!is_address(s, n))
			return false;
		if (end == NULL)
			return true;
		s = end + 1;
	}
}

static int
parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < CP_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int
parse_time_of_day(const char *s, int *out)
{
	int h, m;

	if (!is_digit(s[0]))
		return -EINVAL;
	h = s[0] - '0';
	s++;
	if (is_digit(s[0])) {
		h = h * 10 + (s[0] - '0');
		s++;
	}
	if (s[0] != ':' || !is_digit(s[1]) || !is_digit(s[2]) || s[3] != '\0')
		return -EINVAL;
	m = (s[1] - '0') * 10 + (s[2] - '0');
	if (h > 23 || m > 59)
		return -EINVAL;
	*out = h * 60 + m;
	return 0;
}

struct name_value {
	const char *name;
	int value;
};

static int
parse_enum(const char *s, const struct name_value *names, size_t n, int *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].value;
			return 0;
		}
	}
	return -EINVAL;
}

static const struct name_value smtp_tls_names[] = {
	{ "opportunistic", TLS_OPPORTUNISTIC },
	{ "required", TLS_REQUIRED },
	{ "off", TLS_OFF },
};

static const struct name_value imap_tls_names[] = {
	{ "implicit", TLS_IMPLICIT },
	{ "starttls", TLS_REQUIRED },
	{ "off", TLS_OFF },
};

static const struct name_value log_level_names[] = {
	{ "debug", LOG_DEBUG },
	{ "info", LOG_INFO },
	{ "notice", LOG_NOTICE },
	{ "warning", LOG_WARNING },
	{ "error", LOG_ERR },
};

/* credential_name - the NAME of "credential:NAME", or NULL if not one. */
static const char *
credential_name(const char *spec)
{
	static const char prefix[] = "credential:";

	if (strncmp(spec, prefix, sizeof(prefix) - 1) != 0)
		return NULL;
	return spec + sizeof(prefix) - 1;
}

static bool
credential_name_ok(const char *name)
{
	return name[0] != '\0' && strchr(name, '/') == NULL &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int
store_string(const struct parser *p, const struct config_key *k,
	     const char *value)
{
	char **field = field_string(p->cfg, k);
	char *copy;

	if (k->type == KEY_PATH || (k->type == KEY_SECRET &&
				    credential_name(value) == NULL)) {
		if (value[0] != '/' && p->base_dir != NULL &&
		    p->base_dir[0] != '\0') {
			if (asprintf(&copy, "%s/%s", p->base_dir, value) < 0)
				return fail_oom(p);
		} else {
			copy = strdup(value);
		}
	} else {
		copy = strdup(value);
	}
	if (copy == NULL)
		return fail_oom(p);
	free(*field);
	*field = copy;
	return 0;
}

static int
convert_range(const struct parser *p, const struct config_key *k,
	      const char *value, int64_t *out)
{
	char lo[32], hi[32], expected[96];
	int64_t v;
	int r;

	switch (k->type) {
	case KEY_DURATION:
	case KEY_LIFETIME:
		r = parse_scaled(value, duration_units, duration_scales, &v);
		if (r == -EINVAL)
			return fail_value(p, k, "a duration like 30s, 5m, 2h",
					  value);
		format_duration(k->min, lo, sizeof(lo));
		format_duration(k->max, hi, sizeof(hi));
		snprintf(expected, sizeof(expected), "%sa duration from %s to %s",
			 k->type == KEY_LIFETIME ? "0 (never) or " : "", lo, hi);
		if (k->type == KEY_LIFETIME && r == 0 && v == 0) {
			*out = 0;
			return 0;
		}
		break;
	case KEY_SIZE:
		r = parse_scaled(value, size_units, size_scales, &v);
		if (r == -EINVAL)
			return fail_value(p, k, "a size like 512M or 1G", value);
		format_size(k->min, lo, sizeof(lo));
		format_size(k->max, hi, sizeof(hi));
		snprintf(expected, sizeof(expected), "a size from %s to %s",
			 lo, hi);
		break;
	default:
		r = parse_number(value, &v);
		snprintf(expected, sizeof(expected),
			 "an integer from %lld to %lld", (long long)k->min,
			 (long long)k->max);
		if (r == -EINVAL)
			return fail_value(p, k, expected, value);
		break;
	}
	if (r < 0 || v < k->min || v > k->max)
		return fail_value(p, k, expected, value);
	*out = v;
	return 0;
}

/* convert - check value against k's type and store it in the config. */
static int
convert(const struct parser *p, const struct config_key *k, const char *value)
{
	int64_t v;
	int r, iv;

	switch (k->type) {
	case KEY_STRING:
	case KEY_PATH:
		return store_string(p, k, value);
	case KEY_SECRET: {
		const char *name = credential_name(value);

		if (name != NULL && !credential_name_ok(name))
			return fail_value(p, k,
				"a file or credential:NAME (NAME without '/')",
				value);
		return store_string(p, k, value);
	}
	case KEY_ADDRESS:
		if (!is_address(value, strlen(value)))
			return fail_value(p, k,
				"an address like carepost@clinic.example",
				value);
		return store_string(p, k, value);
	case KEY_HOSTPORT:
		if (!is_hostport(value))
			return fail_value(p, k, "host:port like localhost:25",
					  value);
		return store_string(p, k, value);
	case KEY_INT:
	case KEY_DURATION:
	case KEY_LIFETIME:
		r = convert_range(p, k, value, &v);
		if (r < 0)
			return r;
		*field_int(p->cfg, k) = (int)v;
		return 0;
	case KEY_SIZE:
		r = convert_range(p, k, value, &v);
		if (r < 0)
			return r;
		*field_size(p->cfg, k) = (uint64_t)v;
		return 0;
	case KEY_BOOL:
		if (parse_bool(value, &iv) < 0)
			return fail_value(p, k,
				"yes or no (true/false, on/off, 1/0)", value);
		*field_int(p->cfg, k) = iv;
		return 0;
	case KEY_SMTP_TLS:
	case KEY_IMAP_TLS: {
		bool smtp = k->type == KEY_SMTP_TLS;

		r = smtp ? parse_enum(value, smtp_tls_names,
				      CP_ARRAY_SIZE(smtp_tls_names), &iv)
			 : parse_enum(value, imap_tls_names,
				      CP_ARRAY_SIZE(imap_tls_names), &iv);
		if (r < 0)
			return fail_value(p, k, smtp
				? "opportunistic, required or off"
				: "implicit, starttls or off", value);
		*field_tls(p->cfg, k) = (enum tls_mode)iv;
		return 0;
	}
	case KEY_TIME_OF_DAY:
		if (parse_time_of_day(value, &iv) < 0)
			return fail_value(p, k,
				"a time of day HH:MM like 21:00", value);
		*field_int(p->cfg, k) = iv;
		return 0;
	case KEY_LOG_LEVEL:
		if (parse_enum(value, log_level_names,
			       CP_ARRAY_SIZE(log_level_names), &iv) < 0)
			return fail_value(p, k,
				"debug, info, notice, warning or error", value);
		*field_int(p->cfg, k) = iv;
		return 0;
	}
	return fail(p, k->section, k->name, -EINVAL, "unknown key type");
}

static int
parse_department(struct parser *p, const char *key, const char *value)
{
	struct cp_config *cfg = p->cfg;
	const char *name = key + strlen(CONFIG_STAFF_PREFIX);
	struct cp_department *d;
	size_t i, n = strlen(name);
	char v[CONFIG_MAX_ECHO + 4];

	if (n == 0 || n > CONFIG_MAX_DEPT_NAME ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n)
		return fail(p, p->section, key, -EINVAL,
			    "expected staff.NAME with a NAME of a-z, 0-9, _ "
			    "and - (at most %d characters)",
			    CONFIG_MAX_DEPT_NAME);
	for (i = 0; i < cfg->n_departments; i++)
		if (strcmp(cfg->departments[i].name, name) == 0)
			return fail(p, p->section, key, -EINVAL,
				    "duplicate key, first set on line %u",
				    p->dept_line[i]);
	if (cfg->n_departments >= CONFIG_MAX_DEPARTMENTS)
		return fail(p, p->section, key, -E2BIG,
			    "more than %d departments", CONFIG_MAX_DEPARTMENTS);
	if (!is_staff_list(value)) {
		echo(value, v);
		return fail(p, p->section, key, -EINVAL,
			    "expected a comma-separated list of addresses, "
			    "got \"%s\"", v);
	}
	d = realloc(cfg->departments,
		    (cfg->n_departments + 1) * sizeof(*cfg->departments));
	if (d == NULL)
		return fail_oom(p);
	cfg->departments = d;
	d += cfg->n_departments;
	d->name = strdup(name);
	d->staff = strdup(value);
	if (d->name == NULL || d->staff == NULL) {
		free(d->name);
		free(d->staff);
		return fail_oom(p);
	}
	p->dept_line[cfg->n_departments++] = p->line;
	return 0;
}

static int
parse_section(struct parser *p, char *t)
{
	char *close = strchr(t, ']'), *name;
	size_t i;

	if (close == NULL || *trim(close + 1) != '\0') {
		char v[CONFIG_MAX_ECHO + 4];

		echo(t, v);
		return fail(p, NULL, NULL, -EINVAL,
			    "expected a section header like [smtp], got \"%s\"",
			    v);
	}
	*close = '\0';
	name = trim(t + 1);
	for (i = 0; i < CP_ARRAY_SIZE(config_sections); i++) {
		if (strcmp(name, config_sections[i]) == 0) {
			p->section = config_sections[i];
			return 0;
		}
	}
	return fail(p, name, NULL, -EINVAL, "unknown section");
}

static int
parse_key_value(struct parser *p, char *t)
{
	char *eq = strchr(t, '='), *key, *value;
	size_t i, n;

	if (eq == NULL) {
		char v[CONFIG_MAX_ECHO + 4];

		echo(t, v);
		return fail(p, p->section, NULL, -EINVAL,
			    "expected \"key = value\" or \"[section]\", "
			    "got \"%s\"", v);
	}
	*eq = '\0';
	key = trim(t);
	value = trim(eq + 1);
	if (*key == '\0')
		return fail(p, p->section, NULL, -EINVAL,
			    "expected a key before '='");
	if (p->section == NULL)
		return fail(p, NULL, key, -EINVAL,
			    "key outside any [section]");
	n = strlen(value);
	if (n > 0 && value[0] == '"') {
		if (n < 2 || value[n - 1] != '"')
			return fail(p, p->section, key, -EINVAL,
				    "unterminated quoted value");
		value[n - 1] = '\0';
		value++;
	}
	if (*value == '\0')
		return fail(p, p->section, key, -EINVAL,
			    "expected a value (comment the line out to use "
			    "the default)");
	if (strcmp(p->section, "routing") == 0 &&
	    strncmp(key, CONFIG_STAFF_PREFIX,
		    strlen(CONFIG_STAFF_PREFIX)) == 0)
		return parse_department(p, key, value);
	for (i = 0; i < CONFIG_N_KEYS; i++) {
		const struct config_key *k = &config_keys[i];
		int r;

		if (strcmp(k->section, p->section) != 0 ||
		    strcmp(k->name, key) != 0)
			continue;
		if (p->key_line[i] != 0)
			return fail(p, p->section, key, -EINVAL,
				    "duplicate key, first set on line %u",
				    p->key_line[i]);
		r = convert(p, k, value);
		if (r < 0)
			return r;
		p->key_line[i] = p->line;
		return 0;
	}
	return fail(p, p->section, key, -EINVAL, "unknown key");
}

/*
 * key_hint - for errors found before a line is parsed: the key, if the
 * line starts with something that looks like one followed by '='.
 */
static void
key_hint(const char *s, size_t n, char out[CONFIG_MAX_ECHO + 1])
{
	size_t i = 0, start, end;

	out[0] = '\0';
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	start = i;
	while (i < n && i - start <= CONFIG_MAX_ECHO &&
	       strchr("abcdefghijklmnopqrstuvwxyz0123456789_.-", s[i]) != NULL &&
	       s[i] != '\0')
		i++;
	end = i;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (end == start || end - start > CONFIG_MAX_ECHO || i >= n ||
	    s[i] != '=')
		return;
	memcpy(out, s + start, end - start);
	out[end - start] = '\0';
}

static int
parse_line(struct parser *p, const char *s, size_t n)
{
	char line[CONFIG_MAX_LINE + 1], hint[CONFIG_MAX_ECHO + 1];
	const char *key;
	char *t;
	size_t i;

	key_hint(s, n, hint);
	key = hint[0] ? hint : NULL;
	if (n > CONFIG_MAX_LINE)
		return fail(p, p->section, key, -E2BIG,
			    "line longer than %d bytes", CONFIG_MAX_LINE);
	if (memchr(s, '\0', n) != NULL)
		return fail(p, p->section, key, -EINVAL, "NUL byte in line");
	if (!cp_utf8_valid(s, n))
		return fail(p, p->section, key, -EINVAL, "invalid UTF-8");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(p, p->section, key, -EINVAL,
				    "control character 0x%02x in line", c);
	}
	memcpy(line, s, n);
	line[n] = '\0';
	t = trim(line);
	if (*t == '\0' || *t == '#' || *t == ';')
		return 0;
	if (*t == '[')
		return parse_section(p, t);
	return parse_key_value(p, t);
}

static int
key_index(const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < CONFIG_N_KEYS; i++)
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int
set_computed(struct parser *p, char **field, const char *value)
{
	if (*field != NULL || value == NULL)
		return 0;
	*field = strdup(value);
	return *field == NULL ? fail_oom(p) : 0;
}

/* finish - defaults, computed defaults, rules that tie keys together. */
static int
finish(struct parser *p)
{
	struct cp_config *cfg = p->cfg;
	char host[HOST_NAME_MAX + 1] = "";
	const char *at;
	size_t i;
	int r, base, max;

	p->line = 0;
	for (i = 0; i < CONFIG_N_KEYS; i++) {
		if (p->key_line[i] != 0 || config_keys[i].def == NULL)
			continue;
		r = convert(p, &config_keys[i], config_keys[i].def);
		if (r < 0)
			return r;
	}
	if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
		cp_strlcpy(host, "localhost", sizeof(host));
	r = set_computed(p, &cfg->smtp_helo, host);
	if (r < 0)
		return r;
	at = cfg->from_address ? strrchr(cfg->from_address, '@') : NULL;
	r = set_computed(p, &cfg->message_id_domain, at ? at + 1 : NULL);
	if (r < 0)
		return r;
	r = set_computed(p, &cfg->gpg_store_key, cfg->gpg_clinic_key);
	if (r < 0)
		return r;
	if (cfg->audit_checkpoint_file == NULL && cfg->store_path != NULL) {
		char path[4096];

		if (cp_snprintf_ok(path, sizeof(path), "%s/audit.checkpoints",
				   cfg->store_path) < 0)
			return fail_value(p, &config_keys[key_index("store", "path")],
					  "a shorter path", cfg->store_path);
		r = set_computed(p, &cfg->audit_checkpoint_file, path);
		if (r < 0)
			return r;
	}
	if (cfg->unsubscribe_url != NULL) {
		const char *u = cfg->unsubscribe_url;
		size_t n = strlen(u), ok = strspn(u, "abcdefghijklmnopqrstuvwxyz"
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+;=%");

		if (strncmp(u, "https://", 8) != 0 || n <= 8 || n > 200 || ok != n ||
		    u[8] == '/' || strchr(u, '#') != NULL || strstr(u, "=?") != NULL) {
			p->line = p->key_line[key_index("portal", "unsubscribe_url")];
			return fail_value(p, &config_keys[key_index("portal", "unsubscribe_url")],
					  "an https:// URL with a host, of at most 200 "
					  "characters, without spaces, commas, angle "
					  "brackets, a fragment (#) or \"=?\", to which the "
					  "token is appended", u);
		}
	}
	if (cfg->audit_checkpoint_key != NULL) {
		const char *k = cfg->audit_checkpoint_key;
		size_t n = strlen(k), digits = 0;

		while (digits < n && isxdigit((unsigned char)k[digits]))
			digits++;
		if (n != 40 || digits != n) {
			p->line = p->key_line[key_index("audit", "checkpoint_key")];
			return fail_value(p, &config_keys[key_index("audit", "checkpoint_key")],
					  "a 40-digit key fingerprint", k);
		}
	}

	base = key_index("delivery", "retry_base");
	max = key_index("delivery", "retry_max");
	if (cfg->retry_max < cfg->retry_base) {
		char b[32], m[32];

		format_duration(cfg->retry_base, b, sizeof(b));
		format_duration(cfg->retry_max, m, sizeof(m));
		p->line = p->key_line[max] ? p->key_line[max]
					   : p->key_line[base];
		return fail(p, "delivery", "retry_max", -EINVAL,
			    "expected at least retry_base (%s), got \"%s\"",
			    b, m);
	}
	return 0;
}

void
config_free(struct cp_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < CONFIG_N_KEYS; i++)
		if (key_is_string(&config_keys[i]))
			free(*field_string(cfg, &config_keys[i]));
	for (i = 0; i < cfg->n_departments; i++) {
		free(cfg->departments[i].name);
		free(cfg->departments[i].staff);
	}
	free(cfg->departments);
	free(cfg->path);
	free(cfg);
}

int
config_parse(const char *name, const char *text, size_t len,
	     const char *base_dir, struct cp_config **out,
	     struct cp_error *err)
{
	struct parser p = { 0 };
	size_t pos = 0;
	int r;

	*out = NULL;
	cp_error_clear(err);
	p.name = name ? name : "(config)";
	p.base_dir = base_dir;
	p.err = err;
	if (len > CONFIG_MAX_FILE)
		return fail(&p, NULL, NULL, -EFBIG,
			    "file larger than 1 MiB (%zu bytes)", len);
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (p.cfg == NULL)
		return fail_oom(&p);
	p.cfg->path = strdup(p.name);
	if (p.cfg->path == NULL) {
		r = fail_oom(&p);
		goto out;
	}
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;	/* a UTF-8 byte order mark from an editor */
	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;

		pos += n + (nl ? 1 : 0);
		p.line++;
		if (n > 0 && start[n - 1] == '\r')
			n--;
		r = parse_line(&p, start, n);
		if (r < 0)
			goto out;
	}
	r = finish(&p);
out:
	if (r < 0) {
		config_free(p.cfg);
		return r;
	}
	*out = p.cfg;
	return 0;
}

/* dir_of - the directory part of path ("." when it has none). */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	while (slash > path && slash[-1] == '/')
		slash--;
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int
config_load(const char *path, struct cp_config **out, struct cp_error *err)
{
	_cleanup_free_ char *text = NULL, *dir = NULL, *real = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	r = cp_read_file(path, CONFIG_MAX_FILE, &text, &len);
	if (r == -EFBIG)
		return cp_error_set(err, r, "%s: file larger than 1 MiB", path);
	if (r < 0)
		return cp_error_set(err, r, "%s: cannot read: %s", path,
				    strerror(-r));
	dir = dir_of(path);
	if (dir == NULL)
		return cp_error_set(err, -ENOMEM, "%s: out of memory", path);
	/* absolute, so that paths stay right if the daemon changes dir */
	real = realpath(dir, NULL);
	return config_parse(path, text, len, real ? real : dir, out, err);
}

/*
 * read_secret_file - like cp_read_file, but into one buffer of max + 1
 * bytes that is wiped before it is freed on every error path, so that
 * no copy of a secret is left behind in freed memory.
 */
static int
read_secret_file(const char *path, size_t max, char **out, size_t *len)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	char *data;
	size_t have = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
		return -EFBIG;
	data = malloc(max + 1);
	if (data == NULL)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, data + have, max + 1 - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;

			explicit_bzero(data, have);
			free(data);
			return r;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > max) {
			explicit_bzero(data, have);
			free(data);
			return -EFBIG;
		}
	}
	data[have] = '\0';
	*out = data;
	*len = have;
	return 0;
}

int
config_read_secret(const char *spec, size_t max, char **out, size_t *len,
		   struct cp_error *err)
{
	_cleanup_free_ char *path = NULL;
	const char *name, *kind, *what;
	char *data = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if (len)
		*len = 0;
	if (spec == NULL || spec[0] == '\0')
		return cp_error_set(err, -EINVAL,
				    "secret: no file or credential given");
	if (max > CONFIG_MAX_SECRET)
		max = CONFIG_MAX_SECRET;
	name = credential_name(spec);
	if (name != NULL) {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");

		kind = "credential";
		what = name;
		if (!credential_name_ok(name))
			return cp_error_set(err, -EINVAL,
					    "credential: expected "
					    "credential:NAME with a NAME "
					    "without '/'");
		if (dir == NULL || dir[0] == '\0')
			return cp_error_set(err, -ENOENT,
					    "credential %.64s: "
					    "$CREDENTIALS_DIRECTORY is not set "
					    "(LoadCredential= in the unit)",
					    name);
		if (asprintf(&path, "%s/%s", dir, name) < 0) {
			path = NULL;
			return cp_error_set(err, -ENOMEM,
					    "credential %.64s: out of memory",
					    name);
		}
	} else {
		kind = "secret file";
		what = spec;
		path = strdup(spec);
		if (path == NULL)
			return cp_error_set(err, -ENOMEM,
					    "secret file: out of memory");
	}
	r = read_secret_file(path, max, &data, &n);
	if (r == -EFBIG)
		return cp_error_set(err, r, "%s %.128s: larger than %zu bytes",
				    kind, what, max);
	if (r < 0)
		return cp_error_set(err, r, "%s %.128s: cannot read: %s", kind,
				    what, strerror(-r));
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		data[--n] = '\0';
	if (n == 0) {
		free(data);
		return cp_error_set(err, -EINVAL, "%s %.128s: is empty", kind,
				    what);
	}
	*out = data;
	if (len)
		*len = n;
	return 0;
}

const struct cp_department *
config_department(const struct cp_config *cfg, const char *name)
{
	size_t i;

	if (cfg == NULL || name == NULL)
		return NULL;
	for (i = 0; i < cfg->n_departments; i++)
		if (strcmp(cfg->departments[i].name, name) == 0)
			return &cfg->departments[i];
	return NULL;
}
