"""Reading an archive from a pipe in one forward pass, when its order allows it.

docker-transfer writes archives metadata first: ``oci-layout``, the manifests,
``index.json`` (and ``manifest.json``) before any layer, and the blobs in the
order a reader asks for them. Read from stdin, such an archive is consumed
exactly once: the small members at its head are kept in memory (bounded),
then each blob streams from the pipe straight into the destination when asked
for. An archive whose index comes after its blobs (as skopeo writes them)
cannot be read that way; it is refused with a hint to save it to a file.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from docker_transfer.errors import LayoutError
from docker_transfer.layout.files import CHUNK
from docker_transfer.layout.names import DOCKER_MANIFEST_FILE, INDEX_FILE, safe_member
from docker_transfer.manifest import MAX_MANIFEST_BYTES

HEAD_LIMIT = 64 * 1024 * 1024
"""At most this many bytes of small members are kept from the head of the stream."""
_RANDOM_ACCESS = (
    "save it to a file and read that (only archives written by docker-transfer stream from stdin)"
)


class StreamFiles:
    """The members of a tar read once, front to back, from a non-seekable stream."""

    sequential = True
    """Blobs must be asked for in archive order, one at a time."""

    def __init__(self, stream: BinaryIO, where: str = "stdin") -> None:
        self.where = where
        self._kept: dict[str, bytes] = {}
        self._passed: set[str] = set()
        self._current: tarfile.TarInfo | None = None
        self._ended = False
        try:
            self._tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed by close()
        except tarfile.TarError as exc:
            raise LayoutError(f"{where}: not a readable tar archive ({exc})", path=where) from None
        self._read_head()
        if INDEX_FILE not in self._kept and DOCKER_MANIFEST_FILE not in self._kept:
            raise LayoutError(
                f"{where}: the archive's index does not come before its blobs, so it needs random access; "
                + _RANDOM_ACCESS,
                path=where,
            )

    def _next(self) -> tarfile.TarInfo | None:
        try:
            while True:
                info = self._tar.next()
                if info is None:
                    self._ended = True
                    return None
                name = safe_member(info.name)
                if info.isfile():
                    return info
                if info.issym() or info.islnk():
                    self._link(name, info)
                elif not info.isdir():
                    raise LayoutError(f"{self.where}: member {name} is a special file", path=self.where)
        except tarfile.TarError as exc:
            raise LayoutError(
                f"{self.where}: truncated or damaged archive ({exc})", path=self.where
            ) from None

    def _link(self, name: str, info: tarfile.TarInfo) -> None:
        raw = info.linkname if info.islnk() else posixpath.join(posixpath.dirname(name), info.linkname)
        if info.linkname.startswith("/") or posixpath.normpath(raw).startswith(".."):
            raise LayoutError(
                f"{self.where}: member {name} links to {info.linkname!r}, outside the archive",
                path=self.where,
            )
        target = safe_member(posixpath.normpath(raw))
        if target in self._kept:
            self._kept[name] = self._kept[target]

    def _read(self, info: tarfile.TarInfo) -> bytes:
        return b"".join(self._member_chunks(info))

    def _read_head(self) -> None:
        total = 0
        while (info := self._next()) is not None:
            if info.size > MAX_MANIFEST_BYTES or total + info.size > HEAD_LIMIT:
                self._current = info
                return
            self._kept[safe_member(info.name)] = self._read(info)
            total += info.size

    def _member_chunks(self, info: tarfile.TarInfo) -> Iterator[bytes]:
        handle = self._tar.extractfile(info)
        if handle is None:
            raise LayoutError(f"{self.where}: member {info.name} has no data", path=self.where)
        left = info.size
        try:
            while left:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    raise LayoutError(
                        f"{self.where}: truncated archive (inside {info.name})", path=self.where
                    )
                left -= len(chunk)
                yield chunk
        except tarfile.TarError as exc:
            raise LayoutError(f"{self.where}: truncated archive ({exc})", path=self.where) from None

    def _seek(self, name: str) -> tarfile.TarInfo | None:
        """Move forward to member ``name``, passing (and dropping) the members before it."""
        while True:
            if self._current is not None:
                if safe_member(self._current.name) == name:
                    return self._current
                self._passed.add(safe_member(self._current.name))
                self._current = None
            if name in self._passed:
                raise LayoutError(
                    f"{self.where}: {name} was needed after the stream had passed it; " + _RANDOM_ACCESS,
                    path=self.where,
                )
            if self._ended:
                return None
            self._current = self._next()

    def size(self, name: str) -> int | None:
        """Size of ``name``: kept at the head, or found further down the stream."""
        if name in self._kept:
            return len(self._kept[name])
        found = self._seek(name)
        return None if found is None else found.size

    def chunks(self, name: str) -> Iterator[bytes]:
        """The bytes of ``name``; a streamed member can be read once."""
        if name in self._kept:
            yield self._kept[name]
            return
        found = self._seek(name)
        if found is None:
            raise LayoutError(f"{self.where}: {name} is missing from the archive", path=self.where)
        self._current = None
        self._passed.add(name)
        yield from self._member_chunks(found)

    def close(self) -> None:
        """Stop reading (the rest of the stream is left unread)."""
        self._tar.close()
