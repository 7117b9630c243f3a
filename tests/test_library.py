"""The library: docs/library.md's example runs, and using it changes no global state."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import docker_transfer
from devtools.images import push_image
from devtools.registry import LocalRegistry
from docker_transfer import Client, Credential, RetryPolicy, SyncOptions
from docker_transfer.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_DOC = ROOT / "docs" / "library.md"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_docs_example_runs_against_real_registries(
    two_registries: tuple[LocalRegistry, LocalRegistry],
) -> None:
    source, mirror = two_registries
    push_image(
        source.url, "library/alpine", "3.20", platforms=["linux/amd64", "linux/arm64/v8", "linux/s390x"]
    )
    example = python_blocks(LIBRARY_DOC)[0]
    assert "localhost:5000" in example and "localhost:5001" in example
    code = example.replace("localhost:5000", source.host).replace("localhost:5001", mirror.host)
    # A fresh interpreter, as a reader would run it: nothing of this test process's state helps.
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = done.stdout.strip().splitlines()
    assert first.startswith("copied sha256:")
    # The destination gets the source's tag (it named none) and the extra one.
    assert "('linux/amd64', 'linux/arm64/v8')" in first and "('3.20', 'stable')" in first
    assert second.split()[0] == first.split()[1]  # the inspected tag holds what was copied
    assert "linux/amd64" in second and "linux/arm64/v8" in second


def test_every_python_block_of_the_doc_compiles() -> None:
    blocks = python_blocks(LIBRARY_DOC)
    assert len(blocks) >= 3
    for block in blocks:
        compile(block, str(LIBRARY_DOC), "exec")


SIDE_EFFECTS = textwrap.dedent(
    """
    import asyncio, logging, sys

    import stamina.instrumentation
    from httpcore._async import http11, connection_pool

    retries = []
    stamina.instrumentation.set_on_retry_hooks([lambda details: retries.append(details.retry_num)])

    def library_state():
        return {
            "hooks": stamina.instrumentation.get_on_retry_hooks(),
            "read size": http11.AsyncHTTP11Connection.__dict__.get("READ_NUM_BYTES"),
            "http11": dict(vars(http11.AsyncHTTP11Connection)),
            "pool": dict(vars(connection_pool.AsyncConnectionPool)),
            "modules": dict(sys.modules),
            "root handlers": list(logging.getLogger().handlers),
            "root level": logging.getLogger().level,
            "loggers": {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "stamina")},
            "policy": type(asyncio.get_event_loop_policy()),
        }

    before = library_state()
    assert "httpx" not in sys.modules and "httpx._main" not in sys.modules

    import docker_transfer

    assert "httpx._main" not in sys.modules, "import docker_transfer registered httpx._main"
    from docker_transfer import Client, DockerTransferError, RetryPolicy

    registry, closed = sys.argv[1], sys.argv[2]

    async def use() -> None:
        policy = RetryPolicy(attempts=2, wait_initial=0.01, wait_max=0.02, wait_jitter=0.0)
        async with Client(insecure=[registry, closed], retry=policy) as client:
            info = await client.inspect(f"{registry}/lib/app:1.0")
            assert info["digest"].startswith("sha256:")
            result = await client.copy(f"{registry}/lib/app:1.0", f"{registry}/copy/app", platforms=["amd64"])
            assert result.status == "copied", result
            try:
                await client.inspect(f"{closed}/nothing/here:1")
            except DockerTransferError:
                pass
            else:
                raise AssertionError("a closed port answered")

    asyncio.run(use())
    after = library_state()
    # Modules the library imported are new entries; none already there may be replaced or removed.
    kept = before.pop("modules").items()
    replaced = [name for name, module in kept if after["modules"].get(name) is not module]
    assert not replaced, f"sys.modules entries replaced: {replaced}"
    for key in before:
        assert before[key] == after[key], f"{key} changed: {before[key]!r} -> {after[key]!r}"
    main = sys.modules.get("httpx._main")
    assert main is None or getattr(main, "__file__", "").endswith("_main.py"), main
    assert retries == [1], f"the application's stamina hook saw {retries} (one retry expected)"
    print("unchanged")
    """
)


def free_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_importing_and_using_the_library_changes_no_global_state(registry: LocalRegistry) -> None:
    push_image(registry.url, "lib/app", "1.0")
    closed = f"127.0.0.1:{free_closed_port()}"
    done = subprocess.run(
        [sys.executable, "-c", SIDE_EFFECTS, registry.host, closed],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "unchanged"
    assert "stamina.retry_scheduled" not in done.stderr  # the application's hook replaced the default


def test_the_package_exports_the_library() -> None:
    for name in docker_transfer.__all__:
        assert getattr(docker_transfer, name) is not None, name
    with pytest.raises(AttributeError):
        docker_transfer.no_such_name  # noqa: B018


def test_blocking_copy_and_mapping_credentials(two_registries: tuple[LocalRegistry, LocalRegistry]) -> None:
    source, mirror = two_registries
    push_image(source.url, "lib/app", "1.0")
    result = docker_transfer.copy(
        f"{source.host}/lib/app:1.0",
        f"{mirror.host}/lib/app",
        platforms=["linux/arm64"],
        insecure=[source.host, mirror.host],
        credentials={"docker.io": Credential(username="u", password="never-sent-here")},
    )
    assert result.status == "copied" and result.platforms == ("linux/arm64/v8",)
    assert result.to_dict()["tags"] == ["1.0"]


async def test_blocking_copy_refuses_to_run_inside_a_loop() -> None:
    with pytest.raises(UsageError, match="event loop"):
        docker_transfer.copy("a.example/x:1", "b.example/x")


async def test_client_sync_reports_per_tag(
    two_registries: tuple[LocalRegistry, LocalRegistry], tmp_path: Path
) -> None:
    source, mirror = two_registries
    push_image(source.url, "lib/app", "1.0")
    config = tmp_path / "images.json"
    entries = [
        {
            "source": f"{source.host}/lib/app:1.0",
            "target": "app",
            "tags": ["1.0"],
            "architectures": ["amd64"],
        },
        {"source": f"{source.host}/lib/gone:1", "target": "gone", "tags": ["1"], "architectures": ["amd64"]},
    ]
    config.write_text(json.dumps(entries))
    fast = RetryPolicy(attempts=1)
    async with Client(insecure=[source.host, mirror.host], retry=fast) as client:
        report = await client.sync(config, registry=mirror.host, namespace="mirror", options=SyncOptions())
        again = await client.sync(config, registry=mirror.host, namespace="mirror")
    statuses = {r.target.rsplit("/", 1)[1]: r.status for r in report.results}
    assert statuses == {"app": "copied", "gone": "failed"}
    assert report.exit_code() == 1 and report.finished is not None
    assert sorted(r.status for r in again.results) == ["failed", "unchanged"]


def test_from_env_is_where_the_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_INSECURE_REGISTRIES", "env.example:5000")
    monkeypatch.setenv("DT_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("DT_RETRY_AFTER_CAP", "7")
    plain = Client()
    configured = Client.from_env(insecure=["flag.example"])
    try:
        assert plain.registry.transport.insecure_hosts == frozenset()
        assert plain.registry.retry == RetryPolicy()
        assert configured.registry.transport.insecure_hosts == {"env.example:5000", "flag.example"}
        assert configured.registry.retry.attempts == 2 and configured.registry.retry.retry_after_cap == 7.0
    finally:
        asyncio.run(plain.aclose())
        asyncio.run(configured.aclose())


def test_the_policy_caps_a_registrys_retry_after() -> None:
    from docker_transfer.errors import RateLimitedError  # noqa: PLC0415

    policy = RetryPolicy(retry_after_cap=2.0)
    assert (
        policy.backoff_hook(RateLimitedError("slow down", status=429, retryable=True, retry_after=3600.0))
        == 2.0
    )
    assert (
        policy.backoff_hook(RateLimitedError("slow down", status=429, retryable=True, retry_after=1.0)) == 1.0
    )
