"""One byte stream fed to several consumers at once, at the pace of the slowest.

Each consumer reads its own bounded queue, so memory stays at most
``consumers * maxsize`` chunks (fewer: the chunks are shared objects). The
reader waits for room in every live queue before reading on (back-pressure). A
consumer that fails is dropped: its queue is emptied and never fed again, so the
others go on. When every consumer has failed or stopped, the reader stops too. A
failure of the source itself reaches every consumer still reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

Consumer = Callable[[AsyncIterator[bytes]], Awaitable[None]]
"""Takes the stream as an async iterator; returns when done, raises when it fails."""
QUEUE_CHUNKS = 4
"""Chunks each consumer may lag behind the reader."""


@dataclass
class _End:
    """Queued after the last chunk: the stream ended, or (with ``error``) the source failed."""

    error: BaseException | None = None


@dataclass
class _Lane:
    queue: asyncio.Queue[bytes | _End]
    live: bool = True
    error: BaseException | None = field(default=None)

    def drop(self) -> None:
        """Stop feeding this lane and free what it holds, unblocking a reader waiting for room."""
        self.live = False
        while not self.queue.empty():
            self.queue.get_nowait()


async def _drain(lane: _Lane) -> AsyncIterator[bytes]:
    while True:
        item = await lane.queue.get()
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            return
        yield item


async def tee(
    source: AsyncIterator[bytes], consumers: Sequence[Consumer], maxsize: int = QUEUE_CHUNKS
) -> list[BaseException | None]:
    """Feed ``source`` to every consumer; per consumer ``None`` (done) or what it raised.

    ``source`` is read once. It is not closed here: the caller owns it.
    """
    lanes = [_Lane(asyncio.Queue(maxsize)) for _ in consumers]

    async def consume(lane: _Lane, consumer: Consumer) -> None:
        try:
            await consumer(_drain(lane))
        except Exception as exc:
            lane.error = exc
        finally:
            lane.drop()

    tasks = [asyncio.ensure_future(consume(lane, c)) for lane, c in zip(lanes, consumers, strict=True)]

    async def put(lane: _Lane, item: bytes | _End) -> None:
        if lane.live:
            await lane.queue.put(item)

    try:
        try:
            async for chunk in source:
                if not any(lane.live for lane in lanes):
                    break  # nobody reads any more: stop pulling from the source
                for lane in lanes:
                    await put(lane, chunk)
        except Exception as exc:
            for lane in lanes:
                await put(lane, _End(exc))
        else:
            for lane in lanes:
                await put(lane, _End())
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
    return [lane.error for lane in lanes]
