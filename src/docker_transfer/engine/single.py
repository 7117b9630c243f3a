"""One image copy as both the command line and the library run it.

Which tags a destination gets, whether it already holds what the copy would push (then
nothing is fetched from the source but a HEAD, and nothing is pushed), and the copy itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from docker_transfer.config import AttestationMode
from docker_transfer.engine.blobs import BlobTracker
from docker_transfer.engine.check import destination_state, source_digest
from docker_transfer.engine.copy import Copier, CopyResult
from docker_transfer.errors import UsageError
from docker_transfer.manifest import platforms_of
from docker_transfer.plan import is_unchanged
from docker_transfer.platform import Platform
from docker_transfer.reference import Reference, validate_tag
from docker_transfer.registry.api import RegistryAPI


def destination_tags(
    source: Reference, destination: Reference, extra_tags: Sequence[str] = ()
) -> tuple[Reference, list[str]]:
    """The destination (tagged with its first tag) and every tag it gets, in order.

    The destination's own tag, else the source's tag (not when the source is pinned by digest
    alone), then ``extra_tags``. A destination may not carry a digest: it comes from the source.
    """
    if destination.digest:
        raise UsageError(
            f"destination {destination} must not carry a digest: the digest comes from the source"
        )
    tags: list[str] = []
    first = destination.tag or source.tag
    for tag in ([first] if first else []) + [validate_tag(t) for t in extra_tags]:
        if tag not in tags:
            tags.append(tag)
    return destination.with_tag(tags[0]) if tags else destination, tags


async def unchanged_result(
    client: RegistryAPI,
    source: Reference,
    destination: Reference,
    tags: Sequence[str],
    platforms: Sequence[Platform] | None,
    attestations: AttestationMode,
) -> CopyResult | None:
    """An ``unchanged`` result when every destination tag holds what this copy would push.

    Costs a HEAD at the source and HEADs (plus one GET) at the destination; None otherwise.
    """
    started = time.monotonic()
    digest, (before, held) = await asyncio.gather(
        source_digest(client, source), destination_state(client, destination, tags, tags)
    )
    if held is None or not is_unchanged(digest, platforms, before, held, attestations=attestations):
        return None
    present = tuple(map(str, platforms_of(held))) if held.is_index else ()
    return CopyResult(
        source=str(source),
        destination=destination.name,
        tags=tuple(tags),
        digest=held.digest,
        media_type=held.media_type,
        platforms=present,
        duration_s=time.monotonic() - started,
        status="unchanged",
    )


async def copy_image(
    client: RegistryAPI,
    source: Reference,
    destination: Reference,
    tags: Sequence[str],
    platforms: Sequence[Platform] | None = None,
    *,
    attestations: AttestationMode = "auto",
    force: bool = False,
    concurrency: int = 8,
    progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """Copy one image unless (without ``force``) the destination tags already hold it."""
    if tags and not force:
        held = await unchanged_result(client, source, destination, tags, platforms, attestations)
        if held is not None:
            return held
    copier = Copier(client, BlobTracker(concurrency=concurrency))
    image = await copier.resolve(source, platforms)
    return await copier.push(image, destination, tags, progress, attestations=attestations)
