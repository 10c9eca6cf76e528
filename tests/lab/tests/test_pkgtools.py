"""pkg_add, pkg_info and halt on a lab guest (labsim.pkgtools), against usr.sbin/pkg_add's behaviour."""

import io
import os
import sys

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import mirror, pkgtools  # noqa: E402  pylint: disable=wrong-import-position


class FakeGuest:
    """A guest whose ftp reaches a docroot: a directory lists its .tgz (auto index) or answers 403."""

    def __init__(self, top, docroot, auto_index=True):
        self.top = str(top)
        os.makedirs(os.path.join(self.top, "lab"), exist_ok=True)
        self.release, self.arch = "7.8", "amd64"
        self.docroot = str(docroot)
        self.auto_index = auto_index
        self.urls = []
        self.recorded = {}

    def record_package(self, fullname, files):
        self.recorded[fullname] = files

    def fetcher(self, url):
        self.urls.append(url)
        assert url.startswith("http://192.0.2.1/")
        path = os.path.join(self.docroot, url[len("http://192.0.2.1/"):])
        if os.path.isdir(path):
            if not self.auto_index:
                return 403, b""
            links = "".join('<tr><td><a href="%s">%s</a></td></tr>\n' % (n, n) for n in sorted(os.listdir(path)))
            return 200, ("<html><body><table>\n%s</table></body></html>\n" % links).encode()
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                return 200, handle.read()
        return 404, b""


@pytest.fixture(name="guest")
def guest_fixture(tmp_path):
    docroot = tmp_path / "htdocs"
    mirror.make_mirror(str(docroot / "pub" / "OpenBSD"), "7.8", "amd64")
    return FakeGuest(tmp_path / "guest", docroot)


def run_add(guest, argv, tmp_path, env=None, installurl=None):
    etc = tmp_path / "installurl"
    if installurl is not None:
        etc.write_text(installurl)
    out, err = io.StringIO(), io.StringIO()
    code = pkgtools.pkg_add(argv, env or {}, guest, out, err, pkgdb=str(tmp_path / "pkgdb"), etc_installurl=str(etc))
    return code, out.getvalue(), err.getvalue()


def info(tmp_path, *argv):
    out = io.StringIO()
    assert pkgtools.pkg_info(list(argv), out, pkgdb=str(tmp_path / "pkgdb")) == 0
    return out.getvalue()


def test_splitname_version_is_first_part_starting_with_a_digit():
    assert pkgtools.splitname("rsync-3.4.1") == ("rsync", "3.4.1", "")
    assert pkgtools.splitname("vim-9.1.1265-no_x11") == ("vim", "9.1.1265", "no_x11")
    assert pkgtools.splitname("py3-foo-1.2p0") == ("py3-foo", "1.2p0", "")
    assert pkgtools.is_stem("py3-foo") and not pkgtools.is_stem("rsync-3.4.1")


def test_installurl_gives_release_packages_directory(tmp_path):
    etc = tmp_path / "installurl"
    etc.write_text("# mirror\n\nhttp://192.0.2.1/pub/OpenBSD\nhttp://other/pub/OpenBSD\n")
    assert pkgtools.repositories({}, str(etc), "7.8", "amd64") == ["http://192.0.2.1/pub/OpenBSD/7.8/packages/amd64/"]
    assert pkgtools.repositories({}, str(tmp_path / "none"), "7.8", "amd64") == []


def test_pkg_path_wins_and_is_a_colon_separated_list(tmp_path):
    etc = tmp_path / "installurl"
    etc.write_text("http://192.0.2.1/pub/OpenBSD\n")
    env = {"PKG_PATH": "http://192.0.2.9/pkgs/%c/%a:http://192.0.2.1/pub/OpenBSD/%v/packages/%a/"}
    assert pkgtools.repositories(env, str(etc), "7.8", "arm64") == [
        "http://192.0.2.9/pkgs/7.8/arm64/", "http://192.0.2.1/pub/OpenBSD/7.8/packages/arm64/"]


def test_stem_installed_from_installurl_with_its_dependency_first(guest, tmp_path):
    code, out, err = run_add(guest, ["rsync"], tmp_path, installurl="http://192.0.2.1/pub/OpenBSD\n")
    assert (code, err) == (0, "")
    assert out == "xxhash-0.8.3: ok\nrsync-3.4.1: ok\n"
    assert info(tmp_path, "-q") == "rsync-3.4.1\nxxhash-0.8.3\n"
    assert info(tmp_path) == ("rsync-3.4.1  mirroring/synchronization over low bandwidth links\n"
                              "xxhash-0.8.3 extremely fast non-cryptographic hash algorithm\n")
    assert sorted(guest.recorded) == ["rsync-3.4.1", "xxhash-0.8.3"]
    assert guest.recorded["rsync-3.4.1"]["+CONTENTS"].startswith("@name rsync-3.4.1\n")
    log = open(os.path.join(guest.top, "lab", "pkg_add.log"), encoding="utf-8").read()
    assert "rsync-3.4.1 http://192.0.2.1/pub/OpenBSD/7.8/packages/amd64/rsync-3.4.1.tgz" in log


def test_installed_stem_is_not_installed_again(guest, tmp_path):
    run_add(guest, ["xxhash"], tmp_path, installurl="http://192.0.2.1/pub/OpenBSD\n")
    guest.urls.clear()
    code, out, _err = run_add(guest, ["xxhash"], tmp_path, installurl="http://192.0.2.1/pub/OpenBSD\n")
    assert (code, out, guest.urls) == (0, "", [])


def test_without_a_listing_only_full_names_are_found(guest, tmp_path):
    guest.auto_index = False        # the install server's httpd: directory no auto index
    env = {"PKG_PATH": "http://192.0.2.1/pub/OpenBSD/%c/packages/%a/"}
    code, out, err = run_add(guest, ["xxhash"], tmp_path, env=env)
    assert (code, out, err) == (1, "", "Can't find xxhash\n")
    code, out, err = run_add(guest, ["xxhash-0.8.3"], tmp_path, env=env)
    assert (code, out, err) == (0, "xxhash-0.8.3: ok\n", "")


def test_ambiguous_stem_and_missing_package_fail(guest, tmp_path):
    code, out, err = run_add(guest, ["vim", "nosuch"], tmp_path, installurl="http://192.0.2.1/pub/OpenBSD\n")
    assert code == 1 and out == ""
    assert err == ("Ambiguous: vim could be vim-9.1.1265-gtk3 vim-9.1.1265-no_x11\n" "Can't find nosuch\n")
    assert info(tmp_path) == ""


def test_nothing_found_without_pkg_path_or_installurl(guest, tmp_path):
    code, _out, err = run_add(guest, ["rsync"], tmp_path)
    assert (code, err, guest.urls) == (1, "Can't find rsync\n", [])


def test_the_guest_tools_run_on_an_interpreter_the_guest_sees(tmp_path):
    # The guest has its own /tmp and /run (guestnet.GUEST_INIT): a venv's link there (a checkout under /tmp,
    # as the demo's and CI's may be) is not found from inside the guest; the real interpreter behind it is.
    from labsim import guestnet  # pylint: disable=import-outside-toplevel
    guestnet._guest_tools(str(tmp_path), "g1", str(tmp_path / "guests" / "g1"))  # pylint: disable=protected-access
    for tool in guestnet.GUEST_TOOLS:
        wrapper = (tmp_path / "guests" / "g1" / "lab" / "bin" / tool).read_text(encoding="ascii")
        assert " exec %s -I -c " % os.path.realpath(sys.executable) in wrapper, wrapper
        assert "/run/lab-code " + tool in wrapper, wrapper
