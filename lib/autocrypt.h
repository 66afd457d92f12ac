/*
 * NAME
 *	autocrypt - an Autocrypt header (Autocrypt Level 1) read as a key
 *	candidate
 * SYNOPSIS
 *	#include "autocrypt.h"
 *
 *	struct autocrypt ac;
 *	if (autocrypt_parse(value, len, &ac) == 0) {
 *		... ac.addr, ac.mutual, ac.fpr, ac.key, ac.keylen ...
 *		autocrypt_free(&ac);
 *	}
 * DESCRIPTION
 *	autocrypt_parse reads one Autocrypt header value (unfolded; white
 *	space around attributes and inside keydata ignored): attributes
 *	"name=value" separated by ';'. It needs "addr" (an addr-spec, kept
 *	lower-cased) and "keydata" (the base64 of an OpenPGP transferable
 *	public key), takes "prefer-encrypt=mutual" (any other value is no
 *	preference), ignores names that begin with '_' (non-critical), and
 *	refuses any other name, a name given twice, or an attribute without
 *	'='. The key must be one transferable public key (autocrypt_one_key:
 *	a version 4 public-key packet first, then only signatures, user
 *	ids, user attributes, trust packets and public subkeys, at least one
 *	user id, every packet of a definite length and within the data, and
 *	nothing after: no second key, no secret key, so that what a portal
 *	imports is the key whose fingerprint it showed); its fingerprint
 *	(SHA-1 of the first packet, RFC 4880 12.2) is given as 40 upper-case
 *	hex digits. Whether the key is good (its self-signatures, an
 *	encryption subkey, expiry) is gpg's to say when someone imports it:
 *	a candidate is a suggestion, never a key carepost encrypts to.
 *
 *	At most AUTOCRYPT_MAX_VALUE bytes of value and AUTOCRYPT_MAX_KEY of
 *	key are read; a longer one is refused.
 * ERRORS
 *	autocrypt_parse: -EINVAL (what the header does not allow, with no
 *	more said: it came from outside), -EMSGSIZE (too long), -ENOMEM.
 * OWNERSHIP
 *	ac.key is malloc'd: autocrypt_free releases it (and zeroes ac).
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_AUTOCRYPT_H
#define CAREPOST_AUTOCRYPT_H

#include <stddef.h>
#include <stdint.h>

#define AUTOCRYPT_MAX_VALUE	(64u * 1024)
#define AUTOCRYPT_MAX_KEY	(32u * 1024)
#define AUTOCRYPT_ADDR_MAX	320u
#define AUTOCRYPT_FPR_SIZE	41	/* 40 hex digits and NUL */

struct autocrypt {
	char addr[AUTOCRYPT_ADDR_MAX + 1];	/* lower-cased */
	int mutual;				/* prefer-encrypt=mutual */
	char fpr[AUTOCRYPT_FPR_SIZE];		/* of the primary key */
	uint8_t *key;				/* the keydata, decoded */
	size_t keylen;
};

int autocrypt_parse(const char *value, size_t len, struct autocrypt *ac);
void autocrypt_free(struct autocrypt *ac);

/* autocrypt_v4_fpr - the fingerprint of the version 4 public-key packet
 * that key begins with, into fpr: 0, or -EINVAL. */
int autocrypt_v4_fpr(const uint8_t *key, size_t len, char fpr[AUTOCRYPT_FPR_SIZE]);
/* autocrypt_one_key - 0 when key is one transferable public key (above),
 * else -EINVAL. */
int autocrypt_one_key(const uint8_t *key, size_t len);

/*
 * autocrypt_dkim_covers - 1 when the DKIM-Signature values sigs hold at
 * least one whose d= is domain (ASCII case ignored) and every such one
 * lists "Autocrypt" in its h= (so the signature that passed, whichever
 * it is, signed the header: DKIM signs only the fields h= names); 0
 * otherwise, a signature that does not read included (tags "name=value"
 * separated by ';', white space around them ignored; h= names separated
 * by ':').
 */
int autocrypt_dkim_covers(const char *const *sigs, size_t n, const char *domain);

#endif
