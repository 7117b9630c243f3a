"""Destination naming rules that depend on the registry, checked before anything is contacted.

Pure: the CLI passes in the destination host it resolved from flags and
environment; nothing here reads the environment or the network.

Alibaba Cloud Container Registry (ACR) personal edition stores repositories as
exactly ``namespace/repository``. A ``target`` with a ``/`` in it would push to
``namespace/a/b``, which a personal instance refuses with a bare ``denied``
once the copy is under way; enterprise instances accept deeper paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from docker_transfer.config import ImageEntry
from docker_transfer.errors import ConfigError

# registry.<region>.aliyuncs.com and its -vpc / -intl / -intl-vpc endpoints; the newer personal
# instances are crpi-<id>[-vpc].<region>.personal.cr.aliyuncs.com. Enterprise instances live on
# <name>-registry[-vpc].<region>.cr.aliyuncs.com and are not matched.
_ACR_PERSONAL = (
    re.compile(r"registry(?:-intl)?(?:-vpc)?\.[a-z0-9-]+\.aliyuncs\.com"),
    re.compile(r"crpi-[a-z0-9-]+\.[a-z0-9-]+\.personal\.cr\.aliyuncs\.com"),
)
ALLOW_NESTED_HINT = (
    "pass --allow-nested-targets (or set DT_ALLOW_NESTED_TARGETS=1) for an enterprise instance"
)
"""How to turn the check off; shown in every message the check produces."""


def is_acr_personal(host: str) -> bool:
    """True for an ACR personal-edition registry host (``HOST[:PORT]``, any case)."""
    bare = host.strip().lower().split(":", 1)[0]
    return any(pattern.fullmatch(bare) for pattern in _ACR_PERSONAL)


def nested_target_problems(entries: Iterable[ImageEntry], registry: str, namespace: str) -> list[str]:
    """One problem per entry whose ``target`` has a ``/`` while ``registry`` is ACR personal.

    The messages follow :class:`ConfigError`'s style (``images[i].target: … (line N)``).
    An empty list for any other registry.
    """
    if not is_acr_personal(registry):
        return []
    where = f"{registry}/{namespace}" if namespace else registry
    problems: list[str] = []
    for entry in entries:
        if "/" not in entry.target:
            continue
        last = entry.target.rsplit("/", 1)[1]
        line = f" (line {entry.line})" if entry.line else ""
        problems.append(
            f"images[{entry.index}].target: {json.dumps(entry.target)} has a '/', but {registry} is an "
            f"ACR personal edition registry, which accepts only namespace/repository (one level), so a "
            f'push to {where}/{entry.target} would be denied; use e.g. "{last}", or {ALLOW_NESTED_HINT}'
            f"{line}"
        )
    return problems


def check_nested_targets(
    path: str, entries: Iterable[ImageEntry], registry: str, namespace: str, *, allowed: bool
) -> None:
    """Raise :class:`ConfigError` listing :func:`nested_target_problems`, unless ``allowed``."""
    if allowed:
        return
    problems = nested_target_problems(entries, registry, namespace)
    if problems:
        raise ConfigError(path, problems)
