"""`lab mirror DIR RELEASE ARCH`: a small stand-in for an OpenBSD release tree.

DIR/<release>/<arch>/ gets what the installer looks at on a mirror:
bsd.rd (bootable by the lab: first line `LAB-OPENBSD-RAMDISK <release> <arch>`),
bsd, bsd.mp, BUILDINFO, INSTALL.<arch>, tiny but real .tgz sets, SHA256 in
OpenBSD's `SHA256 (file) = hex` format, SHA256.sig and index.txt.

SHA256.sig is a stand-in for signify(1)'s embedded signature: the two
signature lines (`untrusted comment: verify with openbsd-XY-base.pub` and a
base64 blob) followed by the SHA256 text.  The layouts are signify's
(usr.bin/signify/signify.c: struct sig = "Ed" + 8-byte key number + 64-byte
signature, struct pubkey = "Ed" + key number + 32-byte key), but the
signature is HMAC-SHA512 keyed with the 32 "public" key bytes, not Ed25519:
the lab has only Python's standard library.  So it is symmetric (whoever has
the .pub file could sign); what it models is signify's observable interface:
the right key verifies, another key or a changed message does not.  `lab
mirror` also writes the release's key to $VMM_LAB_ROOT/etc/signify/ (a real
host has it from the base set).

index.txt is what OpenBSD's release process writes with `ls -nT`: one line
per file, `-rw-r--r--  1 0  0  <size> <Mon dd HH:MM:SS YYYY> <name>`.  The
installer only takes names from lines where the name follows a blank.
"""

import base64
import gzip
import hashlib
import hmac
import io
import os
import sys
import tarfile
import time

STANDARD_SETS = ('base', 'comp', 'man', 'game', 'xbase', 'xshare', 'xfont', 'xserv')

# Reproducible archives: a fixed mtime keeps SHA256 stable between runs.
_MTIME = 1759000000


def version_of(release):
    """'7.8' -> '78' (the XY in set names)."""
    return release.split('-')[0].replace('.', '')


def key_name(release):
    return 'openbsd-%s-base.pub' % version_of(release)


def key_bytes(keyname):
    """(key number, key) of the lab's signing key keyname: fixed per name, so every lab agrees."""
    return (hashlib.sha256(keyname.encode()).digest()[:8],
            hashlib.sha256(b'lab-signify-key\0' + keyname.encode()).digest())


def pubkey_text(keyname):
    """The .pub file of keyname, as `signify -G` writes it (comment line, base64 of struct pubkey)."""
    keynum, key = key_bytes(keyname)
    return 'untrusted comment: %s public key\n%s\n' % (keyname.rsplit('.', 1)[0].replace('-', ' '),
                                                       base64.b64encode(b'Ed' + keynum + key).decode())


def signature_bytes(message, keynum, key):
    """struct sig of message: "Ed", the key number, a 64-byte keyed digest (the lab's Ed25519)."""
    return b'Ed' + keynum + hmac.new(key, message, hashlib.sha512).digest()


def _blob(message, keyname):
    return base64.b64encode(signature_bytes(message, *key_bytes(keyname))).decode()


def sign(message, keyname):
    """Embedded signature (signify -Se style) of message with the lab's key keyname."""
    return ('untrusted comment: verify with %s\n%s\n' % (keyname, _blob(message, keyname))).encode() + message


def verify(signed, keyname):
    """Return the signed message if signed carries a good signature by keyname, else None."""
    try:
        comment, blob, message = signed.split(b'\n', 2)
    except ValueError:
        return None
    if comment != ('untrusted comment: verify with %s' % keyname).encode():
        return None
    if blob.decode('ascii', 'replace') != _blob(message, keyname):
        return None
    return message


def make_tgz(path, members, mtime=_MTIME):
    """Write a gzip'ed tar at path; members: list of (name, bytes, mode) or (name, None, mode) for dirs."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.mode = mode
            info.uname = info.gname = 'root'
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with open(path, 'wb') as handle:
        with gzip.GzipFile(fileobj=handle, mode='wb', mtime=mtime, filename='') as gz:
            gz.write(raw.getvalue())


def _tgz_bytes(members):
    buf = io.BytesIO()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mtime = _MTIME
            info.mode = mode
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with gzip.GzipFile(fileobj=buf, mode='wb', mtime=_MTIME, filename='') as gz:
        gz.write(raw.getvalue())
    return buf.getvalue()


def _set_members(name, release, arch):
    marker = ('%s set of the lab stand-in for OpenBSD %s/%s\n' % (name, release, arch)).encode()
    members = [('./usr/share/lab/sets/%s' % name, marker, 0o644)]
    if name == 'base':
        etc = _tgz_bytes([
            ('./etc/motd', ('OpenBSD %s (GENERIC) lab stand-in\n' % release).encode(), 0o664),
            ('./etc/master.passwd', b'root::0:0:daemon:0:0:Charlie &:/root:/bin/ksh\n', 0o600),
            ('./etc/group', b'wheel:*:0:root\n', 0o644),
            ('./etc/ttys', b'console "/usr/libexec/getty std.9600" vt220 off secure\n'
                           b'tty00 "/usr/libexec/getty std.9600" unknown off\n', 0o644),
        ])
        members += [
            ('./bin/ksh', b'#!lab stand-in for ksh\n', 0o555),
            ('./var/sysmerge/etc.tgz', etc, 0o644),
            ('./usr/share/zoneinfo/UTC', b'TZif stand-in\n', 0o444),
        ]
    elif name == 'xbase':
        xetc = _tgz_bytes([('./etc/X11/xenodm/Xsetup_0', b'#!/bin/sh\n', 0o755)])
        members.append(('./var/sysmerge/xetc.tgz', xetc, 0o644))
    return members


def sha256_line(name, data):
    return 'SHA256 (%s) = %s\n' % (name, hashlib.sha256(data).hexdigest())


def write_sha256(setdir, names):
    """(Re)write SHA256 and SHA256.sig for the given file names of setdir."""
    lines = []
    for name in sorted(names):
        with open(os.path.join(setdir, name), 'rb') as handle:
            lines.append(sha256_line(name, handle.read()))
    text = ''.join(lines).encode()
    release = _release_of(setdir)
    with open(os.path.join(setdir, 'SHA256'), 'wb') as handle:
        handle.write(text)
    with open(os.path.join(setdir, 'SHA256.sig'), 'wb') as handle:
        handle.write(sign(text, key_name(release)))


def _release_of(setdir):
    with open(os.path.join(setdir, 'bsd.rd'), encoding='ascii', errors='replace') as handle:
        return handle.readline().split()[1]


def index_line(path):
    stat = os.stat(path)
    stamp = time.strftime('%b %e %H:%M:%S %Y', time.gmtime(stat.st_mtime))
    return '-rw-r--r--  1 0  0  %10d %s %s\n' % (stat.st_size, stamp, os.path.basename(path))


def write_index(setdir):
    """(Re)write setdir/index.txt listing every regular file in setdir (ls -nT style)."""
    names = sorted(name for name in os.listdir(setdir)
                   if name != 'index.txt' and os.path.isfile(os.path.join(setdir, name)))
    with open(os.path.join(setdir, 'index.txt'), 'w', encoding='ascii') as handle:
        for name in names:
            handle.write(index_line(os.path.join(setdir, name)))


def make_mirror(directory, release, arch):
    """Create DIR/<release>/<arch> with a stand-in release; return that set directory."""
    setdir = os.path.join(directory, release, arch)
    os.makedirs(setdir, exist_ok=True)
    version = version_of(release)
    files = {
        'bsd.rd': ('LAB-OPENBSD-RAMDISK %s %s\n' % (release, arch)
                   + 'This is the lab\'s stand-in for the OpenBSD installation ramdisk kernel.\n').encode(),
        'bsd': ('LAB-OPENBSD-KERNEL %s %s GENERIC\n' % (release, arch)).encode(),
        'bsd.mp': ('LAB-OPENBSD-KERNEL %s %s GENERIC.MP\n' % (release, arch)).encode(),
        'BUILDINFO': ('Build date: %d - %s\n' % (_MTIME, time.strftime('%a %b %e %H:%M:%S UTC %Y', time.gmtime(_MTIME)))).encode(),
        'INSTALL.%s' % arch: ('OpenBSD %s %s installation notes (lab stand-in)\n' % (release, arch)).encode(),
    }
    for name, data in files.items():
        with open(os.path.join(setdir, name), 'wb') as handle:
            handle.write(data)
    names = list(files)
    for set_name in STANDARD_SETS:
        file_name = '%s%s.tgz' % (set_name, version)
        make_tgz(os.path.join(setdir, file_name), _set_members(set_name, release, arch))
        names.append(file_name)
    write_sha256(setdir, names)
    write_index(setdir)
    make_packages(os.path.join(directory, release, 'packages', arch))
    root = os.environ.get('VMM_LAB_ROOT')
    if root:
        install_key(root, release)
    return setdir


# Stand-in packages of a release's packages/<arch> directory: fullname -> (comment, dependencies as
# `@depend PKGPATH:PATTERN:DEFAULT`). Two flavors of vim make the stem `vim` ambiguous, as on a mirror.
PACKAGES = {
    'xxhash-0.8.3': ('extremely fast non-cryptographic hash algorithm', []),
    'rsync-3.4.1': ('mirroring/synchronization over low bandwidth links', ['net/rsync,xxhash:xxhash-*:xxhash-0.8.3']),
    'vim-9.1.1265-no_x11': ('vi clone, many additional features', []),
    'vim-9.1.1265-gtk3': ('vi clone, many additional features', []),
}


def package_members(fullname, comment, depends):
    """The members of a package .tgz (pkg_create(1)): +CONTENTS (the packing list) first, +DESC."""
    contents = ['@name %s' % fullname, '@comment pkgpath=lab/%s ftp=yes' % fullname.split('-')[0]]
    contents += ['@depend %s' % dep for dep in depends]
    contents += ['@cwd /usr/local', '@comment lab: the files of the package are not modelled']
    return [('+CONTENTS', ('\n'.join(contents) + '\n').encode(), 0o644),
            ('+DESC', ('%s\n\nLab stand-in package.\n' % comment).encode(), 0o644)]


def make_packages(pkgdir, packages=None):
    """Write the stand-in packages into pkgdir (a mirror's <release>/packages/<arch>/); return their names."""
    os.makedirs(pkgdir, exist_ok=True)
    packages = PACKAGES if packages is None else packages
    for fullname, (comment, depends) in packages.items():
        make_tgz(os.path.join(pkgdir, fullname + '.tgz'), package_members(fullname, comment, depends))
    return sorted(packages)


def install_key(root, release):
    """Put the release's key where a host has it: $VMM_LAB_ROOT/etc/signify/openbsd-XY-base.pub."""
    keydir = os.path.join(root, 'etc', 'signify')
    os.makedirs(keydir, exist_ok=True)
    with open(os.path.join(keydir, key_name(release)), 'w', encoding='ascii') as handle:
        handle.write(pubkey_text(key_name(release)))


def main(argv):
    """`lab mirror DIR RELEASE ARCH`; returns the exit code."""
    if len(argv) != 3:
        print('usage: lab mirror DIR RELEASE ARCH', file=sys.stderr)
        return 1
    print(make_mirror(*argv))
    return 0
