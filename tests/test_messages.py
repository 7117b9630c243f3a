"""What people read: error wording, shortened digests, wrapped lines, one error per image (issue 11)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools.images import RegistryPusher, push_image
from devtools.registry import RegistryFactory
from docker_transfer.cli import main
from docker_transfer.cli.common import error_text
from docker_transfer.report import Report, TagResult, short_digests
from docker_transfer.reporttable import render_table

DIGEST = "sha256:" + "4f9c1a2b3c4d" + "e" * 52


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- pure rendering ---------------------------------------------------------------------------


def test_short_digests_keeps_twelve_hex_and_leaves_other_text_alone() -> None:
    assert short_digests(f"image@{DIGEST}: bad") == "image@sha256:4f9c1a2b3c4d…: bad"
    assert short_digests("sha256:abc") == "sha256:abc"  # not a full digest: untouched


def test_failures_are_listed_once_per_image_wrapped_at_word_boundaries() -> None:
    report = Report(started=datetime(2026, 1, 1, tzinfo=UTC))
    error = f"src/app@{DIGEST}: platform(s) linux/s390x not in the source image " + "because " * 30
    for tag in ("latest", "stable"):
        report.add(TagResult("src/app:1", "reg/ns/app", tag, "failed", None, ["linux/amd64"], 0, 1.0, error))
    # a log (no terminal) gets one line per error, for grep
    plain = render_table(report).split("Failures:\n", 1)[1].splitlines()
    assert len(plain) == 2 and "platform(s) linux/s390x" in plain[1]
    text = render_table(report, width=120)  # a terminal's width
    failures = text.split("Failures:\n", 1)[1].splitlines()
    assert failures[0] == "  reg/ns/app:latest,stable (from src/app:1):"
    assert sum("platform(s) linux/s390x" in line for line in failures) == 1  # once, not per tag
    assert DIGEST not in text and "sha256:4f9c1a2b3c4d…" in text
    assert all(len(line) <= 120 for line in failures)
    # no word cut in two: every wrapped line ends on a whole word of the message
    words = set(short_digests(error).split())
    assert all(line.split()[-1] in words for line in failures[1:])


def test_error_text_wraps_without_cutting_words() -> None:
    message = "x.example/team/app:1: " + " ".join(f"word{i}" for i in range(60))
    text = error_text(message, width=80)
    lines = text.splitlines()
    assert lines[0].startswith("error: x.example/team/app:1:")
    assert all(len(line) <= 80 for line in lines) and len(lines) > 2
    assert " ".join(" ".join(line.split()) for line in lines).removeprefix("error: ") == message


def test_dry_run_totals_say_to_copy() -> None:
    report = Report(started=datetime(2026, 1, 1, tzinfo=UTC))
    report.add(TagResult("s", "t", "1", "planned", None, ["linux/amd64"], 222_300_000, 0.4))
    assert "222.3 MB to copy" in render_table(report).splitlines()[-1]
    assert "copied in" not in render_table(report)


# --- against real registries --------------------------------------------------------------------


def test_validate_takes_the_file_as_an_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "mine.json"
    good.write_text(
        json.dumps([{"source": "nginx", "target": "nginx", "tags": ["1"], "architectures": ["amd64"]}])
    )
    code, out, _ = run_cli(capsys, "validate", str(good))
    assert code == 0 and "mine.json: OK" in out
    code, _, err = run_cli(capsys, "validate", str(good), "--config", str(tmp_path / "other.json"))
    assert code == 2 and "give one" in err


def test_copy_accepts_comma_separated_arch(
    registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = registry_factory()
    push_image(reg.url, "src/app", "1", platforms=["linux/amd64", "linux/arm64/v8", "linux/s390x"])
    code, _, err = run_cli(
        capsys, "copy", f"{reg.host}/src/app:1", f"{reg.host}/dst/app:1", "--arch", "amd64,arm64",
        "--insecure-registry", reg.host,
    )  # fmt: skip
    assert code == 0, err
    with RegistryPusher(reg.url) as pusher:
        index = json.loads(pusher.get_manifest("dst/app", "1").data)
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]


def test_missing_tag_reads_as_a_tag_not_found(
    registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = registry_factory()
    push_image(reg.url, "library/nginx", "latest", platforms=["linux/amd64"])
    code, _, err = run_cli(
        capsys, "inspect", f"{reg.host}/library/nginxx:latest", "--insecure-registry", reg.host
    )
    assert code == 1
    assert err.strip().startswith(f"error: {reg.host}/library/nginxx:latest: not found at {reg.host} (")
    assert "@latest" not in err


def test_sync_failure_is_printed_once_with_a_short_digest(
    registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = registry_factory(), registry_factory()
    image = push_image(src.url, "library/nginx", "latest", platforms=["linux/amd64", "linux/arm64/v8"])
    config = tmp_path / "images.json"
    entry = {"source": f"{src.host}/library/nginx:latest", "target": "nginx", "tags": ["latest", "stable"]}
    config.write_text(json.dumps([{**entry, "architectures": ["amd64", "s390x"]}]))
    code, out, err = run_cli(
        capsys, "sync", "--config", str(config), "--target-registry", dst.host, "--target-namespace", "m",
        "--insecure-registry", src.host, "--insecure-registry", dst.host,
    )  # fmt: skip
    assert code == 1
    both = out + err
    assert both.count("linux/s390x not in the source image") == 1, both
    assert image.index_digest not in both and image.index_digest[:19] + "…" in both
    assert "(error below)" in err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_said_at_once_and_says_it_retries() -> None:
    port = _closed_port()
    # Long waits between attempts: the warning must come before them, not after the last one.
    env = {**os.environ, "DT_RETRY_WAIT_INITIAL": "30", "DT_RETRY_WAIT_MAX": "30"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "docker_transfer", "inspect", f"127.0.0.1:{port}/app:1"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert proc.poll() is None, "the warning came only when the retries were over"
        expected = f"warning: cannot connect to 127.0.0.1:{port}: connection refused; retrying"
        assert first.strip() == expected + " (up to 4 more attempts)"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_only_a_terminal_gets_wrapped_text() -> None:
    import io  # noqa: PLC0415

    from docker_transfer.cli.common import human_width  # noqa: PLC0415

    assert human_width(io.StringIO()) is None  # logs and pipes: one line per message
    with open(os.devnull, "w") as devnull:
        assert human_width(devnull) is None
    long = "x " * 100
    assert error_text(long).count("\n") == 0 and error_text(long, 80).count("\n") > 0


def test_job_summary_shortens_digests_in_errors() -> None:
    from docker_transfer.summary import render_summary  # noqa: PLC0415

    report = Report(started=datetime(2026, 1, 1, tzinfo=UTC))
    report.add(TagResult("s/app:1", "r/ns/app", "1", "failed", None, [], 0, 1.0, f"s/app@{DIGEST}: gone"))
    text = render_summary(report)
    assert DIGEST not in text and "sha256:4f9c1a2b3c4d…: gone" in text
