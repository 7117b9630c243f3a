"""Error answers from a destination become one line naming a cause, whatever the registry sends (10.5)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_transfer.errors import AuthenticationError, AuthorizationError, NotFoundError, RegistryError
from docker_transfer.registry.httperrors import CREDENTIAL_SENT, error_from_response

URL = "https://acr.example/v2/mirror/app/blobs/uploads/"


def classify(
    status: int, body: bytes, *, sent: bool | None, destination: bool, headers: dict[str, str] | None = None
) -> RegistryError:
    request = httpx.Request("POST", URL)
    response = httpx.Response(status, content=body, request=request, headers=headers or {})
    if sent is not None:
        response.extensions[CREDENTIAL_SENT] = sent
    return asyncio.run(error_from_response(response, "start upload", destination=destination))


def errors_body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def test_403_at_the_destination_names_namespace_repository_and_login() -> None:
    error = classify(
        403, errors_body("DENIED", "requested access to the resource is denied"), sent=True, destination=True
    )
    assert isinstance(error, AuthorizationError)
    assert "namespace 'mirror' may not exist" in error.message
    assert error.message.endswith("(acr.example said: DENIED: requested access to the resource is denied)")
    # At a source the same answer stays a plain permission error.
    plain = classify(403, errors_body("DENIED", "denied"), sent=True, destination=False)
    assert "namespace" not in plain.message


@pytest.mark.parametrize(
    "challenge",
    ['Bearer realm="https://auth.example/token",error="insufficient_scope"', 'Bearer realm="https://a/t"'],
)
def test_bearer_401_with_a_login_is_access_denied_not_bad_password(challenge: str) -> None:
    """A token was issued, so the password was right: the token lacks push rights (Docker Hub)."""
    error = classify(
        401,
        errors_body("UNAUTHORIZED", "authentication required"),
        sent=True,
        destination=True,
        headers={"WWW-Authenticate": challenge},
    )
    assert isinstance(error, AuthorizationError) and "may not push there" in error.message
    basic = classify(401, b"", sent=True, destination=True, headers={"WWW-Authenticate": 'Basic realm="r"'})
    assert isinstance(basic, AuthenticationError) and "rejected the credentials" in basic.message


def test_401_says_whether_credentials_were_found() -> None:
    body = errors_body("UNAUTHORIZED", "authentication required")
    missing = classify(401, body, sent=False, destination=True)
    rejected = classify(401, body, sent=True, destination=True)
    assert isinstance(missing, AuthenticationError) and isinstance(rejected, AuthenticationError)
    assert "no credentials found for acr.example" in missing.message
    assert "TARGET_USERNAME/TARGET_PASSWORD" in missing.message
    assert "acr.example rejected the credentials" in rejected.message
    assert "UNAUTHORIZED: authentication required" in rejected.message


def test_404_about_a_blob_is_not_blamed_on_the_repository() -> None:
    error = classify(404, errors_body("BLOB_UPLOAD_UNKNOWN", "upload unknown"), sent=None, destination=True)
    assert isinstance(error, NotFoundError) and "no repository" not in error.message
    name = classify(
        404, errors_body("NAME_UNKNOWN", "repository name not known"), sent=None, destination=True
    )
    assert "has no repository mirror/app" in name.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=400, max_value=599),
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(errors_body, st.text(max_size=60), st.text(max_size=400)),
        st.builds(lambda doc: json.dumps(doc).encode(), json_values),
    ),
    sent=st.none() | st.booleans(),
    destination=st.booleans(),
)
def test_any_error_answer_becomes_one_bounded_line(
    status: int, body: bytes, sent: bool | None, destination: bool
) -> None:
    error = classify(status, body, sent=sent, destination=destination)
    assert isinstance(error, RegistryError)
    assert "\n" not in error.message and "\r" not in error.message
    assert len(error.message) < 1200
    assert error.status == status and error.host == "acr.example"
