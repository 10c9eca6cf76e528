"""sensorsd(8) for the lab: reads sensorsd.conf(5) and, when started, makes the initial pass
a real sensorsd makes: every sensor (hw.sensors.* in the lab's sysctl) whose entry (full name,
else its type such as `drive`) has a `command` gets it run with the tokens substituted.

getcap(3) syntax: `name[|name...]:cap=value:...`, `#` comments, backslash-newline joins.
Capabilities: command, high, low, istatus. Tokens: %x (device), %t (type), %n (number),
%2 (value), %3 (low limit), %4 (high limit), %s (status), %l (within/below/above)."""

import re
import subprocess
import sys

from . import common
from . import sysctl

CAPS = ("command", "high", "low", "istatus")


def parse(path):
    """Entries {name: {cap: value}} and errors."""
    errors, entries = [], {}
    try:
        text = common.read_text(path)
    except OSError as exc:
        return {}, ["sensorsd: %s: %s" % (path, exc.strerror)]
    for number, line in common.logical_lines(text):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        names, caps = fields[0].split("|"), {}
        for field in fields[1:]:
            field = field.strip()
            if not field:
                continue
            key, _sep, value = field.partition("=")
            if key not in CAPS:
                errors.append("sensorsd: %s:%d: unknown capability %s" % (path, number, key))
            elif key in ("high", "low") and not re.match(r"^-?[0-9.]+[CFV%]?$", value):
                errors.append("sensorsd: %s:%d: incorrect value for %s: %s" % (path, number, key, value))
            caps[key] = value
        for name in names:
            entries[name.strip()] = caps
    return entries, errors


def config_from(argv):
    config = common.lab_path("etc", "sensorsd.conf")
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "-f" and args:
            config = args.pop(0)
        elif arg == "-c" and args:
            args.pop(0)
    return config


def check_flags(argv):
    _entries, errors = parse(config_from(argv))
    return not errors, "\n".join(errors)


def initial_pass(argv):
    entries, _errors = parse(config_from(argv))
    table = sysctl.values()
    for name in sorted(k for k in table if k.startswith("hw.sensors.")):
        _hw, _sensors, device, sensor = name.split(".", 3)
        match = re.match(r"^([a-z]+)([0-9]+)$", sensor)
        if not match:
            continue
        kind, number = match.groups()
        entry = entries.get(name) or entries.get(kind)
        if not entry or "command" not in entry:
            continue
        raw = str(table[name])
        value, _sep, status = raw.rpartition(", ")
        value = value or raw
        tokens = {"%x": device, "%t": kind, "%n": number, "%2": value.split(" (")[0],
                  "%3": entry.get("low", ""), "%4": entry.get("high", ""),
                  "%s": status or "OK", "%l": "within" if status in ("OK", "") else "above"}
        argv_cmd = [re.sub(r"%[xtn234sl]", lambda m: tokens[m.group(0)], word) for word in entry["command"].split()]
        result = subprocess.run(argv_cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True)
        log = common.load_state("sensorsd.json", [])
        log.append({"sensor": name, "argv": argv_cmd, "status": result.returncode, "output": result.stdout})
        common.save_state("sensorsd.json", log)


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    ok, message = check_flags(args)
    if not ok:
        common.err(message)
        return 1
    common.err("sensorsd: the lab's sensorsd runs through rcctl (rcctl start sensorsd)")
    return 0
