# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""A guest's first-boot configuration, worked out and applied on the guest in one module run.

Its name (/etc/myname and the running system), the static IPv6 line of its hostname.if, its users
(useradd/usermod/userdel) and their authorized_keys, root's extra keys. Each part compares the
guest's files with what is asked and changes only what differs; a file is written whole (temp name,
rename). Standard library only: it runs on the guest's python3.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import pwd
import re

from ansible_collections.openbsd.vmm.plugins.module_utils.atomic_file import read_file, write_atomic

# The patterns are full matches (re.fullmatch): a trailing newline never passes.
HOST_LABEL = r'[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
HOSTNAME = re.compile(r'%s(?:\.%s)*' % (HOST_LABEL, HOST_LABEL))
INTERFACE = re.compile(r'[a-z]{2,8}[0-9]{1,3}')
# user_ok() in OpenBSD's usr.sbin/user/user.c: no leading '-', at most 31 (LOGIN_NAME_MAX - 1)
LOGIN = re.compile(r'[a-z_][a-z0-9_.-]{0,30}')
SHELL = re.compile(r'/[A-Za-z0-9._/-]+')
KEY = re.compile(r'(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com'
                 r'|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [ -~]{1,200})?')
BCRYPT = re.compile(r'\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}')
RANDOM_PASSWORD = re.compile(r'[!-~]{8,128}')
STATIC_INET6 = re.compile(r'inet6 (?!autoconf)')
PASSWORD_COMMENT = '# password of %s (random, set when the user was created): %s'
# What hostname.if gets: hex digits, ':' and a dotted IPv4 tail; ipaddress alone would pass a '%scope'.
ADDRESS6_CHARS = re.compile(r'[0-9A-Fa-f:.]+')


def address6_ok(value):
    """An IPv6 address without prefix length or scope, as a static hostname.if line takes it."""
    if not isinstance(value, str) or not ADDRESS6_CHARS.fullmatch(value):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


class FirstbootError(Exception):
    """A command failed; the message names it and what it printed."""


def problems(params):
    """Every input that breaks its rule, as 'parameter: value refused; must be rule.' (none: [])."""
    found = []

    def check(name, value, pattern, rule, shown=None):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            found.append('%s: %s refused; must be %s.' % (name, shown or repr(value), rule))

    if params['hostname'] is not None:
        check('hostname', params['hostname'], HOSTNAME, 'a host name such as web1 or web1.example.org')
    check('interface', params['interface'], INTERFACE, 'an interface name such as vio0')
    if params['address6'] and not address6_ok(params['address6']):
        found.append('address6: %r refused; must be an IPv6 address without prefix length, or empty.' % params['address6'])
    names = [user['name'] for user in params['users']]
    for user in params['users']:
        where = 'users[%s]' % user['name']
        check('users[].name', user['name'], LOGIN,
              "a login name (lower-case letters, digits, '_', '.', '-', starting with a letter or '_', at most 31)")
        if user['name'] == 'root':
            found.append('users[].name: root is not managed here; its keys are root_keys.')
        for group in user['groups']:
            check('%s.groups' % where, group, LOGIN, 'a group name')
        check('%s.shell' % where, user['shell'], SHELL, 'an absolute path to a shell')
        for key in user['authorized_keys']:
            check('%s.authorized_keys' % where, key, KEY,
                  'one OpenSSH public key line (type, base64 key, optional comment; no options, no line break)')
        if user['password_hash'] is not None:
            check('%s.password_hash' % where, user['password_hash'], BCRYPT, 'a bcrypt hash ($2b$...)', 'a value')
        if user['random_password'] is not None:
            check('%s.random_password' % where, user['random_password'], RANDOM_PASSWORD,
                  'printable ASCII without spaces, 8 to 128 characters', 'a value')
            if user['password_hash'] is None or user['update_password'] != 'on_create':
                found.append('%s.random_password: needs its password_hash and update_password=on_create '
                             '(it is delivered only to a user created now).' % where)
    if len(set(names)) != len(names):
        found.append('users[].name: every user needs its own name.')
    for key in params['root_keys']:
        check('root_keys', key, KEY, 'one OpenSSH public key line (type, base64 key, optional comment; no options, no line break)')
    return found


class Guest:
    """The guest's files and accounts; ``run`` is AnsibleModule.run_command, ``etc`` where its files are."""

    def __init__(self, run, check_mode, etc='/etc', system=None, accounts=pwd):
        self.run = run
        self.check_mode = check_mode
        self.etc = etc
        self.system = system or platform.system()
        self.accounts = accounts
        self.changes = []
        self.diffs = []

    # -- helpers -----------------------------------------------------------------------------
    def _command(self, argv, shown=None):
        self.changes.append(shown or ' '.join(argv))
        if self.check_mode:
            return
        rc, out, err = self.run(argv)
        if rc != 0:
            raise FirstbootError('%s failed (exit %d): %s' % (shown or argv[0], rc, (err or out).strip()))

    def _write(self, path, before, after, mode, uid=None, gid=None, shown=None):
        """Write the file when its content differs; the diff shows ``shown`` (a redacted copy) when given."""
        if before == after:
            return
        self.changes.append('write %s' % path)
        self.diffs.append({'before_header': path, 'after_header': path,
                           'before': before or '', 'after': shown if shown is not None else after})
        if not self.check_mode:
            write_atomic(path, after, mode, gid=gid, uid=uid)

    def _account(self, name):
        try:
            return self.accounts.getpwnam(name)
        except KeyError:
            return None

    def _password_of(self, name):
        """The stored hash: OpenBSD keeps it in master.passwd(5), a shadow-suite system in shadow(5)."""
        path = os.path.join(self.etc, 'master.passwd' if self.system == 'OpenBSD' else 'shadow')
        for line in (read_file(path) or '').splitlines():
            fields = line.split(':')
            if fields[0] == name and len(fields) > 1:
                return fields[1]
        return None

    # -- the parts ---------------------------------------------------------------------------
    def hostname(self, name):
        """/etc/myname (OpenBSD keeps the FQDN there; netstart reads it at boot) and the running name."""
        path = os.path.join(self.etc, 'myname')
        before = read_file(path)
        self._write(path, before, name + '\n', 0o644)
        rc, out, dummy = self.run(['hostname'])
        if rc != 0 or out.strip() != name:
            self._command(['hostname', name])

    def address6(self, interface, address):
        """`inet6 ADDR 64` in hostname.if(5): the last static inet6 line replaced, or the line added."""
        path = os.path.join(self.etc, 'hostname.%s' % interface)
        before = read_file(path)
        lines = (before or '').splitlines()
        wanted = 'inet6 %s 64' % address
        matches = [index for index, line in enumerate(lines) if STATIC_INET6.match(line)]
        if matches:
            lines[matches[-1]] = wanted
        else:
            lines.append(wanted)
        mode = os.stat(path).st_mode & 0o7777 if before is not None else 0o640
        self._write(path, before, '\n'.join(lines) + '\n', mode)

    def user(self, user):
        """Create, update or remove one user; True when it was created now."""
        name = user['name']
        account = self._account(name)
        if user['state'] == 'absent':
            if account is not None:
                self._command(['userdel', name])
            return False
        if account is None:
            argv = ['useradd', '-m', '-s', user['shell']]
            if user['groups']:
                argv += ['-G', ','.join(user['groups'])]
            if user['password_hash'] is not None:
                argv += ['-p', user['password_hash']]
            self._command(argv + [name], 'useradd %s' % name)
            return True
        if account.pw_shell != user['shell']:
            self._command(['usermod', '-s', user['shell'], name])
        members = self._group_members()
        missing = [group for group in user['groups']
                   if group not in members or not (name in members[group][1] or members[group][0] == str(account.pw_gid))]
        if missing:
            # OpenBSD's usermod -G appends to the secondary groups (-S sets them); shadow-utils' -G sets them, -a -G appends.
            flags = ['-G'] if self.system == 'OpenBSD' else ['-a', '-G']
            self._command(['usermod'] + flags + [','.join(missing), name])
        if (user['password_hash'] is not None and user['update_password'] == 'always'
                and self._password_of(name) != user['password_hash']):
            self._command(['usermod', '-p', user['password_hash'], name], 'usermod -p <hash> %s' % name)
        return False

    def _group_members(self):
        """/etc/group read once: group name -> (gid, [member names]); the first line of a name counts."""
        members = {}
        for line in (read_file(os.path.join(self.etc, 'group')) or '').splitlines():
            fields = line.split(':')
            if len(fields) == 4 and fields[0] not in members:
                members[fields[0]] = (fields[2], fields[3].split(','))
        return members

    def authorized_keys(self, name, keys, comment=None):
        """The keys in ~name/.ssh/authorized_keys (others kept), the comment line first when given."""
        account = self._account(name)
        if account is None:                     # created in this check-mode run
            home, uid, gid = os.path.join('/home', name), None, None
        else:
            home, uid, gid = account.pw_dir, account.pw_uid, account.pw_gid
        directory = os.path.join(home, '.ssh')
        path = os.path.join(directory, 'authorized_keys')
        if not os.path.isdir(directory):
            self.changes.append('mkdir %s' % directory)
            if not self.check_mode:
                os.mkdir(directory, 0o700)
                os.chown(directory, uid, gid)
        before = read_file(path)
        lines = (before or '').splitlines()
        lines += [key for key in keys if key not in lines]
        shown = None
        if comment is not None and comment not in lines:
            shown = '\n'.join([comment.rsplit(': ', 1)[0] + ': ********'] + lines) + '\n'
            lines.insert(0, comment)
        after = '\n'.join(lines) + '\n' if lines else ''
        if before is None and not lines:
            return
        self._write(path, before, after, 0o600, uid=uid, gid=gid, shown=shown)


def configure(guest, params):
    """Apply the whole first-boot configuration in its order; returns the users created now."""
    if params['hostname'] is not None:
        guest.hostname(params['hostname'])
    if params['address6']:
        guest.address6(params['interface'], params['address6'])
    created = []
    for user in params['users']:
        if guest.user(user):
            created.append(user['name'])
        if user['state'] == 'present':
            comment = None
            if user['random_password'] is not None and user['name'] in created:
                comment = PASSWORD_COMMENT % (user['name'], user['random_password'])
            guest.authorized_keys(user['name'], user['authorized_keys'], comment)
    if params['root_keys']:
        guest.authorized_keys('root', params['root_keys'])
    return created
