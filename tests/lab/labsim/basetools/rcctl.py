"""rcctl(8) for the lab: configure and control daemons.

Configuration goes to $VMM_LAB_ROOT/etc/rc.conf.local in rcctl's own format (sorted
`<daemon>_<variable>=<value>` lines, defaults omitted); whether a daemon runs is kept in
lab/basetools/rc.json, except for vmd, which is the lab's simulated daemon (`lab vmd ...`); httpd is
a real process (basetools/httpd.py), dhcpd keeps what it read at start (labsim/dhcp_server.py)."""

import os
import socket
import subprocess
import sys

from . import common

USAGE = """usage:\trcctl get|getdef|set service | daemon [variable [arguments]]
\trcctl [-df] start|stop|restart|reload|check|configtest daemon ...
\trcctl disable|enable|order [daemon ...]
\trcctl ls all|failed|off|on|rogue|started|stopped"""

# Base daemons of /etc/rc.conf with their default flags ("NO" = disabled by default).
DAEMONS = {
    "cron": "", "dhcpd": "NO", "httpd": "NO", "ntpd": "", "pflogd": "", "sensorsd": "NO",
    "smtpd": "", "sndiod": "", "sshd": "", "syslogd": "", "vmd": "NO", "slaacd": "",
}
VARIABLES = ("class", "flags", "logger", "rtable", "timeout", "user")
DEFAULTS = {"class": "daemon", "logger": "", "rtable": "0", "timeout": "30", "user": "root"}
ACTIONS = ("start", "stop", "restart", "reload", "check", "configtest")


def usage():
    common.err(USAGE)
    return 1


def rcconf_path():
    return common.lab_path("etc", "rc.conf.local")


def read_rcconf():
    values = {}
    try:
        text = common.read_text(rcconf_path())
    except FileNotFoundError:
        return values
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def write_rcconf(values):
    lines = sorted("%s=%s" % (key, value) for key, value in values.items())
    path = rcconf_path()
    if lines:
        common.atomic_write(path, "\n".join(lines) + "\n")
    elif os.path.exists(path):
        os.unlink(path)


def settings(daemon, values=None):
    values = read_rcconf() if values is None else values
    result = dict(DEFAULTS)
    result["flags"] = DAEMONS[daemon]
    for var in VARIABLES:
        key = "%s_%s" % (daemon, var)
        if key in values:
            result[var] = values[key]
    return result


def enabled(daemon, values=None):
    return settings(daemon, values)["flags"] != "NO"


def cmd_get(args, default_only=False):
    if not args or len(args) > 2:
        return usage()
    daemon = args[0]
    if daemon not in DAEMONS:
        common.err("rcctl: service %s does not exist" % daemon)
        return 2
    current = settings(daemon, {} if default_only else None)
    status = 0 if current["flags"] != "NO" else 1
    if len(args) == 2:
        var = args[1]
        if var == "status":
            return status
        if var not in VARIABLES:
            return usage()
        if current[var]:
            common.out(current[var])
        return status
    for var in VARIABLES:
        common.out("%s_%s=%s" % (daemon, var, current[var]))
    return status


def cmd_set(args):
    if len(args) < 2:
        return usage()
    daemon, var, rest = args[0], args[1], args[2:]
    if daemon not in DAEMONS:
        common.err("rcctl: service %s does not exist" % daemon)
        return 2
    if os.geteuid() != 0:
        common.err("rcctl: need root privileges")
        return 1
    values = read_rcconf()
    key = "%s_flags" % daemon
    if var == "status":
        if rest not in (["on"], ["off"]):
            return usage()
        if rest == ["on"]:
            if not enabled(daemon, values):
                # a base daemon disabled by default needs an explicit empty flags line
                values[key] = ""
        else:
            if DAEMONS[daemon] == "NO":
                values.pop(key, None)
            else:
                values[key] = "NO"
        write_rcconf(values)
        return 0
    if var not in VARIABLES:
        return usage()
    if var == "flags":
        if not enabled(daemon, values):
            common.err("rcctl: %s is not enabled" % daemon)
            return 1
        values[key] = " ".join(rest)
        write_rcconf(values)
        return 0
    value = " ".join(rest)
    if var in ("timeout", "rtable") and rest and not value.isdigit():
        common.err('rcctl: "%s" is not an integer' % value)
        return 1
    if not rest or value == DEFAULTS[var]:
        values.pop("%s_%s" % (daemon, var), None)
    else:
        values["%s_%s" % (daemon, var)] = value
    write_rcconf(values)
    return 0


# --- running state --------------------------------------------------------------------------

def vmd_running():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(common.lab_path("var", "run", "vmd.sock"))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def lab_command(*argv):
    """Run a sibling lab executable (lab, vmctl) from the same bin directory."""
    bindir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bin")
    return subprocess.run([os.path.join(bindir, argv[0])] + list(argv[1:]), check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


def config_check(daemon, flags):
    """Run the daemon's own configuration check; returns (ok, message)."""
    argv = flags.split()
    if daemon == "httpd":
        from . import httpd
        return httpd.check_flags(argv)
    if daemon == "dhcpd":
        from . import dhcpd
        return dhcpd.check_flags(argv)
    if daemon == "sensorsd":
        from . import sensorsd
        return sensorsd.check_flags(argv)
    return True, ""


def is_running(daemon, table):
    if daemon == "vmd":
        return vmd_running()
    if daemon == "dhcpd":
        from labsim import dhcp_server
        return dhcp_server.running(common.lab_root(), table)
    if daemon == "httpd":
        from . import httpd
        return httpd.running_pid() is not None
    return table.get(daemon, {}).get("running", False)


def start(daemon, table, flags):
    if daemon == "vmd":
        result = lab_command("lab", "vmd", "start")
        return result.returncode == 0 and vmd_running()
    if daemon == "httpd":
        # A real daemon: it reads the configuration, binds its addresses and serves (basetools/httpd.py).
        from . import httpd
        ok, message = httpd.start_daemon(flags)
        if not ok:
            if message:
                common.err(message)
            return False
        table[daemon] = {"running": True, "flags": flags}
        return True
    if daemon == "dhcpd":
        # dhcpd reads dhcpd.conf and finds its interfaces once, at start (labsim/dhcp_server.py)
        from labsim import dhcp_server
        ok, message = dhcp_server.start(common.lab_root(), flags)
        if message:
            common.err(message)
        if ok:
            table[daemon] = {"running": True, "flags": flags}
        return ok
    ok, message = config_check(daemon, flags)
    if not ok:
        common.err(message)
        return False
    table[daemon] = {"running": True, "flags": flags}
    if daemon == "sensorsd":
        from . import sensorsd
        sensorsd.initial_pass(flags.split())
    return True


def stop(daemon, table):
    if daemon == "vmd":
        return lab_command("lab", "vmd", "stop").returncode == 0
    if daemon == "httpd":
        from . import httpd
        httpd.stop_daemon()
    if daemon == "dhcpd":
        from labsim import dhcp_server
        dhcp_server.stop(common.lab_root())
    table[daemon] = {"running": False}
    return True


def reload(daemon, table):
    if daemon == "vmd":
        return lab_command("vmctl", "reload").returncode == 0
    flags = table.get(daemon, {}).get("flags", "")
    ok, message = config_check(daemon, flags)
    if not ok:
        common.err(message)
    table.setdefault(daemon, {})["reloads"] = table.get(daemon, {}).get("reloads", 0) + 1
    if daemon == "httpd":
        from . import httpd
        return httpd.reload_daemon()
    return True


def run_action(action, daemon, force):
    table = common.load_state("rc.json", {})
    current = settings(daemon)
    if current["flags"] == "NO" and not force and action in ("start", "restart", "reload"):
        common.err("/etc/rc.d/%s: need -f to force %s since %s_flags=NO" % (daemon, action, daemon))
        return 1
    flags = "" if current["flags"] == "NO" else current["flags"]
    running = is_running(daemon, table)
    status = 0
    if action == "check":
        ok = running
    elif action == "configtest":
        ok, message = config_check(daemon, flags)
        if not ok:
            common.err(message)
    elif action == "start":
        if running:
            return 0
        ok = start(daemon, table, flags)
    elif action == "stop":
        if not running:
            return 0
        ok = stop(daemon, table)
    elif action == "restart":
        if running:
            stop(daemon, table)
        ok = start(daemon, table, flags)
    else:
        ok = running and reload(daemon, table)
    common.save_state("rc.json", table)
    common.out("%s(%s)" % (daemon, "ok" if ok else "failed"))
    if not ok:
        status = 1
    return status


def cmd_ls(args):
    if len(args) != 1 or args[0] not in ("all", "failed", "off", "on", "rogue", "started", "stopped"):
        return usage()
    table = common.load_state("rc.json", {})
    for daemon in sorted(DAEMONS):
        on, running = enabled(daemon), is_running(daemon, table)
        wanted = {"all": True, "on": on, "off": not on, "started": running, "stopped": not running,
                  "failed": on and not running, "rogue": running and not on}[args[0]]
        if wanted:
            common.out(daemon)
    return 0


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    force = False
    while args and args[0].startswith("-") and len(args[0]) > 1:
        for letter in args.pop(0)[1:]:
            if letter == "f":
                force = True
            elif letter != "d":
                return usage()
    if not args:
        return usage()
    command, rest = args[0], args[1:]
    if command in ("get", "getdef"):
        return cmd_get(rest, default_only=command == "getdef")
    if command == "set":
        return cmd_set(rest)
    if command in ("enable", "disable"):
        if not rest:
            return usage()
        for daemon in rest:
            code = cmd_set([daemon, "status", "on" if command == "enable" else "off"])
            if code:
                return code
        return 0
    if command == "ls":
        return cmd_ls(rest)
    if command in ACTIONS:
        if not rest:
            return usage()
        status = 0
        for daemon in rest:
            if daemon not in DAEMONS:
                common.err("rcctl: service %s does not exist" % daemon)
                return 2
            status = run_action(command, daemon, force) or status
        return status
    return usage()
