"""The installer's network under vmd: the addresses of a local interface and the no-network messages.

Addresses: usr.sbin/vmd/priv.c vm_priv_addr (host side prefix | (vmid << 8 | (idx + 1) * 2), guest side + 1,
"dhcp address range exceeded" and no address when that leaves the `local prefix`), dhcp.c dhcp_request (no
reply without an address; next-server = host side). Messages: distrib/miniroot/install.sub 1.1288
get_responsefile. Both through installer.run(ctx) and through the lab's vmd (which hands the guest the prefix
it parsed from vm.conf).
"""

import io
import os
import sys
import threading
import time

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import installer, mirror  # noqa: E402  pylint: disable=wrong-import-position

MAC = 'fe:e1:bb:d1:12:34'
PROMPT = 'Response file location? '
NO_LEASE = ('No dhcp address on interface vio0 in 30 seconds.\nCould not determine auto server.\n'
            'Could not determine auto mode.\n' + PROMPT)


@pytest.fixture(name='ramdisk')
def ramdisk_fixture(tmp_path, monkeypatch):
    monkeypatch.setenv('VMM_LAB_ROOT', str(tmp_path))
    monkeypatch.setattr(installer, 'STEP_PAUSE', 0)
    monkeypatch.setattr(installer, 'SET_PAUSE', 0)
    setdir = mirror.make_mirror(str(tmp_path / 'htdocs' / 'pub' / 'OpenBSD'), '7.8', 'amd64')
    return os.path.join(setdir, 'bsd.rd')


def run_until_prompt(ramdisk, tmp_path, vm_id, local_prefix=None, interfaces=None):
    """Boot the ramdisk from the network with no response file anywhere; the console up to the prompt."""
    disk = tmp_path / 'sd0.img'
    with open(disk, 'wb') as handle:
        handle.truncate(1 << 30)
    ctx = {'lab_root': str(tmp_path), 'name': 'web1', 'vm_id': vm_id,
           'interfaces': interfaces if interfaces is not None else [{'mac': MAC, 'local': True, 'switch': None}],
           'disks': [{'path': str(disk), 'format': 'raw'}], 'kernel': ramdisk, 'boot_device': 'net',
           'console': io.StringIO(), 'http_base': None, 'faults': set(), 'stop_event': threading.Event()}
    if local_prefix is not None:
        ctx['local_prefix'] = local_prefix
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault('result', installer.run(ctx)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while PROMPT not in ctx['console'].getvalue():
        assert time.monotonic() < deadline, ctx['console'].getvalue()
        time.sleep(0.02)
    time.sleep(0.1)
    assert thread.is_alive(), 'the installer waits at the prompt for ever'
    ctx['stop_event'].set()
    thread.join(5)
    assert outcome['result'] == 'stopped'
    return ctx['console'].getvalue()


def fetched_from(server):
    return ''.join('Fetching http://%s/%s.conf?path=7.8/amd64\n' % (server, name)
                   for name in ('%s-install' % MAC, 'web1-install', 'install')) + \
        '%s[http://%s/install.conf] ' % (PROMPT, server)


@pytest.mark.parametrize('vm_id, local_prefix, server', [
    (4, None, '100.64.4.2'),
    (255, None, '100.64.255.2'),
    (256, None, '100.65.0.2'),
    (256, '100.64.0.0/10', '100.65.0.2'),
    (4, '10.0.0.0/16', '10.0.4.2'),
    (1, '192.168.0.0/16', '192.168.1.2'),
])
def test_the_lease_follows_vm_priv_addr(ramdisk, tmp_path, vm_id, local_prefix, server):
    console = run_until_prompt(ramdisk, tmp_path, vm_id, local_prefix)
    assert console.endswith(fetched_from(server))


@pytest.mark.parametrize('vm_id, local_prefix', [(256, '10.0.0.0/16'), (32768, None)])
def test_an_id_outside_the_prefix_gets_no_lease(ramdisk, tmp_path, vm_id, local_prefix):
    """vm_priv_addr returns 0 ("dhcp address range exceeded"): dhcp_request sends no reply."""
    console = run_until_prompt(ramdisk, tmp_path, vm_id, local_prefix)
    assert console.endswith('(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? \n' + NO_LEASE)
    assert 'Fetching' not in console


# --- through the lab's vmd: the prefix it parsed from vm.conf, and VM ids from 256 on ------------------------

def start_netboot(lab, name):
    htdocs = lab.path("var", "www", "htdocs")
    setdir = lab.lab("mirror", os.path.join(htdocs, "pub", "OpenBSD"), "7.8", "amd64").out.strip()
    disk = lab.disk(name + ".img", 1024 ** 3)
    assert lab.vmctl("start", "-b", os.path.join(setdir, "bsd.rd"), "-B", "net", "-L", "-d", disk, name).rc == 0
    lab.wait_for(lambda: lab.console(name).endswith((PROMPT, "/install.conf] ")), timeout=30)
    return lab.console(name)


def test_vmd_hands_the_guest_its_local_prefix(lab):
    lab.write_conf('local prefix "10.0.0.0/16"\n')
    assert lab.vmctl("reload").rc == 0
    try:
        console = start_netboot(lab, "pfx")
        assert "Fetching http://10.0.1.2/" in console and "100.64." not in console
        assert lab.vmctl("stop", "-f", "-w", "pfx").rc == 0
        # parse_config() never resets the prefix: a vm.conf without the line keeps it
        lab.write_conf('\n')
        assert lab.vmctl("reload").rc == 0
        assert "Fetching http://10.0.2.2/" in start_netboot(lab, "kept")
    finally:
        # the daemon is shared by this module's tests
        lab.write_conf('local prefix "100.64.0.0/10"\n')
        lab.vmctl("reload")


def test_vm_ids_from_256(lab_factory):
    lab = lab_factory()
    lab.start_vm("early")
    assert int(lab.row("early").id) == 1
    assert lab.lab("vm-ids-from", "256").rc == 0
    console = start_netboot(lab, "late")
    assert int(lab.row("late").id) == 256
    assert "Fetching http://100.65.0.2/" in console
    assert lab.vmctl("stop", "-f", "-w", "late").rc == 0
    lab.write_conf('local prefix "10.0.0.0/16"\n')
    assert lab.vmctl("reload").rc == 0
    console = start_netboot(lab, "later")
    assert int(lab.row("later").id) == 257
    assert console.endswith(NO_LEASE)
