"""One pool per origin (registry/hostpool.py): dispatch, reuse, closing."""

from __future__ import annotations

import asyncio

import httpx

from docker_transfer.registry.hostpool import PerOriginTransport


class Recording(httpx.AsyncBaseTransport):
    """A stand-in pool: answers 200 naming its origin, counts requests, remembers being closed."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.requests = 0
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(200, text=self.origin)

    async def aclose(self) -> None:
        self.closed = True


def test_each_origin_gets_its_own_pool_and_keeps_it() -> None:
    made: list[Recording] = []

    def factory(origin: str) -> Recording:
        made.append(Recording(origin))
        return made[-1]

    async def main() -> list[str]:
        transport = PerOriginTransport(factory)
        async with httpx.AsyncClient(transport=transport) as client:
            urls = [
                "https://reg.example/v2/",
                "https://reg.example:443/v2/a/manifests/1",
                "http://reg.example/v2/",
                "https://reg.example:5000/v2/",
                "https://cdn.example/blob",
                "https://REG.example/v2/b/blobs/x",
                "http://[::1]:5000/v2/",
            ]
            answers = [(await client.get(u)).text for u in urls]
            assert transport.origins == [
                "https://reg.example:443",
                "http://reg.example:80",
                "https://reg.example:5000",
                "https://cdn.example:443",
                "http://[::1]:5000",
            ]
        return answers

    answers = asyncio.run(main())
    assert answers == [
        "https://reg.example:443",
        "https://reg.example:443",
        "http://reg.example:80",
        "https://reg.example:5000",
        "https://cdn.example:443",
        "https://reg.example:443",
        "http://[::1]:5000",
    ]
    assert [p.requests for p in made] == [3, 1, 1, 1, 1]
    assert all(p.closed for p in made)  # the client's close closed every pool


class TinyServer:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 answering 200 to anything; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.002)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def _connections_opened(per_origin: bool) -> list[int]:
    """Two hosts, 200 requests alternating between them, 4 connections per pool."""
    servers = [TinyServer(), TinyServer()]
    urls = [await s.start() for s in servers]
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    transport: httpx.AsyncBaseTransport
    if per_origin:
        transport = PerOriginTransport(lambda origin: httpx.AsyncHTTPTransport(limits=limits))
    else:
        transport = httpx.AsyncHTTPTransport(limits=limits)
    async with httpx.AsyncClient(transport=transport) as client:
        await asyncio.gather(*(client.get(f"{urls[i % 2]}/v2/") for i in range(200)))
    for server in servers:
        await server.stop()
    return [s.connections for s in servers]


def test_one_hosts_requests_do_not_close_the_other_hosts_connections() -> None:
    """The churn a shared pool shows (docs/performance.md, "At scale"), gone with a pool per origin."""
    shared = asyncio.run(_connections_opened(per_origin=False))
    separate = asyncio.run(_connections_opened(per_origin=True))
    assert all(n <= 4 for n in separate), separate
    # The control: one pool for both hosts closes one host's idle connection to open the other's.
    assert sum(shared) > 2 * sum(separate), (shared, separate)
