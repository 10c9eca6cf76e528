"""pkg_add, pkg_info and halt on a booted lab guest, over SSH (labsim.pkgtools through guestnet's wrappers).

The guest fetches from the lab httpd through the host's packet path (labsim.network), as the installer does.
Skipped, with `lab net-check`'s reason, where network namespaces cannot be made.
"""

import json
import os

import pytest

from labsim import mirror
from test_guestnet import NET_REASON, address_of, fixture_key, installed_disk, ssh  # noqa: F401  pylint: disable=unused-import

pytestmark = pytest.mark.skipif(NET_REASON is not None, reason=NET_REASON or "")

HTTPD_CONF = 'server "install" {\n\tlisten on 0.0.0.0 port 80\n\troot "/htdocs"\n\tdirectory auto index\n}\n'


@pytest.fixture(name="served")
def fixture_served(lab):
    mirror.make_mirror(lab.path("var", "www", "htdocs", "pub", "OpenBSD"), "7.8", "amd64")
    with open(lab.path("etc", "httpd.conf"), "w", encoding="ascii") as handle:
        handle.write(HTTPD_CONF)
    result = lab.run("rcctl", "-f", "start", "httpd")
    assert result.rc == 0, result
    yield lab
    lab.run("rcctl", "-f", "stop", "httpd")


def test_pkg_add_over_ssh_installs_into_the_guest_and_halt_stops_the_vm(served, key):
    lab = served
    disk = installed_disk(lab, "pkg1", "pkg1.my.domain", key, installurl="http://192.0.2.99/pub/OpenBSD")
    assert lab.vmctl("start", "-L", "-d", disk, "pkg1").rc == 0
    lab.wait_for(lambda: lab.console("pkg1").endswith("login: "), timeout=30)
    address = address_of(lab, "pkg1")[0]
    gateway = json.load(open(lab.path("lab", "guestnet", "pkg1.json"), encoding="utf-8"))["interfaces"][0]["gateway"]
    # install.sub wrote /etc/installurl; PKG_PATH (the host side of the tap, where httpd answers) wins over it
    result = ssh(lab, address, key, "cat /etc/installurl; command -v pkg_add; "
                 "PKG_PATH=http://%s/pub/OpenBSD/%%c/packages/%%a/ pkg_add rsync nosuch; echo rc=$?; pkg_info -q" % gateway)
    assert result.out == ("http://192.0.2.99/pub/OpenBSD\n/usr/local/sbin/pkg_add\n"
                          "xxhash-0.8.3: ok\nrsync-3.4.1: ok\nrc=1\nrsync-3.4.1\nxxhash-0.8.3\n"), result
    assert "Can't find nosuch" in result.err
    # the guest's package database is the guest's disk state; the machine's /var/db/pkg is untouched
    assert sorted(os.listdir(lab.path("guests", "pkg1", "var", "db", "pkg"))) == ["rsync-3.4.1", "xxhash-0.8.3"]
    assert not os.path.exists("/var/db/pkg/rsync-3.4.1")
    log = open(lab.path("guests", "pkg1", "lab", "pkg_add.log"), encoding="utf-8").read()
    assert "rsync-3.4.1 http://%s/pub/OpenBSD/7.8/packages/amd64/rsync-3.4.1.tgz" % gateway in log
    # through the host's packet path to the lab httpd: the listing, then each package
    served_log = open(lab.path("var", "log", "httpd.log"), encoding="utf-8").read()
    for path in ("/", "/xxhash-0.8.3.tgz", "/rsync-3.4.1.tgz"):
        assert '"GET /pub/OpenBSD/7.8/packages/amd64%s HTTP/1.1" 200' % path in served_log
    ssh(lab, address, key, "halt -p")
    lab.wait_for(lambda: lab.row("pkg1") is None or lab.row("pkg1").state == "stopped", timeout=30)
    # the packages are on the disk: the same disk booted under another name has them (with pkg1's other files)
    assert lab.vmctl("start", "-L", "-d", disk, "pkg2").rc == 0
    lab.wait_for(lambda: lab.console("pkg2").endswith("login: "), timeout=30)
    result = ssh(lab, address_of(lab, "pkg2")[0], key, "pkg_info; ls /var/db/pkg/rsync-3.4.1")
    assert result.out == ("rsync-3.4.1  mirroring/synchronization over low bandwidth links\n"
                          "xxhash-0.8.3 extremely fast non-cryptographic hash algorithm\n+CONTENTS\n+DESC\n"), result
    assert lab.vmctl("stop", "-f", "pkg2").rc == 0


def test_what_the_guest_writes_to_dev_console_is_on_the_vms_console(lab, key):
    # sys/dev/cons.c cnwrite(): a write to /dev/console goes to the console device, com0 on a vmd guest
    # (the installer's boot.conf `set tty com0`), which is the VM's tty that vmctl console (cu) reads.
    disk = installed_disk(lab, "con1", "con1.my.domain", key)
    assert lab.vmctl("start", "-L", "-d", disk, "con1").rc == 0
    lab.wait_for(lambda: lab.console("con1").endswith("login: "), timeout=30)
    address = address_of(lab, "con1")[0]
    result = ssh(lab, address, key, "echo 'pkg_add: to the console' | tee /dev/console; echo second line >/dev/console; echo rc=$?")
    assert result.rc == 0, result
    assert result.out.splitlines() == ["pkg_add: to the console", "rc=0"], result
    lab.wait_for(lambda: "second line\n" in lab.console("con1"), timeout=10)
    console = lab.console("con1")
    # appended after the login prompt (the boot's transcript is kept, never truncated by a writer's O_TRUNC)
    assert console.index("login: ") < console.index("pkg_add: to the console\n") < console.index("second line\n"), console
    assert lab.vmctl("stop", "-f", "con1").rc == 0
