"""Scenario 5: validate and plan N config entries against fake registries (httpx.MockTransport).

In process, no sockets: ``load_config`` (validation), ``plan_jobs`` and a :class:`Syncer` run in
which the fake source answers HEADs with a digest and the fake destination already holds exactly
that index under every tag, so every entry is ``unchanged``: the HEAD-only incremental pass a
nightly no-op run makes. With ``latency`` each fake answer waits that long first (a remote
registry), which shows how the pass scales with round trips rather than CPU.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from docker_transfer import speedups
from docker_transfer.config import load_config
from docker_transfer.engine.sync import Syncer, SyncOptions
from docker_transfer.plan import Target, plan_jobs
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.credentials import CredentialStore
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import Report

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SOURCE = "src.example.com"
DEST = "dst.example.com"


def _index() -> bytes:
    def child(n: int) -> str:
        return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()

    manifests = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": child(1),
            "size": 1000,
            "platform": {"os": "linux", "architecture": "amd64"},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": child(2),
            "size": 1000,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
    ]
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


INDEX = _index()
DIGEST = "sha256:" + hashlib.sha256(INDEX).hexdigest()


class FakeRegistries:
    """One handler for both fake hosts; counts requests by (host, method)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.counts: Counter[tuple[str, str]] = Counter()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        self.counts[(request.url.host, request.method)] += 1
        path = request.url.path
        headers = {"Docker-Content-Digest": DIGEST, "Content-Type": OCI_INDEX}
        if "/manifests/" in path and request.method == "HEAD":
            return httpx.Response(200, headers={**headers, "Content-Length": str(len(INDEX))})
        if "/manifests/" in path and request.method == "GET":
            return httpx.Response(200, headers=headers, content=INDEX)
        if path.rstrip("/") == "/v2":
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"errors": [{"code": "NOT_FOUND", "message": "fake"}]})


def write_config(path: Path, entries: int) -> None:
    """A seed-shaped images.json with ``entries`` distinct sources, 2 tags and 2 architectures each."""
    doc = [
        {
            "source": f"{SOURCE}/library/image{n:04d}:1.{n}",
            "target": f"image{n:04d}",
            "tags": [f"1.{n}", "latest"],
            "architectures": ["amd64", "arm64"],
        }
        for n in range(entries)
    ]
    path.write_text(json.dumps(doc, indent=2))


async def _sync(jobs: list[Any], fake: FakeRegistries) -> tuple[Report, float]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    client = RegistryClient(TransportOptions(), CredentialStore({}), http=http)
    report = Report(started=datetime.now(UTC))
    started = time.perf_counter()
    async with client:
        await Syncer(client, SyncOptions()).run(jobs, report)
    return report, time.perf_counter() - started


def measure(workdir: Path, entries: int, latency: float = 0.0) -> dict[str, Any]:
    """Time validation, planning and the HEAD-only sync pass for ``entries`` entries."""
    # What the command line runs: its speed-ups (the asyncio backend, 1 MiB reads) applied.
    speedups.apply()
    path = workdir / f"images-{entries}.json"
    write_config(path, entries)
    started = time.perf_counter()
    config = load_config(path)
    validated = time.perf_counter()
    jobs = plan_jobs(config, Target(registry=DEST, namespace="mirror"))
    planned = time.perf_counter()
    fake = FakeRegistries(latency)
    report, synced = asyncio.run(_sync(jobs, fake))
    statuses = Counter(r.status for r in report.results)
    if set(statuses) != {"unchanged"}:
        raise RuntimeError(f"plan scale: expected every tag unchanged, got {dict(statuses)}")
    return {
        "entries": entries,
        "latency_ms": round(latency * 1000),
        "validate_s": round(validated - started, 4),
        "plan_s": round(planned - validated, 4),
        "head_pass_s": round(synced, 4),
        "total_s": round(validated - started + planned - validated + synced, 4),
        "requests": {
            f"{host.split('.')[0]} {method}": n for (host, method), n in sorted(fake.counts.items())
        },
    }
