/*
 * pgppacket.c - OpenPGP packet framing (pgppacket.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>

#include "pgppacket.h"

int
pgppacket_read(const uint8_t *key, size_t len, size_t off, unsigned *tag,
	       size_t *start, size_t *body)
{
	const uint8_t *p = key + off;
	size_t left = len - off, hdr;

	if (left < 2 || !(p[0] & 0x80))
		return -EINVAL;
	if (p[0] & 0x40) {			/* new format */
		*tag = p[0] & 0x3f;
		if (p[1] < 192) {
			*body = p[1];
			hdr = 2;
		} else if (p[1] < 224) {
			if (left < 3)
				return -EINVAL;
			*body = ((size_t)(p[1] - 192) << 8) + p[2] + 192;
			hdr = 3;
		} else if (p[1] == 255) {
			if (left < 6)
				return -EINVAL;
			*body = (size_t)p[2] << 24 | (size_t)p[3] << 16 |
				(size_t)p[4] << 8 | p[5];
			hdr = 6;
		} else {
			return -EINVAL;		/* partial */
		}
	} else {				/* old format */
		*tag = (p[0] >> 2) & 0x0f;
		switch (p[0] & 3) {
		case 0:
			*body = p[1];
			hdr = 2;
			break;
		case 1:
			if (left < 3)
				return -EINVAL;
			*body = (size_t)p[1] << 8 | p[2];
			hdr = 3;
			break;
		case 2:
			if (left < 5)
				return -EINVAL;
			*body = (size_t)p[1] << 24 | (size_t)p[2] << 16 |
				(size_t)p[3] << 8 | p[4];
			hdr = 5;
			break;
		default:
			return -EINVAL;		/* indeterminate */
		}
	}
	if (*body > left - hdr)
		return -EINVAL;
	*start = off + hdr;
	return 0;
}

int
pgppacket_v4_fpr(const uint8_t *key, size_t len, char fpr[PGPPACKET_FPR_SIZE])
{
	static const char hex[] = "0123456789ABCDEF";
	size_t start, body;
	unsigned tag;
	uint8_t digest[20], *buf;

	/* a public key, version 4; the fingerprint hashes its body behind
	 * a two-byte length */
	if (len == 0 || pgppacket_read(key, len, 0, &tag, &start, &body) < 0 || tag != 6 ||
	    body < 6 || body > 0xffff || key[start] != 4)
		return -EINVAL;
	if ((buf = malloc(body + 3)) == NULL)
		return -ENOMEM;
	buf[0] = 0x99;
	buf[1] = (uint8_t)(body >> 8);
	buf[2] = (uint8_t)body;
	memcpy(buf + 3, key + start, body);
	gcry_md_hash_buffer(GCRY_MD_SHA1, digest, buf, body + 3);
	free(buf);
	for (size_t i = 0; i < sizeof(digest); i++) {
		fpr[2 * i] = hex[digest[i] >> 4];
		fpr[2 * i + 1] = hex[digest[i] & 15];
	}
	fpr[40] = '\0';
	return 0;
}


int
pgppacket_next_key(const uint8_t *data, size_t len, size_t off, size_t *end)
{
	size_t start, body;
	unsigned tag;

	if (off >= len || pgppacket_read(data, len, off, &tag, &start, &body) < 0 ||
	    tag != 6)
		return -EINVAL;
	for (off = start + body; off < len; off = start + body) {
		if (pgppacket_read(data, len, off, &tag, &start, &body) < 0)
			return -EINVAL;
		if (tag == 6)
			break;
	}
	*end = off;
	return 0;
}
