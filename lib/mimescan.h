/*
 * NAME
 *	mimescan - a cheap look at a message's raw bytes before it is parsed
 * SYNOPSIS
 *	#include "mimescan.h"
 *
 *	if ((r = mimescan_check(raw, len, &lim, &err)) < 0) refuse(err.text);
 *	n = mimescan_header_fields(raw, len);
 *	hlen = mimescan_header_len(raw, len);
 * DESCRIPTION
 *	libetpan's MIME parser recurses once per nesting level, allocates
 *	once per part and scans the rest of the message again at every
 *	level, so a message built to be costly must be refused before it
 *	sees it. These functions read the bytes line by line, once.
 *
 *	mimescan_check - count the lines starting with "Content-Type" and
 *	those starting with "--" (at most 2 x max_parts + 16 of the first,
 *	capped at 1024, and 8 x max_parts of the second, at least 4096:
 *	-E2BIG beyond), and estimate the nesting depth: each multipart
 *	Content-Type (its value read with libetpan's own parser, so that the
 *	boundary is the one the parse will use) opens a level named by its
 *	boundary, each message/ Content-Type an unnamed one; a close
 *	delimiter of an open boundary ends it and every level inside it, a
 *	delimiter ends the levels inside it. The estimate errs high (a
 *	boundary over 200 bytes, or one it cannot read, never closes), never
 *	low for well-formed nesting; deeper than max_depth is -ELOOP ("...
 *	(seen before parsing)").
 *
 *	mimescan_header_fields - the header fields of the header block at
 *	raw (lines that do not start with a blank, up to the first empty
 *	line).
 *
 *	mimescan_header_len - the bytes of that header block, its blank
 *	line included; len when there is no blank line.
 * ERRORS
 *	mimescan_check: 0, -E2BIG, -ELOOP or -ENOMEM, with a PHI-free reason
 *	in err (may be NULL). The others cannot fail.
 * OWNERSHIP
 *	raw is only read and need not be NUL-terminated.
 * THREAD SAFETY
 *	Reentrant. mimescan_check needs a few kilobytes of stack per
 *	possible level (at most 4 x INMSG_MAX_DEPTH_DEFAULT + 2 levels).
 */
#ifndef CAREPOST_MIMESCAN_H
#define CAREPOST_MIMESCAN_H

#include <stddef.h>

#include "inmsgtypes.h"
#include "util.h"

int mimescan_check(const char *raw, size_t len, const struct inmsg_limits *lim,
		   struct cp_error *err);
unsigned mimescan_header_fields(const char *raw, size_t len);
size_t mimescan_header_len(const char *raw, size_t len);

#endif
