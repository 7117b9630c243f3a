"""Credentials from Docker's config.json, containers-auth.json and credential helpers.

Resolution order for a registry host, like the Docker CLI: ``credHelpers[host]``,
then ``credsStore``, then ``auths``. Docker Hub's key is the historic
``https://index.docker.io/v1/``. When Docker's config has nothing for a host,
the containers-auth.json that podman, buildah and skopeo write is asked the
same way (``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``).
Secrets live only in :class:`Credential` objects whose ``repr`` hides them.

Credential helpers run as asynchronous subprocesses with a short timeout, so a
helper that hangs never blocks the event loop, is killed when the run is
cancelled, and is asked at most once per host per run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker_transfer.errors import CredentialError
from docker_transfer.reference import DOCKER_HUB_ALIASES

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 10.0
"""Seconds a credential helper may take (``DT_CREDENTIAL_HELPER_TIMEOUT`` overrides)."""


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


CredentialLookup = Callable[[str], "Credential | Awaitable[Credential | None] | None"]
"""Credentials for a host; may be a coroutine function (the store runs helpers asynchronously)."""


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "config.json"


def containers_auth_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``, else none."""
    env = os.environ if environ is None else environ
    if env.get("REGISTRY_AUTH_FILE"):
        return Path(env["REGISTRY_AUTH_FILE"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    return None


def helper_timeout() -> float:
    """The credential-helper timeout in seconds (``DT_CREDENTIAL_HELPER_TIMEOUT``, default 10)."""
    raw = os.environ.get("DT_CREDENTIAL_HELPER_TIMEOUT", "")
    try:
        value = float(raw) if raw else HELPER_TIMEOUT
    except ValueError:
        return HELPER_TIMEOUT
    return value if 0 < value < float("inf") else HELPER_TIMEOUT


def _key_matches(key: str, host: str, *, scoped: bool = False) -> bool:
    """Docker accepts ``host``, ``https://host`` and ``https://host/v1/`` style keys.

    With ``scoped`` (containers-auth.json), a key with a path is a namespace
    (``quay.io/user/image``) and names credentials for that namespace only;
    lookups here are per host, so such keys are left out.
    """
    bare = key
    for scheme in ("https://", "http://"):
        if bare.startswith(scheme):
            bare = bare[len(scheme) :]
    if scoped and "/" in bare.rstrip("/"):
        return False
    bare = bare.split("/", 1)[0].lower()
    if host in DOCKER_HUB_ALIASES:
        return bare in DOCKER_HUB_ALIASES
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
    """A parsed Docker config.json or containers-auth.json (or an empty one when the file is absent)."""

    auths: dict[str, dict[str, Any]] = field(default_factory=dict)
    creds_store: str | None = None
    cred_helpers: dict[str, str] = field(default_factory=dict)
    path: str = ""
    containers: bool = False
    """A containers-auth.json: namespace-scoped keys, Docker Hub helpers asked as ``docker.io``."""

    @classmethod
    def load(cls, path: Path | None = None, *, containers: bool = False) -> DockerConfig:
        """Read the config; a missing file means no credentials, a broken one is an error."""
        path = path or config_path()
        what = "containers auth file" if containers else "docker config"
        if not path.is_file():
            return cls(path=str(path), containers=containers)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CredentialError(f"cannot read {what} {path}: {type(exc).__name__}") from None
        if not isinstance(doc, dict):
            raise CredentialError(f"{what} {path}: top level is not an object")
        auths = doc.get("auths") or {}
        helpers = doc.get("credHelpers") or {}
        store = doc.get("credsStore") or None
        if not isinstance(auths, dict) or not isinstance(helpers, dict):
            raise CredentialError(f"{what} {path}: 'auths'/'credHelpers' must be objects")
        return cls(
            auths={str(k): v for k, v in auths.items() if isinstance(v, dict)},
            creds_store=str(store) if store else None,
            cred_helpers={str(k): str(v) for k, v in helpers.items()},
            path=str(path),
            containers=containers,
        )

    async def lookup(self, host: str) -> Credential | None:
        """Credentials for a registry host (``docker.io`` aliases share Hub's key)."""
        host = host.lower()
        server = self._helper_server(host)
        for key, helper in self.cred_helpers.items():
            if _key_matches(key, host, scoped=self.containers):
                return await run_helper(helper, server)
        if self.creds_store:
            found = await run_helper(self.creds_store, server, missing_ok=True)
            if found is not None:
                return found
        for key, entry in self.auths.items():
            if _key_matches(key, host, scoped=self.containers):
                return self._from_entry(key, entry)
        return None

    def _helper_server(self, host: str) -> str:
        if host not in DOCKER_HUB_ALIASES:
            return host
        return "docker.io" if self.containers else DOCKER_HUB_KEY

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


async def run_helper(name: str, server: str, *, missing_ok: bool = False) -> Credential | None:
    """Ask ``docker-credential-NAME get`` for ``server``'s credentials, within :func:`helper_timeout`.

    The helper is its own process group, killed with whatever it started when
    it times out or the caller is cancelled (Ctrl-C, SIGTERM, ``--image-timeout``).
    """
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        if missing_ok:
            return None
        raise CredentialError(f"credential helper docker-credential-{name} is not on PATH")
    limit = helper_timeout()
    try:
        proc = await asyncio.create_subprocess_exec(
            program,
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise CredentialError(
            f"credential helper docker-credential-{name} failed: {type(exc).__name__}"
        ) from None
    try:
        async with asyncio.timeout(limit):
            stdout, stderr = await proc.communicate(server.encode())
    except TimeoutError:
        raise CredentialError(
            f"credential helper docker-credential-{name} did not answer for {server} within {limit:g}s "
            "(DT_CREDENTIAL_HELPER_TIMEOUT)"
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            # Reap it; a second cancellation meanwhile must not hide the exception already raised.
            with contextlib.suppress(asyncio.CancelledError, ProcessLookupError):
                await proc.wait()
    return _helper_answer(name, proc.returncode or 0, stdout, stderr)


def _helper_answer(name: str, returncode: int, stdout: bytes, stderr: bytes) -> Credential | None:
    if returncode != 0:
        # Helpers print "credentials not found in native keychain" for unknown servers.
        if b"not found" in stdout.lower() or b"not found" in stderr.lower():
            return None
        raise CredentialError(f"credential helper docker-credential-{name} exited {returncode}")
    try:
        doc = json.loads(stdout)
        user, secret = str(doc["Username"]), str(doc["Secret"])
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"credential helper docker-credential-{name} gave unreadable output") from None
    if user == "<token>":
        return Credential(identity_token=secret)
    return Credential(username=user, password=secret)


class CredentialStore:
    """Explicit per-host credentials first, then Docker's config, then containers-auth.json.

    Each host is looked up once per store, however many requests ask at once;
    a failure (a broken config, a helper that fails or hangs) is remembered for
    that host too, so a hanging helper costs one timeout per run, not one per image.
    """

    def __init__(
        self,
        explicit: Mapping[str, Credential] | None = None,
        docker: DockerConfig | None = None,
        containers: DockerConfig | None = None,
    ):
        self._explicit = {k.lower(): v for k, v in (explicit or {}).items()}
        self._docker = docker
        self._containers = containers
        self._found: dict[str, Credential | None] = {}
        self._failed: dict[str, CredentialError] = {}
        self._pending: dict[str, asyncio.Future[Credential | None]] = {}

    async def __call__(self, host: str) -> Credential | None:
        host = host.lower()
        if host in self._explicit:
            return self._explicit[host]
        if host in self._found:
            return self._found[host]
        if host in self._failed:
            raise self._failed[host]
        pending = self._pending.get(host)
        if pending is None:
            pending = self._pending[host] = asyncio.ensure_future(self._lookup(host))
            # Read the outcome even if every caller was cancelled meanwhile (no "never retrieved").
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Shielded: one caller's timeout must not cancel the lookup the others wait for.
        return await asyncio.shield(pending)

    async def _lookup(self, host: str) -> Credential | None:
        try:
            if self._docker is None:
                self._docker = DockerConfig.load()
            found = await self._docker.lookup(host)
            if found is None:
                if self._containers is None:
                    where = containers_auth_path()
                    self._containers = DockerConfig.load(where, containers=True) if where else DockerConfig()
                found = await self._containers.lookup(host)
        except CredentialError as exc:
            self._failed[host] = exc
            raise
        finally:
            self._pending.pop(host, None)
        self._found[host] = found
        return found

    def secrets(self) -> tuple[str, ...]:
        """Every secret seen so far (for masking)."""
        found: list[str] = []
        for cred in [*self._explicit.values(), *self._found.values()]:
            if cred is not None:
                found.extend(cred.secrets())
        return tuple(found)
