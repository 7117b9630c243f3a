"""Plumbing shared by the test servers and proxies: a threaded server, and request forwarding.

``ThreadedServer`` binds 127.0.0.1:<free port> and serves from a daemon thread.
``forward_request`` / ``relay_response`` pass one request to an upstream and its
answer back, bodies streamed both ways (Content-Length or chunked); the fault,
redirect and latency proxies build on them.
"""

from __future__ import annotations

import http.client
import io
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that belong to one connection and are never forwarded."""
CHUNK = 64 * 1024


class HasURL(Protocol):
    """Anything with an ``url`` (a LocalRegistry, another proxy)."""

    @property
    def url(self) -> str: ...


class QuietServer(ThreadingHTTPServer):
    """A client hanging up mid-answer is routine in these tests (aborted uploads, resets): no traceback."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class ThreadedServer:
    """Start/stop plumbing: subclasses provide :meth:`_handler`."""

    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def port(self) -> int:
        """Bound TCP port."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://HOST``."""
        return f"http://{self.host}"

    def start(self) -> None:
        """Bind 127.0.0.1:<free port> and serve in a daemon thread."""
        self._httpd = QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def plain_http_upstream(upstream: HasURL | str, who: str) -> tuple[str, int]:
    """(host, port) of a plain-http upstream; anything else is refused (the proxies speak no TLS)."""
    split = urlsplit(upstream if isinstance(upstream, str) else upstream.url)
    if split.scheme != "http" or split.hostname is None:
        raise ValueError(f"{who} supports plain-http upstreams only")
    return split.hostname, split.port or 80


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler without per-request logging."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr request logging."""

    def send_bytes(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Send a complete response with Content-Length (no body for HEAD)."""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def read_chunked(rfile: io.BufferedIOBase) -> Iterator[bytes]:
    """The pieces of a chunked request body, trailers skipped."""
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return
        yield rfile.read(size)
        rfile.readline()


def forward_request(
    handler: BaseHTTPRequestHandler, conn: http.client.HTTPConnection, host: str | None
) -> None:
    """Send ``handler``'s request on ``conn``, body streamed; ``host`` replaces the client's Host if given."""
    conn.putrequest(handler.command, handler.path, skip_host=True, skip_accept_encoding=True)
    if host is not None:
        conn.putheader("Host", host)
    for key, value in handler.headers.items():
        lkey = key.lower()
        if lkey in HOP_BY_HOP or lkey == "content-length" or (host is not None and lkey == "host"):
            continue
        conn.putheader(key, value)
    chunked = "chunked" in handler.headers.get("Transfer-Encoding", "").lower()
    length = int(handler.headers.get("Content-Length") or 0)
    if chunked:
        conn.putheader("Transfer-Encoding", "chunked")
    elif length or handler.command in ("POST", "PUT", "PATCH"):
        conn.putheader("Content-Length", str(length))
    conn.endheaders()
    if chunked:
        for chunk in read_chunked(handler.rfile):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        return
    remaining = length
    while remaining > 0:
        chunk = handler.rfile.read(min(CHUNK, remaining))
        if not chunk:
            raise OSError("client closed mid-body")
        conn.send(chunk)
        remaining -= len(chunk)


def relay_response(
    handler: BaseHTTPRequestHandler,
    resp: http.client.HTTPResponse,
    location: Callable[[str], str] | None = None,
) -> None:
    """Send ``resp`` back through ``handler``, body streamed; ``location`` rewrites a Location header."""
    handler.send_response(resp.status, resp.reason)
    length = resp.getheader("Content-Length")
    for key, value in resp.getheaders():
        lkey = key.lower()
        if lkey in HOP_BY_HOP or lkey == "content-length":
            continue
        handler.send_header(key, location(value) if location and lkey == "location" else value)
    no_body = handler.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
    if length is not None:
        handler.send_header("Content-Length", length)
    elif not no_body:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    if no_body:
        return
    while chunk := resp.read(CHUNK):
        if length is not None:
            handler.wfile.write(chunk)
        else:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    if length is None:
        handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()
