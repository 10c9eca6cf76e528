"""The lab host's packet path for TCP connections: interfaces, pf's rdr-to, httpd's listeners.

connect(ifname, groups, src, dst, port) answers "a TCP connection arrives on interface IFNAME
(member of GROUPS) from SRC to DST:PORT: where does it end?" and returns the real loopback
(host, port) of the lab daemon that accepts it, or raises OSError (ECONNREFUSED when nothing
listens on a local address, ETIMEDOUT when DST is no address of this host).

1. pf (sbin/pfctl, share/man/man5/pf.conf.5): only when pf is enabled (`pfctl -e`), the loaded
   main ruleset is evaluated with its anchors inlined where an `anchor "name"` rule stands
   (lab/basetools/pf.json, what the lab's pfctl loaded). The last matching rule wins, a
   matching `quick` rule ends the evaluation; a `match` rule's rdr-to applies as soon as it
   matches; a final `pass` rule's rdr-to applies, a final `block` drops the connection.
   Only the rule shape the collection's roles write is parsed, everything else is skipped:
       (pass|match|block) [in|out] [quick] [on IF|{IF ...}] [inet] [proto tcp|{...}]
           [from ADDR] [to ADDR] [port P|{P ...}] [rdr-to ADDR [port P]]
   where ADDR is any, an address, a network (a/len), a table <name> or a { } list of them, IF an
   interface name or interface group. Rules with other words are not evaluated (a lab limit).
   A table is looked up in the ruleset of the rule (its anchor), else in the main ruleset, as
   pfr_attach_table() links an anchor's table to the root table of the same name
   (sys/net/pf_table.c); the addresses are what the lab's pfctl loaded or -T add/delete left.
2. The (possibly redirected) destination must be an address of the host (lab ifconfig state,
   127.0.0.0/8, or the host side of the tap the packet came in on), else nothing answers.
3. httpd's listeners (lab/basetools/httpd.json, written by the running lab httpd): an exact
   address:port, or 0.0.0.0:port for any local address, gives the real loopback port.
Host-originated connections (the lab's ftp) arrive on lo0: they never match `in on tap` rules.
"""

import errno
import ipaddress
import json
import os
import re

from labsim import state

SERVICES = {"www": 80, "http": 80, "https": 443, "domain": 53, "ssh": 22}


def _lab_root():
    return os.environ["VMM_LAB_ROOT"]


def _state(name, default):
    try:
        with open(os.path.join(_lab_root(), "lab", "basetools", name), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def interface_groups(ifname):
    """The groups of an interface: its driver's (tap0 -> tap) and those set with ifconfig."""
    groups = {re.sub(r"[0-9]+$", "", ifname)}
    table = _state("ifconfig.json", {})
    groups.update(table.get(ifname, {}).get("groups", []))
    return groups


def local_addresses():
    table = _state("ifconfig.json", None)
    if table is None:
        table = {"lo0": {"inet": ["127.0.0.1/8"]}, "em0": {"inet": ["192.0.2.10/24"]}}
    return {address.split("/")[0] for entry in table.values() for address in entry.get("inet", [])}


# --- pf -------------------------------------------------------------------------------------

def _words(rule):
    """Split a rule, keeping { ... } lists together as one word (a Python list)."""
    words, tokens = [], re.findall(r'\{[^}]*\}|"[^"]*"|[^\s{}]+', rule)
    for token in tokens:
        if token.startswith("{"):
            words.append([t.strip('"') for t in re.split(r"[\s,]+", token[1:-1].strip()) if t])
        else:
            words.append(token.strip('"'))
    return words


def parse_rule(rule):
    """The parts of a rule of the documented shape, or None for any other rule."""
    words = _words(rule)
    if not words or words[0] not in ("pass", "match", "block"):
        return None
    parsed = {"action": words[0], "direction": None, "quick": False, "on": None, "proto": None,
              "from": None, "to": None, "port": None, "rdr": None}
    index = 1
    if words[index:index + 1] and words[index] in ("return", "drop"):
        index += 1
    while index < len(words):
        word = words[index]
        following = words[index + 1] if index + 1 < len(words) else None
        if word in ("in", "out"):
            parsed["direction"] = word
        elif word == "quick":
            parsed["quick"] = True
        elif word == "inet":
            pass
        elif word in ("from", "to") and following == "port":
            parsed[word] = ["any"]  # pf.conf(5) ipportspec: `to port 80` is `to any port 80`
        elif word in ("on", "proto", "from", "to") and following is not None:
            parsed[word] = following if isinstance(following, list) else [following]
            index += 1
        elif word == "port" and following is not None and parsed["rdr"] is None:
            parsed["port"] = following if isinstance(following, list) else [following]
            index += 1
        elif word == "rdr-to" and isinstance(following, str):
            parsed["rdr"] = [following, None]
            index += 1
        elif word == "port" and following is not None and parsed["rdr"] is not None:
            parsed["rdr"][1] = following
            index += 1
        else:
            return None
        index += 1
    return parsed


def _port(value):
    return SERVICES.get(value, int(value) if str(value).isdigit() else -1)


def _table(tables, anchor, name):
    own = tables.get("%s:%s" % (anchor or "", name))
    return own if own is not None else tables.get(":%s" % name, [])


def _address_matches(spec, address, tables=None, anchor=""):
    if spec is None:
        return True
    for item in spec:
        if item == "any":
            return True
        if item.startswith("<") and item.endswith(">"):
            if _address_matches(_table(tables or {}, anchor, item[1:-1]), address):
                return True
            continue
        try:
            if ipaddress.ip_address(address) in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def _matches(rule, ifname, groups, src, dst, port, tables=None, anchor=""):
    if rule["direction"] == "out":
        return False
    if rule["on"] is not None and not any(name == ifname or name in groups for name in rule["on"]):
        return False
    if rule["proto"] is not None and "tcp" not in rule["proto"]:
        return False
    if not _address_matches(rule["from"], src, tables, anchor) or not _address_matches(rule["to"], dst, tables, anchor):
        return False
    if rule["port"] is not None and port not in [_port(p) for p in rule["port"]]:
        return False
    return True


def _ruleset(loaded, rules, depth=0, anchor=""):
    """Flatten the ruleset into (rule, anchor) pairs: each `anchor "name"` rule is replaced by the anchor's rules."""
    flat = []
    for rule in rules:
        words = _words(rule)
        if words and words[0] == "anchor" and len(words) >= 2 and isinstance(words[1], str) and depth < 8:
            flat.extend(_ruleset(loaded, loaded.get("anchors", {}).get(words[1], []), depth + 1, words[1]))
        else:
            flat.append((rule, anchor))
    return flat


def pf_translate(ifname, groups, src, dst, port):
    """(dst, port) after pf, or None when pf drops the connection."""
    loaded = _state("pf.json", {})
    if not loaded.get("enabled"):
        return dst, port
    rdr, last = None, None
    tables = loaded.get("tables", {})
    for text, anchor in _ruleset(loaded, loaded.get("main", [])):
        rule = parse_rule(text)
        if rule is None or not _matches(rule, ifname, groups, src, dst, port, tables, anchor):
            continue
        if rule["action"] == "match":
            if rule["rdr"]:
                rdr = rule["rdr"]
            continue
        last = rule
        if rule["quick"]:
            break
    if last is not None and last["action"] == "block":
        return None
    if last is not None and last["rdr"]:
        rdr = last["rdr"]
    if rdr:
        return rdr[0], _port(rdr[1]) if rdr[1] is not None else port
    return dst, port


# --- delivery -------------------------------------------------------------------------------

def listener(address, port, local):
    """The real loopback port of the running lab httpd's listener for address:port, or None."""
    current = _state("httpd.json", None)
    if not current or not current.get("pid") or not state.process_alive(current["pid"]):
        return None
    for entry in current.get("listeners", []):
        if entry["port"] == port and (entry["address"] == address or
                                      (entry["address"] in ("0.0.0.0", "::") and address in local)):
            return entry["real_port"]
    return None


def connect(ifname, src, dst, port, groups=(), own_address=None):
    """Where a TCP connection arriving on ifname from src to dst:port ends: ('127.0.0.1', real port)."""
    all_groups = interface_groups(ifname) | set(groups)
    translated = pf_translate(ifname, all_groups, src, dst, port)
    if translated is None:
        raise OSError(errno.ETIMEDOUT, state.strerror("ETIMEDOUT"))
    address, port = translated
    local = local_addresses() | ({own_address} if own_address else set())
    is_loopback = address.startswith("127.")
    if address not in local and not is_loopback:
        raise OSError(errno.ETIMEDOUT, state.strerror("ETIMEDOUT"))
    real = listener(address, port, local | ({address} if is_loopback else set()))
    if real is None:
        raise OSError(errno.ECONNREFUSED, state.strerror("ECONNREFUSED"))
    return "127.0.0.1", real


def connect_from_host(dst, port):
    """A connection the host itself opens (ftp on the host): it arrives on lo0, from dst itself."""
    return connect("lo0", dst, dst, port)
