# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""vmm_vm's lifecycle logic: validation (every error names VM and field), the state machine, stopping."""
from __future__ import annotations

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import vm_lifecycle as lc
from ansible_collections.openbsd.vmm.plugins.module_utils import vmconf as c
from ansible_collections.openbsd.vmm.plugins.module_utils import vmctl as v
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import MIB

HAND = '''\
switch "uplink" {
\tinterface veb0
}
vm "hand" {
\tdisk "/var/vmm/hand.img"
\tinterface { switch "uplink" lladdr fe:e1:ba:d0:00:99 }
}
'''
EXISTING = {'/var/vmm/a.qcow2', '/var/vmm/b.qcow2', '/var/vmm/c.qcow2', '/var/vmm/d.qcow2', '/var/vmm/e.qcow2', '/bsd.rd', '/x.iso'}


def conf(text=HAND):
    return c.VmConf('/etc/vm.conf', text)


def requests(*entries, vmconf=None):
    return lc.build_requests(list(entries), vmconf or conf(), path_exists=EXISTING.__contains__)


def entry(name='web1', **options):
    options.setdefault('state', 'present')
    options.setdefault('disks', ['/var/vmm/a.qcow2'])
    return dict(name=name, **options)


def problems_of(*entries, vmconf=None):
    with pytest.raises(lc.ValidationError) as info:
        requests(*entries, vmconf=vmconf)
    return info.value.problems


# --- validation: each bad input is refused with the VM and the field named -----------------

BAD_INPUTS = [
    (dict(name='-bad'), "vm '-bad': name: a VM name must not start with"),
    (dict(name='x' * 64), 'name: a VM name is at most 63 characters'),
    (dict(name='has space'), "name: a VM name may contain only"),
    (dict(name='123'), 'name: a purely numeric VM name'),
    (dict(memory='1024'), "vm 'web1': memory: '1024' is 1024 bytes; vmd needs at least 1M"),
    (dict(memory='129G'), "vm 'web1': memory: '129G' is larger than the limit of 128G"),
    (dict(memory='1X'), "vm 'web1': memory: invalid size '1X'"),
    (dict(cpus=2), "vm 'web1': cpus: the host's vmd does not support setting the number of CPUs"),
    (dict(disks=['/var/vmm/%s.qcow2' % n for n in 'abcde']), "vm 'web1': disks: 5 disks given; vmd supports at most 4"),
    (dict(disks=['/var/vmm/missing.qcow2']), "vm 'web1': disks: /var/vmm/missing.qcow2 does not exist"),
    (dict(disks=['relative.img']), "vm 'web1': disks: 'relative.img' must be an absolute path"),
    (dict(disks=[{'path': '/var/vmm/a.qcow2', 'format': 'vmdk'}]), "disks: /var/vmm/a.qcow2: format 'vmdk' must be one of raw, qcow2"),
    (dict(disks=[]), "vm 'web1': disks: a VM needs at least one disk or a cdrom"),
    (dict(interfaces=[{}] * 5), "vm 'web1': interfaces: 5 interfaces given; vmd supports at most 4"),
    (dict(interfaces=[{'lladdr': 'fe:e1:ba:d0:00'}]), "vm 'web1': interfaces[0].lladdr: 'fe:e1:ba:d0:00' is not a MAC address"),
    (dict(interfaces=[{'lladdr': 'zz:e1:ba:d0:00:01'}]), "interfaces[0].lladdr: 'zz:e1:ba:d0:00:01' is not a MAC address"),
    (dict(interfaces=[{'lladdr': '01:00:5e:00:00:01'}]), 'interfaces[0].lladdr: 01:00:5e:00:00:01 is a multicast address'),
    (dict(interfaces=[{'lladdr': 'FE:E1:BA:D0:00:99'}]), "vm 'web1': interfaces[0].lladdr: fe:e1:ba:d0:00:99 is also used by vm 'hand' (/etc/vm.conf:4)"),
    (dict(interfaces=[{'switch': 'nosuch'}]), "vm 'web1': interfaces[0].switch: switch 'nosuch' is not defined in /etc/vm.conf (defined: uplink)"),
    (dict(interfaces=[{'group': 'vmnet0'}]), "interfaces[0].group: 'vmnet0' is not an interface group name"),
    (dict(interfaces=[{'rdomain': 256}]), 'interfaces[0].rdomain: 256 must be a number from 0 to 255'),
    (dict(owner='joe:staff:x'), "vm 'web1': owner: 'joe:staff:x' is not an owner"),
    (dict(owner='no-such-user-here'), "vm 'web1': owner: user 'no-such-user-here' does not exist on this host"),
    (dict(owner=':no-such-group-here'), "owner: group 'no-such-group-here' does not exist"),
    (dict(boot='/missing/bsd.rd'), "vm 'web1': boot: /missing/bsd.rd does not exist"),
    (dict(state='running', cdrom='/missing.iso'), "vm 'web1': cdrom: /missing.iso does not exist"),
    (dict(state='stopped', enabled=True), "vm 'web1': enabled: enabled: true with state: stopped cannot hold"),
    (dict(instance_of='nosuch'), "vm 'web1': instance_of: the parent VM 'nosuch' is not defined in /etc/vm.conf"),
    (dict(name='hand', memory='1G'), "vm 'hand': name: the VM is defined by hand outside the managed part of vm.conf (/etc/vm.conf:4)"),
    (dict(name='hand', state='absent'), "vm 'hand': state: the VM is defined by hand"),
    (dict(disks=['/var/vmm/a"b\\']), "disks: '/var/vmm/a\"b\\\\' cannot be written to vm.conf: a trailing backslash"),
]


@pytest.mark.parametrize('bad, message', BAD_INPUTS, ids=[case[1][:40] for case in BAD_INPUTS])
def test_bad_input_is_refused_naming_vm_and_field(bad, message):
    problems = problems_of(entry(**bad))
    assert any(message in problem for problem in problems), problems


def test_all_problems_are_reported_at_once():
    problems = problems_of(entry('a', memory='1'), entry('b', cpus=4), entry('c', disks=['/nope']))
    assert [problem.split(':')[0] for problem in problems] == ["vm 'a'", "vm 'b'", "vm 'c'"]


def test_duplicate_names_and_lladdrs_within_one_run():
    problems = problems_of(entry('a'), entry('a'))
    assert problems == ["vm 'a': name: listed more than once in vms"]
    mac = [{'lladdr': 'fe:e1:ba:d0:00:01'}]
    problems = problems_of(entry('a', interfaces=mac), entry('b', interfaces=mac))
    assert "vm 'a': interfaces[0].lladdr: fe:e1:ba:d0:00:01 is also used by vm 'b'" in problems


def test_lladdr_of_a_vm_being_redefined_or_removed_is_free_again():
    block = c.render_managed_block([c.VmDefinition(name='old', disks=[c.Disk('/var/vmm/b.qcow2')],
                                                   interfaces=[c.Interface(lladdr='fe:e1:ba:d0:00:05')])])
    vmconf = conf(HAND + block)
    mac = [{'lladdr': 'fe:e1:ba:d0:00:05'}]
    assert problems_of(entry('new', interfaces=mac), vmconf=vmconf) == [
        "vm 'new': interfaces[0].lladdr: fe:e1:ba:d0:00:05 is also used by vm 'old' (/etc/vm.conf:9)"]
    requests(entry('new', interfaces=mac), dict(name='old', state='absent'), vmconf=vmconf)
    requests(entry('old', interfaces=mac), vmconf=vmconf)


def test_a_valid_request_becomes_the_definition_to_write():
    request, = requests(entry(state='running', memory='1.5G', cpus=1, owner='0', boot='/bsd.rd', boot_device='net',
                              disks=['/var/vmm/a.qcow2', {'path': '/var/vmm/b.qcow2', 'format': 'qcow2'}],
                              interfaces=[{'switch': 'uplink', 'lladdr': 'FE:E1:BA:D0:0:1', 'locked': True}, {'local': True}]))
    assert request.definition == c.VmDefinition(
        name='web1', enabled=True, memory=1536 * MIB, boot='/bsd.rd', boot_device='net', owner='0',
        disks=[c.Disk('/var/vmm/a.qcow2'), c.Disk('/var/vmm/b.qcow2', 'qcow2')],
        interfaces=[c.Interface(switch='uplink', lladdr='fe:e1:ba:d0:00:01', locked=True), c.Interface(local=True)])


@pytest.mark.parametrize('state, current, expected', [
    ('running', None, True), ('paused', None, True), ('restarted', None, True), ('stopped', None, False),
    ('present', None, False), ('present', True, True), ('present', False, False), ('stopped', True, False),
])
def test_enable_flag_follows_the_state_so_reload_starts_nothing_unasked(state, current, expected):
    vmconf = conf()
    if current is not None:
        vmconf = conf(HAND + c.render_managed_block([c.VmDefinition(name='web1', enabled=current, disks=[c.Disk('/var/vmm/a.qcow2')])]))
    request, = requests(entry(state=state), vmconf=vmconf)
    assert request.definition.enabled is expected


def test_left_out_options_keep_the_managed_value_and_empty_string_removes():
    current = c.VmDefinition(name='web1', memory=2048 * MIB, cdrom='/x.iso', owner='0', disks=[c.Disk('/var/vmm/a.qcow2')])
    vmconf = conf(HAND + c.render_managed_block([current]))
    request, = requests(dict(name='web1', state='present'), vmconf=vmconf)
    assert request.definition == current
    request, = requests(dict(name='web1', state='present', cdrom='', memory='1G'), vmconf=vmconf)
    assert (request.definition.cdrom, request.definition.memory, request.definition.owner) == (None, 1024 * MIB, '0')


def test_hand_written_vm_run_state_only():
    request, = requests(dict(name='hand', state='running'))
    assert request.definition is None and request.hand_written.name == 'hand'


def test_merge_entries_uses_top_level_values_as_defaults():
    params = dict(name=None, state='running', memory='1G', stop_timeout=5, force=True, restart_on_change=False, vms=[
        dict(name='a', state=None, memory=None, stop_timeout=None, force=None),
        dict(name='b', state='stopped', memory='2G', stop_timeout=9, force=False)])
    a, b = lc.merge_entries(params)
    assert (a['state'], a['memory'], a['stop_timeout'], a['force']) == ('running', '1G', 5, True)
    assert (b['state'], b['memory'], b['stop_timeout'], b['force']) == ('stopped', '2G', 9, False)


# --- the state machine: from every state to every state ------------------------------------

def status(state):
    if state is None:
        return None
    live = state in v.LIVE_STATES
    # a running VM of 512M shows vmm(4)'s 516M (vmctl.vmm_memory_size), a stopped one its configured 512M
    return v.VmStatus(id=1, pid=100 if live else None, vcpus=1, maxmem=(516 if live else 512) * MIB, curmem=512 * MIB if live else None,
                      tty='ttyp0' if live else None, owner='root', owner_group=None, state=state, name='web1')


TRANSITIONS = {
    # (desired, current): steps
    ('present', None): [], ('present', 'stopped'): [], ('present', 'running'): [], ('present', 'paused'): [],
    ('running', None): ['start'], ('running', 'stopped'): ['start'], ('running', 'running'): [],
    ('running', 'paused'): ['unpause'], ('running', 'stopping'): ['stop', 'start'], ('running', 'waiting'): ['start'],
    ('stopped', None): [], ('stopped', 'stopped'): [], ('stopped', 'running'): ['stop'], ('stopped', 'paused'): ['stop'],
    ('stopped', 'stopping'): ['stop'], ('stopped', 'waiting'): ['stop'],
    ('paused', None): ['start', 'pause'], ('paused', 'stopped'): ['start', 'pause'], ('paused', 'running'): ['pause'],
    ('paused', 'paused'): [], ('paused', 'stopping'): ['stop', 'start', 'pause'], ('paused', 'waiting'): ['start', 'pause'],
    ('restarted', None): ['start'], ('restarted', 'stopped'): ['start'], ('restarted', 'running'): ['stop', 'start'],
    ('restarted', 'paused'): ['stop', 'start'], ('restarted', 'stopping'): ['stop', 'start'],
    ('absent', None): [], ('absent', 'stopped'): [], ('absent', 'running'): ['stop'], ('absent', 'paused'): ['stop'],
}


@pytest.mark.parametrize('desired, current', sorted(TRANSITIONS, key=str))
def test_every_transition(desired, current):
    request, = requests(entry(state=desired))
    plan = lc.plan_vm(request, status(current), request.definition)
    assert plan.steps == TRANSITIONS[(desired, current)]
    assert plan.unpause_first == (current == 'paused' and 'stop' in plan.steps)
    assert not plan.restart_required


@pytest.mark.parametrize('state, restart_on_change, steps, required', [
    ('running', False, [], True), ('running', True, ['stop', 'start'], False),
    ('present', False, [], True), ('present', True, ['stop', 'start'], False),
    ('stopped', False, ['stop'], False), ('restarted', False, ['stop', 'start'], False),
])
def test_changed_definition_of_a_running_vm(state, restart_on_change, steps, required):
    request, = requests(entry(state=state, memory='1G', restart_on_change=restart_on_change))
    old = c.VmDefinition(name='web1', enabled=request.definition.enabled, memory=512 * MIB, disks=request.definition.disks)
    plan = lc.plan_vm(request, status('running'), old)
    assert (plan.config_changed, plan.steps, plan.restart_required) == (True, steps, required)


# --- stopping: stop -w bounded by stop_timeout, -f only when force ---------------------------

class FakeVmctl:
    """Scripted vmctl: ``script`` maps an argv tuple to an exception to raise (or None)."""

    def __init__(self, script, states=()):
        self.script = dict(script)
        self.states = list(states)
        self.calls = []

    def stop(self, name, wait=False, force=False, timeout=None):
        argv = ('stop', '-' + ('f' if force else '') + ('w' if wait else ''), name)
        self.calls.append(argv)
        error = self.script.get(argv)
        if error is not None:
            raise error(argv[0], argv=list(argv))

    def find(self, name):
        self.calls.append(('status',))
        state = self.states.pop(0) if self.states else 'stopping'
        return status(state)


def converger(fake):
    return lc.Converger(module=None, vmctl=fake, vm_conf_path='/etc/vm.conf', keep_backup=False, dev_dir='/dev', lock_timeout=60,
                        staggered_start=False, poll_interval=0)


def test_stop_uses_stop_w_only():
    fake = FakeVmctl({})
    converger(fake).stop_vm('web1', 5, force=False)
    assert fake.calls == [('stop', '-w', 'web1')]


def test_stuck_stopping_without_force_fails_clearly():
    fake = FakeVmctl({('stop', '-w', 'web1'): v.VmctlTimeout})
    with pytest.raises(lc.StuckStopping, match=r"vm 'web1' is stuck in state stopping: .*stop_timeout=5 .*force: true"):
        converger(fake).stop_vm('web1', 5, force=False)
    assert fake.calls == [('stop', '-w', 'web1')]


def test_stuck_stopping_with_force_terminates():
    fake = FakeVmctl({('stop', '-w', 'web1'): v.VmctlTimeout})
    converger(fake).stop_vm('web1', 5, force=True)
    assert fake.calls == [('stop', '-w', 'web1'), ('stop', '-fw', 'web1')]


def test_force_that_also_times_out_is_an_error():
    fake = FakeVmctl({('stop', '-w', 'web1'): v.VmctlTimeout, ('stop', '-fw', 'web1'): v.VmctlTimeout})
    with pytest.raises(lc.StuckStopping, match='even with vmctl stop -f'):
        converger(fake).stop_vm('web1', 5, force=True)


def test_already_stopping_is_watched_until_down_not_waited_on():
    fake = FakeVmctl({('stop', '-w', 'web1'): v.VmStopInProgress}, states=['stopping', 'stopped'])
    converger(fake).stop_vm('web1', 5, force=False)
    assert fake.calls == [('stop', '-w', 'web1'), ('status',), ('status',)]


@pytest.mark.parametrize('gone', [v.VmNotRunning, v.VmNotFound])
@pytest.mark.parametrize('force', [False, True])
def test_not_running_by_now_is_fine(gone, force):
    fake = FakeVmctl({('stop', '-w', 'web1'): gone})
    converger(fake).stop_vm('web1', 5, force=force)
    # Nothing left to stop: no -f even with force, no status polling.
    assert fake.calls == [('stop', '-w', 'web1')]


def test_running_vm_with_older_memory_still_needs_a_restart_on_later_runs():
    request, = requests(entry(state='running', memory='1G'))
    running_old = status('running')         # vmctl status shows 516M (a 512M VM), the definition says 1G
    plan = lc.plan_vm(request, running_old, request.definition)
    assert (plan.config_changed, plan.steps, plan.restart_required) == (False, [], True)
    request, = requests(entry(state='running', memory='1G', restart_on_change=True))
    plan = lc.plan_vm(request, running_old, request.definition)
    assert (plan.steps, plan.restart_required) == (['stop', 'start'], False)
    request, = requests(entry(state='running', memory='512M'))
    assert not lc.plan_vm(request, running_old, request.definition).restart_required


# --- strict input: a final line break never passes (`$` matches before it; fullmatch does not) ------
@pytest.mark.parametrize('bad, message', [
    (dict(name='web1\n'), 'name: a VM name may contain only'),
    (dict(interfaces=[{'lladdr': 'fe:e1:ba:d0:00:01\n'}]), "interfaces[0].lladdr: 'fe:e1:ba:d0:00:01\\n' is not a MAC address"),
    (dict(interfaces=[{'lladdr': 'ff:ff:ff:ff:ff:ff'}]), 'interfaces[0].lladdr: ff:ff:ff:ff:ff:ff is a multicast address'),
    (dict(interfaces=[{'group': 'vmnet\n'}]), "interfaces[0].group: 'vmnet\\n' is not an interface group name"),
    (dict(owner='root\n'), "owner: 'root\\n' is not an owner"),
    (dict(memory='1G\n'), "memory: invalid size '1G\\n': blanks and line breaks are not allowed"),
    (dict(disks=['/var/vmm/a.qcow2\n']), 'disks: '),
], ids=['name', 'lladdr', 'multicast', 'group', 'owner', 'memory', 'disk-path'])
def test_a_trailing_line_break_is_refused(bad, message):
    name = bad.pop('name', 'web1')
    problems = problems_of(entry(name, **bad))
    assert any(message in problem for problem in problems), problems


# vmd titles its own processes "vmd: <title>" (vmd.c procs[], proc.c proc_setup) and each VM "vmd: <name>"
# (vm.c setproctitle): a VM with a title's name makes its owner's `pkill -xf "vmd: <name>"` rule match vmd itself.
@pytest.mark.parametrize('title', ['parent', 'priv', 'control', 'vmm', 'agentx'])
def test_a_vmd_process_title_is_refused_as_a_name(title):
    problems = problems_of(entry(title))
    assert problems == ["vm %r: name: %r is the title of one of vmd's own processes (vmd: %s); a VM of that name "
                        "would make its owner's pkill rule match vmd itself" % (title, title, title)]


def test_a_name_that_only_contains_a_title_is_accepted():
    assert [request.name for request in requests(entry('vmm1'), entry('myvmm', disks=['/var/vmm/b.qcow2']))] == ['vmm1', 'myvmm']
