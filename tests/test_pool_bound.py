"""The per-host request bound: requests waiting on httpx/httpcore's pool stay few, whatever is asked.

httpcore assigns freed connections by scanning every queued request, so thousands queued on one
pool cost quadratic time. :meth:`RegistryClient.send` lets at most ``requests_per_host`` requests
per host into httpx at once. These tests count the requests inside the transport (the pool's
queue plus its active connections) while far more are asked for; no timing is asserted.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from devtools.registry import LocalRegistry
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.credentials import CredentialStore
from docker_transfer.registry.transport import TransportOptions


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts requests inside it per host and records the peak; answers once ``release`` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner
        self.inside: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.release = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode()
        self.inside[host] += 1
        self.peak[host] = max(self.peak[host], self.inside[host])
        try:
            if self.inner is not None:
                return await self.inner.handle_async_request(request)
            await self.release.wait()
            return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + "0" * 64})
        finally:
            self.inside[host] -= 1


async def _wait_for(condition: object, transport: CountingTransport) -> None:
    for _ in range(1000):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never reached; inside = {dict(transport.inside)}")


async def test_queued_requests_per_host_stay_bounded() -> None:
    counting = CountingTransport()
    http = httpx.AsyncClient(transport=counting)
    client = RegistryClient(TransportOptions(), CredentialStore({}), http=http, requests_per_host=5)
    async with client:
        tasks = [
            asyncio.ensure_future(client.send("HEAD", f"http://{host}/v2/r/manifests/t{i}"))
            for i in range(300)
            for host in ("a.example", "b.example")
        ]
        # Both hosts fill their slots while the other host's requests wait: the bound is per host.
        await _wait_for(lambda: counting.inside == Counter({"a.example": 5, "b.example": 5}), counting)
        counting.release.set()
        responses = await asyncio.gather(*tasks)
    assert [r.status_code for r in responses] == [200] * 600
    assert counting.peak == Counter({"a.example": 5, "b.example": 5})
    assert client.stats.count(method="HEAD") == 600


async def test_real_pool_sees_at_most_the_bound(registry: LocalRegistry) -> None:
    # The real transport and pool against a real registry: 400 HEADs asked at once reach httpx
    # no more than half the pool's size at a time (without the bound, all 400 queue on the pool).
    options = TransportOptions(insecure_hosts=frozenset({registry.host}))
    http = options.build_client()
    counting = CountingTransport(http._transport)
    http._transport = counting
    client = RegistryClient(options, CredentialStore({}), http=http)
    async with client:
        url = f"http://{registry.host}/v2/nothing/manifests/t"
        responses = await asyncio.gather(*(client.send("HEAD", url) for _ in range(400)))
    assert {r.status_code for r in responses} == {404}
    # Half the pool per host: a copy's source and destination together never outgrow it.
    assert client.requests_per_host == options.max_connections // 2
    assert 1 < counting.peak[registry.host] <= options.max_connections // 2
