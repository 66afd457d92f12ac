/*
 * NAME
 *	wake - the datagram socket that tells carepostd "new events"
 * SYNOPSIS
 *	#include "wake.h"
 *
 *	fd = wake_listen(cfg->wake_socket, &err);	(carepostd, at start)
 *	... readable: wake_drain(fd); run a send round now ...
 *	wake_close(fd, cfg->wake_socket);
 *
 *	r = wake_send(cfg->wake_socket);	(carepostctl, after event add)
 * DESCRIPTION
 *	The portal commits events to the store and then may send one
 *	datagram, of any bytes, to [daemon] wake_socket (an AF_UNIX
 *	SOCK_DGRAM socket, /run/carepost/wake in the shipped config), so
 *	that carepostd runs a send round at once instead of at its next
 *	poll. The bytes mean nothing and are never read as data; the poll
 *	stays as the fallback, so a lost datagram only costs the wait.
 *
 *	wake_listen makes the socket: a stale socket left at path (one
 *	whose connect is refused: a carepostd that died) is removed first;
 *	one anyone else holds, or anything that is not a socket, is
 *	refused; the socket is made mode 0600 (the portal's writer runs as
 *	the carepost user: docs/store.md), and its inode goes to *ino.
 *	wake_drain reads the datagrams waiting, at most 64 a call (the
 *	socket stays readable for the rest), without blocking.
 *	wake_close closes fd and removes the socket file, if it is still
 *	the one made (the inode ino). wake_send sends one byte to the socket at path,
 *	without blocking.
 * ERRORS
 *	wake_listen: the fd, or -ENAMETOOLONG (a path longer than
 *	sun_path), -EEXIST (something that is not a socket at path), -EADDRINUSE
 *	(a socket someone listens on), or
 *	the errno of socket, bind or chmod; err says which, naming path.
 *	wake_send: 0, or -errno: -ENOENT or -ECONNREFUSED when no carepostd
 *	listens, -EAGAIN when its queue is full (it is awake already).
 * OWNERSHIP
 *	The caller owns the fd. path is only read.
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_WAKE_H
#define CAREPOST_WAKE_H

#include <sys/types.h>

#include "util.h"

int wake_listen(const char *path, ino_t *ino, struct cp_error *err);
void wake_drain(int fd);
void wake_close(int fd, const char *path, ino_t ino);
int wake_send(const char *path);

#endif
