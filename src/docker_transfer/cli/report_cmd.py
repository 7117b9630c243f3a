"""``docker-transfer report merge``: one report and one job summary from several shards' reports."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from docker_transfer.cli import SuggestingGroup
from docker_transfer.cli.common import human_width
from docker_transfer.cli.sync import append_markdown, on_github_actions, write_report
from docker_transfer.config import load_config
from docker_transfer.errors import EXIT_FAILED, EXIT_OK, DockerTransferError, UsageError
from docker_transfer.ratelimit import ratelimits_from, tightest_per_host
from docker_transfer.report import Report, merge_reports
from docker_transfer.reporttable import render_table
from docker_transfer.summary import error_command, inert, render_summary

MISSING_HINT = "no such file: did that shard crash or get cancelled before writing it?"


@click.group("report", cls=SuggestingGroup, short_help="Merge the JSON reports of sync runs (CI shards).")
def report_group() -> None:
    """Work with the JSON reports that sync --report writes."""


@report_group.command("merge")
@click.argument("paths", nargs=-1, required=True, metavar="REPORT.json...")
@click.option("-o", "--output", metavar="PATH", help="Write the merged JSON report here.")
@click.option(
    "--summary",
    "summary_path",
    metavar="PATH",
    help='Append the Markdown job summary to this file (e.g. "$GITHUB_STEP_SUMMARY").',
)
@click.option("--title", default="docker-transfer sync", show_default=True, help="The summary's headline.")
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="List images and tags in this images.json's order (default: sorted by target and tag).",
)
def merge_command(
    paths: tuple[str, ...], output: str | None, summary_path: str | None, title: str, config_path: str | None
) -> int:
    """Merge the reports of several shards (e.g. a CI matrix) into one.

    Prints the merged table; writes the merged JSON (--output) and appends a
    Markdown summary (--summary). A report that does not exist (its shard
    crashed before writing it) is listed as missing.

    Exit codes: 0 nothing failed, 1 some image failed, a report is missing or
    a shard refused an invalid images.json,
    2 a report could not be read or is not a docker-transfer report.
    """
    reports, documents, missing = _read_reports(list(dict.fromkeys(paths)))
    if reports:
        merged = merge_reports(reports, _config_order(config_path))
    else:
        now = datetime.now(UTC)
        merged = Report(started=now, finished=now)
    limits = tightest_per_host(limit for doc in documents for limit in ratelimits_from(doc))
    merged.ratelimit = [limit.to_dict() for limit in limits]
    write_report(merged, output, {"missing_reports": missing} if missing else None)
    if summary_path:
        append_markdown(summary_path, render_summary(merged, title=title, ratelimits=limits, missing=missing))
    github = on_github_actions(os.environ)
    table = render_table(merged, human_width(sys.stdout))
    click.echo(inert(table) if github else table)
    for path in missing:
        click.echo(f"error: missing report {path}: {MISSING_HINT}", err=True)
        if github:
            click.echo(error_command("missing report", f"{path}: {MISSING_HINT}"), err=True)
    return EXIT_FAILED if merged.failed or missing or merged.config_errors else EXIT_OK


def _config_order(path: str | None) -> list[tuple[str, str]]:
    """``(target, tag)`` in the order of images.json; a config that cannot be read only warns.

    The order is cosmetic: a broken images.json (its shards failed with the reason) must not
    cost the merged report too.
    """
    if path is None:
        return []
    try:
        config = load_config(path)
    except DockerTransferError as exc:
        first = str(exc).splitlines()[0]
        click.echo(f"warning: sorting by target and tag instead of the order of {path}: {first}", err=True)
        return []
    return [(entry.target, tag) for entry in config.entries for tag in entry.destination_tags()]


def _read_reports(paths: list[str]) -> tuple[list[Report], list[dict[str, Any]], list[str]]:
    """The readable reports with their JSON objects, and the paths that do not exist.

    Any other problem (unreadable, not JSON, not a report) raises one
    :class:`UsageError` listing every such file: nothing is written then.
    """
    reports: list[Report] = []
    documents: list[dict[str, Any]] = []
    missing: list[str] = []
    problems: list[str] = []
    for path in paths:
        file = Path(path)
        if not file.exists():
            missing.append(path)
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"{path}: cannot read the file: {reason}")
            continue
        try:
            report = Report.from_json(text)
        except UsageError as exc:
            problems.append(f"{path}: {exc}")
            continue
        reports.append(report)
        documents.append(json.loads(text))
    if problems:
        raise UsageError("cannot merge the reports:\n" + "\n".join(f"  {p}" for p in problems))
    return reports, documents, missing
