"""Lab guests as real network hosts (labsim.guestnet): namespaces, addresses, a real sshd, teardown.

Skipped, with `lab net-check`'s reason, where network namespaces cannot be made.
"""

import os
import signal
import subprocess
import sys
import uuid

import pytest

from conftest import LAB_BIN

import labsim
from labsim import daemon, guestnet, installer, state

DISK_BYTES = 64 * 1024 * 1024


def _net_check():
    proc = subprocess.run([os.path.join(LAB_BIN, "lab"), "net-check"], capture_output=True, text=True, check=False,
                          env=dict(os.environ, PATH=os.pathsep.join([LAB_BIN, os.path.dirname(sys.executable),
                                                                     os.environ.get("PATH", "")])))
    if proc.returncode == 77:
        return (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, proc
    return None


NET_REASON = _net_check()
pytestmark = pytest.mark.skipif(NET_REASON is not None, reason=NET_REASON or "")


@pytest.fixture(scope="module", name="key")
def fixture_key(tmp_path_factory):
    """The provisioning key build_image.yml / vmm_autoinstall put into the install (root_authorized_keys)."""
    path = str(tmp_path_factory.mktemp("key") / "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
    with open(path + ".pub", encoding="ascii") as handle:
        return path, handle.read()


def installed_disk(lab, name, hostname, key, **record):
    """A disk image the simulated installer could have left: active MBR partition and an install record."""
    disk = lab.disk(name + ".img", DISK_BYTES)
    installer._write_disk(disk, 0, installer._mbr(DISK_BYTES // 512))  # pylint: disable=protected-access
    content = {"kernel": "/bsd", "hostname": hostname, "release": "7.8", "arch": "amd64", "sshd": True,
               "permit_root_login": "prohibit-password", "root_authorized_keys": key[1]}
    content.update(record)
    installer.write_install_record(disk, content)
    return disk


def boot(lab, name, hostname, key, **record):
    disk = installed_disk(lab, name, hostname, key, **record)
    result = lab.vmctl("start", "-L", "-d", disk, name)
    assert result.rc == 0, result
    lab.wait_for(lambda: lab.console(name).endswith("login: "), timeout=30)


def ssh(lab, address, key, command, root=None):
    proxy = "%s guest-connect --root %s %%h %%p" % (os.path.join(LAB_BIN, "lab"), root or lab.root)
    return lab.run("ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                   "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-o", "ProxyCommand=" + proxy, "-i", key[0],
                   "root@" + address, command, timeout=30)


def address_of(lab, name):
    result = lab.lab("guest-address", name)
    assert result.rc == 0, result
    return result.out.split()


def netns_list():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def test_local_guest_answers_ssh_with_its_hostname(lab, key):
    boot(lab, "web1", "web1.my.domain", key)
    # vmd's dhcp (priv.c vm_priv_addr): VM id 1, first interface -> 100.64.1.3
    assert address_of(lab, "web1") == ["100.64.1.3"]
    result = ssh(lab, "100.64.1.3", key, "hostname; id -u")
    assert result.rc == 0, result
    assert result.out == "web1.my.domain\n0\n"


def test_file_written_over_ssh_stays_in_the_guest_dir_across_reboots(lab, key):
    boot(lab, "files1", "files1.my.domain", key)
    token = "labproof-" + uuid.uuid4().hex
    result = ssh(lab, address_of(lab, "files1")[0], key,
                 "echo %s > /root/%s && echo %s > /etc/%s && echo %s > /var/tmp/%s && echo %s > /tmp/%s && "
                 "useradd -m %s && cat /etc/myname" % (token, token, token, token, token, token, token, token,
                                                       "u" + token[9:17]))
    assert result.rc == 0, result
    assert result.out == "files1.my.domain\n"
    guest = lab.path("guests", "files1")
    with open(os.path.join(guest, "root", token), encoding="ascii") as handle:
        assert handle.read() == token + "\n"
    assert os.path.exists(os.path.join(guest, "etc", token))
    assert os.path.isdir(os.path.join(guest, "home", "u" + token[9:17]))
    assert os.path.exists(os.path.join(guest, "var", "tmp", token))
    for real in ("/root/", "/etc/", "/var/tmp/", "/tmp/"):
        assert not os.path.exists(real + token)
    assert not os.path.exists("/home/u" + token[9:17])
    with open("/etc/passwd", encoding="utf-8") as handle:
        assert "u" + token[9:17] not in handle.read()
    # a reboot keeps the guest's disk state (and its host key: the same guest dir)
    with open(os.path.join(guest, "etc", "ssh", "ssh_host_ed25519_key.pub"), encoding="ascii") as handle:
        host_key = handle.read()
    console_before = len(lab.console("files1"))
    assert lab.lab("guest", "reboot", "files1").rc == 0
    lab.wait_for(lambda: len(lab.console("files1")) > console_before and lab.console("files1").endswith("login: "),
                 timeout=20)
    result = ssh(lab, address_of(lab, "files1")[0], key, "cat /root/%s /var/tmp/%s; id u%s >/dev/null && echo user; "
                 "test -e /tmp/%s || echo /tmp cleared" % (token, token, token[9:17], token))
    assert result.rc == 0, result
    assert result.out == "%s\n%s\nuser\n/tmp cleared\n" % (token, token)
    with open(os.path.join(guest, "etc", "ssh", "ssh_host_ed25519_key.pub"), encoding="ascii") as handle:
        assert handle.read() == host_key


def test_guest_without_sshd_has_an_address_but_port_22_is_closed(lab, key):
    boot(lab, "quiet1", "quiet1.my.domain", key, sshd=False, permit_root_login=None)
    address = address_of(lab, "quiet1")[0]
    result = lab.lab("guest-connect", address, "22")
    assert result.rc == 1
    assert result.err == "lab: guest-connect: %s port 22: Connection refused\n" % address


def test_permit_root_login_no_refuses_root(lab, key):
    boot(lab, "noroot1", "noroot1.my.domain", key, permit_root_login="no")
    result = ssh(lab, address_of(lab, "noroot1")[0], key, "hostname")
    assert result.rc == 255
    assert "Permission denied" in result.err


@pytest.mark.parametrize("how", [["-w"], ["-f"]])
def test_stop_removes_the_guest_namespace_and_sshd(lab, key, how):
    boot(lab, "gone1", "gone1.my.domain", key)
    current = guestnet.load_state(lab.root, "gone1")
    assert current["netns"] in netns_list() and state.process_alive(current["sshd_pid"])
    assert lab.vmctl("stop", *how, "gone1").rc == 0
    lab.wait_for(lambda: lab.row("gone1") is None)
    lab.wait_for(lambda: not state.process_alive(current["sshd_pid"]))
    assert current["netns"] not in netns_list().split()
    result = lab.lab("guest-address", "gone1")
    assert (result.rc, result.err) == (1, "lab: vm gone1 has no address\n")


def _process_state(pid):
    with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


def test_pause_stops_what_runs_on_the_guest(lab, key):
    boot(lab, "nap1", "nap1.my.domain", key)
    sshd = guestnet.load_state(lab.root, "nap1")["sshd_pid"]
    assert _process_state(sshd) in ("S", "R")
    assert lab.vmctl("pause", "nap1").rc == 0
    lab.wait_for(lambda: _process_state(sshd) == "T")  # the signal is handled when sshd next runs
    assert lab.vmctl("unpause", "nap1").rc == 0
    lab.wait_for(lambda: _process_state(sshd) in ("S", "R"))
    assert ssh(lab, address_of(lab, "nap1")[0], key, "hostname").out == "nap1.my.domain\n"


def test_killed_vmd_takes_the_guest_networks_with_it(fresh_lab, key):
    lab = fresh_lab
    boot(lab, "orphan1", "orphan1.my.domain", key)
    current = guestnet.load_state(lab.root, "orphan1")
    vm_pid = int(lab.row("orphan1").pid)
    os.kill(daemon.read_pid(lab.root), signal.SIGKILL)
    # the VM process does not outlive its vmd (guest.die_with_vmd), nor does its network
    lab.wait_for(lambda: not state.process_alive(vm_pid))
    # the guest's sshd goes with its namespace, torn down by the dying VM process: wait, bounded
    lab.wait_for(lambda: not state.process_alive(current["sshd_pid"]))
    lab.wait_for(lambda: current["netns"] not in guestnet.namespaces(lab.root))
    assert guestnet.load_state(lab.root, "orphan1") is None


def test_vmd_stop_and_init_remove_every_namespace_of_the_root(fresh_lab, key):
    lab = fresh_lab
    boot(lab, "left1", "left1.my.domain", key)
    current = guestnet.load_state(lab.root, "left1")
    vm_pid = int(lab.row("left1").pid)
    # A killed run: the VM process cannot clean up (stopped, then killed with its vmd).
    os.kill(vm_pid, signal.SIGSTOP)
    os.kill(daemon.read_pid(lab.root), signal.SIGKILL)
    os.kill(vm_pid, signal.SIGKILL)
    lab.wait_for(lambda: not state.process_alive(vm_pid))
    names = guestnet.namespaces(lab.root)
    assert names == sorted([guestnet.host_netns(lab.root), current["netns"]])
    assert lab.lab("init").rc == 0
    assert guestnet.namespaces(lab.root) == []
    assert not state.process_alive(current["sshd_pid"])
    # lab vmd stop: the host namespace goes with the running guests
    assert lab.lab("vmd", "start").rc == 0
    boot(lab, "left2", "left2.my.domain", key)
    assert len(guestnet.namespaces(lab.root)) == 2
    assert lab.lab("vmd", "stop").rc == 0
    assert guestnet.namespaces(lab.root) == []
    assert os.path.isdir(lab.path("guests", "left1", "etc"))  # the guests' disk state stays


def test_two_lab_roots_with_the_same_guest_addresses(lab_factory, key):
    first, second = lab_factory(), lab_factory()
    boot(first, "twin", "twin-a.my.domain", key)
    boot(second, "twin", "twin-b.my.domain", key)
    assert address_of(first, "twin") == address_of(second, "twin") == ["100.64.1.3"]
    assert guestnet.tag(first.root) != guestnet.tag(second.root)
    assert ssh(first, "100.64.1.3", key, "hostname").out == "twin-a.my.domain\n"
    assert ssh(second, "100.64.1.3", key, "hostname").out == "twin-b.my.domain\n"
    assert first.vmctl("stop", "-w", "twin").rc == 0
    assert ssh(second, "100.64.1.3", key, "hostname").out == "twin-b.my.domain\n"


# ---- switches: addresses from the lab's DHCP server (labsim.dhcp_server.lease), faked here ----------------

class FakeDhcp:
    def __init__(self, leases):
        self.leases = leases
        self.asked = []

    def lease(self, lab_root, interface, mac):
        self.asked.append((lab_root, interface, mac))
        return self.leases.get((interface, mac))


@pytest.fixture(name="switch_host")
def fixture_switch_host(lab, monkeypatch):
    """The lab host with veb0 (vport0 192.0.2.1/24 as the host's address on it), and a fake DHCP server."""
    interfaces = lab.path("lab", "basetools", "ifconfig.json")
    if os.path.exists(interfaces):  # a fresh host's interfaces (the module's lab is shared)
        os.unlink(interfaces)
    for argv in (("vport0", "inet", "192.0.2.1/24", "up"), ("veb0", "add", "vport0", "up")):
        result = lab.run("ifconfig", *argv)
        assert result.rc == 0, result
    dhcp = FakeDhcp({})
    # `from labsim import dhcp_server` finds the package attribute first (set once the real module was imported)
    monkeypatch.setitem(sys.modules, "labsim.dhcp_server", dhcp)
    monkeypatch.setattr(labsim, "dhcp_server", dhcp, raising=False)
    started = []
    yield lab, dhcp, started
    for name in started:
        guestnet.guest_down(lab.root, name)
    guestnet.cleanup(lab.root)
    os.unlink(interfaces)


def _up(lab, name, mac, started, key, **record):
    """Boot an installed guest (record: install record keys) with one NIC on veb0; again to reboot it."""
    disk = lab.path(name + ".img")
    if name not in started:
        disk = installed_disk(lab, name, name + ".my.domain", key, **record)
        started.append(name)
    nics = [{"mac": mac, "tap": "tap0", "local": False, "switch": "uplink", "switch_interface": "veb0"}]
    return guestnet.guest_up(lab.root, name, 7, nics, None, installer.read_install_record(disk), os.getpid())


def test_guest_on_a_switch_gets_its_lease(switch_host, key):
    lab, dhcp, started = switch_host
    dhcp.leases[("veb0", "fe:e1:bb:d1:00:10")] = {"address": "192.0.2.10", "prefixlen": 24, "routers": ["192.0.2.1"],
                                                  "host_name": "sw1"}
    current = _up(lab, "sw1", "fe:e1:bb:d1:00:10", started, key)
    assert dhcp.asked == [(lab.root, "veb0", "fe:e1:bb:d1:00:10")]
    assert current["addresses"] == ["192.0.2.10"]
    shown = subprocess.run(["ip", "-n", current["netns"], "-o", "addr", "show", "dev", "vio0"],
                           capture_output=True, text=True, check=True).stdout
    assert "inet 192.0.2.10/24" in shown and "fe:e1:bb:d1:00:10" in subprocess.run(
        ["ip", "-n", current["netns"], "link", "show", "vio0"], capture_output=True, text=True, check=True).stdout
    bridge = subprocess.run(["ip", "-n", guestnet.host_netns(lab.root), "-o", "addr", "show", "dev", "veb0"],
                            capture_output=True, text=True, check=True).stdout
    assert "inet 192.0.2.1/24" in bridge
    result = ssh(lab, "192.0.2.10", key, "hostname; ip route show default")
    assert result.rc == 0, result
    assert result.out.startswith("sw1.my.domain\ndefault via 192.0.2.1 dev vio0")


def test_guest_on_a_switch_without_a_lease_gets_no_address(switch_host, key):
    lab, dhcp, started = switch_host
    assert _up(lab, "sw2", "fe:e1:bb:d1:00:11", started, key) is None
    assert dhcp.asked == [(lab.root, "veb0", "fe:e1:bb:d1:00:11")]
    assert guestnet.guest_netns(lab.root, 7) not in netns_list().split()
    # a lease outside the lab's documentation ranges is refused as well
    dhcp.leases[("veb0", "fe:e1:bb:d1:00:11")] = {"address": "10.1.2.3", "prefixlen": 8, "routers": [], "host_name": ""}
    assert _up(lab, "sw2", "fe:e1:bb:d1:00:11", started, key) is None


def test_vm_on_a_switch_gets_the_address_dhcpd_offers_its_mac(lab, key):
    """End to end: vm.conf switch -> the daemon passes the switch's interface -> the lab's dhcpd answers."""
    pytest.importorskip("labsim.dhcp_server", reason="the lab's DHCP server (labsim/dhcp_server.py) is not there")
    interfaces = lab.path("lab", "basetools", "ifconfig.json")
    if os.path.exists(interfaces):
        os.unlink(interfaces)
    for argv in (("vport0", "inet", "192.0.2.1/24", "up"), ("veb0", "add", "vport0", "up")):
        assert lab.run("ifconfig", *argv).rc == 0
    with open(lab.path("etc", "dhcpd.conf"), "w", encoding="ascii") as handle:
        handle.write("subnet 192.0.2.0 netmask 255.255.255.0 {\n\toption routers 192.0.2.1;\n"
                     "\thost dhcp1 { hardware ethernet fe:e1:bb:d1:00:42; fixed-address 192.0.2.20; }\n}\n")
    try:
        result = lab.run("rcctl", "-f", "start", "dhcpd")
        assert result.rc == 0, result
        disk = installed_disk(lab, "dhcp1", "dhcp1.my.domain", key)
        lab.write_conf('switch "uplink" {\n\tinterface veb0\n}\nvm "dhcp1" {\n\tdisk "%s"\n'
                       '\tinterface { switch "uplink"\n\t\tlladdr fe:e1:bb:d1:00:42 }\n}\n' % disk)
        assert lab.vmctl("reload").rc == 0
        lab.wait_for(lambda: lab.console("dhcp1").endswith("login: "), timeout=30)
        assert address_of(lab, "dhcp1") == ["192.0.2.20"]
        result = ssh(lab, "192.0.2.20", key, "hostname; ip route show default")
        assert result.rc == 0, result
        assert result.out.startswith("dhcp1.my.domain\ndefault via 192.0.2.1 dev vio0")
    finally:
        lab.run("rcctl", "-f", "stop", "dhcpd")
        os.unlink(interfaces)


def test_guest_resolver_is_never_the_controllers(lab, key):
    # install.sub donetconfig wrote the typed nameserver; vmd's dhcp.c (dhcp_request) offers the host side
    # of a local interface as nameserver, and resolvd.c regen_resolvconf writes what it learned first,
    # tagged, then replays every untagged line of the old file.
    boot(lab, "dns1", "dns1.my.domain", key, nameservers=["192.0.2.53"])
    result = ssh(lab, address_of(lab, "dns1")[0], key, "cat /etc/resolv.conf")
    assert result.rc == 0, result
    assert result.out == "nameserver 100.64.1.2 # resolvd: vio0\nnameserver 192.0.2.53\nlookup file bind\n"


def test_guest_on_a_switch_keeps_the_install_leases_nameserver_until_a_lease_offers_one(switch_host, key):
    # A golden image installed on a local interface learned vmd's 100.64.1.2 (tagged by resolvd). Cloned
    # onto a switch whose dhcpd offers no nameserver, resolvd learns nothing new and rewrites nothing
    # (resolvd.c handle_route_message regenerates only when the learned set changes): the stale line
    # stays, as on a real guest. A lease that offers one replaces it.
    lab, dhcp, started = switch_host
    dhcp.leases[("veb0", "fe:e1:bb:d1:00:12")] = {"address": "192.0.2.12", "prefixlen": 24, "routers": ["192.0.2.1"]}
    assert _up(lab, "sw3", "fe:e1:bb:d1:00:12", started, key, nameservers=["100.64.1.2"], nameservers_from_dhcp=True)
    result = ssh(lab, "192.0.2.12", key, "cat /etc/resolv.conf")
    assert result.rc == 0, result
    assert result.out == "nameserver 100.64.1.2 # resolvd: vio0\n"
    dhcp.leases[("veb0", "fe:e1:bb:d1:00:12")]["domain_name_servers"] = ["192.0.2.1"]
    assert _up(lab, "sw3", "fe:e1:bb:d1:00:12", started, key)
    result = ssh(lab, "192.0.2.12", key, "cat /etc/resolv.conf")
    assert result.out == "nameserver 192.0.2.1 # resolvd: vio0\n", result


def test_a_guest_installed_without_nameservers_has_no_resolv_conf(switch_host, key):
    lab, dhcp, started = switch_host
    dhcp.leases[("veb0", "fe:e1:bb:d1:00:13")] = {"address": "192.0.2.13", "prefixlen": 24, "routers": ["192.0.2.1"]}
    assert _up(lab, "sw4", "fe:e1:bb:d1:00:13", started, key, nameservers=[])
    result = ssh(lab, "192.0.2.13", key, "test -e /etc/resolv.conf || echo absent")
    assert result.out == "absent\n", result


SEAL = """#!/bin/sh
set -e
[ ! -f /etc/resolv.conf ] || sed -i '/# resolvd: /d' /etc/resolv.conf
rm -f /etc/ssh/ssh_host_* /etc/myname
echo 'echo first' >>/etc/rc.firsttime
touch /usr/lab-install-site-escape || echo "outside the new system: refused"
"""


def test_install_site_runs_in_the_new_system(switch_host, key):
    # install.sub finish_up runs /mnt/install.site chrooted into the new system, after the network files
    # were written: a seal removes what the build network taught resolvd. Its writes outside the
    # guest's own files are refused (this machine's /usr stays as it is); rc's ssh-keygen -A gives the
    # guest new host keys at its first boot.
    lab, dhcp, started = switch_host
    dhcp.leases[("veb0", "fe:e1:bb:d1:00:14")] = {"address": "192.0.2.14", "prefixlen": 24, "routers": ["192.0.2.1"]}
    assert _up(lab, "sw5", "fe:e1:bb:d1:00:14", started, key, nameservers=["100.64.1.2"], nameservers_from_dhcp=True,
               install_site={"present": True, "executable": True, "ran": True, "failed": False}, install_site_script=SEAL)
    result = ssh(lab, "192.0.2.14", key, "cat /etc/resolv.conf /etc/rc.firsttime; ls /etc/ssh | grep ^ssh_host_")
    assert result.rc == 0, result
    assert result.out == "echo first\nssh_host_ed25519_key\nssh_host_ed25519_key.pub\n"
    assert not os.path.exists("/usr/lab-install-site-escape")
    with open(os.path.join(guestnet.guest_dir(lab.root, "sw5"), "lab", "install.site.log"), encoding="utf-8") as log:
        text = log.read()
    assert "Read-only file system" in text and text.endswith("outside the new system: refused\nexit 0\n"), text


def test_a_failing_install_site_is_logged_and_the_guest_boots(switch_host, key):
    # The installer sees a failure only in a literal `exit N` (labsim.installer finish_up); a script that
    # fails when it really runs leaves what it did before, and the log says how it ended.
    lab, dhcp, started = switch_host
    dhcp.leases[("veb0", "fe:e1:bb:d1:00:15")] = {"address": "192.0.2.15", "prefixlen": 24, "routers": ["192.0.2.1"]}
    assert _up(lab, "sw6", "fe:e1:bb:d1:00:15", started, key, install_site_script="#!/bin/sh\nset -e\necho half >/etc/half\nfalse\n")
    assert ssh(lab, "192.0.2.15", key, "cat /etc/half").out == "half\n"
    with open(os.path.join(guestnet.guest_dir(lab.root, "sw6"), "lab", "install.site.log"), encoding="utf-8") as log:
        assert log.read() == "exit 1\n"


def test_guest_address_and_connect_errors(lab):
    result = lab.lab("guest-address", "nosuchvm")
    assert (result.rc, result.err) == (1, "lab: vm nosuchvm has no address\n")
    result = lab.lab("guest-connect", "--root", lab.path("nonexistent"), "192.0.2.10", "22")
    assert result.rc == 1 and "has no guest network" in result.err
    result = lab.lab("guest-connect", "192.0.2.10", "0")
    assert (result.rc, result.err) == (1, "lab: guest-connect: PORT must be a number from 1 to 65535, not '0'\n")


def test_net_check_explains_why_it_cannot(tmp_path):
    """What the tests skip with: as a user without the rights, net-check exits 77 and says why."""
    tmp_path.chmod(0o755)
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I", "-c",
                           "import sys; sys.path.insert(0, %r); from labsim import lab; sys.exit(lab.main(['net-check']))"
                           % os.path.dirname(os.path.dirname(os.path.abspath(guestnet.__file__)))],
                          capture_output=True, text=True, check=False, cwd=str(tmp_path))
    assert proc.returncode == 77, proc
    assert proc.stdout == "lab: guest networks are not possible here: network namespaces need root (running as uid 65534)\n"


def test_namespace_names_are_per_lab_root(tmp_path):
    """Several checkouts and runs share the machine: names derive from the lab root's real path."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    os.symlink(str(tmp_path / "a"), str(tmp_path / "link"))
    first, second, link = (str(tmp_path / name) for name in ("a", "b", "link"))
    assert guestnet.tag(first) != guestnet.tag(second)
    assert guestnet.tag(first) == guestnet.tag(link)
    assert guestnet.host_netns(first) == guestnet.tag(first) + "h"
    assert guestnet.guest_netns(first, 12) == guestnet.tag(first) + "g12"


@pytest.mark.parametrize("root", ["/root/lab", "/home/someone/lab", "/var/tmp/lab"])
def test_a_lab_root_under_an_overlaid_dir_is_refused(root):
    """overlayfs refuses an upper dir inside its lower dir: say so instead of a failed mount."""
    with pytest.raises(guestnet.GuestNetError, match=r"^the lab root %s is under /(root|home|var), which guests overlay" % root):
        guestnet.start_sshd(root, "web1", "unused", ["100.64.1.3"], {"sshd": True})
    assert not os.path.exists(root)
