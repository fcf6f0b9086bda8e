"""The durable outbox: an on-disk priority queue in SQLite (WAL) used by the agent and the gateway.

A message is *accepted* once :meth:`Outbox.put` returns: it is committed to disk and survives a
SIGKILL of the process. :class:`OutboxSender` publishes rows in priority order (lower number first;
within one class in the order they were put) and deletes a row only after the broker's PUBACK, so a
crash between publish and delete sends the row again: at-least-once, de-duplicated downstream by
``msg_id``. Rows past their class's TTL expire; when the disk quota is full the lowest-priority,
oldest rows make room. Every expiry and drop is counted in the ``counters`` table, never silent.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.config import Section
from shared.errors import BrokerError
from shared.ids import Clock
from shared.mqtt import MqttLink, Outgoing

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
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (priority, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class ClassPolicy(Section):
    """How one class of message is queued."""

    priority: int = 1
    ttl_s: float = 86_400.0


DEFAULT_CLASSES: dict[str, ClassPolicy] = {
    "escalation": ClassPolicy(priority=0, ttl_s=6 * 3600.0),
    "verdict": ClassPolicy(priority=0, ttl_s=6 * 3600.0),
    "result": ClassPolicy(priority=1, ttl_s=7 * 86_400.0),
    "state": ClassPolicy(priority=1, ttl_s=86_400.0),
    "telemetry": ClassPolicy(priority=2, ttl_s=3600.0),
}


PutOutcome = Literal["queued", "duplicate", "dropped"]


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    klass: str
    message: Outgoing


class Outbox:
    """A thread-safe on-disk queue; one SQLite file, one connection guarded by a lock."""

    def __init__(
        self,
        path: Path,
        *,
        classes: Mapping[str, ClassPolicy] = DEFAULT_CLASSES,
        quota_bytes: int = 256 * 1024 * 1024,
        clock: Clock = time.time,
    ) -> None:
        self.path = path
        self.classes = dict(classes)
        self.quota_bytes = quota_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self.not_empty = threading.Condition(self._lock)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a process crash (SIGKILL); FULL would also survive power loss.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._bytes = int(
            self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()[0]
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- producer side ---------------------------------------------------------------------------
    def put(self, klass: str, message: Outgoing, msg_id: str | None = None) -> PutOutcome:
        """Commit ``message`` to disk.

        Returns ``"queued"``, ``"duplicate"`` (a row with this ``msg_id`` is still queued) or
        ``"dropped"`` (it does not fit the quota even after evicting lower-priority rows).
        """
        policy = self.classes.get(klass)
        if policy is None:
            raise ValueError(f"unknown outbox class {klass!r}; known: {sorted(self.classes)}")
        size = len(message.payload)
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if not self._make_room(size, policy.priority):
                    self._count(f"dropped.{klass}", 1)
                    self._db.execute("COMMIT")
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
                inserted = cur.rowcount == 1
                if inserted:
                    self._count(f"queued.{klass}", 1)
                    self._bytes += size
                else:
                    self._count(f"duplicate.{klass}", 1)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if inserted:
                self.not_empty.notify_all()
        return "queued" if inserted else "duplicate"

    def _make_room(self, size: int, priority: int) -> bool:
        """Drop lower-or-equal priority rows, oldest first, until ``size`` fits (lock held)."""
        if size > self.quota_bytes:
            return False
        while self._bytes + size > self.quota_bytes:
            victim = self._db.execute(
                "SELECT seq, klass, LENGTH(payload) FROM outbox WHERE priority >= ?"
                " ORDER BY priority DESC, seq LIMIT 1",
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
                "SELECT seq, klass, topic, payload, qos, retain FROM outbox"
                " ORDER BY priority, seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Row(r[0], r[1], Outgoing(r[2], bytes(r[3]), r[4], bool(r[5]))) for r in rows]

    def wait(self, timeout: float) -> None:
        """Block until something is put or ``timeout`` passes."""
        with self._lock:
            self.not_empty.wait(timeout)

    def ack(self, rows: Iterable[Row], outcome: str = "sent") -> None:
        """Delete delivered (or rejected) rows and count them under ``outcome``."""
        rows = list(rows)
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for row in rows:
                cur = self._db.execute(
                    "DELETE FROM outbox WHERE seq = ? RETURNING LENGTH(payload)", (row.seq,)
                )
                deleted = cur.fetchone()
                if deleted is not None:
                    self._bytes -= int(deleted[0])
                    self._count(f"{outcome}.{row.klass}", 1)
            self._db.execute("COMMIT")

    def _expire(self) -> None:
        expired = self._db.execute(
            "DELETE FROM outbox WHERE expires < ? RETURNING klass, LENGTH(payload)",
            (self._clock(),),
        ).fetchall()
        for klass, size in expired:
            self._bytes -= int(size)
            self._count(f"expired.{klass}", 1)
        if expired:
            logger.warning("outbox: %d message(s) expired before they could be sent", len(expired))

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
                self._db.execute("SELECT klass, COUNT(*) FROM outbox GROUP BY klass").fetchall()
            )

    def counters(self) -> dict[str, int]:
        """Persistent counters: ``queued.<class>``, ``sent.*``, ``expired.*``, ``dropped.*``..."""
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    @property
    def size_bytes(self) -> int:
        return self._bytes


class OutboxSender(threading.Thread):
    """Publishes outbox rows while the link is up (and ``ready()``, when given); deletes each row
    after its PUBACK."""

    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        *,
        batch: int = 200,
        ack_timeout: float = 10.0,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(name=f"outbox-sender-{link.client_id}", daemon=True)
        self.outbox = outbox
        self.link = link
        self.batch = batch
        self.ack_timeout = ack_timeout
        self._ready = ready
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        with self.outbox.not_empty:
            self.outbox.not_empty.notify_all()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._stopping.is_set():
            if not self.link.wait_connected(0.5):
                continue
            if self._ready is not None and not self._ready():
                self._stopping.wait(0.2)  # e.g. no consumer on the broker yet: hold the rows
                continue
            rows = self.outbox.peek(self.batch)
            if not rows:
                self.outbox.wait(0.5)
                continue
            self._send(rows)

    def _send(self, rows: list[Row]) -> None:
        pending = [(row, self.link.publish(row.message)) for row in rows]
        delivered: list[Row] = []
        rejected: list[Row] = []
        for row, info in pending:
            try:
                if not self.link.confirm(info, self.ack_timeout):
                    break  # link dropped: the rest is sent again after reconnect
            except BrokerError as exc:
                logger.error("outbox: %s refused on %s: %s", row.klass, row.message.topic, exc)
                rejected.append(row)
                continue
            delivered.append(row)
        self.outbox.ack(delivered)
        self.outbox.ack(rejected, outcome="rejected")
