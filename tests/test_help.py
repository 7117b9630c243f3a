"""What ``--help`` shows: whole descriptions, the environment of sync, typos answered.

Golden files (tests/golden/help*.txt) at 80 columns; regenerate after an intended change with
``UPDATE_GOLDEN=1 pytest tests/test_help.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from docker_transfer.cli import SUBCOMMANDS, cli, main
from docker_transfer.cli.destination import DEFAULT_ALIYUN_REGISTRY

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; UPDATE_GOLDEN=1 rewrites it"


def help_text(*args: str, width: int = 80) -> str:
    done = CliRunner().invoke(cli, [*args, "--help"], terminal_width=width, prog_name="docker-transfer")
    assert done.exit_code == 0, done.output
    return done.output


def every_command() -> list[tuple[list[str], click.Command]]:
    found: list[tuple[list[str], click.Command]] = []
    ctx = click.Context(cli)
    for name in SUBCOMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        found.append(([name], command))
        if isinstance(command, click.Group):
            found.extend(([name, sub], command.commands[sub]) for sub in command.commands)
    return found


def test_top_level_help_golden() -> None:
    text = help_text()
    check_golden("help.txt", text)
    commands = text[text.index("Commands:") :]
    assert "..." not in commands  # whole one-line descriptions, not cut at 45 characters
    assert "``" not in text and "`" not in commands


def test_sync_help_lists_the_environment() -> None:
    text = help_text("sync")
    environment = text[text.index("  Environment") : text.index("Options:")]
    check_golden("help_sync_environment.txt", environment)
    for name in (
        "TARGET_REGISTRY",
        "TARGET_NAMESPACE",
        "TARGET_USERNAME",
        "TARGET_PASSWORD",
        "ALIYUN_REGISTRY",
        "ALIYUN_NAMESPACE",
        "ALIYUN_USERNAME",
        "ALIYUN_PASSWORD",
        "DOCKER_CONFIG",
    ):
        assert name in environment
    assert DEFAULT_ALIYUN_REGISTRY in environment  # the default the code really uses
    assert "--config PATH " in text


@pytest.mark.parametrize("width", [80, 120])
def test_help_fits_the_terminal(width: int) -> None:
    for args, _ in every_command():
        text = help_text(*args, width=width)
        too_long = [line for line in text.splitlines() if len(line) > width]
        assert too_long == [], f"{' '.join(args)} --help at {width} columns"


def test_repeatable_options_say_so_and_paths_show_path() -> None:
    for args, command in every_command():
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            where = f"{' '.join(args)} {param.opts[0]}"
            if param.multiple:
                assert "repeatable" in (param.help or ""), where
            if param.opts[0] in ("--config", "--report", "--output", "--summary"):
                assert param.metavar == "PATH", where
            assert "``" not in (param.help or ""), where
        assert "``" not in (command.help or ""), " ".join(args)


@pytest.mark.parametrize(
    ("args", "typo", "suggestion"),
    [
        (["synk"], "synk", "sync"),
        (["inpsect", "nginx"], "inpsect", "inspect"),
        (["valdiate"], "valdiate", "validate"),
        (["report", "mrege", "a.json"], "mrege", "merge"),
    ],
)
def test_misspelt_command_gets_a_suggestion(
    args: list[str], typo: str, suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"Error: No such command '{typo}'. Did you mean '{suggestion}'?" in err


def test_unrelated_word_gets_no_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xyz"]) == 2
    err = capsys.readouterr().err
    assert "Error: No such command 'xyz'." in err and "Did you mean" not in err
