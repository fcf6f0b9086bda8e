"""Idempotent writes: ``INSERT ... ON CONFLICT`` through the SQLite or PostgreSQL dialect.

* :func:`insert_new` inserts rows keyed by ``msg_id`` and skips those already stored; it returns
  how many were new.
* :func:`touch` creates sites and devices on first sight and widens their first/last seen times.
* :func:`apply_state` upserts a device from a state message. States of an older session (the
  process start epoch) never overwrite a newer session's; within one session the later arrival
  wins, because a device's LWT ``offline`` is composed before its ``online`` birth and so carries
  an older timestamp although it describes a later event.

Rows are written in key order so concurrent ingest replicas take row locks in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from edgecascade.cloud.db.fleet_models import DeviceTags
from edgecascade.cloud.db.models import Base, DetectedBox, Device, Site
from edgecascade.cloud.db.rows import Row, box_key
from edgecascade.cloud.errors import StoreError

Insert = postgresql.Insert | sqlite.Insert


def dialect_insert(conn: Connection, entity: type[Base]) -> Insert:
    """``INSERT`` with ``ON CONFLICT`` support for the connection's dialect."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(entity)
    if name == "sqlite":
        return sqlite.insert(entity)
    raise StoreError(f"idempotent inserts are not implemented for {name!r}")


def insert_new(conn: Connection, entity: type[Base], rows: Sequence[Row]) -> int:
    """Insert ``rows`` (keyed by ``msg_id``), skipping stored ones; the number inserted.

    One ``INSERT ... ON CONFLICT DO NOTHING`` executed for all the rows; the count of new ones
    is the driver's row count, which both dialects sum over an executemany (skipped rows count
    zero). Asking which ids are stored first, or ``RETURNING`` them, cost a query or a statement
    psycopg cannot cache (a long multi-row ``RETURNING`` made PostgreSQL ingest three times
    slower).
    """
    if not rows:
        return 0
    key = entity.__table__.c.msg_id
    ordered = sorted(rows, key=itemgetter("msg_id"))  # one order for every writer: no deadlocks
    stmt = (
        dialect_insert(conn, entity)
        .on_conflict_do_nothing(index_elements=[key])
        .execution_options(preserve_rowcount=True)  # the driver's count, kept for an INSERT
    )
    inserted = conn.execute(stmt, ordered).rowcount
    if inserted < 0:  # a driver that does not count: never silently report nothing stored
        raise StoreError(f"the {conn.dialect.name} driver reports no row count for inserts")
    return inserted


def insert_boxes(conn: Connection, rows: Sequence[Row]) -> None:
    """Insert ``detections`` rows, skipping stored ones (a redelivered result or verdict adds
    no box twice); in key order, as :func:`insert_new`. Boxes are not counted as messages."""
    if not rows:
        return
    table = DetectedBox.__table__.c
    stmt = dialect_insert(conn, DetectedBox).on_conflict_do_nothing(
        index_elements=[table.result_id, table.source, table.position]
    )
    conn.execute(stmt, sorted(rows, key=box_key))


def _greater(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((new > old, new), else_=old)


def _lesser(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((new < old, new), else_=old)


def touch(conn: Connection, seen: Mapping[tuple[str, str], tuple[float, float]]) -> None:
    """Record that each ``(site, device)`` sent messages with times ``(earliest, latest)``."""
    if not seen:
        return
    sites: dict[str, tuple[float, float]] = {}
    for (site, _device), (first, last) in seen.items():
        old_first, old_last = sites.get(site, (first, last))
        sites[site] = (min(first, old_first), max(last, old_last))

    ins = dialect_insert(conn, Site)
    stmt = ins.on_conflict_do_update(
        index_elements=[Site.id],
        set_={
            "first_seen": _lesser(ins.excluded.first_seen, Site.__table__.c.first_seen),
            "last_seen": _greater(ins.excluded.last_seen, Site.__table__.c.last_seen),
        },
    )
    conn.execute(
        stmt,
        [{"id": s, "first_seen": f, "last_seen": la} for s, (f, la) in sorted(sites.items())],
    )

    ins = dialect_insert(conn, Device)
    table = Device.__table__.c
    stmt = ins.on_conflict_do_update(
        index_elements=[table.site_id, table.device_id],
        set_={
            "first_seen": _lesser(ins.excluded.first_seen, table.first_seen),
            "last_seen": _greater(ins.excluded.last_seen, table.last_seen),
        },
    )
    conn.execute(
        stmt,
        [
            {"site_id": s, "device_id": d, "status": "unknown", "first_seen": f, "last_seen": la}
            for (s, d), (f, la) in sorted(seen.items())
        ],
    )


_STATE_FIELDS = ("status", "session", "role", "model_name", "model_version", "model_sha256")


def apply_state(conn: Connection, row: Row) -> None:
    """Upsert a device from a :func:`~cloud.db.rows.state_row` unless it is of an older session."""
    ins = dialect_insert(conn, Device)
    table = Device.__table__.c
    fields = (*_STATE_FIELDS, "software", "last_state_at", "clock_skew_s", "config_version")
    stmt = ins.values(row).on_conflict_do_update(
        index_elements=[table.site_id, table.device_id],
        set_={name: ins.excluded[name] for name in fields},
        where=table.session.is_(None) | (table.session <= ins.excluded.session),
    )
    conn.execute(stmt)


def adopt_tags(conn: Connection, tags: Mapping[tuple[str, str], list[str]]) -> None:
    """Tags a device's state reports (provisioned), kept only for a device that has none yet:
    tags an operator set through the API are never overwritten."""
    if not tags:
        return
    stmt = dialect_insert(conn, DeviceTags).on_conflict_do_nothing()
    now = time.time()
    rows = [
        {"site_id": s, "device_id": d, "tags": sorted(set(t)), "updated_at": now}
        for (s, d), t in sorted(tags.items())
    ]
    conn.execute(stmt, rows)
