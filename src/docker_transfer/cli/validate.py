"""``docker-transfer validate``: check images.json without contacting any registry."""

from __future__ import annotations

import os

import click

from docker_transfer.cli.common import env_flag, flatten_option
from docker_transfer.cli.destination import ALLOW_NESTED_VARIABLE, registry_host
from docker_transfer.config import load_config
from docker_transfer.naming import check_nested_targets


@click.command("validate", short_help="Check images.json without contacting any registry.")
@click.argument("file", required=False, metavar="[FILE]")
@click.option(
    "--config",
    "config_path",
    default=None,
    metavar="PATH",
    help="The images.json to check (or give it as FILE).  [default: images.json]",
)
@flatten_option
@click.option(
    "--target-registry",
    metavar="HOST[:PORT]",
    help="Destination registry whose naming rules apply (env TARGET_REGISTRY, default Hangzhou ACR).",
)
@click.option(
    "--allow-nested-targets",
    "allow_nested",
    is_flag=True,
    help=f"Allow a target with '/' on an ACR personal-edition host (env {ALLOW_NESTED_VARIABLE}=1).",
)
def validate_command(
    file: str | None,
    config_path: str | None,
    flatten: str | None,
    target_registry: str | None,
    allow_nested: bool,
) -> None:
    """Check images.json without contacting any registry (exit 2 listing every problem).

    The destination registry is resolved as sync does, only to apply its naming
    rules: an ACR personal-edition host accepts only namespace/repository.
    """
    if file and config_path and file != config_path:
        raise click.UsageError(f"two files given: FILE {file!r} and --config {config_path!r}; give one")
    config = load_config(file or config_path or "images.json", flatten=flatten)
    host = registry_host(target_registry)
    namespace = os.environ.get("TARGET_NAMESPACE") or os.environ.get("ALIYUN_NAMESPACE") or ""
    allowed = allow_nested or env_flag(ALLOW_NESTED_VARIABLE)
    check_nested_targets(config.path, config.entries, host, namespace.strip(), allowed=allowed)
    tags = sum(len(e.destination_tags()) for e in config.entries)
    rules = sum(len(e.rules) for e in config.entries)
    ruled = f", {rules} tag rule(s) chosen from the sources' tags at run time" if rules else ""
    click.echo(f"{config.path}: OK, {len(config.entries)} image(s), {tags} destination tag(s){ruled}")
