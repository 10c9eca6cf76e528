"""The lab's guests as real network hosts: Linux network namespaces, veth pairs and a real sshd.

Per lab root there is one "host" namespace, the OpenBSD host's network side: a vm.conf `switch`
is a Linux bridge there, named after the switch's `interface` (bridge0, veb0), holding the
addresses the lab's ifconfig state gives that interface or its vport/vether members. Each
running guest that gets an address has its own namespace with one veth per addressed NIC:
`vioN` (the guest's vio(4), with the VM's MAC) in the guest namespace, its peer `tapN` (the
tap vmd opened) in the host namespace, attached to the switch's bridge or, for a `local
interface`, holding the host side address as vmd's priv.c vm_priv_ifconfig puts it on the tap.

Addresses: a `local interface` gets what vmd's dhcp.c hands out (priv.c vm_priv_addr, through
labsim.installer.vm_priv_addr: guest side/31, default route via the host side); an interface
on a switch asks the lab's DHCP server (labsim.dhcp_server.lease(lab_root, switch interface,
mac) -> None or {"address", "prefixlen", "routers", "host_name"}). Only documentation/ULA
ranges and vmd's 100.64.0.0/10 are ever configured (ALLOWED): concurrent lab runs share this
machine, so nothing is routed from the machine's own namespace; the controller reaches guests
through `lab guest-connect` (a relay that runs inside the lab root's host namespace).

In the guest namespace runs Debian's real sshd, under `unshare --mount --uts`, with overlayfs
over /etc, /root, /home and /var whose upper directories are the guest's own directory
`<lab_root>/guests/<vm>/` (its disk state: what is done on the guest persists there across
reboots and never reaches the machine), a /tmp of its own, the hostname from the guest's /etc/myname (seeded from
the install record), and the host key, sshd_config and root's authorized_keys seeded at the
guest directory's first boot from the install record (what install.sub wrote). The network
comes up at /etc/rc's `starting network` (netstart), before `login:`; everything is torn
down when the VM process ends.

A guest's state follows its disk, as an OpenBSD guest's files are on its disk: when the VM process
ends, however it ends (halt, reboot, `vmctl stop [-f]`, vmd stopped or killed), guest_ended saves the
guest dir's etc/, root/, home/ and var/ (never its lab/) into the VM's first disk, the one the install
record is read from; a guest booting a disk that holds a saved state starts from it (replacing what a
guest dir of that name had on this lab root), so a disk copied to another lab root (migrate.yml) or
restored under another name boots with everything the guest did. Layout on the disk (labsim.images
read_data/write_data: raw, or qcow2 whose writes go to the top image, never into a base):

    RECORD_OFFSET (1 MiB)     the install record (labsim.installer), at most RECORD_AREA (1 MiB)
    STATE_OFFSET (4 MiB)      STATE_HEADER (512) bytes: b"LAB-OPENBSD-GUEST-STATE 1 <length> <sha256 hex>\n", NULs
    STATE_OFFSET + 512        <length> bytes: gzip of a GNU tar (POSIX format, numeric owners, trusted.*
                              xattrs: overlayfs whiteouts are 0/0 character devices, opaque dirs an xattr)

The whole region (header and payload) ends before STATE_OFFSET + STATE_AREA (64 MiB); a disk too
small for it gets no saved state and a header whose sha256 does not match is ignored (both lab-only
safeguards, see save_disk_state and read_disk_state): the guest then seeds from the install record.
The guest dir's lab/disk-state holds the sha256 of the state it last saved or restored; a disk without
a saved state booting a guest dir that came from one starts from its install record (a fresh guest
dir), a guest dir that never had one (a disk too small) stays as it is.
"""

import fcntl
import gzip
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

from labsim import images
from labsim.basetools.common import atomic_write

IP = shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin") or "/usr/sbin/ip"
UNSHARE = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin") or "/usr/bin/unshare"
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen", path="/usr/bin:/bin") or "/usr/bin/ssh-keygen"
NETNS_DIR = "/run/netns"

# The only networks that ever appear in a lab namespace: RFC 5737 documentation ranges, ULA, and vmd's
# default `local prefix` (vmd.h VMD_DHCP_PREFIX).
ALLOWED = tuple(ipaddress.ip_network(net) for net in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "fd00::/8", "100.64.0.0/10"))
OVERLAID = ("etc", "root", "home", "var")
SSHD_WAIT_SECONDS = 10.0
TAR = shutil.which("tar", path="/usr/bin:/bin") or "/usr/bin/tar"
# The guest's saved state on its first disk (see the module docstring).
STATE_MAGIC = b"LAB-OPENBSD-GUEST-STATE"
STATE_OFFSET = 4 * 1024 * 1024
STATE_HEADER = 512
STATE_AREA = 60 * 1024 * 1024
STATE_MARKER = "disk-state"
# GNU tar: overlayfs's trusted.* xattrs, numeric owners (the guest's own /etc/passwd), and no atime, ctime nor
# pid in the archive, so a guest dir that did not change saves the same bytes (the disk is not written again).
TAR_OPTIONS = ["--format=posix", "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
               "--xattrs", "--xattrs-include=trusted.*", "--numeric-owner", "--sort=name"]
# The guest's own OVERLAID directories, over this machine's (upper dirs under the guest's $dir).
OVERLAY_MOUNTS = r"""for sub in %s; do
    [ -d "/$sub" ] || continue
    mount -t overlay overlay -o "lowerdir=/$sub,upperdir=$dir/$sub,workdir=$dir/lab/work/$sub" "/$sub"
done
""" % " ".join(OVERLAID)

# Runs as the guest's init inside `ip netns exec G unshare --mount --uts`: its own OVERLAID directories
# (OVERLAY_MOUNTS), its own /run and /tmp (/etc/rc clears /tmp at
# boot), its hostname; then exec sshd.
GUEST_INIT = r"""set -e
dir=$1; name=$2; shift 2
""" + OVERLAY_MOUNTS + r"""# the lab's pkg_add, pkg_info and halt (labsim.pkgtools), first on sshd's PATH (before /tmp, where the
# lab root may be, is hidden by the guest's own)
[ ! -d /usr/local/sbin ] || [ ! -d "$dir/lab/bin" ] || mount --bind -o ro "$dir/lab/bin" /usr/local/sbin
# the VM's console device (guest.py console_device: sys/dev/cons.c cnwrite, com0 on a vmd guest)
[ ! -p "$dir/lab/console" ] || [ ! -e /dev/console ] || mount --bind "$dir/lab/console" /dev/console
mount -t tmpfs -o mode=755 tmpfs /run
# ... which reach the lab's state (its httpd, the guest's record) at /run/lab-root
mkdir -m 700 /run/lab-root /run/lab-code
mount --bind "${dir%/guests/*}" /run/lab-root
[ ! -r "$dir/lab/labdir" ] || mount --bind -o ro "$(cat "$dir/lab/labdir")" /run/lab-code
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -m 755 /run/sshd
hostname "$name"
exec "$@"
"""

# install.sub finish_up runs /mnt/install.site chrooted into the new system. Here: the guest's own
# OVERLAID directories (OVERLAY_MOUNTS, as in GUEST_INIT), a private /tmp, every other file of this
# machine read-only (a write there fails as it would outside the chroot), no lab tool on PATH; the
# script comes on stdin.
SITE_INIT = r"""set -e
dir=$1
mount --bind "$dir" "$dir"
mount --rbind / /
for mnt in $(awk '{print $2}' /proc/self/mounts); do
    # (not the kernel's, nor the namespace handles in /run/netns: one per running guest, nothing to write)
    case $mnt in "$dir"|"$dir"/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run/netns|/run/netns/*) continue ;; esac
    mount -o remount,bind,ro "$mnt" 2>/dev/null || true
done
if touch /.lab-install-site 2>/dev/null; then
    rm -f /.lab-install-site
    echo "lab: cannot make this machine's files read-only for install.site" >&2
    exit 97
fi
""" + OVERLAY_MOUNTS + r"""mount -t tmpfs -o mode=1777 tmpfs /tmp
cd /
set +e
/bin/sh -s
echo "exit $?"
"""
SITE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C"}


class GuestNetError(Exception):
    """Setting up a guest's network failed; the message says which step."""


# ---------------------------------------------------------------------------------- names

def tag(root):
    """The prefix of every namespace of this lab root: several checkouts and runs share the machine."""
    return "vl" + hashlib.sha1(os.path.realpath(root).encode()).hexdigest()[:6]


def host_netns(root):
    return tag(root) + "h"


def guest_netns(root, vm_id):
    return "%sg%d" % (tag(root), vm_id)


def guest_dir(root, name):
    return os.path.join(root, "guests", name)


def _state_dir(root):
    return os.path.join(root, "lab", "guestnet")


def _state_path(root, name):
    return os.path.join(_state_dir(root), name + ".json")


def namespaces(root):
    """Every namespace of this lab root that exists now."""
    prefix = tag(root)
    try:
        entries = os.listdir(NETNS_DIR)
    except OSError:
        return []
    return sorted(entry for entry in entries if re.fullmatch(re.escape(prefix) + r"(h|g[0-9]+|c[0-9]+)", entry))


def _exists(netns):
    return os.path.exists(os.path.join(NETNS_DIR, netns))


# ---------------------------------------------------------------------------------- plumbing

def _ip(args, batch=None, netns=None, check=True):
    argv = [IP] + (["-n", netns] if netns else []) + list(args)
    if batch is not None:
        argv += ["-batch", "-"]
    proc = subprocess.run(argv, input=batch, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise GuestNetError("%s: %s" % (" ".join(argv[1:]), proc.stderr.strip() or "exit %d" % proc.returncode))
    return proc


def _allowed(address):
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed.version == net.version and parsed in net for net in ALLOWED)


def _write_atomic(target, text, mode=0o644):
    atomic_write(target, text, mode)


def load_state(root, name):
    try:
        with open(_state_path(root, name), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _alive(pid):
    from labsim import state  # pylint: disable=import-outside-toplevel
    return bool(pid) and state.process_alive(pid)


class _Lock:
    """One setup of the host namespace at a time per lab root (guests start concurrently)."""

    def __init__(self, root):
        os.makedirs(_state_dir(root), exist_ok=True)
        self.path = os.path.join(_state_dir(root), ".lock")
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()


# ---------------------------------------------------------------------------------- addresses

def _classful(address):
    """ifconfig without a netmask: the historical class of the address (sbin/ifconfig in_getaddr)."""
    first = int(address.split(".")[0])
    return 8 if first < 128 else 16 if first < 192 else 24


def switch_addresses(root, interface):
    """The host's addresses on a switch: the lab ifconfig state of the bridge/veb and its vport/vether members."""
    try:
        with open(os.path.join(root, "lab", "basetools", "ifconfig.json"), encoding="utf-8") as handle:
            table = json.load(handle)
    except (OSError, ValueError):
        return []
    entry = table.get(interface) or {}
    names = [interface] + [member for member in entry.get("members", [])
                           if re.sub(r"[0-9]+$", "", member) in ("vport", "vether")]
    found = []
    for name in names:
        for address in (table.get(name) or {}).get("inet", []):
            text = address if "/" in address else "%s/%d" % (address, _classful(address))
            try:
                iface = ipaddress.ip_interface(text)
            except ValueError:
                continue
            if _allowed(str(iface.ip)) and str(iface) not in found:
                found.append(str(iface))
    return found


def _dhcp_lease(root, interface, mac):
    """labsim.dhcp_server.lease(), or None while the lab has no DHCP server module."""
    try:
        from labsim import dhcp_server  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    try:
        return dhcp_server.lease(root, interface, mac)
    except Exception as exc:  # pylint: disable=broad-except
        # a DHCP server that cannot answer leaves this NIC without an address, not the guest without network
        sys.stderr.write("guest network: no lease for %s on %s: %s\n" % (mac, interface, exc))
        return None


def _checked_lease(lease):
    """The lease's (address, prefixlen, gateway, nameservers) if it stays inside the lab's ranges, else None."""
    if not isinstance(lease, dict):
        return None
    address, prefixlen = lease.get("address"), lease.get("prefixlen")
    if not isinstance(address, str) or not _allowed(address) or not isinstance(prefixlen, int) or not 1 <= prefixlen <= 32:
        return None
    routers = [r for r in lease.get("routers") or [] if isinstance(r, str) and _allowed(r)]
    nameservers = [n for n in lease.get("domain_name_servers") or [] if isinstance(n, str) and _allowed(n)]
    return address, prefixlen, routers[0] if routers else None, nameservers


def plan(root, vm_id, interfaces, local_prefix):
    """One entry per NIC that gets an address: dev, mac, peer (tap), address, prefixlen, gateway, and
    host_address (local interface) or bridge (switch)."""
    from labsim.installer import DEFAULT_LOCAL_PREFIX, vm_priv_addr  # pylint: disable=import-outside-toplevel
    entries = []
    for index, iface in enumerate(interfaces):
        base = {"dev": "vio%d" % index, "mac": iface["mac"], "peer": iface["tap"]}
        if iface.get("local"):
            # dhcp.c answers with priv.c vm_priv_addr(): guest side /31, router = host side
            guest = vm_priv_addr(local_prefix or DEFAULT_LOCAL_PREFIX, vm_id, index, True)
            host = vm_priv_addr(local_prefix or DEFAULT_LOCAL_PREFIX, vm_id, index, False)
            if guest is None or host is None or not _allowed(guest) or not _allowed(host):
                continue
            # ... and offers the host side as the nameserver too
            entries.append(dict(base, address=guest, prefixlen=31, gateway=host, host_address=host, nameservers=[host]))
        elif iface.get("switch_interface"):
            checked = _checked_lease(_dhcp_lease(root, iface["switch_interface"], iface["mac"]))
            if checked is None:
                continue
            address, prefixlen, gateway, nameservers = checked
            entries.append(dict(base, address=address, prefixlen=prefixlen, gateway=gateway,
                                bridge=iface["switch_interface"], nameservers=nameservers))
    return entries


# ---------------------------------------------------------------------------------- namespaces

def _netns_pids(netns):
    """The processes inside a namespace (what `ip netns pids` reports), found without spawning ip."""
    try:
        target = os.stat(os.path.join(NETNS_DIR, netns))
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            info = os.stat("/proc/%s/ns/net" % entry)
        except OSError:
            continue
        if (info.st_ino, info.st_dev) == (target.st_ino, target.st_dev):
            pids.append(int(entry))
    return pids


def remove_netns(netns):
    """Kill what runs in the namespace (sshd and its sessions), then delete it."""
    for _attempt in range(3):
        pids = _netns_pids(netns)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
    if _exists(netns):
        _ip(["netns", "delete", netns], check=False)


def _ensure_host(root, bridges):
    """The host namespace and the switches' bridges (with the host's addresses), made once."""
    host = host_netns(root)
    with _Lock(root):
        if not _exists(host):
            _ip(["netns", "add", host])
            _ip(["link", "set", "lo", "up"], netns=host)
        for bridge in bridges:
            lines = []
            if _ip(["link", "show", "dev", bridge], netns=host, check=False).returncode != 0:
                lines.append("link add %s type bridge" % bridge)
            # the host's addresses on the switch as the lab's ifconfig state has them now
            lines += ["link set %s up" % bridge, "addr flush dev %s" % bridge]
            lines += ["addr replace %s dev %s" % (address, bridge) for address in switch_addresses(root, bridge)]
            _ip([], batch="\n".join(lines) + "\n", netns=host)
    return host


def _make_links(root, netns, host, entries):
    lines = ["netns add %s" % netns]
    lines += ["link add %s address %s netns %s type veth peer name %s netns %s"
              % (e["dev"], e["mac"], netns, e["peer"], host) for e in entries]
    proc = _ip([], batch="\n".join(lines) + "\n", check=False)
    if proc.returncode == 0:
        return
    # A tapN left in the host namespace by a guest of a killed run: remove it, try once more.
    remove_netns(netns)
    _ip(["-force"], batch="".join("link delete %s\n" % e["peer"] for e in entries), netns=host, check=False)
    _ip([], batch="\n".join(lines) + "\n")


def guest_up(root, name, vm_id, interfaces, local_prefix, record, owner_pid, disk=None):
    """Bring up a booting guest's network (and its sshd when the install enabled it).

    interfaces: the VM's NICs as the daemon describes them (mac, tap, local, switch_interface).
    disk: the VM's first disk, whose saved state the guest dir starts from (adopt_disk_state), and where
    guest_ended saves it.
    Returns the guest's state (addresses, netns, sshd pid), or None when no NIC got an address.
    """
    began = time.monotonic()
    entries = plan(root, vm_id, interfaces, local_prefix)
    old = load_state(root, name)
    if old is not None:
        remove_netns(old["netns"])
    netns = guest_netns(root, vm_id)
    remove_netns(netns)
    if not entries:
        _remove_state(root, name)
        return None
    host = _ensure_host(root, sorted({e["bridge"] for e in entries if e.get("bridge")}))
    _make_links(root, netns, host, entries)
    guest_lines = ["link set lo up"]
    host_lines = []
    for entry in entries:
        guest_lines += ["addr add %s/%d dev %s" % (entry["address"], entry["prefixlen"], entry["dev"]),
                        "link set %s up" % entry["dev"]]
        if entry.get("bridge"):
            host_lines += ["link set %s master %s" % (entry["peer"], entry["bridge"])]
        else:
            host_lines += ["addr add %s/31 dev %s" % (entry["host_address"], entry["peer"])]
        host_lines.append("link set %s up" % entry["peer"])
    gateway = next((e["gateway"] for e in entries if e.get("gateway")), None)
    if gateway:
        guest_lines.append("route add default via %s" % gateway)
    _ip([], batch="\n".join(guest_lines) + "\n", netns=netns)
    _ip([], batch="\n".join(host_lines) + "\n", netns=host)
    current = {"vm": name, "vm_id": vm_id, "pid": owner_pid, "netns": netns,
               "addresses": [e["address"] for e in entries],
               "interfaces": [{k: e.get(k) for k in ("dev", "mac", "peer", "address", "prefixlen", "gateway", "bridge")}
                              for e in entries],
               "sshd_pid": None, "release": (record or {}).get("release"), "arch": (record or {}).get("arch")}
    _save_state(root, name, current)
    if record and record.get("sshd"):
        if disk:
            adopted = time.monotonic()
            current["disk_state"] = adopt_disk_state(root, name, disk)
            current["disk_state_seconds"] = round(time.monotonic() - adopted, 3)
            current["disk"] = disk
        learned = [(server, e["dev"]) for e in entries for server in e["nameservers"]]
        current["sshd_pid"] = start_sshd(root, name, netns, current["addresses"], record, learned)
    current["setup_seconds"] = round(time.monotonic() - began, 3)
    _save_state(root, name, current)
    return current


def _save_state(root, name, current):
    _write_atomic(_state_path(root, name), json.dumps(current, indent=1, sort_keys=True) + "\n")


def _remove_state(root, name):
    try:
        os.unlink(_state_path(root, name))
    except OSError:
        pass


def guest_down(root, name, owner_pid=None):
    """Tear down a guest's network when its VM process ended (only that process's, if owner_pid is given)."""
    current = load_state(root, name)
    if current is None or (owner_pid is not None and current.get("pid") != owner_pid):
        return False
    remove_netns(current["netns"])
    _remove_state(root, name)
    return True


def guest_ended(root, name, owner_pid=None):
    """The VM process ended: its network goes (guest_down), then the guest dir it booted is saved into its disk.

    Only a guest dir this very process used (its state names the disk and the process): a VM of the same name
    that never started the guest's system (an install, a guest without sshd) leaves the disk as it is.
    Returns save_disk_state's answer, or None when nothing was saved.
    """
    current = load_state(root, name)
    if not guest_down(root, name, owner_pid) or not current.get("disk"):
        return None
    return save_disk_state(root, name, current["disk"])


def signal_guest(root, name, sig):
    """What runs on a guest stops and continues with its VM (`vmctl pause`/`unpause` stop the VM process)."""
    current = load_state(root, name)
    if current is None:
        return
    for pid in _netns_pids(current["netns"]):
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def cleanup(root, keep_running=False):
    """Remove this lab root's namespaces (`lab vmd stop`: all; `lab init`: those of VM processes that are gone)."""
    live = set()
    if keep_running and os.path.isdir(_state_dir(root)):
        for entry in os.listdir(_state_dir(root)):
            if entry.endswith(".json"):
                current = load_state(root, entry[:-5])
                if current and _alive(current.get("pid")):
                    live.add(current["netns"])
    for netns in namespaces(root):
        if netns in live or (netns == host_netns(root) and live):
            continue
        remove_netns(netns)
    if os.path.isdir(_state_dir(root)):
        for entry in os.listdir(_state_dir(root)):
            current = load_state(root, entry[:-5]) if entry.endswith(".json") else None
            if current is not None and current.get("netns") not in live:
                _remove_state(root, entry[:-5])


def addresses(root, name):
    """The running guest's addresses ([] when it has none or is not running)."""
    current = load_state(root, name)
    if current is None or not _alive(current.get("pid")) or not _exists(current["netns"]):
        return []
    return list(current["addresses"])


# ---------------------------------------------------------------------------------- the guest's state on its disk

def _read_text(path):
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def read_disk_state(disk):
    """(sha256 hex, gzip'ed tar) of the guest state saved on the disk (through a qcow2's backing chain), or None.

    None too when the disk is too small for the region or the payload does not match its sha256: a lab-only
    safeguard (a real guest's file system is checked by fsck, not a checksum), since a partial write or
    something written over the region would restore a truncated archive into the guest dir.
    """
    try:
        size = images.virtual_size(disk)
        if size < STATE_OFFSET + STATE_HEADER:
            return None
        head = images.read_data(disk, STATE_OFFSET, STATE_HEADER)
    except (OSError, images.ImageError):
        return None
    match = re.fullmatch(re.escape(STATE_MAGIC) + rb" 1 ([0-9]{1,9}) ([0-9a-f]{64})", head.split(b"\n", 1)[0])
    if match is None:
        return None
    length = int(match.group(1))
    if STATE_HEADER + length > STATE_AREA or STATE_OFFSET + STATE_HEADER + length > size:
        return None
    try:
        payload = images.read_data(disk, STATE_OFFSET + STATE_HEADER, length)
    except (OSError, images.ImageError):
        return None
    digest = match.group(2).decode()
    if hashlib.sha256(payload).hexdigest() != digest:
        return None
    return digest, payload


def write_disk_state(disk, payload):
    """Put a saved state on the disk: the payload, then the header naming it (a write cut short leaves the old
    header, whose sha256 no longer matches). Returns the sha256, or None when the disk or region is too small."""
    if STATE_HEADER + len(payload) > STATE_AREA or images.virtual_size(disk) < STATE_OFFSET + STATE_HEADER + len(payload):
        return None
    digest = hashlib.sha256(payload).hexdigest()
    saved = read_disk_state(disk)
    if saved is None or saved[0] != digest:
        images.write_data(disk, STATE_OFFSET + STATE_HEADER, payload)
        header = STATE_MAGIC + b" 1 %d %s\n" % (len(payload), digest.encode())
        images.write_data(disk, STATE_OFFSET, header.ljust(STATE_HEADER, b"\0"))
    return digest


def clear_disk_state(disk):
    """newfs on the disk (labsim.installer): no saved state any more."""
    try:
        if images.virtual_size(disk) >= STATE_OFFSET + STATE_HEADER and read_disk_state(disk) is not None:
            images.write_data(disk, STATE_OFFSET, b"\0" * STATE_HEADER)
    except (OSError, images.ImageError):
        pass


def save_disk_state(root, name, disk):
    """Save the guest dir's OVERLAID dirs into the disk; {"bytes", "seconds", "sha256"}, or None when there is
    no seeded guest dir or the disk is too small (the guest dir then keeps its state beside the disk only)."""
    began = time.monotonic()
    top = guest_dir(root, name)
    marker = os.path.join(top, "lab", STATE_MARKER)
    if not os.path.exists(os.path.join(top, "lab", "seeded")):
        return None
    members = [sub for sub in OVERLAID if os.path.isdir(os.path.join(top, sub))]
    proc = subprocess.run([TAR, "--create", "--file", "-"] + TAR_OPTIONS + ["--directory", top, "--"] + members,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise GuestNetError("saving the state of %s: tar: %s" % (name, proc.stderr.decode(errors="replace").strip()))
    payload = gzip.compress(proc.stdout, compresslevel=6, mtime=0)
    digest = write_disk_state(disk, payload)
    if digest is None:
        try:
            os.unlink(marker)
        except OSError:
            pass
        return None
    _write_atomic(marker, digest + "\n")
    return {"bytes": len(payload), "sha256": digest, "seconds": round(time.monotonic() - began, 3)}


def _clear_guest_dir(top):
    """The guest dir of another disk's guest goes: its OVERLAID dirs, overlay work dirs and seed markers."""
    for sub in OVERLAID + ("lab/work",):
        shutil.rmtree(os.path.join(top, sub), ignore_errors=True)
    for entry in ("seeded", STATE_MARKER, "unsynced-packages.json"):
        try:
            os.unlink(os.path.join(top, "lab", entry))
        except OSError:
            pass


def adopt_disk_state(root, name, disk):
    """At boot, before the seed: the guest dir as the disk has it.

    "kept": the guest dir already holds the disk's saved state (a reboot on this lab root); "restored": it was
    replaced by the disk's saved state; "fresh": the disk has none but the guest dir came from one (another
    disk's guest, or this disk before a copy of it without state came back), so it starts again from the
    install record; None: neither has one (the seed goes on as before).
    """
    top = guest_dir(root, name)
    current = _read_text(os.path.join(top, "lab", STATE_MARKER))
    saved = read_disk_state(disk)
    if saved is None:
        if current is None:
            return None
        _clear_guest_dir(top)
        return "fresh"
    if current == saved[0] and os.path.exists(os.path.join(top, "lab", "seeded")):
        return "kept"
    _clear_guest_dir(top)
    os.makedirs(os.path.join(top, "lab"), exist_ok=True)
    proc = subprocess.run([TAR, "--extract", "--file", "-", "--xattrs", "--xattrs-include=trusted.*", "--numeric-owner",
                           "--same-owner", "--preserve-permissions", "--directory", top],
                          input=gzip.decompress(saved[1]), capture_output=True, check=False)
    if proc.returncode != 0:
        _clear_guest_dir(top)
        raise GuestNetError("restoring the state of %s from %s: tar: %s"
                            % (name, disk, proc.stderr.decode(errors="replace").strip()))
    _write_atomic(os.path.join(top, "lab", STATE_MARKER), saved[0] + "\n")
    _write_atomic(os.path.join(top, "lab", "seeded"), time.strftime("%Y-%m-%dT%H:%M:%SZ restored\n", time.gmtime()))
    return "restored"


# ---------------------------------------------------------------------------------- sshd

SSHD_CONFIG = """\
# sshd_config(5) of this lab guest, written at its first boot from the install record
# (install.sub: PermitRootLogin from "Allow root ssh login?"). The lab adds on sshd's command
# line: ListenAddress (the guest's current addresses), UsePAM no, PasswordAuthentication no.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin %s
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def _seed(root, name, record):
    """Every boot of the guest dir: at its first, what the installed system has in /etc and /root; then /etc/rc's keys."""
    top = guest_dir(root, name)
    for sub in OVERLAID:
        os.makedirs(os.path.join(top, sub), exist_ok=True)
        os.makedirs(os.path.join(top, "lab", "work", sub), exist_ok=True)
    os.chmod(os.path.join(top, "root"), 0o700)
    ssh = os.path.join(top, "etc", "ssh")
    marker = os.path.join(top, "lab", "seeded")
    if not os.path.exists(marker):
        _seed_first_boot(top, name, record, ssh)
        _write_atomic(marker, time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    # /etc/rc make_keys at every boot (not only the first): ssh-keygen -A makes the host keys that are missing,
    # those the install or its install.site left out and those a seal removed since (etc/rc: make_keys)
    if not os.path.isfile(os.path.join(ssh, "ssh_host_ed25519_key")):     # absent or whited out
        os.makedirs(ssh, exist_ok=True)
        _host_key(top, record, name)


def _seed_first_boot(top, name, record, ssh):
    """The first boot of a guest dir without saved state: the installed system's /etc and /root (install record)."""
    os.makedirs(ssh, exist_ok=True)
    permit = record.get("permit_root_login") or "prohibit-password"
    if permit not in ("yes", "no", "prohibit-password", "without-password", "forced-commands-only"):
        permit = "prohibit-password"
    _write_atomic(os.path.join(ssh, "sshd_config"), SSHD_CONFIG % permit)
    # install.sub writes /etc/myname; /etc/netstart reads it at every boot
    _write_atomic(os.path.join(top, "etc", "myname"), (record.get("hostname") or name) + "\n")
    # install.sub finish_up: the URL the sets came from, for pkg_add (OpenBSD/State.pm installpath)
    if record.get("installurl"):
        _write_atomic(os.path.join(top, "etc", "installurl"), record["installurl"] + "\n")
    # the packages on the disk (pkg_add on an earlier VM of this disk or its base: labsim.pkgtools)
    for fullname, files in sorted((record.get("packages") or {}).items()):
        pkg = os.path.join(top, "var", "db", "pkg", fullname)
        os.makedirs(pkg, exist_ok=True)
        for member, text in sorted(files.items()):
            _write_atomic(os.path.join(pkg, member), text)
    resolv_conf = _installed_resolv_conf(record)
    if resolv_conf is not None:
        _write_atomic(os.path.join(top, "etc", "resolv.conf"), resolv_conf)
    keys = record.get("root_authorized_keys") or ""
    if keys:
        dot_ssh = os.path.join(top, "root", ".ssh")
        os.makedirs(dot_ssh, mode=0o700, exist_ok=True)
        os.chmod(dot_ssh, 0o700)
        _write_atomic(os.path.join(dot_ssh, "authorized_keys"), keys if keys.endswith("\n") else keys + "\n", 0o600)
    if record.get("install_site_script"):
        _run_install_site(top, record["install_site_script"])


GUEST_TOOLS = ("pkg_add", "pkg_info", "halt")
# where GUEST_INIT mounts the lab root in the guest (the guest's /tmp hides a lab root under /tmp)
GUEST_LAB_ROOT = "/run/lab-root"
GUEST_LAB_CODE = "/run/lab-code"
# The interpreter behind the lab's own (labsim needs only its standard library, and os.setns: 3.12), by its
# real path: sys.executable may be a venv's link under /tmp, which the guest's own /tmp hides.
GUEST_PYTHON = os.path.realpath(sys.executable)


def _guest_tools(root, name, top):
    """sh wrappers running labsim.pkgtools for this guest; GUEST_INIT mounts their directory on /usr/local/sbin."""
    bindir = os.path.join(top, "lab", "bin")
    os.makedirs(bindir, exist_ok=True)
    # the lab's code, mounted at GUEST_LAB_CODE by GUEST_INIT (it may be under /tmp too)
    _write_atomic(os.path.join(top, "lab", "labdir"), os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "\n")
    for tool in GUEST_TOOLS:
        _write_atomic(os.path.join(bindir, tool),
                      "#!/bin/sh\nVMM_LAB_ROOT=%s LAB_GUEST=%s exec %s -I -c 'import sys; sys.path.insert(0, sys.argv.pop(1)); "
                      "from labsim import pkgtools; sys.exit(pkgtools.main())' %s %s \"$@\"\n"
                      % tuple(shlex.quote(word) for word in (GUEST_LAB_ROOT, name, GUEST_PYTHON, GUEST_LAB_CODE, tool)), 0o755)


def _host_key(top, record, name):
    key = os.path.join(top, "etc", "ssh", "ssh_host_ed25519_key")
    for path in (key, key + ".pub"):
        if os.path.lexists(path):       # a whiteout left by install.site's rm
            os.unlink(path)
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "root@%s" % (record.get("hostname") or name),
                    "-f", key], check=True, capture_output=True)


def _run_install_site(top, script):
    """install.site in the new system's files; its output and exit status go to <guest>/lab/install.site.log."""
    with open(os.path.join(top, "lab", "install.site.log"), "w", encoding="utf-8") as log:
        proc = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c", SITE_INIT,
                               "site-init", top], input=script, text=True, stdout=log, stderr=subprocess.STDOUT,
                              env=SITE_ENV, timeout=60, check=False)
    if proc.returncode != 0:
        raise GuestNetError("install.site of %s could not be run (see %s)" % (top, os.path.join(top, "lab", "install.site.log")))


def _installed_resolv_conf(record):
    """/etc/resolv.conf as the install left it, or None (no nameserver: install.sub writes no file).

    install.sub donetconfig writes typed nameservers and `lookup file bind`; ones the installer took
    from its DHCP lease were written by the ramdisk's resolvd, tagged (resolvd.c regen_resolvconf).
    """
    servers = list(record.get("nameservers") or [])
    if not servers:
        return None
    if record.get("nameservers_from_dhcp"):
        return "".join("nameserver %s # resolvd: vio0\n" % server for server in servers)
    return "".join("nameserver %s\n" % server for server in servers) + "lookup file bind\n"


def _boot_resolver(top, learned):
    """/etc/resolv.conf at this boot, never the controller's (a nameserver the guest cannot reach).

    resolvd.c: handle_route_message regenerates the file only when the learned set changes (it starts
    empty at boot): with nothing learned, the file stays as it is, stale tagged lines included. Then
    regen_resolvconf writes the learned nameservers first (`nameserver X # resolvd: <if>`; `learned`
    are (address, interface) pairs: vmd's dhcp.c dhcp_request offers the host side of a local
    interface, a switch's dhcpd its domain-name-servers) and replays every untagged line of the old
    file. An absent file in an overlay is a whiteout (a 0/0 character device).
    """
    path = os.path.join(top, "etc", "resolv.conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    current = None                          # no file, or whited out (a 0/0 character device)
    if os.path.lexists(path) and not stat.S_ISCHR(os.lstat(path).st_mode):
        with open(path, encoding="utf-8", errors="replace") as handle:
            current = handle.read()
    if learned:
        kept = [line for line in (current or "").splitlines() if "# resolvd: " not in line]
        current = "".join("nameserver %s # resolvd: %s\n" % pair for pair in learned) + "".join(line + "\n" for line in kept)
    if current is not None:
        _write_atomic(path, current)
    elif not os.path.lexists(path):
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def _hostname(root, name, record):
    try:
        with open(os.path.join(guest_dir(root, name), "etc", "myname"), encoding="utf-8") as handle:
            value = handle.readline().strip()
    except OSError:
        value = ""
    value = value or record.get("hostname") or name
    return value if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}", value) else name


def _set_pdeathsig():
    """sshd dies with the VM process that started it (a killed VM leaves no listener behind)."""
    import ctypes  # pylint: disable=import-outside-toplevel
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _listening(pid, port=22):
    """True once the process's namespace has a TCP listener on port (/proc/PID/net/tcp is per namespace)."""
    try:
        with open("/proc/%d/net/tcp" % pid, encoding="ascii") as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if fields[1].endswith(":%04X" % port) and fields[3] == "0A":
                    return True
    except (OSError, StopIteration, IndexError):
        return False
    return False


def start_sshd(root, name, netns, listen, record, learned=()):
    """Start the guest's sshd in its namespace; return its pid once it accepts connections."""
    real = os.path.realpath(root)
    for sub in OVERLAID:
        if real == "/" + sub or real.startswith("/%s/" % sub):
            # an overlay's upper dir inside its own lower dir is refused by overlayfs
            raise GuestNetError("the lab root %s is under /%s, which guests overlay: use a lab root elsewhere (/tmp)"
                                % (real, sub))
    _seed(root, name, record)
    top = guest_dir(root, name)
    _guest_tools(root, name, top)
    _boot_resolver(top, list(learned))
    argv = [IP, "netns", "exec", netns, UNSHARE, "--mount", "--uts", "--propagation", "private",
            "/bin/sh", "-c", GUEST_INIT, "guest-init", top, _hostname(root, name, record),
            SSHD, "-D", "-e", "-f", "/etc/ssh/sshd_config", "-o", "UsePAM=no", "-o", "PasswordAuthentication=no",
            "-o", "PidFile=none"]
    for address in listen:
        argv += ["-o", "ListenAddress=%s" % address]
    log = open(os.path.join(top, "lab", "sshd.log"), "a")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=_set_pdeathsig, close_fds=True)
    finally:
        log.close()
    deadline = time.monotonic() + SSHD_WAIT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GuestNetError("sshd of %s exited with %d (see %s)"
                                % (name, proc.returncode, os.path.join(top, "lab", "sshd.log")))
        if _listening(proc.pid):
            return proc.pid
        time.sleep(0.005)
    raise GuestNetError("sshd of %s does not listen after %.0f seconds" % (name, SSHD_WAIT_SECONDS))


# ---------------------------------------------------------------------------------- lab commands

def net_check():
    """None when namespaces, veths and sshd can be used here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (running as uid %d)" % os.geteuid()
    for tool in (IP, UNSHARE, SSH_KEYGEN, SSHD):
        if not os.access(tool, os.X_OK):
            return "%s is missing (Debian's iproute2, util-linux, openssh-server: make test-tools)" % tool
    probe = "vlcheck%d" % os.getpid()
    proc = _ip(["netns", "add", probe], check=False)
    if proc.returncode != 0:
        return "cannot make a network namespace: %s" % proc.stderr.strip()
    try:
        proc = _ip(["link", "add", "vio0", "type", "veth", "peer", "name", "tap0"], netns=probe, check=False)
        if proc.returncode != 0:
            return "cannot make a veth pair: %s" % proc.stderr.strip()
        proc = _ip(["link", "add", "bridge0", "type", "bridge"], netns=probe, check=False)
        if proc.returncode != 0:
            return "cannot make a bridge: %s" % proc.stderr.strip()
    finally:
        _ip(["netns", "delete", probe], check=False)
    try:
        with open("/proc/filesystems", encoding="ascii") as handle:
            if "overlay" not in handle.read().split():
                return "the kernel has no overlay file system"
    except OSError:
        pass
    return None


def relay(root, host, port):
    """stdio <-> TCP to host:port from inside the lab root's host namespace (ssh's ProxyCommand)."""
    import selectors  # pylint: disable=import-outside-toplevel
    import socket  # pylint: disable=import-outside-toplevel
    netns = os.path.join(NETNS_DIR, host_netns(root))
    try:
        fd = os.open(netns, os.O_RDONLY)
    except OSError:
        raise GuestNetError("lab root %s has no guest network (no guest with an address runs)" % root) from None
    try:
        os.setns(fd, os.CLONE_NEWNET)
    finally:
        os.close(fd)
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(None)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "in")
    selector.register(sock, selectors.EVENT_READ, "sock")
    while True:
        for key, _mask in selector.select():
            if key.data == "in":
                data = os.read(0, 65536)
                if data:
                    sock.sendall(data)
                else:
                    selector.unregister(0)
                    sock.shutdown(socket.SHUT_WR)
            else:
                data = sock.recv(65536)
                if not data:
                    sock.close()
                    return 0
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view):]
