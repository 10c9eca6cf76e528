"""pkg_add(1), pkg_info(1) and halt(8) on a lab guest (run inside the guest's namespaces).

start_sshd (guestnet.py) writes sh wrappers for them into the guest's lab/bin, which the guest's
init bind-mounts on /usr/local/sbin (first on sshd's PATH), so `pkg_add NAME` over SSH runs this.

What is modelled, from usr.sbin/pkg_add in openbsd/src:
- Repositories (OpenBSD/PackageRepository.pm, PackageRepositoryList.pm; OpenBSD/State.pm installpath):
  PKG_PATH, a `:`-separated list of URLs, else the first line of /etc/installurl that is neither blank nor
  a comment, followed by `/%c/packages/%a/`; without either nothing is found. `%c` is the release
  (7.8), `%a` the architecture, `%v` the release as well (Paths.pm os_directory for a release).
  Repositories are tried in order (PackageRepositoryList do_something: the first that answers wins).
- A full package name (stem-version, OpenBSD/PackageName.pm splitname: the version is the first
  `-`-separated part that starts with a digit) is fetched directly as URL + NAME.tgz
  (PackageRepository find). A stem alone needs the repository's list: get_http_list reads the HTML
  of `ftp -o - URL` for HREF="....tgz" (an httpd with `directory no auto index` answers 403, and the
  stem is not found). Several versions or flavors of one stem: `Ambiguous` (non-interactive
  choose_location), exit 1; none: "Can't find NAME" (AddCreateDelete.pm choose_location), exit 1.
- Installing: the package's +CONTENTS and +DESC go to /var/db/pkg/FULLNAME/ (Paths.pm pkgdb), which is
  what pkg_info reads, and, when the system goes down by itself (guest.py sync_disk), into the boot disk's
  install record (`packages`): a guest booting that disk (or an overlay of it) under another name has them in
  its /var/db/pkg from its seed. An installed stem is not installed again. @depend lines
  (`@depend PKGPATH:PATTERN:DEFAULT`) install DEFAULT first when no package of its stem is there.
  The lab never writes the package's files (/usr/local is this machine's).
- Fetching: http only, through the host's packet path (labsim.network.connect from the guest's tap and
  address: pf rdr-to, httpd's listeners); the lab httpd listens in the machine's network namespace, so
  the request is made from there once the packet path says where it ends.
- pkg_info (OpenBSD/PkgInfo.pm): no argument lists every installed package, `FULLNAME COMMENT` with the
  names padded to one column; -q prints the names only.
- halt [-p] (sbin/reboot): the guest ends its VM process as `lab guest halt` does.
Every pkg_add run is appended to the guest's lab/pkg_add.log (the lab's record).
"""

import io
import json
import os
import re
import signal
import sys
import tarfile
import time
import urllib.error
import urllib.request

from labsim import guestnet, network

PKGDB = "/var/db/pkg"
INSTALLURL = "/etc/installurl"
HREF_TGZ = re.compile(r'<A[^>]*\s+HREF="(.*?\.tgz)"', re.IGNORECASE)


class PkgError(Exception):
    pass


def splitname(fullname):
    """OpenBSD::PackageName::splitname: (stem, version, flavor) or (fullname, None, '') for a stem."""
    parts = fullname.split("-")
    for index in range(1, len(parts)):
        if parts[index][:1].isdigit():
            return "-".join(parts[:index]), parts[index], "-".join(parts[index + 1:])
    return fullname, None, ""


def is_stem(name):
    return splitname(name)[1] is None


def expand(url, release, arch):
    return url.replace("%c", release).replace("%v", release).replace("%a", arch)


def repositories(env, etc_installurl, release, arch):
    """PKG_PATH, else /etc/installurl + /%c/packages/%a/ (State.pm installpath); [] without either."""
    path = env.get("PKG_PATH")
    if path is None:
        try:
            with open(etc_installurl, encoding="utf-8") as handle:
                lines = [line.strip() for line in handle]
        except OSError:
            lines = []
        lines = [line for line in lines if line and not line.startswith("#")]
        if not lines:
            return []
        path = lines[0] + "/%c/packages/%a/"
    urls = []
    for entry in re.split(r":(?!//)", path):
        if entry:
            urls.append(expand(entry if entry.endswith("/") else entry + "/", release, arch))
    return urls


class Guest:
    """Where the guest is in the lab: its VM, its tap and address, its release."""

    def __init__(self, root, name, fetcher=None):
        self.root = root
        self.name = name
        self.top = guestnet.guest_dir(root, name)
        info = guestnet.load_state(root, name) or {}
        self.interfaces = info.get("interfaces") or []
        self.release = info.get("release") or "7.8"
        self.arch = info.get("arch") or "amd64"
        self.fetcher = fetcher or self._fetch

    def record_package(self, fullname, files):
        """The package is on the VM's disk once the system syncs it (guest.py sync_disk, at halt or reboot): into
        its install record, which the seed of a guest booting the disk (or an overlay of it) reads."""
        path = os.path.join(self.top, "lab", "unsynced-packages.json")
        try:
            with open(path, encoding="utf-8") as handle:
                pending = json.load(handle)
        except FileNotFoundError:
            pending = {}
        pending[fullname] = files
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(pending, handle, sort_keys=True)
        os.replace(path + ".tmp", path)

    def _fetch(self, url):
        """ftp -o - URL from the guest: (status, body) or raises OSError (no connection)."""
        match = re.fullmatch(r"http://([0-9.]+)(?::([0-9]+))?(/.*)?", url)
        if not match:
            raise OSError("only http:// URLs with an address reach the lab's host: %s" % url)
        nic = next((i for i in self.interfaces if i.get("address")), None)
        if nic is None:
            raise OSError("no address")
        host, port = network.connect(nic["peer"], nic["address"], match.group(1), int(match.group(2) or 80),
                                     groups=("tap",), own_address=nic.get("gateway"))
        _enter_httpd_netns(self.root)
        request = urllib.request.Request("http://%s:%d%s" % (host, port, match.group(3) or "/"),
                                         headers={"Host": match.group(1)})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""


def _enter_httpd_netns(root):
    """The lab httpd's real listener is in the machine's network namespace (that of its process)."""
    current = network._state("httpd.json", None)  # pylint: disable=protected-access
    if current and current.get("pid"):
        fd = os.open("/proc/%d/ns/net" % current["pid"], os.O_RDONLY)
        try:
            os.setns(fd, os.CLONE_NEWNET)
        finally:
            os.close(fd)


def _read_package(data):
    """(+CONTENTS text, +DESC text) of a package .tgz."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        contents = archive.extractfile("+CONTENTS").read().decode()
        try:
            desc = archive.extractfile("+DESC").read().decode()
        except KeyError:
            desc = ""
    return contents, desc


def installed(pkgdb=PKGDB):
    try:
        return sorted(n for n in os.listdir(pkgdb) if os.path.isfile(os.path.join(pkgdb, n, "+CONTENTS")))
    except FileNotFoundError:
        return []


class PkgAdd:
    def __init__(self, guest, repos, out, err, pkgdb=PKGDB, verbose=False):
        self.guest = guest
        self.repos = repos
        self.out = out
        self.err = err
        self.pkgdb = pkgdb
        self.verbose = verbose
        self.lists = {}

    def _list(self, repo):
        """get_http_list: the .tgz names the repository's page links to ([] when it gives none)."""
        if repo not in self.lists:
            try:
                status, body = self.guest.fetcher(repo)
            except OSError as exc:
                self.err.write("ftp: %s: %s\n" % (repo, exc))
                status, body = None, b""
            names = []
            if status == 200:
                for href in HREF_TGZ.findall(body.decode("latin-1")):
                    names.append(href.rsplit("/", 1)[-1][:-len(".tgz")])
            self.lists[repo] = names
        return self.lists[repo]

    def _locate(self, name):
        """(repo, fullname) or None; raises PkgError on ambiguity."""
        if not is_stem(name):
            for repo in self.repos:
                try:
                    status, body = self.guest.fetcher(repo + name + ".tgz")
                except OSError as exc:
                    self.err.write("ftp: %s: %s\n" % (repo, exc))
                    continue
                if status == 200:
                    return repo, name, body
            return None
        for repo in self.repos:
            matches = sorted(n for n in self._list(repo) if splitname(n)[0] == name)
            if len(matches) > 1:
                raise PkgError("Ambiguous: %s could be %s" % (name, " ".join(matches)))
            if matches:
                status, body = self.guest.fetcher(repo + matches[0] + ".tgz")
                if status == 200:
                    return repo, matches[0], body
        return None

    def add(self, name, depth=0):
        stem = splitname(name)[0]
        have = [n for n in installed(self.pkgdb) if splitname(n)[0] == stem]
        if have:
            if self.verbose:
                self.out.write("%s: already installed\n" % have[0])
            return True
        if depth > 20:
            raise PkgError("dependency loop at %s" % name)
        found = self._locate(name)
        if found is None:
            self.err.write("Can't find %s\n" % name)
            return False
        repo, fullname, data = found
        contents, desc = _read_package(data)
        for line in contents.splitlines():
            if line.startswith("@depend "):
                default = line.split(" ", 1)[1].split(":")[-1]
                if not self.add(default, depth + 1):
                    return False
        target = os.path.join(self.pkgdb, fullname)
        os.makedirs(target, exist_ok=True)
        for member, text in (("+DESC", desc), ("+CONTENTS", contents)):
            with open(os.path.join(target, member), "w", encoding="utf-8") as handle:
                handle.write(text)
        self.guest.record_package(fullname, {"+CONTENTS": contents, "+DESC": desc})
        self.out.write("%s: ok\n" % fullname)
        with open(os.path.join(self.guest.top, "lab", "pkg_add.log"), "a", encoding="utf-8") as log:
            log.write("%s %s %s%s.tgz\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), fullname, repo, fullname))
        return True


def pkg_add(argv, env, guest, out, err, pkgdb=PKGDB, etc_installurl=INSTALLURL):
    verbose = False
    names = []
    for arg in argv:
        if arg.startswith("-") and not names:
            if set(arg[1:]) - set("vIx"):
                err.write("Usage: pkg_add [-acIinqrsUuVvx] [-h] [-D name[=value]] [-L localbase] [-l file] [-P type] pkg-name ...\n")
                return 1
            verbose = verbose or "v" in arg
        else:
            names.append(arg)
    if not names:
        err.write("Usage: pkg_add [-acIinqrsUuVvx] [-h] [-D name[=value]] [-L localbase] [-l file] [-P type] pkg-name ...\n")
        return 1
    if os.geteuid() != 0:
        err.write("pkg_add must be run as root\n")
        return 1
    repos = repositories(env, etc_installurl, guest.release, guest.arch)
    runner = PkgAdd(guest, repos, out, err, pkgdb, verbose)
    code = 0
    for name in names:
        try:
            if not runner.add(name):
                code = 1
        except PkgError as exc:
            err.write("%s\n" % exc)
            code = 1
    return code


def pkg_info(argv, out, pkgdb=PKGDB):
    quiet = "-q" in argv
    names = installed(pkgdb)
    width = max((len(n) for n in names), default=0)
    for name in names:
        if quiet:
            out.write(name + "\n")
            continue
        try:
            with open(os.path.join(pkgdb, name, "+DESC"), encoding="utf-8") as handle:
                comment = handle.readline().strip()
        except OSError:
            comment = ""
        out.write("%-*s %s\n" % (width, name, comment))
    return 0


def halt(argv, root, name):
    """halt [-p]: the guest's VM process ends as when the OS halts (`lab guest halt`, guest.py SIGUSR2)."""
    del argv
    info = guestnet.load_state(root, name) or {}
    if not info.get("pid"):
        sys.stderr.write("halt: this guest is not running\n")
        return 1
    os.kill(info["pid"], signal.SIGUSR2)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    tool, args = argv[0], argv[1:]
    root, name = os.environ["VMM_LAB_ROOT"], os.environ["LAB_GUEST"]
    if tool == "pkg_add":
        env = {k: v for k, v in os.environ.items() if k == "PKG_PATH"}
        return pkg_add(args, env, Guest(root, name), sys.stdout, sys.stderr)
    if tool == "pkg_info":
        return pkg_info(args, sys.stdout)
    if tool == "halt":
        return halt(args, root, name)
    sys.stderr.write("%s: not a lab guest tool\n" % tool)
    return 1


if __name__ == "__main__":
    sys.exit(main())
