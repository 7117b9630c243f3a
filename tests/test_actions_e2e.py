"""`sync` as a GitHub Actions step, against real local registries: summary, groups, annotations, masks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import DockerConfigFactory
from devtools.images import push_image
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main

PASSWORD = "tp-Secr3t-9f2c41"
ALIYUN_PASSWORD = "aliyun-Secr3t-77b1"
DOCKER_CONFIG_PASSWORD = "dockercfg-Secr3t-5e0d"


@pytest.fixture
def setup(
    registry_factory: RegistryFactory,
    docker_config: DockerConfigFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[LocalRegistry, LocalRegistry, Path]:
    hub, acr = registry_factory(), registry_factory()
    push_image(hub.url, "good", "1")
    push_image(hub.url, "bad", "1", platforms=["linux/amd64"])
    config = tmp_path / "images.json"
    entries = [
        {
            "source": f"{hub.host}/bad:1",
            "target": "bad",
            "tags": ["1", "latest"],
            "architectures": ["amd64", "arm64"],
        },
        {
            "source": f"{hub.host}/good:1",
            "target": "good",
            "tags": ["1"],
            "architectures": ["amd64", "arm64"],
        },
    ]
    config.write_text(json.dumps(entries))
    docker_config({"other.example": ("someone", DOCKER_CONFIG_PASSWORD)})
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "step_summary.md"))
    monkeypatch.setenv("TARGET_USERNAME", "robot")
    monkeypatch.setenv("TARGET_PASSWORD", PASSWORD)
    monkeypatch.setenv("ALIYUN_USERNAME", "aliyun-robot")
    monkeypatch.setenv("ALIYUN_PASSWORD", ALIYUN_PASSWORD)
    (tmp_path / "step_summary.md").write_text("earlier step output\n")
    return hub, acr, config


def sync_args(hub: LocalRegistry, acr: LocalRegistry, config: Path, report: Path) -> list[str]:
    return [
        "sync",
        "--config",
        str(config),
        "--target-registry",
        acr.host,
        "--target-namespace",
        "mirror",
        "--insecure-registry",
        acr.host,
        "--insecure-registry",
        hub.host,
        "--report",
        str(report),
    ]


def test_github_actions_run_writes_summary_groups_one_error_and_masks(
    setup: tuple[LocalRegistry, LocalRegistry, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub, acr, config = setup
    report = tmp_path / "report.json"
    code = main(sync_args(hub, acr, config, report))
    out, err = capsys.readouterr()
    assert code == 1, err

    # the summary: appended, failure first with its error, then a table per image
    summary = (tmp_path / "step_summary.md").read_text()
    assert summary.startswith("earlier step output\n## ❌ docker-transfer sync: 1 of 2 images failed")
    failures, images = summary.index("### Failures"), summary.index("### Images")
    assert failures < images
    assert f"`{acr.host}/mirror/bad`" in summary[failures:images]
    assert "linux/arm64" in summary[failures:images]
    assert f"`{acr.host}/mirror/good`" not in summary[failures:images]
    assert summary.count("| Tag | Platforms | Status | Size | Time |") == 2
    assert "✅ copied" in summary

    # the log: one group per image, one annotation, masks first
    both = out + err
    assert both.count("::group::") == 2 and both.count("::endgroup::") == 2
    errors = [line for line in both.splitlines() if line.startswith("::error")]
    assert len(errors) == 1
    assert errors[0].startswith(f"::error title={acr.host.replace(':', '%3A')}/mirror/bad::")
    masks = [line for line in out.splitlines() if line.startswith("::add-mask::")]
    assert {f"::add-mask::{PASSWORD}", f"::add-mask::{ALIYUN_PASSWORD}"} <= set(masks)
    assert f"::add-mask::{DOCKER_CONFIG_PASSWORD}" in masks
    assert out.splitlines()[: len(masks)] == masks  # before anything else on stdout

    # the secrets appear nowhere but in their mask lines
    for secret in (PASSWORD, ALIYUN_PASSWORD, DOCKER_CONFIG_PASSWORD):
        leaks = [line for line in both.splitlines() if secret in line and not line.startswith("::add-mask::")]
        assert leaks == []
        assert secret not in summary and secret not in report.read_text()

    results = json.loads(report.read_text())["results"]
    assert sorted(r["status"] for r in results) == ["copied", "failed", "failed"]


def test_masks_come_first_in_the_combined_log(
    setup: tuple[LocalRegistry, LocalRegistry, Path], tmp_path: Path
) -> None:
    hub, acr, config = setup
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "docker_transfer", *sync_args(hub, acr, config, report)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    first_other = next(i for i, line in enumerate(lines) if not line.startswith("::add-mask::"))
    assert first_other >= 3  # the two password variables and the docker config password
    assert f"::add-mask::{PASSWORD}" in lines[:first_other]
    assert PASSWORD not in "\n".join(lines[first_other:])
    assert sum(line.startswith("::error") for line in lines) == 1


def test_not_on_github_prints_no_workflow_commands(
    setup: tuple[LocalRegistry, LocalRegistry, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, acr, config = setup
    monkeypatch.delenv("GITHUB_ACTIONS")
    code = main(sync_args(hub, acr, config, tmp_path / "report.json"))
    out, err = capsys.readouterr()
    assert code == 1
    assert "::" not in "\n".join(line[:2] for line in (out + err).splitlines())
    assert (tmp_path / "step_summary.md").read_text() == "earlier step output\n"
    assert "start " in err and "[2/2]" in err  # plain one-line-per-event log


def test_quiet_prints_only_the_table(
    setup: tuple[LocalRegistry, LocalRegistry, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, acr, config = setup
    monkeypatch.delenv("GITHUB_ACTIONS")
    code = main([*sync_args(hub, acr, config, tmp_path / "report.json"), "-q"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == ""
    assert "TARGET:TAG" in out and "Failures:" in out
