#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_disk
short_description: Manage a disk image for OpenBSD's vmm(4) the way vmctl create makes them
version_added: 0.1.0
description:
  - Creates, grows, replaces or deletes one raw or qcow2 disk image for vmd(8) with C(vmctl create).
  - An existing image is inspected without vmctl (a qcow2 header reader, the file size for raw images),
    so a run that changes nothing runs no vmctl command at all.
  - Never loses data silently. A different format or base needs O(force); a larger size needs O(grow);
    shrinking is refused; an image held by a running VM is never replaced, grown or deleted.
  - Every bad parameter is refused with a message naming the parameter and the rule before anything on disk changes.
extends_documentation_fragment:
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows format, size and base before and after.
  platform:
    platforms: posix
options:
  path:
    description:
      - Absolute path of the image file. Relative paths are refused.
      - The directory must exist.
    type: path
    required: true
  state:
    description:
      - V(present) makes sure the image exists as described; V(absent) deletes it.
      - V(absent) refuses to delete an image that a VM in O(vm_conf) uses (as its disk or as a base below its disk),
        or that other images beside it use as their base, unless O(force=true).
      - V(absent) on a symbolic link removes the link only, never the file it points to; it is refused, like an image,
        while a VM in O(vm_conf) or an image beside it reaches a disk or base through the link.
    type: str
    choices: [present, absent]
    default: present
  size:
    description:
      - Virtual size in OpenBSD's size syntax (scan_scaled(3)), for example V(50G) or V(512M).
      - A bare number means bytes, as in vmctl. Sizes are rounded down to whole MiB as vmctl does; anything under 1M is an error.
      - Required to create an image unless O(base) or O(source) gives the size.
      - For an overlay (O(base)) it must equal the base's virtual size.
    type: str
  format:
    description:
      - Image format. When omitted, vmctl's choice applies, that is the format of an existing image, else the
        file name extension (C(.raw), C(.qcow2)), else V(raw).
    type: str
    choices: [raw, qcow2]
  base:
    description:
      - Create a qcow2 overlay on this qcow2 base image (C(vmctl create -b)).
      - The path is stored in the overlay as given; a relative path is relative to the directory of O(path), as vmd reads it.
      - The base must be a qcow2 image vmd can use.
      - Mutually exclusive with O(source).
    type: str
  source:
    description:
      - Create the image as a copy of this existing raw or qcow2 image, converting the format if needed (C(vmctl create -i)).
      - Only used when the image is created or replaced; an existing image is not copied again.
      - Mutually exclusive with O(base).
    type: path
  grow:
    description:
      - Allow growing an existing image to a larger O(size). The data is kept; the image is copied with the new size into a
        temporary file beside it, checked, and renamed into place.
      - Shrinking is always refused. Overlays cannot be grown on their own.
    type: bool
    default: false
  force:
    description:
      - With V(present), replace an existing image whose format or base differs (its data is lost).
      - With V(absent), delete an image even though a VM in O(vm_conf) or other images use it.
      - Never applies to an image held by a running VM.
    type: bool
    default: false
  vm_conf:
    description:
      - The vm.conf(5) whose VMs (with its C(include) files) V(absent) checks before deleting. A file that does not
        exist defines no VMs; a file in a directory that does not exist, or one that cannot be parsed, is refused
        (whether a VM uses the image is then unknown) unless O(force=true).
    type: path
    default: /etc/vm.conf
  lock_timeout:
    description:
      - Seconds to wait for another vmm_disk run working on the same image (they take turns through a lock file
        C(.NAME.vmm_disk-lock) beside the image, removed afterwards) before failing with that run's pid.
    type: int
    default: 60
notes:
  - vmd holds an exclusive lock (flock) on the disk image of every running VM; this module takes the same lock to tell
    whether an image is in use, and holds it while it grows, replaces or deletes the image.
  - New, imported, grown and replaced images are written by vmctl under a temporary name beside the image
    (C(.NAME.vmm_disk-XXXXXXXX.tmp)), checked, and only then put in place, so an interrupted run never leaves a half
    image under the real name. The next run on that image removes such leftovers (reported in RV(removed_leftovers)).
  - Uses only the Python standard library on the target.
seealso:
  - name: vmctl(8)
    description: The vmctl manual page (create).
    link: https://man.openbsd.org/vmctl.8
author:
  - openbsd.vmm contributors (@openbsd-vmm)
'''

EXAMPLES = r'''
- name: A 50G qcow2 disk
  openbsd.vmm.vmm_disk:
    path: /var/vmm/web1.qcow2
    size: 50G
    owner: root
    mode: '0600'

- name: An overlay on a golden image
  openbsd.vmm.vmm_disk:
    path: /var/vmm/web2.qcow2
    base: golden.qcow2

- name: A raw copy of an image
  openbsd.vmm.vmm_disk:
    path: /var/vmm/import.raw
    source: /var/vmm/golden.qcow2

- name: Grow a disk (data kept)
  openbsd.vmm.vmm_disk:
    path: /var/vmm/web1.qcow2
    size: 80G
    grow: true

- name: Delete a disk that no VM uses
  openbsd.vmm.vmm_disk:
    path: /var/vmm/old.raw
    state: absent
'''

RETURN = r'''
path:
  description: The image path.
  returned: always
  type: str
  sample: /var/vmm/web1.qcow2
format:
  description: Format of the image (none when it is absent).
  returned: always
  type: str
  sample: qcow2
size:
  description: Virtual size in bytes (none when the image is absent).
  returned: always
  type: int
  sample: 53687091200
size_human:
  description: The size as vmctl prints sizes (fmt_scaled(3)).
  returned: always
  type: str
  sample: 50.0G
base:
  description: The base image as stored in the overlay, or none.
  returned: always
  type: str
  sample: golden.qcow2
created:
  description: Whether the image was created (or replaced) by this run.
  returned: always
  type: bool
grown:
  description: Whether the image was grown by this run.
  returned: always
  type: bool
commands:
  description:
    - The vmctl commands run, each an argv list. Empty when nothing changed and in check mode.
    - They name the temporary file the image was made in before it was put in place.
  returned: always
  type: list
  elements: list
  sample: [["vmctl", "create", "-s", "53687091200", "/var/vmm/.web1.qcow2.vmm_disk-3f9a1c2e.tmp"]]
removed_leftovers:
  description: Temporary images and lock files of interrupted vmm_disk runs on this image, removed by this run (in check
    mode, those it would remove).
  returned: always
  type: list
  elements: str
  sample: ["/var/vmm/.web1.qcow2.vmm_disk-3f9a1c2e.tmp"]
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils.disk_image import (
    DiskError, apply_plan, diff, inspect_image, leftovers, plan_change, run_lock, validate_request,
)
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import fmt_scaled
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl, VmctlError


class DiskModule(AnsibleModule):
    """AnsibleModule adds the file's owner, mode and length to results that have a ``path``;
    keep those but let ``size`` stay the virtual disk size this module documents."""

    def add_path_info(self, kwargs):
        has_size, virtual_size = 'size' in kwargs, kwargs.get('size')
        kwargs = super().add_path_info(kwargs)
        if has_size:
            kwargs['size'] = virtual_size
        else:
            kwargs.pop('size', None)  # a failure: no size is known, and the file length would mislead
        return kwargs


def describe(path, image):
    if image is None:
        return dict(path=path, format=None, size=None, size_human=None, base=None)
    return dict(path=path, format=image.format, size=image.size, size_human=fmt_scaled(image.size), base=image.base)


def main():
    module = DiskModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            size=dict(type='str'),
            format=dict(type='str', choices=['raw', 'qcow2']),
            base=dict(type='str'),
            source=dict(type='path'),
            grow=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
            vm_conf=dict(type='path', default='/etc/vm.conf'),
            lock_timeout=dict(type='int', default=60),
        ),
        mutually_exclusive=[('base', 'source')],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params['path']
    commands = []
    try:
        request = validate_request(module.params)
        plan = plan_change(request, inspect_image(request.path))
        target = request.link or request.path
        stale = leftovers(target)
    except DiskError as exc:
        module.fail_json(msg=str(exc), path=path, commands=commands)
    for warning in request.warnings:
        module.warn(warning)

    image = plan.after()
    if (plan.changed or stale) and not module.check_mode:
        vmctl, applying = None, False
        try:
            with run_lock(target, module.params['lock_timeout']):  # also removes the leftovers
                # Again under the lock: another run may have made this change meanwhile.
                plan = plan_change(request, inspect_image(request.path))
                image = plan.after()
                if plan.changed:
                    applying = True
                    vmctl = None if plan.action in ('delete', 'unlink') else Vmctl(module=module)
                    image = apply_plan(plan, vmctl)
        except (DiskError, VmctlError, OSError) as exc:
            doing = '%s failed: ' % (plan.reasons[0] if plan.reasons else plan.action) if applying else ''
            module.fail_json(msg='%s%s' % (doing, exc), path=request.path, commands=vmctl.calls if vmctl else commands)
        commands = vmctl.calls if vmctl else commands
        stale = [name for name in stale if not os.path.exists(name)]

    result = dict(changed=plan.changed or bool(stale), created=plan.action in ('create', 'replace'),
                  grown=plan.action == 'grow', removed_leftovers=stale)
    if request.state == 'present' and os.path.exists(request.path):
        file_args = module.load_file_common_arguments(module.params, path=request.path)
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])

    result.update(describe(path, image), commands=commands)
    if plan.changed and module._diff:
        result['diff'] = diff(plan)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
