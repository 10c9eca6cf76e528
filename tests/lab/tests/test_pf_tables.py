"""pf tables in the lab: pfctl -t/-T (sbin/pfctl/pfctl_table.c pfctl_table(): the counts on stderr,
"Table does not exist." for ESRCH, `add` creating a missing table) and `from <table>` in the packet
path (sys/net/pf_table.c pfr_attach_table(): a rule's table is its ruleset's, else the main one's).
"""

import json
import os
import sys

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import network  # noqa: E402  pylint: disable=wrong-import-position

from conftest import run_on as run  # noqa: E402  pylint: disable=wrong-import-position


def start_httpd(root):
    (root / "etc" / "httpd.conf").write_text('chroot "%s/var/www"\nserver "install" {\n\tlisten on 127.0.0.1 port 80\n'
                                             '\troot "/htdocs"\n}\n' % root)
    return run(root, "rcctl", "-f", "start", "httpd")


def load_pf(root, anchor_rules, enable=True):
    (root / "etc" / "pf.openbsd-vmm.conf").write_text(anchor_rules)
    (root / "etc" / "pf.conf").write_text('anchor "openbsd-vmm"\nload anchor "openbsd-vmm" from "%s"\n'
                                          % (root / "etc" / "pf.openbsd-vmm.conf"))
    assert run(root, "pfctl", "-f", str(root / "etc" / "pf.conf")).returncode == 0
    if enable:
        run(root, "pfctl", "-e")


RDR_TABLE = ("table <vmm_install_clients> persist\n"
             "pass in quick on tap inet proto tcp from <vmm_install_clients> to 100.64.0.0/10 port 80 "
             "rdr-to 127.0.0.1 port 80\n")


def test_pfctl_tables_add_show_delete_flush_as_pfctl_table_c_says(host):
    load_pf(host, RDR_TABLE)
    table = ("-a", "openbsd-vmm", "-t", "vmm_install_clients")
    assert run(host, "pfctl", *table, "-T", "show").stdout == ""
    result = run(host, "pfctl", *table, "-T", "add", "100.64.4.3")
    assert (result.returncode, result.stderr) == (0, "1/1 addresses added.\n")
    assert run(host, "pfctl", *table, "-T", "add", "100.64.4.3", "100.64.5.3/32").stderr == "1/2 addresses added.\n"
    assert run(host, "pfctl", *table, "-T", "show").stdout == "   100.64.4.3\n   100.64.5.3\n"
    assert run(host, "pfctl", *table, "-T", "delete", "100.64.4.3").stderr == "1/1 addresses deleted.\n"
    assert run(host, "pfctl", *table, "-T", "delete", "100.64.4.3").stderr == "0/1 addresses deleted.\n"
    assert run(host, "pfctl", *table, "-T", "flush").stderr == "1 addresses deleted.\n"
    result = run(host, "pfctl", "-a", "openbsd-vmm", "-t", "nosuch", "-T", "show")
    assert (result.returncode, result.stderr) == (1, "pfctl: Table does not exist.\n")
    result = run(host, "pfctl", "-a", "openbsd-vmm", "-t", "other", "-T", "add", "192.0.2.1")
    assert (result.returncode, result.stderr) == (0, "1 table created.\n1/1 addresses added.\n")
    result = run(host, "pfctl", *table, "-T", "add", "not-an-address")
    assert (result.returncode, result.stderr) == (1, 'pfctl: illegal address: "not-an-address"\n')
    # reloading the ruleset redefines the table with the file's addresses (none)
    run(host, "pfctl", *table, "-T", "add", "100.64.4.3")
    load_pf(host, RDR_TABLE, enable=False)
    assert run(host, "pfctl", *table, "-T", "show").stdout == ""


def test_a_table_in_the_rdr_rule_lets_only_its_addresses_reach_httpd(host):
    assert start_httpd(host).returncode == 0
    real = json.loads((host / "lab" / "basetools" / "httpd.json").read_text())["listeners"][0]["real_port"]
    load_pf(host, RDR_TABLE)
    # nobody in the table: no VM reaches httpd through the rdr
    with pytest.raises(ConnectionRefusedError):
        network.connect("tap0", "100.64.4.3", "100.64.4.2", 80, own_address="100.64.4.2")
    assert run(host, "pfctl", "-a", "openbsd-vmm", "-t", "vmm_install_clients", "-T", "add", "100.64.4.3").returncode == 0
    assert network.connect("tap0", "100.64.4.3", "100.64.4.2", 80, own_address="100.64.4.2") == ("127.0.0.1", real)
    # another VM, another tap: refused
    with pytest.raises(ConnectionRefusedError):
        network.connect("tap1", "100.64.5.3", "100.64.5.2", 80, own_address="100.64.5.2")
    assert run(host, "pfctl", "-a", "openbsd-vmm", "-t", "vmm_install_clients", "-T", "delete", "100.64.4.3").returncode == 0
    with pytest.raises(ConnectionRefusedError):
        network.connect("tap0", "100.64.4.3", "100.64.4.2", 80, own_address="100.64.4.2")


def test_pfctl_table_changes_from_concurrent_runs_are_all_kept(host):
    # The kernel changes a table in one ioctl (sys/net/pf_ioctl.c pfioctl() DIOCRADDADDRS / DIOCRDELADDRS, under
    # PF_LOCK): two pfctl -T add at once (two image builds adding their build VMs) both land.
    import concurrent.futures
    load_pf(host, RDR_TABLE)
    table = ("-a", "openbsd-vmm", "-t", "vmm_install_clients")
    addresses = ["100.64.%d.3" % index for index in range(1, 25)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda address: run(host, "pfctl", *table, "-T", "add", address), addresses))
    assert [result.returncode for result in results] == [0] * len(addresses)
    shown = run(host, "pfctl", *table, "-T", "show").stdout.split()
    assert sorted(shown) == sorted(addresses)
