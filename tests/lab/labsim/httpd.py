"""The lab httpd(8)'s server processes: static files of one `server` block, as user www, chrooted.

A listener is a real HTTP/1.0 server on 127.0.0.1:<ephemeral port>; the lab's network path
(labsim.network) maps the address:port a client asked for to it.  Serving follows httpd:

- usr.sbin/httpd/httpd.c main(): the server processes run as HTTPD_USER (`www`) chrooted to
  the `chroot` directory (default /var/www, the www user's home).  The lab's www is a lab setting
  (`lab init --www-user`, default Debian's `www-data`): the lab never creates accounts.
- usr.sbin/httpd/server_file.c server_file_access(): the file is `root` + the canonical request
  path; access()/open() failing with ENOENT is 404, EACCES 403, anything else 500.  A directory
  without a trailing slash is a 301 to the slashed URL; with one, `index.html` is served, else a
  listing when `directory auto index` is set, else 403 (EACCES).  Neither regular file nor
  directory: 403.  Whether www may read is decided from stat() with Unix rules (owner, group,
  other bits; search permission on every directory from the chroot down), never from the
  identity the lab runs as.

Every request line is appended to $VMM_LAB_ROOT/var/log/httpd.log so tests can check which URLs
were tried, in which order.
"""

import errno
import fnmatch
import grp
import html
import http.server
import os
import posixpath
import pwd
import stat
import threading
import time
import urllib.parse


def default_log_path():
    """$VMM_LAB_ROOT/var/log/httpd.log, or None when VMM_LAB_ROOT is unset."""
    lab_root = os.environ.get('VMM_LAB_ROOT')
    if not lab_root:
        return None
    return os.path.join(lab_root, 'var', 'log', 'httpd.log')


def identity(user):
    """(uid, gids) of a login on this machine; KeyError when it does not exist."""
    entry = pwd.getpwnam(user)
    gids = {entry.pw_gid}
    gids.update(group.gr_gid for group in grp.getgrall() if user in group.gr_mem)
    return entry.pw_uid, gids


def _allowed(st, uid, gids, bit):
    """Unix permission check for uid/gids on a stat result; bit is 4 (r), 2 (w) or 1 (x)."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid in gids:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


class Site:
    """One `server` block: the chroot, the root inside it, directory options, who serves."""

    def __init__(self, chroot, root, auto_index, uid, gids, index='index.html', locations=()):
        self.chroot = chroot
        self.root = root
        self.auto_index = auto_index
        # (pattern, auto index) of the server's `location` blocks, in the configuration's order
        self.locations = list(locations)
        self.uid = uid
        self.gids = gids
        self.index = index

    def _access(self, host_path):
        """stat() host_path as www would after chroot(2): every directory below the chroot needs x."""
        relative = os.path.relpath(host_path, self.chroot)
        if relative.startswith('..'):
            raise OSError(errno.ENOENT, 'outside the chroot')
        current = self.chroot
        st = os.stat(current)
        for part in [p for p in relative.split(os.sep) if p not in ('', '.')]:
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            if not _allowed(st, self.uid, self.gids, 1):
                raise OSError(errno.EACCES, os.strerror(errno.EACCES))
            current = os.path.join(current, part)
            st = os.stat(current)
        return st

    def auto_index_for(self, request_path):
        """server_http.c server_getlocation(): the first location whose pattern fnmatch(3)es the path (FNM_CASEFOLD,
        without FNM_PATHNAME, so `*` matches `/` too) replaces the server's configuration; else the server's."""
        for pattern, auto_index in self.locations:
            if fnmatch.fnmatchcase(request_path.lower(), pattern.lower()):
                return auto_index
        return self.auto_index

    def resolve(self, request_path):
        """(status, host path or redirect target, stat) for a canonical request path."""
        auto_index = self.auto_index_for(request_path)
        # server_file(): path = root + request path, inside the chroot.
        host_path = os.path.join(self.chroot, self.root.lstrip('/'), request_path.lstrip('/'))
        try:
            st = self._access(host_path)
            if stat.S_ISDIR(st.st_mode):
                if not request_path.endswith('/'):
                    return 301, request_path + '/', st
                index = os.path.join(host_path, self.index)
                try:
                    index_st = self._access(index)
                    if stat.S_ISREG(index_st.st_mode) and _allowed(index_st, self.uid, self.gids, 4):
                        return 200, index, index_st
                    raise OSError(errno.EACCES, os.strerror(errno.EACCES))
                except OSError as exc:
                    if exc.errno != errno.ENOENT or not auto_index:
                        raise OSError(errno.EACCES, os.strerror(errno.EACCES)) from exc
                if not _allowed(st, self.uid, self.gids, 4):
                    raise OSError(errno.EACCES, os.strerror(errno.EACCES))
                return 200, host_path, st
            if not stat.S_ISREG(st.st_mode) or not _allowed(st, self.uid, self.gids, 4):
                raise OSError(errno.EACCES, os.strerror(errno.EACCES))
            return 200, host_path, st
        except OSError as exc:
            return {errno.ENOENT: 404, errno.EACCES: 403}.get(exc.errno, 500), None, None

    def listing(self, request_path, host_path):
        """server_file_index(): an HTML list of the directory (hidden files left out)."""
        lines = ['<!DOCTYPE html>', '<html>', '<head>', '<title>Index of %s</title>' % html.escape(request_path),
                 '</head>', '<body>', '<h1>Index of %s</h1>' % html.escape(request_path), '<hr>', '<pre>']
        for name in sorted(os.listdir(host_path)):
            if name.startswith('.') and name != '..':
                continue
            st = os.stat(os.path.join(host_path, name))
            stamp = time.strftime('%d-%b-%Y %H:%M', time.localtime(st.st_mtime))
            if stat.S_ISDIR(st.st_mode):
                lines.append('<a href="%s/">%s/</a> %s %20s' % (name, html.escape(name), stamp, '-'))
            elif stat.S_ISREG(st.st_mode):
                lines.append('<a href="%s">%s</a> %s %20d' % (name, html.escape(name), stamp, st.st_size))
        lines += ['</pre>', '<hr>', '</body>', '</html>', '']
        return '\n'.join(lines).encode()


REASONS = {200: 'OK', 301: 'Moved Permanently', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
           500: 'Internal Server Error'}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    server_version = 'OpenBSD httpd'
    sys_version = ''

    def _error(self, code, with_body, location=None):
        body = ('<html><head><title>%d %s</title></head><body>%d %s</body></html>\n'
                % (code, REASONS[code], code, REASONS[code])).encode()
        self.send_response(code, REASONS[code])
        if location:
            self.send_header('Location', location)
        self.send_header('Content-Type', 'text/html')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _send(self, with_body):
        site = self.server.site
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path) or '/'
        # canonicalize_path(): '//' collapsed, '.' dropped, '..' never above the root.
        canonical = posixpath.normpath('/' + path.lstrip('/'))
        if path.endswith('/') and canonical != '/':
            canonical += '/'
        code, target, st = site.resolve(canonical)
        if code == 301:
            host = self.headers.get('Host') or '%s:%d' % self.server.server_address
            self._error(301, with_body, 'http://%s%s' % (host, target))
            return
        if code != 200:
            self._error(code, with_body)
            return
        if stat.S_ISDIR(st.st_mode):
            data, ctype = site.listing(canonical, target), 'text/html'
        else:
            try:
                with open(target, 'rb') as handle:
                    data = handle.read()
            except OSError:
                self._error(500, with_body)
                return
            ctype = 'application/octet-stream'
        self.send_response(200)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def do_GET(self):  # pylint: disable=invalid-name
        self._send(True)

    def do_HEAD(self):  # pylint: disable=invalid-name
        self._send(False)

    def log_request(self, code='-', size='-'):
        self.server.log_line('%s %s - - [%s] "%s" %s %s' % (
            self.server.listen_label, self.client_address[0], time.strftime('%d/%b/%Y:%H:%M:%S %z'),
            self.requestline, code, size))

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        # Errors (bad request lines) go to the same log; nothing is printed to stderr.
        self.server.log_line('%s %s - - [%s] error: %s' % (
            self.server.listen_label, self.client_address[0], time.strftime('%d/%b/%Y:%H:%M:%S %z'), format % args))


class LabHTTPServer(http.server.ThreadingHTTPServer):
    """Threaded loopback server for one listen address of a site, with a request log."""

    daemon_threads = True

    def __init__(self, site, listen_label, log_path):
        self.site = site
        self.listen_label = listen_label
        self.log_path = log_path
        self._log_lock = threading.Lock()
        super().__init__(('127.0.0.1', 0), _Handler)

    def log_line(self, line):
        if not self.log_path:
            return
        with self._log_lock:
            os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
            with open(self.log_path, 'a', encoding='utf-8') as handle:
                handle.write(line + '\n')


def docroot_site(docroot, auto_index=False, user='www-data'):
    """A Site serving docroot itself (chroot = root = docroot) as user, for tests of the serving side."""
    uid, gids = identity(user)
    return Site(docroot, '/', auto_index, uid, gids)


def start(site, listen_label, log_path=None):
    """Serve a Site on 127.0.0.1:<ephemeral port> from a daemon thread; returns (server, port)."""
    server = LabHTTPServer(site, listen_label, log_path or default_log_path())
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, name='lab-httpd', daemon=True)
    thread.start()
    return server, server.server_address[1]


def stop(server):
    server.shutdown()
    server.server_close()


def requested_urls(log_path=None):
    """The request targets (path?query) logged so far, oldest first."""
    log_path = log_path or default_log_path()
    urls = []
    try:
        with open(log_path, encoding='utf-8') as handle:
            for line in handle:
                start_quote = line.find('"')
                end_quote = line.rfind('"')
                if start_quote < 0 or end_quote <= start_quote:
                    continue
                parts = line[start_quote + 1:end_quote].split(' ')
                if len(parts) >= 2:
                    urls.append(parts[1])
    except FileNotFoundError:
        pass
    return urls
