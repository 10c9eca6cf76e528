"""pfctl(8) for the lab: parse-check and load pf.conf(5) rule sets.

What the parser checks: braces balance (across lines, for lists and inline anchors); each
statement starts with a pf.conf keyword (or is a macro definition); every `$macro` outside
quotes is defined earlier; `include` and `load anchor ... from` files exist and parse too.
What it does not check: the grammar of a rule after its first word (addresses, ports,
options, their order), tables' contents, interface names, queues.

The loaded rule set lives in lab/basetools/pf.json; `-sr` prints the loaded statements with
macros expanded and blanks collapsed (not pfctl's fully normalised rule text).

Tables (sbin/pfctl/pfctl_table.c pfctl_table(), pf.conf(5) TABLES): `table <name> [persist|const]
[{ addr ... }]` in a loaded file (re)defines the table of that ruleset (main or the -a anchor)
with the file's addresses; `-t name -T add|delete|show|flush [addr ...]` (with -a for an
anchor's table) change or print it. `add` creates a missing table ("1 table created."); the
counts go to stderr as "N/M addresses added." / "N/M addresses deleted." / "N addresses
deleted.", `show` prints "   addr" lines, and a missing table is "pfctl: Table does not exist."
(radix_perror, ESRCH). Only single IPv4/IPv6 addresses and networks are modelled (no host
names, no `!`). The revisions of pfctl_table.c read here are old ones (the counts and messages
match); "1 table created." for `add` on a missing table is the newer CREATE_TABLE behaviour,
not read in the stored source: a guess."""

import ipaddress
import os
import re
import sys

from . import common

USAGE = """usage: pfctl [-deghNnPqrvz] [-a anchor] [-D macro=value] [-F modifier]
\t[-f file] [-i interface] [-K host | network] [-k host | network | gateway | label | id]
\t[-L statefile] [-o level] [-p device] [-S statefile] [-s modifier [-R id]]
\t[-t table -T command [address ...]] [-V rdomain] [-x level]"""

KEYWORDS = ("anchor", "antispoof", "block", "include", "load", "match", "pass", "queue",
            "set", "table")
IN_ANCHOR_KEYWORDS = ("anchor", "antispoof", "block", "match", "pass", "table")
MACRO_DEF = re.compile(r"^([A-Za-z0-9_]+)\s*=\s*(.*)$")
MACRO_USE = re.compile(r"\$([A-Za-z0-9_]+)")
LOAD_ANCHOR = re.compile(r'^load\s+anchor\s+("[^"]*"|\S+)\s+from\s+("[^"]*"|\S+)\s*$')


class Ruleset:
    def __init__(self):
        self.errors = []
        self.main = []
        self.anchors = {}


def unquote(word):
    return word[1:-1] if len(word) >= 2 and word[0] == word[-1] == '"' else word


def expand(text, macros, filename, number, errors):
    """Expand $macros outside double quotes; undefined ones are errors."""
    pieces = re.split(r'("[^"]*")', text)
    for index, piece in enumerate(pieces):
        if piece.startswith('"'):
            continue

        def substitute(match):
            name = match.group(1)
            if name not in macros:
                errors.append("%s:%d: macro '%s' not defined" % (filename, number, name))
                return ""
            return macros[name]
        pieces[index] = MACRO_USE.sub(substitute, piece)
    return "".join(pieces)


def parse_file(path, ruleset, target, display=None, depth=0):
    """Parse one file into ruleset; `target` is the list the statements go to."""
    display = display or path
    try:
        text = common.read_text(path)
    except OSError as exc:
        ruleset.errors.append("pfctl: %s: %s" % (display, exc.strerror))
        return
    macros = {}
    brace_depth = 0
    statement, start = "", 0
    anchor_stack = []
    lines = common.logical_lines(text)
    for number, raw in lines:
        line = common.strip_comment(raw).strip()
        if not line:
            continue
        if brace_depth == 0 and not anchor_stack:
            definition = MACRO_DEF.match(line)
            if definition and definition.group(1) not in KEYWORDS:
                value = definition.group(2).strip()
                macros[definition.group(1)] = unquote(expand(value, macros, display, number, ruleset.errors))
                continue
        first = line.split()[0].split("{")[0]
        if not statement:
            allowed = IN_ANCHOR_KEYWORDS if anchor_stack else KEYWORDS
            if line.startswith("}") and anchor_stack:
                pass
            elif first not in allowed:
                ruleset.errors.append("%s:%d: syntax error" % (display, number))
                continue
            start = number
        for char in re.sub(r'"[^"]*"', "", line):
            if char == "{":
                brace_depth += 1
            elif char == "}":
                brace_depth -= 1
                if brace_depth < 0:
                    ruleset.errors.append("%s:%d: syntax error" % (display, number))
                    brace_depth = 0
        statement = (statement + " " + line).strip()
        if brace_depth > len(anchor_stack) and re.match(r'^anchor\s+("[^"]*"|\S+)\s*(\S.*)?\{$', statement) \
                and statement.count("{") == 1:
            # inline anchor block: its rules are statements of their own
            name = unquote(statement.split()[1])
            anchor_stack.append(name)
            ruleset.anchors.setdefault(name, [])
            target.append(expand(statement[:-1].strip(), macros, display, start, ruleset.errors))
            statement = ""
            continue
        if brace_depth > len(anchor_stack):
            continue  # a list spanning lines
        if statement == "}" and anchor_stack:
            anchor_stack.pop()
            statement = ""
            continue
        expanded = " ".join(expand(statement, macros, display, start, ruleset.errors).split())
        statement = ""
        words = expanded.split()
        if words[0] == "include" and not anchor_stack:
            if len(words) != 2 or depth > 8:
                ruleset.errors.append("%s:%d: syntax error" % (display, start))
            else:
                parse_file(unquote(words[1]), ruleset, target, depth=depth + 1)
            continue
        if words[0] == "load":
            match = LOAD_ANCHOR.match(expanded)
            if not match:
                ruleset.errors.append("%s:%d: syntax error" % (display, start))
                continue
            name, filename = unquote(match.group(1)), unquote(match.group(2))
            rules = ruleset.anchors.setdefault(name, [])
            del rules[:]
            parse_file(filename, ruleset, rules, depth=depth + 1)
            continue
        (ruleset.anchors[anchor_stack[-1]] if anchor_stack else target).append(expanded)
    if brace_depth or anchor_stack or statement:
        ruleset.errors.append("%s:%d: syntax error" % (display, lines[-1][0] if lines else 1))


TABLE_DEF = re.compile(r'^table\s+<([^>\s]+)>\s*(.*)$')


def loaded():
    state = common.load_state("pf.json", {"enabled": False, "main": [], "anchors": {}, "loads": 0, "file": None})
    state.setdefault("tables", {})
    return state


def table_key(anchor, name):
    """Tables live per ruleset: the main one ("") or an anchor's."""
    return "%s:%s" % (anchor or "", name)


def define_tables(state, anchor, statements):
    """`table <name> ... { addrs }` statements of a loaded ruleset replace that table's addresses."""
    for statement in statements:
        match = TABLE_DEF.match(statement)
        if match:
            listed = re.search(r"\{([^}]*)\}", match.group(2))
            addresses = [a for a in re.split(r"[\s,]+", listed.group(1)) if a] if listed else []
            state["tables"][table_key(anchor, match.group(1))] = [normalise(a) or a for a in addresses]


def normalise(text):
    """An address or network as pfctl prints it (host addresses without /32 or /128), or None."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def table_command(state, anchor, name, command, addresses):
    """pfctl_table.c pfctl_table(): one -T command; returns the exit status."""
    key = table_key(anchor, name)
    table = state["tables"].get(key)
    parsed = []
    for text in addresses:
        address = normalise(text)
        if address is None:
            common.err('pfctl: illegal address: "%s"' % text)  # append_addr()
            return 1
        parsed.append(address)
    if command == "add":
        if table is None:
            table = state["tables"][key] = []
            common.err("1 table created.")
        added = [a for a in dict.fromkeys(parsed) if a not in table]
        table.extend(added)
        common.err("%d/%d addresses added." % (len(added), len(parsed)))
        return 0
    if table is None:
        common.err("pfctl: Table does not exist.")
        return 1
    if command == "delete":
        deleted = [a for a in dict.fromkeys(parsed) if a in table]
        state["tables"][key] = [a for a in table if a not in deleted]
        common.err("%d/%d addresses deleted." % (len(deleted), len(parsed)))
    elif command == "flush":
        state["tables"][key] = []
        common.err("%d addresses deleted." % len(table))
    elif command == "show":
        for address in table:
            common.out("   %s" % address)
    return 0


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    opts = {"n": False, "f": None, "a": None, "s": None, "e": False, "d": False, "q": False, "t": None, "T": None}
    addresses = []
    index = 0
    while index < len(args):
        arg = args[index]
        if opts["T"] is not None and not arg.startswith("-"):
            addresses.append(arg)  # pfctl takes the operands after -T as addresses
            index += 1
            continue
        if not arg.startswith("-") or arg == "-":
            common.err(USAGE)
            return 1
        letters = arg[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in "fastT":
                value = letters or (args[index + 1] if index + 1 < len(args) else None)
                if value is None:
                    common.err("pfctl: option requires an argument -- %s" % letter)
                    common.err(USAGE)
                    return 1
                if not letters:
                    index += 1
                opts[letter] = value
                letters = ""
            elif letter in "nedqv":
                opts[letter] = True
            else:
                common.err("pfctl: unknown option -- %s" % letter)
                common.err(USAGE)
                return 1
        index += 1
    # One change at a time, as the kernel's: pfioctl() (sys/net/pf_ioctl.c) makes each table or ruleset change under
    # PF_LOCK, so two pfctl runs at once never lose one's change (pf.json is read, changed and written under a lock).
    with common.state_lock("pf.json"):
        return _run(opts, addresses)


def _run(opts, addresses):
    state = loaded()
    if (opts["t"] is None) != (opts["T"] is None) or (addresses and opts["T"] not in ("add", "delete")) \
            or (opts["T"] is not None and opts["T"] not in ("add", "delete", "show", "flush")):
        common.err(USAGE)
        return 1
    if opts["T"] is not None:
        status = table_command(state, opts["a"], opts["t"], opts["T"], addresses)
        if not opts["n"] and opts["T"] != "show":
            common.save_state("pf.json", state)
        return status
    if opts["f"]:
        ruleset = Ruleset()
        target = []
        parse_file(opts["f"], ruleset, target)
        if ruleset.errors:
            for line in ruleset.errors:
                common.err(line)
            common.err("pfctl: Syntax error in config file: pf rules not loaded")
            return 1
        if not opts["n"]:
            if opts["a"]:
                state["anchors"][opts["a"]] = target
                define_tables(state, opts["a"], target)
                for name, rules in ruleset.anchors.items():
                    state["anchors"][opts["a"] + "/" + name] = rules
                    define_tables(state, opts["a"] + "/" + name, rules)
            else:
                state["main"] = target
                state["anchors"] = ruleset.anchors
                state["file"] = os.path.abspath(opts["f"])
                define_tables(state, "", target)
                for name, rules in ruleset.anchors.items():
                    define_tables(state, name, rules)
            state["loads"] += 1
    if opts["e"] and not opts["n"]:
        if state["enabled"]:
            common.err("pfctl: pf already enabled")
        else:
            common.err("pf enabled")
        state["enabled"] = True
    if opts["d"] and not opts["n"]:
        common.err("pf disabled" if state["enabled"] else "pfctl: pf not enabled")
        state["enabled"] = False
    if not opts["n"]:
        common.save_state("pf.json", state)
    if opts["s"]:
        modifier = opts["s"]
        if "rules".startswith(modifier):
            rules = state["anchors"].get(opts["a"], []) if opts["a"] else state["main"]
            for rule in rules:
                common.out(rule)
        elif "info".startswith(modifier):
            common.out("Status: %s" % ("Enabled" if state["enabled"] else "Disabled"))
        else:
            common.err("pfctl: Unknown show modifier '%s'" % modifier)
            return 1
    return 0
