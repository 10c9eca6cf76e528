# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflight's checks: what each reads, when it fails, and that its advice names the fix."""
from __future__ import annotations

import collections
import os

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
    assert 'become: true' in result['fix'] and 'become_method: doas' in result['fix'] and 'doas -C' in result['fix']


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
