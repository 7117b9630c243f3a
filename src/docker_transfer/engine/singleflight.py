"""Run a piece of work once per key, however many callers ask for it at the same time.

Callers of the same key share one task and its result; cancelling one caller does not
cancel the task the others wait on. A task that failed or was cancelled is not
remembered as an answer: the next caller starts it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """One shared task per key, retried by the next caller after a failure."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Future[T]] = {}

    def live(self, key: K) -> asyncio.Future[T] | None:
        """The key's task, running or succeeded; None when there is none or it failed."""
        task = self._tasks.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            return None
        return task

    def start(self, key: K, make: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """Start ``make()`` as the key's task, replacing any earlier one."""
        task = asyncio.ensure_future(make())
        self._tasks[key] = task
        return task

    def adopt(self, key: K, task: asyncio.Future[T]) -> None:
        """Make ``task``, started elsewhere, the key's task."""
        self._tasks[key] = task

    async def run(self, key: K, make: Callable[[], Awaitable[T]]) -> T:
        """The key's result: from its live task, else from ``make()`` started now."""
        task = self.live(key) or self.start(key, make)
        return await asyncio.shield(task)

    def tasks(self) -> list[asyncio.Future[T]]:
        """Every task remembered, finished or not."""
        return list(self._tasks.values())

    def pending(self) -> list[asyncio.Future[T]]:
        """Tasks still running."""
        return [t for t in self._tasks.values() if not t.done()]

    def forget(self, key: K) -> asyncio.Future[T] | None:
        """Drop the key's finished task, so the next caller runs the work again; returns it.

        A running task is kept: its callers still wait on it.
        """
        task = self._tasks.get(key)
        if task is None or not task.done():
            return None
        del self._tasks[key]
        return task
