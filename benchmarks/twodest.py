"""Scenario ``twodest`` (issue 13, part 3): one image mirrored to two destination registries.

The cold copy's image (2 of 3 platforms) into two fresh registries: ours in one run with two
``--target`` (each blob read from the source once and teed into both uploads), ours run twice
(once per destination), and the seed's loop run twice. Beside wall time: the source's blob GETs.
Two variants: the source local (``twodest``: the registries' CPU bounds every contender), and the
source far away (``twodest-far``: behind :class:`LatencyProxy`, 50 ms per request and ~10 MB/s
per connection, as a runner pulling from Docker Hub; a fifth of the layer size to keep it short).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.contenders import Outcome, ours_sync, seed_loop, write_images_json
from benchmarks.env import Workspace, log, manifest_head, measured_cpu, ours_argv, registry, run_timed
from benchmarks.images import BuiltImage, build_image
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.scenarios import ARCHES, PLATFORMS3, MiB, ScenarioResult, Sizes, rotated, template
from devtools.images import RegistryPusher
from devtools.registry import LocalRegistry

LATENCY = 0.050
RATE = 10e6
NAMES = ["ours, one run to 2 destinations", "ours, run twice", "skopeo-seed, run twice"]


def ours_sync_two(config: Path, src: str, dsts: list[str], namespace: str) -> Outcome:
    """``docker-transfer sync --target A/ns --target B/ns``."""
    report = config.with_name(f"report-{time.monotonic_ns()}.json")
    argv = [
        *ours_argv(),
        "sync",
        "--config",
        str(config),
        "--insecure-registry",
        src,
        "--report",
        str(report),
    ]
    for dst in dsts:
        argv += ["--target", f"{dst}/{namespace}", "--insecure-registry", dst]
    done = run_timed(argv)
    summary = json.loads(report.read_text()).get("summary", {})
    report.unlink()
    return Outcome(done.seconds, {"summary": summary})


def _one(name: str, config: Path, src: str, dsts: list[LocalRegistry], repo: str, tag: str) -> Outcome:
    if name == NAMES[0]:
        return ours_sync_two(config, src, [d.host for d in dsts], "mirror")
    outcomes: list[Outcome] = []
    for dst in dsts:
        if name == NAMES[1]:
            outcomes.append(ours_sync(config, src, dst.host, "mirror"))
        else:
            outcomes.append(seed_loop(src, dst.host, [(repo, tag, "mirror/big")], [tag], ARCHES))
    return Outcome(sum(o.seconds for o in outcomes), {"runs": len(outcomes)})


def two_destinations(ws: Workspace, sizes: Sizes, runs: int) -> list[ScenarioResult]:
    """Both variants: the source local, then far."""
    return [_scenario(ws, sizes, runs, far=False), _scenario(ws, sizes, runs, far=True)]


def _scenario(ws: Workspace, sizes: Sizes, runs: int, *, far: bool) -> ScenarioResult:
    """Each contender into two fresh destinations; medians of ``runs``, the order rotated."""
    repo, tag = "bench/big", "v1"
    layer = sizes.cold_layer_size // 5 if far else sizes.cold_layer_size
    per_platform = sizes.cold_layers * layer
    name_ = "twodest-far" if far else "twodest"
    where = (
        f"the source behind {LATENCY * 1000:.0f} ms and ~{RATE / 1e6:.0f} MB/s" if far else "a local source"
    )
    result = ScenarioResult(
        name_,
        f"Two destinations: 2 of 3 platforms, {2 * per_platform / MiB:.0f} MiB of random layers, "
        f"from {where} into two fresh registries",
    )
    log(f"{name_}: building a 3-platform image, {sizes.cold_layers} x {layer // MiB} MiB")

    def fill(reg: LocalRegistry) -> BuiltImage:
        with RegistryPusher(reg.url) as pusher:
            return build_image(pusher, repo, (tag,), PLATFORMS3, sizes.cold_layers, layer)

    with template(ws, name_, fill) as (storage, _):
        for i in range(runs):
            for name in rotated(NAMES, i):
                with (
                    registry(ws, "src", storage) as src,
                    registry(ws, "a") as a,
                    registry(ws, "b") as b,
                    LatencyProxy(src.url, LATENCY, rate=RATE) if far else contextlib.nullcontext() as proxy,
                ):
                    config = ws.path("twodest-config") / "images.json"
                    host = proxy.host if proxy is not None else src.host
                    write_images_json(config, host, [repo], tag, [tag], ARCHES, arch_tags=False)
                    mark = src.mark()
                    cpu: dict[str, float] = {}
                    with measured_cpu(cpu):
                        outcome = _one(name, config, host, [a, b], repo, tag)
                    target = "mirror/big"
                    for dst in (a, b):
                        if manifest_head(dst.url, target, tag) is None:
                            raise RuntimeError(f"{name}: {target}:{tag} missing at {dst.host} after the run")
                    gets = sum(1 for e in src.requests(mark) if e.method == "GET" and "/blobs/" in e.path)
                    result.row(name).add(outcome, src_blob_gets=gets, **cpu)
                    log(f"{name_} run {i + 1}/{runs} {name}: {outcome.seconds:.2f}s, {gets} source blob GETs")
    ours = result.row(NAMES[0])
    figures: dict[str, Any] = {"bytes_per_destination": 2 * per_platform}
    figures["source"] = "far" if far else "local"
    for row in result.rows[1:]:
        figures[f"vs {row.contender}"] = round(row.median / ours.median, 2)
    result.figures.update(figures)
    once, twice = ours.median_of("src_blob_gets"), result.row(NAMES[1]).median_of("src_blob_gets")
    result.goals.append(
        (
            "one run to two destinations reads each source blob once (half of two runs' GETs)",
            once * 2 <= twice,
            f"{once:.0f} vs {twice:.0f} source blob GETs",
        )
    )
    return result
