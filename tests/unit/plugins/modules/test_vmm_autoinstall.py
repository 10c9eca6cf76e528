# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_autoinstall's target side: site set packing, index.txt, the manifest beside the disk, console redaction."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import tarfile
from types import SimpleNamespace

import pytest

from ansible_collections.openbsd.vmm.plugins.modules import vmm_autoinstall
from ansible_collections.openbsd.vmm.plugins.modules.vmm_autoinstall import (
    Publication, console_tail, pack_site_set, random_password, read_manifest, redact, update_index, write_atomic)
from ansible_collections.openbsd.vmm.plugins.module_utils.installer import manifest_path

MAC = 'fe:e1:bb:d1:00:01'
HASH = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'
RANDOM_PASSWORD = 'Xq7-random-Pw'
OTHER_INDEX_LINES = (
    '-rw-r--r--  1 0  0    12345678 Oct  1 12:00:00 2026 base78.tgz\n'
    '-rw-r--r--  1 0  0     4567890 Oct  1 12:00:00 2026 bsd.rd\n'
)


def site_file(path, text, mode='0644'):
    return dict(path=path, content=base64.b64encode(text.encode('utf-8')).decode('ascii'), mode=mode)


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
        return dict((member.name, member) for member in tar.getmembers())


def authorized_keys(password):
    return site_file('root/.ssh/authorized_keys', '# root password: %s\n' % password, '0600')


# -- site set ---------------------------------------------------------------

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


@pytest.fixture
def docroot(tmp_path):
    setdir = tmp_path / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    setdir.mkdir(parents=True)
    (setdir / 'index.txt').write_text(OTHER_INDEX_LINES)
    return tmp_path


def publication_for(docroot, site_set):
    params = dict(docroot=str(docroot), file_group=None, mac=MAC.upper(), release='7.8', arch='amd64')
    payload = dict(response_file='System hostname = web1\n', site_set=site_set,
                   site_files=[site_file('install.site', 'echo site\n', '0755')])
    return Publication(params, payload), payload


@pytest.mark.parametrize('site_set', ['site78.tgz', 'site78-web1.tgz'])
def test_publish_puts_the_site_set_in_the_set_directory_and_lists_it(docroot, site_set):
    publication, payload = publication_for(docroot, site_set)
    changed, paths, dummy = publication.publish(payload)
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    site_path = setdir / site_set
    assert str(site_path) in changed and str(site_path) in paths
    assert stat.S_IMODE(site_path.stat().st_mode) == 0o640
    assert './install.site' in members(site_path.read_bytes())
    index = (setdir / 'index.txt').read_text()
    assert index.startswith(OTHER_INDEX_LINES)
    assert [line.split()[-1] for line in index.splitlines()] == ['base78.tgz', 'bsd.rd', site_set]
    # The same inputs again: nothing to change.
    assert publication.publish(payload)[0] == []


def test_remove_drops_the_site_set_and_only_its_index_line(docroot):
    publication, payload = publication_for(docroot, 'site78-web1.tgz')
    publication.publish(payload)
    removed = publication.remove()
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    assert str(setdir / 'site78-web1.tgz') in removed
    assert not (setdir / 'site78-web1.tgz').exists()
    assert (setdir / 'index.txt').read_text() == OTHER_INDEX_LINES


# -- index.txt --------------------------------------------------------------

def test_update_index_adds_an_entry_after_the_other_lines(docroot):
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    (setdir / 'site78.tgz').write_bytes(b'x' * 1234)
    assert update_index(str(setdir), 'site78.tgz', True) is True
    lines = (setdir / 'index.txt').read_text().splitlines(True)
    assert ''.join(lines[:2]) == OTHER_INDEX_LINES
    assert lines[2].split()[-1] == 'site78.tgz' and lines[2].split()[4] == '1234'
    assert update_index(str(setdir), 'site78.tgz', True) is False
    assert len((setdir / 'index.txt').read_text().splitlines()) == 3


def test_update_index_removes_only_the_named_entry(docroot):
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    assert update_index(str(setdir), 'bsd.rd', False) is True
    assert (setdir / 'index.txt').read_text() == OTHER_INDEX_LINES.splitlines(True)[0]
    assert update_index(str(setdir), 'bsd.rd', False) is False


def test_update_index_creates_a_missing_index(tmp_path):
    (tmp_path / 'site78.tgz').write_bytes(b'data')
    assert update_index(str(tmp_path), 'site78.tgz', True) is True
    assert (tmp_path / 'index.txt').read_text().split()[-1] == 'site78.tgz'


# -- the manifest beside the disk -------------------------------------------

def test_write_atomic_sets_the_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'disk.qcow2.autoinstall.json'
    write_atomic(str(path), '{"a": 1}\n', 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == [path.name]


def test_write_atomic_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / 'manifest.json'
    path.write_text('old\n')

    def failing_rename(source, destination):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(vmm_autoinstall.os, 'rename', failing_rename)
    with pytest.raises(OSError):
        write_atomic(str(path), 'new\n', 0o600)
    assert path.read_text() == 'old\n'
    assert os.listdir(tmp_path) == [path.name]


class FakeModule:
    check_mode = False


@pytest.fixture
def install_env(tmp_path, docroot, monkeypatch):
    """install() with the VM part replaced: the temporary VM 'runs' and the installer succeeds."""
    disk = tmp_path / 'web1.qcow2'
    disk.write_bytes(b'\0' * 4096)
    (docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64' / 'bsd.rd').write_bytes(b'ramdisk')
    runs = []

    def fake_run_install(module, vmctl, definition, timeout, console_log, secrets):
        runs.append(definition.name)
        return True, None, 1.5, 'CONGRATULATIONS!\n'

    monkeypatch.setattr(vmm_autoinstall, 'Vmctl', lambda module: SimpleNamespace(calls=[]))
    monkeypatch.setattr(vmm_autoinstall, 'prepare_vm', lambda vmctl, definition: SimpleNamespace(id=7))
    monkeypatch.setattr(vmm_autoinstall, 'run_install', fake_run_install)
    params = dict(docroot=str(docroot), file_group=None, mac=MAC, release='7.8', arch='amd64', disk=str(disk),
                  bsd_rd=None, name='web1', hostname='web1', memory=None, install_timeout=60, console_log=None)
    return SimpleNamespace(disk=disk, params=params, runs=runs)


def run_install_with(env, digest):
    payload = dict(response_file='System hostname = web1\n', inputs_sha256=digest, password_hashes={})
    return vmm_autoinstall.install(FakeModule(), env.params, payload, Publication(env.params, payload))


def test_install_writes_a_private_manifest_keyed_by_disk_and_inputs(install_env):
    result = run_install_with(install_env, 'a' * 64)
    assert result['changed'] is True and result['install']['succeeded'] is True
    path = manifest_path(str(install_env.disk))
    assert path == str(install_env.disk) + '.autoinstall.json'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    manifest = read_manifest(str(install_env.disk))
    disk_stat = install_env.disk.stat()
    assert manifest['inputs_sha256'] == 'a' * 64
    assert manifest['disk'] == dict(path=str(install_env.disk.resolve()), device=disk_stat.st_dev, inode=disk_stat.st_ino)
    assert manifest['mac'] == MAC and manifest['hostname'] == 'web1'
    assert len(install_env.runs) == 1


def test_same_inputs_on_the_same_disk_skip_the_install(install_env):
    run_install_with(install_env, 'a' * 64)
    result = run_install_with(install_env, 'a' * 64)
    assert result['changed'] is False
    assert result['install'] == dict(succeeded=True, skipped=True)
    assert len(install_env.runs) == 1


def test_changed_inputs_are_installed_again(install_env):
    run_install_with(install_env, 'a' * 64)
    result = run_install_with(install_env, 'b' * 64)
    assert result['changed'] is True and result['install']['skipped'] is False
    assert len(install_env.runs) == 2
    assert read_manifest(str(install_env.disk))['inputs_sha256'] == 'b' * 64


def test_a_replaced_disk_is_installed_again(install_env):
    run_install_with(install_env, 'a' * 64)
    # A new file renamed over the old one: same path, another inode (the old one still exists meanwhile).
    replacement = install_env.disk.with_name('new.qcow2')
    replacement.write_bytes(b'\0' * 4096)
    os.rename(str(replacement), str(install_env.disk))
    result = run_install_with(install_env, 'a' * 64)
    assert result['changed'] is True
    assert len(install_env.runs) == 2


def test_an_unreadable_manifest_is_not_a_match(install_env):
    with open(manifest_path(str(install_env.disk)), 'w') as handle:
        handle.write('not json')
    assert read_manifest(str(install_env.disk)) is None
    assert run_install_with(install_env, 'a' * 64)['changed'] is True


# -- console redaction ------------------------------------------------------

def test_redact_hides_bcrypt_hashes_and_given_secrets():
    text = "useradd -p '%s' alice\nroot password is %s\n" % (HASH, RANDOM_PASSWORD)
    redacted = redact(text, [RANDOM_PASSWORD])
    assert HASH not in redacted and RANDOM_PASSWORD not in redacted
    assert redacted == "useradd -p '[bcrypt hash redacted]' alice\nroot password is [redacted]\n"


def test_random_password_comes_from_the_authorized_keys_comment():
    payload = dict(site_files=[site_file('install.site', 'echo\n'), authorized_keys(RANDOM_PASSWORD)])
    assert random_password(payload) == RANDOM_PASSWORD
    assert random_password(dict(site_files=[site_file('install.site', 'echo\n')])) is None
    assert random_password({}) is None


def test_console_tail_is_redacted_and_keeps_the_last_non_empty_lines():
    lines = ['line %d' % number for number in range(40)] + ['', 'password %s hash %s' % (RANDOM_PASSWORD, HASH), '']
    tail = console_tail('\n'.join(lines), [RANDOM_PASSWORD])
    assert len(tail) == vmm_autoinstall.TAIL_LINES
    assert tail[-1] == 'password [redacted] hash [bcrypt hash redacted]'
    assert tail[0] == 'line %d' % (40 - vmm_autoinstall.TAIL_LINES + 1)
    assert all(RANDOM_PASSWORD not in line and HASH not in line for line in tail)


def test_install_result_never_carries_the_random_password(install_env, monkeypatch):
    monkeypatch.setattr(vmm_autoinstall, 'run_install',
                        lambda *args: (True, None, 1.0, 'Setting root password to %s\nCONGRATULATIONS!\n' % RANDOM_PASSWORD))
    payload = dict(response_file='System hostname = web1\n', inputs_sha256='c' * 64, password_hashes={},
                   site_files=[authorized_keys(RANDOM_PASSWORD)])
    result = vmm_autoinstall.install(FakeModule(), install_env.params, payload, Publication(install_env.params, payload))
    assert RANDOM_PASSWORD not in json.dumps(result)
    assert 'Setting root password to [redacted]' in result['install']['console_tail']
