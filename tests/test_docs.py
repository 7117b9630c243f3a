"""The examples of docs/platforms.md use the real flag and behave as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from docker_transfer.cli import cli
from docker_transfer.errors import InvalidPlatformError
from docker_transfer.platform import parse_platform

PAGE = Path(__file__).resolve().parent.parent / "docs" / "platforms.md"


def examples() -> list[tuple[list[str], str]]:
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("## Examples") :]
    block = section[section.index("```\n") + 4 : section.index("```", section.index("```\n") + 4)]
    found = []
    for line in block.splitlines():
        flags, _, comment = line.partition("#")
        found.append((flags.split(), comment.strip()))
    return found


def test_examples_use_flags_that_copy_has() -> None:
    copy = cli.get_command(click.Context(cli), "copy")
    assert copy is not None
    options = {opt for param in copy.params for opt in param.opts}
    assert len(examples()) >= 5
    for flags, _ in examples():
        assert all(flag in options for flag in flags[0::2]), flags


@pytest.mark.parametrize(("flags", "comment"), examples())
def test_example_behaves_as_commented(flags: list[str], comment: str) -> None:
    for value in flags[1::2]:
        if comment.startswith("refused"):
            hint = re.sub(r"^refused: ", "", comment).rstrip("?")
            with pytest.raises(InvalidPlatformError, match=re.escape(hint)):
                parse_platform(value)
        else:
            parse_platform(value)
