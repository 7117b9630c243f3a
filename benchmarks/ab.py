"""A/B of the cold copy: variants of ours (environment settings) side by side with curl and skopeo.

    python -m benchmarks.ab --runs 5 --variant asyncio= --variant anyio=DT_NETWORK_BACKEND=anyio \\
        --curl --skopeo

Every run gets fresh registries (the source a hard-linked clone of one template), the order
of the contenders rotates by one each run, and each line reports the median and minimum
wall time, the contender's own CPU and the two registries' CPU (from /proc). It is how the
before/after figures in docs/performance.md for one change at a time were made; the
variants run the working tree's ``src/`` (not a snapshot).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from benchmarks.contenders import _skopeo_copy, curl_limit, seed_loop
from benchmarks.env import Workspace, clear_blob_info_cache, log, measured_cpu, registry, run_timed
from benchmarks.images import BuiltImage, build_image
from benchmarks.scenarios import ARCHES, CHOSEN, PLATFORMS3, MiB, rotated, template
from devtools.images import RegistryPusher
from devtools.registry import LocalRegistry

SRC = Path(__file__).resolve().parent.parent / "src"
REPO, TAG = "bench/big", "v1"


def _variant(spec: str) -> tuple[str, dict[str, str]]:
    """``name=VAR=value,VAR2=value2`` (``name=`` for no settings)."""
    name, _, settings = spec.partition("=")
    env = dict(item.split("=", 1) for item in settings.split(",") if item)
    return name, env


def registry_cpu(*registries: LocalRegistry) -> float:
    """CPU seconds the registries' processes have used so far (user + system, from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for reg in registries:
        pid = reg._proc.pid if reg._proc is not None else None
        if pid is None:
            continue
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _run_one(
    name: str, src: LocalRegistry, dst: LocalRegistry, image: BuiltImage, env: dict[str, str]
) -> float:
    repo, tag = REPO, TAG
    if name == "curl":
        return curl_limit(src.host, dst.host, repo, tag, image, CHOSEN).seconds
    if name == "skopeo" and src.tls:
        # The seed's per-arch copies only: its manifest-list PUT is plain-http curl here.
        clear_blob_info_cache()
        return sum(
            _skopeo_copy(f"{src.host}/{repo}:{tag}", f"{dst.host}/{repo}:{tag}-{a}", a).seconds
            for a in ARCHES
        )
    if name == "skopeo":
        return seed_loop(src.host, dst.host, [(repo, tag, repo)], [tag], ARCHES).seconds
    argv = [
        sys.executable,
        "-m",
        "docker_transfer",
        "copy",
        f"{src.host}/{repo}:{tag}",
        f"{dst.host}/{repo}:{tag}",
    ]
    argv += ["--arch", "amd64", "--arch", "arm64", "--json"]
    argv += ["--insecure-registry", src.host, "--insecure-registry", dst.host]
    return run_timed(argv, env={**os.environ, "PYTHONPATH": str(SRC), **env}).seconds


def main(argv: list[str] | None = None) -> int:
    """Run the A/B and print one line per contender."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], help="name=VAR=value,... (repeatable)")
    parser.add_argument("--curl", action="store_true", help="add the raw limit (curl pipes)")
    parser.add_argument("--skopeo", action="store_true", help="add the seed's skopeo copies")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--tls",
        action="store_true",
        help="both registries serve HTTPS (not with --curl; skopeo then runs its two copies only)",
    )
    args = parser.parse_args(argv)
    if args.tls and args.curl:
        parser.error("--tls: the curl pipes speak plain http")
    variants = dict(_variant(v) for v in args.variant) or {"ours": {}}
    names = [*variants, *(["curl"] if args.curl else []), *(["skopeo"] if args.skopeo else [])]
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    reg_cpu: dict[str, list[float]] = {n: [] for n in names}
    ws = Workspace()
    try:

        def fill(reg: LocalRegistry) -> BuiltImage:
            with RegistryPusher(reg.url) as pusher:
                return build_image(pusher, REPO, (TAG,), PLATFORMS3, 4, 50 * MiB)

        with template(ws, "ab", fill) as (storage, image):
            for i in range(args.runs):
                for name in rotated(names, i):
                    with (
                        registry(ws, "src", storage, tls=args.tls) as src,
                        registry(ws, "dst", tls=args.tls) as dst,
                    ):
                        used: dict[str, float] = {}
                        before = registry_cpu(src, dst)
                        with measured_cpu(used):
                            seconds = _run_one(name, src, dst, image, variants.get(name, {}))
                        reg_cpu[name].append(registry_cpu(src, dst) - before)
                        wall[name].append(seconds)
                        cpu[name].append(used["cpu_s"])
                        log(f"run {i + 1}/{args.runs} {name}: {seconds:.2f}s, cpu {used['cpu_s']:.2f}s")
    finally:
        ws.close()
    for name in names:
        median = statistics.median
        print(
            f"{name:<14} median {median(wall[name]):.2f}s  min {min(wall[name]):.2f}s  "
            f"cpu {median(cpu[name]):.2f}s  registries' cpu {median(reg_cpu[name]):.2f}s  "
            f"runs {' '.join(f'{s:.2f}' for s in wall[name])}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
