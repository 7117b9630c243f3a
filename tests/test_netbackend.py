"""The asyncio network backend under httpx (registry/netbackend.py) and the deferred CA bundle.

Every test talks to a real asyncio server on 127.0.0.1 through the client
``TransportOptions.build_client`` builds, so httpx, httpcore and h11 sit on top as in a run:
with docker_transfer.speedups applied, as the command line does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trustme
from httpcore._async.http11 import AsyncHTTP11Connection

from docker_transfer import speedups
from docker_transfer.registry.hostpool import PerOriginTransport
from docker_transfer.registry.netbackend import READ_SIZE, AsyncioBackend
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.speedups import DeferredTrustContext

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(autouse=True)
def applied(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed-ups on, as the command line has them (their state is restored afterwards)."""
    monkeypatch.setattr(speedups, "_STATE", speedups._State())
    speedups.apply()


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """A TCP server on a free port; yields ``http://127.0.0.1:PORT``."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """The request line and its body (Content-Length only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return lines[0], body


def response(body: bytes, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def client(read_timeout: float = 10.0) -> httpx.AsyncClient:
    return TransportOptions.create([], read_timeout=read_timeout, use_env=False).build_client()


def origin_pools(http: httpx.AsyncClient) -> list[httpx.AsyncBaseTransport]:
    """The pools two origins would use (made on first use, as a request would)."""
    per_origin = http._transport
    assert isinstance(per_origin, PerOriginTransport)
    return [per_origin.pool_for(httpx.URL(u)) for u in ("https://a.example/v2/", "http://b.example:5000/v2/")]


def test_build_client_uses_the_asyncio_backend() -> None:
    options = TransportOptions.create(["insecure.example:5000"], use_env=False)
    http = options.build_client()
    transports = [*origin_pools(http), *(t for t in http._mounts.values() if t is not None)]
    assert len(transports) >= 3  # a pool per origin and the insecure host's mount
    for transport in transports:
        assert isinstance(transport._pool._network_backend, AsyncioBackend)  # type: ignore[attr-defined]


def test_anyio_backend_on_request() -> None:
    speedups.apply(asyncio_backend=False)  # the command line's DT_NETWORK_BACKEND=anyio
    http = TransportOptions.create([], use_env=False).build_client()
    for pool in origin_pools(http):
        assert not isinstance(pool._pool._network_backend, AsyncioBackend)  # type: ignore[attr-defined]


def test_without_the_speedups_clients_keep_httpcores_backend_and_load_cas_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(speedups, "_STATE", speedups._State())
    options = TransportOptions.create([], use_env=False)
    http = options.build_client()
    for pool in origin_pools(http):
        assert not isinstance(pool._pool._network_backend, AsyncioBackend)  # type: ignore[attr-defined]
    ctx = options.ssl_context()
    assert not isinstance(ctx, DeferredTrustContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


async def test_large_bodies_both_ways_are_exact() -> None:
    """16 MiB up and down through one connection: backpressure both ways, bytes unchanged."""
    payload = os.urandom(16 * 1024 * 1024)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        writer.write(response(hashlib.sha256(body).hexdigest().encode()))
        await writer.drain()
        _, _ = await read_request(reader)
        writer.write(response(payload))
        await writer.drain()
        writer.close()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 300_000):
            yield payload[i : i + 300_000]

    async with serve(echo) as url, client() as http:
        up = await http.put(url, content=chunks(), headers={"Content-Length": str(len(payload))})
        assert up.text == hashlib.sha256(payload).hexdigest()
        received = bytearray()
        async with http.stream("GET", url) as down:
            async for piece in down.aiter_raw():
                received += piece
        assert bytes(received) == payload


async def test_read_timeout_is_httpx_read_timeout() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        await writer.drain()
        await asyncio.sleep(5)

    async with serve(stall) as url, client(read_timeout=0.3) as http:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(httpx.ReadTimeout):
            await http.get(url)
        assert loop.time() - started < 2


async def test_reset_mid_body_is_a_read_error() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        writer.transport.abort()

    async with serve(reset) as url, client() as http:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await http.get(url)


async def test_connection_refused_is_a_connect_error() -> None:
    async with serve(read_request) as url:  # type: ignore[arg-type]
        pass  # closed: nothing listens on that port any more
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


async def test_idle_connection_closed_by_the_server_is_not_reused() -> None:
    """The pool asks ``is_readable`` before reusing: a server-side close must show."""
    connections = 0

    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(response(b"ok"))  # keep-alive promised, then closed anyway
        await writer.drain()
        writer.close()

    async with serve(once_then_close) as url, client() as http:
        assert (await http.get(url)).text == "ok"
        await asyncio.sleep(0.2)
        assert (await http.get(url)).text == "ok"
    assert connections == 2


async def test_keep_alive_connection_is_reused() -> None:
    connections = 0

    async def many(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(3):
            await read_request(reader)
            writer.write(response(b"ok"))
            await writer.drain()
        writer.close()

    async with serve(many) as url, client() as http:
        for _ in range(3):
            assert (await http.get(url)).text == "ok"
    assert connections == 1


def test_ca_bundle_loads_at_the_first_handshake() -> None:
    reference = ssl.create_default_context().cert_store_stats()["x509_ca"]
    if reference == 0:
        pytest.fail("this machine has no system CA certificates (apt-get install ca-certificates)")
    ctx = TransportOptions.create([], use_env=False).ssl_context()
    assert isinstance(ctx, DeferredTrustContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0
    ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="registry.example")
    assert ctx.cert_store_stats()["x509_ca"] == reference


def test_ssl_cert_file_replaces_the_system_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    ca = trustme.CA()
    bundle = os.path.join(tmp_path, "ca.pem")
    ca.cert_pem.write_to_path(bundle)
    monkeypatch.setenv("SSL_CERT_FILE", bundle)
    ctx = TransportOptions.create([], use_env=False).ssl_context()
    ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="registry.example")
    assert ctx.cert_store_stats()["x509_ca"] == 1


async def test_plain_tcp_reads_are_read_size() -> None:
    """asyncio's transport is told to recv READ_SIZE, matching httpcore's READ_NUM_BYTES."""

    async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serve(idle) as url:
        TransportOptions.create([], use_env=False).build_client()
        port = int(url.rsplit(":", 1)[1])
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        try:
            assert stream._transport.max_size == READ_SIZE  # type: ignore[attr-defined]
            assert AsyncHTTP11Connection.READ_NUM_BYTES == READ_SIZE
        finally:
            await stream.aclose()


async def test_tls_large_body_to_a_slow_reader_is_exact(tmp_path: Path) -> None:
    """Over TLS the read-ahead pauses the TLS transport; the bytes still arrive whole and in order."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    payload = os.urandom(12 * 1024 * 1024)

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(payload))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(send, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    options = TransportOptions.create([], ca_cert=str(bundle), use_env=False)
    try:
        async with options.build_client() as http, http.stream("GET", f"https://127.0.0.1:{port}/") as got:
            received = bytearray()
            largest = 0
            async for piece in got.aiter_raw():
                received += piece
                largest = max(largest, len(piece))
                if len(received) < 4 * 1024 * 1024:
                    await asyncio.sleep(0.01)  # slower than the socket: the read-ahead fills and pauses
        assert bytes(received) == payload
        # asyncio's TLS layer delivers up to READ_SIZE at once (its own default is 256 KiB).
        assert largest > 256 * 1024
    finally:
        server.close()
        await server.wait_closed()


async def test_a_dead_first_address_does_not_hold_up_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """Happy eyeballs: the next address is tried after 0.25 s, not after the connect timeout.

    The first address is a real listener on 127.0.0.2 whose accept queue is full, so the kernel
    drops our SYN (a black hole); the second is a server on 127.0.0.1. Only the name resolution
    is scripted, to return both for one host name.
    """
    served = asyncio.Event()

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.set()
        writer.close()

    server = await asyncio.start_server(hello, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hole = socket.socket()
    hole.bind(("127.0.0.2", port))
    hole.listen(0)
    fillers = []
    for _ in range(4):  # never accepted: the queue fills and later SYNs are dropped
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.2", port))
        fillers.append(filler)
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    stream_type, proto = socket.SOCK_STREAM, socket.IPPROTO_TCP
    answers = [
        (socket.AF_INET, stream_type, proto, "", ("127.0.0.2", port)),
        (socket.AF_INET, stream_type, proto, "", ("127.0.0.1", port)),
    ]

    async def resolve(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        assert host == "dual.registry.test"
        return answers  # type: ignore[return-value]

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    try:
        started = loop.time()
        stream = await AsyncioBackend().connect_tcp("dual.registry.test", port, timeout=5)
        took = loop.time() - started
        await stream.aclose()
        await asyncio.wait_for(served.wait(), 2)
        assert took < 2, f"connect took {took:.2f} s"
    finally:
        for filler in fillers:
            filler.close()
        hole.close()
        server.close()
        await server.wait_closed()
