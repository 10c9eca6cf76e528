"""httpd(8) for the lab: only the configuration test, `httpd -n [-f file]`.

The parser follows httpd.conf(5)'s shape: macros, `include`, global options (chroot,
logdir, prefork, default type, types { }) and `server "name" { ... }` blocks whose options
(listen on, root, directory, location { }, log, tls, ...) are known keywords. Each
server needs at least one `listen on ... port N`. It does not check option arguments
beyond that, nor resolve addresses."""

import re
import sys

from . import common

GLOBAL = ("chroot", "logdir", "prefork", "default", "types", "server", "include")
SERVER = ("listen", "root", "directory", "location", "log", "tls", "alias", "block", "pass",
          "request", "connection", "gzip-static", "hsts", "fastcgi", "default", "errdocs",
          "authenticate", "no", "tcp", "match")
TYPES_LINE = re.compile(r"^[\w.+-]+/[\w.+-]+\s+[\w.\s-]+;?$")


def tokens_balance(line):
    return line.count("{") - line.count("}")


def check_file(path, errors, depth=0):
    try:
        text = common.read_text(path)
    except OSError as exc:
        errors.append("httpd: %s: %s" % (path, exc.strerror))
        return
    context = []          # stack of "server", "location", "types", ...
    server_listens = []
    macros = {}
    for number, raw in common.logical_lines(text):
        line = common.strip_comment(raw).strip()
        if not line:
            continue
        definition = re.match(r"^([A-Za-z0-9_]+)\s*=\s*(.+)$", line)
        if definition and not context:
            macros[definition.group(1)] = definition.group(2).strip().strip('"')
            continue
        for name in re.findall(r"\$([A-Za-z0-9_]+)", re.sub(r'"[^"]*"', "", line)):
            if name not in macros:
                errors.append("%s:%d: macro '%s' not defined" % (path, number, name))
        first = line.split()[0]
        top = context[-1] if context else None
        if first == "}":
            if not context:
                errors.append("%s:%d: syntax error" % (path, number))
                continue
            closed = context.pop()
            if closed == "server":
                name, listening = server_listens.pop()
                if not listening:
                    errors.append("%s:%d: server \"%s\" has no listen on" % (path, number, name))
            continue
        if top == "types":
            if not TYPES_LINE.match(line):
                errors.append("%s:%d: syntax error" % (path, number))
            continue
        allowed = GLOBAL if top is None else SERVER
        if first not in allowed:
            errors.append("%s:%d: syntax error" % (path, number))
            continue
        if first == "include" and top is None:
            check_file(line.split(None, 1)[1].strip('"') if len(line.split()) > 1 else "", errors, depth + 1)
            continue
        if first == "listen" and top in ("server",):
            if not re.match(r'^listen on ("[^"]*"|\S+)( tls)? port \S+$', line):
                errors.append("%s:%d: syntax error" % (path, number))
            else:
                server_listens[-1][1] = True
        opened = tokens_balance(line)
        if opened > 0:
            if first == "server" and top is None:
                if not re.match(r'^server ("[^"]*"|\S+) \{$', line):
                    errors.append("%s:%d: syntax error" % (path, number))
                context.append("server")
                server_listens.append([line.split()[1].strip('"'), False])
            elif first == "types":
                context.append("types")
            else:
                context.append(first)
        elif opened < 0:
            errors.append("%s:%d: syntax error" % (path, number))
    if context:
        errors.append("%s:%d: syntax error" % (path, len(text.splitlines()) or 1))


def check_flags(argv):
    """Check the configuration the daemon would load with these flags."""
    config = common.lab_path("etc", "httpd.conf")
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "-f" and args:
            config = args.pop(0)
        elif arg.startswith("-f") and len(arg) > 2:
            config = arg[2:]
    errors = []
    check_file(config, errors)
    return not errors, "\n".join(errors)


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if "-n" not in args:
        common.err("httpd: the lab's httpd only tests configurations (-n); start it with rcctl")
        return 1
    args.remove("-n")
    ok, message = check_flags([a for a in args if a not in ("-d", "-v", "-vv")])
    if not ok:
        common.err(message)
        return 1
    common.err("configuration OK")
    return 0
