/*
 * NAME
 *	test_followup - unit tests for lib/followup.c: what a filed reply
 *	queues (staff alerts, acknowledgements, form requests)
 * DESCRIPTION
 *	Each test gets a fresh LMDB store and a config with two departments
 *	(one with staff, one without) and a default department. followup_txn
 *	runs in a transaction of its own for each "filed reply"; what it
 *	queued is read back as delivery records, as outbound would take
 *	them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "config.h"
#include "followup.h"
#include "fsfix.h"
#include "queue.h"
#include "record.h"
#include "store.h"
#include "storefix.h"
#include "token.h"
#include "util.h"

#define NOW 1795626000LL	/* 2026-11-25 17:00 UTC */
#define DAY 86400LL

struct fixture {
	char dir[64];
	int n;
	char path[96];
	struct store *store;
	struct cp_config *cfg;
	struct thread_record thread;
	int seq;
};

static struct fixture fx;

static int
group_setup(void **state)
{
	strcpy(fx.dir, "/tmp/cpfu-XXXXXX");
	return mkdtemp(fx.dir) ? 0 : -1;
}

static int
group_teardown(void **state)
{
	tu_rm_rf(fx.dir);
	return 0;
}

static int
setup_window(const char *window)
{
	struct cp_error err;

	cp_error_clear(&err);
	fx.store = tu_store_fresh(fx.dir, &fx.n, fx.path, sizeof(fx.path), 16 << 20, &err);
	if (fx.store == NULL)
		return -1;
	fx.cfg = tu_config(TU_CONF_PORTAL "[store]\npath = %s\n[routing]\n"
			   "default_department = general\nalert_window = %s\n"
			   "staff.general = desk@clinic.test\n"
			   "staff.cardiology = nurse@clinic.test,  doc@clinic.test \n",
			   fx.path, window);
	memset(&fx.thread, 0, sizeof(fx.thread));
	fx.thread.event = "ev1";
	fx.thread.patient = "p1";
	fx.thread.type = "test_result";
	fx.thread.created = (time_t)NOW;
	fx.thread.expires = (time_t)(NOW + 30 * DAY);
	fx.thread.confidential = REC_UNSET;
	fx.seq = 0;
	return 0;
}

static int
setup(void **state)
{
	return setup_window("0");
}

static int
setup_windowed(void **state)
{
	return setup_window("600");
}

static int
teardown(void **state)
{
	store_close(fx.store);
	fx.store = NULL;
	config_free(fx.cfg);
	fx.cfg = NULL;
	return 0;
}

struct call {
	const struct followup *f;
	struct followup_result *out;
};

static int
call_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct call *c = ud;

	return followup_txn(s, txn, c->f, c->out, err);
}

/* filed - followup_txn for a reply filed at now; its inbox id into id. */
static struct followup_result
filed(int64_t now, const char *dept, int urgent, int form, int missing, int no_auto,
      char id[32])
{
	struct followup_result out;
	struct followup f = {
		.cfg = fx.cfg, .now = now, .inbox_id = id, .patient = "p1",
		.department = dept, .event = "ev1", .message_id = "reply@patients.test",
		.sender_ref = "proxy:0", .urgent = urgent, .form = form,
		.form_missing = missing, .no_autoresponse = no_auto, .thread = &fx.thread,
	};
	struct call c = { &f, &out };
	struct cp_error err;

	snprintf(id, 32, "m%lld-%08d", (long long)now, ++fx.seq);
	cp_error_clear(&err);
	memset(&out, 0xff, sizeof(out));	/* set afresh by the call */
	if (store_write(fx.store, call_txn, &c, &err) < 0)
		fail_msg("followup: %s", err.text);
	return out;
}

/* queued - delivery record PREFIX:ID into d (0), or -ENOENT. */
static int
queued(const char *prefix, const char *id, struct delivery *d)
{
	char key[64];

	snprintf(key, sizeof(key), "%s:%s", prefix, id);
	return queue_get(fx.store, key, d, NULL);
}

static int
sent_txn(struct store *s, MDB_txn *txn, void *ud, struct cp_error *err)
{
	struct delivery d;
	int r = queue_txn_get(s, txn, ud, &d, err);

	if (r < 0)
		return r;
	d.state = DELIVERY_SENT;
	r = queue_txn_put(s, txn, &d, err);
	delivery_clear(&d);
	return r;
}

/* mark_sent - what outbound does to PREFIX:ID once it went. */
static void
mark_sent(const char *prefix, const char *id)
{
	char key[64];
	struct cp_error err;

	snprintf(key, sizeof(key), "%s:%s", prefix, id);
	cp_error_clear(&err);
	if (store_write(fx.store, sent_txn, key, &err) < 0)
		fail_msg("sent: %s", err.text);
}

/*
 * One acknowledgement per conversation per UTC day, to the reply's sender
 * as a notice, in the conversation (its own thread, an In-Reply-To of the
 * reply); the next day another.
 */
static void
one_acknowledgement_per_conversation_per_day(void **state)
{
	char a[32], b[32], c[32];
	struct followup_result r;
	struct delivery d;
	uint8_t th[TOKEN_THREAD_BYTES];
	struct thread_record t;
	char key[64];

	r = filed(NOW, "general", 0, 0, 0, 0, a);
	assert_int_equal(r.acked, 1);
	assert_int_equal(r.form_incomplete, 0);
	assert_int_equal(queued("ack", a, &d), 0);
	assert_string_equal(d.type, "reply_ack");
	assert_int_equal(d.state, DELIVERY_QUEUED);
	assert_int_equal(d.nrcpts, 1);
	assert_string_equal(d.rcpts[0].ref, "proxy:0");
	assert_int_equal(d.rcpts[0].mode, RCPT_NOTICE);
	assert_int_equal((long long)d.due, NOW);
	delivery_clear(&d);
	snprintf(key, sizeof(key), "ack:%s", a);
	token_thread_from_id(key, th);
	assert_int_equal(thread_get(fx.store, th, &t, NULL), 0);
	assert_string_equal(t.event, "ev1");
	assert_string_equal(t.delivery, key);
	thread_clear(&t);

	r = filed(NOW + 3600, "general", 0, 0, 0, 0, b);
	assert_int_equal(r.acked, 0);
	assert_int_equal(queued("ack", b, &d), -ENOENT);

	r = filed(NOW + DAY, "general", 0, 0, 0, 0, c);
	assert_int_equal(r.acked, 1);
	assert_int_equal(queued("ack", c, &d), 0);
	delivery_clear(&d);
}

/* RFC 3834: mail that asks for no answer gets none; staff still hear. */
static void
no_autoresponse_means_no_answer_but_an_alert(void **state)
{
	struct followup_result r;
	struct delivery d;
	char a[32];

	r = filed(NOW, "general", 0, 1, 1, 1, a);
	assert_int_equal(r.acked, 0);
	assert_int_equal(r.form_incomplete, 0);
	assert_int_equal(r.alerted, 1);
	assert_int_equal(queued("ack", a, &d), -ENOENT);
	assert_int_equal(queued("formreq", a, &d), -ENOENT);
	assert_int_equal(queued("alert", a, &d), 0);
	delivery_clear(&d);
}

/*
 * A form reply that misses answers draws a request, once a day: it is
 * the day's acknowledgement too; a complete one is acknowledged.
 */
static void
an_incomplete_form_is_asked_for_once_a_day(void **state)
{
	struct followup_result r;
	struct delivery d;
	char a[32], b[32], c[32], e[32];

	r = filed(NOW, "general", 0, 1, 1, 0, a);
	assert_int_equal(r.form_incomplete, 1);
	assert_int_equal(r.acked, 0);
	assert_int_equal(queued("formreq", a, &d), 0);
	assert_string_equal(d.type, "form_incomplete");
	delivery_clear(&d);

	r = filed(NOW + 60, "general", 0, 1, 1, 0, b);	/* still missing */
	assert_int_equal(r.form_incomplete, 0);
	assert_int_equal(r.acked, 0);
	r = filed(NOW + 120, "general", 0, 1, 0, 0, c);	/* complete now */
	assert_int_equal(r.acked, 0);			/* the day's was the request */
	r = filed(NOW + DAY, "general", 0, 1, 0, 0, e);
	assert_int_equal(r.acked, 1);
}

/*
 * The staff alert goes to the department's staff (each address trimmed),
 * else to the default department's; a staff alert answers no one.
 */
static void
the_alert_goes_to_the_departments_staff_or_the_default(void **state)
{
	struct followup_result r;
	struct delivery d;
	char a[32], b[32];

	r = filed(NOW, "cardiology", 1, 0, 0, 0, a);
	assert_int_equal(r.alerted, 1);
	assert_int_equal(r.alert_held, 0);
	assert_int_equal(queued("alert", a, &d), 0);
	assert_string_equal(d.type, "staff_alert");
	assert_int_equal(d.nrcpts, 2);
	assert_string_equal(d.rcpts[0].address, "nurse@clinic.test");
	assert_string_equal(d.rcpts[1].address, "doc@clinic.test");
	assert_string_equal(d.rcpts[0].ref, "staff:0");
	delivery_clear(&d);

	r = filed(NOW, "radiology", 0, 0, 0, 0, b);	/* no staff of its own */
	assert_int_equal(r.alerted, 1);
	assert_int_equal(queued("alert", b, &d), 0);
	assert_int_equal(d.nrcpts, 1);
	assert_string_equal(d.rcpts[0].address, "desk@clinic.test");
	delivery_clear(&d);
}

/*
 * With a window: the first alert now; the next within the window held to
 * its end; later ones, while that one is queued, folded into it; an
 * urgent reply never waits behind normal ones; once the held one went and
 * its window ended, an alert now again.
 */
static void
alerts_are_coalesced_per_desk_and_class_in_a_window(void **state)
{
	struct followup_result r;
	struct delivery d;
	char a[32], b[32], c[32], u[32], e[32];

	r = filed(NOW, "general", 0, 0, 0, 0, a);
	assert_true(r.alerted && !r.alert_held);
	assert_int_equal(queued("alert", a, &d), 0);
	assert_int_equal((long long)d.due, NOW);
	delivery_clear(&d);

	r = filed(NOW + 60, "general", 0, 0, 0, 0, b);
	assert_true(r.alerted && r.alert_held);
	assert_int_equal(queued("alert", b, &d), 0);
	assert_int_equal((long long)d.due, NOW + 600);
	assert_int_equal(d.held, 1);
	delivery_clear(&d);

	r = filed(NOW + 120, "general", 0, 0, 0, 0, c);
	assert_true(r.alerted && r.alert_held);
	assert_int_equal(queued("alert", c, &d), -ENOENT);	/* folded */
	assert_int_equal(queued("alert", b, &d), 0);
	assert_int_equal(d.count, 2);
	delivery_clear(&d);

	r = filed(NOW + 130, "general", 1, 0, 0, 0, u);	/* urgent */
	assert_true(r.alerted && !r.alert_held);
	assert_int_equal(queued("alert", u, &d), 0);
	assert_int_equal((long long)d.due, NOW + 130);
	delivery_clear(&d);

	/* the held one, while outbound has not taken it, takes any later reply */
	r = filed(NOW + 1300, "general", 0, 0, 0, 0, e);
	assert_true(r.alerted && r.alert_held);
	assert_int_equal(queued("alert", b, &d), 0);
	assert_int_equal(d.count, 3);
	delivery_clear(&d);

	/* once it was sent, past its window's end: an alert now again */
	mark_sent("alert", b);
	r = filed(NOW + 1300, "general", 0, 0, 0, 0, e);
	assert_true(r.alerted && !r.alert_held);
	assert_int_equal(queued("alert", e, &d), 0);
	assert_int_equal((long long)d.due, NOW + 1300);
	delivery_clear(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(one_acknowledgement_per_conversation_per_day, setup, teardown),
		cmocka_unit_test_setup_teardown(no_autoresponse_means_no_answer_but_an_alert, setup, teardown),
		cmocka_unit_test_setup_teardown(an_incomplete_form_is_asked_for_once_a_day, setup, teardown),
		cmocka_unit_test_setup_teardown(the_alert_goes_to_the_departments_staff_or_the_default, setup, teardown),
		cmocka_unit_test_setup_teardown(alerts_are_coalesced_per_desk_and_class_in_a_window, setup_windowed, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
