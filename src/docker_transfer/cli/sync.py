"""``docker-transfer sync`` (mirror images.json) and ``docker-transfer validate``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
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
    attestations_option,
    build_client,
    build_transport,
    env_flag,
    flatten_option,
    human_width,
    parse_duration,
    redact,
    setup_logging,
    transport_options,
)
from docker_transfer.cli.destination import (
    ALLOW_NESTED_VARIABLE,
    check_report_path,
    parse_target,
    registry_host,
    resolve_destinations,
    split_targets,
    target_credential,
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
from docker_transfer.config import AttestationMode, Config, load_config
from docker_transfer.engine.sync import Syncer, SyncEvents, SyncOptions
from docker_transfer.errors import EXIT_INTERRUPTED, DockerTransferError, UsageError
from docker_transfer.plan import Job, Target, plan_jobs
from docker_transfer.ratelimit import ratelimits_from
from docker_transfer.reference import Reference
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.credentials import (
    Credential,
    CredentialStore,
    DockerConfig,
    config_path,
    containers_auth_path,
)
from docker_transfer.report import Report, config_problems
from docker_transfer.reporttable import render_table
from docker_transfer.shard import Shard, parse_shard
from docker_transfer.summary import (
    config_error_command,
    error_annotations,
    inert,
    mask_commands,
    render_summary,
    warning_annotations,
)


def load_filtered(path: str, only: Sequence[str], flatten: str | None = None) -> Config:
    """Load and validate images.json, then apply ``--only``."""
    config = load_config(path, flatten=flatten)
    filtered = config.filter(list(only))
    if only and not filtered.entries:
        raise UsageError(f"--only {' '.join(only)} matched no entry of {path}")
    return filtered


async def _run(client: RegistryClient, syncer: Syncer, jobs: list[Job], report: Report) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        # SIGTERM (CI cancel, kill) stops like Ctrl-C: in-flight work ends, the report is kept.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with client:
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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise DockerTransferError(f"cannot write the report {path}: {exc.strerror or exc}") from None


SECRET_VARIABLES = ("TARGET_PASSWORD", "ALIYUN_PASSWORD")
"""Environment variables holding secrets that sync reads (masked on GitHub Actions)."""


def on_github_actions(environ: Mapping[str, str]) -> bool:
    """True when running as a GitHub Actions step (``GITHUB_ACTIONS=true``)."""
    return environ.get("GITHUB_ACTIONS", "").strip().lower() == "true"


def secrets_to_mask(environ: Mapping[str, str]) -> list[str]:
    """Every secret sync may read up front: the password variables, Docker's and podman's ``auths``.

    Credential helpers are asked lazily, so what they return is masked when first read.
    """
    found = [environ.get(name, "") for name in SECRET_VARIABLES]
    configs: list[DockerConfig] = []
    with contextlib.suppress(DockerTransferError):  # sync reports a broken file when it needs it
        configs.append(DockerConfig.load(config_path(environ)))
    containers = containers_auth_path(environ)
    if containers is not None:
        with contextlib.suppress(DockerTransferError):
            configs.append(DockerConfig.load(containers, containers=True))
    for entry in (entry for docker in configs for entry in docker.auths.values()):
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
@attestations_option
@flatten_option
@click.option(
    "--allow-nested-targets",
    "allow_nested",
    is_flag=True,
    help=f"Allow a target with '/' on an ACR personal-edition host (env {ALLOW_NESTED_VARIABLE}=1).",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="REGISTRY/NS|oci:DIR",
    help="A destination registry/namespace; repeatable: mirror to several at once, each blob read "
    "once. Or oci:DIR: write every image into one OCI layout instead (names: target:tag).",
)
@click.option(
    "--source-layout",
    metavar="DIR",
    help="Read each entry's target:tag from this OCI layout instead of its source registry.",
)
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
    attestations: AttestationMode,
    flatten: str | None,
    allow_nested: bool,
    targets: tuple[str, ...],
    source_layout: str | None,
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
                        (with --target: for the TARGET_REGISTRY host only)
      DOCKER_CONFIG     directory of Docker's config.json (default ~/.docker):
                        the sources' logins and any other (docker login)
      DT_INSECURE_REGISTRIES  comma-separated, like --insecure-registry
    """
    environ = os.environ
    github = on_github_actions(environ)
    masker = Masker(github)
    read_secrets = secrets_to_mask(environ)
    masker(read_secrets)  # before anything else is printed
    allow_nested = allow_nested or env_flag(ALLOW_NESTED_VARIABLE)
    writable: str | None = None  # the report path, once known to be writable
    try:
        check_report_path(report_path)
        writable = report_path
        shard = parse_shard(shard_text) if shard_text is not None else None
        config = load_filtered(config_path, only, flatten)
        layout_dir, chosen = split_targets(targets, target_registry, target_namespace)
        if layout_dir is not None or source_layout is not None:
            if len(chosen) > 1:
                raise UsageError("--source-layout DIR takes one destination; got several --target")
            if chosen:
                picked = parse_target(chosen[0], allow_nested=allow_nested)
                target_registry, target_namespace = picked.registry, picked.namespace
            return _layout_sync(locals())
        destinations = resolve_destinations(chosen, config, target_registry, target_namespace, allow_nested)
        options = SyncOptions(
            concurrency=concurrency,
            blob_concurrency=blob_concurrency,
            image_timeout=parse_duration(image_timeout, "--image-timeout"),
            run_timeout=parse_duration(run_timeout, "--timeout") if run_timeout else None,
            dry_run=dry_run,
            min_ratelimit=min_ratelimit,
            attestations=attestations,
        )
    except UsageError as exc:
        # A CI step must leave a report, an annotation and a summary, not look like a crash.
        _not_started(exc, writable, environ if github else None, shard_text)
        raise
    run = _Run(config, destinations, shard, options, report_path, quiet)
    return _execute(run, masker, read_secrets, (insecure, ca_cert, read_timeout), target_registry, verbose)


@dataclasses.dataclass(frozen=True)
class _Run:
    """A sync run's checked settings."""

    config: Config
    destinations: list[Target]
    shard: Shard | None
    options: SyncOptions
    report_path: str | None
    quiet: bool


def _execute(
    run: _Run,
    masker: Masker,
    read_secrets: list[str],
    transport: tuple[tuple[str, ...], str | None, float],
    target_registry: str | None,
    verbose: int,
) -> int:
    """Plan, run and report: the part of ``sync`` that contacts registries."""
    config, shard, environ = run.config, run.shard, os.environ
    github = on_github_actions(environ)
    jobs = [job for target in run.destinations for job in plan_jobs(config, target)]
    in_config = len(jobs)
    if shard is not None:
        jobs = shard.select(jobs, key=lambda job: job.entry.target)
    client, store = _client(*transport, target_registry)
    setup_logging(verbose)

    def redact_text(text: str) -> str:
        return redact(text, [*store.secrets(), *read_secrets])

    def mask_new() -> None:
        masker(store.secrets())

    display = choose_display(environ, stderr_tty=sys.stderr.isatty(), quiet=run.quiet)
    events = _events(display, len(jobs), redact_text, mask_new)
    report = Report(started=datetime.now(UTC))
    # Bars show an overall total and ETA: size every image before copying so neither jumps.
    syncer = Syncer(client, dataclasses.replace(run.options, size_first=display == "rich"), events)
    where = f"{config.path} (shard {shard}: {len(jobs)} of {in_config})" if shard is not None else config.path
    note = None
    if shard is not None and not jobs:
        note = f"Shard {shard} holds none of the {in_config} image(s) of {config.path}: nothing to do."
    if not run.quiet:
        mode = "dry run: " if run.options.dry_run else ""
        into = ", ".join(target.label for target in run.destinations)
        click.echo(f"{mode}{len(jobs)} image(s) from {where} -> {into}", err=True)
        if note:
            click.echo(f"note: {note}", err=True)
    interrupted = False
    try:
        if jobs:
            with events if isinstance(events, RichEvents) else contextlib.nullcontext():
                asyncio.run(_run(client, syncer, jobs, report))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        note = "Interrupted: in-flight images stopped; no tag was half-written."
    finally:
        report.finished = datetime.now(UTC)
        write_report(report, run.report_path)
    mask_new()
    _output(report, redact_text, environ if github else None, shard=shard, note=note)
    if interrupted:
        click.echo("interrupted: in-flight images stopped; no tag was half-written", err=True)
        return EXIT_INTERRUPTED
    return report.exit_code()


def _client(
    insecure: tuple[str, ...], ca_cert: str | None, read_timeout: float, target_registry: str | None
) -> tuple[RegistryClient, CredentialStore]:
    """The run's client. TARGET_*/ALIYUN_* log in to the TARGET_REGISTRY host only; others use config.json."""
    transport = build_transport(insecure, ca_cert, read_timeout)
    explicit: dict[str, Credential] = {}
    credential = target_credential()
    if credential is not None:
        host = registry_host(target_registry)
        explicit[Reference(registry=host, repository="x").api_host] = credential
    return build_client(transport, explicit)


def _output(
    report: Report,
    redact_text: Callable[[str], str],
    github: Mapping[str, str] | None,
    *,
    shard: Shard | None,
    note: str | None,
) -> None:
    """The final table on stdout; on GitHub Actions the job summary and annotations too."""
    limits = ratelimits_from(report.to_dict())
    table = render_table(report, human_width(sys.stdout))
    table = redact_text("\n".join([table, *(f"rate limit: {q.plain()}" for q in limits)]))
    click.echo(inert(table) if github is not None else table)
    if github is not None:
        _github_outputs(report, github, redact_text, shard=shard, note=note)


def _not_started(
    error: UsageError, report_path: str | None, github: Mapping[str, str] | None, shard_text: str | None
) -> None:
    """Report a run refused before it started: the JSON report; on GitHub Actions annotations and summary."""
    now = datetime.now(UTC)
    report = Report(started=now, finished=now, config_errors=config_problems(error))
    write_report(report, report_path)
    if github is None:
        return
    for problem in report.config_errors:
        click.echo(config_error_command(problem), err=True)
    title = "docker-transfer sync" + (f" · shard {shard_text}" if shard_text else "")
    path = github.get("GITHUB_STEP_SUMMARY", "")
    if path:
        append_markdown(path, redact(render_summary(report, title=title), all_secrets()))


def _layout_sync(flags: Mapping[str, Any]) -> int:
    """``--target oci:DIR`` or ``--source-layout DIR`` (cli/layout_sync.py)."""
    from docker_transfer.cli.layout_sync import sync_from_flags  # noqa: PLC0415 - only for layouts

    return sync_from_flags(flags)


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
    for line in [*error_annotations(report), *warning_annotations(report)]:
        click.echo(redact_text(line), err=True)
