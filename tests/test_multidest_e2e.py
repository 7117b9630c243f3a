"""`sync --target A --target B ...`: several destinations from one read of the source (issue 13, part 3)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.faultproxy import Fault, FaultProxy
from devtools.images import PushedImage, push_image
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main
from docker_transfer.manifest import ACCEPT_MANIFESTS

ACCEPT = ", ".join(ACCEPT_MANIFESTS)
BLOB_GET = r"/v2/.+/blobs/sha256:"
MANIFEST_GET = r"/v2/.+/manifests/"
UPLOADS = ("POST", "PUT", "PATCH")


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_RETRY_WAIT_INITIAL", "0.01")
    monkeypatch.setenv("DT_RETRY_WAIT_MAX", "0.05")


@pytest.fixture
def hub(registry_factory: RegistryFactory) -> LocalRegistry:
    return registry_factory()


@pytest.fixture
def pushed(hub: LocalRegistry) -> tuple[PushedImage, PushedImage]:
    nginx = push_image(
        hub.url, "library/nginx", "latest", platforms=["linux/amd64", "linux/arm64/v8"], layer_size=300_000
    )
    redis = push_image(hub.url, "library/redis", "7", platforms=["linux/amd64"], layer_size=200_000)
    return nginx, redis


def config(tmp_path: Path, hub: LocalRegistry) -> Path:
    path = tmp_path / "images.json"
    entries = [
        {
            "source": f"{hub.host}/library/nginx:latest",
            "target": "nginx",
            "tags": ["latest", "stable"],
            "architectures": ["amd64", "arm64"],
        },
        {
            "source": f"{hub.host}/library/redis:7",
            "target": "redis",
            "tags": ["7"],
            "architectures": ["amd64"],
        },
    ]
    path.write_text(json.dumps(entries))
    return path


def sync(
    capsys: pytest.CaptureFixture[str], cfg: Path, hosts: list[str], *extra: str, targets: list[str]
) -> tuple[int, str, str]:
    args = ["sync", "--config", str(cfg), "--quiet"]
    for target in targets:
        args += ["--target", target]
    for host in hosts:
        args += ["--insecure-registry", host]
    code = main([*args, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def head(url: str, repo: str, ref: str) -> str | None:
    resp = httpx.head(f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None


def blob_gets(hub: LocalRegistry, since: int) -> Counter[str]:
    """Source blob GETs per digest since ``since``."""
    return Counter(
        e.path.rsplit("/", 1)[1] for e in hub.requests(since) if e.method == "GET" and "/blobs/" in e.path
    )


def all_blobs(*images: PushedImage) -> set[str]:
    return {d for image in images for blobs in image.platform_blobs.values() for d in blobs}


def test_two_destinations_one_read_then_head_only(
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    pushed: tuple[PushedImage, PushedImage],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    a, b, single = registry_factory(), registry_factory(), registry_factory()
    cfg = config(tmp_path, hub)
    hosts = [hub.host, a.host, b.host, single.host]
    report_path = tmp_path / "report.json"
    mark = hub.mark()
    code, out, err = sync(
        capsys, cfg, hosts, "--report", str(report_path), targets=[f"{a.host}/mirror", f"{b.host}/copy"]
    )
    assert code == 0, err + out
    assert f"== {a.host}/mirror ==" in out and f"== {b.host}/copy ==" in out  # a table section each

    gets = blob_gets(hub, mark)
    assert set(gets) == all_blobs(*pushed)
    assert set(gets.values()) == {1}, gets  # every blob read from the source once, for both destinations
    # The same image lands in both, byte for byte, as a single-destination run writes it.
    code, out, err = sync(capsys, cfg, hosts, targets=[f"{single.host}/solo"])
    assert code == 0, err + out
    for repo, tag in (("nginx", "latest"), ("nginx", "stable"), ("redis", "7")):
        expected = head(single.url, f"solo/{repo}", tag)
        assert expected is not None
        assert head(a.url, f"mirror/{repo}", tag) == expected
        assert head(b.url, f"copy/{repo}", tag) == expected

    report = json.loads(report_path.read_text())
    assert report["version"] == 3
    by_place = Counter(r["destination"] for r in report["results"])
    assert by_place == {f"{a.host}/mirror": 3, f"{b.host}/copy": 3}
    assert {r["status"] for r in report["results"]} == {"copied"}

    # A rerun: HEADs only at the source, no upload anywhere.
    marks = {reg: reg.mark() for reg in (hub, a, b)}
    code, out, err = sync(
        capsys, cfg, hosts, "--report", str(report_path), targets=[f"{a.host}/mirror", f"{b.host}/copy"]
    )
    assert code == 0, err + out
    assert hub.count("GET", MANIFEST_GET, marks[hub]) == 0
    assert hub.count("GET", BLOB_GET, marks[hub]) == 0
    for reg in (a, b):
        assert sum(reg.count(m, r"/blobs/uploads/", marks[reg]) for m in UPLOADS) == 0
    rerun = json.loads(report_path.read_text())
    assert {r["status"] for r in rerun["results"]} == {"unchanged"}


def test_one_destination_up_to_date_the_other_copied(
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    pushed: tuple[PushedImage, PushedImage],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Each destination has its own incremental check: one already holding the images stays untouched."""
    a, b = registry_factory(), registry_factory()
    cfg = config(tmp_path, hub)
    hosts = [hub.host, a.host, b.host]
    assert sync(capsys, cfg, hosts, targets=[f"{a.host}/mirror"])[0] == 0
    mark_a, mark_hub = a.mark(), hub.mark()
    report_path = tmp_path / "report.json"
    code, out, err = sync(
        capsys, cfg, hosts, "--report", str(report_path), targets=[f"{a.host}/mirror", f"{b.host}/mirror"]
    )
    assert code == 0, err + out
    statuses = {(r["destination"], r["status"]) for r in json.loads(report_path.read_text())["results"]}
    assert statuses == {(f"{a.host}/mirror", "unchanged"), (f"{b.host}/mirror", "copied")}
    assert sum(a.count(m, r"/blobs/uploads/|/manifests/", mark_a) for m in UPLOADS) == 0
    assert set(blob_gets(hub, mark_hub).values()) == {1}


@pytest.fixture
def broken(registry_factory: RegistryFactory) -> Iterator[tuple[LocalRegistry, FaultProxy]]:
    behind = registry_factory()
    with FaultProxy(behind) as proxy:
        yield behind, proxy


def test_three_destinations_one_failing_others_finish(
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    pushed: tuple[PushedImage, PushedImage],
    broken: tuple[LocalRegistry, FaultProxy],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A destination answering 500 to every blob upload is dropped; the other two get every tag."""
    monkeypatch.setenv("DT_RETRY_ATTEMPTS", "1")  # no retry: each source blob is read exactly once
    a, b = registry_factory(), registry_factory()
    behind, proxy = broken
    proxy.add(Fault(method="PUT", path=r"/blobs/uploads/", status=500, times=-1))
    cfg = config(tmp_path, hub)
    hosts = [hub.host, a.host, b.host, proxy.host]
    report_path = tmp_path / "report.json"
    mark = hub.mark()
    targets = [f"{a.host}/mirror", f"{proxy.host}/mirror", f"{b.host}/mirror"]
    code, out, err = sync(capsys, cfg, hosts, "--report", str(report_path), targets=targets)
    assert code == 1, err + out

    assert set(blob_gets(hub, mark).values()) == {1}
    for reg in (a, b):
        for repo, tag in (("nginx", "latest"), ("nginx", "stable"), ("redis", "7")):
            assert head(reg.url, f"mirror/{repo}", tag) is not None
    for repo, tag in (("nginx", "latest"), ("redis", "7")):
        assert head(behind.url, f"mirror/{repo}", tag) is None  # no tag without its blobs
    rows = json.loads(report_path.read_text())["results"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["destination"] for r in failed} == {f"{proxy.host}/mirror"}
    assert len(failed) == 3
    assert all("500" in r["error"] for r in failed), failed
    assert {r["status"] for r in rows if r["destination"] != f"{proxy.host}/mirror"} == {"copied"}
    assert "Failures:" in out and proxy.host in out.split("Failures:")[1]


def test_a_destination_cut_mid_upload_is_dropped_and_the_others_finish(
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    pushed: tuple[PushedImage, PushedImage],
    broken: tuple[LocalRegistry, FaultProxy],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The middle destination's connection is reset 50 kB into every blob upload (no answer at all)."""
    monkeypatch.setenv("DT_RETRY_ATTEMPTS", "1")  # no retry: each source blob is read exactly once
    a, b = registry_factory(), registry_factory()
    behind, proxy = broken
    proxy.add(Fault(method="PUT", path=r"/blobs/uploads/", cut_upload_after=50_000, times=-1))
    cfg = config(tmp_path, hub)
    report_path = tmp_path / "report.json"
    mark = hub.mark()
    targets = [f"{a.host}/mirror", f"{proxy.host}/mirror", f"{b.host}/mirror"]
    hosts = [hub.host, a.host, b.host, proxy.host]
    code, out, err = sync(capsys, cfg, hosts, "--report", str(report_path), targets=targets)
    assert code == 1, err + out

    cuts = [r for r in proxy.records if r.fault == "upload cut after 50000"]
    assert cuts, [r.fault for r in proxy.records]  # some layer really was cut mid-body
    assert set(blob_gets(hub, mark).values()) == {1}
    for reg in (a, b):
        for repo, tag in (("nginx", "latest"), ("nginx", "stable"), ("redis", "7")):
            assert head(reg.url, f"mirror/{repo}", tag) is not None
    for repo, tag in (("nginx", "latest"), ("redis", "7")):
        assert head(behind.url, f"mirror/{repo}", tag) is None
    rows = json.loads(report_path.read_text())["results"]
    failed = {r["destination"] for r in rows if r["status"] == "failed"}
    assert failed == {f"{proxy.host}/mirror"}
    errors = {r["error"] for r in rows if r["status"] == "failed"}
    assert all(proxy.host in e and ("reset" in e or "closed" in e) for e in errors), errors
    assert "internal error" not in out + err


def test_a_transient_failure_retries_that_destination_alone(
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    pushed: tuple[PushedImage, PushedImage],
    broken: tuple[LocalRegistry, FaultProxy],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """One 500 on one destination's upload: that destination re-reads that blob alone and succeeds."""
    a = registry_factory()
    behind, proxy = broken
    proxy.add(Fault(method="PUT", path=r"/blobs/uploads/", status=500, times=1))
    cfg = config(tmp_path, hub)
    mark = hub.mark()
    targets = [f"{a.host}/mirror", f"{proxy.host}/mirror"]
    code, out, err = sync(capsys, cfg, [hub.host, a.host, proxy.host], targets=targets)
    assert code == 0, err + out
    gets = blob_gets(hub, mark)
    assert sorted(gets.values()) == [1] * (len(gets) - 1) + [2], gets  # the one retried blob, read twice
    assert head(behind.url, "mirror/nginx", "latest") == head(a.url, "mirror/nginx", "latest") is not None


def test_dry_run_plans_each_destination(
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    pushed: tuple[PushedImage, PushedImage],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    a, b = registry_factory(), registry_factory()
    cfg = config(tmp_path, hub)
    report_path = tmp_path / "report.json"
    targets = [f"{a.host}/mirror", f"{b.host}/mirror"]
    hosts = [hub.host, a.host, b.host]
    assert sync(capsys, cfg, hosts, targets=[targets[0]])[0] == 0
    marks = {reg: reg.mark() for reg in (a, b)}
    code, out, err = sync(capsys, cfg, hosts, "--dry-run", "--report", str(report_path), targets=targets)
    assert code == 0, err + out
    rows: list[dict[str, Any]] = json.loads(report_path.read_text())["results"]
    assert {(r["destination"], r["status"]) for r in rows} == {
        (targets[0], "unchanged"),
        (targets[1], "planned"),
    }
    assert sum(r["bytes_copied"] for r in rows if r["destination"] == targets[1]) > 0
    for reg in (a, b):
        assert sum(reg.count(m, r".", marks[reg]) for m in UPLOADS) == 0


def test_tag_rules_list_the_source_once_for_every_destination(
    registry_factory: RegistryFactory,
    hub: LocalRegistry,
    pushed: tuple[PushedImage, PushedImage],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    a, b = registry_factory(), registry_factory()
    cfg = tmp_path / "images.json"
    rule = {"source": f"{hub.host}/library/redis", "target": "redis", "tags": [{"latest": 1}]}
    cfg.write_text(json.dumps([rule | {"architectures": ["amd64"]}]))
    report_path = tmp_path / "report.json"
    mark = hub.mark()
    targets = [f"{a.host}/mirror", f"{b.host}/mirror"]
    code, out, err = sync(
        capsys, cfg, [hub.host, a.host, b.host], "--report", str(report_path), targets=targets
    )
    assert code == 0, err + out
    assert hub.count("GET", r"/tags/list", mark) == 1
    rows = json.loads(report_path.read_text())["results"]
    assert {(r["destination"], r["tag"], r["status"]) for r in rows} == {(t, "7", "copied") for t in targets}
    assert head(a.url, "mirror/redis", "7") == head(b.url, "mirror/redis", "7") is not None
