"""The outbox's file on disk: how it is opened for power loss, and what a full disk does.

**Power loss.** The outbox is SQLite in WAL mode. A message is *accepted* when the commit that
holds it returns. With ``synchronous=FULL`` (the default, :data:`DEFAULT_SYNC`) SQLite fsyncs
the WAL at every commit, so an accepted message is on the storage before :meth:`Outbox.put`
returns and survives a power cut. With ``NORMAL`` the WAL is fsynced only when a checkpoint
copies it into the database file (every :data:`WAL_AUTOCHECKPOINT` pages of WAL), so a power cut
loses the commits since the last checkpoint: on an agent, seconds of results that the device
had already counted as accepted. Either mode survives a process crash (the writes are in the
page cache) and never corrupts the file (WAL frames are checksummed; recovery stops at the first
frame that is not whole). ``tests/shared/test_outbox_faults.py`` cuts the power under a writer
and shows both; ``edgecascade bench outbox`` measures what FULL costs. The directory is fsynced
once after the file is created, so the file itself does not vanish with its directory entry.
Guarantees end where the storage lies about flushes (some SD cards acknowledge a flush before
their own cache is written); no setting here can fix that.

**Disk full.** SQLite reports a full disk as ``SQLITE_FULL`` (also what ``PRAGMA max_page_count``
raises, which the tests use). :class:`DiskFullEpisodes` logs it once per episode and keeps the
counts that could not be written in memory until a later commit has room for them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

logger = logging.getLogger(__name__)

Synchronous = Literal["full", "normal"]
DEFAULT_SYNC: Synchronous = "full"
WAL_AUTOCHECKPOINT = 1000
"""Pages of WAL after which a commit checkpoints (SQLite's default, set explicitly): bounds the
WAL file (about 4 MiB) and, with ``synchronous=normal``, what a power cut can take."""

OutboxSync = Annotated[
    Synchronous,
    Field(
        description="SQLite synchronous mode of the outbox (WAL). full: every commit is fsynced, "
        "so every accepted message survives a power cut. normal: fsynced only at checkpoints "
        "(about every 4 MiB written), faster on slow storage, but a power cut loses the "
        "messages accepted since the last checkpoint (a process crash loses nothing). See "
        "`edgecascade bench outbox` for the cost on your storage.",
    ),
]
"""The ``outbox_sync`` setting of every component with an outbox."""

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


def open_db(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    """Open (or create) the outbox file in WAL mode with the given durability."""
    if synchronous not in ("full", "normal"):
        raise ValueError(f"outbox synchronous mode {synchronous!r}; known: full, normal")
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
    db.executescript(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    if "sent_at" not in columns:
        db.execute("ALTER TABLE outbox ADD COLUMN sent_at REAL")
    db.executescript(_SENT_SCHEMA)
    if created:
        _sync_directory(path.parent)
    return db


def _sync_directory(folder: Path) -> None:
    """Make a new file's directory entry durable (SQLite does it for the WAL, not the file)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's SQLITE_FULL (a full disk or ``max_page_count``) and ENOSPC."""
    if isinstance(exc, sqlite3.Error):
        return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno == 28  # ENOSPC


class DiskFullEpisodes:
    """A full disk, logged once per episode; counts that could not be written wait here."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unsaved: Counter[str] = Counter()  # merged into the next commit that has room
        self._since: float | None = None
        self._lost = 0

    @property
    def full(self) -> bool:
        return self._since is not None

    def hit(self, exc: BaseException, counts: Counter[str] | None = None) -> None:
        """A write failed for lack of space; ``counts`` are what it could not record."""
        if counts:
            self.unsaved.update(counts)
            self._lost += sum(n for name, n in counts.items() if name.startswith("dropped."))
        if self._since is None:
            self._since = time.monotonic()
            self.unsaved["disk_full.episodes"] += 1
            logger.error(
                "outbox %s: disk full (%s); new messages are not kept until space returns",
                self.path,
                exc,
            )

    def saved(self, *, kept: bool) -> None:
        """A commit went through with the unsaved counts in it; ``kept``: it stored new
        messages, which ends the episode (an acknowledgement may fit where a message does not:
        deleting reuses space)."""
        self.unsaved.clear()
        if kept and self._since is not None:
            logger.warning(
                "outbox %s: space again after %.1f s full; %d message(s) were not kept",
                self.path,
                time.monotonic() - self._since,
                self._lost,
            )
            self._since = None
            self._lost = 0
