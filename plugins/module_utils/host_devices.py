# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Device nodes of a vmd host besides the taps (counted in devices.py): pty pairs for VM consoles,
and what the VMs planned for a host (its ``vmm_guests``) take.

- Consoles: vmd takes a pty per VM with openpty(3) (ptm(4), PTMGET). The kernel
  (sys/kern/tty_pty.c ``pty_getfree()``, ``ptydevname()``, ``ptm_vn_open()``)
  picks the lowest free minor and opens its /dev/ptyXY and /dev/ttyXY nodes by
  name, so the usable pairs are the minors from 0 whose two nodes exist, in
  the kernel's order: letter ``TTY_LETTERS[minor // 62]``, suffix
  ``TTY_SUFFIX[minor % 62]``. MAKEDEV's ``ptyN`` makes group N (62 pairs).
"""

from __future__ import annotations

import os

# sys/kern/tty_pty.c
TTY_LETTERS = 'pqrstuvwxyzPQRST'
TTY_SUFFIX = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
PTYS_PER_GROUP = len(TTY_SUFFIX)


def _names(dev_dir):
    try:
        return set(os.listdir(dev_dir))
    except OSError:
        return set()


def tap_indexes(dev_dir='/dev'):
    """Numbers of every /dev/tapN node, also those after a gap (which opentap never reaches)."""
    return sorted(int(name[3:]) for name in _names(dev_dir) if name.startswith('tap') and name[3:].isdigit())


def pty_name(minor):
    """('ptyXY', 'ttyXY') of a pty minor, as ptydevname() builds them."""
    letter, suffix = TTY_LETTERS[minor // PTYS_PER_GROUP], TTY_SUFFIX[minor % PTYS_PER_GROUP]
    return 'pty' + letter + suffix, 'tty' + letter + suffix


def usable_ptys(dev_dir='/dev'):
    """How many pty pairs the kernel can hand out: minors from 0 whose two nodes exist."""
    names = _names(dev_dir)
    count = 0
    while count < len(TTY_LETTERS) * PTYS_PER_GROUP and all(name in names for name in pty_name(count)):
        count += 1
    return count


def interfaces_of(vm):
    """The interfaces a planned VM takes (one tap each): `interfaces` as a list or a count, else 1."""
    interfaces = vm.get('interfaces', 1) if isinstance(vm, dict) else 1
    if isinstance(interfaces, (list, tuple)):
        return len(interfaces)
    try:
        return int(interfaces)
    except (TypeError, ValueError):
        return 1


def taps_needed(vms):
    """Taps for the VMs that may run (every VM not `absent`)."""
    return sum(interfaces_of(vm) for vm in planned(vms))


def planned(vms):
    """The VMs a host must be able to run: every entry whose state is not `absent`."""
    return [vm for vm in vms or [] if not (isinstance(vm, dict) and vm.get('state') == 'absent')]


def makedev_pty_args(have, needed):
    """MAKEDEV arguments (ptyN groups) that bring `have` usable pairs up to `needed`."""
    if needed <= have:
        return []
    first = have // PTYS_PER_GROUP
    last = (needed - 1) // PTYS_PER_GROUP
    return ['pty%d' % group for group in range(first, min(last, len(TTY_LETTERS) - 1) + 1)]
