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

import grp
import os
import time

from ansible_collections.openbsd.vmm.plugins.module_utils.atomic_file import file_state, read_file, remove_file, write_atomic
from ansible_collections.openbsd.vmm.plugins.module_utils.console_follow import redact
from ansible_collections.openbsd.vmm.plugins.module_utils.site_set import pack_site_set, read_site_set

# Stands for the install server in what the action plugin rendered, until the module knows it.
SERVER_TOKEN = '@INSTALL_SERVER@'
# Response file and site set hold password hashes: root and the HTTP daemon's group (file_group, www
# for httpd(8), whose server processes run as user www) may read them, nobody else. In OpenBSD's stock
# docroot (root:daemon 0755, etc/mtree/4.4BSD.dist) a new file takes the directory's group, daemon,
# so without file_group a 0640 file is unreadable by www and httpd answers 403.
SECRET_MODE = 0o640
PUBLIC_MODE = 0o644


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
    """Add (or drop) ``name`` in setdir/index.txt, keeping the other lines; return True if changed."""
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
                             before=redact(before or ''), after=redact(response)))
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
