/*
 * NAME
 *	fuzz_dsn - libFuzzer target: dsn_parse and dsn_take_returned_headers
 *	over arbitrary bytes
 * DESCRIPTION
 *	The bytes are read as a delivery-status body (converted as the MIME
 *	walk converts it) and as a returned header block. Whatever they
 *	hold: success, at most INMSG_MAX_DSN_RCPTS recipients, each with an
 *	action, status or final recipient, every value valid UTF-8 without
 *	controls and at most DSN_MAX_VALUE bytes plus its U+FFFD growth.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzzfix.h"
#include "dsn.h"
#include "mailtext.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf text = BUF_INIT;
	struct inmsg_dsn d;

	memset(&d, 0, sizeof(d));
	if (mailtext_to_utf8(NULL, (const char *)data, size, &text) < 0)
		abort();
	if (dsn_parse(&d, text.data, text.len) < 0 || !d.present ||
	    d.n_rcpts > INMSG_MAX_DSN_RCPTS)
		abort();
	fz_check_value(d.original_envelope_id, 3 * DSN_MAX_VALUE);
	fz_check_value(d.reporting_mta, 3 * DSN_MAX_VALUE);
	for (size_t i = 0; i < d.n_rcpts; i++) {
		const struct inmsg_dsn_rcpt *rc = &d.rcpts[i];

		if (!rc->action && !rc->status && !rc->final_recipient)
			abort();
		fz_check_value(rc->action, 3 * DSN_MAX_VALUE);
		fz_check_value(rc->status, 3 * DSN_MAX_VALUE);
		fz_check_value(rc->final_recipient, 3 * DSN_MAX_VALUE);
		fz_check_value(rc->original_recipient, 3 * DSN_MAX_VALUE);
		fz_check_value(rc->diagnostic_code, 3 * DSN_MAX_VALUE);
	}
	if (dsn_take_returned_headers(&d, (const char *)data, size) < 0 ||
	    !d.orig_headers_present)
		abort();
	fz_check_value(d.orig_message_id, 3 * DSN_MAX_VALUE);
	dsn_free(&d);
	buf_free(&text);
	return 0;
}
