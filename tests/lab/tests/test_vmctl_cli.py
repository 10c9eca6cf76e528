"""vmctl's command line: prefixes, usage texts, getopt, ids, channels and exit codes (vmctl-facts.md §1, §6, §7)."""

import pytest

GENERAL_USAGE = "usage:\tvmctl [-v] command [arg ...]\n"
COMMAND_USAGE = {
    "console": "id",
    "load": "filename",
    "log": "[brief | verbose]",
    "pause": "id",
    "reload": "",
    "reset": "[all | switches | vms]",
    "show": "[id]",
    "start": "[-cL] [-B device] [-b path] [-d disk] [-i count]\n\t\t[-m size] [-n switch] [-r path] [-t name] id | name",
    "status": "[-r] [id]",
    "stop": "[-fw] [id | -a]",
    "unpause": "id",
    "wait": "id",
}


def usage_of(command):
    return "usage:\tvmctl [-v] %s %s\n" % (command, COMMAND_USAGE[command])


@pytest.mark.parametrize("word", ["s", "st", "sta", "c", "l", "lo", "r", "re", ""])
def test_ambiguous_prefix(lab, word):
    result = lab.vmctl(word)
    assert result == (1, "", "ambiguous argument: %s\n%s" % (word, GENERAL_USAGE))


@pytest.mark.parametrize("word", ["send", "receive", "stat", "list", "startx"])
def test_unknown_command(lab, word):
    result = lab.vmctl(word)
    if word == "stat":
        # "stat" is a unique prefix of status
        assert result.rc == 1 and result.out.startswith("   ID")
        return
    assert result == (1, "", "unknown argument: %s\n%s" % (word, GENERAL_USAGE))


def test_no_command_and_bad_global_option(lab):
    assert lab.vmctl() == (1, "", GENERAL_USAGE)
    assert lab.vmctl("-x", "status") == (1, "", "vmctl: unknown option -- x\n" + GENERAL_USAGE)
    assert lab.vmctl("-v") == (1, "", GENERAL_USAGE)


def test_unique_prefixes_select_commands(lab):
    lab.start_vm("web1")
    for word in ("statu", "sho", "sh"):
        result = lab.vmctl(word)
        assert result.rc == 0 and "web1" in result.out, (word, result)
    result = lab.vmctl("-v", "stat", "web1")
    assert result.rc == 0 and "running web1" in result.out
    assert lab.vmctl("w", "nosuchvm") == (1, "", "waiting for vm nosuchvm: vm not found\n")
    assert lab.vmctl("pa", "web1").err == "vmctl: paused vm 1 successfully\n"
    assert lab.vmctl("u", "web1").err == "vmctl: unpaused vm 1 successfully\n"


@pytest.mark.parametrize("argv,command", [
    (["status", "a", "b"], "status"),
    (["status", "-x"], "status"),
    (["show", "a", "b"], "show"),
    (["start"], "start"),
    (["start", "a", "b"], "start"),
    (["stop"], "stop"),
    (["stop", "a", "b"], "stop"),
    (["stop", "-a", "web1"], "stop"),
    (["stop", "-x", "web1"], "stop"),
    (["console"], "console"),
    (["console", "a", "b"], "console"),
    (["wait"], "wait"),
    (["pause"], "pause"),
    (["unpause", "a", "b"], "unpause"),
    (["load"], "load"),
    (["load", "a", "b"], "load"),
    (["log"], "log"),
    (["log", "loud"], "log"),
    (["reload", "now"], "reload"),
    (["reset", "disks"], "reset"),
    (["reset", "all", "vms"], "reset"),
])
def test_per_command_usage(lab, argv, command):
    result = lab.vmctl(*argv)
    assert result.rc == 1 and result.out == ""
    assert result.err.endswith(usage_of(command)), result.err
    prefix = result.err[:-len(usage_of(command))]
    assert prefix in ("", "vmctl: unknown option -- x\n")


def test_reload_usage_has_trailing_blank(lab):
    assert lab.vmctl("reload", "x").err == "usage:\tvmctl [-v] reload \n"


def test_options_after_operand_are_not_permuted(lab):
    disk = lab.disk("d.img")
    result = lab.vmctl("start", "myvm", "-m", "1G", "-d", disk)
    assert result == (1, "", usage_of("start"))
    result = lab.vmctl("stop", "myvm", "-f")
    assert result == (1, "", usage_of("stop"))


def test_getopt_messages(lab):
    assert lab.vmctl("start", "-m") == (1, "", "vmctl: option requires an argument -- m\n" + usage_of("start"))
    assert lab.vmctl("start", "-S", "x") == (1, "", "vmctl: unknown option -- S\n" + usage_of("start"))
    # `--` ends the options; a lone `-` is an operand
    assert lab.vmctl("status", "--", "nosuch").rc == 1
    assert lab.vmctl("status", "-") == (1, "", "vmctl: invalid id: -\n")


@pytest.mark.parametrize("command", ["status", "console", "wait", "pause", "unpause"])
def test_invalid_ids(lab, command):
    long_name = "x" * 64
    result = lab.vmctl(command, long_name)
    assert result == (1, "", "vmctl: name too long\nvmctl: invalid id: %s\n" % long_name)
    if command != "status":
        assert lab.vmctl(command, "-1") == (1, "", "vmctl: invalid id: -1\n")


def test_invalid_id_for_stop_and_start(lab):
    long_name = "y" * 70
    assert lab.vmctl("stop", long_name) == (1, "", "vmctl: name too long\nvmctl: invalid id: %s\n" % long_name)
    assert lab.vmctl("start", long_name) == (1, "", "vmctl: name too long\nvmctl: invalid id: %s\n" % long_name)
    # 63 characters is still a name
    assert lab.vmctl("stop", "z" * 63) == (1, "", "stopping vm %s: vm not found\n" % ("z" * 63))


def test_numeric_argument_is_an_id(lab):
    lab.start_vm("web1")
    assert lab.vmctl("stop", "7") == (1, "", "stopping vm: vm not found\n")
    result = lab.vmctl("status", "1")
    assert result.rc == 0 and result.out.count("\n") == 2 and "web1" in result.out
    # beyond UINT32_MAX it is a name again
    assert lab.vmctl("stop", "4294967296") == (1, "", "stopping vm 4294967296: vm not found\n")


def test_vmd_down(lab):
    assert lab.lab("vmd", "stop").rc == 0
    for argv in (["status"], ["stop", "x"], ["reload"], ["start", "x"], ["console", "x"]):
        result = lab.vmctl(*argv)
        assert result == (1, "", "vmctl: connect: /var/run/vmd.sock: No such file or directory\n"), argv


def test_stale_socket_is_connection_refused(lab):
    import socket
    assert lab.lab("vmd", "stop").rc == 0
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(lab.path("var", "run", "vmd.sock"))
    stale.close()
    assert lab.vmctl("status") == (1, "", "vmctl: connect: /var/run/vmd.sock: Connection refused\n")


def test_log_accepts_any_case_insensitive_prefix(lab):
    for word in ("brief", "b", "BR", "verbose", "V", "Verb"):
        assert lab.vmctl("log", word) == (0, "", ""), word
    assert lab.vmctl("log", "briefly").rc == 1


def test_create_is_delegated_and_needs_no_vmd(lab):
    assert lab.lab("vmd", "stop").rc == 0
    target = lab.path("new.qcow2")
    assert lab.vmctl("create", "-s", "64M", target) == (0, "", "vmctl: qcow2 imagefile created\n")
    assert lab.vmctl("create", "-s", "64M", target) == (
        1, "", "vmctl: create imagefile operation failed: File exists\n")
    assert lab.vmctl("create", "-s", "64M", lab.path("new2.img"), "extra").err.endswith(
        "usage:\tvmctl [-v] create [-b base | -i disk] [-s size] disk\n")


def test_disk_full_fault_reaches_create(lab):
    assert lab.lab("fault", "set", "disk-full").rc == 0
    target = lab.path("full.img")
    assert lab.vmctl("create", "-s", "64M", target) == (
        1, "", "vmctl: create imagefile operation failed: No space left on device\n")
    assert lab.lab("fault", "clear", "disk-full").rc == 0
    assert lab.vmctl("create", "-s", "64M", target) == (0, "", "vmctl: raw imagefile created\n")


def test_non_root_restrictions(lab):
    env = {"LAB_USER": "nobody"}
    # the socket is root:wheel 0660 unless vm.conf says `socket owner`
    assert lab.vmctl("status", env=env) == (1, "", "vmctl: connect: /var/run/vmd.sock: Permission denied\n")
    assert lab.vmctl("stop", "x", env=env) == (1, "", "vmctl: connect: /var/run/vmd.sock: Permission denied\n")
    lab.write_conf("socket owner nobody\n")
    assert lab.vmctl("reload").rc == 0
    for argv in (["load", lab.path("x.conf")], ["reload"], ["reset"], ["log", "brief"]):
        result = lab.vmctl(*argv, env=env)
        assert result == (1, "", "vmctl: command failed: Operation not permitted\n"), argv
    result = lab.vmctl("status", env=env)
    assert result == (1, "   ID   PID VCPUS  MAXMEM  CURMEM     TTY        OWNER    STATE NAME\n", "")
    lab.write_conf("socket owner :nogroup\n")
    assert lab.vmctl("reload").rc == 0
    assert lab.vmctl("status", env=env).rc == 1
    assert lab.vmctl("status", env={"LAB_USER": "daemon"}).err == "vmctl: connect: /var/run/vmd.sock: Permission denied\n"


def test_every_call_is_logged_for_counting(lab):
    """The lab's vmctl call log (lab/vmctl.calls): benchmarks and the fleet test count vmctl calls per host."""
    import json
    import os
    log = os.path.join(lab.root, "lab", "vmctl.calls")
    before = open(log).read().splitlines() if os.path.exists(log) else []
    lab.vmctl("status")
    lab.vmctl("-v", "stat", "web1")
    lab.vmctl("nosuch")
    calls = [json.loads(line) for line in open(log).read().splitlines()[len(before):]]
    assert calls == [["status"], ["-v", "stat", "web1"], ["nosuch"]]
