/*
 * NAME
 *	util - error values, cleanup helpers and small safe string routines
 * DESCRIPTION
 *	See util.h.
 */
#include "util.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>

int
cp_error_set(struct cp_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return code;
}

void
cp_error_clear(struct cp_error *err)
{
	if (err == NULL)
		return;
	err->code = 0;
	err->text[0] = '\0';
}

size_t
cp_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int
cp_snprintf_ok(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

int
cp_read_file(const char *path, size_t max, char **out, size_t *len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t have = 0, cap;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && (size_t)st.st_size > max)
		return -EFBIG;
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
	if (cap < 4096)
		cap = 4096;
	buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (have + 1 >= cap) {
			char *nb;

			if (cap > max + 1)
				return -EFBIG;
			cap *= 2;
			nb = realloc(buf, cap);
			if (nb == NULL)
				return -ENOMEM;
			buf = nb;
		}
		n = read(fd, buf + have, cap - have - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > max)
			return -EFBIG;
	}
	buf[have] = '\0';
	if (len)
		*len = have;
	*out = CP_TAKE_PTR(buf);
	return 0;
}

int
cp_write_file_atomic(const char *path, const void *data, size_t len, int mode)
{
	char tmp[4096];
	const char *p = data;
	int fd, r;

	r = cp_snprintf_ok(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (r < 0)
		return r;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

void
cp_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

size_t
cp_utf8_seq_len(const void *str, size_t left)
{
	const unsigned char *s = str;
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return left >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (left < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xE0 && s[1] < 0xA0) ||	/* overlong */
		    (c == 0xED && s[1] >= 0xA0))	/* surrogate */
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (left < 4 || (s[1] & 0xC0) != 0x80 ||
		    (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xF0 && s[1] < 0x90) ||	/* overlong */
		    (c == 0xF4 && s[1] >= 0x90))	/* past U+10FFFF */
			return 0;
		return 4;
	}
	return 0;
}

int
cp_utf8_valid(const char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		if (s[i] == '\0' || (n = cp_utf8_seq_len(s + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

int64_t
cp_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
cp_now(void)
{
	const char *pin = getenv("CAREPOST_NOW");

	if (pin != NULL && *pin != '\0') {
		char *end;
		long long v = strtoll(pin, &end, 10);

		if (*end == '\0')
			return v;
	}
	return (int64_t)time(NULL);
}

int
cp_no_core_dumps(void)
{
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ? -errno : 0;
}
