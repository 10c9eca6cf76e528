"""Lab layout under $VMM_LAB_ROOT, lab settings, faults and OpenBSD's error strings."""

import errno
import fcntl
import json
import os
import sys

REAL_SOCKET = "/var/run/vmd.sock"
REAL_BIOS = "/etc/firmware/vmm-bios"

FAULTS = (
    "vmd-down",
    "stuck-stopping",
    "installer-fail",
    "installer-hang",
    "slow-install",
    "disk-full",
    "no-tap",
)
INSTALLER_FAULTS = ("installer-fail", "installer-hang", "slow-install")

DEFAULT_SETTINGS = {"cpus": 2, "taps": 16, "docroot": None, "www_user": "www-data"}

# strerror(3) texts as OpenBSD prints them (several differ from glibc's): the lab's one table.
BSD_STRERROR = {
    "EPERM": "Operation not permitted",
    "ENOENT": "No such file or directory",
    "ESRCH": "No such process",
    "EINTR": "Interrupted system call",
    "EIO": "Input/output error",
    "ENXIO": "Device not configured",
    "E2BIG": "Argument list too long",
    "EBADF": "Bad file descriptor",
    "ENOMEM": "Cannot allocate memory",
    "EACCES": "Permission denied",
    "EBUSY": "Device busy",
    "EEXIST": "File exists",
    "ENODEV": "Operation not supported by device",
    "ENOTDIR": "Not a directory",
    "EISDIR": "Is a directory",
    "EINVAL": "Invalid argument",
    "EMFILE": "Too many open files",
    "EFBIG": "File too large",
    "EOVERFLOW": "Value too large to be stored in data type",
    "ENOSPC": "No space left on device",
    "EROFS": "Read-only file system",
    "ERANGE": "Result too large",
    "EAGAIN": "Resource temporarily unavailable",
    "EALREADY": "Operation already in progress",
    "ECONNREFUSED": "Connection refused",
    "ETIMEDOUT": "Operation timed out",
    "ELOOP": "Too many levels of symbolic links",
    "ENAMETOOLONG": "File name too long",
    "EPROCLIM": "Too many processes",
    "EBADMSG": "Bad message",
    "EPIPE": "Broken pipe",
}


class LabError(Exception):
    """A lab usage error; the message is printed as `lab: <message>`."""


def strerror(code):
    """OpenBSD strerror for an errno name, a host errno number or an unknown number."""
    if isinstance(code, int):
        name = errno.errorcode.get(code)
        if name is None or code < 0 or code > 1000:
            return "Unknown error: %d" % code
        code = name
    if code == "EWOULDBLOCK":
        code = "EAGAIN"
    if code in BSD_STRERROR:
        return BSD_STRERROR[code]
    number = getattr(errno, code, None)
    return os.strerror(number) if number is not None else code


def lab_root(required=True):
    root = os.environ.get("VMM_LAB_ROOT")
    if not root:
        if required:
            sys.stderr.write("lab: VMM_LAB_ROOT is not set\n")
            sys.exit(1)
        return None
    return os.path.abspath(root)


def path(root, *parts):
    return os.path.join(root, *parts)


def socket_path(root):
    return path(root, "var", "run", "vmd.sock")


def pid_path(root):
    return path(root, "lab", "vmd.pid")


def log_path(root):
    return path(root, "var", "log", "vmd.log")


def vmctl_calls_path(root):
    """One line per vmctl invocation (its arguments, JSON): what benchmarks and tests count.
    Not an OpenBSD file; it lives with the lab's own bookkeeping."""
    return path(root, "lab", "vmctl.calls")


def bios_path(root):
    return path(root, "etc", "firmware", "vmm-bios")


def vmconf_path(root):
    return path(root, "etc", "vm.conf")


def tap_path(root, index):
    return path(root, "dev", "tap%d" % index)


def console_path(root, name):
    return path(root, "lab", "console", name + ".log")


def settings_path(root):
    return path(root, "lab", "settings.json")


def faults_path(root):
    return path(root, "lab", "faults.json")


def load_settings(root):
    settings = dict(DEFAULT_SETTINGS)
    try:
        with open(settings_path(root)) as handle:
            settings.update(json.load(handle))
    except (OSError, ValueError):
        pass
    if not settings.get("docroot"):
        settings["docroot"] = path(root, "var", "www", "htdocs")
    return settings


def save_settings(root, settings):
    _write_json(settings_path(root), settings)


def _write_json(target, data):
    tmp = target + ".tmp%d" % os.getpid()
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, target)


def load_faults(root):
    """Faults as {name: [vm names]}; an empty list means every VM."""
    try:
        with open(faults_path(root)) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return {name: list(vms) for name, vms in data.items() if name in FAULTS}


def _locked_update(root, update):
    lock_file = faults_path(root) + ".lock"
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        faults = load_faults(root)
        update(faults)
        _write_json(faults_path(root), faults)
        return faults


def set_fault(root, name, vm=None):
    def update(faults):
        if vm is None:
            faults[name] = []
        elif name not in faults:
            faults[name] = [vm]
        elif faults[name] and vm not in faults[name]:
            faults[name].append(vm)
    return _locked_update(root, update)


def clear_fault(root, name=None):
    def update(faults):
        if name is None:
            faults.clear()
        else:
            faults.pop(name, None)
    return _locked_update(root, update)


def fault_active(root, name, vm=None, faults=None):
    if faults is None:
        faults = load_faults(root)
    if name not in faults:
        return False
    vms = faults[name]
    return not vms or vm in vms


def active_faults_for(root, vm):
    faults = load_faults(root)
    return {name for name in faults if fault_active(root, name, vm, faults)}


def process_alive(pid):
    """The lab's processes (vmd, httpd, VMs): a zombie counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
