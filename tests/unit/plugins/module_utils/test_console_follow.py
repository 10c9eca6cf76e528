# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Following the install console: redaction and the tail of the transcript."""

from __future__ import annotations

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
    assert len(tail) == console_follow.TAIL_LINES
    assert tail[-1] == 'password [redacted] hash [bcrypt hash redacted]'
    assert tail[0] == 'line %d' % (40 - console_follow.TAIL_LINES + 1)
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
