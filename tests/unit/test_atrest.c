/*
 * NAME
 *	test_atrest - unit tests for lib/atrest.c: a real store, real gpg
 * DESCRIPTION
 *	The group setup makes one throwaway GnuPG home with a store key.
 *	Each test gets a fresh LMDB store. What is sealed is written to the
 *	store as a record would be, so that the data file can be searched
 *	for the plaintext and for the data key in every encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <sys/stat.h>

#include "atrest.h"
#include "atrestfix.h"
#include "gpgfix.h"
#include "buf.h"
#include "pgp.h"
#include "store.h"
#include "storefix.h"
#include "util.h"

#define CANARY "PHI-CANARY-atrest"
#define NOW 1795626000LL	/* 2026-11-25 17:00 UTC */
#define AAD "carepost inbox 2\np1/m1"

TU_ATREST_FIXTURE(fx, "cpa")

static void
seal(struct atrest *a, int64_t now, const char *plain, struct buf *blob,
     char id[ATREST_DEK_ID_SIZE])
{
	struct cp_error err;

	cp_error_clear(&err);
	if (atrest_seal(a, now, AAD, strlen(AAD), plain, strlen(plain), blob, id, &err) < 0)
		fail_msg("seal: %s", err.text);
}

static int
open_(struct atrest *a, const char *id, const char *aad, const struct buf *blob,
      struct buf *plain, struct cp_error *err)
{
	cp_error_clear(err);
	buf_reset(plain);
	return atrest_open(a, id, aad, strlen(aad), blob->data, blob->len, plain, err);
}

static int
file_has(const void *needle, size_t len)
{
	char path[128];
	char *data = NULL;
	size_t n = 0;
	int found;

	snprintf(path, sizeof(path), "%s/data.mdb", fx.store_path);
	assert_int_equal(cp_read_file(path, 1u << 30, &data, &n), 0);
	found = memmem(data, n, needle, len) != NULL;
	free(data);
	return found;
}

/* ---- tests ---- */

static void
sealed_content_opens_in_the_writer_and_in_a_fresh_reader(void **state)
{
	struct buf blob = BUF_INIT, plain = BUF_INIT;
	char id[ATREST_DEK_ID_SIZE], id2[ATREST_DEK_ID_SIZE];
	struct cp_error err;
	json_t *dek;

	seal(fx.writer, NOW, "hello " CANARY, &blob, id);
	assert_int_equal(strlen(id), 16);
	assert_int_equal(open_(fx.writer, id, AAD, &blob, &plain, &err), 0);
	assert_string_equal(plain.data, "hello " CANARY);
	/* the reader has no key yet: it unwraps the DEK from meta with gpg */
	assert_int_equal(open_(fx.reader, id, AAD, &blob, &plain, &err), 0);
	assert_string_equal(plain.data, "hello " CANARY);
	/* the meta record names its algorithm and store key; no plaintext */
	{
		char key[32];

		snprintf(key, sizeof(key), "dek:%s", id);
		assert_int_equal(store_get_json(fx.store, DB_META, key, &dek, NULL), 0);
	}
	assert_string_equal(json_string_value(json_object_get(dek, "alg")), "aes-256-gcm");
	assert_string_equal(json_string_value(json_object_get(dek, "store_key")), fx.fpr);
	assert_non_null(strstr(json_string_value(json_object_get(dek, "wrapped")),
			       "-----BEGIN PGP MESSAGE-----"));
	json_decref(dek);
	/* a second seal: the same DEK, a fresh nonce */
	{
		struct buf blob2 = BUF_INIT;

		seal(fx.writer, NOW + 1, "hello " CANARY, &blob2, id2);
		assert_string_equal(id, id2);
		assert_int_equal(blob.len, blob2.len);
		assert_memory_not_equal(blob.data, blob2.data, 16);
		buf_free(&blob2);
	}
	/* empty content round-trips too */
	{
		struct buf e = BUF_INIT;

		seal(fx.writer, NOW, "", &e, id2);
		assert_int_equal(open_(fx.reader, id2, AAD, &e, &plain, &err), 0);
		assert_int_equal(plain.len, 0);
		buf_free(&e);
	}
	buf_free(&blob);
	buf_free(&plain);
}

static void
tampered_or_moved_content_fails_authentication(void **state)
{
	struct buf blob = BUF_INIT, plain = BUF_INIT;
	char id[ATREST_DEK_ID_SIZE];
	struct cp_error err;
	size_t i;

	seal(fx.writer, NOW, "the text " CANARY, &blob, id);
	/* every position: nonce, ciphertext and tag are all covered */
	for (i = 0; i + 4 <= blob.len; i += 3) {
		char saved = blob.data[i];

		blob.data[i] = saved == 'A' ? 'B' : 'A';
		assert_int_equal(open_(fx.reader, id, AAD, &blob, &plain, &err), -EBADMSG);
		assert_int_equal(plain.len, 0);
		assert_null(strstr(err.text, CANARY));
		blob.data[i] = saved;
	}
	assert_int_equal(open_(fx.reader, id, AAD, &blob, &plain, &err), 0);
	/* the same blob in another record (other additional data) */
	assert_int_equal(open_(fx.reader, id, "carepost inbox 2\np2/m1", &blob, &plain, &err),
			 -EBADMSG);
	/* truncated, not base64, too short */
	blob.len -= 4;
	assert_int_equal(open_(fx.reader, id, AAD, &blob, &plain, &err), -EBADMSG);
	blob.len += 4;
	blob.data[5] = '*';
	assert_int_equal(open_(fx.reader, id, AAD, &blob, &plain, &err), -EBADMSG);
	{
		struct buf tiny = BUF_INIT;

		buf_puts(&tiny, "AAAA");
		assert_int_equal(open_(fx.reader, id, AAD, &tiny, &plain, &err), -EBADMSG);
		buf_free(&tiny);
	}
	buf_free(&blob);
	buf_free(&plain);
}

static void
an_unknown_or_malformed_data_key_id_is_an_error(void **state)
{
	struct buf blob = BUF_INIT, plain = BUF_INIT;
	char id[ATREST_DEK_ID_SIZE];
	struct cp_error err;

	seal(fx.writer, NOW, "x", &blob, id);
	assert_int_equal(open_(fx.reader, "0123456789abcdef", AAD, &blob, &plain, &err),
			 -ENOKEY);
	assert_non_null(strstr(err.text, "0123456789abcdef"));
	assert_int_equal(open_(fx.reader, "../../etc", AAD, &blob, &plain, &err), -EBADMSG);
	assert_int_equal(open_(fx.reader, NULL, AAD, &blob, &plain, &err), -EBADMSG);
	/* another DEK's id: it opens, but not this blob */
	{
		struct buf other = BUF_INIT;
		char id2[ATREST_DEK_ID_SIZE];

		seal(fx.writer, NOW + ATREST_DEK_MAX_AGE, "y", &other, id2);
		assert_string_not_equal(id, id2);
		assert_int_equal(open_(fx.reader, id2, AAD, &blob, &plain, &err), -EBADMSG);
		assert_int_equal(open_(fx.reader, id2, AAD, &other, &plain, &err), 0);
		assert_int_equal(open_(fx.reader, id, AAD, &blob, &plain, &err), 0);
		buf_free(&other);
	}
	buf_free(&blob);
	buf_free(&plain);
}

static void
neither_content_nor_data_key_is_in_the_store_in_clear(void **state)
{
	struct buf blob = BUF_INIT, plain = BUF_INIT, hex = BUF_INIT;
	char id[ATREST_DEK_ID_SIZE], key[32], hexs[65];
	struct cp_error err;
	char *signer = NULL;
	json_t *rec, *dek;

	seal(fx.writer, NOW, "{\"text\":\"" CANARY "-body\"}", &blob, id);
	rec = json_pack("{s:s, s:s%}", "dek", id, "blob", blob.data, (size_t)blob.len);
	assert_int_equal(store_put_json(fx.store, DB_INBOX, "p1/m1", rec, NULL), 0);
	json_decref(rec);
	assert_false(file_has(CANARY, strlen(CANARY)));

	/* the DEK, unwrapped as the store key's owner would */
	snprintf(key, sizeof(key), "dek:%s", id);
	assert_int_equal(store_get_json(fx.store, DB_META, key, &dek, NULL), 0);
	{
		const char *armor = json_string_value(json_object_get(dek, "wrapped"));

		cp_error_clear(&err);
		assert_int_equal(pgp_decrypt_verify(fx.pgp, armor, strlen(armor), &plain,
						    &signer, &err), 0);
	}
	json_decref(dek);
	free(signer);
	assert_int_equal(plain.len, 32);
	assert_false(file_has(plain.data, 32));
	assert_false(file_has(plain.data, 8));		/* nor a part of it */
	cp_hex((const uint8_t *)plain.data, 32, hexs);
	assert_false(file_has(hexs, 64));
	for (char *c = hexs; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	assert_false(file_has(hexs, 64));
	/* nor its base64 (each of the three alignments) */
	for (int shift = 0; shift < 3; shift++) {
		static const char t[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		const unsigned char *p = (const unsigned char *)plain.data + shift;
		char b[41];
		size_t n = 0;

		for (size_t i = 0; i + 3 <= 30 - (size_t)shift && n + 4 < sizeof(b); i += 3) {
			b[n++] = t[p[i] >> 2];
			b[n++] = t[(p[i] & 3) << 4 | p[i + 1] >> 4];
			b[n++] = t[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
			b[n++] = t[p[i + 2] & 63];
		}
		assert_false(file_has(b, 24));
	}
	explicit_bzero(plain.data, plain.len);
	buf_free(&plain);
	buf_free(&hex);
	buf_free(&blob);
}

static void
a_new_data_key_each_day_and_old_ones_still_open(void **state)
{
	struct buf a = BUF_INIT, b = BUF_INIT, plain = BUF_INIT;
	char ida[ATREST_DEK_ID_SIZE], idb[ATREST_DEK_ID_SIZE];
	struct cp_error err;
	size_t n;

	seal(fx.writer, NOW, "day one", &a, ida);
	seal(fx.writer, NOW + ATREST_DEK_MAX_AGE - 1, "still day one", &b, idb);
	assert_string_equal(ida, idb);
	buf_reset(&b);
	seal(fx.writer, NOW + ATREST_DEK_MAX_AGE, "day two", &b, idb);
	assert_string_not_equal(ida, idb);
	assert_int_equal(store_count(fx.store, DB_META, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(open_(fx.writer, ida, AAD, &a, &plain, &err), 0);
	assert_string_equal(plain.data, "day one");
	assert_int_equal(open_(fx.reader, idb, AAD, &b, &plain, &err), 0);
	assert_string_equal(plain.data, "day two");
	buf_free(&a);
	buf_free(&b);
	buf_free(&plain);
}

static void
sealing_without_a_usable_store_key_fails_and_writes_nothing(void **state)
{
	struct buf blob = BUF_INIT;
	char id[ATREST_DEK_ID_SIZE];
	struct atrest *a;
	struct cp_error err;
	size_t n;

	/* a reader cannot seal */
	cp_error_clear(&err);
	assert_int_equal(atrest_seal(fx.reader, NOW, AAD, strlen(AAD), "x", 1, &blob, id,
				     &err), -ENOKEY);
	/* a store key that is not in the keyring */
	assert_int_equal(atrest_new(fx.store, fx.pgp, "0000111122223333444455556666777788889999",
				    &a, &err), 0);
	cp_error_clear(&err);
	assert_true(atrest_seal(a, NOW, AAD, strlen(AAD), "x", 1, &blob, id, &err) < 0);
	assert_true(err.text[0] != '\0');
	atrest_free(a);
	assert_int_equal(blob.len, 0);
	assert_int_equal(store_count(fx.store, DB_META, &n, NULL), 0);
	assert_int_equal(n, 0);
	buf_free(&blob);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(sealed_content_opens_in_the_writer_and_in_a_fresh_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(tampered_or_moved_content_fails_authentication, setup, teardown),
		cmocka_unit_test_setup_teardown(an_unknown_or_malformed_data_key_id_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(neither_content_nor_data_key_is_in_the_store_in_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(a_new_data_key_each_day_and_old_ones_still_open, setup, teardown),
		cmocka_unit_test_setup_teardown(sealing_without_a_usable_store_key_fails_and_writes_nothing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
