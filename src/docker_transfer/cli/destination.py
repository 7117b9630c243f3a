"""Where ``sync`` and ``copy`` push: the destination from flags and environment, its credentials.

Every value read from the environment is named by the variable it came from in
error messages, so ``ALIYUN_NAMESPACE=My_NS`` is reported as that variable and
not as a flag the user never passed. Also the ``--report`` path check, which
must refuse a path that cannot be written before any registry is contacted.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from docker_transfer.config import Config
from docker_transfer.errors import InvalidReferenceError, UsageError
from docker_transfer.naming import ALLOW_NESTED_HINT, check_nested_targets, is_acr_personal
from docker_transfer.plan import Target
from docker_transfer.reference import Reference, validate_repository
from docker_transfer.registry.credentials import Credential

_TRANSPORT = re.compile(r"^[a-z][a-z0-9+.-]*:(?!\d)", re.IGNORECASE)
DEFAULT_ALIYUN_REGISTRY = "registry.cn-hangzhou.aliyuncs.com"
ALLOW_NESTED_VARIABLE = "DT_ALLOW_NESTED_TARGETS"
"""Environment switch equivalent to ``--allow-nested-targets``."""


def _pick(
    flag_value: str | None, flag: str, variables: Sequence[str], environ: Mapping[str, str]
) -> tuple[str, str] | None:
    """The first non-blank of the flag and the variables, with how to name it in messages."""
    if flag_value and flag_value.strip():
        return flag_value.strip(), f"{flag} {flag_value.strip()!r}"
    for name in variables:
        value = environ.get(name, "").strip()
        if value:
            return value, f"{name}={value!r}"
    return None


def registry_host(flag_value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The destination host: the flag, else TARGET_REGISTRY, else ALIYUN_REGISTRY, else Hangzhou ACR."""
    env = os.environ if environ is None else environ
    picked = _pick(flag_value, "--target-registry", ("TARGET_REGISTRY", "ALIYUN_REGISTRY"), env)
    if picked is None:
        return DEFAULT_ALIYUN_REGISTRY
    value, origin = picked
    if "/" in value or value.lower().startswith(("http:", "https:")):
        host = value.split("://", 1)[-1].split("/", 1)[0]
        raise UsageError(f"{origin}: expected HOST[:PORT] without scheme or path, e.g. {host!r}")
    return value.lower()


def resolve_target(
    registry: str | None,
    namespace: str | None,
    *,
    allow_nested: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """Flags, else TARGET_*, else the seed's ALIYUN_* variables (registry defaults to Hangzhou ACR)."""
    env = os.environ if environ is None else environ
    host = registry_host(registry, env)
    picked = _pick(namespace, "--target-namespace", ("TARGET_NAMESPACE", "ALIYUN_NAMESPACE"), env)
    if picked is None:
        return Target(registry=host, namespace="")  # Target says which settings are missing
    value, origin = picked
    try:
        validate_repository(value)
    except InvalidReferenceError as exc:
        raise UsageError(f"{origin}: invalid namespace: {exc.reason}") from None
    if "/" in value and not allow_nested and is_acr_personal(host):
        raise UsageError(
            f"{origin}: {host} is an ACR personal edition registry, which accepts only "
            f"namespace/repository, so the namespace cannot contain '/'; {ALLOW_NESTED_HINT}"
        )
    return Target(registry=host, namespace=value)


def parse_target(text: str, *, allow_nested: bool = False) -> Target:
    """One ``--target REGISTRY/NAMESPACE``: ``host[:port]/namespace``, checked like the flags are."""
    origin = f"--target {text!r}"
    value = text.strip()
    if _TRANSPORT.match(value):  # oci-archive:, docker://, http://: not a registry
        raise UsageError(
            f"{origin}: expected oci:DIR (names inside are target:tag from images.json) "
            "or REGISTRY/NAMESPACE (e.g. registry.example.com/mirror)"
        )
    host, _, namespace = value.partition("/")
    host = host.lower()
    # Docker's rule: only a dotted, ported or 'localhost' first part is a registry host.
    if not namespace or not ("." in host or ":" in host or host == "localhost"):
        raise UsageError(
            f"{origin}: expected REGISTRY/NAMESPACE with a registry host first "
            "(e.g. registry.example.com/mirror, localhost:5000/mirror) or oci:DIR"
        )
    try:
        Reference(registry=host, repository=f"{namespace}/x")
    except InvalidReferenceError as exc:
        raise UsageError(f"{origin}: {exc.reason}") from None
    try:
        validate_repository(namespace)
    except InvalidReferenceError as exc:
        raise UsageError(f"{origin}: invalid namespace: {exc.reason}") from None
    if "/" in namespace and not allow_nested and is_acr_personal(host):
        raise UsageError(
            f"{origin}: {host} is an ACR personal edition registry, which accepts only "
            f"namespace/repository, so the namespace cannot contain '/'; {ALLOW_NESTED_HINT}"
        )
    return Target(registry=host, namespace=namespace)


def split_targets(
    targets: Sequence[str], target_registry: str | None, target_namespace: str | None
) -> tuple[str | None, list[str]]:
    """Split ``sync --target`` values into the ``oci:DIR`` (at most one) and the registry ones, checked."""
    layouts = [t for t in targets if t.strip().lower().startswith("oci:")]
    registries = [t for t in targets if t not in layouts]
    if len(layouts) > 1:
        raise UsageError(f"--target oci:DIR may be given once, got {len(layouts)}: {', '.join(layouts)}")
    if layouts and registries:
        raise UsageError(
            f"--target {layouts[0]} writes an OCI layout and cannot be mixed with registry destinations "
            f"({', '.join(registries)}): run sync once for each"
        )
    if registries and (target_registry or target_namespace):
        raise UsageError(
            "--target REGISTRY/NAMESPACE names the destinations itself: drop --target-registry and "
            "--target-namespace, or add that destination as one more --target"
        )
    if len(set(registries)) != len(registries):
        twice = sorted({t for t in registries if registries.count(t) > 1})
        raise UsageError(f"--target {twice[0]} is given twice")
    return (layouts[0] if layouts else None), registries


def resolve_destinations(
    chosen: Sequence[str],
    config: Config,
    target_registry: str | None,
    target_namespace: str | None,
    allow_nested: bool,
) -> list[Target]:
    """The destinations: each ``--target``, else the single one of the flags and environment."""
    if chosen:
        destinations = [parse_target(text, allow_nested=allow_nested) for text in chosen]
        labels = [t.label for t in destinations]
        if len(set(labels)) != len(labels):
            raise UsageError(f"--target {labels[0]} is given twice (registry names ignore case)")
    else:
        destinations = [resolve_target(target_registry, target_namespace, allow_nested=allow_nested)]
    for target in destinations:
        check_nested_targets(
            config.path, config.entries, target.registry, target.namespace, allowed=allow_nested
        )
    return destinations


def target_credential(environ: Mapping[str, str] | None = None) -> Credential | None:
    """TARGET_USERNAME/TARGET_PASSWORD, else ALIYUN_USERNAME/ALIYUN_PASSWORD, else none (docker config).

    The login is for the host :func:`registry_host` names (with several ``--target``
    destinations: TARGET_REGISTRY, else ALIYUN_REGISTRY, else ACR Hangzhou); every
    other destination host logs in from Docker's config, never with it.
    """
    env = os.environ if environ is None else environ
    for prefix in ("TARGET", "ALIYUN"):
        user, password = env.get(f"{prefix}_USERNAME"), env.get(f"{prefix}_PASSWORD")
        if user and password:
            return Credential(username=user, password=password)
        if user or password:
            raise UsageError(f"set both {prefix}_USERNAME and {prefix}_PASSWORD, or neither")
    return None


def check_report_path(path: str | None, option: str = "--report") -> None:
    """Refuse a report path that cannot be written: a directory, a file in the way, no write access.

    Checked before any registry is contacted, so a typo costs nothing. The
    directory must exist (a misspelt one should not be created silently) and be
    writable.
    """
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file path, e.g. {target / 'report.json'}")
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is not a directory")
    if existing != target.parent:
        raise UsageError(f"{option} {path}: the directory {target.parent} does not exist; create it first")
    try:
        # A real write: os.access would not tell a read-only mount or an ACL apart.
        with tempfile.NamedTemporaryFile(prefix=f".{target.name}.", dir=existing):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write in {existing}: {exc.strerror or exc}") from None
