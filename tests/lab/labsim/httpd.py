"""The lab's stand-in for the host's httpd(8): a loopback HTTP/1.0 GET server.

A vmd guest reaches the host at http://100.64.<vm-id>.2/; the lab serves the
install docroot on 127.0.0.1 instead and the simulated installer rewrites such
URLs.  Every request line (path and query) is appended to
$VMM_LAB_ROOT/var/log/httpd.log so tests can check which URLs were tried, in
which order.
"""

import http.server
import os
import posixpath
import threading
import time
import urllib.parse


def default_log_path():
    """$VMM_LAB_ROOT/var/log/httpd.log, or None when VMM_LAB_ROOT is unset."""
    lab_root = os.environ.get('VMM_LAB_ROOT')
    if not lab_root:
        return None
    return os.path.join(lab_root, 'var', 'log', 'httpd.log')


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    server_version = 'OpenBSD httpd'
    sys_version = ''

    def _resolve(self):
        """Map the request path to a regular file under the docroot, or None."""
        path = urllib.parse.urlsplit(self.path).path
        path = posixpath.normpath(urllib.parse.unquote(path))
        docroot = os.path.realpath(self.server.docroot)
        candidate = os.path.realpath(os.path.join(docroot, path.lstrip('/')))
        if candidate != docroot and not candidate.startswith(docroot + os.sep):
            return None
        # No directory listings, like httpd(8) without "directory auto index".
        if not os.path.isfile(candidate):
            return None
        return candidate

    def _send(self, with_body):
        path = self._resolve()
        if path is None:
            body = b'<html><head><title>404 Not Found</title></head><body>404 Not Found</body></html>\n'
            self.send_response(404)
            self.send_header('Content-Type', 'text/html')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)
            return
        with open(path, 'rb') as handle:
            data = handle.read()
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def do_GET(self):  # pylint: disable=invalid-name
        self._send(True)

    def do_HEAD(self):  # pylint: disable=invalid-name
        self._send(False)

    def log_request(self, code='-', size='-'):
        self.server.log_line('%s - - [%s] "%s" %s %s' % (
            self.client_address[0], time.strftime('%d/%b/%Y:%H:%M:%S %z'), self.requestline, code, size))

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        # Errors (bad request lines) go to the same log; nothing is printed to stderr.
        self.server.log_line('%s - - [%s] error: %s' % (
            self.client_address[0], time.strftime('%d/%b/%Y:%H:%M:%S %z'), format % args))


class LabHTTPServer(http.server.ThreadingHTTPServer):
    """Threaded loopback server with a docroot and a request log."""

    daemon_threads = True

    def __init__(self, docroot, log_path):
        self.docroot = docroot
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


def start(docroot, log_path=None):
    """Serve docroot on 127.0.0.1:<ephemeral port> from a daemon thread.

    Returns (server, port); stop it with stop(server).  log_path defaults to
    $VMM_LAB_ROOT/var/log/httpd.log (no log when VMM_LAB_ROOT is unset).
    """
    server = LabHTTPServer(docroot, log_path or default_log_path())
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
