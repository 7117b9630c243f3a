"""Platforms: what the user asks for (``--platform``) and what an image index offers.

The accepted spellings and the matching rules are described in docs/platforms.md;
keep that page in step with this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from docker_transfer.errors import InvalidPlatformError

SHORTHANDS: tuple[str, ...] = ("amd64", "arm64", "arm/v7", "arm/v6", "386", "ppc64le", "s390x", "riscv64")
"""Short names accepted on their own; the operating system defaults to linux."""

KNOWN_OSES = frozenset(
    {
        "aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js",
        "linux", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows",
    }
)  # fmt: skip
"""Operating systems accepted in a full ``os/arch[/variant]`` form (Go's GOOS values, as OCI advises)."""

KNOWN_ARCHITECTURES = frozenset(
    {
        "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le",
        "ppc64", "ppc64le", "riscv64", "s390x", "wasm",
    }
)  # fmt: skip
"""Architectures accepted when parsing (Go's GOARCH values, as OCI advises)."""

ALIASES: Mapping[str, str] = {"x86_64": "amd64", "aarch64": "arm64"}
"""Architecture spellings rewritten to their OCI name wherever an architecture is expected."""

DEFAULT_OS = "linux"

# Names people type that we refuse, with what they most likely meant.
_SUGGESTIONS: Mapping[str, str] = {
    "x86": "amd64 (64-bit) or 386 (32-bit)",
    "x86-64": "amd64",
    "x64": "amd64",
    "amd": "amd64",
    "i386": "386",
    "i686": "386",
    "armhf": "arm/v7",
    "armv7": "arm/v7",
    "armv7l": "arm/v7",
    "armel": "arm/v6",
    "armv6": "arm/v6",
    "arm": "arm/v7 or arm/v6, or linux/arm for any 32-bit arm variant",
    "armv8": "arm64",
}
_VARIANT_RE = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*")
# Variants that mean the same as no variant for an architecture.
_DEFAULT_VARIANTS: Mapping[str, str] = {"arm64": "v8"}


@dataclass(frozen=True)
class Platform:
    """An ``os/architecture[/variant]`` triple.

    Ordering is by os, architecture, then variant with "no variant" first, so
    lists of platforms sort deterministically.
    """

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    @property
    def tag_suffix(self) -> str:
        """Suffix for ``<tag>-<suffix>`` tags: ``amd64``, ``arm-v7``, ``windows-amd64``.

        The default arm64 variant (v8) is left out so ``linux/arm64/v8`` gives ``arm64``.
        """
        parts = [self.architecture]
        if self.variant and _DEFAULT_VARIANTS.get(self.architecture) != self.variant:
            parts.append(self.variant)
        if self.os != DEFAULT_OS:
            parts.insert(0, self.os)
        return "-".join(parts)

    @property
    def normalized(self) -> Platform:
        """The same platform with its default variant spelled out: ``linux/arm64`` is ``linux/arm64/v8``.

        Reports and tables show platforms in this one notation, whether the
        name came from images.json or from a registry.
        """
        default = _DEFAULT_VARIANTS.get(self.architecture)
        if default is not None and self.variant is None:
            return Platform(self.os, self.architecture, default)
        return self

    @classmethod
    def from_oci(cls, data: Mapping[str, object]) -> Platform:
        """Build from an OCI/Docker descriptor ``platform`` object or an image config.

        Values are taken as the registry wrote them (no alias rewriting);
        ``os.version``, ``os.features`` and ``features`` are ignored. An empty
        variant counts as none.
        """
        os_name = data.get("os")
        architecture = data.get("architecture")
        variant = data.get("variant")
        shown = f"{os_name}/{architecture}"
        if not isinstance(os_name, str) or not os_name:
            raise InvalidPlatformError(shown, "the 'os' field is missing or not a non-empty string")
        if not isinstance(architecture, str) or not architecture:
            raise InvalidPlatformError(shown, "the 'architecture' field is missing or not a non-empty string")
        if variant is not None and not isinstance(variant, str):
            raise InvalidPlatformError(shown, "the 'variant' field is not a string")
        return cls(os_name, architecture, variant or None)

    def matches(self, candidate: Platform) -> bool:
        """True if ``candidate`` (offered by an image) satisfies ``self`` (asked by the user)."""
        if self.os != candidate.os or self.architecture != candidate.architecture:
            return False
        default = _DEFAULT_VARIANTS.get(self.architecture)
        if default is not None:
            # arm64 and arm64/v8 are one platform; other arm64 variants must be asked by name.
            wanted = self.variant or default
            return (candidate.variant or default) == wanted
        if self.variant is None:
            return True
        return candidate.variant == self.variant

    def _key(self) -> tuple[str, str, str]:
        return (self.os, self.architecture, self.variant or "")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Platform):
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Platform):
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Platform):
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Platform):
            return NotImplemented
        return self._key() >= other._key()


def is_unknown(p: Platform) -> bool:
    """True for buildx attestation entries, whose os or architecture is ``unknown``."""
    return p.os == "unknown" or p.architecture == "unknown"


def parse_platform(text: str) -> Platform:
    """Parse a user-supplied platform name; see docs/platforms.md for the grammar.

    Raises :class:`InvalidPlatformError` with the accepted names in the message.
    """
    if not text:
        raise InvalidPlatformError(text, f"the platform is empty; {_accepted()}")
    if "," in text:
        listed = ", ".join(f'"{part.strip()}"' for part in text.split(",") if part.strip())
        raise InvalidPlatformError(text, f"one platform per item: list them separately, e.g. [{listed}]")
    if any(ch.isspace() for ch in text):
        raise InvalidPlatformError(text, "the platform contains whitespace")
    if text != text.lower():
        raise InvalidPlatformError(text, f"platform names are lowercase; did you mean {text.lower()}?")
    parts = text.split("/")
    if len(parts) > 3:
        raise InvalidPlatformError(text, f"too many '/'-separated parts; {_accepted()}")
    if any(not part for part in parts):
        raise InvalidPlatformError(text, "a part between '/' is empty")

    if len(parts) == 1:
        name = ALIASES.get(text, text)
        if name in SHORTHANDS:
            return Platform(DEFAULT_OS, name)
        raise InvalidPlatformError(text, _unknown_name(text))

    first = ALIASES.get(parts[0], parts[0])
    variant: str | None
    if len(parts) == 2 and first in KNOWN_ARCHITECTURES:
        # 'arm/v7': GOOS and GOARCH names never overlap, so this reading is unambiguous.
        os_name, architecture, variant = DEFAULT_OS, first, parts[1]
    else:
        os_name = parts[0]
        architecture = ALIASES.get(parts[1], parts[1])
        variant = parts[2] if len(parts) == 3 else None

    if os_name not in KNOWN_OSES:
        raise InvalidPlatformError(text, f"unknown operating system {os_name!r}; {_accepted()}")
    if architecture not in KNOWN_ARCHITECTURES:
        hint = f"did you mean {_SUGGESTIONS[architecture]}? " if architecture in _SUGGESTIONS else ""
        raise InvalidPlatformError(text, f"unknown architecture {architecture!r}; {hint}{_accepted()}")
    if variant is not None and _VARIANT_RE.fullmatch(variant) is None:
        raise InvalidPlatformError(text, f"variant {variant!r} is not a valid variant name")
    return Platform(os_name, architecture, variant)


def _accepted() -> str:
    return f"use one of {', '.join(SHORTHANDS)} or os/arch[/variant] such as linux/arm64"


def _unknown_name(text: str) -> str:
    if text in _SUGGESTIONS:
        return f"unknown platform name; did you mean {_SUGGESTIONS[text]}? ({_accepted()})"
    if text in KNOWN_ARCHITECTURES:
        return f"{text!r} alone is not a shorthand; write it in full as linux/{text}"
    if text in KNOWN_OSES:
        return f"{text!r} is an operating system; add the architecture, e.g. {text}/amd64"
    return f"unknown platform name; {_accepted()}"
