# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_image_info as a module: what it returns, what it refuses, check mode."""

from __future__ import annotations

import os

import pytest

from ansible_collections.openbsd.vmm.plugins.modules import vmm_image_info
from ansible_collections.openbsd.vmm.tests.unit.plugins.modules.module_run import run_main
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_qcow2 import write_vmctl_qcow2

GIB = 1024 * 1024 * 1024


def run_module(capsys, check_mode=False, **args):
    return run_main(vmm_image_info, capsys, check_mode=check_mode, **args)


@pytest.mark.parametrize('check_mode', [False, True])
def test_images_of_a_directory_with_their_manifests_and_overlays(tmp_path, capsys, check_mode):
    base = write_vmctl_qcow2(str(tmp_path / 'golden.qcow2'), GIB)
    (tmp_path / 'golden.qcow2.manifest.json').write_text('{"release": "7.8", "arch": "amd64"}')
    write_vmctl_qcow2(str(tmp_path / 'web1.qcow2'), GIB, base='golden.qcow2')
    result = run_module(capsys, check_mode=check_mode, path=[str(tmp_path)])
    assert result['changed'] is False and result.get('failed') is not True
    assert [image['path'] for image in result['images']] == [base]
    (image,) = result['images']
    assert image['manifest'] == {'release': '7.8', 'arch': 'amd64'}
    assert image['overlays'] == [str(tmp_path / 'web1.qcow2')]
    assert (image['format'], image['virtual_size'], image['intact'], image['problems']) == ('qcow2', GIB, None, [])
    assert image['chain'] == [base]
    # an overlay named by path: its chain down to the base, as vmd opens it
    result = run_module(capsys, check_mode=check_mode, path=[str(tmp_path / 'web1.qcow2')])
    assert result['images'][0]['chain'] == [str(tmp_path / 'web1.qcow2'), base]


def test_a_missing_path_fails_naming_it(tmp_path, capsys):
    result = run_module(capsys, path=[str(tmp_path / 'nothing.qcow2')])
    assert result['failed'] is True
    assert result['msg'] == 'path: %s does not exist' % (tmp_path / 'nothing.qcow2')


def test_overlay_dirs_must_be_directories(tmp_path, capsys):
    image = write_vmctl_qcow2(str(tmp_path / 'golden.qcow2'), GIB)
    result = run_module(capsys, path=[image], overlay_dirs=[image])
    assert result['failed'] is True
    assert result['msg'] == 'overlay_dirs: %s is not a directory' % image
    assert not os.path.exists(str(tmp_path / 'golden.qcow2.manifest.json'))
