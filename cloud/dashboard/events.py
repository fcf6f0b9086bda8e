"""``GET /api/events``: server-sent events, so an open dashboard page updates without reloading.

Each stream looks at the database every ``interval`` seconds and sends a ``change`` event with a
small snapshot (counts and newest times of what the fleet stores) whenever it differs from the
last one sent. Reading the database rather than listening to this process's ingest keeps it
right with several API replicas and ingest processes. Uvicorn waits for open responses before it
stops, so a stream ends within ``interval`` once ``app.state.shutting_down()`` says so (set by
``edgecascade cloud``), and after ``STREAM_S`` in any case (the page reconnects at once, as
``retry`` says). The page reads it with ``fetch`` rather than ``EventSource``, which cannot send
the token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from edgecascade.cloud.api.deps import ServicesDep, Viewer
from edgecascade.cloud.db.models import (
    Device,
    Escalation,
    ModelVersion,
    Result,
    Rollout,
    Telemetry,
    Verdict,
)

router = APIRouter(prefix="/api", tags=["dashboard"])

INTERVAL_S = 1.0
KEEPALIVE_S = 15.0
STREAM_S = 30.0


def snapshot(session: Session) -> dict[str, Any]:
    """What changes when the fleet reports or an operator acts: counts and newest times."""
    results, escalated = session.execute(
        select(func.count(), func.sum(case((Result.escalated.is_(True), 1), else_=0)))
    ).one()
    devices, online, last_seen = session.execute(
        select(
            func.count(),
            func.sum(case((Device.status == "online", 1), else_=0)),
            func.max(Device.last_seen),
        )
    ).one()
    return {
        "results": int(results),
        "escalated": int(escalated or 0),
        "escalations": session.scalar(select(func.count()).select_from(Escalation)) or 0,
        "verdicts": session.scalar(select(func.count()).select_from(Verdict)) or 0,
        "telemetry_at": session.scalar(select(func.max(Telemetry.ts))),
        "devices": int(devices),
        "online": int(online or 0),
        "last_seen": last_seen,
        "models": session.scalar(select(func.count()).select_from(ModelVersion)) or 0,
        "rollouts_at": session.scalar(select(func.max(Rollout.updated_at))),
    }


def _read(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as session:
        return snapshot(session)


async def stream(
    sessions: sessionmaker[Session],
    stopping: Callable[[], bool] = lambda: False,
    interval: float = INTERVAL_S,
    duration: float = STREAM_S,
) -> AsyncIterator[str]:
    """``change`` events while the snapshot moves; a comment now and then to keep proxies open."""
    yield f"retry: {int(interval * 1000)}\n\n"
    last: dict[str, Any] | None = None
    sent_at = started = time.monotonic()
    while time.monotonic() - started < duration and not stopping():
        current = await asyncio.to_thread(_read, sessions)
        if current != last:
            yield f"event: change\ndata: {json.dumps({**current, 'at': time.time()})}\n\n"
            last, sent_at = current, time.monotonic()
        elif time.monotonic() - sent_at > KEEPALIVE_S:
            yield ": keepalive\n\n"
            sent_at = time.monotonic()
        await asyncio.sleep(interval)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def events(_: Viewer, services: ServicesDep, request: Request) -> StreamingResponse:
    """Server-sent ``change`` events with a snapshot of the store, for live pages."""
    stopping = getattr(request.app.state, "shutting_down", lambda: False)
    return StreamingResponse(
        stream(services.sessions, stopping),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
