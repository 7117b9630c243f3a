"""Profile the cold path: ``pyinstrument`` around ``python -m docker_transfer copy`` of the cold image.

Not part of the default run (``python -m benchmarks.run --profile``); needs ``pip install pyinstrument``.
The text profile and an HTML one are written to ``--profile-out`` (default /tmp/dt-bench-profile).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from benchmarks.env import Workspace, log, registry, run_timed
from benchmarks.images import build_image
from benchmarks.scenarios import ARCHES, PLATFORMS3, Sizes, template
from devtools.images import RegistryPusher
from devtools.registry import LocalRegistry


def profile_cold(ws: Workspace, sizes: Sizes, out_dir: Path, concurrency: int = 8) -> Path:
    """Run the cold copy once under pyinstrument; returns the text profile's path."""
    if importlib.util.find_spec("pyinstrument") is None:
        raise SystemExit("pyinstrument is not installed: pip install pyinstrument")
    out_dir.mkdir(parents=True, exist_ok=True)
    repo, tag = "bench/big", "v1"

    def fill(reg: LocalRegistry) -> None:
        with RegistryPusher(reg.url) as pusher:
            build_image(pusher, repo, (tag,), PLATFORMS3, sizes.cold_layers, sizes.cold_layer_size)

    text = out_dir / "cold-copy.txt"
    with template(ws, "profile", fill) as (storage, _):
        for renderer, target in (("text", text), ("html", out_dir / "cold-copy.html")):
            with registry(ws, "src", storage) as src, registry(ws, "dst") as dst:
                argv = [sys.executable, "-m", "pyinstrument", "-r", renderer, "-o", str(target)]
                argv += [
                    "-m",
                    "docker_transfer",
                    "copy",
                    f"{src.host}/{repo}:{tag}",
                    f"{dst.host}/{repo}:{tag}",
                ]
                for arch in ARCHES:
                    argv += ["--arch", arch]
                argv += ["--insecure-registry", src.host, "--insecure-registry", dst.host]
                argv += ["--concurrency", str(concurrency)]
                done = run_timed(argv)
                log(f"profiled cold copy ({renderer}): {done.seconds:.2f}s -> {target}")
    return text
