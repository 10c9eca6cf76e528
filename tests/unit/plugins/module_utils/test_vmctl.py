# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vmctl client against vmctl's real output formats and messages (vmctl-facts.md)."""
from __future__ import annotations

import os
import stat
import textwrap

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import vmctl as v
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import MIB

# vmctl-facts.md §2, computed with the real printf formats.
REFERENCE_STATUS = """\
   ID   PID VCPUS  MAXMEM  CURMEM     TTY        OWNER    STATE NAME
    1 72014     1    1.0G    1.0G   ttyp0         root  running web1
    2     -     1    512M       -       -         root  stopped db1
    3 81234     1    2.0G    316M   ttyp1    joe:staff   paused test
"""


def test_parse_status_reference_example():
    web1, db1, test = v.parse_status(REFERENCE_STATUS)
    assert web1 == v.VmStatus(id=1, pid=72014, vcpus=1, maxmem=1024 * MIB, curmem=1024 * MIB, tty='ttyp0',
                              owner='root', owner_group=None, state='running', name='web1')
    assert web1.running
    assert (db1.pid, db1.curmem, db1.tty, db1.state, db1.maxmem, db1.running) == (None, None, None, 'stopped', 512 * MIB, False)
    assert (test.owner, test.owner_group, test.state, test.curmem, test.running) == ('joe', 'staff', 'paused', 316 * MIB, True)


def test_parse_status_header_only_is_no_vms():
    assert v.parse_status(v.STATUS_HEADER + '\n') == []


@pytest.mark.parametrize('state', v.STATES)
def test_every_state_is_parsed(state):
    row = '%5u %5s %5d %7s %7s %7s %12s %8s %s' % (7, '-', 1, '512M', '-', '-', 'root', state, 'vm-x.1')
    (record,) = v.parse_status(v.STATUS_HEADER + '\n' + row + '\n')
    assert record.state == state and record.name == 'vm-x.1' and record.id == 7


def test_owner_truncated_to_15_chars_and_numeric_ids_are_kept():
    row = '%5u %5s %5d %7s %7s %7s %12s %8s %s' % (4, '-', 1, '128G', '-', '-', '1000:verylonggr', 'stopped', 'big')
    (record,) = v.parse_status(v.STATUS_HEADER + '\n' + row)
    assert (record.owner, record.owner_group, record.maxmem) == ('1000', 'verylonggr', 128 * 1024 * MIB)


@pytest.mark.parametrize('output, quoted', [
    ('', "''"),
    ('vmctl: connect: /var/run/vmd.sock: No such file or directory\n', 'no header'),
    (v.STATUS_HEADER + '\n    1 72014     1    1.0G    1.0G   ttyp0         root  sleeping web1\n', 'sleeping web1'),
    (v.STATUS_HEADER + '\n    1 72014     1    1.0Q    1.0G   ttyp0         root  running web1\n', '1.0Q'),
    (v.STATUS_HEADER + '\n  garbage\n', 'garbage'),
])
def test_unparsable_status_quotes_the_raw_text(output, quoted):
    with pytest.raises(v.VmctlOutputError) as caught:
        v.parse_status(output)
    assert quoted in str(caught.value)


@pytest.mark.parametrize('name, problem', [
    ('web1', None), ('a.b_c-d', None), ('x' * 63, None),
    ('x' * 64, 'at most 63'), ('-web', 'must not start'), ('.web', 'must not start'), ('_web', 'must not start'),
    ('web 1', 'may contain only'), ('wéb', 'may contain only'), ('', 'non-empty'), ('123', 'numeric'),
    ('web1\n', 'may contain only'),
])
def test_vm_name_rules(name, problem):
    result = v.vm_name_problem(name)
    if problem is None:
        assert result is None
    else:
        assert problem in result


# vmctl's stderr texts (vmctl-facts.md §3, §4, §6, §7) and the exception each must become.
@pytest.mark.parametrize('stderr, error_class', [
    ('vmctl: connect: /var/run/vmd.sock: No such file or directory', v.VmdUnavailable),
    ('vmctl: connect: /var/run/vmd.sock: Connection refused', v.VmdUnavailable),
    ('vmctl: connect: /var/run/vmd.sock: Permission denied', v.PermissionDenied),
    ('vmctl: start vm command failed: Operation not permitted', v.PermissionDenied),
    ('vmctl: command failed: Operation not permitted', v.PermissionDenied),
    ('stopping vm web1: failed: Operation not permitted', v.PermissionDenied),
    ('stopping vm web1: vm not found', v.VmNotFound),
    ('stopping vm: vm not found', v.VmNotFound),
    ('waiting for vm web1: vm not found', v.VmNotFound),
    ('vmctl: console not found', v.VmNotFound),
    ('vmctl: vmop_result_read: Bad message', v.VmNotFound),
    ('vmctl: start vm command failed: Operation already in progress', v.VmAlreadyRunning),
    ('stopping vm web1: failed: Operation already in progress', v.VmStopInProgress),
    ('waiting for vm web1: failed: Operation already in progress', v.VmStopInProgress),
    ('stopping vm web1: failed: Invalid argument', v.VmNotRunning),
    ('stopping vm: cannot stop vm that is not running', v.VmNotRunning),
    ('vmctl: start vm command failed: No such file or directory', v.StartFileMissing),
    ('vmctl: start vm command failed: Device busy', v.NoTapDevice),
    ('vmctl: could not open disk image(s)', v.DiskUnavailable),
    ('usage:\tvmctl [-v] stop [-fw] [id | -a]', v.VmctlUsageError),
    ('vmctl: ambiguous argument: st\nusage:\tvmctl [-v] command [arg ...]', v.VmctlUsageError),
    ('vmctl: unknown argument: send\nusage:\tvmctl [-v] command [arg ...]', v.VmctlUsageError),
    ('vmctl: start vm command failed: Cannot allocate memory', v.VmctlError),
    ('vmctl: create imagefile operation failed: File exists', v.VmctlError),
])
def test_error_messages_map_to_typed_exceptions(stderr, error_class):
    found, message = v.classify_error(stderr)
    assert found is error_class
    assert message and not message.startswith('vmctl: ')


@pytest.fixture
def fake_vmctl(tmp_path):
    """A stand-in vmctl that records its argv/env and replies with canned output."""
    def make(stdout='', stderr='', rc=0, sleep=0):
        script = tmp_path / 'vmctl'
        script.write_text(textwrap.dedent('''\
            #!/bin/sh
            printf '%s\\n' "$@" > "{log}"
            echo "LANG=$LANG LC_ALL=$LC_ALL" >> "{log}"
            sleep {sleep}
            printf '%s' '{stdout}'
            printf '%s' '{stderr}' >&2
            exit {rc}
            ''').format(log=tmp_path / 'argv', stdout=stdout, stderr=stderr, rc=rc, sleep=sleep))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return v.Vmctl(str(script), environ={'PATH': os.environ['PATH'], 'LANG': 'de_DE.UTF-8'})

    make.argv = lambda: (tmp_path / 'argv').read_text().splitlines()
    return make


def test_status_ignores_exit_status_when_nothing_is_known(fake_vmctl):
    client = fake_vmctl(stdout=v.STATUS_HEADER + '\n', rc=1)
    assert client.status() == []
    assert fake_vmctl.argv() == ['status', 'LANG=C LC_ALL=C']
    assert client.calls == [['vmctl', 'status']]


def test_status_of_unknown_name_is_header_only_exit_0(fake_vmctl):
    client = fake_vmctl(stdout=v.STATUS_HEADER + '\n', rc=0)
    assert client.find('nope') is None


def test_status_raises_when_vmd_is_down(fake_vmctl):
    client = fake_vmctl(stderr='vmctl: connect: /var/run/vmd.sock: No such file or directory\n', rc=1)
    with pytest.raises(v.VmdUnavailable) as caught:
        client.status()
    assert caught.value.rc == 1 and 'vmd.sock' in caught.value.stderr
    assert 'vmctl status' in str(caught.value)


def test_start_builds_options_before_the_name(fake_vmctl):
    client = fake_vmctl(stderr='vmctl: started vm 3 successfully, tty /dev/ttyp2\n')
    line = client.start('web1', kernel='/bsd.rd', boot_device='net', disks=['/v/a.qcow2', 'raw:/v/b'],
                        memory='1G', local_interfaces=1, switches=['uplink'], interface_count=2)
    assert line == 'vmctl: started vm 3 successfully, tty /dev/ttyp2'
    assert fake_vmctl.argv()[:-1] == ['start', '-b', '/bsd.rd', '-B', 'net', '-d', '/v/a.qcow2', '-d', 'raw:/v/b',
                                      '-i', '2', '-L', '-m', '1G', '-n', 'uplink', 'web1']


def test_memory_in_bytes_is_passed_as_bytes(fake_vmctl):
    client = fake_vmctl()
    client.start('web1', memory=512 * MIB)
    assert fake_vmctl.argv()[:3] == ['start', '-m', str(512 * MIB)]


def test_bad_size_is_refused_before_running_vmctl(fake_vmctl):
    client = fake_vmctl()
    with pytest.raises(v.VmctlError, match="size: invalid size '12Q'"):
        client.create('/v/a.raw', size='12Q')
    assert client.calls == []


@pytest.mark.parametrize('kwargs, argv', [
    ({}, ['stop', 'web1']),
    ({'wait': True}, ['stop', '-w', 'web1']),
    ({'force': True}, ['stop', '-f', 'web1']),
    ({'wait': True, 'force': True}, ['stop', '-fw', 'web1']),
])
def test_stop_flags(fake_vmctl, kwargs, argv):
    client = fake_vmctl(stderr='stopping vm web1: terminated vm 1\n')
    assert client.stop('web1', **kwargs) == 'stopping vm web1: terminated vm 1'
    assert fake_vmctl.argv()[:-1] == argv


def test_stop_of_stopped_vm_is_typed(fake_vmctl):
    client = fake_vmctl(stderr='stopping vm db1: failed: Invalid argument\n', rc=1)
    with pytest.raises(v.VmNotRunning):
        client.stop('db1', wait=True)


def test_create_argv_forms(fake_vmctl):
    client = fake_vmctl(stderr='vmctl: qcow2 imagefile created\n')
    client.create('/v/new.img', base='/v/base.qcow2', fmt='qcow2')
    assert fake_vmctl.argv()[:-1] == ['create', '-b', '/v/base.qcow2', 'qcow2:/v/new.img']
    client.create('/v/big.raw', source='/v/small.raw', size='2G')
    assert fake_vmctl.argv()[:-1] == ['create', '-i', '/v/small.raw', '-s', '2G', '/v/big.raw']
    with pytest.raises(v.VmctlError, match='not both'):
        client.create('/v/x.qcow2', base='/a', source='/b')


def test_timeout_kills_and_raises(fake_vmctl):
    client = fake_vmctl(sleep=5)
    with pytest.raises(v.VmctlTimeout, match='within 0.2 seconds'):
        client.wait('web1', timeout=0.2)


def test_missing_binary_is_a_clear_error(tmp_path):
    with pytest.raises(v.VmctlError, match='vmctl not found'):
        v.Vmctl('vmctl-does-not-exist-here')


def test_enoent_at_start_names_both_causes():
    error = v.StartFileMissing('start vm command failed: No such file or directory', argv=['vmctl', 'start', 'web1'], rc=1,
                               stderr='vmctl: start vm command failed: No such file or directory\n')
    text = str(error)
    assert 'no free /dev/tapN' in text and 'MAKEDEV' in text and 'boot image' in text


@pytest.mark.parametrize('configured, shown', [
    # x86_vm.c create_memory_map: RAM + 384K reserved below 1M + a 4M BIOS copy below 4G, all counted by vmm(4)
    ('64M', '68.0M'), ('100M', '104M'), ('512M', '516M'), ('1000M', '1004M'), ('1020M', '1.0G'), ('1G', '1.0G'),
    ('3840M', '3.8G'), ('4G', '4.0G'), ('16G', '16.0G'), ('6M', '10.0M'),
])
def test_running_vm_maxmem_is_the_configured_memory_plus_4m(configured, shown):
    from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import fmt_scaled, scan_scaled
    assert fmt_scaled(v.vmm_memory_size(scan_scaled(configured))) == shown
    assert v.vmm_memory_size(scan_scaled(configured)) == scan_scaled(configured) + 4 * 1024 * 1024


def row(state, pid='72014', maxmem='516M'):
    return v.parse_status_row('    1 %5s     1 %7s    100M   ttyp0         root %8s web1' % (pid, maxmem, state))


def test_waiting_with_a_pid_is_live_and_reported_running():
    waiting = row('waiting')
    assert waiting.live and waiting.running and waiting.effective_state == 'running' and waiting.state == 'waiting'
    queued = v.parse_status_row('    1     -     1    512M       -       -         root  waiting web1')
    assert not queued.live and queued.effective_state == 'waiting'


def test_shows_memory_compares_as_vmctl_prints():
    mib = 1024 * 1024
    assert row('running').shows_memory(512 * mib)
    assert not row('running', maxmem='512M').shows_memory(512 * mib), 'a running 512M VM never shows 512M'
    assert not row('running').shows_memory(1024 * mib)
    assert row('running', maxmem='1.0G').shows_memory(1020 * mib), 'fmt_scaled hides the difference from 1G on'
    stopped = v.parse_status_row('    1     -     1    512M       -       -         root  stopped web1')
    assert stopped.shows_memory(512 * mib) and not stopped.shows_memory(256 * mib)


@pytest.mark.parametrize('configured', [1, 4 * 1024 * 1024, 5 * 1024 * 1024])
def test_a_running_vm_of_5m_or_less_shows_5m(configured):
    assert v.vmm_memory_size(configured) == 5 * 1024 * 1024


@pytest.mark.parametrize('fields', [
    ('x', '72014', '1', '512M'), ('1', '72014', 'two', '512M'), ('1', '7201x', '1', '512M'),
    ('1', '72014', '1', '512Mx'), ('1', '72014', '1', 'x512M'), ('1', '72014', '1', '1.25G'),
])
def test_a_row_with_a_malformed_number_is_an_output_error(fields):
    line = '%5s %5s %5s %7s    100M   ttyp0         root  running web1' % fields
    with pytest.raises(v.VmctlOutputError) as caught:
        v.parse_status_row(line)
    assert repr(line) in str(caught.value)


def test_error_text_names_the_command_exit_status_and_what_vmctl_said():
    error = v.VmNotFound('vm not found', argv=['vmctl', 'stop', 'web1'], rc=1,
                         stderr='stopping vm web1: vm not found\nsecond line\n')
    assert str(error) == 'vm not found (command: vmctl stop web1, exit 1, vmctl said: stopping vm web1: vm not found | second line)'
    timeout = v.VmctlTimeout('vmctl did not finish within 5 seconds', argv=['vmctl', 'wait', 'web1'], stderr=None)
    assert str(timeout) == 'vmctl did not finish within 5 seconds (command: vmctl wait web1)'
    assert str(v.VmctlError('a disk is created either way', rc=1)) == 'a disk is created either way'


def test_find_returns_the_record_of_that_name(fake_vmctl):
    client = fake_vmctl(stdout=REFERENCE_STATUS)
    assert client.find('db1') == v.VmStatus(id=2, pid=None, vcpus=1, maxmem=512 * MIB, curmem=None, tty=None,
                                            owner='root', owner_group=None, state='stopped', name='db1')
    assert client.find('db') is None


@pytest.mark.parametrize('call, argv', [
    (lambda client: client.reset(), ['reset', 'all']),
    (lambda client: client.reset('vms'), ['reset', 'vms']),
    (lambda client: client.pause('web1'), ['pause', 'web1']),
    (lambda client: client.unpause('web1'), ['unpause', 'web1']),
    (lambda client: client.reload(), ['reload']),
    (lambda client: client.load('/etc/vm.conf.new'), ['load', '/etc/vm.conf.new']),
    (lambda client: client.stop_all(), ['stop', '-a']),
    (lambda client: client.stop_all(wait=True), ['stop', '-wa']),
    (lambda client: client.wait('web1'), ['wait', 'web1']),
])
def test_commands_return_what_vmctl_said_on_stderr(fake_vmctl, call, argv):
    client = fake_vmctl(stdout='ignored\n', stderr='vmctl: done\n')
    assert call(client) == 'vmctl: done'
    assert fake_vmctl.argv()[:-1] == argv


@pytest.mark.parametrize('stderr, message', [
    ('', 'vmctl failed without a message'), (None, 'vmctl failed without a message'), ('\n  \n', 'vmctl failed without a message'),
    ('vmctl: first\nvmctl: something odd\n', 'something odd'),
])
def test_an_unknown_error_is_a_plain_vmctl_error_with_the_last_line(stderr, message):
    assert v.classify_error(stderr) == (v.VmctlError, message)


def test_output_without_a_header_quotes_at_most_400_characters():
    with pytest.raises(v.VmctlOutputError) as caught:
        v.parse_status(None)
    assert str(caught.value) == "vmctl status output has no header line; got: ''"
    with pytest.raises(v.VmctlOutputError) as caught:
        v.parse_status('x' * 500)
    assert str(caught.value) == "vmctl status output has no header line; got: '%s'" % ('x' * 400)


def test_the_name_is_the_rest_of_the_row():
    record = v.parse_status_row('    2     -     1    512M       -       -         root  stopped odd name ')
    assert record.name == 'odd name '


@pytest.mark.parametrize('data, text', [(None, ''), (b'caf\xc3\xa9\n', 'caf\u00e9\n'), ('as is', 'as is')])
def test_output_is_text(data, text):
    assert v._text(data) == text


def test_start_with_a_cdrom_and_a_template(fake_vmctl):
    client = fake_vmctl(stderr='vmctl: started vm 4 successfully, tty /dev/ttyp3\n')
    client.start('web2', cdrom='/v/install78.iso', instance_of='base', memory='512M')
    assert fake_vmctl.argv()[:-1] == ['start', '-m', '512M', '-r', '/v/install78.iso', '-t', 'base', 'web2']


def test_a_vmctl_that_cannot_be_executed_is_a_vmctl_error(tmp_path):
    binary = tmp_path / 'vmctl'
    binary.write_text('not a program')
    binary.chmod(0o644)
    client = v.Vmctl(str(binary))
    with pytest.raises(v.VmctlError) as caught:
        client.status()
    assert caught.type is v.VmctlError, "not a subclass: vmctl never ran, so it said nothing"
    assert caught.value.argv == ['vmctl', 'status']
    assert str(caught.value).startswith("cannot run vmctl: [Errno 13] Permission denied: '%s' (command: vmctl status)" % binary)
