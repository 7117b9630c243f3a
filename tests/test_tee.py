"""The tee behind several destinations: one source read, bounded queues, failing consumers dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from docker_transfer.engine.tee import tee
from docker_transfer.errors import TransportError

CHUNKS = [bytes([i]) * 1000 for i in range(40)]
EXPECTED = b"".join(CHUNKS)


class Source:
    """Counts the chunks handed out, so consumers can say how far ahead the reader got."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.produced = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            for i, chunk in enumerate(self.chunks):
                if i == self.fail_at:
                    raise TransportError("source.example", "connection reset")
                self.produced += 1
                yield chunk
        finally:
            self.closed = True


def collector(
    out: bytearray, source: Source, lags: list[int] | None = None, slow: bool = False, fail_after: int = -1
) -> Callable[[AsyncIterator[bytes]], Awaitable[None]]:
    async def consume(chunks: AsyncIterator[bytes]) -> None:
        n = 0
        async for chunk in chunks:
            if lags is not None:
                lags.append(source.produced - n)
            if n == fail_after:
                raise TransportError("dest.example", "upload cut")
            out.extend(chunk)
            n += 1
            if slow:
                for _ in range(5):  # yield to the loop a few times: the reader may run ahead if it can
                    await asyncio.sleep(0)

    return consume


def test_every_consumer_gets_every_byte_and_a_slow_one_paces_the_reader() -> None:
    source = Source(CHUNKS)
    fast, slow = bytearray(), bytearray()
    lags: list[int] = []

    async def main() -> list[BaseException | None]:
        return await tee(
            source.__aiter__(), [collector(fast, source), collector(slow, source, lags, slow=True)], maxsize=3
        )

    assert asyncio.run(main()) == [None, None]
    assert bytes(fast) == bytes(slow) == EXPECTED
    # The reader is never more than the queue (3) plus the chunk in hand ahead of the slowest consumer.
    assert max(lags) <= 3 + 1, lags
    assert max(lags) >= 2  # and it did run ahead as far as the queue allows (the bound is not trivially met)


def test_a_failing_consumer_is_dropped_and_the_others_finish() -> None:
    source = Source(CHUNKS)
    good, bad, other = bytearray(), bytearray(), bytearray()

    async def main() -> list[BaseException | None]:
        return await tee(
            source.__aiter__(),
            [
                collector(good, source),
                collector(bad, source, fail_after=5),
                collector(other, source, slow=True),
            ],
            maxsize=2,
        )

    errors = asyncio.run(main())
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], TransportError) and "upload cut" in str(errors[1])
    assert bytes(good) == bytes(other) == EXPECTED
    assert len(bad) == 5 * 1000
    assert source.produced == len(CHUNKS)  # read once, to the end


def test_when_every_consumer_fails_the_reader_stops() -> None:
    source = Source(CHUNKS)
    one, two = bytearray(), bytearray()

    async def main() -> list[BaseException | None]:
        return await tee(
            source.__aiter__(),
            [collector(one, source, fail_after=2), collector(two, source, fail_after=3)],
            2,
        )

    errors = asyncio.run(main())
    assert all(isinstance(e, TransportError) for e in errors)
    assert source.produced < 10  # stopped soon after the last consumer failed, not read to the end


def test_a_source_failure_reaches_every_consumer() -> None:
    source = Source(CHUNKS, fail_at=7)
    one, two = bytearray(), bytearray()

    async def main() -> list[BaseException | None]:
        return await tee(source.__aiter__(), [collector(one, source), collector(two, source)], 2)

    errors = asyncio.run(main())
    assert [str(e) for e in errors] == [str(errors[0])] * 2
    assert isinstance(errors[0], TransportError) and "connection reset" in str(errors[0])
    assert bytes(one) == bytes(two) == b"".join(CHUNKS[:7])


def test_a_consumer_stopping_early_without_error_does_not_block_the_others() -> None:
    source = Source(CHUNKS)
    full = bytearray()

    async def takes_one(chunks: AsyncIterator[bytes]) -> None:
        async for _ in chunks:
            return

    async def main() -> list[BaseException | None]:
        return await tee(source.__aiter__(), [takes_one, collector(full, source)], 1)

    assert asyncio.run(main()) == [None, None]
    assert bytes(full) == EXPECTED


def test_cancelling_the_tee_cancels_its_consumers() -> None:
    source = Source(CHUNKS)
    started = asyncio.Event

    async def main() -> None:
        hold = asyncio.Event()
        entered = started()

        async def stuck(chunks: AsyncIterator[bytes]) -> None:
            entered.set()
            await hold.wait()

        task = asyncio.ensure_future(tee(source.__aiter__(), [stuck], 1))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
