"""The outbox's confirmations: rows kept after their PUBACK until the next hop says it has
committed them (an ``ack`` message), and sent again when that word does not come.

Why: a broker's PUBACK only says the broker has the message. A broker that then drops the
receiver's session (an outage longer than the session expiry) or its whole store (a restart
without persistence) loses it, and the sender, which forgot it at the PUBACK, cannot know. Rows of
the outbox's ``confirmed`` classes that carry a ``msg_id`` are therefore marked sent at the PUBACK
and deleted only by :meth:`Confirmations.confirm`; :meth:`~shared.outbox.store.Outbox.replayable`
returns them after every reconnect, :meth:`Confirmations.unconfirmed` when a confirmation is
overdue, and they expire, counted as ``unconfirmed.<class>``, only at their class's TTL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgecascade.shared.ids import Clock
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox.classes import Row

logger = logging.getLogger(__name__)


class Confirmations:
    """The confirmation half of :class:`~shared.outbox.store.Outbox` (which sets these)."""

    path: Path
    confirmed: frozenset[str]
    _awaits: str  # the SQL test of a row kept until its receiver confirms it
    _lock: threading.Lock
    _db: sqlite3.Connection
    _closed: bool
    _bytes: int
    _clock: Clock

    def _count_all(self, tally: Mapping[str, int]) -> None:
        raise NotImplementedError

    def confirm(self, msg_ids: Sequence[str]) -> int:
        """The receiver has committed these: forget them (sent or, re-queued, not yet);
        counted as ``confirmed.<class>``. Returns how many rows it removed."""
        tally: Counter[str] = Counter()
        with self._lock:
            if self._closed:
                return 0
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._delete_confirmed(msg_ids, tally)
                self._count_all(tally)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:  # a full disk: the rows are sent again, then confirmed
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                logger.warning("outbox %s: confirmation not recorded: %s", self.path, exc)
                return 0
        return sum(tally.values())

    def _delete_confirmed(self, msg_ids: Sequence[str], tally: Counter[str]) -> None:
        """Delete the rows of ``msg_ids`` (lock held, in a transaction), counting them."""
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
