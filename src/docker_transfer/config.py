"""images.json: the list of images to mirror, parsed and validated.

The format is the one the original project's users already have (a JSON array of
``{"source", "target", "tags", "architectures"}`` objects) plus the optional
booleans ``arch_tags`` and ``allow_partial``, ``attestations``, tag rules in
``tags`` with ``exclude`` (see :mod:`docker_transfer.tagrules`), and ``target``
derived from the source when it is left out. Every problem in the file is
collected and raised at once as :class:`ConfigError`, before any registry is
contacted. docs/configuration.md is the user's reference; keep it in step.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, get_args

from docker_transfer.errors import ConfigError, InvalidPlatformError, InvalidReferenceError
from docker_transfer.jsontext import (
    JsonPath,
    locate_values,
    nearest_line,
    object_from_pairs,
    parse_int,
    syntax_problem,
)
from docker_transfer.platform import Platform, parse_platform
from docker_transfer.reference import (
    DOCKER_HUB,
    Reference,
    parse_reference,
    validate_repository,
    validate_tag,
)
from docker_transfer.tagrules import Exclusion, TagRule, check_exclude, check_tags

REQUIRED_FIELDS: tuple[str, ...] = ("source", "tags", "architectures")
"""Fields every entry must have (``target`` is derived from the source when left out)."""

OPTIONAL_FIELDS: tuple[str, ...] = ("target", "arch_tags", "allow_partial", "attestations", "exclude")
"""Fields with a default: the derived target, false, false, the run's --attestations, nothing excluded."""

KNOWN_FIELDS: tuple[str, ...] = (
    "source", "target", "tags", "architectures", "arch_tags", "allow_partial", "attestations", "exclude"
)  # fmt: skip

AttestationMode = Literal["keep", "drop", "auto"]
"""What to do with attestation and artifact entries of an index (see docs/configuration.md)."""
ATTESTATION_MODES: tuple[AttestationMode, ...] = get_args(AttestationMode)

# Names people plausibly write instead of ours that difflib would not connect.
# fmt: off
_FIELD_HINTS = {
    "platform": "architectures", "platforms": "architectures", "arch": "architectures",
    "archs": "architectures", "image": "source", "src": "source", "from": "source",
    "dest": "target", "destination": "target", "to": "target", "name": "target",
}
# fmt: on
_READ_ERRORS: dict[type[OSError], str] = {
    FileNotFoundError: "file not found",
    IsADirectoryError: "is a directory, not a file",
    PermissionError: "permission denied: cannot read the file",
}
_KINDS: dict[type, str] = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string"}
_EXAMPLES = {
    "source": '"nginx:latest"',
    "target": '"nginx"',
    "tags": '["latest"]',
    "architectures": '["amd64", "arm64"]',
}
_Path = JsonPath
_Add = Callable[..., None]


@dataclass(frozen=True)
class ImageEntry:
    """One validated element of the images.json array."""

    index: int
    line: int | None
    source: Reference
    source_text: str
    target: str
    tags: tuple[str, ...]
    platforms: tuple[Platform, ...]
    architectures: tuple[str, ...]
    arch_tags: bool = False
    allow_partial: bool = False
    attestations: AttestationMode | None = None
    """None: the run's ``--attestations`` decides."""
    rules: tuple[TagRule, ...] = ()
    """Tag rules, expanded from the source's tag list at run time (engine/tagrules.py)."""
    exclude: tuple[Exclusion, ...] = ()
    rule: str | None = None
    """For an entry made by expanding rules: the rule that chose its tag (as written)."""

    def destination_tags(self) -> tuple[str, ...]:
        """Every tag written under ``target``: ``tags``, then ``<tag>-<arch>`` ones if ``arch_tags``."""
        return _destination_tags(self.tags, self.platforms, self.arch_tags)


@dataclass(frozen=True)
class Config:
    """A parsed images.json: its path (for messages) and its entries in file order."""

    path: str
    entries: tuple[ImageEntry, ...] = ()

    def filter(self, globs: Sequence[str]) -> Config:
        """Keep entries whose target, source as written or normalised source matches a glob.

        Matching is :func:`fnmatch.fnmatchcase`. No globs keeps every entry. Entries
        keep their ``index`` so messages still point at the right place in the file.
        """
        if not globs:
            return self
        kept = tuple(
            entry
            for entry in self.entries
            if any(
                fnmatchcase(candidate, glob)
                for glob in globs
                for candidate in (entry.target, entry.source_text, str(entry.source))
            )
        )
        return replace(self, entries=kept)


def load_config(path: str | os.PathLike[str], *, flatten: str | None = None) -> Config:
    """Read and validate the images.json at ``path``; see :func:`parse_config`.

    A missing, unreadable or non-UTF-8 file raises :class:`ConfigError` too.
    """
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        reason = _READ_ERRORS.get(type(exc), f"cannot read the file: {exc.strerror or exc}")
        raise ConfigError(name, [reason]) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(name, ["the file is UTF-16 encoded; save it as UTF-8"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            name, [f"line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"]
        ) from None
    return parse_config(text, name, flatten=flatten)


def parse_config(text: str, path: str = "images.json", *, flatten: str | None = None) -> Config:
    """Parse images.json ``text``; raise :class:`ConfigError` listing every problem found.

    Only one JSON syntax error can be reported (the parser stops at it); once the
    JSON parses, every entry and every field is checked. ``flatten`` is the
    separator that derived targets use for the source's whole path
    (:func:`derive_target`).
    """
    text = text.removeprefix("\ufeff")  # editors on Windows add a BOM; json.loads rejects it
    if not text.strip():
        raise ConfigError(path, ["file is empty; expected a JSON array of images"])
    try:
        data = json.loads(text, object_pairs_hook=object_from_pairs, parse_int=parse_int)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, [syntax_problem(text, exc)]) from None
    except RecursionError:
        raise ConfigError(path, ["the JSON is nested too deeply"]) from None
    if not isinstance(data, list):
        hint = "; wrap the entries in [ and ]" if isinstance(data, dict) else ""
        raise ConfigError(
            path, [f"expected a JSON array of images at the top level, got {_kind(data)}{hint}"]
        )

    lines = locate_values(text)
    problems: list[str] = []

    def add(where: _Path, message: str, at: _Path | None = None) -> None:
        line = nearest_line(lines, where if at is None else at)
        problems.append(f"{_render_path(where)}: {message}" + (f" (line {line})" if line else ""))

    drafts = [_check_entry(index, raw, lines.get((index,)), add, flatten) for index, raw in enumerate(data)]
    _check_clashes(drafts, problems)
    if problems:
        raise ConfigError(path, problems)
    return Config(path, tuple(d.entry for d in drafts if d.entry is not None))


# --- one entry --------------------------------------------------------------


@dataclass
class _Draft:
    """What is known about an entry, even a broken one, for the cross-entry checks."""

    index: int
    line: int | None
    source_key: str | None = None
    target: str | None = None
    destination_tags: tuple[str, ...] = ()
    entry: ImageEntry | None = None


def _check_entry(index: int, raw: Any, line: int | None, add: _Add, flatten: str | None = None) -> _Draft:
    here: _Path = (index,)
    if not isinstance(raw, dict):
        add(here, f'expected an object with "source", "target", "tags" and "architectures", got {_kind(raw)}')
        return _Draft(index, line)
    for name in getattr(raw, "duplicates", ()):
        add(here, f"field {_q(name)} is given more than once", (index, name))
    for name in raw:
        if name not in KNOWN_FIELDS:
            add(here, f"unknown field {_q(name)}{_suggest(name)}", (index, name))
    for name in REQUIRED_FIELDS:
        if name not in raw:
            add(here, f"missing required field {_q(name)}")

    source_text = _check_string(raw, "source", here, add, _source_problem)
    target = _check_string(raw, "target", here, add, _target_problem)
    checked = check_tags(raw, here, add, _tag_problem, _kind)
    tags, rules = (None, ()) if checked is None else checked
    exclude = check_exclude(raw, here, add, _tag_problem, _kind)
    platforms = _check_platforms(raw, here, add)
    arch_tags = _check_bool(raw, "arch_tags", here, add)
    allow_partial = _check_bool(raw, "allow_partial", here, add)
    attestations = raw.get("attestations")
    if attestations is not None and attestations not in ATTESTATION_MODES:
        shown = f" {json.dumps(attestations)}" if isinstance(attestations, str | int | float) else ""
        add((*here, "attestations"), f'expected "keep", "drop" or "auto", got {_kind(attestations)}{shown}')

    source = None if source_text is None else parse_reference(source_text)
    if "target" not in raw and source is not None:
        target = _derived_target(source, flatten, here, add)
    draft = _Draft(index, line, None if source is None else str(source), target)
    if tags is not None:
        plain = tuple(dict.fromkeys(tag for _, tag in tags))
        draft.destination_tags = _destination_tags(plain, tuple(platforms or ()), arch_tags is True)
        if arch_tags and platforms:
            _check_arch_tags(tags, platforms, (*here, "tags"), add)
    if source is None or target is None or tags is None or platforms is None or exclude is None:
        return draft
    if arch_tags is None or allow_partial is None or attestations not in (None, *ATTESTATION_MODES):
        return draft
    draft.entry = ImageEntry(
        index=index,
        line=line,
        source=source,
        source_text=raw["source"],
        target=target,
        tags=tuple(dict.fromkeys(tag for _, tag in tags)),
        rules=rules,
        exclude=exclude,
        platforms=tuple(platforms),
        architectures=tuple(raw["architectures"]),
        arch_tags=arch_tags,
        allow_partial=allow_partial,
        attestations=attestations,
    )
    return draft


def _check_string(
    raw: dict[str, Any], name: str, here: _Path, add: _Add, problem_of: Callable[[str], str | None]
) -> str | None:
    if name not in raw:
        return None
    value = raw[name]
    if not isinstance(value, str):
        add((*here, name), f"expected a string such as {_EXAMPLES[name]}, got {_kind(value)}")
        return None
    problem = problem_of(value)
    if problem:
        add((*here, name), problem)
        return None
    return value


def _derived_target(source: Reference, flatten: str | None, here: _Path, add: _Add) -> str | None:
    target = derive_target(source, flatten)
    problem = _target_problem(target)
    if problem:
        add((*here, "source"), f'cannot derive "target" from the source: {problem}; give "target"')
        return None
    return target


def derive_target(source: Reference, flatten: str | None = None) -> str:
    """The target for an entry without one: the source's last path component (``vllm/vllm-openai``
    gives ``vllm-openai``), or with ``flatten`` its whole path joined by that separator
    (``bitnami/redis`` gives ``bitnami_redis``). Docker Hub's ``library/`` is left out either way.
    """
    path = source.repository.removeprefix("library/") if source.registry == DOCKER_HUB else source.repository
    return path.replace("/", flatten) if flatten is not None else path.rsplit("/", 1)[-1]


def _source_problem(source: str) -> str | None:
    try:
        parse_reference(source)
    except InvalidReferenceError as exc:
        return f"invalid image reference {_q(source)}: {exc.reason}"
    return None


def _target_problem(target: str) -> str | None:
    if not target:
        return 'target is empty; give the repository name to push to, e.g. "nginx"'
    first, slash, _ = target.partition("/")
    # Docker's rule for spotting a registry host in a name (see reference._split_registry).
    if slash and ("." in first or ":" in first or first == "localhost"):
        return (
            f"target {_q(target)} is a repository name, not a registry address; "
            "the registry and namespace come from TARGET_REGISTRY and TARGET_NAMESPACE"
        )
    if "@" in target:
        return f"target {_q(target)} must not carry a digest; give only the repository name"
    if ":" in target:
        return f'target {_q(target)} must not carry a tag; put tags in "tags"'
    try:
        validate_repository(target)
    except InvalidReferenceError as exc:
        return f"invalid target {_q(target)}: {exc.reason}"
    return None


def _tag_problem(tag: str) -> str | None:
    if not tag:
        return "the tag is empty"
    if tag != tag.strip():
        ends = (tag[0].isspace(), tag[-1].isspace())
        where = {(True, True): "leading and trailing", (True, False): "leading"}.get(ends, "trailing")
        return f"invalid tag {_q(tag)}: it has {where} whitespace; did you mean {_q(tag.strip())}?"
    if ":" in tag or "/" in tag:
        return f'invalid tag {_q(tag)}: give only the tag (the part after ":"), e.g. "latest"'
    try:
        validate_tag(tag)
    except InvalidReferenceError as exc:
        reason = exc.reason.removeprefix(f"tag {tag!r} ")
        return f"invalid tag {_q(tag)}: {reason}"
    return None


def _check_list(
    raw: dict[str, Any], name: str, here: _Path, add: _Add, problem_of: Callable[[str], str | None]
) -> list[tuple[int, str]] | None:
    """Check a non-empty list of strings; return (position, item) pairs if every item is good."""
    if name not in raw:
        return None
    value, where = raw[name], (*here, name)
    if not isinstance(value, list):
        add(where, f"expected a list of strings, got {_kind(value)}; write e.g. {_EXAMPLES[name]}")
        return None
    if not value:
        noun = name.removesuffix("s")
        add(where, f"the list is empty; give at least one {noun}, e.g. {_EXAMPLES[name]}")
        return None
    good: list[tuple[int, str]] = []
    for position, item in enumerate(value):
        problem = problem_of(item) if isinstance(item, str) else f"expected a string, got {_kind(item)}"
        if problem:
            add((*where, position), problem)
        else:
            good.append((position, item))
    return good if len(good) == len(value) else None


def _check_platforms(raw: dict[str, Any], here: _Path, add: _Add) -> list[Platform] | None:
    parsed: list[Platform] = []

    def problem_of(text: str) -> str | None:
        try:
            parsed.append(parse_platform(text))
        except InvalidPlatformError as exc:
            return f"{_q(text)} is not a known architecture: {exc.reason}"
        return None

    if _check_list(raw, "architectures", here, add, problem_of) is None:
        return None
    unique: list[Platform] = []
    for platform in parsed:
        # "arm64" and "arm64/v8" name one platform; keep the first spelling.
        if not any(platform.matches(p) and p.matches(platform) for p in unique):
            unique.append(platform)
    return unique


def _check_bool(raw: dict[str, Any], name: str, here: _Path, add: _Add) -> bool | None:
    value = raw.get(name, False)
    if isinstance(value, bool):
        return value
    shown = f" {json.dumps(value)}" if isinstance(value, str | int | float) else ""
    add((*here, name), f"expected true or false, got {_kind(value)}{shown}")
    return None


def _check_arch_tags(tags: list[tuple[int, str]], platforms: list[Platform], where: _Path, add: _Add) -> None:
    """Arch tags must be valid tags and must not overwrite a tag listed in ``tags``."""
    made: dict[str, str] = {}
    for tag in dict.fromkeys(t for _, t in tags):
        for platform in platforms:
            made.setdefault(f"{tag}-{platform.tag_suffix}", tag)
    for position, tag in tags:
        if tag in made:
            # It would get the whole image from "tags" and one platform from arch_tags.
            add((*where, position), f"tag {_q(tag)} is also made by arch_tags from {_q(made[tag])}")
    for tag in made:
        if _tag_problem(tag):
            add(where, f"arch_tags would make the tag {_q(tag)}, which is longer than 128 characters")


def _destination_tags(
    tags: tuple[str, ...], platforms: tuple[Platform, ...], arch_tags: bool
) -> tuple[str, ...]:
    out = list(tags)
    if arch_tags:
        out.extend(f"{tag}-{p.tag_suffix}" for tag in tags for p in platforms)
    return tuple(dict.fromkeys(out))


# --- across entries -----------------------------------------------------------


def _check_clashes(drafts: list[_Draft], problems: list[str]) -> None:
    """Report destination tags written by more than one entry."""
    writers: dict[tuple[str, str], _Draft] = {}
    clashes: dict[tuple[int, int], list[str]] = {}
    for draft in drafts:
        if draft.target is None:
            continue
        for tag in draft.destination_tags:
            first = writers.setdefault((draft.target, tag), draft)
            if first is not draft:
                clashes.setdefault((draft.index, first.index), []).append(tag)
    for (later, earlier), tags in clashes.items():
        a, b = drafts[later], drafts[earlier]
        shown = ", ".join(_q(t) for t in tags)
        what = f"target {_q(a.target or '')} tag{'s' if len(tags) > 1 else ''} {shown}"
        lines = f" (lines {a.line} and {b.line})" if a.line and b.line else ""
        if a.source_key is not None and a.source_key == b.source_key:
            same = f"same source {_q(a.source_key)}, {what}"
            problems.append(f"images[{later}]: duplicate of images[{earlier}]: {same}{lines}")
        else:
            problems.append(f"images[{later}] and images[{earlier}] both write {what}{lines}")


def _render_path(path: _Path) -> str:
    return "images" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _kind(value: Any) -> str:
    return _KINDS.get(type(value)) or ("array" if isinstance(value, list) else "object")


def _suggest(name: str) -> str:
    guess = _FIELD_HINTS.get(name.lower())
    if guess is None:
        close = difflib.get_close_matches(name.lower(), KNOWN_FIELDS, n=1)
        guess = close[0] if close else None
    return f" (did you mean {_q(guess)}?)" if guess else f"; known fields: {', '.join(KNOWN_FIELDS)}"


def _q(text: str) -> str:
    """Quote like JSON, so messages show values the way they are written in the file."""
    return json.dumps(text, ensure_ascii=False)
