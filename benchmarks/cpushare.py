"""Where the CPU goes in the many-images cold copy (issue 15, goal 2): every process's share.

    python -m benchmarks.cpushare --runs 3                 # ours only
    python -m benchmarks.cpushare --runs 3 --seed-loop     # and the seed's loop beside it

The ``many`` scenario's 30 images (2 platforms, 2 tags, 32 KiB layers; the source behind the
50 ms proxy) copied cold into a fresh destination. For each run it prints the wall time, the CPU
seconds of the client, of the source and destination registries (from /proc) and of the latency
proxy (this process's threads), the destination's requests by kind (its access log), and the
floor those fixed shares set on a machine with this many cores: (registries + proxy) / cores.
Not part of ``make bench``: it explains a figure of the ``many`` row, it does not set a goal.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import statistics

from benchmarks.ab import registry_cpu
from benchmarks.contenders import Outcome, ours_sync, seed_loop, write_images_json
from benchmarks.env import Workspace, log, measured_cpu, registry, snapshot_package
from benchmarks.images import build_image
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.scenarios import ARCHES, CHOSEN, Sizes, rotated, template
from devtools.images import RegistryPusher
from devtools.registry import LocalRegistry

_REQUEST = re.compile(r'"(HEAD|GET|PUT|POST|PATCH|DELETE) (/v2/[^ ?]*)')


def _requests_by_kind(reg: LocalRegistry) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for line in reg.access_log_path.read_text(errors="replace").splitlines():
        match = _REQUEST.search(line)
        if match is None:
            continue
        path = match[2]
        kind = "uploads" if "/blobs/uploads" in path else "blobs" if "/blobs/" in path else "manifests"
        if "/manifests/" in path or kind != "manifests":
            counts[f"{match[1]} {kind}"] += 1
    return dict(sorted(counts.items()))


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _one(
    name: str, ws: Workspace, proxy: LatencyProxy, dst: LocalRegistry, repos: list[str], tags: list[str]
) -> Outcome:
    if name == "ours":
        config = ws.path("cpushare-config") / "images.json"
        write_images_json(config, proxy.host, repos, "v1", tags, ARCHES, arch_tags=True)
        return ours_sync(config, proxy.host, dst.host, "mirror")
    jobs = [(repo, "v1", "mirror/" + repo.rsplit("/", 1)[-1]) for repo in repos]
    return seed_loop(proxy.host, dst.host, jobs, tags, ARCHES)


def main() -> None:
    """Run ours (and the seed's loop) ``--runs`` times; print each process's CPU per run."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cpushare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed-loop", action="store_true", help="also measure the seed's loop")
    args = parser.parse_args()
    sizes = Sizes()
    repos = [f"bench/img{n:02d}" for n in range(sizes.many_images)]
    tags = ["v1", "latest"]
    contenders = ["ours", *(["seed-loop"] if args.seed_loop else [])]
    cores = os.cpu_count() or 1
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}

    def fill(reg: LocalRegistry) -> None:
        with RegistryPusher(reg.url) as pusher:
            for repo in repos:
                build_image(pusher, repo, tuple(tags), CHOSEN, sizes.many_layers, sizes.many_layer_size)

    ws = Workspace()
    try:
        snapshot_package(ws)
        with template(ws, "cpushare", fill) as (storage, _):
            for i in range(args.runs):
                for name in rotated(contenders, i):
                    with (
                        registry(ws, "src", storage) as src,
                        LatencyProxy(src.url, sizes.latency) as proxy,
                        registry(ws, "dst") as dst,
                    ):
                        cpu: dict[str, float] = {}
                        proxy_before = _self_cpu()
                        with measured_cpu(cpu):
                            outcome = _one(name, ws, proxy, dst, repos, tags)
                        row = {
                            "wall_s": outcome.seconds,
                            "client_cpu_s": cpu["cpu_s"],
                            "src_registry_cpu_s": registry_cpu(src),
                            "dst_registry_cpu_s": registry_cpu(dst),
                            "proxy_cpu_s": _self_cpu() - proxy_before,
                        }
                        fixed = row["src_registry_cpu_s"] + row["dst_registry_cpu_s"] + row["proxy_cpu_s"]
                        row["fixed_floor_s"] = fixed / cores
                        rows[name].append(row)
                        shares = " ".join(f"{key}={value:.2f}" for key, value in row.items())
                        log(f"run {i + 1}/{args.runs} {name}: {shares}")
                        log(f"  destination requests: {_requests_by_kind(dst)}")
    finally:
        ws.close()
    print(f"medians of {args.runs} run(s), {cores} cores:")
    for name, samples in rows.items():
        medians = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
        print(f"{name:10} " + " ".join(f"{key}={value:.2f}" for key, value in medians.items()))


if __name__ == "__main__":
    main()
