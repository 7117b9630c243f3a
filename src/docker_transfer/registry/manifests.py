"""Manifest verbs: HEAD, GET (bounded, verified) and PUT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from docker_transfer.errors import DigestMismatchError, ManifestError, NotFoundError
from docker_transfer.manifest import (
    ACCEPT_MANIFESTS,
    MAX_MANIFEST_BYTES,
    Manifest,
    parse_manifest,
    sha256_digest,
)
from docker_transfer.ratelimit import parse_count
from docker_transfer.reference import Reference, is_digest
from docker_transfer.registry.httperrors import error_from_response, read_bounded

if TYPE_CHECKING:
    # The client's verbs (RegistryClient.get_manifest…) call these: no import at run time.
    from docker_transfer.registry.client import RegistryClient

ACCEPT_HEADER = ", ".join(ACCEPT_MANIFESTS)


@dataclass(frozen=True)
class ManifestHead:
    """What a HEAD tells about a manifest without downloading it."""

    digest: str
    media_type: str
    size: int


def _path(ref: Reference, identifier: str | None = None) -> str:
    return f"/v2/{ref.repository}/manifests/{identifier or ref.identifier}"


async def head_manifest(
    client: RegistryClient, ref: Reference, *, destination: bool = False
) -> ManifestHead | None:
    """HEAD a manifest: its digest, media type and size, or ``None`` when absent.

    ``destination`` marks the registry being written to, for clearer access errors.

    Docker Hub does not count HEADs against pull limits, so incremental checks use this.
    """
    url = await client.url(ref.api_host, _path(ref))
    response = await client.send("HEAD", url, headers={"Accept": ACCEPT_HEADER})
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise await error_from_response(response, f"HEAD {ref}", destination=destination)
    digest = response.headers.get("Docker-Content-Digest", "")
    if not digest and ref.digest:
        digest = ref.digest
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
    size = parse_count(response.headers.get("Content-Length")) or 0
    # An empty digest means the registry did not say; callers then GET to learn it.
    return ManifestHead(digest=digest, media_type=media_type, size=size)


async def get_manifest(
    client: RegistryClient, ref: Reference, *, digest: str | None = None, destination: bool = False
) -> Manifest:
    """GET a manifest with the full Accept list; verify it against the digest asked for.

    Without the list types in Accept, Distribution silently answers with one
    child of a multi-arch image; we always send all four.
    """
    identifier = digest or ref.identifier
    url = await client.url(ref.api_host, _path(ref, identifier))
    response = await client.send("GET", url, headers={"Accept": ACCEPT_HEADER}, stream=True)
    shown = f"{ref.name}{'@' if is_digest(identifier) else ':'}{identifier}"
    if response.status_code != 200:
        raise await error_from_response(
            response, f"GET manifest {shown}", subject=shown, destination=destination
        )
    declared = parse_count(response.headers.get("Content-Length"), max_digits=40)
    if declared is not None and declared > MAX_MANIFEST_BYTES:
        await response.aclose()
        raise ManifestError(
            f"{shown}: manifest of {declared} bytes exceeds the {MAX_MANIFEST_BYTES}-byte limit"
        )
    data = await read_bounded(response, MAX_MANIFEST_BYTES + 1, strict=True)
    client.stats.bytes_read += len(data)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{shown}: manifest exceeds the {MAX_MANIFEST_BYTES}-byte limit")
    expected = identifier if is_digest(identifier) else None
    if expected is None:
        header_digest = response.headers.get("Docker-Content-Digest")
        if header_digest and header_digest.startswith("sha256:") and sha256_digest(data) != header_digest:
            raise DigestMismatchError(
                header_digest, sha256_digest(data), what=f"manifest {ref.name}:{identifier}"
            )
    content_type = response.headers.get("Content-Type")
    return parse_manifest(data, content_type, expected_digest=expected)


async def put_manifest(
    client: RegistryClient, ref: Reference, identifier: str, data: bytes, media_type: str
) -> str:
    """PUT manifest bytes under a tag or digest with Content-Type equal to its mediaType."""
    url = await client.url(ref.api_host, _path(ref, identifier))
    response = await client.send("PUT", url, headers={"Content-Type": media_type}, content=data)
    if response.status_code not in (200, 201, 202):
        raise await error_from_response(response, f"PUT manifest {ref.name}:{identifier}", destination=True)
    await response.aclose()
    client.stats.bytes_written += len(data)
    ours = sha256_digest(data)
    returned = response.headers.get("Docker-Content-Digest")
    if returned and returned.startswith("sha256:") and returned != ours:
        raise DigestMismatchError(ours, returned, what=f"pushed manifest {ref.name}:{identifier}")
    return ours


async def manifest_exists(client: RegistryClient, ref: Reference, digest: str) -> bool:
    """True when ``digest`` is already stored in ``ref``'s repository."""
    try:
        head = await head_manifest(client, ref.with_digest(digest))
    except NotFoundError:
        return False
    return head is not None
