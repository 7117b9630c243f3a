"""Progress lines in plain and GitHub logs: every interval while an image is in flight."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from devtools.faultproxy import Fault, FaultProxy
from devtools.images import push_single
from devtools.registry import RegistryFactory
from docker_transfer.cli import main
from docker_transfer.cli.progress import GitHubEvents, PlainEvents
from docker_transfer.cli.ticker import ProgressTicker, interval_from, progress_line
from docker_transfer.config import parse_config
from docker_transfer.plan import Job, Target, plan_jobs
from docker_transfer.report import TagResult

MB = 1_000_000


def a_job() -> Job:
    entries = [{"source": "nginx:1.27", "target": "nginx", "tags": ["1.27"], "architectures": ["amd64"]}]
    (job,) = plan_jobs(parse_config(json.dumps(entries)), Target("acr.example", "mirror"))
    return job


def copied(job: Job) -> list[TagResult]:
    return [TagResult(str(job.entry.source), job.destination.name, "1.27", "copied", bytes_copied=10 * MB)]


def test_progress_line() -> None:
    assert progress_line("a -> b", 45 * MB, 120 * MB, 2.5 * MB) == (
        "copying   a -> b: 45.0 MB of 120.0 MB (37%), 2.5 MB/s, ETA 30s"
    )
    assert progress_line("a -> b", 3 * MB, None, 1 * MB) == "copying   a -> b: 3.0 MB so far, 1.0 MB/s"
    stalled = progress_line("a -> b", 45 * MB, 120 * MB, 0.0)
    assert stalled.endswith("(37%), 0 B/s, no bytes in the last interval")
    assert "(100%)" in progress_line("a -> b", 5, 0, 0.0)  # an empty image: no division by zero


def test_ticker_rate_is_that_of_the_last_interval() -> None:
    now = [100.0]
    lines: list[str] = []
    ticker = ProgressTicker(lines.append, interval=30, clock=lambda: now[0])
    ticker.started(1, "src -> dest")  # outside a loop: nothing scheduled, tick() by hand
    ticker.sized(1, 100 * MB)
    ticker.moved(1, 60 * MB)
    now[0] += 30
    ticker.tick(1)
    ticker.moved(1, -10 * MB)  # a retry rewinds
    now[0] += 30
    ticker.tick(1)
    assert lines == [
        "copying   src -> dest: 60.0 MB of 100.0 MB (60%), 2.0 MB/s, ETA 20s",
        "copying   src -> dest: 50.0 MB of 100.0 MB (50%), 0 B/s, no bytes in the last interval",
    ]
    ticker.finished(1)
    ticker.tick(1)
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("value", "expected"), [("", 30.0), ("5", 5.0), ("0.5", 0.5), ("0", 30.0), ("x", 30.0)]
)
def test_interval_from_environment(value: str, expected: float) -> None:
    assert interval_from({"DT_PROGRESS_INTERVAL": value}) == expected


async def test_plain_events_print_progress_while_in_flight(capsys: pytest.CaptureFixture[str]) -> None:
    job = a_job()
    events = PlainEvents(1, interval=0.05)
    events.job_started(job)
    events.job_sized(job, 10 * MB)
    for _ in range(4):
        await asyncio.sleep(0.04)
        events.bytes_moved(job, 2 * MB)
    await asyncio.sleep(0.06)
    events.job_finished(job, copied(job))
    await asyncio.sleep(0.15)  # nothing more after the image ended
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("start ")
    assert lines[-1].startswith("[1/1] copied")
    ticks = lines[1:-1]
    assert len(ticks) >= 2, lines
    label = r"docker\.io/library/nginx:1\.27 -> acr\.example/mirror/nginx"
    pattern = rf"copying   {label}: [\d.]+ MB of 10\.0 MB \(\d+%\), "
    assert all(re.match(pattern, line) for line in ticks), ticks


async def test_github_events_progress_lines_are_inert(capsys: pytest.CaptureFixture[str]) -> None:
    job = a_job()
    masked: list[str] = []
    events = GitHubEvents(1, before_output=lambda: masked.append("mask"), interval=0.03)
    events.job_started(job)
    await asyncio.sleep(0.1)
    events.job_finished(job, copied(job))
    err = capsys.readouterr().err
    ticks = [line for line in err.splitlines() if line.startswith("copying ")]
    assert ticks and "so far" in ticks[0]
    assert err.index("copying ") < err.index("::group::")
    assert len(masked) == len(ticks) + 1  # masks are brought up to date before every line


def test_plain_sync_reports_progress_during_a_stalled_layer(
    registry_factory: RegistryFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real run, piped (plain display): the layer stalls 1.5 s; with a 0.2 s interval the log
    # shows progress lines between `start` and `copied` instead of silence.
    src, dst = registry_factory(), registry_factory()
    layer = 2 * 1024 * 1024
    image = push_single(src.url, "app", "1", layers=1, layer_size=layer)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("DT_PROGRESS_INTERVAL", "0.2")
    with FaultProxy(src) as proxy:
        path = f"/blobs/{image.layer_digests[0]}"
        proxy.add(Fault(method="GET", path=path, stall_after=layer // 2, stall_seconds=1.5))
        entries = [
            {"source": f"{proxy.host}/app:1", "target": "app", "tags": ["1"], "architectures": ["amd64"]}
        ]
        config = tmp_path / "images.json"
        config.write_text(json.dumps(entries))
        args = ["sync", "--config", str(config), "--target-registry", dst.host, "--target-namespace", "ns"]
        code = main([*args, "--insecure-registry", proxy.host, "--insecure-registry", dst.host])
    err = capsys.readouterr().err
    assert code == 0, err
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("start "))
    end = next(i for i, line in enumerate(lines) if line.startswith("[1/1] copied"))
    ticks = [line for line in lines[start + 1 : end] if line.startswith("copying ")]
    assert len(ticks) >= 3, err
    assert any(" of 2.1 MB (" in line and "no bytes in the last interval" in line for line in ticks), ticks
