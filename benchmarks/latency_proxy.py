"""A reverse proxy that adds a fixed delay to every request, streaming bodies both ways.

It stands in front of a plain-http registry to make it look remote: each request waits
``delay`` seconds before it is forwarded (one simulated round trip), then the request body and
the response body are streamed through in 64 KiB pieces. The client's ``Host`` header is passed
on unchanged, so absolute URLs the registry builds (``Location``) point back at the proxy.

Every contender of a scenario goes through the same proxy class with the same delay. Requests that
are not HTTP (a TLS ClientHello from a client probing https first) are answered 400 after the same
delay, like a remote plain-http registry would.

A long thin link (``rate`` set; issue 15): besides the ``delay`` per request (one round trip:
the request out, the first byte of the answer back), each new connection waits one more ``delay``
(the TCP handshake), and every body byte through a connection is paced to ``rate`` bytes/s in each
direction, read and write alike: a TCP stream whose window allows ``rate`` at that round-trip time
(~10 MB/s at 150 ms). Streams do not share a bottleneck, so more connections move more bytes, as
on a real long link where one stream's window, not the line, is the limit.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from devtools.httpbase import QuietHandler, ThreadedServer, forward_request, relay_response


class LatencyProxy(ThreadedServer):
    """``http://127.0.0.1:PORT`` forwarding to ``upstream`` after ``delay`` seconds per request."""

    def __init__(self, upstream: str, delay: float = 0.050, rate: float | None = None) -> None:
        split = urlsplit(upstream.rstrip("/"))
        if split.scheme != "http" or split.hostname is None:
            raise ValueError("LatencyProxy supports plain-http upstreams only")
        self.upstream_host = split.hostname
        self.upstream_port = split.port or 80
        self.delay = delay
        self.rate = rate
        self.requests = 0
        self.connections = 0
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
            def setup(self) -> None:
                super().setup()
                if owner.rate is not None:
                    with owner._lock:
                        owner.connections += 1
                    time.sleep(owner.delay)  # the TCP handshake: one round trip before the first byte
                    self.rfile = _Paced(self.rfile, owner.rate)  # type: ignore[assignment]
                    self.wfile = _Paced(self.wfile, owner.rate)  # type: ignore[assignment]

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # Garbage (e.g. a TLS probe) is answered after the same delay as any request.
                time.sleep(owner.delay)
                super().send_error(code, message, explain)

            def _any(self) -> None:
                owner._count()
                time.sleep(owner.delay)
                conn = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=120)
                try:
                    # The client's Host goes through unchanged, so the registry's Locations name the proxy.
                    forward_request(self, conn, None)
                    relay_response(self, conn.getresponse())
                except (OSError, http.client.HTTPException) as exc:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.send_bytes(502, f"latency proxy: {exc}\n".encode())
                finally:
                    conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        return Handler


_SLACK = 0.020


class _Paced:
    """A file of one connection, one direction, paced to ``rate`` bytes/s."""

    def __init__(self, inner: Any, rate: float) -> None:
        self._inner = inner
        self._rate = rate
        self._free_at = time.monotonic()

    def _pace(self, n: int) -> None:
        now = time.monotonic()
        # A little credit (_SLACK) absorbs sleep overshoot, which would otherwise cost clients
        # that send small pieces (curl's chunked stdin) more than the rate; an idle connection
        # gains no more than that (200 KB at 10 MB/s, less than a TCP window at 150 ms).
        self._free_at = max(self._free_at, now - _SLACK) + n / self._rate
        if self._free_at > now:
            time.sleep(self._free_at - now)

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._inner.read(size)
        self._pace(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        line: bytes = self._inner.readline(size)
        self._pace(len(line))
        return line

    def write(self, data: bytes) -> int:
        self._pace(len(data))
        written: int = self._inner.write(data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
