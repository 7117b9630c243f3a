"""``sync --target oci:DIR`` and ``sync --source-layout DIR``: images.json into or out of one OCI layout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import click

from docker_transfer.cli.common import (
    build_client,
    build_transport,
    human_width,
    parse_duration,
    redact,
    setup_logging,
)
from docker_transfer.cli.destination import resolve_target, target_credential
from docker_transfer.cli.progress import RichEvents, choose_display
from docker_transfer.config import Config
from docker_transfer.engine.layout_sync import LayoutSyncer
from docker_transfer.engine.sync import SyncOptions
from docker_transfer.errors import EXIT_INTERRUPTED, UsageError
from docker_transfer.layout.files import DirectoryFiles
from docker_transfer.layout.names import parse_location
from docker_transfer.layout.readers import OciReader
from docker_transfer.layout.writers import OciDirWriter
from docker_transfer.plan import Job, Target, plan_jobs
from docker_transfer.reference import Reference
from docker_transfer.registry.credentials import Credential
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import Report
from docker_transfer.reporttable import render_table
from docker_transfer.shard import Shard, parse_shard


def layout_target(text: str) -> str:
    """The directory of ``--target oci:DIR`` (the only layout target ``sync`` writes)."""
    location = parse_location(text) if text.lower().startswith("oci:") else None
    if location is None or location.transport != "oci" or location.ref_name:
        raise UsageError(
            f"--target {text!r}: expected oci:DIR (names inside are target:tag from images.json)"
        )
    return location.path


def layout_jobs(config: Config) -> list[Job]:
    """One job per entry; the destination shown is ``oci/{target}`` (names are ``target:tag``)."""
    jobs = plan_jobs(config, Target(registry="oci", namespace="layout"))
    return [
        replace(
            job,
            destination=Reference(
                registry="oci", repository=job.entry.target, tag=job.tags[0] if job.tags else None
            ),
            where="",
        )
        for job in jobs
    ]


def run_layout_sync(
    config: Config,
    jobs: list[Job],
    *,
    into: str | None,
    source_layout: str | None,
    options: SyncOptions,
    transport: TransportOptions,
    report_path: str | None,
    shard: Shard | None,
    quiet: bool,
    verbose: int,
) -> int:
    """Run the layout sync, print the table, write the report; the exit code as ``sync`` has it."""
    from docker_transfer.cli.sync import _events, write_report  # noqa: PLC0415 - cli.sync imports this module

    unlisted = sorted({job.entry.target for job in jobs if not job.tags})
    if unlisted:
        # Tags chosen from a source's tag list need that registry; a layout sync names its tags.
        raise UsageError(
            f"sync with a layout takes listed tags only; entries without them: {', '.join(unlisted)}"
        )
    if shard is not None:
        jobs = shard.select(jobs, key=lambda job: job.entry.target)
    explicit: dict[str, Credential] = {}
    credential = target_credential() if into is None else None
    if credential is not None and jobs:
        explicit[jobs[0].destination.api_host] = credential
    client, store = build_client(transport, explicit)
    setup_logging(verbose)

    def redact_text(text: str) -> str:
        return redact(text, store.secrets())

    display = choose_display(os.environ, stderr_tty=sys.stderr.isatty(), quiet=quiet)
    display = "plain" if display == "github" else display
    events = _events(display, len(jobs), redact_text, lambda: None)
    report = Report(started=datetime.now(UTC))
    syncer = LayoutSyncer(client, options, events)
    if not quiet:
        where = f"oci:{into}" if into else f"{source_layout} -> registry"
        click.echo(f"{len(jobs)} image(s) from {config.path} -> {where}", err=True)

    async def run() -> None:
        async with client:
            if into is not None:
                await syncer.to_layout(jobs, OciDirWriter(into), report)
            else:
                assert source_layout is not None
                reader = OciReader(DirectoryFiles(source_layout), None)
                reader.index()  # a missing or broken index.json is a usage error, before any job
                await syncer.from_layout(jobs, reader, report)

    interrupted = False
    try:
        with events if isinstance(events, RichEvents) else contextlib.nullcontext():
            asyncio.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    finally:
        report.finished = datetime.now(UTC)
        write_report(report, report_path)
    click.echo(redact_text(render_table(report, human_width(sys.stdout))))
    if interrupted:
        click.echo("interrupted: the layout's index.json names only images written in full", err=True)
        return EXIT_INTERRUPTED
    return report.exit_code()


def sync_from_flags(flags: Mapping[str, Any]) -> int:
    """``sync --target oci:DIR`` or ``sync --source-layout DIR``, from sync's checked flags."""
    if flags["layout_dir"] is not None and flags["source_layout"] is not None:
        raise UsageError(
            "--target oci:DIR and --source-layout DIR are exclusive: one side must be a registry"
        )
    config: Config = flags["config"]
    into = layout_target(flags["layout_dir"]) if flags["layout_dir"] is not None else None
    if into is not None:
        jobs = layout_jobs(config)
    else:
        jobs = plan_jobs(config, resolve_target(flags["target_registry"], flags["target_namespace"]))
    options = SyncOptions(
        concurrency=flags["concurrency"],
        blob_concurrency=flags["blob_concurrency"],
        image_timeout=parse_duration(flags["image_timeout"], "--image-timeout"),
        run_timeout=parse_duration(flags["run_timeout"], "--timeout") if flags["run_timeout"] else None,
        dry_run=flags["dry_run"],
    )
    return run_layout_sync(
        config,
        jobs,
        into=into,
        source_layout=flags["source_layout"],
        options=options,
        transport=build_transport(flags["insecure"], flags["ca_cert"], flags["read_timeout"]),
        report_path=flags["report_path"],
        shard=parse_shard(flags["shard_text"]) if flags["shard_text"] is not None else None,
        quiet=flags["quiet"],
        verbose=flags["verbose"],
    )
