/*
 * NAME
 *	ical - an appointment as an RFC 5545 calendar object
 * DESCRIPTION
 *	See ical.h.
 */
#include "ical.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ICAL_FOLD	75	/* octets of a line, CRLF not counted */

/*
 * put_line - line (no CRLF) into out, folded: at most ICAL_FOLD octets a
 * line, continuation lines starting with a space, never splitting a
 * UTF-8 sequence (a continuation byte is 10xxxxxx).
 */
static int
put_line(struct buf *out, const struct buf *line)
{
	size_t i = 0, room = ICAL_FOLD;
	int r = 0;

	while (r == 0 && i < line->len) {
		size_t n = line->len - i;

		if (n > room) {
			n = room;
			while (n > 0 && ((unsigned char)line->data[i + n] & 0xC0) == 0x80)
				n--;
			if (n == 0)
				n = room;	/* no character starts here: not UTF-8 */
		}
		r = buf_append(out, line->data + i, n);
		i += n;
		if (r == 0 && i < line->len) {
			r = buf_puts(out, "\r\n ");
			room = ICAL_FOLD - 1;
		}
	}
	return r < 0 ? r : buf_puts(out, "\r\n");
}

/* text - a TEXT value, escaped (RFC 5545, 3.3.11). */
static int
text(struct buf *b, const char *s)
{
	int r = 0;

	for (; r == 0 && s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\\' || c == ';' || c == ',')
			r = buf_putc(b, '\\') < 0 ? -ENOMEM : buf_putc(b, (char)c);
		else if (c == '\n')
			r = buf_puts(b, "\\n");
		else if (c < 0x20 || c == 0x7F)
			continue;	/* CR, tabs and the rest: dropped */
		else
			r = buf_putc(b, (char)c);
	}
	return r;
}

/* param - a quoted parameter value: no '"', no control character. */
static int
param(struct buf *b, const char *s)
{
	int r = buf_putc(b, '"');

	for (; r == 0 && s && *s; s++)
		if ((unsigned char)*s >= 0x20 && *s != '"' && *s != 0x7F)
			r = buf_putc(b, *s);
	return r < 0 ? r : buf_putc(b, '"');
}

/* stamp - "YYYYMMDDTHHMMSS" of t (+ "Z" when utc); -EINVAL outside the
 * years 1970..9999. */
static int
stamp(struct buf *b, int64_t t, int is_utc)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char s[32];

	if (t < 0 || t > ICAL_TIME_MAX || gmtime_r(&tt, &tm) == NULL)
		return -EINVAL;
	strftime(s, sizeof(s), is_utc ? "%Y%m%dT%H%M%SZ" : "%Y%m%dT%H%M%S", &tm);
	return buf_puts(b, s);
}

static int
utc(struct buf *b, int64_t t)
{
	return stamp(b, t, 1);
}

/* prop - "NAME" + rest, one folded line. */
struct line {
	struct buf *out;
	struct buf l;
	int r;
};

static void
begin(struct line *ln, const char *name)
{
	buf_reset(&ln->l);
	if (ln->r == 0)
		ln->r = buf_puts(&ln->l, name);
}

static void
end(struct line *ln)
{
	if (ln->r == 0)
		ln->r = put_line(ln->out, &ln->l);
}

static void
simple(struct line *ln, const char *name, const char *value)
{
	begin(ln, name);
	if (ln->r == 0)
		ln->r = buf_puts(&ln->l, value);
	end(ln);
}

static void
text_prop(struct line *ln, const char *name, const char *value)
{
	begin(ln, name);
	if (ln->r == 0)
		ln->r = text(&ln->l, value);
	end(ln);
}

static void
time_prop(struct line *ln, const char *name, int64_t t)
{
	begin(ln, name);
	if (ln->r == 0)
		ln->r = utc(&ln->l, t);
	end(ln);
}

/* zoned_prop - NAME;TZID=zone:local time (t shifted by offset). */
static void
zoned_prop(struct line *ln, const char *name, const struct ical_event *e, int64_t t)
{
	if (e->tzid == NULL) {
		char n[32];

		snprintf(n, sizeof(n), "%s:", name);
		time_prop(ln, n, t);
		return;
	}
	begin(ln, name);
	if (ln->r == 0)
		ln->r = buf_puts(&ln->l, ";TZID=");
	if (ln->r == 0)
		ln->r = strspn(e->tzid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			       "0123456789/_+-") == strlen(e->tzid) ?
			buf_puts(&ln->l, e->tzid) : param(&ln->l, e->tzid);
	if (ln->r == 0)
		ln->r = buf_putc(&ln->l, ':');
	if (ln->r == 0)
		ln->r = stamp(&ln->l, t + e->tz_offset, 0);
	end(ln);
}

/* vtimezone - the zone's offset at the entry, as one rule. */
static void
vtimezone(struct line *ln, const struct ical_event *e)
{
	long off = e->tz_offset < 0 ? -e->tz_offset : e->tz_offset;
	char o[32];

	off %= 24 * 3600;		/* zones are within a day of UTC */
	snprintf(o, sizeof(o), "%c%02d%02d", e->tz_offset < 0 ? '-' : '+',
		 (int)(off / 3600), (int)((off / 60) % 60));
	simple(ln, "BEGIN:VTIMEZONE", "");
	text_prop(ln, "TZID:", e->tzid);
	/* one rule: STANDARD whatever the season (a DAYLIGHT alone is
	 * misread by some calendars, and adds nothing with one rule) */
	simple(ln, "BEGIN:STANDARD", "");
	simple(ln, "DTSTART:19700101T000000", "");
	simple(ln, "TZOFFSETFROM:", o);
	simple(ln, "TZOFFSETTO:", o);
	if (e->tz_abbr != NULL && *e->tz_abbr)
		text_prop(ln, "TZNAME:", e->tz_abbr);
	simple(ln, "END:STANDARD", "");
	simple(ln, "END:VTIMEZONE", "");
}

static void
address_prop(struct line *ln, const char *name, const char *cn, const char *addr)
{
	begin(ln, name);
	if (ln->r == 0 && cn != NULL && *cn) {
		ln->r = buf_puts(&ln->l, ";CN=");
		if (ln->r == 0)
			ln->r = param(&ln->l, cn);
	}
	if (ln->r == 0)
		ln->r = buf_puts(&ln->l, ":mailto:");
	if (ln->r == 0)
		ln->r = text(&ln->l, addr);
	end(ln);
}

int
ical_write(struct buf *out, const struct ical_event *e)
{
	struct buf whole = BUF_INIT;	/* appended to out only when complete */
	struct line ln = { &whole, BUF_INIT, 0 };
	char seq[32];
	int cancel = e->method == ICAL_CANCEL;

	if (e->uid == NULL || *e->uid == '\0' || e->organizer == NULL ||
	    e->end < e->start)
		return -EINVAL;
	simple(&ln, "BEGIN:VCALENDAR", "");
	simple(&ln, "PRODID:-//carepost//carepost//EN", "");
	simple(&ln, "VERSION:2.0", "");
	simple(&ln, "CALSCALE:GREGORIAN", "");
	simple(&ln, "METHOD:", cancel ? "CANCEL" : "PUBLISH");
	if (e->tzid != NULL)
		vtimezone(&ln, e);
	simple(&ln, "BEGIN:VEVENT", "");
	text_prop(&ln, "UID:", e->uid);
	snprintf(seq, sizeof(seq), "%lld", e->sequence < 0 ? 0 :
		 e->sequence > 2147483647LL ? 2147483647LL : e->sequence);
	simple(&ln, "SEQUENCE:", seq);
	time_prop(&ln, "DTSTAMP:", e->stamp);
	zoned_prop(&ln, "DTSTART", e, e->start);
	zoned_prop(&ln, "DTEND", e, e->end);
	if (e->summary != NULL)
		text_prop(&ln, "SUMMARY:", e->summary);
	if (e->location != NULL)
		text_prop(&ln, "LOCATION:", e->location);
	address_prop(&ln, "ORGANIZER", e->organizer_name, e->organizer);
	if (cancel && e->attendee != NULL)
		address_prop(&ln, "ATTENDEE", NULL, e->attendee);
	simple(&ln, "STATUS:", cancel ? "CANCELLED" : "CONFIRMED");
	simple(&ln, "END:VEVENT", "");
	simple(&ln, "END:VCALENDAR", "");
	buf_free(&ln.l);
	if (ln.r == 0)
		ln.r = buf_append(out, whole.data, whole.len);
	buf_free(&whole);
	return ln.r;
}
