"""images.json: the list of images to mirror, parsed and validated.

The format is the one the original project's users already have (a JSON array of
``{"source", "target", "tags", "architectures"}`` objects) plus the optional
booleans ``arch_tags`` and ``allow_partial``. Every problem in the file is
collected and raised at once as :class:`ConfigError`, before any registry is
contacted. docs/configuration.md is the user's reference; keep it in step.
"""

from __future__ import annotations

import bisect
import difflib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from docker_transfer.errors import ConfigError, InvalidPlatformError, InvalidReferenceError
from docker_transfer.platform import Platform, parse_platform
from docker_transfer.reference import Reference, parse_reference, validate_repository, validate_tag

REQUIRED_FIELDS: tuple[str, ...] = ("source", "target", "tags", "architectures")
"""Fields every entry must have (all four are required in the original format)."""

OPTIONAL_FIELDS: tuple[str, ...] = ("arch_tags", "allow_partial")
"""Boolean fields that default to false."""

KNOWN_FIELDS: tuple[str, ...] = REQUIRED_FIELDS + OPTIONAL_FIELDS

# Names people plausibly write instead of ours that difflib would not connect.
_FIELD_HINTS = {
    "platform": "architectures",
    "platforms": "architectures",
    "arch": "architectures",
    "archs": "architectures",
    "image": "source",
    "src": "source",
    "from": "source",
    "dest": "target",
    "destination": "target",
    "to": "target",
    "name": "target",
}
_JSON_WS = " \t\n\r"
_Path = tuple[int | str, ...]
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

    def destination_tags(self) -> tuple[str, ...]:
        """Every tag written under ``target``: ``tags``, then ``<tag>-<arch>`` ones if ``arch_tags``."""
        return _destination_tags(self.tags, self.platforms, self.arch_tags)


@dataclass(frozen=True)
class Config:
    """A parsed images.json: its path (for messages) and its entries in file order."""

    path: str
    entries: tuple[ImageEntry, ...] = field(default=())

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


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the images.json at ``path``; see :func:`parse_config`.

    A missing, unreadable or non-UTF-8 file raises :class:`ConfigError` too.
    """
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise ConfigError(name, ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(name, ["is a directory, not a file"]) from None
    except PermissionError:
        raise ConfigError(name, ["permission denied: cannot read the file"]) from None
    except OSError as exc:
        raise ConfigError(name, [f"cannot read the file: {exc.strerror or exc}"]) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(name, ["the file is UTF-16 encoded; save it as UTF-8"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            name, [f"line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"]
        ) from None
    return parse_config(text, name)


def parse_config(text: str, path: str = "images.json") -> Config:
    """Parse images.json ``text``; raise :class:`ConfigError` listing every problem found.

    Only one JSON syntax error can be reported (the parser stops at it); once the
    JSON parses, every entry and every field is checked.
    """
    text = text.removeprefix("\ufeff")  # editors on Windows add a BOM; json.loads rejects it
    if not text.strip():
        raise ConfigError(path, ["file is empty; expected a JSON array of images"])
    try:
        data = json.loads(text, object_pairs_hook=_object_from_pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, [_syntax_problem(text, exc)]) from None
    except RecursionError:
        raise ConfigError(path, ["the JSON is nested too deeply"]) from None
    if not isinstance(data, list):
        hint = "; wrap the entries in [ and ]" if isinstance(data, dict) else ""
        raise ConfigError(path, [f"expected a JSON array of images at the top level, got {_kind(data)}{hint}"])

    lines = _locate(text)
    problems: list[str] = []

    def add(where: _Path, message: str, at: _Path | None = None) -> None:
        line = _nearest_line(lines, where if at is None else at)
        problems.append(f"{_render_path(where)}: {message}" + (f" (line {line})" if line else ""))

    drafts = [_check_entry(index, raw, lines.get((index,)), add) for index, raw in enumerate(data)]
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


def _check_entry(index: int, raw: Any, line: int | None, add: _Add) -> _Draft:
    draft = _Draft(index, line)
    here: _Path = (index,)
    if not isinstance(raw, dict):
        add(here, f'expected an object with "source", "target", "tags" and "architectures", got {_kind(raw)}')
        return draft
    for name in getattr(raw, "duplicates", ()):
        add(here, f"field {_q(name)} is given more than once", (index, name))
    for name in raw:
        if name not in KNOWN_FIELDS:
            add(here, f"unknown field {_q(name)}{_suggest(name)}", (index, name))
    for name in REQUIRED_FIELDS:
        if name not in raw:
            add(here, f"missing required field {_q(name)}")

    source = _check_source(raw.get("source"), (index, "source"), add) if "source" in raw else None
    target = _check_target(raw.get("target"), (index, "target"), add) if "target" in raw else None
    tags = _check_list(raw.get("tags"), (index, "tags"), add, _tag_problem) if "tags" in raw else None
    archs = raw.get("architectures")
    platforms = _check_platforms(archs, (index, "architectures"), add) if "architectures" in raw else None
    arch_tags = _check_bool(raw, "arch_tags", here, add)
    allow_partial = _check_bool(raw, "allow_partial", here, add)

    if source is not None:
        draft.source_key = str(source)
    draft.target = target
    if tags is not None:
        tag_values = tuple(dict.fromkeys(tag for _, tag in tags))
        suffixed = _destination_tags(tag_values, tuple(platforms or ()), bool(arch_tags))
        draft.destination_tags = suffixed
        _check_suffixed(tags, suffixed, tag_values, (index, "tags"), add)
    if None in (source, target, tags, platforms, arch_tags, allow_partial):
        return draft
    assert source is not None and target is not None and tags is not None and platforms is not None
    draft.entry = ImageEntry(
        index=index,
        line=line,
        source=source,
        source_text=raw["source"],
        target=target,
        tags=tuple(dict.fromkeys(tag for _, tag in tags)),
        platforms=tuple(platforms),
        architectures=tuple(archs),
        arch_tags=bool(arch_tags),
        allow_partial=bool(allow_partial),
    )
    return draft


def _check_source(value: Any, where: _Path, add: _Add) -> Reference | None:
    if not isinstance(value, str):
        add(where, f"expected a string such as \"nginx:latest\", got {_kind(value)}")
        return None
    try:
        return parse_reference(value)
    except InvalidReferenceError as exc:
        add(where, f"invalid image reference {_q(value)}: {exc.reason}")
        return None


def _check_target(value: Any, where: _Path, add: _Add) -> str | None:
    if not isinstance(value, str):
        add(where, f"expected a string such as \"nginx\", got {_kind(value)}")
        return None
    problem = _target_problem(value)
    if problem:
        add(where, problem)
        return None
    return value


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
        return f'target {_q(target)} must not carry a digest; give only the repository name'
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
    if ":" in tag or "/" in tag:
        return f'invalid tag {_q(tag)}: give only the tag (the part after ":"), e.g. "latest"'
    try:
        validate_tag(tag)
    except InvalidReferenceError as exc:
        reason = exc.reason.removeprefix(f"tag {tag!r} ")
        return f"invalid tag {_q(tag)}: {reason}"
    return None


def _check_list(
    value: Any, where: _Path, add: _Add, problem_of: Callable[[str], str | None]
) -> list[tuple[int, str]] | None:
    """Check a non-empty list of strings; return (position, item) for the good items."""
    noun = "tag" if where[-1] == "tags" else "architecture"
    example = '["latest"]' if noun == "tag" else '["amd64", "arm64"]'
    if not isinstance(value, list):
        add(where, f"expected a list of strings, got {_kind(value)}; write e.g. {example}")
        return None
    if not value:
        add(where, f"the list is empty; give at least one {noun}, e.g. {example}")
        return None
    good: list[tuple[int, str]] = []
    for position, item in enumerate(value):
        if not isinstance(item, str):
            add((*where, position), f"expected a string, got {_kind(item)}")
            continue
        problem = problem_of(item)
        if problem:
            add((*where, position), problem)
            continue
        good.append((position, item))
    return good if len(good) == len(value) else None


def _check_platforms(value: Any, where: _Path, add: _Add) -> list[Platform] | None:
    parsed: list[Platform] = []

    def problem_of(text: str) -> str | None:
        try:
            parsed.append(parse_platform(text))
        except InvalidPlatformError as exc:
            return f"{_q(text)} is not a known architecture: {exc.reason}"
        return None

    if _check_list(value, where, add, problem_of) is None:
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


def _check_suffixed(
    tags: list[tuple[int, str]], destination: tuple[str, ...], plain: tuple[str, ...], where: _Path, add: _Add
) -> None:
    """Arch tags must be valid tags and must not overwrite a tag listed in ``tags``."""
    plain_set = set(plain)
    made_from = {f"{tag}-{suffix}": tag for tag in plain for suffix in _suffixes(destination, tag)}
    for position, tag in tags:
        if tag in made_from and made_from[tag] != tag:
            add((*where, position), f"tag {_q(tag)} is also made by arch_tags from {_q(made_from[tag])}")
    for tag in destination:
        if tag not in plain_set and _tag_problem(tag):
            add(where, f"arch_tags would make the tag {_q(tag)}, which is not a valid tag (over 128 characters?)")


def _suffixes(destination: tuple[str, ...], tag: str) -> list[str]:
    return [d.removeprefix(f"{tag}-") for d in destination if d.startswith(f"{tag}-")]


def _destination_tags(tags: tuple[str, ...], platforms: tuple[Platform, ...], arch_tags: bool) -> tuple[str, ...]:
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
        lines = f" (lines {b.line} and {a.line})" if a.line and b.line else ""
        if a.source_key is not None and a.source_key == b.source_key:
            problems.append(
                f"images[{later}]: duplicate of images[{earlier}]: same source {_q(a.source_key)}, {what}{lines}"
            )
        else:
            problems.append(f"images[{later}] and images[{earlier}] both write {what}{lines}")


# --- JSON helpers -------------------------------------------------------------


class _Object(dict[str, Any]):
    """A JSON object that remembers keys given twice (json.loads silently keeps the last)."""

    duplicates: tuple[str, ...] = ()


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    duplicates = []
    for key, value in pairs:
        if key in obj:
            duplicates.append(key)
        obj[key] = value
    obj.duplicates = tuple(duplicates)
    return obj


def _syntax_problem(text: str, exc: json.JSONDecodeError) -> str:
    before = text[: exc.pos].rstrip(_JSON_WS)
    after = text[exc.pos : exc.pos + 1]
    if before.endswith(",") and after in ("]", "}"):
        line, column = _line_column(text, len(before) - 1)
        return (
            f"line {line}, column {column}: trailing comma before {_q(after)}; "
            "JSON does not allow a comma after the last element"
        )
    where = f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
    if after == "'":
        return f"{where}; strings and field names need double quotes (\"), not single quotes (')"
    if text.startswith(("//", "/*", "#"), exc.pos):
        return f"{where}; JSON does not allow comments"
    if exc.msg == "Extra data":
        return f"{where}; several entries must be wrapped in one array: [ {{...}}, {{...}} ]"
    if exc.msg.startswith("Expecting ',' delimiter"):
        return f"{where}; a comma is probably missing between two elements or fields"
    return where


def _line_column(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _locate(text: str) -> dict[_Path, int]:
    """Map the path of each value down to list items (``(3, "tags", 1)``) to its 1-based line.

    Called only on text that json.loads accepted, so the walk needs no error handling.
    """
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    decoder = json.JSONDecoder()
    lines: dict[_Path, int] = {}

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in _JSON_WS:
            pos += 1
        return pos

    def walk(pos: int, path: _Path) -> int:
        lines[path] = bisect.bisect_left(newlines, pos) + 1
        opening = text[pos]
        if len(path) >= 3 or opening not in "[{":
            return int(decoder.raw_decode(text, pos)[1])
        pos = skip(pos + 1)
        position = 0
        while text[pos] not in "]}":
            child: _Path
            if opening == "{":
                key, pos = decoder.raw_decode(text, pos)
                pos = skip(skip(pos) + 1)  # the ':'
                child = (*path, key)
            else:
                child = (*path, position)
                position += 1
            pos = skip(walk(pos, child))
            if text[pos] == ",":
                pos = skip(pos + 1)
        return pos + 1

    walk(skip(0), ())
    return lines


def _nearest_line(lines: dict[_Path, int], path: _Path) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def _render_path(path: _Path) -> str:
    return "images" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _suggest(name: str) -> str:
    guess = _FIELD_HINTS.get(name.lower())
    if guess is None:
        close = difflib.get_close_matches(name.lower(), KNOWN_FIELDS, n=1)
        guess = close[0] if close else None
    return f" (did you mean {_q(guess)}?)" if guess else f"; known fields: {', '.join(KNOWN_FIELDS)}"


def _q(text: str) -> str:
    """Quote like JSON, so messages show values the way they are written in the file."""
    return json.dumps(text, ensure_ascii=False)
