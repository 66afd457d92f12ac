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
 *	Anyone can write such a header, so only those whose authserv-id
 *	equals the configured trusted one (compared case-insensitively)
 *	count; the rest are ignored. This relies on the trusted MTA removing
 *	incoming headers that carry its own authserv-id (RFC 8601 section 5),
 *	as OpenDMARC, OpenDKIM, rspamd and Postfix setups do.
 *
 *	Several trusted headers may exist (one per milter). Within them, a
 *	"fail" for a method outweighs a "pass": dmarc_pass is set only when
 *	some trusted header says dmarc=pass (with header.from, when given,
 *	equal to from_domain) and none says dmarc=fail.
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
 *	Anything it cannot read ends that header's processing: the clause it
 *	is in does not count, complete clauses before it do. Each header is read up to AUTHRES_MAX_HEADER bytes.
 * THREAD SAFETY
 *	Reentrant; no allocation.
 */
#ifndef CAREPOST_AUTHRES_H
#define CAREPOST_AUTHRES_H

#include <stddef.h>

#define AUTHRES_MAX_HEADER	16384
#define AUTHRES_DOMAIN_MAX	256

struct authres_result {
	unsigned trusted_headers;	/* headers from the trusted authserv-id */
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
 *	aligned and dmarc=pass is accepted without a header.from check.
 *	headers[i] may be NULL (skipped). Returns 0, or -EINVAL for a NULL
 *	out, headers with n > 0, or an empty trusted id (out is then zeroed:
 *	nothing passes).
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
