"""The simulated installer's rules, checked one by one against autoinstall-facts.md §4-5.

Response-file parsing and matching (install.sub _autorespond), encr_pwd, the
disklabel template format, res_hnok.  End-to-end runs are in test_installer.py.
"""

import os
import sys

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import installer  # noqa: E402  pylint: disable=wrong-import-position
from labsim.installer import InstallAborted, ResponseFile  # noqa: E402  pylint: disable=wrong-import-position

from conftest import reference_text as _reference  # noqa: E402  pylint: disable=wrong-import-position


def test_prompts_used_by_the_simulation_are_in_the_reference():
    questions = _reference('installer-questions.txt')
    for prompt in ["System hostname? (short form, e.g. 'foo')", 'Password for root account?',
                   "Network interface to configure? (name, lladdr, '?', or 'done')",
                   "IPv4 address for <if>? (or 'autoconf' or 'none')", "Default IPv4 route? (IPv4 address or 'none')",
                   "IPv6 default router? (IPv6 address or 'none')", "DNS domain name? (e.g. 'example.com')",
                   "Setup a user? (enter a lower-case loginname, or 'no')", 'Public ssh key for user <login> ||',
                   "What timezone are you in? ('?' for list)", "Which disk is the root disk? ('?' for details)",
                   'Use (W)hole disk MBR, whole disk (G)PT or (E)dit?', 'URL to autopartitioning template for disklabel?',
                   "HTTP Server? (hostname or 'done')", "Set name(s)? (or 'abort' or 'done')",
                   'Unverified sets: <list>. Continue without verification?',
                   "Are you *SURE* your install is complete without '<set>'?",
                   'INSTALL.<arch> not found. Use sets found here anyway?']:
        assert prompt in questions, prompt
    facts = _reference('autoinstall-facts.md')
    for text in ['Starting non-interactive mode in 5 seconds...', 'No response file found; non-interactive mode aborted.',
                 'Question has no answer in response file: "<question in lower case>"',
                 'failed; check /tmp/ai/ai.log', 'No autopartitioning template found.', 'Autopartitioning failed.',
                 'install.site failed', installer.CONGRATULATIONS, "'<x>' is not a valid choice.",
                 'A response is required.', 'Unable to connect using HTTPS; using HTTP', "(I)nstall, (U)pgrade, (A)utoinstall or (S)hell?"]:
        assert text in facts, text


# --- parsing (facts §4: ignored lines, leftmost '=', verbatim answers) ---------

@pytest.mark.parametrize('line, parsed', [
    ('System hostname = web1', ('System hostname', 'web1')),
    ('System hostname=web1', ('System hostname', 'web1')),
    ('key \t=\t  Mixed Case Answer', ('key', 'Mixed Case Answer')),
    ('Public ssh key for root account = ssh-ed25519 AAAA+/= me@x', ('Public ssh key for root account', 'ssh-ed25519 AAAA+/= me@x')),
    ('Password for root account = $2b$10$abc=def', ('Password for root account', '$2b$10$abc=def')),
    ('a==', ('a', '=')),
    ('', None),
    ('# System hostname = web1', None),
    ('#System hostname = web1', None),
    ('= web1', None),
    ('System hostname web1', None),
    ('System hostname =', None),
    ('System hostname=', None),
])
def test_line_parsing(line, parsed):
    assert ResponseFile.parse(line) == parsed


def test_blanks_around_lines_are_stripped_before_parsing():
    rf = ResponseFile('   \t System hostname = web1  \t\n   # comment = x\n')
    assert rf.respond("System hostname? (short form, e.g. 'foo')") == 'web1'
    with pytest.raises(InstallAborted):
        rf.respond('comment')


def test_answer_with_nothing_after_equals_cannot_be_given():
    rf = ResponseFile('HTTP proxy URL =    \n')
    assert rf.respond("HTTP proxy URL? (e.g. 'http://proxy:8080', or 'none')", 'none') == 'none'


# --- matching (facts §4 examples) ----------------------------------------------

@pytest.mark.parametrize('key, question, expected', [
    ('Password for root', 'Password for root account?', True),
    ('Set name(s)', "Set name(s)? (or 'abort' or 'done')", True),
    ('Set name', "Set name(s)? (or 'abort' or 'done')", False),
    ('root disk', "Which disk is the root disk? ('?' for details)", True),
    ('password', 'Password for user alice?', True),
    ('password', 'Password for root account?', True),
    ('PASSWORD FOR ROOT ACCOUNT', 'Password for root account?', True),
    ('assword for root', 'Password for root account?', False),
    ('Password for root accoun', 'Password for root account?', False),
    ('Public ssh key for user alice', 'Public ssh key for user alice', True),
    ('Public ssh key for user al', 'Public ssh key for user alice', False),
    ('Use (W)hole disk', 'Use (W)hole disk MBR, whole disk (G)PT or (E)dit?', True),
    ('Use (W)hole disk', 'Use (W)hole disk MBR, whole disk (G)PT, (O)penBSD area or (E)dit?', True),
    ('Continue without verification', 'Unverified sets: site78.tgz. Continue without verification?', True),
    ('Which speed should com0 use', 'Which speed should com0 use?', True),
    ('com0', 'Change the default console to com0?', True),
    ('What timezone are you in', "What timezone are you in? ('?' for list)", True),
    ('(short form', "System hostname? (short form, e.g. 'foo')", False),
    ('(short form,', "System hostname? (short form, e.g. 'foo')", True),
])
def test_matching(key, question, expected):
    assert ResponseFile.matches(question, key) is expected


def test_first_match_is_used_and_consumed():
    rf = ResponseFile('Set name(s) = -game*\nSet name(s) = +site*\nSet name(s) = done\n')
    question = "Set name(s)? (or 'abort' or 'done')"
    assert [rf.respond(question, 'done') for _attempt in range(4)] == ['-game*', '+site*', 'done', 'done']


def test_ambiguous_key_consumes_lines_in_file_order():
    rf = ResponseFile('password = first\nPassword for user alice = second\n')
    assert rf.respond('Password for root account?') == 'first'
    assert rf.respond('Password for user alice?') == 'second'


def test_default_when_nothing_matches():
    rf = ResponseFile('System hostname = web1\n')
    assert rf.respond('Start sshd(8) by default?', 'yes') == 'yes'


def test_no_default_and_no_answer_aborts_with_question_in_lower_case():
    rf = ResponseFile('System hostname = web1\n')
    with pytest.raises(InstallAborted) as info:
        rf.respond('Password for root account?')
    assert info.value.message == '\nQuestion has no answer in response file: "password for root account?"'
    with pytest.raises(InstallAborted) as info:
        rf.respond("What timezone are you in? ('?' for list)", '')
    assert info.value.message.endswith('"what timezone are you in? (\'?\' for list)"')


def test_carriage_return_is_kept_like_ksh_read_does():
    rf = ResponseFile('Set name(s) = done\r\n')
    assert rf.respond("Set name(s)? (or 'abort' or 'done')", 'done') == 'done\r'


# --- passwords (facts §5) --------------------------------------------------------

BCRYPT = '$2b$10$' + 'A' * 53


@pytest.mark.parametrize('given', [BCRYPT, '$2a$12$' + 'z' * 53, '*' * 13, '$2y$08$' + 'q' * 40])
def test_encrypted_passwords_are_kept(given):
    assert installer.encr_pwd(given) == given


@pytest.mark.parametrize('given', ['secret', '*' * 12, '*' * 14, '$2b$10$short', '$2b$1$' + 'A' * 53,
                                   '$2b$10$' + 'A' * 93])
def test_other_passwords_are_hashed(given):
    hashed = installer.encr_pwd(given)
    assert hashed != given
    assert hashed.startswith('$2b$10$') and len(hashed) == 60


def test_length_test_is_a_string_comparison_like_ksh():
    # `${#_p} > 40` inside [[ ]] compares strings: length 100 is "100" < "40".
    assert installer.encr_pwd('$2b$10$' + 'A' * 92) == '$2b$10$' + 'A' * 92
    assert installer.encr_pwd('$2b$10$' + 'A' * 93) != '$2b$10$' + 'A' * 93


def test_plain_password_hash_is_salted():
    assert installer.encr_pwd('secret') != installer.encr_pwd('secret')


# --- disklabel templates -----------------------------------------------------------

def test_template_parsing():
    table = installer.parse_autotable('# comment\n/\t\t1G\nswap 80M-256M 10%\n\n/tmp 120M-4G 8%  # tmp\n/home 1G-* 50%\n')
    assert table == [('/', 1 << 30, 1 << 30, 0), ('swap', 80 << 20, 256 << 20, 10),
                     ('/tmp', 120 << 20, 4 << 30, 8), ('/home', 1 << 30, None, 50)]


@pytest.mark.parametrize('text', ['', '# only comments\n', 'home 1G\n', '/ \n', '/ 1Q\n', '/ 1G 10\n', '/ 1G 10% extra\n',
                                  '/ 2G-1G\n', '/ 1G\n/ 2G\n', '/ 1G 101%\n', '/ -1G\n'])
def test_bad_templates_are_refused(text):
    with pytest.raises(ValueError):
        installer.parse_autotable(text)


def test_allocation_fits_the_disk_or_fails():
    disk = 10 << 30
    parts = installer.allocate(installer.parse_autotable('/ 1G\nswap 512M\n/home 1G-* 100%\n'), disk)
    assert [p['letter'] for p in parts] == ['a', 'b', 'd']
    assert parts[0]['size'] == 1 << 30 and parts[1]['size'] == 512 << 20
    assert parts[-1]['offset'] + parts[-1]['size'] <= disk
    assert installer.allocate(installer.parse_autotable('/ 11G\n'), disk) is None


def test_default_tables_follow_disklabel_8():
    assert [row[0] for row in installer.default_autotable(20 << 30)] == [
        '/', 'swap', '/tmp', '/var', '/usr', '/usr/X11R6', '/usr/local', '/usr/src', '/usr/obj', '/home']
    assert [row[0] for row in installer.default_autotable(4 << 30)] == ['/', 'swap', '/usr', '/home']
    assert [row[0] for row in installer.default_autotable(1 << 30)] == ['/', 'swap']


# --- vmd's host-name option ------------------------------------------------------------

@pytest.mark.parametrize('name, ok', [('web1', True), ('web-1', True), ('web1.example.com', True), ('web_1', False),
                                      ('-web', False), ('web-', False), ('', False), ('a..b', False)])
def test_res_hnok(name, ok):
    assert installer.res_hnok(name) is ok
