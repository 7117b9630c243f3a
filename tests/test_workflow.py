"""The GitHub workflow: actionlint finds nothing, the structure is what users rely on, the scripts work.

actionlint (and shellcheck, which it runs on every ``run:`` script) come from the ``test`` extra.
A missing actionlint fails this module: a workflow nobody linted must not pass as linted.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "syncImage.yaml"


def load() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    if True in doc:  # YAML 1.1 reads the key `on` as the boolean true
        doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict[str, Any], job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc["jobs"][job]["steps"]
    return found


def step_named(doc: dict[str, Any], job: str, name: str) -> dict[str, Any]:
    (step,) = [s for s in steps(doc, job) if s.get("name") == name]
    return step


def tool(name: str) -> str | None:
    """``name`` from this Python's scripts directory (a venv's bin, not always on PATH), else PATH."""
    local = Path(sysconfig.get_path("scripts")) / name
    return str(local) if local.is_file() and os.access(local, os.X_OK) else shutil.which(name)


def actionlint() -> str:
    path = tool("actionlint")
    if path is None:
        pytest.fail(
            "actionlint is not installed: pip install -e '.[test]' (it brings actionlint and shellcheck)"
        )
    return path


def run_actionlint(target: Path) -> subprocess.CompletedProcess[str]:
    args = [actionlint(), "-no-color", "-verbose"]
    shellcheck = tool("shellcheck")
    if shellcheck:
        args.append(f"-shellcheck={shellcheck}")
    return subprocess.run([*args, str(target)], capture_output=True, text=True, timeout=120, check=False)


# --- actionlint --------------------------------------------------------------------------------


def test_actionlint_reports_nothing() -> None:
    version = subprocess.run([actionlint(), "-version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and "actionlint" in version.stdout
    done = run_actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    # -verbose proves actionlint really read this file (not an empty run)
    assert "syncImage.yaml" in done.stderr
    if tool("shellcheck"):
        assert 'Rule "shellcheck" was disabled' not in done.stderr


def test_actionlint_catches_a_broken_copy(tmp_path: Path) -> None:
    # The control: the same linter on a copy with an unquoted array and a wrong action input.
    text = WORKFLOW.read_text(encoding="utf-8")
    broken = text.replace('docker-transfer sync "${args[@]}"', "docker-transfer sync $args").replace(
        "python-version:", "python-versions:"
    )
    assert broken != text
    bad = tmp_path / "broken.yaml"
    bad.write_text(broken, encoding="utf-8")
    done = run_actionlint(bad)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "python-versions" in done.stdout
    if tool("shellcheck"):
        assert "SC2128" in done.stdout or "SC2086" in done.stdout


# --- structure ---------------------------------------------------------------------------------


def test_triggers_and_inputs() -> None:
    doc = load()
    assert doc["name"] == "Sync images to Aliyun"
    assert doc["on"]["schedule"] == [{"cron": "0 2 * * *"}]
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"dry_run", "only", "shards"}
    assert inputs["dry_run"]["type"] == "boolean" and inputs["dry_run"]["default"] is False
    assert inputs["only"]["type"] == "string" and inputs["only"]["default"] == ""
    assert inputs["shards"]["default"] == 1
    assert all(not spec.get("required", False) for spec in inputs.values())  # schedule runs have none


def test_read_only_and_never_overlapping() -> None:
    doc = load()
    assert doc["permissions"] == {"contents": "read"}
    assert doc["concurrency"]["group"]
    assert doc["concurrency"]["cancel-in-progress"] is False
    for job in doc["jobs"].values():
        assert "permissions" not in job  # nothing widens the workflow's read-only token
        assert isinstance(job.get("timeout-minutes"), int)


def test_sync_job() -> None:
    doc = load()
    job = doc["jobs"]["sync"]
    assert job["timeout-minutes"] == 120
    assert job["needs"] == "plan"
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    uses = [s.get("uses", "") for s in job["steps"]]
    assert "actions/checkout@v4" in uses
    (python,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert python["with"] == {"python-version": "3.11"}
    install = step_named(doc, "sync", "Install docker-transfer")["run"].strip()
    assert install.endswith("--constraint requirements/workflow.txt .")
    assert (ROOT / "requirements" / "workflow.txt").is_file()
    sync = step_named(doc, "sync", "Sync")
    for name in ("ALIYUN_USERNAME", "ALIYUN_PASSWORD", "ALIYUN_NAMESPACE", "ALIYUN_REGISTRY"):
        assert sync["env"][name] == f"${{{{ secrets.{name} }}}}"
    assert "docker-transfer sync" in sync["run"]
    assert '--shard "$SHARD/$SHARDS"' in sync["run"] and '--report "report-$SHARD.json"' in sync["run"]
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@v4")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "report-${{ matrix.shard }}.json"


def test_installs_are_pinned_and_uncached() -> None:
    # Every job installs the same pinned versions; no job saves a cache the parallel shards would
    # race to reserve ("Unable to reserve cache with key …").
    doc = load()
    for name, job in doc["jobs"].items():
        for step in job["steps"]:
            assert not step.get("uses", "").startswith("actions/cache"), name
            assert "cache" not in step.get("with", {}), f"{name}: {step}"
            if "pip install" in step.get("run", ""):
                assert "--constraint requirements/workflow.txt" in step["run"], name


def test_summary_job_merges_every_shard() -> None:
    doc = load()
    job = doc["jobs"]["summary"]
    assert "sync" in job["needs"]
    assert "always()" in job["if"]
    uses = [s.get("uses", "") for s in job["steps"]]
    assert any(u.startswith("actions/download-artifact@v4") for u in uses)
    merge = step_named(doc, "summary", "Merge the reports into the job summary")
    assert "docker-transfer report merge" in merge["run"]
    assert '--summary "$GITHUB_STEP_SUMMARY"' in merge["run"]
    assert "--config images.json" in merge["run"]


def test_no_expression_is_pasted_into_a_script() -> None:
    # ${{ … }} inside run: is substituted before the shell parses it: script injection.
    doc = load()
    scripts = [(job, s["run"]) for job, spec in doc["jobs"].items() for s in spec["steps"] if "run" in s]
    assert len(scripts) >= 4
    for job, script in scripts:
        assert "${{" not in script, f"{job}: pass values through env:, not ${{{{ }}}} in run:"
    text = WORKFLOW.read_text(encoding="utf-8")
    assert not re.search(r"run:.*\$\{\{\s*(inputs|github\.event)\.", text)


# --- the scripts, run for real -----------------------------------------------------------------


def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "docker-transfer"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$ARGS_FILE"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_ENV": str(tmp_path / "env.txt"),
        "ARGS_FILE": str(tmp_path / "args.txt"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    return {**env, **extra}


def run_script(script: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if shutil.which("bash") is None or shutil.which("jq") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("bash and jq are needed to run the workflow's scripts (make setup installs jq)")
        pytest.skip("bash and jq (both on GitHub's runners) are needed to run the workflow's scripts")
    # GitHub runs `run:` with `bash -e {0}` (plus pipefail when shell: bash is explicit)
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("shards", "matrix"), [("", "[0]"), ("1", "[0]"), ("3", "[0,1,2]"), ("04", "[0,1,2,3]"), ("16", None)]
)
def test_plan_script(shards: str, matrix: str | None, tmp_path: Path) -> None:
    script = step_named(load(), "plan", "Compute the shard matrix")["run"]
    done = run_script(script, tmp_path, script_env(tmp_path, SHARDS=shards))
    assert done.returncode == 0, done.stdout + done.stderr
    output = dict(line.split("=", 1) for line in (tmp_path / "output.txt").read_text().splitlines())
    expected = matrix or "[" + ",".join(str(i) for i in range(16)) + "]"
    assert output == {"count": str(len(expected.strip("[]").split(","))), "matrix": expected}


@pytest.mark.parametrize("shards", ["0", "17", "-1", "2.5", "two", "1 2"])
def test_plan_script_rejects(shards: str, tmp_path: Path) -> None:
    script = step_named(load(), "plan", "Compute the shard matrix")["run"]
    done = run_script(script, tmp_path, script_env(tmp_path, SHARDS=shards))
    assert done.returncode == 1
    assert done.stdout.startswith("::error title=shards::")


def test_sync_script_defaults_for_scheduled_runs(tmp_path: Path) -> None:
    script = step_named(load(), "sync", "Sync")["run"]
    env = script_env(tmp_path, DRY_RUN="", ONLY="", SHARD="0", SHARDS="1")
    done = run_script(script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert args == ["sync", "--config", "images.json", "--report", "report-0.json", "--shard", "0/1"]


def test_sync_script_manual_inputs_are_data_not_code(tmp_path: Path) -> None:
    (tmp_path / "nginx-decoy").write_text("")  # an unquoted glob would expand to this
    script = step_named(load(), "sync", "Sync")["run"]
    only = "nginx* $(touch pwned) ;rm"
    env = script_env(tmp_path, DRY_RUN="true", ONLY=only, SHARD="2", SHARDS="3")
    done = run_script(script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert args == [
        "sync",
        "--config",
        "images.json",
        "--report",
        "report-2.json",
        "--shard",
        "2/3",
        "--dry-run",
        "--only",
        "nginx*",
        "--only",
        "$(touch",
        "--only",
        "pwned)",
        "--only",
        ";rm",
    ]
    assert not (tmp_path / "pwned").exists()


def test_merge_script_lists_every_expected_report(tmp_path: Path) -> None:
    script = step_named(load(), "summary", "Merge the reports into the job summary")["run"]
    done = run_script(script, tmp_path, script_env(tmp_path, SHARDS="3"))
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert args == [
        "report",
        "merge",
        "reports/report-0.json",
        "reports/report-1.json",
        "reports/report-2.json",
        "--config",
        "images.json",
        "--output",
        "report.json",
        "--summary",
        str(tmp_path / "summary.md"),
    ]


def test_merge_script_one_shard_does_not_repeat_its_summary(tmp_path: Path) -> None:
    # The one sync job already put this very summary on its page: the merged report is still
    # written and uploaded, but the run's page does not show the same summary twice.
    script = step_named(load(), "summary", "Merge the reports into the job summary")["run"]
    done = run_script(script, tmp_path, script_env(tmp_path, SHARDS="1"))
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert args == [
        "report",
        "merge",
        "reports/report-0.json",
        "--config",
        "images.json",
        "--output",
        "report.json",
    ]


# --- source registry logins --------------------------------------------------------------------

HUB_TOKEN = "dckr_pat_Secr3t-hub-4471"
GHCR_TOKEN = "ghp_Secr3t-ghcr-9x2"


def run_login(tmp_path: Path, **secrets: str) -> subprocess.CompletedProcess[str]:
    script = step_named(load(), "sync", "Log in to the source registries")["run"]
    names = ("DOCKERHUB_USERNAME", "DOCKERHUB_TOKEN", "GHCR_USERNAME", "GHCR_TOKEN")
    env = script_env(tmp_path, **{name: secrets.get(name, "") for name in names})  # unset secrets: ""
    return run_script(script, tmp_path, env)


def test_login_step_env_comes_from_secrets() -> None:
    step = step_named(load(), "sync", "Log in to the source registries")
    for name in ("DOCKERHUB_USERNAME", "DOCKERHUB_TOKEN", "GHCR_USERNAME", "GHCR_TOKEN"):
        assert step["env"][name] == f"${{{{ secrets.{name} }}}}"
    names = [s.get("name") for s in steps(load(), "sync")]
    assert names.index("Log in to the source registries") < names.index("Sync")


def test_login_writes_a_docker_config_the_tool_reads(tmp_path: Path) -> None:
    from docker_transfer.cli.sync import secrets_to_mask  # noqa: PLC0415
    from docker_transfer.registry.credentials import DockerConfig, config_path  # noqa: PLC0415

    done = run_login(
        tmp_path,
        DOCKERHUB_USERNAME="hubuser",
        DOCKERHUB_TOKEN=HUB_TOKEN,
        GHCR_USERNAME="octo",
        GHCR_TOKEN=GHCR_TOKEN,
    )
    assert done.returncode == 0, done.stderr
    for secret in (HUB_TOKEN, GHCR_TOKEN):
        assert secret not in done.stdout + done.stderr
    (line,) = (tmp_path / "env.txt").read_text().splitlines()
    name, _, directory = line.partition("=")
    assert name == "DOCKER_CONFIG" and directory.startswith(str(tmp_path / "runner-temp"))
    path = config_path({"DOCKER_CONFIG": directory})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    docker = DockerConfig.load(path)
    hub = asyncio.run(docker.lookup("registry-1.docker.io"))  # the host docker.io pulls really go to
    assert hub is not None and (hub.username, hub.password) == ("hubuser", HUB_TOKEN)
    ghcr = asyncio.run(docker.lookup("ghcr.io"))
    assert ghcr is not None and (ghcr.username, ghcr.password) == ("octo", GHCR_TOKEN)
    assert asyncio.run(docker.lookup("quay.io")) is None
    # sync masks them on GitHub before printing anything
    assert {HUB_TOKEN, GHCR_TOKEN} <= set(secrets_to_mask({"DOCKER_CONFIG": directory}))


def test_login_without_secrets_stays_anonymous(tmp_path: Path) -> None:
    done = run_login(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "anonymously" in done.stdout
    assert not (tmp_path / "env.txt").exists()
    assert list((tmp_path / "runner-temp").iterdir()) == []


def test_login_with_only_docker_hub(tmp_path: Path) -> None:
    from docker_transfer.registry.credentials import DockerConfig  # noqa: PLC0415

    done = run_login(tmp_path, DOCKERHUB_USERNAME="hubuser", DOCKERHUB_TOKEN=HUB_TOKEN)
    assert done.returncode == 0, done.stderr
    directory = (tmp_path / "env.txt").read_text().strip().partition("=")[2]
    docker = DockerConfig.load(Path(directory) / "config.json")
    assert asyncio.run(docker.lookup("docker.io")) is not None
    assert asyncio.run(docker.lookup("ghcr.io")) is None


@pytest.mark.parametrize("given", ["DOCKERHUB_USERNAME", "DOCKERHUB_TOKEN", "GHCR_TOKEN"])
def test_login_with_half_a_pair_fails(given: str, tmp_path: Path) -> None:
    done = run_login(tmp_path, **{given: "something"})
    assert done.returncode == 1
    assert done.stdout.startswith("::error title=source credentials::set both ")
    assert not (tmp_path / "env.txt").exists()
