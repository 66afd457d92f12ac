/*
 * NAME
 *	fuzzfix.h - checks the fuzz targets share
 * DESCRIPTION
 *	fz_check_value aborts (a finding) unless v, when not NULL, is valid
 *	UTF-8 of at most max bytes without a control character: what every
 *	cleaned header or report field promises. For fuzz targets only:
 *	each includes this once.
 */
#ifndef CAREPOST_FUZZFIX_H
#define CAREPOST_FUZZFIX_H

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void
fz_check_value(const char *v, size_t max)
{
	if (v == NULL)
		return;
	if (!cp_utf8_valid(v, strlen(v)) || strlen(v) > max)
		abort();
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7F)
			abort();
}

#endif
