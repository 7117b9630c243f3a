"""Registry protocol corner cases against small in-process fake registries (httpx.MockTransport).

Every fake is a little stateful class standing in for a registry (and its token
service or blob storage); tests drive the real client verbs against it and look
at what the fake saw.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from docker_transfer.errors import (
    AuthenticationError,
    AuthorizationError,
    DigestMismatchError,
    DockerTransferError,
    ManifestError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    SizeMismatchError,
    TransportError,
    UnsafeRedirectError,
    UsageError,
)
from docker_transfer.manifest import (
    ACCEPT_MANIFESTS,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
)
from docker_transfer.reference import Reference, parse_reference
from docker_transfer.registry import auth as auth_module
from docker_transfer.registry.auth import Challenge, parse_challenges, scopes_for
from docker_transfer.registry.blobs import MAX_REDIRECTS, open_blob, read_blob
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.credentials import Credential
from docker_transfer.registry.httperrors import MAX_ERROR_BODY, RETRY_AFTER_LIMIT, parse_retry_after
from docker_transfer.registry.manifests import get_manifest, head_manifest
from docker_transfer.registry.retry import NO_RETRY, RetryPolicy
from docker_transfer.registry.transport import INSECURE_ENV, TransportOptions, normalise_host
from docker_transfer.registry.upload import (
    UploadSession,
    mount_blob,
    start_upload,
    upload_chunked,
    upload_monolithic,
)

REG = "registry.example"
AUTH = "auth.example"
STORAGE = "storage.example"
REALM = f"https://{AUTH}/token"
FAST = RetryPolicy(attempts=5, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01)
KIB = 1024
MIB = 1024 * KIB

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_bytes(media_type: str = OCI_MANIFEST) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(b"{}"),
            "size": 2,
        },
        "layers": [],
    }
    return json.dumps(doc).encode()


MANIFEST = manifest_bytes()
MANIFEST_DIGEST = sha256(MANIFEST)
REF = parse_reference(f"{REG}/team/app:1")


class StreamingMockTransport(httpx.MockTransport):
    """MockTransport that hands the handler the request body unread, as a server receives it.

    (httpx.MockTransport reads the whole request first, which would hide a cut upload.)
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = self.handler(request)
        if not isinstance(response, httpx.Response):
            response = await response
        return response


def make_client(
    handler: Handler,
    *,
    insecure: Iterable[str] = (),
    credentials: dict[str, Credential] | None = None,
    retry: RetryPolicy = FAST,
) -> RegistryClient:
    creds = credentials or {}
    return RegistryClient(
        TransportOptions.create(insecure, use_env=False),
        credentials=creds.get,
        retry=retry,
        http=httpx.AsyncClient(transport=StreamingMockTransport(handler)),
    )


def errors_body(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def snapshot(request: httpx.Request) -> httpx.Request:
    """A copy of method, URL and headers: the auth flow edits and re-sends the same request object."""
    return httpx.Request(request.method, request.url, headers=request.headers.copy())


class Body:
    """A streamed body of ``total`` bytes (endless when None) that counts what it produced."""

    def __init__(self, *, total: int | None = None, chunk: int = 64 * KIB, fail_after: int | None = None):
        self.total = total
        self.chunk = chunk
        self.fail_after = fail_after
        self.produced = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.total is None or self.produced < self.total:
            if self.fail_after is not None and self.produced >= self.fail_after:
                raise httpx.ReadError("connection reset by peer")
            size = self.chunk if self.total is None else min(self.chunk, self.total - self.produced)
            self.produced += size
            yield b"x" * size
            await asyncio.sleep(0)


class Once:
    """A streamed body (no Content-Length of its own, not pre-read), like a real server's."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


def reply(status: int, doc: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """A JSON answer with a streamed body."""
    data = json.dumps(doc).encode()
    all_headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}
    return httpx.Response(status, headers=all_headers, content=Once(data))


def manifest_response(
    request: httpx.Request, data: bytes = MANIFEST, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    headers = {"Content-Type": media_type, "Docker-Content-Digest": sha256(data)}
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(data))
        return httpx.Response(200, headers=headers)
    return httpx.Response(200, headers=headers, content=Once(data))


async def chunks_of(data: bytes, size: int, *, corrupt_at: int | None = None) -> AsyncIterator[bytes]:
    """The source side of an upload: ``data`` in pieces, one byte flipped at ``corrupt_at``."""
    if corrupt_at is not None:
        flipped = bytearray(data)
        flipped[corrupt_at] ^= 0xFF
        data = bytes(flipped)
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


# --- 1. WWW-Authenticate parsing -------------------------------------------------------------


def test_parse_bearer_with_commas_inside_quoted_scope() -> None:
    header = (
        f'Bearer realm="{REALM}",service="{REG}",'
        'scope="repository:team/app:pull,push repository:other/src:pull"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": REALM,
                "service": REG,
                "scope": "repository:team/app:pull,push repository:other/src:pull",
            },
        )
    ]


def test_parse_basic_realm() -> None:
    assert parse_challenges('Basic realm="Registry Realm"') == [
        Challenge("basic", {"realm": "Registry Realm"})
    ]


def test_parse_multiple_challenges() -> None:
    header = f'Basic realm="Registry", Bearer realm="{REALM}",service="{REG}"'
    assert parse_challenges(header) == [
        Challenge("basic", {"realm": "Registry"}),
        Challenge("bearer", {"realm": REALM, "service": REG}),
    ]


def test_parse_challenge_without_parameters_does_not_hide_the_next_one() -> None:
    assert parse_challenges(f'Negotiate, Bearer realm="{REALM}"') == [
        Challenge("negotiate", {}),
        Challenge("bearer", {"realm": REALM}),
    ]


def test_parse_escaped_quotes_and_backslashes() -> None:
    header = r'Bearer realm="https://a.example/t",error_description="the \"token\" is \\ bad, really"'
    (challenge,) = parse_challenges(header)
    assert challenge.params["error_description"] == 'the "token" is \\ bad, really'
    assert challenge.params["realm"] == "https://a.example/t"


def test_parse_odd_spacing_case_and_unquoted_values() -> None:
    header = f'  BEARER   Realm = "{REALM}" ,  service={REG} ,scope = "repository:x:pull"  '
    assert parse_challenges(header) == [
        Challenge("bearer", {"realm": REALM, "service": REG, "scope": "repository:x:pull"})
    ]


@pytest.mark.parametrize("header", ["", "   ", ",", "=junk"])
def test_parse_garbage_gives_nothing_useful(header: str) -> None:
    assert all(not c.params for c in parse_challenges(header))


# --- 2. token scopes ----------------------------------------------------------------------------

DIGEST = sha256(b"blob")


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v2/team/app/manifests/1", ("repository:team/app:pull",)),
        ("HEAD", f"/v2/team/app/blobs/{DIGEST}", ("repository:team/app:pull",)),
        ("GET", "/v2/team/app/tags/list", ("repository:team/app:pull",)),
        ("GET", f"/v2/team/app/referrers/{DIGEST}", ("repository:team/app:pull",)),
        ("PUT", "/v2/team/app/manifests/1", ("repository:team/app:pull,push",)),
        ("POST", "/v2/team/app/blobs/uploads/", ("repository:team/app:pull,push",)),
        ("PATCH", "/v2/team/app/blobs/uploads/0f1e-uuid", ("repository:team/app:pull,push",)),
        ("PUT", "/v2/team/app/blobs/uploads/0f1e-uuid", ("repository:team/app:pull,push",)),
        ("GET", "/v2/a/b/c/d/manifests/latest", ("repository:a/b/c/d:pull",)),
        # Path components named like endpoints belong to the repository name.
        ("GET", "/v2/team/blobs/app/manifests/1", ("repository:team/blobs/app:pull",)),
        ("HEAD", f"/v2/x/manifests/blobs/{DIGEST}", ("repository:x/manifests:pull",)),
        ("GET", "/v2/team/app/manifests/blobs", ("repository:team/app:pull",)),
        ("POST", "/v2/team/blobs/blobs/uploads/", ("repository:team/blobs:pull,push",)),
        ("GET", "/v2/", ()),
        ("GET", "/v2", ()),
        ("GET", "/v2/_catalog", ()),
        ("GET", "/storage/blob", ()),
    ],
)
def test_scopes_for(method: str, path: str, expected: tuple[str, ...]) -> None:
    assert scopes_for(httpx.Request(method, f"https://{REG}{path}")) == expected


def test_scopes_for_mount_adds_source_pull() -> None:
    url = f"https://{REG}/v2/team/app/blobs/uploads/?mount={DIGEST}&from=other/deep/src"
    assert scopes_for(httpx.Request("POST", url)) == (
        "repository:team/app:pull,push",
        "repository:other/deep/src:pull",
    )
    same = f"https://{REG}/v2/team/app/blobs/uploads/?mount={DIGEST}&from=team/app"
    assert scopes_for(httpx.Request("POST", same)) == ("repository:team/app:pull,push",)


# --- 3. bearer token flow -------------------------------------------------------------------------


class BearerRegistry:
    """``registry.example`` guarded by tokens from ``auth.example/token`` (or another realm).

    The token service accepts anonymous GETs, Basic credentials from ``users`` and
    refresh tokens posted as a form; every issued token is valid unless ``reject_all``.
    """

    def __init__(
        self,
        *,
        realm: str = REALM,
        expires_in: float = 300,
        users: dict[str, str] | None = None,
        refresh_tokens: set[str] | None = None,
        reject_all: bool = False,
        token_delay: float = 0.0,
        token_body: Body | None = None,
    ) -> None:
        self.realm = realm
        self.realm_host = httpx.URL(realm).host
        self.expires_in = expires_in
        self.users = users
        self.refresh_tokens = refresh_tokens or set()
        self.reject_all = reject_all
        self.token_delay = token_delay
        self.token_body = token_body
        self.valid: set[str] = set()
        self.registry_requests: list[httpx.Request] = []
        self.token_requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self.realm_host:
            return await self.token(request)
        self.registry_requests.append(snapshot(request))
        header = request.headers.get("Authorization", "")
        if not self.reject_all and header.startswith("Bearer ") and header[7:] in self.valid:
            return self.serve(request)
        scope = " ".join(scopes_for(request))
        challenge = f'Bearer realm="{self.realm}",service="{REG}",scope="{scope}"'
        return reply(
            401, errors_body("UNAUTHORIZED", "authentication required"), {"WWW-Authenticate": challenge}
        )

    def serve(self, request: httpx.Request) -> httpx.Response:
        if "/manifests/" in request.url.path:
            return manifest_response(request)
        if request.method == "POST" and request.url.params.get("mount"):
            return httpx.Response(201, headers={"Location": f"/v2/team/app/blobs/{DIGEST}"})
        return reply(404, errors_body("NAME_UNKNOWN", "no such thing"))

    async def token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.token_body is not None:
            return httpx.Response(200, headers={"Content-Type": "application/json"}, content=self.token_body)
        if request.method == "POST":
            form = urllib.parse.parse_qs(request.content.decode())
            if form.get("refresh_token", [""])[0] not in self.refresh_tokens:
                return reply(401, {"error": "invalid_grant"})
        elif self.users is not None:
            given = request.headers.get("Authorization", "")
            if given not in {basic(u, p) for u, p in self.users.items()}:
                return reply(401, {"details": "bad credentials"})
        token = f"tok-{len(self.valid) + 1}"
        self.valid.add(token)
        return reply(200, {"token": token, "expires_in": self.expires_in})


async def test_anonymous_token_request_carries_no_authorization() -> None:
    fake = BearerRegistry()
    async with make_client(fake) as client:
        manifest = await get_manifest(client, REF)
    assert manifest.digest == MANIFEST_DIGEST
    (token_request,) = fake.token_requests
    assert token_request.method == "GET"
    assert "Authorization" not in token_request.headers
    assert token_request.url.params["service"] == REG
    assert token_request.url.params.get_list("scope") == ["repository:team/app:pull"]
    first, second = fake.registry_requests
    assert "Authorization" not in first.headers
    assert second.headers["Authorization"] == "Bearer tok-1"


async def test_password_is_sent_as_basic_to_the_realm_only() -> None:
    fake = BearerRegistry(users={"alice": "s3cret"})
    async with make_client(fake, credentials={REG: Credential("alice", "s3cret")}) as client:
        await get_manifest(client, REF)
    (token_request,) = fake.token_requests
    assert token_request.headers["Authorization"] == basic("alice", "s3cret")
    assert all("s3cret" not in r.headers.get("Authorization", "") for r in fake.registry_requests)
    assert all(not r.headers.get("Authorization", "").startswith("Basic") for r in fake.registry_requests)


async def test_wrong_password_at_the_token_service_is_an_authentication_error() -> None:
    fake = BearerRegistry(users={"alice": "s3cret"})
    async with make_client(fake, credentials={REG: Credential("alice", "wrong")}) as client:
        with pytest.raises(AuthenticationError) as info:
            await FAST.call(lambda: get_manifest(client, REF))
    assert "wrong" not in str(info.value)
    assert len(fake.token_requests) == 1
    assert len(fake.registry_requests) == 1


async def test_identity_token_is_posted_as_refresh_token_grant() -> None:
    fake = BearerRegistry(refresh_tokens={"refresh-xyz"})
    async with make_client(
        fake, credentials={REG: Credential("alice", identity_token="refresh-xyz")}
    ) as client:
        await get_manifest(client, REF)
    (token_request,) = fake.token_requests
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(token_request.content.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["refresh-xyz"]
    assert form["service"] == [REG]
    assert form["scope"] == ["repository:team/app:pull"]
    assert "refresh-xyz" not in str(token_request.url)


async def test_concurrent_requests_share_one_token_per_scope() -> None:
    fake = BearerRegistry(token_delay=0.02)
    async with make_client(fake) as client:
        heads = await asyncio.gather(*(head_manifest(client, REF) for _ in range(10)))
        assert {h.digest for h in heads if h is not None} == {MANIFEST_DIGEST}
        assert len(fake.token_requests) == 1
        # Known token host: a new scope is fetched up front, without another 401 first.
        before = len(fake.registry_requests)
        await head_manifest(client, parse_reference(f"{REG}/team/other:1"))
        assert len(fake.token_requests) == 2
        assert len(fake.registry_requests) == before + 1
        assert fake.token_requests[1].url.params.get_list("scope") == ["repository:team/other:pull"]
        # Same scope again: cached.
        await head_manifest(client, REF)
        assert len(fake.token_requests) == 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("expires_in", "still_valid_after", "expired_after"),
    [
        (300, 279.0, 281.0),  # 20 s safety margin
        (1, 39.0, 41.0),  # clamped to 60 s, minus the margin
    ],
)
async def test_expired_token_is_fetched_again(
    monkeypatch: pytest.MonkeyPatch, expires_in: float, still_valid_after: float, expired_after: float
) -> None:
    clock = Clock()
    monkeypatch.setattr(auth_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    fake = BearerRegistry(expires_in=expires_in)
    async with make_client(fake) as client:
        await head_manifest(client, REF)
        assert len(fake.token_requests) == 1
        clock.now += still_valid_after
        await head_manifest(client, REF)
        assert len(fake.token_requests) == 1
        clock.now += expired_after - still_valid_after
        await head_manifest(client, REF)
        assert len(fake.token_requests) == 2
    assert fake.registry_requests[-1].headers["Authorization"] == "Bearer tok-2"


@pytest.mark.parametrize("total", [5 * MIB, None], ids=["5MiB", "endless"])
async def test_token_body_is_bounded(total: int | None) -> None:
    body = Body(total=total)
    fake = BearerRegistry(token_body=body)
    async with make_client(fake) as client:
        with pytest.raises(RegistryError, match="no token"):
            await asyncio.wait_for(get_manifest(client, REF), timeout=5)
    assert body.produced <= auth_module.MAX_TOKEN_BODY + body.chunk


@pytest.mark.parametrize(
    "realm",
    [
        "https://169.254.169.254/token",
        "http://169.254.169.254/latest/meta-data/iam",
        "https://[fe80::1]/token",
        "https://2852039166/token",  # 169.254.169.254 written as one decimal number
        "https://0xa9fea9fe/token",
        "https://10.0.0.7/token",
        "https://127.0.0.1:5001/token",
        "http://auth.example/token",  # https registry, plain-http realm
        "file:///etc/passwd",
    ],
)
async def test_token_realm_is_refused_when_unsafe(realm: str) -> None:
    fake = BearerRegistry(realm=realm)
    async with make_client(fake) as client:
        with pytest.raises(UnsafeRedirectError):
            await get_manifest(client, REF)
    assert fake.token_requests == []


async def test_link_local_realm_is_allowed_when_listed() -> None:
    fake = BearerRegistry(realm="https://169.254.169.254/token")
    async with make_client(fake, insecure=["169.254.169.254"]) as client:
        await get_manifest(client, REF)
    assert len(fake.token_requests) == 1


# --- 4. final authentication and permission answers -----------------------------------------------


async def test_second_401_is_final() -> None:
    fake = BearerRegistry(reject_all=True)
    async with make_client(fake) as client:
        with pytest.raises(AuthenticationError) as info:
            await FAST.call(lambda: get_manifest(client, REF))
    assert info.value.status == 401
    assert len(fake.registry_requests) == 2
    assert len(fake.token_requests) == 1


class StatusRegistry:
    """Answers every request with one status (and a Basic challenge on 401)."""

    def __init__(self, status: int, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = body or errors_body("DENIED", "nope")
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(snapshot(request))
        headers = {"WWW-Authenticate": 'Basic realm="Registry"'} if self.status == 401 else {}
        return reply(self.status, self.body, headers)


async def test_basic_401_retries_once_with_credentials() -> None:
    fake = StatusRegistry(401)
    async with make_client(fake, credentials={REG: Credential("alice", "pw")}) as client:
        with pytest.raises(AuthenticationError):
            await FAST.call(lambda: get_manifest(client, REF))
    assert len(fake.requests) == 2
    assert "Authorization" not in fake.requests[0].headers
    assert fake.requests[1].headers["Authorization"] == basic("alice", "pw")


async def test_basic_401_without_credentials_is_not_replayed() -> None:
    fake = StatusRegistry(401)
    async with make_client(fake) as client:
        with pytest.raises(AuthenticationError):
            await FAST.call(lambda: get_manifest(client, REF))
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "challenge", ['Bearer error="invalid_token"', "Negotiate", 'Digest realm="r", nonce="n"', ""]
)
async def test_password_is_not_sent_without_a_usable_challenge(challenge: str) -> None:
    requests: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        requests.append(snapshot(request))
        return reply(401, errors_body("UNAUTHORIZED", "no"), {"WWW-Authenticate": challenge})

    async with make_client(handler, credentials={REG: Credential("alice", "pw")}) as client:
        with pytest.raises(AuthenticationError):
            await FAST.call(lambda: get_manifest(client, REF))
    assert len(requests) == 1
    assert "Authorization" not in requests[0].headers


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (403, AuthorizationError, "DENIED"),
        (404, NotFoundError, "MANIFEST_UNKNOWN"),
        (400, RegistryError, "MANIFEST_INVALID"),
    ],
)
async def test_client_errors_are_not_retried(status: int, error: type[RegistryError], code: str) -> None:
    fake = StatusRegistry(status, errors_body(code, "no"))
    async with make_client(fake) as client:
        with pytest.raises(error) as info:
            await FAST.call(lambda: get_manifest(client, REF))
    assert type(info.value) is error
    assert info.value.code == code
    assert info.value.retryable is False
    assert len(fake.requests) == 1


# --- 5. retries -----------------------------------------------------------------------------------


Step = int | httpx.Response | Exception | Body


class ScriptedRegistry:
    """Plays one scripted answer per request (status, response, raised error or body), then 200s."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(snapshot(request))
        self.times.append(time.monotonic())
        step = self.steps.pop(0) if self.steps else 200
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        if isinstance(step, Body):
            return httpx.Response(200, headers={"Content-Type": OCI_MANIFEST}, content=step)
        if step == 200:
            return manifest_response(request)
        return reply(step, errors_body("UNAVAILABLE", f"status {step}"))


async def test_server_errors_are_retried_until_success() -> None:
    fake = ScriptedRegistry(500, 502, 503)
    async with make_client(fake) as client:
        manifest = await client.retry.call(lambda: get_manifest(client, REF))
    assert manifest.digest == MANIFEST_DIGEST
    assert len(fake.requests) == 4


async def test_retries_stop_after_the_attempt_budget() -> None:
    fake = ScriptedRegistry(*([503] * 10))
    async with make_client(fake) as client:
        with pytest.raises(RegistryError) as info:
            await client.retry.call(lambda: get_manifest(client, REF))
    assert info.value.status == 503
    assert len(fake.requests) == FAST.attempts


def rate_limited(retry_after: str) -> httpx.Response:
    return reply(429, errors_body("TOOMANYREQUESTS", "slow down"), {"Retry-After": retry_after})


async def test_retry_after_seconds_is_honoured() -> None:
    fake = ScriptedRegistry(rate_limited("1"))
    async with make_client(fake) as client:
        await client.retry.call(lambda: get_manifest(client, REF))
    assert len(fake.requests) == 2
    assert fake.times[1] - fake.times[0] >= 1.0


async def test_retry_after_http_date_is_honoured() -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1-2 s from now
    fake = ScriptedRegistry(rate_limited(when))
    async with make_client(fake) as client:
        await client.retry.call(lambda: get_manifest(client, REF))
    assert len(fake.requests) == 2
    assert fake.times[1] - fake.times[0] >= 0.9


async def test_rate_limit_is_a_retryable_error_carrying_retry_after() -> None:
    fake = ScriptedRegistry(rate_limited("7"))
    async with make_client(fake, retry=NO_RETRY) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.retry.call(lambda: get_manifest(client, REF))
    assert info.value.retryable is True
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("1", 1.0),
        ("  12 ", 12.0),
        ("99999", RETRY_AFTER_LIMIT),
        ("soon", None),
        ("-5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(
    value: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DT_RETRY_AFTER_CAP", raising=False)
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_relative_to_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DT_RETRY_AFTER_CAP", raising=False)
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now + 86400, usegmt=True), now=now) == RETRY_AFTER_LIMIT


async def test_connection_resets_are_retried() -> None:
    fake = ScriptedRegistry(
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ConnectError("connection refused"),
    )
    async with make_client(fake) as client:
        manifest = await client.retry.call(lambda: get_manifest(client, REF))
    assert manifest.digest == MANIFEST_DIGEST
    assert len(fake.requests) == 4


async def test_connection_reset_is_a_retryable_transport_error() -> None:
    fake = ScriptedRegistry(httpx.ReadError("connection reset by peer"))
    async with make_client(fake, retry=NO_RETRY) as client:
        with pytest.raises(TransportError) as info:
            await client.retry.call(lambda: get_manifest(client, REF))
    assert info.value.retryable is True
    assert info.value.host == REG


async def test_reset_in_the_middle_of_a_manifest_body_is_retried() -> None:
    fake = ScriptedRegistry(Body(total=10 * KIB, chunk=KIB, fail_after=3 * KIB))
    async with make_client(fake, retry=NO_RETRY) as client:
        with pytest.raises(TransportError):
            await get_manifest(client, REF)
        fake.steps.append(Body(total=10 * KIB, chunk=KIB, fail_after=3 * KIB))
        manifest = await FAST.call(lambda: get_manifest(client, REF))
    assert manifest.digest == MANIFEST_DIGEST


async def test_bad_request_is_never_retried() -> None:
    fake = ScriptedRegistry(400, 400, 400)
    async with make_client(fake) as client:
        with pytest.raises(RegistryError) as info:
            await client.retry.call(lambda: get_manifest(client, REF))
    assert info.value.status == 400
    assert len(fake.requests) == 1


# --- 6. manifest GET ------------------------------------------------------------------------------


async def test_manifest_requests_accept_all_four_types() -> None:
    fake = ScriptedRegistry()
    async with make_client(fake) as client:
        await get_manifest(client, REF)
        await head_manifest(client, REF)
    for request in fake.requests:
        accepted = {part.strip() for part in request.headers["Accept"].split(",")}
        assert accepted >= {OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST_V2}
        assert set(ACCEPT_MANIFESTS) <= accepted


async def test_head_manifest_reads_digest_type_and_size_from_headers() -> None:
    fake = ScriptedRegistry()
    async with make_client(fake) as client:
        head = await head_manifest(client, REF)
        assert head is not None
        assert (head.digest, head.media_type, head.size) == (MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))
        fake.steps.append(404)
        assert await head_manifest(client, REF) is None


async def test_manifest_with_declared_oversize_length_is_refused_unread() -> None:
    body = Body(total=MAX_MANIFEST_BYTES + 1)
    response = httpx.Response(
        200,
        headers={"Content-Type": OCI_MANIFEST, "Content-Length": str(MAX_MANIFEST_BYTES + 1)},
        content=body,
    )
    fake = ScriptedRegistry(response)
    async with make_client(fake) as client:
        with pytest.raises(ManifestError, match="limit"):
            await get_manifest(client, REF)
    assert body.produced == 0


async def test_manifest_without_length_is_cut_at_the_limit() -> None:
    body = Body(total=None)
    fake = ScriptedRegistry(body)
    assert "Content-Length" not in httpx.Response(200, content=Body()).headers
    async with make_client(fake) as client:
        with pytest.raises(ManifestError, match="limit"):
            await asyncio.wait_for(get_manifest(client, REF), timeout=5)
    assert body.produced <= MAX_MANIFEST_BYTES + body.chunk


async def test_manifest_by_digest_must_hash_to_that_digest() -> None:
    wanted = sha256(b"something else")
    fake = ScriptedRegistry()
    async with make_client(fake) as client:
        with pytest.raises(DigestMismatchError) as info:
            await get_manifest(client, REF, digest=wanted)
        assert info.value.expected == wanted
        assert wanted in str(info.value)
        assert info.value.actual == MANIFEST_DIGEST
        assert fake.requests[0].url.path == f"/v2/team/app/manifests/{wanted}"
        # The right digest passes.
        assert (await get_manifest(client, REF, digest=MANIFEST_DIGEST)).digest == MANIFEST_DIGEST


async def test_tag_get_checks_docker_content_digest_header() -> None:
    lying = sha256(b"another manifest")
    response = httpx.Response(
        200, headers={"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": lying}, content=Once(MANIFEST)
    )
    fake = ScriptedRegistry(response)
    async with make_client(fake) as client:
        with pytest.raises(DigestMismatchError) as info:
            await get_manifest(client, REF)
    assert info.value.expected == lying
    assert info.value.actual == MANIFEST_DIGEST


async def test_content_type_must_agree_with_media_type() -> None:
    response = httpx.Response(200, headers={"Content-Type": DOCKER_MANIFEST_V2}, content=Once(MANIFEST))
    fake = ScriptedRegistry(response)
    async with make_client(fake) as client:
        with pytest.raises(ManifestError, match="differs from Content-Type"):
            await get_manifest(client, REF)


# --- 7. blob downloads and redirects --------------------------------------------------------------

BLOB = b"layer bytes " * 100
BLOB_DIGEST = sha256(BLOB)
BLOB_URL = f"https://{REG}/v2/team/app/blobs/{BLOB_DIGEST}"


class BlobRegistry:
    """Serves BLOB at BLOB_URL; ``redirects`` maps scheme://host/path to a Location to send instead.

    The registry host demands Basic credentials; other hosts (object storage) serve anyone.
    """

    def __init__(self, redirects: dict[str, str] | None = None) -> None:
        self.redirects = redirects or {}
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(snapshot(request))
        url = request.url
        if url.host == REG and request.headers.get("Authorization") != basic("alice", "pw"):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry"'})
        key = f"{url.scheme}://{url.netloc.decode()}{url.path}"
        if key in self.redirects:
            return httpx.Response(307, headers={"Location": self.redirects[key]})
        return httpx.Response(200, headers={"Content-Type": "application/octet-stream"}, content=Once(BLOB))


CREDS = {REG: Credential("alice", "pw")}


async def read_whole_blob(client: RegistryClient) -> bytes:
    async with open_blob(client, REG, "team/app", BLOB_DIGEST) as response:
        return b"".join([chunk async for chunk in response.aiter_raw()])


async def test_cross_host_redirect_drops_authorization() -> None:
    fake = BlobRegistry({BLOB_URL: f"https://{STORAGE}/bucket/blob?X-Signature=abc"})
    async with make_client(fake, credentials=CREDS) as client:
        assert await read_whole_blob(client) == BLOB
    registry_hits = [r for r in fake.requests if r.url.host == REG]
    storage_hits = [r for r in fake.requests if r.url.host == STORAGE]
    assert registry_hits[-1].headers["Authorization"] == basic("alice", "pw")
    (storage,) = storage_hits
    assert "Authorization" not in storage.headers
    assert storage.url.params["X-Signature"] == "abc"


async def test_cross_host_hop_never_answers_a_challenge() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == STORAGE and "Authorization" not in request.headers:
            return reply(
                401, errors_body("UNAUTHORIZED", "sign in"), {"WWW-Authenticate": 'Basic realm="s3"'}
            )
        return await fake(request)

    fake = BlobRegistry({BLOB_URL: f"https://{STORAGE}/bucket/blob"})
    both = {**CREDS, STORAGE: Credential("storage-user", "storage-pw")}
    async with make_client(handler, credentials=both) as client:
        with pytest.raises(AuthenticationError):
            await read_whole_blob(client)
    assert [r.url.host for r in fake.requests] == [REG, REG]


async def test_same_host_redirect_keeps_authorization() -> None:
    fake = BlobRegistry({BLOB_URL: "/_storage/blob?sig=1"})
    async with make_client(fake, credentials=CREDS) as client:
        assert await read_whole_blob(client) == BLOB
    last = fake.requests[-1]
    assert last.url.path == "/_storage/blob"
    assert last.headers["Authorization"] == basic("alice", "pw")


async def test_redirect_back_to_the_registry_is_authenticated_again() -> None:
    fake = BlobRegistry(
        {
            BLOB_URL: f"https://{STORAGE}/hop",
            f"https://{STORAGE}/hop": f"https://{REG}/_storage/blob",
        }
    )
    async with make_client(fake, credentials=CREDS) as client:
        assert await read_whole_blob(client) == BLOB
    assert "Authorization" not in fake.requests[-2].headers
    assert fake.requests[-1].headers["Authorization"] == basic("alice", "pw")


@pytest.mark.parametrize(
    "location",
    [
        f"http://{STORAGE}/blob",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "https://2852039166/latest/meta-data/",
        "https://169.254.43518/latest/meta-data/",
        "https://[fe80::a9fe:a9fe]/x",
        "https://192.168.1.1/x",
        "ftp://storage.example/blob",
    ],
)
async def test_unsafe_blob_redirects_are_refused(location: str) -> None:
    fake = BlobRegistry({BLOB_URL: location})
    async with make_client(fake, credentials=CREDS) as client:
        with pytest.raises(UnsafeRedirectError):
            await read_whole_blob(client)
    assert all(r.url.host == REG for r in fake.requests)


async def test_plain_http_redirect_allowed_when_target_is_listed() -> None:
    fake = BlobRegistry({BLOB_URL: f"http://{STORAGE}/blob"})
    async with make_client(fake, credentials=CREDS, insecure=[STORAGE]) as client:
        assert await read_whole_blob(client) == BLOB
    assert fake.requests[-1].url.scheme == "http"
    assert "Authorization" not in fake.requests[-1].headers


def redirect_chain(length: int) -> dict[str, str]:
    hops = [BLOB_URL] + [f"https://{STORAGE}/hop{i}" for i in range(1, length + 1)]
    return {hops[i]: hops[i + 1] for i in range(length)}


async def test_up_to_five_redirects_are_followed() -> None:
    fake = BlobRegistry(redirect_chain(MAX_REDIRECTS))
    async with make_client(fake, credentials=CREDS) as client:
        assert await read_whole_blob(client) == BLOB
    assert fake.requests[-1].url.path == f"/hop{MAX_REDIRECTS}"


async def test_more_than_five_redirects_fail() -> None:
    assert MAX_REDIRECTS == 5
    fake = BlobRegistry(redirect_chain(MAX_REDIRECTS + 1))
    async with make_client(fake, credentials=CREDS) as client:
        with pytest.raises(RegistryError, match="redirects"):
            await read_whole_blob(client)
    assert sum(r.url.host == STORAGE for r in fake.requests) == MAX_REDIRECTS


async def test_read_blob_verifies_size_and_digest() -> None:
    fake = BlobRegistry()
    async with make_client(fake, credentials=CREDS) as client:
        assert await read_blob(client, REG, "team/app", BLOB_DIGEST, len(BLOB), limit=MIB) == BLOB
        with pytest.raises(SizeMismatchError):
            await read_blob(client, REG, "team/app", BLOB_DIGEST, len(BLOB) + 1, limit=MIB)
        with pytest.raises(RegistryError, match="limit"):
            await read_blob(client, REG, "team/app", BLOB_DIGEST, len(BLOB), limit=10)


# --- 8. uploads -----------------------------------------------------------------------------------

UPLOAD = bytes(range(256)) * 14  # 3584 bytes
UPLOAD_DIGEST = sha256(UPLOAD)


class MonolithicRegistry:
    """POST opens a session; PUT ?digest= streams the body, counted as it arrives."""

    def __init__(self) -> None:
        self.received = 0
        self.complete = False
        self.put: httpx.Request | None = None
        self.stored = b""

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/team/app/blobs/uploads/u1?_state=opaque"})
        assert request.method == "PUT"
        self.put = request
        body = bytearray()
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for chunk in request.stream:
            body += chunk
            self.received = len(body)
        self.complete = True
        self.stored = bytes(body)
        if sha256(self.stored) != request.url.params["digest"]:
            return reply(400, errors_body("DIGEST_INVALID", "digest did not match"))
        return httpx.Response(201, headers={"Docker-Content-Digest": sha256(self.stored)})


async def test_monolithic_put_carries_digest_and_length() -> None:
    fake = MonolithicRegistry()
    progress: list[int] = []
    async with make_client(fake) as client:
        session = await start_upload(client, REG, "team/app")
        assert str(session.location) == f"https://{REG}/v2/team/app/blobs/uploads/u1?_state=opaque"
        await upload_monolithic(
            client, session, UPLOAD_DIGEST, len(UPLOAD), chunks_of(UPLOAD, 1000), progress.append
        )
    assert fake.put is not None
    assert fake.put.url.params["digest"] == UPLOAD_DIGEST
    assert fake.put.url.params["_state"] == "opaque"
    assert fake.put.headers["Content-Length"] == str(len(UPLOAD))
    assert "Transfer-Encoding" not in fake.put.headers
    assert fake.stored == UPLOAD
    assert sum(progress) == len(UPLOAD)


async def test_monolithic_upload_of_corrupted_stream_is_never_completed() -> None:
    fake = MonolithicRegistry()
    async with make_client(fake) as client:
        session = await start_upload(client, REG, "team/app")
        with pytest.raises(DigestMismatchError) as info:
            await upload_monolithic(
                client, session, UPLOAD_DIGEST, len(UPLOAD), chunks_of(UPLOAD, 1000, corrupt_at=1500)
            )
    assert info.value.expected == UPLOAD_DIGEST
    assert fake.complete is False
    assert 0 < fake.received < len(UPLOAD)


async def test_monolithic_upload_of_short_stream_is_never_completed() -> None:
    fake = MonolithicRegistry()
    async with make_client(fake) as client:
        session = await start_upload(client, REG, "team/app")
        with pytest.raises(SizeMismatchError):
            await upload_monolithic(client, session, UPLOAD_DIGEST, len(UPLOAD), chunks_of(UPLOAD[:-1], 1000))
    assert fake.complete is False
    assert fake.received < len(UPLOAD)


class ChunkedRegistry:
    """A chunked-upload registry in the Distribution style.

    Every answer carries a new Location whose ``_state`` must be used next (PATCH
    and PUT with a stale one are refused). PATCH needs a Content-Range starting at
    the stored length, else 416. ``glitch`` makes the ``glitch_at``-th PATCH (0-based)
    answer 416 after keeping all of it ("lost-ack"), half of it ("partial"), or after
    forgetting all but 100 bytes ("rollback").
    """

    def __init__(
        self,
        *,
        min_chunk: int = 0,
        patch_status: int = 202,
        glitch: str | None = None,
        glitch_at: int = 1,
    ) -> None:
        self.min_chunk = min_chunk
        self.patch_status = patch_status
        self.glitch = glitch
        self.glitch_at = glitch_at
        self.stored = bytearray()
        self.state = 0
        self.current = ""
        self.patches: list[tuple[int, int]] = []
        self.events: list[str] = []
        self.put_body: bytes | None = None
        self.put_digest: str | None = None

    def location(self) -> str:
        self.state += 1
        self.current = f"s{self.state}"
        return f"/v2/team/app/blobs/uploads/u1?_state={self.current}"

    def range_headers(self) -> dict[str, str]:
        headers = {"Location": self.location(), "Docker-Upload-UUID": "u1"}
        if self.stored:
            headers["Range"] = f"0-{len(self.stored) - 1}"
        return headers

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.events.append(request.method)
        if request.method == "POST":
            headers = self.range_headers()
            if self.min_chunk:
                headers["OCI-Chunk-Min-Length"] = str(self.min_chunk)
            return httpx.Response(202, headers=headers)
        if request.method == "GET":
            return httpx.Response(204, headers=self.range_headers())
        if request.url.params.get("_state") != self.current:
            return reply(400, errors_body("BLOB_UPLOAD_INVALID", "stale upload state"))
        body = await request.aread()
        if request.method == "PATCH":
            return self.patch(request, body)
        assert request.method == "PUT"
        self.put_body = body
        self.put_digest = request.url.params.get("digest")
        if sha256(bytes(self.stored) + body) != self.put_digest:
            return reply(400, errors_body("DIGEST_INVALID", "digest did not match"))
        return httpx.Response(201, headers={"Docker-Content-Digest": self.put_digest or ""})

    def patch(self, request: httpx.Request, body: bytes) -> httpx.Response:
        content_range = request.headers.get("Content-Range")
        if content_range is None:
            return reply(400, errors_body("BLOB_UPLOAD_INVALID", "Content-Range required"))
        start, end = (int(x) for x in content_range.split("-"))
        assert end - start + 1 == len(body) == int(request.headers["Content-Length"])
        index = len(self.patches)
        self.patches.append((start, len(body)))
        if self.glitch is not None and index == self.glitch_at:
            self.glitch, kept = None, self.glitch
            if kept == "lost-ack":
                self.stored += body
            elif kept == "partial":
                self.stored += body[: len(body) // 2]
            elif kept == "rollback":
                del self.stored[100:]
            self.location()  # the registry moved on; the client's Location is stale now
            return httpx.Response(416)
        if start != len(self.stored):
            return httpx.Response(416, headers=self.range_headers())
        self.stored += body
        return httpx.Response(self.patch_status, headers=self.range_headers())


async def chunked_upload(
    fake: ChunkedRegistry, data: bytes = UPLOAD, *, corrupt_at: int | None = None
) -> None:
    async with make_client(fake) as client:
        session = await start_upload(client, REG, "team/app")
        await upload_chunked(
            client,
            session,
            sha256(data),
            len(data),
            chunks_of(data, 300, corrupt_at=corrupt_at),
            chunk_size=100,
        )


async def test_chunked_upload_honours_min_chunk_and_commits_last() -> None:
    fake = ChunkedRegistry(min_chunk=1000)
    await chunked_upload(fake)
    assert bytes(fake.stored) == UPLOAD
    assert len(fake.patches) >= 3
    assert all(length >= 1000 for _, length in fake.patches[:-1])
    offsets = [start for start, _ in fake.patches]
    assert offsets == [sum(length for _, length in fake.patches[:i]) for i in range(len(fake.patches))]
    assert fake.events[-1] == "PUT"
    assert fake.events.count("PUT") == 1
    assert fake.put_body == b""
    assert fake.put_digest == UPLOAD_DIGEST


async def test_chunked_upload_accepts_201_for_patch_like_ecr() -> None:
    fake = ChunkedRegistry(min_chunk=1000, patch_status=201)
    await chunked_upload(fake)
    assert bytes(fake.stored) == UPLOAD
    assert fake.events[-1] == "PUT"


async def test_chunked_upload_resumes_after_lost_acknowledgement() -> None:
    fake = ChunkedRegistry(min_chunk=1000, glitch="lost-ack")
    await chunked_upload(fake)
    assert bytes(fake.stored) == UPLOAD
    assert "GET" in fake.events
    assert all(length >= 1000 for _, length in fake.patches[:-1])
    # The chunk that was kept despite the 416 is not sent again.
    starts = [start for start, _ in fake.patches]
    assert len(starts) == len(set(starts))


async def test_chunked_upload_resends_only_what_the_registry_lacks() -> None:
    fake = ChunkedRegistry(min_chunk=1000, glitch="partial")
    await chunked_upload(fake)
    assert bytes(fake.stored) == UPLOAD
    glitched_start, glitched_length = fake.patches[1]
    resumed_start, _ = fake.patches[2]
    assert resumed_start == glitched_start + glitched_length // 2
    assert fake.put_digest == UPLOAD_DIGEST


async def test_chunked_upload_offset_outside_held_chunk_is_a_retryable_error() -> None:
    fake = ChunkedRegistry(min_chunk=1000, glitch="rollback", glitch_at=2)
    with pytest.raises(RegistryError, match="outside the chunk") as info:
        await chunked_upload(fake)
    assert info.value.retryable is True
    assert "PUT" not in fake.events


async def test_chunked_upload_of_corrupted_stream_sends_no_commit() -> None:
    fake = ChunkedRegistry(min_chunk=1000)
    with pytest.raises(DigestMismatchError):
        await chunked_upload(fake, corrupt_at=2000)
    assert "PUT" not in fake.events
    assert len(fake.stored) < len(UPLOAD)


async def test_chunked_upload_of_empty_blob_commits_directly() -> None:
    fake = ChunkedRegistry()
    await chunked_upload(fake, b"")
    assert fake.events == ["POST", "PUT"]
    assert fake.put_digest == sha256(b"")


# --- 9. cross-repository mount --------------------------------------------------------------------


class MountRegistry:
    def __init__(self, status: int, headers: dict[str, str] | None = None, body: Any = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(snapshot(request))
        body = Once(self.body.encode()) if isinstance(self.body, str) else self.body
        return httpx.Response(self.status, headers=self.headers, content=body)


async def test_mount_201_means_mounted() -> None:
    fake = MountRegistry(201, {"Location": f"/v2/team/app/blobs/{DIGEST}"})
    async with make_client(fake) as client:
        assert await mount_blob(client, REG, "team/app", DIGEST, "other/src") is None
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.url.path == "/v2/team/app/blobs/uploads/"
    assert request.url.params["mount"] == DIGEST
    assert request.url.params["from"] == "other/src"


async def test_mount_202_opens_an_upload_session_with_absolute_location() -> None:
    fake = MountRegistry(
        202, {"Location": "/v2/team/app/blobs/uploads/u7?_state=x", "OCI-Chunk-Min-Length": "5"}
    )
    async with make_client(fake) as client:
        session = await mount_blob(client, REG, "team/app", DIGEST, "other/src")
    assert isinstance(session, UploadSession)
    assert session.location == httpx.URL(f"https://{REG}/v2/team/app/blobs/uploads/u7?_state=x")
    assert session.location.is_absolute_url
    assert session.min_chunk == 5
    assert (session.host, session.repository) == (REG, "team/app")


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/", "https://169.254.169.254/upload", f"http://{REG}/v2/team/app/u"],
)
async def test_mount_refuses_unsafe_upload_location(location: str) -> None:
    fake = MountRegistry(202, {"Location": location})
    async with make_client(fake) as client:
        with pytest.raises(UnsafeRedirectError):
            await mount_blob(client, REG, "team/app", DIGEST, "other/src")


async def test_mount_without_location_is_an_error() -> None:
    fake = MountRegistry(202)
    async with make_client(fake) as client:
        with pytest.raises(RegistryError, match="Location"):
            await mount_blob(client, REG, "team/app", DIGEST, "other/src")


async def test_mount_token_covers_the_source_repository() -> None:
    fake = BearerRegistry()
    async with make_client(fake) as client:
        assert await mount_blob(client, REG, "team/app", DIGEST, "other/src") is None
    (token_request,) = fake.token_requests
    assert token_request.url.params.get_list("scope") == [
        "repository:team/app:pull,push",
        "repository:other/src:pull",
    ]


# --- 10. error bodies -------------------------------------------------------------------------------


async def test_error_body_code_and_message_are_reported() -> None:
    fake = StatusRegistry(404, errors_body("MANIFEST_UNKNOWN", "manifest unknown to registry"))
    async with make_client(fake) as client:
        with pytest.raises(NotFoundError) as info:
            await get_manifest(client, REF)
    assert info.value.code == "MANIFEST_UNKNOWN"
    assert info.value.status == 404
    assert info.value.host == REG
    # A tag reads as a tag (":"), not as a digest ("@"): the user's own reference, then the registry's code.
    assert str(info.value) == f"{REG}/team/app:1: not found at {REG} (MANIFEST_UNKNOWN)"


async def test_a_404_that_is_no_registry_error_says_the_server_is_not_a_registry() -> None:
    async def web_server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html><body>404 Not Found</body></html>")

    async with make_client(web_server) as client:
        with pytest.raises(NotFoundError) as info:
            await get_manifest(client, REF)
    assert "does not speak the registry API" in str(info.value)
    assert "/v2/team/app/manifests/1" in str(info.value)


async def test_error_body_of_a_non_streamed_request_is_parsed() -> None:
    fake = MountRegistry(
        403, {"Content-Type": "application/json"}, json.dumps(errors_body("DENIED", "no push"))
    )
    async with make_client(fake) as client:
        with pytest.raises(AuthorizationError) as info:
            await mount_blob(client, REG, "team/app", DIGEST, "other/src")
    assert info.value.code == "DENIED"


async def test_endless_error_body_on_streamed_get_is_cut() -> None:
    body = Body(total=None)
    fake = ScriptedRegistry(httpx.Response(500, content=body))
    async with make_client(fake, retry=NO_RETRY) as client:
        with pytest.raises(RegistryError) as info:
            await asyncio.wait_for(get_manifest(client, REF), timeout=5)
    assert info.value.status == 500
    assert body.produced <= MAX_ERROR_BODY + body.chunk


@pytest.mark.parametrize("status", [500, 403, 202])
async def test_endless_body_on_non_streamed_request_is_cut(status: int) -> None:
    body = Body(total=None)
    fake = MountRegistry(status, {"Location": "/v2/team/app/blobs/uploads/u1"}, body)
    async with make_client(fake) as client:
        try:
            await asyncio.wait_for(mount_blob(client, REG, "team/app", DIGEST, "other/src"), timeout=5)
        except RegistryError as exc:
            assert exc.status == status
        else:
            assert status == 202
    assert body.produced <= MAX_ERROR_BODY + body.chunk


async def test_non_streamed_send_returns_a_read_and_closed_response() -> None:
    fake = MountRegistry(202, {"Location": "/v2/team/app/blobs/uploads/u1", "Content-Length": "2"}, "ok")
    async with make_client(fake) as client:
        response = await client.send("POST", f"https://{REG}/v2/team/app/blobs/uploads/")
    assert response.is_closed
    assert response.content == b"ok"
    assert response.headers["Location"] == "/v2/team/app/blobs/uploads/u1"
    assert response.request.url.host == REG


# --- 11. transport options ------------------------------------------------------------------------


def test_is_insecure_with_and_without_port() -> None:
    bare = TransportOptions.create(["Reg.Local"], use_env=False)
    assert bare.is_insecure("reg.local")
    assert bare.is_insecure("REG.LOCAL:5000")
    assert not bare.is_insecure("other.local")
    assert not bare.is_insecure("sub.reg.local")
    ported = TransportOptions.create(["reg.local:5000"], use_env=False)
    assert ported.is_insecure("reg.local:5000")
    assert not ported.is_insecure("reg.local:5001")
    assert not ported.is_insecure("reg.local")
    v6 = TransportOptions.create(["[::1]"], use_env=False)
    assert v6.is_insecure("[::1]:5000")
    assert v6.is_insecure("[::1]")


def test_insecure_hosts_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INSECURE_ENV, " a.example:5000 ,B.Example,, http://c.example/ ,")
    options = TransportOptions.create(["cli.example"], use_env=True)
    assert options.insecure_hosts == {"a.example:5000", "b.example", "c.example", "cli.example"}
    assert TransportOptions.create([], use_env=False).insecure_hosts == frozenset()
    # A library caller's options do not read the environment unless asked.
    assert TransportOptions.create(["cli.example"]).insecure_hosts == {"cli.example"}


def test_https_is_the_default_even_for_loopback() -> None:
    options = TransportOptions.create([], use_env=False)
    for host in ("localhost:5000", "127.0.0.1:5000", "[::1]:5000", REG):
        assert options.scheme(host) == "https"
        assert options.base_url(host) == f"https://{host}"
    assert TransportOptions.create(["localhost:5000"], use_env=False).scheme("localhost:5000") == "http"


async def test_client_never_probes_or_downgrades_an_unlisted_loopback_host() -> None:
    fake = ScriptedRegistry()
    async with make_client(fake) as client:
        assert await client.base_url("127.0.0.1:5000") == "https://127.0.0.1:5000"
        assert await client.url("localhost:5000", "/v2/") == "https://localhost:5000/v2/"
    assert fake.requests == []


@pytest.mark.parametrize(("https_works", "expected"), [(True, "https"), (False, "http")])
async def test_listed_host_probes_https_then_falls_back_to_http(https_works: bool, expected: str) -> None:
    seen: list[httpx.URL] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.scheme == "https" and not https_works:
            raise httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number")
        return httpx.Response(200)

    async with make_client(handler, insecure=["reg.local:5000"]) as client:
        assert await client.base_url("reg.local:5000") == f"{expected}://reg.local:5000"
        assert await client.base_url("reg.local:5000") == f"{expected}://reg.local:5000"
    assert [str(u) for u in seen] == ["https://reg.local:5000/v2/"]


@pytest.mark.parametrize(
    ("url", "previous", "insecure", "allowed"),
    [
        ("https://storage.example/b", "https://registry.example/x", [], True),
        ("http://storage.example/b", "http://registry.example/x", [], True),
        ("http://storage.example/b", "https://registry.example/x", [], False),
        ("http://storage.example/b", "https://registry.example/x", ["storage.example"], True),
        ("http://storage.example:8080/b", "https://registry.example/x", ["storage.example:8080"], True),
        ("ftp://storage.example/b", None, [], False),
        ("https://169.254.169.254/", None, [], False),
        ("https://169.254.169.254/", None, ["169.254.169.254"], True),
        ("https://10.1.2.3/", "https://registry.example/x", [], False),
        ("https://192.168.0.10:5000/", "https://registry.example/x", [], False),
        ("https://127.0.0.1/", "https://registry.example/x", [], False),
        ("https://0.0.0.0/", None, [], False),
        ("https://[::1]/", None, [], False),
        ("https://[fe80::1]/", None, [], False),
        ("https://2852039166/", None, [], False),
        ("https://0xa9fea9fe/", None, [], False),
        ("https://169.254.43518/", None, [], False),
        ("https://8.8.8.8/", None, [], True),
        # A registry on a private address may send you elsewhere on itself.
        ("https://10.1.2.3/storage", "https://10.1.2.3/v2/x", [], True),
        ("https://10.1.2.3:9000/storage", "https://10.1.2.3:5000/v2/x", [], True),
    ],
)
def test_check_url(url: str, previous: str | None, insecure: list[str], allowed: bool) -> None:
    options = TransportOptions.create(insecure, use_env=False)
    prev = httpx.URL(previous) if previous else None
    if allowed:
        options.check_url(httpx.URL(url), previous=prev)
    else:
        with pytest.raises(UnsafeRedirectError) as info:
            options.check_url(httpx.URL(url), previous=prev)
        assert isinstance(info.value, DockerTransferError)


def test_check_url_message_hides_userinfo_and_query() -> None:
    options = TransportOptions.create([], use_env=False)
    with pytest.raises(UnsafeRedirectError) as info:
        options.check_url(
            httpx.URL("http://user:hunter2@storage.example/b?X-Amz-Signature=s3cr3t"),
            previous=httpx.URL("https://registry.example/"),
        )
    assert "hunter2" not in str(info.value)
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Reg.Example", "reg.example"), ("https://reg.example:5000/", "reg.example:5000"), (" h:1 ", "h:1")],
)
def test_normalise_host(raw: str, expected: str) -> None:
    assert normalise_host(raw) == expected


@pytest.mark.parametrize("raw", ["", "  ", "reg.example/path", "https://"])
def test_normalise_host_rejects_non_hosts(raw: str) -> None:
    with pytest.raises(UsageError):
        normalise_host(raw)


def test_reference_used_here_is_what_the_fakes_expect() -> None:
    assert Reference(REG, "team/app", "1") == REF
    assert REF.api_host == REG
