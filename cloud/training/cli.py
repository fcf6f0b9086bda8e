"""``edgecascade cloud trainer``: the process that does queued training runs.

It runs where the train extra is installed (``edgecascade cloud train``, which it starts for
each run, needs torch); it shares the cloud's database, model store and broker (a rollout's
offers are published from here). Only :mod:`argparse` is imported at the top.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgecascade.shared.cli import SubParsers

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edgecascade.cloud.blobs import BlobStore
    from edgecascade.cloud.dataset import DatasetFilters, DatasetManifest
    from edgecascade.cloud.settings import CloudSettings
    from edgecascade.cloud.training.runner import DatasetExporter
    from edgecascade.shared.systemd import Notifier

logger = logging.getLogger(__name__)


def add_trainer_parser(actions: SubParsers[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "trainer",
        help="do queued training runs: fine-tune, gate, register, roll out (needs the train extra)",
        description=(
            "Claim the oldest queued training run (queued by the API or by a [train] trigger), "
            "export the site's verdict dataset, fine-tune the site's current edge model on it "
            "with `edgecascade cloud train`, apply the gates ([train] max_regression_points, "
            "min_holdout, min_improvement_points), register a child that passes them and start "
            "a staged rollout of it. Runs left running by a trainer that stopped are failed at "
            "start. Runs until SIGINT/SIGTERM."
        ),
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help="TOML settings"
    )
    parser.add_argument(
        "--trainer-id", default="trainer-1", help="this trainer's name in the runs it claims"
    )
    parser.set_defaults(func=run_trainer_cli)


def load_exporter() -> DatasetExporter:
    """The cloud's dataset export as the runner calls it: what it wrote, as its manifest."""
    from edgecascade.cloud.export import export_dataset

    def export(
        session: Session, blobs: BlobStore, filters: DatasetFilters, out: Path
    ) -> DatasetManifest:
        return export_dataset(session, blobs, filters, out).manifest

    return export


def run_trainer_cli(args: argparse.Namespace) -> int:
    from edgecascade.cloud.cli import load
    from edgecascade.shared.cli import stop_on_signals

    run_trainer(load(args), load_exporter(), stop_on_signals(), trainer_id=args.trainer_id)
    return 0


def run_trainer(
    settings: CloudSettings,
    exporter: DatasetExporter,
    stop: threading.Event,
    *,
    trainer_id: str,
    command: Sequence[str] | None = None,
) -> None:
    """Open the stores, connect the rollout publisher, serve until ``stop``; close."""
    from edgecascade.cloud.blobs import open_blobs
    from edgecascade.cloud.db.engine import make_engine
    from edgecascade.cloud.db.migrate import upgrade_engine
    from edgecascade.cloud.rollouts import RolloutController
    from edgecascade.cloud.training.runner import TRAIN_COMMAND
    from edgecascade.cloud.training.service import Trainer
    from edgecascade.shared.systemd import Notifier

    engine = make_engine(settings.db_url)
    rollouts = RolloutController(engine, settings)
    try:
        upgrade_engine(engine)
        rollouts.begin(loop=False)
        trainer = Trainer(
            engine,
            settings,
            open_blobs(settings, "frames"),
            exporter,
            rollouts,
            trainer_id=trainer_id,
            command=command or TRAIN_COMMAND,
        )
        trainer.fail_stale()
        notifier = Notifier()
        notifier.ready(f"trainer {trainer_id}")
        watchdog = threading.Thread(target=_watchdog, args=(notifier, stop), daemon=True)
        watchdog.start()
        trainer.serve(stop)
        notifier.stopping()
        logger.info("trainer %s stopped: %s", trainer_id, dict(trainer.counts))
    finally:
        rollouts.stop()
        engine.dispose()


def _watchdog(notifier: Notifier, stop: threading.Event) -> None:
    while not stop.wait(5.0):
        notifier.watchdog()
