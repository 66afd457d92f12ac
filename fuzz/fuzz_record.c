/*
 * NAME
 *	fuzz_record - libFuzzer target for the stored-record codecs
 * DESCRIPTION
 *	Parses the input as JSON (as the store does) and hands it to every
 *	load of lib/record.c: delivery, thread, bounce, seen, inbox, clinic,
 *	alert window, imap, inbox content. A load must return 0 or a
 *	negative code with a reason; what loads must dump, and the dump must
 *	load again to a record that dumps to the same text (a record carepost
 *	rewrites is rewritten unchanged). Anything else is a bug, reported by
 *	abort().
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *
text_of(json_t *v)
{
	char *t;

	if (v == NULL)
		abort();
	t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	json_decref(v);
	return t;
}

static void
check_code(int r, const struct cp_error *err)
{
	if (r > 0 || (r < 0 && (err->code != r || err->text[0] == '\0')))
		abort();
}

#define ROUND_TRIP(type, load, dump, clear) do {			\
	struct cp_error err_ = { 0, "" };				\
	type a_, b_;							\
	char *t1_, *t2_;						\
	json_t *again_;							\
	int r_ = load(v, &a_, &err_);					\
									\
	check_code(r_, &err_);						\
	if (r_ == 0) {							\
		t1_ = text_of(dump(&a_));				\
		again_ = json_loads(t1_, 0, NULL);			\
		if (again_ == NULL || load(again_, &b_, &err_) != 0)	\
			abort();					\
		t2_ = text_of(dump(&b_));				\
		if (strcmp(t1_, t2_) != 0)				\
			abort();					\
		free(t1_);						\
		free(t2_);						\
		json_decref(again_);					\
		clear(&b_);						\
		clear(&a_);						\
	}								\
} while (0)

static void
no_clear(void *p)
{
	(void)p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *v = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES |
			       JSON_DECODE_ANY, NULL);
	struct inbox_content c;
	struct cp_error err = { 0, "" };

	if (v == NULL)
		return 0;
	ROUND_TRIP(struct delivery, delivery_load, delivery_dump, delivery_clear);
	ROUND_TRIP(struct thread_record, thread_load, thread_dump, thread_clear);
	ROUND_TRIP(struct bounce_status, bounce_load, bounce_dump, bounce_clear);
	ROUND_TRIP(struct seen_record, seen_load, seen_dump, seen_clear);
	ROUND_TRIP(struct inbox_entry, inbox_load, inbox_dump, inbox_clear);
	ROUND_TRIP(struct clinic_entry, clinic_load, clinic_dump, clinic_clear);
	ROUND_TRIP(struct alert_window, alert_window_load, alert_window_dump, no_clear);
	ROUND_TRIP(struct imap_mark, imap_mark_load, imap_mark_dump, no_clear);
	check_code(inbox_content_load(v, &c, &err), &err);
	inbox_content_clear(&c);
	json_decref(inbox_content_public(v));
	json_decref(v);
	return 0;
}
