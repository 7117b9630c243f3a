"""Read-only access to the files of a layout, in a directory or inside a tar archive.

Every name asked for is a relative path built by :mod:`names`; a file is only
opened if it lies inside the layout (no symlink out of a directory, no ``..``
or outside-pointing link in a tar). A tar is indexed once by scanning its
headers, so members are then read by offset without extracting anything.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from docker_transfer.errors import LayoutError
from docker_transfer.layout.names import safe_member

CHUNK = 1024 * 1024


class LayoutFiles(Protocol):
    """The files of a layout, by relative name."""

    where: str
    sequential: bool
    """True for a one-pass stream: blobs must be read in archive order, one at a time."""

    def size(self, name: str) -> int | None:
        """Size in bytes of ``name``, or ``None`` when absent."""

    def chunks(self, name: str) -> Iterator[bytes]:
        """The bytes of ``name`` in chunks of at most 1 MiB."""

    def close(self) -> None:
        """Release open files."""


def read_all(files: LayoutFiles, name: str, limit: int) -> bytes:
    """The whole of a small file; :class:`LayoutError` when absent or larger than ``limit``."""
    size = files.size(name)
    if size is None:
        raise LayoutError(f"{files.where}: {name} is missing", path=files.where)
    if size > limit:
        raise LayoutError(
            f"{files.where}: {name} is {size} bytes, over the {limit}-byte limit", path=files.where
        )
    return b"".join(files.chunks(name))


class DirectoryFiles:
    """A layout directory on disk."""

    sequential = False

    def __init__(self, root: str) -> None:
        self.where = root
        self.root = Path(root)
        if not self.root.is_dir():
            raise LayoutError(f"{root}: not a directory (an OCI layout is a directory)", path=root)
        self._real = self.root.resolve()

    def _path(self, name: str) -> Path | None:
        path = self.root / safe_member(name)
        if not path.exists() and not path.is_symlink():
            return None
        real = path.resolve()
        if not real.is_relative_to(self._real):
            raise LayoutError(f"{self.where}: {name} is a link to outside the layout", path=self.where)
        if not real.is_file():
            raise LayoutError(f"{self.where}: {name} is not a regular file", path=self.where)
        return real

    def size(self, name: str) -> int | None:
        """Size of ``name``, ``None`` when absent."""
        path = self._path(name)
        return None if path is None else path.stat().st_size

    def chunks(self, name: str) -> Iterator[bytes]:
        """Read ``name`` in chunks."""
        path = self._path(name)
        if path is None:
            raise LayoutError(f"{self.where}: {name} is missing", path=self.where)
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def close(self) -> None:
        """Nothing stays open between reads."""


@dataclass(frozen=True)
class _Member:
    offset: int
    size: int


class TarFiles:
    """The members of a seekable tar file, indexed by a scan of its headers."""

    sequential = False

    def __init__(self, path: str) -> None:
        self.where = path
        try:
            self._handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise LayoutError(f"{path}: cannot open the archive: {exc.strerror or exc}", path=path) from None
        try:
            self._members = self._scan()
        except BaseException:
            self._handle.close()
            raise

    def _scan(self) -> dict[str, _Member]:
        total = os.fstat(self._handle.fileno()).st_size
        members: dict[str, _Member] = {}
        links: dict[str, str] = {}
        try:
            with tarfile.open(fileobj=self._handle, mode="r:") as archive:
                for info in archive:
                    name = safe_member(info.name)
                    if info.isfile():
                        if info.offset_data + info.size > total:
                            raise LayoutError(
                                f"{self.where}: truncated archive ({name} ends past the end of the file)",
                                path=self.where,
                            )
                        members[name] = _Member(info.offset_data, info.size)
                    elif info.issym() or info.islnk():
                        links[name] = self._link_target(name, info)
                    elif not info.isdir():
                        raise LayoutError(
                            f"{self.where}: member {name} is a device, FIFO or other special file",
                            path=self.where,
                        )
        except tarfile.TarError as exc:
            raise LayoutError(f"{self.where}: not a readable tar archive ({exc})", path=self.where) from None
        except EOFError:
            raise LayoutError(f"{self.where}: truncated archive", path=self.where) from None
        for name, target in links.items():
            if target in members:
                members[name] = members[target]
        return members

    def _link_target(self, name: str, info: tarfile.TarInfo) -> str:
        # A hard link names a member from the archive root; a symlink is relative to its directory.
        raw = info.linkname if info.islnk() else posixpath.join(posixpath.dirname(name), info.linkname)
        if info.linkname.startswith("/") or posixpath.normpath(raw).startswith(".."):
            raise LayoutError(
                f"{self.where}: member {name} links to {info.linkname!r}, outside the archive",
                path=self.where,
            )
        return safe_member(posixpath.normpath(raw))

    def size(self, name: str) -> int | None:
        """Size of member ``name``, ``None`` when absent."""
        found = self._members.get(name)
        return None if found is None else found.size

    def chunks(self, name: str) -> Iterator[bytes]:
        """Read member ``name`` by offset."""
        found = self._members.get(name)
        if found is None:
            raise LayoutError(f"{self.where}: {name} is missing from the archive", path=self.where)
        position, left = found.offset, found.size
        while left:
            # Concurrent readers share the handle: seek before every read.
            self._handle.seek(position)
            chunk = self._handle.read(min(CHUNK, left))
            if not chunk:
                raise LayoutError(f"{self.where}: truncated archive (inside {name})", path=self.where)
            position += len(chunk)
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        """Close the archive file."""
        self._handle.close()
