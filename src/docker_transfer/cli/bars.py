"""rich byte bars; rich itself is imported only when bars are drawn (start-up time: ``speedups.py``).

:class:`ByteProgress` is the single-image bar of ``docker-transfer copy``; :func:`byte_bars`
also draws ``sync``'s bars (``cli/progress.py``).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


LABEL_WIDTH = (12, 40)
"""The narrowest and widest label column; a third of the terminal in between."""

BAR_WIDTH = (5, 40)

NUMBERS_WIDTH = 40
"""The widest the other columns get, with a space before each and two spare columns:
``1023.9/1023.9 MB`` (16), ``1023.9 MB/s`` (11), ``12:34:56`` (8)."""


def layout(width: int) -> tuple[int, int]:
    """The label and bar widths that keep one bar line within ``width`` columns."""
    label = max(LABEL_WIDTH[0], min(LABEL_WIDTH[1], width // 3))
    bar = max(BAR_WIDTH[0], min(BAR_WIDTH[1], width - label - NUMBERS_WIDTH))
    overflow = label + bar + NUMBERS_WIDTH - width
    if overflow > 0:  # a narrow terminal: the label gives way down to its minimum
        label = max(LABEL_WIDTH[0], label - overflow)
    return label, bar


def shorten_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle (``registry.exa…/team/nginx``).

    The middle goes because both ends tell images apart: the registry at the start, the
    repository name at the end (which keeps the larger half).
    """
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def byte_bars(console: Console) -> Progress:
    """A transient rich ``Progress`` of labelled byte bars (size, speed, time left).

    A bar line never wraps: the label is shortened in the middle and the bar narrowed to fit
    the console's width, measured again at every refresh (a resized terminal follows).
    Labels are plain text, never rich markup (an image name may hold ``[``).
    """
    from rich.progress import (  # noqa: PLC0415 - rich only when bars are drawn
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        Task,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress_bar import ProgressBar  # noqa: PLC0415
    from rich.table import Column  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    class Label(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(shorten_middle(task.description, layout(console.width)[0]), no_wrap=True)

    class FittedBar(BarColumn):
        def render(self, task: Task) -> ProgressBar:
            self.bar_width = layout(console.width)[1]
            return super().render(task)

    def fixed() -> Column:
        return Column(no_wrap=True)

    return Progress(
        Label(table_column=fixed()),
        FittedBar(table_column=fixed()),
        DownloadColumn(table_column=fixed()),
        TransferSpeedColumn(table_column=fixed()),
        TimeRemainingColumn(table_column=fixed()),
        console=console,
        transient=True,
    )


class ByteProgress:
    """The single-image bar of ``docker-transfer copy``, shown when ``enabled`` (stderr is a TTY)."""

    def __init__(self, *, enabled: bool, total: int, label: str) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled:
            from rich.console import Console  # noqa: PLC0415 - rich only when bars are drawn

            self._progress = byte_bars(Console(stderr=True))
            self._task = self._progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes (negative after a retry rewinds)."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def __enter__(self) -> ByteProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
