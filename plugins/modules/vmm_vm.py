#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# How this module owns part of vm.conf (see plugins/module_utils/vmconf.py):
# it writes only a managed block between the marker comments
#   # BEGIN openbsd.vmm managed VMs ...   and   # END openbsd.vmm managed VMs
# and keeps every other line of vm.conf byte for byte. One block in one file (rather
# than an `include` per VM) keeps each change a single transaction: the whole
# candidate vm.conf is written to a temporary file, checked with `vmd -n -f <temp>`
# (vmd checks the whole configuration, includes resolved), renamed over vm.conf,
# and restored from the backup (then reloaded again) if `vmctl reload` fails.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_vm
short_description: Define OpenBSD vmm(4) VMs in vm.conf and bring them to a run state
version_added: 0.1.0
description:
  - Makes a VM defined persistently in C(vm.conf) and puts it in the state asked for, through C(vmctl).
  - The module owns one marked block of C(vm.conf) (between C(# BEGIN openbsd.vmm managed VMs) and
    C(# END openbsd.vmm managed VMs)) and keeps every line written by a person outside it. Changes are
    checked with C(vmd -n -f) before they replace C(vm.conf) (atomically), and rolled back when C(vmctl reload) fails.
  - After a change vmd is told with C(vmctl reload). vmd does not reconfigure a running VM, so the module returns
    C(restart_required=true) for it, and restarts it only when O(restart_on_change=true).
  - C(vmctl reload) starts every enabled VM that is not running. A VM whose O(state) is C(stopped) is therefore written
    with C(disable); a VM only C(present) keeps its enable flag (a new one gets C(disable)).
  - A run that changes nothing makes exactly one C(vmctl status) call and writes nothing.
  - Configuration options left out keep what the managed block already has for the VM (a new VM gets vmd's defaults);
    an empty string removes O(cdrom), O(boot), O(owner) or O(allow_instance_owner), and O(boot_device=none) removes the boot device.
  - vmd keeps running VMs as they were started. The module notices a changed definition, and a running VM whose memory
    (as C(vmctl status) shows it) differs from vm.conf, and returns C(restart_required) for them on every run until restarted.
  - Disks are never created or deleted here (use M(openbsd.vmm.vmm_disk)).
author:
  - openbsd.vmm contributors (@openbsd-vmm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Reports what would change, with the vm.conf diff; runs only C(vmctl status).
  diff_mode:
    support: full
    details: The diff of vm.conf.
  platform:
    platforms: openbsd
  action_group:
    support: full
    membership: [openbsd.vmm.vmm]
options:
  name:
    description:
      - Name of the VM (letters, digits, C(.), C(_), C(-); not starting with C(.), C(-) or C(_); at most 63 characters).
      - "The titles of vmd's own processes (C(parent), C(priv), C(control), C(vmm), C(agentx)) are refused as names:
        vmd titles each VM's process C(vmd: NAME), so an owner's C(pkill) rule for such a VM would match vmd itself."
      - Mutually exclusive with O(vms).
    type: str
  vms:
    description:
      - Several VMs in one run, each entry taking the per-VM options of this module.
      - Top-level per-VM options (for example O(state), O(memory), O(stop_timeout)) are the defaults of every entry.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the VM.
        type: str
        required: true
      state:
        description: See O(state).
        type: str
        choices: [present, running, stopped, restarted, paused, absent]
      memory:
        description: See O(memory).
        type: str
      cpus:
        description: See O(cpus).
        type: int
      disks:
        description: See O(disks).
        type: list
        elements: raw
      cdrom:
        description: See O(cdrom).
        type: str
      boot:
        description: See O(boot).
        type: str
      boot_device:
        description: See O(boot_device).
        type: str
        choices: [disk, cdrom, net, none]
      interfaces:
        description: See O(interfaces).
        type: list
        elements: dict
        suboptions:
          switch:
            description: See O(interfaces[].switch).
            type: str
          lladdr:
            description: See O(interfaces[].lladdr).
            type: str
          locked:
            description: See O(interfaces[].locked).
            type: bool
            default: false
          group:
            description: See O(interfaces[].group).
            type: str
          rdomain:
            description: See O(interfaces[].rdomain).
            type: int
          local:
            description: See O(interfaces[].local).
            type: bool
            default: false
      owner:
        description: See O(owner).
        type: str
      enabled:
        description: See O(enabled).
        type: bool
      instance_of:
        description: See O(instance_of).
        type: str
      allow_instance:
        description: See O(allow_instance).
        type: list
        elements: str
        choices: [boot, cdrom, disk, instance, interface, memory]
      allow_instance_owner:
        description: See O(allow_instance_owner).
        type: str
      stop_timeout:
        description: See O(stop_timeout).
        type: int
      force:
        description: See O(force).
        type: bool
      restart_on_change:
        description: See O(restart_on_change).
        type: bool
  state:
    description:
      - V(present) defines the VM in C(vm.conf) and leaves its run state alone.
      - V(running), V(stopped) and V(paused) define it and bring it to that state.
      - V(restarted) defines it and always stops (if it runs) and starts it.
      - V(absent) stops the VM and removes its definition; its disks stay.
      - A VM defined by hand outside the managed block can be given V(running), V(stopped), V(paused), V(restarted) or
        V(present) without configuration options; only its run state is managed then.
    type: str
    choices: [present, running, stopped, restarted, paused, absent]
    default: present
  memory:
    description:
      - Memory size in scan_scaled(3) syntax, for example V(512M), V(1G), V(1.5G). A bare number means bytes.
      - At least 1M, at most 128G; rounded down to whole MiB like vmd does. vmd's default is 512M.
    type: str
  cpus:
    description:
      - Number of virtual CPUs. vm.conf has no CPU option and vmctl always starts VMs with one vCPU, so only V(1) is
        accepted; any other value fails saying that the host's vmd does not support it.
    type: int
  disks:
    description:
      - Disk images, in order; at most 4. Each is an absolute path or a dict with C(path) and C(format) (V(raw) or V(qcow2)).
      - Every disk must exist (vmd resolves the paths when it reads vm.conf).
    type: list
    elements: raw
  cdrom:
    description:
      - ISO image for the virtual CD-ROM (absolute path). It must exist when the VM is to run.
      - An empty string removes it.
    type: str
  boot:
    description:
      - Kernel or BIOS image to boot instead of the default BIOS (absolute path, must exist). An empty string removes it.
    type: str
  boot_device:
    description:
      - Force the boot device. V(net) boots the O(boot) kernel as if netbooted (autoinstall over the local interface).
      - A VM with a forced boot device is terminated, not restarted, when the guest reboots.
      - V(none) removes the setting.
    type: str
    choices: [disk, cdrom, net, none]
  interfaces:
    description:
      - Network interfaces, in order; at most 4.
    type: list
    elements: dict
    suboptions:
      switch:
        description: Name of a C(switch) defined in vm.conf to attach the interface to.
        type: str
      lladdr:
        description:
          - MAC address (six hex octets separated by C(:), unicast). Must be unique across the whole vm.conf,
            including hand-written VMs. Left out, vmd picks a random one.
        type: str
      locked:
        description: Drop frames whose source MAC is not the interface's (C(locked lladdr)).
        type: bool
        default: false
      group:
        description: Interface group for the host's tap interface (at most 15 characters, not ending in a digit).
        type: str
      rdomain:
        description: Routing domain of the host's tap interface (0 to 255).
        type: int
      local:
        description: A vmd local interface (vmd assigns addresses from the local prefix and answers DHCP).
        type: bool
        default: false
  owner:
    description:
      - Owner who may start, stop and use the VM's console without root; V(user), V(user:group), V(:group) or a numeric uid.
      - An empty string removes it.
    type: str
  enabled:
    description:
      - Write C(enable) (vmd starts the VM at boot and on C(vmctl reload)) or C(disable).
      - Defaults to V(true) for O(state=running), V(paused) and V(restarted), V(false) for V(stopped); V(present)
        keeps the current flag (V(false) for a new VM). V(true) together with O(state=stopped) is refused.
    type: bool
  instance_of:
    description:
      - Define the VM as an instance of this (parent) VM (C(vm "parent" instance "name")). The parent must be defined
        before the managed block or inside it.
    type: str
  allow_instance:
    description: What instances of this VM may change (C(allow instance)).
    type: list
    elements: str
    choices: [boot, cdrom, disk, instance, interface, memory]
  allow_instance_owner:
    description: Owner allowed to create instances of this VM (C(allow instance { owner ... })).
    type: str
  vm_conf:
    description: Path of vm.conf.
    type: path
    default: /etc/vm.conf
  backup:
    description:
      - Keep the backup of vm.conf made before a change (it is always made, and removed after a successful reload otherwise).
    type: bool
    default: false
  stop_timeout:
    description:
      - Seconds to wait for a graceful C(vmctl stop -w) before giving up (or forcing, see O(force)).
      - At least 1; C(0) and negative values are refused (to stop at once, use a short timeout and O(force=true)).
    type: int
    default: 60
  force:
    description:
      - When a VM has not stopped after O(stop_timeout), terminate it with C(vmctl stop -f).
      - Without it the module fails saying the VM is stuck in C(stopping).
    type: bool
    default: false
  restart_on_change:
    description:
      - Restart a running VM whose definition changed so the change takes effect. Otherwise C(restart_required) is returned.
    type: bool
    default: false
  dev_dir:
    description:
      - Directory of the host's device nodes. Before changing anything the module counts the C(tapN) nodes there (from
        C(tap0) up to the first missing one, as vmd looks for them) against the interfaces of the VMs this run (and the
        C(vmctl reload)) starts, minus the taps running VMs hold, and fails naming how many are missing and the
        C(MAKEDEV) command that creates them.
    type: path
    default: /dev
  lock_timeout:
    description:
      - Seconds to wait for the host lock (a file C(.vm.conf.lock) beside O(vm_conf)) that every run holds from reading
        vm.conf to the last start or stop, so that parallel runs (or C(delegate_to) with several forks) never lose a
        definition. After that the module fails naming the process that holds the lock; nothing is changed.
    type: int
    default: 60
  staggered_start:
    description:
      - Leave starting the VMs to vmd's staggered start (vm.conf C(staggered start parallel N delay S), the vmm_host
        role's C(vmm_host_staggered_parallel) and C(vmm_host_staggered_delay); vmd's default is as many at once as the
        host has CPUs, 30 seconds apart) instead of starting each with C(vmctl start) at once.
      - When true, a VM to start is written enabled (without C(disable)) and started by the C(vmctl reload) of the run
        (the run reloads when it has a VM to start), and a VM the reload queued (C(waiting)) is left queued; vmd starts
        C(N) of them at once and the next C(N) every C(S) seconds (vmd.c C(start_vm_batch)). The module returns at once
        and reports such VMs C(waiting); the caller waits, for example with M(openbsd.vmm.vmm_vm_info) in an C(until)
        loop until they are C(running). A VM that is already queued needs nothing (not a change).
      - A VM to start in state C(paused), and a hand-written VM that is disabled in vm.conf, are still started with
        C(vmctl start).
    type: bool
    default: false
notes:
  - Only Python's standard library is used on the target.
  - Reload side effect - C(vmctl reload) starts every enabled VM that is not running, also hand-written ones; the module
    warns naming such VMs before it reloads.
  - A VM that the reload queued for staggered start (state C(waiting)) and that is asked to run is started at once with
    C(vmctl start) rather than after vmd's start delay, unless O(staggered_start=true).
  - Stopping always uses C(vmctl stop -w) bounded by O(stop_timeout) (never C(stop) then C(wait), which vmd refuses for a
    VM already stopping); a paused VM is unpaused first so that the guest can shut down.
  - A running VM shows vmm(4)'s memory size in C(vmctl status) (its configured memory plus the 4M of ranges vmd adds,
    such as a copy of the BIOS); the module compares memory as vmctl prints it for a running VM, so an unchanged VM never
    looks out of date.
  - A VM queued by a reload and then started by hand shows C(waiting) with a PID; the module treats it as running.
  - vmd cannot reload while an instance VM (O(instance_of)) runs (it refuses the known instance name after having dropped
    every stopped VM), and refuses an instance whose lladdr differs from its parent's; C(vmd -n) notices neither. A run
    that would need such a reload fails before changing anything, saying which VM to stop.
  - Temporary files of an interrupted earlier run (C(.vm.conf.*.tmp)) are removed; a VM whose definition in vmd is older
    than vm.conf (a reload was interrupted) is reloaded (stopped VMs) or reported with C(restart_required) (running ones).
seealso:
  - module: openbsd.vmm.vmm_vm_info
  - module: openbsd.vmm.vmm_disk
'''

EXAMPLES = r'''
- name: A web server that runs, with a disk and a MAC on the uplink switch
  openbsd.vmm.vmm_vm:
    name: web1
    state: running
    memory: 1G
    disks:
      - /var/vmm/web1.qcow2
    interfaces:
      - switch: uplink
        lladdr: fe:e1:ba:d0:00:01

- name: Every VM of the host in one run
  openbsd.vmm.vmm_vm:
    state: running
    memory: 512M
    vms:
      - name: db1
        disks: [/var/vmm/db1.qcow2]
      - name: build
        state: stopped
        disks: [{path: /var/vmm/build.raw, format: raw}]

- name: Apply a memory change now rather than at the next restart
  openbsd.vmm.vmm_vm:
    name: web1
    state: running
    memory: 2G
    restart_on_change: true
    stop_timeout: 120
    force: true

- name: Remove a VM (its disks stay)
  openbsd.vmm.vmm_vm:
    name: oldvm
    state: absent
'''

RETURN = r'''
vm:
  description: The VM, when O(name) was given (same fields as an element of RV(vms)).
  returned: when O(name) is given
  type: dict
vms:
  description: One record per VM of the run, in the order asked.
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
      sample: 1
    pid:
      description: PID of the vmd child running the VM, or null.
      type: int
    state:
      description:
        - State from C(vmctl status) (running, stopped, paused, stopping, waiting, unknown), C(absent) when removed.
        - C(waiting) with a PID (queued by a reload, then started by hand) is reported C(running).
      type: str
      sample: running
    tty:
      description: The VM's console tty (C(ttyp0)) or null.
      type: str
    owner:
      description: Owner as C(vmctl status) shows it (C(user) or C(user:group)).
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
      description: MAXMEM as vmctl shows it (fmt_scaled), such as C(516M) for a running VM of 512M.
      type: str
      sample: 1.0G
    curmem:
      description: Memory in use in bytes (running VMs), or null.
      type: int
    managed:
      description: Whether the VM is defined in the managed block of vm.conf.
      type: bool
    config:
      description: The VM's vm.conf definition (name, instance_of, enabled, memory, boot, boot_device, cdrom, disks,
        interfaces, owner, allow_instance, allow_instance_owner), or null when it is not defined.
      type: dict
    steps:
      description:
        - What was done (or would be, in check mode) for this VM, such as C(define), C(stop), C(start).
        - C(start (staggered)) with O(staggered_start=true) when the reload starts (or queues) the VM.
      type: list
      elements: str
    restart_required:
      description: The VM runs with an older definition; it takes effect after a restart.
      type: bool
restart_required:
  description: Whether any VM of the run needs a restart for its new definition to take effect.
  returned: always
  type: bool
commands:
  description: Every command run, as argv lists (C(vmctl ...), C(vmd -n -f ...)). A no-op run shows one C(vmctl status).
  returned: always
  type: list
  elements: list
  sample: [[vmctl, status]]
backup_file:
  description: Backup of vm.conf made before the change, when O(backup=true).
  returned: when vm.conf changed and O(backup=true)
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils.vm_lifecycle import (
    STATES, Converger, LifecycleError, ValidationError, merge_entries,
)
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import ALLOW_INSTANCE_FLAGS, VmConfError
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl, VmctlError, VmdUnavailable

BOOT_DEVICE_CHOICES = ['disk', 'cdrom', 'net', 'none']

INTERFACE_OPTIONS = dict(
    switch=dict(type='str'),
    lladdr=dict(type='str'),
    locked=dict(type='bool', default=False),
    group=dict(type='str'),
    rdomain=dict(type='int'),
    local=dict(type='bool', default=False),
)


def vm_options():
    """Per-VM options, shared by the top level and the entries of ``vms``."""
    return dict(
        name=dict(type='str'),
        state=dict(type='str', choices=list(STATES)),
        memory=dict(type='str'),
        cpus=dict(type='int'),
        disks=dict(type='list', elements='raw'),
        cdrom=dict(type='str'),
        boot=dict(type='str'),
        boot_device=dict(type='str', choices=BOOT_DEVICE_CHOICES),
        interfaces=dict(type='list', elements='dict', options=INTERFACE_OPTIONS),
        owner=dict(type='str'),
        enabled=dict(type='bool'),
        instance_of=dict(type='str'),
        allow_instance=dict(type='list', elements='str', choices=list(ALLOW_INSTANCE_FLAGS)),
        allow_instance_owner=dict(type='str'),
        stop_timeout=dict(type='int'),
        force=dict(type='bool'),
        restart_on_change=dict(type='bool'),
    )


def argument_spec():
    spec = vm_options()
    entry = vm_options()
    entry['name'] = dict(type='str', required=True)
    spec.update(
        vms=dict(type='list', elements='dict', options=entry),
        state=dict(type='str', choices=list(STATES), default='present'),
        vm_conf=dict(type='path', default='/etc/vm.conf'),
        backup=dict(type='bool', default=False),
        stop_timeout=dict(type='int', default=60),
        force=dict(type='bool', default=False),
        restart_on_change=dict(type='bool', default=False),
        dev_dir=dict(type='path', default='/dev'),
        lock_timeout=dict(type='int', default=60),
        staggered_start=dict(type='bool', default=False),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('name', 'vms')],
        required_one_of=[('name', 'vms')],
        supports_check_mode=True,
    )
    try:
        vmctl = Vmctl(module=module)
    except VmctlError as exc:
        module.fail_json(msg=str(exc))
    if module.params['lock_timeout'] < 0:
        module.fail_json(msg='lock_timeout: must be 0 or a positive number of seconds, got %s' % module.params['lock_timeout'])
    converger = Converger(module, vmctl, module.params['vm_conf'], keep_backup=module.params['backup'],
                          dev_dir=module.params['dev_dir'], lock_timeout=module.params['lock_timeout'],
                          staggered_start=module.params['staggered_start'])
    try:
        result = converger.run(merge_entries(module.params))
    except ValidationError as exc:
        module.fail_json(msg='nothing was changed: ' + '; '.join(exc.problems), problems=exc.problems, commands=vmctl.calls)
    except VmdUnavailable as exc:
        module.fail_json(msg='vmd is not running or its socket cannot be reached: %s' % exc, commands=vmctl.calls,
                         changed=converger.host_changed)
    except (VmConfError, LifecycleError, VmctlError) as exc:
        # changed: vm.conf may be rewritten and vmd reloaded (or a VM stopped) before a later step failed.
        module.fail_json(msg=str(exc), commands=vmctl.calls, backup_file=converger.backup_file, changed=converger.host_changed)
    for warning in converger.warnings:
        module.warn(warning)
    result['commands'] = vmctl.calls
    if converger.diff is not None:
        result['diff'] = converger.diff
    if converger.backup_file:
        result['backup_file'] = converger.backup_file
    if module.params['name'] is not None:
        result['vm'] = result['vms'][0]
    module.exit_json(**result)


if __name__ == '__main__':
    main()
