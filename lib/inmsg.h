/*
 * NAME
 *	inmsg - parse and classify one inbound RFC 5322 message
 * SYNOPSIS
 *	#include "inmsg.h"
 *
 *	struct inmsg_limits lim;
 *	struct inmsg *m = NULL;
 *	struct inmsg_class_info ci;
 *
 *	inmsg_limits_default(&lim);
 *	r = inmsg_parse(raw, len, &lim, &m, &err);
 *	if (r < 0) quarantine(err.text);
 *	switch (inmsg_classify(m, &addrs, &ci)) { ... ci.token ... }
 *	inmsg_free(m);
 * DESCRIPTION
 *	The inbound path's first step: raw bytes as fetched from IMAP (or
 *	given to "carepostctl ingest") become a struct inmsg holding the
 *	header facts carepost decides on, the reply text decoded to UTF-8,
 *	the attachments, the PGP/MIME pieces to decrypt or verify, and the
 *	delivery-status fields of a bounce. No IMAP, no store, no crypto:
 *	pure functions over bytes. The MIME work is libetpan's (mailmime_parse,
 *	mailmime_part_parse, mailmime_encoded_phrase_parse, charconv); this
 *	module puts limits around it and picks out what matters.
 *
 *	Every string in a struct inmsg is NUL-terminated, valid UTF-8 and
 *	holds no NUL bytes (invalid bytes become U+FFFD), except the byte
 *	buffers that carry a length (attachment data, PGP payloads).
 *	Addresses are lower-cased addr-specs. Message ids have no "<>".
 * LIMITS
 *	Everything from outside is hostile; struct inmsg_limits bounds the
 *	raw size, the MIME nesting depth, the part count, the top-level
 *	header count, the total of decoded bytes (bodies, attachments,
 *	payloads; a guard against decompression-style blow-up through
 *	charset conversion) and the attachment count. Exceeding one is a
 *	failure with a PHI-free reason meant to be used as a quarantine
 *	reason, e.g. "message nesting depth exceeds 20".
 *
 *	Before libetpan sees the bytes a cheap pre-scan counts header lines
 *	starting with "Content-Type" and lines starting with "--": libetpan's
 *	parser recurses once per nesting level and allocates once per part,
 *	so a message with thousands of either is refused before parsing
 *	(-E2BIG). With that guard the worst case needs well under 1 MiB of
 *	stack. The same pre-scan estimates the nesting depth (each
 *	Content-Type read with libetpan's own parser, so that the boundary it
 *	tracks is the one the parse will use) and refuses what is deeper
 *	than max_depth (-ELOOP, "... (seen before parsing)"): libetpan scans
 *	the rest of the message again at every level. A header block over
 *	INMSG_MAX_HEADER_BYTES is refused (-E2BIG), and at most
 *	INMSG_MAX_RECIPIENTS distinct recipients are kept.
 * ERRORS
 *	inmsg_parse and inmsg_reparse_inner: -EMSGSIZE, -ELOOP, -E2BIG,
 *	-EBADMSG, -ENOMEM as listed above inmsg_parse, and -EINVAL for NULL
 *	bytes with a length (or, for inmsg_reparse_inner, a NULL m).
 *	inmsg_to_json: -EINVAL (NULL m) or -ENOMEM. inmsg_classify,
 *	inmsg_names_reply_token and inmsg_no_autoresponse cannot fail.
 * OWNERSHIP
 *	inmsg_parse allocates *out; the caller frees it with inmsg_free.
 *	The struct holds copies: the raw buffer may be freed right after
 *	inmsg_parse returns (inmsg_reparse_inner copies too). Every string
 *	and array in a struct inmsg belongs to it. inmsg_to_json hands a new
 *	reference (json_decref). The reason in struct inmsg_class_info and
 *	the strings of inmsg_class_name and inmsg_no_autoresponse are
 *	static.
 * THREAD SAFETY
 *	Reentrant: no shared state (libetpan's parser and charconv are
 *	reentrant). A struct inmsg belongs to one thread at a time.
 */
#ifndef CAREPOST_INMSG_H
#define CAREPOST_INMSG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util.h"

struct inmsg_limits {
	size_t max_size;		/* raw bytes (25 MiB) */
	unsigned max_depth;		/* MIME nesting levels (20) */
	unsigned max_parts;		/* MIME entities in the tree (500) */
	unsigned max_headers;		/* top-level header fields (1000) */
	size_t max_decoded;		/* total decoded bytes (50 MiB) */
	unsigned max_attachments;	/* attachments kept (100) */
};

#define INMSG_MAX_SIZE_DEFAULT		(25u * 1024 * 1024)
#define INMSG_MAX_DEPTH_DEFAULT		20u
#define INMSG_MAX_PARTS_DEFAULT		500u
#define INMSG_MAX_HEADERS_DEFAULT	1000u
#define INMSG_MAX_DECODED_DEFAULT	(50u * 1024 * 1024)
#define INMSG_MAX_ATTACHMENTS_DEFAULT	100u
#define INMSG_MAX_HEADER_BYTES		(1024u * 1024)	/* the header block */
#define INMSG_MAX_RECIPIENTS		500u	/* kept of To, Cc, ... */

/* inmsg_limits_default - fill lim with the defaults above. */
void inmsg_limits_default(struct inmsg_limits *lim);

/* A list of owned strings. */
struct inmsg_strlist {
	char **v;
	size_t n;
};

struct inmsg_attachment {
	char *filename;		/* UTF-8, no directory part; may be NULL */
	char *content_type;	/* lower-case "type/subtype" */
	char *data;		/* decoded bytes (NUL-terminated for convenience) */
	size_t len;
};

/* One per-recipient block of an RFC 3464 delivery-status report. */
struct inmsg_dsn_rcpt {
	char *action;			/* lower-case: failed, delayed, ... */
	char *status;			/* "5.1.1" */
	char *final_recipient;		/* the value after "rfc822;", lower-case */
	char *original_recipient;	/* idem; may be NULL */
	char *diagnostic_code;		/* as given, unfolded; may be NULL */
};

struct inmsg_dsn {
	int present;			/* a message/delivery-status part was parsed */
	char *original_envelope_id;	/* may be NULL */
	char *reporting_mta;		/* may be NULL */
	struct inmsg_dsn_rcpt *rcpts;
	size_t n_rcpts;
	char *orig_message_id;		/* Message-ID of the returned message */
	int orig_headers_present;	/* message/rfc822 or text/rfc822-headers seen */
};

/* Flags for struct inmsg.flags */
#define INMSG_F_X_AUTOREPLY		0x01u	/* X-Autoreply present */
#define INMSG_F_X_AUTORESPOND		0x02u	/* X-Autorespond present */
#define INMSG_F_X_AUTO_RESPONSE_SUPPRESS 0x04u	/* X-Auto-Response-Suppress */
#define INMSG_F_NULL_RETURN_PATH	0x08u	/* Return-Path: <> */
#define INMSG_F_BODY_FROM_HTML		0x10u	/* body converted from text/html */
#define INMSG_F_LIST_UNSUBSCRIBE	0x20u	/* List-Unsubscribe present */
#define INMSG_F_LIST_POST		0x40u	/* List-Post present */
#define INMSG_F_SUPPRESS_AUTOREPLY	0x80u	/* X-Auto-Response-Suppress names
						   All, AutoReply or OOF */

/* Bits for struct inmsg.pgp */
#define INMSG_PGP_ENCRYPTED	0x01u	/* multipart/encrypted; pgp-encrypted */
#define INMSG_PGP_SIGNED	0x02u	/* multipart/signed; pgp-signature */

struct inmsg {
	/* Header facts (top-level header). */
	char *message_id;		/* without <>; NULL if absent */
	char *in_reply_to;		/* first id, without <>; may be NULL */
	struct inmsg_strlist references;	/* ids without <> */
	char *from_addr;		/* lower-cased addr-spec; may be NULL */
	char *from_name;		/* UTF-8 display name; may be NULL */
	unsigned from_count;		/* addresses in all From fields (a
					   field libetpan cannot read counts
					   one): more than 1 is suspect */
	char *return_path;		/* lower-cased; "" for <>; NULL if absent */
	struct inmsg_strlist recipients;	/* To, Cc, Delivered-To,
						   X-Original-To addr-specs,
						   lower-cased, no duplicates,
						   the first
						   INMSG_MAX_RECIPIENTS */
	char *subject;			/* UTF-8 (RFC 2047 decoded); may be NULL */
	int64_t date;			/* seconds since epoch; -1 if absent/bad */
	char *auto_submitted;		/* lower-cased value, no comments */
	char *precedence;		/* lower-cased value */
	char *list_id;			/* as given, unfolded */
	unsigned flags;			/* INMSG_F_* */
	struct inmsg_strlist auth_results;	/* raw Authentication-Results
						   values, unfolded, in order */
	char *content_type;		/* lower-case "type/subtype" of the body */
	unsigned header_count;

	/* Content. */
	char *body;			/* UTF-8 reply text, "" if none */
	size_t body_len;
	struct inmsg_attachment *attachments;
	size_t n_attachments;
	unsigned part_count;		/* MIME entities seen (incl. inner) */
	unsigned depth;			/* deepest nesting seen */
	size_t decoded_total;		/* bytes decoded so far */

	/* PGP/MIME (RFC 3156): only the message's root entity, or the root
	 * of the decrypted content, counts (see inmsg_parse). */
	unsigned pgp;			/* INMSG_PGP_* bits */
	char *pgp_encrypted;		/* the application/octet-stream payload */
	size_t pgp_encrypted_len;
	char *pgp_signed;		/* first part of multipart/signed, exact
					   bytes with line ends made CRLF */
	size_t pgp_signed_len;
	char *pgp_signature;		/* the application/pgp-signature part */
	size_t pgp_signature_len;
	unsigned nested_crypto;		/* signed or encrypted entities below
					   the root, kept as attachments */
	/* Protected headers: the header fields of the entity a signature
	 * or the encryption covers, when its Content-Type carries
	 * protected-headers="v1" (the signed part of the root
	 * multipart/signed, else the decrypted content's root). */
	struct inmsg_protected {
		int present;
		char *subject;			/* UTF-8; may be NULL */
		struct inmsg_strlist recipients;	/* To, Cc addr-specs */
	} prot;

	/* RFC 3464 delivery status, if the message carries one. */
	struct inmsg_dsn dsn;

	/* The limits it was parsed with (inmsg_reparse_inner reuses them). */
	struct inmsg_limits limits;
};

/*
 * inmsg_parse - parse raw[0..len) as one RFC 5322 message.
 *
 *	lim may be NULL (defaults). On success *out is a new struct inmsg
 *	(inmsg_free). On failure *out is NULL, err (may be NULL) holds a
 *	PHI-free reason fit for a quarantine folder, and the return is:
 *	-EMSGSIZE  raw size over max_size, or decoded total over max_decoded
 *	-ELOOP     nesting deeper than max_depth
 *	-E2BIG     more parts, header fields or attachments than allowed
 *	           (also the pre-scan refusals, see LIMITS)
 *	-EBADMSG   libetpan could not parse the bytes at all
 *	-ENOMEM    out of memory
 *	Malformed but parseable input (no boundary, missing final boundary,
 *	bad encodings, unknown charsets) parses as well as it can and is
 *	not an error: the reply may still be worth filing.
 *
 *	Body choice: the first text/plain part that is not an attachment,
 *	with later inline text/plain parts appended; else the first text/html
 *	turned into crude text (tags dropped, entities for the common
 *	characters decoded, block tags as line breaks). Other leaf parts,
 *	text parts with "attachment" disposition or a file name, and
 *	attached messages (message/rfc822, kept whole) are attachments.
 *	The parts of multipart/encrypted, the pgp-signature part and the
 *	parts of a delivery report are not attachments.
 *
 *	PGP/MIME counts only where it covers the whole message (RFC 3156):
 *	a multipart/encrypted that is the message's root entity (its
 *	payload in pgp_encrypted), a multipart/signed that is the root of
 *	the message or of the decrypted content (pgp_signed, pgp_signature;
 *	the body and attachments then come from its signed part alone).
 *	Any multipart/signed or multipart/encrypted below the root (beside
 *	other parts, inside the signed part, or encrypted again inside
 *	decrypted content) is kept whole as an attachment, its text not in
 *	the body, and counted in nested_crypto: never decrypted or believed.
 *
 *	Attachment file names lose any directory part; C0 and C1 controls
 *	become "_", and invisible format characters (bidirectional
 *	controls such as U+202E, zero-width characters, the soft hyphen,
 *	tag characters) are removed, so that a name shows what it is.
 */
int inmsg_parse(const char *raw, size_t len, const struct inmsg_limits *lim,
		struct inmsg **out, struct cp_error *err);

/*
 * inmsg_reparse_inner - parse decrypted content into m.
 *
 *	After decrypting m->pgp_encrypted the caller hands the plaintext (a
 *	MIME entity: headers, blank line, body) here. Its body replaces
 *	m->body when m has none, its attachments are appended, and an inner
 *	multipart/signed at its root fills pgp_signed and pgp_signature
 *	(sign-then-encrypt) and sets INMSG_PGP_SIGNED; its protected headers
 *	fill prot. Part counts and the decoded
 *	total continue from the outer parse under m->limits; the same
 *	errors as inmsg_parse. Header facts (subject, from) are not taken
 *	from the inner entity. On failure m is left valid (possibly with
 *	some attachments added) and should be quarantined.
 */
int inmsg_reparse_inner(struct inmsg *m, const char *raw, size_t len,
			struct cp_error *err);

/* inmsg_free - free m and everything it owns; NULL is a no-op. */
void inmsg_free(struct inmsg *m);

static inline void inmsg_freep(struct inmsg **m) { inmsg_free(*m); }
#define _cleanup_inmsg_ _cleanup_(inmsg_freep)

enum inmsg_class {
	INMSG_UNKNOWN = 0,
	INMSG_REPLY,
	INMSG_UNSUBSCRIBE,
	INMSG_DSN,
	INMSG_AUTOREPLY,
};

/* The configured addresses classification works from (all may be NULL). */
struct inmsg_addrs {
	const char *reply_domain;	/* reply+TOKEN@reply_domain */
	const char *bounce_domain;	/* bounce+VERP@bounce_domain */
	const char *unsubscribe;	/* the List-Unsubscribe mailto address */
};

#define INMSG_TOKEN_MAX 128

struct inmsg_class_info {
	char token[INMSG_TOKEN_MAX];	/* the TOKEN of reply+TOKEN@, or "" */
	char verp[INMSG_TOKEN_MAX];	/* the VERP of bounce+VERP@, or "" */
	const char *reason;		/* static, PHI-free: why this class */
};

/*
 * inmsg_classify - decide what kind of message m is.
 *
 *	Pure: looks only at m and a. info may be NULL; when given it is
 *	filled whatever the class (a reply token is reported even for an
 *	auto-reply sent to a reply address, so that the caller can find the
 *	thread and still not acknowledge). Rules, first match wins:
 *
 *	INMSG_DSN        a multipart/report; report-type=delivery-status
 *	                 (dsn.present), or any recipient is
 *	                 bounce+VERP@bounce_domain, or the From local part is
 *	                 mailer-daemon / postmaster / mail-daemon (with or
 *	                 without a DSN part: Gmail's text-only bounces).
 *	INMSG_AUTOREPLY  Auto-Submitted other than "no" (RFC 3834),
 *	                 X-Autoreply, X-Autorespond, Precedence bulk, junk,
 *	                 list or auto_reply, or a subject starting with an
 *	                 out-of-office marker in one of several languages
 *	                 ("Out of Office", "Automatic reply", "Auto:",
 *	                 "Abwesenheitsnotiz", "Respuesta automática",
 *	                 "Réponse automatique", ...).
 *	INMSG_UNSUBSCRIBE sent to the unsubscribe address (or to its tagged
 *	                 form LOCAL+TOKEN@DOMAIN, TOKEN then in info->token),
 *	                 or to a reply
 *	                 address with a subject that is just "unsubscribe"
 *	                 (any case, surrounding blanks ignored) - both are
 *	                 what a List-Unsubscribe mailto produces.
 *	INMSG_REPLY      sent to reply+TOKEN@reply_domain (domain compared
 *	                 case-insensitively; TOKEN is 1..127 characters from
 *	                 [A-Za-z0-9=_.-]).
 *	INMSG_UNKNOWN    anything else.
 *	Form submissions are replies; which thread is a form is the
 *	caller's business.
 */
enum inmsg_class inmsg_classify(const struct inmsg *m,
				const struct inmsg_addrs *a,
				struct inmsg_class_info *info);

/*
 * inmsg_names_reply_token - 1 when one of addrs is reply+TOKEN@reply_domain
 * with this token (compared case-insensitively: MTAs may fold the local
 * part), or with any token when token is NULL; else 0. For
 * m->prot.recipients: protected headers that bind what was signed or
 * encrypted to the conversation it was written for.
 */
int inmsg_names_reply_token(const struct inmsg_strlist *addrs,
			    const struct inmsg_addrs *a, const char *token);

/*
 * inmsg_no_autoresponse - whether m asks not to be answered automatically
 * (RFC 3834 section 2, and what mail systems do in practice): 1 when it
 * is list mail (List-Id, List-Post), carries X-Auto-Response-Suppress
 * naming All, AutoReply or OOF (case-insensitive, comma-separated; "None"
 * or other values alone suppress nothing), has a null Return-Path (<>),
 * or is what inmsg_classify calls an auto-reply; else 0. Pure. why (may
 * be NULL) gets a static PHI-free reason ("list mail", ...) or NULL.
 * Such a reply is still a reply (filed when authenticated); carepost
 * sends it no acknowledgement or other automatic answer.
 */
int inmsg_no_autoresponse(const struct inmsg *m, const char **why);

/* inmsg_class_name - "reply", "unsubscribe", "dsn", "autoreply", "unknown". */
const char *inmsg_class_name(enum inmsg_class c);

/*
 * inmsg_to_json - a summary of m for "carepostctl ingest --dry-run".
 *
 *	*out is a new jansson object (json_decref) with: class, reason,
 *	message_id, in_reply_to, from (address: this is printed for the
 *	admin on their own terminal; never log it), token_present, verp,
 *	has_pgp_encrypted, has_pgp_signature, nested_signed_or_encrypted,
 *	protected_headers, from_count, auto_submitted, part_count,
 *	depth, body_bytes, authentication_results (count), no_autoresponse
 *	(inmsg_no_autoresponse's reason, or null), attachments
 *	[{filename, content_type, size}], dsn {present, original_envelope_id,
 *	orig_message_id, recipients [{action, status, final_recipient,
 *	diagnostic_code}]}. The token value itself is not included.
 *	Returns 0 or -ENOMEM.
 */
int inmsg_to_json(const struct inmsg *m, const struct inmsg_addrs *a,
		  json_t **out);

#endif
