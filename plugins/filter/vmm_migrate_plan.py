# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_migrate_plan
short_description: The moves of a migration or a drain, from its journal, the hosts' VMs and their room
version_added: 0.1.0
description:
  - Used by C(playbooks/migrate.yml). Works out which VMs move where, before anything changes.
  - Moves that the journal has not finished come first, with the target they had (a re-run finishes them).
  - New moves are the VMs named in O(vms) (or every VM defined on O(source) with O(drain)), each to O(target) or,
    without it, to the host with the most free memory that has room for it, as the inventory plugin
    P(openbsd.vmm.vmm#inventory) places guests (C(vmm_host_memory), C(vmm_host_tap_count), C(vmm_host_max_vms) of
    each host, against the VMs it reports and the moves planned to it).
  - A VM that is not defined on O(source), an instance, a name already taken on the target, or no host with room
    refuses the whole plan, naming every VM and what each host lacks.
  - With O(cancel), the moves are the journal's unfinished ones, each marked C(cancel); a move whose VM has run on
    its target already (step C(defined) or later) cannot be cancelled.
options:
  _input:
    description: 'The journal (C({"version": 1, "moves": {...}})), or null for none yet.'
    type: dict
    required: true
  source:
    description: The vmm host the VMs leave.
    type: str
  hosts:
    description: 'Every vmm host that takes part, mapped to C({"vars": its inventory variables, "vms": the vms of vmm_vm_info}).'
    type: dict
    required: true
  vms:
    description: Names of the VMs to move.
    type: list
    elements: str
  drain:
    description: Move every VM defined on O(source).
    type: bool
    default: false
  target:
    description: The host to move to; placed by room when left out.
    type: str
  cancel:
    description: Roll back the journal's unfinished moves instead.
    type: bool
    default: false
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: Where web1 and web2 go from vmm1
  ansible.builtin.set_fact:
    migrate: "{{ journal | openbsd.vmm.vmm_migrate_plan(source='vmm1', vms=['web1', 'web2'], hosts=reports) }}"
"""

RETURN = r"""
_value:
  description:
    - C(moves), per VM C(vm), C(source), C(target), C(step) (the last step finished), C(definition) (its vm.conf
      definition on the source), C(was_running), and C(cancel) with O(cancel); C(journal), the journal with the new
      moves at step C(planned).
  type: dict
  sample: {"moves": [{"vm": "web1", "source": "vmm1", "target": "vmm2", "step": "planned", "was_running": true,
                      "definition": {"name": "web1", "memory": 536870912, "disks": [{"path": "/var/vmm/web1.qcow2"}]}}],
           "journal": {"version": 1, "moves": {"web1": {"source": "vmm1", "target": "vmm2", "step": "planned"}}}}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.vm_move import MovePlanError, migrate_plan


def vmm_migrate_plan(journal, source=None, hosts=None, vms=None, drain=False, target=None, cancel=False):
    try:
        return migrate_plan(journal, source, hosts, vms=vms, drain=drain, target=target or None, cancel=cancel)
    except MovePlanError as exc:
        raise AnsibleFilterError('vmm_migrate_plan: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_migrate_plan': vmm_migrate_plan}
