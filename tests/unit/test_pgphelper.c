/*
 * NAME
 *	test_pgphelper - unit tests for lib/pgphelper.c (pgp_offload and
 *	pgp_confine)
 * DESCRIPTION
 *	This binary is its own helper: started as "--pgp-helper" it serves,
 *	as carepostd does. The group setup makes a clinic and a patient
 *	GnuPG home under one short temp dir, each holding the other's public
 *	key. Offloaded operations are checked against the same operations
 *	in-process and with the gpg command line; the protocol is checked
 *	with hand-made frames sent to a helper started by hand. Confined
 *	operations get decompression bombs from tests/integration/pgpbomb.py
 *	(run from the top of the tree, or $CAREPOST_TOP): a literal packet of
 *	zeros (output) and marker packets (gpg reads and skips them, silent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "gpgfix.h"
#include "pgp.h"
#include "helper.h"
#include "pgphelper.h"
#include "pgpserve.h"
#include "util.h"

extern char **environ;

static struct {
	struct tu_gpg_pair g;		/* the clinic's and patient's homes */
	char self[4096];
} fx;

static const char inner[] =
	"Content-Type: text/plain; charset=utf-8\r\n"
	"\r\n"
	"Your lab results are ready.\r\n";

/* ---- helpers ---- */

/* mono_ms - CLOCK_MONOTONIC in milliseconds. */
static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * in_group - how many processes of process group pgid are alive (not
 * zombies: the init of a container need not reap the gpg processes
 * GPGME orphans), and in *gpg how many of them are gpg.
 */
static int
in_group(long pgid, int *gpg)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	*gpg = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], st[512], *open_paren, *close_paren, state;
		long ppid, pgrp;
		FILE *f;
		size_t len;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;		/* gone meanwhile */
		len = fread(st, 1, sizeof(st) - 1, f);
		fclose(f);
		st[len] = '\0';
		open_paren = strchr(st, '(');
		close_paren = strrchr(st, ')');
		if (open_paren == NULL || close_paren == NULL ||
		    sscanf(close_paren + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3)
			continue;
		if (pgrp != pgid || state == 'Z' || state == 'X')
			continue;
		n++;
		if (close_paren - open_paren == 4 && strncmp(open_paren, "(gpg)", 5) == 0)
			(*gpg)++;
	}
	closedir(d);
	return n;
}

/* group_gone - wait up to 2 s for pgid's processes to die: 1 when they have. */
static int
group_gone(long pgid)
{
	long long end = mono_ms() + 2000;
	int gpg;

	while (in_group(pgid, &gpg) > 0) {
		if (mono_ms() > end)
			return 0;
		usleep(10 * 1000);
	}
	return 1;
}

/*
 * group_settles_at - wait up to 2 s for process group pgid to hold n
 * processes (the gpg of an operation that has returned may still be
 * exiting): how many it holds at the end.
 */
static int
group_settles_at(long pgid, int n)
{
	long long end = mono_ms() + 2000;
	int gpg, k;

	while ((k = in_group(pgid, &gpg)) != n && mono_ms() < end)
		usleep(10 * 1000);
	return k;
}

/* gpg_runs_in - wait up to 10 s for a gpg in process group pgid. */
static int
gpg_runs_in(long pgid)
{
	long long end = mono_ms() + 10000;
	int gpg = 0;

	while (in_group(pgid, &gpg) >= 0 && gpg == 0 && mono_ms() < end)
		usleep(10 * 1000);
	return gpg > 0;
}

/* agent_of - the pid of the gpg-agent serving GnuPG home home, or 0. */
static pid_t
agent_of(const char *home)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t pid = 0;

	assert_non_null(d);
	while (pid == 0 && (e = readdir(d)) != NULL) {
		char path[300], cmd[1024];
		int named = 0, homed = 0;
		size_t len;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		len = fread(cmd, 1, sizeof(cmd) - 1, f);
		fclose(f);
		cmd[len] = '\0';
		for (size_t i = 0; i < len; i += strlen(cmd + i) + 1) {
			const char *slash = strrchr(cmd + i, '/');

			if (i == 0)
				named = strcmp(slash ? slash + 1 : cmd, "gpg-agent") == 0;
			else if (strcmp(cmd + i, home) == 0)
				homed = 1;
		}
		if (named && homed)
			pid = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return pid;
}

/*
 * bomb - what tests/integration/pgpbomb.py makes with args (its command
 * line: --size, --kind, --encrypt HOME FPR); encrypted ones are to the
 * clinic key.
 */
static void
bomb(struct buf *out, const char *args, int encrypted)
{
	const char *top = getenv("CAREPOST_TOP") ? getenv("CAREPOST_TOP") : ".";
	char path[128], *data = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/bomb.pgp", fx.g.dir);
	if (encrypted)
		assert_int_equal(tu_run("python3 %s/tests/integration/pgpbomb.py %s "
					"--encrypt %s %s -o %s", top, args,
					fx.g.clinic_home, fx.g.clinic, path), 0);
	else
		assert_int_equal(tu_run("python3 %s/tests/integration/pgpbomb.py %s "
					"-o %s", top, args, path), 0);
	assert_int_equal(cp_read_file(path, 64u << 20, &data, &len), 0);
	buf_reset(out);
	assert_int_equal(buf_append(out, data, len), 0);
	free(data);
}


/* offloaded - a clinic context (signer: the clinic key) in a helper. */
static struct pgp *
offloaded(const char *signer)
{
	struct cp_error err;
	struct pgp *p = NULL;

	assert_int_equal(pgp_new(fx.g.clinic_home, signer, &p, &err), 0);
	assert_int_equal(pgp_offload(p, &err), 0);
	assert_true(pgp_helper_pid(p) > 0);
	assert_true(pgp_helper_pid(p) != (long)getpid());
	return p;
}

/* patient_sends - what the patient's gpg makes of text with gpg_args. */
static void
patient_sends(const char *text, const char *gpg_args, struct buf *out)
{
	struct buf cmd = BUF_INIT;
	char in[128];

	snprintf(in, sizeof(in), "%s/in.txt", fx.g.dir);
	assert_int_equal(cp_write_file_atomic(in, text, strlen(text), 0600), 0);
	buf_printf(&cmd, "gpg --homedir %s --batch --trust-model always --armor "
		   "%s --output - %s 2>/dev/null", fx.g.patient_home, gpg_args, in);
	assert_int_equal(tu_capture(out, cmd.data), 0);
	buf_free(&cmd);
}

/* helper_by_hand - a helper on a socket of ours: *fd is our end. */
static pid_t
helper_by_hand(int *fd)
{
	char *argv[] = { "carepost-pgp", "--pgp-helper", NULL };
	posix_spawn_file_actions_t fa;
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
	assert_int_equal(posix_spawn(&pid, fx.self, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

/* frame - append a frame (tag, n fields as NUL-terminated strings). */
static void
frame(struct buf *b, int32_t tag, uint32_t n, ...)
{
	struct buf body = BUF_INIT;
	va_list ap;
	uint32_t len;

	buf_append(&body, &tag, 4);
	buf_append(&body, &n, 4);
	va_start(ap, n);
	for (uint32_t i = 0; i < n; i++) {
		const char *s = va_arg(ap, const char *);

		len = (uint32_t)strlen(s);
		buf_append(&body, &len, 4);
		buf_append(&body, s, len);
	}
	va_end(ap);
	len = (uint32_t)body.len;
	buf_append(b, &len, 4);
	buf_append(b, body.data, body.len);
	buf_free(&body);
}

/* exit_status - wait for pid; its exit code, or -1 after a signal. */
static int
exit_status(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -2;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* drain - read fd to its end; the bytes read. */
static size_t
drain(int fd, struct buf *got)
{
	char chunk[4096];
	ssize_t n;

	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(got, chunk, (size_t)n);
	return got->len;
}

static int
group_setup(void **state)
{
	if (pgp_global_init() < 0)
		return -1;
	if (readlink("/proc/self/exe", fx.self, sizeof(fx.self) - 1) <= 0)
		return -1;
	return tu_gpg_pair("cph", "Clinic <clinic@example.org>",
			   "Patient <patient@example.org>", &fx.g);
}

static int
group_teardown(void **state)
{
	tu_gpg_pair_remove("cph", &fx.g);
	return 0;
}

/* ---- offloaded operations ---- */

static void
offloaded_mime_encrypt_is_signed_and_readable_by_the_patient(void **state)
{
	struct buf m = BUF_INIT, plain = BUF_INIT, cmd = BUF_INIT;
	struct pgp *p = offloaded(fx.g.clinic);
	struct cp_error err;
	const char *armor;
	char path[128];

	buf_puts(&m, "kept: ");
	assert_int_equal(pgp_mime_encrypt(p, fx.g.patient, inner, sizeof(inner) - 1,
					  &m, &err), 0);
	assert_int_equal(strncmp(m.data, "kept: Content-Type: multipart/encrypted;", 40), 0);
	armor = strstr(m.data, "-----BEGIN PGP MESSAGE-----");
	assert_non_null(armor);
	snprintf(path, sizeof(path), "%s/m.asc", fx.g.dir);
	assert_int_equal(cp_write_file_atomic(path, armor, strlen(armor), 0600), 0);
	buf_printf(&cmd, "gpg --homedir %s --batch --status-fd 1 --decrypt %s "
		   "2>/dev/null", fx.g.patient_home, path);
	assert_int_equal(tu_capture(&plain, cmd.data), 0);
	assert_non_null(strstr(plain.data, "[GNUPG:] GOODSIG"));
	assert_non_null(strstr(plain.data, fx.g.clinic));
	assert_non_null(strstr(plain.data, "Your lab results are ready."));
	pgp_free(p);
	buf_free(&m);
	buf_free(&plain);
	buf_free(&cmd);
}

static void
offloaded_errors_have_the_in_process_code_and_text(void **state)
{
	const char *unknown = "89ABCDEF0123456789ABCDEF0123456789ABCDEF";
	struct pgp *p = offloaded(fx.g.clinic), *local = NULL;
	struct cp_error e1, e2;
	struct buf a = BUF_INIT, b = BUF_INIT;
	int r1, r2;

	assert_int_equal(pgp_new(fx.g.clinic_home, fx.g.clinic, &local, &e1), 0);
	r1 = pgp_mime_encrypt(p, unknown, inner, sizeof(inner) - 1, &a, &e1);
	r2 = pgp_mime_encrypt(local, unknown, inner, sizeof(inner) - 1, &b, &e2);
	assert_true(r1 < 0);
	assert_int_equal(r1, r2);
	assert_string_equal(e1.text, e2.text);
	assert_int_equal(a.len, 0);
	/* the helper is still the one in use */
	assert_true(pgp_helper_pid(p) > 0);

	/* an output limit travels with the request */
	a.max = 64;
	r1 = pgp_mime_encrypt(p, fx.g.patient, inner, sizeof(inner) - 1, &a, &e1);
	b.max = 64;
	r2 = pgp_mime_encrypt(local, fx.g.patient, inner, sizeof(inner) - 1, &b, &e2);
	assert_int_equal(r1, -EFBIG);
	assert_int_equal(r1, r2);
	assert_string_equal(e1.text, e2.text);
	assert_int_equal(a.len, 0);
	pgp_free(p);
	pgp_free(local);
	buf_free(&a);
	buf_free(&b);
}

static void
offloaded_decrypt_and_verify_match_in_process(void **state)
{
	struct pgp *p = offloaded(NULL), *local = NULL;
	struct buf ct = BUF_INIT, sig = BUF_INIT, o1 = BUF_INIT, o2 = BUF_INIT;
	const char *text = "reply from the patient\n";
	struct pgp_sig f1, f2;
	char arg[128];
	struct cp_error err;
	time_t before = time(NULL);

	assert_int_equal(pgp_new(fx.g.clinic_home, NULL, &local, &err), 0);
	snprintf(arg, sizeof(arg), "--sign --encrypt --recipient %s", fx.g.clinic);
	patient_sends(text, arg, &ct);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o1, &f1, &err), 0);
	assert_int_equal(pgp_decrypt_signed_by(local, ct.data, ct.len, &o2, &f2, &err), 0);
	assert_string_equal(o1.data, text);
	assert_string_equal(o2.data, text);
	assert_string_equal(f1.fpr, fx.g.patient);
	assert_string_equal(f1.fpr, f2.fpr);
	/* the signature's own time travels with it, from either */
	assert_true(f1.created >= before - 1 && f1.created <= time(NULL) + 1);
	assert_true(f1.created == f2.created);

	/* encrypted, not signed: no signer, from either */
	buf_reset(&o1);
	snprintf(arg, sizeof(arg), "--encrypt --recipient %s", fx.g.clinic);
	patient_sends(text, arg, &ct);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o1, &f1, &err), 0);
	assert_string_equal(f1.fpr, "");
	assert_int_equal(f1.created, 0);
	assert_string_equal(o1.data, text);

	/* garbage: the same error, the buffer left as it was */
	buf_reset(&o1);
	buf_puts(&o1, "keep");
	assert_int_equal(pgp_decrypt_signed_by(p, "junk", 4, &o1, &f1, &err), -EBADMSG);
	assert_string_equal(o1.data, "keep");

	/* over the caller's limit: stopped, as in-process */
	buf_reset(&o1);
	o1.max = 8;
	snprintf(arg, sizeof(arg), "--encrypt --recipient %s", fx.g.clinic);
	patient_sends(text, arg, &ct);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o1, &f1, &err), -EFBIG);
	assert_int_equal(o1.len, 0);

	/* a detached signature */
	patient_sends(text, "--detach-sign", &sig);
	assert_int_equal(pgp_verify_detached(p, text, strlen(text), sig.data, sig.len,
					     &f1, &err), 0);
	assert_string_equal(f1.fpr, fx.g.patient);
	assert_true(f1.created >= before - 1 && f1.created <= time(NULL) + 1);
	assert_int_equal(pgp_verify_detached(local, text, strlen(text), sig.data, sig.len,
					     &f2, &err), 0);
	assert_memory_equal(&f1, &f2, sizeof(f1));
	assert_int_equal(pgp_verify_detached(p, "other text\n", 11, sig.data, sig.len,
					     &f1, &err), 0);
	assert_string_equal(f1.fpr, "");
	assert_true(pgp_helper_pid(p) > 0);
	pgp_free(p);
	pgp_free(local);
	buf_free(&ct);
	buf_free(&sig);
	buf_free(&o1);
	buf_free(&o2);
}

/*
 * gpg-agent gone and back: the offloaded decryption fails with gpg's
 * reason while it is gone and succeeds once it may start again (the
 * inbound path relies on both).
 */
static void
offloaded_decrypt_across_an_agent_outage(void **state)
{
	struct pgp *p = offloaded(NULL);
	struct buf ct = BUF_INIT, out = BUF_INIT;
	struct cp_error err;
	struct pgp_sig f;
	char arg[128];

	snprintf(arg, sizeof(arg), "--sign --encrypt --recipient %s", fx.g.clinic);
	patient_sends("during an outage\n", arg, &ct);
	assert_int_equal(tu_run("echo no-autostart >>%s/gpg.conf && "
				"gpgconf --homedir %s --kill gpg-agent",
				fx.g.clinic_home, fx.g.clinic_home), 0);
	cp_error_clear(&err);
	assert_true(pgp_decrypt_signed_by(p, ct.data, ct.len, &out, &f, &err) < 0);
	assert_true(err.text[0] != '\0');
	assert_int_equal(out.len, 0);
	assert_int_equal(tu_run("sed -i '/^no-autostart$/d' %s/gpg.conf",
				fx.g.clinic_home), 0);
	cp_error_clear(&err);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &out, &f, &err), 0);
	assert_string_equal(out.data, "during an outage\n");
	assert_string_equal(f.fpr, fx.g.patient);
	assert_true(pgp_helper_pid(p) > 0);
	pgp_free(p);
	buf_free(&ct);
	buf_free(&out);
}

/*
 * Decryptions sent ahead: the later calls read their answers (same
 * results as without), a guess not followed is dropped, and any other
 * operation first reads what was sent ahead.
 */
static void
decrypt_ahead_gives_the_same_results_and_unused_guesses_are_harmless(void **state)
{
	struct pgp *p = offloaded(fx.g.clinic);
	struct buf c1 = BUF_INIT, c2 = BUF_INIT, o = BUF_INIT, m = BUF_INIT;
	struct pgp_sig f;
	char arg[128];
	struct cp_error err;

	snprintf(arg, sizeof(arg), "--sign --encrypt --recipient %s", fx.g.clinic);
	patient_sends("first\n", arg, &c1);
	patient_sends("second\n", arg, &c2);
	/* two in flight, taken in order */
	assert_int_equal(pgp_decrypt_ahead(p, c1.data, c1.len, 4096), 1);
	assert_int_equal(pgp_decrypt_ahead(p, c2.data, c2.len, 4096), 1);
	assert_int_equal(pgp_decrypt_ahead(p, c2.data, c2.len, 4096), 0);	/* full */
	o.max = 4096;
	assert_int_equal(pgp_decrypt_signed_by(p, c1.data, c1.len, &o, &f, &err), 0);
	assert_string_equal(o.data, "first\n");
	assert_string_equal(f.fpr, fx.g.patient);
	buf_reset(&o);
	assert_int_equal(pgp_decrypt_signed_by(p, c2.data, c2.len, &o, &f, &err), 0);
	assert_string_equal(o.data, "second\n");
	assert_string_equal(f.fpr, fx.g.patient);

	/* a guess for other bytes (or another limit) is read and dropped */
	assert_int_equal(pgp_decrypt_ahead(p, c1.data, c1.len, 4096), 1);
	buf_reset(&o);
	assert_int_equal(pgp_decrypt_signed_by(p, c2.data, c2.len, &o, &f, &err), 0);
	assert_string_equal(o.data, "second\n");
	assert_string_equal(f.fpr, fx.g.patient);
	assert_int_equal(pgp_decrypt_ahead(p, c1.data, c1.len, 8), 1);
	buf_reset(&o);
	assert_int_equal(pgp_decrypt_signed_by(p, c1.data, c1.len, &o, &f, &err), 0);
	assert_string_equal(o.data, "first\n");
	assert_string_equal(f.fpr, fx.g.patient);

	/* an answer sent ahead with a tight limit is the limit's error */
	buf_reset(&o);
	o.max = 3;
	assert_int_equal(pgp_decrypt_ahead(p, c1.data, c1.len, 3), 1);
	assert_int_equal(pgp_decrypt_signed_by(p, c1.data, c1.len, &o, &f, &err), -EFBIG);
	assert_int_equal(o.len, 0);

	/* another operation reads past what was sent ahead */
	assert_int_equal(pgp_decrypt_ahead(p, c2.data, c2.len, 4096), 1);
	assert_int_equal(pgp_mime_encrypt(p, fx.g.patient, inner, sizeof(inner) - 1,
					  &m, &err), 0);
	assert_non_null(strstr(m.data, "-----BEGIN PGP MESSAGE-----"));

	/* too large to send ahead: not sent, the call works as ever */
	{
		struct buf big = BUF_INIT;

		for (int i = 0; i < 5000; i++)
			buf_puts(&big, "0123456789");
		assert_int_equal(pgp_decrypt_ahead(p, big.data, big.len, 0), 0);
		buf_free(&big);
	}
	/* a helper killed with answers pending: in-process from then on */
	assert_int_equal(pgp_decrypt_ahead(p, c1.data, c1.len, 4096), 1);
	assert_int_equal(kill((pid_t)pgp_helper_pid(p), SIGKILL), 0);
	buf_reset(&o);
	o.max = 4096;
	assert_int_equal(pgp_decrypt_signed_by(p, c1.data, c1.len, &o, &f, &err), 0);
	assert_string_equal(o.data, "first\n");
	assert_int_equal(pgp_helper_pid(p), 0);
	assert_int_equal(pgp_decrypt_ahead(p, c1.data, c1.len, 4096), 0);
	pgp_free(p);
	buf_free(&c1);
	buf_free(&c2);
	buf_free(&o);
	buf_free(&m);
}

/* ---- a helper's life ---- */

static void
killed_helper_means_the_next_operation_runs_in_process(void **state)
{
	struct pgp *p = offloaded(fx.g.clinic);
	struct buf m = BUF_INIT;
	struct cp_error err;

	assert_int_equal(kill((pid_t)pgp_helper_pid(p), SIGKILL), 0);
	assert_int_equal(pgp_mime_encrypt(p, fx.g.patient, inner, sizeof(inner) - 1,
					  &m, &err), 0);
	assert_non_null(strstr(m.data, "-----BEGIN PGP MESSAGE-----"));
	assert_int_equal(pgp_helper_pid(p), 0);
	pgp_free(p);
	buf_free(&m);
}

/*
 * pgphelper_start does not wait for the helper to open GnuPG. One that
 * cannot (a signer its keyring lacks) has the first operation find it
 * lost, with its reason, and is gone by then; through lib/pgp that
 * operation runs in-process instead.
 */
static void
helper_that_cannot_open_is_lost_at_the_first_operation(void **state)
{
	static const char nokey[] = "0123456789ABCDEF0123456789ABCDEF01234567";
	struct pgphelper *h = NULL;
	struct buf out = BUF_INIT;
	struct cp_error err;
	struct pgp_sig fpr;
	long pid;

	cp_error_clear(&err);
	assert_int_equal(pgphelper_start(fx.g.clinic_home, nokey, &h, &err), 0);
	assert_non_null(h);
	pid = pgphelper_pid(h);
	assert_true(pid > 0);
	/* a guess sent ahead meanwhile changes nothing */
	assert_int_equal(pgphelper_decrypt_ahead(h, "x", 1, 0), 1);
	assert_int_equal(pgphelper_decrypt_signed_by(h, "x", 1, &out, &fpr, &err),
			 PGPHELPER_LOST);
	assert_non_null(strstr(err.text, "cannot open"));
	assert_non_null(strstr(err.text, nokey));
	assert_int_equal(out.len, 0);
	assert_string_equal(fpr.fpr, "");
	assert_int_equal(pgphelper_pid(h), 0);
	assert_int_equal(kill((pid_t)pid, 0), -1);	/* reaped */
	assert_int_equal(pgphelper_verify_detached(h, "x", 1, "y", 1, &fpr, &err),
			 PGPHELPER_LOST);
	assert_int_equal(pgphelper_decrypt_ahead(h, "x", 1, 0), 0);
	pgphelper_free(h);

	/* a good one is just as usable before it has answered */
	assert_int_equal(pgphelper_start(fx.g.clinic_home, fx.g.clinic, &h, &err), 0);
	assert_int_equal(pgphelper_mime_encrypt(h, fx.g.patient, inner,
						sizeof(inner) - 1, &out, &err), 0);
	assert_non_null(strstr(out.data, "-----BEGIN PGP MESSAGE-----"));
	pgphelper_free(h);
	buf_free(&out);
}

static void
helper_ignores_sigterm_and_ends_when_its_caller_closes(void **state)
{
	struct pgp *p = offloaded(fx.g.clinic);
	long pid = pgp_helper_pid(p);
	struct buf m = BUF_INIT;
	struct cp_error err;

	assert_int_equal(kill((pid_t)pid, SIGTERM), 0);
	assert_int_equal(kill((pid_t)pid, SIGHUP), 0);
	usleep(100 * 1000);
	assert_int_equal(pgp_mime_encrypt(p, fx.g.patient, inner, sizeof(inner) - 1,
					  &m, &err), 0);
	assert_int_equal(pgp_helper_pid(p), pid);
	pgp_free(p);		/* closes, waits: it has exited */
	assert_int_equal(kill((pid_t)pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	buf_free(&m);
}

/* ---- confined: outside data under hard limits ---- */

/* confined - a context for outside data, its helper not started yet. */
static struct pgp *
confined(unsigned time_limit_ms)
{
	struct cp_error err;
	struct pgp *p = NULL;

	assert_int_equal(pgp_new(fx.g.clinic_home, NULL, &p, &err), 0);
	pgp_confine(p, time_limit_ms);
	assert_int_equal(pgp_helper_pid(p), 0);
	return p;
}

/* genuine - a signed reply to the clinic decrypts on p: its helper's pid. */
static long
genuine(struct pgp *p, const char *text)
{
	struct buf ct = BUF_INIT, o = BUF_INIT;
	struct cp_error err;
	struct pgp_sig sig;
	char arg[128];
	long pid;

	snprintf(arg, sizeof(arg), "--sign --encrypt --recipient %s", fx.g.clinic);
	patient_sends(text, arg, &ct);
	o.max = 1u << 20;
	cp_error_clear(&err);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o, &sig, &err), 0);
	assert_string_equal(o.data, text);
	assert_string_equal(sig.fpr, fx.g.patient);
	pid = pgp_helper_pid(p);
	assert_true(pid > 0 && pid != (long)getpid());
	buf_free(&ct);
	buf_free(&o);
	return pid;
}

/*
 * The 64 GiB bomb, encrypted to the clinic key and as a bare compressed
 * packet (gpg --decrypt unpacks that too): over the 1 MiB limit, the
 * helper and every gpg of its process group are gone when the call
 * returns (gpg would decompress for minutes), and the next call gets a
 * new helper. The helper starts at the first operation, not before.
 */
static void
confined_decryption_over_the_output_limit_kills_the_helpers_process_group(void **state)
{
	struct pgp *p = confined(30000);
	struct buf b = BUF_INIT, o = BUF_INIT;
	struct cp_error err;
	struct pgp_sig sig;
	long pid = genuine(p, "first\n");

	assert_int_equal(group_settles_at(pid, 1), 1);	/* the helper, idle */
	for (int encrypted = 1; encrypted >= 0; encrypted--) {
		bomb(&b, "--size 64G", encrypted);
		buf_reset(&o);
		o.max = 1u << 20;
		cp_error_clear(&err);
		assert_int_equal(pgp_decrypt_signed_by(p, b.data, b.len, &o, &sig, &err),
				 -EFBIG);
		assert_non_null(strstr(err.text, "gpg output over the 1 MiB limit: stopped"));
		assert_int_equal(o.len, 0);
		assert_string_equal(sig.fpr, "");
		assert_int_equal(pgp_helper_pid(p), 0);
		assert_int_equal(kill((pid_t)pid, 0), -1);	/* reaped */
		assert_int_equal(errno, ESRCH);
		assert_true(group_gone(pid));
		/* the next reply: a new helper */
		assert_true(genuine(p, "after the bomb\n") != pid);
		pid = pgp_helper_pid(p);
	}

	/* sent ahead, a bomb's gpg runs in the helper's group until stopped */
	bomb(&b, "--size 16G", 1);
	assert_true(b.len < 32u << 10);
	assert_int_equal(pgp_decrypt_ahead(p, b.data, b.len, 1u << 20), 1);
	assert_true(gpg_runs_in(pid));
	buf_reset(&o);
	o.max = 1u << 20;
	assert_int_equal(pgp_decrypt_signed_by(p, b.data, b.len, &o, &sig, &err), -EFBIG);
	assert_true(group_gone(pid));
	pgp_free(p);
	buf_free(&b);
	buf_free(&o);
}

/*
 * Marker packets, which gpg reads and skips without a byte of output:
 * only the time limit stops them, in a decryption and in a verification
 * (gpg unpacks a compressed "signature" before it finds none), with
 * nothing left running; the next call gets a new helper.
 */
static void
confined_operation_over_its_time_limit_is_stopped(void **state)
{
	struct pgp *p = confined(1000);
	struct buf b = BUF_INIT, o = BUF_INIT;
	struct cp_error err;
	struct pgp_sig sig;
	long pid = genuine(p, "first\n");
	long long t0, ms;

	bomb(&b, "--kind markers --size 2G", 1);
	o.max = 1u << 20;
	cp_error_clear(&err);
	t0 = mono_ms();
	assert_int_equal(pgp_decrypt_signed_by(p, b.data, b.len, &o, &sig, &err),
			 -ETIMEDOUT);
	ms = mono_ms() - t0;
	assert_true(ms >= 1000 && ms < 10000);
	assert_string_equal(err.text, "gpg ran over its 1 s time limit: stopped");
	assert_int_equal(o.len, 0);
	assert_int_equal(pgp_helper_pid(p), 0);
	assert_int_equal(kill((pid_t)pid, 0), -1);
	assert_true(group_gone(pid));
	pid = genuine(p, "after the bomb\n");

	/* the same as a detached signature */
	bomb(&b, "--kind markers --size 2G", 0);
	cp_error_clear(&err);
	assert_int_equal(pgp_verify_detached(p, "text\n", 5, b.data, b.len, &sig, &err),
			 -ETIMEDOUT);
	assert_string_equal(err.text, "gpg ran over its 1 s time limit: stopped");
	assert_string_equal(sig.fpr, "");
	assert_true(group_gone(pid));

	/* sent ahead: the gpg that runs out of time is in the helper's group */
	pid = genuine(p, "again\n");
	bomb(&b, "--kind markers --size 400M", 1);
	assert_int_equal(pgp_decrypt_ahead(p, b.data, b.len, 1u << 20), 1);
	assert_true(gpg_runs_in(pid));
	buf_reset(&o);
	assert_int_equal(pgp_decrypt_signed_by(p, b.data, b.len, &o, &sig, &err),
			 -ETIMEDOUT);
	assert_true(group_gone(pid));
	genuine(p, "and again\n");
	pgp_free(p);
	buf_free(&b);
	buf_free(&o);
}

/*
 * gpg-agent stopped (SIGSTOP): gpg waits on it for ever. A confined
 * decryption runs out of time, and so does the check of our secret key
 * that follows (in the helper too): -EHOSTDOWN, not a hang, so the
 * inbound path keeps the message. The agent, in a session of its own,
 * is not killed with the helper's group: once it goes on, both work.
 */
static void
confined_calls_on_a_stopped_agent_run_out_of_time_not_for_ever(void **state)
{
	struct buf ct = BUF_INIT, o = BUF_INIT;
	struct pgp *p = confined(1000);
	struct cp_error err;
	struct pgp_sig sig;
	long pid = genuine(p, "first\n");
	pid_t agent = agent_of(fx.g.clinic_home);
	long long t0;
	char arg[128];

	assert_true(agent > 0);
	snprintf(arg, sizeof(arg), "--sign --encrypt --recipient %s", fx.g.clinic);
	patient_sends("while the agent sleeps\n", arg, &ct);
	assert_int_equal(kill(agent, SIGSTOP), 0);
	cp_error_clear(&err);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o, &sig, &err),
			 -ETIMEDOUT);
	assert_true(group_gone(pid));
	cp_error_clear(&err);
	t0 = mono_ms();
	assert_int_equal(pgp_secret_available(p, fx.g.clinic, &err), -EHOSTDOWN);
	assert_true(mono_ms() - t0 < 10000);
	assert_non_null(strstr(err.text, "gpg-agent not answering"));
	assert_non_null(strstr(err.text, fx.g.clinic));
	pid = pgp_helper_pid(p);
	assert_int_equal(kill(agent, SIGCONT), 0);
	assert_int_equal(kill(agent, 0), 0);		/* not in the group */
	assert_int_equal(pgp_secret_available(p, fx.g.clinic, &err), 0);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o, &sig, &err), 0);
	assert_string_equal(o.data, "while the agent sleeps\n");
	assert_true(pid == 0 || pid != pgp_helper_pid(p));
	pgp_free(p);
	buf_free(&ct);
	buf_free(&o);
}

/*
 * A bomb sent ahead that no call takes (the next message was another):
 * its answer, over the limit, stops the helper, and the call that read
 * it runs on a new one.
 */
static void
unused_bomb_sent_ahead_stops_the_helper_not_the_next_call(void **state)
{
	struct pgp *p = confined(30000);
	struct buf b = BUF_INIT;
	long pid = genuine(p, "first\n");

	bomb(&b, "--size 16G", 1);
	assert_int_equal(pgp_decrypt_ahead(p, b.data, b.len, 1u << 20), 1);
	assert_true(gpg_runs_in(pid));
	assert_true(genuine(p, "another reply\n") != pid);
	assert_true(group_gone(pid));
	pgp_free(p);
	buf_free(&b);
}

/*
 * pgp_free ends a confined helper whose gpg is decompressing a bomb sent
 * ahead (the helper itself has answered, over the limit, and would exit
 * when its socket closes): nothing runs on.
 */
static void
freeing_a_confined_context_leaves_no_gpg_running(void **state)
{
	struct pgp *p = confined(0);		/* no time limit */
	struct buf b = BUF_INIT;
	long pid = genuine(p, "first\n");

	bomb(&b, "--size 16G", 1);
	assert_int_equal(pgp_decrypt_ahead(p, b.data, b.len, 1u << 20), 1);
	assert_true(gpg_runs_in(pid));
	pgp_free(p);
	assert_int_equal(kill((pid_t)pid, 0), -1);
	assert_true(group_gone(pid));
	buf_free(&b);
}

/*
 * A helper program that exits at once, then one that cannot be run: a
 * confined decryption fails with -EHOSTDOWN (in-process it would have
 * worked), and works again once a helper can start.
 */
static void
confined_context_without_a_working_helper_never_decrypts_in_process(void **state)
{
	static const char script[] = "#!/bin/sh\nexit 0\n";
	struct buf ct = BUF_INIT, o = BUF_INIT;
	struct pgp *p = confined(30000);
	struct cp_error err;
	struct pgp_sig sig;
	char path[128], arg[128];

	snprintf(arg, sizeof(arg), "--sign --encrypt --recipient %s", fx.g.clinic);
	patient_sends("never in-process\n", arg, &ct);
	snprintf(path, sizeof(path), "%s/dead-helper", fx.g.dir);
	assert_int_equal(cp_write_file_atomic(path, script, sizeof(script) - 1, 0755), 0);
	assert_int_equal(pgphelper_enable(path), 0);
	assert_string_equal(pgphelper_exe(), path);
	cp_error_clear(&err);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o, &sig, &err),
			 -EHOSTDOWN);
	assert_non_null(strstr(err.text, "gpg helper unavailable"));
	assert_int_equal(o.len, 0);
	assert_int_equal(pgp_verify_detached(p, "a", 1, "b", 1, &sig, &err), -EHOSTDOWN);
	assert_int_equal(chmod(path, 0644), 0);
	cp_error_clear(&err);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o, &sig, &err),
			 -EHOSTDOWN);
	/* "cannot start", or (under valgrind, whose posix_spawn forks) the
	 * child's exec failing: "exited" */
	assert_non_null(strstr(err.text, "gpg helper unavailable"));
	assert_int_equal(o.len, 0);
	assert_int_equal(pgphelper_enable("/nonexistent-cph/helper"), -ENOENT);
	assert_int_equal(pgphelper_enable(NULL), 0);
	assert_int_equal(pgp_decrypt_signed_by(p, ct.data, ct.len, &o, &sig, &err), 0);
	assert_string_equal(o.data, "never in-process\n");
	pgp_free(p);
	buf_free(&ct);
	buf_free(&o);
}

/* Run before pgphelper_enable (carepostctl and carepostd call it). */
static void
offload_does_nothing_in_a_program_that_did_not_enable_it(void **state)
{
	struct pgphelper *h = (struct pgphelper *)1;
	struct cp_error err;
	struct pgp *p = NULL;

	assert_false(pgphelper_enabled());
	assert_int_equal(pgp_new("/nonexistent-cph", NULL, &p, &err), 0);
	assert_int_equal(pgp_offload(p, &err), 0);
	assert_int_equal(pgp_helper_pid(p), 0);
	pgp_free(p);
	assert_int_equal(pgphelper_start(NULL, NULL, &h, &err), -ENOSYS);
	assert_null(h);
}

/* ... and confinement never falls back to in-process: -EHOSTDOWN. */
static void
confined_context_in_a_program_that_did_not_enable_helpers_runs_nothing(void **state)
{
	struct buf o = BUF_INIT;
	struct cp_error err;
	struct pgp_sig sig;
	struct pgp *p = NULL;

	assert_false(pgphelper_enabled());
	assert_int_equal(pgp_new("/nonexistent-cph", NULL, &p, &err), 0);
	pgp_confine(p, 1000);
	cp_error_clear(&err);
	/* in-process, gpg would say -EBADMSG */
	assert_int_equal(pgp_decrypt_signed_by(p, "junk", 4, &o, &sig, &err), -EHOSTDOWN);
	assert_non_null(strstr(err.text, "not decrypted in-process"));
	assert_int_equal(pgp_verify_detached(p, "a", 1, "b", 1, &sig, &err), -EHOSTDOWN);
	assert_int_equal(pgp_decrypt_ahead(p, "junk", 4, 0), 0);
	assert_int_equal(pgp_helper_pid(p), 0);
	pgp_free(p);
}

/* The helper program: a named one beside this binary, else this one. */
static void
enable_prefers_the_named_program_beside_the_binary(void **state)
{
	char want[4200];
	const char *slash = strrchr(fx.self, '/');

	assert_non_null(slash);
	assert_int_equal(pgphelper_enable(NULL), 0);
	assert_string_equal(pgphelper_exe(), fx.self);
	/* a sibling that exists (another test program) is taken */
	snprintf(want, sizeof(want), "%.*s/test_buf", (int)(slash - fx.self), fx.self);
	assert_int_equal(pgphelper_enable("test_buf"), 0);
	assert_string_equal(pgphelper_exe(), want);
	/* one that does not (and is not installed): this binary */
	assert_int_equal(pgphelper_enable("no-such-carepost-helper"), 0);
	assert_string_equal(pgphelper_exe(), fx.self);
	assert_int_equal(pgphelper_enable(NULL), 0);
}

/* ---- the protocol ---- */

static void
frame_parse_refuses_malformed_frames(void **state)
{
	struct helper_frame f;
	unsigned char b[64];
	uint32_t u;
	int32_t tag = 2;

	memset(b, 0, sizeof(b));
	assert_int_equal(helper_frame_parse(b, 0, &f), -EBADMSG);
	assert_int_equal(helper_frame_parse(b, 7, &f), -EBADMSG);
	/* tag 2, no fields: exactly 8 bytes */
	memcpy(b, &tag, 4);
	assert_int_equal(helper_frame_parse(b, 8, &f), 0);
	assert_int_equal(f.tag, 2);
	assert_int_equal(f.n, 0);
	assert_int_equal(helper_frame_parse(b, 9, &f), -EBADMSG);	/* trailing */
	/* too many fields */
	u = HELPER_MAX_FIELDS + 1;
	memcpy(b + 4, &u, 4);
	assert_int_equal(helper_frame_parse(b, 64, &f), -EBADMSG);
	/* one field of 3 bytes */
	u = 1;
	memcpy(b + 4, &u, 4);
	u = 3;
	memcpy(b + 8, &u, 4);
	memcpy(b + 12, "abc", 3);
	assert_int_equal(helper_frame_parse(b, 15, &f), 0);
	assert_int_equal(f.len[0], 3);
	assert_memory_equal(f.field[0], "abc", 3);
	assert_int_equal(helper_frame_parse(b, 14, &f), -EBADMSG);	/* short */
	assert_int_equal(helper_frame_parse(b, 11, &f), -EBADMSG);	/* no length */
	/* a field length past the end, and one that would wrap */
	u = 0xfffffff0u;
	memcpy(b + 8, &u, 4);
	assert_int_equal(helper_frame_parse(b, 15, &f), -EBADMSG);
	assert_int_equal(helper_frame_parse(b, HELPER_MAX_FRAME + 1, &f), -EBADMSG);
}

static void
helper_exits_on_a_malformed_request_without_answering(void **state)
{
	static const unsigned char short_frame[] = { 4, 0, 0, 0, 1, 2, 3, 4 };
	struct buf b = BUF_INIT, got = BUF_INIT;
	uint32_t huge = HELPER_MAX_FRAME + 1;
	char home[128];
	int fd;
	pid_t pid;

	/* a frame shorter than its header */
	pid = helper_by_hand(&fd);
	assert_int_equal(write(fd, short_frame, sizeof(short_frame)), sizeof(short_frame));
	assert_int_equal(drain(fd, &got), 0);
	assert_int_equal(exit_status(pid), EX_PROTOCOL);
	close(fd);

	/* a length over the limit */
	pid = helper_by_hand(&fd);
	assert_int_equal(write(fd, &huge, 4), 4);
	assert_int_equal(drain(fd, &got), 0);
	assert_int_equal(exit_status(pid), EX_PROTOCOL);
	close(fd);

	/* anything but OPEN first */
	pid = helper_by_hand(&fd);
	frame(&b, 2, 0);
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	assert_int_equal(drain(fd, &got), 0);
	assert_int_equal(exit_status(pid), EX_PROTOCOL);
	close(fd);

	/* OPEN, then an unknown operation: one answer, then the end */
	pid = helper_by_hand(&fd);
	buf_reset(&b);
	snprintf(home, sizeof(home), "%s", fx.g.clinic_home);
	frame(&b, 1, 3, CAREPOST_VERSION, home, "");
	frame(&b, 99, 0);
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	assert_int_equal(drain(fd, &got), 4 + 8 + 4);	/* rc 0, "" */
	assert_int_equal(exit_status(pid), EX_PROTOCOL);
	close(fd);
	buf_free(&b);
	buf_free(&got);
}

static void
helper_refuses_another_version_and_ends_at_close(void **state)
{
	struct buf b = BUF_INIT, got = BUF_INIT;
	struct helper_frame f;
	int fd;
	pid_t pid;

	pid = helper_by_hand(&fd);
	frame(&b, 1, 3, "0.0.0-other", fx.g.clinic_home, "");
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	assert_true(drain(fd, &got) > 12);
	assert_int_equal(helper_frame_parse(got.data + 4, got.len - 4, &f), 0);
	assert_int_equal(f.tag, -EPROTO);
	assert_int_equal(f.n, 1);
	assert_non_null(memmem(f.field[0], f.len[0], "0.0.0-other", 11));
	assert_true(exit_status(pid) != 0);
	close(fd);

	/* a good OPEN, then the caller closes: a clean exit */
	pid = helper_by_hand(&fd);
	buf_reset(&b);
	frame(&b, 1, 3, CAREPOST_VERSION, fx.g.clinic_home, fx.g.clinic);
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	shutdown(fd, SHUT_WR);
	buf_reset(&got);
	assert_int_equal(drain(fd, &got), 4 + 8 + 4);
	assert_int_equal(exit_status(pid), 0);
	close(fd);
	buf_free(&b);
	buf_free(&got);
}

static void
helper_mode_without_its_socket_is_a_usage_error(void **state)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "exec 3<&-; '%s' --pgp-helper 2>/dev/null", fx.self);
	assert_int_equal(WEXITSTATUS(system(cmd)), EX_USAGE);
	snprintf(cmd, sizeof(cmd), "exec 3</dev/null; '%s' --pgp-helper 2>/dev/null",
		 fx.self);
	assert_int_equal(WEXITSTATUS(system(cmd)), EX_USAGE);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(offloaded_mime_encrypt_is_signed_and_readable_by_the_patient),
		cmocka_unit_test(offloaded_errors_have_the_in_process_code_and_text),
		cmocka_unit_test(offloaded_decrypt_and_verify_match_in_process),
		cmocka_unit_test(offloaded_decrypt_across_an_agent_outage),
		cmocka_unit_test(decrypt_ahead_gives_the_same_results_and_unused_guesses_are_harmless),
		cmocka_unit_test(killed_helper_means_the_next_operation_runs_in_process),
		cmocka_unit_test(helper_that_cannot_open_is_lost_at_the_first_operation),
		cmocka_unit_test(helper_ignores_sigterm_and_ends_when_its_caller_closes),
		cmocka_unit_test(confined_decryption_over_the_output_limit_kills_the_helpers_process_group),
		cmocka_unit_test(confined_operation_over_its_time_limit_is_stopped),
		cmocka_unit_test(unused_bomb_sent_ahead_stops_the_helper_not_the_next_call),
		cmocka_unit_test(confined_calls_on_a_stopped_agent_run_out_of_time_not_for_ever),
		cmocka_unit_test(freeing_a_confined_context_leaves_no_gpg_running),
		cmocka_unit_test(confined_context_without_a_working_helper_never_decrypts_in_process),
		cmocka_unit_test(enable_prefers_the_named_program_beside_the_binary),
		cmocka_unit_test(frame_parse_refuses_malformed_frames),
		cmocka_unit_test(helper_exits_on_a_malformed_request_without_answering),
		cmocka_unit_test(helper_refuses_another_version_and_ends_at_close),
		cmocka_unit_test(helper_mode_without_its_socket_is_a_usage_error),
	};
	const struct CMUnitTest before_enable[] = {
		cmocka_unit_test(offload_does_nothing_in_a_program_that_did_not_enable_it),
		cmocka_unit_test(confined_context_in_a_program_that_did_not_enable_helpers_runs_nothing),
	};
	int rc = pgpserve_main(argc, argv);

	if (rc >= 0)
		return rc;
	if (system("gpg --version >/dev/null 2>&1") != 0) {
		printf("SKIP: gpg not found\n");
		return 77;
	}
	if (pgp_global_init() < 0)
		return 1;
	rc = cmocka_run_group_tests(before_enable, NULL, NULL);
	if (pgphelper_enable(NULL) < 0) {
		printf("SKIP: /proc/self/exe unreadable\n");
		return 77;
	}
	return rc | cmocka_run_group_tests(tests, group_setup, group_teardown);
}
