"""Scenario ``dryscale`` (issue 15, goal 4): `sync --dry-run` of 500 / 1,000 / 2,000 entries, real sockets.

:mod:`benchmarks.planscale` uses ``httpx.MockTransport``, which bypasses httpcore's connection
pool; the pool is what went quadratic in queued requests. Here two tiny keep-alive HTTP/1.1
servers (a source and a destination, each on its own thread and event loop) answer every
manifest HEAD/GET with the same index, so every entry is ``unchanged``: the HEAD-only pass of a
nightly no-op run, through the real transport and pool. Each size runs twice side by side: as
shipped (at most ``requests_per_host`` requests per host inside httpx) and with that bound lifted,
counting the peak number of requests inside the transport (the pool's queue plus its active
connections) in both. ``--concurrency 32`` lets 128 images be checked at once (4 requests each).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.contenders import Outcome
from benchmarks.env import log
from benchmarks.planscale import DIGEST, INDEX, OCI_INDEX, write_config
from benchmarks.scenarios import ScenarioResult
from docker_transfer import speedups
from docker_transfer.config import load_config
from docker_transfer.engine.sync import Syncer, SyncOptions
from docker_transfer.plan import Target, plan_jobs
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.credentials import CredentialStore
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import Report

SIZES = (500, 1000, 2000)
CONCURRENCY = 32
UNBOUNDED = 1_000_000
PER_HOST = int(os.environ.get("DT_BENCH_PER_HOST", "0")) or None


class FakeServer:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 answering registry manifest requests; its own thread."""

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._end_handlers(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _end_handlers(self) -> None:
        # Keep-alive connections the client left open: end their handlers before the loop stops.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        # CancelledError: the shutdown ends handlers of connections the client kept open.
        with contextlib.suppress(
            OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError
        ):
            while True:
                first = await reader.read(1)
                if first in (b"", b"\x16"):  # closed, or a TLS ClientHello from the https probe
                    break
                head = first + await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b" ", 2)
                self.requests += 1
                writer.write(_answer(method.decode(), path.decode()))
                await writer.drain()
        writer.close()


def _answer(method: str, path: str) -> bytes:
    if "/manifests/" in path:
        status, headers, body = "200 OK", {"Docker-Content-Digest": DIGEST, "Content-Type": OCI_INDEX}, INDEX
    elif path.rstrip("/") == "/v2":
        status, headers, body = "200 OK", {"Content-Type": "application/json"}, b"{}"
    else:
        status, headers, body = "404 Not Found", {"Content-Type": "application/json"}, b'{"errors":[]}'
    headers["Content-Length"] = str(len(body))
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode() + (b"" if method == "HEAD" else body)


class _Counting(httpx.AsyncBaseTransport):
    """Wraps the real transport; records the peak number of requests inside it per host."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.inside: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode()
        self.inside[host] += 1
        self.peak[host] = max(self.peak[host], self.inside[host])
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.inside[host] -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.contextmanager
def _servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer() as source, FakeServer() as destination:
        yield source, destination


async def _dry_run(jobs: list[Any], options: TransportOptions, per_host: int | None) -> tuple[Report, int]:
    http = options.build_client()
    counting = _Counting(http._transport)
    http._transport = counting
    client = RegistryClient(options, CredentialStore({}), http=http, requests_per_host=per_host)
    report = Report(started=datetime.now(UTC))
    async with client:
        await Syncer(client, SyncOptions(concurrency=CONCURRENCY, dry_run=True)).run(jobs, report)
    return report, max(counting.peak.values(), default=0)


def measure(workdir: Path, entries: int, bounded: bool) -> dict[str, Any]:
    """One dry run of ``entries`` unchanged entries: seconds, CPU seconds, peak requests inside httpx."""
    # What the command line runs: its speed-ups (the asyncio backend, 1 MiB reads) applied.
    speedups.apply()
    with _servers() as (source, destination):
        path = workdir / f"dry-{entries}.json"
        write_config(path, entries)
        text = path.read_text().replace("src.example.com", source.host)
        path.write_text(text)
        options = TransportOptions(insecure_hosts=frozenset({source.host, destination.host}))
        started, cpu = time.perf_counter(), time.process_time()
        jobs = plan_jobs(load_config(path), Target(registry=destination.host, namespace="mirror"))
        per_host = PER_HOST if bounded else UNBOUNDED
        report, peak = asyncio.run(_dry_run(jobs, options, per_host))
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        statuses = Counter(r.status for r in report.results)
        if set(statuses) != {"unchanged"}:
            raise RuntimeError(f"dry-run scale: expected every tag unchanged, got {dict(statuses)}")
        return {
            "seconds": seconds,
            "cpu_s": round(cpu_s, 2),
            "peak_in_httpx": peak,
            "requests": source.requests + destination.requests,
            "connections": source.connections + destination.connections,
        }


def dry_run_scale(workdir: Path, runs: int, sizes: tuple[int, ...] = SIZES) -> ScenarioResult:
    """Time the dry run at each size, bounded and unbounded alternating; goals: linear, queue bounded."""
    result = ScenarioResult(
        "dryscale",
        f"Dry-run scale: `sync --dry-run --concurrency {CONCURRENCY}`, every entry unchanged, "
        "two fake registries over real sockets (in process)",
    )
    workdir.mkdir(parents=True, exist_ok=True)
    for i in range(runs):
        for n in sizes:
            for bounded in (True, False) if i % 2 == 0 else (False, True):
                point = measure(workdir, n, bounded)
                name = f"ours {n}" + ("" if bounded else " unbounded")
                detail = {k: v for k, v in point.items() if k != "seconds"}
                result.row(name).add(Outcome(point["seconds"], detail))
                log(f"dryscale {name}: {point['seconds']:.2f}s, peak {point['peak_in_httpx']} in httpx")
    small, large = result.row(f"ours {sizes[0]}").median, result.row(f"ours {sizes[-1]}").median
    growth, linear = large / small, sizes[-1] / sizes[0]
    result.figures.update(growth=round(growth, 2), linear=linear)
    peak = max(result.row(f"ours {n}").median_of("peak_in_httpx") for n in sizes)
    loose = max(result.row(f"ours {n} unbounded").median_of("peak_in_httpx") for n in sizes)
    result.goals.append(
        (
            f"time grows linearly: {sizes[-1]} entries within 1.25x of {linear:g}x the time of {sizes[0]}",
            growth <= linear * 1.25,
            f"{large:.2f}s / {small:.2f}s = {growth:.2f}x",
        )
    )
    result.goals.append(
        (
            "requests inside httpx per host stay bounded (half the pool of 24)",
            peak <= TransportOptions().max_connections // 2,
            f"peak {peak:g} (with the bound lifted: {loose:g})",
        )
    )
    result.notes.append(
        "requests = 4 per entry (source HEAD; destination HEAD x2 and GET); each size measured with the "
        "bound (rows `ours N`) and without it (`unbounded`, requests_per_host lifted) alternating; "
        "`connections` = TCP connections the two fake registries accepted; `cpu_s` = this process's CPU "
        "(the client and both fake registries)"
    )
    return result
