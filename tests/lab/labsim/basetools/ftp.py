"""ftp(1) for the lab: `ftp [-v] [-V] -o FILE|- http://HOST[:PORT]/PATH` from the lab host itself.

Follows usr.bin/ftp/fetch.c url_get() for plain http URLs: the connection is made through the
lab's network path (labsim.network: it arrives on lo0, so pf's `in on tap` redirects do not
apply to it); a failed connect prints `ftp: connect: <strerror>`; an HTTP status other than
2xx/3xx prints `ftp: Error retrieving <URL>: <status line>`; redirects (301/302/303/307) are
followed (at most 10); the output file is only opened after a 200, so a failed fetch leaves no
file. auto_fetch() makes ftp exit with the (1-based) position of the first URL that failed,
0 when all were fetched. `-v` prints fetch.c's `Trying ADDR...` / `Requesting URL` lines.
Not modelled: ftp://, https://, file:, proxies, resume, the progress meter, DNS (only address
literals and `localhost`; other names fail like getaddrinfo's EAI_NONAME, whose text here is
a guess)."""

import http.client
import ipaddress
import re
import sys

from labsim import network

from . import common

USAGE = "usage: ftp [-46AaCdEiMmnptVv] [-D title] [-k seconds] [-o output] [-S ssl_options] [-U useragent] [-w seconds] url ..."


def fetch(url, verbose):
    """(status line or None, body, error message or None)."""
    for _redirect in range(11):
        match = re.fullmatch(r"http://(\[[0-9A-Fa-f:.]+\]|[^/:]+)(?::([0-9]+))?(/[^\s]*)?", url)
        if not match:
            return None, b"", "ftp: %s: URL not permitted" % url
        host, port, path = match.group(1).strip("[]"), int(match.group(2) or 80), match.group(3) or "/"
        address = "127.0.0.1" if host == "localhost" else host
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None, b"", "ftp: %s: no address associated with name" % host
        if verbose:
            common.out("Trying %s..." % address)
        try:
            real_host, real_port = network.connect_from_host(address, port)
            conn = http.client.HTTPConnection(real_host, real_port, timeout=30)
            if verbose:
                common.out("Requesting %s" % url)
            conn.request("GET", path, headers={"Host": host if port == 80 else "%s:%d" % (host, port),
                                               "Connection": "close", "User-Agent": "OpenBSD ftp"})
            reply = conn.getresponse()
            body = reply.read()
            conn.close()
        except OSError as exc:
            return None, b"", "ftp: connect: %s" % (exc.strerror or exc)
        status = "%d %s" % (reply.status, reply.reason)
        if reply.status in (301, 302, 303, 307) and reply.getheader("Location"):
            url = reply.getheader("Location")
            if verbose:
                common.out("Redirected to %s" % url)
            continue
        if reply.status not in (200, 206):
            return status, b"", "ftp: Error retrieving %s: %s" % (url, status)
        return status, body, None
    return None, b"", "ftp: Too many redirections requested"


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    output, verbose, urls = None, False, []
    while args:
        arg = args.pop(0)
        if arg == "-o" and args:
            output = args.pop(0)
        elif arg.startswith("-o") and len(arg) > 2:
            output = arg[2:]
        elif arg in ("-v",):
            verbose = True
        elif arg in ("-V", "-M", "-m", "-4", "-n"):
            pass
        elif arg.startswith("-"):
            common.err(USAGE)
            return 1
        else:
            urls.append(arg)
    if not urls:
        common.err(USAGE)
        return 1
    for position, url in enumerate(urls, 1):
        if not url.startswith("http://"):
            common.err("ftp: %s: the lab's ftp fetches only http:// URLs" % url)
            return position
        _status, body, error = fetch(url, verbose)
        if error:
            common.err(error)
            return position
        target = output if output is not None else (url.rstrip("/").rsplit("/", 1)[-1] or "index.html")
        if target == "-":
            sys.stdout.flush()
            sys.stdout.buffer.write(body)
            sys.stdout.buffer.flush()
        else:
            with open(target, "wb") as handle:
                handle.write(body)
    return 0
