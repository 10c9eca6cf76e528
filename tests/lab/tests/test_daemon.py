"""The lab's vmd: guest reboots, staggered start, load/reload/reset, lifecycle, latency (vmctl-facts.md §3, §4, §6)."""

import json
import os
import re
import shutil
import signal
import tempfile
import time

from conftest import HEADER, Lab, destroy_lab
from labsim import protocol


def show(lab):
    return json.loads(lab.lab("show", "--json").out)


def vm_show(lab, name):
    for vm in show(lab)["vms"]:
        if vm["name"] == name:
            return vm
    return None


def test_guest_reboot_restarts_in_place(lab):
    lab.start_vm("web1")
    before = lab.row("web1")
    assert lab.lab("guest", "reboot", "web1").rc == 0
    lab.wait_for(lambda: lab.row("web1") is not None and lab.row("web1").pid != before.pid)
    after = lab.row("web1")
    assert (after.id, after.tty, after.state) == (before.id, before.tty, "running")


def test_guest_reboot_drops_one_time_kernel(lab):
    kernel = lab.disk("bsd", 4096)
    disk = lab.disk("k.img")
    assert lab.vmctl("start", "-b", kernel, "-L", "-d", disk, "k").rc == 0
    assert vm_show(lab, "k")["kernel"] == kernel
    pid = lab.row("k").pid
    assert lab.lab("guest", "reboot", "k").rc == 0
    lab.wait_for(lambda: lab.row("k") is not None and lab.row("k").pid != pid)
    assert vm_show(lab, "k")["kernel"] == lab.path("etc", "firmware", "vmm-bios")


def test_guest_reboot_with_forced_boot_device_terminates(lab):
    disk = lab.disk("f.img")
    assert lab.vmctl("start", "-B", "disk", "-L", "-d", disk, "forced").rc == 0
    assert lab.lab("guest", "reboot", "forced").rc == 0
    lab.wait_for(lambda: lab.row("forced") is None)
    disk2 = lab.disk("g.img")
    lab.write_conf('vm "g" {\n\tdisable\n\tboot device disk\n\tdisk "%s"\n}\n' % disk2)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("start", "g").rc == 0
    assert lab.lab("guest", "reboot", "g").rc == 0
    lab.wait_for(lambda: lab.row("g").state == "stopped")


def test_guest_halt_terminates(lab):
    lab.start_vm("h")
    assert lab.lab("guest", "halt", "h").rc == 0
    lab.wait_for(lambda: lab.row("h") is None)


def test_reboot_loop_hits_rate_limit(lab):
    lab.start_vm("loop")
    for dummy in range(2):
        pid = lab.row("loop").pid
        assert lab.lab("guest", "reboot", "loop").rc == 0
        lab.wait_for(lambda: lab.row("loop") is not None and lab.row("loop").pid != pid)
    assert lab.lab("guest", "reboot", "loop").rc == 0
    lab.wait_for(lambda: lab.row("loop") is None)
    with open(lab.path("var", "log", "vmd.log")) as handle:
        assert "loop: vm 1 restarted too quickly" in handle.read()


def test_wait_returns_on_reboot_in_place(lab):
    """vmd forwards the termination event to waiting clients also when it restarts the VM."""
    lab.start_vm("web1")
    with protocol.connect(lab.path("var", "run", "vmd.sock")) as conn:
        conn.send({"op": "wait", "name": "web1", "uid": 0})
        assert lab.lab("guest", "reboot", "web1").rc == 0
        assert conn.receive() == {"type": "event", "id": 1}
    # the restarted VM process boots again: bounded, with room for a loaded 2-core machine (10 s failed once in CI)
    lab.wait_for(lambda: lab.row("web1") is not None and lab.row("web1").state == "running", timeout=30)


def test_waiting_client_hears_when_the_vm_dies(lab):
    """A waiting client is told as soon as the VM process ends (the delay is measured in benchmarks/, not here)."""
    lab.start_vm("fast")
    pid = int(lab.row("fast").pid)
    with protocol.connect(lab.path("var", "run", "vmd.sock")) as conn:
        conn.send({"op": "wait", "name": "fast", "uid": 0})
        time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        assert conn.receive() == {"type": "event", "id": 1}


def test_reload_starts_enabled_vms_and_keeps_running_ones(lab):
    disks = [lab.disk("r%d.img" % i) for i in range(3)]
    lab.write_conf('vm "r0" {\n\tdisk "%s"\n}\nvm "r1" {\n\tdisable\n\tdisk "%s"\n}\n' % (disks[0], disks[1]))
    assert lab.vmctl("reload") == (0, "", "")
    lab.wait_for(lambda: lab.row("r0").state == "running")
    assert lab.row("r1").state == "stopped"
    pid = lab.row("r0").pid
    lab.write_conf('vm "r0" {\n\tmemory 1G\n\tdisk "%s"\n}\nvm "r2" {\n\tdisk "%s"\n}\n' % (disks[0], disks[2]))
    assert lab.vmctl("reload").rc == 0
    rows = {row.name: row for row in lab.status()}
    assert set(rows) == {"r0", "r2"}, "non-running VMs are dropped before re-parsing"
    assert (rows["r0"].pid, rows["r0"].maxmem) == (pid, "516M"), "running VMs keep their configuration"
    lab.wait_for(lambda: lab.row("r2").state == "running")
    assert lab.vmctl("stop", "-w", "r0").rc == 0
    assert lab.row("r0").state == "stopped"
    assert lab.vmctl("reload").rc == 0
    lab.wait_for(lambda: lab.row("r0").state == "running")
    assert lab.row("r0").maxmem == "1.0G"


def test_reload_parse_error(lab):
    lab.write_conf('vm "x" {\n\tmemory 1024\n}\n')
    assert lab.vmctl("reload") == (1, "", "vmctl: command failed\n")
    with open(lab.path("var", "log", "vmd.log")) as handle:
        log = handle.read()
    assert "memory size must be at least 1MB\n" in log
    assert "vm.conf:2: failed to parse size: 1024\n" in log


def test_load(lab):
    disk = lab.disk("l.img")
    extra = lab.path("extra.conf")
    assert lab.vmctl("load", lab.path("missing.conf")) == (0, "", "")
    with open(extra, "w") as handle:
        handle.write('vm "l1" {\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("load", extra) == (0, "", "")
    lab.wait_for(lambda: lab.row("l1") is not None and lab.row("l1").state == "running")
    assert lab.vmctl("load", extra) == (0, "", ""), "known VMs are skipped"
    with open(extra, "w") as handle:
        handle.write("vm {\n")
    assert lab.vmctl("load", extra) == (1, "", "vmctl: command failed\n")


def test_staggered_start(lab_factory):
    lab = lab_factory("--cpus", "1", start=False)
    disks = [lab.disk("s%d.img" % i) for i in range(3)]
    lab.write_conf("".join('vm "s%d" {\n\tdisk "%s"\n}\n' % (i, d) for i, d in enumerate(disks)))
    assert lab.lab("vmd", "start").rc == 0
    states = [row.state for row in lab.status()]
    assert states == ["running", "waiting", "waiting"], "parallelism = online CPUs, 30 s delay"
    rows = lab.status()
    assert (rows[1].pid, rows[1].tty, rows[1].curmem) == ("-", "-", "-")
    assert lab.vmctl("stop", "s1") == (1, "", "stopping vm s1: failed: Invalid argument\n")
    assert lab.vmctl("start", "s2").rc == 0, "a waiting VM can be started by hand"
    # config_setvm() never clears VM_STATE_WAITING (only start_vm_batch does): it runs, shown `waiting`
    rows = lab.status()
    assert [(row.name, row.state) for row in rows] == [("s0", "running"), ("s2", "waiting"), ("s1", "waiting")]
    assert rows[1].pid.isdigit() and rows[1].tty.startswith("ttyp") and rows[1].curmem != "-"
    assert os.path.exists("/proc/%s" % rows[1].pid), "the waiting VM's PID is its running process"
    lab.write_conf('staggered start parallel 2 delay 2\n' +
                   "".join('vm "s%d" {\n\tdisk "%s"\n}\n' % (i, d) for i, d in enumerate(disks)))
    assert lab.vmctl("reset").rc == 0
    began = time.monotonic()
    assert lab.vmctl("reload").rc == 0
    assert [row.state for row in lab.status()] == ["running", "running", "waiting"]
    lab.wait_for(lambda: [row.state for row in lab.status()] == ["running"] * 3, timeout=30)
    assert time.monotonic() - began >= 1.9, "the next batch comes `delay` seconds later"


def test_reset_modes(lab):
    lab.start_vm("a")
    disk = lab.disk("c.img")
    lab.write_conf('switch "sw0" {\n\tinterface bridge0\n}\nvm "c" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert show(lab)["switches"] == ["sw0"]
    assert lab.vmctl("reset", "SWITCHES") == (0, "", "")
    assert show(lab)["switches"] == []
    assert len(lab.status()) == 2
    pid = int(lab.row("a").pid)
    assert lab.vmctl("reset", "vms") == (0, "", "")
    assert lab.vmctl("status") == (1, HEADER, "")
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"
    assert lab.vmctl("reset") == (0, "", "")


def test_vmd_start_runs_enabled_config_vms(lab_factory):
    lab = lab_factory(start=False)
    disk = lab.disk("boot.img")
    lab.write_conf('vm "boot1" {\n\tdisk "%s"\n\tlocal interface\n}\n' % disk)
    assert lab.lab("vmd", "start").rc == 0
    assert lab.row("boot1").state == "running"


def test_vmd_start_with_broken_config_fails(lab_factory):
    lab = lab_factory(start=False)
    lab.write_conf('vm "x" {\n\tdisk "/nonexistent/disk.img"\n}\n')
    result = lab.lab("vmd", "start")
    assert result.rc == 1
    assert "failed to parse disks: /nonexistent/disk.img" in result.err
    assert lab.lab("vmd", "status").rc == 1


def test_vmd_stop_terminates_vms_and_releases_locks(lab_factory):
    import fcntl
    lab = lab_factory()
    lab.start_vm("v")
    pid = int(lab.row("v").pid)
    assert lab.lab("vmd", "stop").rc == 0
    assert not os.path.exists(lab.path("var", "run", "vmd.sock"))
    with open(lab.path("v.img"), "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"
    assert lab.lab("vmd", "start").rc == 0
    assert lab.vmctl("status") == (1, HEADER, ""), "a restarted vmd has forgotten vmctl VMs"


def test_vmd_down_fault(lab):
    lab.start_vm("v")
    assert lab.lab("fault", "set", "vmd-down").rc == 0
    assert lab.vmctl("status") == (1, "", "vmctl: connect: /var/run/vmd.sock: No such file or directory\n")
    assert lab.lab("fault", "clear", "vmd-down").rc == 0
    assert lab.vmctl("status") == (1, HEADER, "")


def test_long_lab_root_uses_relative_socket_path():
    base = tempfile.mkdtemp(prefix="lab", dir="/tmp")
    root = os.path.join(base, *(["d" * 30] * 4))
    os.makedirs(root)
    lab = Lab(root)
    try:
        assert len(lab.path("var", "run", "vmd.sock")) > 108
        assert lab.lab("init").rc == 0
        assert lab.lab("vmd", "start").rc == 0
        lab.start_vm("deep")
        assert lab.vmctl("stop", "-w", "deep") == (0, "", "stopping vm deep: terminated vm 1\n")
    finally:
        destroy_lab(lab)
        shutil.rmtree(base, ignore_errors=True)


def test_netboot_ramdisk_runs_the_installer_and_plain_ramdisk_waits_at_prompt(lab):
    sets = lab.lab("mirror", lab.path("var", "www", "htdocs", "pub"), "7.8", "amd64")
    assert sets.rc == 0, sets
    ramdisk = os.path.join(sets.out.strip(), "bsd.rd")
    disk = lab.disk("inst.img", 1024 ** 3)
    # no response file anywhere: the installer fails and returns to the prompt; the VM keeps running
    assert lab.vmctl("start", "-b", ramdisk, "-B", "net", "-L", "-d", disk, "inst").rc == 0
    lab.wait_for(lambda: "(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? " in lab.console("inst"), timeout=30)
    assert lab.row("inst").state == "running"
    assert lab.vmctl("stop", "-f", "-w", "inst").rc == 0
    disk2 = lab.disk("plain.img", 1024 ** 3)
    assert lab.vmctl("start", "-b", ramdisk, "-L", "-d", disk2, "plain").rc == 0
    lab.wait_for(lambda: lab.console("plain").endswith("(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? "))
    assert "Starting non-interactive mode" not in lab.console("plain")


INSTALL_CONF = """\
System hostname = auto1
Password for root account = $2b$10$Zq7fU2dJ0hW3kL9pR5tY1OeXmB8cV4nA6sD2fG0hJ7kL3pQ9rT5uW
Public ssh key for root account = ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdCBhIHJlYWwga2V5IGF0IGFsbA== admin@lab
Start sshd(8) by default = yes
Allow root ssh login = prohibit-password
Setup a user = no
What timezone are you in = UTC
Which disk is the root disk = sd0
Use (W)hole disk = whole
Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout = a
Location of sets = http
HTTP proxy URL = none
HTTP Server = http://100.64.1.2
Server directory = pub/OpenBSD/7.8/amd64
Set name(s) = -game* -x* +site*
Continue without verification = yes
"""


def test_autoinstall_end_to_end(lab):
    """-b bsd.rd -B net with a local first NIC: the installer runs, the guest reboots, vmd terminates the VM."""
    htdocs = lab.path("var", "www", "htdocs")
    setdir = lab.lab("mirror", os.path.join(htdocs, "pub", "OpenBSD"), "7.8", "amd64").out.strip()
    with open(os.path.join(htdocs, "install.conf"), "w") as handle:
        handle.write(INSTALL_CONF)
    # The host as the roles make it: httpd on 127.0.0.1, pf redirecting the VMs' port 80 there.
    with open(lab.path("etc", "httpd.conf"), "w") as handle:
        handle.write('chroot "%s"\nserver "install" {\n\tlisten on 127.0.0.1 port 80\n\troot "/htdocs"\n}\n'
                     % lab.path("var", "www"))
    with open(lab.path("etc", "pf.conf"), "w") as handle:
        handle.write("pass in quick on tap inet proto tcp to port 80 rdr-to 127.0.0.1 port 80\n")
    assert lab.run("rcctl", "-f", "start", "httpd").rc == 0
    assert lab.run("pfctl", "-f", lab.path("etc", "pf.conf")).rc == 0  # pf is enabled on a booted host
    disk = lab.path("auto1.qcow2")
    assert lab.vmctl("create", "-s", "2G", disk).rc == 0
    assert lab.vmctl("start", "-b", os.path.join(setdir, "bsd.rd"), "-B", "net", "-L", "-d", disk, "auto1").rc == 0
    waited = lab.vmctl("wait", "auto1", timeout=120)
    assert waited == (0, "", "waiting for vm auto1: terminated vm 1\n")
    assert lab.row("auto1") is None, "a vmctl VM started with a boot device is removed when the guest reboots"
    assert "CONGRATULATIONS!" in lab.console("auto1")
    assert lab.vmctl("start", "-L", "-d", disk, "auto1").rc == 0
    lab.wait_for(lambda: lab.console("auto1").endswith("login: "), timeout=30)


def test_config_instances_inherit_from_their_parent(lab):
    parent_disk = lab.disk("tmpl.img")
    child_disk = lab.disk("child.img")
    lab.write_conf('vm "tmpl" {\n\tdisable\n\tmemory 1G\n\tdisk "%s"\n\tlocal interface\n}\n'
                   'vm "tmpl" instance "child" {\n\tdisable\n\tdisk "%s"\n}\n' % (parent_disk, child_disk))
    assert lab.vmctl("reload") == (0, "", "")
    assert [(row.name, row.maxmem, row.state) for row in lab.status()] == [
        ("tmpl", "1.0G", "stopped"), ("child", "1.0G", "stopped")]
    assert lab.vmctl("start", "child").rc == 0
    assert vm_show(lab, "child")["taps"] == ["tap0"]
    lab.write_conf('vm "nosuch" instance "orphan" {\n\tdisk "%s"\n}\n' % child_disk)
    assert lab.vmctl("load", lab.path("etc", "vm.conf")) == (1, "", "vmctl: command failed\n")
    with open(lab.path("var", "log", "vmd.log")) as handle:
        assert re.search(r'vm\.conf:\d+: vm "orphan" failed: Unknown error: 1007\n', handle.read())


def test_reload_fails_with_a_running_instance_after_dropping_stopped_vms(lab):
    """vmd.c vm_register → vm_instance: EPROCLIM for the running instance (before the EALREADY skip)."""
    disks = {name: lab.disk(name + ".img") for name in ("tmpl", "child", "other", "later")}
    conf = ('vm "other" {\n\tdisable\n\tdisk "%s"\n}\n'
            'vm "tmpl" {\n\tdisable\n\tdisk "%s"\n}\n'
            'vm "tmpl" instance "child" {\n\tdisable\n\tdisk "%s"\n}\n'
            'vm "later" {\n\tdisk "%s"\n}\n') % (disks["other"], disks["tmpl"], disks["child"], disks["later"])
    lab.write_conf(conf.replace('vm "later" {\n', 'vm "later" {\n\tdisable\n'))
    assert lab.vmctl("reload") == (0, "", "")
    assert lab.vmctl("start", "child").rc == 0
    lab.write_conf(conf)
    assert lab.run("vmd", "-n").rc == 0, "vmd -n never registers VMs: the check passes"
    assert lab.vmctl("reload") == (1, "", "vmctl: command failed\n")
    with open(lab.path("var", "log", "vmd.log")) as handle:
        assert 'vm "child" failed: Too many processes' in handle.read()
    # stopped VMs were dropped and parsed again (parse.y recovers after the error), but vmd_reload returns
    # before start_vm_batch: the newly enabled VM stays queued (`waiting`, no PID) and is never started
    rows = {row.name: row for row in lab.status()}
    assert [(name, row.state) for name, row in rows.items()] == [
        ("child", "running"), ("other", "stopped"), ("tmpl", "stopped"), ("later", "waiting")]
    assert rows["later"].pid == "-"
    assert lab.vmctl("stop", "-w", "child").rc == 0
    assert lab.vmctl("reload") == (0, "", ""), "with the instance stopped the same vm.conf loads"
    lab.wait_for(lambda: lab.row("later").state == "running")


def test_instance_with_its_own_lladdr_fails_registration(lab):
    """vm_instance's lladdr check reads inverted: a child MAC that differs from the parent's is EBUSY."""
    disks = [lab.disk("p.img"), lab.disk("c.img")]
    lab.write_conf('vm "p" {\n\tdisable\n\tdisk "%s"\n\tinterface { lladdr fe:e1:ba:d0:00:01 }\n}\n'
                   'vm "p" instance "c" {\n\tdisable\n\tdisk "%s"\n\tinterface { lladdr fe:e1:ba:d0:00:02 }\n}\n'
                   % tuple(disks))
    assert lab.run("vmd", "-n").rc == 0
    assert lab.vmctl("reload") == (1, "", "vmctl: command failed\n")
    with open(lab.path("var", "log", "vmd.log")) as handle:
        assert 'vm "c" failed: Device busy' in handle.read()


def test_waiting_vm_started_by_hand_stays_waiting_until_its_batch(lab_factory):
    lab = lab_factory("--cpus", "1", start=False)
    disks = [lab.disk("w%d.img" % i) for i in range(3)]
    lab.write_conf("staggered start parallel 1 delay 1\n" +
                   "".join('vm "w%d" {\n\tdisk "%s"\n}\n' % (i, d) for i, d in enumerate(disks)))
    assert lab.lab("vmd", "start").rc == 0
    assert lab.vmctl("start", "w2").rc == 0
    pid = lab.row("w2").pid
    assert (lab.row("w2").state, pid.isdigit()) == ("waiting", True)
    # the batches come: w1 starts, then w2's turn only clears its waiting flag (config_setvm: EALREADY)
    lab.wait_for(lambda: [row.state for row in lab.status()] == ["running"] * 3, timeout=30)
    assert lab.row("w2").pid == pid, "the batch did not start it a second time"
