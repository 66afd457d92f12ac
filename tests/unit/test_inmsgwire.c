/*
 * NAME
 *	test_inmsgwire - unit tests for lib/inmsgwire.c, the form in which
 *	the parse helper hands a parsed message back
 * DESCRIPTION
 *	What the parser makes of real and hand-made mail goes through the
 *	encoding and back unchanged (every message of ../shared/corpus when
 *	it is there). Then the decoder, which reads what a helper that mail
 *	may have taken over sends: every cut, every stray byte, strings
 *	that break inmsg.h's promises, counts over the limits or beyond the
 *	bytes, unknown flags, another version: each refused whole, with a
 *	reason that names the field and never its content.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

#include "buf.h"
#include "inmsg.h"
#include "inmsgwire.h"
#include "util.h"

static const char plain[] =
	"From: =?utf-8?q?P=C3=A4t?= <Pat@Patients.TEST>\r\n"
	"To: reply+tok@reply.example, Other <o@x.test>\r\n"
	"Subject: =?utf-8?q?R=C3=A9sultat?= SECRET-SUBJECT\r\n"
	"Message-ID: <m1@patients.test>\r\n"
	"References: <a@x> <b@y>\r\n"
	"Return-Path: <>\r\n"
	"Authentication-Results: mx.test; dmarc=pass header.from=patients.test\r\n"
	"Date: Wed, 25 Nov 2026 17:00:00 +0000\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello caf\xc3\xa9\r\n"
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
	"Status: 5.1.1 (no such user)\r\nDiagnostic-Code: smtp; 550 no\r\n"
	"\r\n--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
	"Message-ID: <t.r0.x@clinic.test>\r\n\r\n--r--\r\n";

static const char signed_msg[] =
	"From: p@patients.test\r\nTo: reply+tok@reply.example\r\nSubject: s\r\n"
	"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; "
	"boundary=S\r\n\r\n--S\r\nContent-Type: text/plain; protected-headers=v1\r\n"
	"Subject: inner\r\nTo: <reply+tok@reply.example>\r\n\r\nsigned words\r\n--S\r\n"
	"Content-Type: application/pgp-signature\r\n\r\nSIG\r\n--S--\r\n";

static const char encrypted[] =
	"From: p@patients.test\r\nTo: reply+tok@reply.example\r\nSubject: e\r\n"
	"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
	"boundary=E\r\n\r\n--E\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
	"Version: 1\r\n--E\r\nContent-Type: application/octet-stream\r\n\r\n"
	"-----BEGIN PGP MESSAGE-----\r\nxx\r\n-----END PGP MESSAGE-----\r\n--E--\r\n";

/* ---- helpers ---- */

static struct inmsg *
parse(const char *raw, size_t len)
{
	struct inmsg *m = NULL;
	struct cp_error err;

	if (inmsg_parse(raw, len, NULL, &m, &err) < 0)
		fail_msg("parse: %s", err.text);
	return m;
}

/* round_trip - m encoded, decoded, encoded again: the same bytes. */
static struct inmsg *
round_trip(const struct inmsg *m)
{
	struct buf once = BUF_INIT, twice = BUF_INIT;
	struct inmsg *back = NULL;
	struct cp_error err;

	assert_int_equal(inmsgwire_encode(m, &once), 0);
	if (inmsgwire_decode(once.data, once.len, &m->limits, &back, &err) < 0)
		fail_msg("decode: %s", err.text);
	assert_int_equal(inmsgwire_encode(back, &twice), 0);
	assert_int_equal(once.len, twice.len);
	assert_memory_equal(once.data, twice.data, once.len);
	buf_free(&once);
	buf_free(&twice);
	return back;
}

/* refused - decoding w fails with -EBADMSG and a reason naming what. */
static void
refused(const struct buf *w, const char *what)
{
	struct inmsg *m = (struct inmsg *)1;
	struct cp_error err;

	cp_error_clear(&err);
	assert_int_equal(inmsgwire_decode(w->data, w->len, NULL, &m, &err), -EBADMSG);
	assert_null(m);
	if (strstr(err.text, what) == NULL)
		fail_msg("reason \"%s\" does not name %s", err.text, what);
	assert_null(strstr(err.text, "SECRET"));
}

/* encoded - the encoding of m (which may break inmsg.h's promises). */
static void
encoded(const struct inmsg *m, struct buf *w)
{
	buf_reset(w);
	assert_int_equal(inmsgwire_encode(m, w), 0);
}

static void
set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = v ? strdup(v) : NULL;
	if (v)
		assert_non_null(*slot);
}

/* ---- round trips ---- */

static void
parsed_messages_come_back_unchanged(void **state)
{
	const char *msgs[] = { plain, dsn, signed_msg, encrypted };

	for (size_t i = 0; i < CP_ARRAY_SIZE(msgs); i++) {
		struct inmsg *m = parse(msgs[i], strlen(msgs[i]));
		struct inmsg *back = round_trip(m);

		assert_string_equal(back->content_type, m->content_type);
		assert_int_equal(back->body_len, m->body_len);
		assert_string_equal(back->body, m->body);
		assert_int_equal(back->n_attachments, m->n_attachments);
		assert_int_equal(back->pgp, m->pgp);
		assert_int_equal(back->dsn.n_rcpts, m->dsn.n_rcpts);
		assert_int_equal(back->date, m->date);
		assert_int_equal(back->flags, m->flags);
		inmsg_free(back);
		inmsg_free(m);
	}
}

static void
absent_and_empty_stay_apart(void **state)
{
	struct inmsg *m = parse(plain, sizeof(plain) - 1);
	struct inmsg *back = round_trip(m);

	/* Return-Path: <> is "", an absent header NULL */
	assert_non_null(back->return_path);
	assert_string_equal(back->return_path, "");
	assert_null(back->in_reply_to);
	assert_non_null(back->attachments[0].data);
	assert_int_equal(back->attachments[0].len, 11);
	assert_memory_equal(back->attachments[0].data, "%PDF-1.4\n\0\xff", 11);
	assert_int_equal(back->attachments[0].data[11], '\0');
	assert_string_equal(back->from_addr, "pat@patients.test");
	assert_int_equal(back->references.n, 2);
	assert_string_equal(back->references.v[1], "b@y");
	inmsg_free(back);
	inmsg_free(m);
	m = parse(signed_msg, sizeof(signed_msg) - 1);
	back = round_trip(m);
	assert_int_equal(back->pgp_signed_len, m->pgp_signed_len);
	assert_memory_equal(back->pgp_signed, m->pgp_signed, m->pgp_signed_len);
	assert_true(back->prot.present);
	assert_string_equal(back->prot.subject, "inner");
	assert_string_equal(back->prot.recipients.v[0], "reply+tok@reply.example");
	inmsg_free(back);
	inmsg_free(m);
	m = parse(dsn, sizeof(dsn) - 1);
	back = round_trip(m);
	assert_string_equal(back->dsn.rcpts[0].status, "5.1.1");
	assert_string_equal(back->dsn.rcpts[0].final_recipient, "p@patients.test");
	assert_null(back->dsn.rcpts[0].original_recipient);
	assert_string_equal(back->dsn.orig_message_id, "t.r0.x@clinic.test");
	inmsg_free(back);
	inmsg_free(m);
}

static void
every_corpus_message_comes_back_unchanged(void **state)
{
	const char *shared = getenv("CAREPOST_SHARED");
	char dir[4096];
	DIR *d;
	struct dirent *e;
	unsigned n = 0;

	snprintf(dir, sizeof(dir), "%s/corpus/flanker-messages",
		 shared && *shared ? shared : "../shared");
	if ((d = opendir(dir)) == NULL) {
		print_message("corpus not found (set CAREPOST_SHARED): skipped\n");
		skip();
	}
	while ((e = readdir(d)) != NULL) {
		char path[8192];
		_cleanup_free_ char *raw = NULL;
		struct inmsg *m = NULL, *back;
		size_t len;
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
		    cp_read_file(path, 64u << 20, &raw, &len) < 0)
			continue;
		if (inmsg_parse(raw, len, NULL, &m, NULL) < 0)
			continue;
		back = round_trip(m);
		inmsg_free(back);
		inmsg_free(m);
		n++;
	}
	closedir(d);
	print_message("%u corpus messages\n", n);
	assert_true(n > 0);
}

/* ---- malformed answers ---- */

static void
every_cut_and_every_extra_byte_is_refused(void **state)
{
	struct inmsg *m = parse(plain, sizeof(plain) - 1);
	struct buf w = BUF_INIT;
	struct inmsg *back;
	struct cp_error err;

	encoded(m, &w);
	for (size_t cut = 0; cut < w.len; cut++) {
		back = (struct inmsg *)1;
		assert_int_equal(inmsgwire_decode(w.data, cut, NULL, &back, &err),
				 -EBADMSG);
		assert_null(back);
	}
	assert_int_equal(buf_putc(&w, 0), 0);
	refused(&w, "bytes after the last field");
	assert_int_equal(inmsgwire_decode(NULL, 5, NULL, &back, &err), -EBADMSG);
	buf_free(&w);
	inmsg_free(m);
}

static void
another_version_or_magic_is_refused(void **state)
{
	struct inmsg *m = parse(plain, sizeof(plain) - 1);
	struct buf w = BUF_INIT;

	encoded(m, &w);
	w.data[4] = INMSGWIRE_VERSION + 1;
	refused(&w, "not this version's format");
	encoded(m, &w);
	w.data[0] = 'X';
	refused(&w, "not this version's format");
	buf_free(&w);
	inmsg_free(m);
}

static void
strings_that_break_the_promises_are_refused(void **state)
{
	struct inmsg *m = parse(plain, sizeof(plain) - 1);
	struct buf w = BUF_INIT;

	set_str(&m->subject, "SECRET-SUBJECT \xff\xfe");
	encoded(m, &w);
	refused(&w, "subject: not valid UTF-8");
	set_str(&m->subject, "SECRET \xed\xa0\x80 surrogate");
	encoded(m, &w);
	refused(&w, "subject: not valid UTF-8");
	set_str(&m->subject, "ok");
	set_str(&m->from_addr, "SECRET@Patients.test");
	encoded(m, &w);
	refused(&w, "from address: holds upper-case letters");
	set_str(&m->from_addr, "p@patients.test");
	set_str(&m->recipients.v[0], "Reply+tok@reply.example");
	encoded(m, &w);
	refused(&w, "recipients: holds upper-case letters");
	set_str(&m->recipients.v[0], "reply+tok@reply.example");
	set_str(&m->content_type, NULL);
	encoded(m, &w);
	refused(&w, "content type: absent");
	set_str(&m->content_type, "Text/Plain");
	encoded(m, &w);
	refused(&w, "content type: holds upper-case letters");
	set_str(&m->content_type, "text/plain");
	set_str(&m->attachments[0].content_type, "application/PDF");
	encoded(m, &w);
	refused(&w, "attachment content type");
	set_str(&m->attachments[0].content_type, "application/pdf");
	encoded(m, &w);
	/* a NUL inside the body: its length says more than its string */
	m->body[1] = '\0';
	encoded(m, &w);
	refused(&w, "body: holds a NUL byte");
	free(m->body);
	m->body = NULL;
	m->body_len = 0;
	assert_int_equal(inmsgwire_encode(m, &w), -EINVAL);	/* never sent */
	buf_free(&w);
	inmsg_free(m);
}

/* patch_u32 - overwrite the 4 bytes at off with v, little-endian. */
static void
patch_u32(struct buf *w, size_t off, uint32_t v)
{
	assert_true(off + 4 <= w->len);
	for (int i = 0; i < 4; i++)
		w->data[off + (size_t)i] = (char)(v >> (8 * i));
}

/* find - the offset of needle's bytes in w (they must be there once). */
static size_t
find(const struct buf *w, const void *needle, size_t n)
{
	const char *p = memmem(w->data, w->len, needle, n);

	assert_non_null(p);
	return (size_t)(p - w->data);
}

/* The reply is never longer than the body; the body is not sent twice. */
static void
a_reply_longer_than_its_body_is_refused_one_equal_goes_once(void **state)
{
	static const char good[] = "\x04\0\0\0SECR\x02\0\0\0SE";
	static const char swapped[] = "\x02\0\0\0SE\x04\0\0\0SECR";
	static const char once[] = "\x04\0\0\0SECR\xff\xff\xff\xff";
	struct inmsg *m = parse(plain, sizeof(plain) - 1), *back;
	struct buf w = BUF_INIT;
	size_t off;

	set_str(&m->body, "SECR");
	m->body_len = 4;
	set_str(&m->reply, "SE");
	m->reply_len = 2;
	encoded(m, &w);
	off = find(&w, good, sizeof(good) - 1);
	memcpy(w.data + off, swapped, sizeof(swapped) - 1);
	refused(&w, "reply: longer than the body");
	/* a reply that is the body is sent once (absent), and comes back */
	set_str(&m->reply, "SECR");
	m->reply_len = 4;
	encoded(m, &w);
	assert_null(memmem(w.data, w.len, "SECRSECR", 8));
	off = find(&w, once, sizeof(once) - 1);
	{
		/* the body's bytes again where absent belongs: refused */
		static const char twice[] = "\x04\0\0\0SECR\x04\0\0\0SECR";
		struct buf t = BUF_INIT;

		assert_int_equal(buf_append(&t, w.data, off), 0);
		assert_int_equal(buf_append(&t, twice, sizeof(twice) - 1), 0);
		assert_int_equal(buf_append(&t, w.data + off + sizeof(once) - 1,
					    w.len - off - (sizeof(once) - 1)), 0);
		refused(&t, "reply: the body sent twice");
		buf_free(&t);
	}
	back = round_trip(m);
	assert_string_equal(back->reply, "SECR");
	assert_int_equal(back->reply_len, 4);
	inmsg_free(back);
	/* never sent: none, or one longer than its body */
	set_str(&m->reply, "SECRET");
	m->reply_len = 6;
	assert_int_equal(inmsgwire_encode(m, &w), -EINVAL);
	set_str(&m->reply, NULL);
	m->reply_len = 0;
	assert_int_equal(inmsgwire_encode(m, &w), -EINVAL);
	buf_free(&w);
	inmsg_free(m);
}

static void
counts_over_the_limits_or_the_bytes_are_refused(void **state)
{
	struct inmsg *m = parse(plain, sizeof(plain) - 1);
	struct inmsg_limits lim;
	struct buf w = BUF_INIT;
	struct inmsg *back = NULL;
	struct cp_error err;
	size_t off;

	/* attachments: over max_attachments */
	encoded(m, &w);
	inmsg_limits_default(&lim);
	lim.max_attachments = 0;
	assert_int_equal(inmsgwire_decode(w.data, w.len, &lim, &back, &err), -EBADMSG);
	assert_non_null(strstr(err.text, "attachments: more than the limit"));
	/* part count, depth, header count and decoded total over theirs */
	inmsg_limits_default(&lim);
	lim.max_parts = m->part_count - 1;
	assert_int_equal(inmsgwire_decode(w.data, w.len, &lim, &back, &err), -EBADMSG);
	assert_non_null(strstr(err.text, "part count"));
	inmsg_limits_default(&lim);
	lim.max_depth = m->depth - 1;
	assert_int_equal(inmsgwire_decode(w.data, w.len, &lim, &back, &err), -EBADMSG);
	assert_non_null(strstr(err.text, "depth"));
	inmsg_limits_default(&lim);
	lim.max_headers = m->header_count - 1;
	assert_int_equal(inmsgwire_decode(w.data, w.len, &lim, &back, &err), -EBADMSG);
	inmsg_limits_default(&lim);
	lim.max_decoded = m->decoded_total - 1;
	assert_int_equal(inmsgwire_decode(w.data, w.len, &lim, &back, &err), -EBADMSG);
	assert_non_null(strstr(err.text, "decoded total"));
	/* a count far beyond the bytes: refused before anything is allocated */
	off = find(&w, "\x02\x00\x00\x00\x03\x00\x00\x00" "a@x", 11);
	patch_u32(&w, off, INMSGWIRE_MAX_REFERENCES);
	refused(&w, "references: cut short");
	/* more references than a header block can hold */
	patch_u32(&w, off, 0x7ffffff0u);
	refused(&w, "references: more than the limit");
	patch_u32(&w, off, INMSGWIRE_MAX_REFERENCES + 1);
	refused(&w, "references: more than the limit");
	patch_u32(&w, off, 2);
	/* a string length beyond the bytes */
	off = find(&w, "\x03\x00\x00\x00" "a@x", 7);
	patch_u32(&w, off, INMSGWIRE_MAX_HEADER_STR);
	refused(&w, "references: cut short");
	/* a string longer than a header block can make */
	patch_u32(&w, off, 0xfffffff0u);
	refused(&w, "references: longer than the parser makes it");
	patch_u32(&w, off, INMSGWIRE_MAX_HEADER_STR + 1);
	refused(&w, "references: longer than the parser makes it");
	/* recipients over INMSG_MAX_RECIPIENTS */
	encoded(m, &w);
	off = find(&w, "\x02\x00\x00\x00\x17\x00\x00\x00" "reply+tok", 17);
	patch_u32(&w, off, INMSG_MAX_RECIPIENTS + 1);
	refused(&w, "recipients: more than the limit");
	buf_free(&w);
	inmsg_free(m);
}

/* What decoding made, all together, within max_decoded. */
static void
content_over_the_decoded_limit_is_refused(void **state)
{
	struct inmsg *m = parse(plain, sizeof(plain) - 1);
	struct inmsg_limits lim;
	struct inmsg *back = NULL;
	struct buf w = BUF_INIT;
	struct cp_error err;
	size_t big = 64 * 1024;

	inmsg_limits_default(&lim);
	lim.max_decoded = 100 * 1024;
	lim.max_parts = 10;
	/* each payload under the limit, together over it; decoded_total
	 * (which the helper says) small */
	free(m->pgp_signed);
	free(m->pgp_signature);
	m->pgp_signed = calloc(1, big + 1);
	m->pgp_signature = calloc(1, big + 1);
	assert_non_null(m->pgp_signed);
	assert_non_null(m->pgp_signature);
	memset(m->pgp_signed, 'a', big);
	memset(m->pgp_signature, 'b', big);
	m->pgp_signed_len = m->pgp_signature_len = big;
	m->pgp |= INMSG_PGP_SIGNED;
	encoded(m, &w);
	cp_error_clear(&err);
	assert_int_equal(inmsgwire_decode(w.data, w.len, &lim, &back, &err), -EBADMSG);
	assert_non_null(strstr(err.text, "content: more than the decoded limit"));
	/* one payload over the limit on its own */
	lim.max_decoded = big - 1;
	assert_int_equal(inmsgwire_decode(w.data, w.len, &lim, &back, &err), -EBADMSG);
	assert_non_null(strstr(err.text, "longer than the parser makes it"));
	/* within: decoded */
	lim.max_decoded = 4 * big;
	assert_int_equal(inmsgwire_decode(w.data, w.len, &lim, &back, &err), 0);
	inmsg_free(back);
	buf_free(&w);
	inmsg_free(m);
}

/* inmsg.h's promises of names and header strings, not the helper's word. */
static void
file_names_and_header_lines_that_break_the_promises_are_refused(void **state)
{
	static const char *const names[] = {
		"../../etc/passwd", "dir/x.pdf", "c:\\x.pdf", "SECRET\x01" ".pdf",
		"gpj.\xe2\x80\xae" "exe", "zero\xe2\x80\x8b" "width", "c1\xc2\x85" ".pdf", "",
		"..", ".",
	};
	struct inmsg *m = parse(plain, sizeof(plain) - 1);
	struct buf w = BUF_INIT;
	char longname[300];

	for (size_t i = 0; i < CP_ARRAY_SIZE(names); i++) {
		set_str(&m->attachments[0].filename, names[i]);
		encoded(m, &w);
		refused(&w, "attachment filename: not a plain file name");
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	set_str(&m->attachments[0].filename, longname);
	encoded(m, &w);
	refused(&w, "attachment filename");
	set_str(&m->attachments[0].filename, "r\xc3\xa9sultat scan.pdf");
	encoded(m, &w);
	inmsg_free(round_trip(m));
	set_str(&m->subject, "SECRET\r\nBcc: x");
	encoded(m, &w);
	refused(&w, "subject: holds a control character");
	set_str(&m->subject, "ok");
	set_str(&m->from_name, "SECRET\x1b[31m");
	encoded(m, &w);
	refused(&w, "from name: holds a control character");
	buf_free(&w);
	inmsg_free(m);
}

static void
unknown_bits_and_bad_booleans_are_refused(void **state)
{
	struct inmsg *m = parse(plain, sizeof(plain) - 1);
	struct buf w = BUF_INIT;

	m->flags |= 0x100;
	encoded(m, &w);
	refused(&w, "flags: unknown bits");
	m->flags &= INMSG_F_KNOWN;
	m->pgp = 4;
	encoded(m, &w);
	refused(&w, "pgp: unknown bits");
	m->pgp = 0;
	m->date = -2;
	encoded(m, &w);
	refused(&w, "date");
	m->date = 0;
	m->dsn.orig_headers_present = 1;
	encoded(m, &w);
	/* after it, an empty feedback report: u8, six absent str (4 bytes
	 * each), u8, two absent str, u8 */
	w.data[w.len - 1 - (1 + 6 * 4 + 1 + 2 * 4 + 1)] = 2;
	refused(&w, "dsn returned headers: not 0 or 1");
	m->arf.orig_headers_present = 1;
	encoded(m, &w);
	w.data[w.len - 1] = 2;
	refused(&w, "feedback reported headers: not 0 or 1");
	m->arf.orig_headers_present = 0;
	m->arf.present = 1;
	m->arf.feedback_type = strdup("Abuse");		/* promised lower-case */
	encoded(m, &w);
	refused(&w, "feedback type");
	/* a field longer than the parser ever makes of one */
	free(m->arf.feedback_type);
	m->arf.feedback_type = NULL;
	m->arf.user_agent = calloc(1, 3 * DSN_MAX_VALUE + 2);
	memset(m->arf.user_agent, 'a', 3 * DSN_MAX_VALUE + 1);
	encoded(m, &w);
	refused(&w, "feedback user agent");
	/* fields of a report the message does not carry */
	m->arf.user_agent[0] = '\0';
	m->arf.present = 0;
	encoded(m, &w);
	refused(&w, "feedback report: fields without a report");
	buf_free(&w);
	inmsg_free(m);
}

static void
limits_travel_to_the_helper_and_nothing_else_passes(void **state)
{
	struct inmsg_limits lim, back;
	struct buf w = BUF_INIT;

	memset(&lim, 0, sizeof(lim));		/* padding too: compared whole */
	memset(&back, 0, sizeof(back));
	inmsg_limits_default(&lim);
	lim.max_parts = 7;
	lim.max_decoded = 123456789;
	assert_int_equal(inmsgwire_limits_encode(&lim, &w), 0);
	assert_int_equal(w.len, INMSGWIRE_LIMITS_SIZE);
	assert_int_equal(inmsgwire_limits_decode(w.data, w.len, &back), 0);
	assert_memory_equal(&lim, &back, sizeof(lim));
	assert_int_equal(inmsgwire_limits_decode(w.data, w.len - 1, &back), -EBADMSG);
	memset(w.data + 8, 0xff, 8);		/* max_depth over UINT_MAX */
	assert_int_equal(inmsgwire_limits_decode(w.data, w.len, &back), -EBADMSG);
	buf_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parsed_messages_come_back_unchanged),
		cmocka_unit_test(absent_and_empty_stay_apart),
		cmocka_unit_test(every_corpus_message_comes_back_unchanged),
		cmocka_unit_test(every_cut_and_every_extra_byte_is_refused),
		cmocka_unit_test(another_version_or_magic_is_refused),
		cmocka_unit_test(strings_that_break_the_promises_are_refused),
		cmocka_unit_test(a_reply_longer_than_its_body_is_refused_one_equal_goes_once),
		cmocka_unit_test(counts_over_the_limits_or_the_bytes_are_refused),
		cmocka_unit_test(content_over_the_decoded_limit_is_refused),
		cmocka_unit_test(file_names_and_header_lines_that_break_the_promises_are_refused),
		cmocka_unit_test(unknown_bits_and_bad_booleans_are_refused),
		cmocka_unit_test(limits_travel_to_the_helper_and_nothing_else_passes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
