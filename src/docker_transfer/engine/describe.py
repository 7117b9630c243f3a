"""What an image is: its digest, media type, and each platform's digest and size."""

from __future__ import annotations

import asyncio

from docker_transfer.engine.copy import image_platform
from docker_transfer.manifest import Descriptor, Manifest
from docker_transfer.reference import Reference
from docker_transfer.registry.api import RegistryAPI


def _image_size(image: Manifest) -> int:
    return len(image.data) + sum(b.size for b in image.blobs)


async def describe(client: RegistryAPI, ref: Reference) -> dict[str, object]:
    """What ``docker-transfer inspect --json`` prints about ``ref``.

    Its digest, media type and size; each platform's digest and size (image manifest plus
    its blobs); an index's attestations and annotations.
    """
    top = await client.get_manifest(ref)
    doc: dict[str, object] = {
        "reference": str(ref),
        "digest": top.digest,
        "media_type": top.media_type,
        "size": len(top.data),
    }
    if top.is_index:
        entries = await asyncio.gather(*(_child(client, ref, d) for d in top.manifests))
        doc["platforms"] = [e for e in entries if not e.get("attestation")]
        doc["attestations"] = [e for e in entries if e.get("attestation")]
        if top.annotations:
            doc["annotations"] = dict(top.annotations)
    else:
        platform = await image_platform(client, ref, top)
        doc["platforms"] = [
            {
                "platform": str(platform),
                "digest": top.digest,
                "media_type": top.media_type,
                "size": _image_size(top),
            }
        ]
    return doc


async def _child(client: RegistryAPI, ref: Reference, desc: Descriptor) -> dict[str, object]:
    entry: dict[str, object] = {
        "platform": str(desc.platform) if desc.platform else None,
        "digest": desc.digest,
        "media_type": desc.media_type,
    }
    if desc.is_attestation:
        entry["attestation"] = True
        entry["for"] = desc.annotations.get("vnd.docker.reference.digest")
    manifest = await client.get_manifest(ref, digest=desc.digest)
    entry["size"] = _image_size(manifest)
    return entry
