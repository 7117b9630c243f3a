"""The rich bars: shortening, layout, and a real pseudo-terminal of 80 (and 120) columns.

The child process draws ``sync``'s bars (RichEvents) and ``copy``'s bar (ByteProgress) with
consoles built as the CLI builds them (``Console(stderr=True)``), so rich measures the pty's
window size itself. Every bar line must be whole on one terminal line: label (shortened in the
middle), bar, bytes, speed, time left.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_transfer.cli.bars import NUMBERS_WIDTH, layout, shorten_middle

CHILD = r"""
import json, time
from rich.console import Console
from docker_transfer.cli.bars import ByteProgress
from docker_transfer.cli.progress import RichEvents
from docker_transfer.config import parse_config
from docker_transfer.plan import Target, plan_jobs
from docker_transfer.report import TagResult

MB = 1_000_000
entries = [
    {
        "source": f"ghcr.io/some-organisation/a-rather-long-repository-name-{i}:v1.2.3",
        "target": f"team/platform/a-rather-long-repository-name-{i}",
        "tags": ["v1.2.3"],
        "architectures": ["amd64"],
    }
    for i in range(3)
]
target = Target("registry.cn-hangzhou.aliyuncs.com", "my-long-namespace")
jobs = plan_jobs(parse_config(json.dumps(entries)), target)
events = RichEvents(len(jobs), Console(stderr=True))
with events:
    for job in jobs:
        events.job_started(job)
        events.job_sized(job, 300 * MB)
    for _ in range(6):
        for job in jobs:
            events.bytes_moved(job, 7 * MB)
        time.sleep(0.06)
    job = jobs[0]
    result = TagResult(str(job.entry.source), job.destination.name, "v1.2.3", "copied", bytes_copied=42 * MB)
    events.job_finished(job, [result])
    time.sleep(0.15)
label = "registry.cn-hangzhou.aliyuncs.com/my-long-namespace/team/platform/a-long-repository-name:v1.2.3"
with ByteProgress(enabled=True, total=500 * MB, label=label) as bar:
    for _ in range(5):
        bar.advance(20 * MB)
        time.sleep(0.06)
"""

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR_GLYPHS = re.compile("[━╸╺]")
BAR_LINE = re.compile(
    r"^(?P<label>\S.*?) +[━╸╺]+ +(?:[\d.]+/[\d.]+ (?:bytes|kB|MB|GB)|0/\? bytes) +(?:[\d.]+ \S+/s|\?)"
    r" +(?:\d+:\d\d:\d\d|-:--:--)? *$"
)


def run_in_pty(script: Path, columns: int) -> list[str]:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
    env["TERM"] = "xterm-256color"
    child = subprocess.Popen(
        [sys.executable, str(script)], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert child.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    text = ESCAPE.sub("", b"".join(chunks).decode("utf-8"))
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]


@pytest.mark.parametrize("columns", [80, 120])
def test_bar_lines_fit_the_terminal_whole(columns: int, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    lines = run_in_pty(script, columns)
    bars = [line for line in lines if BAR_GLYPHS.search(line)]
    assert len(bars) >= 10, lines
    for line in lines:
        if line.startswith("[1/3] copied"):
            continue  # the finished image's status line, printed above the bars
        assert BAR_GLYPHS.search(line), f"a piece of a wrapped bar line: {line!r}"
        assert len(line) < columns, f"{len(line)} > {columns} columns: {line!r}"
        match = BAR_LINE.match(line)
        assert match, f"not one whole bar line: {line!r}"
    labels = {BAR_LINE.match(line).group("label") for line in bars}  # type: ignore[union-attr]
    assert "all images 0/3" in labels and "all images 1/3" in labels
    image_labels = labels - {"all images 0/3", "all images 1/3"}
    # shortened in the middle: both ends kept, so the three images stay apart
    for i in range(3):
        (label,) = [label for label in image_labels if label.endswith(f"-name-{i}")]
        assert "…" in label and label.startswith("my-long-")
    (copy_label,) = [label for label in image_labels if label.endswith(":v1.2.3")]
    assert copy_label.startswith("registry.cn-") and "…" in copy_label


@given(st.text(min_size=0, max_size=200), st.integers(min_value=3, max_value=120))
def test_shorten_middle_keeps_both_ends(text: str, width: int) -> None:
    short = shorten_middle(text, width)
    if len(text) <= width:
        assert short == text
    else:
        assert len(short) == width
        head, _, tail = short.partition("…")
        assert text.startswith(head) and text.endswith(tail)
        assert len(tail) >= len(head)  # the repository name's end tells images apart


def test_shorten_middle_examples() -> None:
    assert shorten_middle("mirror/nginx", 20) == "mirror/nginx"
    assert shorten_middle("my-long-namespace/team/a-rather-long-name-0", 20) == "my-long-n…ong-name-0"
    assert shorten_middle("abcdef", 2) == "ab"


@pytest.mark.parametrize("width", [57, 60, 72, 80, 100, 120, 200])
def test_layout_fits(width: int) -> None:
    label, bar = layout(width)
    assert label + bar + NUMBERS_WIDTH <= width
    assert 12 <= label <= 40 and 5 <= bar <= 40
