# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering, hashing and validation of vmm_autoinstall on the controller."""

from __future__ import annotations

import base64
import json
import os

import pytest

from unittest.mock import MagicMock

from passlib.hash import bcrypt

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.openbsd.vmm.plugins.action import vmm_autoinstall as action
from ansible_collections.openbsd.vmm.plugins.action.vmm_autoinstall import (
    ARGUMENT_SPEC, AutoinstallError, build_payload, select_sets)
from ansible_collections.openbsd.vmm.plugins.module_utils.installer import (
    InstallPlan, check_response_file, parse_response_file)
from ansible_collections.openbsd.vmm.plugins.module_utils.secret_seal import seal

KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0 admin@example'


def options(**overrides):
    base = dict(name='web1', mac='FE:E1:BB:D1:00:01', root_password='s3cret pass', bcrypt_rounds=10)
    base.update(overrides)
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(base)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def answers_of(payload):
    return dict((line.key, line.answer) for line in parse_response_file(payload['response_file']))


def site_files(payload):
    return dict((item['path'], base64.b64decode(item['content']).decode()) for item in payload['site_files'])


def test_dhcp_install_renders_hashed_root_password_and_offline_answers():
    payload, summary = build_payload(options())
    answers = answers_of(payload)
    root_hash = answers['Password for root account']
    assert root_hash.startswith('$2b$10$') and len(root_hash) == 60
    assert bcrypt.verify('s3cret pass', root_hash)
    assert 's3cret pass' not in payload['response_file']
    assert answers['IPv4 address for vio0'] == 'autoconf'
    assert answers['IPv6 address for vio0'] == 'autoconf'
    assert answers['What timezone are you in'] == 'UTC'
    assert answers['HTTP Server'] == 'http://@INSTALL_SERVER@'
    assert answers['Server directory'] == 'pub/OpenBSD/7.8/amd64'
    # No user, no site set, no template: nothing about them in the file.
    assert answers['Setup a user'] == 'no'
    assert payload['site_set'] is None and payload['disklabel'] is None
    assert 'Set name(s)' not in answers
    assert summary['hostname'] == 'web1' and summary['mac'] == 'fe:e1:bb:d1:00:01'
    assert 'password' not in json.dumps(summary).lower()


def test_every_rendered_file_passes_the_installer_model():
    payload, _summary = build_payload(options(users=[dict(name='alice', password='a')], disklabel=[dict(mount='/', size='2G')]))
    result = check_response_file(payload['response_file'], InstallPlan(
        hostname='web1', users=['alice'], disklabel_template=True, set_lines=0))
    assert result.unanswered == []
    assert result.leftover == []


def test_static_ipv4_and_ipv6_network():
    payload, _summary = build_payload(options(network=dict(
        ipv4='192.0.2.10/24', ipv4_gateway='192.0.2.1', ipv6='2001:db8::10/64', ipv6_gateway='2001:db8::1',
        domain='example.com', nameservers=['192.0.2.53', '2001:db8::53'])))
    answers = answers_of(payload)
    assert answers['IPv4 address for vio0'] == '192.0.2.10/24'
    assert answers['Default IPv4 route'] == '192.0.2.1'
    assert answers['IPv6 address for vio0'] == '2001:db8::10/64'
    assert answers['IPv6 default router'] == '2001:db8::1'
    assert answers['DNS domain name'] == 'example.com'
    assert answers['DNS nameservers'] == '192.0.2.53 2001:db8::53'


@pytest.mark.parametrize('network, message', [
    (dict(ipv4='192.0.2.10'), 'prefix length'),
    (dict(ipv4='2001:db8::1/64'), 'IPv4'),
    (dict(ipv4='none', ipv6='none'), 'at least one'),
    (dict(ipv4='192.0.2.10/24', ipv4_gateway='2001:db8::1'), 'not an IPv4'),
    (dict(nameservers=['dns.example']), 'not an IP address'),
    (dict(domain='example.com'), 'need a static ipv4'),
])
def test_invalid_network_is_refused(network, message):
    with pytest.raises(AutoinstallError, match=message):
        build_payload(options(network=network))


def test_same_inputs_reuse_the_published_hash_and_render_identical_bytes():
    first, first_summary = build_payload(options())
    existing = dict(response_file=first['response_file'])
    second, second_summary = build_payload(options(), existing)
    assert second['response_file'] == first['response_file']
    assert second_summary['inputs_sha256'] == first_summary['inputs_sha256']
    changed, changed_summary = build_payload(options(root_password='other'), existing)
    assert changed['response_file'] != first['response_file']
    assert changed_summary['inputs_sha256'] != first_summary['inputs_sha256']


def test_installed_hashes_come_back_from_the_manifest():
    first, first_summary = build_payload(options(users=[dict(name='alice', password='pw'), dict(name='bob', password='pw2')]))
    manifest = dict(password_hashes=first['password_hashes'])
    again, again_summary = build_payload(options(users=[dict(name='alice', password='pw'), dict(name='bob', password='pw2')]),
                                         dict(manifest=manifest))
    assert again_summary['inputs_sha256'] == first_summary['inputs_sha256']
    assert site_files(again) == site_files(first)


def test_encrypted_and_disabled_passwords_are_used_as_given():
    encrypted = bcrypt.using(rounds=10, ident='2b').hash('x')
    payload, _summary = build_payload(options(root_password=encrypted))
    assert answers_of(payload)['Password for root account'] == encrypted
    payload, _summary = build_payload(options(root_password='*' * 13, root_ssh_key=KEY))
    assert answers_of(payload)['Password for root account'] == '*' * 13
    assert answers_of(payload)['Allow root ssh login'] == 'prohibit-password'


def test_a_hash_with_a_line_break_is_not_taken_as_encrypted():
    encrypted = bcrypt.using(rounds=10, ident='2b').hash('x')
    assert action.is_encrypted(encrypted)
    assert not action.is_encrypted(encrypted + '\nPermit root = yes')


def test_random_root_password_is_only_in_the_site_set_comment():
    tokens = iter(['Gen3ratedPassw0rd-one', 'Gen3ratedPassw0rd-two'])
    payload, summary = build_payload(options(root_password='random', root_ssh_key=KEY), token_source=lambda: next(tokens))
    files = site_files(payload)
    # The installer appends the root key to the same file; the site set brings only the comment.
    assert files['root/.ssh/authorized_keys'] == '# root password: Gen3ratedPassw0rd-one\n'
    assert answers_of(payload)['Public ssh key for root account'] == KEY
    assert payload['site_set'] == 'site78-web1.tgz'
    everything_but_site = json.dumps(dict((k, v) for k, v in payload.items() if k != 'site_files'))
    assert 'Gen3ratedPassw0rd-one' not in everything_but_site
    assert 'Gen3ratedPassw0rd-one' not in json.dumps(summary)
    assert bcrypt.verify('Gen3ratedPassw0rd-one', answers_of(payload)['Password for root account'])
    answers = answers_of(payload)
    assert answers['Set name(s)'] == '+site78-web1.tgz'
    # install.sub checks every fetched set against SHA256; the site set is not listed there.
    assert answers['Checksum test for site78-web1.tgz failed. Continue anyway'] == 'yes'
    assert answers['Unverified sets: site78-web1.tgz. Continue without verification'] == 'yes'
    # Published again: the delivered password and its hash are reused, so nothing changes.
    existing = dict(response_file=payload['response_file'], site_root_password='Gen3ratedPassw0rd-one')
    again, again_summary = build_payload(options(root_password='random', root_ssh_key=KEY), existing,
                                         token_source=lambda: next(tokens))
    assert again['response_file'] == payload['response_file']
    assert site_files(again) == files
    # Installed again (nothing published any more): a new password, but the same input digest.
    fresh, fresh_summary = build_payload(options(root_password='random', root_ssh_key=KEY), token_source=lambda: 'Other0ne')
    assert 'Other0ne' in site_files(fresh)['root/.ssh/authorized_keys']
    assert fresh_summary['inputs_sha256'] == summary['inputs_sha256'] == again_summary['inputs_sha256']


def test_several_users_first_by_the_installer_others_by_install_site():
    payload, _summary = build_payload(options(users=[
        dict(name='alice', fullname='Alice Liddell', password='pa', ssh_keys=[KEY, KEY.replace('admin', 'alice2')]),
        dict(name='bob', fullname="Bob O'Neil", password='pb', ssh_keys=[KEY.replace('admin', 'bob')]),
    ]))
    answers = answers_of(payload)
    assert answers['Setup a user'] == 'alice'
    assert answers['Full name for user alice'] == 'Alice Liddell'
    assert bcrypt.verify('pa', answers['Password for user alice'])
    assert answers['Public ssh key for user alice'] == KEY
    script = site_files(payload)['install.site']
    assert script.startswith('#!/bin/sh\n')
    bob_hash = payload['password_hashes']['bob']
    assert bcrypt.verify('pb', bob_hash)
    assert "useradd -m -G wheel -s /bin/ksh -c 'Bob O'\\''Neil' -p '%s' bob\n" % bob_hash in script
    assert "echo '%s' >> /home/alice/.ssh/authorized_keys" % KEY.replace('admin', 'alice2') in script
    assert "echo '%s' >> /home/bob/.ssh/authorized_keys" % KEY.replace('admin', 'bob') in script
    assert 'pb' not in script.replace(bob_hash, '')


def test_user_install_site_runs_after_the_generated_one():
    payload, _summary = build_payload(options(
        users=[dict(name='alice', password='a'), dict(name='bob', password='b')],
        site=dict(files=[dict(path='/etc/motd', content='hello\n')], install_site='#!/bin/sh\necho site\n')))
    files = site_files(payload)
    assert files['etc/motd'] == 'hello\n'
    assert files['install.site.user'] == '#!/bin/sh\necho site\n'
    assert '/install.site.user\n' in files['install.site']
    only_script, _summary = build_payload(options(site=dict(install_site='#!/bin/sh\necho only\n', per_host=False)))
    assert site_files(only_script)['install.site'] == '#!/bin/sh\necho only\n'
    assert only_script['site_set'] == 'site78.tgz'
    # siteXY.tgz is not preselected by the installer: it is selected explicitly.
    assert answers_of(only_script)['Set name(s)'] == '+site78.tgz'


def test_custom_disklabel_template_is_published_by_url():
    payload, _summary = build_payload(options(disklabel=[
        dict(mount='/', size='1G-4G', percent=40), dict(mount='swap', size='256M-1G', percent='10%'),
        dict(mount='/home', size='1G-*', percent=50)], install_server='192.0.2.1'))
    assert payload['disklabel'] == '/ 1G-4G 40%\nswap 256M-1G 10%\n/home 1G-* 50%\n'
    assert payload['disklabel_name'] == 'fe:e1:bb:d1:00:01-disklabel'
    assert answers_of(payload)['URL to autopartitioning template for disklabel'] == \
        'http://192.0.2.1/fe:e1:bb:d1:00:01-disklabel'
    assert answers_of(payload)['HTTP Server'] == 'http://192.0.2.1'
    text, _summary = build_payload(options(disklabel='/ 2G\nswap 512M\n'))
    assert text['disklabel'] == '/ 2G\nswap 512M\n'


@pytest.mark.parametrize('disklabel, message', [
    ([dict(mount='swap', size='1G')], 'no / '),
    ([dict(mount='home', size='1G')], 'not a mount point'),
    ([dict(mount='/', size='lots')], 'size'),
    ([dict(mount='/', size='1G', percent='200')], 'percentage'),
    (42, 'disklabel must be'),
])
def test_bad_disklabel_templates_are_refused(disklabel, message):
    with pytest.raises(AutoinstallError, match=message):
        build_payload(options(disklabel=disklabel))


def test_set_selection_keeps_the_kernel_and_base():
    assert 'game78.tgz' not in select_sets(['-game*', '-x*'], '7.8')
    assert 'comp78.tgz' in select_sets(['-all', 'bsd*', 'base*', '+comp*'], '7.8')
    with pytest.raises(AutoinstallError, match="SURE.*base78.tgz"):
        select_sets(['-base*'], '7.8')
    with pytest.raises(AutoinstallError, match='invalid set token'):
        select_sets(['done'], '7.8')
    payload, _summary = build_payload(options(sets=['-game*', '-x*']))
    assert answers_of(payload)['Set name(s)'] == '-game* -x*'


def test_extra_answers_come_first_and_replace_the_generated_line():
    payload, _summary = build_payload(options(answers={'Terminal type': 'vt100', 'Start sshd(8) by default': 'no'}))
    lines = parse_response_file(payload['response_file'])
    assert [(line.key, line.answer) for line in lines[:2]] == [('Terminal type', 'vt100'), ('Start sshd(8) by default', 'no')]
    assert [line.key for line in lines].count('Start sshd(8) by default') == 1


def test_unknown_answer_key_lists_nearest_questions():
    with pytest.raises(AutoinstallError) as info:
        build_payload(options(answers={'Strat sshd by default': 'no'}))
    assert 'matches no installer question' in str(info.value)
    assert "'Start sshd(8) by default?'" in str(info.value)


@pytest.mark.parametrize('overrides, message', [
    (dict(mac='fe:e1:bb:d1:00'), 'six colon-separated'),
    (dict(hostname='web1.example.com'), 'short host name'),
    (dict(root_password=None), 'root_password is required'),
    (dict(root_password='a\nHTTP Server = evil'), 'single line'),
    (dict(answers={'Terminal type': 'vt100\nPassword for root account = x'}), 'single line'),
    (dict(timezone='Europe'), 'sub-timezone'),
    (dict(timezone='../etc/passwd'), 'not a zone name'),
    (dict(users=[dict(name='root', password='x')]), 'reserved'),
    (dict(users=[dict(name='Alice', password='x')]), 'must match'),
    (dict(users=[dict(name='alice', password='x', fullname='A, B')]), "must not contain"),
    (dict(root_ssh_key='not a key'), 'OpenSSH public key'),
    (dict(bcrypt_rounds=4), 'two digits'),
    (dict(release='78'), 'release'),
    (dict(site=dict(files=[dict(path='../x', content='')])), 'relative path'),
    # `$` would match before a final newline: every pattern is a full match.
    (dict(mac='fe:e1:bb:d1:00:01\n'), 'six colon-separated'),
    (dict(hostname='web1\n'), 'short host name'),
    (dict(timezone='UTC\n'), 'not a zone name'),
    (dict(users=[dict(name='alice\n', password='x')]), 'must match'),
    (dict(sets=['-game*\n']), 'invalid set token'),
    (dict(release='7.8\n'), 'release'),
    (dict(arch='amd64\n'), 'architecture'),
    (dict(install_server='192.0.2.1\n'), 'single line'),
    (dict(network=dict(interface='vio0\n')), 'interface name'),
    (dict(disklabel=[dict(mount='/', size='1G\n')]), 'SIZE or MIN-MAX'),
    (dict(site=dict(files=[dict(path='x', content='', mode='0644\n')])), 'octal mode'),
])
def test_invalid_options_are_refused(overrides, message):
    with pytest.raises(AutoinstallError, match=message):
        build_payload(options(**overrides))


class FakeTask:
    def __init__(self, args):
        self.args = args
        self.async_val = 0
        self.check_mode = False
        self.diff = False


def make_action(args):
    plugin = action.ActionModule(FakeTask(args), MagicMock(), MagicMock(), loader=None, templar=None,
                                 shared_loader_obj=None)
    plugin._task.check_mode = False
    plugin._connection._shell.tmpdir = '/remote/tmp'
    plugin._connection._shell.join_path = os.path.join
    return plugin


def fake_target(monkeypatch, module):
    """Route the action plugin's transfers into a dict and its module runs to ``module(args, payload)``."""
    remote = dict(files={}, args=[])

    def transfer(self, remote_path, data):
        remote['files'][remote_path] = data
        return remote_path

    def execute(self, module_name=None, module_args=None, task_vars=None, **kwargs):
        assert module_name == 'openbsd.vmm.vmm_autoinstall'
        remote['args'].append(dict(module_args))
        payload = json.loads(remote['files'][module_args['payload']])
        return module(module_args, payload)

    monkeypatch.setattr(action.ActionModule, '_transfer_data', transfer)
    monkeypatch.setattr(action.ActionModule, '_fixup_perms2', lambda self, paths, remote_user=None: None)
    monkeypatch.setattr(action.ActionModule, '_execute_module', execute)
    monkeypatch.setattr(action.ActionBase, 'run', lambda self, tmp=None, task_vars=None: {})
    return remote


def inspected(payload, existing):
    """What the module's inspect phase returns: ``existing`` sealed with the action plugin's one-time key."""
    return dict(changed=False, existing_sealed=seal(payload['seal_key'], json.dumps(existing)))


def test_run_inspects_then_applies_without_sending_secrets(monkeypatch):
    phases = []

    def module(args, payload):
        phases.append(payload['phase'])
        if payload['phase'] == 'inspect':
            return inspected(payload, {})
        return dict(changed=True, response_file='/docroot/x-install.conf')

    remote = fake_target(monkeypatch, module)
    plugin = make_action(dict(state='published', name='web1', mac='fe:e1:bb:d1:00:01', root_password='topsecret',
                              install_server='192.0.2.1', users=[dict(name='alice', password='alicepw')]))
    result = plugin.run(task_vars={})
    assert result['changed'] is True
    assert phases == ['inspect', 'apply']
    sent = json.dumps(remote['args'])
    assert 'topsecret' not in sent and 'alicepw' not in sent
    assert 'root_password' not in remote['args'][1] and 'users' not in remote['args'][1]
    assert result['rendered']['hostname'] == 'web1'


def test_module_arguments_carry_no_hash_no_random_password_and_no_answer(monkeypatch):
    """Issue 10, point 9: the AnsiballZ file (module arguments) holds no secret; the payload goes as a file."""
    def module(args, payload):
        if payload['phase'] == 'inspect':
            return inspected(payload, {})
        return dict(changed=True)

    remote = fake_target(monkeypatch, module)
    monkeypatch.setattr(action.secrets, 'token_urlsafe', lambda size: 'Gen3ratedRandomPassw0rd')
    plugin = make_action(dict(state='published', name='web1', mac='fe:e1:bb:d1:00:01', root_password='random',
                              root_ssh_key=KEY, install_server='192.0.2.1',
                              answers={'Terminal type': 'vt100-passphrase-xyz'}))
    plugin.run(task_vars={})
    sent = json.dumps(remote['args'])
    assert 'Gen3ratedRandomPassw0rd' not in sent
    assert base64.b64encode(b'# root password: Gen3ratedRandomPassw0rd').decode()[:20] not in sent
    assert '$2b$' not in sent and 'vt100-passphrase-xyz' not in sent
    assert all(args['payload'].startswith('/remote/tmp/vmm_autoinstall-') for args in remote['args'])
    applied = json.loads(remote['files'][remote['args'][1]['payload']])
    assert applied['response_file'].count('$2b$') == 1
    assert applied['secret_answer_keys'] == ['Terminal type']
    assert any(item['path'] == 'root/.ssh/authorized_keys' for item in applied['site_files'])


def test_the_inspect_result_is_read_with_the_one_time_key_only(monkeypatch):
    """Issue 10, point 12: the published random password comes back sealed (ANSIBLE_DEBUG prints module results)."""
    published = {}

    def module(args, payload):
        if payload['phase'] == 'inspect':
            return inspected(payload, published)
        published.update(payload=payload)
        return dict(changed=True)

    fake_target(monkeypatch, module)
    token = ['FirstRandomPassw0rd']
    monkeypatch.setattr(action.secrets, 'token_urlsafe', lambda size: token[0])
    task = dict(state='published', name='web1', mac='fe:e1:bb:d1:00:01', root_password='random', root_ssh_key=KEY,
                install_server='192.0.2.1')
    make_action(task).run(task_vars={})
    first = published['payload']
    published.clear()
    published.update(response_file=first['response_file'], site_root_password='FirstRandomPassw0rd')
    token[0] = 'SecondRandomPassw0rd'
    make_action(task).run(task_vars={})
    # the password delivered in the published site set is reused: the same bytes are published again
    assert published['payload']['response_file'] == first['response_file']

    def forged(args, payload):
        return dict(changed=False, existing_sealed=seal('00' * 32, '{}'))

    fake_target(monkeypatch, forged)
    with pytest.raises(AnsibleActionFail, match='unreadable'):
        make_action(task).run(task_vars={})


def test_answers_and_passwords_are_no_log_in_the_argument_spec():
    assert ARGUMENT_SPEC['answers'].get('no_log') is True
    assert ARGUMENT_SPEC['root_password'].get('no_log') is True
    assert ARGUMENT_SPEC['users']['options']['password'].get('no_log') is True


def test_run_refuses_published_without_server_and_installed_without_disk(monkeypatch):
    monkeypatch.setattr(action.ActionBase, 'run', lambda self, tmp=None, task_vars=None: {})
    with pytest.raises(AnsibleActionFail, match='install_server'):
        make_action(dict(state='published', name='w', mac='fe:e1:bb:d1:00:01', root_password='x')).run(task_vars={})
    with pytest.raises(AnsibleActionFail, match='needs disk'):
        make_action(dict(state='installed', name='w', mac='fe:e1:bb:d1:00:01', root_password='x')).run(task_vars={})


def test_installed_disk_with_matching_manifest_needs_no_second_module_run(monkeypatch):
    calls = []
    existing = {}

    def module(args, payload):
        calls.append(payload['phase'])
        if payload['phase'] == 'inspect':
            return inspected(payload, existing)
        existing.update(manifest=dict(version=1, disk=dict(path='/d', device=1, inode=2), inputs_sha256=payload['inputs_sha256'],
                                      password_hashes=payload['password_hashes']),
                        disk_identity=dict(path='/d', device=1, inode=2))
        return dict(changed=True, install=dict(succeeded=True, skipped=False))

    fake_target(monkeypatch, module)
    task = dict(state='installed', name='web1', mac='fe:e1:bb:d1:00:01', root_password='pw', disk='/d',
                users=[dict(name='alice', password='alicepw')])
    first = make_action(task).run(task_vars={})
    assert first['changed'] and calls == ['inspect', 'apply']
    second = make_action(task).run(task_vars={})
    assert calls == ['inspect', 'apply', 'inspect']
    assert not second['changed'] and second['install'] == dict(succeeded=True, skipped=True)
    assert second['manifest'] == '/d.autoinstall.json'
    # another disk file under the same name is installed again
    existing['disk_identity'] = dict(path='/d', device=1, inode=3)
    third = make_action(task).run(task_vars={})
    assert third['changed'] and calls[-2:] == ['inspect', 'apply']
