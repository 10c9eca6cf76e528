# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The site set (siteXY[-host].tgz): packed deterministically, and read back for the secrets it carries.

The installer extracts site sets last, with ``tar -p``, into the new root
(autoinstall-facts.md §5). Identical inputs must give identical bytes, so that
publishing again changes nothing.
"""

from __future__ import annotations

import base64
import gzip
import io
import re
import tarfile

from ansible_collections.openbsd.vmm.plugins.module_utils.atomic_file import read_file

# Deterministic archives: identical inputs give identical bytes (idempotent publishing).
ARCHIVE_MTIME = 0
AUTHORIZED_KEYS = 'root/.ssh/authorized_keys'
ROOT_PASSWORD_COMMENT = re.compile(r'^# root password: (\S+)$', re.M)
USERADD_HASH = re.compile(r"-p '(\$2[a-z]\$\d\d\$[./A-Za-z0-9]{53})' ([a-z][-a-z0-9_]*)$", re.M)


def pack_site_set(files):
    """The site set as deterministic .tgz bytes: sorted members, root-owned, fixed mtimes.

    Parent directories get no entries of their own, so extracting (tar -p) never changes the
    modes of directories the base sets made (/root is 0700); only ``.ssh`` directories are
    added, with mode 0700 as sshd(8) expects.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.USTAR_FORMAT) as tar:
        directories = set()
        for item in sorted(files, key=lambda entry: entry['path']):
            parts = item['path'].split('/')[:-1]
            for depth in range(1, len(parts) + 1):
                directory = '/'.join(parts[:depth])
                if parts[depth - 1] == '.ssh' and directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo('./' + directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, ARCHIVE_MTIME
                    info.uname = info.gname = 'root'
                    tar.addfile(info)
            data = base64.b64decode(item['content'])
            info = tarfile.TarInfo('./' + item['path'])
            info.size, info.mode, info.mtime = len(data), int(item['mode'], 8), ARCHIVE_MTIME
            info.uname = info.gname = 'root'
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode='wb', mtime=ARCHIVE_MTIME, filename='') as archive:
        archive.write(raw.getvalue())
    return packed.getvalue()


def read_site_set(path):
    """Secrets-bearing parts of a published site set: the random root password and useradd hashes."""
    data = read_file(path, binary=True)
    found = dict(site_root_password=None, site_user_hashes={})
    if data is None:
        return found
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
            for member in tar.getmembers():
                name = member.name.lstrip('./')
                if not member.isfile() or name not in (AUTHORIZED_KEYS, 'install.site'):
                    continue
                text = tar.extractfile(member).read().decode('utf-8', 'replace')
                if name == 'install.site':
                    found['site_user_hashes'] = dict((login, hashed) for hashed, login in USERADD_HASH.findall(text))
                else:
                    match = ROOT_PASSWORD_COMMENT.search(text)
                    found['site_root_password'] = match.group(1) if match else None
    except (tarfile.TarError, OSError, EOFError):
        pass
    return found


def random_password(payload):
    """The random root password the payload's site set delivers, or None."""
    for item in payload.get('site_files') or []:
        if item['path'] == AUTHORIZED_KEYS:
            match = ROOT_PASSWORD_COMMENT.search(base64.b64decode(item['content']).decode('utf-8', 'replace'))
            if match:
                return match.group(1)
    return None
