/*
 * NAME
 *	carepost-pgp - the gpg helper of carepostd and carepostctl
 * SYNOPSIS
 *	carepost-pgp --pgp-helper	(started by carepostd or carepostctl,
 *					 descriptor 3 a socket)
 * DESCRIPTION
 *	A program of its own for the gpg helper's side (lib/pgpserve):
 *	GPGME forks its caller twice for every gpg it runs, and a process
 *	this small (a
 *	few libraries, one thread, a small heap) forks several times more
 *	cheaply than carepostd. carepostd starts one per [gpg] worker and
 *	one for inbound mail when the first encrypted or signed reply comes
 *	(see carepostd(8)); carepostctl ingest starts one for its message.
 *	Inbound helpers are confined: each leads a process group that is
 *	killed, gpg with it, when gpg goes over its limits (lib/pgphelper.h).
 *	Nothing else should run it.
 */
#include <stdio.h>
#include <sysexits.h>

#include "pgphelper.h"
#include "pgpserve.h"

int
main(int argc, char **argv)
{
	int rc = pgpserve_main(argc, argv);

	if (rc >= 0)
		return rc;
	fprintf(stderr, "carepost-pgp: internal: started by carepostd and "
		"carepostctl only\n");
	return EX_USAGE;
}
