# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's run lock (migrate.yml's journal): real processes as holders, alive, gone, and racing."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import time

import pytest

from ansible_collections.openbsd.vmm.plugins.plugin_utils import run_lock
from ansible_collections.openbsd.vmm.plugins.plugin_utils.run_lock import RunLockHeld, acquire, holder_of, release


@pytest.fixture
def lock(tmp_path):
    return str(tmp_path / 'fleet.vmm.migrate.json.lock')


@pytest.fixture
def sleeper():
    process = subprocess.Popen(['sleep', '60'])
    yield process
    process.kill()
    process.wait()


def gone_pid():
    process = subprocess.Popen(['true'])
    process.wait()
    return process.pid


def written(path, holder):
    with open(path, 'w') as handle:
        json.dump(holder, handle)


def read(path):
    with open(path) as handle:
        return json.load(handle)


def test_a_free_lock_is_taken_once_and_kept_by_its_run(lock):
    me = holder_of(os.getpid(), 'ansible-playbook migrate.yml')
    assert acquire(lock, me) == (True, None)
    assert read(lock) == me
    with open(lock) as handle:
        assert handle.read() == json.dumps(me, indent=1, sort_keys=True) + '\n'
    assert oct(os.stat(lock).st_mode & 0o777) == '0o600'
    # the next task of the same run
    assert acquire(lock, dict(me, since='later')) == (False, None)
    assert os.listdir(os.path.dirname(lock)) == [os.path.basename(lock)]


def test_a_live_run_holds_it_and_is_named(lock, sleeper):
    other = holder_of(sleeper.pid, 'ansible-playbook migrate.yml -e migrate_drain=true')
    written(lock, other)
    with pytest.raises(RunLockHeld) as refused:
        acquire(lock, holder_of(os.getpid(), 'me'))
    assert 'another run holds %s: pid %d on %s' % (lock, sleeper.pid, socket.gethostname()) in str(refused.value)
    assert 'migrate_drain=true' in str(refused.value)
    assert read(lock) == other
    assert sleeper.poll() is None       # asked whether it runs, not signalled


def test_the_lock_of_a_run_that_is_gone_is_taken_over_and_named(lock):
    dead = holder_of(gone_pid(), 'killed run')
    written(lock, dead)
    me = holder_of(os.getpid(), 'me')
    assert acquire(lock, me) == (True, dead)
    assert read(lock) == me


@pytest.mark.skipif(run_lock.process_start(os.getpid()) is None, reason='no /proc: a pid used again cannot be told apart')
def test_a_pid_used_again_by_another_process_is_not_the_holder(lock, sleeper):
    earlier = dict(holder_of(sleeper.pid, 'killed run'), start=run_lock.process_start(sleeper.pid) + '0')
    written(lock, earlier)
    assert acquire(lock, holder_of(os.getpid(), 'me'))[1] == earlier


def test_a_holder_on_another_host_cannot_be_checked_and_is_refused(lock):
    elsewhere = dict(holder_of(gone_pid(), 'run on a laptop'), host=socket.gethostname() + '-other')
    written(lock, elsewhere)
    with pytest.raises(RunLockHeld, match='remove the file if that run is gone'):
        acquire(lock, holder_of(os.getpid(), 'me'))
    assert read(lock) == elsewhere


@pytest.mark.parametrize('content', ['', 'not json', '[1, 2]'])
def test_a_file_this_code_did_not_write_is_never_taken(lock, content):
    with open(lock, 'w') as handle:
        handle.write(content)
    with pytest.raises(RunLockHeld, match='is not a lock this collection wrote'):
        acquire(lock, holder_of(os.getpid(), 'me'))
    with open(lock) as handle:
        assert handle.read() == content


def test_check_mode_writes_nothing(lock):
    me = holder_of(os.getpid(), 'me')
    assert acquire(lock, me, check_mode=True) == (True, None)
    assert not os.path.exists(lock)
    acquire(lock, me)
    assert release(lock, me, check_mode=True) is True
    assert os.path.exists(lock)


def test_release_removes_only_the_runs_own_lock(lock, sleeper):
    me = holder_of(os.getpid(), 'me')
    assert release(lock, me) is False
    other = holder_of(sleeper.pid, 'other run')
    written(lock, other)
    assert release(lock, me) is False
    assert read(lock) == other
    os.unlink(lock)
    acquire(lock, me)
    assert release(lock, me) is True
    assert not os.path.exists(lock)


def _race(lock, barrier, results):
    me = holder_of(os.getpid(), 'racer')
    barrier.wait()
    try:
        results.put(('took', acquire(lock, me)[0]))
    except RunLockHeld:
        results.put(('refused', None))
    barrier.wait()      # every racer stays alive until all have tried: the winner is a live holder


def test_of_runs_that_find_the_same_stale_lock_only_one_takes_it(lock, monkeypatch):
    written(lock, holder_of(gone_pid(), 'killed run'))
    holder_gone = run_lock.holder_gone

    def slow_holder_gone(holder):
        # a wide window between reading the stale lock and replacing it: every racer is in it at once unless the
        # check-and-replace is serialised
        time.sleep(0.2)
        return holder_gone(holder)

    monkeypatch.setattr(run_lock, 'holder_gone', slow_holder_gone)
    context = multiprocessing.get_context('fork')
    barrier, results = context.Barrier(4), context.Queue()
    # three racers in child processes and this process the fourth (so that a line coverage of this process sees the
    # lock's code run by this test)
    racers = [context.Process(target=_race, args=(lock, barrier, results)) for racer in range(3)]
    for racer in racers:
        racer.start()
    _race(lock, barrier, results)
    outcomes = sorted(results.get(timeout=30)[0] for racer in range(4))
    for racer in racers:
        racer.join(30)
    assert outcomes == ['refused', 'refused', 'refused', 'took']
    assert read(lock)['pid'] in [racer.pid for racer in racers] + [os.getpid()]


def test_a_relative_lock_path_is_locked_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    me = holder_of(os.getpid(), 'me')
    assert acquire('journal.lock', me) == (True, None)
    assert read(str(tmp_path / 'journal.lock')) == me


def test_a_holder_names_at_most_400_characters_of_its_command():
    assert holder_of(os.getpid(), 'x' * 1000)['command'] == 'x' * 400


@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='no /proc')
def test_a_process_start_is_stable_while_it_runs_and_later_for_a_later_process(sleeper):
    mine = run_lock.process_start(os.getpid())
    assert mine is not None and mine == run_lock.process_start(os.getpid())
    with open('/proc/sys/kernel/random/boot_id') as boot:
        assert mine.split(':')[0] == boot.read().strip()
    # the start time in clock ticks since boot (stat field 22): the sleeper started after this process
    assert int(run_lock.process_start(sleeper.pid).split(':')[1]) >= int(mine.split(':')[1])
    assert run_lock.process_start(gone_pid()) is None


@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='no /proc')
def test_a_process_start_is_read_past_a_command_name_with_parentheses(tmp_path):
    # /proc/<pid>/stat's second field is the command name in parentheses, which may hold ") ("
    odd = tmp_path / 'x) y (z'
    os.symlink(shutil.which('sleep'), str(odd))
    before = run_lock.process_start(os.getpid())
    process = subprocess.Popen([str(odd), '60'])
    try:
        after = subprocess.Popen(['sleep', '60'])
        try:
            ticks = [int(run_lock.process_start(pid).split(':')[1]) for pid in (os.getpid(), process.pid, after.pid)]
        finally:
            after.kill()
            after.wait()
    finally:
        process.kill()
        process.wait()
    assert before is not None and ticks == sorted(ticks)


def test_the_run_is_the_process_that_forked_the_worker():
    # in a child forked by multiprocessing (as Ansible's workers are) the run is the parent, this test process
    with multiprocessing.get_context('fork').Pool(1) as pool:
        assert pool.apply(run_lock.run_pid) == os.getpid()
    assert run_lock.run_pid() == os.getppid()   # not a multiprocessing child: its parent


def test_a_worker_whose_run_has_ended_takes_nothing(monkeypatch):
    # the run killed while this worker still ran: the worker was reparented (getppid 1) and acts for no one
    class Parent:
        pid = 4242
    monkeypatch.setattr(multiprocessing, 'parent_process', lambda: Parent)
    monkeypatch.setattr(os, 'getppid', lambda: 1)
    with pytest.raises(RunLockHeld, match=r'the ansible-playbook run of this task \(pid 4242\) has ended; nothing was done'):
        run_lock.run_pid()
    monkeypatch.setattr(os, 'getppid', lambda: 4242)
    assert run_lock.run_pid() == 4242
