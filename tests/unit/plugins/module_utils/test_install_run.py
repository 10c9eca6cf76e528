# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install run with the VM part replaced: the manifest beside the disk decides what is installed again."""

from __future__ import annotations

import base64
import fcntl
import gc
import hashlib
import json
import os
import re
import stat
import sys
import time
import warnings
from types import SimpleNamespace

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import install_run
from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_publish import SERVER_TOKEN, Publication, PublishError
from ansible_collections.openbsd.vmm.plugins.module_utils.install_manifest import read_manifest
from ansible_collections.openbsd.vmm.plugins.module_utils.installer import manifest_path
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl, VmctlError, VmNotFound, VmNotRunning, VmStopInProgress

MAC = 'fe:e1:bb:d1:00:01'
RANDOM_PASSWORD = 'Xq7-random-Pw'


def authorized_keys(password):
    text = '# root password: %s\n' % password
    return dict(path='root/.ssh/authorized_keys', content=base64.b64encode(text.encode('utf-8')).decode('ascii'),
                mode='0600')


@pytest.fixture
def docroot(tmp_path):
    (tmp_path / 'pub' / 'OpenBSD' / '7.8' / 'amd64').mkdir(parents=True)
    return tmp_path


class FakeModule:
    check_mode = False


@pytest.fixture
def install_env(tmp_path, docroot, monkeypatch):
    """install() with the VM part replaced: the temporary VM 'runs' and the installer succeeds."""
    disk = tmp_path / 'web1.qcow2'
    disk.write_bytes(b'\0' * 4096)
    (docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64' / 'bsd.rd').write_bytes(b'ramdisk')
    runs = []

    def fake_run_install(module, vmctl, definition, timeout, console_log, secrets):
        runs.append(definition.name)
        return True, None, 1.5, 'CONGRATULATIONS!\n'

    monkeypatch.setattr(install_run, 'Vmctl', lambda module: SimpleNamespace(calls=[]))
    monkeypatch.setattr(install_run, 'prepare_vm', lambda vmctl, definition: SimpleNamespace(id=7))
    monkeypatch.setattr(install_run, 'run_install', fake_run_install)
    params = dict(docroot=str(docroot), file_group=None, mac=MAC, release='7.8', arch='amd64', disk=str(disk),
                  bsd_rd=None, name='web1', hostname='web1', memory=None, install_timeout=60, console_log=None)
    return SimpleNamespace(disk=disk, params=params, runs=runs, docroot=docroot)


def run_install_with(env, digest):
    payload = dict(response_file='System hostname = web1\n', inputs_sha256=digest, password_hashes={})
    return install_run.install(FakeModule(), env.params, payload, Publication(env.params, payload))


def test_install_writes_a_private_manifest_keyed_by_disk_and_inputs(install_env):
    result = run_install_with(install_env, 'a' * 64)
    assert result['changed'] is True and result['install']['succeeded'] is True
    path = manifest_path(str(install_env.disk))
    assert path == str(install_env.disk) + '.autoinstall.json'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    manifest = read_manifest(str(install_env.disk))
    disk_stat = install_env.disk.stat()
    assert manifest['inputs_sha256'] == 'a' * 64
    assert manifest['disk'] == dict(path=str(install_env.disk.resolve()), device=disk_stat.st_dev, inode=disk_stat.st_ino)
    assert manifest['mac'] == MAC and manifest['hostname'] == 'web1'
    assert len(install_env.runs) == 1


def test_same_inputs_on_the_same_disk_skip_the_install(install_env):
    run_install_with(install_env, 'a' * 64)
    result = run_install_with(install_env, 'a' * 64)
    assert result['changed'] is False
    assert result['install'] == dict(succeeded=True, skipped=True)
    assert len(install_env.runs) == 1


def test_changed_inputs_are_installed_again(install_env):
    run_install_with(install_env, 'a' * 64)
    result = run_install_with(install_env, 'b' * 64)
    assert result['changed'] is True and result['install']['skipped'] is False
    assert len(install_env.runs) == 2
    assert read_manifest(str(install_env.disk))['inputs_sha256'] == 'b' * 64


def test_a_replaced_disk_is_installed_again(install_env):
    run_install_with(install_env, 'a' * 64)
    # A new file renamed over the old one: same path, another inode (the old one still exists meanwhile).
    replacement = install_env.disk.with_name('new.qcow2')
    replacement.write_bytes(b'\0' * 4096)
    os.rename(str(replacement), str(install_env.disk))
    result = run_install_with(install_env, 'a' * 64)
    assert result['changed'] is True
    assert len(install_env.runs) == 2


def test_an_unreadable_manifest_is_not_a_match(install_env):
    with open(manifest_path(str(install_env.disk)), 'w') as handle:
        handle.write('not json')
    assert read_manifest(str(install_env.disk)) is None
    assert run_install_with(install_env, 'a' * 64)['changed'] is True


def test_install_result_never_carries_the_random_password(install_env, monkeypatch):
    monkeypatch.setattr(install_run, 'run_install',
                        lambda *args: (True, None, 1.0, 'Setting root password to %s\nCONGRATULATIONS!\n' % RANDOM_PASSWORD))
    payload = dict(response_file='System hostname = web1\n', inputs_sha256='c' * 64, password_hashes={},
                   site_files=[authorized_keys(RANDOM_PASSWORD)])
    result = install_run.install(FakeModule(), install_env.params, payload, Publication(install_env.params, payload))
    assert RANDOM_PASSWORD not in json.dumps(result)
    assert 'Setting root password to [redacted]' in result['install']['console_tail']


@pytest.mark.parametrize('vm_conf_text, vm_id, server', [
    (None, 4, 'http://100.64.4.2'),
    (None, 256, 'http://100.65.0.2'),
    ('local prefix "10.0.0.0/16"\n', 4, 'http://10.0.4.2'),
])
def test_the_install_server_is_the_host_side_of_the_vms_local_interface(install_env, monkeypatch, tmp_path,
                                                                        vm_conf_text, vm_id, server):
    vm_conf = tmp_path / 'vm.conf'
    if vm_conf_text is not None:
        vm_conf.write_text(vm_conf_text)
    published = []

    def fake_run_install(module, vmctl, definition, timeout, console_log, secrets):
        published.append((install_env.docroot / ('%s-install.conf' % MAC)).read_text())
        return True, None, 1.0, 'CONGRATULATIONS!\n'

    monkeypatch.setattr(install_run, 'prepare_vm', lambda vmctl, definition: SimpleNamespace(id=vm_id))
    monkeypatch.setattr(install_run, 'run_install', fake_run_install)
    params = dict(install_env.params, vm_conf=str(vm_conf))
    payload = dict(response_file='HTTP Server = http://%s\n' % SERVER_TOKEN, inputs_sha256='d' * 64, password_hashes={})
    install_run.install(FakeModule(), params, payload, Publication(params, payload))
    assert published == ['HTTP Server = %s\n' % server]


def test_a_vm_id_outside_the_local_prefix_fails_before_anything_is_published(install_env, monkeypatch, tmp_path):
    vm_conf = tmp_path / 'vm.conf'
    vm_conf.write_text('local prefix "10.0.0.0/16"\n')
    monkeypatch.setattr(install_run, 'prepare_vm', lambda vmctl, definition: SimpleNamespace(id=256))
    params = dict(install_env.params, vm_conf=str(vm_conf))
    payload = dict(response_file='HTTP Server = http://%s\n' % SERVER_TOKEN, inputs_sha256='e' * 64, password_hashes={})
    with pytest.raises(install_run.InstallFailure, match=r'vm_conf .*dhcp address range exceeded, vm id 256'):
        install_run.install(FakeModule(), params, payload, Publication(params, payload))
    assert install_env.runs == []
    assert not (install_env.docroot / ('%s-install.conf' % MAC)).exists()


def test_an_unknown_file_group_fails_before_vmd_registers_the_install_vm(install_env, monkeypatch):
    registered = []
    monkeypatch.setattr(install_run, 'prepare_vm', lambda vmctl, definition: registered.append(definition.name))
    params = dict(install_env.params, file_group='nosuchgroup4vmm')
    payload = dict(response_file='System hostname = web1\n', inputs_sha256='f' * 64, password_hashes={})
    with pytest.raises(PublishError, match=r"^file_group 'nosuchgroup4vmm': no such group on the install server"):
        install_run.install(FakeModule(), params, payload, Publication(params, payload))
    assert registered == [] and install_env.runs == []


class PfModule(FakeModule):
    """A module whose commands go to a list (pfctl's table changes), failing for addresses in ``refuse``."""

    def __init__(self, refuse=()):
        self.commands, self.warnings, self.refuse, self.lookups = [], [], refuse, []

    def get_bin_path(self, name, required=False):
        self.lookups.append((name, required))
        return '/sbin/' + name

    def run_command(self, argv):
        self.commands.append(argv)
        if argv[-2] in self.refuse:
            return 1, '', 'pfctl: Table does not exist.\n'
        return 0, '', '1/1 addresses added.\n'

    def warn(self, message):
        self.warnings.append(message)


def test_only_the_installing_vms_address_is_in_the_install_clients_table_while_it_runs(install_env, monkeypatch, tmp_path):
    """Issue 10, point 10: the VM's guest address (vm_priv_addr + 1) is added before publishing, deleted after."""
    vm_conf = tmp_path / 'vm.conf'
    vm_conf.write_text('local prefix "10.0.0.0/16"\n')
    module = PfModule()
    seen = []

    def fake_run_install(mod, vmctl, definition, timeout, console_log, secrets):
        seen.append(list(module.commands))
        return False, 'boom', 1.0, 'installer failed\n'

    monkeypatch.setattr(install_run, 'run_install', fake_run_install)
    params = dict(install_env.params, vm_conf=str(vm_conf), install_clients_table='vmm_install_clients', pf_anchor='openbsd-vmm')
    payload = dict(response_file='System hostname = web1\n', inputs_sha256='f' * 64, password_hashes={})
    with pytest.raises(install_run.InstallFailure, match='boom'):
        install_run.install(module, params, payload, Publication(params, payload))
    table = ['/sbin/pfctl', '-a', 'openbsd-vmm', '-t', 'vmm_install_clients', '-T']
    assert seen == [[table + ['add', '10.0.7.3']]]
    # deleted again although the install failed, and the record is gone
    assert module.commands == [table + ['add', '10.0.7.3'], table + ['delete', '10.0.7.3']]
    # a missing pfctl fails the task rather than running None
    assert module.lookups == [('pfctl', True), ('pfctl', True)]
    assert os.listdir(str(install_env.docroot) + '.vmm_autoinstall') == []


def test_a_failed_delete_keeps_the_record_for_the_next_run(install_env, tmp_path):
    from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_publish import remove_stale
    module = PfModule(refuse=('delete',))
    params = dict(install_env.params, vm_conf=str(tmp_path / 'none.conf'), install_clients_table='t', pf_anchor='a')
    payload = dict(response_file='System hostname = web1\n', inputs_sha256='a' * 64, password_hashes={})
    install_run.install(module, params, payload, Publication(params, payload))
    assert 'pfctl: Table does not exist.' in module.warnings[0]
    records = str(install_env.docroot) + '.vmm_autoinstall'
    record = json.loads(open(os.path.join(records, os.listdir(records)[0])).read())
    assert record['client'] == dict(anchor='a', table='t', address='100.64.7.3')
    deleted = []
    record['pid'] = 0x7fffffff  # no such process: the run that wrote it is gone
    with open(os.path.join(records, '%s.json' % MAC), 'w') as handle:
        json.dump(record, handle)
    assert remove_stale(str(install_env.docroot), delete_client=deleted.append) == []
    assert deleted == [record['client']] and os.listdir(records) == []


# -- the temporary VM -----------------------------------------------------------

def test_the_temporary_vm_is_disabled_boots_the_ramdisk_from_the_network_and_is_named_by_its_digest(tmp_path):
    (tmp_path / 'bsd.rd').write_bytes(b'ramdisk')
    (tmp_path / 'web1.qcow2').write_bytes(b'')
    params = dict(name='web1', disk=str(tmp_path / 'web1.qcow2'), mac='FE:E1:BB:D1:00:01', memory='512M')
    definition = install_run.temp_vm_definition(params, str(tmp_path / 'bsd.rd'))
    body = ('\tdisable\n\tmemory "512M"\n\tboot "%s/bsd.rd"\n\tboot device net\n\tdisk "%s/web1.qcow2"\n'
            '\tlocal interface { lladdr "fe:e1:bb:d1:00:01" }\n}\n' % (tmp_path, tmp_path))
    digest = hashlib.sha256(('vm "install" {\n' + body).encode('utf-8')).hexdigest()[:8]
    assert definition.name == 'web1-ai-' + digest
    assert definition.render() == 'vm "web1-ai-%s" {\n' % digest + body


def test_a_long_name_is_cut_so_that_the_temporary_vm_name_has_vmds_63_characters(tmp_path):
    params = dict(name='w' * 60, disk=str(tmp_path / 'd.qcow2'), mac=MAC, memory=None)
    name = install_run.temp_vm_definition(params, str(tmp_path / 'bsd.rd')).name
    assert re.fullmatch('w{51}-ai-[0-9a-f]{8}', name)


def test_a_bad_memory_size_names_the_parameter(tmp_path):
    params = dict(name='web1', disk=str(tmp_path / 'd.qcow2'), mac=MAC, memory='lots')
    with pytest.raises(install_run.InstallFailure, match=r'^memory: '):
        install_run.temp_vm_definition(params, str(tmp_path / 'bsd.rd'))


def test_disk_in_use_is_true_while_another_descriptor_holds_the_disk_lock(tmp_path):
    disk = tmp_path / 'web1.qcow2'
    disk.write_bytes(b'')
    assert install_run.disk_in_use(str(disk)) is False
    with open(disk, 'rb') as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert install_run.disk_in_use(str(disk)) is True
    assert install_run.disk_in_use(str(disk)) is False


class VmctlDouble:
    """vmd's view of VMs for prepare_vm/force_stop: ``states`` by name, stop errors to raise in order."""

    def __init__(self, states=None, stop_errors=(), register_on_load=True):
        self.states, self.stop_errors, self.register_on_load = dict(states or {}), list(stop_errors), register_on_load
        self.calls, self.loaded = [], []

    def find(self, name):
        self.calls.append(['find', name])
        state = self.states.get(name)
        return None if state is None else SimpleNamespace(id=3, name=name, running=state == 'running')

    def stop(self, name, force=False, wait=False):
        self.calls.append(['stop', name, force, wait])
        if self.stop_errors:
            raise self.stop_errors.pop(0)
        self.states[name] = 'stopped'

    def load(self, path):
        self.calls.append(['load'])
        with open(path) as handle:
            self.loaded.append(handle.read())
        if self.register_on_load:
            self.states['web1-ai-0a1b2c3d'] = 'stopped'


DEFINITION = SimpleNamespace(name='web1-ai-0a1b2c3d', render=lambda: 'vm "web1-ai-0a1b2c3d" {\n\tdisable\n}\n')


def test_prepare_vm_loads_an_unknown_vm_from_a_temporary_file_it_removes(monkeypatch, tmp_path):
    monkeypatch.setattr(install_run.tempfile, 'tempdir', str(tmp_path))
    vmctl = VmctlDouble()
    assert install_run.prepare_vm(vmctl, DEFINITION).id == 3
    assert vmctl.loaded == ['vm "web1-ai-0a1b2c3d" {\n\tdisable\n}\n']
    assert vmctl.calls == [['find', 'web1-ai-0a1b2c3d'], ['load'], ['find', 'web1-ai-0a1b2c3d']]
    assert os.listdir(str(tmp_path)) == []


def test_prepare_vm_reuses_a_known_stopped_vm_and_force_stops_a_running_one():
    vmctl = VmctlDouble(states={'web1-ai-0a1b2c3d': 'stopped'})
    install_run.prepare_vm(vmctl, DEFINITION)
    assert vmctl.calls == [['find', 'web1-ai-0a1b2c3d']]
    vmctl = VmctlDouble(states={'web1-ai-0a1b2c3d': 'running'})
    assert install_run.prepare_vm(vmctl, DEFINITION).running is False
    assert vmctl.calls == [['find', 'web1-ai-0a1b2c3d'], ['stop', 'web1-ai-0a1b2c3d', True, True], ['find', 'web1-ai-0a1b2c3d']]
    assert vmctl.loaded == []


def test_prepare_vm_fails_when_vmd_does_not_register_the_loaded_vm():
    with pytest.raises(install_run.InstallFailure) as caught:
        install_run.prepare_vm(VmctlDouble(register_on_load=False), DEFINITION)
    assert str(caught.value) == 'vmd did not register the temporary VM web1-ai-0a1b2c3d after vmctl load'


def test_force_stop_accepts_a_vm_already_gone_and_repeats_a_stop_in_progress():
    for error in (VmNotRunning('failed: Invalid argument'), VmNotFound('vm not found')):
        vmctl = VmctlDouble(stop_errors=[error])
        install_run.force_stop(vmctl, 'web1-ai-0a1b2c3d')
        assert vmctl.calls == [['stop', 'web1-ai-0a1b2c3d', True, True]]
    vmctl = VmctlDouble(stop_errors=[VmStopInProgress('failed: Operation already in progress')])
    install_run.force_stop(vmctl, 'web1-ai-0a1b2c3d')
    assert vmctl.calls == [['stop', 'web1-ai-0a1b2c3d', True, True]] * 2


# -- install() before any VM runs --------------------------------------------------

def test_install_fails_for_a_missing_disk_or_ramdisk_and_check_mode_runs_nothing(install_env, tmp_path):
    payload = dict(response_file='System hostname = web1\n', inputs_sha256='a' * 64, password_hashes={})
    params = dict(install_env.params, disk=str(tmp_path / 'none.qcow2'))
    with pytest.raises(install_run.InstallFailure) as caught:
        install_run.install(FakeModule(), params, payload, Publication(params, payload))
    assert str(caught.value) == 'disk %s/none.qcow2 does not exist: create it first (openbsd.vmm.vmm_disk or vmctl create)' % tmp_path
    checking = FakeModule()
    checking.check_mode = True
    result = install_run.install(checking, install_env.params, payload, Publication(install_env.params, payload))
    assert result['changed'] is True and result['install'] == dict(succeeded=None, skipped=False)
    params = dict(install_env.params, bsd_rd=str(tmp_path / 'no-bsd.rd'))
    with pytest.raises(install_run.InstallFailure) as caught:
        install_run.install(FakeModule(), params, payload, Publication(params, payload))
    assert str(caught.value) == 'installer ramdisk %s/no-bsd.rd does not exist' % tmp_path
    params = dict(install_env.params, name='-web1')
    with pytest.raises(install_run.InstallFailure) as caught:
        install_run.install(FakeModule(), params, payload, Publication(params, payload))
    assert str(caught.value) == 'name \'-web1\': a VM name must not start with ".", "-" or "_"'
    with open(install_env.disk, 'rb') as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(install_run.InstallFailure) as caught:
            install_run.install(FakeModule(), install_env.params, payload, Publication(install_env.params, payload))
    assert str(caught.value) == 'disk %s is in use by a running VM (vmd holds its lock); stop that VM first' % install_env.disk
    assert install_env.runs == []
    assert not os.path.exists(manifest_path(str(install_env.disk)))


# -- run_install: a vmctl whose console and wait behave as told ------------------------

FAKE_VMCTL = r'''#!{python}
import json, os, sys, time
state = os.environ['FAKE_VMCTL_STATE']
with open(os.path.join(state, 'argv'), 'a') as handle:
    handle.write(' '.join(sys.argv[1:]) + '\n')
with open(os.path.join(state, 'script.json')) as handle:
    script = json.load(handle)
part = script.get(sys.argv[1], {{}})
for delay, text in part.get('output', []):
    time.sleep(delay)
    os.write(1, text.encode())
time.sleep(part.get('sleep', 0))
sys.stderr.write(part.get('stderr', ''))
sys.exit(part.get('rc', 0))
'''
NAME = 'web1-ai-0a1b2c3d'
DONE = 'Installing bsd\nCONGRATULATIONS! Your OpenBSD install has been successfully completed!\n'


@pytest.fixture
def vmctl_script(tmp_path):
    """Vmctl on a script: ``console`` writes its output (with delays) then sleeps, ``wait`` sleeps then exits."""
    def make(**script):
        (tmp_path / 'script.json').write_text(json.dumps(script))
        binary = tmp_path / 'vmctl'
        binary.write_text(FAKE_VMCTL.format(python=sys.executable))
        binary.chmod(0o755)
        return Vmctl(str(binary), environ=dict(os.environ, FAKE_VMCTL_STATE=str(tmp_path)))

    make.argv = lambda: sorted((tmp_path / 'argv').read_text().splitlines())
    return make


def run(vmctl, timeout=20, console_log=None, secrets=()):
    started = time.monotonic()
    outcome = install_run.run_install(FakeModule(), vmctl, SimpleNamespace(name=NAME), timeout, console_log, list(secrets))
    return outcome, time.monotonic() - started


def test_a_successful_install_ends_with_the_vm_and_logs_the_console_privately(vmctl_script, tmp_path):
    log = tmp_path / 'console.log'
    log.write_text('an older, longer transcript\n' * 10)
    log.chmod(0o644)
    vmctl = vmctl_script(console=dict(output=[[0.05, 'Installing bsd\n'], [0.1, 'root password %s\n' % RANDOM_PASSWORD],
                                              [0, 'CONGRATULATIONS! Your OpenBSD install has been successfully completed!\n']]),
                         wait=dict(sleep=0.5))
    (succeeded, reason, duration, transcript), elapsed = run(vmctl, console_log=str(log), secrets=[RANDOM_PASSWORD])
    assert (succeeded, reason) == (True, None)
    assert transcript == 'Installing bsd\nroot password %s\nCONGRATULATIONS! Your OpenBSD install has been successfully ' \
                         'completed!\n' % RANDOM_PASSWORD
    assert 0.5 <= duration < elapsed < 5
    assert vmctl.calls == [['vmctl', 'start', NAME], ['vmctl', 'console', NAME], ['vmctl', 'wait', NAME]]
    assert vmctl_script.argv() == ['console ' + NAME, 'start ' + NAME, 'wait ' + NAME]
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text() == 'Installing bsd\nroot password [redacted]\nCONGRATULATIONS! Your OpenBSD install has been ' \
                              'successfully completed!\n'


def open_fds():
    return sorted(os.listdir('/proc/self/fd' if os.path.isdir('/proc/self/fd') else '/dev/fd'))


def test_the_vm_ending_without_the_success_marker_is_a_failure_and_no_descriptor_stays_open(vmctl_script, tmp_path):
    vmctl = vmctl_script(console=dict(output=[[0, 'Installing bsd\n']]), wait=dict(sleep=0.3))
    before = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        (succeeded, reason, _duration, transcript), _elapsed = run(vmctl, console_log=str(tmp_path / 'console.log'))
        gc.collect()
    assert open_fds() == before
    # closed by run_install itself, not left to the garbage collector
    assert [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)] == []
    assert (succeeded, reason, transcript) == (
        False, 'the VM ended without the installer reporting success (CONGRATULATIONS! not on the console)', 'Installing bsd\n')
    assert 'stop -fw ' + NAME not in vmctl_script.argv()


def test_a_failure_on_the_console_stops_the_vm_at_once(vmctl_script):
    vmctl = vmctl_script(console=dict(output=[[0, 'Fetching http://100.64.1.2/install.conf\nResponse file location? ']], sleep=30),
                         wait=dict(sleep=10))
    (succeeded, reason, duration, transcript), elapsed = run(vmctl)
    assert succeeded is False
    assert reason.startswith("the installer found no response file ('Response file location?' on the console): "
                             "the installer fetched no response file from the install server")
    assert transcript == 'Fetching http://100.64.1.2/install.conf\nResponse file location? '
    assert duration < elapsed < 5
    assert vmctl.calls[-1] == ['vmctl', 'stop', '-fw', NAME]


def test_install_timeout_stops_the_vm_and_names_the_limit(vmctl_script):
    vmctl = vmctl_script(console=dict(output=[[0, 'Installing bsd\n']], sleep=30), wait=dict(sleep=10))
    before = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        (succeeded, reason, duration, transcript), elapsed = run(vmctl, timeout=1)
        gc.collect()
    # the console and vmctl wait, still running at the timeout, are killed and reaped; nothing left open
    assert open_fds() == before
    assert [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)] == []
    assert (succeeded, reason, transcript) == (False, 'the install did not finish within install_timeout (1 s)', 'Installing bsd\n')
    assert 1 <= duration < elapsed < 5
    assert vmctl.calls == [['vmctl', 'start', NAME], ['vmctl', 'console', NAME], ['vmctl', 'wait', NAME],
                           ['vmctl', 'stop', '-fw', NAME]]


def test_the_end_of_the_vm_is_not_held_up_by_a_console_that_stays_open(vmctl_script):
    vmctl = vmctl_script(console=dict(output=[[0, DONE]], sleep=10), wait=dict(sleep=0.3))
    (succeeded, _reason, duration, _transcript), elapsed = run(vmctl)
    assert succeeded is True
    assert duration < elapsed < 4


@pytest.mark.parametrize('stderr', ['vmctl: wait vm command failed: Invalid argument\n', 'vmctl: vm not found\n'])
def test_a_wait_that_finds_the_vm_already_gone_counts_as_its_end(vmctl_script, stderr):
    vmctl = vmctl_script(console=dict(output=[[0, DONE]]), wait=dict(sleep=0.3, stderr=stderr, rc=1))
    (succeeded, reason, _duration, _transcript), _elapsed = run(vmctl)
    assert (succeeded, reason) == (True, None)


def test_a_failed_wait_is_the_reason(vmctl_script):
    vmctl = vmctl_script(console=dict(output=[[0, DONE]]), wait=dict(sleep=0.3, stderr='vmctl: wait failed: Operation not permitted\n', rc=1))
    (succeeded, reason, _duration, _transcript), _elapsed = run(vmctl)
    assert (succeeded, reason) == (False, 'vmctl wait %s failed: vmctl: wait failed: Operation not permitted' % NAME)


def test_a_vm_that_does_not_start_raises_the_vmctl_error(vmctl_script, tmp_path):
    vmctl = vmctl_script(start=dict(stderr='vmctl: start vm command failed: Cannot allocate memory\n', rc=1))
    with pytest.raises(VmctlError, match='^start vm command failed: Cannot allocate memory'):
        run(vmctl, console_log=str(tmp_path / 'console.log'))
    assert vmctl.calls == [['vmctl', 'start', NAME]]
    assert (tmp_path / 'console.log').read_text() == ''


def test_a_vmctl_error_before_the_run_fails_the_install_with_the_commands(install_env, monkeypatch):
    def refused(vmctl, definition):
        vmctl.calls.append(['vmctl', 'load', '/tmp/vmm-autoinstall-x.conf'])
        raise VmctlError('load failed: Permission denied')

    monkeypatch.setattr(install_run, 'prepare_vm', refused)
    payload = dict(response_file='System hostname = web1\n', inputs_sha256='a' * 64, password_hashes={})
    with pytest.raises(install_run.InstallFailure) as caught:
        install_run.install(FakeModule(), install_env.params, payload, Publication(install_env.params, payload))
    assert str(caught.value) == 'load failed: Permission denied'
    assert caught.value.details == dict(commands=[['vmctl', 'load', '/tmp/vmm-autoinstall-x.conf']])


def test_the_manifest_names_the_hostname_or_else_the_vm_name_and_the_duration_in_milliseconds(install_env, monkeypatch):
    monkeypatch.setattr(install_run, 'run_install', lambda *args: (True, None, 1.23456, 'CONGRATULATIONS!\n'))
    payload = dict(response_file='System hostname = www\n', inputs_sha256='a' * 64, password_hashes={})
    params = dict(install_env.params, hostname='www')
    result = install_run.install(FakeModule(), params, payload, Publication(params, payload))
    assert result['install']['duration'] == 1.235
    assert read_manifest(str(install_env.disk))['hostname'] == 'www'
    params = dict(install_env.params, hostname=None)
    payload = dict(payload, inputs_sha256='b' * 64)
    install_run.install(FakeModule(), params, payload, Publication(params, payload))
    assert read_manifest(str(install_env.disk))['hostname'] == 'web1'


def test_an_unreadable_vm_conf_names_the_parameter(tmp_path):
    (tmp_path / 'vm.conf').write_text('vm "x" {\n')
    with pytest.raises(install_run.InstallFailure) as caught:
        install_run.install_server_address(str(tmp_path / 'vm.conf'), 3)
    assert str(caught.value) == "vm_conf: %s/vm.conf:1: syntax error: vm 'x' has no closing brace" % tmp_path


def test_console_output_after_the_vms_end_is_still_read(vmctl_script):
    """The VM's last lines can reach the console after vmctl wait returned: drain collects them."""
    vmctl = vmctl_script(console=dict(output=[[0, 'Installing bsd\n'], [0.5, DONE]]), wait=dict(sleep=0.2))
    (succeeded, reason, _duration, transcript), _elapsed = run(vmctl)
    assert (succeeded, reason) == (True, None)
    assert transcript == 'Installing bsd\n' + DONE
