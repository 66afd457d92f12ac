/*
 * test_autocrypt - the Autocrypt header read as a key candidate
 *	(lib/autocrypt.h)
 * DESCRIPTION
 *	A real key (gpg makes one, ed25519 with a cv25519 subkey, and exports
 *	it, as a mail client puts it in keydata): its fingerprint as gpg
 *	prints it, folded and with attributes in any order, prefer-encrypt,
 *	non-critical attributes. Then what the header does not allow:
 *	missing addr or keydata, an unknown critical attribute, a name given
 *	twice, bad base64, a key that is not a version 4 public key (a secret
 *	key, a v3 or v5 packet, a packet longer than the data, an
 *	indeterminate or partial length), an address with a space or two
 *	'@', oversized values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "autocrypt.h"
#include "buf.h"
#include "gpgfix.h"
#include "rawhdr.h"
#include "util.h"

struct fx {
	char dir[128], home[160], fpr[41];
	struct buf key;		/* the exported public key, binary */
	struct buf b64;		/* its base64 */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char cmd[512];

	if (f == NULL || tu_gpg_dir("cp-autocrypt", f->dir, sizeof(f->dir), f->home,
				    sizeof(f->home), "Pat <pat@patients.test>", f->fpr) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "gpg --homedir %s --batch --export %s", f->home, f->fpr);
	if (tu_capture(&f->key, cmd) != 0 || f->key.len < 32 ||
	    buf_append_base64(&f->b64, f->key.data, f->key.len) < 0 ||
	    buf_append(&f->b64, "", 1) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	tu_gpg_dir_remove("cp-autocrypt", f->dir, f->home);
	buf_free(&f->key);
	buf_free(&f->b64);
	free(f);
	return 0;
}

static int
parse(const char *v, struct autocrypt *ac)
{
	return autocrypt_parse(v, strlen(v), ac);
}

/* keydata with a line break and a space every 76 digits, as headers fold */
static char *
folded(const char *b64)
{
	struct buf b = BUF_INIT;
	size_t n = strlen(b64);

	for (size_t i = 0; i < n; i += 76) {
		buf_append(&b, "\r\n ", i ? 3 : 0);
		buf_append(&b, b64 + i, n - i < 76 ? n - i : 76);
	}
	buf_append(&b, "", 1);
	return b.data;
}

static void
real_key_gives_gpgs_fingerprint(void **state)
{
	struct fx *f = *state;
	struct autocrypt ac;
	char *v, *k = folded(f->b64.data);

	assert_true(asprintf(&v, "addr=Pat@Patients.Test; prefer-encrypt=mutual; "
			     "keydata=%s", k) > 0);
	assert_int_equal(parse(v, &ac), 0);
	assert_string_equal(ac.fpr, f->fpr);
	assert_string_equal(ac.addr, "pat@patients.test");
	assert_true(ac.mutual);
	assert_int_equal(ac.keylen, f->key.len);
	assert_memory_equal(ac.key, f->key.data, f->key.len);
	autocrypt_free(&ac);
	free(v);
	/* any order; no preference; a non-critical attribute; a final ';' */
	assert_true(asprintf(&v, " _client = x ;keydata=%s;addr=pat@patients.test;"
			     "prefer-encrypt=nopreference;", f->b64.data) > 0);
	assert_int_equal(parse(v, &ac), 0);
	assert_string_equal(ac.fpr, f->fpr);
	assert_false(ac.mutual);
	autocrypt_free(&ac);
	free(v);
	free(k);
}

/* subst - fmt with its "%s" (if any) replaced by k: malloc'd. */
static char *
subst(const char *fmt, const char *k)
{
	const char *at = strstr(fmt, "%s");
	struct buf b = BUF_INIT;

	if (at == NULL) {
		buf_append(&b, fmt, strlen(fmt));
	} else {
		buf_append(&b, fmt, (size_t)(at - fmt));
		buf_append(&b, k, strlen(k));
		buf_append(&b, at + 2, strlen(at + 2));
	}
	buf_append(&b, "", 1);
	return b.data;
}

static void
what_the_header_does_not_allow_is_refused(void **state)
{
	struct fx *f = *state;
	const char *k = f->b64.data;
	const char *fmt[] = {
		"keydata=%s",				/* no addr */
		"addr=pat@patients.test",		/* no keydata (%s unused) */
		"addr=pat@patients.test; keydata=%s; type=1",	/* critical, unknown */
		"addr=pat@patients.test; addr=b@x.test; keydata=%s",
		"addr=pat@patients.test; keydata=%s; keydata=AAAA",
		"addr=pat@patients.test; prefer-encrypt=mutual; prefer-encrypt=mutual; keydata=%s",
		"addr=pat@patients.test; keydata",		/* no '=' */
		"addr=pat @patients.test; keydata=%s",	/* a space */
		"addr=a@b@patients.test; keydata=%s",
		"addr=@patients.test; keydata=%s",
		"addr=pat@; keydata=%s",
		"addr=<pat@patients.test>; keydata=%s",
		"addr=pat@patients.test; keydata=%s!",	/* not base64 */
		"addr=pat@patients.test; keydata=%s=A",	/* a digit after padding */
		"addr=pat@patients.test; keydata=A",	/* one digit */
		"addr=pat@patients.test; keydata=",
		"addr=pat@patients.test; =x; keydata=%s",	/* no name */
	};
	struct autocrypt ac;

	for (size_t i = 0; i < CP_ARRAY_SIZE(fmt); i++) {
		char *v = subst(fmt[i], k);

		assert_int_equal(parse(v, &ac), -EINVAL);
		assert_null(ac.key);
		free(v);
	}
	assert_int_equal(autocrypt_parse(NULL, 0, &ac), -EINVAL);
}

/* parse_key - keydata made of these bytes. */
static int
parse_key(const uint8_t *key, size_t len)
{
	struct buf b = BUF_INIT;
	struct autocrypt ac;
	int r;

	buf_append(&b, "addr=p@x.test; keydata=", 23);
	buf_append_base64(&b, key, len);
	buf_append(&b, "", 1);
	r = parse(b.data, &ac);
	autocrypt_free(&ac);
	buf_free(&b);
	return r;
}

static void
only_a_whole_version_4_public_key_packet(void **state)
{
	struct fx *f = *state;
	const uint8_t *k = (const uint8_t *)f->key.data;
	uint8_t *copy = malloc(f->key.len);
	char fpr[AUTOCRYPT_FPR_SIZE];

	/* gpg's export starts with a new-format tag 6 packet, or old-format */
	assert_true(k[0] == 0x98 || k[0] == 0x99 || k[0] == 0xC6);
	assert_int_equal(autocrypt_v4_fpr(k, f->key.len, fpr), 0);
	assert_string_equal(fpr, f->fpr);
	/* cut inside the packet */
	assert_int_equal(parse_key(k, 12), -EINVAL);
	assert_int_equal(autocrypt_v4_fpr(k, 1, fpr), -EINVAL);
	/* another version */
	memcpy(copy, k, f->key.len);
	copy[2] = 3;
	assert_int_equal(parse_key(copy, f->key.len), -EINVAL);
	copy[2] = 5;
	assert_int_equal(parse_key(copy, f->key.len), -EINVAL);
	/* a secret key packet (old format tag 5), a user id (tag 13) */
	memcpy(copy, k, f->key.len);
	copy[0] = (uint8_t)(0x80 | 5 << 2 | (k[0] & 3));
	assert_int_equal(parse_key(copy, f->key.len), -EINVAL);
	copy[0] = (uint8_t)(0x80 | 13 << 2 | (k[0] & 3));
	assert_int_equal(parse_key(copy, f->key.len), -EINVAL);
	/* an indeterminate length; not a packet at all */
	copy[0] = (uint8_t)(0x80 | 6 << 2 | 3);
	assert_int_equal(parse_key(copy, f->key.len), -EINVAL);
	copy[0] = 0x06;
	assert_int_equal(parse_key(copy, f->key.len), -EINVAL);
	/* new format: a partial length is no key packet; a 5-byte length
	 * past the data */
	{
		static const uint8_t partial[] = { 0xC6, 0xE1, 4, 0, 0, 0, 0, 22 };
		static const uint8_t past[] = { 0xC6, 0xFF, 0, 0, 1, 0, 4, 1, 2, 3 };

		assert_int_equal(autocrypt_v4_fpr(partial, sizeof(partial), fpr), -EINVAL);
		assert_int_equal(autocrypt_v4_fpr(past, sizeof(past), fpr), -EINVAL);
	}
	/* one key and nothing after: the key twice (a second public key),
	 * its first packet alone (no user id), a secret key packet after */
	{
		size_t n1 = f->key.len;
		uint8_t *two = malloc(2 * n1 + 4), hdr_len;

		memcpy(two, k, n1);
		memcpy(two + n1, k, n1);
		assert_int_equal(parse_key(two, 2 * n1), -EINVAL);
		assert_int_equal(autocrypt_one_key(two, n1), 0);
		/* the first packet's own length (old format, 1 or 2 bytes) */
		hdr_len = (k[0] & 3) == 0 ? 2 : 3;
		assert_int_equal(parse_key(k, hdr_len + ((k[0] & 3) == 0 ? k[1] :
							 (size_t)k[1] << 8 | k[2])), -EINVAL);
		memcpy(two + n1, "\x95\x02\x04\x00", 4);	/* tag 5, 2 bytes */
		assert_int_equal(parse_key(two, n1 + 4), -EINVAL);
		free(two);
	}
	free(copy);
}

static void
oversized_values_are_refused(void **state)
{
	struct autocrypt ac;
	size_t n = AUTOCRYPT_MAX_VALUE + 1;
	char *v = malloc(n + 1);
	struct buf b = BUF_INIT;
	uint8_t *big = calloc(1, AUTOCRYPT_MAX_KEY + 1);

	(void)state;
	memset(v, 'A', n);
	v[n] = '\0';
	assert_int_equal(autocrypt_parse(v, n, &ac), -EMSGSIZE);
	free(v);
	/* a key over AUTOCRYPT_MAX_KEY decoded */
	buf_append(&b, "addr=p@x.test; keydata=", 23);
	buf_append_base64(&b, big, AUTOCRYPT_MAX_KEY + 1);
	buf_append(&b, "", 1);
	assert_true(b.len < AUTOCRYPT_MAX_VALUE);
	assert_int_equal(parse(b.data, &ac), -EMSGSIZE);
	buf_free(&b);
	free(big);
}

static void
dkim_signature_must_name_the_header(void **state)
{
	const char *ok[] = { "v=1; a=rsa-sha256; D=x; d=Patients.Test;\r\n h=From : To :"
			     "\r\n AUTOCRYPT; bh=a; b=b" };
	const char *without[] = { "v=1; d=patients.test; h=from:to:subject; b=b" };
	const char *two[] = { "v=1; d=patients.test; h=from:autocrypt; b=b",
			      "v=1; d=patients.test; h=from; b=c" };
	const char *other[] = { "v=1; d=other.test; h=from:autocrypt; b=b",
				"v=1; d=patients.test; h=autocrypt:from; b=c" };
	const char *unreadable[] = { "v=1; d=patients.test; h=autocrypt; b=b",
				     "d" };
	const char *twice_d[] = { "v=1; d=other.test; d=patients.test; h=autocrypt" };
	const char *no_h[] = { "v=1; d=patients.test; b=b" };
	const char *auto_prefix[] = { "v=1; d=patients.test; h=from:autocrypt-gossip" };

	(void)state;
	assert_int_equal(autocrypt_dkim_covers(ok, 1, "patients.test"), 1);
	assert_int_equal(autocrypt_dkim_covers(without, 1, "patients.test"), 0);
	assert_int_equal(autocrypt_dkim_covers(two, 2, "patients.test"), 0);
	assert_int_equal(autocrypt_dkim_covers(other, 2, "patients.test"), 1);
	assert_int_equal(autocrypt_dkim_covers(other, 1, "patients.test"), 0);
	assert_int_equal(autocrypt_dkim_covers(unreadable, 2, "patients.test"), 0);
	assert_int_equal(autocrypt_dkim_covers(twice_d, 1, "patients.test"), 0);
	assert_int_equal(autocrypt_dkim_covers(no_h, 1, "patients.test"), 0);
	assert_int_equal(autocrypt_dkim_covers(auto_prefix, 1, "patients.test"), 0);
	assert_int_equal(autocrypt_dkim_covers(NULL, 0, "patients.test"), 0);
	assert_int_equal(autocrypt_dkim_covers(ok, 1, ""), 0);
}

/* What carepostd keeps of the raw header for a candidate is bounded: an
 * oversized DKIM-Signature or Autocrypt value is left out (fail closed). */
static void
raw_header_keeps_bounded_values(void **state)
{
	struct buf raw = BUF_INIT;
	struct rawhdr h;
	struct cp_error err;

	(void)state;
	buf_append(&raw, "DKIM-Signature: v=1; d=p.test; h=from:autocrypt; b=", 52);
	for (size_t i = 0; i < RAWHDR_MAX_DKIM_VALUE; i++)
		buf_append(&raw, "A", 1);
	buf_printf(&raw, "\r\nDKIM-Signature: v=1; d=p.test; h=autocrypt\r\n"
		   "Autocrypt: addr=p@p.test; keydata=");
	for (size_t i = 0; i < RAWHDR_MAX_AUTOCRYPT; i++)
		buf_append(&raw, i % 70 ? "A" : "\r\n ", i % 70 ? 1 : 3);
	buf_printf(&raw, "\r\nFrom: p@p.test\r\n\r\nbody\r\n");
	cp_error_clear(&err);
	assert_int_equal(rawhdr_scan(raw.data, raw.len, &h, &err), 0);
	assert_int_equal(h.dkim.n, 1);		/* the long one left out */
	assert_non_null(strstr(h.dkim.v[0], "h=autocrypt"));
	assert_int_equal(h.autocrypt_fields, 1);
	assert_null(h.autocrypt);		/* over the limit: none */
	rawhdr_free(&h);
	buf_free(&raw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(real_key_gives_gpgs_fingerprint, setup, teardown),
		cmocka_unit_test_setup_teardown(what_the_header_does_not_allow_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(only_a_whole_version_4_public_key_packet, setup, teardown),
		cmocka_unit_test(oversized_values_are_refused),
		cmocka_unit_test(dkim_signature_must_name_the_header),
		cmocka_unit_test(raw_header_keeps_bounded_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
