"""ssh(1) between lab hosts: how vmm_disk_send reaches another vmm host.

The lab's hosts are the sibling roots of one lab base (setup_lab's lab_hosts.sh, scripts/demo); `ssh HOST
command` run on one of them (VMM_LAB_ROOT set) runs the command in the sibling root named HOST, as the same
user. Any other destination (a guest's address, which the controller reaches with VMM_LAB_ROOT exported in
some targets) goes to the machine's own ssh, the next one on PATH after the lab's, with the same arguments:
its name resolution, errors and connections are real. What it follows of OpenSSH's ssh.c:
- main(): options as its getopt string; `[user@]host`, or `-l user`; the command is the remaining arguments
  joined with single spaces, which the remote side runs with the user's shell (`$SHELL -c`, sshd's
  session.c do_child()); standard input, output and error pass through; ssh exits with the command's status.
- a port that is not a number: "Bad port '%s'" (a2port() failing), exit 255.
Not modelled: authentication and host keys (a real host needs the source's key in the target user's
authorized_keys, and PermitRootLogin allowing it for root), TTYs, forwarding."""

import getopt
import os
import re
import subprocess
import sys

# ssh.c main()'s getopt string (OpenSSH 9.x)
OPTSTRING = "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy"
# a name a host directory can have; anything else (a path, "..") names no lab host
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _peer_root(host):
    here = os.path.abspath(os.environ["VMM_LAB_ROOT"])
    if not HOST_NAME.fullmatch(host) or host in (".", ".."):
        return None
    root = os.path.join(os.path.dirname(here), host)
    return root if os.path.isdir(os.path.join(root, "lab")) else None


def real_ssh(argv):
    """exec the next ssh on PATH that is not the lab's."""
    lab_bin = os.path.realpath(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bin"))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "ssh")
        if directory and os.path.realpath(directory) != lab_bin and os.access(candidate, os.X_OK):
            os.execv(candidate, [candidate] + argv)
    sys.stderr.write("ssh: not found on PATH beside the lab's\n")
    return 127


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, args = getopt.getopt(argv, OPTSTRING)
    except getopt.GetoptError:
        return real_ssh(argv)
    if not args:
        return real_ssh(argv)
    root = _peer_root(args[0].rpartition("@")[2])
    if root is None:
        return real_ssh(argv)
    for opt, value in opts:
        if opt == "-p" and not (value.isdigit() and 0 < int(value) < 65536):
            sys.stderr.write("Bad port '%s'\n" % value)
            return 255
    command = " ".join(args[1:])
    if not command:
        sys.stderr.write("lab ssh: the lab runs commands only, no login session\n")
        return 255
    env = dict(os.environ, VMM_LAB_ROOT=root)
    shell = os.environ.get("SHELL") or "/bin/sh"
    return subprocess.run([shell, "-c", command], env=env, cwd=root, check=False).returncode
