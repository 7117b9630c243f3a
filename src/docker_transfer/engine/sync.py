"""Mirroring every entry of images.json: incremental, concurrent, isolated, reported.

For each job the source is HEADed (free on Docker Hub) and the destination tags
are HEADed; when they already hold what a copy would push, the entry is
``unchanged`` and the source manifest is never fetched. Otherwise the source is
resolved once per (source, platforms) however many entries use it, and pushed.
A failure is recorded against its entry's tags and never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from docker_transfer.engine.blobs import BlobTracker
from docker_transfer.engine.check import destination_state, source_digest
from docker_transfer.engine.copy import Copier, CopyResult, ResolvedImage
from docker_transfer.errors import DockerTransferError, ImageTimeoutError, RateLimitedError
from docker_transfer.manifest import Manifest, platforms_of
from docker_transfer.plan import Job, is_unchanged
from docker_transfer.registry.blobs import blob_exists
from docker_transfer.registry.client import RegistryClient
from docker_transfer.report import Report, Status, TagResult

log = logging.getLogger(__name__)
CHECK_FACTOR = 4
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class SyncOptions:
    """Knobs of a sync run."""

    concurrency: int = 4
    blob_concurrency: int = 8
    image_timeout: float | None = 3600.0
    run_timeout: float | None = None
    dry_run: bool = False
    min_ratelimit: int | None = None
    """Stop fetching from a registry whose stated pull quota falls below this (HEADs go on)."""


class SyncEvents:
    """Hooks for progress output; the default does nothing."""

    def job_started(self, job: Job) -> None:
        """A job begins."""

    def job_finished(self, job: Job, results: Sequence[TagResult]) -> None:
        """A job ended (any status)."""

    def bytes_moved(self, job: Job, n: int) -> None:
        """``n`` more bytes of ``job`` reached the destination (negative after a retry rewinds)."""

    def job_sized(self, job: Job, total: int) -> None:
        """The bytes ``job`` may move, once its source is resolved."""


class Syncer:
    """Runs jobs against one registry client, sharing blob knowledge across images."""

    def __init__(
        self, client: RegistryClient, options: SyncOptions | None = None, events: SyncEvents | None = None
    ) -> None:
        self.client = client
        self.options = options or SyncOptions()
        self.events = events or SyncEvents()
        self.copier = Copier(client, BlobTracker(concurrency=self.options.blob_concurrency))
        self._heads: dict[str, asyncio.Future[str]] = {}
        # Checking moves no data, only HEADs: many at once. Copying is bounded by --concurrency.
        self._check_gate = asyncio.Semaphore(self.options.concurrency * CHECK_FACTOR)
        self._copy_gate = asyncio.Semaphore(self.options.concurrency)
        self._resolved: dict[tuple[str, tuple[str, ...], bool], asyncio.Future[ResolvedImage]] = {}

    async def run(self, jobs: Sequence[Job], report: Report) -> Report:
        """Run every job (bounded concurrency, optional overall timeout), filling ``report``."""
        tasks = {asyncio.ensure_future(self._job(job)): job for job in jobs}
        why = "interrupted before this image finished"
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=self.options.run_timeout)
            limit = self.options.run_timeout or 0
            why = f"the run's --timeout of {limit:g}s expired before this image finished"
        finally:
            # Reached on completion, on --timeout and on cancellation (Ctrl-C, SIGTERM) alike.
            await _cancel(tasks)
            self._collect(tasks, report, why)
            await self.shutdown()
            report.ratelimit = [q.to_dict() for q in self.client.stats.ratelimits.values()]
        return report

    async def shutdown(self) -> None:
        """Cancel shared work nobody waits for any more (blob copies of timed-out images)."""
        leftovers: list[asyncio.Future[Any]] = [
            *self.copier.tracker.pending(),
            *self._heads.values(),
            *self._resolved.values(),
        ]
        await _cancel(leftovers)

    def _collect(self, tasks: Mapping[asyncio.Task[list[TagResult]], Job], report: Report, why: str) -> None:
        for task, job in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                results = task.result()
            else:
                results = _failed(job, why, 0.0)
                self.events.job_finished(job, results)
            for result in results:
                report.add(result)

    async def _job(self, job: Job) -> list[TagResult]:
        async with self._check_gate:
            self.events.job_started(job)
            started = time.monotonic()
            results = await self._guarded(job, started, self._check(job, started))
        if isinstance(results, _Pending):
            async with self._copy_gate:
                results = await self._guarded(job, time.monotonic(), self._copy(job, results, started))
        assert not isinstance(results, _Pending)
        self.events.job_finished(job, results)
        return results

    async def _guarded(
        self, job: Job, started: float, work: Awaitable[list[TagResult] | _Pending]
    ) -> list[TagResult] | _Pending:
        """Run one phase of a job under the image timeout; any failure becomes the job's results."""
        try:
            async with asyncio.timeout(self.options.image_timeout):
                return await work
        except TimeoutError:
            error = ImageTimeoutError(str(job.entry.source), self.options.image_timeout or 0)
            results = _failed(job, str(error), time.monotonic() - started)
        except DockerTransferError as exc:
            results = _failed(job, str(exc), time.monotonic() - started)
        except Exception as exc:  # a bug must cost one image, not the run
            log.debug("internal error in %s", job.entry.source, exc_info=True)
            results = _failed(job, f"internal error: {type(exc).__name__}: {exc}", time.monotonic() - started)
        return results

    async def _source_digest(self, job: Job) -> str:
        source = job.entry.source
        return await _once(self._heads, str(source), lambda: source_digest(self.client, source))

    async def _destination_state(self, job: Job) -> tuple[dict[str, str | None], Manifest | None]:
        return await destination_state(self.client, job.destination, job.all_tags, job.tags)

    def _check_quota(self, job: Job) -> None:
        floor = self.options.min_ratelimit
        host = job.entry.source.api_host
        quota = self.client.stats.ratelimits.get(host)
        if floor is None or quota is None or quota.remaining is None or quota.remaining >= floor:
            return
        raise RateLimitedError(
            f"{host}: pull quota down to {quota.remaining} of {quota.limit} (below --min-ratelimit {floor}); "
            f"not fetching {job.entry.source} so the rest of the quota stays for other users of it",
            host=host,
            code="QUOTA_GUARD",
        )

    async def _resolve(self, job: Job, source_digest: str) -> ResolvedImage:
        self._check_quota(job)
        pinned = job.entry.source.with_digest(source_digest)
        platforms = job.platforms
        key = (str(pinned), tuple(str(p) for p in platforms or ()), job.entry.allow_partial)

        async def make() -> ResolvedImage:
            return await self.copier.resolve(pinned, platforms, allow_missing=job.entry.allow_partial)

        return await _once(self._resolved, key, make)

    async def _check(self, job: Job, started: float) -> list[TagResult] | _Pending:
        # The source HEAD and the destination HEADs are independent: one round trip, not two.
        source_digest, (before, held) = await asyncio.gather(
            self._source_digest(job), self._destination_state(job)
        )
        arch_heads = {tag: (platform, before[tag]) for tag, platform in job.arch_tags}
        index_heads = {t: before[t] for t in job.tags}
        unchanged = is_unchanged(
            source_digest, job.platforms, index_heads, held, arch_heads, partial_ok=job.entry.allow_partial
        )
        if not unchanged:
            return _Pending(source_digest, before)
        present = tuple(map(str, platforms_of(held))) if held is not None and held.is_index else ()
        arch = dict(job.arch_tags)
        took = time.monotonic() - started
        return [
            _result(
                job, tag, "unchanged", before[tag], (str(arch[tag]),) if tag in arch else present, 0, took
            )
            for tag in job.all_tags
            if tag in job.tags or before[tag] is not None  # allow_partial: unpublished arch tags
        ]

    async def _copy(self, job: Job, pending: _Pending, started: float) -> list[TagResult]:
        source_digest, before = pending.source_digest, pending.before
        image = await self._resolve(job, source_digest)
        platforms = tuple(str(p) for p in image.platforms)
        self.events.job_sized(job, image.total_bytes)
        if self.options.dry_run:
            needed = await self._bytes_needed(job, image)
            return [
                _result(
                    job,
                    tag,
                    "planned",
                    image.push_digest,
                    platforms,
                    needed if i == 0 else 0,
                    time.monotonic() - started,
                )
                for i, tag in enumerate(job.all_tags)
            ]
        copied = await self.copier.push(
            image,
            job.destination,
            job.tags,
            lambda n: self.events.bytes_moved(job, n),
            arch_tags=job.arch_tags,
            allow_partial=job.entry.allow_partial,
        )
        return self._pushed_results(job, image, copied, before, time.monotonic() - started)

    def _pushed_results(
        self, job: Job, image: ResolvedImage, copied: CopyResult, before: dict[str, str | None], took: float
    ) -> list[TagResult]:
        results: list[TagResult] = []
        note = f"partial: published without {', '.join(copied.missing)}" if copied.missing else None
        bytes_left = copied.bytes_copied
        for tag in job.all_tags:
            digest: str | None
            if tag in job.tags:
                digest = copied.digest
            else:
                platform = dict(job.arch_tags)[tag]
                child = image.child_for(platform)
                if child is None:
                    continue  # allow_partial left this platform out: its tag was not written
                digest = child.digest
            status: Status = "unchanged" if before.get(tag) == digest and digest is not None else "copied"
            shown = copied.platforms if tag in job.tags else (str(dict(job.arch_tags)[tag]),)
            result = _result(job, tag, status, digest, shown, 0, took)
            if status == "copied":
                result.bytes_copied, bytes_left = bytes_left, 0
            result.error = note
            results.append(result)
        if bytes_left and results:
            results[0].bytes_copied += bytes_left
        return results

    async def _bytes_needed(self, job: Job, image: ResolvedImage) -> int:
        host, repo = job.destination.api_host, job.destination.repository

        async def missing(digest: str, size: int) -> int:
            present = await self.client.retry.call(lambda: blob_exists(self.client, host, repo, digest))
            return 0 if present else size

        sizes = await asyncio.gather(*(missing(b.digest, b.size) for b in image.blobs))
        return sum(sizes)


@dataclass(frozen=True)
class _Pending:
    """A checked job that needs copying: what the check learned."""

    source_digest: str
    before: dict[str, str | None]


async def _once(cache: dict[K, asyncio.Future[T]], key: K, make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make`` once per key; concurrent callers share it; a failure is retried by the next caller."""
    future = cache.get(key)
    if future is None or (future.done() and (future.cancelled() or future.exception() is not None)):
        future = asyncio.ensure_future(make())
        cache[key] = future
    return await asyncio.shield(future)


def _result(
    job: Job, tag: str, status: Status, digest: str | None, platforms: Sequence[str], nbytes: int, took: float
) -> TagResult:
    return TagResult(
        source=str(job.entry.source),
        target=job.destination.name,
        tag=tag,
        status=status,
        digest=digest,
        platforms=list(platforms),
        bytes_copied=nbytes,
        duration_s=took,
    )


def _failed(job: Job, error: str, took: float) -> list[TagResult]:
    results = [
        _result(job, tag, "failed", None, [str(p) for p in job.platforms or ()], 0, took)
        for tag in job.all_tags
    ]
    for result in results:
        result.error = error
    return results


async def _cancel(tasks: Iterable[asyncio.Future[Any]]) -> None:
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
