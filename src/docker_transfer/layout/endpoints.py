"""The seam between the layout copy engine and where images are read or written.

A source hands out manifests and blob streams; a destination takes verified
blob streams, manifests and names. Implementations: a registry (through the
existing verbs in ``registry/``), an OCI layout directory, an ``oci-archive``
and a ``docker-archive``. The registry-to-registry path (``engine/copy.py``)
does not go through here.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from docker_transfer.engine.blobs import blob_chunks
from docker_transfer.errors import LayoutError
from docker_transfer.layout.files import DirectoryFiles, LayoutFiles, TarFiles
from docker_transfer.layout.names import Location
from docker_transfer.layout.readers import DockerArchiveReader, OciReader
from docker_transfer.layout.stream import StreamFiles
from docker_transfer.layout.writers import ArchiveWriter, OciDirWriter
from docker_transfer.manifest import Descriptor, Manifest
from docker_transfer.reference import Reference
from docker_transfer.registry.api import RegistryAPI

ProgressHook = Callable[[int], None]
Opener = Callable[[], AsyncIterator[bytes]]


class ImageSource(Protocol):
    """Where an image is read from."""

    name: str
    sequential: bool
    """True for a one-pass stream (stdin): blobs are read in order, one at a time."""

    async def top(self) -> Manifest:
        """The manifest (index or image) the location names."""

    async def manifest(self, digest: str, media_type: str | None = None) -> Manifest:
        """A child manifest by digest, verified."""

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        """The bytes of a blob, unverified (the destination verifies while writing)."""

    async def read_blob(self, desc: Descriptor, limit: int) -> bytes:
        """A small blob (a config), verified."""

    async def close(self) -> None:
        """Release files."""


class ImageDestination(Protocol):
    """Where an image is written."""

    name: str
    concurrency: int
    single_image: bool
    """True for ``docker-archive``: one image manifest, no index."""
    metadata_first: bool
    """Write manifests and names before blobs (archives: so a pipe can be read in one pass)."""

    async def has_blob(self, digest: str, size: int) -> bool:
        """True when the destination already holds the blob."""

    async def put_blob(self, digest: str, size: int, chunks: Opener, progress: ProgressHook | None) -> None:
        """Store a blob from a stream, verified against ``digest`` and ``size`` before it counts."""

    async def put_manifest(self, digest: str, data: bytes, media_type: str) -> None:
        """Store a manifest by digest."""

    async def tag(self, ref_name: str | None, manifest: Manifest) -> None:
        """Name a stored manifest (``None``: reachable by digest only)."""

    async def commit(self) -> None:
        """Make everything written visible (a layout's index, an archive's end)."""

    async def abort(self) -> None:
        """Undo what can be undone after a failure."""


class RegistrySource:
    """A registry image through the existing verbs, with their retries and Range resume."""

    sequential = False

    def __init__(self, client: RegistryAPI, ref: Reference) -> None:
        self.client = client
        self.ref = ref
        self.name = str(ref)

    async def top(self) -> Manifest:
        """GET the manifest by tag or digest."""
        return await self.client.get_manifest(self.ref)

    async def manifest(self, digest: str, media_type: str | None = None) -> Manifest:
        """GET a child by digest."""
        return await self.client.get_manifest(self.ref, digest=digest)

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        """Stream a blob, resuming with ``Range`` after a dropped connection."""
        return blob_chunks(self.client, self.ref, desc.digest, desc.size)

    async def read_blob(self, desc: Descriptor, limit: int) -> bytes:
        """GET a config, verified."""
        return await self.client.read_blob(
            self.ref.api_host, self.ref.repository, desc.digest, desc.size, limit=limit
        )

    async def close(self) -> None:
        """The client is closed by its owner."""


class RegistryDestination:
    """A registry repository through the existing verbs; blobs are uploaded in one PUT or PATCHes."""

    single_image = False
    metadata_first = False
    """Tags must never point at an image whose blobs are not all there."""

    def __init__(self, client: RegistryAPI, ref: Reference, concurrency: int = 8) -> None:
        self.client = client
        self.ref = ref
        self.name = ref.name
        self.concurrency = concurrency

    async def has_blob(self, digest: str, size: int) -> bool:
        """HEAD the blob."""
        return await self.client.blob_exists(self.ref.api_host, self.ref.repository, digest)

    async def put_blob(self, digest: str, size: int, chunks: Opener, progress: ProgressHook | None) -> None:
        """Upload a blob; each retry reopens the source stream from the start."""
        client, host, repo = self.client, self.ref.api_host, self.ref.repository

        async def attempt() -> None:
            session = await client.start_upload(host, repo)
            await client.upload_blob(session, digest, size, chunks(), progress)

        await client.retry.call(attempt)

    async def put_manifest(self, digest: str, data: bytes, media_type: str) -> None:
        """PUT a manifest by digest."""
        await self.client.put_manifest(self.ref, digest, data, media_type)

    async def tag(self, ref_name: str | None, manifest: Manifest) -> None:
        """PUT the manifest under a tag (nothing more when untagged: it was PUT by digest)."""
        if ref_name is not None:
            await self.client.put_manifest(self.ref, ref_name, manifest.data, manifest.media_type)

    async def commit(self) -> None:
        """Tags were written as they came."""

    async def abort(self) -> None:
        """A registry keeps unreferenced blobs until its garbage collection."""


def open_source(location: Location, client: RegistryAPI | None) -> ImageSource:
    """The source for a parsed location (a registry needs ``client``)."""
    if location.reference is not None:
        assert client is not None
        return RegistrySource(client, location.reference)
    if location.transport == "oci":
        return OciReader(DirectoryFiles(location.path), location.ref_name)
    files: LayoutFiles = StreamFiles(sys.stdin.buffer) if location.is_stdio else TarFiles(location.path)
    if location.transport == "oci-archive":
        return OciReader(files, location.ref_name)
    return DockerArchiveReader(files, location.repo_tag)


def open_destination(location: Location, client: RegistryAPI | None, concurrency: int) -> ImageDestination:
    """The destination for a parsed location (a registry needs ``client``)."""
    if location.reference is not None:
        assert client is not None
        return RegistryDestination(client, location.reference, concurrency)
    if location.transport == "oci":
        return OciDirWriter(location.path)
    if location.transport == "oci-archive":
        return ArchiveWriter(location.path, "oci-archive")
    if location.transport == "docker-archive":
        return ArchiveWriter(location.path, "docker-archive", location.repo_tag)
    raise LayoutError(f"{location}: cannot be written")
