"""A registry's pull quota: one type for what a response's headers said and what a report holds.

Pure: parsing Docker Hub's ``ratelimit-*`` header values, reading a report's ``ratelimit`` entries
and the text shown for them; the registry client fills it from responses, the summary and the
table print it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RateLimit:
    """A registry's pull quota as last seen: ``remaining`` of ``limit`` per ``window_s`` at ``host``."""

    host: str
    limit: int | None = None
    remaining: int | None = None
    window_s: int | None = None

    @classmethod
    def from_mapping(cls, raw: Any) -> RateLimit | None:
        """Read a report's ``{"host", "limit", "remaining", "window_s"}`` (``"source"`` may name the host).

        None when it holds neither a limit nor a remaining count.
        """
        if not isinstance(raw, Mapping):
            return None
        host = raw.get("host", raw.get("source"))
        limit, remaining = _count(raw.get("limit")), _count(raw.get("remaining"))
        if limit is None and remaining is None:
            return None
        host_text = str(host) if host else "the source registry"
        return cls(host=host_text, limit=limit, remaining=remaining, window_s=_count(raw.get("window_s")))

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON object for this quota."""
        return {
            "host": self.host,
            "limit": self.limit,
            "remaining": self.remaining,
            "window_s": self.window_s,
        }

    def plain(self) -> str:
        """The figures and the host as plain text, for terminals and logs."""
        return self.describe(self.host)

    def describe(self, host: str) -> str:
        """The figures followed by ``at <host>``, with ``host`` written as given."""
        if self.remaining is not None and self.limit is not None:
            figures = f"{self.remaining} of {self.limit} requests remaining"
        elif self.remaining is not None:
            figures = f"{self.remaining} requests remaining"
        else:
            figures = f"limit {self.limit} requests"
        if self.window_s:
            figures += f" per {_window(self.window_s)}"
        return f"{figures} at {host}"


def ratelimits_from(data: Mapping[str, Any]) -> list[RateLimit]:
    """The rate limits a report's JSON object carries under ``ratelimit`` (an object or a list)."""
    raw = data.get("ratelimit")
    items = raw if isinstance(raw, list) else [raw]
    return [limit for limit in (RateLimit.from_mapping(item) for item in items) if limit is not None]


def tightest_per_host(limits: Iterable[RateLimit]) -> list[RateLimit]:
    """One rate limit per host: the one with the fewest requests remaining (merging shards)."""
    best: dict[str, RateLimit] = {}
    for limit in limits:
        held = best.get(limit.host)
        if held is None or _remaining_key(limit) < _remaining_key(held):
            best[limit.host] = limit
    return list(best.values())


def _window(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _remaining_key(limit: RateLimit) -> float:
    return float("inf") if limit.remaining is None else float(limit.remaining)


def parse_count(value: str | None, *, max_digits: int = 18) -> int | None:
    """A non-negative decimal integer from server text, or None.

    Only ASCII digits count: ``str.isdigit`` also accepts ``²`` or Devanagari digits,
    which ``int`` refuses or reads as numbers no registry meant. The length bound keeps
    ``int`` clear of its digit limit and the value within what a count can mean. (It lives
    here, in pure code, because the quota parsers need it; the registry client uses it for
    every other count a server sends.)
    """
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > max_digits or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _count(value: Any) -> int | None:
    """A count from a report's JSON: a non-negative int, or a string :func:`parse_count` reads."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    return parse_count(value) if isinstance(value, str) else None


def from_headers(host: str, limit_value: str | None, remaining_value: str | None) -> RateLimit | None:
    """Docker Hub's ``ratelimit-limit: 100;w=21600`` and ``ratelimit-remaining: 76;w=21600`` values.

    None when both headers are absent.
    """
    if limit_value is None and remaining_value is None:
        return None

    def split(value: str | None) -> tuple[int | None, int | None]:
        if not value:
            return None, None
        figure, _, rest = value.partition(";")
        return parse_count(figure), parse_count(rest.strip().removeprefix("w="))

    limit, window = split(limit_value)
    remaining, window2 = split(remaining_value)
    return RateLimit(host, limit, remaining, window or window2)
