"""Credentials from Docker's config.json and credential helpers.

Resolution order for a registry host, like the Docker CLI: ``credHelpers[host]``,
then ``credsStore``, then ``auths``. Docker Hub's key is the historic
``https://index.docker.io/v1/``. Secrets live only in :class:`Credential`
objects whose ``repr`` hides them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker_transfer.errors import CredentialError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_HELPER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Credential:
    """A username with a password, or an identity (refresh) token."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        kind = "identity-token" if self.identity_token else "password"
        return f"Credential(username={self.username!r}, {kind}=***)"

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so output filters can mask them."""
        return tuple(s for s in (self.password, self.identity_token) if s)


CredentialLookup = Callable[[str], "Credential | None"]


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "config.json"


def _key_matches(key: str, host: str) -> bool:
    """Docker accepts ``host``, ``https://host`` and ``https://host/v1/`` style keys."""
    bare = key
    for scheme in ("https://", "http://"):
        if bare.startswith(scheme):
            bare = bare[len(scheme) :]
    bare = bare.split("/", 1)[0].lower()
    if host in _HUB_ALIASES:
        return bare in _HUB_ALIASES
    return bare == host


def _decode_auth(value: str, key: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=False).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII input
        raise CredentialError(f"docker config: the 'auth' of {key!r} is not valid base64") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise CredentialError(f"docker config: the 'auth' of {key!r} is not 'user:password'")
    return user, password


@dataclass
class DockerConfig:
    """A parsed Docker config.json (or an empty one when the file is absent)."""

    auths: dict[str, dict[str, Any]] = field(default_factory=dict)
    creds_store: str | None = None
    cred_helpers: dict[str, str] = field(default_factory=dict)
    path: str = ""

    @classmethod
    def load(cls, path: Path | None = None) -> DockerConfig:
        """Read the config; a missing file means no credentials, a broken one is an error."""
        path = path or config_path()
        if not path.is_file():
            return cls(path=str(path))
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CredentialError(f"cannot read docker config {path}: {type(exc).__name__}") from None
        if not isinstance(doc, dict):
            raise CredentialError(f"docker config {path}: top level is not an object")
        auths = doc.get("auths") or {}
        helpers = doc.get("credHelpers") or {}
        store = doc.get("credsStore") or None
        if not isinstance(auths, dict) or not isinstance(helpers, dict):
            raise CredentialError(f"docker config {path}: 'auths'/'credHelpers' must be objects")
        return cls(
            auths={str(k): v for k, v in auths.items() if isinstance(v, dict)},
            creds_store=str(store) if store else None,
            cred_helpers={str(k): str(v) for k, v in helpers.items()},
            path=str(path),
        )

    def lookup(self, host: str) -> Credential | None:
        """Credentials for a registry host (``docker.io`` aliases share Hub's key)."""
        host = host.lower()
        for key, helper in self.cred_helpers.items():
            if _key_matches(key, host):
                return run_helper(helper, self._helper_server(host))
        if self.creds_store:
            found = run_helper(self.creds_store, self._helper_server(host), missing_ok=True)
            if found is not None:
                return found
        for key, entry in self.auths.items():
            if _key_matches(key, host):
                return self._from_entry(key, entry)
        return None

    @staticmethod
    def _helper_server(host: str) -> str:
        return DOCKER_HUB_KEY if host in _HUB_ALIASES else host

    @staticmethod
    def _from_entry(key: str, entry: Mapping[str, Any]) -> Credential | None:
        token = entry.get("identitytoken")
        user = entry.get("username")
        password = entry.get("password")
        if entry.get("auth"):
            user, password = _decode_auth(str(entry["auth"]), key)
        if token:
            return Credential(username=str(user or ""), identity_token=str(token))
        if user is None and password is None:
            return None
        return Credential(username=str(user or ""), password=str(password or ""))


def run_helper(name: str, server: str, *, missing_ok: bool = False) -> Credential | None:
    """Ask ``docker-credential-NAME get`` for ``server``'s credentials."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        if missing_ok:
            return None
        raise CredentialError(f"credential helper docker-credential-{name} is not on PATH")
    try:
        proc = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredentialError(
            f"credential helper docker-credential-{name} failed: {type(exc).__name__}"
        ) from None
    if proc.returncode != 0:
        # Helpers print "credentials not found in native keychain" for unknown servers.
        if b"not found" in proc.stdout.lower() or b"not found" in proc.stderr.lower():
            return None
        raise CredentialError(f"credential helper docker-credential-{name} exited {proc.returncode}")
    try:
        doc = json.loads(proc.stdout)
        user, secret = str(doc["Username"]), str(doc["Secret"])
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"credential helper docker-credential-{name} gave unreadable output") from None
    if user == "<token>":
        return Credential(identity_token=secret)
    return Credential(username=user, password=secret)


class CredentialStore:
    """Explicit per-host credentials first, then Docker's config; results cached."""

    def __init__(self, explicit: Mapping[str, Credential] | None = None, docker: DockerConfig | None = None):
        self._explicit = {k.lower(): v for k, v in (explicit or {}).items()}
        self._docker = docker
        self._cache: dict[str, Credential | None] = {}

    def __call__(self, host: str) -> Credential | None:
        host = host.lower()
        if host in self._explicit:
            return self._explicit[host]
        if host not in self._cache:
            if self._docker is None:
                self._docker = DockerConfig.load()
            self._cache[host] = self._docker.lookup(host)
        return self._cache[host]

    def secrets(self) -> tuple[str, ...]:
        """Every secret seen so far (for masking)."""
        found: list[str] = []
        for cred in [*self._explicit.values(), *self._cache.values()]:
            if cred is not None:
                found.extend(cred.secrets())
        return tuple(found)
