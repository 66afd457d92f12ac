/*
 * NAME
 *	policy - who receives an event, and when
 * SYNOPSIS
 *	#include "policy.h"
 * DESCRIPTION
 *	policy_recipients chooses the recipients of an event for a patient:
 *	an adult (18 or over by "dob" at now, or no dob) is reached at their
 *	own address; a minor through each proxy that has an address, and a
 *	"confidential" event never goes to a proxy (so a confidential event
 *	for a minor reaches no one by email: the portal shows it). It adds a
 *	pending recipient entry to the delivery record (record.h) for each:
 *	ref "patient" or "proxy:N", mode encrypted when a pgp_fpr is on file
 *	(the sender checks the key is usable), else notice; or none, with a
 *	PHI-free reason. A proxy whose own "optout" list names the event's
 *	category (set when that proxy unsubscribes, see inbound.h) is skipped,
 *	except for security notices and internal types (event.h), and for a
 *	type event_type_find does not know. The patient's own "optout" is not
 *	looked at here (outbound checks it).
 *
 *	policy_resolve finds the address, display name and key of a stored
 *	recipient ref in the (possibly updated) patient record.
 *
 *	policy_address_hash names an address without holding it: the first
 *	16 hex digits of the SHA-256 of its lower-cased form. A recipient
 *	entry keeps it ("address_hash") when a message goes out, so that a
 *	bounce of it is recorded against the address it went to, not against
 *	whoever holds that ref now (a proxy removed and another added).
 *
 *	policy_quiet_until returns the first time at or after now outside
 *	quiet hours [start, end) (minutes after local midnight; start > end
 *	wraps past midnight; start == end means none) in time zone tz (an
 *	IANA name such as "America/Chicago"; an unknown or malformed name
 *	falls back to fallback_tz, then UTC).
 *
 *	policy_tz_valid says whether an IANA zone name exists on this system:
 *	1..64 characters of [A-Za-z0-9/_+-], no "..", no leading '/', naming
 *	a regular file under /usr/share/zoneinfo.
 * ERRORS
 *	policy_recipients returns how many entries it added; 0 with a reason
 *	("patient has no email address", "confidential event for a minor:
 *	never sent to proxies", "every proxy opted out of the category",
 *	"minor without a proxy address") says why no one is reached; -ENOMEM
 *	when an entry cannot be allocated.
 *
 *	policy_resolve returns 0, -EINVAL for a ref that is neither "patient"
 *	nor "proxy:N", or -ENOENT when the ref names no one with an "email"
 *	string (a proxy index past the end included).
 *
 *	policy_address_hash does not fail: when libgcrypt cannot open SHA-256
 *	it writes sixteen '0' digits, which match no address's hash.
 * OWNERSHIP
 *	policy_recipients borrows patient and adds to the caller's record
 *	(earlier recipient pointers of it may move). policy_resolve fills *out with
 *	pointers into patient (address, name, fpr): they live as long as the
 *	caller holds patient unchanged. The other functions write into the
 *	caller's buffers and keep nothing.
 * THREAD SAFETY
 *	policy_quiet_until serialises its use of TZ with a mutex and leaves
 *	TZ set to the zone it last used (so that glibc does not re-read zone
 *	files): a program using it must not rely on TZ for anything else.
 *	The rest is reentrant.
 */
#ifndef CAREPOST_POLICY_H
#define CAREPOST_POLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

int policy_recipients(json_t *patient, struct delivery *d, int64_t now,
			  char *reason, size_t reasonlen);

struct policy_rcpt {
	const char *address;	/* borrowed from the patient record */
	const char *name;	/* may be NULL */
	const char *fpr;	/* may be NULL */
	int is_proxy;
};

int policy_resolve(json_t *patient, const char *ref, struct policy_rcpt *out);
/* policy_proxies - how many proxies a patient record lists (refs proxy:0..N-1). */
size_t policy_proxies(json_t *patient);
/* policy_mails - 1 when carepost mails ref of patient at now (an adult
 * itself, a minor's proxies), else 0: policy_recipients' rule. */
int policy_mails(json_t *patient, const char *ref, int64_t now);

#define POLICY_ADDRESS_HASH_SIZE 17	/* 16 hex digits and NUL */

void policy_address_hash(const char *address, char out[POLICY_ADDRESS_HASH_SIZE]);

/*
 * policy_zone_at - the zone tz (else fallback_tz, else UTC) names, and
 * its offset from UTC at t (seconds east), its abbreviation and whether
 * that is summer time, as the system's zone files say; under the same
 * lock as policy_quiet_until (TZ is process-wide). zone gets the name
 * used.
 */
struct policy_zone {
	char zone[65];
	long offset;
	char abbr[16];
	int dst;
};

void policy_zone_at(int64_t t, const char *tz, const char *fallback_tz,
		    struct policy_zone *out);

int64_t policy_quiet_until(int64_t now, const char *tz, const char *fallback_tz,
			   int start, int end);

int policy_tz_valid(const char *tz);

#endif
