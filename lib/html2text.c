/*
 * NAME
 *	html2text - the text of an HTML mail body, crudely
 * DESCRIPTION
 *	See html2text.h.
 */
#include "html2text.h"

#include <ctype.h>
#include <stdint.h>
#include <strings.h>

#include "utf8.h"
#include "util.h"

int
html2text(const char *h, size_t len, struct buf *out)
{
	static const char *const blocks[] = { "br", "p", "/p", "div", "/div",
		"tr", "/tr", "li", "/h1", "/h2", "/h3", "/h4", "/h5", "/h6",
		"/table", "blockquote", "/blockquote" };
	static const struct { const char *n; uint32_t cp; } ents[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
		{ "apos", '\'' }, { "nbsp", ' ' }, { "#39", '\'' } };
	int space = 0, nls = 0, r = 0;

	for (size_t i = 0; i < len && r >= 0;) {
		char c = h[i];

		if (c == '<') {
			const char *gt = memchr(h + i, '>', len - i);
			size_t tl = gt ? (size_t)(gt - (h + i)) - 1 : len - i - 1;
			const char *t = h + i + 1;

			const char *close = NULL;

			if (tl >= 6 && strncasecmp(t, "script", 6) == 0)
				close = "</script";
			else if (tl >= 5 && strncasecmp(t, "style", 5) == 0)
				close = "</style";
			if (close != NULL) {
				/* skip the element's content (case-sensitive
				 * end tag match: crude, as promised) */
				const char *end = memmem(h + i, len - i, close,
							 strlen(close));

				if (end == NULL)
					break;
				gt = memchr(end, '>', len - (size_t)(end - h));
			} else {
				for (size_t b = 0; b < CP_ARRAY_SIZE(blocks); b++) {
					size_t bl = strlen(blocks[b]);

					if (tl >= bl && strncasecmp(t, blocks[b], bl) == 0 &&
					    (tl == bl || !isalnum((unsigned char)t[bl]))) {
						if (nls < 2)
							r = buf_putc(out, '\n');
						nls++;
						space = 0;
						break;
					}
				}
			}
			if (gt == NULL)
				break;
			i = (size_t)(gt - h) + 1;
			continue;
		}
		if (c == '&') {
			const char *semi = memchr(h + i, ';',
				len - i < 12 ? len - i : 12);
			uint32_t cp = 0;

			if (semi) {
				size_t el = (size_t)(semi - (h + i)) - 1;
				const char *e = h + i + 1;

				for (size_t k = 0; k < CP_ARRAY_SIZE(ents); k++)
					if (strlen(ents[k].n) == el &&
					    strncmp(e, ents[k].n, el) == 0)
						cp = ents[k].cp;
				if (cp == 0 && el >= 2 && e[0] == '#') {
					char tmp[12];
					unsigned long v;

					memcpy(tmp, e + 1, el - 1);
					tmp[el - 1] = '\0';
					v = (tmp[0] == 'x' || tmp[0] == 'X') ?
						strtoul(tmp + 1, NULL, 16) :
						strtoul(tmp, NULL, 10);
					if (v > 0 && v < 0x110000 &&
					    !(v >= 0xD800 && v < 0xE000))
						cp = (uint32_t)v;
				}
			}
			if (cp != 0) {
				if (space && nls == 0)
					r = buf_putc(out, ' ');
				if (r >= 0)
					r = utf8_put(out, cp);
				space = 0;
				nls = 0;
				i = (size_t)(semi - h) + 1;
				continue;
			}
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = 1;
			i++;
			continue;
		}
		if (space && nls == 0 && out->len > 0)
			r = buf_putc(out, ' ');
		if (r >= 0)
			r = buf_putc(out, c);
		space = 0;
		nls = 0;
		i++;
	}
	if (r < 0)
		return r;
	return buf_append(out, "", 0);
}
