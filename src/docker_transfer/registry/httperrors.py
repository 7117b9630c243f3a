"""Turning registry answers into typed, bounded, secret-free exceptions."""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import AsyncIterator

import httpx

from docker_transfer.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    TransportError,
)
from docker_transfer.ratelimit import RateLimit, from_headers, parse_count

MAX_ERROR_BODY = 64 * 1024
RETRY_AFTER_LIMIT = 86400.0
"""Longest ``Retry-After`` read from an answer; the retry policy caps it further (``retry_after_cap``)."""
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CREDENTIAL_SENT = "docker_transfer.credential_sent"
"""Response extension set by the auth flow on a 401/403: whether any credential was found for the host."""
_REPOSITORY_RE = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags)/")
# 404 codes about one object inside an existing repository, not about the repository itself.
_OBJECT_UNKNOWN = frozenset(
    {"BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN", "MANIFEST_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"}
)


@contextlib.asynccontextmanager
async def aclosing_iter(source: AsyncIterator[bytes]) -> AsyncIterator[AsyncIterator[bytes]]:
    """``contextlib.aclosing`` for any async iterator: a generator is closed on exit, others left alone.

    Streams are closed by their reader, never by the garbage collector: asyncio would
    close them later from another task and print "error during closing of
    asynchronous generator" with tracebacks.
    """
    try:
        yield source
    finally:
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()


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
        async with aclosing_iter(response.aiter_raw()) as raw:
            async for chunk in raw:
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


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), at most a day."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Any number of digits: a delay past the cap is the cap.
        seconds = parse_count(value)
        return RETRY_AFTER_LIMIT if seconds is None else min(float(seconds), RETRY_AFTER_LIMIT)
    try:
        when = email.utils.parsedate_to_datetime(value)
        delay = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return max(0.0, min(delay, RETRY_AFTER_LIMIT))


def parse_ratelimit(headers: httpx.Headers, host: str) -> RateLimit | None:
    """``host``'s quota from Docker Hub's ``ratelimit-limit`` / ``ratelimit-remaining`` headers, or None."""
    return from_headers(host, headers.get("ratelimit-limit"), headers.get("ratelimit-remaining"))


def _describe(body: bytes) -> tuple[str | None, str]:
    """The first ``errors[]`` entry's code and message, or a trimmed text body."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the parser's depth
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
    response: httpx.Response, what: str, *, subject: str | None = None, destination: bool = False
) -> RegistryError:
    """Read (bounded) and classify an unexpected registry answer.

    ``subject`` names what was asked for (``nginx:latest``) so a 404 reads
    "nginx:latest: not found at HOST"; a 404 that is no registry error at all
    says the server does not speak the registry API. A 401 says whether no
    credential was found for the host or the host rejected the one sent (the
    auth flow marks the response). With ``destination`` (the registry being
    written to), a 401, 403 or unknown repository also names the likely cause:
    a namespace that does not exist, a repository that must be created first,
    or the wrong login.
    """
    body = await read_bounded(response, MAX_ERROR_BODY)
    code, detail = _describe(body)
    status = response.status_code
    host = response.request.url.netloc.decode()
    if status == 404:
        missing = _plain_not_found(response, subject or what, code, reads=bool(subject) and not destination)
        if missing is not None:
            return missing
    label = f"{code}: {detail}" if code else (detail or response.reason_phrase)
    message = f"{what}: {host} answered {status} ({label})"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    sent = response.extensions.get(CREDENTIAL_SENT)
    challenge = response.headers.get("WWW-Authenticate", "").lower()

    def build(cls: type[RegistryError], text: str, retryable: bool = False) -> RegistryError:
        return cls(
            text,
            status=status,
            code=code,
            host=host,
            retryable=retryable,
            retry_after=retry_after,
            detail=detail or None,
        )

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


def _plain_not_found(
    response: httpx.Response, subject: str, code: str | None, reads: bool
) -> NotFoundError | None:
    """A 404 that needs no more words: not a registry at all, or (``reads``) the thing read is absent."""
    host = response.request.url.netloc.decode()
    if code is None and not _speaks_registry_api(response):
        return NotFoundError(
            f"{subject}: {host} does not speak the registry API (HTTP 404 for "
            f"{response.request.url.path}, no registry error); check the registry address",
            status=404,
            host=host,
        )
    if reads:
        return NotFoundError(
            f"{subject}: not found at {host}" + (f" ({code})" if code else ""),
            status=404,
            code=code,
            host=host,
        )
    return None


def _connect_reason(kind: str, detail: str) -> str:
    """Why no connection was made, in words: refused, timed out, name not resolved."""
    lowered = detail.lower()
    if kind == "ConnectTimeout" or "timed out" in lowered:
        return "connect timed out"
    # asyncio words a refusal "[Errno 111] Connect call failed"; anyio "Connection refused".
    if "refused" in lowered or "errno 111" in lowered or "connect call failed" in lowered:
        return "connection refused"
    if (
        "name or service not known" in lowered
        or "nodename nor servname" in lowered
        or "resolution" in lowered
    ):
        return "host name not resolved"
    if "unreachable" in lowered:
        return "network unreachable"
    return detail if detail and "://" not in detail else "connection failed"


def _speaks_registry_api(response: httpx.Response) -> bool:
    """Registries say so in a header (Distribution, Docker Hub, ghcr.io, ACR all send it)."""
    return "docker-distribution-api-version" in response.headers


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
    detail = str(exc).split("\n", 1)[0][:160]
    if kind in ("ConnectError", "ConnectTimeout"):
        return TransportError(host, _connect_reason(kind, detail), connecting=True)
    reason = {
        "ReadTimeout": "read timed out",
        "WriteTimeout": "write timed out",
        "PoolTimeout": "connection pool timed out",
        "RemoteProtocolError": "connection closed unexpectedly",
        "ReadError": "connection reset while reading",
        "WriteError": "connection reset while writing",
    }.get(kind, kind)
    if detail and "://" not in detail:
        reason = f"{reason} ({detail})"
    return TransportError(host, reason)
