"""What a sync shows on GitHub Actions: the Markdown job summary and workflow-command lines.

Pure: every function builds strings from a :class:`~docker_transfer.report.Report`
(and, for the rate-limit line, the report's JSON object); writing them to
``$GITHUB_STEP_SUMMARY`` or the log is the CLI's job.

Workflow commands follow GitHub's escaping rules: in the message ``%``, CR and
LF become ``%25``, ``%0D`` and ``%0A``; in properties (``title=…``) ``:`` and
``,`` also become ``%3A`` and ``%2C``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from docker_transfer.ratelimit import RateLimit
from docker_transfer.report import (
    ConfigProblem,
    Report,
    TagResult,
    human_duration,
    human_size,
    short_digests,
)
from docker_transfer.reporttable import destinations, short_platform

STATUS_ICONS = {"failed": "❌", "interrupted": "⏹️", "copied": "✅", "planned": "📝", "unchanged": "⚪"}
"""The icon shown before each status in the summary."""

MAX_ERROR_CHARS = 1000
"""Longer error messages are cut in the summary (the JSON report keeps them whole)."""

ENDGROUP = "::endgroup::"
"""Closes the log group opened by :func:`group_command`."""


# --- workflow commands -------------------------------------------------------------------------


def escape_data(text: str) -> str:
    """Escape a workflow command's message: ``%`` → ``%25``, CR → ``%0D``, LF → ``%0A``."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: as :func:`escape_data`, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error_command(title: str, message: str) -> str:
    """``::error title=<title>::<message>``: an error annotation on the run's page."""
    return f"::error title={escape_property(title)}::{escape_data(message)}"


def warning_command(title: str, message: str) -> str:
    """``::warning title=<title>::<message>``: a warning annotation on the run's page."""
    return f"::warning title={escape_property(title)}::{escape_data(message)}"


def config_error_command(problem: ConfigProblem) -> str:
    """``::error file=…,line=…,title=…::<message>``: a config problem annotated at its file and line."""
    props = [f"file={escape_property(problem.file)}"] if problem.file else []
    if problem.file and problem.line:
        props.append(f"line={problem.line}")
    name = problem.file.replace("\\", "/").rsplit("/", 1)[-1] if problem.file else ""
    title = f"invalid {name}" if name else "docker-transfer sync not started"
    props.append(f"title={escape_property(title)}")
    return f"::error {','.join(props)}::{escape_data(problem.message)}"


def group_command(title: str) -> str:
    """``::group::<title>``: starts a collapsible group in the log (end it with :data:`ENDGROUP`)."""
    return f"::group::{escape_data(title)}"


def inert(text: str) -> str:
    """``text`` made safe to print in a GitHub log: no line of it can act as a workflow command.

    The runner treats a line starting with ``::`` (after leading blanks) as a
    command, so text from elsewhere (a registry's error body) could otherwise
    open groups, add masks or forge annotations. Such lines get a ``> `` prefix;
    the legacy ``##[`` marker is broken up as ``## [``. A lone CR ends a line
    for the runner too, so it becomes a newline first.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.replace("##[", "## [") for line in text.split("\n")]
    return "\n".join("> " + line if line.lstrip().startswith("::") else line for line in lines)


def mask_commands(secrets: Iterable[str]) -> list[str]:
    """``::add-mask::<value>`` for each distinct non-blank secret, longest first.

    A secret spanning several lines is masked whole and line by line, since the
    log may show its lines apart.
    """
    values: set[str] = set()
    for secret in secrets:
        if not secret.strip():
            continue
        values.add(secret)
        lines = secret.splitlines()
        if len(lines) > 1:
            values.update(line for line in lines if line.strip())
    return [f"::add-mask::{escape_data(value)}" for value in sorted(values, key=lambda v: (-len(v), v))]


# --- images and statuses -----------------------------------------------------------------------


@dataclass
class ImageResults:
    """The results of one image: one source mirrored to one destination repository."""

    source: str
    target: str
    results: list[TagResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``failed`` if any tag failed, else ``copied``, ``planned`` or ``unchanged``, in that order."""
        return image_status(self.results)

    @property
    def errors(self) -> list[str]:
        """The distinct error messages of the failed tags, in report order."""
        return list(dict.fromkeys(r.error or "unknown error" for r in self.results if r.status == "failed"))

    @property
    def warnings(self) -> list[str]:
        """The distinct warnings of every tag, in report order."""
        return list(dict.fromkeys(w for r in self.results for w in r.warnings))

    @property
    def skipped(self) -> list[str]:
        """The distinct requested platforms the source does not list (``allow_partial``)."""
        return list(dict.fromkeys(p for r in self.results for p in r.skipped))

    @property
    def failed_tags(self) -> list[str]:
        """Tags whose status is ``failed``."""
        return [r.tag for r in self.results if r.status == "failed"]


def image_status(results: Sequence[TagResult]) -> str:
    """The status of an image from its tags' statuses (see :attr:`ImageResults.status`)."""
    statuses = {r.status for r in results}
    for status in ("failed", "interrupted", "copied", "planned"):
        if status in statuses:
            return status
    return "unchanged"


def group_images(results: Iterable[TagResult]) -> list[ImageResults]:
    """Results grouped by (source, target), in order of first appearance."""
    images: dict[tuple[str, str], ImageResults] = {}
    for result in results:
        key = (result.source, result.target)
        if key not in images:
            images[key] = ImageResults(result.source, result.target)
        images[key].results.append(result)
    return list(images.values())


def error_annotations(report: Report) -> list[str]:
    """One ``::error`` command per failed image, titled by its destination repository (host included)."""
    lines: list[str] = []
    for image in group_images(report.results):
        if image.status != "failed":
            continue
        tags = ", ".join(image.failed_tags)
        message = f"{image.source} -> {image.target}:{tags}: {'; '.join(image.errors)}"
        lines.append(error_command(image.target, message))
    return lines


def warning_annotations(report: Report) -> list[str]:
    """One ``::warning`` command per warning of an image that did not fail (e.g. attestations refused)."""
    return [
        warning_command(image.target, f"{image.source} -> {image.target}: {warning}")
        for image in group_images(report.results)
        if image.status != "failed"
        for warning in image.warnings
    ]


# --- the Markdown summary ----------------------------------------------------------------------


def render_summary(
    report: Report,
    *,
    title: str = "docker-transfer sync",
    ratelimits: Sequence[RateLimit] = (),
    missing: Sequence[str] = (),
    note: str | None = None,
) -> str:
    """The job summary in GitHub-flavoured Markdown, ending with a newline.

    A headline, a totals line, the rate-limit figures when known, then the
    failures (each image's error, and any ``missing`` shard report) and a table
    per image: tags, platforms, status, size, time.
    """
    images = group_images(report.results)
    failed = [image for image in images if image.status == "failed"]
    lines = [f"## {_headline(title, images, failed, missing, len(report.config_errors))}", ""]
    if note:
        lines += [_cell(note), ""]
    if report.config_errors:
        lines += ["### Invalid configuration: nothing was copied", ""]
        lines += [f"- {_config_problem(problem)}" for problem in report.config_errors]
        lines.append("")
    lines += [_totals(report, images), ""]
    places = destinations(report)
    sections = [(place, [r for r in report.results if r.destination == place]) for place in places]
    if len(places) > 1:
        lines += ["### Destinations", ""]
        for place, rows in sections:
            part = Report(started=report.started, finished=report.finished, results=rows)
            lines.append(f"- {_code(place)}: {_totals(part, group_images(rows))}")
        lines.append("")
    else:
        sections = []
    for limit in ratelimits:
        lines += [f"**Rate limit:** {render_ratelimit(limit)}", ""]
    if failed or missing:
        lines += ["### Failures", ""]
        lines += _failures_table(failed, missing)
        lines.append("")
    warned = [image for image in images if image.warnings]
    if warned or report.warnings:
        lines += ["### Warnings", ""]
        # Run-level warnings (tag rules that chose nothing) name their source themselves.
        lines += [f"- ⚠️ {_cell(_cut(w))}" for w in report.warnings]
        if warned:
            lines += [""] if report.warnings else []
            lines += ["| Image | Warning |", "| --- | --- |"]
        for image in warned:
            lines += [f"| {_code(image.target)} | {_cell(_cut(w))} |" for w in image.warnings]
        lines.append("")
    # With several destinations, a section of images per destination (rows naming none last).
    sections.append(("", [r for r in report.results if not sections or not r.destination]))
    for place, rows in sections:
        if rows:
            lines += [f"### Images → {_code(place)}" if place else "### Images", ""]
        for image in group_images(rows):
            lines += _image_table(image)
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _headline(
    title: str,
    images: list[ImageResults],
    failed: list[ImageResults],
    missing: Sequence[str],
    config_errors: int = 0,
) -> str:
    count = len(images)
    noun = "image" if count == 1 else "images"
    problems: list[str] = []
    if config_errors:
        plural = "" if config_errors == 1 else "s"
        problems.append(f"not started, {config_errors} configuration problem{plural}")
    if failed:
        problems.append(f"{len(failed)} of {count} {noun} failed")
    if missing:
        problems.append(f"{len(missing)} report{'' if len(missing) == 1 else 's'} missing")
    if problems:
        return f"{STATUS_ICONS['failed']} {_cell(title)}: {', '.join(problems)}"
    if any(image.status == "planned" for image in images):
        return f"{STATUS_ICONS['planned']} {_cell(title)} (dry run): {count} {noun}"
    if not images:
        return f"{STATUS_ICONS['copied']} {_cell(title)}: no images"
    return f"{STATUS_ICONS['copied']} {_cell(title)}: {count} {noun} OK"


def _totals(report: Report, images: list[ImageResults]) -> str:
    counts = report.summary()
    parts = [
        f"{counts[s]} {s}"
        for s in ("copied", "unchanged", "failed", "planned", "interrupted")
        if counts[s] or s not in ("planned", "interrupted")
    ]
    total, count = len(report.results), len(images)
    if report.finished is not None:
        elapsed = (report.finished - report.started).total_seconds()
    else:
        elapsed = sum(r.duration_s for r in report.results)
    moved = "to copy" if counts["planned"] and not counts["copied"] else "copied"
    return (
        f"**{total} tag{'' if total == 1 else 's'}** in {count} image{'' if count == 1 else 's'}: "
        f"{', '.join(parts)} · {human_size(counts['bytes_copied'])} {moved} in {human_duration(elapsed)}"
    )


def _failures_table(failed: list[ImageResults], missing: Sequence[str]) -> list[str]:
    rows = ["| Image | Tags | Source | Error |", "| --- | --- | --- | --- |"]
    for image in failed:
        tags = ", ".join(_code(tag) for tag in image.failed_tags)
        error = _cut(short_digests("; ".join(image.errors)))  # the report keeps whole digests
        rows.append(f"| {_code(image.target)} | {tags} | {_code(image.source)} | {_cell(error)} |")
    for path in missing:
        rows.append(
            f"| {_code(path)} | - | - | missing report: that shard wrote none "
            "(it crashed or was cancelled before finishing); its images are not in this summary |"
        )
    return rows


def _image_table(image: ImageResults) -> list[str]:
    icon = STATUS_ICONS.get(image.status, "")
    rows = [
        f"#### {icon} {_code(image.target)} ← {_code(image.source)}",
        "",
        "| Tag | Platforms | Status | Size | Time |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in image.results:
        platforms = ", ".join(map(short_platform, r.platforms)) or "-"
        size = (
            "-"
            if r.status in ("failed", "planned", "interrupted") and not r.bytes_copied
            else human_size(r.bytes_copied)
        )
        status = f"{STATUS_ICONS.get(r.status, '')} {r.status}"
        tag = _code(r.tag) + (f" ← {_cell(r.rule)}" if r.rule else "")
        rows.append(f"| {tag} | {_cell(platforms)} | {status} | {size} | {human_duration(r.duration_s)} |")
    # Version 1 reports carried notes (allow_partial) in the error of a copied row.
    notes = dict.fromkeys(r.error for r in image.results if r.error and r.status != "failed")
    extra = [f"Note: {_cell(note)}" for note in notes if note]
    if image.skipped:
        shown = ", ".join(_code(short_platform(p)) for p in image.skipped)
        extra.append(f"Skipped (not in the source, allow_partial): {shown}")
    extra += [f"⚠️ Warning: {_cell(_cut(w))}" for w in image.warnings]
    return [*rows, "", *extra] if extra else rows


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _config_problem(problem: ConfigProblem) -> str:
    if problem.file is None:
        return _cell(problem.message)
    where = f"{problem.file}:{problem.line}" if problem.line else problem.file
    return f"{_code(where)}: {_cell(problem.message)}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: HTML, pipes, backticks and newlines escaped."""
    text = html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return text.replace("\n", "<br>")


def render_ratelimit(limit: RateLimit) -> str:
    """``87 of 100 requests remaining per 6h at `host``` (Markdown)."""
    return limit.describe(_code(limit.host))


def _code(text: str) -> str:
    """``text`` as inline code, or escaped plain text when it could not be one safely."""
    if not text or any(c in text for c in "`|\r\n") or text != text.strip():
        return _cell(text) or "-"
    return f"`{text}`"
