"""A run refused before it started (invalid images.json): report, table, summary, annotations (10.6)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from docker_transfer.cli.sync import secrets_to_mask
from docker_transfer.config import parse_config
from docker_transfer.errors import ConfigError, UsageError
from docker_transfer.report import ConfigProblem, Report, config_problems, merge_reports
from docker_transfer.reporttable import render_table
from docker_transfer.summary import config_error_command, render_summary

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def problems_of(text: str) -> list[ConfigProblem]:
    try:
        parse_config(text, "cfg/images.json")
    except ConfigError as exc:
        return config_problems(exc)
    raise AssertionError("the config parsed")


def test_problems_carry_the_line_config_py_reports() -> None:
    text = '[\n  {"source": "nginx", "target": "a", "tags": ["1"],\n   "architectures": ["sparc"]},\n  {}\n]'
    lines = [(p.file, p.line) for p in problems_of(text)]
    assert lines[0] == ("cfg/images.json", 3)
    assert all(line == 4 for _, line in lines[1:])
    (syntax,) = problems_of('[\n  {"source": "x",}\n]')
    assert syntax.line == 2 and "trailing comma" in syntax.message
    (clash,) = problems_of(
        '[{"source": "a", "target": "t", "tags": ["1"], "architectures": ["amd64"]},\n'
        ' {"source": "b", "target": "t", "tags": ["1"], "architectures": ["amd64"]}]'
    )
    assert clash.line == 2  # "(lines 2 and 1)": the later entry


def test_a_usage_error_has_no_file() -> None:
    assert config_problems(UsageError("no target namespace")) == [ConfigProblem("no target namespace")]


def test_report_round_trips_config_errors_and_exits_2() -> None:
    report = Report(NOW, NOW, config_errors=[ConfigProblem("bad", "images.json", 3), ConfigProblem("no ns")])
    data = json.loads(report.to_json())
    assert data["config_errors"] == [
        {"file": "images.json", "line": 3, "message": "bad"},
        {"file": None, "line": None, "message": "no ns"},
    ]
    again = Report.from_dict(data)
    assert again.config_errors == report.config_errors and again.exit_code() == 2
    assert "config_errors" not in Report(NOW, NOW).to_dict()
    data["config_errors"] = [{"message": 5}, "x", {"message": "kept", "line": True, "file": 3}]
    assert Report.from_dict(data).config_errors == [ConfigProblem("kept")]


def test_merge_keeps_each_problem_once_and_table_lists_them() -> None:
    shard = Report(NOW, NOW, config_errors=[ConfigProblem("bad", "images.json", 3)])
    merged = merge_reports([shard, Report(NOW, NOW, config_errors=list(shard.config_errors))])
    assert merged.config_errors == shard.config_errors
    table = render_table(merged)
    assert "Not started: the configuration is invalid:" in table and "images.json:3: bad" in table


def test_annotation_points_at_file_and_line_and_escapes() -> None:
    line = config_error_command(ConfigProblem("50% wrong,\nreally", "dir,x/images:1.json", 7))
    assert line == (
        "::error file=dir%2Cx/images%3A1.json,line=7,title=invalid images%3A1.json::50%25 wrong,%0Areally"
    )
    assert (
        config_error_command(ConfigProblem("no ns"))
        == "::error title=docker-transfer sync not started::no ns"
    )


def test_summary_headline_and_section() -> None:
    report = Report(NOW, NOW, config_errors=[ConfigProblem("a `b` | c", "images.json", 2)])
    text = render_summary(report, title="sync")
    assert text.startswith("## ❌ sync: not started, 1 configuration problem\n")
    assert "### Invalid configuration: nothing was copied" in text
    assert "- `images.json:2`: a \\`b\\` \\| c" in text


def test_containers_auth_passwords_are_masked_up_front(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    encoded = base64.b64encode(b"podman:podman-Secr3t-x").decode()
    auth.write_text(json.dumps({"auths": {"quay.io": {"auth": encoded}}}))
    environ = {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(auth)}
    assert "podman-Secr3t-x" in secrets_to_mask(environ)
