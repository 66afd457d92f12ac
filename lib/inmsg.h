/*
 * NAME
 *	inmsg - parse one inbound RFC 5322 message
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
 *	module puts limits around it and walks the MIME tree to pick out
 *	what matters; the pieces of the work are modules of their own:
 *
 *	inmsgtypes.h	struct inmsg and what it holds (what the rest of
 *			the inbound path reads)
 *	mimescan.c	the pre-scan of the raw bytes (see LIMITS)
 *	msghdr.c	the header facts, and protected headers
 *	mailtext.c	header values and text as clean UTF-8 (RFC 2047,
 *			charsets)
 *	rfc2231.c	parameter values and attachment file names
 *	html2text.c	the text of an HTML-only body
 *	trim.c		the reply cut from the body: m->reply, without the
 *			quoted history, signature or footers (made here,
 *			so that in carepostd it comes from behind the wall)
 *	dsn.c		the fields of a delivery-status report
 *	classify.c	reply, unsubscribe, bounce or auto-reply
 *	inmsgjson.c	the summary "carepostctl ingest --dry-run" prints
 *
 *	This header brings in inmsgtypes.h, classify.h and inmsgjson.h, so
 *	that a caller of the parse-and-classify path includes one header.
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
 * OWNERSHIP
 *	inmsg_parse allocates *out; the caller frees it with inmsg_free.
 *	The struct holds copies: the raw buffer may be freed right after
 *	inmsg_parse returns (inmsg_reparse_inner copies too). Every string
 *	and array in a struct inmsg belongs to it.
 * THREAD SAFETY
 *	Reentrant: no shared state (libetpan's parser and charconv are
 *	reentrant). A struct inmsg belongs to one thread at a time.
 */
#ifndef CAREPOST_INMSG_H
#define CAREPOST_INMSG_H

#include <stddef.h>
#include <stdint.h>

#include "classify.h"
#include "inmsgjson.h"
#include "inmsgtypes.h"
#include "util.h"

/* inmsg_limits_default - fill lim with the defaults above. */
void inmsg_limits_default(struct inmsg_limits *lim);

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
/*
 * inmsg_forget_content - m's content dropped: body and reply made "", the
 * attachments, protected headers and signed part freed,
 * the decoded total, part count and nested_crypto 0, the signed and
 * body-from-HTML bits cleared; its header facts kept. Before content is
 * made again from other bytes (inmsg_reparse_inner): nothing of the
 * first parse survives. 0, or -ENOMEM (m stays valid).
 */
int inmsg_forget_content(struct inmsg *m);

void inmsg_free(struct inmsg *m);

static inline void inmsg_freep(struct inmsg **m) { inmsg_free(*m); }
#define _cleanup_inmsg_ _cleanup_(inmsg_freep)

#endif
