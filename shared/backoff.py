"""Exponential backoff: the delays between retries of one operation, in one place.

A store that is down (a database restarting, a full disk) is retried, not given up on; waiting
longer after each failure keeps a dead dependency from being hammered while it comes back, and a
cap keeps the wait after it is back short. The first retry comes quickly because most failures
are brief (a connection the pool has to replace).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``first``, then twice the previous delay, never more than ``cap`` (seconds)."""

    first: float = 0.2
    cap: float = 5.0

    def delays(self) -> Iterator[float]:
        """The delays for one operation's retries; start again with a new iterator."""
        delay = self.first
        while True:
            yield delay
            delay = min(self.cap, 2 * delay)
