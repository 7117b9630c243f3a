"""Copying one image where either side is an OCI layout or an archive.

The same decisions as ``engine/copy.py`` (``select_platforms``,
``build_filtered_index``, children by digest, blobs before manifests, names
last), through the :mod:`docker_transfer.layout.endpoints` seam instead of the
registry client, so one code path serves every pair of transports. Every blob
is verified against its digest on the way into the destination.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from docker_transfer.engine.copy import MAX_CONFIG_BYTES, CopyResult
from docker_transfer.errors import ManifestError, PlatformNotFoundError, UsageError
from docker_transfer.layout.endpoints import ImageDestination, ImageSource
from docker_transfer.manifest import (
    Descriptor,
    Manifest,
    build_filtered_index,
    check_selection,
    distinct_blobs,
    parse_manifest,
    select_platforms,
)
from docker_transfer.platform import Platform

ProgressHook = Callable[[int], None]


@dataclass(frozen=True)
class LayoutImage:
    """What will be written: the top manifest to name, and the image manifests below it."""

    source: str
    top: Manifest
    """The manifest written under the names: the (filtered) index or a single image."""
    children: tuple[Manifest, ...]
    platforms: tuple[Platform, ...]
    source_digest: str

    def child_for(self, platform: Platform) -> Manifest | None:
        """The image manifest for ``platform`` (the top itself for a single image)."""
        if not self.children:
            return self.top if any(platform.matches(p) for p in self.platforms) else None
        by_digest = {c.digest: c for c in self.children}
        for desc in self.top.manifests:
            if desc.platform and not desc.is_attestation and platform.matches(desc.platform):
                return by_digest.get(desc.digest)
        return None

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Distinct blobs of every image manifest written."""
        return distinct_blobs(self.children or (self.top,))


async def resolve(
    source: ImageSource,
    platforms: Sequence[Platform] | None,
    *,
    single_image: bool = False,
    top: Manifest | None = None,
) -> LayoutImage:
    """Read the source's manifests and decide what to write (one image manifest if ``single_image``)."""
    top = top or await source.top()
    if not top.is_index:
        platform = await image_platform(source, top)
        missing = [str(p) for p in platforms or () if not p.matches(platform)]
        if missing:
            raise PlatformNotFoundError(source.name, missing, [str(platform)])
        return LayoutImage(source.name, top, (), (platform,), top.digest)
    selection = select_platforms(top, list(platforms) if platforms else None)
    check_selection(source.name, selection, top)
    if single_image:
        images = [d for d in selection.children if not d.is_attestation]
        if len(images) != 1:
            raise UsageError(
                f"docker-archive holds one platform, but {len(selection.platforms)} are selected "
                f"({', '.join(map(str, selection.platforms))}): pick one with --arch, "
                "or write an oci-archive (Docker 25+ and containerd load all its platforms)"
            )
        child = await _child(source, images[0])
        return LayoutImage(source.name, child, (), selection.platforms, top.digest)
    children = tuple(await asyncio.gather(*(_child(source, d) for d in selection.children)))
    data = build_filtered_index(top, selection)
    pushed = top if data == top.data else parse_manifest(data, top.media_type)
    return LayoutImage(source.name, pushed, children, selection.platforms, top.digest)


async def _child(source: ImageSource, desc: Descriptor) -> Manifest:
    manifest = await source.manifest(desc.digest, desc.media_type)
    if manifest.is_index:
        raise ManifestError(f"{source.name}: nested index {desc.digest} is not supported", digest=desc.digest)
    return manifest


async def image_platform(source: ImageSource, image: Manifest) -> Platform:
    """The platform an image's config states."""
    config = image.config
    if config is None:
        raise ManifestError(f"{source.name}: image manifest has no config", digest=image.digest)
    data = await source.read_blob(config, MAX_CONFIG_BYTES)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        doc = None
    if not isinstance(doc, dict):
        raise ManifestError(f"{source.name}: image config {config.digest} is not a JSON object")
    return Platform.from_oci(doc)


async def _all_or_nothing(works: Sequence[Callable[[], Awaitable[bool]]], limit: int) -> list[bool]:
    """Run ``works`` at most ``limit`` at once; on the first failure cancel the rest and raise it."""
    gate = asyncio.Semaphore(limit)

    async def gated(work: Callable[[], Awaitable[bool]]) -> bool:
        async with gate:
            return await work()

    tasks = [asyncio.ensure_future(gated(w)) for w in works]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [t.result() for t in tasks]


async def push(
    image: LayoutImage,
    source: ImageSource,
    destination: ImageDestination,
    names: Sequence[str],
    progress: ProgressHook | None = None,
    *,
    arch_names: Sequence[tuple[str, Platform]] = (),
) -> CopyResult:
    """Write blobs, then child manifests, then the top manifest, then its names (not committed)."""
    started = time.monotonic()

    def blob_work(desc: Descriptor) -> Callable[[], Awaitable[bool]]:
        async def work() -> bool:
            if await destination.has_blob(desc.digest, desc.size):
                if progress:
                    progress(desc.size)
                return False
            await destination.put_blob(desc.digest, desc.size, lambda: source.blob_chunks(desc), progress)
            return True

        return work

    async def manifests_and_names() -> None:
        for child in image.children:
            await destination.put_manifest(child.digest, child.data, child.media_type)
        top = image.top
        await destination.put_manifest(top.digest, top.data, top.media_type)
        identifiers: list[str | None] = [*names] or [None]
        for name in identifiers:
            await destination.tag(name, top)
        for name, platform in arch_names:
            single = image.child_for(platform)
            if single is not None:
                await destination.tag(name, single)

    if destination.metadata_first:
        # An archive: nothing is visible before commit, and a pipe reader needs the index first.
        await manifests_and_names()
    blobs = image.blobs
    # A one-pass source (stdin) hands out blobs in archive order, which is this order: one at a time.
    limit = 1 if source.sequential else destination.concurrency
    written = await _all_or_nothing([blob_work(b) for b in blobs], limit)
    if not destination.metadata_first:
        # Everywhere else names come last: a name never points at an image with a blob missing.
        await manifests_and_names()
    top = image.top
    uploaded = [b for b, w in zip(blobs, written, strict=True) if w]
    return CopyResult(
        source=image.source,
        destination=destination.name,
        tags=tuple(names),
        digest=top.digest,
        media_type=top.media_type,
        platforms=tuple(str(p) for p in image.platforms),
        bytes_copied=sum(b.size for b in uploaded),
        blobs_uploaded=len(uploaded),
        blobs_present=len(blobs) - len(uploaded),
        duration_s=time.monotonic() - started,
    )


async def copy_image(
    source: ImageSource,
    destination: ImageDestination,
    names: Sequence[str],
    platforms: Sequence[Platform] | None,
    progress: ProgressHook | None = None,
    *,
    on_resolved: Callable[[LayoutImage], None] | None = None,
) -> CopyResult:
    """Resolve, write and commit one image; on any failure undo what the destination allows."""
    try:
        image = await resolve(source, platforms, single_image=destination.single_image)
        if on_resolved:
            on_resolved(image)
        result = await push(image, source, destination, names, progress)
        await destination.commit()
    except BaseException:
        await destination.abort()
        raise
    finally:
        await source.close()
    return result
