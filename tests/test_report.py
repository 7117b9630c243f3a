"""Tests for docker_transfer.report (the sync report model)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from docker_transfer.errors import UsageError
from docker_transfer.report import (
    Report,
    TagResult,
    human_duration,
    human_size,
    merge_reports,
)
from docker_transfer.reporttable import render_table

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
NGINX = "docker.io/library/nginx:latest"
WEBUI = "ghcr.io/open-webui/open-webui:main"


def sample() -> Report:
    report = Report(started=T0, finished=T0 + timedelta(seconds=95))
    report.add(
        TagResult(NGINX, "nginx", "latest", "copied", D1, ["linux/amd64", "linux/arm64"], 123_456_789, 80.25)
    )
    report.add(TagResult(NGINX, "nginx", "latest-amd64", "unchanged", D2, ["linux/amd64"], 0, 0.4))
    report.add(
        TagResult(
            WEBUI, "open-webui", "main", "failed", None, ["linux/amd64"], 0, 3.2, "denied: no push access"
        )
    )
    return report


# --- model --------------------------------------------------------------------------------


def test_summary_counts_and_bytes() -> None:
    assert sample().summary() == {
        "copied": 1,
        "unchanged": 1,
        "failed": 1,
        "planned": 0,
        "interrupted": 0,
        "bytes_copied": 123_456_789,
    }


def test_summary_counts_planned() -> None:
    report = Report(started=T0)
    report.add(TagResult(NGINX, "nginx", "latest", "planned"))
    report.add(TagResult(NGINX, "nginx", "1.0", "planned"))
    assert report.summary()["planned"] == 2


def test_failed_and_exit_code() -> None:
    report = sample()
    assert [r.tag for r in report.failed] == ["main"]
    assert report.exit_code() == 1
    report.results.pop()
    assert report.failed == []
    assert report.exit_code() == 0
    assert Report(started=T0).exit_code() == 0


def test_unknown_status_rejected() -> None:
    with pytest.raises(ValueError, match="unknown status 'done'"):
        TagResult(NGINX, "nginx", "latest", "done")  # type: ignore[arg-type]


def test_defaults() -> None:
    result = TagResult(NGINX, "nginx", "latest", "planned")
    assert (result.digest, result.platforms, result.bytes_copied, result.duration_s, result.error) == (
        None,
        [],
        0,
        0.0,
        None,
    )
    other = TagResult(NGINX, "nginx", "x", "planned")
    other.platforms.append("linux/amd64")
    assert result.platforms == []


# --- JSON -----------------------------------------------------------------------------------


def test_to_dict_shape() -> None:
    data = sample().to_dict()
    assert list(data) == ["version", "started", "finished", "results", "summary"]
    assert data["version"] == 3
    assert data["started"] == "2025-01-02T03:04:05Z"
    assert data["finished"] == "2025-01-02T03:05:40Z"
    assert data["results"][0] == {
        "source": NGINX,
        "target": "nginx",
        "tag": "latest",
        "status": "copied",
        "digest": D1,
        "platforms": ["linux/amd64", "linux/arm64"],
        "bytes_copied": 123_456_789,
        "duration_s": 80.25,
        "error": None,
        "skipped": [],
        "warnings": [],
        "destination": None,
    }
    assert set(data["summary"]) >= {"copied", "unchanged", "failed", "bytes_copied"}


def test_unfinished_report_has_null_finished() -> None:
    assert Report(started=T0).to_dict()["finished"] is None


def test_non_utc_offset_kept() -> None:
    started = datetime(2025, 1, 2, 11, 4, 5, tzinfo=timezone(timedelta(hours=8)))
    assert Report(started=started).to_dict()["started"] == "2025-01-02T11:04:05+08:00"


def test_duration_rounded_to_milliseconds() -> None:
    report = Report(started=T0)
    report.add(TagResult(NGINX, "nginx", "latest", "copied", duration_s=1.23456789))
    assert report.to_dict()["results"][0]["duration_s"] == 1.235


def test_to_json_indented_with_trailing_newline() -> None:
    text = sample().to_json()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.startswith('{\n  "version": 3,\n')
    assert json.loads(text) == sample().to_dict()


def test_round_trip() -> None:
    original = sample()
    again = Report.from_json(original.to_json())
    assert again == original
    assert again.started.tzinfo is not None
    assert Report.from_dict(original.to_dict()) == original


def test_from_dict_ignores_unknown_keys_and_given_summary() -> None:
    data = sample().to_dict()
    data["future"] = {"x": 1}
    data["results"][0]["future"] = True
    data["summary"] = {"copied": 99}
    report = Report.from_dict(data)
    assert report.summary()["copied"] == 1


def test_from_dict_optional_result_keys_default() -> None:
    data = {
        "version": 1,
        "started": "2025-01-02T03:04:05+00:00",
        "finished": None,
        "results": [{"source": NGINX, "target": "nginx", "tag": "latest", "status": "planned"}],
    }
    report = Report.from_dict(data)
    assert report.finished is None
    assert report.results == [TagResult(NGINX, "nginx", "latest", "planned")]


@pytest.mark.parametrize("version", [None, 4, "1", True])
def test_from_dict_rejects_other_versions(version: Any) -> None:
    data = sample().to_dict()
    data["version"] = version
    with pytest.raises(UsageError, match="unsupported version"):
        Report.from_dict(data)


def test_from_dict_rejects_non_object() -> None:
    with pytest.raises(UsageError, match="expected a JSON object, got list"):
        Report.from_dict([])  # type: ignore[arg-type]


def test_from_dict_lists_every_problem() -> None:
    data = sample().to_dict()
    data["started"] = "yesterday"
    data["results"][0]["status"] = "done"
    data["results"][1]["bytes_copied"] = -1
    data["results"][2]["platforms"] = "linux/amd64"
    del data["results"][2]["tag"]
    with pytest.raises(UsageError) as info:
        Report.from_dict(data)
    message = str(info.value)
    assert message.splitlines() == [
        "invalid report:",
        "  - started: 'yesterday' is not an ISO 8601 time",
        '  - results[0].status: expected one of copied, unchanged, failed, planned, interrupted, got "done"',
        "  - results[1].bytes_copied: expected a non-negative integer",
        "  - results[2].tag: expected a string, got null",
        "  - results[2].platforms: expected a list of strings",
    ]


def test_from_dict_missing_results_and_started() -> None:
    with pytest.raises(UsageError) as info:
        Report.from_dict({"version": 1})
    assert str(info.value).splitlines()[1:] == [
        "  - started: expected an ISO 8601 time, got null",
        "  - results: expected a list, got NoneType",
    ]


def test_from_dict_bool_is_not_a_number() -> None:
    data = sample().to_dict()
    data["results"][0]["duration_s"] = True
    with pytest.raises(UsageError, match=r"results\[0\]\.duration_s"):
        Report.from_dict(data)


def test_from_json_syntax_error() -> None:
    with pytest.raises(UsageError, match="invalid report: line 1, column 2"):
        Report.from_json("{,}")


# --- merge --------------------------------------------------------------------------------------


def test_merge_reports() -> None:
    a = Report(started=T0 + timedelta(seconds=10), finished=T0 + timedelta(seconds=50))
    a.add(TagResult(WEBUI, "open-webui", "main", "copied"))
    a.add(TagResult(NGINX, "nginx", "latest", "unchanged"))
    b = Report(started=T0, finished=T0 + timedelta(seconds=30))
    b.add(TagResult(NGINX, "nginx", "1.0", "failed", error="boom"))
    c = Report(started=T0 + timedelta(seconds=5))
    c.add(TagResult(NGINX, "nginx", "latest", "copied"))
    merged = merge_reports([a, b, c])
    assert merged.started == T0
    assert merged.finished == T0 + timedelta(seconds=50)
    assert [(r.target, r.tag, r.status) for r in merged.results] == [
        ("nginx", "1.0", "failed"),
        ("nginx", "latest", "unchanged"),
        ("nginx", "latest", "copied"),
        ("open-webui", "main", "copied"),
    ]
    assert merged.exit_code() == 1
    assert len(a.results) == 2  # inputs untouched


def test_merge_reports_follows_the_config_order() -> None:
    # Two shards, each in its own config order; the config lists ubuntu, then nginx (latest, 1.0).
    ns = "acr.example/team/mirror"
    a = Report(started=T0)
    a.add(TagResult(NGINX, f"{ns}/nginx", "latest", "copied"))
    a.add(TagResult(NGINX, f"{ns}/nginx", "1.0", "copied"))
    a.add(TagResult(NGINX, f"{ns}/zzz-not-in-config", "1", "copied"))
    b = Report(started=T0)
    b.add(TagResult(NGINX, f"{ns}/apps/ubuntu", "22.04", "copied"))
    b.add(TagResult(NGINX, f"{ns}/aaa-not-in-config", "1", "copied"))
    b.add(TagResult(NGINX, f"{ns}/ubuntu", "22.04", "copied"))
    order = [("apps/ubuntu", "22.04"), ("ubuntu", "22.04"), ("nginx", "latest"), ("nginx", "1.0")]
    merged = merge_reports([a, b], order)
    assert [(r.target.removeprefix(ns + "/"), r.tag) for r in merged.results] == [
        ("apps/ubuntu", "22.04"),  # the longest matching target wins over "ubuntu"
        ("ubuntu", "22.04"),
        ("nginx", "latest"),
        ("nginx", "1.0"),
        ("aaa-not-in-config", "1"),  # not in the config: last, sorted
        ("zzz-not-in-config", "1"),
    ]


def test_merge_unfinished_reports() -> None:
    merged = merge_reports([Report(started=T0), Report(started=T0 + timedelta(seconds=1))])
    assert merged.finished is None
    assert merged.results == []


def test_merge_nothing() -> None:
    with pytest.raises(ValueError, match="at least one report"):
        merge_reports([])


# --- rendering ----------------------------------------------------------------------------------


def test_render_table() -> None:
    assert render_table(sample()) == "\n".join(
        [
            "TARGET:TAG          STATUS     PLATFORMS        SIZE   TIME",
            "nginx:latest        copied     amd64,arm64  123.5 MB  1m20s",
            "nginx:latest-amd64  unchanged  amd64             0 B   0.4s",
            "open-webui:main     failed     amd64               -   3.2s",
            "3 tags: 1 copied, 1 unchanged, 1 failed; 123.5 MB copied in 1m35s",
            "",
            "Failures:",
            f"  open-webui:main (from {WEBUI}):",
            "    denied: no push access",
        ]
    )


def test_render_table_keeps_non_linux_platforms_and_indents_multiline_errors() -> None:
    report = Report(started=T0)
    report.add(TagResult(NGINX, "n", "t", "failed", platforms=["windows/amd64"], duration_s=2, error="a\nb"))
    lines = render_table(report).splitlines()
    assert lines[1].split() == ["n:t", "failed", "windows/amd64", "-", "2.0s"]
    assert lines[2] == "1 tag: 0 copied, 0 unchanged, 1 failed; 0 B copied in 2.0s"
    assert lines[-3:] == [f"  n:t (from {NGINX}):", "    a", "    b"]


def test_render_table_planned_and_empty() -> None:
    report = Report(started=T0, finished=T0)
    report.add(TagResult(NGINX, "nginx", "latest", "planned", platforms=["linux/arm/v7"]))
    text = render_table(report)
    assert "arm/v7" in text
    assert (
        text.splitlines()[-1]
        == "1 tag: 0 copied, 0 unchanged, 0 failed, 1 planned; 0 B to copy; checked in 0.0s"
    )
    assert "Failures" not in text
    assert render_table(Report(started=T0)).splitlines()[1:] == [
        "(no results)",
        "0 tags: 0 copied, 0 unchanged, 0 failed; 0 B copied in 0.0s",
    ]


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1234, "1.2 kB"),
        (3_400_000, "3.4 MB"),
        (999_999, "1.0 MB"),
        (1_000_000_000, "1.0 GB"),
        (2_500_000_000_000, "2.5 TB"),
        (5 * 10**18, "5000.0 PB"),
        (-1500, "-1.5 kB"),
    ],
)
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0.0s"), (0.44, "0.4s"), (59.9, "59.9s"), (60, "1m00s"), (125.4, "2m05s"), (3725, "1h02m")],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_version_1_reports_are_still_read() -> None:
    """Report v2 added ``skipped`` and ``warnings``; a v1 report (an older release's shard) still merges."""
    data = {
        "version": 1,
        "started": "2025-01-02T03:04:05Z",
        "finished": None,
        "results": [
            {
                "source": NGINX,
                "target": "nginx",
                "tag": "1",
                "status": "copied",
                "platforms": ["linux/amd64"],
                "error": "partial: published without linux/s390x",
            }
        ],
    }
    report = Report.from_dict(data)
    assert report.results[0].skipped == [] and report.results[0].error is not None
    assert Report.from_dict(report.to_dict()) == report


def test_skipped_and_warnings_round_trip_and_show_in_the_table() -> None:
    report = Report(started=T0)
    result = TagResult(NGINX, "nginx", "1", "copied", platforms=["linux/amd64"], skipped=["linux/s390x"])
    result.warnings = ["acr refused attestation/artifact manifests (DENIED: unknown manifest class)"]
    report.add(result)
    assert Report.from_json(report.to_json()) == report
    with pytest.raises(UsageError, match="skipped: expected a list of strings"):
        data = report.to_dict()
        data["results"][0]["skipped"] = "linux/s390x"
        Report.from_dict(data)
    table = render_table(report)
    assert "Skipped platforms (not in the source; allow_partial):\n  nginx:1: s390x" in table
    assert "Warnings:\n  nginx:1: acr refused attestation/artifact manifests" in table
    assert "error" not in table.lower()


def test_table_has_a_section_per_destination() -> None:
    report = Report(started=T0, finished=T0 + timedelta(seconds=5))
    for place in ("a.example.com/mirror", "b.example.com/copy"):
        report.add(
            TagResult(NGINX, f"{place}/nginx", "latest", "copied", D1, bytes_copied=2000, destination=place)
        )
    report.add(
        TagResult(
            NGINX,
            "b.example.com/copy/redis",
            "7",
            "failed",
            error="boom",
            destination=report.results[-1].destination,
        )
    )
    lines = render_table(report).splitlines()
    assert lines[1] == "== a.example.com/mirror =="
    assert lines[2].startswith("a.example.com/mirror/nginx:latest")
    assert lines[3].startswith("1 tag: 1 copied")
    assert lines[4] == "== b.example.com/copy =="
    assert lines[7] == "2 tags: 1 copied, 0 unchanged, 1 failed; 2.0 kB copied in 5.0s"
    assert lines[8].startswith("all destinations: 3 tags: 2 copied, 0 unchanged, 1 failed")


def test_destination_round_trips_and_old_reports_have_none() -> None:
    report = Report(started=T0)
    report.add(
        TagResult(NGINX, "a.example.com/m/nginx", "latest", "copied", D1, destination="a.example.com/m")
    )
    again = Report.from_json(report.to_json())
    assert again.results[0].destination == "a.example.com/m"
    old = report.to_dict() | {"version": 2}
    del old["results"][0]["destination"]
    assert Report.from_dict(old).results[0].destination is None
