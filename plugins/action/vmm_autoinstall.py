# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of openbsd.vmm.vmm_autoinstall.

Everything that needs more than Python's standard library happens here: the
response file is rendered with Jinja2, passwords are hashed with bcrypt through
the passlib API (libpass), and the result is checked against the installer's
questions (module_utils/installer.py) before anything reaches the target. The
module then publishes the files, runs the install and keeps the manifest.

Idempotence with salted hashes: before rendering, the module is asked what is
already published or installed (``phase: inspect``); a password that verifies
against an existing hash keeps that hash, and a random root password already
delivered in the published site set is reused, so the same inputs render the
same bytes and the same input digest.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import ipaddress
import json
import re
import secrets

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_spec import ARGUMENT_SPEC, NETWORK_SPEC
from ansible_collections.openbsd.vmm.plugins.module_utils.secret_seal import SealError, unseal
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import SizeError, scan_scaled
from ansible_collections.openbsd.vmm.plugins.module_utils.vm_lifecycle import MAX_MEMORY, MIN_MEMORY
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import vm_name_problem
from ansible_collections.openbsd.vmm.plugins.module_utils.installer import (
    InstallPlan, ResponseFileError, check_answer_key, check_response_file, expected_questions, key_matches, manifest_matches,
    manifest_path, parse_response_file, simulate)

try:
    from jinja2 import Environment, StrictUndefined
    HAS_JINJA2 = True
except ImportError:  # pragma: no cover - jinja2 comes with ansible-core
    HAS_JINJA2 = False

try:
    import passlib
    from passlib.hash import bcrypt
    HAS_PASSLIB = True
except ImportError:
    HAS_PASSLIB = False

MODULE = 'openbsd.vmm.vmm_autoinstall'

# Replaced on the target by the host side of the temporary VM's local interface: vmd derives it
# from the VM's id and the host's `local prefix` (priv.c vm_priv_addr), known once vmd registered the VM.
SERVER_TOKEN = '@INSTALL_SERVER@'
DEFAULT_SERVER = 'http://%s' % SERVER_TOKEN

RANDOM = 'random'
DISABLED_PASSWORD = '*' * 13
ROOT_PASSWORD_COMMENT = '# root password: '

_MAC = re.compile(r'[0-9a-f]{2}(:[0-9a-f]{2}){5}')
_HOSTNAME = re.compile(r'[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?')
_DOMAIN = re.compile(r'[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*')
_LOGIN = re.compile(r'[a-z][-a-z0-9_]*')
# One line only: a "hash" is written verbatim into the response file.
_BCRYPT = re.compile(r'\$2[a-z]\$\d\d\$.*')
_TIMEZONE = re.compile(r'[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*')
_SET_TOKEN = re.compile(r'[+-]?[A-Za-z0-9._*?\[\]-]+')
_SIZE = r'\d+(\.\d+)?[BKMGTbkmgt]?'
_DISKLABEL_SIZE = re.compile(r'%s(-(%s|\*)?)?' % (_SIZE, _SIZE))
_PERCENT = re.compile(r'\d{1,3}%')
_SSH_KEY = re.compile(r'(ssh-|ecdsa-|sk-)\S+ \S+( .*)?')
_GROUP = re.compile(r'[A-Za-z_][A-Za-z0-9_.-]*|\d+')
# One component of a site file path: no '/', no control character; '.' and '..' are refused apart.
_SITE_COMPONENT = re.compile(r'[^\x00-\x1f\x7f/]+')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')
# vmm(4) runs amd64 and i386 guests (vmd(8)); the installer's sets live under pub/OpenBSD/<release>/<arch>.
GUEST_ARCHES = ('amd64', 'i386')
# Paths the module opens on the target: a control character would name a different file than the one meant.
PATH_OPTIONS = ('docroot', 'disk', 'bsd_rd', 'console_log', 'vm_conf')

# Accounts in the ramdisk's /etc/passwd: the installer refuses them as logins.
RESERVED_LOGINS = frozenset((
    'root', 'daemon', 'operator', 'bin', 'build', 'sshd', 'www', 'nobody',
))
# Time zones that are directories: answering one makes the installer ask a sub-timezone.
TIMEZONE_DIRECTORIES = frozenset((
    'Africa', 'America', 'Antarctica', 'Arctic', 'Asia', 'Atlantic', 'Australia', 'Brazil', 'Canada', 'Chile',
    'Etc', 'Europe', 'Indian', 'Mexico', 'Pacific', 'US',
))

# Passed through to the module as they are (no secrets among them).
TARGET_OPTIONS = ('state', 'name', 'mac', 'hostname', 'docroot', 'file_group', 'disk', 'memory', 'bsd_rd', 'release', 'arch',
                  'install_timeout', 'console_log', 'vm_conf', 'install_clients_table', 'pf_anchor')

RESPONSE_TEMPLATE = """\
# OpenBSD autoinstall(8) response file for {{ hostname }} ({{ mac }}).
# Written by openbsd.vmm.vmm_autoinstall; every line answers an installer question.
{% for key, value in answers %}
{{ key }} = {{ value }}
{% endfor %}
System hostname = {{ hostname }}
Network interface to configure = {{ net.interface }}
IPv4 address for {{ net.interface }} = {{ net.ipv4 }}
IPv6 address for {{ net.interface }} = {{ net.ipv6 }}
{% if static_ipv4 %}
Default IPv4 route = {{ net.ipv4_gateway or 'none' }}
{% endif %}
{% if static_ipv6 and net.ipv6_gateway %}
IPv6 default router = {{ net.ipv6_gateway }}
{% endif %}
{% if net.domain %}
DNS domain name = {{ net.domain }}
{% endif %}
{% if net.nameservers %}
DNS nameservers = {{ net.nameservers | join(' ') }}
{% endif %}
Password for root account = {{ root_hash }}
{% if root_ssh_key %}
Public ssh key for root account = {{ root_ssh_key }}
{% endif %}
Start sshd(8) by default = {{ 'yes' if sshd else 'no' }}
{% if first_user %}
Setup a user = {{ first_user.name }}
Full name for user {{ first_user.name }} = {{ first_user.fullname }}
Password for user {{ first_user.name }} = {{ first_user.hash }}
{% if first_user.ssh_keys %}
Public ssh key for user {{ first_user.name }} = {{ first_user.ssh_keys[0] }}
{% endif %}
{% else %}
Setup a user = no
{% endif %}
{% if sshd and allow_root_ssh %}
Allow root ssh login = {{ allow_root_ssh }}
{% endif %}
What timezone are you in = {{ timezone }}
{% if disklabel_url %}
URL to autopartitioning template for disklabel = {{ disklabel_url }}
{% endif %}
Location of sets = http
HTTP proxy URL = none
HTTP Server = {{ server }}
Server directory = pub/OpenBSD/{{ release }}/{{ arch }}
{% if set_line %}
Set name(s) = {{ set_line }}
{% endif %}
{% if site_set %}
Checksum test for {{ site_set }} failed. Continue anyway = yes
Unverified sets: {{ site_set }}. Continue without verification = yes
{% endif %}
"""

INSTALL_SITE_TEMPLATE = """\
#!/bin/sh
# Run chrooted in the new system at the end of the install (written by openbsd.vmm.vmm_autoinstall).
set -e
{% for user in users %}
useradd -m -G wheel -s /bin/ksh -c {{ user.fullname | shquote }} -p {{ user.hash | shquote }} {{ user.name }}
{% endfor %}
{% for user in key_users %}
install -d -m 700 -o {{ user.name }} -g {{ user.name }} /home/{{ user.name }}/.ssh
{% for key in user.ssh_keys %}
echo {{ key | shquote }} >> /home/{{ user.name }}/.ssh/authorized_keys
{% endfor %}
chown {{ user.name }}:{{ user.name }} /home/{{ user.name }}/.ssh/authorized_keys
chmod 600 /home/{{ user.name }}/.ssh/authorized_keys
{% endfor %}
{% if user_script %}
/install.site.user
rm -f /install.site.user
{% endif %}
"""


def shquote(value):
    """Single-quote for sh(1)."""
    return "'" + str(value).replace("'", "'\\''") + "'"


def _environment():
    environment = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, autoescape=False)
    environment.filters['shquote'] = shquote
    return environment


class AutoinstallError(ValueError):
    """The options cannot make a working install."""


def _single_line(what, value):
    value = '' if value is None else str(value)
    if '\n' in value or '\r' in value:
        raise AutoinstallError('%s must be a single line' % what)
    return value


def set_digits(release):
    """7.8 -> 78 (the XY in baseXY.tgz)."""
    if not re.fullmatch(r'\d+\.\d', release):
        raise AutoinstallError('release must look like 7.8 (got %r)' % release)
    return release.replace('.', '')


def offered_sets(release, site_set=None):
    """The files the installer offers from the set directory, and its default selection."""
    xy = set_digits(release)
    sets = ['bsd', 'bsd.rd'] + ['%s%s.tgz' % (name, xy) for name in
                                ('base', 'comp', 'man', 'game', 'xbase', 'xshare', 'xfont', 'xserv')]
    offered = list(sets) + ([site_set] if site_set else [])
    selected = set(sets)
    if site_set and site_set != 'site%s.tgz' % xy:
        selected.add(site_set)
    return offered, selected


def select_sets(tokens, release, site_set=None):
    """Apply the installer's Set name(s) tokens; refuse a selection that would abort the install."""
    offered, selected = offered_sets(release, site_set)
    for token in tokens:
        if not _SET_TOKEN.fullmatch(token) or token.lower() in ('done', 'abort'):
            raise AutoinstallError('invalid set token %r: use a glob, optionally prefixed with + or -' % token)
        sign, pattern = (token[0], token[1:]) if token[0] in '+-' else ('+', token)
        if pattern == 'all':
            pattern = '*'
        matches = [name for name in offered if fnmatch.fnmatchcase(name, pattern)]
        if sign == '-':
            selected.difference_update(matches)
        else:
            selected.update(matches)
    xy = set_digits(release)
    for needed in ('bsd', 'base%s.tgz' % xy):
        if needed not in selected:
            raise AutoinstallError("the sets %s leave out %s: the installer would ask \"Are you *SURE* your install is "
                                   "complete without '%s'?\" and abort" % (' '.join(tokens), needed, needed))
    return sorted(selected)


def render_disklabel(disklabel):
    """A disklabel(8) auto-allocation template from a list of {mount, size, percent} or template text."""
    if disklabel in (None, 'auto'):
        return None
    if isinstance(disklabel, str):
        rows = []
        for line in disklabel.splitlines():
            if line.strip() and not line.strip().startswith('#'):
                words = line.split()
                rows.append(dict(mount=words[0], size=words[1] if len(words) > 1 else '',
                                 percent=words[2] if len(words) > 2 else None, extra=words[3:]))
    elif isinstance(disklabel, list):
        rows = []
        for item in disklabel:
            if not isinstance(item, dict) or 'mount' not in item or 'size' not in item:
                raise AutoinstallError('each disklabel entry needs mount and size (got %r)' % (item,))
            rows.append(dict(mount=str(item['mount']), size=str(item['size']),
                             percent=None if item.get('percent') is None else str(item['percent']), extra=[]))
    else:
        raise AutoinstallError("disklabel must be 'auto', a list of {mount, size, percent} or template text")
    if not rows:
        raise AutoinstallError('the disklabel template is empty')
    lines = []
    for row in rows:
        mount, size, percent = row['mount'], row['size'], row['percent']
        if row['extra'] or not (mount == 'swap' or mount.startswith('/')) or any(c.isspace() for c in mount):
            raise AutoinstallError('disklabel: %r is not a mount point or swap' % mount)
        if not _DISKLABEL_SIZE.fullmatch(size):
            raise AutoinstallError('disklabel: size %r for %s must be SIZE or MIN-MAX (e.g. 1G, 2G-*, 150M-1G)' % (size, mount))
        if percent is not None:
            percent = percent if percent.endswith('%') else percent + '%'
            if not _PERCENT.fullmatch(percent) or not 0 < int(percent[:-1]) <= 100:
                raise AutoinstallError('disklabel: percentage %r for %s must look like 20%%' % (percent, mount))
        lines.append(' '.join([mount, size] + ([percent] if percent else [])))
    if '/' not in [line.split()[0] for line in lines]:
        raise AutoinstallError('the disklabel template has no / (root) partition')
    return '\n'.join(lines) + '\n'


def _check_address(value, version, what):
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise AutoinstallError('%s %r is not an address with a prefix length (e.g. %s)'
                               % (what, value, '192.0.2.10/24' if version == 4 else '2001:db8::10/64'))
    if interface.version != version or '/' not in value:
        raise AutoinstallError('%s %r must be an IPv%d address with a /prefix length' % (what, value, version))


def _check_ip(value, version, what):
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise AutoinstallError('%s %r is not an IP address' % (what, value))
    if version and address.version != version:
        raise AutoinstallError('%s %r is not an IPv%d address' % (what, value, version))


def check_network(net):
    """Validate the network options; return them with derived flags."""
    net = dict(net)
    if not re.fullmatch(r'[a-z]+\d+', net['interface']):
        raise AutoinstallError('network.interface %r is not an interface name such as vio0' % net['interface'])
    for key, version in (('ipv4', 4), ('ipv6', 6)):
        if net[key] not in ('autoconf', 'none'):
            _check_address(net[key], version, 'network.%s' % key)
    if net['ipv4'] == 'none' and net['ipv6'] == 'none':
        raise AutoinstallError('network: at least one of ipv4 and ipv6 must be configured to fetch the sets')
    if net.get('ipv4_gateway') and net['ipv4_gateway'] != 'none':
        _check_ip(net['ipv4_gateway'], 4, 'network.ipv4_gateway')
    if net.get('ipv6_gateway') and net['ipv6_gateway'] != 'none':
        _check_ip(net['ipv6_gateway'], 6, 'network.ipv6_gateway')
    if net.get('domain') and not _DOMAIN.fullmatch(net['domain']):
        raise AutoinstallError('network.domain %r is not a DNS domain name' % net['domain'])
    for server in net.get('nameservers') or []:
        _check_ip(server, None, 'network.nameservers entry')
    if net['ipv4'] == 'autoconf' and (net.get('domain') or net.get('nameservers')):
        # install.sub does not ask for them when the only interface uses DHCP: the lease supplies them.
        raise AutoinstallError('network.domain and network.nameservers need a static ipv4 (or none): with DHCP the '
                               'installer takes them from the lease and does not ask')
    return net


def is_encrypted(password):
    """The installer takes a bcrypt string ($2?$NN$..., > 40 chars) as already encrypted."""
    return bool(_BCRYPT.fullmatch(password)) and len(password) > 40


def _release(version):
    """(major, minor) of a version string such as 4.0.1 or 5.0.0rc1, None when it is not one."""
    match = re.fullmatch(r'(\d+)\.(\d+)(?:[.+-]?[0-9A-Za-z.+-]*)?', str(version or ''))
    return (int(match.group(1)), int(match.group(2))) if match else None


def installed_versions():
    """The versions of the passlib API and of bcrypt that hashing would use on this controller."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        bcrypt_version = version('bcrypt')
    except (ImportError, PackageNotFoundError):
        bcrypt_version = None
    return getattr(passlib, '__version__', None) if HAS_PASSLIB else None, bcrypt_version


def passlib_problem(passlib_version, bcrypt_version):
    """Why hashing cannot be trusted with these versions, or None.

    passlib 1.7.x (unmaintained since 2020) does not support bcrypt >= 4.1: it cannot read their version
    (bcrypt 4.1 removed ``__about__``), and its backend self-test hashes a password longer than 72 bytes,
    which bcrypt 5.0 refuses, so every password then fails with "password cannot be longer than 72 bytes".
    libpass (1.9+) is the maintained fork that supports current bcrypt and keeps the ``passlib`` import name.
    """
    passlib_release, bcrypt_release = _release(passlib_version), _release(bcrypt_version)
    if passlib_release and bcrypt_release and passlib_release < (1, 8) and bcrypt_release >= (4, 1):
        return ('passlib %s does not support bcrypt %s (passlib 1.7 predates bcrypt 4.1; with bcrypt 5 every password '
                'fails, e.g. with "password cannot be longer than 72 bytes"): install libpass on the controller '
                '(pip uninstall passlib; pip install libpass), the maintained fork that provides the passlib API'
                % (passlib_version, bcrypt_version))
    return None


def require_passlib():
    if not HAS_PASSLIB:
        raise AutoinstallError('hashing passwords needs the passlib API: install libpass on the controller')
    problem = passlib_problem(*installed_versions())
    if problem:
        raise AutoinstallError(problem)


def hash_password(password, rounds, existing_hashes=()):
    """The response-file form of ``password``: reuse an existing hash that verifies, else a new $2b$ hash."""
    if password == DISABLED_PASSWORD or is_encrypted(password):
        return password
    require_passlib()
    for existing in existing_hashes:
        if existing and is_encrypted(existing):
            try:
                if bcrypt.verify(password, existing):
                    return existing
            except ValueError:
                continue
    return bcrypt.using(rounds=rounds, ident='2b').hash(password)


def site_set_name(release, hostname, per_host):
    xy = set_digits(release)
    return 'site%s-%s.tgz' % (xy, hostname) if per_host else 'site%s.tgz' % xy


def existing_hashes_for(existing, account):
    """Hashes already published or installed for ``account`` ('root' or a login), to verify against."""
    found = [(existing.get('manifest') or {}).get('password_hashes', {}).get(account),
             (existing.get('site_user_hashes') or {}).get(account)]
    question = 'Password for root account?' if account == 'root' else 'Password for user %s?' % account
    for line in parse_response_file(existing.get('response_file') or ''):
        if key_matches(line.key, question):
            found.append(line.answer)
            break
    return [value for value in found if value]


def check_target_options(args):
    """The options the module uses on the target as they are: refused here, before the target is touched."""
    issue = vm_name_problem(args['name'])
    if issue:
        raise AutoinstallError('name %r: %s (it names the temporary install VM)' % (args['name'], issue))
    for option in PATH_OPTIONS:
        value = args.get(option)
        if value is None:
            continue
        if _CONTROL.search(value):
            raise AutoinstallError('%s %r contains a control character' % (option, value))
        if not value.startswith('/'):
            raise AutoinstallError('%s %r must be an absolute path' % (option, value))
    group = args.get('file_group')
    if group not in (None, '') and not _GROUP.fullmatch(str(group)):
        raise AutoinstallError('file_group %r is not a group name or number' % (group,))
    if args['install_timeout'] <= 0:
        raise AutoinstallError('install_timeout %d must be a positive number of seconds' % args['install_timeout'])
    if args.get('memory') is not None:
        try:
            size = scan_scaled(args['memory'])
        except SizeError as exc:
            raise AutoinstallError('memory: %s' % exc)
        if size < MIN_MEMORY:
            raise AutoinstallError("memory %r is %d bytes; vmd needs at least 1M (a bare number means bytes: write '1G')"
                                   % (args['memory'], size))
        if size > MAX_MEMORY:
            raise AutoinstallError('memory %r is larger than the limit of 128G' % (args['memory'],))


def build_payload(args, existing=None, token_source=None):
    """Render everything the module needs from the task options.

    ``existing`` is what the module found already published/installed; ``token_source``
    makes random passwords (default secrets.token_urlsafe). Returns (payload, summary)
    where payload carries secrets (for the module only) and summary does not.
    """
    existing = existing or {}
    token_source = token_source or (lambda: secrets.token_urlsafe(18))
    check_target_options(args)
    mac = args['mac'].lower()
    if not _MAC.fullmatch(mac):
        raise AutoinstallError('mac %r must be six colon-separated hex octets (e.g. fe:e1:bb:d1:00:01)' % args['mac'])
    if int(mac[:2], 16) & 1:
        raise AutoinstallError('mac %s is a multicast address (first octet odd); a NIC needs a unicast one' % mac)
    hostname = args.get('hostname') or args['name']
    if not _HOSTNAME.fullmatch(hostname):
        raise AutoinstallError("hostname %r must be a short host name (letters, digits, '-'; no dots)" % hostname)
    release = args['release']
    xy = set_digits(release)
    if not re.fullmatch(r'[a-z0-9]+', args['arch']):
        raise AutoinstallError('arch %r is not an OpenBSD architecture name' % args['arch'])
    if args['arch'] not in GUEST_ARCHES:
        raise AutoinstallError('arch %r: vmm(4) runs %s guests only' % (args['arch'], ' and '.join(GUEST_ARCHES)))
    rounds = args['bcrypt_rounds']
    if not 10 <= rounds <= 31:
        raise AutoinstallError('bcrypt_rounds must be between 10 and 31 (two digits), got %d' % rounds)

    root_password = args.get('root_password')
    if not root_password:
        raise AutoinstallError('root_password is required: the installer has no default for "Password for root account?"')
    _single_line('root_password', root_password)
    random_root = root_password == RANDOM
    if random_root:
        # Reuse the password already delivered in the published site set, so publishing stays idempotent.
        previous = existing.get('site_root_password')
        plain = previous if previous and any(
            _verifies(previous, candidate) for candidate in existing_hashes_for(existing, 'root')) else token_source()
        root_hash = hash_password(plain, rounds, existing_hashes_for(existing, 'root'))
    else:
        plain = None
        root_hash = hash_password(root_password, rounds, existing_hashes_for(existing, 'root'))

    root_ssh_key = _single_line('root_ssh_key', args.get('root_ssh_key') or '')
    if root_ssh_key and not _SSH_KEY.fullmatch(root_ssh_key):
        raise AutoinstallError('root_ssh_key does not look like an OpenSSH public key line')
    allow_root_ssh = args.get('allow_root_ssh') or ('prohibit-password' if root_ssh_key else None)

    users = []
    for user in args.get('users') or []:
        login = user['name']
        if not _LOGIN.fullmatch(login) or len(login) > 31:
            raise AutoinstallError('user name %r must match [a-z][-a-z0-9_]* and be at most 31 characters' % login)
        if login in RESERVED_LOGINS or login in [other['name'] for other in users]:
            raise AutoinstallError('user name %r is reserved or given twice' % login)
        password = _single_line('password of user %s' % login, user['password'])
        if not password:
            raise AutoinstallError('user %s needs a password' % login)
        keys = [_single_line('ssh key of user %s' % login, key) for key in user.get('ssh_keys') or []]
        for key in keys:
            if not _SSH_KEY.fullmatch(key):
                raise AutoinstallError('an ssh key of user %s does not look like an OpenSSH public key line' % login)
        fullname = _single_line('fullname of user %s' % login, user.get('fullname') or login)
        if re.search(r'[:&,]', fullname) or len(fullname) > 100:
            # install.sub refuses these (passwd(5) field separators and expansion) and aborts unattended installs.
            raise AutoinstallError("fullname of user %s must not contain ':', '&' or ',' and be at most 100 characters"
                                   % login)
        users.append(dict(name=login, fullname=fullname, ssh_keys=keys,
                          hash=hash_password(password, rounds, existing_hashes_for(existing, login))))

    timezone = args['timezone']
    if not _TIMEZONE.fullmatch(timezone) or '..' in timezone:
        raise AutoinstallError('timezone %r is not a zone name such as UTC or Europe/Berlin' % timezone)
    if timezone in TIMEZONE_DIRECTORIES:
        raise AutoinstallError("timezone %r is a region: name a zone inside it (e.g. %s/...), or the installer asks "
                               "\"What sub-timezone of '%s' are you in?\"" % (timezone, timezone, timezone))

    net = check_network(dict(NETWORK_SPEC_DEFAULTS, **(args.get('network') or {})))
    static_ipv4 = net['ipv4'] not in ('autoconf', 'none')
    static_ipv6 = net['ipv6'] not in ('autoconf', 'none')

    server = args.get('install_server') or DEFAULT_SERVER
    _single_line('install_server', server)
    if not re.fullmatch(r'(https?://)?[A-Za-z0-9.:\[\]@_-]+', server.rstrip('/')):
        raise AutoinstallError('install_server %r must be a host name, address or http:// URL without a path' % server)
    server = server.rstrip('/')
    base_url = server if '://' in server else 'http://' + server

    disklabel = render_disklabel(args.get('disklabel'))
    disklabel_name = '%s-disklabel' % mac if disklabel else None

    site = args.get('site') or {}
    site_files = []
    for item in site.get('files') or []:
        path = item['path'].lstrip('/')
        components = path.split('/')
        if (not path or path in ('install.site', 'install.site.user')
                or not all(_SITE_COMPONENT.fullmatch(part) and part not in ('.', '..') for part in components)):
            raise AutoinstallError('site file path %r must be a relative path inside the new root, without empty, "." or ".." '
                                   'components or control characters, and not install.site (use site.install_site for '
                                   'the install.site script)' % item['path'])
        if not re.fullmatch(r'0?[0-7]{3,4}', str(item.get('mode') or '0644')):
            raise AutoinstallError('site file %s: mode %r is not an octal mode' % (path, item.get('mode')))
        site_files.append(dict(path=path, content=item['content'], mode=str(item.get('mode') or '0644')))
    user_script = site.get('install_site')
    extra_users = users[1:]
    key_users = [dict(name=users[0]["name"], ssh_keys=users[0]['ssh_keys'][1:])] if users and users[0]['ssh_keys'][1:] else []
    key_users += [dict(name=user["name"], ssh_keys=user['ssh_keys']) for user in extra_users if user['ssh_keys']]
    if random_root:
        # Only the comment: the installer itself appends root_ssh_key to this file after the sets are extracted.
        site_files.append(dict(path='root/.ssh/authorized_keys', content=ROOT_PASSWORD_COMMENT + plain + '\n', mode='0600'))
    if extra_users or key_users:
        script = _environment().from_string(INSTALL_SITE_TEMPLATE).render(
            users=extra_users, key_users=key_users, user_script=bool(user_script))
        site_files.append(dict(path='install.site', content=script, mode='0755'))
        if user_script:
            site_files.append(dict(path='install.site.user', content=user_script, mode='0755'))
    elif user_script:
        site_files.append(dict(path='install.site', content=user_script, mode='0755'))
    site_set = site_set_name(release, hostname, site.get('per_host', True)) if site_files else None

    tokens = list(args.get('sets') or [])
    select_sets(tokens, release, site_set)
    if site_set:
        tokens.append('+' + site_set)
    set_line = ' '.join(tokens)

    answers = []
    for key, value in (args.get('answers') or {}).items():
        key = _single_line('answers key', key).strip()
        value = _single_line('answer for %r' % key, value).strip()
        if not key or '=' in key or key.startswith('#'):
            raise AutoinstallError('answers key %r cannot be written as a response file key' % key)
        if not value:
            raise AutoinstallError('answer for %r is empty: the installer ignores empty answers' % key)
        try:
            check_answer_key(key)
        except ResponseFileError as exc:
            raise AutoinstallError(str(exc))
        answers.append((key, value))

    text = _environment().from_string(RESPONSE_TEMPLATE).render(
        hostname=hostname, mac=mac, answers=answers, net=net, static_ipv4=static_ipv4, static_ipv6=static_ipv6,
        root_hash=root_hash, root_ssh_key=root_ssh_key, sshd=args['sshd'],
        first_user=users[0] if users else None, allow_root_ssh=allow_root_ssh, timezone=timezone,
        disklabel_url='%s/%s' % (base_url, disklabel_name) if disklabel else None,
        server=base_url, release=release, arch=args['arch'], set_line=set_line, site_set=site_set)

    plan = InstallPlan(hostname=hostname, interface=net['interface'], ipv4=net['ipv4'], ipv6=net['ipv6'],
                       sshd=args['sshd'],
                       users=[user['name'] for user in users[:1]], disklabel_template=bool(disklabel),
                       set_lines=1 if set_line else 0, site_set=site_set, release=release, arch=args['arch'])
    text = drop_overridden_lines(text, plan, len(answers))
    try:
        check_response_file(text, plan)
    except ResponseFileError as exc:
        raise AutoinstallError(str(exc))

    password_hashes = dict(root=root_hash)
    password_hashes.update((user['name'], user['hash']) for user in users)
    digest_source = dict(
        response_file=text.replace(root_hash, RANDOM) if random_root else text,
        disklabel=disklabel,
        site_files=[dict(item, content=item['content'].replace(plain, RANDOM) if random_root else item['content'])
                    for item in site_files],
        site_set=site_set, release=release, arch=args['arch'], mac=mac, hostname=hostname,
        bsd_rd=args.get('bsd_rd'), memory=args.get('memory'))
    inputs_sha256 = hashlib.sha256(json.dumps(digest_source, sort_keys=True).encode('utf-8')).hexdigest()
    payload = dict(
        phase='apply',
        response_file=text,
        disklabel=disklabel,
        disklabel_name=disklabel_name,
        site_set=site_set,
        site_files=[dict(path=item['path'], mode=item['mode'],
                         content=base64.b64encode(item['content'].encode('utf-8')).decode('ascii'))
                    for item in site_files],
        inputs_sha256=inputs_sha256,
        password_hashes=password_hashes,
        random_root_password=random_root,
        # Answers may carry passphrases: the module's diff shows their keys with the values masked.
        secret_answer_keys=[key for key, _value in answers],
    )
    summary = dict(hostname=hostname, mac=mac, site_set=site_set, disklabel=disklabel_name is not None,
                   inputs_sha256=inputs_sha256, questions_answered=len(parse_response_file(text)))
    return payload, summary


def _verifies(password, candidate):
    if not (HAS_PASSLIB and candidate and is_encrypted(candidate)):
        return False
    require_passlib()
    try:
        return bcrypt.verify(password, candidate)
    except ValueError:
        return False


NETWORK_SPEC_DEFAULTS = dict((key, spec.get('default')) for key, spec in NETWORK_SPEC.items())


def drop_overridden_lines(text, plan, answer_count):
    """Drop generated lines that no question consumes because an ``answers`` entry took their question."""
    result = simulate(text, expected_questions(plan))
    generated_leftovers = set(line.lineno for line in result.leftover)
    lines = text.splitlines(True)
    answer_lines = set(line.lineno for line in parse_response_file(text)[:answer_count])
    kept = [line for number, line in enumerate(lines, 1) if number not in generated_leftovers or number in answer_lines]
    return ''.join(kept)


class ActionModule(ActionBase):
    """Render and check on the controller, publish and install on the target."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        validator = ArgumentSpecValidator(ARGUMENT_SPEC)
        validated = validator.validate(self._task.args)
        if validated.error_messages:
            raise AnsibleActionFail('vmm_autoinstall: %s' % '; '.join(validated.error_messages))
        args = validated.validated_parameters
        if args['state'] == 'installed' and not args.get('disk'):
            raise AnsibleActionFail('vmm_autoinstall: state=installed needs disk')
        if args['state'] == 'published' and not args.get('install_server'):
            raise AnsibleActionFail('vmm_autoinstall: state=published needs install_server (the host the guest fetches '
                                    'the sets from); only state=installed can use the host side of the temporary VM\'s local '
                                    'interface')
        target_args = dict((key, args.get(key)) for key in TARGET_OPTIONS)

        if args['state'] == 'absent':
            result.update(self._run_module(target_args, dict(phase='absent', site_set=self._site_set_candidates(args)),
                                           task_vars))
            return result

        if not HAS_JINJA2:
            raise AnsibleActionFail('vmm_autoinstall needs Jinja2 on the controller')
        try:
            # Refuse bad options before touching the target at all.
            build_payload(args)
        except AutoinstallError as exc:
            raise AnsibleActionFail('vmm_autoinstall: %s' % exc)
        seal_key = secrets.token_hex(32)
        inspected = self._run_module(target_args, dict(phase='inspect', site_set=self._site_set_candidates(args),
                                                       seal_key=seal_key), task_vars)
        if inspected.get('failed'):
            result.update(inspected)
            return result
        try:
            existing = json.loads(unseal(seal_key, inspected.get('existing_sealed') or ''))
        except (SealError, ValueError) as exc:
            raise AnsibleActionFail('vmm_autoinstall: the inspect phase returned an unreadable result (%s)' % exc)
        stale_removed = inspected.get('stale_removed') or []
        try:
            payload, summary = build_payload(args, existing)
        except AutoinstallError as exc:
            raise AnsibleActionFail('vmm_autoinstall: %s' % exc)
        if args['state'] == 'installed' and manifest_matches(existing.get('manifest'), existing.get('disk_identity'),
                                                             summary['inputs_sha256']):
            # The disk already holds this install: no second trip to the target.
            result.update(changed=False, install=dict(succeeded=True, skipped=True), removed=[], rendered=summary,
                          manifest=manifest_path(args['disk']), stale_removed=stale_removed,
                          response_file='%s/%s-install.conf' % (args['docroot'].rstrip('/'), summary['mac']))
            return result
        module_result = self._run_module(target_args, payload, task_vars)
        module_result.setdefault('rendered', summary)
        module_result['stale_removed'] = stale_removed + (module_result.get('stale_removed') or [])
        result.update(module_result)
        return result

    def _run_module(self, target_args, payload, task_vars):
        """Run the module with ``payload`` sent as a file, never in its arguments.

        Module arguments are written into the AnsiballZ file on the target (kept by ANSIBLE_KEEP_REMOTE_FILES, or
        by a killed run) and printed by ANSIBLE_DEBUG; the payload (password hashes, the random root password in
        the site set) goes into the task's remote temporary directory, which Ansible removes, and the module
        deletes it as soon as it has read it.
        """
        shell = self._connection._shell
        if not shell.tmpdir:
            self._make_tmp_path()
        remote_path = shell.join_path(shell.tmpdir, 'vmm_autoinstall-%s.json' % secrets.token_hex(8))
        self._transfer_data(remote_path, json.dumps(payload))
        self._fixup_perms2((shell.tmpdir, remote_path))
        # payload is internal, so not in the module's documented spec: ignore_unknown_opts lets AnsibleModule take it
        # (the task's own options were validated above against the same spec, so no user typo gets through).
        return self._execute_module(module_name=MODULE, module_args=dict(target_args, payload=remote_path),
                                    task_vars=task_vars, ignore_unknown_opts=True)

    @staticmethod
    def _site_set_candidates(args):
        """The site set this task publishes (per host or shared), to inspect or remove."""
        try:
            hostname = args.get('hostname') or args['name']
            return site_set_name(args['release'], hostname, (args.get('site') or {}).get('per_host', True))
        except AutoinstallError:
            return None
