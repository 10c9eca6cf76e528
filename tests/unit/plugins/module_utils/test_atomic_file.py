# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small files written whole: read, written beside and renamed, described, removed."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import atomic_file
from ansible_collections.openbsd.vmm.plugins.module_utils.atomic_file import file_state, read_file, remove_file, write_atomic


def test_read_file_gives_text_or_bytes_and_none_for_a_missing_file(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'caf\xc3\xa9\n')
    assert read_file(str(path)) == 'caf\u00e9\n'
    assert read_file(str(path), binary=True) == b'caf\xc3\xa9\n'
    assert read_file(str(tmp_path / 'missing')) is None
    assert read_file(str(tmp_path / 'missing'), binary=True) is None


def test_write_atomic_sets_the_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'disk.qcow2.autoinstall.json'
    write_atomic(str(path), '{"a": 1}\n', 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b'{"a": 1}\n'
    assert os.listdir(tmp_path) == [path.name]
    write_atomic(str(path), b'\x00\xff', 0o644)
    assert (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) == (b'\x00\xff', 0o644)
    assert os.listdir(tmp_path) == [path.name]


def test_write_atomic_gives_the_file_the_group_asked_for(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('only root may give a file any group')
    path = tmp_path / 'secret'
    write_atomic(str(path), 'x', 0o640, gid=4242)
    assert (path.stat().st_gid, stat.S_IMODE(path.stat().st_mode)) == (4242, 0o640)
    write_atomic(str(path), 'y', 0o640)
    assert path.stat().st_gid == os.getegid()


def test_write_atomic_syncs_the_whole_data_before_the_rename(tmp_path, monkeypatch):
    path = tmp_path / 'vm.conf'
    path.write_text('old\n')
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        # What the kernel holds for the temporary file when it is synced, and what readers of `path` see then.
        synced.append((os.fstat(fd).st_size, path.read_text()))
        real_fsync(fd)

    monkeypatch.setattr(atomic_file.os, 'fsync', fsync)
    write_atomic(str(path), 'vm "web1" {\n}\n', 0o644)
    assert synced == [(14, 'old\n')]
    assert path.read_text() == 'vm "web1" {\n}\n'


def test_write_atomic_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / 'manifest.json'
    path.write_text('old\n')

    def failing_rename(source, destination):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(atomic_file.os, 'rename', failing_rename)
    with pytest.raises(OSError, match='No space left on device'):
        write_atomic(str(path), 'new\n', 0o600)
    assert path.read_text() == 'old\n'
    assert os.listdir(tmp_path) == [path.name]


def test_file_state_gives_content_mode_and_group(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'data')
    path.chmod(0o4750)
    assert file_state(str(path)) == (b'data', 0o4750, os.stat(path).st_gid)
    assert file_state(str(tmp_path / 'missing')) == (None, None, None)


def test_remove_file_says_whether_there_was_a_file(tmp_path):
    path = tmp_path / 'f'
    path.write_text('x')
    assert remove_file(str(path)) is True
    assert not path.exists()
    assert remove_file(str(path)) is False
