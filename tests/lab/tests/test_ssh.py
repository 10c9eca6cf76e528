"""The lab's `ssh` between lab hosts and its `sha256`: what vmm_disk_send relies on when hosts copy to each other.

Lab hosts are sibling roots of one lab base (tests/integration/targets/setup_lab/files/lab_hosts.sh). On a
lab host (VMM_LAB_ROOT set) `ssh HOST command` reaches the sibling root named HOST; anywhere else the lab's
`ssh` is the machine's own, so the controller's SSH to the guests is never captured."""

import hashlib
import os
import stat
import subprocess

import pytest

BIN = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "bin"))


@pytest.fixture(name="base")
def fixture_base(tmp_path):
    """Two lab hosts, vmm1 and vmm2, as `lab init` leaves their roots (a lab/ directory each)."""
    for host in ("vmm1", "vmm2"):
        (tmp_path / host / "lab").mkdir(parents=True)
        (tmp_path / host / "var" / "vmm").mkdir(parents=True)
    return tmp_path


def run(root, *argv, stdin=None, path=None, binary=False):
    env = dict(os.environ, PATH=os.pathsep.join([BIN, path or "", os.environ["PATH"]]))
    env.pop("VMM_LAB_ROOT", None)
    if root is not None:
        env["VMM_LAB_ROOT"] = str(root)
    return subprocess.run([os.path.join(BIN, argv[0])] + list(argv[1:]), env=env, input=stdin, capture_output=True,
                          text=not binary, check=False, timeout=60)


def test_ssh_runs_the_command_words_joined_by_spaces_in_the_peer_lab_with_stdin(base):
    # ssh.c main(): the command is the remaining arguments joined with single spaces, run by the remote
    # user's shell; stdin goes to it
    data = os.urandom(300000)
    dest = base / "vmm2" / "var" / "vmm" / "disk.send"
    result = run(base / "vmm1", "ssh", "-o", "BatchMode=yes", "-p", "22", "-l", "root", "--", "vmm2",
                 "umask 077 && exec cat >", "'%s'" % dest, stdin=data, binary=True)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == data
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    result = run(base / "vmm1", "ssh", "root@vmm2", "echo", "$VMM_LAB_ROOT", "a  b")
    assert result.stdout == "%s a b\n" % (base / "vmm2")


def test_ssh_passes_the_remote_exit_status_and_stderr(base):
    result = run(base / "vmm1", "ssh", "vmm2", "echo oops >&2; exit 3")
    assert (result.returncode, result.stderr) == (3, "oops\n")


def fake_real_ssh(tmp_path):
    real = tmp_path / "realbin"
    real.mkdir()
    fake = real / "ssh"
    fake.write_text("#!/bin/sh\necho \"real ssh $*\"\n")
    fake.chmod(0o755)
    return str(real)


def test_ssh_to_what_is_not_a_lab_host_is_the_machines_own(base, tmp_path):
    # a guest's address, or a name with no lab root beside this one: the real ssh resolves and connects
    (base / "notalab").mkdir()
    real = fake_real_ssh(tmp_path)
    for host in ("192.0.2.3", "vmm9", "notalab", "..", "vmm1/../vmm2"):
        result = run(base / "vmm1", "ssh", "-o", "ControlMaster=auto", host, "true", path=real)
        assert (result.returncode, result.stdout) == (0, "real ssh -o ControlMaster=auto %s true\n" % host)
    # the controller's connections to the guests run without VMM_LAB_ROOT in most targets
    result = run(None, "ssh", "-o", "ControlMaster=auto", "vmm2", "true", path=real)
    assert (result.returncode, result.stdout) == (0, "real ssh -o ControlMaster=auto vmm2 true\n")


def test_ssh_refuses_a_bad_port_to_a_lab_host(base):
    result = run(base / "vmm1", "ssh", "-p", "http", "vmm2", "true")
    assert (result.returncode, result.stderr) == (255, "Bad port 'http'\n")


def test_sha256_q_prints_only_the_digest_and_the_default_is_bsd_style(base):
    # bin/md5/md5.c digest_print(): STYLE_TERSE with -q, "%s (%s) = %s" otherwise; warn("cannot open %s")
    image = base / "vmm2" / "var" / "vmm" / "disk"
    image.write_bytes(b"abc" * 1000)
    digest = hashlib.sha256(b"abc" * 1000).hexdigest()
    assert run(base / "vmm2", "sha256", "-q", str(image)).stdout == digest + "\n"
    assert run(base / "vmm2", "sha256", str(image)).stdout == "SHA256 (%s) = %s\n" % (image, digest)
    missing = run(base / "vmm2", "sha256", "-q", str(image) + ".nosuch")
    assert missing.returncode == 1
    assert missing.stderr == "sha256: cannot open %s.nosuch: No such file or directory\n" % image
