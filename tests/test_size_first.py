"""``size_first``: with progress bars, every image is sized before any byte moves (issue 11)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from devtools.images import push_image
from devtools.registry import RegistryFactory
from docker_transfer.config import parse_config
from docker_transfer.engine.sync import Syncer, SyncEvents, SyncOptions
from docker_transfer.plan import Job, Target, plan_jobs
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import Report, TagResult


class Recorder(SyncEvents):
    """The order of sizing and byte events, by image."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def job_sized(self, job: Job, total: int) -> None:
        self.events.append(("sized", job.entry.target))

    def bytes_moved(self, job: Job, n: int) -> None:
        if n > 0 and (not self.events or self.events[-1] != ("bytes", job.entry.target)):
            self.events.append(("bytes", job.entry.target))

    def job_finished(self, job: Job, results: Sequence[TagResult]) -> None:
        assert all(r.status == "copied" for r in results), results


async def run(registry_factory: RegistryFactory, size_first: bool) -> list[tuple[str, str]]:
    src, dst = registry_factory(), registry_factory()
    entries = []
    for name in ("a", "b", "c"):
        push_image(src.url, f"lib/{name}", "1", platforms=["linux/amd64"], layer_size=64 * 1024)
        entries.append({"source": f"{src.host}/lib/{name}:1", "tags": ["1"], "architectures": ["amd64"]})
    jobs = plan_jobs(parse_config(json.dumps(entries)), Target(dst.host, "m"))
    recorder = Recorder()
    options = SyncOptions(concurrency=1, size_first=size_first)
    transport = TransportOptions(insecure_hosts=frozenset({src.host, dst.host}))
    async with RegistryClient(transport, credentials=lambda host: None) as client:
        await Syncer(client, options, recorder).run(jobs, Report(started=datetime.now(UTC)))
    return recorder.events


@pytest.mark.parametrize("size_first", [True, False])
async def test_every_image_is_sized_before_the_first_byte_moves(
    registry_factory: RegistryFactory, size_first: bool
) -> None:
    events = await run(registry_factory, size_first)
    first_bytes = next(i for i, event in enumerate(events) if event[0] == "bytes")
    sized_before = sum(1 for kind, _ in events[:first_bytes] if kind == "sized")
    assert sum(1 for kind, _ in events if kind == "sized") == 3  # each image sized once
    if size_first:
        assert sized_before == 3, events  # the overall total is known up front
    else:
        assert sized_before < 3, events  # one image at a time: sized as it starts
