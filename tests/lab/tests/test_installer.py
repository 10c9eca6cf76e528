"""The simulated installer end to end: installer.run(ctx) against the lab host's install server.

Each test publishes a response file (and sets, templates, site sets) in a fresh
docroot served by the lab's httpd (listening on 127.0.0.1, pf redirecting the VMs'
port 80 there, as the collection's roles set a host up), runs the installer like a VM booted with
`-b bsd.rd -B net` would, and checks the transcript, the return value, the
URLs fetched and the install record written into the disk image, against
autoinstall-facts.md and installer-questions.txt.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import httpd, installer, mirror  # noqa: E402  pylint: disable=wrong-import-position
from labsim.basetools import httpd as lab_httpd, pfctl  # noqa: E402  pylint: disable=wrong-import-position

GIB = 1 << 30
MAC = 'fe:e1:bb:d1:12:34'
VM_ID = 3
HOST = '100.64.3.2'
BCRYPT = '$2b$10$' + 'Zq7fU2dJ0hW3kL9pR5tY1O' + 'eXmB8cV4nA6sD2fG0hJ7kL3pQ9rT5uW'
ROOT_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdCBhIHJlYWwga2V5IGF0IGFsbA== admin@controller'
PACING = (installer.STEP_PAUSE, installer.SET_PAUSE)
FAILED = ['failed; check /tmp/ai/ai.log', '(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? ']

BASE_CONF = """\
System hostname = web1
Password for root account = %s
Public ssh key for root account = %s
Start sshd(8) by default = yes
Allow root ssh login = prohibit-password
Setup a user = no
What timezone are you in = UTC
Which disk is the root disk = sd0
Use (W)hole disk = whole
Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout = a
Location of sets = http
HTTP proxy URL = none
HTTP Server = http://%s
Server directory = pub/OpenBSD/7.8/amd64
Set name(s) = -game* -x* +site*
Continue without verification = yes
""" % (BCRYPT, ROOT_KEY, HOST)


class Lab:
    """A docroot with a mirror, served over HTTP, and helpers to run the installer."""

    def __init__(self, root, docroot):
        self.root = root
        self.docroot = docroot
        self.setdir = mirror.make_mirror(os.path.join(docroot, 'pub', 'OpenBSD'), '7.8', 'amd64')
        self.log = os.path.join(root, 'var', 'log', 'httpd.log')

    def publish(self, name, data):
        path = os.path.join(self.docroot, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        return path

    def disk(self, name='sd0.img', size=10 * GIB):
        path = os.path.join(self.root, name)
        with open(path, 'wb') as handle:
            handle.truncate(size)
        return path

    def ctx(self, name='web1', disks=None, faults=(), local=True, boot_device='net', interfaces=None):
        disks = disks if disks is not None else [self.disk()]
        return {
            'lab_root': self.root, 'name': name, 'vm_id': VM_ID,
            'interfaces': interfaces or [{'mac': MAC, 'local': local, 'switch': None, 'tap': 'tap0'}],
            'disks': [{'path': path, 'format': 'raw'} for path in disks],
            'kernel': os.path.join(self.setdir, 'bsd.rd'), 'boot_device': boot_device,
            'console': io.StringIO(), 'faults': set(faults),
        }

    def install(self, conf=BASE_CONF, **kwargs):
        if conf is not None:
            self.publish('install.conf', conf)
        ctx = self.ctx(**kwargs)
        result = installer.run(ctx)
        return result, ctx['console'].getvalue(), ctx

    def urls(self):
        return httpd.requested_urls(self.log)


@pytest.fixture(name='lab')
def lab_fixture(tmp_path, monkeypatch):
    root = str(tmp_path / 'lab')
    monkeypatch.setenv('VMM_LAB_ROOT', root)
    # No pacing of the transcript in behaviour tests (test_install_pacing checks it).
    monkeypatch.setattr(installer, 'STEP_PAUSE', 0)
    monkeypatch.setattr(installer, 'SET_PAUSE', 0)
    docroot = os.path.join(root, 'var', 'www', 'htdocs')
    os.makedirs(docroot)
    yield from serving_host(root)


HTTPD_CONF = 'chroot "%s/var/www"\nserver "install" {\n\tlisten on 127.0.0.1 port 80\n\troot "/htdocs"\n}\n'
PF_CONF = ('anchor "openbsd-vmm"\nload anchor "openbsd-vmm" from "%s/etc/pf.openbsd-vmm.conf"\n',
           'pass in quick on tap inet proto tcp from 100.64.0.0/10 to 100.64.0.0/10 port 80 rdr-to 127.0.0.1 port 80\n')


def serving_host(root, rdr=True):
    """A host made ready as the roles do: httpd on 127.0.0.1 (in this process), pf's rdr-to loaded."""
    os.makedirs(os.path.join(root, 'etc'), exist_ok=True)
    with open(os.path.join(root, 'etc', 'httpd.conf'), 'w', encoding='ascii') as handle:
        handle.write(HTTPD_CONF % root)
    with open(os.path.join(root, 'etc', 'pf.openbsd-vmm.conf'), 'w', encoding='ascii') as handle:
        handle.write(PF_CONF[1] if rdr else '')
    with open(os.path.join(root, 'etc', 'pf.conf'), 'w', encoding='ascii') as handle:
        handle.write(PF_CONF[0] % root)
    assert pfctl.main(['-f', os.path.join(root, 'etc', 'pf.conf')]) == 0 and pfctl.main(['-e']) == 0
    daemon = lab_httpd.serve_in_process(os.path.join(root, 'etc', 'httpd.conf'))
    yield Lab(root, os.path.join(root, 'var', 'www', 'htdocs'))
    daemon.close()


def assert_in_order(text, expected):
    """Each expected line appears in text, in this order."""
    lines = text.split('\n')
    position = 0
    for wanted in expected:
        for index in range(position, len(lines)):
            if lines[index] == wanted:
                position = index + 1
                break
        else:
            raise AssertionError('%r not found (in order) in:\n%s' % (wanted, text))


def record_of(ctx, disk=0):
    return installer.read_install_record(ctx['disks'][disk]['path'])


def conf_with(replace=None, drop=(), add=''):
    lines = []
    for line in BASE_CONF.splitlines():
        key = line.split(' = ', 1)[0]
        if key in drop:
            continue
        if replace and key in replace:
            line = '%s = %s' % (key, replace[key])
        lines.append(line)
    return '\n'.join(lines) + '\n' + add


def run_in_thread(ctx):
    ctx['stop_event'] = threading.Event()
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault('result', installer.run(ctx)), daemon=True)
    thread.start()
    return thread, outcome


def wait_for_console(ctx, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in ctx['console'].getvalue():
            return
        time.sleep(0.02)
    raise AssertionError('%r never appeared on the console:\n%s' % (text, ctx['console'].getvalue()))


# --- a successful install over DHCP ------------------------------------------------

def test_install_pacing(lab, monkeypatch):
    monkeypatch.setattr(installer, 'STEP_PAUSE', PACING[0])
    monkeypatch.setattr(installer, 'SET_PAUSE', PACING[1])
    started = time.monotonic()
    result, _console, _ctx = lab.install()
    elapsed = time.monotonic() - started
    assert result == 'reboot'
    # The pauses add up to a floor; how fast it runs is not a test's business.
    assert elapsed >= 0.3


def test_dhcp_install(lab):
    result, console, ctx = lab.install()
    assert result == 'reboot'
    assert_in_order(console, [
        'Welcome to the OpenBSD/amd64 7.8 installation program.',
        'Starting non-interactive mode in 5 seconds...',
        '(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? ',
        'Fetching http://%s/%s-install.conf?path=7.8/amd64' % (HOST, MAC),
        'Fetching http://%s/web1-install.conf?path=7.8/amd64' % HOST,
        'Fetching http://%s/install.conf?path=7.8/amd64' % HOST,
        'Performing non-interactive install...',
        'Terminal type? [vt220] vt220',
        "System hostname? (short form, e.g. 'foo') [web1] web1",
        'Available network interfaces are: vio0 vlan0.',
        "Network interface to configure? (name, lladdr, '?', or 'done') [vio0] vio0",
        "IPv4 address for vio0? (or 'autoconf' or 'none') [autoconf] autoconf",
        "IPv6 address for vio0? (or 'autoconf' or 'none') [autoconf] autoconf",
        "Network interface to configure? (name, lladdr, '?', or 'done') [done] done",
        'Using DNS domainname my.domain',
        'Using DNS nameservers at %s' % HOST,
        'Password for root account? <provided>',
        'Public ssh key for root account? [none] ' + ROOT_KEY,
        'Start sshd(8) by default? [yes] yes',
        'Change the default console to com0? [yes] yes',
        'Available speeds are: 9600 19200 38400 57600 115200.',
        "Which speed should com0 use? (or 'done') [115200] 115200",
        "Setup a user? (enter a lower-case loginname, or 'no') [no] no",
        'Since no user was setup, root logins via sshd(8) might be useful.',
        'WARNING: root is targeted by password guessing attacks, pubkeys are safer.',
        'Allow root ssh login? (yes, no, prohibit-password) [no] prohibit-password',
        'Available disks are: sd0.',
        "Which disk is the root disk? ('?' for details) [sd0] sd0",
        'Encrypt the root disk with a (p)assphrase or (k)eydisk? [no] no',
        'No valid MBR or GPT.',
        'Use (W)hole disk MBR, whole disk (G)PT or (E)dit? [whole] whole',
        'Setting OpenBSD MBR partition to whole sd0...done.',
        'URL to autopartitioning template for disklabel? [none] none',
        'The auto-allocated layout for sd0 is:',
        'Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout? [a] a',
        "Let's install the sets!",
        "Location of sets? (disk http nfs or 'done') [http] http",
        "HTTP proxy URL? (e.g. 'http://proxy:8080', or 'none') [none] none",
        '(Unable to get list from openbsd.org, but that is OK)',
        "HTTP Server? (hostname or 'done') http://%s" % HOST,
        'Server directory? [pub/OpenBSD/7.8/amd64] pub/OpenBSD/7.8/amd64',
        "Set name(s)? (or 'abort' or 'done') [done] -game* -x* +site*",
        "Set name(s)? (or 'abort' or 'done') [done] done",
        'Signature Verified',
        "Location of sets? (disk http nfs or 'done') [done] done",
        "What timezone are you in? ('?' for list) UTC",
        'Saving configuration files... done.',
        'Making all device nodes... done.',
        'CONGRATULATIONS! Your OpenBSD install has been successfully completed!',
    ])
    assert 'Question has no answer' not in console
    assert 'failed' not in console
    # bsd.mp is never offered to a one-CPU vmd guest.
    assert 'bsd.mp' not in console
    installed = [line.split()[1] for line in console.splitlines() if line.startswith('Installing ')]
    assert installed == ['bsd', 'bsd.rd', 'base78.tgz', 'comp78.tgz', 'man78.tgz', 'BUILDINFO']
    assert lab.urls()[:3] == ['/%s-install.conf?path=7.8/amd64' % MAC, '/web1-install.conf?path=7.8/amd64',
                              '/install.conf?path=7.8/amd64']
    assert '/pub/OpenBSD/7.8/amd64/game78.tgz' not in lab.urls()

    record = record_of(ctx)
    assert record['completed'] is True
    assert record['hostname'] == 'web1.my.domain'
    assert record['release'] == '7.8' and record['arch'] == 'amd64'
    assert record['sets'] == installed
    assert record['root_password_hash'] == BCRYPT
    assert record['root_ssh_key'] == ROOT_KEY
    assert record['timezone'] == 'UTC'
    assert record['permit_root_login'] == 'prohibit-password'
    assert record['users'] == []
    assert record['network']['hostname_if'] == {'vio0': ['inet autoconf', 'inet6 autoconf']}
    assert record['nameservers'] == [HOST]
    assert record['root_disk'] == 'sd0'
    assert [p['mount'] for p in record['disklabel']['sd0']][:3] == ['/', None, '/tmp']
    assert record['response_file']['url'] == 'http://%s/install.conf?path=7.8/amd64' % HOST
    with open(os.path.join(lab.docroot, 'install.conf'), 'rb') as handle:
        import hashlib  # pylint: disable=import-outside-toplevel
        assert record['response_file']['sha256'] == hashlib.sha256(handle.read()).hexdigest()
    assert 'System hostname = web1' in record['install_resp']
    assert "Which disk is the root disk = sd0" in record['install_resp']
    assert not any(line.startswith('Password') for line in record['install_resp'])
    assert record['installurl'] == 'http://%s/pub/OpenBSD' % HOST
    assert console.endswith('using the \'mail\' command.\n\nsyncing disks... done\n')


def test_installed_disk_boots_to_login(lab):
    result, _console, ctx = lab.install()
    assert result == 'reboot'
    ctx['console'] = io.StringIO()
    assert installer.boot_installed(ctx) is True
    text = ctx['console'].getvalue()
    assert 'OpenBSD/amd64 (web1.my.domain) (tty00)' in text
    assert text.endswith('login: ')


def test_blank_disk_does_not_boot(lab):
    ctx = lab.ctx()
    assert installer.boot_installed(ctx) is False
    assert 'Boot failed: not a bootable disk' in ctx['console'].getvalue()
    assert installer.read_install_record(ctx['disks'][0]['path']) is None


def test_record_travels_with_copies_and_overlays(lab):
    from labsim import images  # pylint: disable=import-outside-toplevel
    base = os.path.join(lab.root, 'base.qcow2')
    assert images.vmctl_create(['-s', '10G', base]) == 0
    result, _console, ctx = lab.install(disks=[base])
    assert result == 'reboot'
    copy = os.path.join(lab.root, 'copy.qcow2')
    shutil.copyfile(base, copy)
    assert installer.read_install_record(copy) == record_of(ctx)
    overlay = os.path.join(lab.root, 'overlay.qcow2')
    assert images.vmctl_create(['-b', base, overlay]) == 0
    assert installer.read_install_record(overlay) == record_of(ctx)
    boot_ctx = lab.ctx(disks=[overlay])
    assert installer.boot_installed(boot_ctx) is True
    # A new install on the overlay replaces what the guest sees there, not the base.
    lab.publish('install.conf', conf_with({'System hostname': 'web2'}))
    ctx2 = lab.ctx(name='web2', disks=[overlay])
    assert installer.run(ctx2) == 'reboot'
    assert 'Use (W)hole disk MBR, whole disk (G)PT, (O)penBSD area or (E)dit? [OpenBSD] whole' in ctx2['console'].getvalue()
    assert installer.read_install_record(overlay)['hostname'] == 'web2.my.domain'
    assert installer.read_install_record(base)['hostname'] == 'web1.my.domain'
    for image in (base, overlay):
        check = subprocess.run(['qemu-img', 'check', '-q', '-f', 'qcow2', image], capture_output=True, check=False)
        assert check.returncode == 0, check.stderr


def test_failed_reinstall_leaves_no_bootable_system(lab):
    result, _console, ctx = lab.install()
    assert result == 'reboot'
    disk = ctx['disks'][0]['path']
    result, console, ctx = lab.install(conf_with(drop=('What timezone are you in',)), disks=[disk])
    assert result == 'prompt'
    assert console.endswith('\n'.join(FAILED))
    # The disk was labelled and newfs'ed before the abort: the old system is gone.
    assert installer.read_install_record(disk) is None
    assert installer.boot_installed(ctx) is False


def test_interface_by_lladdr_and_question_mark(lab):
    conf = conf_with(add='Network interface to configure = ?\nNetwork interface to configure = %s\n' % MAC.upper())
    result, console, _ctx = lab.install(conf)
    assert result == 'prompt'
    # '?' lists the lladdrs; install.sub compares the answer verbatim (lower-case lladdr as ifconfig prints it).
    assert_in_order(console, ["Network interface to configure? (name, lladdr, '?', or 'done') [vio0] ?",
                              'Available network interfaces are: vio0 vlan0.', '    vio0: lladdr %s' % MAC,
                              "Network interface to configure? (name, lladdr, '?', or 'done') [vio0] %s" % MAC.upper(),
                              "'%s' is not a valid choice." % MAC.upper()])
    result, console, ctx = lab.install(conf.replace(MAC.upper(), MAC))
    assert result == 'reboot', console
    assert record_of(ctx)['network']['hostname_if'] == {'vio0': ['inet autoconf', 'inet6 autoconf']}


def test_utf8_full_name_is_kept(lab):
    users = 'Setup a user = jose\nFull name for user jose = Jos\u00e9 Garc\u00eda\nPassword for user jose = %s\n' % BCRYPT
    result, console, ctx = lab.install(conf_with(drop=('Setup a user',), add=users))
    assert result == 'reboot', console
    assert record_of(ctx)['users'][0]['full_name'] == 'Jos\u00e9 Garc\u00eda'


def test_passphrase_encryption_configures_the_chunk_then_the_volume(lab):
    conf = conf_with(add='Encrypt the root disk = p\nNew passphrase = correct horse battery\n')
    result, console, ctx = lab.install(conf)
    assert result == 'reboot', console
    assert_in_order(console, ['Encrypt the root disk with a (p)assphrase or (k)eydisk? [no] p',
                              'New passphrase? <provided>',
                              '', 'Configuring the crypto chunk sd0...', '',
                              'Use (W)hole disk MBR, whole disk (G)PT or (E)dit? [whole] whole',
                              '', 'Configuring the root disk sd1...', '',
                              'Use (W)hole disk MBR, whole disk (G)PT or (E)dit? [whole] whole',
                              'Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout? [a] a',
                              '/dev/sd1a (%s.a) on /mnt type ffs (rw, asynchronous, local)' % record_of(ctx)['duid']])
    assert 'correct horse' not in console
    assert record_of(ctx)['encrypted'] == 'passphrase'


def test_passphrase_is_mandatory_after_p(lab):
    result, console, _ctx = lab.install(conf_with(add='Encrypt the root disk = p\n'))
    assert result == 'prompt'
    assert console.endswith('New passphrase? \nQuestion has no answer in response file: "new passphrase?"\n' + '\n'.join(FAILED))


# --- static network configuration ------------------------------------------------------

STATIC = """\
Network interface to configure = vio0
IPv4 address for vio0 = 192.0.2.10
Netmask for vio0 = 255.255.255.0
IPv6 address for vio0 = 2001:db8::10
IPv6 prefix length for vio0 = 64
Network interface to configure = done
Default IPv4 route = 192.0.2.1
IPv6 default router = 2001:db8::1
DNS domain name = example.com
DNS nameservers = 192.0.2.53 2001:db8::53
"""


def test_static_ipv4_and_ipv6(lab):
    result, console, ctx = lab.install(BASE_CONF + STATIC)
    assert result == 'reboot', console
    assert_in_order(console, [
        "IPv4 address for vio0? (or 'autoconf' or 'none') [autoconf] 192.0.2.10",
        'Netmask for vio0? [255.255.255.0] 255.255.255.0',
        "IPv6 address for vio0? (or 'autoconf' or 'none') [autoconf] 2001:db8::10",
        'IPv6 prefix length for vio0? [64] 64',
        "Network interface to configure? (name, lladdr, '?', or 'done') [done] done",
        "Default IPv4 route? (IPv4 address or 'none') 192.0.2.1",
        'IPv6 default router? 2001:db8::1',
        "DNS domain name? (e.g. 'example.com') [my.domain] example.com",
        "DNS nameservers? (IP address list or 'none') [none] 192.0.2.53 2001:db8::53",
    ])
    record = record_of(ctx)
    assert record['hostname'] == 'web1.example.com'
    assert record['network']['hostname_if'] == {'vio0': ['inet 192.0.2.10 255.255.255.0', 'inet6 2001:db8::10 64']}
    assert record['network']['mygate'] == ['192.0.2.1', '2001:db8::1']
    assert record['nameservers'] == ['192.0.2.53', '2001:db8::53']
    # The IPv6 router question has no log entry in install.resp (answered via _autorespond only).
    assert 'Default IPv4 route = 192.0.2.1' in record['install_resp']
    assert not any(line.startswith('IPv6 default router') for line in record['install_resp'])


def test_static_cidr_notation_skips_netmask_and_prefix_questions(lab):
    conf = STATIC.replace('192.0.2.10\n', '192.0.2.10/24\n').replace('2001:db8::10\n', '2001:db8::10/48\n')
    result, console, ctx = lab.install(BASE_CONF + conf)
    assert result == 'reboot', console
    assert 'Netmask for vio0?' not in console
    assert 'IPv6 prefix length for vio0?' not in console
    assert record_of(ctx)['network']['hostname_if']['vio0'] == ['inet 192.0.2.10 255.255.255.0', 'inet6 2001:db8::10 48']


def test_static_ipv4_without_default_route_answer_aborts(lab):
    conf = STATIC.replace('Default IPv4 route = 192.0.2.1\n', '')
    result, console, _ctx = lab.install(BASE_CONF + conf)
    assert result == 'prompt'
    assert console.endswith("Default IPv4 route? (IPv4 address or 'none') \n"
                            'Question has no answer in response file: "default ipv4 route? (ipv4 address or \'none\')"\n'
                            + '\n'.join(FAILED))


def test_unreachable_default_route_is_refused(lab):
    conf = STATIC.replace('Default IPv4 route = 192.0.2.1', 'Default IPv4 route = 198.51.100.1')
    result, console, _ctx = lab.install(BASE_CONF + conf)
    assert result == 'prompt'
    assert 'add host default: gateway 198.51.100.1: Network is unreachable' in console
    assert 'Question has no answer in response file: "default ipv4 route? (ipv4 address or \'none\')"' in console


def test_bad_ipv4_address_aborts(lab):
    result, console, _ctx = lab.install(BASE_CONF + STATIC.replace('192.0.2.10', '192.0.2.300'))
    assert result == 'prompt'
    assert console.endswith('ifconfig: 192.0.2.300: bad value\n' + '\n'.join(FAILED))


# --- disklabel templates ------------------------------------------------------------------

TEMPLATE_KEY = 'URL to autopartitioning template for disklabel = http://%s/disklabel.web1\n' % HOST


def test_custom_disklabel_template(lab):
    lab.publish('disklabel.web1', '/\t\t2G\nswap\t\t512M\n/var\t\t1G-2G\t10%\n/home\t\t1G-*\t90%\n')
    result, console, ctx = lab.install(BASE_CONF + TEMPLATE_KEY)
    assert result == 'reboot', console
    assert_in_order(console, [
        'URL to autopartitioning template for disklabel? [none] http://%s/disklabel.web1' % HOST,
        'Fetching http://%s/disklabel.web1' % HOST,
    ])
    assert 'The auto-allocated layout' not in console
    assert 'Use (A)uto layout' not in console
    parts = record_of(ctx)['disklabel']['sd0']
    assert [(p['letter'], p['mount'], p['fstype']) for p in parts] == [
        ('a', '/', '4.2BSD'), ('b', None, 'swap'), ('d', '/var', '4.2BSD'), ('e', '/home', '4.2BSD')]
    assert parts[0]['size'] == 2 * GIB and parts[1]['size'] == 512 << 20
    assert GIB <= parts[2]['size'] <= 2 * GIB
    assert parts[3]['offset'] + parts[3]['size'] <= 10 * GIB
    assert '/pub/OpenBSD/7.8/amd64/SHA256.sig' in lab.urls()
    assert '/disklabel.web1' in lab.urls()


@pytest.mark.parametrize('template', ['/ 2G\nswap lots\n', 'home 2G\n', '/ 2G 10\n', '/ 20G\n', '/ 8G\n/var 4G\n'])
def test_bad_disklabel_template(lab, template):
    lab.publish('disklabel.web1', template)
    result, console, ctx = lab.install(BASE_CONF + TEMPLATE_KEY)
    assert result == 'prompt'
    assert console.endswith('Fetching http://%s/disklabel.web1\nAutopartitioning failed.\n' % HOST + '\n'.join(FAILED))
    assert record_of(ctx) is None


def test_missing_disklabel_template(lab):
    result, console, _ctx = lab.install(BASE_CONF + TEMPLATE_KEY)
    assert result == 'prompt'
    assert console.endswith('No autopartitioning template found.\n' + '\n'.join(FAILED))


def test_template_without_root_partition(lab):
    lab.publish('disklabel.web1', 'swap 1G\n/home 1G-* 100%\n')
    result, console, _ctx = lab.install(BASE_CONF + TEMPLATE_KEY)
    assert result == 'prompt'
    assert console.endswith("'/' must be configured!\n" + '\n'.join(FAILED))


def test_template_on_unreachable_host(lab):
    result, console, _ctx = lab.install(BASE_CONF + TEMPLATE_KEY.replace(HOST, '192.0.2.99'))
    assert result == 'prompt'
    assert 'No autopartitioning template found.' in console


# --- site sets and install.site ---------------------------------------------------------------

def site_answers(name='site78.tgz'):
    # Site sets are not in the signed SHA256: on a signed mirror with room for the prefetch
    # area, install.sub asks about the checksum first, then about the unverified set.
    return 'Checksum test for %s failed. Continue anyway = yes\n' % name


def _site_set(lab, name, install_site=b'#!/bin/sh\nuseradd -m bob\n', mode=0o755, index=True):
    members = [('./etc/rc.local', b'echo site\n', 0o644), ('./root/.ssh/authorized_keys', b'ssh-ed25519 AAAA x\n', 0o600)]
    if install_site is not None:
        members.append(('./install.site', install_site, mode))
    mirror.make_tgz(os.path.join(lab.setdir, name), members)
    if index:
        mirror.write_index(lab.setdir)


def test_site_set_with_install_site(lab):
    _site_set(lab, 'site78.tgz')
    result, console, ctx = lab.install(BASE_CONF + site_answers())
    assert result == 'reboot', console
    assert '[ ] site78.tgz' in console  # not preselected
    assert '[X] site78.tgz' in console  # selected by +site*
    assert_in_order(console, [
        'Get/Verify site78.tgz   100%% |*******************************|   %3d       00:00    ' % os.path.getsize(
            os.path.join(lab.setdir, 'site78.tgz')),
        'Checksum test for site78.tgz failed. Continue anyway? [no] yes',
        'Unverified sets: site78.tgz. Continue without verification? [no] yes',
        'Installing site78.tgz   100%% |*******************************|   %3d       00:00    ' % os.path.getsize(
            os.path.join(lab.setdir, 'site78.tgz')),
        'CONGRATULATIONS! Your OpenBSD install has been successfully completed!',
    ])
    record = record_of(ctx)
    assert 'site78.tgz' in record['sets']
    assert record['sets'][-2:] == ['site78.tgz', 'BUILDINFO']
    assert record['site_files'] == ['./etc/rc.local', './install.site', './root/.ssh/authorized_keys']
    assert record['install_site'] == {'present': True, 'executable': True, 'ran': True, 'failed': False}
    # the script itself, for the guest's first boot to run in the new system (labsim.guestnet._run_install_site)
    assert record['install_site_script'] == '#!/bin/sh\nuseradd -m bob\n'
    # the site set's file, then the root key the installer appends from the response file
    assert record['root_authorized_keys'] == 'ssh-ed25519 AAAA x\n' + ROOT_KEY + '\n'


def test_site_set_needs_the_checksum_answer(lab):
    _site_set(lab, 'site78.tgz')
    result, console, _ctx = lab.install()
    assert result == 'prompt'
    assert console.endswith('Checksum test for site78.tgz failed. Continue anyway? [no] no\n' + '\n'.join(FAILED))


def test_site_set_needs_the_unverified_answer(lab):
    _site_set(lab, 'site78.tgz')
    result, console, _ctx = lab.install(conf_with(drop=('Continue without verification',), add=site_answers()))
    assert result == 'prompt'
    assert console.endswith('Unverified sets: site78.tgz. Continue without verification? [no] no\n' + '\n'.join(FAILED))


def test_site_set_not_selected_without_plus(lab):
    _site_set(lab, 'site78.tgz')
    result, console, ctx = lab.install(conf_with({'Set name(s)': '-game* -x*'}))
    assert result == 'reboot'
    assert 'Unverified sets' not in console
    assert 'site78.tgz' not in record_of(ctx)['sets']
    assert record_of(ctx)['install_site']['present'] is False


def test_host_specific_site_set_is_preselected(lab):
    _site_set(lab, 'site78-web1.tgz')
    _site_set(lab, 'site78-db1.tgz')
    result, console, ctx = lab.install(conf_with({'Set name(s)': '-game* -x*'}, add=site_answers('site78-web1.tgz')))
    assert result == 'reboot', console
    assert '[X] site78-web1.tgz' in console
    assert 'site78-db1.tgz' not in console  # only the set for this host name is offered
    assert 'Unverified sets: site78-web1.tgz. Continue without verification? [no] yes' in console
    assert 'site78-web1.tgz' in record_of(ctx)['sets']


def test_site_set_missing_from_index_is_not_offered(lab):
    _site_set(lab, 'site78.tgz', index=False)
    result, console, ctx = lab.install()
    assert result == 'reboot'
    assert 'site78.tgz' not in console
    assert record_of(ctx)['install_site']['present'] is False


def test_failing_install_site(lab):
    _site_set(lab, 'site78.tgz', install_site=b'#!/bin/sh\nfalse || \\\n  echo no\nexit 1\n')
    result, console, ctx = lab.install(BASE_CONF + site_answers())
    assert result == 'prompt'
    assert console.endswith('Making all device nodes... done.\ninstall.site failed\n' + '\n'.join(FAILED))
    assert 'CONGRATULATIONS' not in console
    record = record_of(ctx)
    assert record['completed'] is False
    assert record['install_site'] == {'present': True, 'executable': True, 'ran': True, 'failed': True}
    assert 'install_site_script' not in record, 'a failed install leaves no system to run it in'


def test_install_site_that_is_not_executable_is_not_run(lab):
    _site_set(lab, 'site78.tgz', install_site=b'#!/bin/sh\nexit 1\n', mode=0o644)
    result, _console, ctx = lab.install(BASE_CONF + site_answers())
    assert result == 'reboot'
    assert record_of(ctx)['install_site'] == {'present': True, 'executable': False, 'ran': False, 'failed': False}


# --- users ----------------------------------------------------------------------------------------

USERS = """\
Setup a user = alice
Full name for user alice = Alice Example
Password for user alice = %s
Public ssh key for user alice = ssh-ed25519 AAAAalice alice@laptop
Setup a user = bob
Full name for user bob = Bob Example
Password for user bob = *************
Public ssh key for user bob = ssh-ed25519 AAAAbob bob@laptop
""" % BCRYPT


def test_the_installer_creates_only_the_first_user(lab):
    result, console, ctx = lab.install(conf_with(drop=('Setup a user',), add=USERS))
    assert result == 'reboot', console
    assert_in_order(console, [
        "Setup a user? (enter a lower-case loginname, or 'no') [no] alice",
        'Full name for user alice? [alice] Alice Example',
        'Password for user alice? <provided>',
        'Public ssh key for user alice [none] ssh-ed25519 AAAAalice alice@laptop',
        'WARNING: root is targeted by password guessing attacks, pubkeys are safer.',
    ])
    assert 'Since no user was setup' not in console
    assert 'bob' not in console
    assert record_of(ctx)['users'] == [{
        'login': 'alice', 'full_name': 'Alice Example', 'uid': 1000, 'gid': 1000, 'groups': ['wheel'],
        'shell': '/bin/ksh', 'home': '/home/alice', 'password_hash': BCRYPT,
        'ssh_key': 'ssh-ed25519 AAAAalice alice@laptop'}]


def test_unusable_login_takes_the_next_answer(lab):
    users = 'Setup a user = root\nSetup a user = Bob\n' + USERS
    result, console, ctx = lab.install(conf_with(drop=('Setup a user',), add=users))
    assert result == 'reboot', console
    assert 'root is not a usable loginname.' in console
    assert 'Bob is not a usable loginname.' in console
    assert [u['login'] for u in record_of(ctx)['users']] == ['alice']


def test_user_without_password_aborts(lab):
    result, console, _ctx = lab.install(conf_with(drop=('Setup a user',), add='Setup a user = carol\n'))
    assert result == 'prompt'
    assert console.endswith('Password for user carol? \nQuestion has no answer in response file: '
                            '"password for user carol?"\n' + '\n'.join(FAILED))


# --- passwords ---------------------------------------------------------------------------------------

def test_random_looking_bcrypt_hash_is_installed_verbatim(lab):
    alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
    hashed = '$2b$12$' + ''.join(alphabet[(i * 37 + 11) % 64] for i in range(53))
    result, _console, ctx = lab.install(conf_with({'Password for root account': hashed}))
    assert result == 'reboot'
    assert record_of(ctx)['root_password_hash'] == hashed


def test_plain_password_is_hashed(lab):
    result, console, ctx = lab.install(conf_with({'Password for root account': 'correct horse'}))
    assert result == 'reboot'
    stored = record_of(ctx)['root_password_hash']
    assert stored != 'correct horse' and re.match(r'^\$2b\$\d\d\$[./A-Za-z0-9]{53}$', stored)
    assert 'correct horse' not in console


def test_thirteen_asterisks_disable_password_login(lab):
    result, _console, ctx = lab.install(conf_with({'Password for root account': '*************'}))
    assert result == 'reboot'
    assert record_of(ctx)['root_password_hash'] == '*************'


# --- mandatory answers and invalid answers ---------------------------------------------------------------

@pytest.mark.parametrize('dropped, prompt', [
    ('Password for root account', 'Password for root account?'),
    ('What timezone are you in', "What timezone are you in? ('?' for list)"),
    ('HTTP Server', "HTTP Server? (hostname or 'done')"),
])
def test_missing_mandatory_answer(lab, dropped, prompt):
    result, console, ctx = lab.install(conf_with(drop=(dropped,)))
    assert result == 'prompt'
    assert console.endswith('%s \nQuestion has no answer in response file: "%s"\n' % (prompt, prompt.lower())
                            + '\n'.join(FAILED))
    assert record_of(ctx) is None
    assert 'CONGRATULATIONS' not in console


def test_hostname_is_mandatory_when_vmd_sends_none(lab):
    result, console, _ctx = lab.install(conf_with(drop=('System hostname',)), name='web_1')
    assert result == 'prompt'
    assert 'Question has no answer in response file: "system hostname? (short form, e.g. \'foo\')"' in console


def test_hostname_defaults_to_the_vm_name(lab):
    result, console, ctx = lab.install(conf_with(drop=('System hostname',)), name='db2')
    assert result == 'reboot'
    assert "System hostname? (short form, e.g. 'foo') [db2] db2" in console
    assert record_of(ctx)['hostname'] == 'db2.my.domain'


def test_fqdn_hostname_gives_the_domain(lab):
    result, console, ctx = lab.install(conf_with({'System hostname': 'db1.example.com'}))
    assert result == 'reboot'
    assert 'Using DNS domainname example.com' in console
    assert record_of(ctx)['hostname'] == 'db1.example.com'


def test_fqdn_with_the_vm_name_keeps_the_dhcp_hostname(lab):
    # install.sub only sets the hostname when the short name differs from the current one.
    result, console, ctx = lab.install(conf_with({'System hostname': 'web1.example.com'}))
    assert result == 'reboot'
    assert 'Using DNS domainname my.domain' in console
    assert record_of(ctx)['hostname'] == 'web1.my.domain'


def test_invalid_yes_no_answer(lab):
    result, console, _ctx = lab.install(conf_with(add='Start sshd(8) by default = maybe\n', drop=('Start sshd(8) by default',)))
    assert result == 'prompt'
    assert console.endswith("Start sshd(8) by default? [yes] maybe\n'maybe' is not a valid choice.\n" + '\n'.join(FAILED))


def test_yes_no_answers_are_case_insensitive(lab):
    result, console, ctx = lab.install(conf_with({'Start sshd(8) by default': 'NO'}))
    assert result == 'reboot', console
    assert record_of(ctx)['sshd'] is False
    assert 'Allow root ssh login' not in console


def test_invalid_list_answer(lab):
    result, console, _ctx = lab.install(BASE_CONF + 'Which speed should com0 use = 14400\n')
    assert result == 'prompt'
    assert console.endswith("Which speed should com0 use? (or 'done') [115200] 14400\n'14400' is not a valid choice.\n"
                            + '\n'.join(FAILED))


def test_invalid_root_disk(lab):
    result, console, _ctx = lab.install(conf_with({'Which disk is the root disk': 'wd0'}))
    assert result == 'prompt'
    assert console.endswith("[sd0] wd0\nno such disk\n" + '\n'.join(FAILED))


def test_invalid_location_of_sets(lab):
    result, console, _ctx = lab.install(conf_with({'Location of sets': 'ftp'}))
    assert result == 'prompt'
    assert console.endswith("'ftp' is not a valid choice.\n" + '\n'.join(FAILED))


def test_invalid_root_ssh_login_answer(lab):
    result, console, _ctx = lab.install(conf_with({'Allow root ssh login': 'sometimes'}))
    assert result == 'prompt'
    assert "'sometimes' is not a valid choice." in console


def test_unknown_timezone(lab):
    result, console, _ctx = lab.install(conf_with({'What timezone are you in': 'Mars/Olympus'}))
    assert result == 'prompt'
    assert "'Mars/Olympus' is not a valid timezone on this system." in console


def test_timezone_directory_asks_for_sub_timezone(lab):
    result, console, ctx = lab.install(conf_with({'What timezone are you in': 'Europe'},
                                                 add="What sub-timezone of 'Europe' are you in = Amsterdam\n"))
    assert result == 'reboot', console
    assert "What sub-timezone of 'Europe' are you in? ('?' for list) Amsterdam" in console
    assert record_of(ctx)['timezone'] == 'Europe/Amsterdam'


# --- sets ----------------------------------------------------------------------------------------------

def test_dropping_bsd_asks_if_sure(lab):
    result, console, _ctx = lab.install(conf_with({'Set name(s)': '-bsd* -game* -x*'}))
    assert result == 'prompt'
    assert console.endswith("Are you *SURE* your install is complete without 'bsd'? [no] no\n" + '\n'.join(FAILED))


def test_abort_clears_the_selection(lab):
    result, console, _ctx = lab.install(conf_with({'Set name(s)': 'abort'}))
    assert result == 'prompt'
    assert "Are you *SURE* your install is complete without 'bsd'? [no] no" in console
    assert 'Installing' not in console


def test_all_and_done_tokens(lab):
    result, console, ctx = lab.install(conf_with({'Set name(s)': '-all +bsd +b*.tgz done +man*'}))
    assert result == 'reboot', console
    assert record_of(ctx)['sets'] == ['bsd', 'base78.tgz', 'BUILDINFO']
    assert record_of(ctx)['timezone'] == 'UTC'


def test_missing_install_notes(lab):
    os.unlink(os.path.join(lab.setdir, 'INSTALL.amd64'))
    mirror.write_sha256(lab.setdir, [n for n in os.listdir(lab.setdir) if n.endswith(('.tgz', 'bsd', '.rd', '.mp'))])
    mirror.write_index(lab.setdir)
    result, console, _ctx = lab.install()
    assert result == 'prompt'
    assert_in_order(console, ['INSTALL.amd64 not found. Use sets found here anyway? [no] no',
                              "Location of sets? (disk http nfs or 'done') [done] done",
                              "Are you *SURE* your install is complete without 'bsd'? [no] no"])


def test_bare_host_falls_back_to_http(lab):
    result, console, _ctx = lab.install(conf_with({'HTTP Server': HOST}))
    assert result == 'reboot', console
    assert_in_order(console, ["HTTP Server? (hostname or 'done') " + HOST,
                              'Server directory? [pub/OpenBSD/7.8/amd64] pub/OpenBSD/7.8/amd64',
                              'Unable to connect using HTTPS; using HTTP instead.'])


def test_https_server_is_unreachable(lab):
    result, console, _ctx = lab.install(conf_with({'HTTP Server': 'https://' + HOST}))
    assert result == 'prompt'
    assert console.endswith('Server directory? [pub/OpenBSD/7.8/amd64] pub/OpenBSD/7.8/amd64\n' + '\n'.join(FAILED))


def test_wrong_server_directory_finds_no_sets(lab):
    result, console, _ctx = lab.install(conf_with({'Server directory': 'pub/OpenBSD/7.7/amd64'}))
    assert result == 'prompt'
    assert 'Unable to get a verified list of distribution sets.' in console
    assert 'and found no OpenBSD/amd64 7.8 sets.' in console


def test_tampered_sha256_sig_is_not_trusted(lab):
    sig = os.path.join(lab.setdir, 'SHA256.sig')
    with open(sig, 'rb') as handle:
        data = handle.read()
    with open(sig, 'wb') as handle:
        handle.write(data.replace(b'SHA256 (bsd)', b'SHA256 (bsd.evil)'))
    result, console, _ctx = lab.install(conf_with(drop=('Continue without verification',)))
    assert result == 'prompt'
    assert_in_order(console, ['Unable to get a verified list of distribution sets.',
                              'Signature check of SHA256.sig failed. Continue without verification? [no] no'])


def test_corrupt_set_fails_its_checksum(lab):
    with open(os.path.join(lab.setdir, 'comp78.tgz'), 'ab') as handle:
        handle.write(b'garbage')
    result, console, _ctx = lab.install()
    assert result == 'prompt'
    assert console.endswith('Checksum test for comp78.tgz failed. Continue anyway? [no] no\n' + '\n'.join(FAILED))


def test_small_disk_has_no_prefetch_area(lab):
    small = lab.disk(size=GIB)
    result, console, _ctx = lab.install(conf_with(drop=('Continue without verification',)), disks=[small])
    assert result == 'prompt'
    assert 'Cannot determine prefetch area. Continue without verification? [no] no' in console
    result, console, ctx = lab.install(disks=[small])
    assert result == 'reboot'
    assert 'Cannot determine prefetch area. Continue without verification? [no] yes' in console
    assert 'Get/Verify' not in console
    assert [p['mount'] for p in record_of(ctx)['disklabel']['sd0']] == ['/', None]


# --- disks ---------------------------------------------------------------------------------------------

def test_second_disk_is_offered_for_initialisation(lab):
    disks = [lab.disk('sd0.img'), lab.disk('sd1.img', 2 * GIB)]
    result, console, _ctx = lab.install(disks=disks)
    assert result == 'reboot'
    assert_in_order(console, ['Available disks are: sd0 sd1.', 'Available disks are: sd1.',
                              "Which disk do you wish to initialize? (or 'done') [done] done"])


def test_small_disk_is_not_the_default_root_disk(lab):
    disks = [lab.disk('sd0.img', 512 << 20), lab.disk('sd1.img')]
    result, console, ctx = lab.install(conf_with(drop=('Which disk is the root disk',)), disks=disks)
    assert result == 'reboot'
    assert "Which disk is the root disk? ('?' for details) [sd1] sd1" in console
    # The installed system is on sd1: the record is in the second image, and the BIOS boots the first.
    assert record_of(ctx, 1)['root_disk'] == 'sd1'
    assert record_of(ctx, 0) is None
    assert installer.boot_installed(ctx) is False


def test_gpt_on_a_bios_guest_needs_confirmation(lab):
    result, console, _ctx = lab.install(conf_with({'Use (W)hole disk': 'gpt'}))
    assert result == 'reboot'
    assert_in_order(console, ['Use (W)hole disk MBR, whole disk (G)PT or (E)dit? [whole] gpt',
                              'An EFI/GPT disk may not boot. Proceed? [no] no',
                              'Use (W)hole disk MBR, whole disk (G)PT or (E)dit? [whole] whole'])


def test_custom_layout_cannot_be_done_unattended(lab):
    result, console, _ctx = lab.install(conf_with({'Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout': 'c'}))
    assert result == 'prompt'
    assert console.endswith("'/' must be configured!\n" + '\n'.join(FAILED))


# --- response file discovery ------------------------------------------------------------------------------

def test_mac_file_wins_over_hostname_file_and_install_conf(lab):
    lab.publish('%s-install.conf' % MAC, conf_with({'System hostname': 'from-mac'}))
    lab.publish('web1-install.conf', conf_with({'System hostname': 'from-hostname'}))
    result, console, ctx = lab.install(conf_with({'System hostname': 'from-default'}))
    assert result == 'reboot'
    assert record_of(ctx)['hostname'] == 'from-mac.my.domain'
    assert lab.urls()[0] == '/%s-install.conf?path=7.8/amd64' % MAC
    assert 'web1-install.conf' not in console


def test_hostname_file_wins_over_install_conf(lab):
    lab.publish('web1-install.conf', conf_with({'System hostname': 'from-hostname'}))
    result, _console, ctx = lab.install(conf_with({'System hostname': 'from-default'}))
    assert result == 'reboot'
    assert record_of(ctx)['hostname'] == 'from-hostname.my.domain'
    assert lab.urls()[:2] == ['/%s-install.conf?path=7.8/amd64' % MAC, '/web1-install.conf?path=7.8/amd64']
    assert '/install.conf?path=7.8/amd64' not in lab.urls()


def test_vm_name_that_is_no_hostname_is_not_tried(lab):
    result, console, _ctx = lab.install(name='web_1')
    assert result == 'reboot'
    assert lab.urls()[:2] == ['/%s-install.conf?path=7.8/amd64' % MAC, '/install.conf?path=7.8/amd64']
    assert 'web_1' not in console.split('Performing')[0]


def test_no_response_file_waits_at_the_location_prompt(lab):
    ctx = lab.ctx()
    thread, outcome = run_in_thread(ctx)
    wait_for_console(ctx, 'Response file location? ')
    time.sleep(0.2)
    assert thread.is_alive()
    assert ctx['console'].getvalue().endswith(
        'Fetching http://%s/install.conf?path=7.8/amd64\nResponse file location? [http://%s/install.conf] ' % (HOST, HOST))
    ctx['stop_event'].set()
    thread.join(5)
    assert outcome['result'] == 'stopped'
    assert len(lab.urls()) == 3


def test_first_interface_not_local_gets_no_lease(lab):
    lab.publish('install.conf', BASE_CONF)
    ctx = lab.ctx(local=False)
    thread, _outcome = run_in_thread(ctx)
    wait_for_console(ctx, 'Response file location? ')
    assert ctx['console'].getvalue().endswith('No dhcp address on interface vio0 in 30 seconds.\n'
                                              'Could not determine auto server.\nCould not determine auto mode.\n'
                                              'Response file location? ')
    assert lab.urls() == []
    ctx['stop_event'].set()
    thread.join(5)


def test_without_netboot_the_ramdisk_waits_at_the_prompt(lab):
    lab.publish('install.conf', BASE_CONF)
    ctx = lab.ctx(boot_device=None)
    thread, outcome = run_in_thread(ctx)
    wait_for_console(ctx, 'installation program.\n')
    time.sleep(0.1)
    text = ctx['console'].getvalue()
    assert text.endswith('installation program.\n(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? ')
    assert 'Starting non-interactive mode' not in text
    ctx['stop_event'].set()
    thread.join(5)
    assert outcome['result'] == 'stopped'


# --- faults -------------------------------------------------------------------------------------------------

def test_installer_fail_fault(lab):
    result, console, ctx = lab.install(faults={'installer-fail'})
    assert result == 'prompt'
    assert_in_order(console, ['Installing base78.tgz   100%% |*******************************|   %3d       00:00    '
                              % os.path.getsize(os.path.join(lab.setdir, 'base78.tgz'))])
    assert console.endswith('\n'.join(FAILED))
    assert 'CONGRATULATIONS' not in console
    assert record_of(ctx) is None


def test_installer_hang_fault(lab):
    lab.publish('install.conf', BASE_CONF)
    ctx = lab.ctx(faults={'installer-hang'})
    thread, outcome = run_in_thread(ctx)
    wait_for_console(ctx, 'Installing ')
    before = ctx['console'].getvalue()
    time.sleep(0.5)
    assert thread.is_alive()
    assert ctx['console'].getvalue() == before
    assert 'CONGRATULATIONS' not in before and 'failed' not in before
    ctx['stop_event'].set()
    thread.join(5)
    assert outcome['result'] == 'stopped'


def test_slow_install_fault(lab):
    started = time.monotonic()
    result, _console, _ctx = lab.install(faults={'slow-install'})
    assert result == 'reboot'
    assert time.monotonic() - started >= installer.SLOW_INSTALL_EXTRA


def test_record_is_json_with_magic_header(lab):
    result, _console, ctx = lab.install()
    assert result == 'reboot'
    with open(ctx['disks'][0]['path'], 'rb') as handle:
        handle.seek(installer.RECORD_OFFSET)
        head = handle.readline()
        assert head.startswith(b'LAB-OPENBSD-INSTALL-RECORD 1 ')
        payload = handle.read(int(head.split()[2]))
    assert json.loads(payload) == record_of(ctx)
    with open(ctx['disks'][0]['path'], 'rb') as handle:
        assert handle.read(512)[510:] == b'\x55\xaa'
