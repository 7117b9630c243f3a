"""Images written into an OCI layout directory or streamed into a tar archive.

Every blob passes through :class:`VerifiedStream` on its way in. In a
directory it lands in a temporary file renamed into place only once its
sha256 and size match, and ``index.json`` is replaced last, atomically, so an
interrupted run leaves the previous index valid. An archive is written as a
stream (member sizes come from the descriptors) into a temporary file renamed
at the end, or to stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal

from docker_transfer.errors import LayoutError
from docker_transfer.layout import tarfmt
from docker_transfer.layout.files import DirectoryFiles
from docker_transfer.layout.names import (
    DOCKER_MANIFEST_FILE,
    DOCKER_REPOSITORIES_FILE,
    INDEX_FILE,
    OCI_LAYOUT_CONTENT,
    OCI_LAYOUT_FILE,
    REF_NAME_ANNOTATION,
    STDIO,
    blob_path,
)
from docker_transfer.layout.readers import read_index
from docker_transfer.manifest import OCI_INDEX, Manifest
from docker_transfer.reference import DOCKER_HUB, Reference
from docker_transfer.registry.upload import VerifiedStream

ProgressHook = Callable[[int], None]
Opener = Callable[[], AsyncIterator[bytes]]


def _index_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _entry(digest: str, size: int, media_type: str, ref_name: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if ref_name is not None:
        entry["annotations"] = {REF_NAME_ANNOTATION: ref_name}
    return entry


class IndexEdits:
    """Entries of an ``index.json``: the old ones, with names re-pointed by this run."""

    def __init__(self, old: Manifest | None) -> None:
        self.doc: dict[str, Any] = dict(old.doc) if old else {"schemaVersion": 2, "mediaType": OCI_INDEX}
        self.entries: list[dict[str, Any]] = [dict(d.raw) for d in old.manifests] if old else []
        self._old = list(self.entries) if old else None

    def changed(self) -> bool:
        """True when the entries differ from the index read at the start (or there was none)."""
        return self._old != self.entries

    def lookup(self, ref_name: str) -> str | None:
        """The digest ``ref_name`` points at now."""
        for entry in reversed(self.entries):
            if (entry.get("annotations") or {}).get(REF_NAME_ANNOTATION) == ref_name:
                return str(entry["digest"])
        return None

    def set(self, ref_name: str | None, digest: str, size: int, media_type: str) -> None:
        """Point ``ref_name`` at the manifest (or add an unnamed entry once)."""
        if ref_name is None:
            if not any(e.get("digest") == digest and not e.get("annotations") for e in self.entries):
                self.entries.append(_entry(digest, size, media_type, None))
            return
        self.entries = [
            e for e in self.entries if (e.get("annotations") or {}).get(REF_NAME_ANNOTATION) != ref_name
        ]
        self.entries.append(_entry(digest, size, media_type, ref_name))

    def render(self) -> bytes:
        """The new ``index.json`` bytes."""
        doc = dict(self.doc)
        doc.setdefault("mediaType", OCI_INDEX)
        doc["manifests"] = self.entries
        return _index_bytes(doc)


class OciDirWriter:
    """An image destination writing into an OCI layout directory, incrementally and atomically."""

    concurrency = 8
    single_image = False
    metadata_first = False

    def __init__(self, root: str) -> None:
        self.name = root
        self.root = Path(root)
        self._created = not self.root.exists()
        self._written: list[Path] = []
        old: Manifest | None = None
        if self._created:
            pass  # made by the first write, so a dry run or a refused copy leaves no trace
        elif not self.root.is_dir():
            raise LayoutError(f"{root}: exists and is not a directory", path=root)
        elif (self.root / INDEX_FILE).exists():
            old = read_index(DirectoryFiles(root))
        elif any(self.root.iterdir()):
            raise LayoutError(
                f"{root}: not empty and not an OCI layout; refusing to write into it", path=root
            )
        self.index = IndexEdits(old)
        self._real = self.root.resolve()

    def _make_root(self) -> None:
        if self._created and not self.root.exists():
            self.root.mkdir(parents=True)

    def _path(self, digest: str) -> Path:
        path = self.root / blob_path(digest)
        if path.is_symlink() or not path.parent.resolve().is_relative_to(self._real):
            raise LayoutError(f"{self.name}: {blob_path(digest)} would be written outside the layout")
        return path

    async def has_blob(self, digest: str, size: int) -> bool:
        """True when the blob is stored with the expected size (it was verified when written)."""
        path = self._path(digest)
        return path.is_file() and path.stat().st_size == size

    async def put_blob(self, digest: str, size: int, chunks: Opener, progress: ProgressHook | None) -> None:
        """Stream a blob into a temporary file; rename it into place once verified."""
        path = self._path(digest)
        self._make_root()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name[:16]}-{secrets.token_hex(4)}")
        try:
            with tmp.open("wb") as out:
                async for chunk in VerifiedStream(chunks(), digest, size, progress):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._written.append(path)

    async def put_manifest(self, digest: str, data: bytes, media_type: str) -> None:
        """Store a manifest blob."""
        if not await self.has_blob(digest, len(data)):
            await self.put_blob(digest, len(data), lambda: _once(data), None)

    async def tag(self, ref_name: str | None, manifest: Manifest) -> None:
        """Name ``manifest`` in the index (written by :meth:`commit`)."""
        self.index.set(ref_name, manifest.digest, len(manifest.data), manifest.media_type)

    async def commit(self) -> None:
        """Write ``oci-layout`` if missing, then replace ``index.json`` atomically, last (if it changed)."""
        self._make_root()
        layout = self.root / OCI_LAYOUT_FILE
        if not layout.exists():
            _atomic_write(layout, OCI_LAYOUT_CONTENT)
        index = self.root / INDEX_FILE
        if self.index.changed() or not index.exists():
            _atomic_write(index, self.index.render())

    async def abort(self) -> None:
        """Remove what this run wrote (the whole directory if this run created it)."""
        if self._created:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        for path in self._written:
            path.unlink(missing_ok=True)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def familiar(ref: Reference) -> str:
    """``REPO:TAG`` as ``docker save`` writes it (``busybox:1``, ``example.com/app:2``)."""
    name = ref.name
    if ref.registry == DOCKER_HUB:
        name = ref.repository.removeprefix("library/")
    return f"{name}:{ref.tag or 'latest'}"


class ArchiveWriter:
    """An image destination streaming an ``oci-archive`` or ``docker-archive`` tar."""

    concurrency = 1
    """Members follow one another in a tar: blobs are written one at a time."""
    metadata_first = True
    """Manifests, ``index.json`` and ``manifest.json`` precede the blobs, so a pipe reads it in one pass."""

    def __init__(
        self, path: str, kind: Literal["oci-archive", "docker-archive"], repo_tag: Reference | None = None
    ) -> None:
        self.name = path
        self.kind = kind
        self.single_image = kind == "docker-archive"
        self.repo_tag = repo_tag
        self.index = IndexEdits(None)
        self._written: set[str] = set()
        self._tagged: list[Manifest] = []
        self._tmp: Path | None = None
        self._meta_written = False
        self._out: BinaryIO
        if path == STDIO:
            self._out = sys.stdout.buffer
        else:
            target = Path(path)
            if target.is_dir():
                raise LayoutError(f"{path}: is a directory; an archive is a file", path=path)
            self._tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
            try:
                self._out = self._tmp.open("wb")
            except OSError as exc:
                raise LayoutError(f"{path}: cannot write: {exc.strerror or exc}", path=path) from None
        self._out.write(tarfmt.member(OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT))
        self._out.write(tarfmt.dir_header("blobs") + tarfmt.dir_header("blobs/sha256"))

    async def has_blob(self, digest: str, size: int) -> bool:
        """True when this archive already holds the blob."""
        return digest in self._written

    async def put_blob(self, digest: str, size: int, chunks: Opener, progress: ProgressHook | None) -> None:
        """Write one member: header (size from the descriptor), verified bytes, padding."""
        self._write_meta()
        self._out.write(tarfmt.file_header(blob_path(digest), size))
        async for chunk in VerifiedStream(chunks(), digest, size, progress):
            self._out.write(chunk)
        self._out.write(tarfmt.padding(size))
        self._written.add(digest)

    async def put_manifest(self, digest: str, data: bytes, media_type: str) -> None:
        """Write a manifest blob once."""
        if digest not in self._written:
            self._out.write(tarfmt.member(blob_path(digest), data))
            self._written.add(digest)

    async def tag(self, ref_name: str | None, manifest: Manifest) -> None:
        """Name ``manifest`` in the archive's index (and ``manifest.json`` for docker-archive)."""
        if self.kind == "docker-archive" and self.repo_tag is not None:
            # podman loads such an archive through index.json: the name there must be REPO:TAG.
            ref_name = familiar(self.repo_tag)
        self.index.set(ref_name, manifest.digest, len(manifest.data), manifest.media_type)
        self._tagged.append(manifest)

    async def commit(self) -> None:
        """End the archive and move it into place."""
        self._write_meta()
        self._out.write(tarfmt.END_OF_ARCHIVE)
        self._out.flush()
        if self._tmp is not None:
            os.fsync(self._out.fileno())
            self._out.close()
            self._tmp.replace(self.name)

    def _write_meta(self) -> None:
        """``index.json`` (and Docker's files) once, after the manifests and before the first blob."""
        if self._meta_written:
            return
        self._meta_written = True
        self._out.write(tarfmt.member(INDEX_FILE, self.index.render()))
        if self.kind == "docker-archive":
            for name, data in self._docker_files():
                self._out.write(tarfmt.member(name, data))

    def _docker_files(self) -> list[tuple[str, bytes]]:
        image = self._tagged[-1]
        assert image.config is not None  # the engine hands docker-archive an image manifest only
        repo_tags = [familiar(self.repo_tag)] if self.repo_tag else []
        manifest = [
            {
                "Config": blob_path(image.config.digest),
                "RepoTags": repo_tags,
                "Layers": [blob_path(layer.digest) for layer in image.layers],
            }
        ]
        files = [(DOCKER_MANIFEST_FILE, json.dumps(manifest, separators=(",", ":")).encode("utf-8"))]
        if self.repo_tag is not None and image.layers:
            repo, _, tag = familiar(self.repo_tag).rpartition(":")
            top = image.layers[-1].digest.partition(":")[2]
            files.append((DOCKER_REPOSITORIES_FILE, _index_bytes({repo: {tag: top}})))
        return files

    async def abort(self) -> None:
        """Drop the temporary file; on stdout the archive simply stays unterminated."""
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._out.close()
            self._tmp.unlink(missing_ok=True)
        else:
            self._out.flush()
