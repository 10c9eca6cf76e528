"""vmctl status/show: table format, -r, the found-counter quirk, row order, sticky IDs (vmctl-facts.md §2)."""

import os
import re

from conftest import HEADER

ROW_RUNNING = re.compile(r"^ {0,4}\d+ {1,5}\d+ {5}1 +\S+ +\S+ +ttyp\w +\S+ +\w+ \S+$")


def test_header_only_and_exit_1_when_vmd_knows_no_vm(lab):
    assert lab.vmctl("status") == (1, HEADER, "")
    assert lab.vmctl("show") == (1, HEADER, "")
    assert lab.vmctl("status", "web1") == (1, HEADER, "")
    assert lab.vmctl("status", "-r") == (1, HEADER, "")


def test_running_row_format(lab):
    lab.start_vm("web1", "-m", "1G")
    result = lab.vmctl("status")
    assert result.rc == 0 and result.err == ""
    line = result.out.splitlines()[1]
    pid = lab.row("web1").pid
    curmem = lab.row("web1").curmem
    assert line == "%5d %5s %5d %7s %7s %7s %12s %8s %s" % (1, pid, 1, "1.0G", curmem, "ttyp0", "root", "running", "web1")
    assert os.path.exists("/proc/%s" % pid), "PID is the VM process"


def test_stopped_config_vm_row(lab):
    disk = lab.disk("db1.img")
    lab.write_conf('vm "db1" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload") == (0, "", "")
    result = lab.vmctl("status")
    assert result == (0, HEADER + "    1     -     1    512M       -       -         root  stopped db1\n", "")


def test_unknown_name_with_other_vms_prints_header_and_exits_0(lab):
    lab.start_vm("web1")
    assert lab.vmctl("status", "nosuch") == (0, HEADER, "")
    assert lab.vmctl("status", "99") == (0, HEADER, "")


def test_running_only_flag_and_counter(lab):
    disk = lab.disk("db1.img")
    lab.write_conf('vm "db1" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    # only a stopped VM: -r filters it and counts nothing -> exit 1
    assert lab.vmctl("status", "-r") == (1, HEADER, "")
    assert lab.vmctl("status", "-r", "db1") == (1, HEADER, "")
    lab.start_vm("web1")
    result = lab.vmctl("status", "-r")
    assert result.rc == 0 and "web1" in result.out and "db1" not in result.out
    # show accepts -r as well
    assert lab.vmctl("show", "-r").out == result.out


def test_running_first_then_config_order(lab):
    disks = [lab.disk("c%d.img" % i) for i in range(3)]
    lab.write_conf("".join('vm "c%d" {\n\tdisable\n\tdisk "%s"\n}\n' % (i, d) for i, d in enumerate(disks)))
    assert lab.vmctl("reload").rc == 0
    assert [row.name for row in lab.status()] == ["c0", "c1", "c2"]
    assert lab.vmctl("start", "c2").rc == 0
    lab.start_vm("adhoc")
    assert lab.vmctl("start", "c1").rc == 0
    rows = lab.status()
    assert [(row.name, row.state) for row in rows] == [
        ("c2", "running"), ("adhoc", "running"), ("c1", "running"), ("c0", "stopped")]
    assert [row.id for row in rows] == ["3", "4", "2", "1"]


def test_running_maxmem_is_the_kernels_count_of_vmds_memory_ranges(lab):
    """MAXMEM of a running VM: vmm(4)'s vm_memory_size (vmd vmm.c get_info_vm → VMM_IOC_INFO), the sum of
    the non-MMIO ranges x86_vm.c create_memory_map registers: the RAM, 384K below 1M reserved for ROMs and
    a 4M copy of the BIOS below 4G: configured + 4M, whether or not the RAM is split around the MMIO hole
    (3.75G and up); fmt_scaled hides the 4M from 1G on, not below."""
    cases = {"64M": "68.0M", "100M": "104M", "512M": "516M", "1000M": "1004M", "1020M": "1.0G", "1023M": "1.0G",
             "1G": "1.0G", "1536M": "1.5G", "2G": "2.0G", "3G": "3.0G", "3840M": "3.8G", "4G": "4.0G",
             "8G": "8.0G", "16G": "16.0G"}
    for index, (option, shown) in enumerate(cases.items()):
        name = "m%d" % index
        lab.start_vm(name, "-m", option)
        assert lab.row(name).maxmem == shown, option
        assert lab.vmctl("stop", "-w", name).rc == 0


def test_stopped_vm_shows_the_configured_memory(lab):
    disk = lab.disk("db1.img")
    lab.write_conf('vm "db1" {\n\tdisable\n\tmemory 100M\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.row("db1").maxmem == "100M"
    assert lab.vmctl("start", "db1").rc == 0
    assert lab.row("db1").maxmem == "104M"
    assert lab.vmctl("stop", "-w", "db1").rc == 0
    assert lab.row("db1").maxmem == "100M"


def test_memory_ranges_follow_create_memory_map():
    from labsim import daemon
    mib = 1024 * 1024
    assert daemon.memory_ranges(512 * mib) == [
        (0, 640 * 1024, "ram"), (640 * 1024, 384 * 1024, "reserved"), (mib, 511 * mib, "ram"),
        (0xF0000000, 0xFFC00000 - 0xF0000000, "mmio"), (0xFFC00000, 4 * mib, "reserved")]
    six = daemon.memory_ranges(6 * 1024 * mib)
    assert six[2] == (mib, 0xF0000000 - mib, "ram")
    assert six[-1] == (4 * 1024 * mib, 6 * 1024 * mib - 0xF0000000, "ram"), "the rest above 4G"
    for size in (64 * mib, 3 * 1024 * mib, 6 * 1024 * mib, 64 * 1024 * mib):
        assert daemon.vmm_memory_size(size) == size + 4 * mib


def test_owner_with_group(lab):
    import grp
    group = grp.getgrgid(0).gr_name
    disk = lab.disk("g.img")
    lab.write_conf('vm "g" {\n\tdisable\n\tdisk "%s"\n\towner root:%s\n}\n' % (disk, group))
    assert lab.vmctl("reload").rc == 0
    assert lab.row("g").owner == ("root:" + group)[:15]


def test_vmctl_vm_vanishes_when_stopped_config_vm_stays(lab):
    disk = lab.disk("db1.img")
    lab.write_conf('vm "db1" {\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    lab.wait_for(lambda: lab.row("db1").state == "running")
    lab.start_vm("web1")
    assert lab.vmctl("stop", "-w", "web1").rc == 0
    assert lab.vmctl("stop", "-w", "db1").rc == 0
    rows = lab.status()
    assert [(row.name, row.state, row.pid) for row in rows] == [("db1", "stopped", "-")]


def test_sticky_ids_per_name(lab):
    lab.start_vm("a")
    lab.start_vm("b")
    assert lab.row("b").id == "2"
    assert lab.vmctl("stop", "-w", "a").rc == 0
    assert lab.row("a") is None
    lab.start_vm("c")
    assert lab.row("c").id == "3"
    lab.start_vm("a")
    assert lab.row("a").id == "1", "a restarted VM keeps its ID"
    assert lab.vmctl("start", "-d", lab.path("a.img"), "-m", "1G", "a").rc == 1


def test_reset_forgets_ids_reload_keeps_them(lab):
    disk = lab.disk("x.img")
    lab.start_vm("a")
    lab.start_vm("b")
    lab.write_conf('vm "x" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.row("x").id == "3"
    assert lab.vmctl("reload").rc == 0
    assert lab.row("x").id == "3", "reload keeps the name->id table"
    assert lab.vmctl("reset", "vms").rc == 0
    assert lab.vmctl("status") == (1, HEADER, "")
    lab.start_vm("b")
    assert lab.row("b").id == "1", "reset restarts numbering at 1"
    assert lab.vmctl("reload").rc == 0
    assert lab.row("x").id == "2"


def test_ids_are_per_name_and_uid(lab):
    lab.start_vm("a")
    assert lab.vmctl("stop", "-w", "a").rc == 0
    # another user may not create new VMs at all (vmd: only existing VMs or instances)
    disk = lab.disk("u.img")
    lab.write_conf("socket owner nobody\n")
    assert lab.vmctl("reload").rc == 0
    result = lab.vmctl("start", "-d", disk, "u", env={"LAB_USER": "nobody"})
    assert result == (1, "", "vmctl: starting without network interfaces\n"
                             "vmctl: start vm command failed: Operation not permitted\n")


def test_running_rows_shape(lab):
    lab.start_vm("web1")
    lab.start_vm("web2")
    lines = lab.vmctl("status").out.splitlines()[1:]
    assert all(ROW_RUNNING.match(line) for line in lines), lines
    assert [line.split()[5] for line in lines] == ["ttyp0", "ttyp1"]
