"""``python -m benchmarks.run``: docker-transfer against skopeo and the raw limit (issue 5).

Prints a table and one JSON line on stdout (progress goes to stderr) and rewrites the generated
block of docs/performance.md after a full run. Nothing here is a test: it never fails on a
missed goal, only on a broken contender.

    python -m benchmarks.run                   # everything, 3 runs each (~10 min on 2 cores)
    python -m benchmarks.run --quick           # small sizes, 1 run: a smoke test in ~2 min
    python -m benchmarks.run --scenario many --runs 5
    python -m benchmarks.run --profile         # pyinstrument on the cold copy, then exit
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.env import Workspace, loadavg, log, machine, snapshot_package
from benchmarks.http2 import http2_experiment
from benchmarks.profile import profile_cold
from benchmarks.report import as_json, json_line, markdown, text_table, write_docs
from benchmarks.scenarios import MiB, ScenarioResult, Sizes, cold_and_rerun, many_images, memory_disk

SCENARIOS = (
    "cold", "rerun", "many", "memory", "plan", "dryscale", "thin", "nightly", "curve", "twodest",
)  # fmt: skip
OPTIONAL = ("http2",)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and 1 run unless --runs is given")
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="measured runs per contender (default 5 for cold/rerun, which take seconds; 3 for the others)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS + OPTIONAL,
        help="run only this scenario (repeatable); http2 is an optional experiment, not in the default set",
    )
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rewrite docs/performance.md (default: only for a full, non-quick run of every scenario)",
    )
    parser.add_argument("--docs-path", type=Path, default=DOCS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--thin-big-mib",
        type=int,
        default=None,
        metavar="MIB",
        help="the thin scenario's large layer in MiB (default 1024, the issue's 1 GB; 20 with --quick)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the cold copy with pyinstrument and exit"
    )
    parser.add_argument(
        "--profile-out", type=Path, default=Path("/tmp/dt-bench-profile"), help="where --profile writes"
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _check_tools() -> None:
    missing = [tool for tool in ("docker-registry", "skopeo", "curl", "strace") if shutil.which(tool) is None]
    if not Path("/usr/bin/time").exists():
        missing.append("time (/usr/bin/time)")
    if missing:
        raise SystemExit(
            f"missing tools: {', '.join(missing)} (apt-get install docker-registry skopeo curl strace time)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios and report."""
    args = _parse(argv)
    _check_tools()
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.thin_big_mib:
        sizes = dataclasses.replace(sizes, thin_big=args.thin_big_mib * MiB)
    runs = args.runs or (1 if args.quick else 3)
    # The cold copy is seconds long and its ratios are the closest to their goals: more samples.
    short_runs = args.runs or (1 if args.quick else 5)
    chosen = args.scenario or list(SCENARIOS)
    interpreter = Path(sys.executable)  # under make bench: .venv/bin/python
    here = Path.cwd()
    shown = str(interpreter.relative_to(here)) if interpreter.is_relative_to(here) else "python"
    command = f"{shown} -m benchmarks.run" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    started = time.monotonic()
    load_start = loadavg()
    ws = Workspace()
    results: list[ScenarioResult] = []
    plan: list[dict[str, Any]] = []
    try:
        package = snapshot_package(ws)
        log(f"workspace {ws.root}; benchmarking a snapshot of {package}")
        log(f"scenarios {', '.join(chosen)}; {short_runs} run(s) each for cold/rerun, {runs} for the others")
        if args.profile:
            path = profile_cold(ws, sizes, args.profile_out)
            print(path.read_text())
            return 0
        if "cold" in chosen or "rerun" in chosen:
            results += cold_and_rerun(ws, sizes, short_runs, "cold" in chosen, "rerun" in chosen)
        if "many" in chosen:
            results.append(many_images(ws, sizes, runs))
        if "memory" in chosen:
            results.append(memory_disk(ws, sizes, runs))
        if "http2" in chosen:
            results.append(http2_experiment(ws, sizes, runs))
        if "plan" in chosen:
            # Imported only now, from the snapshot (it runs docker_transfer in this process).
            measure = importlib.import_module("benchmarks.planscale").measure
            scratch = ws.path("plan")
            for latency, counts in ((0.0, sizes.plan_counts), (0.050, sizes.plan_latency_counts)):
                for n in counts:
                    samples = [measure(scratch, n, latency) for _ in range(runs if latency == 0 else 1)]
                    point = sorted(samples, key=lambda p: p["total_s"])[len(samples) // 2]
                    plan.append(point)
                    log(f"plan {n} entries, {latency * 1000:.0f} ms latency: {point['total_s']:.3f}s")
        if "curve" in chosen:
            curve = importlib.import_module("benchmarks.curve").concurrency_curve
            results.append(curve(ws, sizes, runs))
        if "twodest" in chosen:
            two = importlib.import_module("benchmarks.twodest").two_destinations
            results += two(ws, sizes, runs)
        if "nightly" in chosen:
            # Minutes per run (the seed's sample alone is ~80 s): one run unless --runs.
            nightly = importlib.import_module("benchmarks.nightly").nightly
            results.append(nightly(ws, sizes, args.runs or 1))
        if "thin" in chosen:
            # Tens of seconds per run at 10 MB/s: one run unless --runs.
            thin_link = importlib.import_module("benchmarks.thinlink").thin_link
            results += thin_link(ws, sizes, args.runs or 1)
        if "dryscale" in chosen:
            # In process too; 7,000 entries per run, bounded and unbounded: one run unless --runs.
            scale = importlib.import_module("benchmarks.poolscale").dry_run_scale
            counts = (50, 100, 200) if args.quick else (500, 1000, 2000)
            results.append(scale(ws.path("dryscale"), args.runs or 1, counts))
    finally:
        ws.close()
    elapsed = time.monotonic() - started
    info = machine()
    info["load"] = f"{load_start} at start, {loadavg()} at end"
    print(text_table(results, plan))
    print(f"\nwhole run: {elapsed:.0f}s")
    print(json_line(as_json(results, plan, info, command, runs, args.quick, elapsed)))
    write = args.docs if args.docs is not None else (not args.quick and not args.scenario)
    if write:
        write_docs(args.docs_path, markdown(results, plan, info, command, runs, elapsed))
        log(f"wrote {args.docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
