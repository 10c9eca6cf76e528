# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The OpenBSD installer's questions and its response-file matching rules.

One place for these facts (install.sub 1.1288, see the collection's reference
notes autoinstall-facts.md §4 and installer-questions.txt):

* a response file line is ``key = answer``; blank lines, ``#`` lines, lines
  starting with ``=``, lines without ``=`` and lines with nothing after the
  first ``=`` are ignored; the split is at the leftmost ``=``;
* a key matches a question when, compared case-insensitively, it occurs at the
  start of the question or right after a blank, and is followed by the end of
  the question, a blank or ``?``;
* the first matching line in file order answers a question and is consumed;
* a question without a default that finds no line aborts the install.

The action plugin uses this to check a response file before publishing it.
Standard library only.
"""

from __future__ import annotations

import difflib
import re

from dataclasses import dataclass, field

# Stands for run-time text in a question template (interface, login, ...).
_PLACEHOLDER = re.compile(r'<[^<>]+>')
_ANY = '\x00'


@dataclass(frozen=True)
class Question:
    """One installer question: its prompt without the ``[default]`` part."""

    template: str
    # None: the question has no default and must be answered.
    default: str | None
    # Only asked before a response file exists; a response file cannot answer it.
    interactive_only: bool = False


# Prompts as the installer matches them: no "[default]" suffix, and for ask_which
# questions ("Which ...?") without the " (or 'done')" tail.
CATALOGUE = (
    Question("(I)nstall, (U)pgrade, (A)utoinstall or (S)hell?", None, interactive_only=True),
    Question("Which network interface should be used for the initial DHCP request?", None, interactive_only=True),
    Question("Response file location?", None, interactive_only=True),
    Question("(I)nstall or (U)pgrade?", None, interactive_only=True),
    Question("Terminal type?", 'vt220'),
    Question("Choose your keyboard layout ('?' or 'L' for list)", 'default'),
    Question("System hostname? (short form, e.g. 'foo')", '<hostname>'),
    Question("Network interface to configure? (name, lladdr, '?', or 'done')", '<if>'),
    Question("Which interface:tag should <vlanN> be on?", '<if>:<N>'),
    Question("Access point? (ESSID, 'any', list# or '?')", 'any'),
    Question("Security protocol? (O)pen, (W)EP, WPA-(P)SK", 'O'),
    Question("WEP key?", None),
    Question("WPA passphrase?", None),
    Question("Symbolic (host) name for <if>?", '<hostname>'),
    Question("IPv4 address for <if>? (or 'autoconf' or 'none')", 'autoconf'),
    Question("Netmask for <if>?", '255.255.255.0'),
    Question("IPv6 address for <if>? (or 'autoconf' or 'none')", 'autoconf'),
    Question("IPv6 prefix length for <if>?", '64'),
    Question("Default IPv4 route? (IPv4 address or 'none')", None),
    Question("IPv6 default router? (IPv6 address or 'none')", 'none'),
    Question("IPv6 default router? (IPv6 address, list#, 'none' or '?')", 'none'),
    Question("DNS domain name? (e.g. 'example.com')", 'my.domain'),
    Question("DNS nameservers? (IP address list or 'none')", 'none'),
    Question("Password for root account?", None),
    Question("Public ssh key for root account?", 'none'),
    Question("Start sshd(8) by default?", 'yes'),
    Question("Do you expect to run the X Window System?", 'yes'),
    Question("Do you want the X Window System to be started by xenodm(1)?", 'no'),
    Question("Change the default console to <com0>?", 'yes'),
    Question("Which speed should <com0> use?", '115200'),
    Question("Setup a user? (enter a lower-case loginname, or 'no')", 'no'),
    Question("No really, what is the lower-case loginname, or 'no'?", 'no'),
    Question("Full name for user <login>?", '<login>'),
    Question("Password for user <login>?", None),
    Question("Public ssh key for user <login>", 'none'),
    Question("Allow root ssh login? (yes, no, prohibit-password)", 'no'),
    # Offline (no ftplist.cgi answer, the usual case on a vmd network) there is no default.
    Question("What timezone are you in? ('?' for list)", None),
    Question("What sub-timezone of '<zone>' are you in? ('?' for list)", None),
    Question("Which disk is the root disk? ('?' for details)", 'sd0'),
    Question("Encrypt the root disk with a (p)assphrase or (k)eydisk?", 'no'),
    Question("New passphrase?", None),
    Question("Which disk contains the key disk?", '<disk>'),
    Question("Which <disk> partition is the key disk?", '<part>'),
    Question("Use (W)hole disk MBR, whole disk (G)PT or (E)dit?", 'whole'),
    Question("Use (W)hole disk MBR, whole disk (G)PT, (O)penBSD area or (E)dit?", 'OpenBSD'),
    Question("An EFI/GPT disk may not boot. Proceed?", 'no'),
    Question("URL to autopartitioning template for disklabel?", 'none'),
    Question("Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout?", 'a'),
    Question("Which disk do you wish to initialize?", 'done'),
    Question("Location of sets? (<cd devices> disk http nfs or 'done')", 'http'),
    Question("HTTP proxy URL? (e.g. 'http://proxy:8080', or 'none')", 'none'),
    Question("HTTP Server? (hostname, list#, 'done' or '?')", '<mirror>'),
    # Offline: no mirror list, no default.
    Question("HTTP Server? (hostname or 'done')", None),
    Question("Server directory?", 'pub/OpenBSD/<release>/<arch>'),
    Question("Is the disk partition already mounted?", 'no'),
    Question("Which disk contains the install media?", '<disk>'),
    Question("Which disk contains the upgrade media?", '<disk>'),  # upgrades only
    Question("Which <dev> partition has the install sets?", '<part>'),
    Question("Which <dev> partition has the upgrade sets?", '<part>'),  # upgrades only
    Question("Pathname to the sets? (or 'done')", '<release>/<arch>'),
    Question("Server IP address or hostname?", None),
    Question("Filesystem on server to mount?", None),
    Question("Use TCP transport? (requires TCP-capable NFS server)", 'no'),
    Question("INSTALL.<arch> not found. Use sets found here anyway?", 'no'),
    Question("Set name(s)? (or 'abort' or 'done')", 'done'),
    Question("Fetching of <file> failed. Continue anyway?", 'no'),
    Question("Checksum test for <file> failed. Continue anyway?", 'no'),
    Question("Directory does not contain SHA256.sig. Continue without verification?", 'no'),
    Question("Cannot determine prefetch area. Continue without verification?", 'no'),
    Question("Cannot create prefetch area. Continue without verification?", 'no'),
    Question("Cannot fetch SHA256.sig. Continue without verification?", 'no'),
    Question("Signature check of SHA256.sig failed. Continue without verification?", 'no'),
    Question("Unverified sets: <list>. Continue without verification?", 'no'),
    Question("Installation of <file> failed. Continue anyway?", 'no'),
    Question("Are you *SURE* your install is complete without '<set>'?", 'no'),
    Question("Are you *SURE* your upgrade is complete without '<set>'?", 'no'),  # upgrades only
    Question("Time appears wrong.  Set to '<date>'?", 'yes'),
    Question("Force checking of clean non-root filesystems?", 'no'),  # upgrades only
    Question("Continue anyway?", 'no'),  # upgrades only
)


class ResponseFileError(ValueError):
    """A response file (or the answers for one) would not work with the installer."""


@dataclass(frozen=True)
class ResponseLine:
    """One effective ``key = answer`` line of a response file."""

    lineno: int
    key: str
    answer: str

    def render(self):
        return '%s = %s' % (self.key, self.answer)


def parse_response_file(text):
    """The effective lines of a response file, in file order (install.sub's rules)."""
    lines = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#') or line.startswith('=') or '=' not in line:
            continue
        key, answer = line.split('=', 1)
        key, answer = key.rstrip(), answer.lstrip()
        if not answer:
            continue
        lines.append(ResponseLine(lineno, key, answer))
    return lines


def _bounded_end(text, index):
    """True if ``index`` is the end of ``text`` or sits on a blank or '?'."""
    return index == len(text) or text[index] in ' ?'


def key_matches(key, question):
    """install.sub's test: word-bounded, case-insensitive substring, followed by end, blank or '?'."""
    key, question = key.lower(), question.lower()
    if not key:
        return False
    start = question.find(key)
    while start != -1:
        if (start == 0 or question[start - 1] == ' ') and _bounded_end(question, start + len(key)):
            return True
        start = question.find(key, start + 1)
    return False


def _pattern(template):
    """A template with each <placeholder> replaced by one wildcard character."""
    return _PLACEHOLDER.sub(_ANY, template.lower())


def _match_from(key, ki, pattern, pi, literal=False):
    """Does key[ki:] match pattern at pi so that the match ends on a boundary?

    ``literal`` records whether some question text (not only run-time text) was matched:
    a key made only of run-time text (e.g. ``password`` against ``<if>``) answers nothing.
    """
    while ki < len(key):
        if pi == len(pattern):
            return False
        if pattern[pi] == _ANY:
            # Run-time text: one or more characters without blanks or '?'.
            end = ki
            while end < len(key) and key[end] not in ' ?':
                end += 1
                if _match_from(key, end, pattern, pi + 1, literal):
                    return True
            return False
        if key[ki] != pattern[pi]:
            return False
        literal = True
        ki += 1
        pi += 1
    # A key that ends right before a placeholder ends on the wildcard, which is no boundary.
    return literal and _bounded_end(pattern, pi)


def key_matches_template(key, template):
    """Could ``key`` match the question ``template`` for some run-time text in its placeholders?"""
    key, pattern = key.lower(), _pattern(template)
    # An empty key matches nothing: _match_from finds no question text in it.
    for start in range(len(pattern)):
        if start == 0 or pattern[start - 1] == ' ':
            if _match_from(key, 0, pattern, start):
                return True
    return False


def catalogue_matches(key, include_interactive=False):
    """The catalogue questions that ``key`` can answer."""
    return [question for question in CATALOGUE
            if (include_interactive or not question.interactive_only) and key_matches_template(key, question.template)]


def nearest_questions(key, count=3):
    """The catalogue questions most like ``key`` (for error messages)."""
    key_words = key.lower().split()
    scored = []
    for question in CATALOGUE:
        if question.interactive_only:
            continue
        words = question.template.lower().replace('?', ' ').split()
        whole = difflib.SequenceMatcher(None, key.lower(), question.template.lower()).ratio()
        best = whole
        width = max(1, len(key_words))
        for start in range(max(1, len(words) - width + 1)):
            window = ' '.join(words[start:start + width])
            best = max(best, difflib.SequenceMatcher(None, ' '.join(key_words), window).ratio())
        scored.append((best, question.template))
    scored.sort(key=lambda item: -item[0])
    return [template for score, template in scored[:count]]


def check_answer_key(key):
    """Raise ResponseFileError unless ``key`` answers some question a response file can answer."""
    if catalogue_matches(key):
        return
    interactive = catalogue_matches(key, include_interactive=True)
    if interactive:
        raise ResponseFileError('answer %r matches only %r, which the installer asks before it reads a response file'
                                % (key, interactive[0].template))
    raise ResponseFileError('answer %r matches no installer question; nearest questions: %s'
                            % (key, '; '.join(repr(text) for text in nearest_questions(key))))


@dataclass(frozen=True)
class Asked:
    """A question as the installer will ask it in one install (run-time text filled in)."""

    text: str
    default: str | None


@dataclass
class Simulation:
    """What a response file answers along an expected question sequence."""

    answers: list = field(default_factory=list)   # (Asked, ResponseLine or None, effective answer or None)
    unanswered: list = field(default_factory=list)  # Asked questions without default and without a line
    leftover: list = field(default_factory=list)  # ResponseLines no expected question consumed

    def answer_for(self, text):
        for asked, line, effective in self.answers:
            if asked.text == text:
                return effective
        return None


def simulate(text, asked_sequence):
    """Answer ``asked_sequence`` from response file ``text`` the way the installer does."""
    working = parse_response_file(text)
    result = Simulation()
    for asked in asked_sequence:
        line = next((candidate for candidate in working if key_matches(candidate.key, asked.text)), None)
        if line is not None:
            working.remove(line)
            result.answers.append((asked, line, line.answer))
        elif asked.default is None:
            result.unanswered.append(asked)
            result.answers.append((asked, None, None))
        else:
            result.answers.append((asked, None, asked.default))
    result.leftover = working
    return result


@dataclass
class InstallPlan:
    """The facts about one install that decide which questions the installer asks."""

    hostname: str
    interface: str = 'vio0'
    ipv4: str = 'autoconf'        # 'autoconf', 'none' or 'a.b.c.d/len'
    ipv6: str = 'autoconf'        # 'autoconf', 'none' or 'addr/len'
    sshd: bool = True
    users: list = field(default_factory=list)  # login names set up by the installer (at most one)
    disklabel_template: bool = False
    set_lines: int = 1
    site_set: str | None = None   # file name of the site set, if any
    release: str = '7.8'
    arch: str = 'amd64'
    console: str = 'com0'


def expected_questions(plan):
    """The questions an unattended install of ``plan`` asks under vmd, in order.

    The situation modelled: netbooted amd64 ramdisk on vmd's serial console, one
    disk, no ftplist.cgi answer (isolated vmd network), sets over HTTP.
    """
    q = Asked
    interface = plan.interface
    asked = [
        q("Terminal type?", 'vt220'),
        q("System hostname? (short form, e.g. 'foo')", plan.hostname),
        q("Network interface to configure? (name, lladdr, '?', or 'done')", interface),
        q("IPv4 address for %s? (or 'autoconf' or 'none')" % interface, 'autoconf'),
        q("IPv6 address for %s? (or 'autoconf' or 'none')" % interface, 'autoconf'),
        q("Network interface to configure? (name, lladdr, '?', or 'done')", 'done'),
    ]
    static_ipv4 = plan.ipv4 not in ('autoconf', 'none')
    static_ipv6 = plan.ipv6 not in ('autoconf', 'none')
    if static_ipv4:
        asked.append(q("Default IPv4 route? (IPv4 address or 'none')", None))
    if static_ipv6:
        asked.append(q("IPv6 default router? (IPv6 address or 'none')", 'none'))
    if plan.ipv4 != 'autoconf':
        # Skipped when the one configured interface uses DHCP (the lease supplies them).
        asked.append(q("DNS domain name? (e.g. 'example.com')", 'my.domain'))
        asked.append(q("DNS nameservers? (IP address list or 'none')", 'none'))
    asked += [
        q("Password for root account?", None),
        q("Public ssh key for root account?", 'none'),
        q("Start sshd(8) by default?", 'yes'),
        q("Change the default console to %s?" % plan.console, 'yes'),
        q("Which speed should %s use?" % plan.console, '115200'),
        q("Setup a user? (enter a lower-case loginname, or 'no')", 'no'),
    ]
    for login in plan.users[:1]:
        asked += [
            q("Full name for user %s?" % login, login),
            q("Password for user %s?" % login, None),
            q("Public ssh key for user %s" % login, 'none'),
        ]
    if plan.sshd:
        asked.append(q("Allow root ssh login? (yes, no, prohibit-password)", 'no'))
    asked += [
        q("Which disk is the root disk? ('?' for details)", 'sd0'),
        q("Encrypt the root disk with a (p)assphrase or (k)eydisk?", 'no'),
        q("Use (W)hole disk MBR, whole disk (G)PT or (E)dit?", 'whole'),
        q("URL to autopartitioning template for disklabel?", 'none'),
    ]
    if not plan.disklabel_template:
        asked.append(q("Use (A)uto layout, (E)dit auto layout, or create (C)ustom layout?", 'a'))
    asked += [
        q("Which disk do you wish to initialize?", 'done'),
        q("Location of sets? (disk http nfs or 'done')", 'http'),
        q("HTTP proxy URL? (e.g. 'http://proxy:8080', or 'none')", 'none'),
        q("HTTP Server? (hostname or 'done')", None),
        q("Server directory?", 'pub/OpenBSD/%s/%s' % (plan.release, plan.arch)),
    ]
    asked += [q("Set name(s)? (or 'abort' or 'done')", 'done')] * (plan.set_lines + 1)
    if plan.site_set:
        # A site set is not in the signed SHA256: its checksum test fails, then it is listed as unverified.
        asked.append(q("Checksum test for %s failed. Continue anyway?" % plan.site_set, 'no'))
        asked.append(q("Unverified sets: %s. Continue without verification?" % plan.site_set, 'no'))
    asked += [
        q("Location of sets? (disk http nfs or 'done')", 'done'),
        q("What timezone are you in? ('?' for list)", None),
    ]
    return asked


def check_response_file(text, plan):
    """Check a generated response file against the installer; return the Simulation.

    Raises ResponseFileError when a line matches no question a response file can
    answer, or when a question without default would find no answer.
    """
    for line in parse_response_file(text):
        check_answer_key(line.key)
    result = simulate(text, expected_questions(plan))
    if result.unanswered:
        raise ResponseFileError('the installer would abort: no answer for %s'
                                % '; '.join(repr(asked.text) for asked in result.unanswered))
    return result


# -- what a completed install records beside its disk -----------------------

MANIFEST_VERSION = 1


def manifest_path(disk):
    """The manifest lives beside the disk image."""
    return disk + '.autoinstall.json'


def manifest_matches(manifest, identity, inputs_sha256):
    """Does ``manifest`` say the disk with ``identity`` holds a completed install of ``inputs_sha256``?

    ``identity`` is the disk's {path, device, inode} now (None if the disk is missing): a disk
    re-created under the same name has another inode and is installed again.
    """
    if not manifest or not identity or manifest.get('version') != MANIFEST_VERSION:
        return False
    return manifest.get('disk') == identity and manifest.get('inputs_sha256') == inputs_sha256
