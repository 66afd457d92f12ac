/*
 * NAME
 *	pgpserve - the gpg helper's side: GPGME's operations for its caller
 * SYNOPSIS
 *	#include "pgpserve.h"
 *
 *	In the program's main, first thing:
 *	    int rc = pgpserve_main(argc, argv);
 *	    if (rc >= 0) return rc;		(it was started as a helper)
 * DESCRIPTION
 *	What runs in carepost-pgp (or in carepostd or carepostctl started as
 *	their own gpg helper) for lib/pgphelper's caller: the first request
 *	opens GnuPG (pgp_new on the caller's GNUPGHOME and signer), then each
 *	request runs one lib/pgp operation on that struct pgp and answers
 *	with its result, code and text (pgphelper.h has the protocol). It
 *	exits on a malformed request or when the socket is closed; it
 *	ignores SIGTERM, SIGINT and SIGHUP (lib/helper's helper_serve_begin):
 *	its caller decides when it ends.
 *
 *	A module of its own so that the modules depend one way: lib/pgp
 *	calls lib/pgphelper (the caller's side), and this calls lib/pgp.
 * ERRORS
 *	pgpserve_main returns -1 when the program was not started as a
 *	helper ("PROGRAM --pgp-helper"); otherwise the helper's exit code: 0
 *	when its caller closed the socket, EX_PROTOCOL after a malformed
 *	request, a failed reply or a GnuPG that did not open, EX_USAGE when
 *	descriptor 3 is not a socket, EX_OSERR or EX_UNAVAILABLE when it
 *	cannot set itself up.
 * OWNERSHIP
 *	Everything it makes it frees before it returns.
 * THREAD SAFETY
 *	Runs alone in its process.
 */
#ifndef CAREPOST_PGPSERVE_H
#define CAREPOST_PGPSERVE_H

int pgpserve_main(int argc, char **argv);

#endif
