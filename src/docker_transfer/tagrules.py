"""Tag rules: choosing tags from a source's tag list instead of listing them.

An element of ``tags`` in images.json is either a tag or a rule object:

- ``{"regex": "^v1\\.2[0-9]\\.[0-9]+$"}``: tags the regex matches in full (Python ``re``);
- ``{"semver": ">=1.25, <1.28"}``: tags that read as versions inside the range;
- ``{"latest": 5}``: the 5 highest versions, optionally filtered by ``regex`` and/or ``semver``
  in the same object.

``exclude`` at entry level lists tags (strings, exact) or ``{"regex": ...}`` objects (full
match) that are never copied, whatever rule produced them.

A *version* is a tag of one to three dot-separated numbers with an optional leading ``v`` and an
optional pre-release (``-rc1``, ``-alpha.2``, ``-beta``): ``1.27``, ``v1.27.3``, ``1.28.0-rc1``.
Tags with other suffixes (``1.27-alpine``) are not versions. Versions are compared and ranged
with ``packaging`` (PEP 440 semantics, which agree with SemVer's order on these forms; a range
leaves pre-releases out unless it names one itself). Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

RULE_KEYS = ("regex", "semver", "latest")
"""The keys a rule object may have."""

MAX_LATEST = 1000
"""The largest ``latest`` count accepted (more is a typo, not a wish)."""

_VERSION_RE = re.compile(r"v?(\d+)(\.\d+){0,2}(-(alpha|beta|rc)(\.?\d+)?)?", re.IGNORECASE)


@dataclass(frozen=True)
class TagRule:
    """One rule object of ``tags``, validated; ``text`` is how it reads in the file."""

    regex: str | None = None
    semver: str | None = None
    latest: int | None = None

    @property
    def text(self) -> str:
        """The rule as JSON, keys in a fixed order: what the report names as a tag's origin."""
        fields = {k: getattr(self, k) for k in RULE_KEYS if getattr(self, k) is not None}
        return json.dumps(fields, ensure_ascii=False, separators=(", ", ": "))

    def matches(self, tag: str) -> bool:
        """True when ``tag`` passes this rule's filters (``latest`` is applied over the list)."""
        if self.regex is not None and re.fullmatch(self.regex, tag) is None:
            return False
        if self.semver is not None:
            version = parse_version(tag)
            if version is None:
                return False
            spec = SpecifierSet(self.semver)
            # Explicit: packaging's default for pre-releases changed between releases.
            return spec.contains(version, prereleases=bool(spec.prereleases))
        return self.latest is None or parse_version(tag) is not None

    def select(self, tags: Sequence[str]) -> list[str]:
        """The tags this rule picks from ``tags``, in the list's order (``latest``: highest first)."""
        picked = [t for t in tags if self.matches(t)]
        if self.latest is None:
            return picked
        # Pre-releases count only when a semver range let them through (it decides about them).
        versions = [
            (v, t)
            for t in picked
            if (v := parse_version(t)) is not None and (self.semver is not None or not v.is_prerelease)
        ]
        versions.sort(key=lambda pair: (pair[0], pair[1]), reverse=True)
        return [t for _, t in versions[: self.latest]]


@dataclass(frozen=True)
class Exclusion:
    """An ``exclude`` item: an exact tag, or a regex matched in full."""

    tag: str | None = None
    regex: str | None = None

    def matches(self, tag: str) -> bool:
        """True when ``tag`` must not be copied."""
        if self.tag is not None:
            return tag == self.tag
        return self.regex is not None and re.fullmatch(self.regex, tag) is not None


def parse_version(tag: str) -> Version | None:
    """``tag`` as a version when it reads as one (see the module docstring), else None."""
    if _VERSION_RE.fullmatch(tag) is None:
        return None
    try:
        return Version(tag)
    except InvalidVersion:  # pragma: no cover - the regex admits only forms packaging reads
        return None


def rule_problem(raw: Mapping[str, Any]) -> tuple[TagRule | None, list[str]]:
    """Validate a rule object; the rule, or None and every problem found (one line each)."""
    problems: list[str] = []
    unknown = [k for k in raw if k not in RULE_KEYS]
    if unknown:
        known = ", ".join(f'"{k}"' for k in RULE_KEYS)
        problems.append(f"unknown rule key{'s' if len(unknown) > 1 else ''} {_names(unknown)}; use {known}")
    if not any(k in raw for k in RULE_KEYS):
        return None, problems or ['a rule needs "regex", "semver" or "latest"']
    regex, semver, latest = raw.get("regex"), raw.get("semver"), raw.get("latest")
    if regex is not None:
        problems.extend(regex_problems(regex, "regex"))
    if semver is not None:
        if not isinstance(semver, str) or not semver.strip():
            problems.append('"semver" must be a range such as ">=1.25, <1.28"')
        else:
            try:
                SpecifierSet(semver)
            except InvalidSpecifier:
                problems.append(
                    f'"semver" {json.dumps(semver)} is not a version range; write e.g. ">=1.25, <1.28"'
                )
    if "latest" in raw and (
        isinstance(latest, bool) or not isinstance(latest, int) or not 1 <= latest <= MAX_LATEST
    ):
        problems.append(f'"latest" must be a whole number from 1 to {MAX_LATEST}, e.g. 5')
    if problems:
        return None, problems
    return TagRule(regex=regex, semver=semver.strip() if semver else None, latest=latest), []


def regex_problems(value: Any, name: str) -> list[str]:
    """Why ``value`` is not a usable regex (empty when it is)."""
    if not isinstance(value, str) or not value:
        return [f'"{name}" must be a non-empty string (a Python regular expression)']
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError) as exc:
        return [f'"{name}" {json.dumps(value, ensure_ascii=False)} is not a valid regular expression: {exc}']
    return []


def expand(
    rules: Sequence[TagRule], exclusions: Sequence[Exclusion], available: Iterable[str]
) -> dict[str, TagRule]:
    """Tags chosen by ``rules`` from ``available``: tag -> the first rule that chose it.

    Exclusions apply first, so ``{"latest": 5}`` with ``-rc`` tags excluded still gives five tags.
    """
    tags = [t for t in dict.fromkeys(available) if not any(e.matches(t) for e in exclusions)]
    chosen: dict[str, TagRule] = {}
    for rule in rules:
        for tag in rule.select(tags):
            chosen.setdefault(tag, rule)
    return chosen


def _names(keys: Sequence[str]) -> str:
    return ", ".join(json.dumps(k, ensure_ascii=False) for k in keys)


# --- reading them from images.json -------------------------------------------------------------

Path = tuple[int | str, ...]
Add = Callable[..., None]
Problem = Callable[[str], str | None]


def check_tags(
    raw: Mapping[str, Any], here: Path, add: Add, tag_problem: Problem, kind: Callable[[Any], str]
) -> tuple[list[tuple[int, str]], tuple[TagRule, ...]] | None:
    """``tags`` of an entry: (position, tag) pairs and rules, or None after reporting problems."""
    if "tags" not in raw:
        return None
    value, where = raw["tags"], (*here, "tags")
    if not isinstance(value, list):
        add(where, f'expected a list of strings, got {kind(value)}; write e.g. ["latest"]')
        return None
    if not value:
        add(where, 'the list is empty; give at least one tag, e.g. ["latest"]')
        return None
    literals: list[tuple[int, str]] = []
    rules: list[TagRule] = []
    ok = True
    for position, item in enumerate(value):
        if isinstance(item, str):
            problem = tag_problem(item)
            if problem:
                add((*where, position), problem)
                ok = False
            else:
                literals.append((position, item))
        elif isinstance(item, dict):
            rule, problems = rule_problem(item)
            for text in problems:
                add((*where, position), text)
            ok = ok and rule is not None
            if rule is not None:
                rules.append(rule)
        else:
            add(
                (*where, position),
                f"expected a string, got {kind(item)}",
            )
            ok = False
    return (literals, tuple(dict.fromkeys(rules))) if ok else None


def check_exclude(
    raw: Mapping[str, Any], here: Path, add: Add, tag_problem: Problem, kind: Callable[[Any], str]
) -> tuple[Exclusion, ...] | None:
    """``exclude`` of an entry (absent: nothing excluded), or None after reporting problems."""
    if "exclude" not in raw:
        return ()
    value, where = raw["exclude"], (*here, "exclude")
    if not isinstance(value, list):
        add(where, f'expected a list of tags or {{"regex": ...}} objects, got {kind(value)}')
        return None
    found: list[Exclusion] = []
    ok = True
    for position, item in enumerate(value):
        problems: list[str] = []
        if isinstance(item, str):
            problem = tag_problem(item)
            problems = [problem] if problem else []
            found.append(Exclusion(tag=item))
        elif isinstance(item, dict) and set(item) == {"regex"}:
            problems = regex_problems(item["regex"], "regex")
            found.append(Exclusion(regex=item["regex"] if not problems else None))
        else:
            problems = [f'expected a tag (string) or {{"regex": "..."}}, got {kind(item)}']
        for text in problems:
            add((*where, position), text)
        ok = ok and not problems
    return tuple(found) if ok else None
