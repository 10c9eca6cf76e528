# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site set: deterministic packing, and the random root password it carries."""

from __future__ import annotations

import base64
import io
import tarfile

from ansible_collections.openbsd.vmm.plugins.module_utils.site_set import pack_site_set, random_password

RANDOM_PASSWORD = 'Xq7-random-Pw'


def site_file(path, text, mode='0644'):
    return dict(path=path, content=base64.b64encode(text.encode('utf-8')).decode('ascii'), mode=mode)


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
        return dict((member.name, member) for member in tar.getmembers())


def authorized_keys(password):
    return site_file('root/.ssh/authorized_keys', '# root password: %s\n' % password, '0600')


def test_site_set_members_keep_their_modes_and_are_root_owned():
    data = pack_site_set([site_file('install.site', '#!/bin/sh\necho hi\n', '0755'),
                          site_file('etc/motd', 'welcome\n', '0640')])
    found = members(data)
    assert sorted(found) == ['./etc/motd', './install.site']
    assert found['./install.site'].mode == 0o755
    assert found['./etc/motd'].mode == 0o640
    assert all(member.uname == 'root' and member.gname == 'root' and member.mtime == 0 for member in found.values())


def test_site_set_has_no_parent_directory_entries_except_ssh_at_0700():
    found = members(pack_site_set([site_file('etc/ssh/sshd_config.d/extra.conf', 'PermitRootLogin no\n'),
                                   authorized_keys('pw')]))
    directories = dict((name, member.mode) for name, member in found.items() if member.isdir())
    # No ./etc, ./root or ./etc/ssh: tar -p would otherwise change the modes the base sets made.
    assert directories == {'./root/.ssh': 0o700}
    assert found['./root/.ssh/authorized_keys'].mode == 0o600


def test_site_set_content_is_preserved_and_packing_is_deterministic():
    files = [site_file('b.txt', 'second\n'), site_file('a.txt', 'first\n')]
    data = pack_site_set(files)
    assert data == pack_site_set(list(reversed(files)))
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
        assert tar.getnames() == ['./a.txt', './b.txt']
        assert tar.extractfile('./b.txt').read() == b'second\n'


def test_random_password_comes_from_the_authorized_keys_comment():
    payload = dict(site_files=[site_file('install.site', 'echo\n'), authorized_keys(RANDOM_PASSWORD)])
    assert random_password(payload) == RANDOM_PASSWORD
    assert random_password(dict(site_files=[site_file('install.site', 'echo\n')])) is None
    assert random_password({}) is None
