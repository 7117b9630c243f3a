"""Copying one image: resolve, select platforms, move blobs, push manifests, tag last.

Order matters for safety. Blobs first, then each child manifest by digest, then
the (possibly filtered) index, and the tags only at the very end, so a tag
never points at an image the destination does not fully hold. If any selected
platform is missing or fails, no tag is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from docker_transfer.config import AttestationMode
from docker_transfer.engine.blobs import BlobCopier, BlobOutcome, BlobTracker
from docker_transfer.engine.refusal import is_refusal, refusal
from docker_transfer.errors import ManifestError, ManifestRefusedError, PlatformNotFoundError, RegistryError
from docker_transfer.manifest import (
    Descriptor,
    Manifest,
    Selection,
    build_filtered_index,
    check_selection,
    distinct_blobs,
    select_platforms,
    sha256_digest,
)
from docker_transfer.platform import Platform
from docker_transfer.reference import Reference
from docker_transfer.registry.api import RegistryAPI

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
        return distinct_blobs(self.children or (self.top,))

    @property
    def total_bytes(self) -> int:
        """Sum of distinct blob sizes: what a cold copy moves."""
        return sum(b.size for b in self.blobs)


@dataclass(frozen=True)
class PushTarget:
    """One destination of :meth:`Copier.push_many`: where, which tags, whom to tell of bytes moved."""

    destination: Reference
    tags: tuple[str, ...]
    progress: Callable[[int], None] | None = None
    arch_tags: tuple[tuple[str, Platform], ...] = ()


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

    def to_dict(self) -> dict[str, object]:
        """The JSON document ``docker-transfer copy --json`` prints."""
        return {
            "status": self.status,
            "source": self.source,
            "destination": self.destination,
            "tags": list(self.tags),
            "digest": self.digest,
            "media_type": self.media_type,
            "platforms": list(self.platforms),
            "bytes_copied": self.bytes_copied,
            "blobs_uploaded": self.blobs_uploaded,
            "blobs_mounted": self.blobs_mounted,
            "blobs_present": self.blobs_present,
            "duration_s": round(self.duration_s, 3),
            "warnings": list(self.warnings),
        }


class Copier:
    """Copies images between registries through one :class:`RegistryAPI`."""

    def __init__(self, client: RegistryAPI, tracker: BlobTracker | None = None) -> None:
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
        top = await self.client.get_manifest(source)
        if top.is_index:
            return await self._resolve_index(source, top, platforms, annotate, allow_missing)
        platform = await self.image_platform(source, top)
        missing = tuple(p for p in platforms or () if not p.matches(platform))
        if missing and (not allow_missing or len(missing) == len(platforms or ())):
            raise PlatformNotFoundError(str(source), [str(p) for p in missing], [str(platform)])
        return ResolvedImage(
            source=source,
            top=top,
            push_data=top.data,
            push_media_type=top.media_type,
            push_digest=top.digest,
            children=(),
            platforms=(platform,),
            selection=None,
            missing=missing,
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
                manifest = await self.client.get_manifest(source, digest=digest)
            if manifest.is_index:
                raise ManifestError(f"{source}: nested index {digest} is not supported", digest=digest)
            return manifest

        distinct = dict.fromkeys(d.digest for d in selection.children)
        children = tuple(await asyncio.gather(*(child(d) for d in distinct)))
        data = build_filtered_index(top, selection, source_digest_annotation=annotate)
        return ResolvedImage(
            source=source,
            top=top,
            push_data=data,
            push_media_type=top.media_type,
            push_digest=sha256_digest(data),
            children=children,
            platforms=selection.platforms,
            selection=selection,
            missing=selection.missing,
        )

    async def image_platform(self, source: Reference, image: Manifest) -> Platform:
        """The platform a single image manifest's config names (one small GET)."""
        return await image_platform(self.client, source, image)

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
        target = PushTarget(destination, tuple(tags), progress, tuple(arch_tags))
        (result,) = await self.push_many(image, [target], attestations=attestations)
        if isinstance(result, BaseException):
            raise result
        return result

    async def push_many(
        self, image: ResolvedImage, targets: Sequence[PushTarget], *, attestations: AttestationMode = "auto"
    ) -> list[CopyResult | Exception]:
        """:meth:`push` to several destinations at once; per destination its result or its failure.

        Each blob is read from the source once for all the registries that lack it
        (:meth:`BlobCopier.ensure_many`). A destination whose blob or manifest fails
        is failed alone; the others go on to their manifests and tags.
        """
        started = time.monotonic()
        prepared = [self._for_destination(image, t.destination, attestations) for t in targets]
        wanted: dict[str, tuple[Descriptor, list[int]]] = {}
        for i, (chosen, _) in enumerate(prepared):
            for blob in chosen.blobs:
                wanted.setdefault(blob.digest, (blob, []))[1].append(i)
        per_blob = await asyncio.gather(
            *(
                self.blobs.ensure_many(
                    image.source,
                    [targets[i].destination for i in users],
                    blob,
                    [targets[i].progress for i in users],
                )
                for blob, users in wanted.values()
            )
        )
        failures: list[BaseException | None] = [None] * len(targets)
        outcomes: list[dict[str, BlobOutcome]] = [{} for _ in targets]
        for (blob, users), answers in zip(wanted.values(), per_blob, strict=True):
            for i, answer in zip(users, answers, strict=True):
                if isinstance(answer, BaseException):
                    failures[i] = failures[i] or answer
                else:
                    outcomes[i][blob.digest] = answer
        for failure in failures:
            if failure is not None and not isinstance(failure, Exception):
                raise failure  # cancelled: the whole push stops
        finished = await asyncio.gather(
            *(
                self._finish(chosen, target, warnings, outcomes[i], started, attestations)
                for i, (target, (chosen, warnings)) in enumerate(zip(targets, prepared, strict=True))
                if failures[i] is None
            ),
            return_exceptions=True,
        )
        results: list[CopyResult | Exception] = []
        done = iter(finished)
        for failure in failures:
            result = failure if failure is not None else next(done)
            if not isinstance(result, CopyResult | Exception):
                raise result
            results.append(result)
        return results

    def _for_destination(
        self, image: ResolvedImage, destination: Reference, attestations: AttestationMode
    ) -> tuple[ResolvedImage, list[str]]:
        """The image as pushed to ``destination`` (attestations dropped when asked or known refused)."""
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
        return image, warnings

    async def _finish(
        self,
        image: ResolvedImage,
        target: PushTarget,
        warnings: list[str],
        outcomes: dict[str, BlobOutcome],
        started: float,
        mode: AttestationMode,
    ) -> CopyResult:
        """Once every blob is in place: count them, PUT children, the top manifest, then arch tags."""
        destination = target.destination
        result = CopyResult(
            source=str(image.source),
            destination=destination.name,
            tags=tuple(target.tags),
            digest=image.push_digest,
            media_type=image.push_media_type,
            platforms=tuple(str(p) for p in image.platforms),
            missing=tuple(str(p) for p in image.missing),
        )
        for blob in image.blobs:
            outcome = outcomes[blob.digest]
            result.outcomes[blob.digest] = outcome.value
            if outcome is BlobOutcome.UPLOADED:
                result.blobs_uploaded += 1
                result.bytes_copied += blob.size
            elif outcome is BlobOutcome.MOUNTED:
                result.blobs_mounted += 1
            else:
                result.blobs_present += 1
        image = await self._put_children(image, destination, mode, warnings)
        result.digest = await self._put_top(image, destination, target.tags, warnings)
        for tag, platform in target.arch_tags:
            single = image.child_for(platform)
            if single is None:
                continue
            await self._put(image, single, destination, tag, single.data, "image manifest")
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
                await self._put(image, child, destination, child.digest, child.data, kind)
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
                await self._put(image, image.top, destination, identifier, data, kind)
            except ManifestRefusedError as exc:
                if i or image.selection is None or image.push_data == image.top.data:
                    raise
                bare = build_filtered_index(image.top, image.selection, source_digest_annotation=False)
                try:
                    await self._put(image, image.top, destination, identifier, bare, kind)
                except ManifestRefusedError:
                    raise exc from None
                data, digest = bare, sha256_digest(bare)
                warnings.append(
                    f"{destination.api_host} refused the filtered index with docker-transfer's annotations "
                    f"({exc.words}); published it without them, so every run copies this image again"
                )
        return digest

    async def _put(
        self,
        image: ResolvedImage,
        manifest: Manifest,
        destination: Reference,
        identifier: str,
        data: bytes,
        kind: str,
    ) -> None:
        """PUT ``data`` (the bytes pushed for ``manifest``) under ``identifier``, retried.

        A refusal of the content becomes :class:`ManifestRefusedError`. Two runs
        writing one destination at once (a manual dispatch during the nightly run, a
        CronJob that allows overlap) race: Distribution may then answer 400
        ``DIGEST_INVALID`` or ``MANIFEST_BLOB_UNKNOWN`` although this run pushed every
        blob. The references are checked again (HEAD), what is missing is pushed again,
        and the PUT is retried, a bounded number of times.
        """
        client = self.client
        media_type = manifest.media_type
        for recheck in range(MANIFEST_RECHECKS + 1):
            try:
                await client.put_manifest(destination, identifier, data, media_type)
                return
            except RegistryError as exc:
                lost = exc.status == 400 and exc.code in _LOST_REFERENCE
                if lost and recheck < MANIFEST_RECHECKS:
                    log.info(
                        "%s answered %s to manifest %s; checking its references again (%d of %d)",
                        destination.api_host,
                        exc.code,
                        identifier,
                        recheck + 1,
                        MANIFEST_RECHECKS,
                    )
                elif is_refusal(exc):
                    raise refusal(exc, destination, identifier, media_type, kind) from exc
                else:
                    raise
            await asyncio.sleep(0.25 * (recheck + 1))
            await self._restore_references(image, destination, manifest)

    async def _restore_references(
        self, image: ResolvedImage, destination: Reference, manifest: Manifest
    ) -> None:
        host, repo, client = destination.api_host, destination.repository, self.client
        if manifest.is_index:
            for child in image.children:
                if not await client.manifest_exists(destination, child.digest):
                    await self._put(image, child, destination, child.digest, child.data, "image manifest")
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


async def image_platform(client: RegistryAPI, source: Reference, image: Manifest) -> Platform:
    """The platform a single image manifest's config names (one small GET)."""
    config = image.config
    if config is None:
        raise ManifestError(f"{source}: image manifest has no config", digest=image.digest)
    data = await client.read_blob(
        source.api_host, source.repository, config.digest, config.size, limit=MAX_CONFIG_BYTES
    )
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ManifestError(
            f"{source}: image config {config.digest} is not JSON", digest=config.digest
        ) from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: image config {config.digest} is not an object", digest=config.digest)
    return Platform.from_oci(doc)
