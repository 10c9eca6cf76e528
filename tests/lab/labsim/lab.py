"""The `lab` control command: lay out a lab, run its vmd, inject faults, look inside.

lab init [--cpus N] [--taps N] [--docroot DIR] [--www-user NAME]
lab vmd start|stop|status
lab fault set NAME [VM] | lab fault clear [NAME]
lab show [--json]
lab mirror DIR RELEASE ARCH
lab console-log VM
lab guest reboot|halt VM
lab guest-connect [--root LAB_ROOT] HOST PORT | lab guest-address VM | lab net-check
"""

import argparse
import json
import os
import re
import signal
import sys

from labsim import daemon, protocol, state
from labsim.basetools import ifconfig

BIOS_CONTENT = b"LAB-VMM-BIOS\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("lab: %s\n" % message)
        sys.exit(2)


def _fail(message, code=1):
    sys.stderr.write("lab: %s\n" % message)
    return code


def cmd_init(root, args):
    settings = state.load_settings(root)
    if args.cpus is not None:
        settings["cpus"] = args.cpus
    if args.taps is not None:
        settings["taps"] = args.taps
    if args.docroot is not None:
        settings["docroot"] = os.path.abspath(args.docroot)
    if args.www_user is not None:
        settings["www_user"] = args.www_user
    stop_base_daemons(root)
    # leftovers of a killed run: the namespaces of VM processes that are gone (labsim.guestnet)
    _guestnet().cleanup(root, keep_running=True)
    pf_state = os.path.join(root, "lab", "basetools", "pf.json")
    if not os.path.exists(pf_state):
        # A fresh host boots with pf enabled: /etc/rc runs `pfctl -e` unless pf=NO (pf=YES is the
        # default in /etc/rc.conf); the lab's default rule set is empty.
        os.makedirs(os.path.dirname(pf_state), exist_ok=True)
        with open(pf_state, "w", encoding="utf-8") as handle:
            json.dump({"enabled": True, "main": [], "anchors": {}, "loads": 0, "file": None}, handle)
    for sub in (("etc", "firmware"), ("dev",), ("var", "run"), ("var", "log"), ("var", "www", "htdocs"),
                ("lab", "console")):
        os.makedirs(os.path.join(root, *sub), exist_ok=True)
    os.makedirs(settings["docroot"], exist_ok=True)
    bios = state.bios_path(root)
    if not os.path.exists(bios):
        with open(bios, "wb") as handle:
            handle.write(BIOS_CONTENT)
    taps = int(settings["taps"])
    for index in range(taps):
        tap = state.tap_path(root, index)
        if not os.path.exists(tap):
            with open(tap, "w"):
                pass
            os.chmod(tap, 0o600)
    for entry in os.listdir(os.path.join(root, "dev")):
        if entry.startswith("tap") and entry[3:].isdigit() and int(entry[3:]) >= taps:
            os.unlink(os.path.join(root, "dev", entry))
    log = state.log_path(root)
    if not os.path.exists(log):
        open(log, "a").close()
    state.save_settings(root, settings)
    # The bin/ wrappers run on this interpreter (a pyenv shim in PATH costs most of a second per call).
    with open(os.path.join(root, "lab", "python"), "w") as handle:
        handle.write(sys.executable + "\n")
    return 0


def stop_base_daemons(root):
    """The lab httpd started by rcctl (a real process) ends with the lab host's vmd and at lab init."""
    from labsim.basetools import httpd
    saved = os.environ.get("VMM_LAB_ROOT")
    os.environ["VMM_LAB_ROOT"] = root
    try:
        httpd.stop_daemon()
    finally:
        if saved is None:
            del os.environ["VMM_LAB_ROOT"]
        else:
            os.environ["VMM_LAB_ROOT"] = saved


def vmd_start(root):
    try:
        pid = daemon.start_daemon(root)
    except daemon.AlreadyRunning:
        sys.stderr.write("lab: vmd is already running (pid %d)\n" % daemon.running_pid(root))
        return 0
    except daemon.DaemonError as exc:
        for line in exc.lines:
            sys.stderr.write(line + "\n")
        return 1
    del pid
    return 0


def cmd_vmd(root, args):
    if args.action == "start":
        state.clear_fault(root, "vmd-down")
        return vmd_start(root)
    if args.action == "stop":
        daemon.stop_daemon(root)
        stop_base_daemons(root)
        _guestnet().cleanup(root)
        return 0
    pid = daemon.running_pid(root)
    if pid is None:
        print("vmd is not running")
        return 1
    print("vmd is running (pid %d)" % pid)
    return 0


def cmd_fault(root, args):
    if args.action == "set":
        if args.name not in state.FAULTS:
            return _fail("unknown fault: %s (known: %s)" % (args.name, ", ".join(state.FAULTS)))
        state.set_fault(root, args.name, args.vm)
        if args.name == "vmd-down":
            daemon.stop_daemon(root)
        return 0
    if args.name is not None and args.name not in state.FAULTS:
        return _fail("unknown fault: %s (known: %s)" % (args.name, ", ".join(state.FAULTS)))
    was_down = "vmd-down" in state.load_faults(root)
    faults = state.clear_fault(root, args.name)
    if was_down and "vmd-down" not in faults:
        return vmd_start(root)
    return 0


def query_daemon(root, request):
    try:
        with protocol.connect(state.socket_path(root), timeout=10) as conn:
            return conn.request(dict(request, uid=0))
    except (OSError, ValueError):
        return None


def collect(root):
    settings = state.load_settings(root)
    shown = query_daemon(root, {"op": "show"}) if daemon.running_pid(root) else None
    vms = shown["vms"] if shown else []
    holders = {}
    for vm in vms:
        for tap in vm.get("taps", []):
            holders[tap] = vm["name"]
    taps = {}
    dev = os.path.join(root, "dev")
    names = sorted((e for e in os.listdir(dev) if e.startswith("tap") and e[3:].isdigit()),
                   key=lambda e: int(e[3:])) if os.path.isdir(dev) else []
    for name in names:
        taps[name] = holders.get(name)
    locks = [{"path": path, "vm": vm["name"], "pid": vm["pid"]} for vm in vms for path in vm.get("locked_disks", [])]
    return {
        "root": root,
        "vmd": {"running": shown is not None, "pid": shown["pid"] if shown else None,
                "parallel": shown["parallel"] if shown else None, "delay": shown["delay"] if shown else None},
        "settings": settings,
        "vms": vms,
        "switches": shown["switches"] if shown else [],
        # bridge(4)/veb(4) interfaces as the lab's ifconfig left them, with the members that forward
        "bridges": ifconfig.switch_report(root),
        "ids": shown["ids"] if shown else [],
        "taps": taps,
        "locks": locks,
        "faults": state.load_faults(root),
        "httpd": _httpd_state(root),
    }


def _httpd_state(root):
    """The running lab httpd's listeners (address:port -> loopback port), or None."""
    try:
        with open(os.path.join(root, "lab", "basetools", "httpd.json"), encoding="utf-8") as handle:
            current = json.load(handle)
    except (OSError, ValueError):
        return None
    try:
        os.kill(current["pid"], 0)
    except (OSError, KeyError, TypeError):
        return None
    return current


def cmd_show(root, args):
    data = collect(root)
    if args.json:
        print(json.dumps(data, indent=1, sort_keys=True))
        return 0
    vmd = data["vmd"]
    if vmd["running"]:
        print("vmd: running (pid %d), staggered start parallel %s delay %s"
              % (vmd["pid"], vmd["parallel"], vmd["delay"]))
    else:
        print("vmd: not running")
    print("vms:")
    for vm in data["vms"]:
        print("  %s id=%d pid=%d state=%s tty=%s taps=%s macs=%s disks=%s"
              % (vm["name"], vm["id"], vm["pid"], ",".join(vm["state"]) or "-", vm["tty"] or "-",
                 ",".join(vm["taps"]) or "-", ",".join(vm["macs"]) or "-",
                 ",".join(d[0] for d in vm["disks"]) or "-"))
    print("taps: %s" % " ".join("%s%s" % (tap, "=" + vm if vm else "") for tap, vm in data["taps"].items()))
    print("bridges:")
    for name, bridge in data["bridges"].items():
        print("  %s %s members=%s forwarding=%s"
              % (name, "up" if bridge["up"] else "down",
                 ",".join("%s(%s)" % (m, "up" if up else "down") for m, up in bridge["members"].items()) or "-",
                 ",".join(bridge["forwarding"]) or "none"))
    httpd = data["httpd"]
    print("httpd: %s" % ("running (pid %d), listening on %s" % (httpd["pid"], ", ".join(
        "%s:%d (127.0.0.1:%d)" % (entry["address"], entry["port"], entry["real_port"]) for entry in httpd["listeners"]))
        if httpd else "not running"))
    print("locks:")
    for lock in data["locks"]:
        print("  %s (vm %s, pid %d)" % (lock["path"], lock["vm"], lock["pid"]))
    faults = ["%s%s" % (name, "[" + ",".join(vms) + "]" if vms else "") for name, vms in sorted(data["faults"].items())]
    print("faults: %s" % (", ".join(faults) or "none"))
    return 0


def cmd_mirror(root, args):
    del root
    from labsim import mirror  # written by LAB-INSTALLER
    print(mirror.make_mirror(args.directory, args.release, args.arch))
    return 0


def cmd_console_log(root, args):
    target = state.console_path(root, args.vm)
    try:
        with open(target, "rb") as handle:
            data = handle.read()
    except OSError:
        return _fail("no console log for vm %s" % args.vm)
    out = getattr(sys.stdout, "buffer", sys.stdout)
    out.write(data)
    out.flush()
    return 0


def cmd_guest(root, args):
    shown = query_daemon(root, {"op": "show"})
    if shown is None:
        return _fail("vmd is not running")
    for vm in shown["vms"]:
        if vm["name"] == args.vm and vm["pid"]:
            os.kill(vm["pid"], signal.SIGUSR1 if args.action == "reboot" else signal.SIGUSR2)
            return 0
    return _fail("vm %s is not running" % args.vm)


def _guestnet():
    from labsim import guestnet
    return guestnet


def cmd_guest_connect(root, args):
    """ssh's ProxyCommand: the lab's guests are reachable only inside the lab root's host namespace."""
    if not re.fullmatch(r"[0-9]{1,5}", args.port) or not 1 <= int(args.port) <= 65535:
        return _fail("guest-connect: PORT must be a number from 1 to 65535, not %r" % args.port)
    if not re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", args.host):
        return _fail("guest-connect: HOST must be an address or host name, not %r" % args.host)
    try:
        return _guestnet().relay(root, args.host, int(args.port))
    except _guestnet().GuestNetError as exc:
        return _fail("guest-connect: %s" % exc)
    except OSError as exc:
        reason = state.strerror(exc.errno) if exc.errno else state.strerror("ETIMEDOUT") \
            if isinstance(exc, TimeoutError) else str(exc)
        return _fail("guest-connect: %s port %s: %s" % (args.host, args.port, reason))


def cmd_guest_address(root, args):
    found = _guestnet().addresses(root, args.vm)
    if not found:
        return _fail("vm %s has no address" % args.vm)
    for address in found:
        print(address)
    return 0


def cmd_net_check(root, args):
    del root, args
    reason = _guestnet().net_check()
    if reason is not None:
        print("lab: guest networks are not possible here: %s" % reason)
        return 77
    return 0


def cmd_vm_ids_from(root, args):
    """vmd.c vm_claimid numbers VMs 1, 2, ... (++vmd_nvm) for as long as vmd runs; the next new VM gets
    max(next, N) instead, so ids of 256 and more can be tested without starting 255 VMs."""
    if args.first < 1:
        return _fail("vm-ids-from: the first id must be at least 1")
    settings = state.load_settings(root)
    settings["vm_ids_from"] = args.first
    state.save_settings(root, settings)
    return 0


def build_parser():
    parser = _Parser(prog="lab", description="Control the simulated OpenBSD vmm host.")
    sub = parser.add_subparsers(dest="command")
    init = sub.add_parser("init", help="lay out $VMM_LAB_ROOT")
    init.add_argument("--cpus", type=int, help="simulated online CPUs (staggered start parallelism)")
    init.add_argument("--taps", type=int, help="number of tap devices to create (default 16)")
    init.add_argument("--docroot", help="directory made for the install docroot (httpd serves what httpd.conf says)")
    init.add_argument("--www-user", help="login the lab's httpd serves as, for OpenBSD's www (default www-data)")
    vmd = sub.add_parser("vmd", help="start/stop the simulated vmd")
    vmd.add_argument("action", choices=("start", "stop", "status"))
    fault = sub.add_parser("fault", help="inject or clear faults")
    fault_sub = fault.add_subparsers(dest="action")
    fault_set = fault_sub.add_parser("set")
    fault_set.add_argument("name")
    fault_set.add_argument("vm", nargs="?")
    fault_clear = fault_sub.add_parser("clear")
    fault_clear.add_argument("name", nargs="?")
    show = sub.add_parser("show", help="dump the lab's state")
    show.add_argument("--json", action="store_true")
    mirror = sub.add_parser("mirror", help="make a stand-in release tree")
    mirror.add_argument("directory")
    mirror.add_argument("release")
    mirror.add_argument("arch")
    console_log = sub.add_parser("console-log", help="print a VM's console")
    console_log.add_argument("vm")
    guest = sub.add_parser("guest", help="make a guest reboot or halt by itself")
    guest.add_argument("action", choices=("reboot", "halt"))
    guest.add_argument("vm")
    ids = sub.add_parser("vm-ids-from", help="number new VMs from N on, as a vmd that has run N-1 VMs")
    ids.add_argument("first", type=int)
    connect = sub.add_parser("guest-connect", help="relay stdio to HOST:PORT in the lab's host namespace (ssh ProxyCommand)")
    connect.add_argument("--root", help="the lab root (default $VMM_LAB_ROOT)")
    connect.add_argument("host")
    connect.add_argument("port")
    address = sub.add_parser("guest-address", help="print a running guest's addresses (exit 1 when it has none)")
    address.add_argument("vm")
    sub.add_parser("net-check", help="exit 0 if guest networks can be made here, else 77 and why")
    return parser


COMMANDS = {
    "init": cmd_init, "vmd": cmd_vmd, "fault": cmd_fault, "show": cmd_show, "mirror": cmd_mirror,
    "console-log": cmd_console_log, "guest": cmd_guest, "vm-ids-from": cmd_vm_ids_from,
    "guest-connect": cmd_guest_connect, "guest-address": cmd_guest_address, "net-check": cmd_net_check,
}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None or (args.command == "fault" and args.action is None):
        parser.print_usage(sys.stderr)
        return 2
    if args.command == "net-check":
        return cmd_net_check(None, args)
    if args.command == "guest-connect" and args.root:
        return cmd_guest_connect(os.path.abspath(args.root), args)
    root = state.lab_root()
    return COMMANDS[args.command](root, args)
