"""The lab's vmctl(8) command line, following vmctl main.c 1.90 / vmctl.c 1.98.

Exact texts come from ../shared/reference/vmctl-facts.md. Only the status table goes
to stdout; everything else goes to stderr. Options must precede operands (OpenBSD
getopt does not permute).
"""

import json
import os
import pwd
import stat
import sys
import zlib

from labsim import protocol, state
from labsim.protocol import (VMD_BIOS_MISSING, VMD_CDROM_INVALID, VMD_CDROM_MISSING,
                             VMD_DISK_MISSING, VMD_PARENT_INVALID, VMD_VM_STOP_INVALID)
from labsim.scaled import fmt_scaled, scan_scaled

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CU_PATH = os.path.join(LAB_DIR, "bin", "cu")

COMMANDS = (
    ("console", "id"),
    ("create", "[-b base | -i disk] [-s size] disk"),
    ("load", "filename"),
    ("log", "[brief | verbose]"),
    ("pause", "id"),
    ("reload", ""),
    ("reset", "[all | switches | vms]"),
    ("show", "[id]"),
    ("start", "[-cL] [-B device] [-b path] [-d disk] [-i count]\n"
              "\t\t[-m size] [-n switch] [-r path] [-t name] id | name"),
    ("status", "[-r] [id]"),
    ("stop", "[-fw] [id | -a]"),
    ("unpause", "id"),
    ("wait", "id"),
)
USAGE = "usage:\tvmctl [-v] command [arg ...]\n"
MIB = 1024 * 1024
VMM_MAX_VM_MEM_SIZE = 128 * 1024 * MIB
VMM_MAX_NAME_LEN = 64
VM_MAX_DISKS_PER_VM = 4
VM_MAX_NICS_PER_VM = 4
VM_DEFAULT_MEMORY = 512 * MIB
UINT32_MAX = 2 ** 32 - 1
INT_MAX = 2 ** 31 - 1
LLONG_MAX = 2 ** 63 - 1


class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _write(text):
    sys.stderr.write(text)
    sys.stderr.flush()


def warnx(message):
    _write("vmctl: %s\n" % message)


def errx(message):
    warnx(message)
    raise Exit(1)


def err(message, code):
    errx("%s: %s" % (message, state.strerror(code)))


def usage():
    _write(USAGE)
    raise Exit(1)


def ctl_usage(name, text):
    _write("usage:\tvmctl [-v] %s %s\n" % (name, text))
    raise Exit(1)


class Getopt:
    """OpenBSD getopt(3): no permutation, stops at the first operand or `--`."""

    def __init__(self, args, optstring):
        self.args = list(args)
        self.optstring = optstring
        self.index = 0
        self.pos = 1

    def __iter__(self):
        return self

    def __next__(self):
        if self.pos == 1:
            if self.index >= len(self.args):
                raise StopIteration
            arg = self.args[self.index]
            if arg == "--":
                self.index += 1
                raise StopIteration
            if len(arg) < 2 or arg[0] != "-":
                raise StopIteration
        arg = self.args[self.index]
        char = arg[self.pos]
        self.pos += 1
        at_end = self.pos >= len(arg)
        where = self.optstring.find(char)
        if char == ":" or where < 0:
            if at_end:
                self._next_arg()
            warnx("unknown option -- %s" % char)
            return "?", None
        if self.optstring[where + 1:where + 2] == ":":
            if not at_end:
                value = arg[self.pos:]
            else:
                self.index += 1
                if self.index >= len(self.args):
                    self.pos = 1
                    warnx("option requires an argument -- %s" % char)
                    return "?", None
                value = self.args[self.index]
            self._next_arg()
            return char, value
        if at_end:
            self._next_arg()
        return char, None

    def _next_arg(self):
        self.index += 1
        self.pos = 1

    @property
    def remaining(self):
        return self.args[self.index:]


def strtonum(text, minimum, maximum):
    """OpenBSD strtonum(3): (value, None) or (None, 'invalid'|'too small'|'too large')."""
    stripped = text.lstrip(" \t\n\r\f\v")
    body = stripped[1:] if stripped[:1] in ("+", "-") else stripped
    if not body or not body.isdigit() or not body.isascii():
        return None, "invalid"
    value = int(stripped)
    if value < -LLONG_MAX - 1 or value < minimum:
        return None, "too small"
    if value > LLONG_MAX or value > maximum:
        return None, "too large"
    return value, None


def parse_vmid(word):
    """(id, name) or None, like vmctl's parse_vmid(..., 0)."""
    if word.startswith("-"):
        return None
    value, error = strtonum(word, 0, UINT32_MAX)
    if error is None:
        return value, None
    if len(word.encode()) >= VMM_MAX_NAME_LEN:
        warnx("name too long")
        return None
    return 0, word


def vmid_or_die(word):
    target = parse_vmid(word)
    if target is None:
        errx("invalid id: %s" % word)
    return target


def realpath(path):
    """(resolved, None) or (None, errno) like realpath(3)."""
    try:
        os.stat(path)
    except OSError as exc:
        return None, exc.errno
    return os.path.realpath(path), None


def identity():
    """The uid vmctl acts as: root, or $LAB_USER to simulate a non-root caller."""
    user = os.environ.get("LAB_USER")
    if not user or user == "root":
        return 0, "root"
    try:
        return pwd.getpwnam(user).pw_uid, user
    except KeyError:
        return 10000 + zlib.crc32(user.encode()) % 50000, user


class Client:
    """vmctl's imsg channel to vmd: one connection, used for every request of this run."""

    def __init__(self):
        root = state.lab_root()
        try:
            self.conn = protocol.connect(state.socket_path(root))
        except OSError as exc:
            err("connect: %s" % state.REAL_SOCKET, exc.errno)
        self.uid, self.user = identity()
        if self.uid != 0:
            # vmd's socket is mode 0660 (vm.conf `socket owner`): connect(2) fails for others
            self.request({"op": "hello"})

    def send(self, request):
        request = dict(request, uid=self.uid, user=self.user)
        try:
            self.conn.send(request)
        except OSError as exc:
            err("write error", exc.errno)

    def receive(self):
        try:
            reply = self.conn.receive()
        except OSError as exc:
            err("read error", exc.errno)
        except ValueError:
            errx("imsgbuf_get error")
        if reply is None:
            errx("pipe closed")
        if reply.get("type") == "denied":
            err("connect: %s" % state.REAL_SOCKET, "EACCES")
        if reply.get("type") == "fail":
            if reply.get("errno"):
                err("command failed", reply["errno"])
            errx("command failed")
        return reply

    def request(self, request):
        self.send(request)
        return self.receive()


# ---------------------------------------------------------------------- status
def vm_state(flags):
    if "paused" in flags:
        return "paused"
    if "waiting" in flags:
        return "waiting"
    if "shutdown" in flags:
        return "stopping"
    if "running" in flags:
        return "running"
    if not flags or "disabled" in flags:
        return "stopped"
    return "unknown"


def check_info_id(target, name, vm_id):
    info_id, info_name = target
    if info_id == 0 and not info_name:
        return -1
    if info_id != 0 and info_id == vm_id:
        return 1
    if info_name and name == info_name:
        return 1
    return 0


def owner_text(info):
    user = info.get("user") or str(info["uid"])
    user = user[:15]
    if info.get("gid", -1) != -1:
        group = ":" + (info.get("group") or str(info["gid"]))
        user = (user + group[:15])[:15]
    return user


def print_vm_info(vms, target, running_only):
    found = 0
    out = ["%5s %5s %5s %7s %7s %7s %12s %8s %s\n" % (
        "ID", "PID", "VCPUS", "MAXMEM", "CURMEM", "TTY", "OWNER", "STATE", "NAME")]
    for info in vms:
        running = info["pid"] != 0 and info["id"] != 0
        if not running and running_only:
            continue
        found += 1
        if not check_info_id(target, info["name"], info["id"]):
            continue
        maxmem = fmt_scaled(info["memory"])
        if running:
            tty = info["tty"] or "-"
            if "/" in tty and not tty.endswith("/"):
                tty = tty.rsplit("/", 1)[1]
            out.append("%5d %5d %5d %7s %7s %7s %12s %8s %s\n" % (
                info["id"], info["pid"], info["vcpus"], maxmem, fmt_scaled(info["curmem"]),
                tty, owner_text(info), vm_state(info["state"]), info["name"]))
        else:
            out.append("%5d %5s %5d %7s %7s %7s %12s %8s %s\n" % (
                info["id"], "-", info["vcpus"], maxmem, "-", "-", owner_text(info),
                vm_state(info["state"]), info["name"]))
    sys.stdout.write("".join(out))
    sys.stdout.flush()
    return 0 if found else 1


def ctl_status(name, text, args):
    running_only = False
    opts = Getopt(args, "r")
    for char, dummy in opts:
        if char == "r":
            running_only = True
        else:
            ctl_usage(name, text)
    rest = opts.remaining
    target = (0, None)
    if len(rest) == 1:
        target = vmid_or_die(rest[0])
    elif len(rest) > 1:
        ctl_usage(name, text)
    client = Client()
    reply = client.request({"op": "info"})
    return print_vm_info(reply["vms"], target, running_only)


# ---------------------------------------------------------------------- start
def parse_size(word, kind):
    try:
        value = scan_scaled(word)
    except OSError as exc:
        err("invalid %s size: %s" % (kind, word), exc.errno)
    if value < MIB:
        errx("%s size must be at least 1MB" % kind)
    if kind == "memory" and value > VMM_MAX_VM_MEM_SIZE:
        errx("memory size too large (limit is %s)" % fmt_scaled(VMM_MAX_VM_MEM_SIZE))
    size = value // MIB * MIB
    if size != value:
        warnx("%s size rounded to %s" % (kind, fmt_scaled(size)))
    return size


def parse_disktype(word):
    from labsim import images  # written by LAB-IMAGES
    fmt, path = images.split_format_prefix(word)
    if fmt is None:
        fmt = images.detect_format(path, use_extension=True)
    return fmt, path


def ctl_start(name, text, args):
    kernel = iso = instance = bootdevice = None
    autoconnect = False
    nets = []
    disks = []
    nifs = -1
    memory = 0
    opts = Getopt(args, "b:B:cd:i:Lm:n:r:t:")
    for char, value in opts:
        if char == "b":
            if kernel:
                errx("boot image specified multiple times")
            resolved, code = realpath(value)
            if resolved is None:
                err("invalid boot image path", code)
            kernel = resolved
        elif char == "B":
            if bootdevice:
                errx("boot device specified multiple times")
            if value not in ("disk", "cdrom", "net"):
                errx("unknown boot device %s" % value)
            bootdevice = value
        elif char == "r":
            if iso:
                errx("iso image specified multiple times")
            resolved, code = realpath(value)
            if resolved is None:
                err("invalid iso image path: %s" % value, code)
            iso = resolved
        elif char == "c":
            autoconnect = True
        elif char == "L":
            nets.append(".")
        elif char == "m":
            if memory:
                errx("memory specified multiple times")
            memory = parse_size(value, "memory")
        elif char == "n":
            nets.append(value)
        elif char == "d":
            fmt, path = parse_disktype(value)
            resolved, code = realpath(path)
            if resolved is None:
                err("invalid disk path: %s" % path, code)
            disks.append((resolved, fmt))
        elif char == "i":
            if nifs != -1:
                errx("interfaces specified multiple times")
            count, error = strtonum(value, 1, INT_MAX)
            if error is not None:
                warnx("count is %s: %s" % (error, value))
                errx("invalid interface count: %s" % value)
            nifs = count
        elif char == "t":
            if len(value.encode()) >= VMM_MAX_NAME_LEN:
                warnx("instance vm name too long")
                errx("invalid name: %s" % value)
            instance = value
        else:
            ctl_usage(name, text)
    rest = opts.remaining
    if len(rest) != 1:
        ctl_usage(name, text)
    vm_id, vm_name = vmid_or_die(rest[0])
    while len(nets) < nifs:
        nets.append("")
    nifs = max(nifs, len(nets))

    client = Client()
    flags = []
    if memory:
        flags.append("memory")
    if nifs:
        flags.append("network")
    if disks:
        flags.append("disk")
    if kernel:
        flags.append("kernel")
    if iso:
        flags.append("cdrom")
    if instance:
        flags.append("instance")
    elif flags:
        if not memory:
            memory = VM_DEFAULT_MEMORY
        if len(disks) > VM_MAX_DISKS_PER_VM:
            errx("too many disks")
        elif kernel is None and not disks:
            warnx("starting without disks")
        if kernel is None and not disks and not iso:
            errx("no kernel or disk/cdrom specified")
        if nifs > VM_MAX_NICS_PER_VM:
            errx("too many network interfaces")
        if kernel is None and nifs == 0:
            warnx("starting without network interfaces")
    if vm_name is not None:
        if vm_name[0] in "-._" or not all(c.isascii() and (c.isalnum() or c in ".-_") for c in vm_name):
            errx("invalid VM name")
    if kernel is not None:
        try:
            handle = os.open(kernel, os.O_RDONLY)
        except OSError as exc:
            err("cannot open kernel '%s'" % kernel, exc.errno)
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                errx("kernel must be a regular file")
        finally:
            os.close(handle)
    reply = client.request({
        "op": "start", "id": vm_id, "name": vm_name, "memory": memory, "nets": nets[:max(nifs, 0)],
        "disks": disks, "kernel": kernel, "iso": iso, "instance": instance,
        "bootdevice": bootdevice, "flags": flags,
    })
    if reply.get("type") != "start":
        warnx("unexpected response received from vmd")
        return 1
    result = reply["result"]
    messages = {
        VMD_BIOS_MISSING: "vmm bios firmware file not found.",
        VMD_DISK_MISSING: "could not open disk image(s)",
        VMD_CDROM_MISSING: "could not find specified iso image",
        VMD_CDROM_INVALID: "specified iso image is not a regular file",
        VMD_PARENT_INVALID: "invalid template",
    }
    if result:
        if result in messages:
            warnx(messages[result])
        else:
            warnx("start vm command failed: %s" % state.strerror(result))
        return 1
    if autoconnect:
        open_console(reply["tty"])
    warnx("started vm %d successfully, tty %s" % (reply["id"], reply["tty"]))
    return 0


def open_console(tty):
    """Exec the lab's stand-in for `/usr/bin/cu -r -l <tty> -s 115200`."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(CU_PATH, [CU_PATH, "-r", "-l", tty, "-s", "115200"])
    except OSError as exc:
        err("failed to open the console", exc.errno)


# ---------------------------------------------------------------------- stop / wait
def terminate_vm_complete(reply, wait, force):
    kind = reply.get("type")
    if kind == "terminate":
        result = reply["result"]
        if result == 0:
            _write("requested to shutdown vm %d\n" % reply["id"])
            return 0
        if result == VMD_VM_STOP_INVALID:
            _write("cannot stop vm that is not running\n")
        elif result == "ENOENT":
            _write("vm not found\n")
        elif result == "EINTR":
            _write("interrupted call\n")
        else:
            _write("failed: %s\n" % state.strerror(result))
        return 1
    if kind == "event":
        if wait:
            _write("terminated vm %d\n" % reply["id"])
        elif force:
            _write("forced to terminate vm %d\n" % reply["id"])
        return 0
    _write("unexpected response received from vmd\n")
    return 1


def terminate_vm(client, target, force, wait):
    vm_id, vm_name = target
    if vm_name is not None:
        _write("stopping vm %s: " % vm_name)
    else:
        _write("stopping vm: ")
    reply = client.request({"op": "terminate", "id": vm_id, "name": vm_name, "force": force, "wait": wait})
    return terminate_vm_complete(reply, wait, force)


def ctl_stop(name, text, args):
    force = wait = stop_all = False
    opts = Getopt(args, "afw")
    for char, dummy in opts:
        if char == "f":
            force = True
        elif char == "w":
            wait = True
        elif char == "a":
            stop_all = True
        else:
            ctl_usage(name, text)
    rest = opts.remaining
    target = None
    if stop_all:
        if rest:
            ctl_usage(name, text)
    else:
        if len(rest) != 1:
            ctl_usage(name, text)
        target = vmid_or_die(rest[0])
    client = Client()
    if not stop_all:
        return terminate_vm(client, target, force, wait)
    reply = client.request({"op": "info"})
    for info in reply["vms"]:
        if info["pid"] == 0 or info["id"] == 0:
            continue
        terminate_vm(client, (0, info["name"]), force, wait)
    return 0


def ctl_waitfor(name, text, args):
    if len(args) != 1:
        ctl_usage(name, text)
    vm_id, vm_name = vmid_or_die(args[0])
    client = Client()
    if vm_name is not None:
        _write("waiting for vm %s: " % vm_name)
    else:
        _write("waiting for vm: ")
    reply = client.request({"op": "wait", "id": vm_id, "name": vm_name})
    return terminate_vm_complete(reply, True, False)


# ---------------------------------------------------------------------- others
def _pause(name, text, args, kind):
    if len(args) != 1:
        ctl_usage(name, text)
    vm_id, vm_name = vmid_or_die(args[0])
    client = Client()
    reply = client.request({"op": kind, "id": vm_id, "name": vm_name})
    if reply.get("type") == "short":
        err("vmop_result_read", "EBADMSG")
    if reply.get("type") != kind:
        warnx("unexpected response received from vmd")
        return 1
    if reply["result"]:
        warnx("%s vm command failed: %s" % (kind, state.strerror(reply["result"])))
        return 1
    warnx("%sd vm %d successfully" % (kind, reply["id"]))
    return 0


def ctl_pause(name, text, args):
    return _pause(name, text, args, "pause")


def ctl_unpause(name, text, args):
    return _pause(name, text, args, "unpause")


def ctl_console(name, text, args):
    if len(args) != 1:
        ctl_usage(name, text)
    target = vmid_or_die(args[0])
    client = Client()
    reply = client.request({"op": "info"})
    for info in reply["vms"]:
        if check_info_id(target, info["name"], info["id"]) > 0 and info["tty"]:
            open_console(info["tty"])
    errx("console not found")


def ctl_load(name, text, args):
    if len(args) != 1:
        ctl_usage(name, text)
    path = os.path.abspath(args[0]) if args[0] else args[0]
    Client().request({"op": "load", "path": path})
    return 0


def ctl_log(name, text, args):
    if len(args) != 1:
        ctl_usage(name, text)
    word = args[0].lower()
    if "brief".startswith(word):
        verbose = 0
    elif "verbose".startswith(word):
        verbose = 2
    else:
        ctl_usage(name, text)
    Client().request({"op": "log", "verbose": verbose})
    return 0


def ctl_reload(name, text, args):
    if args:
        ctl_usage(name, text)
    Client().request({"op": "reload"})
    return 0


def ctl_reset(name, text, args):
    mode = "all"
    if len(args) == 1:
        mode = args[0].lower()
        if mode not in ("all", "vms", "switches"):
            ctl_usage(name, text)
    elif len(args) > 1:
        ctl_usage(name, text)
    Client().request({"op": "reset", "mode": mode})
    return 0


def ctl_create(name, text, args):
    del name, text
    from labsim import images  # written by LAB-IMAGES
    root = state.lab_root(required=False)
    disk_full = bool(root) and state.fault_active(root, "disk-full")
    return images.vmctl_create(list(args), disk_full=disk_full)


HANDLERS = {
    "console": ctl_console, "create": ctl_create, "load": ctl_load, "log": ctl_log,
    "pause": ctl_pause, "reload": ctl_reload, "reset": ctl_reset, "show": ctl_status,
    "start": ctl_start, "status": ctl_status, "stop": ctl_stop, "unpause": ctl_unpause,
    "wait": ctl_waitfor,
}


def run(argv):
    opts = Getopt(argv, "v")
    for char, dummy in opts:
        if char != "v":
            usage()
    rest = opts.remaining
    if not rest:
        usage()
    word = rest[0]
    chosen = None
    for name, text in COMMANDS:
        if name.startswith(word):
            if chosen is not None:
                _write("ambiguous argument: %s\n" % word)
                usage()
            chosen = (name, text)
    if chosen is None:
        _write("unknown argument: %s\n" % word)
        usage()
    name, text = chosen
    return HANDLERS[name](name, text, rest[1:])


def record_call(argv):
    """Append this invocation to the lab's call log (state.vmctl_calls_path); O_APPEND keeps lines whole."""
    root = state.lab_root(required=False)
    if not root or not os.path.isdir(state.path(root, "lab")):
        return
    line = (json.dumps(argv) + "\n").encode()
    fd = os.open(state.vmctl_calls_path(root), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    record_call(argv)
    try:
        code = run(argv)
    except Exit as exc:
        code = exc.code
    except KeyboardInterrupt:
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code
