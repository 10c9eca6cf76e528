"""signify(1) for the lab: `-C` (check a signed checksum list and the files it names) and `-V`.

Follows usr.bin/signify/signify.c (the version in the reference index: `check`, `verifyembedded`,
`verifymsg`, `verifychecksums`, `readb64file`/`parseb64file`, `xopen`): its messages, exit codes
and order of checks.  The signature itself is the lab's stand-in (labsim.mirror: an HMAC-SHA512
keyed with the public key bytes instead of Ed25519, since the lab has only the standard library);
the key and signature file layouts are signify's."""

import base64
import binascii
import hashlib
import hmac
import os
import re
import sys

from labsim import mirror

COMMENTHDR = "untrusted comment: "
SIGBYTES, PUBLICBYTES, FPLEN = 64, 32, 8


class Fatal(Exception):
    """errx(1, ...): the message is printed as `signify: <message>`."""


def usage(error=None):
    if error:
        sys.stderr.write(error + "\n")
    sys.stderr.write("usage:\tsignify -C [-q] -p pubkey -x sigfile [file ...]\n"
                     "\tsignify -G [-n] [-c comment] -p pubkey -s seckey\n"
                     "\tsignify -I [-p pubkey] [-s seckey] [-x sigfile]\n"
                     "\tsignify -S [-e] [-x sigfile] -s seckey -m message\n"
                     "\tsignify -V [-eq] [-x sigfile] -p pubkey -m message\n")
    return 1


def read_file(name):
    """xopen + read: err(1, "can't open %s for reading")."""
    try:
        with open(name, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        raise Fatal("not a valid file: %s" % name) from None
    except OSError as exc:
        raise Fatal("can't open %s for reading: %s" % (name, os.strerror(exc.errno))) from None


def parse_b64(name, data, length):
    """parseb64file: (comment, decoded struct, bytes consumed) of data read from name."""
    end = data.find(b"\n")
    if end == -1 or end <= len(COMMENTHDR) or not data.startswith(COMMENTHDR.encode()):
        raise Fatal("invalid comment in %s; must start with '%s'" % (name, COMMENTHDR))
    b64end = data.find(b"\n", end + 1)
    if b64end == -1:
        raise Fatal("missing new line after b64 in %s" % name)
    try:
        decoded = base64.b64decode(data[end + 1:b64end], validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != length:
        raise Fatal("invalid b64 encoding in %s" % name)
    if decoded[:2] != b"Ed":
        raise Fatal("unsupported file %s" % name)
    return data[len(COMMENTHDR):end].decode("utf-8", "replace"), decoded, b64end + 1


def verify_message(pubkey, message, sig, quiet):
    """verifymsg: key number first, then the signature."""
    if pubkey[2:2 + FPLEN] != sig[2:2 + FPLEN]:
        raise Fatal("verification failed: checked against wrong key")
    expected = mirror.signature_bytes(message, pubkey[2:2 + FPLEN], pubkey[2 + FPLEN:])
    if not hmac.compare_digest(expected, sig):
        raise Fatal("signature verification failed")
    if not quiet:
        sys.stdout.write("Signature Verified\n")


def verify_embedded(pubkeyfile, sigfile, quiet):
    data = read_file(sigfile)
    _comment, sig, used = parse_b64(sigfile, data, 2 + FPLEN + SIGBYTES)
    _comment, pubkey, _used = parse_b64(pubkeyfile, read_file(pubkeyfile), 2 + FPLEN + PUBLICBYTES)
    message = data[used:]
    verify_message(pubkey, message, sig, quiet)
    return message


def verify_checksums(message, files, quiet):
    """verifychecksums: `<file>: OK` on stdout, then every `<file>: FAIL` on stderr and exit 1."""
    checksums = []
    for line in message.decode("latin-1").split("\n"):
        if not line:
            continue
        match = re.match(r"^(\S{1,255})\s+(\S{1,1023})\s+=\s+(\S{1,1023})", line)
        if not match or not match.group(2).startswith("(") or not match.group(2).endswith(")"):
            raise Fatal("unable to parse checksum line %s" % line)
        checksums.append((match.group(1), match.group(2)[1:-1], match.group(3).lower()))
    wanted = files or [name for _algo, name, _hash in checksums]
    failures = []
    for name in wanted:
        entry = next((c for c in checksums if c[1] == name), None)
        if entry is None:
            failures.append(name)
            continue
        algo, path, digest = entry
        if algo not in ("SHA256", "SHA512"):
            raise Fatal("can't handle algorithm %s" % algo)
        try:
            with open(path, "rb") as handle:
                actual = hashlib.new(algo.lower(), handle.read()).hexdigest()
        except OSError:
            failures.append(name)
            continue
        if actual != digest:
            failures.append(name)
            continue
        if not quiet:
            sys.stdout.write("%s: OK\n" % path)
    for name in failures:
        sys.stderr.write("%s: FAIL\n" % name)
    return 1 if failures else 0


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    verb, opts, rest = None, {}, []
    while args:
        arg = args.pop(0)
        if arg == "--" or not arg.startswith("-") or arg == "-":
            rest = ([] if arg == "--" else [arg]) + args
            break
        letters = arg[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in "CGISV":
                if verb:
                    return usage()
                verb = letter
            elif letter in "eqn":
                opts[letter] = True
            elif letter in "cmpsx":
                value = letters or (args.pop(0) if args else None)
                if value is None:
                    return usage()
                opts[letter], letters = value, ""
            else:
                return usage()
    try:
        if verb == "C":
            if "p" not in opts or "x" not in opts:
                return usage("must specify pubkey and sigfile")
            message = verify_embedded(opts["p"], opts["x"], opts.get("q", False))
            return verify_checksums(message, rest, opts.get("q", False))
        if rest:
            return usage()
        if verb == "V":
            if "m" not in opts:
                return usage("must specify message")
            if "p" not in opts:
                return usage("must specify pubkey")
            if opts.get("e"):
                message = verify_embedded(opts["p"], opts.get("x", opts["m"] + ".sig"), opts.get("q", False))
                with open(opts["m"], "wb") as handle:
                    handle.write(message)
                return 0
            _comment, sig, _used = parse_b64(opts.get("x", opts["m"] + ".sig"), read_file(opts.get("x", opts["m"] + ".sig")),
                                             2 + FPLEN + SIGBYTES)
            _comment, pubkey, _used = parse_b64(opts["p"], read_file(opts["p"]), 2 + FPLEN + PUBLICBYTES)
            verify_message(pubkey, read_file(opts["m"]), sig, opts.get("q", False))
            return 0
        # -G, -I and -S: the lab signs with its own keys (labsim.mirror), never with a secret key file
        return usage()
    except Fatal as exc:
        sys.stderr.write("signify: %s\n" % exc)
        return 1
