"""`make demo` runs as documented: one entry lacks a platform and fails alone, the summary shows it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.registry import find_registry_binary

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.registry
def test_demo_shows_one_failing_entry_and_the_incremental_rerun() -> None:
    if find_registry_binary() is None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail("docker-registry is not installed (make setup)")
        pytest.skip("docker-registry is not installed (make setup)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GITHUB_ACTIONS", None)
    done = subprocess.run(
        [sys.executable, "-m", "devtools.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "## ❌ docker-transfer sync: 1 of 4 images failed" in out
    assert "platform(s) linux/arm64 not in the source image (it has: linux/amd64)" in out
    assert "| `v0.11.0` | amd64, arm64/v8 | ❌ failed |" in out
    assert "0 GETs (besides the failing vllm-openai); target saw 0 uploads" in out
    assert "=== demo finished ===" in out
    # Both READMEs show this very summary: the same lines but for ports, sizes, times and digests.
    start = out.index("## ❌ docker-transfer sync: 1 of 4 images failed")
    demo = _shape(out[start : out.index("=== what landed")])
    for readme in ("README.md", "README.zh-CN.md"):
        text = (ROOT / readme).read_text(encoding="utf-8")
        quoted = [
            line.removeprefix(">").removeprefix(" ") for line in text.splitlines() if line.startswith(">")
        ]
        assert _shape("\n".join(quoted)) == demo, (
            f"{readme}: the sample summary is not the demo's; refresh it"
        )


def _shape(text: str) -> str:
    """The summary with what differs between runs (ports, sizes, times, digests) replaced."""
    text = re.sub(r"127\.0\.0\.1:\d+", "HOST", text)
    text = re.sub(r"sha256:[0-9a-f]{12}…", "DIGEST", text)
    text = re.sub(r"\b\d+(\.\d+)? (B|kB|MB|GB)\b", "SIZE", text)
    text = re.sub(r"\b(\d+\.\ds|\d+m\d\ds|\d+h\d\dm)\b", "TIME", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
