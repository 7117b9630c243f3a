"""Tar framing for archives written as a stream: headers from descriptor sizes.

Pure: builds bytes only. A member's header needs its size before its data, and
a descriptor carries that size, so a blob can stream from a registry straight
into the archive without being spooled to disk first.
"""

from __future__ import annotations

import tarfile

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
_MTIME = 0
"""Fixed timestamps: the same image written twice gives the same archive bytes."""


def file_header(name: str, size: int) -> bytes:
    """The header block(s) of a regular file member (PAX for names over 100 bytes)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = _MTIME
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def dir_header(name: str) -> bytes:
    """The header of a directory member (``name`` without the trailing slash)."""
    info = tarfile.TarInfo(name.rstrip("/") + "/")
    info.mode = 0o755
    info.mtime = _MTIME
    info.type = tarfile.DIRTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def padding(size: int) -> bytes:
    """Zero bytes that fill a member of ``size`` bytes up to the next 512-byte block."""
    return b"\0" * (-size % BLOCK)


def member(name: str, data: bytes) -> bytes:
    """A whole small member: header, data and padding."""
    return file_header(name, len(data)) + data + padding(len(data))
