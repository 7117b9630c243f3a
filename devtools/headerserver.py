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
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self
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
    "host",
}
_BLOB_GET = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 64 * 1024


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


class _HasURL(Protocol):
    @property
    def url(self) -> str: ...


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up mid-answer is routine in these tests (aborted uploads, resets): no traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Server:
    """Shared start/stop plumbing for the two servers."""

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

    def start(self) -> None:
        """Bind 127.0.0.1:<free port> and serve in a daemon thread."""
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler())
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


class _QuietHandler(BaseHTTPRequestHandler):
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


class HeaderRecordingBlobServer(_Server):
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

        class Handler(_QuietHandler):
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


class RedirectingProxy(_Server):
    """Reverse proxy to an http registry that 307-redirects blob GETs to a blob server.

    All other requests (any method) are forwarded with bodies streamed both ways and headers
    kept (Authorization, WWW-Authenticate, ...); ``Location`` headers pointing at the registry
    are rewritten to the proxy.  For a blob GET the proxy first fetches the blob from the
    registry with the request's own ``Authorization`` (so auth errors are relayed unchanged),
    then answers ``307 Location: http://localhost:<port>/blob/<digest>``.  Note those fetches
    appear in the registry's access log as blob GETs too.
    """

    def __init__(self, upstream: _HasURL | str, blob_server: HeaderRecordingBlobServer | None = None) -> None:
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

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._up_host, self._up_port, timeout=60)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_QuietHandler):
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
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    conn.putheader("Host", f"{owner._up_host}:{owner._up_port}")
                    for key, value in self.headers.items():
                        if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
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
                finally:
                    conn.close()

            def _read_chunked(self) -> Iterator[bytes]:
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return
                    yield self.rfile.read(size)
                    self.rfile.readline()

            def _relay(self, resp: http.client.HTTPResponse) -> None:
                self.send_response(resp.status, resp.reason)
                length = resp.getheader("Content-Length")
                for key, value in resp.getheaders():
                    lkey = key.lower()
                    if lkey in _HOP_BY_HOP or lkey == "content-length":
                        continue
                    if lkey == "location" and value.startswith(owner.upstream):
                        self.send_header(key, owner.url + value[len(owner.upstream) :])
                    else:
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

        return Handler
