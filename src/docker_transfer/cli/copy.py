"""``docker-transfer copy SRC DST``: one image, chosen platforms, extra tags."""

from __future__ import annotations

import json
import sys

import click

from docker_transfer.cli.bars import ByteProgress
from docker_transfer.cli.common import (
    attestations_option,
    build_client,
    build_transport,
    run_async,
    setup_logging,
    transport_options,
)
from docker_transfer.cli.destination import target_credential
from docker_transfer.config import AttestationMode
from docker_transfer.engine.blobs import BlobTracker
from docker_transfer.engine.copy import Copier, CopyResult
from docker_transfer.engine.single import destination_tags, unchanged_result
from docker_transfer.platform import Platform, parse_platform
from docker_transfer.reference import Reference, parse_reference
from docker_transfer.registry.credentials import Credential
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import human_size


@click.command("copy", short_help="Copy one image between registries, only the platforms you choose.")
@click.argument("source")
@click.argument("destination")
@click.option(
    "--arch",
    "arches",
    multiple=True,
    metavar="A",
    help="Platform to copy (amd64, arm64, arm/v7, os/arch[/variant]); repeatable, or comma-separated.",
)
@click.option(
    "--all", "all_platforms", is_flag=True, help="Copy every platform (the default when no --arch is given)."
)
@click.option(
    "--tag", "extra_tags", multiple=True, metavar="T", help="Also tag the pushed image as T; repeatable."
)
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=8, show_default=True, help="Blob streams at once."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--force", is_flag=True, help="Copy even when the destination tags already hold this image.")
@attestations_option
@transport_options
def copy_command(
    source: str,
    destination: str,
    arches: tuple[str, ...],
    all_platforms: bool,
    extra_tags: tuple[str, ...],
    concurrency: int,
    as_json: bool,
    force: bool,
    attestations: AttestationMode,
    insecure: tuple[str, ...],
    ca_cert: str | None,
    read_timeout: float,
    verbose: int,
) -> None:
    """Copy SOURCE to DESTINATION registry to registry, without a daemon or local disk.

    With --arch, only those platforms are copied, into a filtered index whose
    children are byte-identical to the source's. Tags are written last. When
    the destination tags already hold what would be pushed, nothing is fetched
    from the source but a HEAD, and nothing is pushed (unless --force).

    Destination credentials come from TARGET_USERNAME/TARGET_PASSWORD (or
    ALIYUN_USERNAME/ALIYUN_PASSWORD) as for sync, else from Docker's config,
    else from containers-auth.json (podman/skopeo login).

    Either side may also be an OCI layout or archive: oci:DIR[:NAME],
    oci-archive:FILE[:NAME], docker-archive:FILE[:REPO:TAG]; FILE - is
    stdout/stdin (docs/air-gap.md).
    """
    if all_platforms and arches:
        raise click.UsageError("--all and --arch are mutually exclusive")
    if _names_a_layout(source, destination):
        _layout(
            source,
            destination,
            arches,
            extra_tags,
            insecure,
            ca_cert,
            read_timeout,
            concurrency,
            verbose,
            as_json,
        )
        return
    src = parse_reference(source)
    # "--arch amd64,arm64" as well as "--arch amd64 --arch arm64", as crane accepts for --platform.
    names = [name.strip() for arch in arches for name in arch.split(",") if name.strip()]
    platforms: list[Platform] | None = [parse_platform(name) for name in names] or None
    dest, tags = destination_tags(src, parse_reference(destination, default_tag=None), extra_tags)
    transport = build_transport(insecure, ca_cert, read_timeout)
    credential = target_credential()
    explicit = {dest.api_host: credential} if credential is not None else {}
    result = run_async(
        _copy(src, dest, tags, platforms, transport, concurrency, verbose, force, attestations, explicit)
    )
    _echo(result, src, dest, tags, as_json)


def _echo(result: CopyResult, src: Reference, dest: Reference, tags: list[str], as_json: bool) -> None:
    """Warnings on stderr; the result as JSON or as a few lines for people."""
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    where = ", ".join(f"{dest.name}:{t}" for t in tags) or f"{dest.name}@{result.digest}"
    if result.status == "unchanged":
        click.echo(f"unchanged {src} -> {where}\n  digest    {result.digest}")
        return
    click.echo(
        f"copied {src} -> {where}\n"
        f"  digest    {result.digest}\n"
        f"  platforms {', '.join(result.platforms)}\n"
        f"  blobs     {result.blobs_uploaded} uploaded ({human_size(result.bytes_copied)}), "
        f"{result.blobs_mounted} mounted, {result.blobs_present} already present; {result.duration_s:.1f}s"
    )


def _names_a_layout(source: str, destination: str) -> bool:
    """Either side starts with a layout or archive transport (checked in full by cli/layout.py)."""
    prefixes = ("oci:", "oci-archive:", "docker-archive:")
    if not any(text.lower().startswith(prefixes) for text in (source, destination)):
        return False  # the common case imports nothing more
    from docker_transfer.cli.layout import is_layout_copy  # noqa: PLC0415 - only for layout copies

    return is_layout_copy(source, destination)


def _layout(
    source: str,
    destination: str,
    arches: tuple[str, ...],
    extra_tags: tuple[str, ...],
    insecure: tuple[str, ...],
    ca_cert: str | None,
    read_timeout: float,
    concurrency: int,
    verbose: int,
    as_json: bool,
) -> None:
    """An OCI layout or archive on either side (cli/layout.py)."""
    from docker_transfer.cli.layout import echo_result, layout_copy  # noqa: PLC0415
    from docker_transfer.layout.names import parse_location  # noqa: PLC0415

    names = [name.strip() for arch in arches for name in arch.split(",") if name.strip()]
    platforms = [parse_platform(name) for name in names] or None
    transport = build_transport(insecure, ca_cert, read_timeout)
    result = layout_copy(source, destination, platforms, extra_tags, transport, concurrency, verbose, as_json)
    to_stderr = parse_location(destination, default_tag=None).is_stdio
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2), err=to_stderr)
    else:
        echo_result(result, to_stderr)


async def _copy(
    src: Reference,
    dest: Reference,
    tags: list[str],
    platforms: list[Platform] | None,
    transport: TransportOptions,
    concurrency: int,
    verbose: int,
    force: bool,
    attestations: AttestationMode,
    explicit: dict[str, Credential],
) -> CopyResult:
    client, _ = build_client(transport, explicit)
    setup_logging(verbose)
    async with client:
        if tags and not force:
            held = await unchanged_result(client, src, dest, tags, platforms, attestations)
            if held is not None:
                return held
        copier = Copier(client, BlobTracker(concurrency=concurrency))
        image = await copier.resolve(src, platforms)
        with ByteProgress(enabled=sys.stderr.isatty(), total=image.total_bytes, label=dest.repository) as bar:
            return await copier.push(image, dest, tags, bar.advance, attestations=attestations)
