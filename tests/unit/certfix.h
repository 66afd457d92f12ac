/*
 * NAME
 *	certfix.h - throwaway TLS certificates for the unit tests' servers
 * DESCRIPTION
 *	tu_make_certs writes, with openssl, into an existing directory: a CA
 *	(ca.pem, ca.key); srv.pem and srv.key for the subjectAltName san
 *	("DNS:localhost", or "DNS:localhost,IP:127.0.0.1"), signed by it;
 *	wrong.pem and wrong.key for mail.example.org, signed by it; and
 *	another CA (other.pem, other.key). Every file is 0644, so that a
 *	server running as another user (Dovecot) reads them. Returns 0, or
 *	-1 when openssl failed (the test skips). For test binaries only:
 *	each includes this once, after cmocka.h.
 */
#ifndef CAREPOST_TEST_CERTFIX_H
#define CAREPOST_TEST_CERTFIX_H

#include "netfix.h"

static inline int
tu_make_certs(const char *dir, const char *san)
{
	static const char sh[] =
		"set -e; cd \"$1\"; "
		"EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
		"openssl req -x509 $EC -keyout ca.key -out ca.pem -days 2 "
		"  -subj /CN=carepost-test-ca; "
		"openssl req $EC -keyout srv.key -out srv.csr -subj /CN=localhost; "
		"printf 'subjectAltName=%s\\n' \"$2\" > ext; "
		"openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
		"  -CAcreateserial -out srv.pem -days 2 -extfile ext; "
		"openssl req $EC -keyout wrong.key -out wrong.csr -subj /CN=mail.example.org; "
		"printf 'subjectAltName=DNS:mail.example.org\\n' > ext2; "
		"openssl x509 -req -in wrong.csr -CA ca.pem -CAkey ca.key "
		"  -CAcreateserial -out wrong.pem -days 2 -extfile ext2; "
		"openssl req -x509 $EC -keyout other.key -out other.pem -days 2 "
		"  -subj /CN=carepost-other-ca; "
		"chmod 0644 *.pem *.key";
	const char *const argv[] = { "sh", "-c", sh, "sh", dir, san, NULL };

	return tu_run_quiet(argv) == 0 ? 0 : -1;
}

#endif
