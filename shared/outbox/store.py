"""The outbox's queue on disk: SQLite (WAL), one connection guarded by a lock.

What :mod:`shared.outbox` promises (accepted once put, at-least-once, TTLs, quota, replay
window) is kept here; :mod:`shared.outbox.sender` publishes the rows.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from edgecascade.shared.config import Section
from edgecascade.shared.contract import OutboxClass
from edgecascade.shared.ids import Clock
from edgecascade.shared.mqtt import Outgoing

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    klass    TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    msg_id   TEXT    UNIQUE,
    topic    TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    qos      INTEGER NOT NULL,
    retain   INTEGER NOT NULL,
    created  REAL    NOT NULL,
    expires  REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_expires ON outbox (expires);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (msg_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
"""
# Rows acknowledged and kept for replay have ``sent_at``; the pending ones have none. Added after
# the first release: older outbox files get the column when opened.
_SENT_SCHEMA = """
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (priority, seq) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
DROP INDEX IF EXISTS outbox_order;
"""


class ClassPolicy(Section):
    """How one class of message is queued."""

    priority: int = 1
    ttl_s: float = 86_400.0


# Keyed by the contract's outbox classes (each row of shared.contract.KINDS names its class).
DEFAULT_CLASSES: dict[str, ClassPolicy] = {
    OutboxClass.ESCALATION: ClassPolicy(priority=0, ttl_s=6 * 3600.0),
    OutboxClass.VERDICT: ClassPolicy(priority=0, ttl_s=6 * 3600.0),
    OutboxClass.RESULT: ClassPolicy(priority=1, ttl_s=7 * 86_400.0),
    OutboxClass.STATE: ClassPolicy(priority=1, ttl_s=86_400.0),
    OutboxClass.MODEL: ClassPolicy(priority=1, ttl_s=86_400.0),
    OutboxClass.REPLY: ClassPolicy(priority=1, ttl_s=86_400.0),
    OutboxClass.TELEMETRY: ClassPolicy(priority=2, ttl_s=3600.0),
    # Random audit samples of sure frames: after everything else, the first dropped when full.
    OutboxClass.AUDIT: ClassPolicy(priority=3, ttl_s=6 * 3600.0),
}


PutOutcome = Literal["queued", "duplicate", "dropped"]

DEFAULT_REPLAY_S = 90.0
"""The default ``outbox_replay_s``: above the 60 s ``autosave_interval`` of the shipped brokers
(``deploy/mosquitto``, ``deploy/docker``), so a component started from flags alone loses nothing
when its broker is SIGKILLed (``tests/deploy/test_deploy_files.py`` keeps the two in step)."""

ReplaySeconds = Annotated[
    float,
    Field(
        ge=0,
        description="Keep acknowledged outbox rows this long and publish them again after "
        "every reconnect: a broker killed before it saved them (Mosquitto's autosave_interval) "
        "then loses nothing; receivers drop the copies by message id. Keep it above the "
        "broker's autosave_interval (the default is above the shipped brokers' 60 s). 0 deletes "
        "a row at its PUBACK: a SIGKILLed broker then loses what it had not saved.",
    ),
]
"""The ``outbox_replay_s`` setting of every component with an outbox."""


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    klass: str
    message: Outgoing
    created: float = 0.0


# Groups rows into the messages that carry them: each (message, rows) pair is published once and
# its rows are deleted when the broker acknowledges it. The default sends each row as it is.
Coalesce = Callable[[list[Row]], list[tuple[Outgoing, list[Row]]]]


def one_by_one(rows: list[Row]) -> list[tuple[Outgoing, list[Row]]]:
    return [(row.message, [row]) for row in rows]


class Outbox:
    """A thread-safe on-disk queue; one SQLite file, one connection guarded by a lock."""

    def __init__(
        self,
        path: Path,
        *,
        classes: Mapping[str, ClassPolicy] = DEFAULT_CLASSES,
        quota_bytes: int = 256 * 1024 * 1024,
        dedup_window_s: float = 0.0,
        replay_window_s: float = 0.0,
        clock: Clock = time.time,
    ) -> None:
        """``dedup_window_s`` > 0 also refuses a ``msg_id`` sent within that window (the gateway
        uses it: a device that missed a PUBACK sends again after its message was forwarded).
        ``replay_window_s`` > 0 keeps acknowledged rows that long for :meth:`replayable`."""
        self.path = path
        self.dedup_window_s = dedup_window_s
        self.replay_window_s = replay_window_s
        self._next_prune = 0.0
        self._next_expiry = 0.0
        self.classes = dict(classes)
        self.quota_bytes = quota_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self.not_empty = threading.Condition(self._lock)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a process crash (SIGKILL); FULL would also survive power loss.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "sent_at" not in columns:
            self._db.execute("ALTER TABLE outbox ADD COLUMN sent_at REAL")
        self._db.executescript(_SENT_SCHEMA)
        self._bytes = int(
            self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE sent_at IS NULL"
            ).fetchone()[0]
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    # -- producer side ---------------------------------------------------------------------------
    def put(self, klass: str, message: Outgoing, msg_id: str | None = None) -> PutOutcome:
        """Commit ``message`` to disk.

        Returns ``"queued"``, ``"duplicate"`` (a row with this ``msg_id`` is still queued, or was
        within ``dedup_window_s``) or ``"dropped"`` (it does not fit the quota even after evicting
        lower-priority rows).
        """
        return self.put_many([(klass, message, msg_id)])[0]

    def put_many(self, items: Sequence[tuple[str, Outgoing, str | None]]) -> list[PutOutcome]:
        """Commit several ``(klass, message, msg_id)`` in one transaction: one disk write for
        all of them (the gateway's intake commits what arrived meanwhile as a group). The
        outcomes are those of :meth:`put`, in order; a repeated ``msg_id`` within the group is a
        duplicate like any other."""
        for klass, _, _ in items:
            if klass not in self.classes:
                raise ValueError(f"unknown outbox class {klass!r}; known: {sorted(self.classes)}")
        now = self._clock()
        with self._lock:
            size_before = self._bytes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                outcomes = [self._insert(klass, m, msg_id, now) for klass, m, msg_id in items]
                pairs = zip(outcomes, items, strict=True)
                tally = Counter(f"{outcome}.{klass}" for outcome, (klass, _, _) in pairs)
                self._count_all(tally)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._bytes = size_before
                raise
            if "queued" in outcomes:
                self.not_empty.notify_all()
        return outcomes

    def _insert(self, klass: str, message: Outgoing, msg_id: str | None, now: float) -> PutOutcome:
        """One row of :meth:`put_many` (lock held, inside its transaction; the caller counts)."""
        policy = self.classes[klass]
        size = len(message.payload)
        if self.dedup_window_s > 0 and msg_id is not None and not self._first_sight(msg_id, now):
            return "duplicate"
        if not self._make_room(size, policy.priority):
            return "dropped"
        cur = self._db.execute(
            "INSERT OR IGNORE INTO outbox"
            " (klass, priority, msg_id, topic, payload, qos, retain, created, expires)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                klass,
                policy.priority,
                msg_id,
                message.topic,
                message.payload,
                message.qos,
                int(message.retain),
                now,
                now + policy.ttl_s,
            ),
        )
        if cur.rowcount != 1:
            return "duplicate"
        self._bytes += size
        return "queued"

    def _first_sight(self, msg_id: str, now: float) -> bool:
        """Remember ``msg_id``; False if it was seen within the window (lock held)."""
        if now >= self._next_prune:
            self._db.execute("DELETE FROM seen WHERE at < ?", (now - self.dedup_window_s,))
            self._next_prune = now + min(60.0, self.dedup_window_s / 10)
        cur = self._db.execute(
            "INSERT OR IGNORE INTO seen (msg_id, at) VALUES (?, ?)", (msg_id, now)
        )
        return cur.rowcount == 1

    def _make_room(self, size: int, priority: int) -> bool:
        """Drop lower-or-equal priority rows, oldest first, until ``size`` fits (lock held)."""
        if size > self.quota_bytes:
            return False
        while self._bytes + size > self.quota_bytes:
            victim = self._db.execute(
                "SELECT seq, klass, LENGTH(payload) FROM outbox"
                " WHERE priority >= ? AND sent_at IS NULL ORDER BY priority DESC, seq LIMIT 1",
                (priority,),
            ).fetchone()
            if victim is None:
                return False
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (victim[0],))
            self._bytes -= int(victim[2])
            self._count(f"dropped.{victim[1]}", 1)
            logger.warning(
                "outbox full (%d bytes): dropped a queued %s", self.quota_bytes, victim[1]
            )
        return True

    # -- consumer side ---------------------------------------------------------------------------
    def peek(self, limit: int = 100) -> list[Row]:
        """The next rows to send, after expiring those past their TTL."""
        with self._lock:
            self._expire()
            rows = self._db.execute(
                "SELECT seq, klass, topic, payload, qos, retain, created FROM outbox"
                " WHERE sent_at IS NULL ORDER BY priority, seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Row(r[0], r[1], Outgoing(r[2], bytes(r[3]), r[4], bool(r[5])), r[6]) for r in rows]

    def replayable(self) -> list[Row]:
        """Rows acknowledged within ``replay_window_s``, oldest first (older ones are deleted);
        counted as ``replayed.<class>``, since the caller sends them again."""
        if self.replay_window_s <= 0:
            return []
        with self._lock:
            self._purge_sent()
            rows = self._db.execute(
                "SELECT seq, klass, topic, payload, qos, retain, created FROM outbox"
                " WHERE sent_at IS NOT NULL ORDER BY priority, seq"
            ).fetchall()
            self._count_all(Counter(f"replayed.{r[1]}" for r in rows))
        return [Row(r[0], r[1], Outgoing(r[2], bytes(r[3]), r[4], bool(r[5])), r[6]) for r in rows]

    def _purge_sent(self) -> None:
        """Forget acknowledged rows older than the replay window (lock held)."""
        self._db.execute(
            "DELETE FROM outbox WHERE sent_at < ?", (self._clock() - self.replay_window_s,)
        )

    def wait(self, timeout: float) -> None:
        """Block until something is put or ``timeout`` passes."""
        with self._lock:
            self.not_empty.wait(timeout)

    def ack(self, rows: Iterable[Row], outcome: str = "sent") -> None:
        """Delete delivered (or rejected) rows and count them under ``outcome``."""
        rows = list(rows)
        if not rows:
            return
        tally: Counter[str] = Counter()
        keep = self.replay_window_s > 0 and outcome == "sent"
        with self._lock:
            if self._closed:  # a sender that outlived its stop: the rows are sent again next time
                logger.warning(
                    "outbox %s is closed: %d acknowledgement(s) not recorded", self.path, len(rows)
                )
                return
            self._db.execute("BEGIN IMMEDIATE")
            for start in range(0, len(rows), 500):
                seqs = [row.seq for row in rows[start : start + 500]]
                marks = ",".join("?" * len(seqs))
                # Kept for replay (marked sent) or deleted; rows already gone or already marked
                # (expired meanwhile, acknowledged twice) are not counted again.
                if keep:
                    deleted = self._db.execute(
                        f"UPDATE outbox SET sent_at = ? WHERE seq IN ({marks})"
                        " AND sent_at IS NULL RETURNING klass, LENGTH(payload)",
                        [self._clock(), *seqs],
                    ).fetchall()
                else:
                    deleted = self._db.execute(
                        f"DELETE FROM outbox WHERE seq IN ({marks}) AND sent_at IS NULL"
                        " RETURNING klass, LENGTH(payload)",
                        seqs,
                    ).fetchall()
                for klass, size in deleted:  # rows already gone (expired meanwhile) are not
                    self._bytes -= int(size)
                    tally[f"{outcome}.{klass}"] += 1
            self._count_all(tally)
            self._db.execute("COMMIT")

    def _expire(self) -> None:
        now = self._clock()
        if now < self._next_expiry:
            return  # once a second is precise enough for TTLs of minutes to days
        self._next_expiry = now + 1.0
        if self.replay_window_s > 0:
            self._purge_sent()
        expired = self._db.execute(
            "DELETE FROM outbox WHERE expires < ? AND sent_at IS NULL"
            " RETURNING klass, LENGTH(payload)",
            (now,),
        ).fetchall()
        for klass, size in expired:
            self._bytes -= int(size)
            self._count(f"expired.{klass}", 1)
        if expired:
            logger.warning("outbox: %d message(s) expired before they could be sent", len(expired))

    def _count_all(self, tally: Mapping[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            [(name, n) for name, n in tally.items() if n],
        )

    def _count(self, name: str, n: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    # -- figures ---------------------------------------------------------------------------------
    def depth(self) -> dict[str, int]:
        """Queued rows per class."""
        with self._lock:
            return dict(
                self._db.execute(
                    "SELECT klass, COUNT(*) FROM outbox WHERE sent_at IS NULL GROUP BY klass"
                ).fetchall()
            )

    def counters(self) -> dict[str, int]:
        """Persistent counters: ``queued.<class>``, ``sent.*``, ``expired.*``, ``dropped.*``..."""
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    @property
    def size_bytes(self) -> int:
        return self._bytes
