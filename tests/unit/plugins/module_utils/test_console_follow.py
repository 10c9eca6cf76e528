# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Following the install console: redaction and the tail of the transcript."""

from __future__ import annotations

from ansible_collections.openbsd.vmm.plugins.module_utils import console_follow
from ansible_collections.openbsd.vmm.plugins.module_utils.console_follow import console_tail, redact

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


