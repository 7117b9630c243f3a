"""Tests for docker_transfer.reference."""

from __future__ import annotations

import dataclasses

import pytest

from docker_transfer.errors import InvalidReferenceError, UsageError
from docker_transfer.reference import (
    DIGEST_RE,
    DOCKER_HUB,
    DOCKER_HUB_API_HOST,
    TAG_RE,
    Reference,
    is_digest,
    parse_reference,
    validate_repository,
    validate_tag,
)

D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "0123456789abcdef" * 8

# (input, registry, repository, tag, digest, canonical string)
VALID: list[tuple[str, str, str, str | None, str | None, str]] = [
    ("nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("nginx:1.25", "docker.io", "library/nginx", "1.25", None, "docker.io/library/nginx:1.25"),
    (
        "vllm/vllm-openai:v0.11.0",
        "docker.io",
        "vllm/vllm-openai",
        "v0.11.0",
        None,
        "docker.io/vllm/vllm-openai:v0.11.0",
    ),
    (
        "ghcr.io/open-webui/open-webui:main",
        "ghcr.io",
        "open-webui/open-webui",
        "main",
        None,
        "ghcr.io/open-webui/open-webui:main",
    ),
    (
        "registry.example.com:5000/a/b:1",
        "registry.example.com:5000",
        "a/b",
        "1",
        None,
        "registry.example.com:5000/a/b:1",
    ),
    ("localhost/x", "localhost", "x", "latest", None, "localhost/x:latest"),
    ("localhost:5000/x", "localhost:5000", "x", "latest", None, "localhost:5000/x:latest"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", None, "127.0.0.1:5000/x:latest"),
    ("[::1]:5000/x", "[::1]:5000", "x", "latest", None, "[::1]:5000/x:latest"),
    ("[::1]/x:t", "[::1]", "x", "t", None, "[::1]/x:t"),
    (f"nginx@{D256}", "docker.io", "library/nginx", None, D256, f"docker.io/library/nginx@{D256}"),
    (
        f"nginx:1.25@{D256}",
        "docker.io",
        "library/nginx",
        "1.25",
        D256,
        f"docker.io/library/nginx:1.25@{D256}",
    ),
    (
        f"host:5000/a/b@{D256}",
        "host:5000",
        "a/b",
        None,
        D256,
        f"host:5000/a/b@{D256}",
    ),
    (f"host.io/a:t@{D512}", "host.io", "a", "t", D512, f"host.io/a:t@{D512}"),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    (
        "registry-1.docker.io/library/nginx:1",
        "docker.io",
        "library/nginx",
        "1",
        None,
        "docker.io/library/nginx:1",
    ),
    (
        "registry.hub.docker.com/vllm/vllm-openai",
        "docker.io",
        "vllm/vllm-openai",
        "latest",
        None,
        "docker.io/vllm/vllm-openai:latest",
    ),
    ("Docker.IO/nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("docker://nginx:1", "docker.io", "library/nginx", "1", None, "docker.io/library/nginx:1"),
    ("docker://ghcr.io/a/b", "ghcr.io", "a/b", "latest", None, "ghcr.io/a/b:latest"),
    (
        "Registry.Example.COM/a/b",
        "registry.example.com",
        "a/b",
        "latest",
        None,
        "registry.example.com/a/b:latest",
    ),
    ("a/b/c/d:_x", "docker.io", "a/b/c/d", "_x", None, "docker.io/a/b/c/d:_x"),
    (
        "a/b.c__d---e/f_g:X.Y-z",
        "docker.io",
        "a/b.c__d---e/f_g",
        "X.Y-z",
        None,
        "docker.io/a/b.c__d---e/f_g:X.Y-z",
    ),
    (
        "my-reg.example-1.com/e_f",
        "my-reg.example-1.com",
        "e_f",
        "latest",
        None,
        "my-reg.example-1.com/e_f:latest",
    ),
    ("my__repo/x-y.z", "docker.io", "my__repo/x-y.z", "latest", None, "docker.io/my__repo/x-y.z:latest"),
    # Like Docker: without a '/', 'localhost:5000' is repository 'localhost' with tag '5000'.
    ("localhost:5000", "docker.io", "library/localhost", "5000", None, "docker.io/library/localhost:5000"),
    (
        "nginx:" + "t" * 128,
        "docker.io",
        "library/nginx",
        "t" * 128,
        None,
        "docker.io/library/nginx:" + "t" * 128,
    ),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest", "canonical"), VALID)
def test_parse_valid(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None, canonical: str
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == canonical
    # The canonical form is a fixed point.
    assert parse_reference(str(ref)) == ref


# (input, substring of the reason); every substring is distinct.
INVALID: list[tuple[str, str]] = [
    ("", "the reference is empty"),
    (" nginx", "contains whitespace"),
    ("hub.docker.com/_/nginx", "use 'nginx' or 'docker.io/library/nginx'"),
    ("HUB.docker.com/r/vllm/vllm-openai", "use 'vllm/vllm-openai' or 'docker.io/vllm/vllm-openai'"),
    ("hub.docker.com/layers/x", "use the image name"),
    ("https://hub.docker.com/_/redis", "use 'redis'"),
    ("oci:/tmp/layout", "transport 'oci:' is not supported"),
    ("docker-archive:/tmp/x.tar", "transport 'docker-archive:'"),
    ("https://ghcr.io/a/b", "'https://' URLs are not image references"),
    ("http://host/a", "write 'host/a' without the scheme"),
    ("ftp://host/a", "transport 'ftp://'"),
    ("Nginx", "repository names must be lowercase"),
    ("MyUser/app", "repository 'MyUser/app' has uppercase"),
    ("nginx:", "the tag after ':' is empty"),
    ("nginx:-bad", "tag '-bad' must match"),
    ("nginx:" + "a" * 129, "the limit is 128"),
    ("nginx@", "the digest after '@' is empty"),
    ("nginx@sha256:abc", "sha256 digest must have 64 hex characters, got 3"),
    ("nginx@sha512:" + "a" * 64, "sha512 digest must have 128"),
    ("nginx@sha256:" + "A" * 64, "must use lowercase hex"),
    ("nginx@sha256:" + "g" * 64, "contains non-hex characters"),
    ("nginx@md5:abc", "digest algorithm 'md5' is not supported"),
    ("nginx@sha256", "must have the form algorithm:hex"),
    (f"nginx@{D256}@{D256}", "more than one '@'"),
    ("a//b", "has an empty path component"),
    ("foo/a..b", "path component 'a..b'"),
    ("-nginx", "path component '-nginx' of repository 'library/-nginx'"),
    ("example.com/" + "a" * 250, "the limit is 255"),
    ("foo_bar.com/x", "registry host 'foo_bar.com' is not a valid host name"),
    ("[zz]:5000/x", "not a valid bracketed IPv6 address"),
    ("localhost:99999/x", "port '99999' is out of range"),
    ("example.com:/x", "registry 'example.com:' is not a valid host[:port]"),
    ("docker://", "the repository name is empty"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_parse_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    assert reason in info.value.reason
    assert info.value.reference == text
    assert isinstance(info.value, UsageError)


def test_invalid_reasons_are_distinct() -> None:
    reasons = [reason for _, reason in INVALID]
    assert len(reasons) == len(set(reasons))
    assert len(reasons) >= 15


def test_docker_name_is_not_a_transport() -> None:
    # 'docker:nginx' is repository 'docker' with tag 'nginx', as in Docker.
    assert str(parse_reference("docker:nginx")) == "docker.io/library/docker:nginx"
    # A registry that happens to be called like a transport, with a port.
    assert parse_reference("oci:5000/a").registry == "oci:5000"


def test_default_tag() -> None:
    assert parse_reference("nginx", default_tag=None).tag is None
    assert str(parse_reference("nginx", default_tag=None)) == "docker.io/library/nginx"
    assert parse_reference("nginx", default_tag="stable").tag == "stable"
    assert parse_reference(f"nginx@{D256}", default_tag="stable").tag is None


def test_api_host_and_name() -> None:
    hub = parse_reference("registry-1.docker.io/vllm/vllm-openai")
    assert hub.registry == DOCKER_HUB
    assert hub.api_host == DOCKER_HUB_API_HOST
    assert hub.name == "docker.io/vllm/vllm-openai"
    other = parse_reference("localhost:5000/x")
    assert other.api_host == "localhost:5000"
    assert other.name == "localhost:5000/x"


def test_identifier() -> None:
    assert parse_reference("nginx").identifier == "latest"
    assert parse_reference("nginx:1").identifier == "1"
    assert parse_reference(f"nginx:1@{D256}").identifier == D256
    assert parse_reference("nginx", default_tag=None).identifier == "latest"


def test_with_tag_drops_digest() -> None:
    ref = parse_reference(f"nginx:1@{D256}").with_tag("2")
    assert (ref.tag, ref.digest) == ("2", None)
    with pytest.raises(InvalidReferenceError, match=r"tag '\.bad' must match"):
        ref.with_tag(".bad")


def test_with_digest_keeps_tag() -> None:
    ref = parse_reference("nginx:1").with_digest(D256)
    assert (ref.tag, ref.digest, ref.identifier) == ("1", D256, D256)
    with pytest.raises(InvalidReferenceError, match="hex characters"):
        ref.with_digest("sha256:1234")


def test_with_repository() -> None:
    ref = parse_reference("ghcr.io/a/b:1")
    assert str(ref.with_repository("c/d")) == "ghcr.io/c/d:1"
    assert str(ref.with_repository("c")) == "ghcr.io/c:1"
    assert str(parse_reference("nginx:1").with_repository("redis")) == "docker.io/library/redis:1"
    with pytest.raises(InvalidReferenceError, match="must be lowercase"):
        ref.with_repository("C/D")
    with pytest.raises(InvalidReferenceError, match="empty path component"):
        ref.with_repository("c//d")


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse_reference("nginx")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/nginx:latest")} == {ref}


def test_constructor_validates() -> None:
    assert str(Reference("ghcr.io", "a/b", "1", None)) == "ghcr.io/a/b:1"
    with pytest.raises(InvalidReferenceError, match="not a valid host name"):
        Reference("bad_host", "a")
    with pytest.raises(InvalidReferenceError, match="must be lowercase"):
        Reference("ghcr.io", "A")
    with pytest.raises(InvalidReferenceError, match="non-hex"):
        Reference("ghcr.io", "a", None, "sha256:" + "z" * 64)


def test_validate_tag() -> None:
    assert validate_tag("v1.2.3-rc_1") == "v1.2.3-rc_1"
    for bad in ("", ".x", "-x", "a:b", "a/b", "x" * 129):
        with pytest.raises(InvalidReferenceError):
            validate_tag(bad)


def test_validate_repository() -> None:
    assert validate_repository("library/nginx") == "library/nginx"
    assert validate_repository("a/b-c/d__e/f.g") == "a/b-c/d__e/f.g"
    for bad in ("", "a/", "/a", "a_/b", "a___b", "a.-b", "UPPER"):
        with pytest.raises(InvalidReferenceError):
            validate_repository(bad)


def test_is_digest() -> None:
    assert is_digest(D256)
    assert is_digest(D512)
    assert not is_digest("sha256:" + "a" * 63)
    assert not is_digest("sha256:" + "A" * 64)
    assert not is_digest("sha384:" + "a" * 96)
    assert not is_digest("nginx")


def test_patterns_are_full_match_patterns() -> None:
    assert TAG_RE.fullmatch("a" * 128)
    assert not TAG_RE.fullmatch("a" * 129)
    assert DIGEST_RE.fullmatch(D256)
    assert not DIGEST_RE.fullmatch(D256 + "a")
