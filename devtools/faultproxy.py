"""A scriptable fault-injecting HTTP proxy to put between docker-transfer and a real registry.

Each test adds :class:`Fault` rules; a rule matches requests by method and path
regex and affects the next ``times`` of them: answer a status (500, 429 with
``Retry-After``…), reset the connection after N body bytes, close early
(truncate), stall mid-body, flip a byte, strip ``Range`` so the upstream sends
the whole body, add headers (rate limits), replace the body (huge or endless),
redirect, or refuse open-ended ``Range`` requests with 416. A rule may also look
at the request body (``body_match``), e.g. :func:`is_artifact_manifest` to answer
manifest PUTs of OCI artifacts the way ACR does (:data:`ACR_UNKNOWN_MANIFEST_CLASS`).
Everything else is forwarded unchanged, bodies streamed.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from devtools.httpbase import (
    HOP_BY_HOP,
    HasURL,
    QuietHandler,
    ThreadedServer,
    plain_http_upstream,
    read_chunked,
)

_CHUNK = 64 * 1024
_IMAGE_CONFIGS = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)


def is_artifact_manifest(body: bytes) -> bool:
    """True for an image manifest body that is an OCI artifact: ``artifactType``, or a non-image config."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    if not isinstance(doc, dict) or "layers" not in doc:
        return False
    config = doc.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    return bool(doc.get("artifactType")) or config_type not in _IMAGE_CONFIGS


def acr_refusal(media_type: str = "application/vnd.oci.empty.v1+json") -> bytes:
    """The body ACR sends (with 403) for a manifest whose config type it does not know."""
    message = f"unknown manifest class for {media_type}"
    return json.dumps({"errors": [{"code": "DENIED", "message": message}]}).encode()


ACR_UNKNOWN_MANIFEST_CLASS = acr_refusal()
"""ACR's answer (status 403) to BuildKit's OCI 1.1 attestation manifests."""


@dataclass
class Fault:
    """One scripted misbehaviour; ``times=-1`` means every matching request."""

    method: str | None = None
    path: str | None = None
    times: int = 1
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reset_after: int | None = None
    reset_delay: float = 0.3
    truncate_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float = 0.0
    flip_at: int | None = None
    ignore_range: bool = False
    add_headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    endless_body: bool = False
    redirect_to: str | None = None
    body_match: Callable[[bytes], bool] | None = None
    """Only requests whose body this accepts (e.g. :func:`is_artifact_manifest`)."""
    refuse_open_range: bool = False
    """Answer 416 to ``Range: bytes=N-`` (no last byte), as some registries do; others pass."""
    cut_upload_after: int | None = None
    """Read this many bytes of the request's body, then reset the connection: a destination
    that fails mid-upload (the request is cut, not answered). Not combined with ``body_match``."""
    hits: int = 0

    def matches(self, method: str, path: str, body: bytes = b"") -> bool:
        """True when this rule applies to the request (and still has uses left)."""
        if self.times >= 0 and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.body_match is not None and not self.body_match(body):
            return False
        return self.path is None or re.search(self.path, path) is not None


@dataclass
class ProxyRecord:
    """What the proxy saw and did for one request."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    status: int = 0
    body_bytes: int = 0
    fault: str = ""
    started: float = 0.0

    def header(self, name: str) -> str | None:
        """Case-insensitive request header lookup."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class FaultProxy(ThreadedServer):
    """Reverse proxy to a plain-http upstream with per-test faults."""

    def __init__(self, upstream: HasURL | str) -> None:
        self.upstream = (upstream if isinstance(upstream, str) else upstream.url).rstrip("/")
        self._up = plain_http_upstream(self.upstream, "FaultProxy")
        self.faults: list[Fault] = []
        self.records: list[ProxyRecord] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Install a rule (checked in order; the first that matches applies)."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self.faults.clear()

    def _take_upload_cut(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.cut_upload_after is not None and fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _take(self, method: str, path: str, body: bytes = b"") -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.cut_upload_after is None and fault.matches(method, path, body):
                    fault.hits += 1
                    return fault
        return None

    def bytes_served(self, path_regex: str) -> int:
        """Response body bytes sent for requests whose path matches."""
        pattern = re.compile(path_regex)
        return sum(r.body_bytes for r in self.records if pattern.search(r.path))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                path = self.path.split("?", 1)[0]
                record = ProxyRecord(
                    self.command, self.path, list(self.headers.items()), started=time.monotonic()
                )
                with owner._lock:
                    owner.records.append(record)
                cut = owner._take_upload_cut(self.command, path)
                if cut is not None and cut.cut_upload_after is not None:
                    self._cut_upload(cut.cut_upload_after, record)
                    return
                body = self._read_body()
                fault = owner._take(self.command, path, body)
                if fault is not None and fault.refuse_open_range:
                    if re.fullmatch(r"bytes=\d+-", self.headers.get("Range", "").strip()):
                        record.fault = "open range refused"
                        record.status = 416
                        self.send_bytes(416, b'{"errors":[{"code":"RANGE_INVALID","message":"open range"}]}')
                        return
                    fault = None
                if fault is not None and (fault.status is not None or fault.redirect_to is not None):
                    self._answer(fault, record)
                    return
                try:
                    self._forward(body, fault, record)
                except (OSError, http.client.HTTPException):
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def _cut_upload(self, limit: int, record: ProxyRecord) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = 0
                while received < min(limit, length) and (
                    piece := self.rfile.read(min(_CHUNK, min(limit, length) - received))
                ):
                    received += len(piece)
                record.body_bytes = received
                record.fault = f"upload cut after {received}"
                self._hang_up(reset=True)

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    return b"".join(read_chunked(self.rfile))
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, fault: Fault, record: ProxyRecord) -> None:
                if fault.redirect_to is not None:
                    status, headers, body = 307, {"Location": fault.redirect_to}, b""
                    record.fault = "redirect"
                else:
                    assert fault.status is not None
                    status, headers = fault.status, dict(fault.headers)
                    body = (
                        fault.body
                        if fault.body is not None
                        else (b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}')
                    )
                    record.fault = f"status {status}"
                record.status = status
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if fault.endless_body:
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.close_connection = True
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline:
                        self.wfile.write(b"x" * _CHUNK)
                        record.body_bytes += _CHUNK
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                    record.body_bytes = len(body)

            def _forward(self, body: bytes, fault: Fault | None, record: ProxyRecord) -> None:
                conn = http.client.HTTPConnection(*owner._up, timeout=60)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    conn.putheader("Host", f"{owner._up[0]}:{owner._up[1]}")
                    for key, value in self.headers.items():
                        lkey = key.lower()
                        if lkey in HOP_BY_HOP or lkey in ("content-length", "host"):
                            continue
                        if lkey == "range" and fault is not None and fault.ignore_range:
                            record.fault = "range ignored"
                            continue
                        conn.putheader(key, value)
                    if body or self.command in ("POST", "PUT", "PATCH"):
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body or None)
                    self._relay(conn.getresponse(), fault, record)
                finally:
                    conn.close()

            def _relay(
                self, resp: http.client.HTTPResponse, fault: Fault | None, record: ProxyRecord
            ) -> None:
                record.status = resp.status
                replacement = fault.body if fault is not None else None
                self.send_response(resp.status, resp.reason)
                length = resp.getheader("Content-Length")
                if replacement is not None:
                    length = str(len(replacement))
                for key, value in resp.getheaders():
                    lkey = key.lower()
                    if lkey in HOP_BY_HOP or lkey == "content-length":
                        continue
                    if lkey == "location" and value.startswith(owner.upstream):
                        self.send_header(key, owner.url + value[len(owner.upstream) :])
                    else:
                        self.send_header(key, value)
                for key, value in (fault.add_headers if fault else {}).items():
                    self.send_header(key, value)
                no_body = self.command == "HEAD" or resp.status in (204, 304)
                if length is not None:
                    self.send_header("Content-Length", length)
                elif not no_body:
                    self.close_connection = True
                self.end_headers()
                if no_body:
                    return
                source = _iter_bytes(replacement) if replacement is not None else _iter_resp(resp)
                self._stream(source, fault, record)

            def _stream(self, chunks: Iterator[bytes], fault: Fault | None, record: ProxyRecord) -> None:
                sent = 0
                for chunk in chunks:
                    data = bytearray(chunk)
                    if (
                        fault is not None
                        and fault.flip_at is not None
                        and sent <= fault.flip_at < sent + len(data)
                    ):
                        data[fault.flip_at - sent] ^= 0x01
                        record.fault = f"flipped byte {fault.flip_at}"
                    for limit, kind in (
                        ((fault.reset_after, "reset"), (fault.truncate_after, "truncate")) if fault else ()
                    ):
                        if limit is not None and sent + len(data) >= limit:
                            self.wfile.write(bytes(data[: limit - sent]))
                            record.body_bytes = limit
                            record.fault = f"{kind} after {limit}"
                            self.wfile.flush()
                            if kind == "reset" and fault is not None:
                                # Let the client drain what was sent: a RST discards unread bytes in the
                                # receiver's kernel buffer, which would hide how much a resume re-reads.
                                time.sleep(fault.reset_delay)
                            self._hang_up(reset=kind == "reset")
                            return
                    if (
                        fault is not None
                        and fault.stall_after is not None
                        and sent <= fault.stall_after < sent + len(data)
                    ):
                        cut = fault.stall_after - sent
                        self.wfile.write(bytes(data[:cut]))
                        self.wfile.flush()
                        record.fault = f"stalled {fault.stall_seconds}s after {fault.stall_after}"
                        time.sleep(fault.stall_seconds)
                        data = data[cut:]
                        sent += cut
                        record.body_bytes = sent
                    try:
                        self.wfile.write(bytes(data))
                    except OSError:
                        self.close_connection = True
                        return
                    sent += len(data)
                    record.body_bytes = sent

            def _hang_up(self, *, reset: bool) -> None:
                self.close_connection = True
                if reset:
                    # SO_LINGER 0 turns close() into a TCP RST: a "connection reset by peer".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

        return Handler


def _iter_resp(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    while chunk := resp.read(_CHUNK):
        yield chunk


def _iter_bytes(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), _CHUNK):
        yield data[start : start + _CHUNK]
