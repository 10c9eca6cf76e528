"""dhcpd(8) (OpenBSD's) for the lab: only the configuration test, `dhcpd -n [-c file] [if ...]`.

dhcpd.conf(5) shape: `;`-terminated statements, `{ }` blocks for subnet, shared-network,
host and group, known declaration keywords, quoted strings. Checked: syntax, subnet
number/mask combination, IPv4 addresses where the grammar wants them, `hardware ethernet`
syntax (1 to 16 hex octets, as dhcpd's parser takes), `range` inside its subnet, interface arguments exist (lab ifconfig). Not
checked: option names beyond a fixed list and option value types other than addresses."""

import ipaddress
import re
import sys

from . import common
from . import ifconfig

USAGE = ("usage: dhcpd [-dfn] [-A abandoned_ip_table] [-C changed_ip_table]\n"
         "\t[-c config-file] [-L leased_ip_table] [-l lease-file] [-u[bind_address]]\n"
         "\t[-Y synctarget] [-y synclisten] [if0 [... ifN]]")
BLOCKS = ("subnet", "shared-network", "host", "group")
STATEMENTS = ("option", "range", "fixed-address", "hardware", "next-server", "filename",
              "default-lease-time", "max-lease-time", "authoritative", "server-name",
              "use-host-decl-names", "get-lease-hostnames", "boot-unknown-clients",
              "always-reply-rfc1048", "dynamic-bootp-lease-cutoff", "dynamic-bootp-lease-length",
              "server-identifier", "deny", "allow", "not", "echo-client-id", "ipsec-tunnel")
ADDRESS_OPTIONS = ("routers", "domain-name-servers", "subnet-mask", "broadcast-address",
                   "ntp-servers", "time-servers")
TOKEN = re.compile(r'"[^"]*"|[{};]|[^\s{};"]+')


def tokenize(text, path, errors):
    tokens = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = common.strip_comment(raw)
        if line.count('"') % 2:
            errors.append("%s line %d: unterminated string" % (path, number))
            continue
        tokens.extend((number, tok) for tok in TOKEN.findall(line))
    return tokens


def is_ipv4(text):
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


def check_statement(words, number, path, errors, subnet):
    head = words[0]
    if head not in STATEMENTS:
        errors.append("%s line %d: expecting a declaration." % (path, number))
        return
    if head == "option":
        if len(words) < 3:
            errors.append("%s line %d: expecting identifier after option keyword." % (path, number))
        elif words[1] in ADDRESS_OPTIONS:
            for word in " ".join(words[2:]).replace(",", " ").split():
                if not is_ipv4(word):
                    errors.append("%s line %d: %s: expecting IP address." % (path, number, word))
    elif head in ("fixed-address", "next-server"):
        for word in " ".join(words[1:]).replace(",", " ").split():
            if not is_ipv4(word):
                errors.append("%s line %d: %s: expecting IP address." % (path, number, word))
    elif head == "hardware":
        if len(words) != 3 or words[1] != "ethernet" or \
                not re.match(r"^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){0,15}$", words[2]):
            errors.append("%s line %d: expecting hardware ethernet address." % (path, number))
    elif head == "range":
        addresses = [w for w in words[1:] if w != "dynamic-bootp"]
        if len(addresses) not in (1, 2) or not all(is_ipv4(a) for a in addresses):
            errors.append("%s line %d: expecting IP address." % (path, number))
        elif subnet is not None and not all(ipaddress.IPv4Address(a) in subnet for a in addresses):
            errors.append("%s line %d: address range not on network %s" % (path, number, subnet))
    elif head == "filename" and (len(words) != 2 or not words[1].startswith('"')):
        errors.append("%s line %d: expecting string." % (path, number))


def check_file(path, errors):
    """Check dhcpd.conf at path; return its statements as a tree (also what the lab's running dhcpd reads).

    Tree: a list of nodes in file order, {"line", "words"} for a statement and {"line", "words", "body"}
    for a block (body: the nodes inside its braces). Only meaningful when no error was found."""
    root = []
    bodies = [root]
    try:
        text = common.read_text(path)
    except OSError as exc:
        errors.append("dhcpd: Can't open %s: %s" % (path, exc.strerror))
        return root
    tokens = tokenize(text, path, errors)
    stack = []   # (kind, subnet or None)
    words, first_line = [], 0
    for number, tok in tokens:
        if tok == ";":
            if not words:
                continue
            subnet = next((net for _kind, net in reversed(stack) if net is not None), None)
            check_statement(words, first_line, path, errors, subnet)
            bodies[-1].append({"line": first_line, "words": words})
            words = []
        elif tok == "{":
            if not words or words[0] not in BLOCKS:
                errors.append("%s line %d: expecting a declaration." % (path, number))
                stack.append(("?", None))
            elif words[0] == "subnet":
                subnet = None
                if len(words) != 4 or words[2] != "netmask" or not is_ipv4(words[1]) or not is_ipv4(words[3]):
                    errors.append("%s line %d: expecting netmask" % (path, number))
                else:
                    try:
                        subnet = ipaddress.IPv4Network("%s/%s" % (words[1], words[3]))
                    except ValueError:
                        errors.append("%s line %d: subnet %s netmask %s: bad subnet number/mask combination."
                                      % (path, number, words[1], words[3]))
                stack.append(("subnet", subnet))
            elif len(words) != (1 if words[0] == "group" else 2):
                errors.append("%s line %d: expecting a declaration." % (path, number))
                stack.append((words[0], None))
            else:
                stack.append((words[0], None))
            block = {"line": number, "words": words, "body": []}
            bodies[-1].append(block)
            bodies.append(block["body"])
            words = []
        elif tok == "}":
            if words:
                errors.append("%s line %d: expecting semicolon." % (path, first_line))
                words = []
            if not stack:
                errors.append("%s line %d: unexpected '}'" % (path, number))
            else:
                stack.pop()
                bodies.pop()
        else:
            if not words:
                first_line = number
            elif number != first_line and words and words[0] not in BLOCKS:
                # statements may span lines, but a new keyword line after an unterminated one
                # is the classic missing semicolon
                if tok in STATEMENTS or tok in BLOCKS:
                    errors.append("%s line %d: expecting semicolon." % (path, first_line))
                    words = []
                    first_line = number
            words.append(tok)
    if words or stack:
        errors.append("%s line %d: unexpected end of file" % (path, tokens[-1][0] if tokens else 1))
    return root


def parse_flags(argv):
    """dhcpd's command line (dhcpd.c main, getopt "A:C:L:c:dfl:nu::Y:y:"): (config file, interface names)."""
    config = common.lab_path("etc", "dhcpd.conf")
    interfaces = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-c", "-l", "-A", "-C", "-L", "-Y", "-y") and args:
            value = args.pop(0)
            if arg == "-c":
                config = value
        elif arg.startswith("-c") and len(arg) > 2:
            config = arg[2:]
        elif arg.startswith("-"):
            continue
        else:
            interfaces.append(arg)
    return config, interfaces


def check_flags(argv):
    config, interfaces = parse_flags(argv)
    errors = []
    check_file(config, errors)
    known = ifconfig.load()
    for name in interfaces:
        if name not in known:
            errors.append("dhcpd: %s: no such interface" % name)
    if errors:
        errors.append("dhcpd: Configuration file errors encountered")
    return not errors, "\n".join(errors)


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if "-n" not in args:
        common.err("dhcpd: the lab's dhcpd only tests configurations (-n); start it with rcctl")
        common.err(USAGE)
        return 1
    args.remove("-n")
    ok, message = check_flags(args)
    if not ok:
        common.err(message)
        return 1
    return 0
