"""`docker-transfer report merge`: shard reports → one JSON report, one table, one job summary."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from docker_transfer.cli import main
from docker_transfer.report import Report, TagResult

START = datetime(2025, 1, 2, 2, 0, 0, tzinfo=UTC)
GOLDEN = Path(__file__).parent / "golden"


def shard_report(index: int, results: list[TagResult], **extra: Any) -> dict[str, Any]:
    report = Report(
        started=START + timedelta(seconds=index),
        finished=START + timedelta(seconds=60 + index),
        results=results,
    )
    return {**report.to_dict(), **extra}


def result(target: str, tag: str, status: str = "copied", **kw: Any) -> TagResult:
    return TagResult(
        source=f"docker.io/library/{target}:{tag}",
        target=f"acr.example/mirror/{target}",
        tag=tag,
        status=status,  # type: ignore[arg-type]
        platforms=["linux/amd64"],
        bytes_copied=1000 if status == "copied" else 0,
        duration_s=2.0,
        **kw,
    )


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    ok = shard_report(
        0,
        [result("nginx", "latest"), result("ubuntu", "22.04", "unchanged")],
        ratelimit=[{"host": "registry-1.docker.io", "limit": 100, "remaining": 80, "window_s": 21600}],
    )
    bad = shard_report(
        1,
        [result("redis", "7", "failed", error="authentication failed at acr.example")],
        ratelimit={"limit": 100, "remaining": 61, "host": "registry-1.docker.io"},  # the object form too
    )
    return [write(tmp_path / "report-0.json", ok), write(tmp_path / "report-1.json", bad)]


def merge(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", "merge", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def not_on_github(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


def test_merge_writes_json_table_and_appends_summary(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = write(tmp_path / "step-summary.md", "# earlier step\n")
    output = tmp_path / "out" / "report.json"
    code, out, _ = merge(capsys, *map(str, shards), "--output", str(output), "--summary", str(summary))
    assert code == 1  # redis failed
    merged = json.loads(output.read_text())
    assert [(r["target"].rsplit("/", 1)[1], r["tag"]) for r in merged["results"]] == [
        ("nginx", "latest"),
        ("redis", "7"),
        ("ubuntu", "22.04"),
    ]
    assert merged["summary"]["failed"] == 1 and merged["summary"]["copied"] == 1
    assert merged["started"] == "2025-01-02T02:00:00Z" and merged["finished"] == "2025-01-02T02:01:01Z"
    assert merged["ratelimit"] == [
        {"host": "registry-1.docker.io", "limit": 100, "remaining": 61, "window_s": None}
    ]
    assert Report.from_json(output.read_text()).summary() == Report.from_dict(merged).summary()
    text = summary.read_text()
    assert text.startswith("# earlier step\n")  # appended, never truncated
    assert "1 of 3 images failed" in text
    assert "61 of 100 requests remaining" in text
    assert "authentication failed at acr.example" in text
    assert "acr.example/mirror/redis:7" in out and "Failures:" in out


def test_merge_summary_golden(shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "summary.md"
    missing = tmp_path / "report-2.json"
    merge(capsys, *map(str, shards), str(missing), "--summary", str(summary), "--title", "nightly sync")
    text = summary.read_text().replace(str(tmp_path) + os.sep, "")
    golden = GOLDEN / "merge_summary.md"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_all_ok_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.json", shard_report(0, [result("nginx", "latest")]))
    b = write(tmp_path / "b.json", shard_report(1, []))
    code, out, err = merge(capsys, str(a), str(b))
    assert code == 0, err
    assert "1 tag: 1 copied, 0 unchanged, 0 failed" in out


def test_missing_report_is_listed_and_fails(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = shards[0]
    gone = tmp_path / "report-7.json"
    summary, output = tmp_path / "summary.md", tmp_path / "merged.json"
    code, _, err = merge(capsys, str(ok), str(gone), "--summary", str(summary), "--output", str(output))
    assert code == 1
    assert f"missing report {gone}" in err
    text = summary.read_text()
    assert text.splitlines()[0] == "## ❌ docker-transfer sync: 1 report missing"
    assert f"| `{gone}` | - | - | missing report" in text
    assert json.loads(output.read_text())["missing_reports"] == [str(gone)]
    assert "::error" not in err  # not on GitHub


def test_every_report_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "summary.md"
    code, out, _ = merge(
        capsys, str(tmp_path / "r0.json"), str(tmp_path / "r1.json"), "--summary", str(summary)
    )
    assert code == 1
    assert "2 reports missing" in summary.read_text()
    assert "(no results)" in out


def test_missing_report_annotated_on_github(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, _, err = merge(capsys, str(shards[0]), str(tmp_path / "report-3.json"))
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and errors[0].startswith("::error title=missing report::")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "invalid report: line 1"),
        (json.dumps({"version": 4, "started": "2025-01-01T00:00:00Z", "results": []}), "unsupported version"),
        (json.dumps({"version": 1, "started": "yesterday", "results": []}), "not an ISO 8601 time"),
        (json.dumps([1, 2]), "expected a JSON object"),
        (b"\xff\xfe{".decode("latin-1"), "invalid report"),
    ],
)
def test_unreadable_report_exits_2_and_writes_nothing(
    content: str, expected: str, shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write(tmp_path / "broken.json", content)
    output, summary = tmp_path / "merged.json", tmp_path / "summary.md"
    code, out, err = merge(
        capsys, str(shards[0]), str(broken), "--output", str(output), "--summary", str(summary)
    )
    assert code == 2
    assert str(broken) in err and expected in err
    assert "Traceback" not in err
    assert not output.exists() and not summary.exists() and out == ""


def test_directory_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = merge(capsys, str(tmp_path))
    assert code == 2 and "cannot read the file" in err


def test_no_arguments_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = merge(capsys)
    assert code == 2 and "Missing argument" in err


def test_same_file_twice_counts_once(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "merged.json"
    merge(capsys, str(shards[0]), str(shards[0]), "--output", str(output))
    assert len(json.loads(output.read_text())["results"]) == 2


def test_merge_keeps_the_config_order(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [
        {"source": "redis:7", "target": "redis", "tags": ["7"], "architectures": ["amd64"]},
        {"source": "ubuntu:22.04", "target": "ubuntu", "tags": ["22.04"], "architectures": ["amd64"]},
        {"source": "nginx", "target": "nginx", "tags": ["latest"], "architectures": ["amd64"]},
    ]
    config = write(tmp_path / "images.json", json.dumps(entries))
    output, summary = tmp_path / "merged.json", tmp_path / "summary.md"
    args = ["--output", str(output), "--summary", str(summary), "--config", str(config)]
    _, out, _ = merge(capsys, *map(str, shards), *args)
    names = [r["target"].rsplit("/", 1)[1] for r in json.loads(output.read_text())["results"]]
    assert names == ["redis", "ubuntu", "nginx"]  # sorted by name it would be nginx, redis, ubuntu
    table = [line.split(":")[0] for line in out.splitlines() if line.startswith("acr.example/")]
    assert table == ["acr.example/mirror/redis", "acr.example/mirror/ubuntu", "acr.example/mirror/nginx"]
    headings = [line for line in summary.read_text().splitlines() if line.startswith("#### ")]
    assert ["redis" in headings[0], "ubuntu" in headings[1], "nginx" in headings[2]] == [True] * 3


def test_merge_with_a_broken_config_warns_and_sorts(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path / "images.json", "[{")
    output = tmp_path / "merged.json"
    code, _, err = merge(capsys, *map(str, shards), "--output", str(output), "--config", str(config))
    assert code == 1  # redis failed, as without --config
    assert f"warning: sorting by target and tag instead of the order of {config}" in err
    names = [r["target"].rsplit("/", 1)[1] for r in json.loads(output.read_text())["results"]]
    assert names == ["nginx", "redis", "ubuntu"]


def test_a_version_1_shard_merges_with_version_2_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shards written by older releases (report v1, v2) still merge into a v3 report."""
    old = shard_report(0, [result("nginx", "latest", error="partial: published without linux/s390x")])
    old["version"] = 1
    for row in old["results"]:
        del row["skipped"], row["warnings"]
    new = shard_report(
        1, [result("redis", "7", skipped=["linux/s390x"], warnings=["acr refused attestations"])]
    )
    out_path = tmp_path / "merged.json"
    paths = [write(tmp_path / "old.json", old), write(tmp_path / "new.json", new)]
    code = main(["report", "merge", *map(str, paths), "--output", str(out_path)])
    out, _ = capsys.readouterr()
    assert code == 0, out
    merged = json.loads(out_path.read_text())
    assert merged["version"] == 3
    rows = {r["target"].rsplit("/", 1)[1]: r for r in merged["results"]}
    assert rows["nginx"]["destination"] is None  # v1 rows do not say where they went
    assert rows["nginx"]["skipped"] == [] and rows["nginx"]["error"].startswith("partial:")
    assert rows["redis"]["skipped"] == ["linux/s390x"] and rows["redis"]["warnings"] == [
        "acr refused attestations"
    ]
    assert "Warnings:" in out and "Skipped platforms" in out
