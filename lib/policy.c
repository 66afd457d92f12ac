/*
 * NAME
 *	policy - who receives an event, and when
 * DESCRIPTION
 *	See policy.h.
 */
#include "policy.h"
#include "event.h"
#include "record.h"
#include "util.h"

#include <ctype.h>
#include <gcrypt.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

static int
rcpt_add(struct delivery *d, const char *ref, json_t *who)
{
	const char *fpr = json_string_value(json_object_get(who, "pgp_fpr"));

	return delivery_add_rcpt(d, ref, fpr && *fpr ? RCPT_ENCRYPTED : RCPT_NOTICE,
				 NULL) ? 0 : -ENOMEM;
}

int
policy_recipients(json_t *patient, struct delivery *d, int64_t now,
		  char *reason, size_t reasonlen)
{
	json_t *proxies, *p;
	int age = patient_age_years(patient, now);
	const struct event_type *et;
	size_t i, opted_out = 0, before = d->nrcpts;

	reason[0] = '\0';
	if (age < 0 || age >= 18) {
		if (!json_is_string(json_object_get(patient, "email"))) {
			cp_strlcpy(reason, "patient has no email address", reasonlen);
			return 0;
		}
		return rcpt_add(d, "patient", patient) < 0 ? -ENOMEM : 1;
	}
	if (d->confidential == 1) {
		cp_strlcpy(reason, "confidential event for a minor: never sent to proxies",
			   reasonlen);
		return 0;
	}
	et = event_type_find(d->type);
	proxies = json_object_get(patient, "proxies");
	json_array_foreach(proxies, i, p) {
		char ref[32];

		if (!json_is_string(json_object_get(p, "email")))
			continue;
		/* A proxy's own unsubscribe (on ingest) stops mail to that proxy. */
		if (event_opted_out(p, et) != NULL) {
			opted_out++;
			continue;
		}
		snprintf(ref, sizeof(ref), "proxy:%zu", i);
		if (rcpt_add(d, ref, p) < 0)
			return -ENOMEM;
	}
	if (d->nrcpts == before)
		cp_strlcpy(reason, opted_out ? "every proxy opted out of the category" :
			   "minor without a proxy address", reasonlen);
	return (int)(d->nrcpts - before);
}

int
policy_resolve(json_t *patient, const char *ref, struct policy_rcpt *out)
{
	json_t *who;

	memset(out, 0, sizeof(*out));
	if (strcmp(ref, "patient") == 0) {
		who = patient;
	} else if (strncmp(ref, "proxy:", 6) == 0) {
		char *end;
		unsigned long n = strtoul(ref + 6, &end, 10);

		if (*end != '\0' || ref[6] == '\0')
			return -EINVAL;
		who = json_array_get(json_object_get(patient, "proxies"), n);
		out->is_proxy = 1;
	} else {
		return -EINVAL;
	}
	out->address = json_string_value(json_object_get(who, "email"));
	if (out->address == NULL)
		return -ENOENT;
	out->name = json_string_value(json_object_get(who, "name"));
	out->fpr = json_string_value(json_object_get(who, "pgp_fpr"));
	if (out->fpr && *out->fpr == '\0')
		out->fpr = NULL;
	return 0;
}

int
policy_mails(json_t *patient, const char *ref, int64_t now)
{
	int age = patient_age_years(patient, now);
	int adult = age < 0 || age >= 18;

	return strcmp(ref, "patient") == 0 ? adult : !adult;
}

size_t
policy_proxies(json_t *patient)
{
	return json_array_size(json_object_get(patient, "proxies"));
}

int
policy_tz_valid(const char *tz)
{
	char path[512];
	struct stat st;
	size_t i;

	if (tz == NULL || *tz == '\0' || *tz == '/' || strstr(tz, "..") ||
	    strlen(tz) > 64)
		return 0;
	/* zoneinfo's other files: leap-second and POSIX-rule variants,
	 * its tables, and the placeholder zone */
	if (strncmp(tz, "right/", 6) == 0 || strncmp(tz, "posix/", 6) == 0 ||
	    strcmp(tz, "posixrules") == 0 || strcmp(tz, "leapseconds") == 0 ||
	    strcmp(tz, "Factory") == 0 || strchr(tz, '.') != NULL)
		return 0;
	for (i = 0; tz[i]; i++)
		if (!(isalnum((unsigned char)tz[i]) || strchr("/_+-", tz[i])))
			return 0;
	if (cp_snprintf_ok(path, sizeof(path), "/usr/share/zoneinfo/%s", tz) < 0)
		return 0;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * The zone last loaded into TZ. carepostd formats no local times other
 * than here (mail dates are UTC), so TZ is left set between calls: glibc
 * re-reads a zone file only when TZ changes, which keeps this cheap when
 * a batch goes to patients in one zone.
 */
static char loaded_zone[65];

/* load_zone - TZ set to tz's zone (else fallback, else UTC); tz_lock held. */
static const char *
load_zone(const char *tz, const char *fallback_tz)
{
	const char *zone = "UTC";

	if (tz && loaded_zone[0] != '\0' && strcmp(tz, loaded_zone) == 0)
		zone = loaded_zone;
	else if (policy_tz_valid(tz))
		zone = tz;
	else if (policy_tz_valid(fallback_tz))
		zone = fallback_tz;
	if (strcmp(zone, loaded_zone) != 0) {
		cp_strlcpy(loaded_zone, zone, sizeof(loaded_zone));
		setenv("TZ", loaded_zone, 1);
		tzset();
	}
	return loaded_zone;
}

void
policy_zone_at(int64_t t, const char *tz, const char *fallback_tz,
	       struct policy_zone *out)
{
	time_t tt = (time_t)t;
	struct tm tm;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&tz_lock);
	cp_strlcpy(out->zone, load_zone(tz, fallback_tz), sizeof(out->zone));
	if (localtime_r(&tt, &tm) != NULL) {
		out->offset = tm.tm_gmtoff;
		out->dst = tm.tm_isdst > 0;
		cp_strlcpy(out->abbr, tm.tm_zone ? tm.tm_zone : "", sizeof(out->abbr));
	}
	pthread_mutex_unlock(&tz_lock);
}

int64_t
policy_quiet_until(int64_t now, const char *tz, const char *fallback_tz,
		   int start, int end)
{
	struct tm tm;
	time_t t = (time_t)now;
	int minute, quiet, next_day = 0;
	int64_t until = now;

	if (start == end)
		return now;
	pthread_mutex_lock(&tz_lock);
	load_zone(tz, fallback_tz);
	localtime_r(&t, &tm);
	minute = tm.tm_hour * 60 + tm.tm_min;
	if (start < end) {
		quiet = minute >= start && minute < end;
	} else {
		quiet = minute >= start || minute < end;
		next_day = minute >= start;
	}
	if (quiet) {
		tm.tm_mday += next_day;
		tm.tm_hour = end / 60;
		tm.tm_min = end % 60;
		tm.tm_sec = 0;
		tm.tm_isdst = -1;
		until = (int64_t)mktime(&tm);
		if (until < now)
			until = now;
	}
	pthread_mutex_unlock(&tz_lock);
	return until;
}

void
policy_address_hash(const char *address, char out[POLICY_ADDRESS_HASH_SIZE])
{
	unsigned char digest[32];
	gcry_md_hd_t h;
	char chunk[256];
	size_t n = 0;

	if (gcry_md_open(&h, GCRY_MD_SHA256, 0) != 0) {
		memset(out, '0', POLICY_ADDRESS_HASH_SIZE - 1);	/* matches nothing */
		out[POLICY_ADDRESS_HASH_SIZE - 1] = '\0';
		return;
	}
	for (const char *p = address; *p; p++) {
		chunk[n++] = (char)tolower((unsigned char)*p);
		if (n == sizeof(chunk)) {
			gcry_md_write(h, chunk, n);
			n = 0;
		}
	}
	gcry_md_write(h, chunk, n);
	memcpy(digest, gcry_md_read(h, GCRY_MD_SHA256), sizeof(digest));
	gcry_md_close(h);
	cp_hex(digest, 8, out);
}
