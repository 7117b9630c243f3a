"""Benchmark images: multi-platform indexes of random layers, pushed once into a template storage.

Each layer is a real gzip stream (deflate level 0, "stored" blocks) of random bytes: incompressible,
never shared, fast to make, and recognised as gzip. That matters: skopeo sniffs layer bytes, and
a ``tar+gzip`` layer that is not gzip gets compressed on the way (new digests, CPU-bound, and a
rerun then uploads everything again), which real images never trigger. Configs carry the right
``diff_ids`` (sha256 of the uncompressed bytes).

Layers are made and pushed one at a time, so at most one layer is in memory. Each measured run
then starts a registry on a hard-linked clone of the template storage.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from devtools.images import OCI_INDEX, RegistryPusher, canonical_json, descriptor, parse_platform

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Blob:
    """A blob to move: digest and size."""

    digest: str
    size: int


@dataclass
class BuiltImage:
    """An index pushed under one or more tags, with what each platform holds."""

    repo: str
    tags: tuple[str, ...]
    index_digest: str = ""
    index_bytes: bytes = b""
    children: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    """platform -> (digest, manifest bytes, media type)."""
    blobs: dict[str, list[Blob]] = field(default_factory=dict)
    """platform -> [config, layers...]."""

    def blobs_for(self, platforms: list[str]) -> list[Blob]:
        """Distinct blobs of the given platforms."""
        seen: dict[str, Blob] = {}
        for platform in platforms:
            for blob in self.blobs[platform]:
                seen.setdefault(blob.digest, blob)
        return list(seen.values())

    def filtered_index(self, platforms: list[str]) -> bytes:
        """An OCI index listing only ``platforms`` (what the raw-limit contender pushes)."""
        entries: list[dict[str, Any]] = []
        for platform in platforms:
            _, data, media_type = self.children[platform]
            entries.append(descriptor(media_type, data, platform=parse_platform(platform)))
        return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})


def gzip_layer(size: int) -> tuple[bytes, str]:
    """``size`` random bytes as a stored (level 0) gzip stream; returns (gzip bytes, diff_id)."""
    raw = os.urandom(size)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    packer = zlib.compressobj(0, zlib.DEFLATED, 31)
    return packer.compress(raw) + packer.flush(), diff_id


def push_platform(
    pusher: RegistryPusher,
    repo: str,
    platform: str,
    layers: int,
    layer_size: int,
    ref: str | None = None,
    *,
    sizes: Sequence[int] | None = None,
) -> tuple[str, bytes, list[Blob]]:
    """Push ``layers`` random gzip layers, the config and the image manifest (by digest, or ``ref``).

    ``sizes`` (one per layer) replaces ``layers`` x ``layer_size``. Returns (manifest digest,
    manifest bytes, [config, layers...]).
    """
    layer_descs: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    blobs: list[Blob] = []
    for size in sizes if sizes is not None else [layer_size] * layers:
        data, diff_id = gzip_layer(size)
        digest = pusher.push_blob(repo, data)
        layer_descs.append(descriptor(OCI_LAYER, data))
        diff_ids.append(diff_id)
        blobs.append(Blob(digest, len(data)))
        del data
    config = canonical_json(
        {
            **parse_platform(platform),
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"benchmark layer {i}"} for i in range(len(diff_ids))],
        }
    )
    config_digest = pusher.push_blob(repo, config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": layer_descs,
        }
    )
    digest = hashlib.sha256(manifest).hexdigest()
    pusher.push_manifest(repo, ref or f"sha256:{digest}", manifest, OCI_MANIFEST)
    return f"sha256:{digest}", manifest, [Blob(config_digest, len(config)), *blobs]


def build_image(
    pusher: RegistryPusher,
    repo: str,
    tags: tuple[str, ...],
    platforms: list[str],
    layers: int,
    layer_size: int,
    *,
    sizes: Sequence[int] | None = None,
) -> BuiltImage:
    """Push ``layers`` layers of ``layer_size`` bytes (or of ``sizes``) per platform, then the index."""
    image = BuiltImage(repo, tags)
    entries: list[dict[str, Any]] = []
    for platform in platforms:
        digest, manifest, blobs = push_platform(pusher, repo, platform, layers, layer_size, sizes=sizes)
        image.blobs[platform] = blobs
        image.children[platform] = (digest, manifest, OCI_MANIFEST)
        entries.append(descriptor(OCI_MANIFEST, manifest, platform=parse_platform(platform)))
    image.index_bytes = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    for tag in tags:
        image.index_digest = pusher.push_manifest(repo, tag, image.index_bytes, OCI_INDEX)
    return image


def build_single(
    pusher: RegistryPusher, repo: str, tag: str, platform: str, layers: int, layer_size: int
) -> tuple[str, int]:
    """One single-platform image manifest (no index) under ``tag``; returns (digest, total blob bytes)."""
    digest, _, blobs = push_platform(pusher, repo, platform, layers, layer_size, ref=tag)
    return digest, sum(b.size for b in blobs)
