"""Retry policy: which failures are worth another attempt, and how long to wait.

Five attempts per operation with exponential backoff and jitter (stamina);
a registry's ``Retry-After`` overrides the backoff. Errors decide for
themselves through their ``retryable`` attribute: 408/429/5xx, resets, EOF and
digest mismatches retry; 400/401/403/404 never do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import stamina

from docker_transfer.errors import DockerTransferError, RegistryError, TransportError

T = TypeVar("T")
log = logging.getLogger(__name__)

RETRY_AFTER_CAP = 300.0
"""Longest wait a registry's ``Retry-After`` can impose by default (``DT_RETRY_AFTER_CAP``)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, backoff bounds, and an overall time cap per operation."""

    attempts: int = 5
    wait_initial: float = 0.5
    wait_max: float = 30.0
    wait_jitter: float = 1.0
    timeout: float | None = None
    retry_after_cap: float = RETRY_AFTER_CAP
    """Longest wait a ``Retry-After`` answer can impose; a longer one waits this long."""
    _unreachable: set[str] = field(default_factory=set, compare=False, repr=False)
    """Hosts already reported as unreachable: said once at the default verbosity, then at -v."""

    def backoff_hook(self, exc: Exception) -> bool | float:
        """stamina hook: False to give up, True for normal backoff, a float to wait exactly that."""
        if not isinstance(exc, DockerTransferError) or not exc.retryable:
            return False
        if isinstance(exc, RegistryError) and exc.retry_after is not None:
            wait = max(min(exc.retry_after, self.retry_after_cap), 0.01)
            log.info("retrying in %.1fs as the registry asked: %s", wait, exc)
            return wait
        if isinstance(exc, TransportError) and exc.connecting and exc.host not in self._unreachable:
            # A refused or timed-out connect is said at once, not after the silent backoff ends.
            self._unreachable.add(exc.host)
            log.warning("%s; retrying (up to %d more attempts)", exc, self.attempts - 1)
        else:
            log.info("retrying: %s", exc)
        return True

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """Defaults, overridden by ``DT_RETRY_ATTEMPTS``, ``DT_RETRY_WAIT_INITIAL``, ``DT_RETRY_WAIT_MAX``
        and ``DT_RETRY_AFTER_CAP``: the command line's policy (a library passes its own)."""

        def number(name: str, default: float) -> float:
            raw = os.environ.get(name, "").strip()
            try:
                return float(raw) if raw else default
            except ValueError:
                return default

        base = cls()
        return cls(
            attempts=max(1, int(number("DT_RETRY_ATTEMPTS", base.attempts))),
            wait_initial=number("DT_RETRY_WAIT_INITIAL", base.wait_initial),
            wait_max=number("DT_RETRY_WAIT_MAX", base.wait_max),
            wait_jitter=min(number("DT_RETRY_WAIT_MAX", base.wait_max), base.wait_jitter),
            retry_after_cap=max(0.0, number("DT_RETRY_AFTER_CAP", base.retry_after_cap)),
        )

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` until it succeeds, fails for good, or attempts run out."""
        async for attempt in stamina.retry_context(
            on=self.backoff_hook,
            attempts=self.attempts,
            timeout=self.timeout,
            wait_initial=self.wait_initial,
            wait_max=self.wait_max,
            wait_jitter=self.wait_jitter,
        ):
            with attempt:
                return await operation()
        raise AssertionError("unreachable: stamina re-raises the last error")


NO_RETRY = RetryPolicy(attempts=1)
