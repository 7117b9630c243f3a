"""Peak RSS of layout and archive copies of one large image (issue 14: a 2 GB image in < 150 MB).

Not a test: it writes a synthetic OCI layout of ``--size`` bytes (layers of random bytes, made
in 1 MiB chunks so this script stays small too), then times and measures (``wait4`` max RSS)
``docker-transfer copy`` for each direction through a local docker-registry:

    layout -> registry, registry -> oci-archive file, registry -> oci-archive on stdout,
    oci-archive file -> registry, oci-archive on stdin -> registry, registry -> oci layout

Run: ``.venv/bin/python -m benchmarks.layout_rss --size 2G`` (needs ~4x the size in free disk).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools.registry import LocalRegistry

MIB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _size(text: str) -> int:
    units = {"K": 1024, "M": MIB, "G": 1024 * MIB}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def _blob(root: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_layout(root: Path, total: int, layers: int) -> None:
    """An OCI layout named ``v1``: ``layers`` random layers adding up to ``total`` bytes."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    descs = []
    for _ in range(layers):
        digest = hashlib.sha256()
        tmp = root / "blobs" / "sha256" / "tmp"
        with tmp.open("wb") as out:
            for _ in range(total // layers // MIB):
                chunk = os.urandom(MIB)
                digest.update(chunk)
                out.write(chunk)
        tmp.rename(root / "blobs" / "sha256" / digest.hexdigest())
        size = (total // layers // MIB) * MIB
        descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{digest.hexdigest()}",
                "size": size,
            }
        )
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(root, config)},
            "layers": descs,
        }
    ).encode()
    entry = {"mediaType": OCI_MANIFEST, **_blob(root, manifest)}
    entry["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


def measure(label: str, argv: list[str], stdin: Path | None = None) -> tuple[str, float, float]:
    """Run ``argv`` (stdin from a file if given); its wall time and peak RSS (MiB) from ``wait4``."""
    started = time.monotonic()
    with stdin.open("rb") if stdin else open(os.devnull, "rb") as source:
        proc = subprocess.Popen(argv, stdin=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - started
    if status != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{label} failed: {proc.stderr.read().decode()}")
    return label, took, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    """Build the layout, run each copy, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="image size (e.g. 512M, 2G)")
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args(argv)
    total = _size(args.size)
    cli = [sys.executable, "-m", "docker_transfer", "copy"]
    with tempfile.TemporaryDirectory(prefix="layout-rss-") as tmp:
        work = Path(tmp)
        make_layout(work / "layout", total, args.layers)
        with LocalRegistry(workdir=work / "registry") as reg:
            flags = ["--insecure-registry", reg.host]
            archive = work / "big.tar"
            rows = [
                measure(
                    "oci:DIR -> registry",
                    [*cli, f"oci:{work / 'layout'}:v1", f"{reg.host}/big/app:v1", *flags],
                ),
                measure(
                    "registry -> oci-archive:FILE",
                    [*cli, f"{reg.host}/big/app:v1", f"oci-archive:{archive}", *flags],
                ),
                measure(
                    "registry -> oci-archive:- (stdout)",
                    [*cli, f"{reg.host}/big/app:v1", "oci-archive:-", *flags],
                ),
                measure(
                    "oci-archive:FILE -> registry",
                    [*cli, f"oci-archive:{archive}", f"{reg.host}/back/app:v1", *flags],
                ),
                measure(
                    "oci-archive:- (stdin) -> registry",
                    [*cli, "oci-archive:-", f"{reg.host}/piped/app:v1", *flags],
                    stdin=archive,
                ),
                measure(
                    "registry -> oci:DIR", [*cli, f"{reg.host}/big/app:v1", f"oci:{work / 'copy'}", *flags]
                ),
            ]
    print(f"image: {total / MIB:.0f} MiB in {args.layers} layers")
    print(f"{'copy':<38} {'seconds':>8} {'peak RSS MiB':>13}")
    for label, took, rss in rows:
        print(f"{label:<38} {took:>8.1f} {rss:>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
