# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host lock around vm.conf's read-modify-write: real flock(2) contention from another descriptor and process."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import sys

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import host_lock
from ansible_collections.openbsd.vmm.plugins.module_utils.host_lock import HostLock, HostLockTimeout, lock_path

ARGV = ['ansible-playbook', 'site.yml']


class FakeTime:
    """host_lock's clock: it only moves when the lock sleeps, so waits and timeouts are exact."""

    def __init__(self, now=100.0, on_sleep=None):
        self.now, self.sleeps, self.on_sleep, self.reads = now, [], on_sleep, 0

    def monotonic(self):
        self.reads += 1
        if self.reads > 100:
            raise AssertionError('the lock polled more than 100 times')
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


@pytest.fixture
def conf(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, 'argv', list(ARGV))
    return tmp_path / 'vm.conf'


def hold(path, text=''):
    """Another open file description holding the lock, as another run would."""
    handle = open(path, 'a+')
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if text:
        handle.truncate(0)
        handle.write(text)
        handle.flush()
    return handle


def is_free(path):
    with open(path, 'a') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def open_fds():
    return sorted(os.listdir('/proc/self/fd' if os.path.isdir('/proc/self/fd') else '/dev/fd'))


def test_the_lock_file_is_a_hidden_file_beside_vm_conf(tmp_path, monkeypatch):
    assert lock_path('/etc/vm.conf') == '/etc/.vm.conf.lock'
    monkeypatch.chdir(tmp_path)
    assert lock_path('vm.conf') == str(tmp_path / '.vm.conf.lock')


def test_the_holder_writes_its_pid_and_argv_into_a_private_file_and_empties_it_on_release(conf):
    path = conf.parent / '.vm.conf.lock'
    with HostLock(str(conf)) as lock:
        assert lock.path == str(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert path.read_text() == 'pid %d: ansible-playbook site.yml\n' % os.getpid()
        assert not is_free(path)
        assert lock.waited < 1.0
    assert is_free(path)
    assert path.read_text() == ''
    assert lock.fd is None


def test_a_killed_holders_longer_text_is_replaced_not_appended_to(conf):
    path = conf.parent / '.vm.conf.lock'
    path.write_text('pid 4242: ansible-playbook a-much-longer-command-line.yml --limit web\n')
    with HostLock(str(conf)):
        assert path.read_text() == 'pid %d: ansible-playbook site.yml\n' % os.getpid()


def test_the_argv_written_is_cut_at_400_characters(conf, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['x' * 250, 'y' * 250])
    with HostLock(str(conf)):
        written = (conf.parent / '.vm.conf.lock').read_text()
    # 250 x, a space, then 149 y: 400 characters of the joined argv.
    assert written == 'pid %d: %s %s\n' % (os.getpid(), 'x' * 250, 'y' * 149)


def test_a_link_in_the_locks_place_is_refused_and_its_target_untouched(conf, tmp_path):
    target = tmp_path / 'precious'
    target.write_text('keep\n')
    os.symlink(str(target), str(tmp_path / '.vm.conf.lock'))
    with pytest.raises(OSError):
        HostLock(str(conf)).acquire()
    assert target.read_text() == 'keep\n'


def test_release_is_idempotent_and_a_release_without_acquire_does_nothing(conf):
    lock = HostLock(str(conf))
    lock.release()
    assert lock.fd is None
    lock.acquire()
    lock.release()
    lock.release()
    assert lock.fd is None
    assert is_free(conf.parent / '.vm.conf.lock')


def test_a_held_lock_times_out_naming_the_lock_path_and_the_holder(conf, monkeypatch):
    path = conf.parent / '.vm.conf.lock'
    clock = FakeTime()
    monkeypatch.setattr(host_lock, 'time', clock)
    before = open_fds()
    with hold(path, 'pid 4242: ansible-playbook other.yml\n'):
        with pytest.raises(HostLockTimeout) as caught:
            HostLock(str(conf), timeout=1.0, poll_interval=0.25).acquire()
    assert str(caught.value) == ('another run holds the host lock %s (held by pid 4242: ansible-playbook other.yml) and did '
                                 'not release it within lock_timeout=1.0 seconds; nothing was changed' % path)
    # Tried at 0, 0.25, 0.5, 0.75 and 1.0 s: four sleeps, and the fifth try gives up at the timeout itself.
    assert clock.sleeps == [0.25, 0.25, 0.25, 0.25]
    assert open_fds() == before


def test_lock_timeout_0_tries_once(conf, monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(host_lock, 'time', clock)
    with hold(conf.parent / '.vm.conf.lock'):
        with pytest.raises(HostLockTimeout, match=r'\(holder unknown\) and did not release it within lock_timeout=0 seconds'):
            HostLock(str(conf), timeout=0).acquire()
    assert clock.sleeps == []


def test_the_holder_text_named_is_at_most_512_bytes(conf, monkeypatch):
    monkeypatch.setattr(host_lock, 'time', FakeTime())
    with hold(conf.parent / '.vm.conf.lock', 'z' * 600):
        with pytest.raises(HostLockTimeout) as caught:
            HostLock(str(conf), timeout=0).acquire()
    assert '(held by %s)' % ('z' * 512) in str(caught.value)
    assert 'z' * 513 not in str(caught.value)


def test_a_lock_released_while_waiting_is_taken_and_the_wait_measured(conf, monkeypatch):
    path = conf.parent / '.vm.conf.lock'
    holder = hold(path, 'pid 4242: ansible-playbook other.yml\n')
    clock = FakeTime(on_sleep=lambda count: count == 2 and holder.close())
    monkeypatch.setattr(host_lock, 'time', clock)
    lock = HostLock(str(conf), timeout=10.0, poll_interval=0.25).acquire()
    try:
        assert clock.sleeps == [0.25, 0.25]
        assert lock.waited == 0.5
        assert not is_free(path)
        assert path.read_text() == 'pid %d: ansible-playbook site.yml\n' % os.getpid()
    finally:
        lock.release()


HOLDER = r'''
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b'pid %d: ansible-playbook other.yml\n' % os.getpid())
print('locked', flush=True)
time.sleep(60)
'''


def test_another_process_blocks_the_lock_until_it_is_killed(conf):
    """kill -9 of the holder leaves its text behind but the kernel drops its flock: the next run goes on."""
    path = conf.parent / '.vm.conf.lock'
    process = subprocess.Popen([sys.executable, '-c', HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == 'locked\n'
        with pytest.raises(HostLockTimeout, match=r'\(held by pid %d: ansible-playbook other.yml\)' % process.pid):
            HostLock(str(conf), timeout=0.2, poll_interval=0.05).acquire()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    with HostLock(str(conf), timeout=0) as lock:
        assert lock.waited < 1.0
        assert path.read_text() == 'pid %d: ansible-playbook site.yml\n' % os.getpid()
