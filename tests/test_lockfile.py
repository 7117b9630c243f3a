"""requirements/workflow.txt: the pinned versions the workflow and the action install.

No network here: the checks are that every runtime dependency of pyproject.toml, and every
dependency of theirs, is pinned exactly once, within pyproject's ranges, and that the versions this
test suite runs against are those very pins (``make venv`` installs with the same constraints).
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "workflow.txt"


def pins(text: str) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and name.strip() and version.strip(), f"line {number}: {raw!r} is not NAME==VERSION"
        key = canonicalize_name(name.strip())
        assert key not in found, f"line {number}: {name} pinned twice"
        found[key] = Version(version.strip())
    return found


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(text) for text in project["dependencies"]]


def applies(requirement: Requirement) -> bool:
    # The workflow runs Python 3.11 on Linux; this suite runs 3.11+ on Linux too.
    if requirement.marker is None:
        return True
    environment: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    return requirement.marker.evaluate({**environment, "extra": ""})


def test_lock_pins_every_runtime_dependency_within_pyproject_ranges() -> None:
    pinned = pins(LOCK.read_text(encoding="utf-8"))
    for requirement in runtime_requirements():
        key = canonicalize_name(requirement.name)
        assert key in pinned, f"{requirement.name} (pyproject.toml) is not pinned in {LOCK.name}"
        assert requirement.specifier.contains(pinned[key], prereleases=True), (
            f"{LOCK.name} pins {requirement.name}=={pinned[key]}, outside pyproject's {requirement}"
        )


def test_lock_pins_the_whole_dependency_tree_and_nothing_else() -> None:
    pinned = pins(LOCK.read_text(encoding="utf-8"))
    seen: set[str] = set()
    todo = [r for r in runtime_requirements() if applies(r)]
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in seen:
            continue
        seen.add(key)
        assert key in pinned, f"{requirement.name} (needed: {requirement}) is not pinned in {LOCK.name}"
        assert requirement.specifier.contains(pinned[key], prereleases=True), (
            f"{LOCK.name} pins {key}=={pinned[key]}, but something needs {requirement}"
        )
        todo.extend(r for r in map(Requirement, metadata.requires(requirement.name) or []) if applies(r))
    if sys.version_info[:2] == (3, 11):  # markers (typing_extensions) follow the running Python
        assert set(pinned) == seen, f"pinned but not needed: {sorted(set(pinned) - seen)}"


def test_this_suite_runs_the_pinned_versions() -> None:
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the pins are for the workflow's Python 3.11")
    pinned = pins(LOCK.read_text(encoding="utf-8"))
    installed = {key: Version(metadata.version(key)) for key in pinned}
    differ = {
        key: f"{installed[key]} installed, {pinned[key]} pinned"
        for key in pinned
        if installed[key] != pinned[key]
    }
    assert differ == {}, "reinstall with `make venv` (it installs the pins): " + repr(differ)


def test_pins_parser_refuses_ranges() -> None:
    with pytest.raises(AssertionError, match="not NAME==VERSION"):
        pins("httpx>=0.27\n")
    with pytest.raises(AssertionError, match="pinned twice"):
        pins("rich==13.0\nRich==13.1\n")
