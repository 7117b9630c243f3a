"""``docker-transfer inspect REF``: digest, media type, platforms with digests and sizes."""

from __future__ import annotations

import asyncio
import json

import click

from docker_transfer.cli.common import (
    build_client,
    build_transport,
    run_async,
    setup_logging,
    transport_options,
)
from docker_transfer.engine.copy import Copier
from docker_transfer.manifest import Descriptor, Manifest
from docker_transfer.reference import Reference, parse_reference
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.manifests import get_manifest
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import human_size, short_digests


def _image_size(image: Manifest) -> int:
    return len(image.data) + sum(b.size for b in image.blobs)


async def _describe(ref: Reference, transport: TransportOptions, verbose: int) -> dict[str, object]:
    client, _ = build_client(transport)
    setup_logging(verbose)
    async with client:
        top = await client.retry.call(lambda: get_manifest(client, ref))
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
            platform = await Copier(client).image_platform(ref, top)
            doc["platforms"] = [
                {
                    "platform": str(platform),
                    "digest": top.digest,
                    "media_type": top.media_type,
                    "size": _image_size(top),
                }
            ]
        return doc


async def _child(client: RegistryClient, ref: Reference, desc: Descriptor) -> dict[str, object]:
    entry: dict[str, object] = {
        "platform": str(desc.platform) if desc.platform else None,
        "digest": desc.digest,
        "media_type": desc.media_type,
    }
    if desc.is_attestation:
        entry["attestation"] = True
        entry["for"] = desc.annotations.get("vnd.docker.reference.digest")
    manifest = await client.retry.call(lambda: get_manifest(client, ref, digest=desc.digest))
    entry["size"] = _image_size(manifest)
    return entry


@click.command(
    "inspect", short_help="Show an image's digest, media type, and each platform's digest and size."
)
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@transport_options
def inspect_command(
    reference: str,
    as_json: bool,
    insecure: tuple[str, ...],
    ca_cert: str | None,
    read_timeout: float,
    verbose: int,
) -> None:
    """Show an image's digest, media type, and each platform's digest and size."""
    ref = parse_reference(reference)
    doc = run_async(_describe(ref, build_transport(insecure, ca_cert, read_timeout), verbose))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"Name:       {ref.name}\nDigest:     {doc['digest']}\nMedia type: {doc['media_type']}")
    platforms = doc.get("platforms")
    assert isinstance(platforms, list)
    click.echo(f"Platforms:  {len(platforms)}")
    for entry in platforms:
        digest = short_digests(str(entry["digest"]))
        click.echo(f"  {entry['platform'] or '-':<20} {digest}  {human_size(int(entry['size'])):>9}")
    attestations = doc.get("attestations") or []
    assert isinstance(attestations, list)
    if attestations:
        click.echo(f"Attestations: {len(attestations)}")
        for entry in attestations:
            click.echo(short_digests(f"  for {entry['for']}  {entry['digest']}"))
