# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_disk with disks: (all the images of a host in one run), archive_dir, and mode/owner/group with diff.

vmctl is never on PATH here: a case that would need it fails, which shows the no-op and check-mode
paths run none.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.openbsd.vmm.plugins.modules import vmm_disk
from ansible_collections.openbsd.vmm.tests.unit.plugins.modules.module_run import run_main
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_qcow2 import write_vmctl_qcow2

GIB = 1024 * 1024 * 1024


def run_module(capsys, monkeypatch, check_mode=False, diff=False, **args):
    monkeypatch.setenv('PATH', '/nonexistent')
    return run_main(vmm_disk, capsys, check_mode=check_mode, diff=diff, **args)


def listing(directory):
    return sorted((name, oct(os.stat(os.path.join(directory, name)).st_mode & 0o777)) for name in os.listdir(directory))


@pytest.fixture
def golden(tmp_path):
    return write_vmctl_qcow2(str(tmp_path / 'golden.qcow2'), GIB)


def overlays(tmp_path, count):
    return [write_vmctl_qcow2(str(tmp_path / ('vm%d.qcow2' % index)), GIB, base='golden.qcow2') for index in range(count)]


def test_a_no_op_over_many_overlays_runs_no_vmctl(tmp_path, golden, capsys, monkeypatch):
    paths = overlays(tmp_path, 6)
    result = run_module(capsys, monkeypatch, base='golden.qcow2', disks=[{'path': path} for path in paths])
    assert result.get('failed') is not True, result.get('msg')
    assert result['changed'] is False and 'diff' not in result
    assert [item['path'] for item in result['disks']] == paths
    for item in result['disks']:
        assert (item['changed'], item['commands'], item['base'], item['size'], item['exists_after']) == (
            False, [], 'golden.qcow2', GIB, True)
        assert item['archived_to'] is None and item['mode'] == '0600'


def test_check_mode_plans_every_item_and_creates_nothing(tmp_path, golden, capsys, monkeypatch):
    before = listing(str(tmp_path))
    disks = [{'path': str(tmp_path / 'new0.qcow2')}, {'path': str(tmp_path / 'new1.qcow2'), 'mode': '0640'},
             {'path': str(tmp_path / 'data.raw'), 'size': '2G', 'format': 'raw'}]
    # base is a top-level default an item cannot unset, so data.raw gets its own run without it below.
    result = run_module(capsys, monkeypatch, check_mode=True, diff=True, base='golden.qcow2', disks=disks[:2])
    assert listing(str(tmp_path)) == before
    assert result['changed'] is True
    assert [(item['created'], item['exists_after'], item['commands']) for item in result['disks']] == [
        (True, True, []), (True, True, [])]
    assert isinstance(result['diff'], list) and len(result['diff']) == 2
    assert result['diff'][0]['before'] == {'state': 'absent'}
    assert result['diff'][0]['after'] == {'state': 'present', 'format': 'qcow2', 'size': '1.0G', 'base': 'golden.qcow2'}
    assert result['diff'][1]['before_header'] == str(tmp_path / 'new1.qcow2')
    raw = run_module(capsys, monkeypatch, check_mode=True, disks=disks[2:])
    assert raw['disks'][0]['format'] == 'raw' and raw['disks'][0]['size'] == 2 * GIB
    assert listing(str(tmp_path)) == before


def test_item_values_override_the_top_level_defaults(tmp_path, capsys, monkeypatch):
    write_vmctl_qcow2(str(tmp_path / 'a.qcow2'), GIB)
    write_vmctl_qcow2(str(tmp_path / 'b.qcow2'), 2 * GIB)
    result = run_module(capsys, monkeypatch, check_mode=True, size='1G', grow=True, disks=[
        {'path': str(tmp_path / 'a.qcow2')}, {'path': str(tmp_path / 'b.qcow2'), 'size': '3G'}])
    assert [(item['changed'], item['grown'], item['size']) for item in result['disks']] == [
        (False, False, GIB), (True, True, 3 * GIB)]


def test_a_bad_item_fails_naming_it_and_nothing_changes(tmp_path, capsys, monkeypatch):
    old = write_vmctl_qcow2(str(tmp_path / 'old.qcow2'), GIB)  # item 0 would delete it without vmctl
    before = listing(str(tmp_path))
    result = run_module(capsys, monkeypatch, disks=[
        {'path': old, 'state': 'absent'}, {'path': str(tmp_path / 'ok.raw'), 'size': '1G'},
        {'path': str(tmp_path / 'a.raw'), 'size': '1G'}, {'path': str(tmp_path / 'bad.raw'), 'size': '12Q'}])
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'] == "disks[3].size: invalid size '12Q': unit must be one of B, K, M, G, T, P, E"
    assert listing(str(tmp_path)) == before


def test_every_bad_item_is_named_at_once(tmp_path, capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, disks=[
        {'path': str(tmp_path / 'a.raw'), 'size': '-1G'}, {'path': 'relative.raw', 'size': '1G'},
        {'path': str(tmp_path / 'c.raw'), 'size': '1G', 'mode': '0999'}, {'path': str(tmp_path / 'd.raw')}])
    assert result['failed'] is True
    assert result['errors'] == [
        "disks[0].size: invalid size '-1G': a size cannot be negative",
        "disks[1].path: 'relative.raw' is not an absolute path; give the full path of the image, e.g. /var/vmm/disk.qcow2",
        "disks[2].mode: '0999' is neither octal (e.g. '0640') nor symbolic (e.g. u=rw,g=r)",
        'disks[3].size: required to create %s (or give base or source to take the size from)' % (tmp_path / 'd.raw'),
    ]
    assert result['msg'] == '4 items of disks are refused, nothing was changed: ' + '; '.join(result['errors'])
    assert os.listdir(str(tmp_path)) == []


def test_a_bad_run_option_is_said_once_not_for_every_item(tmp_path, capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, lock_timeout=-1, size='1G',
                        disks=[{'path': str(tmp_path / 'a.raw')}, {'path': str(tmp_path / 'b.raw')}])
    assert result['msg'] == 'lock_timeout: -1 is negative; give the seconds to wait for another vmm_disk run (0 or more)'
    assert os.listdir(str(tmp_path)) == []


def test_a_refusal_found_while_planning_also_stops_everything(tmp_path, capsys, monkeypatch):
    old = write_vmctl_qcow2(str(tmp_path / 'old.qcow2'), GIB)
    small = write_vmctl_qcow2(str(tmp_path / 'small.qcow2'), 2 * GIB)
    result = run_module(capsys, monkeypatch, disks=[{'path': old, 'state': 'absent'}, {'path': small, 'size': '1G'}])
    assert result['msg'].startswith('disks[1].size: shrinking is refused: %s is 2.0G' % small)
    assert os.path.exists(old)


def test_the_same_image_twice_is_refused(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / 'a.raw')
    os.symlink('a.raw', str(tmp_path / 'link.raw'))
    result = run_module(capsys, monkeypatch, size='1G', disks=[{'path': path}, {'path': str(tmp_path / 'link.raw')}])
    assert result['msg'] == ('disks[1].path: %s is the same image as disks[0].path (%s); give each image once'
                             % (tmp_path / 'link.raw', path))
    assert os.listdir(str(tmp_path)) == ['link.raw']


def test_a_base_that_another_item_changes_is_refused(tmp_path, golden, capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, disks=[
        {'path': golden, 'size': '2G', 'grow': True}, {'path': str(tmp_path / 'vm0.qcow2'), 'base': 'golden.qcow2'}])
    assert result['msg'] == ('disks[1].base: golden.qcow2 is changed by disks[0] in this run (grow %s from 1.0G to 2.0G); '
                             'an overlay needs its base as it is: manage the base in an earlier task' % golden)
    assert sorted(os.listdir(str(tmp_path))) == ['golden.qcow2']


def test_path_and_disks_are_mutually_exclusive(tmp_path, capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, path=str(tmp_path / 'a.raw'), disks=[{'path': str(tmp_path / 'b.raw')}])
    assert result['failed'] is True and result['msg'] == 'parameters are mutually exclusive: path|disks'
    nothing = run_module(capsys, monkeypatch, size='1G')
    assert nothing['failed'] is True and nothing['msg'] == 'one of the following is required: path, disks'


def test_a_failure_while_applying_reports_the_items_done(tmp_path, capsys, monkeypatch):
    old = write_vmctl_qcow2(str(tmp_path / 'old.qcow2'), GIB)
    result = run_module(capsys, monkeypatch, disks=[
        {'path': old, 'state': 'absent'}, {'path': str(tmp_path / 'new.raw'), 'size': '1G'}])
    assert result['failed'] is True and result['changed'] is True
    assert result['msg'].startswith('disks[1]: %s: create 1.0G raw image %s failed: ' % (tmp_path / 'new.raw', tmp_path / 'new.raw'))
    assert 'vmctl not found on PATH' in result['msg']
    assert [item['path'] for item in result['disks']] == [old, str(tmp_path / 'new.raw')]
    assert result['disks'][0]['changed'] is True and result['disks'][0]['archived_to'] is None
    assert result['disks'][1]['failed'] is True and result['disks'][1]['commands'] == []
    assert not os.path.exists(old) and not os.path.exists(str(tmp_path / 'new.raw'))


def test_each_image_has_its_own_lock_not_one_for_the_run(tmp_path, capsys, monkeypatch):
    from ansible_collections.openbsd.vmm.plugins.module_utils import disk_image
    first = write_vmctl_qcow2(str(tmp_path / 'first.qcow2'), GIB)
    busy = write_vmctl_qcow2(str(tmp_path / 'busy.qcow2'), GIB)
    with disk_image.run_lock(busy, timeout=0):  # another run works on busy.qcow2 only
        result = run_module(capsys, monkeypatch, state='absent', lock_timeout=0, disks=[{'path': first}, {'path': busy}])
    assert result['failed'] is True and result['changed'] is True
    assert result['msg'].startswith('disks[1]: %s: %s is busy: another vmm_disk run (pid %d) holds its lock'
                                    % (busy, busy, os.getpid()))
    assert result['disks'][0]['changed'] is True and not os.path.exists(first)
    assert os.path.exists(busy) and sorted(os.listdir(str(tmp_path))) == ['busy.qcow2']  # no lock file left


def test_the_file_options_of_selinux_and_chattr_are_gone(tmp_path, capsys, monkeypatch):
    path = write_vmctl_qcow2(str(tmp_path / 'a.qcow2'), GIB)
    result = run_module(capsys, monkeypatch, path=path, setype='virt_image_t')
    assert result['failed'] is True and 'Unsupported parameters for (' in result['msg'] and 'setype' in result['msg']


# -- mode changes in check mode with diff ---------------------------------------

def test_a_mode_change_shows_a_diff_in_check_mode_and_changes_nothing(tmp_path, capsys, monkeypatch):
    path = write_vmctl_qcow2(str(tmp_path / 'a.qcow2'), GIB)
    result = run_module(capsys, monkeypatch, check_mode=True, diff=True, path=path, mode='0640')
    assert result['changed'] is True and result['commands'] == []
    assert result['diff'] == {'before': {'mode': '0600'}, 'after': {'mode': '0640'},
                              'before_header': path, 'after_header': path}
    assert os.stat(path).st_mode & 0o777 == 0o600
    applied = run_module(capsys, monkeypatch, diff=True, path=path, mode='0640')
    assert applied['changed'] is True and applied['diff']['after'] == {'mode': '0640'}
    assert os.stat(path).st_mode & 0o777 == 0o640
    again = run_module(capsys, monkeypatch, check_mode=True, diff=True, path=path, mode='0640')
    assert again['changed'] is False and 'diff' not in again


def test_a_mode_change_of_one_item_shows_in_the_batch_diff(tmp_path, golden, capsys, monkeypatch):
    paths = overlays(tmp_path, 2)
    result = run_module(capsys, monkeypatch, check_mode=True, diff=True, base='golden.qcow2', mode='0600',
                        disks=[{'path': paths[0]}, {'path': paths[1], 'mode': 'g+r'}])
    assert [item['changed'] for item in result['disks']] == [False, True]
    assert result['diff'] == [{'before': {'mode': '0600'}, 'after': {'mode': '0640'},
                               'before_header': paths[1], 'after_header': paths[1]}]
    assert os.stat(paths[1]).st_mode & 0o777 == 0o600


# -- archive through the module --------------------------------------------------

def test_archive_in_check_mode_then_for_real_then_again(tmp_path, capsys, monkeypatch):
    archive = tmp_path / 'archive'
    archive.mkdir()
    path = write_vmctl_qcow2(str(tmp_path / 'old.qcow2'), GIB)
    checked = run_module(capsys, monkeypatch, check_mode=True, diff=True, path=path, state='absent', archive_dir=str(archive))
    assert checked['changed'] is True and checked['exists_after'] is False
    assert checked['archived_to'].startswith(str(archive / 'old-')) and checked['archived_to'].endswith('Z.qcow2')
    assert checked['diff']['after'] == {'state': 'absent', 'archived_to': checked['archived_to']}
    assert os.path.exists(path) and os.listdir(str(archive)) == []
    done = run_module(capsys, monkeypatch, path=path, state='absent', archive_dir=str(archive))
    assert done['changed'] is True and done['commands'] == [] and done['format'] is None
    assert os.listdir(str(archive)) == [os.path.basename(done['archived_to'])]
    assert not os.path.exists(path)
    again = run_module(capsys, monkeypatch, path=path, state='absent', archive_dir=str(archive))
    assert again['changed'] is False and again['archived_to'] is None and again['exists_after'] is False
    assert len(os.listdir(str(archive))) == 1


def test_archive_dir_applies_to_absent_items_only(tmp_path, golden, capsys, monkeypatch):
    archive = tmp_path / 'archive'
    archive.mkdir()
    keep, drop = overlays(tmp_path, 2)
    # The module's warnings, as it gives them: ansible's global warning list may have been emptied by
    # another test file's module run (the order of test files decides), so it is not read here.
    warned = []
    monkeypatch.setattr(vmm_disk.AnsibleModule, 'warn', lambda self, text: warned.append(text))
    result = run_module(capsys, monkeypatch, base='golden.qcow2', archive_dir=str(archive),
                        disks=[{'path': keep}, {'path': drop, 'state': 'absent'}])
    assert [(item['changed'], item['exists_after']) for item in result['disks']] == [(False, True), (True, False)]
    assert result['disks'][0]['archived_to'] is None
    assert os.listdir(str(archive)) == [os.path.basename(result['disks'][1]['archived_to'])]
    assert os.path.exists(keep) and not os.path.exists(drop)
    warning = warned[0]
    assert warning.startswith('disks[1]: %s is an overlay on %s' % (drop, golden))
