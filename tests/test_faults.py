"""A hostile network between docker-transfer and real registries: resets, stalls, 5xx, 429, corruption."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.faultproxy import Fault, FaultProxy
from devtools.images import PushedSingle, push_single
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main
from docker_transfer.manifest import ACCEPT_MANIFESTS

LAYER = 2 * 1024 * 1024


@pytest.fixture
def setup(
    registry_factory: RegistryFactory,
) -> Iterator[tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle]]:
    src, dst = registry_factory(), registry_factory()
    image = push_single(src.url, "app", "1", layers=1, layer_size=LAYER)
    with FaultProxy(src) as proxy:
        yield src, proxy, dst, image


def copy(proxy: FaultProxy, dst: LocalRegistry, *extra: str, tag: str = "1") -> tuple[int, str]:
    code = main(
        [
            "copy",
            f"{proxy.host}/app:1",
            f"{dst.host}/app:{tag}",
            "--insecure-registry",
            proxy.host,
            "--insecure-registry",
            dst.host,
            *extra,
        ]
    )
    return code, ""


def dest_digest(dst: LocalRegistry, tag: str = "1") -> str | None:
    resp = httpx.head(f"{dst.url}/v2/app/manifests/{tag}", headers={"Accept": ", ".join(ACCEPT_MANIFESTS)})
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None


def layer_path(image: PushedSingle) -> str:
    return f"/blobs/{image.layer_digests[0]}"


@pytest.mark.parametrize("fraction", [0.10, 0.60, 0.99])
def test_reset_mid_blob_resumes_with_range(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle],
    fraction: float,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, proxy, dst, image = setup
    proxy.add(Fault(method="GET", path=layer_path(image), reset_after=int(LAYER * fraction)))
    code, _ = copy(proxy, dst)
    assert code == 0, capsys.readouterr().err
    assert dest_digest(dst) == image.digest
    gets = [r for r in proxy.records if r.method == "GET" and layer_path(image) in r.path]
    assert len(gets) == 2
    # resumed where the data stopped arriving (a TCP reset may discard what was still in flight)
    rng = gets[1].header("Range") or ""
    # A closed range: some registries answer 416 to an open-ended "bytes=N-".
    start, _, last = rng.removeprefix("bytes=").partition("-")
    assert rng.startswith("bytes=") and last == str(LAYER - 1)
    assert 0 < int(start) <= int(LAYER * fraction)
    served = proxy.bytes_served(layer_path(image))
    assert served <= 1.6 * LAYER
    print(f"\nFIGURE reset at {fraction:.0%}: resumed from byte {start}, read {served / LAYER:.2f}x the blob")
    # the blob in the destination is the real one
    data = httpx.get(f"{dst.url}/v2/app/blobs/{image.layer_digests[0]}").content
    assert data == image.blobs[image.layer_digests[0]]


def test_reset_when_server_ignores_range_restarts_the_read(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, image = setup
    proxy.add(Fault(method="GET", path=layer_path(image), reset_after=LAYER // 2))
    proxy.add(Fault(method="GET", path=layer_path(image), ignore_range=True))
    code, _ = copy(proxy, dst)
    assert code == 0, capsys.readouterr().err
    assert dest_digest(dst) == image.digest
    ignored = [r for r in proxy.records if r.fault == "range ignored"]
    assert len(ignored) == 1 and ignored[0].status == 200
    assert proxy.bytes_served(layer_path(image)) == LAYER // 2 + LAYER


def test_stalled_stream_times_out_and_resumes(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, image = setup
    proxy.add(Fault(method="GET", path=layer_path(image), stall_after=LAYER // 3, stall_seconds=4))
    started = time.monotonic()
    code, _ = copy(proxy, dst, "--read-timeout", "1")
    took = time.monotonic() - started
    assert code == 0, capsys.readouterr().err
    assert dest_digest(dst) == image.digest
    assert took < 4, "the stall must be cut short by the 1 s read timeout"
    assert any(r.fault.startswith("stalled") for r in proxy.records)


def test_truncated_body_is_resumed_and_verified(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, image = setup
    proxy.add(Fault(method="GET", path=layer_path(image), truncate_after=LAYER - 10))
    code, _ = copy(proxy, dst)
    assert code == 0, capsys.readouterr().err
    assert dest_digest(dst) == image.digest


def test_flipped_byte_in_transit_is_never_committed_then_retried(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, image = setup
    proxy.add(Fault(method="GET", path=layer_path(image), flip_at=LAYER // 2))
    mark = dst.mark()
    code, _ = copy(proxy, dst)
    assert code == 0, capsys.readouterr().err
    assert dest_digest(dst) == image.digest
    puts = [e for e in dst.requests(mark) if e.method == "PUT" and "/blobs/uploads/" in e.path]
    committed = [e for e in puts if e.status == 201]
    assert len(committed) == 2  # the config and the layer, once each
    # The corrupted attempt was cut before its last chunk: the registry saw an aborted body
    # (500, unexpected EOF), never a complete one it would have refused as DIGEST_INVALID (400).
    aborted = [e for e in puts if e.status != 201]
    assert len(aborted) == 1 and aborted[0].status != 400


def test_corruption_every_time_leaves_the_tag_as_it_was(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    src, proxy, dst, image = setup
    assert copy(proxy, dst)[0] == 0
    before = dest_digest(dst)
    newer = push_single(src.url, "app", "1", layers=1, layer_size=LAYER)
    proxy.add(Fault(method="GET", path=f"/blobs/{newer.layer_digests[0]}", flip_at=100, times=-1))
    code, _ = copy(proxy, dst)
    err = capsys.readouterr().err
    assert code == 1
    assert newer.layer_digests[0][:19] + "…" in err and "mismatch" in err
    assert dest_digest(dst) == before == image.digest
    flips = [r for r in proxy.records if r.fault.startswith("flipped")]
    assert len(flips) == 5  # five attempts, then give up


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_burst_is_retried(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle],
    status: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, proxy, dst, image = setup
    proxy.add(Fault(path="/manifests/", status=status, times=2))
    proxy.add(Fault(path="/blobs/", status=status, times=2))
    code, _ = copy(proxy, dst)
    assert code == 0, capsys.readouterr().err
    assert dest_digest(dst) == image.digest
    assert sum(1 for r in proxy.records if r.fault == f"status {status}") == 4


@pytest.mark.parametrize("style", ["seconds", "http-date"])
def test_429_waits_as_told(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle],
    style: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, proxy, dst, image = setup
    retry_after = "2" if style == "seconds" else email.utils.formatdate(time.time() + 3, usegmt=True)
    proxy.add(Fault(method="GET", path="/manifests/", status=429, headers={"Retry-After": retry_after}))
    code, _ = copy(proxy, dst)
    assert code == 0, capsys.readouterr().err
    refused = next(r for r in proxy.records if r.fault == "status 429")
    retried = next(r for r in proxy.records if r.started > refused.started and "/manifests/" in r.path)
    waited = retried.started - refused.started
    assert 1.0 <= waited <= 4.5, waited  # HTTP-dates have one-second resolution
    print(f"\nFIGURE 429 Retry-After {style}: waited {waited:.2f}s")
    assert dest_digest(dst) == image.digest


def test_retry_after_is_capped(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, proxy, dst, _ = setup
    monkeypatch.setenv("DT_RETRY_AFTER_CAP", "1")
    proxy.add(Fault(method="GET", path="/manifests/", status=429, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    code, _ = copy(proxy, dst)
    assert code == 0, capsys.readouterr().err
    assert time.monotonic() - started < 10


def test_huge_manifest_and_endless_error_body_fail_fast(
    setup: tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, _ = setup
    proxy.add(
        Fault(method="GET", path="/manifests/1", body=json.dumps({"pad": "x" * (5 * 1024 * 1024)}).encode())
    )
    code, _ = copy(proxy, dst)
    err = capsys.readouterr().err
    assert code == 1 and "limit" in err
    proxy.clear()
    proxy.add(Fault(method="GET", path="/manifests/1", status=400, endless_body=True))
    started = time.monotonic()
    code, _ = copy(proxy, dst)
    err = capsys.readouterr().err
    assert code == 1 and "400" in err
    assert time.monotonic() - started < 10
    endless = next(r for r in proxy.records if r.status == 400)
    assert endless.body_bytes < 64 * 1024 * 1024  # we stopped reading long before the proxy's 30 s budget


def test_refused_one_shot_upload_switches_to_chunked(
    registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = registry_factory(), registry_factory()
    image = push_single(src.url, "app", "1", layers=1, layer_size=LAYER)
    with FaultProxy(dst) as proxy:
        proxy.add(Fault(method="PUT", path="/blobs/uploads/", status=413, body=b"request entity too large"))
        code = main(
            [
                "copy",
                f"{src.host}/app:1",
                f"{proxy.host}/app:1",
                "--insecure-registry",
                src.host,
                "--insecure-registry",
                proxy.host,
            ]
        )
        assert code == 0, capsys.readouterr().err
        patches = [r for r in proxy.records if r.method == "PATCH"]
        assert patches and all(r.header("Content-Range") for r in patches)
        commits = [
            r for r in proxy.records if r.method == "PUT" and "/blobs/uploads/" in r.path and r.status == 201
        ]
        # the refused blob was committed by an empty PUT after its PATCHes (others may have raced ahead)
        assert any(r.header("Content-Length") == "0" for r in commits)
        refused = next(r for r in proxy.records if r.status == 413)
        assert all(p.started > refused.started for p in patches)
    assert dest_digest(dst) == image.digest


def test_ratelimit_headers_reported_and_min_ratelimit_guards_the_quota(
    registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src, dst = registry_factory(), registry_factory()
    push_single(src.url, "steady", "1")
    push_single(src.url, "moving", "1")
    config = tmp_path / "images.json"
    with FaultProxy(src) as hub:
        config.write_text(
            json.dumps(
                [
                    {
                        "source": f"{hub.host}/{name}:1",
                        "target": name,
                        "tags": ["1"],
                        "architectures": ["amd64"],
                    }
                    for name in ("steady", "moving")
                ]
            )
        )
        args = [
            "sync",
            "--config",
            str(config),
            "--target-registry",
            dst.host,
            "--target-namespace",
            "m",
            "--insecure-registry",
            hub.host,
            "--insecure-registry",
            dst.host,
        ]
        quota = {
            "ratelimit-limit": "100;w=21600",
            "ratelimit-remaining": "3;w=21600",
            "docker-ratelimit-source": "203.0.113.7",
        }
        hub.add(Fault(path="/manifests/", add_headers=quota, times=-1))
        report = tmp_path / "report.json"
        assert main([*args, "--report", str(report)]) == 0, capsys.readouterr().err
        limits = json.loads(report.read_text())["ratelimit"]
        assert {"host": hub.host, "limit": 100, "remaining": 3, "window_s": 21600} in limits
        assert "3 of 100" in capsys.readouterr().out

        newer = push_single(src.url, "moving", "1")
        gets_before = sum(1 for r in hub.records if r.method == "GET" and "/manifests/" in r.path)
        code = main([*args, "--report", str(report), "--min-ratelimit", "5"])
        out, _ = capsys.readouterr()
        assert code == 1
        assert "rate limit: 3 of 100" in out
        results = {r["target"].rsplit("/", 1)[1]: r for r in json.loads(report.read_text())["results"]}
        assert results["steady"]["status"] == "unchanged"  # HEADs do not spend the quota
        assert results["moving"]["status"] == "failed" and "--min-ratelimit 5" in results["moving"]["error"]
        gets_after = sum(1 for r in hub.records if r.method == "GET" and "/manifests/" in r.path)
        assert gets_after == gets_before  # no manifest GET was spent
        assert dest_digest_of(dst, "m/moving") != newer.digest


def dest_digest_of(dst: LocalRegistry, repo: str, tag: str = "1") -> str | None:
    resp = httpx.head(f"{dst.url}/v2/{repo}/manifests/{tag}", headers={"Accept": ", ".join(ACCEPT_MANIFESTS)})
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None
