/*
 * NAME
 *	ical - an appointment as an RFC 5545 calendar object (iTIP, RFC 5546)
 * SYNOPSIS
 *	#include "ical.h"
 *
 *	struct ical_event e = { .method = ICAL_PUBLISH, .uid = uid, ... };
 *	r = ical_write(&buf, &e);
 * DESCRIPTION
 *	ical_write appends one VCALENDAR holding one VEVENT: PRODID, VERSION
 *	2.0, METHOD (PUBLISH for a scheduled or reminded appointment, CANCEL
 *	for a cancelled one, with STATUS:CANCELLED), and the event's UID,
 *	SEQUENCE, DTSTAMP (UTC), DTSTART and DTEND, SUMMARY, LOCATION
 *	(when given), ORGANIZER (the clinic's address, with its name) and,
 *	for CANCEL, the ATTENDEE it is cancelled for. With a tzid, the start
 *	and end are local times of that zone ("DTSTART;TZID=America/Chicago:
 *	20261203T100000"), and a VTIMEZONE of that name before the VEVENT
 *	gives its offset then (one STANDARD rule from 1970 on, whatever the
 *	season, as some calendars misread a DAYLIGHT alone:
 *	what the entry needs, not the zone's history); without one, they
 *	are UTC ("YYYYMMDDTHHMMSSZ"). TEXT values are
 *	escaped (backslash, ";", ",", line breaks as "\n"; other control
 *	characters dropped), parameter values quoted without the characters
 *	a quoted value cannot hold; every line ends in CRLF and is folded
 *	at 75 octets, never inside a UTF-8 character.
 *	SEQUENCE is kept within 0..2^31-1 (RFC 5545's integer).
 * ERRORS
 *	0, -EINVAL (no uid, no organizer, an end before the start, a
 *	time outside years 1970..9999, local times included), -ENOMEM.
 *	On an error nothing is appended to out.
 * OWNERSHIP
 *	Strings are borrowed for the call; out is the caller's.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_ICAL_H
#define CAREPOST_ICAL_H

#include <stdint.h>

#include "buf.h"

enum ical_method { ICAL_PUBLISH, ICAL_CANCEL };

#define ICAL_TIME_MAX	253402300799LL	/* 9999-12-31T23:59:59Z */

struct ical_event {
	enum ical_method method;
	const char *uid;		/* stable across the appointment's mail */
	long long sequence;		/* higher for each change; CANCEL too */
	int64_t stamp;			/* when this object was made */
	int64_t start, end;		/* epoch seconds */
	const char *summary;		/* may be NULL */
	const char *location;		/* may be NULL */
	const char *organizer;		/* an address */
	const char *organizer_name;	/* may be NULL */
	const char *attendee;		/* CANCEL: an address; may be NULL */
	/* The patient's zone (NULL: times in UTC): its name, and its
	 * offset east of UTC, abbreviation and summer time at the start. */
	const char *tzid;
	long tz_offset;
	const char *tz_abbr;
};

int ical_write(struct buf *out, const struct ical_event *e);

#endif
