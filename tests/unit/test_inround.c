/*
 * NAME
 *	test_inround - the inbound round against a real Dovecot on loopback
 * DESCRIPTION
 *	Each test starts its own Dovecot as test_imapc does (dovecot -F -c
 *	FILE on free loopback ports, passwd-file user "carepost", static
 *	userdb with uid/gid vmail, maildir under a short temp dir) and
 *	opens a fresh store, a struct inbound and a struct inround on it, as
 *	carepostd does. Messages are delivered with APPEND over a libetpan
 *	session of the test's own; folders are counted through imapc.
 *	Auto-replies go to the processed folder and mail without a reply
 *	token to the quarantine folder, with no gpg involved; one reply with
 *	a real token (a thread written into the store) is filed, which takes
 *	the clinic key of the throwaway GnuPG home the group setup makes.
 *	Capability-dependent paths (polling without IDLE) use Dovecot's
 *	imap_capability to hide IDLE.
 *
 *	The whole file exits 77 (skipped) when Dovecot is not installed or
 *	when not run as root (Dovecot must switch to vmail).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <libetpan/libetpan.h>

#include "config.h"
#include "dovefix.h"
#include "gpgfix.h"
#include "imapc.h"
#include "inbound.h"
#include "inbox.h"
#include "inround.h"
#include "log.h"
#include "parsehelper.h"
#include "pgp.h"
#include "store.h"
#include "storefix.h"
#include "token.h"

#define USER TU_DOVE_USER
#define PASSWORD TU_DOVE_PASSWORD
#define DAY 86400

static const char token_key[] = "0123456789abcdef0123456789abcdef";

/* --- Dovecot -------------------------------------------------------- */

/* dove_start - a Dovecot of its own; caps: imap_capability (NULL: its own). */
static void
dove_start(struct dove *d, const char *caps)
{
	const struct dove_opts o = { .caps = caps };

	tu_dove_start(d, &o);
}

/* Deliver exact bytes into INBOX with APPEND. */
static void
deliver(const struct dove *d, const char *msg)
{
	tu_dove_append(d, "INBOX", msg);
}

/* Messages now in folder ("INBOX", "carepost/processed", ...). */
static size_t
count_in(const struct dove *d, const char *folder)
{
	return tu_dove_count(d, folder);
}

static uint32_t
server_uidvalidity(const struct dove *d)
{
	struct imapc *c = tu_dove_session(d, "INBOX");
	uint32_t v = imapc_uidvalidity(c);

	imapc_close(c);
	return v;
}

/* --- messages ------------------------------------------------------- */

static int serial;	/* Message-IDs differ across a test */

static char *
autoreply(void)
{
	char *s;

	assert_true(asprintf(&s, "From: away@example.org\r\nTo: care@clinic.test\r\n"
			     "Subject: Out of office\r\nMessage-ID: <ar%d@example.org>\r\n"
			     "Date: Wed, 25 Nov 2026 17:00:00 +0000\r\n"
			     "Auto-Submitted: auto-replied\r\n\r\nAway.\r\n", ++serial) > 0);
	return s;
}

static char *
no_token(void)
{
	char *s;

	assert_true(asprintf(&s, "From: stranger@example.org\r\nTo: care@clinic.test\r\n"
			     "Subject: hello\r\nMessage-ID: <nt%d@example.org>\r\n"
			     "Date: Wed, 25 Nov 2026 17:00:00 +0000\r\n\r\nHi.\r\n",
			     ++serial) > 0);
	return s;
}

static void
deliver_new(const struct dove *d, char *(*make)(void), int n)
{
	while (n-- > 0) {
		char *m = make();

		deliver(d, m);
		free(m);
	}
}

/* --- the fixture ---------------------------------------------------- */

static struct {
	char gdir[64];
	char home[80];
	char clinic[PGP_FPR_SIZE];
	/* per test */
	struct dove dove;
	char dir[64];
	struct cp_config *cfg;
	struct store *store;
	struct inbound *ib;
	struct inround *in;
	volatile int stop;
	int progress;		/* calls of on_progress */
	int stop_after;		/* on_progress sets stop at this call; 0: never */
} fx;

static int
group_setup(void **state)
{
	if (tu_gpg_dir("cpk", fx.gdir, sizeof(fx.gdir), fx.home, sizeof(fx.home),
		       "Clinic <clinic@clinic.test>", fx.clinic) < 0)
		return -1;
	pgp_global_init();
	log_setup("test_inround", LOG_TARGET_STDERR, LOG_EMERG);
	return 0;
}

static int
group_teardown(void **state)
{
	tu_gpg_dir_remove("cpk", fx.gdir, fx.home);
	return 0;
}

/* open_inround - config for port, a store (the first time), inbound, inround. */
static void
open_inround(int port, int batch_size)
{
	struct cp_error err;
	char path[128];

	if (fx.dir[0] == '\0') {
		strcpy(fx.dir, "/tmp/cpinround-s-XXXXXX");
		assert_non_null(mkdtemp(fx.dir));
		snprintf(path, sizeof(path), "%s/imap.pw", fx.dir);
		tu_write_file(path, "%s", PASSWORD "\n");
	}
	fx.cfg = tu_config("[store]\npath = %s/store\n"
			   "[gpg]\nhome = %s\nclinic_key = %s\n"
			   TU_CONF_PORTAL
			   "[routing]\ndefault_department = general\n"
			   "staff.general = desk@clinic.test\n"
			   "[imap]\nhost = 127.0.0.1\nport = %d\ntls = off\nuser = " USER "\n"
			   "password_file = %s/imap.pw\nbatch_size = %d\n",
			   fx.dir, fx.home, fx.clinic, port, fx.dir, batch_size);
	if (fx.store == NULL) {
		snprintf(path, sizeof(path), "%s/store", fx.dir);
		assert_int_equal(store_open(path, 64 << 20, &fx.store, &err), 0);
	}
	assert_int_equal(inbound_new(fx.cfg, fx.store, token_key, sizeof(token_key) - 1,
				     &fx.ib, &err), 0);
	assert_int_equal(inround_new(fx.cfg, fx.store, fx.ib, &fx.in, &err), 0);
}

/* close_inround - what a reload or restart ends; the store stays. */
static void
close_inround(void)
{
	inround_free(fx.in);
	fx.in = NULL;
	inbound_free(fx.ib);
	fx.ib = NULL;
	config_free(fx.cfg);
	fx.cfg = NULL;
}

static int
teardown(void **state)
{
	close_inround();
	store_close(fx.store);
	fx.store = NULL;
	tu_dove_stop(&fx.dove);
	tu_rm_rf(fx.dir);
	fx.dir[0] = '\0';
	fx.stop = 0;
	fx.progress = fx.stop_after = 0;
	return 0;
}

static void
on_progress(void *userdata)
{
	assert_ptr_equal(userdata, &fx);
	fx.progress++;
	if (fx.progress == fx.stop_after)
		fx.stop = 1;
}

static int
step(struct inround_stats *st, struct cp_error *err)
{
	cp_error_clear(err);
	return inbound_step(fx.in, &fx.stop, on_progress, &fx, st, err);
}

/* step_ok - a step that must not fail; its return (0 or 1). */
static int
step_ok(struct inround_stats *st)
{
	struct cp_error err;
	int r = step(st, &err);

	if (r < 0)
		fail_msg("inbound_step: %d %s", r, err.text);
	return r;
}

/* The mailbox's "imap" record: 0, or -ENOENT when there is none. */
static int
mark(uint32_t *uidvalidity, uint32_t *last_uid)
{
	json_t *v = NULL;
	int r = store_get_json(fx.store, DB_IMAP, "INBOX", &v, NULL);

	if (r < 0)
		return r;
	*uidvalidity = (uint32_t)json_integer_value(json_object_get(v, "uidvalidity"));
	*last_uid = (uint32_t)json_integer_value(json_object_get(v, "last_uid"));
	json_decref(v);
	return 0;
}

/* A patient, a thread of one of their events, a reply on it. */
static char *
reply(void)
{
	uint8_t id[TOKEN_THREAD_BYTES];
	json_t *rec;
	struct cp_error err;
	int64_t now = cp_now(), expires = now + 30 * DAY;
	char tok[TOKEN_SIZE], *s;
	json_t *p;

	p = json_pack("{s:s, s:s}", "id", "p1", "email", "pat@patients.test");
	assert_int_equal(store_put_json(fx.store, DB_PATIENTS, "p1", p, &err), 0);
	json_decref(p);
	token_thread_from_id("ev1", id);
	rec = json_pack("{s:s, s:s, s:s, s:I, s:I}", "event", "ev1", "patient", "p1",
			  "type", "provider_message", "created", (json_int_t)(now - 60),
			  "expires", (json_int_t)expires);
	tu_thread_put(fx.store, id, rec);
	json_decref(rec);
	assert_int_equal(token_make(token_key, sizeof(token_key) - 1, id, expires, tok), 0);
	assert_true(asprintf(&s, "From: pat@patients.test\r\n"
			     "To: reply+%s@reply.clinic.test\r\nSubject: Re: hello\r\n"
			     "Message-ID: <re%d@patients.test>\r\n"
			     "Date: Wed, 25 Nov 2026 17:00:00 +0000\r\n"
			     "Content-Type: text/plain; charset=utf-8\r\n\r\n"
			     "Thank you.\r\n", tok, ++serial) > 0);
	return s;
}

/* --- tests ---------------------------------------------------------- */

static void
a_round_decides_each_message_commits_it_and_moves_it_to_its_folder(void **state)
{
	struct inround_stats st = { 0 };
	uint32_t v = 0, last = 0;
	char *m;

	dove_start(&fx.dove, NULL);
	open_inround(fx.dove.port, 50);
	deliver_new(&fx.dove, autoreply, 2);
	deliver_new(&fx.dove, no_token, 2);
	m = reply();
	deliver(&fx.dove, m);
	free(m);

	assert_int_equal(step_ok(&st), 0);		/* drained */
	assert_int_equal(st.decided, 5);
	assert_int_equal(fx.progress, 5);		/* once after each */
	assert_int_equal(st.autoreplies, 2);
	assert_int_equal(st.unknown, 2);
	assert_int_equal(st.quarantined, 2);
	assert_int_equal(st.replies, 1);
	assert_int_equal(st.queued, 1);		/* its ack and staff alert */
	assert_int_equal(st.forms + st.unsubscribes + st.reports + st.forged, 0);
	assert_int_equal(count_in(&fx.dove, "INBOX"), 0);
	assert_int_equal(count_in(&fx.dove, "carepost/processed"), 3);
	assert_int_equal(count_in(&fx.dove, "carepost/quarantine"), 2);
	/* committed: the reply is in the inbox, each message seen */
	{
		json_t *list = NULL;
		size_t n = 0;

		assert_int_equal(inbox_list(fx.store, "p1", &list, NULL), 0);
		assert_int_equal(json_array_size(list), 1);
		json_decref(list);
		assert_int_equal(store_count(fx.store, DB_SEEN, &n, NULL), 0);
		assert_int_equal(n, 5);
	}
	/* the drain ended: the last UID is kept for the next session */
	assert_int_equal(mark(&v, &last), 0);
	assert_int_equal(v, server_uidvalidity(&fx.dove));
	assert_int_equal(last, 5);

	/* nothing new: a round that decides nothing */
	memset(&st, 0, sizeof(st));
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 0);
}

static void
a_round_takes_one_batch_and_the_uid_is_saved_when_the_drain_ends(void **state)
{
	struct inround_stats st = { 0 };
	uint32_t v = 0, last = 99;

	dove_start(&fx.dove, NULL);
	open_inround(fx.dove.port, 2);
	deliver_new(&fx.dove, autoreply, 5);

	assert_int_equal(step_ok(&st), 1);		/* a full batch: more */
	assert_int_equal(st.decided, 2);
	assert_int_equal(count_in(&fx.dove, "INBOX"), 3);
	/* the record the connect wrote; not yet the UIDs moved */
	assert_int_equal(mark(&v, &last), 0);
	assert_int_equal(last, 0);
	assert_int_equal(step_ok(&st), 1);
	assert_int_equal(st.decided, 4);
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 5);
	assert_int_equal(st.autoreplies, 5);
	assert_int_equal(count_in(&fx.dove, "INBOX"), 0);
	assert_int_equal(mark(&v, &last), 0);
	assert_int_equal(last, 5);
}

static void
count_tries(void *userdata)
{
	(*(int *)userdata)++;
}

/* carepostd's watchdog hears before each try of the parse helper, not
 * only after each message. */
static void
the_watchdog_hears_before_each_parse_try(void **state)
{
	struct inround_stats st = { 0 };
	int tries = 0;

	dove_start(&fx.dove, NULL);
	open_inround(fx.dove.port, 50);
	inbound_progress(fx.ib, count_tries, &tries);
	deliver_new(&fx.dove, autoreply, 2);
	deliver_new(&fx.dove, no_token, 2);
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 4);
	assert_int_equal(fx.progress, 4);	/* after each message, as before */
	assert_true(tries >= 4);		/* one parse at least each */
}

static void
a_stop_between_messages_leaves_the_rest_for_the_next_round(void **state)
{
	struct inround_stats st = { 0 };

	dove_start(&fx.dove, NULL);
	open_inround(fx.dove.port, 50);
	deliver_new(&fx.dove, autoreply, 2);
	deliver_new(&fx.dove, no_token, 2);
	fx.stop_after = 3;

	assert_int_equal(step_ok(&st), 1);		/* stopped: more waiting */
	assert_int_equal(fx.progress, 3);
	assert_int_equal(st.decided, 3);
	assert_int_equal(count_in(&fx.dove, "INBOX"), 1);
	assert_int_equal(count_in(&fx.dove, "carepost/processed"), 2);
	assert_int_equal(count_in(&fx.dove, "carepost/quarantine"), 1);
	/* stopped before the first message: nothing taken, nothing lost */
	assert_int_equal(step_ok(&st), 1);
	assert_int_equal(st.decided, 3);
	fx.stop = 0;
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 4);
	assert_int_equal(st.quarantined, 2);
	assert_int_equal(count_in(&fx.dove, "INBOX"), 0);
}

static void
a_new_session_goes_on_after_the_saved_uid_unless_uidvalidity_changed(void **state)
{
	struct inround_stats st = { 0 };
	uint32_t v = 0, last = 0;
	json_t *rec;

	dove_start(&fx.dove, NULL);
	open_inround(fx.dove.port, 50);
	/* no processed folder: what is decided stays in the mailbox */
	free(fx.cfg->imap_processed_folder);
	fx.cfg->imap_processed_folder = NULL;
	deliver_new(&fx.dove, autoreply, 3);
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 3);
	assert_int_equal(count_in(&fx.dove, "INBOX"), 3);

	/* a restart: the next session fetches from UID 4 */
	close_inround();
	open_inround(fx.dove.port, 50);
	free(fx.cfg->imap_processed_folder);
	fx.cfg->imap_processed_folder = NULL;
	deliver_new(&fx.dove, autoreply, 1);
	memset(&st, 0, sizeof(st));
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 1);
	assert_int_equal(mark(&v, &last), 0);
	assert_int_equal(last, 4);

	/* another UIDVALIDITY recorded: everything again, from UID 1, each
	 * recognised (not filed twice); the record is the server's again */
	rec = json_pack("{s:I, s:I}", "uidvalidity", (json_int_t)(v ^ 1), "last_uid",
			(json_int_t)4);
	assert_int_equal(store_put_json(fx.store, DB_IMAP, "INBOX", rec, NULL), 0);
	json_decref(rec);
	close_inround();
	open_inround(fx.dove.port, 50);
	free(fx.cfg->imap_processed_folder);
	fx.cfg->imap_processed_folder = NULL;
	memset(&st, 0, sizeof(st));
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 4);
	assert_int_equal(mark(&v, &last), 0);
	assert_int_equal(v, server_uidvalidity(&fx.dove));
	assert_int_equal(last, 4);
	{
		size_t n = 0;

		assert_int_equal(store_count(fx.store, DB_SEEN, &n, NULL), 0);
		assert_int_equal(n, 4);
	}
}

static void
failures_are_error_values_and_the_next_step_connects_again(void **state)
{
	struct inround_stats st = { 0 };
	struct cp_error err;
	uint32_t v, last;
	char path[128];
	int b0, b1, b2;

	/* nobody listening */
	open_inround(tu_free_port(), 50);
	assert_int_equal(step(&st, &err), -ECONNREFUSED);
	assert_int_equal(err.code, -ECONNREFUSED);
	assert_non_null(strstr(err.text, "IMAP connect: "));
	assert_int_equal(st.decided, 0);
	assert_int_equal(fx.progress, 0);
	assert_int_equal(mark(&v, &last), -ENOENT);
	assert_int_equal(inround_fd(fx.in), -1);
	/* the backoff doubles with each failure (2^n s, +-25%) */
	b0 = inround_backoff(fx.in);
	b1 = inround_backoff(fx.in);
	b2 = inround_backoff(fx.in);
	assert_true(b0 >= 1 && b0 <= 2);
	assert_true(b1 >= 1 && b1 <= 3);
	assert_true(b2 >= 3 && b2 <= 5);

	/* the password file gone: named as such, without its contents */
	snprintf(path, sizeof(path), "%s/imap.pw", fx.dir);
	assert_int_equal(unlink(path), 0);
	assert_true(step(&st, &err) < 0);
	assert_non_null(strstr(err.text, "IMAP password: "));
	tu_write_file(path, "%s", "wrong-password\n");

	/* a wrong password */
	dove_start(&fx.dove, NULL);
	fx.cfg->imap_port = fx.dove.port;
	assert_int_equal(step(&st, &err), -EACCES);
	assert_non_null(strstr(err.text, "IMAP connect: "));
	assert_null(strstr(err.text, "wrong-password"));

	/* the right one: connected, and the backoff starts over */
	tu_write_file(path, "%s", PASSWORD "\n");
	deliver_new(&fx.dove, autoreply, 1);
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 1);
	assert_true(inround_backoff(fx.in) <= 2);

	/* the server gone mid-session: an error, the session closed */
	tu_dove_stop(&fx.dove);
	assert_true(step(&st, &err) < 0);
	assert_int_equal(strncmp(err.text, "IMAP ", 5), 0);
	/* another server (another mailbox, another UIDVALIDITY: Dovecot's is
	 * the second its mailbox was made in): from UID 1 */
	tu_sleep_ms(1100);
	dove_start(&fx.dove, NULL);
	fx.cfg->imap_port = fx.dove.port;
	deliver_new(&fx.dove, no_token, 1);
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 2);
	assert_int_equal(st.quarantined, 1);
	assert_int_equal(mark(&v, &last), 0);
	assert_int_equal(v, server_uidvalidity(&fx.dove));
	assert_int_equal(last, 1);
}

static void
idle_wakes_when_mail_arrives_and_the_next_round_takes_it(void **state)
{
	struct inround_stats st = { 0 };
	struct cp_error err;
	struct pollfd pfd;

	dove_start(&fx.dove, NULL);
	open_inround(fx.dove.port, 50);
	cp_error_clear(&err);
	assert_int_equal(inround_idle_begin(fx.in, &err), -ENOTCONN);
	assert_int_equal(inround_idle_end(fx.in, &err), 0);	/* none running */
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(inround_fd(fx.in), -1);		/* not idling */

	assert_int_equal(inround_idle_begin(fx.in, &err), 0);
	pfd.fd = inround_fd(fx.in);
	pfd.events = POLLIN;
	assert_true(pfd.fd >= 0);
	deliver_new(&fx.dove, autoreply, 1);
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(inround_idle_end(fx.in, &err), 1);	/* news */
	assert_int_equal(inround_fd(fx.in), -1);
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 1);

	/* a step while idling ends the IDLE itself */
	assert_int_equal(inround_idle_begin(fx.in, &err), 0);
	pfd.fd = inround_fd(fx.in);
	deliver_new(&fx.dove, autoreply, 1);
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 2);
	assert_int_equal(inround_fd(fx.in), -1);

	/* disconnected: the next step logs in again */
	inround_disconnect(fx.in);
	assert_int_equal(inround_idle_begin(fx.in, &err), -ENOTCONN);
	deliver_new(&fx.dove, autoreply, 1);
	assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 3);
}

static void
without_idle_begin_says_enotsup_and_polling_finds_new_mail(void **state)
{
	struct inround_stats st = { 0 };
	struct cp_error err;
	int i;

	dove_start(&fx.dove, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE UIDPLUS MOVE");
	open_inround(fx.dove.port, 50);
	assert_int_equal(step_ok(&st), 0);
	cp_error_clear(&err);
	assert_int_equal(inround_idle_begin(fx.in, &err), -ENOTSUP);
	assert_int_equal(inround_fd(fx.in), -1);
	deliver_new(&fx.dove, no_token, 1);
	/* The session stays; the first poll after the delivery may not see
	 * it (imapc.h: Dovecot syncs after a command), the one after does. */
	for (i = 0; i < 2 && st.decided == 0; i++)
		assert_int_equal(step_ok(&st), 0);
	assert_int_equal(st.decided, 1);
	assert_int_equal(st.quarantined, 1);
	assert_int_equal(count_in(&fx.dove, "carepost/quarantine"), 1);
}

int
main(int argc, char **argv)
{
	int rc = parsehelper_main(argc, argv);	/* this binary parses too */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(a_round_decides_each_message_commits_it_and_moves_it_to_its_folder, teardown),
		cmocka_unit_test_teardown(a_round_takes_one_batch_and_the_uid_is_saved_when_the_drain_ends, teardown),
		cmocka_unit_test_teardown(the_watchdog_hears_before_each_parse_try,
					  teardown),
		cmocka_unit_test_teardown(a_stop_between_messages_leaves_the_rest_for_the_next_round, teardown),
		cmocka_unit_test_teardown(a_new_session_goes_on_after_the_saved_uid_unless_uidvalidity_changed, teardown),
		cmocka_unit_test_teardown(failures_are_error_values_and_the_next_step_connects_again, teardown),
		cmocka_unit_test_teardown(idle_wakes_when_mail_arrives_and_the_next_round_takes_it, teardown),
		cmocka_unit_test_teardown(without_idle_begin_says_enotsup_and_polling_finds_new_mail, teardown),
	};
	const char *why;

	if (rc >= 0)
		return rc;
	if (parsehelper_enable(NULL) < 0)
		return 1;
	why = tu_dove_unusable();
	if (why != NULL) {
		printf("skipped: %s\n", why);
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);	/* as carepostd does; see imapc.h */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
