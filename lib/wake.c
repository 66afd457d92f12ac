/*
 * NAME
 *	wake - the datagram socket that tells carepostd "new events"
 * DESCRIPTION
 *	See wake.h.
 */
#include "wake.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* sockaddr_of - path as an AF_UNIX address: 0, or -ENAMETOOLONG. */
static int
sockaddr_of(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (path == NULL || *path == '\0' || strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path));
	return 0;
}

/* stale - whether the socket at sa is one nobody listens on: connect
 * (which sends nothing) refused. Anything else (a datagram or stream
 * socket someone holds, one it may not connect to) is not ours to remove. */
static int
stale(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), r, e;

	if (fd < 0)
		return 0;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	e = errno;
	close(fd);
	return r < 0 && e == ECONNREFUSED;
}

int
wake_listen(const char *path, ino_t *ino, struct cp_error *err)
{
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int fd, r;

	if (sockaddr_of(path, &sa) < 0)
		return cp_error_set(err, -ENAMETOOLONG, "%s: [daemon] wake_socket: "
				    "longer than a socket path may be", path ? path : "");
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return cp_error_set(err, -EEXIST, "%s: [daemon] wake_socket: "
					    "there is something there that is not a "
					    "socket", path);
		if (!stale(&sa))
			return cp_error_set(err, -EADDRINUSE, "%s: [daemon] wake_socket: "
					    "another carepostd (or another program) "
					    "listens on it", path);
		unlink(path);		/* a stale one: its carepostd is gone */
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cp_error_set(err, -errno, "%s: [daemon] wake_socket: %s", path,
				    strerror(errno));
	/* made 0600 as it is made: no chmod of a path swapped meanwhile */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r == 0 && lstat(path, &st) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return cp_error_set(err, r, "%s: [daemon] wake_socket: %s", path,
				    strerror(-r));
	}
	*ino = st.st_ino;
	return fd;
}

void
wake_drain(int fd)
{
	char b[64];

	/* at most 64 a call: the loop turns between, and a datagram left
	 * keeps the socket readable for the next turn */
	for (int i = 0; i < 64 && recv(fd, b, sizeof(b), MSG_DONTWAIT) >= 0; i++)
		;
}

void
wake_close(int fd, const char *path, ino_t ino)
{
	struct stat st;

	if (fd < 0)
		return;
	close(fd);
	/* only the socket it made: not what another has put there since */
	if (path != NULL && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_ino == ino)
		unlink(path);
}

int
wake_send(const char *path)
{
	struct sockaddr_un sa;
	int fd, r = 0;

	if (sockaddr_of(path, &sa) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0)
		r = -errno;
	close(fd);
	return r;
}
