"""The registry client core: one pooled HTTP client, auth, scheme choice, request accounting.

Verbs live beside it, one file each (``manifests``, ``blobs``, ``upload``, ``tags``), and
talk to registries only through :meth:`RegistryClient.send`, so network errors,
TLS failures and request counting are handled in one place. The client offers them as
methods with their retries inside: the :class:`~docker_transfer.registry.api.RegistryAPI`
the engine is written against.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from docker_transfer.errors import RegistryError, TLSError, UnsafeRedirectError
from docker_transfer.manifest import Manifest
from docker_transfer.ratelimit import RateLimit
from docker_transfer.reference import Reference
from docker_transfer.registry import blobs as _blobs
from docker_transfer.registry import manifests as _manifests
from docker_transfer.registry import tags as _tags
from docker_transfer.registry import upload as _upload
from docker_transfer.registry.auth import RegistryAuth
from docker_transfer.registry.credentials import CredentialLookup, CredentialStore
from docker_transfer.registry.httperrors import MAX_ERROR_BODY, parse_ratelimit, read_bounded, transport_error
from docker_transfer.registry.retry import RetryPolicy
from docker_transfer.registry.transport import TransportOptions, redact_text

MONOLITHIC_REFUSED = frozenset({405, 411, 413, 501})
"""Statuses by which a registry refuses a one-shot upload PUT (it wants PATCH chunks)."""
log = logging.getLogger(__name__)


@dataclass
class RequestStats:
    """What was asked of which host: counts by (host, method, kind), bytes moved, rate limits seen."""

    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    bytes_read: int = 0
    bytes_written: int = 0
    ratelimits: dict[str, RateLimit] = field(default_factory=dict)

    def count(self, host: str | None = None, method: str | None = None, kind: str | None = None) -> int:
        """Sum of requests matching the given filters (``None`` matches anything)."""
        return sum(
            n
            for (h, m, k), n in self.requests.items()
            if (host is None or h == host) and (method is None or m == method) and (kind is None or k == kind)
        )


def _kind(path: str) -> str:
    if path.rstrip("/") == "/v2":
        return "ping"
    if "/blobs/uploads" in path:
        return "upload"
    if "/manifests/" in path:
        return "manifest"
    if "/blobs/" in path:
        return "blob"
    if "/tags/" in path:
        return "tags"
    return "other"


def _is_tls_failure(exc: BaseException) -> str | None:
    """A readable reason when ``exc`` is a TLS failure (deterministic, so never retried)."""
    seen: BaseException | None = exc
    texts: list[str] = []
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or "certificate verify failed"
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    text = " ".join(texts)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text or "PACKET_LENGTH_TOO_LONG" in text:
        return "the server does not speak TLS; is it plain HTTP?"
    if "[SSL" in text or "SSLError" in text:
        return text.split("] ", 1)[-1][:120]
    return None


async def _buffered(response: httpx.Response) -> httpx.Response:
    """A read copy of a non-streamed answer keeping at most ``MAX_ERROR_BODY`` bytes of its body.

    Such answers are judged by status and headers; their bodies only feed error
    messages, so an endless body must cost neither memory nor time.
    """
    body = await read_bounded(response, MAX_ERROR_BODY)
    # The body is kept as received (raw); drop the encoding so nothing tries to decode a cut stream.
    # Raw bytes: decoded values with non-ASCII characters (a "²") would not encode back.
    headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-encoding"]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=response.extensions,
    )


async def _refuse_malformed_location(response: httpx.Response) -> None:
    """A redirect whose ``Location`` is not a URL is the server's error, not a network fault: refuse it."""
    if not response.has_redirect_location:
        return
    location = response.headers["Location"]
    try:
        httpx.URL(location)
    except httpx.InvalidURL as exc:
        raise UnsafeRedirectError(redact_text(location), f"malformed URL ({exc})") from None


class RegistryClient:
    """Async client for any number of registries, sharing one connection pool and auth cache."""

    def __init__(
        self,
        transport: TransportOptions | None = None,
        credentials: CredentialLookup | None = None,
        *,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        requests_per_host: int | None = None,
    ) -> None:
        self.transport = transport or TransportOptions()
        # httpcore hands a freed connection to its queued requests by scanning the whole queue
        # (quadratic in queued requests): keep the queue short by letting at most this many
        # requests per host into httpx at once; the rest wait on a semaphore, O(1) each.
        # Half a pool: chosen when all hosts shared one pool, where more than it held made
        # httpcore close one host's idle connections to open the other's (372 connections for
        # 800 requests at 24 per host, 31 at 12). Each origin now has its own pool
        # (registry/hostpool.py); 12 stays because fewer requests inside it scan fewer
        # connections (docs/performance.md, "At scale").
        self.requests_per_host = requests_per_host or max(1, self.transport.max_connections // 2)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self.credentials: CredentialLookup = credentials or CredentialStore()
        self.retry = retry or RetryPolicy()
        self.http = http or self.transport.build_client()
        self.auth = RegistryAuth(self.credentials, self.transport, self._send_token_request)
        self.stats = RequestStats()
        self._bases: dict[str, str] = {}
        self._probe_locks: dict[str, asyncio.Lock] = {}
        self.chunked_hosts: set[str] = set()
        # httpx parses a redirect's Location before handing the answer back, even with
        # redirects off; an unparsable one would surface as a retried "connection closed".
        self.http.event_hooks["response"].append(_refuse_malformed_location)

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.http.aclose()

    async def base_url(self, host: str) -> str:
        """``https://host``; for an insecure-listed host, whichever of https/http answers."""
        if host in self._bases:
            return self._bases[host]
        if not self.transport.is_insecure(host):
            self._bases[host] = f"https://{host}"
            return self._bases[host]
        lock = self._probe_locks.setdefault(host, asyncio.Lock())
        async with lock:
            if host not in self._bases:
                self._bases[host] = await self._probe(host)
        return self._bases[host]

    async def _probe(self, host: str) -> str:
        # Like Docker for insecure registries: TLS without verification first, then plain HTTP.
        try:
            response = await self.http.get(f"https://{host}/v2/", timeout=10.0)
            await response.aclose()
            return f"https://{host}"
        except httpx.HTTPError:
            return f"http://{host}"

    async def send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        content: Any = None,
        stream: bool = False,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send one request; network failures become :class:`TransportError` or :class:`TLSError`.

        With ``stream=True`` the caller must close the response. ``authenticate=False``
        sends no credentials at all (used for hops to other hosts).
        """
        request = self.http.build_request(method, url, headers=headers, params=params, content=content)
        host = request.url.netloc.decode()
        self.stats.requests[(host, method, _kind(request.url.path))] += 1
        slots = self._host_slots.get(host)
        if slots is None:
            slots = self._host_slots[host] = asyncio.Semaphore(self.requests_per_host)
        # The slot covers sending and the answer's headers (and a buffered body); a streamed body
        # is read after it is freed, its pace set by the caller's own bounds (blob concurrency).
        auth = self.auth if authenticate else None
        async with slots:
            try:
                response = await self.http.send(request, stream=True, auth=auth)
            except httpx.HTTPError as exc:
                reason = _is_tls_failure(exc)
                if reason is not None:
                    raise TLSError(host, reason) from None
                raise transport_error(exc, host) from None
            quota = parse_ratelimit(response.headers, host)
            if quota is not None:
                self.stats.ratelimits[host] = quota
            return response if stream else await _buffered(response)

    async def _send_token_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode()
        self.stats.requests[(host, request.method, "token")] += 1
        try:
            return await self.http.send(request, stream=True, auth=None)
        except httpx.HTTPError as exc:
            reason = _is_tls_failure(exc)
            if reason is not None:
                raise TLSError(host, reason) from None
            raise transport_error(exc, host) from None

    async def url(self, host: str, path: str) -> str:
        """Absolute URL of an API path on a registry host."""
        return f"{await self.base_url(host)}{path}"

    # --- RegistryAPI (registry/api.py): the verbs, each retried by self.retry ---

    async def head_manifest(
        self, ref: Reference, *, destination: bool = False
    ) -> _manifests.ManifestHead | None:
        """HEAD a manifest (retried); None when absent."""
        return await self.retry.call(lambda: _manifests.head_manifest(self, ref, destination=destination))

    async def get_manifest(
        self, ref: Reference, *, digest: str | None = None, destination: bool = False
    ) -> Manifest:
        """GET a manifest, bounded and verified (retried)."""
        return await self.retry.call(
            lambda: _manifests.get_manifest(self, ref, digest=digest, destination=destination)
        )

    async def put_manifest(self, ref: Reference, identifier: str, data: bytes, media_type: str) -> str:
        """PUT manifest bytes under a tag or digest (retried); returns their digest."""
        return await self.retry.call(lambda: _manifests.put_manifest(self, ref, identifier, data, media_type))

    async def manifest_exists(self, ref: Reference, digest: str) -> bool:
        """True when ``digest`` is stored in ``ref``'s repository (retried)."""
        return await self.retry.call(lambda: _manifests.manifest_exists(self, ref, digest))

    async def blob_exists(self, host: str, repository: str, digest: str) -> bool:
        """HEAD a blob (retried)."""
        return await self.retry.call(lambda: _blobs.blob_exists(self, host, repository, digest))

    async def read_blob(self, host: str, repository: str, digest: str, size: int, *, limit: int) -> bytes:
        """A small blob whole, verified (retried)."""
        return await self.retry.call(
            lambda: _blobs.read_blob(self, host, repository, digest, size, limit=limit)
        )

    async def mount_blob(
        self, host: str, repository: str, digest: str, from_repository: str
    ) -> _upload.UploadSession | None:
        """Cross-repository mount (retried): None when mounted, else an upload session."""
        return await self.retry.call(
            lambda: _upload.mount_blob(self, host, repository, digest, from_repository)
        )

    def open_blob(
        self, host: str, repository: str, digest: str, *, offset: int = 0, size: int | None = None
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """A blob's body to stream; not retried here (its reader resumes or restarts it)."""
        return _blobs.open_blob(self, host, repository, digest, offset=offset, size=size)

    async def list_tags(self, ref: Reference) -> list[str]:
        """Every tag of ``ref``'s repository (each page retried)."""
        return await _tags.list_tags(self, ref)

    async def start_upload(self, host: str, repository: str) -> _upload.UploadSession:
        """Open an upload session (POST); not retried: its caller retries the whole upload attempt."""
        return await _upload.start_upload(self, host, repository)

    async def upload_blob(
        self,
        session: _upload.UploadSession,
        digest: str,
        size: int,
        chunks: AsyncIterator[bytes],
        progress: Callable[[int], None] | None = None,
        *,
        chunked: bool | None = None,
    ) -> None:
        """Stream a blob into ``session``, one PUT or PATCH chunks; counted in ``stats.bytes_written``.

        Not retried here: ``chunks`` cannot be replayed, so the caller reopens the source and
        retries the whole attempt. With ``chunked=None`` a host that states a minimum chunk size,
        or refused a one-shot PUT before, gets PATCHes; a first refusal (405, 411, 413, 501)
        marks the host and is raised as retryable, so the next attempt sends chunks.
        """
        host = session.host
        if chunked is None:
            chunked = host in self.chunked_hosts or session.min_chunk > 0
        if chunked:
            await _upload.upload_chunked(self, session, digest, size, chunks, progress)
            return
        try:
            await _upload.upload_monolithic(self, session, digest, size, chunks, progress)
        except RegistryError as exc:
            if exc.status in MONOLITHIC_REFUSED and host not in self.chunked_hosts:
                log.info("%s refused a one-shot upload (%s); switching to chunked uploads", host, exc.status)
                self.chunked_hosts.add(host)
                exc.retryable = True
            raise
