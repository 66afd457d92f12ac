/*
 * NAME
 *	log - structured, PHI-free logging to the journal or stderr
 * DESCRIPTION
 *	See log.h.
 */
#include "log.h"
#include "util.h"

#include <gcrypt.h>
#include <systemd/sd-journal.h>

static const char *log_ident = "carepost";
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max = LOG_INFO;
static unsigned char ref_key[32];
static size_t ref_key_len;

void
log_setup(const char *ident, enum log_target target, int max_priority)
{
	log_ident = ident;
	log_max = max_priority;
	if (target == LOG_TARGET_AUTO)
		target = getenv("JOURNAL_STREAM") ? LOG_TARGET_JOURNAL
						  : LOG_TARGET_STDERR;
	log_target = target;
}

void
log_set_ref_key(const void *key, size_t len)
{
	if (len > sizeof(ref_key))
		len = sizeof(ref_key);
	memcpy(ref_key, key, len);
	ref_key_len = len;
}

void
log_patient_ref(const char *patient_id, char out[13])
{
	unsigned char mac[32];
	gcry_mac_hd_t h;
	size_t maclen = sizeof(mac);
	static const unsigned char nokey[1] = { 0 };

	memset(mac, 0, sizeof(mac));
	if (gcry_mac_open(&h, GCRY_MAC_HMAC_SHA256, 0, NULL) == 0) {
		if (ref_key_len)
			gcry_mac_setkey(h, ref_key, ref_key_len);
		else
			gcry_mac_setkey(h, nokey, sizeof(nokey));
		gcry_mac_write(h, patient_id, strlen(patient_id));
		gcry_mac_read(h, mac, &maclen);
		gcry_mac_close(h);
	}
	cp_hex(mac, 6, out);
}

static const char *
level_name(int priority)
{
	switch (priority) {
	case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: return "fatal";
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

/*
 * no_controls - control characters (a newline, an escape sequence) become
 * spaces: text from outside (a relay's reply, an error about input) must
 * not forge a log line of its own or reach a terminal.
 */
static void
no_controls(char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
}

int
log_event(int priority, const char *msgid, const char *event_id,
	  const char *patient_id, const char *fmt, ...)
{
	char text[1024], ref[13] = "", line[1400];
	va_list ap;
	int n;

	if (priority > log_max)
		return 0;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	no_controls(text, strlen(text));
	if (patient_id)
		log_patient_ref(patient_id, ref);

	if (log_target == LOG_TARGET_JOURNAL) {
		sd_journal_send("MESSAGE=%s", text,
				"PRIORITY=%d", priority,
				"SYSLOG_IDENTIFIER=%s", log_ident,
				"MESSAGE_ID=%s", msgid ? msgid : LOGID_GENERIC,
				"CAREPOST_EVENT=%s", event_id ? event_id : "",
				"CAREPOST_PATIENT_REF=%s", ref,
				NULL);
		return 0;
	}
	n = snprintf(line, sizeof(line), "%s[%ld]: %s: %s%s%s%s%s%s%s\n",
		     log_ident, (long)getpid(), level_name(priority),
		     event_id ? "event=" : "", event_id ? event_id : "",
		     event_id ? " " : "",
		     patient_id ? "patient=" : "", ref,
		     patient_id ? " " : "", text);
	if (n < 0)
		return 0;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	no_controls(line, (size_t)n - 1);	/* the ident and event id too */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return 0;
	return 0;
}
