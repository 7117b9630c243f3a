"""plan.py: destinations for config entries, and the pure "is the destination up to date?" decision."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_transfer.config import AttestationMode, parse_config
from docker_transfer.errors import UsageError
from docker_transfer.manifest import (
    ABSENT_PLATFORMS_ANNOTATION,
    DROPPED_ARTIFACTS_ANNOTATION,
    OCI_INDEX,
    OCI_MANIFEST,
    SOURCE_DIGEST_ANNOTATION,
    Manifest,
    build_filtered_index,
    parse_manifest,
    select_platforms,
)
from docker_transfer.plan import (
    Target,
    absent_from_source,
    is_unchanged,
    plan_jobs,
    platforms_match,
    skipped_platforms,
)
from docker_transfer.platform import Platform, parse_platform

SRC = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
AMD = "sha256:" + "1" * 64
ARM = "sha256:" + "2" * 64
S390 = "sha256:" + "3" * 64


def index(children: list[tuple[str, dict[str, str]]], annotations: dict[str, str] | None = None) -> Manifest:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d, "size": 500, "platform": p} for d, p in children
        ],
    }
    if annotations:
        doc["annotations"] = annotations
    return parse_manifest(json.dumps(doc).encode(), OCI_INDEX)


AMD_P = {"os": "linux", "architecture": "amd64"}
ARM_P = {"os": "linux", "architecture": "arm64", "variant": "v8"}
S390_P = {"os": "linux", "architecture": "s390x"}
WANT = [parse_platform("amd64"), parse_platform("arm64")]


def test_full_copy_is_recognised_by_equal_digests() -> None:
    full = index([(AMD, AMD_P), (ARM, ARM_P)])
    assert is_unchanged(full.digest, WANT, {"1": full.digest, "latest": full.digest}, full)
    assert is_unchanged(full.digest, None, {"1": full.digest}, full)


def test_filtered_copy_is_recognised_by_its_annotation() -> None:
    filtered = index([(AMD, AMD_P), (ARM, ARM_P)], {SOURCE_DIGEST_ANNOTATION: SRC})
    assert is_unchanged(SRC, WANT, {"1": filtered.digest}, filtered)
    # the source moved on
    assert not is_unchanged(OTHER, WANT, {"1": filtered.digest}, filtered)
    # the user now wants another platform set
    assert not is_unchanged(SRC, [parse_platform("amd64")], {"1": filtered.digest}, filtered)
    assert not is_unchanged(SRC, [*WANT, parse_platform("s390x")], {"1": filtered.digest}, filtered)
    # asking for every platform means the source bytes, which a filtered index is not
    assert not is_unchanged(SRC, None, {"1": filtered.digest}, filtered)


def test_tags_must_all_hold_the_same_manifest() -> None:
    filtered = index([(AMD, AMD_P), (ARM, ARM_P)], {SOURCE_DIGEST_ANNOTATION: SRC})
    assert not is_unchanged(SRC, WANT, {"1": filtered.digest, "latest": None}, filtered)
    assert not is_unchanged(SRC, WANT, {"1": filtered.digest, "latest": OTHER}, filtered)
    assert not is_unchanged(SRC, WANT, {}, filtered)
    assert not is_unchanged(SRC, WANT, {"1": filtered.digest}, None)


def test_arch_tags_must_point_at_their_children() -> None:
    filtered = index([(AMD, AMD_P), (ARM, ARM_P)], {SOURCE_DIGEST_ANNOTATION: SRC})
    arch = {"1-amd64": (parse_platform("amd64"), AMD), "1-arm64": (parse_platform("arm64"), ARM)}
    assert is_unchanged(SRC, WANT, {"1": filtered.digest}, filtered, arch)
    stale = {**arch, "1-arm64": (parse_platform("arm64"), OTHER)}
    assert not is_unchanged(SRC, WANT, {"1": filtered.digest}, filtered, stale)
    missing = {**arch, "1-arm64": (parse_platform("arm64"), None)}
    assert not is_unchanged(SRC, WANT, {"1": filtered.digest}, filtered, missing)


def test_partial_publish_counts_as_unchanged_only_with_allow_partial() -> None:
    partial = index(
        [(AMD, AMD_P)], {SOURCE_DIGEST_ANNOTATION: SRC, ABSENT_PLATFORMS_ANNOTATION: "linux/s390x"}
    )
    want = [parse_platform("amd64"), parse_platform("s390x")]
    arch = {"1-amd64": (want[0], AMD), "1-s390x": (want[1], None)}
    assert not is_unchanged(SRC, want, {"1": partial.digest}, partial, arch)
    assert is_unchanged(SRC, want, {"1": partial.digest}, partial, arch, partial_ok=True)
    # but never a platform nobody asked for
    extra = index([(AMD, AMD_P), (S390, S390_P)], {SOURCE_DIGEST_ANNOTATION: SRC})
    assert not is_unchanged(SRC, [parse_platform("amd64")], {"1": extra.digest}, extra, partial_ok=True)


def test_partial_publish_missing_a_platform_the_source_lists_is_never_unchanged() -> None:
    """Issue 10.2: a platform lost to a failed copy (or an older partial publish) is copied again."""
    # published without arm64, and nothing records that the source lacked it: the source lists it
    lost = index([(AMD, AMD_P)], {SOURCE_DIGEST_ANNOTATION: SRC})
    assert not is_unchanged(SRC, WANT, {"1": lost.digest}, lost, partial_ok=True)
    # the annotation names another platform as absent, not arm64
    other = index([(AMD, AMD_P)], {SOURCE_DIGEST_ANNOTATION: SRC, ABSENT_PLATFORMS_ANNOTATION: "linux/s390x"})
    assert not is_unchanged(SRC, WANT, {"1": other.digest}, other, partial_ok=True)
    # arm64 recorded as absent (in its normalised name): up to date
    absent = index(
        [(AMD, AMD_P)], {SOURCE_DIGEST_ANNOTATION: SRC, ABSENT_PLATFORMS_ANNOTATION: "linux/arm64/v8"}
    )
    assert is_unchanged(SRC, WANT, {"1": absent.digest}, absent, partial_ok=True)
    # the source bytes themselves list exactly what the source lists
    full = index([(AMD, AMD_P)])
    assert is_unchanged(full.digest, WANT, {"1": full.digest}, full, partial_ok=True)


def test_filtered_index_built_with_absent_platforms_is_recognised() -> None:
    source = index([(AMD, AMD_P), (S390, S390_P)])
    want = [parse_platform("amd64"), parse_platform("arm64")]
    selection = select_platforms(source, want)
    data = build_filtered_index(source, selection)
    built = parse_manifest(data, OCI_INDEX)
    assert built.annotations[ABSENT_PLATFORMS_ANNOTATION] == "linux/arm64/v8"
    assert is_unchanged(source.digest, want, {"1": built.digest}, built, partial_ok=True)
    assert skipped_platforms(want, built) == [want[1]]


def test_attestation_modes_in_the_incremental_check() -> None:
    att = {
        "mediaType": OCI_MANIFEST,
        "digest": S390,
        "size": 500,
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": AMD,
        },
    }
    doc = json.loads(index([(AMD, AMD_P)]).data)
    doc["manifests"].append(att)
    with_att = parse_manifest(json.dumps(doc).encode(), OCI_INDEX)
    want = [parse_platform("amd64")]
    tags = {"1": with_att.digest}
    assert is_unchanged(with_att.digest, want, tags, with_att, attestations="keep")
    assert is_unchanged(with_att.digest, want, tags, with_att, attestations="auto")
    assert not is_unchanged(with_att.digest, want, tags, with_att, attestations="drop")
    # published without its attestations: the source digest annotation still decides, HEAD-only
    dropped = index(
        [(AMD, AMD_P)], {SOURCE_DIGEST_ANNOTATION: with_att.digest, DROPPED_ARTIFACTS_ANNOTATION: "1"}
    )
    tags = {"1": dropped.digest}
    assert is_unchanged(with_att.digest, want, tags, dropped, attestations="auto")
    assert is_unchanged(with_att.digest, want, tags, dropped, attestations="drop")
    assert not is_unchanged(with_att.digest, want, tags, dropped, attestations="keep")
    # every platform asked (copy without --arch): only dropped artifacts make it differ from the source
    assert is_unchanged(with_att.digest, None, tags, dropped)
    plain = index([(AMD, AMD_P)], {SOURCE_DIGEST_ANNOTATION: with_att.digest})
    assert not is_unchanged(with_att.digest, None, {"1": plain.digest}, plain)


def test_single_image_platform_is_checked_when_known() -> None:
    single = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": AMD, "size": 9},
                "layers": [],
            }
        ).encode(),
        OCI_MANIFEST,
    )
    amd, s390 = parse_platform("amd64"), parse_platform("s390x")
    tags = {"1": single.digest}
    assert is_unchanged(single.digest, [amd], tags, single, image_platform=Platform("linux", "amd64"))
    # architectures changed to one the image does not have
    assert not is_unchanged(single.digest, [s390], tags, single, image_platform=Platform("linux", "amd64"))
    # allow_partial: the tag of the platform it lacks was never written, and need not be
    arch = {"1-amd64": (amd, single.digest), "1-s390x": (s390, None)}
    both = [amd, s390]
    assert not is_unchanged(
        single.digest, both, tags, single, arch, image_platform=Platform("linux", "amd64")
    )
    assert is_unchanged(
        single.digest, both, tags, single, arch, partial_ok=True, image_platform=Platform("linux", "amd64")
    )


def test_platforms_match_ignores_attestation_unknowns() -> None:
    unknown = Platform("unknown", "unknown")
    assert platforms_match(WANT, [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), unknown])
    assert not platforms_match(WANT, [Platform("linux", "amd64")])


def test_plan_jobs_names_destinations_and_arch_tags() -> None:
    config = parse_config(
        json.dumps(
            [
                {
                    "source": "nginx",
                    "target": "nginx",
                    "tags": ["latest", "1.27"],
                    "architectures": ["amd64", "arm/v7"],
                    "arch_tags": True,
                },
            ]
        )
    )
    (job,) = plan_jobs(config, Target("registry.cn-hangzhou.aliyuncs.com", "team"))
    assert job.destination.name == "registry.cn-hangzhou.aliyuncs.com/team/nginx"
    assert job.tags == ("latest", "1.27")
    assert [t for t, _ in job.arch_tags] == ["latest-amd64", "latest-arm-v7", "1.27-amd64", "1.27-arm-v7"]


@pytest.mark.parametrize(
    ("registry", "namespace", "needle"),
    [("", "ns", "TARGET_REGISTRY"), ("r.example", "", "TARGET_NAMESPACE"), ("r.example", "Bad", "lowercase")],
)
def test_target_requires_registry_and_namespace(registry: str, namespace: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        Target(registry, namespace)


@given(st.text(max_size=200), st.sampled_from(["keep", "drop", "auto"]), st.booleans())
def test_any_annotation_text_from_the_destination_is_judged_without_error(
    text: str, mode: AttestationMode, partial: bool
) -> None:
    """The destination's annotations are server text: whatever they hold, the check answers yes or no."""
    doc = index([(AMD, AMD_P)], {SOURCE_DIGEST_ANNOTATION: SRC, ABSENT_PLATFORMS_ANNOTATION: text})
    doc2 = index([(AMD, AMD_P)], {SOURCE_DIGEST_ANNOTATION: SRC, DROPPED_ARTIFACTS_ANNOTATION: text})
    for held in (doc, doc2):
        result = is_unchanged(SRC, WANT, {"1": held.digest}, held, partial_ok=partial, attestations=mode)
        assert isinstance(result, bool)
    assert isinstance(absent_from_source(doc, SRC), set)
