"""``copy`` when either side is an OCI layout or an archive (``oci:``, ``*-archive:``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace

import click

from docker_transfer.cli.bars import ByteProgress
from docker_transfer.cli.common import build_client, run_async, setup_logging
from docker_transfer.engine.copy import CopyResult
from docker_transfer.engine.layout_copy import LayoutImage, copy_image
from docker_transfer.errors import UsageError
from docker_transfer.layout.endpoints import open_destination, open_source
from docker_transfer.layout.names import Location, is_ref_name, parse_location
from docker_transfer.platform import Platform
from docker_transfer.reference import TAG_RE, validate_tag
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import human_size

LAYOUT_PREFIXES = ("oci:", "oci-archive:", "docker-archive:")


def is_layout_copy(source: str, destination: str) -> bool:
    """True when either side names a layout or an archive rather than a registry."""
    return any(
        not parse_location(text, default_tag=None).is_registry
        for text in (source, destination)
        if text.lower().startswith(LAYOUT_PREFIXES)
    )


def names_for(src: Location, dest: Location, extra_tags: Sequence[str]) -> list[str]:
    """The names (tags or ref names) the destination gets: its own, else the source's, plus ``--tag``s."""
    first: str | None = None
    if dest.reference is not None:
        if dest.reference.digest:
            raise UsageError(f"destination {dest} must not carry a digest: the digest comes from the source")
        first = dest.reference.tag
    elif dest.transport != "docker-archive":
        first = dest.ref_name
    if first is None and dest.transport != "docker-archive":
        inherited = src.reference.tag if src.reference is not None else src.ref_name
        if inherited and dest.reference is not None and not TAG_RE.fullmatch(inherited):
            # A layout name written by sync is target:tag; its tag is what a registry can take.
            inherited = inherited.rpartition(":")[2]
        valid = TAG_RE.fullmatch if dest.reference is not None else is_ref_name
        if inherited and valid(inherited):
            first = inherited
    names = [first] if first else []
    for tag in extra_tags:
        if dest.transport == "docker-archive":
            raise UsageError("--tag does not apply to docker-archive; name the image as FILE:REPO:TAG")
        if validate_tag(tag) not in names:
            names.append(tag)
    return names


def layout_copy(
    source: str,
    destination: str,
    platforms: list[Platform] | None,
    extra_tags: tuple[str, ...],
    transport: TransportOptions,
    concurrency: int,
    verbose: int,
    as_json: bool,
) -> CopyResult:
    """Run one layout/archive copy; the summary goes to stderr when the archive goes to stdout."""
    src = parse_location(source)
    dest = parse_location(destination, default_tag=None)
    if dest.is_stdio and sys.stdout.isatty():
        raise UsageError(f"{destination}: refusing to write an archive to a terminal; redirect stdout")
    names = names_for(src, dest, extra_tags)
    if dest.transport == "docker-archive" and dest.repo_tag is None and src.reference and src.reference.tag:
        # As `docker save IMAGE` does: the archive names the image it came from.
        dest = replace(dest, repo_tag=src.reference.with_tag(src.reference.tag))
    setup_logging(verbose)
    return run_async(_run(src, dest, names, platforms, transport, concurrency))  # type: ignore[no-any-return]


async def _run(
    src: Location,
    dest: Location,
    names: list[str],
    platforms: list[Platform] | None,
    transport: TransportOptions,
    concurrency: int,
) -> CopyResult:
    client, _ = build_client(transport)
    async with client:
        source = open_source(src, client)
        try:
            destination = open_destination(dest, client, concurrency)
        except BaseException:
            await source.close()
            raise
        bars: list[ByteProgress] = []

        def sized(image: LayoutImage) -> None:
            total = sum(b.size for b in image.blobs)
            bars.append(ByteProgress(enabled=sys.stderr.isatty(), total=total, label=str(dest)).__enter__())

        def advance(n: int) -> None:
            for bar in bars:
                bar.advance(n)

        try:
            return await copy_image(source, destination, names, platforms, advance, on_resolved=sized)
        finally:
            for bar in bars:
                bar.__exit__(None, None, None)


def echo_result(result: CopyResult, to_stderr: bool) -> None:
    """The human summary of a layout copy."""
    where = ", ".join(result.tags) or result.digest
    click.echo(
        f"copied {result.source} -> {result.destination} ({where})\n"
        f"  digest    {result.digest}\n"
        f"  platforms {', '.join(result.platforms)}\n"
        f"  blobs     {result.blobs_uploaded} written ({human_size(result.bytes_copied)}), "
        f"{result.blobs_present} already present; {result.duration_s:.1f}s",
        err=to_stderr,
    )
