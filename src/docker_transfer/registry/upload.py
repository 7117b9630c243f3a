"""Blob upload verbs: cross-repository mount, streamed monolithic PUT, chunked PATCH.

Bytes stream from the source straight into the destination request. The last
chunk is held back until the whole blob's size and sha256 are checked, so a
corrupted stream never completes an upload: the registry sees a cut request,
not a finished one, and the final PUT of the chunked path is never sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from docker_transfer.errors import DigestMismatchError, RegistryError, SizeMismatchError
from docker_transfer.ratelimit import parse_count
from docker_transfer.registry.httperrors import aclosing_iter, error_from_response, read_bounded

if TYPE_CHECKING:
    # The client's verbs (RegistryClient.get_manifest…) call these: no import at run time.
    from docker_transfer.registry.client import RegistryClient

DEFAULT_CHUNK = 8 * 1024 * 1024
ProgressHook = Callable[[int], None]


@dataclass
class UploadSession:
    """An open upload: where to send bytes next, and the registry's minimum chunk size."""

    host: str
    repository: str
    location: httpx.URL
    min_chunk: int = 0


def _session(client: RegistryClient, response: httpx.Response, host: str, repository: str) -> UploadSession:
    location = response.headers.get("Location")
    if not location:
        raise RegistryError(f"{host}: upload started without a Location header", host=host)
    url = client.transport.follow_url(response.request.url, location)
    min_chunk = parse_count(response.headers.get("OCI-Chunk-Min-Length")) or 0
    return UploadSession(host, repository, url, min_chunk)


async def mount_blob(
    client: RegistryClient, host: str, repository: str, digest: str, from_repository: str
) -> UploadSession | None:
    """Ask the registry to link a blob from another repository; ``None`` when mounted.

    A registry that cannot mount (or lacks the blob) answers 202 with an upload
    session instead, which the caller uses to upload normally.
    """
    url = await client.url(host, f"/v2/{repository}/blobs/uploads/")
    response = await client.send("POST", url, params={"mount": digest, "from": from_repository})
    if response.status_code == 201:
        return None
    if response.status_code == 202:
        return _session(client, response, host, repository)
    raise await error_from_response(response, f"mount {digest} into {host}/{repository}", destination=True)


async def start_upload(client: RegistryClient, host: str, repository: str) -> UploadSession:
    """Open an upload session (POST)."""
    url = await client.url(host, f"/v2/{repository}/blobs/uploads/")
    response = await client.send("POST", url)
    if response.status_code != 202:
        raise await error_from_response(response, f"start upload to {host}/{repository}", destination=True)
    return _session(client, response, host, repository)


class VerifiedStream:
    """Pass bytes through while hashing; refuse to release the last chunk if the blob is wrong."""

    def __init__(self, source: AsyncIterator[bytes], digest: str, size: int, progress: ProgressHook | None):
        self._source = source
        self._digest = digest
        self._size = size
        self._progress = progress
        self._hash = hashlib.sha256()
        self.count = 0

    def _check_final(self) -> None:
        if self.count != self._size:
            raise SizeMismatchError(self._digest, self._size, self.count)
        actual = "sha256:" + self._hash.hexdigest()
        if self._digest.startswith("sha256:") and actual != self._digest:
            raise DigestMismatchError(self._digest, actual, what="blob")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        held: bytes | None = None
        # The source is closed here when this stops early (a refusal below, or an upload cut
        # short): left to the garbage collector, asyncio closes it later from another task and
        # prints "error during closing of asynchronous generator".
        async with aclosing_iter(self._source) as source:
            async for chunk in source:
                if not chunk:
                    continue
                self._hash.update(chunk)
                self.count += len(chunk)
                if self.count > self._size:
                    raise SizeMismatchError(self._digest, self._size, self.count)
                if held is not None:
                    yield held
                    if self._progress:
                        self._progress(len(held))
                held = chunk
        self._check_final()
        if held is not None:
            yield held
            if self._progress:
                self._progress(len(held))


def _with_digest(location: httpx.URL, digest: str) -> httpx.URL:
    return location.copy_merge_params({"digest": digest})


async def upload_monolithic(
    client: RegistryClient,
    session: UploadSession,
    digest: str,
    size: int,
    chunks: AsyncIterator[bytes],
    progress: ProgressHook | None = None,
) -> None:
    """Stream the whole blob in one ``PUT <location>?digest=`` with a known Content-Length."""
    stream = VerifiedStream(chunks, digest, size, progress)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    async with aclosing_iter(stream.__aiter__()) as body:
        # httpx stops reading the body when the registry answers early or the connection
        # drops; closing it here closes the source stream behind it too.
        response = await client.send(
            "PUT", _with_digest(session.location, digest), headers=headers, content=body
        )
    client.stats.bytes_written += stream.count
    if response.status_code not in (201, 204):
        raise await error_from_response(
            response, f"upload {digest} to {session.host}/{session.repository}", destination=True
        )


async def _upload_status(client: RegistryClient, session: UploadSession) -> int:
    """Bytes the registry holds for this session (from ``Range: 0-N``)."""
    response = await client.send("GET", session.location)
    if response.status_code not in (200, 204):
        raise await error_from_response(response, f"upload status at {session.host}", destination=True)
    if response.headers.get("Location"):
        # Registries may encode the session state in the URL; later requests must use the newest.
        session.location = client.transport.follow_url(response.request.url, response.headers["Location"])
    end = parse_count(response.headers.get("Range", "").partition("-")[2])
    return 0 if end is None else end + 1


async def upload_chunked(
    client: RegistryClient,
    session: UploadSession,
    digest: str,
    size: int,
    chunks: AsyncIterator[bytes],
    progress: ProgressHook | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> None:
    """Upload in PATCH chunks of at least ``OCI-Chunk-Min-Length``, then commit with an empty PUT.

    A 416 means the registry's offset disagrees with ours: ask it where it is and
    resend from there when that lies within the chunk we still hold. Registries
    that answer 201 to a PATCH (as ECR does) are treated like 202.
    """
    chunk_size = max(chunk_size, session.min_chunk)
    stream = VerifiedStream(chunks, digest, size, progress)
    offset = 0
    buffer = bytearray()
    async with aclosing_iter(stream.__aiter__()) as pieces:
        async for piece in pieces:
            buffer.extend(piece)
            if len(buffer) >= chunk_size:
                offset = await _send_chunk(client, session, digest, bytes(buffer), offset)
                buffer.clear()
    if buffer:
        offset = await _send_chunk(client, session, digest, bytes(buffer), offset)
    # Reaching here means VerifiedStream checked size and digest: only now commit.
    response = await client.send(
        "PUT", _with_digest(session.location, digest), headers={"Content-Length": "0"}, content=b""
    )
    client.stats.bytes_written += stream.count
    if response.status_code not in (201, 204):
        raise await error_from_response(
            response, f"commit {digest} to {session.host}/{session.repository}", destination=True
        )


async def _send_chunk(
    client: RegistryClient, session: UploadSession, digest: str, data: bytes, offset: int
) -> int:
    """PATCH ``data``, which starts at ``offset`` of the blob; returns the offset after it.

    A 416 means the registry's offset disagrees with ours: ask it where it is and resend
    from there when that lies within ``data``.
    """
    start = 0
    for _ in range(3):
        part = data[start:]
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(part) - 1}",
            "Content-Length": str(len(part)),
        }
        response = await client.send("PATCH", session.location, headers=headers, content=part)
        if response.status_code in (201, 202, 204):
            await read_bounded(response, 1024)
            if response.headers.get("Location"):
                session.location = client.transport.follow_url(
                    response.request.url, response.headers["Location"]
                )
            return offset + len(part)
        if response.status_code == 416:
            await read_bounded(response, 1024)
            held_until = await _upload_status(client, session)
            chunk_start = offset - start
            if not chunk_start <= held_until <= chunk_start + len(data):
                raise RegistryError(
                    f"upload {digest}: registry offset {held_until} outside the chunk we hold",
                    host=session.host,
                    retryable=True,
                )
            start = held_until - chunk_start
            offset = held_until
            if start == len(data):
                return offset
            continue
        raise await error_from_response(
            response, f"PATCH {digest} to {session.host}/{session.repository}", destination=True
        )
    raise RegistryError(f"upload {digest}: chunk refused repeatedly", host=session.host, retryable=True)
