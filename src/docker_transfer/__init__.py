"""docker-transfer: mirror container images between OCI/Docker registries."""

from docker_transfer._startup import defer_httpx_cli

__version__ = "0.1.0"

defer_httpx_cli()
