"""The sync report as a plain-text table for people (pure: no I/O).

One row per result, a totals line, then skipped platforms, warnings and failures.
With more than one destination (``sync --target`` repeated) the rows come in a
section per destination, each with its own totals line.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from docker_transfer.report import (
    OPTIONAL_STATUSES,
    STATUSES,
    ConfigProblem,
    Report,
    TagResult,
    human_duration,
    human_size,
    short_digests,
)

_NO_SIZE = ("failed", "planned", "interrupted")
_NO_WRAP = 1 << 30


def destinations(report: Report) -> list[str]:
    """The destinations the results name, in report order (empty when none does)."""
    return list(dict.fromkeys(r.destination for r in report.results if r.destination))


def render_table(report: Report, width: int | None = None) -> str:
    """A plain-text summary for people: one row per result, a totals line, then failures.

    Columns: TARGET:TAG, STATUS, PLATFORMS (``linux/`` left out), SIZE (bytes
    copied), TIME. Each image's error is listed once for all its failed tags,
    digests shortened; with a ``width`` (a terminal's) wrapped at word boundaries
    to it, without one a line per paragraph, as logs and ``grep`` want. No trailing newline.
    """
    header: tuple[str, ...] = ("TARGET:TAG", "STATUS", "PLATFORMS", "SIZE", "TIME")
    # Tags chosen by rules say which rule chose them, in a last column that exists only then.
    with_rules = any(r.rule for r in report.results)
    if with_rules:
        header += ("RULE",)
    rows = [header, *(_row(r, with_rules) for r in report.results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        # Numbers read best right-aligned; the last column needs no padding after it.
        return "  ".join(
            cell.rjust(width) if i in (3, 4) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    lines = [line(header)]
    places = destinations(report)
    if len(places) > 1:
        for place in places:
            mine = [r for r in report.results if r.destination == place]
            section = Report(started=report.started, finished=report.finished, results=mine)
            lines.extend([f"== {place} ==", *(line(_row(r, with_rules)) for r in mine)])
            lines.append(_totals(section))
        lines.extend(line(_row(r, with_rules)) for r in report.results if not r.destination)
        lines.append(f"all destinations: {_totals(report)}")
    else:
        lines.extend(line(row) for row in rows[1:])
        if not report.results:
            lines.append("(no results)")
        lines.append(_totals(report))
    skipped = {
        f"  {r.target}:{r.tag}: {', '.join(map(short_platform, r.skipped))}": None
        for r in report.results
        if r.skipped
    }
    if skipped:
        lines.extend(["", "Skipped platforms (not in the source; allow_partial):", *skipped])
    warnings = {f"  {w}": None for w in report.warnings}
    warnings.update({f"  {r.target}:{r.tag}: {w}": None for r in report.results for w in r.warnings})
    if warnings:
        lines.extend(["", "Warnings:", *warnings])
    if report.config_errors:
        lines.extend(["", "Not started: the configuration is invalid:"])
        lines.extend(f"  {_where(p)}{p.message}" for p in report.config_errors)
    if report.failed:
        lines.extend(["", "Failures:"])
        lines.extend(_failure_lines(report.failed, width))
    return "\n".join(lines)


def _row(r: TagResult, with_rules: bool) -> tuple[str, ...]:
    size = "-" if r.status in _NO_SIZE and not r.bytes_copied else human_size(r.bytes_copied)
    platforms = ",".join(map(short_platform, r.platforms)) or "-"
    row = (f"{r.target}:{r.tag}", r.status, platforms, size, human_duration(r.duration_s))
    return (*row, r.rule or "-") if with_rules else row


def short_platform(name: str) -> str:
    """A platform as tables show it: ``linux/`` left out (``amd64``, ``arm64/v8``, ``windows/amd64``)."""
    return name.removeprefix("linux/")


def _failure_lines(failed: Sequence[TagResult], width: int | None) -> list[str]:
    # One entry per image and error: its tags share one line instead of repeating the message.
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for r in failed:
        grouped.setdefault((r.target, r.source, r.error or "unknown error"), []).append(r.tag)
    lines: list[str] = []
    for (target, source, error), tags in grouped.items():
        lines.append(f"  {target}:{','.join(tags)} (from {source}):")
        for paragraph in short_digests(error).splitlines() or [""]:
            lines.extend(
                textwrap.wrap(
                    paragraph,
                    width=max(width, 40) if width else _NO_WRAP,
                    initial_indent="    ",
                    subsequent_indent="    ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
    return lines


def _where(problem: ConfigProblem) -> str:
    if problem.file is None:
        return ""
    return f"{problem.file}:{problem.line}: " if problem.line else f"{problem.file}: "


def _totals(report: Report) -> str:
    s = report.summary()
    counts = ", ".join(
        f"{s[status]} {status}" for status in STATUSES if s[status] or status not in OPTIONAL_STATUSES
    )
    total = len(report.results)
    elapsed = (
        (report.finished - report.started).total_seconds()
        if report.finished is not None
        else sum(r.duration_s for r in report.results)
    )
    # A dry run's "planned" rows carry the bytes a real run would move: they are not copied yet.
    moved = "to copy; checked" if s["planned"] else "copied"
    return (
        f"{total} tag{'' if total == 1 else 's'}: {counts}; "
        f"{human_size(s['bytes_copied'])} {moved} in {human_duration(elapsed)}"
    )
