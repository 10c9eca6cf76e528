# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Following the install console: redaction, the tail of the transcript, and cu under a pseudo-terminal."""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from types import SimpleNamespace

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import console_follow
from ansible_collections.openbsd.vmm.plugins.module_utils.console_follow import console_tail, failure_in, redact

HASH = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'
RANDOM_PASSWORD = 'Xq7-random-Pw'


def test_redact_hides_bcrypt_hashes_and_given_secrets():
    text = "useradd -p '%s' alice\nroot password is %s\n" % (HASH, RANDOM_PASSWORD)
    redacted = redact(text, [RANDOM_PASSWORD])
    assert HASH not in redacted and RANDOM_PASSWORD not in redacted
    assert redacted == "useradd -p '[bcrypt hash redacted]' alice\nroot password is [redacted]\n"


def test_console_tail_is_redacted_and_keeps_the_last_non_empty_lines():
    lines = ['line %d' % number for number in range(40)] + ['', 'password %s hash %s' % (RANDOM_PASSWORD, HASH), '']
    tail = console_tail('\n'.join(lines), [RANDOM_PASSWORD])
    assert len(tail) == 25
    assert tail[-1] == 'password [redacted] hash [bcrypt hash redacted]'
    assert tail[0] == 'line 16'
    assert all(RANDOM_PASSWORD not in line and HASH not in line for line in tail)


# -- the installer's verdict ------------------------------------------------

BOOT = "Welcome to the OpenBSD/amd64 7.8 installation program.\nStarting non-interactive mode in 5 seconds...\n" \
       "(I)nstall, (U)pgrade, (A)utoinstall or (S)hell? \n"


@pytest.mark.parametrize('console, marker, cause', [
    # install.sub get_responsefile: every URL failed; it asks and waits for ever.
    (BOOT + 'Fetching http://100.64.1.2/install.conf?path=7.8/amd64\nResponse file location? [http://100.64.1.2/install.conf] ',
     'Response file location?', 'fetched no response file from the install server'),
    # no DHCP answer: the messages come before the prompt and name the earlier cause.
    (BOOT + 'No dhcp address on interface vio0 in 30 seconds.\nCould not determine auto server.\n'
            'Could not determine auto mode.\nResponse file location? ',
     'No dhcp address on interface', "local prefix"),
    (BOOT + 'Could not determine auto mode.\nResponse file location? [http://100.64.1.2/install.conf] ',
     'Could not determine auto mode.', 'no auto_install file'),
])
def test_no_response_file_is_a_failure_naming_the_cause(console, marker, cause):
    reason = failure_in(console)
    assert reason.startswith('the installer found no response file (%r on the console): ' % marker)
    assert cause in reason


def test_install_failures_and_success():
    assert failure_in(BOOT + 'Performing non-interactive install...\nfailed; check /tmp/ai/ai.log\n') == \
        'the installer failed: failed; check /tmp/ai/ai.log'
    assert failure_in(BOOT + 'Performing non-interactive install...\nCONGRATULATIONS! Your OpenBSD install has been '
                             'successfully completed!\n') is None
    assert failure_in(BOOT) is None


# -- following the console under a pseudo-terminal ---------------------------

CONSOLE = r'''#!{python}
import os, sys, time
assert sys.argv[1:] == ['console', 'web1-ai-0a1b2c3d'], sys.argv
{body}
'''


def fake_vmctl(tmp_path, body):
    """A vmctl whose ``console`` runs ``body`` (Python) with the pty as its terminal."""
    script = tmp_path / 'vmctl'
    script.write_text(CONSOLE.format(python=sys.executable, body=body))
    script.chmod(0o755)
    return SimpleNamespace(binary=str(script), environ=dict(os.environ), calls=[])


def follow(tmp_path, body, log_handle=None, secrets=()):
    return console_follow.ConsoleFollower(fake_vmctl(tmp_path, body), 'web1-ai-0a1b2c3d', log_handle, list(secrets))


def test_the_console_is_read_until_it_closes_with_line_ends_normalised_and_the_log_redacted(tmp_path):
    # The pty turns each \n into \r\n (ONLCR), as a terminal does; a lone \r stays.
    body = ("w = lambda text: (os.write(1, text.encode()), time.sleep(0.05))\n"
            "w('Welcome\\nroot password is %s\\npart')\n"
            "w('ial line\\rnext\\n')\n"
            "w('last words without a newline')\n" % RANDOM_PASSWORD)
    log = tmp_path / 'console.log'
    with open(log, 'w') as handle:
        console = follow(tmp_path, body, handle, [RANDOM_PASSWORD])
        assert console.open is True
        console.drain(10)
        assert console.open is False
        assert console.text == ('Welcome\nroot password is %s\npartial line\nnext\nlast words without a newline'
                                % RANDOM_PASSWORD)
        # written and flushed while the handle is still open; the unfinished last line at close
        assert log.read_text() == ('Welcome\nroot password is [redacted]\npartial line\nnext\n'
                                   'last words without a newline')
    assert console.process.returncode == 0
    with pytest.raises(OSError):
        os.fstat(console.master)


def test_the_log_gets_complete_lines_only_while_the_console_runs(tmp_path):
    body = "os.write(1, b'one\\ntwo\\nthr')\ntime.sleep(30)\n"
    log = tmp_path / 'console.log'
    with open(log, 'w') as handle:
        console = follow(tmp_path, body, handle)
        try:
            assert select.select([console.master], [], [], 10)[0] == [console.master]
            time.sleep(0.1)
            assert console.read_available() is True
            assert console.text == 'one\ntwo\nthr'
            assert log.read_text() == 'one\ntwo\n'
            assert console.pending == 'thr'
        finally:
            console.close()
        assert log.read_text() == 'one\ntwo\nthr'
        assert console.pending == ''


def test_read_available_is_false_at_the_end_and_closes(tmp_path):
    console = follow(tmp_path, "os.write(1, b'bye')\n")
    assert console.process.wait(10) == 0
    assert console.read_available() is True and console.text == 'bye'
    assert console.read_available() is False
    assert console.open is False
    console.close()             # again, as run_install's cleanup does after the end of file: nothing breaks
    assert console.open is False


def test_the_console_runs_in_its_own_session_and_is_recorded(tmp_path):
    body = "os.write(1, ('leader=%s tty=%s' % (os.getsid(0) == os.getpid(), os.isatty(0) and os.isatty(1))).encode())\n"
    vmctl = fake_vmctl(tmp_path, body)
    console = console_follow.ConsoleFollower(vmctl, 'web1-ai-0a1b2c3d', None, [])
    console.drain(10)
    assert console.text == 'leader=True tty=True'
    assert vmctl.calls == [['vmctl', 'console', 'web1-ai-0a1b2c3d']]


def test_drain_collects_late_output_within_its_bound(tmp_path):
    console = follow(tmp_path, "time.sleep(0.3)\nos.write(1, b'late line\\n')\n")
    console.drain(0.9)
    assert console.text == 'late line\n' and console.open is False


def test_drain_gives_up_at_its_bound_and_close_kills_a_console_that_stays(tmp_path):
    console = follow(tmp_path, "os.write(1, b'still here\\n')\ntime.sleep(30)\n")
    started = time.monotonic()
    console.drain(0.5)
    assert 0.5 <= time.monotonic() - started < 3
    assert console.text == 'still here\n' and console.open is True
    console.close()
    assert console.open is False and console.process.returncode == -signal.SIGKILL
