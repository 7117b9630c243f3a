"""``docker-transfer sync`` (mirror images.json) and ``docker-transfer validate``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from docker_transfer.cli.common import (
    build_client,
    build_transport,
    human_size,
    parse_duration,
    register_secrets,
    setup_logging,
    transport_options,
)
from docker_transfer.config import Config, load_config
from docker_transfer.engine.sync import Syncer, SyncEvents, SyncOptions
from docker_transfer.errors import EXIT_INTERRUPTED, UsageError
from docker_transfer.plan import Job, Target, plan_jobs
from docker_transfer.reference import Reference
from docker_transfer.registry.credentials import Credential
from docker_transfer.report import Report, TagResult, render_table

DEFAULT_ALIYUN_REGISTRY = "registry.cn-hangzhou.aliyuncs.com"


def resolve_target(registry: str | None, namespace: str | None) -> Target:
    """Flags, else TARGET_*, else the seed's ALIYUN_* variables (registry defaults to Hangzhou ACR)."""
    env = os.environ
    registry = (
        registry or env.get("TARGET_REGISTRY") or env.get("ALIYUN_REGISTRY") or DEFAULT_ALIYUN_REGISTRY
    ).strip()
    namespace = (namespace or env.get("TARGET_NAMESPACE") or env.get("ALIYUN_NAMESPACE") or "").strip()
    if "/" in registry or registry.startswith(("http:", "https:")):
        raise UsageError(f"--target-registry {registry!r}: expected HOST[:PORT] without scheme or path")
    return Target(registry=registry.lower(), namespace=namespace)


def target_credential() -> Credential | None:
    """TARGET_USERNAME/TARGET_PASSWORD, else ALIYUN_USERNAME/ALIYUN_PASSWORD, else none (docker config)."""
    env = os.environ
    for prefix in ("TARGET", "ALIYUN"):
        user, password = env.get(f"{prefix}_USERNAME"), env.get(f"{prefix}_PASSWORD")
        if user and password:
            return Credential(username=user, password=password)
        if user or password:
            raise UsageError(f"set both {prefix}_USERNAME and {prefix}_PASSWORD, or neither")
    return None


def load_filtered(path: str, only: Sequence[str]) -> Config:
    """Load and validate images.json, then apply ``--only``."""
    config = load_config(path)
    filtered = config.filter(list(only))
    if only and not filtered.entries:
        raise UsageError(f"--only {' '.join(only)} matched no entry of {path}")
    return filtered


class LineEvents(SyncEvents):
    """One line per finished image on stderr: readable in CI logs and terminals alike."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.finished = 0

    def job_finished(self, job: Job, results: Sequence[TagResult]) -> None:
        self.finished += 1
        statuses = {r.status for r in results}
        status = "failed" if "failed" in statuses else "copied" if "copied" in statuses else results[0].status
        moved = sum(r.bytes_copied for r in results)
        tags = ",".join(r.tag for r in results)
        line = (
            f"[{self.finished}/{self.total}] {status:<9} {job.entry.source} -> {job.destination.name}:{tags}"
        )
        if status in ("copied", "planned"):
            line += f" ({human_size(moved)}{' to copy' if status == 'planned' else ''})"
        errors = {r.error for r in results if r.error}
        if errors:
            line += f": {'; '.join(sorted(errors))}"
        click.echo(line, err=True)


async def _run(syncer: Syncer, jobs: list[Job], report: Report) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        # SIGTERM (CI cancel, kill) stops like Ctrl-C: in-flight work ends, the report is kept.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with syncer.client:
            await syncer.run(jobs, report)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def write_report(report: Report, path: str | None) -> None:
    """Write the JSON report (atomically: a reader never sees half a file)."""
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(report.to_json(), encoding="utf-8")
    tmp.replace(target)


@click.command("sync")
@click.option(
    "--config", "config_path", default="images.json", show_default=True, help="The images.json to mirror."
)
@click.option("--target-registry", metavar="HOST[:PORT]", help="Destination registry (env TARGET_REGISTRY).")
@click.option("--target-namespace", metavar="NS", help="Destination namespace (env TARGET_NAMESPACE).")
@click.option("--report", "report_path", metavar="PATH", help="Write the JSON report here (also on failure).")
@click.option(
    "--dry-run", is_flag=True, help="Resolve everything read-only; write nothing to the destination."
)
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=4, show_default=True, help="Images at once."
)
@click.option(
    "--blob-concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Blob streams at once, across all images.",
)
@click.option(
    "--image-timeout",
    default="60m",
    show_default=True,
    metavar="DURATION",
    help="Give up on one image after this long (e.g. 90s, 30m, 2h).",
)
@click.option(
    "--timeout", "run_timeout", default=None, metavar="DURATION", help="Stop the whole run after this long."
)
@click.option("--only", multiple=True, metavar="GLOB", help="Only entries whose target or source matches.")
@transport_options
def sync_command(
    config_path: str,
    target_registry: str | None,
    target_namespace: str | None,
    report_path: str | None,
    dry_run: bool,
    concurrency: int,
    blob_concurrency: int,
    image_timeout: str,
    run_timeout: str | None,
    only: tuple[str, ...],
    insecure: tuple[str, ...],
    ca_cert: str | None,
    read_timeout: float,
    verbose: int,
) -> int:
    """Mirror every image of images.json to {registry}/{namespace}/{target}:{tag}.

    Exit codes: 0 every entry copied or unchanged, 1 some entry failed,
    2 invalid config or usage (nothing contacted), 130 interrupted.
    """
    config = load_filtered(config_path, only)
    target = resolve_target(target_registry, target_namespace)
    options = SyncOptions(
        concurrency=concurrency,
        blob_concurrency=blob_concurrency,
        image_timeout=parse_duration(image_timeout, "--image-timeout"),
        run_timeout=parse_duration(run_timeout, "--timeout") if run_timeout else None,
        dry_run=dry_run,
    )
    jobs = plan_jobs(config, target)
    transport = build_transport(insecure, ca_cert, read_timeout)
    explicit: dict[str, Credential] = {}
    credential = target_credential()
    if credential is not None:
        explicit[Reference(registry=target.registry, repository="x").api_host] = credential
    client, store = build_client(transport, explicit)
    register_secrets(store.secrets)
    setup_logging(verbose, store.secrets)
    report = Report(started=datetime.now(UTC))
    syncer = Syncer(client, options, LineEvents(len(jobs)))
    mode = "dry run: " if dry_run else ""
    click.echo(
        f"{mode}{len(jobs)} image(s) from {config.path} -> {target.registry}/{target.namespace}", err=True
    )
    interrupted = False
    try:
        asyncio.run(_run(syncer, jobs, report))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    finally:
        report.finished = datetime.now(UTC)
        write_report(report, report_path)
    click.echo(render_table(report))
    if interrupted:
        click.echo("interrupted: in-flight images stopped; no tag was half-written", err=True)
        return EXIT_INTERRUPTED
    return report.exit_code()


@click.command("validate")
@click.option(
    "--config", "config_path", default="images.json", show_default=True, help="The images.json to check."
)
def validate_command(config_path: str) -> None:
    """Check images.json without contacting any registry (exit 2 listing every problem)."""
    config = load_config(config_path)
    tags = sum(len(e.destination_tags()) for e in config.entries)
    click.echo(f"{config.path}: OK, {len(config.entries)} image(s), {tags} destination tag(s)")


def _stdout_is_tty() -> bool:
    return sys.stdout.isatty()
