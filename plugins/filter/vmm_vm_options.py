# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_vm_options
short_description: The vmm_vm options that define a VM as a vm.conf definition does
version_added: 0.1.0
description:
  - Turns a definition as M(openbsd.vmm.vmm_vm_info) reports it (C(config)) into the options of
    M(openbsd.vmm.vmm_vm) that define the same VM elsewhere (name, memory, disks, interfaces with their MACs, owner,
    boot options; no O(openbsd.vmm.vmm_vm#module:state)).
  - Not the C(cdrom) (an ISO the other host may not have would keep the VM from starting) nor the enable flag.
options:
  _input:
    description: The definition.
    type: dict
    required: true
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: Define web1 on vmm2 as vmm1 has it
  openbsd.vmm.vmm_vm: "{{ web1.config | openbsd.vmm.vmm_vm_options | combine({'state': 'running'}) }}"
  delegate_to: vmm2
"""

RETURN = r"""
_value:
  description: The options (C(name), C(disks), C(interfaces), and C(memory), C(owner), C(boot), C(boot_device) when set).
  type: dict
  sample: {"name": "web1", "memory": "536870912", "disks": [{"path": "/var/vmm/web1.qcow2"}],
           "interfaces": [{"switch": "uplink", "lladdr": "fe:e1:ba:d0:01:02"}]}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.vm_move import vm_options


def vmm_vm_options(definition):
    if not isinstance(definition, dict) or not isinstance(definition.get('name'), str):
        raise AnsibleFilterError('vmm_vm_options: expected a VM definition (vmm_vm_info config), got %r' % (definition,))
    return vm_options(definition)


class FilterModule:
    def filters(self):
        return {'vmm_vm_options': vmm_vm_options}
