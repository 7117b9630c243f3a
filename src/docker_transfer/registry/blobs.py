"""Blob verbs: HEAD, and a streamed GET that follows redirects safely.

Registries often redirect blob downloads to object storage on another host.
Such a hop is sent with no Authorization at all: credentials for a registry
never travel to a host they were not given for.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from docker_transfer.errors import DigestMismatchError, RegistryError, SizeMismatchError
from docker_transfer.registry.httperrors import error_from_response, read_bounded

if TYPE_CHECKING:
    # The client's verbs (RegistryClient.get_manifest…) call these: no import at run time.
    from docker_transfer.registry.client import RegistryClient

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def blob_exists(client: RegistryClient, host: str, repository: str, digest: str) -> bool:
    """HEAD a blob in a destination repository (access errors name the likely cause)."""
    url = await client.url(host, f"/v2/{repository}/blobs/{digest}")
    response = await client.send("HEAD", url)
    if response.status_code == 200:
        return True
    if response.status_code == 404:
        return False
    raise await error_from_response(response, f"HEAD blob {digest} in {host}/{repository}", destination=True)


@asynccontextmanager
async def open_blob(
    client: RegistryClient,
    host: str,
    repository: str,
    digest: str,
    *,
    offset: int = 0,
    size: int | None = None,
) -> AsyncIterator[httpx.Response]:
    """Open a blob for streaming; the response is closed when the block exits.

    With ``offset`` the request asks for ``Range: bytes=offset-{size-1}``: closed,
    because some registries answer an open-ended range with 416 (``bytes=offset-``
    only when the size is unknown). The caller must check for 206: a server may
    ignore the range and answer 200 in full.
    """
    url = httpx.URL(await client.url(host, f"/v2/{repository}/blobs/{digest}"))
    origin = url
    last = "" if size is None or size <= offset else str(size - 1)
    headers = {"Range": f"bytes={offset}-{last}"} if offset else None
    response = await client.send("GET", url, stream=True, headers=headers)
    hops = 0
    try:
        while response.status_code in _REDIRECTS:
            hops += 1
            location = response.headers.get("Location")
            await response.aclose()
            if not location or hops > MAX_REDIRECTS:
                raise RegistryError(f"blob {digest}: too many or empty redirects from {host}", host=host)
            target = client.transport.follow_url(url, location)
            same_origin = (target.scheme, target.netloc) == (origin.scheme, origin.netloc)
            url = target
            response = await client.send("GET", url, stream=True, authenticate=same_origin, headers=headers)
        if response.status_code not in (200, 206):
            raise await error_from_response(response, f"GET blob {digest} from {host}/{repository}")
        yield response
    finally:
        await response.aclose()


async def read_blob(
    client: RegistryClient, host: str, repository: str, digest: str, size: int, *, limit: int
) -> bytes:
    """Download a small blob (an image config) whole, verifying size and sha256."""
    if size > limit:
        raise RegistryError(f"blob {digest}: {size} bytes is more than the {limit}-byte limit for configs")
    async with open_blob(client, host, repository, digest) as response:
        data = await read_bounded(response, limit + 1, strict=True)
    client.stats.bytes_read += len(data)
    if len(data) != size:
        raise SizeMismatchError(digest, size, len(data))
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if digest.startswith("sha256:") and actual != digest:
        raise DigestMismatchError(digest, actual, what="blob")
    return data
