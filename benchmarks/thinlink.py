"""Scenario ``thin`` (issue 15, goal 3): copies to a destination across a long thin link.

The destination sits behind :class:`LatencyProxy` with ``rate`` set: 150 ms per request and per new
connection, every body byte paced to ~10 MB/s per connection and direction (a TCP stream's window
at that round-trip time). The source is local, as a runner next to Docker Hub. Two images of one
platform each: three layers, one of them large (``Sizes.thin_big``: 1 GiB, the issue's figure, about
110 s per contender at 10 MB/s; ``--thin-big-mib`` changes it), and twenty 5 MiB layers. Ours
(``docker-transfer copy``), the seed's loop (``skopeo copy`` + manifest list) and the raw limit
(``curl GET | curl PUT`` pipes, 8 at a time) cross the same shaping.
"""

from __future__ import annotations

from benchmarks.contenders import Outcome, curl_limit, ours_copy, seed_loop
from benchmarks.env import Workspace, log, manifest_head, measured_cpu, registry
from benchmarks.images import BuiltImage, build_image
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.scenarios import MiB, ScenarioResult, Sizes, rotated, template
from devtools.images import RegistryPusher
from devtools.registry import LocalRegistry

RTT = 0.150
RATE = 10e6
PLATFORM = "linux/amd64"
CONTENDERS = ["ours", "skopeo-seed", "curl-limit"]


def thin_link(ws: Workspace, sizes: Sizes, runs: int) -> list[ScenarioResult]:
    """Both images, every contender, ``runs`` times each (order rotated); one result per image."""
    shapes = {
        "thin/big": [sizes.thin_big, 8 * MiB, 1 * MiB],
        "thin/layers": [sizes.thin_small] * 20,
    }
    results = []
    for repo, layer_sizes in shapes.items():
        total = sum(layer_sizes) / MiB
        name = "thin-big" if repo == "thin/big" else "thin-20"
        what = f"3 layers, one of {layer_sizes[0] // MiB} MiB" if name == "thin-big" else "20 layers"
        result = ScenarioResult(
            name,
            f"Long thin link to the destination ({RTT * 1000:.0f} ms RTT, {RATE / 1e6:.0f} MB/s per "
            f"connection): {what}, {total:.0f} MiB, 1 platform",
        )
        log(f"{name}: building a {total:.0f} MiB image")

        def fill(reg: LocalRegistry, repo: str = repo, layer_sizes: list[int] = layer_sizes) -> BuiltImage:
            with RegistryPusher(reg.url) as pusher:
                return build_image(pusher, repo, ("v1",), [PLATFORM], 0, 0, sizes=layer_sizes)

        with template(ws, name, fill) as (storage, image):
            for i in range(runs):
                for contender in rotated(CONTENDERS, i):
                    with (
                        registry(ws, "src", storage) as src,
                        registry(ws, "dst") as dst,
                        LatencyProxy(dst.url, RTT, rate=RATE) as link,
                    ):
                        cpu: dict[str, float] = {}
                        with measured_cpu(cpu):
                            outcome = _one(contender, src, link, repo, image)
                        if manifest_head(dst.url, repo, "v1") is None:
                            raise RuntimeError(f"{contender}: {repo}:v1 missing after the run")
                        result.row(contender).add(
                            outcome, connections=link.connections, proxied_requests=link.requests, **cpu
                        )
                        log(f"{name} run {i + 1}/{runs} {contender}: {outcome.seconds:.2f}s")
        _figures(result, sum(layer_sizes), max(layer_sizes))
        results.append(result)
    return results


def _one(contender: str, src: LocalRegistry, link: LatencyProxy, repo: str, image: BuiltImage) -> Outcome:
    if contender == "ours":
        return ours_copy(src.host, link.host, repo, "v1", ["amd64"])
    if contender == "skopeo-seed":
        return seed_loop(src.host, link.host, [(repo, "v1", repo)], ["v1"], ["amd64"])
    return curl_limit(src.host, link.host, repo, "v1", image, [PLATFORM])


def _figures(result: ScenarioResult, total: int, largest: int) -> None:
    ours, seed, limit = (result.row(c) for c in CONTENDERS)
    result.figures["bytes"] = total
    # One blob is one upload session, and one session is one stream: the largest layer's time at
    # one connection's rate is a floor no client can go under on this link.
    floor = largest / RATE
    result.figures["one_stream_floor_s"] = round(floor, 1)
    result.figures["ours_vs_limit"] = round(limit.median / ours.median, 3)
    result.figures["ours_vs_skopeo"] = round(seed.median / ours.median, 3)
    gb = total / 1e9
    result.figures["ours_cpu_s_per_GB"] = round(ours.median_of("cpu_s") / gb, 2)
    result.figures["skopeo_cpu_s_per_GB"] = round(seed.median_of("cpu_s") / gb, 2)
    result.goals.append(
        (
            "ours at least as fast as skopeo (the seed's loop) on the same link",
            ours.median <= seed.median,
            f"{seed.median:.2f}s / {ours.median:.2f}s = {seed.median / ours.median:.2f}x",
        )
    )
    result.goals.append(
        (
            "ours within 0.90x of the raw limit (curl pipes, 8 at a time)",
            limit.median / ours.median >= 0.90,
            f"{limit.median:.2f}s / {ours.median:.2f}s = {limit.median / ours.median:.2f}x",
        )
    )
    result.notes.append(
        f"one stream per blob upload (the protocol's limit): the largest blob alone needs "
        f"{floor:.1f}s at {RATE / 1e6:.0f} MB/s; `connections` = TCP connections through the link"
    )
    result.goals.append(
        (
            "goal 5: CPU-seconds per copied GB (no target: a figure to watch for regressions)",
            None,
            f"ours {result.figures['ours_cpu_s_per_GB']} s, skopeo {result.figures['skopeo_cpu_s_per_GB']} s "
            "(start-up included)",
        )
    )
