"""Where an image lives, as a user types it, and the file names inside a layout.

Pure: no I/O. ``oci:DIR[:REF]``, ``oci-archive:FILE[:REF]`` and
``docker-archive:FILE[:REPO:TAG]`` are spelled as skopeo spells them; anything
else (``docker://`` or a bare name) is a registry reference.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Literal

from docker_transfer.errors import InvalidReferenceError, LayoutError
from docker_transfer.manifest import DIGEST_RE
from docker_transfer.reference import Reference, parse_reference

Transport = Literal["docker", "oci", "oci-archive", "docker-archive"]

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
"""The annotation that names (tags) a manifest in a layout's ``index.json``."""

OCI_LAYOUT_FILE = "oci-layout"
OCI_LAYOUT_CONTENT = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_FILE = "index.json"
DOCKER_MANIFEST_FILE = "manifest.json"
DOCKER_REPOSITORIES_FILE = "repositories"
STDIO = "-"
"""The file name that means stdout (destination) or stdin (source)."""

# The OCI image-spec grammar of org.opencontainers.image.ref.name.
_REF_NAME_RE = re.compile(
    r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*"
)
_PREFIXES: tuple[tuple[str, Transport], ...] = (
    ("oci-archive:", "oci-archive"),
    ("docker-archive:", "docker-archive"),
    ("oci:", "oci"),
)


@dataclass(frozen=True)
class Location:
    """A parsed source or destination: a registry reference or a local layout/archive."""

    transport: Transport
    reference: Reference | None = None
    """The registry reference (``docker`` only)."""
    path: str = ""
    """The directory or archive file (``-`` for stdin/stdout)."""
    ref_name: str | None = None
    """``oci``/``oci-archive``: the ``ref.name`` to read or write (``None``: the only one / none)."""
    repo_tag: Reference | None = None
    """``docker-archive``: the ``REPO:TAG`` written into ``manifest.json`` or looked up in it."""

    @property
    def is_registry(self) -> bool:
        """True for a ``docker://`` (registry) location."""
        return self.transport == "docker"

    @property
    def is_stdio(self) -> bool:
        """True when the archive is stdin or stdout."""
        return self.path == STDIO

    def __str__(self) -> str:
        if self.reference is not None:
            return str(self.reference)
        suffix = self.ref_name or (str(self.repo_tag) if self.repo_tag else "")
        return f"{self.transport}:{self.path}" + (f":{suffix}" if suffix else "")


def parse_location(text: str, *, default_tag: str | None = "latest") -> Location:
    """Parse a transport-prefixed location; anything without a layout prefix is a registry reference.

    Raises :class:`InvalidReferenceError` for a bad path, ref name or ``REPO:TAG``.
    """
    for prefix, transport in _PREFIXES:
        if text.lower().startswith(prefix):
            rest = text[len(prefix) :]
            # "oci:5000/x" is a registry called oci on port 5000, as reference.py also decides.
            if re.match(r"[0-9]+/", rest) and transport == "oci":
                break
            return _local(text, transport, rest)
    return Location("docker", reference=parse_reference(text, default_tag=default_tag))


def _local(text: str, transport: Transport, rest: str) -> Location:
    # Like skopeo: the path ends at the first colon, so a path cannot hold one.
    path, colon, name = rest.partition(":")
    if not path:
        raise InvalidReferenceError(text, f"'{transport}:' needs a path")
    if "\x00" in path:
        raise InvalidReferenceError(text, "the path contains a NUL byte")
    if colon and not name:
        raise InvalidReferenceError(text, "the name after the path is empty")
    if transport == "docker-archive":
        repo_tag = parse_reference(name, default_tag="latest") if name else None
        if repo_tag is not None and repo_tag.digest:
            raise InvalidReferenceError(text, "a docker-archive name is REPO:TAG, not a digest")
        return Location(transport, path=path, repo_tag=repo_tag)
    if name and not is_ref_name(name):
        raise InvalidReferenceError(
            text, f"{name!r} is not a valid image name inside a layout (org.opencontainers.image.ref.name)"
        )
    if transport == "oci" and path == STDIO:
        raise InvalidReferenceError(text, "'-' (stdin/stdout) needs an archive: use oci-archive:-")
    return Location(transport, path=path, ref_name=name or None)


def is_ref_name(name: str) -> bool:
    """True if ``name`` follows the OCI grammar of ``org.opencontainers.image.ref.name``."""
    return _REF_NAME_RE.fullmatch(name) is not None


def sync_ref_name(target: str, tag: str) -> str:
    """The ``ref.name`` of one sync entry's tag inside a shared layout: ``target:tag``."""
    return f"{target}:{tag}"


def blob_path(digest: str) -> str:
    """``blobs/<algorithm>/<hex>``: where a layout stores the blob with ``digest``.

    Raises :class:`LayoutError` for anything that is not a canonical digest, so a
    descriptor can never name a path outside ``blobs/``.
    """
    if not DIGEST_RE.fullmatch(digest):
        raise LayoutError(f"invalid digest {digest!r} in a layout descriptor")
    algorithm, _, hexpart = digest.partition(":")
    return f"blobs/{algorithm}/{hexpart}"


def safe_member(name: str) -> str:
    """A tar member name normalised to a relative path, or :class:`LayoutError` if it could escape.

    Absolute names, ``..`` components and NUL bytes are refused.
    """
    if "\x00" in name or not name:
        raise LayoutError(f"archive member {name!r} has an invalid name")
    # Backslashes count as separators: an archive made on Windows may use them.
    slashed = name.replace("\\", "/")
    if slashed.startswith("/") or re.match(r"[A-Za-z]:/", slashed):
        raise LayoutError(f"archive member {name!r} is an absolute path")
    parts = slashed.split("/")
    if ".." in parts:
        raise LayoutError(f"archive member {name!r} points outside the archive ('..')")
    normal = posixpath.normpath("/".join(parts))
    return "" if normal == "." else normal
