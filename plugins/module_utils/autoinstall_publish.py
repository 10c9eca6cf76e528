# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""What one vmm_autoinstall task publishes in the install server's docroot.

The response file ``<mac>-install.conf`` and the disklabel template sit in the
docroot, where the installer fetches them (autoinstall-facts.md §3); the site
set sits in the set directory ``pub/OpenBSD/<release>/<arch>`` and is listed in
its ``index.txt`` (the installer only offers files listed there or in SHA256).
"""

from __future__ import annotations

import fcntl
import grp
import json
import os
import time

from ansible_collections.openbsd.vmm.plugins.module_utils.atomic_file import file_state, read_file, remove_file, write_atomic
from ansible_collections.openbsd.vmm.plugins.module_utils.console_follow import redact
from ansible_collections.openbsd.vmm.plugins.module_utils.processes import process_alive
from ansible_collections.openbsd.vmm.plugins.module_utils.site_set import pack_site_set, read_site_set

# Stands for the install server in what the action plugin rendered, until the module knows it.
SERVER_TOKEN = '@INSTALL_SERVER@'
# Response file and site set hold password hashes: root and the HTTP daemon's group (file_group, www
# for httpd(8), whose server processes run as user www) may read them, nobody else. In OpenBSD's stock
# docroot (root:daemon 0755, etc/mtree/4.4BSD.dist) a new file takes the directory's group, daemon,
# so without file_group a 0640 file is unreadable by www and httpd answers 403.
SECRET_MODE = 0o640
PUBLIC_MODE = 0o644
# Beside the docroot (never served): one record per publication of an install run, naming the files and
# the pid of the module process that published them. A run killed with -9 cannot remove its files; the
# next vmm_autoinstall run on the host finds the record of a process that is gone and removes them.
RECORDS_SUFFIX = '.vmm_autoinstall'
MASK = '********'


def mask_answers(text, keys):
    """``text`` (a response file) with the values of the ``answers`` keys masked: they may be passphrases."""
    if not keys:
        return text
    wanted = set(key.strip().lower() for key in keys)
    lines = []
    for line in text.splitlines(True):
        key, sep, _value = line.partition('=')
        if sep and not line.lstrip().startswith('#') and key.strip().lower() in wanted:
            line = '%s= %s%s' % (key, MASK, '\n' if line.endswith('\n') else '')
        lines.append(line)
    return ''.join(lines)


def records_dir(docroot):
    """Where the publication records of ``docroot`` live: beside it, outside what httpd serves."""
    return os.path.normpath(docroot) + RECORDS_SUFFIX


def _inside(path, docroot):
    root = os.path.normpath(docroot)
    return os.path.normpath(path).startswith(root + os.sep)


def remove_stale(docroot, check_mode=False, delete_client=None):
    """Remove the files of publications whose publishing process is gone (a killed run); return their paths.

    ``delete_client(client)`` removes the record's pf table entry (the killed run's VM address); when it raises
    an OSError or ValueError the record stays, so a later run tries again.

    A pid that was reused by another process keeps the files until that process ends: the check errs on the side of
    leaving a file, never of removing one a running install still needs.
    """
    directory = records_dir(docroot)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        if not name.endswith('.json'):
            continue
        path = os.path.join(directory, name)
        try:
            record = json.loads(read_file(path) or '')
            pid = int(record['pid'])
        except (ValueError, KeyError, TypeError):
            record, pid = {}, None
        if pid is not None and (pid == os.getpid() or process_alive(pid)):
            continue
        for stale in record.get('paths') or []:
            if _inside(stale, docroot) and os.path.lexists(stale):
                removed.append(stale)
                if not check_mode:
                    remove_file(stale)
        setdir, site_set = record.get('setdir'), record.get('site_set')
        if not check_mode and setdir and site_set and _inside(setdir, docroot) and os.path.isdir(setdir):
            update_index(setdir, site_set, False)
        if check_mode:
            continue
        if record.get('client') and delete_client is not None:
            try:
                delete_client(record['client'])
            except (OSError, ValueError):
                continue
        remove_file(path)
    return removed


class PublishError(Exception):
    """The files cannot be published (missing directory, unknown group)."""


def index_line(path):
    """An ``ls -nT`` line like the ones in a mirror's index.txt."""
    stat = os.stat(path)
    stamp = time.strftime('%b %e %H:%M:%S %Y', time.gmtime(stat.st_mtime))
    return '-rw-r--r--  1 0  0  %10d %s %s\n' % (stat.st_size, stamp, os.path.basename(path))


def _index_name(line):
    words = line.split()
    return words[-1] if words else None


def update_index(setdir, name, present):
    """Add (or drop) ``name`` in setdir/index.txt, keeping the other lines; return True if changed.

    Two installs of one release at once (build_image.yml's variants) each add and drop their own site set: the
    read-change-write holds an flock on the set directory, or one of them would lose the other's line.
    """
    directory = os.open(setdir, os.O_RDONLY | os.O_DIRECTORY)     # OpenBSD's python3 has O_DIRECTORY too
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        return _update_index(setdir, name, present)
    finally:
        os.close(directory)     # closing the descriptor releases the flock


def _update_index(setdir, name, present):
    index = os.path.join(setdir, 'index.txt')
    current = read_file(index) or ''
    lines = [line if line.endswith('\n') else line + '\n' for line in current.splitlines()]
    listed = any(_index_name(line) == name for line in lines)
    if present == listed:
        return False
    if present:
        lines.append(index_line(os.path.join(setdir, name)))
    else:
        lines = [line for line in lines if _index_name(line) != name]
    write_atomic(index, ''.join(lines), PUBLIC_MODE)
    return True


def group_id(name):
    """The gid of group ``name`` (a name or a number), or None when no group is asked for."""
    if name in (None, ''):
        return None
    if str(name).isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise PublishError('file_group %r: no such group on the install server; it must be the group of the user '
                           'the HTTP daemon serves files as (www for httpd(8)), or the installer cannot read the '
                           'response file and site set (mode 0640)' % name)


class Publication:
    """The files one task publishes in the docroot."""

    def __init__(self, params, payload):
        self.docroot = params['docroot']
        self.file_group = params.get('file_group')
        self.mac = params['mac'].lower()
        self.setdir = os.path.join(self.docroot, 'pub', 'OpenBSD', params['release'], params['arch'])
        self.response_path = os.path.join(self.docroot, '%s-install.conf' % self.mac)
        self.disklabel_path = os.path.join(self.docroot, '%s-disklabel' % self.mac)
        site_set = payload.get('site_set')
        self.site_path = os.path.join(self.setdir, site_set) if site_set else None
        self.secret_answer_keys = payload.get('secret_answer_keys') or []
        self.record_path = os.path.join(records_dir(self.docroot), '%s.json' % self.mac)

    def claim(self, client=None):
        """Record, before publishing, what this process publishes: a later run removes it if this one is killed.

        ``client`` (anchor, table, address) is the pf table entry that lets the installing VM fetch the files.
        """
        directory = records_dir(self.docroot)
        if not os.path.isdir(directory):
            os.mkdir(directory, 0o700)
        paths = [path for path in (self.response_path, self.disklabel_path, self.site_path) if path]
        record = dict(pid=os.getpid(), paths=paths, setdir=self.setdir, client=client,
                      site_set=os.path.basename(self.site_path) if self.site_path else None)
        write_atomic(self.record_path, json.dumps(record, sort_keys=True) + '\n', 0o600)

    def release(self):
        """Drop the record once the published files are removed."""
        remove_file(self.record_path)

    def existing(self):
        """What is published now (response file text, secrets of the site set), for the action plugin."""
        found = dict(response_file=read_file(self.response_path))
        if self.site_path:
            found.update(read_site_set(self.site_path))
        return found

    def publish(self, payload, server=None, check_mode=False):
        """Write what the payload holds (``server`` in place of SERVER_TOKEN); return (changed paths, all paths, diff)."""
        response = payload['response_file']
        if server is not None:
            response = response.replace(SERVER_TOKEN, server)
        wanted = [(self.response_path, response.encode('utf-8'), SECRET_MODE)]
        if payload.get('disklabel'):
            wanted.append((self.disklabel_path, payload['disklabel'].encode('utf-8'), PUBLIC_MODE))
        if payload.get('site_set'):
            if not os.path.isdir(self.setdir):
                raise PublishError('set directory %s does not exist: put the release (bsd.rd, sets, SHA256.sig, '
                                   'index.txt) there first' % self.setdir)
            # It may hold password hashes and the random root password: as private as the response file.
            wanted.append((self.site_path, pack_site_set(payload['site_files']), SECRET_MODE))
        if not os.path.isdir(self.docroot):
            raise PublishError('docroot %s does not exist' % self.docroot)
        gid = group_id(self.file_group)
        changed, diff = [], []
        before = read_file(self.response_path)
        for path, data, mode in wanted:
            current, current_mode, current_gid = file_state(path)
            if current == data and current_mode == mode and gid in (None, current_gid):
                continue
            changed.append(path)
            if not check_mode:
                write_atomic(path, data, mode, gid)
        if self.site_path and not check_mode and update_index(self.setdir, os.path.basename(self.site_path), True):
            changed.append(os.path.join(self.setdir, 'index.txt'))
        if self.response_path in changed:
            diff.append(dict(before_header=self.response_path, after_header=self.response_path,
                             before=redact(mask_answers(before or '', self.secret_answer_keys)),
                             after=redact(mask_answers(response, self.secret_answer_keys))))
        return changed, [path for path, data, mode in wanted], diff

    def remove(self, check_mode=False):
        """Remove what this task publishes; return the paths that were there."""
        removed = []
        for path in (self.response_path, self.disklabel_path, self.site_path):
            if path and os.path.exists(path):
                removed.append(path)
                if not check_mode:
                    remove_file(path)
        if self.site_path and os.path.isdir(self.setdir) and not check_mode:
            update_index(self.setdir, os.path.basename(self.site_path), False)
        return removed
