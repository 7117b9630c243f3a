"""Moving one blob from a source repository to a destination repository.

Each blob is copied at most once per run: concurrent requests for the same
destination share one task, and a blob already pushed to another repository of
the destination registry is mounted there instead of uploaded again. A blob
going to several destination registries at once is read from the source once
and teed into all of their uploads (:meth:`BlobCopier.ensure_many`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx

from docker_transfer.engine.singleflight import SingleFlight
from docker_transfer.engine.tee import tee
from docker_transfer.errors import DockerTransferError, RegistryError, TransportError
from docker_transfer.manifest import Descriptor
from docker_transfer.ratelimit import parse_count
from docker_transfer.reference import Reference
from docker_transfer.registry.api import RegistryAPI
from docker_transfer.registry.httperrors import aclosing_iter, transport_error
from docker_transfer.registry.retry import RetryPolicy
from docker_transfer.registry.upload import UploadSession

MAX_RESUMES = 5
log = logging.getLogger(__name__)
ProgressHook = Callable[[int], None]


class BlobOutcome(Enum):
    """How a blob reached the destination."""

    PRESENT = "present"
    MOUNTED = "mounted"
    UPLOADED = "uploaded"


BlobKey = tuple[str, str, str]
"""(destination host, repository, digest): one blob copy."""


@dataclass
class BlobTracker:
    """Run-wide memory of blobs: which destination repos hold them, which copies are in flight."""

    concurrency: int = 8
    _semaphore: asyncio.Semaphore | None = None
    _copies: SingleFlight[BlobKey, BlobOutcome] = field(default_factory=SingleFlight)
    _holders: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _first: dict[tuple[str, str], asyncio.Future[BlobOutcome]] = field(default_factory=dict)
    """(host, digest) -> the copy of that blob to that host others wait for, then mount from."""
    _fans: list[asyncio.Future[list[BlobOutcome | BaseException]]] = field(default_factory=list)

    @property
    def semaphore(self) -> asyncio.Semaphore:
        """Bounds the blob streams open at once across the whole run."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._semaphore

    def holders(self, host: str, digest: str) -> set[str]:
        """Destination repositories on ``host`` known to hold ``digest``."""
        return self._holders.setdefault((host, digest), set())

    def pending(self) -> list[asyncio.Future[Any]]:
        """Blob copies still running."""
        running: list[asyncio.Future[Any]] = list(self._copies.pending())
        return running + [t for t in self._fans if not t.done()]

    def remember(self, host: str, repository: str, digest: str) -> None:
        """Record that ``host/repository`` now holds ``digest``."""
        self.holders(host, digest).add(repository)

    def forget(self, host: str, repository: str, digest: str) -> None:
        """Drop what this run believed about ``digest`` in ``host/repository`` (the registry lost it)."""
        self.holders(host, digest).discard(repository)
        task = self._copies.forget((host, repository, digest))
        if task is not None and self._first.get((host, digest)) is task:
            del self._first[(host, digest)]

    def copy(
        self,
        host: str,
        repository: str,
        digest: str,
        make: Callable[[asyncio.Future[BlobOutcome] | None], Awaitable[BlobOutcome]],
    ) -> Awaitable[BlobOutcome]:
        """The copy of ``digest`` to ``host/repository``, shared by concurrent callers.

        When none is live, ``make`` starts one, given the copy of the same blob to another
        repository of the host that came first (to wait for and mount from), if any.
        """
        key = (host, repository, digest)
        task = self._copies.live(key)
        if task is None:
            # Looked up now, not when the task first runs: by then it would find itself.
            elsewhere = self._first.get((host, digest))
            task = self._copies.start(key, lambda: make(elsewhere))
            self._first.setdefault((host, digest), task)
        return asyncio.shield(task)

    def is_free(self, host: str, repository: str, digest: str) -> bool:
        """True when no copy of ``digest`` is live for ``host/repository`` nor running for its host."""
        elsewhere = self._first.get((host, digest))
        return self._copies.live((host, repository, digest)) is None and (
            elsewhere is None or elsewhere.done()
        )

    def adopt(self, host: str, repository: str, digest: str, task: asyncio.Future[BlobOutcome]) -> None:
        """Make ``task`` (one destination's share of a fan-out) the copy of ``digest`` there."""
        self._copies.adopt((host, repository, digest), task)
        self._first[(host, digest)] = task

    def add_fan_out(self, fan: asyncio.Future[list[BlobOutcome | BaseException]]) -> None:
        """Count a fan-out among the copies :meth:`pending` lists."""
        self._fans.append(fan)


async def blob_chunks(client: RegistryAPI, source: Reference, digest: str, size: int) -> AsyncIterator[bytes]:
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
                client.open_blob(
                    source.api_host, source.repository, digest, offset=received, size=size
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

    def __init__(self, client: RegistryAPI, tracker: BlobTracker, retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.tracker = tracker
        self.retry = retry or client.retry
        """Retries a whole upload attempt (a fresh source stream each time); the client's by default."""

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

        def make(elsewhere: asyncio.Future[BlobOutcome] | None) -> Awaitable[BlobOutcome]:
            return self._after(elsewhere, source, destination, blob, progress)

        return await self.tracker.copy(destination.api_host, destination.repository, blob.digest, make)

    async def ensure_many(
        self,
        source: Reference,
        destinations: Sequence[Reference],
        blob: Descriptor,
        progress: Sequence[ProgressHook | None],
    ) -> list[BlobOutcome | BaseException]:
        """:meth:`ensure` for several destinations, reading the source once for all that need an upload.

        The first destination of each registry host not already handling this blob
        joins one fan-out: each is HEADed and offered a mount on its own, then one
        source stream is teed into every upload still needed. Other repositories
        of a host wait for it and mount, as :meth:`ensure` does. Per destination:
        its outcome, or what failed it (the others are not affected).
        """
        leads: list[int] = []
        for i, destination in enumerate(destinations):
            host = destination.api_host
            free = self.tracker.is_free(host, destination.repository, blob.digest)
            if free and all(destinations[j].api_host != host for j in leads):
                leads.append(i)
        if len(leads) > 1:
            fan = asyncio.ensure_future(
                self._fan_out(source, [destinations[i] for i in leads], blob, [progress[i] for i in leads])
            )
            self.tracker.add_fan_out(fan)
            for j, i in enumerate(leads):
                host, repo = destinations[i].api_host, destinations[i].repository
                self.tracker.adopt(host, repo, blob.digest, asyncio.ensure_future(_pick(fan, j)))
        # A lead's ensure() finds its fan-out share; the rest wait for their host's copy and mount.
        waits = [self.ensure(source, d, blob, hook) for d, hook in zip(destinations, progress, strict=True)]
        return list(await asyncio.gather(*waits, return_exceptions=True))

    async def _fan_out(
        self,
        source: Reference,
        destinations: Sequence[Reference],
        blob: Descriptor,
        progress: Sequence[ProgressHook | None],
    ) -> list[BlobOutcome | BaseException]:
        """HEAD and mount per destination, then one source stream teed into every upload left."""
        prepared = await asyncio.gather(
            *(self._prepare(source, d, blob, hook) for d, hook in zip(destinations, progress, strict=True)),
            return_exceptions=True,
        )
        outcomes: list[BlobOutcome | BaseException] = []
        uploads: list[int] = []
        for i, ready in enumerate(prepared):
            if isinstance(ready, BlobOutcome | BaseException):
                outcomes.append(ready)
            else:
                outcomes.append(BlobOutcome.UPLOADED)
                uploads.append(i)
        if not uploads:
            return outcomes
        sessions = [prepared[i] for i in uploads]

        def consumer(i: int, session: object) -> Callable[[AsyncIterator[bytes]], Awaitable[None]]:
            destination = destinations[i]

            async def upload(chunks: AsyncIterator[bytes]) -> None:
                if not isinstance(session, UploadSession):
                    opened = await self.client.start_upload(destination.api_host, destination.repository)
                else:
                    opened = session
                await self._send(opened, blob, chunks, progress[i])

            return upload

        async with (
            self.tracker.semaphore,
            aclosing_iter(blob_chunks(self.client, source, blob.digest, blob.size)) as chunks,
        ):
            errors = await tee(chunks, [consumer(i, s) for i, s in zip(uploads, sessions, strict=True)])
        for i, error in zip(uploads, errors, strict=True):
            destination = destinations[i]
            if error is None:
                self.tracker.remember(destination.api_host, destination.repository, blob.digest)
                continue
            if not (isinstance(error, DockerTransferError) and error.retryable):
                outcomes[i] = error
                continue
            # This destination alone tries again, reading the source again: the others are done.
            # The teed attempt was its first, so it has the policy's attempts less one left.
            left = self.retry.attempts - 1
            if left < 1:
                outcomes[i] = error
                continue
            log.info("%s: retrying blob %s alone after: %s", destination.api_host, blob.digest, error)
            try:
                await self._upload(source, destination, blob, progress[i], None, attempts=left)
            except Exception as exc:
                outcomes[i] = exc
        return outcomes

    async def _prepare(
        self, source: Reference, destination: Reference, blob: Descriptor, progress: ProgressHook | None
    ) -> BlobOutcome | UploadSession | bool:
        """PRESENT or MOUNTED when no upload is needed, else the upload session (or ``False``: none yet)."""
        host, repo = destination.api_host, destination.repository
        if repo in self.tracker.holders(host, blob.digest) or await self.client.blob_exists(
            host, repo, blob.digest
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
        return session

    async def _after(
        self,
        elsewhere: asyncio.Future[BlobOutcome] | None,
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
        ready = await self._prepare(source, destination, blob, progress)
        if isinstance(ready, BlobOutcome):
            return ready
        await self._upload(
            source, destination, blob, progress, ready if isinstance(ready, UploadSession) else None
        )
        return BlobOutcome.UPLOADED

    async def _upload(
        self,
        source: Reference,
        destination: Reference,
        blob: Descriptor,
        progress: ProgressHook | None,
        session: UploadSession | None,
        *,
        attempts: int | None = None,
    ) -> None:
        """Stream the blob from the source into ``destination`` alone, retried (``attempts``: fewer)."""
        host, repo = destination.api_host, destination.repository
        client = self.client
        first: list[UploadSession] = [session] if session is not None else []

        async def attempt() -> None:
            open_session = first.pop() if first else await client.start_upload(host, repo)
            async with (
                self.tracker.semaphore,
                aclosing_iter(blob_chunks(client, source, blob.digest, blob.size)) as chunks,
            ):
                await self._send(open_session, blob, chunks, progress)

        retry = self.retry if attempts is None else dataclasses.replace(self.retry, attempts=attempts)
        await retry.call(attempt)
        self.tracker.remember(host, repo, blob.digest)

    async def _send(
        self,
        session: UploadSession,
        blob: Descriptor,
        chunks: AsyncIterator[bytes],
        progress: ProgressHook | None,
    ) -> None:
        """One upload attempt of ``chunks``; on failure the progress it reported is taken back."""
        sent = 0

        def counted(n: int) -> None:
            nonlocal sent
            sent += n
            if progress:
                progress(n)

        try:
            await self.client.upload_blob(session, blob.digest, blob.size, chunks, counted)
        except BaseException:
            if progress and sent:
                progress(-sent)
            raise

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
            mounted = await self.client.mount_blob(host, repo, digest, other)
            if mounted is None:
                return None
            session = mounted
        return session


async def _pick(fan: asyncio.Future[list[BlobOutcome | BaseException]], index: int) -> BlobOutcome:
    """One destination's share of a fan-out: its outcome, or its failure raised."""
    outcome = (await asyncio.shield(fan))[index]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
