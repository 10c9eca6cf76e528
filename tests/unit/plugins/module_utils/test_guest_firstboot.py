# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_firstboot: a guest's name, IPv6 line, users and keys, compared with its files and changed only where they differ."""

from __future__ import annotations

import collections
import os

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import guest_firstboot
from ansible_collections.openbsd.vmm.plugins.module_utils.guest_firstboot import Guest, configure, problems

HASH = '$2b$10$' + 'a' * 53
OTHER_HASH = '$2b$10$' + 'b' * 53
KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnVXjTnZ9 alice@laptop'
KEY2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzzz bob@desk'
Account = collections.namedtuple('Account', 'pw_name pw_dir pw_uid pw_gid pw_shell')


class Accounts:
    """pwd as the guest has it: getpwnam of the users that exist (useradd in the fake run adds one)."""

    def __init__(self, home_root, **users):
        self.home_root = home_root
        self.users = {name: Account(name, os.path.join(home_root, name), os.getuid(), os.getgid(), shell)
                      for name, shell in users.items()}

    def getpwnam(self, name):
        return self.users[name]


class Run:
    """run_command: records argv; `hostname` prints the running name; useradd makes the account and its home."""

    def __init__(self, accounts, running='golden.my.domain', fail=None):
        self.accounts = accounts
        self.running = running
        self.fail = fail
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        if argv == ['hostname']:
            return 0, self.running + '\n', ''
        if self.fail and argv[0] == self.fail:
            return 1, '', '%s: group `nosuch\' not found\n' % argv[0]
        if argv[0] == 'useradd':
            name = argv[-1]
            os.makedirs(os.path.join(self.accounts.home_root, name))
            self.accounts.users[name] = Account(name, os.path.join(self.accounts.home_root, name), os.getuid(),
                                                os.getgid(), argv[argv.index('-s') + 1])
        return 0, '', ''


def params(**changes):
    base = dict(hostname=None, interface='vio0', address6='', users=[], root_keys=[])
    base.update(changes)
    return base


def user(name='alice', **changes):
    base = dict(name=name, state='present', groups=[], shell='/bin/ksh', authorized_keys=[], password_hash=None,
                update_password='always', random_password=None)
    base.update(changes)
    return base


@pytest.fixture(name='guest_env')
def fixture_guest_env(tmp_path):
    etc = tmp_path / 'etc'
    etc.mkdir()
    (tmp_path / 'home').mkdir()
    (etc / 'group').write_text('wheel:*:0:root\nstaff:*:20:root\nalice:*:1000:\n')
    accounts = Accounts(str(tmp_path / 'home'))
    return etc, accounts


def make(guest_env, check_mode=False, system='OpenBSD', **run_args):
    etc, accounts = guest_env
    run = Run(accounts, **run_args)
    return Guest(run, check_mode, etc=str(etc), system=system, accounts=accounts), run


def test_hostname_written_and_set_then_nothing(guest_env):
    guest, run = make(guest_env)
    configure(guest, params(hostname='web1.example.org'))
    etc = guest_env[0]
    assert (etc / 'myname').read_text() == 'web1.example.org\n'
    assert os.stat(str(etc / 'myname')).st_mode & 0o777 == 0o644
    assert run.calls == [['hostname'], ['hostname', 'web1.example.org']]
    assert guest.changes == ['write %s/myname' % etc, 'hostname web1.example.org']
    again, run = make(guest_env, running='web1.example.org')
    configure(again, params(hostname='web1.example.org'))
    assert again.changes == [] and run.calls == [['hostname']]


def test_check_mode_reports_and_changes_nothing(guest_env):
    guest, run = make(guest_env, check_mode=True)
    configure(guest, params(hostname='web1', address6='fd00::b', users=[user(authorized_keys=[KEY])]))
    etc = guest_env[0]
    assert guest.changes == ['write %s/myname' % etc, 'hostname web1', 'write %s/hostname.vio0' % etc, 'useradd alice',
                             'mkdir /home/alice/.ssh', 'write /home/alice/.ssh/authorized_keys']
    assert run.calls == [['hostname']]
    assert sorted(os.listdir(str(etc))) == ['group']
    assert guest.diffs[1] == {'before_header': '%s/hostname.vio0' % etc, 'after_header': '%s/hostname.vio0' % etc,
                              'before': '', 'after': 'inet6 fd00::b 64\n'}


def test_address6_replaces_the_last_static_inet6_line_and_keeps_the_rest(guest_env):
    etc = guest_env[0]
    (etc / 'hostname.vio0').write_text('inet autoconf\ninet6 autoconf\ninet6 fd00::1 64\ninet6 fd00::2 64\nup\n')
    os.chmod(str(etc / 'hostname.vio0'), 0o600)
    guest, dummy = make(guest_env)
    configure(guest, params(address6='fd00::b'))
    assert (etc / 'hostname.vio0').read_text() == 'inet autoconf\ninet6 autoconf\ninet6 fd00::1 64\ninet6 fd00::b 64\nup\n'
    assert os.stat(str(etc / 'hostname.vio0')).st_mode & 0o777 == 0o600
    again, dummy = make(guest_env)
    configure(again, params(address6='fd00::b'))
    assert again.changes == []


def test_a_new_hostname_if_gets_mode_0640(guest_env):
    guest, dummy = make(guest_env)
    configure(guest, params(address6='fd00::b'))
    path = str(guest_env[0] / 'hostname.vio0')
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_new_user_with_groups_password_and_keys(guest_env):
    guest, run = make(guest_env)
    created = configure(guest, params(users=[user(groups=['staff', 'wheel'], password_hash=HASH, authorized_keys=[KEY, KEY2])]))
    assert created == ['alice']
    assert run.calls == [['useradd', '-m', '-s', '/bin/ksh', '-G', 'staff,wheel', '-p', HASH, 'alice']]
    home = guest_env[1].users['alice'].pw_dir
    assert os.stat(os.path.join(home, '.ssh')).st_mode & 0o777 == 0o700
    keys = os.path.join(home, '.ssh', 'authorized_keys')
    with open(keys, encoding='utf-8') as handle:
        assert handle.read() == KEY + '\n' + KEY2 + '\n'
    assert os.stat(keys).st_mode & 0o777 == 0o600
    assert guest.changes == ['useradd alice', 'mkdir %s/.ssh' % home, 'write %s' % keys], 'the hash is never shown'


def test_an_existing_user_gets_shell_groups_password_only_where_they_differ(guest_env):
    etc, accounts = guest_env
    accounts.users['alice'] = Account('alice', '/nonexistent', os.getuid(), 1000, '/bin/sh')
    # root's line first, with the very hash asked for alice: only alice's own line counts
    (etc / 'master.passwd').write_text('root:%s:0:0::0:0:Charlie &:/root:/bin/ksh\nalice:%s:1000:1000::0:0::/home/alice:/bin/sh\n'
                                       % (HASH, OTHER_HASH))
    guest, run = make(guest_env)
    assert guest.user(user(groups=['staff', 'alice'], password_hash=HASH)) is False, 'not created now'
    # alice's primary group is alice (gid 1000): only staff is missing; OpenBSD's -G appends
    assert run.calls == [['usermod', '-s', '/bin/ksh', 'alice'], ['usermod', '-G', 'staff', 'alice'],
                         ['usermod', '-p', HASH, 'alice']]
    assert guest.changes[-1] == 'usermod -p <hash> alice'


def test_a_shadow_suite_system_appends_with_a_and_reads_etc_shadow(guest_env):
    etc, accounts = guest_env
    accounts.users['alice'] = Account('alice', '/nonexistent', os.getuid(), 1000, '/bin/ksh')
    (etc / 'shadow').write_text('alice:%s:19000:0:99999:7:::\n' % HASH)
    (etc / 'master.passwd').write_text('alice:%s:1000:1000::0:0::/home/alice:/bin/ksh\n' % OTHER_HASH)
    guest, run = make(guest_env, system='Linux')
    guest.user(user(groups=['wheel'], password_hash=HASH))
    assert run.calls == [['usermod', '-a', '-G', 'wheel', 'alice']], 'the hash in /etc/shadow is the one asked'


def test_update_password_on_create_leaves_an_existing_users_hash(guest_env):
    etc, accounts = guest_env
    accounts.users['alice'] = Account('alice', '/nonexistent', os.getuid(), 1000, '/bin/ksh')
    (etc / 'master.passwd').write_text('alice:%s:1000:1000::0:0::/home/alice:/bin/ksh\n' % OTHER_HASH)
    guest, run = make(guest_env)
    assert guest.user(user(password_hash=HASH, update_password='on_create')) is False
    assert run.calls == []


def test_a_group_member_listed_in_etc_group_is_not_added_again(guest_env):
    etc, accounts = guest_env
    (etc / 'group').write_text('staff:*:20:root,alice\n')
    accounts.users['alice'] = Account('alice', '/nonexistent', os.getuid(), 1000, '/bin/ksh')
    guest, run = make(guest_env)
    guest.user(user(groups=['staff']))
    assert run.calls == []


def test_etc_group_is_read_once_and_its_first_line_of_a_name_counts(guest_env, monkeypatch):
    etc, accounts = guest_env
    # getgrnam(3) takes the first line of a name: alice is in staff there, not in the later one
    (etc / 'group').write_text('staff:*:20:root\nwheel:*:0:alice\nstaff:*:21:alice\nbroken:line\n')
    accounts.users['alice'] = Account('alice', '/nonexistent', os.getuid(), 1000, '/bin/ksh')
    guest, run = make(guest_env)
    reads = []
    real_read = guest_firstboot.read_file
    monkeypatch.setattr(guest_firstboot, 'read_file', lambda path: reads.append(path) or real_read(path))
    guest.user(user(groups=['staff', 'wheel', 'broken']))
    assert run.calls == [['usermod', '-G', 'staff,broken', 'alice']]
    assert reads == [str(etc / 'group')]


def test_absent_user_removed_home_kept_and_a_missing_one_is_nothing(guest_env):
    etc, accounts = guest_env
    accounts.users['bob'] = Account('bob', '/home/bob', os.getuid(), 1001, '/bin/ksh')
    guest, run = make(guest_env)
    assert configure(guest, params(users=[user('bob', state='absent'), user('carol', state='absent')])) == []
    assert run.calls == [['userdel', 'bob']]


def test_a_user_without_keys_gets_ssh_dir_but_no_authorized_keys_file(guest_env):
    guest, dummy = make(guest_env)
    configure(guest, params(users=[user()]))
    home = guest_env[1].users['alice'].pw_dir
    assert os.listdir(os.path.join(home, '.ssh')) == []
    assert guest.changes == ['useradd alice', 'mkdir %s/.ssh' % home]


def test_a_hash_line_of_two_fields_is_read(guest_env):
    etc, accounts = guest_env
    accounts.users['alice'] = Account('alice', '/nonexistent', os.getuid(), 1000, '/bin/ksh')
    (etc / 'master.passwd').write_text('alice\nalice:%s\n' % HASH)
    guest, run = make(guest_env)
    guest.user(user(password_hash=HASH))
    assert run.calls == []


@pytest.mark.skipif(os.geteuid() != 0, reason='giving a directory to another uid needs root')
def test_ssh_dir_and_keys_belong_to_the_user(guest_env):
    etc, accounts = guest_env
    home = os.path.join(accounts.home_root, 'alice')
    os.makedirs(home)
    accounts.users['alice'] = Account('alice', home, 1234, 1235, '/bin/ksh')
    guest, dummy = make(guest_env)
    configure(guest, params(users=[user(authorized_keys=[KEY])]))
    for path in (os.path.join(home, '.ssh'), os.path.join(home, '.ssh', 'authorized_keys')):
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (1234, 1235)


def test_random_password_delivered_once_to_a_user_created_now(guest_env):
    guest, dummy = make(guest_env)
    alice = user(password_hash=HASH, update_password='on_create', random_password='s3cretRandom42', authorized_keys=[KEY])
    created = configure(guest, params(users=[alice]))
    assert created == ['alice']
    keys = os.path.join(guest_env[1].users['alice'].pw_dir, '.ssh', 'authorized_keys')
    with open(keys, encoding='utf-8') as handle:
        assert handle.read() == ('# password of alice (random, set when the user was created): s3cretRandom42\n'
                                 + KEY + '\n')
    assert guest.diffs[-1]['after'] == '# password of alice (random, set when the user was created): ********\n' + KEY + '\n'
    # next run: alice exists, nothing is delivered again and nothing changes
    again, run = make(guest_env)
    assert configure(again, params(users=[user(password_hash=HASH, update_password='on_create',
                                               random_password='another0ne99', authorized_keys=[KEY])])) == []
    assert again.changes == [] and run.calls == []


def test_keys_added_to_what_is_there_and_root_keys(guest_env, tmp_path):
    etc, accounts = guest_env
    root_home = tmp_path / 'root'
    (root_home / '.ssh').mkdir(parents=True)
    (root_home / '.ssh' / 'authorized_keys').write_text('ssh-ed25519 AAAAimage provisioning\n')
    accounts.users['root'] = Account('root', str(root_home), os.getuid(), os.getgid(), '/bin/ksh')
    guest, dummy = make(guest_env)
    configure(guest, params(root_keys=[KEY, 'ssh-ed25519 AAAAimage provisioning']))
    assert (root_home / '.ssh' / 'authorized_keys').read_text() == 'ssh-ed25519 AAAAimage provisioning\n' + KEY + '\n'
    assert guest.changes == ['write %s' % (root_home / '.ssh' / 'authorized_keys')]


def test_a_failing_command_names_it_and_what_it_said(guest_env):
    guest, dummy = make(guest_env, fail='useradd')
    with pytest.raises(guest_firstboot.FirstbootError) as caught:
        configure(guest, params(users=[user(groups=['nosuch'])]))
    assert str(caught.value) == "useradd alice failed (exit 1): useradd: group `nosuch' not found"


def test_a_failing_command_without_a_shown_form_is_named_by_its_program(guest_env):
    guest_env[1].users['alice'] = Account('alice', '/nonexistent', os.getuid(), 1000, '/bin/sh')
    guest, dummy = make(guest_env, fail='usermod')
    with pytest.raises(guest_firstboot.FirstbootError) as caught:
        guest.user(user())
    assert str(caught.value) == "usermod failed (exit 1): usermod: group `nosuch' not found"


def test_a_group_missing_from_etc_group_is_asked_for(guest_env):
    # usermod then refuses it, naming the group: the user learns which group the guest lacks
    guest_env[1].users['alice'] = Account('alice', '/nonexistent', os.getuid(), 1000, '/bin/ksh')
    guest, run = make(guest_env)
    guest.user(user(groups=['nosuch']))
    assert run.calls == [['usermod', '-G', 'nosuch', 'alice']]


@pytest.mark.parametrize('changes, message', [
    (dict(hostname='web1\n'), "hostname: 'web1\\n' refused; must be a host name such as web1 or web1.example.org."),
    (dict(hostname='-web1'), "hostname: '-web1' refused; must be a host name"),
    (dict(interface='vio0;'), "interface: 'vio0;' refused; must be an interface name such as vio0."),
    (dict(address6='fd00::1/64'), "address6: 'fd00::1/64' refused; must be an IPv6 address without prefix length"),
    # ipaddress takes a scope: hostname.if must not get one
    (dict(address6='fe80::1%vio0'), "address6: 'fe80::1%vio0' refused; must be an IPv6 address without prefix length"),
    (dict(users=[user('-alice')]), "users[].name: '-alice' refused; must be a login name"),
    (dict(users=[user('root')]), 'users[].name: root is not managed here; its keys are root_keys.'),
    (dict(users=[user(), user()]), 'users[].name: every user needs its own name.'),
    (dict(users=[user(groups=['staff\n'])]), "users[alice].groups: 'staff\\n' refused; must be a group name."),
    (dict(users=[user(shell='ksh')]), "users[alice].shell: 'ksh' refused; must be an absolute path to a shell."),
    (dict(users=[user(authorized_keys=[KEY + '\n' + KEY2])]), 'users[alice].authorized_keys: '),
    (dict(root_keys=['command="sh" ' + KEY]), "root_keys: 'command=\"sh\" ssh-ed25519"),
    (dict(users=[user(password_hash='plain')]), 'users[alice].password_hash: a value refused; must be a bcrypt hash'),
    (dict(users=[user(password_hash=HASH, random_password='short')]),
     'users[alice].random_password: a value refused; must be printable ASCII without spaces, 8 to 128 characters.'),
    (dict(users=[user(password_hash=HASH, random_password='longenough1')]),
     'users[alice].random_password: needs its password_hash and update_password=on_create'),
])
def test_bad_input_is_refused_naming_the_parameter_and_the_rule(changes, message):
    found = problems(params(**changes))
    assert any(problem.startswith(message) for problem in found), found
    assert not any('plain' in problem or 'longenough1' in problem for problem in found), 'secrets are never shown'


def test_good_input_has_no_problem():
    assert problems(params(hostname='web1.example.org', address6='fd00:198:51:100::b', root_keys=[KEY],
                           users=[user(groups=['staff'], authorized_keys=[KEY], password_hash=HASH,
                                       update_password='on_create', random_password='s3cretRandom42'),
                                  user('bob', state='absent')])) == []
