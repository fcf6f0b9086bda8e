"""The FastAPI application factory: ``create_app(settings)``; nothing is built at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud.api.routes import devices, health, results
from cloud.services import open_services
from cloud.settings import CloudSettings


def create_app(settings: CloudSettings, *, start_ingest: bool = True) -> FastAPI:
    """The cloud API; its lifespan migrates the database and runs the ingest (if asked)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await asyncio.to_thread(open_services, settings, start_ingest=start_ingest)
        app.state.services = services
        try:
            yield
        finally:
            await asyncio.to_thread(services.close)

    app = FastAPI(
        title="EdgeCascade cloud",
        description="Results, escalations and devices reported by the EdgeCascade fleet.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(results.router)
    app.include_router(devices.router)
    return app
