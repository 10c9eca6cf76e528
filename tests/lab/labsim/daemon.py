"""The lab's vmd: a real daemon holding the VM table, running every VM as a child process.

Behaviour follows ../shared/reference/vmctl-facts.md (vmd.c, config.c, vmm.c): sticky
IDs per (name, uid), vm.conf VMs persist while stopped, vmctl VMs vanish, exclusive
disk locks (flock on the top image, held by the VM process), taps, ttys, restart in
place on guest reboot with its rate limit, staggered start, load/reload/reset.
"""

import fcntl
import grp
import json
import os
import pwd
import random
import signal
import subprocess
import sys
import threading
import time

from labsim import protocol, state
from labsim.protocol import (VMD_BIOS_MISSING, VMD_CDROM_INVALID, VMD_CDROM_MISSING,
                             VMD_DISK_MISSING, VMD_PARENT_INVALID)

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GUEST_EXIT_HALT = 0
GUEST_EXIT_REBOOT = 3

MIB = 1024 * 1024
DEFAULT_MEMORY = 512 * MIB
MAX_DISKS = 4
MAX_NICS = 4
MAX_TAPS = 256
# vmd.h VMD_DHCP_PREFIX: the `local prefix` when vm.conf sets none
DEFAULT_LOCAL_PREFIX = "100.64.0.0/10"
VM_START_RATE_SEC = 6
VM_START_RATE_LIMIT = 3
PTY_LETTERS = "pqrstuvwxyzPQRST"
PTY_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
RESTRICTED_OPS = ("load", "reload", "reset", "log")


class DaemonError(Exception):
    """vmd could not start; .lines are what it reports."""

    def __init__(self, lines):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class AlreadyRunning(DaemonError):
    pass


# usr.sbin/vmd/x86_vm.c 1.8 and pci.h: LOWMEM_KB, PCI_MMIO_BAR_BASE, PCI_MMIO_BAR_END ("4 MiB below 4 GiB")
LOWMEM = 640 * 1024
PCI_MMIO_BAR_BASE = 0xF0000000
PCI_MMIO_BAR_END = 0xFFBFFFFF


def memory_ranges(memory):
    """x86_vm.c `create_memory_map`: the (gpa, size, type) ranges vmd registers for `memory` bytes."""
    ranges = [(0, LOWMEM, "ram"), (LOWMEM, MIB - LOWMEM, "reserved")]
    rest = memory - MIB
    if rest <= 4 * MIB:
        # Only a 2nd BIOS area (at PCI_MMIO_BAR_END, which is not page aligned: vmm(4) refuses it).
        return ranges + [(PCI_MMIO_BAR_END, 4 * MIB, "reserved")]
    above_1m = min(rest, PCI_MMIO_BAR_BASE - MIB)
    above_4g = rest - above_1m
    ranges += [(MIB, above_1m, "ram"),
               (PCI_MMIO_BAR_BASE, PCI_MMIO_BAR_END - PCI_MMIO_BAR_BASE + 1, "mmio"),
               (PCI_MMIO_BAR_END + 1, 4 * MIB, "reserved")]      # 2nd copy of the BIOS, ending at 4 GiB
    if above_4g:
        ranges.append((4 * 1024 * MIB, above_4g, "ram"))
    return ranges


def vmm_memory_size(memory):
    """sys/dev/vmm/vmm.c `vm_create_check_mem_ranges`: every range but MMIO counts (configured + 4M)."""
    return sum(size for _gpa, size, kind in memory_ranges(memory) if kind != "mmio")


def tty_name(index):
    return "/dev/tty%s%s" % (PTY_LETTERS[index // len(PTY_DIGITS)], PTY_DIGITS[index % len(PTY_DIGITS)])


def _blank_interface():
    return {"local": False, "tap": None, "switch": None, "lladdr": None, "group": None}


class Vm:
    """One VM known to vmd (vmd's struct vmd_vm)."""

    def __init__(self, vm_id, name):
        self.vm_id = vm_id
        self.name = name
        self.from_config = False
        self.enabled = True
        self.memory = DEFAULT_MEMORY
        self.kernel = None          # configured boot image (vm.conf `boot`)
        self.override_kernel = None  # one-time `vmctl start -b` image, dropped after use
        self.boot_device = None
        self.cdrom = None
        self.disks = []             # [(path, format or None)]
        self.interfaces = []        # dicts: local, tap, switch, lladdr, group
        self.owner_uid = 0
        self.owner_gid = -1
        self.insowner = None        # (uid, gid) allowed to create instances
        self.instance_of = None
        # runtime state
        self.running = False
        self.paused = False
        self.shutdown = False
        self.waiting = False
        self.removed = False
        self.proc = None
        self.tty = None
        self.taps = []
        self.macs = []
        self.locked_disks = []
        self.run_boot_device = None
        self.run_kernel = None
        self.run_seq = 0
        self.start_tv = 0.0
        self.start_limit = 0
        self.exit_gen = 0
        self.boot_offset = 0

    @property
    def pid(self):
        return self.proc.pid if (self.running and self.proc is not None) else 0

    def state_flags(self):
        flags = []
        if self.running:
            flags.append("running")
        if self.paused:
            flags.append("paused")
        if self.waiting:
            flags.append("waiting")
        if self.shutdown and self.running:
            flags.append("shutdown")
        if self.from_config and not self.enabled:
            flags.append("disabled")
        return flags


class Daemon:
    def __init__(self, root):
        self.root = root
        self.settings = state.load_settings(root)
        self.cond = threading.Condition(threading.RLock())
        self.vms = []
        self.ids = {}
        # vm_claimid numbers from 1 (++vmd_nvm); `lab vm-ids-from N` plays a vmd that already numbered N-1
        self.next_id = self.first_id() - 1
        # parse.y `local prefix` sets vmd_cfg.cfg_localprefix; config_init's default is 100.64.0.0/10
        self.local_prefix = DEFAULT_LOCAL_PREFIX
        self.switches = []
        self.verbose = 0
        self.parallel = None
        self.delay = 30
        self.batch_due = None
        self.run_counter = 0
        self.stopping = False
        self.server = None
        self.user_names = {}
        # vm.conf `socket owner`: who may connect (mode 0660); root:wheel by default
        self.socket_owner = (0, 0)

    # ------------------------------------------------------------------ logging
    def log(self, message):
        line = "%s vmd[%d]: %s\n" % (time.strftime("%b %d %H:%M:%S"), os.getpid(), message)
        try:
            with open(state.log_path(self.root), "a") as handle:
                handle.write(line)
        except OSError:
            pass

    # ------------------------------------------------------------------ config
    def parse_config(self, path, default_file=False):
        """Parse a vm.conf, registering its VMs as vmd does; returns the Config.

        Raises DaemonError with vmd's lines; VMs registered before the error stay (as in vmd).
        """
        from labsim import vmconf  # written by LAB-VMCONF; imported when needed
        try:
            config = vmconf.parse_file(path, register=self.register_spec, default_file=default_file)
        except vmconf.ConfigError as exc:
            raise DaemonError(list(exc.messages))
        for warning in getattr(config, "warnings", []) or []:
            self.log(warning)
        return config

    def register_spec(self, spec):
        """vm_register() for a vm.conf block: None, or the strerror text that fails the load.

        vmd.c 1.169 `vm_register` runs `vm_instance` BEFORE its "already registered" (EALREADY →
        "skipped") check. `vm_instance` finds the parent, then returns EPROCLIM when the instance's
        name is registered already: a running instance (vmd_reload keeps running VMs) therefore
        fails every `vmctl reload` ("vm ... failed: Too many processes" from parse.y), after vmd
        already dropped the stopped VMs. `vmd -n` never calls vm_register, so it passes.
        """
        from labsim import vmconf
        existing = self.vm_by_name(spec.name)
        if existing is not None and not getattr(spec, "instance_of", None):
            self.log('vm "%s" skipped (%s)' % (spec.name, "running" if existing.running else "already exists"))
            return None
        if getattr(spec, "instance_of", None):
            parent = self.vm_by_name(spec.instance_of)
            if parent is not None and existing is not None:
                problem = state.strerror("EPROCLIM")
            else:
                problem = vmconf.registration_error(spec, parent)
        else:
            problem = vmconf.registration_error(spec)
        if problem:
            return problem
        vm = self.vm_from_spec(spec)
        self.vms.append(vm)
        vm.waiting = vm.enabled
        self.log('vm "%s" registered (%s)' % (vm.name, "enabled" if vm.enabled else "disabled"))
        return None

    def apply_config(self, config):
        """After a successful parse: switches, staggered start settings, the first batch."""
        for switch in getattr(config, "switches", []) or []:
            if switch.name not in [known.name for known in self.switches]:
                self.switches.append(switch)
        # parse_config() starts from the defaults: no `socket owner` line means root:wheel again
        owner = getattr(config, "socket_owner", None) or (0, 0)
        self.socket_owner = (-1 if owner[0] is None else owner[0], -1 if owner[1] is None else owner[1])
        parallel = getattr(config, "staggered_parallel", None)
        self.parallel = parallel if parallel else int(self.settings.get("cpus") or 2)
        delay = getattr(config, "staggered_delay", None)
        self.delay = 30 if delay is None else delay
        # parse_config() (parse.y) never resets cfg_localprefix: a file without `local prefix` keeps the
        # current one, also on `vmctl load` and reload (vmd.c vmd_reload), until vmd restarts.
        if getattr(config, "local_prefix_set", False):
            self.local_prefix = config.local_prefix
        self.start_vm_batch()

    def vm_from_spec(self, spec):
        vm = Vm(self.claim_id(spec.name, 0), spec.name)
        vm.from_config = True
        parent = self.vm_by_name(spec.instance_of) if getattr(spec, "instance_of", None) else None
        vm.instance_of = getattr(spec, "instance_of", None)
        vm.memory = spec.memory or (parent.memory if parent else DEFAULT_MEMORY)
        vm.kernel = spec.boot or (parent.kernel if parent else None)
        vm.boot_device = spec.boot_device or (parent.boot_device if parent else None)
        vm.cdrom = spec.cdrom or (parent.cdrom if parent else None)
        vm.disks = [(disk[0], disk[1]) for disk in spec.disks]
        interfaces = []
        for iface in spec.interfaces:
            entry = _blank_interface()
            entry.update({key: iface.get(key) for key in entry if key in iface})
            interfaces.append(entry)
        if not interfaces and parent is not None:
            interfaces = [dict(iface, lladdr=None, tap=None) for iface in parent.interfaces]
        count = max(getattr(spec, "interfaces_count", None) or 0, len(interfaces))
        while len(interfaces) < count:
            interfaces.append(_blank_interface())
        vm.interfaces = interfaces
        vm.owner_uid = spec.owner_uid if spec.owner_uid is not None else 0
        vm.owner_gid = spec.owner_gid if spec.owner_gid is not None else -1
        vm.enabled = spec.enabled
        allow = getattr(spec, "allow_instance", None) or {}
        if allow.get("owner_uid") is not None or allow.get("owner_gid") is not None:
            vm.insowner = (allow.get("owner_uid", -1), allow.get("owner_gid", -1))
        return vm

    # ------------------------------------------------------------------ lookups
    def vm_by_name(self, name):
        for vm in self.vms:
            if vm.name == name:
                return vm
        return None

    def vm_by_id(self, vm_id):
        for vm in self.vms:
            if vm.vm_id == vm_id:
                return vm
        return None

    def first_id(self):
        """`lab vm-ids-from N` (read now, so it applies to the next new VM without a vmd restart)."""
        return int(state.load_settings(self.root).get("vm_ids_from") or 1)

    def claim_id(self, name, uid):
        key = (name, uid)
        if key not in self.ids:
            self.next_id = max(self.next_id, self.first_id() - 1)
            self.next_id += 1
            self.ids[key] = self.next_id
        return self.ids[key]

    def user_name(self, uid):
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return self.user_names.get(uid)

    def socket_access(self, uid):
        owner_uid, owner_gid = self.socket_owner
        if uid == owner_uid:
            return True
        return owner_gid != -1 and self.user_in_group(uid, owner_gid)

    @staticmethod
    def user_in_group(uid, gid):
        """True when the user's primary group is gid or the user is listed in it (getgrouplist)."""
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return False
        if entry.pw_gid == gid:
            return True
        try:
            return entry.pw_name in grp.getgrgid(gid).gr_mem
        except KeyError:
            return False

    @staticmethod
    def group_name(gid):
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return None

    @classmethod
    def check_perm(cls, vm, owner, uid):
        """vmd's vm_checkperm(): True when uid may act on the VM (or create it)."""
        if uid == 0:
            return True
        if owner is None:
            return False
        owner_uid, owner_gid = owner
        if vm is None:
            if owner_uid == uid:
                return True
        elif (vm.running and vm.owner_uid == uid) or (not vm.running and owner_uid == uid):
            return True
        if owner_gid is not None and owner_gid != -1:
            return cls.user_in_group(uid, owner_gid)
        return False

    # ------------------------------------------------------------------ batches
    def start_vm_batch(self):
        """vmd's start_vm_batch(): start up to `parallel` waiting VMs, re-arm the timer."""
        with self.cond:
            started = 0
            self.batch_due = None
            for vm in list(self.vms):
                if not vm.waiting:
                    continue
                started += 1
                if started > self.parallel:
                    self.batch_due = time.monotonic() + self.delay
                    self.cond.notify_all()
                    break
                vm.waiting = False
                if vm.running:
                    # started by hand meanwhile: config_setvm() refuses with EALREADY
                    self.log("config_setvm: vm is already running")
                    continue
                result = self.launch(vm)
                if result:
                    self.start_failed(vm, result)

    def batch_timer(self):
        with self.cond:
            while not self.stopping:
                if self.batch_due is None:
                    self.cond.wait()
                    continue
                remaining = self.batch_due - time.monotonic()
                if remaining > 0:
                    self.cond.wait(remaining)
                    continue
                self.start_vm_batch()

    # ------------------------------------------------------------------ starting
    def start_failed(self, vm, result):
        self.log("%s: failed to start vm: %s" % (vm.name, state.strerror(result)))
        if not vm.from_config:
            self.remove_vm(vm)

    def remove_vm(self, vm):
        vm.removed = True
        if vm in self.vms:
            self.vms.remove(vm)

    def lab_faults(self, vm):
        return state.active_faults_for(self.root, vm.name)

    def launch(self, vm, restart=False):
        """vmd's config_setvm(): open everything, spawn the VM process. Returns 0 or a result code."""
        now = time.monotonic()
        since_last = now - vm.start_tv if vm.start_tv else None
        vm.start_tv = now
        if since_last is not None and since_last < VM_START_RATE_SEC:
            vm.start_limit += 1
        else:
            vm.start_limit = 0
        if vm.start_limit >= VM_START_RATE_LIMIT:
            self.log("%s: vm %d restarted too quickly" % (vm.name, vm.vm_id))
            return "EPERM"

        kernel = vm.override_kernel or vm.kernel
        vm.override_kernel = None
        bios = kernel is None
        if bios:
            kernel = state.bios_path(self.root)
            if not os.path.isfile(kernel):
                return VMD_BIOS_MISSING
        elif not os.path.exists(kernel):
            self.log("%s: can't open kernel or BIOS boot image %s" % (vm.name, kernel))
            return "ENOENT"

        if vm.cdrom:
            if not os.path.exists(vm.cdrom):
                return VMD_CDROM_MISSING
            if not os.path.isfile(vm.cdrom):
                return VMD_CDROM_INVALID

        lock_fds = []
        disks = []

        def fail(result):
            for fd in lock_fds:
                os.close(fd)
            return result

        for disk_path, fmt in vm.disks:
            if fmt is None:
                fmt = _images().detect_format(disk_path, use_extension=False)
            try:
                fd = os.open(disk_path, os.O_RDWR)
            except OSError as exc:
                self.log("%s: can't open disk %s: %s" % (vm.name, disk_path, state.strerror(exc.errno)))
                return fail(VMD_DISK_MISSING)
            lock_fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.log("%s: disk %s is locked by another VM" % (vm.name, disk_path))
                return fail(VMD_DISK_MISSING)
            problem = _images().check_disk(disk_path, fmt)
            if problem:
                self.log("%s: %s" % (vm.name, problem))
                return fail(-1)
            disks.append({"path": disk_path, "format": fmt})

        taps = self.allocate_taps(vm)
        if isinstance(taps, str):
            return fail(taps)

        if not restart or vm.tty is None:
            vm.tty = self.allocate_tty()
        console = state.console_path(self.root, vm.name)
        os.makedirs(os.path.dirname(console), exist_ok=True)
        if restart:
            vm.boot_offset = os.path.getsize(console) if os.path.exists(console) else 0
        else:
            with open(console, "w"):
                pass
            vm.boot_offset = 0

        macs = []
        for index, iface in enumerate(vm.interfaces):
            macs.append(iface.get("lladdr") or "fe:e1:bb:d%d:%02x:%02x" % (
                1 + index, random.randint(0, 255), random.randint(0, 255)))
        faults = sorted(self.lab_faults(vm) & set(state.INSTALLER_FAULTS))
        spec = {
            "lab_root": self.root,
            "name": vm.name,
            "vm_id": vm.vm_id,
            "memory": vm.memory,
            # tap: the host interface the guest's packets arrive on (pf `in on tap`, labsim.network)
            "interfaces": [{"mac": mac, "local": bool(iface.get("local")), "switch": iface.get("switch"),
                            "switch_interface": self.switch_interface(iface.get("switch")),
                            "tap": "tap%d" % tap, "groups": [iface["group"]] if iface.get("group") else []}
                           for mac, iface, tap in zip(macs, vm.interfaces, taps)],
            "disks": disks,
            "kernel": kernel,
            "bios": bios,
            "boot_device": vm.boot_device,
            "cdrom": vm.cdrom,
            "console": console,
            "faults": faults,
            # dhcp.c answers with priv.c vm_priv_addr() addresses inside this prefix
            "local_prefix": self.local_prefix,
            "daemon_pid": os.getpid(),
        }
        env = dict(os.environ)
        env["PYTHONPATH"] = LAB_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["VMM_LAB_ROOT"] = self.root
        errors = open(console[:-len(".log")] + ".stderr", "a")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "labsim.guest", json.dumps(spec)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                pass_fds=lock_fds, cwd=self.root, env=env, start_new_session=True)
        except OSError as exc:
            self.log("%s: cannot spawn vm process: %s" % (vm.name, exc))
            return fail("ENOMEM")
        finally:
            errors.close()
        # The VM process inherited the locked descriptions; it holds the locks from now on.
        for fd in lock_fds:
            os.close(fd)
        vm.proc = proc
        vm.running = True
        vm.paused = False
        vm.shutdown = False
        # config_setvm() (config.c 1.79) sets VM_STATE_RUNNING and never clears VM_STATE_WAITING:
        # only start_vm_batch() does. A VM queued by a reload and started by hand with `vmctl
        # start` runs while `vmctl status` shows it `waiting` (with its PID) until its batch comes.
        vm.taps = taps
        vm.macs = macs
        vm.locked_disks = [disk["path"] for disk in disks]
        vm.run_boot_device = vm.boot_device
        vm.run_kernel = kernel
        self.run_counter += 1
        vm.run_seq = self.run_counter
        threading.Thread(target=self.reap, args=(vm, proc), daemon=True).start()
        self.log("%s: started vm %d successfully, tty %s" % (vm.name, vm.vm_id, vm.tty))
        return 0

    def allocate_taps(self, vm):
        """config_setvm()'s tap loop (usr.sbin/vmd/config.c 1.79) over vmm.c 1.133 `opentap`.

        opentap tries /dev/tap0, tap1, ... up to MAX_TAP: a busy node (EBUSY) is skipped, and the
        first node that does not exist (ENOENT) ends the search, so taps after a gap are never
        used and running out of nodes fails with ENOENT ("No such file or directory"); EBUSY only
        when all MAX_TAP nodes exist and are busy. A named tap (`interface tapN`) is opened as is.
        """
        if not vm.interfaces:
            return []
        if "no-tap" in self.lab_faults(vm):
            # As when every existing node is held: the next open finds no node.
            return "ENOENT"
        used = set()
        for other in self.vms:
            if other.running and other is not vm:
                used.update(other.taps)
        taken = []
        for iface in vm.interfaces:
            wanted = iface.get("tap")
            if wanted and wanted != "tap":
                index = int(wanted[3:])
                if not os.path.exists(state.tap_path(self.root, index)):
                    return "ENOENT"
                if index in used or index in taken:
                    return "EBUSY"
                taken.append(index)
                continue
            found = None
            for index in range(MAX_TAPS):
                if not os.path.exists(state.tap_path(self.root, index)):
                    return "ENOENT"         # "Ran out of /dev/tap* special files."
                if index not in used and index not in taken:
                    found = index
                    break
            if found is None:
                return "EBUSY"
            taken.append(found)
        return taken

    def switch_interface(self, name):
        """The bridge(4)/veb(4) of vm.conf switch `name` (its `interface`), the guest's network segment."""
        for switch in self.switches:
            if name and switch.name == name:
                return switch.interface
        return None

    def allocate_tty(self):
        used = {vm.tty for vm in self.vms if vm.running and vm.tty}
        index = 0
        while tty_name(index) in used:
            index += 1
        return tty_name(index)

    # ------------------------------------------------------------------ VM exits
    def reap(self, vm, proc):
        code = proc.wait()
        with self.cond:
            if vm.proc is not proc:
                return
            self.vm_exited(vm, code)
            self.cond.notify_all()

    def vm_exited(self, vm, code):
        self.guest_network_down(vm)
        vm.exit_gen += 1
        vm.running = False
        vm.paused = False
        vm.taps = []
        vm.locked_disks = []
        reboot = code == GUEST_EXIT_REBOOT and not vm.shutdown and not vm.run_boot_device
        vm.shutdown = False
        if vm.removed or self.stopping:
            vm.tty = None
            return
        if reboot:
            self.log("%s: vm %d rebooted, restarting" % (vm.name, vm.vm_id))
            result = self.launch(vm, restart=True)
            if not result:
                return
            self.log("%s: restart failed: %s" % (vm.name, state.strerror(result)))
        vm.tty = None
        self.log("%s: vm %d stopped" % (vm.name, vm.vm_id))
        if not vm.from_config:
            self.remove_vm(vm)

    def guest_network_down(self, vm):
        """The guest's namespace and sshd (labsim.guestnet) end with its VM process, whatever ended it; what the
        guest did goes into its first disk (guestnet.guest_ended) before anyone learns that the VM stopped."""
        try:
            from labsim import guestnet
            saved = guestnet.guest_ended(self.root, vm.name, vm.proc.pid if vm.proc is not None else None)
            if saved:
                self.log("%s: guest state saved to its disk (%d bytes, %.3f s)" % (vm.name, saved["bytes"], saved["seconds"]))
        except Exception as exc:  # pylint: disable=broad-except
            self.log("%s: guest network teardown failed: %s" % (vm.name, exc))

    def guest_network_signal(self, vm, sig):
        """A paused VM runs nothing: its guest's sshd and sessions stop with it (labsim.guestnet)."""
        try:
            from labsim import guestnet
            guestnet.signal_guest(self.root, vm.name, sig)
        except Exception as exc:  # pylint: disable=broad-except
            self.log("%s: guest network signal failed: %s" % (vm.name, exc))

    def kill(self, vm, sig):
        if vm.proc is None:
            return
        try:
            os.kill(vm.proc.pid, sig)
            if sig == signal.SIGKILL:
                os.kill(vm.proc.pid, signal.SIGCONT)
        except OSError:
            pass

    def wait_exit(self, vm, gen, timeout=None):
        return self.cond.wait_for(lambda: vm.exit_gen != gen or self.stopping, timeout)

    # ------------------------------------------------------------------ requests
    def handle_client(self, sock):
        conn = protocol.Connection(sock)
        try:
            while True:
                request = conn.receive()
                if request is None:
                    break
                for reply in self.dispatch(request):
                    if reply is None:
                        return
                    conn.send(reply)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def dispatch(self, request):
        op = request.get("op")
        uid = int(request.get("uid", 0))
        if request.get("user") and uid:
            self.user_names.setdefault(uid, request["user"])
        if uid != 0 and not self.socket_access(uid):
            # the socket file's owner and mode 0660 keep this user out at connect(2)
            return [{"type": "denied"}]
        if op in RESTRICTED_OPS and uid != 0:
            return [{"type": "fail", "errno": "EPERM"}]
        handler = getattr(self, "op_" + str(op), None)
        if handler is None:
            return [{"type": "fail", "errno": "EINVAL"}]
        return handler(request, uid)

    def vm_info(self, vm):
        # MAXMEM of a running VM comes from the kernel (vmd vmm.c 1.133 get_info_vm → VMM_IOC_INFO
        # → sys/dev/vmm/vmm.c vm_get_info: vir_memory_size = vm_memory_size); a stopped VM shows
        # the configured size (vmd.c: vcp_memranges[0].vmr_size). CURMEM: what vmm(4) reports as
        # in use (pmap resident count); the lab's guests "touch" all of their RAM.
        memory = vmm_memory_size(vm.memory) if vm.running else vm.memory
        curmem = vm.memory if vm.running else 0
        uid = vm.owner_uid
        return {
            "id": vm.vm_id, "pid": vm.pid, "vcpus": 1, "memory": memory, "curmem": curmem,
            "tty": vm.tty if vm.running else "", "uid": uid, "gid": vm.owner_gid,
            "user": self.user_name(uid),
            "group": self.group_name(vm.owner_gid) if vm.owner_gid != -1 else None,
            "state": vm.state_flags(), "name": vm.name,
        }

    def ordered_vms(self):
        running = sorted((vm for vm in self.vms if vm.running), key=lambda vm: vm.run_seq)
        return running + [vm for vm in self.vms if not vm.running]

    def op_info(self, request, uid):
        with self.cond:
            return [{"type": "info", "vms": [self.vm_info(vm) for vm in self.ordered_vms()]}]

    def op_show(self, request, uid):
        with self.cond:
            vms = []
            for vm in self.ordered_vms():
                info = self.vm_info(vm)
                info.update({
                    "memory": vm.memory, "maxmem": info["memory"],
                    "from_config": vm.from_config, "enabled": vm.enabled, "disks": [list(d) for d in vm.disks],
                    "locked_disks": vm.locked_disks, "taps": ["tap%d" % t for t in vm.taps], "macs": vm.macs,
                    "kernel": vm.run_kernel if vm.running else vm.kernel, "boot_device": vm.boot_device,
                    "cdrom": vm.cdrom, "console": state.console_path(self.root, vm.name),
                    "interfaces": vm.interfaces,
                })
                vms.append(info)
            return [{
                "type": "show", "vms": vms, "switches": [sw.name for sw in self.switches],
                "pid": os.getpid(), "parallel": self.parallel,
                "delay": self.delay, "verbose": self.verbose,
                "ids": [[name, uid_, vm_id] for (name, uid_), vm_id in sorted(self.ids.items(), key=lambda i: i[1])],
            }]

    def op_console(self, request, uid):
        with self.cond:
            for vm in self.vms:
                if vm.running and vm.tty == request.get("tty"):
                    return [{"type": "console", "name": vm.name, "id": vm.vm_id,
                             "console": state.console_path(self.root, vm.name), "offset": vm.boot_offset}]
            return [{"type": "console", "name": None}]

    def op_watch(self, request, uid):
        """Reply once the VM on this tty has terminated (a restart in place keeps the tty)."""
        with self.cond:
            vm = self.vm_by_id(request.get("id"))
            tty = request.get("tty")
            if vm is not None:
                self.cond.wait_for(lambda: self.stopping or vm.removed or not vm.running or vm.tty != tty)
            return [{"type": "gone"}]

    def register_request(self, request, uid):
        """vmd's vm_register() for a start request: (ret, result, vm)."""
        flags = set(request.get("flags") or [])
        name = request.get("name") or ""
        vm_id = request.get("id") or 0
        parent = None
        if "instance" in flags and request.get("instance"):
            parent = self.vm_by_name(request["instance"])
            if parent is None:
                return -1, VMD_PARENT_INVALID, None
            if not self.check_perm(None, parent.insowner, uid):
                self.log('vm "%s" no permission to create vm instance' % parent.name)
                return -1, "ENAMETOOLONG", None
            if (name and self.vm_by_name(name)) or (vm_id and self.vm_by_id(vm_id)):
                return -1, "EPROCLIM", None
        existing = (self.vm_by_name(name) if name else None) or (self.vm_by_id(vm_id) if vm_id else None)
        if existing is not None:
            if not self.check_perm(existing, (existing.owner_uid, existing.owner_gid), uid):
                return -1, "EPERM", existing
            if "kernel" in flags and not existing.running:
                existing.override_kernel = request.get("kernel")
            return -1, "EALREADY", existing
        if not self.check_perm(None, parent.insowner if parent else None, uid):
            self.log("permission denied")
            return -1, "EPERM", None
        if not flags:
            self.log("invalid configuration, no devices")
            return -1, VMD_DISK_MISSING, None
        disks = [tuple(disk) for disk in request.get("disks") or []]
        nets = request.get("nets") or []
        if len(disks) > MAX_DISKS or len(nets) > MAX_NICS:
            return -1, "EINVAL", None
        if parent is None and not request.get("kernel") and not disks and not request.get("iso"):
            return -1, "EINVAL", None
        if not name or name[0] in ".-_" or not all(c.isascii() and (c.isalnum() or c in ".-_") for c in name):
            self.log("invalid VM name")
            return -1, "EINVAL", None
        vm = Vm(self.claim_id(name, uid), name)
        vm.owner_uid = uid
        vm.memory = request.get("memory") or (parent.memory if parent else DEFAULT_MEMORY)
        vm.override_kernel = request.get("kernel")
        vm.kernel = parent.kernel if parent else None
        vm.boot_device = request.get("bootdevice") or (parent.boot_device if parent else None)
        vm.cdrom = request.get("iso") or (parent.cdrom if parent else None)
        vm.disks = disks
        interfaces = []
        for net in nets:
            iface = _blank_interface()
            if net == ".":
                iface["local"] = True
            elif net:
                iface["switch"] = net
            interfaces.append(iface)
        if not interfaces and parent is not None:
            interfaces = [dict(iface, lladdr=None, tap=None) for iface in parent.interfaces]
        vm.interfaces = interfaces
        vm.instance_of = parent.name if parent else None
        self.vms.append(vm)
        return 0, 0, vm

    def op_start(self, request, uid):
        flags = set(request.get("flags") or [])
        with self.cond:
            ret, result, vm = self.register_request(request, uid)
            res = 0
            if flags <= {"kernel"}:
                if not (ret == -1 and result == "EALREADY" and not vm.running):
                    res = result
            elif ret != 0:
                res = result
            if res == 0:
                res = self.launch(vm)
                if res:
                    self.start_failed(vm, res)
            if res:
                return [{"type": "start", "result": res, "id": 0, "tty": ""}]
            return [{"type": "start", "result": 0, "id": vm.vm_id, "tty": vm.tty}]

    def lookup_for_stop(self, request, force):
        vm_id = request.get("id") or 0
        vm = self.vm_by_id(vm_id) if vm_id else self.vm_by_name(request.get("name") or "")
        if vm is None:
            return None, "ENOENT"
        if vm.shutdown and vm.running and not force:
            return vm, "EALREADY"
        if not vm.running:
            return vm, "EINVAL"
        return vm, None

    def op_terminate(self, request, uid):
        force = bool(request.get("force"))
        wait = bool(request.get("wait"))
        with self.cond:
            vm, result = self.lookup_for_stop(request, force)
            reply_id = vm.vm_id if vm is not None else (request.get("id") or 0)
            if result is None and not self.check_perm(vm, (vm.owner_uid, vm.owner_gid), uid):
                result = "EPERM"
            if result:
                return [{"type": "terminate", "result": result, "id": reply_id}]
            gen = vm.exit_gen
            vm.shutdown = True
            if force:
                self.kill(vm, signal.SIGKILL)
            elif "stuck-stopping" not in self.lab_faults(vm):
                self.kill(vm, signal.SIGTERM)
            if wait:
                self.wait_exit(vm, gen)
                if vm.exit_gen == gen:
                    return [None]
                return [{"type": "event", "id": vm.vm_id}]
            if force:
                # vmm terminates the VM before it answers
                self.wait_exit(vm, gen, timeout=5)
            return [{"type": "terminate", "result": 0, "id": vm.vm_id}]

    def op_wait(self, request, uid):
        with self.cond:
            vm, result = self.lookup_for_stop(request, False)
            reply_id = vm.vm_id if vm is not None else (request.get("id") or 0)
            if result is None and not self.check_perm(vm, (vm.owner_uid, vm.owner_gid), uid):
                result = "EPERM"
            if result:
                return [{"type": "terminate", "result": result, "id": reply_id}]
            gen = vm.exit_gen
            self.wait_exit(vm, gen)
            if vm.exit_gen == gen:
                return [None]
            return [{"type": "event", "id": vm.vm_id}]

    def _pause_common(self, request, uid, pause):
        kind = "pause" if pause else "unpause"
        with self.cond:
            vm_id = request.get("id") or 0
            vm = self.vm_by_id(vm_id) if vm_id else self.vm_by_name(request.get("name") or "")
            if vm is None or not self.check_perm(vm, (vm.owner_uid, vm.owner_gid), uid):
                # vmd answers with a bare int here, which vmctl cannot decode
                return [{"type": "short"}]
            if not vm.running:
                return [{"type": kind, "result": "ENOENT", "id": vm.vm_id}]
            if vm.paused == pause:
                return [{"type": kind, "result": "EALREADY" if pause else "EINVAL", "id": vm.vm_id}]
            self.kill(vm, signal.SIGSTOP if pause else signal.SIGCONT)
            self.guest_network_signal(vm, signal.SIGSTOP if pause else signal.SIGCONT)
            vm.paused = pause
            self.log("%s: %sd vm %d successfully" % (vm.name, kind, vm.vm_id))
            return [{"type": kind, "result": 0, "id": vm.vm_id}]

    def op_pause(self, request, uid):
        return self._pause_common(request, uid, True)

    def op_unpause(self, request, uid):
        return self._pause_common(request, uid, False)

    def op_hello(self, request, uid):
        return [{"type": "ok"}]

    def op_log(self, request, uid):
        with self.cond:
            self.verbose = int(request.get("verbose", 0))
            return [{"type": "ok"}]

    def op_load(self, request, uid):
        return self.reload(request.get("path"))

    def op_reload(self, request, uid):
        return self.reload(None)

    def reload(self, filename):
        with self.cond:
            if filename is None:
                filename = state.vmconf_path(self.root)
                for vm in list(self.vms):
                    if not vm.running:
                        self.remove_vm(vm)
            try:
                config = self.parse_config(filename, default_file=filename == state.vmconf_path(self.root))
            except DaemonError as exc:
                for line in exc.lines:
                    self.log(line)
                self.log("failed to load config file %s" % filename)
                return [{"type": "fail", "errno": None}]
            self.apply_config(config)
            return [{"type": "ok"}]

    def op_reset(self, request, uid):
        mode = request.get("mode", "all")
        with self.cond:
            if mode in ("all", "vms"):
                victims = [vm for vm in self.vms if vm.running]
                gens = {vm: vm.exit_gen for vm in victims}
                for vm in list(self.vms):
                    self.remove_vm(vm)
                for vm in victims:
                    self.kill(vm, signal.SIGKILL)
                self.cond.wait_for(lambda: all(vm.exit_gen != gen for vm, gen in gens.items()), 10)
                self.ids.clear()
                self.next_id = self.first_id() - 1
                self.batch_due = None
            if mode in ("all", "switches"):
                self.switches = []
            return [{"type": "ok"}]

    # ------------------------------------------------------------------ lifecycle
    def setup(self):
        """Everything that can fail before vmd reports it is up."""
        for sub in (("var", "run"), ("var", "log"), ("lab", "console")):
            os.makedirs(os.path.join(self.root, *sub), exist_ok=True)
        with self.cond:
            config = self.parse_config(state.vmconf_path(self.root), default_file=True)
        sock_path = state.socket_path(self.root)
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        self.server = protocol.bind(sock_path)
        self.server.listen(64)
        with open(state.pid_path(self.root), "w") as handle:
            handle.write("%d\n" % os.getpid())
        self.log("startup")
        threading.Thread(target=self.batch_timer, daemon=True).start()
        with self.cond:
            self.apply_config(config)

    def serve(self):
        while True:
            try:
                client = self.server.accept()[0]
            except OSError:
                return
            threading.Thread(target=self.handle_client, args=(client,), daemon=True).start()

    def shutdown(self):
        with self.cond:
            self.stopping = True
            self.batch_due = None
            victims = [vm for vm in self.vms if vm.running]
            gens = {vm: vm.exit_gen for vm in victims}
            for vm in victims:
                self.kill(vm, signal.SIGKILL)
            self.cond.notify_all()
        for vm in victims:
            try:
                vm.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        with self.cond:
            # (each exit saves its guest's state into its disk: guest_network_down)
            self.cond.wait_for(lambda: all(vm.exit_gen != gen for vm, gen in gens.items()), 10)
        try:
            self.server.close()
        except OSError:
            pass
        for target in (state.socket_path(self.root),):
            try:
                os.unlink(target)
            except OSError:
                pass
        self.log("parent terminating")
        try:
            os.unlink(state.pid_path(self.root))
        except OSError:
            pass


def _images():
    from labsim import images  # written by LAB-IMAGES
    return images


# ---------------------------------------------------------------------- control
def read_pid(root):
    try:
        with open(state.pid_path(root)) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def running_pid(root):
    pid = read_pid(root)
    if pid is not None and state.process_alive(pid):
        return pid
    return None


def start_daemon(root):
    """Double-fork the lab vmd; returns its pid once it listens, raises DaemonError otherwise."""
    pid = running_pid(root)
    if pid is not None:
        raise AlreadyRunning(["vmd: already running (pid %d)" % pid])
    os.makedirs(os.path.join(root, "lab"), exist_ok=True)
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked children
        os.close(read_end)
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            _run_daemon(root, write_end)
        except BaseException:  # pylint: disable=broad-except
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    report = b"".join(chunks).decode(errors="replace").splitlines()
    if report[:1] == ["OK"]:
        return int(report[1])
    raise DaemonError(report[1:] if report[:1] == ["ERR"] else ["vmd: failed to start"])


def _run_daemon(root, ready_fd):  # pragma: no cover - runs in the daemon process
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    logfd = os.open(os.path.join(root, "lab", "vmd.stderr"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(logfd, 2)
    os.close(devnull)
    os.close(logfd)
    os.chdir(root)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    daemon = Daemon(root)
    try:
        daemon.setup()
    except DaemonError as exc:
        for line in exc.lines:
            daemon.log(line)
        os.write(ready_fd, ("ERR\n" + "\n".join(exc.lines) + "\n").encode())
        os.close(ready_fd)
        os._exit(1)
    except Exception as exc:  # pylint: disable=broad-except
        os.write(ready_fd, ("ERR\nvmd: %s\n" % exc).encode())
        os.close(ready_fd)
        os._exit(1)
    os.write(ready_fd, ("OK\n%d\n" % os.getpid()).encode())
    os.close(ready_fd)
    threading.Thread(target=daemon.serve, daemon=True).start()
    while True:
        sig = signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        if sig != signal.SIGHUP:
            break
    daemon.shutdown()
    os._exit(0)


def stop_daemon(root, timeout=15.0):
    """Terminate the daemon and its VMs; True if one was running."""
    pid = running_pid(root)
    if pid is None:
        for stale in (state.pid_path(root), state.socket_path(root)):
            try:
                os.unlink(stale)
            except OSError:
                pass
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not state.process_alive(pid) or (read_pid(root) is None and not os.path.exists(state.socket_path(root))):
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
    return True


def daemon_ping(root):
    """True when the daemon answers on its socket."""
    try:
        with protocol.connect(state.socket_path(root), timeout=5) as conn:
            return conn.request({"op": "info", "uid": os.getuid()}) is not None
    except (OSError, ValueError):
        return False
