# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_firstboot_inputs
short_description: The first-boot inputs of guests, from their variables and the guest_firstboot role's defaults
version_added: 0.1.0
description:
  - 'Reads each guest''s C(guest_firstboot_*) variables as the C(openbsd.vmm.guest_firstboot) role would, with the
    role''s defaults where a guest sets none: C(hostname) its inventory name, C(address6) its C(address6) variable
    (the inventory plugin''s) or empty, C(domain) empty, C(interface) vio0, no users, no root keys, bcrypt cost 10.'
  - C(playbooks/provision.yml) checks them with P(openbsd.vmm.vmm_firstboot_problems#filter) for every guest of a vmm
    host before any VM is made, and keeps a digest of them to know which guests to configure again.
options:
  _input:
    description: The guests' variables (for example C(guest_names | map('extract', hostvars))), each with C(inventory_hostname).
    type: list
    elements: dict
    required: true
seealso:
  - plugin: openbsd.vmm.vmm_firstboot_problems
    plugin_type: filter
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: Every guest's first-boot inputs are good
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join(' ') }}"
  vars:
    problems: "{{ groups['vmm1_guests'] | map('extract', hostvars) | openbsd.vmm.vmm_firstboot_inputs | openbsd.vmm.vmm_firstboot_problems }}"
"""

RETURN = r"""
_value:
  description:
    - One dict per guest, in the order given; C(guest) is its inventory name, C(vm) its VM name (C(vmm_guest.name)).
  type: list
  elements: dict
  sample:
    - {guest: web1, vm: web1, hostname: web1, domain: '', address6: '', interface: vio0, users: [], root_keys: [], bcrypt_rounds: 10}
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_firstboot_problems import DEFAULTS

# the role's defaults that are not constants (roles/guest_firstboot/defaults/main.yml)
BCRYPT_ROUNDS = 10


def _inputs(variables):
    guest = variables['inventory_hostname']
    inputs = {'guest': guest, 'vm': (variables.get('vmm_guest') or {}).get('name', guest),
              'hostname': variables.get('guest_firstboot_hostname', guest),
              'address6': variables.get('guest_firstboot_address6', variables.get('address6', '')),
              'bcrypt_rounds': variables.get('guest_firstboot_bcrypt_rounds', BCRYPT_ROUNDS)}
    for key, default in DEFAULTS.items():
        inputs.setdefault(key, variables.get('guest_firstboot_' + key, default))
    return inputs


def vmm_firstboot_inputs(guests):
    # (`map('extract', hostvars)` gives a generator)
    guests = list(guests) if not isinstance(guests, (str, bytes, Mapping)) and hasattr(guests, '__iter__') else guests
    if not isinstance(guests, list) or not all(isinstance(guest, Mapping) and 'inventory_hostname' in guest for guest in guests):
        raise AnsibleFilterError('vmm_firstboot_inputs: the input must be a list of host variables, each with inventory_hostname')
    return [_inputs(guest) for guest in guests]


class FilterModule:
    def filters(self):
        return {'vmm_firstboot_inputs': vmm_firstboot_inputs}
