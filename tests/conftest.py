"""Shared fixtures: real docker-registry processes and an isolated Docker config."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import DockerConfigFactory, write_docker_config
from devtools.registry import INSTALL_HINT, LocalRegistry, RegistryFactory, TokenAuth, find_registry_binary
from devtools.tokenserver import TokenServer


def require_registry_binary() -> None:
    """Fail (CI=true) or skip the test when ``docker-registry`` is not installed."""
    if find_registry_binary() is not None:
        return
    message = f"docker-registry binary not found on PATH; {INSTALL_HINT}"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[RegistryFactory]:
    """Callable creating started :class:`LocalRegistry` instances; all are stopped at teardown."""
    require_registry_binary()
    started: list[LocalRegistry] = []

    def factory(
        *,
        htpasswd: dict[str, str] | None = None,
        token: TokenAuth | None = None,
        tls: bool = False,
        storage_dir: Path | None = None,
    ) -> LocalRegistry:
        workdir = tmp_path / f"registry-{len(started)}"
        reg = LocalRegistry(htpasswd=htpasswd, token=token, tls=tls, storage_dir=storage_dir, workdir=workdir)
        reg.start()
        started.append(reg)
        return reg

    yield factory
    for reg in reversed(started):
        reg.stop()


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> LocalRegistry:
    """A plain (http, no auth) registry."""
    return registry_factory()


@pytest.fixture
def two_registries(registry_factory: RegistryFactory) -> tuple[LocalRegistry, LocalRegistry]:
    """Two independent plain registries: (source, destination)."""
    return registry_factory(), registry_factory()


@pytest.fixture
def token_server_factory(tmp_path: Path) -> Iterator[Callable[..., TokenServer]]:
    """Callable creating started :class:`TokenServer` instances (same kwargs); stopped at teardown."""
    started: list[TokenServer] = []

    def factory(*args: Any, **kwargs: Any) -> TokenServer:
        kwargs.setdefault("workdir", tmp_path / f"tokenserver-{len(started)}")
        server = TokenServer(*args, **kwargs)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DockerConfigFactory:
    """Isolate DOCKER_CONFIG and HOME in temp dirs; call it with {host: (user, pw)} to write auths.

    The real ``~/.docker`` is never read: HOME points at an empty temp dir and DOCKER_CONFIG at
    a temp dir holding a config.json (``{"auths": {}}`` until the factory is called).
    """
    home = tmp_path / "home"
    config_dir = tmp_path / "docker-config"
    home.mkdir()
    write_docker_config(config_dir, {})
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)

    def factory(auths: dict[str, tuple[str, str]]) -> Path:
        write_docker_config(config_dir, auths)
        return config_dir

    return factory


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the real retry policy (5 attempts) but with millisecond waits, so failing tests stay fast."""
    monkeypatch.setenv("DT_RETRY_WAIT_INITIAL", "0.01")
    monkeypatch.setenv("DT_RETRY_WAIT_MAX", "0.05")
    monkeypatch.delenv("DT_INSECURE_REGISTRIES", raising=False)
