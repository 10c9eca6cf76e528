"""The lab's own vm.conf(5) parser: an independent re-implementation of vmd's parse.y.

The lexer follows parse.y's yylex()/lgetc() character by character (quotes, backslashes,
NUMBER vs string re-reading, macros, include).  The grammar is the yacc grammar of
parse.y, turned into LALR(1) tables at import time and driven like byacc's skeleton
(default reductions, error recovery through the `error` token, the three-token silence
after an error), so syntax errors are reported on the same lines and as often as vmd
reports them.  The semantic actions reproduce the parse-time checks and messages.
"""

import errno
import grp
import ipaddress
import os
import pwd
from dataclasses import dataclass, field

from labsim.scaled import scan_scaled
from labsim.state import strerror as _strerror

EOF = None
# parse.y marks macro expansions with the bytes 1 and 2 in the unget buffer.
START_EXPAND = "\x01"
DONE_EXPAND = "\x02"
MAX_TOKEN = 8096
LLONG_MIN = -(2 ** 63)
LLONG_MAX = 2 ** 63 - 1
PATH_MAX = 1024
IF_NAMESIZE = 16
VM_NAME_MAX = 64
VM_MAX_DISKS_PER_VM = 4
VM_MAX_NICS_PER_VM = 4
RT_TABLEID_MAX = 255
VMM_MAX_VM_MEM_SIZE = 128 * 1024 ** 3
AGENTX_CONTEXT_SIZE = 33
# vmd.h: ax_path[SUN_PATH_LEN], sizeof(sockaddr_un.sun_path) on OpenBSD
AGENTX_PATH_SIZE = 104
AGENTX_MASTER_PATH = "/var/agentx/master"
DEFAULT_LOCAL_PREFIX = "100.64.0.0/10"
DEFAULT_STAGGERED_DELAY = 30
SWITCH_TYPES = ("bridge", "veb")
# vmd.h: errno values vmd invents; strerror() prints them as unknown errors.
VMD_DISK_MISSING = 1002

KEYWORDS = {
    "add": "ADD", "agentx": "AGENTX", "allow": "ALLOW", "boot": "BOOT", "cdrom": "CDROM",
    "context": "CONTEXT", "delay": "DELAY", "device": "DEVICE", "disable": "DISABLE",
    "disk": "DISK", "down": "DOWN", "enable": "ENABLE", "format": "FORMAT", "group": "GROUP",
    "id": "VMID", "include": "INCLUDE", "inet6": "INET6", "instance": "INSTANCE",
    "interface": "INTERFACE", "interfaces": "NIFS", "lladdr": "LLADDR", "local": "LOCAL",
    "locked": "LOCKED", "memory": "MEMORY", "net": "NET", "owner": "OWNER",
    "parallel": "PARALLEL", "path": "PATH", "prefix": "PREFIX", "rdomain": "RDOMAIN",
    "sev": "SEV", "seves": "SEVES", "size": "SIZE", "socket": "SOCKET",
    "staggered": "STAGGERED", "start": "START", "switch": "SWITCH", "up": "UP", "vm": "VM",
}

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_DIGITS = frozenset("0123456789")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_SPACE = frozenset(" \t\n\v\f\r")


def _allowed_in_string(c):
    return c in _ALNUM or (c in _PUNCT and c not in "(){}!=#,")


def _allowed_to_end_number(c):
    return c in _SPACE or c in "),/}="


# ---------------------------------------------------------------------------
# Results


@dataclass
class VmSpec:
    name: str
    instance_of: object = None
    memory: object = None
    boot: object = None
    boot_device: object = None
    cdrom: object = None
    disks: list = field(default_factory=list)
    interfaces: list = field(default_factory=list)
    interfaces_count: object = None
    owner_uid: object = None
    owner_gid: object = None
    enabled: bool = True
    allow_instance: dict = field(default_factory=dict)
    sev: object = None
    line: int = 0
    file: str = ""

    @property
    def nic_count(self):
        """The effective NIC count: max(`interfaces N`, number of `interface` lines)."""
        return max(self.interfaces_count or 0, len(self.interfaces))

    @property
    def create_flags(self):
        """Which VMOP_CREATE_* flags the block set (vm_register refuses a VM with none)."""
        flags = set()
        if self.disks:
            flags.add("disk")
        if self.interfaces or self.interfaces_count is not None:
            flags.add("network")
        if self.boot:
            flags.add("kernel")
        if self.cdrom:
            flags.add("cdrom")
        if self.memory is not None:
            flags.add("memory")
        if self.instance_of is not None:
            flags.add("instance")
        return flags


@dataclass
class SwitchSpec:
    name: str
    interface: object = None
    group: object = None
    locked: bool = False
    rdomain: object = None
    up: bool = True
    enabled: bool = True
    line: int = 0


@dataclass
class Config:
    vms: list = field(default_factory=list)
    switches: list = field(default_factory=list)
    local_prefix: str = DEFAULT_LOCAL_PREFIX
    local_prefix_set: bool = False  # a `local prefix` line was read (vmd keeps its current prefix otherwise)
    local_inet6: object = False
    socket_owner: object = None
    staggered_parallel: object = None
    staggered_delay: int = DEFAULT_STAGGERED_DELAY
    agentx: object = None
    warnings: list = field(default_factory=list)


class ConfigError(Exception):
    """The file did not parse: .messages are the lines vmd prints, in order."""

    def __init__(self, messages, warnings=None, config=None):
        super().__init__("\n".join(messages))
        self.messages = list(messages)
        self.warnings = list(warnings or [])
        # What vmd had already registered before the failure (it keeps those VMs).
        self.config = config


_UNCHECKED = object()
# vmd.h: VMD_PARENT_INVALID, errno values of vm_instance()
VMD_PARENT_INVALID = 1007


def _gid(value):
    return -1 if value is None else value


def _instance_error(vm, parent):
    """vm_instance() for a config VM (registered by root): strerror text or None."""
    if parent is None:
        return _strerror(VMD_PARENT_INVALID)
    parent_disks = [disk[0] for disk in getattr(parent, "disks", [])]
    if any(disk[0] in parent_disks for disk in vm.disks):
        return _strerror(errno.EBUSY)
    parent_ifaces = list(getattr(parent, "interfaces", []))
    ifaces = list(vm.interfaces) + [{}] * max(0, (vm.interfaces_count or 0) - len(vm.interfaces))
    ifaces += parent_ifaces[len(ifaces):]
    for index, iface in enumerate(ifaces):
        for other in parent_ifaces:
            # vmd compares with the parent's NIC of the same index (a zero MAC is random)
            mine = iface.get("lladdr")
            theirs = parent_ifaces[index].get("lladdr") if index < len(parent_ifaces) else "00:00:00:00:00:00"
            if mine and mine != "00:00:00:00:00:00" and mine != theirs:
                return _strerror(errno.EBUSY)
            if iface.get("tap") and iface.get("tap") == other.get("tap"):
                return _strerror(errno.EBUSY)
    uid = vm.owner_uid or 0
    if uid != 0 and uid != (getattr(parent, "owner_uid", 0) or 0):
        return _strerror(errno.EPERM)
    gid = _gid(vm.owner_gid)
    if gid != 0 and gid != _gid(getattr(parent, "owner_gid", None)):
        return _strerror(errno.EPERM)
    if any(flag != "owner_uid" and flag != "owner_gid" for flag in vm.allow_instance):
        return _strerror(errno.EPERM)
    return None


def registration_error(vm, parent=_UNCHECKED):
    """vm_register()'s checks for a config VM outside -n mode: strerror text or None.

    For an instance, pass its parent (a VmSpec or the daemon's VM with the same
    attributes, None when vmd does not know it) to run vm_instance()'s checks too;
    duplicates and permissions of non-root users need the daemon's VM table and are
    left to the caller.
    """
    cdrom = vm.cdrom
    if vm.instance_of is not None and parent is not _UNCHECKED:
        problem = _instance_error(vm, parent)
        if problem:
            return problem
        cdrom = cdrom or getattr(parent, "cdrom", None)
    # vm_instance() clears VMOP_CREATE_INSTANCE before these checks
    if not vm.create_flags - {"instance"}:
        return _strerror(VMD_DISK_MISSING)
    # The kernel fd is never set for config VMs, so `boot` alone does not count; an
    # unchecked instance may inherit its parent's cdrom.
    unknown_cdrom = vm.instance_of is not None and parent is _UNCHECKED
    if not vm.disks and not cdrom and not unknown_cdrom:
        return _strerror(errno.EINVAL)
    name = vm.name
    if not name or name[0] in "-._" or any(c not in _ALNUM and c not in ".-_" for c in name):
        return _strerror(errno.EINVAL)
    return None


def registration_log(vm):
    """The log_warnx() line vm_register() writes before failing with the checks above."""
    if not vm.create_flags - {"instance"}:
        return "invalid configuration, no devices"
    if not vm.disks and not vm.cdrom and vm.instance_of is None:
        return "no kernel or disk/cdrom specified"
    if registration_error(vm):
        return "invalid VM name"
    return None


def _c_realpath(path):
    """realpath(3): every component must exist.  Raises OSError like the C call fails."""
    if path == "":
        raise OSError(errno.ENOENT, _strerror(errno.ENOENT))
    if len(path) >= PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, _strerror(errno.ENAMETOOLONG))
    os.stat(path)
    return os.path.realpath(path)


def _strtonum(text, minval, maxval):
    """strtonum(3): (value, None) or (None, 'invalid'|'too small'|'too large')."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or any(c not in _DIGITS for c in body):
        return None, "invalid"
    value = int(text)
    if value < minval or value < LLONG_MIN:
        return None, "too small"
    if value > maxval or value > LLONG_MAX:
        return None, "too large"
    return value, None


def _getiftype(ifname):
    """priv_getiftype(): the name part of an interface name, or None."""
    span = 0
    while span < len(ifname) and ifname[span] not in _DIGITS:
        span += 1
    if span == 0 or span >= len(ifname) or span >= IF_NAMESIZE - 1:
        return None
    unit, err = _strtonum(ifname[span:], 0, 2 ** 32 - 1)
    if err:
        return None
    return ifname[:span]


def _validgroup(name):
    """priv_validgroup(): shorter than IF_NAMESIZE and not ending in a digit."""
    length = len(name[:IF_NAMESIZE])
    if length == IF_NAMESIZE:
        return False
    return not (length > 0 and name[length - 1] in _DIGITS)


def _strtol_hex(text, pos):
    """strtol(s, &end, 16) as ether_aton uses it: (value, end) with end == pos on failure."""
    start = pos
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    negative = False
    if pos < len(text) and text[pos] in "+-":
        negative = text[pos] == "-"
        pos += 1
    if text[pos:pos + 2].lower() == "0x" and pos + 2 < len(text) and text[pos + 2] in "0123456789abcdefABCDEF":
        pos += 2
    digits_start = pos
    while pos < len(text) and text[pos] in "0123456789abcdefABCDEF":
        pos += 1
    if pos == digits_start:
        return 0, start
    value = int(text[digits_start:pos], 16)
    return (-value if negative else value), pos


def ether_aton(text):
    """OpenBSD ether_aton(3): six hex octets separated by ':'; tuple of ints or None."""
    pos = 0
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    octets = []
    for index in range(6):
        value, end = _strtol_hex(text, pos)
        if end == pos or value > 0xFF or value < 0:
            return None
        following = text[end] if end < len(text) else ""
        if not (following == ":" or (index == 5 and (following == "" or following in _SPACE))):
            return None
        octets.append(value)
        pos = end + 1
    return tuple(octets)


def _inet_net_pton4(text):
    """inet_net_pton(AF_INET, ...) for the 'a[.b[.c[.d]]]' forms: the address or None."""
    parts = text.split(".")
    if not text or len(parts) > 4:
        return None
    octets = []
    for part in parts:
        if not part or any(c not in _DIGITS for c in part) or int(part) > 255:
            return None
        octets.append(int(part))
    octets += [0] * (4 - len(octets))
    return ipaddress.IPv4Address(bytes(octets))


def parse_prefix4(text):
    """parse_prefix4(): ('a.b.c.d/len', None) or (None, errstr)."""
    mask = 16
    address = text
    if "/" in text:
        address, masktext = text.rsplit("/", 1)
        mask, err = _strtonum(masktext, 1, 16)
        if err:
            return None, err
    try:
        addr = ipaddress.IPv4Address(address) if address.count(".") == 3 else None
    except ValueError:
        addr = None
    if addr is None:
        addr = _inet_net_pton4(address)
        if addr is None:
            return None, "invalid format"
    netmask = (0xFFFFFFFF << (32 - mask)) & 0xFFFFFFFF
    if int(addr) & netmask != int(addr):
        return None, "bad mask"
    return "%s/%d" % (addr, mask), None


def parse_prefix6(text):
    """parse_prefix6(): ('addr/len', None) or (None, errstr)."""
    mask = 64
    address = text
    if "/" in text:
        address, masktext = text.rsplit("/", 1)
        mask, err = _strtonum(masktext, 0, 64)
        if err:
            return None, err
    try:
        addr = ipaddress.IPv6Address(address.split("%")[0] if "%" in address else address)
    except ValueError:
        # gai_strerror(EAI_NONAME) on OpenBSD (AI_NUMERICHOST lookups)
        return None, "name or service is not known"
    netmask = ((1 << 128) - 1) ^ ((1 << (128 - mask)) - 1)
    if int(addr) & netmask != int(addr):
        return None, "bad mask"
    return "%s/%d" % (addr, mask), None


# ---------------------------------------------------------------------------
# The grammar of parse.y (1.72; `cpus` of 1.74 left out).  Mid-rule actions are the
# empty nonterminals named "@...".  Each rule: (lhs, rhs, action method or None).

_RULES = [
    ("grammar", [], None),
    ("grammar", ["grammar", "include", "\n"], None),
    ("grammar", ["grammar", "\n"], None),
    ("grammar", ["grammar", "varset", "\n"], None),
    ("grammar", ["grammar", "main", "\n"], None),
    ("grammar", ["grammar", "switch", "\n"], None),
    ("grammar", ["grammar", "vm", "\n"], None),
    ("grammar", ["grammar", "error", "\n"], "a_grammar_error"),
    ("include", ["INCLUDE", "string"], "a_include"),
    ("varset", ["STRING", "=", "STRING"], "a_varset"),
    ("main", ["LOCAL", "INET6"], "a_local_inet6"),
    ("main", ["LOCAL", "INET6", "PREFIX", "STRING"], "a_local_inet6_prefix"),
    ("main", ["LOCAL", "PREFIX", "STRING"], "a_local_prefix"),
    ("main", ["SOCKET", "OWNER", "owner_id"], "a_socket_owner"),
    ("@agentx", [], "a_agentx_start"),
    ("main", ["AGENTX", "@agentx", "agentxopts"], "a_agentx_end"),
    ("main", ["STAGGERED", "START", "PARALLEL", "NUMBER", "DELAY", "NUMBER"], "a_staggered"),
    ("@switch", [], "a_switch_start"),
    ("switch", ["SWITCH", "string", "@switch", "{", "optnl", "switch_opts_l", "}"], "a_switch_end"),
    ("switch_opts_l", ["switch_opts_l", "switch_opts", "nl"], None),
    ("switch_opts_l", ["switch_opts", "optnl"], None),
    ("switch_opts", ["disable"], "a_switch_disable"),
    ("switch_opts", ["GROUP", "string"], "a_switch_group"),
    ("switch_opts", ["INTERFACE", "string"], "a_switch_interface"),
    ("switch_opts", ["LOCKED", "LLADDR"], "a_switch_locked"),
    ("switch_opts", ["RDOMAIN", "NUMBER"], "a_switch_rdomain"),
    ("switch_opts", ["updown"], "a_switch_updown"),
    ("@vm", [], "a_vm_start"),
    ("vm", ["VM", "string", "vm_instance", "@vm", "{", "optnl", "vm_opts_l", "}"], "a_vm_end"),
    ("vm_instance", [], "a_none"),
    ("vm_instance", ["INSTANCE", "string"], "a_second"),
    ("vm_opts_l", ["vm_opts_l", "vm_opts", "nl"], None),
    ("vm_opts_l", ["vm_opts", "optnl"], None),
    ("vm_opts", ["disable"], "a_vm_disable"),
    ("vm_opts", ["sev"], "a_vm_sev"),
    ("vm_opts", ["seves"], "a_vm_seves"),
    ("vm_opts", ["DISK", "string", "image_format"], "a_vm_disk"),
    ("vm_opts", ["local", "INTERFACE", "optstring", "iface_opts_o"], "a_vm_interface"),
    ("vm_opts", ["BOOT", "string"], "a_vm_boot"),
    ("vm_opts", ["BOOT", "DEVICE", "bootdevice"], "a_vm_bootdevice"),
    ("vm_opts", ["CDROM", "string"], "a_vm_cdrom"),
    ("vm_opts", ["NIFS", "NUMBER"], "a_vm_nifs"),
    ("vm_opts", ["MEMORY", "NUMBER"], "a_vm_memory_number"),
    ("vm_opts", ["MEMORY", "STRING"], "a_vm_memory_string"),
    ("vm_opts", ["OWNER", "owner_id"], "a_vm_owner"),
    ("vm_opts", ["instance"], None),
    ("instance", ["ALLOW", "INSTANCE", "{", "optnl", "instance_l", "}"], None),
    ("instance", ["ALLOW", "INSTANCE", "instance_flags"], None),
    ("instance_l", ["instance_flags", "optcommanl", "instance_l"], None),
    ("instance_l", ["instance_flags", "optnl"], None),
    ("instance_flags", ["BOOT"], "a_ins_boot"),
    ("instance_flags", ["MEMORY"], "a_ins_memory"),
    ("instance_flags", ["INTERFACE"], "a_ins_interface"),
    ("instance_flags", ["DISK"], "a_ins_disk"),
    ("instance_flags", ["CDROM"], "a_ins_cdrom"),
    ("instance_flags", ["INSTANCE"], "a_ins_instance"),
    ("instance_flags", ["OWNER", "owner_id"], "a_ins_owner"),
    ("owner_id", ["NUMBER"], "a_owner_number"),
    ("owner_id", ["STRING"], "a_owner_string"),
    ("agentxopt", ["CONTEXT", "STRING"], "a_agentx_context"),
    ("agentxopt", ["PATH", "STRING"], "a_agentx_path"),
    ("agentxopts", [], None),
    ("agentxopts", ["agentxopts", "agentxopt"], None),
    ("image_format", [], "a_none"),
    ("image_format", ["FORMAT", "string"], "a_image_format"),
    ("iface_opts_o", ["{", "optnl", "iface_opts_l", "}"], None),
    ("iface_opts_o", ["iface_opts_c"], None),
    ("iface_opts_o", [], None),
    ("iface_opts_l", ["iface_opts_l", "iface_opts", "optnl"], None),
    ("iface_opts_l", ["iface_opts", "optnl"], None),
    ("iface_opts_c", ["iface_opts_c", "iface_opts", "optcomma"], None),
    ("iface_opts_c", ["iface_opts"], None),
    ("iface_opts", ["SWITCH", "string"], "a_iface_switch"),
    ("iface_opts", ["GROUP", "string"], "a_iface_group"),
    ("iface_opts", ["locked", "LLADDR", "lladdr"], "a_iface_lladdr"),
    ("iface_opts", ["RDOMAIN", "NUMBER"], "a_iface_rdomain"),
    ("iface_opts", ["updown"], "a_iface_updown"),
    ("optstring", ["STRING"], "a_first"),
    ("optstring", [], "a_none"),
    ("string", ["STRING", "string"], "a_concat"),
    ("string", ["STRING"], "a_first"),
    ("lladdr", ["STRING"], "a_lladdr"),
    ("lladdr", [], "a_none"),
    ("local", [], "a_false"),
    ("local", ["LOCAL"], "a_true"),
    ("locked", [], "a_false"),
    ("locked", ["LOCKED"], "a_true"),
    ("updown", ["UP"], "a_true"),
    ("updown", ["DOWN"], "a_false"),
    ("disable", ["ENABLE"], "a_false"),
    ("disable", ["DISABLE"], "a_true"),
    ("sev", ["SEV"], "a_true"),
    ("seves", ["SEVES"], "a_true"),
    ("bootdevice", ["CDROM"], "a_bootdev_cdrom"),
    ("bootdevice", ["DISK"], "a_bootdev_disk"),
    ("bootdevice", ["NET"], "a_bootdev_net"),
    ("optcomma", [","], None),
    ("optcomma", [], None),
    ("optnl", ["\n", "optnl"], None),
    ("optnl", [], None),
    ("optcommanl", [",", "optnl"], None),
    ("optcommanl", ["nl"], None),
    ("nl", ["\n", "optnl"], None),
]


class _Tables:
    """LALR(1) tables for _RULES (dragon-book lookahead propagation), yacc conflict rules."""

    def __init__(self, rules):
        self.rules = [("$accept", ["grammar", "$end"], None)] + rules
        self.nonterminals = {rule[0] for rule in self.rules}
        self.by_lhs = {}
        for index, rule in enumerate(self.rules):
            self.by_lhs.setdefault(rule[0], []).append(index)
        self._first_sets()
        self._lr0()
        self._lookaheads()
        self._actions()

    def _first_sets(self):
        self.nullable = set()
        self.first = {nt: set() for nt in self.nonterminals}
        changed = True
        while changed:
            changed = False
            for lhs, rhs, _action in self.rules:
                if lhs not in self.nullable and all(s in self.nullable for s in rhs):
                    self.nullable.add(lhs)
                    changed = True
                before = len(self.first[lhs])
                self.first[lhs] |= self._first_seq(rhs)
                changed = changed or len(self.first[lhs]) != before

    def _first_seq(self, symbols):
        result = set()
        for symbol in symbols:
            if symbol not in self.nonterminals:
                result.add(symbol)
                return result
            result |= self.first[symbol]
            if symbol not in self.nullable:
                return result
        return result

    def _closure0(self, kernel):
        items = list(kernel)
        seen = set(items)
        for rule, dot in items:
            rhs = self.rules[rule][1]
            if dot < len(rhs) and rhs[dot] in self.nonterminals:
                for prod in self.by_lhs[rhs[dot]]:
                    if (prod, 0) not in seen:
                        seen.add((prod, 0))
                        items.append((prod, 0))
        return items

    def _lr0(self):
        self.kernels = [((0, 0),)]
        self.index = {((0, 0),): 0}
        self.goto = []
        state = 0
        while state < len(self.kernels):
            transitions = {}
            for rule, dot in self._closure0(self.kernels[state]):
                rhs = self.rules[rule][1]
                if dot < len(rhs):
                    transitions.setdefault(rhs[dot], []).append((rule, dot + 1))
            targets = {}
            for symbol, items in transitions.items():
                kernel = tuple(sorted(set(items)))
                if kernel not in self.index:
                    self.index[kernel] = len(self.kernels)
                    self.kernels.append(kernel)
                targets[symbol] = self.index[kernel]
            self.goto.append(targets)
            state += 1

    def _closure1(self, items):
        """LR(1) closure of {(rule, dot): set(lookaheads)}."""
        result = {item: set(las) for item, las in items.items()}
        work = list(result)
        while work:
            rule, dot = work.pop()
            rhs = self.rules[rule][1]
            if dot >= len(rhs) or rhs[dot] not in self.nonterminals:
                continue
            rest = rhs[dot + 1:]
            first = self._first_seq(rest)
            las = set(first)
            if all(s in self.nullable for s in rest):
                las |= result[(rule, dot)]
            for prod in self.by_lhs[rhs[dot]]:
                current = result.setdefault((prod, 0), set())
                if not las <= current:
                    current |= las
                    work.append((prod, 0))
        return result

    def _lookaheads(self):
        self.la = {(0, (0, 0)): {"$end"}}
        propagate = {}
        for state, kernel in enumerate(self.kernels):
            for item in kernel:
                self.la.setdefault((state, item), set())
                for (rule, dot), las in self._closure1({item: {"#"}}).items():
                    rhs = self.rules[rule][1]
                    if dot >= len(rhs):
                        continue
                    target = (self.goto[state][rhs[dot]], (rule, dot + 1))
                    self.la.setdefault(target, set())
                    for la in las:
                        if la == "#":
                            propagate.setdefault((state, item), []).append(target)
                        else:
                            self.la[target].add(la)
        changed = True
        while changed:
            changed = False
            for source, targets in propagate.items():
                for target in targets:
                    if not self.la[source] <= self.la[target]:
                        self.la[target] |= self.la[source]
                        changed = True

    def _actions(self):
        self.action = []
        self.defred = []
        for state, kernel in enumerate(self.kernels):
            actions = {}
            for symbol, target in self.goto[state].items():
                if symbol not in self.nonterminals:
                    actions[symbol] = ("shift", target)
            items = self._closure1({item: self.la[(state, item)] for item in kernel})
            for (rule, dot), las in items.items():
                if dot != len(self.rules[rule][1]):
                    continue
                for la in las:
                    if rule == 0:
                        continue
                    current = actions.get(la)
                    # yacc: shift beats reduce, the earlier rule beats a later one
                    if current is None or (current[0] == "reduce" and rule < current[1]):
                        actions[la] = ("reduce", rule)
            if (0, 1) in kernel:
                actions["$end"] = ("accept", None)
            reduces = {a[1] for a in actions.values() if a[0] == "reduce"}
            shifts = [a for a in actions.values() if a[0] != "reduce"]
            # byacc's sole_reduction(): reduce without reading a lookahead
            self.defred.append(reduces.pop() if not shifts and len(reduces) == 1 else None)
            self.action.append(actions)


_TABLES = None


def _tables():
    global _TABLES
    if _TABLES is None:
        _TABLES = _Tables(_RULES)
    return _TABLES


class _YYError(Exception):
    """YYERROR from a semantic action."""


class _Abort(Exception):
    """YYABORT: the parser gave up (EOF during error recovery)."""


class _File:
    def __init__(self, name, data, lineno):
        self.name = name
        self.data = data
        self.pos = 0
        self.unget = []
        self.eof_reached = False
        self.lineno = lineno
        self.errors = 0

    def getc(self):
        if self.pos < len(self.data):
            self.pos += 1
            return self.data[self.pos - 1]
        return EOF


def _read_conf(path):
    """fopen()+read of a config file as text with one char per byte; OSError on failure."""
    if os.path.isdir(path):
        # fopen() of a directory succeeds; reading it yields EOF at once
        return ""
    with open(path, "rb") as handle:
        return handle.read().decode("latin-1")


def _internal(value):
    """Real text to the parser's one-char-per-byte form."""
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def _text(value):
    """Parser strings hold one char per byte; give callers real (UTF-8) text."""
    if isinstance(value, str):
        return value.encode("latin-1").decode("utf-8", "surrogateescape")
    return value


class _Parser:
    def __init__(self, path, test_mode, macros, register):
        self.test_mode = test_mode
        self.register = register
        self.messages = []
        self.config = Config()
        self.symbols = []  # [name, value, used, persist] in TAILQ order
        for name, value in (macros or {}).items():
            self._symset(_internal(name), _internal(str(value)), True)
        self.files = []
        self.file = None
        self.topfile = None
        self.expanding = False
        self.lineno = 0
        self.kernel = None
        self.path = _internal(path)

    # --- logging -----------------------------------------------------------
    def yyerror(self, message):
        self.file.errors += 1
        self.messages.append("%s:%d: %s" % (_text(self.file.name), self.lineno, _text(message)))

    def log(self, message):
        self.messages.append(_text(message))

    # --- macros ------------------------------------------------------------
    def _symset(self, name, value, persist):
        for sym in self.symbols:
            if sym[0] == name:
                if sym[3]:
                    return
                self.symbols.remove(sym)
                break
        self.symbols.append([name, value, False, persist])

    def _symget(self, name):
        for sym in self.symbols:
            if sym[0] == name:
                sym[2] = True
                return sym[1]
        return None

    # --- files -------------------------------------------------------------
    def pushfile(self, name):
        try:
            data = _read_conf(_text(name))
        except OSError:
            return None
        nfile = _File(name, data, 0 if self.files else 1)
        self.files.append(nfile)
        return nfile

    def popfile(self):
        index = self.files.index(self.file)
        if index > 0:
            self.files[index - 1].errors += self.file.errors
        self.files.remove(self.file)
        self.file = self.files[index - 1] if index > 0 else None
        return EOF if self.file is None else 0

    # --- lexer (parse.y igetc/lgetc/lungetc/findeol/yylex) -----------------
    def igetc(self):
        while True:
            if self.file.unget:
                c = self.file.unget.pop()
            else:
                c = self.file.getc()
            if c == START_EXPAND:
                self.expanding = True
            elif c == DONE_EXPAND:
                self.expanding = False
            else:
                return c

    def lgetc(self, quotec):
        if quotec:
            c = self.igetc()
            if c is EOF:
                self.yyerror("reached end of file while parsing quoted string")
                if self.file is self.topfile or self.popfile() is EOF:
                    return EOF
                return quotec
            return c
        while True:
            c = self.igetc()
            if c != "\\":
                break
            nxt = self.igetc()
            if nxt != "\n":
                c = nxt
                break
            self.lineno = self.file.lineno
            self.file.lineno += 1
        if c in (" ", "\t"):
            # parse.y compresses blanks reading the stream itself, not the unget buffer
            while True:
                c = self.file.getc()
                if c not in (" ", "\t"):
                    break
            if c is not EOF:
                self.file.pos -= 1
            c = " "
        if c is EOF:
            # a fake newline at the first EOF of each file keeps line counts right
            if not self.file.eof_reached:
                self.file.eof_reached = True
                return "\n"
            while c is EOF:
                if self.file is self.topfile or self.popfile() is EOF:
                    return EOF
                c = self.igetc()
        return c

    def lungetc(self, c):
        if c is not EOF:
            self.file.unget.append(c)

    def findeol(self):
        while True:
            c = self.lgetc(None)
            if c == "\n":
                self.file.lineno += 1
                break
            if c is EOF:
                break
        return ("ERROR", None)

    def yylex(self):
        while True:
            buf = []
            c = self.lgetc(None)
            while c in (" ", "\t"):
                c = self.lgetc(None)
            self.lineno = self.file.lineno
            if c == "#":
                while True:
                    c = self.lgetc(None)
                    if c == "\n" or c is EOF:
                        break
            if c == "$" and not self.expanding:
                while True:
                    c = self.lgetc(None)
                    if c is EOF:
                        return ("$end", None)
                    if len(buf) + 1 >= MAX_TOKEN - 1:
                        self.yyerror("string too long")
                        return self.findeol()
                    if c in _ALNUM or c == "_":
                        buf.append(c)
                        continue
                    self.lungetc(c)
                    break
                name = "".join(buf)
                value = self._symget(name)
                if value is None:
                    self.yyerror("macro '%s' not defined" % name)
                    return self.findeol()
                self.lungetc(DONE_EXPAND)
                for char in reversed(value):
                    self.lungetc(char)
                self.lungetc(START_EXPAND)
                continue
            break
        if c in ("'", '"'):
            return self._lex_quoted(c)
        if c == "-" or (c is not EOF and c in _DIGITS):
            token = self._lex_number(c, buf)
            if token is not None:
                return token
            c = buf.pop()
        if c is not EOF and (c in _ALNUM or c in ":_/"):
            while True:
                buf.append(c)
                if len(buf) >= MAX_TOKEN:
                    self.yyerror("string too long")
                    return self.findeol()
                c = self.lgetc(None)
                if c is EOF or not _allowed_in_string(c):
                    break
            self.lungetc(c)
            word = "".join(buf)
            if word in KEYWORDS:
                return (KEYWORDS[word], None)
            return ("STRING", word)
        if c == "\n":
            self.lineno = self.file.lineno
            self.file.lineno += 1
        if c is EOF or c == "\0":
            # yylex() returns the NUL char itself: token 0, the end of input for yacc
            return ("$end", None)
        return (c, None)

    def _lex_quoted(self, quotec):
        buf = []
        while True:
            c = self.lgetc(quotec)
            if c is EOF:
                return ("$end", None)
            if c == "\n":
                # newlines inside quotes are dropped from the value
                self.file.lineno += 1
                continue
            if c == "\\":
                nxt = self.lgetc(quotec)
                if nxt is EOF:
                    return ("$end", None)
                if nxt in (quotec, " ", "\t"):
                    c = nxt
                elif nxt == "\n":
                    self.file.lineno += 1
                    continue
                else:
                    self.lungetc(nxt)
            elif c == quotec:
                break
            elif c == "\0":
                self.yyerror("syntax error")
                return self.findeol()
            if len(buf) + 1 >= MAX_TOKEN - 1:
                self.yyerror("string too long")
                return self.findeol()
            buf.append(c)
        return ("STRING", "".join(buf))

    def _lex_number(self, c, buf):
        """NUMBER token, or None with buf = [first char] to be re-read as a word."""
        while True:
            buf.append(c)
            if len(buf) >= MAX_TOKEN:
                self.yyerror("string too long")
                return self.findeol()
            c = self.lgetc(None)
            if c is EOF or c not in _DIGITS:
                break
        self.lungetc(c)
        if not (len(buf) == 1 and buf[0] == "-") and (c is EOF or _allowed_to_end_number(c)):
            text = "".join(buf)
            value, err = _strtonum(text, LLONG_MIN, LLONG_MAX)
            if err:
                self.yyerror('"%s" invalid number: %s' % (text, err))
                return self.findeol()
            return ("NUMBER", value)
        while len(buf) > 1:
            self.lungetc(buf.pop())
        if buf[0] == "-":
            buf.pop()
            return ("-", None)
        return None

    # --- driver (byacc skeleton) -------------------------------------------
    def yyparse(self):
        tables = _tables()
        states = [0]
        values = [None]
        token = None
        errflag = 0
        while True:
            state = states[-1]
            rule = tables.defred[state]
            if rule is None:
                if token is None:
                    token = self.yylex()
                act = tables.action[state].get(token[0])
                if act is not None and act[0] == "shift":
                    states.append(act[1])
                    values.append(token[1])
                    token = None
                    if errflag > 0:
                        errflag -= 1
                    continue
                if act is not None and act[0] == "accept":
                    return
                if act is not None:
                    rule = act[1]
                else:
                    if not errflag:
                        self.yyerror("syntax error")
                    errflag, token = self._recover(tables, states, values, token, errflag)
                    continue
            lhs, rhs, action = tables.rules[rule]
            args = values[len(values) - len(rhs):] if rhs else []
            try:
                if lhs.startswith("@"):
                    result = getattr(self, action)(values)
                else:
                    result = getattr(self, action)(args) if action else (args[0] if args else None)
            except _YYError:
                errflag, token = self._recover(tables, states, values, token, errflag)
                continue
            if rhs:
                del states[-len(rhs):]
                del values[-len(rhs):]
            states.append(tables.goto[states[-1]][lhs])
            values.append(result)

    def _recover(self, tables, states, values, token, errflag):
        """yyerrlab/yyinrecovery: returns the new (errflag, lookahead)."""
        if errflag < 3:
            while True:
                act = tables.action[states[-1]].get("error")
                if act is not None and act[0] == "shift":
                    states.append(act[1])
                    values.append(None)
                    return 3, token
                if len(states) <= 1:
                    raise _Abort()
                states.pop()
                values.pop()
        if token is not None and token[0] == "$end":
            raise _Abort()
        return errflag, None

    # --- parse_config ------------------------------------------------------
    def run(self, default_file):
        self.file = self.pushfile(self.path)
        if self.file is None:
            try:
                _read_conf(_text(self.path))
                code = errno.EIO
            except OSError as exc:
                code = exc.errno
            if code == errno.ENOENT and default_file:
                return True
            self.log("failed to open %s: %s" % (self.path, _strerror(code)))
            return code == errno.ENOENT
        self.topfile = self.file
        try:
            self.yyparse()
        except _Abort:
            pass
        errors = sum(f.errors for f in self.files)
        self.files = []
        for sym in self.symbols:
            if not sym[2]:
                self.config.warnings.append("warning: macro '%s' not used" % _text(sym[0]))
        return errors == 0

    # --- semantic actions --------------------------------------------------
    def a_none(self, args):
        return None

    def a_first(self, args):
        return args[0]

    def a_second(self, args):
        return args[1]

    def a_true(self, args):
        return True

    def a_false(self, args):
        return False

    def a_concat(self, args):
        return args[0] + args[1]

    def a_grammar_error(self, args):
        self.file.errors += 1

    def a_include(self, args):
        nfile = self.pushfile(args[1])
        if nfile is None:
            self.yyerror("failed to include file %s" % args[1])
            raise _YYError()
        self.file = nfile
        self.lungetc("\n")

    def a_varset(self, args):
        name, value = args[0], args[2]
        if any(c in _SPACE for c in name[1:]):
            self.yyerror("macro name cannot contain whitespace")
            raise _YYError()
        self._symset(name, value, False)

    def a_local_inet6(self, args):
        if not self.config.local_inet6:
            self.config.local_inet6 = True

    def a_local_inet6_prefix(self, args):
        prefix, err = parse_prefix6(args[3])
        if err:
            self.yyerror("invalid local inet6 prefix: %s" % err)
            raise _YYError()
        self.config.local_inet6 = prefix

    def a_local_prefix(self, args):
        prefix, err = parse_prefix4(args[2])
        if err:
            self.yyerror("invalid local prefix: %s" % err)
            raise _YYError()
        self.config.local_prefix = prefix
        self.config.local_prefix_set = True

    def a_socket_owner(self, args):
        uid, gid = args[2]
        self.config.socket_owner = (uid, 0 if gid == -1 else gid)

    def a_agentx_start(self, values):
        self.config.agentx = {"context": self.config.agentx["context"] if self.config.agentx else "",
                              "path": self.config.agentx["path"] if self.config.agentx else ""}

    def a_agentx_end(self, args):
        if not self.config.agentx["path"]:
            self.config.agentx["path"] = AGENTX_MASTER_PATH

    def a_agentx_context(self, args):
        if len(args[1]) >= AGENTX_CONTEXT_SIZE:
            self.yyerror("agentx context too large")
            raise _YYError()
        self.config.agentx["context"] = _text(args[1])

    def a_agentx_path(self, args):
        if len(args[1]) >= AGENTX_PATH_SIZE:
            self.yyerror("agentx path too large")
            raise _YYError()
        self.config.agentx["path"] = _text(args[1])
        if not args[1].startswith("/"):
            self.yyerror("agentx path is not absolute")
            raise _YYError()

    def a_staggered(self, args):
        self.config.staggered_parallel = args[3]
        self.config.staggered_delay = args[5]

    def a_switch_start(self, values):
        self.switch = SwitchSpec(name=_text(values[-1]), line=self.lineno)
        self.vm_disabled = False

    def a_switch_end(self, args):
        if self.switch.interface is None:
            self.yyerror('switch "%s" is missing interface name' % self.switch.name)
            raise _YYError()
        self.switch.enabled = not self.vm_disabled
        self.config.switches.append(self.switch)

    def a_switch_disable(self, args):
        self.vm_disabled = args[0]

    def a_switch_group(self, args):
        if not _validgroup(args[1]):
            self.yyerror("invalid group name: %s" % args[1])
            raise _YYError()
        self.switch.group = _text(args[1])

    def a_switch_interface(self, args):
        name = args[1]
        if _getiftype(name) not in SWITCH_TYPES:
            self.yyerror("invalid switch interface: %s" % name)
            raise _YYError()
        if len(name) >= IF_NAMESIZE:
            self.yyerror("switch interface too long: %s" % name)
            raise _YYError()
        self.switch.interface = name

    def a_switch_locked(self, args):
        self.switch.locked = True

    def a_switch_rdomain(self, args):
        if args[1] < 0 or args[1] > RT_TABLEID_MAX:
            self.yyerror("invalid rdomain: %d" % args[1])
            raise _YYError()
        self.switch.rdomain = args[1]

    def a_switch_updown(self, args):
        self.switch.up = args[0]

    def a_vm_start(self, values):
        name, instance = values[-2], values[-1]
        self.vm_disabled = False
        self.iface = self._new_iface()
        self.memory_set = False
        if instance is not None:
            if len(name) >= VM_NAME_MAX:
                self.yyerror("vm %s name too long" % name)
                raise _YYError()
            parent, name = name, instance
        else:
            parent = None
        if len(name) >= VM_NAME_MAX:
            self.yyerror("vm name too long")
            raise _YYError()
        self.vm = VmSpec(name=_text(name), instance_of=_text(parent), line=self.lineno,
                         file=_text(self.file.name))
        self.owner = None

    def a_vm_end(self, args):
        vm = self.vm
        vm.enabled = not self.vm_disabled
        vm.boot = _text(self.kernel)
        if not self.test_mode and self.register is not None:
            failure = self.register(vm)
            if failure:
                self.yyerror('vm "%s" failed: %s' % (vm.name, failure))
                raise _YYError()
        self.config.vms.append(vm)
        # parse.y forgets the kernel only here: a block that failed leaks it into the next
        self.kernel = None

    def a_vm_disable(self, args):
        self.vm_disabled = args[0]

    def a_vm_sev(self, args):
        # only sets vmc_sev: a `seves` seen before stays in force
        if self.vm.sev is None:
            self.vm.sev = "sev"

    def a_vm_seves(self, args):
        self.vm.sev = "seves"

    def a_vm_disk(self, args):
        word, fmt = args[1], args[2]
        failed = False
        if len(self.vm.disks) >= VM_MAX_DISKS_PER_VM:
            self.log("too many disks")
            failed = True
        else:
            try:
                path = _c_realpath(_text(word))
            except OSError as exc:
                self.log("disk %s: %s" % (word, _strerror(exc.errno)))
                failed = True
            else:
                if len(path.encode("utf-8", "surrogateescape")) >= PATH_MAX:
                    self.log("disk path too long")
                    failed = True
        if failed:
            self.yyerror("failed to parse disks: %s" % word)
            raise _YYError()
        self.vm.disks.append((path, fmt))

    @staticmethod
    def _new_iface():
        return {"local": False, "tap": None, "switch": None, "group": None, "lladdr": None,
                "locked": False, "rdomain": None, "up": True}

    def a_vm_interface(self, args):
        local, name = args[0], args[2]
        iface, self.iface = self.iface, self._new_iface()
        count = len(self.vm.interfaces) + 1
        if count > VM_MAX_NICS_PER_VM:
            self.yyerror("too many interfaces: %d" % count)
            raise _YYError()
        if name is not None:
            if name != "tap" and _getiftype(name) != "tap":
                self.yyerror("invalid interface: %s" % name)
                raise _YYError()
            if len(name) >= IF_NAMESIZE:
                self.yyerror("interface name too long: %s" % name)
                raise _YYError()
        iface["local"] = bool(local)
        iface["tap"] = name
        self.vm.interfaces.append(iface)

    def a_iface_switch(self, args):
        if len(args[1]) >= VM_NAME_MAX:
            self.yyerror("switch name too long: %s" % args[1])
            raise _YYError()
        self.iface["switch"] = _text(args[1])

    def a_iface_group(self, args):
        if not _validgroup(args[1]):
            self.yyerror("invalid group name: %s" % args[1])
            raise _YYError()
        self.iface["group"] = _text(args[1])

    def a_iface_lladdr(self, args):
        if args[0]:
            self.iface["locked"] = True
        mac = args[2]
        self.iface["lladdr"] = None if mac is None or not any(mac) else ":".join("%02x" % o for o in mac)

    def a_lladdr(self, args):
        mac = ether_aton(args[0])
        if mac is None:
            # parse.y's format string ends in "\n", so vmd prints an empty line after it
            self.yyerror("invalid address: %s\n" % args[0])
            raise _YYError()
        return mac

    def a_iface_rdomain(self, args):
        if args[1] < 0 or args[1] > RT_TABLEID_MAX:
            self.yyerror("invalid rdomain: %d" % args[1])
            raise _YYError()
        self.iface["rdomain"] = args[1]

    def a_iface_updown(self, args):
        self.iface["up"] = args[0]

    def a_vm_boot(self, args):
        if self.kernel is not None:
            self.yyerror("kernel specified more than once")
            raise _YYError()
        try:
            path = _c_realpath(_text(args[1]))
        except OSError as exc:
            self.yyerror("kernel path not found: %s" % _strerror(exc.errno))
            raise _YYError()
        self.kernel = _internal(path)

    def a_vm_bootdevice(self, args):
        self.vm.boot_device = args[2]

    def a_bootdev_cdrom(self, args):
        return "cdrom"

    def a_bootdev_disk(self, args):
        return "disk"

    def a_bootdev_net(self, args):
        return "net"

    def a_vm_cdrom(self, args):
        if self.vm.cdrom:
            self.yyerror("cdrom specified more than once")
            raise _YYError()
        if len(args[1]) >= PATH_MAX:
            self.yyerror("cdrom name too long")
            raise _YYError()
        self.vm.cdrom = _text(args[1]) or None

    def a_vm_nifs(self, args):
        # parse.y tests the count for zero, so `interfaces 0` may be given again
        if self.vm.interfaces_count:
            self.yyerror("interfaces specified more than once")
            raise _YYError()
        if args[1] < 0 or args[1] > VM_MAX_NICS_PER_VM:
            self.yyerror("too many interfaces: %d" % args[1])
            raise _YYError()
        self.vm.interfaces_count = args[1]

    def _parse_size(self, word, value):
        if word is not None:
            try:
                value = scan_scaled(word)
            except OSError as exc:
                self.log("invalid memory size: %s: %s" % (word, _strerror(exc.errno)))
                return None
        if value < 1024 * 1024:
            self.log("memory size must be at least 1MB")
            return None
        if value > VMM_MAX_VM_MEM_SIZE:
            self.log("memory size too large (limit is 128G)")
            return None
        return value // (1024 * 1024) * (1024 * 1024)

    def a_vm_memory_number(self, args):
        if self.vm.memory:
            self.yyerror("memory specified more than once")
            raise _YYError()
        size = self._parse_size(None, args[1])
        if size is None:
            self.yyerror("failed to parse size: %d" % args[1])
            raise _YYError()
        self.vm.memory = size

    def a_vm_memory_string(self, args):
        if self.vm.memory:
            self.yyerror("argument specified more than once")
            raise _YYError()
        size = self._parse_size(args[1], 0)
        if size is None:
            self.yyerror("failed to parse size: %s" % args[1])
            raise _YYError()
        self.vm.memory = size

    def a_vm_owner(self, args):
        uid, gid = args[1]
        self.vm.owner_uid = uid
        self.vm.owner_gid = None if gid == -1 else gid

    def _allow(self, flag, value=True):
        self.vm.allow_instance[flag] = value

    def a_ins_boot(self, args):
        self._allow("boot")

    def a_ins_memory(self, args):
        self._allow("memory")

    def a_ins_interface(self, args):
        self._allow("interface")

    def a_ins_disk(self, args):
        self._allow("disk")

    def a_ins_cdrom(self, args):
        self._allow("cdrom")

    def a_ins_instance(self, args):
        self._allow("instance")

    def a_ins_owner(self, args):
        uid, gid = args[1]
        # vmc_insowner as vmd keeps it: gid -1 means no group
        self._allow("owner_uid", uid)
        self._allow("owner_gid", gid)

    def a_owner_number(self, args):
        return (args[0], -1)

    def a_owner_string(self, args):
        text = args[0]
        user, group = text, None
        if ":" in text:
            user, group = text.split(":", 1)
        uid, gid = 0, -1
        if user:
            try:
                uid = pwd.getpwnam(_text(user)).pw_uid
            except KeyError:
                self.yyerror("failed to get user: %s" % user)
                raise _YYError()
        if group:
            try:
                gid = grp.getgrnam(_text(group)).gr_gid
            except KeyError:
                self.yyerror("failed to get group: %s" % group)
                raise _YYError()
        return (uid, gid)

    def a_image_format(self, args):
        fmt = args[1].lower()
        if fmt not in ("raw", "qcow2"):
            self.yyerror("unrecognized disk format %s" % args[1])
            raise _YYError()
        return fmt


def parse_file(path, *, test_mode=False, macros=None, register=None, default_file=False):
    """Parse a vm.conf like vmd's parse_config(); returns a Config or raises ConfigError.

    macros: -D definitions (persistent: the file cannot override them).
    register: outside test_mode, called as register(vm) where vmd calls vm_register()
    (at the end of each vm block); returns None or the strerror text that makes vmd
    report `<file>:<line>: vm "<name>" failed: <text>` and fail the whole load.  Without
    it the caller registers the VMs itself (see registration_error).
    default_file: a missing default /etc/vm.conf is silently fine; a missing -f file
    only warns (`failed to open <file>: No such file or directory`).
    """
    parser = _Parser(path, test_mode, macros, register)
    ok = parser.run(default_file)
    config = parser.config
    if not ok:
        raise ConfigError(parser.messages, config.warnings, config)
    config.warnings = parser.messages + config.warnings
    return config
