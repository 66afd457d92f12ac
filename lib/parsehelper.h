/*
 * NAME
 *	parsehelper - inmsg_parse behind a wall: a confined helper process
 * SYNOPSIS
 *	#include "parsehelper.h"
 *
 *	In the program's main, first thing:
 *	    int rc = parsehelper_main(argc, argv);
 *	    if (rc >= 0) return rc;		(it was started as a helper)
 *	    parsehelper_enable("carepost-parse");
 *
 *	struct parsehelper *ph;
 *	parsehelper_new(time_limit_ms, &ph, &err);
 *	parsehelper_parse_ahead(ph, next, nextlen, &lim);
 *	r = parsehelper_parse(ph, raw, len, &lim, 0, &m, &err);
 *	r = parsehelper_reparse_inner(ph, m, plain, plainlen, &err);
 *	parsehelper_free(ph);
 * DESCRIPTION
 *	Mail from outside is parsed (libetpan, MIME, charsets, HTML, DSN,
 *	trimming) in a process of its own that holds nothing worth taking:
 *	no reply-token key, no store, no GnuPG home, no network, no
 *	descriptor but its socket. A fork server, carepost-parse, is started
 *	with posix_spawn (lib/helper) with no environment; it links
 *	libetpan's parser in (not its shared library, which maps TLS,
 *	database and SASL libraries parsing never calls); it loads the
 *	charset converters it may need, drops to nobody (uid and
 *	gid 65534) when started by root, closes its standard descriptors
 *	and confines itself (sandbox.h: no new privileges, no files, 1 GiB
 *	of memory, a seccomp filter that also lets it fork) before it takes
 *	a connection. It never reads a byte of mail.
 *
 *	Every request has a child of that server of its own, which answers
 *	it and ends: for each request the caller hands the server one end of
 *	a new socket pair (SCM_RIGHTS), and the server forks a child whose
 *	only descriptor is that end. The child narrows its filter first (no
 *	fork, no descriptors received, signals to itself only, a CPU cap),
 *	says its first word (the version and its pid), reads its one
 *	request, answers it with what inmsg_parse (or inmsg_reparse_inner)
 *	made of it, as inmsgwire bytes, which the caller decodes believing
 *	none of them (inmsgwire.h), and ends. What one message does to its
 *	child (an exploit of the parser) never sees another message nor the
 *	server: a child is a copy of the server as it was before any mail,
 *	and nothing flows back. A child costs a fork, not an exec (dynamic
 *	linking, the converters): the child for the next request is asked
 *	for as soon as this request has been handed over, so it is forked
 *	and confined on another core while the caller waits for this
 *	answer; the next request finds it waiting.
 *
 *	A child's fork and exit cost grows with the mappings of its server,
 *	and each of glibc's charset converters is a shared object of several
 *	mappings. So the server asked first is lean: glibc's built-in
 *	converters (UTF-8, ASCII, UCS-2, UCS-4) and ISO-8859-1, WINDOWS-1252
 *	and ISO-8859-15. A child of it whose message needs any other charset
 *	(one iconv cannot open there, a made-up name included: the child
 *	cannot tell them apart) answers PARSEHELPER_ANSWER_ALL_CHARSETS
 *	instead (flags, an empty wire), and the request is asked again of a
 *	second server, started with PARSEHELPER_FLAG_ALL_CHARSETS when first
 *	needed, which loaded every converter carepost knows of (the message's
 *	budget goes on across both; each server's child lost on it is tried
 *	once more). Either way the
 *	answer is what an in-process parse makes: the conversions behind the
 *	wall are libetpan's own (an invalid sequence becomes '?'). A charset
 *	that not even that server loaded cannot be opened inside the wall:
 *	inmsg falls back as for an unknown charset.
 *
 *	parsehelper_parse_ahead sends the request of a message that is to be
 *	parsed soon (the next one of an IMAP batch) to a child now, and
 *	returns: that child parses while the caller files the message
 *	before. At most PARSEHELPER_EARLY such requests wait (the oldest is
 *	dropped for a new one, its peeked answer freed). parsehelper_parse of the same request (the
 *	same bytes and limits, compared whole) takes that child's answer as
 *	its first try; parsehelper_peek waits for it now and keeps it (the
 *	caller needs the parse early: to start a decryption ahead). A
 *	request sent ahead that no parse takes is dropped by
 *	parsehelper_ahead_drop (the end of a batch) or parsehelper_free; its
 *	child, if it may still be parsing, is ended with its server.
 *
 *	Each answer must come within time_limit_ms (0:
 *	PARSEHELPER_TIME_LIMIT_MS). A child that dies, is killed, runs over
 *	the limit or answers something malformed (or more than its answer)
 *	is lost: one that died is as the server reports it (its wait
 *	status: the server reports every end, read as they come so that
 *	none is lost); one still running is the server's to end. Whenever
 *	the caller is done with a child (answered, lost, or sent ahead and
 *	not wanted) it tells the server, which kills the child if it is
 *	still there a second later (lib/helper: helper_fork_server): no
 *	child a message took over outlives its use. A server that does not
 *	report, or whose child does not come up, is ended with all it runs
 *	(one process group) and the next request starts a new one; children
 *	started ahead by an ended server are then dropped without counting
 *	as lost. The
 *	message is tried once more on a fresh child; lost again, the call
 *	fails with PARSEHELPER_LOST and a PHI-free reason for a quarantine
 *	("parser lost twice on this message: killed by signal 11"). With
 *	PARSEHELPER_ONCE (a guess, such as a decryption started ahead)
 *	there is no second try, nor for a child its seccomp filter killed
 *	(SIGSYS: it tried a call parsing never makes, likely an exploit):
 *	that is logged as a security event (LOGID_SECURITY, nothing of the
 *	message) and the call fails with PARSEHELPER_LOST at once. A child
 *	started ahead that is gone when its request comes (killed
 *	meanwhile) is counted lost and replaced; the message does not pay.
 *
 *	parsehelper_enable picks the program as lib/helper's helper_find
 *	does (carepost-parse beside the running binary, then in
 *	CAREPOST_LIBEXECDIR, else the running binary itself, which must then
 *	call parsehelper_main first thing).
 *
 *	The requests and answers are lib/helper frames. The server speaks
 *	first, once confined: tag 0 and its version, or a negative code and
 *	why it could not confine itself; then it only takes connections and
 *	reports children that did not exit 0 (lib/helper). A child speaks
 *	first too: tag 0, the version and its pid (32 bits), or a negative
 *	code and why. A request is PARSE (limits, raw) or REPARSE_INNER
 *	(limits, the message as inmsgwire, the plaintext); an answer is tag
 *	0 or the parser's negative code, then a flags field (0, or
 *	PARSEHELPER_ANSWER_ALL_CHARSETS from a lean server's child) and the
 *	message as inmsgwire or the error's text; then the child ends.
 * ERRORS
 *	parsehelper_parse and parsehelper_reparse_inner: the parser's own
 *	codes (-EMSGSIZE, -ELOOP, -E2BIG, -EBADMSG, -EINVAL, inmsg.h; any
 *	other code from the helper is a malformed answer), each with a fixed
 *	reason of carepostd's, never the helper's text (which a helper taken
 *	over by the message could fill with PHI); an
 *	out-of-memory in the helper (its memory cap) is the message's:
 *	-EMSGSIZE, "parser ran out of memory"; PARSEHELPER_LOST (-ECHILD),
 *	see above; -EHOSTDOWN when no helper can be started or it could not
 *	confine itself (an infrastructure failure: the message is not to
 *	blame); -ENOMEM (the caller's memory); -EFBIG when the request is
 *	over HELPER_MAX_FRAME. parsehelper_new: -ENOSYS when
 *	parsehelper_enable was not called or failed, -ENOMEM.
 *	parsehelper_enable: as helper_find. parsehelper_main returns -1 when
 *	the program was not started as the parse helper; otherwise its exit
 *	code: 0 when its caller closed the socket, EX_OSERR when it could
 *	not confine itself, EX_USAGE when descriptor 3 is not a socket,
 *	else as helper_fork_server's; a child exits 0 after its answer,
 *	EX_PROTOCOL after a malformed request, EX_OSERR when it could not
 *	narrow its filter. Once it has
 *	begun to confine itself it does not return: it ends with _exit(2)
 *	with that code (no exit handlers behind the wall).
 * OWNERSHIP
 *	parsehelper_new hands a struct the caller frees with parsehelper_free
 *	(which kills and reaps its server and children). parsehelper_parse hands a new
 *	struct inmsg in *out (inmsg_free; NULL on failure).
 *	parsehelper_reparse_inner replaces the contents of m only on
 *	success. parsehelper_parse_ahead copies nothing but its request (the
 *	bytes are compared whole later); parsehelper_peek's *m belongs to ph
 *	until the parse that takes it hands it over. Inputs are borrowed for the call. parsehelper_exe returns
 *	static storage set by parsehelper_enable.
 * THREAD SAFETY
 *	One thread uses a struct parsehelper at a time. parsehelper_enable
 *	before threads start.
 */
#ifndef CAREPOST_PARSEHELPER_H
#define CAREPOST_PARSEHELPER_H

#include <stddef.h>

#include "inmsg.h"
#include "util.h"

#define PARSEHELPER_LOST		(-ECHILD)
#define PARSEHELPER_ONCE		0x1	/* no second try */
#define PARSEHELPER_EARLY		2	/* requests sent ahead, at most */
#define PARSEHELPER_TIME_LIMIT_MS	10000u	/* per answer, by default */
/* All the parsing of one message (retries, its decrypted content): well
 * under half of carepost.service's WatchdogSec=60s. */
#define PARSEHELPER_MESSAGE_BUDGET_MS	20000u
#define PARSEHELPER_MEMORY_MAX		(1024u << 20)	/* RLIMIT_AS */
#define PARSEHELPER_CPU_CAP		60u	/* RLIMIT_CPU, seconds: one request */

/* The protocol of the two sides (lib/parsehelper.c, lib/parseserve.c). */
#define PARSEHELPER_FLAG		"--parse-helper"	/* lean: no converter loaded */
#define PARSEHELPER_FLAG_ALL_CHARSETS	"--parse-helper-all-charsets"
#define PARSEHELPER_ANSWER_ALL_CHARSETS	0x1u	/* a lean child's answer: ask the other */
#define PARSEHELPER_OP_PARSE		1	/* limits, raw -> flags, wire */
#define PARSEHELPER_OP_REPARSE_INNER	2	/* limits, wire, plaintext -> flags, wire */
#define PARSEHELPER_LINGER_MS		1000	/* a child may take to end when done with */

struct parsehelper;

int parsehelper_main(int argc, char **argv);
int parsehelper_enable(const char *name);
const char *parsehelper_exe(void);

int parsehelper_new(unsigned time_limit_ms, struct parsehelper **out,
		    struct cp_error *err);
void parsehelper_free(struct parsehelper *ph);
/* parsehelper_pid - the child started ahead for the next request, once
 * it said its first word (waited for here); 0: none (tests). */
long parsehelper_pid(struct parsehelper *ph);
/* parsehelper_last_pid - the child asked last, ending since (tests). */
long parsehelper_last_pid(const struct parsehelper *ph);
/* parsehelper_server_pid - the fork server; 0: none runs (tests). */
long parsehelper_server_pid(const struct parsehelper *ph);
/*
 * parsehelper_budget - the tries of the message about to be parsed
 * (parsehelper_parse, then parsehelper_reparse_inner, and their
 * retries) take ms in all (0: no budget but the time limit of each
 * try); what the caller does between them (gpg) does not count. A try
 * cut short by it loses its helper as a try over its time limit does
 * ("ran over the message's 20000 ms parse budget"); once it is spent, a
 * parse fails at once with PARSEHELPER_LOST.
 */
void parsehelper_budget(struct parsehelper *ph, unsigned ms);
/*
 * parsehelper_progress - fn(userdata) is called before each try (each
 * takes at most the time limit): carepostd tells its watchdog it lives.
 */
typedef void (*parsehelper_progress_fn)(void *userdata);
void parsehelper_progress(struct parsehelper *ph, parsehelper_progress_fn fn,
			  void *userdata);
/* parsehelper_lost - helpers lost so far (died, killed, over time). */
unsigned long parsehelper_lost(const struct parsehelper *ph);

int parsehelper_parse(struct parsehelper *ph, const char *raw, size_t len,
		      const struct inmsg_limits *lim, int flags,
		      struct inmsg **out, struct cp_error *err);
/*
 * parsehelper_parse_ahead - send the PARSE request of a message that is
 * to be parsed soon to a child now, and go on: that child parses while
 * the caller files the message before. parsehelper_parse of the same
 * bytes (and limits) later takes its answer as its first try. 1 when
 * sent (or sent already), 0 otherwise (a guess: nothing to report).
 */
int parsehelper_parse_ahead(struct parsehelper *ph, const char *raw,
			    size_t len, const struct inmsg_limits *lim);
/*
 * parsehelper_peek - the answer to a request sent ahead, waited for now
 * and kept for parsehelper_parse: *m is borrowed (valid until that parse,
 * parsehelper_ahead_drop or parsehelper_free). 0; -ENOENT when nothing
 * was sent ahead for these bytes; else the parse's code (nothing kept).
 */
int parsehelper_peek(struct parsehelper *ph, const char *raw, size_t len,
		     const struct inmsg_limits *lim, const struct inmsg **m);
/* parsehelper_ahead_drop - forget what was sent ahead (a batch's end). */
void parsehelper_ahead_drop(struct parsehelper *ph);
int parsehelper_reparse_inner(struct parsehelper *ph, struct inmsg *m,
			      const char *raw, size_t len,
			      struct cp_error *err);

#endif
