"""The outbox's queue on disk: SQLite (WAL), one connection guarded by a lock.

What :mod:`shared.outbox` promises (accepted once put, at-least-once, TTLs, quota, replay
window) is kept here; :mod:`shared.outbox.sender` publishes the rows; :mod:`shared.outbox.disk`
opens the file for power loss and tracks a full disk.

On a full disk nothing raises into a producer that cannot wait: :meth:`Outbox.put` drops the
message and counts it (``dropped.disk_full.<class>``), while :meth:`Outbox.put_many` raises
:class:`DiskFullError` so that a caller holding the messages elsewhere (the gateway's intake:
unacknowledged at the broker) commits them again later. Acknowledgements that cannot be
written wait in memory (the rows are not sent again meanwhile) and are written with the next
commit that has room; a process that dies before that sends those rows again, which the
receivers drop by message id.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from edgecascade.shared.errors import DiskFullError
from edgecascade.shared.ids import Clock
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox.classes import DEFAULT_CLASSES, ClassPolicy, PutOutcome, Row
from edgecascade.shared.outbox.clock import ClockWatch, default_monotonic
from edgecascade.shared.outbox.confirm import Confirmations
from edgecascade.shared.outbox.disk import (
    DEFAULT_SYNC,
    DiskFullEpisodes,
    Synchronous,
    is_disk_full,
    open_db,
)

logger = logging.getLogger(__name__)


class Outbox(Confirmations):
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
        synchronous: Synchronous = DEFAULT_SYNC,
        clock: Clock = time.time,
        monotonic: Clock | None = None,
    ) -> None:
        """``dedup_window_s`` > 0 also refuses a ``msg_id`` sent within that window (the gateway
        uses it: a device that missed a PUBACK sends again after its message was forwarded).
        ``replay_window_s`` > 0 keeps acknowledged rows that long for :meth:`replayable`.
        ``synchronous`` is the durability on power loss (:mod:`shared.outbox.disk`).
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
        self._watch = ClockWatch(clock, monotonic or default_monotonic(clock))
        self._lock = threading.Lock()
        self._closed = False
        self.not_empty = threading.Condition(self._lock)
        self.synchronous = synchronous
        self._db = open_db(path, synchronous)
        self._full = DiskFullEpisodes(path)
        # Rows delivered whose acknowledgement could not be written (full disk): seq -> row.
        self._acked: dict[int, tuple[Row, str]] = {}
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
        lower-priority rows, or the disk is full: counted as ``dropped.disk_full.<class>``).
        """
        try:
            return self.put_many([(klass, message, msg_id)])[0]
        except DiskFullError as exc:
            with self._lock:
                self._full.hit(exc, Counter({f"dropped.disk_full.{klass}": 1}))
            return "dropped"

    def put_many(self, items: Sequence[tuple[str, Outgoing, str | None]]) -> list[PutOutcome]:
        """Commit several ``(klass, message, msg_id)`` in one transaction: one disk write for
        all of them (the gateway's intake commits what arrived meanwhile as a group). The
        outcomes are those of :meth:`put`, in order; a repeated ``msg_id`` within the group is a
        duplicate like any other. Raises :class:`DiskFullError` (nothing of the group kept)
        when the disk is full."""
        for klass, _, _ in items:
            if klass not in self.classes:
                raise ValueError(f"unknown outbox class {klass!r}; known: {sorted(self.classes)}")
        with self._lock:
            self._next_expiry += self._watch.follow(self._db, self.path)
            now = self._clock()
            size_before = self._bytes
            try:
                self._db.execute("BEGIN IMMEDIATE")
                outcomes = [self._insert(klass, m, msg_id, now) for klass, m, msg_id in items]
                pairs = zip(outcomes, items, strict=True)
                tally = Counter(f"{outcome}.{klass}" for outcome, (klass, _, _) in pairs)
                self._count_all(tally + self._full.unsaved)
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                self._bytes = size_before
                if is_disk_full(exc):
                    self._full.hit(exc)
                    raise DiskFullError(f"outbox {self.path}: disk full ({exc})") from exc
                raise
            self._full.saved(kept=True)
            if "queued" in outcomes:
                self.not_empty.notify_all()
        self._record_acks()  # acknowledgements that waited for room
        return outcomes

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it may after SQLITE_FULL)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

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
        """The next rows to send, after expiring those past their TTL (rows delivered whose
        acknowledgement waits for disk space are left out)."""
        self._record_acks()
        with self._lock:
            self._expire()
            rows = self._db.execute(
                "SELECT seq, klass, topic, payload, qos, retain, created FROM outbox"
                " WHERE sent_at IS NULL ORDER BY priority, seq LIMIT ?",
                (limit + len(self._acked),),
            ).fetchall()
            rows = [r for r in rows if r[0] not in self._acked][:limit]
        return [Row(r[0], r[1], Outgoing(r[2], bytes(r[3]), r[4], bool(r[5])), r[6]) for r in rows]

    def replayable(self) -> list[Row]:
        """Rows acknowledged within ``replay_window_s`` and rows not confirmed yet, oldest first
        (older ones are deleted); counted as ``replayed.<class>``, since the caller sends them
        again."""
        if self.replay_window_s <= 0 and not self.confirmed:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, klass, topic, payload, qos, retain, created FROM outbox"
                f" WHERE sent_at IS NOT NULL AND (sent_at >= ? OR {self._awaits})"
                " ORDER BY priority, seq",
                (self._clock() - self.replay_window_s,),
            ).fetchall()
            replayed = Counter(f"replayed.{r[1]}" for r in rows)
            try:
                self._purge_sent()
                self._count_all(replayed)
            except sqlite3.Error as exc:
                if not is_disk_full(exc):
                    raise
                self._full.hit(exc, replayed)
        return [Row(r[0], r[1], Outgoing(r[2], bytes(r[3]), r[4], bool(r[5])), r[6]) for r in rows]

    def _purge_sent(self) -> None:
        """Forget acknowledged rows older than the replay window, unless they wait for their
        receiver's confirmation (lock held)."""
        self._db.execute(
            f"DELETE FROM outbox WHERE sent_at < ? AND NOT {self._awaits}",
            (self._clock() - self.replay_window_s,),
        )

    def wait(self, timeout: float) -> None:
        """Block until something is put or ``timeout`` passes."""
        with self._lock:
            self.not_empty.wait(timeout)

    def ack(self, rows: Iterable[Row], outcome: str = "sent") -> None:
        """Delete delivered (or rejected) rows and count them under ``outcome``; on a full
        disk they wait in memory, not sent again, until a later commit has room."""
        with self._lock:
            for row in rows:
                self._acked.setdefault(row.seq, (row, outcome))
        self._record_acks()

    def _record_acks(self) -> None:
        """Write the acknowledgements waiting in memory, in one transaction."""
        with self._lock:
            if not self._acked:
                return
            if self._closed:  # a sender that outlived its stop: the rows are sent again next time
                logger.warning(
                    "outbox %s is closed: %d acknowledgement(s) not recorded",
                    self.path,
                    len(self._acked),
                )
                self._acked.clear()
                return
            size_before = self._bytes
            try:
                self._db.execute("BEGIN IMMEDIATE")
                tally = self._full.unsaved.copy()
                for outcome in {outcome for _, outcome in self._acked.values()}:
                    seqs = [seq for seq, (_, o) in self._acked.items() if o == outcome]
                    tally.update(self._ack_rows(seqs, outcome))
                self._count_all(tally)
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                self._bytes = size_before
                if not is_disk_full(exc):
                    raise
                self._full.hit(exc)
                return
            self._acked.clear()
            self._full.saved(kept=False)

    def _ack_rows(self, seqs: list[int], outcome: str) -> Counter[str]:
        """Delete (or mark sent, with a replay window) rows acknowledged with ``outcome`` (lock
        held, inside a transaction); rows already gone or marked are not counted again."""
        tally: Counter[str] = Counter()
        keep = self.replay_window_s > 0 and outcome == "sent"
        # Rows the receiver confirms stay (marked sent) until it does, whatever the window.
        awaits = self._awaits if outcome == "sent" else "0"
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            deleted = self._db.execute(
                f"UPDATE outbox SET sent_at = ? WHERE seq IN ({marks})"
                f" AND sent_at IS NULL AND ({int(keep)} OR {awaits})"
                " RETURNING klass, LENGTH(payload)",
                [self._clock(), *chunk],
            ).fetchall()
            deleted += self._db.execute(
                f"DELETE FROM outbox WHERE seq IN ({marks}) AND sent_at IS NULL"
                " RETURNING klass, LENGTH(payload)",
                chunk,
            ).fetchall()
            for klass, size in deleted:  # rows already gone (expired meanwhile) are not
                self._bytes -= int(size)
                tally[f"{outcome}.{klass}"] += 1
        return tally

    def _expire(self) -> None:
        self._next_expiry += self._watch.follow(self._db, self.path)  # lock held
        now = self._clock()
        if now < self._next_expiry:
            return  # once a second is precise enough for TTLs of minutes to days
        self._next_expiry = now + 1.0
        tally: Counter[str] = Counter()
        try:
            if self.replay_window_s > 0:
                self._purge_sent()
            expired = self._db.execute(
                "DELETE FROM outbox WHERE expires < ? AND sent_at IS NULL"
                " RETURNING klass, LENGTH(payload)",
                (now,),
            ).fetchall()
            for klass, size in expired:
                self._bytes -= int(size)
                tally[f"expired.{klass}"] += 1
            never_confirmed = self._db.execute(
                "DELETE FROM outbox WHERE expires < ? AND sent_at IS NOT NULL AND "
                f"{self._awaits} RETURNING klass",
                (now,),
            ).fetchall()
            tally.update(f"unconfirmed.{klass}" for (klass,) in never_confirmed)
            self._count_all(tally)
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            self._full.hit(exc, tally)  # expired again once there is room
        if tally:
            logger.warning("outbox: %d message(s) expired before they could be sent", tally.total())

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
        """Queued rows per class (not those delivered whose acknowledgement waits for room)."""
        with self._lock:
            depth = Counter(
                dict(
                    self._db.execute(
                        "SELECT klass, COUNT(*) FROM outbox WHERE sent_at IS NULL GROUP BY klass"
                    ).fetchall()
                )
            )
            depth.subtract(row.klass for row, _ in self._acked.values())
        return {klass: n for klass, n in depth.items() if n > 0}

    def counters(self) -> dict[str, int]:
        """Persistent counters: ``queued.<class>``, ``sent.*``, ``expired.*``, ``dropped.*``
        (``dropped.disk_full.<class>``: not kept for lack of disk space), ``disk_full.episodes``;
        with the counts of a full disk not written yet."""
        with self._lock:
            counts = Counter(dict(self._db.execute("SELECT name, value FROM counters").fetchall()))
            counts.update(self._full.unsaved)
        return dict(counts)

    @property
    def size_bytes(self) -> int:
        return self._bytes
