# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_migrate_disks
short_description: The files a VM's move copies, and its definition on the target host
version_added: 0.1.0
description:
  - Used by C(playbooks/migrate.yml) for one VM. A file under the source's disk directory (O(source_dir)) goes to the
    same place under the target's (O(target_dir)); any other file keeps its path.
  - Gives the disks' top images (copied after the VM stopped) and every base image below them (copied while it runs,
    once per target host).
  - An overlay names its base as it was made (C(vmctl create -b)), and vmctl cannot change that name afterwards. A
    chain whose base name would lead to another file on the target than where the base goes (an absolute base name
    when the disk directories differ, or a relative one leading out of the moved directory) is refused, naming the
    overlay, the base and both paths; so is a disk that vmm_image_info could not read.
options:
  _input:
    description: The VM's definition (vmm_vm_info C(config)).
    type: dict
    required: true
  images:
    description: The C(images) of M(openbsd.vmm.vmm_image_info) for every disk and every file of its chain.
    type: list
    elements: dict
    required: true
  source_dir:
    description: The source host's disk directory (C(vmm_disk_dir)).
    type: str
    default: /var/vmm
  target_dir:
    description: The target host's disk directory.
    type: str
    default: /var/vmm
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: What moving web1 from /var/vmm to /data/vmm copies
  ansible.builtin.debug:
    msg: "{{ web1.config | openbsd.vmm.vmm_migrate_disks(chains.images, source_dir='/var/vmm', target_dir='/data/vmm') }}"
"""

RETURN = r"""
_value:
  description: "C(disks) and C(bases), each a list of C({source, target}) paths; C(definition), the definition with the target's disk paths."
  type: dict
  sample: {"disks": [{"source": "/var/vmm/web1.qcow2", "target": "/data/vmm/web1.qcow2"}],
           "bases": [{"source": "/var/vmm/golden.qcow2", "target": "/data/vmm/golden.qcow2"}],
           "definition": {"name": "web1", "disks": [{"path": "/data/vmm/web1.qcow2", "format": null}]}}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.vm_move import MovePlanError, disk_moves


def vmm_migrate_disks(definition, images, source_dir='/var/vmm', target_dir='/var/vmm'):
    if not isinstance(definition, dict) or not isinstance(definition.get('name'), str) or not isinstance(images, list):
        raise AnsibleFilterError('vmm_migrate_disks: expected a VM definition and vmm_image_info images')
    try:
        return disk_moves(definition, images, source_dir, target_dir)
    except MovePlanError as exc:
        raise AnsibleFilterError('vmm_migrate_disks: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_migrate_disks': vmm_migrate_disks}
