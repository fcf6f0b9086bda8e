"""The outbox's defence against a wall clock that jumps (a Raspberry Pi has no real-time clock:
it boots with a wrong time until NTP sets it, hours or years later, all at once).

Rows carry wall-clock times (created, expires, sent), since they must mean something after a
restart, when no monotonic clock carries over. A jump would then expire every queued row at once
(forward) or keep them past their TTL (back). :class:`ClockWatch` compares the wall clock's
progress with the monotonic clock's between two looks; when they differ by more than
``tolerance_s`` the clock jumped, and :func:`rebase` moves every stored time by the jump, so ages
and TTLs stay what they were. Rows from before this process started (an earlier boot, perhaps
with a better clock) move too: they are then kept longer than their TTL, never lost.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from edgecascade.shared.ids import Clock

logger = logging.getLogger(__name__)


class ClockWatch:
    """Reports a jump of ``wall`` against ``monotonic`` since the previous look."""

    def __init__(self, wall: Clock, monotonic: Clock, tolerance_s: float = 30.0) -> None:
        self._wall, self._monotonic = wall, monotonic
        self.tolerance_s = tolerance_s
        self._mark = (wall(), monotonic())

    def jump(self) -> float:
        """Seconds the wall clock jumped since the last call (0 within the tolerance)."""
        wall, mono = self._wall(), self._monotonic()
        delta = wall - (self._mark[0] + (mono - self._mark[1]))
        self._mark = (wall, mono)
        return delta if abs(delta) > self.tolerance_s else 0.0

    def follow(self, db: sqlite3.Connection, path: object) -> float:
        """Rebase ``db``'s stored times if the clock jumped; the jump (0 if none)."""
        delta = self.jump()
        if delta:
            rebase(db, delta, path)
        return delta


def rebase(db: sqlite3.Connection, delta: float, path: object) -> None:
    """Move every stored time by ``delta`` seconds (the caller holds the lock, in autocommit)."""
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "UPDATE outbox SET created = created + ?, expires = expires + ?,"
        " sent_at = sent_at + ? WHERE 1",
        (delta, delta, delta),
    )
    db.execute("UPDATE seen SET at = at + ?", (delta,))
    db.execute(
        "INSERT INTO counters (name, value) VALUES ('clock_jumps', 1)"
        " ON CONFLICT(name) DO UPDATE SET value = value + 1"
    )
    db.execute("COMMIT")
    logger.warning(
        "outbox %s: the wall clock jumped %+.0f s; stored times moved with it (ages and TTLs "
        "unchanged)",
        path,
        delta,
    )


def default_monotonic(clock: Clock) -> Clock:
    """The monotonic clock to watch ``clock`` against: the real one for the real wall clock; a
    given test clock is its own (no jump is ever seen)."""
    return time.monotonic if clock is time.time else clock
