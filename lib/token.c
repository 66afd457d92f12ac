/*
 * NAME
 *	token - HMAC reply tokens carried in Reply-To addresses
 * DESCRIPTION
 *	See token.h. The 25 bytes behind the 40 base32 characters are
 *
 *	    [0]       version (1)
 *	    [1..11)   thread id
 *	    [11..15)  expiry, days since the epoch, big-endian
 *	    [15..25)  HMAC-SHA256(key, bytes [0..15)), first 10 bytes
 *
 *	token_make rounds the expiry up to a whole day, so a token never
 *	expires before the time asked for; token_verify reports the rounded
 *	time. A token is expired when now is past that time. When the MAC
 *	is good but the token has expired, token_verify still fills thread
 *	and expires (they are authentic) and returns -ETIME, so that the
 *	caller can tell the sender which conversation the late reply was for.
 *
 *	The MAC is checked before the version and the expiry are looked at,
 *	and compared in constant time, so a forger learns nothing from which
 *	error comes back except "forged".
 *
 *	A tag is HMAC-SHA256(key, LABEL NUL DATA): its first 50 bits as 10
 *	base32 characters. The label keeps tags of one use from being
 *	accepted for another (a Message-ID's tag is no VERP tag), and since
 *	a label starts with a letter and a token's signed bytes start with
 *	the version byte 1, no tag is ever a token's MAC or the reverse. A
 *	recipient tag's DATA is the thread id and the recipient index as a
 *	big-endian u32, so neither the thread nor the index can be changed.
 */
#include "token.h"

#include <ctype.h>
#include <gcrypt.h>
#include <pthread.h>

#define TOKEN_VERSION	1
#define TOKEN_CHARS	40
#define TOKEN_BYTES	25
#define TOKEN_SIGNED	15	/* version + thread + expiry */
#define TOKEN_MAC_BYTES	10
#define TOKEN_MIN_KEY	16
#define TOKEN_TAG_BYTES	7	/* the MAC bytes a tag's 50 bits come from */
#define DAY		86400

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static pthread_once_t gcrypt_once = PTHREAD_ONCE_INIT;

static void
token_gcrypt_init(void)
{
	/* Idempotent; another module may have initialised libgcrypt first. */
	gcry_check_version(NULL);
}

/*
 * token_mac - the first outlen (at most 32) bytes of HMAC-SHA256(key,
 * [label NUL] data). Tokens have no label; a tag's label (never empty)
 * starts with a letter, where a token's signed bytes start with the
 * version byte 1, so no tag input is ever a token's.
 */
static int
token_mac(const void *key, size_t keylen, const char *label,
	  const uint8_t *data, size_t len, uint8_t *out, size_t outlen)
{
	uint8_t mac[32];
	size_t maclen = sizeof(mac);
	gcry_mac_hd_t h;
	int r = 0;

	pthread_once(&gcrypt_once, token_gcrypt_init);
	if (outlen > sizeof(mac))
		return -EINVAL;
	if (gcry_mac_open(&h, GCRY_MAC_HMAC_SHA256, 0, NULL) != 0)
		return -EIO;
	if (gcry_mac_setkey(h, key, keylen) != 0 ||
	    (label != NULL && gcry_mac_write(h, label, strlen(label) + 1) != 0) ||
	    (len > 0 && gcry_mac_write(h, data, len) != 0) ||
	    gcry_mac_read(h, mac, &maclen) != 0 || maclen < outlen)
		r = -EIO;
	gcry_mac_close(h);
	if (r == 0)
		memcpy(out, mac, outlen);
	explicit_bzero(mac, sizeof(mac));
	return r;
}

/*
 * b32_encode - the first nchars quintets of in as base32, NUL-terminated;
 * in holds at least ceil(5 * nchars / 8) bytes (a token's 25 bytes are
 * exactly 40 quintets; a tag's 50 bits are the start of 7 bytes).
 */
static void
b32_encode(const uint8_t *in, size_t nchars, char *out)
{
	unsigned int acc = 0, bits = 0;
	size_t i = 0, o = 0;

	while (o < nchars) {
		if (bits < 5) {
			acc = (acc << 8) | in[i++];
			bits += 8;
		}
		bits -= 5;
		out[o++] = b32_alphabet[(acc >> bits) & 31];
		acc &= (1u << bits) - 1;
	}
	out[o] = '\0';
}

static int
b32_value(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/* Returns -1 on success or the position of the first bad character. */
static int
b32_decode(const char *in, uint8_t out[TOKEN_BYTES])
{
	unsigned int acc = 0, bits = 0;
	size_t i, o = 0;

	for (i = 0; i < TOKEN_CHARS; i++) {
		int v = b32_value(in[i]);

		if (v < 0)
			return (int)i;
		acc = (acc << 5) | (unsigned int)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return -1;
}

/* Constant time in len: no early exit on the first difference. */
static int
token_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	volatile uint8_t diff = 0;
	size_t i;

	for (i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

int
token_make(const void *key, size_t keylen,
	   const uint8_t thread[TOKEN_THREAD_BYTES], int64_t expires,
	   char out[TOKEN_SIZE])
{
	uint8_t raw[TOKEN_BYTES];
	int64_t days;
	int r;

	if (key == NULL || keylen < TOKEN_MIN_KEY || thread == NULL ||
	    out == NULL)
		return -EINVAL;
	if (expires < 0)
		return -ERANGE;
	days = expires / DAY + (expires % DAY != 0);
	if (days > (int64_t)UINT32_MAX)
		return -ERANGE;

	raw[0] = TOKEN_VERSION;
	memcpy(raw + 1, thread, TOKEN_THREAD_BYTES);
	raw[11] = (uint8_t)(days >> 24);
	raw[12] = (uint8_t)(days >> 16);
	raw[13] = (uint8_t)(days >> 8);
	raw[14] = (uint8_t)days;
	r = token_mac(key, keylen, NULL, raw, TOKEN_SIGNED, raw + TOKEN_SIGNED,
		      TOKEN_MAC_BYTES);
	if (r < 0)
		return r;
	b32_encode(raw, TOKEN_CHARS, out);
	return 0;
}

int
token_verify(const void *key, size_t keylen, const char *token,
	     int64_t now, uint8_t thread[TOKEN_THREAD_BYTES],
	     int64_t *expires, struct cp_error *err)
{
	uint8_t raw[TOKEN_BYTES], mac[TOKEN_MAC_BYTES];
	int64_t exp;
	size_t len;
	int r, bad;

	if (thread)
		memset(thread, 0, TOKEN_THREAD_BYTES);
	if (expires)
		*expires = 0;
	if (key == NULL || keylen < TOKEN_MIN_KEY)
		return cp_error_set(err, -EINVAL,
				    "token: key shorter than %d bytes",
				    TOKEN_MIN_KEY);
	if (token == NULL)
		return cp_error_set(err, -EBADMSG, "token: missing");
	len = strnlen(token, TOKEN_CHARS + 1);
	if (len != TOKEN_CHARS)
		return cp_error_set(err, -EBADMSG,
				    "token: length is not %d characters",
				    TOKEN_CHARS);
	bad = b32_decode(token, raw);
	if (bad >= 0)
		return cp_error_set(err, -EBADMSG,
				    "token: invalid character at position %d",
				    bad + 1);

	r = token_mac(key, keylen, NULL, raw, TOKEN_SIGNED, mac, TOKEN_MAC_BYTES);
	if (r < 0)
		return cp_error_set(err, r, "token: HMAC unavailable");
	if (!token_equal(mac, raw + TOKEN_SIGNED, TOKEN_MAC_BYTES))
		return cp_error_set(err, -EBADMSG, "token: MAC mismatch");
	if (raw[0] != TOKEN_VERSION)
		return cp_error_set(err, -EBADMSG, "token: unknown version %u",
				    raw[0]);

	exp = (int64_t)(((uint32_t)raw[11] << 24) | ((uint32_t)raw[12] << 16) |
			((uint32_t)raw[13] << 8) | raw[14]) * DAY;
	if (thread)
		memcpy(thread, raw + 1, TOKEN_THREAD_BYTES);
	if (expires)
		*expires = exp;
	if (now > exp)
		return cp_error_set(err, -ETIME, "token: expired");
	return 0;
}

void
token_thread_from_id(const char *event_id, uint8_t thread[TOKEN_THREAD_BYTES])
{
	uint8_t digest[32];

	pthread_once(&gcrypt_once, token_gcrypt_init);
	gcry_md_hash_buffer(GCRY_MD_SHA256, digest, event_id,
			    strlen(event_id));
	memcpy(thread, digest, TOKEN_THREAD_BYTES);
}

/* ---- tags ---- */

int
token_tag(const void *key, size_t keylen, const char *label, const void *data,
	  size_t len, char out[TOKEN_TAG_SIZE])
{
	uint8_t mac[TOKEN_TAG_BYTES];
	int r;

	if (key == NULL || keylen < TOKEN_MIN_KEY || label == NULL ||
	    !isalpha((unsigned char)label[0]) || (data == NULL && len > 0) ||
	    out == NULL)
		return -EINVAL;
	r = token_mac(key, keylen, label, data, len, mac, sizeof(mac));
	if (r < 0)
		return r;
	b32_encode(mac, TOKEN_TAG_CHARS, out);
	explicit_bzero(mac, sizeof(mac));
	return 0;
}

int
token_tag_verify(const void *key, size_t keylen, const char *label,
		 const void *data, size_t len, const char *tag)
{
	char want[TOKEN_TAG_SIZE];
	volatile uint8_t diff = 0;
	size_t i;
	int r;

	/* Shape first: neither the length nor the alphabet is secret. */
	if (tag == NULL || strnlen(tag, TOKEN_TAG_CHARS + 1) != TOKEN_TAG_CHARS)
		return -EBADMSG;
	for (i = 0; i < TOKEN_TAG_CHARS; i++)
		if (b32_value(tag[i]) < 0)
			return -EBADMSG;
	r = token_tag(key, keylen, label, data, len, want);
	if (r < 0)
		return r;
	/* Constant time: every character is compared, in lower case. */
	for (i = 0; i < TOKEN_TAG_CHARS; i++)
		diff |= (uint8_t)(b32_alphabet[b32_value(tag[i])] ^ want[i]);
	explicit_bzero(want, sizeof(want));
	return diff == 0 ? 0 : -EBADMSG;
}

/* rcpt_data - what a recipient tag covers: thread id | index (u32, BE). */
static int
rcpt_data(const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt,
	  uint8_t out[TOKEN_THREAD_BYTES + 4])
{
	if (thread == NULL || rcpt > UINT32_MAX)
		return -EINVAL;
	memcpy(out, thread, TOKEN_THREAD_BYTES);
	out[TOKEN_THREAD_BYTES] = (uint8_t)(rcpt >> 24);
	out[TOKEN_THREAD_BYTES + 1] = (uint8_t)(rcpt >> 16);
	out[TOKEN_THREAD_BYTES + 2] = (uint8_t)(rcpt >> 8);
	out[TOKEN_THREAD_BYTES + 3] = (uint8_t)rcpt;
	return 0;
}

int
token_rcpt_tag(const void *key, size_t keylen, const char *label,
	       const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt,
	       char out[TOKEN_TAG_SIZE])
{
	uint8_t data[TOKEN_THREAD_BYTES + 4];
	int r = rcpt_data(thread, rcpt, data);

	return r < 0 ? r : token_tag(key, keylen, label, data, sizeof(data), out);
}

int
token_rcpt_tag_verify(const void *key, size_t keylen, const char *label,
		      const uint8_t thread[TOKEN_THREAD_BYTES], size_t rcpt,
		      const char *tag)
{
	uint8_t data[TOKEN_THREAD_BYTES + 4];
	int r = rcpt_data(thread, rcpt, data);

	return r < 0 ? r : token_tag_verify(key, keylen, label, data, sizeof(data), tag);
}
