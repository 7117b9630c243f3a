"""``docker-transfer sync`` (mirror images.json) and ``docker-transfer validate``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from docker_transfer.cli.common import (
    all_secrets,
    build_client,
    build_transport,
    parse_duration,
    redact,
    setup_logging,
    transport_options,
)
from docker_transfer.cli.progress import (
    Display,
    GitHubEvents,
    PlainEvents,
    QuietEvents,
    RichEvents,
    choose_display,
    no_color,
)
from docker_transfer.config import Config, load_config
from docker_transfer.engine.sync import Syncer, SyncEvents, SyncOptions
from docker_transfer.errors import EXIT_INTERRUPTED, DockerTransferError, UsageError
from docker_transfer.plan import Job, Target, plan_jobs
from docker_transfer.reference import Reference
from docker_transfer.registry.credentials import Credential, DockerConfig, config_path
from docker_transfer.report import Report, render_table
from docker_transfer.shard import Shard, parse_shard
from docker_transfer.summary import error_annotations, inert, mask_commands, ratelimits_from, render_summary

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


def write_report(report: Report, path: str | None, extra: Mapping[str, Any] | None = None) -> None:
    """Write the JSON report (atomically: a reader never sees half a file), plus ``extra`` keys."""
    if not path:
        return
    text = report.to_json()
    if extra:
        text = json.dumps({**report.to_dict(), **extra}, indent=2, ensure_ascii=False) + "\n"
    # Error texts come from registries and exceptions: mask anything secret-shaped on the way out.
    text = redact(text, all_secrets())
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)


SECRET_VARIABLES = ("TARGET_PASSWORD", "ALIYUN_PASSWORD")
"""Environment variables holding secrets that sync reads (masked on GitHub Actions)."""


def on_github_actions(environ: Mapping[str, str]) -> bool:
    """True when running as a GitHub Actions step (``GITHUB_ACTIONS=true``)."""
    return environ.get("GITHUB_ACTIONS", "").strip().lower() == "true"


def secrets_to_mask(environ: Mapping[str, str]) -> list[str]:
    """Every secret sync may read up front: the password variables and Docker config ``auths``.

    Credential helpers are asked lazily, so what they return is masked when first read.
    """
    found = [environ.get(name, "") for name in SECRET_VARIABLES]
    try:
        docker = DockerConfig.load(config_path(environ))
    except DockerTransferError:
        return [s for s in found if s]  # sync reports the broken file when it needs it
    for entry in docker.auths.values():
        for key in ("password", "identitytoken", "registrytoken", "auth"):
            value = entry.get(key)
            if isinstance(value, str):
                found.append(value)
        auth = entry.get("auth")
        if isinstance(auth, str):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                found.append(base64.b64decode(auth).decode("utf-8").partition(":")[2])
    return [s for s in found if s]


class Masker:
    """Prints ``::add-mask::`` on stdout once per secret, flushed at once (GitHub Actions only)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._seen: set[str] = set()

    def __call__(self, secrets: Iterable[str]) -> None:
        """Mask the secrets not masked yet."""
        if not self.enabled:
            return
        new = [s for s in secrets if s and s not in self._seen]
        self._seen.update(new)
        for line in mask_commands(new):
            click.echo(line)
        sys.stdout.flush()


def append_markdown(path: str, text: str) -> None:
    """Append ``text`` to ``path`` (as ``$GITHUB_STEP_SUMMARY`` expects); a failure is a warning."""
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        click.echo(f"warning: cannot write the summary to {path}: {exc.strerror or exc}", err=True)


def _events(
    display: Display, total: int, redact: Callable[[str], str], before: Callable[[], None]
) -> SyncEvents:
    if display == "github":
        return GitHubEvents(total, redact, before_output=before)
    if display == "rich":
        from rich.console import Console  # noqa: PLC0415 - rich only when bars are drawn

        console = Console(stderr=True, no_color=no_color(os.environ))
        return RichEvents(total, console, redact)
    if display == "plain":
        return PlainEvents(total, redact)
    return QuietEvents()


@click.command("sync", short_help="Mirror every image of images.json to a registry, incrementally.")
@click.option(
    "--config",
    "config_path",
    default="images.json",
    show_default=True,
    metavar="PATH",
    help="The images.json to mirror.",
)
@click.option(
    "--target-registry",
    metavar="HOST[:PORT]",
    help="Destination registry (env TARGET_REGISTRY, else ALIYUN_REGISTRY, else ACR Hangzhou: see above).",
)
@click.option(
    "--target-namespace",
    metavar="NS",
    help="Destination namespace (env TARGET_NAMESPACE, else ALIYUN_NAMESPACE).",
)
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
@click.option(
    "--only",
    multiple=True,
    metavar="GLOB",
    help="Only entries whose target or source matches GLOB; repeatable (any of them matches).",
)
@click.option(
    "--shard",
    "shard_text",
    metavar="I/N",
    help="Only shard I of N (0 <= I < N), split by target name: run N of these to cover images.json.",
)
@click.option(
    "--min-ratelimit",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help="Fetch nothing more from a registry whose stated pull quota is below N (those images fail).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress or per-image lines; the final table only.")
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
    shard_text: str | None,
    min_ratelimit: int | None,
    quiet: bool,
    insecure: tuple[str, ...],
    ca_cert: str | None,
    read_timeout: float,
    verbose: int,
) -> int:
    """Mirror every image of images.json to {registry}/{namespace}/{target}:{tag}.

    On GitHub Actions (GITHUB_ACTIONS=true) it also masks the secrets it reads,
    groups the log per image, annotates failures and appends a Markdown summary
    to $GITHUB_STEP_SUMMARY.

    Exit codes: 0 every entry copied or unchanged, 1 some entry failed,
    2 invalid config or usage (nothing contacted), 130 interrupted.

    \b
    Environment (a flag wins over its variable):
      TARGET_REGISTRY   destination registry, else ALIYUN_REGISTRY,
                        else registry.cn-hangzhou.aliyuncs.com (ACR Hangzhou)
      TARGET_NAMESPACE  destination namespace, else ALIYUN_NAMESPACE
      TARGET_USERNAME   destination login, with TARGET_PASSWORD;
                        else ALIYUN_USERNAME with ALIYUN_PASSWORD
      DOCKER_CONFIG     directory of Docker's config.json (default ~/.docker):
                        the sources' logins and any other (docker login)
      DT_INSECURE_REGISTRIES  comma-separated, like --insecure-registry
    """
    environ = os.environ
    github = on_github_actions(environ)
    masker = Masker(github)
    read_secrets = secrets_to_mask(environ)
    masker(read_secrets)  # before anything else is printed
    shard = parse_shard(shard_text) if shard_text is not None else None
    config = load_filtered(config_path, only)
    target = resolve_target(target_registry, target_namespace)
    options = SyncOptions(
        concurrency=concurrency,
        blob_concurrency=blob_concurrency,
        image_timeout=parse_duration(image_timeout, "--image-timeout"),
        run_timeout=parse_duration(run_timeout, "--timeout") if run_timeout else None,
        dry_run=dry_run,
        min_ratelimit=min_ratelimit,
    )
    jobs = plan_jobs(config, target)
    in_config = len(jobs)
    if shard is not None:
        jobs = shard.select(jobs, key=lambda job: job.entry.target)
    transport = build_transport(insecure, ca_cert, read_timeout)
    explicit: dict[str, Credential] = {}
    credential = target_credential()
    if credential is not None:
        explicit[Reference(registry=target.registry, repository="x").api_host] = credential
    client, store = build_client(transport, explicit)
    setup_logging(verbose)

    def redact_text(text: str) -> str:
        return redact(text, [*store.secrets(), *read_secrets])

    def mask_new() -> None:
        masker(store.secrets())

    display = choose_display(environ, stderr_tty=sys.stderr.isatty(), quiet=quiet)
    events = _events(display, len(jobs), redact_text, mask_new)
    report = Report(started=datetime.now(UTC))
    syncer = Syncer(client, options, events)
    where = f"{config.path} (shard {shard}: {len(jobs)} of {in_config})" if shard is not None else config.path
    note = None
    if shard is not None and not jobs:
        note = f"Shard {shard} holds none of the {in_config} image(s) of {config.path}: nothing to do."
    if not quiet:
        mode = "dry run: " if dry_run else ""
        click.echo(
            f"{mode}{len(jobs)} image(s) from {where} -> {target.registry}/{target.namespace}", err=True
        )
        if note:
            click.echo(f"note: {note}", err=True)
    interrupted = False
    try:
        if jobs:
            with events if isinstance(events, RichEvents) else contextlib.nullcontext():
                asyncio.run(_run(syncer, jobs, report))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        note = "Interrupted: in-flight images stopped; no tag was half-written."
    finally:
        report.finished = datetime.now(UTC)
        write_report(report, report_path)
    mask_new()
    limits = ratelimits_from(report.to_dict())
    table = redact_text("\n".join([render_table(report), *(f"rate limit: {q.plain()}" for q in limits)]))
    click.echo(inert(table) if github else table)
    if github:
        _github_outputs(report, environ, redact_text, shard=shard, note=note)
    if interrupted:
        click.echo("interrupted: in-flight images stopped; no tag was half-written", err=True)
        return EXIT_INTERRUPTED
    return report.exit_code()


def _github_outputs(
    report: Report,
    environ: Mapping[str, str],
    redact_text: Callable[[str], str],
    *,
    shard: Shard | None,
    note: str | None,
) -> None:
    """Append the job summary to $GITHUB_STEP_SUMMARY and annotate each failed image."""
    title = "docker-transfer sync" + (f" · shard {shard}" if shard is not None and shard.count > 1 else "")
    limits = ratelimits_from(report.to_dict())
    markdown = render_summary(report, title=title, ratelimits=limits, note=note)
    path = environ.get("GITHUB_STEP_SUMMARY", "")
    if path:
        append_markdown(path, redact_text(markdown))
    else:
        click.echo("warning: GITHUB_STEP_SUMMARY is not set; no job summary written", err=True)
    for line in error_annotations(report):
        click.echo(redact_text(line), err=True)


@click.command("validate", short_help="Check images.json without contacting any registry.")
@click.option(
    "--config",
    "config_path",
    default="images.json",
    show_default=True,
    metavar="PATH",
    help="The images.json to check.",
)
def validate_command(config_path: str) -> None:
    """Check images.json without contacting any registry (exit 2 listing every problem)."""
    config = load_config(config_path)
    tags = sum(len(e.destination_tags()) for e in config.entries)
    click.echo(f"{config.path}: OK, {len(config.entries)} image(s), {tags} destination tag(s)")
