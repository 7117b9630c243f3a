"""``docker-transfer inspect REF``: digest, media type, platforms with digests and sizes."""

from __future__ import annotations

import json

import click

from docker_transfer.cli.common import (
    build_client,
    build_transport,
    run_async,
    setup_logging,
    transport_options,
)
from docker_transfer.engine.describe import describe
from docker_transfer.reference import Reference, parse_reference
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import human_size, short_digests


async def _describe(ref: Reference, transport: TransportOptions, verbose: int) -> dict[str, object]:
    client, _ = build_client(transport)
    setup_logging(verbose)
    async with client:
        return await describe(client, ref)


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
