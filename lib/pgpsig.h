/*
 * NAME
 *	pgpsig - a good OpenPGP signature, as lib/pgp and lib/pgphelper give it
 * SYNOPSIS
 *	#include "pgpsig.h"
 * DESCRIPTION
 *	The one type lib/pgp (in-process) and lib/pgphelper (the gpg helper's
 *	caller side) both hand out, in a header of its own so that neither
 *	needs the other's: lib/pgp calls lib/pgphelper, never the reverse.
 *
 *	A good signature (cryptographically good, its key neither revoked
 *	nor expired): the fingerprint gpg names, the primary key's or a
 *	signing subkey's (pgp_primary_fpr maps one to the other), and when
 *	it was made, as the signer's clock said. Empty (fpr "") when there
 *	is none. Whose it is, and whether its time fits, is the caller's to
 *	judge.
 * OWNERSHIP
 *	A plain value: the caller's.
 * THREAD SAFETY
 *	Nothing shared.
 */
#ifndef CAREPOST_PGPSIG_H
#define CAREPOST_PGPSIG_H

#include <stdint.h>

#define PGP_FPR_SIZE 41

struct pgp_sig {
	char fpr[PGP_FPR_SIZE];
	int64_t created;		/* seconds since the epoch */
};

#endif
