"""Benchmark plumbing: a scratch root under /tmp, fresh registries, timing, the machine's description."""

from __future__ import annotations

import compileall
import importlib.util
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.registry import LocalRegistry

BLOB_INFO_CACHES = (
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),  # skopeo as root
    Path.home() / ".local/share/containers/cache/blob-info-cache-v1.boltdb",  # rootless
)


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the table and the JSON line)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Workspace:
    """``/tmp/dt-bench-XXXX``: every registry's storage and every scratch file; removed at the end."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dt-bench-", dir="/tmp"))
        self._n = 0

    def path(self, name: str) -> Path:
        """A new, unique directory under the root."""
        self._n += 1
        path = self.root / f"{self._n:04d}-{name}"
        path.mkdir(parents=True)
        return path

    def close(self) -> None:
        """Delete everything."""
        shutil.rmtree(self.root, ignore_errors=True)


def clone_tree(template: Path, target: Path) -> None:
    """Hard-link copy of a registry storage tree (instant; sources are only read)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(template), str(target)], check=True)


@contextmanager
def registry(
    ws: Workspace, name: str, template: Path | None = None, *, tls: bool = False
) -> Iterator[LocalRegistry]:
    """A fresh ``docker-registry`` process; its storage is a clone of ``template`` or empty.

    The storage is deleted when the block exits.
    """
    workdir = ws.path(name)
    storage = workdir / "storage"
    if template is not None:
        clone_tree(template, storage)
    reg = LocalRegistry(storage_dir=storage, workdir=workdir, tls=tls)
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def child_cpu() -> float:
    """User + system CPU seconds of every finished child so far (take a difference around a run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measured_cpu(into: dict[str, float]) -> Iterator[None]:
    """Put the CPU seconds that children finishing inside the block used into ``into["cpu_s"]``.

    Registries started outside the block are still running, so they are not counted: this is
    the contender's own CPU (all its processes), less sensitive to other load than wall time.
    """
    before = child_cpu()
    yield
    into["cpu_s"] = round(child_cpu() - before, 3)


def loadavg() -> str:
    """The 1/5/15-minute load averages (other work on the machine skews wall times)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


@dataclass
class Timed:
    """A finished command: wall seconds, exit code, captured output."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str


def run_timed(argv: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True) -> Timed:
    """Run a command, timing its wall clock; raise with its output when it fails and ``check``."""
    started = time.perf_counter()
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - started
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return Timed(took, proc.returncode, proc.stdout, proc.stderr)


def clear_blob_info_cache() -> list[str]:
    """Delete skopeo's blob-info caches (root and rootless locations); returns what was removed."""
    removed = []
    for path in BLOB_INFO_CACHES:
        if path.exists():
            path.unlink()
            removed.append(str(path))
    return removed


def snapshot_package(ws: Workspace) -> Path:
    """Copy the ``docker_transfer`` package into the workspace and put it first on ``PYTHONPATH``.

    Every ``python -m docker_transfer`` of the run then uses the code as it was when the run
    started, even while someone edits ``src/``. Fails early when that code does not start.
    """
    spec = importlib.util.find_spec("docker_transfer")
    if spec is None or spec.origin is None:
        raise SystemExit("docker_transfer is not importable: pip install -e . first")
    package = Path(spec.origin).parent
    target = ws.root / "snapshot"
    shutil.copytree(package, target / "docker_transfer", ignore=shutil.ignore_patterns("__pycache__"))
    # Byte-compiled like `pip install` leaves it: without .pyc files (PYTHONDONTWRITEBYTECODE is
    # set on these machines) every run would compile the package again, ~40 ms users never pay.
    compileall.compile_dir(target / "docker_transfer", quiet=1, force=True)
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(target), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    check = subprocess.run([*ours_argv(), "--help"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise SystemExit(f"the snapshot of {package} does not run:\n{check.stderr[-2000:]}")
    return package


def ours_argv() -> list[str]:
    """``python -m docker_transfer`` with the interpreter running the benchmark."""
    return [sys.executable, "-m", "docker_transfer"]


def manifest_head(registry_url: str, repo: str, ref: str) -> str | None:
    """Digest of a destination manifest, or None when absent (a sanity check after each run)."""
    accept = ", ".join(
        [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
    )
    response = httpx.head(f"{registry_url}/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
    if response.status_code != 200:
        return None
    digest: str | None = response.headers.get("Docker-Content-Digest")
    return digest


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        if match:
            mem = f"{int(match[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    httpx_version = httpx.__version__
    return {
        "nproc": str(os.cpu_count() or 0),
        "memory": mem,
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "httpx": httpx_version,
        "skopeo": _first_line(["skopeo", "--version"]),
        "registry": _first_line(["docker-registry", "--version"]),
        "curl": " ".join(_first_line(["curl", "--version"]).split()[:2]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
