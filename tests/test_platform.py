"""Tests for docker_transfer.platform."""

from __future__ import annotations

import dataclasses

import pytest

from docker_transfer.errors import InvalidPlatformError, UsageError
from docker_transfer.platform import SHORTHANDS, Platform, is_unknown, parse_platform


def P(os: str, arch: str, variant: str | None = None) -> Platform:
    return Platform(os, arch, variant)


# (text, expected)
PARSE_OK: list[tuple[str, Platform]] = [
    ("amd64", P("linux", "amd64")),
    ("arm64", P("linux", "arm64")),
    ("arm/v7", P("linux", "arm", "v7")),
    ("arm/v6", P("linux", "arm", "v6")),
    ("386", P("linux", "386")),
    ("ppc64le", P("linux", "ppc64le")),
    ("s390x", P("linux", "s390x")),
    ("riscv64", P("linux", "riscv64")),
    ("x86_64", P("linux", "amd64")),
    ("aarch64", P("linux", "arm64")),
    ("linux/amd64", P("linux", "amd64")),
    ("linux/arm64", P("linux", "arm64")),
    ("linux/arm64/v8", P("linux", "arm64", "v8")),
    ("linux/arm", P("linux", "arm")),
    ("linux/arm/v7", P("linux", "arm", "v7")),
    ("linux/amd64/v3", P("linux", "amd64", "v3")),
    ("linux/x86_64", P("linux", "amd64")),
    ("linux/aarch64/v8", P("linux", "arm64", "v8")),
    ("arm64/v8", P("linux", "arm64", "v8")),
    ("amd64/v2", P("linux", "amd64", "v2")),
    ("aarch64/v8", P("linux", "arm64", "v8")),
    ("windows/amd64", P("windows", "amd64")),
    ("freebsd/arm64", P("freebsd", "arm64")),
    ("linux/mips64le", P("linux", "mips64le")),
    ("linux/loong64", P("linux", "loong64")),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_OK)
def test_parse_ok(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


def test_every_shorthand_parses_and_round_trips() -> None:
    for short in SHORTHANDS:
        platform = parse_platform(short)
        assert platform.os == "linux"
        assert parse_platform(str(platform)) == platform


# (text, substring of the reason)
PARSE_BAD: list[tuple[str, str]] = [
    ("x86", "did you mean amd64 (64-bit) or 386 (32-bit)?"),
    ("", "the platform is empty"),
    (" amd64", "contains whitespace"),
    ("AMD64", "platform names are lowercase"),
    ("Linux/amd64", "lowercase"),
    ("linux/amd64/v3/x", "too many '/'-separated parts"),
    ("linux//v7", "a part between '/' is empty"),
    ("linux/", "part between '/' is empty"),
    ("/amd64", "between '/'"),
    ("x86-64", "did you mean amd64?"),
    ("i386", "did you mean 386?"),
    ("armhf", "did you mean arm/v7?"),
    ("armel", "did you mean arm/v6?"),
    ("arm", "linux/arm for any 32-bit arm variant"),
    ("mips64le", "write it in full as linux/mips64le"),
    ("linux", "add the architecture, e.g. linux/amd64"),
    ("sparc", "unknown platform name"),
    ("linx/amd64", "unknown operating system 'linx'"),
    ("linux/amd46", "unknown architecture 'amd46'"),
    ("linux/x86", "unknown architecture 'x86'; did you mean amd64 (64-bit)"),
    ("linux/armhf", "unknown architecture 'armhf'; did you mean arm/v7?"),
    ("unknown/unknown", "unknown operating system 'unknown'"),
    ("linux/arm/v7_", "variant 'v7_' is not a valid variant name"),
]


@pytest.mark.parametrize(("text", "reason"), PARSE_BAD)
def test_parse_bad(text: str, reason: str) -> None:
    with pytest.raises(InvalidPlatformError) as info:
        parse_platform(text)
    assert reason in info.value.reason
    assert info.value.platform == text
    assert isinstance(info.value, UsageError)


def test_x86_error_lists_the_shorthands() -> None:
    with pytest.raises(InvalidPlatformError) as info:
        parse_platform("x86")
    for short in SHORTHANDS:
        assert short in str(info.value)


# (wanted, candidate, expected)
MATCHES: list[tuple[Platform, Platform, bool]] = [
    (P("linux", "amd64"), P("linux", "amd64"), True),
    (P("linux", "amd64"), P("linux", "amd64", "v2"), True),
    (P("linux", "amd64"), P("linux", "amd64", "v3"), True),
    (P("linux", "amd64", "v3"), P("linux", "amd64", "v3"), True),
    (P("linux", "amd64", "v3"), P("linux", "amd64"), False),
    (P("linux", "amd64", "v3"), P("linux", "amd64", "v2"), False),
    (P("linux", "amd64"), P("windows", "amd64"), False),
    (P("windows", "amd64"), P("windows", "amd64"), True),
    (P("linux", "amd64"), P("linux", "arm64"), False),
    (P("linux", "arm64"), P("linux", "arm64"), True),
    (P("linux", "arm64"), P("linux", "arm64", "v8"), True),
    (P("linux", "arm64"), P("linux", "arm64", "v9"), False),
    (P("linux", "arm64", "v8"), P("linux", "arm64", "v8"), True),
    (P("linux", "arm64", "v8"), P("linux", "arm64"), True),
    (P("linux", "arm64", "v8"), P("linux", "arm64", "v9"), False),
    (P("linux", "arm64", "v9"), P("linux", "arm64", "v9"), True),
    (P("linux", "arm64", "v9"), P("linux", "arm64"), False),
    (P("linux", "arm", "v7"), P("linux", "arm", "v7"), True),
    (P("linux", "arm", "v7"), P("linux", "arm", "v6"), False),
    (P("linux", "arm", "v7"), P("linux", "arm"), False),
    (P("linux", "arm", "v6"), P("linux", "arm", "v7"), False),
    (P("linux", "arm"), P("linux", "arm", "v7"), True),
    (P("linux", "arm"), P("linux", "arm", "v6"), True),
    (P("linux", "arm"), P("linux", "arm"), True),
    (P("linux", "arm"), P("linux", "arm64"), False),
    (P("linux", "386"), P("linux", "386"), True),
    (P("linux", "ppc64le"), P("linux", "ppc64le", "power9"), True),
    (P("linux", "riscv64", "rva22u64"), P("linux", "riscv64"), False),
    (P("linux", "amd64"), P("unknown", "unknown"), False),
    (P("linux", "s390x"), P("linux", "s390x"), True),
]


@pytest.mark.parametrize(("wanted", "candidate", "expected"), MATCHES)
def test_matches(wanted: Platform, candidate: Platform, expected: bool) -> None:
    assert wanted.matches(candidate) is expected


def test_matches_from_parsed_input() -> None:
    index = [
        Platform.from_oci({"os": "linux", "architecture": "amd64"}),
        Platform.from_oci({"os": "linux", "architecture": "arm64", "variant": "v8"}),
        Platform.from_oci({"os": "linux", "architecture": "arm", "variant": "v7"}),
        Platform.from_oci({"os": "unknown", "architecture": "unknown"}),
    ]
    assert [str(p) for p in index if parse_platform("arm64").matches(p)] == ["linux/arm64/v8"]
    assert [str(p) for p in index if parse_platform("x86_64").matches(p)] == ["linux/amd64"]
    assert [str(p) for p in index if parse_platform("arm/v6").matches(p)] == []
    assert [str(p) for p in index if parse_platform("linux/arm").matches(p)] == ["linux/arm/v7"]


@pytest.mark.parametrize(
    ("platform", "text", "suffix"),
    [
        (P("linux", "amd64"), "linux/amd64", "amd64"),
        (P("linux", "arm64"), "linux/arm64", "arm64"),
        (P("linux", "arm64", "v8"), "linux/arm64/v8", "arm64"),
        (P("linux", "arm", "v7"), "linux/arm/v7", "arm-v7"),
        (P("linux", "arm", "v6"), "linux/arm/v6", "arm-v6"),
        (P("linux", "386"), "linux/386", "386"),
        (P("linux", "amd64", "v3"), "linux/amd64/v3", "amd64-v3"),
        (P("windows", "amd64"), "windows/amd64", "windows-amd64"),
        (P("freebsd", "arm", "v7"), "freebsd/arm/v7", "freebsd-arm-v7"),
    ],
)
def test_str_and_tag_suffix(platform: Platform, text: str, suffix: str) -> None:
    assert str(platform) == text
    assert platform.tag_suffix == suffix


def test_from_oci_descriptor_and_config() -> None:
    descriptor = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.20348.2527",
        "os.features": ["win32k"],
    }
    assert Platform.from_oci(descriptor) == P("windows", "amd64")
    config: dict[str, object] = {"architecture": "arm", "os": "linux", "variant": "v7", "rootfs": {}}
    assert Platform.from_oci(config) == P("linux", "arm", "v7")
    assert Platform.from_oci({"os": "linux", "architecture": "arm64", "variant": ""}) == P("linux", "arm64")
    assert Platform.from_oci({"os": "linux", "architecture": "arm64", "variant": None}) == P("linux", "arm64")
    # Values are kept as written, even ones parse_platform would refuse.
    assert Platform.from_oci({"os": "linux", "architecture": "x86_64"}).architecture == "x86_64"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"architecture": "amd64"}, "'os' field"),
        ({"os": "linux"}, "'architecture' field"),
        ({"os": 1, "architecture": "amd64"}, "'os' field"),
        ({"os": "linux", "architecture": ["amd64"]}, "'architecture' field"),
        ({"os": "", "architecture": "amd64"}, "'os' field"),
        ({"os": "linux", "architecture": "arm", "variant": 7}, "'variant' field"),
    ],
)
def test_from_oci_invalid(data: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidPlatformError) as info:
        Platform.from_oci(data)
    assert reason in info.value.reason


def test_is_unknown() -> None:
    assert is_unknown(P("unknown", "unknown"))
    assert is_unknown(Platform.from_oci({"os": "unknown", "architecture": "unknown"}))
    assert not is_unknown(P("linux", "amd64"))


def test_ordering_handles_missing_variant() -> None:
    platforms = [
        P("windows", "amd64"),
        P("linux", "arm64", "v8"),
        P("linux", "arm", "v7"),
        P("linux", "arm64"),
        P("linux", "amd64"),
        P("linux", "arm", "v6"),
    ]
    assert [str(p) for p in sorted(platforms)] == [
        "linux/amd64",
        "linux/arm/v6",
        "linux/arm/v7",
        "linux/arm64",
        "linux/arm64/v8",
        "windows/amd64",
    ]
    assert P("linux", "arm64") <= P("linux", "arm64")
    assert P("linux", "arm64", "v8") > P("linux", "arm64")
    assert P("linux", "arm64", "v8") >= P("linux", "arm64")


def test_platform_is_frozen_and_hashable() -> None:
    platform = P("linux", "amd64")
    with pytest.raises(dataclasses.FrozenInstanceError):
        platform.os = "windows"  # type: ignore[misc]
    assert {platform, parse_platform("amd64"), parse_platform("linux/amd64")} == {platform}
