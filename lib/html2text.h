/*
 * NAME
 *	html2text - the text of an HTML mail body, crudely
 * SYNOPSIS
 *	#include "html2text.h"
 *
 *	r = html2text(html, len, &text);
 * DESCRIPTION
 *	For a reply sent as HTML only: what the patient wrote, readable
 *	enough to file and trim, not a rendering. Tags are dropped; the
 *	content of <script> and <style> elements is skipped (up to the
 *	case-sensitive "</script" or "</style"; with no such end the rest
 *	is dropped); block tags (br, p, div, tr, li, h1-h6 ends, table end,
 *	blockquote) become line breaks, at most two in a row; runs of white
 *	space become one space; the entities &amp; &lt; &gt; &quot; &apos;
 *	&nbsp; and numeric ones (&#233; &#xE9;, not NUL, not surrogates,
 *	at most U+10FFFF) are decoded, other entities stay as written.
 *	A tag without its ">" ends the text.
 *
 *	The input is valid UTF-8 (the caller decoded it): bytes outside
 *	tags are copied as they are, so valid input gives valid output. One
 *	pass, linear in len (an entity is looked for within 12 bytes).
 * ERRORS
 *	0, or -ENOMEM (-EFBIG over out's limit).
 * OWNERSHIP
 *	Appends to the caller's buffer and leaves it NUL-terminated; html is
 *	only read and need not be NUL-terminated.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_HTML2TEXT_H
#define CAREPOST_HTML2TEXT_H

#include <stddef.h>

#include "buf.h"

int html2text(const char *html, size_t len, struct buf *out);

#endif
