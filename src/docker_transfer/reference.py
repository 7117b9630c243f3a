"""Image references: parse, validate and normalise them the way Docker does.

``nginx`` becomes ``docker.io/library/nginx:latest``; every Docker Hub alias
collapses to ``docker.io``; tags, digests and repository names are checked
against the Distribution grammar before any registry is contacted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from docker_transfer.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
"""Canonical registry name for Docker Hub."""

DOCKER_HUB_API_HOST = "registry-1.docker.io"
"""Host that actually serves the Distribution API for Docker Hub."""

DOCKER_HUB_ALIASES = frozenset(
    {DOCKER_HUB, "index.docker.io", DOCKER_HUB_API_HOST, "registry.hub.docker.com"}
)
"""Registry names that all mean Docker Hub."""

TAG_RE: re.Pattern[str] = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
"""Tag grammar; use with ``fullmatch``."""

DIGEST_RE: re.Pattern[str] = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
"""Digests we accept; use with ``fullmatch``."""

MAX_NAME_LENGTH = 255

_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_REGISTRY_RE = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]+)(?::(?P<port>[0-9]+))?")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
# skopeo/containers-image transports that name something other than a registry.
_OTHER_TRANSPORTS = frozenset(
    {"oci", "oci-archive", "docker-archive", "docker-daemon", "containers-storage", "dir", "tarball", "sif"}
)
_HUB_WEB = "hub.docker.com/"


@dataclass(frozen=True)
class Reference:
    """A normalised image reference.

    ``registry`` is ``docker.io`` for every Docker Hub alias, otherwise the
    lowercased ``host[:port]``. Build instances with :func:`parse_reference`;
    the constructor validates each field but does not normalise.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        text = self._render()
        _check_registry(self.registry, text)
        _check_repository(self.repository, text)
        _check_length(self.registry, self.repository, text)
        if self.tag is not None:
            _check_tag(self.tag, text)
        if self.digest is not None:
            _check_digest(self.digest, text)

    @property
    def api_host(self) -> str:
        """Host to send Distribution API requests to."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest if set, else the tag, else ``latest``."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> Reference:
        """Same image name with ``tag``; any digest is dropped because it pinned the old tag."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        """Same name pinned to ``digest``; the tag is kept for display, the digest wins."""
        return replace(self, digest=digest)

    def with_repository(self, repository: str) -> Reference:
        """Same registry, tag and digest under another repository (``library/`` added on Hub)."""
        if self.registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        return replace(self, repository=repository)

    def _render(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self._render()


def validate_tag(tag: str) -> str:
    """Return ``tag`` unchanged, or raise :class:`InvalidReferenceError` naming the problem."""
    _check_tag(tag, tag)
    return tag


def validate_repository(name: str) -> str:
    """Return the repository path ``name`` unchanged if it follows the Distribution grammar."""
    _check_repository(name, name)
    return name


def is_digest(text: str) -> bool:
    """True if ``text`` is a sha256 or sha512 digest in canonical lowercase form."""
    return DIGEST_RE.fullmatch(text) is not None


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse ``text`` into a normalised :class:`Reference`.

    ``default_tag`` is used when neither a tag nor a digest is given; pass
    ``None`` to leave the tag unset. Raises :class:`InvalidReferenceError`.
    """
    if not text:
        raise InvalidReferenceError(text, "the reference is empty")
    if any(ch.isspace() for ch in text):
        raise InvalidReferenceError(text, "the reference contains whitespace")
    rest = _strip_transport(text)
    if rest.lower().startswith(_HUB_WEB):
        raise InvalidReferenceError(text, _hub_web_hint(rest))

    name_part, at, digest = rest.partition("@")
    if at:
        if not digest:
            raise InvalidReferenceError(text, "the digest after '@' is empty")
        if "@" in digest:
            raise InvalidReferenceError(text, "the reference has more than one '@'")
        _check_digest(digest, text)
    tag: str | None = None
    colon = name_part.rfind(":")
    # A colon before the last '/' is a registry port, not a tag separator.
    if colon > name_part.rfind("/"):
        tag = name_part[colon + 1 :]
        name_part = name_part[:colon]
        if not tag:
            raise InvalidReferenceError(text, "the tag after ':' is empty")
        _check_tag(tag, text)
    if not name_part:
        raise InvalidReferenceError(text, "the repository name is empty")

    registry, repository = _split_registry(name_part)
    _check_registry(registry, text)
    if registry in DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    _check_repository(repository, text)
    _check_length(registry, repository, text)
    if tag is None and not at:
        tag = default_tag
    return Reference(registry, repository, tag, digest if at else None)


def _strip_transport(text: str) -> str:
    scheme, sep, rest = text.partition("://")
    if sep:
        lowered = scheme.lower()
        if lowered == "docker":
            return rest
        if lowered in ("http", "https"):
            if rest.lower().startswith(_HUB_WEB):
                raise InvalidReferenceError(text, _hub_web_hint(rest))
            raise InvalidReferenceError(
                text, f"'{scheme}://' URLs are not image references; write {rest!r} without the scheme"
            )
        raise InvalidReferenceError(
            text, f"transport '{scheme}://' is not supported; only registries ('docker://') are"
        )
    head, sep, tail = text.partition(":")
    # "oci:5000/x" would be a registry called oci on port 5000, so a port is not a transport.
    if sep and head.lower() in _OTHER_TRANSPORTS and re.match(r"[0-9]+/", tail) is None:
        raise InvalidReferenceError(
            text,
            f"transport '{head}:' is not supported here; only `copy` (oci:, oci-archive:, docker-archive:) "
            "and `sync --target oci:DIR` / `--source-layout DIR` read or write layouts and archives",
        )
    return text


def _hub_web_hint(rest: str) -> str:
    parts = rest.split("/")
    suggestion = ""
    if len(parts) >= 3 and parts[1] == "_" and parts[2]:
        suggestion = parts[2]
    elif len(parts) >= 4 and parts[1] == "r" and parts[2] and parts[3]:
        suggestion = f"{parts[2]}/{parts[3]}"
    if suggestion:
        full = f"docker.io/{suggestion}" if "/" in suggestion else f"docker.io/library/{suggestion}"
        return f"that is the Docker Hub web page; use '{suggestion}' or '{full}'"
    return "that is the Docker Hub web page; use the image name, e.g. 'nginx' or 'docker.io/library/nginx'"


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, remainder = name.partition("/")
    # Docker's rule: only a dotted, ported or 'localhost' first component is a host.
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower(), remainder
    return DOCKER_HUB, name


def _check_registry(registry: str, text: str) -> None:
    match = _REGISTRY_RE.fullmatch(registry)
    if match is None:
        raise InvalidReferenceError(text, f"registry {registry!r} is not a valid host[:port]")
    host, port = match["host"], match["port"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidReferenceError(
                text, f"registry host {host!r} is not a valid bracketed IPv6 address"
            ) from None
    elif _HOSTNAME_RE.fullmatch(host) is None:
        raise InvalidReferenceError(text, f"registry host {host!r} is not a valid host name")
    if port is not None and not 0 < int(port) <= 65535:
        raise InvalidReferenceError(text, f"registry port {port!r} is out of range 1-65535")


def _check_repository(repository: str, text: str) -> None:
    if not repository:
        raise InvalidReferenceError(text, "the repository name is empty")
    if repository != repository.lower():
        raise InvalidReferenceError(
            text, f"repository {repository!r} has uppercase letters; repository names must be lowercase"
        )
    for component in repository.split("/"):
        if not component:
            raise InvalidReferenceError(text, f"repository {repository!r} has an empty path component")
        if _COMPONENT_RE.fullmatch(component) is None:
            raise InvalidReferenceError(
                text,
                f"path component {component!r} of repository {repository!r} must match "
                r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*",
            )


def _check_length(registry: str, repository: str, text: str) -> None:
    length = len(registry) + 1 + len(repository)
    if length > MAX_NAME_LENGTH:
        raise InvalidReferenceError(
            text, f"name {registry}/{repository[:20]}... is {length} characters; the limit is 255"
        )


def _check_tag(tag: str, text: str) -> None:
    if len(tag) > 128:
        raise InvalidReferenceError(text, f"tag {tag[:20]!r}... is {len(tag)} characters; the limit is 128")
    if TAG_RE.fullmatch(tag) is None:
        raise InvalidReferenceError(
            text, f"tag {tag!r} must match [A-Za-z0-9_][A-Za-z0-9._-]* (no leading '.' or '-')"
        )


def _check_digest(digest: str, text: str) -> None:
    if DIGEST_RE.fullmatch(digest):
        return
    algorithm, colon, hex_part = digest.partition(":")
    if not colon:
        raise InvalidReferenceError(text, f"digest {digest!r} must have the form algorithm:hex")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise InvalidReferenceError(
            text, f"digest algorithm {algorithm!r} is not supported (use sha256 or sha512)"
        )
    if hex_part != hex_part.lower():
        raise InvalidReferenceError(text, f"digest {digest!r} must use lowercase hex")
    if re.fullmatch(r"[0-9a-f]*", hex_part) is None:
        raise InvalidReferenceError(text, f"digest {digest!r} contains non-hex characters")
    raise InvalidReferenceError(
        text, f"{algorithm} digest must have {expected} hex characters, got {len(hex_part)}"
    )
