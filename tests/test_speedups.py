"""docker_transfer.speedups: what it relies on still exists, and it stays off until applied."""

from __future__ import annotations

import subprocess
import sys

from docker_transfer import speedups


def test_private_attributes_the_speedups_rely_on_still_exist() -> None:
    missing = speedups.private_attributes_missing()
    assert not missing, (
        "docker_transfer.speedups relies on private attributes the installed versions lack; "
        "adapt speedups.py (or lower the upper bounds in pyproject.toml): " + "; ".join(missing)
    )


def test_the_check_names_a_missing_attribute_and_the_version() -> None:
    code = (
        "from httpcore._async.http11 import AsyncHTTP11Connection as C\n"
        "del C.READ_NUM_BYTES\n"
        "from docker_transfer import speedups\n"
        "print(speedups.private_attributes_missing())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "AsyncHTTP11Connection.READ_NUM_BYTES" in done.stdout
    assert "httpcore 1." in done.stdout


def test_apply_raises_httpcores_read_size_and_defers_httpxs_command_line() -> None:
    code = (
        "import sys\n"
        "from docker_transfer import speedups\n"
        "speedups.apply()\n"
        "assert type(sys.modules['httpx._main']).__name__ == '_DeferredHttpxCli'\n"
        "from httpcore._async.http11 import AsyncHTTP11Connection as C\n"
        "assert C.READ_NUM_BYTES == speedups.READ_SIZE, C.READ_NUM_BYTES\n"
        "assert speedups.applied()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
