"""``allow_partial`` against real registries (issue 10.2): it skips only platforms the source does not list.

A platform the source lists but that fails to copy fails the entry, so a passing
fault can never leave a destination short of a platform that later runs call
``unchanged``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.faultproxy import Fault, FaultProxy
from devtools.images import PushedImage, push_image, push_single
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main
from docker_transfer.manifest import ABSENT_PLATFORMS_ANNOTATION, ACCEPT_MANIFESTS

ACCEPT = ", ".join(ACCEPT_MANIFESTS)


@pytest.fixture
def source(registry_factory: RegistryFactory) -> Iterator[tuple[LocalRegistry, FaultProxy, PushedImage]]:
    hub = registry_factory()
    image = push_image(hub.url, "app", "1", platforms=["linux/amd64", "linux/arm64/v8"])
    with FaultProxy(hub) as proxy:
        yield hub, proxy, image


def sync(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, src: str, dest: LocalRegistry, entry: dict[str, Any]
) -> tuple[int, dict[str, Any], str]:
    config = tmp_path / "images.json"
    config.write_text(json.dumps([{"source": f"{src}/app:1", "target": "app", "tags": ["1"], **entry}]))
    report = tmp_path / "report.json"
    args = ["sync", "--config", str(config), "--target-registry", dest.host, "--target-namespace", "mirror"]
    code = main(
        [*args, "--insecure-registry", dest.host, "--insecure-registry", src, "--report", str(report)]
    )
    out, _ = capsys.readouterr()
    return code, json.loads(report.read_text()), out


def index_at(dest: LocalRegistry, tag: str = "1") -> dict[str, Any] | None:
    resp = httpx.get(f"{dest.url}/v2/mirror/app/manifests/{tag}", headers={"Accept": ACCEPT})
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    return doc


def arches(doc: dict[str, Any]) -> list[str]:
    return sorted(m["platform"]["architecture"] for m in doc["manifests"])


def test_a_listed_platform_that_fails_fails_the_entry_then_copies_once_the_fault_is_gone(
    source: tuple[LocalRegistry, FaultProxy, PushedImage],
    registry_factory: RegistryFactory,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _, proxy, image = source
    dest = registry_factory()
    arm_layer = image.platform_blobs["linux/arm64/v8"][1]
    proxy.add(Fault(method="GET", path=f"/blobs/{arm_layer}", status=500, times=-1))
    entry = {"architectures": ["amd64", "arm64"], "allow_partial": True}

    code, report, out = sync(capsys, tmp_path, proxy.host, dest, entry)
    assert code == 1, out
    (result,) = report["results"]
    assert result["status"] == "failed" and "500" in result["error"]
    assert result["platforms"] == ["linux/amd64", "linux/arm64/v8"]  # the one notation of every row
    assert index_at(dest) is None  # no tag written: amd64 alone was not published

    proxy.clear()
    code, report, out = sync(capsys, tmp_path, proxy.host, dest, entry)
    assert code == 0, out
    (result,) = report["results"]
    assert result["status"] == "copied" and result["skipped"] == [] and result["error"] is None
    assert result["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    doc = index_at(dest)
    assert doc is not None and arches(doc) == ["amd64", "arm64"]


def test_a_destination_short_of_a_platform_the_source_lists_is_not_unchanged(
    source: tuple[LocalRegistry, FaultProxy, PushedImage],
    registry_factory: RegistryFactory,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """An amd64-only publish of this source version (an older partial run, or a narrower entry) is redone."""
    hub, _, _ = source
    dest = registry_factory()
    code, _, out = sync(capsys, tmp_path, hub.host, dest, {"architectures": ["amd64"]})
    assert code == 0, out
    doc = index_at(dest)
    assert doc is not None and arches(doc) == ["amd64"]

    entry = {"architectures": ["amd64", "arm64"], "allow_partial": True}
    code, report, out = sync(capsys, tmp_path, hub.host, dest, entry)
    assert code == 0, out
    assert [r["status"] for r in report["results"]] == ["copied"]
    doc = index_at(dest)
    assert doc is not None and arches(doc) == ["amd64", "arm64"]


def test_a_platform_the_source_does_not_list_is_skipped_recorded_and_the_rerun_is_head_only(
    source: tuple[LocalRegistry, FaultProxy, PushedImage],
    registry_factory: RegistryFactory,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    hub, _, _ = source
    dest = registry_factory()
    entry = {"architectures": ["amd64", "s390x"], "allow_partial": True}
    code, report, out = sync(capsys, tmp_path, hub.host, dest, entry)
    assert code == 0, out
    (result,) = report["results"]
    assert result["status"] == "copied" and result["error"] is None
    assert result["skipped"] == ["linux/s390x"] and result["platforms"] == ["linux/amd64"]
    assert "Skipped platforms (not in the source; allow_partial):\n  127.0.0.1" in out
    doc = index_at(dest)
    assert doc is not None and doc["annotations"][ABSENT_PLATFORMS_ANNOTATION] == "linux/s390x"

    mark = hub.mark()
    code, report, out = sync(capsys, tmp_path, hub.host, dest, entry)
    assert code == 0, out
    (result,) = report["results"]
    assert result["status"] == "unchanged" and result["skipped"] == ["linux/s390x"]
    assert hub.count("GET", r"/manifests/", mark) == 0


def test_single_platform_image_rows_share_one_notation_and_its_partial_rerun_is_unchanged(
    registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hub, dest = registry_factory(), registry_factory()
    push_single(hub.url, "app", "1", platform="linux/arm64/v8")
    entry = {"architectures": ["arm64", "s390x"], "allow_partial": True, "arch_tags": True}
    code, report, out = sync(capsys, tmp_path, hub.host, dest, entry)
    assert code == 0, out
    assert [(r["tag"], r["status"], r["platforms"]) for r in report["results"]] == [
        ("1", "copied", ["linux/arm64/v8"]),
        ("1-arm64", "copied", ["linux/arm64/v8"]),
    ]
    assert report["results"][0]["skipped"] == ["linux/s390x"]

    # the rerun reads the image's platform from the destination's config: never "-", and the
    # unwritten 1-s390x tag is not demanded since the image is not s390x
    mark = hub.mark()
    code, report, out = sync(capsys, tmp_path, hub.host, dest, entry)
    assert code == 0, out
    assert [(r["tag"], r["status"], r["platforms"]) for r in report["results"]] == [
        ("1", "unchanged", ["linux/arm64/v8"]),
        ("1-arm64", "unchanged", ["linux/arm64/v8"]),
    ]
    assert hub.count("GET", r"/manifests/", mark) == 0
    assert "mirror/app:1        unchanged  arm64/v8" in out
