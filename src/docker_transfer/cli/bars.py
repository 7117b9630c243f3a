"""rich byte bars; rich itself is imported only when bars are drawn (start-up time: ``_startup.py``).

:class:`ByteProgress` is the single-image bar of ``docker-transfer copy``; :func:`byte_bars`
also draws ``sync``'s bars (``cli/progress.py``).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


def byte_bars(console: Console, *, markup: bool = True) -> Progress:
    """A transient rich ``Progress`` of labelled byte bars (size, speed, time left)."""
    from rich.progress import (  # noqa: PLC0415 - rich only when bars are drawn
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}", markup=markup),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
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
