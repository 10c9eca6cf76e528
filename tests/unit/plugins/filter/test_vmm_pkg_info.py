# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_pkg_info: pkg_info -q lines split as packages-specs(7) says (the version starts at the first dash + digit)."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_pkg_info import vmm_pkg_info


def test_names_versions_and_flavors():
    lines = ['rsync-3.4.1', 'vim-9.1.1265-no_x11', 'p5-Locale-gettext-1.07p5', 'py3-setuptools-69.0.3v0',
             'vim-9.1.1265-gtk3-perl-python3', '', '  xxhash-0.8.3  ']
    assert vmm_pkg_info(lines) == [
        dict(package='rsync-3.4.1', name='rsync', version='3.4.1', flavor=''),
        dict(package='vim-9.1.1265-no_x11', name='vim', version='9.1.1265', flavor='no_x11'),
        dict(package='p5-Locale-gettext-1.07p5', name='p5-Locale-gettext', version='1.07p5', flavor=''),
        dict(package='py3-setuptools-69.0.3v0', name='py3-setuptools', version='69.0.3v0', flavor=''),
        dict(package='vim-9.1.1265-gtk3-perl-python3', name='vim', version='9.1.1265', flavor='gtk3-perl-python3'),
        dict(package='xxhash-0.8.3', name='xxhash', version='0.8.3', flavor='')]


def test_the_whole_output_as_one_string():
    assert [package['name'] for package in vmm_pkg_info('rsync-3.4.1\nxxhash-0.8.3\n')] == ['rsync', 'xxhash']
    assert vmm_pkg_info('') == [] and vmm_pkg_info([]) == []


@pytest.mark.parametrize('line', ['rsync', 'rsync-', 'rsync-x1', '-3.4.1', 'rsync 3.4.1', 'rsync-3.4.1-', 'quirks 7.14'])
def test_a_line_without_a_version_is_refused(line):
    with pytest.raises(AnsibleFilterError) as error:
        vmm_pkg_info([line])
    assert str(error.value) == ("vmm_pkg_info: %r is not a package name with a version (stem-version[-flavor], "
                                "packages-specs(7))" % line.strip())


def test_not_lines():
    with pytest.raises(AnsibleFilterError, match=r'^vmm_pkg_info: expects the lines of pkg_info -q, got dict$'):
        vmm_pkg_info({'stdout': 'rsync-3.4.1'})
