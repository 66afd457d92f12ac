/*
 * NAME
 *	authres - read RFC 8601 Authentication-Results from the trusted MTA
 * SYNOPSIS
 *	#include "authres.h"
 *
 *	struct authres_result ar;
 *	authres_check((const char *const *)m->auth_results.v,
 *		      m->auth_results.n, "mx.clinic.example",
 *		      "patient.example", &ar);
 *	if (ar.dmarc_pass || ar.dkim_aligned_pass) ...
 * DESCRIPTION
 *	carepost does not verify DKIM or evaluate DMARC itself: the receiving
 *	MTA does and records the outcome in an Authentication-Results header.
 *	Anyone can write such a header, so only one whose authserv-id
 *	equals the configured trusted one (compared case-insensitively)
 *	counts, and of those only the topmost: the receiving MTA prepends
 *	its own, so any further down came with the message from outside
 *	(RFC 8601 section 5), whether or not the MTA removes them. They
 *	are counted in below_top and otherwise ignored; so are headers with
 *	another authserv-id. With several milters writing their own headers
 *	(OpenDKIM, then OpenDMARC), the topmost is the last one's: DMARC's,
 *	which is the one that matters.
 *
 *	In the topmost trusted header, the dmarc result decides: dmarc_pass
 *	is set only when a dmarc clause says pass with exactly one
 *	header.from equal to from_domain, and no other dmarc clause says
 *	anything else (none, fail, temperror, permerror, or a pass for
 *	another domain or without header.from). from_domain NULL: no pass.
 *
 *	DKIM alignment is relaxed and simple: a dkim=pass whose header.d (or
 *	the domain of header.i) equals from_domain, or one is a dot-suffix
 *	of the other ("example.org" and "mail.example.org"). A single-label
 *	d= ("org") never aligns. There is no public-suffix list: a d= of
 *	"co.uk" would align with every .co.uk sender; DMARC, evaluated by the
 *	MTA with a public-suffix list, is the stronger signal.
 *
 *	The parser follows RFC 8601's grammar: authserv-id (token or quoted
 *	string), an optional version number, then "; method[/version]=result
 *	[reason=...] [ptype.property=value ...]" clauses or "; none";
 *	comments in parentheses (nested) and quoted strings anywhere.
 *	A header counts only when it is read cleanly to its end, and then
 *	whole: anything it cannot read (or a header longer than
 *	AUTHRES_MAX_HEADER bytes) makes it count for nothing, the verdicts
 *	before the garbage included, since the MTA may have copied the rest
 *	from the message (an unclosed comment or quote in a value it echoes
 *	would otherwise swallow the verdict written after it). Such a header
 *	still counts as the topmost trusted one: those below it are ignored.
 *	Every verdict in struct authres_result (dmarc, dkim, spf) comes from
 *	the topmost trusted header alone.
 * ERRORS
 *	authres_check returns 0, or -EINVAL for a NULL out, NULL headers with
 *	n > 0, or a NULL or empty trusted_authserv_id (out is then zeroed:
 *	nothing passes). Unreadable headers are not errors (see above).
 *	authres_domain_aligned cannot fail.
 * OWNERSHIP
 *	The headers and names are borrowed for the call; out is the caller's
 *	and dkim_domain is a copy (cut to AUTHRES_DOMAIN_MAX - 1 bytes).
 *	Nothing is kept.
 * THREAD SAFETY
 *	Reentrant; no allocation.
 */
#ifndef CAREPOST_AUTHRES_H
#define CAREPOST_AUTHRES_H

#include <stddef.h>

#define AUTHRES_MAX_HEADER	16384
#define AUTHRES_DOMAIN_MAX	256

struct authres_result {
	unsigned trusted_headers;	/* headers with the trusted authserv-id */
	unsigned below_top;		/* of those, below the topmost: ignored */
	unsigned ignored_headers;	/* headers from anyone else */
	int dmarc_pass;			/* see DESCRIPTION */
	int dmarc_fail;			/* a trusted dmarc=fail was seen */
	int dkim_pass;			/* any trusted dkim=pass, aligned or not */
	int dkim_aligned_pass;		/* a trusted dkim=pass aligned with from */
	int spf_pass;			/* a trusted spf=pass (informational) */
	char dkim_domain[AUTHRES_DOMAIN_MAX];	/* d= of the aligned pass, or "" */
};

/*
 * authres_check - evaluate n header values (without the
 * "Authentication-Results:" name; unfolded or not) into *out.
 *
 *	trusted_authserv_id must be non-empty; from_domain (the domain of
 *	the RFC 5322 From address) may be NULL, in which case nothing is
 *	aligned and nothing passes DMARC.
 *	headers[i] may be NULL (skipped). An empty from_domain counts as
 *	NULL. Returns 0, or -EINVAL (see ERRORS).
 */
int authres_check(const char *const *headers, size_t n,
		  const char *trusted_authserv_id, const char *from_domain,
		  struct authres_result *out);

/*
 * authres_domain_aligned - 1 if d and from are equal or one is a
 * dot-suffix of the other (case-insensitive), d having at least two
 * labels; 0 otherwise.
 */
int authres_domain_aligned(const char *d, const char *from);

#endif
