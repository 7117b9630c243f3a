"""Scenario ``curve`` (issue 15, goal 2): the many-images cold copy at --concurrency 1, 4, 8, 16, 32.

The same 30 images x 2 platforms x 2 tags as scenario ``many``, the source behind the 50 ms proxy,
a fresh destination every run; only ours, once per concurrency per run, the order rotated. Beside
wall time: the client's CPU seconds and the source requests, to tell latency-bound (time falls as
concurrency rises, CPU flat) from CPU-bound (time flat, CPU at the machine's share).
"""

from __future__ import annotations

from benchmarks.contenders import ours_sync, write_images_json
from benchmarks.env import Workspace, log, manifest_head, measured_cpu, registry
from benchmarks.images import build_image
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.scenarios import ARCHES, CHOSEN, ScenarioResult, Sizes, rotated, template
from devtools.images import RegistryPusher
from devtools.registry import LocalRegistry
from docker_transfer.engine.sync import SyncOptions

LEVELS = (1, 4, 8, 16, 32)
DEFAULT = SyncOptions().concurrency


def concurrency_curve(ws: Workspace, sizes: Sizes, runs: int) -> ScenarioResult:
    """Ours' cold sync of ``sizes.many_images`` images at each concurrency level."""
    count = sizes.many_images
    repos = [f"curve/img{n:02d}" for n in range(count)]
    tags = ["v1", "latest"]
    result = ScenarioResult(
        "curve",
        f"Concurrency curve: ours' cold sync of {count} images x 2 platforms x 2 tags, "
        f"+{sizes.latency * 1000:.0f} ms per source request",
    )
    log(f"curve: building {count} 2-platform images")

    def fill(reg: LocalRegistry) -> None:
        with RegistryPusher(reg.url) as pusher:
            for repo in repos:
                build_image(pusher, repo, tuple(tags), CHOSEN, sizes.many_layers, sizes.many_layer_size)

    names = [f"ours --concurrency {n}" for n in LEVELS]
    with template(ws, "curve", fill) as (storage, _):
        for i in range(runs):
            for name in rotated(names, i):
                level = int(name.rsplit(" ", 1)[1])
                with (
                    registry(ws, "src", storage) as src,
                    LatencyProxy(src.url, sizes.latency) as proxy,
                    registry(ws, "dst") as dst,
                ):
                    config = ws.path("curve-config") / "images.json"
                    write_images_json(config, proxy.host, repos, "v1", tags, ARCHES, arch_tags=True)
                    cpu: dict[str, float] = {}
                    with measured_cpu(cpu):
                        outcome = ours_sync(config, proxy.host, dst.host, "mirror", level)
                    last = repos[-1].rsplit("/", 1)[-1]
                    if manifest_head(dst.url, f"mirror/{last}", "latest") is None:
                        raise RuntimeError(f"{name}: mirror/{last}:latest missing after the run")
                    result.row(name).add(outcome, proxied_requests=proxy.requests, **cpu)
                    log(f"curve run {i + 1}/{runs} {name}: {outcome.seconds:.2f}s")
    best = min(result.rows, key=lambda r: r.median)
    default = result.row(f"ours --concurrency {DEFAULT}")
    result.figures["best"] = best.contender
    result.figures["default_vs_best"] = round(default.median / best.median, 2)
    result.goals.append(
        (
            f"the default (--concurrency {DEFAULT}) within 10% of the best level",
            default.median <= best.median * 1.10,
            f"{default.median:.2f}s vs {best.median:.2f}s ({best.contender})",
        )
    )
    return result
