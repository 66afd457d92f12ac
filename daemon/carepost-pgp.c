/*
 * NAME
 *	carepost-pgp - carepostd's gpg helper
 * SYNOPSIS
 *	carepost-pgp --pgp-helper	(started by carepostd, descriptor 3 a socket)
 * DESCRIPTION
 *	A program of its own for lib/pgphelper's helper side: GPGME forks
 *	its caller twice for every gpg it runs, and a process this small (a
 *	few libraries, one thread, a small heap) forks several times more
 *	cheaply than carepostd. carepostd starts one per [gpg] worker and
 *	one for inbound (see carepostd(8)); nothing else should run it.
 */
#include <stdio.h>
#include <sysexits.h>

#include "pgphelper.h"

int
main(int argc, char **argv)
{
	int rc = pgphelper_main(argc, argv);

	if (rc >= 0)
		return rc;
	fprintf(stderr, "carepost-pgp: internal: started by carepostd only\n");
	return EX_USAGE;
}
