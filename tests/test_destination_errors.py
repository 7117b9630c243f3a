"""Destination access errors a user can act on, and where credentials come from (issue 10.5).

Real registries throughout: htpasswd registries for credentials, and a fault
proxy in front of a real registry answering writes exactly as ACR does
(``403 {"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import DockerConfigFactory
from devtools.faultproxy import Fault, FaultProxy
from devtools.images import push_image
from devtools.registry import LocalRegistry, RegistryFactory
from devtools.tokenserver import TokenServer
from docker_transfer.cli import main

PASSWORD = "dest-Pa55-w0rd-never-shown"
ACR_DENIED = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
NAME_UNKNOWN = (
    b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry",'
    b'"detail":{"name":"mirror/app"}}]}'
)
CREDENTIAL_VARIABLES = (
    "TARGET_USERNAME",
    "TARGET_PASSWORD",
    "ALIYUN_USERNAME",
    "ALIYUN_PASSWORD",
)


@pytest.fixture(autouse=True)
def no_credentials_in_env(monkeypatch: pytest.MonkeyPatch, docker_config: DockerConfigFactory) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def source(registry_factory: RegistryFactory) -> LocalRegistry:
    reg = registry_factory()
    push_image(reg.url, "app", "1", platforms=["linux/amd64"])
    return reg


@pytest.fixture
def acr_proxy(registry_factory: RegistryFactory) -> Iterator[tuple[LocalRegistry, FaultProxy]]:
    dest = registry_factory()
    with FaultProxy(dest) as proxy:
        yield dest, proxy


def copy(capsys: pytest.CaptureFixture[str], src: str, dst: str, *hosts: str) -> tuple[int, str, str]:
    args = ["copy", src, dst]
    for host in hosts:
        args += ["--insecure-registry", host]
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def sync_to(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, source: LocalRegistry, dest_host: str
) -> tuple[int, dict[str, Any], str]:
    config = tmp_path / "images.json"
    entry = {"source": f"{source.host}/app:1", "target": "app", "tags": ["1"], "architectures": ["amd64"]}
    config.write_text(json.dumps([entry]))
    report = tmp_path / "report.json"
    args = ["sync", "--config", str(config), "--target-registry", dest_host, "--target-namespace", "mirror"]
    args += ["--insecure-registry", dest_host, "--insecure-registry", source.host, "--report", str(report)]
    code = main(args)
    _, err = capsys.readouterr()
    return code, json.loads(report.read_text()), err


# --- what ACR answers at the destination --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", r"/blobs/uploads/"), ("PUT", r"/manifests/")],
    ids=["blob-upload", "manifest-put"],
)
def test_acr_denied_names_the_likely_cause_and_the_registry_words(
    source: LocalRegistry,
    acr_proxy: tuple[LocalRegistry, FaultProxy],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
) -> None:
    monkeypatch.setenv("TARGET_USERNAME", "pusher")
    monkeypatch.setenv("TARGET_PASSWORD", PASSWORD)
    _, proxy = acr_proxy
    proxy.add(Fault(method=method, path=path, times=-1, status=403, body=ACR_DENIED))
    code, report, _ = sync_to(capsys, tmp_path, source, proxy.host)
    assert code == 1
    (result,) = report["results"]
    error = result["error"]
    assert "\n" not in error
    assert f"access to {proxy.host}/mirror/app denied" in error
    assert "namespace 'mirror' may not exist" in error
    assert "created first" in error and f"the login for {proxy.host} may not push there" in error
    assert error.endswith(f"({proxy.host} said: DENIED: requested access to the resource is denied)")
    # Refusals are final: no retry storm against the registry.
    refused = [r for r in proxy.records if r.method == method and r.status == 403]
    assert 1 <= len(refused) <= 3
    assert PASSWORD not in json.dumps(report)


def test_acr_denied_without_any_login_says_no_credentials_found(
    source: LocalRegistry,
    acr_proxy: tuple[LocalRegistry, FaultProxy],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, proxy = acr_proxy
    proxy.add(Fault(method="POST", path=r"/blobs/uploads/", times=-1, status=403, body=ACR_DENIED))
    code, report, _ = sync_to(capsys, tmp_path, source, proxy.host)
    assert code == 1
    error = report["results"][0]["error"]
    assert f"denied: no credentials found for {proxy.host}" in error
    assert "TARGET_USERNAME/TARGET_PASSWORD" in error and "said: DENIED" in error


def test_name_unknown_at_destination_says_create_the_repository_first(
    source: LocalRegistry,
    acr_proxy: tuple[LocalRegistry, FaultProxy],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, proxy = acr_proxy
    proxy.add(Fault(method="POST", path=r"/blobs/uploads/", times=-1, status=404, body=NAME_UNKNOWN))
    code, report, _ = sync_to(capsys, tmp_path, source, proxy.host)
    assert code == 1
    error = report["results"][0]["error"]
    assert f"{proxy.host} has no repository mirror/app and did not create it on push" in error
    assert "create the namespace 'mirror' and the repository first" in error
    assert error.endswith("said: NAME_UNKNOWN: repository name not known to registry)")


# --- no credentials vs rejected credentials ----------------------------------------------------------


def test_no_credentials_and_rejected_credentials_are_different_messages(
    source: LocalRegistry,
    registry_factory: RegistryFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest = registry_factory(htpasswd={"pusher": PASSWORD})
    hosts = (source.host, dest.host)
    code, out, err = copy(capsys, f"{source.host}/app:1", f"{dest.host}/mirror/app:1", *hosts)
    assert code == 1
    assert f"no credentials found for {dest.host}" in err
    assert "TARGET_USERNAME/TARGET_PASSWORD" in err and "rejected" not in err

    monkeypatch.setenv("TARGET_USERNAME", "pusher")
    monkeypatch.setenv("TARGET_PASSWORD", PASSWORD + "-wrong")
    code, out, err = copy(capsys, f"{source.host}/app:1", f"{dest.host}/mirror/app:1", *hosts)
    assert code == 1
    assert f"{dest.host} rejected the credentials" in err and "no credentials found" not in err
    assert PASSWORD not in out + err


def test_copy_reads_target_credentials_from_environment(
    source: LocalRegistry,
    registry_factory: RegistryFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest = registry_factory(htpasswd={"pusher": PASSWORD})
    monkeypatch.setenv("TARGET_USERNAME", "pusher")
    monkeypatch.setenv("TARGET_PASSWORD", PASSWORD)
    hosts = (source.host, dest.host)
    code, out, err = copy(capsys, f"{source.host}/app:1", f"{dest.host}/mirror/app:1", *hosts, "-vv")
    assert code == 0, err
    assert "copied" in out
    assert PASSWORD not in out + err
    monkeypatch.delenv("TARGET_PASSWORD")
    code, _, err = copy(capsys, f"{source.host}/app:1", f"{dest.host}/mirror/app:1", *hosts)
    assert code == 2 and "set both TARGET_USERNAME and TARGET_PASSWORD" in err


# --- containers-auth.json (podman / skopeo login) ------------------------------------------------------


def write_auth_file(path: Path, host: str, user: str, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return path


@pytest.mark.parametrize("variable", ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"])
def test_containers_auth_file_is_read_after_docker_config(
    source: LocalRegistry,
    registry_factory: RegistryFactory,
    docker_config: DockerConfigFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
) -> None:
    dest = registry_factory(htpasswd={"pusher": PASSWORD})
    if variable == "REGISTRY_AUTH_FILE":
        auth_file = write_auth_file(tmp_path / "podman-auth.json", dest.host, "pusher", PASSWORD)
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    else:
        auth_file = tmp_path / "run" / "containers" / "auth.json"
        write_auth_file(auth_file, dest.host, "pusher", PASSWORD)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    hosts = (source.host, dest.host)
    code, out, err = copy(capsys, f"{source.host}/app:1", f"{dest.host}/mirror/app:1", *hosts)
    assert code == 0, err
    assert PASSWORD not in out + err

    # Docker's config comes first: its (wrong) entry for the host wins over the auth file's.
    docker_config({dest.host: ("pusher", "docker-config-wrong")})
    code, _, err = copy(capsys, f"{source.host}/app:1", f"{dest.host}/mirror/app:2", *hosts)
    assert code == 1 and f"{dest.host} rejected the credentials" in err


def test_login_without_push_rights_is_access_denied_not_a_wrong_password(
    source: LocalRegistry,
    registry_factory: RegistryFactory,
    token_server_factory: Callable[..., TokenServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token registry that gives this login pull only (as Docker Hub does for another's namespace)."""

    def pull_only(username: str | None, rtype: str, name: str, actions: list[str]) -> list[str]:
        return [a for a in actions if a == "pull"]

    tokens = token_server_factory({"reader": PASSWORD}, policy=pull_only)
    dest = registry_factory(token=tokens)
    monkeypatch.setenv("TARGET_USERNAME", "reader")
    monkeypatch.setenv("TARGET_PASSWORD", PASSWORD)
    hosts = (source.host, dest.host)
    code, out, err = copy(capsys, f"{source.host}/app:1", f"{dest.host}/mirror/app:1", *hosts)
    assert code == 1
    assert f"access to {dest.host}/mirror/app denied" in err and "may not push there" in err, err
    assert "rejected the credentials" not in err
    assert f"{dest.host} said: UNAUTHORIZED" in err
    assert PASSWORD not in out + err
