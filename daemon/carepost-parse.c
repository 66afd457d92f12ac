/*
 * NAME
 *	carepost-parse - the mail parser of carepostd and carepostctl, behind
 *	a wall
 * SYNOPSIS
 *	carepost-parse --parse-helper	(started by carepostd or carepostctl,
 *					 descriptor 3 a socket)
 * DESCRIPTION
 *	A program of its own for lib/parsehelper's helper side: it parses
 *	the mail carepost fetches (libetpan, MIME, charsets, HTML, delivery
 *	reports, trimming, form fields) and hands back what it made of it.
 *	Before it reads a byte it confines itself (lib/sandbox: no new
 *	privileges, no files, a memory and a CPU cap, a seccomp filter that
 *	kills it for a socket, an exec or anything else parsing does not
 *	need); it holds no key, no store and no network, and is started
 *	with an empty environment and no descriptor but its socket. It links
 *	only what parsing needs. Nothing else should run it.
 */
#include <stdio.h>
#include <sysexits.h>

#include "parsehelper.h"

int
main(int argc, char **argv)
{
	int rc = parsehelper_main(argc, argv);

	if (rc >= 0)
		return rc;
	fprintf(stderr, "carepost-parse: internal: started by carepostd and "
		"carepostctl only\n");
	return EX_USAGE;
}
