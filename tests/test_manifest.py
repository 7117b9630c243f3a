"""Tests for docker_transfer.manifest: parsing, validation and platform filtering."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from docker_transfer.errors import (
    DigestMismatchError,
    ManifestError,
    PlatformNotFoundError,
    UnsupportedManifestError,
)
from docker_transfer.manifest import (
    ACCEPT_MANIFESTS,
    ATTESTATION_REF_DIGEST_KEY,
    ATTESTATION_REF_TYPE_KEY,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    IMAGE_TYPES,
    INDEX_TYPES,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    SOURCE_DIGEST_ANNOTATION,
    Manifest,
    build_filtered_index,
    check_selection,
    parse_manifest,
    platforms_of,
    select_platforms,
    sha256_digest,
    verify_digest,
)
from docker_transfer.platform import Platform, parse_platform

# --- fixtures ------------------------------------------------------------------


def dg(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def image_desc(
    seed: str, os: str, arch: str, variant: str | None = None, media_type: str = OCI_MANIFEST
) -> dict[str, Any]:
    platform: dict[str, Any] = {"architecture": arch, "os": os}
    if variant is not None:
        platform["variant"] = variant
    return {"mediaType": media_type, "digest": dg(seed), "size": 1000 + len(seed), "platform": platform}


def attestation_desc(seed: str, ref: str) -> dict[str, Any]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": dg(seed),
        "size": 839,
        "annotations": {ATTESTATION_REF_DIGEST_KEY: ref, ATTESTATION_REF_TYPE_KEY: "attestation-manifest"},
        "platform": {"architecture": "unknown", "os": "unknown"},
    }


def encode(doc: dict[str, Any]) -> bytes:
    # Registries store arbitrary formatting; indent=3 mimics docker's own output
    # and makes sure a rewritten index cannot be mistaken for the original.
    return json.dumps(doc, indent=3).encode()


def oci_buildx_doc() -> dict[str, Any]:
    amd64 = image_desc("amd64", "linux", "amd64")
    # Unknown descriptor fields and non-alphabetic key order must survive filtering.
    amd64["urls"] = ["https://example.invalid/x"]
    amd64["annotations"] = {"org.opencontainers.image.title": "héllo"}
    arm64 = image_desc("arm64", "linux", "arm64", "v8")
    arm64["platform"]["os.features"] = ["sse4"]
    s390x = image_desc("s390x", "linux", "s390x")
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            amd64,
            arm64,
            s390x,
            attestation_desc("att-amd64", amd64["digest"]),
            attestation_desc("att-arm64", arm64["digest"]),
            attestation_desc("att-s390x", s390x["digest"]),
        ],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        "zz-extension": {"kept": True},
    }


def docker_list_doc() -> dict[str, Any]:
    mt = DOCKER_MANIFEST_V2
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            image_desc("d-amd64", "linux", "amd64", media_type=mt),
            image_desc("d-arm64", "linux", "arm64", "v8", media_type=mt),
            image_desc("d-armv7", "linux", "arm", "v7", media_type=mt),
            image_desc("d-ppc64le", "linux", "ppc64le", media_type=mt),
        ],
    }


def image_doc(media_type: str | None = OCI_MANIFEST) -> dict[str, Any]:
    layer_type = (
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        if media_type == DOCKER_MANIFEST_V2
        else "application/vnd.oci.image.layer.v1.tar+gzip"
    )
    doc: dict[str, Any] = {"schemaVersion": 2}
    if media_type is not None:
        doc["mediaType"] = media_type
    doc["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": dg("cfg"), "size": 7}
    doc["layers"] = [
        {"mediaType": layer_type, "digest": dg("l1"), "size": 100},
        {"mediaType": layer_type, "digest": dg("l2"), "size": 0},
    ]
    return doc


def parse_doc(doc: dict[str, Any], content_type: str | None = None) -> Manifest:
    if content_type is None:
        content_type = doc.get("mediaType")
    return parse_manifest(encode(doc), content_type)


P = parse_platform


# --- constants and digests -----------------------------------------------------------


def test_accept_lists_supported_types_index_first() -> None:
    assert set(ACCEPT_MANIFESTS) == INDEX_TYPES | IMAGE_TYPES
    assert len(ACCEPT_MANIFESTS) == 4
    assert set(ACCEPT_MANIFESTS[:2]) == INDEX_TYPES


def test_sha256_digest() -> None:
    empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_digest(b"") == empty


def test_verify_digest_sha256_and_sha512() -> None:
    data = b'{"a":1}'
    verify_digest(data, sha256_digest(data))
    verify_digest(data, "sha512:" + hashlib.sha512(data).hexdigest())


def test_verify_digest_mismatch() -> None:
    with pytest.raises(DigestMismatchError) as info:
        verify_digest(b"abc", dg("other"))
    assert info.value.expected == dg("other")
    assert info.value.actual == sha256_digest(b"abc")
    assert "manifest" in str(info.value)


def test_verify_digest_sha512_mismatch() -> None:
    wrong = "sha512:" + hashlib.sha512(b"x").hexdigest()
    with pytest.raises(DigestMismatchError) as info:
        verify_digest(b"abc", wrong)
    assert info.value.actual == "sha512:" + hashlib.sha512(b"abc").hexdigest()


@pytest.mark.parametrize("bad", ["sha256:abc", "md5:" + "0" * 32, "SHA256:" + "0" * 64, "sha256:" + "A" * 64])
def test_verify_digest_malformed(bad: str) -> None:
    with pytest.raises(ManifestError, match="invalid digest"):
        verify_digest(b"abc", bad)


# --- parsing -------------------------------------------------------------------


def test_parse_oci_index() -> None:
    doc = oci_buildx_doc()
    data = encode(doc)
    m = parse_manifest(data, OCI_INDEX)
    assert m.media_type == OCI_INDEX
    assert m.is_index
    assert m.data is data
    assert m.digest == sha256_digest(data)
    assert m.doc == doc
    assert len(m.manifests) == 6
    first = m.manifests[0]
    assert first.digest == dg("amd64")
    assert first.size == 1005
    assert first.platform == Platform("linux", "amd64")
    assert first.annotations == {"org.opencontainers.image.title": "héllo"}
    assert first.raw == doc["manifests"][0]
    assert not first.is_attestation
    assert m.manifests[3].is_attestation
    assert m.manifests[1].platform == Platform("linux", "arm64", "v8")
    assert m.config is None
    assert m.layers == ()
    assert m.blobs == ()
    assert m.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST_V2])
def test_parse_image_manifest(media_type: str) -> None:
    m = parse_doc(image_doc(media_type))
    assert m.media_type == media_type
    assert not m.is_index
    assert m.manifests == ()
    assert m.config is not None
    assert m.config.digest == dg("cfg")
    assert m.config.platform is None
    assert [d.digest for d in m.layers] == [dg("l1"), dg("l2")]
    assert [d.digest for d in m.blobs] == [dg("cfg"), dg("l1"), dg("l2")]
    assert m.layers[1].size == 0
    assert m.annotations == {}


def test_parse_docker_list() -> None:
    m = parse_doc(docker_list_doc())
    assert m.media_type == DOCKER_MANIFEST_LIST
    assert m.is_index
    assert [str(d.platform) for d in m.manifests] == [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/ppc64le",
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        OCI_INDEX + "; charset=utf-8",
        OCI_INDEX + ";charset=UTF-8",
        "  " + OCI_INDEX.upper() + " ; charset=utf-8",
    ],
)
def test_content_type_parameters_stripped(content_type: str) -> None:
    m = parse_manifest(encode(oci_buildx_doc()), content_type)
    assert m.media_type == OCI_INDEX


def test_charset_parameter_stripped_when_body_has_no_media_type() -> None:
    m = parse_manifest(encode(image_doc(None)), DOCKER_MANIFEST_V2 + "; charset=utf-8")
    assert m.media_type == DOCKER_MANIFEST_V2


def test_charset_parameter_still_checked_against_body() -> None:
    with pytest.raises(ManifestError, match="differs from Content-Type"):
        parse_manifest(encode(oci_buildx_doc()), DOCKER_MANIFEST_LIST + "; charset=utf-8")


def test_media_type_from_content_type_when_body_has_none() -> None:
    doc = image_doc(None)
    m = parse_manifest(encode(doc), DOCKER_MANIFEST_V2)
    assert m.media_type == DOCKER_MANIFEST_V2


@pytest.mark.parametrize("content_type", [None, "application/json", "application/octet-stream", ""])
def test_media_type_from_body_with_generic_content_type(content_type: str | None) -> None:
    m = parse_manifest(encode(docker_list_doc()), content_type)
    assert m.media_type == DOCKER_MANIFEST_LIST


@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_media_type_inferred_from_shape(content_type: str | None) -> None:
    index = oci_buildx_doc()
    del index["mediaType"]
    assert parse_manifest(encode(index), content_type).media_type == OCI_INDEX
    assert parse_manifest(encode(image_doc(None)), content_type).media_type == OCI_MANIFEST


def test_media_type_cannot_be_inferred() -> None:
    with pytest.raises(ManifestError, match="cannot tell"):
        parse_manifest(b'{"schemaVersion": 2, "config": {}}', None)


def test_expected_digest_verified() -> None:
    data = encode(oci_buildx_doc())
    assert parse_manifest(data, OCI_INDEX, expected_digest=sha256_digest(data)).digest == sha256_digest(data)
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    assert parse_manifest(data, OCI_INDEX, expected_digest=sha512).digest == sha256_digest(data)
    with pytest.raises(DigestMismatchError) as info:
        parse_manifest(data + b" ", OCI_INDEX, expected_digest=sha256_digest(data))
    assert info.value.expected == sha256_digest(data)
    assert info.value.actual == sha256_digest(data + b" ")


def test_oversized_manifest_refused() -> None:
    data = encode(image_doc())
    big = data + b" " * (MAX_MANIFEST_BYTES + 1 - len(data))
    assert len(big) == MAX_MANIFEST_BYTES + 1
    with pytest.raises(ManifestError) as info:
        parse_manifest(big, OCI_MANIFEST)
    assert str(MAX_MANIFEST_BYTES + 1) in str(info.value)
    assert not isinstance(info.value, UnsupportedManifestError)


def test_manifest_at_limit_accepted() -> None:
    data = encode(image_doc())
    exact = data + b" " * (MAX_MANIFEST_BYTES - len(data))
    assert parse_manifest(exact, OCI_MANIFEST).digest == sha256_digest(exact)


@pytest.mark.parametrize("content_type", [DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1 + "; x=y"])
def test_schema1_content_type_refused(content_type: str) -> None:
    body = b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}'
    with pytest.raises(UnsupportedManifestError) as info:
        parse_manifest(body, content_type)
    message = str(info.value)
    assert "schema 1" in message
    assert "re-push" in message
    assert info.value.digest == sha256_digest(body)


@pytest.mark.parametrize("content_type", [None, "application/json", OCI_MANIFEST])
def test_schema1_body_refused(content_type: str | None) -> None:
    body = b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": [], "history": []}'
    with pytest.raises(UnsupportedManifestError, match="schema 1"):
        parse_manifest(body, content_type)


def test_schema1_body_media_type_refused() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_SCHEMA1}).encode()
    with pytest.raises(UnsupportedManifestError, match="schema 1"):
        parse_manifest(body, "application/json")


@pytest.mark.parametrize(
    ("body_type", "header_type"),
    [
        (OCI_INDEX, DOCKER_MANIFEST_LIST),
        (DOCKER_MANIFEST_LIST, OCI_INDEX),
        (OCI_INDEX, OCI_MANIFEST),
        (OCI_MANIFEST, DOCKER_MANIFEST_V2),
    ],
)
def test_media_type_content_type_mismatch_refused(body_type: str, header_type: str) -> None:
    doc = oci_buildx_doc() if body_type in INDEX_TYPES else image_doc()
    doc["mediaType"] = body_type
    data = encode(doc)
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, header_type)
    assert str(info.value) == f"mediaType {body_type} differs from Content-Type {header_type}"
    assert info.value.digest == sha256_digest(data)


def test_layers_and_manifests_refused() -> None:
    doc = oci_buildx_doc()
    doc["layers"] = image_doc()["layers"]
    with pytest.raises(ManifestError, match="both 'layers' and 'manifests'"):
        parse_doc(doc)
    del doc["mediaType"]
    with pytest.raises(ManifestError, match="both 'layers' and 'manifests'"):
        parse_manifest(encode(doc), None)


def test_shape_must_match_media_type() -> None:
    index = oci_buildx_doc()
    index["config"] = image_doc()["config"]
    with pytest.raises(ManifestError, match="must not have"):
        parse_doc(index)
    image = image_doc()
    del image["layers"]
    image["manifests"] = []
    with pytest.raises(ManifestError, match="must not have 'manifests'"):
        parse_doc(image)
    no_manifests = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    with pytest.raises(ManifestError, match="manifests must be an array"):
        parse_doc(no_manifests)
    no_config = image_doc()
    del no_config["config"]
    with pytest.raises(ManifestError, match="config: descriptor must be an object"):
        parse_doc(no_config)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'"text"', b"null", b""])
def test_invalid_json_refused(body: bytes) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(body, OCI_MANIFEST)
    assert not isinstance(info.value, UnsupportedManifestError)
    assert info.value.digest == sha256_digest(body)


@pytest.mark.parametrize("version", [None, 3, "2", True])
def test_schema_version_must_be_2(version: object) -> None:
    doc = image_doc()
    if version is None:
        del doc["schemaVersion"]
    else:
        doc["schemaVersion"] = version
    with pytest.raises(ManifestError, match="schemaVersion must be 2"):
        parse_doc(doc)


@pytest.mark.parametrize(
    ("body_type", "header_type"),
    [
        ("application/vnd.oci.artifact.manifest.v1+json", "application/vnd.oci.artifact.manifest.v1+json"),
        ("application/vnd.oci.artifact.manifest.v1+json", None),
        (None, "application/vnd.oci.artifact.manifest.v1+json"),
        ("application/vnd.example.thing+json", "application/json"),
    ],
)
def test_unknown_media_type_unsupported(body_type: str | None, header_type: str | None) -> None:
    doc = image_doc(body_type)
    with pytest.raises(UnsupportedManifestError, match="unsupported manifest media type"):
        parse_manifest(encode(doc), header_type)


def test_media_type_not_string_refused() -> None:
    doc = image_doc()
    doc["mediaType"] = 5
    with pytest.raises(ManifestError, match="mediaType must be a string"):
        parse_manifest(encode(doc), None)


BAD_DESCRIPTORS: list[tuple[str, Any, str]] = [
    ("not-object", "sha256:abc", "descriptor must be an object"),
    ("no-media-type", {"digest": dg("x"), "size": 1}, "mediaType"),
    ("media-type-int", {"mediaType": 3, "digest": dg("x"), "size": 1}, "mediaType"),
    ("no-digest", {"mediaType": OCI_MANIFEST, "size": 1}, "digest None"),
    ("short-digest", {"mediaType": OCI_MANIFEST, "digest": "sha256:abcd", "size": 1}, "digest"),
    ("upper-digest", {"mediaType": OCI_MANIFEST, "digest": dg("x").upper(), "size": 1}, "digest"),
    ("md5-digest", {"mediaType": OCI_MANIFEST, "digest": "md5:" + "a" * 32, "size": 1}, "digest"),
    ("digest-suffix", {"mediaType": OCI_MANIFEST, "digest": dg("x") + "\n", "size": 1}, "digest"),
    ("no-size", {"mediaType": OCI_MANIFEST, "digest": dg("x")}, "size None"),
    ("negative-size", {"mediaType": OCI_MANIFEST, "digest": dg("x"), "size": -1}, "size -1"),
    ("bool-size", {"mediaType": OCI_MANIFEST, "digest": dg("x"), "size": True}, "size True"),
    ("str-size", {"mediaType": OCI_MANIFEST, "digest": dg("x"), "size": "10"}, "size '10'"),
    ("float-size", {"mediaType": OCI_MANIFEST, "digest": dg("x"), "size": 1.5}, "size 1.5"),
    (
        "platform-not-object",
        {"mediaType": OCI_MANIFEST, "digest": dg("x"), "size": 1, "platform": "linux/amd64"},
        "platform must be an object",
    ),
    (
        "platform-no-arch",
        {"mediaType": OCI_MANIFEST, "digest": dg("x"), "size": 1, "platform": {"os": "linux"}},
        "",
    ),
    (
        "annotations-not-strings",
        {"mediaType": OCI_MANIFEST, "digest": dg("x"), "size": 1, "annotations": {"a": 1}},
        "annotations",
    ),
]


@pytest.mark.parametrize(
    ("bad", "fragment"), [(b, f) for _, b, f in BAD_DESCRIPTORS], ids=[i for i, _, _ in BAD_DESCRIPTORS]
)
def test_bad_index_descriptor_names_its_index(bad: Any, fragment: str) -> None:
    doc = docker_list_doc()
    doc["manifests"].insert(2, bad)
    data = encode(doc)
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, DOCKER_MANIFEST_LIST)
    message = str(info.value)
    assert message.startswith("manifests[2]: ")
    assert fragment in message
    assert info.value.digest == sha256_digest(data)


def test_bad_layer_descriptor_names_its_index() -> None:
    doc = image_doc()
    doc["layers"][1]["digest"] = "sha256:nothex"
    with pytest.raises(ManifestError, match=r"^layers\[1\]: digest 'sha256:nothex'"):
        parse_doc(doc)


def test_bad_config_descriptor_named() -> None:
    doc = image_doc()
    doc["config"]["size"] = -5
    with pytest.raises(ManifestError, match=r"^config: size -5"):
        parse_doc(doc)


def test_bad_top_level_annotations_refused() -> None:
    doc = oci_buildx_doc()
    doc["annotations"] = ["not", "a", "map"]
    with pytest.raises(ManifestError, match="annotations"):
        parse_doc(doc)


def test_error_digest_is_expected_digest_when_given() -> None:
    doc = docker_list_doc()
    doc["manifests"][0]["size"] = -1
    data = encode(doc)
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, DOCKER_MANIFEST_LIST, expected_digest=sha512)
    assert info.value.digest == sha512


# --- selection -------------------------------------------------------------------


def test_select_two_of_three_with_attestations() -> None:
    index = parse_doc(oci_buildx_doc())
    sel = select_platforms(index, [P("linux/s390x"), P("linux/amd64")])
    assert [c.digest for c in sel.children] == [
        dg("amd64"),
        dg("s390x"),
        dg("att-amd64"),
        dg("att-s390x"),
    ]
    assert sel.platforms == (Platform("linux", "amd64"), Platform("linux", "s390x"))
    assert not sel.is_complete
    assert sel.missing == ()
    check_selection("example.com/app:1", sel, index)


def test_select_two_of_four_docker_list() -> None:
    index = parse_doc(docker_list_doc())
    sel = select_platforms(index, [P("linux/arm/v7"), P("linux/amd64")])
    assert [c.digest for c in sel.children] == [dg("d-amd64"), dg("d-armv7")]
    assert sel.platforms == (Platform("linux", "amd64"), Platform("linux", "arm", "v7"))
    assert not sel.is_complete
    assert sel.missing == ()


def test_arm64_matches_variant_v8() -> None:
    index = parse_doc(docker_list_doc())
    sel = select_platforms(index, [P("linux/arm64")])
    assert [c.digest for c in sel.children] == [dg("d-arm64")]
    assert sel.platforms == (Platform("linux", "arm64", "v8"),)
    assert sel.missing == ()


def test_none_selects_everything_and_is_complete() -> None:
    index = parse_doc(oci_buildx_doc())
    sel = select_platforms(index, None)
    assert sel.children == index.manifests
    assert sel.is_complete
    assert sel.missing == ()
    assert sel.platforms == platforms_of(index)


def test_selecting_all_platforms_is_complete() -> None:
    index = parse_doc(oci_buildx_doc())
    sel = select_platforms(index, [P("linux/amd64"), P("linux/arm64"), P("linux/s390x")])
    assert sel.is_complete
    assert len(sel.children) == 6


def test_child_matched_twice_kept_once() -> None:
    index = parse_doc(docker_list_doc())
    sel = select_platforms(index, [P("linux/arm64"), P("linux/arm64/v8"), P("linux/arm64")])
    assert [c.digest for c in sel.children] == [dg("d-arm64")]
    assert sel.missing == ()


def test_every_matching_child_kept() -> None:
    doc = docker_list_doc()
    doc["manifests"].append(image_desc("d-amd64-again", "linux", "amd64", media_type=DOCKER_MANIFEST_V2))
    index = parse_doc(doc)
    sel = select_platforms(index, [P("linux/amd64")])
    assert [c.digest for c in sel.children] == [dg("d-amd64"), dg("d-amd64-again")]
    assert sel.platforms == (Platform("linux", "amd64"),)


def test_missing_platform_reported() -> None:
    index = parse_doc(docker_list_doc())
    sel = select_platforms(index, [P("linux/amd64"), P("windows/amd64"), P("linux/riscv64")])
    assert sel.missing == (Platform("windows", "amd64"), Platform("linux", "riscv64"))
    assert [c.digest for c in sel.children] == [dg("d-amd64")]
    with pytest.raises(PlatformNotFoundError) as info:
        check_selection("docker.io/library/app:1", sel, index)
    err = info.value
    assert err.reference == "docker.io/library/app:1"
    assert err.missing == ["windows/amd64", "linux/riscv64"]
    assert err.available == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le"]


def test_missing_deduplicated() -> None:
    index = parse_doc(docker_list_doc())
    sel = select_platforms(index, [P("linux/riscv64"), P("linux/riscv64")])
    assert sel.missing == (Platform("linux", "riscv64"),)
    assert sel.children == ()


def test_attestation_platform_not_selectable() -> None:
    index = parse_doc(oci_buildx_doc())
    sel = select_platforms(index, [Platform("unknown", "unknown")])
    assert sel.children == ()
    assert sel.missing == (Platform("unknown", "unknown"),)


def test_platformless_children_only_kept_for_all() -> None:
    doc = docker_list_doc()
    doc["manifests"].insert(1, {"mediaType": DOCKER_MANIFEST_V2, "digest": dg("noplat"), "size": 5})
    index = parse_doc(doc)
    assert dg("noplat") in [c.digest for c in select_platforms(index, None).children]
    sel = select_platforms(index, [P("linux/amd64")])
    assert [c.digest for c in sel.children] == [dg("d-amd64")]


def test_dangling_attestation_kept_for_all_only() -> None:
    doc = docker_list_doc()
    doc["manifests"].append(attestation_desc("att-gone", dg("gone")))
    index = parse_doc(doc)
    everything = select_platforms(index, None)
    assert everything.is_complete
    assert len(everything.children) == 5
    sel = select_platforms(index, [P("linux/amd64"), P("linux/arm64"), P("linux/arm/v7"), P("linux/ppc64le")])
    assert not sel.is_complete
    assert dg("att-gone") not in [c.digest for c in sel.children]


def test_platforms_of_excludes_attestations() -> None:
    index = parse_doc(oci_buildx_doc())
    assert platforms_of(index) == (
        Platform("linux", "amd64"),
        Platform("linux", "arm64", "v8"),
        Platform("linux", "s390x"),
    )


def test_select_on_image_manifest_rejected() -> None:
    with pytest.raises(ValueError, match="needs an index"):
        select_platforms(parse_doc(image_doc()), None)


def test_select_empty_wanted_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        select_platforms(parse_doc(docker_list_doc()), [])


# --- filtered index ------------------------------------------------------------------


def test_complete_selection_returns_identical_bytes() -> None:
    index = parse_doc(oci_buildx_doc())
    for wanted in (None, [P("linux/amd64"), P("linux/arm64"), P("linux/s390x")]):
        sel = select_platforms(index, wanted)
        out = build_filtered_index(index, sel)
        assert out is index.data


def test_filtered_oci_index_keeps_descriptors_verbatim() -> None:
    source_doc = oci_buildx_doc()
    index = parse_doc(source_doc)
    sel = select_platforms(index, [P("linux/amd64"), P("linux/arm64")])
    out = build_filtered_index(index, sel)
    assert out != index.data
    again = parse_manifest(out, OCI_INDEX)
    assert again.media_type == OCI_INDEX
    expected_raw = [source_doc["manifests"][i] for i in (0, 1, 3, 4)]
    assert [json.dumps(d.raw) for d in again.manifests] == [json.dumps(r) for r in expected_raw]
    for new, old in zip(again.manifests, sel.children, strict=True):
        assert (new.digest, new.size, new.platform, new.media_type) == (
            old.digest,
            old.size,
            old.platform,
            old.media_type,
        )
        assert list(new.raw) == list(old.raw)
    # Unknown descriptor and platform fields survive.
    assert again.manifests[0].raw["urls"] == ["https://example.invalid/x"]
    assert again.manifests[1].raw["platform"]["os.features"] == ["sse4"]


def test_filtered_oci_index_keeps_top_level_fields_and_merges_annotation() -> None:
    index = parse_doc(oci_buildx_doc())
    out = build_filtered_index(index, select_platforms(index, [P("linux/s390x")]))
    again = parse_manifest(out, OCI_INDEX)
    assert list(again.doc) == ["schemaVersion", "mediaType", "manifests", "annotations", "zz-extension"]
    assert again.doc["zz-extension"] == {"kept": True}
    assert again.annotations == {
        "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
        SOURCE_DIGEST_ANNOTATION: index.digest,
    }
    assert [c.digest for c in again.manifests] == [dg("s390x"), dg("att-s390x")]


def test_filtered_docker_list_keeps_media_type_and_gets_annotation() -> None:
    index = parse_doc(docker_list_doc())
    sel = select_platforms(index, [P("linux/amd64"), P("linux/ppc64le")])
    out = build_filtered_index(index, sel)
    again = parse_manifest(out, DOCKER_MANIFEST_LIST, expected_digest=sha256_digest(out))
    assert again.media_type == DOCKER_MANIFEST_LIST
    assert again.doc["mediaType"] == DOCKER_MANIFEST_LIST
    assert again.annotations == {SOURCE_DIGEST_ANNOTATION: index.digest}
    assert [c.digest for c in again.manifests] == [dg("d-amd64"), dg("d-ppc64le")]
    assert again.digest != index.digest


def test_filtered_index_without_annotation() -> None:
    doc = docker_list_doc()
    index = parse_doc(doc)
    out = build_filtered_index(
        index, select_platforms(index, [P("linux/amd64")]), source_digest_annotation=False
    )
    again = parse_manifest(out, DOCKER_MANIFEST_LIST)
    assert "annotations" not in again.doc
    assert list(again.doc) == list(doc)


def test_filtered_index_does_not_mutate_source() -> None:
    index = parse_doc(oci_buildx_doc())
    before = json.dumps(index.doc)
    build_filtered_index(index, select_platforms(index, [P("linux/amd64")]))
    assert json.dumps(index.doc) == before
    assert len(index.manifests) == 6


def test_filtered_index_is_deterministic_and_utf8() -> None:
    index = parse_doc(oci_buildx_doc())
    sel = select_platforms(index, [P("linux/amd64")])
    out = build_filtered_index(index, sel)
    assert out == build_filtered_index(parse_doc(oci_buildx_doc()), sel)
    assert "héllo".encode() in out


def test_filtered_index_refuses_empty_selection() -> None:
    index = parse_doc(docker_list_doc())
    sel = select_platforms(index, [P("linux/riscv64")])
    with pytest.raises(ValueError, match="no manifests"):
        build_filtered_index(index, sel)
