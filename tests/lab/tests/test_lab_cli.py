"""The `lab` control command: init, vmd start/stop/status, faults, show, console-log, guest."""

import json
import os
import shutil
import tempfile

from conftest import LAB_BIN, Lab


def test_requires_vmm_lab_root():
    env = dict(os.environ)
    env.pop("VMM_LAB_ROOT", None)
    import subprocess
    for command in (["lab", "show"], ["vmctl", "status"]):
        proc = subprocess.run([os.path.join(LAB_BIN, command[0])] + command[1:], env=env, capture_output=True,
                              text=True, check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "lab: VMM_LAB_ROOT is not set\n")


def test_init_layout_and_options():
    root = tempfile.mkdtemp(prefix="lab", dir="/tmp")
    lab = Lab(root)
    try:
        docroot = os.path.join(root, "www")
        assert lab.lab("init", "--cpus", "3", "--taps", "4", "--docroot", docroot) == (0, "", "")
        for sub in ("etc/firmware/vmm-bios", "var/run", "var/log/vmd.log", "var/www/htdocs", "lab", "www"):
            assert os.path.exists(os.path.join(root, sub)), sub
        assert sorted(os.listdir(lab.path("dev"))) == ["tap0", "tap1", "tap2", "tap3"]
        assert not os.path.exists(lab.path("etc", "vm.conf")), "a missing vm.conf is fine for vmd"
        assert lab.lab("init") == (0, "", ""), "init again keeps the settings"
        assert lab.lab("vmd", "status") == (1, "vmd is not running\n", "")
        assert lab.lab("vmd", "start").rc == 0
        status = lab.lab("vmd", "status")
        assert status.rc == 0 and status.out.startswith("vmd is running (pid ")
        data = json.loads(lab.lab("show", "--json").out)
        assert data["settings"]["cpus"] == 3 and data["settings"]["docroot"] == docroot
        assert data["vmd"]["parallel"] == 3
        assert data["httpd"] is None  # no rcctl start httpd: nothing serves the docroot
        assert lab.lab("vmd", "start").rc == 0, "starting a running vmd is harmless"
        assert lab.lab("init", "--taps", "2").rc == 0
        assert sorted(os.listdir(lab.path("dev"))) == ["tap0", "tap1"]
    finally:
        lab.lab("vmd", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_show(lab):
    lab.start_vm("web1", "-m", "1G")
    data = json.loads(lab.lab("show", "--json").out)
    vm = data["vms"][0]
    assert (vm["name"], vm["id"], vm["memory"], vm["tty"], vm["taps"]) == ("web1", 1, 1024 ** 3, "/dev/ttyp0", ["tap0"])
    assert vm["macs"][0].startswith("fe:e1:bb:d1:")
    assert data["taps"]["tap0"] == "web1" and data["taps"]["tap1"] is None
    assert data["locks"] == [{"path": lab.path("web1.img"), "vm": "web1", "pid": vm["pid"]}]
    assert data["vmd"]["running"] is True
    text = lab.lab("show").out
    assert "web1 id=1" in text and "tap0=web1" in text and lab.path("web1.img") in text


def test_macs_from_lladdr_and_random_per_start(lab):
    disk = lab.disk("m.img")
    lab.write_conf('vm "m" {\n\tdisable\n\tdisk "%s"\n\tlocal interface { lladdr fe:e1:bb:00:00:01 }\n'
                   '\tinterface\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("start", "m").rc == 0
    macs = json.loads(lab.lab("show", "--json").out)["vms"][0]["macs"]
    assert macs[0] == "fe:e1:bb:00:00:01" and macs[1].startswith("fe:e1:bb:d2:")


def test_faults(lab):
    assert lab.lab("fault", "set", "bogus") == (1, "", "lab: unknown fault: bogus (known: vmd-down, stuck-stopping, "
                                                       "installer-fail, installer-hang, slow-install, disk-full, no-tap)\n")
    assert lab.lab("fault", "set", "installer-fail", "web1").rc == 0
    assert lab.lab("fault", "set", "no-tap").rc == 0
    assert json.loads(lab.lab("show", "--json").out)["faults"] == {"installer-fail": ["web1"], "no-tap": []}
    assert lab.lab("fault", "clear", "no-tap").rc == 0
    assert json.loads(lab.lab("show", "--json").out)["faults"] == {"installer-fail": ["web1"]}
    assert lab.lab("fault", "clear").rc == 0
    assert json.loads(lab.lab("show", "--json").out)["faults"] == {}


def test_installer_faults_reach_the_guest(lab):
    assert lab.lab("fault", "set", "slow-install", "g").rc == 0
    lab.start_vm("g")
    pid = lab.row("g").pid
    with open("/proc/%s/cmdline" % pid, "rb") as handle:
        spec = json.loads(handle.read().split(b"\0")[3])
    assert spec["faults"] == ["slow-install"]
    assert spec["interfaces"][0]["local"] is True and spec["bios"] is True


def test_console_log(lab):
    assert lab.lab("console-log", "nosuch") == (1, "", "lab: no console log for vm nosuch\n")
    lab.start_vm("c")
    lab.wait_for(lambda: lab.console("c"))
    result = lab.lab("console-log", "c")
    assert result.rc == 0 and result.out == lab.console("c") and result.out


def test_guest_command_needs_a_running_vm(lab):
    assert lab.lab("guest", "halt", "nosuch") == (1, "", "lab: vm nosuch is not running\n")
