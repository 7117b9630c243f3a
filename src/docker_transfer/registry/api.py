"""The seam between the engine and the network: what the engine asks of a registry.

:class:`~docker_transfer.registry.client.RegistryClient` implements it over HTTP, each verb
retried by its :class:`~docker_transfer.registry.retry.RetryPolicy` and counted in its
:class:`~docker_transfer.registry.client.RequestStats`: the engine calls a verb once and gets
an answer or a final error. Engine code typed against :class:`RegistryAPI` runs unchanged on
anything else that implements it. Blob streams (``open_blob``, ``start_upload`` and
``upload_blob``) are not retried inside: their caller alone can resume or restart them
(engine/blobs.py), and does so with the same public :attr:`RegistryAPI.retry` policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import httpx

    from docker_transfer.manifest import Manifest
    from docker_transfer.reference import Reference
    from docker_transfer.registry.client import RequestStats
    from docker_transfer.registry.manifests import ManifestHead
    from docker_transfer.registry.retry import RetryPolicy
    from docker_transfer.registry.upload import UploadSession


class RegistryAPI(Protocol):
    """Manifests by reference or digest, blobs by repository and digest, tag lists."""

    retry: RetryPolicy
    """The policy the verbs retry with; callers retrying a whole blob stream use it too."""

    stats: RequestStats
    """Requests sent and bytes moved; a blob stream's reader adds the bytes it reads."""

    async def head_manifest(self, ref: Reference, *, destination: bool = False) -> ManifestHead | None:
        """Digest, media type and size of a manifest without its body; None when absent.

        ``destination`` marks the registry being written to, for clearer access errors.
        """
        ...

    async def get_manifest(
        self, ref: Reference, *, digest: str | None = None, destination: bool = False
    ) -> Manifest:
        """A manifest (by ``digest``, else ``ref``'s tag or digest), bounded and verified."""
        ...

    async def put_manifest(self, ref: Reference, identifier: str, data: bytes, media_type: str) -> str:
        """Store manifest bytes under a tag or digest; returns their digest."""
        ...

    async def manifest_exists(self, ref: Reference, digest: str) -> bool:
        """True when ``digest`` is stored in ``ref``'s repository."""
        ...

    async def blob_exists(self, host: str, repository: str, digest: str) -> bool:
        """True when the blob is stored in ``host/repository``."""
        ...

    async def read_blob(self, host: str, repository: str, digest: str, size: int, *, limit: int) -> bytes:
        """A small blob (an image config) whole, size and digest verified."""
        ...

    async def mount_blob(
        self, host: str, repository: str, digest: str, from_repository: str
    ) -> UploadSession | None:
        """Link a blob from another repository of the same host: None when mounted, else an
        upload session to send it in (a registry that cannot mount opens one instead)."""
        ...

    def open_blob(
        self, host: str, repository: str, digest: str, *, offset: int = 0, size: int | None = None
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """A blob's body to stream (from ``offset``); not retried: its reader resumes it."""
        ...

    async def list_tags(self, ref: Reference) -> list[str]:
        """Every tag of ``ref``'s repository, in the registry's order."""
        ...

    async def start_upload(self, host: str, repository: str) -> UploadSession:
        """Open an upload session; not retried: it is the first step of an upload attempt,
        which its caller retries whole."""
        ...

    async def upload_blob(
        self,
        session: UploadSession,
        digest: str,
        size: int,
        chunks: AsyncIterator[bytes],
        progress: Callable[[int], None] | None = None,
        *,
        chunked: bool | None = None,
    ) -> None:
        """Stream ``chunks`` into ``session``, size and digest checked before the upload completes.

        ``chunked``: PATCH chunks (True), one PUT (False), or (None) whichever the host is
        known to take. Not retried: a stream cannot be replayed, its caller reopens it.
        """
        ...
