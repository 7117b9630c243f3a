"""Helpers for tests that need a Debian tool: fail loudly under CI, skip only on a developer's machine."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> None:
    """Fail (CI=true) or skip when the Debian tool ``name`` is not on PATH (make setup installs it)."""
    if shutil.which(name) is not None:
        return
    message = f"{name} is not installed (make setup installs it: apt-get install {name})"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
