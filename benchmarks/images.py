"""Benchmark images: multi-platform indexes of random layers, pushed once into a template storage.

Layers are random bytes (incompressible, never shared), pushed one platform at a time so no more
than one platform's layers is in memory. Each measured run then starts a registry on a hard-linked
clone of the template storage.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from devtools.images import (
    OCI_INDEX,
    RegistryPusher,
    canonical_json,
    descriptor,
    parse_platform,
)


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
    index_digest: str
    index_bytes: bytes
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


def build_image(
    pusher: RegistryPusher,
    repo: str,
    tags: tuple[str, ...],
    platforms: list[str],
    layers: int,
    layer_size: int,
) -> BuiltImage:
    """Push ``layers`` random layers of ``layer_size`` bytes per platform, then the index under ``tags``."""
    image = BuiltImage(repo, tags, "", b"")
    entries: list[dict[str, Any]] = []
    for platform in platforms:
        data = [os.urandom(layer_size) for _ in range(layers)]
        manifest, config_digest, layer_digests = pusher.push_platform_manifest(
            repo, platform, fmt="oci", layers=data
        )
        config_size = int(json.loads(manifest.data)["config"]["size"])
        image.blobs[platform] = [Blob(config_digest, config_size)] + [
            Blob(d, layer_size) for d in layer_digests
        ]
        image.children[platform] = (manifest.digest, manifest.data, manifest.media_type)
        entries.append(descriptor(manifest.media_type, manifest.data, platform=parse_platform(platform)))
        del data
    image.index_bytes = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    for tag in tags:
        image.index_digest = pusher.push_manifest(repo, tag, image.index_bytes, OCI_INDEX)
    return image


def build_single(
    pusher: RegistryPusher, repo: str, tag: str, platform: str, layers: int, layer_size: int
) -> tuple[str, int]:
    """One single-platform image manifest (no index) under ``tag``; returns (digest, total bytes).

    Layers are pushed one by one, so only one layer is in memory at a time.
    """
    layer_descs: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for _ in range(layers):
        data = os.urandom(layer_size)
        digest = pusher.push_blob(repo, data)
        layer_descs.append(descriptor("application/vnd.oci.image.layer.v1.tar+gzip", data))
        diff_ids.append(digest)
        del data
    config = canonical_json(
        {
            **parse_platform(platform),
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )
    pusher.push_blob(repo, config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": layer_descs,
        }
    )
    digest = pusher.push_manifest(repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json")
    return digest, layers * layer_size + len(config)
