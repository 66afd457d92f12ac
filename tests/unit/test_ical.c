/*
 * NAME
 *	test_ical - unit tests for lib/ical.c
 * DESCRIPTION
 *	The calendar object of an appointment: every line CRLF and at most
 *	75 octets, folded outside UTF-8 characters, TEXT escaped, times in
 *	UTC; PUBLISH and CANCEL (STATUS, ATTENDEE, SEQUENCE as given); what
 *	cannot be an entry refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "buf.h"
#include "ical.h"
#include "util.h"

static const struct ical_event base = {
	.method = ICAL_PUBLISH, .uid = "appt-0123@clinic.example", .sequence = 0,
	.stamp = 1795626000, .start = 1796313600, .end = 1796313600 + 1800,
	.summary = "Appointment with Dr. Rivera", .location = "Main St, 2nd floor",
	.organizer = "care@clinic.example", .organizer_name = "Lakeside Clinic",
	.attendee = "pat@patients.example",
};

/* unfolded - out's lines joined again (RFC 5545 3.1), as one string. */
static void
check_lines(const struct buf *b)
{
	size_t i = 0;

	assert_true(b->len > 2 && memcmp(b->data + b->len - 2, "\r\n", 2) == 0);
	while (i < b->len) {
		const char *crlf = memmem(b->data + i, b->len - i, "\r\n", 2);
		size_t n;

		assert_non_null(crlf);
		n = (size_t)(crlf - (b->data + i));
		assert_true(n <= 75);
		assert_null(memchr(b->data + i, '\n', n));
		/* a fold never cuts a UTF-8 character: the next line does not
		 * start (after its space) with a continuation byte */
		if (i + n + 3 < b->len && b->data[i + n + 2] == ' ')
			assert_true(((unsigned char)b->data[i + n + 3] & 0xC0) != 0x80);
		i += n + 2;
	}
}

static char *
unfold(const struct buf *b)
{
	struct buf u = BUF_INIT;
	char *s;
	size_t n;

	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\r' && i + 2 < b->len && b->data[i + 1] == '\n' &&
		    b->data[i + 2] == ' ') {
			i += 2;
			continue;
		}
		assert_int_equal(buf_putc(&u, b->data[i]), 0);
	}
	assert_int_equal(buf_putc(&u, '\0'), 0);
	s = buf_steal(&u, &n);
	return s;
}

static void
a_published_entry_has_every_line_it_needs(void **state)
{
	struct buf b = BUF_INIT;
	char *u;

	assert_int_equal(ical_write(&b, &base), 0);
	check_lines(&b);
	u = unfold(&b);
	assert_non_null(strstr(u, "BEGIN:VCALENDAR\r\nPRODID:-//carepost//carepost//EN\r\n"
			       "VERSION:2.0\r\n"));
	assert_non_null(strstr(u, "METHOD:PUBLISH\r\nBEGIN:VEVENT\r\n"
			       "UID:appt-0123@clinic.example\r\nSEQUENCE:0\r\n"));
	assert_non_null(strstr(u, "DTSTAMP:20261125T170000Z\r\n"));
	assert_non_null(strstr(u, "DTSTART:20261203T160000Z\r\nDTEND:20261203T163000Z\r\n"));
	assert_non_null(strstr(u, "SUMMARY:Appointment with Dr. Rivera\r\n"));
	assert_non_null(strstr(u, "LOCATION:Main St\\, 2nd floor\r\n"));
	assert_non_null(strstr(u, "ORGANIZER;CN=\"Lakeside Clinic\":mailto:care@clinic.example\r\n"));
	assert_null(strstr(u, "ATTENDEE"));
	assert_non_null(strstr(u, "STATUS:CONFIRMED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"));
	free(u);
	buf_free(&b);
}

static void
a_cancellation_says_so_to_its_attendee(void **state)
{
	struct ical_event e = base;
	struct buf b = BUF_INIT;
	char *u;

	e.method = ICAL_CANCEL;
	e.sequence = 2;
	assert_int_equal(ical_write(&b, &e), 0);
	u = unfold(&b);
	assert_non_null(strstr(u, "METHOD:CANCEL\r\n"));
	assert_non_null(strstr(u, "SEQUENCE:2\r\n"));
	assert_non_null(strstr(u, "ATTENDEE:mailto:pat@patients.example\r\n"));
	assert_non_null(strstr(u, "STATUS:CANCELLED\r\n"));
	free(u);
	buf_free(&b);
}

static void
text_is_escaped_and_long_lines_fold_between_characters(void **state)
{
	struct ical_event e = base;
	struct buf b = BUF_INIT, want = BUF_INIT;
	char *u;

	/* 60 two-byte characters, separators, a line break, controls */
	for (int i = 0; i < 60; i++)
		assert_int_equal(buf_puts(&want, "\xc3\xa9"), 0);
	assert_int_equal(buf_puts(&want, "; a, b\\c\nnext\r\x01\x7f" "end"), 0);
	assert_int_equal(buf_putc(&want, '\0'), 0);
	e.summary = want.data;
	e.organizer_name = "The \"Clinic\"\x01";
	assert_int_equal(ical_write(&b, &e), 0);
	check_lines(&b);
	u = unfold(&b);
	assert_non_null(strstr(u, "\\; a\\, b\\\\c\\nnextend\r\n"));
	assert_non_null(strstr(u, "ORGANIZER;CN=\"The Clinic\":mailto:"));
	free(u);
	buf_free(&b);
	buf_free(&want);
}

static void
times_are_the_patients_zone_with_its_vtimezone(void **state)
{
	struct ical_event e = base;
	struct buf b = BUF_INIT;
	char *u, *tz, *ev;

	e.tzid = "America/Chicago";
	e.tz_offset = -6 * 3600;
	e.tz_abbr = "CST";
	assert_int_equal(ical_write(&b, &e), 0);
	check_lines(&b);
	u = unfold(&b);
	assert_non_null(tz = strstr(u, "BEGIN:VTIMEZONE\r\nTZID:America/Chicago\r\n"
				    "BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
				    "TZOFFSETFROM:-0600\r\nTZOFFSETTO:-0600\r\nTZNAME:CST\r\n"
				    "END:STANDARD\r\nEND:VTIMEZONE\r\n"));
	assert_non_null(ev = strstr(u, "BEGIN:VEVENT"));
	assert_true(tz < ev);
	/* 16:00 UTC is 10:00 in Chicago */
	assert_non_null(strstr(u, "DTSTART;TZID=America/Chicago:20261203T100000\r\n"
			       "DTEND;TZID=America/Chicago:20261203T103000\r\n"));
	assert_non_null(strstr(u, "DTSTAMP:20261125T170000Z\r\n"));	/* UTC still */
	free(u);
	buf_reset(&b);
	e.tzid = "Asia/Kolkata";		/* +05:30, and a name to quote */
	e.tz_offset = 5 * 3600 + 1800;
	e.tz_abbr = "IST";
	assert_int_equal(ical_write(&b, &e), 0);
	u = unfold(&b);
	assert_non_null(strstr(u, "TZOFFSETTO:+0530\r\n"));
	assert_non_null(strstr(u, "DTSTART;TZID=Asia/Kolkata:20261203T213000\r\n"));
	free(u);
	buf_free(&b);
}

static void
what_cannot_be_an_entry_is_refused(void **state)
{
	struct ical_event e = base;
	struct buf b = BUF_INIT;

	e.end = e.start - 1;
	assert_int_equal(ical_write(&b, &e), -EINVAL);
	e = base;
	e.uid = "";
	assert_int_equal(ical_write(&b, &e), -EINVAL);
	e = base;
	e.organizer = NULL;
	assert_int_equal(ical_write(&b, &e), -EINVAL);
	e = base;
	e.start = 300000000000LL;	/* past the year 9999 */
	e.end = e.start;
	assert_int_equal(ical_write(&b, &e), -EINVAL);
	/* the end, in local time, past the year 9999: nothing written */
	e = base;
	e.start = 253402300799LL - 600;
	e.end = 253402300799LL;
	e.tzid = "Asia/Tokyo";
	e.tz_offset = 9 * 3600;
	assert_int_equal(buf_puts(&b, "kept"), 0);
	assert_int_equal(ical_write(&b, &e), -EINVAL);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "kept", 4);
	buf_free(&b);
}

static void
sequence_and_odd_bytes_stay_within_the_format(void **state)
{
	struct ical_event e = base;
	struct buf b = BUF_INIT, junk = BUF_INIT;
	char *u;

	e.sequence = 1LL << 40;
	e.tzid = "America/Chicago";
	e.tz_offset = -5 * 3600;
	/* 200 continuation bytes (no character starts): folded, not looped */
	for (int i = 0; i < 200; i++)
		assert_int_equal(buf_putc(&junk, '\x80'), 0);
	assert_int_equal(buf_putc(&junk, '\0'), 0);
	e.location = junk.data;
	assert_int_equal(ical_write(&b, &e), 0);
	for (size_t i = 0, n; i < b.len; i += n + 2) {	/* 75 octets a line */
		n = (size_t)((char *)memmem(b.data + i, b.len - i, "\r\n", 2) - (b.data + i));
		assert_true(n <= 75);
	}
	u = unfold(&b);
	assert_non_null(strstr(u, "SEQUENCE:2147483647\r\n"));
	assert_non_null(strstr(u, "BEGIN:STANDARD\r\n"));
	assert_null(strstr(u, "DAYLIGHT"));
	free(u);
	buf_free(&b);
	buf_free(&junk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_published_entry_has_every_line_it_needs),
		cmocka_unit_test(a_cancellation_says_so_to_its_attendee),
		cmocka_unit_test(text_is_escaped_and_long_lines_fold_between_characters),
		cmocka_unit_test(times_are_the_patients_zone_with_its_vtimezone),
		cmocka_unit_test(what_cannot_be_an_entry_is_refused),
		cmocka_unit_test(sequence_and_odd_bytes_stay_within_the_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
