"""Docker config.json and credential helpers: lookup rules, helper protocol, secret hygiene."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from docker_transfer.errors import CredentialError
from docker_transfer.registry.credentials import (
    DOCKER_HUB_KEY,
    Credential,
    CredentialStore,
    DockerConfig,
    config_path,
    containers_auth_path,
    helper_timeout,
)

T = TypeVar("T")
SECRET = "s3cret-Pa55-never-print"
TOKEN = "identity-refresh-token-never-print"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DOCKER_CONFIG and HOME in temp dirs, so the real ~/.docker is never read."""
    home = tmp_path / "home"
    home.mkdir()
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


def write_config(directory: Path, doc: Any) -> Path:
    path = directory / "config.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


HELPER = r"""#!/bin/sh
# A fake docker-credential helper: answers "get" by server name, logs every question.
[ "$1" = "get" ] || exit 3
server=$(cat)
printf '%s\n' "$server" >> "$(dirname "$0")/calls.log"
case "$server" in
  registry.example) printf '{"ServerURL":"%s","Username":"alice","Secret":"SECRET"}' "$server" ;;
  store.example) printf '{"ServerURL":"%s","Username":"carol","Secret":"SECRET-store"}' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"<token>","Secret":"TOKEN"}' "$server" ;;
  broken.example) echo "keychain exploded while reading SECRET" >&2; exit 1 ;;
  garbage.example) echo "this is not json SECRET" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


@pytest.fixture
def helper_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``docker-credential-fake`` first on PATH; returns its directory (with ``calls.log``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-fake"
    script.write_text(HELPER.replace("SECRET", SECRET).replace("TOKEN", TOKEN), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


def run(awaitable: Awaitable[T]) -> T:
    async def wait() -> T:
        return await awaitable

    return asyncio.run(wait())


def lookup(config: DockerConfig, host: str) -> Credential | None:
    return run(config.lookup(host))


def helper_calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


# --- config.json auths --------------------------------------------------------------------------


def test_auth_field_is_base64_user_and_password(config_dir: Path) -> None:
    write_config(config_dir, {"auths": {"registry.example": {"auth": b64(f"alice:{SECRET}:with:colons")}}})
    cred = lookup(DockerConfig.load(), "registry.example")
    assert cred == Credential("alice", f"{SECRET}:with:colons")


def test_username_and_password_fields(config_dir: Path) -> None:
    write_config(config_dir, {"auths": {"registry.example": {"username": "bob", "password": SECRET}}})
    assert lookup(DockerConfig.load(), "registry.example") == Credential("bob", SECRET)


def test_identitytoken_wins_over_password(config_dir: Path) -> None:
    entry = {"auth": b64("bob:ignored"), "identitytoken": TOKEN}
    write_config(config_dir, {"auths": {"registry.example": entry}})
    cred = lookup(DockerConfig.load(), "registry.example")
    assert cred is not None
    assert cred.identity_token == TOKEN
    assert cred.password == ""
    assert cred.username == "bob"


def test_entry_without_credentials_gives_none(config_dir: Path) -> None:
    write_config(config_dir, {"auths": {"registry.example": {}, "other.example": {"email": "x@y"}}})
    config = DockerConfig.load()
    assert lookup(config, "registry.example") is None
    assert lookup(config, "other.example") is None


@pytest.mark.parametrize("host", ["registry-1.docker.io", "docker.io", "index.docker.io", "DOCKER.IO"])
def test_docker_hub_key_matches_every_hub_alias(config_dir: Path, host: str) -> None:
    write_config(config_dir, {"auths": {DOCKER_HUB_KEY: {"auth": b64(f"hubuser:{SECRET}")}}})
    assert lookup(DockerConfig.load(), host) == Credential("hubuser", SECRET)


def test_docker_hub_key_does_not_match_other_registries(config_dir: Path) -> None:
    write_config(config_dir, {"auths": {DOCKER_HUB_KEY: {"auth": b64(f"hubuser:{SECRET}")}}})
    config = DockerConfig.load()
    assert lookup(config, "quay.io") is None
    assert lookup(config, "registry.example") is None


@pytest.mark.parametrize(
    "key",
    [
        "registry.example:5000",
        "https://registry.example:5000",
        "https://registry.example:5000/v2/",
        "http://registry.example:5000/v1/",
        "Registry.Example:5000",
    ],
)
def test_url_style_keys_match_the_host(config_dir: Path, key: str) -> None:
    write_config(config_dir, {"auths": {key: {"auth": b64(f"alice:{SECRET}")}}})
    config = DockerConfig.load()
    assert lookup(config, "registry.example:5000") == Credential("alice", SECRET)
    assert lookup(config, "registry.example") is None
    assert lookup(config, "registry.example:5001") is None
    assert lookup(config, "other.example:5000") is None


@pytest.mark.parametrize(
    "auth",
    [
        "!!!not base64!!!",
        b64("no-colon-here"),
        "YWxpY2U6cHfDqQ==\u00e9",  # non-ASCII: base64 refuses it with a bare ValueError
        base64.b64encode(b"alice:\xff\xfe").decode(),  # not UTF-8
    ],
)
def test_malformed_auth_field_is_an_error_without_the_value(config_dir: Path, auth: str) -> None:
    write_config(config_dir, {"auths": {"registry.example": {"auth": auth}}})
    with pytest.raises(CredentialError) as info:
        lookup(DockerConfig.load(), "registry.example")
    assert auth not in str(info.value)
    assert "registry.example" in str(info.value)


def test_broken_json_config_error_hides_the_file_contents(config_dir: Path) -> None:
    path = write_config(config_dir, '{"auths": {"registry.example": {"password": "' + SECRET + '", }')
    with pytest.raises(CredentialError) as info:
        DockerConfig.load()
    message = str(info.value)
    assert str(path) in message
    assert SECRET not in message
    assert SECRET not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    "doc", [[], "just a string", {"auths": ["registry.example"]}, {"credHelpers": "fake"}]
)
def test_wrongly_shaped_config_is_an_error(config_dir: Path, doc: Any) -> None:
    write_config(config_dir, json.dumps(doc))
    with pytest.raises(CredentialError):
        DockerConfig.load()


def test_missing_config_file_means_no_credentials(config_dir: Path) -> None:
    assert not (config_dir / "config.json").exists()
    config = DockerConfig.load()
    assert lookup(config, "registry.example") is None
    assert lookup(config, "docker.io") is None
    assert run(CredentialStore()("registry.example")) is None


def test_config_path_prefers_docker_config_then_home(tmp_path: Path) -> None:
    assert config_path({"DOCKER_CONFIG": str(tmp_path / "dc"), "HOME": str(tmp_path)}) == (
        tmp_path / "dc" / "config.json"
    )
    assert config_path({"HOME": str(tmp_path / "h")}) == tmp_path / "h" / ".docker" / "config.json"


def test_home_docker_dir_is_used_without_docker_config(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_CONFIG")
    docker_dir = Path(os.environ["HOME"]) / ".docker"
    docker_dir.mkdir()
    write_config(docker_dir, {"auths": {"registry.example": {"auth": b64(f"home:{SECRET}")}}})
    assert lookup(DockerConfig.load(), "registry.example") == Credential("home", SECRET)


# --- credential helpers ----------------------------------------------------------------------------


def test_cred_helper_for_a_host(config_dir: Path, helper_bin: Path) -> None:
    write_config(
        config_dir,
        {
            "credHelpers": {"registry.example": "fake"},
            "auths": {"registry.example": {"auth": b64("fromauths:pw")}},
        },
    )
    assert lookup(DockerConfig.load(), "registry.example") == Credential("alice", SECRET)
    assert helper_calls(helper_bin) == ["registry.example"]


def test_cred_helper_token_username_means_identity_token(config_dir: Path, helper_bin: Path) -> None:
    write_config(config_dir, {"credHelpers": {"docker.io": "fake"}})
    cred = lookup(DockerConfig.load(), "registry-1.docker.io")
    assert cred == Credential(identity_token=TOKEN)
    assert cred is not None and cred.password == ""
    assert helper_calls(helper_bin) == [DOCKER_HUB_KEY]


def test_cred_helper_not_found_means_no_credentials(config_dir: Path, helper_bin: Path) -> None:
    write_config(config_dir, {"credHelpers": {"unknown.example": "fake"}})
    assert lookup(DockerConfig.load(), "unknown.example") is None
    assert helper_calls(helper_bin) == ["unknown.example"]


def test_cred_helper_only_asked_for_its_own_host(config_dir: Path, helper_bin: Path) -> None:
    write_config(
        config_dir,
        {"credHelpers": {"registry.example": "fake"}, "auths": {"other.example": {"auth": b64("o:pw")}}},
    )
    assert lookup(DockerConfig.load(), "other.example") == Credential("o", "pw")
    assert helper_calls(helper_bin) == []


@pytest.mark.parametrize("host", ["broken.example", "garbage.example"])
def test_cred_helper_failure_is_an_error_without_its_output(
    config_dir: Path, helper_bin: Path, host: str
) -> None:
    write_config(config_dir, {"credHelpers": {host: "fake"}})
    with pytest.raises(CredentialError) as info:
        lookup(DockerConfig.load(), host)
    assert "docker-credential-fake" in str(info.value)
    assert SECRET not in str(info.value)


def test_cred_helper_missing_from_path_is_an_error(config_dir: Path, helper_bin: Path) -> None:
    write_config(config_dir, {"credHelpers": {"registry.example": "absent"}})
    with pytest.raises(CredentialError, match="docker-credential-absent"):
        lookup(DockerConfig.load(), "registry.example")


def test_creds_store_answers_for_any_host(config_dir: Path, helper_bin: Path) -> None:
    write_config(config_dir, {"credsStore": "fake"})
    config = DockerConfig.load()
    assert lookup(config, "store.example") == Credential("carol", f"{SECRET}-store")
    assert lookup(config, "index.docker.io") == Credential(identity_token=TOKEN)
    assert helper_calls(helper_bin) == ["store.example", DOCKER_HUB_KEY]


def test_creds_store_not_found_falls_back_to_auths(config_dir: Path, helper_bin: Path) -> None:
    write_config(
        config_dir, {"credsStore": "fake", "auths": {"plain.example": {"auth": b64(f"dave:{SECRET}")}}}
    )
    assert lookup(DockerConfig.load(), "plain.example") == Credential("dave", SECRET)
    assert helper_calls(helper_bin) == ["plain.example"]


def test_creds_store_missing_from_path_falls_back_to_auths(config_dir: Path, helper_bin: Path) -> None:
    write_config(
        config_dir, {"credsStore": "desktop", "auths": {"plain.example": {"auth": b64(f"dave:{SECRET}")}}}
    )
    assert lookup(DockerConfig.load(), "plain.example") == Credential("dave", SECRET)


def test_creds_store_failure_is_an_error(config_dir: Path, helper_bin: Path) -> None:
    write_config(config_dir, {"credsStore": "fake"})
    with pytest.raises(CredentialError) as info:
        lookup(DockerConfig.load(), "broken.example")
    assert SECRET not in str(info.value)


# --- the store and secret hygiene --------------------------------------------------------------------


def test_credential_repr_hides_secrets() -> None:
    for cred in (Credential("alice", SECRET), Credential("alice", identity_token=TOKEN)):
        for text in (repr(cred), str(cred), f"{cred}", f"{cred!r}", repr([cred]), repr({"c": cred})):
            assert SECRET not in text
            assert TOKEN not in text
            assert "alice" in text
    assert "identity-token" in repr(Credential("alice", identity_token=TOKEN))
    assert Credential("alice", SECRET, TOKEN).secrets() == (SECRET, TOKEN)
    assert Credential("alice").secrets() == ()


def test_store_prefers_explicit_credentials_and_caches_lookups(config_dir: Path, helper_bin: Path) -> None:
    write_config(config_dir, {"credHelpers": {"registry.example": "fake", "other.example": "fake"}})
    store = CredentialStore(explicit={"Other.Example": Credential("explicit", "pw")})
    assert run(store("other.example")) == Credential("explicit", "pw")
    for _ in range(3):
        assert run(store("REGISTRY.example")) == Credential("alice", SECRET)
    assert run(store("nobody.example")) is None
    assert helper_calls(helper_bin) == ["registry.example"]
    assert set(store.secrets()) == {"pw", SECRET}


def test_store_reads_config_lazily(config_dir: Path) -> None:
    store = CredentialStore()
    write_config(config_dir, {"auths": {"registry.example": {"auth": b64(f"late:{SECRET}")}}})
    assert run(store("registry.example")) == Credential("late", SECRET)


# --- containers-auth.json (podman, buildah, skopeo) ------------------------------------------------------


def test_containers_auth_path_prefers_registry_auth_file(tmp_path: Path) -> None:
    run_dir = str(tmp_path / "run")
    assert containers_auth_path({"REGISTRY_AUTH_FILE": "/a.json", "XDG_RUNTIME_DIR": run_dir}) == Path(
        "/a.json"
    )
    assert containers_auth_path({"XDG_RUNTIME_DIR": run_dir}) == tmp_path / "run" / "containers" / "auth.json"
    assert containers_auth_path({}) is None


def test_containers_auth_host_keys_match_and_namespace_keys_do_not(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "docker.io": {"auth": b64(f"hub:{SECRET}")},
                    "quay.io/team/app": {"auth": b64("scoped:pw")},
                    "registry.example:5000": {"auth": b64(f"alice:{SECRET}")},
                }
            }
        )
    )
    config = DockerConfig.load(path, containers=True)
    assert lookup(config, "registry-1.docker.io") == Credential("hub", SECRET)
    assert lookup(config, "registry.example:5000") == Credential("alice", SECRET)
    # A namespace's credentials are not the whole host's.
    assert lookup(config, "quay.io") is None


def test_containers_auth_helper_is_asked_for_docker_io(tmp_path: Path, helper_bin: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"credHelpers": {"docker.io": "fake"}}))
    assert lookup(DockerConfig.load(path, containers=True), "index.docker.io") is None  # "not found"
    assert helper_calls(helper_bin) == ["docker.io"]


def test_store_asks_containers_auth_only_when_docker_config_has_nothing(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(config_dir, {"auths": {"both.example": {"auth": b64("docker:pw1")}}})
    auth = tmp_path / "auth.json"
    entries = {"both.example": {"auth": b64("podman:pw2")}, "podman.example": {"auth": b64("podman:pw3")}}
    auth.write_text(json.dumps({"auths": entries}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    store = CredentialStore()
    assert run(store("both.example")) == Credential("docker", "pw1")
    assert run(store("podman.example")) == Credential("podman", "pw3")
    assert run(store("nobody.example")) is None


def test_broken_containers_auth_file_is_an_error_without_its_contents(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths": {"x": {"auth": "' + SECRET)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    with pytest.raises(CredentialError, match="containers auth file") as info:
        run(CredentialStore()("registry.example"))
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"), [("", 10.0), ("2.5", 2.5), ("nan", 10.0), ("-1", 10.0), ("x", 10.0)]
)
def test_helper_timeout_from_environment(raw: str, expected: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_CREDENTIAL_HELPER_TIMEOUT", raw)
    assert helper_timeout() == expected


def test_store_remembers_a_failing_helper_per_host(config_dir: Path, helper_bin: Path) -> None:
    write_config(config_dir, {"credHelpers": {"broken.example": "fake"}})
    store = CredentialStore()
    for _ in range(3):
        with pytest.raises(CredentialError):
            run(store("broken.example"))
    assert helper_calls(helper_bin) == ["broken.example"]
