# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_restore_plan
short_description: What restoring a vmm_backup backup makes - its disks and the VM's vmm_vm options
version_added: 0.1.0
description:
  - Reads a manifest written by M(openbsd.vmm.vmm_backup) (version 1) and gives, for C(playbooks/restore_vm.yml), where
    each disk goes and from which image of the backup, and the VM's options for M(openbsd.vmm.vmm_vm) as the backup
    recorded them (memory, disks, interfaces with their MACs, owner, boot options; not the C(cdrom), which the target
    host may not have).
  - A manifest that is not of this form is refused with what is wrong.
options:
  _input:
    description: The manifest (C(manifest.json) of the backup, as a dict).
    type: dict
    required: true
  disk_dir:
    description: Directory the disks go into, under their old file names; left out, each goes back to its old path.
    type: str
  image_dir:
    description: Directory that holds the backup's images where the disks are made (gives RV(_value.disk_options)).
    type: str
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: Where web1's backup puts its disks, in /var/vmm2
  ansible.builtin.debug:
    msg: "{{ (lookup('ansible.builtin.file', 'web1-20261201T030000Z/manifest.json') | from_json)
             | openbsd.vmm.vmm_restore_plan(disk_dir='/var/vmm2') }}"
"""

RETURN = r"""
_value:
  description:
    - C(vm) the VM's name; C(disks) per disk C(path) (where it goes), C(image) (the file in the backup), C(format),
      C(size) (virtual size in bytes), C(sha256); C(vm_options) the options of M(openbsd.vmm.vmm_vm) (no C(state));
      with O(image_dir), C(disk_options) the items of M(openbsd.vmm.vmm_disk)'s C(disks) that make the disks from the
      images (mode 0600).
  type: dict
  sample: {"vm": "web1", "disks": [{"path": "/var/vmm/web1.qcow2", "image": "disk0.qcow2", "format": "qcow2",
           "size": 67108864, "sha256": "b7c7..."}],
           "vm_options": {"name": "web1", "memory": "67108864", "disks": [{"path": "/var/vmm/web1.qcow2", "format": "qcow2"}],
                          "interfaces": [{"switch": "uplink", "lladdr": "fe:e1:ba:d0:65:9a", "locked": false, "group": null,
                                          "rdomain": null, "local": false}]}}
"""

import posixpath
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.vm_move import vm_options

_IMAGE = re.compile(r'disk([0-9])\.(qcow2|raw)')
_SHA256 = re.compile(r'[0-9a-f]{64}')


def _problem(message):
    raise AnsibleFilterError('vmm_restore_plan: the manifest %s; it is not a backup made by openbsd.vmm.vmm_backup' % message)


def _disk(record, index, target, definition_disk):
    image = record.get('file')
    match = _IMAGE.fullmatch(image) if isinstance(image, str) else None
    if match is None or int(match.group(1)) != index or match.group(2) != record.get('format'):
        _problem('names disk %d\'s image %r, not disk%d.<its format>' % (index, image, index))
    if not isinstance(record.get('sha256'), str) or not _SHA256.fullmatch(record['sha256']):
        _problem('has no sha256 for disk %d' % index)
    size = record.get('virtual_size')
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        _problem('has no virtual_size for disk %d' % index)
    if not isinstance(definition_disk, dict) or definition_disk.get('path') != record.get('source'):
        _problem('has a definition whose disk %d is not the disk it copied' % index)
    return dict(path=target, image=image, format=record['format'], size=size, sha256=record['sha256'])


def vmm_restore_plan(manifest, disk_dir=None, image_dir=None):
    if not isinstance(manifest, dict) or manifest.get('version') != 1:
        _problem('is not a version 1 manifest')
    definition = manifest.get('definition')
    name = manifest.get('vm')
    if not isinstance(definition, dict) or definition.get('name') != name or not isinstance(name, str):
        _problem('has no definition of its VM')
    records, defined = manifest.get('disks'), definition.get('disks')
    if not isinstance(records, list) or not records or not isinstance(defined, list) or len(records) != len(defined):
        _problem('does not have one image per disk of the VM')
    for option, value in (('disk_dir', disk_dir), ('image_dir', image_dir)):
        if value is not None and (not isinstance(value, str) or not posixpath.isabs(value)):
            raise AnsibleFilterError('vmm_restore_plan: %s must be an absolute path (got %r)' % (option, value))
    disks = []
    for index, record in enumerate(records):
        source = record.get('source') if isinstance(record, dict) else None
        if not isinstance(source, str) or not posixpath.isabs(source):
            _problem('has no absolute source path for disk %d' % index)
        target = posixpath.join(disk_dir, posixpath.basename(source)) if disk_dir else source
        disks.append(_disk(record, index, target, defined[index]))
    if len({disk['path'] for disk in disks}) != len(disks):
        raise AnsibleFilterError('vmm_restore_plan: two disks would go to the same path in %s: %s'
                                 % (disk_dir, ', '.join(disk['path'] for disk in disks)))
    options = vm_options(dict(definition, disks=[dict(path=disk['path'], format=disk['format']) for disk in disks]))
    plan = dict(vm=name, disks=disks, vm_options=options)
    if image_dir is not None:
        plan['disk_options'] = [dict(path=disk['path'], source=posixpath.join(image_dir, disk['image']), format=disk['format'],
                                     mode='0600') for disk in disks]
    return plan


class FilterModule:
    def filters(self):
        return {'vmm_restore_plan': vmm_restore_plan}
