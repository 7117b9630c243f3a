"""One connection pool per origin (scheme, host, port), created when the origin is first asked.

httpcore's pool does its bookkeeping by scanning every connection it holds at each request's
start and end (``_assign_requests_to_connections``: for each idle connection it counts all of
them), so its cost per request grows with the square of the pool. A sync talks to two hosts
at least (a source and a destination) and often to a third (a blob store behind redirects),
and one shared pool of 24 makes every request of each pay for the connections of all. With a
pool per origin each scan covers that origin's connections only, and one host's burst can no
longer close another host's idle connections to make room (the churn measured in
docs/performance.md, "At scale").
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

TransportFactory = Callable[[str], httpx.AsyncBaseTransport]
"""Builds the transport for one origin (``scheme://host:port``)."""


class PerOriginTransport(httpx.AsyncBaseTransport):
    """Dispatches each request to its origin's own transport (and so its own pool).

    Pools are kept until the client closes. Their number is the number of origins a run talks
    to: its registries, their token services and the blob stores they redirect to, a handful in
    practice; idle connections in each still expire after httpx's keep-alive expiry.
    """

    def __init__(self, factory: TransportFactory) -> None:
        self._factory = factory
        self._pools: dict[str, httpx.AsyncBaseTransport] = {}

    @staticmethod
    def origin(url: httpx.URL) -> str:
        """``scheme://host:port`` with the scheme's default port spelled out."""
        port = url.port or (443 if url.scheme == "https" else 80)
        host = f"[{url.host}]" if ":" in url.host else url.host
        return f"{url.scheme}://{host}:{port}"

    def pool_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        """The transport serving ``url``'s origin, made on first use."""
        key = self.origin(url)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = self._factory(key)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the pool of the request's origin."""
        return await self.pool_for(request.url).handle_async_request(request)

    @property
    def origins(self) -> list[str]:
        """The origins with a pool, in the order they were first used."""
        return list(self._pools)

    async def aclose(self) -> None:
        """Close every pool."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
