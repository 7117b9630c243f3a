"""`kill -9` during a sync never leaves a tag pointing at an incomplete image."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from devtools.images import push_image
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.manifest import ACCEPT_MANIFESTS, SOURCE_DIGEST_ANNOTATION

ACCEPT = ", ".join(ACCEPT_MANIFESTS)
IMAGES = [f"app{i}" for i in range(5)]
TAGS = ["1", "latest"]
TRIALS = 10
LAYER = 512 * 1024


def sync_cmd(config: Path, src: LocalRegistry, dst: LocalRegistry) -> list[str]:
    return [
        sys.executable,
        "-m",
        "docker_transfer",
        "sync",
        "--config",
        str(config),
        "--target-registry",
        dst.host,
        "--target-namespace",
        "m",
        "--insecure-registry",
        src.host,
        "--insecure-registry",
        dst.host,
    ]


def complete(dst: LocalRegistry, repo: str, digest: str) -> bool:
    """The manifest, every child manifest and every blob they name are present."""
    resp = httpx.get(f"{dst.url}/v2/{repo}/manifests/{digest}", headers={"Accept": ACCEPT})
    if resp.status_code != 200:
        return False
    doc: dict[str, Any] = resp.json()
    images = []
    if "manifests" in doc:
        for child in doc["manifests"]:
            got = httpx.get(f"{dst.url}/v2/{repo}/manifests/{child['digest']}", headers={"Accept": ACCEPT})
            if got.status_code != 200:
                return False
            images.append(got.json())
    else:
        images.append(doc)
    for image in images:
        for blob in [image["config"], *image["layers"]]:
            if httpx.head(f"{dst.url}/v2/{repo}/blobs/{blob['digest']}").status_code != 200:
                return False
    return True


def tag_state(dst: LocalRegistry) -> dict[tuple[str, str], str | None]:
    state: dict[tuple[str, str], str | None] = {}
    for name in IMAGES:
        for tag in TAGS:
            resp = httpx.head(f"{dst.url}/v2/m/{name}/manifests/{tag}", headers={"Accept": ACCEPT})
            state[(name, tag)] = (
                resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None
            )
    return state


def source_of(dst: LocalRegistry, name: str, digest: str) -> str | None:
    doc = httpx.get(f"{dst.url}/v2/m/{name}/manifests/{digest}", headers={"Accept": ACCEPT}).json()
    value = doc.get("annotations", {}).get(SOURCE_DIGEST_ANNOTATION)
    return str(value) if value else None


def test_kill_9_at_random_moments(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    src, dst = registry_factory(), registry_factory()
    platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
    for name in IMAGES:
        push_image(src.url, name, "1", platforms=platforms, layer_size=64 * 1024)
    config = tmp_path / "images.json"
    config.write_text(
        json.dumps(
            [
                {
                    "source": f"{src.host}/{name}:1",
                    "target": name,
                    "tags": TAGS,
                    "architectures": ["amd64", "arm64"],
                }
                for name in IMAGES
            ]
        )
    )
    env = {**os.environ}
    first = subprocess.run(sync_cmd(config, src, dst), env=env, capture_output=True, timeout=120, check=False)
    assert first.returncode == 0
    # Calibrate: how long does a sync of moved images take here (process start included)?
    for name in IMAGES:
        push_image(src.url, name, "1", platforms=platforms, layer_size=LAYER)
    started = time.monotonic()
    calibrate = subprocess.run(
        sync_cmd(config, src, dst), env=env, capture_output=True, timeout=120, check=False
    )
    assert calibrate.returncode == 0
    full = time.monotonic() - started
    rng = random.Random(20261130)
    outcomes = []
    for trial in range(TRIALS):
        # every trial moves every source tag, so every trial interrupts real work
        new_sources = {
            name: push_image(src.url, name, "1", platforms=platforms, layer_size=LAYER).index_digest
            for name in IMAGES
        }
        before = tag_state(dst)
        proc = subprocess.Popen(
            sync_cmd(config, src, dst), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        delay = rng.uniform(0.2 * full, 1.0 * full)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        after = tag_state(dst)
        moved = 0
        for key, digest in after.items():
            assert digest is not None, f"trial {trial}: tag {key} vanished"
            if digest == before[key]:
                continue
            moved += 1
            name = key[0]
            assert complete(dst, f"m/{name}", digest), f"trial {trial}: {key} -> incomplete {digest}"
            assert source_of(dst, name, digest) == new_sources[name]
        outcomes.append((round(delay, 2), moved))
    # the kills interrupted real work: some trials ended with tags not yet moved
    assert any(moved < len(before) for _, moved in outcomes), (full, outcomes)

    final = subprocess.run(
        sync_cmd(config, src, dst), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert final.returncode == 0, final.stderr
    for (name, _tag), digest in tag_state(dst).items():
        assert digest is not None and complete(dst, f"m/{name}", digest)
        assert source_of(dst, name, digest) == new_sources[name]
    print(f"kill -9 trials (full sync {full:.2f}s; delay s, tags moved of 10):", outcomes)
