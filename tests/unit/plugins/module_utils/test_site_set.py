# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site set: deterministic packing, and the random root password it carries."""

from __future__ import annotations

import base64
import io
import tarfile

from ansible_collections.openbsd.vmm.plugins.module_utils.site_set import pack_site_set, random_password, read_site_set

RANDOM_PASSWORD = 'Xq7-random-Pw'
HASH = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'


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


def test_each_ssh_directory_gets_one_entry_even_at_the_top_and_for_several_files():
    data = pack_site_set([authorized_keys('pw'), site_file('root/.ssh/config', 'Host *\n'), site_file('.ssh/known_hosts', 'x\n')])
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
        assert tar.getnames() == ['./.ssh', './.ssh/known_hosts', './root/.ssh', './root/.ssh/authorized_keys',
                                  './root/.ssh/config']
        assert tar.getmember('./.ssh').isdir() and tar.getmember('./.ssh').mode == 0o700


def published(tmp_path, files):
    path = tmp_path / 'site78-web1.tgz'
    path.write_bytes(pack_site_set(files))
    return str(path)


def test_read_site_set_finds_the_root_password_and_the_useradd_hashes(tmp_path):
    install_site = "#!/bin/sh\nuseradd -m -p '%s' alice\nuseradd -m -p '%s' bob-2\n" % (HASH, HASH.replace('a', 'b'))
    # var/notes sorts after root/.ssh/authorized_keys: read, its comment would replace the password.
    path = published(tmp_path, [site_file('install.site', install_site, '0755'), authorized_keys(RANDOM_PASSWORD),
                                site_file('var/notes', '# root password: not-this-one\n')])
    assert read_site_set(path) == dict(site_root_password=RANDOM_PASSWORD,
                                       site_user_hashes={'alice': HASH, 'bob-2': HASH.replace('a', 'b')})


def test_read_site_set_without_the_secret_bearing_files_or_without_a_password_comment(tmp_path):
    assert read_site_set(published(tmp_path, [site_file('etc/motd', 'hi\n')])) == \
        dict(site_root_password=None, site_user_hashes={})
    assert read_site_set(published(tmp_path, [site_file('root/.ssh/authorized_keys', 'ssh-ed25519 AAAA alice\n')])) == \
        dict(site_root_password=None, site_user_hashes={})


def test_read_site_set_of_a_missing_or_broken_file_finds_nothing(tmp_path):
    assert read_site_set(str(tmp_path / 'none.tgz')) == dict(site_root_password=None, site_user_hashes={})
    (tmp_path / 'broken.tgz').write_bytes(b'not gzip')
    assert read_site_set(str(tmp_path / 'broken.tgz')) == dict(site_root_password=None, site_user_hashes={})


def test_read_site_set_reads_only_regular_files(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w:gz') as tar:
        link = tarfile.TarInfo('./root/.ssh/authorized_keys')
        link.type, link.linkname = tarfile.SYMTYPE, '/etc/passwd'
        tar.addfile(link)
    (tmp_path / 'odd.tgz').write_bytes(raw.getvalue())
    assert read_site_set(str(tmp_path / 'odd.tgz')) == dict(site_root_password=None, site_user_hashes={})
