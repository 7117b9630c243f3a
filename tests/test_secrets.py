"""Planted passwords and tokens never reach stdout, stderr or the report, at any verbosity."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from devtools import DockerConfigFactory
from devtools.images import push_image
from devtools.registry import RegistryFactory
from devtools.tokenserver import TokenServer
from docker_transfer.cli import main
from docker_transfer.cli.common import redact

SOURCE_PW = "src-Pa55word-planted-0001"
TARGET_PW = "dst-Pa55word-planted-0002"


@pytest.mark.parametrize("verbosity", ["-v", "-vv", "-vvv"])
def test_no_secret_in_any_output(
    verbosity: str,
    registry_factory: RegistryFactory,
    token_server_factory: type[TokenServer],
    docker_config: DockerConfigFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    tokens = token_server_factory({"reader": SOURCE_PW})
    src = registry_factory(token=tokens)
    dst = registry_factory(htpasswd={"pusher": TARGET_PW})
    push_image(src.url, "app", "1", auth=("reader", SOURCE_PW))
    push_image(src.url, "bad", "1", auth=("reader", SOURCE_PW), platforms=["linux/amd64"])
    docker_config({src.host: ("reader", SOURCE_PW)})
    monkeypatch.setenv("TARGET_USERNAME", "pusher")
    monkeypatch.setenv("TARGET_PASSWORD", TARGET_PW)
    config = tmp_path / "images.json"
    config.write_text(
        json.dumps(
            [
                {
                    "source": f"{src.host}/app:1",
                    "target": "app",
                    "tags": ["1"],
                    "architectures": ["amd64", "arm64"],
                },
                {"source": f"{src.host}/bad:1", "target": "bad", "tags": ["1"], "architectures": ["arm64"]},
            ]
        )
    )
    report = tmp_path / "report.json"
    code = main(
        [
            "sync",
            "--config",
            str(config),
            "--target-registry",
            dst.host,
            "--target-namespace",
            "m",
            "--report",
            str(report),
            "--insecure-registry",
            src.host,
            "--insecure-registry",
            dst.host,
            verbosity,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1  # the second entry fails: its error text is part of what we search
    assert tokens.tokens, "the token server must have issued tokens"
    planted = [
        SOURCE_PW,
        TARGET_PW,
        *tokens.tokens,
        base64.b64encode(f"reader:{SOURCE_PW}".encode()).decode(),
        base64.b64encode(f"pusher:{TARGET_PW}".encode()).decode(),
    ]
    for secret in planted:
        assert secret not in out + err + report.read_text()
    if verbosity == "-vvv":
        assert "HTTP Request" in err  # the most verbose level really logged requests


def test_redact_masks_urls_headers_and_known_values() -> None:
    text = (
        "GET https://bob:hunter2@reg.example/v2/?token=abc.def&x=1 "
        "Location: https://s3.example/blob?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/1 "
        "Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.payload.sig and known-secret-value"
    )
    masked = redact(text, ["known-secret-value"])
    for leaked in ("hunter2", "abc.def", "deadbeef", "AKIA/1", "eyJhbGciOiJFUzI1NiJ9", "known-secret-value"):
        assert leaked not in masked
    assert "x=1" in masked and "reg.example/v2/" in masked
