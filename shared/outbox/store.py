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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from edgecascade.shared.ids import Clock
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox.rows import DEFAULT_CLASSES, ClassPolicy, PutOutcome, Row

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
        confirmed: Iterable[str] = (),
        clock: Clock = time.time,
    ) -> None:
        """``dedup_window_s`` > 0 also refuses a ``msg_id`` sent within that window (the gateway
        uses it: a device that missed a PUBACK sends again after its message was forwarded).
        ``replay_window_s`` > 0 keeps acknowledged rows that long for :meth:`replayable`.
        Rows of the ``confirmed`` classes (with a ``msg_id``) are kept after their PUBACK until
        the receiver confirms them (:meth:`confirm`): sent again after every reconnect and,
        through :meth:`unconfirmed`, when no confirmation comes."""
        self.path = path
        self.dedup_window_s = dedup_window_s
        self.replay_window_s = replay_window_s
        self.confirmed = frozenset(confirmed)
        marks = ",".join(f"'{klass}'" for klass in sorted(self.confirmed) if klass.isidentifier())
        # The SQL test of a row kept until its receiver confirms it.
        self._awaits = f"(msg_id IS NOT NULL AND klass IN ({marks}))" if marks else "0"
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
        """Rows acknowledged within ``replay_window_s`` and rows not confirmed yet, oldest first
        (older ones are deleted); counted as ``replayed.<class>``, since the caller sends them
        again."""
        if self.replay_window_s <= 0 and not self.confirmed:
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
        """Forget acknowledged rows older than the replay window, unless they wait for their
        receiver's confirmation (lock held)."""
        self._db.execute(
            f"DELETE FROM outbox WHERE sent_at < ? AND NOT {self._awaits}",
            (self._clock() - self.replay_window_s,),
        )

    def confirm(self, msg_ids: Sequence[str]) -> int:
        """The receiver has committed these: forget them (sent or, re-queued, not yet);
        counted as ``confirmed.<class>``. Returns how many rows it removed."""
        tally: Counter[str] = Counter()
        with self._lock:
            if self._closed:
                return 0
            self._db.execute("BEGIN IMMEDIATE")
            for start in range(0, len(msg_ids), 500):
                ids = list(msg_ids[start : start + 500])
                gone = self._db.execute(
                    f"DELETE FROM outbox WHERE msg_id IN ({','.join('?' * len(ids))})"
                    " RETURNING klass, sent_at, LENGTH(payload)",
                    ids,
                ).fetchall()
                for klass, sent_at, size in gone:
                    if sent_at is None:
                        self._bytes -= int(size)
                    tally[f"confirmed.{klass}"] += 1
            self._count_all(tally)
            self._db.execute("COMMIT")
        return sum(tally.values())

    def unconfirmed(self, older_than_s: float) -> list[Row]:
        """Rows sent more than ``older_than_s`` ago and still not confirmed, oldest first, to
        send again (the broker may have dropped them: a session that expired, a broker restarted
        without its store); their clock restarts, counted as ``resent.<class>``."""
        if not self.confirmed:
            return []
        now = self._clock()
        with self._lock:
            rows = self._db.execute(
                "UPDATE outbox SET sent_at = ? WHERE sent_at < ? AND "
                f"{self._awaits} RETURNING seq, klass, topic, payload, qos, retain, created",
                (now, now - older_than_s),
            ).fetchall()
            self._count_all(Counter(f"resent.{r[1]}" for r in rows))
        rows.sort(key=lambda r: r[0])
        return [Row(r[0], r[1], Outgoing(r[2], bytes(r[3]), r[4], bool(r[5])), r[6]) for r in rows]

    def awaiting(self) -> int:
        """Rows sent and not confirmed yet."""
        with self._lock:
            return int(
                self._db.execute(
                    f"SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND {self._awaits}"
                ).fetchone()[0]
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
        # Rows the receiver confirms stay (marked sent) until it does, whatever the window.
        awaits = self._awaits if outcome == "sent" else "0"
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
                deleted = self._db.execute(
                    f"UPDATE outbox SET sent_at = ? WHERE seq IN ({marks})"
                    f" AND sent_at IS NULL AND ({int(keep)} OR {awaits})"
                    " RETURNING klass, LENGTH(payload)",
                    [self._clock(), *seqs],
                ).fetchall()
                deleted += self._db.execute(
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
        never_confirmed = self._db.execute(
            f"DELETE FROM outbox WHERE expires < ? AND sent_at IS NOT NULL AND {self._awaits}"
            " RETURNING klass",
            (now,),
        ).fetchall()
        for (klass,) in never_confirmed:
            self._count(f"unconfirmed.{klass}", 1)
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
