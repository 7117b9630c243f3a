"""Optional experiment: does HTTP/2 help a registry-to-registry blob copy? (``--scenario http2``).

Distribution 2.8 negotiates h2 only over TLS (ALPN); over plain http it speaks HTTP/1.1 only
(no h2c). So both registries here serve TLS. The copy loop is the tool's hot path reduced to
plain httpx: per blob, POST an upload, then PUT ``?digest=`` with the body streamed from the
source GET (``aiter_raw``) and hashed on the way, 8 blobs at a time. The same loop runs with
``http2=False`` (a pool of HTTP/1.1 connections) and ``http2=True`` (one multiplexed connection per
registry). Needs the ``h2`` package (``pip install h2``); skipped with a note without it.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import ssl
import time
from collections.abc import AsyncIterator

import httpx

from benchmarks.contenders import Outcome
from benchmarks.env import Workspace, log, registry
from benchmarks.images import Blob, build_image
from benchmarks.scenarios import CHOSEN, PLATFORMS3, ScenarioResult, Sizes, rotated, template
from devtools.images import RegistryPusher
from devtools.registry import LocalRegistry


async def _copy_all(src: str, dst: str, repo: str, blobs: list[Blob], ctx: ssl.SSLContext, h2: bool) -> str:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(http2=h2, http1=not h2, verify=ctx, limits=limits, timeout=120) as client:
        gate = asyncio.Semaphore(8)
        versions: set[str] = set()

        async def one(blob: Blob) -> None:
            async with gate:
                started = await client.post(f"{dst}/v2/{repo}/blobs/uploads/")
                versions.add(started.http_version)
                location = httpx.URL(dst).join(started.headers["Location"])
                digest = hashlib.sha256()

                async def body() -> AsyncIterator[bytes]:
                    async with client.stream("GET", f"{src}/v2/{repo}/blobs/{blob.digest}") as response:
                        versions.add(response.http_version)
                        async for chunk in response.aiter_raw():
                            digest.update(chunk)
                            yield chunk

                put = await client.put(
                    location.copy_merge_params({"digest": blob.digest}),
                    content=body(),
                    headers={"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"},
                )
                if put.status_code != 201 or "sha256:" + digest.hexdigest() != blob.digest:
                    raise RuntimeError(f"upload of {blob.digest} failed: {put.status_code} {put.text[:200]}")

        await asyncio.gather(*(one(b) for b in blobs))
        return ",".join(sorted(versions))


def http2_experiment(ws: Workspace, sizes: Sizes, runs: int) -> ScenarioResult:
    """Time the same streamed copy over HTTP/1.1 and HTTP/2 between two TLS registries."""
    result = ScenarioResult("http2", "HTTP/1.1 vs HTTP/2: the streamed copy loop between two TLS registries")
    if importlib.util.find_spec("h2") is None:
        result.notes.append("skipped: the h2 package is not installed (pip install h2)")
        return result
    repo = "bench/big"

    def fill(reg: LocalRegistry) -> list[Blob]:
        with RegistryPusher(reg.url) as pusher:
            image = build_image(pusher, repo, ("v1",), PLATFORMS3, sizes.cold_layers, sizes.cold_layer_size)
        return image.blobs_for(CHOSEN)

    with template(ws, "http2", fill) as (storage, blobs):
        for i in range(runs):
            for name in rotated(["HTTP/1.1", "HTTP/2"], i):
                with registry(ws, "src", storage, tls=True) as src, registry(ws, "dst", tls=True) as dst:
                    ctx = ssl.create_default_context()
                    for reg in (src, dst):
                        assert reg.ca_pem_path is not None
                        ctx.load_verify_locations(cafile=str(reg.ca_pem_path))
                    started, cpu = time.perf_counter(), time.process_time()
                    seen = asyncio.run(_copy_all(src.url, dst.url, repo, blobs, ctx, name == "HTTP/2"))
                    took = time.perf_counter() - started
                    cpu_s = round(time.process_time() - cpu, 3)
                    result.row(name).add(Outcome(took, {"negotiated": seen, "cpu_s": cpu_s}))
                    log(f"http2 run {i + 1}/{runs} {name}: {took:.2f}s ({seen})")
    h1, h2 = result.row("HTTP/1.1"), result.row("HTTP/2")
    result.figures["h2_vs_h1"] = round(h1.median / h2.median, 2)
    result.notes.append(
        f"{sum(b.size for b in blobs) / 1024 / 1024:.0f} MiB in {len(blobs)} blobs, 8 at a time, in process "
        "(no CLI start-up); >1 means HTTP/2 was faster; negotiated: "
        + ", ".join(f"{r.contender} -> {sorted(set(r.extra.get('negotiated', [])))}" for r in result.rows)
    )
    return result
