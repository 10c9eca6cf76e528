"""The simulated OpenBSD installer (bsd.rd) of the lab.

run(ctx) plays what a vmd guest booted with `-b bsd.rd -B net` does: the
ramdisk's profile starts the 5-second timer, autoinstall(8) gets a DHCP lease
from vmd, fetches the response file over HTTP (MAC, hostname, then plain
install.conf) and install.sub walks its questions, answering each from the
file with the installer's own matching rules.  The order of the questions,
their defaults, validation and messages follow install.sub 1.1288 and amd64's
install.md for a vmd guest: serial console com0, vio(4) NICs, vioblk sdN
disks, one CPU, no wsdisplay, and no Internet (ftplist.cgi cannot be reached,
so there is no default HTTP server or timezone).

What was installed is written into the root disk image itself (a JSON record
at RECORD_OFFSET, through labsim.images), so a copy, or a qcow2 image derived
from it, carries the installed system; boot_installed() reads it back.

Simulation choices (no real commands run): plain-text passwords get a
bcrypt-shaped stand-in hash (the lab has no bcrypt); disklabel templates are
parsed and sized like disklabel -A, but only coarsely; install.site is not
executed here: it is recorded as run when present and executable, and it fails
when it has an `exit N` line with N != 0; the guest's first boot runs it for
real in the new system's files (labsim.guestnet._run_install_site).
"""

import fnmatch
import gzip
import hashlib
import io
import ipaddress
import json
import os
import random
import re
import string
import tarfile
import threading
import time
import urllib.error
import urllib.request

from labsim import mirror

# vmd's default `local prefix` (parse.y / vmd.h VMD_DHCP_PREFIX); the daemon passes the configured one.
DEFAULT_LOCAL_PREFIX = '100.64.0.0/10'
RAMDISK_MAGIC = 'LAB-OPENBSD-RAMDISK'
RECORD_MAGIC = b'LAB-OPENBSD-INSTALL-RECORD'
RECORD_OFFSET = 1024 * 1024
RECORD_AREA = 1024 * 1024
SECTOR = 512
MBR_PART_START = 64

PROFILE_PROMPT = '(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? '
CONGRATULATIONS = 'CONGRATULATIONS! Your OpenBSD install has been successfully completed!'
AI_FAILED = 'failed; check /tmp/ai/ai.log'
RESERVED_LOGINS = ('root', 'daemon', 'operator', 'bin', 'build', 'sshd', 'www', 'nobody', 'ftp')
DEFAULT_MEMORY = 512 * 1024 * 1024
KB, MB, GB = 1024, 1024 ** 2, 1024 ** 3

# Pacing of the transcript (seconds): fast, but observable while it runs.
STEP_PAUSE = 0.01
SET_PAUSE = 0.04
SLOW_INSTALL_EXTRA = 4.0


class InstallAborted(Exception):
    """install.sub exited non-zero; message is what err_exit printed (None for a bare exit 1)."""

    def __init__(self, message=None):
        super().__init__(message)
        self.message = message


class _Stopped(Exception):
    """The test harness stopped a VM that was waiting forever."""


# ---------------------------------------------------------------------------
# small helpers

def vm_priv_addr(prefix, vmid, idx, isvm):
    """usr.sbin/vmd/priv.c vm_priv_addr(): the address of interface idx of VM vmid, or None.

    addr = (vmid << 8) | ((idx + 1) * 2), plus one on the VM's side, converted to network order
    and OR-ed into the prefix (32 bits); "dhcp address range exceeded" (None) when the result
    leaves the prefix or idx >= 0x7f. The OR means ids whose bits the prefix already has fold
    back into it (100.64.0.0/10: id 16384 gives 100.64.0.x again), as in vmd.
    """
    network = ipaddress.IPv4Network(prefix)
    base, mask = int(network.network_address), int(network.netmask)
    addr = ((vmid << 8) | ((idx + 1) * 2)) & 0xFFFFFFFF
    if isvm:
        addr += 1
    addr = (addr | base) & 0xFFFFFFFF
    if base != (addr & mask) or idx >= 0x7F:
        return None
    return str(ipaddress.IPv4Address(addr))


def _lower(text):
    """typeset -l: ASCII lower case."""
    return text.translate(str.maketrans(string.ascii_uppercase, string.ascii_lowercase))


def is_ramdisk(kernel_path):
    """True if kernel_path is the lab's bsd.rd stand-in (first line `LAB-OPENBSD-RAMDISK ...`)."""
    try:
        with open(kernel_path, 'rb') as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(RAMDISK_MAGIC.encode() + b' ')


def _ramdisk_release(kernel_path):
    with open(kernel_path, encoding='ascii', errors='replace') as handle:
        words = handle.readline().split()
    release = words[1] if len(words) > 1 else '7.8'
    arch = words[2] if len(words) > 2 else 'amd64'
    return release, arch


def res_hnok(name):
    """res_hnok(3): would vmd's DHCP server send this as host-name?"""
    if not name or len(name) > 255:
        return False
    for label in name.split('.'):
        if not label:
            return False
        if not (label[0].isascii() and label[0].isalnum() and label[-1].isascii() and label[-1].isalnum()):
            return False
        if any(not (c.isascii() and (c.isalnum() or c == '-')) for c in label):
            return False
    return True


def encr_pwd(password):
    """install.sub encr_pwd: keep bcrypt strings and 13 asterisks, hash anything else.

    The length test is `${#_p} > 40` inside [[ ]], a *string* comparison in
    ksh: lengths 41-99 (and 7-9) pass, 100 and more are hashed again.
    """
    if not password:
        return '*'
    if (re.match(r'^\$2.\$[0-9][0-9]\$', password) and str(len(password)) > '40') or password == '*' * 13:
        return password
    return _bcrypt_standin(password)


def _bcrypt_standin(password):
    """A bcrypt-shaped hash ($2b$10$ + 53 chars of bcrypt's alphabet); not verifiable by bcrypt."""
    alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
    salt = ''.join(random.choices(alphabet, k=22))
    digest = hashlib.sha256((salt + '\0' + password).encode()).digest() * 2
    return '$2b$10$' + salt + ''.join(alphabet[b % 64] for b in digest[:31])


def _zone_list():
    """What `ls -1dF` of the installed /usr/share/zoneinfo gives: zones, and directories with '/'."""
    try:
        import zoneinfo  # pylint: disable=import-outside-toplevel
        zones = set(zoneinfo.available_timezones())
    except Exception:  # pylint: disable=broad-except
        zones = set()
    if not zones:
        zones = {'UTC', 'GMT', 'Etc/UTC', 'Europe/Amsterdam', 'Europe/Berlin', 'Europe/London', 'Europe/Paris',
                 'America/New_York', 'America/Chicago', 'America/Denver', 'America/Los_Angeles',
                 'America/Argentina/Buenos_Aires', 'Asia/Tokyo', 'Asia/Kolkata', 'Australia/Sydney'}
    entries = set(zones)
    for zone in zones:
        parts = zone.split('/')
        for i in range(1, len(parts)):
            entries.add('/'.join(parts[:i]) + '/')
    return entries


def _size_text(nbytes):
    if nbytes >= 10 * MB:
        return '%5d MB' % (nbytes // MB)
    if nbytes >= 100 * KB:
        return '%5d KB' % (nbytes // KB)
    return '%5d   ' % nbytes


def _meter(label, name, nbytes):
    """The last state of ftp(1)'s progress meter, as ai.log keeps it."""
    return '%s %-13s100%% |%s| %s    00:00    ' % (label, name[:13], '*' * 31, _size_text(nbytes))


# ---------------------------------------------------------------------------
# disk images

def _images():
    from labsim import images  # pylint: disable=import-outside-toplevel
    return images


def _disk_size(path):
    try:
        return _images().virtual_size(path)
    except ImportError:
        return os.path.getsize(path)


def _read_disk(path, offset, length):
    try:
        return _images().read_data(path, offset, length)
    except ImportError:
        with open(path, 'rb') as handle:
            handle.seek(offset)
            return handle.read(length).ljust(length, b'\0')


def _write_disk(path, offset, data):
    try:
        _images().write_data(path, offset, data)
    except ImportError:
        with open(path, 'r+b') as handle:
            handle.seek(offset)
            handle.write(data)


def _mbr(total_sectors, gpt=False):
    """An MBR with one active partition: OpenBSD (A6) from sector 64, or a protective EE."""
    mbr = bytearray(512)
    mbr[0:16] = b'LAB-OPENBSD-MBR\0'
    entry = bytearray(16)
    if gpt:
        entry[4] = 0xEE
        start, size = 1, min(total_sectors - 1, 0xFFFFFFFF)
    else:
        entry[0] = 0x80
        entry[4] = 0xA6
        start, size = MBR_PART_START, min(total_sectors - MBR_PART_START, 0xFFFFFFFF)
    entry[8:12] = start.to_bytes(4, 'little')
    entry[12:16] = size.to_bytes(4, 'little')
    mbr[446 + 3 * 16:446 + 4 * 16] = entry
    mbr[510:512] = b'\x55\xaa'
    return bytes(mbr)


def _mbr_state(path):
    """'none', 'openbsd' (A6 or EE partition present) or 'other' for the disk's first sector."""
    try:
        sector = _read_disk(path, 0, 512)
    except Exception:  # pylint: disable=broad-except
        return 'none'
    if sector[510:512] != b'\x55\xaa':
        return 'none'
    types = [sector[446 + i * 16 + 4] for i in range(4)]
    if 0xA6 in types or 0xEE in types:
        return 'openbsd'
    return 'other'


def _active_partition(path):
    sector = _read_disk(path, 0, 512)
    return any(sector[446 + i * 16] == 0x80 for i in range(4)) or 0xEE in [sector[446 + i * 16 + 4] for i in range(4)]


def write_install_record(disk_path, record):
    payload = json.dumps(record, sort_keys=True).encode()
    header = RECORD_MAGIC + b' 1 %d\n' % len(payload)
    data = header + payload + b'\n'
    if len(data) > RECORD_AREA:
        raise ValueError('install record too large')
    _write_disk(disk_path, RECORD_OFFSET, data)


def clear_install_record(disk_path):
    """newfs: the install record goes, and the state a guest of the disk saved (labsim.guestnet)."""
    _write_disk(disk_path, RECORD_OFFSET, b'\0' * 4096)
    from labsim import guestnet  # pylint: disable=import-outside-toplevel
    guestnet.clear_disk_state(disk_path)


def read_install_record(disk_path):
    """The record of the install on this disk image (raw or qcow2, through the backing chain), or None."""
    try:
        if _disk_size(disk_path) < RECORD_OFFSET + 4096:
            return None
        head = _read_disk(disk_path, RECORD_OFFSET, 64)
    except Exception:  # pylint: disable=broad-except
        return None
    if not head.startswith(RECORD_MAGIC + b' '):
        return None
    line = head.split(b'\n', 1)[0]
    try:
        length = int(line.split()[2])
        payload = _read_disk(disk_path, RECORD_OFFSET + len(line) + 1, length)
        return json.loads(payload.decode())
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------------------
# disklabel auto allocation

_SIZE_RE = re.compile(r'^([0-9]+(?:\.[0-9]+)?)([bkmgtBKMGT]?)$')


def _parse_size(token):
    match = _SIZE_RE.match(token)
    if not match:
        raise ValueError(token)
    value = float(match.group(1))
    unit = match.group(2).lower()
    factor = {'': SECTOR, 'b': 1, 'k': KB, 'm': MB, 'g': GB, 't': 1024 * GB}[unit]
    return int(value * factor)


def parse_autotable(text):
    """disklabel(8) auto-allocation template -> [(mount, min, max, pct)]; ValueError if malformed.

    One partition per line: a mount point (absolute path) or `swap`, a size or
    a `min-max` range (units b/k/m/g/t, bare numbers are sectors, `*` as max is
    unlimited) and an optional percentage like `10%`.  `#` starts a comment.
    """
    table = []
    seen = set()
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) < 2 or len(words) > 3:
            raise ValueError(line)
        mount, size = words[0], words[1]
        if mount != 'swap' and not mount.startswith('/'):
            raise ValueError(line)
        if mount != 'swap':
            if mount in seen:
                raise ValueError(line)
            seen.add(mount)
        if '-' in size:
            low, high = size.split('-', 1)
            minimum = _parse_size(low)
            maximum = None if high == '*' else _parse_size(high)
        elif size == '*':
            minimum, maximum = SECTOR, None
        else:
            minimum = maximum = _parse_size(size)
        if minimum <= 0 or (maximum is not None and maximum < minimum):
            raise ValueError(line)
        pct = 0
        if len(words) == 3:
            if not re.match(r'^[0-9]+%$', words[2]) or not 0 <= int(words[2][:-1]) <= 100:
                raise ValueError(line)
            pct = int(words[2][:-1])
        table.append((mount, minimum, maximum, pct))
    if not table:
        raise ValueError('empty template')
    return table


def default_autotable(disk_bytes, memory=DEFAULT_MEMORY):
    """The built-in tables of disklabel(8) AUTOMATIC DISK ALLOCATION, picked by disk size."""
    if disk_bytes > 7 * GB:
        return [('/', 80 * MB, GB, 5), ('swap', 80 * MB, 2 * memory, 5), ('/tmp', 120 * MB, 4 * GB, 8),
                ('/var', 80 * MB, 2 * memory + 80 * MB, 13), ('/usr', 900 * MB, 2 * GB, 5),
                ('/usr/X11R6', 512 * MB, GB, 3), ('/usr/local', 2 * GB, 10 * GB, 10),
                ('/usr/src', GB, 2 * GB, 2), ('/usr/obj', 1300 * MB, 2 * GB, 4), ('/home', GB, 300 * GB, 45)]
    if disk_bytes > 2 * GB:
        return [('/', 800 * MB, 2 * GB, 5), ('swap', 80 * MB, 2 * memory, 10),
                ('/usr', 900 * MB, 3 * GB, 78), ('/home', 256 * MB, 2 * GB, 7)]
    if disk_bytes > 700 * MB:
        return [('/', 700 * MB, 4 * GB, 95), ('swap', MB, 2 * memory, 5)]
    return [('/', MB, None, 100)]


def allocate(table, disk_bytes):
    """Partitions [{letter, mount, fstype, size, offset}] for the table, or None if it does not fit."""
    usable = (disk_bytes // SECTOR - MBR_PART_START) * SECTOR
    minimum = sum(row[1] for row in table)
    if minimum > usable:
        return None
    extra = usable - minimum
    sizes = []
    for _mount, low, high, pct in table:
        size = low + extra * pct // 100
        if high is not None:
            size = min(size, high)
        sizes.append(size // SECTOR * SECTOR)
    letters = list('abdefghijklmnop')
    parts = []
    offset = MBR_PART_START * SECTOR
    for (mount, _low, _high, _pct), size, letter in zip(table, sizes, letters):
        parts.append({'letter': letter, 'mount': None if mount == 'swap' else mount,
                      'fstype': 'swap' if mount == 'swap' else '4.2BSD', 'size': size, 'offset': offset})
        offset += size
    return parts


# ---------------------------------------------------------------------------
# the response file

class ResponseFile:
    """The working copy /tmp/ai/ai.conf and install.sub's _autorespond()."""

    def __init__(self, data):
        # ksh works on bytes; undecodable bytes survive as surrogates (JSON escapes them).
        text = data.decode('utf-8', 'surrogateescape') if isinstance(data, bytes) else data
        # read -r with IFS=' \t' strips blanks at both ends; other characters (\r) stay.
        self.lines = [line.strip(' \t') for line in text.split('\n')]

    @staticmethod
    def parse(line):
        """(key, answer) for a line install.sub would consider, else None."""
        if not line or line[0] in '#=' or '=' not in line[:-1]:
            return None
        first = line.index('=')
        return line[:first].rstrip(' \t'), line[first + 1:].lstrip(' \t')

    @staticmethod
    def matches(question, key):
        question, key = _lower(question), _lower(key)
        start = question.find(key)
        while start >= 0:
            end = start + len(key)
            if (start == 0 or question[start - 1] in ' \t') and (end == len(question) or question[end] in ' \t?'):
                return True
            start = question.find(key, start + 1)
        return False

    def respond(self, question, default=None):
        """The answer for question (consuming its line), else default; abort if neither."""
        for index, line in enumerate(self.lines):
            parsed = self.parse(line)
            if parsed and self.matches(question, parsed[0]):
                del self.lines[index]
                return parsed[1]
        if default:
            return default
        raise InstallAborted('\nQuestion has no answer in response file: "%s"' % _lower(question))


# ---------------------------------------------------------------------------
# the installer

class _Installer:  # pylint: disable=too-many-instance-attributes,too-many-public-methods

    def __init__(self, ctx):
        self.ctx = ctx
        self.console = ctx['console']
        self.faults = set(ctx.get('faults') or ())
        self.vm_id = int(ctx.get('vm_id') or 1)
        self.release, self.arch = _ramdisk_release(ctx['kernel'])
        self.vname = self.release.split('-')[0]
        self.version = mirror.version_of(self.release)
        snapshot = '-' in self.release and not self.release.endswith('-stable')
        self.setdir = 'snapshots/%s' % self.arch if snapshot else '%s/%s' % (self.vname, self.arch)
        self.local_prefix = ctx.get('local_prefix') or DEFAULT_LOCAL_PREFIX
        lease = self._lease(0) if ctx.get('interfaces') else None
        self.host_ip = lease['router'] if lease else ''
        self.interfaces = ['vio%d' % i for i in range(len(ctx.get('interfaces') or []))]
        self.disks = {}
        for i, disk in enumerate(ctx.get('disks') or []):
            self.disks['sd%d' % i] = dict(disk, size=_disk_size(disk['path']))
        self.hostname = ''
        self.resp_log = []
        self.response_url = None
        self.response_sha256 = None
        self.sets_installed = []
        self.files = {}
        self.state = {}
        self.pause_scale = 1.0

    # -- console ---------------------------------------------------------
    def out(self, text):
        self.console.write(text)
        self.console.flush()

    def line(self, text=''):
        self.out(text + '\n')

    def pause(self, seconds=STEP_PAUSE):
        time.sleep(seconds)

    def block(self):
        """Wait forever (nobody types at the console, or the installer hangs)."""
        stop = self.ctx.get('stop_event') or threading.Event()
        while not stop.wait(3600):
            pass
        raise _Stopped()

    # -- the ask family ----------------------------------------------------
    def log_answer(self, question, answer):
        if question and answer:
            self.resp_log.append('%s = %s' % (question.split('?', 1)[0], answer))

    def ask(self, question, default=''):
        self.out('%s %s' % (question, '[%s] ' % default if default else ''))
        resp = self.rf.respond(question, default)
        self.line(resp)
        self.log_answer(question, resp)
        return resp

    def ask_yn(self, question, default='no'):
        while True:
            resp = self.ask(question, default)
            if _lower(resp) in ('y', 'yes'):
                return True
            if _lower(resp) in ('n', 'no'):
                return False
            self.line("'%s' is not a valid choice." % resp)
            raise InstallAborted()

    def ask_until(self, question, default=''):
        resp = self.ask(question, default)
        if not resp:
            self.line('A response is required.')
            raise InstallAborted()
        return resp

    def ask_which(self, name, query, items, default=''):
        if not items:
            return 'done'
        default = default or items[0]
        self.line('Available %ss are: %s.' % (name, ' '.join(items)))
        question = 'Which %s %s?' % (name, query)
        self.out("%s (or 'done') %s" % (question, '[%s] ' % default if default else ''))
        resp = self.rf.respond(question, default)
        self.line(resp)
        resp = resp or default
        if resp in items or resp == 'done':
            self.log_answer(question, resp)
            return resp
        self.line("'%s' is not a valid choice." % resp)
        raise InstallAborted()

    def ask_password(self, question):
        self.out(question + ' ')
        resp = self.rf.respond(question)
        self.line('<provided>')
        return resp

    # -- network -------------------------------------------------------------
    def fetch(self, url):
        """ftp(1) inside the guest: a TCP connection from the guest's first NIC to the URL's host.

        The packet path is the host's (labsim.network): it arrives on the NIC's tap (group
        `tap` and the interface's vm.conf group) from the guest's address; pf (when enabled)
        may rdr-to it elsewhere; only a running lab httpd listening on the resulting address
        answers. Plain http only; None when nothing answers or the status is not 200.
        """
        from labsim import network
        match = re.match(r'^http://([0-9.]+)(?::([0-9]+))?(/.*)?$', url)
        nics = self.ctx.get('interfaces') or []
        if not match or not nics or not nics[0].get('tap'):
            return None
        lease = self._lease(0)
        src = lease['address'] if lease else '0.0.0.0'
        own = lease['router'] if lease else None
        try:
            host, port = network.connect(nics[0]['tap'], src, match.group(1), int(match.group(2) or 80),
                                         groups=nics[0].get('groups') or (), own_address=own)
            request = urllib.request.Request('http://%s:%d%s' % (host, port, match.group(3) or '/'),
                                             headers={'Host': match.group(1)})
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.read()
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _lease(self, index):
        """vmd's DHCP answer for NIC index (dhcp.c dhcp_request): only local interfaces get one, and only
        when vm_priv_addr finds addresses for them inside the `local prefix`."""
        spec = self.ctx['interfaces'][index]
        if not spec.get('local'):
            return None
        guest = vm_priv_addr(self.local_prefix, self.vm_id, index, True)
        host = vm_priv_addr(self.local_prefix, self.vm_id, index, False)
        if guest is None or host is None:
            return None
        name = self.ctx.get('name') or ''
        return {'address': guest, 'netmask': '255.255.255.254', 'router': host, 'dns': host,
                'next_server': host, 'filename': 'auto_install', 'host_name': name if res_hnok(name) else ''}

    def get_responsefile(self):
        """install.sub 1.1288 get_responsefile, for a netbooted vmd guest (one `netboot` interface, vio0).

        DHCP on it (no answer: "No dhcp address on interface vio0 in 30 seconds."), then with next-server
        and an auto_install file name the MAC, host-name and plain URLs; without them "Could not determine
        auto server." / "Could not determine auto mode.". When nothing was fetched it asks "Response file
        location?" (default http://<server>/install.conf when a server is known) and reads the console:
        nobody types there, so it waits for ever.
        """
        server = mode = path = ''
        if self.interfaces:
            lease = self._lease(0)
            if lease is None:
                self.pause(SET_PAUSE)
                self.line('No dhcp address on interface %s in 30 seconds.' % self.interfaces[0])
            else:
                match = re.match(r'^(.*/)?auto_(install|upgrade)$', lease['filename'])
                if match:
                    path, mode = match.group(1) or '', match.group(2)
                server = lease['next_server']
                self.hostname = lease['host_name']
        if server and mode:
            mac = _lower(self.ctx['interfaces'][0]['mac'])
            names = ['%s-%s' % (mac, mode)]
            if self.hostname:
                names.append('%s-%s' % (self.hostname, mode))
            names.append(mode)
            for name in names:
                url = 'http://%s/%s%s.conf?path=%s' % (server, path, name, self.setdir)
                self.line('Fetching %s' % url)
                data = self.fetch(url)
                if data is not None:
                    self.response_url = url
                    return mode, data
        else:
            if not server:
                self.line('Could not determine auto server.')
            if not mode:
                self.line('Could not determine auto mode.')
        # Interactive from here on: nobody answers on a vmd console.
        default = 'http://%s/install.conf' % server if server else ''
        self.out('Response file location? %s' % ('[%s] ' % default if default else ''))
        self.block()
        return None

    # -- install.sub: do_install --------------------------------------------
    def short_hostname(self):
        return self.hostname.split('.', 1)[0]

    def do_install(self):
        self.resp_log = []
        self.ask('Terminal type?', 'vt220')
        while True:
            resp = self.ask_until("System hostname? (short form, e.g. 'foo')", self.short_hostname())
            if not re.search(r'[\x00-\x1f\x7f\s]', resp):
                break
            self.line('Invalid hostname.')
            raise InstallAborted()
        if resp.split('.', 1)[0] != self.short_hostname():
            self.hostname = resp
        self.site_host_set = 'site%s-%s.tgz' % (self.version, self.short_hostname())
        self.line()
        self.donetconfig()
        self.line()
        root_password = self.ask_password('Password for root account?')
        root_key = self.ask('Public ssh key for root account?', 'none')
        self.state['root_password_hash'] = encr_pwd(root_password)
        self.state['root_ssh_key'] = None if root_key == 'none' else root_key
        self.questions()
        self.user_setup()
        self.ask_root_sshd()
        # set_timezone /var/tzlist: offline there is no hint, so it is asked after the sets.
        self.line()
        self.get_rootinfo()
        self.encrypt_root()
        self.configure_disks()
        self.mount_filesystems()
        self.install_sets()
        if 'installer-fail' in self.faults:
            self.line('/mnt: write failed, file system is full')
            raise InstallAborted()
        self.line()
        self.set_timezone()
        self.out('Saving configuration files...')
        self.pause()
        self.line(' done.')
        self.finish_up()

    # -- network configuration -------------------------------------------------
    def donetconfig(self):
        self.net = {'hostname_if': {}, 'mygate': [], 'dhcp': [], 'dhcp_group': [], 'hosts': []}
        self.configure_ifs()
        self.v4_defroute()
        self.v6_defroute()
        dhcp_ns = [lease['dns'] for lease in self.net['dhcp']]
        nifs = len(self.net['hostname_if'])
        domain = self.hostname.split('.', 1)[1] if '.' in self.hostname else 'my.domain'
        if self.net['dhcp_group'] and nifs == 1:
            self.line('Using DNS domainname %s' % domain)
        else:
            domain = self.ask("DNS domain name? (e.g. 'example.com')", domain)
        self.hostname = '%s.%s' % (self.short_hostname(), domain)
        self.state['domain'] = domain
        if dhcp_ns:
            # resolvd(8) already wrote the lease's nameservers.
            self.line('Using DNS nameservers at %s' % ' '.join(dhcp_ns))
            self.state['nameservers'] = dhcp_ns
            self.state['nameservers_from_dhcp'] = True
            return
        resp = self.ask("DNS nameservers? (IP address list or 'none')", 'none')
        self.state['nameservers'] = [] if resp == 'none' else resp.split()

    def configure_ifs(self):
        configured = []
        first = None
        vlans = []
        proposal = self.interfaces[0] if self.interfaces else None
        show_lladdr = False
        while self.interfaces:
            ifs = sorted(self.interfaces + vlans)
            next_vlan = 'vlan%d' % (max(int(v[4:]) for v in vlans) + 1 if vlans else 0)
            self.line('Available network interfaces are: %s %s.' % (' '.join(ifs), next_vlan))
            if show_lladdr:
                for index, name in enumerate(self.interfaces):
                    self.line('    %s: lladdr %s' % (name, _lower(self.ctx['interfaces'][index]['mac'])))
            resp = self.ask_until("Network interface to configure? (name, lladdr, '?', or 'done')", proposal)
            show_lladdr = resp == '?'
            if resp == 'done':
                break
            if resp == '?':
                continue
            macs = {_lower(spec['mac']): 'vio%d' % i for i, spec in enumerate(self.ctx['interfaces'])}
            if resp not in ifs and resp not in macs and resp != next_vlan:
                self.line("'%s' is not a valid choice." % resp)
                raise InstallAborted()
            name = macs.get(resp, resp)
            if name == next_vlan:
                if not self.vlan_config(name):
                    continue
                vlans.append(name)
            symbolic = self.short_hostname()
            if first is not None and first != name:
                symbolic = self.ask('Symbolic (host) name for %s?' % name, symbolic)
            lines = self.v4_config(name, symbolic) + self.v6_config(name, symbolic)
            self.net['hostname_if'].pop(name, None)
            if lines:
                self.net['hostname_if'][name] = lines
                first = first or name
                configured.append(name)
            proposal = 'done'

    def vlan_config(self, name):
        parent_default = sorted(self.interfaces)[0]
        tag_default = 'none' if name == 'vlan0' else name[4:]
        resp = self.ask('Which interface:tag should %s be on?' % name, '%s:%s' % (parent_default, tag_default))
        parent, tag = resp.split(':', 1)[0], resp.rsplit(':', 1)[-1]
        if parent not in self.interfaces:
            self.line("Invalid parent interface choice '%s'." % parent)
            return False
        if tag != 'none' and not (tag.isdigit() and 0 < int(tag) < 4096):
            self.line("Invalid vlan tag '%s'." % tag)
            return False
        self.net['hostname_if'].setdefault(parent, ['up'])
        return True

    def _nic_index(self, name):
        return int(name[3:]) if name.startswith('vio') else None

    def v4_config(self, name, symbolic):
        resp = self.ask_until("IPv4 address for %s? (or 'autoconf' or 'none')" % name, 'autoconf')
        if resp == 'none':
            return []
        if resp in ('a', 'autoconf', 'dhcp'):
            self.net['dhcp_group'].append(name)
            index = self._nic_index(name)
            lease = self._lease(index) if index is not None else None
            if lease is None:
                self.line('No dhcp address on interface %s in 30 seconds.' % name)
            else:
                self.net['dhcp'].append(dict(lease, interface=name))
            return ['inet autoconf']
        if '/' in resp:
            try:
                iface = ipaddress.IPv4Interface(resp)
            except ValueError:
                self.line('ifconfig: %s: bad value' % resp)
                raise InstallAborted() from None
        else:
            mask = self.ask_until('Netmask for %s?' % name, '255.255.255.0')
            try:
                ipaddress.IPv4Address(resp)
            except ValueError:
                self.line('ifconfig: %s: bad value' % resp)
                raise InstallAborted() from None
            try:
                if mask.startswith('0x'):
                    mask = str(ipaddress.IPv4Address(int(mask, 16)))
                iface = ipaddress.IPv4Interface('%s/%s' % (resp, mask))
            except ValueError:
                self.line('ifconfig: %s: bad value' % mask)
                raise InstallAborted() from None
        self.net['hosts'].append('%s %s' % (iface.ip, symbolic))
        self.net.setdefault('v4', []).append(iface)
        return ['inet %s %s' % (iface.ip, iface.netmask)]

    def v6_config(self, name, symbolic):
        resp = self.ask_until("IPv6 address for %s? (or 'autoconf' or 'none')" % name, 'autoconf')
        if resp == 'none':
            return []
        if resp in ('a', 'autoconf'):
            return ['inet6 autoconf']
        try:
            if '/' in resp:
                iface = ipaddress.IPv6Interface(resp)
            else:
                ipaddress.IPv6Address(resp)
                prefix = self.ask_until('IPv6 prefix length for %s?' % name, '64')
                iface = ipaddress.IPv6Interface('%s/%s' % (resp, prefix))
        except ValueError:
            self.line('ifconfig: %s: bad value' % resp)
            raise InstallAborted() from None
        self.net['hosts'].append('%s %s' % (iface.ip, symbolic))
        self.net.setdefault('v6', []).append(iface)
        return ['inet6 %s %d' % (iface.ip, iface.network.prefixlen)]

    def v4_defroute(self):
        if not self.net.get('v4'):
            return
        if self.net['dhcp']:
            # The lease's router is the default route, managed by dhcpleased.
            return
        while True:
            resp = self.ask_until("Default IPv4 route? (IPv4 address or 'none')", '')
            if resp == 'none':
                return
            try:
                gateway = ipaddress.IPv4Address(resp)
            except ValueError:
                self.line('route: %s: bad address' % resp)
                continue
            if not any(gateway in iface.network for iface in self.net['v4']):
                self.line('add host default: gateway %s: Network is unreachable' % resp)
                continue
            self.net['mygate'].append(resp)
            return

    def v6_defroute(self):
        if not self.net.get('v6'):
            return
        prompt = 'IPv6 default router?'
        resp = self.rf.respond("%s (IPv6 address or 'none')" % prompt, 'none')
        self.line('%s %s' % (prompt, resp))
        if resp != 'none':
            try:
                ipaddress.IPv6Address(resp)
                self.net['mygate'].append(resp)
            except ValueError:
                self.line('route: %s: bad address' % resp)

    # -- questions(), user_setup(), ask_root_sshd() ------------------------------
    def questions(self):
        self.state['sshd'] = self.ask_yn('Start sshd(8) by default?', 'yes')
        # No wsdisplay under vmd: no X questions.  The console is com0.
        self.state['console_com0'] = self.ask_yn('Change the default console to com0?', 'yes')
        self.state['console_speed'] = None
        if self.state['console_com0']:
            resp = self.ask_which('speed', 'should com0 use', ['9600', '19200', '38400', '57600', '115200'], '115200')
            if resp == 'done':
                self.state['console_com0'] = False
            else:
                self.state['console_speed'] = int(resp)

    def user_setup(self):
        question = "Setup a user? (enter a lower-case loginname, or 'no')"
        self.state['users'] = []
        while True:
            resp = self.ask(question, 'no')
            if resp in ('n', 'no'):
                return
            if resp in ('y', 'yes'):
                question = "No really, what is the lower-case loginname, or 'no'?"
                continue
            if resp not in RESERVED_LOGINS and re.match(r'^[a-z][-a-z0-9_]*$', resp) and len(resp) <= 31:
                break
            self.line('%s is not a usable loginname.' % resp)
        login = resp
        while True:
            full_name = self.ask('Full name for user %s?' % login, login)
            if re.search(r'[:&,]', full_name):
                self.line("':', '&' or ',' are not allowed.")
            elif len(full_name) > 100:
                self.line('Too long.')
            else:
                break
        password = self.ask_password('Password for user %s?' % login)
        key = self.ask('Public ssh key for user %s' % login, 'none')
        self.state['users'].append({
            'login': login, 'full_name': full_name, 'uid': 1000, 'gid': 1000, 'groups': ['wheel'],
            'shell': '/bin/ksh', 'home': '/home/%s' % login, 'password_hash': encr_pwd(password),
            'ssh_key': None if key == 'none' else key,
        })

    def ask_root_sshd(self):
        self.state['permit_root_login'] = None
        if not self.state['sshd']:
            return
        if not self.state['users']:
            self.line('Since no user was setup, root logins via sshd(8) might be useful.')
        self.line('WARNING: root is targeted by password guessing attacks, pubkeys are safer.')
        resp = self.ask('Allow root ssh login? (yes, no, prohibit-password)', 'no')
        value = _lower(resp)
        if value in ('y', 'yes'):
            self.state['permit_root_login'] = 'yes'
        elif value in ('n', 'no'):
            self.state['permit_root_login'] = 'no'
        elif value in ('w', 'p', 'without-password', 'prohibit-password'):
            self.state['permit_root_login'] = 'prohibit-password'
        else:
            self.line("'%s' is not a valid choice." % resp)
            raise InstallAborted()

    # -- disks -------------------------------------------------------------------
    def get_rootinfo(self):
        names = sorted(self.disks)
        # Prefer disks of 1G and more: small ones tend to be install media or key disks.
        candidates = [d for d in names if self.disks[d]['size'] >= GB] + [d for d in names if self.disks[d]['size'] < GB]
        question = "Which disk is the root disk? ('?' for details)"
        self.line('Available disks are: %s.' % (' '.join(names) or 'none'))
        default = candidates[0] if candidates else ''
        self.out('%s %s' % (question, '[%s] ' % default if default else ''))
        resp = self.rf.respond(question, default)
        self.line(resp)
        resp = self._dkdev_name(resp)
        if resp == '?':
            for name in names:
                self.line('    %s: VirtIO, Block Device  (%.1fG)' % (name, self.disks[name]['size'] / GB))
            raise InstallAborted()
        if resp not in self.disks:
            if resp:
                self.line('no such disk')
            raise InstallAborted()
        self.log_answer(question, resp)
        self.rootdisk = resp
        self.state['root_disk'] = resp

    @staticmethod
    def _dkdev_name(resp):
        """get_dkdev_name: sd0, /dev/sd0 and sd0a all name sd0."""
        name = resp[5:] if resp.startswith('/dev/') else resp
        if re.match(r'^sd[0-9]+[a-p]$', name):
            name = name[:-1]
        return name

    def encrypt_root(self):
        self.state['encrypted'] = None
        while True:
            resp = self.ask('Encrypt the root disk with a (p)assphrase or (k)eydisk?', 'no')
            if resp[:1] in ('k', 'K'):
                others = [d for d in sorted(self.disks) if d != self.rootdisk]
                disk = self.ask_which('disk', 'contains the key disk', others)
                if disk == 'done':
                    continue
                self.line('%s must contain a RAID partition.' % disk)
                continue
            if resp[:1] in ('p', 'P'):
                self.ask_passphrase('New passphrase?')
                self.state['encrypted'] = 'passphrase'
                break
            if resp[:1] in ('n', 'N'):
                return
            self.line("'%s' is not a valid choice." % resp)
        chunk = self.rootdisk
        self.line('\nConfiguring the crypto chunk %s...\n' % chunk)
        self.prep_fdisk(chunk)
        volume = 'sd%d' % len(self.disks)
        self.disks[volume] = dict(self.disks[chunk], size=self.disks[chunk]['size'] - MB, chunk=chunk)
        self.rootdisk = volume
        self.line('\nConfiguring the root disk %s...\n' % volume)

    def ask_passphrase(self, question):
        self.out(question + ' ')
        resp = self.rf.respond(question)
        self.line('<provided>')
        return resp

    def _image_of(self, disk):
        spec = self.disks[disk]
        return spec['path'], spec.get('chunk') is not None

    def prep_fdisk(self, disk):
        path, virtual = self._image_of(disk)
        total = self.disks[disk]['size'] // SECTOR
        while True:
            state = 'none' if virtual else _mbr_state(path)
            default = 'whole'
            question = 'Use (W)hole disk MBR, whole disk (G)PT'
            if state == 'none':
                self.line('No valid MBR or GPT.')
            else:
                self.print_fdisk(disk, total, state)
                if state == 'openbsd':
                    question += ', (O)penBSD area'
                    default = 'OpenBSD'
            resp = self.ask(question + ' or (E)dit?', default)
            first = resp[:1].lower()
            if first == 'w':
                self.out('Setting OpenBSD MBR partition to whole %s...' % disk)
                if not virtual:
                    _write_disk(path, 0, _mbr(total))
                self.line('done.')
                self.disks[disk]['table'] = 'MBR'
                return
            if first == 'g':
                if not self.ask_yn('An EFI/GPT disk may not boot. Proceed?'):
                    continue
                self.out('Setting OpenBSD GPT partition to whole %s...' % disk)
                if not virtual:
                    _write_disk(path, 0, _mbr(total, gpt=True))
                self.line('done.')
                self.disks[disk]['table'] = 'GPT'
                return
            if first == 'e':
                # fdisk -e reads its commands from the console; in autoinstall stdin is /dev/null.
                self.line('No OpenBSD partition in MBR, try again.')
                continue
            if first == 'o' and default == 'OpenBSD':
                self.disks[disk]['table'] = 'MBR'
                return

    def print_fdisk(self, disk, total, state):
        self.line('Disk: %s\tgeometry: %d/255/63 [%d Sectors]' % (disk, total // (255 * 63), total))
        self.line('Offset: 0\tSignature: 0xAA55')
        self.line('            Starting         Ending         LBA Info:')
        self.line(' #: id      C   H   S -      C   H   S [       start:        size ]')
        self.line('-' * 79)
        for i in range(3):
            self.line(' %d: 00      0   0   0 -      0   0   0 [           0:           0 ] Unused' % i)
        if state == 'openbsd':
            self.line('*3: A6      0   1   2 - %6d 254  63 [          64: %11d ] OpenBSD' % (total // (255 * 63), total - 64))
        else:
            self.line(' 3: 00      0   0   0 -      0   0   0 [           0:           0 ] Unused')

    def configure_disks(self):
        self.layouts = {}
        done = []
        disk = self.rootdisk
        while True:
            if not self.configure_disk(disk):
                raise InstallAborted()
            done.append(disk)
            remaining = [d for d in sorted(self.disks) if d not in done and not self.disks[d].get('chunk')
                         and d != self.disks.get(self.rootdisk, {}).get('chunk')]
            disk = self.ask_which('disk', 'do you wish to initialize', remaining, 'done')
            if disk == 'done':
                break

    def configure_disk(self, disk):
        self.prep_fdisk(disk)
        parts = []
        if disk == self.rootdisk:
            parts = self.disklabel_autolayout(disk)
        if disk == self.rootdisk and not any(p['mount'] == '/' for p in parts):
            self.line("'/' must be configured!")
            raise InstallAborted()
        elif disk != self.rootdisk:
            # disklabel -E reads the console; stdin is /dev/null: nothing gets labelled.
            self.line("Label editor (enter '?' for help at any prompt)")
            self.line('%s> ' % disk)
        self.layouts[disk] = parts
        if parts:
            # newfs: whatever the disk held before is gone.
            clear_install_record(self._image_of(disk)[0])
        return True

    def disklabel_autolayout(self, disk):
        size = self.disks[disk]['size']
        while True:
            resp = self.ask('URL to autopartitioning template for disklabel?', 'none')
            if resp == 'none':
                break
            self.line('Fetching %s' % resp)
            data = self.fetch(resp)
            if not data:
                self.line('No autopartitioning template found.')
                raise InstallAborted()
            try:
                table = parse_autotable(data.decode('ascii'))
            except (ValueError, UnicodeDecodeError):
                table = None
            parts = allocate(table, size) if table else None
            if parts is None:
                self.line('Autopartitioning failed.')
                raise InstallAborted()
            self.state['disklabel_template'] = {'url': resp, 'text': data.decode('ascii')}
            return parts
        parts = allocate(default_autotable(size, self.ctx.get('memory') or DEFAULT_MEMORY), size)
        question = 'Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout?'
        while True:
            self.line('The auto-allocated layout for %s is:' % disk)
            self.line('#                size           offset  fstype [fsize bsize   cpg]')
            for part in self._with_c(parts, size):
                self.line(self._label_line(part))
            resp = self.ask(question, 'a')
            first = resp[:1].lower()
            if first == 'a':
                return parts
            if first in ('e', 'c'):
                # The label editor reads the console; stdin is /dev/null: nothing gets labelled.
                self.line('Label editor (enter \'?\' for help at any prompt)')
                self.line('%s> ' % disk)
                return []

    @staticmethod
    def _with_c(parts, size):
        whole = {'letter': 'c', 'mount': None, 'fstype': 'unused', 'size': size // SECTOR * SECTOR, 'offset': 0}
        return sorted(parts + [whole], key=lambda p: p['letter'])

    @staticmethod
    def _label_line(part):
        text = '  %s: %15.1fM %16d  %6s' % (part['letter'], part['size'] / MB, part['offset'] // SECTOR, part['fstype'])
        if part['fstype'] == '4.2BSD':
            text += '   2048 16384     1 # %s' % part['mount']
        return text

    def mount_filesystems(self):
        self.duid = ''.join(random.choices('0123456789abcdef', k=16))
        mounts = []
        for disk, parts in self.layouts.items():
            for part in parts:
                if part['fstype'] == '4.2BSD':
                    mounts.append((part['mount'], disk, part))
        mounts.sort(key=lambda m: m[0] + '!')
        self.mounts = mounts
        for mount, disk, part in mounts:
            opts = 'rw, asynchronous, local'
            if mount != '/':
                opts += ', nodev'
                if mount not in ('/sbin', '/usr', '/usr/bin', '/usr/sbin', '/usr/local', '/usr/X11R6', '/usr/X11R6/bin') \
                        and not mount.startswith(('/usr/libexec', '/usr/local/')):
                    opts += ', nosuid'
            self.line('/dev/%s%s (%s.%s) on /mnt%s type ffs (%s)' % (
                disk, part['letter'], self.duid, part['letter'], mount.rstrip('/'), opts))
            self.pause(STEP_PAUSE / 2)

    def prefetch_area(self):
        """install.sub prefetcharea_fs_list: /tmp or /home with >512M free, or any new fs with >2G."""
        for mount, _disk, part in self.mounts:
            avail_kb = part['size'] * 95 // 100 // KB
            path = '/mnt' + mount.rstrip('/')
            if re.match(r'^/mnt/(tmp|home)(/.*)?$', path) and avail_kb > 524288:
                return path
        for mount, _disk, part in self.mounts:
            if part['size'] * 95 // 100 // KB > 524288 * 4:
                return '/mnt' + mount.rstrip('/')
        return None

    # -- sets --------------------------------------------------------------------
    def install_sets(self):
        self.all_sets = ['bsd', 'bsd.rd'] + ['%s%s.tgz' % (s, self.version) for s in mirror.STANDARD_SETS] \
            + ['site%s.tgz' % self.version, self.site_host_set]
        self.default_sets = ['bsd', 'bsd.rd'] + ['%s%s.tgz' % (s, self.version) for s in mirror.STANDARD_SETS]
        self.sane_sets = ['bsd', 'base%s.tgz' % self.version]
        locations = 'disk http nfs' if self.interfaces else 'disk'
        default = 'http' if self.interfaces else 'disk'
        self.line()
        self.line("Let's install the sets!")
        while True:
            resp = self.ask("Location of sets? (%s or 'done')" % locations, default)
            first = resp[:1]
            if resp == 'done':
                if self.sane_install():
                    return
            elif first in ('c', 'C'):
                pass
            elif first in ('d', 'D'):
                self.install_disk()
            elif first in ('h', 'H') and 'http' in locations:
                self.install_http()
            elif first in ('n', 'N') and 'nfs' in locations:
                self.install_nfs()
            elif first not in ('h', 'H', 'n', 'N'):
                raise InstallAborted("'%s' is not a valid choice." % resp)
            default = 'done'

    def sane_install(self):
        for name in self.sane_sets:
            if name not in self.default_sets:
                continue
            if not self.ask_yn("Are you *SURE* your install is complete without '%s'?" % name):
                raise InstallAborted()
        return True

    def install_disk(self):
        if not self.ask_yn('Is the disk partition already mounted?', 'no'):
            disk = self.ask_which('disk', 'contains the install media', sorted(self.disks),
                                  next((d for d in sorted(self.disks) if d not in self.layouts), ''))
            if disk == 'done':
                return
            self.line('No filesystems found on %s.' % disk)
            return
        resp = self.ask_until("Pathname to the sets? (or 'done')", '%s/%s' % (self.vname, self.arch))
        if resp == 'done':
            return
        self.line("The directory '%s' does not exist." % resp)
        raise InstallAborted()

    def install_nfs(self):
        server = self.ask_until('Server IP address or hostname?', '')
        path = self.ask_until('Filesystem on server to mount?', '')
        self.ask_yn('Use TCP transport? (requires TCP-capable NFS server)')
        self.line("mount_nfs: can't access %s:%s: Connection refused" % (server, path))

    def install_http(self):
        proxy = self.ask("HTTP proxy URL? (e.g. 'http://proxy:8080', or 'none')", 'none')
        self.line('(Unable to get list from openbsd.org, but that is OK)')
        prompt = "HTTP Server? (hostname or 'done')"
        server = ''
        while True:
            resp = self.ask_until(prompt, server)
            if resp == 'done':
                return
            if resp == '?' or resp.isdigit():
                continue
            if re.match(r'^(https?://)?[A-Za-z0-9:.\[\]%_-]+$', resp):
                if resp.startswith('https://'):
                    tls, proto = 'force', 'https'
                elif resp.startswith('http://'):
                    tls, proto = 'no', 'http'
                else:
                    tls, proto = 'try', 'https'
                server = resp.split('://', 1)[-1]
                break
            self.line("'%s' is not a valid hostname." % resp)
        resp = self.ask_until('Server directory?', 'pub/OpenBSD/%s' % self.setdir)
        directory = resp.lstrip('/')
        base = '%s://%s/%s' % (proto, server, directory)
        fetch = self.fetch if proxy == 'none' else (lambda url: None)
        signed = fetch(base + '/SHA256.sig')
        if signed is None:
            if tls == 'force':
                raise InstallAborted()
            if tls == 'try':
                self.line('Unable to connect using HTTPS; using HTTP instead.')
                base = 'http://%s/%s' % (server, directory)
                signed = fetch(base + '/SHA256.sig')
        self.state['installurl'] = re.sub(r'/(%s|snapshots)$' % re.escape(self.vname), '',
                                          re.sub(r'/%s$' % re.escape(self.arch), '', base))
        verified = mirror.verify(signed, mirror.key_name(self.release)) if signed is not None else None
        files = []
        checksums = None
        if verified is not None:
            checksums = verified.decode('latin-1')
            files = ['SHA256.sig'] + re.findall(r'^SHA256 \((.*)\).*$', checksums, re.M)
        else:
            self.line('Unable to get a verified list of distribution sets.')
        index = fetch(base + '/index.txt')
        if index is not None:
            for name in re.findall(r'^.* ([a-zA-Z][a-zA-Z0-9._-]+)$', index.decode('latin-1'), re.M):
                if name not in files:
                    files.append(name)
        self.install_files(base, files, checksums, fetch)

    def install_files(self, base, files, checksums, fetch):  # pylint: disable=too-many-branches,too-many-statements
        sets = [f for f in self.all_sets if f in files]
        preselected = [f for f in sets if f in self.default_sets or f == self.site_host_set]
        if not sets:
            self.line('Looked at %s and found no OpenBSD/%s %s sets.  The set names looked for were:' % (
                base, self.arch, self.vname))
            self.line('    ' + '  '.join(self.all_sets))
            raise InstallAborted()
        if 'INSTALL.%s' % self.arch not in files:
            if not self.ask_yn('INSTALL.%s not found. Use sets found here anyway?' % self.arch):
                return
        selected = self.select_sets(sets, preselected)
        if not selected:
            return
        selected = [f for f in self.all_sets if f in selected] + (['BUILDINFO'] if 'BUILDINFO' in files else [])
        unverified = list(selected)
        issue = None
        payloads = {}
        if 'SHA256.sig' not in files:
            issue = 'Directory does not contain SHA256.sig'
        elif self.prefetch_area() is None:
            issue = 'Cannot determine prefetch area'
        else:
            signed = fetch(base + '/SHA256.sig')
            if signed is not None:
                self.line(_meter('Get/Verify', 'SHA256.sig', len(signed)))
            if signed is None:
                issue = 'Cannot fetch SHA256.sig'
            elif mirror.verify(signed, mirror.key_name(self.release)) is None:
                issue = 'Signature check of SHA256.sig failed'
            else:
                self.line('Signature Verified')
                checksums = mirror.verify(signed, mirror.key_name(self.release)).decode('latin-1')
                for name in list(selected):
                    self.pause(SET_PAUSE / 2)
                    data = fetch(base + '/' + name)
                    if data is None:
                        if not self.ask_yn('Fetching of %s failed. Continue anyway?' % name):
                            raise InstallAborted()
                        unverified.remove(name)
                        selected.remove(name)
                        continue
                    self.line(_meter('Get/Verify', name, len(data)))
                    payloads[name] = data
                    wanted = 'SHA256 (%s) = %s' % (name, hashlib.sha256(data).hexdigest())
                    if wanted in checksums.split('\n'):
                        unverified.remove(name)
                    elif not self.ask_yn('Checksum test for %s failed. Continue anyway?' % name):
                        raise InstallAborted()
        if unverified and issue is None:
            issue = 'Unverified sets: %s' % ' '.join(unverified)
        if issue and not self.ask_yn('%s. Continue without verification?' % issue):
            raise InstallAborted()
        extra = SLOW_INSTALL_EXTRA / max(len(selected), 1) if 'slow-install' in self.faults else 0
        for name in selected:
            data = payloads.get(name)
            if data is None:
                data = fetch(base + '/' + name)
            if 'installer-hang' in self.faults:
                self.out('Installing %-13s 37%% |***********                    |' % name[:13])
                self.block()
            self.pause(SET_PAUSE + extra)
            ok = data is not None
            if ok:
                self.line(_meter('Installing', name, len(data)))
                if name.endswith('.tgz'):
                    ok = self.extract(name, data)
            if not ok:
                if not self.ask_yn('Installation of %s failed. Continue anyway?' % name):
                    raise InstallAborted()
            else:
                self.sets_installed.append(name)
                if name in self.default_sets:
                    self.default_sets.remove(name)

    def extract(self, name, data):
        """tar -zxphf - -C /mnt (and etc.tgz/xetc.tgz out of (x)base on install)."""
        members = self._members(data)
        if members is None:
            self.line('gzip: stdin: not in gzip format' if not data.startswith(b'\x1f\x8b') else 'tar: Unexpected EOF')
            return False
        for member, (content, mode) in members.items():
            self.files[member] = {'set': name, 'mode': mode, 'content': content}
        if re.match(r'^x?base[0-9]+\.tgz$', name):
            inner_name = './var/sysmerge/%setc.tgz' % ('x' if name.startswith('x') else '')
            inner = members.get(inner_name) or members.get(inner_name[2:])
            inner_members = self._members(inner[0]) if inner and inner[0] is not None else None
            if inner_members is None:
                self.line('ftp: Error retrieving file: 404 Not Found')
                return False
            self.line(_meter('Extracting', os.path.basename(inner_name), len(inner[0])))
            for member, (content, mode) in inner_members.items():
                self.files[member] = {'set': name, 'mode': mode, 'content': content}
        return True

    @staticmethod
    def _members(data):
        try:
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
                found = {}
                for info in tar.getmembers():
                    name = info.name if info.name.startswith('./') else './' + info.name.lstrip('/')
                    content = tar.extractfile(info).read() if info.isfile() else None
                    found[name] = (content, info.mode)
                return found
        except (OSError, EOFError, tarfile.TarError, ValueError):
            return None

    def select_sets(self, available, selected):
        selected = list(selected)
        self.line()
        self.line("Select sets by entering a set name, a file name pattern or 'all'. De-select")
        self.line("sets by prepending a '-', e.g.: '-game*'. Selected sets are labelled '[X]'.")
        while True:
            cells = ['[%s] %s' % ('X' if f in selected else ' ', f) for f in available]
            for i in range(0, len(cells), 4):
                self.line('    ' + ''.join('%-19s' % c for c in cells[i:i + 4]).rstrip())
            resp = self.ask("Set name(s)? (or 'abort' or 'done')", 'done')
            for token in resp.split():
                if token == 'abort':
                    return []
                if token == 'done':
                    return selected
                remove = token.startswith('-')
                pattern = token[1:] if token[:1] in '+-' else token
                if pattern == 'all':
                    pattern = '*'
                for name in available:
                    if fnmatch.fnmatchcase(name, pattern):
                        if remove and name in selected:
                            selected.remove(name)
                        elif not remove and name not in selected:
                            selected.append(name)

    # -- after the sets ----------------------------------------------------------
    def set_timezone(self):
        zones = _zone_list() if 'base%s.tgz' % self.version in self.sets_installed else set()
        while True:
            resp = self.ask("What timezone are you in? ('?' for list)", '')
            zone = resp.rstrip('/')
            if not zone:
                continue
            if zone == '?':
                continue
            while zone + '/' in zones:
                sub = self.ask("What sub-timezone of '%s' are you in? ('?' for list)" % zone, '').rstrip('/')
                if sub and sub != '?':
                    zone = '%s/%s' % (zone, sub)
            if zone in zones:
                self.state['timezone'] = zone
                return
            self.line("'%s' is not a valid timezone on this system." % zone)

    def finish_up(self):
        self.out('Making all device nodes...')
        self.pause()
        self.line(' done.')
        site = self.files.get('./install.site')
        site_state = {'present': site is not None, 'executable': bool(site and site['mode'] & 0o111),
                      'ran': False, 'failed': False}
        if site_state['executable']:
            site_state['ran'] = True
            text = (site['content'] or b'').decode('latin-1')
            site_state['failed'] = bool(re.search(r'^\s*exit\s+0*[1-9][0-9]*\s*(#.*)?$', text, re.M))
            if not site_state['failed']:
                # run for real in the new system at the guest's first boot (labsim.guestnet._run_install_site)
                self.state['install_site_script'] = text
        self.state['install_site'] = site_state
        if site_state['failed']:
            self.write_record(completed=False)
            raise InstallAborted('install.site failed')
        self.write_record(completed=True)
        self.line()
        self.line(CONGRATULATIONS)
        self.line()
        self.line('When you login to your new system the first time, please read your mail')
        self.line("using the 'mail' command.")
        self.line()

    def root_authorized_keys(self):
        """/root/.ssh/authorized_keys of the new system: what the sets put there, then the root key the installer
        appends (autoinstall-facts.md section 5, install.sub: 'Public ssh key for root account' is appended to the
        file). install.site runs later, at the guest's first boot (labsim.guestnet._run_install_site)."""
        entry = self.files.get('./root/.ssh/authorized_keys')
        text = (entry['content'] or b'').decode('utf-8', 'replace') if entry else ''
        if self.state.get('root_ssh_key'):
            text += self.state['root_ssh_key'] + '\n'
        return text

    def write_record(self, completed):
        site_files = sorted(path for path, info in self.files.items() if info['set'].startswith('site'))
        record = {
            'magic': 'lab-openbsd-install', 'version': 1, 'completed': completed,
            'completed_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'vm_name': self.ctx.get('name'), 'hostname': self.hostname, 'release': self.release, 'arch': self.arch,
            'sets': list(self.sets_installed), 'kernel': '/bsd' if 'bsd' in self.sets_installed else None,
            'root_password_hash': self.state['root_password_hash'], 'root_ssh_key': self.state['root_ssh_key'],
            'users': self.state['users'], 'timezone': self.state.get('timezone'),
            'sshd': self.state['sshd'], 'permit_root_login': self.state['permit_root_login'],
            'console': {'com0': self.state['console_com0'], 'speed': self.state['console_speed']},
            'domain': self.state.get('domain'), 'nameservers': self.state.get('nameservers'),
            'nameservers_from_dhcp': bool(self.state.get('nameservers_from_dhcp')),
            'network': {'hostname_if': self.net['hostname_if'], 'mygate': self.net['mygate'],
                        'hosts': self.net['hosts']},
            'root_disk': self.state['root_disk'], 'encrypted': self.state.get('encrypted'),
            'duid': self.duid,
            'disklabel': {disk: [{k: p[k] for k in ('letter', 'mount', 'fstype', 'size', 'offset')} for p in parts]
                          for disk, parts in self.layouts.items()},
            'disklabel_template': self.state.get('disklabel_template'),
            'site_files': site_files, 'install_site': self.state['install_site'],
            **({'install_site_script': self.state['install_site_script']} if 'install_site_script' in self.state else {}),
            'root_authorized_keys': self.root_authorized_keys(),
            'installurl': self.state.get('installurl'),
            'response_file': {'url': self.response_url, 'sha256': self.response_sha256},
            'install_resp': list(self.resp_log),
        }
        path, _virtual = self._image_of(self.state['root_disk'])
        write_install_record(path, record)

    # -- the whole boot ------------------------------------------------------------
    def ramdisk_dmesg(self):
        memory = self.ctx.get('memory') or DEFAULT_MEMORY
        lines = [
            'Copyright (c) 1982, 1986, 1989, 1991, 1993',
            '\tThe Regents of the University of California.  All rights reserved.',
            'Copyright (c) 1995-2025 OpenBSD. All rights reserved.  https://www.OpenBSD.org',
            '',
            'OpenBSD %s (RAMDISK_CD) #1: Sun Oct  5 12:00:00 MDT 2025' % self.release,
            '    deraadt@%s.openbsd.org:/usr/src/sys/arch/%s/compile/RAMDISK_CD' % (self.arch, self.arch),
            'real mem = %d (%dMB)' % (memory, memory // MB),
            'avail mem = %d (%dMB)' % (memory - 20 * MB, memory // MB - 20),
            'mainbus0 at root',
            'bios0 at mainbus0',
            'cpu0 at mainbus0: apid 0 (boot processor)',
            'pvbus0 at mainbus0: OpenBSD',
            'pci0 at mainbus0 bus 0',
            'virtio0 at pci0 dev 1 function 0 "Qumranet Virtio RNG" rev 0x00',
        ]
        dev = 1
        for index, spec in enumerate(self.ctx.get('interfaces') or []):
            lines.append('virtio%d at pci0 dev %d function 0 "Qumranet Virtio Network" rev 0x00' % (dev, dev + 1))
            lines.append('vio%d at virtio%d: address %s' % (index, dev, _lower(spec['mac'])))
            dev += 1
        for index, name in enumerate(sorted(self.disks, key=lambda d: int(d[2:]))):
            size = self.disks[name]['size']
            lines += ['virtio%d at pci0 dev %d function 0 "Qumranet Virtio Storage" rev 0x00' % (dev, dev + 1),
                      'vioblk%d at virtio%d' % (index, dev),
                      'scsibus%d at vioblk%d: 1 targets' % (index + 1, index),
                      '%s at scsibus%d targ 0 lun 0: <VirtIO, Block Device, >' % (name, index + 1),
                      '%s: %dMB, 512 bytes/sector, %d sectors' % (name, size // MB, size // SECTOR)]
            dev += 1
        lines += ['isa0 at mainbus0', 'com0 at isa0 port 0x3f8/8 irq 4: ns8250, no fifo', 'com0: console',
                  'softraid0 at root', 'scsibus%d at softraid0: 256 targets' % (len(self.disks) + 1),
                  'root on rd0a swap on rd0b dump on rd0b']
        for text in lines:
            self.line(text)

    def run(self):
        self.ramdisk_dmesg()
        self.pause()
        self.line('erase ^?, werase ^W, kill ^U, intr ^C, status ^T')
        self.line()
        self.line('Welcome to the OpenBSD/%s %s installation program.' % (self.arch, self.release))
        netbooted = self.ctx.get('boot_device') == 'net' and bool(self.interfaces)
        if netbooted:
            self.line('Starting non-interactive mode in 5 seconds...')
        self.out(PROFILE_PROMPT)
        if not netbooted:
            self.block()
        # Nobody pressed a key: the timer expires (without the real 5 s wait).
        self.line()
        found = self.get_responsefile()
        if found is None:
            self.line('No response file found; non-interactive mode aborted.')
            self.out(PROFILE_PROMPT)
            return 'prompt'
        mode, data = found
        self.response_sha256 = hashlib.sha256(data).hexdigest()
        self.rf = ResponseFile(data)
        self.line('Performing non-interactive %s...' % mode)
        try:
            self.do_install()
        except InstallAborted as exc:
            if exc.message is not None:
                self.line(exc.message)
            self.line(AI_FAILED)
            self.out(PROFILE_PROMPT)
            return 'prompt'
        # exec reboot; the VM process (labsim.guest) prints `rebooting...` as it exits.
        self.pause()
        self.line('syncing disks... done')
        return 'reboot'


def run(ctx):
    """Run the simulated installer; 'reboot' on success, 'prompt' on failure.

    Never returns when the installer waits for console input or hangs
    (installer-hang), unless ctx['stop_event'] (a threading.Event, used by
    tests) is set: then it returns 'stopped'.
    """
    try:
        return _Installer(ctx).run()
    except _Stopped:
        return 'stopped'


# ---------------------------------------------------------------------------
# booting the installed disk

def boot_installed(ctx):
    """What the BIOS and the installed system print; True if it reached `login: `."""
    console = ctx['console']

    def line(text=''):
        console.write(text + '\n')
        console.flush()

    disks = ctx.get('disks') or []
    line('SeaBIOS (version 1.16.3p0-OpenBSD-vmm)')
    line('Booting from Hard Disk...')
    path = disks[0]['path'] if disks else None
    state = _mbr_state(path) if path else 'none'
    if state == 'none':
        line('Boot failed: not a bootable disk')
        line()
        line('No bootable device.')
        return False
    if not _active_partition(path):
        line('No active partition')
        return False
    record = read_install_record(path)
    if not record or not record.get('kernel'):
        line('Using drive 0, partition 3.')
        line('Loading...')
        line('ERR M')
        return False
    memory = ctx.get('memory') or DEFAULT_MEMORY
    hostname = record.get('hostname') or 'openbsd'
    for text in [
            'Using drive 0, partition 3.',
            'Loading......',
            'probing: pc0 com0 mem[638K %dM a20=on]' % (memory // MB - 2),
            'disk: hd0+',
            '>> OpenBSD/%s BOOT 3.67' % record.get('arch', 'amd64'),
            'switching console to com0',
            '>> OpenBSD/%s BOOT 3.67' % record.get('arch', 'amd64'),
            'boot> ',
            'booting hd0a:/bsd: 1234567+2345678+345678+0+1234567 [123456+128+987654+654321]=0x2a0000',
            'entry point at 0xffffffff81001000',
            'Copyright (c) 1982, 1986, 1989, 1991, 1993',
            '\tThe Regents of the University of California.  All rights reserved.',
            'Copyright (c) 1995-2025 OpenBSD. All rights reserved.  https://www.OpenBSD.org',
            '',
            'OpenBSD %s (GENERIC) #1: Sun Oct  5 12:00:00 MDT 2025' % record.get('release'),
            'real mem = %d (%dMB)' % (memory, memory // MB),
            'root on sd0a (%s.a) swap on sd0b dump on sd0b' % record.get('duid', '0' * 16),
            'Automatic boot in progress: starting file system checks.',
            'setting tty flags',
            'starting network',
            'reordering: ld.so libc libcrypto sshd.',
            'starting early daemons: syslogd pflogd ntpd.',
            'starting RPC daemons:.',
            'savecore: no core dump',
            'checking quotas: done.',
            'clearing /tmp',
            'kern.securelevel: 0 -> 1',
            'creating runtime link editor directory cache.',
            'preserving editor files.',
            'starting network daemons: %s.' % ('sshd smtpd sndiod' if record.get('sshd') else 'smtpd sndiod'),
            'running rc.firsttime',
            'starting local daemons: cron.',
            time.strftime('%a %b %e %H:%M:%S UTC %Y', time.gmtime()),
            '',
            'OpenBSD/%s (%s) (tty00)' % (record.get('arch', 'amd64'), hostname),
            '']:
        line(text)
    console.write('login: ')
    console.flush()
    return True
