"""The lab's vmd(8) command line: `vmd -n` checks a vm.conf, plain `vmd` starts the lab daemon."""

import os
import sys

from labsim import vmconf

USAGE = "usage: vmd [-dnv] [-D macro=value] [-f file]\n"
# vmd.c's getopt string "D:P:V:X:df:i:j:nt:vp:"; -P -V -X -i -j -t -p are what vmd passes
# to its own re-executed children: accepted like vmd does, and ignored here
OPTIONS_WITH_ARGUMENT = "DPVXfijtp"
OPTIONS_PLAIN = "dnv"


def _usage(stderr):
    stderr.write(USAGE)
    return 1


def _getopt(args, stderr):
    """OpenBSD getopt(3) without argument permutation; returns (options, operands) or None."""
    options = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        pos = 1
        while pos < len(arg):
            flag = arg[pos]
            if flag in OPTIONS_WITH_ARGUMENT:
                value = arg[pos + 1:]
                if not value:
                    index += 1
                    if index >= len(args):
                        stderr.write("vmd: option requires an argument -- %s\n" % flag)
                        return None
                    value = args[index]
                options.append((flag, value))
                break
            if flag not in OPTIONS_PLAIN:
                stderr.write("vmd: unknown option -- %s\n" % flag)
                return None
            options.append((flag, None))
            pos += 1
        index += 1
    return options, args[index:]


def _cmdline_symset(definition, macros):
    """cmdline_symset(): split at the last '='; False when there is none."""
    if "=" not in definition:
        return False
    name, value = definition.rsplit("=", 1)
    # symset() keeps the first persistent definition of a name
    macros.setdefault(name, value)
    return True


def check_config(conffile, macros, default_file, stderr):
    """vmd -n: print what vmd prints, return the exit code."""
    try:
        config = vmconf.parse_file(conffile, test_mode=True, macros=macros, default_file=default_file)
    except vmconf.ConfigError as exc:
        for line in exc.messages + exc.warnings:
            stderr.write(line + "\n")
        return 1
    for line in config.warnings:
        stderr.write(line + "\n")
    stderr.write("configuration OK\n")
    return 0


def main(argv=None, stderr=None):
    args = sys.argv[1:] if argv is None else argv
    stderr = stderr or sys.stderr
    parsed = _getopt(args, stderr)
    if parsed is None:
        return _usage(stderr)
    options, operands = parsed
    if operands:
        return _usage(stderr)
    noaction = False
    conffile = None
    macros = {}
    for flag, value in options:
        if flag == "n":
            noaction = True
        elif flag == "f":
            conffile = value
        elif flag == "D":
            # vmd logs a bad definition to syslog only (logging is not set up yet)
            _cmdline_symset(value, macros)
    root = os.environ.get("VMM_LAB_ROOT")
    if noaction:
        if conffile is None:
            if not root:
                stderr.write("lab: VMM_LAB_ROOT is not set\n")
                return 1
            return check_config(os.path.join(os.path.abspath(root), "etc", "vm.conf"), macros, True, stderr)
        return check_config(conffile, macros, False, stderr)
    if not root:
        stderr.write("lab: VMM_LAB_ROOT is not set\n")
        return 1
    from labsim import daemon  # the lab daemon (LAB-CORE); only needed to start vmd
    try:
        daemon.start_daemon(os.path.abspath(root))
    except daemon.DaemonError as exc:
        for line in exc.lines:
            stderr.write(line + "\n")
        return 1
    return 0
