"""The library: copy, inspect and sync images from Python (docs/library.md).

::

    async with Client(insecure=["localhost:5000"]) as client:
        result = await client.copy("docker.io/library/alpine:3.20", "localhost:5000/alpine",
                                   platforms=["linux/amd64"])

A :class:`Client` reads no environment variable and changes no global state: what it uses
is what it was given. :meth:`Client.from_env` builds one the way the command line does
(Docker's config and credential helpers, ``DT_INSECURE_REGISTRIES``, ``DT_RETRY_*``).
The speed-ups the command line applies are opt-in: :func:`docker_transfer.speedups.apply`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING

from docker_transfer.config import AttestationMode, Config, ImageEntry, load_config
from docker_transfer.engine.copy import CopyResult
from docker_transfer.engine.describe import describe
from docker_transfer.engine.single import copy_image, destination_tags
from docker_transfer.engine.sync import Syncer, SyncEvents, SyncOptions
from docker_transfer.errors import DockerTransferError, UsageError
from docker_transfer.plan import Target, plan_jobs
from docker_transfer.platform import Platform, parse_platform
from docker_transfer.reference import DOCKER_HUB_ALIASES, DOCKER_HUB_API_HOST, Reference, parse_reference
from docker_transfer.registry.client import RegistryClient, RequestStats
from docker_transfer.registry.credentials import Credential, CredentialLookup, CredentialStore
from docker_transfer.registry.retry import RetryPolicy
from docker_transfer.registry.transport import TransportOptions, insecure_hosts_from_env
from docker_transfer.report import Report, TagResult

if TYPE_CHECKING:
    import httpx

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
    "copy",
    "load_config",
]

Credentials = CredentialLookup | Mapping[str, Credential]
"""Per-host credentials: a mapping ``{host: Credential}`` or a callable ``host -> Credential | None``
(it may be a coroutine function). A callable is asked with the API host (``registry-1.docker.io``
for Docker Hub); a mapping's keys may name Docker Hub by any of its names (``docker.io``…)."""


def _anonymous(host: str) -> Credential | None:
    return None


class Client:
    """Copies, inspects and syncs images over one pooled HTTP client; use it as ``async with``.

    ``insecure``: hosts (``HOST[:PORT]``) reached over plain HTTP or unverified TLS.
    ``ca_file``: an extra PEM bundle to trust besides the system's. ``credentials``: see
    :data:`Credentials` (default: anonymous). ``retry``: attempts and backoff
    (:class:`RetryPolicy`, default 5 attempts). ``http``: an ``httpx.AsyncClient`` of your own
    (its TLS, proxies and limits are then yours; it is not closed by the client, and gets one
    response hook that refuses unparsable redirects). ``concurrency``: blob streams at once.
    """

    def __init__(
        self,
        *,
        insecure: Iterable[str] = (),
        ca_file: str | os.PathLike[str] | None = None,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        read_timeout: float = 60.0,
        concurrency: int = 8,
    ) -> None:
        transport = TransportOptions.create(
            insecure, ca_cert=None if ca_file is None else os.fspath(ca_file), read_timeout=read_timeout
        )
        if credentials is None:
            lookup: CredentialLookup = _anonymous
        elif isinstance(credentials, Mapping):
            lookup = _mapping_lookup(credentials)
        else:
            lookup = credentials
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, not {concurrency}")
        self.concurrency = concurrency
        self._owns_http = http is None
        self._registry = RegistryClient(transport, lookup, retry=retry or RetryPolicy(), http=http)

    @classmethod
    def from_env(
        cls,
        *,
        insecure: Iterable[str] = (),
        ca_file: str | os.PathLike[str] | None = None,
        credentials: Mapping[str, Credential] | None = None,
        read_timeout: float = 60.0,
        concurrency: int = 8,
    ) -> Client:
        """A client set up as the command line's: the only place the environment is read.

        Credentials: ``credentials`` first, then Docker's config (``$DOCKER_CONFIG``, its
        credential helpers within ``DT_CREDENTIAL_HELPER_TIMEOUT``), then containers-auth.json.
        Insecure hosts: ``insecure`` plus ``DT_INSECURE_REGISTRIES``. Retries: ``DT_RETRY_ATTEMPTS``,
        ``DT_RETRY_WAIT_INITIAL``, ``DT_RETRY_WAIT_MAX``, ``DT_RETRY_AFTER_CAP``.
        """
        return cls(
            insecure=[*insecure, *insecure_hosts_from_env()],
            ca_file=ca_file,
            credentials=CredentialStore(credentials),
            retry=RetryPolicy.from_env(),
            read_timeout=read_timeout,
            concurrency=concurrency,
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections (an ``http`` client passed in is left open: it is yours)."""
        if self._owns_http:
            await self._registry.aclose()

    @property
    def registry(self) -> RegistryClient:
        """The registry client underneath, for what this façade does not cover."""
        return self._registry

    @property
    def stats(self) -> RequestStats:
        """Requests sent so far, by host, method and kind; bytes moved; rate limits seen."""
        return self._registry.stats

    async def copy(
        self,
        source: str | Reference,
        destination: str | Reference,
        *,
        platforms: Sequence[str | Platform] | None = None,
        tags: Sequence[str] = (),
        attestations: AttestationMode = "auto",
        force: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> CopyResult:
        """Copy one image, only the chosen ``platforms`` (None: all), as ``docker-transfer copy``.

        The destination gets its own tag (else the source's) plus ``tags``; tags are written
        last, after every blob and manifest. When they already hold what would be pushed,
        nothing is pushed and the result's ``status`` is ``unchanged`` (unless ``force``).
        ``progress`` is called with each number of bytes that reached the destination.
        """
        src = _reference(source)
        dest, all_tags = destination_tags(src, _reference(destination, default_tag=None), tags)
        chosen = None if platforms is None else [_platform(p) for p in platforms] or None
        return await copy_image(
            self._registry,
            src,
            dest,
            all_tags,
            chosen,
            attestations=attestations,
            force=force,
            concurrency=self.concurrency,
            progress=progress,
        )

    async def inspect(self, reference: str | Reference) -> dict[str, object]:
        """The document ``docker-transfer inspect --json`` prints: digest, media type, platforms."""
        return await describe(self._registry, _reference(reference))

    async def sync(
        self,
        config: Config | str | os.PathLike[str],
        *,
        registry: str,
        namespace: str,
        options: SyncOptions | None = None,
        events: SyncEvents | None = None,
    ) -> Report:
        """Mirror every entry of an images.json (a path or a loaded :class:`Config`), as ``sync``.

        Images go to ``{registry}/{namespace}/{target}:{tag}``. Failures are recorded in the
        report, per tag, and never stop the other entries; :meth:`Report.exit_code` sums it up.
        """
        loaded = config if isinstance(config, Config) else load_config(config)
        jobs = plan_jobs(loaded, Target(registry=registry, namespace=namespace))
        report = Report(started=datetime.now(UTC))
        try:
            await Syncer(self._registry, options, events).run(jobs, report)
        finally:
            report.finished = datetime.now(UTC)
        return report


def copy(
    source: str | Reference,
    destination: str | Reference,
    *,
    platforms: Sequence[str | Platform] | None = None,
    tags: Sequence[str] = (),
    insecure: Iterable[str] = (),
    ca_file: str | os.PathLike[str] | None = None,
    credentials: Credentials | None = None,
    retry: RetryPolicy | None = None,
    attestations: AttestationMode = "auto",
    force: bool = False,
) -> CopyResult:
    """Blocking :meth:`Client.copy` with a client of its own (not from inside an event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise UsageError(
            "docker_transfer.copy() blocks: inside an event loop, use `await Client().copy(...)`"
        )

    async def run() -> CopyResult:
        async with Client(insecure=insecure, ca_file=ca_file, credentials=credentials, retry=retry) as client:
            return await client.copy(
                source, destination, platforms=platforms, tags=tags, attestations=attestations, force=force
            )

    return asyncio.run(run())


def _reference(value: str | Reference, *, default_tag: str | None = "latest") -> Reference:
    return value if isinstance(value, Reference) else parse_reference(value, default_tag=default_tag)


def _platform(value: str | Platform) -> Platform:
    return value if isinstance(value, Platform) else parse_platform(value)


def _mapping_lookup(credentials: Mapping[str, Credential]) -> CredentialLookup:
    by_host = {_api_host(host): credential for host, credential in credentials.items()}

    def lookup(host: str) -> Credential | None:
        return by_host.get(_api_host(host))

    return lookup


def _api_host(host: str) -> str:
    host = host.lower()
    return DOCKER_HUB_API_HOST if host in DOCKER_HUB_ALIASES else host
