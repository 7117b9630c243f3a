"""``sync`` into one OCI layout directory, and from such a layout back into a registry.

Into a layout: every entry of images.json lands in the same directory, blobs
stored once across images, each tag named ``target:tag``
(``org.opencontainers.image.ref.name``). An entry whose names already point at
what a copy would write is ``unchanged`` after one source HEAD, as with a
registry target (:func:`docker_transfer.plan.is_unchanged`). ``index.json`` is
replaced once, at the end, and names only images whose every blob is in place.

From a layout: each entry's ``target:tag`` is looked up in the layout and
pushed to ``{registry}/{namespace}/{target}`` with its tags, so the same
images.json serves both sides of an air gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from docker_transfer.engine.check import destination_state, source_digest
from docker_transfer.engine.copy import CopyResult
from docker_transfer.engine.layout_copy import LayoutImage, push, resolve
from docker_transfer.engine.sync import SyncEvents, SyncOptions
from docker_transfer.errors import DockerTransferError, ImageTimeoutError
from docker_transfer.layout.endpoints import (
    ImageDestination,
    ImageSource,
    RegistryDestination,
    RegistrySource,
)
from docker_transfer.layout.files import DirectoryFiles
from docker_transfer.layout.names import sync_ref_name
from docker_transfer.layout.readers import OciReader
from docker_transfer.layout.writers import OciDirWriter
from docker_transfer.manifest import Manifest, platforms_of
from docker_transfer.plan import Job, is_unchanged
from docker_transfer.registry.api import RegistryAPI
from docker_transfer.report import Report, Status, TagResult

log = logging.getLogger(__name__)
Check = tuple[str, dict[str, str | None], Manifest | None]
"""What the incremental check learned: source digest, digest per tag, the manifest the tags share."""


def layout_name(job: Job, tag: str) -> str:
    """The ref name of one of ``job``'s tags inside a shared layout."""
    return sync_ref_name(job.entry.target, tag)


class LayoutSyncer:
    """Runs sync jobs with a layout on one side, isolating failures per entry."""

    def __init__(
        self, client: RegistryAPI, options: SyncOptions | None = None, events: SyncEvents | None = None
    ) -> None:
        self.client = client
        self.options = options or SyncOptions()
        self.events = events or SyncEvents()

    async def to_layout(self, jobs: Sequence[Job], writer: OciDirWriter, report: Report) -> Report:
        """Copy every job's source into ``writer``'s layout; the index is replaced once at the end."""

        async def check(job: Job) -> Check:
            digest = await source_digest(self.client, job.entry.source)
            before = {tag: writer.index.lookup(layout_name(job, tag)) for tag in job.all_tags}
            return digest, before, await _held(writer.name, {before[t] for t in job.tags})

        async def copy(job: Job, checked: Check, progress: Callable[[int], None]) -> CopyResult:
            source = RegistrySource(self.client, job.entry.source.with_digest(checked[0]))
            return await self._copy(job, source, writer, progress, named=True)

        try:
            await self._run(jobs, report, check, copy, f"oci:{writer.name}")
        finally:
            # Only images whose blobs are all in place were named: even after a failure or
            # an interruption the new index is valid. Unchanged names leave the file alone.
            if not self.options.dry_run and writer.index.changed():
                await writer.commit()
        return report

    async def from_layout(self, jobs: Sequence[Job], reader: OciReader, report: Report) -> Report:
        """Push each job's ``target:tag`` image from the layout to its registry destination."""

        async def check(job: Job) -> Check:
            entry = reader.entry(layout_name(job, job.tags[0]))
            before, held = await destination_state(self.client, job.destination, job.all_tags, job.tags)
            return entry.digest, before, held

        async def copy(job: Job, checked: Check, progress: Callable[[int], None]) -> CopyResult:
            destination = RegistryDestination(self.client, job.destination, self.options.blob_concurrency)
            return await self._copy(job, reader, destination, progress, named=False, top=checked[0])

        await self._run(jobs, report, check, copy, None)
        return report

    async def _copy(
        self,
        job: Job,
        source: ImageSource,
        destination: ImageDestination,
        progress: Callable[[int], None],
        *,
        named: bool,
        top: str | None = None,
    ) -> CopyResult:
        manifest = await source.manifest(top) if top else None
        image = await resolve(source, job.platforms, top=manifest)
        self.events.job_sized(job, sum(b.size for b in image.blobs))
        if self.options.dry_run:
            return _planned(image, destination.name)
        names = [layout_name(job, t) if named else t for t in job.tags]
        arch = [(layout_name(job, t) if named else t, p) for t, p in job.arch_tags]
        return await push(image, source, destination, names, progress, arch_names=arch)

    async def _run(
        self,
        jobs: Sequence[Job],
        report: Report,
        check: Callable[[Job], Awaitable[Check]],
        copy: Callable[[Job, Check, Callable[[int], None]], Awaitable[CopyResult]],
        where: str | None,
    ) -> None:
        gate = asyncio.Semaphore(self.options.concurrency)

        async def one(job: Job) -> list[TagResult]:
            async with gate:
                self.events.job_started(job)
                started = time.monotonic()
                try:
                    async with asyncio.timeout(self.options.image_timeout):
                        results = await self._job(job, check, copy, where, started)
                except TimeoutError:
                    error = ImageTimeoutError(str(job.entry.source), self.options.image_timeout or 0)
                    results = _failed(job, str(error), where, time.monotonic() - started)
                except DockerTransferError as exc:
                    results = _failed(job, str(exc), where, time.monotonic() - started)
                except Exception as exc:  # a bug must cost one image, not the run
                    log.debug("internal error in %s", job.entry.source, exc_info=True)
                    message = f"internal error: {type(exc).__name__}: {exc}"
                    results = _failed(job, message, where, time.monotonic() - started)
                self.events.job_finished(job, results)
                return results

        tasks = [asyncio.ensure_future(one(job)) for job in jobs]
        why = "interrupted before this image finished"
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=self.options.run_timeout)
            limit = self.options.run_timeout or 0
            why = f"the run's --timeout of {limit:g}s expired before this image finished"
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            for task, job in zip(tasks, jobs, strict=True):
                ok = not task.cancelled() and task.exception() is None
                for result in task.result() if ok else _failed(job, why, where, 0.0):
                    report.add(result)

    async def _job(
        self,
        job: Job,
        check: Callable[[Job], Awaitable[Check]],
        copy: Callable[[Job, Check, Callable[[int], None]], Awaitable[CopyResult]],
        where: str | None,
        started: float,
    ) -> list[TagResult]:
        checked = await check(job)
        digest, before, held = checked
        arch_heads = {tag: (platform, before[tag]) for tag, platform in job.arch_tags}
        index_heads = {t: before[t] for t in job.tags}
        if is_unchanged(digest, job.platforms, index_heads, held, arch_heads):
            present = tuple(map(str, platforms_of(held))) if held is not None and held.is_index else ()
            took = time.monotonic() - started
            return [_result(job, tag, "unchanged", before[tag], present, where, took) for tag in job.all_tags]
        copied = await copy(job, checked, lambda n: self.events.bytes_moved(job, n))
        status: Status = "planned" if self.options.dry_run else "copied"
        took = time.monotonic() - started
        results = [
            _result(job, t, status, copied.digest, copied.platforms, where, took) for t in job.all_tags
        ]
        if results:
            results[0].bytes_copied = copied.bytes_copied
        return results


async def _held(layout: str, digests: set[str | None]) -> Manifest | None:
    """The manifest every index name shares, read from the layout (``None`` if they differ or are absent)."""
    if len(digests) != 1 or None in digests:
        return None
    (digest,) = digests
    assert digest is not None
    try:
        return await OciReader(DirectoryFiles(layout), None).manifest(digest)
    except DockerTransferError:
        return None  # a damaged or missing blob: copy again


def _planned(image: LayoutImage, destination: str) -> CopyResult:
    return CopyResult(
        source=image.source,
        destination=destination,
        tags=(),
        digest=image.top.digest,
        media_type=image.top.media_type,
        platforms=tuple(str(p) for p in image.platforms),
        bytes_copied=sum(b.size for b in image.blobs),
        status="planned",
    )


def _result(
    job: Job,
    tag: str,
    status: Status,
    digest: str | None,
    platforms: Sequence[str],
    where: str | None,
    took: float,
) -> TagResult:
    return TagResult(
        source=str(job.entry.source) if where else f"{job.entry.target}:{job.tags[0]}",
        target=f"{where}:{job.entry.target}" if where else job.destination.name,
        tag=tag,
        status=status,
        digest=digest,
        platforms=list(platforms),
        duration_s=took,
        destination=job.where or None,
    )


def _failed(job: Job, error: str, where: str | None, took: float) -> list[TagResult]:
    platforms = [str(p) for p in job.platforms or ()]
    results = [_result(job, tag, "failed", None, platforms, where, took) for tag in job.all_tags]
    for result in results:
        result.error = error
    return results
