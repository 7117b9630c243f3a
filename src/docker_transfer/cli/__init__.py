"""The ``docker-transfer`` command line: exit codes, error lines, subcommands."""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from typing import NoReturn

import click

from docker_transfer import __version__, speedups

# name -> "module:attribute". A subcommand's module (and what it imports) loads only when that
# subcommand runs, or when the group's help lists them all: `copy` does not pay for `sync`.
SUBCOMMANDS = {
    "copy": "docker_transfer.cli.copy:copy_command",
    "inspect": "docker_transfer.cli.inspect:inspect_command",
    "report": "docker_transfer.cli.report_cmd:report_group",
    "sync": "docker_transfer.cli.sync:sync_command",
    "validate": "docker_transfer.cli.validate:validate_command",
}


class SuggestingGroup(click.Group):
    """A group that lists whole one-line descriptions and suggests the nearest command to a typo."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``Commands:`` with each command's whole one-line description (click cuts it at ~45 chars)."""
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000).replace("``", "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """The subcommand named by ``args[0]``; an unknown name gets "did you mean …?"."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=2, cutoff=0.6)
            if close:
                choices = " or ".join(repr(c) for c in close)
                raise click.UsageError(f"No such command {name!r}. Did you mean {choices}?", ctx)
        return super().resolve_command(ctx, args)


class LazyGroup(SuggestingGroup):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand name, sorted."""
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand, importing its module the first time."""
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            module, attribute = SUBCOMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
                raise TypeError(f"{SUBCOMMANDS[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="docker-transfer")
def cli() -> None:
    """Mirror container images between registries, only the platforms you choose."""


def main(argv: list[str] | None = None) -> int:
    """Console entry point: returns the process exit code (0 ok, 1 failed, 2 usage, 130 interrupted).

    Called without ``argv`` (the console script, ``python -m docker_transfer``) it ends
    the process itself, see :func:`leave`.
    """
    start()
    # Imported only now: it imports httpx, after start() deferred httpx's own command line.
    from docker_transfer.cli.common import run_guarded  # noqa: PLC0415

    code = run_guarded(cli, sys.argv[1:] if argv is None else argv)
    if argv is None:
        leave(code)
    return code


def start() -> None:
    """What the command line sets up for its process before anything runs.

    The speed-ups (docker_transfer.speedups; ``DT_NETWORK_BACKEND=anyio`` keeps httpcore's
    own network backend). stamina's hooks are set where the first registry client is built
    (cli/common.py ``build_client``): importing stamina here would slow every ``--help``.
    """
    backend = os.environ.get("DT_NETWORK_BACKEND", "asyncio").strip().lower()
    speedups.apply(asyncio_backend=backend != "anyio")


def leave(code: int) -> NoReturn:
    """End the process at once, output flushed (:func:`docker_transfer.speedups.leave`).

    ``DT_FULL_EXIT=1`` (or coverage) keeps the interpreter's normal exit and its atexit hooks.
    """
    speedups.leave(code, full_exit=bool(os.environ.get("DT_FULL_EXIT")))
