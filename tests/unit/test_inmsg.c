/*
 * NAME
 *	test_inmsg - unit tests for the inbound message parser and classifier
 * DESCRIPTION
 *	Real messages from ../shared/corpus (mail-fixtures, flanker-messages,
 *	notmuch-crypto; skipped when absent), hand-written messages for each
 *	class, and hostile input: deep nesting, many parts, huge messages,
 *	garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>

#include "buf.h"
#include "formread.h"
#include "inmsg.h"
#include "msgfix.h"
#include "util.h"

/* ------------------------------------------------------------ corpus */

static void
walk_dir(const char *path, unsigned *ok, unsigned *failed, struct buf *fails)
{
	DIR *d = opendir(path);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char p[4096];
		struct stat st;
		_cleanup_free_ char *raw = NULL;
		size_t len;
		struct inmsg *m = NULL;
		struct cp_error err = { 0 };
		int r;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (stat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk_dir(p, ok, failed, fails);
			continue;
		}
		assert_int_equal(cp_read_file(p, 64u << 20, &raw, &len), 0);
		r = inmsg_parse(raw, len, NULL, &m, &err);
		if (r < 0) {
			assert_null(m);
			assert_true(err.text[0] != '\0');
			assert_int_equal(err.code, r);
			(*failed)++;
			buf_printf(fails, "%s ", e->d_name);
			continue;
		}
		{
			json_t *j = NULL;
			struct inmsg_class_info ci;
			enum inmsg_class c = inmsg_classify(m, &tu_addrs, &ci);

			assert_non_null(inmsg_class_name(c));
			assert_non_null(ci.reason);
			assert_int_equal(inmsg_to_json(m, &tu_addrs, &j), 0);
			assert_non_null(j);
			json_decref(j);
			assert_non_null(m->body);
			assert_true(cp_utf8_valid(m->body, m->body_len));
			if (m->subject)
				assert_true(cp_utf8_valid(m->subject, strlen(m->subject)));
			if (m->from_name)
				assert_true(cp_utf8_valid(m->from_name, strlen(m->from_name)));
		}
		inmsg_free(m);
		(*ok)++;
	}
	closedir(d);
}

static void
every_corpus_message_parses_or_fails_cleanly(void **state)
{
	static const char *const dirs[] = { "mail-fixtures", "flanker-messages",
					    "notmuch-crypto" };
	const char *dir;
	unsigned ok = 0, failed = 0;
	_cleanup_buf_ struct buf fails = BUF_INIT;

	NEED_CORPUS(dir);
	for (size_t i = 0; i < CP_ARRAY_SIZE(dirs); i++) {
		char p[4096];

		snprintf(p, sizeof(p), "%s/%s", dir, dirs[i]);
		walk_dir(p, &ok, &failed, &fails);
	}
	print_message("corpus: %u parsed, %u refused: %s\n", ok, failed,
		      fails.data ? fails.data : "");
	/* Only the "endless enclosure" torture message is refused. */
	assert_int_equal(failed, 1);
	assert_non_null(strstr(fails.data, "enclosed-endless.eml"));
	assert_true(ok >= 170);
}

/* The reply is cut from the body where the body is made (behind the
 * wall): the quoted history and the signature stay in the body only. */
static void
the_reply_is_the_body_without_its_history(void **state)
{
	struct formread_answers a = FORMREAD_ANSWERS_INIT;
	struct inmsg *m = tu_parse_str(
		"From: p@patient.example\r\nSubject: Re: results\r\n\r\n"
		"Should I keep the same dose?\r\n\r\n-- \r\nPat\r\n\r\n"
		"On Wed, 25 Nov 2026 at 09:00, Lakeside Clinic wrote:\r\n"
		"> Your results are in the portal.\r\n");
	struct inmsg *plain = tu_parse_str("Subject: s\r\n\r\nJust this.\r\n");

	assert_string_equal(m->reply, "Should I keep the same dose?");
	assert_int_equal(m->reply_len, strlen(m->reply));
	assert_non_null(strstr(m->body, "> Your results are in the portal."));
	assert_true(m->reply_len <= m->body_len);
	assert_string_equal(plain->reply, "Just this.");
	inmsg_free(m);
	inmsg_free(plain);
	/* a form's answers, read from the reply, leave the history out */
	m = tu_parse_str("Subject: Re: form\r\n\r\nPain level: 3\r\n"
			 "Medications = none\r\n\r\nOn Mon, the clinic wrote:\r\n"
			 "> Pain level:\r\n> Allergies: \r\n");
	assert_int_equal(formread_answers(m->reply, m->reply_len, &a), 0);
	assert_int_equal(a.n, 2);
	assert_string_equal(a.key[0], "pain level");
	assert_string_equal(a.value[0], "3");
	assert_string_equal(a.key[1], "medications");
	assert_string_equal(a.value[1], "none");
	formread_free(&a);
	inmsg_free(m);
}

/* Forgotten content is gone whole; the header facts stay. */
static void
forgotten_content_leaves_the_header_facts(void **state)
{
	struct inmsg *m = tu_parse_str(
		"From: p@patient.example\r\nSubject: kept\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=M\r\n\r\n"
		"--M\r\nContent-Type: text/plain\r\n\r\nPain level: 3\r\n"
		"--M\r\nContent-Type: application/pdf; name=a.pdf\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--M--\r\n");

	assert_int_equal(m->n_attachments, 1);
	assert_string_equal(m->reply, "Pain level: 3");
	assert_int_equal(inmsg_forget_content(m), 0);
	assert_string_equal(m->body, "");
	assert_string_equal(m->reply, "");
	assert_int_equal(m->body_len + m->reply_len, 0);
	assert_int_equal(m->n_attachments, 0);
	assert_null(m->attachments);
	assert_null(m->pgp_signed);
	assert_int_equal(m->decoded_total, 0);
	assert_int_equal(m->part_count, 0);
	assert_string_equal(m->subject, "kept");
	assert_string_equal(m->from_addr, "p@patient.example");
	inmsg_free(m);
}

/* --------------------------------------------------------------- PGP */

static void
pgp_encrypted_payload_is_exposed(void **state)
{
	const char *dir;
	struct inmsg *m;

	NEED_CORPUS(dir);
	m = tu_parse_file("notmuch-crypto/crypto/basic-encrypted.eml");
	assert_true(m->pgp & INMSG_PGP_ENCRYPTED);
	assert_false(m->pgp & INMSG_PGP_SIGNED);
	assert_non_null(m->pgp_encrypted);
	assert_true(m->pgp_encrypted_len > 100);
	assert_memory_equal(m->pgp_encrypted, "-----BEGIN PGP MESSAGE-----", 27);
	assert_non_null(strstr(m->pgp_encrypted, "-----END PGP MESSAGE-----"));
	assert_int_equal(m->n_attachments, 0);
	assert_int_equal(m->body_len, 0);
	assert_string_equal(m->content_type, "multipart/encrypted");
	inmsg_free(m);
}

static void
smime_is_not_taken_for_pgp(void **state)
{
	const char *dir;
	struct inmsg *m;

	NEED_CORPUS(dir);
	m = tu_parse_file("flanker-messages/signed.eml");
	assert_int_equal(m->pgp, 0);
	assert_null(m->pgp_signed);
	inmsg_free(m);
	m = tu_parse_file("notmuch-crypto/protected-headers/smime-multipart-signed.eml");
	assert_int_equal(m->pgp, 0);
	inmsg_free(m);
}

static void
pgp_signed_part_is_exact_crlf_bytes(void **state)
{
	const char *dir;
	struct inmsg *m;
	static const char want[] = "Content-Type: text/plain\r\n\r\n"
				   "Here is the signed message body.\r\n";

	NEED_CORPUS(dir);
	m = tu_parse_file("notmuch-crypto/protected-headers/simple-signed-mail.eml");
	assert_int_equal(m->pgp, INMSG_PGP_SIGNED);
	assert_int_equal(m->pgp_signed_len, sizeof(want) - 1);
	assert_memory_equal(m->pgp_signed, want, sizeof(want) - 1);
	assert_memory_equal(m->pgp_signature, "-----BEGIN PGP SIGNATURE-----", 29);
	assert_string_equal(m->body, "Here is the signed message body.\n");
	assert_int_equal(m->n_attachments, 0);	/* signature.asc is not one */
	inmsg_free(m);
}

static void
reparse_inner_merges_decrypted_content(void **state)
{
	struct inmsg *m = tu_parse_str(
		"From: p@patient.example\r\nTo: reply+abc@reply.clinic.example\r\n"
		"Subject: ...\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n"
		"--E\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
		"--E\r\nContent-Type: application/octet-stream\r\n\r\n"
		"-----BEGIN PGP MESSAGE-----\r\nxx\r\n-----END PGP MESSAGE-----\r\n--E--\r\n");
	static const char inner[] =
		"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=S\n\n"
		"--S\nContent-Type: multipart/mixed; boundary=M\n\n"
		"--M\nContent-Type: text/plain; charset=utf-8\n\nInner reply text\n"
		"--M\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"lab.pdf\"\n"
		"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--M--\n"
		"--S\nContent-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----\nzz\n-----END PGP SIGNATURE-----\n"
		"--S--\n";
	struct cp_error err = { 0 };
	unsigned parts_before = m->part_count;

	assert_int_equal(m->pgp, INMSG_PGP_ENCRYPTED);
	assert_int_equal(m->body_len, 0);
	assert_int_equal(inmsg_reparse_inner(m, inner, sizeof(inner) - 1, &err), 0);
	assert_int_equal(m->pgp, INMSG_PGP_ENCRYPTED | INMSG_PGP_SIGNED);
	/* the line end before a boundary belongs to the boundary */
	assert_string_equal(m->body, "Inner reply text");
	assert_string_equal(m->reply, "Inner reply text");
	assert_int_equal(m->n_attachments, 1);
	assert_string_equal(m->attachments[0].filename, "lab.pdf");
	assert_string_equal(m->attachments[0].content_type, "application/pdf");
	assert_int_equal(m->attachments[0].len, 9);
	assert_memory_equal(m->attachments[0].data, "%PDF-1.4\n", 9);
	assert_memory_equal(m->pgp_signed, "Content-Type: multipart/mixed; boundary=M\r\n", 43);
	assert_true(m->part_count > parts_before);
	inmsg_free(m);
}

/* ------------------------------------------- PGP covers the whole */

/* A genuine-looking signed entity, as the patient's client made it. */
#define SIGNED_ENTITY \
	"Content-Type: multipart/signed; boundary=\"BOUNDARY\";\r\n" \
	"  protocol=\"application/pgp-signature\"\r\n\r\n" \
	"--BOUNDARY\r\nContent-Type: text/plain\r\n\r\n" \
	"Congratulations, you have been promoted!\r\n\r\n" \
	"--BOUNDARY\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n\r\n" \
	"-----BEGIN PGP SIGNATURE-----\r\nzz\r\n-----END PGP SIGNATURE-----\r\n\r\n" \
	"--BOUNDARY--\r\n"

#define WRAP_HEAD(ct) \
	"From: manager@patient.example\r\nTo: reply+abc@reply.clinic.example\r\n" \
	"Subject: wrapped\r\nMIME-Version: 1.0\r\nContent-Type: " ct "; boundary=\"DELIMITER\"\r\n\r\n"

/*
 * The four MIME-wrapping shapes of "Johnny, You Are Fired" (m1 text
 * before, m2 HTML hiding, m3 a cid reference in multipart/related, m4
 * the signed part as an attachment), and the same with the attacker's
 * text after: never signed; the signed part is an attachment kept whole;
 * the body is only the attacker's text (it is what the message says,
 * and the signature does not vouch for it).
 */
static void
signed_part_beside_other_text_is_not_a_signed_message(void **state)
{
	static const char *const shapes[] = {
		WRAP_HEAD("multipart/mixed")
		"--DELIMITER\r\nContent-Type: text/plain\r\n\r\nJohnny, you are fired!\r\n.\r\n.\r\n\r\n"
		"--DELIMITER\r\n" SIGNED_ENTITY "\r\n--DELIMITER--\r\n",
		WRAP_HEAD("multipart/mixed")
		"--DELIMITER\r\nContent-Type: text/html\r\n\r\n<b>Johnny, you are fired!</b>\r\n"
		"<style>fieldset, br{display: none;}</style>\r\n<div style=\"display: none;\"><plaintext>\r\n\r\n"
		"--DELIMITER\r\n" SIGNED_ENTITY "\r\n--DELIMITER--\r\n",
		WRAP_HEAD("multipart/related")
		"--DELIMITER\r\nContent-Type: text/html\r\n\r\n<b>Johnny, you are fired!</b></br>\r\n"
		"<img width=\"100\" height=\"25\" src=\"cid:target\">\r\n\r\n"
		"--DELIMITER\r\nContent-ID: <target>\r\n" SIGNED_ENTITY "\r\n--DELIMITER--\r\n",
		WRAP_HEAD("multipart/mixed")
		"--DELIMITER\r\nContent-Type: text/plain\r\n\r\nJohnny, you are fired!\r\n\r\n"
		"--DELIMITER\r\nContent-Disposition: attachment; filename=signature.asc\r\n"
		SIGNED_ENTITY "\r\n--DELIMITER--\r\n",
		WRAP_HEAD("multipart/mixed")
		"--DELIMITER\r\n" SIGNED_ENTITY "\r\n"
		"--DELIMITER\r\nContent-Type: text/plain\r\n\r\nJohnny, you are fired!\r\n\r\n--DELIMITER--\r\n",
	};

	for (size_t i = 0; i < CP_ARRAY_SIZE(shapes); i++) {
		struct inmsg *m = tu_parse_str(shapes[i]);

		assert_int_equal(m->pgp, 0);
		assert_null(m->pgp_signed);
		assert_null(m->pgp_signature);
		assert_int_equal(m->nested_crypto, 1);
		assert_non_null(strstr(m->body, "Johnny, you are fired!"));
		assert_null(strstr(m->body, "Congratulations"));
		assert_int_equal(m->n_attachments, 1);
		assert_string_equal(m->attachments[0].content_type, "multipart/signed");
		/* kept whole, headers and signature included */
		assert_non_null(strstr(m->attachments[0].data, "Congratulations"));
		assert_non_null(strstr(m->attachments[0].data, "BEGIN PGP SIGNATURE"));
		assert_false(m->prot.present);
		inmsg_free(m);
	}
}

/* An encrypted part beside the attacker's text is not decrypted. */
static void
encrypted_part_below_the_root_is_an_attachment(void **state)
{
	struct inmsg *m = tu_parse_str(
		WRAP_HEAD("multipart/mixed")
		"--DELIMITER\r\nContent-Type: text/plain\r\n\r\nplease file this\r\n"
		"--DELIMITER\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n"
		"--E\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
		"--E\r\nContent-Type: application/octet-stream\r\n\r\n"
		"-----BEGIN PGP MESSAGE-----\r\nxx\r\n-----END PGP MESSAGE-----\r\n--E--\r\n"
		"--DELIMITER--\r\n");

	assert_int_equal(m->pgp, 0);
	assert_null(m->pgp_encrypted);
	assert_int_equal(m->nested_crypto, 1);
	assert_string_equal(m->body, "please file this");
	assert_int_equal(m->n_attachments, 1);
	assert_string_equal(m->attachments[0].content_type, "multipart/encrypted");
	assert_non_null(strstr(m->attachments[0].data, "BEGIN PGP MESSAGE"));
	inmsg_free(m);
}

/*
 * The root multipart/signed: the body is its signed part alone (a third
 * part after the signature is outside it and not taken); a second
 * signed or encrypted entity inside the signed part is an attachment.
 */
static void
root_signature_covers_exactly_its_first_part(void **state)
{
	struct inmsg *m = tu_parse_str(
		"From: p@patient.example\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=S\r\n\r\n"
		"--S\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n"
		"--M\r\nContent-Type: text/plain\r\n\r\nsigned words\r\n"
		"--M\r\n" SIGNED_ENTITY "\r\n--M--\r\n"
		"--S\r\nContent-Type: application/pgp-signature\r\n\r\n"
		"-----BEGIN PGP SIGNATURE-----\r\nzz\r\n-----END PGP SIGNATURE-----\r\n"
		"--S\r\nContent-Type: text/plain\r\n\r\nattacker's third part\r\n"
		"--S--\r\n");

	assert_int_equal(m->pgp, INMSG_PGP_SIGNED);
	assert_string_equal(m->body, "signed words");
	assert_int_equal(m->nested_crypto, 1);
	assert_int_equal(m->n_attachments, 1);
	assert_string_equal(m->attachments[0].content_type, "multipart/signed");
	assert_non_null(strstr(m->pgp_signed, "signed words"));
	assert_null(strstr(m->pgp_signed, "third part"));
	inmsg_free(m);

	/* a second part that is not a pgp-signature: no signature at all */
	m = tu_parse_str(
		"From: p@patient.example\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=S\r\n\r\n"
		"--S\r\nContent-Type: text/plain\r\n\r\nwords\r\n"
		"--S\r\nContent-Type: text/plain\r\n\r\nmore words\r\n--S--\r\n");
	assert_int_equal(m->pgp, 0);
	assert_null(m->pgp_signed);
	inmsg_free(m);
}

/* Inside decrypted content: only its root signs; nothing decrypts twice. */
static void
decrypted_content_counts_only_at_its_root(void **state)
{
	static const char outer[] =
		"From: p@patient.example\r\nTo: reply+abc@reply.clinic.example\r\n"
		"Subject: ...\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n"
		"--E\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
		"--E\r\nContent-Type: application/octet-stream\r\n\r\n"
		"-----BEGIN PGP MESSAGE-----\r\nxx\r\n-----END PGP MESSAGE-----\r\n--E--\r\n";
	static const char beside[] =
		"Content-Type: multipart/mixed; boundary=M\r\n\r\n"
		"--M\r\nContent-Type: text/plain\r\n\r\nunsigned words\r\n"
		"--M\r\n" SIGNED_ENTITY "\r\n--M--\r\n";
	static const char twice[] =
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=F\r\n\r\n"
		"--F\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
		"--F\r\nContent-Type: application/octet-stream\r\n\r\n"
		"-----BEGIN PGP MESSAGE-----\r\nyy\r\n-----END PGP MESSAGE-----\r\n--F--\r\n";
	struct cp_error err = { 0 };
	struct inmsg *m = tu_parse_str(outer);

	assert_int_equal(inmsg_reparse_inner(m, beside, sizeof(beside) - 1, &err), 0);
	assert_int_equal(m->pgp, INMSG_PGP_ENCRYPTED);
	assert_null(m->pgp_signed);
	assert_string_equal(m->body, "unsigned words");
	assert_int_equal(m->nested_crypto, 1);
	inmsg_free(m);

	m = tu_parse_str(outer);
	assert_int_equal(inmsg_reparse_inner(m, twice, sizeof(twice) - 1, &err), 0);
	assert_int_equal(m->pgp, INMSG_PGP_ENCRYPTED);
	assert_non_null(strstr(m->pgp_encrypted, "xx"));	/* the outer one */
	assert_int_equal(m->nested_crypto, 1);
	assert_int_equal(m->n_attachments, 1);
	assert_non_null(strstr(m->attachments[0].data, "yy"));
	inmsg_free(m);
}

/* Protected headers: from what is covered, only with protected-headers=v1. */
static void
protected_headers_come_from_the_covered_entity(void **state)
{
	const char *dir;
	struct cp_error err = { 0 };
	struct inmsg *m;
	static const char inner[] =
		"Content-Type: multipart/mixed; boundary=M; protected-headers=\"v1\"\r\n"
		"Subject: =?utf-8?q?Caf=C3=A9?= question\r\n"
		"To: Clinic <reply+TOKEN1@reply.clinic.example>\r\n"
		"Cc: other@patient.example\r\n\r\n"
		"--M\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--M--\r\n";
	static const char unmarked[] =
		"Content-Type: text/plain\r\nSubject: not protected\r\n"
		"To: reply+TOKEN2@reply.clinic.example\r\n\r\ntext\r\n";

	NEED_CORPUS(dir);
	m = tu_parse_file("notmuch-crypto/protected-headers/signed-protected-header.eml");
	assert_int_equal(m->pgp, INMSG_PGP_SIGNED);
	assert_true(m->prot.present);
	assert_string_equal(m->prot.subject, "This is a signed message");
	inmsg_free(m);
	/* a Subject on the encrypted payload's part is no protected header */
	m = tu_parse_file("notmuch-crypto/protected-headers/phony-protected-header-bad-encryption.eml");
	assert_false(m->prot.present);
	inmsg_free(m);

	m = tu_parse_str("From: p@patient.example\r\nSubject: ...\r\nMIME-Version: 1.0\r\n"
		      "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n"
		      "--E\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
		      "--E\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n--E--\r\n");
	assert_int_equal(inmsg_reparse_inner(m, inner, sizeof(inner) - 1, &err), 0);
	assert_true(m->prot.present);
	assert_string_equal(m->prot.subject, "Caf\xc3\xa9 question");
	assert_int_equal(m->prot.recipients.n, 2);
	assert_string_equal(m->prot.recipients.v[0], "reply+token1@reply.clinic.example");
	assert_string_equal(m->subject, "...");		/* the outer one stays */
	assert_string_equal(m->body, "inner text");
	inmsg_free(m);

	m = tu_parse_str("From: p@patient.example\r\nMIME-Version: 1.0\r\n"
		      "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n"
		      "--E\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n--E--\r\n");
	assert_int_equal(inmsg_reparse_inner(m, unmarked, sizeof(unmarked) - 1, &err), 0);
	assert_false(m->prot.present);
	assert_int_equal(m->prot.recipients.n, 0);
	inmsg_free(m);
}

/* ----------------------------------------------------------- headers */

static void
rfc2047_subject_and_rfc2231_filename_decode_to_utf8(void **state)
{
	const char *dir;
	struct inmsg *m;

	NEED_CORPUS(dir);
	m = tu_parse_file("mail-fixtures/attachment_emails/attachment_with_quoted_filename.eml");
	assert_string_equal(m->subject, "Eelanal\xc3\xbc\xc3\xbcsi p\xc3\xa4ring");
	assert_int_equal(m->n_attachments, 1);
	assert_string_equal(m->attachments[0].filename,
			    "Eelanal\xc3\xbc\xc3\xbcsi p\xc3\xa4ring.jpg");
	assert_string_equal(m->attachments[0].content_type, "image/jpeg");
	assert_int_equal(m->attachments[0].len, 1952);
	assert_memory_equal(m->attachments[0].data, "\xff\xd8", 2);	/* JPEG */
	inmsg_free(m);

	m = tu_parse_file("mail-fixtures/multi_charset/japanese.eml");
	assert_string_equal(m->subject, "\xe3\x81\xbe\xe3\x81\xbf\xe3\x82\x80\xe3\x82\x81\xe3\x82\x82");
	inmsg_free(m);
}

static void
iso2022jp_body_converts_to_utf8(void **state)
{
	const char *dir;
	struct inmsg *m;

	NEED_CORPUS(dir);
	m = tu_parse_file("mail-fixtures/multi_charset/japanese_iso_2022.eml");
	/* "すみません。" */
	assert_memory_equal(m->body, "\xe3\x81\x99\xe3\x81\xbf\xe3\x81\xbe\xe3\x81\x9b\xe3\x82\x93\xe3\x80\x82", 18);
	inmsg_free(m);
}

/* -------------------------------------------------------------- body */

static void
alternative_prefers_plain_and_html_only_becomes_text(void **state)
{
	struct inmsg *m = tu_parse_str(
		"From: a@b.example\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/alternative; boundary=A\r\n\r\n"
		"--A\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 ok\r\n"
		"--A\r\nContent-Type: text/html\r\n\r\n<p>HTML</p>\r\n--A--\r\n");

	assert_string_equal(m->body, "Caf\xc3\xa9 ok");
	assert_int_equal(m->n_attachments, 0);
	assert_false(m->flags & INMSG_F_BODY_FROM_HTML);
	inmsg_free(m);

	m = tu_parse_str("From: a@b.example\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
		      "<html><head><style>p{color:red}</style></head><body>"
		      "<p>Hello &amp; thanks</p><div>Line&nbsp;2 &#233;&#x41;</div>"
		      "<script>alert(1)</script></body></html>");
	assert_true(m->flags & INMSG_F_BODY_FROM_HTML);
	assert_string_equal(m->body, "\nHello & thanks\n\nLine 2 \xc3\xa9" "A\n");
	inmsg_free(m);
}

static void
attachments_are_decoded_and_text_parts_join_the_body(void **state)
{
	struct inmsg *m = tu_parse_str(
		"From: a@b.example\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=X\r\n\r\n"
		"preamble\r\n--X\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
		"--X\r\nContent-Type: image/png; name=\"../../etc/p\x01ng.png\"\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
		"--X\r\nContent-Type: text/plain\r\n\r\nsecond\r\n"
		"--X\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\nnotes\r\n"
		"--X\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\n\r\nforwarded\r\n"
		"--X--\r\n");

	assert_string_equal(m->body, "first\nsecond");
	assert_int_equal(m->n_attachments, 3);
	/* no directory part, control characters blanked */
	assert_string_equal(m->attachments[0].filename, "p ng.png");
	assert_string_equal(m->attachments[0].content_type, "image/png");
	assert_int_equal(m->attachments[0].len, 8);
	assert_memory_equal(m->attachments[0].data, "\x89PNG\r\n\x1a\n", 8);
	assert_string_equal(m->attachments[1].filename, "notes.txt");
	assert_string_equal(m->attachments[1].data, "notes");
	assert_null(m->attachments[2].filename);
	assert_string_equal(m->attachments[2].content_type, "message/rfc822");
	assert_non_null(strstr(m->attachments[2].data, "forwarded"));
	/* multipart, five parts, and the attached message's own body */
	assert_int_equal(m->part_count, 7);
	assert_int_equal(m->depth, 3);
	inmsg_free(m);
}

/* ------------------------------------------------------ hostile input */

static char *
nested_message(unsigned levels, size_t *len)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, "From: a@b.example\r\nMIME-Version: 1.0\r\n");
	for (unsigned i = 0; i < levels; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=b%u\r\n\r\n--b%u\r\n", i, i);
	buf_puts(&b, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	for (unsigned i = levels; i-- > 0;)
		buf_printf(&b, "--b%u--\r\n", i);
	return buf_steal(&b, len);
}

static void
nesting_30_deep_is_refused_with_eloop(void **state)
{
	size_t len;
	_cleanup_free_ char *raw = nested_message(30, &len);
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	assert_int_equal(inmsg_parse(raw, len, NULL, &m, &err), -ELOOP);
	assert_null(m);
	assert_string_equal(err.text, "message nesting depth exceeds 20 (seen before parsing)");
	free(raw);
	raw = nested_message(19, &len);		/* 19 multiparts + leaf = 20 */
	assert_int_equal(inmsg_parse(raw, len, NULL, &m, &err), 0);
	assert_int_equal(m->depth, 20);
	assert_string_equal(m->body, "deep");
	inmsg_free(m);
}

static void
nesting_100000_deep_is_refused_without_crashing(void **state)
{
	size_t len;
	_cleanup_free_ char *raw = nested_message(100000, &len);
	struct buf b = BUF_INIT;
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	/* refused by the pre-scan's depth estimate, before libetpan */
	assert_int_equal(inmsg_parse(raw, len, NULL, &m, &err), -ELOOP);
	/* message/rfc822 nesting needs no boundaries at all */
	buf_puts(&b, "From: a@b.example\r\n");
	for (unsigned i = 0; i < 100000; i++)
		buf_puts(&b, "Content-Type: message/rfc822\r\n\r\n");
	buf_puts(&b, "\r\nx\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), -ELOOP);
	assert_null(m);
	buf_free(&b);
}

static void
thousand_parts_are_refused_with_e2big(void **state)
{
	struct buf b = BUF_INIT;
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	buf_puts(&b, "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (unsigned i = 0; i < 1000; i++)
		buf_puts(&b, "--p\r\n\r\nx\r\n");
	buf_puts(&b, "--p--\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), -E2BIG);
	assert_null(m);
	assert_string_equal(err.text, "message has more than 500 MIME parts");
	/* the same with bare boundaries and no headers at all */
	buf_reset(&b);
	buf_puts(&b, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (unsigned i = 0; i < 200000; i++)
		buf_puts(&b, "--p\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), -E2BIG);
	assert_non_null(strstr(err.text, "boundary-like lines"));
	buf_free(&b);
}

static void
thirty_mib_message_is_refused_with_emsgsize(void **state)
{
	size_t len = 30u << 20;
	_cleanup_free_ char *raw = malloc(len);
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	assert_non_null(raw);
	memset(raw, 'a', len);
	memcpy(raw, "Subject: big\r\n\r\n", 16);
	assert_int_equal(inmsg_parse(raw, len, NULL, &m, &err), -EMSGSIZE);
	assert_null(m);
	assert_string_equal(err.text, "message size 31457280 exceeds 26214400 bytes");
}

static void
decoded_total_limit_guards_expansion(void **state)
{
	struct buf b = BUF_INIT;
	struct inmsg_limits lim;
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	inmsg_limits_default(&lim);
	lim.max_decoded = 100000;
	buf_puts(&b, "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n");
	for (unsigned p = 0; p < 4; p++) {
		buf_puts(&b, "--z\r\nContent-Type: application/octet-stream\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\n");
		for (unsigned i = 0; i < 600; i++)
			buf_puts(&b, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n");
	}
	buf_puts(&b, "--z--\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, &lim, &m, &err), -EMSGSIZE);
	assert_string_equal(err.text, "decoded content exceeds 100000 bytes");
	lim.max_decoded = 1u << 20;
	assert_int_equal(inmsg_parse(b.data, b.len, &lim, &m, &err), 0);
	assert_int_equal(m->n_attachments, 4);
	assert_int_equal(m->attachments[0].len, 600 * 48);
	inmsg_free(m);
	lim.max_attachments = 3;
	assert_int_equal(inmsg_parse(b.data, b.len, &lim, &m, &err), -E2BIG);
	assert_string_equal(err.text, "message has more than 3 attachments");
	buf_free(&b);
}

static void
too_many_headers_are_refused(void **state)
{
	struct buf b = BUF_INIT;
	struct inmsg *m = NULL;
	struct cp_error err = { 0 };

	for (unsigned i = 0; i < 1001; i++)
		buf_printf(&b, "X-H%u: v\r\n", i);
	buf_puts(&b, "\r\nbody\r\n");
	assert_int_equal(inmsg_parse(b.data, b.len, NULL, &m, &err), -E2BIG);
	assert_string_equal(err.text, "message has more than 1000 header fields");
	buf_free(&b);
}

static void
malformed_input_parses_gracefully(void **state)
{
	static const char *const cases[] = {
		"",
		"Subject: trunc",
		"Subject: =?UTF-8?B?broken",
		"From: <<<@@@>>>\r\nTo: ,,,\r\nDate: yesterday\r\n\r\n",
		"Content-Type: multipart/mixed\r\n\r\n--x\r\nno boundary param\r\n",
		"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nnever closed",
		"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xe9t\xe9\r\n",
		"Content-Type: text/plain; charset=\"../../etc/passwd\"\r\n\r\n\xff\xfe\r\n",
		"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n",
		"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n"
		"--r\r\nContent-Type: message/delivery-status\r\n\r\n\r\n\r\nAction\r\n:::\r\n--r--\r\n",
		"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=s\r\n\r\n--s--\r\n",
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=s\r\n\r\n",
	};
	unsigned char garbage[4096];
	uint32_t x = 12345;

	for (size_t i = 0; i < CP_ARRAY_SIZE(cases); i++) {
		struct inmsg *m = NULL;
		struct cp_error err = { 0 };
		int r = inmsg_parse(cases[i], strlen(cases[i]), NULL, &m, &err);

		if (r < 0) {
			assert_true(err.text[0] != '\0');
			continue;
		}
		assert_non_null(m->body);
		assert_true(cp_utf8_valid(m->body, m->body_len));
		inmsg_free(m);
	}
	for (int round = 0; round < 50; round++) {
		struct inmsg *m = NULL;
		struct cp_error err = { 0 };

		for (size_t i = 0; i < sizeof(garbage); i++) {
			x = x * 1103515245u + 12345u;
			garbage[i] = (unsigned char)(x >> 16);
		}
		if (inmsg_parse((char *)garbage, sizeof(garbage), NULL, &m, &err) == 0) {
			assert_true(cp_utf8_valid(m->body, m->body_len));
			inmsg_free(m);
		}
	}
	/* unknown charset: falls back to ISO-8859-1 */
	{
		struct inmsg *m = tu_parse_str(cases[6]);

		assert_string_equal(m->body, "\xc3\xa9t\xc3\xa9\n");
		inmsg_free(m);
	}
}

/* ---------------------------------------------------- classification */

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_corpus_message_parses_or_fails_cleanly),
		cmocka_unit_test(pgp_encrypted_payload_is_exposed),
		cmocka_unit_test(smime_is_not_taken_for_pgp),
		cmocka_unit_test(pgp_signed_part_is_exact_crlf_bytes),
		cmocka_unit_test(the_reply_is_the_body_without_its_history),
		cmocka_unit_test(forgotten_content_leaves_the_header_facts),
		cmocka_unit_test(reparse_inner_merges_decrypted_content),
		cmocka_unit_test(signed_part_beside_other_text_is_not_a_signed_message),
		cmocka_unit_test(encrypted_part_below_the_root_is_an_attachment),
		cmocka_unit_test(root_signature_covers_exactly_its_first_part),
		cmocka_unit_test(decrypted_content_counts_only_at_its_root),
		cmocka_unit_test(protected_headers_come_from_the_covered_entity),
		cmocka_unit_test(rfc2047_subject_and_rfc2231_filename_decode_to_utf8),
		cmocka_unit_test(iso2022jp_body_converts_to_utf8),
		cmocka_unit_test(alternative_prefers_plain_and_html_only_becomes_text),
		cmocka_unit_test(attachments_are_decoded_and_text_parts_join_the_body),
		cmocka_unit_test(nesting_30_deep_is_refused_with_eloop),
		cmocka_unit_test(nesting_100000_deep_is_refused_without_crashing),
		cmocka_unit_test(thousand_parts_are_refused_with_e2big),
		cmocka_unit_test(thirty_mib_message_is_refused_with_emsgsize),
		cmocka_unit_test(decoded_total_limit_guards_expansion),
		cmocka_unit_test(too_many_headers_are_refused),
		cmocka_unit_test(malformed_input_parses_gracefully),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
