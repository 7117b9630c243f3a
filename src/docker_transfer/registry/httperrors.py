"""Turning registry answers into typed, bounded, secret-free exceptions."""

from __future__ import annotations

import email.utils
import json
import os
import re
import time

import httpx

from docker_transfer.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    TransportError,
)

MAX_ERROR_BODY = 64 * 1024
RETRY_AFTER_CAP = 300.0
"""Longest wait a ``Retry-After`` can impose (``DT_RETRY_AFTER_CAP`` overrides)."""
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CREDENTIAL_SENT = "docker_transfer.credential_sent"
"""Response extension set by the auth flow on a 401/403: whether any credential was found for the host."""
_REPOSITORY_RE = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags)/")
# 404 codes about one object inside an existing repository, not about the repository itself.
_OBJECT_UNKNOWN = frozenset(
    {"BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN", "MANIFEST_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"}
)


async def read_bounded(response: httpx.Response, limit: int, *, strict: bool = False) -> bytes:
    """Read at most ``limit`` bytes of a streamed body, then stop.

    An endless or huge error body must cost neither memory nor time. A response
    that was already read gives its buffered content. A connection lost mid-body
    yields the bytes read so far, or with ``strict`` (for bodies that are the
    payload, not an error detail) a retryable :class:`TransportError`.
    """
    if response.is_stream_consumed:
        await response.aclose()
        try:
            return response.content[:limit]
        except httpx.ResponseNotRead:
            return b""
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            total += len(chunk)
            if total >= limit:
                break
    except httpx.HTTPError as exc:
        if strict:
            raise transport_error(exc, response.request.url.netloc.decode()) from None
    finally:
        await response.aclose()
    return b"".join(chunks)[:limit]


def _cap() -> float:
    raw = os.environ.get("DT_RETRY_AFTER_CAP", "")
    try:
        return float(raw) if raw else RETRY_AFTER_CAP
    except ValueError:
        return RETRY_AFTER_CAP


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _cap())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, min(when.timestamp() - current, _cap()))


def parse_ratelimit(headers: httpx.Headers) -> tuple[int | None, int | None, int | None] | None:
    """Docker Hub's ``ratelimit-limit: 100;w=21600`` / ``ratelimit-remaining: 76;w=21600``.

    Returns (limit, remaining, window seconds), or None when the headers are absent.
    """
    raw_limit, raw_remaining = headers.get("ratelimit-limit"), headers.get("ratelimit-remaining")
    if raw_limit is None and raw_remaining is None:
        return None

    def split(value: str | None) -> tuple[int | None, int | None]:
        if not value:
            return None, None
        count, _, rest = value.partition(";")
        window = rest.strip().removeprefix("w=")
        return (
            int(count) if count.strip().isdigit() else None,
            int(window) if window.isdigit() else None,
        )

    limit, window = split(raw_limit)
    remaining, window2 = split(raw_remaining)
    return limit, remaining, window or window2


def _describe(body: bytes) -> tuple[str | None, str]:
    """The first ``errors[]`` entry's code and message, or a trimmed text body."""
    try:
        doc = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip().splitlines()
        return None, (text[0][:200] if text else "")
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"]:
        first = doc["errors"][0]
        if isinstance(first, dict):
            code = first.get("code")
            message = first.get("message") or ""
            # One line: the message ends up in a one-line error, a table cell and an annotation.
            return (" ".join(str(code).split())[:100] or None if code else None), " ".join(
                str(message).split()
            )[:300]
    return None, ""


async def error_from_response(
    response: httpx.Response, what: str, *, destination: bool = False
) -> RegistryError:
    """Read (bounded) and classify an unexpected registry answer.

    A 401 says whether no credential was found for the host or the host
    rejected the one sent (the auth flow marks the response). With
    ``destination`` (the registry being written to), a 401, 403 or unknown
    repository also names the likely cause: a namespace that does not exist, a
    repository that must be created first, or the wrong login.
    """
    body = await read_bounded(response, MAX_ERROR_BODY)
    code, detail = _describe(body)
    status = response.status_code
    host = response.request.url.netloc.decode()
    label = f"{code}: {detail}" if code else (detail or response.reason_phrase)
    message = f"{what}: {host} answered {status} ({label})"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    sent = response.extensions.get(CREDENTIAL_SENT)
    challenge = response.headers.get("WWW-Authenticate", "").lower()

    def build(cls: type[RegistryError], text: str, retryable: bool = False) -> RegistryError:
        return cls(text, status=status, code=code, host=host, retryable=retryable, retry_after=retry_after)

    said = f"{host} said: {label}"
    # Behind a token service a wrong password fails at the token request; a 401 that still comes
    # with a credential found means the token lacks push rights (Docker Hub's UNAUTHORIZED on push).
    scope_refused = status == 401 and bool(sent) and challenge.lstrip().startswith("bearer")
    if destination and (status == 403 or scope_refused):
        return build(AuthorizationError, f"{what}: {_denied_cause(response, host, sent)} ({said})")
    if status == 401:
        return build(AuthenticationError, f"{what}: {credential_problem(host, sent, destination)} ({said})")
    if status == 403:
        return build(
            AuthorizationError, f"{what}: {host} denied access ({label}); the account lacks permission"
        )
    if destination and status == 404 and code not in _OBJECT_UNKNOWN:
        repository = _repository(response)
        return build(
            NotFoundError,
            f"{what}: {host} has no repository {repository} and did not create it on push: "
            f"create the namespace {_namespace(repository)} and the repository first, "
            f"or turn on creating repositories on push ({said})",
        )
    if status == 404:
        return build(NotFoundError, message)
    if status == 429 or code == "TOOMANYREQUESTS":
        return build(RateLimitedError, message, True)
    return build(RegistryError, message, status in _RETRYABLE_STATUS or status >= 500)


def credential_problem(host: str, sent: object, destination: bool = False) -> str:
    """Why ``host`` refused to authenticate: no credential found, or the one sent was rejected."""
    where = "docker login or podman login" + (
        ", or set TARGET_USERNAME/TARGET_PASSWORD" if destination else ""
    )
    if sent is False:
        return f"no credentials found for {host}; log in with {where}"
    if sent:
        return f"{host} rejected the credentials; check the username and password for {host} ({where})"
    return f"authentication failed at {host}; check the credentials for {host}"


def _repository(response: httpx.Response) -> str:
    match = _REPOSITORY_RE.match(response.request.url.path)
    return match.group("name") if match else "the repository"


def _namespace(repository: str) -> str:
    # An upload URL of another shape names no repository; then there is no namespace to quote.
    return repr(repository.split("/", 1)[0]) if "/" in repository else "of the repository"


def _denied_cause(response: httpx.Response, host: str, sent: object) -> str:
    repository = _repository(response)
    if sent is False:
        return f"access to {host}/{repository} denied: no credentials found for {host}; " + (
            "log in with docker login, podman login or TARGET_USERNAME/TARGET_PASSWORD"
        )
    return (
        f"access to {host}/{repository} denied: the namespace {_namespace(repository)} may not exist, "
        "the repository may have to be created first (when the registry does not create repositories "
        f"on push), or the login for {host} may not push there"
    )


def transport_error(exc: httpx.HTTPError, host: str) -> TransportError:
    """Wrap an httpx network error; the message names the failure, not the URL's secrets."""
    kind = type(exc).__name__
    reason = {
        "ConnectError": "cannot connect",
        "ConnectTimeout": "connect timed out",
        "ReadTimeout": "read timed out",
        "WriteTimeout": "write timed out",
        "PoolTimeout": "connection pool timed out",
        "RemoteProtocolError": "connection closed unexpectedly",
        "ReadError": "connection reset while reading",
        "WriteError": "connection reset while writing",
    }.get(kind, kind)
    detail = str(exc).split("\n", 1)[0][:160]
    if detail and "://" not in detail:
        reason = f"{reason} ({detail})"
    return TransportError(host, reason)
