# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_pkg_info
short_description: The packages C(pkg_info -q) lists, split into name, version and flavor
version_added: 0.1.0
description:
  - Reads the lines of OpenBSD's C(pkg_info -q) (one full package name per line, for example C(vim-9.1.1265-no_x11))
    and splits each as packages-specs(7) does - the version starts at the first dash followed by a digit; what follows
    the version's next dash is the flavor.
  - Blank lines are skipped; a line without a version is not a package name and is refused.
options:
  _input:
    description: The lines of C(pkg_info -q) (a list of strings, or the whole output as one string).
    type: raw
    required: true
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: The packages of the image
  ansible.builtin.set_fact:
    packages: "{{ pkg_info.stdout_lines | openbsd.vmm.vmm_pkg_info }}"
"""

RETURN = r"""
_value:
  description: One dict per package, in the order listed.
  type: list
  elements: dict
  sample:
    - {package: vim-9.1.1265-no_x11, name: vim, version: 9.1.1265, flavor: no_x11}
    - {package: rsync-3.4.1, name: rsync, version: 3.4.1, flavor: ''}
"""

import re

from ansible.errors import AnsibleFilterError

# packages-specs(7): stem, then -version (it starts with a digit and holds no dash), then -flavor (dashes between parts)
_PACKAGE = re.compile(r'(?P<name>[^\s]+?)-(?P<version>[0-9][^-\s]*)(?:-(?P<flavor>[^\s]+))?')


def vmm_pkg_info(lines):
    if isinstance(lines, str):
        lines = lines.splitlines()
    if not isinstance(lines, (list, tuple)):
        raise AnsibleFilterError('vmm_pkg_info: expects the lines of pkg_info -q, got %s' % type(lines).__name__)
    packages = []
    for line in lines:
        text = str(line).strip()
        if not text:
            continue
        match = _PACKAGE.fullmatch(text)
        if match is None:
            raise AnsibleFilterError('vmm_pkg_info: %r is not a package name with a version (stem-version[-flavor], '
                                     'packages-specs(7))' % text)
        packages.append(dict(package=text, name=match.group('name'), version=match.group('version'),
                             flavor=match.group('flavor') or ''))
    return packages


class FilterModule:
    def filters(self):
        return {'vmm_pkg_info': vmm_pkg_info}
