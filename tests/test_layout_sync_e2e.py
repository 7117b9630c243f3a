"""`sync --target oci:DIR` and `sync --source-layout DIR` against real registries, skopeo as the reader."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tools import require_tool

from devtools.images import push_image, push_single
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main
from docker_transfer.manifest import ACCEPT_MANIFESTS, SOURCE_DIGEST_ANNOTATION

REF_NAME = "org.opencontainers.image.ref.name"
ACCEPT = ", ".join(ACCEPT_MANIFESTS)


def skopeo(*args: str) -> str:
    require_tool("skopeo")
    done = subprocess.run(
        ["skopeo", "--insecure-policy", *args], check=True, capture_output=True, text=True, timeout=120
    )
    return done.stdout


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def head(reg: LocalRegistry, repo: str, ref: str) -> str | None:
    resp = httpx.head(f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None


def names(layout: Path) -> dict[str, str]:
    doc = json.loads((layout / "index.json").read_text())
    return {m["annotations"][REF_NAME]: m["digest"] for m in doc["manifests"]}


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and mtime (ns): a rerun that writes nothing keeps it equal."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def referenced(layout: Path) -> set[str]:
    """Hex digests reachable from index.json: manifests, children, configs and layers."""
    found: set[str] = set()
    todo = [m["digest"] for m in json.loads((layout / "index.json").read_text())["manifests"]]
    while todo:
        digest = todo.pop()
        found.add(digest[7:])
        doc = json.loads((layout / "blobs" / "sha256" / digest[7:]).read_bytes())
        todo += [m["digest"] for m in doc.get("manifests", [])]
        for blob in [doc.get("config"), *doc.get("layers", [])]:
            if blob:
                found.add(blob["digest"][7:])
    return found


@pytest.fixture
def seeded(registry_factory: RegistryFactory, tmp_path: Path) -> tuple[LocalRegistry, Path, dict[str, Any]]:
    hub = registry_factory()
    shared = [os.urandom(4096)]
    nginx = push_image(
        hub.url,
        "library/nginx",
        "latest",
        platforms=["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
        shared_layers=shared,
        attestations=True,
    )
    tool = push_single(hub.url, "lib/tool", "v1", shared_layers=shared)
    config = tmp_path / "images.json"
    config.write_text(
        json.dumps(
            [
                {
                    "source": f"{hub.host}/library/nginx:latest",
                    "target": "nginx",
                    "tags": ["latest", "stable"],
                    "architectures": ["amd64", "arm64"],
                },
                {
                    "source": f"{hub.host}/lib/tool:v1",
                    "target": "tools/tool",
                    "tags": ["v1"],
                    "architectures": ["amd64"],
                },
            ]
        )
    )
    return hub, config, {"nginx": nginx, "tool": tool, "shared": shared}


def test_sync_into_layout_incremental_then_back_into_a_registry(
    seeded: tuple[LocalRegistry, Path, dict[str, Any]],
    registry_factory: RegistryFactory,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    hub, config, images = seeded
    layout = tmp_path / "carry"
    flags = ["--config", str(config), "--insecure-registry", hub.host, "-q"]
    code, out, err = run(capsys, "sync", "--target", f"oci:{layout}", *flags)
    assert code == 0, out + err
    nginx, tool = images["nginx"], images["tool"]
    named = names(layout)
    assert set(named) == {"nginx:latest", "nginx:stable", "tools/tool:v1"}
    assert named["tools/tool:v1"] == tool.digest
    assert named["nginx:latest"] == named["nginx:stable"]
    # Blobs are stored once (the shared layer too) and every stored blob is referenced.
    stored = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    assert stored == referenced(layout)
    assert images["shared"][0] and any(d[7:] in stored for d in tool.layer_digests)
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{layout}:nginx:stable"))
    assert raw["annotations"][SOURCE_DIGEST_ANNOTATION] == nginx.index_digest
    assert [m["platform"]["architecture"] for m in raw["manifests"] if m["platform"]["os"] != "unknown"] == [
        "amd64",
        "arm64",
    ]
    assert json.loads(skopeo("inspect", f"oci:{layout}:tools/tool:v1"))["Digest"] == tool.digest

    # Rerun: one HEAD per source, nothing written in the layout (not even index.json).
    before = tree(layout)
    mark = hub.mark()
    code, out, err = run(capsys, "sync", "--target", f"oci:{layout}", *flags)
    assert code == 0, out + err
    assert out.count("unchanged") >= 3
    assert tree(layout) == before
    assert {(e.method) for e in hub.requests(mark)} == {"HEAD"}

    # Across the gap: the layout into an empty registry with the same images.json, then a rerun.
    acr = registry_factory()
    back = ["--config", str(config), "--source-layout", str(layout), "--target-registry", acr.host]
    back += ["--target-namespace", "mirror", "--insecure-registry", acr.host, "-q"]
    code, out, err = run(capsys, "sync", *back)
    assert code == 0, out + err
    assert head(acr, "mirror/nginx", "stable") == named["nginx:stable"]
    assert head(acr, "mirror/tools/tool", "v1") == tool.digest
    for platform in ("linux/amd64", "linux/arm64/v8"):
        child = nginx.children[platform].digest
        assert head(acr, "mirror/nginx", child) == child
    mark = acr.mark()
    code, out, err = run(capsys, "sync", *back)
    assert code == 0, out + err
    assert not [e for e in acr.requests(mark) if e.method not in ("HEAD", "GET")]
    # One image of the layout by hand: the tag comes from its target:tag name.
    code, out, err = run(
        capsys, "copy", f"oci:{layout}:nginx:stable", f"{acr.host}/one/nginx", "--insecure-registry", acr.host
    )
    assert code == 0, out + err
    assert head(acr, "one/nginx", "stable") == named["nginx:stable"]


def test_interrupted_write_leaves_previous_index(
    seeded: tuple[LocalRegistry, Path, dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hub, config, images = seeded
    layout = tmp_path / "carry"
    flags = ["--config", str(config), "--insecure-registry", hub.host, "-q"]
    assert run(capsys, "sync", "--target", f"oci:{layout}", *flags)[0] == 0
    index_before = (layout / "index.json").read_bytes()
    # The source changes (a new push of nginx) but one of its blobs is gone: that image fails.
    newer = push_image(hub.url, "library/nginx", "latest", platforms=["linux/amd64", "linux/arm64/v8"])
    victim = newer.platform_blobs["linux/arm64/v8"][-1]
    hub.blob_data_path(victim).unlink()
    code, out, _err = run(capsys, "sync", "--target", f"oci:{layout}", *flags)
    assert code == 1
    assert "failed" in out
    # index.json still names the old, complete image; tools/tool is unchanged.
    assert (layout / "index.json").read_bytes() == index_before
    assert not list(layout.rglob(".tmp-*"))
    skopeo("inspect", "--raw", f"oci:{layout}:nginx:latest")
    del images


def test_sync_target_must_be_an_oci_dir(
    seeded: tuple[LocalRegistry, Path, dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, config, _ = seeded
    code, _, err = run(capsys, "sync", "--config", str(config), "--target", f"oci-archive:{tmp_path}/x.tar")
    assert code == 2
    assert "expected oci:DIR" in err


def test_source_layout_without_index_is_a_clear_error(
    seeded: tuple[LocalRegistry, Path, dict[str, Any]],
    registry_factory: RegistryFactory,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _, config, _ = seeded
    acr = registry_factory()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _out, err = run(
        capsys,
        "sync",
        "--config",
        str(config),
        "--source-layout",
        str(empty),
        "--target-registry",
        acr.host,
        "--target-namespace",
        "mirror",
        "--insecure-registry",
        acr.host,
    )
    assert code == 1
    assert "no index.json" in err
    assert not [e for e in acr.requests() if e.method in ("PUT", "POST", "PATCH")]


def test_kill_9_mid_write_leaves_the_previous_index_valid(
    registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hub = registry_factory()
    push_image(hub.url, "lib/small", "1", platforms=["linux/amd64"])
    entries = [
        {"source": f"{hub.host}/lib/small:1", "target": "small", "tags": ["1"], "architectures": ["amd64"]}
    ]
    config = tmp_path / "images.json"
    config.write_text(json.dumps(entries))
    layout = tmp_path / "carry"
    flags = ["--config", str(config), "--insecure-registry", hub.host, "-q"]
    assert run(capsys, "sync", "--target", f"oci:{layout}", *flags)[0] == 0
    index_before = (layout / "index.json").read_bytes()
    # A second, large image: killed while its blobs stream in.
    push_image(
        hub.url, "lib/big", "1", platforms=["linux/amd64"], layers_per_platform=8, layer_size=4 * 1024 * 1024
    )
    entries.append(
        {"source": f"{hub.host}/lib/big:1", "target": "big", "tags": ["1"], "architectures": ["amd64"]}
    )
    config.write_text(json.dumps(entries))
    cmd = [sys.executable, "-m", "docker_transfer", "sync", "--target", f"oci:{layout}", *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blobs = layout / "blobs" / "sha256"
    start = len(list(blobs.iterdir()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(blobs.iterdir())) <= start + 1 and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert (layout / "index.json").read_bytes() == index_before
    assert json.loads(skopeo("inspect", f"oci:{layout}:small:1"))["Architecture"] == "amd64"
    # The next run completes the layout.
    assert run(capsys, "sync", "--target", f"oci:{layout}", *flags)[0] == 0
    assert set(names(layout)) == {"small:1", "big:1"}


def test_dry_run_into_a_new_layout_creates_nothing(
    seeded: tuple[LocalRegistry, Path, dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hub, config, _ = seeded
    layout = tmp_path / "carry"
    code, out, err = run(
        capsys,
        "sync",
        "--target",
        f"oci:{layout}",
        "--config",
        str(config),
        "--dry-run",
        "--insecure-registry",
        hub.host,
        "-q",
    )
    assert code == 0, out + err
    assert out.count("planned") >= 3
    assert not layout.exists()
