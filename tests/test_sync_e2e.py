"""`docker-transfer sync` end to end: local registries stand in for Docker Hub, ghcr.io and ACR."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.images import push_image, push_single, sha256_digest
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main
from docker_transfer.manifest import ACCEPT_MANIFESTS, SOURCE_DIGEST_ANNOTATION

ACCEPT = ", ".join(ACCEPT_MANIFESTS)
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def write_config(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(entries, indent=2))
    return path


def sync(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    dest: LocalRegistry,
    *extra: str,
    sources: tuple[LocalRegistry, ...] = (),
) -> tuple[int, str, str]:
    args = ["sync", "--config", str(config), "--target-registry", dest.host, "--target-namespace", "mirror"]
    for reg in (dest, *sources):
        args += ["--insecure-registry", reg.host]
    code = main([*args, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def head(reg: LocalRegistry, repo: str, ref: str) -> str | None:
    resp = httpx.head(f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None


def get_json(reg: LocalRegistry, repo: str, ref: str) -> dict[str, Any]:
    resp = httpx.get(f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    return doc


def platforms(doc: dict[str, Any]) -> list[str]:
    out = []
    for m in doc["manifests"]:
        p = m.get("platform", {})
        if p.get("os") == "unknown":
            continue
        out.append("/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x))
    return out


def writes(reg: LocalRegistry, since: int = 0) -> int:
    return sum(1 for e in reg.requests(since) if e.method in WRITE_METHODS)


@pytest.fixture
def hub(registry_factory: RegistryFactory) -> LocalRegistry:
    return registry_factory()


@pytest.fixture
def acr(registry_factory: RegistryFactory) -> LocalRegistry:
    return registry_factory()


def test_seed_examples_mirror_then_rerun_is_head_only(
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    acr: LocalRegistry,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    ghcr = registry_factory()
    nginx = push_image(
        hub.url,
        "library/nginx",
        "latest",
        fmt="docker",
        platforms=["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/386"],
    )
    ubuntu = push_image(hub.url, "library/ubuntu", "22.04", platforms=["linux/amd64", "linux/arm64/v8"])
    vllm = push_single(hub.url, "vllm/vllm-openai", "v0.11.0", platform="linux/amd64")
    webui = push_image(
        ghcr.url,
        "open-webui/open-webui",
        "main",
        attestations=True,
        platforms=["linux/amd64", "linux/arm64/v8", "linux/s390x"],
    )
    config = write_config(
        tmp_path / "images.json",
        [
            {
                "source": f"{hub.host}/library/nginx:latest",
                "target": "nginx",
                "tags": ["latest"],
                "architectures": ["amd64", "arm64"],
            },
            {
                "source": f"{hub.host}/library/ubuntu:22.04",
                "target": "ubuntu",
                "tags": ["22.04", "jammy", "latest"],
                "architectures": ["amd64", "arm64"],
            },
            {
                "source": f"{hub.host}/vllm/vllm-openai:v0.11.0",
                "target": "vllm-openai",
                "tags": ["v0.11.0", "latest"],
                "architectures": ["amd64"],
            },
            {
                "source": f"{ghcr.host}/open-webui/open-webui:main",
                "target": "open-webui",
                "tags": ["main", "latest"],
                "architectures": ["amd64", "arm64"],
            },
        ],
    )
    (tmp_path / "out").mkdir()
    report_path = tmp_path / "out" / "report.json"
    code, out, err = sync(capsys, config, acr, "--report", str(report_path), sources=(hub, ghcr))
    assert code == 0, err + out

    nginx_doc = get_json(acr, "mirror/nginx", "latest")
    assert platforms(nginx_doc) == ["linux/amd64", "linux/arm64/v8"]
    assert nginx_doc["annotations"][SOURCE_DIGEST_ANNOTATION] == nginx.index_digest
    for entry in nginx_doc["manifests"]:
        assert head(acr, "mirror/nginx", entry["digest"]) == entry["digest"]
    # ubuntu: the selection covers every platform, so the source bytes (and digest) are kept
    for tag in ("22.04", "jammy", "latest"):
        assert head(acr, "mirror/ubuntu", tag) == ubuntu.index_digest
    for tag in ("v0.11.0", "latest"):
        assert head(acr, "mirror/vllm-openai", tag) == vllm.digest
    webui_doc = get_json(acr, "mirror/open-webui", "main")
    assert platforms(webui_doc) == ["linux/amd64", "linux/arm64/v8"]
    assert len(webui_doc["manifests"]) == 4  # two images plus their attestations
    assert head(acr, "mirror/open-webui", "latest") == head(acr, "mirror/open-webui", "main")

    report = json.loads(report_path.read_text())
    assert report["version"] == 3
    assert report["summary"]["copied"] == 8 and report["summary"]["failed"] == 0
    assert report["summary"]["bytes_copied"] > 0
    assert {r["status"] for r in report["results"]} == {"copied"}
    assert set(report["results"][0]) >= {
        "source",
        "target",
        "tag",
        "status",
        "digest",
        "platforms",
        "bytes_copied",
        "duration_s",
        "error",
    }

    # Rerun: nothing changed, so the sources see only HEADs and the destination no writes.
    marks = {reg.host: reg.mark() for reg in (hub, ghcr, acr)}
    code, out, err = sync(capsys, config, acr, "--report", str(report_path), sources=(hub, ghcr))
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert [r["status"] for r in report["results"]] == ["unchanged"] * 8
    for src in (hub, ghcr):
        assert src.count("GET", r"/manifests/", marks[src.host]) == 0
        assert src.count("GET", r"/blobs/", marks[src.host]) == 0
        assert src.count("HEAD", r"/manifests/", marks[src.host]) >= 1
    assert acr.count("POST", r"/blobs/uploads", marks[acr.host]) == 0
    assert writes(acr, marks[acr.host]) == 0
    assert "unchanged" in out
    _ = webui


def test_moved_source_tag_moves_destination_and_uploads_only_new_blobs(
    hub: LocalRegistry, acr: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = [os.urandom(3000), os.urandom(3000)]
    push_image(hub.url, "app", "stable", shared_layers=base, layers_per_platform=1)
    config = write_config(
        tmp_path / "images.json",
        [
            {
                "source": f"{hub.host}/app:stable",
                "target": "app",
                "tags": ["stable", "latest"],
                "architectures": ["amd64", "arm64"],
            },
        ],
    )
    assert sync(capsys, config, acr, sources=(hub,))[0] == 0
    new = push_image(hub.url, "app", "stable", shared_layers=base, layers_per_platform=1)
    mark = acr.mark()
    code, _, err = sync(capsys, config, acr, sources=(hub,))
    assert code == 0, err
    assert head(acr, "mirror/app", "stable") == new.index_digest
    assert head(acr, "mirror/app", "latest") == new.index_digest
    # new: one fresh layer + one config per platform; the two shared base layers are already there
    uploads = acr.count("PUT", r"/blobs/uploads/", mark)
    assert uploads == 4, uploads


def test_shared_layers_read_from_source_once(
    hub: LocalRegistry, acr: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shared = [os.urandom(5000) for _ in range(3)]
    push_image(hub.url, "one", "1", shared_layers=shared, layers_per_platform=1)
    push_image(hub.url, "two", "1", shared_layers=shared, layers_per_platform=1)
    config = write_config(
        tmp_path / "images.json",
        [
            {
                "source": f"{hub.host}/one:1",
                "target": "one",
                "tags": ["1"],
                "architectures": ["amd64", "arm64"],
            },
            {
                "source": f"{hub.host}/two:1",
                "target": "two",
                "tags": ["1"],
                "architectures": ["amd64", "arm64"],
            },
        ],
    )
    mark, acr_mark = hub.mark(), acr.mark()
    code, _, err = sync(capsys, config, acr, sources=(hub,))
    assert code == 0, err
    blob_gets = Counter(
        e.path.rsplit("/", 1)[1] for e in hub.requests(mark) if e.method == "GET" and "/blobs/" in e.path
    )
    for layer in shared:
        assert blob_gets[sha256_digest(layer)] == 1, blob_gets
    # the second repository got the shared layers by cross-repository mount
    assert any("mount=" in (e.query or "") for e in acr.requests(acr_mark) if e.method == "POST")


def test_missing_architecture_fails_one_entry_only(
    hub: LocalRegistry, acr: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    push_image(hub.url, "good", "1")
    push_image(hub.url, "bad", "1", platforms=["linux/amd64"])
    config = write_config(
        tmp_path / "images.json",
        [
            {
                "source": f"{hub.host}/bad:1",
                "target": "bad",
                "tags": ["1"],
                "architectures": ["amd64", "arm64"],
            },
            {
                "source": f"{hub.host}/good:1",
                "target": "good",
                "tags": ["1"],
                "architectures": ["amd64", "arm64"],
            },
        ],
    )
    report_path = tmp_path / "report.json"
    code, _, _ = sync(capsys, config, acr, "--report", str(report_path), sources=(hub,))
    assert code == 1
    report = json.loads(report_path.read_text())
    failed = [r for r in report["results"] if r["status"] == "failed"]
    assert len(failed) == 1 and "linux/arm64" in failed[0]["error"]
    assert head(acr, "mirror/bad", "1") is None
    assert head(acr, "mirror/good", "1") is not None


def test_allow_partial_and_arch_tags(
    hub: LocalRegistry, acr: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    img = push_image(hub.url, "app", "1", platforms=["linux/amd64", "linux/arm/v7"])
    config = write_config(
        tmp_path / "images.json",
        [
            {
                "source": f"{hub.host}/app:1",
                "target": "app",
                "tags": ["1"],
                "architectures": ["amd64", "arm/v7", "s390x"],
                "allow_partial": True,
                "arch_tags": True,
            },
        ],
    )
    code, _, err = sync(capsys, config, acr, sources=(hub,))
    assert code == 0, err
    assert platforms(get_json(acr, "mirror/app", "1")) == ["linux/amd64", "linux/arm/v7"]
    assert head(acr, "mirror/app", "1-amd64") == img.children["linux/amd64"].digest
    assert head(acr, "mirror/app", "1-arm-v7") == img.children["linux/arm/v7"].digest
    assert head(acr, "mirror/app", "1-s390x") is None
    assert "s390x" in err
    # the rerun recognises the partial publish: HEAD-only at the source, every written tag unchanged
    mark = hub.mark()
    report_path = tmp_path / "report.json"
    code, _, err = sync(capsys, config, acr, "--report", str(report_path), sources=(hub,))
    assert code == 0, err
    results = json.loads(report_path.read_text())["results"]
    assert sorted(r["tag"] for r in results) == ["1", "1-amd64", "1-arm-v7"]
    assert {r["status"] for r in results} == {"unchanged"}
    assert hub.count("GET", r"/manifests/", mark) == 0


def test_dry_run_writes_nothing(
    hub: LocalRegistry, acr: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    push_image(hub.url, "app", "1", layer_size=10_000)
    config = write_config(
        tmp_path / "images.json",
        [
            {
                "source": f"{hub.host}/app:1",
                "target": "app",
                "tags": ["1", "latest"],
                "architectures": ["amd64"],
            },
        ],
    )
    report_path = tmp_path / "report.json"
    mark = acr.mark()
    code, out, err = sync(capsys, config, acr, "--dry-run", "--report", str(report_path), sources=(hub,))
    assert code == 0, err
    assert writes(acr, mark) == 0
    results = json.loads(report_path.read_text())["results"]
    assert [r["status"] for r in results] == ["planned", "planned"]
    assert results[0]["bytes_copied"] >= 20_000
    assert "planned" in out


def test_image_timeout_fails_that_image_only(
    hub: LocalRegistry, acr: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    push_image(hub.url, "app", "1")
    config = write_config(
        tmp_path / "images.json",
        [
            {"source": f"{hub.host}/app:1", "target": "app", "tags": ["1"], "architectures": ["amd64"]},
        ],
    )
    code, out, err = sync(capsys, config, acr, "--image-timeout", "0.001", sources=(hub,))
    assert code == 1
    assert "timed out" in out + err
    assert head(acr, "mirror/app", "1") is None


BAD_CONFIGS = {
    "trailing comma": (
        '[{"source": "nginx", "target": "nginx", "tags": ["latest"], "architectures": ["amd64"]},]',
        "trailing comma",
    ),
    "missing tags": ('[{"source": "nginx", "target": "nginx", "architectures": ["amd64"]}]', "tags"),
    "tags not a list": (
        '[{"source": "nginx", "target": "nginx", "tags": "latest", "architectures": ["amd64"]}]',
        "images[0].tags",
    ),
    "bad tag": (
        '[{"source": "nginx", "target": "nginx", "tags": ["bad tag!"], "architectures": ["amd64"]}]',
        "bad tag!",
    ),
    "x86": ('[{"source": "nginx", "target": "nginx", "tags": ["latest"], "architectures": ["x86"]}]', "x86"),
    "target with tag": (
        '[{"source": "nginx", "target": "nginx:1.0", "tags": ["latest"], "architectures": ["amd64"]}]',
        "images[0].target",
    ),
    "not an array": ('{"source": "nginx"}', "array"),
    "empty": ("", "empty"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_invalid_config_exits_2_and_contacts_nothing(
    name: str, acr: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text, expected = BAD_CONFIGS[name]
    config = tmp_path / "images.json"
    config.write_text(text)
    mark = acr.mark()
    code, _, err = sync(capsys, config, acr)
    assert code == 2
    assert expected in err, err
    assert "Traceback" not in err
    assert acr.requests(mark) == []
    code, _, err = (main(["validate", "--config", str(config)]), *capsys.readouterr())
    assert code == 2 and expected in err


def test_missing_namespace_is_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("TARGET_NAMESPACE", "ALIYUN_NAMESPACE", "TARGET_REGISTRY", "ALIYUN_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    config = write_config(
        tmp_path / "images.json",
        [
            {"source": "nginx", "target": "nginx", "tags": ["latest"], "architectures": ["amd64"]},
        ],
    )
    code = main(["sync", "--config", str(config)])
    _, err = capsys.readouterr()
    assert code == 2 and "TARGET_NAMESPACE" in err
    assert main(["validate", "--config", str(config)]) == 0


@pytest.mark.parametrize("prefix", ["TARGET", "ALIYUN"])
def test_target_credentials_from_environment(
    prefix: str,
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_config: Any,
) -> None:
    secret = f"{prefix.lower()}-Pa55-never-shown"
    acr = registry_factory(htpasswd={"pusher": secret})
    push_image(hub.url, "app", "1")
    for var in ("TARGET_USERNAME", "TARGET_PASSWORD", "ALIYUN_USERNAME", "ALIYUN_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(f"{prefix}_USERNAME", "pusher")
    monkeypatch.setenv(f"{prefix}_PASSWORD", secret)
    config = write_config(
        tmp_path / "images.json",
        [
            {"source": f"{hub.host}/app:1", "target": "app", "tags": ["1"], "architectures": ["amd64"]},
        ],
    )
    report_path = tmp_path / "report.json"
    code, out, err = sync(capsys, config, acr, "-vv", "--report", str(report_path), sources=(hub,))
    assert code == 0, err
    assert secret not in out + err + report_path.read_text()
    monkeypatch.setenv(f"{prefix}_PASSWORD", secret + "-wrong")
    code, out, err = sync(capsys, config, acr, "--report", str(report_path), sources=(hub,))
    assert code == 1
    assert f"{acr.host} rejected the credentials" in out + err
    assert secret not in out + err + report_path.read_text()
