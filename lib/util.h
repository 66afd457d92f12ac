/*
 * NAME
 *	util - error values, cleanup helpers and small safe string routines
 * SYNOPSIS
 *	#include "util.h"
 * DESCRIPTION
 *	Every carepost module reports failure as a negative errno-style code
 *	and, where the caller asked for it, a human-readable reason in a
 *	struct cp_error. Reasons never hold PHI: they name ids, keys, line
 *	numbers and protocol codes, never names, addresses, subjects or bodies.
 *
 *	The _cleanup_ helpers follow systemd's habit: a variable declared with
 *	_cleanup_free_ is freed on every path out of its scope.
 * ERRORS
 *	cp_read_file: -EFBIG over max, -ENOMEM, or the -errno of open, fstat
 *	or read. cp_write_file_atomic: -ENAMETOOLONG, or the -errno of
 *	open, write, fsync, close or rename (the temporary file is removed).
 *	cp_snprintf_ok: -ENAMETOOLONG or -EINVAL. cp_no_core_dumps: -errno
 *	of prctl. The rest cannot fail.
 * OWNERSHIP
 *	cp_read_file hands *out (malloc'd) to the caller, who free()s it.
 *	The other functions write into the caller's buffers and keep
 *	nothing. CP_TAKE_PTR takes a pointer out of a _cleanup_ variable
 *	(which is left NULL).
 * THREAD SAFETY
 *	Everything here is reentrant.
 */
#ifndef CAREPOST_UTIL_H
#define CAREPOST_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAREPOST_VERSION "0.1.0"

/* CP_SANITIZER: built with AddressSanitizer (gcc or clang): tests only. */
#if defined(__SANITIZE_ADDRESS__)
#define CP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define CP_SANITIZER 1
#endif
#endif

/* A reason for a failure, PHI-free by contract. */
struct cp_error {
	int code;		/* negative errno-style value, 0 if none */
	char text[256];
};

/*
 * cp_error_set - record a failure; returns code (negative) so that callers
 * can write "return cp_error_set(err, -EINVAL, "...")". err may be NULL.
 */
int cp_error_set(struct cp_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* cp_error_clear - reset to "no error". */
void cp_error_clear(struct cp_error *err);

/* Cleanup helpers. */
static inline void cp_freep(void *p) { free(*(void **)p); }
static inline void cp_closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void cp_fclosep(FILE **f) { if (*f) fclose(*f); }
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(cp_freep)
#define _cleanup_close_ _cleanup_(cp_closep)
#define _cleanup_fclose_ _cleanup_(cp_fclosep)

/* Take ownership out of a _cleanup_ variable. */
#define CP_TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })

#define CP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * cp_strlcpy - copy with truncation, always NUL-terminated; returns
 * strlen(src) so truncation is detectable (as BSD strlcpy).
 */
size_t cp_strlcpy(char *dst, const char *src, size_t size);

/*
 * cp_snprintf_ok - snprintf that returns 0, or -ENAMETOOLONG when the
 * output would not fit (or -EINVAL on an encoding error).
 */
int cp_snprintf_ok(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* cp_strdup_or_die is not offered: lib/ never exits. */

/*
 * cp_read_file - read a whole file, up to max bytes, NUL-terminated.
 * The caller owns *out (free()). -EFBIG when larger than max.
 */
int cp_read_file(const char *path, size_t max, char **out, size_t *len);

/*
 * cp_write_file_atomic - write data to path.tmp.PID (created with mode,
 * less the umask), fsync, rename over path. The directory is not
 * fsynced.
 */
int cp_write_file_atomic(const char *path, const void *data, size_t len,
			 int mode);

/* cp_hex - lower-case hex of len bytes into out (2*len+1 bytes). */
void cp_hex(const uint8_t *in, size_t len, char *out);

/* cp_utf8_valid - 1 if s[0..len) is well-formed UTF-8 without NULs. */
int cp_utf8_valid(const char *s, size_t len);

/*
 * cp_utf8_seq_len - the length of the well-formed UTF-8 sequence that
 * starts s[0..left) (1 for any ASCII byte, NUL included), 0 when it is
 * ill-formed: a stray continuation byte, an overlong form, a surrogate,
 * past U+10FFFF, or cut short. left must be at least 1.
 */
size_t cp_utf8_seq_len(const void *s, size_t left);

/*
 * cp_no_core_dumps - make the calling process non-dumpable: a crash
 * leaves no core file (carepost's memory holds decrypted replies and
 * rendered results), and no other process of the same user may ptrace
 * it or read its memory. execve resets it, so each carepost program
 * calls it first thing. 0, or -errno.
 */
int cp_no_core_dumps(void);

/* cp_now - the current time; tests may pin it with CAREPOST_NOW=epoch. */
int64_t cp_now(void);

/* cp_mono_ms - CLOCK_MONOTONIC in milliseconds: for deadlines and budgets. */
int64_t cp_mono_ms(void);

#endif
