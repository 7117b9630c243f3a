"""A reverse proxy that adds a fixed delay to every request, streaming bodies both ways.

It stands in front of a plain-http registry to make it look remote: each request waits
``delay`` seconds before it is forwarded (one simulated round trip), then the request body and
the response body are streamed through in 64 KiB pieces. The client's ``Host`` header is passed
on unchanged, so absolute URLs the registry builds (``Location``) point back at the proxy.

Every contender of a scenario goes through the same proxy class with the same delay. Requests that
are not HTTP (a TLS ClientHello from a client probing https first) are answered 400 after the same
delay, like a remote plain-http registry would.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
_CHUNK = 64 * 1024


class LatencyProxy:
    """``http://127.0.0.1:PORT`` forwarding to ``upstream`` after ``delay`` seconds per request."""

    def __init__(self, upstream: str, delay: float = 0.050) -> None:
        split = urlsplit(upstream.rstrip("/"))
        if split.scheme != "http" or split.hostname is None:
            raise ValueError("LatencyProxy supports plain-http upstreams only")
        self.upstream_host = split.hostname
        self.upstream_port = split.port or 80
        self.delay = delay
        self.requests = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("proxy not started")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def start(self) -> None:
        """Bind a free port and serve from a daemon thread (one thread per client connection)."""
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 128
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _count(self) -> None:
        with self._lock:
            self.requests += 1


def _make_handler(owner: LatencyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """No per-request logging."""

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # Garbage (e.g. a TLS probe) is answered after the same delay as any request.
            time.sleep(owner.delay)
            super().send_error(code, message, explain)

        def _any(self) -> None:
            owner._count()
            time.sleep(owner.delay)
            conn = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=120)
            try:
                self._forward(conn)
            except (OSError, http.client.HTTPException) as exc:
                self.close_connection = True
                try:
                    body = f"latency proxy: {exc}\n".encode()
                    self.send_response(502)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass
            finally:
                conn.close()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def _forward(self, conn: http.client.HTTPConnection) -> None:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    conn.putheader(key, value)
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            length = int(self.headers.get("Content-Length") or 0)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            elif length or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(length))
            conn.endheaders()
            if chunked:
                for chunk in self._read_chunked():
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
            else:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise OSError("client closed mid-body")
                    conn.send(chunk)
                    remaining -= len(chunk)
            self._relay(conn.getresponse())

        def _read_chunked(self) -> Iterator[bytes]:
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()

        def _relay(self, resp: http.client.HTTPResponse) -> None:
            self.send_response(resp.status, resp.reason)
            length = resp.getheader("Content-Length")
            for key, value in resp.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
            if length is not None:
                self.send_header("Content-Length", length)
            elif not no_body:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if no_body:
                return
            while chunk := resp.read(_CHUNK):
                if length is not None:
                    self.wfile.write(chunk)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
