/*
 * NAME
 *	test_metrics - unit tests for the Prometheus metrics file (lib/metrics.c)
 * DESCRIPTION
 *	Every family has HELP and TYPE lines, samples carry the values given,
 *	every line is either a comment or a carepost_ sample, the file is
 *	replaced atomically (no temporary left behind, old content gone) and
 *	an unwritable path is an error naming the path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"

static void
fill(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
	m->queue_depth = 7;
	m->unclaimed = 3;
	m->oldest_pending_age = 120;
	m->bounced_invalid = 2;
	m->bounced_soft = 5;
	m->keys_expiring = 1;
	m->last_run = 1700000000;
	m->sent_notices = 11;
	m->sent_encrypted = 13;
	m->deferred = 17;
	m->failed = 19;
	m->ingested[METRICS_FORM] = 23;
	m->quarantined = 29;
	m->bounces = 31;
	m->bounces_forged = 37;
	m->parser_lost = 41;
	m->duplicates = 43;
	m->unsubscribed = 47;
	m->unsub_forged = 53;
	m->unsub_expired = 59;
	m->auth_refused = 61;
	m->ingested[METRICS_COMPLAINT] = 67;
	m->feedback[METRICS_FB_OPTED_OUT] = 71;
	m->feedback[METRICS_FB_FORGED] = 73;
}

static void
format_has_every_value(void **state)
{
	struct metrics m;
	struct buf b = BUF_INIT;
	char *line, *save = NULL;
	unsigned helps = 0, types = 0;

	fill(&m);
	assert_int_equal(metrics_format(&m, &b), 0);
	assert_int_equal(buf_putc(&b, '\0'), 0);
	assert_non_null(strstr(b.data, "\ncarepost_queue_depth 7\n"));
	assert_non_null(strstr(b.data, "\ncarepost_unclaimed_events 3\n"));
	assert_non_null(strstr(b.data, "\ncarepost_oldest_pending_age_seconds 120\n"));
	assert_non_null(strstr(b.data, "carepost_bounced_addresses{state=\"invalid\"} 2\n"));
	assert_non_null(strstr(b.data, "carepost_bounced_addresses{state=\"soft\"} 5\n"));
	assert_non_null(strstr(b.data, "carepost_keys_expiring_30d 1\n"));
	assert_non_null(strstr(b.data, "carepost_messages_total{result=\"sent\",kind=\"notice\"} 11\n"));
	assert_non_null(strstr(b.data, "carepost_messages_total{result=\"sent\",kind=\"encrypted\"} 13\n"));
	assert_non_null(strstr(b.data, "carepost_messages_total{result=\"deferred\",kind=\"any\"} 17\n"));
	assert_non_null(strstr(b.data, "carepost_messages_total{result=\"failed\",kind=\"any\"} 19\n"));
	assert_non_null(strstr(b.data, "carepost_ingested_total{class=\"form\"} 23\n"));
	assert_non_null(strstr(b.data, "carepost_ingested_total{class=\"reply\"} 0\n"));
	assert_non_null(strstr(b.data, "carepost_quarantined_total 29\n"));
	assert_non_null(strstr(b.data, "\ncarepost_bounces_total 31\n"));
	assert_non_null(strstr(b.data, "\ncarepost_bounces_forged_total 37\n"));
	assert_non_null(strstr(b.data, "\ncarepost_parser_lost_total 41\n"));
	assert_non_null(strstr(b.data, "\ncarepost_duplicates_total 43\n"));
	assert_non_null(strstr(b.data, "\ncarepost_unsubscribes_total{outcome=\"applied\"} 47\n"));
	assert_non_null(strstr(b.data, "\ncarepost_unsubscribes_total{outcome=\"forged\"} 53\n"));
	assert_non_null(strstr(b.data, "\ncarepost_unsubscribes_total{outcome=\"expired\"} 59\n"));
	assert_non_null(strstr(b.data, "\ncarepost_relay_auth_refusals_total 61\n"));
	assert_non_null(strstr(b.data, "carepost_last_run_timestamp_seconds 1700000000\n"));
	assert_non_null(strstr(b.data, "carepost_ingested_total{class=\"complaint\"} 67\n"));
	assert_non_null(strstr(b.data, "\ncarepost_complaints_total{outcome=\"opted_out\"} 71\n"));
	assert_non_null(strstr(b.data, "\ncarepost_complaints_total{outcome=\"forged\"} 73\n"));
	assert_non_null(strstr(b.data, "\ncarepost_complaints_total{outcome=\"shown_to_staff\"} 0\n"));
	assert_null(strstr(b.data, "outcome=\"none\""));
	for (line = strtok_r(b.data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP carepost_", 16) == 0)
			helps++;
		else if (strncmp(line, "# TYPE carepost_", 16) == 0)
			types++;
		else
			assert_int_equal(strncmp(line, "carepost_", 9), 0);
	}
	assert_int_equal(helps, types);
	assert_int_equal(helps, 17);
	buf_free(&b);
}

static void
unknown_key_count_is_left_out(void **state)
{
	struct metrics m;
	struct buf b = BUF_INIT;

	fill(&m);
	m.keys_expiring = -1;
	assert_int_equal(metrics_format(&m, &b), 0);
	assert_int_equal(buf_putc(&b, '\0'), 0);
	assert_null(strstr(b.data, "keys_expiring"));
	buf_free(&b);
}

static void
write_replaces_atomically(void **state)
{
	char dir[] = "/tmp/cpmetricsXXXXXX", path[64], tmp[80], text[8192];
	struct metrics m;
	struct cp_error err;
	struct stat st;
	mode_t old_mask;
	FILE *f;
	size_t n;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/metrics", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("old content\n", f);
	fclose(f);

	fill(&m);
	cp_error_clear(&err);
	old_mask = umask(0077);		/* the unit's: group-readable all the same */
	assert_int_equal(metrics_write(path, &m, &err), 0);
	umask(old_mask);
	assert_int_equal(stat(tmp, &st), -1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_null(strstr(text, "old content"));
	assert_non_null(strstr(text, "carepost_queue_depth 7\n"));
	unlink(path);
	rmdir(dir);
}

static void
unwritable_path_names_the_path(void **state)
{
	struct metrics m;
	struct cp_error err;

	fill(&m);
	cp_error_clear(&err);
	assert_true(metrics_write("/nonexistent-dir/metrics", &m, &err) < 0);
	assert_non_null(strstr(err.text, "/nonexistent-dir/metrics"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(format_has_every_value),
		cmocka_unit_test(unknown_key_count_is_left_out),
		cmocka_unit_test(write_replaces_atomically),
		cmocka_unit_test(unwritable_path_names_the_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
