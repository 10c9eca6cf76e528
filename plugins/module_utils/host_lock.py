# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The host lock: one lock file beside vm.conf around every read-modify-write of the host's VM state.

Two runs that each read vm.conf, add their VM and write it back lose one VM unless the whole
read → write → ``vmd -n`` → reload → start/stop sequence is serialised. The lock is an flock(2)
on ``.<vm.conf name>.lock`` in vm.conf's directory; it is released by the kernel when the
holder exits, however it exits (kill -9 included), so a stale lock never blocks the host.
The holder writes its pid and argv into the file so that a run that gives up can name it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time


class HostLockTimeout(Exception):
    """Another run held the lock for longer than the caller was willing to wait."""


def lock_path(vm_conf):
    directory, name = os.path.split(os.path.abspath(vm_conf))
    return os.path.join(directory, '.%s.lock' % name)


class HostLock:
    """``with HostLock('/etc/vm.conf', timeout=60):`` waits (bounded) for the lock, holds it, releases it."""

    def __init__(self, vm_conf, timeout=60.0, poll_interval=0.1):
        self.path = lock_path(vm_conf)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.fd = None
        self.waited = 0.0

    def acquire(self):
        # O_NOFOLLOW: never write through a link someone put in the lock's place.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        began = time.monotonic()
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - began >= self.timeout:
                        raise HostLockTimeout('another run holds the host lock %s (%s) and did not release it within '
                                              'lock_timeout=%s seconds; nothing was changed'
                                              % (self.path, _holder(fd), self.timeout))
                    time.sleep(self.poll_interval)
            self.waited = time.monotonic() - began
            # Over whatever a holder killed before release() left, then cut to this holder's length.
            holder = ('pid %d: %s\n' % (os.getpid(), ' '.join(sys.argv)[:400])).encode('utf-8', 'replace')
            os.pwrite(fd, holder, 0)
            os.ftruncate(fd, len(holder))
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        os.close(self.fd)           # closing the descriptor releases the flock
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def _holder(fd):
    try:
        text = os.pread(fd, 512, 0).decode('utf-8', 'replace').strip()
    except OSError:
        text = ''
    return 'held by ' + text if text else 'holder unknown'
