# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""What the collection relies on, checked on a vmm host without changing anything.

Each check reads the host (files, and commands that only report: ``rcctl get``,
``rcctl check``, ``vmctl status``, ``vmd -n``, ``sysctl -n``, ``pfctl -s``,
``httpd -n``, ``dhcpd -n``, ``ftp -o -``) and returns one record::

    {"name": "taps", "status": "pass" | "fail" | "skip", "detail": "...", "fix": "...", "facts": {...}}

``fix`` says how to mend a failed check: the command to run or the role
variable to set. The module ``openbsd.vmm.vmm_host_info`` runs them all;
``playbooks/preflight.yml`` reports them.
"""

from __future__ import annotations

import base64
import binascii
import grp
import os
import pwd
import re
import shlex
import stat
import subprocess
import sys

from ansible_collections.openbsd.vmm.plugins.module_utils import devices
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import SizeError, fmt_scaled, scan_scaled
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl, VmctlError, VmdUnavailable

PASS, FAIL, SKIP = 'pass', 'fail', 'skip'

# vmm(4) and vmd(8) are built for amd64 only (sys/arch/amd64/conf/GENERIC: vmm0).
VMM_ARCHES = ('amd64',)
DEFAULT_VM_CONF = '/etc/vm.conf'
COMMAND_TIMEOUT = 30


def record(name, status, detail, fix='', **facts):
    return dict(name=name, status=status, detail=detail, fix=fix if status == FAIL else '', facts=facts)


class Probe:
    """Runs read-only commands with LANG=C and a timeout; ``commands`` records every argv."""

    def __init__(self, environ=None, timeout=COMMAND_TIMEOUT):
        self.environ = dict(os.environ if environ is None else environ)
        self.environ.update(LANG='C', LC_ALL='C')
        self.timeout = timeout
        self.commands = []

    def run(self, argv):
        """(rc, stdout, stderr); rc is None when the command cannot be run (missing, timed out)."""
        argv = [str(arg) for arg in argv]
        self.commands.append(argv)
        try:
            # Not run_command: the install server check needs a timeout that kills a hanging fetch.
            process = subprocess.run(  # pylint: disable=ansible-bad-function
                argv, stdin=subprocess.DEVNULL, capture_output=True, env=self.environ, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            return None, '', '%s did not answer within %d seconds' % (argv[0], self.timeout)
        except OSError as exc:
            return None, '', 'cannot run %s: %s' % (argv[0], exc.strerror or exc)
        return (process.returncode, process.stdout.decode('utf-8', 'replace'), process.stderr.decode('utf-8', 'replace'))


def _said(stdout, stderr, limit=300):
    """The command's own words, on one line."""
    text = ' | '.join(line.strip() for line in (stderr + '\n' + stdout).splitlines() if line.strip())
    return text[:limit]


# ---------------------------------------------------------------------------
# The host itself

def check_os(probe, params, uname=None):
    sysname, _node, release, _version, machine = uname or os.uname()
    facts = dict(system=sysname, release=release, arch=machine)
    if sysname != 'OpenBSD':
        return record('os', FAIL, 'this host runs %s %s, not OpenBSD' % (sysname, release),
                      'run the collection against OpenBSD hosts with vmm(4) (OpenBSD/amd64)', **facts)
    if machine not in VMM_ARCHES:
        return record('os', FAIL, 'OpenBSD %s/%s has no vmm(4): vmd runs on %s only' % (release, machine, ', '.join(VMM_ARCHES)),
                      'use an OpenBSD/amd64 host', **facts)
    return record('os', PASS, 'OpenBSD %s/%s' % (release, machine), **facts)


def check_python(probe, params):
    version = '%d.%d.%d' % sys.version_info[:3]
    return record('python', PASS, '%s (Python %s)' % (sys.executable, version), executable=sys.executable, version=version)


def check_become(probe, params, euid=None):
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        user = _user_name(euid)
        return record('become', FAIL, 'the checks ran as %s (uid %d), not root: vmctl, pfctl and rcctl need root' % (user, euid),
                      'set become: true and become_method: community.general.doas for the host, with a doas.conf rule such as '
                      '"permit nopass %s as root" (check it with doas -C /etc/doas.conf)' % user, uid=euid)
    return record('become', PASS, 'running as root', uid=euid)


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# ---------------------------------------------------------------------------
# vmd

def check_vmd_enabled(probe, params):
    vm_conf = params['vm_conf']
    rc, _out, err = probe.run(['rcctl', 'get', 'vmd', 'status'])
    if rc is None:
        return record('vmd_enabled', FAIL, err, 'rcctl is part of OpenBSD base: is this an OpenBSD host?')
    if rc != 0:
        return record('vmd_enabled', FAIL, 'vmd is not enabled (rcctl get vmd status: %d)' % rc,
                      'rcctl enable vmd (the openbsd.vmm.vmm_host role enables and starts it)', enabled=False)
    rc, flags, _err = probe.run(['rcctl', 'get', 'vmd', 'flags'])
    flags = flags.strip()
    facts = dict(enabled=True, flags=flags)
    if vm_conf != DEFAULT_VM_CONF and vm_conf not in _flag_values(flags, '-f'):
        return record('vmd_enabled', FAIL, 'vmd is enabled but its flags (%r) do not read %s' % (flags, vm_conf),
                      'rcctl set vmd flags -f %s (the vmm_host role does it for vmm_host_vm_conf)' % shlex.quote(vm_conf), **facts)
    return record('vmd_enabled', PASS, 'enabled' + (' with flags %s' % flags if flags else ''), **facts)


def _flag_values(flags, option):
    words = flags.split()
    return [words[index + 1] for index, word in enumerate(words[:-1]) if word == option]


def check_vmd_running(probe, params):
    rc, out, err = probe.run(['rcctl', 'check', 'vmd'])
    if rc == 0:
        return record('vmd_running', PASS, out.strip() or 'vmd(ok)', running=True)
    return record('vmd_running', FAIL, 'vmd is not running (%s)' % (_said(out, err) or 'rcctl check vmd failed'),
                  'rcctl start vmd (after rcctl enable vmd; see /var/log/daemon for why it stopped)', running=False)


def check_vmctl(probe, params):
    try:
        vmctl = Vmctl(binary=params.get('vmctl') or 'vmctl', environ=probe.environ)
        statuses = vmctl.status()
    except VmdUnavailable as exc:
        return record('vmctl', FAIL, 'vmctl status cannot reach vmd: %s' % exc.message,
                      'start vmd: rcctl start vmd (vmctl talks to it over /var/run/vmd.sock)')
    except VmctlError as exc:
        return record('vmctl', FAIL, 'vmctl status failed: %s' % exc, 'run vmctl status as root and fix what it says')
    finally:
        probe.commands.append(['vmctl', 'status'])
    running = [status.name for status in statuses if status.running]
    return record('vmctl', PASS, '%d VMs known to vmd, %d running' % (len(statuses), len(running)),
                  vms=len(statuses), running=running)


def check_vm_conf(probe, params):
    vm_conf = params['vm_conf']
    rc, out, err = probe.run(['vmd', '-n', '-f', vm_conf])
    exists = os.path.exists(vm_conf)
    if rc == 0:
        return record('vm_conf', PASS, ('%s: configuration OK' if exists else '%s does not exist yet (vmd runs without one)') % vm_conf,
                      exists=exists)
    return record('vm_conf', FAIL, 'vmd -n -f %s: %s' % (vm_conf, _said(out, err) or 'exit %s' % rc),
                  'correct the line vmd -n names in %s (the managed part is written by openbsd.vmm.vmm_vm and the '
                  'vmm_host role); check with vmd -n -f %s' % (vm_conf, vm_conf), exists=exists)


# ---------------------------------------------------------------------------
# Device nodes

def check_taps(probe, params):
    dev_dir = params['dev_dir']
    have = devices.tap_nodes(dev_dir)
    nodes = devices.tap_indexes(dev_dir)
    needed = devices.taps_needed(params.get('vms'))
    facts = dict(usable=have, nodes=len(nodes), needed=needed, vms=len(devices.planned(params.get('vms'))))
    gap = ' (tap%d is missing, so the %d nodes after it are never used)' % (have, len(nodes) - have) if len(nodes) > have else ''
    if have >= needed:
        return record('taps', PASS, '%d usable taps in %s for %d interfaces of the planned VMs%s' % (have, dev_dir, needed, gap), **facts)
    return record('taps', FAIL, '%d usable taps in %s, the interfaces of the planned VMs need %d%s' % (have, dev_dir, needed, gap),
                  '%s (or the vmm_host role with vmm_host_tap_count: %d)' % (devices.makedev_command(have, needed - have, dev_dir), needed),
                  **facts)


def check_ptys(probe, params):
    dev_dir = params['dev_dir']
    have = devices.usable_ptys(dev_dir)
    vms = len(devices.planned(params.get('vms')))
    needed = vms + int(params.get('pty_spare', 0))
    facts = dict(usable=have, needed=needed, vms=vms)
    if have >= needed:
        return record('ptys', PASS, '%d usable pty pairs in %s for %d VM consoles and %d logins' % (have, dev_dir, vms, needed - vms), **facts)
    groups = -(-needed // devices.PTYS_PER_GROUP)
    return record('ptys', FAIL, '%d usable pty pairs in %s, %d VM consoles and %d logins need %d' % (have, dev_dir, vms, needed - vms, needed),
                  'cd %s && sh MAKEDEV %s (or the vmm_host role with vmm_host_pty_groups: %d)'
                  % (dev_dir, ' '.join(devices.makedev_pty_args(have, needed)), groups), **facts)


# ---------------------------------------------------------------------------
# Kernel settings

def check_sysctls(probe, params):
    results = []
    for wanted in params.get('sysctls') or []:
        name, value = wanted['name'], str(wanted['value'])
        variable = wanted.get('variable') or ''
        check = 'sysctl %s' % name
        rc, out, err = probe.run(['sysctl', '-n', name])
        current = out.strip()
        if rc != 0:
            results.append(record(check, FAIL, 'sysctl -n %s: %s' % (name, _said(out, err) or 'exit %s' % rc),
                                  'this kernel has no %s: check the OpenBSD release' % name, wanted=value))
        elif current == value:
            results.append(record(check, PASS, '%s=%s' % (name, current), current=current, wanted=value))
        else:
            results.append(record(check, FAIL, '%s is %s, the collection needs %s' % (name, current, value),
                                  'sysctl %s=%s and the same line in /etc/sysctl.conf%s'
                                  % (name, value, ' (the vmm_host role sets it: %s)' % variable if variable else ''),
                                  current=current, wanted=value))
    return results


# ---------------------------------------------------------------------------
# pf

def check_pf_enabled(probe, params):
    if not params.get('pf', True):
        return record('pf_enabled', SKIP, 'pf is not used (vmm_host_pf: false)')
    rc, out, err = probe.run(['pfctl', '-si'])
    first = out.splitlines()[0] if out.strip() else ''
    # sbin/pfctl/pfctl_parser.c print_status(): "Status: Enabled for ..." / "Status: Disabled ..."
    if rc == 0 and re.match(r'Status: Enabled\b', first):
        return record('pf_enabled', PASS, first.strip(), enabled=True)
    return record('pf_enabled', FAIL, 'pf is not enabled (%s)' % (first.strip() or _said(out, err)),
                  'pfctl -e, and keep pf=YES (the default) in /etc/rc.conf.local', enabled=False)


def anchor_rules(probe, anchor):
    rc, out, err = probe.run(['pfctl', '-a', anchor, '-sr'])
    return rc, [line.strip() for line in out.splitlines() if line.strip()], _said('', err)


def check_pf_anchor(probe, params):
    anchor = params.get('pf_anchor') or 'openbsd-vmm'
    if not params.get('pf', True):
        return record('pf_anchor', SKIP, 'pf is not used (vmm_host_pf: false)')
    rc, out, err = probe.run(['pfctl', '-sr'])
    main = [line.strip() for line in out.splitlines()]
    hooked = any(re.match(r'anchor "?%s"?(\s|$)' % re.escape(anchor), line) for line in main)
    rc, rules, said = anchor_rules(probe, anchor)
    facts = dict(anchor=anchor, referenced=hooked, rules=len(rules))
    fix = ('run the openbsd.vmm.vmm_host role (vmm_host_pf: true): it writes the anchor file and the anchor lines of pf.conf '
           'and loads them; by hand: pfctl -f /etc/pf.conf')
    if rc != 0 or not rules:
        return record('pf_anchor', FAIL, 'anchor "%s" has no rules loaded%s' % (anchor, ': ' + said if said else ''), fix, **facts)
    if not hooked:
        return record('pf_anchor', FAIL, 'anchor "%s" is loaded but the main rule set never calls it (no anchor "%s" line)' % (anchor, anchor),
                      fix, **facts)
    return record('pf_anchor', PASS, 'anchor "%s" loaded (%d rules)' % (anchor, len(rules)), **facts)


def rdr_rule(rules, address, port, interface='tap'):
    """The anchor rule sending VMs' port 80 on `interface` to address:port, or None.

    pfctl -sr prints `port = 80` where the anchor file says `port 80`; `tap` is the interface group
    of every tap (vmd's local interfaces)."""
    target = re.compile(r'\brdr-to\s+%s\s+port\s+(?:=\s*)?%s\b' % (re.escape(address), re.escape(str(port))))
    source = re.compile(r'\bport\s+(?:=\s*)?(?:80|www)\b')
    where = re.compile(r'\bon\s+%s\b' % re.escape(interface))
    for rule in rules:
        match = target.search(rule)
        if match and source.search(rule[:match.start()]) and where.search(rule[:match.start()]):
            return rule
    return None


# ---------------------------------------------------------------------------
# Install server

def check_daemon(probe, name, conf, variable, conf_flag, enabled_wanted, check_argv):
    """Configuration check, enabled with the right flags, running: one record for a daemon."""
    check = name
    if not enabled_wanted:
        return record(check, SKIP, '%s is not used (%s: false)' % (name, variable))
    rc, out, err = probe.run(check_argv)
    if rc != 0:
        return record(check, FAIL, '%s: %s' % (' '.join(check_argv), _said(out, err) or 'exit %s' % rc),
                      'fix %s (the openbsd.vmm.install_server role writes and checks it); check with %s' % (conf, ' '.join(check_argv)),
                      config_ok=False)
    rc, _out, _err = probe.run(['rcctl', 'get', name, 'status'])
    enabled = rc == 0
    rc, flags, _err = probe.run(['rcctl', 'get', name, 'flags'])
    flags = flags.strip()
    rc, out, err = probe.run(['rcctl', 'check', name])
    running = rc == 0
    facts = dict(config_ok=True, enabled=enabled, running=running, flags=flags)
    default_conf = '/etc/%s.conf' % name
    if not enabled:
        return record(check, FAIL, '%s is valid but %s is not enabled' % (conf, name),
                      'rcctl enable %s%s && rcctl start %s (the install_server role does it)'
                      % (name, '' if conf == default_conf else ' && rcctl set %s flags %s %s' % (name, conf_flag, conf), name), **facts)
    if conf != default_conf and conf not in _flag_values(flags, conf_flag):
        return record(check, FAIL, '%s runs with flags %r, which do not read %s' % (name, flags, conf),
                      'rcctl set %s flags %s %s && rcctl restart %s' % (name, conf_flag, conf, name), **facts)
    if not running:
        return record(check, FAIL, '%s is enabled but not running (%s)' % (name, _said(out, err)),
                      'rcctl start %s (see /var/log/daemon for why it stopped)' % name, **facts)
    return record(check, PASS, '%s valid, %s enabled and running' % (conf, name), **facts)


def check_httpd(probe, params):
    conf = params.get('httpd_conf') or '/etc/httpd.conf'
    return check_daemon(probe, 'httpd', conf, 'install_server_httpd', '-f', params.get('httpd', True), ['httpd', '-n', '-f', conf])


def check_dhcpd(probe, params):
    conf = params.get('dhcpd_conf') or '/etc/dhcpd.conf'
    return check_daemon(probe, 'dhcpd', conf, 'install_server_dhcpd', '-c', params.get('dhcpd', False), ['dhcpd', '-n', '-c', conf])


def sets_dir(params):
    return params.get('sets_dir') or os.path.join(params['docroot'], 'pub', 'OpenBSD', params['release'], params['arch'])


def short_release(release):
    """'7.8' -> '78', as in base78.tgz and openbsd-78-base.pub."""
    return release.replace('.', '')


def readable_by(path, user, groups, isdir=False):
    """Whether `user` (a pwd entry, with the gids in `groups`) may read `path` (search it, for a directory)."""
    info = os.stat(path)
    bit = 'X' if isdir else 'R'
    if info.st_uid == user.pw_uid:
        return bool(info.st_mode & getattr(stat, 'S_I%sUSR' % bit))
    if info.st_gid in groups:
        return bool(info.st_mode & getattr(stat, 'S_I%sGRP' % bit))
    return bool(info.st_mode & getattr(stat, 'S_I%sOTH' % bit))


def check_docroot(probe, params):
    """The files the installer fetches exist and httpd's `www` processes can read them (chrooted)."""
    if not params.get('httpd', True):
        return record('docroot', SKIP, 'httpd is not used (install_server_httpd: false)')
    www = params.get('www_user') or 'www'
    chroot, docroot, directory = params.get('chroot') or '/var/www', params['docroot'], sets_dir(params)
    try:
        user = pwd.getpwnam(www)
    except KeyError:
        return record('docroot', FAIL, 'there is no user %s, as which httpd serves files' % www,
                      'httpd runs as www (in every OpenBSD base install); set preflight_www_user if yours differs')
    groups = {user.pw_gid} | {group.gr_gid for group in grp.getgrall() if www in group.gr_mem}
    short = short_release(params['release'])
    required = ['index.txt', 'SHA256.sig', 'bsd.rd', 'base%s.tgz' % short]
    problems, checked = [], []
    missing = [name for name in required if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        problems.append('missing in %s: %s' % (directory, ', '.join(missing)))
    # The directories from the chroot down must be searchable by www (httpd resolves paths inside its chroot).
    dirs, here = [], directory
    while here.startswith(chroot.rstrip('/') + '/') or here == chroot:
        dirs.append(here)
        if here == chroot:
            break
        here = os.path.dirname(here)
    for path in reversed(dirs):
        if os.path.isdir(path) and not readable_by(path, user, groups, isdir=True):
            problems.append('%s cannot enter %s (mode %s)' % (www, path, _mode(path)))
    files = sorted(os.path.join(directory, name) for name in _listdir(directory))
    files += sorted(os.path.join(docroot, name) for name in _listdir(docroot) if name.endswith('install.conf'))
    unreadable = []
    for path in files:
        if os.path.isfile(path):
            checked.append(path)
            if not readable_by(path, user, groups):
                unreadable.append('%s (%s)' % (path, _owner_mode(path)))
    if unreadable:
        problems.append('%s cannot read %s' % (www, ', '.join(unreadable)))
    facts = dict(www_user=www, sets_dir=directory, files=len(checked), missing=missing, unreadable=len(unreadable))
    if problems:
        return record('docroot', FAIL, '; '.join(problems),
                      'publish with the openbsd.vmm.install_server role (sets and index.txt 0644, secret files root:%s 0640); '
                      'by hand: chmod 0644 for sets, chown root:%s and chmod 0640 for response files and site sets' % (www, www), **facts)
    return record('docroot', PASS, '%d files in %s readable by %s' % (len(checked), directory, www), **facts)


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _mode(path):
    return '%04o' % stat.S_IMODE(os.stat(path).st_mode)


def _owner_mode(path):
    info = os.stat(path)
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return '%s:%s %04o' % (owner, group, stat.S_IMODE(info.st_mode))


def signify_key_path(params):
    return params.get('signify_key') or '/etc/signify/openbsd-%s-base.pub' % short_release(params['release'])


def check_signify_key(probe, params):
    path = signify_key_path(params)
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        return record('signify_key', FAIL, '%s: %s: the sets of OpenBSD %s cannot be verified' % (path, exc.strerror, params['release']),
                      'install the release key %s (it ships with base%s.tgz of OpenBSD %s; take it from a trusted %s host or '
                      'install media) or point install_server_signify_key at it'
                      % (os.path.basename(path), short_release(params['release']), params['release'], params['release']), path=path)
    # usr.bin/signify/signify.c: "untrusted comment: ..." then the base64 of struct pubkey
    # (pkalg "Ed", an 8-byte key number, a 32-byte Ed25519 key).
    if len(lines) < 2 or not lines[0].startswith('untrusted comment:') or not _is_pubkey(lines[1].strip()):
        return record('signify_key', FAIL, '%s is not a signify public key' % path,
                      'replace %s with the release key of OpenBSD %s' % (path, params['release']), path=path)
    return record('signify_key', PASS, path, path=path)


def _is_pubkey(text):
    try:
        data = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return False
    return len(data) == 42 and data[:2] == b'Ed'


def check_free_space(probe, params):
    directory = params.get('image_dir') or '/var/vmm'
    try:
        wanted = scan_scaled(params.get('min_free') or '4G')
    except SizeError as exc:
        return record('free_space', FAIL, 'min_free: %s' % exc, "give preflight_min_free (the module's min_free) in scan_scaled syntax such as 20G")
    here = directory
    while not os.path.exists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    info = os.statvfs(here)
    free = info.f_bavail * info.f_frsize
    facts = dict(path=directory, measured_at=here, free=free, wanted=wanted)
    where = directory if here == directory else '%s (measured at %s, which exists)' % (directory, here)
    if free >= wanted:
        return record('free_space', PASS, '%s free for images in %s' % (fmt_scaled(free), where), **facts)
    return record('free_space', FAIL, 'only %s free for images in %s, %s wanted' % (fmt_scaled(free), where, fmt_scaled(wanted)),
                  'free space on that file system, or put images elsewhere (vmm_disk_dir, build_image_path)', **facts)


def _url(address, port, path):
    host = '[%s]' % address if ':' in address else address
    return 'http://%s%s/%s' % (host, '' if int(port) == 80 else ':%d' % int(port), path.lstrip('/'))


def check_install_server(probe, params):
    """httpd answers on its listen addresses, and the pf anchor sends the VMs' port 80 there."""
    if not params.get('httpd', True):
        return record('install_server', SKIP, 'httpd is not used (install_server_httpd: false)')
    listen, port = params.get('listen') or [], params.get('port') or 80
    if not listen:
        return record('install_server', FAIL, 'no listen address for httpd', 'set install_server_listen (for example ["127.0.0.1"])')
    path = 'pub/OpenBSD/%s/%s/index.txt' % (params['release'], params['arch'])
    answers, problems = {}, []
    for address in listen:
        url = _url(address, port, path)
        # OpenBSD's ftp(1) fetches HTTP URLs; -o - writes the body to stdout.
        rc, out, err = probe.run([params.get('ftp') or 'ftp', '-o', '-', url])
        answers[address] = rc == 0 and 'bsd.rd' in out
        if not answers[address]:
            problems.append('ftp -o - %s: %s' % (url, _said('' if rc == 0 else out, err) or ('no bsd.rd in index.txt' if rc == 0 else 'exit %s' % rc)))
    facts = dict(listen=listen, port=port, answers=answers)
    fix = ('start httpd with the install_server role (install_server_listen, install_server_port) and publish the sets; '
           'check with ftp -o - %s' % _url(listen[0], port, path))
    if problems:
        return record('install_server', FAIL, '; '.join(problems), fix, **facts)
    if params.get('pf', True):
        anchor = params.get('pf_anchor') or 'openbsd-vmm'
        rc, rules, _said_anchor = anchor_rules(probe, anchor)
        # vmd's local interfaces (group tap), and each switch whose host address is a next-server
        wanted = [('tap', None)] + [(switch['address_interface'], switch['address']) for switch in params.get('switches') or []
                                    if isinstance(switch, dict) and switch.get('address') and switch.get('address_interface')]
        found, missing = [], []
        for interface, _next_server in wanted:
            rule = rdr_rule(rules, listen[0], port, interface)
            (found if rule else missing).append(rule or interface)
        facts['rdr_rules'] = found
        if missing:
            return record('install_server', FAIL,
                          'httpd answers on %s port %s, but anchor "%s" has no rule sending the VMs\' port 80 on %s there '
                          '(pass in quick on IF ... port 80 rdr-to %s port %s)' % (listen[0], port, anchor, ', '.join(missing), listen[0], port),
                          'run the openbsd.vmm.vmm_host role with vmm_host_install_redirect: {address: %s, port: %s} '
                          '(the address and port of install_server_listen and install_server_port)' % (listen[0], port), **facts)
    return record('install_server', PASS, 'index.txt served on %s port %s%s' % (
        ', '.join(listen), port, ', VMs\' port 80 redirected there' if params.get('pf', True) else ''), **facts)


CHECKS = (check_os, check_python, check_become, check_vmd_enabled, check_vmd_running, check_vmctl, check_vm_conf,
          check_taps, check_ptys, check_sysctls, check_pf_enabled, check_pf_anchor, check_httpd, check_dhcpd,
          check_docroot, check_signify_key, check_free_space, check_install_server)


def run_checks(params, probe=None):
    """Every check in order; a check that crashes is reported as failed, the others still run."""
    probe = probe or Probe()
    results = []
    for check in CHECKS:
        name = check.__name__[len('check_'):]
        try:
            result = check(probe, params)
        except Exception as exc:  # pylint: disable=broad-except
            result = record(name, FAIL, 'the check itself failed: %s: %s' % (type(exc).__name__, exc),
                            'report this as a bug of openbsd.vmm, with the detail')
        results.extend(result if isinstance(result, list) else [result])
    return results
