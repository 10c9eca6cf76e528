#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_image_info
short_description: Read golden images and their manifests on an OpenBSD vmm host
version_added: 0.1.0
description:
  - Lists disk images with the manifest C(<image>.manifest.json) that C(playbooks/build_image.yml) writes beside
    each golden image (release, architecture, sets, sha256, build time, the inputs' digests), so that other
    playbooks can choose an image by what its manifest says.
  - Gives for each image what its header says (format, virtual size, base as stored), its backing chain as vmd opens
    it, and which overlays in the given directories are built on it (their backing chains, followed as vmd opens them), so that nothing
    replaces an image that an overlay still uses.
  - On request checks that each image still has the sha256 its manifest records (this reads every image whole).
author:
  - openbsd.vmm contributors (@openbsd-vmm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - openbsd.vmm.attributes.info_module
options:
  path:
    description:
      - Image files, or directories. In a directory, every image with a manifest beside it is listed; an image file
        given by name is listed with or without one.
    type: list
    elements: path
    required: true
  checksum:
    description: Compare each image's sha256 with its manifest's (RV(images[].intact)).
    type: bool
    default: false
  overlay_dirs:
    description: Directories searched for overlays built on each image; the image's own directory when left out.
    type: list
    elements: path
notes:
  - Only Python's standard library is used on the target.
  - A manifest that cannot be read, or an image that is not one, is reported in RV(images[].problems); the module
    fails only for a path that does not exist or is neither a file nor a directory.
  - Not in the C(openbsd.vmm.vmm) action group, whose modules share O(openbsd.vmm.vmm_vm#module:vm_conf).
seealso:
  - module: openbsd.vmm.vmm_disk
'''

EXAMPLES = r'''
- name: The golden images of the host
  openbsd.vmm.vmm_image_info:
    path: /var/vmm
  register: golden

- name: The newest intact image of OpenBSD 7.8 for amd64
  ansible.builtin.set_fact:
    golden_image: >-
      {{ (golden.images | selectattr('manifest') | selectattr('manifest.release', 'eq', '7.8')
          | selectattr('manifest.arch', 'eq', 'amd64') | sort(attribute='manifest.built_at') | last).path }}

- name: Is the image still what its manifest says, and which overlays use it?
  openbsd.vmm.vmm_image_info:
    path: /var/vmm/golden.qcow2
    checksum: true
    overlay_dirs: [/var/vmm, /home/vms]
  register: image
  failed_when: not image.images[0].intact
'''

RETURN = r'''
images:
  description: One entry per image, in the order the paths were given (a directory's images sorted by name).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The image file.
      type: str
      sample: /var/vmm/golden.qcow2
    format:
      description: C(qcow2) or C(raw), or null when the file is not a disk image (see RV(images[].problems)).
      type: str
      sample: qcow2
    virtual_size:
      description: Virtual size in bytes, or null.
      type: int
      sample: 10737418240
    base:
      description: The base image as stored in a qcow2 overlay's header, or null.
      type: str
    chain:
      description:
        - The image and every base below it, as vmd opens them (a relative base from the real directory of the image
          that names it); a base image alone is a chain of itself. Empty when the file is not a disk image.
        - A chain longer than vmd opens (4 images per disk), a loop, or a base that is missing or unreadable is reported
          in RV(images[].problems), and so is a manifest whose C(layers) (from the base up) name another chain.
      type: list
      elements: str
      sample: [/var/vmm/web1.qcow2, /var/vmm/golden.qcow2]
    manifest_path:
      description: Where the manifest is (or would be).
      type: str
      sample: /var/vmm/golden.qcow2.manifest.json
    manifest:
      description:
        - The manifest's content as it is, or null when there is none or it cannot be read.
        - "C(playbooks/build_image.yml) writes: C(image), C(format), C(virtual_size), C(sha256), C(release), C(arch),
          C(sets), C(built_at), C(console_log), C(autoinstall_inputs_sha256), C(autoinstall_manifest); C(builder)
          (C(inventory_hostname), C(hostname)); C(inputs), the sha256 of every input (C(autoinstall), C(seal_script),
          C(site_files) by path, C(sets): the sets' C(SHA256) file, or null); C(layers), the chain from the base up to the
          image (C(image), C(sha256) each); C(packages). Images built before a field was added lack it."
        - Choose an image by it with C(selectattr), for example on C(manifest.release) and C(manifest.inputs.sets).
      type: dict
      sample:
        release: "7.8"
        arch: amd64
        sha256: "9f2c..."
        built_at: "2026-11-30T12:00:00Z"
        builder: {inventory_hostname: vmm1, hostname: vmm1.example.com}
        inputs: {autoinstall: "51d0...", seal_script: "a3c4...", site_files: {/etc/motd: "7e1f..."}, sets: "0b9e..."}
        layers: [{image: /var/vmm/golden.qcow2, sha256: "9f2c..."}]
        packages: []
    intact:
      description: With O(checksum), whether the image has the manifest's sha256; otherwise null.
      type: bool
    overlays:
      description: Images in O(overlay_dirs) whose backing chain goes through this image.
      type: list
      elements: str
      sample: [/var/vmm/web1.qcow2]
    problems:
      description: What could not be read or does not agree, each naming the file and the cause.
      type: list
      elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils import image_catalog


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='list', elements='path', required=True),
            checksum=dict(type='bool', default=False),
            overlay_dirs=dict(type='list', elements='path'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        images = image_catalog.images_in(params['path'])
    except image_catalog.CatalogError as exc:
        module.fail_json(msg=str(exc))
    overlay_dirs = params['overlay_dirs']
    for directory in overlay_dirs or []:
        if not os.path.isdir(directory):
            module.fail_json(msg='overlay_dirs: %s is not a directory' % directory)
    module.exit_json(changed=False, images=[image_catalog.describe(image, params['checksum'], overlay_dirs)
                                            for image in images])


if __name__ == '__main__':
    main()
