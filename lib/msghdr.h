/*
 * NAME
 *	msghdr - the header facts of a received message
 * SYNOPSIS
 *	#include "msghdr.h"
 *
 *	r = msghdr_take(m, fields);		(libetpan's parsed top-level header)
 *	r = msghdr_take_protected(m, raw, len);	(a covered entity's header)
 * DESCRIPTION
 *	msghdr_take fills the header facts of struct inmsg (inmsgtypes.h)
 *	from the message's fields: Message-ID, In-Reply-To (the first id),
 *	References, From (the first address and its display name; every
 *	address of every From field, one a field libetpan cannot read,
 *	counts in from_count), Return-Path (INMSG_F_NULL_RETURN_PATH for
 *	<>), Date (seconds since the epoch, -1 when absent or out of range),
 *	Subject (RFC 2047 decoded), the distinct recipients of To, Cc,
 *	Delivered-To and X-Original-To (at most INMSG_MAX_RECIPIENTS),
 *	Auto-Submitted and Precedence (their first word, lower-cased),
 *	List-Id, the raw Authentication-Results values in order, and the
 *	flags of X-Autoreply, X-Autorespond, X-Auto-Response-Suppress (and
 *	whether it names All, AutoReply or OOF), List-Unsubscribe and
 *	List-Post. The first of a repeated single field wins; a Message-ID
 *	or In-Reply-To that libetpan cannot read is taken as written.
 *	Everything is made clean UTF-8 (mailtext.h).
 *
 *	msghdr_take_protected reads the header block at raw[0..len) (the
 *	entity a signature or the encryption covers, whose Content-Type
 *	says protected-headers="v1": the caller checks that) into m->prot:
 *	its Subject and its To and Cc addresses. Fields libetpan cannot read,
 *	or a block over INMSG_MAX_HEADER_BYTES, are no protected headers;
 *	the first covered entity that has them wins.
 *
 *	msghdr_strlist_free frees a list's strings and array and leaves it
 *	empty.
 * ERRORS
 *	msghdr_take and msghdr_take_protected: 0 or -ENOMEM (m is then
 *	valid, filled in part). Malformed fields are no error.
 * OWNERSHIP
 *	m owns what is put into it (inmsg_free). fields and raw are only read.
 * THREAD SAFETY
 *	Reentrant; m belongs to one thread at a time.
 */
#ifndef CAREPOST_MSGHDR_H
#define CAREPOST_MSGHDR_H

#include <stddef.h>

#include "inmsgtypes.h"

struct mailimf_fields;

int msghdr_take(struct inmsg *m, const struct mailimf_fields *fields);
int msghdr_take_protected(struct inmsg *m, const char *raw, size_t len);
void msghdr_strlist_free(struct inmsg_strlist *l);

#endif
