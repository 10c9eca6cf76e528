"""httpd(8) for the lab: `httpd -n [-f file]`, and the daemon that `rcctl start httpd` runs.

The parser follows httpd.conf(5)'s shape: macros, `include`, global options (chroot,
logdir, prefork, default type, types { }) and `server "name" { ... }` blocks whose options
(listen on, root, directory, location { }, log, tls, ...) are known keywords. Each
server needs at least one `listen on ... port N`. Other option arguments are not checked.

`listen on` follows usr.sbin/httpd/parse.y host(): an IPv4/IPv6 literal is taken as it is
(`*` is 0.0.0.0); anything else goes to host_if(), which takes the addresses that the
interfaces of that name or interface group have *when the configuration is read* (the lab's
ifconfig state); none is `invalid listen ip: NAME`. (The lab has no DNS: host_dns() names
that are no interface are refused the same way.) An address literal that is on no interface
passes `httpd -n` but fails when httpd starts: httpd.c parent_configure() ->
config_setserver() -> server_privinit() binds the listening socket, bind(2) fails with
EADDRNOTAVAIL and the parent exits with `fatal("send server")`. Interfaces or addresses that
appear later (a tap vmd configures for a VM started afterwards) are never learned.

The daemon (started and stopped by the lab's rcctl) serves each `server` block with
labsim.httpd: one real listener on 127.0.0.1:<ephemeral port> per (address, port), recorded
in lab/basetools/httpd.json, which labsim.network uses to deliver connections. SIGHUP re-reads
the configuration (rcctl reload); SIGTERM stops it (rcctl stop)."""

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from labsim import state as lab_state

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


def interface_addresses(name):
    """parse.y host_if(): IPv4 then IPv6 addresses of the interfaces named NAME or in group NAME."""
    from . import ifconfig
    table = ifconfig.load()
    found = []
    for ifname in sorted(table):
        entry = table[ifname]
        if ifname == name or name in entry.get("groups", []):
            found.extend(address.split("/")[0] for address in entry.get("inet", []))
    return sorted(found, key=lambda address: ":" in address)


def configured_addresses():
    """Every address on a lab interface now (what bind(2) accepts)."""
    from . import ifconfig
    return {address.split("/")[0] for entry in ifconfig.load().values() for address in entry.get("inet", [])}


def literal(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def expand_macros(line, macros):
    pieces = re.split(r'("[^"]*")', line)
    for index, piece in enumerate(pieces):
        if not piece.startswith('"'):
            pieces[index] = re.sub(r"\$([A-Za-z0-9_]+)", lambda m: macros.get(m.group(1), ""), piece)
    return "".join(pieces)


def read_servers(path, config, errors, macros, depth=0):
    """The servers of a configuration: name, listen (address, port) pairs, root, auto index."""
    try:
        text = common.read_text(path)
    except OSError:
        return
    context = []
    for number, raw in common.logical_lines(text):
        line = common.strip_comment(raw).strip()
        if not line:
            continue
        definition = re.match(r"^([A-Za-z0-9_]+)\s*=\s*(.+)$", line)
        if definition and not context:
            macros[definition.group(1)] = definition.group(2).strip().strip('"')
            continue
        line = expand_macros(line, macros)
        words = [w.strip('"') for w in re.findall(r'"[^"]*"|\S+', line)]
        top = context[-1] if context else None
        if words[0] == "}":
            if context:
                context.pop()
            continue
        if top is None and words[0] == "chroot" and len(words) > 1:
            config["chroot"] = words[1]
        elif top is None and words[0] == "include" and len(words) > 1 and depth < 8:
            read_servers(words[1], config, errors, macros, depth + 1)
        elif top is None and words[0] == "server" and len(words) > 1:
            config["servers"].append({"name": words[1], "listen": [], "root": "/htdocs", "auto_index": False, "locations": []})
        elif top == "server" and words[0] == "location" and len(words) > 1:
            # parse.y: a location starts as its server's configuration; its own options replace the server's
            config["servers"][-1]["locations"].append({"pattern": words[1], "auto_index": None})
        elif top == "location" and words[0] == "directory" and config["servers"] and config["servers"][-1]["locations"]:
            flags = " ".join(words[1:]).strip("{} ")
            location = config["servers"][-1]["locations"][-1]
            if re.search(r"(^|[\s,])no auto index", flags):
                location["auto_index"] = False
            elif re.search(r"(^|[\s,])auto index", flags):
                location["auto_index"] = True
        elif top == "server" and words[:2] == ["listen", "on"] and len(words) >= 5:
            address, port = words[2], words[-1]
            if address == "*":
                addresses = ["0.0.0.0"]
            elif literal(address):
                addresses = [literal(address)]
            else:
                addresses = interface_addresses(address)
                if not addresses:
                    errors.append("%s:%d: invalid listen ip: %s" % (path, number, address))
            port = {"www": "80", "http": "80", "https": "443"}.get(port, port)
            if not port.isdigit() or not 0 < int(port) < 65536:
                errors.append("%s:%d: invalid port" % (path, number))
                continue
            server = config["servers"][-1]
            server["listen"].extend((address, int(port)) for address in addresses)
        elif top == "server" and words[0] == "root" and len(words) > 1:
            config["servers"][-1]["root"] = words[1]
        elif top == "server" and words[0] == "directory":
            flags = " ".join(words[1:]).strip("{} ")
            if re.search(r"(^|[\s,])no auto index", flags):
                config["servers"][-1]["auto_index"] = False
            elif re.search(r"(^|[\s,])auto index", flags):
                config["servers"][-1]["auto_index"] = True
        opened = tokens_balance(line)
        if opened > 0:
            context.append("server" if top is None and words[0] == "server" else words[0])
        elif opened < 0 and context:
            context.pop()


def load_config(path):
    """(config, errors): the structure check of check_file, then the servers with resolved addresses."""
    errors = []
    check_file(path, errors)
    config = {"file": path, "chroot": "/var/www", "servers": []}
    if not errors:
        read_servers(path, config, errors, {})
    return config, errors


def config_path(argv):
    config = common.lab_path("etc", "httpd.conf")
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "-f" and args:
            config = args.pop(0)
        elif arg.startswith("-f") and len(arg) > 2:
            config = arg[2:]
    return config


def check_flags(argv):
    """Check the configuration the daemon would load with these flags."""
    _config, errors = load_config(config_path(argv))
    return not errors, "\n".join(errors)


# --- the daemon -----------------------------------------------------------------------------

HTTPD_USER_FALLBACK = "www-data"


def www_user():
    """The lab's stand-in for HTTPD_USER (`www`): `lab init --www-user`, default www-data."""
    try:
        with open(common.lab_path("lab", "settings.json"), encoding="utf-8") as handle:
            return json.load(handle).get("www_user") or HTTPD_USER_FALLBACK
    except (OSError, ValueError):
        return HTTPD_USER_FALLBACK


def host_path(path):
    """A host path inside the lab: paths already under the lab root stay, others map into it."""
    root = common.lab_root().rstrip("/")
    return path if path == root or path.startswith(root + "/") else common.lab_path(path)


def syslog(message):
    """httpd logs to syslog (daemon facility) once it has daemonized: the lab's /var/log/daemon."""
    line = "%s httpd[%d]: %s\n" % (time.strftime("%b %d %H:%M:%S"), os.getpid(), message)
    path = common.lab_path("var", "log", "daemon")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


def state():
    return common.load_state("httpd.json", None)


def running_pid():
    current = state()
    if current and current.get("pid") and lab_state.process_alive(current["pid"]):
        return current["pid"]
    return None


class Daemon:
    """The serving side: one labsim.httpd listener per (address, port) of the configuration."""

    def __init__(self, config_file):
        self.config_file = config_file
        self.servers = []
        self.lock = threading.Lock()
        self.generation = 0
        self.listeners = []
        self.reload_error = None
        self.fatal = False
        self.done = threading.Event()

    def prepare(self):
        """Parse, resolve, check the user and every address; returns (sites, error)."""
        from labsim import httpd as serving
        config, errors = load_config(self.config_file)
        if errors:
            return None, "\n".join(errors)
        user = www_user()
        try:
            uid, gids = serving.identity(user)
        except KeyError:
            return None, "httpd: unknown user %s" % user
        here = configured_addresses()
        chroot = host_path(config["chroot"])
        sites = []
        for server in config["servers"]:
            site = serving.Site(chroot, server["root"], server["auto_index"], uid, gids,
                                locations=[(loc["pattern"], server["auto_index"] if loc["auto_index"] is None else loc["auto_index"])
                                           for loc in server["locations"]])
            for address, port in server["listen"]:
                if address not in ("0.0.0.0", "::") and address not in here:
                    # server_privinit(): bind(2) of the listening socket fails.
                    return None, "fatal in parent: send server: Can't assign requested address"
                sites.append((server["name"], address, port, site))
        return sites, None

    def bind(self, sites):
        from labsim import httpd as serving
        listeners, servers, seen = [], [], set()
        for name, address, port, site in sites:
            if (address, port) in seen:
                continue  # server_privinit(): one socket per address and port
            seen.add((address, port))
            server, real_port = serving.start(site, "%s:%d" % (address, port))
            servers.append(server)
            listeners.append({"server": name, "address": address, "port": port, "real_port": real_port})
        return servers, listeners

    def publish(self):
        common.save_state("httpd.json", {"pid": os.getpid(), "config": self.config_file, "listeners": self.listeners,
                                         "generation": self.generation, "reload_error": self.reload_error})

    def close(self):
        from labsim import httpd as serving
        for server in self.servers:
            serving.stop(server)
        current = state()
        if current and current.get("pid") == os.getpid():
            os.unlink(common.state_path("httpd.json"))

    def reload(self):
        from labsim import httpd as serving
        with self.lock:
            sites, error = self.prepare()
            self.generation += 1
            self.reload_error = error
            if error and error.startswith("fatal in parent"):
                # parent_reload() -> parent_configure() -> config_setserver(): the bind fails and
                # fatal("send server") ends httpd; rcctl reload (a SIGHUP) had already said ok.
                syslog(error)
                self.fatal = True
                self.publish()
                self.done.set()
                return
            if error:
                # A configuration that does not parse: the previous one keeps serving, logged only.
                syslog("reload: %s" % error)
                self.publish()
                return
            old = self.servers
            self.servers, self.listeners = self.bind(sites)
            self.publish()
            for server in old:
                serving.stop(server)


def serve_in_process(config_file):
    """The daemon's serving side in the calling process (the lab's tests); close() ends it."""
    daemon = Daemon(config_file)
    sites, error = daemon.prepare()
    if error:
        raise RuntimeError(error)
    daemon.servers, daemon.listeners = daemon.bind(sites)
    daemon.publish()
    return daemon


def serve_main(config_file):
    """The daemon process: report `ok` or the error on stdout, then serve until SIGTERM."""
    daemon = Daemon(config_file)
    sites, error = daemon.prepare()
    if error:
        sys.stdout.write(error + "\n")
        sys.stdout.flush()
        syslog(error)
        return 1
    daemon.servers, daemon.listeners = daemon.bind(sites)
    daemon.publish()
    done = daemon.done
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=daemon.reload, daemon=True).start())
    syslog("startup")
    sys.stdout.write("ok\n")
    sys.stdout.flush()
    os.close(1)
    # A lab root removed under the daemon (rm -rf, lab init of a fresh root) ends it: no stray process.
    while not done.wait(0.5):
        current = state()
        if not current or current.get("pid") != os.getpid():
            return 0
    current = state()
    if current and current.get("pid") == os.getpid():
        os.unlink(common.state_path("httpd.json"))
    if daemon.fatal:
        return 1
    syslog("parent terminating, pid %d" % os.getpid())
    return 0


def start_daemon(flags):
    """rcctl start: spawn the daemon; (ok, message). Fails as httpd would before it serves."""
    ok, message = check_flags(flags.split())
    if not ok:
        return False, message
    lab_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from labsim.basetools import httpd; "
            "sys.exit(httpd.serve_main(sys.argv[1]))")
    env = dict(os.environ, VMM_LAB_ROOT=common.lab_root())
    proc = subprocess.Popen([sys.executable, "-I", "-c", code, lab_dir, os.path.abspath(config_path(flags.split()))],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            cwd="/", env=env, start_new_session=True, universal_newlines=True)
    answer = proc.stdout.readline().strip()
    proc.stdout.close()
    if answer != "ok":
        proc.wait(10)
        if answer.startswith("fatal in parent"):
            return False, ""  # after daemon(3): only syslog (the lab's var/log/daemon) has it
        return False, answer or "httpd: exited at start"
    return True, ""


def stop_daemon(timeout=10.0):
    """rcctl stop: SIGTERM the daemon and wait for it to go; True when none is left."""
    pid = running_pid()
    if pid is None:
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while lab_state.process_alive(pid) and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.02)
    if lab_state.process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    try:
        os.unlink(common.state_path("httpd.json"))
    except FileNotFoundError:
        pass
    return True


def reload_daemon(timeout=10.0):
    """rcctl reload: SIGHUP, then wait (bounded) until the daemon has read its configuration again."""
    pid = running_pid()
    if pid is None:
        return False
    generation = state().get("generation", 0)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = state() or {}
        # rc.d's reload is a SIGHUP: ok once delivered, whether httpd then lives or dies
        if current.get("generation", 0) > generation or current.get("pid") != pid:
            return True
        time.sleep(0.02)
    return False


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
