"""Tests for docker_transfer.config (images.json parsing and validation)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from docker_transfer.config import KNOWN_FIELDS, Config, ImageEntry, load_config, parse_config
from docker_transfer.errors import EXIT_USAGE, ConfigError, UsageError
from docker_transfer.platform import Platform

# The four examples of the original README, in its own layout (4-space indent).
SEED = """[
    {
        "source": "nginx:latest",
        "target": "nginx",
        "tags": ["latest"],
        "architectures": ["amd64", "arm64"]
    },
    {
        "source": "ubuntu:22.04",
        "target": "ubuntu",
        "tags": ["22.04", "jammy", "latest"],
        "architectures": ["amd64", "arm64"]
    },
    {
        "source": "vllm/vllm-openai:v0.11.0",
        "target": "vllm-openai",
        "tags": ["v0.11.0", "latest"],
        "architectures": ["amd64", "arm64"]
    },
    {
        "source": "ghcr.io/open-webui/open-webui:main",
        "target": "open-webui",
        "tags": ["main", "latest"],
        "architectures": ["amd64", "arm64"]
    }
]
"""

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


DROP = object()


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": "nginx:latest",
        "target": "nginx",
        "tags": ["latest"],
        "architectures": ["amd64"],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


def dump(*entries: dict[str, Any]) -> str:
    """One field per line, like a hand-written file: a 4-field entry i spans lines 2+6i to 7+6i."""
    blocks = [
        "  {\n" + ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in e.items()) + "\n  }"
        for e in entries
    ]
    return "[\n" + ",\n".join(blocks) + "\n]\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def only_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --- valid files ------------------------------------------------------------------


def test_seed_examples_parse() -> None:
    config = parse_config(SEED, "images.json")
    assert config.path == "images.json"
    assert [e.target for e in config.entries] == ["nginx", "ubuntu", "vllm-openai", "open-webui"]
    assert [str(e.source) for e in config.entries] == [
        "docker.io/library/nginx:latest",
        "docker.io/library/ubuntu:22.04",
        "docker.io/vllm/vllm-openai:v0.11.0",
        "ghcr.io/open-webui/open-webui:main",
    ]
    assert [e.source_text for e in config.entries][2] == "vllm/vllm-openai:v0.11.0"
    ubuntu = config.entries[1]
    assert ubuntu.tags == ("22.04", "jammy", "latest")
    assert ubuntu.platforms == (AMD64, ARM64)
    assert ubuntu.architectures == ("amd64", "arm64")
    assert ubuntu.arch_tags is False and ubuntu.allow_partial is False
    assert ubuntu.destination_tags() == ("22.04", "jammy", "latest")
    assert [e.index for e in config.entries] == [0, 1, 2, 3]
    assert [e.line for e in config.entries] == [2, 8, 14, 20]


def test_optional_fields_and_slash_target() -> None:
    text = dump(entry(target="tools/nginx", arch_tags=True, allow_partial=True))
    (only,) = parse_config(text).entries
    assert only.target == "tools/nginx"
    assert only.arch_tags is True and only.allow_partial is True


def test_empty_array_is_a_config_without_entries() -> None:
    assert parse_config("[]").entries == ()


def test_utf8_bom_is_tolerated() -> None:
    config = parse_config("\ufeff" + SEED)
    assert len(config.entries) == 4
    assert config.entries[0].line == 2


def test_tags_and_platforms_deduplicated_in_order() -> None:
    text = dump(
        entry(tags=["b", "a", "b"], architectures=["arm64", "amd64", "linux/amd64", "x86_64", "arm64/v8"])
    )
    (only,) = parse_config(text).entries
    assert only.tags == ("b", "a")
    assert only.platforms == (ARM64, AMD64)
    assert only.architectures == ("arm64", "amd64", "linux/amd64", "x86_64", "arm64/v8")


def test_destination_tags_with_arch_tags() -> None:
    text = dump(entry(tags=["latest", "1.0"], architectures=["amd64", "arm64", "arm/v7"], arch_tags=True))
    (only,) = parse_config(text).entries
    assert only.destination_tags() == (
        "latest",
        "1.0",
        "latest-amd64",
        "latest-arm64",
        "latest-arm-v7",
        "1.0-amd64",
        "1.0-arm64",
        "1.0-arm-v7",
    )


def test_destination_tags_without_arch_tags_are_the_tags() -> None:
    (only,) = parse_config(dump(entry(tags=["x", "y"], architectures=["amd64", "arm64"]))).entries
    assert only.destination_tags() == ("x", "y")


def test_entries_are_frozen() -> None:
    (only,) = parse_config(dump(entry())).entries
    with pytest.raises(dataclasses.FrozenInstanceError):
        only.target = "other"  # type: ignore[misc]


# --- JSON-level problems ----------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t\n"])
def test_empty_file(text: str) -> None:
    assert only_problem(text) == "file is empty; expected a JSON array of images"


def test_trailing_comma_in_array() -> None:
    text = '[\n    {"source": "a", "target": "a", "tags": ["x"], "architectures": ["amd64"]},\n]\n'
    message = only_problem(text)
    assert message.startswith('line 2, column 78: trailing comma before "]"')
    assert "JSON does not allow a comma after the last element" in message


def test_trailing_comma_in_object() -> None:
    text = '[\n  {\n    "source": "a",\n    "target": "a",\n  }\n]'
    assert only_problem(text).startswith('line 4, column 18: trailing comma before "}"')


def test_single_quotes_hint() -> None:
    message = only_problem("[{'source': 'nginx'}]")
    assert message.startswith("line 1, column 3: invalid JSON:")
    assert "double quotes" in message and "not single quotes" in message


def test_missing_comma_hint() -> None:
    message = only_problem('[\n{"a": 1}\n{"b": 2}\n]')
    assert message.startswith("line 3, column 1: invalid JSON: Expecting ',' delimiter")
    assert "comma is probably missing" in message


def test_comment_hint() -> None:
    assert "JSON does not allow comments" in only_problem("// images\n[]")


def test_objects_without_array_hint() -> None:
    assert "wrapped in one array" in only_problem('{"a": 1},\n{"b": 2}')


def test_text_after_array() -> None:
    assert "more text after the end of the array" in only_problem("[] x")


@pytest.mark.parametrize(
    ("text", "kind"),
    [('{"source": "nginx"}', "object"), ('"nginx"', "string"), ("3", "number"), ("null", "null")],
)
def test_top_level_not_an_array(text: str, kind: str) -> None:
    assert only_problem(text).startswith(f"expected a JSON array of images at the top level, got {kind}")


def test_top_level_object_suggests_wrapping() -> None:
    assert only_problem('{"source": "nginx"}').endswith("wrap the entries in [ and ]")


def test_deep_nesting_is_a_config_error() -> None:
    assert "nested too deeply" in only_problem("[" * 100_000 + "]" * 100_000)


# --- entry-level problems -----------------------------------------------------------


def test_entry_not_an_object() -> None:
    assert only_problem('[\n  "nginx:latest"\n]') == (
        'images[0]: expected an object with "source", "target", "tags" and "architectures", '
        "got string (line 2)"
    )


def test_missing_tags() -> None:
    assert (
        only_problem(dump(entry(), entry(tags=DROP))) == 'images[1]: missing required field "tags" (line 8)'
    )


def test_every_missing_field_reported() -> None:
    assert problems("[{}]") == [
        f'images[0]: missing required field "{name}" (line 1)'
        for name in ("source", "tags", "architectures")  # "target" may be left out: it is derived
    ]


def test_architectures_is_required() -> None:
    assert only_problem(dump(entry(architectures=DROP))).startswith(
        'images[0]: missing required field "architectures"'
    )


def test_tags_not_a_list() -> None:
    assert only_problem(dump(entry(tags="latest"))) == (
        'images[0].tags: expected a list of strings, got string; write e.g. ["latest"] (line 5)'
    )


def test_architectures_not_a_list() -> None:
    assert only_problem(dump(entry(architectures={"amd64": True}))).startswith(
        "images[0].architectures: expected a list of strings, got object"
    )


def test_empty_lists() -> None:
    assert problems(dump(entry(tags=[], architectures=[]))) == [
        'images[0].tags: the list is empty; give at least one tag, e.g. ["latest"] (line 5)',
        "images[0].architectures: the list is empty; give at least one architecture, "
        'e.g. ["amd64", "arm64"] (line 6)',
    ]


def test_non_string_items() -> None:
    assert problems(dump(entry(tags=["latest", 1], architectures=[None]))) == [
        "images[0].tags[1]: expected a string, got number (line 5)",
        "images[0].architectures[0]: expected a string, got null (line 6)",
    ]


def test_bad_tag() -> None:
    assert only_problem(dump(entry(tags=["latest", "bad tag!"]))) == (
        'images[0].tags[1]: invalid tag "bad tag!": must match [A-Za-z0-9_][A-Za-z0-9._-]* '
        "(no leading '.' or '-') (line 5)"
    )


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("", "the tag is empty"),
        ("nginx:latest", 'give only the tag (the part after ":")'),
        ("-x", "no leading '.' or '-'"),
        ("a" * 129, "the limit is 128"),
    ],
)
def test_other_bad_tags(tag: str, expected: str) -> None:
    message = only_problem(dump(entry(tags=[tag])))
    assert message.startswith("images[0].tags[0]: ")
    assert expected in message


def test_unknown_architecture_x86() -> None:
    message = only_problem(dump(entry(architectures=["amd64", "x86"])))
    assert message.startswith('images[0].architectures[1]: "x86" is not a known architecture: ')
    assert "did you mean amd64 (64-bit) or 386 (32-bit)?" in message
    assert message.endswith("(line 6)")


def test_bad_source() -> None:
    assert only_problem(dump(entry(source="ngin x:latest"))) == (
        'images[0].source: invalid image reference "ngin x:latest": '
        "the reference contains whitespace (line 3)"
    )


def test_source_not_a_string() -> None:
    assert only_problem(dump(entry(source=["nginx"]))) == (
        'images[0].source: expected a string such as "nginx:latest", got array (line 3)'
    )


def test_target_with_tag() -> None:
    assert only_problem(dump(entry(target="nginx:1.0"))) == (
        'images[0].target: target "nginx:1.0" must not carry a tag; put tags in "tags" (line 4)'
    )


def test_target_with_digest() -> None:
    message = only_problem(dump(entry(target="nginx@sha256:" + "a" * 64)))
    assert "must not carry a digest" in message


@pytest.mark.parametrize(
    "target", ["registry.cn-hangzhou.aliyuncs.com/ns/nginx", "localhost/nginx", "host:5000/nginx"]
)
def test_target_with_registry(target: str) -> None:
    message = only_problem(dump(entry(target=target)))
    assert message.startswith(
        f'images[0].target: target "{target}" is a repository name, not a registry address'
    )


@pytest.mark.parametrize(
    ("target", "reason"), [("Nginx", "uppercase"), ("a//b", "empty path component"), ("", "empty")]
)
def test_target_grammar(target: str, reason: str) -> None:
    message = only_problem(dump(entry(target=target)))
    assert message.startswith("images[0].target: ")
    assert reason in message


def test_unknown_field_suggests_close_name() -> None:
    text = dump(entry(tags=DROP, tag=["latest"]))
    assert problems(text) == [
        'images[0]: unknown field "tag" (did you mean "tags"?) (line 6)',
        'images[0]: missing required field "tags" (line 2)',
    ]


def test_unknown_field_platforms_suggests_architectures() -> None:
    message = only_problem(dump(entry(platforms=["amd64"])))
    assert message == 'images[0]: unknown field "platforms" (did you mean "architectures"?) (line 7)'


def test_unknown_field_without_close_match_lists_known() -> None:
    message = only_problem(dump(entry(comment="hi")))
    assert message.startswith('images[0]: unknown field "comment"; known fields: ')
    assert all(name in message for name in KNOWN_FIELDS)


def test_field_given_twice() -> None:
    text = (
        '[{"source": "nginx", "target": "nginx",\n "tags": ["a"], "tags": ["b"], "architectures": ["amd64"]}]'
    )
    assert only_problem(text) == 'images[0]: field "tags" is given more than once (line 2)'


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [("arch_tags", "true", 'string "true"'), ("allow_partial", 1, "number 1"), ("arch_tags", None, "null")],
)
def test_bools_must_be_json_booleans(name: str, value: Any, shown: str) -> None:
    assert only_problem(dump(entry(**{name: value}))) == (
        f"images[0].{name}: expected true or false, got {shown} (line 7)"
    )


def test_arch_tag_overwriting_a_listed_tag() -> None:
    text = dump(entry(tags=["latest", "latest-amd64"], arch_tags=True))
    assert (
        only_problem(text)
        == 'images[0].tags[1]: tag "latest-amd64" is also made by arch_tags from "latest" (line 5)'
    )


def test_arch_tag_too_long() -> None:
    message = only_problem(dump(entry(tags=["a" * 128], arch_tags=True)))
    assert message.startswith('images[0].tags: arch_tags would make the tag "')


# --- across entries ---------------------------------------------------------------------


def test_two_sources_same_destination_tag() -> None:
    text = dump(
        entry(source="nginx:1.25", tags=["1.25", "latest"]),
        entry(source="ubuntu", target="ubuntu"),
        entry(source="nginx:1.27", tags=["latest", "1.25"]),
    )
    assert only_problem(text) == (
        'images[2] and images[0] both write target "nginx" tags "latest", "1.25" (lines 14 and 2)'
    )


def test_same_entry_twice_is_a_duplicate() -> None:
    text = dump(entry(source="nginx:latest"), entry(source="docker.io/library/nginx:latest"))
    assert only_problem(text) == (
        'images[1]: duplicate of images[0]: same source "docker.io/library/nginx:latest", '
        'target "nginx" tag "latest" (lines 8 and 2)'
    )


def test_arch_tag_clashes_with_other_entry() -> None:
    text = dump(entry(arch_tags=True), entry(source="nginx:1.25", tags=["latest-amd64"]))
    assert only_problem(text).startswith(
        'images[1] and images[0] both write target "nginx" tag "latest-amd64"'
    )


def test_same_tag_different_targets_is_fine() -> None:
    config = parse_config(dump(entry(), entry(target="nginx-copy")))
    assert len(config.entries) == 2


def test_clash_found_even_when_entry_has_other_problems() -> None:
    found = problems(dump(entry(), entry(source="nginx:1.25", architectures=["x86"])))
    assert len(found) == 2
    assert found[1].startswith("images[1] and images[0] both write")


# --- all at once, and line numbers ---------------------------------------------------------


def test_all_problems_reported_at_once() -> None:
    text = dump(entry(tags="latest"), entry(target="x:1"), entry(architectures=["x86"], target="y"))
    found = problems(text)
    assert len(found) == 3
    assert found[0].startswith("images[0].tags: expected a list of strings, got string")
    assert found[1].startswith('images[1].target: target "x:1" must not carry a tag')
    assert found[2].startswith('images[2].architectures[0]: "x86" is not a known architecture')


def test_config_error_message_and_type() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[{}]", "conf/images.json")
    error = info.value
    assert isinstance(error, UsageError)
    assert error.exit_code == EXIT_USAGE
    assert error.path == "conf/images.json"
    assert str(error).startswith("conf/images.json: 3 problem(s):\n  - images[0]: missing")


def test_line_numbers_with_irregular_layout() -> None:
    text = (
        "\n\n[\n"  # array opens on line 3
        '  {"source": "a", "target": "a", "tags": ["x"], "architectures": ["amd64"]},\n'  # 4
        "\n"
        "  {\n"  # 6
        '    "source": "b",\n'
        '    "target": "b",\n'
        '    "tags": [\n'  # 9
        '      "ok",\n'
        '      "bad tag!"\n'  # 11
        "    ],\n"
        '    "architectures": ["amd64"]\n'
        "  }, {\n"  # 14
        '    "source": "c", "target": "c", "tags": ["x"], "architectures": ["amd64"], "extra": 1}\n'  # 15
        "]\n"
    )
    assert problems(text) == [
        'images[1].tags[1]: invalid tag "bad tag!": must match [A-Za-z0-9_][A-Za-z0-9._-]* '
        "(no leading '.' or '-') (line 11)",
        'images[2]: unknown field "extra"; known fields: source, target, tags, architectures, '
        "arch_tags, allow_partial, attestations, exclude (line 15)",
    ]
    fixed = text.replace("bad tag!", "good").replace(', "extra": 1', "")
    assert [e.line for e in parse_config(fixed).entries] == [4, 6, 14]


def test_line_numbers_with_strings_containing_brackets() -> None:
    text = '[{"source": "a", "target": "a", "tags": ["x"], "architectures": ["amd64"], "n": "[{,\\"]}"},\n{}]'
    found = problems(text)
    assert found[0] == 'images[0]: unknown field "n"; known fields: ' + ", ".join(KNOWN_FIELDS) + " (line 1)"
    assert found[1] == 'images[1]: missing required field "source" (line 2)'


# --- filter ----------------------------------------------------------------------------------


def test_filter_by_target_source_and_normalised_source() -> None:
    config = parse_config(SEED)

    def targets(*globs: str) -> list[str]:
        return [e.target for e in config.filter(globs).entries]

    assert targets() == ["nginx", "ubuntu", "vllm-openai", "open-webui"]
    assert targets("nginx") == ["nginx"]
    assert targets("*open*") == ["vllm-openai", "open-webui"]
    assert targets("ghcr.io/*") == ["open-webui"]
    assert targets("docker.io/library/*") == ["nginx", "ubuntu"]
    assert targets("ubuntu:22.04", "nothing") == ["ubuntu"]
    assert targets("NGINX") == []
    assert config.filter(["open-webui"]).entries[0].index == 3
    assert isinstance(config.filter(["x"]), Config)


# --- load_config ----------------------------------------------------------------------------


def test_load_config_reads_file(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_text(SEED, encoding="utf-8")
    config = load_config(path)
    assert config.path == str(path)
    assert all(isinstance(e, ImageEntry) for e in config.entries)


def test_load_config_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_text("[{}]", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}: 3 problem(s)")


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.json")
    assert info.value.problems == ["file not found"]


def test_load_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems == ["is a directory, not a file"]


def test_load_config_utf16(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_text(SEED, encoding="utf-16")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["the file is UTF-16 encoded; save it as UTF-8"]


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_bytes(b'[\n{"source": "caf\xe9"}]')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["line 2: not valid UTF-8 (byte 0xe9); save the file as UTF-8"]


def test_load_config_bom(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_text(SEED, encoding="utf-8-sig")
    assert len(load_config(path).entries) == 4


# --- docs/configuration.md stays true ----------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_doc_json_examples_parse() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 6
    for block in blocks:
        text = block if block.lstrip().startswith("[") else f"[{block}]"
        assert parse_config(text).entries


def test_doc_seed_examples_match_code() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for source in (
        "nginx:latest",
        "ubuntu:22.04",
        "vllm/vllm-openai:v0.11.0",
        "ghcr.io/open-webui/open-webui:main",
    ):
        assert f'"source": "{source}"' in doc


def test_doc_error_table_messages_are_real() -> None:
    """A sample of the messages quoted in the doc, produced by the code word for word."""
    doc = DOC.read_text(encoding="utf-8")
    produced = [
        only_problem(""),
        only_problem('{"source": "nginx:latest"}'),
        only_problem(dump(entry(tags=DROP))),
        only_problem(dump(entry(tags="latest"))),
        only_problem(dump(entry(tags=["bad tag!"]))),
        only_problem(dump(entry(target="nginx:1.0"))),
        only_problem(dump(entry(arch_tags="yes"))),
        only_problem(dump(entry(), entry(source="nginx:1.27"))),
        only_problem(dump(entry(), entry(source="docker.io/library/nginx:latest"))),
    ]
    for message in produced:
        assert f"`{message}`" in doc, message


# --- what an input method types, and other near misses --------------------------------------


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ("\uff0c", "full-width comma"),
        ("\u3001", "ideographic comma"),
        ("\uff1a", "full-width colon"),
    ],
)
def test_ime_punctuation_is_named_with_its_line(bad: str, name: str) -> None:
    good = dump(entry())
    if name.endswith("colon"):
        text = good.replace('"target": ', f'"target"{bad} ', 1)
    else:
        text = good.replace('"nginx",\n    "tags"', f'"nginx"{bad}\n    "tags"', 1)
    problem = only_problem(text)
    assert name in problem and repr(bad) in problem, problem
    assert "line 4" in problem or "line 5" in problem, problem
    assert "input method" in problem


def test_curly_quotes_are_named() -> None:
    text = dump(entry()).replace('"source"', "\u201csource\u201d", 1)
    problem = only_problem(text)
    assert "curly quote" in problem and "\u201c" in problem and "line 3" in problem, problem


def test_curly_quotes_inside_a_string_are_not_blamed() -> None:
    # A real syntax error elsewhere: the curly quote inside a valid string is not the cause.
    text = '[\n {"source": "nginx \u201cx\u201d" "target": "n"}\n]'
    problem = only_problem(text)
    assert "curly" not in problem and "comma is probably missing" in problem, problem


def test_uppercase_architecture_suggests_lowercase() -> None:
    problem = only_problem(dump(entry(architectures=["AMD64"])))
    assert "did you mean amd64?" in problem, problem


def test_comma_joined_platforms_say_to_list_them_separately() -> None:
    problem = only_problem(dump(entry(architectures=["linux/amd64,linux/arm64"])))
    assert 'list them separately, e.g. ["linux/amd64", "linux/arm64"]' in problem, problem


@pytest.mark.parametrize(
    ("tag", "where"), [("latest ", "trailing"), (" latest", "leading"), (" latest\t", "leading and trailing")]
)
def test_tag_with_stray_whitespace_says_so(tag: str, where: str) -> None:
    problem = only_problem(dump(entry(tags=[tag])))
    assert f"{where} whitespace" in problem and 'did you mean "latest"?' in problem, problem
