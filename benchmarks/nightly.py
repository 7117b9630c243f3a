"""Scenario ``nightly`` (issue 15, goal 1): the 300-image nightly no-op.

300 entries x 2 tags x 2 of 3 platforms (seed-shaped, ``arch_tags``), the source behind the 50 ms
latency proxy, the destination already up to date: what the nightly job does on most nights. Ours
syncs all 300 once (untimed set-up, shown as a row), then the measured rerun runs under
``/usr/bin/time -v`` (peak RSS) while both registries count source GETs and uploads. The seed's loop
cannot be run 300 times in a benchmark (about 20 minutes a run here), so it runs on a sample of
30 of the same entries (cold, then the measured rerun) and its rerun is extrapolated linearly: it
is a sequential loop of the same commands per entry, so its time is proportional to the entries.
"""

from __future__ import annotations

from benchmarks.contenders import ours_sync, seed_loop, write_images_json
from benchmarks.env import Workspace, log, manifest_head, measured_cpu, registry
from benchmarks.images import build_image
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.scenarios import ARCHES, PLATFORMS3, ScenarioResult, Sizes, _upload_counts, template
from devtools.images import RegistryPusher
from devtools.registry import LocalRegistry

TAGS = ["v1", "latest"]


def nightly(ws: Workspace, sizes: Sizes, runs: int) -> ScenarioResult:
    """Ours' no-op rerun of every entry against the seed's loop's rerun of a sample, extrapolated."""
    count, sample = sizes.nightly_images, sizes.nightly_sample
    repos = [f"nightly/img{n:03d}" for n in range(count)]
    scale = count / sample
    result = ScenarioResult(
        "nightly",
        f"Nightly no-op: {count} entries x 2 tags x 2 of 3 platforms, nothing changed, "
        f"+{sizes.latency * 1000:.0f} ms per source request",
    )
    log(f"nightly: building {count} 3-platform images")

    def fill(reg: LocalRegistry) -> None:
        with RegistryPusher(reg.url) as pusher:
            for repo in repos:
                build_image(pusher, repo, tuple(TAGS), PLATFORMS3, 1, 1024)

    with template(ws, "nightly", fill) as (storage, _):
        for i in range(runs):
            with (
                registry(ws, "src", storage) as src,
                LatencyProxy(src.url, sizes.latency) as proxy,
                registry(ws, "dst") as dst,
            ):
                config = ws.path("nightly-config") / "images.json"
                write_images_json(config, proxy.host, repos, "v1", TAGS, ARCHES, arch_tags=True)
                cpu: dict[str, float] = {}
                with measured_cpu(cpu):
                    cold = ours_sync(config, proxy.host, dst.host, "mirror")
                result.row(f"ours cold ({count})").add(cold, **cpu)
                log(f"nightly run {i + 1}/{runs} ours cold: {cold.seconds:.2f}s")
                marks = src.mark(), dst.mark()
                with measured_cpu(cpu):
                    rerun = ours_sync(config, proxy.host, dst.host, "mirror", rss=True)
                counts = _upload_counts(src, dst, *marks)
                result.row(f"ours rerun ({count})").add(rerun, **counts, **cpu)
                log(f"nightly run {i + 1}/{runs} ours rerun: {rerun.seconds:.2f}s {counts}")
                jobs = [(repo, "v1", "seed/" + repo.rsplit("/", 1)[-1]) for repo in repos[:sample]]
                with measured_cpu(cpu):
                    seeded = seed_loop(proxy.host, dst.host, jobs, TAGS, ARCHES)
                result.row(f"seed-loop cold ({sample})").add(seeded, **cpu)
                log(f"nightly run {i + 1}/{runs} seed-loop cold ({sample}): {seeded.seconds:.2f}s")
                marks = src.mark(), dst.mark()
                with measured_cpu(cpu):
                    again = seed_loop(proxy.host, dst.host, jobs, TAGS, ARCHES)
                counts = _upload_counts(src, dst, *marks)
                result.row(f"seed-loop rerun ({sample})").add(again, **counts, **cpu)
                log(f"nightly run {i + 1}/{runs} seed-loop rerun ({sample}): {again.seconds:.2f}s")
                last = repos[-1].rsplit("/", 1)[-1]
                if manifest_head(dst.url, f"mirror/{last}", "latest") is None:
                    raise RuntimeError(f"nightly: mirror/{last}:latest missing after the run")
    _goals(result, count, sample, scale)
    return result


def _goals(result: ScenarioResult, count: int, sample: int, scale: float) -> None:
    ours = result.row(f"ours rerun ({count})")
    seed = result.row(f"seed-loop rerun ({sample})")
    extrapolated = seed.median * scale
    speedup = extrapolated / ours.median
    rss = ours.median_of("peak_rss_MiB")
    gets = ours.median_of("src_manifest_gets") + ours.median_of("src_blob_gets")
    uploads = ours.median_of("dst_uploads") + ours.median_of("dst_manifest_puts")
    per_image = ours.median_of("cpu_s") / count
    result.figures.update(
        seed_loop_extrapolated_s=round(extrapolated, 1),
        ours_vs_seed_loop=round(speedup, 1),
        ours_cpu_s_per_unchanged_image=round(per_image, 4),
        seed_cpu_s_per_unchanged_image=round(seed.median_of("cpu_s") / sample, 4),
    )
    result.goals += [
        (
            f">= 50x faster than the seed's loop (its rerun of {sample} entries x {scale:g})",
            speedup >= 50,
            f"{seed.median:.2f}s x {scale:g} = {extrapolated:.0f}s / {ours.median:.2f}s = {speedup:.0f}x",
        ),
        ("peak RSS <= 150 MB", rss * 1024 * 1024 <= 150e6, f"{rss:.0f} MiB"),
        ("0 source GETs", gets == 0, f"{gets:g} (manifest and blob GETs)"),
        ("0 uploads", uploads == 0, f"{uploads:g} (upload requests and manifest PUTs)"),
    ]
    seed_ms = result.figures["seed_cpu_s_per_unchanged_image"] * 1000
    result.goals.append(
        (
            "goal 5: CPU-seconds per unchanged image (no target: a figure to watch for regressions)",
            None,
            f"ours {per_image * 1000:.1f} ms (cpu_s of the rerun / {count}, start-up included); "
            f"the seed's loop {seed_ms:.0f} ms",
        )
    )
