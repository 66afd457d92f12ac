/*
 * NAME
 *	trim - cut quoted history and signatures from a reply (PLACEHOLDER)
 * SYNOPSIS
 *	#include "trim.h"
 *
 *	r = trim_reply(text, len, &reply, &elided, &err);
 * DESCRIPTION
 *	Placeholder until the trim branch lands: the real module replaces
 *	this file. trim_reply returns in *reply_out the reply without quoted
 *	history or signature, LF line ends; *elided_out (when elided_out is
 *	not NULL) gets what was removed. This placeholder cuts at the first
 *	line starting with '>', at an "On ... wrote:" line, at "-- " and at
 *	"-----Original Message-----".
 * OWNERSHIP
 *	The caller frees *reply_out and *elided_out.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_TRIM_H
#define CAREPOST_TRIM_H

#include <stddef.h>

#include "util.h"

int trim_reply(const char *text, size_t len, char **reply_out,
	       char **elided_out, struct cp_error *err);

#endif
