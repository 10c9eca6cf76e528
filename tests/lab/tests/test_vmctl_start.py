"""vmctl start: options, client-side checks, vmd's answers, disk locks, taps (vmctl-facts.md §3)."""

import fcntl
import json
import os

import pytest

USAGE = ("usage:\tvmctl [-v] start [-cL] [-B device] [-b path] [-d disk] [-i count]\n"
         "\t\t[-m size] [-n switch] [-r path] [-t name] id | name\n")


def started(vm_id, tty):
    return "vmctl: started vm %d successfully, tty /dev/%s\n" % (vm_id, tty)


def test_start_success_message_and_defaults(lab):
    disk = lab.disk("web1.img")
    assert lab.vmctl("start", "-L", "-d", disk, "web1") == (0, "", started(1, "ttyp0"))
    row = lab.row("web1")
    # MAXMEM of a running VM is vmm(4)'s count of vmd's memory ranges: 512M + 4M (test_vmctl_status.py)
    assert (row.id, row.maxmem, row.tty, row.owner, row.state) == ("1", "516M", "ttyp0", "root", "running")


def test_warnings_and_missing_devices(lab):
    disk = lab.disk("w.img")
    iso = lab.disk("install.iso")
    assert lab.vmctl("start", "-m", "1G", "w") == (
        1, "", "vmctl: starting without disks\nvmctl: no kernel or disk/cdrom specified\n")
    result = lab.vmctl("start", "-d", disk, "w")
    assert result == (0, "", "vmctl: starting without network interfaces\n" + started(1, "ttyp0"))
    result = lab.vmctl("start", "-r", iso, "-L", "w2")
    assert result == (0, "", "vmctl: starting without disks\n" + started(2, "ttyp1"))


def test_kernel_boot_needs_no_disk_and_no_bios(lab):
    kernel = lab.disk("bsd", 4096)
    os.unlink(lab.path("etc", "firmware", "vmm-bios"))
    assert lab.vmctl("start", "-b", kernel, "k") == (0, "", started(1, "ttyp0"))


@pytest.mark.parametrize("argv,err", [
    (["-m", "1024"], "vmctl: memory size must be at least 1MB\n"),
    (["-m", "129G"], "vmctl: memory size too large (limit is 128G)\n"),
    (["-m", "abc"], "vmctl: invalid memory size: abc: Invalid argument\n"),
    (["-m", "1GB"], "vmctl: invalid memory size: 1GB: Invalid argument\n"),
    (["-m", "99999999999999999999999"], "vmctl: invalid memory size: 99999999999999999999999: Result too large\n"),
    (["-m", "1G", "-m", "2G"], "vmctl: memory specified multiple times\n"),
    (["-i", "0"], "vmctl: count is too small: 0\nvmctl: invalid interface count: 0\n"),
    (["-i", "x"], "vmctl: count is invalid: x\nvmctl: invalid interface count: x\n"),
    (["-i", "99999999999"], "vmctl: count is too large: 99999999999\nvmctl: invalid interface count: 99999999999\n"),
    (["-i", "1", "-i", "2"], "vmctl: interfaces specified multiple times\n"),
    (["-b", "/nonexistent/bsd"], "vmctl: invalid boot image path: No such file or directory\n"),
    (["-B", "floppy"], "vmctl: unknown boot device floppy\n"),
    (["-B", "net", "-B", "disk"], "vmctl: boot device specified multiple times\n"),
    (["-r", "/nonexistent.iso"], "vmctl: invalid iso image path: /nonexistent.iso: No such file or directory\n"),
    (["-d", "/nonexistent.img"], "vmctl: invalid disk path: /nonexistent.img: No such file or directory\n"),
    (["-d", "qcow2:/nonexistent.img"], "vmctl: invalid disk path: /nonexistent.img: No such file or directory\n"),
    (["-t", "p" * 64], "vmctl: instance vm name too long\nvmctl: invalid name: %s\n" % ("p" * 64)),
])
def test_client_side_errors(lab, argv, err):
    assert lab.vmctl("start", *argv, "vm1") == (1, "", err)


def test_client_checks_need_no_vmd_for_option_errors(lab):
    assert lab.lab("vmd", "stop").rc == 0
    assert lab.vmctl("start", "-m", "abc", "x").err == "vmctl: invalid memory size: abc: Invalid argument\n"
    assert lab.vmctl("start", "-d", lab.disk("a.img"), "x").err == (
        "vmctl: connect: /var/run/vmd.sock: No such file or directory\n")


def test_memory_rounding_warning(lab):
    disk = lab.disk("r.img")
    result = lab.vmctl("start", "-m", "1500K", "-L", "-d", disk, "r")
    assert result == (0, "", "vmctl: memory size rounded to 1.0M\n" + started(1, "ttyp0"))
    # vmd keeps the rounded size (vmm(4) would refuse so small a VM: not modelled, see daemon.memory_ranges)
    assert json.loads(lab.lab("show", "--json").out)["vms"][0]["memory"] == 1024 * 1024


def test_boot_image_twice_and_not_regular(lab):
    kernel = lab.disk("bsd", 4096)
    assert lab.vmctl("start", "-b", kernel, "-b", kernel, "x") == (1, "", "vmctl: boot image specified multiple times\n")
    assert lab.vmctl("start", "-b", lab.path("dev"), "x") == (1, "", "vmctl: kernel must be a regular file\n")
    iso = lab.disk("i.iso")
    assert lab.vmctl("start", "-r", iso, "-r", iso, "x") == (1, "", "vmctl: iso image specified multiple times\n")


def test_too_many_disks_and_interfaces(lab):
    disks = [lab.disk("d%d.img" % i) for i in range(5)]
    argv = [arg for disk in disks for arg in ("-d", disk)]
    assert lab.vmctl("start", *argv, "x") == (1, "", "vmctl: too many disks\n")
    assert lab.vmctl("start", "-d", disks[0], "-i", "5", "x") == (1, "", "vmctl: too many network interfaces\n")
    assert lab.vmctl("start", "-d", disks[0], "-L", "-L", "-L", "-n", "sw", "-L", "x") == (
        1, "", "vmctl: too many network interfaces\n")
    assert lab.vmctl("start", "-d", disks[0], "-L", "-L", "-i", "4", "x") == (0, "", started(1, "ttyp0"))
    shown = json.loads(lab.lab("show", "--json").out)
    assert shown["vms"][0]["taps"] == ["tap0", "tap1", "tap2", "tap3"]
    assert [iface["local"] for iface in shown["vms"][0]["interfaces"]] == [True, True, False, False]


@pytest.mark.parametrize("name", [".dot", "_under", "sp ace", "sl/ash", "\u00e9t\u00e9"])
def test_invalid_vm_names(lab, name):
    disk = lab.disk("n.img")
    assert lab.vmctl("start", "-L", "-d", disk, name) == (1, "", "vmctl: invalid VM name\n")


def test_dash_name_is_an_invalid_id(lab):
    assert lab.vmctl("start", "--", "-x") == (1, "", "vmctl: invalid id: -x\n")


def test_bios_missing(lab):
    os.unlink(lab.path("etc", "firmware", "vmm-bios"))
    disk = lab.disk("b.img")
    assert lab.vmctl("start", "-L", "-d", disk, "b") == (1, "", "vmctl: vmm bios firmware file not found.\n")
    assert lab.row("b") is None, "a failed vmctl VM is removed"


def test_disk_lock_between_vms(lab):
    disk = lab.disk("shared.img")
    assert lab.vmctl("start", "-L", "-d", disk, "one").rc == 0
    with open(disk, "rb") as handle:
        with pytest.raises(BlockingIOError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert lab.vmctl("start", "-L", "-d", disk, "two") == (1, "", "vmctl: could not open disk image(s)\n")
    assert lab.row("two") is None
    lab.write_conf('vm "three" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("start", "three") == (1, "", "vmctl: could not open disk image(s)\n")
    assert lab.row("three").state == "stopped", "a vm.conf VM that fails to start stays registered"
    assert lab.vmctl("stop", "-w", "one").rc == 0
    with open(disk, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)
    assert lab.vmctl("start", "three").rc == 0


def test_qcow2_backing_file_missing(lab):
    base = lab.path("base.qcow2")
    overlay = lab.path("overlay.qcow2")
    assert lab.vmctl("create", "-s", "64M", base).rc == 0
    assert lab.vmctl("create", "-b", base, overlay).rc == 0
    assert lab.vmctl("start", "-L", "-d", overlay, "ov").rc == 0
    assert lab.vmctl("stop", "-w", "ov").rc == 0
    os.unlink(base)
    assert lab.vmctl("start", "-L", "-d", overlay, "ov") == (
        1, "", "vmctl: start vm command failed: Unknown error: -1\n")
    raw = lab.disk("plain.img")
    assert lab.vmctl("start", "-L", "-d", "qcow2:" + raw, "forced") == (
        1, "", "vmctl: start vm command failed: Unknown error: -1\n")


def test_disk_format_detection(lab):
    image = lab.path("magic.img")
    assert lab.vmctl("create", "-s", "64M", "qcow2:" + image).rc == 0
    assert lab.vmctl("start", "-L", "-d", image, "m").rc == 0
    shown = json.loads(lab.lab("show", "--json").out)
    assert shown["vms"][0]["disks"] == [[image, "qcow2"]]


def test_taps(lab):
    for entry in os.listdir(lab.path("dev")):
        os.unlink(lab.path("dev", entry))
    disk = lab.disk("t.img")
    assert lab.vmctl("start", "-L", "-d", disk, "t") == (
        1, "", "vmctl: start vm command failed: No such file or directory\n")
    assert lab.vmctl("start", "-d", disk, "noif").rc == 0, "no interface, no tap needed"
    assert lab.vmctl("stop", "-w", "noif").rc == 0
    # vmm.c opentap stops at the first /dev/tapN that does not exist: tap3 without tap0 is never used
    open(lab.path("dev", "tap3"), "w").close()
    assert lab.vmctl("start", "-L", "-d", disk, "t") == (
        1, "", "vmctl: start vm command failed: No such file or directory\n")
    open(lab.path("dev", "tap0"), "w").close()
    assert lab.vmctl("start", "-L", "-d", disk, "t").rc == 0
    assert json.loads(lab.lab("show", "--json").out)["taps"] == {"tap0": "t", "tap3": None}
    # the next one finds tap0 busy, then no tap1: ENOENT, not "Device busy"
    other = lab.disk("u.img")
    assert lab.vmctl("start", "-L", "-d", other, "u") == (
        1, "", "vmctl: start vm command failed: No such file or directory\n")


def test_running_out_of_taps_half_way_through_a_fleet(lab_factory):
    """2 tap nodes, 3 VMs with one interface each: the third start fails with ENOENT (config_setvm → opentap)."""
    lab = lab_factory("--taps", "2")
    for name in ("f0", "f1"):
        lab.start_vm(name)
    disk = lab.disk("f2.img")
    assert lab.vmctl("start", "-L", "-d", disk, "f2") == (
        1, "", "vmctl: start vm command failed: No such file or directory\n")
    assert lab.vmctl("stop", "-w", "f0").rc == 0
    assert lab.vmctl("start", "-L", "-d", disk, "f2").rc == 0, "a freed tap is found again"


def test_missing_boot_image_gives_the_same_error_as_no_tap(lab):
    """config_setvm: open(vm_kernel_path) fails with ENOENT, the text a start without a free tap prints too."""
    disk = lab.disk("k.img")
    lab.write_conf('vm "k" {\n\tdisable\n\tboot "%s"\n\tdisk "%s"\n}\n' % (lab.disk("bsd.rd", 4096), disk))
    assert lab.vmctl("reload").rc == 0
    os.unlink(lab.path("bsd.rd"))
    assert lab.vmctl("start", "k") == (1, "", "vmctl: start vm command failed: No such file or directory\n")


def test_no_tap_fault(lab):
    disk = lab.disk("f.img")
    assert lab.lab("fault", "set", "no-tap").rc == 0
    assert lab.vmctl("start", "-L", "-d", disk, "f") == (
        1, "", "vmctl: start vm command failed: No such file or directory\n")


def test_iso_missing_at_start(lab):
    disk = lab.disk("c.img")
    lab.write_conf('vm "c" {\n\tdisable\n\tdisk "%s"\n\tcdrom "%s"\n}\n' % (disk, lab.path("gone.iso")))
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("start", "c") == (1, "", "vmctl: could not find specified iso image\n")


def test_unknown_vm_without_options(lab):
    assert lab.vmctl("start", "ghost") == (1, "", "vmctl: could not open disk image(s)\n")
    assert lab.vmctl("start", "5") == (1, "", "vmctl: could not open disk image(s)\n")


def test_existing_config_vm(lab):
    disk = lab.disk("db.img")
    kernel = lab.disk("bsd.test", 4096)
    lab.write_conf('vm "db" {\n\tdisable\n\tmemory 1G\n\tdisk "%s"\n\tlocal interface\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("start", "-m", "2G", "-L", "-d", disk, "db") == (
        1, "", "vmctl: start vm command failed: Operation already in progress\n")
    assert lab.vmctl("start", "-L", "-d", disk, "db").err == "vmctl: start vm command failed: Operation already in progress\n"
    # without a disk vmctl itself refuses first
    assert lab.vmctl("start", "-m", "2G", "db").err == (
        "vmctl: starting without disks\nvmctl: no kernel or disk/cdrom specified\n")
    assert lab.vmctl("start", "1") == (0, "", started(1, "ttyp0")), "start by ID"
    assert lab.vmctl("start", "db") == (1, "", "vmctl: start vm command failed: Operation already in progress\n")
    assert lab.vmctl("stop", "-w", "db").rc == 0
    # -b is taken over for the next boot only; -B is ignored for an existing VM
    assert lab.vmctl("start", "-b", kernel, "-B", "net", "db") == (0, "", started(1, "ttyp0"))
    shown = json.loads(lab.lab("show", "--json").out)["vms"][0]
    assert (shown["kernel"], shown["boot_device"], shown["memory"]) == (
        kernel, None, 1024 ** 3)
    assert lab.vmctl("stop", "-w", "db").rc == 0
    assert lab.vmctl("start", "db").rc == 0
    assert json.loads(lab.lab("show", "--json").out)["vms"][0]["kernel"] == lab.path("etc", "firmware", "vmm-bios")


def test_instance_of_template(lab):
    disk = lab.disk("tmpl.img")
    disk2 = lab.disk("inst.img")
    lab.write_conf('vm "tmpl" {\n\tdisable\n\tmemory 1G\n\tdisk "%s"\n\tlocal interface\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("start", "-t", "nosuch", "-d", disk2, "inst") == (1, "", "vmctl: invalid template\n")
    assert lab.vmctl("start", "-t", "tmpl", "-d", disk2, "inst") == (0, "", started(2, "ttyp0"))
    assert lab.row("inst").maxmem == "1.0G"
    assert lab.vmctl("stop", "-w", "inst").rc == 0
    assert lab.row("inst") is None


def test_restart_rate_limit(lab):
    disk = lab.disk("rl.img")
    lab.write_conf('vm "rl" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    for dummy in range(3):
        assert lab.vmctl("start", "rl").rc == 0
        assert lab.vmctl("stop", "-f", "-w", "rl").rc == 0
    assert lab.vmctl("start", "rl") == (1, "", "vmctl: start vm command failed: Operation not permitted\n")


def test_non_root_may_start_own_config_vm_only(lab):
    import pwd
    nobody = pwd.getpwnam("nobody")
    disk = lab.disk("own.img")
    disk2 = lab.disk("other.img")
    lab.write_conf('socket owner :nogroup\n'
                   'vm "own" {\n\tdisable\n\tdisk "%s"\n\towner nobody\n}\n'
                   'vm "other" {\n\tdisable\n\tdisk "%s"\n}\n' % (disk, disk2))
    assert lab.vmctl("reload").rc == 0
    env = {"LAB_USER": "nobody"}
    assert lab.vmctl("start", "other", env=env) == (1, "", "vmctl: start vm command failed: Operation not permitted\n")
    assert lab.vmctl("start", "own", env=env).rc == 0
    assert lab.row("own").owner == nobody.pw_name
    # not running is reported before the permission check
    assert lab.vmctl("stop", "other", env=env) == (1, "", "stopping vm other: failed: Invalid argument\n")
    assert lab.vmctl("start", "other").rc == 0
    assert lab.vmctl("stop", "other", env=env) == (1, "", "stopping vm other: failed: Operation not permitted\n")
    assert lab.vmctl("pause", "other", env=env) == (1, "", "vmctl: vmop_result_read: Bad message\n")
    assert lab.vmctl("stop", "-w", "own", env=env) == (0, "", "stopping vm own: terminated vm 1\n")
