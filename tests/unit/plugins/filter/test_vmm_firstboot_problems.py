from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_firstboot_problems import vmm_firstboot_problems

KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnVXjTnZ9 alice@laptop'
LOGIN_RULE = "a login name (lower-case letters, digits, '_', '.', '-', starting with a letter or '_', at most 31)"


def inputs(**changes):
    good = {'hostname': 'web1', 'domain': 'example.org', 'address6': 'fd00:198:51:100::b', 'interface': 'vio0',
            'users': [{'name': 'alice', 'groups': ['staff', 'wheel'], 'shell': '/bin/ksh', 'authorized_keys': [KEY],
                       'password': 'a plain one'},
                      {'name': 'bob', 'password': 'random', 'state': 'absent'}],
            'root_keys': [KEY], 'bcrypt_rounds': 10}
    good.update(changes)
    return good


def test_good_inputs_and_the_defaults_pass():
    assert vmm_firstboot_problems(inputs()) == []
    # only a host name given: every other input takes the role's default
    assert vmm_firstboot_problems({'hostname': 'web1'}) == []
    assert vmm_firstboot_problems(inputs(domain='', address6='', users=[], root_keys=[])) == []


@pytest.mark.parametrize('changes, message', [
    ({'hostname': 'web1\n'}, 'guest_firstboot_hostname: "web1\\n" refused; must be a short host name '
                             "(letters, digits and inner '-', at most 63)."),
    ({'hostname': 'web1.example.org'}, 'guest_firstboot_hostname: "web1.example.org" refused'),
    ({'hostname': 'a' * 64}, 'guest_firstboot_hostname: "%s" refused' % ('a' * 64)),
    ({'hostname': '-web1'}, 'guest_firstboot_hostname: "-web1" refused'),
    ({'domain': 'example.org; rm -rf /'}, 'guest_firstboot_domain: "example.org; rm -rf /" refused; must be a DNS domain '
                                          'such as example.org, or empty.'),
    ({'address6': 'fd00::1/64'}, 'guest_firstboot_address6: "fd00::1/64" refused; must be an IPv6 address without '
                                 'prefix length, or empty.'),
    # ipaddress alone would take a scope, which would reach hostname.if
    ({'address6': 'fe80::1%vio0'}, 'guest_firstboot_address6: "fe80::1%vio0" refused'),
    ({'address6': 'fd00::1::2'}, 'guest_firstboot_address6: "fd00::1::2" refused'),
    ({'interface': 'vio0\n'}, 'guest_firstboot_interface: "vio0\\n" refused; must be an interface name such as vio0.'),
    ({'users': [{'name': '-alice'}, {'name': 'Bob'}]},
     'guest_firstboot_users[].name: "-alice", "Bob" refused; must be %s.' % LOGIN_RULE),
    ({'users': [{'name': 'a' * 32}]}, 'guest_firstboot_users[].name: "%s" refused' % ('a' * 32)),
    ({'users': [{'name': 'alice', 'groups': ['staff', 'wheel;']}]},
     'guest_firstboot_users[].groups: "wheel;" refused; must be a group name.'),
    ({'users': [{'name': 'alice', 'shell': 'ksh'}]},
     'guest_firstboot_users[].shell: "ksh" refused; must be an absolute path to a shell.'),
    ({'users': [{'name': 'alice', 'state': 'gone'}]}, 'guest_firstboot_users[].state: "gone" refused; must be present or absent.'),
    ({'users': [{'name': 'alice', 'authorized_keys': ['ssh-ed25519 AAAA alice\nssh-ed25519 BBBB evil']}]},
     'guest_firstboot_users[].authorized_keys, guest_firstboot_root_keys: "ssh-ed25519 AAAA alice\\nssh-ed25519 BBBB evil" '
     'refused; must be one OpenSSH public key line (type, base64 key, optional comment; no options, no line break).'),
    ({'root_keys': ['command="sh" ssh-ed25519 AAAA x']}, 'refused; must be one OpenSSH public key line'),
    ({'users': [{'name': 'alice', 'password': 'secret\nmore'}]},
     'guest_firstboot_users[].password: a value refused; must be printable ASCII without line breaks.'),
    ({'bcrypt_rounds': 3}, 'guest_firstboot_bcrypt_rounds: "3" refused; must be a bcrypt cost from 4 to 31.'),
    ({'bcrypt_rounds': 32}, 'guest_firstboot_bcrypt_rounds: "32" refused'),
    ({'users': [{'name': 'alice'}, {'name': 'alice'}]}, 'guest_firstboot_users[].name: every user needs its own name.'),
    ({'users': [{'name': 'root'}]}, 'guest_firstboot_users[].name: root is not managed here; its keys are guest_firstboot_root_keys.'),
    ({'users': {'name': 'alice'}}, 'guest_firstboot_users: must be a list of users, each a dict with a name.'),
    ({'users': ['alice']}, 'guest_firstboot_users: must be a list of users, each a dict with a name.'),
    ({'root_keys': KEY}, 'guest_firstboot_root_keys: must be a list of OpenSSH public key lines.'),
])
def test_each_bad_input_is_named_with_its_rule(changes, message):
    found = vmm_firstboot_problems(inputs(**changes))
    assert len(found) == 1, found
    assert message in found[0]


def test_boundaries_pass():
    assert vmm_firstboot_problems(inputs(hostname='a' * 63, users=[{'name': 'a' * 31}], bcrypt_rounds=31)) == []
    assert vmm_firstboot_problems(inputs(bcrypt_rounds='04')) == []
    assert vmm_firstboot_problems(inputs(bcrypt_rounds=4)) == []
    assert vmm_firstboot_problems(inputs(address6='::ffff:192.0.2.1')) == []


def test_a_password_is_never_shown():
    found = vmm_firstboot_problems(inputs(users=[{'name': 'alice', 'password': 'secret\tvalue'}]))
    assert found == ['guest_firstboot_users[].password: a value refused; must be printable ASCII without line breaks.']
    assert vmm_firstboot_problems(inputs(users=[{'name': 'alice', 'password': None}])) == []


def test_several_problems_of_one_guest_all_reported():
    found = vmm_firstboot_problems(inputs(hostname='web_1', interface='eth', users=[{'name': 'root'}]))
    assert found == [
        'guest_firstboot_hostname: "web_1" refused; must be a short host name (letters, digits and inner \'-\', at most 63).',
        'guest_firstboot_interface: "eth" refused; must be an interface name such as vio0.',
        'guest_firstboot_users[].name: root is not managed here; its keys are guest_firstboot_root_keys.',
    ]


def test_a_list_names_each_guest():
    found = vmm_firstboot_problems([dict(inputs(), guest='web1'), dict(inputs(hostname='web 2'), guest='web2'),
                                    dict(inputs(users=[{'name': 'x', 'shell': 'sh'}]), guest='web3')])
    assert found == ['web2: guest_firstboot_hostname: "web 2" refused; must be a short host name '
                     "(letters, digits and inner '-', at most 63).",
                     'web3: guest_firstboot_users[].shell: "sh" refused; must be an absolute path to a shell.']
    assert vmm_firstboot_problems([]) == []


def test_not_a_dict():
    with pytest.raises(AnsibleFilterError, match='expects a dict of first-boot inputs'):
        vmm_firstboot_problems('web1')
    with pytest.raises(AnsibleFilterError, match='expects a dict of first-boot inputs'):
        vmm_firstboot_problems(['web1'])
