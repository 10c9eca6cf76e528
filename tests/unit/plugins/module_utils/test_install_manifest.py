# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest beside an installed disk: what identifies the disk, the file written, reading it back."""

from __future__ import annotations

import os
import stat
import time

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import install_manifest
from ansible_collections.openbsd.vmm.plugins.module_utils.install_manifest import disk_identity, read_manifest, write_manifest


@pytest.fixture
def fixed_clock(monkeypatch):
    monkeypatch.setattr(install_manifest.time, 'gmtime', lambda *args: time.struct_time((2026, 11, 30, 23, 45, 6, 0, 334, 0)))


def test_disk_identity_is_the_real_path_device_and_inode(tmp_path):
    disk = tmp_path / 'web1.qcow2'
    disk.write_bytes(b'QFI\xfb')
    link = tmp_path / 'current.qcow2'
    link.symlink_to(disk)
    info = os.stat(disk)
    assert disk_identity(str(link)) == dict(path=str(disk), device=info.st_dev, inode=info.st_ino)
    assert disk_identity(str(tmp_path / 'missing.qcow2')) is None


def test_the_manifest_file_is_sorted_indented_json_only_root_reads(tmp_path, fixed_clock):
    disk = str(tmp_path / 'web1.qcow2')     # not created: the identity is null
    write_manifest(disk, 'a' * 64, 'web1', 'fe:e1:bb:d1:00:01', 412.5, {'root': '$2b$10$x'})
    path = tmp_path / 'web1.qcow2.autoinstall.json'
    assert path.read_text() == (
        '{\n'
        '  "disk": null,\n'
        '  "duration": 412.5,\n'
        '  "hostname": "web1",\n'
        '  "inputs_sha256": "%s",\n'
        '  "installed_at": "2026-11-30T23:45:06Z",\n'
        '  "mac": "fe:e1:bb:d1:00:01",\n'
        '  "password_hashes": {\n'
        '    "root": "$2b$10$x"\n'
        '  },\n'
        '  "version": 1\n'
        '}\n') % ('a' * 64)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_password_hashes_are_recorded_as_an_empty_dict(tmp_path, fixed_clock):
    disk = tmp_path / 'web1.qcow2'
    disk.write_bytes(b'')
    write_manifest(str(disk), 'b' * 64, 'web1', 'fe:e1:bb:d1:00:01', 3, None)
    manifest = read_manifest(str(disk))
    assert manifest['password_hashes'] == {}
    assert manifest['disk'] == dict(path=str(disk), device=disk.stat().st_dev, inode=disk.stat().st_ino)
    assert (manifest['inputs_sha256'], manifest['installed_at'], manifest['duration']) == ('b' * 64, '2026-11-30T23:45:06Z', 3)


@pytest.mark.parametrize('text', ['', '{"version": 1', '[1, 2]', '"text"'])
def test_a_damaged_manifest_reads_as_none(tmp_path, text):
    (tmp_path / 'web1.qcow2.autoinstall.json').write_text(text)
    assert read_manifest(str(tmp_path / 'web1.qcow2')) is None


def test_a_missing_manifest_reads_as_none(tmp_path):
    assert read_manifest(str(tmp_path / 'web1.qcow2')) is None
