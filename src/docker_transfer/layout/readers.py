"""Images read from an OCI layout (directory or ``oci-archive``) or a ``docker-archive``.

Both readers hand out manifests verified against their digests and blob
streams the writer verifies while copying; nothing is extracted to disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from docker_transfer.errors import DockerTransferError, LayoutError
from docker_transfer.layout.files import LayoutFiles, read_all
from docker_transfer.layout.names import (
    DOCKER_MANIFEST_FILE,
    INDEX_FILE,
    REF_NAME_ANNOTATION,
    blob_path,
    safe_member,
)
from docker_transfer.manifest import (
    DOCKER_MANIFEST_V2,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    Manifest,
    parse_manifest,
    sha256_digest,
)
from docker_transfer.reference import Reference, parse_reference

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"


async def async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Local file chunks as an async stream, yielding to the event loop between chunks."""
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(0)


def read_index(files: LayoutFiles) -> Manifest:
    """The layout's ``index.json``, parsed as an OCI index."""
    if files.size(INDEX_FILE) is None:
        raise LayoutError(f"{files.where}: not an OCI layout (no index.json)", path=files.where)
    data = read_all(files, INDEX_FILE, MAX_MANIFEST_BYTES)
    try:
        return parse_manifest(data, OCI_INDEX)
    except DockerTransferError as exc:
        raise LayoutError(f"{files.where}: index.json is invalid: {exc}", path=files.where) from None


def find_entry(index: Manifest, name: str | None, where: str) -> Descriptor:
    """The index entry named ``name`` (a ref name or a digest); the only entry when ``name`` is None."""
    entries = index.manifests
    if name is None:
        if len(entries) == 1:
            return entries[0]
        names = sorted({e.annotations.get(REF_NAME_ANNOTATION, e.digest) for e in entries})
        raise LayoutError(
            f"{where}: holds {len(entries)} images; name one of: {', '.join(names) or 'none'}", path=where
        )
    for entry in reversed(entries):
        if entry.annotations.get(REF_NAME_ANNOTATION) == name or entry.digest == name:
            return entry
    raise LayoutError(f"{where}: no image named {name!r} in index.json", path=where)


class OciReader:
    """An image source over an OCI layout's files."""

    def __init__(self, files: LayoutFiles, ref_name: str | None) -> None:
        self.files = files
        self.ref_name = ref_name
        self.name = files.where
        self.sequential = files.sequential
        self._index: Manifest | None = None

    def index(self) -> Manifest:
        """The parsed ``index.json`` (read once)."""
        if self._index is None:
            self._index = read_index(self.files)
        return self._index

    def entry(self, name: str | None = None) -> Descriptor:
        """The index entry for ``name`` (default: the location's ref name)."""
        return find_entry(self.index(), name if name is not None else self.ref_name, self.name)

    async def top(self) -> Manifest:
        """The manifest the location names."""
        entry = self.entry()
        return await self.manifest(entry.digest, entry.media_type)

    async def manifest(self, digest: str, media_type: str | None = None) -> Manifest:
        """A manifest blob, verified against ``digest``."""
        data = read_all(self.files, blob_path(digest), MAX_MANIFEST_BYTES)
        return parse_manifest(data, media_type, expected_digest=digest)

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        """The raw bytes of a blob (the writer verifies them)."""
        if self.files.size(blob_path(desc.digest)) is None:
            raise LayoutError(f"{self.name}: blob {desc.digest} is missing", path=self.name)
        return async_chunks(self.files.chunks(blob_path(desc.digest)))

    async def read_blob(self, desc: Descriptor, limit: int) -> bytes:
        """A small blob (an image config), verified."""
        data = read_all(self.files, blob_path(desc.digest), limit)
        _verify(data, desc, self.name)
        return data

    async def close(self) -> None:
        """Close the underlying files."""
        self.files.close()


def _verify(data: bytes, desc: Descriptor, where: str) -> None:
    if len(data) != desc.size or sha256_digest(data) != desc.digest:
        raise LayoutError(f"{where}: blob {desc.digest} does not match its digest or size", path=where)


def _file_digest(files: LayoutFiles, name: str) -> tuple[str, int, bytes]:
    """sha256, size and first bytes of a member (one read pass)."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    for chunk in files.chunks(name):
        if not head:
            head = chunk[:4]
        digest.update(chunk)
        size += len(chunk)
    return "sha256:" + digest.hexdigest(), size, head


def _layer_type(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return DOCKER_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return DOCKER_LAYER_ZSTD
    return DOCKER_LAYER


class DockerArchiveReader:
    """An image source over a ``docker save`` archive (``manifest.json``, config, layer files).

    The image manifest is rebuilt from ``manifest.json``: the config and each
    layer file are hashed as they are. When the archive also holds an OCI
    ``index.json`` naming a manifest with that config (Docker 25 and later,
    and docker-transfer itself), that original manifest is used instead, so
    the digest survives a round trip.
    """

    def __init__(self, files: LayoutFiles, repo_tag: Reference | None) -> None:
        self.files = files
        self.repo_tag = repo_tag
        self.name = files.where
        self.sequential = files.sequential
        self._blobs: dict[str, str] = {}

    def _entry(self) -> dict[str, Any]:
        if self.files.size(DOCKER_MANIFEST_FILE) is None:
            raise LayoutError(f"{self.name}: not a docker archive (no manifest.json)", path=self.name)
        try:
            doc = json.loads(read_all(self.files, DOCKER_MANIFEST_FILE, MAX_MANIFEST_BYTES))
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            raise LayoutError(f"{self.name}: manifest.json is not JSON", path=self.name) from None
        if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc) or not doc:
            raise LayoutError(f"{self.name}: manifest.json is not a list of images", path=self.name)
        if self.repo_tag is None:
            if len(doc) != 1:
                raise LayoutError(f"{self.name}: holds {len(doc)} images; name one as FILE:REPO:TAG")
            return dict(doc[0])
        for entry in doc:
            for text in entry.get("RepoTags") or []:
                if isinstance(text, str) and _same(text, self.repo_tag):
                    return dict(entry)
        raise LayoutError(f"{self.name}: no image tagged {self.repo_tag} in manifest.json", path=self.name)

    async def top(self) -> Manifest:
        """The image manifest: the archive's own when it has one, else rebuilt from manifest.json."""
        entry = self._entry()
        config_name = entry.get("Config")
        layers = entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layers, list):
            raise LayoutError(f"{self.name}: manifest.json entry lacks Config or Layers", path=self.name)
        config_name = safe_member(config_name)
        config = read_all(self.files, config_name, 8 * 1024 * 1024)
        config_digest = sha256_digest(config)
        self._blobs[config_digest] = config_name
        original = self._original(config_digest)
        if original is not None:
            return original
        descs: list[dict[str, Any]] = []
        for layer in layers:
            if not isinstance(layer, str):
                raise LayoutError(f"{self.name}: manifest.json lists a layer that is not a path")
            member = safe_member(layer)
            digest, size, head = _file_digest(self.files, member)
            self._blobs[digest] = member
            descs.append({"mediaType": _layer_type(head), "size": size, "digest": digest})
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_V2,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": config_digest},
            "layers": descs,
        }
        data = json.dumps(doc, separators=(",", ":")).encode()
        return parse_manifest(data, DOCKER_MANIFEST_V2)

    def _original(self, config_digest: str) -> Manifest | None:
        if self.files.size(INDEX_FILE) is None:
            return None
        reader = OciReader(self.files, None)
        for entry in reader.index().manifests:
            try:
                data = read_all(self.files, blob_path(entry.digest), MAX_MANIFEST_BYTES)
                manifest = parse_manifest(data, entry.media_type, expected_digest=entry.digest)
            except DockerTransferError:
                continue
            if not manifest.is_index and manifest.config and manifest.config.digest == config_digest:
                return manifest
        return None

    async def manifest(self, digest: str, media_type: str | None = None) -> Manifest:
        """Child manifests do not exist in a single-image archive."""
        raise LayoutError(f"{self.name}: a docker archive holds no manifest {digest}", path=self.name)

    def _member(self, desc: Descriptor) -> str:
        member = self._blobs.get(desc.digest)
        if member is None:
            member = blob_path(desc.digest)
        if self.files.size(member) is None:
            raise LayoutError(f"{self.name}: blob {desc.digest} is missing", path=self.name)
        return member

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        """The raw bytes of a config or layer file (the writer verifies them)."""
        return async_chunks(self.files.chunks(self._member(desc)))

    async def read_blob(self, desc: Descriptor, limit: int) -> bytes:
        """The config, verified."""
        data = read_all(self.files, self._member(desc), limit)
        _verify(data, desc, self.name)
        return data

    async def close(self) -> None:
        """Close the archive."""
        self.files.close()


def _same(text: str, wanted: Reference) -> bool:
    try:
        return parse_reference(text) == wanted
    except DockerTransferError:
        return False
