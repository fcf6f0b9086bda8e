"""A device's state ``detail`` kept for the alerts (``device_conditions``): the agent reports its
camera source there (``<host>; source reconnecting: <reason>``), which ``devices`` has no column
for. Written beside :func:`cloud.db.upsert.apply_state`, with the same rule: a state of an older
session never overwrites a newer session's."""

from __future__ import annotations

from sqlalchemy import Connection

from edgecascade.cloud.db.alert_models import DeviceCondition
from edgecascade.cloud.db.rows import Row
from edgecascade.cloud.db.upsert import dialect_insert
from edgecascade.shared.messages import StateMessage


def condition_row(site: str, device: str, msg: StateMessage) -> Row:
    return {
        "site_id": site,
        "device_id": device,
        "session": msg.session,
        "status": msg.status,
        "detail": msg.detail,
        "ts": msg.ts,
    }


def apply_condition(conn: Connection, row: Row) -> None:
    """Upsert the condition unless the stored one is of a newer session."""
    ins = dialect_insert(conn, DeviceCondition)
    table = DeviceCondition.__table__.c
    stmt = ins.values(row).on_conflict_do_update(
        index_elements=[table.site_id, table.device_id],
        set_={name: ins.excluded[name] for name in ("session", "status", "detail", "ts")},
        where=table.session.is_(None) | (table.session <= ins.excluded.session),
    )
    conn.execute(stmt)
