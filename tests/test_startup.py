"""Start-up: a run imports what it uses (docs/performance.md, ``docker_transfer.speedups``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("rich", "pygments", "docker_transfer.engine.sync")


def imported_modules(*argv: str) -> set[str]:
    """Top-level module names imported by ``python -m docker_transfer ARGV`` (from -X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "docker_transfer", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "docker_transfer.cli" in names  # the parse works
    return names


@pytest.mark.parametrize("argv", [("copy", "--help"), ("sync", "--help"), ("validate", "--help")])
def test_no_rich_or_pygments_without_a_terminal(argv: tuple[str, ...]) -> None:
    names = imported_modules(*argv)
    assert not {n for n in names if n.split(".")[0] in ("rich", "pygments")}
    assert "httpx" in names  # the subcommand's real module tree was imported


def test_copy_does_not_import_sync_machinery() -> None:
    names = imported_modules("copy", "--help")
    # (importlib.import_module is not timed by -X importtime, so cli.copy itself is not listed)
    assert "docker_transfer.engine.copy" in names
    assert not names & {"docker_transfer.engine.sync", "docker_transfer.cli.sync", "docker_transfer.summary"}


def test_group_help_lists_every_subcommand() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "docker_transfer", "--help"], capture_output=True, text=True, check=True
    )
    for name in ("copy", "inspect", "report", "sync", "validate"):
        assert f"  {name} " in done.stdout


def test_httpx_command_line_still_runs() -> None:
    # With the speed-ups applied (as the CLI does) httpx._main is a stand-in until called.
    code = "from docker_transfer import speedups; speedups.apply(); import httpx; httpx.main(['--help'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage" in done.stdout and "--method" in done.stdout


def test_stand_in_is_not_installed_after_httpx() -> None:
    code = (
        "import sys, httpx, docker_transfer.speedups as s; s.defer_httpx_cli();"
        "assert not isinstance(sys.modules['httpx._main'], s._DeferredHttpxCli)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_console_exit_keeps_output_and_exit_code(tmp_path: Path) -> None:
    """``leave`` skips the interpreter's teardown: output must still be whole, codes exact."""
    in_process = subprocess.run(
        [sys.executable, "-c", "from docker_transfer.cli import main; main(['sync', '--help'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    argv = [sys.executable, "-m", "docker_transfer", "sync", "--help"]
    console = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert console.stdout == in_process.stdout and len(console.stdout) > 1000

    bad = tmp_path / "images.json"
    bad.write_text('[{"source": "nginx", "target": "nginx", "tags": ["x"],}]')
    done = subprocess.run(
        [sys.executable, "-m", "docker_transfer", "validate", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "line 1" in done.stderr


def test_console_exit_into_a_closed_pipe_is_quiet() -> None:
    done = subprocess.run(
        f"{sys.executable} -m docker_transfer sync --help | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout == "Usage: doc"
    assert done.stderr == ""


def test_sniffio_is_installed_for_httpcore() -> None:
    """httpcore imports sniffio for every lock and event; missing, each import searches sys.path."""
    code = (
        "import asyncio, sniffio\n"
        "async def main():\n"
        "    return sniffio.current_async_library()\n"
        "print(asyncio.run(main()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "asyncio"
