# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The installer's response-file rules (autoinstall-facts.md §4) and the question model."""

from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils.installer import (
    CATALOGUE, MANIFEST_VERSION, Asked, InstallPlan, ResponseFileError, catalogue_matches, check_answer_key, check_response_file,
    expected_questions, key_matches, key_matches_template, manifest_matches, manifest_path, nearest_questions,
    parse_response_file, simulate)

SETS_QUESTION = "Set name(s)? (or 'abort' or 'done')"


@pytest.mark.parametrize('key, question, expected', [
    ('Password for root', 'Password for root account?', True),
    ('password for ROOT', 'Password for root account?', True),
    ('Set name(s)', SETS_QUESTION, True),
    # followed by "(": not a word end
    ('Set name', SETS_QUESTION, False),
    ('root disk', "Which disk is the root disk? ('?' for details)", True),
    # must start at the beginning or after a blank
    ('oot disk', "Which disk is the root disk? ('?' for details)", False),
    ('password', 'Password for user alice?', True),
    ('Public ssh key for user alice', 'Public ssh key for user alice', True),
    ('Public ssh key for user al', 'Public ssh key for user alice', False),
    ('Use (W)hole disk', 'Use (W)hole disk MBR, whole disk (G)PT or (E)dit?', True),
    ('', 'Terminal type?', False),
    # an empty key sits between the two blanks of "wrong.  Set": still no answer
    ('', "Time appears wrong.  Set to '2026-12-01 17:00'?", False),
])
def test_key_matches_is_word_bounded_and_case_insensitive(key, question, expected):
    assert key_matches(key, question) is expected


def test_parse_ignores_what_the_installer_ignores_and_splits_at_leftmost_equals():
    text = '\n'.join([
        '# comment',
        '',
        '= starts with equals',
        'no equals sign here',
        'Empty answer =   ',
        '  System hostname  =  web1  ',
        'Password for root account = $2b$10$abc=def==',
    ])
    lines = parse_response_file(text)
    assert [(line.key, line.answer) for line in lines] == [
        ('System hostname', 'web1'),
        ('Password for root account', '$2b$10$abc=def=='),
    ]
    assert lines[0].lineno == 6


def test_first_match_is_consumed_so_repeated_questions_take_successive_lines():
    text = 'Set name(s) = -game*\nSet name(s) = +comp*\n'
    asked = [Asked(SETS_QUESTION, 'done')] * 3
    result = simulate(text, asked)
    assert [effective for _asked, _line, effective in result.answers] == ['-game*', '+comp*', 'done']
    assert result.leftover == []


def test_question_without_default_and_without_line_is_unanswered():
    result = simulate('Terminal type = vt100\n', [Asked('Password for root account?', None), Asked('Terminal type?', 'vt220')])
    assert [asked.text for asked in result.unanswered] == ['Password for root account?']
    assert result.answer_for('Terminal type?') == 'vt100'
    # every question asked has its place in answers, in order, the unanswered one without line or answer
    assert [(asked.text, line and line.render(), effective) for asked, line, effective in result.answers] == [
        ('Password for root account?', None, None), ('Terminal type?', 'Terminal type = vt100', 'vt100')]


def test_ambiguous_key_steals_the_first_question_asked():
    # "password" matches any password question: the root one, asked first, takes it.
    result = simulate('password = one\nPassword for user alice = two\n',
                      [Asked('Password for root account?', None), Asked('Password for user alice?', None)])
    assert result.answer_for('Password for root account?') == 'one'
    assert result.answer_for('Password for user alice?') == 'two'


@pytest.mark.parametrize('key, template', [
    ('IPv4 address for vio0', "IPv4 address for <if>? (or 'autoconf' or 'none')"),
    ('Public ssh key for user alice', 'Public ssh key for user <login>'),
    ('Unverified sets: site78-web1.tgz. Continue without verification',
     'Unverified sets: <list>. Continue without verification?'),
    ('Continue without verification', 'Cannot determine prefetch area. Continue without verification?'),
])
def test_template_keys_match_with_run_time_text(key, template):
    assert key_matches_template(key, template)


def test_a_key_made_only_of_run_time_text_matches_nothing():
    assert catalogue_matches('vio0') == []
    # not even the NUL that stands for run-time text inside the matcher: it is run-time text, not question text
    assert catalogue_matches('\x00') == []
    # and "password" matches only the questions whose own text says password
    assert sorted(q.template for q in catalogue_matches('password')) == [
        'Password for root account?', 'Password for user <login>?']


def test_unknown_key_error_lists_the_nearest_questions():
    with pytest.raises(ResponseFileError) as info:
        check_answer_key('Pasword for root acount')
    # exactly three suggestions, the closest first
    assert str(info.value) == ("answer 'Pasword for root acount' matches no installer question; nearest questions: "
                               "'Password for root account?'; 'Public ssh key for root account?'; 'Password for user <login>?'")
    assert nearest_questions('Timezone')[0].startswith('What timezone')


def test_the_nearest_questions_compare_the_key_with_runs_of_as_many_words_anywhere_in_a_question():
    # "passphrase or keydisk" are the last three words of the encryption question; then the key disk questions
    assert nearest_questions('passphrase or keydisk') == [
        'Encrypt the root disk with a (p)assphrase or (k)eydisk?', 'Which disk contains the key disk?',
        'Which <disk> partition is the key disk?']
    # "root account" ends both root account questions
    assert nearest_questions('root account')[:2] == ['Password for root account?', 'Public ssh key for root account?']


def test_the_nearest_questions_compare_only_whole_runs_of_the_keys_length():
    # "host nam" (two words) is compared with two-word runs: "(host) name" is closer than "or hostname"; a one-word
    # run "hostname" at the end of "Server IP address or hostname?" would put that question first.
    assert nearest_questions('host nam') == [
        'Symbolic (host) name for <if>?', 'Server IP address or hostname?', "HTTP Server? (hostname or 'done')"]
    # A question no longer than the key is compared whole: "Netmask for <if>?" has no run "for <if>" of its own.
    assert nearest_questions('for <if> (or') == [
        "IPv4 address for <if>? (or 'autoconf' or 'none')", "IPv6 address for <if>? (or 'autoconf' or 'none')",
        'Symbolic (host) name for <if>?']


def test_the_nearest_questions_leave_out_those_a_response_file_cannot_answer():
    nearest = nearest_questions('Response file locatoin')
    assert len(nearest) == 3 and 'Response file location?' not in nearest


@pytest.mark.parametrize('key, question', [
    ('Response file location', 'Response file location?'),
    ('initial DHCP request', 'Which network interface should be used for the initial DHCP request?'),
    ('(I)nstall, (U)pgrade, (A)utoinstall or (S)hell', '(I)nstall, (U)pgrade, (A)utoinstall or (S)hell?'),
    ('(I)nstall or (U)pgrade', '(I)nstall or (U)pgrade?'),
])
def test_interactive_only_questions_cannot_be_answered(key, question):
    with pytest.raises(ResponseFileError) as caught:
        check_answer_key(key)
    assert str(caught.value) == ('answer %r matches only %r, which the installer asks before it reads a response file'
                                 % (key, question))


def test_expected_questions_follow_the_plan():
    plain = [asked.text for asked in expected_questions(InstallPlan(hostname='web1'))]
    assert 'Default IPv4 route? (IPv4 address or \'none\')' not in plain
    assert "Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout?" in plain
    assert plain.count(SETS_QUESTION) == 2
    static = [asked.text for asked in expected_questions(InstallPlan(
        hostname='web1', ipv4='192.0.2.10/24', ipv6='2001:db8::10/64', users=['alice'], disklabel_template=True,
        site_set='site78-web1.tgz'))]
    assert "Default IPv4 route? (IPv4 address or 'none')" in static
    assert "IPv6 default router? (IPv6 address or 'none')" in static
    assert 'Password for user alice?' in static
    assert "Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout?" not in static
    assert 'Unverified sets: site78-web1.tgz. Continue without verification?' in static
    assert static.index('Checksum test for site78-web1.tgz failed. Continue anyway?') < \
        static.index('Unverified sets: site78-web1.tgz. Continue without verification?')
    assert "DNS domain name? (e.g. 'example.com')" in static
    assert "DNS domain name? (e.g. 'example.com')" not in plain
    # Offline installer: timezone asked after the sets, no default.
    assert static[-1] == "What timezone are you in? ('?' for list)"


def test_check_response_file_requires_root_password_timezone_and_server():
    plan = InstallPlan(hostname='web1')
    with pytest.raises(ResponseFileError) as info:
        check_response_file('System hostname = web1\n', plan)
    for question in ('password for root account', 'what timezone are you in', 'http server'):
        assert question in str(info.value).lower()
    complete = ('Password for root account = $2b$10$' + 'x' * 53 + '\n'
                'What timezone are you in = UTC\nHTTP Server = http://100.64.1.2\n')
    result = check_response_file(complete, plan)
    assert result.answer_for("HTTP Server? (hostname or 'done')") == 'http://100.64.1.2'


def test_check_response_file_rejects_a_line_for_no_question():
    text = 'Password for root account = x\nWhat timezone are you in = UTC\nHTTP Server = h\nFavourite colour = blue\n'
    with pytest.raises(ResponseFileError, match='Favourite colour'):
        check_response_file(text, InstallPlan(hostname='web1'))


def test_manifest_matches_only_the_same_disk_file_and_inputs():
    identity = dict(path='/vm/web1.qcow2', device=2049, inode=1234)
    manifest = dict(version=MANIFEST_VERSION, disk=dict(identity), inputs_sha256='abc')
    assert manifest_matches(manifest, identity, 'abc')
    assert not manifest_matches(manifest, identity, 'abd')
    # the same name re-created: another inode
    assert not manifest_matches(manifest, dict(identity, inode=99), 'abc')
    assert not manifest_matches(manifest, None, 'abc')
    assert not manifest_matches(dict(manifest, version=MANIFEST_VERSION + 1), identity, 'abc')
    assert not manifest_matches(None, identity, 'abc')
    assert manifest_path('/vm/web1.qcow2') == '/vm/web1.qcow2.autoinstall.json'


def test_the_installer_sets_up_at_most_one_user():
    """install.sub asks "Setup a user?" once: a second login in the plan adds no questions."""
    one = [asked.text for asked in expected_questions(InstallPlan(hostname='web1', users=['alice']))]
    two = [asked.text for asked in expected_questions(InstallPlan(hostname='web1', users=['alice', 'bob']))]
    assert two == one
    assert [text for text in one if 'alice' in text] == [
        'Full name for user alice?', 'Password for user alice?', 'Public ssh key for user alice']


def test_catalogue_questions_are_frozen_because_the_catalogue_is_module_state_shared_by_every_check():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CATALOGUE[0].interactive_only = False
    assert CATALOGUE[0].interactive_only is True


def test_asked_is_frozen_because_expected_questions_repeats_one_object_for_every_set_line():
    asked = [item for item in expected_questions(InstallPlan(hostname='web1', set_lines=2)) if item.text == SETS_QUESTION]
    assert len(asked) == 3 and asked[0] is asked[1] is asked[2]
    with pytest.raises(dataclasses.FrozenInstanceError):
        asked[0].default = '-game*'
    assert asked[2].default == 'done'


def test_response_lines_are_frozen_because_simulate_hands_out_the_parsed_lines_themselves():
    result = simulate('Terminal type = vt100\nFavourite colour = blue\n', [Asked('Terminal type?', 'vt220')])
    answered, leftover = result.answers[0][1], result.leftover[0]
    assert (answered.lineno, answered.render(), leftover.lineno, leftover.render()) == (
        1, 'Terminal type = vt100', 2, 'Favourite colour = blue')
    with pytest.raises(dataclasses.FrozenInstanceError):
        answered.answer = 'xterm'


def test_the_default_plan_asks_exactly_these_questions_in_this_order():
    """InstallPlan's defaults: vio0 on DHCP and SLAAC (no DNS questions), sshd on, no user, auto layout, one set line."""
    assert [(asked.text, asked.default) for asked in expected_questions(InstallPlan(hostname='web1'))] == [
        ('Terminal type?', 'vt220'),
        ("System hostname? (short form, e.g. 'foo')", 'web1'),
        ("Network interface to configure? (name, lladdr, '?', or 'done')", 'vio0'),
        ("IPv4 address for vio0? (or 'autoconf' or 'none')", 'autoconf'),
        ("IPv6 address for vio0? (or 'autoconf' or 'none')", 'autoconf'),
        ("Network interface to configure? (name, lladdr, '?', or 'done')", 'done'),
        ('Password for root account?', None),
        ('Public ssh key for root account?', 'none'),
        ('Start sshd(8) by default?', 'yes'),
        ('Change the default console to com0?', 'yes'),
        ('Which speed should com0 use?', '115200'),
        ("Setup a user? (enter a lower-case loginname, or 'no')", 'no'),
        ('Allow root ssh login? (yes, no, prohibit-password)', 'no'),
        ("Which disk is the root disk? ('?' for details)", 'sd0'),
        ('Encrypt the root disk with a (p)assphrase or (k)eydisk?', 'no'),
        ('Use (W)hole disk MBR, whole disk (G)PT or (E)dit?', 'whole'),
        ('URL to autopartitioning template for disklabel?', 'none'),
        ('Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout?', 'a'),
        ('Which disk do you wish to initialize?', 'done'),
        ("Location of sets? (disk http nfs or 'done')", 'http'),
        ("HTTP proxy URL? (e.g. 'http://proxy:8080', or 'none')", 'none'),
        ("HTTP Server? (hostname or 'done')", None),
        ('Server directory?', 'pub/OpenBSD/7.8/amd64'),
        # one for the set line, then the default 'done' that ends the selection
        ("Set name(s)? (or 'abort' or 'done')", 'done'),
        ("Set name(s)? (or 'abort' or 'done')", 'done'),
        ("Location of sets? (disk http nfs or 'done')", 'done'),
        ("What timezone are you in? ('?' for list)", None),
    ]
    without_sshd = [asked.text for asked in expected_questions(InstallPlan(hostname='web1', sshd=False))]
    assert 'Allow root ssh login? (yes, no, prohibit-password)' not in without_sshd
