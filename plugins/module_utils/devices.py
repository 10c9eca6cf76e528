# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Device nodes vmd needs on the host: /dev/tapN for the VMs' interfaces, pty pairs for their consoles.

vmd opens a tap for every interface of a VM it starts (config.c config_setvm). Without a
named tap it calls vmm.c ``opentap``, which opens /dev/tap0, tap1, ... in turn, skips a busy
node and stops at the first node that does not exist: nodes after a gap are never used, and
running out fails the start with ENOENT half-way through a fleet. A stock install has few tap
nodes; more are made with ``cd /dev && sh MAKEDEV tapN ...``.

Consoles: vmd takes a pty per VM with openpty(3) (ptm(4), PTMGET). The kernel
(sys/kern/tty_pty.c ``pty_getfree()``, ``ptydevname()``, ``ptm_vn_open()``)
picks the lowest free minor and opens its /dev/ptyXY and /dev/ttyXY nodes by
name, so the usable pairs are the minors from 0 whose two nodes exist, in
the kernel's order: letter ``TTY_LETTERS[minor // 62]``, suffix
``TTY_SUFFIX[minor % 62]``. MAKEDEV's ``ptyN`` makes group N (62 pairs).
"""

from __future__ import annotations

import os

from dataclasses import dataclass

MAX_TAP = 256           # vmd.h MAX_TAP: opentap's upper bound


def tap_nodes(dev_dir='/dev'):
    """The number of tap nodes opentap can reach: tap0, tap1, ... up to the first that does not exist."""
    count = 0
    while count < MAX_TAP and os.path.exists(os.path.join(dev_dir, 'tap%d' % count)):
        count += 1
    return count


def makedev_command(first, count, dev_dir='/dev'):
    """The command that makes ``count`` more nodes from tap<first> on."""
    names = ' '.join('tap%d' % index for index in range(first, first + count))
    return 'cd %s && sh MAKEDEV %s' % (dev_dir, names)


@dataclass
class TapCapacity:
    """Tap nodes against the interfaces of the VMs to start: ``problem`` is None when they fit."""

    nodes: int              # tap0..tap<nodes-1> exist
    held: int               # taps held by VMs that keep running
    needed: int             # interfaces of the VMs to start
    dev_dir: str = '/dev'

    @property
    def free(self):
        return max(self.nodes - self.held, 0)

    @property
    def missing(self):
        return max(self.needed - self.free, 0)

    @property
    def problem(self):
        if not self.missing:
            return None
        if self.held + self.needed > MAX_TAP:
            return ('%d tap devices are needed (%d for the VMs to start, %d held by running VMs) but vmd opens at most %d'
                    % (self.held + self.needed, self.needed, self.held, MAX_TAP))
        return ('the VMs to start have %d interfaces, but only %d tap devices are free: %s has %d (tap0 up to the first '
                'missing node, where vmd stops looking), %d of them held by running VMs; %d missing. Create them with: %s'
                % (self.needed, self.free, self.dev_dir, self.nodes, self.held, self.missing,
                   makedev_command(self.nodes, self.missing, self.dev_dir)))


def tap_capacity(needed, held, dev_dir='/dev'):
    """Count the nodes in ``dev_dir`` and compare with ``needed`` interfaces beside ``held`` busy taps."""
    return TapCapacity(nodes=tap_nodes(dev_dir), held=held, needed=needed, dev_dir=dev_dir)


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
