#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_disk_delta
short_description: Send a disk image as the blocks that changed since a copy of it was made
version_added: 0.1.0
description:
  - Brings a copy of a disk image made earlier (for example while its VM ran) up to date by sending only the blocks
    that changed, in three operations run on the two hosts (C(playbooks/migrate.yml) uses it).
  - V(digest) on the host with the copy gives the sha256 of each O(block_size) block of O(path) (read-only). A file
    of more than 16384 such blocks is read in larger ones, the smallest power of two (up to 16777216) that keeps it
    to 16384, so that the list of digests stays small; RV(block_size) says which, and V(delta) must be given it.
  - V(delta) on the host with the image reads O(path) and writes into O(delta) the blocks whose sha256 is not the one
    O(digests) has at the same index, and the image's final length and sha256. The delta file is written under a
    temporary name and renamed, mode 0600; a run overwrites what an earlier one left there.
  - V(apply) on the host with the copy patches O(path) (the copy, in place) with O(delta), checks that the result has
    the sha256 O(sha256), and only then renames it onto O(dest) and removes O(delta). A delta that is damaged or was
    made from another image is refused before anything is written; when the patched file has another sha256 (the copy
    changed after its digest), O(dest) is left untouched and the patched file is removed.
author:
  - openbsd.vmm contributors (@openbsd-vmm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: V(digest) runs as usual; V(delta) reads O(path) and reports the delta it would write; V(apply) checks O(delta) and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: openbsd
options:
  operation:
    description: What to do (see the description).
    type: str
    choices: [digest, delta, apply]
    required: true
  path:
    description: The image (V(digest), V(delta)) or the copy to patch (V(apply)); an absolute path to a regular file.
    type: path
    required: true
  block_size:
    description:
      - Size of the blocks compared, in bytes, for V(digest) and V(delta) (both sides must use the same); a power of two
        from 4096 to 16777216. V(apply) reads it from the delta file.
    type: int
    default: 1048576
  digests:
    description: For V(delta), the RV(digests) that V(digest) gave for the copy on the other host.
    type: list
    elements: str
  delta:
    description: The delta file, written by V(delta) and read by V(apply); an absolute path in an existing directory.
    type: path
  dest:
    description: For V(apply), where the patched copy goes (renamed there once its sha256 is right).
    type: path
  sha256:
    description: For V(apply), the sha256 the patched copy must have (the image's on the other host).
    type: str
  mode:
    description: For V(apply), the mode of the patched copy, an octal string such as V('0600'); the copy's own when left out.
    type: str
seealso:
  - module: openbsd.vmm.vmm_disk
'''

EXAMPLES = r'''
- name: The blocks of the copy on the target
  openbsd.vmm.vmm_disk_delta:
    operation: digest
    path: /var/vmm/web1.qcow2.precopy
  delegate_to: vmm2
  register: copy_digests

- name: The blocks that changed, on the source
  openbsd.vmm.vmm_disk_delta:
    operation: delta
    path: /var/vmm/web1.qcow2
    digests: "{{ copy_digests.digests }}"
    delta: /var/vmm/web1.qcow2.delta
  delegate_to: vmm1

- name: The copy patched (once the delta was copied to vmm2)
  openbsd.vmm.vmm_disk_delta:
    operation: apply
    path: /var/vmm/web1.qcow2.precopy
    delta: /var/vmm/web1.qcow2.delta
    dest: /var/vmm/web1.qcow2
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    mode: '0600'
  delegate_to: vmm2
'''

RETURN = r'''
size:
  description: Length of the image in bytes (V(digest) the copy's, V(delta) and V(apply) the final one).
  returned: success
  type: int
  sample: 2097152
block_size:
  description: The block size used (for V(digest), at least O(block_size), see above).
  returned: success
  type: int
  sample: 1048576
digests:
  description: For V(digest), the sha256 of each block in order (the last block may be shorter).
  returned: success and operation is digest
  type: list
  elements: str
  sample: [9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08]
sha256:
  description: For V(delta) and V(apply), the sha256 of the whole final image.
  returned: success and operation is not digest
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
blocks:
  description: For V(delta), the number of blocks of the image.
  returned: success and operation is delta
  type: int
  sample: 2
blocks_changed:
  description: For V(delta) and V(apply), the number of blocks in the delta.
  returned: success and operation is not digest
  type: int
  sample: 1
bytes:
  description: For V(delta) and V(apply), the size of the delta file in bytes (what is sent).
  returned: success and operation is not digest
  type: int
  sample: 1048638
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_delta


def run(request, check_mode):
    operation = request['operation']
    if operation == 'digest':
        return dict(changed=False, **disk_delta.digest(request['path'], request['block_size']))
    if operation == 'delta':
        result = disk_delta.make_delta(request['path'], request['block_size'], request['digests'], request['delta'],
                                       write=not check_mode)
        return dict(changed=True, block_size=request['block_size'], **result)
    return dict(changed=True, **disk_delta.apply_delta(request['path'], request['delta'], request['dest'], request['sha256'],
                                                       mode=request['mode'], write=not check_mode))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            operation=dict(type='str', choices=list(disk_delta.OPERATIONS), required=True),
            path=dict(type='path', required=True),
            block_size=dict(type='int', default=1048576),
            digests=dict(type='list', elements='str'),
            delta=dict(type='path'),
            dest=dict(type='path'),
            sha256=dict(type='str'),
            mode=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    params = dict(module.params)
    if params['operation'] == 'apply':
        params['block_size'] = None   # read from the delta file
    try:
        result = run(disk_delta.validate_request(params), module.check_mode)
    except (disk_delta.DeltaError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
