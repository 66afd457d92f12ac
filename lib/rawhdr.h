/*
 * NAME
 *	rawhdr - the facts carepostd reads itself from a message's raw
 *	header block, to check the parse helper's
 * SYNOPSIS
 *	#include "rawhdr.h"
 *
 *	struct rawhdr h;
 *	r = rawhdr_scan(raw, len, &h, &err);
 *	authres_check((const char *const *)h.authres.v, h.authres.n, ...);
 *	if (!rawhdr_from_is(&h, m->from_addr)) ...
 *	if (!rawhdr_recipients_name(&h, token)) ...
 *	rawhdr_free(&h);
 * DESCRIPTION
 *	The parse helper may have been taken over by the message it parsed
 *	(parsehelper.h): what it says about the message is believed only
 *	where nothing depends on it. What authentication rests on is read
 *	here, in carepostd, by a scanner small enough to read in one
 *	sitting: no MIME, no libetpan, no charsets. It reads the header
 *	lines up to the first empty line (at most INMSG_MAX_HEADER_BYTES;
 *	the helper refuses a message with more), unfolds them, and keeps:
 *
 *	- authres: the values of the Authentication-Results fields, top
 *	  first, unfolded (the topmost RAWHDR_MAX_AUTHRES): what lib/authres
 *	  reads, so that a helper cannot make up a DMARC pass. A value
 *	  longer than RAWHDR_MAX_VALUE is cut to that, one byte more than
 *	  authres reads, so that it keeps its place (it may be the topmost
 *	  trusted one) and counts for nothing (authres.h); none is ever
 *	  left out, which would make the one below it the topmost.
 *	- from_fields, from_addresses: the number of From fields, and of
 *	  addresses in them (elements of the address lists, separated by
 *	  commas outside quoted strings, comments and angle brackets).
 *	- from_addr: the addr-spec of the first address of the first From
 *	  field, lower-cased: its last angle-addr's contents, else its text
 *	  without comments and white space ("" when it cannot be read here:
 *	  a quoted string outside angle brackets, something unterminated).
 *	- recipients: the values of To, Cc, Delivered-To and X-Original-To,
 *	  unfolded, one after another (at most RAWHDR_MAX_RECIPIENTS
 *	  bytes), for rawhdr_recipients_name.
 *	- dkim: the values of the DKIM-Signature fields (the first
 *	  RAWHDR_MAX_DKIM; a cut one, or one over RAWHDR_MAX_DKIM_VALUE
 *	  bytes, is left out: autocrypt_dkim_covers then finds no signature
 *	  naming the field, and fails closed), for autocrypt_dkim_covers.
 *	- autocrypt_fields, autocrypt: the number of Autocrypt fields, and
 *	  the first one's value, unfolded (none when it was cut or is over
 *	  RAWHDR_MAX_AUTOCRYPT bytes, which autocrypt_parse refuses): a key
 *	  candidate (autocrypt.h), read only from a reply that is
 *	  authenticated, and only when it is the one such field.
 *
 *	rawhdr_from_is(h, addr): addr (the helper's from_addr) is from_addr
 *	(ASCII case ignored); the count says whether there are others. A quoted local part
 *	("a b"@x) that the parser unquotes does not match: such a From is not
 *	believed (fail closed: the message is not authenticated by it).
 *	rawhdr_recipients_name(h, token): an address in the recipient fields
 *	carries the token as its tag: LOCAL+TOKEN@DOMAIN (ASCII case
 *	ignored), where the address is an element's angle-addr, or, without
 *	one, its one word outside comments: display names, group names,
 *	phrases, comments and quoted strings name no recipient. Recipient
 *	values past RAWHDR_MAX_RECIPIENTS bytes are not read: a token only
 *	there is not found (fail closed).
 *
 *	A field is unfolded up to RAWHDR_MAX_FIELD bytes; once a line of it
 *	is left out, so is the rest of it, and the field counts as cut (so
 *	does the last field of a header block that runs past
 *	INMSG_MAX_HEADER_BYTES). A cut Authentication-Results value keeps
 *	its place and counts for nothing (an open comment is put after what
 *	is kept, so lib/authres cannot read it), a cut From is not believed
 *	(rawhdr_from_is fails), a cut recipient field names nobody.
 * ERRORS
 *	rawhdr_scan: -ENOMEM. A header block cut short (no empty line, or
 *	one over the byte limit) is scanned as far as it goes.
 * OWNERSHIP
 *	rawhdr_scan fills the caller's struct, which rawhdr_free empties
 *	(the struct itself is the caller's). raw is borrowed for the call.
 *	authres.v may be handed over (set it to NULL, n to 0, before
 *	rawhdr_free).
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_RAWHDR_H
#define CAREPOST_RAWHDR_H

#include <stddef.h>

#include "authres.h"
#include "inmsg.h"
#include "util.h"

#define RAWHDR_MAX_AUTHRES	64u
/* One byte over what authres reads: a longer value counts for nothing. */
#define RAWHDR_MAX_VALUE	(AUTHRES_MAX_HEADER + 1u)
#define RAWHDR_MAX_FIELD	(256u * 1024)	/* one unfolded field */
#define RAWHDR_MAX_RECIPIENTS	(256u * 1024)
#define RAWHDR_MAX_ADDR		320u
#define RAWHDR_MAX_DKIM		16u
/* kept only when no longer (a real one is a few hundred bytes; each field
 * may otherwise be RAWHDR_MAX_FIELD: 16 of them would hold 4 MiB) */
#define RAWHDR_MAX_DKIM_VALUE	(8u * 1024)
#define RAWHDR_MAX_AUTOCRYPT	(64u * 1024)	/* AUTOCRYPT_MAX_VALUE */

struct rawhdr {
	struct inmsg_strlist authres;	/* top first */
	unsigned from_fields;
	unsigned from_addresses;
	int from_cut;			/* a From over RAWHDR_MAX_FIELD */
	char from_addr[RAWHDR_MAX_ADDR];	/* the first; "" when unread */
	char *recipients;		/* NUL-terminated; never NULL after scan */
	size_t recipients_len;
	struct inmsg_strlist dkim;	/* DKIM-Signature values, unfolded, the
					   first RAWHDR_MAX_DKIM (none cut) */
	unsigned autocrypt_fields;	/* Autocrypt fields in the header */
	char *autocrypt;		/* the first one's value, unfolded and
					   NUL-terminated; NULL: none, or cut */
	size_t autocrypt_len;
};

int rawhdr_scan(const char *raw, size_t len, struct rawhdr *h,
		struct cp_error *err);
void rawhdr_free(struct rawhdr *h);
int rawhdr_from_is(const struct rawhdr *h, const char *addr);
int rawhdr_recipients_name(const struct rawhdr *h, const char *token);

#endif
