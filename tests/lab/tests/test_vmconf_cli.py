"""The lab's `vmd` executable (tests/lab/bin/vmd): `vmd -n` config checks, usage, daemon start."""

import io
import os
import subprocess
import sys

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import vmd_cli  # noqa: E402  pylint: disable=wrong-import-position

VMD = os.path.join(LAB_DIR, "bin", "vmd")
USAGE = "usage: vmd [-dnv] [-D macro=value] [-f file]\n"
OK = "configuration OK\n"


def run_vmd(args, root=None, cwd=None):
    env = dict(os.environ)
    env.pop("VMM_LAB_ROOT", None)
    if root is not None:
        env["VMM_LAB_ROOT"] = str(root)
    proc = subprocess.run([VMD] + args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc").mkdir()
    return tmp_path


def test_executable_wrapper(tmp_path):
    assert os.access(VMD, os.X_OK)
    with open(VMD) as handle:
        assert handle.readline() == "#!/bin/sh\n"
    # reached through a symlink, as PATH lookups may do
    link = tmp_path / "vmd"
    link.symlink_to(VMD)
    proc = subprocess.run([str(link), "-n", "-f", "/nonexistent/x"], stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    assert (proc.returncode, proc.stderr) == (0, "failed to open /nonexistent/x: No such file or directory\n" + OK)


def test_default_file_is_the_lab_vm_conf(root):
    conf = root / "etc" / "vm.conf"
    conf.write_text('vm "a" {\n\tmemory 1G\n}\n')
    assert run_vmd(["-n"], root) == (0, "", OK)
    conf.write_text('vm "a" {\n\tmemory 1G\n\tbogus\n}\n')
    assert run_vmd(["-n"], root) == (1, "", "%s:3: syntax error\n" % conf)


def test_missing_default_file_is_fine(root):
    assert run_vmd(["-n"], root) == (0, "", OK)


def test_missing_file_given_with_f_only_warns(root):
    assert run_vmd(["-n", "-f", "missing.conf"], cwd=str(root)) == (
        0, "", "failed to open missing.conf: No such file or directory\n" + OK)


def test_directory_reads_as_an_empty_file(root):
    assert run_vmd(["-n", "-f", str(root / "etc")]) == (0, "", OK)


def test_lab_root_needed_only_for_the_default_file(root):
    conf = root / "other.conf"
    conf.write_text('vm "a" { memory 1G }\n')
    assert run_vmd(["-n", "-f", str(conf)]) == (0, "", OK)
    assert run_vmd(["-n"]) == (1, "", "lab: VMM_LAB_ROOT is not set\n")


def test_macro_definitions_on_the_command_line(root):
    conf = root / "m.conf"
    conf.write_text('vm "a" { memory $mem }\n')
    assert run_vmd(["-n", "-D", "mem=2G", "-f", str(conf)]) == (0, "", OK)
    assert run_vmd(["-nDmem=2G", "-f", str(conf), "-D", "x=1"]) == (0, "", "warning: macro 'x' not used\n" + OK)
    assert run_vmd(["-n", "-f", str(conf)]) == (
        1, "", "%s:1: macro 'mem' not defined\n%s:1: syntax error\n" % (conf, conf))
    # a definition without '=' is ignored (vmd logs it to syslog)
    assert run_vmd(["-n", "-D", "bogus", "-f", str(conf), "-Dmem=1G"]) == (0, "", OK)


def test_debug_and_verbose_flags_are_accepted(root):
    assert run_vmd(["-dvn"], root) == (0, "", OK)
    # vmd's internal flags are valid options too; they still need their argument
    assert run_vmd(["-n", "-p", "title"], root) == (0, "", OK)
    assert run_vmd(["-nP"], root) == (1, "", "vmd: option requires an argument -- P\n" + USAGE)


@pytest.mark.parametrize("args, first_line", [
    (["-x"], "vmd: unknown option -- x\n"),
    (["-n", "--help"], "vmd: unknown option -- -\n"),
    (["-n", "-f"], "vmd: option requires an argument -- f\n"),
    (["-nD"], "vmd: option requires an argument -- D\n"),
    (["-n", "extra"], ""),
    (["-n", "--", "extra"], ""),
])
def test_usage(root, args, first_line):
    assert run_vmd(args, root) == (1, "", first_line + USAGE)


def test_without_n_starts_the_lab_daemon(root, monkeypatch):
    from labsim import daemon  # pylint: disable=import-outside-toplevel
    started = []
    monkeypatch.setattr(daemon, "start_daemon", lambda lab_root: started.append(lab_root) or 4242)
    monkeypatch.setenv("VMM_LAB_ROOT", str(root))
    err = io.StringIO()
    assert vmd_cli.main([], stderr=err) == 0
    assert (started, err.getvalue()) == ([str(root)], "")


def test_daemon_start_failure_is_reported(root, monkeypatch):
    from labsim import daemon  # pylint: disable=import-outside-toplevel

    def refuse(lab_root):
        raise daemon.DaemonError(["vm.conf:1: syntax error"])

    monkeypatch.setattr(daemon, "start_daemon", refuse)
    monkeypatch.setenv("VMM_LAB_ROOT", str(root))
    err = io.StringIO()
    assert vmd_cli.main(["-f", "ignored"], stderr=err) == 1
    assert err.getvalue() == "vm.conf:1: syntax error\n"


def test_daemon_needs_the_lab_root(monkeypatch):
    monkeypatch.delenv("VMM_LAB_ROOT", raising=False)
    err = io.StringIO()
    assert vmd_cli.main([], stderr=err) == 1
    assert err.getvalue() == "lab: VMM_LAB_ROOT is not set\n"


def test_invalid_address_message_is_followed_by_an_empty_line(root):
    # parse.y's "invalid address: %s\n" format plus log_warnx's own newline
    conf = root / "a.conf"
    conf.write_text('vm "a" {\n\tinterface lladdr nonsense\n}\n')
    assert run_vmd(["-n", "-f", str(conf)]) == (1, "", "%s:2: invalid address: nonsense\n\n" % conf)
