"""The lab's vmd control protocol: JSON lines over the unix socket var/run/vmd.sock.

A client sends one request object per connection line ({"op": ..., "uid": ..., ...}) and
reads reply objects, one per line. Results are errno names ("EALREADY"), vmd's own
codes (1001.. as in vmd.h) or -1, never host errno numbers.
"""

import json
import os
import socket

# AF_UNIX paths are limited (108 bytes on Linux including the NUL).
SUN_PATH_MAX = 107

VMD_BIOS_MISSING = 1001
VMD_DISK_MISSING = 1002
VMD_DISK_INVALID = 1003
VMD_VM_STOP_INVALID = 1004
VMD_CDROM_MISSING = 1005
VMD_CDROM_INVALID = 1006
VMD_PARENT_INVALID = 1007


def _with_short_path(sock_path, action):
    """Run action(path) with a path short enough for AF_UNIX (chdir trick when needed)."""
    if len(os.fsencode(sock_path)) <= SUN_PATH_MAX:
        return action(sock_path)
    saved = os.open(".", os.O_RDONLY)
    try:
        os.chdir(os.path.dirname(sock_path))
        return action(os.path.basename(sock_path))
    finally:
        os.fchdir(saved)
        os.close(saved)


def bind(sock_path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _with_short_path(sock_path, server.bind)
    return server


def connect(sock_path, timeout=None):
    """Connect to the daemon; raises OSError exactly like connect(2) would."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _with_short_path(sock_path, client.connect)
    except OSError:
        client.close()
        raise
    client.settimeout(timeout)
    return Connection(client)


class Connection:
    """One client connection: send requests, read reply lines."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = sock.makefile("rb")

    def send(self, message):
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self):
        """Next reply object, or None when the daemon closed the connection."""
        line = self.reader.readline()
        if not line:
            return None
        return json.loads(line.decode())

    def request(self, message):
        self.send(message)
        return self.receive()

    def close(self):
        try:
            self.reader.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def encode(message):
    return json.dumps(message).encode() + b"\n"
