"""Authentication against real registries: htpasswd, token auth, redirects, and secret hygiene."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from devtools import DockerConfigFactory
from devtools.headerserver import RedirectingProxy
from devtools.images import push_image
from devtools.registry import LocalRegistry, RegistryFactory
from devtools.tokenserver import TokenServer
from docker_transfer.cli import main

PASSWORD = "s3cret-Pa55word-do-not-print"
WRONG = "wrong-Pa55word-never-print"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def flags(*hosts: str) -> list[str]:
    out: list[str] = []
    for host in hosts:
        out += ["--insecure-registry", host]
    return out


def manifest_status(reg: LocalRegistry, repo: str, tag: str, auth: tuple[str, str] | None = None) -> int:
    resp = httpx.head(
        f"{reg.url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        auth=auth,
    )
    return resp.status_code


def test_htpasswd_source_and_destination_from_docker_config(
    registry_factory: RegistryFactory,
    docker_config: DockerConfigFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = registry_factory(htpasswd={"alice": PASSWORD})
    dst = registry_factory(htpasswd={"bob": PASSWORD + "2"})
    image = push_image(src.url, "team/app", "1", auth=("alice", PASSWORD))
    docker_config({src.host: ("alice", PASSWORD), f"https://{dst.host}": ("bob", PASSWORD + "2")})
    code, out, err = run_cli(
        capsys,
        "copy",
        f"{src.host}/team/app:1",
        f"{dst.host}/mirror/app:1",
        "-vv",
        *flags(src.host, dst.host),
    )
    assert code == 0, err
    assert image.index_digest in out
    assert manifest_status(dst, "mirror/app", "1", ("bob", PASSWORD + "2")) == 200
    assert PASSWORD not in out + err


def test_token_auth_registry_both_sides(
    registry_factory: RegistryFactory,
    token_server_factory: type[TokenServer],
    docker_config: DockerConfigFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokens = token_server_factory({"carol": PASSWORD})
    src = registry_factory(token=tokens)
    dst = registry_factory(token=tokens)
    image = push_image(src.url, "org/app", "2", auth=("carol", PASSWORD), platforms=["linux/amd64"])
    docker_config({src.host: ("carol", PASSWORD), dst.host: ("carol", PASSWORD)})
    before = len(tokens.requests)
    code, out, err = run_cli(
        capsys, "copy", f"{src.host}/org/app:2", f"{dst.host}/org/app:2", *flags(src.host, dst.host)
    )
    assert code == 0, err
    assert image.index_digest in out
    ours = tokens.requests[before:]
    scopes = [s for r in ours for s in r.query.get("scope", [])]
    assert "repository:org/app:pull" in scopes
    assert any(s.startswith("repository:org/app:pull,push") for s in scopes)
    # Tokens are cached per (host, scope): one pull token at the source, a pull and a pull+push
    # token at the destination, however many blobs move concurrently.
    assert len(ours) == 3, [r.path for r in ours]


def test_wrong_password_exits_1_and_never_prints_it(
    registry_factory: RegistryFactory,
    token_server_factory: type[TokenServer],
    docker_config: DockerConfigFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    basic = registry_factory(htpasswd={"alice": PASSWORD})
    tokens = token_server_factory({"carol": PASSWORD})
    tokened = registry_factory(token=tokens)
    push_image(basic.url, "app", "1", auth=("alice", PASSWORD), platforms=["linux/amd64"])
    push_image(tokened.url, "app", "1", auth=("carol", PASSWORD), platforms=["linux/amd64"])
    config_dir = docker_config({basic.host: ("alice", WRONG), tokened.host: ("carol", WRONG)})
    assert (
        WRONG
        in base64.b64decode(
            json.loads((config_dir / "config.json").read_text())["auths"][basic.host]["auth"]
        ).decode()
    )
    for reg in (basic, tokened):
        code, out, err = run_cli(capsys, "inspect", f"{reg.host}/app:1", "-vvv", *flags(reg.host))
        assert code == 1
        assert f"{reg.host} rejected the credentials" in err
        assert reg.host in err
        assert WRONG not in out + err and PASSWORD not in out + err
        assert base64.b64encode(f"alice:{WRONG}".encode()).decode() not in out + err
        assert "Traceback" not in err


def test_blob_redirect_drops_authorization(
    registry_factory: RegistryFactory,
    docker_config: DockerConfigFactory,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    src = registry_factory(htpasswd={"alice": PASSWORD})
    dst = registry_factory()
    image = push_image(src.url, "app", "1", auth=("alice", PASSWORD), platforms=["linux/amd64"])
    with RedirectingProxy(src) as proxy:
        docker_config({proxy.host: ("alice", PASSWORD)})
        code, _, err = run_cli(
            capsys, "copy", f"{proxy.host}/app:1", f"{dst.host}/app:1", *flags(proxy.host, dst.host)
        )
        assert code == 0, err
        assert proxy.redirects, "the proxy must have redirected blob GETs"
        blob_requests = [r for r in proxy.blob_server.requests if r.path.startswith("/blob/")]
        assert blob_requests
        for request in blob_requests:
            assert request.header("Authorization") is None
        # while the registry-bound requests did carry credentials
        assert any(r.header("Authorization") for r in proxy.requests)
    assert manifest_status(dst, "app", "1") == 200
    assert image.index_digest
