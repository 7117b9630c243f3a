"""Real (no-mock) test infrastructure for docker-transfer.

* :mod:`devtools.registry` - run CNCF Distribution (``docker-registry``) on 127.0.0.1.
* :mod:`devtools.tokenserver` - a JWT token server Distribution 2.8 accepts.
* :mod:`devtools.images` - push synthetic OCI / Docker images with plain httpx.
* :mod:`devtools.headerserver` - a redirecting proxy + header-recording blob server.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Protocol


def write_docker_config(config_dir: Path, auths: dict[str, tuple[str, str]]) -> Path:
    """Write ``config_dir/config.json`` with ``{"auths": {host: {"auth": base64(user:pw)}}}``."""
    config_dir.mkdir(parents=True, exist_ok=True)
    entries = {
        host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for host, (user, password) in auths.items()
    }
    path = config_dir / "config.json"
    path.write_text(json.dumps({"auths": entries}, indent=2))
    return path


class DockerConfigFactory(Protocol):
    """Signature of the ``docker_config`` fixture: host -> (user, password); returns the config dir."""

    def __call__(self, auths: dict[str, tuple[str, str]]) -> Path: ...
