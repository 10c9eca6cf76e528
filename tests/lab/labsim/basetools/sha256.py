"""sha256(1) for the lab, the md5(1) family's SHA256 as bin/md5/md5.c has it (v1.99).

digest_print(): "SHA256 (file) = hex" by default, only the hex digest with -q (STYLE_TERSE); standard input
when no file is named (digest_file("-"), the digest alone); warn("cannot open %s") and exit 1 for a file that
cannot be read, after the others are printed."""

import getopt
import hashlib
import os
import sys


def _digest(handle):
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def main(argv=None):
    try:
        opts, files = getopt.getopt(sys.argv[1:] if argv is None else argv, "q")
    except getopt.GetoptError:
        sys.stderr.write("usage: sha256 [-bcpqrtx] [-C checklist] [-h hashfile] [-s string] [file ...]\n")
        return 1
    quiet = bool(opts)
    if not files:
        sys.stdout.write(_digest(sys.stdin.buffer) + "\n")
        return 0
    error = 0
    for name in files:
        try:
            with open(name, "rb") as handle:
                digest = _digest(handle)
        except OSError as exc:
            sys.stdout.flush()
            sys.stderr.write("sha256: cannot open %s: %s\n" % (name, os.strerror(exc.errno)))
            error = 1
            continue
        sys.stdout.write(digest + "\n" if quiet else "SHA256 (%s) = %s\n" % (name, digest))
    return error
