#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vmm_autoinstall
short_description: Unattended OpenBSD installs onto vmd(8) guest disks
version_added: 0.1.0
description:
  - Installs OpenBSD onto a VM disk with autoinstall(8), without typing at the console and without fixed waits.
  - The response file is rendered on the controller (Jinja2), passwords are hashed there with bcrypt through the
    passlib API of libpass, and every line is checked against the installer's questions and matching rules
    (case-insensitive, word-bounded, first match consumed) before anything is published.
  - O(state=published) writes C(<mac>-install.conf) (mode 0640, see O(file_group)), the disklabel template and the site set into
    O(docroot); O(state=installed) also boots a temporary VM with the ramdisk from the network, follows its console,
    waits for vmd to report that the VM terminated, and decides from the console transcript whether the install
    succeeded; O(state=absent) removes what was published.
  - The temporary VM is a C(disable)d vm.conf definition (C(boot) the ramdisk, C(boot device net), a C(local
    interface) with O(mac) first, the disk, the memory) loaded with C(vmctl load) and started by name, because vmd
    ignores C(-B) for VMs it already knows and vmctl has no option for a MAC address. Its name is
    C(<name>-ai-<8 hex digits of the definition>), so a changed definition never reuses a stale one. vmd keeps a loaded
    VM registered as stopped until the next C(vmctl reload); the module reuses it on the next run with the same
    definition.
  - A disk that already holds a completed install from the same inputs is not reinstalled; the module keeps a
    manifest C(<disk>.autoinstall.json) (mode 0600) keyed by the disk's identity and the SHA-256 of the inputs.
author:
  - openbsd.vmm contributors (@openbsd-vmm)
options:
  state:
    description:
      - V(published) writes the response file, disklabel template and site set into O(docroot).
      - V(installed) publishes, runs the install, and removes the published files again as soon as it ends.
      - V(absent) removes the published files.
    type: str
    default: installed
    choices: [published, installed, absent]
  name:
    description: Name of the VM being installed (the temporary VM's name is derived from it).
    type: str
    required: true
  mac:
    description:
      - MAC address of the VM's first interface; the installer fetches C(<mac>-install.conf).
    type: str
    required: true
  hostname:
    description: Short host name of the installed system. Defaults to O(name).
    type: str
  root_password:
    description:
      - Root password. Plain text is hashed on the controller (bcrypt C($2b$)); an already encrypted bcrypt string
        is used as it is; thirteen asterisks disable password logins.
      - V(random) generates a password that is never shown; it is delivered as a comment line starting with
        C(# root password) in C(/root/.ssh/authorized_keys) inside the site set.
      - Required unless O(state=absent).
    type: str
  bcrypt_rounds:
    description: bcrypt cost (log2 rounds, two digits in the hash).
    type: int
    default: 10
  root_ssh_key:
    description: OpenSSH public key line for root.
    type: str
  allow_root_ssh:
    description: Answer to C(Allow root ssh login?). Defaults to V(prohibit-password) when O(root_ssh_key) is given.
    type: str
    choices: ['yes', 'no', prohibit-password]
  sshd:
    description: Start sshd(8) by default.
    type: bool
    default: true
  users:
    description:
      - Users to create. The installer sets up the first one; the others are created by C(install.site) in the
        site set (useradd with the bcrypt hash, group wheel, shell /bin/ksh).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Login name (C([a-z][-a-z0-9_]*), at most 31 characters).
        type: str
        required: true
      fullname:
        description: Full name. Defaults to the login name.
        type: str
      password:
        description: Password, plain (hashed on the controller) or bcrypt-encrypted.
        type: str
        required: true
      ssh_keys:
        description: OpenSSH public key lines for the user.
        type: list
        elements: str
        default: []
  timezone:
    description: Time zone (C(UTC), C(Europe/Berlin)); a region alone would make the installer ask a sub-timezone.
    type: str
    default: UTC
  sets:
    description:
      - Set selection tokens in the installer's syntax (C(-game*), C(-x*), C(+comp*), C(-all)). A selection without
        C(bsd) or C(baseXY.tgz) is refused. The site set is added automatically.
    type: list
    elements: str
    default: []
  network:
    description: Network of the installed system; the defaults configure the first interface with DHCP/SLAAC.
    type: dict
    default: {}
    suboptions:
      interface:
        description: Interface to configure.
        type: str
        default: vio0
      ipv4:
        description: V(autoconf) (DHCP), V(none), or an address with prefix length (C(192.0.2.10/24)).
        type: str
        default: autoconf
      ipv4_gateway:
        description: Default IPv4 route for a static address (V(none) for none).
        type: str
      ipv6:
        description: V(autoconf), V(none), or an address with prefix length (C(2001:db8::10/64)).
        type: str
        default: autoconf
      ipv6_gateway:
        description: IPv6 default router for a static address.
        type: str
      domain:
        description: DNS domain name.
        type: str
      nameservers:
        description: DNS name servers.
        type: list
        elements: str
        default: []
  disklabel:
    description:
      - V(auto) for the installer's automatic layout, or a disklabel(8) auto-allocation template, either as a list of
        dicts with C(mount) (a mount point or C(swap)), C(size) (C(1G), C(150M-1G), C(2G-*)) and optional C(percent),
        or as template text. A template is published as C(<mac>-disklabel) and given to the installer by URL.
    type: raw
    default: auto
  site:
    description: Files for the site set C(siteXY-<hostname>.tgz) (or C(siteXY.tgz)), extracted last into the new root.
    type: dict
    suboptions:
      files:
        description: Files to put into the site set.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Path inside the new root.
            type: str
            required: true
          content:
            description: File content.
            type: str
            required: true
          mode:
            description: Octal file mode.
            type: str
            default: '0644'
      install_site:
        description: Script run chrooted at the end of the install (C(/install.site)).
        type: str
      per_host:
        description: Name the set C(siteXY-<hostname>.tgz) (preselected by the installer) instead of C(siteXY.tgz).
        type: bool
        default: true
  answers:
    description:
      - Extra C(question = answer) pairs, written first. A key that matches no installer question is an error that
        lists the nearest questions.
    type: dict
    default: {}
  install_server:
    description:
      - Host name, address or C(http://) URL the guest uses for the sets and the disklabel template.
      - Defaults to the host side of the temporary VM's local interface, C(http://100.64.<vm-id>.2), filled in when
        the VM is registered; so O(state=published) requires it.
    type: str
  docroot:
    description: Document root of the install server's HTTP daemon.
    type: path
    default: /var/www/htdocs
  file_group:
    description:
      - Group given to the published files. The response file and the site set are mode 0640 because they hold
        password hashes, so the HTTP daemon must read them through this group (V(www) for httpd(8)).
      - By default new files keep the group the system gives them.
    type: str
  disk:
    description: Disk image to install onto (required for O(state=installed)).
    type: path
  memory:
    description: Memory of the temporary VM (scan_scaled syntax, e.g. C(1G)); vmd's default when omitted.
    type: str
  bsd_rd:
    description: Installer ramdisk kernel. Defaults to C(<docroot>/pub/OpenBSD/<release>/<arch>/bsd.rd).
    type: path
  release:
    description: OpenBSD release of the sets (C(7.8)).
    type: str
    default: '7.8'
  arch:
    description: Architecture of the sets.
    type: str
    default: amd64
  install_timeout:
    description: Seconds the install may take before the VM is force-stopped and the task fails.
    type: int
    default: 1800
  console_log:
    description: File that receives the console transcript of the install (mode 0600, password hashes redacted).
    type: path
  payload:
    description: Internal, set by the action plugin (rendered files and hashes). Do not set it.
    type: str
notes:
  - The response file is removed from O(docroot) as soon as the install ends (it holds password hashes); the site set
    and disklabel template are removed with it.
  - Only the site set is accepted unverified (the response file answers the site set's own checksum and
    unverified-set questions, by file name). A disk too small for the installer's prefetch area (under about 2G with the auto layout)
    makes the installer ask C(Cannot determine prefetch area. Continue without verification?); answer it through
    O(answers) if unverified sets are acceptable.
  - Runs on the vmd host as root (C(vmctl load) is refused to other users). The controller needs Jinja2 and libpass (passlib API) with bcrypt.
attributes:
  check_mode:
    description: Reports what would be published or whether an install would run, without doing it.
    support: full
  diff_mode:
    description: Shows the response file change, with password hashes redacted.
    support: full
"""

EXAMPLES = r"""
- name: Install OpenBSD 7.8 onto web1's disk
  openbsd.vmm.vmm_autoinstall:
    name: web1
    mac: "fe:e1:bb:d1:00:01"
    disk: /var/vmm/web1.qcow2
    memory: 1G
    root_password: random
    root_ssh_key: "ssh-ed25519 AAAAC3Nz... admin@example"
    users:
      - name: alice
        password: "{{ vault_alice_password }}"
        ssh_keys: ["ssh-ed25519 AAAAC3Nz... alice@example"]
    sets: ["-game*", "-x*"]
    console_log: /var/log/vmm/web1-install.log

- name: Only publish a response file with a static network and a custom disklabel
  openbsd.vmm.vmm_autoinstall:
    state: published
    name: db1
    mac: "fe:e1:bb:d1:00:02"
    root_password: "{{ vault_root_password }}"
    install_server: 192.0.2.1
    network:
      ipv4: 192.0.2.20/24
      ipv4_gateway: 192.0.2.1
      ipv6: 2001:db8::20/64
      ipv6_gateway: 2001:db8::1
      domain: example.com
      nameservers: [192.0.2.53]
    disklabel:
      - {mount: /, size: 2G-4G, percent: 30}
      - {mount: swap, size: 512M}
      - {mount: /var, size: 1G-*, percent: 70}
"""

RETURN = r"""
response_file:
  description: Path of the response file in the docroot.
  returned: always
  type: str
  sample: /var/www/htdocs/fe:e1:bb:d1:00:01-install.conf
published:
  description: Files written or found up to date in the docroot (response file, disklabel template, site set).
  returned: when state is published
  type: list
  elements: str
removed:
  description: Files removed from the docroot.
  returned: always
  type: list
  elements: str
install:
  description: The install run.
  returned: when state is installed
  type: dict
  contains:
    succeeded:
      description: Whether the installer reported success.
      type: bool
    skipped:
      description: True when the manifest shows the disk already holds this install.
      type: bool
    duration:
      description: Seconds from starting the VM to its termination (or to the failure).
      type: float
    console_tail:
      description: Last lines of the console (password hashes redacted).
      type: list
      elements: str
    vm_name:
      description: Name of the temporary VM.
      type: str
    vm_id:
      description: vmd's id of the temporary VM.
      type: int
    console_log:
      description: Path of the console transcript, if kept.
      type: str
manifest:
  description: Path of the manifest beside the disk.
  returned: when state is installed
  type: str
commands:
  description: vmctl commands run.
  returned: always
  type: list
  elements: list
existing:
  description: Internal (inspect phase of the action plugin).
  returned: never
  type: dict
rendered:
  description: What the controller rendered (no secrets).
  returned: when state is not absent
  type: dict
  contains:
    hostname:
      description: Host name in the response file.
      type: str
    site_set:
      description: File name of the site set, if any.
      type: str
    inputs_sha256:
      description: Digest of the inputs kept in the manifest.
      type: str
"""

import base64
import fcntl
import grp
import gzip
import hashlib
import io
import json
import os
import pty
import re
import select
import subprocess
import tarfile
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_spec import module_argument_spec
from ansible_collections.openbsd.vmm.plugins.module_utils.installer import MANIFEST_VERSION, manifest_matches, manifest_path
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import Disk, Interface, VmDefinition
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import (
    Vmctl, VmctlError, VmNotFound, VmNotRunning, VmStopInProgress, vm_name_problem)
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import SizeError, scan_scaled

VM_ID_TOKEN = '@VM_ID@'
# Response file and site set hold password hashes: readable by the owner and the HTTP daemon's group.
SECRET_MODE = 0o640
SUCCESS_MARKER = 'CONGRATULATIONS!'
# Texts after which the installer will not finish by itself (the VM stays at the prompt).
FAILURE_MARKERS = (
    'failed; check /tmp/ai/ai.log',
    'Question has no answer in response file',
    'No response file found; non-interactive mode aborted.',
)
ROOT_PASSWORD_COMMENT = re.compile(r'^# root password: (\S+)$', re.M)
BCRYPT_HASH = re.compile(r'\$2[a-z]\$\d\d\$[./A-Za-z0-9]{53}')
USERADD_HASH = re.compile(r"-p '(\$2[a-z]\$\d\d\$[./A-Za-z0-9]{53})' ([a-z][-a-z0-9_]*)$", re.M)
TAIL_LINES = 25
# Upper bound for the console process to deliver its last lines once the VM has ended (cu may not
# notice the closed tty by itself); the verdict lines come long before the reboot, and the module
# should return within a second of the VM's end.
CONSOLE_DRAIN_SECONDS = 0.5
# Deterministic archives: identical inputs give identical bytes (idempotent publishing).
ARCHIVE_MTIME = 0


class InstallFailure(Exception):
    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def redact(text, secrets=()):
    text = BCRYPT_HASH.sub('[bcrypt hash redacted]', text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, '[redacted]')
    return text


# -- files in the docroot ---------------------------------------------------

def read_file(path, binary=False):
    try:
        with open(path, 'rb' if binary else 'r') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomic(path, data, mode, gid=None):
    """Write ``data`` beside ``path`` and rename it into place (readers never see half a file)."""
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data if isinstance(data, bytes) else data.encode('utf-8'))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def file_state(path):
    """(content bytes, mode, gid) of ``path``, or (None, None, None) if it does not exist."""
    data = read_file(path, binary=True)
    if data is None:
        return None, None, None
    stat = os.stat(path)
    return data, stat.st_mode & 0o7777, stat.st_gid


def remove_file(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def pack_site_set(files):
    """The site set as deterministic .tgz bytes: sorted members, root-owned, fixed mtimes.

    Parent directories get no entries of their own, so extracting (tar -p) never changes the
    modes of directories the base sets made (/root is 0700); only ``.ssh`` directories are
    added, with mode 0700 as sshd(8) expects.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.USTAR_FORMAT) as tar:
        directories = set()
        for item in sorted(files, key=lambda entry: entry['path']):
            parts = item['path'].split('/')[:-1]
            for depth in range(1, len(parts) + 1):
                directory = '/'.join(parts[:depth])
                if parts[depth - 1] == '.ssh' and directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo('./' + directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, ARCHIVE_MTIME
                    info.uname = info.gname = 'root'
                    tar.addfile(info)
            data = base64.b64decode(item['content'])
            info = tarfile.TarInfo('./' + item['path'])
            info.size, info.mode, info.mtime = len(data), int(item['mode'], 8), ARCHIVE_MTIME
            info.uname = info.gname = 'root'
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode='wb', mtime=ARCHIVE_MTIME, filename='') as archive:
        archive.write(raw.getvalue())
    return packed.getvalue()


def read_site_set(path):
    """Secrets-bearing parts of a published site set: the random root password and useradd hashes."""
    data = read_file(path, binary=True)
    found = dict(site_root_password=None, site_user_hashes={})
    if data is None:
        return found
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
            for member in tar.getmembers():
                name = member.name.lstrip('./')
                if not member.isfile() or name not in ('root/.ssh/authorized_keys', 'install.site'):
                    continue
                text = tar.extractfile(member).read().decode('utf-8', 'replace')
                if name == 'install.site':
                    found['site_user_hashes'] = dict((login, hashed) for hashed, login in USERADD_HASH.findall(text))
                else:
                    match = ROOT_PASSWORD_COMMENT.search(text)
                    found['site_root_password'] = match.group(1) if match else None
    except (tarfile.TarError, OSError, EOFError):
        pass
    return found


def index_line(path):
    """An ``ls -nT`` line like the ones in a mirror's index.txt."""
    stat = os.stat(path)
    stamp = time.strftime('%b %e %H:%M:%S %Y', time.gmtime(stat.st_mtime))
    return '-rw-r--r--  1 0  0  %10d %s %s\n' % (stat.st_size, stamp, os.path.basename(path))


def _index_name(line):
    words = line.split()
    return words[-1] if words else None


def update_index(setdir, name, present):
    """Add (or drop) ``name`` in setdir/index.txt, keeping the other lines; return True if changed."""
    index = os.path.join(setdir, 'index.txt')
    current = read_file(index) or ''
    lines = [line if line.endswith('\n') else line + '\n' for line in current.splitlines()]
    listed = any(_index_name(line) == name for line in lines)
    if present == listed:
        return False
    if present:
        lines.append(index_line(os.path.join(setdir, name)))
    else:
        lines = [line for line in lines if _index_name(line) != name]
    write_atomic(index, ''.join(lines), 0o644)
    return True


def group_id(name):
    """The gid of group ``name`` (a name or a number), or None when no group is asked for."""
    if name in (None, ''):
        return None
    if str(name).isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise InstallFailure('file_group %r: no such group on the install server' % name)


class Publication:
    """The files one task publishes in the docroot."""

    def __init__(self, params, payload):
        self.docroot = params['docroot']
        self.gid = group_id(params.get('file_group'))
        self.mac = params['mac'].lower()
        self.setdir = os.path.join(self.docroot, 'pub', 'OpenBSD', params['release'], params['arch'])
        self.response_path = os.path.join(self.docroot, '%s-install.conf' % self.mac)
        self.disklabel_path = os.path.join(self.docroot, '%s-disklabel' % self.mac)
        site_set = payload.get('site_set')
        self.site_path = os.path.join(self.setdir, site_set) if site_set else None

    def existing(self):
        found = dict(response_file=read_file(self.response_path))
        if self.site_path:
            found.update(read_site_set(self.site_path))
        return found

    def publish(self, payload, vm_id=None, check_mode=False):
        """Write what the payload holds; return (changed paths, all paths, diff)."""
        response = payload['response_file']
        if vm_id is not None:
            response = response.replace(VM_ID_TOKEN, str(vm_id))
        wanted = [(self.response_path, response.encode('utf-8'), SECRET_MODE)]
        if payload.get('disklabel'):
            wanted.append((self.disklabel_path, payload['disklabel'].encode('utf-8'), 0o644))
        if payload.get('site_set'):
            if not os.path.isdir(self.setdir):
                raise InstallFailure('set directory %s does not exist: put the release (bsd.rd, sets, SHA256.sig, '
                                     'index.txt) there first' % self.setdir)
            # It may hold password hashes and the random root password: as private as the response file.
            wanted.append((self.site_path, pack_site_set(payload['site_files']), SECRET_MODE))
        if not os.path.isdir(self.docroot):
            raise InstallFailure('docroot %s does not exist' % self.docroot)
        changed, diff = [], []
        before = read_file(self.response_path)
        for path, data, mode in wanted:
            current, current_mode, current_gid = file_state(path)
            if current == data and current_mode == mode and self.gid in (None, current_gid):
                continue
            changed.append(path)
            if not check_mode:
                write_atomic(path, data, mode, self.gid)
        if self.site_path and not check_mode and update_index(self.setdir, os.path.basename(self.site_path), True):
            changed.append(os.path.join(self.setdir, 'index.txt'))
        if self.response_path in changed:
            diff.append(dict(before_header=self.response_path, after_header=self.response_path,
                             before=redact(before or ''), after=redact(response)))
        return changed, [path for path, data, mode in wanted], diff

    def remove(self, check_mode=False):
        removed = []
        for path in (self.response_path, self.disklabel_path, self.site_path):
            if path and os.path.exists(path):
                removed.append(path)
                if not check_mode:
                    remove_file(path)
        if self.site_path and os.path.isdir(self.setdir) and not check_mode:
            update_index(self.setdir, os.path.basename(self.site_path), False)
        return removed


# -- the manifest beside the disk -------------------------------------------

def disk_identity(disk):
    """What identifies the disk file for the manifest (None if it does not exist)."""
    try:
        stat = os.stat(disk)
    except FileNotFoundError:
        return None
    return dict(path=os.path.realpath(disk), device=stat.st_dev, inode=stat.st_ino)


def read_manifest(disk):
    text = read_file(manifest_path(disk))
    if text is None:
        return None
    try:
        manifest = json.loads(text)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


# -- the install run --------------------------------------------------------

def disk_in_use(disk):
    """vmd opens disks with an exclusive non-blocking lock: if we cannot take it, a VM holds the disk."""
    with open(disk, 'rb') as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def temp_vm_definition(params, bsd_rd):
    """The temporary install VM: disabled, ramdisk kernel, boot device net, local first interface with the MAC."""
    memory = None
    if params.get('memory'):
        try:
            memory = scan_scaled(params['memory'])
        except SizeError as exc:
            raise InstallFailure('memory: %s' % exc)
    disk = os.path.realpath(params['disk'])
    definition = VmDefinition(name='install', enabled=False, memory=memory, boot=os.path.realpath(bsd_rd),
                              boot_device='net', disks=[Disk(disk)],
                              interfaces=[Interface(local=True, lladdr=params['mac'].lower())])
    digest = hashlib.sha256(definition.render().encode('utf-8')).hexdigest()[:8]
    definition.name = '%s-ai-%s' % (params['name'][:63 - 12], digest)
    return definition


class ConsoleFollower:
    """``vmctl console NAME`` under a pseudo-terminal (cu(1) wants a tty), streamed into a log and a buffer."""

    def __init__(self, vmctl, name, log_handle, secrets):
        self.log_handle = log_handle
        self.secrets = secrets
        self.text = ''
        self.pending = ''
        master, slave = pty.openpty()
        self.master = master
        argv = [vmctl.binary, 'console', name]
        vmctl.calls.append(['vmctl', 'console', name])
        # run_command() waits for the process to end; the console must be streamed while the VM runs.
        self.process = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv, stdin=slave, stdout=slave, stderr=slave, env=vmctl.environ, close_fds=True, start_new_session=True)
        os.close(slave)
        self.open = True

    def read_available(self):
        """Read what the console has now; False at end of file."""
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the other side of the pty is closed
            data = b''
        if not data:
            self.close()
            return False
        chunk = data.decode('utf-8', 'replace').replace('\r\n', '\n').replace('\r', '\n')
        self.text += chunk
        if self.log_handle:
            self.pending += chunk
            complete, _sep, self.pending = self.pending.rpartition('\n')
            if _sep:
                self.log_handle.write(redact(complete + '\n', self.secrets))
                self.log_handle.flush()
        return True

    def drain(self, seconds):
        """After the VM ended: collect the console's last output until it closes, at most ``seconds``."""
        deadline = time.monotonic() + seconds
        while self.open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _w, _x = select.select([self.master], [], [], remaining)
            if ready:
                self.read_available()

    def close(self):
        if self.open:
            self.open = False
            os.close(self.master)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.log_handle and self.pending:
            self.log_handle.write(redact(self.pending, self.secrets))
            self.pending = ''
            self.log_handle.flush()


def console_tail(text, secrets):
    lines = [line for line in redact(text, secrets).splitlines() if line.strip()]
    return lines[-TAIL_LINES:]


def failure_in(text):
    for marker in FAILURE_MARKERS:
        if marker in text:
            return marker
    return None


def run_install(module, vmctl, definition, timeout, console_log, secrets):
    """Start the VM, follow its console, wait for it to end; return (succeeded, reason, duration, transcript)."""
    log_handle = None
    if console_log:
        fd = os.open(console_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        log_handle = os.fdopen(fd, 'w')
    name = definition.name
    started = time.monotonic()
    console = waiter = None
    try:
        vmctl.start(name)
        console = ConsoleFollower(vmctl, name, log_handle, secrets)
        # vmctl wait blocks until vmd reports the VM's termination (it must be issued while the VM runs).
        vmctl.calls.append(['vmctl', 'wait', name])
        waiter = subprocess.Popen(  # pylint: disable=ansible-bad-function
            [vmctl.binary, 'wait', name], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=vmctl.environ, close_fds=True)
        deadline = started + timeout
        ended, reason = False, None
        wait_fd = waiter.stderr.fileno()
        wait_output = b''
        while True:
            watched = [wait_fd] + ([console.master] if console.open else [])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = 'the install did not finish within install_timeout (%d s)' % timeout
                break
            ready, _w, _x = select.select(watched, [], [], remaining)
            if console.open and console.master in ready:
                console.read_available()
                marker = failure_in(console.text)
                if marker:
                    reason = 'the installer failed: %s' % marker
                    break
            if wait_fd in ready:
                data = os.read(wait_fd, 4096)
                wait_output += data
                if not data:
                    waiter.wait()
                    ended = True
                    break
        duration = time.monotonic() - started
        if ended and waiter.returncode != 0:
            message = wait_output.decode('utf-8', 'replace')
            # "failed: Invalid argument": the VM was no longer running when wait arrived, i.e. it already ended.
            if 'Invalid argument' not in message and 'vm not found' not in message:
                reason = 'vmctl wait %s failed: %s' % (name, message.strip())
        if not ended:
            force_stop(vmctl, name)
        console.drain(CONSOLE_DRAIN_SECONDS)
        transcript = console.text
        if reason is None and failure_in(transcript):
            reason = 'the installer failed: %s' % failure_in(transcript)
        if reason is None and SUCCESS_MARKER not in transcript:
            reason = 'the VM ended without the installer reporting success (%s not on the console)' % SUCCESS_MARKER
        return reason is None, reason, duration, transcript
    finally:
        if waiter is not None and waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        if waiter is not None:
            waiter.stdout.close()
            waiter.stderr.close()
        if console is not None:
            console.close()
        if log_handle:
            log_handle.close()


def force_stop(vmctl, name):
    try:
        vmctl.stop(name, force=True, wait=True)
    except (VmNotRunning, VmNotFound):
        pass
    except VmStopInProgress:
        vmctl.stop(name, force=True, wait=True)


def prepare_vm(vmctl, definition):
    """Register the temporary VM with vmd (vmctl load of a temporary file); return its status record."""
    record = vmctl.find(definition.name)
    if record is not None and record.running:
        # Left running by an interrupted run: it is ours (the name carries the definition's digest).
        force_stop(vmctl, definition.name)
        record = vmctl.find(definition.name)
    if record is None:
        fd, path = tempfile.mkstemp(prefix='vmm-autoinstall-', suffix='.conf')
        try:
            with os.fdopen(fd, 'w') as handle:
                handle.write(definition.render())
            vmctl.load(path)
        finally:
            os.unlink(path)
        record = vmctl.find(definition.name)
    if record is None:
        raise InstallFailure('vmd did not register the temporary VM %s after vmctl load' % definition.name)
    return record


def install(module, params, payload, publication):
    disk = params['disk']
    result = dict(changed=False, response_file=publication.response_path, removed=[], manifest=manifest_path(disk))
    if not os.path.isfile(disk):
        raise InstallFailure('disk %s does not exist: create it first (openbsd.vmm.vmm_disk or vmctl create)' % disk)
    if manifest_matches(read_manifest(disk), disk_identity(disk), payload['inputs_sha256']):
        result['install'] = dict(succeeded=True, skipped=True)
        return result
    result['changed'] = True
    if module.check_mode:
        result['install'] = dict(succeeded=None, skipped=False)
        return result
    bsd_rd = params.get('bsd_rd') or os.path.join(publication.setdir, 'bsd.rd')
    if not os.path.isfile(bsd_rd):
        raise InstallFailure('installer ramdisk %s does not exist' % bsd_rd)
    if disk_in_use(disk):
        raise InstallFailure('disk %s is in use by a running VM (vmd holds its lock); stop that VM first' % disk)
    problem = vm_name_problem(params['name'])
    if problem:
        raise InstallFailure('name %r: %s' % (params['name'], problem))
    vmctl = Vmctl(module=module)
    result['commands'] = vmctl.calls
    definition = temp_vm_definition(params, bsd_rd)
    secrets = [secret for secret in (random_password(payload),) if secret]
    try:
        record = prepare_vm(vmctl, definition)
        try:
            publication.publish(payload, vm_id=record.id)
            succeeded, reason, duration, transcript = run_install(
                module, vmctl, definition, params['install_timeout'], params.get('console_log'), secrets)
        finally:
            # The response file holds password hashes: gone as soon as the install has ended.
            result['removed'] = publication.remove()
    except VmctlError as exc:
        raise InstallFailure(str(exc), commands=vmctl.calls)
    install_record = dict(succeeded=succeeded, skipped=False, duration=round(duration, 3),
                          console_tail=console_tail(transcript, secrets), vm_name=definition.name, vm_id=record.id,
                          console_log=params.get('console_log'))
    result['install'] = install_record
    if not succeeded:
        raise InstallFailure('%s; VM %s stopped. Console tail:\n%s' % (reason, definition.name,
                                                                       '\n'.join(install_record['console_tail'])),
                             install=install_record, commands=vmctl.calls, removed=result['removed'])
    manifest = dict(version=MANIFEST_VERSION, disk=disk_identity(disk), inputs_sha256=payload['inputs_sha256'],
                    hostname=params.get('hostname') or params['name'], mac=params['mac'].lower(),
                    installed_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), duration=install_record['duration'],
                    password_hashes=payload.get('password_hashes') or {})
    write_atomic(manifest_path(disk), json.dumps(manifest, indent=2, sort_keys=True) + '\n', 0o600)
    return result


def random_password(payload):
    for item in payload.get('site_files') or []:
        if item['path'] == 'root/.ssh/authorized_keys':
            match = ROOT_PASSWORD_COMMENT.search(base64.b64decode(item['content']).decode('utf-8', 'replace'))
            if match:
                return match.group(1)
    return None


def main():
    module = AnsibleModule(
        argument_spec=module_argument_spec(),
        required_if=[('state', 'installed', ('disk',))],
        supports_check_mode=True,
    )
    params = module.params
    if not params.get('payload'):
        module.fail_json(msg='vmm_autoinstall runs through its action plugin (openbsd.vmm.vmm_autoinstall); '
                             'payload is set by it')
    try:
        payload = json.loads(params['payload'])
    except ValueError:
        module.fail_json(msg='payload is not JSON')
    phase = payload.get('phase')
    response_path = os.path.join(params['docroot'], '%s-install.conf' % params['mac'].lower())
    try:
        publication = Publication(params, payload)
        if phase == 'inspect':
            existing = publication.existing()
            if params.get('disk'):
                existing['manifest'] = read_manifest(params['disk'])
                existing['disk_identity'] = disk_identity(params['disk'])
            module.exit_json(changed=False, existing=existing)
        if phase == 'absent':
            removed = publication.remove(check_mode=module.check_mode)
            module.exit_json(changed=bool(removed), removed=removed, response_file=publication.response_path,
                             diff=dict(before='\n'.join(removed) + ('\n' if removed else ''), after=''))
        if params['state'] == 'published':
            changed, paths, diff = publication.publish(payload, check_mode=module.check_mode)
            module.exit_json(changed=bool(changed), published=paths, removed=[], response_file=publication.response_path,
                             diff=diff)
        module.exit_json(**install(module, params, payload, publication))
    except InstallFailure as exc:
        module.fail_json(msg=str(exc), response_file=response_path, **exc.details)
    except VmctlError as exc:
        module.fail_json(msg=str(exc), response_file=response_path)
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (getattr(exc, 'filename', None) or 'file operation', exc.strerror or exc),
                         response_file=response_path)


if __name__ == '__main__':
    main()
