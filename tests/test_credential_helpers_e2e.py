"""A credential helper that hangs must not hang the run (issue 10.7, credential helpers).

The destination is a real htpasswd registry, so every entry needs credentials;
Docker's config names a ``credsStore`` whose helper never answers. Helpers run
off the event loop with a short timeout, are asked once per host, and are
killed when the run stops.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.images import push_image
from devtools.registry import RegistryFactory
from docker_transfer.cli import main

HANGING_HELPER = """#!/bin/sh
[ "$1" = "get" ] || exit 3
cat > /dev/null
echo "$$" >> "$(dirname "$0")/calls.log"
sleep 60
"""
ENTRIES = 3


@pytest.fixture
def hanging_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Docker config with ``credsStore: hang``; ``docker-credential-hang`` sleeps 60 s. Returns its dir."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-hang"
    helper.write_text(HANGING_HELPER)
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"credsStore": "hang"}))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in ("TARGET_USERNAME", "TARGET_PASSWORD", "ALIYUN_USERNAME", "ALIYUN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return bin_dir


@pytest.fixture
def sync_args(registry_factory: RegistryFactory, tmp_path: Path) -> list[str]:
    source = registry_factory()
    dest = registry_factory(htpasswd={"pusher": "pusher-Pa55"})
    entries = []
    for i in range(ENTRIES):
        push_image(source.url, f"app{i}", "1", platforms=["linux/amd64"])
        entries.append(
            {
                "source": f"{source.host}/app{i}:1",
                "target": f"app{i}",
                "tags": ["1"],
                "architectures": ["amd64"],
            }
        )
    config = tmp_path / "images.json"
    config.write_text(json.dumps(entries))
    return [
        "sync",
        "--config",
        str(config),
        "--target-registry",
        dest.host,
        "--target-namespace",
        "mirror",
        "--insecure-registry",
        dest.host,
        "--insecure-registry",
        source.host,
        "--report",
        str(tmp_path / "report.json"),
    ]


def calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().split() if log.exists() else []


def test_hanging_helper_times_out_once_per_host_not_once_per_image(
    hanging_store: Path,
    sync_args: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DT_CREDENTIAL_HELPER_TIMEOUT", "1")
    started = time.monotonic()
    code = main(sync_args)
    elapsed = time.monotonic() - started
    capsys.readouterr()
    assert code == 1
    assert elapsed < 8, elapsed  # one 1 s timeout for the host, not 30 s per entry
    assert len(calls(hanging_store)) == 1  # the failure is remembered for the host
    results = json.loads((tmp_path / "report.json").read_text())["results"]
    assert len(results) == ENTRIES
    for result in results:
        assert result["status"] == "failed"
        assert "docker-credential-hang did not answer" in result["error"] and "within 1s" in result["error"]


def test_image_timeout_cuts_a_hanging_helper(
    hanging_store: Path,
    sync_args: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DT_CREDENTIAL_HELPER_TIMEOUT", "60")
    started = time.monotonic()
    code = main([*sync_args, "--image-timeout", "2s"])
    elapsed = time.monotonic() - started
    capsys.readouterr()
    assert code == 1
    assert elapsed < 10, elapsed
    results = json.loads((tmp_path / "report.json").read_text())["results"]
    assert all("timed out after 2s" in (r["error"] or "") for r in results), results
    assert len(calls(hanging_store)) == 1
    # The helper was killed when the run ended, not left sleeping.
    (pid,) = map(int, calls(hanging_store))
    assert not _alive(pid)


def test_sigterm_stops_a_run_waiting_for_a_hanging_helper(
    hanging_store: Path, sync_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DT_CREDENTIAL_HELPER_TIMEOUT", "60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "docker_transfer", *sync_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not calls(hanging_store) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert calls(hanging_store), "the helper was never started"
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - sent < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["status"] for r in report["results"]] == ["interrupted"] * ENTRIES  # counted apart
    (pid,) = map(int, calls(hanging_store))
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat_file:
                state = stat_file.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True
