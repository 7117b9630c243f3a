"""HTTPS_PROXY: every registry connection is tunnelled through the proxy unless NO_PROXY says not.

Two real TLS registries (each with its own test CA) behind ``devtools.connectproxy.ConnectProxy``;
the copy runs through the network backend's ``start_tls`` over the tunnel.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.connectproxy import ConnectProxy
from devtools.images import push_image
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main
from docker_transfer.registry.transport import https_proxy_for, proxy_for


@pytest.fixture
def tls_pair(registry_factory: RegistryFactory, tmp_path: Path) -> tuple[LocalRegistry, LocalRegistry, Path]:
    """Source (holding app:1, two platforms) and destination, and a CA bundle trusting both."""
    src, dst = registry_factory(tls=True), registry_factory(tls=True)
    assert src.ca_pem_path is not None and dst.ca_pem_path is not None
    push_image(src.url, "app", "1", platforms=["linux/amd64", "linux/arm64"], verify=str(src.ca_pem_path))
    bundle = tmp_path / "both-cas.pem"
    bundle.write_bytes(src.ca_pem_path.read_bytes() + dst.ca_pem_path.read_bytes())
    return src, dst, bundle


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ConnectProxy() as running:
        monkeypatch.setenv("HTTPS_PROXY", running.url)
        yield running


def copied(dst: LocalRegistry, bundle: Path) -> bool:
    response = httpx.head(
        f"{dst.url}/v2/app/manifests/1",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        verify=ssl.create_default_context(cafile=str(bundle)),
    )
    return response.status_code == 200


def test_verified_tls_goes_through_the_proxy(
    tls_pair: tuple[LocalRegistry, LocalRegistry, Path], proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, bundle = tls_pair
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    code = main(["copy", f"{src.host}/app:1", f"{dst.host}/app:1", "--arch", "amd64"])
    assert code == 0
    assert copied(dst, bundle)
    assert {src.host, dst.host} <= set(proxy.targets)


def test_insecure_listed_hosts_also_go_through_the_proxy(
    tls_pair: tuple[LocalRegistry, LocalRegistry, Path], proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, bundle = tls_pair
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    argv = ["copy", f"{src.host}/app:1", f"{dst.host}/app:1", "--arch", "amd64"]
    code = main([*argv, "--insecure-registry", src.host, "--insecure-registry", dst.host])
    assert code == 0
    assert copied(dst, bundle)
    assert {src.host, dst.host} <= set(proxy.targets)


@pytest.mark.parametrize("insecure", [False, True])
def test_no_proxy_is_honoured(
    tls_pair: tuple[LocalRegistry, LocalRegistry, Path],
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    insecure: bool,
) -> None:
    src, dst, bundle = tls_pair
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    argv = ["copy", f"{src.host}/app:1", f"{dst.host}/app:1", "--arch", "amd64"]
    if insecure:
        argv += ["--insecure-registry", src.host, "--insecure-registry", dst.host]
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert main(argv) == 0
    assert copied(dst, bundle)
    assert proxy.targets == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://proxy.example:3128"}, "http://proxy.example:3128"),
        ({"https_proxy": "http://lower.example:3128"}, "http://lower.example:3128"),
        ({"ALL_PROXY": "http://all.example:3128"}, "http://all.example:3128"),
        ({"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "registry.local"}, None),
        ({"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": ".local"}, None),
        (
            {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "other.example"},
            "http://proxy.example:3128",
        ),
        ({"HTTP_PROXY": "http://plain.example:3128"}, None),
    ],
)
def test_https_proxy_for_an_insecure_host(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert https_proxy_for("registry.local:5000") == expected


@pytest.mark.parametrize(
    ("scheme", "host", "environ", "expected"),
    [
        ("http", "reg.local:5000", {"HTTP_PROXY": "http://p:3128"}, "http://p:3128"),
        ("http", "reg.local:5000", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https", "reg.example", {"ALL_PROXY": "http://p:3128"}, "http://p:3128"),
        ("https", "reg.example", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".example"}, None),
    ],
)
def test_each_origin_pool_gets_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, scheme: str, host: str, environ: dict[str, str], expected: str | None
) -> None:
    """httpx ignores proxy variables once given a transport; the per-origin pools read them."""
    for name in ("NO_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert proxy_for(scheme, host) == expected
