"""Tag rules (pure): choosing tags from a list, validating rule objects, and reading tag-list pages."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_transfer.config import derive_target, parse_config
from docker_transfer.errors import ConfigError
from docker_transfer.reference import parse_reference
from docker_transfer.registry.tags import TagListError, next_link, parse_tag_page
from docker_transfer.tagrules import Exclusion, TagRule, expand, parse_version, rule_problem

TAGS = [
    "latest", "stable", "alpine", "1.24.0", "1.25", "1.25.0", "1.25.3", "v1.26.1", "1.26.2-alpine",
    "1.27.0-rc1", "1.27.0", "1.27.1", "1.28.0-beta.2", "2.0.0", "mainline", "1.27.1-alpine",
]  # fmt: skip


def rule(**fields: Any) -> TagRule:
    found, problems = rule_problem(fields)
    assert found is not None, problems
    return found


def test_regex_is_a_full_match() -> None:
    assert rule(regex=r"1\.27\.[0-9]+").select(TAGS) == ["1.27.0", "1.27.1"]
    assert rule(regex="alpine").select(TAGS) == ["alpine"]  # not "1.26.2-alpine": full match


def test_semver_range_reads_a_leading_v_and_leaves_prereleases_out() -> None:
    assert rule(semver=">=1.25, <1.27").select(TAGS) == ["1.25", "1.25.0", "1.25.3", "v1.26.1"]
    # a range that names a pre-release lets pre-releases through, as pip does
    assert "1.27.0-rc1" in rule(semver=">=1.27.0rc1, <1.28").select(TAGS)


def test_latest_takes_the_highest_releases_highest_first() -> None:
    assert rule(latest=3).select(TAGS) == ["2.0.0", "1.27.1", "1.27.0"]
    assert rule(latest=2, regex=r"1\..*").select(TAGS) == ["1.27.1", "1.27.0"]
    assert rule(latest=2, semver="<1.27").select(TAGS) == ["v1.26.1", "1.25.3"]


def test_what_counts_as_a_version() -> None:
    assert parse_version("v1.2.3") is not None and parse_version("1.2") is not None
    assert parse_version("1.2.3-rc1") is not None and parse_version("1.2.3-alpha.2") is not None
    for not_one in ("1.2.3-alpine", "latest", "1.2.3.4", "sha-abc", "20240101-1", ""):
        assert parse_version(not_one) is None, not_one


def test_expand_applies_exclusions_and_names_the_first_rule() -> None:
    latest, ranged = rule(latest=2), rule(semver=">=1.27")
    chosen = expand([latest, ranged], [Exclusion(tag="2.0.0"), Exclusion(regex=r".*\.0")], TAGS)
    # exclusions apply before "latest" counts: 2.0.0 and 1.27.0 are out, so the two latest are
    # 1.27.1 and v1.26.1; 1.27.1 is credited to the first rule that chose it
    assert chosen == {"1.27.1": latest, "v1.26.1": latest}


def test_rule_text_is_stable_json() -> None:
    assert rule(latest=5, regex="^v.*").text == '{"regex": "^v.*", "latest": 5}'


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"regex": "(("}, "not a valid regular expression"),
        ({"regex": ""}, "non-empty string"),
        ({"semver": "abc"}, "not a version range"),
        ({"semver": 3}, "must be a range"),
        ({"latest": 0}, "whole number from 1"),
        ({"latest": True}, "whole number from 1"),
        ({"latest": 10**6}, "whole number from 1"),
        ({"lates": 3}, 'unknown rule key "lates"'),
        ({}, 'a rule needs "regex", "semver" or "latest"'),
    ],
)
def test_bad_rules_say_why(fields: dict[str, Any], fragment: str) -> None:
    found, problems = rule_problem(fields)
    assert found is None and any(fragment in p for p in problems), problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["regex", "semver", "latest", "x"]), json_values, max_size=3))
def test_any_rule_object_is_accepted_or_refused_with_words(fields: dict[str, Any]) -> None:
    found, problems = rule_problem(fields)
    assert (found is None) == bool(problems)
    assert all(isinstance(p, str) and p for p in problems)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.from_regex(r"v?[0-9]{1,3}(\.[0-9]{1,3}){0,3}(-[a-z0-9.]{1,6})?|[a-z]{1,8}", fullmatch=True)),
    st.integers(1, 5),
)
def test_latest_never_returns_more_than_asked_nor_a_prerelease(tags: list[str], count: int) -> None:
    picked = rule(latest=count).select(tags)
    assert len(picked) <= count
    versions = [parse_version(t) for t in picked]
    assert all(v is not None and not v.is_prerelease for v in versions)
    assert versions == sorted(versions, reverse=True)  # type: ignore[type-var]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_images_json_text_is_parsed_or_refused_as_a_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, max_size=3))
def test_any_json_tags_list_is_parsed_or_refused_as_a_config_error(tags: list[Any]) -> None:
    doc = [{"source": "nginx", "tags": tags, "architectures": ["amd64"], "exclude": tags}]
    with contextlib.suppress(ConfigError):
        parse_config(json.dumps(doc))


# --- derived targets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "flatten", "target"),
    [
        ("vllm/vllm-openai:v0.11.0", None, "vllm-openai"),
        ("nginx", None, "nginx"),
        ("nginx", "_", "nginx"),  # Docker Hub's library/ is left out
        ("bitnami/redis", "_", "bitnami_redis"),
        ("ghcr.io/open-webui/open-webui:main", "-", "open-webui-open-webui"),
        ("quay.io/a/b/c", "__", "a__b__c"),
    ],
)
def test_derive_target(source: str, flatten: str | None, target: str) -> None:
    assert derive_target(parse_reference(source), flatten) == target


def test_derived_targets_that_collide_are_reported_by_validate() -> None:
    doc = [
        {"source": "bitnami/redis:7", "tags": ["7"], "architectures": ["amd64"]},
        {"source": "ghcr.io/other/redis:7", "tags": ["7"], "architectures": ["amd64"]},
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(doc))
    assert 'both write target "redis" tag "7"' in str(info.value)
    assert len(parse_config(json.dumps(doc), flatten="_").entries) == 2  # bitnami_redis, other_redis


def test_a_flatten_separator_that_makes_a_bad_name_says_to_give_a_target() -> None:
    doc = [{"source": "bitnami/redis:7", "tags": ["7"], "architectures": ["amd64"]}]
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(doc), flatten="!")
    assert 'cannot derive "target" from the source' in str(info.value)


# --- tag-list pages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "target"),
    [
        ('</v2/x/tags/list?last=b&n=2>; rel="next"', "/v2/x/tags/list?last=b&n=2"),
        ("</a>; rel=next", "/a"),
        ('<https://r.example/a>; title="x"; rel="prev next"', "https://r.example/a"),
        ('</p>; rel="prev", </n>; rel="next"', "/n"),
        ('</p>; rel="prev"', None),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_next_link(header: str | None, target: str | None) -> None:
    assert next_link(header) == target


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_next_link_never_raises(header: str) -> None:
    found = next_link(header)
    assert found is None or isinstance(found, str)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_tag_page_is_a_list_of_tags_or_a_tag_list_error(data: bytes) -> None:
    try:
        tags = parse_tag_page(data, "tags of x")
    except TagListError as exc:
        assert str(exc).startswith("tags of x: ")
    else:
        assert all(isinstance(t, str) for t in tags)
