"""Copying one image: resolve, select platforms, move blobs, push manifests, tag last.

Order matters for safety. Blobs first, then each child manifest by digest, then
the (possibly filtered) index, and the tags only at the very end, so a tag
never points at an image the destination does not fully hold. If any selected
platform is missing or fails, no tag is written.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from docker_transfer.engine.blobs import BlobCopier, BlobOutcome, BlobTracker
from docker_transfer.errors import ManifestError, PlatformNotFoundError
from docker_transfer.manifest import (
    Descriptor,
    Manifest,
    Selection,
    build_filtered_index,
    check_selection,
    select_platforms,
    sha256_digest,
)
from docker_transfer.platform import Platform
from docker_transfer.reference import Reference
from docker_transfer.registry.blobs import read_blob
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.manifests import get_manifest, put_manifest

MAX_CONFIG_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ResolvedImage:
    """Everything needed to push one image: the bytes of its top manifest and its children."""

    source: Reference
    top: Manifest
    push_data: bytes
    push_media_type: str
    push_digest: str
    children: tuple[Manifest, ...]
    platforms: tuple[Platform, ...]
    selection: Selection | None

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Distinct blobs of every image manifest that will be pushed."""
        seen: dict[str, Descriptor] = {}
        for image in self.children or (self.top,):
            for blob in image.blobs:
                seen.setdefault(blob.digest, blob)
        return tuple(seen.values())

    @property
    def total_bytes(self) -> int:
        """Sum of distinct blob sizes: what a cold copy moves."""
        return sum(b.size for b in self.blobs)


@dataclass
class CopyResult:
    """What one image copy did."""

    source: str
    destination: str
    tags: tuple[str, ...]
    digest: str
    media_type: str
    platforms: tuple[str, ...]
    bytes_copied: int = 0
    blobs_uploaded: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    duration_s: float = 0.0
    outcomes: dict[str, str] = field(default_factory=dict)


class Copier:
    """Copies images between registries through one :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient, tracker: BlobTracker | None = None) -> None:
        self.client = client
        self.tracker = tracker or BlobTracker()
        self.blobs = BlobCopier(client, self.tracker)

    async def resolve(
        self, source: Reference, platforms: Sequence[Platform] | None, *, annotate: bool = True
    ) -> ResolvedImage:
        """Fetch the source's manifests and decide exactly what will be pushed."""
        top = await self.client.retry.call(lambda: get_manifest(self.client, source))
        if top.is_index:
            return await self._resolve_index(source, top, platforms, annotate)
        platform = await self.image_platform(source, top)
        if platforms:
            missing = [str(p) for p in platforms if not p.matches(platform)]
            if missing:
                raise PlatformNotFoundError(str(source), missing, [str(platform)])
        return ResolvedImage(source, top, top.data, top.media_type, top.digest, (), (platform,), None)

    async def _resolve_index(
        self, source: Reference, top: Manifest, platforms: Sequence[Platform] | None, annotate: bool
    ) -> ResolvedImage:
        selection = select_platforms(top, list(platforms) if platforms else None)
        check_selection(str(source), selection, top)

        async def child(desc: Descriptor) -> Manifest:
            manifest = await self.client.retry.call(
                lambda: get_manifest(self.client, source, digest=desc.digest)
            )
            if manifest.is_index:
                raise ManifestError(
                    f"{source}: nested index {desc.digest} is not supported", digest=desc.digest
                )
            return manifest

        children = tuple(await asyncio.gather(*(child(d) for d in selection.children)))
        data = build_filtered_index(top, selection, source_digest_annotation=annotate)
        return ResolvedImage(
            source, top, data, top.media_type, sha256_digest(data), children, selection.platforms, selection
        )

    async def image_platform(self, source: Reference, image: Manifest) -> Platform:
        config = image.config
        if config is None:
            raise ManifestError(f"{source}: image manifest has no config", digest=image.digest)
        data = await self.client.retry.call(
            lambda: read_blob(
                self.client,
                source.api_host,
                source.repository,
                config.digest,
                config.size,
                limit=MAX_CONFIG_BYTES,
            )
        )
        try:
            doc = json.loads(data)
        except ValueError:
            raise ManifestError(
                f"{source}: image config {config.digest} is not JSON", digest=config.digest
            ) from None
        if not isinstance(doc, dict):
            raise ManifestError(
                f"{source}: image config {config.digest} is not an object", digest=config.digest
            )
        return Platform.from_oci(doc)

    async def push(
        self,
        image: ResolvedImage,
        destination: Reference,
        tags: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> CopyResult:
        """Push a resolved image: blobs, children by digest, then the top manifest under each tag."""
        started = time.monotonic()
        result = CopyResult(
            source=str(image.source),
            destination=destination.name,
            tags=tuple(tags),
            digest=image.push_digest,
            media_type=image.push_media_type,
            platforms=tuple(str(p) for p in image.platforms),
        )
        blobs = image.blobs
        outcomes = await asyncio.gather(
            *(self.blobs.ensure(image.source, destination, blob, progress) for blob in blobs)
        )
        for blob, outcome in zip(blobs, outcomes, strict=True):
            result.outcomes[blob.digest] = outcome.value
            if outcome is BlobOutcome.UPLOADED:
                result.blobs_uploaded += 1
                result.bytes_copied += blob.size
            elif outcome is BlobOutcome.MOUNTED:
                result.blobs_mounted += 1
            else:
                result.blobs_present += 1
        client = self.client
        for child in image.children:
            await client.retry.call(
                functools.partial(
                    put_manifest, client, destination, child.digest, child.data, child.media_type
                )
            )
        identifiers = list(tags) or [image.push_digest]
        for identifier in identifiers:
            await client.retry.call(
                functools.partial(
                    put_manifest, client, destination, identifier, image.push_data, image.push_media_type
                )
            )
        result.duration_s = time.monotonic() - started
        return result

    async def copy(
        self,
        source: Reference,
        destination: Reference,
        tags: Sequence[str],
        platforms: Sequence[Platform] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> CopyResult:
        """Resolve ``source`` and push the selected platforms to ``destination`` under ``tags``."""
        image = await self.resolve(source, platforms)
        return await self.push(image, destination, tags, progress)
