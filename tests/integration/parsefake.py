#!/usr/bin/python3
"""A substitute carepost-parse for the tests of the parse wall.

test_parse_wall copies carepostd into a scratch directory and puts beside
it a carepost-parse that runs this script, which carepostd then finds and
starts as its parse helper (lib/helper's helper_find: a program beside the
running binary comes first). It starts the real carepost-parse (argv[1])
on a socket of its own, in its process group, and relays the frames both
ways, unless a request carries one of these header lines:

    X-Test-Parser: segv     it dies of SIGSEGV (a parser crashing on input)
    X-Test-Parser: stall    it writes DIR/stalled.PID (argv[2]) and waits
                            (for the test's SIGKILL: killed mid-message)

It exists only in the tests: carepost-parse has no such trigger."""
import os
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


def main():
    up = socket.socket(fileno=3)
    mine, theirs = socket.socketpair()
    os.posix_spawn(REAL, ["carepost-parse", "--parse-helper"], {},
                   file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
    theirs.close()
    try:
        up.sendall(read_frame(mine))            # its first word
        while True:
            req = read_frame(up)
            if b"X-Test-Parser: segv" in req:
                os.kill(os.getpid(), signal.SIGSEGV)
            if b"X-Test-Parser: stall" in req:
                open(os.path.join(DIR, "stalled.%d" % os.getpid()), "w").close()
                while True:
                    time.sleep(3600)
            mine.sendall(req)
            up.sendall(read_frame(mine))
    except EOFError:
        return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(main())
