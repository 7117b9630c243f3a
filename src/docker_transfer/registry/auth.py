"""Registry authentication as an httpx auth flow.

The flow sends a request with whatever it already knows for the host (a cached
bearer token for the request's scopes, or basic credentials), and on a 401 reads
the ``WWW-Authenticate`` challenge, fetches a token from the realm (anonymous,
with a password, or with an identity token), and replays the request once.
A second 401 is final: it surfaces as an authentication error, not a loop.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import math
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass, field

import httpx

from docker_transfer.errors import AuthenticationError, RegistryError
from docker_transfer.registry.credentials import Credential, CredentialLookup
from docker_transfer.registry.httperrors import (
    CREDENTIAL_SENT,
    MAX_ERROR_BODY,
    credential_problem,
    read_bounded,
)
from docker_transfer.registry.transport import TransportOptions

MAX_TOKEN_BODY = 1024 * 1024
_TOKEN_MARGIN = 20.0
_MIN_LIFETIME = 60.0
# What an Authorization header value can carry: visible ASCII (JWTs and opaque tokens alike).
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_QUOTED_PAIR_RE = re.compile(r"\\(.)")
# The name is greedy and the endpoint spelled out, so a repository with a path component named
# like an endpoint ("team/blobs/app") still gets its own name as the scope.
_PATH_RE = re.compile(
    r"^/v2/(?P<name>.+)/(?:manifests/[^/]+|blobs/uploads(?:/.*)?|blobs/[^/]+|tags/list|referrers/[^/]+)/?$"
)


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``Bearer realm="…",service="…",scope="…"`` (and ``Basic realm=…``)."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        # A challenge without parameters ("Negotiate, Bearer …") leaves its separating comma here.
        rest = rest.lstrip(", \t")
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if m is None:
            break
        scheme = m.group(1).lower()
        rest = rest[m.end() :]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM_RE.match(rest)
            if pm is None:
                break
            quoted = pm.group(2)
            value = _QUOTED_PAIR_RE.sub(r"\1", quoted) if quoted is not None else (pm.group(3) or "")
            params[pm.group(1).lower()] = value
            rest = rest[pm.end() :].lstrip()
            if rest.startswith(","):
                rest = rest[1:].lstrip()
                if _PARAM_RE.match(rest) is None:
                    break
            else:
                break
        challenges.append(Challenge(scheme, params))
    return challenges


def scopes_for(request: httpx.Request) -> tuple[str, ...]:
    """The token scopes a request needs: pull for reads, pull+push for writes, pull on a mount source."""
    m = _PATH_RE.match(request.url.path)
    if m is None:
        return ()
    name = m.group("name")
    write = request.method not in ("GET", "HEAD")
    scopes = [f"repository:{name}:{'pull,push' if write else 'pull'}"]
    mount_from = request.url.params.get("from")
    if mount_from and mount_from != name:
        scopes.append(f"repository:{mount_from}:pull")
    return tuple(scopes)


def _basic(credential: Credential) -> str:
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryAuth(httpx.Auth):
    """Auth flow shared by every request to registries; caches per host and scope."""

    def __init__(
        self,
        credentials: CredentialLookup,
        transport: TransportOptions,
        send: Callable[[httpx.Request], Awaitable[httpx.Response]],
    ) -> None:
        self._send = send
        self._credentials = credentials
        self._transport = transport
        self._bearer: dict[str, Challenge] = {}
        self._basic: dict[str, str] = {}  # host -> Basic header, once the host asked for Basic
        self._tokens: dict[tuple[str, tuple[str, ...]], _Token] = {}
        self._locks: dict[tuple[str, tuple[str, ...]], asyncio.Lock] = {}
        self.token_requests = 0

    def secrets(self) -> tuple[str, ...]:
        """Every bearer token obtained so far, so output filters can mask them."""
        return tuple(token.value for token in self._tokens.values())

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("docker-transfer's registry auth is async only")

    async def _credential(self, host: str) -> Credential | None:
        # A lookup may run a credential helper: the store does that off the event loop.
        found = self._credentials(host)
        if inspect.isawaitable(found):
            return await found
        return found

    async def _mark(self, response: httpx.Response, host: str) -> None:
        """Tell error messages whether a credential existed for a host that refused the request."""
        if response.status_code in (401, 403):
            response.extensions[CREDENTIAL_SENT] = await self._credential(host) is not None

    def _cached(self, host: str, scopes: tuple[str, ...]) -> str | None:
        if host in self._basic:
            return self._basic[host]
        if host in self._bearer:
            token = self._tokens.get((host, scopes))
            if token and token.expires_at > time.monotonic():
                return f"Bearer {token.value}"
        return None

    def _lock(self, host: str, scopes: tuple[str, ...]) -> asyncio.Lock:
        return self._locks.setdefault((host, scopes), asyncio.Lock())

    async def _token(
        self, url: httpx.URL, challenge: Challenge, scopes: tuple[str, ...], sent: str | None
    ) -> str:
        """A bearer header for ``scopes``: reuse one fetched meanwhile by a concurrent request, else fetch."""
        host = url.netloc.decode().lower()
        async with self._lock(host, scopes):
            current = self._cached(host, scopes)
            if current is not None and current != sent:
                return current
            wanted = _merge_scopes(scopes, challenge.params.get("scope", ""))
            credential = await self._credential(host)
            token_request = self._token_request(url, challenge, wanted, credential)
            # Sent here rather than yielded: httpx would re-read a yielded response's body
            # without a bound, and the token exchange must not carry the registry's auth flow.
            token_response = await self._send(token_request)
            token = await self._read_token(token_response, host, sent=credential is not None)
            self._tokens[(host, scopes)] = token
            return f"Bearer {token.value}"

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        host = request.url.netloc.decode().lower()
        scopes = scopes_for(request)
        header = self._cached(host, scopes)
        if header is None and host in self._bearer and scopes:
            # A known token host: fetch the new scope's token up front instead of eating a 401.
            header = await self._token(request.url, self._bearer[host], scopes, None)
        if header:
            request.headers["Authorization"] = header
        response = yield request
        if response.status_code != 401:
            await self._mark(response, host)
            return
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        credential = await self._credential(host)
        if bearer is not None and "realm" in bearer.params:
            # Remembered for up-front fetches of other scopes: without this request's scope.
            params = {k: v for k, v in bearer.params.items() if k != "scope"}
            self._bearer[host] = Challenge(bearer.scheme, params)
            request.headers["Authorization"] = await self._token(request.url, bearer, scopes, header)
            response = yield request
        elif basic is not None and credential is not None and credential.password:
            self._basic[host] = _basic(credential)
            request.headers["Authorization"] = self._basic[host]
            response = yield request
        # Otherwise the 401 stands and the caller reports it.
        await self._mark(response, host)

    def _token_request(
        self,
        registry_url: httpx.URL,
        challenge: Challenge,
        scopes: tuple[str, ...],
        credential: Credential | None,
    ) -> httpx.Request:
        realm = self._transport.follow_url(registry_url, challenge.params["realm"], relative=False)
        service = challenge.params.get("service")
        self.token_requests += 1
        if credential is not None and credential.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credential.identity_token,
                "client_id": "docker-transfer",
                "access_type": "offline",
            }
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            return httpx.Request("POST", realm, data=form)
        params: list[tuple[str, str | int | float | bool | None]] = []
        if service:
            params.append(("service", service))
        params.extend(("scope", s) for s in scopes)
        headers = {}
        if credential is not None and credential.password:
            headers["Authorization"] = _basic(credential)
        return httpx.Request("GET", realm.copy_merge_params(params), headers=headers)

    async def _read_token(self, response: httpx.Response, host: str, *, sent: bool) -> _Token:
        if response.status_code in (401, 403):
            await read_bounded(response, MAX_ERROR_BODY)
            raise AuthenticationError(
                f"{credential_problem(host, sent)} (its token service answered {response.status_code})",
                status=response.status_code,
                host=host,
            )
        body = await read_bounded(response, MAX_TOKEN_BODY, strict=True)
        if response.status_code >= 400:
            raise RegistryError(
                f"token service for {host} answered {response.status_code}",
                status=response.status_code,
                host=host,
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        value, expires_in = parse_token(body)
        if value is None:
            raise RegistryError(f"token service for {host} returned no token", host=host)
        if _TOKEN_RE.fullmatch(value) is None:
            # Sending it would fail deep in httpx (a header is ASCII); say what the service did.
            raise RegistryError(
                f"token service for {host} returned a token with characters an HTTP header cannot carry",
                host=host,
            )
        return _Token(value, time.monotonic() + expires_in - _TOKEN_MARGIN)


def parse_token(body: bytes) -> tuple[str | None, float]:
    """The token and its lifetime in seconds from a token service's JSON answer.

    The token is ``token`` or, failing that, ``access_token`` (None when neither is a
    non-empty string). The lifetime is ``expires_in`` when it is a finite number (or
    a numeric string), at least 60 s as Docker's client does; otherwise 60 s. A NaN
    lifetime would make every request fetch a new token.
    """
    try:
        # Integers as floats: a thousand-digit expires_in is just a long lifetime, not an error.
        doc = json.loads(body, parse_int=float)
    except (ValueError, RecursionError):
        return None, _MIN_LIFETIME
    if not isinstance(doc, dict):
        return None, _MIN_LIFETIME
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        value = None
    raw = doc.get("expires_in")
    lifetime = _MIN_LIFETIME
    if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
        try:
            seconds = float(raw)
        except (ValueError, OverflowError):
            seconds = math.nan
        if math.isfinite(seconds):
            lifetime = max(seconds, _MIN_LIFETIME)
    return value, lifetime


def _merge_scopes(ours: tuple[str, ...], challenged: str) -> tuple[str, ...]:
    merged = list(ours)
    for scope in challenged.split():
        if scope and scope not in merged:
            merged.append(scope)
    return tuple(merged)
