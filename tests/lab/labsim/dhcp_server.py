"""The lab host's DHCP server: what OpenBSD's dhcpd(8), once started by rcctl, offers a guest.

    lease(lab_root, interface, mac) -> None or {"address", "prefixlen", "routers", "host_name",
        "domain_name_servers", "domain_name", "next_server", "filename"}

answers "a DHCPDISCOVER from MAC arrives on INTERFACE of the lab host: what does dhcpd offer?".
Modelled on usr.sbin/dhcpd (openbsd/src):

- dhcpd.c main: the configuration is read once (readconf), then the interfaces are found
  (discover_interfaces) before daemon(). So `rcctl start|restart dhcpd` (basetools/rcctl.py calls
  start()) snapshots what dhcpd would hold in memory: the parsed dhcpd.conf (`-c file` of the
  flags, else /etc/dhcpd.conf under the lab root; parsed by basetools/dhcpd.py check_file) and the
  interfaces it listens on, into lab/basetools/dhcpd.json (written atomically). `rcctl stop`
  removes it. Answers come from the snapshot only: a dhcpd.conf changed without a restart changes
  nothing. rcctl models dhcpd as a flag-only daemon (rc.json "running", no process), so "dhcpd
  runs" is that flag plus the snapshot.
- dispatch.c discover_interfaces (1.51): the interfaces named in the flags, or with none named every
  broadcast interface (not lo, pflog, enc); an interface's first IPv4 address (not 127.0.0.1) from
  the lab's ifconfig state (lab/basetools/ifconfig.json, the seeded table while none exists) must
  be on a declared subnet (memory.c find_subnet), else "Can't listen on ...". No interface left:
  "fatal in dhcpd: No interfaces to listen on." and the start fails. Up/down is not looked at
  then; interfaces that get an address later are never learned.
- Which interface receives the guest's broadcast (the lookup of INTERFACE): the interface itself
  when dhcpd listens on it; for a switch (bridge/veb/tpmr) also its members that pass frames
  (basetools/ifconfig.py forwarding_ports: veb_broadcast) and deliver to the host stack (vport,
  vether), e.g. veb0 -> vport0. A receiving interface that is down or gone gets nothing.
- dhcp.c find_lease/mockup_lease and memory.c find_host_for_network: host declarations whose
  `hardware ethernet` equals the MAC (octet by octet, so case and leading zeros do not matter),
  in file order, each `fixed-address` in order; the first address on a subnet of the receiving
  interface's shared network is the lease (STATIC_LEASE). One on no such subnet is not used.
- dhcp.c dhcpdiscover: no static lease: the client's earlier lease on that shared network, else the
  oldest free one, which for a dhcpd that never gave any is the lowest address of the first
  `range` (memory.c new_address_range: ranges in file order, each low to high). Given leases
  persist in lab/basetools/dhcpd-leases.json, keyed by MAC (as /var/db/dhcpd.leases survives
  restarts). Addresses of fixed-address declarations are skipped (real dhcpd offers them but
  pings first and abandons an address that answers: the lab plays the fixed host as up). No
  range, or none free: no answer ("no free leases"). `deny unknown-clients` /
  `boot-unknown-clients false` ignore MACs without a host declaration; `deny booting` in the
  host declines it.
- dhcp.c ack_lease/dhcp_reply: options are the subnet's (its group, which inherited the enclosing
  shared-network's and the global ones: confpars.c clone_group copies the parent's options), then
  the host declaration's supersede them; a host's group is a clone of where it was declared, so a
  global `option routers` beats the subnet's for a host declared at the top level. Prefix length:
  `option subnet-mask` if given, else the subnet's. next-server: the host's, else the subnet's,
  else the listening interface's address. host-name: `option host-name`, or the declaration's
  name under `use-host-decl-names on` (confpars.c parse_host_declaration).

Not modelled: client identifiers (dhcp-client-identifier), lease expiry, relays (giaddr), classes,
DHCPREQUEST/NAK, dynamic BOOTP, host names in place of addresses.
"""

import fcntl
import ipaddress
import json
import os
import re

from labsim.basetools import common, dhcpd, ifconfig

MAC = re.compile(r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){5}")
NOT_LISTENING = ("lo", "pflog", "enc")      # IFF_LOOPBACK or no IFF_BROADCAST: discover_interfaces skips them
HOST_STACK_PORTS = ("vport", "vether")      # switch members whose frames reach the host's own stack
LIST_OPTIONS = ("routers", "domain-name-servers")


def snapshot_path(root):
    return os.path.join(root, "lab", "basetools", "dhcpd.json")


def leases_path(root):
    return os.path.join(root, "lab", "basetools", "dhcpd-leases.json")


def _read_json(path, default):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def _interfaces(root):
    """The lab host's ifconfig table (as basetools/ifconfig.py load(), for an explicit root)."""
    table = _read_json(os.path.join(root, "lab", "basetools", "ifconfig.json"), None)
    if table is None:
        table = {name: dict(entry, members=[], description="") for name, entry in ifconfig.SEEDED.items()}
    return table


def _mac_key(text):
    """hardware ethernet octets as dhcpd compares them (bytes): fe:e1:0b:..., lower case, two digits."""
    return ":".join("%02x" % int(octet, 16) for octet in text.split(":"))


# --- dhcpd.conf -> what readconf() leaves in memory ------------------------------------------------

def _new_group():
    # confpars.c readconf: root_group defaults
    return {"options": {}, "next_server": None, "filename": None, "boot_unknown_clients": True,
            "allow_booting": True, "use_host_decl_names": False}


def _clone(group):
    return dict(group, options=dict(group["options"]))


def _values(words):
    """An option's or fixed-address's value: one string, or a comma/blank separated list."""
    if words and words[0].startswith('"'):
        return [words[0].strip('"')]
    return [word.strip('"') for word in " ".join(words).replace(",", " ").split()]


def _boolean(words):
    return bool(words) and words[0].lower() in ("true", "on")


def _statement(words, group, subnet, host):
    head, rest = words[0], words[1:]
    if head == "option" and len(rest) >= 2:
        group["options"][rest[0]] = _values(rest[1:])
    elif head == "next-server" and rest:
        group["next_server"] = rest[0]
    elif head == "filename" and rest:
        group["filename"] = rest[0].strip('"')
    elif head == "boot-unknown-clients":
        group["boot_unknown_clients"] = _boolean(rest)
    elif head == "use-host-decl-names":
        group["use_host_decl_names"] = _boolean(rest)
    elif head in ("allow", "deny") and rest[:1] == ["unknown-clients"]:
        group["boot_unknown_clients"] = head == "allow"
    elif head in ("allow", "deny") and rest[:1] == ["booting"]:
        group["allow_booting"] = head == "allow"
    elif head == "hardware" and host is not None and len(rest) == 2:
        host["mac"] = _mac_key(rest[1])
    elif head == "fixed-address" and host is not None:
        host["fixed"] = _values(rest)
    elif head == "range" and subnet is not None:
        bounds = [int(ipaddress.IPv4Address(word)) for word in rest if word != "dynamic-bootp"]
        subnet["ranges"].append([min(bounds), max(bounds)])   # high-to-low is allowed too


def _walk(body, group, conf, share, subnet, host):
    """parse_statement over one block; each declaration clones the group it is declared in."""
    for node in body:
        words = node["words"]
        if "body" not in node:
            _statement(words, group, subnet, host)
            continue
        child = _clone(group)
        if words[0] == "subnet":
            network = ipaddress.IPv4Network("%s/%s" % (words[1], words[3]))
            if share is None:   # a lone subnet gets a shared network of its own (parse_statement TOK_SUBNET)
                share_index = len(conf["shares"])
                conf["shares"].append({"name": str(network.network_address), "subnets": []})
            else:
                share_index = share
            entry = {"network": str(network), "ranges": [], "group": child}
            conf["subnets"].append(entry)
            conf["shares"][share_index]["subnets"].append(len(conf["subnets"]) - 1)
            _walk(node["body"], child, conf, share_index, entry, None)
        elif words[0] == "shared-network":
            conf["shares"].append({"name": words[1], "subnets": []})
            _walk(node["body"], child, conf, len(conf["shares"]) - 1, None, None)
        elif words[0] == "host":
            entry = {"name": words[1], "mac": None, "fixed": [], "group": child}
            _walk(node["body"], child, conf, share, subnet, entry)
            if child["use_host_decl_names"] and "host-name" not in child["options"]:
                child["options"]["host-name"] = [words[1]]
            conf["hosts"].append(entry)     # memory.c enter_host, in file order
        else:   # group
            _walk(node["body"], child, conf, share, subnet, host)


def _read_config(path):
    """(conf, errors): the configuration as readconf() would hold it, or the check's errors."""
    errors = []
    tree = dhcpd.check_file(path, errors)
    if errors:
        return None, errors
    conf = {"shares": [], "subnets": [], "hosts": []}
    _walk(tree, _new_group(), conf, None, None, None)
    conf["subnet_list"] = _subnet_list(conf)
    return conf, []


def _subnet_list(conf):
    """memory.c enter_subnet: each new subnet goes to the head of the list, or right before the
    first overlapping subnet it is narrower than (subnet_inner_than)."""
    order = []
    for index, subnet in enumerate(conf["subnets"]):
        network = ipaddress.IPv4Network(subnet["network"])
        for position, other in enumerate(order):
            scan = ipaddress.IPv4Network(conf["subnets"][other]["network"])
            if network.overlaps(scan) and network.prefixlen > scan.prefixlen:
                order.insert(position, index)
                break
        else:
            order.insert(0, index)
    return order


def _find_subnet(conf, address, indexes=None):
    """memory.c find_subnet (indexes None: the whole subnet list) or find_grouped_subnet (indexes:
    a shared network's subnets, in declaration order): the first subnet holding the address."""
    addr = ipaddress.IPv4Address(address)
    for index in (conf["subnet_list"] if indexes is None else indexes):
        if addr in ipaddress.IPv4Network(conf["subnets"][index]["network"]):
            return index
    return None


def _share_of(conf, subnet_index):
    return next(i for i, share in enumerate(conf["shares"]) if subnet_index in share["subnets"])


def _primary_address(entry):
    """The first IPv4 address of an interface that is not 127.0.0.1 (discover_interfaces ifp)."""
    for text in entry.get("inet", []):
        try:
            address = ipaddress.IPv4Address(text.split("/")[0])
        except ValueError:
            continue
        if str(address) != "127.0.0.1":
            return str(address)
    return None


def _discover(conf, names, table):
    """dispatch.c discover_interfaces: ({name: {"address", "share"}}, its "Can't listen" warnings)."""
    listen, warnings = {}, []
    candidates = names if names else [name for name in table if ifconfig.kind(name) not in NOT_LISTENING]
    for name in candidates:
        if name not in table or ifconfig.kind(name) in NOT_LISTENING:
            # a named interface getifaddrs never reported keeps index 0
            warnings.append("Can't listen on %s - wrong rdomain" % name)
            continue
        address = _primary_address(table[name])
        if address is None:
            warnings.append("Can't listen on %s - it has no IP address." % name)
            continue
        subnet = _find_subnet(conf, address)
        if subnet is None:
            warnings.append("Can't listen on %s - dhcpd.conf has no subnet declaration for %s." % (name, address))
            continue
        listen[name] = {"address": address, "share": _share_of(conf, subnet)}
    return listen, warnings


# --- rcctl start / stop ----------------------------------------------------------------------------

def start(root, flags):
    """What `dhcpd FLAGS` does up to daemon(): (ok, message for stderr). Writes the snapshot."""
    config, names = dhcpd.parse_flags(flags.split())
    conf, errors = _read_config(config)
    if errors:
        return False, "\n".join(errors + ["fatal in dhcpd: Configuration file errors encountered"])
    listen, messages = _discover(conf, names, _interfaces(root))
    if not listen:
        return False, "\n".join(messages + ["fatal in dhcpd: No interfaces to listen on."])
    common.atomic_write(snapshot_path(root), json.dumps(
        {"config": config, "flags": flags, "interfaces": names, "listen": listen, "conf": conf},
        indent=1, sort_keys=True) + "\n")
    return True, "\n".join(messages)


def stop(root):
    try:
        os.unlink(snapshot_path(root))
    except FileNotFoundError:
        pass


def running(root, table=None):
    """dhcpd runs: rcctl's flag and the configuration it started with."""
    if table is None:
        table = _read_json(os.path.join(root, "lab", "basetools", "rc.json"), {})
    return bool(table.get("dhcpd", {}).get("running")) and os.path.exists(snapshot_path(root))


# --- answering -------------------------------------------------------------------------------------

def _receiving(root, snapshot, interface):
    """(name, listen entry) of the interface dhcpd hears the guest's broadcast on, or None."""
    table = _interfaces(root)
    entry = table.get(interface)
    if entry is None:
        return None
    heard = [interface] if entry.get("up") else []
    if ifconfig.kind(interface) in ifconfig.BRIDGE_KINDS:
        heard += [port for port in ifconfig.forwarding_ports(table, interface)
                  if ifconfig.kind(port) in HOST_STACK_PORTS]
    for name in heard:
        if name in snapshot["listen"]:
            return name, snapshot["listen"][name]
    return None


def _answer(conf, address, subnet_index, host, listening):
    subnet = conf["subnets"][subnet_index]
    options = dict(subnet["group"]["options"])
    if host is not None:
        options.update(host["group"]["options"])
    prefixlen = ipaddress.IPv4Network(subnet["network"]).prefixlen
    if options.get("subnet-mask"):
        prefixlen = ipaddress.IPv4Network("0.0.0.0/%s" % options["subnet-mask"][0]).prefixlen
    host_group = host["group"] if host is not None else {}
    return {
        "address": address,
        "prefixlen": prefixlen,
        "routers": list(options.get("routers", [])),
        "host_name": (options.get("host-name") or [None])[0],
        "domain_name_servers": list(options.get("domain-name-servers", [])),
        "domain_name": (options.get("domain-name") or [None])[0],
        "next_server": host_group.get("next_server") or subnet["group"]["next_server"] or listening["address"],
        "filename": host_group.get("filename") or subnet["group"]["filename"],
    }


class _LeaseLock:
    """Guests ask at once: one allocation at a time per lab root."""

    def __init__(self, root):
        self.path = leases_path(root) + ".lock"
        self.handle = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, "a", encoding="utf-8")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _dynamic(root, conf, share, mac, host):
    """dhcpdiscover without a static lease: (address, subnet index) given to mac, or None."""
    fixed = {int(ipaddress.IPv4Address(a)) for h in conf["hosts"] for a in h["fixed"]}
    pool = []   # (address, subnet index), in the order dhcpd hands them out
    for index in conf["shares"][share]["subnets"]:
        for low, high in conf["subnets"][index]["ranges"]:
            pool += [(number, index) for number in range(low, high + 1)]
    if not pool:
        return None
    with _LeaseLock(root):
        leases = _read_json(leases_path(root), {})
        taken = {int(ipaddress.IPv4Address(a)) for other, given in leases.items() if other != mac for a in given}
        mine = {int(ipaddress.IPv4Address(a)) for a in leases.get(mac, [])}
        choice = next(((n, i) for n, i in pool if n in mine), None) or \
            next(((n, i) for n, i in pool if n not in taken and n not in fixed), None)
        if choice is None:
            return None     # "no free leases on subnet"
        number, index = choice
        group = conf["subnets"][index]["group"]
        if (host is None and not group["boot_unknown_clients"]) or (host is not None and not host["group"]["allow_booting"]):
            return None     # "Ignoring unknown client" / "Declining to boot client": nothing recorded
        address = str(ipaddress.IPv4Address(number))
        if address not in leases.get(mac, []):
            leases[mac] = leases.get(mac, []) + [address]
            common.atomic_write(leases_path(root), json.dumps(leases, indent=1, sort_keys=True) + "\n")
        return address, index


def lease(lab_root, interface, mac):
    """What dhcpd offers MAC (aa:bb:cc:dd:ee:ff) broadcasting on INTERFACE of the lab host, or None."""
    if not isinstance(mac, str) or not MAC.fullmatch(mac):
        raise ValueError("mac: %r is not a MAC address (six hex octets separated by ':')" % (mac,))
    if not isinstance(interface, str) or not re.fullmatch(r"[a-z]+[0-9]+", interface):
        raise ValueError("interface: %r is not an interface name (letters then a unit number)" % (interface,))
    if not running(lab_root):
        return None
    snapshot = _read_json(snapshot_path(lab_root), None)
    if snapshot is None:
        return None
    heard = _receiving(lab_root, snapshot, interface)
    if heard is None:
        return None
    _name, listening = heard
    conf, share, key = snapshot["conf"], listening["share"], _mac_key(mac)
    hosts = [host for host in conf["hosts"] if host["mac"] == key]
    for host in hosts:                       # find_host_for_network
        for address in host["fixed"]:
            index = _find_subnet(conf, address, conf["shares"][share]["subnets"])
            if index is not None:
                if not host["group"]["allow_booting"]:
                    return None
                return _answer(conf, address, index, host, listening)
    # a declaration without fixed-address lends its options to a dynamic lease (dhcpdiscover)
    plain = next((host for host in hosts if not host["fixed"]), None)
    given = _dynamic(lab_root, conf, share, key, plain)
    if given is None:
        return None
    return _answer(conf, given[0], given[1], plain, listening)
