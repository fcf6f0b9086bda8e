"""The FastAPI application factory: ``create_app(settings)``; nothing is built at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from edgecascade.cloud import camera_page
from edgecascade.cloud.api.errors import exception_handlers
from edgecascade.cloud.api.routes import (
    accuracy,
    alerts,
    detections,
    devices,
    escalations,
    fleet,
    health,
    labels,
    metrics,
    models,
    results,
    rollouts,
    sites,
    tokens,
    training,
)
from edgecascade.cloud.dashboard import api as dashboard_api
from edgecascade.cloud.dashboard import events as dashboard_events
from edgecascade.cloud.dashboard import pages as dashboard_pages
from edgecascade.cloud.device_metrics import DeviceCollector
from edgecascade.cloud.metrics import IngestCollector, RetentionCollector, instrument
from edgecascade.cloud.services import open_services
from edgecascade.cloud.settings import CloudSettings


def create_app(settings: CloudSettings, *, start_ingest: bool = True) -> FastAPI:
    """The cloud API; its lifespan migrates the database and runs the ingest (if asked)."""
    registry = CollectorRegistry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await asyncio.to_thread(open_services, settings, start_ingest=start_ingest)
        app.state.services = services
        collectors = [
            IngestCollector(services),
            DeviceCollector(services),
            RetentionCollector(services),
        ]
        for collector in collectors:
            registry.register(collector)
        try:
            yield
        finally:
            for collector in collectors:
                registry.unregister(collector)
            await asyncio.to_thread(services.close)

    app = FastAPI(
        title="EdgeCascade cloud",
        description=(
            "Results, escalations, verdicts and devices reported by the EdgeCascade fleet. "
            "Every endpoint under /api needs an API token (Authorization: Bearer <token>; "
            "`edgecascade cloud token create`): viewer to read, admin to manage tokens and "
            "models."
        ),
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
    )
    app.state.metrics = registry
    instrument(app, registry)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(results.router)
    app.include_router(devices.router)
    app.include_router(sites.router)
    app.include_router(escalations.router)
    app.include_router(detections.router)
    app.include_router(labels.router)
    app.include_router(tokens.router)
    app.include_router(models.router)
    app.include_router(rollouts.router)
    app.include_router(fleet.router)
    app.include_router(accuracy.router)
    app.include_router(training.router)
    app.include_router(alerts.router)
    app.include_router(dashboard_api.router)
    app.include_router(dashboard_events.router)
    dashboard_pages.mount(app)
    camera_page.mount(app, settings)
    return app
