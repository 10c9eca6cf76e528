# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A controller-side lock held by one ansible-playbook run from one task to a later one.

A playbook that keeps a journal on the controller (playbooks/migrate.yml) must not run twice at
once: two runs would move the same VM from the same journal. An flock(2) cannot be held across
tasks (each task runs in its own worker process), so the lock is a file naming its holder, the
ansible-playbook process: pid, host name, and the process's start (on Linux the boot id and
/proc/<pid>/stat start time, so a pid used again by another process is not mistaken for the
holder). A run that is killed or fails leaves the file; the next run on the same host finds its
holder gone and takes the lock over, naming the run it replaced. A holder on another host (a
journal on a shared home) cannot be checked: the lock is refused with the holder named.

The check-and-replace is serialised by an flock on the lock's directory, which the kernel releases
when the worker ends, so two runs that both find a stale lock do not both take it.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import multiprocessing
import os
import socket

from ansible_collections.openbsd.vmm.plugins.module_utils.processes import process_alive


class RunLockHeld(Exception):
    """Another live run holds the lock, or one on another host that cannot be checked."""


def process_start(pid):
    """A token that changes when the pid is used again: boot id and start time in ticks, or None without /proc."""
    try:
        with open('/proc/sys/kernel/random/boot_id') as boot:
            boot_id = boot.read().strip()
        with open('/proc/%d/stat' % pid) as stat:
            # the command (field 2) may hold spaces and parentheses: count from the last ')'
            fields = stat.read().rsplit(')', 1)[1].split()
        start = fields[19]
    except (OSError, IndexError):
        return None
    return '%s:%s' % (boot_id, start)


def run_pid():
    """The pid of the ansible-playbook run this task belongs to: the process that forked this worker.

    Read from multiprocessing (the worker is its Process) and checked against os.getppid(): once that run has died
    (killed with its process group while this worker still ran) the worker is reparented, to pid 1 or a subreaper,
    and must not take or replace a lock in the name of that other process. Raises RunLockHeld then."""
    parent = multiprocessing.parent_process()
    run = parent.pid if parent is not None else os.getppid()
    if os.getppid() != run:
        raise RunLockHeld('the ansible-playbook run of this task (pid %d) has ended; nothing was done' % run)
    return run


def holder_of(pid, command):
    """This controller's description of process pid as a lock holder."""
    return {
        'pid': pid,
        'host': socket.gethostname(),
        'start': process_start(pid),
        'since': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'command': command[:400],
    }


def same_run(a, b):
    return a.get('host') == b.get('host') and a.get('pid') == b.get('pid') and a.get('start') == b.get('start')


def holder_gone(holder):
    """True when holder (read from a lock file) is a process of this host that no longer runs."""
    if holder.get('host') != socket.gethostname() or not isinstance(holder.get('pid'), int):
        return False
    if not process_alive(holder['pid']):
        return True
    start = holder.get('start')
    return start is not None and process_start(holder['pid']) not in (None, start)


def describe(holder):
    return 'pid %s on %s since %s (%s)' % (holder.get('pid'), holder.get('host'), holder.get('since'),
                                           holder.get('command') or 'command unknown')


def _read(path):
    try:
        with open(path) as lock:
            holder = json.load(lock)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        # a file that is not a lock this code wrote: never taken over blindly
        return {'unreadable': str(error)}
    return holder if isinstance(holder, dict) else {'unreadable': 'not a JSON object'}


class _DirectoryGuard:
    def __init__(self, path):
        self.path = os.path.dirname(path) or '.'
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        os.close(self.fd)


def acquire(path, me, check_mode=False):
    """Take the lock at path for holder me (holder_of). Returns (changed, replaced holder or None)."""
    with _DirectoryGuard(path):
        current = _read(path)
        if current is not None and same_run(current, me):
            return False, None
        if current is not None and 'unreadable' in current:
            raise RunLockHeld('%s is not a lock this collection wrote (%s): remove it if no run is under way'
                              % (path, current['unreadable']))
        if current is not None and not holder_gone(current):
            raise RunLockHeld('another run holds %s: %s; wait for it to end, or remove the file if that run is gone'
                              % (path, describe(current)))
        if not check_mode:
            temporary = '%s.%d.tmp' % (path, os.getpid())
            with open(temporary, 'w') as lock:
                json.dump(me, lock, indent=1, sort_keys=True)
                lock.write('\n')
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        return True, current


def release(path, me, check_mode=False):
    """Remove the lock at path if me holds it. Returns whether it was removed."""
    with _DirectoryGuard(path):
        current = _read(path)
        if current is None or not same_run(current, me):
            return False
        if not check_mode:
            os.unlink(path)
        return True
