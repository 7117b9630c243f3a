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

import contextlib
import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from devtools.httpbase import QuietHandler, ThreadedServer, forward_request, relay_response


class LatencyProxy(ThreadedServer):
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
