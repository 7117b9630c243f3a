"""Property: no text a registry or a config can send ends in ``internal error:``.

Every parser of server-supplied text (``WWW-Authenticate``, ``Retry-After``,
``ratelimit-*``, ``Content-Range`` and other counts, ``Location`` and the token
realm, the token JSON, error bodies, manifests) and of images.json is fed
arbitrary input; each must return a value of its type or raise one of our own
errors, never a bare ``ValueError``, ``IndexError`` or ``UnicodeEncodeError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import (
    FAST,
    ODD_DIGITS,
    config_texts,
    header_bytes,
    header_text,
    json_texts,
    token_bodies,
    url_texts,
)

from docker_transfer.config import Config, parse_config
from docker_transfer.engine.blobs import _check_content_range
from docker_transfer.errors import ConfigError, ManifestError, RegistryError, UnsafeRedirectError
from docker_transfer.manifest import parse_manifest
from docker_transfer.ratelimit import parse_count, ratelimits_from
from docker_transfer.registry.auth import RegistryAuth, parse_challenges, parse_token
from docker_transfer.registry.client import _buffered, _refuse_malformed_location
from docker_transfer.registry.httperrors import (
    RETRY_AFTER_LIMIT,
    _describe,
    error_from_response,
    parse_ratelimit,
    parse_retry_after,
)
from docker_transfer.registry.transport import TransportOptions

BASE = httpx.URL("https://registry.example/v2/app/blobs/sha256:abc")
REQUEST = httpx.Request("GET", BASE)


@FAST
@given(header_text)
@example('Bearer realm="https://a/token",scope="repository:x:pull,push"')
@example("Bearer realm=" + '"' * 3 + ",,,=,")
def test_www_authenticate_never_raises(header: str) -> None:
    for challenge in parse_challenges(header):
        assert challenge.scheme == challenge.scheme.lower()
        assert all(isinstance(v, str) for v in challenge.params.values())


@FAST
@given(header_text)
@example("\u00b2")
@example("9" * 5000)
@example("Sun, 06 Nov 99999 08:49:37 GMT")
def test_retry_after_is_none_or_a_bounded_delay(value: str) -> None:
    delay = parse_retry_after(value)
    # Bounded by a day here; the retry policy caps the wait further (300 s by default).
    assert delay is None or (math.isfinite(delay) and 0 <= delay <= RETRY_AFTER_LIMIT)


@FAST
@given(header_bytes, header_bytes)
@example("\u00b2;w=\u00b2".encode(), b"9" * 5000)
def test_ratelimit_headers_give_counts_or_none(limit: bytes, remaining: bytes) -> None:
    headers = httpx.Headers([(b"ratelimit-limit", limit), (b"ratelimit-remaining", remaining)])
    parsed = parse_ratelimit(headers, "registry.example")
    assert parsed is not None
    assert parsed.host == "registry.example"
    figures = (parsed.limit, parsed.remaining, parsed.window_s)
    assert all(v is None or (isinstance(v, int) and v >= 0) for v in figures)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@FAST
@given(
    st.fixed_dictionaries({}, optional={k: JSON_VALUES for k in ("host", "limit", "remaining", "window_s")})
)
@example({"remaining": "\u00b2"})
@example({"limit": "9" * 5000, "host": "a"})
def test_a_reports_ratelimit_entry_gives_limits_or_nothing(entry: dict[str, object]) -> None:
    # A shard report is a file anyone can edit: `report merge` reads it back.
    for raw in (entry, [entry, entry]):
        for limit in ratelimits_from({"ratelimit": raw}):
            figures = (limit.limit, limit.remaining, limit.window_s)
            assert all(v is None or (isinstance(v, int) and v >= 0) for v in figures)
            assert limit.plain()


@FAST
@given(header_text)
@example("\u0663")
def test_counts_are_ascii_digits_only(value: str) -> None:
    count = parse_count(value)
    assert count is None or (count >= 0 and value.strip().isascii())
    if any(ch in value for ch in ODD_DIGITS):
        assert count is None


@FAST
@given(header_text, st.integers(min_value=1, max_value=2**40))
@example("bytes \u00b2-9/10", 2)
@example("bytes 5-9/10", 5)
def test_content_range_is_accepted_only_from_the_offset_asked_for(value: str, offset: int) -> None:
    try:
        _check_content_range(value, offset, "sha256:abc")
    except RegistryError as exc:
        assert exc.retryable
    else:
        assert value.strip().removeprefix("bytes ").split("-", 1)[0].strip() == str(offset)


@FAST
@given(header_bytes)
def test_any_header_bytes_survive_buffering(value: bytes) -> None:
    """A non-streamed answer is copied; a header with non-ASCII bytes must copy too."""
    response = httpx.Response(200, headers=[(b"x-odd", value)], content=b"", request=REQUEST)
    copied = asyncio.run(_buffered(response))
    assert copied.headers.raw == response.headers.raw


@FAST
@given(url_texts)
@example("http://127.0.0.1:99999/x")
@example("http://[::1")
@example("http://a b/")
def test_location_is_followed_or_refused_as_unsafe(location: str) -> None:
    options = TransportOptions()
    try:
        url = options.follow_url(BASE, location)
    except UnsafeRedirectError as exc:
        assert "?" not in exc.url
        return
    assert url.scheme in ("http", "https") and url.host
    assert url.port is None or 0 < url.port < 65536


@FAST
@given(url_texts)
@example("http://[::1")
def test_realm_is_used_or_refused_as_unsafe(realm: str) -> None:
    try:
        url = TransportOptions().follow_url(BASE, realm, relative=False)
    except UnsafeRedirectError:
        return
    assert url.scheme in ("http", "https")


@FAST
@given(url_texts, st.sampled_from([301, 302, 303, 307, 308]))
def test_redirect_location_httpx_cannot_parse_is_refused(location: str, status: int) -> None:
    response = httpx.Response(status, headers=[(b"Location", location.encode("utf-8"))], request=REQUEST)
    try:
        asyncio.run(_refuse_malformed_location(response))
    except UnsafeRedirectError:
        with pytest.raises(httpx.InvalidURL):
            httpx.URL(response.headers["Location"])


@FAST
@given(token_bodies)
@example(b'{"token": "abc", "expires_in": NaN}')
@example(b'{"token": "abc", "expires_in": ' + b"9" * 5000 + b"}")
@example(b"[" * 5000)
def test_token_json_gives_a_token_and_a_finite_lifetime(body: bytes) -> None:
    token, lifetime = parse_token(body)
    assert token is None or (isinstance(token, str) and token)
    assert math.isfinite(lifetime) and lifetime >= 60


@FAST
@given(token_bodies)
@example('{"token": "t\u00f6ken"}'.encode())
def test_token_answer_is_a_usable_token_or_a_registry_error(body: bytes) -> None:
    auth = RegistryAuth(lambda host: None, TransportOptions(), send=None)  # type: ignore[arg-type]
    response = httpx.Response(200, content=body, request=httpx.Request("GET", "https://auth.example/t"))
    try:
        token = asyncio.run(auth._read_token(response, "registry.example", sent=False))
    except RegistryError:
        return
    token.value.encode("ascii")  # it can go into an Authorization header
    assert math.isfinite(token.expires_at)


@FAST
@given(json_texts.map(str.encode), st.integers(min_value=400, max_value=599), header_bytes)
@example(b"[" * 60000, 500, "\u00b2".encode())
def test_error_answers_become_registry_errors(body: bytes, status: int, retry_after: bytes) -> None:
    response = httpx.Response(status, headers=[(b"Retry-After", retry_after)], content=body, request=REQUEST)
    error = asyncio.run(error_from_response(response, "GET blob"))
    assert isinstance(error, RegistryError) and error.status == status
    assert "\n" not in str(error)
    code, _ = _describe(body)
    assert code is None or isinstance(code, str)


@FAST
@given(json_texts.map(str.encode), st.sampled_from([None, "application/vnd.oci.image.index.v1+json"]))
@example(b"[" * 100000, None)
def test_manifest_bytes_parse_or_raise_manifest_error(data: bytes, content_type: str | None) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(data, content_type)


@FAST
@given(config_texts)
@example(
    '[{"source": "a", "target": "b", "tags": ["1"], "architectures": ["amd64"], "arch_tags": '
    + "9" * 5000
    + "}]"
)
@example("[" * 3000 + "]" * 3000)
def test_images_json_parses_or_raises_config_error(text: str) -> None:
    try:
        config = parse_config(text)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) for p in exc.problems)
    else:
        assert isinstance(config, Config)
