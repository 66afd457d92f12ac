/*
 * NAME
 *	inmsgtypes - struct inmsg: one received message, parsed
 * SYNOPSIS
 *	#include "inmsgtypes.h"
 * DESCRIPTION
 *	The structures inmsg_parse (inmsg.h) fills and the rest of the
 *	inbound path reads: classification (classify.h), the dry-run summary
 *	(inmsgjson.h), authentication and filing (inbound.h), and the parse
 *	helper's wire format. Kept apart from the parser so that what reads
 *	a parsed message does not depend on how it was parsed.
 *
 *	Every string in a struct inmsg is NUL-terminated, valid UTF-8 and
 *	holds no NUL bytes (invalid bytes become U+FFFD), except the byte
 *	buffers that carry a length (attachment data, PGP payloads).
 *	Addresses are lower-cased addr-specs. Message ids have no "<>".
 * ERRORS
 *	None: declarations only.
 * OWNERSHIP
 *	A struct inmsg owns every string and array it points to;
 *	inmsg_free (inmsg.h) frees it all.
 * THREAD SAFETY
 *	A struct inmsg belongs to one thread at a time.
 */
#ifndef CAREPOST_INMSGTYPES_H
#define CAREPOST_INMSGTYPES_H

#include <stddef.h>
#include <stdint.h>

#include "arf.h"
#include "dsn.h"

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
#define INMSG_F_KNOWN			0xFFu	/* every bit above */

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
	char *reply;			/* the body cut to what the patient
					 * wrote (trim_reply): no quoted
					 * history, signature or footer; the
					 * body itself when trim_reply refuses
					 * it; never longer than the body */
	size_t reply_len;
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

	/* RFC 5965 feedback report, only when the message itself is a
	 * multipart/report; report-type=feedback-report (inmsg_parse). */
	struct inmsg_arf arf;

	/* The limits it was parsed with (inmsg_reparse_inner reuses them). */
	struct inmsg_limits limits;
};

#endif
