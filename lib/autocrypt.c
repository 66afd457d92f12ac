/*
 * autocrypt.c - an Autocrypt header read as a key candidate (autocrypt.h).
 */
#include <ctype.h>
#include <strings.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "autocrypt.h"
#include "pgppacket.h"

/* b64 - the value of a base64 digit, or -1. */
static int
b64(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * unbase64 - s (white space ignored, '=' padding only at the end) decoded
 * into a malloc'd *out: 0, -EINVAL, -EMSGSIZE or -ENOMEM.
 */
static int
unbase64(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
	uint8_t *o = malloc(len / 4 * 3 + 3);
	uint32_t acc = 0;
	size_t n = 0, digits = 0, pad = 0;

	if (o == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = b64(c)) < 0)
			goto bad;	/* a digit after padding, or no digit */
		acc = acc << 6 | (uint32_t)v;
		if (++digits % 4 == 0) {
			o[n++] = (uint8_t)(acc >> 16);
			o[n++] = (uint8_t)(acc >> 8);
			o[n++] = (uint8_t)acc;
			acc = 0;
		}
	}
	switch (digits % 4) {
	case 0:
		if (pad != 0)
			goto bad;
		break;
	case 2:
		if (pad != 0 && pad != 2)
			goto bad;
		o[n++] = (uint8_t)(acc >> 4);
		break;
	case 3:
		if (pad > 1)
			goto bad;
		o[n++] = (uint8_t)(acc >> 10);
		o[n++] = (uint8_t)(acc >> 2);
		break;
	default:
		goto bad;
	}
	if (n == 0)
		goto bad;
	if (n > AUTOCRYPT_MAX_KEY) {
		free(o);
		return -EMSGSIZE;
	}
	*out = o;
	*outlen = n;
	return 0;
bad:
	free(o);
	return -EINVAL;
}

int
autocrypt_v4_fpr(const uint8_t *key, size_t len, char fpr[AUTOCRYPT_FPR_SIZE])
{
	return pgppacket_v4_fpr(key, len, fpr);
}

int
autocrypt_one_key(const uint8_t *key, size_t len)
{
	size_t off, start, body;
	int uids = 0;

	for (off = 0; off < len; off = start + body) {
		unsigned tag;

		if (pgppacket_read(key, len, off, &tag, &start, &body) < 0)
			return -EINVAL;
		if (off == 0) {
			if (tag != 6)
				return -EINVAL;
			continue;
		}
		switch (tag) {
		case 2:		/* signature */
		case 12:	/* trust */
		case 14:	/* public subkey */
		case 17:	/* user attribute */
			break;
		case 13:	/* user id */
			uids++;
			break;
		default:	/* another key, a secret key, data */
			return -EINVAL;
		}
	}
	return off == len && len > 0 && uids > 0 ? 0 : -EINVAL;
}

/* trim - [*a, *b) without white space at either end. */
static void
trim(const char *s, size_t *a, size_t *b)
{
	while (*a < *b && isspace((unsigned char)s[*a]))
		(*a)++;
	while (*b > *a && isspace((unsigned char)s[*b - 1]))
		(*b)--;
}

/* addr_ok - a plain addr-spec: one '@', printable ASCII, no space or
 * specials that would need quoting. */
static int
addr_ok(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);

	if (n == 0 || n > AUTOCRYPT_ADDR_MAX || at == NULL || at == s ||
	    at == s + n - 1 || memchr(at + 1, '@', (size_t)(s + n - at - 1)) != NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 127 || strchr("<>()[]\\,;:\"", s[i]))
			return 0;
	return 1;
}

int
autocrypt_parse(const char *value, size_t len, struct autocrypt *ac)
{
	const char *keydata = NULL;
	size_t keydata_len = 0, i = 0;
	int have_addr = 0, have_pref = 0, r;

	memset(ac, 0, sizeof(*ac));
	if (value == NULL)
		return -EINVAL;
	if (len > AUTOCRYPT_MAX_VALUE)
		return -EMSGSIZE;
	while (i < len) {
		const char *semi = memchr(value + i, ';', len - i);
		size_t end = semi ? (size_t)(semi - value) : len;
		size_t a = i, b = end, eq, na, nb, va, vb;
		const char *e;

		i = end + (semi != NULL);
		trim(value, &a, &b);
		if (a == b) {
			if (semi == NULL)
				break;
			continue;	/* an empty attribute ("a=1;;b=2", a final ';') */
		}
		if ((e = memchr(value + a, '=', b - a)) == NULL)
			return -EINVAL;
		eq = (size_t)(e - value);
		na = a, nb = eq, va = eq + 1, vb = b;
		trim(value, &na, &nb);
		trim(value, &va, &vb);
		if (nb - na == 4 && strncasecmp(value + na, "addr", 4) == 0) {
			if (have_addr++ || !addr_ok(value + va, vb - va))
				return -EINVAL;
			for (size_t k = 0; k < vb - va; k++)
				ac->addr[k] = (char)tolower((unsigned char)value[va + k]);
			ac->addr[vb - va] = '\0';
		} else if (nb - na == 14 && strncasecmp(value + na, "prefer-encrypt", 14) == 0) {
			if (have_pref++)
				return -EINVAL;
			ac->mutual = vb - va == 6 && strncasecmp(value + va, "mutual", 6) == 0;
		} else if (nb - na == 7 && strncasecmp(value + na, "keydata", 7) == 0) {
			if (keydata != NULL)
				return -EINVAL;
			keydata = value + va;
			keydata_len = vb - va;
		} else if (nb == na || value[na] != '_') {
			return -EINVAL;	/* an unknown critical attribute */
		}
	}
	if (!have_addr || keydata == NULL)
		return -EINVAL;
	r = unbase64(keydata, keydata_len, &ac->key, &ac->keylen);
	if (r == 0)
		r = autocrypt_one_key(ac->key, ac->keylen);
	if (r == 0)
		r = autocrypt_v4_fpr(ac->key, ac->keylen, ac->fpr);
	if (r < 0)
		autocrypt_free(ac);
	return r;
}

/* tag - the value of tag name in the DKIM-Signature value sig, trimmed,
 * into [*a, *b); 0 when found once, -1 when absent, twice or unreadable. */
static int
tag(const char *sig, const char *name, size_t *a, size_t *b)
{
	size_t len = strlen(sig), i = 0, nl = strlen(name);
	int found = 0;

	while (i < len) {
		const char *semi = memchr(sig + i, ';', len - i);
		size_t end = semi ? (size_t)(semi - sig) : len, ta = i, tb = end;
		const char *eq;

		i = end + (semi != NULL);
		trim(sig, &ta, &tb);
		if (ta == tb)
			continue;
		if ((eq = memchr(sig + ta, '=', tb - ta)) == NULL)
			return -1;
		{
			size_t na = ta, nb = (size_t)(eq - sig), va = nb + 1, vb = tb;

			trim(sig, &na, &nb);
			trim(sig, &va, &vb);
			if (nb - na == nl && strncmp(sig + na, name, nl) == 0) {
				if (found++)
					return -1;
				*a = va;
				*b = vb;
			}
		}
	}
	return found ? 0 : -1;
}

/* lists - the h= value [a, b) of sig names field (ASCII case ignored). */
static int
lists(const char *sig, size_t a, size_t b, const char *field)
{
	size_t fl = strlen(field);

	while (a < b) {
		const char *colon = memchr(sig + a, ':', b - a);
		size_t end = colon ? (size_t)(colon - sig) : b, na = a, nb = end;

		trim(sig, &na, &nb);
		if (nb - na == fl && strncasecmp(sig + na, field, fl) == 0)
			return 1;
		a = end + (colon != NULL);
	}
	return 0;
}

int
autocrypt_dkim_covers(const char *const *sigs, size_t n, const char *domain)
{
	size_t dl = domain ? strlen(domain) : 0, mine = 0;

	if (dl == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		size_t da, db, ha, hb;

		if (sigs[i] == NULL || tag(sigs[i], "d", &da, &db) < 0)
			return 0;	/* unreadable: it could be the one */
		if (db - da != dl || strncasecmp(sigs[i] + da, domain, dl) != 0)
			continue;
		mine++;
		if (tag(sigs[i], "h", &ha, &hb) < 0 ||
		    !lists(sigs[i], ha, hb, "autocrypt"))
			return 0;
	}
	return mine > 0;
}

void
autocrypt_free(struct autocrypt *ac)
{
	free(ac->key);
	memset(ac, 0, sizeof(*ac));
}
