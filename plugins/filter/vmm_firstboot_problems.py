# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_firstboot_problems
short_description: Every first-boot input of one or many guests that breaks its rule
version_added: 0.1.0
description:
  - 'Checks the inputs of the C(openbsd.vmm.guest_firstboot) role (its C(guest_firstboot_*) variables, named without
    the prefix) before anything changes, and returns one message per broken rule, naming the variable and the rule,
    such as C(guest_firstboot_users[].shell: "ksh" refused; must be an absolute path to a shell.) An empty list: all
    good.'
  - The role checks its own host with it; C(playbooks/provision.yml) checks every guest of a vmm host in one task,
    before any VM is made, so a bad input of one guest stops the run while nothing has changed yet.
  - The rules are those of the module M(openbsd.vmm.vmm_guest_firstboot), which checks them again on the guest.
    A password is checked only for what must not reach the guest (printable ASCII, no line break) and never shown.
options:
  _input:
    description:
      - One guest's inputs, or a list of them; a list's messages start with each guest's C(guest) name.
      - Keys (each optional, with the role's default) C(hostname), C(domain), C(address6), C(interface), C(users),
        C(root_keys), C(bcrypt_rounds); C(guest), the name a list's messages start with.
    type: raw
    required: true
seealso:
  - module: openbsd.vmm.vmm_guest_firstboot
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: A guest's first-boot inputs, checked before anything changes
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join(' ') }}"
  vars:
    problems: "{{ {'hostname': 'web1', 'users': [{'name': 'alice', 'shell': '/bin/ksh'}]} | openbsd.vmm.vmm_firstboot_problems }}"
"""

RETURN = r"""
_value:
  description: The messages, one per broken rule (per guest for a list); empty when every input is good.
  type: list
  elements: str
  sample: ['web1: guest_firstboot_users[].name: "-alice" refused; must be a login name (lower-case letters, ...).']
"""

import json
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.module_utils.guest_firstboot import (
    HOST_LABEL, HOSTNAME, INTERFACE, KEY, LOGIN, SHELL, address6_ok)

SHORT_HOSTNAME = re.compile(HOST_LABEL)
USER_STATE = re.compile(r'present|absent')
# crypt_newhash(3) takes a bcrypt cost from 4 to 31
BCRYPT_ROUNDS = re.compile(r'0?[4-9]|[12][0-9]|3[01]')
PRINTABLE = re.compile(r'[ -~]*')
KEY_RULE = 'one OpenSSH public key line (type, base64 key, optional comment; no options, no line break)'
LOGIN_RULE = "a login name (lower-case letters, digits, '_', '.', '-', starting with a letter or '_', at most 31)"
DEFAULTS = {'domain': '', 'address6': '', 'interface': 'vio0', 'users': [], 'root_keys': []}


def _text(value):
    # as Jinja's `string` filter shows a value: 10 -> '10'
    return value if isinstance(value, str) else str(value)


def _users(users):
    """The users as a list of dicts, or a message saying what is wrong with their shape."""
    if not isinstance(users, list) or not all(isinstance(user, Mapping) for user in users):
        return None, 'guest_firstboot_users: must be a list of users, each a dict with a name.'
    return users, None


def _guest_problems(inputs):
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError('vmm_firstboot_problems expects a dict of first-boot inputs (or a list of them), got %s'
                                 % type(inputs).__name__)
    values = dict(DEFAULTS, **inputs)
    users, shape = _users(values['users'])
    if shape:
        return [shape]
    root_keys = values['root_keys']
    if not isinstance(root_keys, list):
        return ['guest_firstboot_root_keys: must be a list of OpenSSH public key lines.']
    rules = [
        ('guest_firstboot_hostname', [values.get('hostname', '')], SHORT_HOSTNAME.fullmatch,
         "a short host name (letters, digits and inner '-', at most 63)"),
        ('guest_firstboot_domain', [values['domain']], lambda text: text == '' or HOSTNAME.fullmatch(text),
         'a DNS domain such as example.org, or empty'),
        ('guest_firstboot_address6', [values['address6']], lambda text: text == '' or address6_ok(text), 'an IPv6 address without prefix length, or empty'),
        ('guest_firstboot_interface', [values['interface']], INTERFACE.fullmatch, 'an interface name such as vio0'),
        ('guest_firstboot_users[].name', [user.get('name', '') for user in users], LOGIN.fullmatch, LOGIN_RULE),
        ('guest_firstboot_users[].groups', [group for user in users for group in user.get('groups') or []],
         LOGIN.fullmatch, 'a group name'),
        ('guest_firstboot_users[].shell', [user.get('shell', '/bin/ksh') for user in users], SHELL.fullmatch,
         'an absolute path to a shell'),
        ('guest_firstboot_users[].state', [user.get('state', 'present') for user in users], USER_STATE.fullmatch,
         'present or absent'),
        ('guest_firstboot_users[].authorized_keys, guest_firstboot_root_keys',
         [key for user in users for key in user.get('authorized_keys') or []] + root_keys, KEY.fullmatch, KEY_RULE),
        ('guest_firstboot_users[].password', [user['password'] for user in users if user.get('password') is not None],
         PRINTABLE.fullmatch, 'printable ASCII without line breaks'),
        # (left out, the role's default cost, which is good)
        ('guest_firstboot_bcrypt_rounds', [values[key] for key in ('bcrypt_rounds',) if key in values], BCRYPT_ROUNDS.fullmatch,
         'a bcrypt cost from 4 to 31'),
    ]
    found = []
    for name, checked, good, rule in rules:
        bad = [value for value in checked if not good(_text(value))]
        if bad:
            # a password is never shown, not even a bad one
            shown = 'a value' if name == 'guest_firstboot_users[].password' else ', '.join(json.dumps(_text(value)) for value in bad)
            found.append('%s: %s refused; must be %s.' % (name, shown, rule))
    names = [user.get('name', '') for user in users]
    if len(set(names)) != len(names):
        found.append('guest_firstboot_users[].name: every user needs its own name.')
    if 'root' in names:
        found.append('guest_firstboot_users[].name: root is not managed here; its keys are guest_firstboot_root_keys.')
    return found


def vmm_firstboot_problems(inputs):
    if isinstance(inputs, list):
        return ['%s: %s' % (guest.get('guest', '?') if isinstance(guest, Mapping) else '?', problem)
                for guest in inputs for problem in _guest_problems(guest)]
    return _guest_problems(inputs)


class FilterModule:
    def filters(self):
        return {'vmm_firstboot_problems': vmm_firstboot_problems}
