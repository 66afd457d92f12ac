/*
 * NAME
 *	parseserve - the parse helper's side of lib/parsehelper: the fork
 *	server and its children
 * DESCRIPTION
 *	See parsehelper.h (parsehelper_main). Charset converters loaded,
 *	root dropped, descriptors closed, confined; then a child per
 *	request, each behind a narrower filter. Nothing here logs: behind
 *	the wall there is nowhere to log to, and the helper links neither
 *	the journal nor libgcrypt.
 */
#include "parsehelper.h"

#include <grp.h>
#include <iconv.h>
#include <libetpan/charconv.h>
#include <sysexits.h>

#include "buf.h"
#include "helper.h"
#include "inmsgwire.h"
#include "sandbox.h"

/*
 * Converters glibc's iconv loads from files (gconv modules): loaded before
 * the wall goes up, and kept open so that glibc never unloads them. A
 * charset not here cannot be loaded inside (open fails with EPERM): inmsg
 * then reads the bytes as UTF-8 or ISO-8859-1, as for an unknown charset.
 *
 * Each module is several mappings, and a child's fork and exit cost
 * grows with the mappings its server holds (dup_mmap, exit_mmap): with
 * every converter, most of a child's cost. So the usual server is lean:
 * glibc's built-in converters (UTF-8, ASCII, UCS-2, UCS-4) and the first
 * LEAN below; a child of it that meets any other charset answers
 * PARSEHELPER_ANSWER_ALL_CHARSETS, and the caller asks the same of the
 * server started with PARSEHELPER_FLAG_ALL_CHARSETS, which loads them all.
 */
#define LEAN	3
static const char *const preload[] = {
	"ISO-8859-1", "WINDOWS-1252", "ISO-8859-15", "ISO-8859-2", "ISO-8859-3", "ISO-8859-4", "ISO-8859-5",
	"ISO-8859-6", "ISO-8859-7", "ISO-8859-8", "ISO-8859-9", "ISO-8859-10",
	"ISO-8859-13", "ISO-8859-14", "ISO-8859-16",
	"WINDOWS-1250", "WINDOWS-1251", "WINDOWS-1253",
	"WINDOWS-1254", "WINDOWS-1255", "WINDOWS-1256", "WINDOWS-1257",
	"WINDOWS-1258", "KOI8-R", "KOI8-U", "IBM850", "IBM852", "IBM866",
	"MACINTOSH", "TIS-620", "UTF-16", "UTF-16LE", "UTF-16BE", "UTF-32",
	"UTF-7", "UCS-2", "GB18030", "GBK", "BIG5", "BIG5-HKSCS", "EUC-JP",
	"SHIFT_JIS", "CP932", "ISO-2022-JP", "EUC-KR", "CP949", "ISO-2022-KR",
	"EUC-TW", "ISO-2022-CN", "VISCII",
};

static iconv_t kept[CP_ARRAY_SIZE(preload)];	/* never closed */
static int all_charsets;	/* this server loaded every converter */
static struct sandbox_narrowing narrowing;	/* each child's filter */
static int wants_all;		/* this lean child met a charset it lacks */

static void
load_converters(void)
{
	size_t n = all_charsets ? CP_ARRAY_SIZE(preload) : LEAN;

	for (size_t i = 0; i < n; i++)
		kept[i] = iconv_open("UTF-8", preload[i]);
}

/*
 * wall_charconv - libetpan's conversion hook (extended_charconv) behind
 * the wall: iconv as libetpan's own path converts (an invalid sequence
 * becomes '?', the output stops where the input or the room ends), so
 * that both servers answer as an in-process parse would. A charset iconv
 * cannot open here (its converter not loaded, or no such charset) is
 * unknown, as it is to libetpan; in a lean server's child it also marks
 * the message for the server with every converter.
 */
static int
wall_charconv(const char *tocode, const char *fromcode, const char *str,
	      size_t length, char *result, size_t *result_len)
{
	iconv_t cd = iconv_open(tocode, fromcode);
	char *in = (char *)str, *out = result;
	size_t inleft = length, outleft = *result_len;

	if (cd == (iconv_t)-1) {
		if (!all_charsets)
			wants_all = 1;
		return MAIL_CHARCONV_ERROR_UNKNOWN_CHARSET;
	}
	while (iconv(cd, &in, &inleft, &out, &outleft) == (size_t)-1 &&
	       inleft > 0 && outleft > 0 && errno == EILSEQ) {
		*out++ = '?';
		outleft--;
		in++;
		inleft--;
	}
	iconv_close(cd);
	*result_len = (size_t)(out - result);
	return MAIL_CHARCONV_NO_ERROR;
}

/* answer - tag rc, the flags, then the wire or the error's text. */
static int
answer(struct buf *scratch, int rc, uint32_t flags, const char *text,
       const struct buf *wire)
{
	struct helper_field f[2] = {
		{ &flags, sizeof(flags) },
		{ "", 0 },
	};

	if (rc < 0) {
		f[1].data = text;
		f[1].len = strlen(text);
	} else {
		f[1].data = wire->data ? wire->data : "";
		f[1].len = wire->len;
	}
	return helper_frame_send(HELPER_FD, scratch, rc < 0 ? rc : 0, f, 2);
}

/* serve_one - run request f: its code (the parser's), result in wire. */
static int
serve_one(const struct helper_frame *f, struct buf *wire, struct cp_error *e)
{
	struct inmsg_limits lim;
	_cleanup_inmsg_ struct inmsg *m = NULL;
	int r;

	if (f->n < 2 || inmsgwire_limits_decode(f->field[0], f->len[0], &lim) < 0)
		return -EPROTO;
	switch (f->tag) {
	case PARSEHELPER_OP_PARSE:
		if (f->n != 2)
			return -EPROTO;
		r = inmsg_parse(f->field[1], f->len[1], &lim, &m, e);
		break;
	case PARSEHELPER_OP_REPARSE_INNER:
		if (f->n != 3)
			return -EPROTO;
		r = inmsgwire_decode(f->field[1], f->len[1], &lim, &m, e);
		if (r < 0)
			return -EPROTO;
		r = inmsg_reparse_inner(m, f->field[2], f->len[2], e);
		break;
	default:
		return -EPROTO;
	}
	if (r == 0)
		r = inmsgwire_encode(m, wire);
	if (r < 0 && e->text[0] == '\0')
		cp_error_set(e, r, "%s", strerror(-r));
	return r;
}

/*
 * drop_root - a helper started by root (carepostctl ingest run by hand)
 * parses as nobody: uid and gid 65534, no supplementary groups (fixed
 * numbers: no name service behind an empty environment). 0, or -errno.
 */
static int
drop_root(struct cp_error *e)
{
	const uid_t nobody = 65534;
	const gid_t nogroup = 65534;

	if (geteuid() != 0 && getuid() != 0)
		return 0;
	if (setgroups(0, NULL) < 0 || setresgid(nogroup, nogroup, nogroup) < 0 ||
	    setresuid(nobody, nobody, nobody) < 0)
		return cp_error_set(e, -errno, "cannot drop root: %s", strerror(errno));
	if (geteuid() == 0 || getuid() == 0)
		return cp_error_set(e, -EPERM, "cannot drop root");
	return 0;
}

/*
 * confine - the fork server: nothing open but its socket (and, in
 * sanitizer builds, stderr for their reports), then the wall, with what
 * a fork server needs (sandbox.h); each child narrows it (child_main).
 */
static int
confine(struct cp_error *e)
{
	struct sandbox_rules rules = SANDBOX_RULES_INIT;
	int r;

	struct sandbox_rules child = SANDBOX_RULES_INIT;

	load_converters();
	extended_charconv = wall_charconv;
	if ((r = drop_root(e)) < 0)
		return r;
	/* Each child's filter, compiled once here, not by every child. */
	child.fd = HELPER_FD;
#ifdef CP_SANITIZER
	child.log_fd = STDERR_FILENO;
#endif
	child.cpu_seconds = PARSEHELPER_CPU_CAP;
	if ((r = sandbox_narrowing_prepare(&child, &narrowing, e)) < 0)
		return r;
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
#ifdef CP_SANITIZER
	/* Sanitizer builds (tests only): stderr stays open and writable for
	 * their reports, and the helper got the caller's environment (its
	 * *SAN_OPTIONS). Fine for tests; never a production build. */
	rules.log_fd = STDERR_FILENO;
#else
	close(STDERR_FILENO);
#endif
	rules.fd = HELPER_FD;
	rules.memory_max = PARSEHELPER_MEMORY_MAX;
	rules.fork_server = 1;
	return sandbox_enter(&rules, e);
}

/*
 * child_main - one child of the server: its own narrower filter (no
 * fork, no descriptors received, its CPU cap, signals to itself only),
 * its first word (the version and its pid), one request, one answer;
 * then it ends. Its exit code.
 */
static int
child_main(void *arg)
{
	_cleanup_buf_ struct buf in = BUF_INIT, scratch = BUF_INIT, wire = BUF_INIT;
	struct helper_frame f;
	struct cp_error e;
	int32_t pid = (int32_t)getpid();
	int r;

	(void)arg;
	cp_error_clear(&e);
	if (sandbox_narrow(&narrowing, &e) < 0) {
		struct helper_field why = { e.text, strlen(e.text) };

		helper_frame_send(HELPER_FD, &scratch, -EPERM, &why, 1);
		return EX_OSERR;
	}
	{
		struct helper_field ready[2] = {
			{ CAREPOST_VERSION, strlen(CAREPOST_VERSION) },
			{ &pid, sizeof(pid) },
		};

		if (helper_frame_send(HELPER_FD, &scratch, 0, ready, 2) < 0)
			return 0;
	}
	r = helper_frame_recv(HELPER_FD, &in, &f, 0, 0);
	if (r == 0) {
		cp_error_clear(&e);
		r = serve_one(&f, &wire, &e);
		if (r != -EPROTO && wants_all) {
			/* What it made of the message is not the answer. */
			buf_reset(&wire);
			if (answer(&scratch, 0, PARSEHELPER_ANSWER_ALL_CHARSETS,
				   "", &wire) == 0)
				r = -ENODATA;
		} else if (r != -EPROTO && answer(&scratch, r, 0, e.text, &wire) == 0)
			r = -ENODATA;
	}
	return r == -ENODATA ? 0 : EX_PROTOCOL;
}

int
parsehelper_main(int argc, char **argv)
{
	struct buf scratch = BUF_INIT;
	struct cp_error e;
	int r;

	if (argc != 2 || (strcmp(argv[1], PARSEHELPER_FLAG) != 0 &&
			  strcmp(argv[1], PARSEHELPER_FLAG_ALL_CHARSETS) != 0))
		return -1;
	all_charsets = strcmp(argv[1], PARSEHELPER_FLAG_ALL_CHARSETS) == 0;
	r = helper_serve_begin(argv[1]);
	if (r != 0)
		return r;
	cp_error_clear(&e);
	if (confine(&e) < 0) {
		struct helper_field why = { e.text, strlen(e.text) };

		helper_frame_send(HELPER_FD, &scratch, -EPERM, &why, 1);
		_exit(EX_OSERR);
	}
	{
		struct helper_field ready = { CAREPOST_VERSION, strlen(CAREPOST_VERSION) };

		if (helper_frame_send(HELPER_FD, &scratch, 0, &ready, 1) < 0)
			_exit(0);
	}
	buf_free(&scratch);
	/* A child per message: what a message does to its child never
	 * reaches the server, nor the next message. Behind the wall, no
	 * exit handlers (a sanitizer's leak check would need calls the
	 * filter forbids). */
	_exit(helper_fork_server(child_main, NULL, PARSEHELPER_LINGER_MS));
}
