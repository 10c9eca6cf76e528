# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until the serial consoles of VMs show a text, as an operator watching `vmctl console NAME` would.

Usage: python3 vmm_console_wait.py SECONDS TEXT VM [VM ...]

Runs `vmctl console VM` for every VM at once, each on its own pty (cu wants a terminal), sends one
carriage return so that a getty already waiting prints its prompt again, and reads until TEXT appears
or SECONDS have passed. A VM whose console is not there yet (`vmctl: console not found`) is asked
again until the deadline. Prints one JSON object {"vms": {VM: {"seen", "seconds", "tail"}}} and exits
0 when every console showed TEXT, 1 otherwise. Python standard library only (runs on the vmm host).
"""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

RETRY_SECONDS = 0.2
TAIL_CHARS = 400


class Console:
    def __init__(self, vm):
        self.vm = vm
        self.text = ''
        self.seen_after = None
        self.process = None
        self.master = None
        self.next_try = 0.0

    def open(self):
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(['vmctl', 'console', self.vm], stdin=slave, stdout=slave, stderr=slave,
                                        close_fds=True, start_new_session=True)
        os.close(slave)
        os.write(self.master, b'\r')

    def close(self):
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    os.write(self.master, b'\r~.')  # cu's escape: disconnect
                except OSError:
                    pass
                try:
                    os.killpg(self.process.pid, signal.SIGTERM)
                except OSError:
                    pass
            self.process.wait()
            self.process = None
        if self.master is not None:
            os.close(self.master)
            self.master = None


def wait(vms, pattern, seconds):
    start = time.monotonic()
    deadline = start + seconds
    consoles = {vm: Console(vm) for vm in vms}
    try:
        while True:
            now = time.monotonic()
            waiting = [c for c in consoles.values() if c.seen_after is None]
            if not waiting or now >= deadline:
                break
            for console in waiting:
                if console.process is None and now >= console.next_try:
                    console.open()
            readable = [c.master for c in waiting if c.master is not None]
            ready = select.select(readable, [], [], min(RETRY_SECONDS, max(0.0, deadline - now)))[0]
            for console in waiting:
                if console.master is None:
                    continue
                if console.master in ready:
                    try:
                        data = os.read(console.master, 65536)
                    except OSError:  # EIO: the console process has gone
                        data = b''
                    if data:
                        console.text += data.decode('utf-8', 'replace')
                        if pattern in console.text:
                            console.seen_after = round(time.monotonic() - start, 2)
                            console.close()
                        continue
                if console.process.poll() is not None or console.master in ready:
                    # No console (yet), or the VM ended: ask again shortly.
                    console.close()
                    console.next_try = time.monotonic() + RETRY_SECONDS
    finally:
        for console in consoles.values():
            console.close()
    return {vm: {'seen': c.seen_after is not None, 'seconds': c.seen_after,
                 'tail': c.text[-TAIL_CHARS:].replace('\r', '').splitlines()[-5:]}
            for vm, c in consoles.items()}


def main(argv):
    if len(argv) < 3:
        sys.stderr.write('usage: vmm_console_wait.py SECONDS TEXT VM [VM ...]\n')
        return 2
    result = wait(argv[2:], argv[1], float(argv[0]))
    print(json.dumps({'vms': result}))
    return 0 if all(entry['seen'] for entry in result.values()) else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
