"""``GET /healthz``: is the database reachable, is the ingest connected to the broker."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response, status
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from edgecascade.cloud.api.deps import ServicesDep
from edgecascade.cloud.api.schemas import Health

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(services: ServicesDep, response: Response) -> Health:
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = True
    except SQLAlchemyError as exc:
        logger.warning("healthz: database unreachable: %s", exc)
        database = False
    mqtt = services.ingestor.connected if services.ingestor is not None else None
    if not database:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    healthy = database and mqtt is not False
    return Health(status="ok" if healthy else "degraded", database=database, mqtt=mqtt)
