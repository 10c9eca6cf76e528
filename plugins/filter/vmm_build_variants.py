# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_build_variants
short_description: The image builds of one vmm host, one per variant of playbooks/build_image.yml, checked
version_added: 0.1.0
description:
  - 'Checks a vmm host''s C(build_image_variants) and gives one build per variant: the inventory name of the build
    (C(<vmm host>/<variant name>)) and the C(build_image_*) variables the variant sets (C(name) becomes
    C(build_image_name), C(path) C(build_image_path), and so on).'
  - 'Every variant is a dict with C(name) (1 to 51 letters, digits, C(.), C(_) or C(-), starting with a letter or digit,
    not digits only:
    the install VM is C(<name>-ai-<digest>) and the build VM C(<name>-build), names vmd takes) and C(path) (absolute),
    both unique among the host''s variants, as are their MAC addresses (C(lladdr), else derived from the name as
    P(openbsd.vmm.vmm_lladdr#filter) does) and console transcripts (C(console_log), else C(<path>.install.log)). A
    variant''s C(base) is not another variant of the same run (it would not be built yet). Any other key must be one
    of the per-image variables of build_image.yml, without its C(build_image_) prefix.'
  - An empty list gives no build (the vmm host then builds its own C(build_image_*) image).
  - Errors name the variant (by its position and name) and the rule.
options:
  _input:
    description: The host's C(build_image_variants).
    type: list
    elements: dict
    required: true
  host:
    description: The vmm host's inventory name.
    type: str
    required: true
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: The builds of this host
  ansible.builtin.set_fact:
    builds: "{{ build_image_variants | openbsd.vmm.vmm_build_variants(inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: One dict per variant, in the order given.
  type: list
  elements: dict
  sample:
    - {host: vmm1/golden-78, variant: golden-78, vars: {build_image_name: golden-78, build_image_path: /var/vmm/golden-78.qcow2}}
"""

import os
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_lladdr import vmm_lladdr

NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,50}')
# The per-image variables of build_image.yml (the host-wide ones, docroot, file_group, pf_anchor, stay the host's).
KEYS = ('name', 'path', 'size', 'release', 'arch', 'sets', 'root_ssh_key', 'site_files', 'memory', 'timezone',
        'install_timeout', 'console_log', 'lladdr', 'force_rebuild', 'overlay_dirs', 'packages', 'pkg_path',
        'provision_playbook', 'root_ssh_private_key', 'guest_ssh_args', 'boot_timeout', 'base', 'flatten', 'build_console_log',
        'fetch', 'fetch_dest')


def _fail(index, variant, rule):
    name = variant.get('name') if isinstance(variant, Mapping) else None
    label = 'build_image_variants[%d]%s' % (index, ' (%s)' % name if isinstance(name, str) and name else '')
    raise AnsibleFilterError('%s: %s' % (label, rule))


def vmm_build_variants(variants, host):
    if variants is None:
        variants = []
    if isinstance(variants, (str, bytes, Mapping)) or not isinstance(variants, (list, tuple)):
        raise AnsibleFilterError('build_image_variants must be a list of dicts (each with name and path), not %s'
                                 % type(variants).__name__)
    builds, seen = [], {'name': {}, 'path': {}, 'lladdr': {}, 'console_log': {}}
    for index, variant in enumerate(variants):
        if not isinstance(variant, Mapping):
            _fail(index, variant, 'each variant must be a dict with name and path, not %s' % type(variant).__name__)
        unknown = sorted(str(key) for key in variant if key not in KEYS)
        if unknown:
            _fail(index, variant, 'unknown key(s) %s; a variant sets only %s (build_image.yml\'s variables without '
                  'build_image_)' % (', '.join(unknown), ', '.join(KEYS)))
        name, path = variant.get('name'), variant.get('path')
        if not isinstance(name, str) or not NAME.fullmatch(name) or name.isdigit():
            _fail(index, variant, 'name %r must be 1 to 51 letters, digits, ".", "_" or "-", starting with a letter or '
                  'a digit, not digits only (its VMs are <name>-ai-<digest> and <name>-build; vmctl reads a number as a '
                  'VM id)' % (name,))
        if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path or path.endswith('/'):
            _fail(index, variant, 'path %r must be an absolute, normalised file path' % (path,))
        keys = {'name': name, 'path': path,
                'lladdr': str(variant.get('lladdr') or vmm_lladdr(name)).lower(),
                'console_log': variant.get('console_log') or path + '.install.log'}
        for key, value in keys.items():
            if value in seen[key]:
                _fail(index, variant, '%s %s is also that of build_image_variants[%d]: every variant needs its own '
                      '(concurrent builds would share it)' % (key, value, seen[key][value]))
            seen[key][value] = index
        builds.append({'host': '%s/%s' % (host, name), 'variant': name,
                       'vars': dict(('build_image_%s' % key, value) for key, value in variant.items())})
    for index, variant in enumerate(variants):
        base = variant.get('base')
        if base and base in seen['path']:
            _fail(index, variant, 'base %s is build_image_variants[%d], built in this same run (concurrently): build '
                  'the base in an earlier run' % (base, seen['path'][base]))
    return builds


class FilterModule:
    def filters(self):
        return {'vmm_build_variants': vmm_build_variants}
