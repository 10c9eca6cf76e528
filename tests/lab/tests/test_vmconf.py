"""The lab's vm.conf parser (labsim.vmconf) and `vmd -n` against vmconf-grammar.md.

Every test writes a vm.conf into a temporary directory, runs the lab's `vmd -n -f vm.conf`
from there (so messages read `vm.conf:<line>: ...`) and checks the exact stderr and exit
code, or the parsed VmSpec/SwitchSpec values.
"""

import grp
import io
import os
import pwd
import sys

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import vmconf, vmd_cli  # noqa: E402  pylint: disable=wrong-import-position

from conftest import reference_text  # noqa: E402  pylint: disable=wrong-import-position

OK = "configuration OK\n"
SYNTAX = "vm.conf:%d: syntax error\n"
ROOT_GROUP = grp.getgrgid(0).gr_name
ROOT_USER = pwd.getpwuid(0).pw_name


@pytest.fixture
def conf(tmp_path, monkeypatch):
    """Write vm.conf (and disk/kernel files) in a temp dir; run vmd -n on it."""
    monkeypatch.chdir(tmp_path)
    for name in ("disk.img", "disk2.img", "bsd.rd", "cd.iso"):
        (tmp_path / name).write_bytes(b"")

    class Conf:
        dir = str(tmp_path)

        @staticmethod
        def check(text, *args, name="vm.conf"):
            with open(name, "w") as handle:
                handle.write(text)
            err = io.StringIO()
            code = vmd_cli.main(["-n", "-f", name] + list(args), stderr=err)
            return code, err.getvalue()

        @staticmethod
        def parse(text, **kwargs):
            with open("vm.conf", "w") as handle:
                handle.write(text)
            return vmconf.parse_file("vm.conf", test_mode=True, **kwargs)

    return Conf


def ok(result):
    assert result == (0, OK)


def fails(result, *lines):
    assert result == (1, "".join(lines))


# ---------------------------------------------------------------- lexical rules

def test_comments_blank_lines_and_missing_final_newline(conf):
    ok(conf.check('# a comment\n\n   \t\nvm "a" { memory 1G }   # trailing comment\n# last'))
    ok(conf.check('vm "a" { memory 1G }'))


def test_backslash_newline_joins_lines_and_counts_them(conf):
    spec = conf.parse('vm "a" {\n\tdisk \\\n\t"disk.img"\n}\n').vms[0]
    assert spec.disks == [(os.path.join(conf.dir, "disk.img"), None)]
    fails(conf.check('vm "a" \\\n{\n\tmemory 1G\n}\nfoo\n'), SYNTAX % 5)


def test_both_quote_kinds_and_their_escapes(conf):
    vms = conf.parse('vm "a\\"b" { cdrom "x\\ y\\\tz" }\n'
                     "vm 'c\\'d' { cdrom 'e\\\"f' }\n"
                     'vm "g" { cdrom "a\\b\\nc" }\n').vms
    assert [vm.name for vm in vms] == ['a"b', "c'd", "g"]
    # escaped quote char, space and tab yield that char; any other backslash stays
    assert [vm.cdrom for vm in vms] == ["x y\tz", 'e\\"f', "a\\b\\nc"]


def test_newline_inside_quotes_is_dropped_but_counted(conf):
    spec = conf.parse('vm "a" { cdrom "one\ntwo" }\n').vms[0]
    assert spec.cdrom == "onetwo"
    fails(conf.check('vm "a" { cdrom "one\ntwo" }\nbogus\n'), SYNTAX % 3)


def test_backslash_newline_inside_quotes_continues_the_string(conf):
    assert conf.parse('vm "a" { cdrom "ab\\\ncd" }\n').vms[0].cdrom == "abcd"


def test_unterminated_quote(conf):
    # the lexer then returns end of file, which the grammar does not accept inside a block
    fails(conf.check('vm "a" {\n\tcdrom "x\n}\n'),
          "vm.conf:2: reached end of file while parsing quoted string\n", SYNTAX % 2)
    fails(conf.check('\nm = "x\n'), "vm.conf:2: reached end of file while parsing quoted string\n", SYNTAX % 2)


def test_double_backslash_before_quote_does_not_end_the_string(conf):
    # the first backslash is kept and the second one escapes the quote
    fails(conf.check('vm "a" { cdrom "x\\\\" }\n'),
          "vm.conf:1: reached end of file while parsing quoted string\n", SYNTAX % 1)


def test_nul_byte_in_quotes(conf):
    # the lexer's own "syntax error", then the parser's for the ERROR token; the lexer
    # already skipped to the end of the line, so recovery swallows line 2 as well
    fails(conf.check('vm "a" { cdrom "x\0y" }\nvm "b" { bogus }\n'), SYNTAX % 1, SYNTAX % 1)


def test_nul_byte_outside_quotes_ends_the_input(conf):
    # yylex() hands the NUL char to yacc as token 0, which means end of input
    ok(conf.check('vm "a" { memory 1G }\n\0bogus\n'))
    fails(conf.check('vm "a" {\n\tmemory \0 1G\n}\nbogus\n'), SYNTAX % 2)


@pytest.mark.parametrize("name", ["web1", "a-b", "a.b", "a_b", "_x", "/x", ":x", "a:b/c.d-e@f"])
def test_unquoted_names(conf, name):
    assert conf.parse('vm %s { memory 1G }\n' % name).vms[0].name == name


@pytest.mark.parametrize("name", ["-a", ".a", "123", "1", "a#b", "a=b", "a,b", "a{b", "a}b",
                                  "a(b", "a!b", "@a", "~a"])
def test_names_that_must_be_quoted(conf, name):
    fails(conf.check('vm %s { memory 1G }\n' % name), SYNTAX % 1)
    assert conf.parse('vm "%s" { memory 1G }\n' % name).vms[0].name == name


@pytest.mark.parametrize("word", sorted(vmconf.KEYWORDS))
def test_keywords_must_be_quoted_as_names(conf, word):
    fails(conf.check('vm %s { memory 1G }\n' % word), SYNTAX % 1)
    fails(conf.check('switch %s { interface veb0 }\n' % word), SYNTAX % 1)
    assert conf.parse('vm "%s" { memory 1G }\n' % word).vms[0].name == word


def test_reserved_but_unused_keywords(conf):
    for word in ("add", "id", "size"):
        fails(conf.check('vm "a" {\n\t%s 1\n}\n' % word), SYNTAX % 2)


def test_numbers_versus_strings(conf):
    config = conf.parse('local prefix 10.0.0.0/16\n'
                        'vm "a" {\n\tmemory 512M\n\tinterface lladdr 00:11:22:33:44:55\n}\n')
    assert config.local_prefix == "10.0.0.0/16"
    assert config.vms[0].memory == 512 << 20
    assert config.vms[0].interfaces[0]["lladdr"] == "00:11:22:33:44:55"
    # a bare number where a string is wanted, a quoted one where a number is wanted
    fails(conf.check('vm "a" { cdrom 12 }\n'), SYNTAX % 1)
    fails(conf.check('vm "a" { interfaces "2" }\n'), SYNTAX % 1)
    fails(conf.check('switch "s" {\n\tinterface veb0\n\trdomain "1"\n}\n'), SYNTAX % 3)
    fails(conf.check('staggered start parallel "2" delay 3\n'), SYNTAX % 1)
    # 10/8 lexes as NUMBER then "/8"
    fails(conf.check('local prefix 10/8\n'), SYNTAX % 1)
    ok(conf.check('local prefix "10/8"\n'))


def test_string_too_long(conf):
    # quoted strings hold at most 8094 chars, unquoted words 8095 (parse.y's 8096-byte buffer)
    assert conf.check('a = "%s"\nb = %s\n' % ("q" * 8094, "w" * 8095)) == (
        0, "warning: macro 'a' not used\nwarning: macro 'b' not used\n" + OK)
    fails(conf.check('a = "%s"\nbogus\nvm "v" { memory 1G }\n' % ("q" * 8095)),
          "vm.conf:1: string too long\n", SYNTAX % 1)
    fails(conf.check('a = %s\nbogus\nvm "v" { memory 1G }\n' % ("w" * 8096)),
          "vm.conf:1: string too long\n", SYNTAX % 1)


def test_path_length_limits(conf):
    fails(conf.check('vm "a" {\n\tcdrom "%s"\n}\n' % ("c" * 1024)), "vm.conf:2: cdrom name too long\n")
    assert conf.parse('vm "a" { cdrom "%s" }\n' % ("c" * 1023)).vms[0].cdrom == "c" * 1023
    # ax_path is a sockaddr_un path (104 bytes on OpenBSD)
    fails(conf.check('agentx path "/%s"\n' % ("p" * 103)), "vm.conf:1: agentx path too large\n")
    assert conf.parse('agentx path "/%s"\n' % ("p" * 102)).agentx["path"] == "/" + "p" * 102


def test_comment_right_after_a_number_makes_it_a_string(conf):
    # '#' cannot end a NUMBER, so "2" is re-read as a word
    fails(conf.check('vm "a" {\n\tinterfaces 2# two\n}\n'), SYNTAX % 2)
    assert conf.parse('vm "a" {\n\tinterfaces 2 # two\n}\n').vms[0].interfaces_count == 2
    assert conf.parse('vm "a" {\n\tinterfaces 2}\n').vms[0].interfaces_count == 2


def test_number_out_of_range(conf):
    fails(conf.check('vm "a" {\n\tinterfaces 99999999999999999999\n}\n'),
          'vm.conf:2: "99999999999999999999" invalid number: too large\n', SYNTAX % 2)


def test_lone_dash_and_negative_numbers(conf):
    fails(conf.check('vm "a" { interfaces -1 }\n'), "vm.conf:1: too many interfaces: -1\n")
    fails(conf.check('vm "a" { cdrom -x }\n'), SYNTAX % 1)


def test_adjacent_strings_are_concatenated(conf):
    disk = os.path.join(conf.dir, "disk.img")
    spec = conf.parse('dir = "%s"\nvm "a" {\n\tdisk $dir "/disk" ".img"\n\tcdrom %s/ cd.iso\n}\n'
                      % (conf.dir, conf.dir)).vms[0]
    assert spec.disks == [(disk, None)]
    assert spec.cdrom == conf.dir + "/cd.iso"
    assert conf.parse('vm "a" "b" { memory 1G }\n').vms[0].name == "ab"
    assert conf.parse('vm a b { memory 1G }\n').vms[0].name == "ab"


def test_unquoted_backslash_is_dropped(conf):
    assert conf.parse('vm a\\b { memory 1G }\n').vms[0].name == "ab"
    assert conf.parse('vm a\\\\b { memory 1G }\n').vms[0].name == "a\\b"


def test_carriage_return_is_a_syntax_error(conf):
    fails(conf.check('vm "a" { memory 1G }\r\n'), SYNTAX % 1)


# ---------------------------------------------------------------- macros

def test_macro_definition_and_use(conf):
    config = conf.parse('mem = "2G"\nname="web"\nvm $name { memory $mem }\n')
    assert (config.vms[0].name, config.vms[0].memory) == ("web", 2 << 30)
    assert config.warnings == []


def test_macro_expands_to_several_tokens(conf):
    spec = conf.parse('opts = "memory 1G"\nvm "a" {\n\t$opts\n}\n').vms[0]
    assert spec.memory == 1 << 30


def test_undefined_macro_swallows_the_next_line(conf):
    fails(conf.check('vm "a" {\n\tmemory $nope\n\tbogus line\n}\nvm "b" { memory 1G }\nalso bogus\n'),
          "vm.conf:2: macro 'nope' not defined\n", SYNTAX % 2, SYNTAX % 6)


def test_dollar_inside_quotes_or_words_is_literal(conf):
    vms = conf.parse('vm "a" { cdrom "$x" }\nvm "b" { cdrom a$x }\n').vms
    assert [vm.cdrom for vm in vms] == ["$x", "a$x"]


def test_dollar_inside_an_expansion_is_not_expanded(conf):
    fails(conf.check('a = "1G"\nb = "$a"\nvm "x" { memory $b }\n'), SYNTAX % 3, "warning: macro 'a' not used\n")


def test_later_macro_definition_overrides(conf):
    code, err = conf.check('m = "1G"\nm = "2G"\nvm "a" { memory $m }\n')
    assert (code, err) == (0, OK)
    assert conf.parse('m = "1G"\nm = "2G"\nvm "a" { memory $m }\n').vms[0].memory == 2 << 30


def test_unused_macro_warning(conf):
    assert conf.check('a = "x"\nm = "1G"\nvm "v" { memory $m }\nb = "y"\n') == (
        0, "warning: macro 'a' not used\nwarning: macro 'b' not used\n" + OK)
    # a redefinition after use is a new, unused macro
    assert conf.check('m = "1G"\nvm "v" { memory $m }\nm = "2G"\n') == (
        0, "warning: macro 'm' not used\n" + OK)


def test_command_line_macros_persist(conf):
    text = 'm = "1G"\nvm "v" { memory $m }\n'
    assert conf.check(text, "-D", "m=2G") == (0, OK)
    assert conf.parse(text, macros={"m": "2G"}).vms[0].memory == 2 << 30
    assert conf.check('vm "v" { memory 1G }\n', "-D", "x=1") == (0, "warning: macro 'x' not used\n" + OK)
    # -D splits at the last '='
    assert conf.check('vm "v" { memory 1G }\n', "-Da=b=c") == (0, "warning: macro 'a=b' not used\n" + OK)


def test_macro_definition_rules(conf):
    fails(conf.check('"a b" = "1"\n'), "vm.conf:1: macro name cannot contain whitespace\n")
    fails(conf.check('n=4\n'), SYNTAX % 1)
    fails(conf.check('memory = "1G"\n'), SYNTAX % 1)
    # a macro is re-tokenised: "4" comes back as a NUMBER
    fails(conf.check('n="4"\nvm $n { memory 1G }\n'), SYNTAX % 2)
    ok(conf.check('n="v4"\nvm $n { memory 1G }\n'))


# ---------------------------------------------------------------- include

def test_include(conf):
    with open("more.conf", "w") as handle:
        handle.write('m = "1G"\nvm "inc" { memory $m }\n')
    config = conf.parse('include "more.conf"\nvm "top" { memory $m }\n')
    assert [vm.name for vm in config.vms] == ["inc", "top"]
    assert config.vms[0].file == "more.conf"


def test_include_errors_name_the_included_file(conf):
    with open("more.conf", "w") as handle:
        handle.write('\nbogus\n')
    fails(conf.check('include "more.conf"\nalso bogus\n'),
          "more.conf:2: syntax error\n", SYNTAX % 2)
    fails(conf.check('include "missing.conf"\nvm "a" { memory 1G }\n'),
          "vm.conf:1: failed to include file missing.conf\n")


def test_include_is_relative_to_the_working_directory(conf, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "more.conf").write_text('vm "inc" { memory 1G }\n')
    (sub / "vm.conf").write_text('include "more.conf"\n')
    with pytest.raises(vmconf.ConfigError) as info:
        vmconf.parse_file(str(sub / "vm.conf"), test_mode=True)
    assert info.value.messages == ["%s:1: failed to include file more.conf" % (sub / "vm.conf")]


# ---------------------------------------------------------------- top-level statements

def test_defaults(conf):
    config = conf.parse('')
    assert (config.vms, config.switches, config.local_prefix, config.local_inet6) == ([], [], "100.64.0.0/10", False)
    assert (config.socket_owner, config.staggered_parallel, config.staggered_delay) == (None, None, 30)


@pytest.mark.parametrize("prefix, stored", [
    ("100.64.0.0/10", "100.64.0.0/10"), ("10.0.0.0/16", "10.0.0.0/16"), ("10.1.0.0", "10.1.0.0/16"),
    ("10/8", "10.0.0.0/8"), ("172.16/12", "172.16.0.0/12"),
])
def test_local_prefix(conf, prefix, stored):
    assert conf.parse('local prefix "%s"\n' % prefix).local_prefix == stored


@pytest.mark.parametrize("prefix, error", [
    ("10.0.0.0/17", "too large"), ("10.0.0.0/0", "too small"), ("10.0.0.0/x", "invalid"),
    ("10.1.0.0/8", "bad mask"), ("fd00::/8", "invalid format"), ("bogus", "invalid format"),
])
def test_local_prefix_errors(conf, prefix, error):
    fails(conf.check('\nlocal prefix "%s"\n' % prefix), "vm.conf:2: invalid local prefix: %s\n" % error)


def test_local_inet6(conf):
    assert conf.parse('local inet6\n').local_inet6 is True
    assert conf.parse('local inet6 prefix "fd00:1::/64"\n').local_inet6 == "fd00:1::/64"
    fails(conf.check('local inet6 prefix "fd00::/65"\n'), "vm.conf:1: invalid local inet6 prefix: too large\n")
    fails(conf.check('local inet6 prefix "fd00::1/64"\n'), "vm.conf:1: invalid local inet6 prefix: bad mask\n")
    fails(conf.check('local inet6 prefix "10.0.0.0/8"\n'),
          "vm.conf:1: invalid local inet6 prefix: name or service is not known\n")


def test_socket_owner(conf):
    assert conf.parse('socket owner "%s"\n' % ROOT_USER).socket_owner == (0, 0)
    assert conf.parse('socket owner ":%s"\n' % ROOT_GROUP).socket_owner == (0, 0)
    assert conf.parse('socket owner 1234\n').socket_owner == (1234, 0)
    fails(conf.check('socket owner "nosuchuser9"\n'), "vm.conf:1: failed to get user: nosuchuser9\n")
    fails(conf.check('socket owner ":nosuchgroup9"\n'), "vm.conf:1: failed to get group: nosuchgroup9\n")


def test_staggered_start(conf):
    config = conf.parse('staggered start parallel 2 delay 15\n')
    assert (config.staggered_parallel, config.staggered_delay) == (2, 15)
    fails(conf.check('staggered start parallel 2\n'), SYNTAX % 1)


def test_agentx(conf):
    assert conf.parse('agentx\n').agentx == {"context": "", "path": "/var/agentx/master"}
    assert conf.parse('agentx context "c" path "/p"\n').agentx == {"context": "c", "path": "/p"}
    fails(conf.check('agentx path "rel"\n'), "vm.conf:1: agentx path is not absolute\n")
    fails(conf.check('agentx context "%s"\n' % ("x" * 33)), "vm.conf:1: agentx context too large\n")
    ok(conf.check('agentx context "%s"\n' % ("x" * 32)))


# ---------------------------------------------------------------- switch blocks

def test_switch_block(conf):
    switch = conf.parse('switch "up" {\n\tinterface veb0\n\tgroup "vmnet"\n\tlocked lladdr\n'
                        '\trdomain 3\n\tdown\n}\nswitch "b" {\n\tinterface bridge1\n\tdisable\n}\n').switches
    assert [(s.name, s.interface, s.group, s.locked, s.rdomain, s.up, s.enabled) for s in switch] == [
        ("up", "veb0", "vmnet", True, 3, False, True), ("b", "bridge1", None, False, None, True, False)]


@pytest.mark.parametrize("body, line, message", [
    ("\tgroup \"g\"\n", 3, 'switch "s" is missing interface name'),
    ("\tinterface tap0\n", 2, "invalid switch interface: tap0"),
    ("\tinterface veb\n", 2, "invalid switch interface: veb"),
    ("\tinterface veb0x\n", 2, "invalid switch interface: veb0x"),
    ("\tinterface bridge0000000000\n", 2, "switch interface too long: bridge0000000000"),
    ("\tinterface veb0\n\tgroup \"g1\"\n", 3, "invalid group name: g1"),
    ("\tinterface veb0\n\tgroup \"abcdefghijklmnop\"\n", 3, "invalid group name: abcdefghijklmnop"),
    ("\tinterface veb0\n\trdomain 256\n", 3, "invalid rdomain: 256"),
])
def test_switch_errors(conf, body, line, message):
    fails(conf.check('switch "s" {\n%s}\n' % body), "vm.conf:%d: %s\n" % (line, message))


# ---------------------------------------------------------------- vm blocks

def test_vm_block_with_every_option(conf):
    spec = conf.parse(
        'vm "full" {\n'
        '\tboot "bsd.rd"\n'
        '\tboot device net\n'
        '\tcdrom "cd.iso"\n'
        '\tdisk "disk.img" format QCOW2\n'
        '\tdisk "disk2.img" format raw\n'
        '\tlocal interface tap3 { switch "up" group "g"\n\t\tlocked lladdr FE:E1:bb:d1:2:3 rdomain 2 down }\n'
        '\tinterface tap switch "up" group "g", up,\n'
        '\tinterfaces 3\n'
        '\tmemory 1.5G\n'
        '\towner %s:%s\n'
        '\tdisable\n'
        '\tallow instance { boot, memory\n\t\tdisk, cdrom, interface, instance, owner :%s }\n'
        '\tseves\n'
        '}\n' % (ROOT_USER, ROOT_GROUP, ROOT_GROUP)).vms[0]
    here = conf.dir
    assert spec.name == "full" and spec.line == 1 and spec.instance_of is None
    assert (spec.boot, spec.boot_device, spec.cdrom) == (here + "/bsd.rd", "net", "cd.iso")
    assert spec.disks == [(here + "/disk.img", "qcow2"), (here + "/disk2.img", "raw")]
    assert spec.interfaces == [
        {"local": True, "tap": "tap3", "switch": "up", "group": "g", "lladdr": "fe:e1:bb:d1:02:03",
         "locked": True, "rdomain": 2, "up": False},
        {"local": False, "tap": "tap", "switch": "up", "group": "g", "lladdr": None,
         "locked": False, "rdomain": None, "up": True}]
    assert (spec.interfaces_count, spec.nic_count, spec.memory) == (3, 3, 1536 << 20)
    assert (spec.owner_uid, spec.owner_gid, spec.enabled, spec.sev) == (0, 0, False, "seves")
    assert spec.allow_instance == {"boot": True, "memory": True, "disk": True, "cdrom": True,
                                   "interface": True, "instance": True, "owner_uid": 0, "owner_gid": 0}


def test_interface_option_separators(conf):
    # blanks or newlines inside braces; without braces a comma may follow every option
    # but the first (iface_opts_c: iface_opts | iface_opts_c iface_opts optcomma)
    fails(conf.check('vm "a" {\n\tinterface { switch "up", down }\n}\n'), SYNTAX % 2)
    fails(conf.check('vm "a" {\n\tinterface switch "up", down\n}\n'), SYNTAX % 2)
    spec = conf.parse('vm "a" {\n\tinterface switch "up" down, group "g",\n\tinterface {\n\t\tdown\n\n\t}\n}\n').vms[0]
    assert [(i["switch"], i["up"], i["group"]) for i in spec.interfaces] == [("up", False, "g"), (None, False, None)]


def test_vm_defaults(conf):
    spec = conf.parse('vm "a" { disk "disk.img" }\n').vms[0]
    assert (spec.memory, spec.boot, spec.boot_device, spec.cdrom, spec.interfaces) == (None, None, None, None, [])
    assert (spec.interfaces_count, spec.owner_uid, spec.owner_gid, spec.enabled, spec.sev) == (None, None, None, True, None)


def test_sev_does_not_undo_seves(conf):
    vms = conf.parse('vm "a" {\n\tseves\n\tsev\n}\nvm "b" {\n\tsev\n\tseves\n}\nvm "c" { sev }\n').vms
    assert [vm.sev for vm in vms] == ["seves", "seves", "sev"]


def test_vm_instance(conf):
    spec = conf.parse('vm "a" { memory 1G }\nvm "a" instance "b" {\n\tmemory 2G\n}\n').vms[1]
    assert (spec.name, spec.instance_of, spec.memory) == ("b", "a", 2 << 30)


def test_disk_realpath_resolves_symlinks(conf, tmp_path):
    os.symlink(str(tmp_path / "disk.img"), str(tmp_path / "link.img"))
    assert conf.parse('vm "a" { disk "./link.img" }\n').vms[0].disks == [(str(tmp_path / "disk.img"), None)]


def test_raw_device_disk(conf):
    spec = conf.parse('vm "a" { disk "/dev/null" format raw }\n').vms[0]
    assert spec.disks == [("/dev/null", "raw")]


def test_memory_rules(conf):
    assert conf.parse('vm "a" { memory 1048576 }\n').vms[0].memory == 1 << 20
    assert conf.parse('vm "a" { memory "1048577" }\n').vms[0].memory == 1 << 20
    assert conf.parse('vm "a" { memory 128G }\n').vms[0].memory == 128 << 30
    assert conf.parse('vm "a" { memory 1.75m }\n').vms[0].memory == 1 << 20


@pytest.mark.parametrize("option, lines", [
    ("memory 1024", ["memory size must be at least 1MB", "vm.conf:2: failed to parse size: 1024"]),
    ("memory 129G", ["memory size too large (limit is 128G)", "vm.conf:2: failed to parse size: 129G"]),
    ("memory 1GB", ["invalid memory size: 1GB: Invalid argument", "vm.conf:2: failed to parse size: 1GB"]),
    ("memory 1X", ["invalid memory size: 1X: Invalid argument", "vm.conf:2: failed to parse size: 1X"]),
    ("memory 1G\n\tmemory 2G", ["vm.conf:3: argument specified more than once"]),
    ("memory 1G\n\tmemory 2097152", ["vm.conf:3: memory specified more than once"]),
    ("boot \"bsd.rd\"\n\tboot \"bsd.rd\"", ["vm.conf:3: kernel specified more than once"]),
    ("boot \"nonexistent\"", ["vm.conf:2: kernel path not found: No such file or directory"]),
    ("boot \"disk.img/x\"", ["vm.conf:2: kernel path not found: Not a directory"]),
    ("cdrom \"a\"\n\tcdrom \"b\"", ["vm.conf:3: cdrom specified more than once"]),
    ("disk \"nonexistent\"", ["disk nonexistent: No such file or directory",
                              "vm.conf:2: failed to parse disks: nonexistent"]),
    ("disk \"disk.img\" format vmdk", ["vm.conf:2: unrecognized disk format vmdk"]),
    ("disk \"disk.img\"\n\tdisk \"disk.img\"\n\tdisk \"disk.img\"\n\tdisk \"disk.img\"\n\tdisk \"disk2.img\"",
     ["too many disks", "vm.conf:6: failed to parse disks: disk2.img"]),
    ("interface em0", ["vm.conf:2: invalid interface: em0"]),
    ("interface tap99999999999", ["vm.conf:2: invalid interface: tap99999999999"]),
    ("interface tap0000000000000", ["vm.conf:2: interface name too long: tap0000000000000"]),
    ("interface\n\tinterface\n\tinterface\n\tinterface\n\tinterface", ["vm.conf:6: too many interfaces: 5"]),
    ("interfaces 5", ["vm.conf:2: too many interfaces: 5"]),
    ("interfaces 1\n\tinterfaces 2", ["vm.conf:3: interfaces specified more than once"]),
    ("interface group \"em0\"", ["vm.conf:2: invalid group name: em0"]),
    ("interface rdomain 256", ["vm.conf:2: invalid rdomain: 256"]),
    ("interface switch \"%s\"" % ("s" * 64), ["vm.conf:2: switch name too long: %s" % ("s" * 64)]),
    ("interface lladdr 00:11:22:33:44", ["vm.conf:2: invalid address: 00:11:22:33:44\n"]),
    ("interface lladdr 00:11:22:33:44:100", ["vm.conf:2: invalid address: 00:11:22:33:44:100\n"]),
    ("owner nosuchuser9", ["vm.conf:2: failed to get user: nosuchuser9"]),
    ("owner %s:nosuchgroup9" % ROOT_USER, ["vm.conf:2: failed to get group: nosuchgroup9"]),
    ("allow instance { owner nosuchuser9 }", ["vm.conf:2: failed to get user: nosuchuser9"]),
])
def test_vm_option_errors(conf, option, lines):
    fails(conf.check('vm "a" {\n\t%s\n}\n' % option), *[line + "\n" for line in lines])


def test_interfaces_zero_may_be_repeated(conf):
    # parse.y tests the stored count for zero
    assert conf.parse('vm "a" {\n\tinterfaces 0\n\tinterfaces 2\n}\n').vms[0].interfaces_count == 2


def test_failed_boot_leaks_into_the_next_block(conf):
    fails(conf.check('vm "a" {\n\tboot "bsd.rd"\n\tmemory 1\n}\nvm "b" {\n\tboot "bsd.rd"\n}\n'),
          "memory size must be at least 1MB\n", "vm.conf:3: failed to parse size: 1\n",
          "vm.conf:6: kernel specified more than once\n")


def test_vm_name_length(conf):
    assert conf.parse('vm "%s" { memory 1G }\n' % ("n" * 63)).vms[0].name == "n" * 63
    fails(conf.check('vm "%s" {\n\tmemory 1G\n}\n' % ("n" * 64)), "vm.conf:1: vm name too long\n")
    fails(conf.check('vm "%s" instance "b" {\n\tmemory 1G\n}\n' % ("p" * 64)),
          "vm.conf:1: vm %s name too long\n" % ("p" * 64))


def test_allow_instance_forms(conf):
    vms = conf.parse('vm "a" {\n\tallow instance memory\n}\nvm "b" {\n\tallow instance {\n\t\tboot\n\t\tdisk,\n'
                     '\t\tcdrom\n\t}\n}\n').vms
    assert vms[0].allow_instance == {"memory": True}
    assert vms[1].allow_instance == {"boot": True, "disk": True, "cdrom": True}


def test_registration_is_skipped_in_test_mode(conf):
    # bad names and VMs without devices only fail when vmd registers them
    ok(conf.check('vm "-bad" { memory 1G }\nvm "x" {\n\towner 0\n}\n'))


# ---------------------------------------------------------------- block and newline rules

def test_block_newline_rules(conf):
    ok(conf.check('vm "a" { memory 1G }\n'))
    ok(conf.check('vm "a" {\n\n\tmemory 1G\n\n\tdisk "disk.img"\n\n}\n\n'))
    ok(conf.check('vm "a" { memory 1G\n\tdisk "disk.img"\n}\n'))
    fails(conf.check('vm "a"\n{\n\tmemory 1G\n}\n'), SYNTAX % 1)
    fails(conf.check('vm "a" { memory 1G disk "disk.img" }\n'), SYNTAX % 1)
    fails(conf.check('vm "a" {\n\tmemory 1G\n\tdisk "disk.img" }\n'), SYNTAX % 3)
    fails(conf.check('vm "a" { memory 1G } vm "b" { memory 1G }\n'), SYNTAX % 1)
    fails(conf.check('vm "a" {\n}\n'), SYNTAX % 2)
    fails(conf.check('switch "s" { interface veb0 group "g" }\n'), SYNTAX % 1)


def test_every_error_line_is_reported(conf):
    fails(conf.check('vm "a" {\n\tmemory 1G\n}\nbogus\nvm "b" {\n\tcdrom "x"\n\tcdrom "y"\n}\n'
                     'vm "c" {\n\tdisk "nonexistent"\n}\n'),
          SYNTAX % 4, "vm.conf:7: cdrom specified more than once\n",
          "disk nonexistent: No such file or directory\n", "vm.conf:10: failed to parse disks: nonexistent\n")


def test_errors_shortly_after_an_error_are_silent(conf):
    # yacc reports no new syntax error before three tokens were shifted after recovery
    fails(conf.check('foo bar\nbaz qux\nvm "a" { memory 1G }\nx y\n'), SYNTAX % 1, SYNTAX % 4)
    # the rest of a block after a failed option is parsed as top-level statements
    fails(conf.check('vm "a" {\n\tmemory 1\n\tdisk "disk.img"\n}\n'),
          "memory size must be at least 1MB\n", "vm.conf:2: failed to parse size: 1\n")


# ---------------------------------------------------------------- registration (outside -n)

def _spec(**kwargs):
    kwargs.setdefault("name", "vm1")
    return vmconf.VmSpec(**kwargs)


def test_registration_error():
    disk = [("/tmp/d.img", None)]
    assert vmconf.registration_error(_spec(disks=disk)) is None
    assert vmconf.registration_error(_spec(cdrom="/x.iso")) is None
    assert vmconf.registration_error(_spec(name="a.b-c_D9", disks=disk)) is None
    assert vmconf.registration_error(_spec()) == "Unknown error: 1002"
    assert vmconf.registration_error(_spec(owner_uid=0, enabled=False)) == "Unknown error: 1002"
    assert vmconf.registration_error(_spec(memory=1 << 30)) == "Invalid argument"
    assert vmconf.registration_error(_spec(boot="/bsd.rd")) == "Invalid argument"
    for name in ("-a", ".a", "_a", "a b", "a/b", "a:b", ""):
        assert vmconf.registration_error(_spec(name=name, disks=disk)) == "Invalid argument"


def test_registration_error_for_instances():
    disk = [("/tmp/d.img", None)]
    parent = _spec(name="tmpl", disks=disk, cdrom="/x.iso", interfaces=[{"tap": None, "lladdr": None}])
    iface = {"tap": None, "lladdr": None}
    # without the parent vm_instance() is not run; an instance may inherit the cdrom
    assert vmconf.registration_error(_spec(instance_of="tmpl", memory=1 << 30)) is None
    assert vmconf.registration_error(_spec(instance_of="tmpl", owner_uid=0)) == "Unknown error: 1002"
    assert vmconf.registration_error(_spec(instance_of="tmpl", memory=1 << 30), parent=None) == "Unknown error: 1007"
    assert vmconf.registration_error(_spec(instance_of="tmpl", memory=1 << 30), parent=parent) is None
    assert vmconf.registration_error(_spec(instance_of="tmpl", memory=1 << 30),
                                     parent=_spec(name="tmpl", disks=disk)) == "Invalid argument"
    # disks, explicit MACs and tap names cannot be reused; owners must match; no instance rights
    assert vmconf.registration_error(_spec(instance_of="tmpl", disks=disk), parent=parent) == "Device busy"
    assert vmconf.registration_error(_spec(instance_of="tmpl", disks=[("/tmp/e.img", None)],
                                           interfaces=[dict(iface, lladdr="fe:e1:bb:d1:00:01")]),
                                     parent=parent) == "Device busy"
    tap_parent = _spec(name="tmpl", disks=disk, interfaces=[{"tap": "tap3", "lladdr": None}])
    assert vmconf.registration_error(_spec(instance_of="tmpl", memory=1 << 30, cdrom="/y.iso"),
                                     parent=tap_parent) == "Device busy"
    assert vmconf.registration_error(_spec(instance_of="tmpl", cdrom="/y.iso", owner_uid=1000),
                                     parent=parent) == "Operation not permitted"
    assert vmconf.registration_error(_spec(instance_of="tmpl", cdrom="/y.iso", owner_uid=0, owner_gid=5),
                                     parent=parent) == "Operation not permitted"
    assert vmconf.registration_error(_spec(instance_of="tmpl", cdrom="/y.iso", owner_uid=0, owner_gid=0),
                                     parent=parent) is None
    assert vmconf.registration_error(_spec(instance_of="tmpl", cdrom="/y.iso", allow_instance={"disk": True}),
                                     parent=parent) == "Operation not permitted"


def test_without_a_callback_the_caller_registers(conf):
    config = conf.parse('vm "-bad" { memory 1G }\n')
    config = vmconf.parse_file("vm.conf")
    assert [vm.name for vm in config.vms] == ["-bad"]
    assert vmconf.registration_error(config.vms[0]) == "Invalid argument"


def test_utf8_names_count_bytes(conf):
    name = "\u00e9" * 31 + "x"
    assert conf.parse('vm "%s" { memory 1G }\n' % name).vms[0].name == name
    fails(conf.check('vm "%s" {\n\tmemory 1G\n}\n' % ("\u00e9" * 32)), "vm.conf:1: vm name too long\n")
    assert vmconf.registration_error(_spec(name="\u00e9", disks=[("/d", None)])) == "Invalid argument"


def test_register_callback_reports_like_vmd(conf):
    with open("vm.conf", "w") as handle:
        handle.write('vm "good" { disk "disk.img" }\nvm "-bad" {\n\tdisk "disk.img"\n}\nvm "none" { memory 1G }\n')
    seen = []

    def register(vm):
        seen.append(vm.name)
        return vmconf.registration_error(vm)

    with pytest.raises(vmconf.ConfigError) as info:
        vmconf.parse_file("vm.conf", register=register)
    assert seen == ["good", "-bad", "none"]
    assert info.value.messages == ['vm.conf:4: vm "-bad" failed: Invalid argument',
                                   'vm.conf:5: vm "none" failed: Invalid argument']
    assert [vm.name for vm in info.value.config.vms] == ["good"]


# ---------------------------------------------------------------- the reference example (§8)

EXAMPLE = '''# /etc/vm.conf
ramdisk = "{d}/bsd.rd"
vmdir   = "{d}/vmm"

local prefix "100.64.0.0/10"
socket owner ":{group}"          # group must exist on the host
staggered start parallel 2 delay 15

switch "uplink" {{
\tinterface veb0
\tgroup "vmnet"
\tlocked lladdr
}}

vm "web1" {{
\tmemory 1G
\tdisk $vmdir "/web1.qcow2"
\tinterface {{ switch "uplink" }}
\towner {user}
}}

# temporary install VM: netboot bsd.rd, autoinstall via vmd's DHCP
vm "db1" {{
\tdisable
\tmemory 2G
\tboot $ramdisk
\tboot device net
\tdisk "{d}/vmm/db1.qcow2" format qcow2
\tlocal interface
\tallow instance {{ memory, disk }}
}}

vm "db1" instance "db2" {{
\tdisk "{d}/vmm/db2.qcow2"
}}
'''


def test_reference_example(conf, tmp_path):
    (tmp_path / "vmm").mkdir()
    for name in ("web1", "db1", "db2"):
        (tmp_path / "vmm" / (name + ".qcow2")).write_bytes(b"QFI\xfb")
    text = EXAMPLE.format(d=tmp_path, group=ROOT_GROUP, user=ROOT_USER)
    assert conf.check(text) == (0, OK)
    config = conf.parse(text)
    assert [(vm.name, vm.instance_of, vm.enabled, vm.memory) for vm in config.vms] == [
        ("web1", None, True, 1 << 30), ("db1", None, False, 2 << 30), ("db2", "db1", True, None)]
    assert config.vms[1].boot == str(tmp_path / "bsd.rd") and config.vms[1].boot_device == "net"
    assert config.vms[2].disks == [(str(tmp_path / "vmm" / "db2.qcow2"), None)]
    assert [s.name for s in config.switches] == ["uplink"]
    assert (config.socket_owner, config.staggered_parallel, config.staggered_delay) == ((0, 0), 2, 15)
    # without the files vmd refuses the whole file
    os.unlink(str(tmp_path / "vmm" / "db2.qcow2"))
    assert conf.check(text) == (1, "disk {0}/vmm/db2.qcow2: No such file or directory\n"
                                   "vm.conf:34: failed to parse disks: {0}/vmm/db2.qcow2\n".format(tmp_path))


# Messages the tests above expect, as the reference quotes them (<x> marks a value).
REFERENCE_QUOTES = [
    "reached end of file\n  while parsing quoted string", "string too long", "invalid number: <err>",
    "macro '<name>' not defined", "warning: macro '<name>' not used", "macro name cannot contain whitespace",
    "failed to include file <f>", "invalid local prefix: bad mask", "invalid local inet6 prefix: ...",
    "agentx path is not absolute", "agentx path too large", "agentx context too large",
    "failed to get user: <u>", "failed to get group: <g>", 'switch "<name>" is missing interface name',
    "invalid switch interface: <if>", "switch interface too long: <if>", "invalid group name: <g>",
    "invalid rdomain: <n>", "kernel path not found: <strerror>", "kernel specified more than once",
    "cdrom specified more than once", "cdrom name too long", "disk <path>: <strerror>",
    "failed to parse disks: <path>", "unrecognized disk format <x>", "too many disks", "invalid interface: <x>",
    "too many interfaces:\n  <n>", "switch name too long: <x>", "invalid address: <x>",
    "interfaces specified more than once", "memory size must be at least 1MB", "failed to parse size: 1024",
    "memory size too large (limit is 128G)", "memory specified more than once", "argument specified more than once",
    "vm name too long", 'vm "<name>" failed: <strerror>', "Unknown error: 1002", "Invalid argument",
    "<file>:<line>: syntax error", "configuration OK",
]


def test_expected_messages_are_quoted_by_the_reference():
    text = reference_text("vmconf-grammar.md")
    missing = [quote for quote in REFERENCE_QUOTES if " ".join(quote.split()) not in text]
    assert missing == []
