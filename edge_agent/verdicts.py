"""Recent results kept on the device so a later cloud verdict can be applied to them.

A small SQLite table in the agent's data directory: one row per result (edge top-1), bounded to
the newest ``capacity`` rows. A verdict (correlated by ``result_id``) records the cloud's label and
whether it agrees; verdicts for results the device no longer knows are counted, not fatal.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from pathlib import Path

from shared.messages import ResultMessage, VerdictMessage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    msg_id      TEXT PRIMARY KEY,
    frame_id    TEXT NOT NULL,
    captured_at REAL NOT NULL,
    edge_label  TEXT NOT NULL,
    edge_score  REAL NOT NULL,
    cloud_label TEXT,
    agrees      INTEGER
);
"""


class VerdictBook:
    def __init__(self, path: Path, capacity: int = 10_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.capacity = capacity
        self.counts: Counter[str] = Counter()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def remember(self, result: ResultMessage) -> None:
        top = result.top[0]
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO results (msg_id, frame_id, captured_at, edge_label, "
                "edge_score) VALUES (?, ?, ?, ?, ?)",
                (result.msg_id, result.frame_id, result.captured_at, top.label, top.score),
            )
            self._db.execute(
                "DELETE FROM results WHERE msg_id IN (SELECT msg_id FROM results "
                "ORDER BY msg_id DESC LIMIT -1 OFFSET ?)",
                (self.capacity,),
            )

    def apply(self, verdict: VerdictMessage) -> bool:
        """Record the cloud's answer on the stored result; False if the result is unknown."""
        label = verdict.top[0].label
        with self._lock:
            row = self._db.execute(
                "SELECT edge_label FROM results WHERE msg_id = ?", (verdict.result_id,)
            ).fetchone()
            if row is None:
                self.counts["verdicts.unknown"] += 1
                return False
            agrees = row[0] == label
            self._db.execute(
                "UPDATE results SET cloud_label = ?, agrees = ? WHERE msg_id = ?",
                (label, int(agrees), verdict.result_id),
            )
        self.counts["verdicts.received"] += 1
        if not agrees:
            self.counts["verdicts.corrected"] += 1
        return True

    def cloud_label(self, result_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT cloud_label FROM results WHERE msg_id = ?", (result_id,)
            ).fetchone()
        return None if row is None else row[0]
