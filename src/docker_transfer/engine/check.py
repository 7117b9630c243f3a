"""Is the destination already up to date? Answered with HEADs at the source, never a GET.

Docker Hub counts manifest GETs against its pull limit, not HEADs; these two
reads are all an unchanged image costs. The decision itself is pure
(:func:`docker_transfer.plan.is_unchanged`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from docker_transfer.errors import NotFoundError
from docker_transfer.manifest import Manifest
from docker_transfer.reference import Reference
from docker_transfer.registry.api import RegistryAPI


async def source_digest(client: RegistryAPI, source: Reference) -> str:
    """The digest ``source`` points at now: its own digest, else a HEAD (a GET only if HEAD omits it)."""
    if source.digest:
        return source.digest
    found = await client.head_manifest(source)
    if found is None:
        raise NotFoundError(f"{source}: not found in the source registry", status=404)
    if found.digest:
        return found.digest
    # A registry that omits Docker-Content-Digest on HEAD: one GET tells the digest.
    manifest = await client.get_manifest(source)
    return manifest.digest


async def destination_state(
    client: RegistryAPI, destination: Reference, tags: Sequence[str], index_tags: Sequence[str]
) -> tuple[dict[str, str | None], Manifest | None]:
    """Each destination tag's digest (HEAD), and the manifest the ``index_tags`` share (a destination GET)."""

    async def head(tag: str) -> str | None:
        found = await client.head_manifest(destination.with_tag(tag), destination=True)
        return (found.digest or None) if found else None

    digests = await asyncio.gather(*(head(t) for t in tags))
    by_tag = dict(zip(tags, digests, strict=True))
    shared = {by_tag[t] for t in index_tags}
    manifest: Manifest | None = None
    if len(shared) == 1 and None not in shared:
        (pushed,) = shared
        assert pushed is not None
        manifest = await client.get_manifest(destination, digest=pushed, destination=True)
    return by_tag, manifest
