# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Following an install VM's serial console, and reading the installer's verdict from it.

``vmctl console NAME`` runs cu(1), which wants a terminal: it runs under a
pseudo-terminal and its output is streamed into a buffer (and, redacted, into
a log) while the VM runs. Password hashes and given secrets never leave this
module unredacted.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

SUCCESS_MARKER = 'CONGRATULATIONS!'
# Texts after which the installer will not finish by itself (the VM stays at the prompt).
FAILURE_MARKERS = (
    'failed; check /tmp/ai/ai.log',
    'Question has no answer in response file',
    'No response file found; non-interactive mode aborted.',
)
# install.sub get_responsefile: what the installer prints when it finds no response file, earliest cause
# first. It then asks "Response file location?" and reads the console for ever (nobody types on a vmd
# console), so each of these is a failure at once, not after install_timeout.
NO_RESPONSE_FILE = (
    ('No dhcp address on interface', "vmd's DHCP gave the installer no address: the VM's first interface must be "
                                     "a local interface and its VM id must fit vm.conf's local prefix"),
    ('Could not determine auto server.', 'the DHCP lease named no install server (next-server)'),
    ('Could not determine auto mode.', 'the DHCP lease named no auto_install file'),
    ('Response file location?', 'the installer fetched no response file from the install server: is httpd '
                                'running and serving the docroot the files were published in, and does the VM '
                                'reach it on port 80 (pf rdr-to on the tap interfaces)?'),
)
BCRYPT_HASH = re.compile(r'\$2[a-z]\$\d\d\$[./A-Za-z0-9]{53}')
TAIL_LINES = 25
# Upper bound for the console process to deliver its last lines once the VM has ended (cu may not
# notice the closed tty by itself); the verdict lines come long before the reboot, and the module
# should return within a second of the VM's end.
CONSOLE_DRAIN_SECONDS = 0.5


def redact(text, secrets=()):
    """``text`` without bcrypt hashes and without any of ``secrets``."""
    text = BCRYPT_HASH.sub('[bcrypt hash redacted]', text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, '[redacted]')
    return text


def console_tail(text, secrets):
    """The last non-empty lines of the console, redacted."""
    lines = [line for line in redact(text, secrets).splitlines() if line.strip()]
    return lines[-TAIL_LINES:]


def failure_in(text):
    """Why the installer cannot finish, from what the transcript shows, or None."""
    for marker in FAILURE_MARKERS:
        if marker in text:
            return 'the installer failed: %s' % marker
    for marker, cause in NO_RESPONSE_FILE:
        if marker in text:
            return 'the installer found no response file (%r on the console): %s' % (marker, cause)
    return None


class ConsoleFollower:
    """``vmctl console NAME`` under a pseudo-terminal (cu(1) wants a tty), streamed into a log and a buffer."""

    def __init__(self, vmctl, name, log_handle, secrets):
        self.log_handle = log_handle
        self.secrets = secrets
        self.text = ''
        self.pending = ''
        master, slave = pty.openpty()
        self.master = master
        argv = [vmctl.binary, 'console', name]
        vmctl.calls.append(['vmctl', 'console', name])
        # run_command() waits for the process to end; the console must be streamed while the VM runs.
        self.process = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv, stdin=slave, stdout=slave, stderr=slave, env=vmctl.environ, start_new_session=True)
        os.close(slave)
        self.open = True

    def read_available(self):
        """Read what the console has now; False at end of file."""
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the other side of the pty is closed
            data = b''
        if not data:
            self.close()
            return False
        chunk = data.decode('utf-8', 'replace').replace('\r\n', '\n').replace('\r', '\n')
        self.text += chunk
        if self.log_handle:
            self.pending += chunk
            complete, _sep, self.pending = self.pending.rpartition('\n')
            if _sep:
                self.log_handle.write(redact(complete + '\n', self.secrets))
                self.log_handle.flush()
        return True

    def drain(self, seconds):
        """After the VM ended: collect the console's last output until it closes, at most ``seconds``."""
        deadline = time.monotonic() + seconds
        while self.open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _w, _x = select.select([self.master], [], [], remaining)
            if ready:
                self.read_available()

    def close(self):
        if self.open:
            self.open = False
            os.close(self.master)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.log_handle:
            self.log_handle.write(redact(self.pending, self.secrets))
            self.pending = ''
            self.log_handle.flush()
