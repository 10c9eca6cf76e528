"""The lab's stand-in for `/usr/bin/cu -r -l /dev/ttypN -s 115200` (what `vmctl console` execs).

It prints the VM's console from the start of the current boot and follows it until
the VM terminates (a reboot in place keeps the tty and the session).
"""

import select
import sys

from labsim import protocol, state

POLL_SECONDS = 0.05


def _fail(message):
    sys.stderr.write("cu: %s\n" % message)
    sys.stderr.flush()
    return 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    line = None
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-l", "-s") and index + 1 < len(argv):
            if arg == "-l":
                line = argv[index + 1]
            index += 2
            continue
        index += 1
    if not line:
        return _fail("no line specified")
    root = state.lab_root()
    sock_path = state.socket_path(root)
    try:
        with protocol.connect(sock_path) as conn:
            info = conn.request({"op": "console", "tty": line, "uid": 0})
    except OSError as exc:
        return _fail("%s: %s" % (line, state.strerror(exc.errno)))
    if not info or not info.get("name"):
        return _fail("%s: %s" % (line, state.strerror("ENOENT")))
    watch = protocol.connect(sock_path)
    watch.send({"op": "watch", "id": info["id"], "tty": line, "uid": 0})
    sys.stderr.write("Connected to %s (speed 115200)\n" % line)
    sys.stderr.flush()
    out = getattr(sys.stdout, "buffer", sys.stdout)
    try:
        with open(info["console"], "rb") as console:
            console.seek(info["offset"])
            while True:
                data = console.read()
                if data:
                    out.write(data)
                    out.flush()
                ready = select.select([watch.sock], [], [], POLL_SECONDS)[0]
                if ready:
                    rest = console.read()
                    if rest:
                        out.write(rest)
                        out.flush()
                    break
    except OSError as exc:
        return _fail("%s: %s" % (line, state.strerror(exc.errno)))
    except KeyboardInterrupt:
        pass
    finally:
        watch.close()
    sys.stderr.write("\n[EOT]\n")
    sys.stderr.flush()
    return 0
