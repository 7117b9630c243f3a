"""Mirroring every entry of images.json: incremental, concurrent, isolated, reported.

For each job the source is HEADed (free on Docker Hub) and the destination tags
are HEADed; when they already hold what a copy would push, the entry is
``unchanged`` and the source manifest is never fetched. Otherwise the source is
resolved once per (source, platforms) however many entries use it, and pushed.
A failure is recorded against its entry's tags and never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from docker_transfer.config import AttestationMode
from docker_transfer.engine.blobs import BlobTracker
from docker_transfer.engine.check import destination_state, source_digest
from docker_transfer.engine.copy import Copier, CopyResult, PushTarget, ResolvedImage
from docker_transfer.engine.expand import expand_rule_jobs
from docker_transfer.engine.singleflight import SingleFlight
from docker_transfer.errors import DockerTransferError, ImageTimeoutError, RateLimitedError
from docker_transfer.manifest import Manifest, platforms_of
from docker_transfer.plan import Job, is_unchanged, skipped_platforms
from docker_transfer.platform import Platform
from docker_transfer.registry.api import RegistryAPI
from docker_transfer.report import Report, Status, TagResult

log = logging.getLogger(__name__)
CHECK_FACTOR = 4
SIZE_FIRST_WAIT = 30.0
"""Seconds copies wait, with ``size_first``, for the last images to be sized."""


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
    attestations: AttestationMode = "auto"
    """Attestation and artifact entries: ``keep``, ``drop`` or ``auto``; an entry's own field wins."""
    size_first: bool = False
    """Resolve every image that needs copying (its manifests: sizes) before any copy starts, so a
    progress display knows the whole total up front. A check slower than ``SIZE_FIRST_WAIT`` does
    not hold the copies back."""


class SyncEvents:
    """Hooks for progress output; the default does nothing."""

    def jobs_planned(self, jobs: Sequence[Job]) -> None:
        """The final job list, once tag rules are expanded (their count may differ from the config's)."""

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
        self, client: RegistryAPI, options: SyncOptions | None = None, events: SyncEvents | None = None
    ) -> None:
        self.client = client
        self.options = options or SyncOptions()
        self.events = events or SyncEvents()
        self.copier = Copier(client, BlobTracker(concurrency=self.options.blob_concurrency))
        self._heads: SingleFlight[str, str] = SingleFlight()
        # Checking moves no data, only HEADs: many at once. Copying is bounded by --concurrency.
        self._check_gate = asyncio.Semaphore(self.options.concurrency * CHECK_FACTOR)
        self._copy_gate = asyncio.Semaphore(self.options.concurrency)
        self._resolved: SingleFlight[tuple[str, tuple[str, ...], bool], ResolvedImage] = SingleFlight()
        self._started: dict[int, float] = {}  # id(job) -> when its check began, for cut-short durations
        self._finished: dict[int, list[TagResult]] = {}  # id(job) -> its results, once it finished
        self._unchecked = 0
        self._all_checked = asyncio.Event()

    async def run(self, jobs: Sequence[Job], report: Report) -> Report:
        """Run every job (bounded concurrency, optional overall timeout), filling ``report``."""
        if any(job.has_rules for job in jobs):
            expanded = await expand_rule_jobs(self.client, jobs)
            jobs = expanded.jobs
            report.warnings.extend(expanded.warnings)
            for failure in expanded.failures:
                report.add(failure)
            self.events.jobs_planned(jobs)
        self._unchecked = len(jobs)
        tasks = {asyncio.ensure_future(self._unit(unit)): unit for unit in fan_out_units(jobs)}
        why: str | None = None  # None: the run was interrupted (Ctrl-C, SIGTERM)
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
            *self._heads.tasks(),
            *self._resolved.tasks(),
        ]
        await _cancel(leftovers)

    def _collect(
        self, tasks: Mapping[asyncio.Task[list[TagResult]], Sequence[Job]], report: Report, why: str | None
    ) -> None:
        now = time.monotonic()
        for task, unit in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                for result in task.result():
                    report.add(result)
                continue
            for job in unit:
                took = now - self._started.get(id(job), now)
                if id(job) in self._finished:
                    results = self._finished[id(job)]
                elif why is None:
                    results = _failed(job, "interrupted before this image finished", took, "interrupted")
                    self.events.job_finished(job, results)
                else:
                    results = _failed(job, why, took)
                    self.events.job_finished(job, results)
                for result in results:
                    report.add(result)

    async def _unit(self, jobs: Sequence[Job]) -> list[TagResult]:
        """One entry's jobs, one per destination: each checked alone, the ones to copy copied together."""
        checked = await asyncio.gather(*(self._checked(job) for job in jobs))
        pending = [(job, c) for job, c in zip(jobs, checked, strict=True) if isinstance(c, _Pending)]
        for job, c in zip(jobs, checked, strict=True):
            if not isinstance(c, _Pending):
                self._done(job, c)
        if pending:
            if self.options.size_first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_checked.wait(), SIZE_FIRST_WAIT)
            async with self._copy_gate:
                copied: Sequence[list[TagResult] | _Pending]
                if len(pending) == 1:
                    job, c = pending[0]
                    started = self._started[id(job)]
                    copied = [await self._guarded(job, time.monotonic(), self._copy(job, c, started))]
                else:
                    copied = await self._copy_many(pending)
            for (job, _), results in zip(pending, copied, strict=True):
                assert not isinstance(results, _Pending)
                self._done(job, results)
        return [result for job in jobs for result in self._finished[id(job)]]

    def _done(self, job: Job, results: list[TagResult]) -> None:
        self._finished[id(job)] = results
        self.events.job_finished(job, results)

    async def _checked(self, job: Job) -> list[TagResult] | _Pending:
        """The job's incremental check (and, with ``size_first``, its sizing) under the check gate."""
        try:
            async with self._check_gate:
                self.events.job_started(job)
                started = self._started[id(job)] = time.monotonic()
                results = await self._guarded(job, started, self._check(job, started))
                if isinstance(results, _Pending) and self.options.size_first:
                    results = await self._guarded(job, started, self._size(job, results))
        finally:
            self._unchecked -= 1
            if self._unchecked <= 0:
                self._all_checked.set()
        return results

    async def _copy_many(self, pending: Sequence[tuple[Job, _Pending]]) -> list[list[TagResult]]:
        """Copy one source to several destinations: blobs read once, each destination failing alone."""
        first, check = pending[0]
        started = time.monotonic()

        async def work() -> list[list[TagResult]]:
            image = await self._resolve(first, check.source_digest)
            for job, c in pending:
                if not c.sized:
                    self.events.job_sized(job, image.total_bytes)
            if self.options.dry_run:
                return [await self._planned(job, image, self._started[id(job)]) for job, _ in pending]
            targets = [
                PushTarget(job.destination, job.tags, self._hook(job), job.arch_tags) for job, _ in pending
            ]
            copied = await self.copier.push_many(image, targets, attestations=self._attestations(first))
            out: list[list[TagResult]] = []
            for (job, c), result in zip(pending, copied, strict=True):
                took = time.monotonic() - self._started[id(job)]
                if isinstance(result, Exception):
                    out.append(_failed(job, _failure_text(job, result, self.options.image_timeout), took))
                else:
                    out.append(self._pushed_results(job, image, result, c.before, took))
            return out

        try:
            async with asyncio.timeout(self.options.image_timeout):
                return await work()
        except Exception as exc:
            took = time.monotonic() - started
            return [
                _failed(job, _failure_text(job, exc, self.options.image_timeout), took) for job, _ in pending
            ]

    def _hook(self, job: Job) -> Callable[[int], None]:
        return lambda n: self.events.bytes_moved(job, n)

    async def _guarded(
        self, job: Job, started: float, work: Awaitable[list[TagResult] | _Pending]
    ) -> list[TagResult] | _Pending:
        """Run one phase of a job under the image timeout; any failure becomes the job's results."""
        try:
            async with asyncio.timeout(self.options.image_timeout):
                return await work
        except Exception as exc:  # a bug must cost one image, not the run
            return _failed(
                job, _failure_text(job, exc, self.options.image_timeout), time.monotonic() - started
            )

    async def _source_digest(self, job: Job) -> str:
        source = job.entry.source
        return await self._heads.run(str(source), lambda: source_digest(self.client, source))

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

        return await self._resolved.run(key, make)

    def _attestations(self, job: Job) -> AttestationMode:
        return job.entry.attestations or self.options.attestations

    async def _check(self, job: Job, started: float) -> list[TagResult] | _Pending:
        # The source HEAD and the destination HEADs are independent: one round trip, not two.
        source_digest, (before, held) = await asyncio.gather(
            self._source_digest(job), self._destination_state(job)
        )
        arch_heads = {tag: (platform, before[tag]) for tag, platform in job.arch_tags}
        index_heads = {t: before[t] for t in job.tags}
        single: Platform | None = None
        if held is not None and not held.is_index and held.digest == source_digest and job.platforms:
            # A single image names its platform only in its config: read it at the destination.
            with contextlib.suppress(DockerTransferError):  # unknown: judged without it
                single = await self.copier.image_platform(job.destination, held)
        unchanged = is_unchanged(
            source_digest,
            job.platforms,
            index_heads,
            held,
            arch_heads,
            partial_ok=job.entry.allow_partial,
            attestations=self._attestations(job),
            image_platform=single,
        )
        if not unchanged:
            return _Pending(source_digest, before)
        assert held is not None
        present = platforms_of(held) if held.is_index else (single,) if single else job.platforms or ()
        skipped = _names(skipped_platforms(job.platforms, held))
        arch = dict(job.arch_tags)
        took = time.monotonic() - started
        results = [
            _result(
                job, tag, "unchanged", before[tag], _names([arch[tag]] if tag in arch else present), 0, took
            )
            for tag in job.all_tags
            if tag in job.tags or before[tag] is not None  # allow_partial: unpublished arch tags
        ]
        for result in results:
            result.skipped = list(skipped) if result.tag in job.tags else []
        return results

    async def _size(self, job: Job, pending: _Pending) -> _Pending:
        """Resolve now (cached for :meth:`_copy`) and say the image's size."""
        image = await self._resolve(job, pending.source_digest)
        self.events.job_sized(job, image.total_bytes)
        return replace(pending, sized=True)

    async def _copy(self, job: Job, pending: _Pending, started: float) -> list[TagResult]:
        source_digest, before = pending.source_digest, pending.before
        image = await self._resolve(job, source_digest)
        if not pending.sized:
            self.events.job_sized(job, image.total_bytes)
        if self.options.dry_run:
            return await self._planned(job, image, started)
        copied = await self.copier.push(
            image,
            job.destination,
            job.tags,
            self._hook(job),
            arch_tags=job.arch_tags,
            attestations=self._attestations(job),
        )
        return self._pushed_results(job, image, copied, before, time.monotonic() - started)

    def _pushed_results(
        self, job: Job, image: ResolvedImage, copied: CopyResult, before: dict[str, str | None], took: float
    ) -> list[TagResult]:
        results: list[TagResult] = []
        bytes_left = copied.bytes_copied
        for tag in job.all_tags:
            digest: str | None
            if tag in job.tags:
                digest = copied.digest
            else:
                platform = dict(job.arch_tags)[tag]
                child = image.child_for(platform)
                if child is None:
                    continue  # allow_partial: the source does not list this platform, so no tag for it
                digest = child.digest
            status: Status = "unchanged" if before.get(tag) == digest and digest is not None else "copied"
            shown = _names(image.platforms) if tag in job.tags else _names([dict(job.arch_tags)[tag]])
            result = _result(job, tag, status, digest, shown, 0, took)
            if status == "copied":
                result.bytes_copied, bytes_left = bytes_left, 0
            if tag in job.tags:
                result.skipped = _names(image.missing)
                result.warnings = list(copied.warnings)
            results.append(result)
        if bytes_left and results:
            results[0].bytes_copied += bytes_left
        return results

    async def _planned(self, job: Job, image: ResolvedImage, started: float) -> list[TagResult]:
        """A dry run's rows: the bytes this destination lacks on the first tag."""
        needed = await self._bytes_needed(job, image)
        platforms = _names(image.platforms)
        took = time.monotonic() - started
        return [
            _result(job, tag, "planned", image.push_digest, platforms, needed if i == 0 else 0, took)
            for i, tag in enumerate(job.all_tags)
        ]

    async def _bytes_needed(self, job: Job, image: ResolvedImage) -> int:
        host, repo = job.destination.api_host, job.destination.repository

        async def missing(digest: str, size: int) -> int:
            present = await self.client.blob_exists(host, repo, digest)
            return 0 if present else size

        sizes = await asyncio.gather(*(missing(b.digest, b.size) for b in image.blobs))
        return sum(sizes)


@dataclass(frozen=True)
class _Pending:
    """A checked job that needs copying: what the check learned."""

    source_digest: str
    before: dict[str, str | None]
    sized: bool = False


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
        rule=job.entry.rule,
        destination=job.where or None,
    )


def fan_out_units(jobs: Sequence[Job]) -> list[list[Job]]:
    """Jobs grouped by what they copy: one entry (same source, tags, platforms) across destinations.

    With one destination every unit holds one job. Two jobs of one destination are
    never grouped, so a unit's jobs write different places.
    """
    units: dict[tuple[object, ...], list[Job]] = {}
    for job in jobs:
        entry = job.entry
        what: tuple[object, ...] = (str(entry.source), entry.target, job.all_tags, job.platforms)
        what += (entry.allow_partial, entry.attestations)
        n = 0
        while any(j.where == job.where for j in units.get((*what, n), ())):
            n += 1
        units.setdefault((*what, n), []).append(job)
    return list(units.values())


def _failure_text(job: Job, exc: Exception, timeout: float | None) -> str:
    """What a failed job's rows say: the error's own line; a bug names itself as one."""
    if isinstance(exc, TimeoutError):
        return str(ImageTimeoutError(str(job.entry.source), timeout or 0))
    if isinstance(exc, DockerTransferError):
        return str(exc)
    log.debug("internal error in %s", job.entry.source, exc_info=True)
    return f"internal error: {type(exc).__name__}: {exc}"


def _names(platforms: Iterable[Platform]) -> list[str]:
    """Platforms as every row of the report shows them: sorted, distinct, default variant spelled out."""
    return [str(p) for p in sorted({p.normalized for p in platforms})]


def _failed(job: Job, error: str, took: float, status: Status = "failed") -> list[TagResult]:
    arch = dict(job.arch_tags)
    results = [
        _result(job, tag, status, None, _names([arch[tag]] if tag in arch else job.platforms or ()), 0, took)
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
