"""The lab host's httpd daemon, its packet path (pf rdr-to) and ftp(1), against OpenBSD's sources.

- usr.sbin/httpd/parse.y host()/host_if(): literals are taken as they are, interface names and
  groups resolve to the addresses they have when the configuration is read;
  httpd.c parent_configure() -> server_privinit(): binding an address that is on no interface
  is fatal ("send server"), after httpd has daemonized (syslog only).
- httpd.c: servers run as www, chrooted; server_file.c: EACCES -> 403, ENOENT -> 404,
  directory listings only with `directory auto index`.
- pf.conf(5): rdr-to on `pass in ... on tap`, only while pf is enabled.
- usr.bin/ftp/fetch.c url_get(): `ftp: connect: ...`, `ftp: Error retrieving URL: STATUS`.
"""

import grp
import json
import os
import sys
import time

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import installer, mirror, network  # noqa: E402  pylint: disable=wrong-import-position

from conftest import run_on as run  # noqa: E402  pylint: disable=wrong-import-position


WWW_GID = grp.getgrnam("www-data").gr_gid
RDR = "pass in quick on tap inet proto tcp from 100.64.0.0/10 to 100.64.0.0/10 port 80 rdr-to 127.0.0.1 port 80\n"


def httpd_conf(root, listen="127.0.0.1", extra=""):
    conf = root / "etc" / "httpd.conf"
    conf.write_text('chroot "%s/var/www"\nserver "install" {\n\tlisten on %s port 80\n\troot "/htdocs"\n%s}\n'
                    % (root, listen, extra))
    return conf


def start_httpd(root, listen="127.0.0.1", extra=""):
    httpd_conf(root, listen, extra)
    return run(root, "rcctl", "-f", "start", "httpd")


def load_pf(root, anchor_rules, enable=True):
    (root / "etc" / "pf.openbsd-vmm.conf").write_text(anchor_rules)
    (root / "etc" / "pf.conf").write_text('anchor "openbsd-vmm"\nload anchor "openbsd-vmm" from "%s"\n'
                                          % (root / "etc" / "pf.openbsd-vmm.conf"))
    assert run(root, "pfctl", "-f", str(root / "etc" / "pf.conf")).returncode == 0
    if enable and not run(root, "pfctl", "-si").stdout.startswith("Status: Enabled"):
        assert run(root, "pfctl", "-e").returncode == 0


def publish(root, name, data=b"data\n", mode=0o644, gid=0, directory_mode=0o755):
    path = root / "var" / "www" / "htdocs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(directory_mode)
    path.write_bytes(data)
    os.chown(path, 0, gid)
    path.chmod(mode)
    return path


def httpd_pid(root):
    try:
        return json.loads((root / "lab" / "basetools" / "httpd.json").read_text())["pid"]
    except FileNotFoundError:
        return None


def gone(pid):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# --- listen on -----------------------------------------------------------------------------

def test_httpd_does_not_start_on_a_tap_address_no_interface_has(host):
    # 100.64.4.2 exists only while VM 4 runs: the literal parses, the bind fails at start.
    httpd_conf(host, "100.64.4.2")
    assert run(host, "httpd", "-n", "-f", str(host / "etc" / "httpd.conf")).returncode == 0
    result = run(host, "rcctl", "-f", "start", "httpd")
    assert (result.returncode, result.stdout, result.stderr) == (1, "httpd(failed)\n", "")
    assert "httpd[" in (host / "var" / "log" / "daemon").read_text()
    assert "fatal in parent: send server: Can't assign requested address" in (host / "var" / "log" / "daemon").read_text()
    assert run(host, "rcctl", "check", "httpd").returncode == 1
    assert httpd_pid(host) is None


@pytest.mark.parametrize("name", ["tap", "tap0", "vport0"])
def test_httpd_refuses_interfaces_and_groups_without_an_address(host, name):
    conf = httpd_conf(host, name)
    result = run(host, "httpd", "-n", "-f", str(conf))
    assert result.returncode == 1 and result.stderr == "%s:3: invalid listen ip: %s\n" % (conf, name)
    assert run(host, "rcctl", "-f", "start", "httpd").returncode == 1


def test_httpd_resolves_an_interface_once_and_never_learns_later_addresses(host):
    assert run(host, "ifconfig", "vport0", "create", "inet", "10.0.0.1", "up").returncode == 0
    assert start_httpd(host, "vport0").stdout == "httpd(ok)\n"
    listeners = json.loads((host / "lab" / "basetools" / "httpd.json").read_text())["listeners"]
    assert [(entry["address"], entry["port"]) for entry in listeners] == [("10.0.0.1", 80)]
    run(host, "ifconfig", "vport0", "inet", "10.0.0.2")
    listeners = json.loads((host / "lab" / "basetools" / "httpd.json").read_text())["listeners"]
    assert [entry["address"] for entry in listeners] == ["10.0.0.1"]


# --- serving as www --------------------------------------------------------------------------

@pytest.mark.parametrize("mode,gid,directory_mode,expected", [
    (0o640, 0, 0o755, "403 Forbidden"),         # root:root 0640: www is "other"
    (0o640, WWW_GID, 0o755, None),              # group www: readable
    (0o644, 0, 0o750, "403 Forbidden"),         # world-readable file, but www cannot enter the directory
    (0o644, 0, 0o755, None),
])
def test_httpd_serves_as_www_with_the_files_permissions(host, mode, gid, directory_mode, expected):
    publish(host, "sub/fe:e1:bb:d1:00:01-install.conf", b"System hostname = web1\n", mode, gid, directory_mode)
    assert start_httpd(host).returncode == 0
    url = "http://127.0.0.1/sub/fe:e1:bb:d1:00:01-install.conf"
    result = run(host, "ftp", "-o", "-", url)
    if expected:
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == "ftp: Error retrieving %s: %s\n" % (url, expected)
    else:
        assert (result.returncode, result.stdout, result.stderr) == (0, "System hostname = web1\n", "")


def test_httpd_lists_directories_only_with_auto_index(host):
    publish(host, "pub/index.txt")
    assert start_httpd(host).returncode == 0
    result = run(host, "ftp", "-o", "-", "http://127.0.0.1/pub/")
    assert result.returncode == 1 and "403 Forbidden" in result.stderr
    httpd_conf(host, extra="\tdirectory auto index\n")
    assert run(host, "rcctl", "-f", "reload", "httpd").returncode == 0
    result = run(host, "ftp", "-o", "-", "http://127.0.0.1/pub/")
    assert result.returncode == 0 and '<a href="index.txt">index.txt</a>' in result.stdout


def test_httpd_lists_only_the_directories_a_location_with_auto_index_matches(host):
    # usr.sbin/httpd/server_http.c server_getlocation(): the first `location` whose pattern fnmatch(3)es the request
    # path (FNM_CASEFOLD, no FNM_PATHNAME: `*` also matches `/`) replaces the server's configuration for it
    publish(host, "pub/OpenBSD/7.8/packages/amd64/rsync-3.4.1.tgz")
    publish(host, "pub/OpenBSD/7.8/amd64/index.txt")
    location = ('\tdirectory no auto index\n\tlocation "/pub/OpenBSD/7.8/packages/amd64/" {\n'
                '\t\tdirectory auto index\n\t}\n')
    assert start_httpd(host, extra=location).returncode == 0
    result = run(host, "ftp", "-o", "-", "http://127.0.0.1/pub/OpenBSD/7.8/packages/amd64/")
    assert result.returncode == 0, result
    # what pkg_add's get_http_list (OpenBSD/PackageRepository.pm) reads: HREF="....tgz", case-insensitive
    assert '<a href="rsync-3.4.1.tgz">rsync-3.4.1.tgz</a>' in result.stdout, result.stdout
    for other in ("/pub/OpenBSD/7.8/amd64/", "/pub/OpenBSD/7.8/packages/", "/"):
        result = run(host, "ftp", "-o", "-", "http://127.0.0.1" + other)
        assert result.returncode == 1 and "403 Forbidden" in result.stderr, (other, result)
    # the files of that directory are served as everywhere
    assert run(host, "ftp", "-o", "-", "http://127.0.0.1/pub/OpenBSD/7.8/packages/amd64/rsync-3.4.1.tgz").stdout == "data\n"
    # a pattern: the first location that matches decides
    location = ('\tlocation "/PUB/OpenBSD/*/packages/*" {\n\t\tdirectory auto index\n\t}\n'
                '\tlocation "/pub/*" {\n\t\tdirectory no auto index\n\t}\n')
    httpd_conf(host, extra=location)
    assert run(host, "rcctl", "-f", "reload", "httpd").returncode == 0
    assert run(host, "ftp", "-o", "-", "http://127.0.0.1/pub/OpenBSD/7.8/packages/amd64/").returncode == 0
    assert run(host, "ftp", "-o", "-", "http://127.0.0.1/pub/OpenBSD/7.8/amd64/").returncode == 1


def test_httpd_reload_restart_stop_and_lab_vmd_stop_leave_no_process(host):
    publish(host, "a")
    assert start_httpd(host).stdout == "httpd(ok)\n"
    first = httpd_pid(host)
    assert run(host, "rcctl", "-f", "restart", "httpd").returncode == 0
    second = httpd_pid(host)
    assert second != first and gone(first)
    assert run(host, "rcctl", "-f", "stop", "httpd").stdout == "httpd(ok)\n"
    assert gone(second) and httpd_pid(host) is None
    assert run(host, "ftp", "-o", "-", "http://127.0.0.1/a").stderr == "ftp: connect: Connection refused\n"
    assert start_httpd(host).returncode == 0
    third = httpd_pid(host)
    assert run(host, "lab", "vmd", "stop").returncode == 0
    assert gone(third)
    assert start_httpd(host).returncode == 0
    fourth = httpd_pid(host)
    assert run(host, "lab", "init").returncode == 0
    assert gone(fourth)


def test_httpd_ends_when_its_lab_root_is_removed(host):
    assert start_httpd(host).returncode == 0
    pid = httpd_pid(host)
    os.unlink(host / "lab" / "basetools" / "httpd.json")
    assert gone(pid)


# --- the packet path ---------------------------------------------------------------------------

def test_rdr_to_brings_a_vms_connection_to_httpd_only_from_the_vm_networks(host):
    assert start_httpd(host).returncode == 0
    real = json.loads((host / "lab" / "basetools" / "httpd.json").read_text())["listeners"][0]["real_port"]
    # No rule: the tap's host address has no listener.
    with pytest.raises(ConnectionRefusedError):
        network.connect("tap0", "100.64.4.3", "100.64.4.2", 80, own_address="100.64.4.2")
    # a fresh host has pf enabled (/etc/rc: pf=YES by default); disabled, no rule applies
    assert run(host, "pfctl", "-si").stdout.startswith("Status: Enabled")
    assert run(host, "pfctl", "-d").returncode == 0
    load_pf(host, RDR, enable=False)
    with pytest.raises(ConnectionRefusedError):
        network.connect("tap0", "100.64.4.3", "100.64.4.2", 80, own_address="100.64.4.2")
    assert run(host, "pfctl", "-e").returncode == 0
    assert network.connect("tap0", "100.64.4.3", "100.64.4.2", 80, own_address="100.64.4.2") == ("127.0.0.1", real)
    # From egress (em0), to the host's public address or a VM-network address: never redirected.
    with pytest.raises(ConnectionRefusedError):
        network.connect("em0", "198.51.100.7", "192.0.2.10", 80)
    with pytest.raises(OSError):
        network.connect("em0", "100.64.4.3", "100.64.4.2", 80)
    # Other ports are not redirected.
    with pytest.raises(ConnectionRefusedError):
        network.connect("tap0", "100.64.4.3", "100.64.4.2", 8080, own_address="100.64.4.2")


def test_pf_rule_shapes_the_lab_evaluates():
    rule = network.parse_rule("pass in quick on { tap vport0 } inet proto tcp from 100.64.0.0/10 to any port { 80 www } "
                              "rdr-to 127.0.0.1 port 8080")
    assert rule["on"] == ["tap", "vport0"] and rule["rdr"] == ["127.0.0.1", "8080"] and rule["quick"]
    assert network.parse_rule("pass in on tap proto tcp to port www rdr-to 127.0.0.1")["to"] == ["any"]
    assert network.parse_rule("match out on egress inet from 100.64.0.0/10 to any nat-to (egress)") is None
    assert network.parse_rule("anchor \"openbsd-vmm\"") is None


def _installer(host, tap="tap0"):
    setdir = mirror.make_mirror(str(host / "var" / "www" / "htdocs" / "pub" / "OpenBSD"), "7.8", "amd64")
    ctx = {"lab_root": str(host), "name": "web1", "vm_id": 4, "console": None, "disks": [],
           "kernel": os.path.join(setdir, "bsd.rd"),
           "interfaces": [{"mac": "fe:e1:bb:d1:00:01", "local": True, "switch": None, "tap": tap, "groups": []}]}
    return installer._Installer(ctx)  # pylint: disable=protected-access


def test_installer_fetch_needs_httpd_and_the_rdr_rule(host):
    publish(host, "install.conf", b"System hostname = web1\n")
    guest = _installer(host)
    url = "http://100.64.4.2/install.conf?path=7.8/amd64"
    assert start_httpd(host).returncode == 0
    assert guest.fetch(url) is None, "httpd on 127.0.0.1 is not the tap's address"
    load_pf(host, RDR)
    assert guest.fetch(url) == b"System hostname = web1\n"
    assert run(host, "rcctl", "-f", "stop", "httpd").returncode == 0
    assert guest.fetch(url) is None


# --- ftp ------------------------------------------------------------------------------------------

def test_ftp_messages_and_exit_codes(host, tmp_path):
    out = tmp_path / "out"
    result = run(host, "ftp", "-o", str(out), "http://127.0.0.1/index.txt")
    assert (result.returncode, result.stderr) == (1, "ftp: connect: Connection refused\n") and not out.exists()
    publish(host, "index.txt", b"x\n")
    assert start_httpd(host).returncode == 0
    result = run(host, "ftp", "-o", str(out), "http://127.0.0.1/missing")
    assert (result.returncode, result.stderr) == (1, "ftp: Error retrieving http://127.0.0.1/missing: 404 Not Found\n")
    assert not out.exists()
    result = run(host, "ftp", "-o", str(out), "http://127.0.0.1/index.txt")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "") and out.read_bytes() == b"x\n"
    # Host traffic is not `in on tap`: the tap-side address is refused even with the rdr rule.
    load_pf(host, RDR)
    assert run(host, "ftp", "-o", "-", "http://100.64.4.2/index.txt").returncode == 1


def test_httpd_reload_with_an_address_on_no_interface_ends_httpd(host):
    # parent_reload() -> parent_configure() -> config_setserver(): the bind fails, fatal("send server");
    # rc.d's reload (a SIGHUP) said ok before.
    assert start_httpd(host).returncode == 0
    pid = httpd_pid(host)
    httpd_conf(host, "100.64.9.2")
    assert run(host, "rcctl", "-f", "reload", "httpd").stdout == "httpd(ok)\n"
    assert gone(pid)
    assert run(host, "rcctl", "check", "httpd").returncode == 1
    assert "fatal in parent: send server: Can't assign requested address" in (host / "var" / "log" / "daemon").read_text()
