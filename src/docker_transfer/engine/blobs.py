"""Moving one blob from a source repository to a destination repository.

Each blob is copied at most once per run: concurrent requests for the same
destination share one task, and a blob already pushed to another repository of
the destination registry is mounted there instead of uploaded again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum

import httpx

from docker_transfer.errors import RegistryError, TransportError
from docker_transfer.manifest import Descriptor
from docker_transfer.reference import Reference
from docker_transfer.registry.blobs import blob_exists, open_blob
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.httperrors import aclosing_iter, parse_count, transport_error
from docker_transfer.registry.upload import (
    UploadSession,
    mount_blob,
    start_upload,
    upload_chunked,
    upload_monolithic,
)

MAX_RESUMES = 5
MONOLITHIC_REFUSED = frozenset({405, 411, 413, 501})
log = logging.getLogger(__name__)
ProgressHook = Callable[[int], None]


class BlobOutcome(Enum):
    """How a blob reached the destination."""

    PRESENT = "present"
    MOUNTED = "mounted"
    UPLOADED = "uploaded"


@dataclass
class BlobTracker:
    """Run-wide memory of blobs: which destination repos hold them, which copies are in flight."""

    concurrency: int = 8
    _semaphore: asyncio.Semaphore | None = None
    _tasks: dict[tuple[str, str, str], asyncio.Task[BlobOutcome]] = field(default_factory=dict)
    _holders: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _by_blob: dict[tuple[str, str], asyncio.Task[BlobOutcome]] = field(default_factory=dict)

    @property
    def semaphore(self) -> asyncio.Semaphore:
        """Bounds the blob streams open at once across the whole run."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._semaphore

    def holders(self, host: str, digest: str) -> set[str]:
        """Destination repositories on ``host`` known to hold ``digest``."""
        return self._holders.setdefault((host, digest), set())

    def pending(self) -> list[asyncio.Task[BlobOutcome]]:
        """Blob copies still running."""
        return [t for t in self._tasks.values() if not t.done()]

    def remember(self, host: str, repository: str, digest: str) -> None:
        """Record that ``host/repository`` now holds ``digest``."""
        self.holders(host, digest).add(repository)

    def forget(self, host: str, repository: str, digest: str) -> None:
        """Drop what this run believed about ``digest`` in ``host/repository`` (the registry lost it)."""
        self.holders(host, digest).discard(repository)
        task = self._tasks.get((host, repository, digest))
        if task is not None and task.done():
            del self._tasks[(host, repository, digest)]
            if self._by_blob.get((host, digest)) is task:
                del self._by_blob[(host, digest)]


async def _source_chunks(
    client: RegistryClient, source: Reference, digest: str, size: int
) -> AsyncIterator[bytes]:
    """The blob's bytes from the source, resuming with a closed ``Range`` when the connection drops.

    A reset, a stall past the read timeout or an early EOF mid-body reopens the
    download at the byte reached, so a 99%-done transfer does not start over. A
    server that ignores ``Range`` answers 200; the bytes already passed on are
    then skipped. The destination upload keeps streaming throughout.
    """
    received = 0
    resumes = 0
    while True:
        try:
            async with (
                open_blob(
                    client, source.api_host, source.repository, digest, offset=received, size=size
                ) as response,
                # Closed here, not by the garbage collector: a consumer that stops early
                # (a blob longer than its descriptor) must not leave a stream half-open.
                aclosing_iter(response.aiter_raw()) as raw,
            ):
                skip = received if received and response.status_code == 200 else 0
                if received and response.status_code == 206:
                    _check_content_range(response.headers.get("Content-Range", ""), received, digest)
                async for chunk in raw:
                    client.stats.bytes_read += len(chunk)
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk = chunk[skip:]  # noqa: PLW2901 - the remainder is what we pass on
                        skip = 0
                    received += len(chunk)
                    yield chunk
            if received >= size:
                return
            raise TransportError(source.api_host, f"blob {digest} ended after {received} of {size} bytes")
        except (httpx.TransportError, TransportError, RegistryError) as exc:
            retryable = not isinstance(exc, RegistryError) or exc.retryable
            if received >= size or resumes >= MAX_RESUMES or not retryable:
                if isinstance(exc, httpx.TransportError):
                    raise transport_error(exc, source.api_host) from None
                raise
            resumes += 1
            log.info("resuming %s at byte %d of %d (%s)", digest, received, size, type(exc).__name__)
            await asyncio.sleep(min(0.2 * resumes, 2.0))


def _check_content_range(value: str, offset: int, digest: str) -> None:
    start = parse_count(value.strip().removeprefix("bytes ").split("-", 1)[0], max_digits=40)
    if start != offset:
        raise RegistryError(
            f"blob {digest}: asked for bytes from {offset}, got Content-Range {value!r}", retryable=True
        )


class BlobCopier:
    """Ensures blobs exist in a destination repository, by HEAD, mount or streamed upload."""

    def __init__(self, client: RegistryClient, tracker: BlobTracker) -> None:
        self.client = client
        self.tracker = tracker

    async def ensure(
        self,
        source: Reference,
        destination: Reference,
        blob: Descriptor,
        progress: ProgressHook | None = None,
    ) -> BlobOutcome:
        """Make ``blob`` present in ``destination``'s repository; shared by concurrent callers.

        When the same blob is already on its way to another repository of the same
        registry, wait for that copy and mount from there instead of reading the
        source a second time.
        """
        host = destination.api_host
        key = (host, destination.repository, blob.digest)
        task = self.tracker._tasks.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            elsewhere = self.tracker._by_blob.get((host, blob.digest))
            task = asyncio.ensure_future(self._after(elsewhere, source, destination, blob, progress))
            self.tracker._tasks[key] = task
            self.tracker._by_blob.setdefault((host, blob.digest), task)
        return await asyncio.shield(task)

    async def _after(
        self,
        elsewhere: asyncio.Task[BlobOutcome] | None,
        source: Reference,
        destination: Reference,
        blob: Descriptor,
        progress: ProgressHook | None,
    ) -> BlobOutcome:
        if elsewhere is not None and not elsewhere.done():
            # Its failure is its own image's problem; ours falls back to a normal copy.
            await asyncio.wait([elsewhere])
        return await self._ensure(source, destination, blob, progress)

    async def _ensure(
        self, source: Reference, destination: Reference, blob: Descriptor, progress: ProgressHook | None
    ) -> BlobOutcome:
        host, repo = destination.api_host, destination.repository
        client = self.client
        if repo in self.tracker.holders(host, blob.digest) or await client.retry.call(
            lambda: blob_exists(client, host, repo, blob.digest)
        ):
            self.tracker.remember(host, repo, blob.digest)
            if progress:
                progress(blob.size)
            return BlobOutcome.PRESENT
        session = await self._try_mounts(source, destination, blob.digest)
        if session is None:
            self.tracker.remember(host, repo, blob.digest)
            if progress:
                progress(blob.size)
            return BlobOutcome.MOUNTED
        first: list[UploadSession] = [session] if isinstance(session, UploadSession) else []

        async def attempt() -> None:
            sent = 0

            def counted(n: int) -> None:
                nonlocal sent
                sent += n
                if progress:
                    progress(n)

            open_session = first.pop() if first else await start_upload(client, host, repo)
            try:
                async with (
                    self.tracker.semaphore,
                    aclosing_iter(_source_chunks(client, source, blob.digest, blob.size)) as chunks,
                ):
                    # A registry that states a minimum chunk size, or refused a one-shot PUT, gets PATCHes.
                    if host in client.chunked_hosts or open_session.min_chunk > 0:
                        await upload_chunked(client, open_session, blob.digest, blob.size, chunks, counted)
                    else:
                        await upload_monolithic(client, open_session, blob.digest, blob.size, chunks, counted)
            except RegistryError as exc:
                if progress and sent:
                    progress(-sent)
                if exc.status in MONOLITHIC_REFUSED and host not in client.chunked_hosts:
                    log.info(
                        "%s refused a one-shot upload (%s); switching to chunked uploads", host, exc.status
                    )
                    client.chunked_hosts.add(host)
                    exc.retryable = True
                raise
            except BaseException:
                if progress and sent:
                    progress(-sent)
                raise

        await client.retry.call(attempt)
        self.tracker.remember(host, repo, blob.digest)
        return BlobOutcome.UPLOADED

    async def _try_mounts(
        self, source: Reference, destination: Reference, digest: str
    ) -> UploadSession | bool | None:
        """``None`` when mounted; an upload session or ``False`` when it must be uploaded."""
        host, repo = destination.api_host, destination.repository
        candidates = sorted(self.tracker.holders(host, digest) - {repo})
        if source.api_host == host and source.repository != repo:
            candidates.insert(0, source.repository)
        session: UploadSession | bool = False
        for other in candidates[:3]:
            mounted = await self.client.retry.call(
                functools.partial(mount_blob, self.client, host, repo, digest, other)
            )
            if mounted is None:
                return None
            session = mounted
        return session
