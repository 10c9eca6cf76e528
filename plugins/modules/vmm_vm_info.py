#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_vm_info
short_description: Report OpenBSD vmm(4) VMs from vmctl status and vm.conf
version_added: 0.1.0
description:
  - Lists the VMs vmd knows (one C(vmctl status) call) together with their definitions in C(vm.conf), including VMs
    that are defined in C(vm.conf) but not (yet) known to vmd.
  - Says for each VM whether it is defined in the block of C(vm.conf) managed by M(openbsd.vmm.vmm_vm).
  - For a running VM, gives the addresses vmd put on each of its C(local interface)s, computed as vmd does
    (usr.sbin/vmd/priv.c C(vm_priv_addr)) from C(vm.conf)'s C(local prefix) (100.64.0.0/10 when absent) and the VM's
    id from C(vmctl status), never invented; a VM that is not running has none.
author:
  - openbsd.vmm contributors (@openbsd-vmm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - openbsd.vmm.attributes.info_module
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  action_group:
    support: full
    membership: [openbsd.vmm.vmm]
options:
  name:
    description: Report only these VMs (all when left out).
    type: list
    elements: str
  vm_conf:
    description: Path of vm.conf.
    type: path
    default: /etc/vm.conf
notes:
  - Only Python's standard library is used on the target.
seealso:
  - module: openbsd.vmm.vmm_vm
'''

EXAMPLES = r'''
- name: All VMs of the host
  openbsd.vmm.vmm_vm_info:
  register: vmm

- name: Names of the running VMs
  ansible.builtin.debug:
    msg: "{{ vmm.vms | selectattr('state', 'equalto', 'running') | map(attribute='name') | list }}"

- name: One VM
  openbsd.vmm.vmm_vm_info:
    name: web1
  register: web1

- name: The addresses vmd gave the running VMs' first local interface, by VM name
  ansible.builtin.debug:
    msg: "{{ dict(with_local | map(attribute='name') | zip(with_local | map(attribute='interfaces') | map('first') | map(attribute='address'))) }}"
  vars:
    with_local: "{{ vmm.vms | selectattr('interfaces') | list }}"
'''

RETURN = r'''
vms:
  description: One record per VM, in vmctl status order, then VMs only defined in vm.conf in file order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: VM name.
      type: str
      sample: web1
    id:
      description: vmd's VM id, or null when vmd does not know the VM.
      type: int
    pid:
      description: PID of the vmd child running the VM, or null.
      type: int
    state:
      description:
        - State from C(vmctl status) (running, stopped, paused, stopping, waiting, unknown), or null when vmd does not know it.
        - A VM that vmctl shows C(waiting) with a PID (queued by a reload, then started by hand; vmd clears the flag only
          when its start batch comes) runs, and is reported C(running).
      type: str
      sample: running
    tty:
      description: Console tty (C(ttyp0)) or null.
      type: str
    owner:
      description: Owner as vmctl status shows it.
      type: str
    vcpus:
      description: Number of vCPUs.
      type: int
    memory:
      description: Configured memory in bytes (from vm.conf, or from vmd for a stopped VM), or null when unknown.
      type: int
    maxmem:
      description:
        - MAXMEM as C(vmctl status) shows it, in bytes. For a running VM this is vmm(4)'s count of the memory ranges vmd
          registered, the configured memory plus 4M (shown rounded by fmt_scaled).
      type: int
    memory_text:
      description: MAXMEM as vmctl shows it (fmt_scaled).
      type: str
    curmem:
      description: Memory in use in bytes, or null.
      type: int
    managed:
      description: Whether the VM is defined in the managed block of vm.conf.
      type: bool
    defined:
      description: Whether vm.conf (with its includes) defines the VM.
      type: bool
    config:
      description: The vm.conf definition (see M(openbsd.vmm.vmm_vm)), or null.
      type: dict
    interfaces:
      description:
        - The C(local interface)s of a running VM (vmd has a process for it) with the addresses vmd gives them, in
          interface order; empty for a VM that is not running or has no local interface.
        - vmd puts the host side (C(gateway)) on the tap with a /31 and answers the VM's DHCP request with the
          guest side (C(address)) and the host side as router (priv.c C(vm_priv_addr), dhcp.c).
        - The interfaces are the vm.conf definition's (an instance's beyond its own are its parent's, as vmd's
          C(vm_instance) gives them); vmd keeps the C(local prefix) it read until it restarts, so after a change of
          C(local prefix) without a restart of vmd the addresses shown are those of the new prefix.
      type: list
      elements: dict
      returned: always
      contains:
        index:
          description: Position of the interface in the VM (0 is the first, C(vio0) in the guest).
          type: int
          sample: 0
        local:
          description: Always true (a vmd local interface).
          type: bool
        address:
          description: The VM's address (the guest side), or null when the local prefix has none for it (vmd logs
            C(dhcp address range exceeded) and gives none).
          type: str
          sample: 100.64.3.3
        gateway:
          description: The host side, the VM's default router and DHCP server, or null as for C(address).
          type: str
          sample: 100.64.3.2
        prefixlen:
          description: Prefix length of the link (vmd configures a /31).
          type: int
          sample: 31
commands:
  description: The commands run (one C(vmctl status)).
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils.local_address import (
    DEFAULT_LOCAL_PREFIX, LocalAddressError, parse_local_prefix, vm_priv_addr,
)
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import fmt_scaled
from ansible_collections.openbsd.vmm.plugins.module_utils.vm_lifecycle import configured_memory
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import VmConf, VmConfError
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl, VmctlError, VmdUnavailable


LOCAL_PREFIXLEN = 31     # priv.c vm_priv_ifconfig: the host side with a 0xfffffffe mask


def local_interfaces(status, definition, definitions, prefix):
    """The local interfaces of a running VM with vmd's addresses for them (priv.c vm_priv_addr)."""
    if status is None or not status.live or status.id is None or definition is None:
        return []
    interfaces = list(definition.interfaces)
    parent = definitions.get(definition.instance_of) if definition.instance_of else None
    if parent is not None:      # vm_instance: the parent's interfaces beyond the instance's own
        interfaces += parent.interfaces[len(interfaces):]
    result = []
    for index, interface in enumerate(interfaces):
        if not interface.local:
            continue
        try:
            address = vm_priv_addr(prefix, status.id, index, isvm=True)
            gateway = vm_priv_addr(prefix, status.id, index, isvm=False)
        except LocalAddressError:
            address = gateway = None    # "dhcp address range exceeded": vmd gives none
        result.append(dict(index=index, local=True, address=address, gateway=gateway,
                           prefixlen=LOCAL_PREFIXLEN if address else None))
    return result


def vm_record(name, status, definition, managed, interfaces=None):
    return dict(
        name=name,
        id=status.id if status else None,
        pid=status.pid if status else None,
        state=status.effective_state if status else None,
        tty=status.tty if status else None,
        owner=(status.owner + (':' + status.owner_group if status.owner_group else '')) if status else None,
        vcpus=status.vcpus if status else None,
        memory=configured_memory(status, definition),
        maxmem=status.maxmem if status else None,
        memory_text=fmt_scaled(status.maxmem) if status else None,
        curmem=status.curmem if status else None,
        managed=managed,
        defined=definition is not None,
        config=definition.as_dict() if definition is not None else None,
        interfaces=interfaces or [],
    )


def collect(vmconf, statuses, names=None):
    """Records for VMs vmd knows, then VMs only defined in vm.conf; filtered by ``names``."""
    managed = {definition.name: definition for definition in vmconf.managed}
    by_name = dict(managed)
    for definition in vmconf.hand_written:
        by_name.setdefault(definition.name, definition)
    prefix = parse_local_prefix(vmconf.summary.local_prefix or DEFAULT_LOCAL_PREFIX)
    records, seen = [], set()
    for status in statuses:
        seen.add(status.name)
        definition = by_name.get(status.name)
        records.append(vm_record(status.name, status, definition, status.name in managed,
                                 local_interfaces(status, definition, by_name, prefix)))
    for definition in vmconf.hand_written + vmconf.managed:
        if definition.name not in seen:
            seen.add(definition.name)
            records.append(vm_record(definition.name, None, definition, definition.name in managed))
    if names:
        records = [record for record in records if record['name'] in names]
    return records


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='list', elements='str'),
            vm_conf=dict(type='path', default='/etc/vm.conf'),
        ),
        supports_check_mode=True,
    )
    try:
        vmctl = Vmctl(module=module)
        vmconf = VmConf.load(module.params['vm_conf'])
        statuses = vmctl.status()
    except VmdUnavailable as exc:
        module.fail_json(msg='vmd is not running or its socket cannot be reached: %s' % exc, commands=vmctl.calls)
    except (VmctlError, VmConfError) as exc:
        module.fail_json(msg=str(exc))
    try:
        vms = collect(vmconf, statuses, module.params['name'])
    except LocalAddressError as exc:
        module.fail_json(msg='vm_conf: %s' % exc, commands=vmctl.calls)
    module.exit_json(changed=False, vms=vms, commands=vmctl.calls)


if __name__ == '__main__':
    main()
