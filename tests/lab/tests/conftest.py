"""Shared fixtures for the lab's own tests: a fresh lab per test, with its vmd running.

    def test_something(lab):
        result = lab.run("vmctl", "status")
        assert result.rc == 1 and result.out == HEADER

`lab.run(*argv)` runs a lab executable with tests/lab/bin first on PATH and the
lab's VMM_LAB_ROOT; it returns Result(rc, out, err).
"""

import collections
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_BIN = os.path.join(LAB_DIR, "bin")
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

HEADER = "   ID   PID VCPUS  MAXMEM  CURMEM     TTY        OWNER    STATE NAME\n"

# The OpenBSD facts the lab follows: ../shared/reference beside the checkout (CI has it there),
# or wherever VMM_REFERENCE_DIR points.
REFERENCE_DIR = os.environ.get("VMM_REFERENCE_DIR") or os.path.join(os.path.dirname(os.path.dirname(LAB_DIR)), "..", "shared", "reference")


def reference_text(name):
    """The text of a reference file with line wrapping folded away; skips the test if it is absent."""
    path = os.path.join(REFERENCE_DIR, name)
    if not os.path.exists(path):
        pytest.skip("the reference is not beside the checkout (%s); set VMM_REFERENCE_DIR" % REFERENCE_DIR)
    with open(path, encoding="utf-8") as handle:
        return " ".join(handle.read().split())


Result = collections.namedtuple("Result", "rc out err")
StatusRow = collections.namedtuple("StatusRow", "id pid vcpus maxmem curmem tty owner state name")


class Lab:
    """One lab under a short temporary VMM_LAB_ROOT."""

    def __init__(self, root):
        self.root = root
        self.env = dict(os.environ)
        self.env.pop("LAB_USER", None)
        self.env["VMM_LAB_ROOT"] = root
        # The lab's scripts run on `python3` from PATH: put this interpreter's directory right
        # after the lab's bin (a pyenv shim would add most of a second to every command).
        self.env["PATH"] = os.pathsep.join([LAB_BIN, os.path.dirname(sys.executable), self.env.get("PATH", "")])
        self.env["LANG"] = "C"

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def run(self, *argv, env=None, timeout=60, stdin=None):
        full_env = dict(self.env)
        full_env.update(env or {})
        proc = subprocess.run(list(argv), env=full_env, capture_output=True, text=True, timeout=timeout,
                              input=stdin, cwd=self.root, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def vmctl(self, *args, **kwargs):
        return self.run("vmctl", *args, **kwargs)

    def lab(self, *args, **kwargs):
        return self.run("lab", *args, **kwargs)

    def disk(self, name, size=64 * 1024 * 1024):
        """A raw disk image (sparse file), as `vmctl create -s` would make it."""
        target = self.path(name)
        with open(target, "wb") as handle:
            handle.truncate(size)
        return target

    def write_conf(self, text):
        with open(self.path("etc", "vm.conf"), "w") as handle:
            handle.write(text)

    def status(self, *args):
        """Parsed rows of `vmctl status` (header checked).

        Runs the lab's vmctl in this process (same code as bin/vmctl, no interpreter start-up):
        tests poll the state a lot; vmctl's own behaviour is asserted through lab.vmctl().
        """
        from labsim import vmctl
        out = io.StringIO()
        saved = os.environ.get("VMM_LAB_ROOT")
        os.environ["VMM_LAB_ROOT"] = self.root
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                vmctl.main(["status"] + list(args))
        finally:
            if saved is None:
                del os.environ["VMM_LAB_ROOT"]
            else:
                os.environ["VMM_LAB_ROOT"] = saved
        result = out.getvalue()
        assert result.startswith(HEADER), result
        rows = []
        for line in result[len(HEADER):].splitlines():
            fields = line.split(None, 8)
            rows.append(StatusRow(*fields))
        return rows

    def row(self, name):
        for row in self.status():
            if row.name == name:
                return row
        return None

    def start_vm(self, name, *options):
        """Start a vmctl VM with one local interface and a fresh disk."""
        disk = self.disk(name + ".img")
        result = self.vmctl("start", "-L", "-d", disk, *options, name)
        assert result.rc == 0, result
        return result

    # 30 s: what the tests wait for takes well under a second alone, but CI's two cores are shared with
    # other jobs (a 10 s wait ran out twice there); a met condition returns at once, so it costs nothing.
    def wait_for(self, predicate, timeout=30.0, interval=0.02):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError("condition not reached within %.1fs" % timeout)

    def console(self, name):
        try:
            with open(self.path("lab", "console", name + ".log")) as handle:
                return handle.read()
        except OSError:
            return ""


def make_lab(*init_args, start=True):
    root = tempfile.mkdtemp(prefix="lab", dir="/tmp")
    lab = Lab(root)
    result = lab.lab("init", *init_args)
    assert result.rc == 0, result
    if start:
        result = lab.lab("vmd", "start")
        assert result.rc == 0, result
    return lab


def destroy_lab(lab):
    lab.lab("vmd", "stop")
    shutil.rmtree(lab.root, ignore_errors=True)


def recycle_lab(lab):
    """Bring a used lab back to the state `lab init` + `lab vmd start` leaves (cheaper than a new one)."""
    from labsim import daemon, state
    state.clear_fault(lab.root, None)
    if os.path.exists(lab.path("lab", "basetools", "httpd.json")):
        lab.run("rcctl", "-f", "stop", "httpd")
    for leftover in (lab.path("etc", "vm.conf"),):
        if os.path.exists(leftover):
            os.unlink(leftover)
    with open(lab.path("lab", "basetools", "pf.json"), "w") as handle:  # as lab init: pf enabled, no rules
        handle.write('{"enabled": true, "main": [], "anchors": {}, "loads": 0, "file": null}\n')
    with open(state.bios_path(lab.root), "wb") as handle:
        handle.write(b"LAB-VMM-BIOS\n")
    for entry in os.listdir(lab.path("dev")):
        os.unlink(lab.path("dev", entry))
    for index in range(16):
        open(state.tap_path(lab.root, index), "w").close()
    if daemon.running_pid(lab.root) is None:
        result = lab.lab("vmd", "start")
        assert result.rc == 0, result
    else:
        from labsim import protocol
        with protocol.connect(state.socket_path(lab.root)) as conn:
            assert conn.request({"op": "reset", "mode": "all", "uid": 0}) == {"type": "ok"}
            # back to the defaults of an empty vm.conf (socket owner, staggered start)
            assert conn.request({"op": "reload", "uid": 0}) == {"type": "ok"}


@pytest.fixture(scope="module")
def module_lab():
    instance = make_lab()
    try:
        yield instance
    finally:
        destroy_lab(instance)


@pytest.fixture
def lab(module_lab):  # pylint: disable=redefined-outer-name
    """A lab as `lab init` + `lab vmd start` leave it: no VMs, no vm.conf, no faults, IDs from 1.

    The lab (and its daemon) is shared by the tests of one module and reset between tests;
    use fresh_lab for a lab of one's own.
    """
    recycle_lab(module_lab)
    yield module_lab


@pytest.fixture
def fresh_lab():
    """A brand-new lab (lab init + lab vmd start), torn down with lab vmd stop."""
    instance = make_lab()
    try:
        yield instance
    finally:
        destroy_lab(instance)


@pytest.fixture
def lab_factory():
    """Make labs with custom `lab init` options: lab_factory("--cpus", "1", start=False)."""
    made = []

    def factory(*init_args, start=True):
        instance = make_lab(*init_args, start=start)
        made.append(instance)
        return instance
    try:
        yield factory
    finally:
        for instance in made:
            destroy_lab(instance)


BIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin")


def run_on(root, *argv):
    """Run a lab executable (bin/) on the lab host at ``root``, as a shell on that host would."""
    env = dict(os.environ, VMM_LAB_ROOT=str(root), PATH=BIN_DIR + os.pathsep + os.environ["PATH"])
    return subprocess.run([os.path.join(BIN_DIR, argv[0])] + list(argv[1:]), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False, cwd=str(root))


@pytest.fixture(name="host")
def fixture_host(tmp_path, monkeypatch):
    """A freshly booted lab host (`lab init`, no vmd) whose root the lab's www user can traverse."""
    root = tmp_path / "lab"
    root.mkdir()
    tmp_path.chmod(0o755)
    monkeypatch.setenv("VMM_LAB_ROOT", str(root))
    assert run_on(root, "lab", "init").returncode == 0
    yield root
    run_on(root, "rcctl", "-f", "stop", "httpd")
