/*
 * NAME
 *	test_parsehelper - unit tests for lib/parsehelper.c: mail parsed in
 *	carepost-parse, behind the wall
 * DESCRIPTION
 *	The real helper (../carepost-parse beside this binary's directory)
 *	makes of a message exactly what inmsg_parse makes of it in-process,
 *	decrypted content included; each message gets a child of its own
 *	from the fork server; server and child run with no descriptor but
 *	their socket, no environment, no new privileges and a seccomp
 *	filter; a charset loaded before the wall converts, one that was not
 *	still parses (degraded). Then a substitute helper (this program
 *	copied as "fake-parse", parsefix.h, whose children crash, are
 *	killed, stall, linger or answer garbage when a message says so in
 *	an X-Test header) shows what a lost child costs: one more try on a
 *	fresh child, then PARSEHELPER_LOST with a reason; a crash costs the
 *	child only, a child that stalls or lingers is ended with its
 *	server; and a helper that does not come up is -EHOSTDOWN, never
 *	the message's fault.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sysexits.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "buf.h"
#include "helper.h"
#include "inmsg.h"
#include "inmsgwire.h"
#include "parsehelper.h"
#include "util.h"

#include "parsefix.h"

static char self[PATH_MAX];
static char real[PATH_MAX];	/* the built carepost-parse */
static char dir[64];		/* scratch: the substitutes */

static const char multipart[] =
	"From: =?utf-8?q?P=C3=A4t?= <Pat@Patients.TEST>\r\n"
	"To: reply+tok@reply.example\r\n"
	"Subject: =?utf-8?q?R=C3=A9sultat?=\r\n"
	"Message-ID: <m1@patients.test>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
	"<p>hello <b>caf\xc3\xa9</b></p>\r\n"
	"--b\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n"
	"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKAP8=\r\n"
	"--b--\r\n";

static const char dsn[] =
	"From: MAILER-DAEMON@mx.test\r\nTo: bounce+v@bounce.example\r\n"
	"Subject: Undelivered\r\nMessage-ID: <d1@mx.test>\r\n"
	"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n"
	"--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
	"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
	"Reporting-MTA: dns; mx.test\r\n\r\n"
	"Final-Recipient: rfc822; <P@Patients.test>\r\nAction: Failed\r\n"
	"Status: 5.1.1\r\n\r\n--r--\r\n";

static const char encrypted[] =
	"From: p@patients.test\r\nTo: reply+tok@reply.example\r\nSubject: e\r\n"
	"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
	"boundary=E\r\n\r\n--E\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
	"Version: 1\r\n--E\r\nContent-Type: application/octet-stream\r\n\r\n"
	"-----BEGIN PGP MESSAGE-----\r\nxx\r\n-----END PGP MESSAGE-----\r\n--E--\r\n";

static const char inner[] =
	"Content-Type: multipart/mixed; boundary=i; protected-headers=v1\r\n"
	"Subject: inner subject\r\nTo: <reply+tok@reply.example>\r\n\r\n"
	"--i\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nsecret caf\xe9\r\n"
	"--i\r\nContent-Type: image/png; name=x.png\r\n\r\nPNG\r\n--i--\r\n";

/* A charset the helper loads before its wall, and one it does not. */
static const char cp1252[] =
	"From: p@patients.test\r\nSubject: s\r\n"
	"Content-Type: text/plain; charset=windows-1252\r\n\r\n"
	"caf\xe9 \x80 5\r\n";
static const char ebcdic[] =
	"From: p@patients.test\r\nSubject: s\r\n"
	"Content-Type: text/plain; charset=IBM037\r\n\r\n"
	"\xc8\x85\x93\x93\x96\r\n";

/* ---- the substitute helper (this program as fake-parse) ---- */

/* fake_answer - what the real helper would answer to a PARSE of raw. */
static int
fake_answer(const struct helper_frame *f, struct buf *scratch)
{
	struct inmsg_limits lim;
	struct inmsg *m = NULL;
	struct buf wire = BUF_INIT;
	struct cp_error e;
	uint32_t flags = 0;
	int r;

	cp_error_clear(&e);
	if (inmsgwire_limits_decode(f->field[0], f->len[0], &lim) < 0)
		return -1;
	r = inmsg_parse(f->field[1], f->len[1], &lim, &m, &e);
	if (r == 0)
		r = inmsgwire_encode(m, &wire);
	inmsg_free(m);
	{
		struct helper_field a[2] = {
			{ &flags, sizeof(flags) },
			{ r < 0 ? e.text : (wire.data ? wire.data : ""),
			  r < 0 ? strlen(e.text) : wire.len },
		};

		r = helper_frame_send(HELPER_FD, scratch, r < 0 ? r : 0, a, 2);
	}
	buf_free(&wire);
	return r;
}

static int
has(const struct helper_frame *f, const char *what)
{
	return memmem(f->field[1], f->len[1], what, strlen(what)) != NULL;
}

/*
 * fake_child - a child of the substitute server: speaks the helper's
 * protocol, parses in-process (no wall: it is only for the tests), and
 * misbehaves when a message asks.
 */
static int
fake_child(void *arg)
{
	struct buf in = BUF_INIT, scratch = BUF_INIT;
	struct helper_frame f;

	(void)arg;
	if (tu_parse_first_words(&scratch) < 0)
		return 1;
	if (helper_frame_recv(HELPER_FD, &in, &f, 0, 0) != 0)
		return 0;
	if (f.n != 2)
		return 2;
	if (has(&f, "X-Test: segv")) {
		signal(SIGSEGV, SIG_DFL);	/* not a sanitizer's report */
		raise(SIGSEGV);
	}
	if (has(&f, "X-Test: kill"))
		raise(SIGKILL);
	if (has(&f, "X-Test: sigsys")) {
		signal(SIGSYS, SIG_DFL);	/* as its filter kills it */
		raise(SIGSYS);
	}
	if (has(&f, "X-Test: stall"))
		pause();
	if (has(&f, "X-Test: linger")) {
		/* answers well, then stays (taken over by its message) */
		if (fake_answer(&f, &scratch) < 0)
			return 3;
		for (;;)
			pause();
	}
	if (has(&f, "X-Test: all-charsets")) {
		/* "ask the server with every converter", from either server,
		 * with or without a wire after it */
		uint32_t flags = PARSEHELPER_ANSWER_ALL_CHARSETS;
		int wire = has(&f, "with-wire");
		struct helper_field a[2] = { { &flags, 4 }, { "x", wire ? 1 : 0 } };

		helper_frame_send(HELPER_FD, &scratch, 0, a, 2);
		return 0;
	}
	if (has(&f, "X-Test: odd-code")) {
		uint32_t flags = 0;
		struct helper_field a[2] = { { &flags, 4 }, { "stay\n", 5 } };

		/* an infrastructure code: not one the parser gives */
		helper_frame_send(HELPER_FD, &scratch, -EHOSTDOWN, a, 2);
		return 0;
	}
	if (has(&f, "X-Test: twice")) {
		/* its answer and a second one in one write (a stale answer
		 * for some later request) */
		uint32_t flags = 0;
		struct helper_field a[2] = { { &flags, 4 }, { "", 0 } };
		struct buf two = BUF_INIT;

		helper_frame_prepare(&scratch, -EBADMSG, a, 2);
		buf_append(&two, scratch.data, scratch.len);
		buf_append(&two, scratch.data, scratch.len);
		helper_send_all(HELPER_FD, two.data, two.len);
		buf_free(&two);
		return 0;
	}
	if (has(&f, "X-Test: huge")) {
		/* an answer longer than any parse under the request's
		 * limits makes */
		struct inmsg_limits lim;
		uint32_t flags = 0;
		size_t n;
		char *junk;

		if (inmsgwire_limits_decode(f.field[0], f.len[0], &lim) < 0)
			return 4;
		n = inmsgwire_max(&lim) + 1;
		junk = calloc(1, n);
		if (junk == NULL)
			return 4;
		{
			struct helper_field a[2] = { { &flags, 4 }, { junk, n } };

			helper_frame_send(HELPER_FD, &scratch, 0, a, 2);
		}
		free(junk);
		return 0;
	}
	if (has(&f, "X-Test: phi-reason")) {
		uint32_t flags = 0;
		const char *why = "SECRET patient words";
		struct helper_field a[2] = { { &flags, 4 }, { why, strlen(why) } };

		helper_frame_send(HELPER_FD, &scratch, -EBADMSG, a, 2);
		return 0;
	}
	if (has(&f, "X-Test: garbage")) {
		uint32_t flags = 0;
		struct helper_field a[2] = { { &flags, 4 }, { "CPIM\001junk", 9 } };

		helper_frame_send(HELPER_FD, &scratch, 0, a, 2);
		return 0;
	}
	return fake_answer(&f, &scratch) < 0 ? 3 : 0;
}

/* deaf_child - comes up, then never reads its request. */
static int
deaf_child(void *arg)
{
	struct buf scratch = BUF_INIT;

	(void)arg;
	if (tu_parse_first_words(&scratch) < 0)
		return 1;
	for (;;)
		pause();
}

/* ---- helpers ---- */

static void
use_real(void)
{
	assert_int_equal(parsehelper_enable(real), 0);
}

static void
use_substitute(const char *name)
{
	char path[PATH_MAX];

	assert_int_equal(tu_parse_use(dir, name, path, sizeof(path)), 0);
}

static struct parsehelper *
helper(unsigned ms)
{
	struct parsehelper *ph = NULL;
	struct cp_error err;

	assert_int_equal(parsehelper_new(ms, &ph, &err), 0);
	return ph;
}

/* same - the helper's m and inmsg_parse's make the same wire bytes. */
static void
assert_same(const struct inmsg *a, const struct inmsg *b)
{
	struct buf wa = BUF_INIT, wb = BUF_INIT;

	assert_int_equal(inmsgwire_encode(a, &wa), 0);
	assert_int_equal(inmsgwire_encode(b, &wb), 0);
	assert_int_equal(wa.len, wb.len);
	assert_memory_equal(wa.data, wb.data, wa.len);
	buf_free(&wa);
	buf_free(&wb);
}

static struct inmsg *
parsed(struct parsehelper *ph, const char *raw, size_t len)
{
	struct inmsg *m = NULL;
	struct cp_error err;

	cp_error_clear(&err);
	if (parsehelper_parse(ph, raw, len, NULL, 0, &m, &err) < 0)
		fail_msg("parse: %s", err.text);
	return m;
}

static struct inmsg *
in_process(const char *raw, size_t len)
{
	struct inmsg *m = NULL;
	struct cp_error err;

	if (inmsg_parse(raw, len, NULL, &m, &err) < 0)
		fail_msg("inmsg_parse: %s", err.text);
	return m;
}

/* ---- the real helper ---- */

/* ended - pid is no process any more, or one that has ended and waits
 * to be reaped (a child of a server ended with it goes to init). */
static int
ended(long pid)
{
	char path[64], text[256];
	FILE *f;
	size_t n;
	const char *state;

	if (kill((pid_t)pid, 0) < 0)
		return 1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 1;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	state = strrchr(text, ')');
	return state != NULL && state[1] == ' ' && state[2] == 'Z';
}

/* children - how many processes pid has for children. */
static int
children(long pid)
{
	char text[512];
	struct dirent *d;
	DIR *proc = opendir("/proc");
	int n = 0;

	assert_non_null(proc);
	while ((d = readdir(proc)) != NULL) {
		char path[300];
		const char *close_paren;
		FILE *f;
		size_t got;
		long ppid;

		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		got = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
		text[got] = '\0';
		close_paren = strrchr(text, ')');
		if (close_paren != NULL && close_paren[1] == ' ' && close_paren[2] != 'Z' &&
		    sscanf(close_paren + 4, "%ld", &ppid) == 1 && ppid == pid)
			n++;
	}
	closedir(proc);
	return n;
}

/* assert_children - pid comes to have n children (not ended), and keeps
 * that number a quarter of a second (children come and go: the one
 * forked ahead), within four seconds. */
static void
assert_children(long pid, int n)
{
	int steady = 0;

	for (int i = 0; i < 400 && steady < 25; i++) {
		steady = children(pid) == n ? steady + 1 : 0;
		usleep(10000);
	}
	assert_int_equal(children(pid), n);
}

/* gone - pid ends within two seconds (a child ends right after its
 * answer; its server reaps it). */
static void
assert_gone(long pid)
{
	int gone = 0;

	assert_true(pid > 0);
	/* judged once: an ended pid may be another process's soon after
	 * (pid_max 32768 wraps quickly under a test's forks) */
	for (int i = 0; i < 200 && !(gone = ended(pid)); i++)
		usleep(10000);
	assert_true(gone);
}

static void
helper_parses_as_inmsg_parse_does_a_fresh_one_for_each_message(void **state)
{
	static const char *const msgs[] = { multipart, dsn, encrypted, cp1252 };
	struct parsehelper *ph;
	long seen[3 * CP_ARRAY_SIZE(msgs)];
	size_t n = 0;

	use_real();
	ph = helper(0);
	assert_int_equal(parsehelper_pid(ph), 0);	/* none before the first */
	for (size_t round = 0; round < 3; round++) {
		for (size_t i = 0; i < CP_ARRAY_SIZE(msgs); i++) {
			struct inmsg *a = parsed(ph, msgs[i], strlen(msgs[i]));
			struct inmsg *b = in_process(msgs[i], strlen(msgs[i]));

			assert_same(a, b);
			inmsg_free(a);
			inmsg_free(b);
			/* The helper that answered is ended; the next
			 * one is already started. */
			seen[n] = parsehelper_last_pid(ph);
			assert_gone(seen[n]);
			for (size_t j = 0; j < n; j++)
				assert_true(seen[j] != seen[n]);
			n++;
			assert_true(parsehelper_pid(ph) > 0);
			assert_true(parsehelper_pid(ph) != seen[n - 1]);
		}
	}
	assert_int_equal(parsehelper_lost(ph), 0);
	seen[0] = parsehelper_pid(ph);
	parsehelper_free(ph);
	assert_gone(seen[0]);	/* the one started ahead: reaped too */
}

static void
decrypted_content_is_parsed_by_the_helper_too(void **state)
{
	struct parsehelper *ph;
	struct inmsg *a, *b;
	struct cp_error err;

	use_real();
	ph = helper(0);
	a = parsed(ph, encrypted, sizeof(encrypted) - 1);
	b = in_process(encrypted, sizeof(encrypted) - 1);
	assert_int_equal(parsehelper_reparse_inner(ph, a, inner, sizeof(inner) - 1, &err), 0);
	assert_int_equal(inmsg_reparse_inner(b, inner, sizeof(inner) - 1, &err), 0);
	assert_same(a, b);
	assert_non_null(strstr(a->body, "secret caf\xc3\xa9"));
	assert_true(a->prot.present);
	assert_int_equal(a->n_attachments, 1);
	inmsg_free(a);
	inmsg_free(b);
	parsehelper_free(ph);
}

static void
parser_errors_keep_their_code_and_reason(void **state)
{
	struct inmsg_limits lim;
	struct parsehelper *ph;
	struct inmsg *m = (struct inmsg *)1;
	struct cp_error err;
	struct buf deep = BUF_INIT;

	use_real();
	ph = helper(0);
	inmsg_limits_default(&lim);
	lim.max_depth = 2;
	buf_puts(&deep, "Subject: d\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
		 "--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
		 "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
		 "--c\r\n\r\nx\r\n--c--\r\n--b--\r\n--a--\r\n");
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, deep.data, deep.len, &lim, 0, &m, &err), -ELOOP);
	assert_null(m);
	assert_non_null(strstr(err.text, "depth"));
	lim.max_size = 10;
	assert_int_equal(parsehelper_parse(ph, deep.data, deep.len, &lim, 0, &m, &err),
			 -EMSGSIZE);
	assert_int_equal(parsehelper_lost(ph), 0);
	buf_free(&deep);
	parsehelper_free(ph);
}

/* KOI8-R, a charset only the server with every converter loads. */
static const char koi8[] =
	"From: p@patients.test\r\nSubject: =?koi8-r?B?8NLJ18XU?=\r\n"
	"Content-Type: text/plain; charset=koi8-r\r\n\r\n"
	"\xf0\xd2\xc9\xd7\xc5\xd4\r\n";

/* map_has - /proc/pid/maps names a file whose path ends in what. */
static int
map_has(long pid, const char *what)
{
	char path[64], line[512];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		found = strlen(line) >= strlen(what) &&
			strcmp(line + strlen(line) - strlen(what), what) == 0;
	}
	fclose(f);
	return found;
}

/*
 * The usual server is lean: it maps the common Western converters and no
 * TLS, database or SASL library (each mapping is paid again by every
 * child's fork and exit); a message in another charset is asked of a
 * second server that loaded every converter, and parses as in-process.
 */
static void
charsets_beyond_the_lean_server_are_asked_of_the_one_with_them_all(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m, *inside;
	long lean;

	use_real();
	ph = helper(0);
	m = parsed(ph, cp1252, sizeof(cp1252) - 1);
	inmsg_free(m);
	lean = parsehelper_server_pid(ph);
	assert_true(lean > 0);
	assert_true(map_has(lean, "/CP1252.so"));
	assert_false(map_has(lean, "/KOI8-R.so"));
	assert_false(map_has(lean, "/libgnutls.so.30"));
	m = in_process(koi8, sizeof(koi8) - 1);
	inside = parsed(ph, koi8, sizeof(koi8) - 1);
	assert_string_equal(m->subject, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
	assert_string_equal(m->body, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\n");
	assert_same(m, inside);
	/* the lean server is still the one asked first, and nothing was lost */
	assert_int_equal(parsehelper_server_pid(ph), lean);
	assert_false(map_has(lean, "/KOI8-R.so"));
	assert_int_equal(parsehelper_lost(ph), 0);
	inmsg_free(m);
	inmsg_free(inside);
	parsehelper_free(ph);
}

/* "Ask the server with every converter" is a word of a lean server's
 * child alone, and has nothing after it. */
static void
all_charsets_answer_is_believed_once_and_bare(void **state)
{
	const char *again = "Subject: s\r\nX-Test: all-charsets\r\n\r\nb\r\n";
	const char *wire = "Subject: s\r\nX-Test: all-charsets with-wire\r\n\r\nb\r\n";
	struct parsehelper *ph;
	struct inmsg *m = NULL;
	struct cp_error err;

	use_substitute("fake-parse");
	ph = helper(0);
	cp_error_clear(&err);
	/* the lean child says it, then the other server's child says it too */
	assert_int_equal(parsehelper_parse(ph, again, strlen(again), NULL,
					   PARSEHELPER_ONCE, &m, &err), PARSEHELPER_LOST);
	assert_non_null(strstr(err.text, "answered more than its answer"));
	assert_null(m);
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, wire, strlen(wire), NULL,
					   PARSEHELPER_ONCE, &m, &err), PARSEHELPER_LOST);
	assert_non_null(strstr(err.text, "answered more than its answer"));
	assert_int_equal(parsehelper_lost(ph), 2);
	/* an honest message after them parses */
	m = parsed(ph, cp1252, sizeof(cp1252) - 1);
	inmsg_free(m);
	parsehelper_free(ph);
}

/* A charset loaded before the wall converts; one not loaded degrades. */
static void
charsets_loaded_before_the_wall_convert_others_degrade(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m, *inside;

	use_real();
	ph = helper(0);
	m = parsed(ph, cp1252, sizeof(cp1252) - 1);
	assert_string_equal(m->body, "caf\xc3\xa9 \xe2\x82\xac 5\n");
	inmsg_free(m);
	/* In-process, glibc loads IBM037 from a file and it says "Hello". */
	m = in_process(ebcdic, sizeof(ebcdic) - 1);
	inside = parsed(ph, ebcdic, sizeof(ebcdic) - 1);
	assert_int_equal(strncmp(m->body, "Hello", 5), 0);
	/* Inside, the file cannot be opened: the bytes as ISO-8859-1. */
	assert_int_not_equal(strncmp(inside->body, "Hello", 5), 0);
	assert_true(inside->body_len > 0);
	assert_int_equal(parsehelper_lost(ph), 0);
	inmsg_free(m);
	inmsg_free(inside);
	parsehelper_free(ph);
}

/* read_text - a small file of /proc. */
static void
read_text(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

/*
 * assert_walled - process pid holds no descriptor but 3 (and stderr in
 * sanitizer builds), runs with no new privileges, not as root, under a
 * seccomp filter, and may grow no file.
 */
static void
assert_walled(long pid)
{
	char path[64], text[4096];
	struct dirent *d;
	DIR *fds;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	for (int i = 0; i < 500; i++) {
		read_text(path, text, sizeof(text));
		if (strstr(text, "\nSeccomp:\t2\n") != NULL)
			break;
		usleep(10000);
	}
	/* Its socket; stderr too in sanitizer builds (their reports). A
	 * server holds a connection a moment, between receiving it and
	 * forking its child: looked at again while it does. */
	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	for (int i = 0; i < 100; i++) {
		int other = 0;

		n = 0;
		fds = opendir(path);
		assert_non_null(fds);
		while ((d = readdir(fds)) != NULL) {
			if (d->d_name[0] == '.')
				continue;
			if (strcmp(d->d_name, "2") != 0 && strcmp(d->d_name, "3") != 0)
				other = 1;
			n++;
		}
		closedir(fds);
		if (!other)
			break;
		usleep(10000);
	}
	assert_true(n >= 1 && n <= 2);
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	read_text(path, text, sizeof(text));
	assert_non_null(strstr(text, "\nNoNewPrivs:\t1\n"));
	/* started by root (carepostctl run by hand), it parses as nobody */
	if (geteuid() == 0)
		assert_non_null(strstr(text, "\nUid:\t65534\t65534\t65534\t65534\n"));
	else
		assert_null(strstr(text, "\nUid:\t0\t"));
	assert_non_null(strstr(text, "\nSeccomp:\t2\n"));
	snprintf(path, sizeof(path), "/proc/%ld/limits", pid);
	read_text(path, text, sizeof(text));
	assert_non_null(strstr(text, "Max file size             0"));
}

static void
running_helper_holds_only_its_socket_behind_seccomp(void **state)
{
	char path[64], text[4096];
	struct parsehelper *ph;
	struct inmsg *m;
	long pid, server;

	use_real();
	ph = helper(0);
	m = parsed(ph, multipart, sizeof(multipart) - 1);
	inmsg_free(m);
	/* The child started ahead, once it has confined itself, and the
	 * server it was forked from. */
	pid = parsehelper_pid(ph);
	server = parsehelper_server_pid(ph);
	assert_true(pid > 0 && server > 0 && pid != server);
	assert_walled(pid);
	assert_walled(server);
	/* The child's own filter is stacked on the server's, and only the
	 * child has a CPU cap: the server never reads mail. */
	snprintf(path, sizeof(path), "/proc/%ld/limits", pid);
	read_text(path, text, sizeof(text));
	assert_non_null(strstr(text, "Max cpu time              60 "));
	snprintf(path, sizeof(path), "/proc/%ld/limits", server);
	read_text(path, text, sizeof(text));
	assert_null(strstr(text, "Max cpu time              60 "));
	parsehelper_free(ph);
	assert_gone(pid);
	assert_gone(server);
}

/* ---- losing a helper ---- */

static void
helper_killed_between_messages_costs_one_retry_not_the_message(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m;
	long pid;

	use_real();
	ph = helper(0);
	m = parsed(ph, dsn, sizeof(dsn) - 1);
	inmsg_free(m);
	pid = parsehelper_pid(ph);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	m = parsed(ph, dsn, sizeof(dsn) - 1);
	assert_true(m->dsn.present);
	inmsg_free(m);
	assert_int_equal(parsehelper_lost(ph), 1);
	assert_true(parsehelper_pid(ph) > 0 && parsehelper_pid(ph) != pid);
	parsehelper_free(ph);
}

/* lost_twice - raw loses the helper on both tries: the reason says how. */
static void
assert_lost_twice(struct parsehelper *ph, const char *raw, const char *how)
{
	unsigned long before = parsehelper_lost(ph);
	struct inmsg *m = (struct inmsg *)1;
	struct cp_error err;

	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, raw, strlen(raw), NULL, 0, &m, &err),
			 PARSEHELPER_LOST);
	assert_null(m);
	if (strstr(err.text, "parser lost twice on this message") == NULL ||
	    strstr(err.text, how) == NULL)
		fail_msg("reason \"%s\" does not say \"%s\"", err.text, how);
	assert_null(strstr(err.text, "SECRET"));
	assert_int_equal(parsehelper_lost(ph), before + 2);
	assert_gone(parsehelper_last_pid(ph));
}

static void
helper_crashing_or_killed_on_a_message_is_retried_once_then_lost(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m;

	use_substitute("fake-parse");
	ph = helper(0);
	assert_lost_twice(ph, "Subject: SECRET\r\nX-Test: segv\r\n\r\nbody\r\n",
			  "killed by signal 11");
	assert_lost_twice(ph, "Subject: SECRET\r\nX-Test: kill\r\n\r\nbody\r\n",
			  "killed by signal 9");
	assert_lost_twice(ph, "Subject: SECRET\r\nX-Test: garbage\r\n\r\nbody\r\n",
			  "parser's answer");
	assert_lost_twice(ph, "Subject: SECRET\r\nX-Test: odd-code\r\n\r\nbody\r\n",
			  "answered a malformed frame");
	assert_lost_twice(ph, "Subject: SECRET\r\nX-Test: twice\r\n\r\nbody\r\n",
			  "answered more than its answer");
	/* The next message is parsed by a fresh helper as if nothing happened. */
	m = parsed(ph, dsn, sizeof(dsn) - 1);
	assert_true(m->dsn.present);
	inmsg_free(m);
	parsehelper_free(ph);
}

/* A caller that wants no reason (decrypt ahead's guess) passes err NULL. */
static void
lost_helper_with_no_error_struct_is_a_code_not_a_crash(void **state)
{
	static const char script[] = "#!/bin/sh\nexit 0\n";
	char path[PATH_MAX];
	struct parsehelper *ph;
	struct inmsg *m = (struct inmsg *)1;
	const char *garbage = "Subject: s\r\nX-Test: garbage\r\n\r\nbody\r\n";

	use_substitute("fake-parse");
	ph = helper(0);
	assert_int_equal(parsehelper_parse(ph, garbage, strlen(garbage), NULL,
					   PARSEHELPER_ONCE, &m, NULL), PARSEHELPER_LOST);
	assert_null(m);
	assert_int_equal(parsehelper_parse(ph, garbage, strlen(garbage), NULL, 0,
					   &m, NULL), PARSEHELPER_LOST);
	parsehelper_free(ph);
	snprintf(path, sizeof(path), "%s/mute-parse", dir);
	assert_int_equal(cp_write_file_atomic(path, script, sizeof(script) - 1, 0755), 0);
	assert_int_equal(parsehelper_enable(path), 0);
	ph = helper(0);
	assert_int_equal(parsehelper_parse(ph, dsn, sizeof(dsn) - 1, NULL,
					   PARSEHELPER_ONCE, &m, NULL), -EHOSTDOWN);
	parsehelper_free(ph);
}

/* A crash costs the message's child only: the server that forks the
 * children goes on, and so do the messages after it. */
static void
a_crash_costs_the_child_alone_its_server_ends_stuck_and_lingering_ones(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m;
	long server, lingering;

	use_substitute("fake-parse");
	ph = helper(300);
	m = parsed(ph, dsn, sizeof(dsn) - 1);
	inmsg_free(m);
	server = parsehelper_server_pid(ph);
	assert_true(server > 0);
	assert_lost_twice(ph, "Subject: SECRET\r\nX-Test: segv\r\n\r\nbody\r\n",
			  "killed by signal 11");
	assert_int_equal(parsehelper_server_pid(ph), server);
	/* A child that stays after its answer is ended by its server (a
	 * second later); that message is parsed all the same. */
	m = parsed(ph, "Subject: s\r\nX-Test: linger\r\n\r\nbody\r\n", 36);
	inmsg_free(m);
	lingering = parsehelper_last_pid(ph);
	m = parsed(ph, dsn, sizeof(dsn) - 1);
	assert_true(m->dsn.present);
	inmsg_free(m);
	assert_gone(lingering);
	/* One that stalls is ended by its server too. */
	assert_lost_twice(ph, "Subject: s\r\nX-Test: stall\r\n\r\nbody\r\n",
			  "ran over its 300 ms time limit");
	assert_int_equal(parsehelper_server_pid(ph), server);
	assert_int_equal(parsehelper_lost(ph), 4);
	parsehelper_free(ph);
}

/* A message sent ahead is parsed while the caller works: its parse then
 * takes that answer (the same bytes and limits only), as its first try. */
static void
a_parse_sent_ahead_is_the_first_try_of_its_parse(void **state)
{
	struct inmsg_limits lim;
	struct parsehelper *ph;
	const struct inmsg *peeked;
	struct inmsg *a, *b;
	struct cp_error err;
	long server;

	use_real();
	ph = helper(0);
	assert_int_equal(parsehelper_parse_ahead(ph, multipart, sizeof(multipart) - 1, NULL), 1);
	assert_int_equal(parsehelper_parse_ahead(ph, dsn, sizeof(dsn) - 1, NULL), 1);
	assert_int_equal(parsehelper_parse_ahead(ph, dsn, sizeof(dsn) - 1, NULL), 1);
	server = parsehelper_server_pid(ph);
	/* waited for and kept: the parse hands over that very answer */
	assert_int_equal(parsehelper_peek(ph, multipart, sizeof(multipart) - 1, NULL,
					  &peeked), 0);
	a = parsed(ph, multipart, sizeof(multipart) - 1);
	assert_ptr_equal(a, peeked);
	b = in_process(multipart, sizeof(multipart) - 1);
	assert_same(a, b);
	inmsg_free(a);
	inmsg_free(b);
	/* nothing left for those bytes: a peek finds nothing */
	assert_int_equal(parsehelper_peek(ph, multipart, sizeof(multipart) - 1, NULL,
					  &peeked), -ENOENT);
	/* other limits are another request: not the answer sent ahead */
	inmsg_limits_default(&lim);
	lim.max_size = 10;
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, dsn, sizeof(dsn) - 1, &lim, 0, &a, &err),
			 -EMSGSIZE);
	a = parsed(ph, dsn, sizeof(dsn) - 1);
	assert_true(a->dsn.present);
	inmsg_free(a);
	assert_int_equal(parsehelper_lost(ph), 0);
	assert_int_equal(parsehelper_server_pid(ph), server);
	parsehelper_free(ph);
}

/* A message sent ahead that kills its child costs what any does. */
static void
a_parse_sent_ahead_that_crashes_is_retried_once_then_lost(void **state)
{
	static const char segv[] = "Subject: SECRET\r\nX-Test: segv\r\n\r\nbody\r\n";
	const struct inmsg *peeked = NULL;
	struct parsehelper *ph;

	use_substitute("fake-parse");
	ph = helper(0);
	assert_int_equal(parsehelper_parse_ahead(ph, segv, sizeof(segv) - 1, NULL), 1);
	assert_lost_twice(ph, segv, "killed by signal 11");
	/* peeked at, it fails and leaves nothing behind */
	assert_int_equal(parsehelper_parse_ahead(ph, segv, sizeof(segv) - 1, NULL), 1);
	assert_int_equal(parsehelper_peek(ph, segv, sizeof(segv) - 1, NULL, &peeked),
			 PARSEHELPER_LOST);
	assert_null(peeked);
	assert_int_equal(parsehelper_peek(ph, segv, sizeof(segv) - 1, NULL, &peeked),
			 -ENOENT);
	parsehelper_free(ph);
}

/* What was sent ahead and never parsed is dropped: a child still at work
 * is ended with its server, never left running. */
static void
parses_sent_ahead_and_never_taken_are_dropped(void **state)
{
	static const char stall[] = "Subject: s\r\nX-Test: stall\r\n\r\nbody\r\n";
	static const char other[] = "Subject: t\r\n\r\nbody\r\n";
	struct parsehelper *ph;
	struct inmsg *m;
	long server;

	use_substitute("fake-parse");
	ph = helper(0);
	assert_int_equal(parsehelper_parse_ahead(ph, stall, sizeof(stall) - 1, NULL), 1);
	server = parsehelper_server_pid(ph);
	assert_children(server, 2);	/* the stalled one, one ahead */
	parsehelper_ahead_drop(ph);
	assert_children(server, 1);	/* its server ended it */
	m = parsed(ph, dsn, sizeof(dsn) - 1);
	assert_true(m->dsn.present);
	inmsg_free(m);
	/* more than PARSEHELPER_EARLY: the oldest goes */
	assert_int_equal(parsehelper_parse_ahead(ph, stall, sizeof(stall) - 1, NULL), 1);
	assert_int_equal(parsehelper_parse_ahead(ph, dsn, sizeof(dsn) - 1, NULL), 1);
	assert_int_equal(parsehelper_parse_ahead(ph, other, sizeof(other) - 1, NULL), 1);
	/* dsn's and other's end after their answers, the stalled one
	 * (pushed out) is ended by its server: one ahead is left */
	assert_children(server, 1);
	m = parsed(ph, other, sizeof(other) - 1);
	inmsg_free(m);
	assert_int_equal(parsehelper_lost(ph), 0);
	assert_int_equal(parsehelper_server_pid(ph), server);
	parsehelper_free(ph);
}

/* A helper its filter killed tried a forbidden call: likely an exploit.
 * The message is not parsed again. */
static void
helper_killed_by_its_filter_is_not_retried(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m = NULL;
	struct cp_error err;
	const char *raw = "Subject: SECRET\r\nX-Test: sigsys\r\n\r\nbody\r\n";

	use_substitute("fake-parse");
	ph = helper(0);
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, raw, strlen(raw), NULL, 0, &m, &err),
			 PARSEHELPER_LOST);
	assert_int_equal(parsehelper_lost(ph), 1);	/* no second try */
	assert_non_null(strstr(err.text, "seccomp filter"));
	assert_null(strstr(err.text, "SECRET"));
	assert_gone(parsehelper_last_pid(ph));
	/* the next message is parsed as if nothing happened */
	m = parsed(ph, dsn, sizeof(dsn) - 1);
	assert_true(m->dsn.present);
	inmsg_free(m);
	parsehelper_free(ph);
}

static void
helper_over_its_time_limit_is_killed_and_lost(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m = NULL;
	struct cp_error err;
	int64_t start;

	use_substitute("fake-parse");
	ph = helper(300);
	start = cp_mono_ms();
	assert_lost_twice(ph, "Subject: s\r\nX-Test: stall\r\n\r\nbody\r\n",
			  "ran over its 300 ms time limit");
	assert_true(cp_mono_ms() - start >= 600);
	/* A guess (PARSEHELPER_ONCE) is not tried twice. */
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, "X-Test: stall\r\n\r\n", 17, NULL,
					   PARSEHELPER_ONCE, &m, &err), PARSEHELPER_LOST);
	assert_int_equal(parsehelper_lost(ph), 3);
	parsehelper_free(ph);
}

static void
count_progress(void *userdata)
{
	(*(int *)userdata)++;
}

/* A message's tries and its decrypted content share one budget, and the
 * caller hears before each try (the watchdog). */
static void
retries_and_inner_parse_stay_within_the_message_budget(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m = NULL, *stalled = NULL;
	struct cp_error err;
	int64_t start, took;
	int pings = 0;

	/* the defaults: two tries fit the budget, the budget the watchdog */
	assert_true(PARSEHELPER_TIME_LIMIT_MS <= 10000u);
	assert_true(2 * PARSEHELPER_TIME_LIMIT_MS <= PARSEHELPER_MESSAGE_BUDGET_MS);
	assert_true(PARSEHELPER_MESSAGE_BUDGET_MS <= 60000u / 2 - 10000u);
	use_substitute("fake-parse");
	ph = helper(1000);
	parsehelper_progress(ph, count_progress, &pings);
	parsehelper_budget(ph, 1500);
	start = cp_mono_ms();
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, "X-Test: stall\r\n\r\n", 17, NULL, 0,
					   &m, &err), PARSEHELPER_LOST);
	took = cp_mono_ms() - start;
	/* two whole tries would take 2000 ms: the second is cut short
	 * (the slack is for starting the helpers) */
	assert_true(took >= 1500 && took < 2000);
	assert_non_null(strstr(err.text, "1500 ms parse budget"));
	assert_int_equal(pings, 2);	/* before each try */
	/* The budget spent, the inner parse of the same message fails at
	 * once; time between the tries (gpg's) is not the parser's. */
	parsehelper_free(ph);
	use_real();
	ph = helper(0);
	parsehelper_progress(ph, count_progress, &pings);
	m = parsed(ph, encrypted, sizeof(encrypted) - 1);
	parsehelper_budget(ph, 2000);
	usleep(2100 * 1000);	/* the caller's own work */
	assert_int_equal(parsehelper_reparse_inner(ph, m, inner, sizeof(inner) - 1, &err), 0);
	parsehelper_free(ph);
	/* a stall spends the budget; the inner parse then fails at once */
	use_substitute("fake-parse");
	ph = helper(300);
	parsehelper_progress(ph, count_progress, &pings);
	parsehelper_budget(ph, 100);
	assert_int_equal(parsehelper_parse(ph, "X-Test: stall\r\n\r\n", 17, NULL,
					   PARSEHELPER_ONCE, &stalled, &err), PARSEHELPER_LOST);
	pings = 0;
	start = cp_mono_ms();
	assert_int_equal(parsehelper_reparse_inner(ph, m, inner, sizeof(inner) - 1, &err),
			 PARSEHELPER_LOST);
	assert_true(cp_mono_ms() - start < 200);
	assert_int_equal(pings, 1);	/* no try started */
	assert_non_null(strstr(err.text, "budget"));
	inmsg_free(m);
	parsehelper_free(ph);
}

/* A helper that stops reading holds the caller no longer than its limit
 * (the request is far larger than the socket's buffer). */
static void
helper_that_stops_reading_is_lost_within_its_time_limit(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m = NULL;
	struct cp_error err;
	struct buf big = BUF_INIT;
	int64_t start;

	use_substitute("deaf-parse");
	ph = helper(300);
	buf_puts(&big, "Subject: s\r\n\r\n");
	for (int i = 0; i < 8 * 1024; i++)
		buf_puts(&big, "0123456789012345678901234567890123456789012345678901234567890123"
			 "0123456789012345678901234567890123456789012345678901234567890123"
			 "0123456789012345678901234567890123456789012345678901234567890123"
			 "012345678901234567890123456789012345678901234567890123456789\r\n");
	alarm(30);	/* before the fix, send blocked for ever */
	start = cp_mono_ms();
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, big.data, big.len, NULL, 0, &m, &err),
			 PARSEHELPER_LOST);
	assert_true(cp_mono_ms() - start < 5000);
	assert_non_null(strstr(err.text, "ran over its 300 ms time limit"));
	alarm(0);
	buf_free(&big);
	parsehelper_free(ph);
}

/* No answer longer than a parse under the request's limits makes. */
static void
answer_longer_than_a_parse_makes_is_refused_unread(void **state)
{
	struct inmsg_limits lim;
	struct parsehelper *ph;
	struct inmsg *m = NULL;
	struct cp_error err;
	const char *raw = "Subject: s\r\nX-Test: huge\r\n\r\nbody\r\n";

	use_substitute("fake-parse");
	ph = helper(0);
	inmsg_limits_default(&lim);
	lim.max_decoded = 1 << 20;
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, raw, strlen(raw), &lim, PARSEHELPER_ONCE,
					   &m, &err), PARSEHELPER_LOST);
	assert_non_null(strstr(err.text, "longer than a parse makes"));
	parsehelper_free(ph);
}

/* The reason for a parser's refusal is carepostd's, by its code. */
static void
parser_error_text_never_becomes_the_reason(void **state)
{
	struct parsehelper *ph;
	struct inmsg *m = NULL;
	struct cp_error err;
	const char *raw = "Subject: s\r\nX-Test: phi-reason\r\n\r\nbody\r\n";

	use_substitute("fake-parse");
	ph = helper(0);
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, raw, strlen(raw), NULL, 0, &m, &err),
			 -EBADMSG);
	assert_null(strstr(err.text, "SECRET"));
	assert_string_equal(err.text, "MIME structure could not be parsed");
	assert_int_equal(parsehelper_lost(ph), 0);
	parsehelper_free(ph);
}

static void
helper_that_does_not_come_up_is_not_the_messages_fault(void **state)
{
	static const char script[] = "#!/bin/sh\nexit 0\n";
	char path[PATH_MAX];
	struct parsehelper *ph;
	struct inmsg *m = NULL;
	struct cp_error err;

	snprintf(path, sizeof(path), "%s/mute-parse", dir);
	assert_int_equal(cp_write_file_atomic(path, script, sizeof(script) - 1, 0755), 0);
	assert_int_equal(parsehelper_enable(path), 0);
	ph = helper(0);
	cp_error_clear(&err);
	assert_int_equal(parsehelper_parse(ph, dsn, sizeof(dsn) - 1, NULL, 0, &m, &err),
			 -EHOSTDOWN);
	assert_non_null(strstr(err.text, "parse helper"));
	assert_null(m);
	parsehelper_free(ph);
	assert_int_equal(parsehelper_enable("/nonexistent-cph/parse"), -ENOENT);
}

static void
helper_mode_without_its_socket_is_a_usage_error(void **state)
{
	char *argv[] = { "carepost-parse", "--parse-helper", NULL };
	char *other[] = { "carepost-parse", "--other", NULL };
	int devnull = open("/dev/null", O_RDONLY);
	int saved = dup(HELPER_FD);

	/* descriptor 3: not a socket */
	assert_true(devnull >= 0);
	assert_int_equal(dup2(devnull, HELPER_FD), HELPER_FD);
	assert_int_equal(parsehelper_main(2, argv), EX_USAGE);
	assert_int_equal(parsehelper_main(2, other), -1);
	if (saved >= 0)
		dup2(saved, HELPER_FD);
	else
		close(HELPER_FD);
	close(devnull);
	if (saved >= 0)
		close(saved);
}

static int
group_setup(void **state)
{
	char *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(real, sizeof(real), "%s", self);
	slash = strrchr(real, '/');
	if (slash == NULL)
		return -1;
	*slash = '\0';
	slash = strrchr(real, '/');
	if (slash == NULL)
		return -1;
	snprintf(slash, sizeof(real) - (size_t)(slash - real), "/carepost-parse");
	snprintf(dir, sizeof(dir), "/tmp/cpph.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(helper_parses_as_inmsg_parse_does_a_fresh_one_for_each_message),
		cmocka_unit_test(decrypted_content_is_parsed_by_the_helper_too),
		cmocka_unit_test(parser_errors_keep_their_code_and_reason),
		cmocka_unit_test(charsets_loaded_before_the_wall_convert_others_degrade),
		cmocka_unit_test(charsets_beyond_the_lean_server_are_asked_of_the_one_with_them_all),
		cmocka_unit_test(all_charsets_answer_is_believed_once_and_bare),
		cmocka_unit_test(running_helper_holds_only_its_socket_behind_seccomp),
		cmocka_unit_test(helper_killed_between_messages_costs_one_retry_not_the_message),
		cmocka_unit_test(a_crash_costs_the_child_alone_its_server_ends_stuck_and_lingering_ones),
		cmocka_unit_test(helper_crashing_or_killed_on_a_message_is_retried_once_then_lost),
		cmocka_unit_test(lost_helper_with_no_error_struct_is_a_code_not_a_crash),
		cmocka_unit_test(a_parse_sent_ahead_is_the_first_try_of_its_parse),
		cmocka_unit_test(a_parse_sent_ahead_that_crashes_is_retried_once_then_lost),
		cmocka_unit_test(parses_sent_ahead_and_never_taken_are_dropped),
		cmocka_unit_test(helper_killed_by_its_filter_is_not_retried),
		cmocka_unit_test(helper_over_its_time_limit_is_killed_and_lost),
		cmocka_unit_test(retries_and_inner_parse_stay_within_the_message_budget),
		cmocka_unit_test(helper_that_stops_reading_is_lost_within_its_time_limit),
		cmocka_unit_test(answer_longer_than_a_parse_makes_is_refused_unread),
		cmocka_unit_test(parser_error_text_never_becomes_the_reason),
		cmocka_unit_test(helper_that_does_not_come_up_is_not_the_messages_fault),
		cmocka_unit_test(helper_mode_without_its_socket_is_a_usage_error),
	};
	static const struct tu_parse_sub subs[] = {
		{ "fake-parse", fake_child }, { "deaf-parse", deaf_child },
	};
	int rc = tu_parse_dispatch(argc, argv, subs, CP_ARRAY_SIZE(subs));

	if (rc >= 0)	/* run as a substitute helper (a copy of this program) */
		return rc;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
