"""Parse, validate and filter image manifests and indexes.

Pure functions over bytes: nothing here talks to a registry. The registry
client hands over the exact bytes and Content-Type it received; the copy
engine asks which children of an index to copy and gets back the bytes of
the index to push.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from docker_transfer.errors import (
    DigestMismatchError,
    ManifestError,
    PlatformNotFoundError,
    UnsupportedManifestError,
)
from docker_transfer.errors import InvalidPlatformError as _InvalidPlatformError
from docker_transfer.platform import Platform, is_unknown
from docker_transfer.reference import DIGEST_RE  # one digest grammar for references and descriptors

__all__ = [
    "ABSENT_PLATFORMS_ANNOTATION",
    "ACCEPT_MANIFESTS",
    "ATTESTATION_REF_DIGEST_KEY",
    "ATTESTATION_REF_TYPE_KEY",
    "DIGEST_RE",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST_V2",
    "DOCKER_SCHEMA1",
    "DOCKER_SCHEMA1_SIGNED",
    "DROPPED_ARTIFACTS_ANNOTATION",
    "IMAGE_CONFIG_TYPES",
    "IMAGE_TYPES",
    "INDEX_TYPES",
    "MAX_MANIFEST_BYTES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SOURCE_DIGEST_ANNOTATION",
    "Descriptor",
    "Manifest",
    "Selection",
    "build_filtered_index",
    "check_selection",
    "parse_manifest",
    "platforms_of",
    "select_platforms",
    "sha256_digest",
    "verify_digest",
]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""Largest manifest accepted; the distribution reference registry uses the same cap."""

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

ACCEPT_MANIFESTS: tuple[str, ...] = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST_V2)
"""Accept header values for every manifest HEAD/GET.

Index types come first so a registry that can convert answers with the
multi-platform form rather than silently picking one platform for us.
"""

INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_TYPES = frozenset({DOCKER_MANIFEST_V2, OCI_MANIFEST})

ATTESTATION_REF_TYPE_KEY = "vnd.docker.reference.type"
ATTESTATION_REF_DIGEST_KEY = "vnd.docker.reference.digest"
SOURCE_DIGEST_ANNOTATION = "io.github.docker-transfer.source-digest"
ABSENT_PLATFORMS_ANNOTATION = "io.github.docker-transfer.absent-platforms"
"""On a filtered index: the requested platforms (comma-separated) that the source index did not list."""
DROPPED_ARTIFACTS_ANNOTATION = "io.github.docker-transfer.dropped-artifacts"
"""On a filtered index: how many attestation or artifact entries of the source were left out."""
IMAGE_CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
"""Config media types of runnable images; any other config makes a manifest an artifact."""


_SUPPORTED = INDEX_TYPES | IMAGE_TYPES
_SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
# Some registries and proxies answer with a generic type; those say nothing
# about the document, so the body (or its shape) decides.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})
_ATTESTATION_TYPE = "attestation-manifest"
_SCHEMA1_MESSAGE = (
    "Docker image manifest schema 1 is deprecated and not supported; "
    "re-push the image with a current Docker/containerd/buildah client to convert it to schema 2 or OCI"
)


def sha256_digest(data: bytes) -> str:
    """Return the ``sha256:<hex>`` digest of *data*."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_digest(data: bytes, digest: str) -> None:
    """Check that *data* hashes to *digest* (sha256 or sha512).

    Raises :class:`DigestMismatchError` on a mismatch and :class:`ManifestError`
    when *digest* is not a well-formed sha256/sha512 digest.
    """
    if not DIGEST_RE.fullmatch(digest):
        raise ManifestError(f"invalid digest {digest!r}: expected sha256:<64 hex> or sha512:<128 hex>")
    algorithm = digest.partition(":")[0]
    actual = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    if actual != digest:
        raise DigestMismatchError(digest, actual, what="manifest")


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: a child of an index, or an image's config or layer."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None
    annotations: Mapping[str, str]
    raw: Mapping[str, Any]
    """The descriptor object exactly as in the source JSON, unknown fields included."""

    @property
    def is_attestation(self) -> bool:
        """True for a buildx attestation entry (provenance/SBOM) in an index."""
        return self.annotations.get(ATTESTATION_REF_TYPE_KEY) == _ATTESTATION_TYPE

    @property
    def is_artifact(self) -> bool:
        """True for an entry that is no runnable image: an attestation, or one with an ``artifactType``."""
        return self.is_attestation or bool(self.raw.get("artifactType"))


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest or index, keeping the exact bytes it was read from.

    Build with :func:`parse_manifest`, which validates everything the
    properties below rely on.
    """

    media_type: str
    data: bytes
    digest: str
    """sha256 of :attr:`data`."""
    doc: Mapping[str, Any]

    @property
    def is_index(self) -> bool:
        """True for an OCI index or a Docker manifest list."""
        return self.media_type in INDEX_TYPES

    @cached_property
    def manifests(self) -> tuple[Descriptor, ...]:
        """Children of an index, in source order; empty for an image manifest."""
        if not self.is_index:
            return ()
        return _descriptor_list(self.doc.get("manifests"), "manifests", self.digest)

    @cached_property
    def config(self) -> Descriptor | None:
        """The config blob of an image manifest; None for an index."""
        if self.is_index:
            return None
        return _descriptor(self.doc.get("config"), "config", self.digest)

    @cached_property
    def layers(self) -> tuple[Descriptor, ...]:
        """Layers of an image manifest, in order; empty for an index."""
        if self.is_index:
            return ()
        return _descriptor_list(self.doc.get("layers"), "layers", self.digest)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Every blob an image manifest references (config first); empty for an index."""
        if self.config is None:
            return ()
        return (self.config, *self.layers)

    @cached_property
    def annotations(self) -> Mapping[str, str]:
        """Top-level annotations (empty when absent)."""
        return _annotations(self.doc.get("annotations"), "annotations", self.digest)

    @property
    def is_artifact(self) -> bool:
        """True for an image manifest that is an OCI 1.1 artifact (``artifactType``, or a non-image config).

        BuildKit writes attestations this way (config ``application/vnd.oci.empty.v1+json``);
        some registries refuse such manifests.
        """
        if self.is_index:
            return False
        config = self.config
        return bool(self.doc.get("artifactType")) or (
            config is not None and config.media_type not in IMAGE_CONFIG_TYPES
        )


def _annotations(value: object, where: str, digest: str | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestError(f"{where}: annotations must be an object of strings", digest=digest)
    return dict(value)


def _descriptor(value: object, where: str, digest: str | None) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: descriptor must be an object", digest=digest)
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestError(f"{where}: mediaType must be a non-empty string", digest=digest)
    child_digest = value.get("digest")
    if not isinstance(child_digest, str) or not DIGEST_RE.fullmatch(child_digest):
        raise ManifestError(
            f"{where}: digest {child_digest!r} is not a valid sha256/sha512 digest", digest=digest
        )
    size = value.get("size")
    # bool is an int subclass; JSON true is not a size.
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{where}: size {size!r} must be a non-negative integer", digest=digest)
    platform: Platform | None = None
    raw_platform = value.get("platform")
    if raw_platform is not None:
        if not isinstance(raw_platform, dict):
            raise ManifestError(f"{where}: platform must be an object", digest=digest)
        try:
            platform = Platform.from_oci(raw_platform)
        except _InvalidPlatformError as exc:
            raise ManifestError(f"{where}: {exc}", digest=digest) from exc
    return Descriptor(
        media_type=media_type,
        digest=child_digest,
        size=size,
        platform=platform,
        annotations=_annotations(value.get("annotations"), where, digest),
        raw=value,
    )


def _descriptor_list(value: object, key: str, digest: str | None) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        raise ManifestError(f"{key} must be an array", digest=digest)
    return tuple(_descriptor(item, f"{key}[{i}]", digest) for i, item in enumerate(value))


def _bare_media_type(content_type: str | None) -> str:
    # Media types are case-insensitive and may carry parameters such as charset.
    if content_type is None:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def parse_manifest(data: bytes, content_type: str | None, *, expected_digest: str | None = None) -> Manifest:
    """Parse and validate manifest bytes as received from a registry.

    *content_type* is the response's Content-Type (parameters allowed).
    When *expected_digest* is given the bytes must hash to it. Raises
    :class:`ManifestError` for malformed or ambiguous documents and
    :class:`UnsupportedManifestError` for schema 1 and unknown media types.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"manifest is {len(data)} bytes, larger than the {MAX_MANIFEST_BYTES}-byte limit",
            digest=expected_digest,
        )
    if expected_digest is not None:
        verify_digest(data, expected_digest)
    digest = sha256_digest(data)
    err_digest = expected_digest or digest

    header_type = _bare_media_type(content_type)
    if header_type in _SCHEMA1_TYPES:
        raise UnsupportedManifestError(_SCHEMA1_MESSAGE, digest=err_digest)
    doc = _json_object(data, err_digest)
    media_type = _media_type(doc, header_type, err_digest)
    schema_version = doc.get("schemaVersion")
    if schema_version != 2 or isinstance(schema_version, bool):
        raise ManifestError(f"schemaVersion must be 2, got {schema_version!r}", digest=err_digest)

    manifest = Manifest(media_type=media_type, data=data, digest=digest, doc=doc)
    if manifest.is_index and ("layers" in doc or "config" in doc):
        raise ManifestError(f"{media_type} must not have 'config' or 'layers'", digest=err_digest)
    if not manifest.is_index and "manifests" in doc:
        raise ManifestError(f"{media_type} must not have 'manifests'", digest=err_digest)
    try:
        # Validate every descriptor now, so the properties cannot raise later.
        _ = manifest.manifests, manifest.config, manifest.layers, manifest.annotations
    except ManifestError as exc:
        exc.digest = err_digest
        raise
    return manifest


def _json_object(data: bytes, err_digest: str) -> dict[str, Any]:
    """The manifest's JSON object, or a :class:`ManifestError` saying why not."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}", digest=err_digest) from exc
    except RecursionError:
        raise ManifestError("manifest is not valid JSON: nested too deeply", digest=err_digest) from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object", digest=err_digest)
    return doc


def _media_type(doc: dict[str, Any], header_type: str, err_digest: str) -> str:
    """The manifest's type from its body, else its Content-Type, else its shape; supported or refused."""
    schema_version = doc.get("schemaVersion")
    if schema_version == 1 and not isinstance(schema_version, bool):
        raise UnsupportedManifestError(_SCHEMA1_MESSAGE, digest=err_digest)
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestError("mediaType must be a string", digest=err_digest)
    if body_type in _SCHEMA1_TYPES:
        raise UnsupportedManifestError(_SCHEMA1_MESSAGE, digest=err_digest)
    # A body that claims one type while the registry serves it as another is
    # read differently by different clients under the same digest.
    if body_type is not None and header_type in _SUPPORTED and body_type != header_type:
        raise ManifestError(
            f"mediaType {body_type} differs from Content-Type {header_type}", digest=err_digest
        )
    has_manifests = "manifests" in doc
    has_layers = "layers" in doc
    if has_manifests and has_layers:
        raise ManifestError(
            "manifest has both 'layers' and 'manifests'; refusing an ambiguous document",
            digest=err_digest,
        )
    media_type: str
    if body_type:
        media_type = body_type
    elif header_type not in _GENERIC_TYPES:
        media_type = header_type
    elif has_manifests:
        media_type = OCI_INDEX
    elif has_layers and "config" in doc:
        media_type = OCI_MANIFEST
    else:
        raise ManifestError(
            "cannot tell the manifest type: no mediaType, no Content-Type, no 'manifests' or 'layers'",
            digest=err_digest,
        )
    if media_type not in _SUPPORTED:
        raise UnsupportedManifestError(
            f"unsupported manifest media type {media_type}; supported: {', '.join(ACCEPT_MANIFESTS)}",
            digest=err_digest,
        )
    return media_type


@dataclass(frozen=True)
class Selection:
    """Which children of an index to copy."""

    children: tuple[Descriptor, ...]
    """Kept entries in source order, attestations of kept images included."""
    platforms: tuple[Platform, ...]
    """Distinct platforms of the kept non-attestation children, in source order."""
    is_complete: bool
    """Every entry of the source index is kept: push the source bytes unchanged."""
    missing: tuple[Platform, ...]
    """Requested platforms that no child matches."""
    dropped_artifacts: int = 0
    """Attestation or artifact entries left out on purpose (``attestations: drop``, or refused)."""

    def without(self, digests: set[str]) -> Selection:
        """This selection minus the entries in ``digests``, counted as dropped artifacts."""
        kept = tuple(c for c in self.children if c.digest not in digests)
        return Selection(
            children=kept,
            platforms=_distinct_platforms(kept),
            is_complete=False,
            missing=self.missing,
            dropped_artifacts=self.dropped_artifacts + len(self.children) - len(kept),
        )


def _distinct_platforms(children: Sequence[Descriptor]) -> tuple[Platform, ...]:
    seen: dict[Platform, None] = {}
    for child in children:
        if child.platform is not None and not child.is_attestation and not is_unknown(child.platform):
            seen.setdefault(child.platform)
    return tuple(seen)


def select_platforms(index: Manifest, wanted: Sequence[Platform] | None) -> Selection:
    """Choose the children of *index* that match *wanted* (None means all).

    Every child matching any wanted platform is kept, once. Children without a
    platform are kept only when *wanted* is None. An attestation entry is kept
    iff the image it describes is kept; with *wanted* None everything is kept,
    dangling attestations included, so the index is copied unchanged.
    """
    if not index.is_index:
        raise ValueError(f"select_platforms needs an index, got {index.media_type}")
    entries = index.manifests
    if wanted is None:
        return Selection(
            children=entries, platforms=_distinct_platforms(entries), is_complete=True, missing=()
        )
    if not wanted:
        raise ValueError("wanted must be None (all platforms) or list at least one platform")

    kept: set[int] = set()
    matched: set[Platform] = set()
    for i, child in enumerate(entries):
        if child.is_attestation or child.platform is None:
            continue
        for want in wanted:
            if want.matches(child.platform):
                kept.add(i)
                matched.add(want)
    kept_digests = {entries[i].digest for i in kept}
    for i, child in enumerate(entries):
        if child.is_attestation and child.annotations.get(ATTESTATION_REF_DIGEST_KEY) in kept_digests:
            kept.add(i)

    children = tuple(child for i, child in enumerate(entries) if i in kept)
    missing = tuple(dict.fromkeys(w for w in wanted if w not in matched))
    return Selection(
        children=children,
        platforms=_distinct_platforms(children),
        is_complete=len(kept) == len(entries),
        missing=missing,
    )


def build_filtered_index(
    index: Manifest, selection: Selection, *, source_digest_annotation: bool = True
) -> bytes:
    """Return the bytes of the index to push for *selection*.

    A complete selection returns the source bytes unchanged so the digest is
    preserved. Otherwise the source document is kept field for field (key
    order included) with ``manifests`` reduced to the kept descriptors,
    copied verbatim, and, unless disabled, the source digest recorded in the
    top-level annotations, along with the requested platforms the source did
    not list and the number of artifact entries left out (see
    :data:`ABSENT_PLATFORMS_ANNOTATION`, :data:`DROPPED_ARTIFACTS_ANNOTATION`),
    so a later run can decide from the destination alone that it is up to
    date. Serialisation is deterministic.
    """
    if selection.is_complete:
        return index.data
    if not index.is_index:
        raise ValueError(f"build_filtered_index needs an index, got {index.media_type}")
    if not selection.children:
        raise ValueError("refusing to build an index with no manifests")
    doc: dict[str, Any] = dict(index.doc)
    doc["manifests"] = [child.raw for child in selection.children]
    if source_digest_annotation:
        annotations = dict(index.annotations)
        annotations[SOURCE_DIGEST_ANNOTATION] = index.digest
        if selection.missing:
            absent = ",".join(str(p.normalized) for p in selection.missing)
            annotations[ABSENT_PLATFORMS_ANNOTATION] = absent
        if selection.dropped_artifacts:
            annotations[DROPPED_ARTIFACTS_ANNOTATION] = str(selection.dropped_artifacts)
        doc["annotations"] = annotations
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def platforms_of(index: Manifest) -> tuple[Platform, ...]:
    """Distinct platforms an index offers, attestation entries left out."""
    return _distinct_platforms(index.manifests)


def check_selection(reference: str, selection: Selection, index: Manifest) -> None:
    """Raise :class:`PlatformNotFoundError` when a requested platform is missing."""
    if selection.missing:
        raise PlatformNotFoundError(
            reference,
            missing=[str(p) for p in selection.missing],
            available=[str(p) for p in platforms_of(index)],
        )


def distinct_blobs(images: Iterable[Manifest]) -> tuple[Descriptor, ...]:
    """The blobs of ``images`` (config and layers), each digest once, in first-seen order."""
    seen: dict[str, Descriptor] = {}
    for image in images:
        for blob in image.blobs:
            seen.setdefault(blob.digest, blob)
    return tuple(seen.values())
