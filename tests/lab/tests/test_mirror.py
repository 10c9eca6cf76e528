"""`lab mirror` (labsim.mirror) and the loopback install server (labsim.httpd)."""

import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.error
import urllib.request

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import httpd, installer, mirror  # noqa: E402  pylint: disable=wrong-import-position

SETS = ['base78.tgz', 'comp78.tgz', 'man78.tgz', 'game78.tgz', 'xbase78.tgz', 'xshare78.tgz', 'xfont78.tgz', 'xserv78.tgz']


@pytest.fixture(name='setdir')
def setdir_fixture(tmp_path):
    return mirror.make_mirror(str(tmp_path / 'pub' / 'OpenBSD'), '7.8', 'amd64')


@pytest.fixture(name='server')
def server_fixture(tmp_path, monkeypatch):
    monkeypatch.setenv('VMM_LAB_ROOT', str(tmp_path / 'lab'))
    docroot = tmp_path / 'htdocs'
    docroot.mkdir()
    server, port = httpd.start(httpd.docroot_site(str(docroot)), '127.0.0.1:80')
    yield docroot, 'http://127.0.0.1:%d' % port, tmp_path / 'lab' / 'var' / 'log' / 'httpd.log'
    httpd.stop(server)


def test_mirror_layout(setdir, tmp_path):
    assert setdir == str(tmp_path / 'pub' / 'OpenBSD' / '7.8' / 'amd64')
    names = set(os.listdir(setdir))
    expected = {'bsd', 'bsd.mp', 'bsd.rd', 'BUILDINFO', 'INSTALL.amd64', 'SHA256', 'SHA256.sig', 'index.txt'}
    assert names == expected | set(SETS)


def test_bsd_rd_is_the_bootable_ramdisk(setdir):
    with open(os.path.join(setdir, 'bsd.rd'), encoding='ascii') as handle:
        assert handle.readline() == 'LAB-OPENBSD-RAMDISK 7.8 amd64\n'
    assert installer.is_ramdisk(os.path.join(setdir, 'bsd.rd'))
    assert not installer.is_ramdisk(os.path.join(setdir, 'bsd'))
    assert not installer.is_ramdisk(os.path.join(setdir, 'no-such-file'))


@pytest.mark.parametrize('name', SETS)
def test_sets_are_real_tgz(setdir, name):
    with tarfile.open(os.path.join(setdir, name), 'r:gz') as tar:
        members = tar.getnames()
    assert members and all(member.startswith('./') for member in members)
    if name == 'base78.tgz':
        assert './var/sysmerge/etc.tgz' in members
    if name == 'xbase78.tgz':
        assert './var/sysmerge/xetc.tgz' in members


def test_sha256_is_in_openbsd_format_and_correct(setdir):
    with open(os.path.join(setdir, 'SHA256'), encoding='ascii') as handle:
        lines = handle.read().splitlines()
    listed = {}
    for line in lines:
        match = re.match(r'^SHA256 \(([^)]+)\) = ([0-9a-f]{64})$', line)
        assert match, line
        listed[match.group(1)] = match.group(2)
    assert set(listed) == {'bsd', 'bsd.mp', 'bsd.rd', 'BUILDINFO', 'INSTALL.amd64'} | set(SETS)
    for name, digest in listed.items():
        with open(os.path.join(setdir, name), 'rb') as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == digest


def test_sha256_sig_embeds_and_signs_sha256(setdir):
    with open(os.path.join(setdir, 'SHA256.sig'), 'rb') as handle:
        signed = handle.read()
    with open(os.path.join(setdir, 'SHA256'), 'rb') as handle:
        sha256 = handle.read()
    assert signed.startswith(b'untrusted comment: verify with openbsd-78-base.pub\n')
    assert mirror.verify(signed, 'openbsd-78-base.pub') == sha256
    assert mirror.verify(signed, 'openbsd-79-base.pub') is None
    tampered = signed.replace(b'base78.tgz) = ', b'base78.tgz) = 0', 1)
    assert mirror.verify(tampered, 'openbsd-78-base.pub') is None


def test_index_txt_is_ls_nT_style_and_lists_every_file(setdir):
    with open(os.path.join(setdir, 'index.txt'), encoding='ascii') as handle:
        lines = handle.read().splitlines()
    pattern = re.compile(r'^-rw-r--r--  1 0  0  +(\d+) [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4} (\S+)$')
    names = []
    for line in lines:
        match = pattern.match(line)
        assert match, line
        assert int(match.group(1)) == os.path.getsize(os.path.join(setdir, match.group(2)))
        names.append(match.group(2))
    assert names == sorted(set(os.listdir(setdir)) - {'index.txt'})
    # The installer's own extraction: sed -En 's/^.* ([a-zA-Z][a-zA-Z0-9._-]+)$/\1/p'
    assert re.findall(r'^.* ([a-zA-Z][a-zA-Z0-9._-]+)$', '\n'.join(lines), re.M) == names


def test_write_index_adds_new_files(setdir):
    mirror.make_tgz(os.path.join(setdir, 'site78.tgz'), [('./etc/rc.local', b'echo hi\n', 0o644)])
    mirror.write_index(setdir)
    with open(os.path.join(setdir, 'index.txt'), encoding='ascii') as handle:
        assert ' site78.tgz\n' in handle.read()


def test_make_tgz_round_trip(tmp_path):
    path = str(tmp_path / 'site78.tgz')
    mirror.make_tgz(path, [('./install.site', b'#!/bin/sh\nexit 0\n', 0o755), ('./etc', None, 0o755)])
    with gzip.open(path) as handle:
        data = handle.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        info = tar.getmember('./install.site')
        assert info.mode == 0o755
        assert tar.extractfile(info).read() == b'#!/bin/sh\nexit 0\n'
        assert tar.getmember('./etc').isdir()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_httpd_serves_files_and_logs_path_and_query(server):
    docroot, base, log = server
    (docroot / 'install.conf').write_bytes(b'System hostname = web1\n')
    assert _get(base + '/fe:e1:bb:d1:12:34-install.conf?path=7.8/amd64')[0] == 404
    assert _get(base + '/install.conf?path=7.8/amd64') == (200, b'System hostname = web1\n')
    assert httpd.requested_urls(str(log)) == ['/fe:e1:bb:d1:12:34-install.conf?path=7.8/amd64',
                                              '/install.conf?path=7.8/amd64']
    text = log.read_text()
    assert '"GET /install.conf?path=7.8/amd64 HTTP/1.1" 200' in text


def test_httpd_refuses_directories_and_escapes(server, tmp_path):
    # server_file.c: a directory without its slash is a 301, with it (no index.html, no
    # `directory auto index`) a 403; nothing above the root is reachable.
    docroot, base, log = server
    (docroot / 'pub').mkdir()
    (tmp_path / 'secret').write_text('no')
    assert _get(base + '/')[0] == 403
    assert _get(base + '/pub')[0] == 403  # urllib follows the 301 to /pub/
    assert '"GET /pub HTTP/1.1" 301' in log.read_text()
    assert _get(base + '/pub/')[0] == 403
    assert _get(base + '/../secret')[0] == 404
    assert _get(base + '/%2e%2e/secret')[0] == 404


def test_httpd_is_http_1_0_on_loopback(server):
    docroot, base, _log = server
    (docroot / 'f').write_bytes(b'x')
    with urllib.request.urlopen(base + '/f', timeout=5) as reply:
        assert reply.version == 10
        assert reply.headers['Content-Length'] == '1'
    assert base.startswith('http://127.0.0.1:')


def test_httpd_without_lab_root_does_not_log(tmp_path, monkeypatch):
    monkeypatch.delenv('VMM_LAB_ROOT', raising=False)
    tmp_path.chmod(0o755)  # pytest makes it 0700: www could not enter it (403)
    server, port = httpd.start(httpd.docroot_site(str(tmp_path)), '127.0.0.1:80')
    try:
        (tmp_path / 'f').write_bytes(b'y')
        assert _get('http://127.0.0.1:%d/f' % port) == (200, b'y')
    finally:
        httpd.stop(server)
    assert httpd.default_log_path() is None
