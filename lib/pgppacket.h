/*
 * NAME
 *	pgppacket - OpenPGP packet framing (RFC 4880 4.2), no cryptography
 * SYNOPSIS
 *	#include "pgppacket.h"
 *
 *	pgppacket_read(data, len, off, &tag, &start, &body);
 *	pgppacket_v4_fpr(key, len, fpr);
 *	for (off = 0; off < len; off = end)
 *		pgppacket_next_key(data, len, off, &end);
 * DESCRIPTION
 *	pgppacket_read reads the header of the packet at data[off..len): its
 *	tag, where its body starts and how long the body is. Old and new
 *	formats; a partial or indeterminate length is refused (no packet of
 *	a transferable public key has one), as is a body that runs past the
 *	data.
 *
 *	pgppacket_v4_fpr gives the fingerprint of the version 4 public-key
 *	packet that key begins with (SHA-1 of the packet, RFC 4880 12.2), as
 *	40 upper-case hex digits.
 *
 *	pgppacket_next_key finds where the key that starts at off (a
 *	public-key packet, tag 6) ends: at the next public-key packet or at
 *	len. It splits what "gpg --export" writes for several keys.
 * ERRORS
 *	-EINVAL for framing that does not read (or, for pgppacket_v4_fpr and
 *	pgppacket_next_key, data that does not begin with a public-key
 *	packet); pgppacket_v4_fpr: -ENOMEM.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_PGPPACKET_H
#define CAREPOST_PGPPACKET_H

#include <stddef.h>
#include <stdint.h>

#define PGPPACKET_FPR_SIZE	41	/* 40 hex digits and NUL */

int pgppacket_read(const uint8_t *data, size_t len, size_t off, unsigned *tag,
		   size_t *start, size_t *body);
int pgppacket_v4_fpr(const uint8_t *key, size_t len, char fpr[PGPPACKET_FPR_SIZE]);
int pgppacket_next_key(const uint8_t *data, size_t len, size_t off, size_t *end);

#endif
