"""Reading images.json as text: where each value is, and what a JSON syntax error means.

Pure: ``json.loads`` says *that* a file is broken; these say where, and why in words a
person fixes (a trailing comma, single quotes, an input method's full-width comma).
"""

from __future__ import annotations

import bisect
import json
from typing import Any

JsonPath = tuple[int | str, ...]
"""A value's place in the document: ``(3, "tags", 1)`` is ``images[3].tags[1]``."""

_JSON_WS = " \t\n\r"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class JsonObject(dict[str, Any]):
    """A JSON object that remembers keys given twice (json.loads silently keeps the last)."""

    duplicates: tuple[str, ...] = ()


def object_from_pairs(pairs: list[tuple[str, Any]]) -> JsonObject:
    """``object_pairs_hook`` for json.loads: a :class:`JsonObject` that lists duplicate keys."""
    obj = JsonObject()
    duplicates = []
    for key, value in pairs:
        if key in obj:
            duplicates.append(key)
        obj[key] = value
    obj.duplicates = tuple(duplicates)
    return obj


# What an input method (IME) types instead of JSON's ASCII punctuation.
_LOOKALIKES = {
    "\uff0c": ("full-width comma", ","),
    "\u3001": ("ideographic comma", ","),
    "\uff1a": ("full-width colon", ":"),
    "\u201c": ("curly quote", '"'),
    "\u201d": ("curly quote", '"'),
    "\u2018": ("curly quote", '"'),
    "\u2019": ("curly quote", '"'),
    "\uff02": ("full-width quote", '"'),
    "\uff3b": ("full-width bracket", "["),
    "\uff3d": ("full-width bracket", "]"),
    "\uff5b": ("full-width brace", "{"),
    "\uff5d": ("full-width brace", "}"),
}


def _lookalike_hint(text: str, lineno: int) -> str | None:
    """Name IME punctuation outside strings on the error's line (or the line before it)."""
    lines = text.split("\n")
    for number in (lineno, lineno - 1):
        if not 1 <= number <= len(lines):
            continue
        chars = dict.fromkeys(_outside_strings(lines[number - 1]))
        found = [(ch, *_LOOKALIKES[ch]) for ch in chars if ch in _LOOKALIKES]
        if found:
            named = ", ".join(f"a {name} {ch!r} (write {ascii_!r})" for ch, name, ascii_ in found)
            return (
                f"line {number} has {named}: JSON needs ASCII punctuation; switch the input method to English"
            )
    return None


def _outside_strings(line: str) -> str:
    """The characters of ``line`` that are not inside an ASCII double-quoted string."""
    out: list[str] = []
    inside = escaped = False
    for ch in line:
        if inside:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                inside = False
        elif ch == '"':
            inside = True
        else:
            out.append(ch)
    return "".join(out)


def syntax_problem(text: str, exc: json.JSONDecodeError) -> str:
    """One line saying where ``text`` stops being JSON, with a hint for the common slips."""
    hint = _lookalike_hint(text, exc.lineno)
    if hint:
        return f"line {exc.lineno}, column {exc.colno}: invalid JSON; {hint}"
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
    if exc.msg == "Extra data" and text.lstrip(_JSON_WS).startswith("{"):
        return f"{where}; several entries must be wrapped in one array: [ {{...}}, {{...}} ]"
    if exc.msg == "Extra data":
        return f"{where}; there is more text after the end of the array"
    if exc.msg.startswith("Expecting ',' delimiter"):
        return f"{where}; a comma is probably missing between two elements or fields"
    return where


def _line_column(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def parse_int(digits: str) -> int | float:
    """``parse_int`` for json.loads: an integer too long for ``int`` (thousands of digits) becomes a float.

    No field of images.json takes a number, so its value never matters, only that it
    is reported as a number instead of failing inside ``json``.
    """
    return int(digits) if len(digits) <= 1000 else float(digits)


def locate_values(text: str) -> dict[JsonPath, int]:
    """Map the path of each value down to list items (``(3, "tags", 1)``) to its 1-based line.

    Called only on text that json.loads accepted, so the walk needs no error handling.
    """
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    decoder = json.JSONDecoder(parse_int=parse_int)
    lines: dict[JsonPath, int] = {}

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in _JSON_WS:
            pos += 1
        return pos

    def walk(pos: int, path: JsonPath) -> int:
        lines[path] = bisect.bisect_left(newlines, pos) + 1
        opening = text[pos]
        if len(path) >= 3 or opening not in "[{":
            return int(decoder.raw_decode(text, pos)[1])
        pos = skip(pos + 1)
        position = 0
        while text[pos] not in "]}":
            child: JsonPath
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


def nearest_line(lines: dict[JsonPath, int], path: JsonPath) -> int | None:
    """The line of ``path``, or of its closest located parent."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None
