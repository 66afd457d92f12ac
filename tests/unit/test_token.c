/*
 * NAME
 *	test_token - unit tests for the HMAC reply tokens (lib/token.c)
 * DESCRIPTION
 *	Round trips, a known answer computed independently (Python's hmac
 *	and base64 modules), every single-character forgery, wrong keys,
 *	expiry, case folding, malformed input and the thread id derivation
 *	checked against sha256sum. Tags: known answers (Python's hmac and
 *	base64 again), every single-character change refused, the tag of one
 *	label, thread or recipient index refused for another.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "token.h"

static const char test_key[] = "carepost-test-key-0123456789abcd";	/* 32 */
#define KEYLEN (sizeof(test_key) - 1)

static const uint8_t test_thread[TOKEN_THREAD_BYTES] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10
};

/*
 * python3: raw = b'\x01' + bytes(range(1, 11)) + struct.pack('>I', 20000)
 *          base32(raw + HMAC-SHA256(key, raw)[:10]).lower()
 */
static const char known_token[] = "aeaqeayeaudaocajbiaaatracbcfpp3au4ngly45";
#define KNOWN_EXPIRES ((int64_t)20000 * 86400)

static void
make_then_verify_round_trips_thread_and_expiry(void **state)
{
	char tok[TOKEN_SIZE];
	uint8_t thread[TOKEN_THREAD_BYTES];
	int64_t expires = -1;
	struct cp_error err = { 0, "" };

	assert_int_equal(token_make(test_key, KEYLEN, test_thread,
				    KNOWN_EXPIRES, tok), 0);
	assert_int_equal(strlen(tok), 40);
	assert_int_equal(token_verify(test_key, KEYLEN, tok,
				      KNOWN_EXPIRES - 3600, thread, &expires,
				      &err), 0);
	assert_memory_equal(thread, test_thread, TOKEN_THREAD_BYTES);
	assert_int_equal(expires, KNOWN_EXPIRES);
}

static void
make_matches_independent_known_answer(void **state)
{
	char tok[TOKEN_SIZE];

	assert_int_equal(token_make(test_key, KEYLEN, test_thread,
				    KNOWN_EXPIRES, tok), 0);
	assert_string_equal(tok, known_token);
}

static void
token_is_lower_case_base32_only(void **state)
{
	char tok[TOKEN_SIZE];
	uint8_t thread[TOKEN_THREAD_BYTES];
	size_t i;
	int t;

	for (t = 0; t < 50; t++) {
		memset(thread, t * 37 + 11, sizeof(thread));
		thread[t % TOKEN_THREAD_BYTES] = (uint8_t)t;
		assert_int_equal(token_make(test_key, KEYLEN, thread,
					    (int64_t)t * 1000003, tok), 0);
		assert_int_equal(strlen(tok), 40);
		for (i = 0; i < 40; i++)
			assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz234567",
					       tok[i]));
	}
}

static void
expiry_is_rounded_up_to_a_whole_day(void **state)
{
	char tok[TOKEN_SIZE];
	int64_t expires = 0;

	assert_int_equal(token_make(test_key, KEYLEN, test_thread,
				    KNOWN_EXPIRES - 86399, tok), 0);
	assert_int_equal(token_verify(test_key, KEYLEN, tok, 0, NULL,
				      &expires, NULL), 0);
	assert_int_equal(expires, KNOWN_EXPIRES);
}

static void
every_single_character_change_is_rejected_as_forged(void **state)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	char tok[TOKEN_SIZE];
	uint8_t thread[TOKEN_THREAD_BYTES];
	int64_t expires;
	size_t pos, a, tried = 0;

	for (pos = 0; pos < 40; pos++) {
		for (a = 0; a < 32; a++) {
			struct cp_error err = { 0, "" };

			memcpy(tok, known_token, sizeof(known_token));
			if (tok[pos] == alphabet[a])
				continue;
			tok[pos] = alphabet[a];
			expires = 12345;
			assert_int_equal(token_verify(test_key, KEYLEN, tok, 0,
						      thread, &expires, &err),
					 -EBADMSG);
			assert_int_equal(err.code, -EBADMSG);
			assert_int_equal(expires, 0);
			tried++;
		}
	}
	assert_int_equal(tried, 40 * 31);
}

static void
wrong_key_is_rejected_as_forged(void **state)
{
	char other[] = "carepost-test-key-0123456789abcd";
	struct cp_error err = { 0, "" };

	other[0] = 'C';
	assert_int_equal(token_verify(other, KEYLEN, known_token, 0, NULL,
				      NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.text, "MAC"));
	/* A key that is a prefix of the right one is a different key. */
	assert_int_equal(token_verify(test_key, KEYLEN - 1, known_token, 0,
				      NULL, NULL, NULL), -EBADMSG);
}

static void
expired_token_gives_etime_with_authentic_fields(void **state)
{
	uint8_t thread[TOKEN_THREAD_BYTES];
	int64_t expires = 0;
	struct cp_error err = { 0, "" };

	/* The last valid second, then one past it. */
	assert_int_equal(token_verify(test_key, KEYLEN, known_token,
				      KNOWN_EXPIRES, thread, &expires, &err),
			 0);
	assert_int_equal(token_verify(test_key, KEYLEN, known_token,
				      KNOWN_EXPIRES + 1, thread, &expires,
				      &err), -ETIME);
	assert_int_equal(err.code, -ETIME);
	assert_memory_equal(thread, test_thread, TOKEN_THREAD_BYTES);
	assert_int_equal(expires, KNOWN_EXPIRES);
}

static void
upper_case_token_is_accepted(void **state)
{
	char upper[TOKEN_SIZE];
	uint8_t thread[TOKEN_THREAD_BYTES];
	size_t i;

	for (i = 0; i < sizeof(known_token); i++)
		upper[i] = (char)toupper((unsigned char)known_token[i]);
	assert_int_equal(token_verify(test_key, KEYLEN, upper, 0, thread,
				      NULL, NULL), 0);
	assert_memory_equal(thread, test_thread, TOKEN_THREAD_BYTES);
	/* Mixed case too. */
	upper[0] = 'a';
	upper[39] = '5';
	assert_int_equal(token_verify(test_key, KEYLEN, upper, 0, NULL, NULL,
				      NULL), 0);
}

static void
malformed_tokens_are_rejected(void **state)
{
	char buf[128];
	struct cp_error err;
	static const char *bad[] = {
		"",
		"a",
		"aeaqeayeaudaocajbiaaatracbcfpp3au4ngly4",	/* 39 */
		"aeaqeayeaudaocajbiaaatracbcfpp3au4ngly45a",	/* 41 */
		"aeaqeayeaudaocajbiaaatracbcfpp3au4ngly4=",	/* padding */
		"aeaqeayeaudaocajbiaaatracbcfpp3au4ngly41",	/* '1' */
		"aeaqeayeaudaocajbiaaatracbcfpp3au4ngly40",	/* '0' */
		"aeaqeayeaudaocajbiaaatracbcfpp3au4ngly48",	/* '8' */
		"aeaqeayeaudaocajbiaaa racbcfpp3au4ngly45",	/* space */
		"aeaqeayeaudaocajbiaaatracbcfpp3au4ngly4\xc3",	/* 8-bit */
		"reply+aeaqeayeaudaocajbiaaatracbcfpp3au4n",
		"0000000000000000000000000000000000000000",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",	/* all zero */
	};
	size_t i;

	for (i = 0; i < CP_ARRAY_SIZE(bad); i++) {
		err.code = 0;
		err.text[0] = '\0';
		assert_int_equal(token_verify(test_key, KEYLEN, bad[i], 0, NULL,
					      NULL, &err), -EBADMSG);
		assert_int_equal(err.code, -EBADMSG);
		assert_true(err.text[0] != '\0');
	}
	/* Embedded NUL: the token ends early. */
	memcpy(buf, known_token, sizeof(known_token));
	buf[20] = '\0';
	assert_int_equal(token_verify(test_key, KEYLEN, buf, 0, NULL, NULL,
				      NULL), -EBADMSG);
	/* A very long string is not read past 41 bytes for the length test. */
	memset(buf, 'a', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	assert_int_equal(token_verify(test_key, KEYLEN, buf, 0, NULL, NULL,
				      NULL), -EBADMSG);
	assert_int_equal(token_verify(test_key, KEYLEN, NULL, 0, NULL, NULL,
				      NULL), -EBADMSG);
}

static void
error_text_holds_no_token_material(void **state)
{
	char tok[TOKEN_SIZE];
	struct cp_error err = { 0, "" };

	memcpy(tok, known_token, sizeof(tok));
	tok[5] = tok[5] == 'a' ? 'b' : 'a';
	assert_int_equal(token_verify(test_key, KEYLEN, tok, 0, NULL, NULL,
				      &err), -EBADMSG);
	assert_null(strstr(err.text, "aeaq"));
	assert_null(strstr(err.text, test_key));
}

static void
short_key_is_rejected(void **state)
{
	char tok[TOKEN_SIZE];
	struct cp_error err = { 0, "" };

	assert_int_equal(token_make(test_key, 15, test_thread, 0, tok),
			 -EINVAL);
	assert_int_equal(token_make(NULL, 32, test_thread, 0, tok), -EINVAL);
	assert_int_equal(token_verify(test_key, 15, known_token, 0, NULL,
				      NULL, &err), -EINVAL);
	assert_int_equal(err.code, -EINVAL);
	/* 16 bytes is enough. */
	assert_int_equal(token_make(test_key, 16, test_thread, 0, tok), 0);
	assert_int_equal(token_verify(test_key, 16, tok, 0, NULL, NULL, NULL),
			 0);
}

static void
out_of_range_expiry_is_rejected(void **state)
{
	char tok[TOKEN_SIZE];

	assert_int_equal(token_make(test_key, KEYLEN, test_thread, -1, tok),
			 -ERANGE);
	assert_int_equal(token_make(test_key, KEYLEN, test_thread,
				    ((int64_t)UINT32_MAX + 1) * 86400, tok),
			 -ERANGE);
	assert_int_equal(token_make(test_key, KEYLEN, test_thread,
				    (int64_t)UINT32_MAX * 86400, tok), 0);
}

static void
thread_id_is_sha256_prefix_of_event_id(void **state)
{
	/* printf evt-1 | sha256sum */
	static const uint8_t evt1[TOKEN_THREAD_BYTES] = {
		0x7b, 0x40, 0x9f, 0x93, 0x2d, 0x2c, 0x88, 0xe9, 0x7f, 0x0c
	};
	/* printf evt-2 | sha256sum */
	static const uint8_t evt2[TOKEN_THREAD_BYTES] = {
		0x5a, 0x84, 0xcd, 0x4a, 0xf0, 0xce, 0xaf, 0xc2, 0x3a, 0x42
	};
	uint8_t a[TOKEN_THREAD_BYTES], b[TOKEN_THREAD_BYTES];
	uint8_t again[TOKEN_THREAD_BYTES];

	token_thread_from_id("evt-1", a);
	token_thread_from_id("evt-2", b);
	token_thread_from_id("evt-1", again);
	assert_memory_equal(a, evt1, TOKEN_THREAD_BYTES);
	assert_memory_equal(b, evt2, TOKEN_THREAD_BYTES);
	assert_memory_equal(a, again, TOKEN_THREAD_BYTES);
	assert_memory_not_equal(a, b, TOKEN_THREAD_BYTES);
}

static void
tokens_for_different_threads_differ(void **state)
{
	uint8_t a[TOKEN_THREAD_BYTES], b[TOKEN_THREAD_BYTES];
	char ta[TOKEN_SIZE], tb[TOKEN_SIZE];
	uint8_t out[TOKEN_THREAD_BYTES];

	token_thread_from_id("evt-1", a);
	token_thread_from_id("evt-2", b);
	assert_int_equal(token_make(test_key, KEYLEN, a, KNOWN_EXPIRES, ta), 0);
	assert_int_equal(token_make(test_key, KEYLEN, b, KNOWN_EXPIRES, tb), 0);
	assert_string_not_equal(ta, tb);
	assert_int_equal(token_verify(test_key, KEYLEN, tb, 0, out, NULL,
				      NULL), 0);
	assert_memory_equal(out, b, TOKEN_THREAD_BYTES);
}

/* ---- tags ---- */

/*
 * python3: m = HMAC-SHA256(key, LABEL + b'\0' + bytes(range(1, 11))
 *                          + struct.pack('>I', N)).digest()[:7]
 *          base64.b32encode(m).decode().lower()[:10]
 */
static const char known_verp_tag_r0[] = "xn45fgnn4p";
static const char known_msgid_tag_r3[] = "rwstydlogy";

static void
recipient_tags_match_independent_known_answers(void **state)
{
	char tag[TOKEN_TAG_SIZE];

	assert_int_equal(token_rcpt_tag(test_key, KEYLEN, TOKEN_LABEL_VERP,
					test_thread, 0, tag), 0);
	assert_string_equal(tag, known_verp_tag_r0);
	assert_int_equal(token_rcpt_tag(test_key, KEYLEN, TOKEN_LABEL_MESSAGE_ID,
					test_thread, 3, tag), 0);
	assert_string_equal(tag, known_msgid_tag_r3);
	assert_int_equal(strlen(tag), TOKEN_TAG_CHARS);
}

static void
a_tag_made_is_verified_in_either_case(void **state)
{
	char tag[TOKEN_TAG_SIZE], upper[TOKEN_TAG_SIZE];
	size_t i;

	assert_int_equal(token_tag(test_key, KEYLEN, "carepost test", "abc", 3, tag), 0);
	assert_int_equal(token_tag_verify(test_key, KEYLEN, "carepost test", "abc", 3,
					  tag), 0);
	for (i = 0; i < sizeof(tag); i++)
		upper[i] = (char)toupper((unsigned char)tag[i]);
	assert_int_equal(token_tag_verify(test_key, KEYLEN, "carepost test", "abc", 3,
					  upper), 0);
	assert_int_equal(token_rcpt_tag_verify(test_key, KEYLEN, TOKEN_LABEL_VERP,
					       test_thread, 0, known_verp_tag_r0), 0);
	/* no data at all is data too */
	assert_int_equal(token_tag(test_key, KEYLEN, "carepost test", NULL, 0, tag), 0);
	assert_int_equal(token_tag_verify(test_key, KEYLEN, "carepost test", NULL, 0,
					  tag), 0);
}

static void
every_single_character_change_of_a_tag_is_refused(void **state)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	char tag[TOKEN_TAG_SIZE];
	size_t pos, a, tried = 0;

	for (pos = 0; pos < TOKEN_TAG_CHARS; pos++) {
		for (a = 0; a < 32; a++) {
			memcpy(tag, known_verp_tag_r0, sizeof(tag));
			if (tag[pos] == alphabet[a])
				continue;
			tag[pos] = alphabet[a];
			assert_int_equal(token_rcpt_tag_verify(test_key, KEYLEN,
				TOKEN_LABEL_VERP, test_thread, 0, tag), -EBADMSG);
			tried++;
		}
	}
	assert_int_equal(tried, TOKEN_TAG_CHARS * 31);
}

static void
a_tag_is_refused_for_another_label_thread_index_or_key(void **state)
{
	uint8_t other[TOKEN_THREAD_BYTES];
	char key2[] = "carepost-test-key-0123456789abcd";

	/* the Message-ID tag of recipient 0 is not its VERP tag */
	assert_int_equal(token_rcpt_tag_verify(test_key, KEYLEN, TOKEN_LABEL_MESSAGE_ID,
					       test_thread, 0, known_verp_tag_r0), -EBADMSG);
	/* another recipient of the same thread */
	assert_int_equal(token_rcpt_tag_verify(test_key, KEYLEN, TOKEN_LABEL_VERP,
					       test_thread, 1, known_verp_tag_r0), -EBADMSG);
	assert_int_equal(token_rcpt_tag_verify(test_key, KEYLEN, TOKEN_LABEL_MESSAGE_ID,
					       test_thread, 2, known_msgid_tag_r3), -EBADMSG);
	/* another thread */
	memcpy(other, test_thread, sizeof(other));
	other[9] ^= 1;
	assert_int_equal(token_rcpt_tag_verify(test_key, KEYLEN, TOKEN_LABEL_VERP,
					       other, 0, known_verp_tag_r0), -EBADMSG);
	/* another key */
	key2[0] = 'C';
	assert_int_equal(token_rcpt_tag_verify(key2, KEYLEN, TOKEN_LABEL_VERP,
					       test_thread, 0, known_verp_tag_r0), -EBADMSG);
	/* a label that is a prefix of another, data moved across the NUL */
	{
		char tag[TOKEN_TAG_SIZE];

		assert_int_equal(token_tag(test_key, KEYLEN, "carepost ab", "c", 1, tag), 0);
		assert_int_equal(token_tag_verify(test_key, KEYLEN, "carepost a", "bc", 2,
						  tag), -EBADMSG);
	}
}

static void
malformed_tags_and_bad_arguments_are_refused(void **state)
{
	static const char *bad[] = {
		"", "xn45fgnn4", "xn45fgnn4pa", "xn45fgnn4=", "xn45fgnn41",
		"xn45fgnn4 ", "xn45fgnn4\xc3", "..........",
	};
	char tag[TOKEN_TAG_SIZE];

	for (size_t i = 0; i < CP_ARRAY_SIZE(bad); i++)
		assert_int_equal(token_rcpt_tag_verify(test_key, KEYLEN, TOKEN_LABEL_VERP,
						       test_thread, 0, bad[i]), -EBADMSG);
	assert_int_equal(token_rcpt_tag_verify(test_key, KEYLEN, TOKEN_LABEL_VERP,
					       test_thread, 0, NULL), -EBADMSG);
	assert_int_equal(token_tag(test_key, 15, "carepost x", "a", 1, tag), -EINVAL);
	assert_int_equal(token_tag(test_key, KEYLEN, "", "a", 1, tag), -EINVAL);
	assert_int_equal(token_tag(test_key, KEYLEN, "\001x", "a", 1, tag), -EINVAL);
	assert_int_equal(token_tag(test_key, KEYLEN, NULL, "a", 1, tag), -EINVAL);
	assert_int_equal(token_tag(test_key, KEYLEN, "carepost x", NULL, 1, tag), -EINVAL);
	assert_int_equal(token_tag_verify(test_key, 15, "carepost x", "a", 1,
					  known_verp_tag_r0), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(make_then_verify_round_trips_thread_and_expiry),
		cmocka_unit_test(make_matches_independent_known_answer),
		cmocka_unit_test(token_is_lower_case_base32_only),
		cmocka_unit_test(expiry_is_rounded_up_to_a_whole_day),
		cmocka_unit_test(every_single_character_change_is_rejected_as_forged),
		cmocka_unit_test(wrong_key_is_rejected_as_forged),
		cmocka_unit_test(expired_token_gives_etime_with_authentic_fields),
		cmocka_unit_test(upper_case_token_is_accepted),
		cmocka_unit_test(malformed_tokens_are_rejected),
		cmocka_unit_test(error_text_holds_no_token_material),
		cmocka_unit_test(short_key_is_rejected),
		cmocka_unit_test(out_of_range_expiry_is_rejected),
		cmocka_unit_test(thread_id_is_sha256_prefix_of_event_id),
		cmocka_unit_test(tokens_for_different_threads_differ),
		cmocka_unit_test(recipient_tags_match_independent_known_answers),
		cmocka_unit_test(a_tag_made_is_verified_in_either_case),
		cmocka_unit_test(every_single_character_change_of_a_tag_is_refused),
		cmocka_unit_test(a_tag_is_refused_for_another_label_thread_index_or_key),
		cmocka_unit_test(malformed_tags_and_bad_arguments_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
