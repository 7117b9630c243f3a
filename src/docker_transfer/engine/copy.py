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
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from docker_transfer.engine.blobs import BlobCopier, BlobOutcome, BlobTracker
from docker_transfer.errors import ManifestError, PlatformNotFoundError, RegistryError
from docker_transfer.manifest import (
    ATTESTATION_REF_DIGEST_KEY,
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
from docker_transfer.registry.manifests import get_manifest, manifest_exists, put_manifest

MAX_CONFIG_BYTES = 8 * 1024 * 1024
CHILD_FETCHES = 8
"""Child manifests fetched at once while resolving an index."""
MANIFEST_RECHECKS = 3
"""Times a manifest PUT refused for a lost reference is healed and retried."""
# What Distribution answers while another run's writes of the same content land.
_LOST_REFERENCE = frozenset({"DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"})
log = logging.getLogger(__name__)


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
    missing: tuple[Platform, ...] = ()

    def child_for(self, platform: Platform) -> Manifest | None:
        """The pushed image manifest for ``platform`` (the top manifest for a single image)."""
        if not self.children:
            return self.top if any(platform.matches(p) for p in self.platforms) else None
        by_digest = {c.digest: c for c in self.children}
        for desc in self.selection.children if self.selection else ():
            if desc.platform and not desc.is_attestation and platform.matches(desc.platform):
                return by_digest.get(desc.digest)
        return None

    def without(self, dropped: set[str]) -> ResolvedImage:
        """This image minus the children in ``dropped`` (and their attestations): a partial publish."""
        assert self.selection is not None
        kept = tuple(
            d
            for d in self.selection.children
            if d.digest not in dropped and d.annotations.get(ATTESTATION_REF_DIGEST_KEY) not in dropped
        )
        if not any(not d.is_attestation for d in kept):
            raise ValueError("nothing left to publish")
        lost = tuple(d.platform for d in self.selection.children if d.digest in dropped and d.platform)
        platforms = tuple(p for p in self.platforms if p not in lost)
        selection = Selection(children=kept, platforms=platforms, is_complete=False, missing=())
        data = build_filtered_index(self.top, selection)
        children = tuple(c for c in self.children if c.digest in {d.digest for d in kept})
        return ResolvedImage(
            self.source,
            self.top,
            data,
            self.push_media_type,
            sha256_digest(data),
            children,
            platforms,
            selection,
            self.missing + lost,
        )

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
    missing: tuple[str, ...] = ()
    status: str = "copied"
    """``copied``, or ``unchanged`` when the destination already held it and nothing was pushed."""
    outcomes: dict[str, str] = field(default_factory=dict)


class Copier:
    """Copies images between registries through one :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient, tracker: BlobTracker | None = None) -> None:
        self.client = client
        self.tracker = tracker or BlobTracker()
        self.blobs = BlobCopier(client, self.tracker)

    async def resolve(
        self,
        source: Reference,
        platforms: Sequence[Platform] | None,
        *,
        annotate: bool = True,
        allow_missing: bool = False,
    ) -> ResolvedImage:
        """Fetch the source's manifests and decide exactly what will be pushed.

        With ``allow_missing`` a requested platform the source lacks is recorded
        in ``missing`` instead of failing, as long as one requested platform exists.
        """
        top = await self.client.retry.call(lambda: get_manifest(self.client, source))
        if top.is_index:
            return await self._resolve_index(source, top, platforms, annotate, allow_missing)
        platform = await self.image_platform(source, top)
        missing = tuple(p for p in platforms or () if not p.matches(platform))
        if missing and (not allow_missing or len(missing) == len(platforms or ())):
            raise PlatformNotFoundError(str(source), [str(p) for p in missing], [str(platform)])
        return ResolvedImage(
            source, top, top.data, top.media_type, top.digest, (), (platform,), None, missing
        )

    async def _resolve_index(
        self,
        source: Reference,
        top: Manifest,
        platforms: Sequence[Platform] | None,
        annotate: bool,
        allow_missing: bool,
    ) -> ResolvedImage:
        selection = select_platforms(top, list(platforms) if platforms else None)
        if not allow_missing or not selection.platforms:
            check_selection(str(source), selection, top)

        # An index may list one child many times: each distinct child is fetched once, and
        # only a few at a time, so thousands of entries neither flood the source nor wait
        # in the connection pool's queue past every timeout.
        limit = asyncio.Semaphore(CHILD_FETCHES)

        async def child(digest: str) -> Manifest:
            async with limit:
                manifest = await self.client.retry.call(
                    lambda: get_manifest(self.client, source, digest=digest)
                )
            if manifest.is_index:
                raise ManifestError(f"{source}: nested index {digest} is not supported", digest=digest)
            return manifest

        distinct = dict.fromkeys(d.digest for d in selection.children)
        children = tuple(await asyncio.gather(*(child(d) for d in distinct)))
        data = build_filtered_index(top, selection, source_digest_annotation=annotate)
        return ResolvedImage(
            source,
            top,
            data,
            top.media_type,
            sha256_digest(data),
            children,
            selection.platforms,
            selection,
            selection.missing,
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
        except (ValueError, RecursionError):
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
        *,
        arch_tags: Sequence[tuple[str, Platform]] = (),
        allow_partial: bool = False,
    ) -> CopyResult:
        """Push a resolved image: blobs, children by digest, then the top manifest under each tag.

        ``arch_tags`` point extra tags at single-platform children, written after
        the index tags. With ``allow_partial`` a child whose blobs fail is dropped
        and the index rebuilt from the rest, instead of failing the whole image.
        """
        started = time.monotonic()
        blobs = image.blobs
        outcomes = await asyncio.gather(
            *(self.blobs.ensure(image.source, destination, blob, progress) for blob in blobs),
            return_exceptions=True,
        )
        failed = {b.digest: o for b, o in zip(blobs, outcomes, strict=True) if isinstance(o, BaseException)}
        if failed:
            first = next(iter(failed.values()))
            if not allow_partial or not image.children:
                raise first
            dropped = {c.digest for c in image.children if any(b.digest in failed for b in c.blobs)}
            try:
                image = image.without(dropped)
            except ValueError:
                raise first from None
        result = CopyResult(
            source=str(image.source),
            destination=destination.name,
            tags=tuple(tags),
            digest=image.push_digest,
            media_type=image.push_media_type,
            platforms=tuple(str(p) for p in image.platforms),
            missing=tuple(str(p) for p in image.missing),
        )
        for blob, outcome in zip(blobs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                continue
            result.outcomes[blob.digest] = outcome.value
            if outcome is BlobOutcome.UPLOADED:
                result.blobs_uploaded += 1
                result.bytes_copied += blob.size
            elif outcome is BlobOutcome.MOUNTED:
                result.blobs_mounted += 1
            else:
                result.blobs_present += 1
        for child in image.children:
            await self._put_manifest(image, destination, child.digest, child, child.data)
        identifiers = list(tags) or [image.push_digest]
        for identifier in identifiers:
            await self._put_manifest(image, destination, identifier, image.top, image.push_data)
        for tag, platform in arch_tags:
            single = image.child_for(platform)
            if single is None:
                continue
            await self._put_manifest(image, destination, tag, single, single.data)
        result.duration_s = time.monotonic() - started
        return result

    async def _put_manifest(
        self, image: ResolvedImage, destination: Reference, identifier: str, manifest: Manifest, data: bytes
    ) -> None:
        """PUT ``data`` (the bytes pushed for ``manifest``) under ``identifier``, healing lost references.

        Two runs writing one destination at once (a manual dispatch during the nightly
        run, a CronJob that allows overlap) race: Distribution may then answer 400
        ``DIGEST_INVALID`` or ``MANIFEST_BLOB_UNKNOWN`` although this run pushed every
        blob. The references are checked again (HEAD), what is missing is pushed again,
        and the PUT is retried, a bounded number of times.
        """
        client = self.client
        put = functools.partial(put_manifest, client, destination, identifier, data, manifest.media_type)
        for recheck in range(MANIFEST_RECHECKS + 1):
            try:
                await client.retry.call(put)
                return
            except RegistryError as exc:
                if recheck == MANIFEST_RECHECKS or exc.status != 400 or exc.code not in _LOST_REFERENCE:
                    raise
                log.info(
                    "%s answered %s to manifest %s; checking its references again (%d of %d)",
                    destination.api_host,
                    exc.code,
                    identifier,
                    recheck + 1,
                    MANIFEST_RECHECKS,
                )
            await asyncio.sleep(0.25 * (recheck + 1))
            await self._restore_references(image, destination, manifest)

    async def _restore_references(
        self, image: ResolvedImage, destination: Reference, manifest: Manifest
    ) -> None:
        host, repo, client = destination.api_host, destination.repository, self.client
        if manifest.is_index:
            for child in image.children:
                present = functools.partial(manifest_exists, client, destination, child.digest)
                if not await client.retry.call(present):
                    await self._put_manifest(image, destination, child.digest, child, child.data)
            return
        for blob in manifest.blobs:
            # Forgotten first, so ensure() asks the registry (HEAD) instead of this run's memory.
            self.tracker.forget(host, repo, blob.digest)
            await self.blobs.ensure(image.source, destination, blob)

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
