"""vmctl stop/wait/pause/unpause/console (vmctl-facts.md §4, §6)."""

import select
import subprocess
import threading
import time

from labsim import protocol


def test_graceful_stop_returns_at_once_vm_shows_stopping(lab):
    lab.start_vm("web1")
    assert lab.vmctl("stop", "web1") == (0, "", "stopping vm web1: requested to shutdown vm 1\n")
    lab.wait_for(lambda: lab.row("web1") is None)
    lab.start_vm("web1")
    # the guest needs a moment to shut down: ask vmd directly, without vmctl's start-up time
    with protocol.connect(lab.path("var", "run", "vmd.sock")) as conn:
        request = {"op": "terminate", "name": "web1", "force": False, "wait": False, "uid": 0}
        assert conn.request(request) == {"type": "terminate", "result": 0, "id": 1}
        states = [vm["state"] for vm in conn.request({"op": "info", "uid": 0})["vms"]]
    assert states == [["running", "shutdown"]]
    lab.wait_for(lambda: lab.row("web1") is None)


def test_stop_by_id_and_errors(lab):
    lab.start_vm("web1")
    assert lab.vmctl("stop", "9") == (1, "", "stopping vm: vm not found\n")
    assert lab.vmctl("stop", "nosuch") == (1, "", "stopping vm nosuch: vm not found\n")
    assert lab.vmctl("stop", "1") == (0, "", "stopping vm: requested to shutdown vm 1\n")
    lab.wait_for(lambda: lab.row("web1") is None)


def test_stop_not_running_config_vm_is_invalid_argument(lab):
    disk = lab.disk("db1.img")
    lab.write_conf('vm "db1" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("stop", "db1") == (1, "", "stopping vm db1: failed: Invalid argument\n")
    assert lab.vmctl("stop", "1") == (1, "", "stopping vm: failed: Invalid argument\n")
    assert lab.vmctl("wait", "db1") == (1, "", "waiting for vm db1: failed: Invalid argument\n")


def test_stop_wait(lab):
    lab.start_vm("web1")
    assert lab.vmctl("stop", "-w", "web1") == (0, "", "stopping vm web1: terminated vm 1\n")
    assert lab.row("web1") is None
    lab.start_vm("web2")
    assert lab.vmctl("stop", "-w", "2") == (0, "", "stopping vm: terminated vm 2\n")


def test_stuck_stopping_needs_force(lab):
    lab.start_vm("web1")
    lab.start_vm("web2")
    assert lab.lab("fault", "set", "stuck-stopping", "web1").rc == 0
    assert lab.vmctl("stop", "web1") == (0, "", "stopping vm web1: requested to shutdown vm 1\n")
    assert lab.vmctl("stop", "web1") == (1, "", "stopping vm web1: failed: Operation already in progress\n")
    assert lab.vmctl("stop", "-w", "web1") == (1, "", "stopping vm web1: failed: Operation already in progress\n")
    # the stopping quirk: wait refuses a VM that is shutting down
    assert lab.vmctl("wait", "web1") == (1, "", "waiting for vm web1: failed: Operation already in progress\n")
    assert lab.row("web1").state == "stopping"
    assert lab.vmctl("stop", "-w", "web2").rc == 0, "the fault is per VM"
    assert lab.vmctl("stop", "-f", "web1") == (0, "", "stopping vm web1: requested to shutdown vm 1\n")
    assert lab.row("web1") is None


def test_force_with_wait(lab):
    lab.start_vm("web1")
    assert lab.vmctl("stop", "-f", "-w", "web1") == (0, "", "stopping vm web1: terminated vm 1\n")
    lab.start_vm("web1")
    assert lab.vmctl("stop", "-fw", "web1") == (0, "", "stopping vm web1: terminated vm 1\n")


def test_stop_all(lab):
    disk = lab.disk("db1.img")
    lab.write_conf('vm "db1" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("stop", "-a") == (0, "", ""), "nothing running: silent"
    lab.start_vm("a")
    lab.start_vm("b")
    assert lab.lab("fault", "set", "stuck-stopping", "b").rc == 0
    assert lab.vmctl("stop", "b").rc == 0
    result = lab.vmctl("stop", "-a", "-w")
    assert result.rc == 0, "always 0, even when a stop fails"
    assert result.err == ("stopping vm a: terminated vm 2\n"
                          "stopping vm b: failed: Operation already in progress\n")
    assert lab.vmctl("stop", "-af").rc == 0
    lab.wait_for(lambda: [row.name for row in lab.status()] == ["db1"])


def test_wait_blocks_until_the_vm_terminates(lab):
    lab.start_vm("web1")
    waiter = subprocess.Popen(["vmctl", "wait", "web1"], env=lab.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    assert waiter.poll() is None
    assert lab.lab("guest", "halt", "web1").rc == 0
    out, err = waiter.communicate(timeout=10)
    assert (waiter.returncode, out, err) == (0, "", "waiting for vm web1: terminated vm 1\n")
    assert lab.vmctl("wait", "web1") == (1, "", "waiting for vm web1: vm not found\n")
    assert lab.vmctl("wait", "3") == (1, "", "waiting for vm: vm not found\n")


def test_wait_then_stop_from_another_client(lab):
    lab.start_vm("web1")
    result = {}

    def wait():
        result["wait"] = lab.vmctl("wait", "web1")
    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)
    assert lab.vmctl("stop", "web1").rc == 0
    thread.join(10)
    assert result["wait"] == (0, "", "waiting for vm web1: terminated vm 1\n")


def test_pause_unpause(lab):
    lab.start_vm("web1")
    assert lab.vmctl("pause", "web1") == (0, "", "vmctl: paused vm 1 successfully\n")
    assert lab.row("web1").state == "paused"
    assert lab.vmctl("pause", "nosuch") == (1, "", "vmctl: vmop_result_read: Bad message\n")
    assert lab.vmctl("unpause", "7") == (1, "", "vmctl: vmop_result_read: Bad message\n")
    assert lab.vmctl("unpause", "1") == (0, "", "vmctl: unpaused vm 1 successfully\n")
    assert lab.row("web1").state == "running"
    # a paused VM can still be forced off
    assert lab.vmctl("pause", "web1").rc == 0
    assert lab.vmctl("stop", "-f", "-w", "web1") == (0, "", "stopping vm web1: terminated vm 1\n")


def test_pause_stopped_config_vm(lab):
    disk = lab.disk("db1.img")
    lab.write_conf('vm "db1" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("pause", "db1") == (1, "", "vmctl: pause vm command failed: No such file or directory\n")


def test_graceful_stop_of_paused_vm_waits_for_unpause(lab):
    lab.start_vm("web1")
    assert lab.vmctl("pause", "web1").rc == 0
    assert lab.vmctl("stop", "web1").rc == 0
    time.sleep(0.6)
    assert lab.row("web1").state == "paused"
    assert lab.vmctl("unpause", "web1").rc == 0
    lab.wait_for(lambda: lab.row("web1") is None)


def _first_line(stream, timeout=10):
    assert select.select([stream], [], [], timeout)[0], "nothing written within %d s" % timeout
    return stream.readline()


def test_console(lab):
    assert lab.vmctl("console", "nosuch") == (1, "", "vmctl: console not found\n")
    disk = lab.disk("db1.img")
    lab.write_conf('vm "db1" {\n\tdisable\n\tdisk "%s"\n}\n' % disk)
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("console", "db1") == (1, "", "vmctl: console not found\n")
    lab.start_vm("web1")
    lab.wait_for(lambda: lab.console("web1"))
    reader = subprocess.Popen(["vmctl", "console", "web1"], env=lab.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert _first_line(reader.stderr) == "Connected to /dev/ttyp0 (speed 115200)\n"
    time.sleep(0.2)
    assert reader.poll() is None, "cu follows the console while the VM runs"
    assert lab.vmctl("stop", "web1").rc == 0
    out, err = reader.communicate(timeout=10)
    assert reader.returncode == 0
    assert out == lab.console("web1")
    assert "syncing disks" in out
    assert err == "\n[EOT]\n"


def test_start_with_console(lab):
    disk = lab.disk("c.img")
    reader = subprocess.Popen(["vmctl", "start", "-c", "-L", "-d", disk, "c"], env=lab.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    # cu says it is connected before anything else: halting before that is a race with the exec.
    connected = _first_line(reader.stderr)
    assert connected == "Connected to /dev/ttyp0 (speed 115200)\n"
    assert lab.row("c").state == "running"
    assert lab.lab("guest", "halt", "c").rc == 0
    out, err = reader.communicate(timeout=10)
    assert reader.returncode == 0
    assert "started vm" not in connected + err, "with -c nothing is printed, cu is exec'ed"
    assert out == lab.console("c")
