"""Splitting one images.json over several runners: ``--shard I/N``.

Pure: no I/O. An entry belongs to shard ``sha256(target) mod N``, where
``target`` is the destination repository name as written in images.json
(``nginx``, ``vllm-openai``). So every tag of a target stays in one shard, a
target always lands in the same shard whatever the order of the file, the
machine or ``PYTHONHASHSEED``, and the N shards together cover the config
exactly once. Shards are numbered from 0, like Kubernetes' ``JOB_COMPLETION_INDEX``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from docker_transfer.errors import UsageError

T = TypeVar("T")

MAX_SHARDS = 1000
"""More shards than this is surely a typo (a runner per image is already far fewer)."""

_SHARD = re.compile(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise UsageError(f"--shard {self}: the shard count must be between 1 and {MAX_SHARDS}")
        if not 0 <= self.index < self.count:
            raise UsageError(
                f"--shard {self}: the index must be between 0 and {self.count - 1} "
                "(shards are numbered from 0, like JOB_COMPLETION_INDEX)"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        """True when ``key`` (a destination repository name) belongs to this shard."""
        return shard_of(key, self.count) == self.index

    def select(self, items: Iterable[T], key: Callable[[T], str]) -> list[T]:
        """The items whose ``key`` this shard owns, in their original order."""
        return [item for item in items if self.owns(key(item))]


def shard_of(key: str, count: int) -> int:
    """The shard (``0..count-1``) that ``key`` belongs to: the sha256 of its UTF-8 bytes, modulo ``count``."""
    if count < 1:
        raise ValueError(f"shard count must be at least 1, got {count}")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> Shard:
    """``"I/N"`` → :class:`Shard`; anything else raises :class:`UsageError` (exit 2)."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise UsageError(
            f"--shard {text!r}: expected INDEX/COUNT such as 0/4 (shards are numbered from 0 to COUNT-1)"
        )
    index, count = (int(group) for group in match.groups())
    return Shard(index, count)
