"""The lab's stand-ins for OpenBSD base tools, each checked against its manual's behaviour.

dhcpd.conf verdicts are cross-checked with ISC dhcpd (`dhcpd -t -cf`) where it is installed."""

import base64
import json
import os
import shutil
import subprocess

import pytest

BIN = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "bin"))
ISC_DHCPD = "/usr/sbin/dhcpd"


@pytest.fixture(name="lab")
def fixture_lab(tmp_path):
    root = tmp_path / "lab"
    (root / "etc").mkdir(parents=True)
    (root / "dev").mkdir()
    return root


def run(lab, *argv, cwd=None, stdin=None):
    env = dict(os.environ, VMM_LAB_ROOT=str(lab), PATH=BIN + os.pathsep + os.environ["PATH"])
    return subprocess.run([os.path.join(BIN, argv[0])] + list(argv[1:]), env=env, cwd=cwd, input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)


# --- rcctl ---------------------------------------------------------------------------------

def test_rcctl_enable_writes_rc_conf_local_like_rcctl(lab):
    assert run(lab, "rcctl", "get", "vmd", "status").returncode == 1
    assert run(lab, "rcctl", "enable", "vmd").returncode == 0
    assert run(lab, "rcctl", "set", "vmd", "timeout", "120").returncode == 0
    assert (lab / "etc" / "rc.conf.local").read_text() == "vmd_flags=\nvmd_timeout=120\n"
    assert run(lab, "rcctl", "get", "vmd", "status").returncode == 0
    assert run(lab, "rcctl", "get", "vmd", "timeout").stdout == "120\n"
    # back to the default removes the line; disabling a daemon that is off by default removes its flags
    run(lab, "rcctl", "set", "vmd", "timeout", "30")
    run(lab, "rcctl", "disable", "vmd")
    assert not (lab / "etc" / "rc.conf.local").exists()


def test_rcctl_get_lists_variables_and_reports_disabled_by_exit_status(lab):
    result = run(lab, "rcctl", "get", "httpd")
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["httpd_class=daemon", "httpd_flags=NO", "httpd_logger=", "httpd_rtable=0",
                                          "httpd_timeout=30", "httpd_user=root"]


def test_rcctl_flags_need_an_enabled_daemon_and_unknown_services_exit_2(lab):
    assert run(lab, "rcctl", "set", "dhcpd", "flags", "em1").returncode == 1
    run(lab, "rcctl", "enable", "dhcpd")
    assert run(lab, "rcctl", "set", "dhcpd", "flags", "em1", "em2").returncode == 0
    assert run(lab, "rcctl", "get", "dhcpd", "flags").stdout == "em1 em2\n"
    result = run(lab, "rcctl", "get", "nosuchd")
    assert (result.returncode, result.stderr) == (2, "rcctl: service nosuchd does not exist\n")
    assert run(lab, "rcctl", "frobnicate", "vmd").stderr.startswith("usage:\trcctl get|getdef|set")


def test_rcctl_start_check_stop_and_disabled_daemons_need_force(lab):
    (lab / "etc" / "httpd.conf").write_text('server "a" {\n\tlisten on 127.0.0.1 port 80\n}\n')
    result = run(lab, "rcctl", "start", "httpd")
    assert result.returncode == 1 and "need -f to force start since httpd_flags=NO" in result.stderr
    assert run(lab, "rcctl", "check", "httpd").stdout == "httpd(failed)\n"
    assert run(lab, "rcctl", "-f", "start", "httpd").stdout == "httpd(ok)\n"
    assert run(lab, "rcctl", "check", "httpd").returncode == 0
    assert run(lab, "rcctl", "ls", "rogue").stdout == "httpd\n"
    assert run(lab, "rcctl", "stop", "httpd").stdout == "httpd(ok)\n"
    assert run(lab, "rcctl", "check", "httpd").returncode == 1


def test_rcctl_start_fails_when_the_daemon_refuses_its_configuration(lab):
    (lab / "etc" / "httpd.conf").write_text('server "a" {\n\tbogus\n}\n')
    run(lab, "rcctl", "enable", "httpd")
    result = run(lab, "rcctl", "start", "httpd")
    assert result.returncode == 1 and result.stdout == "httpd(failed)\n"
    assert ":2: syntax error" in result.stderr


def test_rcctl_controls_the_lab_vmd(tmp_path):
    lab = tmp_path / "lab"
    assert run(lab, "lab", "init").returncode == 0
    try:
        assert run(lab, "rcctl", "check", "vmd").stdout == "vmd(failed)\n"
        assert run(lab, "rcctl", "-f", "start", "vmd").stdout == "vmd(ok)\n"
        assert run(lab, "vmctl", "status").stdout.split()[:2] == ["ID", "PID"]
        assert run(lab, "rcctl", "-f", "reload", "vmd").stdout == "vmd(ok)\n"
        assert run(lab, "rcctl", "-f", "stop", "vmd").stdout == "vmd(ok)\n"
        assert "No such file or directory" in run(lab, "vmctl", "status").stderr
    finally:
        run(lab, "lab", "vmd", "stop")


# --- sysctl ----------------------------------------------------------------------------------

def test_sysctl_name_value_form_prints_old_and_new_and_keeps_the_value(lab):
    result = run(lab, "sysctl", "net.inet.ip.arpq.maxlen=1024")
    assert (result.returncode, result.stdout, result.stderr) == (0, "net.inet.ip.arpq.maxlen: 50 -> 1024\n", "")
    assert run(lab, "sysctl", "net.inet.ip.arpq.maxlen").stdout == "net.inet.ip.arpq.maxlen=1024\n"
    assert run(lab, "sysctl", "-n", "net.inet.ip.arpq.maxlen").stdout == "1024\n"


def test_sysctl_rejects_unknown_names_bad_integers_and_read_only_values(lab):
    assert run(lab, "sysctl", "foo.bar").stderr == "sysctl: top level name foo in foo.bar is invalid\n"
    assert run(lab, "sysctl", "net.inet.ip.forwarding=yes").returncode == 1
    assert run(lab, "sysctl", "kern.osrelease=9.9").returncode == 1
    assert run(lab, "sysctl", "-w", "net.inet.ip.forwarding=1").returncode == 1  # no -w on OpenBSD
    assert run(lab, "sysctl", "-n", "net.inet.ip.forwarding").stdout == "0\n"


# --- pfctl -------------------------------------------------------------------------------------

GOOD_PF = 'ext = "em0"\nset skip on lo\nblock return\npass out on $ext proto tcp to port { 22 \\\n 80 }\n'


def test_pfctl_n_accepts_a_valid_ruleset_and_loads_nothing(lab):
    (lab / "pf.conf").write_text(GOOD_PF)
    result = run(lab, "pfctl", "-nf", str(lab / "pf.conf"))
    assert (result.returncode, result.stderr) == (0, "")
    assert run(lab, "pfctl", "-sr").stdout == ""


@pytest.mark.parametrize("text, message", [
    ("pass in on { em0 em1\nblock\n", ":3: syntax error"),
    ("block\n}\n", ":2: syntax error"),
    ("frobnicate all\n", ":1: syntax error"),
    ("pass in on $nope\n", ":1: macro 'nope' not defined"),
    ('load anchor "a" from "/nonexistent/pf.anchor"\n', "pfctl: /nonexistent/pf.anchor: No such file or directory"),
])
def test_pfctl_n_rejects_what_pf_conf_grammar_refuses(lab, text, message):
    (lab / "pf.conf").write_text(text)
    result = run(lab, "pfctl", "-nf", str(lab / "pf.conf"))
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.endswith("pfctl: Syntax error in config file: pf rules not loaded\n")


def test_pfctl_f_loads_anchors_and_a_failed_load_keeps_the_old_rules(lab):
    (lab / "anchor.conf").write_text('net = "100.64.0.0/10"\nmatch out on egress from $net nat-to (egress)\n')
    (lab / "pf.conf").write_text(GOOD_PF + 'anchor "vmm"\nload anchor "vmm" from "%s"\n' % (lab / "anchor.conf"))
    assert run(lab, "pfctl", "-f", str(lab / "pf.conf")).returncode == 0
    loaded = run(lab, "pfctl", "-sr").stdout
    assert loaded.splitlines() == ["set skip on lo", "block return", "pass out on em0 proto tcp to port { 22 80 }",
                                   'anchor "vmm"']
    assert run(lab, "pfctl", "-a", "vmm", "-sr").stdout == "match out on egress from 100.64.0.0/10 nat-to (egress)\n"
    (lab / "anchor.conf").write_text("pass in on $undefined\n")
    assert run(lab, "pfctl", "-f", str(lab / "pf.conf")).returncode == 1
    assert run(lab, "pfctl", "-sr").stdout == loaded
    assert "nat-to" in run(lab, "pfctl", "-a", "vmm", "-sr").stdout


# --- ifconfig ------------------------------------------------------------------------------------

def test_ifconfig_switch_interfaces_auto_create_add_members_and_come_up(lab):
    assert run(lab, "ifconfig", "veb0").stderr == "ifconfig: veb0: no such interface\n"
    assert run(lab, "ifconfig", "veb0", "add", "em1", "up").returncode == 0
    shown = run(lab, "ifconfig", "veb0").stdout
    assert shown.startswith("veb0: flags=8843<UP,")
    assert "\tem1 flags=3<LEARNING,DISCOVER>\n" in shown
    assert run(lab, "ifconfig", "veb0", "add", "em1").returncode == 1
    assert run(lab, "ifconfig", "veb0", "create").stderr == "ifconfig: SIOCIFCREATE: File exists\n"
    assert run(lab, "ifconfig", "em9", "up").stderr == "ifconfig: em9: no such interface\n"
    assert run(lab, "ifconfig", "veb0", "destroy").returncode == 0
    assert run(lab, "ifconfig", "veb0").returncode == 1


def test_ifconfig_a_switch_member_keeps_its_own_down_state_and_forwards_nothing(lab):
    # if_veb.c veb_add_port: adding a port makes it promiscuous, never up
    assert run(lab, "ifconfig", "em1").stdout.startswith("em1: flags=8802<BROADCAST,SIMPLEX,MULTICAST>\n")
    assert run(lab, "ifconfig", "veb0", "add", "em1", "up").returncode == 0
    assert run(lab, "ifconfig", "em1").stdout.startswith("em1: flags=8902<BROADCAST,PROMISC,SIMPLEX,MULTICAST>\n")
    report = json.loads(run(lab, "lab", "show", "--json").stdout)["bridges"]
    assert report == {"veb0": {"up": True, "members": {"em1": False}, "forwarding": []}}
    assert "  veb0 up members=em1(down) forwarding=none\n" in run(lab, "lab", "show").stdout
    # the member's own `up` (hostname.em1) makes it forward
    assert run(lab, "ifconfig", "em1", "up").returncode == 0
    assert run(lab, "ifconfig", "em1").stdout.startswith("em1: flags=8943<UP,BROADCAST,RUNNING,PROMISC,SIMPLEX,MULTICAST>\n")
    assert json.loads(run(lab, "lab", "show", "--json").stdout)["bridges"]["veb0"]["forwarding"] == ["em1"]
    # a switch that is down forwards nothing either (veb_port_input)
    run(lab, "ifconfig", "veb0", "down")
    assert json.loads(run(lab, "lab", "show", "--json").stdout)["bridges"]["veb0"]["forwarding"] == []
    # leaving the switch ends promiscuous mode
    run(lab, "ifconfig", "veb0", "del", "em1")
    assert run(lab, "ifconfig", "em1").stdout.startswith("em1: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST>\n")


# --- MAKEDEV ---------------------------------------------------------------------------------------

def test_makedev_runs_with_sh_in_the_dev_directory_and_makes_only_what_is_asked(lab):
    shutil.copy(os.path.join(BIN, "MAKEDEV"), lab / "dev" / "MAKEDEV")
    result = subprocess.run(["sh", "MAKEDEV", "tap3", "pty1"], cwd=lab / "dev", check=False)
    assert result.returncode == 0
    names = set(os.listdir(lab / "dev")) - {"MAKEDEV"}
    assert "tap3" in names and "tap2" not in names
    assert {"ttyq0", "ptyq0", "ttyqZ"} <= names and "ttyp0" not in names
    assert len([n for n in names if n.startswith("ttyq")]) == 62
    assert subprocess.run(["sh", "MAKEDEV", "bogus0"], cwd=lab / "dev", check=False).returncode == 1


# --- httpd -n ---------------------------------------------------------------------------------------

def test_httpd_n_accepts_a_server_and_rejects_unknown_options_and_servers_without_listen(lab):
    conf = lab / "httpd.conf"
    conf.write_text('chroot "/var/www"\nserver "install" {\n\tlisten on 10.0.0.1 port 80\n\troot "/htdocs"\n'
                    '\tdirectory auto index\n}\n')
    result = run(lab, "httpd", "-n", "-f", str(conf))
    assert (result.returncode, result.stderr) == (0, "configuration OK\n")
    conf.write_text('server "install" {\n\tlisten on 10.0.0.1 port 80\n\tfrobnicate\n}\n')
    assert run(lab, "httpd", "-n", "-f", str(conf)).stderr == "%s:3: syntax error\n" % conf
    conf.write_text('server "install" {\n\troot "/htdocs"\n}\n')
    assert 'server "install" has no listen on' in run(lab, "httpd", "-n", "-f", str(conf)).stderr


# --- dhcpd -n (judged against ISC dhcpd -t) ---------------------------------------------------------

GOOD_DHCPD = """option domain-name "lab.example";
subnet 10.0.0.0 netmask 255.255.255.0 {
    option routers 10.0.0.1;
    option domain-name-servers 10.0.0.1, 192.0.2.53;
    range 10.0.0.100 10.0.0.199;
}
host web1 {
    hardware ethernet fe:e1:bb:d1:00:01;
    fixed-address 10.0.0.11;
    next-server 10.0.0.1;
    filename "auto_install";
}
"""
BAD_DHCPD = [
    GOOD_DHCPD.replace("subnet 10.0.0.0", "subnet 10.0.0.5"),
    GOOD_DHCPD.replace("fixed-address 10.0.0.11;", "fixed-address 10.0.0.11"),
    GOOD_DHCPD.replace("fe:e1:bb:d1:00:01", "fe:e1:bb:d1:00:zz"),
    GOOD_DHCPD.replace("range 10.0.0.100 10.0.0.199;", "range 10.0.1.100 10.0.1.199;"),
    GOOD_DHCPD + "}\n",
    GOOD_DHCPD.replace("host web1 {", "host web1"),
]


@pytest.mark.parametrize("text", [GOOD_DHCPD] + BAD_DHCPD)
def test_dhcpd_n_agrees_with_isc_dhcpd(lab, text):
    conf = lab / "dhcpd.conf"
    conf.write_text(text)
    lab_verdict = run(lab, "dhcpd", "-n", "-c", str(conf)).returncode
    assert lab_verdict == (0 if text == GOOD_DHCPD else 1)
    if os.path.exists(ISC_DHCPD):
        isc = subprocess.run([ISC_DHCPD, "-t", "-cf", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             check=False)
        assert (isc.returncode == 0) == (lab_verdict == 0)


def test_dhcpd_n_checks_the_interfaces_it_is_given(lab):
    (lab / "dhcpd.conf").write_text(GOOD_DHCPD)
    assert run(lab, "dhcpd", "-n", "-c", str(lab / "dhcpd.conf"), "em1").returncode == 0
    assert "em7: no such interface" in run(lab, "dhcpd", "-n", "-c", str(lab / "dhcpd.conf"), "em7").stderr


# --- sensorsd -----------------------------------------------------------------------------------------

def test_sensorsd_first_pass_runs_the_command_with_tokens_for_entries_by_name_or_type(lab):
    log = lab / "calls"
    script = lab / "alert"
    script.write_text('#!/bin/sh\necho "$*" >> %s\n' % log)
    script.chmod(0o755)
    (lab / "etc" / "sensorsd.conf").write_text(
        "# comment\ndrive:command=%s %%x %%t %%n %%s %%l %%2\nhw.sensors.cpu0.temp0:high=80C\n" % script)
    state = lab / "lab" / "basetools" / "sysctl.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"hw.sensors.sd1.drive0": "failed (sd1), CRITICAL"}))
    run(lab, "rcctl", "enable", "sensorsd")
    assert run(lab, "rcctl", "start", "sensorsd").stdout == "sensorsd(ok)\n"
    assert log.read_text().splitlines() == ["sd0 drive 0 OK within online", "sd1 drive 0 CRITICAL above failed"]


def test_sensorsd_refuses_bad_limits(lab):
    (lab / "etc" / "sensorsd.conf").write_text("hw.sensors.cpu0.temp0:high=hot\n")
    assert run(lab, "sensorsd").returncode == 1


# --- the interpreter that reports OpenBSD ------------------------------------------------------------------

def test_python3_openbsd_reports_openbsd_and_keeps_the_lab_for_scrubbed_environments(lab):
    code = ("import os, platform, subprocess; print(platform.system(), platform.release(), os.uname().sysname);"
            "print(subprocess.run(['sh', '-c', 'echo $VMM_LAB_ROOT'], env={'LANG': 'C'},"
            " stdout=subprocess.PIPE, universal_newlines=True).stdout.strip())")
    result = run(lab, "python3-openbsd", "-c", code)
    assert result.stdout.splitlines() == ["OpenBSD 7.8 OpenBSD", str(lab)]


def test_account_tools_refuse_to_touch_this_machine(lab):
    for tool in ("groupadd", "useradd", "usermod", "groupmod"):
        result = run(lab, tool, "somebody")
        assert result.returncode == 1 and "refused by the lab" in result.stderr


# --- signify -C (against the signed SHA256 of `lab mirror`) ------------------------------------------

@pytest.fixture(name="signed_tree")
def fixture_signed_tree(lab):
    result = run(lab, "lab", "mirror", str(lab / "mirror"), "7.8", "amd64")
    assert result.returncode == 0, result.stderr
    return lab / "mirror" / "7.8" / "amd64", lab / "etc" / "signify" / "openbsd-78-base.pub"


def signify_check(lab, setdir, key, *files):
    return run(lab, "signify", "-C", "-p", str(key), "-x", "SHA256.sig", *files, cwd=str(setdir))


def test_lab_mirror_installs_the_release_key_as_signify_g_writes_it(signed_tree):
    _setdir, key = signed_tree
    comment, blob = key.read_text().splitlines()
    assert comment == "untrusted comment: openbsd 78 base public key"
    assert len(base64.b64decode(blob)) == 42 and base64.b64decode(blob)[:2] == b"Ed"


def test_signify_c_verifies_the_signature_then_each_named_file(lab, signed_tree):
    setdir, key = signed_tree
    result = signify_check(lab, setdir, key, "bsd.rd", "base78.tgz")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Signature Verified\nbsd.rd: OK\nbase78.tgz: OK\n", "")
    assert signify_check(lab, setdir, key).stdout.count(": OK\n") == 13  # no files: every line of SHA256


def test_signify_c_fails_on_a_changed_set_or_a_file_not_listed(lab, signed_tree):
    setdir, key = signed_tree
    with open(setdir / "man78.tgz", "ab") as handle:
        handle.write(b"tampered")
    result = signify_check(lab, setdir, key, "bsd.rd", "man78.tgz", "site78.tgz")
    assert (result.returncode, result.stdout, result.stderr) == (1, "Signature Verified\nbsd.rd: OK\n",
                                                                 "man78.tgz: FAIL\nsite78.tgz: FAIL\n")


def test_signify_c_refuses_a_missing_key_another_key_and_a_changed_list(lab, signed_tree):
    setdir, key = signed_tree
    result = signify_check(lab, setdir, lab / "etc" / "signify" / "openbsd-77-base.pub", "bsd.rd")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "signify: can't open %s for reading: No such file or directory\n" % (
        lab / "etc" / "signify" / "openbsd-77-base.pub")
    run(lab, "lab", "mirror", str(lab / "mirror79"), "7.9", "amd64")
    result = signify_check(lab, setdir, lab / "etc" / "signify" / "openbsd-79-base.pub", "bsd.rd")
    assert (result.returncode, result.stderr) == (1, "signify: verification failed: checked against wrong key\n")
    signed = (setdir / "SHA256.sig").read_bytes()
    (setdir / "SHA256.sig").write_bytes(signed.replace(b"SHA256 (bsd.rd) = ", b"SHA256 (bsd.rd) = 0", 1))
    result = signify_check(lab, setdir, key, "bsd.rd")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "signify: signature verification failed\n")
    (setdir / "SHA256.sig").write_bytes(b"not a signature\n")
    assert signify_check(lab, setdir, key).stderr == (
        "signify: invalid comment in SHA256.sig; must start with 'untrusted comment: '\n")
    assert run(lab, "signify", "-C", "-x", "SHA256.sig", cwd=str(setdir)).stderr.startswith("must specify pubkey and sigfile\nusage:")
