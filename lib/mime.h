/*
 * NAME
 *	mime - build outbound RFC 5322 / MIME text: headers, parts, encodings
 * SYNOPSIS
 *	#include "mime.h"
 * DESCRIPTION
 *	Everything produced here uses CRLF line endings and is safe to hand
 *	to an SMTP client: no bare CR or LF, no NUL, header lines folded
 *	under 78 columns where possible and never over 998.
 *
 *	Header values come from templates and from portal data, so they are
 *	hostile: mime_header appends "Name: value" with every CR, LF and
 *	other control character in value replaced by a space (no header
 *	injection), invalid UTF-8 replaced by U+FFFD, and non-ASCII text
 *	encoded as RFC 2047 UTF-8 encoded-words ("=?UTF-8?Q?...?=" or B,
 *	whichever is shorter) that never split a UTF-8 sequence.
 *
 *	mime_address appends an address header ("From", "Reply-To", "To")
 *	with an optional display name (encoded as above, quoted as an RFC
 *	5322 phrase when ASCII) and an addr-spec that mime_addr_valid
 *	accepts; otherwise -EINVAL. mime_addr_valid wants 3..254 bytes of
 *	printable ASCII without space or any of <>,"()\;: , exactly one
 *	'@' with 1..64 bytes before it and something after it, and no dot
 *	at either end of either side nor two in a row.
 *
 *	mime_text_part appends a complete text/plain; charset=utf-8 entity
 *	(its Content-Type and Content-Transfer-Encoding headers, a blank
 *	line, the body): 7bit when the text is ASCII with lines of at most 76
 *	bytes, quoted-printable otherwise (base64 if QP would be over 1.5 times
 *	larger). Input line endings (LF or CRLF) become CRLF; invalid UTF-8
 *	is replaced by U+FFFD. mime_text_part_as does the same with another
 *	Content-Type value ("text/calendar; charset=utf-8; method=PUBLISH")
 *	and, when disposition is not NULL, a Content-Disposition header;
 *	both are the caller's, written as given.
 *
 *	mime_qp_encode and mime_base64_encode append encoded bodies with CRLF
 *	line breaks (76 columns).
 *
 *	mime_boundary writes a random boundary ("=_carepost_" and 24 random
 *	base32 characters) from libgcrypt's nonce generator.
 * ERRORS
 *	-EINVAL: mime_header with a header name that is empty, over 76
 *	bytes or not printable ASCII without ':', or a NULL value;
 *	mime_address with such a name or an address mime_addr_valid
 *	refuses. Otherwise the buffer's -EFBIG (out->max) or -ENOMEM.
 *	mime_header and mime_address leave out as it was on failure;
 *	mime_text_part, mime_qp_encode and mime_base64_encode may leave
 *	part of their output appended. mime_boundary and mime_date cannot
 *	fail (mime_date writes the epoch for a time gmtime cannot show).
 * OWNERSHIP
 *	Output is appended to the caller's buffer; mime_boundary and
 *	mime_date write into the caller's array. Inputs are borrowed for
 *	the call.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_MIME_H
#define CAREPOST_MIME_H

#include <stddef.h>

#include "buf.h"

#define MIME_BOUNDARY_SIZE 40

int mime_header(struct buf *out, const char *name, const char *value);
int mime_address(struct buf *out, const char *name, const char *display,
		 const char *addr);
int mime_text_part(struct buf *out, const char *text, size_t len);
int mime_text_part_as(struct buf *out, const char *content_type,
		      const char *disposition, const char *text, size_t len);
int mime_qp_encode(struct buf *out, const char *data, size_t len);
int mime_base64_encode(struct buf *out, const void *data, size_t len);
void mime_boundary(char out[MIME_BOUNDARY_SIZE]);

/* mime_addr_valid - 1 if addr is an acceptable ASCII addr-spec. */
int mime_addr_valid(const char *addr);

/* mime_date - an RFC 5322 date for t (UTC, "+0000") into out (64 bytes). */
void mime_date(long long t, char out[64]);

#endif
