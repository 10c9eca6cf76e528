"""The lab's DHCP server (labsim/dhcp_server.py): what OpenBSD's dhcpd, started by rcctl, offers a
guest on a switch. The host is set up with the lab's own ifconfig and rcctl, as the roles do; the
configurations are also judged by ISC `dhcpd -t -cf` where it is installed."""

import json
import os
import subprocess
import sys

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import dhcp_server  # noqa: E402  pylint: disable=wrong-import-position

from conftest import run_on  # noqa: E402  pylint: disable=wrong-import-position

ISC_DHCPD = "/usr/sbin/dhcpd"

CONF = """option domain-name "lab.example";

subnet 10.0.0.0 netmask 255.255.255.0 {
    option routers 10.0.0.1;
    option domain-name-servers 10.0.0.1, 192.0.2.53;
}

host web1 {
    hardware ethernet FE:E1:BB:D1:00:01;
    fixed-address 10.0.0.11;
    option host-name "web1";
    next-server 10.0.0.1;
    filename "auto_install";
}

host db1 {
    hardware ethernet fe:e1:bb:d1:00:02;
    fixed-address 10.0.0.12;
    option host-name "db1";
}
"""
WEB1 = "fe:e1:bb:d1:00:01"


def isc_accepts(path):
    if not os.path.exists(ISC_DHCPD):
        return True
    return subprocess.run([ISC_DHCPD, "-t", "-cf", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False).returncode == 0


def ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def serve(host, text, *interfaces):
    """dhcpd.conf with text, vport0 (10.0.0.1/24) as a member of veb0, dhcpd enabled with -c and interfaces."""
    conf = host / "etc" / "dhcpd.conf"
    conf.write_text(text)
    assert isc_accepts(conf)
    ok(run_on(host, "ifconfig", "vport0", "inet", "10.0.0.1/24", "up"))
    ok(run_on(host, "ifconfig", "veb0", "add", "vport0", "up"))
    ok(run_on(host, "rcctl", "enable", "dhcpd"))
    ok(run_on(host, "rcctl", "set", "dhcpd", "flags", "-c", str(conf), *interfaces))
    return conf


def offer(host, interface, mac):
    return dhcp_server.lease(str(host), interface, mac)


def test_a_host_block_gives_its_fixed_address_to_its_mac_in_any_case(host):
    serve(host, CONF, "vport0")
    assert ok(run_on(host, "rcctl", "start", "dhcpd")).stdout == "dhcpd(ok)\n"
    expected = {"address": "10.0.0.11", "prefixlen": 24, "routers": ["10.0.0.1"], "host_name": "web1",
                "domain_name_servers": ["10.0.0.1", "192.0.2.53"], "domain_name": "lab.example",
                "next_server": "10.0.0.1", "filename": "auto_install"}
    # the file says FE:E1:..., the guest's NIC fe:e1:...; dhcpd compares the octets
    assert offer(host, "vport0", WEB1) == expected
    assert offer(host, "vport0", WEB1.upper()) == expected
    # a broadcast on the switch reaches dhcpd on its vport member
    assert offer(host, "veb0", WEB1) == expected
    db1 = offer(host, "veb0", "fe:e1:bb:d1:00:02")
    assert (db1["address"], db1["host_name"], db1["filename"]) == ("10.0.0.12", "db1", None)
    # no next-server for db1: the address of the interface dhcpd heard it on (dhcp.c dhcp_reply)
    assert db1["next_server"] == "10.0.0.1"


def test_a_mac_without_host_block_on_a_subnet_without_range_gets_nothing(host):
    serve(host, CONF, "vport0")
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    assert offer(host, "veb0", "fe:e1:bb:d1:00:03") is None
    assert not (host / "lab" / "basetools" / "dhcpd-leases.json").exists()


def test_a_range_gives_the_lowest_free_address_skipping_fixed_ones_and_keeps_it_for_the_mac(host):
    text = CONF.replace("    option routers 10.0.0.1;\n", "    option routers 10.0.0.1;\n    range 10.0.0.11 10.0.0.13;\n")
    serve(host, text, "vport0")
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    # 10.0.0.11 and .12 are web1's and db1's fixed addresses
    first = offer(host, "veb0", "fe:e1:bb:d1:00:03")
    assert (first["address"], first["prefixlen"], first["host_name"]) == ("10.0.0.13", 24, None)
    assert offer(host, "veb0", "fe:e1:bb:d1:00:04") is None     # the range is used up
    assert offer(host, "veb0", "fe:e1:bb:d1:00:03")["address"] == "10.0.0.13"
    # the lease outlives a restart, as /var/db/dhcpd.leases does
    ok(run_on(host, "rcctl", "restart", "dhcpd"))
    assert offer(host, "veb0", "FE:E1:BB:D1:00:03")["address"] == "10.0.0.13"
    leases = json.loads((host / "lab" / "basetools" / "dhcpd-leases.json").read_text())
    assert leases == {"fe:e1:bb:d1:00:03": ["10.0.0.13"]}


def test_dynamic_leases_count_up_from_the_bottom_of_the_first_range(host):
    text = CONF.replace("    option routers 10.0.0.1;\n", "    option routers 10.0.0.1;\n    range 10.0.0.120 10.0.0.100;\n")
    serve(host, text, "vport0")
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    given = [offer(host, "veb0", "fe:e1:bb:d1:01:%02x" % n)["address"] for n in range(3)]
    assert given == ["10.0.0.100", "10.0.0.101", "10.0.0.102"]
    assert offer(host, "veb0", "fe:e1:bb:d1:01:01")["address"] == "10.0.0.101"


def test_a_fixed_address_off_the_interfaces_subnet_is_not_offered(host):
    off = CONF.replace("fixed-address 10.0.0.11;", "fixed-address 10.9.0.11;")
    off += "\nsubnet 10.9.0.0 netmask 255.255.255.0 {\n}\n"
    serve(host, off, "vport0")
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    assert offer(host, "veb0", WEB1) is None
    # with a range on the interface's subnet the same MAC is an unknown client there (dhcp.c
    # mockup_lease finds no address on the shared network): a dynamic lease, without web1's options
    ok(run_on(host, "rcctl", "stop", "dhcpd"))
    (host / "etc" / "dhcpd.conf").write_text(off.replace("    option routers 10.0.0.1;\n",
                                                         "    option routers 10.0.0.1;\n    range 10.0.0.50 10.0.0.60;\n"))
    assert isc_accepts(host / "etc" / "dhcpd.conf")
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    dynamic = offer(host, "veb0", WEB1)
    assert (dynamic["address"], dynamic["host_name"], dynamic["filename"]) == ("10.0.0.50", None, None)


def test_nothing_is_offered_while_dhcpd_is_not_running(host):
    serve(host, CONF, "vport0")
    assert offer(host, "veb0", WEB1) is None        # enabled, never started
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    assert offer(host, "veb0", WEB1)["address"] == "10.0.0.11"
    assert ok(run_on(host, "rcctl", "stop", "dhcpd")).stdout == "dhcpd(ok)\n"
    assert run_on(host, "rcctl", "check", "dhcpd").returncode == 1
    assert offer(host, "veb0", WEB1) is None
    assert not (host / "lab" / "basetools" / "dhcpd.json").exists()


def test_a_changed_dhcpd_conf_counts_only_after_a_restart(host):
    conf = serve(host, CONF, "vport0")
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    conf.write_text(CONF.replace("fixed-address 10.0.0.11;", "fixed-address 10.0.0.21;")
                    .replace('"web1"', '"www1"'))
    assert isc_accepts(conf)
    assert ok(run_on(host, "rcctl", "start", "dhcpd")).stdout == ""   # already running: nothing read again
    assert (offer(host, "veb0", WEB1)["address"], offer(host, "veb0", WEB1)["host_name"]) == ("10.0.0.11", "web1")
    ok(run_on(host, "rcctl", "restart", "dhcpd"))
    assert (offer(host, "veb0", WEB1)["address"], offer(host, "veb0", WEB1)["host_name"]) == ("10.0.0.21", "www1")
    # a broken file keeps the old answers until the restart that fails (dhcpd then is not running)
    conf.write_text(CONF.replace("fixed-address 10.0.0.11;", "fixed-address 10.0.0.11"))
    assert offer(host, "veb0", WEB1)["address"] == "10.0.0.21"
    result = run_on(host, "rcctl", "restart", "dhcpd")
    assert (result.returncode, result.stdout) == (1, "dhcpd(failed)\n")
    assert "Configuration file errors encountered" in result.stderr
    assert offer(host, "veb0", WEB1) is None


def test_only_the_interfaces_dhcpd_listens_on_answer(host):
    serve(host, CONF + "\nsubnet 10.1.0.0 netmask 255.255.255.0 {\n}\n", "vport0")
    ok(run_on(host, "ifconfig", "vport1", "inet", "10.1.0.1/24", "up"))
    ok(run_on(host, "ifconfig", "veb1", "add", "vport1", "up"))
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    assert offer(host, "veb1", WEB1) is None        # vport1 is not in the flags
    assert offer(host, "vport1", WEB1) is None
    assert offer(host, "em0", WEB1) is None         # 192.0.2.10: no subnet, not named anyway
    # no interface named: every interface with an address on a declared subnet (vport0, vport1)
    ok(run_on(host, "rcctl", "set", "dhcpd", "flags", "-c", str(host / "etc" / "dhcpd.conf")))
    result = ok(run_on(host, "rcctl", "restart", "dhcpd"))
    assert "Can't listen on em0 - dhcpd.conf has no subnet declaration for 192.0.2.10." in result.stderr
    assert offer(host, "veb0", WEB1)["address"] == "10.0.0.11"
    assert offer(host, "veb1", WEB1) is None        # web1's fixed address is not on 10.1.0.0/24
    snapshot = json.loads((host / "lab" / "basetools" / "dhcpd.json").read_text())
    assert sorted(snapshot["listen"]) == ["vport0", "vport1"]


def test_a_receiving_interface_that_is_down_hears_nothing(host):
    serve(host, CONF, "vport0")
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    ok(run_on(host, "ifconfig", "vport0", "down"))
    assert offer(host, "veb0", WEB1) is None
    assert offer(host, "vport0", WEB1) is None
    ok(run_on(host, "ifconfig", "vport0", "up"))
    assert offer(host, "veb0", WEB1)["address"] == "10.0.0.11"


def test_start_fails_without_an_interface_to_listen_on(host):
    serve(host, CONF, "em1")        # em1: no address on a fresh host
    result = run_on(host, "rcctl", "start", "dhcpd")
    assert (result.returncode, result.stdout) == (1, "dhcpd(failed)\n")
    assert result.stderr.splitlines() == ["Can't listen on em1 - it has no IP address.",
                                          "fatal in dhcpd: No interfaces to listen on."]
    assert run_on(host, "rcctl", "check", "dhcpd").returncode == 1
    # the address must be there when dhcpd starts; one added later is never learned
    ok(run_on(host, "ifconfig", "em1", "inet", "10.0.0.2/24", "up"))
    assert offer(host, "em1", WEB1) is None
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    assert offer(host, "em1", WEB1)["next_server"] == "10.0.0.1"
    assert offer(host, "em1", "fe:e1:bb:d1:00:02")["next_server"] == "10.0.0.2"


def test_a_global_option_beats_the_subnets_for_a_host_declared_at_the_top(host):
    # confpars.c: a host's group is a clone of the global group, options included, and ack_lease
    # lets the host's options supersede the subnet's
    text = CONF.replace('option domain-name "lab.example";', 'option domain-name "lab.example";\n'
                        'option domain-name-servers 192.0.2.99;')
    text += "\nsubnet 10.1.0.0 netmask 255.255.255.0 {\n    option domain-name-servers 10.1.0.1;\n    range 10.1.0.5 10.1.0.9;\n}\n"
    serve(host, text)
    ok(run_on(host, "ifconfig", "vport1", "inet", "10.1.0.1/24", "up"))
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    assert offer(host, "vport0", WEB1)["domain_name_servers"] == ["192.0.2.99"]
    assert offer(host, "vport1", "fe:e1:bb:d1:00:05")["domain_name_servers"] == ["10.1.0.1"]


def test_deny_unknown_clients_and_deny_booting(host):
    text = CONF.replace("    option routers 10.0.0.1;\n", "    option routers 10.0.0.1;\n    range 10.0.0.50 10.0.0.60;\n"
                        "    deny unknown-clients;\n").replace('option host-name "db1";', 'option host-name "db1";\n    deny booting;')
    serve(host, text, "vport0")
    ok(run_on(host, "rcctl", "start", "dhcpd"))
    assert offer(host, "veb0", "fe:e1:bb:d1:00:03") is None
    assert offer(host, "veb0", "fe:e1:bb:d1:00:02") is None
    assert offer(host, "veb0", WEB1)["address"] == "10.0.0.11"


@pytest.mark.parametrize("interface, mac, name", [("veb0", "fe:e1:bb:d1:00", "mac"), ("veb0", "fe:e1:bb:d1:00:zz", "mac"),
                                                  ("veb0", "fe:e1:bb:d1:00:01\n", "mac"), ("veb 0", WEB1, "interface")])
def test_lease_refuses_malformed_arguments_naming_them(host, interface, mac, name):
    with pytest.raises(ValueError, match="^%s: " % name):
        offer(host, interface, mac)
