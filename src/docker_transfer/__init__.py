"""docker-transfer: mirror container images between OCI/Docker registries.

A command line (``docker-transfer``) and a library: :class:`Client` copies, inspects and
syncs images (docs/library.md). Importing this package changes no global state: the
library's names load on first use, and the speed-ups that patch httpx and httpcore run only
when asked (:func:`docker_transfer.speedups.apply`, which the command line calls).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from docker_transfer.api import (
        Client,
        Config,
        CopyResult,
        Credential,
        DockerTransferError,
        ImageEntry,
        Platform,
        Reference,
        Report,
        RequestStats,
        RetryPolicy,
        SyncEvents,
        SyncOptions,
        TagResult,
        copy,
        load_config,
    )

__all__ = [
    "Client",
    "Config",
    "CopyResult",
    "Credential",
    "DockerTransferError",
    "ImageEntry",
    "Platform",
    "Reference",
    "Report",
    "RequestStats",
    "RetryPolicy",
    "SyncEvents",
    "SyncOptions",
    "TagResult",
    "__version__",
    "copy",
    "load_config",
]


def __getattr__(name: str) -> Any:
    # The library's names are imported on first use: `import docker_transfer` stays cheap for
    # the command line, which must defer httpx's own CLI before httpx is first imported.
    if name in __all__ and name != "__version__":
        from docker_transfer import api  # noqa: PLC0415

        return getattr(api, name)
    raise AttributeError(f"module 'docker_transfer' has no attribute {name!r}")
