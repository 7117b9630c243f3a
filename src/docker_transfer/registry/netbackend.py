"""httpcore's network seam on plain asyncio: sockets without anyio's per-call overhead.

httpcore (under httpx) reads and writes through a pluggable *network backend*. Its default
on asyncio goes through anyio, which opens a cancel scope and a deadline for every single
read and write. A blob stream is hundreds of reads and writes per 100 MiB, and in the
cold-copy profile that bookkeeping cost more CPU than the socket calls themselves
(docs/performance.md). This backend keeps httpx, httpcore and h11 as they are (requests,
pooling, proxies, TLS settings, HTTP parsing) and only replaces the byte pipe underneath:
an :class:`asyncio.Protocol` with a queue of received chunks. A timer is armed only when a
read or a write actually has to wait.

Errors are httpcore's own (``ConnectError``, ``ReadTimeout``…), chained to the original
``OSError``/``ssl.SSLError`` like its default backend does, so httpx maps them unchanged.
"""

# The `timeout` parameters are httpcore's interface, not ours to replace with asyncio.timeout().
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

# Bytes per socket read and the asyncio attributes that set them: docker_transfer.speedups
# (this backend is one of the speed-ups, plugged in by it).
from docker_transfer.speedups import READ_SIZE, larger_tcp_reads, larger_tls_reads

__all__ = ["READ_SIZE", "AsyncioBackend", "AsyncioStream"]

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]

# Seconds before the next address of a host is tried in parallel (RFC 8305's recommendation).
HAPPY_EYEBALLS_DELAY = 0.25
# Stop reading from the kernel while this much is received and not yet consumed.
HIGH_WATER = 2 * READ_SIZE


class _Pipe(asyncio.Protocol):
    """Received chunks in arrival order; a waiter for data and one for write room."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.queued = 0
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.data_waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the (plain TCP or Unix) transport; ``start_tls`` replaces it with the TLS one."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Queue the chunk; pause the socket when the consumer falls behind."""
        self.chunks.append(data)
        self.queued += len(data)
        if self.queued > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake("data_waiter")

    def eof_received(self) -> bool:
        """The peer finished sending: reads drain the queue, then return ``b""``."""
        self.eof = True
        self._wake("data_waiter")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake every waiter; a reset is kept to be raised by the next read or write."""
        self.eof = True
        self.error = exc
        self._wake("data_waiter")
        self._wake("drain_waiter")

    def pause_writing(self) -> None:
        """The transport's buffer is full."""
        self.writing_paused = True

    def resume_writing(self) -> None:
        """The transport's buffer drained."""
        self.writing_paused = False
        self._wake("drain_waiter")

    def _wake(self, name: str) -> None:
        waiter: asyncio.Future[None] | None = getattr(self, name)
        if waiter is not None:
            setattr(self, name, None)
            if not waiter.done():
                waiter.set_result(None)

    def take(self, max_bytes: int) -> bytes:
        """The next queued bytes, at most ``max_bytes``."""
        chunk = self.chunks.popleft()
        if len(chunk) > max_bytes:
            self.chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        self.queued -= len(chunk)
        if self.reading_paused and self.queued <= HIGH_WATER // 4 and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return chunk


async def _wait(
    pipe: _Pipe, name: str, timeout: float | None, on_timeout: type[Exception], what: str
) -> None:
    """Wait on a fresh waiter future stored as ``pipe.<name>``, failing after ``timeout`` seconds."""
    waiter: asyncio.Future[None] = pipe.loop.create_future()
    setattr(pipe, name, waiter)
    timer = None if timeout is None else pipe.loop.call_later(timeout, waiter.cancel)
    try:
        await waiter
    except asyncio.CancelledError:
        if timer is not None and waiter.cancelled() and not _task_cancelling():
            raise on_timeout(f"{what} timed out after {timeout} s") from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if getattr(pipe, name) is waiter:
            setattr(pipe, name, None)


def _task_cancelling() -> bool:
    """True when the current task itself is being cancelled (not just our timer firing)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class AsyncioStream(AsyncNetworkStream):
    """One connection: reads from the pipe's queue, writes to its transport."""

    def __init__(self, pipe: _Pipe, transport: asyncio.Transport) -> None:
        self._pipe = pipe
        self._transport = transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes``; ``b""`` at the end of the stream."""
        pipe = self._pipe
        while not pipe.chunks:
            if pipe.eof:
                if pipe.error is not None:
                    raise httpcore.ReadError(str(pipe.error) or type(pipe.error).__name__) from pipe.error
                return b""
            await _wait(pipe, "data_waiter", timeout, httpcore.ReadTimeout, "read")
        return pipe.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Hand ``buffer`` to the transport; wait while its buffer is over the high-water mark."""
        if not buffer:
            return
        pipe = self._pipe
        if (pipe.eof and pipe.error is not None) or self._transport.is_closing():
            raise httpcore.WriteError("connection closed") from pipe.error
        self._transport.write(buffer)
        while pipe.writing_paused:
            if pipe.error is not None or self._transport.is_closing():
                raise httpcore.WriteError("connection closed") from pipe.error
            await _wait(pipe, "drain_waiter", timeout, httpcore.WriteTimeout, "write")

    async def aclose(self) -> None:
        """Close without waiting for the peer."""
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> AsyncNetworkStream:
        """Upgrade this connection (an https origin, or a tunnel through a proxy) to TLS."""
        loop = self._pipe.loop
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._pipe, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake timed out after {timeout} s") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:  # pragma: no cover - only for server-side protocols
            raise httpcore.ConnectError("TLS upgrade failed")
        assert isinstance(transport, asyncio.Transport)
        # start_tls does not call connection_made again: flow control now goes through the
        # TLS transport (pausing it stops decryption, and the TLS layer then pauses the socket).
        self._pipe.transport = transport
        larger_tls_reads(transport)
        return AsyncioStream(self._pipe, transport)

    def get_extra_info(self, info: str) -> Any:
        """What httpcore asks of a stream: ``ssl_object``, addresses, ``socket``, ``is_readable``."""
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # An idle pooled connection is readable when the server closed it or sent junk.
            return bool(self._pipe.chunks) or self._pipe.eof or self._transport.is_closing()
        return None


class AsyncioBackend(AsyncNetworkBackend):
    """Opens :class:`AsyncioStream` connections (TCP and Unix sockets)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        """A TCP connection (``TCP_NODELAY``, as asyncio sets by default)."""
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        pipe = _Pipe(loop)
        try:
            async with asyncio.timeout(timeout):
                # Happy eyeballs (RFC 8305) as anyio does: a dead IPv6 route does not hold up IPv4.
                transport, _ = await loop.create_connection(
                    lambda: pipe, host, port, local_addr=local, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connect to {host}:{port} timed out after {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return self._stream(pipe, transport, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> AsyncNetworkStream:
        """A Unix socket connection."""
        loop = asyncio.get_running_loop()
        pipe = _Pipe(loop)
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_unix_connection(lambda: pipe, path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connect to {path} timed out after {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return self._stream(pipe, transport, socket_options)

    @staticmethod
    def _stream(
        pipe: _Pipe, transport: asyncio.BaseTransport, socket_options: Iterable[SocketOption] | None
    ) -> AsyncioStream:
        assert isinstance(transport, asyncio.Transport)
        sock: socket.socket | None = transport.get_extra_info("socket")
        for option in socket_options or ():
            if sock is not None:
                sock.setsockopt(*option)
        larger_tcp_reads(transport)
        return AsyncioStream(pipe, transport)

    async def sleep(self, seconds: float) -> None:
        """Sleep (httpcore's connect retries)."""
        await asyncio.sleep(seconds)
