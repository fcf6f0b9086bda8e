"""A full disk for an outbox, without root: SQLite's ``max_page_count``."""

from __future__ import annotations

from edgecascade.shared.outbox import Outbox

ROOMY = 1_000_000_000


def set_page_limit(box: Outbox, pages: int) -> None:
    """Past ``pages`` pages SQLite fails exactly as on a full disk (SQLITE_FULL); 1 means the
    file's current size (SQLite never sets it lower), :data:`ROOMY` gives the space back."""
    with box._lock:
        box._db.execute(f"PRAGMA max_page_count={pages}")
