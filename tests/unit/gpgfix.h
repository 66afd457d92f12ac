/*
 * NAME
 *	gpgfix.h - shell and GnuPG helpers shared by the unit tests
 * DESCRIPTION
 *	tu_run runs a shell command quietly and returns its exit status;
 *	tu_capture runs one and keeps its standard output.
 *	tu_make_key makes a throwaway key in home (no passphrase): an ed25519
 *	primary key that signs, with a cv25519 subkey that encrypts, and
 *	writes its fingerprint (40 hex digits) to fpr. tu_move_public
 *	imports a public key from one home into another. tu_gpg_pair makes
 *	a clinic's home and a patient's, each with a key and the other's
 *	public key, as a clinic and a patient who exchanged keys have. For
 *	test binaries only: each includes this once.
 */
#ifndef CAREPOST_TEST_GPGFIX_H
#define CAREPOST_TEST_GPGFIX_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "buf.h"

static inline int tu_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline int
tu_run(const char *fmt, ...)
{
	struct buf cmd = BUF_INIT;
	va_list ap;
	char *s;
	int n, r;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	buf_printf(&cmd, "%s >/dev/null 2>&1", s);
	free(s);
	r = system(cmd.data);
	buf_free(&cmd);
	return r;
}

/* tu_capture - stdout of a shell command into out (reset first). */
static inline int
tu_capture(struct buf *out, const char *cmd)
{
	char chunk[4096];
	size_t n;
	FILE *f;

	buf_reset(out);
	f = popen(cmd, "r");
	if (f == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(out, chunk, n);
	buf_append(out, "", 0);
	return pclose(f);
}

/* tu_first_secret_fpr - the fingerprint of the first secret key in home. */
static inline int
tu_first_secret_fpr(const char *home, char fpr[41])
{
	char cmd[512], line[512];
	FILE *f;
	int r = -1;

	snprintf(cmd, sizeof(cmd), "gpg --homedir %s --batch --with-colons "
		 "--list-secret-keys 2>/dev/null", home);
	f = popen(cmd, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (r < 0 && strncmp(line, "fpr:::::::::", 12) == 0 && strlen(line) > 52) {
			memcpy(fpr, line + 12, 40);
			fpr[40] = '\0';
			r = 0;
		}
	pclose(f);
	return r;
}

static inline int
tu_make_key(const char *home, const char *uid, char fpr[41])
{
	if (tu_run("gpg --homedir %s --batch --passphrase '' --quick-gen-key "
		   "'%s' ed25519 sign,cert never", home, uid) != 0 ||
	    tu_first_secret_fpr(home, fpr) < 0 ||
	    tu_run("gpg --homedir %s --batch --passphrase '' --quick-add-key %s "
		   "cv25519 encr never", home, fpr) != 0)
		return -1;
	return 0;
}

/*
 * tu_gpg_dir - a fresh directory /tmp/PREFIX.XXXXXX (into dir) with a
 * GnuPG home dir/g (into home) that holds a key for uid (into fpr).
 * tu_gpg_dir_remove stops that home's gpg-agent and removes the
 * directory (only one named as tu_gpg_dir names them).
 */
static inline int
tu_gpg_dir(const char *prefix, char *dir, size_t dirlen, char *home,
	   size_t homelen, const char *uid, char fpr[41])
{
	char tmpl[64];

	if ((size_t)snprintf(tmpl, sizeof(tmpl), "/tmp/%s.XXXXXX", prefix) >=
	    sizeof(tmpl) || mkdtemp(tmpl) == NULL ||
	    (size_t)snprintf(dir, dirlen, "%s", tmpl) >= dirlen ||
	    (size_t)snprintf(home, homelen, "%s/g", dir) >= homelen ||
	    mkdir(home, 0700) < 0)
		return -1;
	return tu_make_key(home, uid, fpr);
}

static inline void
tu_gpg_dir_remove(const char *prefix, const char *dir, const char *home)
{
	char want[64];

	if (home[0])
		tu_run("gpgconf --homedir %s --kill gpg-agent", home);
	snprintf(want, sizeof(want), "/tmp/%s.", prefix);
	if (strncmp(dir, want, strlen(want)) == 0)
		tu_run("rm -rf '%s'", dir);
}

/* tu_move_public - import fpr's public key from home from into home to. */
static inline int
tu_move_public(const char *from, const char *to, const char *fpr)
{
	return tu_run("gpg --homedir %s --batch --export %s | "
		      "gpg --homedir %s --batch --import", from, fpr, to);
}

struct tu_gpg_pair {
	char dir[64];
	char clinic_home[80];		/* dir/c */
	char patient_home[80];		/* dir/p */
	char clinic[41];		/* fingerprints */
	char patient[41];
};

/*
 * tu_gpg_pair - in a fresh /tmp/PREFIX.XXXXXX, a home for the clinic's
 * key (clinic_uid) and one for the patient's (patient_uid), each holding
 * the other's public key. tu_gpg_pair_remove stops both gpg-agents and
 * removes the directory.
 */
static inline int
tu_gpg_pair(const char *prefix, const char *clinic_uid, const char *patient_uid,
	    struct tu_gpg_pair *g)
{
	memset(g, 0, sizeof(*g));
	if ((size_t)snprintf(g->dir, sizeof(g->dir), "/tmp/%s.XXXXXX", prefix) >=
	    sizeof(g->dir) || mkdtemp(g->dir) == NULL || chmod(g->dir, 0700) < 0)
		return -1;
	snprintf(g->clinic_home, sizeof(g->clinic_home), "%s/c", g->dir);
	snprintf(g->patient_home, sizeof(g->patient_home), "%s/p", g->dir);
	if (mkdir(g->clinic_home, 0700) < 0 || mkdir(g->patient_home, 0700) < 0 ||
	    tu_make_key(g->clinic_home, clinic_uid, g->clinic) < 0 ||
	    tu_make_key(g->patient_home, patient_uid, g->patient) < 0 ||
	    tu_move_public(g->patient_home, g->clinic_home, g->patient) != 0 ||
	    tu_move_public(g->clinic_home, g->patient_home, g->clinic) != 0)
		return -1;
	return 0;
}

static inline void
tu_gpg_pair_remove(const char *prefix, struct tu_gpg_pair *g)
{
	char want[64];

	if (g->clinic_home[0])
		tu_run("gpgconf --homedir %s --kill gpg-agent", g->clinic_home);
	if (g->patient_home[0])
		tu_run("gpgconf --homedir %s --kill gpg-agent", g->patient_home);
	snprintf(want, sizeof(want), "/tmp/%s.", prefix);
	if (strncmp(g->dir, want, strlen(want)) == 0)
		tu_run("rm -rf '%s'", g->dir);
	g->dir[0] = '\0';
}

#endif
