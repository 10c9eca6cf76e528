# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_send (vmm_disk_send): a file sent through a fake ssh that, like the real one, joins the words after the host
with blanks and runs them with sh -c, so the peer's real commands run here (with a fake OpenBSD sha256 -q); the rate
limit with an injected clock; the progress file and the takeover of an older sender with real processes."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_send
from ansible_collections.openbsd.vmm.plugins.module_utils.disk_send import CHUNK, Progress, SendError, Throttle

FAKE_SSH = r'''#!%(python)s
# ssh as the tests need it: records its argv, fails like ssh when told to, else joins the words after the host with
# blanks and runs them with sh -c (stdin, stdout and stderr its own), as sshd hands them to the login shell.
import json, os, sys
args = sys.argv[1:]
with open(os.environ['FAKE_SSH_LOG'], 'a') as log:
    log.write(json.dumps(dict(argv=sys.argv, pid=os.getpid())) + '\n')
options = {}
while args and args[0] in ('-o', '-p', '-l'):
    options.setdefault(args[0], []).append(args[1])
    args = args[2:]
if args[:1] == ['--']:
    args = args[1:]
host, command = args[0], ' '.join(args[1:])
status = os.environ.get('FAKE_SSH_EXIT')
if status is not None and os.environ.get('FAKE_SSH_EXIT_WHEN', '') in command:
    sys.stderr.write('ssh: connect to host %%s port %%s: Connection refused\n' %% (host, options['-p'][-1]))
    sys.exit(int(status))
os.execvp('sh', ['sh', '-c', command])
'''

FAKE_SHA256 = r'''#!/bin/sh
# OpenBSD's sha256 -q FILE prints the hex digest alone (md5(1)); sha256sum prints it before the name.
[ "$1" = -q ] || { echo "fake sha256: only -q FILE" >&2; exit 64; }
[ -z "$FAKE_SHA256_FAIL" ] || { echo "sha256: $2: Input/output error" >&2; exit 1; }
[ -z "$FAKE_SHA256_SLEEP" ] || { echo $$ > "${FAKE_SSH_LOG%/*}/sha256.pid"; exec sleep "$FAKE_SHA256_SLEEP"; }
if [ -n "$FAKE_SHA256_WRONG" ]; then echo "$FAKE_SHA256_WRONG"; exit 0; fi
out=$(sha256sum -- "$2") || exit 1
echo "${out%% *}"
'''


class Peer(object):
    """The fake ssh and sha256 on PATH, the log of ssh's argv, the files of a send."""

    def __init__(self, tmp_path, monkeypatch):
        self.bin = tmp_path / 'bin'
        self.bin.mkdir()
        (self.bin / 'ssh').write_text(FAKE_SSH % dict(python=sys.executable))
        (self.bin / 'sha256').write_text(FAKE_SHA256)
        for name in ('ssh', 'sha256'):
            os.chmod(str(self.bin / name), 0o755)
        self.log = tmp_path / 'ssh.log'
        monkeypatch.setenv('PATH', '%s:%s' % (self.bin, os.environ['PATH']))
        monkeypatch.setenv('FAKE_SSH_LOG', str(self.log))
        for name in ('FAKE_SSH_EXIT', 'FAKE_SSH_EXIT_WHEN', 'FAKE_SHA256_FAIL', 'FAKE_SHA256_SLEEP', 'FAKE_SHA256_WRONG'):
            monkeypatch.delenv(name, raising=False)
        self.ssh = str(self.bin / 'ssh')
        (tmp_path / 'peer').mkdir()
        self.src = str(tmp_path / 'image')
        self.dest = str(tmp_path / 'peer' / 'image.copy')
        self.progress = str(tmp_path / 'image.progress')

    def calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def params(self, **changes):
        params = dict(src=self.src, dest=self.dest, host='peer', user='root', port=22, ssh_options=[], bwlimit=None, mode='0600',
                      progress=self.progress)
        params.update(changes)
        return params

    def lines(self):
        with open(self.progress) as handle:
            return handle.read().splitlines()


@pytest.fixture
def peer(tmp_path, monkeypatch):
    return Peer(tmp_path, monkeypatch)


def data(size, seed=1):
    return random.Random(seed).randbytes(size)


class Clock(object):
    """A clock that only moves when slept on."""

    def __init__(self, now=1000.0):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


PERCENTS = ['%d%%' % n for n in range(0, 101, 10)]
DONE = re.compile(r'done ([0-9]+) bytes in ([0-9]+\.[0-9]) s')


# --- a send through the fake ssh ---------------------------------------------------------------------------------

def test_a_file_arrives_byte_for_byte_with_its_mode(peer):
    content = data(5 * CHUNK + 1234)
    with open(peer.src, 'wb') as handle:
        handle.write(content)
    result = disk_send.run(peer.params(mode='0640', port=2222, user='vmmsend', ssh_options=['StrictHostKeyChecking=accept-new', 'ConnectTimeout=5']),
                           peer.ssh)
    with open(peer.dest, 'rb') as handle:
        assert handle.read() == content
    assert stat.S_IMODE(os.stat(peer.dest).st_mode) == 0o640
    assert sorted(os.listdir(os.path.dirname(peer.dest))) == ['image.copy']
    sha256 = hashlib.sha256(content).hexdigest()
    receive = "umask 077 && rm -f %s.send && exec cat > %s.send" % (peer.dest, peer.dest)
    expected = [peer.ssh, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new', '-o', 'ConnectTimeout=5', '-p', '2222', '-l', 'vmmsend',
                '--', 'peer']
    assert result['cmd'] == expected + [receive]
    assert result['changed'] is True and result['bytes'] == len(content) and result['sha256'] == sha256
    assert result['dest'] == peer.dest and result['host'] == 'peer' and result['stopped'] is None
    assert result['seconds'] > 0 and result['rate'] == pytest.approx(len(content) / result['seconds'], rel=0.02)
    calls = peer.calls()
    assert [call['argv'] for call in calls][0] == expected + [receive]
    # the check is one argv word after the host too: the peer's shell gets it whole
    check = calls[1]['argv']
    assert len(calls) == 2 and check[:-1] == expected and 'sha256 -q %s.send' % peer.dest in check[-1] and sha256 in check[-1]
    lines = peer.lines()
    assert lines[0] == 'pid %d' % os.getpid() and lines[1:-1] == PERCENTS
    assert DONE.fullmatch(lines[-1]).group(1) == str(len(content))


def test_an_empty_file_is_sent_with_0_then_100_percent(peer):
    open(peer.src, 'wb').close()
    result = disk_send.run(peer.params(), peer.ssh)
    assert result['bytes'] == 0 and result['sha256'] == hashlib.sha256(b'').hexdigest()
    assert os.path.getsize(peer.dest) == 0 and stat.S_IMODE(os.stat(peer.dest).st_mode) == 0o600
    lines = peer.lines()
    assert lines[1:3] == ['0%', '100%'] and DONE.fullmatch(lines[3]).group(1) == '0' and len(lines) == 4


def test_paths_with_blanks_and_quotes_reach_the_peer_quoted(peer, tmp_path):
    odd = tmp_path / "peer" / "it's a disk"
    odd.mkdir()
    with open(peer.src, 'wb') as handle:
        handle.write(b'x' * 1000)
    dest = str(odd / 'image; rm -rf x $(y)')
    disk_send.run(peer.params(dest=dest, mode='600'), peer.ssh)
    with open(dest, 'rb') as handle:
        assert handle.read() == b'x' * 1000
    assert os.listdir(str(odd)) == ['image; rm -rf x $(y)']


def test_a_file_that_grows_while_it_is_sent_ends_at_100_percent_with_what_was_read(peer, monkeypatch):
    content = data(4 * CHUNK)
    with open(peer.src, 'wb') as handle:
        handle.write(content)
    reach = Progress.reach

    def grow(progress, percent, step):
        if percent == 50:
            with open(peer.src, 'ab') as handle:
                handle.write(b'more')
        return reach(progress, percent, step)

    monkeypatch.setattr(Progress, 'reach', grow)
    result = disk_send.run(peer.params(), peer.ssh)
    assert result['bytes'] == len(content) + 4 and result['sha256'] == hashlib.sha256(content + b'more').hexdigest()
    assert peer.lines()[1:-1] == PERCENTS


def test_percent_lines_are_each_multiple_of_ten_first_reached():
    assert [disk_send.reached(sent, 100) for sent in (0, 9, 10, 19, 20, 99, 100, 150)] == [0, 0, 10, 10, 20, 90, 100, 100]
    assert disk_send.reached(0, 0) == 100 and disk_send.reached(0, 1) == 0 and disk_send.reached(1, 1) == 100
    assert disk_send.reached(CHUNK, 10 * CHUNK) == 10 and disk_send.reached(CHUNK - 1, 10 * CHUNK) == 0


# --- the rate limit, with an injected clock ---------------------------------------------------------------------

def test_the_throttle_never_lets_more_than_rate_times_t_plus_one_chunk_through():
    clock = Clock()
    throttle = Throttle(100000, clock, clock.sleep)
    sent, start = 0, clock()
    for size in [CHUNK] * 20 + [100]:
        throttle.wait(size)
        sent += size
        elapsed = clock() - start
        assert sent <= 100000 * elapsed + CHUNK + 1e-6
        # and no slower than that: each write goes as soon as it may
        assert elapsed == pytest.approx(max(0.0, (sent - CHUNK) / 100000.0))
    assert sum(clock.slept) == pytest.approx((20 * CHUNK + 100 - CHUNK) / 100000.0)


def test_the_throttle_sleeps_again_when_a_sleep_ends_early():
    clock = Clock()
    naps = []

    def short_sleep(seconds):
        naps.append(seconds)
        clock.now += seconds / 2

    throttle = Throttle(CHUNK, clock, short_sleep)
    throttle.wait(CHUNK)
    assert naps == []
    throttle.wait(CHUNK)
    assert clock() >= 1001.0 and len(naps) > 1 and naps[0] == 1.0


def test_without_a_rate_the_throttle_never_sleeps():
    clock = Clock()
    throttle = Throttle(None, clock, clock.sleep)
    for dummy in range(10):
        throttle.wait(CHUNK)
    assert clock.slept == [] and throttle.sent == 10 * CHUNK


def test_a_send_with_bwlimit_follows_the_schedule(peer, monkeypatch):
    content = data(16 * CHUNK)
    with open(peer.src, 'wb') as handle:
        handle.write(content)
    clock = Clock()
    writes = []
    write_all = disk_send._write_all

    def recorded(pipe, chunk):
        writes.append((clock(), len(chunk)))
        return write_all(pipe, chunk)

    monkeypatch.setattr(disk_send, '_write_all', recorded)
    result = disk_send.run(peer.params(bwlimit='64K'), peer.ssh, clock=clock, sleep=clock.sleep)
    # 64 KiB/s with one chunk ahead: chunk k (from 0) goes at k seconds
    assert [when - 1000.0 for when, size in writes] == [float(k) for k in range(16)]
    assert result['seconds'] == 15.0 and result['rate'] == round(16 * CHUNK / 15.0, 1)
    assert peer.lines()[-1] == 'done %d bytes in 15.0 s' % (16 * CHUNK)
    with open(peer.dest, 'rb') as handle:
        assert handle.read() == content


# --- refusals -----------------------------------------------------------------------------------------------------

HOST_RULE = ('host: must be a host name (letters, digits, -, _ and dots, starting and ending with a letter or digit), an IPv4 address '
             'or an IPv6 address without brackets')
REFUSED = [
    (dict(host='peer\n'), HOST_RULE + " (got 'peer\\n')"),
    (dict(host='-oProxyCommand=touch /tmp/x'), "host: must be a host name"),
    (dict(host='[::1]'), "host: must be a host name"),
    (dict(host='fe80::1::2'), HOST_RULE + "; 'fe80::1::2' is not an IPv6 address"),
    (dict(host='fe80::1%em0 x'), HOST_RULE + " (got 'fe80::1%em0 x')"),
    (dict(host='10.0.0.256'), HOST_RULE + "; '10.0.0.256' is not an IPv4 address"),
    (dict(host='root@peer'), "host: must be a host name"),
    (dict(host='peer-'), "host: must be a host name"),
    (dict(host='a' * 64), "host: must be a host name"),
    (dict(host=''), "host: must be a host name"),
    (dict(host=None), "host: must be a host name"),
    (dict(dest='relative/image'), "dest: must be an absolute path on the peer, not ending in /, without line breaks, NULs or other control characters "
                                  "(got 'relative/image')"),
    (dict(dest='/var/vmm/image\n'), "dest: must be an absolute path on the peer"),
    (dict(dest='/var/vmm/ima\x00ge'), "dest: must be an absolute path on the peer"),
    (dict(dest='/var/vmm/'), "dest: must be an absolute path on the peer"),
    (dict(dest='/'), "dest: must be an absolute path on the peer"),
    (dict(dest=None), "dest: must be an absolute path on the peer"),
    (dict(user='Root'), "user: must be a login name of at most 32 characters (a-z, 0-9, _, . and -, not starting with a digit, . or -), got 'Root'"),
    (dict(user='-oroot'), "user: must be a login name"),
    (dict(user='root\n'), "user: must be a login name"),
    (dict(user='a' * 33), "user: must be a login name"),
    (dict(port=0), "port: must be a number from 1 to 65535 (got 0)"),
    (dict(port=65536), "port: must be a number from 1 to 65535 (got 65536)"),
    (dict(port=True), "port: must be a number from 1 to 65535 (got True)"),
    (dict(ssh_options='BatchMode=no'), "ssh_options: must be a list of Name=value strings (got 'BatchMode=no')"),
    (dict(ssh_options=['ConnectTimeout=5', 'BatchMode = no']),
     "ssh_options: item 1 must be Name=value (a letter, then letters and digits, =, then a value without blanks), got 'BatchMode = no'"),
    (dict(ssh_options=['-oProxyCommand=x']), "ssh_options: item 0 must be Name=value"),
    (dict(ssh_options=['ProxyCommand=x\n']), "ssh_options: item 0 must be Name=value"),
    (dict(ssh_options=['Port=']), "ssh_options: item 0 must be Name=value"),
    (dict(bwlimit='1K'), "bwlimit: must be at least 64K (65536 bytes per second), got '1K'"),
    (dict(bwlimit='65535'), "bwlimit: must be at least 64K (65536 bytes per second), got '65535'"),
    (dict(bwlimit='fast'), "bwlimit: invalid size 'fast'"),
    (dict(bwlimit='20M\n'), "bwlimit: invalid size '20M\\n': blanks and line breaks are not allowed in a size"),
    (dict(mode='0o600'), "mode: must be an octal mode such as '0600' (got '0o600')"),
    (dict(mode='0800'), "mode: must be an octal mode such as '0600'"),
    (dict(mode='60'), "mode: must be an octal mode such as '0600'"),
    (dict(mode='006000'), "mode: must be an octal mode such as '0600'"),
    (dict(mode='0600\n'), "mode: must be an octal mode such as '0600'"),
    (dict(mode=384), "mode: must be an octal mode such as '0600' (got 384)"),
]


@pytest.mark.parametrize('change, message', REFUSED)
def test_refusals_name_the_parameter_and_its_rule_and_end_the_progress_file(peer, change, message):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    with pytest.raises(SendError) as refused:
        disk_send.run(peer.params(**change), peer.ssh)
    assert str(refused.value).startswith(message)
    assert peer.lines() == ['pid %d' % os.getpid(), 'failed: %s' % disk_send.one_line(refused.value)]
    assert peer.calls() == [] and os.listdir(os.path.dirname(peer.dest)) == []


@pytest.mark.parametrize('host', ['peer', 'vmm2.example.org', 'a' * 63, 'vmm_2', '1und1.de', '192.0.2.10', '2001:db8::10', 'fe80::1%em0', '::ffff:192.0.2.1'])
def test_host_names_and_addresses_are_accepted(host):
    assert disk_send.validate_host(host) == host


@pytest.mark.parametrize('mode, value', [('0600', 0o600), ('644', 0o644), ('2750', 0o2750), ('04755', 0o4755)])
def test_modes(peer, mode, value):
    open(peer.src, 'wb').close()
    assert disk_send.validate_request(peer.params(mode=mode))['mode'] == value


def test_bwlimit_is_a_size_of_at_least_64k(peer):
    open(peer.src, 'wb').close()
    assert disk_send.validate_request(peer.params(bwlimit='64K'))['bwlimit'] == 65536
    assert disk_send.validate_request(peer.params(bwlimit='1.5M'))['bwlimit'] == 1572864
    assert disk_send.validate_request(peer.params(bwlimit=None))['bwlimit'] is None


def test_a_src_that_is_not_a_regular_file_is_refused_on_the_progress_file(peer, tmp_path):
    for src, message in ((str(tmp_path / 'missing'), 'src: %s is not a regular file' % (tmp_path / 'missing')),
                         (str(tmp_path), 'src: %s is not a regular file' % tmp_path),
                         ('image', "src: must be an absolute path (got 'image')")):
        with pytest.raises(SendError, match='^%s$' % re.escape(message)):
            disk_send.run(peer.params(src=src), peer.ssh)
        assert peer.lines()[-1] == 'failed: ' + message
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    with pytest.raises(SendError, match=r'^progress: must not be src \(%s\)$' % re.escape(peer.src)):
        disk_send.run(peer.params(progress=peer.src), peer.ssh)
    with open(peer.src, 'rb') as handle:
        assert handle.read() == b'disk'


def test_a_progress_file_that_cannot_be_written_is_refused_before_anything(peer, tmp_path):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    for progress, message in (('image.progress', "progress: must be an absolute path (got 'image.progress')"),
                              (str(tmp_path / 'none' / 'p'), 'progress: the directory of %s does not exist' % (tmp_path / 'none' / 'p')),
                              (str(tmp_path), 'progress: %s is a directory' % tmp_path)):
        with pytest.raises(SendError, match='^%s$' % re.escape(message)):
            disk_send.run(peer.params(progress=progress), peer.ssh)
    os.symlink(peer.src, peer.progress)
    with pytest.raises(SendError, match=r'^progress: must not be src \(%s\)$' % re.escape(peer.src)):
        disk_send.run(peer.params(), peer.ssh)
    os.unlink(peer.progress)
    (tmp_path / 'elsewhere').write_text('a file of someone else')
    os.symlink(str(tmp_path / 'elsewhere'), peer.progress)
    with pytest.raises(SendError, match='^progress: %s is a symbolic link; give the file itself$' % re.escape(peer.progress)):
        disk_send.run(peer.params(), peer.ssh)
    assert (tmp_path / 'elsewhere').read_text() == 'a file of someone else'
    os.unlink(peer.progress)
    os.mkfifo(peer.progress)
    with pytest.raises(SendError, match='^progress: %s is not a regular file$' % re.escape(peer.progress)):
        disk_send.run(peer.params(), peer.ssh)
    with open(peer.src, 'rb') as handle:
        assert handle.read() == b'disk'
    assert peer.calls() == []


def test_no_ssh_on_path_is_said_on_the_progress_file(peer):
    open(peer.src, 'wb').close()
    with pytest.raises(SendError, match='^ssh: no ssh command found on PATH$'):
        disk_send.run(peer.params(), None)
    assert peer.lines()[-1] == 'failed: ssh: no ssh command found on PATH'
    with pytest.raises(SendError, match='^ssh: no ssh command found on PATH$'):
        disk_send.run(peer.params(), None, check_mode=True)


# --- failures on the way ------------------------------------------------------------------------------------------

def test_ssh_failing_is_named_with_its_stderr(peer, monkeypatch):
    with open(peer.src, 'wb') as handle:
        handle.write(data(3 * CHUNK))
    monkeypatch.setenv('FAKE_SSH_EXIT', '255')
    with pytest.raises(SendError) as failed:
        disk_send.run(peer.params(port=2222, user='vmmsend'), peer.ssh)
    message = 'ssh to vmmsend@peer port 2222 failed (exit 255): ssh: connect to host peer port 2222: Connection refused'
    assert str(failed.value) == message
    assert peer.lines()[-1] == 'failed: ' + message and peer.lines()[1] == '0%'
    assert os.listdir(os.path.dirname(peer.dest)) == []


def test_ssh_failing_at_the_check_is_named_too(peer, monkeypatch):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    monkeypatch.setenv('FAKE_SSH_EXIT', '255')
    monkeypatch.setenv('FAKE_SSH_EXIT_WHEN', 'sha256 -q')
    with pytest.raises(SendError, match=r'^ssh to root@peer port 22 failed \(exit 255\): ssh: connect to host peer port 22: Connection refused$'):
        disk_send.run(peer.params(), peer.ssh)
    assert peer.lines()[1:-1] == PERCENTS and peer.lines()[-1].startswith('failed: ssh to root@peer port 22 failed (exit 255)')


def test_an_ssh_that_ends_without_taking_the_file_and_without_an_error_is_a_failure(peer, monkeypatch):
    with open(peer.src, 'wb') as handle:
        handle.write(data(64 * CHUNK))
    monkeypatch.setenv('FAKE_SSH_EXIT', '0')
    with pytest.raises(SendError) as failed:
        disk_send.run(peer.params(), peer.ssh)
    match = re.fullmatch(r'writing %s\.send on peer failed: ssh ended after ([0-9]+) bytes of %s without an error'
                         % (re.escape(peer.dest), re.escape(peer.src)), str(failed.value))
    assert match and int(match.group(1)) < 64 * CHUNK and int(match.group(1)) % CHUNK == 0
    assert peer.lines()[-1].startswith('failed: writing ') and '100%' not in peer.lines()


def test_a_missing_directory_on_the_peer_names_dest_host_and_the_error(peer, tmp_path):
    with open(peer.src, 'wb') as handle:
        handle.write(data(3 * CHUNK))
    dest = str(tmp_path / 'nowhere' / 'image.copy')
    with pytest.raises(SendError) as failed:
        disk_send.run(peer.params(dest=dest, host='192.0.2.10'), peer.ssh)
    match = re.fullmatch(r'writing (.*)\.send on 192\.0\.2\.10 failed \(exit ([0-9]+)\): (.*)', str(failed.value))
    assert match and match.group(1) == dest and match.group(2) != '0' and '%s.send' % dest in match.group(3)
    assert peer.lines()[-1] == 'failed: ' + disk_send.one_line(failed.value)
    assert not os.path.exists(str(tmp_path / 'nowhere'))


def test_a_sha256_mismatch_removes_the_received_file_and_leaves_dest_alone(peer, monkeypatch):
    content = data(2 * CHUNK)
    with open(peer.src, 'wb') as handle:
        handle.write(content)
    with open(peer.dest, 'wb') as handle:
        handle.write(b'the older copy')
    monkeypatch.setenv('FAKE_SHA256_WRONG', 'ab' * 32)
    with pytest.raises(SendError) as failed:
        disk_send.run(peer.params(), peer.ssh)
    message = '%s.send on peer has sha256 %s, sent %s: removed; run again' % (peer.dest, 'ab' * 32, hashlib.sha256(content).hexdigest())
    assert str(failed.value) == message and peer.lines()[-1] == 'failed: ' + message
    assert os.listdir(os.path.dirname(peer.dest)) == ['image.copy']
    with open(peer.dest, 'rb') as handle:
        assert handle.read() == b'the older copy'
    os.unlink(peer.dest)
    with pytest.raises(SendError, match='has sha256 ab'):
        disk_send.run(peer.params(), peer.ssh)
    assert os.listdir(os.path.dirname(peer.dest)) == []


def test_a_sha256_that_fails_on_the_peer_is_named(peer, monkeypatch):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    monkeypatch.setenv('FAKE_SHA256_FAIL', '1')
    with pytest.raises(SendError) as failed:
        disk_send.run(peer.params(), peer.ssh)
    assert str(failed.value) == ('checking %s.send on peer and renaming it onto %s failed (exit 4): sha256: %s.send: Input/output error'
                                 % (peer.dest, peer.dest, peer.dest))
    assert not os.path.exists(peer.dest)


def test_a_dest_that_is_a_directory_on_the_peer_is_refused_not_filled(peer):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    os.mkdir(peer.dest)
    with pytest.raises(SendError) as failed:
        disk_send.run(peer.params(), peer.ssh)
    assert str(failed.value) == ('checking %s.send on peer and renaming it onto %s failed (exit 5): %s is a directory: removed %s.send'
                                 % (peer.dest, peer.dest, peer.dest, peer.dest))
    assert os.listdir(peer.dest) == [] and os.listdir(os.path.dirname(peer.dest)) == ['image.copy']


def test_an_unexpected_error_still_ends_the_progress_file(peer, monkeypatch):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')

    def raising(error):
        def broken(*args, **kwargs):
            raise error
        return broken

    monkeypatch.setattr(disk_send, 'send', raising(KeyError('boom')))
    with pytest.raises(KeyError):
        disk_send.run(peer.params(), peer.ssh)
    assert peer.lines() == ['pid %d' % os.getpid(), "failed: KeyError: 'boom'"]
    monkeypatch.setattr(disk_send, 'send', raising(OSError(5, 'Input/output error')))
    with pytest.raises(SendError, match=r'^\[Errno 5\] Input/output error$'):
        disk_send.run(peer.params(), peer.ssh)
    assert peer.lines()[-1] == 'failed: [Errno 5] Input/output error'


def test_check_mode_sends_nothing_and_leaves_the_progress_file(peer):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    result = disk_send.run(peer.params(host='2001:db8::10'), peer.ssh, check_mode=True)
    assert result == dict(changed=True, bytes=4, dest=peer.dest, host='2001:db8::10',
                          cmd=[peer.ssh, '-o', 'BatchMode=yes', '-p', '22', '-l', 'root', '--', '2001:db8::10',
                               'umask 077 && rm -f %s.send && exec cat > %s.send' % (peer.dest, peer.dest)])
    # one ssh call, which only tests the directory
    directory = os.path.dirname(peer.dest)
    assert [call['argv'][1:] for call in peer.calls()] == [
        ['-o', 'BatchMode=yes', '-p', '22', '-l', 'root', '--', '2001:db8::10', 'test -d %s && test -w %s' % (directory, directory)]]
    assert not os.path.exists(peer.progress) and os.listdir(directory) == []
    with open(peer.progress, 'w') as handle:
        handle.write('pid 1\n50%\n')
    with pytest.raises(SendError, match='^dest: must be an absolute path'):
        disk_send.run(peer.params(dest='x'), peer.ssh, check_mode=True)
    with open(peer.progress) as handle:
        assert handle.read() == 'pid 1\n50%\n'


def test_check_mode_names_a_peer_directory_it_cannot_write(peer):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    missing = os.path.join(os.path.dirname(peer.dest), 'nosuch')
    with pytest.raises(SendError) as failed:
        disk_send.run(peer.params(dest=missing + '/image', user='vmmsend', port=2222), peer.ssh, check_mode=True)
    assert str(failed.value) == (
        "cannot write %s on peer as vmmsend over SSH (port 2222, exit 1): the sending user's key must be in vmmsend's "
        "authorized_keys on peer and %s must exist and be writable by vmmsend" % (missing, missing))
    assert peer.calls() and not os.path.exists(missing) and not os.path.exists(peer.progress)


def test_check_mode_names_ssh_failing_with_its_message(peer, monkeypatch):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    monkeypatch.setenv('FAKE_SSH_EXIT', '255')
    monkeypatch.setenv('FAKE_SSH_EXIT_WHEN', 'test -d')
    with pytest.raises(SendError) as failed:
        disk_send.run(peer.params(host='vmm3.example.org'), peer.ssh, check_mode=True)
    assert str(failed.value).startswith(
        'cannot write %s on vmm3.example.org as root over SSH (port 22, exit 255: ssh: connect to host vmm3.example.org port 22: '
        'Connection refused): ' % os.path.dirname(peer.dest))
    assert not os.path.exists(peer.progress)


def test_the_sigterm_handler_is_put_back(peer):
    open(peer.src, 'wb').close()

    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        disk_send.run(peer.params(), peer.ssh)
        assert signal.getsignal(signal.SIGTERM) is mine
        with pytest.raises(SendError):
            disk_send.run(peer.params(host='-x'), peer.ssh)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def started_processes(monkeypatch):
    """The ssh processes a send starts, as Popen objects."""
    started = []
    popen = subprocess.Popen

    def recording(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(disk_send.subprocess, 'Popen', recording)
    return started


STOPPED = 'stopped by SIGTERM (a newer send of the same progress file takes over, or someone stopped it)'


def test_sigterm_stops_the_send_and_terminates_its_ssh(peer, monkeypatch):
    with open(peer.src, 'wb') as handle:
        handle.write(data(8 * CHUNK))
    started = started_processes(monkeypatch)
    clock = Clock()
    end = disk_send._end

    def sigterm(seconds):
        os.kill(os.getpid(), signal.SIGTERM)
        clock.sleep(seconds)

    def sigterm_again(process, grace=disk_send.GRACE):
        os.kill(os.getpid(), signal.SIGTERM)        # a second one while it cleans up: ignored
        return end(process, grace)

    monkeypatch.setattr(disk_send, '_end', sigterm_again)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SendError, match='^%s$' % re.escape(STOPPED)):
        disk_send.run(peer.params(bwlimit='64K'), peer.ssh, clock=clock, sleep=sigterm)
    assert len(started) == 1 and started[0].returncode == -signal.SIGTERM and started[0].stdin.closed
    assert peer.lines()[1:] == ['0%', '10%', 'failed: ' + STOPPED]
    assert signal.getsignal(signal.SIGTERM) is before
    assert not os.path.exists(peer.dest)


def test_sigterm_while_the_peer_checks_terminates_that_ssh(peer, monkeypatch):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    started = started_processes(monkeypatch)
    monkeypatch.setenv('FAKE_SHA256_SLEEP', '30')
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(SendError, match='^%s$' % re.escape(STOPPED)):
            disk_send.run(peer.params(), peer.ssh)
    finally:
        timer.cancel()
        sleeper = peer.bin.parent / 'sha256.pid'
        if sleeper.exists():
            try:
                os.kill(int(sleeper.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert len(started) == 2 and started[1].returncode == -signal.SIGTERM
    assert peer.lines()[-2:] == ['100%', 'failed: ' + STOPPED]


def test_an_ssh_deaf_to_sigterm_is_killed(processes):
    deaf = python('import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print("ready", flush=True); time.sleep(60)')
    processes.append(deaf)
    assert deaf.stdout.readline() == 'ready\n'
    started = time.monotonic()
    disk_send._end(deaf, grace=0.3)
    assert deaf.returncode == -signal.SIGKILL and time.monotonic() - started >= 0.3


def test_an_ssh_that_cannot_start_leaves_0_percent_and_the_error(peer, tmp_path):
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    (tmp_path / 'not-a-program').write_text('')
    with pytest.raises(SendError, match=r'^\[Errno 13\] Permission denied'):
        disk_send.run(peer.params(), str(tmp_path / 'not-a-program'))
    assert peer.lines()[1:-1] == ['0%'] and peer.lines()[-1].startswith('failed: [Errno 13] Permission denied')


def test_defaults_of_the_options(peer):
    open(peer.src, 'wb').close()
    request = disk_send.validate_request(dict(src=peer.src, dest=peer.dest, host='peer', progress=peer.progress))
    assert (request['user'], request['port'], request['ssh_options'], request['bwlimit'], request['mode']) == ('root', 22, [], None, 0o600)
    for port in (1, 65535):
        assert disk_send.validate_request(peer.params(port=port))['port'] == port


def test_seconds_and_rate_are_rounded(peer):
    with open(peer.src, 'wb') as handle:
        handle.write(data(16 * CHUNK))
    clock = Clock()
    result = disk_send.run(peer.params(bwlimit='100000'), peer.ssh, clock=clock, sleep=clock.sleep)
    assert result['seconds'] == 9.83 and result['rate'] == round(16 * CHUNK / 9.8304, 1)
    assert peer.lines()[-1] == 'done %d bytes in 9.8 s' % (16 * CHUNK)
    result = disk_send.run(peer.params(), peer.ssh, clock=clock, sleep=clock.sleep)
    assert result['seconds'] == 0.0 and result['rate'] == 0.0


# --- the progress file held by an older sender: real processes ------------------------------------------------------

SENDER = textwrap.dedent('''
    import json, sys
    from ansible_collections.openbsd.vmm.plugins.module_utils import disk_send
    try:
        disk_send.run(json.loads(sys.argv[1]), sys.argv[2])
    except disk_send.SendError as exc:
        print(exc)
        sys.exit(1)
''')

HOLDER = textwrap.dedent('''
    import fcntl, os, signal, sys, time
    if sys.argv[2] == 'ignore':
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    if sys.argv[2] != 'silent':
        os.write(fd, b'pid %d\\n' % os.getpid())
    print('ready', flush=True)
    time.sleep(60)
''')


def python(script, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    return subprocess.Popen([sys.executable, '-c', script] + list(args), env=env, stdout=subprocess.PIPE, universal_newlines=True, **kwargs)


def reaped(process):
    """Its exit collected as soon as it comes (as async_wrapper does for a module): a zombie would look alive."""
    threading.Thread(target=process.wait, daemon=True).start()
    return process


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.05)


@pytest.fixture
def processes():
    started = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()


def slow_sender(peer, processes, size=64 * CHUNK):
    """A real sender at 64 KiB/s (a minute for this file) holding the progress file."""
    with open(peer.src, 'wb') as handle:
        handle.write(data(size, seed=2))
    sender = reaped(python(SENDER, json.dumps(peer.params(bwlimit='64K')), peer.ssh))
    processes.append(sender)
    wait_for(lambda: os.path.exists(peer.progress) and '0%' in peer.lines() and peer.calls())
    return sender


def test_a_stopped_sender_ends_its_ssh_and_says_so(peer, processes):
    sender = slow_sender(peer, processes)
    ssh_pid = peer.calls()[0]['pid']
    assert peer.lines()[0] == 'pid %d' % sender.pid
    os.kill(sender.pid, signal.SIGTERM)
    wait_for(lambda: sender.returncode is not None)
    assert sender.returncode == 1
    assert peer.lines()[-1] == 'failed: stopped by SIGTERM (a newer send of the same progress file takes over, or someone stopped it)'
    assert '100%' not in peer.lines()
    with pytest.raises(ProcessLookupError):
        os.kill(ssh_pid, 0)
    assert not os.path.exists(peer.dest)


def test_a_newer_send_stops_the_live_older_one_and_starts_over(peer, processes):
    sender = slow_sender(peer, processes)
    content = data(3 * CHUNK, seed=3)
    with open(peer.src, 'wb') as handle:
        handle.write(content)
    result = disk_send.run(peer.params(), peer.ssh)
    wait_for(lambda: sender.returncode is not None, timeout=5)
    assert result['stopped'] == sender.pid and sender.returncode == 1
    lines = peer.lines()
    assert lines[0] == 'pid %d' % os.getpid() and lines[1:-1] == PERCENTS and DONE.fullmatch(lines[-1])
    with open(peer.dest, 'rb') as handle:
        assert handle.read() == content
    assert os.listdir(os.path.dirname(peer.dest)) == ['image.copy']


def test_a_holder_deaf_to_sigterm_is_killed(peer, processes):
    holder = reaped(python(HOLDER, peer.progress, 'ignore'))
    processes.append(holder)
    assert holder.stdout.readline() == 'ready\n'
    started = time.monotonic()
    assert Progress(peer.progress, grace=0.5).acquire() == holder.pid
    wait_for(lambda: holder.returncode is not None, timeout=5)     # the reaper sets it just after the process is gone
    assert holder.returncode == -signal.SIGKILL and time.monotonic() - started >= 0.5


def test_a_holder_that_never_goes_is_reported(peer, processes):
    holder = python(HOLDER, peer.progress, 'ignore')    # not reaped: after SIGKILL it stays a zombie that holds no lock
    processes.append(holder)
    assert holder.stdout.readline() == 'ready\n'
    message = '^progress: pid %d, the older send of %s, is still there 0.3 s after SIGKILL$' % (holder.pid, re.escape(peer.progress))
    with pytest.raises(SendError, match=message):
        Progress(peer.progress, grace=0.3).acquire()


def test_a_holder_that_names_no_pid_is_not_guessed_at(peer, processes):
    holder = reaped(python(HOLDER, peer.progress, 'silent'))
    processes.append(holder)
    assert holder.stdout.readline() == 'ready\n'
    with pytest.raises(SendError, match='^progress: %s is locked by a process that does not write its pid$' % re.escape(peer.progress)):
        Progress(peer.progress, grace=0.3).acquire()
    assert holder.poll() is None


def test_a_progress_file_that_nobody_holds_names_no_live_sender(peer, processes):
    sleeper = reaped(subprocess.Popen(['sleep', '60']))     # its pid is on the file: a pid used again by another process
    processes.append(sleeper)
    with open(peer.progress, 'w') as handle:
        handle.write('pid %d\n30%%\n' % sleeper.pid)
    progress = Progress(peer.progress)
    try:
        assert progress.acquire() is None
    finally:
        progress.close()
    assert sleeper.poll() is None
    assert peer.lines() == ['pid %d' % os.getpid()]


def test_a_holder_that_lets_go_while_its_pid_is_awaited_is_not_stopped(peer, processes):
    holder = python(HOLDER, peer.progress, 'silent')
    processes.append(holder)
    assert holder.stdout.readline() == 'ready\n'

    def holder_goes(seconds):
        holder.kill()
        holder.wait()

    progress = Progress(peer.progress, grace=20, sleep=holder_goes)
    try:
        assert progress.acquire() is None
    finally:
        progress.close()


def test_a_progress_file_this_process_holds_is_not_taken_twice(peer):
    first = Progress(peer.progress)
    first.acquire()
    try:
        with pytest.raises(SendError, match='^progress: %s is already held by this process' % re.escape(peer.progress)):
            Progress(peer.progress, grace=0.3).acquire()
    finally:
        first.close()


def test_a_sender_locks_the_file_for_others(peer):
    progress = Progress(peer.progress)
    progress.acquire()
    try:
        fd = os.open(peer.progress, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        progress.close()
    assert progress.fd is None


def test_the_progress_file_is_made_0644(peer):
    old = os.umask(0o022)
    try:
        progress = Progress(peer.progress)
        progress.acquire()
        progress.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(peer.progress).st_mode) == 0o644


def test_a_progress_file_that_cannot_be_opened_is_named(tmp_path):
    path = str(tmp_path / ('p' * 300))
    progress = Progress(path)
    with pytest.raises(SendError, match='^progress: cannot open %s: File name too long$' % re.escape(path)):
        progress.acquire()
    assert progress.fd is None


def test_waits_end_at_their_deadline_without_a_sleep_too_many(processes, peer):
    sleeper = reaped(subprocess.Popen(['sleep', '60']))
    processes.append(sleeper)
    clock = Clock()
    assert Progress(peer.progress, clock=clock, sleep=clock.sleep, grace=0)._gone(sleeper.pid) is False and clock.slept == []
    assert Progress(peer.progress, clock=clock, sleep=clock.sleep, grace=0.3)._gone(sleeper.pid) is False
    assert clock.slept == [disk_send.POLL] * 3
    holder = reaped(python(HOLDER, peer.progress, 'silent'))
    processes.append(holder)
    assert holder.stdout.readline() == 'ready\n'
    clock = Clock()
    progress = Progress(peer.progress, clock=clock, sleep=clock.sleep, grace=0)
    with pytest.raises(SendError, match='does not write its pid'):
        progress.acquire()
    assert clock.slept == [] and progress.fd is None


def test_a_file_taken_by_a_third_send_while_the_older_one_stops_is_refused(peer, processes, monkeypatch):
    first = reaped(python(HOLDER, peer.progress, 'plain'))
    processes.append(first)
    assert first.stdout.readline() == 'ready\n'
    third = []

    def stop_and_lose_the_race(self, pid):
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: first.returncode is not None)
        third.append(reaped(python(HOLDER, peer.progress, 'plain')))
        processes.append(third[0])
        assert third[0].stdout.readline() == 'ready\n'

    monkeypatch.setattr(Progress, 'stop', stop_and_lose_the_race)
    progress = Progress(peer.progress)
    with pytest.raises(SendError, match='^progress: %s was taken by another send while pid %d stopped$' % (re.escape(peer.progress), first.pid)):
        progress.acquire()
    assert progress.fd is None and third[0].poll() is None


def test_a_sender_that_goes_at_sigterm_gets_no_sigkill(peer, processes, monkeypatch):
    sleeper = reaped(subprocess.Popen(['sleep', '60']))
    processes.append(sleeper)
    sent = []
    kill = os.kill

    def recorded(pid, signum):
        if signum:                  # not process_alive's signal 0
            sent.append((pid, signum))
        return kill(pid, signum)

    monkeypatch.setattr(disk_send.os, 'kill', recorded)
    Progress(peer.progress).stop(sleeper.pid)
    wait_for(lambda: sleeper.returncode is not None, timeout=5)
    assert sent == [(sleeper.pid, signal.SIGTERM)] and sleeper.returncode == -signal.SIGTERM
    Progress(peer.progress).stop(sleeper.pid)       # gone already: asked once, nothing more
    assert sent[1:] == [(sleeper.pid, signal.SIGTERM)]
