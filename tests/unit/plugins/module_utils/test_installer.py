# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The installer's response-file rules (autoinstall-facts.md §4) and the question model."""

from __future__ import annotations

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils.installer import (
    MANIFEST_VERSION, Asked, InstallPlan, ResponseFileError, catalogue_matches, check_answer_key, check_response_file,
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
    # and "password" matches only the questions whose own text says password
    assert sorted(q.template for q in catalogue_matches('password')) == [
        'Password for root account?', 'Password for user <login>?']


def test_unknown_key_error_lists_the_nearest_questions():
    with pytest.raises(ResponseFileError) as info:
        check_answer_key('Pasword for root acount')
    message = str(info.value)
    assert 'matches no installer question' in message
    assert "'Password for root account?'" in message
    assert nearest_questions('Timezone')[0].startswith('What timezone')


@pytest.mark.parametrize('key, question', [
    ('Response file location', 'Response file location?'),
    ('initial DHCP request', 'Which network interface should be used for the initial DHCP request?'),
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
