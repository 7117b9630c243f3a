"""What a run shows while it works: rich bars in a terminal, plain lines in logs, groups on GitHub.

:func:`choose_display` picks one from the environment:

- ``quiet`` (``-q``): nothing per image; the final table and errors still print.
- ``github`` (``GITHUB_ACTIONS=true``): per image a collapsible ``::group::`` holding its tags.
- ``rich`` (stderr is a terminal): overall bytes and one bar per image in flight; finished
  images scroll above the bars. ``NO_COLOR`` (https://no-color.org) turns colour off, not the bars.
- ``plain`` (anything else, e.g. a pipe or a CI log): one line per event on stderr.

``plain`` and ``github`` also print a progress line per image in flight every 30 s
(``cli/ticker.py``), so a long layer is not silent in a log.

rich is imported only when its bars are drawn (start-up time, see ``docker_transfer.speedups``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import click

from docker_transfer.cli.bars import byte_bars
from docker_transfer.cli.ticker import ProgressTicker, interval_from
from docker_transfer.engine.sync import SyncEvents
from docker_transfer.plan import Job
from docker_transfer.report import TagResult, human_duration, human_size, short_digests
from docker_transfer.summary import ENDGROUP, group_command, image_status, inert

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

Display = Literal["quiet", "github", "rich", "plain"]
Redactor = Callable[[str], str]

STATUS_STYLES = {
    "copied": "green",
    "unchanged": "dim",
    "failed": "bold red",
    "planned": "cyan",
    "interrupted": "yellow",
}


def choose_display(environ: Mapping[str, str], *, stderr_tty: bool, quiet: bool) -> Display:
    """The display for this run: see the module docstring for the rules, in that order."""
    if quiet:
        return "quiet"
    if environ.get("GITHUB_ACTIONS", "").strip().lower() == "true":
        return "github"
    if stderr_tty and environ.get("TERM", "") != "dumb":
        return "rich"
    return "plain"


def no_color(environ: Mapping[str, str]) -> bool:
    """True when ``NO_COLOR`` is set to a non-empty value (https://no-color.org)."""
    return bool(environ.get("NO_COLOR", ""))


def _same(text: str) -> str:
    return text


def image_line(job: Job, results: Sequence[TagResult], position: str = "", *, errors: bool = True) -> str:
    """``[3/10] copied    src -> dest:tag1,tag2 (12.3 MB): error`` for a finished image."""
    status = image_status(results) if results else "failed"
    moved = sum(r.bytes_copied for r in results)
    tags = ",".join(r.tag for r in results)
    prefix = f"[{position}] " if position else ""
    line = f"{prefix}{status:<9} {job.entry.source} -> {job.destination.name}:{tags}"
    if status in ("copied", "planned"):
        line += f" ({human_size(moved)}{' to copy' if status == 'planned' else ''})"
    errors_seen = list(dict.fromkeys(r.error for r in results if r.error))
    notes = list(dict.fromkeys(p for r in results for p in r.skipped))
    if notes:
        notes = [f"skipped {', '.join(notes)} (not in the source)"]
    notes += dict.fromkeys(f"warning: {w}" for r in results for w in r.warnings)
    # A failure's error is printed once, in the final table; the live line points there.
    below = bool(errors_seen) and not errors and status in ("failed", "interrupted")
    shown = notes if below else errors_seen + notes
    if shown:
        line += f": {'; '.join(shown)}"
    if below:
        line += " (error below)"
    return short_digests(line)


def tag_line(result: TagResult) -> str:
    """One tag's outcome, for the body of a GitHub log group."""
    platforms = ",".join(result.platforms) or "-"
    parts = [
        f"{result.tag}: {result.status}",
        result.digest or "-",
        platforms,
        human_size(result.bytes_copied),
        human_duration(result.duration_s),
    ]
    line = "  " + "  ".join(parts)
    for warning in result.warnings:
        line += f"\n    warning: {warning}"
    return line


class QuietEvents(SyncEvents):
    """``-q``: nothing per image."""


class _Ticking(SyncEvents):
    """A progress line per image in flight every ``interval`` seconds (default: cli/ticker.py)."""

    def _start_ticker(self, interval: float | None) -> None:
        self.ticker = ProgressTicker(self._progress_line, interval or interval_from(os.environ))

    def _progress_line(self, line: str) -> None:
        click.echo(line, err=True)

    def job_sized(self, job: Job, total: int) -> None:
        """Remember the image's size for its progress lines."""
        self.ticker.sized(id(job), total)

    def bytes_moved(self, job: Job, n: int) -> None:
        """Count the image's bytes for its progress lines."""
        self.ticker.moved(id(job), n)

    def jobs_planned(self, jobs: Sequence[Job]) -> None:
        """Count the jobs tag rules made in ``[finished/total]``."""
        self.total = len(jobs)


class PlainEvents(_Ticking):
    """One line on stderr when an image starts and one when it ends: readable in any log.

    In between, a progress line every ``interval`` seconds (bytes, rate, ETA).
    """

    def __init__(self, total: int, redact: Redactor = _same, interval: float | None = None) -> None:
        self.total = total
        self.finished = 0
        self._redact = redact
        self._start_ticker(interval)

    def _progress_line(self, line: str) -> None:
        click.echo(self._redact(line), err=True)

    def job_started(self, job: Job) -> None:
        """``start     src -> dest``."""
        click.echo(self._redact(f"{'start':<9} {job.entry.source} -> {job.destination.name}"), err=True)
        self.ticker.started(id(job), f"{job.entry.source} -> {job.destination.name}")

    def job_finished(self, job: Job, results: Sequence[TagResult]) -> None:
        """The image's status line, numbered ``[finished/total]``; its error is in the final table."""
        self.ticker.finished(id(job))
        self.finished += 1
        line = image_line(job, results, f"{self.finished}/{self.total}", errors=False)
        click.echo(self._redact(line), err=True)


class GitHubEvents(_Ticking):
    """Per finished image a ``::group::`` titled by its status line, holding one line per tag.

    Images run concurrently, so a group is written whole when its image ends; until then a
    progress line every ``interval`` seconds. ``before_output`` runs first each time (the CLI
    masks newly read secrets there).
    """

    def __init__(
        self,
        total: int,
        redact: Redactor = _same,
        before_output: Callable[[], None] | None = None,
        interval: float | None = None,
    ) -> None:
        self.total = total
        self.finished = 0
        self._redact = redact
        self._before = before_output
        self._start_ticker(interval)

    def _progress_line(self, line: str) -> None:
        if self._before is not None:
            self._before()
        click.echo(inert(self._redact(line)), err=True)

    def job_started(self, job: Job) -> None:
        """Start the image's progress lines (its group comes when it ends)."""
        self.ticker.started(id(job), f"{job.entry.source} -> {job.destination.name}")

    def job_finished(self, job: Job, results: Sequence[TagResult]) -> None:
        """Write the image's group."""
        self.ticker.finished(id(job))
        if self._before is not None:
            self._before()
        self.finished += 1
        title = image_line(job, results, f"{self.finished}/{self.total}", errors=False)
        errors = dict.fromkeys(r.error for r in results if r.error)
        body = "\n".join([*(tag_line(r) for r in results), *(f"    {e}" for e in errors)])
        lines = [group_command(self._redact(title)), inert(self._redact(body)), ENDGROUP]
        click.echo("\n".join(lines), err=True)


class RichEvents(SyncEvents):
    """Rich bars on stderr: overall bytes plus one bar per image in flight.

    Use as a context manager around the run. Finished images print a
    status line above the bars; the bars vanish at the end.
    """

    def __init__(self, total: int, console: Console, redact: Redactor = _same) -> None:
        self.total = total
        self.finished = 0
        self.console = console
        self._redact = redact
        self._progress = byte_bars(console)
        self._overall = self._progress.add_task(self._overall_label(), total=None)
        self._sized = 0
        self._tasks: dict[int, TaskID] = {}

    def _overall_label(self) -> str:
        return f"all images {self.finished}/{self.total}"

    def jobs_planned(self, jobs: Sequence[Job]) -> None:
        """Count the jobs tag rules made in the overall bar's label."""
        self.total = len(jobs)
        self._progress.update(self._overall, description=self._overall_label())

    def job_started(self, job: Job) -> None:
        """Add the image's bar (its size is unknown until :meth:`job_sized`)."""
        label = job.destination.repository
        self._tasks[id(job)] = self._progress.add_task(label, total=None)

    def job_sized(self, job: Job, total: int) -> None:
        """Set the image's size and grow the overall total."""
        task = self._tasks.get(id(job))
        if task is not None:
            self._progress.update(task, total=total)
        self._sized += total
        self._progress.update(self._overall, total=self._sized)

    def bytes_moved(self, job: Job, n: int) -> None:
        """Advance the image's bar and the overall one."""
        task = self._tasks.get(id(job))
        if task is not None:
            self._progress.advance(task, n)
        self._progress.advance(self._overall, n)

    def job_finished(self, job: Job, results: Sequence[TagResult]) -> None:
        """Drop the image's bar and print its status line above the bars."""
        task = self._tasks.pop(id(job), None)
        if task is not None:
            self._progress.remove_task(task)
        self.finished += 1
        self._progress.update(self._overall, description=self._overall_label())
        line = self._redact(image_line(job, results, f"{self.finished}/{self.total}", errors=False))
        status = image_status(results) if results else "failed"
        from rich.text import Text  # noqa: PLC0415 - rich only when bars are drawn

        self._progress.console.print(Text(line, style=STATUS_STYLES.get(status, "")), soft_wrap=True)

    def __enter__(self) -> RichEvents:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
