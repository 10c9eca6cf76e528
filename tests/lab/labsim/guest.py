"""What runs inside a lab VM process (`python -m labsim.guest SPEC`).

The daemon spawns this with the VM's disks already opened and flock'ed (the
inherited descriptors hold vmd's exclusive disk locks for as long as the process
lives). Exit status tells the daemon what the guest did: 0 = halt/power-off,
3 = reboot (see daemon.GUEST_EXIT_*).
"""

import json
import os
import signal
import stat
import sys
import threading
import time

GUEST_EXIT_HALT = 0
GUEST_EXIT_REBOOT = 3
# How long the simulated guest takes to shut down after vmd's request.
SHUTDOWN_SECONDS = 0.4


class Console:
    """The VM's serial console: a file the lab's cu stand-in follows; flushed per line."""

    def __init__(self, target):
        self.handle = open(target, "a", buffering=1)
        self.lock = threading.Lock()     # the boot and what the guest writes to /dev/console (console_device)

    def write(self, text):
        with self.lock:
            self.handle.write(text)
            self.handle.flush()
        return len(text)

    def flush(self):
        self.handle.flush()


def console_device(spec, console):
    """The guest's /dev/console: what the guest's programs write to it goes to the VM's console.

    sys/dev/cons.c cnwrite() hands a write on /dev/console to the console device (cn_tab), on a vmd guest com0
    (the installer's boot.conf `set tty com0`), the serial port vmd connects to the VM's tty, which `vmctl
    console` reads. Here a FIFO in the guest's lab dir, which guestnet's GUEST_INIT mounts on /dev/console in
    the guest's mount namespace, read by this (the VM) process into its console; a writer's O_TRUNC does
    nothing to a FIFO, as to a character device.
    """
    path = os.path.join(spec["lab_root"], "guests", spec["name"], "lab", "console")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path) and not stat.S_ISFIFO(os.lstat(path).st_mode):
            os.unlink(path)
        if not os.path.lexists(path):
            os.mkfifo(path, 0o620)
        # O_RDWR: the reader never sees end-of-file between two writers
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        sys.stderr.write("console device: %s\n" % exc)
        return None

    def relay():
        while True:
            data = os.read(fd, 4096)
            if data:
                console.write(data.decode("utf-8", "replace"))

    threading.Thread(target=relay, name="console-device", daemon=True).start()
    return path


def sync_disk(spec):
    """What the guest wrote that the lab keeps on the disk (pkg_add's packages, labsim.pkgtools: the guest's
    lab/unsynced-packages.json) goes into the boot disk's install record when the system goes down by itself
    (halt, reboot, vmd's shutdown request); a forced stop loses it."""
    try:
        pending_path = os.path.join(spec["lab_root"], "guests", spec["name"], "lab", "unsynced-packages.json")
        if not spec.get("disks") or not os.path.exists(pending_path):
            return
        with open(pending_path, encoding="utf-8") as handle:
            pending = json.load(handle)
        from labsim import installer
        disk = spec["disks"][0]["path"]
        record = installer.read_install_record(disk)
        if record is None:
            return
        record.setdefault("packages", {}).update(pending)
        installer.write_install_record(disk, record)
        os.unlink(pending_path)
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write("sync disk: %s\n" % exc)


def _exit_after_sync(spec, status):
    def handler(signum, frame):
        del signum, frame
        sync_disk(spec)
        os._exit(status)
    return handler


def _on_shutdown_request(console, spec=None):
    def handler(signum, frame):
        del signum, frame
        try:
            if spec is not None:
                sync_disk(spec)
            console.write("\nsyncing disks... done\n")
            time.sleep(SHUTDOWN_SECONDS)
            console.write("halted\n")
        finally:
            os._exit(GUEST_EXIT_HALT)
    return handler


def die_with_vmd(daemon_pid, spec=None):
    """A VM process does not outlive its vmd (its locks, tap and network would leak otherwise)."""
    def watch():
        while os.getppid() == daemon_pid:
            time.sleep(0.5)
        if spec is not None:
            try:
                from labsim import guestnet
                guestnet.guest_ended(spec["lab_root"], spec["name"], os.getpid())
            except Exception:  # pylint: disable=broad-except
                pass
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


class NetstartConsole:
    """The console of a booting installed system: /etc/rc runs netstart where it prints `starting
    network`, so the guest's network (labsim.guestnet: namespace, address, sshd) comes up there,
    before `login:`."""

    def __init__(self, console, network_up):
        self.console = console
        self.network_up = network_up

    def write(self, text):
        if self.network_up is not None and text.startswith("starting network\n"):
            network_up, self.network_up = self.network_up, None
            network_up()
        return self.console.write(text)

    def flush(self):
        self.console.flush()


def network_up(spec, installer):
    """Bring up the guest's network from its install record; a failure is logged, the boot goes on."""
    try:
        from labsim import guestnet
        record = installer.read_install_record(spec["disks"][0]["path"]) or {}
        guestnet.guest_up(spec["lab_root"], spec["name"], spec["vm_id"], spec["interfaces"],
                          spec.get("local_prefix"), record, os.getpid(), disk=spec["disks"][0]["path"])
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write("guest network: %s\n" % exc)
        sys.stderr.flush()


def idle():
    while True:
        signal.pause()


def boot(spec, console):
    """Boot the VM as vmd would and return only if the guest reboots."""
    ctx = {
        "lab_root": spec["lab_root"],
        "name": spec["name"],
        "vm_id": spec["vm_id"],
        "local_prefix": spec.get("local_prefix"),
        "interfaces": spec["interfaces"],
        "disks": spec["disks"],
        "kernel": spec["kernel"],
        "boot_device": spec.get("boot_device"),
        "console": console,
        "faults": set(spec.get("faults") or []),
    }
    try:
        from labsim import installer  # written by LAB-INSTALLER
    except ImportError:
        installer = None
    if not spec.get("bios") and installer is not None and installer.is_ramdisk(spec["kernel"]):
        interfaces = spec["interfaces"]
        if spec.get("boot_device") == "net" and interfaces and interfaces[0].get("local"):
            if installer.run(ctx) == "reboot":
                return
            idle()
        console.write(">> OpenBSD/amd64 BSD.RD\n")
        console.write("Welcome to the OpenBSD install program.\n")
        console.write("(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? ")
        idle()
    if spec.get("bios"):
        if spec["disks"] and installer is not None:
            ctx["console"] = NetstartConsole(console, lambda: network_up(spec, installer))
            installer.boot_installed(ctx)
        else:
            console.write("SeaBIOS (version lab)\nNo bootable device.\n")
        idle()
    console.write("booting %s\n" % spec["kernel"])
    idle()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    # The daemon blocks these signals in its threads; the VM process must see them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    if spec.get("daemon_pid"):
        die_with_vmd(spec["daemon_pid"], spec)
    console = Console(spec["console"])
    signal.signal(signal.SIGTERM, _on_shutdown_request(console, spec))
    # `lab guest reboot|halt VM` (and the guest's halt, labsim.pkgtools): what the guest OS would do on its own.
    signal.signal(signal.SIGUSR1, _exit_after_sync(spec, GUEST_EXIT_REBOOT))
    signal.signal(signal.SIGUSR2, _exit_after_sync(spec, GUEST_EXIT_HALT))
    if spec.get("lab_root") and spec.get("name"):
        console_device(spec, console)
    boot(spec, console)
    console.write("rebooting...\n")
    sys.stdout.flush()
    os._exit(GUEST_EXIT_REBOOT)


if __name__ == "__main__":
    main()
