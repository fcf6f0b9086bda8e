"""What a running cloud process holds, opened and closed in one place, top to bottom.

:func:`open_services` migrates the database, builds the engine, the session factory and the blob
store, and (optionally) starts the ingest, the model distributor, the rollout controller, the
training trigger and the alert evaluator;
:meth:`Services.close` stops them in reverse order. The FastAPI lifespan calls both; request
handlers reach the parts through :mod:`cloud.api.deps`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from edgecascade.cloud.alerts.evaluator import AlertEvaluator
from edgecascade.cloud.blobs import BlobStore, open_blobs
from edgecascade.cloud.db.engine import make_engine, make_session_factory
from edgecascade.cloud.db.migrate import upgrade_engine
from edgecascade.cloud.distributor import ModelDistributor
from edgecascade.cloud.fleet.controller import FleetController
from edgecascade.cloud.ingest import Ingestor
from edgecascade.cloud.resubmit import EscalationResubmitter
from edgecascade.cloud.retention import Purger
from edgecascade.cloud.rollouts import RolloutController
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import StoreWriter
from edgecascade.cloud.training.trigger import TrainingScheduler, triggers_on

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """The open stores and workers of one cloud process."""

    settings: CloudSettings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    ingestor: Ingestor | None = None
    distributor: ModelDistributor | None = None
    rollouts: RolloutController | None = None
    resubmitter: EscalationResubmitter | None = None
    training: TrainingScheduler | None = None
    alerts: AlertEvaluator | None = None
    retention: Purger | None = None
    fleet: FleetController | None = None

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        if self.retention is not None:
            self.retention.stop()
        if self.alerts is not None:
            self.alerts.stop()
        if self.training is not None:
            self.training.stop()
        if self.resubmitter is not None:
            self.resubmitter.stop()
        if self.rollouts is not None:
            self.rollouts.stop()
        if self.distributor is not None:
            self.distributor.stop()
        if self.ingestor is not None:
            self.ingestor.stop()
        self.engine.dispose()


def open_services(settings: CloudSettings, *, start_ingest: bool = True) -> Services:
    """Migrate, open the stores and start the ingest (which connects in the background)."""
    engine = make_engine(settings.db_url)
    try:
        upgrade_engine(engine)
    except BaseException:
        engine.dispose()
        raise
    blobs = open_blobs(settings, "frames")
    services = Services(settings, engine, make_session_factory(engine), blobs)
    if start_ingest:
        services.ingestor = Ingestor(
            StoreWriter(engine, blobs),
            mqtt=settings.mqtt,
            options=settings.ingest,
            client_id=settings.client_id,
        )
        services.ingestor.start()
        services.distributor = ModelDistributor(engine, settings)
        services.distributor.start()
        services.rollouts = RolloutController(engine, settings)
        services.rollouts.begin()
        services.fleet = FleetController(services.sessions, settings)
        services.fleet.begin()
        if settings.resubmit.after_s > 0:
            services.resubmitter = EscalationResubmitter(engine, blobs, settings)
            services.resubmitter.begin()
        if triggers_on(settings.train):
            services.training = TrainingScheduler(engine, settings.train)
            services.training.start()
        services.alerts = AlertEvaluator(engine, settings)
        services.alerts.begin()
        services.retention = Purger(engine, blobs, settings.retention)
        services.retention.start()
    logger.info(
        "cloud store: %s, blobs in %s",
        engine.url.render_as_string(hide_password=True),
        settings.blob_dir,
    )
    return services
