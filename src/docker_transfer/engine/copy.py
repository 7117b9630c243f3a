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
from dataclasses import dataclass, field, replace

from docker_transfer.config import AttestationMode
from docker_transfer.engine.blobs import BlobCopier, BlobOutcome, BlobTracker
from docker_transfer.errors import ManifestError, ManifestRefusedError, PlatformNotFoundError, RegistryError
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
REFUSAL_STATUSES = frozenset({400, 403, 415, 422})
"""Answers to a manifest PUT that mean "not this content" (ACR: 403 DENIED, others 400 MANIFEST_INVALID)."""
# Answers about blobs missing (overlapping runs, a broken upload) or access, not about the content.
_NOT_REFUSALS = frozenset({"BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN", "DIGEST_INVALID", "UNAUTHORIZED"})


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

    @property
    def artifact_digests(self) -> set[str]:
        """Children that are attestations or other artifacts, by their index entry or their own manifest."""
        entries = self.selection.children if self.selection else ()
        return {d.digest for d in entries if d.is_artifact} | {
            c.digest for c in self.children if c.is_artifact
        }

    def without_artifacts(self) -> ResolvedImage:
        """This image with its attestation and artifact entries left out of the index it pushes."""
        dropped = self.artifact_digests
        if not dropped or self.selection is None:
            return self
        selection = self.selection.without(dropped)
        if not any(not d.is_artifact for d in selection.children):
            raise ManifestError(
                f"{self.source}: every selected entry is an attestation or artifact; nothing left to publish"
            )
        data = build_filtered_index(self.top, selection)
        children = tuple(c for c in self.children if c.digest not in dropped)
        return replace(
            self, push_data=data, push_digest=sha256_digest(data), children=children, selection=selection
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
    warnings: list[str] = field(default_factory=list)
    """What the copy had to leave out or work around (e.g. attestations the destination refused)."""


class Copier:
    """Copies images between registries through one :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient, tracker: BlobTracker | None = None) -> None:
        self.client = client
        self.tracker = tracker or BlobTracker()
        self.blobs = BlobCopier(client, self.tracker)
        self.refuses_artifacts: dict[str, str] = {}
        """Destination hosts that refused an attestation or artifact manifest this run: their words."""

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
        *,
        arch_tags: Sequence[tuple[str, Platform]] = (),
        attestations: AttestationMode = "auto",
    ) -> CopyResult:
        """Push a resolved image: blobs, children by digest, then the top manifest under each tag.

        ``arch_tags`` point extra tags at single-platform children, written after
        the index tags. Any failed blob or manifest fails the image before a tag
        moves. ``attestations`` says what to do with attestation and artifact
        entries: ``keep`` them, ``drop`` them, or (``auto``) keep them unless the
        destination refuses them, then publish without them and remember that
        host for the rest of the run.
        """
        started = time.monotonic()
        host = destination.api_host
        warnings: list[str] = []
        if image.artifact_digests and attestations == "drop":
            image = image.without_artifacts()
        elif image.artifact_digests and attestations == "auto" and host in self.refuses_artifacts:
            count = len(image.artifact_digests)
            image = image.without_artifacts()
            warnings.append(
                f"published without {count} attestation/artifact manifest(s): {host} refused them "
                f"earlier in this run ({self.refuses_artifacts[host]})"
            )
        blobs = image.blobs
        outcomes = await asyncio.gather(
            *(self.blobs.ensure(image.source, destination, blob, progress) for blob in blobs),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
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
            assert isinstance(outcome, BlobOutcome)
            result.outcomes[blob.digest] = outcome.value
            if outcome is BlobOutcome.UPLOADED:
                result.blobs_uploaded += 1
                result.bytes_copied += blob.size
            elif outcome is BlobOutcome.MOUNTED:
                result.blobs_mounted += 1
            else:
                result.blobs_present += 1
        image = await self._put_children(image, destination, attestations, warnings)
        result.digest = await self._put_top(image, destination, tags, warnings)
        for tag, platform in arch_tags:
            single = image.child_for(platform)
            if single is None:
                continue
            await self._put(destination, tag, single.data, single.media_type, "image manifest")
        result.warnings = warnings
        result.duration_s = time.monotonic() - started
        return result

    async def _put_children(
        self, image: ResolvedImage, destination: Reference, mode: AttestationMode, warnings: list[str]
    ) -> ResolvedImage:
        """PUT every child by digest, images before artifacts, so a refused artifact is all that is lost."""
        artifacts = image.artifact_digests
        ordered = sorted(image.children, key=lambda c: c.digest in artifacts)
        for child in ordered:
            kind = "attestation/artifact manifest" if child.digest in artifacts else "image manifest"
            try:
                await self._put(destination, child.digest, child.data, child.media_type, kind)
            except ManifestRefusedError as exc:
                if child.digest not in artifacts or mode != "auto":
                    raise
                host = destination.api_host
                self.refuses_artifacts.setdefault(host, exc.words)
                warnings.append(
                    f"{host} refused attestation/artifact manifests ({exc.words}); published without "
                    f'{len(artifacts)} of them (--attestations drop, or "attestations": "drop", '
                    "skips them up front)"
                )
                return image.without_artifacts()
        return image

    async def _put_top(
        self, image: ResolvedImage, destination: Reference, tags: Sequence[str], warnings: list[str]
    ) -> str:
        """PUT the top manifest under each tag (by digest when there is none); return its digest.

        A destination that refuses our annotations on a filtered index gets the
        index without them: correct, but then no later run can tell it is up to
        date, so each run copies it again (said in a warning).
        """
        data, digest = image.push_data, image.push_digest
        kind = "index" if image.top.is_index else "image manifest"
        for i, identifier in enumerate(list(tags) or [digest]):
            try:
                await self._put(destination, identifier, data, image.push_media_type, kind)
            except ManifestRefusedError as exc:
                if i or image.selection is None or image.push_data == image.top.data:
                    raise
                bare = build_filtered_index(image.top, image.selection, source_digest_annotation=False)
                try:
                    await self._put(destination, identifier, bare, image.push_media_type, kind)
                except ManifestRefusedError:
                    raise exc from None
                data, digest = bare, sha256_digest(bare)
                warnings.append(
                    f"{destination.api_host} refused the filtered index with docker-transfer's annotations "
                    f"({exc.words}); published it without them, so every run copies this image again"
                )
        return digest

    async def _put(
        self, destination: Reference, identifier: str, data: bytes, media_type: str, kind: str
    ) -> None:
        """One manifest PUT (retried); a refusal of the content becomes :class:`ManifestRefusedError`."""
        try:
            await self.client.retry.call(
                functools.partial(put_manifest, self.client, destination, identifier, data, media_type)
            )
        except RegistryError as exc:
            if not is_refusal(exc):
                raise
            raise refusal(exc, destination, identifier, media_type, kind) from exc

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


def is_refusal(exc: RegistryError) -> bool:
    """True when a manifest PUT failed because of what the manifest is, not access or missing blobs."""
    if isinstance(exc, ManifestRefusedError) or exc.status not in REFUSAL_STATUSES:
        return False
    if exc.code in _NOT_REFUSALS:
        return False
    return "requested access to the resource is denied" not in (exc.detail or "")


def refusal(
    exc: RegistryError, destination: Reference, identifier: str, media_type: str, kind: str
) -> ManifestRefusedError:
    """One line naming what was refused, the registry's own words, and what to do about it."""
    host = destination.api_host
    if kind.startswith("attestation"):
        hint = 'set "attestations": "auto" or "drop" for this entry, or pass --attestations drop'
    elif media_type.startswith("application/vnd.oci."):
        hint = f"{host} may not accept OCI media types; mirror to a registry that does"
    else:
        hint = f"{host} does not accept this manifest as it is"
    where = identifier if identifier.startswith("sha256:") else f"tag {identifier}"
    return ManifestRefusedError(
        f"{host} refused the {kind} ({media_type}) for {destination.name} {where}: "
        f"{exc.status} {exc.words}; {hint}",
        media_type=media_type,
        cause=exc,
    )
