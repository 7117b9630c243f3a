"""The pure core stays pure: no httpx, no asyncio, no subprocess or sockets in these modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import docker_transfer

PURE = [
    "reference", "platform", "manifest", "config", "jsontext", "tagrules", "plan", "report", "summary",
    "shard", "naming",
]  # fmt: skip
PURE += ["layout/names", "layout/tarfmt"]  # issue 14: the pure half of the layout package
PURE += ["reporttable"]  # issue 13: the report table, split from report
PURE += ["ratelimit"]  # issue 12: the one rate-limit type
FORBIDDEN = {
    "httpx",
    "asyncio",
    "socket",
    "subprocess",
    "stamina",
    "docker_transfer.registry",
    "docker_transfer.engine",
    "docker_transfer.cli",
}
ROOT = Path(docker_transfer.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module: str) -> None:
    imported = imported_modules(ROOT / f"{module}.py")
    bad = {name for name in imported if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{module}.py imports {sorted(bad)}"


def test_checker_catches_an_io_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nfrom httpx import Client\n")
    assert {"asyncio", "httpx"} <= imported_modules(sample)


def test_modules_stay_small() -> None:
    for path in ROOT.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 520, f"{path.relative_to(ROOT)} has {lines} lines; split it by responsibility"
