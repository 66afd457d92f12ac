/*
 * NAME
 *	test_log - unit tests for the PHI-free log lines (lib/log.c)
 * DESCRIPTION
 *	Lines to stderr are captured through a temporary file put in place
 *	of descriptor 2. They have the documented shape
 *	"ident[pid]: level: [event=… patient=…] text", every syslog
 *	priority has its level word, lines above max_priority are dropped,
 *	the patient id never appears (only its reference, an HMAC under the
 *	first 32 bytes of the ref key, computed here with libgcrypt), the
 *	text is cut at 1023 bytes and the line at 1399, and no control
 *	character of the text or the event id reaches the line: a newline in
 *	a reason cannot forge a second log line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <gcrypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* --- capture --------------------------------------------------------- */

struct capture {
	char path[64];
	int saved;
};

static struct capture cap = { .saved = -1 };

static void
capture_start(void)
{
	int fd;

	snprintf(cap.path, sizeof(cap.path), "/tmp/test_log.XXXXXX");
	fd = mkstemp(cap.path);
	assert_true(fd >= 0);
	fflush(stderr);
	cap.saved = dup(STDERR_FILENO);
	assert_true(cap.saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

/* capture_end - what was written to stderr since capture_start; free it. */
static char *
capture_end(void)
{
	char *data = NULL;
	size_t len;

	fflush(stderr);
	assert_true(dup2(cap.saved, STDERR_FILENO) >= 0);
	close(cap.saved);
	cap.saved = -1;
	assert_int_equal(cp_read_file(cap.path, 1 << 20, &data, &len), 0);
	unlink(cap.path);
	assert_int_equal(strlen(data), len);	/* no NUL byte was written */
	return data;
}

static int
count_char(const char *s, char c)
{
	int n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

/* The reference log.h documents: HMAC-SHA256(key, id), 6 bytes in hex. */
static void
expected_ref(const void *key, size_t keylen, const char *id, char out[13])
{
	unsigned char mac[32];
	size_t maclen = sizeof(mac);
	gcry_mac_hd_t h;

	assert_int_equal(gcry_mac_open(&h, GCRY_MAC_HMAC_SHA256, 0, NULL), 0);
	assert_int_equal(gcry_mac_setkey(h, key, keylen), 0);
	assert_int_equal(gcry_mac_write(h, id, strlen(id)), 0);
	assert_int_equal(gcry_mac_read(h, mac, &maclen), 0);
	gcry_mac_close(h);
	cp_hex(mac, 6, out);
}

static int
setup(void **state)
{
	static const unsigned char zero = 0;

	log_setup("test_log", LOG_TARGET_STDERR, LOG_DEBUG);
	log_set_ref_key(&zero, 0);
	return 0;
}

/* teardown - puts stderr back when an assertion jumped out of a capture. */
static int
teardown(void **state)
{
	if (cap.saved >= 0) {
		dup2(cap.saved, STDERR_FILENO);
		close(cap.saved);
		cap.saved = -1;
		unlink(cap.path);
	}
	unsetenv("JOURNAL_STREAM");
	return 0;
}

/* --- tests ----------------------------------------------------------- */

static void
line_has_ident_pid_level_event_patient_and_text(void **state)
{
	static const char key[] = "0123456789abcdef0123456789abcdef";
	char want[256], ref[13];
	char *out;

	log_set_ref_key(key, sizeof(key) - 1);
	expected_ref(key, sizeof(key) - 1, "p-1001", ref);
	capture_start();
	assert_int_equal(log_event(LOG_WARNING, LOGID_DEFERRED, "appt-7", "p-1001",
				   "deferred: %s (%d)", "421 busy", 3), 0);
	out = capture_end();
	snprintf(want, sizeof(want),
		 "test_log[%ld]: warning: event=appt-7 patient=%s deferred: 421 busy (3)\n",
		 (long)getpid(), ref);
	assert_string_equal(out, want);
	assert_null(strstr(out, "p-1001"));
	free(out);
}

static void
line_without_ids_has_no_event_or_patient_field(void **state)
{
	char want[128];
	char *out;

	capture_start();
	log_info("started, %d workers", 2);
	out = capture_end();
	snprintf(want, sizeof(want), "test_log[%ld]: info: started, 2 workers\n",
		 (long)getpid());
	assert_string_equal(out, want);
	free(out);
}

static void
every_priority_has_its_level_word(void **state)
{
	static const struct { int prio; const char *word; } levels[] = {
		{ LOG_EMERG, "fatal" }, { LOG_ALERT, "fatal" },
		{ LOG_CRIT, "fatal" }, { LOG_ERR, "error" },
		{ LOG_WARNING, "warning" }, { LOG_NOTICE, "notice" },
		{ LOG_INFO, "info" }, { LOG_DEBUG, "debug" },
	};
	size_t i;

	for (i = 0; i < CP_ARRAY_SIZE(levels); i++) {
		char want[64], *out, *colon;

		capture_start();
		log_event(levels[i].prio, LOGID_GENERIC, NULL, NULL, "x");
		out = capture_end();
		colon = strstr(out, "]: ");
		assert_non_null(colon);
		snprintf(want, sizeof(want), "]: %s: x\n", levels[i].word);
		assert_string_equal(colon, want);
		free(out);
	}
}

static void
lines_above_max_priority_are_dropped(void **state)
{
	char *out;

	log_setup("test_log", LOG_TARGET_STDERR, LOG_NOTICE);
	capture_start();
	log_debug("dropped-debug");
	log_info("dropped-info");
	log_event(LOG_NOTICE, LOGID_GENERIC, NULL, NULL, "kept-notice");
	log_error("kept-error");
	out = capture_end();
	assert_null(strstr(out, "dropped"));
	assert_non_null(strstr(out, ": notice: kept-notice\n"));
	assert_non_null(strstr(out, ": error: kept-error\n"));
	assert_int_equal(count_char(out, '\n'), 2);
	free(out);

	log_setup("test_log", LOG_TARGET_STDERR, LOG_ERR);
	capture_start();
	log_warning("dropped-warning");
	log_error("kept");
	out = capture_end();
	assert_null(strstr(out, "dropped"));
	assert_int_equal(count_char(out, '\n'), 1);
	free(out);
}

static void
auto_target_without_journal_stream_is_stderr(void **state)
{
	char *out;

	unsetenv("JOURNAL_STREAM");
	log_setup("test_log", LOG_TARGET_AUTO, LOG_INFO);
	capture_start();
	log_info("to-stderr");
	out = capture_end();
	assert_non_null(strstr(out, ": info: to-stderr\n"));
	free(out);
}

static void
journal_target_writes_nothing_to_stderr(void **state)
{
	char *out;

	/* Under systemd the journal takes the line: nothing on stderr. */
	setenv("JOURNAL_STREAM", "8:12345", 1);
	log_setup("test_log", LOG_TARGET_AUTO, LOG_INFO);
	capture_start();
	log_info("to-journal");
	out = capture_end();
	unsetenv("JOURNAL_STREAM");
	assert_string_equal(out, "");
	free(out);
}

static void
patient_ref_is_an_hmac_under_the_first_32_key_bytes(void **state)
{
	unsigned char key[64];
	char got[13], want[13], other[13];
	size_t i;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 7 + 1);
	log_set_ref_key(key, sizeof(key));
	log_patient_ref("p-1001", got);
	expected_ref(key, 32, "p-1001", want);
	assert_int_equal(strlen(got), 12);
	assert_string_equal(got, want);

	/* Bytes past the 32nd do not change the reference. */
	key[40] ^= 0xff;
	log_set_ref_key(key, sizeof(key));
	log_patient_ref("p-1001", other);
	assert_string_equal(other, want);

	/* Another key, another reference: it depends on the key. */
	key[0] ^= 0xff;
	log_set_ref_key(key, sizeof(key));
	log_patient_ref("p-1001", other);
	assert_string_not_equal(other, want);

	/* Another patient, another reference. */
	log_patient_ref("p-1002", other);
	expected_ref(key, 32, "p-1002", want);
	assert_string_equal(other, want);
}

static void
patient_ref_without_a_key_uses_one_zero_byte(void **state)
{
	static const unsigned char zero = 0;
	char got[13], want[13];

	log_set_ref_key(&zero, 0);
	log_patient_ref("p-1001", got);
	expected_ref(&zero, 1, "p-1001", want);
	assert_string_equal(got, want);
}

static void
text_is_cut_at_1023_bytes(void **state)
{
	char big[2000], *out, *text;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	capture_start();
	log_info("%s", big);
	out = capture_end();
	text = strstr(out, ": info: ");
	assert_non_null(text);
	text += strlen(": info: ");
	assert_int_equal(strspn(text, "x"), 1023);
	assert_string_equal(text + 1023, "\n");
	free(out);
}

static void
long_line_is_cut_at_1399_bytes_and_still_ends_the_line(void **state)
{
	static char ident[600];
	char big[2000], *out;

	memset(ident, 'i', sizeof(ident) - 1);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_setup(ident, LOG_TARGET_STDERR, LOG_INFO);
	capture_start();
	log_info("%s", big);
	log_info("second");
	out = capture_end();
	log_setup("test_log", LOG_TARGET_STDERR, LOG_DEBUG);
	/* The cut line ends in a newline: the next line starts a line. */
	assert_int_equal(strchr(out, '\n') - out + 1, 1399);
	assert_int_equal(count_char(out, '\n'), 2);
	assert_non_null(strstr(out + 1399, ": info: second\n"));
	free(out);
}

static void
control_characters_never_reach_the_line(void **state)
{
	char *out, *p;
	char want[64];

	/* A reason from outside (a relay's reply, a parse error) carrying a
	 * newline must not forge a line of its own, nor an escape sequence
	 * reach a terminal. */
	capture_start();
	log_event(LOG_WARNING, LOGID_DEFERRED, "ev\n1", NULL,
		  "deferred: %s", "421 busy\ntest_log[1]: info: forged\r\x1b[2J\t\x7f.");
	out = capture_end();
	assert_int_equal(count_char(out, '\n'), 1);
	assert_true(out[strlen(out) - 1] == '\n');
	for (p = out; p[1] != '\0'; p++)
		assert_false((unsigned char)*p < 0x20 || *p == 0x7f);
	/* What was around the control characters is still there. */
	assert_non_null(strstr(out, "deferred: 421 busy"));
	assert_non_null(strstr(out, "info: forged"));
	snprintf(want, sizeof(want), "test_log[%ld]: warning: event=ev", (long)getpid());
	assert_true(strncmp(out, want, strlen(want)) == 0);
	free(out);
}

static void
utf8_text_passes_unchanged(void **state)
{
	char *out;

	capture_start();
	log_info("r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93");
	out = capture_end();
	assert_non_null(strstr(out, ": info: r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93\n"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(line_has_ident_pid_level_event_patient_and_text, setup, teardown),
		cmocka_unit_test_setup_teardown(line_without_ids_has_no_event_or_patient_field, setup, teardown),
		cmocka_unit_test_setup_teardown(every_priority_has_its_level_word, setup, teardown),
		cmocka_unit_test_setup_teardown(lines_above_max_priority_are_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(auto_target_without_journal_stream_is_stderr, setup, teardown),
		cmocka_unit_test_setup_teardown(journal_target_writes_nothing_to_stderr, setup, teardown),
		cmocka_unit_test_setup_teardown(patient_ref_is_an_hmac_under_the_first_32_key_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(patient_ref_without_a_key_uses_one_zero_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(text_is_cut_at_1023_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(long_line_is_cut_at_1399_bytes_and_still_ends_the_line, setup, teardown),
		cmocka_unit_test_setup_teardown(control_characters_never_reach_the_line, setup, teardown),
		cmocka_unit_test_setup_teardown(utf8_text_passes_unchanged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
