# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record a VM's serial console into a transcript until the VM stops, as an operator's `vmctl console NAME` would.

Usage: python3 vmm_console_follow.py SECONDS TRANSCRIPT VM

Runs `vmctl console VM` on a pty of its own (cu wants a terminal), sends one carriage return (a getty already
waiting prints its prompt again) and appends what the console shows to TRANSCRIPT (created 0600, carriage
returns dropped), flushed as it comes, so that another task can wait for a text in it. One reader only: cu
locks the VM's tty, so nothing else opens the console meanwhile. When cu ends (the VM's tty closed) it asks
`vmctl status VM`: a VM that still runs is followed again; one that stopped, or is gone, ends the transcript.
Ends after SECONDS in any case. Prints one JSON object {"vm", "stopped", "seconds", "bytes"}; exits 0 when
the VM was seen stopped, 1 otherwise. Python standard library only (runs on the vmm host).
"""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

RETRY_SECONDS = 0.5


def vm_running(vm):
    """True while `vmctl status VM` lists the VM as running (or stopping, paused: not ended)."""
    try:
        out = subprocess.run(['vmctl', 'status', vm], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, universal_newlines=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return True
    for line in out.splitlines()[1:]:
        fields = line.split()
        if fields and fields[-1] == vm:
            return any(state in fields for state in ('running', 'stopping', 'paused'))
    return False


def follow(vm, transcript, seconds):
    start = time.monotonic()
    deadline = start + seconds
    written = 0
    fd = os.open(transcript, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        while time.monotonic() < deadline:
            master, slave = pty.openpty()
            process = subprocess.Popen(['vmctl', 'console', vm], stdin=slave, stdout=slave, stderr=slave,
                                       close_fds=True, start_new_session=True)
            os.close(slave)
            try:
                os.write(master, b'\r')
                while time.monotonic() < deadline:
                    ready = select.select([master], [], [], min(1.0, max(0.0, deadline - time.monotonic())))[0]
                    if not ready:
                        if process.poll() is not None:
                            break
                        continue
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: cu has gone, the tty with it
                        data = b''
                    if not data:
                        break
                    data = data.replace(b'\r', b'')
                    os.write(fd, data)
                    written += len(data)
            finally:
                if process.poll() is None:
                    try:
                        os.write(master, b'\r~.')  # cu's escape: disconnect
                    except OSError:
                        pass
                    try:
                        os.killpg(process.pid, signal.SIGTERM)
                    except OSError:
                        pass
                process.wait()
                os.close(master)
            if not vm_running(vm):
                return True, round(time.monotonic() - start, 2), written
            time.sleep(RETRY_SECONDS)
        return False, round(time.monotonic() - start, 2), written
    finally:
        os.close(fd)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write('usage: vmm_console_follow.py SECONDS TRANSCRIPT VM\n')
        return 2
    stopped, seconds, written = follow(argv[2], argv[1], float(argv[0]))
    print(json.dumps({'vm': argv[2], 'stopped': stopped, 'seconds': seconds, 'bytes': written}))
    return 0 if stopped else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
