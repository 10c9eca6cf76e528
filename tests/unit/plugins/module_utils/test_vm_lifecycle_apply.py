# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""vm_lifecycle at the edges the mutation run (scripts/mutate.py) found unguarded: a check that goes no further
after its problem, the Converger's vm.conf transaction (vmd -n, marker, backup, rollback), the vmctl calls it
makes, the warnings it gives, and the records it returns. The Converger runs against a scripted vmctl and
the parts of AnsibleModule it uses, in a temporary directory that stands for /etc."""
from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import vm_lifecycle as lc
from ansible_collections.openbsd.vmm.plugins.module_utils import vmconf as c
from ansible_collections.openbsd.vmm.plugins.module_utils import vmctl as v
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_vm_lifecycle import (
    HAND, conf, entry, problems_of, requests, status,
)

MIB = 1024 * 1024


# -- a check that found a problem goes no further ---------------------------------------------

def test_validation_error_text_joins_the_problems():
    assert str(lc.ValidationError(['a: x', 'b: y'])) == 'a: x; b: y'


def test_an_unknown_state_is_the_only_problem_of_its_entry():
    assert problems_of(dict(name='web1', state='started', memory='1')) == [
        "vm 'web1': state: must be one of present, running, stopped, restarted, paused, absent"]


def test_a_duplicate_entry_is_not_checked_again():
    assert problems_of(entry('a'), entry('a', memory='1')) == ["vm 'a': name: listed more than once in vms"]


def test_a_path_over_path_max_is_not_looked_up():
    assert problems_of(entry(disks=['/' + 'd' * 1023])) == ["vm 'web1': disks: %r is longer than PATH_MAX" % ('/' + 'd' * 39 + '...')]


def test_a_relative_boot_path_is_not_looked_up():
    assert problems_of(entry(boot='bsd.rd')) == ["vm 'web1': boot: 'bsd.rd' must be an absolute path"]


def test_too_many_disks_or_interfaces_is_one_problem():
    assert problems_of(entry(disks=['/var/vmm/%s.qcow2' % n for n in 'abcd'] + ['/var/vmm/missing'])) == [
        "vm 'web1': disks: 5 disks given; vmd supports at most 4"]
    assert problems_of(entry(interfaces=[{}] * 4 + [{'lladdr': 'bad'}])) == [
        "vm 'web1': interfaces: 5 interfaces given; vmd supports at most 4"]


def test_disk_checks_stop_at_the_first_problem_of_a_disk():
    assert problems_of(entry(disks=[{'path': '/var/vmm/missing', 'format': 'vmdk'}])) == [
        "vm 'web1': disks: /var/vmm/missing: format 'vmdk' must be one of raw, qcow2"]
    missing = "vm 'web1': disks: /var/vmm/missing does not exist (create it with openbsd.vmm.vmm_disk first)"
    assert problems_of(entry(disks=['/var/vmm/missing', '/var/vmm/missing'])) == [missing, missing]
    assert problems_of(entry(disks=['/var/vmm/a.qcow2', '/var/vmm/a.qcow2'])) == ["vm 'web1': disks: /var/vmm/a.qcow2 is listed twice"]


@pytest.mark.parametrize('spec, problem', [
    ({'switch': 5}, 'interfaces[0].switch: 5: not a string'),
    ({'switch': 'nosuch', 'lladdr': 'bad'}, "interfaces[0].switch: switch 'nosuch' is not defined in /etc/vm.conf (defined: uplink)"),
    ({'lladdr': '01:00:00:00:00:01', 'group': '0bad'}, 'interfaces[0].lladdr: 01:00:00:00:00:01 is a multicast address; a NIC needs a unicast one'),
    ({'group': '0bad', 'rdomain': -1}, "interfaces[0].group: '0bad' is not an interface group name (at most 15 characters, "
                                       "letters first, not ending in a digit)"),
], ids=['switch-type', 'switch', 'multicast', 'group'])
def test_interface_checks_stop_at_the_first_problem_of_an_interface(spec, problem):
    assert problems_of(entry(interfaces=[spec])) == ["vm 'web1': " + problem]


def test_boot_device_must_be_known():
    assert problems_of(entry(boot_device='floppy')) == ["vm 'web1': boot_device: must be one of disk, cdrom, net"]


def test_enabled_false_with_state_stopped_is_accepted():
    request, = requests(entry(state='stopped', enabled=False))
    assert request.definition.enabled is False


def test_the_same_lladdr_twice_in_one_vm_names_that_vm():
    mac = 'fe:e1:ba:d0:00:07'
    assert problems_of(entry(interfaces=[{'lladdr': mac}, {'lladdr': mac}])) == [
        "vm 'web1': interfaces[0].lladdr: %s is also used by vm 'web1'" % mac,
        "vm 'web1': interfaces[1].lladdr: %s is also used by vm 'web1'" % mac]


def family():
    return c.render_managed_block([c.VmDefinition(name='base', disks=[c.Disk('/var/vmm/b.qcow2')], allow_instance=['disk']),
                                   c.VmDefinition(name='child', instance_of='base', disks=[c.Disk('/var/vmm/c.qcow2')])])


def test_a_parent_with_instances_in_vm_conf_is_not_removed():
    assert problems_of(dict(name='base', state='absent'), vmconf=conf(HAND + family())) == [
        "vm 'base': state: cannot remove a VM that 'child' are instances of"]


def test_a_parent_removed_in_the_same_run_as_its_new_instance():
    block = c.render_managed_block([c.VmDefinition(name='base', disks=[c.Disk('/var/vmm/b.qcow2')])])
    assert problems_of(dict(name='base', state='absent'), entry('kid', instance_of='base'), vmconf=conf(HAND + block)) == [
        "vm 'kid': instance_of: the parent VM 'base' is being removed in the same run",
        "vm 'base': state: cannot remove a VM that 'kid' are instances of"]


def test_a_hand_written_parent_must_come_before_the_managed_part():
    parent = 'vm "base" {\n\tdisk "/var/vmm/b.qcow2"\n}\n'
    below = conf(HAND + c.render_managed_block([]) + parent)
    assert problems_of(entry('kid', instance_of='base'), vmconf=below) == [
        "vm 'kid': instance_of: the parent VM 'base' is defined below the managed part (/etc/vm.conf:10); vmd needs it first"]
    # right above the BEGIN line: a block of one option may stand on one line (parse.y vm_opts_l: vm_opts optnl)
    above = conf(HAND + 'vm "base" { disk "/var/vmm/b.qcow2" }\n' + c.render_managed_block([]))
    request, = requests(entry('kid', instance_of='base'), vmconf=above)
    assert (above.hand_written_vm('base').line, request.definition.instance_of) == (8, 'base')


# -- plans --------------------------------------------------------------------------------------

def test_a_hand_written_vm_plan_changes_no_definition():
    request, = requests(dict(name='hand', state='running'))
    plan = lc.plan_vm(request, None, None)
    assert (plan.config_changed, plan.steps, lc._in_execution_order(plan, request)) == (False, ['start'], ['start'])


def outdated(state, restart_on_change=True):
    request, = requests(entry(state=state, memory='1G', restart_on_change=restart_on_change))
    old = c.VmDefinition(name='web1', enabled=request.definition.enabled, memory=512 * MIB, disks=request.definition.disks)
    return request, old


@pytest.mark.parametrize('desired, steps, pause', [('present', ['stop', 'start', 'pause'], True), ('running', ['stop', 'start'], False)])
def test_a_paused_outdated_vm_restarted_on_change_is_paused_again_only_when_present(desired, steps, pause):
    request, old = outdated(desired)
    plan = lc.plan_vm(request, status('paused'), old)
    assert (plan.steps, plan.stop, plan.unpause_first, plan.start, plan.pause) == (steps, True, True, True, pause)
    assert lc._in_execution_order(plan, request) == ['stop', 'define'] + steps[1:]


def test_a_stopping_vm_to_run_is_stopped_then_started():
    request, = requests(entry(state='running'))
    plan = lc.plan_vm(request, status('stopping'), request.definition)
    assert (plan.steps, plan.stop, plan.start, plan.unpause) == (['stop', 'start'], True, True, False)


def test_a_stop_with_a_new_definition_defines_after_the_stop():
    request, old = outdated('stopped', restart_on_change=False)
    plan = lc.plan_vm(request, status('running'), old)
    assert lc._in_execution_order(plan, request) == ['stop', 'define']


# -- small helpers ------------------------------------------------------------------------------

def test_configured_memory_of_vm_conf_wins():
    definition = c.VmDefinition(name='web1', memory=1024 * MIB)
    assert lc.configured_memory(None, definition) == lc.configured_memory(status('stopped'), definition) == 1024 * MIB


def test_an_instance_has_as_many_nics_as_its_parent_at_least():
    parent = c.VmDefinition(name='base', interfaces=[c.Interface(), c.Interface(), c.Interface()])
    kid = c.VmDefinition(name='kid', instance_of='base', interfaces=[c.Interface()])
    definitions = {'base': parent, 'kid': kid}
    assert (lc._nic_count(kid, definitions), lc._nic_count(parent, definitions)) == (3, 3)
    assert lc._nic_count(c.VmDefinition(name='solo', interfaces=[c.Interface()]), definitions) == 1


@pytest.mark.parametrize('content', ['{not json', '[1, 2]'])
def test_an_unreadable_reload_marker_still_owes_a_reload(tmp_path, content):
    path = str(tmp_path / 'vm.conf')
    (tmp_path / '.vm.conf.reload-pending').write_text(content)
    assert lc.read_reload_marker(path) == {}
    os.unlink(str(tmp_path / '.vm.conf.reload-pending'))
    assert lc.read_reload_marker(path) is None


# -- the Converger against a scripted host -------------------------------------------------------

class Failed(Exception):
    pass


class Module:
    """What the Converger uses of AnsibleModule; ``vmd_rc`` is what `vmd -n` answers."""

    def __init__(self, vmd_rc=0, check_mode=False, diff=False, vmd=True):
        self.check_mode, self._diff, self.vmd_rc, self.vmd = check_mode, diff, vmd_rc, vmd

    def get_bin_path(self, name, required=False):
        if self.vmd:
            return '/usr/sbin/' + name
        if required:
            raise Failed('Failed to find required executable "%s"' % name)
        return None

    def run_command(self, argv, environ_update=None):
        assert argv[0] == '/usr/sbin/vmd' and environ_update == dict(LANG='C', LC_ALL='C')
        return self.vmd_rc, '', ('%s:3: syntax error' % argv[3]) if self.vmd_rc else 'configuration OK'

    def backup_local(self, path):
        dest = '%s.%d.2026-12-01@10:00:00~' % (path, os.getpid())
        shutil.copy2(path, dest)
        return dest

    def atomic_move(self, src, dest):
        os.replace(src, dest)


def vm(name, state, owner_group=None):
    live = state in v.LIVE_STATES
    return v.VmStatus(id=1, pid=100 if live else None, vcpus=1, maxmem=(516 if live else 512) * MIB, curmem=MIB if live else None,
                      tty='ttyp0' if live else None, owner='root', owner_group=owner_group, state=state, name=name)


class Vmctl:
    """vmctl with VMs in memory: ``fail`` maps a verb to the error it raises; reload fails ``reload_fails`` times."""

    def __init__(self, path, *records, reload_fails=0, fail=None):
        self.path = path
        self.records = {record.name: record for record in records}
        self.calls = []
        self.reload_fails = reload_fails
        self.fail = dict(fail or {})
        self.markers = []           # the reload marker as each reload found it
        self.finds = 0

    def _run(self, *argv):
        self.calls.append(list(argv))
        error = self.fail.get(argv[0])
        if error is not None:
            raise error('vmctl %s failed' % argv[0], argv=list(argv))

    def status(self):
        self.calls.append(['status'])
        return list(self.records.values())

    def find(self, name):
        self.finds += 1
        return self.records.get(name)

    def reload(self):
        self.markers.append(lc.read_reload_marker(self.path))
        self.calls.append(['reload'])
        if self.reload_fails:
            self.reload_fails -= 1
            raise v.VmctlError('vmctl: command failed', argv=['reload'])

    def start(self, name):
        self._run('start', name)
        self.records[name] = vm(name, 'running')

    def stop(self, name, wait=False, force=False, timeout=None):
        self._run('stop', '-' + ('f' if force else '') + ('w' if wait else ''), name)
        self.records[name] = vm(name, 'stopped')

    def pause(self, name):
        self._run('pause', name)
        self.records[name] = vm(name, 'paused')

    def unpause(self, name):
        self._run('unpause', name)
        self.records[name] = vm(name, 'running')


@pytest.fixture
def etc(tmp_path):
    (tmp_path / 'dev').mkdir()
    for name in ('a.img', 'b.img'):
        (tmp_path / name).write_bytes(b'')
    return tmp_path


def managed(etc, *definitions):
    text = '# by hand\n' + c.render_managed_block(list(definitions))
    (etc / 'vm.conf').write_text(text)
    return text


def disk(etc, name='a.img'):
    return [c.Disk(str(etc / name))]


def converger(etc, vmctl, module=None, keep_backup=False):
    return lc.Converger(module or Module(), vmctl, str(etc / 'vm.conf'), keep_backup=keep_backup, dev_dir=str(etc / 'dev'),
                        lock_timeout=5, staggered_start=False, poll_interval=0)


def files(etc):
    return sorted(name for name in os.listdir(str(etc)) if name not in ('dev', 'a.img', 'b.img', '.vm.conf.lock'))


def test_restarting_an_unchanged_running_vm_reloads_between_stop_and_start(etc):
    managed(etc, c.VmDefinition(name='web1', memory=512 * MIB, disks=disk(etc)))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'running'))
    result = converger(etc, vmctl).run([dict(name='web1', state='restarted')])
    assert vmctl.calls == [['status'], ['stop', '-w', 'web1'], ['reload'], ['status'], ['start', 'web1'], ['status']]
    assert result['changed'] and result['vms'][0]['steps'] == ['stop', 'start']


def test_a_managed_vm_vmd_does_not_know_is_reloaded_without_a_write(etc):
    text = managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    vmctl = Vmctl(str(etc / 'vm.conf'))
    run = converger(etc, vmctl)
    result = run.run([dict(name='web1', state='present')])
    assert vmctl.calls == [['status'], ['reload'], ['status']]
    assert result['changed'] and (etc / 'vm.conf').read_text() == text and run.backup_file is None
    assert vmctl.markers == [None] and files(etc) == ['vm.conf']


def test_an_owed_reload_is_made_and_its_rollback_copies_beside_vm_conf_removed(etc):
    managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    copy = etc / 'vm.conf.77.2026-11-30@09:00:00~'
    copy.write_text('old\n')
    elsewhere = etc / 'dev' / 'vm.conf.78~'
    elsewhere.write_text('not ours\n')
    (etc / '.vm.conf.reload-pending').write_text(json.dumps(dict(pid=77, backups=[str(copy), str(elsewhere), 5])))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped'))
    run = converger(etc, vmctl)
    result = run.run([dict(name='web1', state='present')])
    assert result['changed'] and vmctl.calls == [['status'], ['reload'], ['status']]
    assert run.warnings == ['an earlier run was interrupted before vmd reloaded %s: reloading now' % (etc / 'vm.conf'),
                            'removed %s, the rollback copy of an interrupted earlier run' % copy]
    assert files(etc) == ['vm.conf'] and elsewhere.exists()


def test_a_failing_reload_with_nothing_written_is_an_error(etc):
    text = managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    (etc / '.vm.conf.reload-pending').write_text('{}')
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped'), reload_fails=1)
    with pytest.raises(lc.LifecycleError) as info:
        converger(etc, vmctl).run([dict(name='web1', state='present')])
    assert str(info.value) == 'vmctl reload failed: vmctl: command failed (command: reload)'
    assert (etc / 'vm.conf').read_text() == text and files(etc) == ['.vm.conf.reload-pending', 'vm.conf']


@pytest.mark.parametrize('keep_backup', [False, True])
def test_the_marker_names_the_rollback_copy_while_vmd_reloads(etc, keep_backup):
    managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped'))
    run = converger(etc, vmctl, keep_backup=keep_backup)
    run.run([dict(name='web1', state='present', memory='1G')])
    backup = '%s.%d.2026-12-01@10:00:00~' % (etc / 'vm.conf', os.getpid())
    assert vmctl.markers == [dict(pid=os.getpid(), backups=[] if keep_backup else [backup])]
    assert c.VmConf.load(str(etc / 'vm.conf')).managed_vm('web1').memory == 1024 * MIB and run.host_changed
    assert files(etc) == (['vm.conf', os.path.basename(backup)] if keep_backup else ['vm.conf'])
    assert run.backup_file == (backup if keep_backup else None)


def test_a_reload_that_fails_once_restores_vm_conf_and_settles(etc):
    text = managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped'), reload_fails=1)
    run = converger(etc, vmctl)
    with pytest.raises(lc.LifecycleError) as info:
        run.run([dict(name='web1', state='present', memory='1G')])
    assert str(info.value) == ('vmctl reload failed: vmctl: command failed (command: reload); restored the previous %s (vmd reloaded the previous '
                               'configuration)' % (etc / 'vm.conf'))
    assert (etc / 'vm.conf').read_text() == text and files(etc) == ['vm.conf'] and run.host_changed


def test_a_reload_that_fails_twice_leaves_the_marker_and_says_so(etc):
    managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped'), reload_fails=2)
    run = converger(etc, vmctl)
    with pytest.raises(lc.LifecycleError, match=r'reloading the previous configuration failed too: vmctl: command failed \(command: reload\)'):
        run.run([dict(name='web1', state='present', memory='1G')])
    assert run.host_changed and '.vm.conf.reload-pending' in files(etc)


def test_a_new_vm_conf_is_removed_when_the_reload_fails(etc):
    vmctl = Vmctl(str(etc / 'vm.conf'), reload_fails=1)
    with pytest.raises(lc.LifecycleError):
        converger(etc, vmctl).run([dict(name='web1', state='present', disks=[str(etc / 'a.img')])])
    assert files(etc) == []


def test_vmd_n_refusing_changes_nothing_and_is_named(etc):
    text = managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped'))
    run = converger(etc, vmctl, module=Module(vmd_rc=1))
    with pytest.raises(lc.LifecycleError) as info:
        run.run([dict(name='web1', state='present', memory='1G')])
    assert str(info.value) == 'vmd -n refused the new %s, nothing was changed: %s:3: syntax error' % (etc / 'vm.conf', etc / 'vm.conf')
    assert vmctl.calls[:1] == [['status']] and vmctl.calls[1][:3] == ['vmd', '-n', '-f'] and len(vmctl.calls) == 2
    assert (etc / 'vm.conf').read_text() == text and files(etc) == ['vm.conf'] and not run.host_changed


def test_vmd_missing_from_path_fails_before_anything_changes(etc):
    text = managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped'))
    with pytest.raises(Failed, match='Failed to find required executable "vmd"'):
        converger(etc, vmctl, module=Module(vmd=False)).run([dict(name='web1', state='present', memory='1G')])
    assert (etc / 'vm.conf').read_text() == text and files(etc) == ['vm.conf']


@pytest.mark.parametrize('diff, memory, shown', [(True, '1G', True), (True, '512M', False), (False, '1G', False)])
def test_the_diff_is_made_only_when_asked_and_the_file_changes(etc, diff, memory, shown):
    text = managed(etc, c.VmDefinition(name='web1', enabled=False, memory=512 * MIB, disks=disk(etc)))
    run = converger(etc, Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped')), module=Module(diff=diff))
    run.run([dict(name='web1', state='present', memory=memory)])
    if shown:
        assert run.diff == dict(before=text, after=(etc / 'vm.conf').read_text(), before_header=str(etc / 'vm.conf'),
                                after_header=str(etc / 'vm.conf'))
    else:
        assert run.diff is None


def test_the_reload_warning_names_enabled_vms_nobody_asked_to_run(etc):
    (etc / 'vm.conf').write_text('vm "spare" {\n\tdisk "%s"\n}\n' % (etc / 'b.img'))
    vmctl = Vmctl(str(etc / 'vm.conf'))
    run = converger(etc, vmctl)
    run.run([dict(name='web1', state='present', disks=[str(etc / 'a.img')])])
    assert run.warnings == ["vmctl reload starts every enabled VM that is not running; this reload may start: spare"]


def test_warn_reload_starts_names_exactly_the_vms_a_reload_may_start():
    names = ('asked', 'off', 'new', 'kept', 'stopped')
    definitions = [c.VmDefinition(name=name, enabled=name != 'off') for name in names]
    statuses = {'kept': vm('kept', 'running'), 'stopped': vm('stopped', 'running'), 'down': vm('down', 'stopped'),
                'running': vm('running', 'running'), 'present': vm('present', 'stopped')}

    def plan(name, state, **flags):
        return lc.VmPlan(request=lc.VmRequest(name=name, state=state, stop_timeout=60, force=False, restart_on_change=False,
                                              options={}), status=None, **flags)

    plans = [plan('asked', 'present', start=True), plan('stopped', 'stopped', stop=True), plan('running', 'running'),
             plan('present', 'present')]
    run = lc.Converger(None, Vmctl('/etc/vm.conf'), '/etc/vm.conf', keep_backup=False, dev_dir='/dev', lock_timeout=5,
                       staggered_start=False)
    hand = conf('vm "down" {\n\tdisk "/d"\n}\nvm "running" {\n\tdisk "/r"\n}\nvm "present" {\n\tdisk "/p"\n}\n')
    run._warn_reload_starts(definitions, hand, plans, statuses)
    assert run.warnings == ['vmctl reload starts every enabled VM that is not running; this reload may start: down, new, present, stopped']
    run.warnings = []
    run._warn_reload_starts([c.VmDefinition(name='off', enabled=False)], conf(''), [], {})
    assert run.warnings == []


def test_a_paused_vm_to_run_is_unpaused_and_one_to_stop_unpaused_first(etc):
    managed(etc, c.VmDefinition(name='web1', memory=512 * MIB, disks=disk(etc)),
            c.VmDefinition(name='web2', memory=512 * MIB, enabled=False, disks=disk(etc, 'b.img')))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'paused'), vm('web2', 'paused'))
    converger(etc, vmctl).run([dict(name='web1', state='running'), dict(name='web2', state='stopped')])
    assert vmctl.calls == [['status'], ['unpause', 'web2'], ['stop', '-w', 'web2'], ['unpause', 'web1'], ['status']]


def test_a_failed_stop_leaves_vm_conf_and_no_candidate_but_says_the_host_changed(etc):
    text = managed(etc, c.VmDefinition(name='web1', memory=512 * MIB, disks=disk(etc)),
                   c.VmDefinition(name='web2', memory=512 * MIB, disks=disk(etc, 'b.img')))
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'running'), vm('web2', 'running'))
    run = converger(etc, vmctl)
    original = vmctl.stop

    def stop(name, **options):
        if name == 'web2':
            raise v.VmctlTimeout('vmctl stop timed out', argv=['stop', name])
        original(name, **options)

    vmctl.stop = stop
    with pytest.raises(lc.StuckStopping):
        run.run([dict(name='web1', state='stopped'), dict(name='web2', state='stopped')])
    assert run.host_changed and (etc / 'vm.conf').read_text() == text and files(etc) == ['vm.conf']


def test_a_pause_failing_after_an_owed_reload_says_the_host_changed(etc):
    managed(etc, c.VmDefinition(name='web1', memory=512 * MIB, disks=disk(etc)))
    (etc / '.vm.conf.reload-pending').write_text('{}')
    vmctl = Vmctl(str(etc / 'vm.conf'), vm('web1', 'running'), fail={'pause': v.VmctlError})
    run = converger(etc, vmctl)
    with pytest.raises(v.VmctlError):
        run.run([dict(name='web1', state='paused')])
    assert run.host_changed and vmctl.calls == [['status'], ['reload'], ['pause', 'web1']]


def test_leftovers_of_this_collection_only_are_removed(etc):
    for name in ('.vm.conf.ab_12.tmp', '.vm.conf.x9.restore', '.vm.conf.ab.tmp.keep', 'my.vm.conf.ab.tmp', '.vm.conf..tmp'):
        (etc / name).write_text('')
    managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    run = converger(etc, Vmctl(str(etc / 'vm.conf'), vm('web1', 'stopped')))
    run.run([dict(name='web1', state='present')])
    assert files(etc) == ['.vm.conf..tmp', '.vm.conf.ab.tmp.keep', 'my.vm.conf.ab.tmp', 'vm.conf']
    assert run.warnings == ['removed %s, left behind by an interrupted earlier run' % (etc / name)
                            for name in ('.vm.conf.ab_12.tmp', '.vm.conf.x9.restore')]


def test_a_host_lock_that_cannot_be_opened_changes_nothing(etc):
    managed(etc, c.VmDefinition(name='web1', enabled=False, disks=disk(etc)))
    (etc / '.vm.conf.lock').mkdir()
    vmctl = Vmctl(str(etc / 'vm.conf'))
    with pytest.raises(lc.LifecycleError, match=r"vm_conf: cannot open the host lock %s: .*; nothing was changed" % (etc / '.vm.conf.lock')):
        converger(etc, vmctl).run([dict(name='web1', state='present')])
    assert vmctl.calls == []


def test_new_definitions_keep_their_place_in_the_managed_part(etc):
    managed(etc, c.VmDefinition(name='a', enabled=False, disks=disk(etc)), c.VmDefinition(name='b', enabled=False, disks=disk(etc)))
    run = converger(etc, Vmctl(str(etc / 'vm.conf'), vm('a', 'stopped'), vm('b', 'stopped')))
    vmconf = c.VmConf.load(str(etc / 'vm.conf'))
    reqs = lc.build_requests([dict(name='a', state='present', memory='1G'), dict(name='c', state='present', disks=[str(etc / 'a.img')])],
                             vmconf)
    assert [d.name for d in run._new_managed(vmconf, reqs)] == ['a', 'b', 'c']
    assert run._new_managed(vmconf, reqs)[0].memory == 1024 * MIB


# -- stopping --------------------------------------------------------------------------------------

def test_a_vm_someone_else_stops_that_never_goes_down_is_stuck(etc):
    vmctl = Vmctl('/etc/vm.conf', vm('web1', 'stopping'), fail={'stop': v.VmStopInProgress})
    run = lc.Converger(None, vmctl, '/etc/vm.conf', keep_backup=False, dev_dir='/dev', lock_timeout=5, staggered_start=False,
                       poll_interval=0.05)
    started = time.monotonic()
    with pytest.raises(lc.StuckStopping, match=r"vm 'web1' is stuck in state stopping"):
        run.stop_vm('web1', 0.3, force=False)
    # polled every poll_interval until stop_timeout, not in a busy loop
    assert time.monotonic() - started >= 0.3 and 3 <= vmctl.finds <= 8


def test_a_vm_gone_before_the_forced_stop_is_fine(etc):
    vmctl = Vmctl('/etc/vm.conf', vm('web1', 'running'))
    calls = []

    def stop(name, wait=False, force=False, timeout=None):
        calls.append(force)
        raise (v.VmNotRunning if force else v.VmctlTimeout)('vmctl stop', argv=['stop', name])

    vmctl.stop = stop
    run = lc.Converger(None, vmctl, '/etc/vm.conf', keep_backup=False, dev_dir='/dev', lock_timeout=5, staggered_start=False)
    assert run.stop_vm('web1', 5, force=True) is None and calls == [False, True]


# -- what vmd would refuse half-way, taps --------------------------------------------------------

def kid_plan(definition):
    request = lc.VmRequest(name=definition.name, state='present', stop_timeout=60, force=False, restart_on_change=False,
                           options={}, definition=definition)
    return lc.VmPlan(request=request, status=None)


def reload_problems(kid, parent):
    run = lc.Converger(None, Vmctl('/etc/vm.conf'), '/etc/vm.conf', keep_backup=False, dev_dir='/dev', lock_timeout=5,
                       staggered_start=False)
    return run._reload_problems(conf(''), [d for d in (parent, kid) if d is not None], [kid_plan(kid)], {})


def test_an_instance_lladdr_must_be_its_parents_or_left_out():
    mac, other = 'fe:e1:ba:d0:00:01', 'fe:e1:ba:d0:00:02'
    parent = c.VmDefinition(name='base', interfaces=[c.Interface(lladdr=mac)], disks=[c.Disk('/p')])
    kid = c.VmDefinition(name='kid', instance_of='base', interfaces=[c.Interface(lladdr=mac), c.Interface()], disks=[c.Disk('/k')])
    assert reload_problems(kid, parent) == []
    kid.interfaces = [c.Interface(lladdr=other), c.Interface(lladdr=other)]
    assert reload_problems(kid, parent) == [
        "vm 'kid': interfaces[0].lladdr: vmd refuses an instance whose lladdr differs from its parent's interface 0 (%s) "
        "(vm_instance: \"lladdr cannot be reused\", EBUSY): leave lladdr out (vmd then picks one) or use the parent's" % mac,
        "vm 'kid': interfaces[1].lladdr: vmd refuses an instance whose lladdr differs from its parent's interface 1 (a random MAC) "
        "(vm_instance: \"lladdr cannot be reused\", EBUSY): leave lladdr out (vmd then picks one) or use the parent's"]


def test_an_instance_cannot_share_its_parents_disk_and_a_missing_parent_is_left_to_validation():
    parent = c.VmDefinition(name='base', disks=[c.Disk('/p'), c.Disk('/q')])
    kid = c.VmDefinition(name='kid', instance_of='base', disks=[c.Disk('/q')])
    assert reload_problems(kid, parent) == [
        "vm 'kid': disks: /q is also a disk of the parent 'base'; vmd refuses it (vm_instance: \"disk cannot be reused\", EBUSY)"]
    assert reload_problems(kid, None) == []


def tap_problems(etc, taps, needs_reload, plans=()):
    for index in range(taps):
        (etc / 'dev' / ('tap%d' % index)).write_text('')
    run = converger(etc, Vmctl(str(etc / 'vm.conf')))
    new = [c.VmDefinition(name='big', interfaces=[c.Interface()] * 3), c.VmDefinition(name='off', enabled=False, interfaces=[c.Interface()])]
    return run._tap_problems(conf(''), new, list(plans), {}, needs_reload)


def test_taps_are_counted_for_what_the_reload_starts(etc):
    assert tap_problems(etc, 2, needs_reload=False) == []
    problem, = tap_problems(etc, 2, needs_reload=True)
    assert problem.startswith('dev_dir: the VMs to start have 3 interfaces, but only 2 tap devices are free') and problem.endswith(
        '(VMs to start: big)')
    assert tap_problems(etc, 3, needs_reload=True) == []


def test_taps_are_counted_for_what_the_run_starts(etc):
    start = lc.VmPlan(request=kid_plan(c.VmDefinition(name='off')).request, status=None, start=True)
    problem, = tap_problems(etc, 0, needs_reload=False, plans=[start])
    assert problem.endswith('(VMs to start: off)')


# -- the returned records ------------------------------------------------------------------------

def test_records_of_a_managed_a_hand_written_and_an_absent_vm():
    run = lc.Converger(None, Vmctl('/etc/vm.conf'), '/etc/vm.conf', keep_backup=False, dev_dir='/dev', lock_timeout=5,
                       staggered_start=False)
    mine = c.VmDefinition(name='web1', memory=1024 * MIB, disks=[c.Disk('/a')])
    request, = requests(entry(state='running'))
    record = run._record(lc.plan_vm(request, None, mine), vm('web1', 'running', owner_group='wheel'), [mine])
    assert (record['state'], record['owner'], record['managed'], record['config'], record['memory']) == (
        'running', 'root:wheel', True, mine.as_dict(), 1024 * MIB)
    hand, = requests(dict(name='hand', state='running'))
    record = run._record(lc.plan_vm(hand, None, None), None, [mine])
    assert (record['state'], record['owner'], record['managed'], record['config']['name']) == (None, None, False, 'hand')
    gone, = requests(dict(name='gone', state='absent'))
    record = run._record(lc.plan_vm(gone, None, None), None, [mine])
    assert (record['state'], record['managed'], record['config']) == ('absent', False, None)
