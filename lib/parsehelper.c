/*
 * NAME
 *	parsehelper - inmsg_parse behind a wall: a confined helper process
 * DESCRIPTION
 *	See parsehelper.h. The caller's side: start, ask, lose, try again.
 *	The helper's side (parsehelper_main) is lib/parseserve.c, so that
 *	carepost-parse links none of this file's logging.
 */
#include "parsehelper.h"

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>

#include "buf.h"
#include "helper.h"
#include "inmsgwire.h"
#include "log.h"

#define READY_MS	10000u	/* for a new helper's first word */
#define ASK_ALL_CHARSETS 1	/* receive_answer: ask the other helper */

/* A child of the server, as the caller holds it. */
struct kid {
	int fd;			/* its connection; -1: none */
	pid_t pid;		/* as its first word said; 0 before */
	uint32_t seq;		/* the connection's number at its server */
	unsigned gen;		/* that server's */
};

#define KID_NONE	((struct kid){ -1, 0, 0, 0 })
#define ENDS		16	/* reports of ends read ahead, kept */

struct parsehelper {
	int ctl;		/* the fork server's socket; -1: none runs */
	pid_t server;
	unsigned gen;		/* servers ended so far: a kid of an older one is gone */
	uint32_t seq;		/* connections handed to this server */
	struct kid cur;		/* the child asked now */
	struct kid next;	/* a child started ahead for the next request */
	/* requests sent ahead (parsehelper_parse_ahead), oldest first */
	struct early {
		struct buf frame;	/* the request, as sent */
		struct kid k;		/* the child asked */
		struct inmsg *m;	/* its answer, once peeked at */
	} early[PARSEHELPER_EARLY];
	size_t n_early;
	/* how children ended, as the server reported (connection, status) */
	struct { uint32_t seq; int32_t status; } ends[ENDS];
	size_t n_ends;
	long last_pid;		/* the child asked last (tests) */
	unsigned time_limit_ms;
	unsigned budget_ms;	/* of the message in hand; 0: none */
	int64_t budget_left;	/* ms of it not yet spent in tries */
	int over_budget;	/* the last deadline was the budget's */
	parsehelper_progress_fn progress;
	void *progress_userdata;
	unsigned long lost;	/* children lost (tests, metrics) */
	int filter_killed;	/* the last lost one died of SIGSYS */
	struct buf in;		/* the last answer */
	struct buf ctlin;	/* the last word of the server */
	struct buf scratch;	/* the last request */
	int all_charsets;	/* its server loads every converter */
	struct parsehelper *all; /* that helper, for what this one cannot
				  * convert (started when first needed) */
};

static char helper_exe[PATH_MAX];

static int new_helper(unsigned time_limit_ms, int all_charsets,
		      struct parsehelper **out, struct cp_error *err);

int
parsehelper_enable(const char *name)
{
	return helper_find(name, helper_exe, sizeof(helper_exe));
}

const char *
parsehelper_exe(void)
{
	return helper_exe;
}

int
parsehelper_new(unsigned time_limit_ms, struct parsehelper **out,
		struct cp_error *err)
{
	return new_helper(time_limit_ms, 0, out, err);
}

/* new_helper - parsehelper_new's, its server lean or with every converter. */
static int
new_helper(unsigned time_limit_ms, int all_charsets, struct parsehelper **out,
	   struct cp_error *err)
{
	struct parsehelper *ph;

	*out = NULL;
	if (helper_exe[0] == '\0')
		return cp_error_set(err, -ENOSYS, "parse helper: not enabled");
	ph = calloc(1, sizeof(*ph));
	if (ph == NULL)
		return cp_error_set(err, -ENOMEM, "parse helper: out of memory");
	ph->ctl = -1;
	ph->cur = KID_NONE;
	ph->next = KID_NONE;
	ph->time_limit_ms = time_limit_ms ? time_limit_ms : PARSEHELPER_TIME_LIMIT_MS;
	ph->all_charsets = all_charsets;
	*out = ph;
	return 0;
}

/* drop - close *fd when open. */
static void
drop(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * kid_done - the caller is done with k: its connection closed, and its
 * server told, which ends it if it is still there PARSEHELPER_LINGER_MS later (one a
 * message took over may stay to burn CPU).
 */
static void
kid_done(struct parsehelper *ph, struct kid *k)
{
	drop(&k->fd);
	if (k->seq != 0 && k->gen == ph->gen && ph->ctl >= 0)
		helper_child_done(ph->ctl, k->seq);
	*k = KID_NONE;
}

/*
 * server_down - end the fork server and every child of it (one process
 * group: helper_reap kills it whole); the children held are gone with it
 * (gen: a kid of an older server is not asked for).
 */
static void
server_down(struct parsehelper *ph)
{
	helper_reap(&ph->server, &ph->ctl);
	drop(&ph->next.fd);
	ph->next = KID_NONE;
	ph->gen++;
	ph->seq = 0;
	ph->n_ends = 0;
}

void
parsehelper_free(struct parsehelper *ph)
{
	if (ph == NULL)
		return;
	drop(&ph->cur.fd);
	parsehelper_ahead_drop(ph);
	server_down(ph);
	buf_free(&ph->in);
	buf_free(&ph->ctlin);
	buf_free(&ph->scratch);
	parsehelper_free(ph->all);
	free(ph);
}

long
parsehelper_last_pid(const struct parsehelper *ph)
{
	return ph ? ph->last_pid : -1;
}

long
parsehelper_server_pid(const struct parsehelper *ph)
{
	return ph ? (long)ph->server : -1;
}

void
parsehelper_budget(struct parsehelper *ph, unsigned ms)
{
	ph->budget_ms = ms;
	ph->budget_left = ms;
}

void
parsehelper_progress(struct parsehelper *ph, parsehelper_progress_fn fn,
		     void *userdata)
{
	ph->progress = fn;
	ph->progress_userdata = userdata;
}

unsigned long
parsehelper_lost(const struct parsehelper *ph)
{
	return ph ? ph->lost + parsehelper_lost(ph->all) : 0;
}

/* status_text - how a helper ended, from its wait status. */
static const char *
status_text(int status, char *buf, size_t len)
{
	if (status != -1 && WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else if (status != -1 && WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(buf, len, "gone");
	return buf;
}

/*
 * read_end - one report of the server into ph->ends, read by deadline
 * (cp_mono_ms): 0, or -1 when none came or it is malformed, and the
 * server is then ended (it is wedged, gone, or talks nonsense).
 */
static int
read_end(struct parsehelper *ph, int64_t deadline)
{
	struct helper_frame f;

	if (ph->ctl < 0 ||
	    helper_frame_recv(ph->ctl, &ph->ctlin, &f, deadline, 64) < 0 ||
	    f.tag != 0 || f.n != 2 || f.len[0] != 4 || f.len[1] != 4) {
		server_down(ph);
		return -1;
	}
	if (ph->n_ends == ENDS) {	/* the oldest, never asked for */
		ph->n_ends--;
		memmove(ph->ends, ph->ends + 1, ph->n_ends * sizeof(ph->ends[0]));
	}
	memcpy(&ph->ends[ph->n_ends].seq, f.field[0], 4);
	memcpy(&ph->ends[ph->n_ends].status, f.field[1], 4);
	ph->n_ends++;
	return 0;
}

/* drain - read every report the server has written: it never waits for
 * the caller, and one not read would be lost. */
static void
drain(struct parsehelper *ph)
{
	while (ph->ctl >= 0) {
		struct pollfd p = { .fd = ph->ctl, .events = POLLIN };

		if (poll(&p, 1, 0) <= 0 || read_end(ph, helper_deadline(1000)) < 0)
			return;
	}
}

/*
 * end_status - the wait status of child k, whose socket closed, as its
 * server reports it (every end, by connection number), within a second.
 * -1 when none comes (the server is then ended) or k's server was ended
 * meanwhile.
 */
static int
end_status(struct parsehelper *ph, const struct kid *k)
{
	int64_t deadline = helper_deadline(1000);

	if (k->gen != ph->gen)
		return -1;
	drain(ph);
	for (;;) {
		for (size_t i = 0; i < ph->n_ends; i++) {
			int32_t status = ph->ends[i].status;

			if (ph->ends[i].seq != k->seq)
				continue;
			ph->n_ends--;
			memmove(ph->ends + i, ph->ends + i + 1,
				(ph->n_ends - i) * sizeof(ph->ends[0]));
			return status;
		}
		if (read_end(ph, deadline) < 0)
			return -1;
	}
}

/*
 * lose - end the child after a failed exchange r (frame_recv's code, or
 * -EBADMSG for an answer not believed): PARSEHELPER_LOST, why in err.
 * A child that died on its own is as its server reports it, so that its
 * wait status says how it died; one still running (late, or talking
 * nonsense) is killed with its server and whatever else the server ran
 * (the next request starts a new one).
 */
static int
lose(struct parsehelper *ph, int r, const char *why, struct cp_error *err)
{
	char how[64], limit[32];
	long pid = ph->last_pid;
	int status = -1;

	drop(&ph->cur.fd);
	if (r == -ENODATA || r == -EPIPE || r == -ECONNRESET) {
		/* The socket closed: the child is gone. Its server says
		 * how. */
		status = end_status(ph, &ph->cur);
		status_text(status, how, sizeof(how));
		if (status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
			/* Its filter killed it: it tried a call parsing never
			 * makes. Likely an exploit of the parser: said once,
			 * without anything of the message, and not retried. */
			ph->filter_killed = 1;
			snprintf(how, sizeof(how), "killed by its seccomp filter "
				 "(SIGSYS): a forbidden system call");
			log_event(LOG_ERR, LOGID_SECURITY, NULL, NULL,
				  "security: parse helper %ld killed by its seccomp "
				  "filter (a forbidden system call, likely an exploit "
				  "of the parser); the message is quarantined, not "
				  "parsed again", pid);
		}
	} else {
		if (r == -ETIMEDOUT && ph->over_budget) {
			snprintf(how, sizeof(how), "ran over the message's %u ms "
				 "parse budget", ph->budget_ms);
		} else if (r == -ETIMEDOUT) {
			if (ph->time_limit_ms % 1000 == 0)
				snprintf(limit, sizeof(limit), "%u s", ph->time_limit_ms / 1000);
			else
				snprintf(limit, sizeof(limit), "%u ms", ph->time_limit_ms);
			snprintf(how, sizeof(how), "ran over its %s time limit", limit);
		} else {
			snprintf(how, sizeof(how), "%s", why ? why : strerror(-r));
		}
	}
	/* One still there (late, or talking nonsense) is its server's to
	 * end, within PARSEHELPER_LINGER_MS. */
	kid_done(ph, &ph->cur);
	ph->lost++;
	log_warning("parse helper %ld lost: %s", pid, how);
	return cp_error_set(err, PARSEHELPER_LOST, "%s", how);
}

/* spawn - a new fork server into *pid, *fd, not waited for. */
static int
spawn(int all_charsets, pid_t *pid, int *fd, struct cp_error *err)
{
	/* No environment. */
	static char *const envp_none[] = { NULL };
	char *const *envp = envp_none;

#ifdef CP_SANITIZER
	/* Sanitizer builds (tests only): the whole environment, for the
	 * *SAN_OPTIONS of the tests; and stderr stays open (confine). */
	envp = NULL;
#endif
	return helper_spawn(helper_exe, "carepost-parse", all_charsets ?
			    PARSEHELPER_FLAG_ALL_CHARSETS : PARSEHELPER_FLAG,
			    (char *const *)envp, pid, fd, err);
}

/*
 * first_word - the first frame on fd, within READY_MS: tag 0 and this
 * build's version (then, from a child, its pid into *pid). 0, or
 * -EHOSTDOWN with why in text.
 */
static int
first_word(struct buf *in, int fd, pid_t *pid, char *text, size_t len)
{
	struct helper_frame f;
	uint32_t want = pid != NULL ? 2 : 1;
	int r;

	r = helper_frame_recv(fd, in, &f, helper_deadline(READY_MS), 4096);
	if (r == 0 && f.tag == 0 && f.n == want &&
	    strcmp(helper_field_str(&f, 0, text, len), CAREPOST_VERSION) == 0) {
		int32_t p;

		if (pid == NULL)
			return 0;
		if (f.len[1] == sizeof(p)) {
			memcpy(&p, f.field[1], sizeof(p));
			if (p > 0) {
				*pid = (pid_t)p;
				return 0;
			}
		}
		snprintf(text, len, "no pid in its first word");
	} else if (r == 0 && f.tag < 0 && f.n == 1) {
		helper_field_str(&f, 0, text, len);
	} else if (r == 0) {
		snprintf(text, len, "another version");
	} else {
		snprintf(text, len, "no word from it: %s",
			 r == -ENODATA || r == -EPIPE ? "it exited" : strerror(-r));
	}
	return -EHOSTDOWN;
}

/*
 * server_up - the fork server running and confined: 0, or -EHOSTDOWN
 * when none can be started or it did not confine itself (not the
 * message's fault).
 */
static int
server_up(struct parsehelper *ph, struct cp_error *err)
{
	char text[sizeof(err->text)];

	if (ph->server > 0)
		return 0;
	if (spawn(ph->all_charsets, &ph->server, &ph->ctl, err) < 0) {
		snprintf(text, sizeof(text), "%s", err->text);
		return cp_error_set(err, -EHOSTDOWN, "parse helper: %s", text);
	}
	if (first_word(&ph->ctlin, ph->ctl, NULL, text, sizeof(text)) == 0)
		return 0;
	server_down(ph);
	return cp_error_set(err, -EHOSTDOWN, "parse helper %s: %s", helper_exe, text);
}

/*
 * child_new - a connection to a new child of the server into *k (its
 * first word not yet read): one end of a socket pair is handed to the
 * server, which forks a child for it. A server found gone is started
 * again once.
 */
static int
child_new(struct parsehelper *ph, struct kid *k, struct cp_error *err)
{
	int sv[2], r = -EPIPE;

	*k = KID_NONE;
	for (int i = 0; i < 2 && r < 0; i++) {
		if (i > 0)
			server_down(ph);
		r = server_up(ph, err);
		if (r < 0)
			return r;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return cp_error_set(err, -EHOSTDOWN, "parse helper: "
					    "socketpair: %s", strerror(errno));
		r = helper_fd_send(ph->ctl, sv[1], helper_deadline(1000));
		close(sv[1]);
		if (r < 0) {
			close(sv[0]);
			continue;
		}
		*k = (struct kid){ sv[0], 0, ++ph->seq, ph->gen };
	}
	if (r < 0)
		return cp_error_set(err, -EHOSTDOWN, "parse helper: its server "
				    "takes no connection: %s", strerror(-r));
	return 0;
}

/* waiting - a child that said its first word waits: it has neither
 * ended nor said more. */
static int
waiting(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

/*
 * ready - k said its first word (read now when not yet) and waits: 1;
 * else 0 with why in text.
 */
static int
ready(struct parsehelper *ph, struct kid *k, char *text, size_t len)
{
	if (k->gen != ph->gen) {
		snprintf(text, len, "its server was ended");
		return 0;
	}
	if (k->pid == 0 && first_word(&ph->in, k->fd, &k->pid, text, len) < 0) {
		k->pid = 0;
		return 0;
	}
	if (!waiting(k->fd)) {
		snprintf(text, len, "it ended while it waited");
		return 0;
	}
	return 1;
}

/*
 * take - a confined child for one request into ph->cur: the one started
 * ahead when it came up and still waits, else a new one. 0, or
 * -EHOSTDOWN when none can be started or it did not confine itself (not
 * the message's fault; the server is ended: the next request starts a
 * new one).
 */
static int
take(struct parsehelper *ph, struct cp_error *err)
{
	char text[sizeof(err->text)];
	struct kid k = ph->next;

	drain(ph);
	ph->next = KID_NONE;
	if (k.fd >= 0) {
		if (ready(ph, &k, text, sizeof(text))) {
			ph->cur = k;
			ph->last_pid = (long)k.pid;
			return 0;
		}
		/* Killed while it waited, or it failed: a fresh one. One
		 * whose server was ended with a lost child is no loss. */
		if (k.gen == ph->gen) {
			ph->lost++;
			log_warning("parse helper started ahead lost: %s", text);
		}
		kid_done(ph, &k);
	}
	if (child_new(ph, &ph->cur, err) < 0)
		return -EHOSTDOWN;
	if (first_word(&ph->in, ph->cur.fd, &ph->cur.pid, text, sizeof(text)) < 0) {
		drop(&ph->cur.fd);
		ph->cur = KID_NONE;
		server_down(ph);
		return cp_error_set(err, -EHOSTDOWN, "parse helper %s: %s",
				    helper_exe, text);
	}
	ph->last_pid = (long)ph->cur.pid;
	return 0;
}

/*
 * ahead - a child for the next request now, while this one is parsed:
 * its fork and its filter run beside the caller's work instead of
 * before the next message. A failure here is found (and reported) when
 * the next request takes it.
 */
static void
ahead(struct parsehelper *ph)
{
	struct cp_error ignored;

	if (ph->next.fd >= 0)
		return;
	cp_error_clear(&ignored);
	child_new(ph, &ph->next, &ignored);
}

long
parsehelper_pid(struct parsehelper *ph)
{
	char text[128];

	if (ph == NULL)
		return -1;
	if (ph->next.fd >= 0 && ph->next.pid == 0 &&
	    first_word(&ph->in, ph->next.fd, &ph->next.pid, text, sizeof(text)) < 0)
		ph->next.pid = 0;
	return (long)ph->next.pid;
}

/* more_bytes - whether anything follows the answer on fd. */
static int
more_bytes(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/*
 * parser_code - whether code is one inmsg_parse gives for a message
 * (inmsg.h): any other from the helper is not believed.
 */
static int
parser_code(int code)
{
	return code == -EMSGSIZE || code == -ELOOP || code == -E2BIG ||
	       code == -EBADMSG || code == -EINVAL || code == -ENOMEM;
}

/*
 * parser_reason - the reason a quarantine gives for the parser's code:
 * one of these, never the helper's own text (a helper taken over by the
 * message could put anything in it, PHI among it, into the logs).
 */
static const char *
parser_reason(int code)
{
	switch (code) {
	case -EMSGSIZE:
		return "message size or decoded content over the limit";
	case -ELOOP:
		return "message nesting depth over the limit";
	case -E2BIG:
		return "too many header fields, MIME parts or attachments";
	case -EBADMSG:
		return "MIME structure could not be parsed";
	case -ENOMEM:
		return "parser ran out of memory";
	default:
		return "message refused by the parser";
	}
}

/*
 * send_request - the request in ph->scratch to a child of its own (take):
 * a child answers one request and ends, so that what one message does
 * to it (an exploit) never sees the next message. Then children are
 * forked ahead for the next requests. 0, PARSEHELPER_LOST or -EHOSTDOWN.
 */
static int
send_request(struct parsehelper *ph, int64_t deadline, struct cp_error *err)
{
	int r;

	r = take(ph, err);
	if (r < 0)
		return r;
	r = helper_send_by(ph->cur.fd, ph->scratch.data, ph->scratch.len, deadline);
	if (r < 0)
		return lose(ph, r == -ETIMEDOUT ? r : -EPIPE, NULL, err);
	ahead(ph);
	return 0;
}

/*
 * receive_answer - the answer of the child in ph->cur, by deadline.
 * Returns 0 with *wire pointing into ph->in, the parser's own negative
 * code with its text, PARSEHELPER_LOST, or ASK_ALL_CHARSETS: the
 * message needs a converter this lean child does not have.
 */
static int
receive_answer(struct parsehelper *ph, const struct inmsg_limits *lim,
	       int64_t deadline, const char **wire, size_t *wirelen,
	       struct cp_error *err)
{
	struct helper_frame f;
	uint32_t flags;
	int r;

	/* No answer longer than the parser can make: tag, count, the flags
	 * field and the wire field (HELPER_MAX_FRAME at most). */
	r = helper_frame_recv(ph->cur.fd, &ph->in, &f, deadline,
			      8 + (4 + sizeof(uint32_t)) + 4 + inmsgwire_max(lim));
	if (r == -EBADMSG)
		return lose(ph, r, "answered a malformed frame, or one longer than a "
			    "parse makes", err);
	if (r < 0)
		return lose(ph, r, NULL, err);
	if (f.n != 2 || f.len[0] != sizeof(flags) || f.tag > 0 ||
	    (f.tag < 0 && !parser_code(f.tag)))
		return lose(ph, -EBADMSG, "answered a malformed frame", err);
	memcpy(&flags, f.field[0], sizeof(flags));
	if ((flags & ~(uint32_t)PARSEHELPER_ANSWER_ALL_CHARSETS) != 0 ||
	    (flags != 0 && (ph->all_charsets || f.tag != 0 || f.len[1] != 0)) ||
	    more_bytes(ph->cur.fd))
		return lose(ph, -EBADMSG, "answered more than its answer", err);
	/* One request each: it ends now (its server makes sure). */
	kid_done(ph, &ph->cur);
	if (flags != 0)
		return ASK_ALL_CHARSETS;
	if (f.tag < 0)	/* the parser's out of memory is the message's size */
		return cp_error_set(err, f.tag == -ENOMEM ? -EMSGSIZE : f.tag, "%s",
				    parser_reason(f.tag));
	*wire = f.field[1];
	*wirelen = f.len[1];
	return 0;
}

/*
 * early_take - the request sent ahead whose frame is the one in
 * ph->scratch, taken out of the list (the caller owns its kid and m), or
 * 0 when none was.
 */
static int
early_take(struct parsehelper *ph, struct early *out)
{
	for (size_t i = 0; i < ph->n_early; i++) {
		struct early *e = &ph->early[i];

		if (e->frame.len != ph->scratch.len ||
		    memcmp(e->frame.data, ph->scratch.data, e->frame.len) != 0)
			continue;
		*out = *e;
		ph->n_early--;
		memmove(e, e + 1, (ph->n_early - i) * sizeof(*e));
		return 1;
	}
	return 0;
}

/* early_free - one request sent ahead that nobody took: its answer
 * freed, its child left to its server to end. */
static void
early_free(struct parsehelper *ph, struct early *e)
{
	buf_free(&e->frame);
	inmsg_free(e->m);
	e->m = NULL;
	kid_done(ph, &e->k);
}

void
parsehelper_ahead_drop(struct parsehelper *ph)
{
	if (ph == NULL)
		return;
	while (ph->n_early > 0)
		early_free(ph, &ph->early[--ph->n_early]);
}

static int ask(struct parsehelper *ph, const struct inmsg_limits *lim,
	       int flags, struct inmsg **out, struct cp_error *err);

/*
 * ask_all_charsets - the request in ph->scratch asked of the helper
 * whose server loaded every converter (ph->all, started now if it is
 * not running), under what is left of ph's budget.
 */
static int
ask_all_charsets(struct parsehelper *ph, const struct inmsg_limits *lim,
		 int flags, struct inmsg **out, struct cp_error *err)
{
	struct parsehelper *all = ph->all;
	struct buf swap;
	int r;

	if (all == NULL) {
		r = new_helper(ph->time_limit_ms, 1, &ph->all, err);
		if (r < 0)
			return r;
		all = ph->all;
	}
	all->progress = ph->progress;
	all->progress_userdata = ph->progress_userdata;
	all->budget_ms = ph->budget_ms;
	all->budget_left = ph->budget_left;
	swap = all->scratch;
	all->scratch = ph->scratch;
	ph->scratch = swap;
	r = ask(all, lim, flags, out, err);
	swap = all->scratch;
	all->scratch = ph->scratch;
	ph->scratch = swap;
	ph->budget_left = all->budget_left;
	ph->over_budget = all->over_budget;
	ph->filter_killed = all->filter_killed;
	ph->last_pid = all->last_pid;
	return r;
}

/*
 * ask - the request in ph->scratch, answered and decoded into *out; a
 * lost helper costs one more try on a fresh one (none with
 * PARSEHELPER_ONCE); a lean child that met a charset it has no converter
 * for hands the request to the helper that has them all.
 */
static int
ask(struct parsehelper *ph, const struct inmsg_limits *lim, int flags,
    struct inmsg **out, struct cp_error *err)
{
	char first[sizeof(err->text)];
	const char *wire = NULL;
	size_t wirelen = 0;
	struct early e;
	int sent = 0, r;

	ph->filter_killed = 0;
	if (early_take(ph, &e)) {
		buf_free(&e.frame);
		if (e.m != NULL) {	/* answered already (parsehelper_peek) */
			*out = e.m;
			return 0;
		}
		/* Sent ahead: the first try is that child's answer, unless
		 * its server was ended meanwhile (then it was no try). */
		if (e.k.gen == ph->gen) {
			ph->cur = e.k;
			ph->last_pid = (long)e.k.pid;
			sent = 1;
		} else {
			kid_done(ph, &e.k);
		}
	}
	for (int attempt = 0;; attempt++) {
		int64_t start = cp_mono_ms(), deadline = start + ph->time_limit_ms;

		/* The caller's sign of life (the watchdog) before each try:
		 * a try takes at most the time limit. */
		if (ph->progress != NULL)
			ph->progress(ph->progress_userdata);
		/* The budget counts the tries only, not what the caller does
		 * between them (gpg). */
		ph->over_budget = 0;
		if (ph->budget_ms != 0 && ph->budget_left <= 0) {
			if (sent)	/* the child sent ahead: not asked */
				kid_done(ph, &ph->cur);
			r = cp_error_set(err, PARSEHELPER_LOST, "ran over the "
					 "message's %u ms parse budget", ph->budget_ms);
			break;
		}
		if (ph->budget_ms != 0 && ph->budget_left < (int64_t)ph->time_limit_ms) {
			deadline = start + ph->budget_left;
			ph->over_budget = 1;
		}
		r = sent ? 0 : send_request(ph, deadline, err);
		sent = 0;
		if (r == 0)
			r = receive_answer(ph, lim, deadline, &wire, &wirelen, err);
		if (ph->budget_ms != 0)
			ph->budget_left -= cp_mono_ms() - start;
		if (r == ASK_ALL_CHARSETS)
			return ask_all_charsets(ph, lim, flags, out, err);
		if (r == 0) {
			r = inmsgwire_decode(wire, wirelen, lim, out, err);
			/* An answer too large to hold is the helper's doing
			 * (the frame is within the limits): not a failure of
			 * ours that would keep the message for ever. */
			if (r == -EBADMSG || r == -ENOMEM) {
				snprintf(first, sizeof(first), "%s", err->text);
				r = lose(ph, -EBADMSG, first, err);
			}
		}
		if (r != PARSEHELPER_LOST || attempt > 0 || (flags & PARSEHELPER_ONCE) ||
		    ph->filter_killed)
			break;
	}
	if (r == PARSEHELPER_LOST && ph->filter_killed) {
		snprintf(first, sizeof(first), "%s", err->text);
		cp_error_set(err, r, "parser lost on this message: %s", first);
	} else if (r == PARSEHELPER_LOST && !(flags & PARSEHELPER_ONCE)) {
		snprintf(first, sizeof(first), "%s", err->text);
		cp_error_set(err, r, "parser lost twice on this message: %s", first);
	}
	return r;
}

/* request - the frame of op into ph->scratch. */
static int
request(struct parsehelper *ph, int32_t op, const struct inmsg_limits *lim,
	const struct helper_field *more, uint32_t nmore, struct cp_error *err)
{
	_cleanup_buf_ struct buf limits = BUF_INIT;
	struct helper_field f[HELPER_MAX_FIELDS];
	int r;

	r = inmsgwire_limits_encode(lim, &limits);
	if (r < 0)
		return cp_error_set(err, r, "parse helper: out of memory");
	f[0].data = limits.data;
	f[0].len = limits.len;
	for (uint32_t i = 0; i < nmore; i++)
		f[i + 1] = more[i];
	r = helper_frame_prepare(&ph->scratch, op, f, nmore + 1);
	if (r == -EFBIG)
		return cp_error_set(err, r, "message too large for the parse helper");
	if (r < 0)
		return cp_error_set(err, r, "parse helper: out of memory");
	return 0;
}

/* early_find - the request sent ahead whose frame is ph->scratch, or NULL. */
static struct early *
early_find(struct parsehelper *ph)
{
	for (size_t i = 0; i < ph->n_early; i++)
		if (ph->early[i].frame.len == ph->scratch.len &&
		    memcmp(ph->early[i].frame.data, ph->scratch.data,
			   ph->scratch.len) == 0)
			return &ph->early[i];
	return NULL;
}

/* parse_request - the PARSE frame of raw into ph->scratch: 0, or an
 * error as parsehelper_parse gives it before asking. */
static int
parse_request(struct parsehelper *ph, const char *raw, size_t len,
	      const struct inmsg_limits **lim, struct inmsg_limits *deflim,
	      struct cp_error *err)
{
	struct helper_field f[1] = { { raw ? raw : "", raw ? len : 0 } };

	if (raw == NULL && len > 0)
		return cp_error_set(err, -EINVAL, "inmsg: no bytes");
	if (*lim == NULL) {
		inmsg_limits_default(deflim);
		*lim = deflim;
	}
	/* Refused here as the helper would: no need to send it. */
	if (len > (*lim)->max_size)
		return cp_error_set(err, -EMSGSIZE, "message size %zu exceeds %zu",
				    len, (*lim)->max_size);
	return request(ph, PARSEHELPER_OP_PARSE, *lim, f, 1, err);
}

int
parsehelper_parse_ahead(struct parsehelper *ph, const char *raw, size_t len,
			const struct inmsg_limits *lim)
{
	struct inmsg_limits deflim;
	struct cp_error ignored;
	struct early *e;

	cp_error_clear(&ignored);
	if (ph == NULL || raw == NULL ||
	    parse_request(ph, raw, len, &lim, &deflim, &ignored) < 0)
		return 0;
	if (early_find(ph) != NULL) {	/* sent already */
		buf_reset(&ph->scratch);
		return 1;
	}
	if (ph->n_early == PARSEHELPER_EARLY) {	/* the oldest was not wanted */
		early_free(ph, &ph->early[0]);
		ph->n_early--;
		memmove(ph->early, ph->early + 1, ph->n_early * sizeof(ph->early[0]));
	}
	if (send_request(ph, helper_deadline(ph->time_limit_ms), &ignored) < 0) {
		buf_reset(&ph->scratch);
		return 0;
	}
	e = &ph->early[ph->n_early++];
	e->frame = ph->scratch;		/* taken over: no copy */
	ph->scratch = (struct buf)BUF_INIT;
	e->k = ph->cur;
	e->m = NULL;
	ph->cur = KID_NONE;
	return 1;
}

int
parsehelper_peek(struct parsehelper *ph, const char *raw, size_t len,
		 const struct inmsg_limits *lim, const struct inmsg **m)
{
	struct inmsg_limits deflim;
	struct cp_error ignored;
	struct early *e, taken;
	const char *wire = NULL;
	size_t wirelen = 0;
	int r;

	*m = NULL;
	cp_error_clear(&ignored);
	if (ph == NULL || raw == NULL ||
	    parse_request(ph, raw, len, &lim, &deflim, &ignored) < 0)
		return -ENOENT;
	e = early_find(ph);
	if (e != NULL && e->m != NULL) {
		buf_reset(&ph->scratch);
		*m = e->m;
		return 0;
	}
	if (e == NULL) {
		buf_reset(&ph->scratch);
		return -ENOENT;
	}
	/* Its answer, now: a failure takes it out (the parse of the
	 * message will try it as it tries any). */
	r = -ENOENT;
	if (e->k.gen == ph->gen) {
		ph->cur = e->k;
		ph->last_pid = (long)e->k.pid;
		e->k = KID_NONE;
		r = receive_answer(ph, lim, cp_mono_ms() + ph->time_limit_ms, &wire,
				   &wirelen, &ignored);
		if (r == 0)
			r = inmsgwire_decode(wire, wirelen, lim, &e->m, &ignored);
	}
	if (r == ASK_ALL_CHARSETS)	/* its parse will ask the other helper */
		r = -ENOENT;
	if (r < 0) {
		if (early_take(ph, &taken))
			early_free(ph, &taken);
		kid_done(ph, &ph->cur);
		buf_reset(&ph->scratch);
		return r;
	}
	buf_reset(&ph->scratch);
	*m = e->m;
	return 0;
}

int
parsehelper_parse(struct parsehelper *ph, const char *raw, size_t len,
		  const struct inmsg_limits *lim, int flags, struct inmsg **out,
		  struct cp_error *err)
{
	struct inmsg_limits deflim;
	struct cp_error local;
	int r;

	*out = NULL;
	if (err == NULL)	/* a guess (decrypt ahead) need not say why */
		err = &local;
	r = parse_request(ph, raw, len, &lim, &deflim, err);
	if (r < 0)
		return r;
	r = ask(ph, lim, flags, out, err);
	buf_reset(&ph->scratch);
	return r;
}

int
parsehelper_reparse_inner(struct parsehelper *ph, struct inmsg *m,
			  const char *raw, size_t len, struct cp_error *err)
{
	_cleanup_buf_ struct buf wire = BUF_INIT;
	struct inmsg *fresh = NULL, swap;
	struct cp_error local;
	int r;

	if (err == NULL)
		err = &local;
	if (m == NULL || (raw == NULL && len > 0))
		return cp_error_set(err, -EINVAL, "inmsg: nothing to reparse");
	r = inmsgwire_encode(m, &wire);
	if (r < 0)
		return cp_error_set(err, r, "parse helper: cannot encode: %s",
				    strerror(-r));
	{
		struct helper_field f[2] = {
			{ wire.data, wire.len },
			{ raw ? raw : "", raw ? len : 0 },
		};

		r = request(ph, PARSEHELPER_OP_REPARSE_INNER, &m->limits, f, 2, err);
	}
	if (r < 0)
		return r;
	r = ask(ph, &m->limits, 0, &fresh, err);
	buf_reset(&ph->scratch);
	if (r < 0)
		return r;
	swap = *m;
	*m = *fresh;
	*fresh = swap;
	inmsg_free(fresh);
	return 0;
}
