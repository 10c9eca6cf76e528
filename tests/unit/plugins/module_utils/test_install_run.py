# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install run with the VM part replaced: the manifest beside the disk decides what is installed again."""

from __future__ import annotations

import base64
import json
import os
import stat
from types import SimpleNamespace

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import install_run
from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_publish import SERVER_TOKEN, Publication, PublishError
from ansible_collections.openbsd.vmm.plugins.module_utils.install_manifest import read_manifest
from ansible_collections.openbsd.vmm.plugins.module_utils.installer import manifest_path

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
        self.commands, self.warnings, self.refuse = [], [], refuse

    def get_bin_path(self, name, required=False):
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
