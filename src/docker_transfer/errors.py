"""The one exception tree of docker-transfer.

Every error a user can meet derives from :class:`DockerTransferError`. Each class
carries the data that describes the failure (never a secret), the process exit
code it maps to, and whether retrying the same operation may succeed.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class DockerTransferError(Exception):
    """Base of every error docker-transfer raises on purpose."""

    exit_code: int = EXIT_FAILED
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- usage and input (exit 2) -------------------------------------------------


class UsageError(DockerTransferError):
    """The command line or its inputs are wrong; nothing was contacted."""

    exit_code = EXIT_USAGE


class InvalidReferenceError(UsageError):
    """An image reference that cannot be parsed or normalised."""

    def __init__(self, reference: str, reason: str) -> None:
        super().__init__(f"invalid image reference {reference!r}: {reason}")
        self.reference = reference
        self.reason = reason


class InvalidPlatformError(UsageError):
    """A platform or architecture name that is not understood."""

    def __init__(self, platform: str, reason: str) -> None:
        super().__init__(f"invalid platform {platform!r}: {reason}")
        self.platform = platform
        self.reason = reason


class ConfigError(UsageError):
    """images.json (or another config input) is invalid; every problem is listed."""

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{lines}")
        self.path = path
        self.problems = list(problems)


# --- content (exit 1) -----------------------------------------------------------


class ManifestError(DockerTransferError):
    """A manifest that docker-transfer refuses to handle."""

    def __init__(self, message: str, digest: str | None = None) -> None:
        super().__init__(message)
        self.digest = digest


class UnsupportedManifestError(ManifestError):
    """A manifest format we do not copy (schema1, unknown media type)."""


class PlatformNotFoundError(DockerTransferError):
    """Selected platforms that the source image does not provide."""

    def __init__(self, reference: str, missing: Sequence[str], available: Sequence[str]) -> None:
        avail = ", ".join(available) or "none"
        super().__init__(
            f"{reference}: platform(s) {', '.join(missing)} not in the source image (it has: {avail})"
        )
        self.reference = reference
        self.missing = list(missing)
        self.available = list(available)


class DigestMismatchError(DockerTransferError):
    """Content whose sha256 or size differs from what its descriptor promised.

    Retryable: a byte flipped in transit heals on a second read; content altered
    at rest fails every attempt and surfaces with the digest named.
    """

    retryable = True

    def __init__(self, expected: str, actual: str, *, what: str = "content") -> None:
        super().__init__(f"{what} digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class SizeMismatchError(DockerTransferError):
    """Content longer or shorter than its descriptor's size."""

    retryable = True

    def __init__(self, digest: str, expected: int, actual: int) -> None:
        super().__init__(f"{digest}: size mismatch: expected {expected} bytes, got {actual}")
        self.digest = digest
        self.expected = expected
        self.actual = actual


# --- network and registry (exit 1) ---------------------------------------------


class RegistryError(DockerTransferError):
    """An error answer from a registry, parsed from its ``{"errors": [...]}`` body."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        host: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.host = host
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail
        """The registry's own message (``errors[0].message`` or the start of a text body)."""

    @property
    def words(self) -> str:
        """The registry's own words: ``CODE: message``, or whatever part of it was sent."""
        return ": ".join(part for part in (self.code, self.detail) if part) or f"HTTP {self.status}"


class AuthenticationError(RegistryError):
    """401 after a fresh login: wrong or missing credentials."""


class AuthorizationError(RegistryError):
    """403: the credentials are valid but not allowed to do this."""


class NotFoundError(RegistryError):
    """404: repository, manifest or blob unknown."""


class RateLimitedError(RegistryError):
    """429: the registry asks us to slow down."""


class ManifestRefusedError(RegistryError):
    """The destination refused to store a manifest of this kind (its media type, an artifact, annotations).

    ``media_type`` is the refused manifest's type; the message names the
    registry's own words and what the user can do about it.
    """

    def __init__(self, message: str, *, media_type: str, cause: RegistryError) -> None:
        super().__init__(message, status=cause.status, code=cause.code, host=cause.host, detail=cause.detail)
        self.media_type = media_type


class TransportError(DockerTransferError):
    """The connection failed: reset, timeout, EOF, DNS. Retryable."""

    retryable = True

    def __init__(self, host: str, reason: str, *, connecting: bool = False) -> None:
        # "cannot connect to HOST: connection refused" reads as a sentence; other failures lead with the host.
        super().__init__(f"cannot connect to {host}: {reason}" if connecting else f"{host}: {reason}")
        self.host = host
        self.reason = reason
        self.connecting = connecting
        """True when no connection was made at all (refused, connect timeout, DNS)."""


class TLSError(DockerTransferError):
    """The TLS handshake failed; the message says how to trust or opt out."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"{host}: TLS handshake failed ({reason}); trust its CA with --ca-cert FILE "
            f"(or SSL_CERT_FILE), or list it with --insecure-registry {host} if you accept the risk"
        )
        self.host = host
        self.reason = reason


class UnsafeRedirectError(DockerTransferError):
    """A server-supplied URL we refuse to follow (https→http, link-local, private literal)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"refusing to follow {url}: {reason}")
        self.url = url
        self.reason = reason


class CredentialError(DockerTransferError):
    """Docker config.json or a credential helper could not give credentials."""


class ImageTimeoutError(DockerTransferError):
    """An image did not finish within its time budget."""

    def __init__(self, reference: str, seconds: float) -> None:
        super().__init__(f"{reference}: timed out after {seconds:g}s")
        self.reference = reference
        self.seconds = seconds


class LayoutError(DockerTransferError):
    """An OCI layout or image archive that cannot be read or written safely.

    A missing ``index.json``, a truncated tar, a member whose name or link points
    outside the archive, or a layout that lacks what its index names.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
