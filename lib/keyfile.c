/*
 * keyfile.c - recipients' keys held apart, one file per key (keyfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "keyfile.h"

static int
fpr_ok(const char *s)
{
	size_t i;

	for (i = 0; i < 40; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return s[i] == '\0';
}

int
keymeta_check(const struct keymeta *m, long long now, struct cp_error *err)
{
	int expired = 0, revoked = 0;

	if (m->revoked)
		return cp_error_set(err, -EKEYREVOKED, "gpg: key %s is revoked",
				    m->fpr);
	if (m->expires > 0 && m->expires <= now)
		return cp_error_set(err, -EKEYEXPIRED, "gpg: key %s has expired",
				    m->fpr);
	if (m->unusable)
		return cp_error_set(err, -EKEYREJECTED, "gpg: key %s is disabled "
				    "or invalid", m->fpr);
	for (unsigned i = 0; i < m->n_enc; i++) {
		const struct keymeta_sub *s = &m->enc[i];

		if (s->revoked)
			revoked = 1;
		else if (s->expires > 0 && s->expires <= now)
			expired = 1;
		else if (!s->unusable)
			return 0;
	}
	if (revoked)
		return cp_error_set(err, -EKEYREVOKED,
				    "gpg: key %s: encryption subkey revoked",
				    m->fpr);
	if (expired)
		return cp_error_set(err, -EKEYEXPIRED,
				    "gpg: key %s: encryption subkey expired",
				    m->fpr);
	return cp_error_set(err, -EKEYREJECTED,
			    "gpg: key %s has no usable encryption subkey", m->fpr);
}

/* flags - the three members every level has; -EBADMSG unless all are there. */
static int
flags(json_t *o, long long *expires, int *revoked, int *unusable)
{
	json_t *e = json_object_get(o, "expiry"),
	       *r = json_object_get(o, "revoked"),
	       *u = json_object_get(o, "unusable");

	if (!json_is_integer(e) || json_integer_value(e) < 0 ||
	    !json_is_boolean(r) || !json_is_boolean(u))
		return -EBADMSG;
	*expires = (long long)json_integer_value(e);
	*revoked = json_is_true(r);
	*unusable = json_is_true(u);
	return 0;
}

int
keymeta_parse(const char *text, size_t len, struct keymeta *m)
{
	json_t *o, *enc, *s;
	const char *fpr;
	size_t i;
	int r = -EBADMSG;

	memset(m, 0, sizeof(*m));
	if (len > KEYMETA_MAX_JSON)
		return -EBADMSG;
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o))
		goto out;
	fpr = json_string_value(json_object_get(o, "fpr"));
	enc = json_object_get(o, "enc");
	if (fpr == NULL || !fpr_ok(fpr) || !json_is_array(enc) ||
	    json_array_size(enc) > KEYMETA_MAX_ENC ||
	    flags(o, &m->expires, &m->revoked, &m->unusable) < 0)
		goto out;
	memcpy(m->fpr, fpr, KEYFILE_FPR_SIZE);
	json_array_foreach(enc, i, s) {
		struct keymeta_sub *sub = &m->enc[i];

		if (!json_is_object(s) ||
		    flags(s, &sub->expires, &sub->revoked, &sub->unusable) < 0)
			goto out;
	}
	m->n_enc = (unsigned)json_array_size(enc);
	r = 0;
out:
	json_decref(o);
	if (r < 0)
		memset(m, 0, sizeof(*m));
	return r;
}

char *
keymeta_format(const struct keymeta *m)
{
	json_t *o, *enc;
	char *s;

	if (!fpr_ok(m->fpr) || m->n_enc > KEYMETA_MAX_ENC)
		return NULL;
	if (m->expires < 0)
		return NULL;
	enc = json_array();
	for (unsigned i = 0; enc && i < m->n_enc; i++) {
		if (m->enc[i].expires < 0 ||
		    json_array_append_new(enc, json_pack("{s:I, s:b, s:b}",
			"expiry", (json_int_t)m->enc[i].expires,
			"revoked", m->enc[i].revoked, "unusable", m->enc[i].unusable)) < 0) {
			json_decref(enc);
			return NULL;
		}
	}
	o = json_pack("{s:s, s:b, s:b, s:I, s:o}", "fpr", m->fpr,
		      "revoked", m->revoked, "unusable", m->unusable,
		      "expiry", (json_int_t)m->expires, "enc", enc);
	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

int
keyfile_path(const char *dir, const char *fpr, const char *ext, char *buf,
	     size_t len)
{
	if (!fpr_ok(fpr))
		return -EINVAL;
	return cp_snprintf_ok(buf, len, "%s/%s.%s", dir, fpr, ext);
}

/*
 * dir_open - dir, when it is a directory of this user's that nobody else
 * may write (not a symbolic link): else -EPERM, and its files count for
 * nothing.
 */
static int
dir_open(const char *dir)
{
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* file_ok - dirfd/name is a regular file (not a link) of this user's. */
static int
file_ok(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 022);
}

int
keyfile_read(const char *dir, const char *fpr, struct keymeta *m)
{
	char name[64], text[KEYMETA_MAX_JSON + 1];
	size_t len = 0;
	ssize_t n;
	int dfd, fd;

	memset(m, 0, sizeof(*m));
	if (!fpr_ok(fpr))
		return -EINVAL;
	if ((dfd = dir_open(dir)) < 0)
		return dfd;
	snprintf(name, sizeof(name), "%s.meta", fpr);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;

		close(dfd);
		return e == -ELOOP ? -EBADMSG : e;
	}
	/* the key the .meta speaks for must be there, as carepost wrote it */
	snprintf(name, sizeof(name), "%s.key", fpr);
	if (!file_ok(dfd, name)) {
		close(fd);
		close(dfd);
		return -EBADMSG;
	}
	close(dfd);
	while (len < sizeof(text) &&
	       (n = read(fd, text + len, sizeof(text) - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -EBADMSG;
		}
		len += (size_t)n;
	}
	close(fd);
	if (len > KEYMETA_MAX_JSON || keymeta_parse(text, len, m) < 0 ||
	    strcmp(m->fpr, fpr) != 0) {
		memset(m, 0, sizeof(*m));
		return -EBADMSG;
	}
	return 0;
}

int
keyfile_lock(const char *dir, struct cp_error *err)
{
	int dfd, fd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cp_error_set(err, -errno, "cannot create %s: %s", dir,
				    strerror(errno));
	if ((dfd = dir_open(dir)) < 0)
		return cp_error_set(err, dfd, "%s: %s", dir, dfd == -EPERM ?
				    "not a directory of this user's alone" :
				    strerror(-dfd));
	fd = openat(dfd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	close(dfd);
	if (fd < 0)
		return cp_error_set(err, -errno, "cannot open %s/.lock: %s", dir,
				    strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = -errno;

			close(fd);
			return cp_error_set(err, e, "cannot lock %s/.lock: %s",
					    dir, strerror(-e));
		}
	}
	return fd;
}

void
keyfile_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* name_fpr - the fingerprint a file of dir is named by ("FPR.key",
 * "FPR.meta", or a temporary "FPR.EXT.tmp.*"), or NULL. */
static const char *
name_fpr(const char *name, char fpr[KEYFILE_FPR_SIZE], int *tmp)
{
	const char *ext = name + 40;

	if (strlen(name) < 41 || *ext != '.')
		return NULL;
	memcpy(fpr, name, 40);
	fpr[40] = '\0';
	if (!fpr_ok(fpr))
		return NULL;
	*tmp = strstr(ext, ".tmp.") != NULL;
	if (!*tmp && strcmp(ext, ".key") != 0 && strcmp(ext, ".meta") != 0)
		return NULL;
	return fpr;
}

int
keyfile_prune(const char *dir, int (*keep)(const char *fpr, void *arg), void *arg,
	      size_t *removed, struct cp_error *err)
{
	DIR *d;
	struct dirent *de;
	int dfd;

	*removed = 0;
	if ((dfd = dir_open(dir)) < 0)
		return dfd == -ENOENT ? 0 : cp_error_set(err, dfd, "%s: %s", dir,
				strerror(-dfd));
	if ((d = fdopendir(dfd)) == NULL) {
		int e = -errno;

		close(dfd);
		return cp_error_set(err, e, "%s: %s", dir, strerror(-e));
	}
	while ((de = readdir(d)) != NULL) {
		char fpr[KEYFILE_FPR_SIZE];
		int tmp = 0;

		if (name_fpr(de->d_name, fpr, &tmp) == NULL || (!tmp && keep(fpr, arg)))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 && !tmp)
			(*removed)++;
	}
	if (*removed > 0)
		fsync(dirfd(d));
	closedir(d);
	return 0;
}

/* A batch: the temporary files written, to be renamed at the commit. */
struct pending {
	char fpr[KEYFILE_FPR_SIZE];
};

struct keyfile_batch {
	char *dir;
	int dirfd;
	struct pending *p;
	size_t n, cap;
};

int
keyfile_batch_new(const char *dir, struct keyfile_batch **out,
		  struct cp_error *err)
{
	struct keyfile_batch *b;

	*out = NULL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cp_error_set(err, -errno, "cannot create %s: %s", dir,
				    strerror(errno));
	if ((b = calloc(1, sizeof(*b))) == NULL || (b->dir = strdup(dir)) == NULL) {
		free(b);
		return cp_error_set(err, -ENOMEM, "out of memory");
	}
	b->dirfd = dir_open(dir);
	if (b->dirfd < 0) {
		int e = b->dirfd;

		keyfile_batch_free(b);
		return cp_error_set(err, e, "cannot open %s: %s", dir, e == -EPERM ?
				    "not a directory of this user's alone" :
				    strerror(-e));
	}
	*out = b;
	return 0;
}

/* same - 1 when dir/name holds exactly data. */
static int
same(int dirfd, const char *name, const void *data, size_t len)
{
	char buf[8192];
	const char *d = data;
	size_t off = 0;
	ssize_t n;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int eq = 1;

	if (fd < 0)
		return 0;
	while (eq && (n = read(fd, buf, sizeof(buf))) > 0) {
		if ((size_t)n > len - off || memcmp(buf, d + off, (size_t)n) != 0)
			eq = 0;
		off += (size_t)n;
	}
	close(fd);
	return eq && n == 0 && off == len;
}

/* tmpname - a file's temporary name: this batch's own (process and
 * batch), so that two imports of one key at once do not write one file. */
static void
tmpname(const struct keyfile_batch *b, char *buf, size_t len, const char *fpr,
	const char *ext)
{
	snprintf(buf, len, "%s.%s.tmp.%ld.%lx", fpr, ext, (long)getpid(),
		 (unsigned long)(uintptr_t)b);
}

/* put - write dir/TMP; -errno. */
static int
put(int dirfd, const char *tmp, const void *data, size_t len)
{
	const char *d = data;
	int fd, r = 0;

	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, d, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		d += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	return r;
}

int
keyfile_batch_add(struct keyfile_batch *b, const struct keymeta *m,
		  const uint8_t *key, size_t keylen, struct cp_error *err)
{
	_cleanup_free_ char *meta = NULL;
	char kname[64], mname[64], ktmp[96], mtmp[96];
	int r;

	if (!fpr_ok(m->fpr))
		return cp_error_set(err, -EINVAL, "a key without a fingerprint");
	/* once a batch: the first export stands (its temporary file, named
	 * for this batch, is there; no scan of the batch, which a sync of
	 * every key would make quadratic) */
	tmpname(b, ktmp, sizeof(ktmp), m->fpr, "key");
	if (faccessat(b->dirfd, ktmp, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if ((meta = keymeta_format(m)) == NULL)
		return cp_error_set(err, -EINVAL, "key %s: cannot describe it",
				    m->fpr);
	snprintf(kname, sizeof(kname), "%s.key", m->fpr);
	snprintf(mname, sizeof(mname), "%s.meta", m->fpr);
	if (same(b->dirfd, kname, key, keylen) &&
	    same(b->dirfd, mname, meta, strlen(meta)))
		return 0;
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		struct pending *np = realloc(b->p, cap * sizeof(*np));

		if (np == NULL)
			return cp_error_set(err, -ENOMEM, "out of memory");
		b->p = np;
		b->cap = cap;
	}
	tmpname(b, mtmp, sizeof(mtmp), m->fpr, "meta");
	if ((r = put(b->dirfd, ktmp, key, keylen)) < 0 ||
	    (r = put(b->dirfd, mtmp, meta, strlen(meta))) < 0) {
		unlinkat(b->dirfd, ktmp, 0);
		return cp_error_set(err, r, "cannot write the files of key %s "
				    "in %s: %s", m->fpr, b->dir, strerror(-r));
	}
	memcpy(b->p[b->n++].fpr, m->fpr, KEYFILE_FPR_SIZE);
	return 0;
}

size_t
keyfile_batch_count(const struct keyfile_batch *b)
{
	return b->n;
}

int
keyfile_batch_commit(struct keyfile_batch *b, struct cp_error *err)
{
	static const char *const ext[] = { "key", "meta" };
	size_t i;

	if (b->n == 0)
		return 0;
	if (syncfs(b->dirfd) < 0)
		return cp_error_set(err, -errno, "cannot sync %s: %s", b->dir,
				    strerror(errno));
	for (i = 0; i < b->n; i++) {
		for (size_t e = 0; e < 2; e++) {
			char name[64], tmp[96];

			snprintf(name, sizeof(name), "%s.%s", b->p[i].fpr, ext[e]);
			tmpname(b, tmp, sizeof(tmp), b->p[i].fpr, ext[e]);
			if (renameat(b->dirfd, tmp, b->dirfd, name) < 0)
				return cp_error_set(err, -errno, "cannot put key %s "
						    "in place in %s: %s", b->p[i].fpr,
						    b->dir, strerror(errno));
		}
	}
	b->n = 0;
	if (fsync(b->dirfd) < 0)
		return cp_error_set(err, -errno, "cannot sync %s: %s", b->dir,
				    strerror(errno));
	return 0;
}

void
keyfile_batch_free(struct keyfile_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++) {
		char tmp[96];

		tmpname(b, tmp, sizeof(tmp), b->p[i].fpr, "key");
		unlinkat(b->dirfd, tmp, 0);
		tmpname(b, tmp, sizeof(tmp), b->p[i].fpr, "meta");
		unlinkat(b->dirfd, tmp, 0);
	}
	if (b->dirfd >= 0)
		close(b->dirfd);
	free(b->p);
	free(b->dir);
	free(b);
}
