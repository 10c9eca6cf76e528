"""sysctl(8) for the lab: read and set kernel state kept in lab/basetools/sysctl.json.

Forms: `sysctl` (all), `sysctl name ...` (prints name=value; a name may be a prefix such as
`net.inet.ip` or `hw.sensors`), `sysctl -n name` (value only), `sysctl name=value` (prints
`name: old -> new` on stdout, like OpenBSD). There is no -w, -e or -p on OpenBSD."""

import sys

from . import common

USAGE = "usage: sysctl [-Aan]\n       sysctl [-n] name[=value] ..."

# The variables the roles and the lab's tests touch, with OpenBSD's defaults.
# Integer-typed ones accept only integers, like the kernel's sysctl_int().
DEFAULTS = {
    "kern.ostype": "OpenBSD",
    "kern.osrelease": "7.8",
    "kern.version": "OpenBSD 7.8 (GENERIC.MP) #0: lab",
    "kern.maxproc": 1310,
    "kern.maxfiles": 7030,
    "hw.machine": "amd64",
    "hw.ncpuonline": 2,
    "hw.physmem": 8589934592,
    "hw.vmmenable": 1,
    "net.inet.ip.forwarding": 0,
    "net.inet.ip.arpq.maxlen": 50,
    "net.inet.ip.mforwarding": 0,
    "net.inet6.ip6.forwarding": 0,
    "net.inet.tcp.sendspace": 16384,
    "hw.sensors.sd0.drive0": "online (sd0), OK",
    "hw.sensors.sd1.drive0": "online (sd1), OK",
}
READ_ONLY = ("kern.ostype", "kern.osrelease", "kern.version", "hw.machine", "hw.ncpuonline",
             "hw.physmem")
LEVEL_NAMES = ("top", "second", "third", "fourth", "fifth")


def values():
    current = dict(DEFAULTS)
    current.update(common.load_state("sysctl.json", {}))
    return current


def invalid(name, table):
    """OpenBSD's message for the first level of `name` that names nothing."""
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if not any(key == prefix or key.startswith(prefix + ".") for key in table):
            level = LEVEL_NAMES[min(depth - 1, len(LEVEL_NAMES) - 1)]
            return "sysctl: %s level name %s in %s is invalid" % (level, parts[depth - 1], name)
    return None


def show(name, table, bare):
    keys = [key for key in sorted(table) if key == name or key.startswith(name + ".")]
    for key in keys:
        common.out(str(table[key]) if bare else "%s=%s" % (key, table[key]))
    return bool(keys)


def assign(name, value, table, changes):
    if name not in table:
        common.err(invalid(name, table) or "sysctl: %s: Operation not permitted" % name)
        return False
    if name in READ_ONLY or name.startswith("hw.sensors."):
        common.err("sysctl: %s: Operation not permitted" % name)
        return False
    old = table[name]
    if isinstance(DEFAULTS.get(name), int):
        try:
            new = int(value, 0)
        except ValueError:
            common.err("sysctl: %s: invalid" % name)
            return False
    else:
        new = value
    table[name] = new
    changes[name] = new
    common.out("%s: %s -> %s" % (name, old, new))
    return True


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    bare = False
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "-n":
            bare = True
        elif flag in ("-a", "-A"):
            continue
        else:
            common.err("sysctl: unknown option -- %s" % flag.lstrip("-")[:1])
            common.err(USAGE)
            return 1
    table = values()
    if not args:
        for key in sorted(table):
            common.out(str(table[key]) if bare else "%s=%s" % (key, table[key]))
        return 0
    status = 0
    changes = common.load_state("sysctl.json", {})
    for arg in args:
        if "=" in arg:
            name, value = arg.split("=", 1)
            if not assign(name, value, table, changes):
                status = 1
        elif not show(arg, table, bare):
            common.err(invalid(arg, table) or "sysctl: %s: value is not available" % arg)
            status = 1
    common.save_state("sysctl.json", changes)
    return status
