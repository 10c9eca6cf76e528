#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_backup
short_description: Back up an OpenBSD vmm(4) VM's disks, with a manifest and retention
version_added: 0.1.0
description:
  - Makes a new backup of the VM O(name) in O(dest) on every run, as C(<dest>/<name>-YYYYmmddTHHMMSSZ/) (UTC; C(-1),
    C(-2), ... when a backup of the VM was made in the same second). It holds one image per disk of the VM's
    C(vm.conf) definition, C(disk0.qcow2), C(disk1.raw), ... in the disk's own format, and C(manifest.json).
  - Each image is the disk with its whole backing chain, compacted by C(vmctl create -i), so it has no base and can be
    restored on any host (see C(playbooks/restore_vm.yml)). Each image is checked (format, size, no base) before the
    backup is complete, and its sha256 goes into the manifest.
  - A stopped VM's disks are copied while the module holds vmd's lock on them, so the VM cannot start meanwhile. A
    running VM is paused with C(vmctl pause) only while each disk's top image is copied beside it, then unpaused; its
    bases are read-only images that no VM writes. The copy is made again when the top image changed while it was read.
    The copy is what a power cut at that moment would leave on the disks (crash-consistent).
  - The backup is built in C(.<name>-<stamp>.partial) and renamed when complete; what a killed run left (that
    directory, the temporary copies beside the disks) is removed by the next run.
  - Retention (O(keep), O(max_age_days)) removes this VM's older backups in O(dest) once the new one is complete;
    never the new one.
author:
  - openbsd.vmm contributors (@openbsd-vmm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Reports the backup it would make and the backups retention would remove; runs only C(vmctl status).
  diff_mode:
    support: full
    details: The VM's backups in O(dest) before and after.
  platform:
    platforms: openbsd
  action_group:
    support: full
    membership: [openbsd.vmm.vmm]
options:
  name:
    description: Name of the VM, as defined in O(vm_conf) (not an instance of another VM).
    type: str
    required: true
  dest:
    description:
      - Directory the backups go into. It must exist. Backups may hold secrets (the VM's disks); the backup's directory
        is made mode 0700 (and vmctl makes the images 0600).
    type: path
    required: true
  if_running:
    description:
      - What to do when the VM is running. V(pause) pauses it while its top images are copied (RV(paused_seconds)).
        V(fail) refuses, for backups only of stopped VMs.
      - A VM that was already paused stays paused and is copied as it is.
    type: str
    choices: [pause, fail]
    default: pause
  keep:
    description: Keep at most this many backups of the VM in O(dest), the new one included; older ones are removed.
    type: int
  max_age_days:
    description: Remove the VM's backups in O(dest) made more than this many days ago (never the new one).
    type: int
  vm_conf:
    description: The vm.conf that defines the VM.
    type: path
    default: /etc/vm.conf
  lock_timeout:
    description:
      - Seconds to wait for another vmm_backup run of the same VM and O(dest) to finish (runs of one VM take turns
        through the lock file C(.<name>.vmm_backup-lock) in O(dest)).
    type: int
    default: 60
notes:
  - Backups are made on the VM's host; copy them elsewhere for safety (for example with ansible.posix.synchronize).
seealso:
  - module: openbsd.vmm.vmm_disk
  - module: openbsd.vmm.vmm_vm
'''

EXAMPLES = r'''
- name: Back up web1, keeping a week of nightly backups
  openbsd.vmm.vmm_backup:
    name: web1
    dest: /var/vmm/backups
    keep: 7

- name: Back up db1 only while it is stopped
  openbsd.vmm.vmm_backup:
    name: db1
    dest: /var/vmm/backups
    if_running: fail
    max_age_days: 30
'''

RETURN = r'''
backup:
  description: The directory of the new backup (in check mode, the one it would get).
  returned: success
  type: str
  sample: /var/vmm/backups/web1-20261201T030000Z
manifest:
  description:
    - What C(manifest.json) in the backup says (not in check mode). C(disks) has per disk its C(source) path, C(file)
      in the backup, C(format), C(virtual_size), C(bytes) on disk, C(sha256) and C(source_chain) (the disk and its
      bases when it was copied); C(definition) is the VM's vm.conf definition as M(openbsd.vmm.vmm_vm_info) gives it;
      C(consistency) is C(paused) or C(stopped).
  returned: success and not check mode
  type: dict
  sample: {"version": 1, "vm": "web1", "created_at": "2026-12-01T03:00:00Z", "host": "vmm1.example.org",
           "consistency": "paused", "paused_seconds": 0.42, "state": "running",
           "disks": [{"index": 0, "file": "disk0.qcow2", "format": "qcow2", "source": "/var/vmm/web1.qcow2"}]}
removed:
  description: The backups retention removed (in check mode, would remove).
  returned: success
  type: list
  elements: str
  sample: [/var/vmm/backups/web1-20261124T030000Z]
paused_seconds:
  description: How long the VM was paused, in seconds; null when it was not paused by this run.
  returned: success and not check mode
  type: float
  sample: 0.42
removed_leftovers:
  description: What killed runs had left (partial backups, temporary copies beside the disks), removed by this run.
  returned: success
  type: list
  elements: str
  sample: []
commands:
  description: The vmctl command lines run.
  returned: always
  type: list
  elements: list
  sample: [["vmctl", "status"], ["vmctl", "pause", "web1"], ["vmctl", "unpause", "web1"]]
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils import vm_backup
from ansible_collections.openbsd.vmm.plugins.module_utils.disk_image import DiskError
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl, VmctlError


def run(module, request, definition, vmctl):
    with vm_backup.vm_lock(request, module.params['lock_timeout']):
        status = vmctl.find(request.name)
        now = time.time()
        plan = vm_backup.plan_backup(request, definition, vm_backup.vm_state(request, status), now)
        stale = vm_backup.leftovers(request, plan.disks)
        result = dict(changed=True, backup=plan.backup, removed=list(plan.expire), removed_leftovers=stale,
                      diff=vm_backup.diff(plan))
        if module.check_mode:
            return result
        vm_backup.remove_leftovers(request, stale, status, vmctl)
        manifest, removed, paused = vm_backup.take_backup(plan, vmctl, now=now)
        result.update(manifest=manifest, removed=removed, paused_seconds=paused)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            dest=dict(type='path', required=True),
            if_running=dict(type='str', choices=list(vm_backup.IF_RUNNING), default='pause'),
            keep=dict(type='int'),
            max_age_days=dict(type='int'),
            vm_conf=dict(type='path', default='/etc/vm.conf'),
            lock_timeout=dict(type='int', default=60),
        ),
        supports_check_mode=True,
    )
    vmctl = None
    try:
        request = vm_backup.validate_request(module.params)
        definition = vm_backup.read_definition(request)
        vmctl = Vmctl(module=module)
        result = run(module, request, definition, vmctl)
    except (vm_backup.BackupError, DiskError, VmctlError, OSError) as exc:
        module.fail_json(msg=str(exc), commands=vmctl.calls if vmctl else [])
    if not module._diff:
        result.pop('diff')
    module.exit_json(commands=vmctl.calls, **result)


if __name__ == '__main__':
    main()
