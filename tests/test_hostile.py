"""Hostile and odd registries, end to end: each answer must end in a clear error or a success.

By our own contract nothing a registry sends may end in ``internal error:``, hang,
or print a traceback. Each test puts a real Distribution registry behind the
fault proxy (devtools/faultproxy.py), or a real token server that answers oddly,
and runs the command a user would run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devtools.faultproxy import Fault, FaultProxy
from devtools.images import (
    PushedSingle,
    RegistryPusher,
    canonical_json,
    descriptor,
    parse_platform,
    push_single,
)
from devtools.registry import LocalRegistry, RegistryFactory
from devtools.tokenserver import TokenServer
from docker_transfer.cli import main
from docker_transfer.engine.copy import MANIFEST_RECHECKS
from docker_transfer.manifest import ACCEPT_MANIFESTS, OCI_INDEX

LAYER = 1024 * 1024
Setup = tuple[LocalRegistry, FaultProxy, LocalRegistry, PushedSingle]


@pytest.fixture
def setup(registry_factory: RegistryFactory) -> Iterator[Setup]:
    src, dst = registry_factory(), registry_factory()
    image = push_single(src.url, "app", "1", layers=1, layer_size=LAYER)
    with FaultProxy(src) as proxy:
        yield src, proxy, dst, image


def copy(source_host: str, dst_host: str, *extra: str, repo: str = "app") -> int:
    return main(
        [
            "copy",
            f"{source_host}/{repo}:1",
            f"{dst_host}/{repo}:1",
            "--insecure-registry",
            source_host,
            "--insecure-registry",
            dst_host,
            *extra,
        ]
    )


def dest_digest(dst: LocalRegistry | FaultProxy, repo: str = "app", tag: str = "1") -> str | None:
    resp = httpx.head(f"{dst.url}/v2/{repo}/manifests/{tag}", headers={"Accept": ", ".join(ACCEPT_MANIFESTS)})
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None


def layer_path(image: PushedSingle) -> str:
    return f"/blobs/{image.layer_digests[0]}"


def assert_clean(err: str) -> None:
    """No crash, no traceback, no asyncio complaint about streams left open."""
    assert "internal error" not in err, err
    assert "Traceback" not in err, err
    assert "error during closing" not in err, err
    assert "already running" not in err, err


# --- 10.4: resume with a closed Range ---------------------------------------------------------


def test_resume_sends_a_closed_range_to_a_registry_that_refuses_open_ones(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, image = setup
    proxy.add(Fault(method="GET", path=layer_path(image), reset_after=LAYER // 2))
    proxy.add(Fault(method="GET", path=layer_path(image), refuse_open_range=True, times=-1))
    code = copy(proxy.host, dst.host)
    assert code == 0, capsys.readouterr().err
    assert dest_digest(dst) == image.digest
    gets = [r for r in proxy.records if r.method == "GET" and layer_path(image) in r.path]
    assert len(gets) == 2
    start, _, last = (gets[1].header("Range") or "").removeprefix("bytes=").partition("-")
    assert 0 < int(start) <= LAYER // 2 and last == str(LAYER - 1)
    assert gets[1].status == 206 and not gets[1].fault


# --- a blob longer than its descriptor ---------------------------------------------------------


def test_blob_longer_than_its_descriptor_fails_without_tracebacks(setup: Setup, tmp_path: Path) -> None:
    """The size check stops the stream; the source stream is closed by us, not by the GC.

    Run as a child process: asyncio's "error during closing of asynchronous
    generator" goes to the real stderr, at whatever moment the collector runs.
    """
    _, proxy, dst, image = setup
    longer = image.blobs[image.layer_digests[0]] + os.urandom(3 * LAYER)
    proxy.add(Fault(method="GET", path=layer_path(image), body=longer, times=-1))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONASYNCIODEBUG": "0"}
    args = ["copy", f"{proxy.host}/app:1", f"{dst.host}/app:1"]
    args += ["--insecure-registry", proxy.host, "--insecure-registry", dst.host]
    proc = subprocess.run(
        [sys.executable, "-m", "docker_transfer", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "size mismatch" in proc.stderr
    assert_clean(proc.stderr)
    assert dest_digest(dst) is None


# --- server-supplied URLs that do not parse ------------------------------------------------------

BAD_URLS = ["http://127.0.0.1:99999/blob", "http://[::1", "http://127.0.0.1:-1/", "http://a b/x"]


@pytest.mark.parametrize("location", BAD_URLS)
def test_blob_redirect_to_an_invalid_url_is_refused_once(
    setup: Setup, location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, image = setup
    proxy.add(Fault(method="GET", path=layer_path(image), redirect_to=location, times=-1))
    code = copy(proxy.host, dst.host)
    err = capsys.readouterr().err
    assert code == 1
    assert "refusing to follow" in err
    assert_clean(err)
    # Not a transient failure: asked once, not retried for 16 s as "connection closed".
    assert sum(1 for r in proxy.records if r.fault == "redirect") == 1


@pytest.mark.parametrize("realm", BAD_URLS)
def test_token_realm_that_is_not_a_valid_url_is_refused(
    setup: Setup, realm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, _ = setup
    challenge = f'Bearer realm="{realm}",service="registry"'
    proxy.add(Fault(path="^/v2/", status=401, headers={"WWW-Authenticate": challenge}, times=-1))
    code = copy(proxy.host, dst.host)
    err = capsys.readouterr().err
    assert code == 1
    assert "refusing to follow" in err
    assert_clean(err)
    assert sum(1 for r in proxy.records if r.status == 401) == 1


# --- tokens ------------------------------------------------------------------------------------


def test_token_with_non_ascii_characters_is_a_clear_error(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, _ = setup
    # The proxy is its own token service: the realm is on the registry's host, so it is allowed.
    challenge = f'Bearer realm="{proxy.url}/token",service="registry"'
    token = json.dumps({"token": "t\u00f6ken-\u2603", "expires_in": 300}).encode()
    proxy.add(Fault(path="^/token", status=200, body=token, times=-1))
    proxy.add(Fault(path="^/v2/", status=401, headers={"WWW-Authenticate": challenge}, times=-1))
    code = copy(proxy.host, dst.host)
    err = capsys.readouterr().err
    assert code == 1
    assert "token with characters an HTTP header cannot carry" in err
    assert "\u00f6" not in err
    assert_clean(err)


@pytest.mark.parametrize("expires_in", [float("nan"), float("inf"), "soon", [300], True, -5])
def test_token_lifetime_that_is_not_a_finite_number_is_taken_as_60_s(
    registry_factory: RegistryFactory,
    token_server_factory: Callable[..., TokenServer],
    expires_in: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokens = token_server_factory({"carol": "pw"}, allow_anonymous=True)
    tokens.expires_in = expires_in
    src, dst = registry_factory(token=tokens), registry_factory()
    push_single(src.url, "app", "1", layers=3, layer_size=4096, auth=("carol", "pw"))
    before = len(tokens.requests)
    code = copy(src.host, dst.host)  # an anonymous pull; the destination is open
    assert code == 0, capsys.readouterr().err
    # One pull token for the whole copy (manifest, config, three layers), not one per request.
    assert len(tokens.requests) - before == 1, [r.path for r in tokens.requests[before:]]


# --- numbers that str.isdigit() accepts but int() refuses -----------------------------------------


def utf8(text: str) -> str:
    """``text`` as its UTF-8 bytes on the wire (the proxy writes header values as latin-1)."""
    return text.encode().decode("latin-1")


ODD_COUNTS = ["\u00b2", utf8("\u00b2;w=\u00b2"), "9" * 5000 + ";w=" + "9" * 5000, utf8("\u0663")]


@pytest.mark.parametrize("value", ODD_COUNTS)
def test_odd_ratelimit_headers_do_not_fail_the_copy(
    setup: Setup, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, dst, image = setup
    headers = {"ratelimit-limit": value, "ratelimit-remaining": value}
    proxy.add(Fault(path="^/v2/", add_headers=headers, times=-1))
    code = copy(proxy.host, dst.host)
    err = capsys.readouterr().err
    assert code == 0, err
    assert dest_digest(dst) == image.digest


@pytest.mark.parametrize("value", [*ODD_COUNTS, "Sun, 06 Nov 99999 08:49:37 GMT"])
def test_odd_retry_after_is_still_a_retry(
    setup: Setup, value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DT_RETRY_AFTER_CAP", "0.2")  # a 5000-digit delay is the cap
    _, proxy, dst, image = setup
    proxy.add(Fault(path="/manifests/", status=503, headers={"Retry-After": value}, times=1))
    code = copy(proxy.host, dst.host, "-v")
    err = capsys.readouterr().err
    assert code == 0, err
    assert dest_digest(dst) == image.digest
    assert sum(1 for r in proxy.records if r.status == 503) == 1


# --- two runs writing one destination ----------------------------------------------------------


def distribution_blob_unknown(digest: str) -> bytes:
    """Distribution 2.8's answer to a manifest PUT naming a blob it does not hold."""
    error = {"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": digest}
    return json.dumps({"errors": [error]}).encode()


@pytest.fixture
def behind_proxy(
    registry_factory: RegistryFactory,
) -> Iterator[tuple[LocalRegistry, FaultProxy, PushedSingle]]:
    """A source registry, and a destination registry behind the fault proxy."""
    src, dst = registry_factory(), registry_factory()
    image = push_single(src.url, "app", "1", layers=2, layer_size=4096)
    with FaultProxy(dst) as proxy:
        yield src, proxy, image


def test_manifest_put_refused_for_a_lost_blob_is_healed_and_retried(
    behind_proxy: tuple[LocalRegistry, FaultProxy, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    """The real registry's own refusal: a blob this run believed present is not there.

    The destination's HEAD claims the layer is present (another run is writing it, as
    far as we can tell), so it is not uploaded; Distribution then refuses the manifest
    with 400 MANIFEST_BLOB_UNKNOWN. The copy checks again, uploads it and retries the PUT.
    """
    src, proxy, image = behind_proxy
    layer = image.layer_digests[1]
    proxy.add(Fault(method="HEAD", path=f"/v2/app/blobs/{layer}", status=200, times=1))
    code = copy(src.host, proxy.host)
    err = capsys.readouterr().err
    assert code == 0, err
    assert dest_digest(proxy) == image.digest
    puts = [r for r in proxy.records if r.method == "PUT" and "/manifests/" in r.path]
    assert [r.status for r in puts] == [400, 201]
    heads = [r for r in proxy.records if r.method == "HEAD" and layer in r.path]
    assert [r.status for r in heads] == [200, 404]


def test_manifest_put_digest_invalid_during_an_overlapping_run_is_retried(
    behind_proxy: tuple[LocalRegistry, FaultProxy, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    src, proxy, image = behind_proxy
    body = json.dumps({"errors": [{"code": "DIGEST_INVALID", "message": "provided digest did not match"}]})
    proxy.add(Fault(method="PUT", path="/manifests/", status=400, body=body.encode(), times=1))
    code = copy(src.host, proxy.host)
    assert code == 0, capsys.readouterr().err
    assert dest_digest(proxy) == image.digest
    assert [r.status for r in proxy.records if r.method == "PUT" and "/manifests/" in r.path] == [400, 201]


def test_manifest_put_refused_every_time_fails_after_a_bounded_number_of_retries(
    behind_proxy: tuple[LocalRegistry, FaultProxy, PushedSingle], capsys: pytest.CaptureFixture[str]
) -> None:
    src, proxy, image = behind_proxy
    body = distribution_blob_unknown(image.layer_digests[0])
    proxy.add(Fault(method="PUT", path="/manifests/", status=400, body=body, times=-1))
    code = copy(src.host, proxy.host)
    err = capsys.readouterr().err
    assert code == 1
    assert "MANIFEST_BLOB_UNKNOWN" in err
    assert_clean(err)
    puts = [r for r in proxy.records if r.method == "PUT" and "/manifests/" in r.path]
    assert len(puts) == 1 + MANIFEST_RECHECKS


# --- an index listing one child many times --------------------------------------------------------


def test_index_listing_one_child_thousands_of_times_fetches_and_pushes_it_once(
    registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = registry_factory(), registry_factory()
    with RegistryPusher(src.url) as pusher:
        child, _, _ = pusher.push_platform_manifest("app", "linux/amd64", layers=[os.urandom(2048)])
        entry = descriptor(child.media_type, child.data, platform=parse_platform("linux/amd64"))
        index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry] * 10_000})
        index_digest = pusher.push_manifest("app", "1", index, OCI_INDEX)
    src_mark, dst_mark = src.mark(), dst.mark()
    code = copy(src.host, dst.host, "--all")
    assert code == 0, capsys.readouterr().err
    assert dest_digest(dst) == index_digest
    child_path = f"/v2/app/manifests/{child.digest}"
    assert sum(1 for e in src.requests(src_mark) if e.method == "GET" and e.path == child_path) == 1
    assert sum(1 for e in dst.requests(dst_mark) if e.method == "PUT" and e.path == child_path) == 1


# --- images.json ---------------------------------------------------------------------------------


def test_validate_with_a_thousands_digit_number_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = {"source": "nginx:1", "target": "nginx", "tags": ["1"], "architectures": ["amd64"]}
    text = json.dumps([entry]).replace('"amd64"]', '"amd64"], "arch_tags": ' + "9" * 5000)
    path = tmp_path / "images.json"
    path.write_text(text)
    code = main(["validate", "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "images[0].arch_tags: expected true or false, got number" in err
    assert_clean(err)
