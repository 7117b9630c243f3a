"""The ``docker-transfer`` command line: exit codes, error lines, subcommands."""

from __future__ import annotations

import sys

import click

from docker_transfer import __version__
from docker_transfer.cli.common import run_guarded
from docker_transfer.cli.copy import copy_command
from docker_transfer.cli.inspect import inspect_command
from docker_transfer.cli.report_cmd import report_group
from docker_transfer.cli.sync import sync_command, validate_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="docker-transfer")
def cli() -> None:
    """Mirror container images between registries, only the platforms you choose."""


cli.add_command(copy_command)
cli.add_command(inspect_command)
cli.add_command(report_group)
cli.add_command(sync_command)
cli.add_command(validate_command)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: returns the process exit code (0 ok, 1 failed, 2 usage, 130 interrupted)."""
    code = run_guarded(cli, sys.argv[1:] if argv is None else argv)
    if argv is None:
        sys.exit(code)
    return code
