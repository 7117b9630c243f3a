"""Choosing the display, and what the rich, plain and GitHub displays print for sync events."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from docker_transfer.cli.progress import (
    GitHubEvents,
    PlainEvents,
    RichEvents,
    choose_display,
    image_line,
    no_color,
)
from docker_transfer.config import parse_config
from docker_transfer.plan import Job, Target, plan_jobs
from docker_transfer.report import TagResult

COLOUR_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def jobs() -> list[Job]:
    entries = [
        {"source": "nginx:1.27", "target": "nginx", "tags": ["1.27", "latest"], "architectures": ["amd64"]},
        {"source": "redis:7", "target": "redis", "tags": ["7"], "architectures": ["amd64"]},
    ]
    return plan_jobs(parse_config(json.dumps(entries)), Target("acr.example", "mirror"))


def results(job: Job, status: str, error: str | None = None) -> list[TagResult]:
    return [
        TagResult(
            source=str(job.entry.source),
            target=job.destination.name,
            tag=tag,
            status=status,  # type: ignore[arg-type]
            bytes_copied=5_000_000 if status == "copied" and i == 0 else 0,
            error=error,
        )
        for i, tag in enumerate(job.all_tags)
    ]


@pytest.mark.parametrize(
    ("env", "tty", "quiet", "expected"),
    [
        ({}, True, False, "rich"),
        ({"NO_COLOR": "1"}, True, False, "rich"),  # NO_COLOR means no colour, not no progress
        ({}, False, False, "plain"),
        ({"TERM": "dumb"}, True, False, "plain"),
        ({"GITHUB_ACTIONS": "true"}, False, False, "github"),
        ({"GITHUB_ACTIONS": "true"}, True, False, "github"),
        ({"GITHUB_ACTIONS": "false"}, False, False, "plain"),
        ({}, True, True, "quiet"),
        ({"GITHUB_ACTIONS": "true"}, False, True, "quiet"),
    ],
)
def test_choose_display(env: dict[str, str], tty: bool, quiet: bool, expected: str) -> None:
    assert choose_display(env, stderr_tty=tty, quiet=quiet) == expected


def test_no_color_follows_no_color_org() -> None:
    assert no_color({"NO_COLOR": "1"}) and no_color({"NO_COLOR": "0"}) and no_color({"NO_COLOR": "false"})
    assert not no_color({"NO_COLOR": ""}) and not no_color({})


def test_image_line() -> None:
    nginx, redis = jobs()
    assert image_line(nginx, results(nginx, "copied"), "1/2") == (
        "[1/2] copied    docker.io/library/nginx:1.27 -> acr.example/mirror/nginx:1.27,latest (5.0 MB)"
    )
    failed = image_line(redis, results(redis, "failed", "boom"), "2/2")
    assert failed.endswith("acr.example/mirror/redis:7: boom")
    assert "boom" not in image_line(redis, results(redis, "failed", "boom"), errors=False)


def run_events(events: RichEvents) -> None:
    nginx, redis = jobs()
    with events:
        events.job_started(nginx)
        events.job_started(redis)
        events.job_sized(nginx, 5_000_000)
        events.bytes_moved(nginx, 3_000_000)
        events.bytes_moved(nginx, 2_000_000)
        events.job_finished(nginx, results(nginx, "copied"))
        events.job_finished(redis, results(redis, "failed", "secret-token-123 rejected"))


def sgr_colours(text: str) -> set[str]:
    colours = set()
    for params in COLOUR_SGR.findall(text):
        for p in params.split(";"):
            if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107):
                colours.add(p)
    return colours


@pytest.mark.parametrize("plain", [False, True])
def test_rich_events_print_finished_images(plain: bool) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, no_color=plain, color_system="standard")
    events = RichEvents(2, console, redact=lambda s: s.replace("secret-token-123", "***"))
    run_events(events)
    text = buffer.getvalue()
    assert "[1/2] copied    docker.io/library/nginx:1.27" in text
    # the error itself is printed once, in the final table; the live line points there
    assert "[2/2] failed" in text and "(error below)" in text and "rejected" not in text
    assert "secret-token-123" not in text
    assert bool(sgr_colours(text)) is not plain  # NO_COLOR: the same lines, without colour


def test_rich_events_track_bytes() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    events = RichEvents(2, console)
    nginx, _ = jobs()
    events.job_started(nginx)
    events.job_sized(nginx, 100)
    events.bytes_moved(nginx, 60)
    events.bytes_moved(nginx, -10)  # a retry rewinds
    tasks = {t.description: t for t in events._progress.tasks}
    assert tasks["mirror/nginx"].completed == 50 and tasks["mirror/nginx"].total == 100
    assert tasks["all images 0/2"].completed == 50 and tasks["all images 0/2"].total == 100
    events.job_finished(nginx, results(nginx, "copied"))
    assert [t.description for t in events._progress.tasks] == ["all images 1/2"]


def test_plain_events_one_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    nginx, _ = jobs()
    events = PlainEvents(2)
    events.job_started(nginx)
    events.job_finished(nginx, results(nginx, "unchanged"))
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "start     docker.io/library/nginx:1.27 -> acr.example/mirror/nginx",
        "[1/2] unchanged docker.io/library/nginx:1.27 -> acr.example/mirror/nginx:1.27,latest",
    ]


def test_github_events_group_per_image(capsys: pytest.CaptureFixture[str]) -> None:
    _, redis = jobs()
    calls: list[str] = []
    events = GitHubEvents(2, before_output=lambda: calls.append("mask"))
    events.job_started(redis)
    events.job_finished(redis, results(redis, "failed", "bad\n::add-mask::forged"))
    _, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == (
        "::group::[1/2] failed    docker.io/library/redis:7 -> acr.example/mirror/redis:7 (error below)"
    )
    assert lines[-1] == "::endgroup::"
    body = lines[1:-1]
    assert body[0].startswith("  7: failed")
    assert "> ::add-mask::forged" in body  # text from elsewhere cannot issue commands
    assert not any(line.lstrip().startswith("::") for line in body)
    assert calls == ["mask"]
