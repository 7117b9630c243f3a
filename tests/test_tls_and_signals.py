"""TLS trust against a real HTTPS registry, and interrupting a sync (SIGINT / SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.images import push_image, push_single
from devtools.registry import RegistryFactory
from docker_transfer.cli import main


def test_self_signed_registry_needs_trust(
    registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = registry_factory(tls=True)
    assert reg.ca_pem_path is not None
    single = push_single(reg.url, "app", "1", verify=str(reg.ca_pem_path))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)

    code = main(["inspect", f"{reg.host}/app:1"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "TLS" in err and "--ca-cert" in err and "Traceback" not in err

    code = main(["inspect", f"{reg.host}/app:1", "--ca-cert", str(reg.ca_pem_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert single.digest in out

    monkeypatch.setenv("SSL_CERT_FILE", str(reg.ca_pem_path))
    assert main(["inspect", f"{reg.host}/app:1"]) == 0
    monkeypatch.delenv("SSL_CERT_FILE")

    # opting this host out of verification works, and only for this host
    assert main(["inspect", f"{reg.host}/app:1", "--insecure-registry", reg.host]) == 0
    assert main(["inspect", f"{reg.host}/app:1", "--insecure-registry", "127.0.0.1:1"]) == 1
    capsys.readouterr()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: requests hang until interrupted."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def healthy_and_hanging(tmp_path: Path, good: str, hanging: str) -> Path:
    """An images.json with one entry that copies at once and one whose source never answers."""
    config = tmp_path / "images.json"
    entries = [(f"{good}/ok:1", "ok"), (f"{hanging}/hang:1", "hang")]
    config.write_text(
        json.dumps(
            [{"source": s, "target": t, "tags": ["1"], "architectures": ["amd64"]} for s, t in entries]
        )
    )
    return config


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_sync_writes_report_and_exits_130(
    sig: signal.Signals, silent_server: str, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    good_src = registry_factory()
    dest = registry_factory()
    push_image(good_src.url, "ok", "1")
    config = healthy_and_hanging(tmp_path, good_src.host, silent_server)
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "docker_transfer",
            "sync",
            "--config",
            str(config),
            "--target-registry",
            dest.host,
            "--target-namespace",
            "m",
            "--report",
            str(report),
            "--insecure-registry",
            good_src.host,
            "--insecure-registry",
            dest.host,
            "--insecure-registry",
            silent_server,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A test runner started in the background (`cmd &` in a script) ignores SIGINT, and a child
        # inherits that; a user pressing Ctrl-C in a terminal does not. Start from the default.
        preexec_fn=_default_sigint,  # noqa: PLW1509 - only signal.signal runs between fork and exec
    )
    # wait until the healthy image is done, then interrupt while the other hangs
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "ok:1" in line and "copied" in line:
            break
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, "".join(lines) + err
    assert "Traceback" not in err
    doc = json.loads(report.read_text())
    statuses = {r["target"].rsplit("/", 1)[1]: (r["status"], r["error"]) for r in doc["results"]}
    assert statuses["ok"][0] == "copied"
    # interrupted is its own status (counted apart from failures), with the time it had run
    assert statuses["hang"][0] == "interrupted" and "interrupted" in (statuses["hang"][1] or "")
    hang = next(r for r in doc["results"] if r["target"].endswith("/hang"))
    assert hang["duration_s"] > 0.2
    assert doc["summary"]["interrupted"] == 1 and doc["summary"]["failed"] == 0
    assert doc["finished"] is not None
    assert "interrupted" in err


def test_run_timeout_fails_unfinished_images_only(
    silent_server: str, registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good_src, dest = registry_factory(), registry_factory()
    push_image(good_src.url, "ok", "1")
    config = healthy_and_hanging(tmp_path, good_src.host, silent_server)
    report = tmp_path / "report.json"
    started = time.monotonic()
    code = main(
        [
            "sync",
            "--config",
            str(config),
            "--target-registry",
            dest.host,
            "--target-namespace",
            "m",
            "--report",
            str(report),
            "--timeout",
            "2s",
            "--insecure-registry",
            good_src.host,
            "--insecure-registry",
            dest.host,
            "--insecure-registry",
            silent_server,
        ]
    )
    capsys.readouterr()
    assert code == 1
    assert time.monotonic() - started < 15
    results = {r["target"].rsplit("/", 1)[1]: r for r in json.loads(report.read_text())["results"]}
    assert results["ok"]["status"] == "copied"
    assert results["hang"]["status"] == "failed" and "--timeout" in results["hang"]["error"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
