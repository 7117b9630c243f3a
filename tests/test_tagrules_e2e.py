"""Tag rules against a real registry: 2,500 tags listed page by page, rules chosen, reruns HEAD-only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.images import push_image
from devtools.registry import LocalRegistry, RegistryFactory
from devtools.tagpager import TagPagingProxy
from docker_transfer.cli import main

VERSIONS = [f"1.{minor}.{patch}" for minor in range(25) for patch in range(100)]  # 2,500 tags


def tag_many(reg: LocalRegistry, repo: str, digest: str, tags: list[str]) -> None:
    """Point ``tags`` at ``digest`` the way Distribution stores a tag (one link file per tag).

    Pushing 2,500 manifests over HTTP would take most of this test's time; the
    registry serves tags from exactly these files, so what it lists is real.
    """
    root = reg.storage_root / "docker/registry/v2/repositories" / repo / "_manifests/tags"
    hexpart = digest.removeprefix("sha256:")
    for tag in tags:
        for sub in ("current", f"index/sha256/{hexpart}"):
            path = root / tag / sub / "link"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(digest)


def sync(
    capsys: pytest.CaptureFixture[str], config: Path, src: str, dst: LocalRegistry, *extra: str
) -> tuple[int, str, str]:
    code = main(
        ["sync", "--config", str(config), "--target-registry", dst.host, "--target-namespace", "m",
         "--insecure-registry", src, "--insecure-registry", dst.host, *extra]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def dest_tags(reg: LocalRegistry, repo: str) -> list[str]:
    answer = httpx.get(f"{reg.url}/v2/{repo}/tags/list")
    return sorted(answer.json().get("tags") or []) if answer.status_code == 200 else []


@pytest.fixture
def hub(registry_factory: RegistryFactory) -> Iterator[TagPagingProxy]:
    """A source with 2,502 tags behind a proxy that pages tag lists as Docker Hub does."""
    src = registry_factory()
    image = push_image(src.url, "lib/app", "latest", platforms=["linux/amd64", "linux/arm64/v8"])
    tag_many(src, "lib/app", image.index_digest, [*VERSIONS, "1.24.100-rc1"])
    # Distribution 2.8 answers all tags at once, whatever n says; the registries users mirror from page.
    assert len(httpx.get(f"{src.url}/v2/lib/app/tags/list", params={"n": 1000}).json()["tags"]) == 2502
    proxy = TagPagingProxy(src)
    proxy.upstream_registry = src  # type: ignore[attr-defined]
    proxy.start()
    yield proxy
    proxy.stop()


def test_rules_over_a_paginated_tag_list_then_a_head_only_rerun(
    hub: TagPagingProxy, registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src: LocalRegistry = hub.upstream_registry  # type: ignore[attr-defined]
    dst = registry_factory()
    config = tmp_path / "images.json"
    entry = {
        "source": f"{hub.host}/lib/app",
        "target": "app",
        "tags": ["latest", {"latest": 3}, {"regex": r"1\.3\.[0-9]"}, {"semver": ">=1.20.98, <1.21"}],
        "exclude": ["1.24.98", {"regex": r"1\.3\.[5-9]"}],
        "architectures": ["amd64"],
    }
    nothing = {"source": f"{hub.host}/lib/app", "target": "none", "tags": [{"regex": "2\\..*"}],
               "architectures": ["amd64"]}  # fmt: skip
    config.write_text(json.dumps([entry, nothing]))
    chosen = ["1.24.99", "1.24.97", "1.24.96", *(f"1.3.{p}" for p in range(5)), "1.20.98", "1.20.99"]
    expected = sorted(["latest", *chosen])

    code, out, err = sync(capsys, config, hub.host, dst, "--dry-run")
    assert code == 0, out + err
    assert '{"latest": 3}' in out and "RULE" in out and "planned" in out
    assert dest_tags(dst, "m/app") == []
    assert "Warnings:" in out and "chose none of its 2502 tag(s)" in out

    mark = src.mark()
    code, out, err = sync(capsys, config, hub.host, dst, "--report", str(tmp_path / "r.json"))
    assert code == 0, out + err
    assert dest_tags(dst, "m/app") == expected
    report = json.loads((tmp_path / "r.json").read_text())
    rules = {r["tag"]: r.get("rule") for r in report["results"] if r["target"].endswith("/m/app")}
    assert rules["latest"] is None and rules["1.24.99"] == '{"latest": 3}'
    assert rules["1.3.0"] == '{"regex": "1\\\\.3\\\\.[0-9]"}'
    assert rules["1.20.98"] == '{"semver": ">=1.20.98, <1.21"}'
    assert report["warnings"] and not [r for r in report["results"] if r["target"].endswith("/m/none")]
    # one listing per source per run (both entries share it): n=1000 asked, the rest followed via Link
    assert hub.pages_served[-3:] == [
        "/v2/lib/app/tags/list?n=1000",
        "/v2/lib/app/tags/list?last=1.17.99&n=1000",
        "/v2/lib/app/tags/list?last=1.4.98&n=1000",
    ]
    assert len(hub.pages_served) == 2 * 3  # the dry run's listing and this run's

    mark, dmark = src.mark(), dst.mark()
    code, out, err = sync(capsys, config, hub.host, dst)
    assert code == 0, out + err
    assert out.count("unchanged") >= len(expected)
    assert src.count("GET", r"/manifests/", mark) == 0 and src.count("GET", r"/blobs/", mark) == 0
    assert src.count("HEAD", r"/manifests/", mark) >= 1
    assert not [r for r in dst.requests(dmark) if r.method in ("PUT", "POST", "PATCH", "DELETE")]


def test_a_source_whose_tags_cannot_be_listed_fails_that_entry_only(
    registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = registry_factory(), registry_factory()
    push_image(src.url, "lib/app", "1.0.0", platforms=["linux/amd64"])
    config = tmp_path / "images.json"
    config.write_text(
        json.dumps([
            {"source": f"{src.host}/lib/missing", "tags": [{"latest": 2}], "architectures": ["amd64"]},
            {"source": f"{src.host}/lib/app", "tags": [{"latest": 2}], "architectures": ["amd64"]},
        ])
    )  # fmt: skip
    code, out, _ = sync(capsys, config, src.host, dst)
    assert code == 1
    assert "listing the source's tags failed" in out and "not found" in out
    assert dest_tags(dst, "m/app") == ["1.0.0"]  # derived target "app": the healthy entry copied
