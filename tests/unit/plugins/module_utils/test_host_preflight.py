# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflight's checks: what each reads, when it fails, and that its advice names the fix."""
from __future__ import annotations

import collections
import platform
import os
import sys

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import host_preflight as p


class FakeProbe:
    """Answers commands from a table {argv tuple: (rc, stdout, stderr)}; unknown commands are 'not found'."""

    def __init__(self, answers=None):
        self.answers = dict(answers or {})
        self.commands = []
        self.environ = dict(os.environ)

    def run(self, argv):
        self.commands.append(list(argv))
        return self.answers.get(tuple(argv), (None, '', 'cannot run %s: No such file or directory' % argv[0]))


def params(**extra):
    base = dict(vm_conf='/etc/vm.conf', dev_dir='/dev', vms=[], pty_spare=8, sysctls=[], pf=True, pf_anchor='openbsd-vmm',
                httpd=True, httpd_conf='/etc/httpd.conf', listen=['127.0.0.1'], port=80, dhcpd=False, dhcpd_conf='/etc/dhcpd.conf',
                chroot='/var/www', docroot='/var/www/htdocs', sets_dir=None, release='7.8', arch='amd64', www_user='www',
                signify_key=None, image_dir='/var/vmm', min_free='4G')
    base.update(extra)
    return base


@pytest.mark.parametrize('uname, status, text', [
    (('OpenBSD', 'h', '7.8', 'GENERIC.MP#0', 'amd64'), 'pass', 'OpenBSD 7.8/amd64'),
    (('OpenBSD', 'h', '7.8', 'GENERIC#0', 'arm64'), 'fail', 'has no vmm(4)'),
    (('Linux', 'h', '6.1.0', '#1', 'x86_64'), 'fail', 'not OpenBSD'),
])
def test_os(uname, status, text):
    result = p.check_os(FakeProbe(), params(), uname=uname)
    assert result['status'] == status and text in result['detail']
    assert result['facts'] == dict(system=uname[0], release=uname[2], arch=uname[4])


def test_become_needs_root():
    assert p.check_become(FakeProbe(), params(), euid=0)['status'] == 'pass'
    result = p.check_become(FakeProbe(), params(), euid=65534)
    assert result['status'] == 'fail'
    assert 'become: true' in result['fix'] and 'become_method: community.general.doas' in result['fix'] and 'doas -C' in result['fix']


def test_vmd_enabled_reads_the_configured_vm_conf():
    off = FakeProbe({('rcctl', 'get', 'vmd', 'status'): (1, '', '')})
    result = p.check_vmd_enabled(off, params())
    assert result['status'] == 'fail' and result['fix'].startswith('rcctl enable vmd')
    on = {('rcctl', 'get', 'vmd', 'status'): (0, '', ''), ('rcctl', 'get', 'vmd', 'flags'): (0, '\n', '')}
    assert p.check_vmd_enabled(FakeProbe(on), params())['status'] == 'pass'
    result = p.check_vmd_enabled(FakeProbe(on), params(vm_conf='/srv/vm.conf'))
    assert result['status'] == 'fail' and 'rcctl set vmd flags -f /srv/vm.conf' in result['fix']
    on[('rcctl', 'get', 'vmd', 'flags')] = (0, '-f /srv/vm.conf\n', '')
    assert p.check_vmd_enabled(FakeProbe(on), params(vm_conf='/srv/vm.conf'))['status'] == 'pass'


def test_vmd_running_and_vm_conf():
    probe = FakeProbe({('rcctl', 'check', 'vmd'): (1, 'vmd(failed)\n', ''),
                       ('vmd', '-n', '-f', '/etc/vm.conf'): (1, '', '/etc/vm.conf:3: syntax error\n')})
    running = p.check_vmd_running(probe, params())
    assert running['status'] == 'fail' and 'rcctl start vmd' in running['fix'] and 'vmd(failed)' in running['detail']
    conf = p.check_vm_conf(probe, params())
    assert conf['status'] == 'fail' and '/etc/vm.conf:3: syntax error' in conf['detail'] and 'vmd -n -f /etc/vm.conf' in conf['fix']


def test_taps_advice_names_the_missing_nodes_and_the_role_variable(tmp_path):
    for index in range(16):
        (tmp_path / ('tap%d' % index)).write_text('')
    vms = [{'name': 'vm%d' % index} for index in range(39)] + [{'name': 'two', 'interfaces': 2}, {'name': 'gone', 'state': 'absent'}]
    result = p.check_taps(FakeProbe(), params(dev_dir=str(tmp_path), vms=vms))
    assert result['status'] == 'fail'
    assert (result['facts']['usable'], result['facts']['needed']) == (16, 41)
    names = ' '.join('tap%d' % index for index in range(16, 41))
    assert result['fix'] == 'cd %s && sh MAKEDEV %s (or the vmm_host role with vmm_host_tap_count: 41)' % (tmp_path, names)
    result = p.check_taps(FakeProbe(), params(dev_dir=str(tmp_path), vms=vms[:16]))
    assert result['status'] == 'pass' and result['fix'] == ''
    (tmp_path / 'tap3').unlink()
    result = p.check_taps(FakeProbe(), params(dev_dir=str(tmp_path), vms=vms[:3]))
    assert result['status'] == 'pass' and 'tap3 is missing, so the 12 nodes after it are never used' in result['detail']
    assert p.check_taps(FakeProbe(), params(dev_dir=str(tmp_path), vms=vms[:4]))['status'] == 'fail'


def test_ptys_count_consoles_and_spare(tmp_path):
    result = p.check_ptys(FakeProbe(), params(dev_dir=str(tmp_path), vms=[{'name': 'a'}], pty_spare=3))
    assert result['status'] == 'fail' and result['facts']['needed'] == 4
    assert 'sh MAKEDEV pty0' in result['fix'] and 'vmm_host_pty_groups: 1' in result['fix']


def test_sysctls_name_value_and_role_variable():
    probe = FakeProbe({('sysctl', '-n', 'net.inet.ip.forwarding'): (0, '0\n', ''),
                       ('sysctl', '-n', 'net.inet.ip.arpq.maxlen'): (0, '1024\n', ''),
                       ('sysctl', '-n', 'net.no.such'): (1, '', 'sysctl: second level name no in net.no.such is invalid\n')})
    wanted = [dict(name='net.inet.ip.forwarding', value='1', variable='vmm_host_forwarding'),
              dict(name='net.inet.ip.arpq.maxlen', value='1024', variable='vmm_host_arpq_maxlen'),
              dict(name='net.no.such', value='1')]
    forwarding, arpq, missing = p.check_sysctls(probe, params(sysctls=wanted))
    assert forwarding['name'] == 'sysctl net.inet.ip.forwarding' and forwarding['status'] == 'fail'
    assert 'sysctl net.inet.ip.forwarding=1' in forwarding['fix'] and 'vmm_host_forwarding' in forwarding['fix']
    assert arpq['status'] == 'pass' and arpq['facts']['current'] == '1024'
    assert missing['status'] == 'fail' and 'is invalid' in missing['detail']


# sbin/pfctl/pfctl_parser.c print_status(): "%-44s" status line then "%15s" debug level.
PFCTL_SI_ENABLED = '%-44s%15s\n\nState Table                          Total             Rate\n' % (
    'Status: Enabled for 0 days 01:02:03', 'Debug: err')


def test_pf_enabled():
    assert p.check_pf_enabled(FakeProbe({('pfctl', '-si'): (0, PFCTL_SI_ENABLED, '')}), params())['status'] == 'pass'
    result = p.check_pf_enabled(FakeProbe({('pfctl', '-si'): (0, 'Status: Disabled\n', '')}), params())
    assert result['status'] == 'fail' and result['fix'].startswith('pfctl -e')
    assert p.check_pf_enabled(FakeProbe(), params(pf=False))['status'] == 'skip'


def test_pf_anchor_must_be_loaded_and_called():
    rules = 'match out on egress inet from 100.64.0.0/10 to any nat-to (egress)\npass in from 100.64.0.0/10 to any\n'
    called = FakeProbe({('pfctl', '-sr'): (0, 'block return all\nanchor "openbsd-vmm" all\n', ''),
                        ('pfctl', '-a', 'openbsd-vmm', '-sr'): (0, rules, '')})
    assert p.check_pf_anchor(called, params())['status'] == 'pass'
    uncalled = FakeProbe({('pfctl', '-sr'): (0, 'block return all\nanchor "openbsd-vmm-old" all\n', ''),
                          ('pfctl', '-a', 'openbsd-vmm', '-sr'): (0, rules, '')})
    result = p.check_pf_anchor(uncalled, params())
    assert result['status'] == 'fail' and 'never calls it' in result['detail'] and 'vmm_host_pf' in result['fix']
    empty = FakeProbe({('pfctl', '-sr'): (0, '', ''), ('pfctl', '-a', 'openbsd-vmm', '-sr'): (0, '', '')})
    assert 'has no rules loaded' in p.check_pf_anchor(empty, params())['detail']


@pytest.mark.parametrize('rule, found', [
    # pfctl -sr as OpenBSD prints it, and as written in the anchor file
    ('pass in quick on tap inet proto tcp from 100.64.0.0/10 to 100.64.0.0/10 port = 80 flags S/SA rdr-to 127.0.0.1 port 80', True),
    ('pass in quick on tap inet proto tcp from 100.64.0.0/10 to 100.64.0.0/10 port 80 rdr-to 127.0.0.1 port 80', True),
    ('pass in quick on tap inet proto tcp to port www rdr-to 127.0.0.1 port 80', True),
    ('pass in quick on tap inet proto tcp to port 80 rdr-to 127.0.0.10 port 80', False),
    ('pass in quick on tap inet proto tcp to port 80 rdr-to 127.0.0.1 port 8080', False),
    ('pass in quick proto { udp tcp } from 100.64.0.0/10 to any port domain rdr-to 127.0.0.1 port 80', False),
    # from egress, or from anywhere: not the VMs' rule
    ('pass in quick on egress inet proto tcp to port 80 rdr-to 127.0.0.1 port 80', False),
    ('pass in quick inet proto tcp to port 80 rdr-to 127.0.0.1 port 80', False),
])
def test_rdr_rule(rule, found):
    assert (p.rdr_rule(['pass in from 100.64.0.0/10 to any', rule], '127.0.0.1', 80) == rule) is found


def test_install_server_answers_and_is_redirected_to():
    url = 'http://127.0.0.1/pub/OpenBSD/7.8/amd64/index.txt'
    index = '-rw-r--r--  1 0  0  1234 Oct 01 00:00:00 2025 bsd.rd\n'
    rdr = 'pass in quick on tap inet proto tcp from 100.64.0.0/10 to 100.64.0.0/10 port = 80 rdr-to 127.0.0.1 port 80\n'
    answers = {('ftp', '-o', '-', url): (0, index, ''), ('pfctl', '-a', 'openbsd-vmm', '-sr'): (0, rdr, '')}
    result = p.check_install_server(FakeProbe(answers), params())
    assert result['status'] == 'pass' and result['facts']['rdr_rules'] == [rdr.strip()]
    # a switch whose host address is a next-server needs its own rule
    switch = dict(name='uplink', interface='veb0', address='10.0.0.1', address_interface='vport0')
    result = p.check_install_server(FakeProbe(answers), params(switches=[switch, dict(name='plain', interface='veb1')]))
    assert result['status'] == 'fail' and 'port 80 on vport0 there' in result['detail']
    assert 'vmm_host_install_redirect: {address: 127.0.0.1, port: 80}' in result['fix']
    answers[('pfctl', '-a', 'openbsd-vmm', '-sr')] = (0, rdr + 'pass in quick on vport0 inet proto tcp to 10.0.0.1 port = 80 rdr-to 127.0.0.1 port 80\n', '')
    assert p.check_install_server(FakeProbe(answers), params(switches=[switch]))['status'] == 'pass'
    answers[('pfctl', '-a', 'openbsd-vmm', '-sr')] = (0, 'pass in from 100.64.0.0/10 to any\n', '')
    result = p.check_install_server(FakeProbe(answers), params())
    assert result['status'] == 'fail' and 'rdr-to 127.0.0.1 port 80' in result['detail'] and 'vmm_host role' in result['fix']
    assert 'port 80 on tap there' in result['detail']
    answers[('ftp', '-o', '-', url)] = (1, '', 'ftp: connect: Connection refused\n')
    result = p.check_install_server(FakeProbe(answers), params())
    assert result['status'] == 'fail' and 'Connection refused' in result['detail']
    assert 'install_server_listen' in result['fix'] and 'ftp -o - ' + url in result['fix']
    port = p.check_install_server(FakeProbe(), params(listen=['fd00::1'], port=8080))
    assert 'ftp -o - http://[fd00::1]:8080/pub/OpenBSD/7.8/amd64/index.txt' in port['detail']


def test_readable_by_uses_owner_then_group_then_other(tmp_path):
    user = collections.namedtuple('User', 'pw_uid pw_gid')(os.getuid() + 1, 4242)
    path = tmp_path / 'f'
    path.write_text('x')
    gid = os.stat(path).st_gid
    for mode, groups, readable in ((0o644, set(), True), (0o640, set(), False), (0o640, {gid}, True), (0o604, {gid}, False)):
        path.chmod(mode)
        assert p.readable_by(str(path), user, groups) is readable, (oct(mode), groups)
    path.chmod(0o600)
    owner = collections.namedtuple('User', 'pw_uid pw_gid')(os.getuid(), 4242)
    assert p.readable_by(str(path), owner, set())


def test_docroot_needs_the_installer_files_readable_by_www(tmp_path):
    chroot = tmp_path / 'www'
    sets = chroot / 'htdocs' / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    sets.mkdir(parents=True)
    for name in ('index.txt', 'SHA256.sig', 'bsd.rd', 'base78.tgz', 'man78.tgz'):
        (sets / name).write_text(name)
        (sets / name).chmod(0o644)
    for directory in (chroot, chroot / 'htdocs', sets.parent.parent.parent, sets.parent.parent, sets.parent, sets):
        directory.chmod(0o755)
    tmp_path.chmod(0o700)  # outside the chroot: does not matter to httpd
    args = params(chroot=str(chroot), docroot=str(chroot / 'htdocs'), www_user='nobody')
    assert p.check_docroot(FakeProbe(), args)['status'] == 'pass'
    (sets / 'man78.tgz').chmod(0o600)
    (sets / 'bsd.rd').unlink()
    (sets.parent).chmod(0o750)
    result = p.check_docroot(FakeProbe(), args)
    assert result['status'] == 'fail'
    assert 'missing in %s: bsd.rd' % sets in result['detail']
    assert 'nobody cannot enter %s (mode 0750)' % sets.parent in result['detail']
    assert '%s (' % (sets / 'man78.tgz') in result['detail'] and ' 0600)' in result['detail']
    assert 'install_server role' in result['fix'] and 'root:nobody 0640' in result['fix']
    result = p.check_docroot(FakeProbe(), dict(args, www_user='no-such-user-here'))
    assert result['status'] == 'fail' and 'there is no user no-such-user-here' in result['detail']


def test_signify_key(tmp_path):
    key = tmp_path / 'openbsd-78-base.pub'
    result = p.check_signify_key(FakeProbe(), params(signify_key=str(key)))
    assert result['status'] == 'fail' and 'openbsd-78-base.pub' in result['fix'] and 'install_server_signify_key' in result['fix']
    for text in ('not a key\n', 'untrusted comment: x\nRWQTKNnK3CZZ8BBhe8ZvDcQxsCFSwq3Y+3bdgRfC1MfwX8Ay4DU+dm7\n',
                 'untrusted comment: x\nAAQTKNnK3CZZ8BBhe8ZvDcQxsCFSwq3Y+3bdgRfC1MfwX8Ay4DU+dm7n\n'):
        key.write_text(text)
        assert 'not a signify public key' in p.check_signify_key(FakeProbe(), params(signify_key=str(key)))['detail'], text
    key.write_text('untrusted comment: openbsd 7.8 base public key\nRWQTKNnK3CZZ8BBhe8ZvDcQxsCFSwq3Y+3bdgRfC1MfwX8Ay4DU+dm7n\n')
    assert p.check_signify_key(FakeProbe(), params(signify_key=str(key)))['status'] == 'pass'
    assert p.signify_key_path(params(release='7.9')) == '/etc/signify/openbsd-79-base.pub'


def test_free_space_measured_on_the_nearest_existing_directory(tmp_path):
    result = p.check_free_space(FakeProbe(), params(image_dir=str(tmp_path / 'a' / 'b'), min_free='1K'))
    assert result['status'] == 'pass' and result['facts']['measured_at'] == str(tmp_path)
    result = p.check_free_space(FakeProbe(), params(image_dir=str(tmp_path), min_free='7E'))
    assert result['status'] == 'fail' and 'vmm_disk_dir' in result['fix']
    assert p.check_free_space(FakeProbe(), params(min_free='lots'))['status'] == 'fail'


def test_skipped_daemons_and_a_crashing_check(monkeypatch):
    assert p.check_dhcpd(FakeProbe(), params())['status'] == 'skip'
    assert p.check_httpd(FakeProbe(), params(httpd=False))['status'] == 'skip'

    def check_broken(probe, args):
        raise KeyError('x')

    def check_fine(probe, args):
        return p.record('fine', p.PASS, 'ok')

    monkeypatch.setattr(p, 'CHECKS', (check_broken, check_fine))
    broken, fine = p.run_checks(params(), FakeProbe())
    assert (broken['name'], broken['status'], fine['status']) == ('broken', 'fail', 'pass')
    assert 'KeyError' in broken['detail'] and broken['fix']


def test_daemon_enabled_with_flags_and_running():
    conf = '/srv/httpd.conf'
    answers = {('httpd', '-n', '-f', conf): (0, '', 'configuration OK\n'), ('rcctl', 'get', 'httpd', 'status'): (0, '', ''),
               ('rcctl', 'get', 'httpd', 'flags'): (0, '\n', ''), ('rcctl', 'check', 'httpd'): (0, 'httpd(ok)\n', '')}
    result = p.check_httpd(FakeProbe(answers), params(httpd_conf=conf))
    assert result['status'] == 'fail' and 'rcctl set httpd flags -f /srv/httpd.conf' in result['fix']
    answers[('rcctl', 'get', 'httpd', 'flags')] = (0, '-f /srv/httpd.conf\n', '')
    assert p.check_httpd(FakeProbe(answers), params(httpd_conf=conf))['status'] == 'pass'
    answers[('rcctl', 'check', 'httpd')] = (1, 'httpd(failed)\n', '')
    assert p.check_httpd(FakeProbe(answers), params(httpd_conf=conf))['fix'].startswith('rcctl start httpd')
    answers[('httpd', '-n', '-f', conf)] = (1, '', '/srv/httpd.conf:2: syntax error\n')
    result = p.check_httpd(FakeProbe(answers), params(httpd_conf=conf))
    assert result['status'] == 'fail' and 'syntax error' in result['detail'] and 'install_server role' in result['fix']


def test_dhcpd_is_checked_with_its_own_config_flag_when_used():
    conf = '/srv/dhcpd.conf'
    answers = {('dhcpd', '-n', '-c', conf): (0, '', ''), ('rcctl', 'get', 'dhcpd', 'status'): (0, '', ''),
               ('rcctl', 'get', 'dhcpd', 'flags'): (0, '-c /srv/dhcpd.conf vport0\n', ''), ('rcctl', 'check', 'dhcpd'): (0, 'dhcpd(ok)\n', '')}
    result = p.check_dhcpd(FakeProbe(answers), params(dhcpd=True, dhcpd_conf=conf))
    assert result['status'] == 'pass' and result['facts']['flags'] == '-c /srv/dhcpd.conf vport0'
    answers[('rcctl', 'get', 'dhcpd', 'status')] = (1, '', '')
    result = p.check_dhcpd(FakeProbe(answers), params(dhcpd=True, dhcpd_conf=conf))
    assert result['status'] == 'fail'
    assert result['fix'].startswith('rcctl enable dhcpd && rcctl set dhcpd flags -c /srv/dhcpd.conf && rcctl start dhcpd')


# -- whole records: status, detail, fix and facts as the module reports them ----------------------

def test_probe_runs_commands_with_lang_c_and_records_them(monkeypatch):
    monkeypatch.setenv('PREFLIGHT_MARK', 'inherited')
    probe = p.Probe()
    assert probe.timeout == 30
    argv = ['sh', '-c', 'echo "$LANG $LC_ALL $PREFLIGHT_MARK $0"; echo oops >&2; exit 3', 7]
    assert probe.run(argv) == (3, 'C C inherited 7\n', 'oops\n')
    assert probe.commands == [['sh', '-c', 'echo "$LANG $LC_ALL $PREFLIGHT_MARK $0"; echo oops >&2; exit 3', '7']]
    own = p.Probe(environ=dict(PATH=os.environ['PATH'], LANG='fr_FR.UTF-8'))
    assert own.run(['sh', '-c', 'echo "$LANG $LC_ALL ${PREFLIGHT_MARK:-unset}"']) == (0, 'C C unset\n', '')


def test_probe_reports_a_missing_or_hanging_command():
    probe = p.Probe(timeout=1)
    assert probe.run(['/nonexistent/rcctl', 'check', 'vmd']) == (None, '', 'cannot run /nonexistent/rcctl: No such file or directory')
    assert probe.run(['sleep', '10']) == (None, '', 'sleep did not answer within 1 seconds')


def test_said_joins_stderr_then_stdout_and_cuts_at_300_characters():
    assert p._said('out 1\n\n  out 2 \n', 'err\n') == 'err | out 1 | out 2'
    assert p._said('x' * 400, '') == 'x' * 300


def test_python_names_the_interpreter():
    assert p.check_python(FakeProbe(), params()) == dict(
        name='python', status='pass', detail='%s (Python %s)' % (sys.executable, platform.python_version()), fix='',
        facts=dict(executable=sys.executable, version=platform.python_version()))


def test_become_names_the_user_or_its_uid():
    assert p.check_become(FakeProbe(), params(), euid=0) == dict(name='become', status='pass', detail='running as root', fix='',
                                                                 facts=dict(uid=0))
    result = p.check_become(FakeProbe(), params(), euid=65534)
    assert result['detail'] == 'the checks ran as nobody (uid 65534), not root: vmctl, pfctl and rcctl need root'
    assert result['fix'].endswith('"permit nopass nobody as root" (check it with doas -C /etc/doas.conf)')
    result = p.check_become(FakeProbe(), params(), euid=4242424)
    assert result['detail'].startswith('the checks ran as 4242424 (uid 4242424), not root')


def test_vmd_enabled_records():
    assert p.check_vmd_enabled(FakeProbe(), params()) == dict(
        name='vmd_enabled', status='fail', detail='cannot run rcctl: No such file or directory',
        fix='rcctl is part of OpenBSD base: is this an OpenBSD host?', facts={})
    assert p.check_vmd_enabled(FakeProbe({('rcctl', 'get', 'vmd', 'status'): (1, '', '')}), params()) == dict(
        name='vmd_enabled', status='fail', detail='vmd is not enabled (rcctl get vmd status: 1)',
        fix='rcctl enable vmd (the openbsd.vmm.vmm_host role enables and starts it)', facts=dict(enabled=False))
    on = {('rcctl', 'get', 'vmd', 'status'): (0, '', ''), ('rcctl', 'get', 'vmd', 'flags'): (0, '\n', '')}
    assert p.check_vmd_enabled(FakeProbe(on), params()) == dict(name='vmd_enabled', status='pass', detail='enabled', fix='',
                                                                facts=dict(enabled=True, flags=''))
    on[('rcctl', 'get', 'vmd', 'flags')] = (0, '-f /srv/vm.conf\n', '')
    assert p.check_vmd_enabled(FakeProbe(on), params(vm_conf='/srv/vm.conf')) == dict(
        name='vmd_enabled', status='pass', detail='enabled with flags -f /srv/vm.conf', fix='',
        facts=dict(enabled=True, flags='-f /srv/vm.conf'))


def test_vmd_running_records():
    ok = FakeProbe({('rcctl', 'check', 'vmd'): (0, 'vmd(ok)\n', '')})
    assert p.check_vmd_running(ok, params()) == dict(name='vmd_running', status='pass', detail='vmd(ok)', fix='',
                                                     facts=dict(running=True))
    quiet = FakeProbe({('rcctl', 'check', 'vmd'): (0, '', '')})
    assert p.check_vmd_running(quiet, params())['detail'] == 'vmd(ok)'
    failed = FakeProbe({('rcctl', 'check', 'vmd'): (1, '', '')})
    assert p.check_vmd_running(failed, params()) == dict(
        name='vmd_running', status='fail', detail='vmd is not running (rcctl check vmd failed)',
        fix='rcctl start vmd (after rcctl enable vmd; see /var/log/daemon for why it stopped)', facts=dict(running=False))


class FakeVmctl:
    """Stands in for vmctl.Vmctl: status() gives `statuses`, or raises `error` when one is set."""

    statuses = []
    error = None
    made = []

    def __init__(self, binary='vmctl', module=None, environ=None):
        FakeVmctl.made.append(binary)

    def status(self):
        if self.error is not None:
            raise self.error
        return self.statuses


def test_vmctl_records(monkeypatch):
    monkeypatch.setattr(p, 'Vmctl', FakeVmctl)
    Status = collections.namedtuple('Status', 'name running')
    monkeypatch.setattr(FakeVmctl, 'made', [])
    monkeypatch.setattr(FakeVmctl, 'statuses', [Status('web1', True), Status('db1', False), Status('ci', True)])
    probe = FakeProbe()
    assert p.check_vmctl(probe, params()) == dict(name='vmctl', status='pass', detail='3 VMs known to vmd, 2 running', fix='',
                                                  facts=dict(vms=3, running=['web1', 'ci']))
    assert probe.commands == [['vmctl', 'status']]
    monkeypatch.setattr(FakeVmctl, 'error', p.VmdUnavailable('connect: /var/run/vmd.sock: No such file or directory'))
    assert p.check_vmctl(probe, params(vmctl='/usr/local/bin/vmctl')) == dict(
        name='vmctl', status='fail', detail='vmctl status cannot reach vmd: connect: /var/run/vmd.sock: No such file or directory',
        fix='start vmd: rcctl start vmd (vmctl talks to it over /var/run/vmd.sock)', facts={})
    monkeypatch.setattr(FakeVmctl, 'error', p.VmctlError('vmctl: permission denied'))
    assert p.check_vmctl(probe, params()) == dict(
        name='vmctl', status='fail', detail='vmctl status failed: vmctl: permission denied',
        fix='run vmctl status as root and fix what it says', facts={})
    assert probe.commands == [['vmctl', 'status']] * 3
    assert FakeVmctl.made == ['vmctl', '/usr/local/bin/vmctl', 'vmctl']


def test_vm_conf_records(tmp_path):
    conf = tmp_path / 'vm.conf'
    probe = FakeProbe({('vmd', '-n', '-f', str(conf)): (0, 'configuration OK\n', '')})
    assert p.check_vm_conf(probe, params(vm_conf=str(conf))) == dict(
        name='vm_conf', status='pass', detail='%s does not exist yet (vmd runs without one)' % conf, fix='', facts=dict(exists=False))
    conf.write_text('')
    assert p.check_vm_conf(probe, params(vm_conf=str(conf))) == dict(
        name='vm_conf', status='pass', detail='%s: configuration OK' % conf, fix='', facts=dict(exists=True))
    result = p.check_vm_conf(FakeProbe({('vmd', '-n', '-f', str(conf)): (1, '', '')}), params(vm_conf=str(conf)))
    assert (result['status'], result['detail']) == ('fail', 'vmd -n -f %s: exit 1' % conf)


def test_taps_without_a_gap_say_nothing_of_one(tmp_path):
    for index in range(4):
        (tmp_path / ('tap%d' % index)).write_text('')
    result = p.check_taps(FakeProbe(), params(dev_dir=str(tmp_path), vms=[{'name': 'a'}, {'name': 'b'}]))
    assert result == dict(name='taps', status='pass', detail='4 usable taps in %s for 2 interfaces of the planned VMs' % tmp_path,
                          fix='', facts=dict(usable=4, nodes=4, needed=2, vms=2))


def test_ptys_records(tmp_path):
    for suffix in '0123':
        (tmp_path / ('ptyp' + suffix)).write_text('')
        (tmp_path / ('ttyp' + suffix)).write_text('')
    args = dict(params(dev_dir=str(tmp_path), vms=[{'name': 'a'}]))
    del args['pty_spare']
    assert p.check_ptys(FakeProbe(), args) == dict(
        name='ptys', status='pass', detail='4 usable pty pairs in %s for 1 VM consoles and 0 logins' % tmp_path, fix='',
        facts=dict(usable=4, needed=1, vms=1))
    assert p.check_ptys(FakeProbe(), params(dev_dir=str(tmp_path), vms=[{'name': 'a'}], pty_spare=3))['status'] == 'pass'
    result = p.check_ptys(FakeProbe(), params(dev_dir=str(tmp_path), vms=[{'name': 'a'}, {'name': 'b'}], pty_spare=3))
    assert result['detail'] == '4 usable pty pairs in %s, 2 VM consoles and 3 logins need 5' % tmp_path
    assert result['facts'] == dict(usable=4, needed=5, vms=2)


def test_pf_enabled_records():
    args = params()
    del args['pf']     # pf is used unless told otherwise
    assert p.check_pf_enabled(FakeProbe({('pfctl', '-si'): (0, PFCTL_SI_ENABLED, '')}), args) == dict(
        name='pf_enabled', status='pass', detail='Status: Enabled for 0 days 01:02:03              Debug: err', fix='',
        facts=dict(enabled=True))
    assert p.check_pf_enabled(FakeProbe({('pfctl', '-si'): (0, 'Status: Disabled\n', '')}), args) == dict(
        name='pf_enabled', status='fail', detail='pf is not enabled (Status: Disabled)',
        fix='pfctl -e, and keep pf=YES (the default) in /etc/rc.conf.local', facts=dict(enabled=False))
    denied = FakeProbe({('pfctl', '-si'): (1, '', 'pfctl: /dev/pf: Permission denied\n')})
    assert p.check_pf_enabled(denied, args)['detail'] == 'pf is not enabled (pfctl: /dev/pf: Permission denied)'


def test_pf_anchor_records():
    fix = ('run the openbsd.vmm.vmm_host role (vmm_host_pf: true): it writes the anchor file and the anchor lines of pf.conf '
           'and loads them; by hand: pfctl -f /etc/pf.conf')
    probe = FakeProbe({('pfctl', '-sr'): (0, 'anchor "lab" all\n', ''),
                       ('pfctl', '-a', 'lab', '-sr'): (1, '', 'pfctl: Anchor does not exist.\n')})
    assert p.check_pf_anchor(probe, params(pf_anchor='lab')) == dict(
        name='pf_anchor', status='fail', detail='anchor "lab" has no rules loaded: pfctl: Anchor does not exist.', fix=fix,
        facts=dict(anchor='lab', referenced=True, rules=0))
    args = params()
    del args['pf'], args['pf_anchor']
    probe = FakeProbe({('pfctl', '-sr'): (0, 'anchor "openbsd-vmm" all\n', ''),
                       ('pfctl', '-a', 'openbsd-vmm', '-sr'): (0, 'pass in on tap\n', '')})
    assert p.check_pf_anchor(probe, args) == dict(name='pf_anchor', status='pass', detail='anchor "openbsd-vmm" loaded (1 rules)',
                                                  fix='', facts=dict(anchor='openbsd-vmm', referenced=True, rules=1))
    probe = FakeProbe()
    assert p.check_pf_anchor(probe, params(pf=False)) == dict(name='pf_anchor', status='skip',
                                                              detail='pf is not used (vmm_host_pf: false)', fix='', facts={})
    assert probe.commands == []


def test_daemon_facts():
    conf = '/etc/httpd.conf'
    answers = {('httpd', '-n', '-f', conf): (1, '', ''), ('rcctl', 'get', 'httpd', 'status'): (0, '', ''),
               ('rcctl', 'get', 'httpd', 'flags'): (0, '\n', ''), ('rcctl', 'check', 'httpd'): (0, 'httpd(ok)\n', '')}
    args = params()
    del args['httpd'], args['dhcpd']   # httpd is used and dhcpd is not, unless told otherwise
    assert p.check_httpd(FakeProbe(answers), args) == dict(
        name='httpd', status='fail', detail='httpd -n -f /etc/httpd.conf: exit 1',
        fix='fix /etc/httpd.conf (the openbsd.vmm.install_server role writes and checks it); check with httpd -n -f /etc/httpd.conf',
        facts=dict(config_ok=False))
    answers[('httpd', '-n', '-f', conf)] = (0, '', '')
    assert p.check_httpd(FakeProbe(answers), args) == dict(
        name='httpd', status='pass', detail='/etc/httpd.conf valid, httpd enabled and running', fix='',
        facts=dict(config_ok=True, enabled=True, running=True, flags=''))
    assert p.check_dhcpd(FakeProbe(answers), args)['status'] == 'skip'


def test_readable_by_owner_bits_only_for_the_owner(tmp_path):
    path = tmp_path / 'f'
    path.write_text('x')
    path.chmod(0o044)
    owner = collections.namedtuple('User', 'pw_uid pw_gid')(os.stat(path).st_uid, 4242)
    assert p.readable_by(str(path), owner, {os.stat(path).st_gid}) is False


def test_docroot_records(tmp_path, monkeypatch):
    args = params()
    del args['httpd']
    chroot = tmp_path / 'www'
    sets = chroot / 'htdocs' / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    sets.mkdir(parents=True)
    for name in ('index.txt', 'SHA256.sig', 'bsd.rd', 'base78.tgz'):
        (sets / name).write_text(name)
        (sets / name).chmod(0o640)
    for directory in (chroot, chroot / 'htdocs', sets.parent.parent.parent, sets.parent.parent, sets):
        directory.chmod(0o755)
    sets.parent.chmod(0o711)     # searchable, not listable: enough for httpd
    (chroot / 'htdocs' / 'web1-install.conf').write_text('x')
    (chroot / 'htdocs' / 'web1-install.conf').chmod(0o640)
    # nobody reads the root-group files through a supplementary group
    group = collections.namedtuple('Group', 'gr_gid gr_mem')(os.stat(sets / 'bsd.rd').st_gid, ['nobody'])
    monkeypatch.setattr(p.grp, 'getgrall', lambda: [group])
    args.update(chroot=str(chroot), docroot=str(chroot / 'htdocs'), www_user='nobody')
    assert p.check_docroot(FakeProbe(), args) == dict(
        name='docroot', status='pass', detail='5 files in %s readable by nobody' % sets, fix='',
        facts=dict(www_user='nobody', sets_dir=str(sets), files=5, missing=[], unreadable=0))
    assert p.check_docroot(FakeProbe(), params(httpd=False)) == dict(
        name='docroot', status='skip', detail='httpd is not used (install_server_httpd: false)', fix='', facts={})
    # the set directory is the chroot itself: it must be searchable too
    chroot.chmod(0o700)
    result = p.check_docroot(FakeProbe(), dict(args, sets_dir=str(chroot)))
    assert result['detail'] == ('missing in %s: index.txt, SHA256.sig, bsd.rd, base78.tgz; nobody cannot enter %s (mode 0700)'
                                % (chroot, chroot))
    # a set directory outside the chroot (and not there at all): nothing to enter, nothing to list
    elsewhere = tmp_path / 'elsewhere'
    result = p.check_docroot(FakeProbe(), dict(args, sets_dir=str(elsewhere), docroot=str(tmp_path / 'none')))
    assert result['detail'] == 'missing in %s: index.txt, SHA256.sig, bsd.rd, base78.tgz' % elsewhere
    assert result['facts'] == dict(www_user='nobody', sets_dir=str(elsewhere), files=0,
                                   missing=['index.txt', 'SHA256.sig', 'bsd.rd', 'base78.tgz'], unreadable=0)


def test_docroot_walk_stops_at_a_root_chroot(tmp_path, monkeypatch):
    sets = tmp_path / 'sets'
    sets.mkdir()
    user = collections.namedtuple('User', 'pw_uid pw_gid pw_name')(os.getuid(), os.getgid(), 'www')
    monkeypatch.setattr(p.pwd, 'getpwnam', lambda name: user)
    result = p.check_docroot(FakeProbe(), params(chroot='/', sets_dir=str(sets), docroot=str(sets)))
    assert result['detail'] == 'missing in %s: index.txt, SHA256.sig, bsd.rd, base78.tgz' % sets


def test_signify_key_refuses_characters_outside_base64():
    assert p._is_pubkey('RWQTKNnK3CZZ8BBhe8ZvDcQxsCFSwq3Y+3bdgRfC1MfwX8Ay4DU+dm7n') is True
    assert p._is_pubkey('RWQTKNnK3CZZ8BBhe8ZvDcQxsCFSwq3Y+3bdgRfC1MfwX8Ay4DU+dm7n!') is False


def test_free_space_records(tmp_path, monkeypatch):
    monkeypatch.setattr(p.os, 'statvfs', lambda path: collections.namedtuple('Vfs', 'f_bavail f_frsize')(1048576, 4096))
    args = params(image_dir=str(tmp_path), min_free='4G')
    assert p.check_free_space(FakeProbe(), args) == dict(
        name='free_space', status='pass', detail='4.0G free for images in %s' % tmp_path, fix='',
        facts=dict(path=str(tmp_path), measured_at=str(tmp_path), free=4294967296, wanted=4294967296))
    result = p.check_free_space(FakeProbe(), params(image_dir=str(tmp_path / 'vmm'), min_free='5G'))
    assert result['detail'] == 'only 4.0G free for images in %s (measured at %s, which exists), 5.0G wanted' % (tmp_path / 'vmm', tmp_path)


def test_install_server_records():
    url = 'http://127.0.0.1/pub/OpenBSD/7.8/amd64/index.txt'
    fix = ('start httpd with the install_server role (install_server_listen, install_server_port) and publish the sets; '
           'check with ftp -o - ' + url)
    assert p.check_install_server(FakeProbe(), params(httpd=False)) == dict(
        name='install_server', status='skip', detail='httpd is not used (install_server_httpd: false)', fix='', facts={})
    assert p.check_install_server(FakeProbe(), params(listen=[])) == dict(
        name='install_server', status='fail', detail='no listen address for httpd',
        fix='set install_server_listen (for example ["127.0.0.1"])', facts={})
    for answer, said in (((0, 'base78.tgz\n', ''), 'no bsd.rd in index.txt'),
                         ((1, '', ''), 'exit 1'),
                         ((1, '<html>404</html>\n', 'ftp: Error retrieving file: 404 Not Found\n'),
                          'ftp: Error retrieving file: 404 Not Found | <html>404</html>')):
        result = p.check_install_server(FakeProbe({('ftp', '-o', '-', url): answer}), params())
        assert result == dict(name='install_server', status='fail', detail='ftp -o - %s: %s' % (url, said), fix=fix,
                              facts=dict(listen=['127.0.0.1'], port=80, answers={'127.0.0.1': False})), answer
    index = (0, 'bsd.rd\n', '')
    rdr = (0, 'pass in quick on tap inet proto tcp to port 80 rdr-to 127.0.0.1 port 80\n', '')
    args = params()
    del args['httpd'], args['pf'], args['pf_anchor'], args['port']   # the defaults: httpd and pf used, port 80
    assert p.check_install_server(FakeProbe({('ftp', '-o', '-', url): index, ('pfctl', '-a', 'openbsd-vmm', '-sr'): rdr}), args) == dict(
        name='install_server', status='pass', detail="index.txt served on 127.0.0.1 port 80, VMs' port 80 redirected there", fix='',
        facts=dict(listen=['127.0.0.1'], port=80, answers={'127.0.0.1': True}, rdr_rules=[rdr[1].strip()]))
    assert p.check_install_server(FakeProbe({('ftp', '-o', '-', url): index}), params(pf=False)) == dict(
        name='install_server', status='pass', detail='index.txt served on 127.0.0.1 port 80', fix='',
        facts=dict(listen=['127.0.0.1'], port=80, answers={'127.0.0.1': True}))


def test_run_checks_hands_every_check_the_same_probe(monkeypatch):
    seen = []

    def check_probe(probe, args):
        seen.append(probe)
        return p.record('probe', p.PASS, 'ok')

    monkeypatch.setattr(p, 'CHECKS', (check_probe, check_probe))
    probe = FakeProbe()
    p.run_checks(params(), probe)
    assert seen == [probe, probe]
    p.run_checks(params())
    assert isinstance(seen[2], p.Probe) and seen[3] is seen[2]
