"""Cross-host blob redirect fixtures: a header-recording blob server and a redirecting proxy.

``RedirectingProxy`` sits in front of a plain-http registry and forwards everything, except
that blob GETs are answered with ``307`` to a :class:`HeaderRecordingBlobServer` on a different
host string (``localhost:PORT`` instead of ``127.0.0.1:PORT``), like registries that hand blob
downloads to a CDN / object store.  The blob server records every request's headers so tests
can check that e.g. the registry ``Authorization`` header is not leaked across hosts.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from devtools.httpbase import HasURL, QuietHandler, ThreadedServer, forward_request, relay_response

_BLOB_GET = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class RecordedRequest:
    """A request as received: method, path (with query) and headers in arrival order."""

    method: str
    path: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        """Case-insensitive lookup of a header (first occurrence)."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


class HeaderRecordingBlobServer(ThreadedServer):
    """Serves ``GET/HEAD /blob/<digest>`` from :attr:`blobs` (with ``Range`` support); records headers."""

    def __init__(self, host_alias: str = "localhost") -> None:
        self.host_alias = host_alias
        self.blobs: dict[str, bytes] = {}
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        """``localhost:PORT`` (a different host string than 127.0.0.1 services)."""
        return f"{self.host_alias}:{self.port}"

    @property
    def url(self) -> str:
        """``http://localhost:PORT``."""
        return f"http://{self.host}"

    def url_for(self, digest: str) -> str:
        """Where a blob is served."""
        return f"{self.url}/blob/{digest}"

    def add(self, data: bytes) -> str:
        """Store bytes; returns their sha256 digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._lock:
            self.blobs[digest] = data
        return digest

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests.append(
                        RecordedRequest(self.command, self.path, list(self.headers.items()))
                    )
                    data = owner.blobs.get(self.path.removeprefix("/blob/").split("?")[0])
                if not self.path.startswith("/blob/") or data is None:
                    self.send_bytes(404, b"blob not found\n")
                    return
                headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
                match = _RANGE.match(self.headers.get("Range", ""))
                if match is None:
                    self.send_bytes(200, data, headers)
                    return
                start = int(match[1])
                end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
                if start >= len(data) or end < start:
                    self.send_bytes(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                self.send_bytes(206, data[start : end + 1], headers)

            do_HEAD = do_GET

        return Handler


class RedirectingProxy(ThreadedServer):
    """Reverse proxy to an http registry that 307-redirects blob GETs to a blob server.

    All other requests (any method) are forwarded with bodies streamed both ways and headers
    kept (Authorization, WWW-Authenticate, ...); ``Location`` headers pointing at the registry
    are rewritten to the proxy.  For a blob GET the proxy first fetches the blob from the
    registry with the request's own ``Authorization`` (so auth errors are relayed unchanged),
    then answers ``307 Location: http://localhost:<port>/blob/<digest>``.  Note those fetches
    appear in the registry's access log as blob GETs too.
    """

    def __init__(self, upstream: HasURL | str, blob_server: HeaderRecordingBlobServer | None = None) -> None:
        self.upstream = (upstream if isinstance(upstream, str) else upstream.url).rstrip("/")
        split = urlsplit(self.upstream)
        if split.scheme != "http" or split.hostname is None:
            raise ValueError("RedirectingProxy supports plain-http upstreams only")
        self._up_host, self._up_port = split.hostname, split.port or 80
        self._own_blob_server = blob_server is None
        self.blob_server = blob_server if blob_server is not None else HeaderRecordingBlobServer()
        self.requests: list[RecordedRequest] = []
        self.redirects: list[str] = []
        """Digests answered with a 307, in order."""
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def start(self) -> None:
        """Start the blob server (if owned) and the proxy."""
        if self._own_blob_server:
            self.blob_server.start()
        super().start()

    def stop(self) -> None:
        """Stop the proxy and the blob server (if owned)."""
        super().stop()
        if self._own_blob_server:
            self.blob_server.stop()

    def _rewrite_location(self, value: str) -> str:
        """Locations pointing at the registry point at the proxy instead."""
        return self.url + value[len(self.upstream) :] if value.startswith(self.upstream) else value

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._up_host, self._up_port, timeout=60)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                with owner._lock:
                    owner.requests.append(
                        RecordedRequest(self.command, self.path, list(self.headers.items()))
                    )
                match = _BLOB_GET.match(self.path.split("?")[0])
                try:
                    if self.command == "GET" and match is not None:
                        self._redirect_blob(match["digest"])
                    else:
                        self._forward()
                except (OSError, http.client.HTTPException) as exc:
                    self.send_bytes(502, f"proxy error: {exc}\n".encode())
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def _redirect_blob(self, digest: str) -> None:
                conn = owner._connect()
                try:
                    headers = {"Host": f"{owner._up_host}:{owner._up_port}"}
                    if (authz := self.headers.get("Authorization")) is not None:
                        headers["Authorization"] = authz
                    conn.request("GET", self.path, headers=headers)
                    resp = conn.getresponse()
                    if resp.status != 200:
                        self._relay(resp)
                        return
                    data = resp.read()
                finally:
                    conn.close()
                owner.blob_server.blobs[digest] = data
                with owner._lock:
                    owner.redirects.append(digest)
                self.send_bytes(307, b"", {"Location": owner.blob_server.url_for(digest)})

            def _forward(self) -> None:
                conn = owner._connect()
                try:
                    forward_request(self, conn, f"{owner._up_host}:{owner._up_port}")
                    self._relay(conn.getresponse())
                finally:
                    conn.close()

            def _relay(self, resp: http.client.HTTPResponse) -> None:
                relay_response(self, resp, owner._rewrite_location)

        return Handler
