#!/usr/bin/python3
"""A substitute carepost-parse for the tests of the parse wall.

test_parse_wall copies carepostd into a scratch directory and puts beside
it a carepost-parse that runs this script, which carepostd then finds and
starts as its parse helper (lib/helper's helper_find: a program beside the
running binary comes first). It serves carepostd as the real one does, a
fork server (lib/helper.h): it starts the real carepost-parse (argv[1]) on
a socket of its own and relays its first word; then, for each connection
carepostd hands it ("f" and a descriptor, SCM_RIGHTS; numbered from 1), it
forks a child of its own that asks the real server for a real child and
relays the frames both ways, saying its own pid in the first word. It
reports every end of its children (connection number and wait status) and
kills a child still there a second after carepostd said it is done with it
("e" and the number), as the real server does. A child whose request
carries one of these header lines instead:

    X-Test-Parser: segv     dies of SIGSEGV (a parser crashing on input)
    X-Test-Parser: stall    writes DIR/stalled.PID (argv[2]) and waits
                            (for the test's SIGKILL: killed mid-message)

It exists only in the tests: carepost-parse has no such trigger."""
import os
import select
import signal
import socket
import struct
import sys
import time

REAL, DIR = sys.argv[1], sys.argv[2]


def read_exactly(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def read_frame(s):
    head = read_exactly(s, 4)
    (n,) = struct.unpack("=I", head)
    return head + read_exactly(s, n)


def frame(tag, *fields):
    body = struct.pack("=iI", tag, len(fields))
    for f in fields:
        body += struct.pack("=I", len(f)) + f
    return struct.pack("=I", len(body)) + body


def child(conn, real):
    """One connection: a real child asked for, its frames relayed."""
    mine, theirs = socket.socketpair()
    socket.send_fds(real, [b"f"], [theirs.fileno()])
    theirs.close()
    word = read_frame(mine)                     # version, the real pid
    tag, n = struct.unpack("=iI", word[4:12])
    (vlen,) = struct.unpack("=I", word[12:16])
    version = word[16:16 + vlen]
    conn.sendall(frame(tag, version, struct.pack("=i", os.getpid())))
    req = read_frame(conn)
    if b"X-Test-Parser: segv" in req:
        os.kill(os.getpid(), signal.SIGSEGV)
    if b"X-Test-Parser: stall" in req:
        open(os.path.join(DIR, "stalled.%d" % os.getpid()), "w").close()
        while True:
            time.sleep(3600)
    mine.sendall(req)
    conn.sendall(read_frame(mine))
    return 0


def reap(up, kids):
    """Report every child that ended: its connection number, its status."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        seq, _ = kids.pop(pid, (0, None))
        try:
            up.send(frame(0, struct.pack("=I", seq), struct.pack("=i", status)),
                    socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass


def main():
    up = socket.socket(fileno=3)
    real, theirs = socket.socketpair()
    os.posix_spawn(REAL, ["carepost-parse", "--parse-helper"], {},
                   file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
    theirs.close()
    up.sendall(read_frame(real))                # the server's first word
    kids = {}                                   # pid: (connection, deadline)
    seq = 0
    while True:
        reap(up, kids)
        now = time.monotonic()
        for pid, (s, deadline) in list(kids.items()):
            if deadline is not None and deadline <= now:
                os.kill(pid, signal.SIGKILL)
                kids[pid] = (s, None)
        ready, _, _ = select.select([up], [], [], 0.05)
        if not ready:
            continue
        msg, fds, _, _ = socket.recv_fds(up, 1, 1)
        if not msg:
            return 0
        if msg == b"e":
            (which,) = struct.unpack("=I", read_exactly(up, 4))
            for pid, (s, deadline) in kids.items():
                if s == which and deadline is None:
                    kids[pid] = (s, time.monotonic() + 1.0)
            continue
        seq += 1
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGSEGV, signal.SIG_DFL)
            up.close()
            conn = socket.socket(fileno=fds[0])
            try:
                rc = child(conn, real)
            except EOFError:
                rc = 0
            os._exit(rc)
        kids[pid] = (seq, None)
        os.close(fds[0])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(main())
