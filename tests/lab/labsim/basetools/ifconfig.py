"""ifconfig(8) for the lab: network interfaces kept in lab/basetools/ifconfig.json.

Supports showing interfaces, `create`/`destroy` of cloneable ones (auto-created on first
use, as OpenBSD's ifconfig does), `up`/`down`, bridge(4)/veb(4) `add`/`del` of member
ports, `inet` addresses, `group`/`-group` and `description`.

Members of a bridge or veb (sys/net/if_veb.c `veb_add_port`, sys/net/if_bridge.c
`bridge_ioctl` SIOCBRDGADD): adding a port only makes it promiscuous (`ifpromisc(ifp0, 1)`),
it never sets IFF_UP, so a member keeps its own up/down state and shows PROMISC.  A down
member forwards nothing: `veb_broadcast` skips ports without IFF_RUNNING and
`veb_port_input` drops everything while the veb itself is not running.  `forwarding_ports`
answers which members of a switch pass frames (shown by `lab show`)."""

import json
import os
import re
import sys

from . import common

CLONERS = ("bridge", "veb", "vport", "tap", "tpmr", "vlan", "lo", "pflog", "enc")
SEEDED = {
    "lo0": {"up": True, "inet": ["127.0.0.1/8"], "groups": ["lo"]},
    "em0": {"up": True, "inet": ["192.0.2.10/24"], "groups": ["egress"]},
    # No hostname.em1 on a fresh host: the spare ports are down, as netstart leaves them.
    "em1": {"up": False, "inet": [], "groups": []},
    "em2": {"up": False, "inet": [], "groups": []},
}


def kind(name):
    return re.sub(r"[0-9]+$", "", name)


def load():
    table = common.load_state("ifconfig.json", None)
    if table is None:
        table = {name: dict(entry, members=[], description="") for name, entry in SEEDED.items()}
    return table


BRIDGE_KINDS = ("bridge", "veb", "tpmr")
IFF_UP, IFF_BROADCAST, IFF_RUNNING, IFF_PROMISC, IFF_SIMPLEX, IFF_MULTICAST = 0x1, 0x2, 0x40, 0x100, 0x800, 0x8000
FLAG_NAMES = ((IFF_UP, "UP"), (IFF_BROADCAST, "BROADCAST"), (IFF_RUNNING, "RUNNING"), (IFF_PROMISC, "PROMISC"),
              (IFF_SIMPLEX, "SIMPLEX"), (IFF_MULTICAST, "MULTICAST"))


def is_member(table, name):
    return any(name in entry.get("members", []) for entry in table.values())


def flags(table, name):
    """if_flags as ifconfig prints them: `8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST>`."""
    value = IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST
    if table[name]["up"]:
        value |= IFF_UP | IFF_RUNNING
    if is_member(table, name):
        value |= IFF_PROMISC
    return "%x<%s>" % (value, ",".join(label for bit, label in FLAG_NAMES if value & bit))


def forwarding_ports(table, name):
    """Members of switch `name` that pass frames: none while the switch is down, else the running ones."""
    entry = table.get(name)
    if entry is None or not entry["up"]:
        return []
    return [member for member in entry.get("members", []) if table.get(member, {}).get("up")]


def switch_report(root):
    """{switch: {up, members: {name: up}, forwarding: [...]}} of the lab host at root (for `lab show`)."""
    try:
        with open(os.path.join(root, "lab", "basetools", "ifconfig.json"), encoding="utf-8") as handle:
            table = json.load(handle)
    except FileNotFoundError:
        return {}
    return {name: {"up": entry["up"],
                   "members": {member: bool(table.get(member, {}).get("up")) for member in entry.get("members", [])},
                   "forwarding": forwarding_ports(table, name)}
            for name, entry in sorted(table.items()) if kind(name) in BRIDGE_KINDS}


def new_interface(name):
    return {"up": False, "inet": [], "groups": [kind(name)], "members": [], "description": ""}


def show(table, name):
    entry = table[name]
    bridge_like = kind(name) in BRIDGE_KINDS
    common.out("%s: flags=%s" % (name, flags(table, name)))
    common.out("\tindex %d llprio 3" % (sum(map(ord, name)) % 50 + 1))
    if entry.get("description"):
        common.out("\tdescription: %s" % entry["description"])
    if entry["groups"]:
        common.out("\tgroups: %s" % " ".join(entry["groups"]))
    for port, member in enumerate(entry.get("members", []), 1):
        common.out("\t%s flags=3<LEARNING,DISCOVER>" % member)
        common.out("\t\tport %d ifpriority 0 ifcost 0" % port)
    if not bridge_like:
        for address in entry["inet"]:
            common.out("\tinet %s" % address)


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    table = load()
    if not args or args == ["-a"]:
        for name in sorted(table):
            show(table, name)
        return 0
    if args[0] == "-g" or args[0].startswith("-"):
        common.err("usage: ifconfig [-AaC] [-M lladdr] [interface] [address_family] [address [dest_address]] [parameters]")
        return 1
    name, ops = args[0], args[1:]
    if not re.match(r"^[a-z]+[0-9]+$", name) and name not in table:
        common.err("ifconfig: %s: no such interface" % name)
        return 1
    if not ops:
        if name not in table:
            common.err("ifconfig: %s: no such interface" % name)
            return 1
        show(table, name)
        return 0
    if name not in table:
        if kind(name) not in CLONERS:
            common.err("ifconfig: %s: no such interface" % name)
            return 1
        if ops[0] != "destroy":
            table[name] = new_interface(name)
            if ops[0] == "create":
                ops = ops[1:]
    elif ops[0] == "create":
        common.err("ifconfig: SIOCIFCREATE: File exists")
        return 1
    status = 0
    entry = table.get(name)
    while ops:
        op = ops.pop(0)
        if op == "destroy":
            if entry is None or kind(name) not in CLONERS:
                common.err("ifconfig: SIOCIFDESTROY: Invalid argument" if entry else
                           "ifconfig: %s: no such interface" % name)
                return 1
            del table[name]
            entry = None
            break
        if op in ("up", "down"):
            entry["up"] = op == "up"
        elif op in ("add", "del"):
            if not ops:
                common.err("ifconfig: %s: requires an argument" % op)
                return 1
            member = ops.pop(0)
            if kind(name) not in ("bridge", "veb", "tpmr"):
                common.err("ifconfig: %s: Inappropriate ioctl for device" % name)
                status = 1
            elif member not in table:
                common.err("ifconfig: %s: %s: No such file or directory" % (name, member))
                status = 1
            elif op == "add":
                if member in entry["members"]:
                    common.err("ifconfig: %s: %s: File exists" % (name, member))
                    status = 1
                else:
                    entry["members"].append(member)
            elif member in entry["members"]:
                entry["members"].remove(member)
            else:
                common.err("ifconfig: %s: %s: No such file or directory" % (name, member))
                status = 1
        elif op == "inet" and ops:
            address = ops.pop(0)
            if ops[:1] == ["netmask"] and len(ops) >= 2:
                ops = ops[2:]
            if address not in entry["inet"]:
                entry["inet"].append(address)
        elif op in ("group", "-group") and ops:
            group = ops.pop(0)
            if op == "group" and group not in entry["groups"]:
                entry["groups"].append(group)
            elif op == "-group" and group in entry["groups"]:
                entry["groups"].remove(group)
        elif op == "description" and ops:
            entry["description"] = ops.pop(0)
        else:
            common.err("ifconfig: %s: bad value" % op)
            status = 1
            break
    common.save_state("ifconfig.json", table)
    return status
