"""action.yml, the reusable composite action: valid for GitHub, its scripts run for real.

check-jsonschema (test extra) validates it offline against its vendored copy of the
SchemaStore "github-action" schema; shellcheck (test extra) lints each script; the scripts run
under bash with a fake ``docker-transfer`` (and a fake ``python``) on PATH, as in
tests/test_workflow.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "syncImage.yaml"


def load() -> dict[str, Any]:
    doc = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def step(name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = load()["runs"]["steps"]
    (found,) = [s for s in steps if s.get("name") == name]
    return found


def tool(name: str) -> str:
    local = Path(sysconfig.get_path("scripts")) / name
    path = str(local) if local.is_file() and os.access(local, os.X_OK) else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return path


def check_jsonschema(schema: str, target: Path) -> subprocess.CompletedProcess[str]:
    args = [tool("check-jsonschema"), "--builtin-schema", schema, str(target)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


# --- validation --------------------------------------------------------------------------------


def test_action_matches_github_schema() -> None:
    done = check_jsonschema("vendor.github-actions", ACTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation done" in done.stdout


def test_schema_catches_a_broken_copy(tmp_path: Path) -> None:
    # The control: a composite step without `shell:` is refused by GitHub, and by the schema.
    text = ACTION.read_text(encoding="utf-8")
    broken = text.replace("      shell: bash\n", "", 1)
    assert broken != text
    bad = tmp_path / "action.yml"
    bad.write_text(broken, encoding="utf-8")
    done = check_jsonschema("vendor.github-actions", bad)
    assert done.returncode == 1
    assert "Schema validation errors" in done.stdout + done.stderr


def test_workflow_matches_github_schema() -> None:
    done = check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_scripts_pass_shellcheck(tmp_path: Path) -> None:
    scripts = [s for s in load()["runs"]["steps"] if "run" in s]
    assert len(scripts) == 2
    for number, spec in enumerate(scripts):
        assert spec["shell"] == "bash"
        path = tmp_path / f"step{number}.sh"
        path.write_text("#!/bin/bash\n" + spec["run"], encoding="utf-8")
        done = subprocess.run([tool("shellcheck"), str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


# --- structure ---------------------------------------------------------------------------------


def test_inputs_and_outputs() -> None:
    doc = load()
    assert doc["runs"]["using"] == "composite"
    inputs = doc["inputs"]
    assert {"config", "target-registry", "target-namespace", "dry-run", "only", "shard"} <= set(inputs)
    assert inputs["config"]["default"] == "images.json"
    assert inputs["dry-run"]["default"] == "false"
    assert all(not spec.get("required", False) for spec in inputs.values())
    assert all(spec.get("description") for spec in inputs.values())
    assert doc["outputs"]["report"]["value"] == "${{ steps.sync.outputs.report }}"
    assert step("Sync")["id"] == "sync"


def test_no_expression_is_pasted_into_a_script() -> None:
    scripts = [s["run"] for s in load()["runs"]["steps"] if "run" in s]
    for script in scripts:
        assert "${{" not in script  # inputs reach the scripts through env: only
    for name, value in step("Sync")["env"].items():
        assert value.startswith("${{ inputs."), name


def test_installs_the_pinned_versions_of_the_action_itself() -> None:
    install = step("Install docker-transfer")
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert '--constraint "$ACTION_PATH/requirements/workflow.txt" "$ACTION_PATH"' in install["run"]
    (python,) = [s for s in load()["runs"]["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert python["with"] == {"python-version": "${{ inputs.python-version }}"}


# --- the scripts, run for real -----------------------------------------------------------------


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


RECORD_ARGS = 'for a in "$@"; do printf "%s\\n" "$a"; done > "$ARGS_FILE"\n'


def run(
    script: str, tmp_path: Path, tool_body: str = RECORD_ARGS, **extra: str
) -> subprocess.CompletedProcess[str]:
    if shutil.which("bash") is None:
        pytest.skip("bash (on GitHub's runners) is needed to run the action's scripts")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake(bin_dir, "docker-transfer", tool_body)
    (tmp_path / "runner-temp").mkdir(exist_ok=True)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ARGS_FILE": str(tmp_path / "args.txt"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_PATH": str(tmp_path / "path.txt"),
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
        **extra,
    }
    # A composite step with `shell: bash` runs `bash --noprofile --norc -eo pipefail {0}`.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def inputs(**given: str) -> dict[str, str]:
    """The Sync step's env as GitHub fills it: every input, its default when not given."""
    defaults = {name: str(spec.get("default", "")) for name, spec in load()["inputs"].items()}
    values = {**defaults, **given}
    mapping = {
        name: value.removeprefix("${{ inputs.").removesuffix(" }}")
        for name, value in step("Sync")["env"].items()
    }
    return {env_name: values[input_name] for env_name, input_name in mapping.items()}


def test_sync_script_defaults(tmp_path: Path) -> None:
    done = run(step("Sync")["run"], tmp_path, **inputs())
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert args == ["sync", "--config", "images.json", "--report", "docker-transfer-report.json"]
    assert (tmp_path / "output.txt").read_text() == "report=docker-transfer-report.json\n"


def test_sync_script_every_input_and_hostile_globs(tmp_path: Path) -> None:
    (tmp_path / "nginx-decoy").write_text("")  # an unquoted glob would expand to this
    given = inputs(
        **{
            "config": "mirror/my images.json",
            "target-registry": "registry.cn-shanghai.aliyuncs.com",
            "target-namespace": "team",
            "dry-run": "true",
            "only": "nginx* $(touch pwned)",
            "shard": "1/3",
            "report": "out/report-1.json",
        }
    )
    done = run(step("Sync")["run"], tmp_path, **given)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert args == [
        "sync",
        "--config",
        "mirror/my images.json",
        "--report",
        "out/report-1.json",
        "--target-registry",
        "registry.cn-shanghai.aliyuncs.com",
        "--target-namespace",
        "team",
        "--dry-run",
        "--shard",
        "1/3",
        "--only",
        "nginx*",
        "--only",
        "$(touch",
        "--only",
        "pwned)",
    ]
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "output.txt").read_text() == "report=out/report-1.json\n"


def test_sync_script_report_output_is_set_when_the_sync_fails(tmp_path: Path) -> None:
    done = run(step("Sync")["run"], tmp_path, "exit 1\n", **inputs())
    assert done.returncode == 1  # the step (and the caller's job) fails like the sync
    assert (tmp_path / "output.txt").read_text() == "report=docker-transfer-report.json\n"


def test_sync_script_rejects_a_bad_dry_run(tmp_path: Path) -> None:
    done = run(step("Sync")["run"], tmp_path, **inputs(**{"dry-run": "yes"}))
    assert done.returncode == 2
    assert done.stdout.startswith("::error title=dry-run::dry-run must be true or false, got 'yes'")
    assert not (tmp_path / "args.txt").exists()


def test_install_script_uses_its_own_venv_and_the_pins(tmp_path: Path) -> None:
    # A fake `python` whose `-m venv DIR` makes DIR/bin/python, which records what it is asked.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    venv_python = "#!/bin/sh\n" + RECORD_ARGS
    make_venv = [
        '[ "$1 $2" = "-m venv" ] || exit 9',
        'mkdir -p "$3/bin"',
        "cat > \"$3/bin/python\" <<'EOF'",
        venv_python + "EOF",
        'chmod +x "$3/bin/python"',
    ]
    fake(bin_dir, "python", "\n".join(make_venv) + "\n")
    action_path = tmp_path / "action"
    done = run(step("Install docker-transfer")["run"], tmp_path, ACTION_PATH=str(action_path))
    assert done.returncode == 0, done.stderr
    venv = tmp_path / "runner-temp" / "docker-transfer-venv"
    assert (tmp_path / "path.txt").read_text() == f"{venv}/bin\n"
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert args == [
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--constraint",
        f"{action_path}/requirements/workflow.txt",
        str(action_path),
    ]


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    # docs/github-actions.md shows how to call the action; that example must be a valid workflow
    # and use only inputs and outputs the action has.
    text = (ROOT / "docs" / "github-actions.md").read_text(encoding="utf-8")
    section = text[text.index("## The reusable action") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))]
    workflow = tmp_path / "example.yaml"
    workflow.write_text("name: mirror\non: workflow_dispatch\n" + example, encoding="utf-8")
    done = check_jsonschema("vendor.github-workflows", workflow)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = yaml.safe_load(example)
    (use,) = [s for s in doc["jobs"]["mirror"]["steps"] if s.get("uses", "").endswith("/docker-transfer@v1")]
    assert set(use["with"]) <= set(load()["inputs"])
    assert "steps.mirror.outputs.report" in example and use["id"] == "mirror"
