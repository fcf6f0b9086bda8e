"""Time buckets computed in SQL, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Integer, cast, func
from sqlalchemy.orm import InstrumentedAttribute, Session


def bucket_index(
    session: Session, column: InstrumentedAttribute[float], since: float, bucket_s: float
) -> ColumnElement[int]:
    """The bucket index of ``column`` (>= since): SQLite's integer cast truncates, which is the
    floor here; PostgreSQL's rounds, so it gets ``floor`` (SQLite may lack it)."""
    offset = (column - since) / bucket_s
    if session.get_bind().dialect.name == "sqlite":
        return cast(offset, Integer)
    return cast(func.floor(offset), Integer)
