# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""One file sent from this host to a peer over ssh, at a bounded rate, its progress in a file (vmm_disk_send).

Two ssh runs, argv lists only (no local shell):

1. ``ssh ... -- HOST "umask 077 && rm -f '<dest>.send' && exec cat > '<dest>.send'"`` with the file on ssh's stdin in 64 KiB chunks, its
   sha256 computed while it is read (a file that changes while it is sent, a running VM's disk, is checked against
   the bytes that were sent) and the chunks spaced so that the bytes sent by time t never exceed ``bwlimit * t`` plus
   one chunk;
2. ``ssh ... -- HOST '<script>'``: the peer's ``sha256 -q`` (OpenBSD's sha256(1), the md5(1) family: -q prints the
   digest alone) of ``<dest>.send`` must be the one sent; then chmod and ``mv -f`` onto ``dest``. On a mismatch the
   script removes ``<dest>.send``, prints the peer's digest and exits 3.

ssh joins the words after the host with blanks and hands them to the remote login shell: each remote command is one
argv word, its paths quoted with shlex.quote.

The progress file: ``pid <pid>``, then ``<N>%`` as each multiple of ten percent is first reached, then ``done <bytes>
bytes in <seconds> s`` or ``failed: <reason>``, each line flushed. The sender holds an exclusive flock(2) on it while
it runs: a newer send on the same progress file finds the lock held, stops the process the file names (SIGTERM,
then SIGKILL after GRACE seconds) and starts over. A file whose lock nobody holds names no live sender, whatever its
pid line says (a pid used again since by another process is never signalled). Standard library only: it runs on the
vmm host's python3.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import os
import re
import shlex
import signal
import stat
import subprocess
import tempfile
import threading
import time

from ansible_collections.openbsd.vmm.plugins.module_utils.processes import process_alive
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import SizeError, scan_scaled

CHUNK = 64 * 1024
MIN_BWLIMIT = 64 * 1024
GRACE = 10          # seconds a stopped sender has to go after SIGTERM, and again after SIGKILL
POLL = 0.1          # seconds between two looks at a stopping sender
MISMATCH = 3        # the exit status of the peer's script when the sha256 differs
SSH_FAILED = 255    # ssh's own exit status when it fails (ssh(1))

# Each option's rule, applied with re.fullmatch: none of them may bring a line break, a blank or a NUL into an argv
# word or into the peer's shell.
USER = re.compile(r'[a-z_][a-z0-9_.-]{0,31}')
HOSTNAME = re.compile(r'(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*')
IPV4 = re.compile(r'[0-9.]+')
IPV6 = re.compile(r'[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?')
DEST = re.compile(r'/[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f/]')
SSH_OPTION = re.compile(r'[A-Za-z][A-Za-z0-9]*=[^\s\x00]+')
MODE = re.compile(r'0?[0-7]{3,4}')
PID_LINE = re.compile(rb'pid ([0-9]+)\n')
SHA256_HEX = re.compile(r'[0-9a-f]{64}')


class SendError(Exception):
    """A request that cannot be sent, or a send that failed; the message names the parameter or the cause."""


class Stopped(Exception):
    """Raised in the sender by SIGTERM: a newer send of the same progress file takes over."""


def _absolute(option, path):
    if not isinstance(path, str) or not path.startswith('/') or '\0' in path:
        raise SendError('%s: must be an absolute path (got %r)' % (option, path))
    return path


def validate_progress(params):
    progress = _absolute('progress', params.get('progress'))
    if not os.path.isdir(os.path.dirname(progress)):
        raise SendError('progress: the directory of %s does not exist' % progress)
    if os.path.isdir(progress):
        raise SendError('progress: %s is a directory' % progress)
    src = params.get('src')
    if isinstance(src, str) and os.path.realpath(src) == os.path.realpath(progress):
        raise SendError('progress: must not be src (%s)' % src)     # checked before the progress file is emptied
    return progress


def validate_host(host):
    rule = ('host: must be a host name (letters, digits, -, _ and dots, starting and ending with a letter or digit), an IPv4 address or an IPv6 '
            'address without brackets')
    if not isinstance(host, str):
        raise SendError('%s (got %r)' % (rule, host))
    if ':' in host:
        address = host.partition('%')[0]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise SendError('%s; %r is not an IPv6 address' % (rule, host))
        if not IPV6.fullmatch(host):
            raise SendError('%s (got %r)' % (rule, host))
    elif IPV4.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise SendError('%s; %r is not an IPv4 address' % (rule, host))
    elif not HOSTNAME.fullmatch(host):
        raise SendError('%s (got %r)' % (rule, host))
    return host


def validate_request(params):
    """The module's parameters checked: a dict of what a send needs. Raises SendError naming the parameter and its rule."""
    request = dict(progress=validate_progress(params))
    src = _absolute('src', params.get('src'))
    if not os.path.isfile(src):
        raise SendError('src: %s is not a regular file' % src)
    request['src'] = src
    dest = params.get('dest')
    if not isinstance(dest, str) or not DEST.fullmatch(dest):
        raise SendError('dest: must be an absolute path on the peer, not ending in /, without line breaks, NULs or other control characters (got %r)'
                        % (dest,))
    request['dest'] = dest
    request['host'] = validate_host(params.get('host'))
    user = params.get('user', 'root')
    if not isinstance(user, str) or not USER.fullmatch(user):
        raise SendError('user: must be a login name of at most 32 characters (a-z, 0-9, _, . and -, not starting with a digit, . or -), got %r'
                        % (user,))
    request['user'] = user
    port = params.get('port', 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise SendError('port: must be a number from 1 to 65535 (got %r)' % (port,))
    request['port'] = port
    options = params.get('ssh_options') or []
    if not isinstance(options, list):
        raise SendError('ssh_options: must be a list of Name=value strings (got %r)' % (options,))
    for index, option in enumerate(options):
        if not isinstance(option, str) or not SSH_OPTION.fullmatch(option):
            raise SendError('ssh_options: item %d must be Name=value (a letter, then letters and digits, =, then a value without blanks), got %r'
                            % (index, option))
    request['ssh_options'] = list(options)
    bwlimit = params.get('bwlimit')
    if bwlimit is not None:
        try:
            rate = scan_scaled(bwlimit)
        except SizeError as exc:
            raise SendError('bwlimit: %s' % exc)
        if rate < MIN_BWLIMIT:
            raise SendError('bwlimit: must be at least 64K (%d bytes per second), got %r' % (MIN_BWLIMIT, bwlimit))
        bwlimit = rate
    request['bwlimit'] = bwlimit
    mode = params.get('mode', '0600')
    if not isinstance(mode, str) or not MODE.fullmatch(mode):
        raise SendError("mode: must be an octal mode such as '0600' (got %r)" % (mode,))
    request['mode'] = int(mode, 8)
    return request


def ssh_argv(ssh, request, command):
    """ssh's argv for one remote command (one word: ssh joins the words after the host with blanks anyway)."""
    argv = [ssh, '-o', 'BatchMode=yes']
    for option in request['ssh_options']:
        argv += ['-o', option]
    return argv + ['-p', str(request['port']), '-l', request['user'], '--', request['host'], command]


def writable_command(dest):
    """The peer's test that dest's directory exists and can be written (check mode's one call)."""
    directory = shlex.quote(os.path.dirname(dest) or '/')
    return 'test -d %s && test -w %s' % (directory, directory)


def receive_command(dest):
    # removed first: the cat of a stopped older send may still be draining into the old file, which is then unlinked
    return 'umask 077 && rm -f %s && exec cat > %s' % (shlex.quote(dest + '.send'), shlex.quote(dest + '.send'))


def verify_command(dest, sha256, mode):
    """The peer's script: the received file's sha256 checked, then its mode set and renamed onto dest; on a
    mismatch it is removed, the peer's digest printed and the script exits MISMATCH."""
    received = shlex.quote(dest + '.send')
    return ('sum=$(sha256 -q %(received)s) || exit 4; '
            'if [ "$sum" != %(sha256)s ]; then rm -f %(received)s; echo "$sum"; exit %(mismatch)d; fi; '
            'if [ -d %(dest)s ]; then rm -f %(received)s; echo %(directory)s >&2; exit 5; fi; '
            'chmod %(mode)s %(received)s && mv -f %(received)s %(dest)s'
            % dict(received=received, sha256=shlex.quote(sha256), mismatch=MISMATCH, mode='%04o' % mode, dest=shlex.quote(dest),
                   directory=shlex.quote('%s is a directory: removed %s.send' % (dest, dest))))


class Throttle(object):
    """Spaces writes so that the bytes written by time t (from the first write) never exceed rate * t + burst."""

    def __init__(self, rate, clock, sleep, burst=CHUNK):
        self.rate, self.clock, self.sleep, self.burst = rate, clock, sleep, burst
        self.start = None
        self.sent = 0

    def wait(self, size):
        """Sleep until ``size`` more bytes may be written; counts them as written."""
        now = self.clock()
        if self.start is None:
            self.start = now
        if self.rate:
            due = self.start + float(self.sent + size - self.burst) / self.rate
            while now < due:
                self.sleep(due - now)
                now = self.clock()
        self.sent += size


def reached(sent, size):
    """The multiple of ten percent that ``sent`` bytes of ``size`` reach (100 for an empty file)."""
    if size <= 0:
        return 100
    return min(100, sent * 100 // size) // 10 * 10


def one_line(text):
    return ' '.join(str(text).split())


class Progress(object):
    """The progress file, held with an exclusive flock while this process sends."""

    def __init__(self, path, clock=time.monotonic, sleep=time.sleep, grace=GRACE, pid=None):
        self.path, self.clock, self.sleep, self.grace = path, clock, sleep, grace
        self.pid = os.getpid() if pid is None else pid
        self.fd = None
        self.percent = None

    def _lock(self):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _holder(self):
        """The pid that the holder of the lock wrote on the first line (it does so right after taking the lock)."""
        deadline = self.clock() + self.grace
        while True:
            match = PID_LINE.match(os.pread(self.fd, 32, 0))
            if match:
                return int(match.group(1))
            if self._lock():
                return None
            if self.clock() >= deadline:
                raise SendError('progress: %s is locked by a process that does not write its pid' % self.path)
            self.sleep(POLL)

    def _gone(self, pid):
        deadline = self.clock() + self.grace
        while process_alive(pid):
            if self.clock() >= deadline:
                return False
            self.sleep(POLL)
        return True

    def stop(self, pid):
        """SIGTERM to an older sender, SIGKILL if it is still there GRACE seconds later; returns once it is gone."""
        for signum in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                return
            if self._gone(pid):
                return
        raise SendError('progress: pid %d, the older send of %s, is still there %g s after SIGKILL' % (pid, self.path, self.grace))

    def acquire(self):
        """Open and lock the file (stopping an older sender that holds it), empty it and write the pid line.
        Returns the pid of the sender that was stopped, or None."""
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SendError('progress: %s is a symbolic link; give the file itself' % self.path)
            raise SendError('progress: cannot open %s: %s' % (self.path, exc.strerror))
        stopped = None
        try:
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                raise SendError('progress: %s is not a regular file' % self.path)
            if not self._lock():
                holder = self._holder()
                if holder is not None:
                    if holder == self.pid:
                        raise SendError('progress: %s is already held by this process (pid %d)' % (self.path, holder))
                    self.stop(holder)
                    stopped = holder
                    if not self._lock():
                        raise SendError('progress: %s was taken by another send while pid %d stopped' % (self.path, holder))
            os.ftruncate(self.fd, 0)
            self.line('pid %d' % self.pid)
        except BaseException:
            self.close()
            raise
        return stopped

    def line(self, text):
        os.write(self.fd, (one_line(text) + '\n').encode('utf-8', 'backslashreplace'))

    def reach(self, percent, step):
        """Write each multiple of ``step`` percent from the last one written up to ``percent`` (an empty file: 0%
        then 100%, step 100)."""
        start = 0 if self.percent is None else self.percent + step
        for value in range(start, percent + 1, step):
            self.line('%d%%' % value)
            self.percent = value

    def close(self):
        if self.fd is not None:
            os.close(self.fd)       # releases the lock
            self.fd = None


def _stopped(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)    # once: the clean-up that follows must run to its end
    raise Stopped('stopped by SIGTERM (a newer send of the same progress file takes over, or someone stopped it)')


def _end(process, grace=GRACE):
    """Terminate an ssh that still runs (the send failed or was stopped), SIGKILL after ``grace`` seconds, reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdin:
        process.stdin.close()


def _output(handle):
    handle.seek(0)
    return handle.read().decode('utf-8', 'replace').strip()


def _ssh_failed(request, status, stderr):
    return 'ssh to %s@%s port %d failed (exit %d): %s' % (request['user'], request['host'], request['port'], status, stderr or 'no message')


def _write_all(pipe, data):
    view = memoryview(data)
    while view:
        view = view[pipe.write(view):]


def probe(request, ssh):
    """Check mode: one ssh call that reads, never writes; raises SendError when the user cannot log in to the peer or
    cannot write dest's directory there, naming both and ssh's message."""
    directory = os.path.dirname(request['dest']) or '/'
    with tempfile.TemporaryFile() as errors:
        status = subprocess.call(ssh_argv(ssh, request, writable_command(request['dest'])),  # pylint: disable=ansible-bad-function
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
        message = _output(errors)
    if status:
        raise SendError("cannot write %s on %s as %s over SSH (port %d, exit %d%s): the sending user's key must be in "
                        "%s's authorized_keys on %s and %s must exist and be writable by %s"
                        % (directory, request['host'], request['user'], request['port'], status, ': ' + one_line(message) if message else '',
                           request['user'], request['host'], directory, request['user']))


def send(request, ssh, progress, clock=time.monotonic, sleep=time.sleep):
    """Send request['src'] to the peer (see the module's docstring); returns the result, raises SendError."""
    cmd = ssh_argv(ssh, request, receive_command(request['dest']))
    throttle = Throttle(request['bwlimit'], clock, sleep)
    digest = hashlib.sha256()
    sent = 0
    start = clock()
    with open(request['src'], 'rb') as source, tempfile.TemporaryFile() as errors:
        size = os.fstat(source.fileno()).st_size
        step = 10 if size else 100
        progress.reach(0, step)
        # not run_command: the file goes to ssh's stdin a chunk at a time, at the rate allowed, while the progress is written
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, bufsize=0)  # pylint: disable=ansible-bad-function
        broken = False
        try:
            while True:
                data = source.read(CHUNK)
                if not data:
                    break
                digest.update(data)
                throttle.wait(len(data))
                try:
                    _write_all(process.stdin, data)
                except BrokenPipeError:
                    broken = True
                    break
                sent += len(data)
                progress.reach(reached(sent, size), step)
            process.stdin.close()        # unbuffered: closing writes nothing, so it cannot fail on a broken pipe
            status = process.wait()
        finally:
            _end(process)
        if status == SSH_FAILED:
            raise SendError(_ssh_failed(request, status, _output(errors)))
        if status:
            raise SendError('writing %s.send on %s failed (exit %d): %s' % (request['dest'], request['host'], status, _output(errors) or 'no message'))
        if broken:
            raise SendError('writing %s.send on %s failed: ssh ended after %d bytes of %s without an error'
                            % (request['dest'], request['host'], sent, request['src']))
        progress.reach(100, step)
    sha256 = digest.hexdigest()
    check = ssh_argv(ssh, request, verify_command(request['dest'], sha256, request['mode']))
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        # not run_command: SIGTERM (a newer send) must be able to stop this ssh too (_end)
        process = subprocess.Popen(check, stdin=subprocess.DEVNULL, stdout=output, stderr=errors)  # pylint: disable=ansible-bad-function
        try:
            status = process.wait()
        finally:
            _end(process)
        if status == SSH_FAILED:
            raise SendError(_ssh_failed(request, status, _output(errors)))
        if status == MISMATCH:
            lines = _output(output).splitlines() or ['']
            raise SendError('%s.send on %s has sha256 %s, sent %s: removed; run again' % (request['dest'], request['host'], lines[-1].strip() or "''", sha256))
        if status:
            raise SendError('checking %s.send on %s and renaming it onto %s failed (exit %d): %s'
                            % (request['dest'], request['host'], request['dest'], status, _output(errors) or 'no message'))
    seconds = clock() - start
    return dict(changed=True, bytes=sent, sha256=sha256, seconds=round(seconds, 3), rate=round(sent / seconds, 1) if seconds > 0 else 0.0,
                dest=request['dest'], host=request['host'], cmd=cmd)


def run(params, ssh, check_mode=False, clock=time.monotonic, sleep=time.sleep, grace=GRACE):
    """The module's work: the request checked, the progress file taken over, the file sent. Raises SendError (its
    message is also the progress file's ``failed:`` line once the file is held)."""
    if check_mode:
        request = validate_request(params)
        if ssh is None:
            raise SendError('ssh: no ssh command found on PATH')
        probe(request, ssh)
        cmd = ssh_argv(ssh, request, receive_command(request['dest']))
        return dict(changed=True, bytes=os.path.getsize(request['src']), dest=request['dest'], host=request['host'], cmd=cmd)
    progress = Progress(validate_progress(params), clock=clock, sleep=sleep, grace=grace)
    stopped = progress.acquire()
    main = threading.current_thread() is threading.main_thread()
    previous = None
    outcome = 'failed: exception'
    try:
        if main:
            previous = signal.signal(signal.SIGTERM, _stopped)
        try:
            request = validate_request(params)
            if ssh is None:
                raise SendError('ssh: no ssh command found on PATH')
            result = send(request, ssh, progress, clock=clock, sleep=sleep)
        except SendError as exc:
            outcome = 'failed: %s' % exc
            raise
        except (Stopped, OSError) as exc:
            outcome = 'failed: %s' % exc
            raise SendError(str(exc))
        except BaseException as exc:
            outcome = 'failed: %s: %s' % (type(exc).__name__, exc)
            raise
        result['stopped'] = stopped
        outcome = 'done %d bytes in %.1f s' % (result['bytes'], result['seconds'])
        return result
    finally:
        try:
            progress.line(outcome)
        finally:
            progress.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
