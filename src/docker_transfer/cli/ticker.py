"""Progress lines for logs: while an image is in flight, one line every 30 s (bytes, rate, ETA).

A terminal has bars (``cli/bars.py``); a log (a pipe, CI, GitHub Actions) only had a ``start``
and a final line per image, so a six-minute layer was six silent minutes. :class:`ProgressTicker`
fills the gap: ``copying   SRC -> DEST: 45.0 MB of 120.0 MB (37%), 2.1 MB/s, ETA 36s``.

The timers run on the event loop that calls :meth:`ProgressTicker.started` (sync's events are
called from inside its loop); outside a loop nothing is scheduled. ``DT_PROGRESS_INTERVAL``
(seconds) changes the interval.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from docker_transfer.report import human_duration, human_size

DEFAULT_INTERVAL = 30.0
INTERVAL_ENV = "DT_PROGRESS_INTERVAL"


def interval_from(environ: Mapping[str, str]) -> float:
    """``DT_PROGRESS_INTERVAL`` in seconds if it is a positive number, else 30."""
    try:
        value = float(environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def progress_line(label: str, moved: int, total: int | None, rate: float) -> str:
    """``copying   LABEL: 45.0 MB of 120.0 MB (37%), 2.1 MB/s, ETA 36s`` (``rate`` in bytes/s)."""
    speed = f"{human_size(int(rate))}/s"
    if total is None:
        return f"{'copying':<9} {label}: {human_size(moved)} so far, {speed}"
    done = min(moved, total)
    percent = 100 * done // total if total else 100
    eta = f"ETA {_eta((total - done) / rate)}" if rate > 0 else "no bytes in the last interval"
    return f"{'copying':<9} {label}: {human_size(done)} of {human_size(total)} ({percent}%), {speed}, {eta}"


def _eta(seconds: float) -> str:
    # Whole seconds: a tenth of a second is noise in an estimate.
    return f"{math.ceil(seconds)}s" if seconds < 60 else human_duration(seconds)


@dataclass
class _InFlight:
    label: str
    started: float
    total: int | None = None
    moved: int = 0
    at_last_line: int = 0
    last_line: float = 0.0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class ProgressTicker:
    """Emits :func:`progress_line` for each image in flight every ``interval`` seconds.

    ``key`` identifies an image (sync passes ``id(job)``); ``emit`` prints a line.
    The rate shown is that of the last interval, so a stall shows as one.
    """

    def __init__(
        self,
        emit: Callable[[str], None],
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._emit = emit
        self._clock = clock
        self._jobs: dict[int, _InFlight] = {}

    def started(self, key: int, label: str) -> None:
        """An image begins: its first line comes one interval from now."""
        now = self._clock()
        state = _InFlight(label=label, started=now, last_line=now)
        self._jobs[key] = state
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop, no timer: tick() can still be called by hand
        state.timer = loop.call_later(self.interval, self._scheduled, key)

    def sized(self, key: int, total: int) -> None:
        """The image's size is known."""
        state = self._jobs.get(key)
        if state is not None:
            state.total = total

    def moved(self, key: int, n: int) -> None:
        """``n`` more bytes (negative after a retry rewinds)."""
        state = self._jobs.get(key)
        if state is not None:
            state.moved = max(0, state.moved + n)

    def finished(self, key: int) -> None:
        """The image ended: no more lines for it."""
        state = self._jobs.pop(key, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    def tick(self, key: int) -> None:
        """Emit the image's line now."""
        state = self._jobs.get(key)
        if state is None:
            return
        now = self._clock()
        elapsed = now - state.last_line
        rate = (state.moved - state.at_last_line) / elapsed if elapsed > 0 else 0.0
        state.last_line, state.at_last_line = now, state.moved
        self._emit(progress_line(state.label, state.moved, state.total, max(rate, 0.0)))

    def _scheduled(self, key: int) -> None:
        state = self._jobs.get(key)
        if state is None:
            return
        self.tick(key)
        state.timer = asyncio.get_running_loop().call_later(self.interval, self._scheduled, key)
