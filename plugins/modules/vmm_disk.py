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
  - Creates, grows, replaces, deletes or archives raw or qcow2 disk images for vmd(8) with C(vmctl create),
    one image (O(path)) or all the images of a host in one run (O(disks)).
  - An existing image is inspected without vmctl (a qcow2 header reader, the file size for raw images),
    so a run that changes nothing runs no vmctl command at all.
  - Never loses data silently. A different format or base needs O(force); a larger size needs O(grow);
    shrinking is refused; an image held by a running VM is never replaced, grown or deleted.
  - Every bad parameter is refused with a message naming the parameter and the rule before anything on disk changes.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Shows format, size and base before and after, the archive name, and mode, owner and group changes (also in check mode).
      - With O(disks), the diff is a list, one entry per image that changes.
  platform:
    platforms: openbsd
  action_group:
    support: full
    membership: [openbsd.vmm.vmm]
options:
  path:
    description:
      - Absolute path of the image file. Relative paths are refused.
      - The directory must exist.
      - Exactly one of O(path) and O(disks) is required.
    type: path
  disks:
    description:
      - Several images in one run, each an item with the per-image options below; the top-level value of an option
        (O(state), O(size), O(format), O(base), O(source), O(grow), O(force), O(archive_dir), O(mode), O(owner), O(group))
        is the default of every item that does not set it (an item can override it but not unset it, so leave out of the
        top level what only some items have). O(vm_conf) and O(lock_timeout) apply to every item.
      - Every item is validated and planned before anything changes; one bad item fails the run naming it (for example
        C(disks[3].size)) and nothing is changed. Two items for the same image are refused.
      - Then the items are carried out in their order, each under its own image's lock (as a single run takes it),
        never one lock for the whole run. If an item fails while being carried out, the items before it stay done
        and the result lists them.
      - An item cannot use as its O(base) an image that another item changes in the same run; bases must exist before.
      - Mutually exclusive with O(path).
    type: list
    elements: dict
    suboptions:
      path:
        description: Absolute path of the image file, as O(path).
        type: path
        required: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
      size:
        description: As O(size).
        type: str
      format:
        description: As O(format).
        type: str
        choices: [raw, qcow2]
      base:
        description: As O(base).
        type: str
      source:
        description: As O(source).
        type: path
      grow:
        description: As O(grow).
        type: bool
      force:
        description: As O(force).
        type: bool
      archive_dir:
        description: As O(archive_dir).
        type: path
      mode:
        description: As O(mode).
        type: raw
      owner:
        description: As O(owner).
        type: str
      group:
        description: As O(group).
        type: str
  state:
    description:
      - V(present) makes sure the image exists as described; V(absent) deletes it, or moves it into O(archive_dir)
        when that is set.
      - V(absent) refuses to delete or archive an image that a VM in O(vm_conf) uses (as its disk or as a base below
        its disk), or that other images beside it use as their base, unless O(force=true).
      - V(absent) on a symbolic link removes the link only, never the file it points to (with O(archive_dir) too, the
        file stays where it is); it is refused, like an image, while a VM in O(vm_conf) or an image beside it reaches
        a disk or base through the link.
    type: str
    choices: [present, absent]
    default: present
  archive_dir:
    description:
      - With V(absent), move the image into this directory instead of deleting it, as
        C(NAME-YYYYmmddTHHMMSSZ.EXT) (the image's name without its extension, the UTC time of the run, the image's
        extension C(.qcow2), C(.img) or C(.raw), else its format). A name already taken is never overwritten;
        C(NAME-YYYYmmddTHHMMSSZ-1.EXT), C(-2), ... are used instead. The name is returned in RV(archived_to).
      - On the same file system the image is moved by a hard link and the removal of its old name (no copy); on
        another file system it is copied to a temporary name in O(archive_dir), synced, given its archive name, and only
        then removed from O(path).
      - The directory must exist once there is an image to archive (vmm_disk does not create directories); an absent
        image is not archived again (C(changed=false)) and needs no directory.
      - The same refusals as a deletion apply (a VM in O(vm_conf), images based on it, a running VM).
      - An overlay is archived with its base as stored; a relative base is only found again once the overlay is moved
        back beside it (a warning says so).
      - Without O(archive_dir), V(absent) deletes the image, as O(state) always did; set it where removed VMs' disks
        must be kept.
      - Ignored with V(present).
    type: path
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
      - With V(absent), delete (or archive) an image even though a VM in O(vm_conf) or other images use it.
      - Never applies to an image held by a running VM.
    type: bool
    default: false
  mode:
    description:
      - Permissions of the image file as chmod(1) takes them, octal (quote it, V('0600')) or symbolic (V(u=rw,g=r)).
      - Applied to an existing or new image with V(present); a change is shown in diff mode, also in check mode.
      - When omitted, a new image gets vmctl's mode and an existing one keeps its mode.
    type: raw
  owner:
    description:
      - User (name or numeric id) that should own the image file; changing it needs root.
    type: str
  group:
    description:
      - Group (name or numeric id) of the image file.
    type: str
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
    whether an image is in use, and holds it while it grows, replaces, deletes or archives the image.
  - New, imported, grown and replaced images are written by vmctl under a temporary name beside the image
    (C(.NAME.vmm_disk-XXXXXXXX.tmp)), checked, and only then put in place, so an interrupted run never leaves a half
    image under the real name. The next run on that image removes such leftovers (reported in RV(removed_leftovers)).
  - Only mode, owner and group are managed; SELinux contexts and chattr(1) attributes do not exist on OpenBSD.
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

- name: The overlays of every guest of the host in one run (one lock per image), the old guest's disk archived
  openbsd.vmm.vmm_disk:
    base: golden.qcow2
    mode: '0600'
    archive_dir: /var/vmm/archive
    disks:
      - path: /var/vmm/web1.qcow2
      - path: /var/vmm/web2.qcow2
      - path: /var/vmm/db1.qcow2
        base: golden-db.qcow2
      - path: /var/vmm/old.qcow2
        state: absent
  register: overlays

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

- name: Keep the disk of a removed VM in an archive instead (returns archived_to)
  openbsd.vmm.vmm_disk:
    path: /var/vmm/old.qcow2
    state: absent
    archive_dir: /var/vmm/archive
'''

RETURN = r'''
path:
  description: The image path (single image runs, O(path)).
  returned: with O(path)
  type: str
  sample: /var/vmm/web1.qcow2
format:
  description: Format of the image (none when it is absent).
  returned: with O(path)
  type: str
  sample: qcow2
size:
  description: Virtual size in bytes (none when the image is absent).
  returned: with O(path)
  type: int
  sample: 53687091200
size_human:
  description: The size as vmctl prints sizes (fmt_scaled(3)).
  returned: with O(path)
  type: str
  sample: 50.0G
base:
  description: The base image as stored in the overlay, or none.
  returned: with O(path)
  type: str
  sample: golden.qcow2
created:
  description: Whether the image was created (or replaced) by this run.
  returned: with O(path)
  type: bool
grown:
  description: Whether the image was grown by this run.
  returned: with O(path)
  type: bool
exists_after:
  description:
    - Whether the image exists after this run, or in check mode would exist (so a later task in check mode can tell an
      image that is only planned).
  returned: with O(path)
  type: bool
  sample: true
archived_to:
  description: The name in O(archive_dir) the image was moved to (in check mode, the name it would get), else none.
  returned: with O(path)
  type: str
  sample: /var/vmm/archive/old-20261130T154500Z.qcow2
commands:
  description:
    - The vmctl commands run, each an argv list. Empty when nothing changed and in check mode.
    - They name the temporary file the image was made in before it was put in place.
  returned: with O(path)
  type: list
  elements: list
  sample: [["vmctl", "create", "-s", "53687091200", "/var/vmm/.web1.qcow2.vmm_disk-3f9a1c2e.tmp"]]
removed_leftovers:
  description: Temporary images and lock files of interrupted vmm_disk runs on this image, removed by this run (in check
    mode, those it would remove).
  returned: with O(path)
  type: list
  elements: str
  sample: ["/var/vmm/.web1.qcow2.vmm_disk-3f9a1c2e.tmp"]
disks:
  description:
    - One result per item of O(disks), in their order, with the keys of a single image run (path as given, changed,
      format, size, size_human, base, created, grown, exists_after, archived_to, commands, removed_leftovers, and the
      file's mode, owner, group, uid and gid when it exists).
    - When an item fails while being carried out, the items done before it and the failed one (with C(failed=true)).
  returned: with O(disks)
  type: list
  elements: dict
  sample: [{"path": "/var/vmm/web1.qcow2", "changed": false, "format": "qcow2", "size": 53687091200, "size_human": "50.0G",
            "base": "golden.qcow2", "created": false, "grown": false, "exists_after": true, "archived_to": null,
            "commands": [], "removed_leftovers": [], "mode": "0600", "owner": "root", "group": "wheel"}]
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils.disk_image import (
    DiskError, apply_plan, diff, inspect_image, leftovers, plan_change, run_lock, same_file, resolve_base,
    validate_file_attributes, validate_request,
)
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import fmt_scaled
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl, VmctlError

# The per-image options: an item of disks may set each; the top-level value is its default.
ITEM_OPTIONS = dict(
    path=dict(type='path', required=True),
    state=dict(type='str', choices=['present', 'absent']),
    size=dict(type='str'),
    format=dict(type='str', choices=['raw', 'qcow2']),
    base=dict(type='str'),
    source=dict(type='path'),
    grow=dict(type='bool'),
    force=dict(type='bool'),
    archive_dir=dict(type='path'),
    mode=dict(type='raw'),
    owner=dict(type='str'),
    group=dict(type='str'),
)
# A DiskError message that starts with one of these names is about that option of the item.
_ITEM_MESSAGE = re.compile(r'(%s): (.*)' % '|'.join(ITEM_OPTIONS), re.S)
# ... and these options are the run's: said once, not for every item.
_RUN_MESSAGE = re.compile(r'(vm_conf|lock_timeout): .*', re.S)


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


class Image:
    """One image of the run: its parameters, validated request, plan and a killed run's leftovers."""

    def __init__(self, index, params):
        self.index, self.params = index, params
        validate_file_attributes(params)
        self.request = validate_request(params)
        self.plan = plan_change(self.request, inspect_image(self.request.path))
        self.target = self.request.link or self.request.path
        self.stale = leftovers(self.target)

    def name(self, message):
        """``message`` as it names the option: as is for a single image, disks[N].OPTION for an item."""
        if self.index is None:
            return message
        return item_message(self.index, message)


def item_message(index, message):
    match = _ITEM_MESSAGE.fullmatch(message)
    if match:
        return 'disks[%d].%s: %s' % (index, match.group(1), match.group(2))
    return 'disks[%d]: %s' % (index, message)


def describe(path, image):
    if image is None:
        return dict(path=path, format=None, size=None, size_human=None, base=None)
    return dict(path=path, format=image.format, size=image.size, size_human=fmt_scaled(image.size), base=image.base)


class ApplyError(Exception):
    """Carrying out an image's plan failed; ``commands`` are the vmctl calls made for it."""

    def __init__(self, message, commands):
        super().__init__(message)
        self.commands = commands


def apply_file_attributes(module, path, params, changed, file_diff):
    """Only mode, owner and group: the SELinux and chattr options of AnsibleModule's file arguments mean nothing on
    OpenBSD (set_fs_attributes_if_different would need them in the dict too)."""
    changed = module.set_owner_if_different(path, params.get('owner'), changed, file_diff, False)
    changed = module.set_group_if_different(path, params.get('group'), changed, file_diff, False)
    return module.set_mode_if_different(path, params.get('mode'), changed, file_diff, False)


def converge(module, image):
    """Carry out (or in check mode, predict) one image's plan; return its result and its diff (or None)."""
    request, plan, stale = image.request, image.plan, image.stale
    commands = []
    after = plan.after()
    if (plan.changed or stale) and not module.check_mode:
        vmctl, applying = None, False
        try:
            with run_lock(image.target, module.params['lock_timeout']):  # also removes the leftovers
                # Again under the lock: another run may have made this change meanwhile.
                plan = plan_change(request, inspect_image(request.path))
                after = plan.after()
                if plan.changed:
                    applying = True
                    vmctl = None if plan.action in ('delete', 'unlink', 'archive') else Vmctl(module=module)
                    after = apply_plan(plan, vmctl)
        except (DiskError, VmctlError, OSError) as exc:
            doing = '%s failed: ' % (plan.reasons[0] if plan.reasons else plan.action) if applying else ''
            raise ApplyError('%s%s' % (doing, exc), vmctl.calls if vmctl else commands)
        commands = vmctl.calls if vmctl else commands
        stale = [name for name in stale if not os.path.exists(name)]

    result = dict(changed=plan.changed or bool(stale), created=plan.action in ('create', 'replace'),
                  grown=plan.action == 'grow', removed_leftovers=stale, exists_after=after is not None,
                  archived_to=plan.archived_to)
    image_diff = diff(plan) if plan.changed else {'before': {}, 'after': {}, 'before_header': request.path,
                                                  'after_header': request.path}
    if request.state == 'present' and os.path.exists(request.path):
        result['changed'] = apply_file_attributes(module, request.path, image.params, result['changed'], image_diff)
    result.update(describe(image.params['path'], after), commands=commands)
    if not (plan.changed or image_diff['before'] or image_diff['after']):
        image_diff = None
    return result, image_diff


def item_params(module, item):
    """An item of disks with the top-level values as its defaults."""
    params = dict((name, item.get(name) if item.get(name) is not None else module.params.get(name)) for name in ITEM_OPTIONS)
    params.update(vm_conf=module.params['vm_conf'], lock_timeout=module.params['lock_timeout'])
    return params


def check_batch(images):
    """Refusals that need the whole list: one image twice, or a base that another item changes in this run."""
    errors, seen = [], {}
    for image in images:
        first = seen.setdefault(image.target, image)
        if first is not image:
            errors.append(item_message(image.index, 'path: %s is the same image as disks[%d].path (%s); give each image once'
                                       % (image.params['path'], first.index, first.params['path'])))
    for image in images:
        if not image.request.base or image.request.state != 'present':
            continue
        base_path = resolve_base(image.request.path, image.request.base)
        for other in images:
            if other is not image and other.plan.changed and same_file(other.target, base_path):
                errors.append(item_message(image.index, 'base: %s is changed by disks[%d] in this run (%s); an overlay '
                                           "needs its base as it is: manage the base in an earlier task"
                                           % (image.request.base, other.index, other.plan.reasons[0])))
    return errors


def run_batch(module):
    images, errors = [], []
    for index, item in enumerate(module.params['disks']):
        try:
            images.append(Image(index, item_params(module, item)))
        except DiskError as exc:
            message = str(exc) if _RUN_MESSAGE.fullmatch(str(exc)) else item_message(index, str(exc))
            if message not in errors:
                errors.append(message)
    errors.extend(check_batch(images))
    if errors:
        msg = errors[0] if len(errors) == 1 else '%d items of disks are refused, nothing was changed: %s' % (
            len(errors), '; '.join(errors))
        module.fail_json(msg=msg, changed=False, errors=errors)
    for image in images:
        for warning in image.request.warnings:
            module.warn('disks[%d]: %s' % (image.index, warning))

    results, diffs = [], []
    for image in images:
        try:
            result, image_diff = converge(module, image)
        except ApplyError as exc:
            failed = dict(path=image.params['path'], failed=True, msg=str(exc), commands=exc.commands)
            module.fail_json(msg=item_message(image.index, '%s: %s' % (image.params['path'], exc)),
                             changed=any(done['changed'] for done in results), disks=results + [failed])
        results.append(module.add_path_info(result))
        if image_diff is not None:
            diffs.append(image_diff)
    outcome = dict(changed=any(result['changed'] for result in results), disks=results)
    if diffs and module._diff:
        outcome['diff'] = diffs
    module.exit_json(**outcome)


def run_single(module):
    path = module.params['path']
    params = dict((name, module.params.get(name)) for name in ITEM_OPTIONS)
    params.update(vm_conf=module.params['vm_conf'], lock_timeout=module.params['lock_timeout'])
    try:
        image = Image(None, params)
    except DiskError as exc:
        module.fail_json(msg=str(exc), path=path, commands=[])
    for warning in image.request.warnings:
        module.warn(warning)
    try:
        result, image_diff = converge(module, image)
    except ApplyError as exc:
        module.fail_json(msg=str(exc), path=image.request.path, commands=exc.commands)
    if image_diff is not None and module._diff:
        result['diff'] = image_diff
    module.exit_json(**result)


def main():
    top_level = dict(ITEM_OPTIONS, path=dict(type='path'),
                     state=dict(type='str', choices=['present', 'absent'], default='present'),
                     grow=dict(type='bool', default=False), force=dict(type='bool', default=False))
    module = DiskModule(
        argument_spec=dict(
            top_level,
            disks=dict(type='list', elements='dict', options=ITEM_OPTIONS),
            vm_conf=dict(type='path', default='/etc/vm.conf'),
            lock_timeout=dict(type='int', default=60),
        ),
        mutually_exclusive=[('base', 'source'), ('path', 'disks')],
        required_one_of=[('path', 'disks')],
        supports_check_mode=True,
    )
    if module.params['disks'] is not None:
        run_batch(module)
    run_single(module)


if __name__ == '__main__':
    main()
